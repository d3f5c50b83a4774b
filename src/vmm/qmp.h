/* SPDX-License-Identifier: MIT */
/*
 * A small synchronous QMP client (QEMU Machine Protocol) over a unix socket:
 * connect, read the greeting, negotiate capabilities, execute commands with
 * an id and wait for the matching reply, and collect asynchronous events
 * that arrive in between. One client per QEMU; not thread-safe on its own
 * (each fork thread owns its clone's client).
 */
#ifndef REHOME_VMM_QMP_H
#define REHOME_VMM_QMP_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>

#include "rehome/error.h"

struct qmp;

/*
 * qmp_connect - connect to @path, retrying while QEMU has not created the
 * socket yet, until @timeout_ms. Reads the greeting and sends
 * qmp_capabilities. Returns 0, -ETIMEDOUT, -ECONNREFUSED, -EPROTO (not QMP),
 * or -errno; the message names the socket.
 */
int qmp_connect(const char *path, int timeout_ms, struct qmp **ret_qmp, struct rh_error *err);

/*
 * qmp_connect_child - qmp_connect to the monitor of our child @pid, giving up
 * early with -ECHILD when that QEMU exits before opening it (a busy tap, a bad
 * option: its log says why). The child is not reaped.
 */
int qmp_connect_child(const char *path, pid_t pid, int timeout_ms, struct qmp **ret_qmp,
                      struct rh_error *err);

struct qmp *qmp_free(struct qmp *qmp);

/*
 * qmp_execute - run @command with @arguments (may be NULL; reference stolen)
 * and wait up to @timeout_ms for its reply. *ret_return (may be NULL) gets
 * a new reference to the "return" value. Returns 0, -EREMOTEIO (QEMU
 * answered with an error; its class and description are in @err),
 * -ETIMEDOUT, -ECONNRESET (QEMU went away), -EPROTO.
 */
int qmp_execute(struct qmp *qmp, const char *command, json_t *arguments, int timeout_ms, json_t **ret_return,
                struct rh_error *err);

/*
 * qmp_wait_event - wait until an event named @name arrives (or has already
 * arrived and is queued) whose data.status equals @status (NULL: any).
 * Events that do not match are dropped. *ret_data (may be NULL) gets a new
 * reference to the event's "data". Returns 0, -ETIMEDOUT, -ECONNRESET,
 * -EPROTO.
 */
int qmp_wait_event(struct qmp *qmp, const char *name, const char *status, int timeout_ms, json_t **ret_data,
                   struct rh_error *err);

/* The socket fd (for poll()). */
int qmp_fd(const struct qmp *qmp);

static inline void qmp_freep(struct qmp **q)
{
        qmp_free(*q);
}
#define _cleanup_qmp_ __attribute__((cleanup(qmp_freep)))

static inline void vmm_json_decrefp(json_t **j)
{
        if (*j)
                json_decref(*j);
}
#define _cleanup_json_ __attribute__((cleanup(vmm_json_decrefp)))

#endif
