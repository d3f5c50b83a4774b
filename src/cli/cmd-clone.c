/* SPDX-License-Identifier: MIT */
/*
 * rehome clone list|rm: the clones this state directory knows, whether their
 * QEMU is still alive, and removing them (QEMU killed, tap deleted).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "src/vmm/qmp.h"
#include "src/vmm/vmm.h"

static void help(void)
{
        printf("Usage: rehome clone list\n"
               "       rehome clone rm ID... | --all\n\n"
               "list shows every clone with its template, identity, QEMU pid, tap and state\n"
               "('running'; 'warm' for a pre-spawned one; when its QEMU is gone: 'rebooted' or\n"
               "'powered-off' if the guest did that (clones run with -no-reboot: a rebooted\n"
               "clone stops rather than come back with the template's identity), else 'dead').\n"
               "rm kills the clone's QEMU, deletes its tap and its record; --all removes every\n"
               "clone (dead ones included) except those a live rehome is still forking.\n"
               "Both first reconcile the state directory: a QEMU carrying its marker that no\n"
               "live record owns is ended, and records of forks whose rehome died are removed.\n"
               "Exit status: 0 ok, 1 failure, 2 usage.\n");
}

/*
 * A clone whose QEMU is gone: clones run with -no-reboot, so a guest that
 * rebooted or powered off ended its QEMU; its console's last kernel line
 * says which. Anything else (killed, crashed) is "dead".
 */
static const char *stopped_state(const struct vmm_clone *c)
{
        char tail[256];

        qemu_log_tail(c->console_path[0] ? c->console_path : NULL, tail, sizeof(tail));
        if (strstr(tail, "reboot: Restarting system"))
                return "rebooted";
        if (strstr(tail, "reboot: Power down") || strstr(tail, "reboot: System halted"))
                return "powered-off";
        return "dead";
}

int cmd_clone(int argc, char **argv)
{
        struct rh_error err = {0};
        char **ids = NULL;
        int r;

        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
                        help();
                        return EXIT_OK;
                }
        if (argc < 2)
                return cli_usage_error("clone", "missing subcommand (list, rm)");
        if (strcmp(argv[1], "list") == 0) {
                if (argc != 2)
                        return cli_usage_error("clone", "list takes no arguments");
                cli_reconcile();
                r = vmm_clone_list(cli.state_dir, &ids, &err);
                if (r < 0)
                        return cli_fail("clone list: %s", err.msg);
                json_t *arr = json_array();
                if (!cli.json)
                        printf("%-6s %-16s %-18s %-17s %-8s %-8s %s\n", "ID", "TEMPLATE", "IP", "MAC", "PID",
                               "TAP", "STATE");
                for (size_t i = 0; ids[i]; i++) {
                        struct vmm_clone c;
                        char mac[18];
                        if (vmm_clone_load(cli.state_dir, ids[i], &c, NULL) < 0)
                                continue;
                        bool alive = vmm_clone_alive(&c);
                        const char *state = alive ? c.status : stopped_state(&c);
                        static const uint8_t zero[6];
                        if (memcmp(c.mac, zero, 6) == 0)
                                snprintf(mac, sizeof(mac), "-");
                        else
                                rh_mac_format(c.mac, mac);
                        if (cli.json)
                                json_array_append_new(arr,
                                                      json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:b}",
                                                                "id", c.id, "template", c.template_name, "ip",
                                                                c.ip, "mac", mac, "pid", (int)c.pid, "tap",
                                                                c.tap, "state", state, "alive", alive));
                        else
                                printf("%-6s %-16s %-18s %-17s %-8d %-8s %s\n", c.id,
                                       c.template_name[0] ? c.template_name : "-", c.ip[0] ? c.ip : "-", mac,
                                       (int)c.pid, c.tap, state);
                }
                if (cli.json) {
                        json_dumpf(arr, stdout, JSON_INDENT(2));
                        putchar('\n');
                }
                json_decref(arr);
                vmm_strv_free(ids);
                return EXIT_OK;
        }
        if (strcmp(argv[1], "rm") == 0) {
                bool all = argc == 3 && strcmp(argv[2], "--all") == 0;
                int rc = EXIT_OK;
                if (argc < 3)
                        return cli_usage_error("clone", "rm needs clone ids or --all");
                cli_reconcile();
                if (all) {
                        r = vmm_clone_list(cli.state_dir, &ids, &err);
                        if (r < 0)
                                return cli_fail("clone rm: %s", err.msg);
                }
                char **list = all ? ids : argv + 2;
                for (size_t i = 0; list[i]; i++) {
                        struct vmm_clone c;
                        struct rh_error e = {0};
                        if (vmm_clone_load(cli.state_dir, list[i], &c, &e) < 0) {
                                rc = cli_fail("clone rm: %s", e.msg);
                                continue;
                        }
                        if (vmm_clone_in_flight(&c)) {
                                /* Its fork owns it: removing the record would orphan the QEMU it is starting. */
                                rc = cli_fail("clone rm %s: still being set up by rehome pid %d (it removes it "
                                              "itself if it fails; retry when it is done)",
                                              c.id, (int)c.owner);
                                continue;
                        }
                        vmm_clone_destroy(cli.state_dir, &c, NULL);
                        if (!cli.json)
                                fprintf(stderr, "removed clone %s\n", list[i]);
                }
                vmm_strv_free(ids);
                /* A QEMU of this state directory whose record was just removed (or never had one) ends too. */
                cli_reconcile();
                return rc;
        }
        return cli_usage_error("clone", "unknown subcommand '%s' (list, rm)", argv[1]);
}
