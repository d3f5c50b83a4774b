/* SPDX-License-Identifier: MIT */
/*
 * bench-locate: the cost of finding and patching the mailbox, against the
 * size of guest memory.
 *
 * For a 256 MiB and a 16 GiB (default) sparse memory file laid out as
 * Firecracker x86_64 memory, with an armed mailbox page near the end of
 * guest RAM, it times three ways to locate + patch, side by side:
 *
 *   verified hint   rehome's hot path: open the file, read the one page at
 *                   the recorded gpa, verify magic/CRC/token/gpa, write the
 *                   request (two writes), close. O(1).
 *   page-start scan rehome's fallback: no hint; read guest RAM in 1 MiB
 *                   chunks, test the magic at each 4 KiB boundary, then patch.
 *   full-file scan  the baseline (hypeman's approach): read the whole file
 *                   and search every byte offset for the marker, then
 *                   write the patched page back.
 *
 * Each operation is timed end to end (open to close); the table gives the
 * median and p99 over the runs and the exact I/O per operation. The files
 * are sparse: reading a hole returns zeros without touching a disk (on
 * tmpfs, without even allocating page cache), so both scans here are a
 * lower bound for a real, fully written memory file.
 *
 * usage: bench-locate [--dir DIR] [--big-gib N] [--runs N] [--scan-runs N] [--big-scan-runs N]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io.h"
#include "rehome/patch.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

static const uint8_t token[RH_TOKEN_LEN] = {0x52, 0x48, 0x42, 0x45, 0x4e, 0x43, 0x48, 0x21,
                                            0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80};

struct result {
        const char *method;
        unsigned runs;
        uint64_t median_ns, p99_ns;
        uint64_t bytes_read, reads, writes; /* per operation */
};

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

static void summarize(uint64_t *ns, unsigned n, struct result *res)
{
        qsort(ns, n, sizeof(ns[0]), cmp_u64);
        res->runs = n;
        res->median_ns = ns[n / 2];
        /* p99: the value below which 99 % of the runs fall (nearest rank). */
        unsigned k = (unsigned)((99ull * n + 99) / 100);
        res->p99_ns = ns[(k ? k : 1) - 1];
}

static void make_request(struct rh_request *req)
{
        struct rh_ipaddr ip;
        uint8_t prefix;

        memset(req, 0, sizeof(*req));
        req->nonce = 0xbe7c4;
        req->n_ifaces = 1;
        req->ifaces[0].match = RH_MATCH_NAME;
        strcpy(req->ifaces[0].name, "eth0");
        req->ifaces[0].has_mac = true;
        rh_mac_parse("02:fc:00:00:00:07", req->ifaces[0].mac);
        req->n_addrs = 1;
        rh_ip_parse("172.16.0.7/24", &ip, &prefix);
        req->addrs[0] = (struct rh_addr){.iface = 0, .family = 4, .prefix = prefix};
        memcpy(req->addrs[0].addr, ip.addr, 16);
        req->n_routes = 1;
        rh_ip_parse("172.16.0.1", &ip, NULL);
        req->routes[0] = (struct rh_route){.iface = 0, .family = 4, .has_gateway = true};
        memcpy(req->routes[0].gateway, ip.addr, 16);
}

static int die(const char *what, const struct rh_error *err)
{
        fprintf(stderr, "bench-locate: %s: %s\n", what, err->msg);
        exit(1);
}

/* The memory file: sparse, with one armed mailbox page at @gpa. */
static void make_memfile(const char *path, const struct rh_layout *layout, uint64_t gpa)
{
        uint8_t page[RH_MAILBOX_SIZE] = {};
        struct rh_arm arm = {.abi_major = RH_MAILBOX_ABI_MAJOR,
                             .arm_generation = 1,
                             .gpa = gpa,
                             .caps = RH_CAP_SIGNAL_POLL};
        struct rh_error err = {};
        uint64_t off;
        int fd;

        memcpy(arm.token, token, sizeof(token));
        rh_mailbox_arm_write(page, &arm);
        if (rh_layout_gpa_to_offset(layout, gpa, sizeof(page), &off, &err) < 0)
                die("layout", &err);
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || ftruncate(fd, (off_t)rh_layout_file_size(layout)) < 0 ||
            pwrite_full(fd, page, sizeof(page), (off_t)off) < 0) {
                perror(path);
                exit(1);
        }
        close(fd);
}

/* rehome: open, locate (hint or scan), patch, close. */
static void run_rehome(const char *path, const struct rh_layout *layout, uint64_t hint, unsigned runs,
                       const char *method, struct result *res)
{
        uint64_t *ns = calloc(runs, sizeof(*ns));
        struct rh_request req;
        struct rh_target_stats st = {};

        make_request(&req);
        for (unsigned i = 0; i < runs; i++) {
                struct rh_target *t = NULL;
                struct rh_error err = {};
                uint64_t gpa = 0, t0 = now_ns();

                if (rh_target_open_file(path, layout, true, &t, &err) < 0)
                        die("open", &err);
                if (rh_mailbox_locate(t, hint, token, hint == RH_GPA_NONE, &gpa, &err) < 0)
                        die("locate", &err);
                if (rh_mailbox_patch(t, gpa, token, &req, NULL, &err) < 0)
                        die("patch", &err);
                rh_target_get_stats(t, &st);
                rh_target_free(t);
                ns[i] = now_ns() - t0;
        }
        res->method = method;
        res->bytes_read = st.bytes_read;
        res->reads = st.read_calls;
        res->writes = st.write_calls;
        summarize(ns, runs, res);
        free(ns);
}

/*
 * The same verified path against a live process: a child maps the memory
 * file MAP_PRIVATE (as Firecracker restores a snapshot, or QEMU with
 * share=off) and waits; each run opens /proc/<child>/mem (parsing
 * /proc/<child>/maps), locates, patches, closes. The file stays unchanged.
 */
static void run_live(const char *path, const struct rh_layout *layout, uint64_t hint, unsigned runs,
                     struct result *res)
{
        uint64_t *ns = calloc(runs, sizeof(*ns));
        struct rh_target_stats st = {};
        struct rh_request req;
        int cmd[2], ready[2], status;
        char c;
        pid_t pid;

        if (pipe2(cmd, O_CLOEXEC) < 0 || pipe2(ready, O_CLOEXEC) < 0) {
                perror("pipe");
                exit(1);
        }
        pid = fork();
        if (pid < 0) {
                perror("fork");
                exit(1);
        }
        if (pid == 0) {
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                void *mem = fd < 0 ? MAP_FAILED
                                   : mmap(NULL, (size_t)rh_layout_file_size(layout), PROT_READ | PROT_WRITE,
                                          MAP_PRIVATE, fd, 0);
                close(cmd[1]);
                close(ready[0]);
                if (mem == MAP_FAILED || write(ready[1], "R", 1) != 1)
                        _exit(1);
                /* Blocks until the parent closes its end (or exits). */
                while (read(cmd[0], &c, 1) > 0)
                        ;
                _exit(0);
        }
        close(cmd[0]);
        close(ready[1]);
        if (read(ready[0], &c, 1) != 1) {
                fprintf(stderr, "bench-locate: mapping child %d failed\n", (int)pid);
                waitpid(pid, NULL, 0);
                exit(1);
        }
        make_request(&req);
        for (unsigned i = 0; i < runs; i++) {
                struct rh_target *t = NULL;
                struct rh_error err = {};
                uint64_t gpa = 0, t0 = now_ns();

                if (rh_target_open_pid(pid, path, layout, true, &t, &err) < 0 ||
                    rh_mailbox_locate(t, hint, token, false, &gpa, &err) < 0 ||
                    rh_mailbox_patch(t, gpa, token, &req, NULL, &err) < 0) {
                        kill(pid, SIGKILL);
                        waitpid(pid, NULL, 0);
                        die("live process", &err);
                }
                rh_target_get_stats(t, &st);
                rh_target_free(t);
                ns[i] = now_ns() - t0;
        }
        close(cmd[1]);
        close(ready[0]);
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "bench-locate: mapping child %d ended badly\n", (int)pid);
                exit(1);
        }
        res->method = "verified hint, live /proc/pid/mem";
        res->bytes_read = st.bytes_read;
        res->reads = st.read_calls;
        res->writes = st.write_calls;
        summarize(ns, runs, res);
        free(ns);
}

/*
 * Baseline: read the whole file in 1 MiB chunks and search every byte
 * offset for the marker (keeping an overlap so a marker across a chunk
 * boundary is found), verify the token after it, patch the page in memory
 * and write it back. This is what a scanner that does not know the page
 * is aligned must do.
 */
static void run_fullscan(const char *path, unsigned runs, struct result *res)
{
        const size_t chunk = 1 * MiB, keep = RH_MAILBOX_MAGIC_LEN + RH_TOKEN_LEN;
        uint64_t *ns = calloc(runs, sizeof(*ns)), reads = 0, bytes = 0, writes = 0;
        uint8_t *buf = malloc(chunk + keep);
        struct rh_request req;

        make_request(&req);
        for (unsigned i = 0; i < runs; i++) {
                uint64_t t0 = now_ns(), base = 0, found = UINT64_MAX;
                size_t have = 0;
                int fd = open(path, O_RDWR | O_CLOEXEC);

                reads = bytes = writes = 0;
                if (fd < 0) {
                        perror(path);
                        exit(1);
                }
                for (;;) {
                        ssize_t n = pread(fd, buf + have, chunk, (off_t)(base + have));
                        reads++;
                        if (n < 0) {
                                perror("pread");
                                exit(1);
                        }
                        if (n == 0)
                                break;
                        bytes += (uint64_t)n;
                        size_t len = have + (size_t)n;
                        const uint8_t *p = buf, *end = buf + len;
                        while ((p = memmem(p, (size_t)(end - p), RH_MAILBOX_MAGIC, RH_MAILBOX_MAGIC_LEN))) {
                                if ((size_t)(end - p) < keep)
                                        break; /* decide with the next chunk */
                                /* hypeman's marker is magic + token. */
                                if (memcmp(p + 0x10, token, RH_TOKEN_LEN) == 0) {
                                        found = base + (uint64_t)(p - buf);
                                        break;
                                }
                                p++;
                        }
                        if (found != UINT64_MAX)
                                break;
                        /* Carry the tail over so a marker across the boundary is seen whole. */
                        size_t carry = len < keep ? len : keep;
                        memmove(buf, buf + len - carry, carry);
                        base += len - carry;
                        have = carry;
                }
                if (found == UINT64_MAX) {
                        fprintf(stderr, "bench-locate: baseline did not find the marker\n");
                        exit(1);
                }
                uint8_t page[RH_MAILBOX_SIZE], out[RH_MAILBOX_SIZE];
                struct rh_error err = {};
                if (pread_full(fd, page, sizeof(page), (off_t)found) < 0)
                        exit(1);
                reads++;
                bytes += sizeof(page);
                if (rh_mailbox_patch_overlay(page, RH_GPA_NONE, token, &req, out, NULL, &err) < 0)
                        die("baseline patch", &err);
                if (pwrite_full(fd, out, sizeof(out), (off_t)found) < 0)
                        exit(1);
                writes++;
                close(fd);
                ns[i] = now_ns() - t0;
        }
        res->method = "full-file scan (baseline)";
        res->bytes_read = bytes;
        res->reads = reads;
        res->writes = writes;
        summarize(ns, runs, res);
        free(ns);
        free(buf);
}

static void fmt_time(uint64_t ns, char *buf, size_t len)
{
        if (ns < 1000000)
                snprintf(buf, len, "%.1f us", ns / 1e3);
        else if (ns < 1000000000)
                snprintf(buf, len, "%.1f ms", ns / 1e6);
        else
                snprintf(buf, len, "%.2f s", ns / 1e9);
}

static void fmt_bytes(uint64_t b, char *buf, size_t len)
{
        if (b >= GiB && b % GiB == 0)
                snprintf(buf, len, "%" PRIu64 " GiB", (uint64_t)(b / GiB));
        else if (b >= 16 * MiB)
                snprintf(buf, len, "%.2f GiB", (double)b / GiB);
        else
                snprintf(buf, len, "%" PRIu64 " B", b);
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                {"dir", required_argument, NULL, 'd'},
                {"big-gib", required_argument, NULL, 'g'},
                {"runs", required_argument, NULL, 'n'},
                {"scan-runs", required_argument, NULL, 's'},
                {"big-scan-runs", required_argument, NULL, 'b'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *dir = "/dev/shm";
        unsigned big_gib = 16, runs = 2000, scan_runs = 20, big_scan_runs = 5;
        struct result results[2][4];
        uint64_t sizes[2];
        char path[4096];
        int c;

        while ((c = getopt_long(argc, argv, "h", opts, NULL)) >= 0) {
                switch (c) {
                case 'd':
                        dir = optarg;
                        break;
                case 'g':
                        big_gib = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                case 'n':
                        runs = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                case 's':
                        scan_runs = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                case 'b':
                        big_scan_runs = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                case 'h':
                        printf("usage: bench-locate [--dir DIR] [--big-gib N] [--runs N] [--scan-runs N] "
                               "[--big-scan-runs N]\n"
                               "  --dir DIR          where the sparse memory files go (default /dev/shm)\n"
                               "  --big-gib N        size of the large file in GiB (default 16)\n"
                               "  --runs N           verified-hint runs per size (default 2000)\n"
                               "  --scan-runs N      scan runs at 256 MiB (default 20)\n"
                               "  --big-scan-runs N  scan runs at the large size (default 5)\n");
                        return 0;
                default:
                        fprintf(stderr, "Try 'bench-locate --help'\n");
                        return 2;
                }
        }
        if (big_gib == 0 || runs == 0 || scan_runs == 0 || big_scan_runs == 0) {
                fprintf(stderr,
                        "bench-locate: sizes and run counts must be positive\nTry 'bench-locate --help'\n");
                return 2;
        }
        sizes[0] = 256 * MiB;
        sizes[1] = (uint64_t)big_gib * GiB;
        snprintf(path, sizeof(path), "%s/rehome-bench-locate-%d.mem", dir, (int)getpid());

        for (int s = 0; s < 2; s++) {
                struct rh_layout *layout = NULL;
                struct rh_error err = {};
                const struct rh_region *last;
                uint64_t gpa;
                unsigned sr = s == 0 ? scan_runs : big_scan_runs;

                if (rh_layout_new_firecracker(sizes[s], false, &layout, &err) < 0)
                        die("layout", &err);
                /* Near the end of guest RAM: the worst case for any scan. */
                last = rh_layout_region(layout, rh_layout_n_regions(layout) - 1);
                gpa = last->gpa + last->size - 16 * 4096;
                make_memfile(path, layout, gpa);
                fprintf(stderr, "bench-locate: %s, mailbox at gpa 0x%" PRIx64 "...\n",
                        s == 0 ? "256 MiB" : "large file", gpa);
                run_rehome(path, layout, gpa, runs, "verified hint (rehome)", &results[s][0]);
                run_live(path, layout, gpa, runs, &results[s][1]);
                run_rehome(path, layout, RH_GPA_NONE, sr, "page-start scan (rehome fallback)",
                           &results[s][2]);
                run_fullscan(path, sr, &results[s][3]);
                unlink(path);
                rh_layout_free(layout);
        }

        printf("locate + patch, Firecracker x86_64 layout, sparse memory file in %s, mailbox 64 KiB before "
               "the end\n",
               dir);
        printf("%-9s %-34s %5s %10s %10s %11s %7s %7s\n", "memory", "method", "runs", "median", "p99",
               "bytes read", "preads", "pwrites");
        for (int s = 0; s < 2; s++)
                for (int m = 0; m < 4; m++) {
                        const struct result *r = &results[s][m];
                        char med[32], p99[32], mem[32], br[32];

                        fmt_time(r->median_ns, med, sizeof(med));
                        fmt_time(r->p99_ns, p99, sizeof(p99));
                        fmt_bytes(sizes[s], mem, sizeof(mem));
                        if (s == 0)
                                snprintf(mem, sizeof(mem), "256 MiB");
                        fmt_bytes(r->bytes_read, br, sizeof(br));
                        printf("%-9s %-34s %5u %10s %10s %11s %7" PRIu64 " %7" PRIu64 "\n", mem, r->method,
                               r->runs, med, p99, br, r->reads, r->writes);
                }
        printf("verified hint, large / 256 MiB: median %.2fx, p99 %.2fx (target: within 2x)\n",
               (double)results[1][0].median_ns / (double)results[0][0].median_ns,
               (double)results[1][0].p99_ns / (double)results[0][0].p99_ns);
        printf("verified hint live, large / 256 MiB: median %.2fx, p99 %.2fx\n",
               (double)results[1][1].median_ns / (double)results[0][1].median_ns,
               (double)results[1][1].p99_ns / (double)results[0][1].p99_ns);
        printf("full-file scan / verified hint at the large size: median %.0fx\n",
               (double)results[1][3].median_ns / (double)results[1][0].median_ns);
        return 0;
}
