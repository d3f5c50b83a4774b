/* SPDX-License-Identifier: MIT */
/*
 * The host side of the clone network: an isolated network namespace with a
 * bridge and the gateway address (`rehome net up`), or a bridge the user
 * already has (`--bridge`), and one tap per clone on that bridge. Done with
 * iproute2 (`ip`), which every host that runs QEMU with taps has; each call
 * costs a few milliseconds, measured in the fork's spawn stage.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "cleanup.h"
#include "io.h"
#include "qmp.h"
#include "vmm.h"

/* Run argv with @input (may be NULL) on stdin; capture stdout+stderr into @out (may be NULL).
 * Returns the exit status or -errno. */
static int run_input(char *const argv[], const char *input, char *out, size_t out_len)
{
        int pfd[2], ifd[2] = {-1, -1};
        pid_t pid;
        int status;
        size_t have = 0;

        if (pipe2(pfd, O_CLOEXEC) < 0)
                return -errno;
        if (input && pipe2(ifd, O_CLOEXEC) < 0) {
                int r = -errno;
                close(pfd[0]);
                close(pfd[1]);
                return r;
        }
        pid = fork();
        if (pid < 0) {
                int r = -errno;
                close(pfd[0]);
                close(pfd[1]);
                if (input) {
                        close(ifd[0]);
                        close(ifd[1]);
                }
                return r;
        }
        if (pid == 0) {
                int nul = input ? ifd[0] : open("/dev/null", O_RDONLY);
                if (nul >= 0)
                        dup2(nul, 0);
                dup2(pfd[1], 1);
                dup2(pfd[1], 2);
                execvp(argv[0], argv);
                _exit(127);
        }
        close(pfd[1]);
        if (input) {
                /* Small (a few commands): fits the pipe buffer, no deadlock. */
                close(ifd[0]);
                (void)!write(ifd[1], input, strlen(input));
                close(ifd[1]);
        }
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

static int run(char *const argv[], char *out, size_t out_len)
{
        return run_input(argv, NULL, out, out_len);
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

static int net_path(const char *state_dir, char *buf, size_t len)
{
        return snprintf(buf, len, "%s/net.json", state_dir) >= (int)len ? -ENAMETOOLONG : 0;
}

int vmm_net_load(const char *state_dir, struct vmm_net *ret_net, struct rh_error *err)
{
        char path[PATH_MAX];
        _cleanup_free_ char *text = NULL;
        _cleanup_json_ json_t *j = NULL;
        struct vmm_net net = {0};
        int r;

        net_path(state_dir, path, sizeof(path));
        r = read_file_alloc(path, 65536, &text, NULL);
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

int vmm_net_up(const char *state_dir, const char *bridge, const char *gateway, const char *netns,
               struct vmm_net *ret_net, struct rh_error *err)
{
        struct vmm_net net = {0};
        char path[PATH_MAX], out[512];
        int r;

        if (vmm_mkdir_p(state_dir, 0755) < 0)
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
                if (!netns)
                        netns = VMM_DEFAULT_NETNS;
                if (!valid_ifname(netns) || strchr(netns, '.'))
                        return rh_error_set(err, -EINVAL, "bad namespace name '%s'", netns);
                snprintf(net.netns, sizeof(net.netns), "%s", netns);
                snprintf(net.bridge, sizeof(net.bridge), "%s", VMM_DEFAULT_BRIDGE);
                snprintf(net.gateway, sizeof(net.gateway), "%s", gateway);
                net.ours = true;

                char nspath[PATH_MAX];
                snprintf(nspath, sizeof(nspath), "/run/netns/%s", net.netns);
                if (access(nspath, F_OK) < 0) {
                        r = ip_cmd(NULL, out, sizeof(out), "netns", "add", net.netns, NULL);
                        if (r != 0) {
                                chomp(out);
                                return rh_error_set(err, -EPERM, "ip netns add %s: %s (are you root?)",
                                                    net.netns, out);
                        }
                }
                ip_cmd(&net, NULL, 0, "link", "set", "lo", "up", NULL);
                if (!vmm_link_exists(&net, net.bridge)) {
                        r = ip_cmd(&net, out, sizeof(out), "link", "add", net.bridge, "type", "bridge", NULL);
                        if (r != 0) {
                                chomp(out);
                                return rh_error_set(err, -EIO, "ip link add %s type bridge: %s", net.bridge,
                                                    out);
                        }
                }
                /* Replace whatever address the bridge had with the gateway. */
                ip_cmd(&net, NULL, 0, "addr", "flush", "dev", net.bridge, NULL);
                r = ip_cmd(&net, out, sizeof(out), "addr", "add", gateway, "dev", net.bridge, NULL);
                if (r != 0) {
                        chomp(out);
                        return rh_error_set(err, -EIO, "ip addr add %s dev %s: %s", gateway, net.bridge, out);
                }
                r = ip_cmd(&net, out, sizeof(out), "link", "set", net.bridge, "up", NULL);
                if (r != 0) {
                        chomp(out);
                        return rh_error_set(err, -EIO, "ip link set %s up: %s", net.bridge, out);
                }
        }

        _cleanup_json_ json_t *j = json_pack("{s:s, s:s, s:s, s:b}", "netns", net.netns, "bridge", net.bridge,
                                             "gateway", net.gateway, "ours", net.ours);
        net_path(state_dir, path, sizeof(path));
        if (!j || json_dump_file(j, path, JSON_INDENT(2)) < 0)
                return rh_error_set(err, -EIO, "cannot write %s", path);
        if (ret_net)
                *ret_net = net;
        return 0;
}

int vmm_net_down(const char *state_dir, struct rh_error *err)
{
        struct vmm_net net;
        char path[PATH_MAX], out[512];
        int r;

        net_path(state_dir, path, sizeof(path));
        r = vmm_net_load(state_dir, &net, NULL);
        if (r == -ENOENT && access(path, F_OK) < 0)
                return 0; /* nothing to do */
        if (r == 0 && net.ours && net.netns[0]) {
                r = ip_cmd(NULL, out, sizeof(out), "netns", "del", net.netns, NULL);
                if (r != 0) {
                        chomp(out);
                        return rh_error_set(err, -EIO, "ip netns del %s: %s", net.netns, out);
                }
        }
        unlink(path);
        return 0;
}

bool vmm_link_exists(const struct vmm_net *net, const char *name)
{
        return ip_cmd(net, NULL, 0, "link", "show", "dev", name, NULL) == 0;
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
        char out[512];
        int r;

        if (!valid_ifname(name))
                return rh_error_set(err, -EINVAL, "bad tap name '%s'", name);
        {
                /* The common case in one `ip -batch` (each ip run costs milliseconds,
                 * tens of them on a loaded host); on failure, find out why below. */
                char batch[256];
                char *argv[] = {(char *)"ip",     (char *)"-n", (char *)net->netns,
                                (char *)"-batch", (char *)"-",  NULL};
                char *argv_host[] = {(char *)"ip", (char *)"-batch", (char *)"-", NULL};
                snprintf(batch, sizeof(batch),
                         "tuntap add dev %s mode tap vnet_hdr\nlink set %s master %s up\n", name, name,
                         net->bridge);
                if (run_input(net->netns[0] ? argv : argv_host, batch, out, sizeof(out)) == 0)
                        return 0;
        }
        if (vmm_link_exists(net, name)) {
                /* A tap nobody holds has no carrier once up: a stale one we may reuse. */
                ip_cmd(net, NULL, 0, "link", "set", name, "up", NULL);
                ip_cmd(net, out, sizeof(out), "-o", "link", "show", "dev", name, NULL);
                if (!strstr(out, "NO-CARRIER")) {
                        pid_t holder = tap_holder(net, name);
                        char who[64] = "a process (a leftover QEMU?)";
                        if (holder > 0)
                                snprintf(who, sizeof(who), "process %d", (int)holder);
                        return rh_error_set(err, -EBUSY,
                                            "tap %s is busy: %s holds it; stop it "
                                            "(rehome clone rm, or kill %s) and retry",
                                            name, who, holder > 0 ? who + 8 : "it");
                }
                ip_cmd(net, NULL, 0, "link", "del", name, NULL);
        }
        r = ip_cmd(net, out, sizeof(out), "tuntap", "add", "dev", name, "mode", "tap", "vnet_hdr", NULL);
        if (r != 0) {
                chomp(out);
                return rh_error_set(err, -EIO, "ip tuntap add %s: %s", name, out);
        }
        r = ip_cmd(net, out, sizeof(out), "link", "set", name, "master", net->bridge, "up", NULL);
        if (r != 0) {
                chomp(out);
                ip_cmd(net, NULL, 0, "link", "del", name, NULL);
                return rh_error_set(err, -EIO, "ip link set %s master %s: %s", name, net->bridge, out);
        }
        return 0;
}

int vmm_tap_delete(const struct vmm_net *net, const char *name)
{
        if (!name[0])
                return 0;
        return ip_cmd(net, NULL, 0, "link", "del", name, NULL) == 0 ? 0 : -EIO;
}
