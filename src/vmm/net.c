/* SPDX-License-Identifier: MIT */
/*
 * The host side of the clone network: an isolated network namespace with a
 * bridge and the gateway address (`rehome net up`), or a bridge the user
 * already has (`--bridge`), and one tap per clone on that bridge.
 *
 * Per clone, everything goes through the project's rtnetlink layer
 * (src/shared/netlink.c) and the tun driver: a tap is created (or a stale
 * persistent one taken over) with TUNSETIFF + TUNSETPERSIST on /dev/net/tun,
 * enslaved to the bridge and set up in one RTM_NEWLINK, and deleted with
 * RTM_DELLINK; no process is started. In a named namespace the netlink
 * socket and the tun file are created inside it: both belong to the
 * namespace of the thread that created them (see net_open()).
 *
 * `net up`/`net down` still run iproute2 (`ip netns add|del`, the bridge
 * and its address): once per network, not per clone, and `ip netns add`
 * also sets up the /run/netns bind mounts that other tools expect.
 *
 * Each state directory has its own namespace by default ("rehome" for
 * /var/lib/rehome, "rh-" + 8 hex digits of a hash of its real path
 * otherwise), and owns it through /run/rehome/netns/NAME.owner, which holds
 * the state directory's real path: `net up` refuses a namespace another
 * state directory owns, `net down` never removes one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "cleanup.h"
#include "io.h"
#include "netlink.h"
#include "qmp.h"
#include "vmm.h"

#define NETNS_OWNER_DIR "/run/rehome/netns"

/* Run argv with stdin from /dev/null; capture stdout+stderr into @out (may be NULL).
 * Returns the exit status or -errno. */
static int run(char *const argv[], char *out, size_t out_len)
{
        int pfd[2];
        pid_t pid;
        int status;
        size_t have = 0;

        if (pipe2(pfd, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0) {
                int r = -errno;
                close(pfd[0]);
                close(pfd[1]);
                return r;
        }
        if (pid == 0) {
                int nul = open("/dev/null", O_RDONLY);
                if (nul >= 0)
                        dup2(nul, 0);
                dup2(pfd[1], 1);
                dup2(pfd[1], 2);
                vmm_signals_child();
                execvp(argv[0], argv);
                _exit(127);
        }
        close(pfd[1]);
        for (;;) {
                char sink[512];
                char *dst = out && have + 1 < out_len ? out + have : sink;
                size_t cap = out && have + 1 < out_len ? out_len - 1 - have : sizeof(sink);
                ssize_t n = read(pfd[0], dst, cap);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                if (dst != sink)
                        have += (size_t)n;
        }
        close(pfd[0]);
        if (out && out_len)
                out[have] = '\0';
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        return 128 + WTERMSIG(status);
}

static void chomp(char *s)
{
        size_t n = strlen(s);
        while (n && (s[n - 1] == '\n' || s[n - 1] == ' '))
                s[--n] = '\0';
        char *nl = strchr(s, '\n'); /* one line for messages */
        if (nl)
                *nl = '\0';
}

/* `ip [-n NS] ARGS...` */
static int ip_cmd(const struct vmm_net *net, char *out, size_t out_len, const char *first, ...)
{
        char *argv[32];
        size_t n = 0;
        va_list ap;

        argv[n++] = (char *)"ip";
        if (net && net->netns[0]) {
                argv[n++] = (char *)"-n";
                argv[n++] = (char *)net->netns;
        }
        argv[n++] = (char *)first;
        va_start(ap, first);
        for (const char *a; n < ELEMENTSOF(argv) - 1 && (a = va_arg(ap, const char *));)
                argv[n++] = (char *)a;
        va_end(ap);
        argv[n] = NULL;
        return run(argv, out, out_len);
}

int vmm_net_run(const struct vmm_net *net, char *const argv[], char *out, size_t out_len)
{
        char *full[48];
        size_t n = 0;

        if (net && net->netns[0]) {
                full[n++] = (char *)"ip";
                full[n++] = (char *)"netns";
                full[n++] = (char *)"exec";
                full[n++] = (char *)net->netns;
        }
        for (size_t i = 0; argv[i] && n < ELEMENTSOF(full) - 1; i++)
                full[n++] = argv[i];
        full[n] = NULL;
        return run(full, out, out_len);
}

/* net.json for the first NIC's network, net-nicK.json for NIC K's (a multi-NIC template's). */
static int net_path(const char *state_dir, unsigned nic, char *buf, size_t len)
{
        int n = nic ? snprintf(buf, len, "%s/net-nic%u.json", state_dir, nic)
                    : snprintf(buf, len, "%s/net.json", state_dir);
        return n >= (int)len ? -ENAMETOOLONG : 0;
}

/* NIC @nic's network as written by vmm_net_up(_nic), without looking at the namespace. */
static int net_read_nic(const char *state_dir, unsigned nic, struct vmm_net *ret_net, struct rh_error *err)
{
        char path[PATH_MAX];
        _cleanup_free_ char *text = NULL;
        _cleanup_json_ json_t *j = NULL;
        struct vmm_net net = {.nic = nic};
        int r;

        net_path(state_dir, nic, path, sizeof(path));
        r = read_file_alloc(path, 65536, &text, NULL);
        if (r == -ENOENT && nic)
                return rh_error_set(err, r, "no clone network for NIC %u: run 'rehome net up --nic %u'", nic, nic);
        if (r == -ENOENT)
                return rh_error_set(err, r, "no clone network: run 'rehome net up' (or pass --bridge)");
        if (r < 0)
                return rh_error_set(err, r, "%s: %s", path, strerror(-r));
        j = json_loads(text, 0, NULL);
        const char *ns = json_string_value(json_object_get(j, "netns"));
        const char *br = json_string_value(json_object_get(j, "bridge"));
        const char *gw = json_string_value(json_object_get(j, "gateway"));
        if (!ns || !br || !gw || strlen(ns) >= sizeof(net.netns) || strlen(br) >= sizeof(net.bridge) ||
            strlen(gw) >= sizeof(net.gateway))
                return rh_error_set(err, -EINVAL, "%s: malformed (remove it and run 'rehome net up')", path);
        strcpy(net.netns, ns);
        strcpy(net.bridge, br);
        strcpy(net.gateway, gw);
        net.ours = json_is_true(json_object_get(j, "ours"));
        *ret_net = net;
        return 0;
}

static int net_read(const char *state_dir, struct vmm_net *ret_net, struct rh_error *err)
{
        return net_read_nic(state_dir, 0, ret_net, err);
}

int vmm_net_load(const char *state_dir, struct vmm_net *ret_net, struct rh_error *err)
{
        return vmm_net_load_nic(state_dir, 0, ret_net, err);
}

int vmm_net_load_nic(const char *state_dir, unsigned nic, struct vmm_net *ret_net, struct rh_error *err)
{
        struct vmm_net net;
        int r;

        r = net_read_nic(state_dir, nic, &net, err);
        if (r < 0)
                return r;
        /* The namespace may have vanished (reboot, someone ran ip netns del). */
        if (net.netns[0]) {
                char nspath[PATH_MAX];
                snprintf(nspath, sizeof(nspath), "/run/netns/%s", net.netns);
                if (access(nspath, F_OK) < 0)
                        return rh_error_set(err, -ENOENT, "network namespace %s is gone: run 'rehome net up'",
                                            net.netns);
        }
        *ret_net = net;
        return 0;
}

static bool valid_ifname(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n >= 16)
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] == '/' || s[i] == ' ' || s[i] == ':')
                        return false;
        return true;
}

/* ---- which state directory owns a namespace ---- */

/* FNV-1a: a stable, well-spread 32-bit hash of a path (not a security boundary). */
static uint32_t fnv1a32(const char *s)
{
        uint32_t h = 2166136261u;

        for (; *s; s++) {
                h ^= (uint8_t)*s;
                h *= 16777619u;
        }
        return h;
}

/*
 * The namespace a state directory gets when `net up` is not told one:
 * "rehome" for the default /var/lib/rehome (what the README and the help
 * say), otherwise "rh-" and 8 hex digits of a hash of its real path, so
 * two state directories never meet in one namespace by accident. 11
 * characters: well inside the 15 an interface-style name may have.
 */
static void default_netns(const char *real_state_dir, char ret[16])
{
        if (strcmp(real_state_dir, VMM_DEFAULT_STATE_DIR) == 0)
                snprintf(ret, 16, "%s", VMM_DEFAULT_NETNS);
        else
                snprintf(ret, 16, "rh-%08x", fnv1a32(real_state_dir));
}

/* Does @state_dir (an owner file's content) still hold @netns as its own network? */
static bool owner_claims(const char *state_dir, const char *netns)
{
        struct vmm_net other;

        return net_read(state_dir, &other, NULL) == 0 && other.ours && strcmp(other.netns, netns) == 0;
}

/*
 * Open and lock (flock, exclusive) the owner file of @netns, creating it
 * (empty: owned by nobody) if @create. The lock serialises net up and net
 * down of one namespace across processes; it goes with the fd. Retries if
 * the file was unlinked between open and lock, so a lock is always on the
 * file that is in place. Returns the fd, -ENOENT (no owner file and not
 * @create), or -errno.
 */
static int owner_lock(const char *netns, bool create, char *ret_path, size_t path_len)
{
        snprintf(ret_path, path_len, "%s/%s.owner", NETNS_OWNER_DIR, netns);
        if (create && vmm_mkdir_p(NETNS_OWNER_DIR, 0755) < 0)
                return -errno;
        for (;;) {
                _cleanup_close_ int fd = open(ret_path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
                struct stat have, want;

                if (fd < 0)
                        return -errno;
                while (flock(fd, LOCK_EX) < 0)
                        if (errno != EINTR)
                                return -errno;
                if (fstat(fd, &have) < 0)
                        return -errno;
                if (stat(ret_path, &want) == 0 && want.st_ino == have.st_ino && want.st_dev == have.st_dev)
                        return TAKE_FD(fd);
                if (!create)
                        return -ENOENT;
        }
}

/* The state directory an owner file names ("" if none), read through the locked @fd. */
static int owner_read(int fd, char *ret_owner, size_t len)
{
        ssize_t n = pread(fd, ret_owner, len - 1, 0);

        if (n < 0)
                return -errno;
        ret_owner[n] = '\0';
        ret_owner[strcspn(ret_owner, "\n")] = '\0';
        return 0;
}

static int owner_write(int fd, const char *state_dir)
{
        char line[PATH_MAX + 1];
        int n = snprintf(line, sizeof(line), "%s\n", state_dir);

        if (ftruncate(fd, 0) < 0)
                return -errno;
        return pwrite_full(fd, line, (size_t)n, 0);
}

/*
 * Claim @netns for @real_state_dir before it is created or reused. A
 * namespace nobody owns (new, or made by an older rehome or by hand) is
 * claimed; one that names this state directory stays ours; one whose owner
 * no longer holds it (the owner's net.json is gone or names another
 * network) is taken over; one that another state directory holds is
 * refused. Returns the locked owner fd (keep it until net.json is written),
 * with *ret_claimed_now telling whether this call made the claim.
 */
static int owner_claim(const char *netns, const char *real_state_dir, bool *ret_claimed_now,
                       struct rh_error *err)
{
        char path[PATH_MAX], owner[PATH_MAX];
        _cleanup_close_ int fd = -EBADF;
        int r;

        fd = owner_lock(netns, true, path, sizeof(path));
        if (fd < 0)
                return rh_error_set(err, fd, "%s: %s", path, strerror(-fd));
        r = owner_read(fd, owner, sizeof(owner));
        if (r < 0)
                return rh_error_set(err, r, "%s: %s", path, strerror(-r));
        if (strcmp(owner, real_state_dir) == 0) {
                *ret_claimed_now = false;
                return TAKE_FD(fd);
        }
        if (owner[0] && owner_claims(owner, netns))
                return rh_error_set(err, -EBUSY,
                                    "network namespace %s belongs to state directory %s (%s): "
                                    "use another with --netns, or run 'rehome --state-dir %s net down' first",
                                    netns, owner, path, owner);
        r = owner_write(fd, real_state_dir);
        if (r < 0)
                return rh_error_set(err, r, "%s: %s", path, strerror(-r));
        *ret_claimed_now = true;
        return TAKE_FD(fd);
}

/* ---- net up / down ---- */

/* @net's bridge in its namespace, up, with the gateway address as its only address. */
static int bridge_up(const struct vmm_net *net, struct rh_error *err)
{
        char out[512];
        int r;

        if (!vmm_link_exists(net, net->bridge)) {
                r = ip_cmd(net, out, sizeof(out), "link", "add", net->bridge, "type", "bridge", NULL);
                if (r != 0) {
                        chomp(out);
                        return rh_error_set(err, -EIO, "ip link add %s type bridge: %s", net->bridge, out);
                }
        }
        /* Replace whatever address the bridge had with the gateway. */
        ip_cmd(net, NULL, 0, "addr", "flush", "dev", net->bridge, NULL);
        r = ip_cmd(net, out, sizeof(out), "addr", "add", net->gateway, "dev", net->bridge, NULL);
        if (r != 0) {
                chomp(out);
                return rh_error_set(err, -EIO, "ip addr add %s dev %s: %s", net->gateway, net->bridge, out);
        }
        r = ip_cmd(net, out, sizeof(out), "link", "set", net->bridge, "up", NULL);
        if (r != 0) {
                chomp(out);
                return rh_error_set(err, -EIO, "ip link set %s up: %s", net->bridge, out);
        }
        return 0;
}

/*
 * NIC @nic's network (1..VMM_MAX_NICS-1), next to the first NIC's: a clone's
 * VMM runs in one namespace, so its taps all must be there. In our
 * namespace: bridge rhbrK with its own subnet (default 10.(77+K).0.1/24);
 * with the user's bridge for the first NIC, the user's bridge @bridge here.
 */
int vmm_net_up_nic(const char *state_dir, unsigned nic, const char *bridge, const char *gateway,
                   struct vmm_net *ret_net, struct rh_error *err)
{
        struct vmm_net first, net = {.nic = nic};
        char path[PATH_MAX], gw_default[32];
        _cleanup_json_ json_t *j = NULL;
        int r;

        if (nic == 0)
                return vmm_net_up(state_dir, bridge, gateway, NULL, ret_net, err);
        if (nic >= VMM_MAX_NICS)
                return rh_error_set(err, -EINVAL, "NIC %u: at most %d NICs (0..%d)", nic, VMM_MAX_NICS,
                                    VMM_MAX_NICS - 1);
        r = vmm_net_load(state_dir, &first, err);
        if (r < 0)
                return rh_error_prefix(err, r, "NIC %u's network goes next to the first one's", nic);
        if (bridge) {
                char sys[PATH_MAX];
                if (first.netns[0])
                        return rh_error_set(err, -EINVAL,
                                            "--bridge for NIC %u: the first NIC's network is namespace %s, and "
                                            "a clone's taps all live in one namespace (drop --bridge)",
                                            nic, first.netns);
                if (!valid_ifname(bridge))
                        return rh_error_set(err, -EINVAL, "bad bridge name '%s'", bridge);
                snprintf(sys, sizeof(sys), "/sys/class/net/%s/bridge", bridge);
                if (access(sys, F_OK) < 0)
                        return rh_error_set(err, -ENODEV, "%s is not a bridge here", bridge);
                snprintf(net.bridge, sizeof(net.bridge), "%s", bridge);
                snprintf(net.gateway, sizeof(net.gateway), "%s", gateway ? gateway : "");
        } else {
                struct rh_ipaddr gw;
                uint8_t prefix;
                if (!first.ours || !first.netns[0])
                        return rh_error_set(err, -EINVAL,
                                            "NIC %u: the first NIC's network is your bridge %s: give NIC %u "
                                            "yours too (--bridge BR)",
                                            nic, first.bridge, nic);
                if (!gateway) {
                        snprintf(gw_default, sizeof(gw_default), "10.%u.0.1/24", 77 + nic);
                        gateway = gw_default;
                }
                if (rh_ip_parse(gateway, &gw, &prefix) < 0 || gw.family != 4 || !strchr(gateway, '/'))
                        return rh_error_set(err, -EINVAL, "bad gateway '%s' (want A.B.C.D/P)", gateway);
                snprintf(net.netns, sizeof(net.netns), "%s", first.netns);
                snprintf(net.bridge, sizeof(net.bridge), "rhbr%u", nic);
                snprintf(net.gateway, sizeof(net.gateway), "%s", gateway);
                net.ours = true;
                r = bridge_up(&net, err);
                if (r < 0)
                        return rh_error_prefix(err, r, "NIC %u", nic);
        }
        j = json_pack("{s:s, s:s, s:s, s:b, s:i}", "netns", net.netns, "bridge", net.bridge, "gateway",
                      net.gateway, "ours", net.ours, "nic", (int)nic);
        net_path(state_dir, nic, path, sizeof(path));
        if (!j || json_dump_file(j, path, JSON_INDENT(2)) < 0)
                return rh_error_set(err, -EIO, "cannot write %s", path);
        if (ret_net)
                *ret_net = net;
        return 0;
}

int vmm_net_up(const char *state_dir, const char *bridge, const char *gateway, const char *netns,
               struct vmm_net *ret_net, struct rh_error *err)
{
        struct vmm_net net = {0};
        char path[PATH_MAX], out[512], real[PATH_MAX], ns_default[16];
        _cleanup_close_ int owner_fd = -EBADF;
        _cleanup_json_ json_t *j = NULL;
        bool claimed_now = false;
        int r;

        if (vmm_mkdir_p(state_dir, 0755) < 0)
                return rh_error_set(err, -errno, "%s: %s", state_dir, strerror(errno));
        if (!realpath(state_dir, real))
                return rh_error_set(err, -errno, "%s: %s", state_dir, strerror(errno));

        if (bridge) {
                /* The user's bridge, in this namespace; the gateway is theirs. */
                char sys[PATH_MAX];
                if (!valid_ifname(bridge))
                        return rh_error_set(err, -EINVAL, "bad bridge name '%s'", bridge);
                snprintf(sys, sizeof(sys), "/sys/class/net/%s/bridge", bridge);
                if (access(sys, F_OK) < 0)
                        return rh_error_set(err, -ENODEV,
                                            "%s is not a bridge here (create it: ip link add %s type bridge)",
                                            bridge, bridge);
                snprintf(net.bridge, sizeof(net.bridge), "%s", bridge);
                snprintf(net.gateway, sizeof(net.gateway), "%s", gateway ? gateway : "");
                net.ours = false;
        } else {
                struct rh_ipaddr gw;
                uint8_t prefix;
                if (!gateway)
                        gateway = VMM_DEFAULT_GATEWAY;
                if (rh_ip_parse(gateway, &gw, &prefix) < 0 || gw.family != 4 || !strchr(gateway, '/'))
                        return rh_error_set(err, -EINVAL, "bad gateway '%s' (want A.B.C.D/P)", gateway);
                if (!netns) {
                        default_netns(real, ns_default);
                        netns = ns_default;
                }
                if (!valid_ifname(netns) || strchr(netns, '.'))
                        return rh_error_set(err, -EINVAL, "bad namespace name '%s'", netns);
                snprintf(net.netns, sizeof(net.netns), "%s", netns);
                snprintf(net.bridge, sizeof(net.bridge), "%s", VMM_DEFAULT_BRIDGE);
                snprintf(net.gateway, sizeof(net.gateway), "%s", gateway);
                net.ours = true;

                owner_fd = owner_claim(net.netns, real, &claimed_now, err);
                if (owner_fd < 0)
                        return owner_fd;

                char nspath[PATH_MAX];
                snprintf(nspath, sizeof(nspath), "/run/netns/%s", net.netns);
                if (access(nspath, F_OK) < 0) {
                        r = ip_cmd(NULL, out, sizeof(out), "netns", "add", net.netns, NULL);
                        if (r != 0) {
                                chomp(out);
                                r = rh_error_set(err, -EPERM, "ip netns add %s: %s (are you root?)", net.netns,
                                                 out);
                                goto fail;
                        }
                }
                ip_cmd(&net, NULL, 0, "link", "set", "lo", "up", NULL);
                r = bridge_up(&net, err);
                if (r < 0)
                        goto fail;
        }

        j = json_pack("{s:s, s:s, s:s, s:b}", "netns", net.netns, "bridge", net.bridge, "gateway", net.gateway,
                      "ours", net.ours);
        net_path(state_dir, 0, path, sizeof(path));
        if (!j || json_dump_file(j, path, JSON_INDENT(2)) < 0) {
                r = rh_error_set(err, -EIO, "cannot write %s", path);
                goto fail;
        }
        if (ret_net)
                *ret_net = net;
        return 0;

fail:
        /* Give back a claim this call made; the namespace itself stays (it may hold others' state). */
        if (claimed_now)
                (void)ftruncate(owner_fd, 0);
        return r;
}

int vmm_net_down(const char *state_dir, struct rh_error *err)
{
        struct vmm_net net;
        char path[PATH_MAX], owner_path[PATH_MAX], owner[PATH_MAX] = "", real[PATH_MAX], out[512];
        _cleanup_close_ int owner_fd = -EBADF;
        int r;

        /* The extra NICs' networks: their bridges are in the namespace (or the user's). */
        for (unsigned nic = 1; nic < VMM_MAX_NICS; nic++) {
                net_path(state_dir, nic, path, sizeof(path));
                unlink(path);
        }
        net_path(state_dir, 0, path, sizeof(path));
        r = net_read(state_dir, &net, NULL);
        if (r == -ENOENT && access(path, F_OK) < 0)
                return 0; /* nothing to do */
        if (r == 0 && net.ours && net.netns[0]) {
                if (!realpath(state_dir, real))
                        return rh_error_set(err, -errno, "%s: %s", state_dir, strerror(errno));
                owner_fd = owner_lock(net.netns, false, owner_path, sizeof(owner_path));
                if (owner_fd >= 0 && owner_read(owner_fd, owner, sizeof(owner)) < 0)
                        owner[0] = '\0';
                /*
                 * Another state directory owns it (it took the namespace over
                 * after this one moved on): not ours to remove. Only this
                 * state directory's record of it goes. No owner at all is a
                 * namespace an older rehome made for this state directory.
                 */
                if (owner[0] && strcmp(owner, real) != 0 && owner_claims(owner, net.netns)) {
                        unlink(path);
                        return 0;
                }
                snprintf(out, sizeof(out), "/run/netns/%s", net.netns);
                if (access(out, F_OK) == 0) {
                        r = ip_cmd(NULL, out, sizeof(out), "netns", "del", net.netns, NULL);
                        if (r != 0) {
                                chomp(out);
                                return rh_error_set(err, -EIO, "ip netns del %s: %s", net.netns, out);
                        }
                }
                if (owner_fd >= 0)
                        unlink(owner_path); /* under the lock: owner_lock() retries on a replaced file */
        }
        unlink(path);
        return 0;
}

/* ---- per clone: taps over rtnetlink ---- */

/*
 * Open @nl, and /dev/net/tun into *ret_tun if @ret_tun, in @net's network
 * namespace. A netlink socket and a tun file belong to the namespace of the
 * thread that created them, for their whole life. So the calling thread
 * joins the namespace (setns on /run/netns/NAME) just for the two calls and
 * goes back to the namespace it came from: setns(CLONE_NEWNET) changes only
 * the calling thread, and clones are forked on several threads at once, so
 * each does this for itself and no other thread ever sees another namespace.
 */
static int net_open(const struct vmm_net *net, struct rh_nl *nl, int *ret_tun, struct rh_error *err)
{
        _cleanup_close_ int self = -EBADF, target = -EBADF, tun = -EBADF;
        char path[PATH_MAX];
        int r;

        nl->fd = -EBADF;
        if (net->netns[0]) {
                snprintf(path, sizeof(path), "/run/netns/%s", net->netns);
                target = open(path, O_RDONLY | O_CLOEXEC);
                if (target < 0)
                        return rh_error_set(err, -errno, "network namespace %s: %s", net->netns,
                                            strerror(errno));
                self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
                if (self < 0)
                        return rh_error_set(err, -errno, "/proc/thread-self/ns/net: %s", strerror(errno));
                if (setns(target, CLONE_NEWNET) < 0)
                        return rh_error_set(err, -errno, "enter network namespace %s: %s", net->netns,
                                            strerror(errno));
        }
        r = rh_nl_open(nl, err);
        if (r >= 0 && ret_tun) {
                tun = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
                if (tun < 0)
                        r = rh_error_set(err, -errno, "/dev/net/tun: %s", strerror(errno));
        }
        /* Going back to the namespace this thread was just in cannot fail
         * for a caller allowed to leave it. If it ever did, every later
         * socket and tap of this thread would land in the wrong namespace:
         * stop rather than carry on. */
        if (self >= 0 && setns(self, CLONE_NEWNET) < 0)
                abort();
        if (r < 0) {
                rh_nl_close(nl);
                return r;
        }
        if (ret_tun)
                *ret_tun = TAKE_FD(tun);
        return 0;
}

bool vmm_link_exists(const struct vmm_net *net, const char *name)
{
        _cleanup_(rh_nl_close) struct rh_nl nl = {.fd = -EBADF};
        struct rh_nl_link link;

        if (net_open(net, &nl, NULL, NULL) < 0)
                return false;
        return rh_nl_link_get_by_name(&nl, name, &link, NULL) == 0;
}

/* The process holding tap @name in @net's namespace (tun fdinfo names it "iff:"), or 0. */
static pid_t tap_holder(const struct vmm_net *net, const char *name)
{
        struct stat want;
        char path[PATH_MAX];
        DIR *proc;
        struct dirent *de;
        pid_t found = 0;

        if (net->netns[0])
                snprintf(path, sizeof(path), "/run/netns/%s", net->netns);
        else
                snprintf(path, sizeof(path), "/proc/self/ns/net");
        if (stat(path, &want) < 0)
                return 0;
        proc = opendir("/proc");
        if (!proc)
                return 0;
        while (!found && (de = readdir(proc))) {
                pid_t pid = (pid_t)atoi(de->d_name);
                struct stat ns;
                if (pid <= 0)
                        continue;
                snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)pid);
                if (stat(path, &ns) < 0 || ns.st_ino != want.st_ino || ns.st_dev != want.st_dev)
                        continue;
                snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
                DIR *fds = opendir(path);
                if (!fds)
                        continue;
                struct dirent *fe;
                while (!found && (fe = readdir(fds))) {
                        char link[64], target[64], info[PATH_MAX];
                        snprintf(link, sizeof(link), "/proc/%d/fd/%s", (int)pid, fe->d_name);
                        ssize_t n = readlink(link, target, sizeof(target) - 1);
                        if (n <= 0)
                                continue;
                        target[n] = '\0';
                        if (strcmp(target, "/dev/net/tun") != 0)
                                continue;
                        snprintf(info, sizeof(info), "/proc/%d/fdinfo/%s", (int)pid, fe->d_name);
                        char *text = NULL;
                        if (read_file_alloc(info, 4096, &text, NULL) == 0) {
                                char *iff = strstr(text, "iff:");
                                if (iff) {
                                        iff += 4;
                                        iff += strspn(iff, " \t");
                                        size_t l = strcspn(iff, "\n");
                                        if (l == strlen(name) && strncmp(iff, name, l) == 0)
                                                found = pid;
                                }
                                free(text);
                        }
                }
                closedir(fds);
        }
        closedir(proc);
        return found;
}

int vmm_tap_create(const struct vmm_net *net, const char *name, struct rh_error *err)
{
        _cleanup_(rh_nl_close) struct rh_nl nl = {.fd = -EBADF};
        _cleanup_close_ int tun = -EBADF;
        struct rh_nl_link tap, bridge;
        struct ifreq ifr = {0};
        int r;

        if (!valid_ifname(name))
                return rh_error_set(err, -EINVAL, "bad tap name '%s'", name);
        r = net_open(net, &nl, &tun, err);
        if (r < 0)
                return rh_error_prefix(err, r, "tap %s", name);
        r = rh_nl_link_get_by_name(&nl, net->bridge, &bridge, err);
        if (r < 0)
                return rh_error_prefix(err, r, "tap %s: bridge", name);

        /*
         * TUNSETIFF creates the tap, or attaches to the persistent tap of
         * that name if there is one: a stale tap a killed QEMU left behind is
         * taken over this way (its flags become ours). A tap some process
         * still has open refuses a second attachment with EBUSY.
         */
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
        if (ioctl(tun, TUNSETIFF, &ifr) < 0) {
                r = -errno;
                if (r == -EBUSY) {
                        pid_t holder = tap_holder(net, name);
                        char who[64] = "a process (a leftover QEMU?)";
                        if (holder > 0)
                                snprintf(who, sizeof(who), "process %d", (int)holder);
                        return rh_error_set(err, -EBUSY,
                                            "tap %s is busy: %s holds it; stop it "
                                            "(rehome clone rm, or kill %s) and retry",
                                            name, who, holder > 0 ? who + 8 : "it");
                }
                return rh_error_set(err, r, "tap %s: TUNSETIFF: %s%s", name, strerror(-r),
                                    r == -EINVAL ? " (a link of that name that is not a tap?)" : "");
        }
        /* Persistent: the tap outlives this fd until QEMU opens it by name. */
        if (ioctl(tun, TUNSETPERSIST, 1) < 0)
                return rh_error_set(err, -errno, "tap %s: TUNSETPERSIST: %s", name, strerror(errno));
        r = rh_nl_link_get_by_name(&nl, name, &tap, err);
        if (r >= 0)
                r = rh_nl_link_set_master(&nl, tap.ifindex, bridge.ifindex, true, err);
        if (r < 0) {
                /* Not persistent any more: closing the fd removes the tap again. */
                (void)ioctl(tun, TUNSETPERSIST, 0);
                return rh_error_prefix(err, r, "tap %s on bridge %s", name, net->bridge);
        }
        return 0;
}

int vmm_tap_delete(const struct vmm_net *net, const char *name)
{
        _cleanup_(rh_nl_close) struct rh_nl nl = {.fd = -EBADF};
        struct rh_nl_link tap;
        int r;

        if (!name[0])
                return 0;
        r = net_open(net, &nl, NULL, NULL);
        if (r >= 0)
                r = rh_nl_link_get_by_name(&nl, name, &tap, NULL);
        if (r >= 0)
                r = rh_nl_link_del(&nl, tap.ifindex, NULL);
        return r;
}

int vmm_mac_on_bridge(const struct vmm_net *net, const uint8_t mac[6], char *ret_dev, size_t dev_len)
{
        char *argv[] = {(char *)"bridge", (char *)"fdb", (char *)"show", (char *)"br", (char *)net->bridge, NULL};
        _cleanup_free_ char *out = calloc(1, 1 << 16);
        char want[18];

        if (!out)
                return -ENOMEM;
        rh_mac_format(mac, want);
        if (vmm_net_run(net, argv, out, 1 << 16) != 0)
                return 0; /* no bridge tool or no bridge: nothing known to collide with */
        /* "52:54:0a:58:00:0a dev rhc1 master rhbr0": learned (or static) entries of
         * other hosts; "permanent" ones are the ports' own addresses. */
        for (char *line = out, *next; line && *line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = '\0';
                if (strncasecmp(line, want, 17) != 0 || line[17] != ' ' || strstr(line, " permanent"))
                        continue;
                const char *dev = strstr(line, " dev ");
                if (ret_dev && dev_len)
                        snprintf(ret_dev, dev_len, "%.*s", dev ? (int)strcspn(dev + 5, " ") : 1, dev ? dev + 5 : "?");
                return -EADDRINUSE;
        }
        return 0;
}
