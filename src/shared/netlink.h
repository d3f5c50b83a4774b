/* SPDX-License-Identifier: MIT */
/*
 * A small rtnetlink layer: links, addresses, routes and neighbours, enough to
 * give an interface a new identity (the agent) and to put the host's clone
 * taps on their bridge (src/vmm/net.c). Compiled into librehome and rehome-agent.
 *
 * libmnl ships no static library in Debian, and the agent must be a static
 * musl binary, so this is our own (crun does the same in net_device.c). One
 * socket, one request in flight; every request asks for an ack (NLM_F_ACK),
 * carries the socket's next sequence number, and the reply is read until the
 * matching ack or NLMSG_DONE arrived. NLMSG_ERROR turns into -errno with the
 * operation named (and the kernel's extended-ack text when it gives one).
 *
 * No allocation: struct rh_nl carries its send and receive buffers, dumps
 * fill caller-provided arrays, so the agent can preallocate everything.
 * Families are the kernel's (AF_INET, AF_INET6); addresses are raw bytes
 * (4 or 16), network order.
 */
#ifndef REHOME_NETLINK_H
#define REHOME_NETLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rehome/error.h"

#define RH_NL_SEND_BUF 4096
#define RH_NL_RECV_BUF 32768

struct rh_nl {
        int fd;          /* -EBADF when closed */
        uint32_t seq;    /* last sequence number used */
        uint32_t portid; /* our netlink port id (from getsockname) */
        /* Counters for cost accounting (never reset here; callers take deltas). */
        uint32_t n_round_trips; /* requests sent and answered (or failed) */
        uint32_t n_syscalls;    /* sendto + recvmsg calls, EINTR retries included */
        /* NETLINK_GET_STRICT_CHK is on: dumps ask the kernel to filter (by
         * link, table, type), so it builds only the messages we keep. */
        bool strict;
        uint8_t send_buf[RH_NL_SEND_BUF] __attribute__((aligned(8)));
        uint8_t recv_buf[RH_NL_RECV_BUF] __attribute__((aligned(8)));
};

struct rh_nl_link {
        int ifindex;
        char name[16];
        uint8_t mac[6];
        uint8_t mac_len; /* 6 for Ethernet, 0 if none */
        uint32_t mtu;
        uint32_t flags; /* IFF_* */
        int master;     /* IFLA_MASTER: ifindex of the bridge it is enslaved to, 0 if none */
};

struct rh_nl_addr {
        int ifindex;
        uint8_t family; /* AF_INET or AF_INET6 */
        uint8_t prefix;
        uint8_t scope;  /* RT_SCOPE_* (dumps only) */
        uint32_t flags; /* IFA_F_* (dumps only) */
        uint8_t addr[16];
};

struct rh_nl_route {
        int ifindex; /* RTA_OIF, 0 if none */
        uint8_t family;
        uint8_t dst_len;
        uint8_t protocol; /* RTPROT_*; RTPROT_STATIC when adding */
        uint8_t scope;    /* dumps only; computed when adding */
        uint8_t type;     /* RTN_*; RTN_UNICAST when adding */
        uint32_t table;   /* RT_TABLE_MAIN when 0 on add */
        bool has_gateway;
        uint32_t metric; /* RTA_PRIORITY */
        uint8_t dst[16];
        uint8_t gateway[16];
};

/*
 * rh_nl_open - open a NETLINK_ROUTE socket into @nl (close-on-exec, extended
 * acks, capped acks and strict dump checking when the kernel has them; with
 * strict checking the dumps below are filtered in the kernel, the results
 * are the same). Returns 0 or -errno
 * (socket/bind failures).
 */
int rh_nl_open(struct rh_nl *nl, struct rh_error *err);

/* rh_nl_close - close the socket; safe on a closed or never-opened (fd < 0) @nl. */
void rh_nl_close(struct rh_nl *nl);

/*
 * rh_nl_link_list - dump every link into @links (@cap entries).
 * Returns 0 with *ret_n, -ENOBUFS (more than @cap links), or -errno.
 */
int rh_nl_link_list(struct rh_nl *nl, struct rh_nl_link *links, size_t cap, size_t *ret_n,
                    struct rh_error *err);

/* rh_nl_link_get - one link by index. Returns 0, -ENODEV, or -errno. */
int rh_nl_link_get(struct rh_nl *nl, int ifindex, struct rh_nl_link *ret_link, struct rh_error *err);

/*
 * rh_nl_link_get_by_name - one link by name, in the namespace of @nl's socket.
 * Returns 0, -ENODEV (no such link), -EINVAL (empty name or longer than
 * IFNAMSIZ - 1, checked before the kernel is asked), or -errno.
 */
int rh_nl_link_get_by_name(struct rh_nl *nl, const char *name, struct rh_nl_link *ret_link,
                           struct rh_error *err);

/*
 * rh_nl_link_set_master - enslave @ifindex to the bridge (or bond) @master
 * (0: release it) and, if @up, set it up, in one RTM_NEWLINK with
 * IFLA_MASTER. Returns 0 or -errno: -ENODEV (no such link or master),
 * -EINVAL (@master is not a device that takes ports), -EBUSY (already the
 * port of another master that refuses to let go).
 */
int rh_nl_link_set_master(struct rh_nl *nl, int ifindex, int master, bool up, struct rh_error *err);

/* rh_nl_link_del - RTM_DELLINK on @ifindex. Returns 0, -ENODEV (absent), -EOPNOTSUPP (lo), or -errno. */
int rh_nl_link_del(struct rh_nl *nl, int ifindex, struct rh_error *err);

/*
 * rh_nl_link_set - change several link properties in one RTM_NEWLINK:
 * @mac (NULL: keep), @mtu (0: keep), @up (1 up, 0 down, -1 keep). The kernel
 * applies them in its own order (MTU, then address, then flags) and may
 * leave earlier ones applied when a later one fails. Returns as below.
 */
int rh_nl_link_set(struct rh_nl *nl, int ifindex, const uint8_t *mac, uint32_t mtu, int up,
                   struct rh_error *err);

/*
 * rh_nl_link_set_mac / _mtu / _up - RTM_NEWLINK on @ifindex.
 * Returns 0 or -errno: -EBUSY when a driver refuses a live MAC change,
 * -EADDRNOTAVAIL for a MAC it will not take, -EINVAL for an MTU out of range.
 */
int rh_nl_link_set_mac(struct rh_nl *nl, int ifindex, const uint8_t mac[6], struct rh_error *err);
int rh_nl_link_set_mtu(struct rh_nl *nl, int ifindex, uint32_t mtu, struct rh_error *err);
int rh_nl_link_set_up(struct rh_nl *nl, int ifindex, bool up, struct rh_error *err);

/*
 * rh_nl_addr_list - dump addresses of @family (AF_UNSPEC: both) on @ifindex
 * (0: every link) into @addrs. Returns 0, -ENOBUFS, or -errno.
 */
int rh_nl_addr_list(struct rh_nl *nl, int ifindex, int family, struct rh_nl_addr *addrs, size_t cap,
                    size_t *ret_n, struct rh_error *err);

/*
 * rh_nl_addr_add - add or replace (NLM_F_CREATE|NLM_F_REPLACE) an address.
 * IPv6 addresses are added with IFA_F_NODAD: the host handed out a unique
 * address, and a tentative address cannot be announced or used for ~1 s.
 * Returns 0 or -errno.
 */
int rh_nl_addr_add(struct rh_nl *nl, const struct rh_nl_addr *addr, struct rh_error *err);

/* rh_nl_addr_del - remove an address. Returns 0, -EADDRNOTAVAIL (absent), or -errno. */
int rh_nl_addr_del(struct rh_nl *nl, const struct rh_nl_addr *addr, struct rh_error *err);

/*
 * rh_nl_route_list - dump unicast routes of the main table of @family
 * (AF_UNSPEC: both) whose output interface is @ifindex (0: any) into @routes.
 * Returns 0, -ENOBUFS, or -errno.
 */
int rh_nl_route_list(struct rh_nl *nl, int ifindex, int family, struct rh_nl_route *routes, size_t cap,
                     size_t *ret_n, struct rh_error *err);

/*
 * rh_nl_route_replace - add or replace (NLM_F_CREATE|NLM_F_REPLACE) a route
 * in the main table, protocol static; scope link without a gateway, universe
 * with one. Returns 0 or -errno (-ENETUNREACH: gateway not on a connected
 * subnet; -ENETDOWN: link down).
 */
int rh_nl_route_replace(struct rh_nl *nl, const struct rh_nl_route *route, struct rh_error *err);

/* rh_nl_route_del - remove a route (matched by table, dst, metric, oif). -ESRCH if absent. */
int rh_nl_route_del(struct rh_nl *nl, const struct rh_nl_route *route, struct rh_error *err);

/*
 * rh_nl_neigh_flush - delete every dynamic (not PERMANENT, not NOARP)
 * neighbour entry of @family (AF_UNSPEC: IPv4 and IPv6) on @ifindex.
 * *ret_flushed (may be NULL) counts the entries removed. Entries that vanish
 * on their own meanwhile are not an error. Returns 0 or -errno.
 */
int rh_nl_neigh_flush(struct rh_nl *nl, int ifindex, int family, unsigned *ret_flushed, struct rh_error *err);

/* Length in bytes of an address of @family (4, 16; 0 if unknown). */
static inline size_t rh_nl_addr_len(int family)
{
        return family == 2 /* AF_INET */ ? 4 : family == 10 /* AF_INET6 */ ? 16 : 0;
}

#endif
