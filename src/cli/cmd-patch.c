/* SPDX-License-Identifier: MIT */
/*
 * rehome patch: write a request into a clone's mailbox while it is paused,
 * through its memory file or its VMM's /proc/<pid>/mem. Works with any VMM
 * (see docs/INTEGRATION.md). --format v1 writes hypeman's V1 layout instead.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "opts.h"
#include "src/lib/handle-cleanup.h"
#include "rehome/request.h"

enum { OPT_FORMAT = OPT_VERB_BASE, OPT_V1_TOKEN };

static void help(void)
{
        printf("Usage: rehome patch (--file PATH | --pid PID --mem-file PATH) [--layout SPEC]\n"
               "                    --gpa ADDR [--token HEX] REQUEST...\n"
               "       rehome patch --format v1 (--file PATH | --pid PID --mem-file PATH)\n"
               "                    [--layout SPEC] [--gpa ADDR] --token TOKEN REQUEST...\n\n"
               "Write a request into the mailbox at --gpa, after verifying the page's arm header\n"
               "and token. Run it while the VM is paused (before resume). The payload and header\n"
               "are written first, the sequence number last.\n\n"
               TARGET_HELP
               "  --format rehome|v1  mailbox format (v1: hypeman's V1 mailbox)\n"
               "  --v1-token TOKEN    older spelling of --token with --format v1\n\n"
               REQUEST_HELP
               "\nWith --format v1 the mailbox is hypeman's: its marker (magic + --token, 1..30\n"
               "bytes) is found at --gpa exactly (any byte offset) or, without --gpa, by a scan\n"
               "of every byte offset of guest RAM. The request must be one V1 can carry:\n"
               "--mac, one IPv4 --ip and an IPv4 --gateway are required, --ack only as\n"
               "gateway:PORT (V1 acks go to the gateway); IPv6, --mtu, --dns, --search,\n"
               "--hostname, --route, --match-mac, --nonce and the behaviour flags are refused\n"
               "(exit 2, the option named). The seq written is 1 unless --seq says otherwise,\n"
               "as hypeman's host writes; its guest writes 0 back once it has answered.\n\n"
               "Prints the seq and nonce written (wait for them with 'rehome wait-ack'); with\n"
               "--format v1 the seq, mac and ip (V1 acks carry no nonce).\n"
               "Exit codes: 0 written, 1 failure, 2 usage.\n");
}

/*
 * What V1 cannot express, refused with the option that asked for it: V1 is
 * one named interface, a MAC, one IPv4 address/prefix, one IPv4 gateway and
 * an ack port on that gateway; everything else would be dropped unseen.
 */
static int v1_refuse(const struct request_opts *ro, const struct rh_request *req)
{
        const struct rh_iface *f = &req->ifaces[0];
        unsigned n4 = 0;
        bool gw4 = false;

        if (req->n_ifaces != 1)
                return cli_usage_error("patch", "--format v1 carries one interface, the request has %u",
                                       req->n_ifaces);
        if (f->match & RH_MATCH_MAC)
                return cli_usage_error("patch", "--match-mac: V1 finds the interface by name only (--iface)");
        if (!f->has_mac)
                return cli_usage_error("patch", "--format v1 needs --mac");
        if (f->mtu)
                return cli_usage_error("patch", "--mtu: V1 cannot carry an MTU");
        for (unsigned i = 0; i < req->n_addrs; i++) {
                if (req->addrs[i].family == 6)
                        return cli_usage_error("patch", "--ip: V1 cannot carry an IPv6 address");
                n4++;
        }
        if (n4 == 0)
                return cli_usage_error("patch", "--format v1 needs --ip with an IPv4 ADDRESS/PREFIX");
        if (n4 > 1)
                return cli_usage_error("patch", "--ip: V1 carries one IPv4 address, the request has %u", n4);
        for (unsigned i = 0; i < req->n_routes; i++) {
                const struct rh_route *rt = &req->routes[i];
                static const uint8_t zero[16];

                if (rt->family == 6)
                        return cli_usage_error("patch", "%s: V1 cannot carry IPv6 routes",
                                               rt->dst_prefix == 0 ? "--gateway" : "--route");
                if (rt->dst_prefix != 0 || memcmp(rt->dst, zero, 16) != 0 || !rt->has_gateway || rt->metric)
                        return cli_usage_error("patch", "--route: V1 cannot carry extra routes");
                gw4 = true;
        }
        if (!gw4)
                return cli_usage_error("patch", "--format v1 needs --gateway (hypeman's guest drops a request "
                                                "without one)");
        if (req->n_dns)
                return cli_usage_error("patch", "--dns: V1 cannot carry DNS servers");
        if (req->n_search)
                return cli_usage_error("patch", "--search: V1 cannot carry DNS search domains");
        if (req->hostname[0])
                return cli_usage_error("patch", "--hostname: V1 cannot carry a host name");
        if (req->has_ack_udp && req->ack_addr.family != 0)
                return cli_usage_error("patch", "--ack ADDR: V1 acks go to the gateway; use --ack gateway:PORT");
        if (!(req->flags & RH_REQ_ANNOUNCE))
                return cli_usage_error("patch", "--no-announce: V1 cannot carry it");
        if (!(req->flags & RH_REQ_FLUSH_NEIGH))
                return cli_usage_error("patch", "--no-flush: V1 cannot carry it");
        if (req->flags & RH_REQ_ACK_EARLY)
                return cli_usage_error("patch", "--ack-early: V1 cannot carry it");
        if (!(req->flags & RH_REQ_REPLACE_ADDRS))
                return cli_usage_error("patch", "--keep-addrs: V1 cannot carry it");
        if (ro->has_nonce)
                return cli_usage_error("patch", "--nonce: V1 acks carry no nonce");
        return 0;
}

/* Every --hypeman-mailbox: found by its marker anywhere in guest RAM, JSON written, seq 1 last. */
static int patch_hypeman(struct rh_target *target, const struct rh_payload_set *set, struct rh_error *err)
{
        for (unsigned i = 0; i < set->n_hypeman; i++) {
                const struct rh_named_json *m = &set->hypeman[i];
                const char *tok = m->token[0] ? m->token : NULL;
                uint64_t gpa;
                int r;

                r = rh_hfm_locate(target, m->name, tok, &gpa, err);
                if (r < 0)
                        return r;
                r = rh_hfm_patch(target, gpa, m->name, tok, m->data, m->len, err);
                if (r < 0)
                        return r;
                if (cli.json)
                        printf("{\"hypeman_mailbox\":\"%s\",\"gpa\":\"0x%" PRIx64 "\",\"seq\":1,\"length\":%u}\n",
                               m->name, gpa, m->len);
                else
                        printf("patched hypeman-mailbox=%s gpa=0x%" PRIx64 " seq=1 length=%u\n", m->name, gpa,
                               m->len);
        }
        return 0;
}

static int patch_v1(struct target_opts *t, bool writable, struct rh_request *req,
                    const struct rh_payload_set *payloads, uint32_t *ret_seq, uint64_t *ret_gpa, struct rh_error *err)
{
        /* Declared in this order so the target (which points at the layout) goes first. */
        _cleanup_(rh_layout_freep) struct rh_layout *layout = NULL;
        _cleanup_(rh_target_freep) struct rh_target *target = NULL;
        uint64_t gpa;
        int r;

        r = target_open(t, writable, &layout, &target, err);
        if (r < 0)
                return r;
        r = rh_v1_locate(target, t->has_gpa ? t->gpa : RH_GPA_NONE, t->token_arg, !t->has_gpa, &gpa, err);
        if (r < 0)
                return r;
        r = rh_v1_patch(target, gpa, t->token_arg, req, ret_seq, err);
        if (r < 0)
                return rh_error_prefix(err, r, "V1 mailbox at gpa 0x%" PRIx64, gpa);
        *ret_gpa = gpa;
        r = patch_hypeman(target, payloads, err);
        if (r < 0)
                return r;
        return 0;
}

int cmd_patch(int argc, char **argv)
{
        static const struct option options[] = {
                TARGET_LONG_OPTIONS,
                REQUEST_LONG_OPTIONS,
                { "format", required_argument, NULL, OPT_FORMAT },
                { "v1-token", required_argument, NULL, OPT_V1_TOKEN },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct target_opts t = {};
        struct request_opts ro;
        /* Declared in this order so the target (which points at the layout) goes first. */
        _cleanup_(rh_layout_freep) struct rh_layout *layout = NULL;
        _cleanup_(rh_target_freep) struct rh_target *target = NULL;
        struct rh_error err = {};
        struct rh_request req;
        const char *v1_token = NULL;
        bool v1 = false;
        uint32_t seq = 0;
        int c, r;

        request_opts_init(&ro);
        while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
                switch (c) {
                case 'h':
                        help();
                        return EXIT_OK;
                case OPT_FORMAT:
                        if (strcmp(optarg, "v1") == 0)
                                v1 = true;
                        else if (strcmp(optarg, "rehome") != 0)
                                return cli_usage_error("patch", "--format: expected rehome or v1, got '%s'", optarg);
                        continue;
                case OPT_V1_TOKEN:
                        v1_token = optarg;
                        continue;
                }
                r = target_opt(&t, c, optarg, "patch");
                if (r == 0)
                        r = request_opt(&ro, c, optarg, "patch");
                if (r > 1)
                        return r;
                if (r == 0)
                        return cli_usage_error("patch", "unknown option");
        }
        if (optind != argc)
                return cli_usage_error("patch", "unexpected argument '%s'", argv[optind]);
        if (!v1 && v1_token)
                return cli_usage_error("patch", "--v1-token goes with --format v1");
        if (v1_token) {
                if (t.token_arg)
                        return cli_usage_error("patch", "--v1-token and --token exclude each other");
                t.token_arg = v1_token;
        }
        t.v1 = v1;
        /* Only hypeman fork mailboxes: no rehome request, no mailbox gpa needed. */
        if (!v1 && !ro.any_flag && !ro.json_path && ro.payloads.n_hypeman && !ro.payloads.n_payloads) {
                if ((r = target_check(&t, "patch", false)) != 0)
                        return r;
                if ((r = payloads_finish(&ro, "patch")) != 0)
                        return r;
                r = target_open(&t, true, &layout, &target, &err);
                if (r >= 0)
                        r = patch_hypeman(target, &ro.payloads, &err);
                if (r < 0)
                        return cli_fail("hypeman mailbox: %s", err.msg);
                return EXIT_OK;
        }
        if ((r = target_check(&t, "patch", !v1)) != 0)
                return r;
        if (v1 && !t.token_arg)
                return cli_usage_error("patch", "--format v1 needs --token (hypeman's V1 token)");
        if ((r = request_finish(&ro, "patch", &req)) != 0)
                return r;

        if (v1) {
                char mac[18], ip[46];
                struct rh_ipaddr a = { .family = 4 };
                uint64_t gpa = 0;

                if ((r = v1_refuse(&ro, &req)) != 0)
                        return r;
                if (ro.payloads.n_payloads)
                        return cli_usage_error("patch", "--payload: V1 cannot carry it (--hypeman-mailbox can)");
                r = patch_v1(&t, true, &req, &ro.payloads, &seq, &gpa, &err);
                if (r < 0)
                        return cli_fail("patch V1 mailbox: %s", err.msg);
                memcpy(a.addr, req.addrs[0].addr, 16);
                rh_mac_format(req.ifaces[0].mac, mac);
                rh_ip_format(&a, ip);
                if (cli.json) {
                        char hex[24];
                        snprintf(hex, sizeof(hex), "0x%" PRIx64, gpa);
                        cli_result(json_pack("{s:s, s:s, s:I, s:s, s:s}", "gpa", hex, "format", "v1", "seq",
                                             (json_int_t)seq, "mac", mac, "ip", ip));
                } else
                        printf("patched gpa=0x%" PRIx64 " format=v1 seq=%" PRIu32 " mac=%s ip=%s\n", gpa, seq, mac, ip);
                return EXIT_OK;
        }

        r = target_open(&t, true, &layout, &target, &err);
        if (r >= 0 && ro.payloads.n_payloads) {
                struct rh_payload views[RH_PAYLOADS_MAX];
                unsigned n = rh_payload_set_views(&ro.payloads, views);

                /* The stream goes into the payload pages first; the request (with its CRC over it) last. */
                r = rh_payloads_write(target, t.gpa, t.has_token ? t.token : NULL, views, n, &req, &err);
                if (r < 0)
                        return cli_fail("payloads: %s", err.msg);
        }
        if (r >= 0 && ro.payloads.n_hypeman) {
                r = patch_hypeman(target, &ro.payloads, &err);
                if (r < 0)
                        return cli_fail("hypeman mailbox: %s", err.msg);
        }
        if (r >= 0)
                r = rh_mailbox_patch(target, t.gpa, t.has_token ? t.token : NULL, &req, &seq, &err);
        if (r < 0)
                return cli_fail("patch mailbox at gpa 0x%" PRIx64 ": %s", t.gpa, err.msg);

        if (cli.json) {
                char hex[24], nonce[20];
                snprintf(hex, sizeof(hex), "0x%" PRIx64, t.gpa);
                snprintf(nonce, sizeof(nonce), "%016" PRIx64, req.nonce);
                cli_result(json_pack("{s:s, s:s, s:I, s:s}", "gpa", hex, "format", "rehome", "seq", (json_int_t)seq,
                                     "nonce", nonce));
        } else
                printf("patched gpa=0x%" PRIx64 " seq=%" PRIu32 " nonce=%016" PRIx64 "\n", t.gpa, seq, req.nonce);
        return EXIT_OK;
}
