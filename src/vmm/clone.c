/* SPDX-License-Identifier: MIT */
/*
 * A clone's lifecycle: the VMM-neutral half of every stage (clone.h). The
 * record is the clone's single source of truth across processes: written
 * under the state lock before anything exists (owner = this process),
 * updated with the VMM's pid and start time the moment it exists, and final
 * ("running", "failed", "no-ack", ...) only in clone_finish.
 *
 * Guest-side stage timings. The agent stamps its CLOCK_MONOTONIC at signal,
 * read, applied and ack. The guest clock and the host clock are not
 * comparable, and under a restored snapshot the guest's clock at resume is
 * whatever the snapshot held, so the stamps are only used relative to each
 * other and anchored at the ack: the host takes H = (host time it first saw
 * the final ack) - (host time `cont` returned). The guest's ack was written
 * at most one poll interval before the host saw it, so the guest's resume
 * instant is taken as t_ack - H, and
 *     resume->signal  = H - (t_ack - t_signal)
 *     resume->read    = H - (t_ack - t_read)
 *     resume->applied = H - (t_ack - t_applied)
 *     resume->ack     = H
 * Error: + (poll interval, 250 us) + (QMP cont round trip) on every stage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "cleanup.h"
#include "clone.h"
#include "io.h"
#include "qmp.h"

static double ms(uint64_t ns)
{
        return (double)ns / 1e6;
}

static int stage_begin(struct clone *c, const char *stage, struct rh_error *err)
{
        char point[48];
        int r;

        snprintf(point, sizeof(point), "fork:%s", stage);
        for (char *p = point; *p; p++)
                if (*p == ' ')
                        *p = '-';
        r = vmm_fault_point(point, err);
        c->t_stage = now_ns();
        if (r < 0)
                return r;
        if (vmm_interrupted())
                return rh_error_set(err, -EINTR, "%s: interrupted", stage);
        return 0;
}

/*
 * The host end of the UDP ack channel: a socket bound to the gateway address
 * on the clone bridge (inside the clone namespace: setns() moves only this
 * thread, and the socket keeps the namespace it was made in). Returns the fd
 * (non-blocking) and the port, or -errno; the fork then relies on the mailbox
 * record alone.
 */
static int udp_ack_socket(const struct vmm_net *net, struct rh_ipaddr *ret_gw, uint16_t *ret_port)
{
        char gw[64], path[PATH_MAX];
        _cleanup_close_ int nsfd = -EBADF, selffd = -EBADF;
        int fd = -EBADF, r;
        struct sockaddr_in sin = {.sin_family = AF_INET};
        socklen_t len = sizeof(sin);

        if (!net->gateway[0])
                return -ENOENT;
        snprintf(gw, sizeof(gw), "%s", net->gateway);
        *strchrnul(gw, '/') = '\0';
        if (rh_ip_parse(gw, ret_gw, NULL) < 0 || ret_gw->family != 4)
                return -EINVAL;
        memcpy(&sin.sin_addr, ret_gw->addr, 4);
        if (net->netns[0]) {
                snprintf(path, sizeof(path), "/run/netns/%s", net->netns);
                nsfd = open(path, O_RDONLY | O_CLOEXEC);
                selffd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
                if (nsfd < 0 || selffd < 0 || setns(nsfd, CLONE_NEWNET) < 0)
                        return -errno;
        }
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        r = fd < 0 ? -errno : 0;
        if (r == 0 && (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
                       getsockname(fd, (struct sockaddr *)&sin, &len) < 0))
                r = -errno;
        if (selffd >= 0 && setns(selffd, CLONE_NEWNET) < 0)
                abort(); /* this thread would go on in the wrong namespace */
        if (r < 0) {
                if (fd >= 0)
                        close(fd);
                return r;
        }
        *ret_port = ntohs(sin.sin_port);
        return fd;
}

/* The default host name: TEMPLATE-ID, '_' and '.' as '-'. */
static void default_hostname(struct clone *c, char *buf, size_t len)
{
        snprintf(buf, len, "%s-%s", c->t->name, c->rec.id);
        for (char *p = buf; *p; p++)
                if (*p == '_' || *p == '.')
                        *p = '-';
}

/*
 * The extra NICs in the clone's request: interface K (the request's, or one
 * added, matched by the template's MAC of NIC K) gets the clone's MAC of
 * NIC K, and the clone's address of NIC K replaces the request's first IPv4
 * address on it (or comes first among them).
 */
static int request_nics(struct clone *c, struct rh_error *err)
{
        struct rh_request *req = &c->req;

        for (unsigned k = 1; k < c->t->nics; k++) {
                const struct vmm_clone_nic *x = &c->rec.xnic[k - 1];
                unsigned a;

                if (req->n_ifaces <= k) {
                        if (req->n_ifaces != k)
                                return rh_error_set(err, -EINVAL, "request: interface %u before interface %u",
                                                    k, req->n_ifaces);
                        struct rh_iface *f = &req->ifaces[req->n_ifaces++];
                        memset(f, 0, sizeof(*f));
                        f->match = RH_MATCH_MAC;
                        memcpy(f->match_mac, c->t->xnic[k - 1].mac, 6);
                }
                req->ifaces[k].has_mac = true;
                memcpy(req->ifaces[k].mac, x->mac, 6);
                for (a = 0; a < req->n_addrs && (req->addrs[a].family != 4 || req->addrs[a].iface != k); a++)
                        ;
                if (a == req->n_addrs) {
                        if (req->n_addrs >= RH_MAX_ADDRS)
                                return rh_error_set(err, -E2BIG, "request: no room for NIC %u's address", k);
                        for (a = 0; a < req->n_addrs && req->addrs[a].iface < k; a++)
                                ;
                        memmove(&req->addrs[a + 1], &req->addrs[a], (req->n_addrs - a) * sizeof(req->addrs[0]));
                        req->n_addrs++;
                }
                req->addrs[a].iface = (uint8_t)k;
                req->addrs[a].family = c->xip[k - 1].family;
                req->addrs[a].prefix = c->xprefix[k - 1];
                memcpy(req->addrs[a].addr, c->xip[k - 1].addr, 16);
        }
        return 0;
}

/*
 * The clone's request: the caller's (o->request) or the default one; either
 * way the clone's own address replaces the first IPv4 address, its MAC the
 * first interface's, and a fresh nonce is drawn.
 */
static int build_request(struct clone *c, struct rh_error *err)
{
        const struct vmm_fork_opts *o = c->o;
        struct rh_request *req = &c->req;
        unsigned a;
        int r;

        if (o->request)
                *req = *o->request;
        else {
                memset(req, 0, sizeof(*req));
                req->flags = RH_REQ_FLUSH_NEIGH | RH_REQ_ANNOUNCE | RH_REQ_REPLACE_ADDRS;
                req->n_ifaces = 1;
                req->ifaces[0].match = RH_MATCH_NAME;
                snprintf(req->ifaces[0].name, sizeof(req->ifaces[0].name), "%s", o->iface ? o->iface : "eth0");
        }
        req->seq = 0; /* one more than the page's */
        if (getrandom(&req->nonce, sizeof(req->nonce), 0) != sizeof(req->nonce) || req->nonce == 0)
                req->nonce = now_ns() | 1;
        req->ifaces[0].has_mac = true;
        memcpy(req->ifaces[0].mac, c->rec.mac, 6);
        if (o->mac_only) {
                /* Nothing but the MAC: the guest's DHCP client does the rest. */
                req->n_addrs = 0;
                req->n_routes = 0;
                req->hostname[0] = '\0';
                req->flags &= ~(uint32_t)(RH_REQ_ANNOUNCE | RH_REQ_REPLACE_ADDRS | RH_REQ_FLUSH_NEIGH);
                return rh_request_validate(req, err);
        }
        for (a = 0; a < req->n_addrs && (req->addrs[a].family != 4 || req->addrs[a].iface != 0); a++)
                ;
        if (a == req->n_addrs) {
                if (req->n_addrs >= RH_MAX_ADDRS)
                        return rh_error_set(err, -E2BIG, "request: no room for the clone's address");
                /* First, so that it is the interface's primary IPv4 address. */
                memmove(&req->addrs[1], &req->addrs[0], req->n_addrs * sizeof(req->addrs[0]));
                req->n_addrs++;
                a = 0;
        }
        req->addrs[a].iface = 0;
        req->addrs[a].family = c->ip.family;
        req->addrs[a].prefix = c->prefix;
        memset(req->addrs[a].addr, 0, 16);
        memcpy(req->addrs[a].addr, c->ip.addr, 16);
        bool have_v4_default = false;
        for (unsigned i = 0; i < req->n_routes; i++)
                have_v4_default |= req->routes[i].family == 4 && req->routes[i].dst_prefix == 0;
        if (o->has_gateway && !have_v4_default) {
                if (req->n_routes >= RH_MAX_ROUTES)
                        return rh_error_set(err, -E2BIG, "request: no room for the default route");
                struct rh_route *rt = &req->routes[req->n_routes++];
                memset(rt, 0, sizeof(*rt));
                rt->iface = 0;
                rt->family = o->gateway.family;
                rt->has_gateway = true;
                memcpy(rt->gateway, o->gateway.addr, 16);
        }
        r = request_nics(c, err);
        if (r < 0)
                return r;
        if (!req->hostname[0])
                default_hostname(c, req->hostname, sizeof(req->hostname));
        /* Clones must not share the template's machine id (DHCP DUID, stable IPv6 addresses). */
        if ((c->t->agent_caps & RH_CAP_MACHINE_ID) && !o->keep_machine_id)
                req->flags |= RH_REQ_NEW_MACHINE_ID;
        return rh_request_validate(req, err);
}

/* The template's device state must be a non-empty regular file before a VMM starts. */
static int check_state_file(const struct vmm_template *t, struct rh_error *err)
{
        struct stat st;

        if (stat(t->state_path, &st) < 0 && (errno == EACCES || errno == EPERM))
                return rh_error_set(err, -errno, "template %s: device state %s: %s (run as root, or as the user "
                                    "that created the template)", t->name, t->state_path, strerror(errno));
        if (stat(t->state_path, &st) < 0)
                return rh_error_set(err, -errno, "template %s: device state %s: %s (rehome template rm %s && "
                                    "rehome template create %s)", t->name, t->state_path, strerror(errno),
                                    t->name, t->name);
        if (!S_ISREG(st.st_mode) || st.st_size == 0)
                return rh_error_set(err, -EINVAL, "template %s: device state %s is %s (rehome template rm %s "
                                    "&& rehome template create %s)", t->name, t->state_path,
                                    S_ISREG(st.st_mode) ? "empty" : "not a regular file", t->name, t->name);
        return 0;
}

/* The template's own address (of NIC @nic on @net), reserved once in the IPAM so that it is never handed out. */
static void reserve_template_ip(struct clone *c, const struct vmm_net *net, unsigned nic)
{
        char mark[PATH_MAX + 32], id[VMM_NAME_MAX + 16];
        struct rh_ipaddr ip, got;
        uint8_t prefix;

        if (nic)
                snprintf(mark, sizeof(mark), "%s/ipam-reserved-nic%u", c->t->dir, nic);
        else
                snprintf(mark, sizeof(mark), "%s/ipam-reserved", c->t->dir);
        if (access(mark, F_OK) == 0 || rh_ip_parse(nic ? c->t->xnic[nic - 1].ip : c->t->ip, &ip, &prefix) < 0)
                return;
        snprintf(id, sizeof(id), "template-%s", c->t->name);
        int r = vmm_ipam_add(c->o->ipam, net, c->o->state_dir, id, &ip, &got, &prefix, NULL);
        if (r == 0 || r == -EADDRINUSE) {
                /* Which plugin holds it, for `template rm` to give it back. */
                FILE *f = fopen(mark, "we");
                if (f) {
                        fprintf(f, "%s\n%s\n", c->o->ipam->plugin, c->o->ipam->config);
                        fclose(f);
                }
        }
}

/* The clone's address: the one asked for (checked and, with an IPAM, reserved there), or the IPAM's pick. */
static int reserve_address(struct clone *c, struct rh_error *err)
{
        const struct vmm_fork_opts *o = c->o;
        int r;

        c->ip = o->ip;
        c->prefix = o->prefix;
        if (!o->ipam) {
                if (!o->has_ip)
                        return rh_error_set(err, -EINVAL, "no --ip and no IPAM to pick one");
                return 0;
        }
        reserve_template_ip(c, &c->net, 0);
        r = vmm_ipam_add(o->ipam, &c->net, o->state_dir, c->rec.id, o->has_ip ? &o->ip : NULL, &c->ip, &c->prefix,
                         err);
        if (r < 0)
                return r;
        c->rec.ipam = *o->ipam;
        if (o->has_ip)
                c->prefix = o->prefix; /* the prefix asked for wins over the range's */
        return 0;
}

/* The record this fork owns: a warm clone's from the pool (its pid, tap and guid set), or a new one. */
static int take_record(struct clone *c, struct rh_error *err)
{
        const struct vmm_fork_opts *o = c->o;
        int r;

        if (o->warm_id) {
                r = vmm_clone_load(o->state_dir, o->warm_id, &c->rec, err);
                if (r < 0)
                        return r;
                if (!vmm_clone_alive(&c->rec) || c->rec.pid <= 0)
                        return rh_error_set(err, -ESRCH, "warm clone %s is not running", c->rec.id);
                c->from_pool = c->tap_made = true;
                c->rec.owner = getpid();
                c->rec.owner_starttime = proc_starttime(c->rec.owner);
        } else {
                r = vmm_clone_alloc(o->state_dir, &c->rec, err);
                if (r < 0)
                        return r;
        }
        snprintf(c->rec.template_name, sizeof(c->rec.template_name), "%s", c->t->name);
        if (!c->rec.vmgenid[0])
                vmm_guid_new(c->rec.vmgenid);
        snprintf(c->rec.status, sizeof(c->rec.status), "starting");
        snprintf(c->log_path, sizeof(c->log_path), "%s/qemu.log", c->rec.dir);
        return 0;
}

/* Undo take_record and reserve_address: the address back to the IPAM, a warm clone back to the pool. */
static void give_back(struct clone *c)
{
        const struct vmm_fork_opts *o = c->o;

        if (c->rec.ipam.plugin[0])
                vmm_ipam_del(&c->rec.ipam, &c->net, o->state_dir, c->rec.id, NULL);
        for (unsigned k = 1; k < c->rec.nics; k++)
                if (c->rec.xnic[k - 1].ipam.plugin[0])
                        vmm_ipam_del(&c->rec.xnic[k - 1].ipam, &c->xnet[k - 1], o->state_dir, c->rec.id, NULL);
        if (c->from_pool) {
                char claim[PATH_MAX + 16];
                snprintf(claim, sizeof(claim), "%s/claimed", c->rec.dir);
                rmdir(claim);
        } else
                vmm_clone_remove_record(&c->rec);
        memset(&c->rec, 0, sizeof(c->rec));
        c->from_pool = c->tap_made = false;
}

/* The MAC a fork asks for, or the one derived from @ip. */
static void mac_for(const struct vmm_fork_opts *o, const struct rh_ipaddr *ip, uint8_t ret_mac[6])
{
        if (o->has_mac)
                memcpy(ret_mac, o->mac, 6);
        else
                vmm_mac_for_ip(ip, ret_mac);
}

/*
 * Under the state lock, after NIC 0: NIC K's address (asked for: checked
 * first, then reserved in network K's IPAM; or the IPAM's pick) and MAC
 * (asked for, or derived from the address), each checked on network K
 * (subnet, network/broadcast/gateway, the template's NIC K address and
 * MAC, live clones, the bridge's other hosts, the clone's other NICs).
 */
static int reserve_nics(struct clone *c, const uint8_t mac0[6], struct rh_error *err)
{
        const struct vmm_fork_opts *o = c->o;
        char addr[48], owner[64], dev[32];
        int r;

        c->rec.nics = c->t->nics;
        for (unsigned k = 1; k < c->t->nics; k++) {
                const struct vmm_fork_nic *f = &o->xnic[k - 1];
                struct vmm_clone_nic *x = &c->rec.xnic[k - 1];
                const struct vmm_net *net = &c->xnet[k - 1];
                uint8_t mac[6];

                if (f->has_ip) {
                        if (f->has_mac)
                                memcpy(mac, f->mac, 6);
                        else
                                vmm_mac_for_ip(&f->ip, mac);
                        r = vmm_identity_check_nic(net, c->t, k, &f->ip, f->prefix, mac, err);
                        if (r < 0)
                                return r;
                        /* Our reason (which clone holds it) before the IPAM's "not available". */
                        rh_ip_format(&f->ip, addr);
                        if (vmm_identity_in_use(o->state_dir, addr, mac, owner, sizeof(owner)) < 0)
                                return rh_error_set(err, -EADDRINUSE,
                                                    "NIC %u: %s or its MAC is already used by %s (rehome clone rm "
                                                    "it, or pick another --nic %u,ip=/mac=)",
                                                    k, addr, owner, k);
                        c->xip[k - 1] = f->ip;
                        c->xprefix[k - 1] = f->prefix;
                }
                if (o->ipam) {
                        reserve_template_ip(c, net, k);
                        r = vmm_ipam_add(o->ipam, net, o->state_dir, c->rec.id, f->has_ip ? &f->ip : NULL,
                                         &c->xip[k - 1], &c->xprefix[k - 1], err);
                        if (r < 0)
                                return rh_error_prefix(err, r, "NIC %u", k);
                        x->ipam = *o->ipam;
                        if (f->has_ip)
                                c->xprefix[k - 1] = f->prefix;
                } else if (!f->has_ip)
                        return rh_error_set(err, -EINVAL, "NIC %u: no address (--nic %u,ip=...) and no IPAM", k, k);
                if (f->has_mac)
                        memcpy(mac, f->mac, 6);
                else
                        vmm_mac_for_ip(&c->xip[k - 1], mac);
                r = vmm_identity_check_nic(net, c->t, k, &c->xip[k - 1], c->xprefix[k - 1], mac, err);
                if (r < 0)
                        return r;
                rh_ip_format(&c->xip[k - 1], addr);
                if (vmm_identity_in_use(o->state_dir, addr, mac, owner, sizeof(owner)) < 0)
                        return rh_error_set(err, -EADDRINUSE, "NIC %u: %s or its MAC is already used by %s", k,
                                            addr, owner);
                if (vmm_mac_on_bridge(net, mac, dev, sizeof(dev)) < 0)
                        return rh_error_set(err, -EADDRINUSE,
                                            "NIC %u: MAC %02x:%02x:%02x:%02x:%02x:%02x is already on bridge %s "
                                            "(port %s)",
                                            k, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], net->bridge, dev);
                if (memcmp(mac, mac0, 6) == 0)
                        return rh_error_set(err, -EINVAL, "NIC %u: MAC %02x:%02x:%02x:%02x:%02x:%02x is NIC 0's", k,
                                            mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
                for (unsigned j = 1; j < k; j++)
                        if (memcmp(mac, c->rec.xnic[j - 1].mac, 6) == 0)
                                return rh_error_set(err, -EINVAL, "NIC %u: MAC is NIC %u's too", k, j);
                memcpy(x->mac, mac, 6);
                snprintf(x->ip, sizeof(x->ip), "%s/%u", addr, c->xprefix[k - 1]);
                snprintf(x->tap, sizeof(x->tap), "%.12sn%u", c->rec.tap, k);
        }
        return 0;
}

/* Under the state lock: the template still exists, the identity is valid and free, the record reserves it. */
static int reserve(struct clone *c, struct rh_error *err)
{
        const struct vmm_fork_opts *o = c->o;
        char meta[PATH_MAX + 16], addr[48], owner[64];
        uint8_t mac[6];
        int r;

        snprintf(meta, sizeof(meta), "%s/meta.json", c->t->dir);
        if (access(meta, F_OK) < 0)
                return rh_error_set(err, -ENOENT, "template %s was removed", c->t->name);
        if (o->has_ip) {
                /* Our reasons first (an IPAM would only say "not available"). */
                mac_for(o, &o->ip, mac);
                r = vmm_identity_check(&c->net, c->t, &o->ip, o->prefix, mac, o->has_gateway ? &o->gateway : NULL,
                                       err);
                if (r < 0)
                        return r;
                rh_ip_format(&o->ip, addr);
                if (vmm_identity_in_use(o->state_dir, addr, o->has_mac ? o->mac : NULL, owner, sizeof(owner)) < 0)
                        return rh_error_set(err, -EADDRINUSE,
                                            "%s or its MAC is already used by %s (rehome clone rm it, or pick "
                                            "another --ip/--mac)",
                                            addr, owner);
        }
        r = take_record(c, err);
        if (r < 0)
                return r;
        r = reserve_address(c, err);
        if (r < 0)
                goto fail;
        rh_ip_format(&c->ip, addr);
        mac_for(o, &c->ip, mac);
        r = vmm_identity_check(&c->net, c->t, &c->ip, c->prefix, mac, o->has_gateway ? &o->gateway : NULL, err);
        if (r == 0 && vmm_identity_in_use(o->state_dir, addr, mac, owner, sizeof(owner)) < 0)
                r = rh_error_set(err, -EADDRINUSE, "%s or its MAC is already used by %s", addr, owner);
        char dev[32];
        if (r == 0 && !o->has_ip && vmm_mac_on_bridge(&c->net, mac, dev, sizeof(dev)) < 0)
                r = rh_error_set(err, -EADDRINUSE, "MAC %02x:%02x:%02x:%02x:%02x:%02x is already on the bridge (port %s)",
                                 mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], dev);
        if (r < 0)
                goto fail;
        memcpy(c->rec.mac, mac, 6);
        snprintf(c->rec.ip, sizeof(c->rec.ip), "%s/%u", addr, c->prefix);
        if (o->has_gateway)
                rh_ip_format(&o->gateway, c->rec.gateway);
        r = reserve_nics(c, mac, err);
        if (r < 0)
                goto fail;
        r = vmm_clone_save(&c->rec, err);
        if (r == 0)
                return 0;
fail:
        give_back(c);
        return r;
}

int clone_prepare(struct clone *c, const struct vmm_template *t, const struct vmm_fork_opts *o,
                  struct vmm_fork_result *res, struct rh_error *err)
{
        int lock, r;

        memset(c, 0, sizeof(*c));
        memset(res, 0, sizeof(*res));
        c->t = t;
        c->o = o;
        c->ops = &vmm_qemu_ops;
        c->res = res;
        c->udp_fd = -EBADF;
        c->hfm_fd = -EBADF;
        c->t_start = now_ns();
        r = stage_begin(c, "prepare", err);
        if (r < 0)
                return r;
        if (o->net)
                c->net = *o->net;
        else if ((r = vmm_net_load(o->state_dir, &c->net, err)) < 0)
                return r;
        for (unsigned k = 1; k < t->nics; k++) {
                r = vmm_net_load_nic(o->state_dir, k, &c->xnet[k - 1], err);
                if (r < 0)
                        return r;
                /* One VMM process, one namespace: every tap of the clone must be there. */
                if (strcmp(c->xnet[k - 1].netns, c->net.netns) != 0)
                        return rh_error_set(err, -EINVAL,
                                            "NIC %u's network is in namespace '%s', NIC 0's in '%s': a clone's "
                                            "taps live in one namespace (rehome net up --nic %u)",
                                            k, c->xnet[k - 1].netns, c->net.netns, k);
        }
        r = check_state_file(t, err);
        if (r < 0)
                return r;
        lock = vmm_state_lock(o->state_dir, err);
        if (lock < 0)
                return lock;
        r = reserve(c, err);
        vmm_state_unlock(lock);
        return r;
}

int clone_spawn(struct clone *c, struct rh_error *err)
{
        int r = stage_begin(c, "spawn", err);

        if (r < 0)
                return r;
        if (c->from_pool)
                r = qmp_connect_child(c->rec.qmp_path, c->rec.pid, c->o->timeout_ms, &c->qmp, err);
        else
                r = c->ops->spawn(c, err);
        /* A signal that came while the process was being created must still end it. */
        if (r == 0 && vmm_interrupted())
                r = rh_error_set(err, -EINTR, "spawn: interrupted");
        c->res->t.spawn = ms(now_ns() - c->t_stage);
        if (r < 0)
                return r;
        snprintf(c->rec.status, sizeof(c->rec.status), "paused");
        return vmm_clone_save(&c->rec, err);
}

int clone_load_state(struct clone *c, struct rh_error *err)
{
        int r = stage_begin(c, "load-state", err);

        if (r == 0)
                r = c->ops->load_state(c, c->o->timeout_ms, err);
        c->res->t.incoming = ms(now_ns() - c->t_stage);
        return r;
}

/*
 * The request's named payloads into the agent's payload pages (before the
 * request, whose CRC covers them), and hypeman fork mailboxes by marker.
 */
static int write_payloads(struct clone *c, struct rh_error *err)
{
        const struct rh_payload_set *set = c->o->payloads;
        struct rh_payload views[RH_PAYLOADS_MAX];
        unsigned n;
        int r;

        if (!set)
                return 0;
        n = rh_payload_set_views(set, views);
        if (n) {
                r = rh_payloads_write(c->target, c->t->mailbox_gpa, c->t->token, views, n, &c->req, err);
                if (r < 0)
                        return rh_error_prefix(err, r, "payloads");
                for (unsigned i = 0; i < n; i++)
                        snprintf(c->res->payload_names[i], sizeof(c->res->payload_names[i]), "%s", views[i].name);
                c->res->n_payloads = n;
        }
        for (unsigned i = 0; i < set->n_hypeman; i++) {
                const struct rh_named_json *m = &set->hypeman[i];
                const char *tok = m->token[0] ? m->token : NULL;
                _cleanup_free_ uint8_t *json = NULL;
                size_t len = m->len;
                uint32_t port = 0;
                uint64_t gpa;

                snprintf(c->res->hypeman_names[i], sizeof(c->res->hypeman_names[i]), "%s", m->name);
                /* No ack_port of the caller's: as hypeman's host does, put ours in and wait for the ack. */
                (void)rh_json_object_check(m->data, m->len, &port);
                if (port == 0) {
                        struct rh_ipaddr gw;
                        uint16_t p = 0;

                        if (c->hfm_fd < 0)
                                c->hfm_fd = udp_ack_socket(&c->net, &gw, &p);
                        if (c->hfm_fd >= 0 && p) {
                                r = rh_hfm_json_with_ack_port(m->data, m->len, p, &json, &len, err);
                                if (r < 0)
                                        return rh_error_prefix(err, r, "hypeman mailbox %s", m->name);
                                c->res->hypeman_awaited |= 1u << i;
                        }
                }
                r = rh_hfm_locate(c->target, m->name, tok, &gpa, err);
                if (r == 0)
                        r = rh_hfm_patch(c->target, gpa, m->name, tok, json ? json : m->data, len, err);
                if (r < 0)
                        return rh_error_prefix(err, r, "hypeman mailbox %s", m->name);
        }
        c->res->n_hypeman = set->n_hypeman;
        return 0;
}

int clone_handoff(struct clone *c, struct rh_error *err)
{
        const struct vmm_template *t = c->t;
        struct rh_ipaddr gw;
        uint16_t port = 0;
        int r = stage_begin(c, "handoff", err);

        if (r < 0)
                return r;
        r = c->ops->open_target(c, err);
        if (r < 0)
                return r;
        r = build_request(c, err);
        if (r < 0)
                return r;
        /* Our UDP channel, unless the request names its own ack address. */
        c->udp_fd = c->req.has_ack_udp ? -EBADF : udp_ack_socket(&c->net, &gw, &port);
        if (c->udp_fd >= 0) {
                c->req.has_ack_udp = true;
                c->req.ack_addr = gw;
                c->req.ack_port = port;
        }
        /* The host's time, stamped as late as possible: the agent steps the guest's clock to it. */
        if ((t->agent_caps & RH_CAP_CLOCK) && !c->o->no_clock) {
                struct timespec rt;
                clock_gettime(CLOCK_REALTIME, &rt);
                c->req.realtime_ns = (uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec;
        }
        r = write_payloads(c, err);
        if (r < 0)
                return r;
        /* One read (verifies magic, token and recorded gpa) and the three writes. */
        r = rh_mailbox_patch(c->target, t->mailbox_gpa, t->token, &c->req, &c->seq, err);
        if (r < 0)
                return rh_error_prefix(err, r, "patch mailbox at gpa 0x%" PRIx64, t->mailbox_gpa);
        c->req.seq = c->seq;
        c->res->t.patch = ms(now_ns() - c->t_stage);
        return 0;
}

/* The working set `template record-ws` stored: read it into the page cache first. */
static void prefetch(struct clone *c)
{
        char path[PATH_MAX + 16];
        _cleanup_free_ uint64_t *offsets = NULL;
        size_t n = 0;

        snprintf(path, sizeof(path), "%s/%s", c->t->dir, VMM_WS_FILE);
        if (c->o->no_prefetch || access(path, R_OK) < 0)
                return;
        if (vmm_ws_load(path, c->t->mem_size, &offsets, &n, NULL) < 0)
                return; /* an optimisation only: a damaged file costs nothing but speed */
        uint64_t bytes = 0;
        if (vmm_ws_prefetch(c->t->ram_path, offsets, n, &bytes, NULL) == 0)
                c->res->prefetched_bytes = bytes;
}

int clone_resume(struct clone *c, struct rh_error *err)
{
        int r = stage_begin(c, "resume", err);

        if (r < 0)
                return r;
        prefetch(c);
        c->t_stage = now_ns();
        if (!c->o->no_cont) {
                r = c->ops->resume(c, err);
                if (r < 0)
                        return r;
        }
        c->t_cont = now_ns();
        c->res->t.cont = ms(c->t_cont - c->t_stage);
        snprintf(c->rec.status, sizeof(c->rec.status), c->o->no_cont ? "paused" : "resumed");
        vmm_clone_save(&c->rec, NULL);
        return 0;
}

/* rh_ack_wait's check: the clone's VMM must still be running. */
static int vmm_alive(void *ctx, struct rh_error *err)
{
        struct clone *c = ctx;
        int status;
        char why[256];

        if (vmm_interrupted())
                return rh_error_set(err, -EINTR, "interrupted");
        if (!qemu_exited(c->rec.pid, &status))
                return 0;
        qemu_describe_exit(status, c->t->ram_path, c->log_path, why, sizeof(why));
        c->rec.pid = 0;
        return rh_error_set(err, -ECHILD, "QEMU died after resume: %s", why);
}

static void guest_timings(struct clone *c)
{
        const struct rh_ack *ack = &c->wait.ack;
        struct vmm_fork_timing *t = &c->res->t;
        double h = t->host_ack_seen;

        if (!c->wait.have_record)
                return;
        if (ack->t_ack_ns >= ack->t_applied_ns && ack->t_applied_ns >= ack->t_read_ns &&
            ack->t_read_ns >= ack->t_signal_ns && ack->t_signal_ns > 0) {
                t->resume_signal = h - ms(ack->t_ack_ns - ack->t_signal_ns);
                t->resume_read = h - ms(ack->t_ack_ns - ack->t_read_ns);
                t->resume_applied = h - ms(ack->t_ack_ns - ack->t_applied_ns);
                t->resume_ack = h;
                t->have_guest = true;
        } else if (ack->t_ack_ns >= ack->t_read_ns && ack->t_read_ns > 0) {
                /* Rejected requests carry no applied stamp. */
                t->resume_signal = ack->t_signal_ns && ack->t_ack_ns >= ack->t_signal_ns
                                           ? h - ms(ack->t_ack_ns - ack->t_signal_ns)
                                           : -1;
                t->resume_read = h - ms(ack->t_ack_ns - ack->t_read_ns);
                t->resume_applied = -1;
                t->resume_ack = h;
                t->have_guest = true;
        }
}

/*
 * The hypeman fork mailbox acks rehome asked for (ack_port injected):
 * "stage=applied mailbox=NAME" per name, within the fork's timeout.
 */
static int wait_hfm_acks(struct clone *c, struct rh_error *err)
{
        struct vmm_fork_result *res = c->res;
        uint64_t deadline = now_ns() + (uint64_t)c->o->timeout_ms * 1000000ull;
        char line[1500];

        while ((res->hypeman_acked & res->hypeman_awaited) != res->hypeman_awaited) {
                struct pollfd pfd = {.fd = c->hfm_fd, .events = POLLIN};
                uint64_t now = now_ns();
                ssize_t n;

                if (now >= deadline) {
                        for (unsigned i = 0; i < res->n_hypeman; i++)
                                if ((res->hypeman_awaited >> i & 1) && !(res->hypeman_acked >> i & 1))
                                        return rh_error_set(err, -ETIMEDOUT,
                                                            "no ack from hypeman mailbox %s within %d ms",
                                                            res->hypeman_names[i], c->o->timeout_ms);
                }
                if (poll(&pfd, 1, (int)((deadline - now) / 1000000ull) + 1) < 0 && errno != EINTR)
                        return rh_error_set(err, -errno, "hypeman mailbox acks: poll: %s", strerror(errno));
                while ((n = recv(c->hfm_fd, line, sizeof(line) - 1, 0)) > 0)
                        for (unsigned i = 0; i < res->n_hypeman; i++)
                                if (rh_hfm_ack_matches(line, (size_t)n, res->hypeman_names[i]))
                                        res->hypeman_acked |= 1u << i;
        }
        return 0;
}

int clone_wait_ack(struct clone *c, struct rh_error *err)
{
        struct rh_ack_wait_opts w = {
                .target = c->target,
                .gpa = c->t->mailbox_gpa,
                .udp_fd = c->udp_fd,
                .nonce = c->req.nonce,
                .seq = c->seq,
                .timeout_ms = c->o->timeout_ms,
                .check = vmm_alive,
                .ctx = c,
        };
        struct vmm_fork_result *res = c->res;
        char text[4 * RH_ACK_ERROR_MAX + 1];
        int r;

        r = stage_begin(c, "wait", err);
        if (r < 0)
                return r;
        r = rh_ack_wait(&w, &c->wait, err);
        if (r == -ETIMEDOUT) {
                char tail[160], safe[4 * sizeof(tail) + 1];
                qemu_log_tail(c->rec.console_path, tail, sizeof(tail));
                rh_text_escape(tail, sizeof(tail), safe, sizeof(safe));
                snprintf(res->seen, sizeof(res->seen), "%s", rh_ack_wait_seen(&c->wait));
                return rh_error_set(err, -ETIMEDOUT, "no ack within %d ms of %s: %s (last console line: '%s')",
                                    c->o->timeout_ms,
                                    c->o->no_cont ? "the patch (never resumed: --no-resume)" : "resume",
                                    res->seen, safe);
        }
        if (r < 0)
                return r;
        res->acked = true;
        res->ack_channel = c->wait.channel == RH_ACK_CHANNEL_UDP ? "udp" : "mailbox";
        res->udp_ack_seen = c->wait.t_line_ns ? ms(c->wait.t_line_ns - c->t_cont) : -1;
        res->t.host_ack_seen = ms(c->wait.t_final_ns - c->t_cont);
        res->t.total = ms(c->wait.t_final_ns - c->t_start);
        if (c->wait.have_record)
                res->ack = c->wait.ack;
        if (c->wait.have_line && c->wait.line.has_realtime) {
                struct timespec rt;
                clock_gettime(CLOCK_REALTIME, &rt);
                double host_at_line = (double)rt.tv_sec * 1e3 + (double)rt.tv_nsec / 1e6 -
                                      ms(now_ns() - c->wait.t_line_ns);
                res->clock_offset_ms = (double)c->wait.line.realtime_ns / 1e6 - host_at_line;
                res->have_clock_offset = true;
        }
        guest_timings(c);
        if (c->wait.applied)
                return res->hypeman_awaited ? wait_hfm_acks(c, err) : 0;
        /* Guest-written text: escaped, so it cannot forge lines or drive the terminal. */
        const char *why = c->wait.have_record ? c->wait.ack.error : c->wait.line.error;
        rh_text_escape(why, RH_ACK_ERROR_MAX, text, sizeof(text));
        uint32_t status = c->wait.have_record ? c->wait.ack.status : RH_ACK_FAILED;
        snprintf(c->rec.status, sizeof(c->rec.status), "%s", rh_ack_status_name(status));
        return rh_error_set(err, -EBADE, "the agent %s the request: %s%s",
                            status == RH_ACK_INVALID ? "rejected" : "failed to apply",
                            text[0] ? text : rh_ack_status_name(status),
                            status == RH_ACK_INVALID ? " (the clone kept the template identity)" : "");
}

void clone_free(struct clone *c)
{
        c->qmp = qmp_free(c->qmp);
        c->target = rh_target_free(c->target);
        c->layout = rh_layout_free(c->layout);
        if (c->udp_fd >= 0)
                close(c->udp_fd);
        if (c->hfm_fd >= 0)
                close(c->hfm_fd);
        c->udp_fd = -EBADF;
        c->hfm_fd = -EBADF;
}

/* A QEMU that exited before or during a stage: name the cause in the error. */
static void explain_exit(struct clone *c, int r, struct rh_error *err)
{
        int status = -1;
        char why[256];

        if (c->rec.pid <= 0)
                return;
        /* QEMU exits right after a failed incoming migration: give it a moment. */
        for (int i = 0; i < 100 && !qemu_exited(c->rec.pid, &status); i++) {
                struct timespec ts = {0, 2000000};
                nanosleep(&ts, NULL);
        }
        if (status == -1 && proc_starttime(c->rec.pid) != 0)
                return; /* still running */
        qemu_describe_exit(status, c->t->ram_path, c->log_path, why, sizeof(why));
        rh_error_prefix(err, r, "QEMU %s", why);
        c->rec.pid = 0;
}

int clone_finish(struct clone *c, int r, struct rh_error *err)
{
        bool keep = r == 0 || (c->o->keep && r != -EINTR && c->rec.pid > 0 && vmm_clone_alive(&c->rec));

        clone_free(c);
        if (r < 0 && r != -EBADE && r != -ETIMEDOUT && r != -EINTR)
                explain_exit(c, r, err);
        if (r == 0)
                snprintf(c->rec.status, sizeof(c->rec.status), "running");
        else if (r == -ETIMEDOUT)
                snprintf(c->rec.status, sizeof(c->rec.status), "no-ack");
        else if (r != -EBADE)
                snprintf(c->rec.status, sizeof(c->rec.status), "failed");
        if (keep && c->rec.pid > 0) {
                c->rec.owner = 0;
                c->rec.owner_starttime = 0;
                int s = vmm_clone_save(&c->rec, r == 0 ? err : NULL);
                if (s < 0 && r == 0) {
                        r = s;
                        keep = false;
                } else
                        qemu_release(c->rec.pid); /* it outlives us now */
        } else
                keep = false;
        if (!keep && c->rec.dir[0]) {
                if (!c->tap_made)
                        c->rec.tap[0] = '\0';
                vmm_clone_destroy(c->o->state_dir, &c->rec, NULL);
        }
        c->res->clone = c->rec;
        if (r < 0)
                return rh_error_prefix(err, r, "fork %s", c->rec.id[0] ? c->rec.id : c->t->name);
        return 0;
}

int clone_run(const struct vmm_template *t, const struct vmm_fork_opts *o, struct vmm_fork_result *res,
              struct rh_error *err)
{
        struct clone c;
        int r;

        r = clone_prepare(&c, t, o, res, err);
        if (r < 0) {
                clone_free(&c);
                return rh_error_prefix(err, r, "fork %s", t->name);
        }
        r = clone_spawn(&c, err);
        if (r == 0)
                r = clone_load_state(&c, err);
        if (r == 0)
                r = clone_handoff(&c, err);
        if (r == 0)
                r = clone_resume(&c, err);
        if (r == 0)
                r = clone_wait_ack(&c, err);
        return clone_finish(&c, r, err);
}

int vmm_clone_destroy(const char *state_dir, struct vmm_clone *c, struct rh_error *err)
{
        struct vmm_net net;

        if (c->pid > 0 && c->starttime && proc_starttime(c->pid) == c->starttime)
                qemu_kill(c->pid);
        else if (c->pid > 0)
                qemu_release(c->pid);
        bool have_net = vmm_net_load(state_dir, &net, NULL) == 0;
        if (c->tap[0] && have_net)
                vmm_tap_delete(&net, c->tap);
        /* Its address goes back to the IPAM (CNI DEL; idempotent). */
        if (c->ipam.plugin[0] && c->id[0])
                vmm_ipam_del(&c->ipam, have_net ? &net : &(struct vmm_net){0}, state_dir, c->id, NULL);
        /* The same for every extra NIC, on its own network. */
        for (unsigned k = 1; k < c->nics; k++) {
                struct vmm_clone_nic *x = &c->xnic[k - 1];
                struct vmm_net xnet = {.nic = k};
                bool have_xnet = vmm_net_load_nic(state_dir, k, &xnet, NULL) == 0;
                if (x->tap[0] && (have_xnet || have_net))
                        vmm_tap_delete(have_xnet ? &xnet : &net, x->tap); /* one namespace: by name */
                if (x->ipam.plugin[0] && c->id[0])
                        vmm_ipam_del(&x->ipam, &xnet, state_dir, c->id, NULL);
        }
        (void)err;
        return vmm_clone_remove_record(c);
}
