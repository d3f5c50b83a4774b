/* SPDX-License-Identifier: MIT */
/*
 * `rehome fork --count N`: N clones of one template at once, one thread per
 * clone, each through the stages of clone.c (clone_run). This file only
 * derives the per-clone identities (consecutive addresses inside the
 * subnet, consecutive MACs with the carry across every byte), checks them
 * all before anything is spawned, and hands out warm clones (pool.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clone.h"
#include "vmm.h"

struct job {
        const struct vmm_template *t;
        struct vmm_fork_opts opts;
        struct rh_request req; /* this clone's request (IPv6 addresses and host name derived) */
        struct vmm_fork_result *res;
        int rc;
        struct rh_error err;
        char warm_id[32];
};

static void *run_job(void *arg)
{
        struct job *j = arg;
        j->rc = clone_run(j->t, &j->opts, j->res, &j->err);
        return NULL;
}

static void *run_warm(void *arg)
{
        struct job *j = arg;
        struct vmm_clone c;
        j->rc = vmm_pool_spawn(j->opts.state_dir, j->t, &c, &j->err);
        if (j->rc == 0)
                snprintf(j->warm_id, sizeof(j->warm_id), "%s", c.id);
        return NULL;
}

int vmm_ip_nth(const struct rh_ipaddr *base, uint8_t prefix, unsigned n, struct rh_ipaddr *ret,
               struct rh_error *err)
{
        size_t len = base->family == 4 ? 4 : 16;
        unsigned bits = (unsigned)len * 8;
        struct rh_ipaddr ip = *base;
        unsigned carry = n;
        char a[48], b[48];

        if (prefix > bits)
                return rh_error_set(err, -EINVAL, "prefix /%u too long", prefix);
        /* Add @n as a big-endian integer, the carry across every byte. */
        for (size_t i = len; i-- > 0 && carry;) {
                unsigned v = ip.addr[i] + (carry & 0xff);
                ip.addr[i] = (uint8_t)v;
                carry = (carry >> 8) + (v >> 8);
        }
        /* Same network part (the first @prefix bits) as the base, else it left the subnet. */
        bool same = carry == 0;
        for (unsigned bit = 0; same && bit < prefix; bit++) {
                uint8_t m = (uint8_t)(0x80 >> (bit % 8));
                same = (ip.addr[bit / 8] & m) == (base->addr[bit / 8] & m);
        }
        /* IPv4: the host part all ones is the broadcast address. */
        bool bcast = base->family == 4 && prefix < 31;
        for (unsigned bit = prefix; bcast && bit < bits; bit++)
                bcast = ip.addr[bit / 8] & (0x80 >> (bit % 8));
        if (!same || bcast) {
                rh_ip_format(base, a);
                rh_ip_format(&ip, b);
                return rh_error_set(err, -ERANGE, "%s/%u + %u%s%s leaves the subnet%s", a, prefix, n,
                                    same ? " = " : "", same ? b : "", bcast ? " (broadcast address)" : "");
        }
        *ret = ip;
        return 0;
}

int vmm_mac_nth(const uint8_t base[6], unsigned n, uint8_t ret[6], struct rh_error *err)
{
        uint8_t mac[6];
        unsigned carry = n;

        memcpy(mac, base, 6);
        /* The carry runs through bytes 5..1; byte 0 (multicast and local bits) must not change. */
        for (int i = 5; i >= 1 && carry; i--) {
                unsigned v = mac[i] + (carry & 0xff);
                mac[i] = (uint8_t)v;
                carry = (carry >> 8) + (v >> 8);
        }
        if (carry) {
                char m[18];
                rh_mac_format(base, m);
                return rh_error_set(err, -ERANGE, "--mac %s + %u overflows the MAC address space", m, n);
        }
        memcpy(ret, mac, 6);
        return 0;
}

/* Clone @i's request: IPv6 addresses counted up inside their prefix, "-N" on a host name. */
static int derive_request(const struct vmm_fork_opts *base, unsigned i, unsigned count, struct job *j,
                          struct rh_error *err)
{
        if (!base->request)
                return 0;
        j->req = *base->request;
        j->opts.request = &j->req;
        for (unsigned k = 0; k < j->req.n_addrs; k++) {
                struct rh_addr *a = &j->req.addrs[k];
                struct rh_ipaddr ip = {.family = a->family}, next;
                if (a->family != 6)
                        continue;
                memcpy(ip.addr, a->addr, 16);
                int r = vmm_ip_nth(&ip, a->prefix, i, &next, err);
                if (r < 0)
                        return r;
                memcpy(a->addr, next.addr, 16);
        }
        if (j->req.hostname[0] && count > 1 && i > 0) {
                char suffix[16];
                int n = snprintf(suffix, sizeof(suffix), "-%u", i + 1);
                size_t len = strlen(j->req.hostname);
                if (len + (size_t)n > RH_HOSTNAME_MAX)
                        return rh_error_set(err, -ENAMETOOLONG, "--hostname %s%s is too long", j->req.hostname, suffix);
                memcpy(j->req.hostname + len, suffix, (size_t)n + 1);
        }
        return 0;
}

/* Every clone's identity, derived and checked before anything starts. */
static int plan(const struct vmm_template *t, const struct vmm_fork_opts *base, unsigned count, struct job *jobs,
                struct rh_error *err)
{
        struct vmm_net net = {0};
        bool have_net = base->net ? (net = *base->net, true) : vmm_net_load(base->state_dir, &net, NULL) == 0;

        for (unsigned i = 0; i < count; i++) {
                struct job *j = &jobs[i];
                char addr[64], owner[64];
                int r = derive_request(base, i, count, j, err);
                if (r < 0)
                        return rh_error_prefix(err, r, "--count %u", count);
                if (base->has_mac) {
                        r = vmm_mac_nth(base->mac, i, j->opts.mac, err);
                        if (r < 0)
                                return rh_error_prefix(err, r, "--count %u", count);
                }
                /* The extra NICs: consecutive addresses and MACs, each from its own base. */
                for (unsigned k = 1; k < VMM_MAX_NICS; k++) {
                        const struct vmm_fork_nic *b = &base->xnic[k - 1];
                        struct vmm_fork_nic *x = &j->opts.xnic[k - 1];
                        if (b->has_mac && (r = vmm_mac_nth(b->mac, i, x->mac, err)) < 0)
                                return rh_error_prefix(err, r, "--count %u: NIC %u", count, k);
                        /* The first clone's is the one asked for: the checks below say what is wrong with it. */
                        if (b->has_ip && i == 0)
                                x->ip = b->ip;
                        else if (b->has_ip && (r = vmm_ip_nth(&b->ip, b->prefix, i, &x->ip, err)) < 0)
                                return rh_error_prefix(err, r, "--count %u: NIC %u", count, k);
                        /* Checked here too, so that no clone of the batch starts with a bad one. */
                        struct vmm_net xnet;
                        uint8_t mac[6];
                        if (!b->has_ip || k >= t->nics || vmm_net_load_nic(base->state_dir, k, &xnet, NULL) < 0)
                                continue;
                        if (b->has_mac)
                                memcpy(mac, x->mac, 6);
                        else
                                vmm_mac_for_ip(&x->ip, mac);
                        r = vmm_identity_check_nic(&xnet, t, k, &x->ip, b->prefix, mac, err);
                        if (r < 0)
                                return r;
                        char xaddr[48];
                        rh_ip_format(&x->ip, xaddr);
                        if (vmm_identity_in_use(base->state_dir, xaddr, b->has_mac ? x->mac : NULL, owner,
                                                sizeof(owner)) < 0)
                                return rh_error_set(err, -EADDRINUSE,
                                                    "NIC %u: %s or its MAC is already used by %s: nothing was "
                                                    "started (rehome clone rm it, or pick another --nic %u,ip=)",
                                                    k, xaddr, owner, k);
                }
                if (!base->has_ip)
                        continue; /* the IPAM picks each address, atomically */
                r = vmm_ip_nth(&base->ip, base->prefix, i, &j->opts.ip, err);
                if (r < 0)
                        return rh_error_prefix(err, r, "--count %u", count);
                rh_ip_format(&j->opts.ip, addr);
                uint8_t mac[6];
                char dev[32];
                if (base->has_mac)
                        memcpy(mac, j->opts.mac, 6);
                else
                        vmm_mac_for_ip(&j->opts.ip, mac);
                if (vmm_identity_in_use(base->state_dir, addr, base->has_mac ? j->opts.mac : NULL, owner,
                                        sizeof(owner)) < 0)
                        return rh_error_set(err, -EADDRINUSE,
                                            "%s or its MAC is already used by %s: nothing was started "
                                            "(rehome clone rm it, or pick another --ip)",
                                            addr, owner);
                /* Records first (their message names the clone), then the bridge's other hosts. */
                if (have_net && vmm_mac_on_bridge(&net, mac, dev, sizeof(dev)) < 0)
                        return rh_error_set(err, -EADDRINUSE,
                                            "MAC %02x:%02x:%02x:%02x:%02x:%02x (for %s) is already on the bridge "
                                            "(port %s): nothing was started",
                                            mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], addr, dev);
        }
        return 0;
}

/* Start one thread per job; a job whose thread cannot start fails on its own. */
static void run_all(struct job *jobs, unsigned count, void *(*fn)(void *))
{
        pthread_t *th = calloc(count, sizeof(*th));
        bool *started = calloc(count, sizeof(*started));

        for (unsigned i = 0; i < count; i++) {
                int e = th && started ? pthread_create(&th[i], NULL, fn, &jobs[i]) : ENOMEM;
                if (e == 0)
                        started[i] = true;
                else
                        jobs[i].rc = rh_error_set(&jobs[i].err, -e, "cannot start a thread: %s", strerror(e));
        }
        for (unsigned i = 0; i < count; i++)
                if (started && started[i])
                        pthread_join(th[i], NULL);
        free(th);
        free(started);
}

/* --warm: pre-spawn @count QEMUs; on failure remove every one of them. */
static int fill_pool(const struct vmm_template *t, const struct vmm_fork_opts *base, struct job *jobs,
                     unsigned count, struct rh_error *err)
{
        int first = 0;

        run_all(jobs, count, run_warm);
        for (unsigned i = 0; i < count; i++)
                if (jobs[i].rc < 0 && first == 0) {
                        *err = jobs[i].err;
                        first = jobs[i].rc;
                }
        for (unsigned i = 0; i < count; i++) {
                struct vmm_clone c;
                if (first < 0 && jobs[i].warm_id[0] &&
                    vmm_clone_load(base->state_dir, jobs[i].warm_id, &c, NULL) == 0)
                        vmm_clone_destroy(base->state_dir, &c, NULL);
                else if (first == 0)
                        jobs[i].opts.warm_id = jobs[i].warm_id;
        }
        (void)t;
        return first;
}

int vmm_fork_batch(const struct vmm_template *t, const struct vmm_fork_opts *base, unsigned count, bool warm,
                   struct vmm_fork_result *res, int *rcs, struct rh_error *errs, struct rh_error *err)
{
        struct job *jobs = calloc(count, sizeof(*jobs));
        int first = 0, r;

        if (!jobs)
                return rh_error_set(err, -ENOMEM, "out of memory");
        for (unsigned i = 0; i < count; i++) {
                jobs[i].t = t;
                jobs[i].opts = *base;
                jobs[i].res = &res[i];
        }
        r = plan(t, base, count, jobs, err);
        if (r == 0 && warm)
                r = fill_pool(t, base, jobs, count, err);
        else if (r == 0 && !base->no_pool)
                /* Warm clones left by `rehome template warm`: take what there is. */
                for (unsigned i = 0; i < count; i++)
                        if (vmm_pool_claim(base->state_dir, t->name, jobs[i].warm_id) == 0)
                                jobs[i].opts.warm_id = jobs[i].warm_id;
        if (r < 0) {
                free(jobs);
                return r;
        }
        run_all(jobs, count, run_job);
        for (unsigned i = 0; i < count; i++) {
                rcs[i] = jobs[i].rc;
                errs[i] = jobs[i].err;
                if (jobs[i].rc < 0 && first == 0) {
                        first = jobs[i].rc;
                        *err = jobs[i].err;
                }
        }
        free(jobs);
        return first;
}
