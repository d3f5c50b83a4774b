/* SPDX-License-Identifier: MIT */
/*
 * Applying a request to the kernel, through src/shared/netlink.c (no fork,
 * no exec of ip). Order, per interface: MAC (live; down/up only when the
 * driver refuses; the old MAC's EUI-64 link-local address replaced by the
 * new one's), MTU, link up (routes need it), addresses (old global ones
 * out first so no new address becomes a secondary that dies with its
 * primary), routes, neighbour flush; then gratuitous ARP / unsolicited NA,
 * host name and resolv.conf.
 *
 * Every step first compares with what the kernel has and changes only what
 * differs, so applying the same request twice changes nothing the second time.
 * apply_validate() checks the request against the kernel's view before the
 * first change; apply_request() records which steps completed so a failure
 * half-way can be reported exactly.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <sys/wait.h>
#include <sys/random.h>
#include <stdlib.h>
#include <signal.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "cleanup.h"
#include "io.h"

static const struct {
        uint32_t bit;
        const char *name;
} steps[] = {
        {RH_APPLIED_MAC, "mac"},           {RH_APPLIED_MTU, "mtu"},
        {RH_APPLIED_LINK_UP, "link-up"},   {RH_APPLIED_ADDRS, "addresses"},
        {RH_APPLIED_ROUTES, "routes"},     {RH_APPLIED_NEIGH, "neighbours"},
        {RH_APPLIED_ANNOUNCE, "announce"}, {RH_APPLIED_HOSTNAME, "hostname"},
        {RH_APPLIED_DNS, "dns"},           {RH_APPLIED_CLOCK, "clock"},
        {RH_APPLIED_MACHINE_ID, "machine-id"}, {RH_APPLIED_HOOKS, "hooks"},
};

static int kernel_family(uint8_t family)
{
        return family == 4 ? AF_INET : AF_INET6;
}

static const struct rh_nl_link *find_link(const struct agent *a, int ifindex)
{
        for (size_t i = 0; i < a->n_links; i++)
                if (a->links[i].ifindex == ifindex)
                        return &a->links[i];
        return NULL;
}

static int resolve_iface(struct agent *a, const struct rh_iface *ifc, int *ret_ifindex)
{
        const struct rh_nl_link *by_new_mac = NULL;

        for (size_t i = 0; i < a->n_links; i++) {
                const struct rh_nl_link *l = &a->links[i];
                bool name_ok = !(ifc->match & RH_MATCH_NAME) || strcmp(l->name, ifc->name) == 0;

                if (!name_ok)
                        continue;
                if (!(ifc->match & RH_MATCH_MAC) ||
                    (l->mac_len == 6 && memcmp(l->mac, ifc->match_mac, 6) == 0)) {
                        *ret_ifindex = l->ifindex;
                        return 0;
                }
                /* Matched by the template's MAC but already carrying the new
                 * one: this request (or its twin) was applied before. */
                if (ifc->has_mac && l->mac_len == 6 && memcmp(l->mac, ifc->mac, 6) == 0)
                        by_new_mac = l;
        }
        if (by_new_mac) {
                *ret_ifindex = by_new_mac->ifindex;
                return 0;
        }
        return -ENODEV;
}

static void describe_iface(const struct rh_iface *ifc, char *buf, size_t len)
{
        char mac[18];

        if ((ifc->match & RH_MATCH_NAME) && (ifc->match & RH_MATCH_MAC))
                snprintf(buf, len, "%s with MAC %s", ifc->name, rh_mac_format(ifc->match_mac, mac));
        else if (ifc->match & RH_MATCH_NAME)
                snprintf(buf, len, "%s", ifc->name);
        else
                snprintf(buf, len, "MAC %s", rh_mac_format(ifc->match_mac, mac));
}

static bool in_subnet(const uint8_t *addr, const uint8_t *net, unsigned prefix)
{
        for (unsigned bit = 0; bit < prefix; bit++) {
                uint8_t m = (uint8_t)(0x80u >> (bit % 8));
                if ((addr[bit / 8] & m) != (net[bit / 8] & m))
                        return false;
        }
        return true;
}

void apply_capture(struct agent *a)
{
        struct rh_error ignore = {0};

        a->links_at_arm = rh_nl_link_list(&a->nl, a->links, ELEMENTSOF(a->links), &a->n_links, &ignore) == 0;
}

/* True if every interface of @req resolves in a->links as it is. */
static bool resolves(struct agent *a, const struct rh_request *req)
{
        for (unsigned i = 0; i < req->n_ifaces; i++) {
                int ifindex;
                if (resolve_iface(a, &req->ifaces[i], &ifindex) < 0)
                        return false;
        }
        return true;
}

int apply_validate(struct agent *a, const struct rh_request *req, struct rh_error *err)
{
        int r;

        /*
         * A restored clone's links are the snapshot's, as the agent saw them
         * when it armed: resolve from that copy and skip a dump (one netlink
         * round trip). The copy is used once; anything it does not resolve,
         * and every later check, goes to the kernel.
         */
        a->links_stale_ok = a->links_at_arm && resolves(a, req);
        a->links_at_arm = false;
        if (!a->links_stale_ok) {
                r = rh_nl_link_list(&a->nl, a->links, ELEMENTSOF(a->links), &a->n_links, err);
                if (r < 0)
                        return r;
        }
        for (unsigned i = 0; i < req->n_ifaces; i++) {
                char what[64];

                describe_iface(&req->ifaces[i], what, sizeof(what));
                r = resolve_iface(a, &req->ifaces[i], &a->result.ifindex[i]);
                if (r < 0)
                        return rh_error_set(err, r, "interface %u (%s): no such interface", i, what);
                for (unsigned j = 0; j < i; j++)
                        if (a->result.ifindex[j] == a->result.ifindex[i])
                                return rh_error_set(err, -EINVAL, "interfaces %u and %u are the same link", j,
                                                    i);
        }
        /* An IPv4 gateway must sit on a subnet the request gives its link,
         * or the kernel refuses the route after the addresses changed. */
        for (unsigned i = 0; i < req->n_routes; i++) {
                const struct rh_route *rt = &req->routes[i];
                bool has_v4 = false, on_link = false;

                if (rt->family != 4 || !rt->has_gateway || !(req->flags & RH_REQ_REPLACE_ADDRS))
                        continue;
                for (unsigned j = 0; j < req->n_addrs; j++) {
                        const struct rh_addr *ad = &req->addrs[j];
                        if (ad->iface != rt->iface || ad->family != 4)
                                continue;
                        has_v4 = true;
                        if (in_subnet(rt->gateway, ad->addr, ad->prefix))
                                on_link = true;
                }
                if (has_v4 && !on_link) {
                        char gw[INET6_ADDRSTRLEN];
                        inet_ntop(AF_INET, rt->gateway, gw, sizeof(gw));
                        return rh_error_set(err, -EINVAL,
                                            "route %u: gateway %s is on none of interface %u's subnets", i,
                                            gw, rt->iface);
                }
        }
        return 0;
}

/* ------------------------------------------------------------------ */

/*
 * The kernel applies the attributes of one RTM_NEWLINK in turn and keeps the
 * ones done before a failure: ask it what holds now, so the ack says exactly
 * which of MAC, MTU and link-up are in effect and which one failed.
 */
static void link_report_partial(struct agent *a, const struct rh_iface *ifc, int ifindex,
                                struct apply_result *res)
{
        struct rh_error ignore = {0};
        struct rh_nl_link now;
        bool mac_ok, mtu_ok, up_ok;

        if (rh_nl_link_get(&a->nl, ifindex, &now, &ignore) < 0)
                return; /* keep the first-step guess */
        mac_ok = !ifc->has_mac || (now.mac_len == 6 && memcmp(now.mac, ifc->mac, 6) == 0);
        mtu_ok = !ifc->mtu || now.mtu == ifc->mtu;
        up_ok = now.flags & IFF_UP;
        res->applied &= ~(uint32_t)(RH_APPLIED_MAC | RH_APPLIED_MTU | RH_APPLIED_LINK_UP);
        res->applied |= (mac_ok ? RH_APPLIED_MAC : 0) | (mtu_ok ? RH_APPLIED_MTU : 0) |
                        (up_ok ? RH_APPLIED_LINK_UP : 0);
        res->failed_step = !mac_ok ? RH_APPLIED_MAC : !mtu_ok ? RH_APPLIED_MTU : RH_APPLIED_LINK_UP;
}

/* fe80::/64 with the modified EUI-64 interface identifier of @mac (RFC 4291 2.5.1). */
static void link_local_eui64(const uint8_t mac[6], uint8_t ret_addr[16])
{
        memset(ret_addr, 0, 16);
        ret_addr[0] = 0xfe;
        ret_addr[1] = 0x80;
        ret_addr[8] = mac[0] ^ 0x02;
        ret_addr[9] = mac[1];
        ret_addr[10] = mac[2];
        ret_addr[11] = 0xff;
        ret_addr[12] = 0xfe;
        ret_addr[13] = mac[3];
        ret_addr[14] = mac[4];
        ret_addr[15] = mac[5];
}

/*
 * After a live MAC change the kernel keeps the link-local address it derived
 * from the old MAC (it derives one only when the link comes up): every clone
 * of a template would carry the template's fe80:: address. Replace the old
 * EUI-64 address by the new MAC's, as a down/up would. Links whose kernel
 * does not use EUI-64 (addr_gen_mode stable-privacy, random, none) have no
 * such address and are left alone, as is a link without IPv6.
 */
static int relink_local(struct agent *a, int ifindex, const uint8_t old_mac[6], const uint8_t new_mac[6],
                        struct apply_result *res, struct rh_error *err)
{
        struct rh_nl_addr old_ll = {.ifindex = ifindex, .family = AF_INET6, .prefix = 64};
        struct rh_nl_addr new_ll = {.ifindex = ifindex, .family = AF_INET6, .prefix = 64};
        bool have_old = false, have_new = false;
        size_t n = 0;
        int r;

        link_local_eui64(old_mac, old_ll.addr);
        link_local_eui64(new_mac, new_ll.addr);
        /* Every family: the address step reuses this dump (a->addrs_ifindex). */
        r = rh_nl_addr_list(&a->nl, ifindex, AF_UNSPEC, a->addrs, ELEMENTSOF(a->addrs), &n, err);
        if (r < 0)
                return rh_error_prefix(err, r, "link-local address");
        a->addrs_ifindex = ifindex;
        a->n_addrs = n;
        for (size_t i = 0; i < n; i++) {
                if (a->addrs[i].family != AF_INET6 || a->addrs[i].prefix != 64)
                        continue;
                if (memcmp(a->addrs[i].addr, old_ll.addr, 16) == 0)
                        have_old = true;
                if (memcmp(a->addrs[i].addr, new_ll.addr, 16) == 0)
                        have_new = true;
        }
        if (!have_old)
                return 0;
        if (!have_new) {
                r = rh_nl_addr_add(&a->nl, &new_ll, err);
                if (r < 0) {
                        a->addrs_ifindex = 0;
                        return rh_error_prefix(err, r, "add the new MAC's link-local address");
                }
                res->changes++;
        }
        r = rh_nl_addr_del(&a->nl, &old_ll, err);
        if (r < 0 && r != -EADDRNOTAVAIL) {
                a->addrs_ifindex = 0;
                return rh_error_prefix(err, r, "remove the old MAC's link-local address");
        }
        if (r >= 0)
                res->changes++;
        /* Keep the copy current: old link-local out, new one in. */
        for (size_t i = 0; i < a->n_addrs; i++)
                if (a->addrs[i].family == AF_INET6 && a->addrs[i].prefix == 64 &&
                    memcmp(a->addrs[i].addr, old_ll.addr, 16) == 0)
                        a->addrs[i--] = a->addrs[--a->n_addrs];
        if (!have_new) {
                if (a->n_addrs < ELEMENTSOF(a->addrs)) {
                        new_ll.scope = RT_SCOPE_LINK;
                        a->addrs[a->n_addrs++] = new_ll;
                } else
                        a->addrs_ifindex = 0; /* no room: the address step dumps again */
        }
        return 0;
}

static int apply_link(struct agent *a, const struct rh_iface *ifc, int ifindex, struct apply_result *res,
                      struct rh_error *err)
{
        const struct rh_nl_link *l = find_link(a, ifindex);
        bool mac_change, mtu_change, up_change;
        int r;

        if (!l)
                return rh_error_set(err, -ENODEV, "link %d vanished", ifindex);
        mac_change = ifc->has_mac && (l->mac_len != 6 || memcmp(l->mac, ifc->mac, 6) != 0);
        mtu_change = ifc->mtu && ifc->mtu != l->mtu;
        up_change = !(l->flags & IFF_UP);
        if (a->links_stale_ok && !mac_change && !mtu_change && !up_change) {
                /* Nothing to do by the arm-time copy: make sure with the kernel. */
                struct rh_nl_link now;
                size_t k = (size_t)(l - a->links);

                r = rh_nl_link_get(&a->nl, ifindex, &now, err);
                if (r < 0)
                        return r;
                a->links[k] = now;
                l = &a->links[k];
                mac_change = ifc->has_mac && (l->mac_len != 6 || memcmp(l->mac, ifc->mac, 6) != 0);
                mtu_change = ifc->mtu && ifc->mtu != l->mtu;
                up_change = !(l->flags & IFF_UP);
        }

        /* One message for all three: every round trip counts after a resume. */
        if (mac_change || mtu_change || up_change) {
                res->failed_step = mac_change   ? RH_APPLIED_MAC
                                   : mtu_change ? RH_APPLIED_MTU
                                                : RH_APPLIED_LINK_UP;
                /* Up in the same message whenever one is sent: free, and right even
                 * if the arm-time copy said up and something took it down since. */
                r = rh_nl_link_set(&a->nl, ifindex, mac_change ? ifc->mac : NULL, mtu_change ? ifc->mtu : 0,
                                   up_change || a->links_stale_ok ? 1 : -1, err);
                if (r == -EBUSY && mac_change && (l->flags & IFF_UP)) {
                        /* Drivers without IFF_LIVE_ADDR_CHANGE want the link
                         * down for a new MAC: down, change, up. */
                        r = rh_nl_link_set_up(&a->nl, ifindex, false, err);
                        if (r >= 0) {
                                r = rh_nl_link_set(&a->nl, ifindex, ifc->mac, mtu_change ? ifc->mtu : 0, 1,
                                                   err);
                                if (r < 0) {
                                        /* Roll back: do not leave the old identity down. */
                                        struct rh_error ignore = {0};
                                        (void)rh_nl_link_set_up(&a->nl, ifindex, true, &ignore);
                                }
                        }
                }
                if (r < 0) {
                        link_report_partial(a, ifc, ifindex, res);
                        return r;
                }
                res->changes += (unsigned)mac_change + (unsigned)mtu_change + (unsigned)up_change;
        }
        if (mac_change && l->mac_len == 6) {
                res->failed_step = RH_APPLIED_MAC;
                r = relink_local(a, ifindex, l->mac, ifc->mac, res, err);
                if (r < 0) {
                        res->applied |= RH_APPLIED_MTU | RH_APPLIED_LINK_UP;
                        return r;
                }
        }
        res->applied |= RH_APPLIED_MAC | RH_APPLIED_MTU | RH_APPLIED_LINK_UP;
        return 0;
}

static bool addr_wanted(const struct rh_request *req, unsigned iface, const struct rh_nl_addr *have)
{
        for (unsigned i = 0; i < req->n_addrs; i++) {
                const struct rh_addr *ad = &req->addrs[i];

                if (ad->iface == iface && kernel_family(ad->family) == have->family &&
                    ad->prefix == have->prefix &&
                    memcmp(ad->addr, have->addr, rh_nl_addr_len(have->family)) == 0)
                        return true;
        }
        return false;
}

static int apply_addrs(struct agent *a, const struct rh_request *req, unsigned iface, int ifindex,
                       struct apply_result *res, struct rh_error *err)
{
        size_t n = 0;
        int r;

        res->failed_step = RH_APPLIED_ADDRS;
        if (a->addrs_ifindex == ifindex)
                n = a->n_addrs; /* the link step's dump, kept current */
        else {
                r = rh_nl_addr_list(&a->nl, ifindex, AF_UNSPEC, a->addrs, ELEMENTSOF(a->addrs), &n, err);
                if (r < 0)
                        return r;
        }
        a->addrs_ifindex = 0; /* changed from here on */
        if (req->flags & RH_REQ_REPLACE_ADDRS) {
                /* Only global addresses: link-local IPv6 belongs to the link. */
                for (size_t i = 0; i < n; i++) {
                        if (a->addrs[i].scope != RT_SCOPE_UNIVERSE || addr_wanted(req, iface, &a->addrs[i]))
                                continue;
                        r = rh_nl_addr_del(&a->nl, &a->addrs[i], err);
                        if (r == -EADDRNOTAVAIL)
                                continue; /* went with its primary */
                        if (r < 0)
                                return r;
                        res->changes++;
                }
        }
        for (unsigned i = 0; i < req->n_addrs; i++) {
                const struct rh_addr *ad = &req->addrs[i];
                struct rh_nl_addr want = {
                        .ifindex = ifindex,
                        .family = (uint8_t)kernel_family(ad->family),
                        .prefix = ad->prefix,
                };
                bool present = false;

                if (ad->iface != iface)
                        continue;
                memcpy(want.addr, ad->addr, 16);
                for (size_t j = 0; j < n; j++)
                        if (a->addrs[j].family == want.family && a->addrs[j].prefix == want.prefix &&
                            memcmp(a->addrs[j].addr, want.addr, rh_nl_addr_len(want.family)) == 0)
                                present = true;
                if (present)
                        continue;
                r = rh_nl_addr_add(&a->nl, &want, err);
                if (r < 0)
                        return r;
                res->changes++;
        }
        return 0;
}

static bool route_same_key(const struct rh_route *rt, const struct rh_nl_route *have)
{
        uint32_t metric = rt->metric;

        if (rt->family == 6 && metric == 0)
                metric = 1024;
        return kernel_family(rt->family) == have->family && rt->dst_prefix == have->dst_len &&
               memcmp(rt->dst, have->dst, rh_nl_addr_len(have->family)) == 0 && metric == have->metric;
}

static bool route_identical(const struct rh_route *rt, const struct rh_nl_route *have)
{
        size_t alen = rh_nl_addr_len(have->family);

        return route_same_key(rt, have) && rt->has_gateway == have->has_gateway &&
               (!rt->has_gateway || memcmp(rt->gateway, have->gateway, alen) == 0);
}

static int apply_routes(struct agent *a, const struct rh_request *req, unsigned iface, int ifindex,
                        struct apply_result *res, struct rh_error *err)
{
        size_t n = 0;
        int r;

        res->failed_step = RH_APPLIED_ROUTES;
        r = rh_nl_route_list(&a->nl, ifindex, AF_UNSPEC, a->routes, ELEMENTSOF(a->routes), &n, err);
        if (r < 0)
                return r;
        if (req->flags & RH_REQ_REPLACE_ADDRS) {
                /* Drop the template's configured routes on this link that the
                 * request does not carry; kernel prefix routes and router
                 * advertisements look after themselves. */
                for (size_t i = 0; i < n; i++) {
                        const struct rh_nl_route *have = &a->routes[i];
                        bool wanted = false;

                        if (have->protocol == RTPROT_KERNEL || have->protocol == RTPROT_RA)
                                continue;
                        for (unsigned j = 0; j < req->n_routes; j++)
                                if (req->routes[j].iface == iface && route_same_key(&req->routes[j], have))
                                        wanted = true;
                        if (wanted)
                                continue;
                        r = rh_nl_route_del(&a->nl, have, err);
                        if (r == -ESRCH)
                                continue;
                        if (r < 0)
                                return r;
                        res->changes++;
                }
        }
        for (unsigned j = 0; j < req->n_routes; j++) {
                const struct rh_route *rt = &req->routes[j];
                struct rh_nl_route want = {
                        .ifindex = ifindex,
                        .family = (uint8_t)kernel_family(rt->family),
                        .dst_len = rt->dst_prefix,
                        .has_gateway = rt->has_gateway,
                        .metric = rt->metric,
                };
                bool present = false;

                if (rt->iface != iface)
                        continue;
                for (size_t i = 0; i < n; i++)
                        if (route_identical(rt, &a->routes[i]) && a->routes[i].ifindex == ifindex)
                                present = true;
                if (present)
                        continue;
                memcpy(want.dst, rt->dst, 16);
                memcpy(want.gateway, rt->gateway, 16);
                r = rh_nl_route_replace(&a->nl, &want, err);
                if (r < 0)
                        return r;
                res->changes++;
        }
        return 0;
}

/* ------------------------------------------------------------------ */

static int apply_hostname(struct agent *a, const char *name, struct apply_result *res, struct rh_error *err)
{
        struct utsname u;
        size_t len = strlen(name);

        res->failed_step = RH_APPLIED_HOSTNAME;
        AGENT_SYSCALL(a);
        if (uname(&u) == 0 && strcmp(u.nodename, name) == 0)
                return 0;
        AGENT_SYSCALL(a);
        if (sethostname(name, len) < 0)
                return rh_error_set(err, -errno, "set host name %s: %s", name, strerror(errno));
        res->changes++;
        if (a->opt.hostname_file && a->opt.hostname_file[0]) {
                char tmp[512], line[RH_HOSTNAME_MAX + 2];
                _cleanup_close_ int fd = -EBADF;
                int r;

                snprintf(tmp, sizeof(tmp), "%s.rehome-tmp", a->opt.hostname_file);
                snprintf(line, sizeof(line), "%s\n", name);
                a->syscalls += 4; /* open, write, rename, close */
                fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                if (fd < 0)
                        return rh_error_set(err, -errno, "%s: %s", tmp, strerror(errno));
                r = write_full(fd, line, strlen(line));
                if (r < 0 || rename(tmp, a->opt.hostname_file) < 0) {
                        r = r < 0 ? r : -errno;
                        unlink(tmp);
                        return rh_error_set(err, r, "%s: %s", a->opt.hostname_file, strerror(-r));
                }
        }
        return 0;
}

/* resolv.conf is replaced whole by rename(): a reader sees the old or the
 * new file, never half of one. */
static int apply_dns(struct agent *a, const struct rh_request *req, struct apply_result *res,
                     struct rh_error *err)
{
        const char *path = a->opt.resolv_conf;
        char *text = a->io_buf, tmp[512];
        size_t len = 0, cap = sizeof(a->io_buf);
        _cleanup_close_ int fd = -EBADF;
        int r;

        res->failed_step = RH_APPLIED_DNS;
        /* systemd-resolved's symlink is never replaced: handoff.c gives it the DNS. */
        if (a->opt.handoff && handoff_resolv_is_resolved(path))
                return 1;
        len += (size_t)snprintf(text + len, cap - len, "# written by rehome-agent\n");
        for (unsigned i = 0; i < req->n_dns; i++) {
                char ip[64];
                len += (size_t)snprintf(text + len, cap - len, "nameserver %s\n",
                                        rh_ip_format(&req->dns[i], ip));
        }
        if (req->n_search) {
                len += (size_t)snprintf(text + len, cap - len, "search");
                for (unsigned i = 0; i < req->n_search; i++)
                        len += (size_t)snprintf(text + len, cap - len, " %s", req->search[i]);
                len += (size_t)snprintf(text + len, cap - len, "\n");
        }
        /* Unchanged? Compare without allocating: the tail of io_buf. */
        AGENT_SYSCALL(a);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
                a->syscalls += 2; /* read, close */
                char *old = a->io_buf + len + 1;
                ssize_t n = read(fd, old, cap - len - 1);

                if (n == (ssize_t)len && memcmp(old, text, len) == 0)
                        return 0;
                close(TAKE_FD(fd));
        }
        snprintf(tmp, sizeof(tmp), "%s.rehome-tmp", path);
        a->syscalls += 4; /* open, write, rename, close */
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return rh_error_set(err, -errno, "%s: %s", tmp, strerror(errno));
        r = write_full(fd, text, len);
        if (r < 0) {
                unlink(tmp);
                return rh_error_set(err, r, "%s: %s", tmp, strerror(-r));
        }
        if (rename(tmp, path) < 0) {
                r = -errno;
                unlink(tmp);
                return rh_error_set(err, r, "rename %s to %s: %s", tmp, path, strerror(-r));
        }
        res->changes++;
        return 0;
}

static int apply_announce(struct agent *a, const struct rh_request *req, struct apply_result *res,
                          struct rh_error *err)
{
        res->failed_step = RH_APPLIED_ANNOUNCE;
        for (unsigned i = 0; i < req->n_addrs; i++) {
                const struct rh_addr *ad = &req->addrs[i];
                const struct rh_iface *ifc = &req->ifaces[ad->iface];
                int ifindex = res->ifindex[ad->iface];
                const struct rh_nl_link *l = find_link(a, ifindex);
                const uint8_t *mac;
                int r;

                /* The link's MAC is the request's new one, or the one it had. */
                if (ifc->has_mac)
                        mac = ifc->mac;
                else if (l && l->mac_len == 6)
                        mac = l->mac;
                else
                        continue; /* no link layer to announce on */
                r = ad->family == 4 ? announce_ipv4(a, ifindex, mac, ad->addr)
                                    : announce_ipv6(a, ifindex, mac, ad->addr);
                if (r < 0) {
                        char ip[INET6_ADDRSTRLEN];
                        inet_ntop(kernel_family(ad->family), ad->addr, ip, sizeof(ip));
                        return rh_error_set(err, r, "announce %s on %s: %s", ip, l ? l->name : "?",
                                            strerror(-r));
                }
        }
        return 0;
}

/*
 * A fresh machine id (systemd's DHCP DUID and stable IPv6 addresses derive
 * from it: clones must not share the template's). Only where the file
 * exists: a guest without one has nothing that reads it.
 */
static int apply_machine_id(struct agent *a, struct apply_result *res, struct rh_error *err)
{
        const char *path = a->opt.machine_id_file;
        char tmp[PATH_MAX], id[34];
        uint8_t b[16];
        struct stat st;
        int r;

        AGENT_SYSCALL(a);
        if (!path || !*path || stat(path, &st) < 0 || !S_ISREG(st.st_mode))
                return 0;
        a->syscalls += 5; /* getrandom, open, write, close, rename */
        if (getrandom(b, sizeof(b), 0) != sizeof(b))
                return rh_error_set(err, -EIO, "machine-id: no randomness");
        b[6] = (b[6] & 0x0f) | 0x40; /* a v4 UUID, as systemd-machine-id-setup writes */
        b[8] = (b[8] & 0x3f) | 0x80;
        for (size_t i = 0; i < sizeof(b); i++)
                snprintf(id + 2 * i, 3, "%02x", b[i]);
        id[32] = '\n';
        id[33] = '\0';
        snprintf(tmp, sizeof(tmp), "%s.rehome-tmp", path);
        {
                _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0444);
                r = fd < 0 || write_full(fd, id, 33) < 0 ? -EIO : 0;
        }
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                /* A bind-mounted file cannot be renamed over: write it in place. */
                _cleanup_close_ int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
                if (fd < 0 || write_full(fd, id, 33) < 0)
                        return rh_error_set(err, fd < 0 ? -errno : -EIO, "%s: %s", path, strerror(errno));
        }
        res->applied |= RH_APPLIED_MACHINE_ID;
        return 0;
}

static int name_sort(const struct dirent **x, const struct dirent **y)
{
        return strcmp((*x)->d_name, (*y)->d_name);
}

/* One hook, bounded in time; 0 if it exited 0. */
static int run_hook(struct agent *a, const char *dir, const char *name, char *const envp[], struct rh_error *err)
{
        char path[PATH_MAX];
        int status = 0;
        pid_t pid;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        pid = fork();
        if (pid < 0)
                return rh_error_set(err, -errno, "hook %s: fork: %s", name, strerror(errno));
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR);
                if (null >= 0)
                        dup2(null, 0);
                execve(path, (char *[]){path, NULL}, envp);
                _exit(127);
        }
        uint64_t deadline = now_ns() + (uint64_t)a->opt.hook_timeout_ms * 1000000ull;
        for (;;) {
                pid_t w = waitpid(pid, &status, WNOHANG);
                if (w == pid)
                        break;
                if (w < 0 && errno != EINTR)
                        return rh_error_set(err, -errno, "hook %s: wait: %s", name, strerror(errno));
                if (now_ns() >= deadline) {
                        kill(pid, SIGKILL);
                        waitpid(pid, NULL, 0);
                        return rh_error_set(err, -ETIMEDOUT, "hook %s: still running after %u ms (killed)", name,
                                            a->opt.hook_timeout_ms);
                }
                struct timespec ts = {0, 1000000};
                nanosleep(&ts, NULL);
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        if (WIFEXITED(status))
                return rh_error_set(err, -ECANCELED, "hook %s exited %d", name, WEXITSTATUS(status));
        return rh_error_set(err, -ECANCELED, "hook %s killed by signal %d", name, WTERMSIG(status));
}

/*
 * Post-apply hooks: every executable regular file in the hooks directory,
 * in name order, with the new identity in its environment. The first that
 * fails (non-zero exit, signal, timeout) fails the request's ack; none is
 * run when the directory does not exist.
 */
static int run_hooks(struct agent *a, const struct rh_request *req, const struct apply_result *res_in,
                     struct apply_result *res, struct rh_error *err)
{
        const char *dir = a->opt.hooks_dir;
        struct dirent **names = NULL;
        char e_iface[64], e_mac[64], e_ip[96] = "REHOME_IP=", e_ip6[96] = "REHOME_IP6=", e_gw[80] = "REHOME_GATEWAY=",
                e_host[96], e_seq[32], e_nonce[48];
        int n, r = 0, ran = 0;

        (void)res_in;
        if (!dir || !*dir)
                return 0;
        AGENT_SYSCALL(a); /* the open of scandir (more if the directory exists) */
        n = scandir(dir, &names, NULL, name_sort);
        if (n < 0)
                return errno == ENOENT ? 0 : rh_error_set(err, -errno, "hooks %s: %s", dir, strerror(errno));
        snprintf(e_iface, sizeof(e_iface), "REHOME_IFACE=%s", req->ifaces[0].name);
        snprintf(e_mac, sizeof(e_mac), "REHOME_MAC=%02x:%02x:%02x:%02x:%02x:%02x", req->ifaces[0].mac[0],
                 req->ifaces[0].mac[1], req->ifaces[0].mac[2], req->ifaces[0].mac[3], req->ifaces[0].mac[4],
                 req->ifaces[0].mac[5]);
        for (unsigned i = 0; i < req->n_addrs; i++) {
                char *dst = req->addrs[i].family == 4 ? e_ip : e_ip6;
                if (strchr(dst, '=')[1])
                        continue; /* the first of each family */
                char ip[INET6_ADDRSTRLEN];
                inet_ntop(kernel_family(req->addrs[i].family), req->addrs[i].addr, ip, sizeof(ip));
                snprintf(strchr(dst, '=') + 1, 80, "%s/%u", ip, req->addrs[i].prefix);
        }
        for (unsigned i = 0; i < req->n_routes; i++)
                if (req->routes[i].family == 4 && req->routes[i].dst_prefix == 0 && req->routes[i].has_gateway &&
                    !e_gw[sizeof("REHOME_GATEWAY=") - 1]) {
                        char ip[INET6_ADDRSTRLEN];
                        inet_ntop(AF_INET, req->routes[i].gateway, ip, sizeof(ip));
                        snprintf(e_gw + sizeof("REHOME_GATEWAY=") - 1, sizeof(e_gw) - sizeof("REHOME_GATEWAY="),
                                 "%s", ip);
                }
        snprintf(e_host, sizeof(e_host), "REHOME_HOSTNAME=%s", req->hostname);
        snprintf(e_seq, sizeof(e_seq), "REHOME_SEQ=%u", req->seq);
        snprintf(e_nonce, sizeof(e_nonce), "REHOME_NONCE=%016llx", (unsigned long long)req->nonce);
        char *envp[] = {e_iface, e_mac, e_ip, e_ip6, e_gw, e_host, e_seq, e_nonce,
                        (char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
        for (int i = 0; i < n; i++) {
                char path[PATH_MAX];
                struct stat st;
                snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
                if (r == 0 && names[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
                    access(path, X_OK) == 0) {
                        r = run_hook(a, dir, names[i]->d_name, envp, err);
                        ran++;
                }
                free(names[i]);
        }
        free(names);
        if (r == 0 && ran)
                res->applied |= RH_APPLIED_HOOKS;
        return r;
}

/* The steps @req asks for. */
static uint32_t requested_steps(const struct rh_request *req)
{
        uint32_t m =
                RH_APPLIED_MAC | RH_APPLIED_MTU | RH_APPLIED_LINK_UP | RH_APPLIED_ADDRS | RH_APPLIED_ROUTES;

        if (req->flags & RH_REQ_FLUSH_NEIGH)
                m |= RH_APPLIED_NEIGH;
        if (req->flags & RH_REQ_ANNOUNCE)
                m |= RH_APPLIED_ANNOUNCE;
        if (req->hostname[0])
                m |= RH_APPLIED_HOSTNAME;
        if (req->n_dns || req->n_search)
                m |= RH_APPLIED_DNS;
        if (req->realtime_ns)
                m |= RH_APPLIED_CLOCK;
        if (req->flags & RH_REQ_NEW_MACHINE_ID)
                m |= RH_APPLIED_MACHINE_ID;
        return m;
}

static void describe_failure(const struct rh_request *req, struct apply_result *res, const struct rh_error *e)
{
        uint32_t pending = requested_steps(req) & ~res->applied & ~res->failed_step;
        size_t len = 0, cap = sizeof(res->what);
        const char *failed = "?";
        bool any = false;

        for (size_t i = 0; i < ELEMENTSOF(steps); i++)
                if (steps[i].bit == res->failed_step)
                        failed = steps[i].name;
        len += (size_t)snprintf(res->what + len, cap - len, "%s failed: %s; applied:", failed, e->msg);
        for (size_t i = 0; i < ELEMENTSOF(steps) && len < cap; i++)
                if (res->applied & steps[i].bit) {
                        len += (size_t)snprintf(res->what + len, cap - len, "%s%s", any ? "," : " ",
                                                steps[i].name);
                        any = true;
                }
        if (!any && len < cap)
                len += (size_t)snprintf(res->what + len, cap - len, " nothing");
        any = false;
        for (size_t i = 0; i < ELEMENTSOF(steps) && len < cap; i++)
                if (pending & steps[i].bit) {
                        len += (size_t)snprintf(res->what + len, cap - len, "%s%s",
                                                any ? "," : "; not attempted: ", steps[i].name);
                        any = true;
                }
}

/* Close step @step: its cost is the time since *@t, which moves on to now. */
static void step_mark(struct apply_result *res, unsigned step, uint64_t *t)
{
        uint64_t now = now_ns();

        res->step_ns[step] += now - *t;
        *t = now;
}

int apply_request(struct agent *a, const struct rh_request *req, struct apply_result *res)
{
        struct rh_error e = {0};
        uint64_t t = now_ns();
        int r = 0;

        res->applied = 0;
        res->failed_step = 0;
        res->changes = 0;
        res->what[0] = '\0';
        a->addrs_ifindex = 0;

        /* The clock first: everything after (TLS, logs, the DHCP lease of a
         * network manager) must see the host's time, not the snapshot's. */
        if (req->realtime_ns) {
                struct timespec ts = {(time_t)(req->realtime_ns / 1000000000ull),
                                      (long)(req->realtime_ns % 1000000000ull)};
                res->failed_step = RH_APPLIED_CLOCK;
                AGENT_SYSCALL(a);
                if (clock_settime(CLOCK_REALTIME, &ts) < 0)
                        r = rh_error_set(&e, -errno, "clock_settime: %s", strerror(errno));
                else
                        res->applied |= RH_APPLIED_CLOCK;
        }
        step_mark(res, RH_STEP_CLOCK, &t);
        for (unsigned i = 0; i < req->n_ifaces && r >= 0; i++)
                r = apply_link(a, &req->ifaces[i], res->ifindex[i], res, &e);
        step_mark(res, RH_STEP_LINK, &t);
        for (unsigned i = 0; i < req->n_ifaces && r >= 0; i++)
                r = apply_addrs(a, req, i, res->ifindex[i], res, &e);
        if (r >= 0)
                res->applied |= RH_APPLIED_ADDRS;
        step_mark(res, RH_STEP_ADDRS, &t);
        for (unsigned i = 0; i < req->n_ifaces && r >= 0; i++)
                r = apply_routes(a, req, i, res->ifindex[i], res, &e);
        if (r >= 0)
                res->applied |= RH_APPLIED_ROUTES;
        step_mark(res, RH_STEP_ROUTES, &t);
        if (r >= 0 && (req->flags & RH_REQ_FLUSH_NEIGH)) {
                res->failed_step = RH_APPLIED_NEIGH;
                for (unsigned i = 0; i < req->n_ifaces && r >= 0; i++)
                        r = rh_nl_neigh_flush(&a->nl, res->ifindex[i], AF_UNSPEC, NULL, &e);
                if (r >= 0)
                        res->applied |= RH_APPLIED_NEIGH;
        }
        step_mark(res, RH_STEP_NEIGH, &t);
        if (r >= 0 && (req->flags & RH_REQ_ANNOUNCE)) {
                r = apply_announce(a, req, res, &e);
                if (r >= 0)
                        res->applied |= RH_APPLIED_ANNOUNCE;
        }
        step_mark(res, RH_STEP_ANNOUNCE, &t);
        if (r >= 0 && req->hostname[0]) {
                r = apply_hostname(a, req->hostname, res, &e);
                if (r >= 0)
                        res->applied |= RH_APPLIED_HOSTNAME;
        }
        step_mark(res, RH_STEP_HOSTNAME, &t);
        if (r >= 0 && (req->n_dns || req->n_search)) {
                r = apply_dns(a, req, res, &e);
                if (r == 0)
                        res->applied |= RH_APPLIED_DNS; /* 1: left to resolved (RH_APPLIED_RESOLVED) */
        }
        step_mark(res, RH_STEP_DNS, &t);
        if (r >= 0 && (req->flags & RH_REQ_NEW_MACHINE_ID)) {
                res->failed_step = RH_APPLIED_MACHINE_ID;
                r = apply_machine_id(a, res, &e);
        }
        step_mark(res, RH_STEP_MACHINE_ID, &t);
        if (r >= 0) {
                /* Last: hooks see the whole new identity in place. */
                res->failed_step = RH_APPLIED_HOOKS;
                r = run_hooks(a, req, res, res, &e);
        }
        step_mark(res, RH_STEP_HOOKS, &t);
        if (r < 0) {
                describe_failure(req, res, &e);
                return r;
        }
        res->failed_step = 0;
        return 0;
}
