/* SPDX-License-Identifier: MIT */
/*
 * What makes one state directory safe to share between concurrent rehome
 * processes and distinct from every other: its lock (flock on STATE/lock,
 * held only around record changes), its tag (8 hex digits of the real
 * path), which names its default RAM directory and marks every VMM it
 * starts, so that a later process can find VMMs whose records died.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "vmm.h"

#define LOCK_WAIT_MS 10000

int vmm_state_lock(const char *state_dir, struct rh_error *err)
{
        char path[PATH_MAX];
        uint64_t deadline = now_ns() + LOCK_WAIT_MS * 1000000ull;
        int fd;

        if (vmm_mkdir_p(state_dir, 0755) < 0)
                return rh_error_set(err, -errno, "state directory %s: %s", state_dir, strerror(errno));
        snprintf(path, sizeof(path), "%s/lock", state_dir);
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
                return rh_error_set(err, -errno, "%s: %s", path, strerror(errno));
        while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno != EWOULDBLOCK && errno != EINTR) {
                        int e = errno;
                        close(fd);
                        return rh_error_set(err, -e, "lock %s: %s", path, strerror(e));
                }
                if (now_ns() > deadline) {
                        close(fd);
                        return rh_error_set(err, -ETIMEDOUT, "%s: held by another rehome for %d s", path,
                                            LOCK_WAIT_MS / 1000);
                }
                struct timespec ts = {0, 2000000};
                nanosleep(&ts, NULL);
        }
        return fd;
}

void vmm_state_unlock(int fd)
{
        if (fd >= 0)
                close(fd); /* releases the flock */
}

void vmm_state_tag(const char *state_dir, char ret_tag[9])
{
        char real[PATH_MAX];
        const char *p = realpath(state_dir, real) ? real : state_dir;
        uint32_t h = 2166136261u; /* FNV-1a */

        for (; *p; p++)
                h = (h ^ (uint8_t)*p) * 16777619u;
        snprintf(ret_tag, 9, "%08x", h);
}

void vmm_marker(const char *state_dir, const char *kind, const char *id, char *buf, size_t len)
{
        char tag[9];

        vmm_state_tag(state_dir, tag);
        snprintf(buf, len, "rehome:%s:%s:%s", tag, kind, id);
}

void vmm_default_ram_dir(const char *state_dir, char *buf, size_t len)
{
        char tag[9];

        vmm_state_tag(state_dir, tag);
        snprintf(buf, len, "%s/%s", VMM_DEFAULT_RAM_DIR, tag);
}
