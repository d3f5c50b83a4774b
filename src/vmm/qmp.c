/* SPDX-License-Identifier: MIT */
/*
 * QMP client: newline-delimited JSON over a unix stream socket. Replies carry
 * the id we sent; events ("event" key) may arrive at any time, before or
 * between replies, and are queued until someone waits for them.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "io.h"
#include "qmp.h"

#define QMP_LINE_MAX (1u << 20) /* a reply larger than 1 MiB is not one we asked for */

struct qmp {
        int fd;
        char path[108];
        char *buf;
        size_t len, cap;
        json_t *events; /* array of queued event objects */
        unsigned next_id;
};

int qmp_fd(const struct qmp *qmp)
{
        return qmp->fd;
}

struct qmp *qmp_free(struct qmp *qmp)
{
        if (!qmp)
                return NULL;
        if (qmp->fd >= 0)
                close(qmp->fd);
        free(qmp->buf);
        if (qmp->events)
                json_decref(qmp->events);
        free(qmp);
        return NULL;
}

static int remaining_ms(uint64_t deadline)
{
        uint64_t now = now_ns();

        if (now >= deadline)
                return 0;
        return (int)((deadline - now + 999999) / 1000000);
}

/* Read one line (without the newline) into a fresh json value. */
static int read_message(struct qmp *qmp, uint64_t deadline, json_t **ret_msg, struct rh_error *err)
{
        for (;;) {
                char *nl = qmp->len ? memchr(qmp->buf, '\n', qmp->len) : NULL;
                if (nl) {
                        json_error_t jerr;
                        size_t line = (size_t)(nl - qmp->buf);
                        json_t *msg = json_loadb(qmp->buf, line, 0, &jerr);
                        memmove(qmp->buf, nl + 1, qmp->len - line - 1);
                        qmp->len -= line + 1;
                        if (!msg || !json_is_object(msg)) {
                                if (msg)
                                        json_decref(msg);
                                return rh_error_set(err, -EPROTO, "QMP %s: malformed message: %s", qmp->path,
                                                    jerr.text);
                        }
                        *ret_msg = msg;
                        return 0;
                }
                if (qmp->len >= QMP_LINE_MAX)
                        return rh_error_set(err, -EPROTO, "QMP %s: message over %u bytes", qmp->path,
                                            QMP_LINE_MAX);
                if (qmp->cap - qmp->len < 4096) {
                        size_t cap = qmp->cap ? qmp->cap * 2 : 16384;
                        char *b = realloc(qmp->buf, cap);
                        if (!b)
                                return rh_error_set(err, -ENOMEM, "QMP: out of memory");
                        qmp->buf = b;
                        qmp->cap = cap;
                }
                struct pollfd pfd = {.fd = qmp->fd, .events = POLLIN};
                int ms = remaining_ms(deadline);
                if (ms == 0)
                        return rh_error_set(err, -ETIMEDOUT, "QMP %s: no answer in time", qmp->path);
                int r = poll(&pfd, 1, ms);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return rh_error_set(err, -errno, "QMP %s: poll: %s", qmp->path, strerror(errno));
                }
                if (r == 0)
                        continue;
                ssize_t n = read(qmp->fd, qmp->buf + qmp->len, qmp->cap - qmp->len);
                if (n < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        if (errno == ECONNRESET)
                                return rh_error_set(err, -ECONNRESET,
                                                    "QMP %s: QEMU closed the connection (did it exit?)",
                                                    qmp->path);
                        return rh_error_set(err, -errno, "QMP %s: read: %s", qmp->path, strerror(errno));
                }
                if (n == 0)
                        return rh_error_set(err, -ECONNRESET,
                                            "QMP %s: QEMU closed the connection (did it exit?)", qmp->path);
                qmp->len += (size_t)n;
        }
}

static int send_json(struct qmp *qmp, json_t *msg, struct rh_error *err)
{
        _cleanup_free_ char *s = json_dumps(msg, JSON_COMPACT);
        int r;

        if (!s)
                return rh_error_set(err, -ENOMEM, "QMP: cannot encode command");
        size_t n = strlen(s);
        s[n] = '\n'; /* replace the NUL; we send exactly n + 1 bytes */
        r = write_full(qmp->fd, s, n + 1);
        s[n] = '\0';
        if (r == -EPIPE || r == -ECONNRESET)
                return rh_error_set(err, -ECONNRESET, "QMP %s: QEMU closed the connection (did it exit?)",
                                    qmp->path);
        if (r < 0)
                return rh_error_set(err, r, "QMP %s: write: %s", qmp->path, strerror(-r));
        return 0;
}

static bool child_exited(pid_t pid)
{
        siginfo_t info = {0};

        if (pid <= 0)
                return false;
        /* WNOWAIT: look, do not reap (qemu.c reaps and untracks it). */
        if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0)
                return errno == ECHILD && kill(pid, 0) < 0 && errno == ESRCH;
        return info.si_pid == pid;
}

int qmp_connect(const char *path, int timeout_ms, struct qmp **ret_qmp, struct rh_error *err)
{
        return qmp_connect_child(path, 0, timeout_ms, ret_qmp, err);
}

int qmp_connect_child(const char *path, pid_t pid, int timeout_ms, struct qmp **ret_qmp, struct rh_error *err)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
        struct qmp *qmp = NULL;
        json_t *greeting = NULL;
        int r;

        if (strlen(path) >= sizeof(sa.sun_path))
                return rh_error_set(err, -ENAMETOOLONG, "QMP socket path too long: %s", path);
        strcpy(sa.sun_path, path);

        qmp = calloc(1, sizeof(*qmp));
        if (!qmp)
                return rh_error_set(err, -ENOMEM, "QMP: out of memory");
        qmp->fd = -EBADF;
        snprintf(qmp->path, sizeof(qmp->path), "%s", path);
        qmp->events = json_array();
        qmp->next_id = 1;

        for (;;) {
                qmp->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (qmp->fd < 0) {
                        r = rh_error_set(err, -errno, "QMP: socket: %s", strerror(errno));
                        goto fail;
                }
                if (connect(qmp->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
                        break;
                r = -errno;
                close(qmp->fd);
                qmp->fd = -EBADF;
                if (r != -ENOENT && r != -ECONNREFUSED) {
                        r = rh_error_set(err, r, "QMP connect %s: %s", path, strerror(-r));
                        goto fail;
                }
                if (child_exited(pid)) {
                        r = rh_error_set(err, -ECHILD, "QEMU (pid %d) exited before opening its monitor",
                                         (int)pid);
                        goto fail;
                }
                if (remaining_ms(deadline) == 0) {
                        r = rh_error_set(err, -ETIMEDOUT,
                                         "QMP connect %s: QEMU did not open its monitor in %d ms", path,
                                         timeout_ms);
                        goto fail;
                }
                /* QEMU creates the socket early during start-up: poll finely. */
                struct timespec ts = {0, 500000};
                nanosleep(&ts, NULL);
        }

        r = read_message(qmp, deadline, &greeting, err);
        if (r < 0)
                goto fail;
        if (!json_object_get(greeting, "QMP")) {
                r = rh_error_set(err, -EPROTO, "QMP %s: no greeting (is this a QMP socket?)", path);
                goto fail;
        }
        json_decref(greeting);
        greeting = NULL;
        r = qmp_execute(qmp, "qmp_capabilities", NULL, remaining_ms(deadline) + 1, NULL, err);
        if (r < 0)
                goto fail;
        *ret_qmp = qmp;
        return 0;
fail:
        if (greeting)
                json_decref(greeting);
        qmp_free(qmp);
        return r;
}

int qmp_execute(struct qmp *qmp, const char *command, json_t *arguments, int timeout_ms, json_t **ret_return,
                struct rh_error *err)
{
        uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
        unsigned id = qmp->next_id++;
        json_t *msg;
        int r;

        msg = json_pack("{s:s, s:I}", "execute", command, "id", (json_int_t)id);
        if (!msg) {
                if (arguments)
                        json_decref(arguments);
                return rh_error_set(err, -ENOMEM, "QMP: out of memory");
        }
        if (arguments)
                json_object_set_new(msg, "arguments", arguments);
        r = send_json(qmp, msg, err);
        json_decref(msg);
        if (r < 0)
                return rh_error_prefix(err, r, "%s", command);

        for (;;) {
                json_t *reply = NULL;
                r = read_message(qmp, deadline, &reply, err);
                if (r < 0)
                        return rh_error_prefix(err, r, "%s", command);
                if (json_object_get(reply, "event")) {
                        json_array_append_new(qmp->events, reply);
                        continue;
                }
                json_t *jid = json_object_get(reply, "id");
                if (!json_is_integer(jid) || json_integer_value(jid) != (json_int_t)id) {
                        json_decref(reply); /* a stale reply to a command we gave up on */
                        continue;
                }
                json_t *error = json_object_get(reply, "error");
                if (error) {
                        const char *cls = json_string_value(json_object_get(error, "class"));
                        const char *desc = json_string_value(json_object_get(error, "desc"));
                        r = rh_error_set(err, -EREMOTEIO, "QMP %s: %s (%s)", command, desc ? desc : "error",
                                         cls ? cls : "?");
                        json_decref(reply);
                        return r;
                }
                if (ret_return) {
                        json_t *ret = json_object_get(reply, "return");
                        *ret_return = ret ? json_incref(ret) : json_object();
                }
                json_decref(reply);
                return 0;
        }
}

static bool event_matches(json_t *ev, const char *name, const char *status)
{
        const char *n = json_string_value(json_object_get(ev, "event"));
        if (!n || strcmp(n, name) != 0)
                return false;
        if (!status)
                return true;
        const char *s = json_string_value(json_object_get(json_object_get(ev, "data"), "status"));
        return s && strcmp(s, status) == 0;
}

int qmp_wait_event(struct qmp *qmp, const char *name, const char *status, int timeout_ms, json_t **ret_data,
                   struct rh_error *err)
{
        uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
        json_t *ev = NULL;
        int r;

        /* Already queued? */
        for (size_t i = 0; i < json_array_size(qmp->events); i++) {
                json_t *e = json_array_get(qmp->events, i);
                if (event_matches(e, name, status)) {
                        if (ret_data)
                                *ret_data = json_incref(json_object_get(e, "data"));
                        json_array_clear(qmp->events);
                        return 0;
                }
        }
        json_array_clear(qmp->events);

        for (;;) {
                r = read_message(qmp, deadline, &ev, err);
                if (r == -ETIMEDOUT)
                        return rh_error_set(err, r, "QMP %s: no %s%s%s event in %d ms", qmp->path, name,
                                            status ? " " : "", status ? status : "", timeout_ms);
                if (r < 0)
                        return r;
                if (json_object_get(ev, "event") && event_matches(ev, name, status)) {
                        if (ret_data)
                                *ret_data = json_incref(json_object_get(ev, "data"));
                        json_decref(ev);
                        return 0;
                }
                /* A failed migration never completes: report it instead of waiting. */
                const char *s = json_string_value(json_object_get(json_object_get(ev, "data"), "status"));
                if (strcmp(name, "MIGRATION") == 0 && s && strcmp(s, "failed") == 0 &&
                    event_matches(ev, "MIGRATION", NULL)) {
                        json_decref(ev);
                        return rh_error_set(err, -EIO, "QMP %s: migration failed", qmp->path);
                }
                json_decref(ev);
        }
}
