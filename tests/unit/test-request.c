/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the request JSON form (rh_request_from_json/to_json), the
 * ack record as JSON, and the UDP ack line parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <errno.h>

#include "rehome/request.h"

static int parse(const char *json, struct rh_request *req, struct rh_error *err)
{
        memset(err, 0, sizeof(*err));
        return rh_request_from_json(json, strlen(json), req, err);
}

static void test_full_request(void **state)
{
        const char *json =
                "{\"interfaces\":[{\"name\":\"eth0\",\"mac\":\"02:00:00:00:00:05\",\"mtu\":1400},"
                "{\"match_mac\":\"52:54:00:12:34:56\"}],"
                "\"addresses\":[{\"address\":\"10.0.0.5/24\"},{\"interface\":1,\"address\":\"fd00::5/64\"}],"
                "\"routes\":[{\"gateway\":\"10.0.0.1\"},{\"interface\":1,\"destination\":\"fd01::/48\","
                "\"gateway\":\"fd00::1\",\"metric\":50}],"
                "\"dns\":[\"10.0.0.1\",\"fd00::53\"],\"search\":[\"example.internal\"],"
                "\"hostname\":\"clone-5\",\"announce\":false,\"ack_early\":true,"
                "\"ack\":\"10.0.0.1:5555\",\"seq\":7,\"nonce\":\"00000000deadbeef\"}";
        struct rh_request req;
        struct rh_error err;

        assert_int_equal(parse(json, &req, &err), 0);
        assert_int_equal(req.n_ifaces, 2);
        assert_string_equal(req.ifaces[0].name, "eth0");
        assert_int_equal(req.ifaces[0].match, RH_MATCH_NAME);
        assert_true(req.ifaces[0].has_mac);
        assert_int_equal(req.ifaces[0].mac[5], 5);
        assert_int_equal(req.ifaces[0].mtu, 1400);
        assert_int_equal(req.ifaces[1].match, RH_MATCH_MAC);
        assert_int_equal(req.ifaces[1].match_mac[0], 0x52);
        assert_int_equal(req.n_addrs, 2);
        assert_int_equal(req.addrs[0].family, 4);
        assert_int_equal(req.addrs[0].prefix, 24);
        assert_int_equal(req.addrs[0].addr[3], 5);
        assert_int_equal(req.addrs[1].family, 6);
        assert_int_equal(req.addrs[1].iface, 1);
        assert_int_equal(req.addrs[1].prefix, 64);
        assert_int_equal(req.n_routes, 2);
        assert_int_equal(req.routes[0].dst_prefix, 0);
        assert_true(req.routes[0].has_gateway);
        assert_int_equal(req.routes[0].family, 4);
        assert_int_equal(req.routes[1].metric, 50);
        assert_int_equal(req.routes[1].dst_prefix, 48);
        assert_int_equal(req.n_dns, 2);
        assert_int_equal(req.n_search, 1);
        assert_string_equal(req.hostname, "clone-5");
        assert_int_equal(req.flags, RH_REQ_FLUSH_NEIGH | RH_REQ_ACK_EARLY | RH_REQ_REPLACE_ADDRS);
        assert_true(req.has_ack_udp);
        assert_int_equal(req.ack_port, 5555);
        assert_int_equal(req.seq, 7);
        assert_int_equal(req.nonce, 0xdeadbeefull);

        /* to_json -> from_json gives the same request back. */
        char *text = rh_request_to_json(&req, 2);
        struct rh_request again;
        assert_non_null(text);
        assert_int_equal(parse(text, &again, &err), 0);
        assert_memory_equal(&again, &req, sizeof(req));
        free(text);
}

static void test_gateway_ack(void **state)
{
        struct rh_request req, again;
        struct rh_error err;

        assert_int_equal(parse("{\"interfaces\":[{\"name\":\"eth0\"}],\"ack\":\"gateway:7000\"}", &req, &err), 0);
        assert_true(req.has_ack_udp);
        assert_int_equal(req.ack_addr.family, 0);
        assert_int_equal(req.ack_port, 7000);
        char *text = rh_request_to_json(&req, 0);
        assert_non_null(strstr(text, "\"ack\": \"gateway:7000\"") ? text : strstr(text, "\"ack\":\"gateway:7000\""));
        assert_int_equal(parse(text, &again, &err), 0);
        assert_memory_equal(&again, &req, sizeof(req));
        free(text);
        assert_int_equal(parse("{\"interfaces\":[{\"name\":\"eth0\"}],\"ack\":\"[fd00::1]:9\"}", &req, &err), 0);
        assert_int_equal(req.ack_addr.family, 6);
        assert_int_equal(req.ack_port, 9);
}

static void expect_error(const char *json, int code, const char *msg)
{
        struct rh_request req;
        struct rh_error err;

        assert_int_equal(parse(json, &req, &err), code);
        assert_string_equal(err.msg, msg);
}

static void test_bad_requests(void **state)
{
        expect_error("{", -EBADMSG, "line 1 column 1: string or '}' expected near end of file");
        expect_error("[]", -EBADMSG, "request must be an object");
        expect_error("{\"interfaces\":[]}", -EINVAL, "request names no interface (\"interfaces\" is empty)");
        expect_error("{}", -EINVAL, "request names no interface (\"interfaces\" is empty)");
        expect_error("{\"interfaces\":[{\"name\":\"eth0\"}],\"bogus\":1}", -EBADMSG,
                     "request: unknown key \"bogus\"");
        expect_error("{\"interfaces\":[{\"nam\":\"eth0\"}]}", -EBADMSG, "interfaces[0]: unknown key \"nam\"");
        expect_error("{\"interfaces\":[{\"name\":\"eth0\",\"mac\":\"01:00:00:00:00:01\"}]}", -EINVAL,
                     "interface 0: MAC 01:00:00:00:00:01 is not unicast");
        expect_error("{\"interfaces\":[{\"name\":\"eth0\",\"mac\":\"zz\"}]}", -EINVAL,
                     "interfaces[0].mac: invalid MAC \"zz\"");
        expect_error("{\"interfaces\":[{}]}", -EINVAL, "interface 0: empty match (neither name nor MAC)");
        expect_error("{\"interfaces\":[{\"name\":\"eth0\"}],\"addresses\":[{\"address\":\"10.0.0.5/33\"}]}",
                     -EINVAL, "addresses[0]: invalid address/prefix \"10.0.0.5/33\"");
        expect_error("{\"interfaces\":[{\"name\":\"eth0\"}],\"addresses\":[{\"address\":\"fd00::1/129\"}]}",
                     -EINVAL, "addresses[0]: invalid address/prefix \"fd00::1/129\"");
        expect_error("{\"interfaces\":[{\"name\":\"eth0\"}],\"addresses\":[{\"interface\":1,\"address\":\"10.0.0.5/24\"}]}",
                     -EINVAL, "address 0: interface index 1 out of range");
        expect_error("{\"interfaces\":[{\"name\":\"eth0\"}],\"routes\":[{\"destination\":\"10.1.0.5/16\"}]}",
                     -EINVAL, "route 0: destination 10.1.0.5/16 has host bits set");
        expect_error("{\"interfaces\":[{\"name\":\"eth0\"}],\"routes\":[{\"destination\":\"10.1.0.0/16\",\"gateway\":\"fd00::1\"}]}",
                     -EINVAL, "routes[0]: destination and gateway differ in family");
        expect_error("{\"interfaces\":[{\"name\":\"eth0\"}],\"routes\":[{}]}", -EBADMSG,
                     "routes[0]: needs \"destination\" or \"gateway\"");
        expect_error("{\"interfaces\":[{\"name\":\"eth0\"}],\"hostname\":\"-bad\"}", -EINVAL, "invalid hostname");
        expect_error("{\"interfaces\":[{\"name\":\"eth0\"}],\"announce\":1}", -EBADMSG, "\"announce\" must be a boolean");
        expect_error("{\"interfaces\":[{\"name\":\"eth0\"}],\"ack\":\"10.0.0.1\"}", -EINVAL,
                     "ack: expected HOST:PORT or gateway:PORT, got \"10.0.0.1\"");
        expect_error("{\"interfaces\":[{\"name\":\"eth0\"}],\"ack\":\"10.0.0.1:0\"}", -EINVAL,
                     "ack: expected HOST:PORT or gateway:PORT, got \"10.0.0.1:0\"");
        expect_error("{\"interfaces\":[{\"name\":\"eth0\"}],\"nonce\":\"xyz\"}", -EINVAL,
                     "nonce: expected hexadecimal, got \"xyz\"");
        expect_error("{\"interfaces\":[{\"name\":\"eth0\",\"mtu\":70000}]}", -EINVAL,
                     "interfaces[0].mtu: 70000 out of range 0..65535");
        expect_error("{\"interfaces\":[{\"name\":\"eth0\",\"mtu\":10}]}", -EINVAL,
                     "interface 0: MTU 10 out of range 68..65535");
        expect_error("{\"interfaces\":[{\"name\":\"eth0\"},{\"name\":\"a\"},{\"name\":\"b\"},{\"name\":\"c\"},{\"name\":\"d\"}]}",
                     -E2BIG, "\"interfaces\": 5 entries, at most 4");
        expect_error("{\"interfaces\":[{\"name\":\"eth0\"}],\"seq\":1,\"seq\":2}", -EBADMSG,
                     "line 1 column 45: duplicate object key near '\"seq\"'");
}

static void test_version(void **state)
{
        struct rh_request req;
        struct rh_error err = {};
        (void)state;

        assert_int_equal(parse("{\"version\":1,\"interfaces\":[{\"name\":\"eth0\"}]}", &req, &err), 0);
        assert_int_equal(parse("{\"version\":2,\"interfaces\":[{\"name\":\"eth0\"}]}", &req, &err),
                         -EPROTONOSUPPORT);
        assert_string_equal(err.msg, "request: \"version\" 2 (this rehome reads 1)");
        assert_int_equal(parse("{\"version\":\"1\",\"interfaces\":[{\"name\":\"eth0\"}]}", &req, &err), -EBADMSG);
        assert_string_equal(err.msg, "request.version must be an integer");
        /* What to_json writes says its version, and reads back. */
        assert_int_equal(parse("{\"interfaces\":[{\"name\":\"eth0\"}]}", &req, &err), 0);
        char *text = rh_request_to_json(&req, 0);
        assert_non_null(text);
        assert_non_null(strstr(text, "\"version\":1"));
        assert_int_equal(parse(text, &req, &err), 0);
        free(text);
}

static void test_ack_line(void **state)
{
        struct rh_ack_line l;
        struct rh_error err = {};
        const char *s = "stage=applied mac=02:00:00:00:00:05 ip=10.0.0.5/24 nonce=00000000deadbeef seq=3 signal=vmgenid-kmsg\n";

        assert_int_equal(rh_ack_line_parse(s, strlen(s), &l, &err), 0);
        assert_string_equal(l.stage, "applied");
        assert_string_equal(l.mac, "02:00:00:00:00:05");
        assert_string_equal(l.ip, "10.0.0.5/24");
        assert_true(l.has_nonce);
        assert_int_equal(l.nonce, 0xdeadbeefull);
        assert_true(l.has_seq);
        assert_int_equal(l.seq, 3);
        assert_string_equal(l.signal, "vmgenid-kmsg");

        s = "stage=error nonce=0x10 error=\"interface 0: MAC 01:00:00:00:00:01 is not unicast\" extra=ignored";
        assert_int_equal(rh_ack_line_parse(s, strlen(s), &l, &err), 0);
        assert_string_equal(l.stage, "error");
        assert_int_equal(l.nonce, 0x10);
        assert_string_equal(l.error, "interface 0: MAC 01:00:00:00:00:01 is not unicast");

        /* hypeman's line has no nonce: parsed, has_nonce false. */
        s = "stage=applied mac=02:00:00:00:00:05 ip=10.0.0.5";
        assert_int_equal(rh_ack_line_parse(s, strlen(s), &l, &err), 0);
        assert_false(l.has_nonce);

        s = "mac=02:00:00:00:00:05";
        assert_int_equal(rh_ack_line_parse(s, strlen(s), &l, &err), -EBADMSG);
        assert_string_equal(err.msg, "ack line has no stage");
        s = "stage=applied nonce=xyz";
        assert_int_equal(rh_ack_line_parse(s, strlen(s), &l, &err), -EBADMSG);
        assert_string_equal(err.msg, "ack line: bad nonce \"xyz\"");
        s = "stage=applied nonce=11112222333344445";
        assert_int_equal(rh_ack_line_parse(s, strlen(s), &l, &err), -EBADMSG);
        s = "stage=applied garbage";
        assert_int_equal(rh_ack_line_parse(s, strlen(s), &l, &err), -EBADMSG);
        assert_string_equal(err.msg, "ack line: \"garbage\" is not key=value");
        s = "stage=error error=\"unterminated";
        assert_int_equal(rh_ack_line_parse(s, strlen(s), &l, &err), -EBADMSG);
        assert_string_equal(err.msg, "ack line: unterminated quote");
        s = "stage=applied seq=4294967296";
        assert_int_equal(rh_ack_line_parse(s, strlen(s), &l, &err), -EBADMSG);
        char big[1500];
        memset(big, 'a', sizeof(big));
        assert_int_equal(rh_ack_line_parse(big, sizeof(big), &l, &err), -EMSGSIZE);
        assert_string_equal(err.msg, "ack line of 1500 bytes exceeds 1400");
}

static void test_hostport(void **state)
{
        struct rh_ipaddr ip = { .family = 9 };
        uint16_t port = 1;

        assert_int_equal(rh_hostport_parse("10.0.0.1:5555", &ip, &port), 0);
        assert_int_equal(ip.family, 4);
        assert_int_equal(ip.addr[3], 1);
        assert_int_equal(port, 5555);
        assert_int_equal(rh_hostport_parse("[fd00::1]:80", &ip, &port), 0);
        assert_int_equal(ip.family, 6);
        assert_int_equal(port, 80);
        assert_int_equal(rh_hostport_parse("gateway:7", &ip, &port), 0);
        assert_int_equal(ip.family, 0);
        assert_int_equal(port, 7);
        ip.family = 4;
        port = 9;
        assert_int_equal(rh_hostport_parse("10.0.0.1", &ip, &port), -EINVAL);
        assert_int_equal(rh_hostport_parse("10.0.0.1:0", &ip, &port), -EINVAL);
        assert_int_equal(rh_hostport_parse("10.0.0.1:65536", &ip, &port), -EINVAL);
        assert_int_equal(rh_hostport_parse("10.0.0.1:", &ip, &port), -EINVAL);
        assert_int_equal(rh_hostport_parse("[fd00::1:80", &ip, &port), -EINVAL);
        assert_int_equal(rh_hostport_parse("host:80", &ip, &port), -EINVAL);
        assert_int_equal(rh_hostport_parse("gateway:x", &ip, &port), -EINVAL);
        /* Outputs untouched on failure. */
        assert_int_equal(ip.family, 4);
        assert_int_equal(port, 9);
}

/* struct rh_request's size field (docs/ABI.md): 0 or sizeof, nothing else. */
static void test_request_size(void **state)
{
        struct rh_request req, out;
        struct rh_error err;
        char *json;

        assert_int_equal(parse("{\"interfaces\":[{\"name\":\"eth0\"}],\"nonce\":\"5\"}", &req, &err), 0);
        assert_int_equal(req.size, sizeof(struct rh_request)); /* filled: the layout written */
        req.size = 0;                                           /* a zero-initialised 0.1 caller */
        assert_int_equal(rh_request_validate(&req, &err), 0);
        json = rh_request_to_json(&req, 0);
        assert_non_null(json);
        free(json);
        req.size = sizeof(struct rh_request);
        assert_int_equal(rh_request_validate(&req, &err), 0);

        /* A layout this library does not know (a newer header's, or garbage). */
        req.size = sizeof(struct rh_request) + 8;
        memset(&err, 0, sizeof(err));
        assert_int_equal(rh_request_validate(&req, &err), -EINVAL);
        char want[128];
        snprintf(want, sizeof(want), "struct rh_request of %zu bytes: this librehome knows %zu",
                 sizeof(struct rh_request) + 8, sizeof(struct rh_request));
        assert_string_equal(err.msg, want);
        errno = 0;
        assert_null(rh_request_to_json(&req, 0));
        assert_int_equal(errno, EINVAL);
        uint8_t buf[RH_PAYLOAD_MAX];
        size_t len;
        assert_int_equal(rh_request_encode(&req, buf, sizeof(buf), &len, &err), -EINVAL);

        /* Decoding sets it. */
        req.size = 0;
        assert_int_equal(rh_request_encode(&req, buf, sizeof(buf), &len, &err), 0);
        memset(&out, 0xaa, sizeof(out));
        assert_int_equal(rh_request_decode(buf, len, &out, &err), 0);
        assert_int_equal(out.size, sizeof(struct rh_request));
}

/*
 * The LIBREHOME_0.1 layout of struct rh_request on LP64, frozen: a change
 * here is an ABI break. Add the field at the end and give the new layout
 * its own size instead (docs/ABI.md, "Growing structs").
 */
static void test_request_layout_frozen(void **state)
{
#if defined(__x86_64__) || defined(__aarch64__)
        assert_int_equal(offsetof(struct rh_request, size), 0);
        assert_int_equal(offsetof(struct rh_request, seq), 4);
        assert_int_equal(offsetof(struct rh_request, nonce), 8);
        assert_int_equal(offsetof(struct rh_request, flags), 16);
        assert_int_equal(offsetof(struct rh_request, ifaces), 40);
        assert_int_equal(offsetof(struct rh_request, addrs), 184);
        assert_int_equal(offsetof(struct rh_request, hostname), 2720);
        assert_int_equal(offsetof(struct rh_request, realtime_ns), 2808);
        assert_int_equal(offsetof(struct rh_request, payloads_count), 2816);
        assert_int_equal(sizeof(struct rh_request), 2832);
#else
        skip();
#endif
}

static void test_ack_json(void **state)
{
        struct rh_ack ack = {
                .seq = 3, .nonce = 0xabc, .status = RH_ACK_INVALID, .signal = RH_SIGNAL_POLL,
                .error_code = EINVAL, .t_signal_ns = 1, .t_read_ns = 2, .arm_generation = 1,
        };
        char *s;

        memcpy(ack.error, "bad \x01\xff text", sizeof("bad \x01\xff text"));
        s = rh_ack_to_json(&ack, 0);
        assert_non_null(s);
        assert_string_equal(s, "{\"seq\":3,\"nonce\":\"0000000000000abc\",\"status\":\"invalid\",\"signal\":\"poll\","
                               "\"applied\":0,\"error_code\":22,\"t_signal_ns\":1,\"t_read_ns\":2,"
                               "\"t_applied_ns\":0,\"t_ack_ns\":0,\"arm_generation\":1,\"error\":\"bad ?? text\"}");
        free(s);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_full_request), cmocka_unit_test(test_gateway_ack),
                cmocka_unit_test(test_version),
                cmocka_unit_test(test_bad_requests), cmocka_unit_test(test_ack_line),
                cmocka_unit_test(test_ack_json), cmocka_unit_test(test_hostport),
                cmocka_unit_test(test_request_size), cmocka_unit_test(test_request_layout_frozen),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
