/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the rtnetlink layer (src/shared/netlink.c): dumps and
 * lookups in the current network namespace, which they leave unchanged
 * (every namespace has lo at index 1 with 127.0.0.1/8), capacity limits,
 * argument checks that fail before the kernel is asked, kernel errors turned
 * into -errno with the operation named, and a closed socket. The route dump's
 * filters run in a fresh network namespace the test makes (root; skipped
 * otherwise) and fills through this layer: an IPv6 address and routes on lo,
 * a route in another table, an IPv4 route. Changing links, addresses and
 * routes on a real veth is covered by tests/integration/test-agent.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* ---- routes, in a network namespace of our own ------------------------- */

/* The namespace the test binary started in, while a test runs in a fresh one. */
static int home_netns = -EBADF;
static struct rh_nl ns_nl = {.fd = -EBADF};

/*
 * Move this process into a fresh network namespace (root only: cmocka skip
 * otherwise) with lo up, and open ns_nl there. The group's socket `nl` stays
 * in the namespace it was opened in; go_home() comes back.
 */
static void enter_fresh_netns(void)
{
        struct rh_error err = {0};

        if (geteuid() != 0) {
                fprintf(stderr, "skip: a fresh network namespace (unshare CLONE_NEWNET) needs root\n");
                skip();
        }
        home_netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        assert_true(home_netns >= 0);
        assert_int_equal(unshare(CLONE_NEWNET), 0);
        assert_int_equal(rh_nl_open(&ns_nl, &err), 0);
        assert_int_equal(rh_nl_link_set_up(&ns_nl, (int)if_nametoindex("lo"), true, &err), 0);
}

static int go_home(void **state)
{
        (void)state;
        rh_nl_close(&ns_nl); /* the namespace goes away with its last socket */
        if (home_netns >= 0) {
                int r = setns(home_netns, CLONE_NEWNET);
                close(home_netns);
                home_netns = -EBADF;
                if (r < 0)
                        return -1;
        }
        return 0;
}

static struct rh_nl_route route6(const char *dst, uint8_t dst_len, int ifindex, uint32_t metric)
{
        struct rh_nl_route r = {.ifindex = ifindex, .family = AF_INET6, .dst_len = dst_len, .metric = metric};

        assert_int_equal(inet_pton(AF_INET6, dst, r.dst), 1);
        return r;
}

static const struct rh_nl_route *find_route(const struct rh_nl_route *routes, size_t n, int family,
                                            const char *dst, uint8_t dst_len)
{
        uint8_t want[16] = {0};
        const struct rh_nl_route *hit = NULL;

        assert_int_equal(inet_pton(family, dst, want), 1);
        for (size_t i = 0; i < n; i++)
                if (routes[i].family == family && routes[i].dst_len == dst_len &&
                    memcmp(routes[i].dst, want, rh_nl_addr_len(family)) == 0) {
                        assert_null(hit); /* listed once */
                        hit = &routes[i];
                }
        return hit;
}

static void test_route_list_filters(void **state)
{
        struct rh_nl_route routes[128], before[128];
        struct rh_error err = {0};
        size_t n = 0, n_before = 0;
        int lo;

        (void)state;
        enter_fresh_netns();
        lo = (int)if_nametoindex("lo");
        assert_int_equal(lo, 1);

        /* Whatever the kernel puts in a fresh namespace's main table on its own
         * (nothing for IPv6 on current kernels, ::1 on older ones); none of ours. */
        assert_int_equal(rh_nl_route_list(&ns_nl, 0, AF_INET6, before, 128, &n_before, &err), 0);
        assert_null(find_route(before, n_before, AF_INET6, "2001:db8:1::", 64));
        assert_null(find_route(before, n_before, AF_INET6, "2001:db8:2::", 64));

        /* An address brings a kernel prefix route; then a static route of ours,
         * one in another table, and an IPv4 route, which the filters must drop. */
        struct rh_nl_addr a = {.ifindex = lo, .family = AF_INET6, .prefix = 64};
        assert_int_equal(inet_pton(AF_INET6, "2001:db8:1::1", a.addr), 1);
        assert_int_equal(rh_nl_addr_add(&ns_nl, &a, &err), 0);
        struct rh_nl_route r2 = route6("2001:db8:2::", 64, lo, 1024);
        assert_int_equal(rh_nl_route_replace(&ns_nl, &r2, &err), 0);
        struct rh_nl_route r_other_table = route6("2001:db8:4::", 64, lo, 1024);
        r_other_table.table = 100;
        assert_int_equal(rh_nl_route_replace(&ns_nl, &r_other_table, &err), 0);
        struct rh_nl_route r4 = {.ifindex = lo, .family = AF_INET, .dst_len = 24};
        assert_int_equal(inet_pton(AF_INET, "192.0.2.0", r4.dst), 1);
        assert_int_equal(rh_nl_route_replace(&ns_nl, &r4, &err), 0);

        /* IPv6, main table: exactly the kernel's own plus our two. */
        assert_int_equal(rh_nl_route_list(&ns_nl, 0, AF_INET6, routes, 128, &n, &err), 0);
        assert_int_equal(n, n_before + 2);
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(routes[i].family, AF_INET6);
                assert_int_equal(routes[i].table, 254 /* main */);
                assert_int_equal(routes[i].type, RTN_UNICAST);
        }
        const struct rh_nl_route *prefix = find_route(routes, n, AF_INET6, "2001:db8:1::", 64);
        assert_non_null(prefix);
        assert_int_equal(prefix->ifindex, lo);
        assert_int_equal(prefix->protocol, RTPROT_KERNEL);
        assert_int_equal(prefix->metric, 256);
        assert_false(prefix->has_gateway);
        const struct rh_nl_route *ours = find_route(routes, n, AF_INET6, "2001:db8:2::", 64);
        assert_non_null(ours);
        assert_int_equal(ours->ifindex, lo);
        assert_int_equal(ours->protocol, RTPROT_STATIC);
        assert_int_equal(ours->metric, 1024);
        assert_false(ours->has_gateway);
        assert_null(find_route(routes, n, AF_INET6, "2001:db8:4::", 64)); /* table 100 */

        /* Filtered by link: all of ours are on lo, none on a link that does not exist. */
        assert_int_equal(rh_nl_route_list(&ns_nl, lo, AF_INET6, routes, 128, &n, &err), 0);
        assert_non_null(find_route(routes, n, AF_INET6, "2001:db8:1::", 64));
        assert_non_null(find_route(routes, n, AF_INET6, "2001:db8:2::", 64));
        assert_int_equal(rh_nl_route_list(&ns_nl, 0x7ffffff0, AF_INET6, routes, 128, &n, &err), 0);
        assert_int_equal(n, 0);

        /* IPv4 only: the one IPv4 main-table route (127.0.0.0/8 is in table local). */
        assert_int_equal(rh_nl_route_list(&ns_nl, 0, AF_INET, routes, 128, &n, &err), 0);
        assert_int_equal(n, 1);
        assert_non_null(find_route(routes, n, AF_INET, "192.0.2.0", 24));
        assert_int_equal(routes[0].scope, RT_SCOPE_LINK);
        assert_int_equal(routes[0].protocol, RTPROT_STATIC);

        /* Both families. */
        assert_int_equal(rh_nl_route_list(&ns_nl, 0, AF_UNSPEC, routes, 128, &n, &err), 0);
        assert_int_equal(n, n_before + 3);

        /* Too small an array: -ENOBUFS, count untouched, and the socket still in step. */
        n = 77;
        assert_int_equal(rh_nl_route_list(&ns_nl, 0, AF_INET6, routes, 1, &n, &err), -ENOBUFS);
        assert_int_equal(n, 77);
        assert_string_equal(err.msg, "list routes: too many entries");

        /* Removed, it is gone from the list; removed twice, -ESRCH. */
        assert_int_equal(rh_nl_route_del(&ns_nl, &r2, &err), 0);
        assert_int_equal(rh_nl_route_list(&ns_nl, 0, AF_INET6, routes, 128, &n, &err), 0);
        assert_int_equal(n, n_before + 1);
        assert_null(find_route(routes, n, AF_INET6, "2001:db8:2::", 64));
        assert_int_equal(rh_nl_route_del(&ns_nl, &r2, &err), -ESRCH);
        assert_non_null(strstr(err.msg, "remove route 2001:db8:2::/64 dev 1 metric 1024: "));
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
                cmocka_unit_test_teardown(test_route_list_filters, go_home),
                cmocka_unit_test(test_bad_arguments_fail_before_the_kernel),
                cmocka_unit_test(test_kernel_error_names_the_operation),
                cmocka_unit_test(test_closed_socket),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
