/* SPDX-License-Identifier: MIT */
/*
 * bench-apply: how long rehome-agent takes from reading the mailbox to having
 * the network applied, on a real veth in a fresh network namespace, next to
 * the same change made by running the equivalent `ip` commands; plus the
 * pages the agent touches between the signal and the ack.
 *
 *   bench-apply PATH-TO-rehome-agent [HANDOFFS] [PAGE-SAMPLES]
 *
 * Handoffs alternate between two identities so every one really changes the
 * MAC, MTU, IPv4 + IPv6 addresses and two routes, and flushes neighbours.
 * Agent figures come from the ack record (guest CLOCK_MONOTONIC stamps
 * t_read -> t_applied; t_signal -> t_ack). The `ip` figure is the wall time of
 * fork+exec+wait of each command in turn, run from inside the namespace
 * (the agent additionally sends a gratuitous ARP and an unsolicited NA; the
 * `ip` side does not, which only flatters it).
 *
 * Pages: /proc/<agent>/clear_refs before the signal, the sum of smaps
 * "Referenced" after the ack. The agent binary is copied to tmpfs first:
 * on ext4 this kernel's large folios make Referenced per folio.
 *
 * Needs root; exits 77 otherwise. Prints a markdown table on stdout.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rehome/mailbox.h"

extern char **environ;

#define IDLE_SECONDS 5

static char ns_a[64], ns_b[64], dir[128];
static unsigned long idle_wakeups;
static uint64_t idle_cpu_us;
static pid_t agent_pid = -1;
static uint8_t *page;
static int kmsg_fd = -1;

static void cleanup(void)
{
        char cmd[512];

        if (agent_pid > 0) {
                kill(agent_pid, SIGTERM);
                waitpid(agent_pid, NULL, 0);
                agent_pid = -1;
        }
        if (ns_a[0]) {
                snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null", ns_a);
                (void)!system(cmd);
        }
        if (ns_b[0]) {
                snprintf(cmd, sizeof(cmd), "ip netns del %s 2>/dev/null", ns_b);
                (void)!system(cmd);
        }
        if (dir[0]) {
                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
                (void)!system(cmd);
        }
}

static void on_signal(int sig)
{
        (void)sig;
        exit(1);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "bench-apply: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        exit(1);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
        char cmd[1024];
        va_list ap;
        int r;

        va_start(ap, fmt);
        vsnprintf(cmd, sizeof(cmd), fmt, ap);
        va_end(ap);
        r = system(cmd);
        return WIFEXITED(r) ? WEXITSTATUS(r) : -1;
}

static uint64_t now_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int cmp_u64(const void *x, const void *y)
{
        uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
        return a < b ? -1 : a > b;
}

static uint64_t pct(uint64_t *v, size_t n, double p)
{
        size_t i;

        qsort(v, n, sizeof(*v), cmp_u64);
        i = (size_t)(p * (double)(n - 1) + 0.5);
        return v[i < n ? i : n - 1];
}

struct identity {
        const char *mac, *ip4, *ip6, *gw;
        unsigned mtu;
};

static const struct identity ids[2] = {
        {"02:aa:00:00:00:05", "10.88.0.5", "fd88::5", "10.88.0.1", 1400},
        {"02:aa:00:00:00:06", "10.88.0.6", "fd88::6", "10.88.0.1", 1450},
};

static struct rh_request make_request(const struct identity *id)
{
        struct rh_request req;
        struct rh_ipaddr ip;
        uint8_t prefix;

        memset(&req, 0, sizeof(req));
        req.flags = RH_REQ_FLUSH_NEIGH | RH_REQ_ANNOUNCE | RH_REQ_REPLACE_ADDRS;
        req.n_ifaces = 1;
        req.ifaces[0].match = RH_MATCH_NAME;
        snprintf(req.ifaces[0].name, sizeof(req.ifaces[0].name), "rh0");
        req.ifaces[0].has_mac = true;
        rh_mac_parse(id->mac, req.ifaces[0].mac);
        req.ifaces[0].mtu = id->mtu;
        rh_ip_parse(id->ip4, &ip, &prefix);
        req.addrs[0] = (struct rh_addr){.iface = 0, .family = 4, .prefix = 24};
        memcpy(req.addrs[0].addr, ip.addr, 16);
        rh_ip_parse(id->ip6, &ip, &prefix);
        req.addrs[1] = (struct rh_addr){.iface = 0, .family = 6, .prefix = 64};
        memcpy(req.addrs[1].addr, ip.addr, 16);
        req.n_addrs = 2;
        rh_ip_parse(id->gw, &ip, &prefix);
        req.routes[0] = (struct rh_route){.iface = 0, .family = 4, .has_gateway = true};
        memcpy(req.routes[0].gateway, ip.addr, 16);
        req.routes[1] = (struct rh_route){
                .iface = 0, .family = 4, .dst_prefix = 16, .has_gateway = true, .metric = 50};
        memcpy(req.routes[1].gateway, ip.addr, 16);
        rh_ip_parse("10.99.0.0", &ip, &prefix);
        memcpy(req.routes[1].dst, ip.addr, 16);
        req.n_routes = 2;
        req.has_ack_udp = true;
        rh_ip_parse("10.88.0.1", &req.ack_addr, &prefix);
        req.ack_port = 5555;
        return req;
}

static void setup(const char *agent_src, char *agent_copy, size_t len)
{
        char tmpl[] = "/dev/shm/rehome-bench-apply-XXXXXX";

        if (!mkdtemp(tmpl))
                die("mkdtemp: %s", strerror(errno));
        snprintf(dir, sizeof(dir), "%s", tmpl);
        snprintf(agent_copy, len, "%s/rehome-agent", dir);
        if (sh("cp '%s' '%s'", agent_src, agent_copy) != 0)
                die("copy agent");
        snprintf(ns_a, sizeof(ns_a), "rhbench-a-%d", getpid());
        snprintf(ns_b, sizeof(ns_b), "rhbench-b-%d", getpid());
        if (sh("ip netns add %s", ns_a) != 0) {
                ns_a[0] = '\0';
                fprintf(stderr, "bench-apply: cannot create a network namespace: skipped\n");
                exit(77);
        }
        if (sh("ip netns add %s", ns_b) != 0 ||
            sh("ip -n %s link add rh0 address 02:00:00:00:00:01 type veth peer name rh0p netns %s", ns_a,
               ns_b) != 0 ||
            sh("ip -n %s link set lo up && ip -n %s link set rh0 up && "
               "ip -n %s addr add 10.77.0.2/24 dev rh0 && ip -n %s route add default via 10.77.0.1",
               ns_a, ns_a, ns_a, ns_a) != 0 ||
            sh("ip -n %s link set rh0p up && ip -n %s addr add 10.88.0.1/24 dev rh0p && "
               "ip -n %s addr add 10.77.0.1/24 dev rh0p",
               ns_b, ns_b, ns_b) != 0)
                die("network set-up failed");
}

static void start_agent(const char *agent)
{
        char mailbox[256], kmsg[256], run_dir[256], resolv[256];
        char ns_path[128];
        int fd, ns;

        snprintf(mailbox, sizeof(mailbox), "%s/mailbox", dir);
        snprintf(kmsg, sizeof(kmsg), "%s/kmsg", dir);
        snprintf(run_dir, sizeof(run_dir), "%s/run", dir);
        snprintf(resolv, sizeof(resolv), "%s/resolv.conf", dir);
        fd = open(mailbox, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || ftruncate(fd, RH_MAILBOX_SIZE) < 0)
                die("mailbox: %s", strerror(errno));
        page = mmap(NULL, RH_MAILBOX_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (page == MAP_FAILED)
                die("mmap: %s", strerror(errno));
        if (mkfifo(kmsg, 0600) < 0)
                die("mkfifo: %s", strerror(errno));
        kmsg_fd = open(kmsg, O_RDWR | O_CLOEXEC | O_NONBLOCK);
        snprintf(ns_path, sizeof(ns_path), "/run/netns/%s", ns_a);
        ns = open(ns_path, O_RDONLY | O_CLOEXEC);
        if (ns < 0)
                die("%s: %s", ns_path, strerror(errno));
        agent_pid = fork();
        if (agent_pid == 0) {
                int null = open("/dev/null", O_WRONLY);
                if (setns(ns, CLONE_NEWNET) < 0)
                        _exit(126);
                dup2(null, STDOUT_FILENO);
                execl(agent, agent, "--mailbox-file", mailbox, "--signal", "vmgenid-kmsg", "--kmsg", kmsg,
                      "--run-dir", run_dir, "--resolv-conf", resolv, "--hostname-file", "",
                      getenv("BENCH_AGENT_VERBOSE") ? "-v" : (char *)NULL, (char *)NULL);
                _exit(127);
        }
        close(ns);
        for (int i = 0; i < 1000; i++) {
                if (rh_mailbox_matches(page, RH_MAILBOX_SIZE, NULL))
                        return;
                usleep(2000);
        }
        die("agent did not arm");
}

static void signal_agent(void)
{
        static const char line[] = "6,1,1,-;random: crng reseeded due to virtual machine fork\n";

        if (write(kmsg_fd, line, sizeof(line) - 1) < 0)
                die("kmsg: %s", strerror(errno));
}

static int wait_ack(uint32_t seq, struct rh_ack *ret)
{
        for (uint64_t deadline = now_us() + 5000000; now_us() < deadline;) {
                if (rh_mailbox_read_ack(page, ret, NULL) == 0 && ret->seq == seq &&
                    ret->status >= RH_ACK_APPLIED)
                        return 0;
                usleep(20);
        }
        return -ETIMEDOUT;
}

/* Sum of smaps "Referenced" (kB) over the agent's mappings; with @show,
 * print the pages per mapping to stderr. */
static long referenced_kb(bool show)
{
        char path[64], line[512], name[256] = "";
        long total = 0, kb;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/smaps", agent_pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f)) {
                unsigned long lo, hi;
                int off = 0;

                if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &off) == 2 && off > 0) {
                        snprintf(name, sizeof(name), "%.*s", (int)strcspn(line + off, "\n"), line + off);
                        if (!name[0])
                                snprintf(name, sizeof(name), "[anon %lu KiB]", (hi - lo) / 1024);
                        continue;
                }
                if (sscanf(line, "Referenced: %ld kB", &kb) == 1) {
                        total += kb;
                        if (show && kb)
                                fprintf(stderr, "  %4ld pages  %s\n", kb / 4, name);
                }
        }
        fclose(f);
        return total;
}

/* Voluntary context switches of the agent so far: its wake-ups. */
static unsigned long agent_wakeups(void)
{
        char path[64], line[256];
        unsigned long v = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", agent_pid);
        f = fopen(path, "re");
        if (!f)
                die("%s: %s", path, strerror(errno));
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "voluntary_ctxt_switches: %lu", &v) == 1)
                        break;
        fclose(f);
        return v;
}

/* utime + stime of the agent so far, in microseconds (clock-tick resolution). */
static uint64_t agent_cpu_us(void)
{
        char path[64], buf[1024], *p;
        unsigned long long ut = 0, st = 0;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/stat", agent_pid);
        f = fopen(path, "re");
        if (!f || !fgets(buf, sizeof(buf), f))
                die("%s", path);
        fclose(f);
        p = strrchr(buf, ')'); /* the command name may contain spaces */
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
                die("%s: cannot parse", path);
        return (ut + st) * 1000000ull / (unsigned long long)sysconf(_SC_CLK_TCK);
}

static void clear_refs(void)
{
        char path[64];
        int fd;

        snprintf(path, sizeof(path), "/proc/%d/clear_refs", agent_pid);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, "1", 1) != 1)
                die("%s: %s", path, strerror(errno));
        close(fd);
}

/* CPU time (user + system) the commands used, in microseconds. */
static uint64_t ip_cpu_us;

static int run_argv(char *const argv[])
{
        struct rusage ru;
        pid_t pid;
        int status;

        if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
                return -1;
        if (wait4(pid, &status, 0, &ru) < 0)
                return -1;
        ip_cpu_us += (uint64_t)ru.ru_utime.tv_sec * 1000000 + (uint64_t)ru.ru_utime.tv_usec +
                     (uint64_t)ru.ru_stime.tv_sec * 1000000 + (uint64_t)ru.ru_stime.tv_usec;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The same change with ip(8), one command at a time, from inside the namespace. */
static int apply_with_ip(const struct identity *id)
{
        char mtu[16], a4[32], a6[64];
        char *cmds[][12] = {
                {"ip", "link", "set", "dev", "rh0", "address", (char *)id->mac, NULL},
                {"ip", "link", "set", "dev", "rh0", "mtu", mtu, NULL},
                {"ip", "link", "set", "dev", "rh0", "up", NULL},
                {"ip", "addr", "flush", "dev", "rh0", "scope", "global", NULL},
                {"ip", "addr", "add", a4, "dev", "rh0", NULL},
                {"ip", "-6", "addr", "add", a6, "dev", "rh0", "nodad", NULL},
                {"ip", "route", "replace", "default", "via", (char *)id->gw, "dev", "rh0", NULL},
                {"ip", "route", "replace", "10.99.0.0/16", "via", (char *)id->gw, "dev", "rh0", "metric",
                 "50", NULL},
                {"ip", "neigh", "flush", "dev", "rh0", NULL},
        };

        snprintf(mtu, sizeof(mtu), "%u", id->mtu);
        snprintf(a4, sizeof(a4), "%s/24", id->ip4);
        snprintf(a6, sizeof(a6), "%s/64", id->ip6);
        for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
                if (run_argv(cmds[i]) != 0)
                        return -1;
        return 0;
}

int main(int argc, char **argv)
{
        char agent[256];
        unsigned n = argc > 2 ? (unsigned)atoi(argv[2]) : 1000;
        unsigned n_pages = argc > 3 ? (unsigned)atoi(argv[3]) : 200;
        uint64_t *read_apply, *signal_ack, *host_rtt, *ip_us;
        long *pages;
        uint32_t seq = 0;
        uint64_t cpu0 = 0, agent_cpu = 0, ip_cpu = 0;
        struct utsname u;

        if (argc < 2)
                die("usage: bench-apply PATH-TO-rehome-agent [HANDOFFS] [PAGE-SAMPLES]");
        if (geteuid() != 0) {
                fprintf(stderr, "bench-apply: needs root: skipped\n");
                return 77;
        }
        if (n < 10 || n_pages < 1)
                die("HANDOFFS >= 10, PAGE-SAMPLES >= 1");
        atexit(cleanup);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        read_apply = calloc(n, sizeof(uint64_t));
        signal_ack = calloc(n, sizeof(uint64_t));
        host_rtt = calloc(n, sizeof(uint64_t));
        ip_us = calloc(n, sizeof(uint64_t));
        pages = calloc(n_pages, sizeof(long));
        if (!read_apply || !signal_ack || !host_rtt || !ip_us || !pages)
                die("out of memory");

        setup(argv[1], agent, sizeof(agent));
        start_agent(agent);

        /* Idle: what a waiting agent costs (default timer, no prearm). */
        {
                unsigned long w0;
                uint64_t c0;

                usleep(200000);
                w0 = agent_wakeups();
                c0 = agent_cpu_us();
                sleep(IDLE_SECONDS);
                idle_wakeups = agent_wakeups() - w0;
                idle_cpu_us = agent_cpu_us() - c0;
        }

        /* Agent: warm-up, then timed handoffs. */
        for (unsigned i = 0; i < n + 20; i++) {
                struct rh_request req = make_request(&ids[i & 1]);
                struct rh_error err = {0};
                struct rh_ack ack;
                uint64_t t0;

                if (i == 20)
                        cpu0 = agent_cpu_us();
                req.seq = ++seq;
                req.nonce = 0x1000 + seq;
                if (rh_mailbox_write_request(page, &req, &err) < 0)
                        die("write request: %s", err.msg);
                t0 = now_us();
                signal_agent();
                if (wait_ack(seq, &ack) < 0)
                        die("no ack for seq %u", seq);
                if (ack.status != RH_ACK_APPLIED)
                        die("seq %u: %s: %s", seq, rh_ack_status_name(ack.status), ack.error);
                if (i >= 20) {
                        read_apply[i - 20] = (ack.t_applied_ns - ack.t_read_ns) / 1000;
                        signal_ack[i - 20] = (ack.t_ack_ns - ack.t_signal_ns) / 1000;
                        host_rtt[i - 20] = now_us() - t0;
                }
        }

        usleep(5000); /* the last re-arm */
        agent_cpu = agent_cpu_us() - cpu0;

        /* Pages touched from the signal to the ack. */
        for (unsigned i = 0; i < n_pages; i++) {
                struct rh_request req = make_request(&ids[i & 1]);
                struct rh_error err = {0};
                struct rh_ack ack;

                req.seq = ++seq;
                req.nonce = 0x1000 + seq;
                if (rh_mailbox_write_request(page, &req, &err) < 0)
                        die("write request: %s", err.msg);
                usleep(2000); /* the agent is idle in epoll_wait */
                clear_refs();
                signal_agent();
                if (wait_ack(seq, &ack) < 0)
                        die("no ack for seq %u", seq);
                usleep(2000); /* let it finish re-arming: part of the handoff */
                pages[i] = referenced_kb(i == n_pages - 1) / 4;
        }

        /* ip(8): same changes, from inside the namespace. */
        {
                char ns_path[128];
                int ns, self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);

                snprintf(ns_path, sizeof(ns_path), "/run/netns/%s", ns_a);
                ns = open(ns_path, O_RDONLY | O_CLOEXEC);
                if (ns < 0 || self < 0 || setns(ns, CLONE_NEWNET) < 0)
                        die("setns: %s", strerror(errno));
                for (unsigned i = 0; i < n + 5; i++) {
                        uint64_t t0 = now_us();

                        if (i == 5)
                                ip_cpu_us = 0;
                        if (apply_with_ip(&ids[i & 1]) < 0)
                                die("ip commands failed");
                        if (i >= 5)
                                ip_us[i - 5] = now_us() - t0;
                }
                ip_cpu = ip_cpu_us;
                if (setns(self, CLONE_NEWNET) < 0)
                        die("setns back");
                close(ns);
                close(self);
        }

        {
                uint64_t ra50 = pct(read_apply, n, 0.5), ra99 = pct(read_apply, n, 0.99);
                uint64_t sa50 = pct(signal_ack, n, 0.5), sa99 = pct(signal_ack, n, 0.99);
                uint64_t h50 = pct(host_rtt, n, 0.5), h99 = pct(host_rtt, n, 0.99);
                uint64_t ip50 = pct(ip_us, n, 0.5), ip99 = pct(ip_us, n, 0.99);
                long pmin = pages[0], pmax = pages[0], p50;
                uint64_t *pv = calloc(n_pages, sizeof(uint64_t));

                for (unsigned i = 0; i < n_pages; i++) {
                        pv[i] = (uint64_t)pages[i];
                        if (pages[i] < pmin)
                                pmin = pages[i];
                        if (pages[i] > pmax)
                                pmax = pages[i];
                }
                p50 = (long)pct(pv, n_pages, 0.5);
                uname(&u);
                printf("Host: %s %s, %ld CPUs; %u handoffs per row (after warm-up); veth in a fresh "
                       "netns.\n\n",
                       u.sysname, u.release, sysconf(_SC_NPROCESSORS_ONLN), n);
                printf("| measure | median | p99 |\n|---|---|---|\n");
                printf("| agent: mailbox read -> applied (t_read..t_applied) | %" PRIu64 " us | %" PRIu64
                       " us |\n",
                       ra50, ra99);
                printf("| agent: signal seen -> ack written (t_signal..t_ack) | %" PRIu64 " us | %" PRIu64
                       " us |\n",
                       sa50, sa99);
                printf("| host: signal injected -> ack seen in the page | %" PRIu64 " us | %" PRIu64
                       " us |\n",
                       h50, h99);
                printf("| same change with 9 `ip` commands (fork+exec each) | %" PRIu64 " us | %" PRIu64
                       " us |\n",
                       ip50, ip99);
                printf("| ratio ip / agent (read -> applied) | %.1fx | %.1fx |\n\n",
                       (double)ip50 / (double)ra50, (double)ip99 / (double)ra99);
                printf("CPU time per handoff (user+system, mean over %u; much less sensitive to other load "
                       "than wall time): "
                       "agent %.0f us (whole handoff: wake, read, apply, ack, re-arm), "
                       "`ip` commands %.0f us; ratio %.1fx.\n\n",
                       n, (double)agent_cpu / n, (double)ip_cpu / n,
                       agent_cpu ? (double)ip_cpu / (double)agent_cpu : 0.0);
                printf("Idle agent (%s, default intervals) over %d s: %lu wake-ups (%.1f/s), %" PRIu64
                       " us CPU (clock-tick resolution: 0 means under one tick).\n\n",
                       "--signal vmgenid-kmsg", IDLE_SECONDS, idle_wakeups,
                       (double)idle_wakeups / IDLE_SECONDS, idle_cpu_us);
                printf("Agent pages referenced from signal to ack+re-arm (clear_refs + smaps Referenced, "
                       "%u samples): median %ld, min %ld, max %ld (%ld KiB median).\n",
                       n_pages, p50, pmin, pmax, p50 * 4);
                free(pv);
        }
        return 0;
}
