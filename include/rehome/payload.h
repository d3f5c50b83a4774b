/* SPDX-License-Identifier: MIT */
/*
 * The guest side of named per-fork payloads, for applications in a clone:
 * block until rehome-agent has delivered payload NAME (a JSON object the
 * host gave with `rehome fork|patch --payload NAME=FILE.json`, or a hypeman
 * fork mailbox the agent armed with --hypeman-mailbox) and read it.
 *
 * The agent writes each payload to RH_PAYLOAD_DIR/NAME atomically (a
 * dot-file renamed into place), so a reader never sees half a file and the
 * rename is the notification: rh_payload_wait() watches the directory with
 * inotify (IN_MOVED_TO / IN_CLOSE_WRITE) and never polls. Link with
 * librehome-payload (static, libc only), or copy src/payload/payload.c.
 *
 *     char buf[4096];
 *     ssize_t n = rh_payload_wait("app.config", 30000, RH_PAYLOAD_WAIT_NEW, buf, sizeof(buf));
 *     if (n < 0) fprintf(stderr, "no payload: %s\n", strerror((int)-n));
 */
#ifndef REHOME_PAYLOAD_H
#define REHOME_PAYLOAD_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Where rehome-agent delivers (its --run-dir, default /run/rehome, + "/payloads"). */
#define RH_PAYLOAD_DIR "/run/rehome/payloads"

enum {
        /*
         * Wait for a delivery that happens after the call, even if NAME is
         * already there (a fork of a fork: the parent's payload is still in
         * the file). Without it an existing file is returned at once.
         */
        RH_PAYLOAD_WAIT_NEW = 1u << 0,
};

/*
 * rh_payload_wait - wait for payload @name and copy it into @buf.
 * @name:       ^[A-Za-z0-9._:-]{1,64}$
 * @timeout_ms: how long to wait; 0 = do not wait (check once), < 0 = forever
 * @flags:      RH_PAYLOAD_WAIT_*
 * @buf, @cap:  where to copy the payload (@buf may be NULL with @cap 0: wait only)
 * The directory is rh_payload_dir() (RH_PAYLOAD_DIR, or $REHOME_PAYLOAD_DIR);
 * it is created if missing, so an app may start before the agent.
 * Returns the payload's size in bytes (which may exceed @cap: then only
 * @cap bytes were copied and nothing is NUL-terminated; call again with a
 * larger buffer), or a negative errno:
 *   -EINVAL     bad name or flags
 *   -ETIMEDOUT  not delivered within @timeout_ms
 *   -EINTR      a signal arrived while waiting
 *   -ENOENT     @timeout_ms 0 and not there
 *   other       from inotify_init1/inotify_add_watch/open/read (e.g. -EACCES)
 * When the result is < @cap, buf[result] is set to '\0'.
 */
ssize_t rh_payload_wait(const char *name, int timeout_ms, unsigned flags, void *buf, size_t cap);

/* rh_payload_dir - the directory used: $REHOME_PAYLOAD_DIR if set and non-empty, else RH_PAYLOAD_DIR. */
const char *rh_payload_dir(void);

#ifdef __cplusplus
}
#endif

#endif
