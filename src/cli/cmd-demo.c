/* SPDX-License-Identifier: MIT */
/*
 * rehome demo: the whole story on this machine. A template (reused when it is
 * cached and matches the current guest image), five clones forked
 * concurrently with distinct identities, each proven reachable at its new IP
 * and new MAC from the gateway side (ARP + ICMP), the template's own address
 * shown silent, and the table of stage timings. The clones are removed at the
 * end unless --keep.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "cleanup.h"
#include "io.h"
#include "src/vmm/qmp.h"
#include "src/vmm/vmm.h"

#define DEMO_TEMPLATE "demo"
#define DEMO_FIRST_IP "10.77.0.10/24"

static void help(void)
{
        printf("Usage: rehome demo [--count N] [--keep] [--image DIR] [--json]\n\n"
               "Create (or reuse) the template '%s', fork N (default 5) clones concurrently\n"
               "from %s up, prove each reachable at its new IP and MAC from the gateway\n"
               "side (ARP reply names the MAC, ICMP echo answers) and the template address\n"
               "silent, and print the per-stage timings. Clones are removed at the end\n"
               "unless --keep. Needs root (network namespace, taps) and QEMU.\n"
               "Exit status: 0 every clone acked and was reachable as itself, 1 otherwise,\n"
               "2 usage, 3 an ack timed out.\n",
               DEMO_TEMPLATE, DEMO_FIRST_IP);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
        va_list ap;
        if (!cli_progress())
                return;
        fprintf(stderr, "demo: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

static bool image_matches(const struct vmm_template *t, const char *image_dir)
{
        char path[PATH_MAX + 16];
        _cleanup_free_ char *text = NULL;
        snprintf(path, sizeof(path), "%s/image.json", image_dir);
        if (read_file_alloc(path, 1 << 16, &text, NULL) < 0)
                return true; /* no image to compare with: the template is all we have */
        json_t *j = json_loads(text, 0, NULL);
        const char *agent = json_string_value(json_object_get(j, "agent_sha256"));
        bool same = agent && strcmp(agent, t->agent_sha256) == 0;
        json_decref(j);
        return same;
}

int cmd_demo(int argc, char **argv)
{
        static const struct option options[] = {
                {"count", required_argument, NULL, 'c'}, {"keep", no_argument, NULL, 'k'},
                {"image", required_argument, NULL, 'i'}, {"json", no_argument, NULL, 'j'},
                {"help", no_argument, NULL, 'h'},        {},
        };
        const char *image = vmm_default_image_dir();
        unsigned long count = 5;
        bool keep = false;
        struct rh_error err = {0};
        struct vmm_template t;
        struct vmm_net net;
        int c, r;

        opterr = 0;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
                switch (c) {
                case 'c': {
                        char *end;
                        count = strtoul(optarg, &end, 10);
                        if (*end || count < 1 || count > 32)
                                return cli_usage_error("demo", "bad --count '%s' (1..32)", optarg);
                        break;
                }
                case 'k':
                        keep = true;
                        break;
                case 'i':
                        image = optarg;
                        break;
                case 'j':
                        cli_json_enable();
                        break;
                case 'h':
                        help();
                        return EXIT_OK;
                default:
                        return cli_usage_error("demo", "unknown option or missing value: '%s'",
                                               argv[optind - 1]);
                }
        }
        if (optind != argc)
                return cli_usage_error("demo", "no arguments expected");
        if (geteuid() != 0)
                return cli_fail("demo: needs root (network namespace, taps, /proc/<pid>/mem)");
        vmm_signals_install();
        cli_reconcile();

        if (vmm_net_load(cli.state_dir, &net, NULL) < 0) {
                say("setting up the clone network (bridge %s, gateway %s)", VMM_DEFAULT_BRIDGE,
                    VMM_DEFAULT_GATEWAY);
                r = vmm_net_up(cli.state_dir, NULL, NULL, NULL, &net, &err);
                if (r < 0)
                        return cli_fail("demo: net up: %s", err.msg);
                say("clone network: namespace %s", net.netns);
        }

        /* Clear clones an earlier demo left (they hold the demo addresses). */
        char **ids = NULL;
        if (vmm_clone_list(cli.state_dir, &ids, NULL) == 0) {
                for (size_t i = 0; ids[i]; i++) {
                        struct vmm_clone cl;
                        if (vmm_clone_load(cli.state_dir, ids[i], &cl, NULL) == 0 &&
                            (strcmp(cl.template_name, DEMO_TEMPLATE) == 0 || !vmm_clone_alive(&cl)))
                                vmm_clone_destroy(cli.state_dir, &cl, NULL);
                }
                vmm_strv_free(ids);
        }

        bool reused = false;
        if (vmm_template_load(cli.state_dir, DEMO_TEMPLATE, &t, NULL) == 0 && image_matches(&t, image)) {
                reused = true;
                say("reusing template '%s' (%s, created %llu)", t.name, t.accel,
                    (unsigned long long)t.created_unix);
        } else {
                vmm_template_remove(cli.state_dir, DEMO_TEMPLATE, NULL);
                char gw[64];
                snprintf(gw, sizeof(gw), "%s", net.gateway[0] ? net.gateway : VMM_DEFAULT_GATEWAY);
                *strchrnul(gw, '/') = '\0';
                char ram_dir[PATH_MAX];
                vmm_default_ram_dir(cli.state_dir, ram_dir, sizeof(ram_dir));
                struct vmm_template_opts o = {
                        .state_dir = cli.state_dir,
                        .name = DEMO_TEMPLATE,
                        .image_dir = image,
                        .ram_dir = ram_dir,
                        .mem_size = 256ull << 20,
                        .ip = VMM_DEFAULT_TEMPLATE_IP,
                        .gateway = gw,
                        .accel = "auto",
                        .boot_timeout_ms = 180000,
                        .prearm = true,
                        .progress = cli_progress(),
                };
                cli_ticker_start("template");
                r = vmm_qemu_ops.template_create(&o, &t, &err);
                cli_ticker_stop();
                if (r < 0)
                        return cli_fail("demo: template: %s", err.msg);
        }

        struct vmm_fork_opts fo = {.state_dir = cli.state_dir, .timeout_ms = 30000};
        rh_ip_parse(DEMO_FIRST_IP, &fo.ip, &fo.prefix);
        fo.has_ip = true;
        if (t.gateway[0] && rh_ip_parse(t.gateway, &fo.gateway, NULL) == 0)
                fo.has_gateway = true;
        struct vmm_fork_result *res = calloc(count, sizeof(*res));
        int *rcs = calloc(count, sizeof(int));
        struct rh_error *errs = calloc(count, sizeof(*errs));
        bool *arp_ok = calloc(count, sizeof(bool)), *icmp_ok = calloc(count, sizeof(bool));
        uint8_t(*arp_mac)[6] = calloc(count, 6);
        if (!res || !rcs || !errs || !arp_ok || !icmp_ok || !arp_mac)
                return cli_fail("demo: out of memory");
        say("forking %lu clones concurrently from %s", count, DEMO_FIRST_IP);
        cli_ticker_start("forks");
        r = vmm_fork_batch(&t, &fo, (unsigned)count, false, res, rcs, errs, &err);
        cli_ticker_stop();
        int irc = cli_interrupted("demo", "the unfinished clones were removed");
        if (irc >= 0)
                return irc;
        if (r == -EADDRINUSE && !res[0].clone.id[0])
                return cli_fail("demo: %s", err.msg);

        /* Reachability from the gateway side. */
        int rc = EXIT_OK;
        for (unsigned long i = 0; i < count; i++) {
                char ip[64];
                if (rcs[i] < 0) {
                        rc = rcs[i] == -ETIMEDOUT && rc == EXIT_OK ? EXIT_TIMEOUT : EXIT_FAIL;
                        continue;
                }
                snprintf(ip, sizeof(ip), "%s", res[i].clone.ip);
                *strchrnul(ip, '/') = '\0';
                arp_ok[i] = vmm_probe_arp(&net, ip, arp_mac[i], 3) == 0 &&
                            memcmp(arp_mac[i], res[i].clone.mac, 6) == 0;
                icmp_ok[i] = vmm_probe_icmp(&net, ip, 3) == 0;
                if (!arp_ok[i] || !icmp_ok[i])
                        rc = EXIT_FAIL;
        }
        char tip[64];
        uint8_t tmac[6];
        snprintf(tip, sizeof(tip), "%s", t.ip);
        *strchrnul(tip, '/') = '\0';
        bool template_silent = vmm_probe_arp(&net, tip, tmac, 1) < 0;
        if (!template_silent)
                rc = EXIT_FAIL;

        if (cli.json) {
                json_t *arr = json_array();
                for (unsigned long i = 0; i < count; i++) {
                        json_t *o = vmm_fork_result_json(&res[i], rcs[i], &errs[i]);
                        char mac[18];
                        json_object_set_new(o, "arp_reply_mac",
                                            rcs[i] == 0 ? json_string(rh_mac_format(arp_mac[i], mac))
                                                        : json_null());
                        json_object_set_new(o, "arp_ok", json_boolean(arp_ok[i]));
                        json_object_set_new(o, "icmp_ok", json_boolean(icmp_ok[i]));
                        json_array_append_new(arr, o);
                }
                json_t *doc =
                        json_pack("{s:s, s:s, s:s, s:b, s:s, s:b, s:o, s:b}", "template", t.name, "accel",
                                  t.accel, "cpu", t.cpu, "template_reused", reused, "template_ip", tip,
                                  "template_ip_silent", template_silent, "forks", arr, "ok", rc == EXIT_OK);
                cli_result(doc);
        } else {
                printf("template %s: %s -cpu %s%s, mailbox gpa 0x%llx\n\n", t.name, t.accel, t.cpu,
                       reused ? " (reused)" : "", (unsigned long long)t.mailbox_gpa);
                vmm_print_timings(stdout, res, rcs, (unsigned)count);
                printf("\nreachability from the gateway (namespace %s, bridge %s):\n",
                       net.netns[0] ? net.netns : "-", net.bridge);
                for (unsigned long i = 0; i < count; i++) {
                        char want[18], got[18];
                        if (rcs[i] < 0) {
                                printf("  %-6s FAILED: %s\n", res[i].clone.id[0] ? res[i].clone.id : "-",
                                       errs[i].msg);
                                continue;
                        }
                        rh_mac_format(res[i].clone.mac, want);
                        rh_mac_format(arp_mac[i], got);
                        printf("  %-6s %-16s ARP %s (reply from %s, want %s)  ICMP %s\n", res[i].clone.id,
                               res[i].clone.ip, arp_ok[i] ? "ok" : "FAIL", arp_ok[i] || got[0] ? got : "-",
                               want, icmp_ok[i] ? "ok" : "FAIL");
                }
                printf("  template address %s: %s\n", tip,
                       template_silent ? "silent (no clone kept the template identity)" : "ANSWERS: FAIL");
                if (strcmp(t.accel, "tcg") == 0)
                        printf("\n(TCG: every figure is inflated compared with KVM)\n");
        }
        for (unsigned long i = 0; i < count; i++)
                if (rcs[i] < 0) {
                        fprintf(stderr, "rehome: %s\n", errs[i].msg);
                        cli_error_note("%s", errs[i].msg);
                }
        if (!keep)
                for (unsigned long i = 0; i < count; i++)
                        if (rcs[i] == 0)
                                vmm_clone_destroy(cli.state_dir, &res[i].clone, NULL);
        free(res);
        free(rcs);
        free(errs);
        free(arp_ok);
        free(icmp_ok);
        free(arp_mac);
        return rc;
}
