/* SPDX-License-Identifier: MIT */
/*
 * Integration test of rehome-agent on real interfaces: two fresh network
 * namespaces joined by a veth pair; the real agent runs on one end (its own
 * UTS namespace too, for the host name) against a file-backed mailbox page on
 * tmpfs that this test patches with rh_mailbox_write_request. Each signal kind
 * is injected the way the kernel would deliver it (kmsg line into a FIFO,
 * vmclock page bump + notification, NEW_VMGENID=1 uevent, prearm fast poll,
 * the safety-net poll, vmclock-spin, and two lines written into the real
 * /dev/kmsg), and the result is checked from the
 * kernel with `ip -j` (not with the agent's own netlink code), from the wire
 * on the peer (gratuitous ARP, unsolicited NA, UDP ack with the nonce) and
 * from the ack record in the page.
 *
 * Usage: test-agent PATH-TO-rehome-agent. Needs root and `ip netns`:
 * exits 77 (skip) without them. Cleans up namespaces, files and the agent on
 * every path (atexit + signal handlers).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/netlink.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rehome/mailbox.h"
#include "rehome/request.h"
#include "unaligned.h"
#include "vmclock-abi.h"

#define PEER_IF      "rh0p"
#define AGENT_IF     "rh0"
#define UDP_PORT     5555
#define TEMPLATE_MAC "02:00:00:00:00:01"

static const char *agent_bin;
static char ns_a[64], ns_b[64], dir[128];
static pid_t agent_pid = -1;
static int ns_self = -1, ns_a_fd = -1, ns_b_fd = -1;
static int udp_fd = -1, cap_fd = -1;
static uint8_t *page;
static int failures;
static uint32_t next_seq = 1;

/* ------------------------------------------------------------------ */
/* Plumbing                                                            */

static void stop_agent(void)
{
        if (agent_pid <= 0)
                return;
        kill(agent_pid, SIGTERM);
        for (int i = 0; i < 200; i++) {
                if (waitpid(agent_pid, NULL, WNOHANG) == agent_pid) {
                        agent_pid = -1;
                        return;
                }
                usleep(10000);
        }
        kill(agent_pid, SIGKILL);
        waitpid(agent_pid, NULL, 0);
        agent_pid = -1;
}

static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void cleanup(void)
{
        char cmd[512];

        stop_agent();
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
        exit(1); /* runs cleanup() */
}

static int run(const char *fmt, ...)
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

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "FATAL: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        exit(1);
}

static void skip(const char *why)
{
        fprintf(stderr, "SKIP: %s\n", why);
        exit(77);
}

#define CHECK(cond, ...)                                                                                     \
        do {                                                                                                 \
                if (cond)                                                                                    \
                        fprintf(stderr, "ok   %s\n", #cond);                                                 \
                else {                                                                                       \
                        fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                      \
                        fprintf(stderr, __VA_ARGS__);                                                        \
                        fputc('\n', stderr);                                                                 \
                        failures++;                                                                          \
                }                                                                                            \
        } while (0)

static void enter_ns(int fd)
{
        if (setns(fd, CLONE_NEWNET) < 0)
                die("setns: %s", strerror(errno));
}

static uint64_t mono_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static char *slurp(const char *path)
{
        static char buf[65536];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return NULL;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n < 0)
                return NULL;
        buf[n] = '\0';
        return buf;
}

/* ------------------------------------------------------------------ */
/* Namespaces and the agent                                            */

static void setup_network(void)
{
        char path[128];

        snprintf(ns_a, sizeof(ns_a), "rhagent-a-%d", getpid());
        snprintf(ns_b, sizeof(ns_b), "rhagent-b-%d", getpid());
        if (run("ip netns add %s 2>/dev/null", ns_a) != 0) {
                ns_a[0] = '\0';
                skip("cannot create a network namespace (ip netns add)");
        }
        if (run("ip netns add %s", ns_b) != 0)
                die("ip netns add %s", ns_b);
        if (run("ip -n %s link add " AGENT_IF " address " TEMPLATE_MAC " type veth peer name " PEER_IF
                " netns %s",
                ns_a, ns_b) != 0)
                die("veth");
        /* The template's network: what every clone wakes up with. */
        if (run("ip -n %s link set lo up && ip -n %s link set " AGENT_IF " up && "
                "ip -n %s addr add 10.77.0.2/24 dev " AGENT_IF " && "
                "ip -n %s route add default via 10.77.0.1 && "
                "ip -n %s route add 10.66.0.0/16 via 10.77.0.1",
                ns_a, ns_a, ns_a, ns_a, ns_a) != 0)
                die("template network");
        /* The host side: the old and the new subnets. */
        if (run("ip -n %s link set lo up && ip -n %s link set " PEER_IF " up && "
                "ip -n %s addr add 10.77.0.1/24 dev " PEER_IF " && "
                "ip -n %s addr add 10.88.0.1/24 dev " PEER_IF " && "
                "ip -n %s addr add fd88::1/64 dev " PEER_IF " nodad",
                ns_b, ns_b, ns_b, ns_b, ns_b) != 0)
                die("peer network");

        ns_self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        snprintf(path, sizeof(path), "/run/netns/%s", ns_a);
        ns_a_fd = open(path, O_RDONLY | O_CLOEXEC);
        snprintf(path, sizeof(path), "/run/netns/%s", ns_b);
        ns_b_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (ns_self < 0 || ns_a_fd < 0 || ns_b_fd < 0)
                die("open netns: %s", strerror(errno));

        /* Host-side listeners live in namespace B. */
        enter_ns(ns_b_fd);
        {
                struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(UDP_PORT)};
                struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL)};

                udp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                if (udp_fd < 0 || bind(udp_fd, (struct sockaddr *)&sin, sizeof(sin)) < 0)
                        die("udp listener: %s", strerror(errno));
                cap_fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, htons(ETH_P_ALL));
                sll.sll_ifindex = (int)if_nametoindex(PEER_IF);
                if (cap_fd < 0 || bind(cap_fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
                        die("packet capture: %s", strerror(errno));
        }
        enter_ns(ns_self);
}

static void start_agent(const char *mailbox, char *const extra[])
{
        char *argv[48];
        int n = 0, out, err;
        char out_path[256], err_path[256], run_dir[256], resolv[256], hostfile[256];

        snprintf(out_path, sizeof(out_path), "%s/agent.out", dir);
        snprintf(err_path, sizeof(err_path), "%s/agent.err", dir);
        snprintf(run_dir, sizeof(run_dir), "%s/run", dir);
        snprintf(resolv, sizeof(resolv), "%s/resolv.conf", dir);
        snprintf(hostfile, sizeof(hostfile), "%s/hostname", dir);
        argv[n++] = (char *)agent_bin;
        argv[n++] = "--mailbox-file";
        argv[n++] = (char *)mailbox;
        argv[n++] = "--run-dir";
        argv[n++] = run_dir;
        argv[n++] = "--resolv-conf";
        argv[n++] = resolv;
        argv[n++] = "--hostname-file";
        argv[n++] = hostfile;
        argv[n++] = "-v";
        for (int i = 0; extra[i]; i++)
                argv[n++] = extra[i];
        argv[n] = NULL;

        out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        err = open(err_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (out < 0 || err < 0)
                die("agent output files: %s", strerror(errno));
        agent_pid = fork();
        if (agent_pid < 0)
                die("fork: %s", strerror(errno));
        if (agent_pid == 0) {
                if (setns(ns_a_fd, CLONE_NEWNET) < 0 || unshare(CLONE_NEWUTS) < 0)
                        _exit(126);
                (void)!sethostname("template", 8);
                dup2(out, STDOUT_FILENO);
                dup2(err, STDERR_FILENO);
                execv(agent_bin, argv);
                _exit(127);
        }
        close(out);
        close(err);
}

/* Wait for the n-th armed line; returns it (static). */
static const char *wait_armed(int nth)
{
        static char line[256];
        char path[256];
        uint64_t deadline = mono_ms() + 10000;

        snprintf(path, sizeof(path), "%s/agent.out", dir);
        while (mono_ms() < deadline) {
                const char *text = slurp(path), *p = text;
                int seen = 0;

                while (p && (p = strstr(p, "rehome-agent: armed "))) {
                        if (++seen == nth) {
                                size_t len = strcspn(p, "\n");
                                if (p[len] == '\n') {
                                        snprintf(line, sizeof(line), "%.*s", (int)len, p);
                                        return line;
                                }
                        }
                        p++;
                }
                if (waitpid(agent_pid, NULL, WNOHANG) == agent_pid) {
                        agent_pid = -1;
                        die("agent exited before arming: %s", slurp(path) ?: "");
                }
                usleep(5000);
        }
        die("agent did not arm (armed line %d)", nth);
}

static uint8_t *map_mailbox(const char *path)
{
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        void *p;

        if (fd < 0 || ftruncate(fd, RH_MAILBOX_SIZE) < 0)
                die("mailbox %s: %s", path, strerror(errno));
        p = mmap(NULL, RH_MAILBOX_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        close(fd);
        if (p == MAP_FAILED)
                die("mmap mailbox: %s", strerror(errno));
        return p;
}

/* ------------------------------------------------------------------ */
/* Requests and signals                                                */

struct identity {
        const char *mac, *ip4, *ip6, *gw4, *dns;
        unsigned prefix4, mtu;
        const char *hostname;
        const char *ifname; /* NULL: match by the template MAC */
        bool bad_v6_route;  /* a route the kernel refuses (half-way failure) */
};

static struct rh_request make_request(const struct identity *id)
{
        struct rh_request req;
        struct rh_ipaddr ip;
        uint8_t prefix;

        memset(&req, 0, sizeof(req));
        req.flags = RH_REQ_FLUSH_NEIGH | RH_REQ_ANNOUNCE | RH_REQ_REPLACE_ADDRS | RH_REQ_ACK_EARLY;
        req.n_ifaces = 1;
        if (id->ifname) {
                req.ifaces[0].match = RH_MATCH_NAME;
                snprintf(req.ifaces[0].name, sizeof(req.ifaces[0].name), "%s", id->ifname);
        } else {
                req.ifaces[0].match = RH_MATCH_MAC;
                rh_mac_parse(TEMPLATE_MAC, req.ifaces[0].match_mac);
        }
        req.ifaces[0].has_mac = true;
        rh_mac_parse(id->mac, req.ifaces[0].mac);
        req.ifaces[0].mtu = id->mtu;

        rh_ip_parse(id->ip4, &ip, &prefix);
        req.addrs[req.n_addrs] = (struct rh_addr){.iface = 0, .family = 4, .prefix = (uint8_t)id->prefix4};
        memcpy(req.addrs[req.n_addrs++].addr, ip.addr, 16);
        if (id->ip6) {
                rh_ip_parse(id->ip6, &ip, &prefix);
                req.addrs[req.n_addrs] = (struct rh_addr){.iface = 0, .family = 6, .prefix = 64};
                memcpy(req.addrs[req.n_addrs++].addr, ip.addr, 16);
        }
        rh_ip_parse(id->gw4, &ip, &prefix);
        req.routes[req.n_routes] = (struct rh_route){.iface = 0, .family = 4, .has_gateway = true};
        memcpy(req.routes[req.n_routes++].gateway, ip.addr, 16);
        req.routes[req.n_routes] = (struct rh_route){
                .iface = 0, .family = 4, .dst_prefix = 16, .has_gateway = true, .metric = 50};
        rh_ip_parse("10.99.0.0", &ip, &prefix);
        memcpy(req.routes[req.n_routes].dst, ip.addr, 16);
        rh_ip_parse(id->gw4, &ip, &prefix);
        memcpy(req.routes[req.n_routes++].gateway, ip.addr, 16);
        if (id->bad_v6_route) {
                /* The gateway is on no link: the kernel refuses the route. */
                req.routes[req.n_routes] =
                        (struct rh_route){.iface = 0, .family = 6, .dst_prefix = 48, .has_gateway = true};
                rh_ip_parse("fd77:1::", &ip, &prefix);
                memcpy(req.routes[req.n_routes].dst, ip.addr, 16);
                rh_ip_parse("fd99::1", &ip, &prefix);
                memcpy(req.routes[req.n_routes++].gateway, ip.addr, 16);
        }
        if (id->dns) {
                rh_ip_parse(id->dns, &req.dns[0], &prefix);
                req.n_dns = 1;
                req.n_search = 1;
                snprintf(req.search[0], sizeof(req.search[0]), "clones.example");
        }
        if (id->hostname)
                snprintf(req.hostname, sizeof(req.hostname), "%s", id->hostname);
        req.has_ack_udp = true;
        rh_ip_parse("10.88.0.1", &req.ack_addr, &prefix);
        req.ack_port = UDP_PORT;
        return req;
}

static uint64_t post_request(struct rh_request *req)
{
        struct rh_error err = {0};
        uint64_t nonce = ((uint64_t)rand() << 32) ^ (uint64_t)rand() ^ mono_ms();

        req->seq = next_seq++;
        req->nonce = nonce;
        if (rh_mailbox_write_request(page, req, &err) < 0)
                die("write request: %s", err.msg);
        return nonce;
}

static void drain_listeners(void)
{
        char buf[2048];

        while (recv(udp_fd, buf, sizeof(buf), 0) > 0)
                ;
        while (recv(cap_fd, buf, sizeof(buf), 0) > 0)
                ;
}

static int kmsg_fifo = -1, vmclock_fd = -1, vmclock_notify = -1;

static void signal_kmsg(void)
{
        static const char line[] = "6,4242,123456789,-;random: crng reseeded due to virtual machine fork\n";

        if (write(kmsg_fifo, line, sizeof(line) - 1) < 0)
                die("kmsg fifo: %s", strerror(errno));
}

static void vmclock_bump(void)
{
        struct rh_vmclock_abi clk;

        if (pread(vmclock_fd, &clk, sizeof(clk), 0) != sizeof(clk))
                die("vmclock read");
        /* As a hypervisor does it: odd seq, counters, even seq. */
        clk.seq_count++;
        pwrite(vmclock_fd, &clk, sizeof(clk), 0);
        clk.disruption_marker++;
        clk.vm_generation_counter++;
        pwrite(vmclock_fd, &clk, sizeof(clk), 0);
        clk.seq_count++;
        if (pwrite(vmclock_fd, &clk, sizeof(clk), 0) != sizeof(clk))
                die("vmclock write");
}

static void signal_vmclock(void)
{
        vmclock_bump();
        if (write(vmclock_notify, "!", 1) != 1)
                die("vmclock notify: %s", strerror(errno));
}

static void signal_uevent(void)
{
        static const char msg[] = "change@/devices/platform/QEMUVGID:00\0ACTION=change\0"
                                  "DEVPATH=/devices/platform/QEMUVGID:00\0SUBSYSTEM=platform\0"
                                  "NEW_VMGENID=1\0SEQNUM=4242";
        struct sockaddr_nl dst = {.nl_family = AF_NETLINK, .nl_groups = 1};
        int fd;

        enter_ns(ns_a_fd);
        fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
        enter_ns(ns_self);
        if (fd < 0)
                die("uevent socket: %s", strerror(errno));
        if (sendto(fd, msg, sizeof(msg), 0, (struct sockaddr *)&dst, sizeof(dst)) < 0)
                die("uevent send: %s", strerror(errno));
        close(fd);
}

static void create_vmclock(const char *path, const char *notify)
{
        struct rh_vmclock_abi clk = {0};
        static uint8_t zero[4096];

        vmclock_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (vmclock_fd < 0 || pwrite(vmclock_fd, zero, sizeof(zero), 0) != sizeof(zero))
                die("vmclock file: %s", strerror(errno));
        clk.magic = RH_VMCLOCK_MAGIC;
        clk.size = 4096;
        clk.version = 1;
        clk.counter_id = 0xff;
        clk.flags = RH_VMCLOCK_FLAG_VM_GEN_COUNTER_PRESENT | RH_VMCLOCK_FLAG_NOTIFICATION_PRESENT;
        clk.vm_generation_counter = 7;
        if (pwrite(vmclock_fd, &clk, sizeof(clk), 0) != sizeof(clk))
                die("vmclock init");
        if (notify) {
                if (mkfifo(notify, 0600) < 0)
                        die("mkfifo: %s", strerror(errno));
                vmclock_notify = open(notify, O_RDWR | O_CLOEXEC | O_NONBLOCK);
        }
}

/* Wait for a final ack of @seq in the page. */
static bool wait_ack(uint32_t seq, struct rh_ack *ret_ack)
{
        uint64_t deadline = mono_ms() + 10000;

        while (mono_ms() < deadline) {
                struct rh_ack ack;

                if (rh_mailbox_read_ack(page, &ack, NULL) == 0 && ack.seq == seq &&
                    ack.status >= RH_ACK_APPLIED) {
                        *ret_ack = ack;
                        return true;
                }
                if (agent_pid > 0 && waitpid(agent_pid, NULL, WNOHANG) == agent_pid) {
                        agent_pid = -1;
                        fprintf(stderr, "agent died\n");
                        return false;
                }
                usleep(1000);
        }
        return false;
}

/* Receive UDP lines for up to @ms; return the first containing @needle. */
static bool udp_expect(const char *needle, char *ret_line, size_t len, unsigned ms)
{
        uint64_t deadline = mono_ms() + ms;

        while (mono_ms() < deadline) {
                char buf[1024];
                ssize_t n = recv(udp_fd, buf, sizeof(buf) - 1, 0);

                if (n > 0) {
                        buf[n] = '\0';
                        if (strstr(buf, needle)) {
                                snprintf(ret_line, len, "%s", buf);
                                return true;
                        }
                        continue;
                }
                usleep(1000);
        }
        return false;
}

/* Look for a gratuitous ARP (sender = target = @ip4, sender MAC @mac) and an
 * unsolicited NA for @ip6 in what the peer captured. */
static void check_announcements(const char *mac_s, const char *ip4, const char *ip6)
{
        uint8_t mac[6], v4[4], v6[16];
        bool garp = false, na = false;
        uint64_t deadline = mono_ms() + 3000;

        rh_mac_parse(mac_s, mac);
        inet_pton(AF_INET, ip4, v4);
        if (ip6)
                inet_pton(AF_INET6, ip6, v6);
        while (mono_ms() < deadline && !(garp && (na || !ip6))) {
                uint8_t f[2048];
                ssize_t n = recv(cap_fd, f, sizeof(f), 0);

                if (n <= 0) {
                        usleep(1000);
                        continue;
                }
                if (n >= 42 && f[12] == 0x08 && f[13] == 0x06 && memcmp(f + 6, mac, 6) == 0 &&
                    memcmp(f + 22, mac, 6) == 0 && memcmp(f + 28, v4, 4) == 0 && memcmp(f + 38, v4, 4) == 0)
                        garp = true;
                if (ip6 && n >= 14 + 40 + 24 && f[12] == 0x86 && f[13] == 0xdd && f[14 + 6] == 58 &&
                    f[14 + 40] == 136 && memcmp(f + 14 + 40 + 8, v6, 16) == 0 && (f[14 + 40 + 4] & 0x20) &&
                    f[14 + 7] == 255)
                        na = true;
        }
        CHECK(garp, "no gratuitous ARP for %s from %s on the peer", ip4, mac_s);
        if (ip6)
                CHECK(na, "no unsolicited neighbour advertisement for %s", ip6);
}

/* ------------------------------------------------------------------ */
/* Kernel state via `ip -j` in the agent's namespace                    */

static json_t *ip_json(const char *args)
{
        char cmd[256];
        static char out[65536];
        size_t len = 0;
        FILE *f;
        json_error_t jerr;
        json_t *j;

        snprintf(cmd, sizeof(cmd), "ip -j -n %s %s", ns_a, args);
        f = popen(cmd, "r");
        if (!f)
                die("popen %s", cmd);
        len = fread(out, 1, sizeof(out) - 1, f);
        pclose(f);
        out[len] = '\0';
        j = json_loads(out, 0, &jerr);
        if (!j)
                die("%s: bad JSON: %s", cmd, jerr.text);
        return j;
}

struct kstate {
        char mac[32];
        int mtu;
        bool up;
        char addrs[8][64]; /* "10.88.0.5/24", global scope only */
        int n_addrs;
        char ll[4][64]; /* "fe80::ff:fe00:1/64", link scope */
        int n_ll;
        char routes[16][128]; /* "default via 10.88.0.1 metric 0" */
        int n_routes;
};

static void read_kstate(struct kstate *k)
{
        json_t *links, *addrs, *routes, *r6, *e, *flag;
        size_t i;

        memset(k, 0, sizeof(*k));
        links = ip_json("link show dev " AGENT_IF);
        e = json_array_get(links, 0);
        snprintf(k->mac, sizeof(k->mac), "%s", json_string_value(json_object_get(e, "address")) ?: "");
        k->mtu = (int)json_integer_value(json_object_get(e, "mtu"));
        json_array_foreach(json_object_get(e, "flags"), i,
                           flag) if (strcmp(json_string_value(flag) ?: "", "UP") == 0) k->up = true;
        json_decref(links);

        addrs = ip_json("addr show dev " AGENT_IF);
        json_array_foreach(json_object_get(json_array_get(addrs, 0), "addr_info"), i, e)
        {
                if (strcmp(json_string_value(json_object_get(e, "scope")) ?: "", "link") == 0 && k->n_ll < 4)
                        snprintf(k->ll[k->n_ll++], 64, "%s/%d", json_string_value(json_object_get(e, "local")) ?: "?",
                                 (int)json_integer_value(json_object_get(e, "prefixlen")));
                if (strcmp(json_string_value(json_object_get(e, "scope")) ?: "", "global") != 0)
                        continue;
                if (k->n_addrs < 8)
                        snprintf(k->addrs[k->n_addrs++], 64, "%s/%d",
                                 json_string_value(json_object_get(e, "local")) ?: "?",
                                 (int)json_integer_value(json_object_get(e, "prefixlen")));
        }
        json_decref(addrs);

        routes = ip_json("-4 route show table main");
        r6 = ip_json("-6 route show table main");
        json_array_extend(routes, r6);
        json_decref(r6);
        json_array_foreach(routes, i, e)
        {
                const char *proto = json_string_value(json_object_get(e, "protocol"));
                const char *gw = json_string_value(json_object_get(e, "gateway"));

                if (proto && strcmp(proto, "kernel") == 0)
                        continue;
                if (k->n_routes < 16)
                        snprintf(k->routes[k->n_routes++], 128, "%s%s%s metric %d",
                                 json_string_value(json_object_get(e, "dst")) ?: "?", gw ? " via " : "",
                                 gw ?: "", (int)json_integer_value(json_object_get(e, "metric")));
        }
        json_decref(routes);
}

static bool has(char list[][64], int n, const char *s)
{
        for (int i = 0; i < n; i++)
                if (strcmp(list[i], s) == 0)
                        return true;
        return false;
}

/* "fe80::<modified EUI-64 of @mac>/64", as `ip` prints it. */
static void eui64_link_local(const char *mac, char out[64])
{
        uint8_t m[6], a[16] = {0xfe, 0x80};
        char text[INET6_ADDRSTRLEN];

        if (rh_mac_parse(mac, m) < 0)
                die("bad MAC %s", mac);
        a[8] = m[0] ^ 0x02, a[9] = m[1], a[10] = m[2], a[11] = 0xff, a[12] = 0xfe;
        a[13] = m[3], a[14] = m[4], a[15] = m[5];
        inet_ntop(AF_INET6, a, text, sizeof(text));
        snprintf(out, 64, "%s/64", text);
}

/* The link-local address is the new MAC's EUI-64 one and the old MAC's is gone. */
static void check_link_local(struct kstate *k, const char *mac, const char *old_mac)
{
        char want[64], old[64];

        eui64_link_local(mac, want);
        eui64_link_local(old_mac, old);
        CHECK(has(k->ll, k->n_ll, want), "link-local %s for MAC %s missing (have %d: %s)", want, mac, k->n_ll,
              k->n_ll ? k->ll[0] : "none");
        CHECK(!has(k->ll, k->n_ll, old), "old MAC %s's link-local %s still there", old_mac, old);
}

static bool has_route(const struct kstate *k, const char *s)
{
        for (int i = 0; i < k->n_routes; i++)
                if (strcmp(k->routes[i], s) == 0)
                        return true;
        return false;
}

static void dump_kstate(const struct kstate *k)
{
        fprintf(stderr, "  kernel: mac %s mtu %d %s; addrs:", k->mac, k->mtu, k->up ? "UP" : "DOWN");
        for (int i = 0; i < k->n_addrs; i++)
                fprintf(stderr, " %s", k->addrs[i]);
        fprintf(stderr, "; routes:");
        for (int i = 0; i < k->n_routes; i++)
                fprintf(stderr, " [%s]", k->routes[i]);
        fputc('\n', stderr);
}

static bool kstate_equal(const struct kstate *x, const struct kstate *y)
{
        if (strcmp(x->mac, y->mac) || x->mtu != y->mtu || x->up != y->up || x->n_addrs != y->n_addrs ||
            x->n_routes != y->n_routes)
                return false;
        for (int i = 0; i < x->n_addrs; i++)
                if (strcmp(x->addrs[i], y->addrs[i]))
                        return false;
        for (int i = 0; i < x->n_routes; i++)
                if (strcmp(x->routes[i], y->routes[i]))
                        return false;
        return true;
}

static void agent_hostname(char *buf, size_t len)
{
        char path[64], tmp[128];
        int fds[2];
        pid_t pid;
        ssize_t n;

        snprintf(path, sizeof(path), "/proc/%d/ns/uts", agent_pid);
        if (pipe(fds) < 0)
                die("pipe");
        pid = fork();
        if (pid == 0) {
                struct utsname u;
                int fd = open(path, O_RDONLY);
                if (fd < 0 || setns(fd, CLONE_NEWUTS) < 0 || uname(&u) < 0)
                        _exit(1);
                (void)!write(fds[1], u.nodename, strlen(u.nodename));
                _exit(0);
        }
        close(fds[1]);
        n = read(fds[0], tmp, sizeof(tmp) - 1);
        close(fds[0]);
        waitpid(pid, NULL, 0);
        tmp[n > 0 ? n : 0] = '\0';
        snprintf(buf, len, "%s", tmp);
}

/* Everything the identity promises, checked from the kernel and the wire. */
static void check_identity(const struct identity *id, uint64_t nonce, const struct rh_ack *ack,
                           bool expect_announce)
{
        struct kstate k;
        char want[128], line[1024];

        read_kstate(&k);
        dump_kstate(&k);
        CHECK(strcmp(k.mac, id->mac) == 0, "MAC %s, want %s", k.mac, id->mac);
        CHECK(k.mtu == (int)id->mtu, "MTU %d, want %u", k.mtu, id->mtu);
        CHECK(k.up, "link down");
        snprintf(want, sizeof(want), "%s/%u", id->ip4, id->prefix4);
        CHECK(has(k.addrs, k.n_addrs, want), "no address %s", want);
        CHECK(!has(k.addrs, k.n_addrs, "10.77.0.2/24"), "template address still there");
        CHECK(k.n_addrs == (id->ip6 ? 2 : 1), "%d global addresses", k.n_addrs);
        if (id->ip6) {
                snprintf(want, sizeof(want), "%s/64", id->ip6);
                CHECK(has(k.addrs, k.n_addrs, want), "no address %s", want);
        }
        snprintf(want, sizeof(want), "default via %s metric 0", id->gw4);
        CHECK(has_route(&k, want), "no route %s", want);
        snprintf(want, sizeof(want), "10.99.0.0/16 via %s metric 50", id->gw4);
        CHECK(has_route(&k, want), "no route %s", want);
        CHECK(!has_route(&k, "10.66.0.0/16 via 10.77.0.1 metric 0"), "template route still there");

        CHECK(ack->status == RH_ACK_APPLIED, "ack status %s: %s", rh_ack_status_name(ack->status),
              ack->error);
        CHECK(ack->nonce == nonce, "ack nonce %016" PRIx64 ", want %016" PRIx64, ack->nonce, nonce);
        CHECK(ack->t_signal_ns <= ack->t_read_ns && ack->t_read_ns <= ack->t_applied_ns &&
                      ack->t_applied_ns <= ack->t_ack_ns,
              "stamps out of order");
        snprintf(want, sizeof(want), "stage=mailbox mac=%s ip=%s nonce=%016" PRIx64, id->mac, id->ip4, nonce);
        CHECK(udp_expect(want, line, sizeof(line), 3000), "no UDP '%s'", want);
        snprintf(want, sizeof(want), "stage=applied mac=%s ip=%s nonce=%016" PRIx64, id->mac, id->ip4, nonce);
        CHECK(udp_expect(want, line, sizeof(line), 3000), "no UDP '%s'", want);
        {
                struct rh_ack_line parsed;
                struct rh_error perr = {0};

                CHECK(rh_ack_line_parse(line, strlen(line), &parsed, &perr) == 0, "%s", perr.msg);
                CHECK(strcmp(parsed.stage, "applied") == 0 && strcmp(parsed.mac, id->mac) == 0 &&
                              strcmp(parsed.ip, id->ip4) == 0 && parsed.has_nonce && parsed.nonce == nonce &&
                              parsed.has_seq && parsed.seq == ack->seq &&
                              strcmp(parsed.signal, rh_signal_name(ack->signal)) == 0,
                      "parsed: stage %s mac %s ip %s signal %s", parsed.stage, parsed.mac, parsed.ip,
                      parsed.signal);
        }
        if (expect_announce)
                check_announcements(id->mac, id->ip4, id->ip6);
        if (id->hostname) {
                char host[128], path[256];
                agent_hostname(host, sizeof(host));
                CHECK(strcmp(host, id->hostname) == 0, "host name '%s', want '%s'", host, id->hostname);
                snprintf(path, sizeof(path), "%s/hostname", dir);
                snprintf(want, sizeof(want), "%s\n", id->hostname);
                CHECK(slurp(path) && strcmp(slurp(path), want) == 0, "%s", path);
        }
        if (id->dns) {
                char path[256];
                snprintf(path, sizeof(path), "%s/resolv.conf", dir);
                snprintf(want, sizeof(want), "nameserver %s\nsearch clones.example\n", id->dns);
                CHECK(slurp(path) && strstr(slurp(path), want), "resolv.conf: %s", slurp(path) ?: "(none)");
        }
}

static void check_armed_line(const char *line, uint32_t generation)
{
        unsigned long long gpa = 0;
        char token[64] = "";
        unsigned major = 99, minor = 99;
        char tail[8] = "";
        struct rh_arm arm;
        char hex[40];
        int n = sscanf(line, "rehome-agent: armed gpa=0x%llx token=%63s abi=%u.%u%7s", &gpa, token, &major,
                       &minor, tail);

        CHECK(n == 4, "armed line '%s' does not parse (%d fields)", line, n);
        CHECK(strlen(token) == 32, "token '%s' is not 32 hex", token);
        CHECK(major == RH_MAILBOX_ABI_MAJOR && minor == RH_MAILBOX_ABI_MINOR, "abi %u.%u", major, minor);
        CHECK(rh_mailbox_arm_read(page, RH_MAILBOX_SIZE, &arm, NULL) == 0, "arm header invalid");
        for (unsigned i = 0; i < RH_TOKEN_LEN; i++)
                snprintf(hex + 2 * i, 3, "%02x", arm.token[i]);
        CHECK(strcmp(hex, token) == 0, "page token %s, line token %s", hex, token);
        CHECK(arm.gpa == gpa, "page gpa 0x%" PRIx64 ", line 0x%llx", arm.gpa, gpa);
        CHECK(gpa != 0 && gpa % 4096 == 0, "gpa 0x%llx", gpa);
        CHECK(arm.arm_generation == generation, "arm generation %u, want %u", arm.arm_generation, generation);
        CHECK((arm.caps & (RH_CAP_SIGNAL_VMCLOCK | RH_CAP_SIGNAL_VMGENID_KMSG | RH_CAP_SIGNAL_VMGENID_UEVENT |
                           RH_CAP_SIGNAL_POLL)) == (RH_CAP_SIGNAL_VMCLOCK | RH_CAP_SIGNAL_VMGENID_KMSG |
                                                    RH_CAP_SIGNAL_VMGENID_UEVENT | RH_CAP_SIGNAL_POLL),
              "caps 0x%x", arm.caps);
}

/* ------------------------------------------------------------------ */
/* Scenarios                                                           */

static const struct identity clone1 = {
        .mac = "02:aa:00:00:00:05",
        .ip4 = "10.88.0.5",
        .prefix4 = 24,
        .ip6 = "fd88::5",
        .gw4 = "10.88.0.1",
        .mtu = 1400,
        .dns = "10.88.0.53",
        .hostname = "clone-1",
};
static const struct identity clone2 = {
        .mac = "02:aa:00:00:00:06",
        .ip4 = "10.88.0.6",
        .prefix4 = 24,
        .gw4 = "10.88.0.1",
        .mtu = 1450,
        .hostname = "clone-2",
        .ifname = AGENT_IF,
};

/* clone1 again on a link that no longer has the template's MAC: by name. */
static const struct identity clone1_by_name = {
        .mac = "02:aa:00:00:00:05",
        .ip4 = "10.88.0.5",
        .prefix4 = 24,
        .ip6 = "fd88::5",
        .gw4 = "10.88.0.1",
        .mtu = 1400,
        .dns = "10.88.0.53",
        .hostname = "clone-1",
        .ifname = AGENT_IF,
};

static void handoff_ok(const char *what, const struct identity *id, void (*inject)(void),
                       uint32_t want_signal, bool announce)
{
        struct rh_request req = make_request(id);
        struct rh_ack ack;
        uint64_t nonce;

        fprintf(stderr, "--- %s\n", what);
        drain_listeners();
        nonce = post_request(&req);
        if (inject)
                inject();
        if (!wait_ack(req.seq, &ack)) {
                CHECK(false, "no ack for seq %u", req.seq);
                return;
        }
        CHECK(ack.signal == want_signal, "signal %s, want %s", rh_signal_name(ack.signal),
              rh_signal_name(want_signal));
        check_identity(id, nonce, &ack, announce);
}

static void handoff_invalid(const char *what, struct rh_request *req, void (*corrupt)(void), bool expect_udp,
                            const char *want_error)
{
        struct kstate before, after;
        struct rh_ack ack;
        uint64_t nonce;
        char line[1024], want[128];

        fprintf(stderr, "--- %s\n", what);
        read_kstate(&before);
        drain_listeners();
        if (corrupt) {
                /* Write a valid request, then break it the way a bad host would. */
                uint32_t seq = next_seq;
                nonce = post_request(req);
                (void)seq;
                corrupt();
        } else
                nonce = post_request(req);
        signal_kmsg();
        if (!wait_ack(req->seq, &ack)) {
                CHECK(false, "no ack for seq %u", req->seq);
                return;
        }
        CHECK(ack.status == RH_ACK_INVALID, "status %s", rh_ack_status_name(ack.status));
        CHECK(ack.applied == 0, "applied 0x%x", ack.applied);
        CHECK(strstr(ack.error, want_error) != NULL, "error '%s' lacks '%s'", ack.error, want_error);
        CHECK(ack.nonce == nonce, "nonce");
        fprintf(stderr, "  ack error: %s\n", ack.error);
        read_kstate(&after);
        CHECK(kstate_equal(&before, &after), "network changed by an invalid request");
        if (expect_udp) {
                snprintf(want, sizeof(want), "stage=error status=invalid nonce=%016" PRIx64, nonce);
                CHECK(udp_expect(want, line, sizeof(line), 3000), "no UDP '%s'", want);
                CHECK(strstr(line, want_error) != NULL, "UDP error line '%s'", line);
                {
                        /* The host's parser must read it: stage, nonce, seq, the whole error. */
                        struct rh_ack_line parsed;
                        struct rh_error perr = {0};

                        CHECK(rh_ack_line_parse(line, strlen(line), &parsed, &perr) == 0, "%s", perr.msg);
                        CHECK(strcmp(parsed.stage, "error") == 0 && parsed.has_nonce &&
                                      parsed.nonce == nonce && parsed.has_seq && parsed.seq == req->seq &&
                                      strcmp(parsed.error, ack.error) == 0,
                              "parsed: stage %s nonce %016" PRIx64 " seq %u error '%s'", parsed.stage,
                              parsed.nonce, parsed.seq, parsed.error);
                }
        }
}

/* Set the first IPv4 address's prefix to 40 and fix the CRC: valid framing,
 * invalid content. */
static void corrupt_prefix(void)
{
        uint8_t *h = page + RH_OFF_REQUEST, *p = page + RH_OFF_PAYLOAD;
        uint32_t len, seq;
        size_t off = 0;

        memcpy(&seq, h, 4); /* the stored bytes, put back unchanged below */
        memset(h, 0, 4);    /* unpublish while editing */
        len = unaligned_read_le32(h + offsetof(struct rh_wire_request, payload_len));
        while (off + 4 <= len) {
                uint16_t type = unaligned_read_le16(p + off), vlen = unaligned_read_le16(p + off + 2);
                if (type == RH_TLV_ADDR) {
                        p[off + 4 + 2] = 40;
                        break;
                }
                off += 4 + ((vlen + 3u) & ~3u);
        }
        unaligned_write_le32(h + offsetof(struct rh_wire_request, crc32c), rh_crc32c(0, h + 0x08, 0x18 + len));
        __atomic_store_n((uint32_t *)h, seq, __ATOMIC_RELEASE);
}

static void corrupt_crc(void)
{
        page[RH_OFF_PAYLOAD + 5] ^= 0x5a;
}

static void scenario_main(void)
{
        char mailbox[256], kmsg[256], vmclock[256], notify[256], run_file[256];
        const char *line;
        char *extra[] = {
                "--kmsg", kmsg, "--vmclock", vmclock, "--vmclock-notify", notify, "--poll-interval-ms",
                "200",    NULL};
        struct rh_ack ack;

        snprintf(mailbox, sizeof(mailbox), "%s/mailbox", dir);
        snprintf(kmsg, sizeof(kmsg), "%s/kmsg", dir);
        snprintf(vmclock, sizeof(vmclock), "%s/vmclock", dir);
        snprintf(notify, sizeof(notify), "%s/vmclock-notify", dir);
        snprintf(run_file, sizeof(run_file), "%s/run/armed", dir);
        page = map_mailbox(mailbox);
        if (mkfifo(kmsg, 0600) < 0)
                die("mkfifo: %s", strerror(errno));
        kmsg_fifo = open(kmsg, O_RDWR | O_CLOEXEC | O_NONBLOCK);
        create_vmclock(vmclock, notify);

        start_agent(mailbox, extra);
        line = wait_armed(1);
        fprintf(stderr, "--- arm: %s\n", line);
        check_armed_line(line, 1);
        {
                char want[300];
                snprintf(want, sizeof(want), "%s\n", line);
                CHECK(slurp(run_file) && strcmp(slurp(run_file), want) == 0, "%s: '%s'", run_file,
                      slurp(run_file) ?: "(none)");
        }

        /* A resume without a request: logged, not an error, no ack. */
        signal_kmsg();
        usleep(100000);
        CHECK(rh_mailbox_read_ack(page, &ack, NULL) == -ENODATA, "ack without a request");

        handoff_ok("handoff 1: vmgenid kmsg line", &clone1, signal_kmsg, RH_SIGNAL_VMGENID_KMSG, true);
        {
                /* A live MAC change: the template's EUI-64 link-local address
                 * is replaced by the clone's. */
                struct kstate k;

                read_kstate(&k);
                check_link_local(&k, clone1.mac, TEMPLATE_MAC);
        }
        line = wait_armed(2);
        fprintf(stderr, "--- re-armed: %s\n", line);
        check_armed_line(line, 2);

        {
                struct kstate before, after;
                char err_path[256];

                read_kstate(&before);
                handoff_ok("handoff 2: same request again via vmclock notification (no-op)", &clone1,
                           signal_vmclock, RH_SIGNAL_VMCLOCK, false);
                read_kstate(&after);
                CHECK(kstate_equal(&before, &after), "second application changed the network");
                snprintf(err_path, sizeof(err_path), "%s/agent.err", dir);
                CHECK(strstr(slurp(err_path) ?: "", "seq 2: 0 kernel objects changed") != NULL,
                      "agent changed something applying the same request twice");
        }
        wait_armed(3);
        handoff_ok("handoff 3: new identity via NEW_VMGENID uevent", &clone2, signal_uevent,
                   RH_SIGNAL_VMGENID_UEVENT, true);
        wait_armed(4);

        {
                struct identity bad = clone1;
                struct rh_request req;

                bad.ifname = "nosuch0";
                req = make_request(&bad);
                handoff_invalid("invalid 1: interface that does not exist", &req, NULL, true,
                                "no such interface");
                wait_armed(5);
                req = make_request(&clone1);
                handoff_invalid("invalid 2: prefix out of range (decoder)", &req, corrupt_prefix, true,
                                "prefix");
                wait_armed(6);
                req = make_request(&clone1);
                handoff_invalid("invalid 3: CRC mismatch", &req, corrupt_crc, false, "CRC");
                wait_armed(7);
        }

        {
                struct identity half = clone1_by_name;
                struct rh_request req;
                struct rh_ack a2;

                fprintf(stderr, "--- half-way failure: a route the kernel refuses\n");
                half.bad_v6_route = true;
                req = make_request(&half);
                drain_listeners();
                post_request(&req);
                signal_kmsg();
                if (wait_ack(req.seq, &a2)) {
                        fprintf(stderr, "  ack error: %s\n", a2.error);
                        CHECK(a2.status == RH_ACK_FAILED, "status %s", rh_ack_status_name(a2.status));
                        CHECK((a2.applied & (RH_APPLIED_MAC | RH_APPLIED_ADDRS)) ==
                                              (RH_APPLIED_MAC | RH_APPLIED_ADDRS) &&
                                      !(a2.applied & RH_APPLIED_ROUTES),
                              "applied 0x%x", a2.applied);
                        CHECK(strstr(a2.error, "routes failed") &&
                                      strstr(a2.error, "applied: mac,mtu,link-up,addresses"),
                              "error text '%s'", a2.error);
                } else
                        CHECK(false, "no ack");
                wait_armed(8);
        }

        {
                /* Prearm: fast poll, confirmed in the page and on the console. */
                uint8_t *pa = page + RH_OFF_PREARM, *pc = page + RH_OFF_PREARM_CONFIRM;
                uint32_t seq = 7, interval = 2000, got = 0, active = 0;
                uint64_t deadline = mono_ms() + 5000;
                char out_path[256];

                fprintf(stderr, "--- prearm\n");
                memcpy(pa + 4, &interval, 4);
                __atomic_store_n((uint32_t *)pa, seq, __ATOMIC_RELEASE);
                while (mono_ms() < deadline) {
                        got = __atomic_load_n((uint32_t *)pc, __ATOMIC_ACQUIRE);
                        if (got == seq)
                                break;
                        usleep(1000);
                }
                memcpy(&active, pc + 8, 4);
                CHECK(got == seq && active == 1, "prearm confirm seq %u active %u", got, active);
                snprintf(out_path, sizeof(out_path), "%s/agent.out", dir);
                CHECK(strstr(slurp(out_path) ?: "", "rehome-agent: prearmed seq=7 interval_us=2000\n") !=
                              NULL,
                      "no prearmed line");
                handoff_ok("handoff: prearmed fast poll", &clone1_by_name, NULL, RH_SIGNAL_PREARM_POLL,
                           false);
                wait_armed(9);
                memcpy(&active, pc + 8, 4);
                CHECK(active == 0, "still fast polling after the handoff");
        }
        {
                /* A prearm window that ends on its own: fast poll off without a handoff. */
                uint8_t *pa = page + RH_OFF_PREARM, *pc = page + RH_OFF_PREARM_CONFIRM;
                uint32_t seq = 8, interval = 1000, window = 300, got = 0, active = 0;
                uint64_t deadline = mono_ms() + 5000;

                fprintf(stderr, "--- prearm window expiry\n");
                memcpy(pa + 4, &interval, 4);
                memcpy(pa + 8, &window, 4);
                __atomic_store_n((uint32_t *)pa, seq, __ATOMIC_RELEASE);
                while (mono_ms() < deadline) {
                        got = __atomic_load_n((uint32_t *)pc, __ATOMIC_ACQUIRE);
                        memcpy(&active, pc + 8, 4);
                        if (got == seq && active == 1)
                                break;
                        usleep(1000);
                }
                CHECK(got == seq && active == 1, "prearm confirm seq %u active %u", got, active);
                deadline = mono_ms() + 5000;
                while (mono_ms() < deadline) {
                        memcpy(&active, pc + 8, 4);
                        if (active == 0)
                                break;
                        usleep(5000);
                }
                got = __atomic_load_n((uint32_t *)pc, __ATOMIC_ACQUIRE);
                CHECK(active == 0 && got == seq, "window of 300 ms did not end fast poll (seq %u active %u)",
                      got, active);
        }
        handoff_ok("handoff: safety-net poll", &clone2, NULL, RH_SIGNAL_POLL, false);
        wait_armed(10);
        stop_agent();
        close(vmclock_fd);
        close(vmclock_notify);
        vmclock_fd = vmclock_notify = -1;
        munmap(page, RH_MAILBOX_SIZE);
}

static void scenario_spin(void)
{
        char mailbox[256], vmclock[256];
        char *extra[] = {"--signal",           "vmclock-spin", "--vmclock", vmclock,
                         "--spin-interval-us", "100",          "--once",    NULL};

        snprintf(mailbox, sizeof(mailbox), "%s/mailbox-spin", dir);
        snprintf(vmclock, sizeof(vmclock), "%s/vmclock-spin", dir);
        page = map_mailbox(mailbox);
        next_seq = 1;
        create_vmclock(vmclock, NULL);
        start_agent(mailbox, extra);
        wait_armed(1);
        struct identity id = clone1_by_name;

        id.hostname = NULL; /* the --once agent and its UTS namespace are gone by the check */
        handoff_ok("vmclock-spin (forced)", &id, vmclock_bump, RH_SIGNAL_VMCLOCK_SPIN, false);
        {
                int status = -1;
                uint64_t deadline = mono_ms() + 5000;
                while (mono_ms() < deadline && waitpid(agent_pid, &status, WNOHANG) == 0)
                        usleep(5000);
                CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "--once agent did not exit 0");
                agent_pid = -1;
        }
        close(vmclock_fd);
        vmclock_fd = -1;
        munmap(page, RH_MAILBOX_SIZE);
}

/* The real /dev/kmsg (a character device: one record per read, SEEK_END):
 * a line logged before the agent started must not fire, a new one must. */
static void scenario_dev_kmsg(void)
{
        char mailbox[256], line[160];
        char *extra[] = {"--signal", "vmgenid-kmsg", "--once", NULL};
        struct identity id = clone2;
        struct rh_request req;
        struct rh_ack ack;
        int kmsg = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
        uint64_t nonce;

        fprintf(stderr, "--- /dev/kmsg (character device)\n");
        if (kmsg < 0) {
                fprintf(stderr, "  /dev/kmsg not writable (%s): part skipped\n", strerror(errno));
                return;
        }
        snprintf(mailbox, sizeof(mailbox), "%s/mailbox-kmsg", dir);
        page = map_mailbox(mailbox);
        next_seq = 1;
        /* With the newline: the kernel keeps a record without one open (for
         * continuation) and readers do not see it until the next record. */
        snprintf(line, sizeof(line),
                 "<6>rehome test-agent %d: crng reseeded due to virtual machine fork (old)\n", getpid());
        if (write(kmsg, line, strlen(line)) < 0)
                die("/dev/kmsg: %s", strerror(errno));
        id.hostname = NULL;
        req = make_request(&id);
        start_agent(mailbox, extra);
        wait_armed(1);
        /* A request is waiting, but only a new kmsg line may wake the agent for it. */
        nonce = post_request(&req);
        usleep(300000);
        CHECK(rh_mailbox_read_ack(page, &ack, NULL) == -ENODATA, "an old kmsg line fired the agent");
        snprintf(line, sizeof(line), "<6>rehome test-agent %d: crng reseeded due to virtual machine fork\n",
                 getpid());
        if (write(kmsg, line, strlen(line)) < 0)
                die("/dev/kmsg: %s", strerror(errno));
        close(kmsg);
        if (!wait_ack(req.seq, &ack))
                CHECK(false, "no ack after a new /dev/kmsg line");
        else {
                CHECK(ack.signal == RH_SIGNAL_VMGENID_KMSG && ack.status == RH_ACK_APPLIED &&
                              ack.nonce == nonce,
                      "signal %s status %s", rh_signal_name(ack.signal), rh_ack_status_name(ack.status));
        }
        stop_agent();
        munmap(page, RH_MAILBOX_SIZE);
}

/* The agent's V1 token rules: the same set as `rehome patch --token`. */
static void scenario_v1_tokens(void)
{
        static const char *const ok_tokens[] = {
                "t",                                         /* 1 byte */
                "tok \xc3\xa9 \xe2\x86\x92 24 bytes long",                 /* 24 */
                "a 29 byte token: \xc3\xbc \xc3\xa9 \xe2\x86\x92 ok",      /* 29 */
                "thirty bytes: \xc3\xbc \xc3\xa9 \xe2\x86\x92 spaces",     /* 30 */
        };
        static const size_t lens[] = {1, 24, 29, 30};
        char mailbox[256];

        fprintf(stderr, "--- V1 tokens: 1, 24, 29, 30 bytes with spaces and UTF-8; 31 refused\n");
        snprintf(mailbox, sizeof(mailbox), "%s/mailbox-v1-tok", dir);
        for (size_t i = 0; i < sizeof(ok_tokens) / sizeof(ok_tokens[0]); i++) {
                char *extra[] = {"--mailbox-format", "v1", "--token", (char *)ok_tokens[i], "--signal", "poll", NULL};
                char *from_env[] = {"--mailbox-format", "v1", "--signal", "poll", NULL};
                const char *armed;

                CHECK(strlen(ok_tokens[i]) == lens[i], "token %zu is %zu bytes", i, strlen(ok_tokens[i]));
                /* --token, then the same token from hypeman's environment variable. */
                for (int env = 0; env < 2; env++) {
                        if (env)
                                setenv("HYPEMAN_RESUME_NETWORK_MAILBOX_TOKEN", ok_tokens[i], 1);
                        page = map_mailbox(mailbox);
                        start_agent(mailbox, env ? from_env : extra);
                        armed = wait_armed(1);
                        CHECK(rh_v1_matches(page, RH_MAILBOX_SIZE, ok_tokens[i]), "%zu-byte token%s not in the page",
                              lens[i], env ? " (from the environment)" : "");
                        CHECK(strstr(armed, " abi=v1") != NULL, "armed line '%s'", armed);
                        stop_agent();
                        munmap(page, RH_MAILBOX_SIZE);
                        unsetenv("HYPEMAN_RESUME_NETWORK_MAILBOX_TOKEN");
                }
        }
        /* 31 bytes: a usage error (exit 2) naming the option, from either source. */
        for (int env = 0; env < 2; env++) {
                static const char tok31[] = "thirty bytes: \xc3\xbc \xc3\xa9 \xe2\x86\x92 spacesX";
                char *extra[] = {"--mailbox-format", "v1", "--token", (char *)tok31, NULL};
                char *from_env[] = {"--mailbox-format", "v1", NULL};
                char err_path[256];
                int status = 0;

                CHECK(strlen(tok31) == 31, "tok31 is %zu bytes", strlen(tok31));
                if (env)
                        setenv("HYPEMAN_RESUME_NETWORK_MAILBOX_TOKEN", tok31, 1);
                snprintf(err_path, sizeof(err_path), "%s/agent.err", dir);
                if (truncate(err_path, 0) < 0 && errno != ENOENT)
                        die("truncate %s: %s", err_path, strerror(errno));
                start_agent(mailbox, env ? from_env : extra);
                waitpid(agent_pid, &status, 0);
                agent_pid = -1;
                unsetenv("HYPEMAN_RESUME_NETWORK_MAILBOX_TOKEN");
                CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 2, "31-byte token: exit status 0x%x", status);
                CHECK(strstr(slurp(err_path) ?: "",
                             env ? "HYPEMAN_RESUME_NETWORK_MAILBOX_TOKEN: a V1 token is 1..30 bytes, got 31"
                                 : "--token: a V1 token is 1..30 bytes, got 31") != NULL,
                      "31-byte token message: %s", slurp(err_path) ?: "");
        }
}

/*
 * Three generations of V1 forks in a row, the way hypeman's host does them:
 * every fork writes the JSON, the length and seq = 1; the agent applies,
 * acks over UDP (stage=applied mac= ip=) and writes seq back to 0, so the
 * next fork's seq 1 is new again. After each handoff the page holds only
 * what V1 defines: marker, token, seq 0, the host's length and JSON, zeros.
 */
static void scenario_v1(void)
{
        static const char token[] = "hypeman \xc3\xa9 token 30 bytes long"; /* 30 bytes: no NUL before +64 */
        char mailbox[256], kmsg[256], line[1024];
        char *extra[] = {"--mailbox-format", "v1",     "--token", (char *)token, "--signal",
                         "vmgenid-kmsg",     "--kmsg", kmsg,      NULL};
        static uint8_t host[RH_MAILBOX_SIZE];
        struct kstate k;
        char old_mac[32];
        const char *armed;

        fprintf(stderr, "--- hypeman V1 mailbox: three generations of forks\n");
        CHECK(strlen(token) == RH_V1_TOKEN_MAX, "token is %zu bytes", strlen(token));
        snprintf(mailbox, sizeof(mailbox), "%s/mailbox-v1", dir);
        snprintf(kmsg, sizeof(kmsg), "%s/kmsg-v1", dir);
        page = map_mailbox(mailbox);
        if (mkfifo(kmsg, 0600) < 0)
                die("mkfifo: %s", strerror(errno));
        close(kmsg_fifo);
        kmsg_fifo = open(kmsg, O_RDWR | O_CLOEXEC | O_NONBLOCK);
        start_agent(mailbox, extra);
        armed = wait_armed(1);
        CHECK(strstr(armed, " abi=v1") != NULL, "V1 armed line '%s'", armed);
        CHECK(rh_v1_matches(page, RH_MAILBOX_SIZE, token), "no V1 header in the page");
        read_kstate(&k);
        snprintf(old_mac, sizeof(old_mac), "%s", k.mac);

        for (unsigned gen = 1; gen <= 3; gen++) {
                struct identity id = clone1;
                struct rh_request req;
                struct rh_error err = {0};
                char mac[18], ip4[16], addr[24], want[128];
                uint32_t len;
                uint64_t deadline;
                bool done = false;

                fprintf(stderr, "--- V1 fork generation %u\n", gen);
                snprintf(mac, sizeof(mac), "02:bb:00:00:00:%02x", gen);
                snprintf(ip4, sizeof(ip4), "10.88.0.%u", 20 + gen);
                snprintf(addr, sizeof(addr), "%s/24", ip4);
                id.mac = mac;
                id.ip4 = ip4;
                id.ip6 = NULL;
                id.dns = NULL;
                id.hostname = NULL;
                id.ifname = AGENT_IF;
                req = make_request(&id);
                req.n_routes = 1; /* V1 carries one gateway */
                CHECK(unaligned_read_le32(page + RH_V1_OFF_SEQ) == 0, "gen %u: seq %u before the fork", gen,
                      unaligned_read_le32(page + RH_V1_OFF_SEQ));
                drain_listeners();
                /* hypeman's host: the same seq, 1, for every fork. */
                if (rh_v1_encode(page, &req, 1, &err) < 0)
                        die("rh_v1_encode: %s", err.msg);
                memcpy(host, page, sizeof(host));
                signal_kmsg();
                snprintf(want, sizeof(want), "stage=applied mac=%s ip=%s", mac, ip4);
                CHECK(udp_expect(want, line, sizeof(line), 10000), "gen %u: no V1 UDP ack '%s'", gen, want);
                CHECK(strstr(line, "nonce=") == NULL, "gen %u: a V1 ack with a nonce: %s", gen, line);
                /* seq back to 0 once answered (the ack went first). */
                deadline = mono_ms() + 2000;
                while (mono_ms() < deadline && unaligned_read_le32(page + RH_V1_OFF_SEQ) != 0)
                        usleep(1000);
                CHECK(unaligned_read_le32(page + RH_V1_OFF_SEQ) == 0, "gen %u: seq %u after the ack", gen,
                      unaligned_read_le32(page + RH_V1_OFF_SEQ));
                /* Only V1 fields: marker and token as armed, the host's length and
                 * JSON untouched, zeros after it (no native ack record at 0x0c0). */
                len = unaligned_read_le32(page + RH_V1_OFF_LEN);
                CHECK(memcmp(page, host, RH_V1_OFF_SEQ) == 0, "gen %u: marker/token area changed", gen);
                CHECK(len == unaligned_read_le32(host + RH_V1_OFF_LEN), "gen %u: length changed", gen);
                CHECK(len < RH_V1_JSON_MAX && memcmp(page + RH_V1_OFF_JSON, host + RH_V1_OFF_JSON, len) == 0,
                      "gen %u: the host's JSON was overwritten", gen);
                {
                        unsigned stray = 0;
                        for (size_t i = RH_V1_OFF_JSON + len; i < RH_MAILBOX_SIZE; i++)
                                stray += page[i] != 0;
                        CHECK(stray == 0, "gen %u: %u non-zero bytes after the V1 JSON (first at 0x%zx)", gen,
                              stray, (size_t)(RH_V1_OFF_JSON + len));
                }
                deadline = mono_ms() + 5000;
                while (mono_ms() < deadline && !done) {
                        read_kstate(&k);
                        done = strcmp(k.mac, mac) == 0 && has(k.addrs, k.n_addrs, addr);
                        if (!done)
                                usleep(10000);
                }
                dump_kstate(&k);
                CHECK(done, "gen %u: V1 identity not applied", gen);
                CHECK(has_route(&k, "default via 10.88.0.1 metric 0"), "gen %u: V1 default route", gen);
                CHECK(k.n_addrs == 1, "gen %u: %d global addresses, want 1", gen, k.n_addrs);
                check_link_local(&k, mac, old_mac);
                snprintf(old_mac, sizeof(old_mac), "%s", mac);
        }
        stop_agent();
        munmap(page, RH_MAILBOX_SIZE);
}

int main(int argc, char **argv)
{
        char tmpl[] = "/dev/shm/rehome-test-agent-XXXXXX";

        if (argc != 2)
                die("usage: test-agent PATH-TO-rehome-agent");
        agent_bin = argv[1];
        if (geteuid() != 0)
                skip("needs root (network namespaces)");
        if (access(agent_bin, X_OK) < 0)
                die("%s: %s", agent_bin, strerror(errno));
        srand((unsigned)getpid() ^ (unsigned)mono_ms());
        atexit(cleanup);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        signal(SIGPIPE, SIG_IGN);
        if (!mkdtemp(tmpl))
                die("mkdtemp: %s", strerror(errno));
        snprintf(dir, sizeof(dir), "%s", tmpl);

        setup_network();
        scenario_main();
        scenario_spin();
        scenario_dev_kmsg();
        scenario_v1_tokens();
        scenario_v1();

        if (failures) {
                char path[256];
                snprintf(path, sizeof(path), "%s/agent.err", dir);
                fprintf(stderr, "agent stderr:\n%s\n", slurp(path) ?: "");
                fprintf(stderr, "%d check(s) failed\n", failures);
                return 1;
        }
        fprintf(stderr, "all checks passed\n");
        return 0;
}
