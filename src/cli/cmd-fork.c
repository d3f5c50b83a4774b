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
               "Options:\n"
               "  --ip A.B.C.D/P    address of the (first) clone (default: the IPAM picks one)\n"
               "  --ipam PLUGIN     CNI IPAM plugin that reserves each address, called as the\n"
               "                    CNI spec says with the clone id as container id and\n"
               "                    released on 'clone rm' (default host-local, data in\n"
               "                    STATE/ipam; any plugin in CNI_PATH, e.g. a fleet-wide one;\n"
               "                    'none': only this state directory's records reserve)\n"
               "  --ipam-config FILE the plugin's \"ipam\" object (JSON; default: a range of\n"
               "                    the clone network, gateway excluded)\n"
               "  --mac MAC         MAC of the (first) clone (default 52:54:<the IPv4 address>)\n"
               "                    Refused before anything starts: an address outside the clone\n"
               "                    network, its network/broadcast/gateway address, the template's\n"
               "                    address or MAC, a multicast MAC, an off-link gateway, or an\n"
               "                    address or MAC a live clone holds.\n"
               "  --gateway A.B.C.D default route (default: the template's gateway)\n"
               "  --count N         fork N clones concurrently: consecutive addresses (inside\n"
               "                    the subnet) and MACs (carry across every byte)\n"
               "  --iface NAME      the guest interface to rehome (default eth0)\n"
               "  --keep            keep a clone whose handoff failed (default: remove it)\n"
               "  --timeout DUR     bound of every wait of a fork: QEMU's monitor, the incoming\n"
               "                    migration, and the ack after resume (default 30s)\n"
               "  --bridge BR       attach clones to your bridge BR in this namespace\n"
               "                    (default: the namespace and bridge of 'rehome net up')\n"
               "  --warm            pre-spawn the QEMUs (-incoming defer) before the timed forks\n"
               "  --no-pool         do not take warm clones ('rehome template warm'); by default\n"
               "                    a fork takes one when there is one\n"
               "  --no-resume       patch but never resume (the ack times out; for testing)\n"
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

int cmd_fork(int argc, char **argv)
{
        enum {
                O_IP = 0x300,
                O_MAC,
                O_GW,
                O_COUNT,
                O_KEEP,
                O_TIMEOUT,
                O_BRIDGE,
                O_IFACE,
                O_WARM,
                O_NORES,
                O_NOPOOL,
                O_IPAM,
                O_IPAM_CONFIG
        };
        static const struct option options[] = {
                {"ip", required_argument, NULL, O_IP},
                {"mac", required_argument, NULL, O_MAC},
                {"gateway", required_argument, NULL, O_GW},
                {"count", required_argument, NULL, O_COUNT},
                {"keep", no_argument, NULL, O_KEEP},
                {"timeout", required_argument, NULL, O_TIMEOUT},
                {"bridge", required_argument, NULL, O_BRIDGE},
                {"iface", required_argument, NULL, O_IFACE},
                {"warm", no_argument, NULL, O_WARM},
                {"no-resume", no_argument, NULL, O_NORES},
                {"no-pool", no_argument, NULL, O_NOPOOL},
                {"ipam", required_argument, NULL, O_IPAM},
                {"ipam-config", required_argument, NULL, O_IPAM_CONFIG},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        struct vmm_fork_opts o = {.state_dir = cli.state_dir, .timeout_ms = 30000};
        const char *bridge = NULL;
        bool have_ip = false, warm = false, ipam_set = false;
        struct vmm_ipam ipam = {.plugin = "host-local"};
        unsigned long count = 1;
        struct rh_error err = {0};
        struct vmm_template t;
        int c, r;

        opterr = 0;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
                switch (c) {
                case O_IP:
                        if (have_ip)
                                return cli_usage_error("fork", "--ip given twice (one address; --count derives the next)");
                        if (rh_ip_parse(optarg, &o.ip, &o.prefix) < 0 || o.ip.family != 4 ||
                            !strchr(optarg, '/'))
                                return cli_usage_error("fork", "bad --ip '%s' (want A.B.C.D/P)", optarg);
                        have_ip = true;
                        break;
                case O_IPAM:
                        if (ipam_set)
                                return cli_usage_error("fork", "--ipam given twice");
                        if (!*optarg || strlen(optarg) >= sizeof(ipam.plugin) || strchr(optarg, '/'))
                                return cli_usage_error("fork", "bad --ipam '%s' (a CNI IPAM plugin name, or none)",
                                                       optarg);
                        snprintf(ipam.plugin, sizeof(ipam.plugin), "%s", optarg);
                        ipam_set = true;
                        break;
                case O_IPAM_CONFIG:
                        if (ipam.config[0])
                                return cli_usage_error("fork", "--ipam-config given twice");
                        if (!realpath(optarg, ipam.config))
                                return cli_usage_error("fork", "--ipam-config %s: %s", optarg, strerror(errno));
                        break;
                case O_MAC:
                        if (o.has_mac)
                                return cli_usage_error("fork", "--mac given twice (one MAC; --count derives the next)");
                        if (rh_mac_parse(optarg, o.mac) < 0 || (o.mac[0] & 1))
                                return cli_usage_error("fork", "bad --mac '%s' (unicast aa:bb:cc:dd:ee:ff)",
                                                       optarg);
                        o.has_mac = true;
                        break;
                case O_GW:
                        if (o.has_gateway)
                                return cli_usage_error("fork", "--gateway given twice");
                        if (rh_ip_parse(optarg, &o.gateway, NULL) < 0 || strchr(optarg, '/') ||
                            o.gateway.family != 4)
                                return cli_usage_error("fork", "bad --gateway '%s'", optarg);
                        o.has_gateway = true;
                        break;
                case O_COUNT: {
                        char *end;
                        count = strtoul(optarg, &end, 10);
                        if (*end || count < 1 || count > 64)
                                return cli_usage_error("fork", "bad --count '%s' (1..64)", optarg);
                        break;
                }
                case O_KEEP:
                        o.keep = true;
                        break;
                case O_TIMEOUT:
                        if (vmm_parse_duration_ms(optarg, &o.timeout_ms) < 0)
                                return cli_usage_error("fork", "bad --timeout '%s' (e.g. 500ms, 30s)",
                                                       optarg);
                        break;
                case O_BRIDGE:
                        bridge = optarg;
                        break;
                case O_IFACE:
                        if (strlen(optarg) == 0 || strlen(optarg) >= RH_IFNAME_MAX)
                                return cli_usage_error("fork", "bad --iface '%s'", optarg);
                        o.iface = optarg;
                        break;
                case O_WARM:
                        warm = true;
                        break;
                case O_NOPOOL:
                        o.no_pool = true;
                        break;
                case O_NORES:
                        o.no_cont = true;
                        break;
                case 'h':
                        help();
                        return EXIT_OK;
                default:
                        return cli_usage_error("fork", "unknown option or missing value: '%s'",
                                               argv[optind - 1]);
                }
        }
        if (optind + 1 != argc)
                return cli_usage_error("fork", "expected exactly one TEMPLATE");
        if (strcmp(ipam.plugin, "none") == 0) {
                if (!have_ip)
                        return cli_usage_error("fork", "--ipam none needs --ip A.B.C.D/P");
                if (ipam.config[0])
                        return cli_usage_error("fork", "--ipam-config with --ipam none");
        } else
                o.ipam = &ipam;
        o.has_ip = have_ip;
        if (strlen(cli.state_dir) >= VMM_STATE_DIR_MAX)
                return cli_usage_error("fork", "--state-dir is too long");

        r = vmm_template_load(cli.state_dir, argv[optind], &t, &err);
        if (r < 0)
                return cli_fail("fork: %s", err.msg);
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
        r = vmm_fork_batch(&t, &o, (unsigned)count, warm, res, rcs, errs, &err);
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
                json_dumpf(doc, stdout, JSON_INDENT(2));
                putchar('\n');
                json_decref(doc);
        } else {
                vmm_print_timings(stdout, res, rcs, (unsigned)count);
        }
        for (unsigned long i = 0; i < count; i++)
                if (rcs[i] < 0)
                        fprintf(stderr, "rehome: %s\n", errs[i].msg);
        free(res);
        free(rcs);
        free(errs);
        return rc;
}
