/* SPDX-License-Identifier: MIT */
/*
 * Forking a clone on QEMU (DESIGN.md decision 1):
 *
 *   spawn     tap on the bridge; QEMU with the template's command line but
 *             share=off (a MAP_PRIVATE, copy-on-write mapping of the template
 *             RAM), a new vmgenid guid, -incoming defer -S; QMP handshake
 *   incoming  x-ignore-shared, migrate-incoming exec:cat state, MIGRATION
 *             completed (device state only: RAM is the mapped file)
 *   patch     the mailbox, through /proc/<pid>/mem at the mapping's host
 *             address: O(1) at the template's recorded gpa; COW makes the
 *             written page private to this clone, the template file is not
 *             touched
 *   cont      resume the vCPU
 *   ack       poll the ack record in the clone's memory (every 250 us) until
 *             the agent reports applied / invalid / failed for our nonce; the
 *             agent also sends a UDP line to a socket rehome binds on the
 *             gateway address (second channel; whichever shows the final ack
 *             first counts)
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
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "io.h"
#include "qmp.h"
#include "rehome/layout.h"
#include "rehome/patch.h"
#include "rehome/request.h"
#include "vmm.h"

/* 250 us: finer polling from several fork threads steals the host CPU the
 * clones' vCPUs need (TCG on two cores) for little gain in precision. */
#define ACK_POLL_NS 250000

static double ms(uint64_t ns)
{
        return (double)ns / 1e6;
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
        int nsfd = -EBADF, selffd = -EBADF, fd = -EBADF, r;
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
                if (nsfd < 0 || selffd < 0 || setns(nsfd, CLONE_NEWNET) < 0) {
                        r = -errno;
                        goto out;
                }
        }
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        r = fd < 0 ? -errno : 0;
        if (r == 0 && (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
                       getsockname(fd, (struct sockaddr *)&sin, &len) < 0))
                r = -errno;
        if (selffd >= 0 && setns(selffd, CLONE_NEWNET) < 0)
                abort(); /* this thread would go on in the wrong namespace */
out:
        if (nsfd >= 0)
                close(nsfd);
        if (selffd >= 0)
                close(selffd);
        if (r < 0) {
                if (fd >= 0)
                        close(fd);
                return r;
        }
        *ret_port = ntohs(sin.sin_port);
        return fd;
}

/* Drain the UDP socket; true when a final line (applied/error) for @nonce came. */
static bool udp_ack_final(int fd, uint64_t nonce)
{
        char buf[1500];
        bool final = false;

        for (;;) {
                ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
                if (n <= 0)
                        return final;
                struct rh_ack_line line;
                /* Untrusted: parsed with the bounded parser; other nonces are ignored. */
                if (rh_ack_line_parse(buf, (size_t)n, &line, NULL) == 0 && line.has_nonce &&
                    line.nonce == nonce &&
                    (strcmp(line.stage, "applied") == 0 || strcmp(line.stage, "error") == 0))
                        final = true;
        }
}

static void build_request(const struct vmm_template *t, const struct vmm_fork_opts *o,
                          const struct vmm_clone *c, const char *iface, struct rh_request *req)
{
        memset(req, 0, sizeof(*req));
        req->seq = 0; /* one more than the page's */
        if (getrandom(&req->nonce, sizeof(req->nonce), 0) != sizeof(req->nonce) || req->nonce == 0)
                req->nonce = now_ns() | 1;
        req->flags = RH_REQ_FLUSH_NEIGH | RH_REQ_ANNOUNCE | RH_REQ_REPLACE_ADDRS;
        req->n_ifaces = 1;
        req->ifaces[0].match = RH_MATCH_NAME;
        snprintf(req->ifaces[0].name, sizeof(req->ifaces[0].name), "%s", iface);
        req->ifaces[0].has_mac = true;
        memcpy(req->ifaces[0].mac, c->mac, 6);
        req->n_addrs = 1;
        req->addrs[0].iface = 0;
        req->addrs[0].family = o->ip.family;
        req->addrs[0].prefix = o->prefix;
        memcpy(req->addrs[0].addr, o->ip.addr, 16);
        if (o->has_gateway) {
                req->n_routes = 1;
                req->routes[0].iface = 0;
                req->routes[0].family = o->gateway.family;
                req->routes[0].dst_prefix = 0;
                req->routes[0].has_gateway = true;
                memcpy(req->routes[0].gateway, o->gateway.addr, 16);
        }
        snprintf(req->hostname, sizeof(req->hostname), "%s-%s", t->name, c->id);
        for (char *p = req->hostname; *p; p++)
                if (*p == '_' || *p == '.')
                        *p = '-';
}

static int qemu_fork(const struct vmm_template *t, const struct vmm_fork_opts *o, struct vmm_fork_result *res,
                     struct rh_error *err)
{
        struct vmm_clone *c = &res->clone;
        struct vmm_net net;
        struct rh_layout *layout = NULL;
        struct rh_target *target = NULL;
        struct qmp *qmp = NULL;
        struct rh_request req;
        char log[PATH_MAX + 16], addr[48];
        uint64_t t_start, t0, t_cont;
        bool tap_made = false;
        _cleanup_close_ int udp_fd = -EBADF;
        int r;

        memset(res, 0, sizeof(*res));
        t_start = now_ns();
        if (o->net)
                net = *o->net;
        else {
                r = vmm_net_load(o->state_dir, &net, err);
                if (r < 0)
                        return r;
        }

        /* Identity first: refuse before anything is spawned. */
        rh_ip_format(&o->ip, addr);
        if (!o->no_handoff) {
                char owner[64];
                if (vmm_ip_in_use(o->state_dir, addr, owner, sizeof(owner)) < 0)
                        return rh_error_set(
                                err, -EADDRINUSE,
                                "%s is already used by live %s (rehome clone rm it, or pick another --ip)",
                                addr, owner);
        }
        if (o->warm_id) {
                /* A pre-spawned QEMU from the pool: its id, tap, guid and pid are set. */
                r = vmm_clone_load(o->state_dir, o->warm_id, c, err);
                if (r < 0)
                        return r;
                if (!vmm_clone_alive(c) || c->pid <= 0)
                        return rh_error_set(err, -ESRCH, "warm clone %s is not running", c->id);
                tap_made = true;
        } else {
                r = vmm_clone_alloc(o->state_dir, c, err);
                if (r < 0)
                        return r;
        }
        snprintf(c->template_name, sizeof(c->template_name), "%s", t->name);
        snprintf(c->ip, sizeof(c->ip), "%s/%u", addr, o->prefix);
        if (o->has_gateway)
                rh_ip_format(&o->gateway, c->gateway);
        if (o->has_mac)
                memcpy(c->mac, o->mac, 6);
        else
                vmm_mac_for_ip(&o->ip, c->mac);
        if (o->no_handoff) {
                /* Resumed unchanged: the template's identity, in its own namespace. */
                snprintf(c->ip, sizeof(c->ip), "%s", t->ip);
                snprintf(c->gateway, sizeof(c->gateway), "%s", t->gateway);
                memcpy(c->mac, t->mac, 6);
        }
        if (!c->vmgenid[0])
                vmm_guid_new(c->vmgenid);
        snprintf(log, sizeof(log), "%s/qemu.log", c->dir);
        r = vmm_clone_save(c, err);
        if (r < 0)
                goto fail;

        /* spawn */
        t0 = now_ns();
        if (!o->warm_id) {
                r = vmm_tap_create(&net, c->tap, err);
                if (r < 0)
                        goto fail;
                tap_made = true;
                struct qemu_spec spec;

                qemu_spec_from_template(&spec, t);
                spec.vmgenid = c->vmgenid;
                spec.tap = c->tap;
                spec.netns = net.netns;
                spec.qmp_path = c->qmp_path;
                spec.console_path = c->console_path;
                spec.log_path = log;
                spec.incoming = true;
                r = qemu_spawn(&spec, &c->pid, err);
                if (r < 0)
                        goto fail;
                c->starttime = proc_starttime(c->pid);
                c->owner = 0;
        }
        r = qmp_connect_child(c->qmp_path, c->pid, 30000, &qmp, err);
        if (r < 0)
                goto fail_qemu_log;
        res->t.spawn = ms(now_ns() - t0);
        snprintf(c->status, sizeof(c->status), "paused");
        vmm_clone_save(c, NULL);

        /* incoming */
        t0 = now_ns();
        r = qemu_incoming(qmp, t->state_path, true, 60000, err);
        if (r < 0) {
                rh_error_prefix(err, r,
                                "incoming migration from %s (if the template is damaged: "
                                "rehome template rm %s && rehome template create %s)",
                                t->state_path, t->name, t->name);
                goto fail_qemu_log;
        }
        res->t.incoming = ms(now_ns() - t0);

        /* patch (none with no_handoff: the clone resumes as the template) */
        t0 = now_ns();
        uint64_t gpa = t->mailbox_gpa;
        if (o->no_handoff)
                goto patched;
        r = rh_layout_parse(t->layout, &layout, err);
        if (r < 0)
                goto fail;
        r = rh_target_open_pid(c->pid, t->ram_path, layout, true, &target, err);
        if (r < 0)
                goto fail;
        r = rh_mailbox_locate(target, t->mailbox_gpa, t->token, false, &gpa, err);
        if (r < 0) {
                rh_error_prefix(err, r, "mailbox at gpa 0x%" PRIx64, t->mailbox_gpa);
                goto fail;
        }
        build_request(t, o, c, o->iface ? o->iface : "eth0", &req);
        {
                struct rh_ipaddr gw;
                uint16_t port = 0;
                udp_fd = udp_ack_socket(&net, &gw, &port);
                if (udp_fd >= 0) {
                        req.has_ack_udp = true;
                        req.ack_addr = gw;
                        req.ack_port = port;
                }
        }
        r = rh_mailbox_patch(target, gpa, t->token, &req, NULL, err);
        if (r < 0) {
                rh_error_prefix(err, r, "patch mailbox at gpa 0x%" PRIx64, gpa);
                goto fail;
        }
patched:
        res->t.patch = ms(now_ns() - t0);

        if (o->before_cont) {
                r = o->before_cont(o->hook_ctx, c);
                if (r < 0) {
                        rh_error_set(err, r, "before-resume hook: %s", strerror(-r));
                        goto fail;
                }
        }

        /* cont (--no-resume: wait for an ack that cannot come, for testing the timeout) */
        t0 = now_ns();
        if (!o->no_cont) {
                r = qmp_execute(qmp, "cont", NULL, 5000, NULL, err);
                if (r < 0)
                        goto fail_qemu_log;
        }
        t_cont = now_ns();
        res->t.cont = ms(t_cont - t0);
        snprintf(c->status, sizeof(c->status), o->no_cont ? "paused" : "resumed");
        vmm_clone_save(c, NULL);
        if (o->no_handoff) {
                /* Nothing to wait for. The QEMU stays tracked (killed on a signal): the caller destroys it. */
                res->t.total = ms(t_cont - t_start);
                qmp_free(qmp);
                return 0;
        }

        /* ack */
        uint64_t deadline = t_cont + (uint64_t)o->timeout_ms * 1000000ull;
        uint64_t t_read_seen = 0, t_udp_seen = 0;
        struct rh_ack ack;
        int last_r = -ENODATA;
        for (;;) {
                if (udp_fd >= 0 && !t_udp_seen && udp_ack_final(udp_fd, req.nonce))
                        t_udp_seen = now_ns();
                r = rh_mailbox_ack_read(target, gpa, &ack, NULL);
                last_r = r;
                if (r == 0 && ack.nonce == req.nonce) {
                        if (ack.status == RH_ACK_READ && !t_read_seen)
                                t_read_seen = now_ns();
                        if (ack.status >= RH_ACK_APPLIED)
                                break;
                }
                uint64_t now = now_ns();
                if (now >= deadline) {
                        const char *what;
                        if (r == 0 && ack.nonce == req.nonce)
                                what = "the agent read the request (ack READ) but never finished applying it";
                        else if (r == 0)
                                what = "only an ack for an older request (stale nonce): the agent never read "
                                       "ours";
                        else
                                what = "no ack at all: the agent never saw the resume signal or the request";
                        char tail[160];
                        qemu_log_tail(c->console_path, tail, sizeof(tail));
                        snprintf(res->seen, sizeof(res->seen), "%s", what);
                        r = rh_error_set(
                                err, -ETIMEDOUT,
                                "clone %s: no ack within %d ms of %s: %s (signal %s; last console line: "
                                "'%s')",
                                c->id, o->timeout_ms,
                                o->no_cont ? "the patch (never resumed: --no-resume)" : "resume", what,
                                r == 0 && ack.nonce == req.nonce ? rh_signal_name(ack.signal) : "none seen",
                                tail);
                        goto timeout;
                }
                if (qemu_exited(c->pid, NULL)) {
                        r = rh_error_set(err, -ECHILD, "clone %s: QEMU (pid %d) died after resume; see %s",
                                         c->id, (int)c->pid, log);
                        c->pid = 0;
                        goto fail;
                }
                /* Sleep one poll interval, or less if a UDP line arrives. */
                struct timespec ts = {0, ACK_POLL_NS};
                struct pollfd pfd = {.fd = udp_fd, .events = POLLIN};
                if (udp_fd >= 0 && !t_udp_seen)
                        ppoll(&pfd, 1, &ts, NULL);
                else
                        nanosleep(&ts, NULL);
        }
        (void)last_r;
        uint64_t t_ack_seen = now_ns();
        /* Before waiting for the UDP line: the hook counts what happened up to the ack. */
        if (o->after_ack)
                o->after_ack(o->hook_ctx, c);
        /* The agent writes the record, then sends the line: give the line a
         * short while to arrive, to report both channels (not in `total`). */
        for (uint64_t until = t_ack_seen + 250000000ull; udp_fd >= 0 && !t_udp_seen && now_ns() < until;) {
                struct timespec ts = {0, ACK_POLL_NS};
                struct pollfd pfd = {.fd = udp_fd, .events = POLLIN};
                if (udp_ack_final(udp_fd, req.nonce))
                        t_udp_seen = now_ns();
                else
                        ppoll(&pfd, 1, &ts, NULL);
        }
        res->udp_ack_seen = t_udp_seen ? ms(t_udp_seen - t_cont) : -1;
        res->ack_channel = t_udp_seen && t_udp_seen < t_ack_seen ? "udp" : "mailbox";
        if (t_udp_seen && t_udp_seen < t_ack_seen)
                t_ack_seen = t_udp_seen; /* the first channel to show the final ack */
        res->ack = ack;
        res->acked = true;
        res->t.host_ack_seen = ms(t_ack_seen - t_cont);
        if (ack.t_ack_ns >= ack.t_applied_ns && ack.t_applied_ns >= ack.t_read_ns &&
            ack.t_read_ns >= ack.t_signal_ns && ack.t_signal_ns > 0) {
                double h = res->t.host_ack_seen;
                res->t.resume_signal = h - ms(ack.t_ack_ns - ack.t_signal_ns);
                res->t.resume_read = h - ms(ack.t_ack_ns - ack.t_read_ns);
                res->t.resume_applied = h - ms(ack.t_ack_ns - ack.t_applied_ns);
                res->t.resume_ack = h;
                res->t.have_guest = true;
        } else if (ack.t_ack_ns >= ack.t_read_ns && ack.t_read_ns > 0) {
                /* Rejected requests carry no applied stamp. */
                double h = res->t.host_ack_seen;
                res->t.resume_signal = ack.t_signal_ns && ack.t_ack_ns >= ack.t_signal_ns
                                               ? h - ms(ack.t_ack_ns - ack.t_signal_ns)
                                               : -1;
                res->t.resume_read = h - ms(ack.t_ack_ns - ack.t_read_ns);
                res->t.resume_applied = -1;
                res->t.resume_ack = h;
                res->t.have_guest = true;
        }
        res->t.total = ms(t_ack_seen - t_start);
        rh_target_free(target);
        rh_layout_free(layout);
        qmp_free(qmp);

        if (ack.status != RH_ACK_APPLIED) {
                r = rh_error_set(err, -EBADE, "clone %s: the agent %s the request: %s%s", c->id,
                                 ack.status == RH_ACK_INVALID ? "rejected" : "failed to apply",
                                 ack.error[0] ? ack.error : rh_ack_status_name(ack.status),
                                 ack.status == RH_ACK_INVALID ? " (the clone kept the template identity)"
                                                              : "");
                snprintf(c->status, sizeof(c->status), "%s", rh_ack_status_name(ack.status));
                if (o->keep) {
                        vmm_clone_save(c, NULL);
                        qemu_release(c->pid);
                } else
                        vmm_clone_destroy(o->state_dir, c, NULL);
                return r;
        }
        snprintf(c->status, sizeof(c->status), "running");
        r = vmm_clone_save(c, err);
        if (r < 0) {
                vmm_clone_destroy(o->state_dir, c, NULL);
                return r;
        }
        qemu_release(c->pid); /* it outlives us now */
        return 0;

timeout:
        rh_target_free(target);
        rh_layout_free(layout);
        qmp_free(qmp);
        if (o->keep) {
                snprintf(c->status, sizeof(c->status), "no-ack");
                vmm_clone_save(c, NULL);
                qemu_release(c->pid);
        } else
                vmm_clone_destroy(o->state_dir, c, NULL);
        return r;

fail_qemu_log:
        /* Name what QEMU said (busy tap, bad state file, ...): that is the fix. */
        if (c->pid > 0) {
                char tail[256];
                /* QEMU exits right after a failed incoming migration: give it a moment. */
                for (int i = 0; i < 100 && !qemu_exited(c->pid, NULL); i++) {
                        struct timespec ts = {0, 2000000};
                        nanosleep(&ts, NULL);
                }
                if (qemu_exited(c->pid, NULL) || proc_starttime(c->pid) == 0) {
                        qemu_log_tail(log, tail, sizeof(tail));
                        if (tail[0])
                                rh_error_prefix(err, r, "QEMU exited: %s", tail);
                        c->pid = 0;
                }
        }
fail:
        rh_target_free(target);
        rh_layout_free(layout);
        qmp_free(qmp);
        if (!tap_made)
                c->tap[0] = '\0';
        if (o->keep && c->pid > 0) {
                snprintf(c->status, sizeof(c->status), "failed");
                vmm_clone_save(c, NULL);
                qemu_release(c->pid);
        } else
                vmm_clone_destroy(o->state_dir, c, NULL);
        return rh_error_prefix(err, r, "fork %s", c->id[0] ? c->id : t->name);
}

static int qemu_clone_destroy(const char *state_dir, struct vmm_clone *c, struct rh_error *err)
{
        return vmm_clone_destroy(state_dir, c, err);
}

const struct vmm_ops vmm_qemu_ops = {
        .name = "qemu",
        .template_create = qemu_template_create,
        .fork = qemu_fork,
        .clone_destroy = qemu_clone_destroy,
};
