/* SPDX-License-Identifier: MIT */
/*
 * QEMU processes: build the command line, spawn (optionally inside a named
 * network namespace so the tap is found there), track every child so that an
 * error path or a signal never leaves a QEMU behind (a leftover QEMU keeps its
 * tap busy and the next spawn fails), and pick the accelerator honestly.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cleanup.h"
#include "io.h"
#include "qmp.h"
#include "vmm.h"

#define MAX_CHILDREN 256

static pid_t children[MAX_CHILDREN];
static pthread_mutex_t children_lock = PTHREAD_MUTEX_INITIALIZER;

static void track(pid_t pid)
{
        pthread_mutex_lock(&children_lock);
        for (size_t i = 0; i < MAX_CHILDREN; i++)
                if (children[i] == 0) {
                        children[i] = pid;
                        break;
                }
        pthread_mutex_unlock(&children_lock);
}

void qemu_release(pid_t pid)
{
        pthread_mutex_lock(&children_lock);
        for (size_t i = 0; i < MAX_CHILDREN; i++)
                if (children[i] == pid)
                        children[i] = 0;
        pthread_mutex_unlock(&children_lock);
}

void qemu_kill_all(void)
{
        /* Called from a signal handler too: only kill(2), no locks. */
        for (size_t i = 0; i < MAX_CHILDREN; i++)
                if (children[i] > 0)
                        kill(children[i], SIGKILL);
}

bool qemu_exited(pid_t pid, int *ret_status)
{
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);

        if (r == pid) {
                qemu_release(pid);
                if (ret_status)
                        *ret_status = status;
                return true;
        }
        if (r < 0 && errno == ECHILD) {
                if (ret_status)
                        *ret_status = -1;
                return proc_fully_gone(pid);
        }
        return false;
}

void qemu_kill(pid_t pid)
{
        if (pid <= 0)
                return;
        kill(pid, SIGKILL);
        if (waitpid(pid, NULL, 0) < 0 && errno == ECHILD) {
                /* Not our child (a clone from an earlier run): wait for it to vanish. */
                for (int i = 0; i < 2000 && kill(pid, 0) == 0; i++) {
                        struct timespec ts = {0, 1000000};
                        if (proc_fully_gone(pid))
                                break; /* a zombie of someone else, every thread gone: the tap is released */
                        nanosleep(&ts, NULL);
                }
        }
        qemu_release(pid);
}

void qemu_log_tail(const char *path, char *buf, size_t len)
{
        _cleanup_free_ char *text = NULL;
        size_t n = 0;

        buf[0] = '\0';
        if (!path || read_file_alloc(path, 1 << 20, &text, &n) < 0)
                return;
        while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' '))
                text[--n] = '\0';
        char *line = strrchr(text, '\n');
        line = line ? line + 1 : text;
        snprintf(buf, len, "%s", line);
}

int qemu_find_binary(char *buf, size_t len, struct rh_error *err)
{
        const char *env = getenv("REHOME_QEMU");
        static const char *const candidates[] = {"/usr/bin/qemu-system-x86_64",
                                                 "/usr/local/bin/qemu-system-x86_64"};

        if (env && *env) {
                if (access(env, X_OK) < 0)
                        return rh_error_set(err, -errno, "REHOME_QEMU=%s: %s", env, strerror(errno));
                snprintf(buf, len, "%s", env);
                return 0;
        }
        for (size_t i = 0; i < ELEMENTSOF(candidates); i++)
                if (access(candidates[i], X_OK) == 0) {
                        snprintf(buf, len, "%s", candidates[i]);
                        return 0;
                }
        return rh_error_set(err, -ENOENT,
                            "qemu-system-x86_64 not found: apt-get install qemu-system-x86 "
                            "(or set REHOME_QEMU)");
}

struct argv_buf {
        char *v[64];
        size_t n;
        char store[8192];
        size_t used;
        bool overflow; /* an argument did not fit: the command line must not be used */
};

static void arg(struct argv_buf *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void arg(struct argv_buf *a, const char *fmt, ...)
{
        va_list ap;
        char *dst = a->store + a->used;
        int n;

        if (a->overflow || a->n + 1 >= ELEMENTSOF(a->v)) {
                a->overflow = true;
                return;
        }
        va_start(ap, fmt);
        n = vsnprintf(dst, sizeof(a->store) - a->used, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= sizeof(a->store) - a->used) {
                a->overflow = true;
                return;
        }
        a->v[a->n++] = dst;
        a->v[a->n] = NULL;
        a->used += (size_t)n + 1;
}

void qemu_spec_from_template(struct qemu_spec *spec, const struct vmm_template *t)
{
        *spec = (struct qemu_spec){
                .accel = t->accel,
                .cpu = t->cpu,
                .icount = t->icount,
                .machine = t->machine,
                .mem_size = t->mem_size,
                .kernel = t->kernel,
                .initrd = t->initrd,
                .append = t->append,
                .ram_path = t->ram_path,
                .mac = t->nic_mac,
                .n_xnics = t->nics > 1 ? t->nics - 1 : 0,
        };
        for (unsigned k = 0; k < spec->n_xnics; k++)
                spec->xmac[k] = t->xnic[k].nic_mac;
}

int qemu_spawn(const struct qemu_spec *s, pid_t *ret_pid, struct rh_error *err)
{
        struct argv_buf *a = NULL;
        char qemu[PATH_MAX], mac[18];
        _cleanup_close_ int nsfd = -EBADF, logfd = -EBADF, nullfd = -EBADF;
        pid_t pid;
        int r;

        r = qemu_find_binary(qemu, sizeof(qemu), err);
        if (r < 0)
                return r;
        a = calloc(1, sizeof(*a));
        if (!a)
                return rh_error_set(err, -ENOMEM, "out of memory");
        rh_mac_format(s->mac, mac);

        arg(a, "%s", qemu);
        arg(a, "-name");
        arg(a, "guest=%s,debug-threads=on", s->marker ? s->marker : "rehome");
        arg(a, "-machine");
        arg(a, "%s,memory-backend=ram0", s->machine);
        arg(a, "-accel");
        arg(a, "%s", s->accel);
        arg(a, "-cpu");
        arg(a, "%s", s->cpu);
        if (s->icount) {
                /* Deterministic guest time: 1 ns per instruction (2^0), and no
                 * sleeping while idle (the clock jumps to the next timer). */
                arg(a, "-icount");
                arg(a, "shift=0,sleep=off");
        }
        arg(a, "-m");
        arg(a, "%llu", (unsigned long long)(s->mem_size >> 20));
        arg(a, "-object");
        /* share=off: a MAP_PRIVATE mapping of the template RAM; every page a
         * clone writes (our patch included) becomes its own copy. */
        arg(a, "memory-backend-file,id=ram0,size=%llu,mem-path=%s,share=%s", (unsigned long long)s->mem_size,
            s->ram_path, s->share ? "on" : "off");
        arg(a, "-kernel");
        arg(a, "%s", s->kernel);
        arg(a, "-initrd");
        arg(a, "%s", s->initrd);
        arg(a, "-append");
        arg(a, "%s", s->append);
        arg(a, "-nodefaults");
        arg(a, "-no-user-config");
        arg(a, "-display");
        arg(a, "none");
        if (s->console_sock && strlen(s->console_sock) < sizeof(((struct sockaddr_un *)0)->sun_path)) {
                /* Everything the guest prints still goes to the log file, connected or not. */
                unlink(s->console_sock);
                arg(a, "-chardev");
                arg(a, "socket,id=ser0,path=%s,server=on,wait=off,logfile=%s", s->console_sock, s->console_path);
                arg(a, "-serial");
                arg(a, "chardev:ser0");
        } else {
                arg(a, "-serial");
                arg(a, "file:%s", s->console_path);
        }
        arg(a, "-qmp");
        arg(a, "unix:%s,server=on,wait=off", s->qmp_path);
        arg(a, "-netdev");
        arg(a, "tap,id=net0,ifname=%s,script=no,downscript=no", s->tap);
        arg(a, "-device");
        /* romfile=: no iPXE option ROM; the kernel is loaded directly. */
        arg(a, "virtio-net-pci,netdev=net0,mac=%s,romfile=", mac);
        /* The extra NICs, in order after net0: the guest names them eth1, eth2, ... */
        for (unsigned k = 0; k < s->n_xnics && k < VMM_MAX_NICS - 1; k++) {
                char xmac[18];
                if (!s->xtap[k] || !s->xmac[k]) {
                        free(a);
                        return rh_error_set(err, -EINVAL, "NIC %u: no tap or MAC", k + 1);
                }
                rh_mac_format(s->xmac[k], xmac);
                arg(a, "-netdev");
                arg(a, "tap,id=net%u,ifname=%s,script=no,downscript=no", k + 1, s->xtap[k]);
                arg(a, "-device");
                arg(a, "virtio-net-pci,netdev=net%u,mac=%s,romfile=", k + 1, xmac);
        }
        arg(a, "-device");
        arg(a, "vmgenid,guid=%s", s->vmgenid ? s->vmgenid : "auto");
        if (s->incoming) {
                arg(a, "-incoming");
                arg(a, "defer");
                arg(a, "-S");
        }
        if (s->no_reboot)
                arg(a, "-no-reboot");

        if (a->overflow) {
                free(a);
                return rh_error_set(err, -E2BIG, "QEMU command line too long (kernel command line, paths)");
        }
        if (s->netns && *s->netns) {
                char path[PATH_MAX];
                snprintf(path, sizeof(path), "/run/netns/%s", s->netns);
                nsfd = open(path, O_RDONLY | O_CLOEXEC);
                if (nsfd < 0) {
                        r = rh_error_set(err, -errno, "network namespace %s: %s (run 'rehome net up')", path,
                                         strerror(errno));
                        free(a);
                        return r;
                }
        }
        logfd = open(s->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (logfd < 0) {
                r = rh_error_set(err, -errno, "%s: %s", s->log_path, strerror(errno));
                free(a);
                return r;
        }
        nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (nullfd < 0) {
                free(a);
                return rh_error_set(err, -errno, "/dev/null: %s", strerror(errno));
        }
        unlink(s->qmp_path);

        pid = fork();
        if (pid < 0) {
                r = rh_error_set(err, -errno, "fork: %s", strerror(errno));
                free(a);
                return r;
        }
        if (pid == 0) {
                /* Child: async-signal-safe calls only (we may be one thread of many). */
                sigset_t all;
                sigemptyset(&all);
                sigprocmask(SIG_SETMASK, &all, NULL);
                signal(SIGPIPE, SIG_DFL);
                signal(SIGINT, SIG_DFL);
                signal(SIGTERM, SIG_DFL);
                signal(SIGHUP, SIG_DFL);
                setsid(); /* a terminal's Ctrl-C must not reach a kept clone later */
                if (nsfd >= 0 && setns(nsfd, CLONE_NEWNET) < 0) {
                        static const char msg[] = "rehome: setns into the clone network failed\n";
                        (void)!write(logfd, msg, sizeof(msg) - 1);
                        _exit(127);
                }
                dup2(nullfd, 0);
                dup2(logfd, 1);
                dup2(logfd, 2);
                vmm_signals_child();
                execv(a->v[0], a->v);
                _exit(127);
        }
        track(pid);
        if (getenv("REHOME_DEBUG_QEMU")) {
                for (size_t i = 0; i < a->n; i++)
                        fprintf(stderr, "%s ", a->v[i]);
                fputc('\n', stderr);
        }
        free(a);
        *ret_pid = pid;
        return 0;
}

int console_wait_line(const char *path, off_t *offset, const char *prefix, pid_t pid, int timeout_ms,
                      char *line, size_t line_len, struct rh_error *err)
{
        uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
        char buf[8192];
        size_t have = 0;
        _cleanup_close_ int fd = -EBADF;

        for (;;) {
                if (fd < 0)
                        fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd >= 0) {
                        ssize_t n = pread(fd, buf + have, sizeof(buf) - 1 - have, *offset + (off_t)have);
                        if (n > 0) {
                                have += (size_t)n;
                                buf[have] = '\0';
                                char *start = buf;
                                char *nl;
                                while ((nl = memchr(start, '\n', have - (size_t)(start - buf)))) {
                                        *nl = '\0';
                                        /* Serial output may carry \r and escape codes before text. */
                                        char *hit = strstr(start, prefix);
                                        if (hit) {
                                                size_t l = strlen(hit);
                                                while (l && (hit[l - 1] == '\r'))
                                                        hit[--l] = '\0';
                                                snprintf(line, line_len, "%s", hit);
                                                *offset += (off_t)(nl + 1 - buf);
                                                return 0;
                                        }
                                        start = nl + 1;
                                }
                                size_t consumed = (size_t)(start - buf);
                                *offset += (off_t)consumed;
                                memmove(buf, start, have - consumed);
                                have -= consumed;
                                if (have >= sizeof(buf) - 1) { /* an endless line: drop it */
                                        *offset += (off_t)have;
                                        have = 0;
                                }
                                continue;
                        }
                }
                if (pid > 0 && qemu_exited(pid, NULL))
                        return rh_error_set(err, -ECHILD, "QEMU (pid %d) exited", (int)pid);
                if (now_ns() >= deadline)
                        return rh_error_set(err, -ETIMEDOUT, "no '%s' line on %s in %d ms", prefix, path,
                                            timeout_ms);
                struct timespec ts = {0, 2000000};
                nanosleep(&ts, NULL);
        }
}

static int probe_kvm(const char *state_dir, const char *kernel, const char *initrd, char *reason,
                     size_t reason_len)
{
        char dir[PATH_MAX], console[PATH_MAX + 32], log[PATH_MAX + 32], qemu[PATH_MAX], line[256];
        struct rh_error e = {0};
        off_t off = 0;
        pid_t pid;
        int r;

        if (qemu_find_binary(qemu, sizeof(qemu), NULL) < 0) {
                snprintf(reason, reason_len, "no QEMU");
                return -ENOENT;
        }
        snprintf(dir, sizeof(dir), "%s/tmp", state_dir);
        vmm_mkdir_p(dir, 0755);
        snprintf(console, sizeof(console), "%s/kvm-probe.console", dir);
        snprintf(log, sizeof(log), "%s/kvm-probe.log", dir);
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                char serial[PATH_MAX + 48];
                snprintf(serial, sizeof(serial), "file:%s", console);
                if (fd >= 0) {
                        dup2(fd, 1);
                        dup2(fd, 2);
                }
                vmm_signals_child();
                execl(qemu, qemu, "-machine", "q35", "-accel", "kvm", "-cpu", "host", "-m", "256", "-kernel",
                      kernel, "-initrd", initrd, "-append", "console=ttyS0 panic=-1 earlyprintk=ttyS0",
                      "-nodefaults", "-display", "none", "-serial", serial, "-no-reboot", (char *)NULL);
                _exit(127);
        }
        track(pid);
        /* A kernel that really runs prints "Linux version" within seconds. */
        r = console_wait_line(console, &off, "Linux version", pid, 15000, line, sizeof(line), &e);
        qemu_kill(pid);
        if (r < 0) {
                char tail[200];
                qemu_log_tail(log, tail, sizeof(tail));
                snprintf(reason, reason_len,
                         "/dev/kvm present but a probe boot under KVM failed (%s%s%s): using TCG", e.msg,
                         tail[0] ? "; " : "", tail);
                return -ENODEV;
        }
        snprintf(reason, reason_len, "KVM: /dev/kvm works (probe boot printed its banner)");
        return 0;
}

int qemu_detect_accel(const char *state_dir, const char *kernel, const char *initrd, char *ret_accel,
                      char *ret_cpu, char *ret_reason, size_t reason_len, struct rh_error *err)
{
        char cache[PATH_MAX];
        _cleanup_free_ char *text = NULL;
        int fd;

        snprintf(cache, sizeof(cache), "%s/accel.json", state_dir);
        fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (fd < 0) {
                snprintf(ret_reason, reason_len, "TCG (-cpu max): /dev/kvm %s",
                         errno == ENOENT ? "does not exist" : strerror(errno));
                strcpy(ret_accel, "tcg");
                strcpy(ret_cpu, "max");
                return 0;
        }
        close(fd);

        if (read_file_alloc(cache, 4096, &text, NULL) == 0) {
                json_t *j = json_loads(text, 0, NULL);
                const char *acc = json_string_value(json_object_get(j, "accel"));
                const char *k = json_string_value(json_object_get(j, "kernel"));
                const char *why = json_string_value(json_object_get(j, "reason"));
                if (acc && k && strcmp(k, kernel) == 0) {
                        bool kvm = strcmp(acc, "kvm") == 0;
                        strcpy(ret_accel, kvm ? "kvm" : "tcg");
                        strcpy(ret_cpu, kvm ? "host" : "max");
                        snprintf(ret_reason, reason_len, "%s (cached in %s)", why ? why : acc, cache);
                        json_decref(j);
                        return 0;
                }
                if (j)
                        json_decref(j);
        }

        bool kvm = probe_kvm(state_dir, kernel, initrd, ret_reason, reason_len) == 0;
        strcpy(ret_accel, kvm ? "kvm" : "tcg");
        strcpy(ret_cpu, kvm ? "host" : "max");
        json_t *j = json_pack("{s:s, s:s, s:s}", "accel", ret_accel, "kernel", kernel, "reason", ret_reason);
        if (j) {
                json_dump_file(j, cache, 0);
                json_decref(j);
        }
        (void)err;
        return 0;
}

int qemu_migrate_caps(struct qmp *qmp, bool ignore_shared, struct rh_error *err)
{
        json_t *args =
                json_pack("{s:[{s:s, s:b}, {s:s, s:b}]}", "capabilities", "capability", "x-ignore-shared",
                          "state", ignore_shared, "capability", "events", "state", 1);
        return qmp_execute(qmp, "migrate-set-capabilities", args, 5000, NULL, err);
}

/* ---- migration ---------------------------------------------------------- */

/*
 * Wait for the MIGRATION event that ends a migration: "completed" is
 * success; "failed" or "cancelled" fail at once (a missing or truncated
 * state file makes `cat` end early: QEMU reports failed, and waiting for
 * "completed" would only run into the timeout).
 */
static int wait_migration(struct qmp *qmp, const char *what, int timeout_ms, struct rh_error *err)
{
        uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;

        for (;;) {
                json_t *data = NULL;
                int64_t left = (int64_t)(deadline - now_ns()) / 1000000;
                int r = qmp_wait_event(qmp, "MIGRATION", NULL, left > 0 ? (int)left : 1, &data, err);
                if (r == -ETIMEDOUT)
                        return rh_error_set(err, r, "%s did not complete within %d ms", what, timeout_ms);
                if (r < 0)
                        return r;
                const char *st = json_string_value(json_object_get(data, "status"));
                char status[32];
                snprintf(status, sizeof(status), "%s", st ? st : "?");
                json_decref(data);
                if (strcmp(status, "completed") == 0)
                        return 0;
                if (strcmp(status, "failed") == 0 || strcmp(status, "cancelled") == 0)
                        return rh_error_set(err, -EIO, "%s %s", what, status);
        }
}

static bool safe_path(const char *p)
{
        /* The path goes through /bin/sh -c (exec: migration): be strict. */
        for (; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      strchr("/._-+", *p)))
                        return false;
        return true;
}

int qemu_snapshot(struct qmp *qmp, const char *path, bool ignore_shared, int timeout_ms, struct rh_error *err)
{
        char uri[PATH_MAX + 32];
        int r;

        if (!safe_path(path))
                return rh_error_set(err, -EINVAL, "state path %s has characters the shell would eat", path);
        r = qmp_execute(qmp, "stop", NULL, 5000, NULL, err);
        if (r < 0)
                return r;
        r = qemu_migrate_caps(qmp, ignore_shared, err);
        if (r < 0)
                return r;
        snprintf(uri, sizeof(uri), "exec:cat > %s", path);
        r = qmp_execute(qmp, "migrate", json_pack("{s:s}", "uri", uri), 5000, NULL, err);
        if (r < 0)
                return r;
        return wait_migration(qmp, "snapshot", timeout_ms, err);
}

int qemu_incoming(struct qmp *qmp, const char *path, bool ignore_shared, int timeout_ms, struct rh_error *err)
{
        char uri[PATH_MAX + 32];
        int r;

        if (!safe_path(path))
                return rh_error_set(err, -EINVAL, "state path %s has characters the shell would eat", path);
        r = qemu_migrate_caps(qmp, ignore_shared, err);
        if (r < 0)
                return r;
        snprintf(uri, sizeof(uri), "exec:cat %s", path);
        r = qmp_execute(qmp, "migrate-incoming", json_pack("{s:s}", "uri", uri), 5000, NULL, err);
        if (r < 0)
                return r;
        return wait_migration(qmp, "incoming migration", timeout_ms, err);
}

/* ---- how a QEMU ended ------------------------------------------------------ */

void qemu_describe_exit(int status, const char *ram_path, const char *log_path, char *buf, size_t len)
{
        char tail[200];

        qemu_log_tail(log_path, tail, sizeof(tail));
        if (status >= 0 && WIFSIGNALED(status)) {
                int sig = WTERMSIG(status);
                if (sig == SIGBUS && ram_path) {
                        /* A fault on the RAM file that tmpfs could not back with a page. */
                        char dir[PATH_MAX];
                        struct statvfs vfs;
                        snprintf(dir, sizeof(dir), "%s", ram_path);
                        char *slash = strrchr(dir, '/');
                        if (slash && slash != dir)
                                *slash = '\0';
                        if (statvfs(dir, &vfs) == 0)
                                snprintf(buf, len, "killed by SIGBUS: RAM file system full? (%s: %llu MiB free)",
                                         dir, (unsigned long long)vfs.f_bavail * vfs.f_frsize >> 20);
                        else
                                snprintf(buf, len, "killed by SIGBUS: RAM file system full? (%s)", dir);
                        return;
                }
                snprintf(buf, len, "killed by SIG%s%s%s", sigabbrev_np(sig) ? sigabbrev_np(sig) : "?",
                         tail[0] ? ": " : "", tail);
                return;
        }
        if (status >= 0 && WIFEXITED(status))
                snprintf(buf, len, "exit status %d%s%s", WEXITSTATUS(status), tail[0] ? ": " : "", tail);
        else
                snprintf(buf, len, "exited%s%s", tail[0] ? ": " : "", tail);
}
