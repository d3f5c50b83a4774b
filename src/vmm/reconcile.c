/* SPDX-License-Identifier: MIT */
/*
 * Reconciling a state directory with the processes that run. A rehome
 * process can die at any instant (SIGKILL, a crash, the machine's OOM
 * killer); what it leaves is found from two sides:
 *
 *   - records: a clone record not final ("starting", "paused", "resumed")
 *     whose owner is dead is an interrupted fork; a warm record whose QEMU
 *     is dead is spent; a template directory whose files.json names a dead
 *     creator and has no meta.json is an interrupted creation;
 *   - processes: every VMM this state directory starts carries its marker
 *     (vmm_marker, on QEMU's command line as -name guest=MARKER); one that
 *     no live record or live rehome owns is ended, even if its record is
 *     gone or never got its pid.
 *
 * Then the leftovers (record, tap, RAM file) are removed. Runs under the
 * state lock, so it never races a fork's reservation.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "io.h"
#include "vmm.h"

struct marked {
        pid_t pid;
        unsigned long long starttime;
        char kind[16];
        char id[VMM_NAME_MAX];
};

/* The marker argument of @pid's command line, if it carries @prefix ("guest=rehome:<tag>:"). */
static bool read_marker(pid_t pid, const char *prefix, struct marked *ret)
{
        char path[64], buf[16384];
        _cleanup_close_ int fd = -EBADF;
        ssize_t n;

        snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        n = read(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
                return false;
        buf[n] = '\0';
        for (char *a = buf; a < buf + n; a += strlen(a) + 1) {
                if (strncmp(a, prefix, strlen(prefix)) != 0)
                        continue;
                /* KIND:ID then ',' (more -name options) or the end. */
                const char *p = a + strlen(prefix);
                size_t k = strcspn(p, ":");
                if (p[k] != ':' || k == 0 || k >= sizeof(ret->kind))
                        return false;
                const char *id = p + k + 1;
                size_t l = strcspn(id, ",");
                if (l == 0 || l >= sizeof(ret->id))
                        return false;
                memcpy(ret->kind, p, k);
                ret->kind[k] = '\0';
                memcpy(ret->id, id, l);
                ret->id[l] = '\0';
                ret->pid = pid;
                ret->starttime = proc_starttime(pid);
                return ret->starttime != 0;
        }
        return false;
}

static bool clone_owns(const char *state_dir, const struct marked *m)
{
        struct vmm_clone c;

        if (vmm_clone_load(state_dir, m->id, &c, NULL) < 0)
                return false; /* no record: nobody will ever end it */
        if (vmm_clone_in_flight(&c))
                return true; /* its fork is under way (the pid may not be recorded yet) */
        if (c.pid != m->pid || c.starttime != m->starttime)
                return false;
        /* The recorded QEMU of a record that is final (a kept clone, a warm one). */
        return strcmp(c.status, "starting") != 0 && strcmp(c.status, "paused") != 0 &&
               strcmp(c.status, "resumed") != 0;
}

static bool template_owns(const char *state_dir, const struct marked *m)
{
        char dir[PATH_MAX], ram[PATH_MAX], tap[32];
        bool creating = false;

        snprintf(dir, sizeof(dir), "%s/templates/%s", state_dir, m->id);
        return vmm_template_files_load(dir, ram, sizeof(ram), tap, sizeof(tap), &creating) == 0 && creating;
}

static void end_process(const struct marked *m)
{
        if (proc_starttime(m->pid) != m->starttime)
                return;
        kill(m->pid, SIGKILL);
        /* Not our child: wait (bounded) until it is gone and its tap is free. */
        for (int i = 0; i < 2000 && !proc_fully_gone(m->pid); i++) {
                struct timespec ts = {0, 1000000};
                nanosleep(&ts, NULL);
        }
}

static unsigned end_orphans(const char *state_dir)
{
        char tag[9], prefix[64];
        unsigned killed = 0;
        DIR *d;
        struct dirent *de;

        vmm_state_tag(state_dir, tag);
        snprintf(prefix, sizeof(prefix), "guest=rehome:%s:", tag);
        d = opendir("/proc");
        if (!d)
                return 0;
        while ((de = readdir(d))) {
                struct marked m;
                if (!isdigit((unsigned char)de->d_name[0]))
                        continue;
                pid_t pid = (pid_t)atoi(de->d_name);
                if (pid == getpid() || !read_marker(pid, prefix, &m))
                        continue;
                bool owned = strcmp(m.kind, "clone") == 0      ? clone_owns(state_dir, &m)
                             : strcmp(m.kind, "template") == 0 ? template_owns(state_dir, &m)
                                                               : false;
                if (!owned) {
                        end_process(&m);
                        killed++;
                }
        }
        closedir(d);
        return killed;
}

static unsigned remove_dead_records(const char *state_dir)
{
        char **ids = NULL;
        unsigned n = 0;

        if (vmm_clone_list(state_dir, &ids, NULL) < 0)
                return 0;
        for (size_t i = 0; ids[i]; i++) {
                struct vmm_clone c;
                if (vmm_clone_load(state_dir, ids[i], &c, NULL) < 0)
                        continue;
                bool unfinished = strcmp(c.status, "starting") == 0 || strcmp(c.status, "paused") == 0 ||
                                  strcmp(c.status, "resumed") == 0 || strcmp(c.status, "broken") == 0;
                bool spent_warm = strcmp(c.status, "warm") == 0 && !vmm_clone_alive(&c);
                if ((unfinished && !vmm_clone_in_flight(&c)) || spent_warm) {
                        vmm_clone_destroy(state_dir, &c, NULL);
                        n++;
                }
        }
        vmm_strv_free(ids);
        return n;
}

static unsigned remove_dead_creations(const char *state_dir)
{
        char **names = NULL;
        unsigned n = 0;
        struct vmm_net net;
        bool have_net = vmm_net_load(state_dir, &net, NULL) == 0;

        if (vmm_template_list(state_dir, &names, NULL) < 0)
                return 0;
        for (size_t i = 0; names[i]; i++) {
                char dir[PATH_MAX], meta[PATH_MAX + 16], ram[PATH_MAX], tap[32];
                bool creating = false;
                snprintf(dir, sizeof(dir), "%s/templates/%s", state_dir, names[i]);
                snprintf(meta, sizeof(meta), "%s/meta.json", dir);
                if (access(meta, F_OK) == 0 ||
                    vmm_template_files_load(dir, ram, sizeof(ram), tap, sizeof(tap), &creating) < 0 ||
                    creating)
                        continue;
                /* Only what that creation recorded as its own. */
                unlink(ram);
                if (have_net && tap[0]) {
                        vmm_tap_delete(&net, tap);
                        /* A multi-NIC template's other taps: TAP + "n" + K (template.c), one namespace. */
                        for (unsigned k = 1; k < VMM_MAX_NICS; k++) {
                                char xtap[16];
                                snprintf(xtap, sizeof(xtap), "%.12sn%u", tap, k);
                                vmm_tap_delete(&net, xtap);
                        }
                }
                vmm_rm_rf(dir);
                n++;
        }
        vmm_strv_free(names);
        return n;
}

int vmm_reconcile(const char *state_dir, struct vmm_reconcile_stats *ret, struct rh_error *err)
{
        struct vmm_reconcile_stats s = {0};
        int lock;

        if (access(state_dir, F_OK) < 0)
                return 0; /* nothing was ever made here */
        lock = vmm_state_lock(state_dir, err);
        if (lock < 0)
                return lock;
        s.killed = end_orphans(state_dir);
        s.records_removed = remove_dead_records(state_dir);
        s.templates_removed = remove_dead_creations(state_dir);
        vmm_state_unlock(lock);
        if (ret)
                *ret = s;
        return 0;
}
