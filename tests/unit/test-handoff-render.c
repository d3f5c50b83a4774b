/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the handoff's file renderers (src/agent/render.c): the
 * systemd-networkd runtime .network (addresses, default gateway, other
 * routes, MAC, MTU, DNS, search domains), the ifupdown stanza rewrite
 * (owned options replaced, other lines and stanzas kept, -ENOENT where no
 * static stanza names the link, a DHCP stanza left alone) and /etc/hosts
 * (127.0.1.1 line, old name with a domain, no line at all, localhost never
 * renamed), each against exact expected text, and -ENOBUFS when the buffer
 * is short.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>

#include <cmocka.h>

#include "agent.h"

static void v4(uint8_t *dst, uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
        dst[0] = a, dst[1] = b, dst[2] = c, dst[3] = d;
}

/* eth0: 10.88.0.7/24 + fd00::7/64, default via 10.88.0.1, 10.9.0.0/16 via
 * 10.88.0.254 metric 50, MAC 52:54:00:aa:bb:07, MTU 1400, DNS 10.88.0.53 +
 * fd00::53, search example.test corp.test. */
static void full_request(struct rh_request *req)
{
        memset(req, 0, sizeof(*req));
        req->n_ifaces = 1;
        req->ifaces[0].match = RH_MATCH_NAME;
        strcpy(req->ifaces[0].name, "eth0");
        req->ifaces[0].has_mac = true;
        memcpy(req->ifaces[0].mac, (uint8_t[6]){0x52, 0x54, 0x00, 0xaa, 0xbb, 0x07}, 6);
        req->ifaces[0].mtu = 1400;
        req->n_addrs = 2;
        req->addrs[0] = (struct rh_addr){.iface = 0, .family = 4, .prefix = 24};
        v4(req->addrs[0].addr, 10, 88, 0, 7);
        req->addrs[1] = (struct rh_addr){.iface = 0, .family = 6, .prefix = 64};
        req->addrs[1].addr[0] = 0xfd, req->addrs[1].addr[15] = 7;
        req->n_routes = 2;
        req->routes[0] = (struct rh_route){.iface = 0, .family = 4, .dst_prefix = 0, .has_gateway = true};
        v4(req->routes[0].gateway, 10, 88, 0, 1);
        req->routes[1] = (struct rh_route){.iface = 0, .family = 4, .dst_prefix = 16, .has_gateway = true,
                                           .metric = 50};
        v4(req->routes[1].dst, 10, 9, 0, 0);
        v4(req->routes[1].gateway, 10, 88, 0, 254);
        req->n_dns = 2;
        req->dns[0].family = 4;
        v4(req->dns[0].addr, 10, 88, 0, 53);
        req->dns[1].family = 6;
        req->dns[1].addr[0] = 0xfd, req->dns[1].addr[15] = 0x53;
        req->n_search = 2;
        strcpy(req->search[0], "example.test");
        strcpy(req->search[1], "corp.test");
        strcpy(req->hostname, "web-7");
}

static void test_networkd_full(void **state)
{
        struct rh_request req;
        char buf[2048];
        const char *want = "# Written by rehome-agent: this clone's identity for eth0 (docs/AGENT.md).\n"
                           "# Its name sorts before the template's .network, so systemd-networkd\n"
                           "# applies this file, not that one, to eth0.\n"
                           "[Match]\n"
                           "Name=eth0\n"
                           "\n"
                           "[Link]\n"
                           "MACAddress=52:54:00:aa:bb:07\n"
                           "MTUBytes=1400\n"
                           "\n"
                           "[Network]\n"
                           "Address=10.88.0.7/24\n"
                           "Address=fd00::7/64\n"
                           "Gateway=10.88.0.1\n"
                           "DNS=10.88.0.53\n"
                           "DNS=fd00::53\n"
                           "Domains=example.test corp.test\n"
                           "\n"
                           "[Route]\n"
                           "Destination=10.9.0.0/16\n"
                           "Gateway=10.88.0.254\n"
                           "Metric=50\n";
        int n;

        (void)state;
        full_request(&req);
        n = render_networkd(&req, 0, "eth0", buf, sizeof(buf));
        assert_int_equal(n, (int)strlen(want));
        assert_string_equal(buf, want);
        /* One byte short: refused, never cut. */
        assert_int_equal(render_networkd(&req, 0, "eth0", buf, strlen(want)), -ENOBUFS);
}

static void test_networkd_minimal(void **state)
{
        struct rh_request req;
        char buf[1024];
        const char *want = "# Written by rehome-agent: this clone's identity for ens3 (docs/AGENT.md).\n"
                           "# Its name sorts before the template's .network, so systemd-networkd\n"
                           "# applies this file, not that one, to ens3.\n"
                           "[Match]\n"
                           "Name=ens3\n"
                           "\n"
                           "[Network]\n"
                           "Address=192.168.5.9/30\n"
                           "\n"
                           "[Route]\n"
                           "Destination=0.0.0.0/0\n"
                           "Gateway=192.168.5.10\n"
                           "Metric=7\n";

        (void)state;
        memset(&req, 0, sizeof(req));
        req.n_ifaces = 2;
        req.n_addrs = 2;
        req.addrs[0] = (struct rh_addr){.iface = 1, .family = 4, .prefix = 24};
        v4(req.addrs[0].addr, 10, 1, 1, 1); /* another link's: not in this file */
        req.addrs[1] = (struct rh_addr){.iface = 0, .family = 4, .prefix = 30};
        v4(req.addrs[1].addr, 192, 168, 5, 9);
        req.n_routes = 1; /* a default route with a metric is a [Route] */
        req.routes[0] = (struct rh_route){.iface = 0, .family = 4, .has_gateway = true, .metric = 7};
        v4(req.routes[0].gateway, 192, 168, 5, 10);
        assert_int_equal(render_networkd(&req, 0, "ens3", buf, sizeof(buf)), (int)strlen(want));
        assert_string_equal(buf, want);
}

static const char interfaces_in[] = "# template\n"
                                    "auto lo\n"
                                    "iface lo inet loopback\n"
                                    "\n"
                                    "auto eth0\n"
                                    "iface eth0 inet static\n"
                                    "\taddress 10.88.0.2\n"
                                    "\tnetmask 255.255.255.0\n"
                                    "\tgateway 10.88.0.1\n"
                                    "\thwaddress ether 52:54:00:12:34:56\n"
                                    "\tpost-up echo up > /run/eth0-up\n"
                                    "\tdns-nameservers 10.88.0.1\n"
                                    "\n"
                                    "iface eth0 inet6 static\n"
                                    "    address fd00::2\n"
                                    "    netmask 64\n"
                                    "\n"
                                    "iface eth1 inet dhcp\n";

static void test_ifupdown_rewrite(void **state)
{
        struct rh_request req;
        char buf[2048];
        const char *want = "# template\n"
                           "auto lo\n"
                           "iface lo inet loopback\n"
                           "\n"
                           "auto eth0\n"
                           "iface eth0 inet static\n"
                           "\taddress 10.88.0.7\n"
                           "\tnetmask 255.255.255.0\n"
                           "\tgateway 10.88.0.1\n"
                           "\tmtu 1400\n"
                           "\thwaddress ether 52:54:00:aa:bb:07\n"
                           "\tdns-nameservers 10.88.0.53 fd00::53\n"
                           "\tpost-up echo up > /run/eth0-up\n"
                           "\n"
                           "iface eth0 inet6 static\n"
                           "\taddress fd00::7\n"
                           "\tnetmask 64\n"
                           "\n"
                           "iface eth1 inet dhcp\n";

        (void)state;
        full_request(&req);
        assert_int_equal(render_ifupdown(interfaces_in, strlen(interfaces_in), &req, 0, "eth0", buf, sizeof(buf)),
                         (int)strlen(want));
        assert_string_equal(buf, want);
        /* Rendering the result again gives the same text: a second apply changes nothing. */
        {
                char again[2048];
                assert_int_equal(render_ifupdown(buf, strlen(buf), &req, 0, "eth0", again, sizeof(again)),
                                 (int)strlen(want));
                assert_string_equal(again, want);
        }
        assert_int_equal(render_ifupdown(interfaces_in, strlen(interfaces_in), &req, 0, "eth0", buf, 64), -ENOBUFS);
}

static void test_ifupdown_not_managed(void **state)
{
        struct rh_request req;
        char buf[2048];
        const char *dhcp_only = "auto eth0\niface eth0 inet dhcp\n";

        (void)state;
        full_request(&req);
        /* eth1 is DHCP, eth2 absent, eth0 of a DHCP-only file: nothing to hand over. */
        assert_int_equal(render_ifupdown(interfaces_in, strlen(interfaces_in), &req, 0, "eth1", buf, sizeof(buf)),
                         -ENOENT);
        assert_int_equal(render_ifupdown(interfaces_in, strlen(interfaces_in), &req, 0, "eth2", buf, sizeof(buf)),
                         -ENOENT);
        assert_int_equal(render_ifupdown(dhcp_only, strlen(dhcp_only), &req, 0, "eth0", buf, sizeof(buf)), -ENOENT);
        /* A v4-only request leaves the inet6 stanza as it was; no final newline is fine. */
        {
                const char *in = "iface eth0 inet static\n address 10.88.0.2\n netmask 255.255.0.0\n"
                                 "iface eth0 inet6 static\n address fd00::2\n netmask 64";
                const char *want = "iface eth0 inet static\n\taddress 10.88.0.7\n\tnetmask 255.255.255.0\n"
                                   "\tgateway 10.88.0.1\n\tmtu 1400\n"
                                   "iface eth0 inet6 static\n address fd00::2\n netmask 64\n";
                req.n_addrs = 1;
                assert_int_equal(render_ifupdown(in, strlen(in), &req, 0, "eth0", buf, sizeof(buf)),
                                 (int)strlen(want));
                assert_string_equal(buf, want);
        }
}

static void test_hosts(void **state)
{
        char buf[1024];
        const char *debian = "127.0.0.1\tlocalhost\n127.0.1.1\ttpl.example.test tpl\n\n# IPv6\n"
                             "::1     localhost ip6-localhost ip6-loopback\n";
        const char *want_debian = "127.0.0.1\tlocalhost\n127.0.1.1\tweb-7.example.test web-7\n\n# IPv6\n"
                                  "::1     localhost ip6-localhost ip6-loopback\n";
        const char *other_name = "127.0.0.1 localhost\n127.0.1.1 something-else # set by cloud-init\n";
        const char *want_other = "127.0.0.1 localhost\n127.0.1.1\tweb-7 # set by cloud-init\n";
        const char *none = "127.0.0.1 localhost\n10.88.0.2 tpl tplx\n";
        const char *want_none = "127.0.0.1 localhost\n10.88.0.2 web-7 tplx\n";
        const char *bare = "127.0.0.1 localhost\n";
        const char *want_bare = "127.0.0.1 localhost\n127.0.1.1\tweb-7\n";

        (void)state;
        assert_int_equal(render_hosts(debian, strlen(debian), "tpl", "web-7", buf, sizeof(buf)),
                         (int)strlen(want_debian));
        assert_string_equal(buf, want_debian);
        assert_int_equal(render_hosts(other_name, strlen(other_name), "tpl", "web-7", buf, sizeof(buf)),
                         (int)strlen(want_other));
        assert_string_equal(buf, want_other);
        /* The old name on another address: renamed there, no 127.0.1.1 line added. */
        assert_int_equal(render_hosts(none, strlen(none), "tpl", "web-7", buf, sizeof(buf)), (int)strlen(want_none));
        assert_string_equal(buf, want_none);
        assert_int_equal(render_hosts(bare, strlen(bare), "tpl", "web-7", buf, sizeof(buf)), (int)strlen(want_bare));
        assert_string_equal(buf, want_bare);
        /* A machine called localhost: localhost lines stay, the name gets its own line. */
        assert_int_equal(render_hosts(bare, strlen(bare), "localhost", "web-7", buf, sizeof(buf)),
                         (int)strlen(want_bare));
        assert_string_equal(buf, want_bare);
        assert_int_equal(render_hosts(debian, strlen(debian), "tpl", "web-7", buf, 20), -ENOBUFS);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_networkd_full),   cmocka_unit_test(test_networkd_minimal),
                cmocka_unit_test(test_ifupdown_rewrite), cmocka_unit_test(test_ifupdown_not_managed),
                cmocka_unit_test(test_hosts),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
