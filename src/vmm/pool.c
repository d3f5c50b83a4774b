/* SPDX-License-Identifier: MIT */
/*
 * The warm pool. A warm clone is a QEMU already started with the
 * template's command line in -incoming defer -S, its tap on the bridge and
 * its QMP monitor answering: a fork that takes one skips process start-up
 * (the spawn stage shrinks to a QMP connect). Identity is not involved until
 * the patch, so any warm clone of a template serves any fork of it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clone.h"
#include "vmm.h"

int vmm_pool_spawn(const char *state_dir, const struct vmm_template *t, struct vmm_clone *ret,
                   struct rh_error *err)
{
        struct vmm_fork_opts o = {.state_dir = state_dir, .timeout_ms = 30000};
        struct vmm_fork_result res = {0};
        struct clone c = {.t = t, .o = &o, .ops = &vmm_qemu_ops, .res = &res, .udp_fd = -EBADF};
        int lock, r;

        if (t->nics > 1)
                return rh_error_set(err, -EOPNOTSUPP, "template %s has %u NICs: warm clones are one-NIC only",
                                    t->name, t->nics);
        r = vmm_net_load(state_dir, &c.net, err);
        if (r < 0)
                return r;
        lock = vmm_state_lock(state_dir, err);
        if (lock < 0)
                return lock;
        r = vmm_clone_alloc(state_dir, &c.rec, err);
        if (r == 0) {
                snprintf(c.rec.template_name, sizeof(c.rec.template_name), "%s", t->name);
                vmm_guid_new(c.rec.vmgenid);
                snprintf(c.rec.status, sizeof(c.rec.status), "warm");
                snprintf(c.log_path, sizeof(c.log_path), "%s/qemu.log", c.rec.dir);
                r = vmm_clone_save(&c.rec, err);
        }
        vmm_state_unlock(lock);
        if (r == 0)
                r = c.ops->spawn(&c, err); /* the fork connects again: only proving it is ready */
        clone_free(&c);
        if (r == 0) {
                c.rec.owner = 0;
                c.rec.owner_starttime = 0;
                r = vmm_clone_save(&c.rec, err);
        }
        if (r < 0) {
                if (c.rec.dir[0]) {
                        if (!c.tap_made)
                                c.rec.tap[0] = '\0';
                        vmm_clone_destroy(state_dir, &c.rec, NULL);
                }
                return rh_error_prefix(err, r, "warm clone");
        }
        *ret = c.rec;
        return 0;
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
