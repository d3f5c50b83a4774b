/* SPDX-License-Identifier: MIT */
/*
 * rehome wait-ack: wait for a clone's answer to one request, identified by
 * its nonce, on both channels at once: the ack record in the mailbox (read
 * from the memory file or /proc/<pid>/mem) and the agent's UDP ack line.
 * The first final answer wins; a stale or foreign ack (other nonce) is
 * ignored, never mistaken for this one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "cleanup.h"
#include "cli.h"
#include "io.h"
#include "opts.h"
#include "rehome/ack.h"
#include "src/lib/handle-cleanup.h"
#include "rehome/request.h"

enum { OPT_UDP = OPT_VERB_BASE, OPT_TIMEOUT, OPT_INTERVAL, OPT_ACK_SEQ, OPT_FORMAT };

static void help(void)
{
        printf("Usage: rehome wait-ack [--file PATH | --pid PID --mem-file PATH] [--layout SPEC]\n"
               "                       [--gpa ADDR] [--udp [ADDR:]PORT] --nonce HEX [--timeout MS]\n"
               "       rehome wait-ack --format v1 --udp [ADDR:]PORT --mac MAC --ip ADDR [--timeout MS]\n\n"
               "Wait for the agent's final ack of the request with this nonce (printed by\n"
               "'rehome patch'): from the mailbox ack record (needs --gpa) and/or a UDP ack line.\n\n"
               TARGET_HELP
               "  --udp [ADDR:]PORT   also listen for the agent's UDP ack line here\n"
               "  --nonce HEX         the request's nonce (required)\n"
               "  --seq N             and its seq (printed by 'rehome patch'): a record of our\n"
               "                      nonce with another seq is not taken for the answer\n"
               "  --timeout MS        give up after MS milliseconds (default 10000)\n"
               "  --interval-us N     mailbox poll interval (default 1000)\n"
               "  -h, --help          this help\n\n"
               "The rule for what is final is rehome fork's (rh_ack_wait, include/rehome/ack.h):\n"
               "a record with status applied/invalid/failed, or a UDP line stage=applied/error,\n"
               "for this nonce; stage=mailbox and status read are progress. On a timeout it says\n"
               "what it saw: progress, a stale ack, an invalid (bad CRC) record, foreign lines.\n"
               "The agent's error text is printed with control characters escaped (\\xHH).\n\n"
               "--format v1: hypeman's V1 acks, which carry no nonce and have no record in the\n"
               "page, so only --udp is watched and the rule is hypeman's host's: a line with\n"
               "stage=applied whose mac= (any case) and ip= are --mac and --ip. The stage lines\n"
               "sent before it (signal_seen, mailbox_seen, netlink_start, netlink_done,\n"
               "mailbox) are progress. V1 acks cannot be told apart by fork: two clones given\n"
               "the same MAC and IP ack alike, and a V1 error (no mac/ip) is not attributable.\n"
               "  --format rehome|v1  ack format (default rehome)\n"
               "  --mac MAC           V1: the MAC the request set\n"
               "  --ip ADDR           V1: the IPv4 address the request set (a /PREFIX is ignored)\n\n"
               "Exit codes: 0 applied, 1 rejected or failed (the agent's error is printed),\n"
               "2 usage, 3 timed out (says what was seen).\n");
}

static int udp_open(const char *spec, struct rh_error *err)
{
        struct sockaddr_storage ss = {};
        struct rh_ipaddr ip = { .family = 4 };
        socklen_t sl;
        uint16_t port;
        uint64_t v;
        int fd;

        if (strchr(spec, ':')) {
                /* ADDR:PORT or [V6]:PORT; "gateway:" means nothing on the host side. */
                if (rh_hostport_parse(spec, &ip, &port) < 0 || ip.family == 0)
                        return rh_error_set(err, EINVAL, "--udp: expected [ADDR:]PORT, got '%s'", spec);
        } else {
                if (parse_u64(spec, &v) < 0 || v == 0 || v > 65535)
                        return rh_error_set(err, EINVAL, "--udp: bad port '%s'", spec);
                port = (uint16_t)v;
        }
        if (ip.family == 6) {
                struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
                s6->sin6_family = AF_INET6;
                s6->sin6_port = htons(port);
                memcpy(&s6->sin6_addr, ip.addr, 16);
                sl = sizeof(*s6);
        } else {
                struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
                s4->sin_family = AF_INET;
                s4->sin_port = htons(port);
                memcpy(&s4->sin_addr, ip.addr, 4);
                sl = sizeof(*s4);
        }
        fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return rh_error_set(err, errno, "udp socket: %s", strerror(errno));
        if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
                int e = errno;
                close(fd);
                return rh_error_set(err, e, "bind udp %s: %s", spec, strerror(e));
        }
        return fd;
}

int cmd_wait_ack(int argc, char **argv)
{
        static const struct option options[] = {
                TARGET_LONG_OPTIONS,
                { "udp", required_argument, NULL, OPT_UDP },
                { "nonce", required_argument, NULL, OPT_NONCE },
                { "timeout", required_argument, NULL, OPT_TIMEOUT },
                { "interval-us", required_argument, NULL, OPT_INTERVAL },
                { "seq", required_argument, NULL, OPT_ACK_SEQ },
                { "format", required_argument, NULL, OPT_FORMAT },
                { "mac", required_argument, NULL, OPT_MAC },
                { "ip", required_argument, NULL, OPT_IP },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct target_opts t = {};
        /* Declared in this order so the target (which points at the layout) goes first. */
        _cleanup_(rh_layout_freep) struct rh_layout *layout = NULL;
        _cleanup_(rh_target_freep) struct rh_target *target = NULL;
        struct rh_error err = {};
        _cleanup_close_ int udp = -EBADF;
        const char *udp_spec = NULL, *channel = NULL, *seen = "nothing";
        uint64_t nonce = 0, timeout_ms = 10000, interval_us = 1000, v;
        uint32_t seq = 0;
        bool has_nonce = false, v1 = false, has_mac = false, has_ip = false;
        uint8_t v1_mac[6] = {};
        struct rh_ipaddr v1_ip = {};
        uint8_t v1_prefix;
        struct rh_ack ack = {};
        struct rh_ack_line line = {};
        int c, r, rc = EXIT_TIMEOUT;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
                switch (c) {
                case 'h':
                        help();
                        return EXIT_OK;
                case OPT_UDP:
                        udp_spec = optarg;
                        continue;
                case OPT_NONCE: {
                        char *end;
                        errno = 0;
                        nonce = strtoull(optarg, &end, 16);
                        if (errno || *end || !*optarg)
                                return cli_usage_error("wait-ack", "--nonce: expected hexadecimal, got '%s'", optarg);
                        has_nonce = true;
                        continue;
                }
                case OPT_TIMEOUT:
                        if (parse_u64(optarg, &v) < 0 || v == 0 || v > 3600000)
                                return cli_usage_error("wait-ack", "--timeout: expected 1..3600000 ms, got '%s'", optarg);
                        timeout_ms = v;
                        continue;
                case OPT_ACK_SEQ:
                        if (parse_u64(optarg, &v) < 0 || v == 0 || v > UINT32_MAX)
                                return cli_usage_error("wait-ack", "--seq: expected 1..4294967295, got '%s'", optarg);
                        seq = (uint32_t)v;
                        continue;
                case OPT_FORMAT:
                        if (strcmp(optarg, "v1") == 0)
                                v1 = true;
                        else if (strcmp(optarg, "rehome") != 0)
                                return cli_usage_error("wait-ack", "--format: expected rehome or v1, got '%s'", optarg);
                        continue;
                case OPT_MAC:
                        if (rh_mac_parse(optarg, v1_mac) < 0)
                                return cli_usage_error("wait-ack", "--mac: not a MAC address: '%s'", optarg);
                        has_mac = true;
                        continue;
                case OPT_IP:
                        if (rh_ip_parse(optarg, &v1_ip, &v1_prefix) < 0 || v1_ip.family != 4)
                                return cli_usage_error("wait-ack", "--ip: expected an IPv4 address, got '%s'", optarg);
                        has_ip = true;
                        continue;
                case OPT_INTERVAL:
                        if (parse_u64(optarg, &v) < 0 || v < 10 || v > 1000000)
                                return cli_usage_error("wait-ack", "--interval-us: expected 10..1000000, got '%s'", optarg);
                        interval_us = v;
                        continue;
                }
                r = target_opt(&t, c, optarg, "wait-ack");
                if (r > 1)
                        return r;
                if (r == 0)
                        return cli_usage_error("wait-ack", "unknown option");
        }
        if (optind != argc)
                return cli_usage_error("wait-ack", "unexpected argument '%s'", argv[optind]);
        if (v1) {
                if (t.file || t.pid || t.has_gpa || t.token_arg)
                        return cli_usage_error("wait-ack", "--format v1: a V1 page has no ack record; use --udp only");
                if (has_nonce || seq)
                        return cli_usage_error("wait-ack", "--format v1: V1 acks carry no %s", has_nonce ? "nonce" : "seq");
                if (!udp_spec)
                        return cli_usage_error("wait-ack", "--format v1 needs --udp (the ack_port of the request)");
                if (!has_mac || !has_ip)
                        return cli_usage_error("wait-ack", "--format v1 needs --mac and --ip (printed by 'rehome patch')");
        } else if (has_mac || has_ip)
                return cli_usage_error("wait-ack", "--mac and --ip go with --format v1");
        if (!has_nonce && !v1)
                return cli_usage_error("wait-ack", "--nonce is required (printed by 'rehome patch')");
        if (!t.file && !t.pid && (t.has_gpa || t.token_arg))
                return cli_usage_error("wait-ack", "--gpa and --token need --file or --pid");
        if (!t.file && !t.pid && !udp_spec)
                return cli_usage_error("wait-ack", "give a mailbox (--file/--pid with --gpa) and/or --udp");
        if ((t.file || t.pid) && (r = target_check(&t, "wait-ack", true)) != 0)
                return r;

        if (udp_spec) {
                udp = udp_open(udp_spec, &err);
                if (udp < 0)
                        return cli_fail("wait-ack: %s", err.msg);
        }
        if (t.file || t.pid) {
                r = target_open(&t, false, &layout, &target, &err);
                if (r < 0)
                        return cli_fail("wait-ack: %s", err.msg);
        }

        struct rh_ack_wait_opts w = {
                .target = target,
                .gpa = t.gpa,
                .udp_fd = udp,
                .nonce = nonce,
                .seq = seq,
                .timeout_ms = (int)timeout_ms,
                .interval_us = (unsigned)interval_us,
                .v1 = v1,
                .v1_ip = v1_ip,
        };
        memcpy(w.v1_mac, v1_mac, 6);
        struct rh_ack_wait_result res;
        r = rh_ack_wait(&w, &res, &err);
        double waited_ms = (double)(now_ns() - res.t_start_ns) / 1e6;
        if (r == -ETIMEDOUT) {
                seen = rh_ack_wait_seen(&res);
                if (cli.json) {
                        json_t *o = json_pack("{s:s, s:f, s:s, s:b, s:b, s:b, s:i}", "status", "timeout", "waited_ms",
                                              waited_ms, "seen", seen, "saw_read", res.saw_read, "saw_stale",
                                              res.saw_stale, "saw_invalid", res.saw_invalid, "foreign_lines",
                                              (int)res.foreign_lines);
                        cli_result(o);
                }
                if (v1) {
                        char mac[18], ip[46];
                        cli_fail("wait-ack: no V1 ack for mac=%s ip=%s within %" PRIu64 " ms; seen: %s",
                                 rh_mac_format(v1_mac, mac), rh_ip_format(&v1_ip, ip), timeout_ms, seen);
                } else
                        cli_fail("wait-ack: no ack for nonce %016" PRIx64 " within %" PRIu64 " ms; seen: %s", nonce,
                                 timeout_ms, seen);
                return EXIT_TIMEOUT;
        }
        if (r == -ESRCH || r == -EIO)
                return cli_fail("wait-ack: the VMM went away: %s", err.msg);
        if (r < 0)
                return cli_fail("wait-ack: %s", err.msg);
        channel = res.channel == RH_ACK_CHANNEL_MAILBOX ? "mailbox" : "udp";
        ack = res.ack;
        line = res.line;
        char safe[4 * RH_ACK_ERROR_MAX + 1];
        if (strcmp(channel, "mailbox") == 0) {
                rc = ack.status == RH_ACK_APPLIED ? EXIT_OK : EXIT_FAIL;
                if (cli.json) {
                        _cleanup_free_ char *s = rh_ack_to_json(&ack, 0);
                        cli_result(json_pack("{s:s, s:f, s:o}", "channel", "mailbox", "waited_ms", waited_ms, "ack",
                                             s ? json_loads(s, 0, NULL) : json_null()));
                } else
                        printf("ack seq=%u status=%s signal=%s waited=%.3f ms (mailbox)\n", ack.seq,
                               rh_ack_status_name(ack.status), rh_signal_name(ack.signal), waited_ms);
                if (rc != EXIT_OK) {
                        rh_text_escape(ack.error, sizeof(ack.error), safe, sizeof(safe));
                        cli_fail("wait-ack: agent %s the request: %s",
                                 ack.status == RH_ACK_INVALID ? "rejected" : "failed to apply", safe);
                }
        } else {
                rc = strcmp(line.stage, "applied") == 0 ? EXIT_OK : EXIT_FAIL;
                if (cli.json) {
                        json_t *o = json_pack("{s:s,s:f,s:s,s:s,s:s,s:s}", "channel", "udp", "waited_ms", waited_ms,
                                              "stage", line.stage, "mac", line.mac, "ip", line.ip, "agent_error", line.error);
                        cli_result(o);
                } else
                        printf("ack stage=%s mac=%s ip=%s waited=%.3f ms (udp)\n", line.stage, line.mac, line.ip,
                               waited_ms); /* parsed fields: no blanks or quotes, bounded */
                if (rc != EXIT_OK) {
                        rh_text_escape(line.error, sizeof(line.error), safe, sizeof(safe));
                        cli_fail("wait-ack: agent reported stage=%s: %s", line.stage, safe);
                }
        }
        return rc;
}
