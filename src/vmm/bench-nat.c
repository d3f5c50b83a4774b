/* SPDX-License-Identifier: MIT */
/*
 * rehome bench, section nat: per-clone NAT (Firecracker's
 * network-for-clones) side by side with rehome, alternating forks of one
 * template.
 *
 * A NAT clone is resumed unchanged (bench_fork_measured without handoff: no mailbox
 * request, it keeps the template's IP and MAC) inside its own network
 * namespace rhnat-<pid>-<i>, set up per clone with ip + nft:
 *
 *   ip netns add NS
 *   ip -n BENCH -batch: veth rn<pid>_<i> <-> veth0 (in NS), 10.80.<i>.1/30
 *                       on the bench end, route 10.79.0.<i>/32 via 10.80.<i>.2
 *   ip -n NS -batch:    lo up; bridge rhbr0 with the template gateway's IP
 *                       and a fixed MAC (the engine's tap joins it); veth0
 *                       10.80.<i>.2/30; a permanent neighbour entry for the
 *                       template IP (the guest is paused at set-up: an ARP
 *                       sent then would be retried only after 1 s)
 *   ip netns exec NS sysctl net.ipv4.ip_forward=1
 *   ip netns exec NS nft -f: DNAT 10.79.0.<i> -> template IP on veth0 in,
 *                       SNAT template IP -> 10.79.0.<i> on veth0 out
 *
 * Probe (both kinds, same code): from the bench namespace, a raw ICMP socket
 * sends an echo request every NAT_PROBE_US to the clone's unique address
 * (NAT: 10.79.0.<i>; rehome: its new IP), starting right before `cont`;
 * "reachable" is the first echo reply from that address, taken from right
 * before `cont` is sent, for both kinds alike. (Not from `cont` returned: a
 * resumed guest can answer before QEMU's QMP reply arrives, which made the
 * figure negative on a loaded machine.)
 *
 * Pooled NAT (kind "nat_pooled"), as sandbox platforms run it: the same
 * namespace, veth, bridge, forwarding and nft rules, but all of them made
 * for the whole run before the first fork (rhnat-<pid>-<n+i>, unique
 * address 10.79.0.<n+i>), so nothing of the set-up is on the clone's path:
 * only its attach, i.e. the engine creating the clone's tap in the prepared
 * namespace and joining it to rhbr0, which is inside "spawn" for every kind
 * alike. Its set-up time is recorded as pool_prepare_ms (off the clock).
 * Per fork the three kinds alternate: per-fork NAT, pooled NAT, rehome.
 *
 * DHCP (kind "dhcp"), the alternative most people would pick, when the
 * caller passes a template created with --kernel-arg rehome.dhcp=1 (see
 * guest/init): dnsmasq (Debian's dnsmasq-base) is started by the bench in the
 * bench namespace, on the clone bridge only, with one dhcp-host MAC -> IP
 * reservation per DHCP fork (addresses .150 + i of the clone network, MACs
 * derived from them as the engine derives a clone's), DNS off, no lease file;
 * it is tracked by PID, and killed and reaped on every path (the signal
 * handlers too). Each DHCP fork gets a mailbox request that sets only the
 * MAC (vmm_fork_opts.mac_only): the agent applies it and acks, its post-apply
 * hook starts busybox udhcpc in the background, and udhcpc's lease replaces
 * the template address. "reachable" is the first echo reply at the reserved
 * address, timed like every other kind; resume_applied_ms is the MAC-only
 * ack, which comes after the hook that starts udhcpc (hooks run before the
 * ack) and before the lease.
 *
 * Every namespace is deleted on every path (and by the signal handlers,
 * through qemu_set_signal_extra); the QEMUs stay tracked by the engine.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "bench.h"
#include "cleanup.h"
#include "io.h"
#include "vmm.h"

#define NAT_MAX       200
#define NAT_PROBE_US  2000   /* one echo request every 2 ms */
#define NAT_PROBE_MAX 10000  /* at most 20 s of probing */
/* The clone-side gateway's MAC (the template guest's cached gateway entry must match it; see the doc). */
#define NAT_GW_MAC "02:72:68:00:00:01"

/* ---- namespaces and dnsmasq, for the signal handler too --------------------------- */

static char ns_paths[NAT_MAX][64];
static volatile sig_atomic_t ns_live[NAT_MAX];
static volatile pid_t dnsmasq_pid;

static void nat_signal_cleanup(void)
{
        /* Async-signal-safe: the paths were formatted beforehand. */
        if (dnsmasq_pid > 0)
                kill(dnsmasq_pid, SIGKILL);
        for (int i = 0; i < NAT_MAX; i++)
                if (ns_live[i]) {
                        umount2(ns_paths[i], MNT_DETACH);
                        unlink(ns_paths[i]);
                }
}

struct nat_clone {
        unsigned i;
        char ns[40], veth[16];
        char uniq[20];            /* 10.79.0.<i> */
        struct vmm_net net;       /* the clone namespace, bridge rhbr0 */
        unsigned processes;       /* ip / nft runs for set-up */
        double step_ms[8];        /* each of them */
        unsigned ip_lines, nft_rules;
        double setup_ms, teardown_ms;
};

static int write_text(const char *path, const char *text, struct rh_error *err)
{
        FILE *f = fopen(path, "we");
        if (!f)
                return rh_error_set(err, -errno, "%s: %s", path, strerror(errno));
        fputs(text, f);
        if (fclose(f) != 0)
                return rh_error_set(err, -EIO, "%s: write failed", path);
        return 0;
}

static unsigned count_lines(const char *s)
{
        unsigned n = 0;
        for (; *s; s++)
                n += *s == '\n';
        return n;
}

/* Run argv (in @net's namespace if set); a failure names the command and its output. */
static int run_step(const struct vmm_net *net, char *const argv[], struct nat_clone *nc, struct rh_error *err)
{
        char out[1024] = "";
        uint64_t t0 = now_ns();
        int r = vmm_net_run(net, argv, out, sizeof(out));
        if (nc->processes < ELEMENTSOF(nc->step_ms))
                nc->step_ms[nc->processes] = (double)(now_ns() - t0) / 1e6;
        nc->processes++;
        if (r != 0) {
                out[strcspn(out, "\n")] = '\0';
                char cmd[256] = "";
                for (size_t k = 0; argv[k] && strlen(cmd) < 200; k++)
                        snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd), "%s%s", k ? " " : "", argv[k]);
                return rh_error_set(err, r < 0 ? r : -EIO, "%s%s: %s", net && net->netns[0] ? "ip netns exec " : "",
                                    cmd, out[0] ? out : "failed");
        }
        return 0;
}

static void nat_teardown(struct nat_clone *nc)
{
        if (!ns_live[nc->i])
                return;
        uint64_t t0 = now_ns();
        char *argv[] = { "ip", "netns", "del", nc->ns, NULL };
        if (vmm_net_run(NULL, argv, NULL, 0) != 0) {
                umount2(ns_paths[nc->i], MNT_DETACH);
                unlink(ns_paths[nc->i]);
        }
        ns_live[nc->i] = 0;
        nc->teardown_ms = (double)(now_ns() - t0) / 1e6;
}

/*
 * The per-clone host state: namespace, veth, addresses, route, bridge with
 * the gateway, forwarding, nft rules. Timed; on failure everything made is
 * removed.
 */
static int nat_setup(const struct vmm_net *bnet, const struct vmm_template *t, const char *dir, unsigned i,
                     struct nat_clone *nc, struct rh_error *err)
{
        char hostf[PATH_MAX], clonef[PATH_MAX], nftf[PATH_MAX], text[2048], tip[64], tmac[18];
        int r;

        memset(nc, 0, sizeof(*nc));
        nc->i = i;
        snprintf(nc->ns, sizeof(nc->ns), "rhnat-%d-%u", (int)getpid(), i);
        snprintf(nc->veth, sizeof(nc->veth), "rn%05d_%u", (int)(getpid() % 100000), i);
        snprintf(nc->uniq, sizeof(nc->uniq), "10.79.0.%u", i);
        snprintf(nc->net.netns, sizeof(nc->net.netns), "%s", nc->ns);
        snprintf(nc->net.bridge, sizeof(nc->net.bridge), "rhbr0");
        snprintf(nc->net.gateway, sizeof(nc->net.gateway), "%s", t->gateway);
        snprintf(ns_paths[i], sizeof(ns_paths[i]), "/run/netns/%s", nc->ns);
        snprintf(tip, sizeof(tip), "%s", t->ip);
        *strchrnul(tip, '/') = '\0';
        rh_mac_format(t->mac, tmac);
        uint8_t prefix = 24;
        {
                struct rh_ipaddr a;
                rh_ip_parse(t->ip, &a, &prefix);
        }
        char gw[64];
        snprintf(gw, sizeof(gw), "%s", t->gateway);
        *strchrnul(gw, '/') = '\0';

        snprintf(hostf, sizeof(hostf), "%s/%u.host", dir, i);
        snprintf(clonef, sizeof(clonef), "%s/%u.clone", dir, i);
        snprintf(nftf, sizeof(nftf), "%s/%u.nft", dir, i);
        /* Written before the clock starts: a shell script's text costs nothing either. */
        snprintf(text, sizeof(text),
                 "link add %s type veth peer name veth0 netns %s\n"
                 "addr add 10.80.%u.1/30 dev %s\n"
                 "link set %s up\n"
                 "route add %s/32 via 10.80.%u.2 dev %s\n",
                 nc->veth, nc->ns, i, nc->veth, nc->veth, nc->uniq, i, nc->veth);
        if ((r = write_text(hostf, text, err)) < 0)
                return r;
        nc->ip_lines = 1 + count_lines(text);
        snprintf(text, sizeof(text),
                 "link set lo up\n"
                 "link add rhbr0 address %s type bridge\n"
                 "addr add %s/%u dev rhbr0\n"
                 "link set rhbr0 up\n"
                 "addr add 10.80.%u.2/30 dev veth0\n"
                 "link set veth0 up\n"
                 "neigh replace %s lladdr %s dev rhbr0 nud permanent\n",
                 NAT_GW_MAC, gw, prefix, i, tip, tmac);
        if ((r = write_text(clonef, text, err)) < 0)
                return r;
        nc->ip_lines += count_lines(text);
        snprintf(text, sizeof(text),
                 "table ip rhnat {\n"
                 "  chain pre {\n"
                 "    type nat hook prerouting priority dstnat; policy accept;\n"
                 "    iifname \"veth0\" ip daddr %s dnat to %s\n"
                 "  }\n"
                 "  chain post {\n"
                 "    type nat hook postrouting priority srcnat; policy accept;\n"
                 "    oifname \"veth0\" ip saddr %s snat to %s\n"
                 "  }\n"
                 "}\n",
                 nc->uniq, tip, tip, nc->uniq);
        if ((r = write_text(nftf, text, err)) < 0)
                return r;
        nc->nft_rules = 2;

        uint64_t t0 = now_ns();
        char *add[] = { "ip", "netns", "add", nc->ns, NULL };
        r = run_step(NULL, add, nc, err);
        if (r < 0)
                return r;
        ns_live[i] = 1;
        char *host[] = { "ip", "-n", (char *)bnet->netns, "-batch", hostf, NULL };
        char *host_nons[] = { "ip", "-batch", hostf, NULL };
        char *clone[] = { "ip", "-n", nc->ns, "-batch", clonef, NULL };
        char *fwd[] = { "sysctl", "-qw", "net.ipv4.ip_forward=1", NULL };
        char *nft[] = { "nft", "-f", nftf, NULL };
        if ((r = run_step(NULL, bnet->netns[0] ? host : host_nons, nc, err)) < 0 ||
            (r = run_step(NULL, clone, nc, err)) < 0 || (r = run_step(&nc->net, fwd, nc, err)) < 0 ||
            (r = run_step(&nc->net, nft, nc, err)) < 0) {
                nat_teardown(nc);
                return r;
        }
        nc->setup_ms = (double)(now_ns() - t0) / 1e6;
        unlink(hostf);
        unlink(clonef);
        unlink(nftf);
        return 0;
}

/* ---- dnsmasq --------------------------------------------------------------------- */

/* dnsmasq's path, or NULL if not installed (Debian: /usr/sbin/dnsmasq from dnsmasq-base). */
static const char *dnsmasq_path(void)
{
        static const char *const paths[] = { "/usr/sbin/dnsmasq", "/sbin/dnsmasq", "/usr/bin/dnsmasq" };
        for (size_t k = 0; k < ELEMENTSOF(paths); k++)
                if (access(paths[k], X_OK) == 0)
                        return paths[k];
        return NULL;
}

static void dnsmasq_stop(void)
{
        pid_t pid = dnsmasq_pid;
        if (pid <= 0)
                return;
        kill(pid, SIGTERM);
        for (int k = 0; k < 200; k++) { /* 2 s, then SIGKILL */
                if (waitpid(pid, NULL, WNOHANG) == pid) {
                        dnsmasq_pid = 0;
                        return;
                }
                usleep(10000);
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        dnsmasq_pid = 0;
}

/*
 * Start dnsmasq in @net's namespace on its bridge, DHCP only, with the
 * reservations in @conf (a file of dhcp-host= lines); its log goes to @log.
 * Returns once it is listening (or has exited: -ECHILD with its log's last line).
 */
static int dnsmasq_start(const char *bin, const struct vmm_net *net, const char *conf, const char *log,
                         struct rh_error *err)
{
        char range[96], iface[48], confarg[PATH_MAX + 16], logarg[PATH_MAX + 16], nspath[PATH_MAX];
        struct rh_ipaddr gw;
        uint8_t prefix = 24;

        if (rh_ip_parse(net->gateway, &gw, &prefix) < 0 || gw.family != 4)
                return rh_error_set(err, -EINVAL, "clone network gateway '%s' is not IPv4", net->gateway);
        uint32_t mask = prefix ? ~0u << (32 - prefix) : 0;
        gw.addr[3] = 0; /* a /24 or wider: the network */
        snprintf(range, sizeof(range), "--dhcp-range=%u.%u.%u.%u,static,%u.%u.%u.%u,1h", gw.addr[0], gw.addr[1],
                 gw.addr[2], gw.addr[3], mask >> 24, (mask >> 16) & 255, (mask >> 8) & 255, mask & 255);
        snprintf(iface, sizeof(iface), "--interface=%s", net->bridge);
        snprintf(confarg, sizeof(confarg), "--conf-file=%s", conf);
        snprintf(logarg, sizeof(logarg), "--log-facility=%s", log);
        snprintf(nspath, sizeof(nspath), "/run/netns/%s", net->netns);
        char *argv[] = { (char *)bin, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--port=0",
                         "--bind-interfaces", iface, "--except-interface=lo", range, confarg, "--leasefile-ro",
                         "--dhcp-authoritative", "--pid-file=", "--user=root", "--log-dhcp", logarg, NULL };
        int nsfd = -EBADF;
        if (net->netns[0] && (nsfd = open(nspath, O_RDONLY | O_CLOEXEC)) < 0)
                return rh_error_set(err, -errno, "%s: %s", nspath, strerror(errno));
        pid_t pid = fork();
        if (pid < 0) {
                int e = errno;
                if (nsfd >= 0)
                        close(nsfd);
                return rh_error_set(err, -e, "fork: %s", strerror(e));
        }
        if (pid == 0) {
                if (nsfd >= 0 && setns(nsfd, CLONE_NEWNET) < 0)
                        _exit(126);
                int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (nul >= 0) {
                        dup2(nul, 0);
                        dup2(nul, 1);
                        dup2(nul, 2);
                }
                vmm_signals_child();
                execv(bin, argv);
                _exit(127);
        }
        if (nsfd >= 0)
                close(nsfd);
        dnsmasq_pid = pid;
        /* Ready when its DHCP socket (port 67) is bound: poll /proc/PID/net/udp (its namespace's). */
        char udp[64];
        snprintf(udp, sizeof(udp), "/proc/%d/net/udp", (int)pid);
        for (int k = 0; k < 500; k++) { /* 5 s */
                int status;
                if (waitpid(pid, &status, WNOHANG) == pid) {
                        dnsmasq_pid = 0;
                        char text[4096] = "";
                        FILE *f = fopen(log, "re");
                        if (f) {
                                size_t len = fread(text, 1, sizeof(text) - 1, f);
                                text[len] = '\0';
                                fclose(f);
                        }
                        char *nl;
                        while ((nl = strrchr(text, '\n')) && !nl[1])
                                *nl = '\0';
                        char *last = strrchr(text, '\n');
                        return rh_error_set(err, -ECHILD, "dnsmasq exited (status %d): %s", status,
                                            last ? last + 1 : text[0] ? text : "no log");
                }
                FILE *f = fopen(udp, "re");
                char line[256];
                bool bound = false;
                while (f && fgets(line, sizeof(line), f))
                        bound |= strstr(line, ":0043 ") != NULL; /* local port 67 */
                if (f)
                        fclose(f);
                if (bound)
                        return 0;
                usleep(10000);
        }
        dnsmasq_stop();
        return rh_error_set(err, -ETIMEDOUT, "dnsmasq did not bind port 67 within 5 s (log %s)", log);
}

/* ---- the probe ------------------------------------------------------------------ */

/* A raw ICMP socket in namespace @netns ("" = ours): made on a thread moved there and back. */
static int raw_icmp_socket(const char *netns)
{
        char path[PATH_MAX];
        int nsfd = -EBADF, selffd = -EBADF, fd, r = 0;

        if (netns[0]) {
                snprintf(path, sizeof(path), "/run/netns/%s", netns);
                nsfd = open(path, O_RDONLY | O_CLOEXEC);
                selffd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
                if (nsfd < 0 || selffd < 0 || setns(nsfd, CLONE_NEWNET) < 0) {
                        r = -errno;
                        goto out;
                }
        }
        fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_ICMP);
        r = fd < 0 ? -errno : fd;
        if (selffd >= 0 && setns(selffd, CLONE_NEWNET) < 0)
                abort(); /* this thread would go on in the wrong namespace */
out:
        if (nsfd >= 0)
                close(nsfd);
        if (selffd >= 0)
                close(selffd);
        return r;
}

static uint16_t icmp_sum(const void *p, size_t n)
{
        const uint8_t *b = p;
        uint32_t s = 0;
        for (size_t i = 0; i + 1 < n; i += 2)
                s += (uint32_t)(b[i] << 8 | b[i + 1]);
        if (n & 1)
                s += (uint32_t)b[n - 1] << 8;
        while (s >> 16)
                s = (s & 0xffff) + (s >> 16);
        return htons((uint16_t)~s);
}

struct probe {
        int fd;
        struct in_addr dst;
        uint16_t id;
        uint64_t t0, t_reply;
        unsigned sent;
        volatile bool stop;
        pthread_t th;
        bool running;
};

static void *probe_main(void *arg)
{
        struct probe *p = arg;
        struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr = p->dst };
        uint8_t buf[1500];

        /* Stale replies from an earlier probe: different id, but drain them anyway. */
        while (recv(p->fd, buf, sizeof(buf), 0) > 0)
                ;
        for (uint64_t next = now_ns(); p->sent < NAT_PROBE_MAX && !p->stop;) {
                uint64_t now = now_ns();
                if (now >= next) {
                        struct {
                                struct icmphdr h;
                                uint64_t stamp;
                        } req = { 0 };
                        req.h.type = ICMP_ECHO;
                        req.h.un.echo.id = htons(p->id);
                        req.h.un.echo.sequence = htons((uint16_t)p->sent);
                        req.stamp = now;
                        req.h.checksum = icmp_sum(&req, sizeof(req));
                        sendto(p->fd, &req, sizeof(req), 0, (struct sockaddr *)&to, sizeof(to));
                        p->sent++;
                        next = now + NAT_PROBE_US * 1000ull;
                }
                struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
                uint64_t wait_ns = next > now_ns() ? next - now_ns() : 0;
                struct timespec ts = { 0, (long)wait_ns };
                if (ppoll(&pfd, 1, &ts, NULL) <= 0)
                        continue;
                ssize_t n;
                while ((n = recv(p->fd, buf, sizeof(buf), 0)) > 0) {
                        /* Untrusted packet: bounds first. */
                        if ((size_t)n < sizeof(struct iphdr))
                                continue;
                        const struct iphdr *ip = (const struct iphdr *)buf;
                        size_t hl = (size_t)ip->ihl * 4;
                        if (hl < sizeof(*ip) || (size_t)n < hl + sizeof(struct icmphdr))
                                continue;
                        const struct icmphdr *h = (const struct icmphdr *)(buf + hl);
                        if (ip->saddr == p->dst.s_addr && h->type == ICMP_ECHOREPLY &&
                            ntohs(h->un.echo.id) == p->id) {
                                p->t_reply = now_ns();
                                return NULL;
                        }
                }
        }
        return NULL;
}

static int probe_before_cont(void *ctx, const struct vmm_clone *c)
{
        struct probe *p = ctx;
        (void)c;
        uint16_t id;
        if (getrandom(&id, sizeof(id), 0) != sizeof(id))
                id = (uint16_t)now_ns();
        p->id = id;
        p->t_reply = 0;
        p->sent = 0;
        p->stop = false;
        p->t0 = now_ns();
        int r = pthread_create(&p->th, NULL, probe_main, p);
        if (r != 0)
                return -r;
        p->running = true;
        return 0;
}

/* Wait for the probe (@give_up: stop it now). Returns ms from the hook to the reply, NAN if none. */
static double probe_join(struct probe *p, bool give_up)
{
        if (!p->running)
                return NAN;
        if (give_up)
                p->stop = true;
        pthread_join(p->th, NULL);
        p->running = false;
        return p->t_reply ? (double)(p->t_reply - p->t0) / 1e6 : NAN;
}

/* ---- statistics --------------------------------------------------------------------- */

static int cmp_d(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

/* n / avg / p50 / p99 (nearest rank) / max / min of the non-NaN values; null if none. */
static json_t *stats_of(const double *vals, unsigned n)
{
        double *v = calloc(n ? n : 1, sizeof(double)), sum = 0;
        unsigned k = 0;
        for (unsigned i = 0; v && i < n; i++)
                if (!isnan(vals[i]))
                        v[k++] = vals[i], sum += vals[i];
        if (!k) {
                free(v);
                return json_null();
        }
        qsort(v, k, sizeof(double), cmp_d);
        json_t *o = json_pack("{s:i, s:f, s:f, s:f, s:f, s:f}", "n", (int)k, "avg", sum / k, "p50",
                              v[(unsigned)ceil(0.50 * k) - 1], "p99", v[(unsigned)ceil(0.99 * k) - 1], "max",
                              v[k - 1], "min", v[0]);
        free(v);
        return o;
}

static json_t *num_or_null(double v)
{
        return isnan(v) ? json_null() : json_real(v);
}

/* ---- the section ---------------------------------------------------------------------- */

#define KINDS 4
static const char *const kind_names[KINDS] = { "nat", "rehome", "nat_pooled", "dhcp" };

enum { F_SETUP, F_REACH, F_TEARDOWN, F_SPAWN, F_INCOMING, F_PATCH, F_RECONF, F_N };
static const char *const field_names[F_N] = { "setup_ms", "reachable_ms", "teardown_ms", "clone_spawn_ms",
                                              "clone_incoming_ms", "clone_patch_ms", "resume_applied_ms" };

json_t *bench_section_nat(const struct vmm_bench_opts *o, const struct vmm_net *net, const struct vmm_template *t,
                          const struct vmm_template *dhcp_t, const char *dhcp_why)
{
        unsigned n = o->nat_forks ? o->nat_forks : 1;
        json_t *s = json_object();
        struct rh_error err = { 0 };
        char dir[PATH_MAX];
        int fd;

        if (2 * n >= NAT_MAX) { /* per-fork and pooled namespaces side by side */
                json_object_set_new(s, "error", json_string("too many nat forks (at most 99)"));
                return s;
        }
        snprintf(dir, sizeof(dir), "%s/nat-%d", o->state_dir, (int)getpid());
        if (vmm_mkdir_p(dir, 0700) < 0) {
                json_object_set_new(s, "error", json_string("cannot create the nat work directory"));
                return s;
        }
        fd = raw_icmp_socket(net->netns);
        if (fd < 0) {
                char m[160];
                snprintf(m, sizeof(m), "raw ICMP socket in namespace %s: %s", net->netns, strerror(-fd));
                json_object_set_new(s, "error", json_string(m));
                vmm_rm_rf(dir);
                return s;
        }
        qemu_set_signal_extra(nat_signal_cleanup);

        /* kind 0 = per-fork NAT, 1 = rehome, 2 = pooled NAT, 3 = DHCP */
        double (*v[KINDS])[F_N] = { calloc(n, sizeof(double[F_N])), calloc(n, sizeof(double[F_N])),
                                    calloc(n, sizeof(double[F_N])), calloc(n, sizeof(double[F_N])) };
        json_t *samples[KINDS] = { json_array(), json_array(), json_array(), json_array() };
        struct nat_clone *pool = calloc(n, sizeof(*pool));
        double *pool_ms = calloc(n, sizeof(double));
        unsigned pooled = 0;
        if (!v[0] || !v[1] || !v[2] || !v[3] || !pool || !pool_ms) {
                for (int k = 0; k < KINDS; k++) {
                        free(v[k]);
                        json_decref(samples[k]);
                }
                free(pool);
                free(pool_ms);
                close(fd);
                qemu_set_signal_extra(NULL);
                vmm_rm_rf(dir);
                json_object_set_new(s, "error", json_string("out of memory"));
                return s;
        }
        static double step[5][NAT_MAX];
        for (int k = 0; k < 5; k++)
                for (unsigned i = 0; i < n; i++)
                        step[k][i] = NAN;
        unsigned ok[KINDS] = { 0 }, ident[KINDS] = { 0 }, processes = 0, ip_lines = 0, nft_rules = 0;
        struct vmm_fork_opts base;
        memset(&base, 0, sizeof(base));
        base.state_dir = o->state_dir;
        base.timeout_ms = 60000;
        rh_ip_parse(net->gateway, &base.ip, &base.prefix);
        base.has_ip = true;
        base.ip.addr[3] = 10;
        if (t->gateway[0] && rh_ip_parse(t->gateway, &base.gateway, NULL) == 0)
                base.has_gateway = true;

        /* The pool, before any clock: one prepared namespace per pooled fork. */
        for (unsigned i = 0; i < n; i++) {
                pool_ms[i] = NAN;
                err.msg[0] = '\0';
                if (nat_setup(net, t, dir, n + 1 + i, &pool[i], &err) == 0) {
                        pool_ms[i] = pool[i].setup_ms;
                        pooled++;
                } else {
                        bench_say(o, "  nat pool entry %u failed: %s", i + 1, err.msg);
                        pool[i].i = 0; /* marks it unusable */
                }
        }
        /* DHCP: dnsmasq with every reservation, before any clock (as a fleet's would run). */
        char dhcp_err[sizeof(err.msg)] = "";
        bool dhcp_on = false;
        if (dhcp_t) {
                const char *bin = dnsmasq_path();
                char conf[PATH_MAX], log[PATH_MAX], text[64];
                snprintf(conf, sizeof(conf), "%s/dnsmasq.conf", dir);
                snprintf(log, sizeof(log), "%s/dnsmasq.log", dir);
                FILE *f = bin ? fopen(conf, "we") : NULL;
                for (unsigned i = 0; f && i < n; i++) {
                        struct rh_ipaddr a = base.ip;
                        uint8_t mac[6];
                        char ip[64], m[18];
                        a.addr[3] = (uint8_t)(150 + i);
                        vmm_mac_for_ip(&a, mac);
                        rh_ip_format(&a, ip);
                        snprintf(text, sizeof(text), "dhcp-host=%s,%s\n", rh_mac_format(mac, m), ip);
                        fputs(text, f);
                }
                err.msg[0] = '\0';
                if (!bin)
                        snprintf(dhcp_err, sizeof(dhcp_err), "dnsmasq is not installed (apt-get install dnsmasq-base)");
                else if (!f || fclose(f) != 0)
                        snprintf(dhcp_err, sizeof(dhcp_err), "%s: cannot write", conf);
                else if (dnsmasq_start(bin, net, conf, log, &err) < 0)
                        snprintf(dhcp_err, sizeof(dhcp_err), "%s", err.msg);
                else
                        dhcp_on = true;
        } else {
                snprintf(dhcp_err, sizeof(dhcp_err), "%s", dhcp_why ? dhcp_why : "no DHCP template");
        }
        if (!dhcp_on)
                bench_say(o, "  dhcp baseline skipped: %s", dhcp_err);
        bench_say(o, "nat: %u per-fork NAT, %u pooled NAT (%u prepared), %u DHCP and %u rehome forks alternating "
                  "(template %s)", n, n, pooled, dhcp_on ? n : 0, n, t->name);
        static const int order[KINDS] = { 0, 2, 3, 1 };
        for (unsigned i = 0; i < n; i++)
                for (int ko = 0; ko < KINDS; ko++) {
                        const int kind = order[ko];
                        const bool natk = kind == 0 || kind == 2;
                        if (kind == 3 && !dhcp_on)
                                continue;
                        struct probe p = { .fd = fd };
                        struct vmm_fork_opts fo = base;
                        struct vmm_fork_result res;
                        struct nat_clone nc = { 0 };
                        char target[64], seen[18] = "";
                        uint8_t seen_mac[6];
                        int r = 0;
                        for (int f = 0; f < F_N; f++)
                                v[kind][i][f] = NAN;
                        err.msg[0] = '\0';
                        if (kind == 2) {
                                if (pool[i].i) {
                                        nc = pool[i];
                                        fo.net = &nc.net;
                                        snprintf(target, sizeof(target), "%s", nc.uniq);
                                } else {
                                        r = rh_error_set(&err, -ENODEV, "no prepared namespace for pooled fork %u",
                                                         i + 1);
                                }
                        } else if (kind == 0) {
                                r = nat_setup(net, t, dir, i + 1, &nc, &err);
                                if (r == 0) {
                                        fo.net = &nc.net;
                                        snprintf(target, sizeof(target), "%s", nc.uniq);
                                        v[0][i][F_SETUP] = nc.setup_ms;
                                        processes = nc.processes, ip_lines = nc.ip_lines, nft_rules = nc.nft_rules;
                                }
                        } else if (kind == 3) {
                                /* Its reserved address and MAC; the request sets only the MAC. */
                                fo.ip.addr[3] = (uint8_t)(150 + i);
                                vmm_mac_for_ip(&fo.ip, fo.mac);
                                fo.has_mac = true;
                                fo.mac_only = true;
                                rh_ip_format(&fo.ip, target);
                        } else {
                                rh_ip_format(&fo.ip, target);
                        }
                        if (r == 0) {
                                inet_pton(AF_INET, target, &p.dst);
                                r = bench_fork_measured(kind == 3 ? dhcp_t : t, &fo, !natk, probe_before_cont, NULL, &p, &res,
                                                        &err);
                                double reach = probe_join(&p, r < 0);
                                if (r == 0 && isnan(reach))
                                        r = rh_error_set(&err, -EHOSTUNREACH,
                                                         "%s: no echo reply within %u probes (%u ms)", target,
                                                         p.sent, p.sent * NAT_PROBE_US / 1000);
                                if (!isnan(reach))
                                        v[kind][i][F_REACH] = reach;
                                v[kind][i][F_SPAWN] = res.t.spawn;
                                v[kind][i][F_INCOMING] = res.t.incoming;
                                v[kind][i][F_PATCH] = !natk ? res.t.patch : NAN;
                                if (!natk && res.t.have_guest && res.t.resume_applied >= 0)
                                        v[kind][i][F_RECONF] = res.t.resume_applied;
                                /* Which identity answers, by ARP from its gateway side (not timed). */
                                if (r == 0) {
                                        char tip[64];
                                        snprintf(tip, sizeof(tip), "%s", !natk ? res.clone.ip : t->ip);
                                        *strchrnul(tip, '/') = '\0';
                                        if (vmm_probe_arp(!natk ? net : &nc.net, tip, seen_mac, 3) == 0) {
                                                rh_mac_format(seen_mac, seen);
                                                bool want = memcmp(seen_mac, !natk ? res.clone.mac : t->mac, 6) == 0;
                                                ident[kind] += want;
                                        }
                                }
                                if (res.clone.id[0]) {
                                        if (natk)
                                                res.clone.tap[0] = '\0'; /* goes with the namespace */
                                        vmm_clone_destroy(o->state_dir, &res.clone, NULL);
                                }
                        }
                        if (kind == 0) {
                                nat_teardown(&nc);
                                v[0][i][F_TEARDOWN] = nc.teardown_ms;
                        } else if (kind == 2 && pool[i].i) {
                                /* Back to the pool in a real fleet; here the run is over for it. */
                                nat_teardown(&pool[i]);
                        }
                        if (r == 0)
                                ok[kind]++;
                        else
                                bench_say(o, "  %s fork %u failed: %s", kind_names[kind], i + 1, err.msg);
                        json_t *x = json_pack("{s:s, s:i, s:s}", "address", target, "rc", r, "error",
                                              r ? err.msg : "");
                        for (int f = 0; f < F_N; f++)
                                json_object_set_new(x, field_names[f], num_or_null(v[kind][i][f]));
                        json_object_set_new(x, "probes_sent", json_integer(p.sent));
                        if (kind == 0) {
                                json_t *steps = json_array();
                                for (unsigned k = 0; k < nc.processes && k < ELEMENTSOF(step); k++) {
                                        json_array_append_new(steps, json_real(nc.step_ms[k]));
                                        step[k][i] = nc.step_ms[k];
                                }
                                json_object_set_new(x, "setup_steps_ms", steps);
                        }
                        json_object_set_new(x, "arp_mac", seen[0] ? json_string(seen) : json_null());
                        json_array_append_new(samples[kind], x);
                        if (o->progress)
                                fprintf(stderr, "\rbench:   %u/%u %s: reachable %.1f ms   ", i + 1, n,
                                        kind_names[kind], v[kind][i][F_REACH]);
                }
        if (o->progress)
                fputc('\n', stderr);
        for (unsigned i = 0; i < n; i++)
                if (pool[i].i)
                        nat_teardown(&pool[i]); /* those whose fork never ran */
        dnsmasq_stop();
        close(fd);
        qemu_set_signal_extra(NULL);
        vmm_rm_rf(dir);

        for (int kind = 0; kind < KINDS; kind++) {
                if (kind == 3 && !dhcp_on) {
                        json_object_set_new(s, "dhcp", json_pack("{s:s}", "skipped", dhcp_err));
                        json_decref(samples[kind]);
                        free(v[kind]);
                        continue;
                }
                json_t *g = json_object(), *st = json_object();
                double col[NAT_MAX];
                for (int f = 0; f < F_N; f++) {
                        for (unsigned i = 0; i < n; i++)
                                col[i] = v[kind][i][f];
                        json_t *x = stats_of(col, n);
                        if (!json_is_null(x))
                                json_object_set_new(st, field_names[f], x);
                        else
                                json_decref(x);
                }
                static const char *const labels[KINDS] = {
                        "per-clone NAT, set up per fork (template IP/MAC in its own netns)",
                        "rehome (mailbox handoff, new IP and MAC)",
                        "pooled NAT (netns, veth, nft prepared before timing; only the tap attach on the path)",
                        "DHCP (dnsmasq reservation per MAC; the request sets only the MAC, then busybox udhcpc)",
                };
                json_object_set_new(g, "label", json_string(labels[kind]));
                json_object_set_new(g, "forks", json_integer(n));
                json_object_set_new(g, "ok", json_integer(ok[kind]));
                /* NAT: the template's MAC answers for the template IP; rehome: the clone's own. */
                json_object_set_new(g, "identity_ok", json_integer(ident[kind]));
                json_object_set_new(g, "stats", st);
                json_object_set_new(g, "samples", samples[kind]);
                if (kind == 2) {
                        json_t *x = stats_of(pool_ms, n);
                        json_object_set_new(g, "pool_prepare_ms", x);
                        json_object_set_new(g, "prepared", json_integer(pooled));
                }
                if (kind == 3) {
                        json_object_set_new(g, "template", json_string(dhcp_t->name));
                        json_object_set_new(g, "server", json_string("dnsmasq (dhcp-host MAC,IP per clone)"));
                }
                json_object_set_new(s, kind_names[kind], g);
                free(v[kind]);
        }
        free(pool);
        free(pool_ms);
        {
                /* Where the set-up time goes, one row per process in the order run. */
                static const char *const names[5] = { "ip netns add", "ip -n BENCH -batch (veth, addr, route)",
                                                      "ip -n NS -batch (bridge, gateway, veth, neigh)",
                                                      "ip netns exec NS sysctl ip_forward=1",
                                                      "ip netns exec NS nft -f (DNAT + SNAT)" };
                json_t *arr = json_array();
                for (int k = 0; k < 5; k++)
                        json_array_append_new(arr, json_pack("{s:s, s:o}", "command", names[k], "stats",
                                                             stats_of(step[k], n)));
                json_object_set_new(s, "setup_steps", arr);
        }
        json_object_set_new(s, "template", json_string(t->name));
        json_object_set_new(s, "probe_interval_us", json_integer(NAT_PROBE_US));
        json_object_set_new(s, "gateway_mac", json_string(NAT_GW_MAC));
        {
                char tmac[18];
                json_object_set_new(s, "template_ip", json_string(t->ip));
                json_object_set_new(s, "template_mac", json_string(rh_mac_format(t->mac, tmac)));
        }
        json_object_set_new(s, "setup_commands",
                            json_pack("{s:i, s:i, s:i, s:i}", "processes", (int)processes, "ip_lines", (int)ip_lines,
                                      "nft_rules", (int)nft_rules, "teardown_processes", 1));
        json_t *nst = json_object_get(json_object_get(s, "nat"), "stats");
        json_t *rst = json_object_get(json_object_get(s, "rehome"), "stats");
        json_t *pst = json_object_get(json_object_get(s, "nat_pooled"), "stats");
        for (int q = 0; q < 2; q++) {
                const char *which = q ? "p99" : "p50";
                double a = json_number_value(json_object_get(json_object_get(nst, "reachable_ms"), which));
                double b = json_number_value(json_object_get(json_object_get(rst, "reachable_ms"), which));
                double hs = json_number_value(json_object_get(json_object_get(nst, "setup_ms"), which));
                char key[48];
                snprintf(key, sizeof(key), "ratio_reachable_%s", which);
                json_object_set_new(s, key, b > 0 && a > 0 ? json_real(a / b) : json_null());
                /* NAT's whole cost to reachable: its host set-up comes on top of its resume. */
                snprintf(key, sizeof(key), "ratio_setup_plus_reachable_%s", which);
                json_object_set_new(s, key, b > 0 && a > 0 && hs > 0 ? json_real((a + hs) / b) : json_null());
                /* Pooled NAT has nothing on top of its resume: the attach is in spawn, as for rehome. */
                double pa = json_number_value(json_object_get(json_object_get(pst, "reachable_ms"), which));
                snprintf(key, sizeof(key), "ratio_pooled_reachable_%s", which);
                json_object_set_new(s, key, b > 0 && pa > 0 ? json_real(pa / b) : json_null());
                double da = json_number_value(json_object_get(
                        json_object_get(json_object_get(json_object_get(s, "dhcp"), "stats"), "reachable_ms"), which));
                snprintf(key, sizeof(key), "ratio_dhcp_reachable_%s", which);
                json_object_set_new(s, key, b > 0 && da > 0 ? json_real(da / b) : json_null());
        }
        return s;
}
