/* SPDX-License-Identifier: MIT */
/*
 * --apply shell: the same handoff applied the way host-initiated fallbacks
 * and many guest agents do it, with `ip` commands run through /bin/sh -c
 * (busybox in the guest image). It exists for the benchmark comparison
 * (`rehome bench`, mode "shell"): validation, acks and stamps stay the
 * agent's own, only the apply step differs. No announcement (GARP/NA) is
 * sent — which only flatters the shell side — and DNS is left alone.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "agent.h"
#include "io.h"

extern char **environ;

static int append(char *buf, size_t cap, size_t *len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int append(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(buf + *len, cap - *len, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= cap - *len)
                return -E2BIG;
        *len += (size_t)n;
        return 0;
}

int apply_request_shell(struct agent *a, const struct rh_request *req, struct apply_result *res)
{
        char *s = a->io_buf;
        size_t cap = sizeof(a->io_buf), len = 0;
        uint32_t steps = RH_APPLIED_LINK_UP | RH_APPLIED_ADDRS | RH_APPLIED_ROUTES;
        int r = 0;

        res->applied = 0;
        res->failed_step = 0;
        res->changes = 0;
        res->what[0] = '\0';
        uint64_t t0 = now_ns();

        for (unsigned i = 0; i < req->n_ifaces && r == 0; i++) {
                const struct rh_iface *ifc = &req->ifaces[i];
                char name[IF_NAMESIZE];
                if (!if_indextoname((unsigned)res->ifindex[i], name)) {
                        snprintf(res->what, sizeof(res->what), "shell apply: interface %d: %s", res->ifindex[i],
                                 strerror(errno));
                        return -errno;
                }
                if (ifc->has_mac) {
                        r = append(s, cap, &len, "ip link set dev %s address %02x:%02x:%02x:%02x:%02x:%02x && ",
                                   name, ifc->mac[0], ifc->mac[1], ifc->mac[2], ifc->mac[3], ifc->mac[4], ifc->mac[5]);
                        steps |= RH_APPLIED_MAC;
                }
                if (r == 0 && ifc->mtu) {
                        r = append(s, cap, &len, "ip link set dev %s mtu %u && ", name, ifc->mtu);
                        steps |= RH_APPLIED_MTU;
                }
                if (r == 0)
                        r = append(s, cap, &len, "ip link set dev %s up && ", name);
                if (r == 0 && (req->flags & RH_REQ_REPLACE_ADDRS))
                        r = append(s, cap, &len, "ip addr flush dev %s scope global && ", name);
                for (unsigned k = 0; k < req->n_addrs && r == 0; k++) {
                        const struct rh_addr *ad = &req->addrs[k];
                        char ip[INET6_ADDRSTRLEN];
                        if (ad->iface != i)
                                continue;
                        inet_ntop(ad->family == 6 ? AF_INET6 : AF_INET, ad->addr, ip, sizeof(ip));
                        /* No "nodad": busybox ip (the guest's) rejects it. The kernel's DAD
                         * then runs on timers after the ack: if anything, in the shell's favour. */
                        r = append(s, cap, &len, "ip %s addr add %s/%u dev %s && ", ad->family == 6 ? "-6" : "-4",
                                   ip, ad->prefix, name);
                }
                for (unsigned k = 0; k < req->n_routes && r == 0; k++) {
                        const struct rh_route *rt = &req->routes[k];
                        char dst[INET6_ADDRSTRLEN], gw[INET6_ADDRSTRLEN], where[INET6_ADDRSTRLEN + 8];
                        int af = rt->family == 6 ? AF_INET6 : AF_INET;
                        if (rt->iface != i)
                                continue;
                        inet_ntop(af, rt->dst, dst, sizeof(dst));
                        if (rt->dst_prefix == 0)
                                snprintf(where, sizeof(where), "default");
                        else
                                snprintf(where, sizeof(where), "%s/%u", dst, rt->dst_prefix);
                        if (rt->has_gateway)
                                inet_ntop(af, rt->gateway, gw, sizeof(gw));
                        r = append(s, cap, &len, "ip %s route replace %s%s%s dev %s && ", rt->family == 6 ? "-6" : "-4",
                                   where, rt->has_gateway ? " via " : "", rt->has_gateway ? gw : "", name);
                }
                if (r == 0 && (req->flags & RH_REQ_FLUSH_NEIGH)) {
                        r = append(s, cap, &len, "ip neigh flush dev %s && ", name);
                        steps |= RH_APPLIED_NEIGH;
                }
        }
        if (r == 0 && req->hostname[0]) {
                /* It goes through sh -c: letters, digits, '-' and '.' only. */
                for (const char *p = req->hostname; *p; p++)
                        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                              *p == '-' || *p == '.')) {
                                snprintf(res->what, sizeof(res->what), "shell apply: hostname has '%c'", *p);
                                res->failed_step = RH_APPLIED_HOSTNAME;
                                return -EINVAL;
                        }
                r = append(s, cap, &len, "hostname %s && ", req->hostname);
                steps |= RH_APPLIED_HOSTNAME;
        }
        if (r == 0)
                r = append(s, cap, &len, "true");
        if (r < 0) {
                snprintf(res->what, sizeof(res->what), "shell apply: command line too long");
                return r;
        }

        char *argv[] = { "/bin/sh", "-c", s, NULL };
        pid_t pid;
        AGENT_SYSCALL(a); /* clone (vfork) + execve in the child */
        r = posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ);
        if (r != 0) {
                snprintf(res->what, sizeof(res->what), "shell apply: /bin/sh: %s", strerror(r));
                return -r;
        }
        int status = 0;
        while (AGENT_SYSCALL(a), waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        /* One shell for every step: all of it is counted as the link step. */
        res->step_ns[RH_STEP_LINK] += now_ns() - t0;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                res->failed_step = RH_APPLIED_ADDRS;
                snprintf(res->what, sizeof(res->what), "shell apply: a command failed (status 0x%x)", status);
                return -EIO;
        }
        res->applied = steps;
        return 0;
}
