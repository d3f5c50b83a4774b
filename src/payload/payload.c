/* SPDX-License-Identifier: MIT */
/*
 * rh_payload_wait() (include/rehome/payload.h): the guest-side API an
 * application uses to block on a named payload. inotify on the payload
 * directory, watch first and look second so that a delivery between the
 * two is not lost; the agent's rename() is the event. libc only, so it
 * links into static guest tools.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rehome/payload.h"

static int name_ok(const char *name)
{
        size_t n = name ? strnlen(name, 66) : 0;

        if (n == 0 || n > 64 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                return 0;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];
                if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '_' || c == ':' || c == '-'))
                        return 0;
        }
        return 1;
}

const char *rh_payload_dir(void)
{
        const char *d = getenv("REHOME_PAYLOAD_DIR");

        return d && *d ? d : RH_PAYLOAD_DIR;
}

/* mkdir -p for the payload directory (the agent may not have started yet). */
static int make_dir(const char *dir)
{
        char tmp[PATH_MAX];
        size_t n = strlen(dir);

        if (n == 0 || n >= sizeof(tmp))
                return -ENAMETOOLONG;
        memcpy(tmp, dir, n + 1);
        for (char *p = tmp + 1; *p; p++)
                if (*p == '/') {
                        *p = 0;
                        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
                                return -errno;
                        *p = '/';
                }
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

static ssize_t read_payload(int dfd, const char *name, void *buf, size_t cap)
{
        int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
        struct stat st;
        size_t got = 0;
        ssize_t r;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        while (got < cap) {
                r = read(fd, (char *)buf + got, cap - got);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0) {
                        r = -errno;
                        close(fd);
                        return r;
                }
                if (r == 0)
                        break;
                got += (size_t)r;
        }
        close(fd);
        /* The file is replaced, never rewritten in place: its size is final. */
        if ((size_t)st.st_size < cap)
                ((char *)buf)[got] = '\0';
        return (ssize_t)st.st_size;
}

static long long now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

ssize_t rh_payload_wait(const char *name, int timeout_ms, unsigned flags, void *buf, size_t cap)
{
        const char *dir = rh_payload_dir();
        long long deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
        char events[sizeof(struct inotify_event) + NAME_MAX + 1] __attribute__((aligned(8)));
        int ifd = -1, dfd = -1;
        ssize_t r;

        if (!name_ok(name) || (flags & ~(unsigned)RH_PAYLOAD_WAIT_NEW) || (!buf && cap))
                return -EINVAL;
        r = make_dir(dir);
        if (r < 0)
                return r;
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        if (timeout_ms != 0 || (flags & RH_PAYLOAD_WAIT_NEW)) {
                ifd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
                if (ifd < 0 || inotify_add_watch(ifd, dir, IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
                        r = -errno;
                        goto out;
                }
        }
        /* Watch first, then look: a delivery in between is an event we will read. */
        if (!(flags & RH_PAYLOAD_WAIT_NEW)) {
                r = read_payload(dfd, name, buf, cap);
                if (r != -ENOENT || timeout_ms == 0)
                        goto out;
        }
        for (;;) {
                struct pollfd pfd = { .fd = ifd, .events = POLLIN };
                int wait = timeout_ms < 0 ? -1 : (int)(deadline - now_ms());
                ssize_t n;

                if (timeout_ms >= 0 && wait <= 0) {
                        r = -ETIMEDOUT;
                        goto out;
                }
                if (poll(&pfd, 1, wait) < 0) {
                        r = -errno;
                        goto out;
                }
                while ((n = read(ifd, events, sizeof(events))) > 0) {
                        for (char *p = events; p < events + n;) {
                                const struct inotify_event *ev = (const struct inotify_event *)p;

                                p += sizeof(*ev) + ev->len;
                                if (ev->len && strcmp(ev->name, name) == 0) {
                                        r = read_payload(dfd, name, buf, cap);
                                        if (r != -ENOENT)
                                                goto out;
                                }
                        }
                }
                if (n < 0 && errno != EAGAIN) {
                        r = -errno;
                        goto out;
                }
        }
out:
        if (ifd >= 0)
                close(ifd);
        close(dfd);
        return r;
}
