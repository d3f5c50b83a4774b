/* SPDX-License-Identifier: MIT */
/*
 * rh_ack_wait: the one loop that decides when a clone has answered (the rule
 * is written in include/rehome/ack.h). It polls the ack record every
 * interval and sleeps in ppoll() on the UDP socket in between, so a UDP line
 * is seen the moment it arrives and a record within one interval.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "io.h"
#include "rehome/ack.h"

#define DEFAULT_INTERVAL_US 250
#define DEFAULT_GRACE_MS 250

size_t rh_text_escape(const char *text, size_t len, char *out, size_t cap)
{
        static const char hex[] = "0123456789abcdef";
        size_t o = 0;

        if (cap == 0)
                return 0;
        for (size_t i = 0; i < len && text[i]; i++) {
                unsigned char c = (unsigned char)text[i];
                char e[4];
                size_t n;

                if (c == '\\') {
                        e[0] = e[1] = '\\';
                        n = 2;
                } else if (c >= 0x20 && c < 0x7f) {
                        e[0] = (char)c;
                        n = 1;
                } else {
                        e[0] = '\\', e[1] = 'x', e[2] = hex[c >> 4], e[3] = hex[c & 15];
                        n = 4;
                }
                if (o + n >= cap)
                        break;
                memcpy(out + o, e, n);
                o += n;
        }
        out[o] = '\0';
        return o;
}

static bool line_final(const struct rh_ack_line *l)
{
        return strcmp(l->stage, "applied") == 0 || strcmp(l->stage, "error") == 0;
}

static bool is_progress_stage(const char *stage)
{
        static const char *const stages[] = {"signal_seen", "mailbox_seen", "netlink_start", "netlink_done",
                                             "mailbox"};

        for (size_t i = 0; i < sizeof(stages) / sizeof(stages[0]); i++)
                if (strcmp(stage, stages[i]) == 0)
                        return true;
        return false;
}

/*
 * hypeman V1: split the lower-cased datagram into blank-separated words and
 * pick stage=, mac= and ip= (the first of each). Returns 1 final for us
 * (stage=applied, our mac and ip), 0 progress for us, -1 not ours.
 */
static int v1_line_match(const struct rh_ack_wait_opts *o, const char *buf, size_t n, struct rh_ack_line *ret)
{
        char text[1500];
        struct rh_ack_line l = {};
        struct rh_ipaddr ip;
        uint8_t mac[6], prefix;
        bool has_mac = false, has_ip = false;

        if (n >= sizeof(text))
                return -1;
        for (size_t i = 0; i < n; i++) {
                char c = buf[i];
                text[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
        text[n] = '\0';
        for (char *save = NULL, *w = strtok_r(text, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save)) {
                if (strncmp(w, "stage=", 6) == 0 && !l.stage[0])
                        snprintf(l.stage, sizeof(l.stage), "%.15s", w + 6);
                else if (strncmp(w, "mac=", 4) == 0 && !l.mac[0]) {
                        snprintf(l.mac, sizeof(l.mac), "%.17s", w + 4);
                        has_mac = rh_mac_parse(w + 4, mac) == 0;
                } else if (strncmp(w, "ip=", 3) == 0 && !l.ip[0]) {
                        snprintf(l.ip, sizeof(l.ip), "%.63s", w + 3);
                        has_ip = rh_ip_parse(w + 3, &ip, &prefix) == 0;
                }
        }
        if (!l.stage[0])
                return -1;
        bool ours = has_mac && has_ip && memcmp(mac, o->v1_mac, 6) == 0 && ip.family == 4 &&
                    memcmp(ip.addr, o->v1_ip.addr, 4) == 0;
        if (strcmp(l.stage, "applied") == 0) {
                if (!ours)
                        return -1;
                *ret = l;
                return 1;
        }
        /* Earlier stage lines: progress when they do not name another identity. */
        if (is_progress_stage(l.stage) && (ours || (!l.mac[0] && !l.ip[0])))
                return 0;
        return -1;
}

/* Drain the socket; true once a final line for our request is in ret->line. */
static bool drain_udp(const struct rh_ack_wait_opts *o, struct rh_ack_wait_result *ret)
{
        char buf[1500];

        for (;;) {
                ssize_t n = recv(o->udp_fd, buf, sizeof(buf), 0);
                struct rh_ack_line l;

                if (n < 0)
                        return false;
                if (o->v1) {
                        int m = v1_line_match(o, buf, (size_t)n, &l);

                        if (m < 0)
                                ret->foreign_lines++;
                        else if (m == 0)
                                ret->saw_read = true;
                        else {
                                ret->line = l;
                                ret->have_line = true;
                                ret->t_line_ns = now_ns();
                                return true;
                        }
                        continue;
                }
                if (rh_ack_line_parse(buf, (size_t)n, &l, NULL) < 0 || !l.has_nonce || l.nonce != o->nonce ||
                    (o->seq && l.has_seq && l.seq != o->seq)) {
                        ret->foreign_lines++;
                        continue;
                }
                if (strcmp(l.stage, "mailbox") == 0) {
                        ret->saw_read = true;
                        continue;
                }
                if (!line_final(&l)) {
                        ret->foreign_lines++;
                        continue;
                }
                ret->line = l;
                ret->have_line = true;
                ret->t_line_ns = now_ns();
                return true;
        }
}

/* Read the record once. 1: final record for us; 0: not (yet); < 0: the target failed. */
static int poll_record(const struct rh_ack_wait_opts *o, struct rh_ack_wait_result *ret, struct rh_error *err)
{
        struct rh_ack ack;
        int r = rh_mailbox_ack_read(o->target, o->gpa, &ack, err);

        if (r == -ENODATA || r == -EAGAIN)
                return 0;
        if (r == -EBADMSG) {
                ret->saw_invalid = true;
                return 0;
        }
        if (r < 0)
                return r;
        if (ack.nonce != o->nonce || (o->seq && ack.seq != o->seq)) {
                ret->saw_stale = true;
                return 0;
        }
        if (ack.status == RH_ACK_READ) {
                if (!ret->t_read_ns)
                        ret->t_read_ns = now_ns();
                ret->saw_read = true;
                return 0;
        }
        if (ack.status < RH_ACK_APPLIED)
                return 0;
        ret->ack = ack;
        ret->have_record = true;
        ret->t_record_ns = now_ns();
        return 1;
}

static void sleep_or_udp(const struct rh_ack_wait_opts *o, uint64_t ns)
{
        struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};

        if (o->udp_fd >= 0) {
                struct pollfd p = {.fd = o->udp_fd, .events = POLLIN};
                ppoll(&p, 1, &ts, NULL);
        } else
                nanosleep(&ts, NULL);
}

int rh_ack_wait(const struct rh_ack_wait_opts *o, struct rh_ack_wait_result *ret, struct rh_error *err)
{
        uint64_t interval = (uint64_t)(o->interval_us ? o->interval_us : DEFAULT_INTERVAL_US) * 1000ull;
        uint64_t deadline;
        int r;

        memset(ret, 0, sizeof(*ret));
        ret->t_start_ns = now_ns();
        if (!o->target && o->udp_fd < 0)
                return rh_error_set(err, -EINVAL, "wait for an ack: no channel (neither mailbox nor UDP)");
        if (o->v1 && (o->target || o->udp_fd < 0 || o->v1_ip.family != 4 || o->timeout_ms <= 0))
                return rh_error_set(err, -EINVAL,
                                    "wait for a V1 ack: UDP only (a V1 page has no ack record), an IPv4 "
                                    "address and a timeout > 0");
        if (!o->v1 && (o->nonce == 0 || o->timeout_ms <= 0))
                return rh_error_set(err, -EINVAL, "wait for an ack: nonce 0 or timeout %d ms", o->timeout_ms);
        if (o->target && (o->gpa & (RH_MAILBOX_SIZE - 1)))
                return rh_error_set(err, -EINVAL, "wait for an ack: gpa 0x%" PRIx64 " not 4 KiB aligned",
                                    o->gpa);
        deadline = ret->t_start_ns + (uint64_t)o->timeout_ms * 1000000ull;

        for (;;) {
                if (o->udp_fd >= 0 && drain_udp(o, ret)) {
                        ret->channel = RH_ACK_CHANNEL_UDP;
                        ret->t_final_ns = ret->t_line_ns;
                        break;
                }
                if (o->target) {
                        r = poll_record(o, ret, err);
                        if (r < 0)
                                return rh_error_prefix(err, r, "read the ack record");
                        if (r > 0) {
                                ret->channel = RH_ACK_CHANNEL_MAILBOX;
                                ret->t_final_ns = ret->t_record_ns;
                                break;
                        }
                }
                if (o->check) {
                        r = o->check(o->ctx, err);
                        if (r < 0)
                                return r;
                }
                uint64_t now = now_ns();
                if (now >= deadline)
                        return rh_error_set(err, -ETIMEDOUT, "no ack within %d ms: %s", o->timeout_ms,
                                            rh_ack_wait_seen(ret));
                sleep_or_udp(o, deadline - now < interval ? deadline - now : interval);
        }

        /* The UDP line won: the record carries status, error text and stamps. */
        uint64_t grace = (uint64_t)(o->grace_ms ? o->grace_ms : DEFAULT_GRACE_MS) * 1000000ull;
        for (uint64_t until = now_ns() + grace; o->target && !ret->have_record && now_ns() < until;) {
                if (poll_record(o, ret, NULL) != 0)
                        break;
                sleep_or_udp(o, interval);
        }
        /* ... and the record won: report when the line came too (not part of the wait). */
        for (uint64_t until = now_ns() + grace; o->udp_fd >= 0 && !ret->have_line && now_ns() < until;)
                if (!drain_udp(o, ret))
                        sleep_or_udp(o, interval);
        if (ret->have_record)
                ret->applied = ret->ack.status == RH_ACK_APPLIED;
        else
                ret->applied = strcmp(ret->line.stage, "applied") == 0;
        return 0;
}

const char *rh_ack_wait_seen(const struct rh_ack_wait_result *res)
{
        if (res->saw_read)
                return "the agent read the request but never finished applying it";
        if (res->saw_invalid)
                return "an invalid ack record (bad CRC or out-of-range fields): not counted";
        if (res->saw_stale)
                return "only an ack for another request (other nonce or seq): the agent never read ours";
        if (res->foreign_lines)
                return "only UDP lines for other requests or unparsable ones";
        return "no ack at all: the agent never saw the resume signal or the request";
}
