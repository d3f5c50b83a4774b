/* SPDX-License-Identifier: MIT */
/*
 * Removing a template: refused while it is being created or while forks of
 * it are in flight; its warm clones drained, its reserved address given back
 * to the IPAM, and only the RAM file its own records name unlinked (never a
 * guessed path another state directory may use).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include "armed.h"
#include "cleanup.h"
#include "io.h"
#include "qmp.h"
#include "rehome/layout.h"
#include "rehome/patch.h"
#include "vmm.h"
#include "src/vmm/vmm-config.h"

/* Give the template's address of NIC @nic back to the IPAM that reserved it (clone.c, ipam-reserved[-nicK]). */
static void release_template_nic_ip(const char *state_dir, const char *name, const char *dir, unsigned nic)
{
        char mark[PATH_MAX + 32], id[VMM_NAME_MAX + 16], line[PATH_MAX + 2];
        struct vmm_ipam ipam = {0};
        struct vmm_net net = {.nic = nic};
        FILE *f;

        if (nic)
                snprintf(mark, sizeof(mark), "%s/ipam-reserved-nic%u", dir, nic);
        else
                snprintf(mark, sizeof(mark), "%s/ipam-reserved", dir);
        f = fopen(mark, "re");
        if (!f)
                return;
        if (fgets(line, sizeof(line), f)) {
                line[strcspn(line, "\n")] = '\0';
                snprintf(ipam.plugin, sizeof(ipam.plugin), "%s", line);
        }
        if (fgets(line, sizeof(line), f)) {
                line[strcspn(line, "\n")] = '\0';
                snprintf(ipam.config, sizeof(ipam.config), "%s", line);
        }
        fclose(f);
        vmm_net_load_nic(state_dir, nic, &net, NULL);
        snprintf(id, sizeof(id), "template-%s", name);
        if (ipam.plugin[0])
                vmm_ipam_del(&ipam, &net, state_dir, id, NULL);
}

static void release_template_ip(const char *state_dir, const char *name, const char *dir)
{
        for (unsigned nic = 0; nic < VMM_MAX_NICS; nic++)
                release_template_nic_ip(state_dir, name, dir, nic);
}

/* Forks of @name under way right now (live owners, records not final): the first one's id, or "". */
static unsigned forks_in_flight(const char *state_dir, const char *name, char ret_first[32])
{
        char **ids = NULL;
        unsigned n = 0;

        ret_first[0] = '\0';
        if (vmm_clone_list(state_dir, &ids, NULL) < 0)
                return 0;
        for (size_t i = 0; ids[i]; i++) {
                struct vmm_clone c;
                if (vmm_clone_load(state_dir, ids[i], &c, NULL) == 0 && strcmp(c.template_name, name) == 0 &&
                    vmm_clone_in_flight(&c)) {
                        if (!n++)
                                snprintf(ret_first, 32, "%s", c.id);
                }
        }
        vmm_strv_free(ids);
        return n;
}

int vmm_template_remove(const char *state_dir, const char *name, struct rh_error *err)
{
        char dir[PATH_MAX], ram[PATH_MAX] = "", tap[32], first[32];
        struct vmm_template t;
        bool creating = false;
        unsigned n;
        int lock, r;

        if (!vmm_name_valid(name))
                return rh_error_set(err, -EINVAL, "bad template name '%s'", name);
        r = vmm_reconcile(state_dir, NULL, err);
        if (r < 0)
                return r;
        lock = vmm_state_lock(state_dir, err);
        if (lock < 0)
                return lock;
        snprintf(dir, sizeof(dir), "%s/templates/%s", state_dir, name);
        if (access(dir, F_OK) < 0) {
                r = rh_error_set(err, -ENOENT, "no template '%s'", name);
                goto out;
        }
        bool have_files = vmm_template_files_load(dir, ram, sizeof(ram), tap, sizeof(tap), &creating) == 0;
        if (have_files && creating) {
                r = rh_error_set(err, -EBUSY, "template %s is being created by another rehome", name);
                goto out;
        }
        /* A fork holds the lock from its check of the template to its record: none can start now. */
        n = forks_in_flight(state_dir, name, first);
        if (n) {
                r = rh_error_set(err, -EBUSY, "%u fork%s of template %s under way (clone %s): retry when done", n,
                                 n == 1 ? "" : "s", name, first);
                goto out;
        }
        /* Warm clones of it would load a state that no longer exists. */
        vmm_pool_drain(state_dir, name);
        release_template_ip(state_dir, name, dir);
        /* The RAM file this state directory made: from meta.json, or from files.json
         * when meta.json is damaged; never a guessed path another state dir may use. */
        if (vmm_template_load(state_dir, name, &t, NULL) == 0)
                snprintf(ram, sizeof(ram), "%s", t.ram_path);
        else if (!have_files)
                ram[0] = '\0';
        if (ram[0] && unlink(ram) == 0) {
                /* Its directory too, once empty (the state directory's own RAM directory). */
                char *slash = strrchr(ram, '/');
                if (slash && slash != ram) {
                        *slash = '\0';
                        rmdir(ram);
                }
        }
        vmm_rm_rf(dir);
        r = 0;
out:
        vmm_state_unlock(lock);
        return r;
}
