/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the hypeman V1 mailbox compatibility (rh_v1_* in
 * include/rehome/mailbox.h): the exact byte layout (magic at 0, token right
 * after it, u32 seq at 64, u32 length at 68, JSON at 72), encode/decode
 * round trips, and hand-written JSON pages, good and bad, each failure
 * checked for its errno and message.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "rehome/mailbox.h"
#include "unaligned.h"

static _Alignas(4096) uint8_t page[RH_MAILBOX_SIZE];

/* @r failed with -@errnum, and @e holds @errnum and exactly @text. */
#define assert_err(r, e, errnum, text)                                                                       \
        do {                                                                                                 \
                assert_int_equal((r), -(errnum));                                                            \
                assert_int_equal((e).code, (errnum));                                                        \
                assert_string_equal((e).msg, (text));                                                        \
        } while (0)

/* A V1 page as hypeman writes it: header with token "tok", @seq, @json. */
static void v1_page(const char *json, uint32_t seq)
{
        memset(page, 0, sizeof(page));
        memcpy(page, RH_V1_MAGIC, RH_V1_MAGIC_LEN);
        memcpy(page + RH_V1_MAGIC_LEN, "tok", 3);
        unaligned_write_le32(page + RH_V1_OFF_SEQ, seq);
        unaligned_write_le32(page + RH_V1_OFF_LEN, (uint32_t)strlen(json));
        memcpy(page + RH_V1_OFF_JSON, json, strlen(json));
}

/* Decode @json and expect failure @errnum with @text, output untouched. */
#define expect_v1(json, errnum, text)                                                                        \
        do {                                                                                                 \
                struct rh_request r_, u_;                                                                    \
                struct rh_error e_ = {};                                                                     \
                uint32_t s_ = 77;                                                                            \
                memset(&r_, 0x5a, sizeof(r_));                                                               \
                memcpy(&u_, &r_, sizeof(r_));                                                                \
                v1_page((json), 9);                                                                          \
                assert_err(rh_v1_decode(page, RH_MAILBOX_SIZE, &r_, &s_, &e_), e_, errnum, text);            \
                assert_memory_equal(&r_, &u_, sizeof(r_));                                                   \
                assert_int_equal(s_, 77);                                                                    \
        } while (0)

static void v1_request(struct rh_request *req)
{
        memset(req, 0, sizeof(*req));
        req->n_ifaces = 1;
        req->ifaces[0].match = RH_MATCH_NAME;
        strcpy(req->ifaces[0].name, "eth0");
        req->ifaces[0].has_mac = true;
        memcpy(req->ifaces[0].mac, "\x02\xaa\xbb\xcc\xdd\x01", 6);
        req->n_addrs = 1;
        req->addrs[0].family = 4;
        req->addrs[0].prefix = 24;
        memcpy(req->addrs[0].addr, "\x0a\x00\x00\x05", 4);
        req->n_routes = 1;
        req->routes[0].family = 4;
        req->routes[0].has_gateway = true;
        memcpy(req->routes[0].gateway, "\x0a\x00\x00\x01", 4);
        req->has_ack_udp = true;
        req->ack_port = 9999;
        req->flags = RH_REQ_FLUSH_NEIGH | RH_REQ_ANNOUNCE | RH_REQ_REPLACE_ADDRS;
}

static void assert_v1_equal(const struct rh_request *a, const struct rh_request *b)
{
        assert_int_equal(a->n_ifaces, b->n_ifaces);
        assert_int_equal(a->ifaces[0].match, b->ifaces[0].match);
        assert_string_equal(a->ifaces[0].name, b->ifaces[0].name);
        assert_int_equal(a->ifaces[0].has_mac, b->ifaces[0].has_mac);
        assert_memory_equal(a->ifaces[0].mac, b->ifaces[0].mac, 6);
        assert_int_equal(a->ifaces[0].mtu, b->ifaces[0].mtu);
        assert_int_equal(a->n_addrs, b->n_addrs);
        assert_int_equal(a->addrs[0].iface, b->addrs[0].iface);
        assert_int_equal(a->addrs[0].family, b->addrs[0].family);
        assert_int_equal(a->addrs[0].prefix, b->addrs[0].prefix);
        assert_memory_equal(a->addrs[0].addr, b->addrs[0].addr, 16);
        assert_int_equal(a->n_routes, b->n_routes);
        for (unsigned i = 0; i < a->n_routes; i++) {
                assert_int_equal(a->routes[i].iface, b->routes[i].iface);
                assert_int_equal(a->routes[i].family, b->routes[i].family);
                assert_int_equal(a->routes[i].dst_prefix, b->routes[i].dst_prefix);
                assert_int_equal(a->routes[i].has_gateway, b->routes[i].has_gateway);
                assert_int_equal(a->routes[i].metric, b->routes[i].metric);
                assert_memory_equal(a->routes[i].dst, b->routes[i].dst, 16);
                assert_memory_equal(a->routes[i].gateway, b->routes[i].gateway, 16);
        }
        assert_int_equal(a->n_dns + a->n_search, b->n_dns + b->n_search);
        assert_string_equal(a->hostname, b->hostname);
        assert_int_equal(a->flags, b->flags);
        assert_int_equal(a->has_ack_udp, b->has_ack_udp);
        assert_int_equal(a->ack_addr.family, b->ack_addr.family);
        assert_memory_equal(a->ack_addr.addr, b->ack_addr.addr, 16);
        assert_int_equal(a->ack_port, b->ack_port);
}

static void test_layout(void **state)
{
        static uint8_t before[RH_MAILBOX_SIZE];
        struct rh_request req, got;
        struct rh_error err = {};
        uint32_t seq = 0;
        static const char json[] = "{\"interface_name\":\"eth0\",\"mac\":\"02:aa:bb:cc:dd:01\","
                                   "\"ipv4\":\"10.0.0.5\",\"prefix\":24,\"gateway\":\"10.0.0.1\","
                                   "\"ack_port\":9999}";

        memset(page, 0xee, sizeof(page));
        assert_int_equal(rh_v1_write_header(page, "clone-token-1", &err), 0);
        /* The magic with its NUL: 34 bytes at 0; the token right after it. */
        assert_memory_equal(page, "HYPEMAN_RESUME_NETWORK_MAILBOX_V1\0", 34);
        assert_memory_equal(page + 34, "clone-token-1\0", 14);
        for (unsigned i = 34 + 14; i < RH_V1_OFF_JSON; i++)
                assert_int_equal(page[i], 0);         /* rest of the token area, seq and length */
        assert_int_equal(page[RH_V1_OFF_JSON], 0xee); /* the JSON area is not the header's */

        v1_request(&req);
        assert_int_equal(rh_v1_encode(page, &req, 0x01020304, &err), 0);
        assert_memory_equal(page, "HYPEMAN_RESUME_NETWORK_MAILBOX_V1\0clone-token-1\0", 48);
        assert_memory_equal(page + 64, "\x04\x03\x02\x01", 4);
        assert_int_equal(unaligned_read_le32(page + 68), strlen(json));
        assert_memory_equal(page + 72, json, strlen(json));
        for (size_t i = 72 + strlen(json); i < RH_MAILBOX_SIZE; i++)
                assert_int_equal(page[i], 0);

        assert_true(rh_v1_matches(page, RH_MAILBOX_SIZE, "clone-token-1"));
        assert_true(rh_v1_matches(page, RH_MAILBOX_SIZE, NULL));
        assert_false(rh_v1_matches(page, RH_MAILBOX_SIZE, "clone-token-2"));
        assert_false(rh_v1_matches(page, RH_MAILBOX_SIZE, "clone-token-"));
        assert_false(rh_v1_matches(page, RH_MAILBOX_SIZE - 1, "clone-token-1"));

        memset(&got, 0, sizeof(got));
        assert_int_equal(rh_v1_decode(page, RH_MAILBOX_SIZE, &got, &seq, &err), 0);
        assert_int_equal(seq, 0x01020304);
        assert_int_equal(got.seq, 0x01020304);
        assert_v1_equal(&got, &req);

        /* Without an ack request, "ack_port" is left out. */
        req.has_ack_udp = false;
        req.ack_port = 0;
        assert_int_equal(rh_v1_encode(page, &req, 2, &err), 0);
        assert_string_equal((const char *)page + 72,
                            "{\"interface_name\":\"eth0\",\"mac\":\"02:aa:bb:cc:dd:01\","
                            "\"ipv4\":\"10.0.0.5\",\"prefix\":24,\"gateway\":\"10.0.0.1\"}");
        assert_int_equal(rh_v1_decode(page, RH_MAILBOX_SIZE, &got, NULL, &err), 0);
        assert_v1_equal(&got, &req);
        /* Without an IPv4 default gateway there is no V1 request: hypeman's
         * guest drops "gateway":"" without a word. The page is left alone. */
        memcpy(before, page, sizeof(page));
        req.n_routes = 0;
        assert_err(rh_v1_encode(page, &req, 3, &err), err, EINVAL, "V1 needs an IPv4 default gateway");
        req.n_routes = 1;
        req.routes[0].family = 6;
        memcpy(req.routes[0].gateway, "\xfe\x80\0\0\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
        assert_err(rh_v1_encode(page, &req, 3, &err), err, EINVAL, "V1 needs an IPv4 default gateway");
        assert_memory_equal(page, before, sizeof(page));
}

static void test_encode_choices(void **state)
{
        struct rh_request req, got;
        struct rh_error err = {};

        /* The first IPv4 address and the first IPv4 default route with a
         * gateway are what V1 carries; the rest is dropped. */
        v1_request(&req);
        req.n_addrs = 3;
        req.addrs[0].family = 6;
        req.addrs[0].prefix = 64;
        memcpy(req.addrs[0].addr, "\xfd\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x05", 16);
        req.addrs[1] = (struct rh_addr){.family = 4, .prefix = 16, .addr = {172, 16, 0, 9}};
        req.addrs[2] = (struct rh_addr){.family = 4, .prefix = 8, .addr = {10, 9, 9, 9}};
        req.n_routes = 2;
        req.routes[1] = req.routes[0];
        req.routes[0] = (struct rh_route){.family = 4,
                                          .dst_prefix = 12,
                                          .has_gateway = true,
                                          .dst = {172, 16},
                                          .gateway = {172, 16, 0, 1}};
        strcpy(req.hostname, "dropped");
        assert_int_equal(rh_v1_write_header(page, "t", &err), 0);
        assert_int_equal(rh_v1_encode(page, &req, 1, &err), 0);
        assert_string_equal((const char *)page + 72,
                            "{\"interface_name\":\"eth0\",\"mac\":\"02:aa:bb:cc:dd:01\","
                            "\"ipv4\":\"172.16.0.9\",\"prefix\":16,\"gateway\":\"10.0.0.1\","
                            "\"ack_port\":9999}");
        assert_int_equal(rh_v1_decode(page, RH_MAILBOX_SIZE, &got, NULL, &err), 0);
        assert_int_equal(got.n_addrs, 1);
        assert_int_equal(got.addrs[0].prefix, 16);
        assert_int_equal(got.n_routes, 1);
        assert_memory_equal(got.routes[0].gateway, "\x0a\x00\x00\x01", 4);
        assert_string_equal(got.hostname, "");

        /* Requests V1 cannot express; the page is left alone. */
        memset(page, 0xee, sizeof(page));
        v1_request(&req);
        assert_err(rh_v1_encode(page, &req, 0, &err), err, EINVAL, "V1 sequence number 0 is reserved");
        req.n_ifaces = 2;
        req.ifaces[1] = req.ifaces[0];
        strcpy(req.ifaces[1].name, "eth1");
        assert_err(rh_v1_encode(page, &req, 1, &err), err, EINVAL,
                   "V1 carries exactly one interface, request has 2");
        v1_request(&req);
        req.ifaces[0].match = RH_MATCH_MAC;
        memcpy(req.ifaces[0].match_mac, "\x52\x54\0\0\0\1", 6);
        assert_err(rh_v1_encode(page, &req, 1, &err), err, EINVAL,
                   "V1 needs an interface name and a new MAC");
        v1_request(&req);
        req.ifaces[0].has_mac = false;
        memset(req.ifaces[0].mac, 0, 6);
        assert_err(rh_v1_encode(page, &req, 1, &err), err, EINVAL,
                   "V1 needs an interface name and a new MAC");
        v1_request(&req);
        req.addrs[0].family = 6;
        assert_err(rh_v1_encode(page, &req, 1, &err), err, EINVAL, "V1 needs an IPv4 address");
        /* An invalid request is refused, not written. */
        v1_request(&req);
        req.ifaces[0].mac[0] = 0x01;
        assert_err(rh_v1_encode(page, &req, 1, &err), err, EINVAL,
                   "interface 0: MAC 01:aa:bb:cc:dd:01 is not unicast");
        v1_request(&req);
        req.addrs[0].prefix = 33;
        assert_err(rh_v1_encode(page, &req, 1, &err), err, EINVAL, "address 0: prefix /33 exceeds 32");
        for (unsigned i = 0; i < RH_MAILBOX_SIZE; i++)
                assert_int_equal(page[i], 0xee);

        /* A name JSON must escape survives the round trip. */
        v1_request(&req);
        strcpy(req.ifaces[0].name, "a\"b\\c");
        assert_int_equal(rh_v1_write_header(page, "t", &err), 0);
        assert_int_equal(rh_v1_encode(page, &req, 1, &err), 0);
        assert_non_null(strstr((const char *)page + 72, "\"interface_name\":\"a\\\"b\\\\c\""));
        assert_int_equal(rh_v1_decode(page, RH_MAILBOX_SIZE, &got, NULL, &err), 0);
        assert_string_equal(got.ifaces[0].name, "a\"b\\c");
}

static void test_header(void **state)
{
        struct rh_error err = {};
        char tok[40];

        memset(page, 0xee, sizeof(page));
        memset(tok, 'x', sizeof(tok));
        tok[RH_V1_TOKEN_MAX] = '\0';
        assert_int_equal(RH_V1_TOKEN_MAX, 30);
        assert_int_equal(rh_v1_write_header(page, tok, &err), 0);
        assert_memory_equal(page + 34, tok, RH_V1_TOKEN_MAX);
        assert_int_equal(page[63], 'x'); /* a 30-byte token fills +34..+63: no NUL */
        for (unsigned i = 64; i < RH_V1_OFF_JSON; i++)
                assert_int_equal(page[i], 0);
        assert_true(rh_v1_matches(page, RH_MAILBOX_SIZE, tok));
        assert_true(rh_v1_matches(page, RH_MAILBOX_SIZE, NULL));
        tok[29] = '\0';
        assert_false(rh_v1_matches(page, RH_MAILBOX_SIZE, tok)); /* a prefix is not the token */
        memset(page, 0xee, sizeof(page));
        tok[29] = 'x';
        tok[RH_V1_TOKEN_MAX] = 'x';
        tok[RH_V1_TOKEN_MAX + 1] = '\0';
        assert_false(rh_v1_token_valid(tok));
        assert_err(rh_v1_write_header(page, tok, &err), err, EINVAL, "V1 token must be 1..30 bytes");
        assert_err(rh_v1_write_header(page, "", &err), err, EINVAL, "V1 token must be 1..30 bytes");
        assert_err(rh_v1_write_header(page, NULL, &err), err, EINVAL, "V1 token must be 1..30 bytes");
        /* 31 bytes of UTF-8 (15 two-byte characters + 1): refused. */
        assert_false(rh_v1_token_valid("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                                       "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9x"));
        for (unsigned i = 0; i < RH_MAILBOX_SIZE; i++)
                assert_int_equal(page[i], 0xee);

        /* matches: magic with a different last byte; an empty token; a token
         * that fills the area (no NUL) is hypeman's 30-byte token. */
        v1_page("{}", 1);
        assert_true(rh_v1_matches(page, RH_MAILBOX_SIZE, "tok"));
        page[33] = ' ';
        assert_false(rh_v1_matches(page, RH_MAILBOX_SIZE, NULL));
        page[33] = '\0';
        memset(page + 34, 0, RH_V1_OFF_SEQ - 34);
        assert_false(rh_v1_matches(page, RH_MAILBOX_SIZE, NULL));
        memset(page + 34, 'a', RH_V1_OFF_SEQ - 34);
        assert_true(rh_v1_matches(page, RH_MAILBOX_SIZE, NULL));
        assert_true(rh_v1_matches(page, RH_MAILBOX_SIZE, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        assert_false(rh_v1_matches(page, RH_MAILBOX_SIZE, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        /* A rehome page is not a V1 page. */
        memset(page, 0, sizeof(page));
        memcpy(page, "REHOMEMB", 8);
        assert_false(rh_v1_matches(page, RH_MAILBOX_SIZE, NULL));
}

/* Tokens of 1, 24, 29 and 30 bytes, with spaces and UTF-8, the same set as
 * hypeman's: written, matched exactly, read back and decoded; 31 refused. */
static void test_token_sizes(void **state)
{
        static const char *const tokens[] = {
                "t",                                         /* 1 */
                "clone 7 \xc3\xa9t\xc3\xa9 \xe2\x86\x92 fork t",           /* 24 */
                "spaces and UTF-8: \xe2\x82\xac and \xc3\xa9!",          /* 29 */
                "0123456789 \xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9 0123456789", /* 30 */
        };
        static const size_t lens[] = {1, 24, 29, 30};
        struct rh_request req, got;
        struct rh_error err = {};
        char back[RH_V1_TOKEN_MAX + 1];

        for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++) {
                assert_int_equal(strlen(tokens[i]), lens[i]);
                assert_true(rh_v1_token_valid(tokens[i]));
                memset(page, 0xee, sizeof(page));
                assert_int_equal(rh_v1_write_header(page, tokens[i], &err), 0);
                assert_memory_equal(page + 34, tokens[i], lens[i]);
                for (size_t k = 34 + lens[i]; k < RH_V1_OFF_JSON; k++)
                        assert_int_equal(page[k], 0);
                assert_true(rh_v1_matches(page, RH_MAILBOX_SIZE, tokens[i]));
                assert_int_equal(rh_v1_token_read(page, back), lens[i]);
                assert_string_equal(back, tokens[i]);
                v1_request(&req);
                assert_int_equal(rh_v1_encode(page, &req, 1, &err), 0);
                assert_true(rh_v1_matches(page, RH_MAILBOX_SIZE, tokens[i]));
                assert_int_equal(rh_v1_decode(page, RH_MAILBOX_SIZE, &got, NULL, &err), 0);
                assert_v1_equal(&got, &req);
        }
        /* Another token of the same length, and one a byte longer, do not match. */
        assert_false(rh_v1_matches(page, RH_MAILBOX_SIZE, "0123456789 \xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa8 0123456789"));
        assert_false(rh_v1_matches(page, RH_MAILBOX_SIZE, "0123456789 \xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9 0123456789x"));
        assert_false(rh_v1_token_valid("0123456789 \xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9 0123456789x"));
        memset(page, 0xee, sizeof(page));
        assert_err(rh_v1_write_header(page, "0123456789 \xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9 0123456789x", &err), err,
                   EINVAL, "V1 token must be 1..30 bytes");
        assert_int_equal(page[0], 0xee);
}

static void test_decode_good(void **state)
{
        struct rh_request got;
        struct rh_error err = {};
        uint32_t seq = 0;

        /* Whitespace everywhere JSON allows it; the keys in another order. */
        v1_page(" \r\n\t{ \"prefix\" : 24 ,\n \"ipv4\":\"10.0.0.5\"\t,\"mac\" :\"02:AA:bb:cc:dd:01\" } \n",
                42);
        assert_int_equal(rh_v1_decode(page, RH_MAILBOX_SIZE, &got, &seq, &err), 0);
        assert_int_equal(seq, 42);
        assert_int_equal(got.seq, 42);
        assert_int_equal(got.n_ifaces, 1);
        assert_int_equal(got.ifaces[0].match, RH_MATCH_NAME);
        assert_string_equal(got.ifaces[0].name, "eth0"); /* the default */
        assert_true(got.ifaces[0].has_mac);
        assert_memory_equal(got.ifaces[0].mac, "\x02\xaa\xbb\xcc\xdd\x01", 6);
        assert_int_equal(got.n_addrs, 1);
        assert_int_equal(got.addrs[0].prefix, 24);
        assert_memory_equal(got.addrs[0].addr, "\x0a\x00\x00\x05", 4);
        assert_int_equal(got.n_routes, 0);
        assert_false(got.has_ack_udp);
        assert_int_equal(got.flags, RH_REQ_FLUSH_NEIGH | RH_REQ_ANNOUNCE | RH_REQ_REPLACE_ADDRS);

        /* Escapes, unknown keys of every kind (ignored), a null gateway. */
        v1_page("{\"interface_name\":\"e\\u0074h\\u0031\",\"future\":\"\\/x\",\"n\":7,\"b\":true,\"f\":false,"
                "\"z\":null,\"mac\":\"02:aa:bb:cc:dd:01\",\"ipv4\":\"10.0.0.5\",\"prefix\":0,"
                "\"gateway\":null,\"ack_port\":65535}",
                1);
        assert_int_equal(rh_v1_decode(page, RH_MAILBOX_SIZE, &got, NULL, &err), 0);
        assert_string_equal(got.ifaces[0].name, "eth1");
        assert_int_equal(got.addrs[0].prefix, 0);
        assert_int_equal(got.n_routes, 0);
        assert_true(got.has_ack_udp);
        assert_int_equal(got.ack_port, 65535);
        assert_int_equal(got.ack_addr.family, 0); /* the gateway */

        /* A gateway becomes a default route on the interface. */
        v1_page("{\"mac\":\"02:aa:bb:cc:dd:01\",\"ipv4\":\"10.0.0.5\",\"prefix\":24,\"gateway\":\"10.0.0."
                "1\"}",
                1);
        assert_int_equal(rh_v1_decode(page, RH_MAILBOX_SIZE, &got, NULL, &err), 0);
        assert_int_equal(got.n_routes, 1);
        assert_int_equal(got.routes[0].iface, 0);
        assert_int_equal(got.routes[0].family, 4);
        assert_int_equal(got.routes[0].dst_prefix, 0);
        assert_true(got.routes[0].has_gateway);
        assert_memory_equal(got.routes[0].gateway, "\x0a\x00\x00\x01\0\0\0\0\0\0\0\0\0\0\0\0", 16);

        /* Unknown keys may carry anything JSON has: long strings, negative
         * and fractional numbers, arrays, objects (a newer hypeman). */
        char json[1024];
        char longstr[301];
        memset(longstr, 'q', 300);
        longstr[300] = '\0';
        snprintf(json, sizeof(json),
                 "{\"dns\":[\"1.1.1.1\",{\"a\":[1,-2.5e3,true,null]},[]],\"meta\":{},\"long\":\"%s\","
                 "\"a_key_that_is_longer_than_thirty_one_bytes\":-1.0E+2,"
                 "\"mac\":\"02:aa:bb:cc:dd:01\",\"ipv4\":\"10.0.0.5\",\"prefix\":24}",
                 longstr);
        v1_page(json, 1);
        assert_int_equal(rh_v1_decode(page, RH_MAILBOX_SIZE, &got, NULL, &err), 0);
        assert_int_equal(got.addrs[0].prefix, 24);

        /* JSON filling the whole page. */
        memset(page, 0, sizeof(page));
        v1_page("{\"mac\":\"02:aa:bb:cc:dd:01\",\"ipv4\":\"10.0.0.5\",\"prefix\":24}", 1);
        size_t n = strlen((const char *)page + 72);
        memset(page + 72 + n, ' ', RH_V1_JSON_MAX - n);
        unaligned_write_le32(page + RH_V1_OFF_LEN, RH_V1_JSON_MAX);
        assert_int_equal(rh_v1_decode(page, RH_MAILBOX_SIZE, &got, NULL, &err), 0);
}

#define GOOD_TAIL "\"mac\":\"02:aa:bb:cc:dd:01\",\"ipv4\":\"10.0.0.5\",\"prefix\":24"

static void test_decode_bad(void **state)
{
        struct rh_request got;
        struct rh_error err = {};

        /* The page itself. */
        v1_page("{" GOOD_TAIL "}", 1);
        assert_err(rh_v1_decode(page, RH_MAILBOX_SIZE - 1, &got, NULL, &err), err, EMSGSIZE,
                   "V1 mailbox truncated: 4095 of 4096 bytes");
        page[0] = 'h';
        assert_err(rh_v1_decode(page, RH_MAILBOX_SIZE, &got, NULL, &err), err, ENOMSG, "no V1 mailbox magic");
        v1_page("{" GOOD_TAIL "}", 0);
        assert_err(rh_v1_decode(page, RH_MAILBOX_SIZE, &got, NULL, &err), err, ENODATA,
                   "no V1 request (seq 0)");
        v1_page("{" GOOD_TAIL "}", 1);
        unaligned_write_le32(page + RH_V1_OFF_LEN, RH_V1_JSON_MAX + 1);
        assert_err(rh_v1_decode(page, RH_MAILBOX_SIZE, &got, NULL, &err), err, EMSGSIZE,
                   "V1 JSON length 4025 out of range 1..4024");
        unaligned_write_le32(page + RH_V1_OFF_LEN, 0xffffffffu);
        assert_err(rh_v1_decode(page, RH_MAILBOX_SIZE, &got, NULL, &err), err, EMSGSIZE,
                   "V1 JSON length 4294967295 out of range 1..4024");
        unaligned_write_le32(page + RH_V1_OFF_LEN, 0);
        assert_err(rh_v1_decode(page, RH_MAILBOX_SIZE, &got, NULL, &err), err, EMSGSIZE,
                   "V1 JSON length 0 out of range 1..4024");
        /* The length cuts the object short. */
        unaligned_write_le32(page + RH_V1_OFF_LEN, 6); /* {"mac" */
        assert_err(rh_v1_decode(page, RH_MAILBOX_SIZE, &got, NULL, &err), err, EBADMSG,
                   "V1 JSON: expected ':' after \"mac\"");

        /* JSON syntax. */
        expect_v1("[" GOOD_TAIL "]", EBADMSG, "V1 JSON: expected '{'");
        expect_v1("{" GOOD_TAIL, EBADMSG, "V1 JSON: expected ',' or '}'");
        expect_v1("{" GOOD_TAIL ",}", EBADMSG, "V1 JSON: expected a key string");
        expect_v1("{" GOOD_TAIL "} x", EBADMSG, "V1 JSON: trailing bytes after the object");
        expect_v1("{" GOOD_TAIL "}{}", EBADMSG, "V1 JSON: trailing bytes after the object");
        expect_v1("{\"mac\" \"02:aa:bb:cc:dd:01\"}", EBADMSG, "V1 JSON: expected ':' after \"mac\"");
        expect_v1("{mac:1}", EBADMSG, "V1 JSON: expected a key string");
        expect_v1("{\"ma\\qc\":1}", EBADMSG, "V1 JSON: expected a key string");
        expect_v1("{" GOOD_TAIL ",\"gateway\":\"10.0.0.\\x\"}", EBADMSG,
                  "V1 JSON: bad value for \"gateway\"");
        expect_v1("{" GOOD_TAIL ",\"gateway\":\"10.0.0.1\n\"}", EBADMSG,
                  "V1 JSON: bad value for \"gateway\"");
        expect_v1("{" GOOD_TAIL ",\"gateway\":\"\\u0000\"}", EBADMSG, "V1 JSON: bad value for \"gateway\"");
        expect_v1("{" GOOD_TAIL ",\"gateway\":\"\\u00e9\"}", EBADMSG, "V1 JSON: bad value for \"gateway\"");
        expect_v1("{" GOOD_TAIL ",\"gateway\":\"\\u00\"}", EBADMSG, "V1 JSON: bad value for \"gateway\"");
        expect_v1("{" GOOD_TAIL ",\"gateway\":\"10.0.0.1}", EBADMSG, "V1 JSON: bad value for \"gateway\"");
        expect_v1("{" GOOD_TAIL ",\"ack_port\":09}", EBADMSG, "V1 JSON: bad value for \"ack_port\"");
        expect_v1("{" GOOD_TAIL ",\"ack_port\":9.0}", EBADMSG, "V1 JSON: bad value for \"ack_port\"");
        expect_v1("{" GOOD_TAIL ",\"ack_port\":-9}", EBADMSG, "V1 JSON: bad value for \"ack_port\"");
        expect_v1("{" GOOD_TAIL ",\"ack_port\":99999999999999999999}", EBADMSG,
                  "V1 JSON: bad value for \"ack_port\"");
        expect_v1("{" GOOD_TAIL ",\"ack_port\":tru}", EBADMSG, "V1 JSON: bad value for \"ack_port\"");
        /* Unknown keys are skipped, but must still be JSON. */
        expect_v1("{\"x\":[1,}" GOOD_TAIL "}", EBADMSG, "V1 JSON: bad value for \"x\"");
        expect_v1("{\"x\":{\"a\"}," GOOD_TAIL "}", EBADMSG, "V1 JSON: bad value for \"x\"");
        expect_v1("{\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]," GOOD_TAIL "}",
                  EBADMSG, "V1 JSON: bad value for \"x\"");
        expect_v1("{\"x\":-," GOOD_TAIL "}", EBADMSG, "V1 JSON: bad value for \"x\"");
        /* Keys: duplicates, missing, wrong types. */
        expect_v1("{" GOOD_TAIL ",\"mac\":\"02:aa:bb:cc:dd:02\"}", EBADMSG, "V1 JSON: duplicate \"mac\"");
        expect_v1("{\"ipv4\":\"10.0.0.5\",\"prefix\":24}", EBADMSG, "V1 JSON: missing \"mac\"");
        expect_v1("{\"mac\":null,\"ipv4\":\"10.0.0.5\",\"prefix\":24}", EBADMSG, "V1 JSON: missing \"mac\"");
        expect_v1("{\"mac\":\"02:aa:bb:cc:dd:01\",\"prefix\":24}", EBADMSG, "V1 JSON: missing \"ipv4\"");
        expect_v1("{\"mac\":\"02:aa:bb:cc:dd:01\",\"ipv4\":\"10.0.0.5\"}", EBADMSG,
                  "V1 JSON: missing \"prefix\"");
        expect_v1("{}", EBADMSG, "V1 JSON: missing \"mac\"");
        expect_v1("{\"mac\":\"02:aa:bb:cc:dd:01\",\"ipv4\":\"10.0.0.5\",\"prefix\":\"24\"}", EBADMSG,
                  "V1 JSON: \"prefix\" has the wrong type");
        expect_v1("{" GOOD_TAIL ",\"interface_name\":1}", EBADMSG,
                  "V1 JSON: \"interface_name\" has the wrong type");
        expect_v1("{" GOOD_TAIL ",\"gateway\":true}", EBADMSG, "V1 JSON: \"gateway\" has the wrong type");
        expect_v1("{\"mac\":2,\"ipv4\":\"10.0.0.5\",\"prefix\":24}", EBADMSG,
                  "V1 JSON: \"mac\" has the wrong type");
        /* Values. */
        expect_v1("{\"mac\":\"02:aa:bb:cc:dd\",\"ipv4\":\"10.0.0.5\",\"prefix\":24}", EINVAL,
                  "V1: invalid MAC \"02:aa:bb:cc:dd\"");
        expect_v1("{\"mac\":\"01:aa:bb:cc:dd:01\",\"ipv4\":\"10.0.0.5\",\"prefix\":24}", EINVAL,
                  "interface 0: MAC 01:aa:bb:cc:dd:01 is not unicast");
        expect_v1("{\"mac\":\"00:00:00:00:00:00\",\"ipv4\":\"10.0.0.5\",\"prefix\":24}", EINVAL,
                  "interface 0: MAC is all-zero");
        expect_v1("{\"mac\":\"02:aa:bb:cc:dd:01\",\"ipv4\":\"fd00::5\",\"prefix\":24}", EINVAL,
                  "V1: invalid IPv4 address \"fd00::5\"");
        expect_v1("{\"mac\":\"02:aa:bb:cc:dd:01\",\"ipv4\":\"10.0.0.5/24\",\"prefix\":24}", EINVAL,
                  "V1: invalid IPv4 address \"10.0.0.5/24\"");
        expect_v1("{\"mac\":\"02:aa:bb:cc:dd:01\",\"ipv4\":\"10.0.0.5\",\"prefix\":33}", EINVAL,
                  "V1: prefix /33 exceeds 32");
        expect_v1("{\"mac\":\"02:aa:bb:cc:dd:01\",\"ipv4\":\"0.0.0.0\",\"prefix\":24}", EINVAL,
                  "address 0: 0.0.0.0 is not a unicast address");
        expect_v1("{" GOOD_TAIL ",\"gateway\":\"fe80::1\"}", EINVAL, "V1: invalid gateway \"fe80::1\"");
        expect_v1("{" GOOD_TAIL ",\"gateway\":\"224.0.0.1\"}", EINVAL,
                  "route 0: gateway 224.0.0.1 is not a unicast address");
        expect_v1("{" GOOD_TAIL ",\"ack_port\":0}", EINVAL, "V1: ack_port 0 out of range 1..65535");
        expect_v1("{" GOOD_TAIL ",\"ack_port\":65536}", EINVAL, "V1: ack_port 65536 out of range 1..65535");
        expect_v1("{" GOOD_TAIL ",\"interface_name\":\"0123456789abcdef\"}", EINVAL,
                  "V1: interface name too long");
        expect_v1("{" GOOD_TAIL ",\"interface_name\":\"\"}", EINVAL, "interface 0: invalid name");
        expect_v1("{" GOOD_TAIL ",\"interface_name\":\"eth 0\"}", EINVAL, "interface 0: invalid name");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_layout),     cmocka_unit_test(test_encode_choices),
                cmocka_unit_test(test_header),     cmocka_unit_test(test_token_sizes),     cmocka_unit_test(test_decode_good),
                cmocka_unit_test(test_decode_bad),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
