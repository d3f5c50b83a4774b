/* SPDX-License-Identifier: MIT */
/*
 * rehome template create|list|show|rm: a template is a booted guest whose
 * agent armed its mailbox and was prearmed, snapshotted with x-ignore-shared
 * (RAM file on tmpfs + device state + metadata).
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "src/vmm/qmp.h"
#include "src/vmm/vmm.h"

static void help(void)
{
        printf("Usage: rehome template create NAME [options]\n"
               "       rehome template list\n"
               "       rehome template show NAME\n"
               "       rehome template rm NAME\n"
               "       rehome template warm NAME [--count N]\n"
               "       rehome template record-ws NAME [--runs N]  (record-ws --help)\n\n"
               "create boots the guest image (Debian kernel, busybox, rehome-agent), waits for\n"
               "the agent's 'armed' line, prearms it (clones wake in fast-poll mode) and\n"
               "snapshots it: RAM file on tmpfs, device state and meta.json in\n"
               "STATE_DIR/templates/NAME. The accelerator is KVM only where a probe boot works,\n"
               "otherwise TCG with -cpu max; create says which.\n"
               "warm pre-spawns N clone processes of NAME (QEMU paused in -incoming defer, tap\n"
               "on the bridge): the next forks of NAME take them and skip QEMU start-up.\n"
               "rm also removes the template's warm clones.\n\n"
               "Options of create:\n"
               "  --image DIR         guest image (image.json, vmlinuz, initrd.img);\n"
               "                      default $REHOME_IMAGE or %s\n"
               "  --mem SIZE          guest RAM (default 256M)\n"
               "  --ip A.B.C.D/P      the template's address (default %s)\n"
               "  --gateway A.B.C.D   default route (default: the clone network's gateway)\n"
               "  --nics N            NICs of the template, 1..%d (default 1): NIC K is the\n"
               "                      guest's ethK on network K ('rehome net up --nic K', set\n"
               "                      up with its default subnet 10.(77+K).0.1/24 if missing)\n"
               "  --nic-ip K=A.B.C.D/P  NIC K's template address (default: its network's\n"
               "                      gateway + 1, e.g. 10.78.0.2/24)\n"
               "  --accel auto|kvm|tcg   (default auto)\n"
               "  --icount            TCG with -icount shift=0,sleep=off: guest time counts guest\n"
               "                      instructions (1 ns each), so the agent's stamps and\n"
               "                      `rehome bench` report load-independent counts; clones\n"
               "                      inherit it (needs TCG: --accel tcg or auto without KVM)\n"
               "  --ram-dir DIR       where the RAM file lives (default %s/<tag>, tmpfs: a\n"
               "                      directory of this state directory's own)\n"
               "  --from-clone ID     fork-of-fork: snapshot a running clone instead of booting\n"
               "  --no-prearm         do not put the agent in fast-poll mode before the snapshot\n"
               "  --boot-timeout DUR  how long to wait for the agent (default 180s)\n"
               "  --agent-args WORDS  extra rehome-agent arguments on the guest kernel command\n"
               "                      line, ',' between words (e.g. --hooks-dir,/etc/hooks)\n"
               "  --kernel-arg WORD   one more guest kernel command line word for the image's\n"
               "                      init (e.g. rehome.ifupdown=1: busybox ifupdown manages eth0)\n"
               "  -h, --help\n"
               "Exit status: 0 ok, 1 failure, 2 usage.\n",
               vmm_default_image_dir(), VMM_DEFAULT_TEMPLATE_IP, VMM_MAX_NICS, VMM_DEFAULT_RAM_DIR);
}

static json_t *template_json(const struct vmm_template *t)
{
        char token[2 * RH_TOKEN_LEN + 1], mac[18], gpa[32];
        for (size_t i = 0; i < RH_TOKEN_LEN; i++)
                sprintf(token + 2 * i, "%02x", t->token[i]);
        rh_mac_format(t->mac, mac);
        snprintf(gpa, sizeof(gpa), "0x%" PRIx64, t->mailbox_gpa);
        json_t *j =
                json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:s, s:s,"
                          " s:s, s:s, s:s, s:I, s:f, s:f}",
                          "name", t->name, "dir", t->dir, "ram", t->ram_path, "state", t->state_path,
                          "machine", t->machine, "accel", t->accel, "cpu", t->cpu, "mem_size",
                          (json_int_t)t->mem_size, "layout", t->layout, "mailbox_gpa", gpa, "token", token,
                          "abi", t->abi, "ip", t->ip, "gateway", t->gateway, "mac", mac, "kernel_release",
                          t->kernel_release, "parent", t->parent, "created_unix", (json_int_t)t->created_unix,
                          "boot_ms", t->boot_ms, "snapshot_ms", t->snapshot_ms);
        char ver[32];
        snprintf(ver, sizeof(ver), "%u.%u.%u", t->agent_version >> 16, (t->agent_version >> 8) & 0xff,
                 t->agent_version & 0xff);
        json_object_set_new(j, "agent_version", json_string(ver));
        json_object_set_new(j, "agent_caps", json_integer(t->agent_caps));
        json_object_set_new(j, "nics", json_integer(t->nics));
        json_t *xs = json_array();
        for (unsigned k = 1; k < t->nics; k++) {
                char xmac[18];
                rh_mac_format(t->xnic[k - 1].mac, xmac);
                json_array_append_new(xs, json_pack("{s:i, s:s, s:s}", "nic", (int)k, "ip", t->xnic[k - 1].ip,
                                                    "mac", xmac));
        }
        json_object_set_new(j, "extra_nics", xs);
        json_object_set_new(j, "icount", json_boolean(t->icount));
        return j;
}

static void print_template(const struct vmm_template *t)
{
        char mac[18];
        rh_mac_format(t->mac, mac);
        printf("name:         %s\n", t->name);
        printf("machine:      %s, %s -cpu %s%s, %" PRIu64 " MiB\n", t->machine, t->accel, t->cpu,
               t->icount ? " -icount shift=0,sleep=off" : "", t->mem_size >> 20);
        printf("kernel:       %s (%s)\n", t->kernel, t->kernel_release);
        printf("ram:          %s\n", t->ram_path);
        printf("state:        %s\n", t->state_path);
        printf("layout:       %s\n", t->layout);
        printf("mailbox:      gpa 0x%" PRIx64 ", abi %s, token ", t->mailbox_gpa, t->abi);
        for (size_t i = 0; i < RH_TOKEN_LEN; i++)
                printf("%02x", t->token[i]);
        printf("\nagent:        %u.%u.%u, caps 0x%x\n", t->agent_version >> 16,
               (t->agent_version >> 8) & 0xff, t->agent_version & 0xff, t->agent_caps);
        printf("identity:     %s gw %s mac %s\n", t->ip, t->gateway[0] ? t->gateway : "-", mac);
        for (unsigned k = 1; k < t->nics; k++) {
                char xmac[18];
                rh_mac_format(t->xnic[k - 1].mac, xmac);
                printf("nic %u:        eth%u %s mac %s\n", k, k, t->xnic[k - 1].ip, xmac);
        }
        if (t->parent[0])
                printf("forked from:  clone %s of template %s\n", t->source_clone, t->parent);
        printf("boot:         %.0f ms to armed; snapshot %.1f ms\n", t->boot_ms, t->snapshot_ms);
}

static int do_create(int argc, char **argv)
{
        enum { O_IMAGE = 0x300, O_MEM, O_IP, O_GW, O_ACCEL, O_RAM, O_FROM, O_NOPRE, O_BOOT, O_AGENT, O_NICS, O_NIC_IP, O_KARG, O_ICOUNT };
        static const struct option options[] = {
                {"image", required_argument, NULL, O_IMAGE},
                {"mem", required_argument, NULL, O_MEM},
                {"ip", required_argument, NULL, O_IP},
                {"gateway", required_argument, NULL, O_GW},
                {"accel", required_argument, NULL, O_ACCEL},
                {"ram-dir", required_argument, NULL, O_RAM},
                {"from-clone", required_argument, NULL, O_FROM},
                {"no-prearm", no_argument, NULL, O_NOPRE},
                {"boot-timeout", required_argument, NULL, O_BOOT},
                {"agent-args", required_argument, NULL, O_AGENT},
                {"nics", required_argument, NULL, O_NICS},
                {"nic-ip", required_argument, NULL, O_NIC_IP},
                {"kernel-arg", required_argument, NULL, O_KARG},
                {"icount", no_argument, NULL, O_ICOUNT},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        struct vmm_template_opts o = {
                .state_dir = cli.state_dir,
                .image_dir = vmm_default_image_dir(),
                .ram_dir = NULL, /* the state directory's own (vmm_default_ram_dir) */
                .mem_size = 256ull << 20,
                .ip = VMM_DEFAULT_TEMPLATE_IP,
                .accel = "auto",
                .boot_timeout_ms = 180000,
                .prearm = true,
                .progress = cli_progress(),
        };
        char gw[64] = "";
        struct rh_error err = {0};
        struct vmm_template t;
        int c, r;

        opterr = 0;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
                switch (c) {
                case O_IMAGE:
                        o.image_dir = optarg;
                        break;
                case O_MEM:
                        if (vmm_parse_size(optarg, &o.mem_size) < 0 || o.mem_size < (64ull << 20) ||
                            o.mem_size > (2048ull << 20) || (o.mem_size & ((1 << 20) - 1)))
                                return cli_usage_error("template", "bad --mem '%s' (64M..2G, whole MiB)",
                                                       optarg);
                        break;
                case O_IP: {
                        struct rh_ipaddr ip;
                        uint8_t p;
                        if (rh_ip_parse(optarg, &ip, &p) < 0 || ip.family != 4 || !strchr(optarg, '/'))
                                return cli_usage_error("template", "bad --ip '%s' (want A.B.C.D/P)", optarg);
                        o.ip = optarg;
                        break;
                }
                case O_GW: {
                        struct rh_ipaddr ip;
                        if (rh_ip_parse(optarg, &ip, NULL) < 0 || strchr(optarg, '/'))
                                return cli_usage_error("template", "bad --gateway '%s'", optarg);
                        snprintf(gw, sizeof(gw), "%s", optarg);
                        break;
                }
                case O_ACCEL:
                        if (strcmp(optarg, "auto") && strcmp(optarg, "kvm") && strcmp(optarg, "tcg"))
                                return cli_usage_error("template", "bad --accel '%s' (auto, kvm, tcg)",
                                                       optarg);
                        o.accel = optarg;
                        break;
                case O_RAM:
                        o.ram_dir = optarg;
                        break;
                case O_FROM:
                        o.from_clone = optarg;
                        break;
                case O_NOPRE:
                        o.prearm = false;
                        break;
                case O_AGENT:
                        o.agent_args = optarg;
                        break;
                case O_NICS: {
                        char *end;
                        unsigned long n = strtoul(optarg, &end, 10);
                        if (o.nics)
                                return cli_usage_error("template", "--nics given twice");
                        if (*end || n < 1 || n > VMM_MAX_NICS)
                                return cli_usage_error("template", "bad --nics '%s' (1..%d)", optarg, VMM_MAX_NICS);
                        o.nics = (unsigned)n;
                        break;
                }
                case O_NIC_IP: {
                        char *end;
                        unsigned long k = strtoul(optarg, &end, 10);
                        struct rh_ipaddr ip;
                        uint8_t p;
                        if (*end != '=' || k < 1 || k >= VMM_MAX_NICS || rh_ip_parse(end + 1, &ip, &p) < 0 ||
                            ip.family != 4 || !strchr(end + 1, '/'))
                                return cli_usage_error("template", "bad --nic-ip '%s' (want K=A.B.C.D/P, K 1..%d)",
                                                       optarg, VMM_MAX_NICS - 1);
                        if (o.nic_ip[k - 1])
                                return cli_usage_error("template", "--nic-ip %lu given twice", k);
                        o.nic_ip[k - 1] = end + 1;
                        break;
                }
                case O_KARG:
                        o.kernel_arg = optarg;
                        break;
                case O_ICOUNT:
                        o.icount = true;
                        break;
                case O_BOOT:
                        if (vmm_parse_duration_ms(optarg, &o.boot_timeout_ms) < 0)
                                return cli_usage_error("template", "bad --boot-timeout '%s'", optarg);
                        break;
                case 'h':
                        help();
                        return EXIT_OK;
                default:
                        return cli_usage_error("template", "unknown option or missing value: '%s'",
                                               argv[optind - 1]);
                }
        }
        if (optind + 1 != argc)
                return cli_usage_error("template", "create takes exactly one NAME");
        o.name = argv[optind];
        for (unsigned k = o.nics ? o.nics : 1; k < VMM_MAX_NICS; k++)
                if (o.nic_ip[k - 1])
                        return cli_usage_error("template", "--nic-ip %u without --nics %u or more", k, k + 1);
        if (o.from_clone && o.nics > 1)
                return cli_usage_error("template", "--nics with --from-clone (the clone's template decides)");
        if (o.icount && strcmp(o.accel, "kvm") == 0)
                return cli_usage_error("template", "--icount needs TCG: not with --accel kvm");
        if (o.icount && o.from_clone)
                return cli_usage_error("template", "--icount and --from-clone: a fork-of-fork template "
                                                   "inherits its parent's -icount");
        if (!gw[0]) {
                struct vmm_net net;
                if (vmm_net_load(cli.state_dir, &net, NULL) == 0 && net.gateway[0]) {
                        snprintf(gw, sizeof(gw), "%s", net.gateway);
                        *strchrnul(gw, '/') = '\0';
                } else if (vmm_net_load(cli.state_dir, &net, NULL) < 0) {
                        snprintf(gw, sizeof(gw), "%s", VMM_DEFAULT_GATEWAY);
                        *strchrnul(gw, '/') = '\0';
                }
        }
        o.gateway = gw[0] ? gw : NULL;
        char ram_dir[PATH_MAX];
        if (!o.ram_dir) {
                vmm_default_ram_dir(cli.state_dir, ram_dir, sizeof(ram_dir));
                o.ram_dir = ram_dir;
        }
        vmm_signals_install();
        cli_reconcile(); /* a dead creator's leftovers go before the name is claimed */
        cli_ticker_start("template create");
        r = vmm_qemu_ops.template_create(&o, &t, &err);
        cli_ticker_stop();
        int irc = cli_interrupted("template create", "its QEMU, tap, RAM file and directory were removed");
        if (irc >= 0)
                return irc;
        if (r < 0)
                return cli_fail("template create %s: %s", o.name, err.msg);
        if (cli.json) {
                json_t *j = template_json(&t);
                cli_result(j);
        } else
                print_template(&t);
        return EXIT_OK;
}

struct warm_job {
        const struct vmm_template *t;
        struct vmm_clone c;
        struct rh_error err;
        int rc;
};

static void *warm_one(void *arg)
{
        struct warm_job *j = arg;
        j->rc = vmm_pool_spawn(cli.state_dir, j->t, &j->c, &j->err);
        if (j->rc == 0)
                qemu_release(j->c.pid); /* it waits for a fork, beyond this process */
        return NULL;
}

/* rehome template warm NAME [--count N]: fill the warm pool. */
static int do_warm(int argc, char **argv)
{
        static const struct option options[] = {
                {"count", required_argument, NULL, 'c'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        unsigned long count = 1;
        struct rh_error err = {0};
        struct vmm_template t;
        int c, rc = EXIT_OK;

        opterr = 0;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
                switch (c) {
                case 'c': {
                        char *end;
                        count = strtoul(optarg, &end, 10);
                        if (*end || count < 1 || count > 64)
                                return cli_usage_error("template", "bad --count '%s' (1..64)", optarg);
                        break;
                }
                case 'h':
                        help();
                        return EXIT_OK;
                default:
                        return cli_usage_error("template", "unknown option or missing value: '%s'",
                                               argv[optind - 1]);
                }
        }
        if (optind + 1 != argc)
                return cli_usage_error("template", "warm takes exactly one NAME");
        if (vmm_template_load(cli.state_dir, argv[optind], &t, &err) < 0)
                return cli_fail("template warm: %s", err.msg);
        vmm_signals_install();
        struct warm_job *jobs = calloc(count, sizeof(*jobs));
        pthread_t *th = calloc(count, sizeof(*th));
        if (!jobs || !th)
                return cli_fail("template warm: out of memory");
        for (unsigned long i = 0; i < count; i++) {
                jobs[i].t = &t;
                int e = pthread_create(&th[i], NULL, warm_one, &jobs[i]);
                if (e != 0) {
                        jobs[i].rc = rh_error_set(&jobs[i].err, -e, "cannot start a thread: %s", strerror(e));
                        th[i] = 0;
                }
        }
        json_t *arr = json_array();
        for (unsigned long i = 0; i < count; i++) {
                if (th[i])
                        pthread_join(th[i], NULL);
                if (jobs[i].rc < 0) {
                        rc = cli_fail("template warm %s: %s", t.name, jobs[i].err.msg);
                        continue;
                }
                json_array_append_new(arr, json_string(jobs[i].c.id));
                if (!cli.json)
                        printf("warm clone %s of %s: QEMU pid %d paused in -incoming defer, tap %s\n",
                               jobs[i].c.id, t.name, (int)jobs[i].c.pid, jobs[i].c.tap);
        }
        if (cli.json)
                cli_result(json_pack("{s:s, s:O}", "template", t.name, "warm_clones", arr));
        json_decref(arr);
        free(jobs);
        free(th);
        return rc;
}

int cmd_template(int argc, char **argv)
{
        struct rh_error err = {0};
        const char *sub;
        int r;

        if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
                if (argc >= 2) {
                        help();
                        return EXIT_OK;
                }
                return cli_usage_error("template", "missing subcommand (create, list, show, rm, warm)");
        }
        sub = argv[1];
        if (strcmp(sub, "create") == 0)
                return do_create(argc - 1, argv + 1);
        if (strcmp(sub, "warm") == 0)
                return do_warm(argc - 1, argv + 1);
        if (strcmp(sub, "record-ws") == 0)
                return cmd_template_record_ws(argc - 1, argv + 1);
        for (int i = 2; i < argc; i++)
                if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
                        help();
                        return EXIT_OK;
                }
        if (strcmp(sub, "list") == 0) {
                char **names = NULL;
                if (argc != 2)
                        return cli_usage_error("template", "list takes no arguments");
                r = vmm_template_list(cli.state_dir, &names, &err);
                if (r < 0)
                        return cli_fail("template list: %s", err.msg);
                json_t *arr = json_array();
                if (!cli.json)
                        printf("%-20s %-8s %-6s %-16s %-14s %s\n", "NAME", "ACCEL", "MEM", "IP", "MAILBOX",
                               "STATUS");
                for (size_t i = 0; names[i]; i++) {
                        struct vmm_template t;
                        struct rh_error e = {0};
                        bool ok = vmm_template_load(cli.state_dir, names[i], &t, &e) == 0;
                        if (cli.json) {
                                json_t *j = ok ? template_json(&t)
                                               : json_pack("{s:s, s:s}", "name", names[i], "error", e.msg);
                                json_array_append_new(arr, j);
                        } else if (ok) {
                                char gpa[24];
                                snprintf(gpa, sizeof(gpa), "0x%" PRIx64, t.mailbox_gpa);
                                printf("%-20s %-8s %-6" PRIu64 " %-16s %-14s ok\n", t.name, t.accel,
                                       t.mem_size >> 20, t.ip, gpa);
                        } else
                                printf("%-20s %-8s %-6s %-16s %-14s broken: %s\n", names[i], "-", "-", "-",
                                       "-", e.msg);
                }
                if (cli.json)
                        cli_result(json_pack("{s:O}", "templates", arr));
                json_decref(arr);
                vmm_strv_free(names);
                return EXIT_OK;
        }
        if (strcmp(sub, "show") == 0 || strcmp(sub, "rm") == 0) {
                if (argc != 3)
                        return cli_usage_error("template", "%s takes exactly one NAME", sub);
                if (strcmp(sub, "rm") == 0) {
                        r = vmm_template_remove(cli.state_dir, argv[2], &err);
                        if (r < 0)
                                return cli_fail("template rm %s: %s", argv[2], err.msg);
                        if (cli.json)
                                cli_result(json_pack("{s:s}", "removed", argv[2]));
                        return EXIT_OK;
                }
                struct vmm_template t;
                r = vmm_template_load(cli.state_dir, argv[2], &t, &err);
                if (r < 0)
                        return cli_fail("template show: %s", err.msg);
                if (cli.json) {
                        json_t *j = template_json(&t);
                        cli_result(j);
                } else
                        print_template(&t);
                return EXIT_OK;
        }
        return cli_usage_error("template", "unknown subcommand '%s' (create, list, show, rm, warm, record-ws)", sub);
}
