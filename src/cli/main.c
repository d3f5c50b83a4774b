/* SPDX-License-Identifier: MIT */
/*
 * rehome: the host CLI. main() parses global options and dispatches to one
 * verb from the table below; every verb lives in its own cmd-<verb>.c.
 * Only this layer prints errors and chooses exit codes.
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "src/vmm/vmm.h"
#include "rehome-version.h"

struct cli_globals cli = {
        .state_dir = "/var/lib/rehome",
};

struct verb {
        const char *name;
        int (*fn)(int argc, char **argv);
        const char *summary;
};

static const struct verb verbs[] = {
        { "locate", cmd_locate, "find a mailbox in guest memory (file or pid)" },
        { "patch", cmd_patch, "write a request into a mailbox before resume" },
        { "inspect", cmd_inspect, "decode and print a mailbox: arm header, request, ack" },
        { "wait-ack", cmd_wait_ack, "wait for a clone's ack (mailbox record and/or UDP)" },
        { "template", cmd_template, "create, list, show, rm templates (boot, arm, snapshot)" },
        { "fork", cmd_fork, "start clones of a template, each with its own identity" },
        { "clone", cmd_clone, "list or remove clones" },
        { "net", cmd_net, "set up or tear down the clone network (namespace + bridge)" },
        { "demo", cmd_demo, "template + 5 clones, each proven reachable; stage timings" },
        { "doctor", cmd_doctor, "what this host has for running clones, and fixes" },
        { "bench", cmd_bench, "measure handoffs: stage table per signal mode, side by side" },
        { "pager", cmd_pager, "userfaultfd page server for Firecracker restores, with mailbox overlays" },
        { "image", cmd_image, "build the guest image (kernel, busybox, static agent) for template create" },
        /* VERBS: one row per verb; keep this marker line for easy merges. */
        {},
};

int cli_interrupted(const char *verb, const char *what)
{
        int sig = vmm_interrupted();

        if (!sig)
                return -1;
        fprintf(stderr, "rehome: %s: interrupted by SIG%s: %s\n", verb, sigabbrev_np(sig) ? sigabbrev_np(sig) : "?",
                what);
        cli_error_note("%s: interrupted by SIG%s: %s", verb, sigabbrev_np(sig) ? sigabbrev_np(sig) : "?", what);
        return 128 + sig;
}

void cli_reconcile(void)
{
        struct vmm_reconcile_stats s;
        struct rh_error err = {0};

        if (vmm_reconcile(cli.state_dir, &s, &err) < 0) {
                fprintf(stderr, "rehome: reconcile %s: %s\n", cli.state_dir, err.msg);
                return;
        }
        if (s.killed || s.records_removed || s.templates_removed)
                fprintf(stderr,
                        "rehome: %s: ended %u VMM%s no live record owned; removed %u unfinished clone "
                        "record%s and %u unfinished template%s\n",
                        cli.state_dir, s.killed, s.killed == 1 ? "" : "s", s.records_removed,
                        s.records_removed == 1 ? "" : "s", s.templates_removed, s.templates_removed == 1 ? "" : "s");
}

static void help(void)
{
        printf("Usage: rehome [--json] [-v] [--state-dir DIR] <verb> [options] [args]\n\n"
               "Hand a new network identity to a microVM forked from a snapshot.\n\nVerbs:\n");
        for (const struct verb *v = verbs; v->name; v++)
                printf("  %-12s %s\n", v->name, v->summary);
        printf("\nGlobal options:\n"
               "  --json           print exactly one JSON document on stdout\n"
               "  -v, --verbose    more progress on stderr\n"
               "  --state-dir DIR  templates and clones (default /var/lib/rehome)\n"
               "  -h, --help       this help\n"
               "  --version        print the version\n"
               "\nExit codes: 0 ok, 1 failure, 2 usage error, 3 timed out waiting for an ack.\n"
               "Run 'rehome <verb> --help' for a verb's options.\n");
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
                { "json", no_argument, NULL, 'j' },
                { "verbose", no_argument, NULL, 'v' },
                { "state-dir", required_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                {},
        };
        static char verb_argv0[64];
        bool want_help = false, want_version = false;
        int c;

        /* getopt names argv[0] in its messages: "rehome", never the binary's path. */
        argv[0] = (char *)"rehome";
        /* '+': stop at the verb; its options are its own. */
        while ((c = getopt_long(argc, argv, "+vh", options, NULL)) != -1) {
                switch (c) {
                case 'j':
                        cli.json = true;
                        break;
                case 'v':
                        cli.verbose = true;
                        break;
                case 's':
                        cli.state_dir = optarg;
                        break;
                case 'h':
                        want_help = true; /* after the loop: a --json after --help counts too */
                        break;
                case 'V':
                        want_version = true;
                        break;
                default:
                        fprintf(stderr, "Try 'rehome --help'\n");
                        cli_error_note("unknown global option or missing value: '%s'", argv[optind - 1]);
                        return cli_json_finish(NULL, EXIT_USAGE);
                }
        }
        if (want_help || want_version) {
                if (cli.json)
                        cli_json_begin();
                if (want_help)
                        help();
                else if (cli.json)
                        cli_result(json_pack("{s:s}", "version", REHOME_VERSION));
                else
                        printf("rehome %s\n", REHOME_VERSION);
                return cli_json_finish(NULL, EXIT_OK);
        }
        if (optind >= argc) {
                fprintf(stderr, "rehome: no verb given\nTry 'rehome --help'\n");
                cli_error_note("no verb given");
                return cli_json_finish(NULL, EXIT_USAGE);
        }
        for (const struct verb *v = verbs; v->name; v++)
                if (strcmp(argv[optind], v->name) == 0) {
                        int vargc = argc - optind;
                        char **vargv = argv + optind;
                        /* The verb's getopt messages start "rehome VERB: ". */
                        snprintf(verb_argv0, sizeof(verb_argv0), "rehome %s", v->name);
                        vargv[0] = verb_argv0;
                        optind = 0; /* reset getopt for the verb (0: full re-init in glibc) */
                        if (cli.json)
                                cli_json_begin();
                        return cli_json_finish(v->name, v->fn(vargc, vargv));
                }
        fprintf(stderr, "rehome: unknown verb '%s'\nTry 'rehome --help'\n", argv[optind]);
        cli_error_note("unknown verb '%s'", argv[optind]);
        return cli_json_finish(NULL, EXIT_USAGE);
}
