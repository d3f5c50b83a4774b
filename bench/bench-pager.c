/* SPDX-License-Identifier: MIT */
/*
 * bench-pager: what `rehome pager` (src/pager, pager.h) costs and saves,
 * measured from Firecracker's side of the userfaultfd protocol, played here
 * as tests/integration/test-pager.c plays it (anonymous MAP_PRIVATE guest
 * memory, a non-blocking uffd with UFFD_FEATURE_EVENT_REMOVE registered
 * MISSING, one sendmsg of the v1.12 JSON with the uffd, the socket kept
 * open). The pager runs in a child process through pager_run(), a fresh one
 * per run; its counters come from its control socket ("stats").
 *
 *   fault service  one client reads one byte of each working-set page in a
 *                  scattered order, clock_gettime around each read: p50/p99
 *                  per 4 KiB page, faults per second; warm (file in the page
 *                  cache) and cold (posix_fadvise DONTNEED, when the file is
 *                  not on tmpfs); against a plain MAP_PRIVATE mapping of the
 *                  file touching the same pages (a file-backed restore).
 *   sharing        N clients (processes) of one snapshot touch the same
 *                  working set and write their own pages; host memory = the
 *                  sum of Pss (/proc/PID/smaps_rollup) of the pager and the
 *                  clients, against N MAP_PRIVATE file mappings and N private
 *                  copies (each client reads the whole file into anonymous
 *                  memory).
 *   prefetch       faults taken after resume and time to touch the working
 *                  set (mailbox page last: the ack-equivalent touch) with no
 *                  prefetch, a window around the mailbox, and the working set
 *                  the pager itself recorded (--record-ws) from a first run.
 *
 * One JSON document on stdout (samples summarised, the targets of issue 11
 * marked met/missed), progress on stderr.
 *
 * usage: bench-pager [--mem-mib N] [--ws-mib N] [--window-mib N] [--write-kib N]
 *                    [--clients LIST] [--runs N] [--resume-delay-ms N] [--dir DIR] [--quick]
 * Exits 77 when userfaultfd is not available.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <linux/magic.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "src/pager/pager.h"
#include "src/vmm/bench.h"

#define KiB ((uint64_t)1 << 10)
#define MiB ((uint64_t)1 << 20)
#define PAGE ((uint64_t)4096)
#define MAX_CLIENTS 8

static uint64_t mem_size = 256 * MiB, ws_size = 64 * MiB, window_size = 64 * MiB, write_size = 1 * MiB;
static unsigned clients[MAX_CLIENTS + 1] = { 1, 8, 32 };
static unsigned runs = 3, resume_delay_ms;
static bool quick;
static const char *base_dir = "/var/tmp";
static char dir[256], mem_path[300], sock_path[300], ctl_path[300], log_path[300], rec_path[300], win_path[300];
static uint64_t mailbox_off;
static uint64_t *ws;       /* working-set offsets, sorted */
static uint64_t *order;    /* the same, in touch order (mailbox page last) */
static size_t n_ws;
static bool evictable;     /* the file is not on tmpfs */
static const char *fs_type = "?";

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
        va_list ap;
        int e = errno;

        fprintf(stderr, "bench-pager: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "%s%s\n", e ? ": " : "", e ? strerror(e) : "");
        exit(1);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "bench-pager: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

static uint64_t word_at(uint64_t off)
{
        uint64_t z = off + 0x9e3779b97f4a7c15ull;

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
}

/* The byte a client must read at the start of the page at @off. */
static uint8_t first_byte(uint64_t off)
{
        return (uint8_t)word_at(off);
}

static uint64_t rng_state = 0x5eed1234abcdull;

static uint64_t rng(void)
{
        rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
        return rng_state >> 17;
}

/* ------------------------------------------------------------------ */
/* The snapshot file and the working set                               */

static void make_memory_file(void)
{
        static uint8_t chunk[1 << 20];
        int fd = open(mem_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        struct statfs sf;

        if (fd < 0)
                die("%s", mem_path);
        for (uint64_t off = 0; off < mem_size; off += sizeof(chunk)) {
                for (uint64_t i = 0; i < sizeof(chunk); i += 8) {
                        uint64_t w = word_at(off + i);
                        memcpy(chunk + i, &w, 8);
                }
                if (pwrite(fd, chunk, sizeof(chunk), (off_t)off) != (ssize_t)sizeof(chunk))
                        die("write %s", mem_path);
        }
        if (fsync(fd) < 0 || fstatfs(fd, &sf) < 0)
                die("fsync %s", mem_path);
        close(fd);
        evictable = sf.f_type != TMPFS_MAGIC && sf.f_type != RAMFS_MAGIC;
        fs_type = sf.f_type == TMPFS_MAGIC ? "tmpfs" : sf.f_type == RAMFS_MAGIC ? "ramfs"
                : sf.f_type == EXT4_SUPER_MAGIC ? "ext4" : sf.f_type == XFS_SUPER_MAGIC ? "xfs"
                : sf.f_type == BTRFS_SUPER_MAGIC ? "btrfs" : sf.f_type == OVERLAYFS_SUPER_MAGIC ? "overlay" : "other";
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

/*
 * The working set: runs of 8 pages (32 KiB) at pseudo-random places over the
 * whole memory, plus the mailbox page (near the end of RAM, where guest
 * kernels put the agent's page). Touched in a scattered order, mailbox last.
 */
static void make_working_set(void)
{
        uint64_t pages = mem_size / PAGE, want = ws_size / PAGE;
        uint8_t *used = calloc(pages, 1);
        size_t n = 0;

        mailbox_off = (mem_size - mem_size / 16) & ~(PAGE - 1);
        ws = calloc(want + 1, sizeof(*ws));
        order = calloc(want + 1, sizeof(*order));
        if (!used || !ws || !order)
                die("out of memory");
        used[mailbox_off / PAGE] = 1;
        ws[n++] = mailbox_off;
        while (n < want) {
                uint64_t start = rng() % (pages / 8) * 8;
                for (uint64_t p = start; p < start + 8 && n < want; p++)
                        if (!used[p]) {
                                used[p] = 1;
                                ws[n++] = p * PAGE;
                        }
        }
        n_ws = n;
        memcpy(order, ws + 1, (n_ws - 1) * sizeof(*order));
        for (size_t i = n_ws - 2; i > 0; i--) { /* Fisher-Yates */
                size_t j = rng() % (i + 1);
                uint64_t t = order[i];
                order[i] = order[j];
                order[j] = t;
        }
        order[n_ws - 1] = mailbox_off;
        qsort(ws, n_ws, sizeof(*ws), cmp_u64);
        free(used);
}

static void warm_file(void)
{
        struct rh_error err = {};
        uint64_t bytes;

        if (vmm_ws_prefetch_range(mem_path, 0, mem_size, &bytes, &err) < 0)
                die("warm: %s", err.msg);
}

/* Returns the pages still resident after eviction (0 when it worked). */
static long evict_file(void)
{
        struct rh_error err = {};
        long resident = -1;

        if (vmm_ws_evict(mem_path, &resident, &err) < 0)
                die("evict: %s", err.msg);
        return resident;
}

/* ------------------------------------------------------------------ */
/* The pager (pager_run in a child process)                            */

static FILE *pager_log;
static pid_t live_pager = -1, main_pid; /* killed at exit if a die() leaves it running */

static void log_line(void *userdata, const char *line)
{
        (void)userdata;
        fprintf(pager_log, "%s\n", line);
        fflush(pager_log);
}

static pid_t pager_start(const char *working_set, const char *record_ws, unsigned spin_us)
{
        pid_t pid;

        unlink(ctl_path);
        pid = fork();
        if (pid < 0)
                die("fork");
        if (pid == 0) {
                struct pager_config cfg = { .socket_path = sock_path, .mem_file = mem_path, .control_path = ctl_path,
                                            .working_set = working_set, .record_ws = record_ws,
                                            .spin_us = spin_us, .log = log_line };
                struct rh_error err = {};
                int sig = 0, r;
                pager_log = fopen(log_path, "ae");
                if (!pager_log)
                        _exit(127);
                r = pager_run(&cfg, &sig, &err);
                if (r < 0)
                        fprintf(pager_log, "fatal: %s\n", err.msg);
                fclose(pager_log);
                _exit(r < 0 ? 1 : 0);
        }
        for (uint64_t t0 = now_ns(); access(ctl_path, F_OK) != 0; usleep(2000)) {
                if (waitpid(pid, NULL, WNOHANG) == pid) {
                        errno = 0;
                        die("the pager exited at start (log: %s)", log_path);
                }
                if (now_ns() - t0 > 10000000000ull) {
                        errno = ETIMEDOUT;
                        die("waiting for %s", ctl_path);
                }
        }
        live_pager = pid;
        return pid;
}

static void pager_stop(pid_t pid)
{
        int st;

        kill(pid, SIGTERM);
        live_pager = -1;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                errno = 0;
                die("the pager did not stop cleanly (status 0x%x; log: %s)", st, log_path);
        }
}

static json_t *pager_stats(void)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char buf[1 << 16];
        size_t len = 0;
        json_t *j;
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", ctl_path);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                die("connect %s", ctl_path);
        if (write(fd, "{\"op\":\"stats\"}\n", 15) != 15)
                die("write stats");
        while (len < sizeof(buf) - 1 && !memchr(buf, '\n', len)) {
                ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
                if (n <= 0)
                        die("read stats");
                len += (size_t)n;
        }
        close(fd);
        buf[len] = '\0';
        j = json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
        if (!j || !json_is_true(json_object_get(j, "ok"))) {
                errno = 0;
                die("stats: %s", buf);
        }
        return j;
}

static uint64_t u64(json_t *j, const char *key)
{
        return (uint64_t)json_integer_value(json_object_get(j, key));
}

/* ------------------------------------------------------------------ */
/* Firecracker's side (as tests/integration/test-pager.c)              */

struct fc {
        int sock, uffd;
        uint8_t *mem;
};

static int new_uffd(void)
{
        struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_EVENT_REMOVE };
        int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

        if (fd < 0)
                return -errno;
        if (ioctl(fd, UFFDIO_API, &api) < 0) {
                int e = errno;
                close(fd);
                return -e;
        }
        return fd;
}

static int send_with_fd(int sock, const char *text, size_t len, int fd)
{
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(sizeof(int))];
        } cm = {};
        struct iovec iov = { (void *)text, len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &cm, .msg_controllen = sizeof(cm.buf) };
        struct cmsghdr *h = CMSG_FIRSTHDR(&mh);

        h->cmsg_level = SOL_SOCKET;
        h->cmsg_type = SCM_RIGHTS;
        h->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(h), &fd, sizeof(int));
        return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -errno;
}

/* One region [0, mem_size): Firecracker's x86_64 layout for guests below 3 GiB. */
static void fc_start(struct fc *c)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
        char json[512];

        c->uffd = new_uffd();
        if (c->uffd < 0) {
                errno = -c->uffd;
                die("userfaultfd");
        }
        c->mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (c->mem == MAP_FAILED)
                die("mmap guest memory");
        reg.range.start = (uint64_t)(uintptr_t)c->mem;
        reg.range.len = mem_size;
        if (ioctl(c->uffd, UFFDIO_REGISTER, &reg) < 0)
                die("UFFDIO_REGISTER");
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
        c->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c->sock < 0 || connect(c->sock, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                die("connect %s", sock_path);
        snprintf(json, sizeof(json),
                 "[{\"base_host_virt_addr\":%" PRIu64 ",\"size\":%" PRIu64 ",\"offset\":0,\"page_size\":4096,"
                 "\"page_size_kib\":4096}]",
                 (uint64_t)(uintptr_t)c->mem, mem_size);
        if (send_with_fd(c->sock, json, strlen(json), c->uffd) < 0)
                die("sendmsg");
}

static void fc_stop(struct fc *c)
{
        munmap(c->mem, mem_size);
        close(c->uffd);
        close(c->sock);
}

/* Read one byte of each page of @order (timed each into @lat when not NULL); checks the bytes. */
static void touch(const uint8_t *base, uint64_t *lat)
{
        struct timespec a, b;

        for (size_t i = 0; i < n_ws; i++) {
                uint64_t off = order[i];
                uint8_t v;
                clock_gettime(CLOCK_MONOTONIC, &a);
                v = *(volatile const uint8_t *)(base + off);
                clock_gettime(CLOCK_MONOTONIC, &b);
                if (v != first_byte(off)) {
                        errno = 0;
                        die("wrong byte at offset 0x%" PRIx64 ": 0x%02x, want 0x%02x", off, v, first_byte(off));
                }
                if (lat)
                        lat[i] = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000ull + (uint64_t)b.tv_nsec - (uint64_t)a.tv_nsec;
        }
}

/* Write one byte into each of the first @write_size bytes' pages of the touch order (the client's own pages). */
static void write_own(uint8_t *base)
{
        for (size_t i = 0; i < n_ws && i < write_size / PAGE; i++)
                base[order[n_ws - 1 - i]] ^= 0x5a;
}

/* ------------------------------------------------------------------ */
/* Statistics                                                          */

static json_t *lat_json(uint64_t *ns, size_t n, double seconds, uint64_t faults)
{
        double sum = 0;

        qsort(ns, n, sizeof(*ns), cmp_u64);
        for (size_t i = 0; i < n; i++)
                sum += (double)ns[i];
        size_t k99 = (99 * n + 99) / 100;
        return json_pack("{s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:f}", "pages", (json_int_t)n, "p50_us",
                         (double)ns[n / 2] / 1e3, "p99_us", (double)ns[(k99 ? k99 : 1) - 1] / 1e3, "mean_us",
                         sum / (double)n / 1e3, "max_us", (double)ns[n - 1] / 1e3, "touch_seconds", seconds,
                         "pages_per_second", (double)n / seconds, "faults", (json_int_t)faults, "faults_per_second",
                         (double)faults / seconds);
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
        qsort(v, n, sizeof(*v), cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ------------------------------------------------------------------ */
/* 1. Fault service                                                    */

enum backing { BACK_PAGER, BACK_PAGER_SPIN, BACK_MAP_PRIVATE };
#define SPIN_US 100 /* the spinning pager variant's --spin-us */

/* One run: a fresh pager (or mapping), the file warm or cold, every working-set page read once. */
static void fault_run(enum backing b, bool cold, uint64_t *lat, double *ret_seconds, uint64_t *ret_faults,
                      uint64_t *ret_service_ns, uint64_t *ret_service_max, long *ret_resident)
{
        uint64_t t0;

        if (cold)
                *ret_resident = evict_file();
        else
                warm_file();
        if (b != BACK_MAP_PRIVATE) {
                pid_t pid = pager_start(NULL, NULL, b == BACK_PAGER_SPIN ? SPIN_US : 0);
                json_t *s0 = pager_stats(), *s1;
                struct fc c;
                fc_start(&c);
                t0 = now_ns();
                touch(c.mem, lat);
                *ret_seconds = (double)(now_ns() - t0) / 1e9;
                s1 = pager_stats();
                *ret_faults = u64(s1, "faults") - u64(s0, "faults");
                *ret_service_ns = u64(s1, "service_ns") - u64(s0, "service_ns");
                *ret_service_max = u64(s1, "service_ns_max");
                json_decref(s0);
                json_decref(s1);
                fc_stop(&c);
                pager_stop(pid);
        } else {
                struct rusage r0, r1;
                int fd = open(mem_path, O_RDONLY | O_CLOEXEC);
                uint8_t *m = fd < 0 ? MAP_FAILED
                                    : mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
                if (m == MAP_FAILED)
                        die("mmap %s", mem_path);
                close(fd);
                getrusage(RUSAGE_SELF, &r0);
                t0 = now_ns();
                touch(m, lat);
                *ret_seconds = (double)(now_ns() - t0) / 1e9;
                getrusage(RUSAGE_SELF, &r1);
                /* clock_gettime does not fault: these are the touches' page faults (fault-around maps neighbours) */
                *ret_faults = (uint64_t)(r1.ru_minflt - r0.ru_minflt) + (uint64_t)(r1.ru_majflt - r0.ru_majflt);
                *ret_service_ns = *ret_service_max = 0;
                munmap(m, mem_size);
        }
}

static json_t *fault_variant(enum backing b, bool cold)
{
        const char *name = b == BACK_PAGER        ? (cold ? "pager cold" : "pager warm")
                           : b == BACK_PAGER_SPIN ? (cold ? "pager cold, spin 100 us" : "pager warm, spin 100 us")
                                                  : (cold ? "MAP_PRIVATE cold" : "MAP_PRIVATE warm");
        uint64_t *lat = calloc(n_ws * runs, sizeof(*lat));
        double secs = 0;
        uint64_t faults = 0, svc = 0, svc_max = 0;
        long resident_max = 0;
        json_t *o;

        if (!lat)
                die("out of memory");
        say("fault service: %s, %u run(s) of %zu pages", name, runs, n_ws);
        for (unsigned r = 0; r < runs; r++) {
                double s;
                uint64_t f, sv, sm;
                long res = 0;
                fault_run(b, cold, lat + (size_t)r * n_ws, &s, &f, &sv, &sm, &res);
                secs += s;
                faults += f;
                svc += sv;
                svc_max = sm > svc_max ? sm : svc_max;
                resident_max = res > resident_max ? res : resident_max;
        }
        o = lat_json(lat, n_ws * runs, secs, faults);
        json_object_set_new(o, "name", json_string(name));
        json_object_set_new(o, "backing", json_string(b == BACK_MAP_PRIVATE ? "map_private" : "pager"));
        if (b == BACK_PAGER_SPIN)
                json_object_set_new(o, "spin_us", json_integer(SPIN_US));
        json_object_set_new(o, "file", json_string(cold ? "cold" : "warm"));
        json_object_set_new(o, "runs", json_integer(runs));
        if (cold)
                json_object_set_new(o, "pages_resident_after_evict_max", json_integer(resident_max));
        if (b != BACK_MAP_PRIVATE)
                json_object_set_new(o, "pager", json_pack("{s:I, s:f, s:f}", "faults", (json_int_t)faults,
                                                          "service_mean_us", faults ? (double)svc / (double)faults / 1e3 : 0.0,
                                                          "service_max_us", (double)svc_max / 1e3));
        free(lat);
        say("  p50 %.2f us, p99 %.2f us, %" PRIu64 " faults, %.0f faults/s", json_real_value(json_object_get(o, "p50_us")),
            json_real_value(json_object_get(o, "p99_us")), faults, json_real_value(json_object_get(o, "faults_per_second")));
        return o;
}

static json_t *section_faults(void)
{
        json_t *arr = json_array();

        json_array_append_new(arr, fault_variant(BACK_PAGER, false));
        json_array_append_new(arr, fault_variant(BACK_MAP_PRIVATE, false));
        json_array_append_new(arr, fault_variant(BACK_PAGER_SPIN, false));
        if (evictable) {
                json_array_append_new(arr, fault_variant(BACK_PAGER, true));
                json_array_append_new(arr, fault_variant(BACK_MAP_PRIVATE, true));
        }
        return json_pack("{s:o, s:s, s:b, s:s}", "variants", arr, "file_system", fs_type, "cold_measured", evictable,
                         "method", "one single-byte read per working-set page in a scattered order, clock_gettime around "
                                   "each read, a fresh pager or mapping per run; cold = fdatasync + posix_fadvise "
                                   "DONTNEED before the run; MAP_PRIVATE faults from getrusage (fault-around maps up to "
                                   "16 cached neighbours per fault)");
}

/* ------------------------------------------------------------------ */
/* 2. Sharing                                                          */

enum share { SHARE_PAGER, SHARE_MAP_PRIVATE, SHARE_COPY };

/* Pss and Pss_Anon of @pid in KiB (smaps_rollup). */
static void pss_of(pid_t pid, uint64_t *pss, uint64_t *anon)
{
        char path[64], line[256];
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
        f = fopen(path, "re");
        if (!f)
                die("%s", path);
        while (fgets(line, sizeof(line), f)) {
                unsigned long long v;
                if (sscanf(line, "Pss: %llu kB", &v) == 1)
                        *pss += v;
                else if (sscanf(line, "Pss_Anon: %llu kB", &v) == 1)
                        *anon += v;
        }
        fclose(f);
}

/* A client process: restore, touch the working set, write its own pages, report, wait for the end. */
static void share_child(enum share how, int ready, int go)
{
        uint8_t *m;
        struct fc c;
        char b = 1;

        if (how == SHARE_PAGER) {
                fc_start(&c);
                m = c.mem;
        } else {
                int fd = open(mem_path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        _exit(1);
                if (how == SHARE_MAP_PRIVATE)
                        m = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
                else {
                        m = mmap(NULL, mem_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                        for (uint64_t off = 0; m != MAP_FAILED && off < mem_size; off += MiB)
                                if (pread(fd, m + off, MiB, (off_t)off) != (ssize_t)MiB)
                                        _exit(1);
                }
                if (m == MAP_FAILED)
                        _exit(1);
                close(fd);
        }
        touch(m, NULL);
        write_own(m);
        if (write(ready, &b, 1) != 1)
                _exit(1);
        (void)!read(go, &b, 1); /* EOF: the parent has measured */
        _exit(0);
}

static json_t *share_run(enum share how, unsigned n)
{
        pid_t pager = -1, *kids = calloc(n, sizeof(pid_t));
        int ready[2], go[2];
        uint64_t pss = 0, anon = 0, pager_pss = 0, pager_anon = 0;
        json_t *o;
        char b;

        warm_file();
        if (how == SHARE_PAGER)
                pager = pager_start(NULL, NULL, 0);
        /* After the pager's fork: it must not hold the write end of "go". */
        if (!kids || pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0)
                die("pipe");
        for (unsigned i = 0; i < n; i++) {
                kids[i] = fork();
                if (kids[i] < 0)
                        die("fork");
                if (kids[i] == 0) {
                        close(ready[0]);
                        close(go[1]);
                        share_child(how, ready[1], go[0]);
                }
        }
        close(ready[1]);
        close(go[0]);
        for (unsigned i = 0; i < n; i++) {
                struct pollfd pfd = { .fd = ready[0], .events = POLLIN };
                /* A client that dies leaves its siblings holding the write end: time out instead of hanging. */
                if (poll(&pfd, 1, 600000) != 1 || read(ready[0], &b, 1) != 1) {
                        errno = 0;
                        die("a client of the sharing run failed");
                }
        }
        for (unsigned i = 0; i < n; i++)
                pss_of(kids[i], &pss, &anon);
        if (pager > 0)
                pss_of(pager, &pager_pss, &pager_anon);
        close(go[1]);
        for (unsigned i = 0; i < n; i++) {
                int st;
                if (waitpid(kids[i], &st, 0) != kids[i] || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                        errno = 0;
                        die("a client of the sharing run exited with 0x%x", st);
                }
        }
        close(ready[0]);
        if (pager > 0)
                pager_stop(pager);
        free(kids);
        o = json_pack("{s:i, s:I, s:I, s:I, s:I, s:I, s:I}", "clients", (int)n, "host_kib", (json_int_t)(pss + pager_pss),
                      "clients_pss_kib", (json_int_t)pss, "clients_pss_anon_kib", (json_int_t)anon, "pager_pss_kib",
                      (json_int_t)pager_pss, "pager_pss_anon_kib", (json_int_t)pager_anon, "written_kib_per_client", (json_int_t)(write_size / KiB));
        return o;
}

static uint64_t mem_available_kib(void)
{
        char line[256];
        unsigned long long v = 0;
        FILE *f = fopen("/proc/meminfo", "re");

        while (f && fgets(line, sizeof(line), f))
                if (sscanf(line, "MemAvailable: %llu kB", &v) == 1)
                        break;
        if (f)
                fclose(f);
        return v;
}

static json_t *share_variant(enum share how, double *ret_ratio_max, unsigned *ret_n_max)
{
        static const char *const names[] = { "pager", "map_private", "private_copy" };
        json_t *arr = json_array(), *one = NULL;
        uint64_t per_client = how == SHARE_COPY ? mem_size : ws_size; /* the most a client can hold */

        for (size_t k = 0; k < MAX_CLIENTS && clients[k]; k++) {
                unsigned n = clients[k];
                uint64_t need_kib = (per_client * n + mem_size) / KiB;
                json_t *r;
                if (need_kib > mem_available_kib() * 7 / 10) {
                        say("sharing: %s x %u skipped: needs up to %" PRIu64 " MiB, MemAvailable %" PRIu64 " MiB",
                            names[how], n, need_kib / 1024, mem_available_kib() / 1024);
                        json_array_append_new(arr, json_pack("{s:i, s:s}", "clients", (int)n, "skipped",
                                                             "not enough MemAvailable (70 % rule)"));
                        continue;
                }
                say("sharing: %s x %u", names[how], n);
                r = share_run(how, n);
                if (!one && n == 1)
                        one = r;
                if (one) {
                        double base = (double)u64(one, "host_kib"), limit =
                                      1.2 * (base + (double)(n - 1) * (double)(write_size / KiB));
                        double host = (double)u64(r, "host_kib");
                        json_object_set_new(r, "ratio_vs_one", json_real(host / base));
                        json_object_set_new(r, "limit_kib", json_real(limit));
                        json_object_set_new(r, "ratio_vs_one_plus_written", json_real(host / limit * 1.2));
                        if (n >= *ret_n_max) {
                                *ret_n_max = n;
                                *ret_ratio_max = host / (base + (double)(n - 1) * (double)(write_size / KiB));
                        }
                }
                say("  host %" PRIu64 " MiB (clients %" PRIu64 " MiB, pager %" PRIu64 " MiB)", u64(r, "host_kib") / 1024,
                    u64(r, "clients_pss_kib") / 1024, u64(r, "pager_pss_kib") / 1024);
                json_array_append_new(arr, r);
        }
        return json_pack("{s:s, s:o}", "name", names[how], "runs", arr);
}

static json_t *section_sharing(double *ret_ratio, unsigned *ret_n)
{
        json_t *arr = json_array();
        double dummy;
        unsigned dn = 0;

        *ret_n = 0;
        *ret_ratio = -1;
        json_array_append_new(arr, share_variant(SHARE_PAGER, ret_ratio, ret_n));
        json_array_append_new(arr, share_variant(SHARE_MAP_PRIVATE, &dummy, &dn));
        dn = 0;
        json_array_append_new(arr, share_variant(SHARE_COPY, &dummy, &dn));
        return json_pack("{s:o, s:s}", "variants", arr, "method",
                         "host memory = sum of Pss (/proc/PID/smaps_rollup) of the clients and the pager while every "
                         "client holds its working set; each client reads one byte of every working-set page and writes "
                         "written_kib_per_client of them; pager = anonymous uffd memory served by one pager; "
                         "map_private = MAP_PRIVATE mappings of the file (page cache shared); private_copy = each client "
                         "reads the whole file into anonymous memory; unmapped page cache is not counted");
}

/* ------------------------------------------------------------------ */
/* 3. Prefetch                                                         */

static json_t *prefetch_variant(const char *name, const char *ws_file, bool cold, double *ret_faults_p50)
{
        double *faults = calloc(runs, sizeof(double)), *t_ws = calloc(runs, sizeof(double));
        double *t_first = calloc(runs, sizeof(double));
        uint64_t prefetched = 0;
        json_t *o;

        if (!faults || !t_ws || !t_first)
                die("out of memory");
        say("prefetch: %s, %u run(s)", name, runs);
        for (unsigned r = 0; r < runs; r++) {
                pid_t pid;
                json_t *s0, *s1;
                struct fc c;
                uint64_t t0, t1;
                if (cold)
                        evict_file();
                else
                        warm_file();
                pid = pager_start(ws_file, NULL, 0);
                s0 = pager_stats();
                t0 = now_ns();
                fc_start(&c);
                if (resume_delay_ms)
                        usleep(resume_delay_ms * 1000);
                t1 = now_ns();
                (void)*(volatile uint8_t *)(c.mem + order[0]);
                t_first[r] = (double)(now_ns() - t1) / 1e6;
                touch(c.mem, NULL);
                t_ws[r] = (double)(now_ns() - t0) / 1e6;
                s1 = pager_stats();
                faults[r] = (double)(u64(s1, "faults") - u64(s0, "faults"));
                prefetched = u64(s1, "prefetch_pages") - u64(s0, "prefetch_pages");
                json_decref(s0);
                json_decref(s1);
                fc_stop(&c);
                pager_stop(pid);
        }
        *ret_faults_p50 = median(faults, runs);
        o = json_pack("{s:s, s:f, s:f, s:f, s:I, s:i}", "name", name, "faults_after_resume_p50", *ret_faults_p50,
                      "time_to_working_set_ms_p50", median(t_ws, runs), "first_touch_ms_p50", median(t_first, runs),
                      "prefetch_pages_last_run", (json_int_t)prefetched, "runs", (int)runs);
        say("  %.0f faults, %.1f ms to the working set", *ret_faults_p50, json_real_value(json_object_get(o, "time_to_working_set_ms_p50")));
        free(faults);
        free(t_ws);
        free(t_first);
        return o;
}

static json_t *section_prefetch(double *ret_ratio)
{
        struct rh_error err = {};
        uint64_t *rec = NULL, *win;
        size_t n_rec = 0, n_win = 0, matched = 0;
        double f_none, f_win, f_rec;
        bool cold = evictable;
        json_t *arr = json_array();
        uint64_t lo = mailbox_off > window_size / 2 ? mailbox_off - window_size / 2 : 0;
        uint64_t hi = lo + window_size > mem_size ? mem_size : lo + window_size;
        pid_t pid;
        struct fc c;

        /* Record: one restore served by a pager with --record-ws, touching the working set. */
        say("prefetch: recording the working set with the pager's record_ws");
        unlink(rec_path);
        pid = pager_start(NULL, rec_path, 0);
        fc_start(&c);
        touch(c.mem, NULL);
        fc_stop(&c);
        for (uint64_t t0 = now_ns(); access(rec_path, F_OK) != 0 && now_ns() - t0 < 5000000000ull;)
                usleep(5000);
        pager_stop(pid);
        if (vmm_ws_load(rec_path, mem_size, &rec, &n_rec, &err) < 0)
                die("recorded working set: %s", err.msg);
        for (size_t i = 0, j = 0; i < n_rec && j < n_ws;) { /* both sorted */
                if (rec[i] == ws[j])
                        matched++, i++, j++;
                else if (rec[i] < ws[j])
                        i++;
                else
                        j++;
        }
        free(rec);

        win = calloc((hi - lo) / PAGE, sizeof(*win));
        if (!win)
                die("out of memory");
        for (uint64_t off = lo; off < hi; off += PAGE)
                win[n_win++] = off;
        if (vmm_ws_save(win_path, mem_size, win, n_win, &err) < 0)
                die("window: %s", err.msg);
        free(win);

        json_array_append_new(arr, prefetch_variant("none", NULL, cold, &f_none));
        json_array_append_new(arr, prefetch_variant("window", win_path, cold, &f_win));
        json_array_append_new(arr, prefetch_variant("recorded working set", rec_path, cold, &f_rec));
        *ret_ratio = f_none > 0 ? f_rec / f_none : -1;
        return json_pack("{s:o, s:s, s:I, s:I, s:I, s:I, s:I, s:i, s:s}", "variants", arr, "file", cold ? "cold" : "warm",
                         "working_set_pages", (json_int_t)n_ws, "recorded_pages", (json_int_t)n_rec,
                         "recorded_matching_pages", (json_int_t)matched, "window_bytes", (json_int_t)(hi - lo),
                         "mailbox_offset", (json_int_t)mailbox_off, "resume_delay_ms", (int)resume_delay_ms, "method",
                         "a fresh pager per run with --working-set (none, the window around the mailbox, or the file "
                         "the pager recorded with --record-ws); the client touches right after its handshake (plus "
                         "resume_delay_ms); faults = the pager's fault counter; time = sendmsg start to the last "
                         "working-set page (the mailbox page) read");
}

/* ------------------------------------------------------------------ */

static json_t *target(const char *name, const char *want, double value, const char *unit, bool met, const char *note)
{
        return json_pack("{s:s, s:s, s:f, s:s, s:s, s:s}", "name", name, "target", want, "value", value, "unit", unit,
                         "result", value < 0 ? "not measured" : met ? "met" : "missed", "note", note);
}

static void cleanup(void)
{
        char cmd[400];

        if (getpid() != main_pid)
                return;
        if (live_pager > 0) {
                kill(live_pager, SIGKILL);
                waitpid(live_pager, NULL, 0);
        }
        if (dir[0] && !getenv("KEEP")) {
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
                (void)!system(cmd);
        }
}

static void on_signal(int sig)
{
        (void)sig;
        exit(1);
}

static void usage(FILE *f)
{
        fprintf(f, "usage: bench-pager [--mem-mib N] [--ws-mib N] [--window-mib N] [--write-kib N] [--clients LIST]\n"
                   "                   [--runs N] [--resume-delay-ms N] [--dir DIR] [--quick]\n"
                   "defaults: 256 MiB snapshot, 64 MiB working set, 64 MiB window, 1024 KiB written per client,\n"
                   "clients 1,8,32, 3 runs, /var/tmp; --quick: 32 MiB, 8 MiB, 8 MiB, 64 KiB, 1,2,4, 1 run\n");
}

static unsigned long parse_num(const char *s, const char *what, unsigned long max)
{
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || *end || end == s || v == 0 || v > max) {
                fprintf(stderr, "bench-pager: bad %s '%s'\n", what, s);
                exit(2);
        }
        return v;
}

int main(int argc, char **argv)
{
        enum { O_MEM = 256, O_WS, O_WIN, O_WRITE, O_CLIENTS, O_RUNS, O_DELAY, O_DIR, O_QUICK };
        static const struct option opts[] = {
                { "mem-mib", required_argument, NULL, O_MEM },   { "ws-mib", required_argument, NULL, O_WS },
                { "window-mib", required_argument, NULL, O_WIN }, { "write-kib", required_argument, NULL, O_WRITE },
                { "clients", required_argument, NULL, O_CLIENTS }, { "runs", required_argument, NULL, O_RUNS },
                { "resume-delay-ms", required_argument, NULL, O_DELAY }, { "dir", required_argument, NULL, O_DIR },
                { "quick", no_argument, NULL, O_QUICK },          { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *o_mem = NULL, *o_ws = NULL, *o_win = NULL, *o_write = NULL, *o_clients = NULL, *o_runs = NULL;
        double share_ratio, pf_ratio;
        unsigned share_n;
        json_t *doc, *faults, *ts, *v;
        int c, fd;
        char *out, note[256];

        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case O_MEM: o_mem = optarg; break;
                case O_WS: o_ws = optarg; break;
                case O_WIN: o_win = optarg; break;
                case O_WRITE: o_write = optarg; break;
                case O_CLIENTS: o_clients = optarg; break;
                case O_RUNS: o_runs = optarg; break;
                case O_DELAY: resume_delay_ms = (unsigned)strtoul(optarg, NULL, 10); break;
                case O_DIR: base_dir = optarg; break;
                case O_QUICK: quick = true; break;
                case 'h': usage(stdout); return 0;
                default: usage(stderr); return 2;
                }
        }
        if (optind < argc) {
                usage(stderr);
                return 2;
        }
        if (quick) {
                mem_size = 32 * MiB, ws_size = 8 * MiB, window_size = 8 * MiB, write_size = 64 * KiB, runs = 1;
                clients[0] = 1, clients[1] = 2, clients[2] = 4;
        }
        if (o_mem)
                mem_size = parse_num(o_mem, "--mem-mib", 1 << 20) * MiB;
        if (o_ws)
                ws_size = parse_num(o_ws, "--ws-mib", 1 << 20) * MiB;
        if (o_win)
                window_size = parse_num(o_win, "--window-mib", 1 << 20) * MiB;
        if (o_write)
                write_size = parse_num(o_write, "--write-kib", 1 << 30) * KiB;
        if (o_runs)
                runs = (unsigned)parse_num(o_runs, "--runs", 100000);
        if (o_clients) {
                char buf[256], *save = NULL, *t;
                size_t k = 0;
                snprintf(buf, sizeof(buf), "%s", o_clients);
                memset(clients, 0, sizeof(clients));
                for (t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                        if (k == MAX_CLIENTS) {
                                fprintf(stderr, "bench-pager: at most %d client counts\n", MAX_CLIENTS);
                                return 2;
                        }
                        clients[k++] = (unsigned)parse_num(t, "--clients", 4096);
                }
        }
        if (mem_size < 4 * MiB || ws_size > mem_size / 2 || write_size > ws_size) {
                fprintf(stderr, "bench-pager: need --mem-mib >= 4, --ws-mib <= half of it, --write-kib <= the working set\n");
                return 2;
        }

        fd = new_uffd();
        if (fd < 0) {
                printf("SKIP: userfaultfd unavailable to uid %d: %s\n", (int)getuid(), strerror(-fd));
                return 77;
        }
        close(fd);
        snprintf(dir, sizeof(dir), "%s/bench-pager.XXXXXX", base_dir);
        if (!mkdtemp(dir))
                die("mkdtemp %s", dir);
        main_pid = getpid();
        atexit(cleanup);
        signal(SIGPIPE, SIG_IGN);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        snprintf(mem_path, sizeof(mem_path), "%s/mem", dir);
        snprintf(sock_path, sizeof(sock_path), "%s/pager.sock", dir);
        snprintf(ctl_path, sizeof(ctl_path), "%s/control.sock", dir);
        snprintf(log_path, sizeof(log_path), "%s/pager.log", dir);
        snprintf(rec_path, sizeof(rec_path), "%s/recorded-ws", dir);
        snprintf(win_path, sizeof(win_path), "%s/window-ws", dir);
        say("snapshot %" PRIu64 " MiB in %s, working set %" PRIu64 " MiB, window %" PRIu64 " MiB", mem_size / MiB, dir,
            ws_size / MiB, window_size / MiB);
        make_memory_file();
        make_working_set();
        if (!evictable)
                say("%s is on %s: the page cache cannot be evicted, cold runs are skipped", dir, fs_type);

        doc = json_object();
        json_object_set_new(doc, "tool", json_string("bench-pager"));
        json_object_set_new(doc, "config", json_pack("{s:I, s:I, s:I, s:I, s:i, s:b, s:s, s:s, s:I}", "mem_bytes",
                                                     (json_int_t)mem_size, "working_set_bytes", (json_int_t)(n_ws * PAGE),
                                                     "window_bytes", (json_int_t)window_size, "written_bytes_per_client",
                                                     (json_int_t)write_size, "runs", (int)runs, "quick", quick, "dir",
                                                     base_dir, "file_system", fs_type, "mailbox_offset",
                                                     (json_int_t)mailbox_off));
        faults = section_faults();
        json_object_set_new(doc, "fault_service", faults);
        json_object_set_new(doc, "sharing", section_sharing(&share_ratio, &share_n));
        json_object_set_new(doc, "prefetch", section_prefetch(&pf_ratio));

        ts = json_array();
        v = json_array_get(json_object_get(faults, "variants"), 0); /* pager warm */
        snprintf(note, sizeof(note), "client-side read of a missing page, fresh pager, file in the page cache; "
                 "MAP_PRIVATE warm p50 %.2f us; --spin-us %d p50 %.2f us", json_real_value(json_object_get(json_array_get(json_object_get(faults,
                 "variants"), 1), "p50_us")), SPIN_US,
                 json_real_value(json_object_get(json_array_get(json_object_get(faults, "variants"), 2), "p50_us")));
        json_array_append_new(ts, target("warm fault service p50", "<= 10 us",
                                         json_real_value(json_object_get(v, "p50_us")), "us",
                                         json_real_value(json_object_get(v, "p50_us")) <= 10, note));
        snprintf(note, sizeof(note), "pager faults after resume with the recorded working set / without prefetch (%s file)",
                 evictable ? "cold" : "warm");
        json_array_append_new(ts, target("faults left with the recorded working set", "<= 5 %", pf_ratio < 0 ? -1 : pf_ratio * 100,
                                         "%", pf_ratio >= 0 && pf_ratio <= 0.05, note));
        snprintf(note, sizeof(note), "host Pss of %u pager clients / (one client + %u x %" PRIu64 " KiB written)",
                 share_n, share_n ? share_n - 1 : 0, write_size / KiB);
        json_array_append_new(ts, target("N clients' memory vs one plus their written pages", "<= 1.2x", share_ratio, "x",
                                         share_ratio >= 0 && share_ratio <= 1.2, note));
        json_object_set_new(doc, "targets", ts);
        out = json_dumps(doc, JSON_INDENT(2));
        if (!out)
                die("json");
        puts(out);
        free(out);
        json_decref(doc);
        free(ws);
        free(order);
        return 0;
}
