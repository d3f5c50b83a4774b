/* SPDX-License-Identifier: MIT */
/*
 * The warm pool and batches. A warm clone is a QEMU already started with the
 * template's command line in -incoming defer -S, its tap on the bridge and
 * its QMP monitor answering: a fork that takes one skips process start-up
 * (the spawn stage shrinks to a QMP connect). Identity is not involved until
 * the patch, so any warm clone of a template serves any fork of it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "io.h"
#include "qmp.h"
#include "vmm.h"

int vmm_pool_spawn(const char *state_dir, const struct vmm_template *t, struct vmm_clone *ret,
                   struct rh_error *err)
{
        struct vmm_clone c = {0};
        struct vmm_net net;
        struct qmp *qmp = NULL;
        char log[PATH_MAX + 16];
        int r;

        r = vmm_net_load(state_dir, &net, err);
        if (r < 0)
                return r;
        r = vmm_clone_alloc(state_dir, &c, err);
        if (r < 0)
                return r;
        snprintf(c.template_name, sizeof(c.template_name), "%s", t->name);
        vmm_guid_new(c.vmgenid);
        snprintf(c.status, sizeof(c.status), "warm");
        snprintf(log, sizeof(log), "%s/qemu.log", c.dir);
        r = vmm_tap_create(&net, c.tap, err);
        if (r < 0) {
                c.tap[0] = '\0';
                goto fail;
        }
        struct qemu_spec spec;

        qemu_spec_from_template(&spec, t);
        spec.vmgenid = c.vmgenid;
        spec.tap = c.tap;
        spec.netns = net.netns;
        spec.qmp_path = c.qmp_path;
        spec.console_path = c.console_path;
        spec.log_path = log;
        spec.incoming = true;
        r = qemu_spawn(&spec, &c.pid, err);
        if (r < 0)
                goto fail;
        c.starttime = proc_starttime(c.pid);
        c.owner = 0;
        r = qmp_connect_child(c.qmp_path, c.pid, 30000, &qmp, err);
        qmp_free(qmp); /* only proving it is ready; the fork connects again */
        if (r < 0)
                goto fail;
        r = vmm_clone_save(&c, err);
        if (r < 0)
                goto fail;
        *ret = c;
        return 0;
fail:
        vmm_clone_destroy(state_dir, &c, NULL);
        return rh_error_prefix(err, r, "warm clone");
}

int vmm_pool_claim(const char *state_dir, const char *name, char ret_id[32])
{
        char **ids = NULL;
        int r = -ENOENT;

        if (vmm_clone_list(state_dir, &ids, NULL) < 0)
                return -ENOENT;
        for (size_t i = 0; ids[i] && r < 0; i++) {
                struct vmm_clone c;
                char claim[PATH_MAX + 16];
                if (vmm_clone_load(state_dir, ids[i], &c, NULL) < 0 || strcmp(c.status, "warm") != 0 ||
                    strcmp(c.template_name, name) != 0 || !vmm_clone_alive(&c))
                        continue;
                /* mkdir is atomic: of concurrent forks (threads or processes), one wins. */
                snprintf(claim, sizeof(claim), "%s/claimed", c.dir);
                if (mkdir(claim, 0755) == 0) {
                        snprintf(ret_id, 32, "%s", c.id);
                        r = 0;
                }
        }
        vmm_strv_free(ids);
        return r;
}

void vmm_pool_drain(const char *state_dir, const char *name)
{
        char **ids = NULL;

        if (vmm_clone_list(state_dir, &ids, NULL) < 0)
                return;
        for (size_t i = 0; ids[i]; i++) {
                struct vmm_clone c;
                if (vmm_clone_load(state_dir, ids[i], &c, NULL) == 0 && strcmp(c.status, "warm") == 0 &&
                    strcmp(c.template_name, name) == 0)
                        vmm_clone_destroy(state_dir, &c, NULL);
        }
        vmm_strv_free(ids);
}

struct job {
        const struct vmm_template *t;
        struct vmm_fork_opts opts;
        struct vmm_fork_result *res;
        int rc;
        struct rh_error err;
        char warm_id[32];
};

static void *run_job(void *arg)
{
        struct job *j = arg;
        j->rc = vmm_qemu_ops.fork(j->t, &j->opts, j->res, &j->err);
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

static void ip_add(struct rh_ipaddr *ip, unsigned n)
{
        /* Add @n to the address as a big-endian integer (v4: 4 bytes, v6: 16). */
        size_t len = ip->family == 4 ? 4 : 16;
        unsigned carry = n;
        for (size_t i = len; i-- > 0 && carry;) {
                unsigned v = ip->addr[i] + (carry & 0xff);
                ip->addr[i] = (uint8_t)v;
                carry = (carry >> 8) + (v >> 8);
        }
}

int vmm_fork_batch(const struct vmm_template *t, const struct vmm_fork_opts *base, unsigned count, bool warm,
                   struct vmm_fork_result *res, int *rcs, struct rh_error *errs, struct rh_error *err)
{
        struct job *jobs = calloc(count, sizeof(*jobs));
        pthread_t *th = calloc(count, sizeof(*th));
        int first = 0;

        if (!jobs || !th) {
                free(jobs);
                free(th);
                return rh_error_set(err, -ENOMEM, "out of memory");
        }
        for (unsigned i = 0; i < count; i++) {
                struct job *j = &jobs[i];
                char addr[64], owner[64];
                j->t = t;
                j->opts = *base;
                j->res = &res[i];
                ip_add(&j->opts.ip, i);
                if (base->has_mac) {
                        unsigned v = base->mac[5] + i;
                        j->opts.mac[5] = (uint8_t)v;
                        j->opts.mac[4] = (uint8_t)(base->mac[4] + (v >> 8));
                }
                rh_ip_format(&j->opts.ip, addr);
                if (vmm_ip_in_use(base->state_dir, addr, owner, sizeof(owner)) < 0) {
                        rh_error_set(err, -EADDRINUSE,
                                     "%s is already used by live %s: nothing was started "
                                     "(rehome clone rm it, or pick another --ip)",
                                     addr, owner);
                        free(jobs);
                        free(th);
                        return -EADDRINUSE;
                }
        }
        if (warm) {
                for (unsigned i = 0; i < count; i++)
                        pthread_create(&th[i], NULL, run_warm, &jobs[i]);
                for (unsigned i = 0; i < count; i++)
                        pthread_join(th[i], NULL);
                for (unsigned i = 0; i < count; i++)
                        if (jobs[i].rc < 0) {
                                *err = jobs[i].err;
                                first = jobs[i].rc;
                        }
                if (first < 0) {
                        for (unsigned i = 0; i < count; i++) {
                                struct vmm_clone c;
                                if (jobs[i].warm_id[0] &&
                                    vmm_clone_load(base->state_dir, jobs[i].warm_id, &c, NULL) == 0)
                                        vmm_clone_destroy(base->state_dir, &c, NULL);
                        }
                        free(jobs);
                        free(th);
                        return first;
                }
                for (unsigned i = 0; i < count; i++)
                        jobs[i].opts.warm_id = jobs[i].warm_id;
        } else if (!base->no_pool) {
                /* Warm clones left by `rehome template warm`: take what there is. */
                for (unsigned i = 0; i < count; i++)
                        if (vmm_pool_claim(base->state_dir, t->name, jobs[i].warm_id) == 0)
                                jobs[i].opts.warm_id = jobs[i].warm_id;
        }
        for (unsigned i = 0; i < count; i++)
                pthread_create(&th[i], NULL, run_job, &jobs[i]);
        for (unsigned i = 0; i < count; i++) {
                pthread_join(th[i], NULL);
                rcs[i] = jobs[i].rc;
                errs[i] = jobs[i].err;
                if (jobs[i].rc < 0 && first == 0) {
                        first = jobs[i].rc;
                        *err = jobs[i].err;
                }
        }
        free(jobs);
        free(th);
        return first;
}
