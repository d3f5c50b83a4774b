/* SPDX-License-Identifier: MIT */
/*
 * rehome inspect: decode and print everything in a mailbox page: the
 * agent's arm header, the prearm handshake, the host's request and the
 * agent's ack record. Each section is decoded independently so a broken one
 * is reported without hiding the others.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "opts.h"
#include "rehome/ack.h"
#include "src/lib/handle-cleanup.h"
#include "rehome/request.h"
#include "unaligned.h"

enum { OPT_FORMAT = OPT_VERB_BASE };

static void help(void)
{
        printf("Usage: rehome inspect (--file PATH | --pid PID --mem-file PATH) [--layout SPEC]\n"
               "                      [--format rehome|v1] [--gpa ADDR] [--token HEX|TOKEN]\n\n"
               "Decode and print a mailbox: arm header, prearm, request, ack. Without --gpa the\n"
               "mailbox is located by a scan. With the global --json, one JSON document.\n"
               "With --format v1, hypeman's V1 mailbox (marker at any byte offset, found by\n"
               "--token or any token): token, seq, length and the JSON request; a request the\n"
               "guest has answered (seq written back to 0) is shown as \"answered\".\n\n"
               TARGET_HELP
               "  --format rehome|v1  rehome's mailbox (default) or hypeman's V1 mailbox\n"
               "  -h, --help          this help\n\n"
               "Exit codes: 0 printed, 1 no mailbox or error, 2 usage.\n");
}

static void bits_string(uint32_t bits, const char *const *names, size_t n, char *buf, size_t cap)
{
        size_t len = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < 32; i++) {
                if (!(bits & (1u << i)))
                        continue;
                const char *name = i < n && names[i] ? names[i] : "?";
                len += (size_t)snprintf(buf + len, cap - len, "%s%s", len ? "," : "", name);
                if (len >= cap)
                        break;
        }
        if (!buf[0])
                snprintf(buf, cap, "-");
}

/* "1.234 ms" between two guest stamps, or "-" when either is missing. */
static const char *span(uint64_t from, uint64_t to, char buf[32])
{
        if (!from || !to || to < from)
                return "-";
        snprintf(buf, 32, "%.3f ms", (double)(to - from) / 1e6);
        return buf;
}

/* The request's fields, one per line, under a "request" heading. */
static void print_request(const struct rh_request *req)
{
        char mac[18], ip[46];

        for (unsigned i = 0; i < req->n_ifaces; i++) {
                const struct rh_iface *f = &req->ifaces[i];
                printf("         iface %u: match %s%s%s", i, (f->match & RH_MATCH_NAME) ? f->name : "",
                       (f->match & RH_MATCH_NAME) && (f->match & RH_MATCH_MAC) ? "," : "",
                       (f->match & RH_MATCH_MAC) ? rh_mac_format(f->match_mac, mac) : "");
                if (f->has_mac)
                        printf("  mac %s", rh_mac_format(f->mac, mac));
                if (f->mtu)
                        printf("  mtu %u", f->mtu);
                putchar('\n');
        }
        for (unsigned i = 0; i < req->n_addrs; i++) {
                struct rh_ipaddr a = { .family = req->addrs[i].family };
                memcpy(a.addr, req->addrs[i].addr, 16);
                printf("         addr %s/%u on iface %u\n", rh_ip_format(&a, ip), req->addrs[i].prefix,
                       req->addrs[i].iface);
        }
        for (unsigned i = 0; i < req->n_routes; i++) {
                const struct rh_route *rt = &req->routes[i];
                struct rh_ipaddr a = { .family = rt->family };
                memcpy(a.addr, rt->dst, 16);
                printf("         route %s/%u", rh_ip_format(&a, ip), rt->dst_prefix);
                if (rt->has_gateway) {
                        memcpy(a.addr, rt->gateway, 16);
                        printf(" via %s", rh_ip_format(&a, ip));
                }
                printf(" metric %u on iface %u\n", rt->metric, rt->iface);
        }
        for (unsigned i = 0; i < req->n_dns; i++)
                printf("         dns %s\n", rh_ip_format(&req->dns[i], ip));
        for (unsigned i = 0; i < req->n_search; i++)
                printf("         search %s\n", req->search[i]);
        if (req->hostname[0])
                printf("         hostname %s\n", req->hostname);
        if (req->has_ack_udp)
                printf("         ack udp %s port %u\n",
                       req->ack_addr.family ? rh_ip_format(&req->ack_addr, ip) : "gateway", req->ack_port);
}


/* hypeman V1: the marker, seq, length and JSON; nothing else lives in a V1 page. */
static int inspect_v1(const struct target_opts *t, struct rh_target *target)
{
        struct rh_error err = {}, req_err = {};
        uint8_t buf[RH_MAILBOX_SIZE];
        char token[RH_V1_TOKEN_MAX + 1], safe[4 * RH_V1_TOKEN_MAX + 1], hex[24];
        struct rh_request req;
        uint64_t gpa_v1;
        uint32_t seq, len;
        int r, req_r;

        r = rh_v1_locate(target, t->has_gpa ? t->gpa : RH_GPA_NONE, t->token_arg, !t->has_gpa, &gpa_v1, &err);
        if (r >= 0)
                r = rh_target_read(target, gpa_v1, buf, sizeof(buf), &err);
        if (r < 0)
                return cli_fail("inspect: %s", err.msg);
        rh_v1_token_read(buf, token);
        rh_text_escape(token, sizeof(token), safe, sizeof(safe));
        seq = unaligned_read_le32(buf + RH_V1_OFF_SEQ);
        len = unaligned_read_le32(buf + RH_V1_OFF_LEN);
        /* seq 0: none pending, or answered (the guest wrote 0 back): decode what is there. */
        if (seq == 0 && len != 0)
                unaligned_write_le32(buf + RH_V1_OFF_SEQ, 1);
        req_r = rh_v1_decode(buf, sizeof(buf), &req, NULL, &req_err);
        snprintf(hex, sizeof(hex), "0x%" PRIx64, gpa_v1);
        if (cli.json) {
                /* The token as it is when it is UTF-8 (jansson refuses anything else), else escaped. */
                json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:I}", "gpa", hex, "format", "v1", "token", token, "seq",
                                      (json_int_t)seq, "length", (json_int_t)len);
                if (!o)
                        o = json_pack("{s:s,s:s,s:s,s:I,s:I}", "gpa", hex, "format", "v1", "token_escaped", safe,
                                      "seq", (json_int_t)seq, "length", (json_int_t)len);
                if (req_r >= 0) {
                        req.seq = seq;
                        char *js = rh_request_to_json(&req, 0);
                        json_object_set_new(o, "request", js ? json_loads(js, 0, NULL) : json_null());
                        free(js);
                        json_object_set_new(o, "state", json_string(seq ? "pending" : "answered"));
                } else if (seq == 0 && len == 0)
                        json_object_set_new(o, "state", json_string("empty"));
                else
                        json_object_set_new(o, "request", json_pack("{s:s}", "error", req_err.msg));
                cli_result(o);
                return EXIT_OK;
        }
        printf("V1 mailbox  gpa %s  token \"%s\"  seq %u  length %u\n", hex, safe, seq, len);
        if (req_r >= 0) {
                printf("request  %s\n", seq ? "pending" : "answered (the guest wrote seq 0 back)");
                print_request(&req);
        } else if (seq == 0 && len == 0)
                printf("request  none\n");
        else
                printf("request  invalid: %s\n", req_err.msg);
        return EXIT_OK;
}

int cmd_inspect(int argc, char **argv)
{
        static const struct option options[] = {
                TARGET_LONG_OPTIONS,
                { "format", required_argument, NULL, OPT_FORMAT },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct target_opts t = {};
        /* Declared in this order so the target (which points at the layout) goes first. */
        _cleanup_(rh_layout_freep) struct rh_layout *layout = NULL;
        _cleanup_(rh_target_freep) struct rh_target *target = NULL;
        struct rh_error err = {}, arm_err = {}, req_err = {}, ack_err = {};
        uint8_t page[RH_MAILBOX_SIZE];
        struct rh_arm arm;
        struct rh_request req;
        struct rh_ack ack;
        uint32_t req_seq = 0;
        uint64_t req_nonce = 0, gpa;
        char buf[256], tok[33], d1[32], d2[32], d3[32];
        int c, r, arm_r, req_r, ack_r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
                if (c == 'h') {
                        help();
                        return EXIT_OK;
                }
                if (c == OPT_FORMAT) {
                        if (strcmp(optarg, "v1") == 0)
                                t.v1 = true;
                        else if (strcmp(optarg, "rehome") != 0)
                                return cli_usage_error("inspect", "--format: expected rehome or v1, got '%s'", optarg);
                        continue;
                }
                r = target_opt(&t, c, optarg, "inspect");
                if (r > 1)
                        return r;
                if (r == 0)
                        return cli_usage_error("inspect", "unknown option");
        }
        if (optind != argc)
                return cli_usage_error("inspect", "unexpected argument '%s'", argv[optind]);
        if ((r = target_check(&t, "inspect", false)) != 0)
                return r;

        r = target_open(&t, false, &layout, &target, &err);
        if (r >= 0 && t.v1)
                return inspect_v1(&t, target);
        if (r >= 0)
                r = rh_mailbox_locate(target, t.has_gpa ? t.gpa : RH_GPA_NONE, t.has_token ? t.token : NULL,
                                      !t.has_gpa, &gpa, &err);
        if (r >= 0)
                r = rh_target_read(target, gpa, page, sizeof(page), &err);
        if (r < 0)
                return cli_fail("inspect: %s", err.msg);

        arm_r = rh_mailbox_arm_read(page, sizeof(page), &arm, &arm_err);
        req_r = rh_mailbox_read_request(page, &req, &req_seq, &req_nonce, &req_err);
        ack_r = rh_mailbox_read_ack(page, &ack, &ack_err);

        if (cli.json) {
                json_t *o = json_object();
                char hex[24];
                snprintf(hex, sizeof(hex), "0x%" PRIx64, gpa);
                json_object_set_new(o, "gpa", json_string(hex));
                if (arm_r >= 0) {
                        snprintf(hex, sizeof(hex), "0x%" PRIx64, arm.gpa);
                        /* caps: the RH_CAP_* bits; "caps_names" is added with the names (json-out.c). */
                        json_object_set_new(o, "arm", json_pack("{s:s,s:i,s:i,s:I,s:s,s:I,s:I}", "token",
                                                                 format_token(arm.token, tok), "abi_major",
                                                                 arm.abi_major, "abi_minor", arm.abi_minor,
                                                                 "arm_generation", (json_int_t)arm.arm_generation,
                                                                 "gpa", hex, "agent_version",
                                                                 (json_int_t)arm.agent_version, "caps",
                                                                 (json_int_t)arm.caps));
                } else
                        json_object_set_new(o, "arm", json_pack("{s:s}", "error", arm_err.msg));
                json_object_set_new(o, "prearm",
                                    json_pack("{s:I,s:I,s:I,s:I,s:b}", "seq",
                                              (json_int_t)unaligned_read_le32(page + RH_OFF_PREARM), "interval_us",
                                              (json_int_t)unaligned_read_le32(page + RH_OFF_PREARM + offsetof(struct rh_wire_prearm, interval_us)), "confirm_seq",
                                              (json_int_t)unaligned_read_le32(page + RH_OFF_PREARM_CONFIRM),
                                              "confirm_interval_us",
                                              (json_int_t)unaligned_read_le32(page + RH_OFF_PREARM_CONFIRM + offsetof(struct rh_wire_prearm_confirm, interval_us)), "active",
                                              unaligned_read_le32(page + RH_OFF_PREARM_CONFIRM + offsetof(struct rh_wire_prearm_confirm, active)) != 0));
                if (req_r >= 0) {
                        char *s = rh_request_to_json(&req, 0);
                        json_object_set_new(o, "request", s ? json_loads(s, 0, NULL) : json_null());
                        free(s);
                } else
                        json_object_set_new(o, "request", json_pack("{s:I,s:s}", "seq", (json_int_t)req_seq,
                                                                    "error", req_err.msg));
                if (ack_r >= 0) {
                        char *s = rh_ack_to_json(&ack, 0);
                        json_object_set_new(o, "ack", s ? json_loads(s, 0, NULL) : json_null());
                        free(s);
                } else
                        json_object_set_new(o, "ack", json_pack("{s:s}", "error", ack_err.msg));
                cli_result(o);
                return EXIT_OK;
        }

        printf("mailbox  gpa 0x%" PRIx64 "\n", gpa);
        if (arm_r >= 0) {
                bits_string(arm.caps, cli_cap_names, 32, buf, sizeof(buf));
                printf("arm      abi %u.%u  generation %u  agent %u.%u.%u  gpa 0x%" PRIx64 "\n"
                       "         token %s\n         caps %s\n",
                       arm.abi_major, arm.abi_minor, arm.arm_generation, arm.agent_version >> 16,
                       (arm.agent_version >> 8) & 0xff, arm.agent_version & 0xff, arm.gpa,
                       format_token(arm.token, tok), buf);
        } else
                printf("arm      invalid: %s\n", arm_err.msg);
        printf("prearm   host seq %u interval %u us  agent seq %u interval %u us %s\n",
               unaligned_read_le32(page + RH_OFF_PREARM), unaligned_read_le32(page + RH_OFF_PREARM + offsetof(struct rh_wire_prearm, interval_us)),
               unaligned_read_le32(page + RH_OFF_PREARM_CONFIRM), unaligned_read_le32(page + RH_OFF_PREARM_CONFIRM + offsetof(struct rh_wire_prearm_confirm, interval_us)),
               unaligned_read_le32(page + RH_OFF_PREARM_CONFIRM + offsetof(struct rh_wire_prearm_confirm, active)) ? "(fast poll active)" : "(idle)");
        if (req_r >= 0) {
                printf("request  seq %u  nonce %016" PRIx64 "\n", req.seq, req.nonce);
                print_request(&req);
        } else if (req_r == -ENODATA)
                printf("request  none\n");
        else
                printf("request  invalid (seq %u): %s\n", req_seq, req_err.msg);
        if (ack_r >= 0) {
                bits_string(ack.applied, cli_applied_names, 32, buf, sizeof(buf));
                printf("ack      seq %u  nonce %016" PRIx64 "  status %s  signal %s  applied %s\n", ack.seq,
                       ack.nonce, rh_ack_status_name(ack.status), rh_signal_name(ack.signal), buf);
                printf("         guest clock: signal->read %s  read->applied %s  ->ack %s\n",
                       span(ack.t_signal_ns, ack.t_read_ns, d1), span(ack.t_read_ns, ack.t_applied_ns, d2),
                       span(ack.t_applied_ns ? ack.t_applied_ns : ack.t_read_ns, ack.t_ack_ns, d3));
                if (ack.error[0])
                        printf("         error %s (%s)\n", ack.error, strerror(ack.error_code));
        } else if (ack_r == -ENODATA)
                printf("ack      none\n");
        else
                printf("ack      invalid: %s\n", ack_err.msg);
        return EXIT_OK;
}
