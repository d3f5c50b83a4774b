/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the rtnetlink layer (src/shared/netlink.c) that change
 * nothing: dumps and lookups in the current network namespace (every
 * namespace has lo at index 1 with 127.0.0.1/8), capacity limits, argument
 * checks that fail before the kernel is asked, kernel errors turned into
 * -errno with the operation named, and a closed socket. Changing links,
 * addresses and routes is covered on a real veth by tests/integration/test-agent.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "netlink.h"

static struct rh_nl nl;

static int setup(void **state)
{
        struct rh_error err = {0};

        (void)state;
        return rh_nl_open(&nl, &err) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
        (void)state;
        rh_nl_close(&nl);
        rh_nl_close(&nl); /* twice is harmless */
        assert_int_equal(nl.fd, -EBADF);
        return 0;
}

static void test_link_list_has_lo(void **state)
{
        struct rh_nl_link links[64];
        struct rh_error err = {0};
        size_t n = 0;
        bool found = false;

        (void)state;
        assert_int_equal(rh_nl_link_list(&nl, links, 64, &n, &err), 0);
        assert_true(n >= 1);
        for (size_t i = 0; i < n; i++)
                if (strcmp(links[i].name, "lo") == 0) {
                        found = true;
                        assert_int_equal(links[i].ifindex, (int)if_nametoindex("lo"));
                        assert_true(links[i].flags & IFF_LOOPBACK);
                        assert_int_equal(links[i].mac_len, 6);
                        assert_true(links[i].mtu >= 1500);
                }
        assert_true(found);
}

static void test_link_list_capacity(void **state)
{
        struct rh_nl_link links[1];
        struct rh_error err = {0};
        size_t n = 77;

        (void)state;
        assert_int_equal(rh_nl_link_list(&nl, links, 0, &n, &err), -ENOBUFS);
        assert_int_equal(n, 77); /* untouched on failure */
        assert_string_equal(err.msg, "list links: too many entries");
        /* The rest of the dump was drained: the next request gets its own reply. */
        assert_int_equal(rh_nl_link_get(&nl, (int)if_nametoindex("lo"), &links[0], &err), 0);
        assert_string_equal(links[0].name, "lo");
}

static void test_link_get(void **state)
{
        struct rh_nl_link l;
        struct rh_error err = {0};
        int lo = (int)if_nametoindex("lo");

        (void)state;
        assert_int_equal(rh_nl_link_get(&nl, lo, &l, &err), 0);
        assert_string_equal(l.name, "lo");
        assert_int_equal(l.ifindex, lo);
        assert_int_equal(rh_nl_link_get(&nl, 0x7ffffff0, &l, &err), -ENODEV);
        assert_string_equal(err.msg, "get link 2147483632: No such device");
}

static void test_link_get_by_name(void **state)
{
        struct rh_nl_link l;
        struct rh_error err = {0};

        (void)state;
        assert_int_equal(rh_nl_link_get_by_name(&nl, "lo", &l, &err), 0);
        assert_string_equal(l.name, "lo");
        assert_int_equal(l.ifindex, (int)if_nametoindex("lo"));
        assert_int_equal(l.master, 0);
        assert_int_equal(rh_nl_link_get_by_name(&nl, "rh-no-such-0", &l, &err), -ENODEV);
        assert_string_equal(err.msg, "get link rh-no-such-0: No such device");
        /* Names the kernel could never hold fail before it is asked. */
        assert_int_equal(rh_nl_link_get_by_name(&nl, "", &l, &err), -EINVAL);
        assert_string_equal(err.msg, "get link : bad interface name");
        assert_int_equal(rh_nl_link_get_by_name(&nl, "0123456789abcdef", &l, &err), -EINVAL);
        assert_string_equal(err.msg, "get link 0123456789abcdef: bad interface name");
        /* The socket is still in step: the next request gets its own reply. */
        assert_int_equal(rh_nl_link_get_by_name(&nl, "lo", &l, &err), 0);
}

static void test_link_change_errors_name_the_operation(void **state)
{
        struct rh_error err = {0};
        int r;

        (void)state;
        /* Root: no such device; anyone else: not permitted. Nothing changes. */
        r = rh_nl_link_del(&nl, 0x7ffffff0, &err);
        assert_true(r == -ENODEV || r == -EPERM);
        assert_int_equal(err.code, -r);
        assert_non_null(strstr(err.msg, "delete link 2147483632: "));
        r = rh_nl_link_set_master(&nl, 0x7ffffff0, 1, true, &err);
        assert_true(r == -ENODEV || r == -EPERM);
        assert_non_null(strstr(err.msg, "set link 2147483632 master 1 up: "));
        r = rh_nl_link_set_master(&nl, 0x7ffffff0, 0, false, &err);
        assert_true(r == -ENODEV || r == -EPERM);
        assert_non_null(strstr(err.msg, "set link 2147483632 nomaster: "));
}

static void test_addr_list_lo(void **state)
{
        struct rh_nl_addr addrs[32];
        struct rh_error err = {0};
        size_t n = 0;
        bool found = false;
        uint8_t loopback[4] = {127, 0, 0, 1};

        (void)state;
        assert_int_equal(rh_nl_addr_list(&nl, (int)if_nametoindex("lo"), AF_INET, addrs, 32, &n, &err), 0);
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(addrs[i].family, AF_INET);
                if (memcmp(addrs[i].addr, loopback, 4) == 0 && addrs[i].prefix == 8)
                        found = true;
        }
        assert_true(found);
}

static void test_route_list_filters(void **state)
{
        struct rh_nl_route routes[128];
        struct rh_error err = {0};
        size_t n = 0;

        (void)state;
        assert_int_equal(rh_nl_route_list(&nl, 0, AF_INET6, routes, 128, &n, &err), 0);
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(routes[i].family, AF_INET6);
                assert_int_equal(routes[i].table, 254 /* main */);
        }
}

static void test_bad_arguments_fail_before_the_kernel(void **state)
{
        struct rh_error err = {0};
        struct rh_nl_addr a = {.ifindex = 1, .family = AF_INET, .prefix = 33};
        struct rh_nl_route r = {.ifindex = 1, .family = 99};

        (void)state;
        inet_pton(AF_INET, "192.0.2.1", a.addr);
        assert_int_equal(rh_nl_addr_add(&nl, &a, &err), -EINVAL);
        assert_string_equal(err.msg, "add address 192.0.2.1/33 on link 1: bad family or prefix");
        assert_int_equal(rh_nl_route_replace(&nl, &r, &err), -EINVAL);
        assert_string_equal(err.msg, "replace route ?/0 dev 1 metric 0: bad family or prefix");
}

static void test_kernel_error_names_the_operation(void **state)
{
        struct rh_error err = {0};
        struct rh_nl_addr a = {.ifindex = 0x7ffffff0, .family = AF_INET, .prefix = 24};
        int r;

        (void)state;
        inet_pton(AF_INET, "192.0.2.1", a.addr);
        /* Root: no such device; anyone else: not permitted. Either way an
         * error naming the operation, and nothing changed. */
        r = rh_nl_addr_del(&nl, &a, &err);
        assert_true(r == -ENODEV || r == -EPERM);
        assert_int_equal(err.code, -r);
        assert_non_null(strstr(err.msg, "remove address 192.0.2.1/24 on link 2147483632: "));
}

static void test_closed_socket(void **state)
{
        struct rh_nl closed = {.fd = -EBADF};
        struct rh_nl_link l;
        struct rh_error err = {0};

        (void)state;
        assert_int_equal(rh_nl_link_get(&closed, 1, &l, &err), -EBADF);
        assert_string_equal(err.msg, "get link 1: netlink socket not open");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_link_list_has_lo),
                cmocka_unit_test(test_link_list_capacity),
                cmocka_unit_test(test_link_get),
                cmocka_unit_test(test_link_get_by_name),
                cmocka_unit_test(test_link_change_errors_name_the_operation),
                cmocka_unit_test(test_addr_list_lo),
                cmocka_unit_test(test_route_list_filters),
                cmocka_unit_test(test_bad_arguments_fail_before_the_kernel),
                cmocka_unit_test(test_kernel_error_names_the_operation),
                cmocka_unit_test(test_closed_socket),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
