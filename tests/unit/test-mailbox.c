/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the mailbox ABI (include/rehome/mailbox.h): CRC32C, the TLV
 * request encoding (round trip and exact bytes), the arm header, the request
 * header and its ordering fields, the ack record, names and the address
 * helpers. Every failure path is checked for its errno AND its message.
 *
 * The worked example of docs/MAILBOX.md (a hex dump of a complete page) is
 * produced here by example_page(); test_doc_example asserts the dump and that
 * the document still contains it verbatim, so the document cannot drift.
 * `test-mailbox --dump-example` prints the dump.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rehome/mailbox.h"
#include "unaligned.h"

/* The page as the ABI wants it: page-aligned (the seq fields are atomics). */
static _Alignas(4096) uint8_t page[RH_MAILBOX_SIZE];

/* @r failed with -@errnum, and @e holds @errnum and exactly @text. */
#define assert_err(r, e, errnum, text)                                                                       \
        do {                                                                                                 \
                assert_int_equal((r), -(errnum));                                                            \
                assert_int_equal((e).code, (errnum));                                                        \
                assert_string_equal((e).msg, (text));                                                        \
        } while (0)

static void ip4(uint8_t addr[16], uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
        memset(addr, 0, 16);
        addr[0] = a;
        addr[1] = b;
        addr[2] = c;
        addr[3] = d;
}

static void ip6(uint8_t addr[16], const char *s)
{
        struct rh_ipaddr ip;

        assert_int_equal(rh_ip_parse(s, &ip, NULL), 0);
        assert_int_equal(ip.family, 6);
        memcpy(addr, ip.addr, 16);
}

/*
 * The small request whose TLV bytes are computed by hand below: eth0 gets a
 * new MAC and MTU 1500, 10.0.0.5/24, a default route via 10.0.0.1 metric 100,
 * hostname "vm1", flag ANNOUNCE.
 */
static void small_request(struct rh_request *req)
{
        memset(req, 0, sizeof(*req));
        req->n_ifaces = 1;
        req->ifaces[0].match = RH_MATCH_NAME;
        strcpy(req->ifaces[0].name, "eth0");
        req->ifaces[0].has_mac = true;
        memcpy(req->ifaces[0].mac, "\x02\xaa\xbb\xcc\xdd\x01", 6);
        req->ifaces[0].mtu = 1500;
        req->n_addrs = 1;
        req->addrs[0].family = 4;
        req->addrs[0].prefix = 24;
        ip4(req->addrs[0].addr, 10, 0, 0, 5);
        req->n_routes = 1;
        req->routes[0].family = 4;
        req->routes[0].has_gateway = true;
        req->routes[0].metric = 100;
        ip4(req->routes[0].gateway, 10, 0, 0, 1);
        strcpy(req->hostname, "vm1");
        req->flags = RH_REQ_ANNOUNCE;
}

/* Hand-computed TLV encoding of small_request(). */
/* clang-format off */
static const uint8_t small_tlv[] = {
        /* 0x00 IFACE, length 40 */
        0x01, 0x00, 0x28, 0x00,
        0x01, 0x01, 0x00, 0x00,                         /* match NAME, has_mac, reserved */
        'e', 't', 'h', '0', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* name[16] */
        0, 0, 0, 0, 0, 0,                               /* match_mac */
        0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0x01,             /* mac */
        0xdc, 0x05, 0x00, 0x00,                         /* mtu 1500 */
        0x00, 0x00, 0x00, 0x00,                         /* reserved */
        /* 0x2c ADDR, length 20 */
        0x02, 0x00, 0x14, 0x00,
        0x00, 0x04, 0x18, 0x00,                         /* iface 0, v4, /24, reserved */
        10, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        /* 0x44 ROUTE, length 40 */
        0x03, 0x00, 0x28, 0x00,
        0x00, 0x04, 0x00, 0x01,                         /* iface 0, v4, /0, has_gateway */
        0x64, 0x00, 0x00, 0x00,                         /* metric 100 */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* dst */
        10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* gateway */
        /* 0x70 HOSTNAME, length 3, one byte of padding */
        0x06, 0x00, 0x03, 0x00,
        'v', 'm', '1', 0x00,
        /* 0x78 FLAGS, length 4 */
        0x07, 0x00, 0x04, 0x00,
        0x02, 0x00, 0x00, 0x00,
};
/* clang-format on */
_Static_assert(sizeof(small_tlv) == 128, "small request is 128 bytes");

/* Offsets into small_tlv used by the bad-input tests. */
#define S_IFACE 0x04u /* value of the IFACE record */
#define S_ADDR  0x30u /* value of the ADDR record */
#define S_ROUTE 0x48u /* value of the ROUTE record */
#define S_HOST  0x70u /* header of the HOSTNAME record */
#define S_FLAGS 0x78u /* header of the FLAGS record */

/* A request that uses every field. */
static void full_request(struct rh_request *req)
{
        memset(req, 0, sizeof(*req));
        req->flags = RH_REQ_FLUSH_NEIGH | RH_REQ_ANNOUNCE | RH_REQ_ACK_EARLY | RH_REQ_REPLACE_ADDRS;

        req->n_ifaces = 3;
        req->ifaces[0].match = RH_MATCH_NAME;
        strcpy(req->ifaces[0].name, "eth0");
        req->ifaces[0].has_mac = true;
        memcpy(req->ifaces[0].mac, "\x02\x00\x00\x00\x00\x10", 6);
        req->ifaces[0].mtu = 9000;
        req->ifaces[1].match = RH_MATCH_MAC;
        memcpy(req->ifaces[1].match_mac, "\x52\x54\x00\x12\x34\x56", 6);
        req->ifaces[1].has_mac = true;
        memcpy(req->ifaces[1].mac, "\x52\x54\x00\xab\xcd\xef", 6);
        req->ifaces[2].match = RH_MATCH_NAME | RH_MATCH_MAC;
        strcpy(req->ifaces[2].name, "enp0s3.100");
        memcpy(req->ifaces[2].match_mac, "\x0a\x00\x00\x00\x00\x01", 6);
        req->ifaces[2].mtu = 68;

        req->n_addrs = 4;
        req->addrs[0] = (struct rh_addr){.iface = 0, .family = 4, .prefix = 24};
        ip4(req->addrs[0].addr, 10, 1, 2, 3);
        req->addrs[1] = (struct rh_addr){.iface = 0, .family = 6, .prefix = 64};
        ip6(req->addrs[1].addr, "fd00:1::3");
        req->addrs[2] = (struct rh_addr){.iface = 1, .family = 4, .prefix = 32};
        ip4(req->addrs[2].addr, 192, 168, 7, 9);
        req->addrs[3] = (struct rh_addr){.iface = 2, .family = 6, .prefix = 128};
        ip6(req->addrs[3].addr, "2001:db8::1");

        req->n_routes = 4;
        req->routes[0] = (struct rh_route){.iface = 0, .family = 4, .has_gateway = true, .metric = 10};
        ip4(req->routes[0].gateway, 10, 1, 2, 1);
        req->routes[1] = (struct rh_route){.iface = 0, .family = 6, .has_gateway = true};
        ip6(req->routes[1].gateway, "fe80::1");
        req->routes[2] = (struct rh_route){.iface = 1, .family = 4, .dst_prefix = 16, .metric = 7};
        ip4(req->routes[2].dst, 172, 16, 0, 0);
        req->routes[3] = (struct rh_route){
                .iface = 2, .family = 6, .dst_prefix = 48, .has_gateway = true, .metric = 0xffffffffu};
        ip6(req->routes[3].dst, "2001:db8:aa::");
        ip6(req->routes[3].gateway, "2001:db8::fe");

        req->n_dns = 2;
        req->dns[0].family = 4;
        ip4(req->dns[0].addr, 10, 1, 2, 53);
        req->dns[1].family = 6;
        ip6(req->dns[1].addr, "fd00:1::53");
        req->n_search = 2;
        strcpy(req->search[0], "corp.example.com");
        strcpy(req->search[1], "example");
        strcpy(req->hostname, "clone-0042.example");
        req->has_ack_udp = true;
        req->ack_addr.family = 4;
        ip4(req->ack_addr.addr, 10, 1, 2, 1);
        req->ack_port = 9999;
}

static void assert_request_equal(const struct rh_request *a, const struct rh_request *b)
{
        assert_int_equal(a->seq, b->seq);
        assert_int_equal(a->nonce, b->nonce);
        assert_int_equal(a->flags, b->flags);
        assert_int_equal(a->n_ifaces, b->n_ifaces);
        assert_int_equal(a->n_addrs, b->n_addrs);
        assert_int_equal(a->n_routes, b->n_routes);
        assert_int_equal(a->n_dns, b->n_dns);
        assert_int_equal(a->n_search, b->n_search);
        for (unsigned i = 0; i < a->n_ifaces; i++) {
                const struct rh_iface *x = &a->ifaces[i], *y = &b->ifaces[i];
                assert_int_equal(x->match, y->match);
                assert_memory_equal(x->name, y->name, RH_IFNAME_MAX);
                assert_memory_equal(x->match_mac, y->match_mac, 6);
                assert_int_equal(x->has_mac, y->has_mac);
                assert_memory_equal(x->mac, y->mac, 6);
                assert_int_equal(x->mtu, y->mtu);
        }
        for (unsigned i = 0; i < a->n_addrs; i++) {
                assert_int_equal(a->addrs[i].iface, b->addrs[i].iface);
                assert_int_equal(a->addrs[i].family, b->addrs[i].family);
                assert_int_equal(a->addrs[i].prefix, b->addrs[i].prefix);
                assert_memory_equal(a->addrs[i].addr, b->addrs[i].addr, 16);
        }
        for (unsigned i = 0; i < a->n_routes; i++) {
                assert_int_equal(a->routes[i].iface, b->routes[i].iface);
                assert_int_equal(a->routes[i].family, b->routes[i].family);
                assert_int_equal(a->routes[i].dst_prefix, b->routes[i].dst_prefix);
                assert_int_equal(a->routes[i].has_gateway, b->routes[i].has_gateway);
                assert_int_equal(a->routes[i].metric, b->routes[i].metric);
                assert_memory_equal(a->routes[i].dst, b->routes[i].dst, 16);
                assert_memory_equal(a->routes[i].gateway, b->routes[i].gateway, 16);
        }
        for (unsigned i = 0; i < a->n_dns; i++) {
                assert_int_equal(a->dns[i].family, b->dns[i].family);
                assert_memory_equal(a->dns[i].addr, b->dns[i].addr, 16);
        }
        for (unsigned i = 0; i < a->n_search; i++)
                assert_string_equal(a->search[i], b->search[i]);
        assert_string_equal(a->hostname, b->hostname);
        assert_int_equal(a->has_ack_udp, b->has_ack_udp);
        assert_int_equal(a->ack_addr.family, b->ack_addr.family);
        assert_memory_equal(a->ack_addr.addr, b->ack_addr.addr, 16);
        assert_int_equal(a->ack_port, b->ack_port);
}

/* ---- CRC32C ---- */

static void test_crc32c(void **state)
{
        /* The check value of CRC-32C (Castagnoli). */
        assert_int_equal(rh_crc32c(0, "123456789", 9), 0xe3069283u);
        assert_int_equal(rh_crc32c(0, "", 0), 0);
        assert_int_equal(rh_crc32c(0, NULL, 0), 0);
        /* Continuation: feeding the pieces gives the CRC of the whole. */
        assert_int_equal(rh_crc32c(rh_crc32c(0, "1234", 4), "56789", 5), 0xe3069283u);
        assert_int_equal(rh_crc32c(rh_crc32c(0, "123456789", 9), "", 0), 0xe3069283u);
        /* RFC 3720 B.4 test vectors: 32 bytes of zeros, of 0xff, ascending. */
        uint8_t buf[32];
        memset(buf, 0, sizeof(buf));
        assert_int_equal(rh_crc32c(0, buf, sizeof(buf)), 0x8a9136aau);
        memset(buf, 0xff, sizeof(buf));
        assert_int_equal(rh_crc32c(0, buf, sizeof(buf)), 0x62a8ab43u);
        for (int i = 0; i < 32; i++)
                buf[i] = (uint8_t)i;
        assert_int_equal(rh_crc32c(0, buf, sizeof(buf)), 0x46dd794eu);
        assert_int_equal(rh_crc32c(0, "a", 1), 0xc1d04330u);
}

/* ---- TLV encode / decode ---- */

static void test_encode_small_exact_bytes(void **state)
{
        struct rh_request req, dec;
        struct rh_error err = {};
        uint8_t buf[RH_PAYLOAD_MAX];
        size_t len = 0;

        small_request(&req);
        memset(buf, 0xee, sizeof(buf));
        assert_int_equal(rh_request_encode(&req, buf, sizeof(buf), &len, &err), 0);
        assert_int_equal(len, sizeof(small_tlv));
        assert_memory_equal(buf, small_tlv, sizeof(small_tlv));
        assert_int_equal(buf[len], 0xee); /* nothing written past the end */

        /* Exactly enough room works; one byte less is -ENOBUFS. */
        assert_int_equal(rh_request_encode(&req, buf, sizeof(small_tlv), &len, &err), 0);
        len = 12345;
        assert_err(rh_request_encode(&req, buf, sizeof(small_tlv) - 1, &len, &err), err, ENOBUFS,
                   "encoded request does not fit in 127 bytes");
        assert_int_equal(len, 12345);

        memset(&dec, 0x5a, sizeof(dec));
        assert_int_equal(rh_request_decode(small_tlv, sizeof(small_tlv), &dec, &err), 0);
        assert_request_equal(&dec, &req);
}

static void test_round_trip_full(void **state)
{
        struct rh_request req, dec;
        struct rh_error err = {};
        uint8_t buf[RH_PAYLOAD_MAX];
        size_t len = 0;

        full_request(&req);
        assert_int_equal(rh_request_validate(&req, &err), 0);
        assert_int_equal(rh_request_encode(&req, buf, sizeof(buf), &len, &err), 0);
        /* 3 ifaces*44 + 4 addrs*24 + 4 routes*44 + 2 dns*24 + search 20+12 + hostname 24
         * + flags 8 + ack 24 */
        assert_int_equal(len, 3 * 44 + 4 * 24 + 4 * 44 + 2 * 24 + 20 + 12 + 24 + 8 + 24);
        memset(&dec, 0, sizeof(dec));
        assert_int_equal(rh_request_decode(buf, len, &dec, &err), 0);
        assert_request_equal(&dec, &req);
        assert_int_equal(dec.seq, 0);
        assert_int_equal(dec.nonce, 0);

        /* The largest request there is fits RH_PAYLOAD_MAX, as the header promises. */
        memset(&req, 0, sizeof(req));
        req.n_ifaces = RH_MAX_IFACES;
        for (unsigned i = 0; i < RH_MAX_IFACES; i++) {
                req.ifaces[i].match = RH_MATCH_NAME;
                snprintf(req.ifaces[i].name, RH_IFNAME_MAX, "eth%u-xxxxxxxxx", i);
        }
        req.n_addrs = RH_MAX_ADDRS;
        for (unsigned i = 0; i < RH_MAX_ADDRS; i++) {
                req.addrs[i].family = 6;
                req.addrs[i].prefix = 64;
                ip6(req.addrs[i].addr, "fd00::1");
                req.addrs[i].addr[15] = (uint8_t)(i + 1);
        }
        req.n_routes = RH_MAX_ROUTES;
        for (unsigned i = 0; i < RH_MAX_ROUTES; i++) {
                req.routes[i].family = 6;
                req.routes[i].dst_prefix = 128;
                ip6(req.routes[i].dst, "fd00::1");
                req.routes[i].dst[15] = (uint8_t)(i + 1);
        }
        req.n_dns = RH_MAX_DNS;
        for (unsigned i = 0; i < RH_MAX_DNS; i++) {
                req.dns[i].family = 6;
                ip6(req.dns[i].addr, "fd00::53");
        }
        req.n_search = RH_MAX_SEARCH;
        for (unsigned i = 0; i < RH_MAX_SEARCH; i++) {
                /* 253 characters: four 62-char labels with dots, plus "x" */
                char *s = req.search[i];
                memset(s, 'a', RH_SEARCH_MAX);
                s[62] = s[125] = s[188] = s[251] = '.';
                s[RH_SEARCH_MAX] = '\0';
                s[0] = (char)('a' + i);
        }
        /* 64 characters (the maximum) in two labels: one 64-char label is too long. */
        memset(req.hostname, 'h', RH_HOSTNAME_MAX);
        req.hostname[30] = '.';
        req.hostname[RH_HOSTNAME_MAX] = '\0';
        req.flags = RH_REQ_FLAGS_KNOWN_;
        req.has_ack_udp = true;
        req.ack_addr.family = 6;
        ip6(req.ack_addr.addr, "fd00::1");
        req.ack_port = 1;
        assert_int_equal(rh_request_encode(&req, buf, sizeof(buf), &len, &err), 0);
        assert_int_equal(len, 4 * 44 + 16 * 24 + 16 * 44 + 4 * 24 + 6 * 260 + 68 + 8 + 24);
        assert_true(len <= RH_PAYLOAD_MAX);
        assert_int_equal(rh_request_decode(buf, len, &dec, &err), 0);
        assert_request_equal(&dec, &req);
}

/* Decode @buf and expect failure @errnum with @text; the output must stay
 * untouched. A macro, so that a failure names the caller's line. */
#define expect_decode(buf, len, errnum, text)                                                                \
        do {                                                                                                 \
                struct rh_request dec_, untouched_;                                                          \
                struct rh_error err_ = {};                                                                   \
                memset(&dec_, 0x5a, sizeof(dec_));                                                           \
                memcpy(&untouched_, &dec_, sizeof(dec_));                                                    \
                assert_err(rh_request_decode((buf), (len), &dec_, &err_), err_, errnum, text);               \
                assert_memory_equal(&dec_, &untouched_, sizeof(dec_));                                       \
        } while (0)

static void test_decode_framing(void **state)
{
        uint8_t buf[RH_PAYLOAD_MAX + 8];

        memset(buf, 0, sizeof(buf));
        memcpy(buf, small_tlv, sizeof(small_tlv));
        expect_decode(buf, RH_PAYLOAD_MAX + 1, EMSGSIZE, "payload length 3297 exceeds 3296");
        /* An empty payload names no interface. */
        expect_decode(buf, 0, EINVAL, "request names no interface");
        /* Two stray bytes after the last record: a truncated header. */
        buf[128] = 0x07;
        expect_decode(buf, 130, EMSGSIZE, "record 5: truncated header at offset 128");
        expect_decode(buf, 131, EMSGSIZE, "record 5: truncated header at offset 128");
        /* The last record cut short, and the first one. */
        expect_decode(buf, 127, EMSGSIZE, "record 4: length 4 runs past the payload end");
        expect_decode(buf, 124, EMSGSIZE, "record 4: length 4 runs past the payload end");
        expect_decode(buf, 43, EMSGSIZE, "record 0: length 40 runs past the payload end");
        expect_decode(buf, 3, EMSGSIZE, "record 0: truncated header at offset 0");
        /* A length that would run past the page. */
        unaligned_write_le16(buf + 2, 0xffff);
        expect_decode(buf, 128, EMSGSIZE, "record 0: length 65535 runs past the payload end");
}

static void test_decode_bad_records(void **state)
{
        uint8_t buf[256];

#define RESET() (memset(buf, 0, sizeof(buf)), memcpy(buf, small_tlv, sizeof(small_tlv)))
        /* Wrong fixed length: the ADDR record says 16 (and carries 16). */
        RESET();
        unaligned_write_le16(buf + S_ADDR - 2, 16);
        memmove(buf + S_ADDR + 16, buf + S_ADDR + 20, 128 - (S_ADDR + 20));
        expect_decode(buf, 124, EBADMSG, "record 1 (type 2): length 16, expected 20");
        RESET();
        unaligned_write_le16(buf + S_FLAGS + 2, 8);
        expect_decode(buf, 132, EBADMSG, "record 4 (type 7): length 8, expected 4");
        /* Unknown types, including 0 and the first one past the end. */
        RESET();
        unaligned_write_le16(buf + S_FLAGS, 11);
        expect_decode(buf, 128, EBADMSG, "record 4: unknown type 11");
        /* RH_TLV_REALTIME is 8 bytes. */
        RESET();
        unaligned_write_le16(buf + S_FLAGS, 9);
        expect_decode(buf, 128, EBADMSG, "record 4 (type 9): length 4, expected 8");
        RESET();
        unaligned_write_le16(buf + S_FLAGS, 0);
        expect_decode(buf, 128, EBADMSG, "record 4: unknown type 0");
        RESET();
        unaligned_write_le16(buf + S_FLAGS, 0xffff);
        expect_decode(buf, 128, EBADMSG, "record 4: unknown type 65535");
        /* Nonzero padding after "vm1". */
        RESET();
        buf[S_HOST + 4 + 3] = 0x20;
        expect_decode(buf, 128, EBADMSG, "record 3: nonzero padding");
        /* Reserved bytes. */
        RESET();
        buf[S_IFACE + 2] = 1;
        expect_decode(buf, 128, EBADMSG, "record 0: reserved interface bytes set");
        RESET();
        buf[S_IFACE + 39] = 0x80;
        expect_decode(buf, 128, EBADMSG, "record 0: reserved interface bytes set");
        RESET();
        buf[S_IFACE + 1] = 2; /* has_mac is a boolean */
        expect_decode(buf, 128, EBADMSG, "record 0: reserved interface bytes set");
        RESET();
        buf[S_ADDR + 3] = 1;
        expect_decode(buf, 128, EBADMSG, "record 1: reserved address byte set");
        RESET();
        buf[S_ROUTE + 3] = 2;
        expect_decode(buf, 128, EBADMSG, "record 2: bad has_gateway 2");
        /* Interface name: not terminated, junk after the NUL, set without NAME match. */
        RESET();
        memset(buf + S_IFACE + 4, 'x', 16);
        expect_decode(buf, 128, EBADMSG, "record 0: interface name not terminated");
        RESET();
        buf[S_IFACE + 4 + 10] = 'x';
        expect_decode(buf, 128, EBADMSG, "record 0: interface name not NUL-padded");
        RESET();
        buf[S_IFACE] = RH_MATCH_MAC;
        buf[S_IFACE + 20] = 0x02;
        expect_decode(buf, 128, EBADMSG, "record 0: name set without name match");
        /* MAC bytes that the flags say are unused: they would not survive re-encoding. */
        RESET();
        buf[S_IFACE + 20] = 0x02;
        expect_decode(buf, 128, EBADMSG, "record 0: match MAC set without MAC match");
        RESET();
        buf[S_IFACE + 1] = 0;
        expect_decode(buf, 128, EBADMSG, "record 0: MAC set without has_mac");
        /* Hostname: NUL inside, too long, twice. */
        RESET();
        buf[S_HOST + 5] = 0;
        expect_decode(buf, 128, EBADMSG, "record 3: hostname contains a NUL byte");
        RESET();
        buf[S_HOST + 2] = 0; /* length 0 */
        memmove(buf + S_HOST + 4, buf + S_HOST + 8, 8);
        expect_decode(buf, 124, EBADMSG, "record 3: hostname length 0 out of range 1..64");
        RESET();
        memcpy(buf + 128, "\x06\x00\x02\x00vm\x00\x00", 8);
        expect_decode(buf, 136, EBADMSG, "record 5: second hostname");
#undef RESET
}

static void test_decode_bad_values(void **state)
{
        uint8_t buf[256];

#define RESET() (memset(buf, 0, sizeof(buf)), memcpy(buf, small_tlv, sizeof(small_tlv)))
        /* MACs: multicast, all-zero. */
        RESET();
        buf[S_IFACE + 26] = 0x03;
        expect_decode(buf, 128, EINVAL, "interface 0: MAC 03:aa:bb:cc:dd:01 is not unicast");
        RESET();
        memset(buf + S_IFACE + 26, 0, 6);
        expect_decode(buf, 128, EINVAL, "interface 0: MAC is all-zero");
        /* Empty match (name cleared too), unknown match bits. */
        RESET();
        buf[S_IFACE] = 0;
        memset(buf + S_IFACE + 4, 0, 16);
        expect_decode(buf, 128, EINVAL, "interface 0: empty match (neither name nor MAC)");
        RESET();
        buf[S_IFACE] = RH_MATCH_NAME | 4;
        expect_decode(buf, 128, EINVAL, "interface 0: unknown match bits 0x5");
        RESET();
        buf[S_IFACE + 4] = 0; /* empty name */
        memset(buf + S_IFACE + 4, 0, 16);
        expect_decode(buf, 128, EINVAL, "interface 0: invalid name");
        RESET();
        buf[S_IFACE + 5] = '/';
        expect_decode(buf, 128, EINVAL, "interface 0: invalid name");
        RESET();
        unaligned_write_le32(buf + S_IFACE + 32, 67);
        expect_decode(buf, 128, EINVAL, "interface 0: MTU 67 out of range 68..65535");
        /* Prefixes past the family width. */
        RESET();
        buf[S_ADDR + 2] = 33;
        expect_decode(buf, 128, EINVAL, "address 0: prefix /33 exceeds 32");
        RESET();
        buf[S_ADDR + 1] = 6;
        buf[S_ADDR + 2] = 129;
        expect_decode(buf, 128, EINVAL, "address 0: prefix /129 exceeds 128");
        RESET();
        buf[S_ADDR + 1] = 5;
        expect_decode(buf, 128, EINVAL, "address 0: unknown family 5");
        RESET();
        buf[S_ADDR + 2] = 32;
        buf[S_ADDR + 1] = 6;
        buf[S_ADDR + 2] = 128;
        buf[S_ADDR + 4] = 0xff;
        expect_decode(buf, 128, EINVAL, "address 0: ff00:5:: is not a unicast address");
        RESET();
        buf[S_ADDR + 4] = 224;
        expect_decode(buf, 128, EINVAL, "address 0: 224.0.0.5 is not a unicast address");
        RESET();
        buf[S_ADDR + 19] = 1; /* v4 uses only the first 4 bytes */
        expect_decode(buf, 128, EINVAL, "address 0: IPv4 address has stray bytes");
        RESET();
        buf[S_ROUTE + 2] = 33;
        expect_decode(buf, 128, EINVAL, "route 0: prefix /33 exceeds 32");
        /* Interface index out of range. */
        RESET();
        buf[S_ADDR] = 1;
        expect_decode(buf, 128, EINVAL, "address 0: interface index 1 out of range");
        RESET();
        buf[S_ROUTE] = 4;
        expect_decode(buf, 128, EINVAL, "route 0: interface index 4 out of range");
        /* Host bits in a route destination. */
        RESET();
        buf[S_ROUTE + 2] = 24;
        buf[S_ROUTE + 8] = 10;
        buf[S_ROUTE + 11] = 5;
        expect_decode(buf, 128, EINVAL, "route 0: destination 10.0.0.5/24 has host bits set");
        RESET();
        buf[S_ROUTE + 2] = 8;
        buf[S_ROUTE + 8] = 10;
        buf[S_ROUTE + 9] = 0x80;
        expect_decode(buf, 128, EINVAL, "route 0: destination 10.128.0.0/8 has host bits set");
        RESET();
        memset(buf + S_ROUTE + 24, 0, 4);
        expect_decode(buf, 128, EINVAL, "route 0: gateway 0.0.0.0 is not a unicast address");
        RESET();
        buf[S_ROUTE + 3] = 0;
        expect_decode(buf, 128, EINVAL, "route 0: gateway bytes set without has_gateway");
        /* Hostnames. */
        RESET();
        buf[S_HOST + 4] = '-';
        expect_decode(buf, 128, EINVAL, "invalid hostname");
        RESET();
        buf[S_HOST + 5] = '_';
        expect_decode(buf, 128, EINVAL, "invalid hostname");
        RESET();
        buf[S_HOST + 5] = '.';
        buf[S_HOST + 6] = '.';
        expect_decode(buf, 128, EINVAL, "invalid hostname");
        /* Unknown flags. */
        RESET();
        unaligned_write_le32(buf + S_FLAGS + 4, RH_REQ_ANNOUNCE | 0x20 | 0x80000000u);
        expect_decode(buf, 128, EINVAL, "unknown request flags 0x80000020");
#undef RESET
}

/* Append one TLV record to @buf at *@len. */
static void tlv(uint8_t *buf, size_t *len, uint16_t type, uint16_t vlen, const void *value)
{
        unaligned_write_le16(buf + *len, type);
        unaligned_write_le16(buf + *len + 2, vlen);
        memset(buf + *len + 4, 0, (vlen + 3u) & ~3u);
        if (value)
                memcpy(buf + *len + 4, value, vlen);
        *len += 4 + ((vlen + 3u) & ~3u);
}

static void test_decode_limits(void **state)
{
        uint8_t buf[RH_PAYLOAD_MAX], v[40];
        size_t len;

        /* Interface records: "eth0", "eth1", ... by name. */
#define IFACE(n)                                                                                             \
        do {                                                                                                 \
                uint8_t iv_[40] = {RH_MATCH_NAME};                                                           \
                snprintf((char *)iv_ + 4, 16, "eth%u", (unsigned)(n));                                       \
                tlv(buf, &len, RH_TLV_IFACE, 40, iv_);                                                       \
        } while (0)
        len = 0;
        for (unsigned i = 0; i < 5; i++)
                IFACE(i);
        expect_decode(buf, len, E2BIG, "too many interfaces (max 4)");

        len = 0;
        IFACE(0);
        for (unsigned i = 0; i < 17; i++) {
                memset(v, 0, sizeof(v));
                v[1] = 4;
                v[2] = 32;
                v[4] = 10;
                v[7] = (uint8_t)(i + 1);
                tlv(buf, &len, RH_TLV_ADDR, 20, v);
        }
        expect_decode(buf, len, E2BIG, "too many addresses (max 16)");

        len = 0;
        IFACE(0);
        for (unsigned i = 0; i < 17; i++) {
                memset(v, 0, sizeof(v));
                v[1] = 4;
                v[2] = 32;
                v[8] = 10;
                v[11] = (uint8_t)(i + 1);
                tlv(buf, &len, RH_TLV_ROUTE, 40, v);
        }
        expect_decode(buf, len, E2BIG, "too many routes (max 16)");

        len = 0;
        IFACE(0);
        for (unsigned i = 0; i < 5; i++) {
                memset(v, 0, sizeof(v));
                v[0] = 4;
                v[4] = 10;
                v[7] = (uint8_t)(i + 1);
                tlv(buf, &len, RH_TLV_DNS, 20, v);
        }
        expect_decode(buf, len, E2BIG, "too many DNS servers (max 4)");

        len = 0;
        IFACE(0);
        for (unsigned i = 0; i < 7; i++)
                tlv(buf, &len, RH_TLV_SEARCH, 3, "a.b");
        expect_decode(buf, len, E2BIG, "too many search domains (max 6)");

        /* DNS and ack records: reserved bytes, bad addresses. */
        len = 0;
        IFACE(0);
        memset(v, 0, sizeof(v));
        v[0] = 4;
        v[2] = 1;
        v[4] = 10;
        tlv(buf, &len, RH_TLV_DNS, 20, v);
        expect_decode(buf, len, EBADMSG, "record 1: reserved DNS bytes set");
        len = 0;
        IFACE(0);
        memset(v, 0, sizeof(v));
        v[0] = 4;
        tlv(buf, &len, RH_TLV_DNS, 20, v);
        expect_decode(buf, len, EINVAL, "DNS server 0: unspecified address");
        len = 0;
        IFACE(0);
        memset(v, 0, sizeof(v));
        v[0] = 5;
        v[4] = 1;
        tlv(buf, &len, RH_TLV_DNS, 20, v);
        expect_decode(buf, len, EINVAL, "DNS server 0: invalid address");

        len = 0;
        IFACE(0);
        memset(v, 0, sizeof(v));
        v[0] = 4;
        v[1] = 1;
        unaligned_write_le16(v + 2, 9999);
        v[4] = 10;
        tlv(buf, &len, RH_TLV_ACK_UDP, 20, v);
        expect_decode(buf, len, EBADMSG, "record 1: reserved ack byte set");
        v[1] = 0;
        unaligned_write_le16(v + 2, 0);
        len = 0;
        IFACE(0);
        tlv(buf, &len, RH_TLV_ACK_UDP, 20, v);
        expect_decode(buf, len, EINVAL, "ack port is 0");
        unaligned_write_le16(v + 2, 9999);
        tlv(buf, &len, RH_TLV_ACK_UDP, 20, v);
        expect_decode(buf, len, EBADMSG, "record 2: second ack address");
        /* Family 0 means "the default gateway": the address bytes must then be zero. */
        len = 0;
        IFACE(0);
        v[0] = 0;
        tlv(buf, &len, RH_TLV_ACK_UDP, 20, v);
        expect_decode(buf, len, EINVAL, "ack address is invalid");

        /* Search domain: too long (254), bad characters. */
        char longname[256];
        memset(longname, 'a', sizeof(longname));
        len = 0;
        IFACE(0);
        tlv(buf, &len, RH_TLV_SEARCH, 254, longname);
        expect_decode(buf, len, EBADMSG, "record 1: search domain length 254 out of range 1..253");
        len = 0;
        IFACE(0);
        tlv(buf, &len, RH_TLV_SEARCH, 5, "a b.c");
        expect_decode(buf, len, EINVAL, "search domain 0: invalid domain name");

        /* A hostname label of 64 characters. */
        len = 0;
        IFACE(0);
        tlv(buf, &len, RH_TLV_HOSTNAME, 64, longname);
        expect_decode(buf, len, EINVAL, "invalid hostname");

        /* Two identical interfaces. */
        len = 0;
        IFACE(0);
        IFACE(0);
        expect_decode(buf, len, EINVAL, "interface 1: duplicate of interface 0");

        /* A minimal valid request: one interface by name, nothing else. */
        struct rh_request dec;
        struct rh_error err = {};
        len = 0;
        IFACE(0);
        assert_int_equal(rh_request_decode(buf, len, &dec, &err), 0);
        assert_int_equal(dec.n_ifaces, 1);
        assert_string_equal(dec.ifaces[0].name, "eth0");
        assert_int_equal(dec.n_addrs + dec.n_routes + dec.n_dns + dec.n_search, 0);
        assert_int_equal(dec.flags, 0);
        assert_false(dec.has_ack_udp);
        /* Several FLAGS records are OR-ed. */
        uint8_t f[4];
        unaligned_write_le32(f, RH_REQ_ANNOUNCE);
        tlv(buf, &len, RH_TLV_FLAGS, 4, f);
        unaligned_write_le32(f, RH_REQ_FLUSH_NEIGH);
        tlv(buf, &len, RH_TLV_FLAGS, 4, f);
        assert_int_equal(rh_request_decode(buf, len, &dec, &err), 0);
        assert_int_equal(dec.flags, RH_REQ_ANNOUNCE | RH_REQ_FLUSH_NEIGH);
#undef IFACE
}

static void test_validate(void **state)
{
        struct rh_request req;
        struct rh_error err = {};
        uint8_t buf[RH_PAYLOAD_MAX];
        size_t len = 0;

        small_request(&req);
        assert_int_equal(rh_request_validate(&req, NULL), 0);
        req.n_ifaces = 0;
        assert_err(rh_request_validate(&req, &err), err, EINVAL, "request names no interface");
        req.n_ifaces = 5;
        assert_err(rh_request_validate(&req, &err), err, E2BIG, "too many interfaces: 5 (max 4)");
        small_request(&req);
        req.n_addrs = 17;
        assert_err(rh_request_validate(&req, &err), err, E2BIG, "too many addresses: 17 (max 16)");
        small_request(&req);
        req.n_routes = 17;
        assert_err(rh_request_validate(&req, &err), err, E2BIG, "too many routes: 17 (max 16)");
        small_request(&req);
        req.n_dns = 5;
        assert_err(rh_request_validate(&req, &err), err, E2BIG, "too many DNS servers: 5 (max 4)");
        small_request(&req);
        req.n_search = 7;
        assert_err(rh_request_validate(&req, &err), err, E2BIG, "too many search domains: 7 (max 6)");
        small_request(&req);
        req.ifaces[0].match = 0;
        assert_err(rh_request_validate(&req, &err), err, EINVAL,
                   "interface 0: empty match (neither name nor MAC)");
        small_request(&req);
        req.ifaces[0].match = RH_MATCH_MAC;
        assert_err(rh_request_validate(&req, &err), err, EINVAL, "interface 0: match MAC is all-zero");
        small_request(&req);
        memset(req.ifaces[0].name, 'x', RH_IFNAME_MAX); /* not terminated */
        assert_err(rh_request_validate(&req, &err), err, EINVAL, "interface 0: invalid name");
        small_request(&req);
        strcpy(req.ifaces[0].name, "..");
        assert_err(rh_request_validate(&req, &err), err, EINVAL, "interface 0: invalid name");
        small_request(&req);
        req.ifaces[0].mac[0] = 0x01;
        assert_err(rh_request_validate(&req, &err), err, EINVAL,
                   "interface 0: MAC 01:aa:bb:cc:dd:01 is not unicast");
        small_request(&req);
        req.ifaces[0].mtu = 65536;
        assert_err(rh_request_validate(&req, &err), err, EINVAL,
                   "interface 0: MTU 65536 out of range 68..65535");
        small_request(&req);
        req.addrs[0].family = 0;
        assert_err(rh_request_validate(&req, &err), err, EINVAL, "address 0: unknown family 0");
        small_request(&req);
        req.routes[0].family = 6;
        req.routes[0].dst_prefix = 129;
        assert_err(rh_request_validate(&req, &err), err, EINVAL, "route 0: prefix /129 exceeds 128");
        small_request(&req);
        req.routes[0].family = 6;
        req.routes[0].dst_prefix = 64;
        ip6(req.routes[0].dst, "2001:db8::1");
        req.routes[0].has_gateway = false;
        memset(req.routes[0].gateway, 0, 16);
        assert_err(rh_request_validate(&req, &err), err, EINVAL,
                   "route 0: destination 2001:db8::1/64 has host bits set");
        small_request(&req);
        req.routes[0].gateway[0] = 239;
        assert_err(rh_request_validate(&req, &err), err, EINVAL,
                   "route 0: gateway 239.0.0.1 is not a unicast address");
        small_request(&req);
        strcpy(req.hostname, "a..b");
        assert_err(rh_request_validate(&req, &err), err, EINVAL, "invalid hostname");
        small_request(&req);
        req.flags = 0x20; /* the first bit past RH_REQ_NEW_MACHINE_ID */
        assert_err(rh_request_validate(&req, &err), err, EINVAL, "unknown request flags 0x20");
        small_request(&req);
        req.has_ack_udp = true;
        req.ack_port = 9;
        req.ack_addr.family = 7;
        assert_err(rh_request_validate(&req, &err), err, EINVAL, "ack address is invalid");
        req.ack_addr.family = 0; /* the default gateway (V1 semantics) */
        assert_int_equal(rh_request_validate(&req, &err), 0);
        req.ack_port = 0;
        assert_err(rh_request_validate(&req, &err), err, EINVAL, "ack port is 0");

        /* encode validates first and leaves the buffer and *ret_len alone. */
        small_request(&req);
        req.addrs[0].prefix = 40;
        memset(buf, 0xee, sizeof(buf));
        len = 777;
        assert_err(rh_request_encode(&req, buf, sizeof(buf), &len, &err), err, EINVAL,
                   "address 0: prefix /40 exceeds 32");
        assert_int_equal(len, 777);
        assert_int_equal(buf[0], 0xee);
        /* err may be NULL everywhere. */
        assert_int_equal(rh_request_encode(&req, buf, sizeof(buf), &len, NULL), -EINVAL);
        assert_int_equal(rh_request_decode(small_tlv, 3, &req, NULL), -EMSGSIZE);
}

/* ---- arm header ---- */

static void sample_arm(struct rh_arm *arm)
{
        memset(arm, 0, sizeof(*arm));
        arm->arm_generation = 3;
        for (unsigned i = 0; i < RH_TOKEN_LEN; i++)
                arm->token[i] = (uint8_t)(0x11 * i);
        arm->gpa = 0x9dee000;
        arm->agent_version = 0x000100;
        arm->caps =
                RH_CAP_SIGNAL_VMGENID_KMSG | RH_CAP_SIGNAL_POLL | RH_CAP_IPV6 | RH_CAP_ROUTES | RH_CAP_PREARM;
}

static void test_arm(void **state)
{
        struct rh_arm arm, got;
        struct rh_error err = {};

        sample_arm(&arm);
        memset(page, 0xcc, sizeof(page));
        rh_mailbox_arm_write(page, &arm);
        /* Byte layout. */
        assert_memory_equal(page, "REHOMEMB", 8);
        assert_int_equal(unaligned_read_le16(page + 0x08), RH_MAILBOX_ABI_MAJOR);
        assert_int_equal(unaligned_read_le16(page + 0x0a), RH_MAILBOX_ABI_MINOR);
        assert_int_equal(unaligned_read_le32(page + 0x0c), 3);
        assert_memory_equal(page + 0x10, arm.token, 16);
        assert_int_equal(unaligned_read_le64(page + 0x20), 0x9dee000);
        assert_int_equal(unaligned_read_le32(page + 0x28), 0x000100);
        assert_int_equal(unaligned_read_le32(page + 0x2c), arm.caps);
        assert_int_equal(unaligned_read_le32(page + 0x30), 4096);
        assert_int_equal(unaligned_read_le32(page + 0x34), 0);
        assert_int_equal(unaligned_read_le32(page + 0x38), 0);
        assert_int_equal(unaligned_read_le32(page + 0x3c), rh_crc32c(0, page, 0x3c));
        /* Prearm confirm cleared; prearm request, ack and request untouched. */
        for (unsigned i = RH_OFF_PREARM_CONFIRM; i < RH_OFF_ACK; i++)
                assert_int_equal(page[i], 0);
        for (unsigned i = RH_OFF_PREARM; i < RH_OFF_PREARM_CONFIRM; i++)
                assert_int_equal(page[i], 0xcc);
        for (unsigned i = RH_OFF_ACK; i < RH_MAILBOX_SIZE; i++)
                assert_int_equal(page[i], 0xcc);

        memset(&got, 0, sizeof(got));
        assert_int_equal(rh_mailbox_arm_read(page, RH_MAILBOX_SIZE, &got, &err), 0);
        assert_int_equal(got.abi_major, RH_MAILBOX_ABI_MAJOR);
        assert_int_equal(got.abi_minor, RH_MAILBOX_ABI_MINOR);
        assert_int_equal(got.arm_generation, 3);
        assert_memory_equal(got.token, arm.token, 16);
        assert_int_equal(got.gpa, 0x9dee000);
        assert_int_equal(got.agent_version, 0x000100);
        assert_int_equal(got.caps, arm.caps);
        /* A larger buffer (a page inside a bigger read) is fine. */
        assert_int_equal(rh_mailbox_arm_read(page, RH_MAILBOX_SIZE + 1, &got, &err), 0);

        memset(&got, 0x5a, sizeof(got));
        struct rh_arm untouched = got;
        assert_err(rh_mailbox_arm_read(page, 4095, &got, &err), err, EMSGSIZE,
                   "mailbox truncated: 4095 of 4096 bytes");
        assert_err(rh_mailbox_arm_read(page, 0, &got, &err), err, EMSGSIZE,
                   "mailbox truncated: 0 of 4096 bytes");
        page[7] = 'b';
        assert_err(rh_mailbox_arm_read(page, RH_MAILBOX_SIZE, &got, &err), err, ENOMSG, "no mailbox magic");
        page[7] = 'B';
        /* ABI major 2: refused before the CRC, whose position a new major may move. */
        unaligned_write_le16(page + 0x08, 2);
        assert_err(rh_mailbox_arm_read(page, RH_MAILBOX_SIZE, &got, &err), err, EPROTONOSUPPORT,
                   "mailbox ABI 2.0, this side speaks 1.x");
        unaligned_write_le16(page + 0x08, 1);
        /* A newer minor with a good CRC is accepted. */
        unaligned_write_le16(page + 0x0a, 7);
        unaligned_write_le32(page + 0x3c, rh_crc32c(0, page, 0x3c));
        assert_memory_equal(&got, &untouched, sizeof(got)); /* nothing written on failure */
        assert_int_equal(rh_mailbox_arm_read(page, RH_MAILBOX_SIZE, &got, &err), 0);
        assert_int_equal(got.abi_minor, 7);
        got = untouched;
        /* Any corrupted byte of the header: CRC. */
        rh_mailbox_arm_write(page, &arm);
        for (unsigned i = 0x0c; i < 0x40; i++) {
                page[i] ^= 0x40;
                assert_err(rh_mailbox_arm_read(page, RH_MAILBOX_SIZE, &got, &err), err, EBADMSG,
                           "arm header CRC mismatch");
                assert_false(rh_mailbox_matches(page, RH_MAILBOX_SIZE, arm.token));
                page[i] ^= 0x40;
        }
        /* Page size other than 4096 with a good CRC. */
        unaligned_write_le32(page + 0x30, 8192);
        unaligned_write_le32(page + 0x3c, rh_crc32c(0, page, 0x3c));
        assert_err(rh_mailbox_arm_read(page, RH_MAILBOX_SIZE, &got, &err), err, EBADMSG,
                   "arm header page size 8192, expected 4096");
        assert_memory_equal(&got, &untouched, sizeof(got));
        /* Bytes outside the header do not matter to it. */
        rh_mailbox_arm_write(page, &arm);
        page[0x40] ^= 1;
        page[0xfff] ^= 1;
        assert_int_equal(rh_mailbox_arm_read(page, RH_MAILBOX_SIZE, &got, NULL), 0);
}

static void test_matches(void **state)
{
        struct rh_arm arm;
        uint8_t other[RH_TOKEN_LEN];

        sample_arm(&arm);
        memset(page, 0, sizeof(page));
        assert_false(rh_mailbox_matches(page, RH_MAILBOX_SIZE, NULL));
        rh_mailbox_arm_write(page, &arm);
        assert_true(rh_mailbox_matches(page, RH_MAILBOX_SIZE, arm.token));
        assert_true(rh_mailbox_matches(page, RH_MAILBOX_SIZE, NULL));
        memcpy(other, arm.token, sizeof(other));
        other[15] ^= 1;
        assert_false(rh_mailbox_matches(page, RH_MAILBOX_SIZE, other));
        assert_false(rh_mailbox_matches(page, RH_MAILBOX_SIZE - 1, arm.token));
        page[0] = 'r';
        assert_false(rh_mailbox_matches(page, RH_MAILBOX_SIZE, arm.token));
}

/* ---- request in the page ---- */

static void test_realtime_tlv(void **state)
{
        struct rh_request req = {0}, out;
        struct rh_error err = {0};
        uint8_t buf[RH_PAYLOAD_MAX];
        size_t len = 0;
        (void)state;

        req.n_ifaces = 1;
        req.ifaces[0].match = RH_MATCH_NAME;
        memcpy(req.ifaces[0].name, "eth0", 5);
        req.realtime_ns = 1764576000123456789ull;
        assert_int_equal(rh_request_encode(&req, buf, sizeof(buf), &len, &err), 0);
        assert_int_equal(rh_request_decode(buf, len, &out, &err), 0);
        assert_true(out.realtime_ns == 1764576000123456789ull);
        /* The last record is the realtime: 4-byte header, then the little-endian value. */
        assert_int_equal(unaligned_read_le16(buf + len - 12), RH_TLV_REALTIME);
        assert_int_equal(unaligned_read_le16(buf + len - 10), 8);
        assert_true(unaligned_read_le64(buf + len - 8) == 1764576000123456789ull);
        /* Zero is "keep", never encoded; a zero on the wire is refused. */
        unaligned_write_le64(buf + len - 8, 0);
        assert_int_equal(rh_request_decode(buf, len, &out, &err), -EBADMSG);
        assert_non_null(strstr(err.msg, "realtime 0"));
        req.realtime_ns = 0;
        size_t len0 = 0;
        assert_int_equal(rh_request_encode(&req, buf, sizeof(buf), &len0, &err), 0);
        assert_int_equal(len0, len - 12);
}

static void test_write_read_request(void **state)
{
        struct rh_request req, got;
        struct rh_error err = {};
        uint8_t payload[RH_PAYLOAD_MAX];
        size_t len;
        uint32_t seq = 0;
        uint64_t nonce = 0;

        full_request(&req);
        req.seq = 0x01020304;
        req.nonce = 0x1122334455667788ull;
        assert_int_equal(rh_request_encode(&req, payload, sizeof(payload), &len, &err), 0);

        memset(page, 0xee, sizeof(page));
        assert_int_equal(rh_mailbox_write_request(page, &req, &err), 0);
        /* Sections other than the request are untouched. */
        for (unsigned i = 0; i < RH_OFF_REQUEST; i++)
                assert_int_equal(page[i], 0xee);
        assert_int_equal(unaligned_read_le32(page + 0x300), 0x01020304);
        assert_int_equal(unaligned_read_le64(page + 0x308), 0x1122334455667788ull);
        assert_int_equal(unaligned_read_le32(page + 0x310), len);
        assert_int_equal(unaligned_read_le16(page + 0x314), RH_PAYLOAD_VERSION);
        assert_int_equal(unaligned_read_le16(page + 0x316), 0);
        assert_int_equal(unaligned_read_le64(page + 0x318), 0);
        assert_memory_equal(page + 0x320, payload, len);
        for (size_t i = 0x320 + len; i < RH_MAILBOX_SIZE; i++)
                assert_int_equal(page[i], 0); /* the rest of the payload area is zeroed */
        /* The CRC covers exactly [0x308, 0x320 + len). */
        assert_int_equal(unaligned_read_le32(page + 0x304), rh_crc32c(0, page + 0x308, 0x18 + len));

        memset(&got, 0, sizeof(got));
        assert_int_equal(rh_mailbox_read_request(page, &got, &seq, &nonce, &err), 0);
        assert_int_equal(seq, 0x01020304);
        assert_int_equal(nonce, 0x1122334455667788ull);
        assert_request_equal(&got, &req);
        /* Out-parameters may be NULL. */
        assert_int_equal(rh_mailbox_read_request(page, &got, NULL, NULL, NULL), 0);

        /* Bytes outside the CRC range do not matter: the byte right after the
         * payload, the seq itself. */
        page[0x320 + len] = 0x77;
        assert_int_equal(rh_mailbox_read_request(page, &got, NULL, NULL, &err), 0);
        page[0x320 + len] = 0;
        /* Every byte inside it does. */
        const size_t probes[] = {0x308, 0x30f, 0x310, 0x316, 0x318, 0x31f, 0x320, 0x320 + len - 1};
        for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
                char text[128];
                uint32_t stored = unaligned_read_le32(page + 0x304);

                page[probes[i]] ^= 0x01;
                if (probes[i] == 0x310) { /* the length itself: a different range */
                        page[probes[i]] ^= 0x01;
                        unaligned_write_le32(page + 0x310, (uint32_t)len - 4);
                }
                snprintf(text, sizeof(text), "request CRC32C mismatch: stored 0x%08x, computed 0x%08x",
                         stored, rh_crc32c(0, page + 0x308, 0x18 + unaligned_read_le32(page + 0x310)));
                seq = 0;
                assert_err(rh_mailbox_read_request(page, &got, &seq, &nonce, &err), err, EBADMSG, text);
                assert_int_equal(seq, 0); /* nothing is believed without the CRC */
                if (probes[i] == 0x310)
                        unaligned_write_le32(page + 0x310, (uint32_t)len);
                else
                        page[probes[i]] ^= 0x01;
        }
        assert_int_equal(rh_mailbox_read_request(page, &got, NULL, NULL, &err), 0);

        /* A second request replaces the first completely (shorter payload). */
        small_request(&req);
        req.seq = 0x01020305;
        req.nonce = 42;
        assert_int_equal(rh_mailbox_write_request(page, &req, &err), 0);
        assert_int_equal(unaligned_read_le32(page + 0x310), sizeof(small_tlv));
        assert_memory_equal(page + 0x320, small_tlv, sizeof(small_tlv));
        for (size_t i = 0x320 + sizeof(small_tlv); i < RH_MAILBOX_SIZE; i++)
                assert_int_equal(page[i], 0);
        assert_int_equal(rh_mailbox_read_request(page, &got, &seq, &nonce, &err), 0);
        assert_request_equal(&got, &req);
}

static void test_request_errors(void **state)
{
        struct rh_request req, got, untouched;
        struct rh_error err = {};
        uint32_t seq;
        uint64_t nonce;
        char text[128];

        /* Writing seq 0 is refused, and the page is left alone. */
        small_request(&req);
        req.seq = 0;
        memset(page, 0xee, sizeof(page));
        assert_err(rh_mailbox_write_request(page, &req, &err), err, EINVAL,
                   "request sequence number 0 is reserved");
        for (unsigned i = 0; i < RH_MAILBOX_SIZE; i++)
                assert_int_equal(page[i], 0xee);
        /* An invalid request too. */
        req.seq = 1;
        req.ifaces[0].mac[0] = 0xff;
        assert_err(rh_mailbox_write_request(page, &req, &err), err, EINVAL,
                   "interface 0: MAC ff:aa:bb:cc:dd:01 is not unicast");
        for (unsigned i = 0; i < RH_MAILBOX_SIZE; i++)
                assert_int_equal(page[i], 0xee);

        memset(&got, 0x5a, sizeof(got));
        untouched = got;
        /* seq 0: no request. */
        memset(page, 0, sizeof(page));
        seq = 99;
        nonce = 99;
        assert_err(rh_mailbox_read_request(page, &got, &seq, &nonce, &err), err, ENODATA,
                   "no request in the mailbox");
        assert_int_equal(seq, 99);
        assert_int_equal(nonce, 99);

        small_request(&req);
        req.seq = 7;
        req.nonce = 0xfeedfacecafebeefull;
        assert_int_equal(rh_mailbox_write_request(page, &req, &err), 0);
        /* A corrupted payload byte. */
        page[0x320 + 5] ^= 0x80;
        snprintf(text, sizeof(text), "request CRC32C mismatch: stored 0x%08x, computed 0x%08x",
                 unaligned_read_le32(page + 0x304), rh_crc32c(0, page + 0x308, 0x18 + sizeof(small_tlv)));
        assert_err(rh_mailbox_read_request(page, &got, &seq, &nonce, &err), err, EBADMSG, text);
        assert_int_equal(seq, 99);
        page[0x320 + 5] ^= 0x80;
        /* A payload length past the page. */
        unaligned_write_le32(page + 0x310, RH_PAYLOAD_MAX + 1);
        assert_err(rh_mailbox_read_request(page, &got, &seq, &nonce, &err), err, EMSGSIZE,
                   "request payload length 3297 exceeds 3296");
        unaligned_write_le32(page + 0x310, 0xffffffffu);
        assert_err(rh_mailbox_read_request(page, &got, &seq, &nonce, &err), err, EMSGSIZE,
                   "request payload length 4294967295 exceeds 3296");
        assert_int_equal(seq, 99);
        /* The whole payload area is usable: length 3296 reaches the CRC check. */
        unaligned_write_le32(page + 0x310, RH_PAYLOAD_MAX);
        assert_int_equal(rh_mailbox_read_request(page, &got, &seq, &nonce, &err), -EBADMSG);
        unaligned_write_le32(page + 0x310, sizeof(small_tlv));
        /* Another payload version, with a good CRC: seq and nonce are still
         * returned so the agent can answer INVALID for this request. */
        unaligned_write_le16(page + 0x314, 2);
        unaligned_write_le32(page + 0x304, rh_crc32c(0, page + 0x308, 0x18 + sizeof(small_tlv)));
        assert_err(rh_mailbox_read_request(page, &got, &seq, &nonce, &err), err, EPROTONOSUPPORT,
                   "request payload version 2, supported 1");
        assert_int_equal(seq, 7);
        assert_int_equal(nonce, 0xfeedfacecafebeefull);
        unaligned_write_le16(page + 0x314, 1);
        /* A payload that fails to decode, with a good CRC: same. */
        unaligned_write_le16(page + 0x320 + S_FLAGS, 42);
        unaligned_write_le32(page + 0x304, rh_crc32c(0, page + 0x308, 0x18 + sizeof(small_tlv)));
        seq = 0;
        nonce = 0;
        assert_err(rh_mailbox_read_request(page, &got, &seq, &nonce, &err), err, EBADMSG,
                   "record 4: unknown type 42");
        assert_int_equal(seq, 7);
        assert_int_equal(nonce, 0xfeedfacecafebeefull);
        assert_memory_equal(&got, &untouched, sizeof(got));
}

/*
 * The ordering protocol under a live writer: one thread keeps publishing
 * requests whose content is a function of their seq (nonce = seq * K, host
 * name and payload length by parity) with rh_mailbox_write_request; the
 * reader may see an unpublished request (-ENODATA), a torn read (-EAGAIN) or
 * a body caught mid-rewrite (-EBADMSG), but a successful read must never pair
 * a seq with another request's body. (Before the writer cleared the seq first,
 * this failed within a second: old seq + complete new body + good CRC.)
 */
struct race {
        _Atomic bool stop;
        _Atomic unsigned long writes;
};

#define RACE_K 0x9e3779b97f4a7c15ull

static void race_request(struct rh_request *req, uint32_t seq)
{
        small_request(req);
        req->seq = seq;
        req->nonce = seq * RACE_K;
        if (seq & 1) {
                strcpy(req->hostname, "odd");
                req->n_dns = 1;
                req->dns[0].family = 4;
                ip4(req->dns[0].addr, 10, 0, 0, 53);
        } else
                strcpy(req->hostname, "even-and-longer");
}

static void *race_writer(void *arg)
{
        struct race *race = arg;
        struct rh_request req;

        for (uint32_t seq = 2; !race->stop; seq++) {
                if (seq == 0)
                        seq = 1;
                race_request(&req, seq);
                if (rh_mailbox_write_request(page, &req, NULL) < 0)
                        abort();
                race->writes++;
        }
        return NULL;
}

static void test_request_live_writer(void **state)
{
        struct race race = {};
        struct rh_request got, want;
        unsigned long ok = 0, torn = 0, crc = 0, unpublished = 0;
        pthread_t writer;

        memset(page, 0, sizeof(page));
        race_request(&want, 1);
        assert_int_equal(rh_mailbox_write_request(page, &want, NULL), 0);
        assert_int_equal(pthread_create(&writer, NULL, race_writer, &race), 0);
        for (unsigned long i = 0; i < 5000000 && race.writes < 50000; i++) {
                uint32_t seq = 0;
                uint64_t nonce = 0;
                int r = rh_mailbox_read_request(page, &got, &seq, &nonce, NULL);

                if (r == -EAGAIN) {
                        torn++;
                        continue;
                }
                if (r == -ENODATA) { /* the writer has unpublished the old request */
                        unpublished++;
                        continue;
                }
                if (r == -EBADMSG) {
                        crc++;
                        continue;
                }
                assert_int_equal(r, 0);
                race_request(&want, got.seq);
                assert_int_equal(seq, got.seq);
                assert_request_equal(&got, &want);
                ok++;
        }
        race.stop = true;
        assert_int_equal(pthread_join(writer, NULL), 0);
        assert_true(ok > 0);
        print_message("live writer: %lu writes; reads: %lu ok, %lu unpublished (-ENODATA), %lu torn "
                      "(-EAGAIN), %lu CRC (-EBADMSG)\n",
                      (unsigned long)race.writes, ok, unpublished, torn, crc);
}

/* ---- ack ---- */

static void sample_ack(struct rh_ack *ack)
{
        memset(ack, 0, sizeof(*ack));
        ack->seq = 7;
        ack->nonce = 0xfeedfacecafebeefull;
        ack->status = RH_ACK_FAILED;
        ack->signal = RH_SIGNAL_VMGENID_KMSG;
        ack->applied = RH_APPLIED_MAC | RH_APPLIED_ADDRS;
        ack->error_code = ENETUNREACH;
        ack->t_signal_ns = 1000000001ull;
        ack->t_read_ns = 1000000002ull;
        ack->t_applied_ns = 1000000003ull;
        ack->t_ack_ns = 0x0102030405060708ull;
        ack->arm_generation = 3;
        strcpy(ack->error, "route 0: add default via 10.0.0.1 dev eth0: Network is unreachable");
}

static void test_ack(void **state)
{
        struct rh_ack ack, got;
        struct rh_error err = {};

        sample_ack(&ack);
        memset(page, 0xee, sizeof(page));
        rh_mailbox_write_ack(page, &ack);
        for (unsigned i = 0; i < RH_OFF_ACK; i++)
                assert_int_equal(page[i], 0xee);
        for (unsigned i = RH_OFF_REQUEST; i < RH_MAILBOX_SIZE; i++)
                assert_int_equal(page[i], 0xee);
        const uint8_t *a = page + RH_OFF_ACK;
        assert_int_equal(unaligned_read_le32(a + 0x00), 7);
        assert_int_equal(unaligned_read_le32(a + 0x04), rh_crc32c(0, a + 0x08, 576 - 8));
        assert_int_equal(unaligned_read_le64(a + 0x08), 0xfeedfacecafebeefull);
        assert_int_equal(unaligned_read_le32(a + 0x10), RH_ACK_FAILED);
        assert_int_equal(unaligned_read_le32(a + 0x14), RH_SIGNAL_VMGENID_KMSG);
        assert_int_equal(unaligned_read_le32(a + 0x18), RH_APPLIED_MAC | RH_APPLIED_ADDRS);
        assert_int_equal(unaligned_read_le32(a + 0x1c), ENETUNREACH);
        assert_int_equal(unaligned_read_le64(a + 0x20), 1000000001ull);
        assert_int_equal(unaligned_read_le64(a + 0x28), 1000000002ull);
        assert_int_equal(unaligned_read_le64(a + 0x30), 1000000003ull);
        assert_int_equal(unaligned_read_le64(a + 0x38), 0x0102030405060708ull);
        assert_int_equal(unaligned_read_le32(a + 0x40), 3);
        for (unsigned i = 0x44; i < 0x60; i++)
                assert_int_equal(a[i], 0);
        assert_string_equal((const char *)a + 0x60, ack.error);
        for (unsigned i = 0x60 + strlen(ack.error); i < 576; i++)
                assert_int_equal(a[i], 0);

        memset(&got, 0, sizeof(got));
        assert_int_equal(rh_mailbox_read_ack(page, &got, &err), 0);
        assert_int_equal(got.seq, 7);
        assert_int_equal(got.nonce, ack.nonce);
        assert_int_equal(got.status, RH_ACK_FAILED);
        assert_int_equal(got.signal, RH_SIGNAL_VMGENID_KMSG);
        assert_int_equal(got.applied, ack.applied);
        assert_int_equal(got.error_code, ENETUNREACH);
        assert_int_equal(got.t_signal_ns, ack.t_signal_ns);
        assert_int_equal(got.t_read_ns, ack.t_read_ns);
        assert_int_equal(got.t_applied_ns, ack.t_applied_ns);
        assert_int_equal(got.t_ack_ns, ack.t_ack_ns);
        assert_int_equal(got.arm_generation, 3);
        assert_string_equal(got.error, ack.error);

        /* A negative error code survives as int32. */
        ack.error_code = -5;
        rh_mailbox_write_ack(page, &ack);
        assert_int_equal(rh_mailbox_read_ack(page, &got, &err), 0);
        assert_int_equal(got.error_code, -5);

        /* The longest error text is 255 characters; a longer one is cut. */
        memset(ack.error, 'e', sizeof(ack.error)); /* not even terminated */
        rh_mailbox_write_ack(page, &ack);
        assert_int_equal(rh_mailbox_read_ack(page, &got, &err), 0);
        assert_int_equal(strlen(got.error), RH_ACK_ERROR_MAX - 1);
}

/* The agent's statistics block (0x170..): exact layout, round trip, and
 * an older agent's zero block read as "no statistics". */
static void test_ack_stats(void **state)
{
        struct rh_ack ack, got;
        struct rh_error err = {};
        const uint8_t *a = page + RH_OFF_ACK;

        sample_ack(&ack);
        memset(page, 0, sizeof(page));
        rh_mailbox_write_ack(page, &ack);
        assert_int_equal(rh_mailbox_read_ack(page, &got, &err), 0);
        assert_false(got.has_stats);
        for (unsigned i = 0x170; i < 576; i++)
                assert_int_equal(a[i], 0);

        ack.has_stats = true;
        ack.syscalls = 41;
        ack.nl_round_trips = 17;
        for (unsigned i = 0; i < RH_STEP_COUNT; i++)
                ack.step_ns[i] = 1000u * (i + 1);
        ack.step_ns[RH_STEP_HOOKS] = UINT32_MAX;
        rh_mailbox_write_ack(page, &ack);
        assert_int_equal(unaligned_read_le32(a + 0x04), rh_crc32c(0, a + 0x08, 576 - 8));
        assert_int_equal(unaligned_read_le32(a + 0x170), RH_ACK_STATS_MAGIC);
        assert_memory_equal(a + 0x170, "RST1", 4);
        assert_int_equal(unaligned_read_le32(a + 0x174), 41);
        assert_int_equal(unaligned_read_le32(a + 0x178), 17);
        assert_int_equal(unaligned_read_le32(a + 0x17c), RH_STEP_COUNT);
        assert_int_equal(unaligned_read_le32(a + 0x180), 1000);
        assert_int_equal(unaligned_read_le32(a + 0x180 + 4 * RH_STEP_LINK), 4000);
        assert_int_equal(unaligned_read_le32(a + 0x180 + 4 * RH_STEP_HOOKS), UINT32_MAX);
        for (unsigned i = 0x1b0; i < 576; i++)
                assert_int_equal(a[i], 0);
        memset(&got, 0, sizeof(got));
        assert_int_equal(rh_mailbox_read_ack(page, &got, &err), 0);
        assert_true(got.has_stats);
        assert_int_equal(got.syscalls, 41);
        assert_int_equal(got.nl_round_trips, 17);
        assert_memory_equal(got.step_ns, ack.step_ns, sizeof(ack.step_ns));
        assert_string_equal(rh_ack_step_name(RH_STEP_VALIDATE), "validate");
        assert_string_equal(rh_ack_step_name(RH_STEP_NEIGH), "neighbours");
        assert_string_equal(rh_ack_step_name(RH_STEP_HOOKS), "hooks");
        assert_string_equal(rh_ack_step_name(RH_STEP_COUNT), "unknown");

        /* A later agent with more steps: the known ones are read. */
        uint8_t *w = page + RH_OFF_ACK;
        unaligned_write_le32(w + 0x17c, 14);
        unaligned_write_le32(w + 0x04, rh_crc32c(0, w + 0x08, 576 - 8));
        assert_int_equal(rh_mailbox_read_ack(page, &got, &err), 0);
        assert_true(got.has_stats);
        assert_int_equal(got.step_ns[RH_STEP_DNS], 10000);
        /* An absurd step count is a bad record. */
        unaligned_write_le32(w + 0x17c, 1000);
        unaligned_write_le32(w + 0x04, rh_crc32c(0, w + 0x08, 576 - 8));
        assert_int_equal(rh_mailbox_read_ack(page, &got, &err), -EBADMSG);
        assert_string_equal(err.msg, "ack statistics: 1000 steps");
}

static void test_ack_errors(void **state)
{
        struct rh_ack ack, got, untouched;
        struct rh_error err = {};
        uint8_t *a = page + RH_OFF_ACK;
        char text[128];

        memset(&got, 0x5a, sizeof(got));
        untouched = got;
        memset(page, 0, sizeof(page));
        assert_err(rh_mailbox_read_ack(page, &got, &err), err, ENODATA, "no ack yet");
        sample_ack(&ack);
        ack.seq = 0; /* written, but unpublished */
        rh_mailbox_write_ack(page, &ack);
        assert_err(rh_mailbox_read_ack(page, &got, &err), err, ENODATA, "no ack yet");

        sample_ack(&ack);
        rh_mailbox_write_ack(page, &ack);
        a[0x100] ^= 0x01;
        snprintf(text, sizeof(text), "ack CRC32C mismatch: stored 0x%08x, computed 0x%08x", unaligned_read_le32(a + 4),
                 rh_crc32c(0, a + 8, 568));
        assert_err(rh_mailbox_read_ack(page, &got, &err), err, EBADMSG, text);
        a[0x100] ^= 0x01;
        /* The CRC covers up to the last byte of the record, not beyond. */
        a[575] ^= 0x01;
        assert_int_equal(rh_mailbox_read_ack(page, &got, &err), -EBADMSG);
        a[575] ^= 0x01;
        page[RH_OFF_REQUEST] ^= 0x01;
        assert_int_equal(rh_mailbox_read_ack(page, &got, &err), 0);

        memset(&got, 0x5a, sizeof(got));
        ack.status = RH_ACK_STATUS_MAX_ + 1;
        rh_mailbox_write_ack(page, &ack);
        assert_err(rh_mailbox_read_ack(page, &got, &err), err, EBADMSG, "ack status 5 out of range");
        ack.status = RH_ACK_APPLIED;
        ack.signal = RH_SIGNAL_MAX_ + 1;
        rh_mailbox_write_ack(page, &ack);
        assert_err(rh_mailbox_read_ack(page, &got, &err), err, EBADMSG, "ack signal 7 out of range");
        ack.signal = RH_SIGNAL_POLL;
        rh_mailbox_write_ack(page, &ack);
        memset(a + 0x60, 'x', RH_ACK_ERROR_MAX);
        unaligned_write_le32(a + 4, rh_crc32c(0, a + 8, 568));
        assert_err(rh_mailbox_read_ack(page, &got, &err), err, EBADMSG, "ack error text not terminated");
        assert_memory_equal(&got, &untouched, sizeof(got));
}

/* ---- names ---- */

static void test_names(void **state)
{
        static const char *const signals[] = {"none",         "vmclock", "vmclock-spin", "vmgenid-uevent",
                                              "vmgenid-kmsg", "poll",    "prearm-poll"};
        static const char *const statuses[] = {"none", "read", "applied", "invalid", "failed"};
        enum rh_signal s;

        for (uint32_t i = 0; i <= RH_SIGNAL_MAX_; i++) {
                assert_string_equal(rh_signal_name(i), signals[i]);
                s = (enum rh_signal)99;
                assert_int_equal(rh_signal_from_name(signals[i], &s), 0);
                assert_int_equal(s, i);
        }
        assert_string_equal(rh_signal_name(RH_SIGNAL_MAX_ + 1), "unknown");
        assert_string_equal(rh_signal_name(UINT32_MAX), "unknown");
        for (uint32_t i = 0; i <= RH_ACK_STATUS_MAX_; i++)
                assert_string_equal(rh_ack_status_name(i), statuses[i]);
        assert_string_equal(rh_ack_status_name(RH_ACK_STATUS_MAX_ + 1), "unknown");
        assert_string_equal(rh_ack_status_name(UINT32_MAX), "unknown");

        s = RH_SIGNAL_POLL;
        assert_int_equal(rh_signal_from_name("vmgenid", &s), -EINVAL);
        assert_int_equal(rh_signal_from_name("VMCLOCK", &s), -EINVAL);
        assert_int_equal(rh_signal_from_name("", &s), -EINVAL);
        assert_int_equal(rh_signal_from_name("unknown", &s), -EINVAL);
        assert_int_equal(rh_signal_from_name(NULL, &s), -EINVAL);
        assert_int_equal(s, RH_SIGNAL_POLL);
}

/* ---- addresses ---- */

static void test_mac(void **state)
{
        uint8_t mac[6], sentinel[6] = {1, 2, 3, 4, 5, 6};
        char buf[18];

        assert_int_equal(rh_mac_parse("02:aa:bb:cc:dd:01", mac), 0);
        assert_memory_equal(mac, "\x02\xaa\xbb\xcc\xdd\x01", 6);
        assert_int_equal(rh_mac_parse("52:54:00:AB:Cd:eF", mac), 0);
        assert_memory_equal(mac, "\x52\x54\x00\xab\xcd\xef", 6);
        assert_string_equal(rh_mac_format(mac, buf), "52:54:00:ab:cd:ef");
        assert_ptr_equal(rh_mac_format(mac, buf), buf);
        assert_string_equal(rh_mac_format((const uint8_t *)"\0\0\0\0\0\0", buf), "00:00:00:00:00:00");
        assert_string_equal(rh_mac_format((const uint8_t *)"\xff\xff\xff\xff\xff\xff", buf),
                            "ff:ff:ff:ff:ff:ff");

        static const char *const bad[] = {
                "",
                "02:aa:bb:cc:dd",
                "02:aa:bb:cc:dd:0",
                "02:aa:bb:cc:dd:011",
                "02-aa-bb-cc-dd-01",
                "02:aa:bb:cc:dd:0g",
                "2:aa:bb:cc:dd:01:",
                " 02:aa:bb:cc:dd:1",
                "02:aa:bb:cc:dd:01 ",
                "02aabbccdd01",
                "0x:aa:bb:cc:dd:01",
                "02:aa:bb:cc:dd:01:ff",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                memcpy(mac, sentinel, 6);
                assert_int_equal(rh_mac_parse(bad[i], mac), -EINVAL);
                assert_memory_equal(mac, sentinel, 6);
        }
        assert_int_equal(rh_mac_parse(NULL, mac), -EINVAL);
}

static void test_ip(void **state)
{
        struct rh_ipaddr ip, sentinel;
        uint8_t prefix;
        char buf[46];

        assert_int_equal(rh_ip_parse("10.0.0.5", &ip, &prefix), 0);
        assert_int_equal(ip.family, 4);
        assert_memory_equal(ip.addr, "\x0a\x00\x00\x05\0\0\0\0\0\0\0\0\0\0\0\0", 16);
        assert_int_equal(prefix, 32);
        assert_string_equal(rh_ip_format(&ip, buf), "10.0.0.5");
        assert_int_equal(rh_ip_parse("10.0.0.5/24", &ip, &prefix), 0);
        assert_int_equal(prefix, 24);
        assert_int_equal(rh_ip_parse("0.0.0.0/0", &ip, &prefix), 0);
        assert_int_equal(prefix, 0);
        assert_int_equal(rh_ip_parse("10.0.0.5", &ip, NULL), 0);
        assert_int_equal(rh_ip_parse("fd00::5", &ip, &prefix), 0);
        assert_int_equal(ip.family, 6);
        assert_memory_equal(ip.addr, "\xfd\x00\0\0\0\0\0\0\0\0\0\0\0\0\0\x05", 16);
        assert_int_equal(prefix, 128);
        assert_int_equal(rh_ip_parse("FD00:0:0::5/64", &ip, &prefix), 0);
        assert_int_equal(prefix, 64);
        assert_string_equal(rh_ip_format(&ip, buf), "fd00::5");
        assert_ptr_equal(rh_ip_format(&ip, buf), buf);
        assert_int_equal(rh_ip_parse("::ffff:10.0.0.5/128", &ip, &prefix), 0);
        assert_int_equal(ip.family, 6);
        assert_string_equal(rh_ip_format(&ip, buf), "::ffff:10.0.0.5");
        assert_int_equal(rh_ip_parse("10.0.0.5/024", &ip, &prefix), 0);
        assert_int_equal(prefix, 24);

        static const char *const bad[] = {
                "",
                "10.0.0",
                "10.0.0.256",
                "10.0.0.5/33",
                "10.0.0.5/",
                "/24",
                "10.0.0.5/2x",
                "10.0.0.5/-1",
                "10.0.0.5/+1",
                "10.0.0.5/0024",
                "10.0.0.5/24/1",
                "fd00::/129",
                "fd00:::1",
                "fe80::1%eth0",
                "10.0.0.5 ",
                " 10.0.0.5",
                "localhost",
                "0x0a000005",
                "10.0.0.5/ 24",
                "1111:2222:3333:4444:5555:6666:7777:8888:9999",
        };
        memset(&sentinel, 0x5a, sizeof(sentinel));
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                ip = sentinel;
                prefix = 77;
                assert_int_equal(rh_ip_parse(bad[i], &ip, &prefix), -EINVAL);
                assert_memory_equal(&ip, &sentinel, sizeof(ip));
                assert_int_equal(prefix, 77);
        }
        /* A prefix where none is wanted. */
        assert_int_equal(rh_ip_parse("10.0.0.5/24", &ip, NULL), -EINVAL);
        assert_int_equal(rh_ip_parse(NULL, &ip, &prefix), -EINVAL);
        /* A 64-character host part is refused, not truncated. */
        char longhost[80];
        memset(longhost, '1', sizeof(longhost));
        longhost[79] = '\0';
        assert_int_equal(rh_ip_parse(longhost, &ip, &prefix), -EINVAL);
}

/* ---- the worked example of docs/MAILBOX.md ---- */

/* The example page: an armed page holding the small request as seq 1. */
static void example_page(uint8_t *p)
{
        struct rh_arm arm;
        struct rh_request req;

        memset(p, 0, RH_MAILBOX_SIZE);
        memset(&arm, 0, sizeof(arm));
        arm.arm_generation = 1;
        for (unsigned i = 0; i < RH_TOKEN_LEN; i++)
                arm.token[i] = (uint8_t)(0xa0 + i);
        arm.gpa = 0x9dee000;
        arm.agent_version = 0x000100; /* 0.1.0 */
        arm.caps = RH_CAP_SIGNAL_VMGENID_KMSG | RH_CAP_SIGNAL_POLL | RH_CAP_IPV6 | RH_CAP_ROUTES |
                   RH_CAP_DNS | RH_CAP_HOSTNAME | RH_CAP_ANNOUNCE | RH_CAP_UDP_ACK | RH_CAP_PREARM;
        rh_mailbox_arm_write(p, &arm);
        small_request(&req);
        req.seq = 1;
        req.nonce = 0x0123456789abcdefull;
        assert_int_equal(rh_mailbox_write_request(p, &req, NULL), 0);
}

/* hexdump -C format; a run of lines equal to the previous one becomes "*". */
static size_t hexdump(const uint8_t *p, size_t len, char *out, size_t cap)
{
        size_t n = 0;
        bool starred = false;

        for (size_t off = 0; off < len; off += 16) {
                if (off > 0 && memcmp(p + off, p + off - 16, 16) == 0) {
                        if (!starred)
                                n += (size_t)snprintf(out + n, cap - n, "*\n");
                        starred = true;
                        continue;
                }
                starred = false;
                n += (size_t)snprintf(out + n, cap - n, "%08zx ", off);
                for (size_t i = 0; i < 16; i++)
                        n += (size_t)snprintf(out + n, cap - n, "%s %02x", i == 8 ? " " : "", p[off + i]);
                n += (size_t)snprintf(out + n, cap - n, "  |");
                for (size_t i = 0; i < 16; i++)
                        out[n++] = p[off + i] >= 0x20 && p[off + i] < 0x7f ? (char)p[off + i] : '.';
                n += (size_t)snprintf(out + n, cap - n, "|\n");
        }
        n += (size_t)snprintf(out + n, cap - n, "%08zx\n", len);
        return n;
}

/* clang-format off */
static const char example_dump[] =
        "00000000  52 45 48 4f 4d 45 4d 42  01 00 00 00 01 00 00 00  |REHOMEMB........|\n"
        "00000010  a0 a1 a2 a3 a4 a5 a6 a7  a8 a9 aa ab ac ad ae af  |................|\n"
        "00000020  00 e0 de 09 00 00 00 00  00 01 00 00 18 7f 00 00  |................|\n"
        "00000030  00 10 00 00 00 00 00 00  00 00 00 00 23 86 19 fe  |............#...|\n"
        "00000040  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|\n"
        "*\n"
        "00000300  01 00 00 00 4b 69 aa 40  ef cd ab 89 67 45 23 01  |....Ki.@....gE#.|\n"
        "00000310  80 00 00 00 01 00 00 00  00 00 00 00 00 00 00 00  |................|\n"
        "00000320  01 00 28 00 01 01 00 00  65 74 68 30 00 00 00 00  |..(.....eth0....|\n"
        "00000330  00 00 00 00 00 00 00 00  00 00 00 00 00 00 02 aa  |................|\n"
        "00000340  bb cc dd 01 dc 05 00 00  00 00 00 00 02 00 14 00  |................|\n"
        "00000350  00 04 18 00 0a 00 00 05  00 00 00 00 00 00 00 00  |................|\n"
        "00000360  00 00 00 00 03 00 28 00  00 04 00 01 64 00 00 00  |......(.....d...|\n"
        "00000370  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|\n"
        "00000380  0a 00 00 01 00 00 00 00  00 00 00 00 00 00 00 00  |................|\n"
        "00000390  06 00 03 00 76 6d 31 00  07 00 04 00 02 00 00 00  |....vm1.........|\n"
        "000003a0  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00  |................|\n"
        "*\n"
        "00001000\n";
/* clang-format on */

#ifndef REHOME_SOURCE_ROOT
#define REHOME_SOURCE_ROOT NULL
#endif

static void test_doc_example(void **state)
{
        static char dump[16384];
        _Alignas(4096) static uint8_t p[RH_MAILBOX_SIZE];
        struct rh_request got;
        struct rh_arm arm;

        example_page(p);
        hexdump(p, sizeof(p), dump, sizeof(dump));
        assert_string_equal(dump, example_dump);
        assert_int_equal(rh_mailbox_arm_read(p, sizeof(p), &arm, NULL), 0);
        assert_int_equal(rh_mailbox_read_request(p, &got, NULL, NULL, NULL), 0);
        assert_int_equal(got.seq, 1);

        /* docs/MAILBOX.md must show exactly this dump. The source tree is
         * $REHOME_SRCDIR, else found from this file's path as the compiler saw
         * it: absolute, or relative to the build root (meson compiles from
         * there), which is two levels above this executable. */
        char path[8192], exe[4096];
        const char *root = getenv("REHOME_SRCDIR");
        if (root)
                snprintf(path, sizeof(path), "%s/docs/MAILBOX.md", root);
        else {
                const char *f = __FILE__, *cut = strstr(f, "tests/unit/test-mailbox.c");
                ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
                char *slash;
                int up = 0;

                assert_non_null(cut);
                assert_true(n > 0);
                exe[n] = '\0';
                /* build/tests/unit/test-mailbox -> build */
                while (up < 3 && (slash = strrchr(exe, '/')) != NULL) {
                        *slash = '\0';
                        up++;
                }
                if (f[0] == '/')
                        snprintf(path, sizeof(path), "%.*sdocs/MAILBOX.md", (int)(cut - f), f);
                else
                        snprintf(path, sizeof(path), "%s/%.*sdocs/MAILBOX.md", exe, (int)(cut - f), f);
        }
        FILE *doc = fopen(path, "re");
        if (!doc)
                fail_msg("cannot open %s (set REHOME_SRCDIR to the source tree)", path);
        static char text[262144];
        size_t n = fread(text, 1, sizeof(text) - 1, doc);
        fclose(doc);
        text[n] = '\0';
        if (!strstr(text, example_dump))
                fail_msg("%s does not contain the example dump; regenerate it with "
                         "`test-mailbox --dump-example`",
                         path);
}

int main(int argc, char **argv)
{
        if (argc == 2 && strcmp(argv[1], "--dump-example") == 0) {
                static char dump[16384];
                _Alignas(4096) static uint8_t p[RH_MAILBOX_SIZE];

                example_page(p);
                hexdump(p, sizeof(p), dump, sizeof(dump));
                fputs(dump, stdout);
                return 0;
        }

        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_crc32c),
                cmocka_unit_test(test_encode_small_exact_bytes),
                cmocka_unit_test(test_round_trip_full),
                cmocka_unit_test(test_decode_framing),
                cmocka_unit_test(test_decode_bad_records),
                cmocka_unit_test(test_decode_bad_values),
                cmocka_unit_test(test_decode_limits),
                cmocka_unit_test(test_validate),
                cmocka_unit_test(test_arm),
                cmocka_unit_test(test_matches),
                cmocka_unit_test(test_write_read_request),
                cmocka_unit_test(test_realtime_tlv),
                cmocka_unit_test(test_request_errors),
                cmocka_unit_test(test_request_live_writer),
                cmocka_unit_test(test_ack),
                cmocka_unit_test(test_ack_stats),
                cmocka_unit_test(test_ack_errors),
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_mac),
                cmocka_unit_test(test_ip),
                cmocka_unit_test(test_doc_example),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
