/* SPDX-License-Identifier: MIT */
/*
 * Addresses for clones through a CNI IPAM plugin, called as the CNI
 * specification says (environment CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS,
 * CNI_IFNAME, CNI_PATH, CNI_ARGS; the network configuration on stdin; the
 * result or an error object on stdout). The default is Debian's host-local
 * (containernetworking-plugins), whose data directory is STATE/ipam: its own
 * file lock makes a reservation atomic across processes, so two forks asking
 * for one address can never both get it. Any other IPAM plugin (a fleet-wide
 * one) slots in by name with --ipam and, if it needs more, --ipam-config.
 *
 * The container id is the clone id; the template's address is reserved
 * under "template-NAME" so that automatic allocation never hands it out.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cleanup.h"
#include "io.h"
#include "qmp.h"
#include "rehome/ack.h"
#include "vmm.h"

#define IPAM_TIMEOUT_MS 10000
#define IPAM_OUT_MAX 65536

static const char *cni_path(void)
{
        const char *p = getenv("CNI_PATH");
        return p && *p ? p : "/usr/lib/cni:/opt/cni/bin";
}

static int find_plugin(const char *name, char *buf, size_t len, struct rh_error *err)
{
        char path[PATH_MAX];
        const char *dirs = cni_path();

        if (!*name || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                return rh_error_set(err, -EINVAL, "IPAM plugin name '%s' (a file name in CNI_PATH)", name);
        for (const char *d = dirs; *d;) {
                size_t n = strcspn(d, ":");
                snprintf(path, sizeof(path), "%.*s/%s", (int)n, d, name);
                if (access(path, X_OK) == 0) {
                        snprintf(buf, len, "%s", path);
                        return 0;
                }
                d += n;
                if (*d == ':')
                        d++;
        }
        return rh_error_set(err, -ENOENT,
                            "IPAM plugin %s not found in %s (apt-get install containernetworking-plugins)", name,
                            dirs);
}

/* The network configuration: "ipam" from --ipam-config (type = @plugin), or a range of the clone network. */
static json_t *net_config(const struct vmm_ipam *ipam, const struct vmm_net *net, const char *state_dir,
                          struct rh_error *err)
{
        json_t *ip = NULL;
        char dir[PATH_MAX];

        if (ipam->config[0]) {
                json_error_t je;
                ip = json_load_file(ipam->config, JSON_REJECT_DUPLICATES, &je);
                if (!json_is_object(ip)) {
                        json_decref(ip);
                        rh_error_set(err, -EINVAL, "--ipam-config %s: not a JSON object (%s)", ipam->config, je.text);
                        return NULL;
                }
        } else {
                struct rh_ipaddr gw, sub;
                uint8_t prefix;
                char subnet[64], gws[48];
                if (rh_ip_parse(net->gateway, &gw, &prefix) < 0 || gw.family != 4) {
                        rh_error_set(err, -EINVAL,
                                     "the clone network has no gateway/prefix of ours to allocate from: give --ip, "
                                     "or --ipam-config");
                        return NULL;
                }
                sub = gw;
                for (unsigned bit = prefix; bit < 32; bit++)
                        sub.addr[bit / 8] &= (uint8_t) ~(0x80 >> (bit % 8));
                rh_ip_format(&sub, gws);
                snprintf(subnet, sizeof(subnet), "%s/%u", gws, prefix);
                rh_ip_format(&gw, gws);
                snprintf(dir, sizeof(dir), "%s/ipam", state_dir);
                ip = json_pack("{s:[[{s:s, s:s}]], s:s}", "ranges", "subnet", subnet, "gateway", gws, "dataDir", dir);
        }
        if (!ip) {
                rh_error_set(err, -ENOMEM, "out of memory");
                return NULL;
        }
        json_object_set_new(ip, "type", json_string(ipam->plugin));
        /* NIC K's network is a CNI network of its own: host-local keeps its reservations apart. */
        char name[32];
        if (net->nic)
                snprintf(name, sizeof(name), "rehome-nic%u", net->nic);
        else
                snprintf(name, sizeof(name), "rehome");
        return json_pack("{s:s, s:s, s:o}", "cniVersion", "1.0.0", "name", name, "ipam", ip);
}

/* Run the plugin: @stdin_text in, stdout into *ret_out (heap). Returns its exit status or -errno. */
static int run_plugin(const char *plugin, char *const envp[], const char *stdin_text, char **ret_out,
                      struct rh_error *err)
{
        int in[2] = {-1, -1}, out[2] = {-1, -1}, status = 0;
        _cleanup_free_ char *buf = calloc(1, IPAM_OUT_MAX + 1);
        size_t have = 0;
        pid_t pid;

        if (!buf)
                return rh_error_set(err, -ENOMEM, "out of memory");
        if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
                int e = errno;
                for (int i = 0; i < 2; i++) {
                        if (in[i] >= 0)
                                close(in[i]);
                        if (out[i] >= 0)
                                close(out[i]);
                }
                return rh_error_set(err, -e, "pipe: %s", strerror(e));
        }
        pid = fork();
        if (pid < 0) {
                int e = errno;
                close(in[0]), close(in[1]), close(out[0]), close(out[1]);
                return rh_error_set(err, -e, "fork: %s", strerror(e));
        }
        if (pid == 0) {
                vmm_signals_child();
                dup2(in[0], 0);
                dup2(out[1], 1);
                execle(plugin, plugin, (char *)NULL, envp);
                _exit(127);
        }
        close(in[0]);
        close(out[1]);
        /* The configuration is small (< 64 KiB, one pipe buffer): write it whole, then EOF. */
        (void)!write_full(in[1], stdin_text, strlen(stdin_text));
        close(in[1]);
        uint64_t deadline = now_ns() + IPAM_TIMEOUT_MS * 1000000ull;
        for (;;) {
                struct pollfd p = {.fd = out[0], .events = POLLIN};
                int64_t left = (int64_t)(deadline - now_ns()) / 1000000;
                if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
                        kill(pid, SIGKILL);
                        waitpid(pid, NULL, 0);
                        close(out[0]);
                        return rh_error_set(err, -ETIMEDOUT, "IPAM plugin %s: no answer in %d ms", plugin,
                                            IPAM_TIMEOUT_MS);
                }
                ssize_t n = read(out[0], buf + have, IPAM_OUT_MAX - have);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                have += (size_t)n;
                if (have == IPAM_OUT_MAX)
                        break;
        }
        close(out[0]);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        buf[have] = '\0';
        *ret_out = TAKE_PTR(buf);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static int call(const struct vmm_ipam *ipam, const struct vmm_net *net, const char *state_dir, const char *command,
                const char *container, const struct rh_ipaddr *want, json_t **ret_result, struct rh_error *err)
{
        char plugin[PATH_MAX], e_cmd[64], e_id[128], e_path[PATH_MAX + 16], e_args[128], netns[PATH_MAX];
        _cleanup_free_ char *text = NULL, *out = NULL;
        _cleanup_json_ json_t *cfg = NULL;
        int r;

        r = find_plugin(ipam->plugin, plugin, sizeof(plugin), err);
        if (r < 0)
                return r;
        cfg = net_config(ipam, net, state_dir, err);
        if (!cfg)
                return -EINVAL;
        text = json_dumps(cfg, JSON_COMPACT);
        if (!text)
                return rh_error_set(err, -ENOMEM, "out of memory");
        snprintf(e_cmd, sizeof(e_cmd), "CNI_COMMAND=%s", command);
        snprintf(e_id, sizeof(e_id), "CNI_CONTAINERID=%s", container);
        snprintf(e_path, sizeof(e_path), "CNI_PATH=%s", cni_path());
        /* IPAM plugins do not enter the namespace; the spec still wants one named. */
        if (net->netns[0])
                snprintf(netns, sizeof(netns), "CNI_NETNS=/run/netns/%s", net->netns);
        else
                snprintf(netns, sizeof(netns), "CNI_NETNS=/proc/self/ns/net");
        char addr[48] = "";
        if (want)
                rh_ip_format(want, addr);
        snprintf(e_args, sizeof(e_args), "CNI_ARGS=IgnoreUnknown=1%s%s", want ? ";IP=" : "", addr);
        char e_ifname[32];
        snprintf(e_ifname, sizeof(e_ifname), "CNI_IFNAME=eth%u", net->nic);
        char *envp[] = {e_cmd, e_id, netns, e_ifname, e_path, e_args, (char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
        r = run_plugin(plugin, envp, text, &out, err);
        if (r < 0)
                return rh_error_prefix(err, r, "IPAM %s %s", ipam->plugin, command);
        json_t *res = json_loads(out, 0, NULL);
        if (r != 0) {
                /* The spec's error object: {"code": N, "msg": "...", "details": "..."}. Untrusted text. */
                const char *msg = json_string_value(json_object_get(res, "msg"));
                char safe[512];
                rh_text_escape(msg ? msg : out, 200, safe, sizeof(safe));
                json_decref(res);
                bool taken = msg && strstr(msg, "not available");
                return rh_error_set(err, taken ? -EADDRINUSE : -EIO, "IPAM %s %s %s: %s", ipam->plugin, command,
                                    container, safe);
        }
        if (ret_result)
                *ret_result = res;
        else
                json_decref(res);
        return 0;
}

int vmm_ipam_add(const struct vmm_ipam *ipam, const struct vmm_net *net, const char *state_dir, const char *container,
                 const struct rh_ipaddr *want, struct rh_ipaddr *ret_ip, uint8_t *ret_prefix, struct rh_error *err)
{
        _cleanup_json_ json_t *res = NULL;
        int r = call(ipam, net, state_dir, "ADD", container, want, &res, err);

        if (r < 0)
                return r;
        json_t *ips = json_object_get(res, "ips");
        const char *a = json_string_value(json_object_get(json_array_get(ips, 0), "address"));
        struct rh_ipaddr ip;
        uint8_t prefix;
        if (!a || rh_ip_parse(a, &ip, &prefix) < 0 || !strchr(a, '/')) {
                /* A result we cannot use: give the address back. */
                call(ipam, net, state_dir, "DEL", container, NULL, NULL, NULL);
                return rh_error_set(err, -EPROTO, "IPAM %s ADD %s: no usable \"ips[0].address\" in its result",
                                    ipam->plugin, container);
        }
        *ret_ip = ip;
        *ret_prefix = prefix;
        return 0;
}

int vmm_ipam_del(const struct vmm_ipam *ipam, const struct vmm_net *net, const char *state_dir, const char *container,
                 struct rh_error *err)
{
        return call(ipam, net, state_dir, "DEL", container, NULL, NULL, err);
}
