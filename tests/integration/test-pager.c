/* SPDX-License-Identifier: MIT */
/*
 * Integration test of `rehome pager` against Firecracker's side of the
 * userfaultfd protocol, played here exactly as Firecracker does it (its
 * persist.rs: anonymous MAP_PRIVATE regions, a non-blocking userfaultfd
 * with UFFD_FEATURE_EVENT_REMOVE registered MISSING per whole region, one
 * sendmsg of the compact JSON region list with the uffd as the only
 * SCM_RIGHTS fd, the socket never closed). The memory file is a small
 * analogue of Firecracker's x86_64 layout: RAM [0,48M) and [64M,80M), back
 * to back in a 64 MiB file, with an armed mailbox page at gpa 0x4100000.
 *
 * Checked: every byte each client reads equals the memory file, except the
 * mailbox page, which equals the page rh_mailbox_patch_overlay builds from
 * the same request (and, for a client without an overlay, the template's);
 * several clients at once (v1.12+, v1.7 and v1.1 field sets), none seeing
 * another's mailbox; MADV_DONTNEED ranges read back as zeros; the working set
 * is in the client before it touches anything, and the faults taken are
 * exactly the pages outside it; bad handshakes (not JSON, no fd, two fds,
 * wrong size, page size not a power of two, offsets not the running sum)
 * close that connection only; a client process that dies is freed; the
 * snapshot file is byte-identical afterwards; SIGTERM stops the pager with
 * exit 0 and a log line, a missing memory file exits 1 with one.
 *
 * Usage: test-pager REHOME [--hugetlb] [--agent REHOME_AGENT]
 * Exits 77 (skip) when userfaultfd is not available to this user, or for
 * --hugetlb when no 2 MiB huge pages can be mapped.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rehome/mailbox.h"
#include "rehome/patch.h"
#include "rehome/request.h"

#define MiB ((uint64_t)1 << 20)
#define PAGE ((uint64_t)4096)
#define MAILBOX_GPA 0x4100000ull
#define N_THREADS 4

static const char *rehome;
static bool hugetlb;
static uint64_t page_size = PAGE;
/* gpa layout: two regions back to back in the file. */
static uint64_t reg_gpa[2] = { 0, 64 * MiB };
static uint64_t reg_size[2] = { 48 * MiB, 16 * MiB };
static uint64_t mem_size;
static uint64_t mailbox_off;
static char dir[64], mem_path[128], sock_path[128], ctl_path[128], ws_path[128], log_path[128], layout_spec[128];
static const uint8_t *file_map; /* the memory file, read-only */
static pid_t pager_pid = -1;
static const char *agent_bin;            /* --agent: the overlay-applies subtest */
static pid_t agent_pid = -1;
static char ns_guest[32], ns_host[32];   /* that subtest's network namespaces */
static int failures;
static const uint8_t token[RH_TOKEN_LEN] = { 0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe,
                                             0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };
static const char *token_hex = "1032547698badcfe0123456789abcdef";

#define CHECK(cond, ...)                                                                                     \
        do {                                                                                                 \
                if (!(cond)) {                                                                               \
                        fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                      \
                        fprintf(stderr, __VA_ARGS__);                                                        \
                        fputc('\n', stderr);                                                                 \
                        failures++;                                                                          \
                }                                                                                            \
        } while (0)

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "test-pager: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, ": %s\n", strerror(errno));
        exit(1);
}

static void cleanup(void)
{
        char cmd[256];

        if (pager_pid > 0) {
                kill(pager_pid, SIGKILL);
                waitpid(pager_pid, NULL, 0);
                pager_pid = -1;
        }
        if (agent_pid > 0) {
                kill(agent_pid, SIGKILL);
                waitpid(agent_pid, NULL, 0);
                agent_pid = -1;
        }
        for (int i = 0; i < 2; i++) {
                const char *ns = i ? ns_host : ns_guest;
                if (ns[0]) {
                        snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null", ns);
                        (void)!system(cmd);
                }
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

static uint64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The template's content: a different pseudo-random word at every 8 bytes. */
static uint64_t word_at(uint64_t off)
{
        uint64_t z = off + 0x9e3779b97f4a7c15ull;

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
}

static void fill_template_page(uint8_t *buf, uint64_t off)
{
        if (off == mailbox_off) {
                struct rh_arm arm = { .arm_generation = 1, .agent_version = 0x000100, .gpa = MAILBOX_GPA,
                                      .caps = RH_CAP_SIGNAL_POLL | RH_CAP_UDP_ACK };
                memcpy(arm.token, token, RH_TOKEN_LEN);
                memset(buf, 0, PAGE);
                rh_mailbox_arm_write(buf, &arm);
                return;
        }
        for (unsigned i = 0; i < PAGE / 8; i++) {
                uint64_t w = word_at(off + i * 8);
                memcpy(buf + i * 8, &w, 8);
        }
}

static void make_memory_file(void)
{
        static uint8_t chunk[1 << 20];
        int fd = open(mem_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        if (fd < 0)
                die("%s", mem_path);
        for (uint64_t off = 0; off < mem_size; off += sizeof(chunk)) {
                for (uint64_t p = 0; p < sizeof(chunk); p += PAGE)
                        fill_template_page(chunk + p, off + p);
                if (pwrite(fd, chunk, sizeof(chunk), (off_t)off) != (ssize_t)sizeof(chunk))
                        die("write %s", mem_path);
        }
        close(fd);
        fd = open(mem_path, O_RDONLY | O_CLOEXEC);
        file_map = mmap(NULL, mem_size, PROT_READ, MAP_SHARED, fd, 0);
        if (file_map == MAP_FAILED)
                die("mmap %s", mem_path);
        close(fd);
}

static bool file_unchanged(void)
{
        uint8_t buf[PAGE];

        for (uint64_t off = 0; off < mem_size; off += PAGE) {
                fill_template_page(buf, off);
                if (memcmp(buf, file_map + off, PAGE) != 0) {
                        fprintf(stderr, "memory file differs at offset 0x%" PRIx64 "\n", off);
                        return false;
                }
        }
        return true;
}

/* ------------------------------------------------------------------ */
/* The pager process                                                   */

/* @cache_max: --cache-max's value, or NULL. */
static pid_t start_pager(const char *mem, bool with_ws, const char *cache_max)
{
        pid_t pid = fork();

        if (pid < 0)
                die("fork");
        if (pid == 0) {
                int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
                const char *argv[20];
                int n = 0;
                if (fd < 0 || dup2(fd, 2) < 0)
                        _exit(127);
                argv[n++] = rehome;
                argv[n++] = "pager";
                argv[n++] = "--socket";
                argv[n++] = sock_path;
                argv[n++] = "--mem-file";
                argv[n++] = mem;
                argv[n++] = "--layout";
                argv[n++] = layout_spec;
                argv[n++] = "--control";
                argv[n++] = ctl_path;
                argv[n++] = "--handshake-timeout";
                argv[n++] = "3000";
                if (with_ws) {
                        argv[n++] = "--working-set";
                        argv[n++] = ws_path;
                }
                if (cache_max) {
                        argv[n++] = "--cache-max";
                        argv[n++] = cache_max;
                }
                argv[n] = NULL;
                execv(rehome, (char **)argv);
                _exit(127);
        }
        return pid;
}

static void wait_for_path(const char *path, pid_t pid)
{
        uint64_t t0 = now_ms();

        while (access(path, F_OK) != 0) {
                if (waitpid(pid, NULL, WNOHANG) == pid) {
                        char cmd[256];
                        snprintf(cmd, sizeof(cmd), "cat '%s' >&2", log_path);
                        fprintf(stderr, "test-pager: the pager exited; its log:\n");
                        (void)!system(cmd);
                        exit(1);
                }
                if (now_ms() - t0 > 10000) {
                        errno = ETIMEDOUT;
                        die("waiting for %s", path);
                }
                usleep(10000);
        }
}

/* Run a command, return its stdout (malloc'd) and exit status. */
static char *run_capture(int *ret_status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static char *run_capture(int *ret_status, const char *fmt, ...)
{
        char cmd[2048];
        size_t cap = 1 << 16, len = 0;
        char *out = malloc(cap);
        va_list ap;
        FILE *f;
        int st;

        va_start(ap, fmt);
        vsnprintf(cmd, sizeof(cmd), fmt, ap);
        va_end(ap);
        f = popen(cmd, "r");
        if (!f || !out)
                die("popen %s", cmd);
        len = fread(out, 1, cap - 1, f);
        out[len] = '\0';
        st = pclose(f);
        *ret_status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        return out;
}

static json_t *pager_stats(void)
{
        int st;
        char *out = run_capture(&st, "'%s' --json pager stats --control '%s'", rehome, ctl_path);
        json_t *j = json_loads(out, 0, NULL);

        if (st != 0 || !j)
                fprintf(stderr, "stats failed (%d): %s\n", st, out);
        free(out);
        return j;
}

static uint64_t stat_u64(json_t *j, const char *key)
{
        return (uint64_t)json_integer_value(json_object_get(j, key));
}

/* Count lines of the pager log containing @needle. */
static int log_count(const char *needle)
{
        char line[2048];
        int n = 0;
        FILE *f = fopen(log_path, "re");

        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (strstr(line, needle))
                        n++;
        fclose(f);
        return n;
}

/* ------------------------------------------------------------------ */
/* Requests and overlays                                               */

struct overlay_req {
        char sock[128];
        char json_path[128];
        struct rh_request req;
        uint8_t expect[PAGE]; /* the page the client must see */
};

/* Write the request JSON for client @i, add it to the pager, compute the page it must be served. */
static void add_client(struct overlay_req *o, int i)
{
        char text[1024];
        struct rh_error err = {};
        uint8_t tmpl[PAGE];
        uint32_t seq = 0;
        json_t *reply;
        char *out;
        FILE *f;
        int st, r;

        snprintf(o->sock, sizeof(o->sock), "%s/clone-%d.sock", dir, i);
        snprintf(o->json_path, sizeof(o->json_path), "%s/clone-%d.json", dir, i);
        snprintf(text, sizeof(text),
                 "{\"interfaces\":[{\"name\":\"eth0\",\"mac\":\"02:00:00:00:01:%02x\"}],"
                 "\"addresses\":[{\"address\":\"10.0.0.%d/24\"}],"
                 "\"routes\":[{\"gateway\":\"10.0.0.1\"}],\"hostname\":\"clone-%d\","
                 "\"ack\":\"10.0.0.1:5555\",\"seq\":%d,\"nonce\":\"0x%x\"}",
                 i, 10 + i, i, 7 + i, 0xc0ffee00 + i);
        f = fopen(o->json_path, "we");
        if (!f || fputs(text, f) < 0 || fclose(f) != 0)
                die("%s", o->json_path);
        r = rh_request_from_json(text, strlen(text), &o->req, &err);
        if (r < 0) {
                fprintf(stderr, "request: %s\n", err.msg);
                exit(1);
        }
        fill_template_page(tmpl, mailbox_off);
        r = rh_mailbox_patch_overlay(tmpl, MAILBOX_GPA, token, &o->req, o->expect, &seq, &err);
        if (r < 0) {
                fprintf(stderr, "overlay: %s\n", err.msg);
                exit(1);
        }
        out = run_capture(&st, "'%s' --json pager add-client --control '%s' --socket '%s' --gpa 0x%llx --token %s "
                               "--request '%s'",
                          rehome, ctl_path, o->sock, (unsigned long long)MAILBOX_GPA, token_hex, o->json_path);
        reply = json_loads(out, 0, NULL);
        CHECK(st == 0 && reply, "add-client %d: exit %d: %s", i, st, out);
        if (reply) {
                char nonce[32];
                snprintf(nonce, sizeof(nonce), "%016x", 0xc0ffee00 + i);
                CHECK(json_integer_value(json_object_get(reply, "seq")) == 7 + i, "seq in %s", out);
                CHECK(seq == (uint32_t)(7 + i), "expected seq %u", seq);
                CHECK(strcmp(json_string_value(json_object_get(reply, "nonce")) ?: "", nonce) == 0, "nonce in %s", out);
                CHECK(strcmp(json_string_value(json_object_get(reply, "file_offset")) ?: "", "0x3100000") == 0,
                      "file offset in %s", out);
        }
        json_decref(reply);
        free(out);
}

/* ------------------------------------------------------------------ */
/* Firecracker's side                                                  */

enum fields { FIELDS_V1_12, FIELDS_V1_7, FIELDS_V1_1 };

struct fc {
        int sock, uffd;
        uint8_t *mem[2];
        const uint8_t *mailbox_expect; /* what the mailbox page must hold */
        int faults_seen_by_threads;
};

static int new_uffd(void)
{
        struct uffdio_api api = { .api = UFFD_API, .features = UFFD_FEATURE_EVENT_REMOVE };
        int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

        if (fd < 0)
                return -errno;
        if (hugetlb)
                api.features |= UFFD_FEATURE_MISSING_HUGETLBFS;
        if (ioctl(fd, UFFDIO_API, &api) < 0) {
                int e = errno;
                close(fd);
                return -e;
        }
        return fd;
}

static int connect_to(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                die("connect %s", path);
        return fd;
}

static int send_with_fds(int sock, const char *text, size_t len, const int *fds, int n_fds)
{
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(2 * sizeof(int))];
        } cm = {};
        struct iovec iov = { (void *)text, len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

        if (n_fds > 0) {
                mh.msg_control = &cm;
                mh.msg_controllen = CMSG_SPACE((size_t)n_fds * sizeof(int));
                struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
                h->cmsg_level = SOL_SOCKET;
                h->cmsg_type = SCM_RIGHTS;
                h->cmsg_len = CMSG_LEN((size_t)n_fds * sizeof(int));
                memcpy(CMSG_DATA(h), fds, (size_t)n_fds * sizeof(int));
        }
        return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -errno;
}

/* The region list as Firecracker's serde_json writes it: compact, fields in declaration order. */
static void handshake_json(const struct fc *c, enum fields fields, char *buf, size_t cap)
{
        size_t n = 0;
        uint64_t off = 0;

        n += (size_t)snprintf(buf + n, cap - n, "[");
        for (int i = 0; i < 2; i++) {
                n += (size_t)snprintf(buf + n, cap - n, "%s{\"base_host_virt_addr\":%" PRIu64 ",\"size\":%" PRIu64
                                      ",\"offset\":%" PRIu64, i ? "," : "", (uint64_t)(uintptr_t)c->mem[i], reg_size[i], off);
                if (fields == FIELDS_V1_12)
                        n += (size_t)snprintf(buf + n, cap - n, ",\"page_size\":%" PRIu64 ",\"page_size_kib\":%" PRIu64 "}",
                                              page_size, page_size);
                else if (fields == FIELDS_V1_7)
                        n += (size_t)snprintf(buf + n, cap - n, ",\"page_size_kib\":%" PRIu64 "}", page_size);
                else
                        n += (size_t)snprintf(buf + n, cap - n, "}");
                off += reg_size[i];
        }
        snprintf(buf + n, cap - n, "]");
}

/* Restore one "Firecracker": map, register, connect, send the handshake. */
static void fc_start(struct fc *c, const char *path, enum fields fields)
{
        char json[1024];
        int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | (hugetlb ? MAP_HUGETLB : 0);

        memset(c, 0, sizeof(*c));
        c->uffd = new_uffd();
        if (c->uffd < 0) {
                errno = -c->uffd;
                die("userfaultfd");
        }
        for (int i = 0; i < 2; i++) {
                struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
                c->mem[i] = mmap(NULL, reg_size[i], PROT_READ | PROT_WRITE, flags, -1, 0);
                if (c->mem[i] == MAP_FAILED)
                        die("mmap guest region %d", i);
                reg.range.start = (uint64_t)(uintptr_t)c->mem[i];
                reg.range.len = reg_size[i];
                if (ioctl(c->uffd, UFFDIO_REGISTER, &reg) < 0)
                        die("UFFDIO_REGISTER");
        }
        c->sock = connect_to(path);
        handshake_json(c, fields, json, sizeof(json));
        if (send_with_fds(c->sock, json, strlen(json), &c->uffd, 1) < 0)
                die("sendmsg");
        /* Firecracker v1.12+ keeps the socket open (it forgets the fd): so do we. */
}

static void fc_stop(struct fc *c)
{
        for (int i = 0; i < 2; i++)
                munmap(c->mem[i], reg_size[i]);
        close(c->uffd);
        close(c->sock);
}

static uint8_t *hva_of_offset(const struct fc *c, uint64_t off)
{
        return off < reg_size[0] ? c->mem[0] + off : c->mem[1] + (off - reg_size[0]);
}

struct toucher {
        struct fc *c;
        int index;
        int bad_pages;
};

/* Thread @index reads every N_THREADS-th page, in a scattered order, and compares it. */
static void *touch_thread(void *arg)
{
        struct toucher *t = arg;
        uint64_t n_pages = mem_size / PAGE;

        for (uint64_t k = 0; k < n_pages; k++) {
                uint64_t pg = (k * 7919) % n_pages; /* 7919 is prime: a permutation */
                const uint8_t *got, *want;
                if (pg % N_THREADS != (uint64_t)t->index)
                        continue;
                got = hva_of_offset(t->c, pg * PAGE);
                want = pg * PAGE == mailbox_off ? t->c->mailbox_expect : file_map + pg * PAGE;
                if (memcmp(got, want, PAGE) != 0) {
                        if (t->bad_pages++ < 3)
                                fprintf(stderr, "page at file offset 0x%" PRIx64 " differs\n", pg * PAGE);
                }
        }
        return NULL;
}

static int touch_all(struct fc *c)
{
        pthread_t th[N_THREADS];
        struct toucher t[N_THREADS];
        int bad = 0;

        for (int i = 0; i < N_THREADS; i++) {
                t[i] = (struct toucher){ c, i, 0 };
                pthread_create(&th[i], NULL, touch_thread, &t[i]);
        }
        for (int i = 0; i < N_THREADS; i++) {
                pthread_join(th[i], NULL);
                bad += t[i].bad_pages;
        }
        return bad;
}

static void *touch_all_thread(void *arg)
{
        struct fc *c = arg;

        c->faults_seen_by_threads = touch_all(c);
        return NULL;
}

/* After a handshake the pager closes a bad connection: recv sees EOF within 3 s. */
static bool closed_by_pager(int sock)
{
        struct pollfd pfd = { .fd = sock, .events = POLLIN };
        char b;

        if (poll(&pfd, 1, 3000) <= 0)
                return false;
        return recv(sock, &b, 1, MSG_DONTWAIT) == 0;
}

static bool all_zero(const uint8_t *p, size_t len)
{
        for (size_t i = 0; i < len; i++)
                if (p[i])
                        return false;
        return true;
}

/* ------------------------------------------------------------------ */
/* Scenarios                                                           */

static void test_bad_handshakes(void)
{
        struct fc good;
        char json[1024];
        int before = log_count("bad handshake");
        struct {
                const char *name;
                const char *text; /* NULL: a valid handshake (altered as named) */
                int n_fds;
        } cases[] = {
                { "not JSON", "this is not JSON", 1 },
                { "no fd", NULL, 0 },
                { "two fds", NULL, 2 },
                { "size mismatch", "[{\"base_host_virt_addr\":1048576,\"size\":4096,\"offset\":0,\"page_size\":4096,\"page_size_kib\":4096}]", 1 },
                { "page size 3000", "[{\"base_host_virt_addr\":1048576,\"size\":67108864,\"offset\":0,\"page_size\":3000,\"page_size_kib\":3000}]", 1 },
                { "offset not running sum", "[{\"base_host_virt_addr\":1048576,\"size\":33554432,\"offset\":0,\"page_size\":4096,\"page_size_kib\":4096},"
                                            "{\"base_host_virt_addr\":536870912,\"size\":33554432,\"offset\":4096,\"page_size\":4096,\"page_size_kib\":4096}]", 1 },
                { "empty array", "[]", 1 },
        };

        /* A good client attached meanwhile must keep being served. */
        fc_start(&good, sock_path, FIELDS_V1_12);
        good.mailbox_expect = file_map + mailbox_off;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                int sock = connect_to(sock_path);
                int fds[2] = { new_uffd(), -1 };
                const char *text = cases[i].text;
                if (!text) {
                        handshake_json(&good, FIELDS_V1_12, json, sizeof(json));
                        text = json;
                }
                if (cases[i].n_fds == 2)
                        fds[1] = new_uffd();
                CHECK(send_with_fds(sock, text, strlen(text), fds, cases[i].n_fds) == 0, "send %s", cases[i].name);
                CHECK(closed_by_pager(sock), "bad handshake '%s' did not close the connection", cases[i].name);
                close(sock);
                close(fds[0]);
                if (fds[1] >= 0)
                        close(fds[1]);
        }
        CHECK(kill(pager_pid, 0) == 0, "the pager died");
        CHECK(touch_all(&good) == 0, "the good client was not served after the bad handshakes");
        CHECK(log_count("bad handshake") - before == (int)(sizeof(cases) / sizeof(cases[0])),
              "one log line per bad handshake: %d", log_count("bad handshake") - before);
        fc_stop(&good);
        printf("ok - bad handshakes close only their connection (%zu cases), one log line each\n",
               sizeof(cases) / sizeof(cases[0]));
}

static void test_remove(struct fc *c)
{
        /* 1 MiB (or one huge page) already read, and the same next to it never touched. */
        uint64_t len = hugetlb ? page_size : MiB;
        uint8_t *touched = c->mem[0] + 4 * len, *fresh;
        uint64_t t_off = 4 * len;

        CHECK(memcmp(touched, file_map + t_off, len) == 0, "before DONTNEED");
        CHECK(madvise(touched, 2 * len, MADV_DONTNEED) == 0, "madvise: %s", strerror(errno));
        fresh = touched + len;
        CHECK(all_zero(touched, len), "a removed range that had been read does not read as zeros");
        CHECK(all_zero(fresh, len), "a removed range never read does not read as zeros");
        CHECK(memcmp(touched + 2 * len, file_map + t_off + 2 * len, PAGE) == 0, "the page after the removed range changed");
        CHECK(memcmp(touched - PAGE, file_map + t_off - PAGE, PAGE) == 0, "the page before the removed range changed");
        printf("ok - MADV_DONTNEED of 0x%" PRIx64 " bytes reads back as zeros, neighbours intact\n", 2 * len);
}

static bool wait_resident(const struct fc *c, const uint64_t *offs, size_t n)
{
        uint64_t t0 = now_ms();

        while (now_ms() - t0 < 10000) {
                size_t ok = 0;
                for (size_t i = 0; i < n; i++) {
                        uint8_t *a = hva_of_offset(c, offs[i] & ~(page_size - 1));
                        unsigned char v;
                        if (mincore(a, PAGE, &v) == 0 && (v & 1))
                                ok++;
                }
                if (ok == n)
                        return true;
                usleep(5000);
        }
        return false;
}

static void test_prefetch_and_overlay(uint64_t *ws, size_t n_ws)
{
        struct overlay_req o;
        struct fc c;
        json_t *st, *cl;
        unsigned char v;
        uint64_t pages = mem_size / page_size, ws_pages = 0, last = UINT64_MAX;

        for (size_t i = 0; i < n_ws; i++)
                if ((ws[i] & ~(page_size - 1)) != last) {
                        ws_pages++;
                        last = ws[i] & ~(page_size - 1);
                }
        add_client(&o, 1);
        fc_start(&c, o.sock, FIELDS_V1_12);
        c.mailbox_expect = o.expect;
        CHECK(wait_resident(&c, ws, n_ws), "the working set was not prefetched within 10 s");
        CHECK(mincore(hva_of_offset(&c, 40 * MiB), PAGE, &v) == 0 && !(v & 1), "a page outside the working set is present");
        CHECK(memcmp(hva_of_offset(&c, mailbox_off), o.expect, PAGE) == 0, "prefetched mailbox page is not the overlay");
        CHECK(touch_all(&c) == 0, "client with overlay: pages differ");
        st = pager_stats();
        cl = st ? json_array_get(json_object_get(st, "clients"), 0) : NULL;
        CHECK(cl && stat_u64(cl, "prefetch_pages") == ws_pages, "prefetch_pages %" PRIu64 ", want %" PRIu64,
              cl ? stat_u64(cl, "prefetch_pages") : 0, ws_pages);
        CHECK(cl && stat_u64(cl, "faults") == pages - ws_pages, "faults %" PRIu64 ", want exactly the %" PRIu64
              " pages outside the working set", cl ? stat_u64(cl, "faults") : 0, pages - ws_pages);
        CHECK(cl && json_is_true(json_object_get(cl, "overlay")), "client has no overlay in stats");
        CHECK(st && stat_u64(st, "cache_bytes") == mem_size, "cache_bytes %" PRIu64, st ? stat_u64(st, "cache_bytes") : 0);
        printf("ok - v1.12 client with overlay: working set (%" PRIu64 " pages) present before any touch, %" PRIu64
               " faults for the rest, every byte matches, mailbox = patched page\n", ws_pages,
               cl ? stat_u64(cl, "faults") : 0);
        json_decref(st);
        test_remove(&c);
        fc_stop(&c);
}

static void test_concurrent_clients(void)
{
        struct overlay_req o[2];
        struct fc c[3];
        pthread_t th[3];
        enum fields f[3] = { FIELDS_V1_7, FIELDS_V1_1, FIELDS_V1_12 };
        const char *names[3] = { "v1.7 + overlay", "v1.1 + overlay", "v1.12 plain socket" };

        if (hugetlb) /* v1.1 implies the host page size; hugetlb needs page_size */
                f[1] = FIELDS_V1_12, f[0] = FIELDS_V1_12;
        add_client(&o[0], 2);
        add_client(&o[1], 3);
        CHECK(memcmp(o[0].expect, o[1].expect, PAGE) != 0, "two requests give the same page");
        fc_start(&c[0], o[0].sock, f[0]);
        c[0].mailbox_expect = o[0].expect;
        fc_start(&c[1], o[1].sock, f[1]);
        c[1].mailbox_expect = o[1].expect;
        fc_start(&c[2], sock_path, f[2]);
        c[2].mailbox_expect = file_map + mailbox_off; /* no overlay: the template's page */
        for (int i = 0; i < 3; i++)
                pthread_create(&th[i], NULL, touch_all_thread, &c[i]);
        for (int i = 0; i < 3; i++) {
                pthread_join(th[i], NULL);
                CHECK(c[i].faults_seen_by_threads == 0, "client %s: %d pages differ", names[i], c[i].faults_seen_by_threads);
        }
        /* Each sees its own mailbox, none another's. */
        for (int i = 0; i < 3; i++)
                for (int j = 0; j < 2; j++)
                        CHECK((memcmp(hva_of_offset(&c[i], mailbox_off), o[j].expect, PAGE) == 0) == (i == j),
                              "client %s and overlay %d", names[i], j);
        printf("ok - 3 clients at once (%s, %s, %s): every byte matches, each sees only its own mailbox\n",
               names[0], names[1], names[2]);
        for (int i = 0; i < 3; i++)
                fc_stop(&c[i]);
}

static void test_client_death(void)
{
        json_t *st;
        uint64_t t0, before, now_clients = 99;
        pid_t pid;
        int status;

        st = pager_stats();
        before = st ? stat_u64(st, "clients_now") : 0;
        json_decref(st);
        pid = fork();
        if (pid == 0) {
                struct fc c;
                fc_start(&c, sock_path, FIELDS_V1_12);
                /* Touch a little, then die without closing anything. */
                for (int i = 0; i < 64; i++)
                        (void)*(volatile uint8_t *)(c.mem[0] + (uint64_t)i * page_size * 3);
                _exit(0);
        }
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "client child failed");
        for (t0 = now_ms(); now_ms() - t0 < 5000; usleep(20000)) {
                st = pager_stats();
                now_clients = st ? stat_u64(st, "clients_now") : 99;
                json_decref(st);
                if (now_clients == before)
                        break;
        }
        CHECK(now_clients == before, "a dead client was not freed: %" PRIu64 " clients, %" PRIu64 " before", now_clients,
              before);
        CHECK(log_count("gone (") > 0, "no log line for the dead client");
        printf("ok - a client process that exits is freed (clients back to %" PRIu64 ")\n", before);
}

static void test_stop_and_fatal(void)
{
        int status;
        char missing[160];
        pid_t pid;

        kill(pager_pid, SIGTERM);
        waitpid(pager_pid, &status, 0);
        pager_pid = -1;
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "SIGTERM: status 0x%x", status);
        CHECK(log_count("stopping on SIGTERM") == 1, "no stop line in the log");
        CHECK(access(sock_path, F_OK) != 0, "socket left behind");
        snprintf(missing, sizeof(missing), "%s/no-such-file", dir);
        pid = start_pager(missing, false, NULL);
        waitpid(pid, &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1, "missing memory file: status 0x%x", status);
        CHECK(log_count("fatal: ") == 1, "no fatal line in the log");
        printf("ok - SIGTERM: exit 0 and a log line; a missing memory file: exit 1 and a 'fatal:' line\n");
}

/*
 * --cache-max: a pager bounded to 8 MiB serves a client all 64 MiB of a
 * memory file on disk (not tmpfs, whose pages cannot be dropped): every byte
 * is right, chunks were dropped, and the file's pages in the page cache
 * (mincore) stay within the bound plus one chunk.
 */
static void test_cache_bound(void)
{
        static uint8_t chunk[1 << 20];
        char path[] = "/var/tmp/rehome-pager-cache.XXXXXX";
        uint8_t want[PAGE];
        json_t *st;
        struct fc c;
        int fd = mkstemp(path), bad = 0;

        if (fd < 0)
                die("mkstemp %s", path);
        for (uint64_t off = 0; off < mem_size; off += sizeof(chunk))
                if (pwrite(fd, file_map + off, sizeof(chunk), (off_t)off) != (ssize_t)sizeof(chunk))
                        die("write %s", path);
        /* Clean and out of the page cache: the pager reads it from disk. */
        if (fsync(fd) < 0 || posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0)
                die("fsync/fadvise %s", path);
        close(fd);
        unlink(sock_path);
        unlink(ctl_path);
        pager_pid = start_pager(path, false, "8M");
        wait_for_path(ctl_path, pager_pid);
        fc_start(&c, sock_path, FIELDS_V1_12);
        for (uint64_t off = 0; off < mem_size; off += PAGE) {
                fill_template_page(want, off);
                if (memcmp(hva_of_offset(&c, off), want, PAGE) != 0 && bad++ < 3)
                        fprintf(stderr, "bounded cache: page at 0x%" PRIx64 " differs\n", off);
        }
        CHECK(bad == 0, "bounded cache: %d pages differ", bad);
        st = pager_stats();
        CHECK(st && stat_u64(st, "cache_max_bytes") == 8 * MiB, "cache_max_bytes");
        CHECK(st && stat_u64(st, "evictions") > 0 && stat_u64(st, "evicted_bytes") >= mem_size - 8 * MiB,
              "evictions %" PRIu64 ", evicted %" PRIu64 " bytes", st ? stat_u64(st, "evictions") : 0,
              st ? stat_u64(st, "evicted_bytes") : 0);
        CHECK(st && stat_u64(st, "cached_bytes") <= 8 * MiB, "cached_bytes %" PRIu64, st ? stat_u64(st, "cached_bytes") : 0);
        CHECK(st && stat_u64(st, "resident_bytes") <= 10 * MiB, "resident_bytes %" PRIu64 " over 8 MiB + one chunk",
              st ? stat_u64(st, "resident_bytes") : 0);
        printf("%s - --cache-max 8M: 64 MiB served right from disk, %" PRIu64 " chunks dropped, %" PRIu64
               " KiB cached, %" PRIu64 " KiB resident (mincore)\n", failures ? "not ok" : "ok",
               st ? stat_u64(st, "evictions") : 0, st ? stat_u64(st, "cached_bytes") >> 10 : 0,
               st ? stat_u64(st, "resident_bytes") >> 10 : 0);
        json_decref(st);
        fc_stop(&c);
        kill(pager_pid, SIGTERM);
        waitpid(pager_pid, NULL, 0);
        pager_pid = -1;
        unlink(path);
}

/* ------------------------------------------------------------------ */
/* The overlay is a request the agent really applies                   */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int sh(const char *fmt, ...)
{
        char cmd[1024];
        va_list ap;
        int st;

        va_start(ap, fmt);
        vsnprintf(cmd, sizeof(cmd), fmt, ap);
        va_end(ap);
        st = system(cmd);
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int open_netns(const char *name)
{
        char path[64];
        int fd;

        snprintf(path, sizeof(path), "/run/netns/%s", name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                die("open %s", path);
        return fd;
}

/* rehome-agent on a file page in a namespace of its own ("the guest"), armed at MAILBOX_GPA. */
static void start_agent(const char *page_path, const char *out_path)
{
        char run_dir[160], resolv[160], hostname[160];
        int ns = open_netns(ns_guest);

        snprintf(run_dir, sizeof(run_dir), "%s/agent-run", dir);
        snprintf(resolv, sizeof(resolv), "%s/resolv.conf", dir);
        snprintf(hostname, sizeof(hostname), "%s/hostname", dir);
        agent_pid = fork();
        if (agent_pid < 0)
                die("fork");
        if (agent_pid == 0) {
                const char *argv[] = { agent_bin, "--mailbox-file", page_path, "--mailbox-gpa", "0x4100000",
                                       "--run-dir", run_dir, "--resolv-conf", resolv, "--hostname-file", hostname,
                                       "--machine-id-file", "", "--hooks-dir", "", "--signal", "poll",
                                       "--poll-interval-ms", "5", "--once", "-v", NULL };
                int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (out < 0 || setns(ns, CLONE_NEWNET) < 0 || unshare(CLONE_NEWUTS) < 0)
                        _exit(126);
                (void)!sethostname("template", 8);
                dup2(out, 1);
                dup2(out, 2);
                execv(agent_bin, (char **)argv);
                _exit(127);
        }
        close(ns);
}

/* The token of the agent's "armed" line, as 32 hex digits. */
static bool wait_armed_token(const char *out_path, char token_out[2 * RH_TOKEN_LEN + 1])
{
        uint64_t t0 = now_ms();

        while (now_ms() - t0 < 10000) {
                char line[512];
                FILE *f = fopen(out_path, "re");
                while (f && fgets(line, sizeof(line), f)) {
                        const char *t = strstr(line, "rehome-agent: armed gpa=0x4100000 token=");
                        if (t && sscanf(t + strlen("rehome-agent: armed gpa=0x4100000 token="), "%32[0-9a-f]",
                                        token_out) == 1) {
                                fclose(f);
                                return true;
                        }
                }
                if (f)
                        fclose(f);
                if (waitpid(agent_pid, NULL, WNOHANG) == agent_pid) {
                        agent_pid = -1;
                        return false;
                }
                usleep(10000);
        }
        return false;
}

/* One UDP line from the agent within 20 s (TCG-free, but the agent polls). */
static bool recv_line(int fd, char *buf, size_t cap)
{
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        ssize_t n;

        if (poll(&pfd, 1, 20000) <= 0)
                return false;
        n = recv(fd, buf, cap - 1, 0);
        if (n <= 0)
                return false;
        buf[n] = '\0';
        return true;
}

/*
 * A template whose mailbox page is the one rehome-agent armed; the pager
 * serves a client the overlay built from it; the page as the client received
 * it is written into the agent's page, and the agent applies that request
 * in its namespace and acks to the "host" namespace.
 */
static void test_agent_applies_overlay(void)
{
        static uint8_t chunk[1 << 20];
        char page_path[160], out_path[160], mem2[160], json_path[160], tok[2 * RH_TOKEN_LEN + 1] = "";
        char sock2[160], line[512], *out;
        uint8_t page[PAGE];
        struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(5555) };
        struct rh_ack ack = {};
        struct rh_error err = {};
        int self, host, udp, fd, st;
        struct fc c;
        FILE *f;

        if (geteuid() != 0) {
                printf("# the agent-applies-overlay part needs root (network namespaces): not run\n");
                return;
        }
        snprintf(ns_guest, sizeof(ns_guest), "rhpg-g-%d", (int)getpid());
        snprintf(ns_host, sizeof(ns_host), "rhpg-h-%d", (int)getpid());
        if (sh("ip netns add %s && ip netns add %s && "
               "ip -n %s link add eth0 address 02:00:00:00:00:a0 type veth peer name peer0 netns %s && "
               "ip -n %s link set lo up && ip -n %s link set eth0 up && ip -n %s addr add 10.0.0.2/24 dev eth0 && "
               "ip -n %s link set peer0 up && ip -n %s addr add 10.0.0.1/24 dev peer0",
               ns_guest, ns_host, ns_guest, ns_host, ns_guest, ns_guest, ns_guest, ns_host, ns_host) != 0)
                die("network namespaces");
        self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        host = open_netns(ns_host);
        if (self < 0 || setns(host, CLONE_NEWNET) < 0)
                die("enter %s", ns_host);
        udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (udp < 0 || bind(udp, (struct sockaddr *)&sin, sizeof(sin)) < 0)
                die("udp :5555 in %s", ns_host);
        if (setns(self, CLONE_NEWNET) < 0)
                die("back to our namespace");
        close(self);
        close(host);

        snprintf(page_path, sizeof(page_path), "%s/agent-page", dir);
        snprintf(out_path, sizeof(out_path), "%s/agent.out", dir);
        start_agent(page_path, out_path);
        if (!wait_armed_token(out_path, tok)) {
                (void)!sh("cat '%s' >&2", out_path);
                die("the agent did not arm");
        }

        /* The template: the same memory file with the agent's armed page at the mailbox. */
        fd = open(page_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || pread(fd, page, PAGE, 0) != (ssize_t)PAGE)
                die("read %s", page_path);
        close(fd);
        snprintf(mem2, sizeof(mem2), "%s/mem-agent", dir);
        fd = open(mem2, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                die("%s", mem2);
        for (uint64_t off = 0; off < mem_size; off += sizeof(chunk)) {
                memcpy(chunk, file_map + off, sizeof(chunk));
                if (mailbox_off >= off && mailbox_off < off + sizeof(chunk))
                        memcpy(chunk + (mailbox_off - off), page, PAGE);
                if (pwrite(fd, chunk, sizeof(chunk), (off_t)off) != (ssize_t)sizeof(chunk))
                        die("write %s", mem2);
        }
        close(fd);

        unlink(sock_path);
        unlink(ctl_path);
        pager_pid = start_pager(mem2, false, NULL);
        wait_for_path(ctl_path, pager_pid);
        snprintf(json_path, sizeof(json_path), "%s/agent-request.json", dir);
        snprintf(sock2, sizeof(sock2), "%s/agent-clone.sock", dir);
        f = fopen(json_path, "we");
        if (!f || fputs("{\"interfaces\":[{\"name\":\"eth0\",\"mac\":\"02:00:00:00:01:77\"}],"
                        "\"addresses\":[{\"address\":\"10.0.0.77/24\"}],\"routes\":[{\"gateway\":\"10.0.0.1\"}],"
                        "\"hostname\":\"pager-clone\",\"ack\":\"10.0.0.1:5555\",\"nonce\":\"0x5eed5eed\"}",
                        f) < 0 || fclose(f) != 0)
                die("%s", json_path);
        out = run_capture(&st, "'%s' --json pager add-client --control '%s' --socket '%s' --gpa 0x4100000 --token %s "
                               "--request '%s'", rehome, ctl_path, sock2, tok, json_path);
        CHECK(st == 0, "add-client with the agent's token: exit %d: %s", st, out);
        free(out);

        fc_start(&c, sock2, FIELDS_V1_12);
        memcpy(page, hva_of_offset(&c, mailbox_off), PAGE); /* faults it in: served from the overlay */
        {
                struct rh_request got;
                uint32_t seq = 0;
                uint64_t nonce = 0;
                CHECK(rh_mailbox_read_request(page, &got, &seq, &nonce, &err) == 0 && nonce == 0x5eed5eed,
                      "the served mailbox page holds no request with the nonce (%s)", err.msg);
        }
        fd = open(page_path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || pwrite(fd, page, PAGE, 0) != (ssize_t)PAGE)
                die("write the served page into %s", page_path);
        close(fd);

        CHECK(recv_line(udp, line, sizeof(line)) && strstr(line, "stage=applied") &&
                      strstr(line, "nonce=000000005eed5eed"),
              "no applied ack with the request's nonce on UDP: '%s'", line);
        if (agent_pid > 0) {
                waitpid(agent_pid, &st, 0);
                agent_pid = -1;
                CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "--once agent: status 0x%x", st);
        }
        fd = open(page_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || pread(fd, page, PAGE, 0) != (ssize_t)PAGE)
                die("read %s", page_path);
        close(fd);
        CHECK(rh_mailbox_read_ack(page, &ack, &err) == 0 && ack.status == RH_ACK_APPLIED && ack.nonce == 0x5eed5eed,
              "ack record: status %u nonce %" PRIx64 " (%s)", ack.status, ack.nonce, err.msg);
        CHECK(sh("ip -n %s -o addr show dev eth0 | grep -q ' 10.0.0.77/24 '", ns_guest) == 0,
              "the new address is not on eth0");
        CHECK(sh("ip -n %s -o addr show dev eth0 | grep -q ' 10.0.0.2/24 '", ns_guest) != 0,
              "the template address is still on eth0");
        CHECK(sh("ip -n %s link show eth0 | grep -q 'link/ether 02:00:00:00:01:77 '", ns_guest) == 0,
              "eth0 does not have the new MAC");
        CHECK(sh("grep -qx pager-clone '%s/hostname'", dir) == 0, "the host name file was not written");
        printf("%s - rehome-agent applied the overlay page the pager served (new IP, MAC and host name; "
               "applied ack with the request's nonce on UDP and in the page)\n",
               failures ? "not ok" : "ok");
        fc_stop(&c);
        close(udp);
        kill(pager_pid, SIGTERM);
        waitpid(pager_pid, NULL, 0);
        pager_pid = -1;
}

int main(int argc, char **argv)
{
        uint64_t ws[64];
        size_t n_ws = 0;
        int fd;
        FILE *f;

        if (argc < 2) {
                fprintf(stderr, "usage: test-pager REHOME [--hugetlb] [--agent REHOME_AGENT]\n");
                return 2;
        }
        rehome = argv[1];
        for (int i = 2; i < argc; i++) {
                if (strcmp(argv[i], "--hugetlb") == 0)
                        hugetlb = true;
                else if (strcmp(argv[i], "--agent") == 0 && i + 1 < argc)
                        agent_bin = argv[++i];
                else {
                        fprintf(stderr, "test-pager: unknown argument '%s'\n", argv[i]);
                        return 2;
                }
        }
        setvbuf(stdout, NULL, _IOLBF, 0);
        fd = new_uffd();
        if (fd < 0) {
                char v[8] = "?";
                f = fopen("/proc/sys/vm/unprivileged_userfaultfd", "re");
                if (f) {
                        (void)!fgets(v, sizeof(v), f);
                        fclose(f);
                        v[strcspn(v, "\n")] = '\0';
                }
                printf("SKIP: userfaultfd unavailable to uid %d: %s (vm.unprivileged_userfaultfd=%s)\n", (int)getuid(),
                       strerror(-fd), v);
                return 77;
        }
        close(fd);
        if (hugetlb) {
                void *h = mmap(NULL, 2 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
                if (h == MAP_FAILED || ((volatile char *)h)[0] != 0) {
                        printf("SKIP: no 2 MiB huge page can be mapped here (%s; see vm.nr_hugepages)\n", strerror(errno));
                        return 77;
                }
                munmap(h, 2 * MiB);
                page_size = 2 * MiB;
                reg_size[0] = 6 * MiB; /* small: huge pages are scarce */
                reg_size[1] = 4 * MiB;
                reg_gpa[1] = 64 * MiB;
        }
        mem_size = reg_size[0] + reg_size[1];
        mailbox_off = reg_size[0] + (MAILBOX_GPA - reg_gpa[1]);
        snprintf(layout_spec, sizeof(layout_spec), "regions:0x%" PRIx64 ":0x%" PRIx64 ",0x%" PRIx64 ":0x%" PRIx64,
                 reg_gpa[0], reg_size[0], reg_gpa[1], reg_size[1]);

        snprintf(dir, sizeof(dir), "%s/rehome-pager.XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
        if (!mkdtemp(dir))
                die("mkdtemp");
        atexit(cleanup);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        snprintf(mem_path, sizeof(mem_path), "%s/mem", dir);
        snprintf(sock_path, sizeof(sock_path), "%s/pager.sock", dir);
        snprintf(ctl_path, sizeof(ctl_path), "%s/control.sock", dir);
        snprintf(ws_path, sizeof(ws_path), "%s/workingset", dir);
        snprintf(log_path, sizeof(log_path), "%s/pager.log", dir);
        make_memory_file();

        /* A working set: scattered pages of both regions, a run of 16, and the mailbox page. */
        for (uint64_t off = 0; off < mem_size && n_ws < 40; off += mem_size / 41 & ~(PAGE - 1))
                ws[n_ws++] = off;
        for (int i = 0; i < 16; i++)
                ws[n_ws++] = 20 * MiB + 0x1000 * (uint64_t)i + (hugetlb ? 0 : 0x800);
        ws[n_ws++] = mailbox_off;
        for (size_t i = 0; i < n_ws; i++)
                ws[i] &= ~(PAGE - 1);
        /* sort and dedupe (the format wants strictly increasing offsets) */
        for (size_t i = 1; i < n_ws; i++)
                for (size_t j = i; j > 0 && ws[j] < ws[j - 1]; j--) {
                        uint64_t t = ws[j];
                        ws[j] = ws[j - 1];
                        ws[j - 1] = t;
                }
        {
                size_t m = 0;
                for (size_t i = 0; i < n_ws; i++)
                        if (m == 0 || ws[i] != ws[m - 1])
                                ws[m++] = ws[i];
                n_ws = m;
        }
        f = fopen(ws_path, "we");
        if (!f)
                die("%s", ws_path);
        fprintf(f, "rehome-workingset 1 ram_size=%" PRIu64 " pages=%zu\n", mem_size, n_ws);
        for (size_t i = 0; i < n_ws; i++)
                fprintf(f, "%" PRIx64 "\n", ws[i]);
        fclose(f);

        pager_pid = start_pager(mem_path, true, NULL);
        wait_for_path(ctl_path, pager_pid);
        printf("# pager pid %d, memory file %s (%" PRIu64 " MiB, layout %s, page size %" PRIu64 ")\n", (int)pager_pid,
               mem_path, mem_size / MiB, layout_spec, page_size);

        test_prefetch_and_overlay(ws, n_ws);
        test_concurrent_clients();
        test_bad_handshakes();
        test_client_death();
        {
                json_t *st = pager_stats();
                if (st) {
                        char *s = json_dumps(st, JSON_COMPACT);
                        printf("# stats: %s\n", s);
                        free(s);
                }
                json_decref(st);
        }
        test_stop_and_fatal();
        if (!hugetlb)
                test_cache_bound();
        if (agent_bin && !hugetlb)
                test_agent_applies_overlay();
        CHECK(file_unchanged(), "the snapshot file changed");
        printf("%s - the snapshot file is byte-identical after every client\n", failures ? "not ok" : "ok");
        if (failures) {
                char cmd[256];
                snprintf(cmd, sizeof(cmd), "cat '%s' >&2", log_path);
                fprintf(stderr, "test-pager: %d failure(s); the pager's log:\n", failures);
                (void)!system(cmd);
                return 1;
        }
        return 0;
}
