/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of named payloads (rehome/payloads.h): the JSON object check,
 * the payload stream (encode, decode, limits, tampering), the directory
 * page, the RH_TLV_PAYLOADS record and ack fields, and hypeman's fork
 * mailbox (marker, scan at any byte offset incl. across a page boundary,
 * false markers, frame, ack rule).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rehome/mailbox.h"
#include "rehome/payloads.h"
#include "rehome/request.h"

static struct rh_payload pl(const char *name, const char *json)
{
        struct rh_payload p = { .data = (const uint8_t *)json, .len = (uint32_t)strlen(json) };

        strncpy(p.name, name, sizeof(p.name) - 1);
        return p;
}

static void test_names(void **state)
{
        char n64[66];

        (void)state;
        assert_true(rh_payload_name_valid("kernel.identity.v1"));
        assert_true(rh_payload_name_valid("a:b_c-D.9"));
        assert_false(rh_payload_name_valid(""));
        assert_false(rh_payload_name_valid("."));
        assert_false(rh_payload_name_valid(".."));
        assert_false(rh_payload_name_valid("a/b"));
        assert_false(rh_payload_name_valid("a b"));
        assert_false(rh_payload_name_valid(" kernel"));
        memset(n64, 'x', 64);
        n64[64] = 0;
        assert_true(rh_payload_name_valid(n64));
        n64[64] = 'x';
        n64[65] = 0;
        assert_false(rh_payload_name_valid(n64));
}

static bool obj(const char *s)
{
        return rh_json_object_check((const uint8_t *)s, strlen(s), NULL);
}

static void test_json(void **state)
{
        uint32_t port = 7;

        (void)state;
        assert_true(obj("{}"));
        assert_true(obj(" {\"a\":[1,2.5e3,-0,true,false,null,{\"b\":\"\\u00e9\\n\"}]} \n"));
        assert_false(obj(""));
        assert_false(obj("[]"));
        assert_false(obj("\"x\""));
        assert_false(obj("{\"a\":1,}"));
        assert_false(obj("{\"a\":01}"));
        assert_false(obj("{\"a\":1} x"));
        assert_false(obj("{\"a\":\"\x01\"}"));
        assert_false(obj("{\"a\":\"\\x\"}"));
        assert_false(obj("{a:1}"));
        assert_false(obj("{\"a\":1"));
        assert_true(rh_json_object_check((const uint8_t *)"{\"x\":{\"ack_port\":5},\"ack_port\":9999}", 36, &port));
        assert_int_equal(port, 9999);
        assert_true(rh_json_object_check((const uint8_t *)"{\"x\":{\"ack_port\":5}}", 20, &port));
        assert_int_equal(port, 0);
        assert_true(rh_json_object_check((const uint8_t *)"{\"ack_port\":70000}", 18, &port));
        assert_int_equal(port, 0);
        assert_true(rh_json_object_check((const uint8_t *)"{\"ack_port\":\"1\"}", 16, &port));
        assert_int_equal(port, 0);
}

static void test_stream_roundtrip(void **state)
{
        struct rh_payload in[2] = { pl("app.cfg", "{\"a\":1}"), pl("kernel:id", "{\"instance\":\"c5\"}") };
        struct rh_payload out[RH_PAYLOADS_MAX] = {};
        struct rh_payloads_ref ref = {};
        struct rh_error err = {};
        uint8_t buf[1024];
        size_t size = 0;

        (void)state;
        assert_int_equal(rh_payloads_stream_size(in, 2, &size, &err), 0);
        assert_int_equal(size, 2 * 80 + 7 + 17);
        assert_int_equal(rh_payloads_stream_encode(in, 2, buf, sizeof(buf), &ref, &err), 0);
        assert_int_equal(ref.count, 2);
        assert_int_equal(ref.stream_len, size);
        assert_int_equal(ref.stream_crc, rh_crc32c(0, buf, size));
        /* Index entry 1: name length 9, offset 167, length 17, name. */
        assert_int_equal(buf[80], 9);
        assert_int_equal(buf[84] | buf[85] << 8, 167);
        assert_int_equal(buf[88], 17);
        assert_memory_equal(buf + 96, "kernel:id", 9);
        assert_memory_equal(buf + 160, "{\"a\":1}", 7);

        assert_int_equal(rh_payloads_stream_decode(buf, &ref, out, &err), 0);
        assert_string_equal(out[0].name, "app.cfg");
        assert_int_equal(out[0].len, 7);
        assert_memory_equal(out[0].data, "{\"a\":1}", 7);
        assert_string_equal(out[1].name, "kernel:id");
        assert_memory_equal(out[1].data, "{\"instance\":\"c5\"}", 17);

        /* Too small a buffer. */
        assert_int_equal(rh_payloads_stream_encode(in, 2, buf, size - 1, &ref, &err), -ENOSPC);
        assert_string_equal(err.msg, "payloads need 184 bytes, the agent armed 183");
}

static void test_stream_limits(void **state)
{
        struct rh_payload p[RH_PAYLOADS_MAX + 1];
        struct rh_error err = {};
        size_t size;
        char names[RH_PAYLOADS_MAX + 1][8];
        uint8_t *big;

        (void)state;
        for (unsigned i = 0; i <= RH_PAYLOADS_MAX; i++) {
                snprintf(names[i], sizeof(names[i]), "p%u", i);
                p[i] = pl(names[i], "{}");
        }
        assert_int_equal(rh_payloads_stream_size(p, RH_PAYLOADS_MAX, &size, &err), 0);
        assert_int_equal(rh_payloads_stream_size(p, RH_PAYLOADS_MAX + 1, &size, &err), -E2BIG);
        assert_string_equal(err.msg, "too many payloads: 17 (max 16)");
        p[1] = pl("p0", "{}");
        assert_int_equal(rh_payloads_stream_size(p, 2, &size, &err), -EINVAL);
        assert_string_equal(err.msg, "payload p0: given twice");
        p[1] = pl("bad/name", "{}");
        assert_int_equal(rh_payloads_stream_size(p, 2, &size, &err), -EINVAL);
        assert_string_equal(err.msg, "payload 1: invalid name \"bad/name\" (want ^[A-Za-z0-9._:-]{1,64}$)");
        p[1] = pl("p1", "[1]");
        assert_int_equal(rh_payloads_stream_size(p, 2, &size, &err), -EINVAL);
        assert_string_equal(err.msg, "payload p1: not a JSON object");
        p[1] = pl("p1", "");
        assert_int_equal(rh_payloads_stream_size(p, 2, &size, &err), -EINVAL);
        assert_string_equal(err.msg, "payload p1: empty");

        big = malloc(RH_PAYLOAD_PAGES_MAX * 4096 + 1);
        assert_non_null(big);
        memset(big, ' ', RH_PAYLOAD_PAGES_MAX * 4096 + 1);
        big[0] = '{';
        big[RH_PAYLOAD_PAGES_MAX * 4096] = '}';
        p[1] = (struct rh_payload){ .name = "big", .data = big, .len = RH_PAYLOAD_PAGES_MAX * 4096 + 1 };
        assert_int_equal(rh_payloads_stream_size(p, 2, &size, &err), -EFBIG);
        assert_string_equal(err.msg, "payload big: 1048577 bytes, more than 1048576");
        p[1].len = RH_PAYLOAD_PAGES_MAX * 4096 - 160;
        big[p[1].len - 1] = '}';
        assert_int_equal(rh_payloads_stream_size(p, 2, &size, &err), -EFBIG);
        free(big);
}

static void test_stream_tamper(void **state)
{
        struct rh_payload in[2] = { pl("a", "{}"), pl("b", "{\"x\":2}") };
        struct rh_payload out[RH_PAYLOADS_MAX];
        struct rh_payloads_ref ref, bad;
        struct rh_error err = {};
        uint8_t buf[512], copy[512];

        (void)state;
        assert_int_equal(rh_payloads_stream_encode(in, 2, buf, sizeof(buf), &ref, &err), 0);
        memcpy(copy, buf, sizeof(buf));
        copy[ref.stream_len - 1] ^= 1;
        assert_int_equal(rh_payloads_stream_decode(copy, &ref, out, &err), -EBADMSG);
        assert_non_null(strstr(err.msg, "payload stream CRC32C mismatch"));

        /* A non-canonical offset with a correct CRC is still refused. */
        memcpy(copy, buf, sizeof(buf));
        copy[80 + 4] += 1;
        bad = ref;
        bad.stream_crc = rh_crc32c(0, copy, ref.stream_len);
        assert_int_equal(rh_payloads_stream_decode(copy, &bad, out, &err), -EBADMSG);
        assert_string_equal(err.msg, "payload b: offset 163 length 7 do not follow the index");

        /* A name length that covers NUL bytes (found by fuzz-payloads). */
        memcpy(copy, buf, sizeof(buf));
        copy[80] = 5;
        bad = ref;
        bad.stream_crc = rh_crc32c(0, copy, ref.stream_len);
        assert_int_equal(rh_payloads_stream_decode(copy, &bad, out, &err), -EBADMSG);
        assert_string_equal(err.msg, "payload 1: name contains a NUL");

        bad = ref;
        bad.count = 0;
        assert_int_equal(rh_payloads_stream_decode(buf, &bad, out, &err), -EBADMSG);
        bad = ref;
        bad.count = 3;
        assert_int_equal(rh_payloads_stream_decode(buf, &bad, out, &err), -EBADMSG);
}

static void test_paydir(void **state)
{
        uint8_t page[4096], token[RH_TOKEN_LEN], other[RH_TOKEN_LEN];
        uint64_t gpas[3] = { 0x1000, 0x7f000, 0x123000 }, got[3] = {};
        struct rh_error err = {};

        (void)state;
        memset(token, 0xa5, sizeof(token));
        memset(other, 0x5a, sizeof(other));
        rh_paydir_write(page, token, gpas, 3);
        assert_memory_equal(page, "RHPAYDIR", 8);
        assert_int_equal(page[8], 3);
        assert_int_equal(rh_paydir_read(page, token, 3, got, &err), 0);
        assert_memory_equal(got, gpas, sizeof(gpas));
        assert_int_equal(rh_paydir_read(page, token, 2, got, &err), -EBADMSG);
        assert_string_equal(err.msg, "payload directory lists 3 pages, the arm header 2");
        assert_int_equal(rh_paydir_read(page, other, 3, got, &err), -EBADMSG);
        assert_string_equal(err.msg, "payload directory token does not match the mailbox");
        page[0x48] ^= 1;
        assert_int_equal(rh_paydir_read(page, token, 3, got, &err), -EBADMSG);
        assert_string_equal(err.msg, "payload directory CRC mismatch");
        gpas[1] = 0x7f001;
        rh_paydir_write(page, token, gpas, 3);
        assert_int_equal(rh_paydir_read(page, token, 3, got, &err), -EBADMSG);
        assert_string_equal(err.msg, "payload page 1 gpa not 4 KiB aligned");
        page[0] = 'X';
        assert_int_equal(rh_paydir_read(page, token, 3, got, &err), -ENOMSG);
}

static void test_tlv_and_ack(void **state)
{
        struct rh_request req = { .n_ifaces = 1 }, back;
        uint8_t buf[RH_PAYLOAD_MAX], page[4096] = {};
        struct rh_ack ack = { .seq = 3, .nonce = 9, .status = RH_ACK_APPLIED, .payloads_total = 2,
                              .payloads_delivered = 1, .payload_errno = { 0, ENOSPC } };
        struct rh_ack got;
        struct rh_error err = {};
        size_t len;

        (void)state;
        req.ifaces[0].match = RH_MATCH_NAME;
        strcpy(req.ifaces[0].name, "eth0");
        req.payloads_count = 2;
        req.payloads_len = 200;
        req.payloads_crc = 0xdeadbeef;
        assert_int_equal(rh_request_encode(&req, buf, sizeof(buf), &len, &err), 0);
        assert_int_equal(len, 44 + 16);
        assert_int_equal(buf[44], RH_TLV_PAYLOADS);
        assert_int_equal(buf[46], 12);
        assert_int_equal(rh_request_decode(buf, len, &back, &err), 0);
        assert_int_equal(back.payloads_count, 2);
        assert_int_equal(back.payloads_len, 200);
        assert_int_equal(back.payloads_crc, 0xdeadbeef);
        req.payloads_count = 17;
        assert_int_equal(rh_request_encode(&req, buf, sizeof(buf), &len, &err), -EINVAL);
        assert_string_equal(err.msg, "payload count 17 out of range 0..16");

        rh_mailbox_write_ack(page, &ack);
        assert_int_equal(page[0x0c0 + 0x44], 2);
        assert_int_equal(page[0x0c0 + 0x48], 1);
        assert_int_equal(page[0x0c0 + 0x161], ENOSPC);
        assert_int_equal(rh_mailbox_read_ack(page, &got, &err), 0);
        assert_int_equal(got.payloads_total, 2);
        assert_int_equal(got.payloads_delivered, 1);
        assert_int_equal(got.payload_errno[1], ENOSPC);
        ack.payloads_delivered = 4;
        rh_mailbox_write_ack(page, &ack);
        assert_int_equal(rh_mailbox_read_ack(page, &got, &err), -EBADMSG);
        assert_string_equal(err.msg, "ack payload counts out of range (2, 0x4)");
}

static void test_hfm_marker(void **state)
{
        uint8_t m[RH_HFM_OFF_SEQ] = {};
        char long_token[130];
        struct rh_error err = {};
        int n;

        (void)state;
        n = rh_hfm_marker("kernel.identity.v1", "template-token", m, &err);
        assert_int_equal(n, 24 + 18 + 1 + 14);
        assert_memory_equal(m, "HYPEMAN_FORK_MAILBOX_V1\0kernel.identity.v1\0template-token", (size_t)n);
        assert_int_equal(rh_hfm_marker("", "t", m, &err), -EINVAL);
        assert_int_equal(rh_hfm_marker("a", "", m, &err), -EINVAL);
        memset(long_token, 't', 129);
        long_token[129] = 0;
        assert_int_equal(rh_hfm_marker("a", long_token, m, &err), -EINVAL);
        long_token[128] = 0;
        assert_int_equal(rh_hfm_marker("a", long_token, m, &err), 24 + 1 + 1 + 128);
        /* 64-byte name + 128-byte token + 26 = 218 <= 256: always fits. */
}

static void test_hfm_find(void **state)
{
        size_t len = 3 * 4096;
        uint8_t *mem = calloc(1, len);
        uint8_t m[RH_HFM_OFF_SEQ] = {};
        char found[RH_PAYLOAD_NAME_MAX + 1];
        int n;

        (void)state;
        assert_non_null(mem);
        n = rh_hfm_marker("app.one", "tok", m, NULL);
        /* False markers first: a prefix of the token, another name, a bad name, no NUL after the token. */
        memcpy(mem + 100, "HYPEMAN_FORK_MAILBOX_V1\0app.one\0to", 34);
        memcpy(mem + 300, "HYPEMAN_FORK_MAILBOX_V1\0app.two\0tok", 35);
        memcpy(mem + 600, "HYPEMAN_FORK_MAILBOX_V1\0a/b\0tok", 31);
        memcpy(mem + 900, "HYPEMAN_FORK_MAILBOX_V1\0app.one\0tokX", 36);
        memcpy(mem + 1200, "HYPEMAN_FORK_MAILBOX_V1", 23); /* magic without its NUL */
        mem[1223] = 'x';
        assert_int_equal(rh_hfm_find(mem, len, "app.one", "tok"), -ENOENT);
        assert_int_equal(rh_hfm_find(mem, len, "app.two", "tok"), 300);
        assert_int_equal(rh_hfm_find(mem, len, "app.one", NULL), 100);
        assert_true(rh_hfm_marker_at(mem + 900, len - 900, NULL, NULL, found));
        assert_string_equal(found, "app.one");
        assert_false(rh_hfm_marker_at(mem + 600, len - 600, NULL, NULL, NULL));

        /* The real one straddling the page boundary at 4096, at an odd offset. */
        memcpy(mem + 4096 - 13, m, (size_t)n);
        assert_int_equal(rh_hfm_find(mem, len, "app.one", "tok"), 4096 - 13);
        /* Too close to the end: fewer than 256 bytes from the marker. */
        assert_int_equal(rh_hfm_find(mem + 4096 - 13, 255, "app.one", "tok"), -ENOENT);
        assert_int_equal(rh_hfm_find(mem + 4096 - 13, 256, "app.one", "tok"), 0);
        free(mem);
}

static void test_hfm_frame(void **state)
{
        uint8_t mb[4096] = {}, json[RH_HFM_JSON_MAX + 1];
        const uint8_t *j;
        uint32_t seq, jl;
        struct rh_error err = {};
        const char *doc = "{\"instance_name\":\"forked\"}";

        (void)state;
        assert_int_equal(rh_hfm_decode(mb, &seq, &j, &jl, &err), -ENODATA);
        assert_int_equal(rh_hfm_encode(mb, (const uint8_t *)doc, strlen(doc), &err), 0);
        assert_int_equal(mb[256], 1);
        assert_int_equal(mb[260], strlen(doc));
        assert_memory_equal(mb + 264, doc, strlen(doc));
        assert_int_equal(rh_hfm_decode(mb, &seq, &j, &jl, &err), 0);
        assert_int_equal(seq, 1);
        assert_int_equal(jl, strlen(doc));
        assert_ptr_equal(j, mb + 264);

        memset(json, ' ', sizeof(json));
        json[0] = '{';
        json[RH_HFM_JSON_MAX - 1] = '}';
        assert_int_equal(rh_hfm_encode(mb, json, RH_HFM_JSON_MAX, &err), 0);
        json[RH_HFM_JSON_MAX - 1] = ' ';
        json[RH_HFM_JSON_MAX] = '}';
        assert_int_equal(rh_hfm_encode(mb, json, RH_HFM_JSON_MAX + 1, &err), -EMSGSIZE);
        assert_string_equal(err.msg, "fork mailbox JSON is 3833 bytes, allowed 1..3832");
        assert_int_equal(rh_hfm_encode(mb, (const uint8_t *)"[1]", 3, &err), -EINVAL);
        mb[260] = 0xf9;
        mb[261] = 0x0e; /* 3833 */
        assert_int_equal(rh_hfm_decode(mb, &seq, &j, &jl, &err), -EMSGSIZE);
}

static void test_hfm_ack(void **state)
{
        (void)state;
        assert_true(rh_hfm_ack_matches("stage=applied mailbox=kernel.identity.v1", 40, "kernel.identity.v1"));
        assert_true(rh_hfm_ack_matches("mailbox=kernel.identity.v1 stage=applied\n", 41, "kernel.identity.v1"));
        assert_false(rh_hfm_ack_matches("stage=applied mailbox=kernel.identity.v10", 41, "kernel.identity.v1"));
        assert_false(rh_hfm_ack_matches("stage=applied mailbox=kernel.identity.v1-extra freeform", 55,
                                        "kernel.identity.v1"));
        assert_false(rh_hfm_ack_matches("stage=error mailbox=a", 21, "a"));
        assert_false(rh_hfm_ack_matches("stage=applied", 13, "a"));
}

static void test_payload_set_json(void **state)
{
        struct rh_payload_set set = {};
        struct rh_payload v[RH_PAYLOADS_MAX];
        struct rh_request req;
        struct rh_error err = {};
        uint8_t *out = NULL;
        size_t outlen = 0;
        const char *doc = "{\"interfaces\":[{\"name\":\"eth0\"}],"
                          "\"payloads\":{\"app.cfg\":{\"a\":1,\"b\":[true]},\"kernel:id\":{}},"
                          "\"hypeman_mailboxes\":[{\"name\":\"kernel.identity.v1\",\"token\":\"t\",\"payload\":{\"x\":\"y\"}}]}";

        (void)state;
        assert_int_equal(rh_request_from_json(doc, strlen(doc), &req, &err), 0);
        assert_int_equal(rh_payload_set_from_json(doc, strlen(doc), &set, &err), 0);
        assert_int_equal(set.n_payloads, 2);
        assert_string_equal(set.payloads[0].name, "app.cfg");
        assert_int_equal(set.payloads[0].len, 18);
        assert_memory_equal(set.payloads[0].data, "{\"a\":1,\"b\":[true]}", 18);
        assert_int_equal(set.n_hypeman, 1);
        assert_string_equal(set.hypeman[0].token, "t");
        assert_int_equal(rh_payload_set_views(&set, v), 2);
        assert_string_equal(v[1].name, "kernel:id");
        /* A name given twice, across flags and the document. */
        assert_int_equal(rh_payload_set_add(&set, false, "app.cfg", NULL, (const uint8_t *)"{}", 2, &err), -EINVAL);
        assert_string_equal(err.msg, "payload app.cfg given twice");
        assert_int_equal(rh_payload_set_add(&set, true, "big", "t", (const uint8_t *)"{}", RH_HFM_JSON_MAX + 1, &err),
                         -EFBIG);
        rh_payload_set_clear(&set);
        assert_int_equal(set.n_payloads, 0);

        assert_int_equal(rh_payload_set_from_json("{\"payloads\":{\"a\":[1]}}", 22, &set, &err), -EBADMSG);
        assert_string_equal(err.msg, "payloads a: the value must be a JSON object");
        assert_int_equal(rh_payload_set_from_json("{\"hypeman_mailboxes\":[{\"name\":\"a\",\"payload\":{},\"x\":1}]}",
                                                  55, &set, &err), -EBADMSG);
        rh_payload_set_clear(&set);

        assert_int_equal(rh_hfm_json_with_ack_port((const uint8_t *)"{\"a\":1,\"ack_port\":5}", 20, 9999, &out, &outlen,
                                                   &err), 0);
        assert_int_equal(outlen, strlen("{\"a\":1,\"ack_port\":9999}"));
        assert_memory_equal(out, "{\"a\":1,\"ack_port\":9999}", outlen);
        free(out);
        assert_int_equal(rh_hfm_json_with_ack_port((const uint8_t *)"[]", 2, 1, &out, &outlen, &err), -EINVAL);
}

/* The example of docs/MAILBOX.md 14.6, byte for byte. */
static void test_doc_example_payloads(void **state)
{
        struct rh_payload p = pl("app.cfg", "{\"k\":1}");
        struct rh_request req = { .n_ifaces = 1 };
        struct rh_payloads_ref ref;
        struct rh_error err = {};
        uint8_t buf[128], want[87] = { 7, 0, 0, 0, 0x50, 0, 0, 0, 7 }, dir[4096], tlv[RH_PAYLOAD_MAX];
        uint8_t token[RH_TOKEN_LEN];
        uint64_t gpas[2] = { 0x9def000, 0x9df0000 };
        static const uint8_t dir_head[0x50] = {
                'R', 'H', 'P', 'A', 'Y', 'D', 'I', 'R', 2, 0, 0, 0, 0, 0x10, 0, 0,
                0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
                [0x3c] = 0xa6, 0x8b, 0xf0, 0x8b,
                [0x40] = 0x00, 0xf0, 0xde, 0x09, 0, 0, 0, 0, 0x00, 0x00, 0xdf, 0x09, 0, 0, 0, 0,
        };
        static const uint8_t want_tlv[16] = { 10, 0, 12, 0, 1, 0, 0, 0, 0x57, 0, 0, 0, 0x83, 0x9c, 0x63, 0x49 };
        size_t len;

        (void)state;
        memcpy(want + 16, "app.cfg", 7);
        memcpy(want + 80, "{\"k\":1}", 7);
        assert_int_equal(rh_payloads_stream_encode(&p, 1, buf, sizeof(buf), &ref, &err), 0);
        assert_int_equal(ref.stream_len, 87);
        assert_int_equal(ref.stream_crc, 0x49639c83);
        assert_memory_equal(buf, want, sizeof(want));
        req.ifaces[0].match = RH_MATCH_NAME;
        strcpy(req.ifaces[0].name, "eth0");
        req.payloads_count = ref.count;
        req.payloads_len = ref.stream_len;
        req.payloads_crc = ref.stream_crc;
        assert_int_equal(rh_request_encode(&req, tlv, sizeof(tlv), &len, &err), 0);
        assert_memory_equal(tlv + len - 16, want_tlv, 16);
        for (unsigned i = 0; i < RH_TOKEN_LEN; i++)
                token[i] = (uint8_t)(0xa0 + i);
        rh_paydir_write(dir, token, gpas, 2);
        assert_memory_equal(dir, dir_head, sizeof(dir_head));
        for (size_t i = sizeof(dir_head); i < sizeof(dir); i++)
                assert_int_equal(dir[i], 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_names),           cmocka_unit_test(test_json),
                cmocka_unit_test(test_stream_roundtrip), cmocka_unit_test(test_stream_limits),
                cmocka_unit_test(test_stream_tamper),   cmocka_unit_test(test_paydir),
                cmocka_unit_test(test_tlv_and_ack),     cmocka_unit_test(test_hfm_marker),
                cmocka_unit_test(test_hfm_find),        cmocka_unit_test(test_hfm_frame),
                cmocka_unit_test(test_hfm_ack),         cmocka_unit_test(test_payload_set_json),
                cmocka_unit_test(test_doc_example_payloads),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
