/* SPDX-License-Identifier: MIT */
/*
 * Acks, on two channels (DESIGN.md decision 5):
 *
 *  - the ack record in the mailbox page (rh_mailbox_write_ack: CRC, seq
 *    last), which the host reads from the clone's memory;
 *  - one UDP datagram, a text line in hypeman's key=value style plus the
 *    fork's nonce:
 *        stage=mailbox mac=<mac> ip=<ip> nonce=<16 hex> seq=<n>
 *        stage=applied mac=<mac> ip=<ip> nonce=<16 hex> seq=<n> signal=<name>
 *        stage=error status=invalid|failed nonce=<16 hex> seq=<n> error="<text, \" and \\ escaped>"
 *    In V1 mode (hypeman's own mailbox) there is no nonce and the target is
 *    the request's gateway at ack_port.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "agent.h"
#include "io.h"

int ack_setup(struct agent *a, struct rh_error *err)
{
        a->udp4_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (a->udp4_fd < 0)
                return rh_error_set(err, -errno, "UDP socket: %s", strerror(errno));
        /* IPv6 may be disabled in the guest: then only IPv4 acks. */
        a->udp6_fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        return 0;
}

void ack_quote(const char *text, char *out, size_t cap)
{
        size_t o = 0;

        /* "..." with \ before " and \; control characters become spaces:
         * one line, parsed by rh_ack_line_parse. */
        if (cap < 3)
                return;
        out[o++] = '"';
        for (size_t i = 0; text[i] && o + 3 < cap; i++) {
                char c = text[i];

                if (c == '"' || c == '\\')
                        out[o++] = '\\';
                out[o++] = (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
        }
        out[o++] = '"';
        out[o] = '\0';
}

void ack_write(struct agent *a)
{
        a->ack.t_ack_ns = now_ns();
        rh_mailbox_write_ack(a->page, &a->ack);
}

/* Where the UDP line goes: the request's target; in V1 mode the gateway. */
static bool udp_target(const struct agent *a, const struct rh_request *req, struct rh_ipaddr *ret_ip)
{
        if (!req->has_ack_udp || req->ack_port == 0)
                return false;
        if (req->ack_addr.family == 4 || req->ack_addr.family == 6) {
                *ret_ip = req->ack_addr;
                return true;
        }
        for (unsigned i = 0; i < req->n_routes; i++)
                if (req->routes[i].has_gateway && req->routes[i].family == 4) {
                        ret_ip->family = 4;
                        memcpy(ret_ip->addr, req->routes[i].gateway, 16);
                        return true;
                }
        return false;
}

static void first_identity(const struct agent *a, const struct rh_request *req, char mac[18], char ip[64])
{
        snprintf(mac, 18, "none");
        snprintf(ip, 64, "none");
        if (req->n_ifaces && req->ifaces[0].has_mac)
                rh_mac_format(req->ifaces[0].mac, mac);
        for (unsigned pass = 0; pass < 2; pass++)
                for (unsigned i = 0; i < req->n_addrs; i++) {
                        const struct rh_addr *ad = &req->addrs[i];
                        /* IPv4 first, as hypeman's ip= means the IPv4 address. */
                        if ((pass == 0 && ad->family == 4) || (pass == 1 && ad->family == 6)) {
                                struct rh_ipaddr x = {.family = ad->family};
                                memcpy(x.addr, ad->addr, 16);
                                rh_ip_format(&x, ip);
                                return;
                        }
                }
}

void ack_send_udp(struct agent *a, const struct rh_request *req, const char *stage)
{
        struct rh_ipaddr target;
        char mac[18], ip[64], nonce[40];
        char *line = a->line;
        size_t cap = sizeof(a->line);
        int len, fd;

        if (!udp_target(a, req, &target))
                return;
        if (a->opt.format == FORMAT_V1)
                nonce[0] = '\0';
        else
                snprintf(nonce, sizeof(nonce), " nonce=%016" PRIx64, a->ack.nonce);
        first_identity(a, req, mac, ip);
        if (strcmp(stage, "error") == 0) {
                char quoted[2 * RH_ACK_ERROR_MAX + 3];

                ack_quote(a->ack.error, quoted, sizeof(quoted));
                len = snprintf(line, cap, "stage=error status=%s%s seq=%u error=%s\n",
                               a->ack.status == RH_ACK_INVALID ? "invalid" : "failed", nonce, a->ack.seq,
                               quoted);
        } else if (strcmp(stage, "applied") == 0 && a->opt.format == FORMAT_V1)
                len = snprintf(line, cap, "stage=applied mac=%s ip=%s seq=%u signal=%s\n", mac, ip, a->ack.seq,
                               rh_signal_name(a->ack.signal));
        else if (strcmp(stage, "applied") == 0) {
                /* realtime=: the guest's clock as it acks, so the host can tell how far off it is. */
                struct timespec rt = {0};
                clock_gettime(CLOCK_REALTIME, &rt);
                len = snprintf(line, cap, "stage=applied mac=%s ip=%s%s seq=%u signal=%s realtime=%llu\n", mac, ip,
                               nonce, a->ack.seq, rh_signal_name(a->ack.signal),
                               (unsigned long long)rt.tv_sec * 1000000000ull + (unsigned long long)rt.tv_nsec);
        }
        else
                len = snprintf(line, cap, "stage=%s mac=%s ip=%s%s seq=%u\n", stage, mac, ip, nonce,
                               a->ack.seq);
        if (len < 0)
                return;
        if ((size_t)len >= cap)
                len = (int)cap - 1;

        if (target.family == 4) {
                struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(req->ack_port)};

                memcpy(&sin.sin_addr, target.addr, 4);
                fd = a->udp4_fd;
                AGENT_SYSCALL(a);
                if (sendto(fd, line, (size_t)len, 0, (struct sockaddr *)&sin, sizeof(sin)) < 0)
                        agent_log(a, "UDP ack to port %u: %s", req->ack_port, strerror(errno));
        } else {
                struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6, .sin6_port = htons(req->ack_port)};

                memcpy(&sin6.sin6_addr, target.addr, 16);
                fd = a->udp6_fd;
                AGENT_SYSCALL(a);
                if (fd < 0 || sendto(fd, line, (size_t)len, 0, (struct sockaddr *)&sin6, sizeof(sin6)) < 0)
                        agent_log(a, "UDP ack to port %u: %s", req->ack_port,
                                  fd < 0 ? "no IPv6" : strerror(errno));
        }
}
