/* SPDX-License-Identifier: MIT */
/*
 * rehome fork TEMPLATE --ip A.B.C.D/P [...]: start clones of a template, each
 * with its own identity handed over through the mailbox before its vCPU runs.
 */
#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "opts.h"
#include "src/vmm/qmp.h"
#include "src/vmm/vmm.h"

static void help(void)
{
        printf("Usage: rehome fork TEMPLATE [--ip A.B.C.D/P] [options]\n\n"
               "Start clones of TEMPLATE. Each clone is a QEMU that maps the template RAM\n"
               "copy-on-write (share=off) with a new vmgenid guid and its own tap on the\n"
               "clone bridge; its device state is loaded with an incoming migration while it\n"
               "is paused, its mailbox is written through /proc/<pid>/mem, and it is resumed.\n"
               "The agent applies the identity and acks: in the mailbox record, which fork polls\n"
               "through /proc/<pid>/mem, and with a UDP line to a socket fork binds on the\n"
               "gateway address; the first to show the final ack counts (--json: ack_channel).\n\n"
               "The identity (the request flags of 'rehome patch', or --request FILE.json;\n"
               "docs/REQUEST.md): the first IPv4 --ip and the --mac are reserved for the clone\n"
               "(--count counts both up, and IPv6 addresses too; a --hostname gets -2, -3, ...);\n"
               "IPv6 addresses, --gateway, --route, --mtu, --dns, --search, --hostname, --ack\n"
               "travel in the request as given. Defaults: the IPAM picks the address, the MAC is\n"
               "52:54:<the IPv4 address>, the gateway is the template's, the host name\n"
               "TEMPLATE-ID. Refused before anything starts: an address outside the clone\n"
               "network, its network/broadcast/gateway address, the template's address or MAC,\n"
               "a multicast MAC, an off-link gateway, an address or MAC a live clone holds, a\n"
               "MAC another host on the bridge uses (its forwarding database), and\n"
               "a single-valued flag given twice.\n\n"
               REQUEST_HELP
               "\nFork options:\n"
               "  --ipam PLUGIN     CNI IPAM plugin that reserves each address, called as the\n"
               "                    CNI spec says with the clone id as container id and\n"
               "                    released on 'clone rm' (default host-local, data in\n"
               "                    STATE/ipam; any plugin in CNI_PATH, e.g. a fleet-wide one;\n"
               "                    'none': only this state directory's records reserve)\n"
               "  --ipam-config FILE the plugin's \"ipam\" object (JSON; default: a range of\n"
               "                    the clone network, gateway excluded)\n"
               "  --count N         fork N clones concurrently: consecutive addresses (inside\n"
               "                    the subnet) and MACs (carry across every byte), on every NIC\n"
               "  --nic K,ip=A.B.C.D/P[,mac=MAC]  NIC K (1..3) of a multi-NIC template\n"
               "                    ('template create --nics N'): its address on network K\n"
               "                    ('net up --nic K') and MAC (default: 52:54:<the address>);\n"
               "                    without it the IPAM picks the address on network K. The\n"
               "                    same as a --request's interface K and its IPv4 address;\n"
               "                    the agent finds interface K by the template's MAC of NIC K\n"
               "  --keep            keep a clone whose handoff failed (default: remove it)\n"
               "  --timeout DUR     bound of every wait of a fork: QEMU's monitor, the incoming\n"
               "                    migration, and the ack after resume (default 30s)\n"
               "  --bridge BR       attach clones to your bridge BR in this namespace\n"
               "                    (default: the namespace and bridge of 'rehome net up')\n"
               "  --warm            pre-spawn the QEMUs (-incoming defer) before the timed forks\n"
               "  --no-pool         do not take warm clones ('rehome template warm'); by default\n"
               "                    a fork takes one when there is one\n"
               "  --no-resume       patch but never resume (the ack times out; for testing)\n"
               "  --no-clock        leave the clone's realtime clock where the snapshot left it\n"
               "                    (default: the request carries the host's time and the agent\n"
               "                    steps the clock to it first; --json: clock_offset_ms)\n"
               "  --keep-machine-id keep the template's /etc/machine-id (default: the agent\n"
               "                    writes a fresh one where the guest has the file)\n"
               "  -h, --help\n\n"
               "Stages (milliseconds): spawn (tap + QEMU start + QMP), incoming (device state),\n"
               "patch (locate + write the mailbox), resume>signal / >read / >applied / >ack\n"
               "(guest CLOCK_MONOTONIC stamps from the ack record, anchored at the ack: the\n"
               "host time from 'cont' to seeing the ack minus the guest's ack-to-stage gaps;\n"
               "accurate to the 250 us ack poll plus the 'cont' round trip), total.\n"
               "Under TCG every figure is inflated compared with KVM.\n\n"
               "Exit status: 0 every clone acked 'applied'; 1 failure (the agent's error text\n"
               "is printed; a rejected clone keeps the template identity and is removed unless\n"
               "--keep); 2 usage; 3 no ack within --timeout (what was seen is printed);\n"
               "130/143 interrupted by SIGINT/SIGTERM (what the unfinished forks made is removed,\n"
               "clones that already acked are kept). Text the guest wrote (the agent's error)\n"
               "is printed with control characters escaped as \\xHH.\n");
}

/*
 * The request flags (or --request FILE.json) describe the first clone: its
 * first IPv4 address and first MAC are what fork reserves (and --count
 * counts up from); everything else travels in each clone's request.
 */
static int derive(const struct rh_request *req, struct vmm_fork_opts *o)
{
        for (unsigned i = 0; i < req->n_addrs; i++) {
                const struct rh_addr *a = &req->addrs[i];
                if (a->family != 4)
                        continue;
                if (a->iface > 0) {
                        /* NIC K's address (interface K of the request). */
                        struct vmm_fork_nic *x = &o->xnic[a->iface - 1];
                        if (x->has_ip)
                                return cli_usage_error("fork", "two IPv4 addresses on interface %u (--nic %u "
                                                       "and the request?): fork reserves one per NIC",
                                                       a->iface, a->iface);
                        x->ip.family = 4;
                        memcpy(x->ip.addr, a->addr, 16);
                        x->prefix = a->prefix;
                        x->has_ip = true;
                } else if (o->has_ip)
                        return cli_usage_error("fork", "two IPv4 addresses: fork reserves one per clone "
                                               "(--count derives the next)");
                else {
                        o->ip.family = 4;
                        memcpy(o->ip.addr, a->addr, 16);
                        o->prefix = a->prefix;
                        o->has_ip = true;
                }
        }
        for (unsigned k = 1; k < req->n_ifaces; k++) {
                struct vmm_fork_nic *x = &o->xnic[k - 1];
                if (!req->ifaces[k].has_mac)
                        continue;
                if (req->ifaces[k].mac[0] & 1)
                        return cli_usage_error("fork", "interface %u: multicast MAC (want a unicast one)", k);
                if (x->has_mac)
                        return cli_usage_error("fork", "interface %u: MAC given twice (--nic %u and the request)",
                                               k, k);
                memcpy(x->mac, req->ifaces[k].mac, 6);
                x->has_mac = true;
        }
        if (req->ifaces[0].has_mac) {
                if (req->ifaces[0].mac[0] & 1)
                        return cli_usage_error("fork", "--mac: multicast MAC (want a unicast one)");
                memcpy(o->mac, req->ifaces[0].mac, 6);
                o->has_mac = true;
        }
        for (unsigned i = 0; i < req->n_routes; i++)
                if (req->routes[i].family == 4 && req->routes[i].dst_prefix == 0 && req->routes[i].has_gateway) {
                        o->gateway.family = 4;
                        memcpy(o->gateway.addr, req->routes[i].gateway, 16);
                        o->has_gateway = true;
                }
        return 0;
}

/* --nic K,ip=A.B.C.D/P[,mac=MAC]: NIC K's address and MAC. */
static int parse_nic(const char *arg, struct vmm_fork_opts *o, bool *seen)
{
        char buf[128], *save = NULL, *end;
        unsigned long k;

        if (strlen(arg) >= sizeof(buf))
                return cli_usage_error("fork", "--nic '%s' is too long", arg);
        snprintf(buf, sizeof(buf), "%s", arg);
        char *tok = strtok_r(buf, ",", &save);
        k = tok ? strtoul(tok, &end, 10) : 0;
        if (!tok || *end || k < 1 || k >= VMM_MAX_NICS)
                return cli_usage_error("fork", "--nic %s: want K,ip=A.B.C.D/P[,mac=MAC] with K 1..%d", arg,
                                       VMM_MAX_NICS - 1);
        if (seen[k])
                return cli_usage_error("fork", "--nic %lu given twice", k);
        seen[k] = true;
        struct vmm_fork_nic *x = &o->xnic[k - 1];
        while ((tok = strtok_r(NULL, ",", &save))) {
                if (strncmp(tok, "ip=", 3) == 0 && !x->has_ip) {
                        if (!strchr(tok + 3, '/') || rh_ip_parse(tok + 3, &x->ip, &x->prefix) < 0 ||
                            x->ip.family != 4)
                                return cli_usage_error("fork", "--nic %lu: ip= wants A.B.C.D/P, got '%s'", k,
                                                       tok + 3);
                        x->has_ip = true;
                } else if (strncmp(tok, "mac=", 4) == 0 && !x->has_mac) {
                        if (rh_mac_parse(tok + 4, x->mac) < 0)
                                return cli_usage_error("fork", "--nic %lu: mac= is not a MAC address: '%s'", k,
                                                       tok + 4);
                        if (x->mac[0] & 1)
                                return cli_usage_error("fork", "--nic %lu: multicast MAC (want a unicast one)", k);
                        x->has_mac = true;
                } else
                        return cli_usage_error("fork", "--nic %lu: unknown or repeated part '%s' (ip=, mac=)", k,
                                               tok);
        }
        return 0;
}

int cmd_fork(int argc, char **argv)
{
        enum {
                O_COUNT = OPT_VERB_BASE,
                O_KEEP,
                O_TIMEOUT,
                O_BRIDGE,
                O_WARM,
                O_NORES,
                O_NOPOOL,
                O_IPAM,
                O_IPAM_CONFIG,
                O_NO_CLOCK,
                O_KEEP_MACHINE_ID,
                O_NIC
        };
        static const struct option options[] = {
                REQUEST_LONG_OPTIONS,
                {"count", required_argument, NULL, O_COUNT},
                {"keep", no_argument, NULL, O_KEEP},
                {"timeout", required_argument, NULL, O_TIMEOUT},
                {"bridge", required_argument, NULL, O_BRIDGE},
                {"warm", no_argument, NULL, O_WARM},
                {"no-resume", no_argument, NULL, O_NORES},
                {"no-pool", no_argument, NULL, O_NOPOOL},
                {"ipam", required_argument, NULL, O_IPAM},
                {"ipam-config", required_argument, NULL, O_IPAM_CONFIG},
                {"no-clock", no_argument, NULL, O_NO_CLOCK},
                {"keep-machine-id", no_argument, NULL, O_KEEP_MACHINE_ID},
                {"nic", required_argument, NULL, O_NIC},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        struct vmm_fork_opts o = {.state_dir = cli.state_dir, .timeout_ms = 30000};
        struct request_opts ro;
        struct rh_request req;
        const char *bridge = NULL;
        bool warm = false, ipam_set = false, nic_seen[VMM_MAX_NICS] = {false};
        struct vmm_ipam ipam = {.plugin = "host-local"};
        unsigned long count = 1;
        struct rh_error err = {0};
        struct vmm_template t;
        int c, r;

        opterr = 0;
        request_opts_init(&ro);
        while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
                switch (c) {
                case O_IPAM:
                        if (ipam_set)
                                return cli_usage_error("fork", "--ipam given twice");
                        if (!*optarg || strlen(optarg) >= sizeof(ipam.plugin) || strchr(optarg, '/'))
                                return cli_usage_error("fork", "bad --ipam '%s' (a CNI IPAM plugin name, or none)",
                                                       optarg);
                        snprintf(ipam.plugin, sizeof(ipam.plugin), "%s", optarg);
                        ipam_set = true;
                        continue;
                case O_IPAM_CONFIG:
                        if (ipam.config[0])
                                return cli_usage_error("fork", "--ipam-config given twice");
                        if (!realpath(optarg, ipam.config))
                                return cli_usage_error("fork", "--ipam-config %s: %s", optarg, strerror(errno));
                        continue;
                case O_COUNT: {
                        char *end;
                        count = strtoul(optarg, &end, 10);
                        if (*end || count < 1 || count > 64)
                                return cli_usage_error("fork", "bad --count '%s' (1..64)", optarg);
                        continue;
                }
                case O_KEEP:
                        o.keep = true;
                        continue;
                case O_TIMEOUT:
                        if (vmm_parse_duration_ms(optarg, &o.timeout_ms) < 0)
                                return cli_usage_error("fork", "bad --timeout '%s' (e.g. 500ms, 30s)",
                                                       optarg);
                        continue;
                case O_BRIDGE:
                        bridge = optarg;
                        continue;
                case O_WARM:
                        warm = true;
                        continue;
                case O_NOPOOL:
                        o.no_pool = true;
                        continue;
                case O_NORES:
                        o.no_cont = true;
                        continue;
                case O_NO_CLOCK:
                        o.no_clock = true;
                        continue;
                case O_KEEP_MACHINE_ID:
                        o.keep_machine_id = true;
                        continue;
                case O_NIC:
                        r = parse_nic(optarg, &o, nic_seen);
                        if (r != 0)
                                return r;
                        continue;
                case 'h':
                        help();
                        return EXIT_OK;
                case OPT_SEQ:
                case OPT_NONCE:
                        return cli_usage_error("fork", "%s: fork picks each clone's seq and nonce itself",
                                               argv[optind - 1]);
                }
                r = request_opt(&ro, c, optarg, "fork");
                if (r > 1)
                        return r;
                if (r == 0)
                        return cli_usage_error("fork", "unknown option or missing value: '%s'", argv[optind - 1]);
        }
        if (optind + 1 != argc)
                return cli_usage_error("fork", "expected exactly one TEMPLATE");
        if (ro.any_flag || ro.json_path) {
                r = request_finish(&ro, "fork", &req);
                if (r != 0)
                        return r;
                r = derive(&req, &o);
                if (r != 0)
                        return r;
                o.request = &req;
        }
        r = payloads_finish(&ro, "fork");
        if (r != 0)
                return r;
        o.payloads = &ro.payloads;
        if (strcmp(ipam.plugin, "none") == 0) {
                if (!o.has_ip)
                        return cli_usage_error("fork", "--ipam none needs --ip A.B.C.D/P");
                if (ipam.config[0])
                        return cli_usage_error("fork", "--ipam-config with --ipam none");
        } else
                o.ipam = &ipam;
        if (strlen(cli.state_dir) >= VMM_STATE_DIR_MAX)
                return cli_usage_error("fork", "--state-dir is too long");

        r = vmm_template_load(cli.state_dir, argv[optind], &t, &err);
        if (r < 0)
                return cli_fail("fork: %s", err.msg);
        if (o.request && o.request->n_ifaces > t.nics)
                return cli_usage_error("fork", "the request has %u interfaces, template %s has %u NIC%s",
                                       o.request->n_ifaces, t.name, t.nics, t.nics == 1 ? "" : "s");
        for (unsigned k = t.nics; k < VMM_MAX_NICS; k++)
                if (o.xnic[k - 1].has_ip || o.xnic[k - 1].has_mac)
                        return cli_usage_error("fork", "NIC %u: template %s has %u NIC%s (template create --nics)",
                                               k, t.name, t.nics, t.nics == 1 ? "" : "s");
        if (t.nics > 1 && warm)
                return cli_usage_error("fork", "--warm: template %s has %u NICs (warm clones are one-NIC only)",
                                       t.name, t.nics);
        if (t.nics > 1 && !o.ipam)
                for (unsigned k = 1; k < t.nics; k++)
                        if (!o.xnic[k - 1].has_ip)
                                return cli_usage_error("fork", "--ipam none needs every NIC's address (--nic %u,ip=...)",
                                                       k);
        if (!o.has_gateway && t.gateway[0]) {
                if (rh_ip_parse(t.gateway, &o.gateway, NULL) == 0)
                        o.has_gateway = true;
        }
        if (bridge) {
                r = vmm_net_up(cli.state_dir, bridge, NULL, NULL, NULL, &err);
                if (r < 0)
                        return cli_fail("fork: --bridge %s: %s", bridge, err.msg);
        } else {
                struct vmm_net net;
                if (vmm_net_load(cli.state_dir, &net, &err) < 0)
                        return cli_fail("fork: %s", err.msg);
        }

        vmm_signals_install();
        cli_reconcile();
        struct vmm_fork_result *res = calloc(count, sizeof(*res));
        int *rcs = calloc(count, sizeof(int));
        struct rh_error *errs = calloc(count, sizeof(*errs));
        if (!res || !rcs || !errs)
                return cli_fail("fork: out of memory");
        cli_ticker_start("fork");
        r = vmm_fork_batch(&t, &o, (unsigned)count, warm, res, rcs, errs, &err);
        cli_ticker_stop();
        if (r == -EADDRINUSE && rcs[0] == 0 && !res[0].clone.id[0]) {
                free(res);
                free(rcs);
                free(errs);
                return cli_fail("fork: %s", err.msg);
        }
        if (r < 0 && !res[0].clone.id[0] && rcs[0] == 0) {
                /* The pool could not be filled: nothing was forked. */
                free(res);
                free(rcs);
                free(errs);
                return cli_fail("fork: %s", err.msg);
        }

        unsigned kept = 0;
        for (unsigned long i = 0; i < count; i++)
                kept += rcs[i] == 0;
        char what[128];
        snprintf(what, sizeof(what), "every QEMU, tap and record of the unfinished forks removed; %u acked clone%s kept",
                 kept, kept == 1 ? "" : "s");
        int irc = cli_interrupted("fork", what);
        if (irc >= 0) {
                free(res);
                free(rcs);
                free(errs);
                return irc;
        }
        int rc = EXIT_OK;
        for (unsigned long i = 0; i < count; i++) {
                if (rcs[i] == -ETIMEDOUT)
                        rc = EXIT_TIMEOUT;
                else if (rcs[i] < 0 && rc == EXIT_OK)
                        rc = EXIT_FAIL;
        }
        if (cli.json) {
                json_t *arr = json_array();
                for (unsigned long i = 0; i < count; i++)
                        json_array_append_new(arr, vmm_fork_result_json(&res[i], rcs[i], &errs[i]));
                json_t *doc =
                        json_pack("{s:s, s:s, s:o}", "template", t.name, "accel", t.accel, "forks", arr);
                cli_result(doc);
        } else {
                vmm_print_timings(stdout, res, rcs, (unsigned)count);
        }
        for (unsigned long i = 0; i < count; i++)
                if (rcs[i] < 0) {
                        fprintf(stderr, "rehome: %s\n", errs[i].msg);
                        cli_error_note("%s", errs[i].msg);
                }
        free(res);
        free(rcs);
        free(errs);
        return rc;
}
