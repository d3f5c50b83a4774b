/* SPDX-License-Identifier: MIT */
/*
 * Handing the new identity to the guest's own network managers, so that a
 * restart or reload of one of them keeps it (docs/AGENT.md, "Guest
 * integration"). After the netlink apply and before the ack, files only:
 *
 *   systemd-networkd  for each link it manages (its state file under
 *                     /run/systemd/netif/links/IFINDEX names a .network):
 *                     /run/systemd/network/00-rehome-IFNAME.network
 *   ifupdown          the `iface IFNAME inet|inet6 static` stanzas of
 *                     /etc/network/interfaces rewritten with the identity
 *   /etc/hosts        the 127.0.1.1 line (or the old host name's) follows
 *                     the new host name
 *
 * After the ack (handoff_after_ack(), off the hot path): `networkctl reload`
 * where a .network was written, DNS to systemd-resolved with `resolvectl`
 * where /etc/resolv.conf is its symlink and networkd does not carry the DNS;
 * then the ack record is rewritten with the RH_APPLIED_RESOLVED /
 * RH_APPLIED_RELOADED bits. Where nothing manages a link, nothing is done.
 * Every file is replaced by rename(): a reader sees the old or the new one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "cleanup.h"
#include "io.h"

#define NETWORKD_PREFIX "00-rehome-"
#define CMD_TIMEOUT_MS 10000

static inline void closedirp(DIR **d)
{
        if (*d)
                closedir(*d);
}
#define _cleanup_closedir_ _cleanup_(closedirp)

/* Preallocated: nothing before the ack allocates. */
static char old_hostname[RH_HOSTNAME_MAX + 1];
static char in_buf[32768], out_buf[32768];

/* What handoff_write() left for handoff_after_ack(). */
static struct {
        bool networkd[RH_MAX_IFACES];   /* .network written or already in place */
        bool networkd_changed;          /* some .network changed: reload */
        bool resolved;                  /* resolv.conf is systemd-resolved's symlink */
} pending;

static const char *root(const struct agent *a)
{
        return a->opt.handoff_root ? a->opt.handoff_root : "";
}

void handoff_snapshot(struct agent *a)
{
        struct utsname u;

        (void)a;
        old_hostname[0] = '\0';
        if (uname(&u) == 0)
                snprintf(old_hostname, sizeof(old_hostname), "%s", u.nodename);
}

bool handoff_resolv_is_resolved(const char *path)
{
        char target[PATH_MAX];
        ssize_t n;

        if (!path || !*path)
                return false;
        n = readlink(path, target, sizeof(target) - 1);
        if (n <= 0)
                return false;
        target[n] = '\0';
        return strstr(target, "run/systemd/resolve/") != NULL;
}

/* The agent and PID 1 share a network namespace: the guest's own managers
 * see the same links. (A test agent in a netns of its own must never
 * configure the host's networkd.) */
static bool in_init_netns(void)
{
        struct stat self, init;

        return stat("/proc/self/ns/net", &self) == 0 && stat("/proc/1/ns/net", &init) == 0 &&
               self.st_ino == init.st_ino && self.st_dev == init.st_dev;
}

/* Read a small file into in_buf; -EFBIG if it does not fit. */
static int slurp(const char *path, size_t *ret_len, mode_t *ret_mode)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        ssize_t n;
        size_t len = 0;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (ret_mode)
                *ret_mode = st.st_mode & 07777;
        while ((n = read(fd, in_buf + len, sizeof(in_buf) - 1 - len)) > 0)
                len += (size_t)n;
        if (n < 0)
                return -errno;
        if (len == sizeof(in_buf) - 1)
                return -EFBIG;
        in_buf[len] = '\0';
        *ret_len = len;
        return 0;
}

/* Replace @path by @len bytes of @text (tmp + rename). 1 if it changed, 0
 * if it already held exactly that, -errno. */
static int write_atomic(const char *path, const char *text, size_t len, mode_t mode)
{
        char tmp[PATH_MAX];
        size_t old_len;
        int r;

        if (slurp(path, &old_len, NULL) == 0 && old_len == len && memcmp(in_buf, text, len) == 0)
                return 0;
        if (snprintf(tmp, sizeof(tmp), "%s.rehome-tmp", path) >= (int)sizeof(tmp))
                return -ENAMETOOLONG;
        {
                _cleanup_close_ int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
                if (fd < 0)
                        return -errno;
                r = write_full(fd, text, len);
                if (r == 0 && fchmod(fd, mode) < 0)
                        r = -errno;
        }
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                return r;
        }
        return 1;
}

/* ---- systemd-networkd ---------------------------------------------- */

/* networkd manages @ifindex: its state file names a .network. */
static bool networkd_manages(const struct agent *a, int ifindex)
{
        char path[PATH_MAX];
        size_t len;
        bool has_file = false, unmanaged = false;

        snprintf(path, sizeof(path), "%s/run/systemd/netif/links/%d", root(a), ifindex);
        if (slurp(path, &len, NULL) < 0)
                return false;
        for (char *line = in_buf; line && *line;) {
                char *nl = strchr(line, '\n');

                if (nl)
                        *nl = '\0';
                if (strncmp(line, "NETWORK_FILE=", 13) == 0 && line[13])
                        has_file = true;
                if (strcmp(line, "ADMIN_STATE=unmanaged") == 0 || strcmp(line, "ADMIN_STATE=linger") == 0)
                        unmanaged = true;
                line = nl ? nl + 1 : NULL;
        }
        return has_file && !unmanaged;
}

/* networkd(5): every .network of every directory is sorted by file name and
 * the first that matches wins; a file of the same name in /etc replaces
 * ours. Say so where either could keep ours from applying. */
static void networkd_check_precedence(struct agent *a, const char *name)
{
        static const char *const dirs[] = {"/etc/systemd/network", "/run/systemd/network",
                                           "/usr/local/lib/systemd/network", "/usr/lib/systemd/network",
                                           "/lib/systemd/network"};
        char path[PATH_MAX];

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                _cleanup_closedir_ DIR *d = NULL;
                struct dirent *de;

                snprintf(path, sizeof(path), "%s%s", root(a), dirs[i]);
                d = opendir(path);
                if (!d)
                        continue;
                while ((de = readdir(d))) {
                        size_t n = strlen(de->d_name);

                        if (n < 8 || strcmp(de->d_name + n - 8, ".network") != 0)
                                continue;
                        if (i == 0 && strcmp(de->d_name, name) == 0)
                                agent_log(a, "handoff: %s/%s replaces the agent's runtime file of that name", dirs[i],
                                          de->d_name);
                        else if (strcmp(de->d_name, name) < 0)
                                agent_log(a, "handoff: %s/%s sorts before %s: if it matches the link, networkd applies it instead",
                                          dirs[i], de->d_name, name);
                }
        }
}

static int networkd_write(struct agent *a, const struct rh_request *req, unsigned iface, const char *ifname,
                          struct rh_error *err)
{
        char dir[PATH_MAX], path[PATH_MAX], name[64];
        int n, r;

        snprintf(name, sizeof(name), NETWORKD_PREFIX "%s.network", ifname);
        snprintf(dir, sizeof(dir), "%s/run/systemd/network", root(a));
        if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
                return rh_error_set(err, -ENAMETOOLONG, "%s/%s: name too long", dir, name);
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return rh_error_set(err, -errno, "mkdir %s: %s", dir, strerror(errno));
        n = render_networkd(req, iface, ifname, out_buf, sizeof(out_buf));
        if (n < 0)
                return rh_error_set(err, n, "%s: %s", path, strerror(-n));
        r = write_atomic(path, out_buf, (size_t)n, 0644);
        if (r < 0)
                return rh_error_set(err, r, "%s: %s", path, strerror(-r));
        if (r > 0)
                networkd_check_precedence(a, name);
        pending.networkd_changed |= r > 0;
        return 0;
}

/* ---- ifupdown ------------------------------------------------------ */

/* 1 if the file has a static stanza for @ifname (rewritten), 0 if not. */
static int ifupdown_write(struct agent *a, const struct rh_request *req, unsigned iface, const char *ifname,
                          struct rh_error *err)
{
        char path[PATH_MAX];
        size_t len;
        mode_t mode = 0644;
        int n, r;

        snprintf(path, sizeof(path), "%s/etc/network/interfaces", root(a));
        r = slurp(path, &len, &mode);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return rh_error_set(err, r, "%s: %s", path, strerror(-r));
        n = render_ifupdown(in_buf, len, req, iface, ifname, out_buf, sizeof(out_buf));
        if (n == -ENOENT)
                return 0; /* ifupdown does not configure this link statically */
        if (n < 0)
                return rh_error_set(err, n, "%s: %s", path, strerror(-n));
        r = write_atomic(path, out_buf, (size_t)n, mode);
        if (r < 0)
                return rh_error_set(err, r, "%s: %s", path, strerror(-r));
        return 1;
}

/* ---- /etc/hosts ---------------------------------------------------- */

static int hosts_write(struct agent *a, const char *new_name, struct rh_error *err)
{
        char path[PATH_MAX];
        size_t len;
        mode_t mode = 0644;
        int n, r;

        snprintf(path, sizeof(path), "%s/etc/hosts", root(a));
        r = slurp(path, &len, &mode);
        if (r == -ENOENT)
                return 0; /* no hosts file: nothing names this machine */
        if (r < 0)
                return rh_error_set(err, r, "%s: %s", path, strerror(-r));
        n = render_hosts(in_buf, len, old_hostname, new_name, out_buf, sizeof(out_buf));
        if (n < 0)
                return rh_error_set(err, n, "%s: %s", path, strerror(-n));
        r = write_atomic(path, out_buf, (size_t)n, mode);
        if (r < 0)
                return rh_error_set(err, r, "%s: %s", path, strerror(-r));
        return 1;
}

static const char *link_name(const struct agent *a, int ifindex, char buf[IF_NAMESIZE])
{
        for (size_t i = 0; i < a->n_links; i++)
                if (a->links[i].ifindex == ifindex)
                        return a->links[i].name;
        return if_indextoname((unsigned)ifindex, buf);
}

int handoff_write(struct agent *a, const struct rh_request *req, struct apply_result *res)
{
        struct rh_error e = {0};
        const char *step = "?";
        bool networkd_ok = a->opt.handoff_root || in_init_netns();
        int r = 0;

        memset(&pending, 0, sizeof(pending));
        if (!a->opt.handoff)
                return 0;
        pending.resolved = (req->n_dns || req->n_search) && handoff_resolv_is_resolved(a->opt.resolv_conf);
        for (unsigned i = 0; i < req->n_ifaces && r >= 0; i++) {
                char buf[IF_NAMESIZE];
                const char *ifname = link_name(a, res->ifindex[i], buf);

                if (!ifname)
                        continue;
                if (networkd_ok && networkd_manages(a, res->ifindex[i])) {
                        step = "networkd";
                        res->failed_step = RH_APPLIED_NETWORKD;
                        r = networkd_write(a, req, i, ifname, &e);
                        if (r < 0)
                                break;
                        pending.networkd[i] = true;
                        res->applied |= RH_APPLIED_NETWORKD;
                }
                step = "ifupdown";
                res->failed_step = RH_APPLIED_IFUPDOWN;
                r = ifupdown_write(a, req, i, ifname, &e);
                if (r > 0)
                        res->applied |= RH_APPLIED_IFUPDOWN;
        }
        if (r >= 0 && req->hostname[0] && strcmp(old_hostname, req->hostname) != 0) {
                step = "hosts";
                res->failed_step = RH_APPLIED_HOSTS;
                r = hosts_write(a, req->hostname, &e);
                if (r > 0)
                        res->applied |= RH_APPLIED_HOSTS;
        }
        if (r < 0) {
                int n = snprintf(res->what, sizeof(res->what), "handoff %s failed (the netlink identity is applied): ",
                                 step);

                if (n > 0 && (size_t)n < sizeof(res->what))
                        snprintf(res->what + n, sizeof(res->what) - (size_t)n, "%.*s",
                                 (int)(sizeof(res->what) - (size_t)n - 1), e.msg);
                return r;
        }
        res->failed_step = 0;
        return 0;
}

/* ---- after the ack --------------------------------------------------- */

static const char *find_tool(const char *name, char buf[PATH_MAX])
{
        static const char *const dirs[] = {"/usr/bin", "/bin", "/usr/sbin", "/sbin"};

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                snprintf(buf, PATH_MAX, "%s/%s", dirs[i], name);
                if (access(buf, X_OK) == 0)
                        return buf;
        }
        return NULL;
}

/* Run @argv (argv[0] a path), stdout/stderr to the agent's stderr, for at
 * most CMD_TIMEOUT_MS. Its exit status, or -errno / -ETIME. */
static int run_tool(struct agent *a, char *const argv[])
{
        static char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "SYSTEMD_PAGER=", NULL};
        uint64_t deadline = now_ns() + (uint64_t)CMD_TIMEOUT_MS * 1000000u;
        pid_t pid = fork();
        int status;

        if (pid < 0)
                return -errno;
        if (pid == 0) {
                int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

                if (null >= 0)
                        dup2(null, STDIN_FILENO);
                dup2(STDERR_FILENO, STDOUT_FILENO);
                execve(argv[0], argv, envp);
                _exit(127);
        }
        for (;;) {
                pid_t w = waitpid(pid, &status, WNOHANG);

                if (w == pid)
                        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
                if (w < 0 && errno != EINTR)
                        return -errno;
                if (now_ns() > deadline) {
                        agent_log(a, "handoff: %s still running after %d ms: killed", argv[0], CMD_TIMEOUT_MS);
                        kill(pid, SIGKILL);
                        (void)waitpid(pid, &status, 0);
                        return -ETIME;
                }
                {
                        struct timespec ts = {.tv_nsec = 5 * 1000 * 1000};
                        nanosleep(&ts, NULL);
                }
        }
}

static const char *yes_no(bool asked, bool done)
{
        return !asked ? "none" : done ? "ok" : "failed";
}

void handoff_after_ack(struct agent *a, const struct rh_request *req, const struct apply_result *res)
{
        uint32_t more = 0;
        bool want_reload = pending.networkd_changed, want_resolved = pending.resolved;
        bool networkd_dns = false;
        char tool[PATH_MAX], ip[RH_MAX_DNS][64];
        int r;

        if (!a->opt.handoff)
                return;
        if (want_reload) {
                char *argv[] = {(char *)find_tool("networkctl", tool), "reload", NULL};

                r = argv[0] ? run_tool(a, argv) : -ENOENT;
                if (r == 0)
                        more |= RH_APPLIED_RELOADED;
                else
                        agent_log(a, "handoff: networkctl reload: %s", r < 0 ? strerror(-r) : "non-zero exit");
        } else if (res->applied & RH_APPLIED_NETWORKD) {
                more |= RH_APPLIED_RELOADED; /* the file networkd has loaded is already this identity's */
        }
        /* networkd carries DNS= to resolved for the links it manages. */
        for (unsigned i = 0; i < req->n_ifaces; i++)
                networkd_dns |= pending.networkd[i];
        if (want_resolved && networkd_dns && (more & RH_APPLIED_RELOADED)) {
                more |= RH_APPLIED_RESOLVED;
        } else if (want_resolved && req->n_ifaces) {
                /* No networkd: resolved's per-link DNS of the first link. */
                char buf[IF_NAMESIZE];
                const char *ifname = link_name(a, res->ifindex[0], buf);
                const char *path = find_tool("resolvectl", tool);
                char *argv[2 + 1 + RH_MAX_DNS + RH_MAX_SEARCH + 1];
                size_t n = 0;

                r = path && ifname ? 0 : -ENOENT;
                if (r == 0 && req->n_dns) {
                        argv[n++] = (char *)path, argv[n++] = "dns", argv[n++] = (char *)ifname;
                        for (unsigned i = 0; i < req->n_dns; i++)
                                argv[n++] = rh_ip_format(&req->dns[i], ip[i]);
                        argv[n] = NULL;
                        r = run_tool(a, argv);
                }
                if (r == 0 && req->n_search) {
                        n = 0;
                        argv[n++] = (char *)path, argv[n++] = "domain", argv[n++] = (char *)ifname;
                        for (unsigned i = 0; i < req->n_search; i++)
                                argv[n++] = (char *)req->search[i];
                        argv[n] = NULL;
                        r = run_tool(a, argv);
                }
                if (r == 0)
                        more |= RH_APPLIED_RESOLVED;
                else
                        agent_log(a, "handoff: resolvectl: %s", r < 0 ? strerror(-r) : "non-zero exit");
        }
        if (!(res->applied & (RH_APPLIED_NETWORKD | RH_APPLIED_IFUPDOWN | RH_APPLIED_HOSTS)) && !want_resolved)
                return; /* nothing manages anything here: nothing to say */
        if (more && a->opt.format == FORMAT_NATIVE && a->ack.status == RH_ACK_APPLIED) {
                a->ack.applied |= more;
                ack_write(a);
        }
        agent_announce(a, "rehome-agent: handoff seq=%u networkd=%s ifupdown=%s resolved=%s hosts=%s",
                       a->ack.seq,
                       yes_no(res->applied & RH_APPLIED_NETWORKD, more & RH_APPLIED_RELOADED),
                       (res->applied & RH_APPLIED_IFUPDOWN) ? "ok" : "none", yes_no(want_resolved, more & RH_APPLIED_RESOLVED),
                       (res->applied & RH_APPLIED_HOSTS) ? "ok" : "none");
}
