/* SPDX-License-Identifier: MIT */
/*
 * rtnetlink requests and dumps for links, addresses, routes and neighbours.
 * See netlink.h for the contract. Messages are built in nl->send_buf and
 * replies parsed from nl->recv_buf: nothing here allocates.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netlink.h"

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif
#ifndef NLM_F_ACK_TLVS
#define NLM_F_ACK_TLVS 0x200
#endif
#ifndef NLMSGERR_ATTR_MSG
#define NLMSGERR_ATTR_MSG 1
#endif

/* ------------------------------------------------------------------ */
/* Message building                                                    */

static struct nlmsghdr *msg_start(struct rh_nl *nl, uint16_t type, uint16_t flags)
{
        struct nlmsghdr *n = (struct nlmsghdr *)nl->send_buf;

        memset(nl->send_buf, 0, NLMSG_HDRLEN);
        n->nlmsg_len = NLMSG_HDRLEN;
        n->nlmsg_type = type;
        n->nlmsg_flags = NLM_F_REQUEST | flags;
        n->nlmsg_seq = ++nl->seq;
        n->nlmsg_pid = 0;
        return n;
}

/* Append the family header (ifinfomsg, ifaddrmsg, ...) zeroed. */
static void *msg_put_header(struct nlmsghdr *n, size_t len)
{
        void *p = (uint8_t *)n + n->nlmsg_len;

        memset(p, 0, NLMSG_ALIGN(len));
        n->nlmsg_len += NLMSG_ALIGN(len);
        return p;
}

/* Requests are small and fixed; overflowing the 4 KiB buffer is a bug. */
static void attr_put(struct nlmsghdr *n, uint16_t type, const void *data, size_t len)
{
        struct rtattr *rta = (struct rtattr *)((uint8_t *)n + NLMSG_ALIGN(n->nlmsg_len));
        size_t total = RTA_LENGTH(len);

        if (NLMSG_ALIGN(n->nlmsg_len) + RTA_ALIGN(total) > RH_NL_SEND_BUF)
                __builtin_trap();
        rta->rta_type = type;
        rta->rta_len = (unsigned short)total;
        if (len)
                memcpy(RTA_DATA(rta), data, len);
        memset((uint8_t *)rta + total, 0, RTA_ALIGN(total) - total);
        n->nlmsg_len = (uint32_t)(NLMSG_ALIGN(n->nlmsg_len) + RTA_ALIGN(total));
}

static void attr_put_u32(struct nlmsghdr *n, uint16_t type, uint32_t v)
{
        attr_put(n, type, &v, sizeof(v));
}

/* ------------------------------------------------------------------ */
/* Transactions                                                        */

typedef int (*msg_cb)(const struct nlmsghdr *n, void *userdata);

/* The kernel's extended-ack text of an NLMSG_ERROR, or NULL. */
static const char *extack_msg(const struct nlmsghdr *n)
{
        const struct nlmsgerr *e = NLMSG_DATA(n);
        size_t off;

        if (!(n->nlmsg_flags & NLM_F_ACK_TLVS))
                return NULL;
        /* With NETLINK_CAP_ACK the echoed request is only its header. */
        off = NLMSG_HDRLEN + sizeof(*e);
        if (!(n->nlmsg_flags & NLM_F_CAPPED))
                off += e->msg.nlmsg_len - NLMSG_HDRLEN;
        off = NLMSG_ALIGN(off);
        while (off + sizeof(struct nlattr) <= n->nlmsg_len) {
                const struct nlattr *a = (const struct nlattr *)((const uint8_t *)n + off);
                size_t alen = a->nla_len;

                if (alen < sizeof(*a) || off + alen > n->nlmsg_len)
                        return NULL;
                if ((a->nla_type & NLA_TYPE_MASK) == NLMSGERR_ATTR_MSG && alen > sizeof(*a)) {
                        const char *s = (const char *)a + NLA_HDRLEN;
                        if (memchr(s, '\0', alen - NLA_HDRLEN))
                                return s;
                        return NULL;
                }
                off += NLA_ALIGN(alen);
        }
        return NULL;
}

/*
 * Send the request in send_buf and read replies until its ack (or
 * NLMSG_DONE for a dump). @what names the operation for error messages.
 * Messages with another sequence number or port id are stale and skipped.
 */
static int nl_transact(struct rh_nl *nl, msg_cb cb, void *userdata, struct rh_error *err, const char *what)
{
        struct nlmsghdr *req = (struct nlmsghdr *)nl->send_buf;
        struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
        uint32_t seq = req->nlmsg_seq;
        bool dump = (req->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
        int cb_error = 0;
        ssize_t n;

        if (nl->fd < 0)
                return rh_error_set(err, -EBADF, "%s: netlink socket not open", what);
        nl->n_round_trips++;
        do
                nl->n_syscalls++, n = sendto(nl->fd, req, req->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel));
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return rh_error_set(err, -errno, "%s: netlink send: %s", what, strerror(errno));

        for (;;) {
                struct sockaddr_nl from;
                struct iovec iov = {nl->recv_buf, sizeof(nl->recv_buf)};
                struct msghdr mh = {
                        .msg_name = &from,
                        .msg_namelen = sizeof(from),
                        .msg_iov = &iov,
                        .msg_iovlen = 1,
                };
                size_t len;

                nl->n_syscalls++;
                n = recvmsg(nl->fd, &mh, 0);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return rh_error_set(err, -errno, "%s: netlink receive: %s", what, strerror(errno));
                }
                if (mh.msg_flags & MSG_TRUNC)
                        return rh_error_set(err, -EMSGSIZE, "%s: netlink reply truncated", what);
                if (from.nl_pid != 0)
                        continue; /* not from the kernel */
                len = (size_t)n;
                for (struct nlmsghdr *m = (struct nlmsghdr *)nl->recv_buf; NLMSG_OK(m, len);
                     m = NLMSG_NEXT(m, len)) {
                        if (m->nlmsg_seq != seq || (m->nlmsg_pid != nl->portid && m->nlmsg_pid != 0))
                                continue;
                        if (m->nlmsg_type == NLMSG_ERROR) {
                                const struct nlmsgerr *e = NLMSG_DATA(m);
                                const char *ext;

                                if (m->nlmsg_len < NLMSG_LENGTH(sizeof(*e)))
                                        return rh_error_set(err, -EBADMSG, "%s: short netlink error", what);
                                if (e->error == 0)
                                        return cb_error; /* the ack */
                                ext = extack_msg(m);
                                if (ext)
                                        return rh_error_set(err, e->error, "%s: %s (%s)", what,
                                                            strerror(-e->error), ext);
                                return rh_error_set(err, e->error, "%s: %s", what, strerror(-e->error));
                        }
                        if (m->nlmsg_type == NLMSG_DONE) {
                                int r = 0;

                                if (m->nlmsg_len >= NLMSG_LENGTH(sizeof(int)))
                                        memcpy(&r, NLMSG_DATA(m), sizeof(r));
                                if (r < 0)
                                        return rh_error_set(err, r, "%s: %s", what, strerror(-r));
                                if (dump)
                                        return cb_error;
                                continue;
                        }
                        if (cb && cb_error == 0) {
                                /* Keep reading to the end of the dump even on
                                 * error so no stale replies stay queued. */
                                int r = cb(m, userdata);
                                if (r < 0)
                                        cb_error = rh_error_set(err, r, "%s: %s", what,
                                                                r == -ENOBUFS ? "too many entries"
                                                                              : strerror(-r));
                        }
                }
        }
}

int rh_nl_open(struct rh_nl *nl, struct rh_error *err)
{
        struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
        socklen_t salen = sizeof(sa);
        int one = 1;

        nl->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (nl->fd < 0)
                return rh_error_set(err, -errno, "netlink socket: %s", strerror(errno));
        if (bind(nl->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
            getsockname(nl->fd, (struct sockaddr *)&sa, &salen) < 0) {
                int r = -errno;
                rh_nl_close(nl);
                return rh_error_set(err, r, "netlink bind: %s", strerror(-r));
        }
        /* Best effort: older kernels lack these; errors are still reported. */
        (void)setsockopt(nl->fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
        (void)setsockopt(nl->fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
        /* Kernel-side dump filters (4.20+); without, the callbacks filter alone. */
        nl->strict = setsockopt(nl->fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof(one)) == 0;
        nl->portid = sa.nl_pid;
        nl->seq = (uint32_t)getpid() << 8; /* distinct from a previous socket's replies */
        return 0;
}

void rh_nl_close(struct rh_nl *nl)
{
        if (nl->fd >= 0)
                close(nl->fd);
        nl->fd = -EBADF;
}

/* ------------------------------------------------------------------ */
/* Links                                                               */

struct link_dump {
        struct rh_nl_link *links;
        size_t cap, n;
};

static int parse_link(const struct nlmsghdr *m, struct rh_nl_link *l)
{
        const struct ifinfomsg *ifi = NLMSG_DATA(m);
        int len = (int)m->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*ifi));

        if (len < 0)
                return -EBADMSG;
        memset(l, 0, sizeof(*l));
        l->ifindex = ifi->ifi_index;
        l->flags = ifi->ifi_flags;
        for (const struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
                size_t alen = RTA_PAYLOAD(a);

                switch (a->rta_type) {
                case IFLA_IFNAME:
                        if (alen > 0) {
                                size_t cp = alen < sizeof(l->name) ? alen : sizeof(l->name) - 1;
                                memcpy(l->name, RTA_DATA(a), cp);
                                l->name[sizeof(l->name) - 1] = '\0';
                        }
                        break;
                case IFLA_ADDRESS:
                        if (alen == 6) {
                                memcpy(l->mac, RTA_DATA(a), 6);
                                l->mac_len = 6;
                        }
                        break;
                case IFLA_MTU:
                        if (alen >= 4)
                                memcpy(&l->mtu, RTA_DATA(a), 4);
                        break;
                case IFLA_MASTER:
                        if (alen >= 4)
                                memcpy(&l->master, RTA_DATA(a), 4);
                        break;
                }
        }
        return 0;
}

static int link_cb(const struct nlmsghdr *m, void *userdata)
{
        struct link_dump *d = userdata;

        if (m->nlmsg_type != RTM_NEWLINK)
                return 0;
        if (d->n >= d->cap)
                return -ENOBUFS;
        if (parse_link(m, &d->links[d->n]) < 0)
                return -EBADMSG;
        d->n++;
        return 0;
}

int rh_nl_link_list(struct rh_nl *nl, struct rh_nl_link *links, size_t cap, size_t *ret_n,
                    struct rh_error *err)
{
        struct link_dump d = {links, cap, 0};
        struct nlmsghdr *n = msg_start(nl, RTM_GETLINK, NLM_F_DUMP);
        struct ifinfomsg *ifi = msg_put_header(n, sizeof(*ifi));
        int r;

        ifi->ifi_family = AF_UNSPEC;
        /* No counters: a link's stats (and IPv6's per-link stats) are most of its message. */
        attr_put_u32(n, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
        r = nl_transact(nl, link_cb, &d, err, "list links");
        if (r < 0)
                return r;
        *ret_n = d.n;
        return 0;
}

int rh_nl_link_get(struct rh_nl *nl, int ifindex, struct rh_nl_link *ret_link, struct rh_error *err)
{
        struct rh_nl_link l;
        struct link_dump d = {&l, 1, 0};
        struct nlmsghdr *n = msg_start(nl, RTM_GETLINK, NLM_F_ACK);
        struct ifinfomsg *ifi = msg_put_header(n, sizeof(*ifi));
        char what[48];
        int r;

        ifi->ifi_family = AF_UNSPEC;
        ifi->ifi_index = ifindex;
        attr_put_u32(n, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
        snprintf(what, sizeof(what), "get link %d", ifindex);
        r = nl_transact(nl, link_cb, &d, err, what);
        if (r < 0)
                return r;
        if (d.n != 1)
                return rh_error_set(err, -ENODEV, "%s: no such link", what);
        *ret_link = l;
        return 0;
}

int rh_nl_link_get_by_name(struct rh_nl *nl, const char *name, struct rh_nl_link *ret_link,
                           struct rh_error *err)
{
        struct rh_nl_link l;
        struct link_dump d = {&l, 1, 0};
        struct nlmsghdr *n;
        struct ifinfomsg *ifi;
        char what[48];
        size_t len = strlen(name);
        int r;

        snprintf(what, sizeof(what), "get link %s", name);
        if (len == 0 || len >= IFNAMSIZ)
                return rh_error_set(err, -EINVAL, "%s: bad interface name", what);
        n = msg_start(nl, RTM_GETLINK, NLM_F_ACK);
        ifi = msg_put_header(n, sizeof(*ifi));
        ifi->ifi_family = AF_UNSPEC;
        attr_put(n, IFLA_IFNAME, name, len + 1);
        r = nl_transact(nl, link_cb, &d, err, what);
        if (r < 0)
                return r;
        if (d.n != 1)
                return rh_error_set(err, -ENODEV, "%s: no such link", what);
        *ret_link = l;
        return 0;
}

int rh_nl_link_set_master(struct rh_nl *nl, int ifindex, int master, bool up, struct rh_error *err)
{
        struct nlmsghdr *n = msg_start(nl, RTM_NEWLINK, NLM_F_ACK);
        struct ifinfomsg *ifi = msg_put_header(n, sizeof(*ifi));
        char what[64];

        if (master)
                snprintf(what, sizeof(what), "set link %d master %d%s", ifindex, master, up ? " up" : "");
        else
                snprintf(what, sizeof(what), "set link %d nomaster%s", ifindex, up ? " up" : "");
        ifi->ifi_family = AF_UNSPEC;
        ifi->ifi_index = ifindex;
        if (up) {
                ifi->ifi_change = IFF_UP;
                ifi->ifi_flags = IFF_UP;
        }
        /* The kernel enslaves before it changes the flags (do_setlink). */
        attr_put_u32(n, IFLA_MASTER, (uint32_t)master);
        return nl_transact(nl, NULL, NULL, err, what);
}

int rh_nl_link_del(struct rh_nl *nl, int ifindex, struct rh_error *err)
{
        struct nlmsghdr *n = msg_start(nl, RTM_DELLINK, NLM_F_ACK);
        struct ifinfomsg *ifi = msg_put_header(n, sizeof(*ifi));
        char what[48];

        snprintf(what, sizeof(what), "delete link %d", ifindex);
        ifi->ifi_family = AF_UNSPEC;
        ifi->ifi_index = ifindex;
        return nl_transact(nl, NULL, NULL, err, what);
}

static int link_change(struct rh_nl *nl, int ifindex, unsigned change, unsigned flags, uint16_t attr,
                       const void *data, size_t len, struct rh_error *err, const char *what)
{
        struct nlmsghdr *n = msg_start(nl, RTM_NEWLINK, NLM_F_ACK);
        struct ifinfomsg *ifi = msg_put_header(n, sizeof(*ifi));

        ifi->ifi_family = AF_UNSPEC;
        ifi->ifi_index = ifindex;
        ifi->ifi_change = change;
        ifi->ifi_flags = flags;
        if (attr)
                attr_put(n, attr, data, len);
        return nl_transact(nl, NULL, NULL, err, what);
}

int rh_nl_link_set(struct rh_nl *nl, int ifindex, const uint8_t *mac, uint32_t mtu, int up,
                   struct rh_error *err)
{
        struct nlmsghdr *n = msg_start(nl, RTM_NEWLINK, NLM_F_ACK);
        struct ifinfomsg *ifi = msg_put_header(n, sizeof(*ifi));
        char what[96];
        int len;

        len = snprintf(what, sizeof(what), "set link %d", ifindex);
        if (mac)
                len += snprintf(what + len, sizeof(what) - (size_t)len, " MAC %02x:%02x:%02x:%02x:%02x:%02x",
                                mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
        if (mtu)
                len += snprintf(what + len, sizeof(what) - (size_t)len, " MTU %u", mtu);
        if (up >= 0)
                snprintf(what + len, sizeof(what) - (size_t)len, " %s", up ? "up" : "down");
        ifi->ifi_family = AF_UNSPEC;
        ifi->ifi_index = ifindex;
        if (up >= 0) {
                ifi->ifi_change = IFF_UP;
                ifi->ifi_flags = up ? IFF_UP : 0;
        }
        if (mac)
                attr_put(n, IFLA_ADDRESS, mac, 6);
        if (mtu)
                attr_put_u32(n, IFLA_MTU, mtu);
        return nl_transact(nl, NULL, NULL, err, what);
}

int rh_nl_link_set_mac(struct rh_nl *nl, int ifindex, const uint8_t mac[6], struct rh_error *err)
{
        char what[64];

        snprintf(what, sizeof(what), "set MAC %02x:%02x:%02x:%02x:%02x:%02x on link %d", mac[0], mac[1],
                 mac[2], mac[3], mac[4], mac[5], ifindex);
        return link_change(nl, ifindex, 0, 0, IFLA_ADDRESS, mac, 6, err, what);
}

int rh_nl_link_set_mtu(struct rh_nl *nl, int ifindex, uint32_t mtu, struct rh_error *err)
{
        char what[48];

        snprintf(what, sizeof(what), "set MTU %u on link %d", mtu, ifindex);
        return link_change(nl, ifindex, 0, 0, IFLA_MTU, &mtu, sizeof(mtu), err, what);
}

int rh_nl_link_set_up(struct rh_nl *nl, int ifindex, bool up, struct rh_error *err)
{
        char what[48];

        snprintf(what, sizeof(what), "set link %d %s", ifindex, up ? "up" : "down");
        return link_change(nl, ifindex, IFF_UP, up ? IFF_UP : 0, 0, NULL, 0, err, what);
}

/* ------------------------------------------------------------------ */
/* Addresses                                                           */

struct addr_dump {
        struct rh_nl_addr *addrs;
        size_t cap, n;
        int ifindex, family;
};

static int addr_cb(const struct nlmsghdr *m, void *userdata)
{
        struct addr_dump *d = userdata;
        const struct ifaddrmsg *ifa = NLMSG_DATA(m);
        int len = (int)m->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*ifa));
        const void *local = NULL, *address = NULL;
        struct rh_nl_addr *a;
        size_t alen;

        if (m->nlmsg_type != RTM_NEWADDR || len < 0)
                return 0;
        if ((d->ifindex && (int)ifa->ifa_index != d->ifindex) ||
            (d->family != AF_UNSPEC && ifa->ifa_family != d->family))
                return 0;
        alen = rh_nl_addr_len(ifa->ifa_family);
        if (alen == 0)
                return 0;
        if (d->n >= d->cap)
                return -ENOBUFS;
        a = &d->addrs[d->n];
        memset(a, 0, sizeof(*a));
        a->ifindex = (int)ifa->ifa_index;
        a->family = ifa->ifa_family;
        a->prefix = ifa->ifa_prefixlen;
        a->scope = ifa->ifa_scope;
        a->flags = ifa->ifa_flags;
        for (const struct rtattr *rta = IFA_RTA(ifa); RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
                if (RTA_PAYLOAD(rta) < alen && rta->rta_type != IFA_FLAGS)
                        continue;
                switch (rta->rta_type) {
                case IFA_LOCAL:
                        local = RTA_DATA(rta);
                        break;
                case IFA_ADDRESS:
                        address = RTA_DATA(rta);
                        break;
                case IFA_FLAGS:
                        if (RTA_PAYLOAD(rta) >= 4)
                                memcpy(&a->flags, RTA_DATA(rta), 4);
                        break;
                }
        }
        /* IFA_LOCAL is the interface's own address; IFA_ADDRESS the peer on
         * point-to-point links. IPv6 only sends IFA_ADDRESS. */
        if (!local)
                local = address;
        if (!local)
                return 0;
        memcpy(a->addr, local, alen);
        d->n++;
        return 0;
}

int rh_nl_addr_list(struct rh_nl *nl, int ifindex, int family, struct rh_nl_addr *addrs, size_t cap,
                    size_t *ret_n, struct rh_error *err)
{
        struct addr_dump d = {addrs, cap, 0, ifindex, family};
        struct nlmsghdr *n = msg_start(nl, RTM_GETADDR, NLM_F_DUMP);
        struct ifaddrmsg *ifa = msg_put_header(n, sizeof(*ifa));
        int r;

        ifa->ifa_family = (uint8_t)family;
        if (nl->strict && ifindex > 0)
                ifa->ifa_index = (uint32_t)ifindex; /* the kernel dumps only this link's */
        r = nl_transact(nl, addr_cb, &d, err, "list addresses");
        if (r == -ENODEV && nl->strict && ifindex > 0) {
                /* The kernel's filter on a link that does not exist: none, as unfiltered. */
                if (err)
                        memset(err, 0, sizeof(*err));
                r = 0, d.n = 0;
        }
        if (r < 0)
                return r;
        *ret_n = d.n;
        return 0;
}

static void format_addr(int family, const uint8_t *addr, unsigned prefix, char *buf, size_t len)
{
        char ip[INET6_ADDRSTRLEN];

        if (!inet_ntop(family, addr, ip, sizeof(ip)))
                snprintf(ip, sizeof(ip), "?");
        snprintf(buf, len, "%s/%u", ip, prefix);
}

static int addr_request(struct rh_nl *nl, uint16_t type, uint16_t flags, const struct rh_nl_addr *a,
                        struct rh_error *err, const char *verb)
{
        size_t alen = rh_nl_addr_len(a->family);
        struct nlmsghdr *n;
        struct ifaddrmsg *ifa;
        char what[96], addr[INET6_ADDRSTRLEN + 8];

        format_addr(a->family, a->addr, a->prefix, addr, sizeof(addr));
        snprintf(what, sizeof(what), "%s address %s on link %d", verb, addr, a->ifindex);
        if (alen == 0 || a->prefix > alen * 8)
                return rh_error_set(err, -EINVAL, "%s: bad family or prefix", what);
        n = msg_start(nl, type, NLM_F_ACK | flags);
        ifa = msg_put_header(n, sizeof(*ifa));
        ifa->ifa_family = a->family;
        ifa->ifa_prefixlen = a->prefix;
        ifa->ifa_index = (uint32_t)a->ifindex;
        ifa->ifa_scope = RT_SCOPE_UNIVERSE;
        attr_put(n, IFA_LOCAL, a->addr, alen);
        attr_put(n, IFA_ADDRESS, a->addr, alen);
        if (type == RTM_NEWADDR) {
                if (a->family == AF_INET6) {
                        ifa->ifa_flags = IFA_F_NODAD;
                        attr_put_u32(n, IFA_FLAGS, IFA_F_NODAD);
                } else if (a->prefix < 31) {
                        /* The broadcast address, as `ip addr add ... brd +` does. */
                        uint8_t brd[4];
                        uint32_t host = a->prefix == 0 ? 0xffffffffu : (0xffffffffu >> a->prefix);

                        memcpy(brd, a->addr, 4);
                        for (int i = 0; i < 4; i++)
                                brd[i] |= (uint8_t)(host >> (24 - 8 * i));
                        attr_put(n, IFA_BROADCAST, brd, 4);
                }
        }
        return nl_transact(nl, NULL, NULL, err, what);
}

int rh_nl_addr_add(struct rh_nl *nl, const struct rh_nl_addr *addr, struct rh_error *err)
{
        return addr_request(nl, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, addr, err, "add");
}

int rh_nl_addr_del(struct rh_nl *nl, const struct rh_nl_addr *addr, struct rh_error *err)
{
        return addr_request(nl, RTM_DELADDR, 0, addr, err, "remove");
}

/* ------------------------------------------------------------------ */
/* Routes                                                              */

struct route_dump {
        struct rh_nl_route *routes;
        size_t cap, n;
        int ifindex, family;
};

static int route_cb(const struct nlmsghdr *m, void *userdata)
{
        struct route_dump *d = userdata;
        const struct rtmsg *rtm = NLMSG_DATA(m);
        int len = (int)m->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*rtm));
        struct rh_nl_route r = {0};
        size_t alen;

        if (m->nlmsg_type != RTM_NEWROUTE || len < 0)
                return 0;
        if (rtm->rtm_type != RTN_UNICAST || (d->family != AF_UNSPEC && rtm->rtm_family != d->family))
                return 0;
        alen = rh_nl_addr_len(rtm->rtm_family);
        if (alen == 0)
                return 0;
        r.family = rtm->rtm_family;
        r.dst_len = rtm->rtm_dst_len;
        r.protocol = rtm->rtm_protocol;
        r.scope = rtm->rtm_scope;
        r.type = rtm->rtm_type;
        r.table = rtm->rtm_table;
        for (const struct rtattr *a = RTM_RTA(rtm); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
                size_t plen = RTA_PAYLOAD(a);

                switch (a->rta_type) {
                case RTA_DST:
                        if (plen == alen)
                                memcpy(r.dst, RTA_DATA(a), alen);
                        break;
                case RTA_GATEWAY:
                        if (plen == alen) {
                                memcpy(r.gateway, RTA_DATA(a), alen);
                                r.has_gateway = true;
                        }
                        break;
                case RTA_OIF:
                        if (plen >= 4)
                                memcpy(&r.ifindex, RTA_DATA(a), 4);
                        break;
                case RTA_PRIORITY:
                        if (plen >= 4)
                                memcpy(&r.metric, RTA_DATA(a), 4);
                        break;
                case RTA_TABLE:
                        if (plen >= 4)
                                memcpy(&r.table, RTA_DATA(a), 4);
                        break;
                }
        }
        if (r.table != RT_TABLE_MAIN || (d->ifindex && r.ifindex != d->ifindex))
                return 0;
        if (d->n >= d->cap)
                return -ENOBUFS;
        d->routes[d->n++] = r;
        return 0;
}

int rh_nl_route_list(struct rh_nl *nl, int ifindex, int family, struct rh_nl_route *routes, size_t cap,
                     size_t *ret_n, struct rh_error *err)
{
        struct route_dump d = {routes, cap, 0, ifindex, family};
        struct nlmsghdr *n = msg_start(nl, RTM_GETROUTE, NLM_F_DUMP);
        struct rtmsg *rtm = msg_put_header(n, sizeof(*rtm));
        int r;

        rtm->rtm_family = (uint8_t)family;
        if (nl->strict) {
                /* What route_cb keeps: unicast routes of the main table (on @ifindex). */
                rtm->rtm_table = RT_TABLE_MAIN;
                rtm->rtm_type = RTN_UNICAST;
                if (ifindex > 0)
                        attr_put_u32(n, RTA_OIF, (uint32_t)ifindex);
        }
        r = nl_transact(nl, route_cb, &d, err, "list routes");
        if (r == -ENODEV && nl->strict && ifindex > 0) {
                /* The kernel's filter on a link that does not exist: none, as unfiltered. */
                if (err)
                        memset(err, 0, sizeof(*err));
                r = 0, d.n = 0;
        }
        if (r < 0)
                return r;
        *ret_n = d.n;
        return 0;
}

static int route_request(struct rh_nl *nl, uint16_t type, uint16_t flags, const struct rh_nl_route *route,
                         struct rh_error *err, const char *verb)
{
        size_t alen = rh_nl_addr_len(route->family);
        struct nlmsghdr *n;
        struct rtmsg *rtm;
        char what[160], dst[INET6_ADDRSTRLEN + 8], gw[INET6_ADDRSTRLEN] = "";
        uint32_t table = route->table ? route->table : RT_TABLE_MAIN;

        format_addr(route->family, route->dst, route->dst_len, dst, sizeof(dst));
        if (route->has_gateway && !inet_ntop(route->family, route->gateway, gw, sizeof(gw)))
                snprintf(gw, sizeof(gw), "?");
        snprintf(what, sizeof(what), "%s route %s%s%s dev %d metric %u", verb, dst,
                 route->has_gateway ? " via " : "", gw, route->ifindex, route->metric);
        if (alen == 0 || route->dst_len > alen * 8)
                return rh_error_set(err, -EINVAL, "%s: bad family or prefix", what);
        n = msg_start(nl, type, NLM_F_ACK | flags);
        rtm = msg_put_header(n, sizeof(*rtm));
        rtm->rtm_family = route->family;
        rtm->rtm_dst_len = route->dst_len;
        rtm->rtm_table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC;
        if (type == RTM_NEWROUTE) {
                rtm->rtm_protocol = route->protocol ? route->protocol : RTPROT_STATIC;
                rtm->rtm_scope = route->has_gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
                rtm->rtm_type = RTN_UNICAST;
        } else {
                rtm->rtm_scope = RT_SCOPE_NOWHERE;
                rtm->rtm_type = RTN_UNICAST;
                rtm->rtm_protocol = route->protocol;
        }
        attr_put_u32(n, RTA_TABLE, table);
        if (route->dst_len > 0)
                attr_put(n, RTA_DST, route->dst, alen);
        if (route->has_gateway)
                attr_put(n, RTA_GATEWAY, route->gateway, alen);
        if (route->ifindex)
                attr_put_u32(n, RTA_OIF, (uint32_t)route->ifindex);
        /* IPv6 routes always carry a metric; 0 means the kernel default 1024.
         * Send what was asked so replace and delete find the same route. */
        if (route->metric || route->family == AF_INET6)
                attr_put_u32(n, RTA_PRIORITY,
                             route->metric ? route->metric : (route->family == AF_INET6 ? 1024 : 0));
        return nl_transact(nl, NULL, NULL, err, what);
}

int rh_nl_route_replace(struct rh_nl *nl, const struct rh_nl_route *route, struct rh_error *err)
{
        return route_request(nl, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, route, err, "replace");
}

int rh_nl_route_del(struct rh_nl *nl, const struct rh_nl_route *route, struct rh_error *err)
{
        return route_request(nl, RTM_DELROUTE, 0, route, err, "remove");
}

/* ------------------------------------------------------------------ */
/* Neighbours                                                          */

#define NEIGH_BATCH 64

struct neigh_entry {
        uint8_t family;
        uint8_t addr[16];
};

struct neigh_dump {
        struct neigh_entry entries[NEIGH_BATCH];
        size_t n;
        int ifindex, family;
        bool more; /* batch full: dump again after deleting */
};

static int neigh_cb(const struct nlmsghdr *m, void *userdata)
{
        struct neigh_dump *d = userdata;
        const struct ndmsg *ndm = NLMSG_DATA(m);
        int len = (int)m->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*ndm));
        size_t alen;

        if (m->nlmsg_type != RTM_NEWNEIGH || len < 0)
                return 0;
        if (ndm->ndm_ifindex != d->ifindex || (d->family != AF_UNSPEC && ndm->ndm_family != d->family))
                return 0;
        if (ndm->ndm_state & (NUD_PERMANENT | NUD_NOARP))
                return 0;
        alen = rh_nl_addr_len(ndm->ndm_family);
        if (alen == 0)
                return 0;
        for (const struct rtattr *a = RTM_RTA(ndm); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
                if (a->rta_type != NDA_DST || RTA_PAYLOAD(a) != alen)
                        continue;
                if (d->n >= NEIGH_BATCH) {
                        d->more = true;
                        return 0;
                }
                d->entries[d->n].family = ndm->ndm_family;
                memcpy(d->entries[d->n].addr, RTA_DATA(a), alen);
                d->n++;
        }
        return 0;
}

int rh_nl_neigh_flush(struct rh_nl *nl, int ifindex, int family, unsigned *ret_flushed, struct rh_error *err)
{
        struct neigh_dump d;
        unsigned flushed = 0;
        char what[48];
        int r;

        snprintf(what, sizeof(what), "flush neighbours of link %d", ifindex);
        /* A bounded number of rounds: each one deletes up to NEIGH_BATCH. */
        for (int round = 0; round < 64; round++) {
                struct nlmsghdr *n = msg_start(nl, RTM_GETNEIGH, NLM_F_DUMP);
                struct ndmsg *ndm = msg_put_header(n, sizeof(*ndm));

                ndm->ndm_family = (uint8_t)family;
                if (nl->strict)
                        attr_put_u32(n, NDA_IFINDEX, (uint32_t)ifindex); /* this link's only */
                memset(&d, 0, sizeof(d));
                d.ifindex = ifindex;
                d.family = family;
                r = nl_transact(nl, neigh_cb, &d, err, what);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < d.n; i++) {
                        n = msg_start(nl, RTM_DELNEIGH, NLM_F_ACK);
                        ndm = msg_put_header(n, sizeof(*ndm));
                        ndm->ndm_family = d.entries[i].family;
                        ndm->ndm_ifindex = ifindex;
                        attr_put(n, NDA_DST, d.entries[i].addr, rh_nl_addr_len(d.entries[i].family));
                        r = nl_transact(nl, NULL, NULL, err, what);
                        if (r == -ENOENT || r == -ESRCH)
                                continue; /* expired meanwhile */
                        if (r < 0)
                                return r;
                        flushed++;
                }
                if (!d.more)
                        break;
        }
        if (ret_flushed)
                *ret_flushed = flushed;
        return 0;
}
