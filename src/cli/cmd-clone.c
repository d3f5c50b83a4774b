/* SPDX-License-Identifier: MIT */
/*
 * rehome clone list|rm: the clones this state directory knows, whether their
 * QEMU is still alive, and removing them (QEMU killed, tap deleted).
 */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cleanup.h"
#include "cli.h"
#include "io.h"
#include "src/vmm/qmp.h"
#include "src/vmm/vmm.h"

static void help(void)
{
        printf("Usage: rehome clone list\n"
               "       rehome clone rm ID... | --all\n"
               "       rehome clone logs ID\n"
               "       rehome clone console ID [--wait DUR]\n\n"
               "logs prints the clone's serial console log (control characters escaped as \\xHH).\n"
               "console attaches to its serial console (a shell on the rehome guest image): on a\n"
               "terminal raw, Ctrl-] leaves; from a pipe it sends stdin, then relays the output\n"
               "for --wait (default 2s).\n"
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

/* `clone logs ID`: the console log, guest text: control bytes escaped (newlines and tabs kept). */
static int clone_logs(const struct vmm_clone *c)
{
        _cleanup_free_ char *text = NULL;
        size_t n = 0;
        int r = read_file_alloc(c->console_path, 64 << 20, &text, &n);

        if (r < 0)
                return cli_fail("clone logs %s: %s: %s", c->id, c->console_path, strerror(-r));
        if (cli.json) {
                /* The same text as without --json, in "log" (jansson escapes what JSON must). */
                _cleanup_free_ char *safe = malloc(4 * n + 1);
                size_t k = 0;
                if (!safe)
                        return cli_fail("clone logs %s: out of memory", c->id);
                for (size_t i = 0; i < n; i++) {
                        unsigned char ch = (unsigned char)text[i];
                        if (ch == '\n' || ch == '\t' || (ch >= 0x20 && ch < 0x7f))
                                safe[k++] = (char)ch;
                        else if (ch != '\r')
                                k += (size_t)sprintf(safe + k, "\\x%02x", ch);
                }
                cli_result(json_pack("{s:s, s:s, s:s%}", "id", c->id, "console_path", c->console_path, "log", safe, k));
                return EXIT_OK;
        }
        for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char)text[i];
                if (ch == '\n' || ch == '\t' || (ch >= 0x20 && ch < 0x7f))
                        putchar(ch);
                else if (ch != '\r')
                        printf("\\x%02x", ch);
        }
        return EXIT_OK;
}

static struct termios saved_tty;
static bool tty_raw;

static void restore_tty(void)
{
        if (tty_raw)
                tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
}

/*
 * `clone console ID`: the clone's serial console, both ways, over its
 * console socket. On a terminal: raw mode, Ctrl-] leaves. Otherwise (a
 * script): stdin is sent until EOF, then output is relayed for --wait.
 */
static int clone_console(const struct vmm_clone *c, int wait_ms)
{
        char path[PATH_MAX + 16], buf[4096];
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        _cleanup_close_ int fd = -EBADF;
        bool interactive = isatty(STDIN_FILENO), in_open = true;
        uint64_t until = 0;

        snprintf(path, sizeof(path), "%s/console.sock", c->dir);
        if (strlen(path) >= sizeof(sun.sun_path))
                return cli_fail("clone console %s: socket path %s too long", c->id, path);
        memcpy(sun.sun_path, path, strlen(path) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
                return cli_fail("clone console %s: %s: %s (a clone forked before consoles had sockets: use "
                                "'rehome clone logs')",
                                c->id, path, strerror(errno));
        if (interactive && tcgetattr(STDIN_FILENO, &saved_tty) == 0) {
                struct termios raw = saved_tty;
                cfmakeraw(&raw);
                if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0) {
                        tty_raw = true;
                        atexit(restore_tty);
                }
                fprintf(stderr, "rehome: console of clone %s; Ctrl-] leaves\r\n", c->id);
        }
        for (;;) {
                struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = STDIN_FILENO, .events = POLLIN}};
                int timeout = -1;
                if (!in_open) {
                        int64_t left = (int64_t)(until - now_ns()) / 1000000;
                        if (left <= 0)
                                break;
                        timeout = (int)left;
                }
                if (poll(p, in_open ? 2 : 1, timeout) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[0].revents & (POLLIN | POLLHUP)) {
                        ssize_t k = read(fd, buf, sizeof(buf));
                        if (k <= 0)
                                break; /* QEMU went away */
                        (void)!write_full(STDOUT_FILENO, buf, (size_t)k);
                }
                if (in_open && (p[1].revents & (POLLIN | POLLHUP))) {
                        ssize_t k = read(STDIN_FILENO, buf, sizeof(buf));
                        if (k > 0 && interactive && memchr(buf, 0x1d, (size_t)k))
                                break; /* Ctrl-] */
                        if (k <= 0) {
                                in_open = false;
                                until = now_ns() + (uint64_t)wait_ms * 1000000ull;
                        } else if (write_full(fd, buf, (size_t)k) < 0)
                                break;
                }
        }
        restore_tty();
        tty_raw = false;
        return EXIT_OK;
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
                        if (cli.json) {
                                json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:b}", "id", c.id,
                                                      "template", c.template_name, "ip", c.ip, "mac", mac, "pid",
                                                      (int)c.pid, "tap", c.tap, "state", state, "alive", alive);
                                /* A multi-NIC clone: every NIC (NIC 0 too: the fields above). One-NIC
                                 * clones list as they always did. */
                                if (c.nics > 1)
                                        json_object_set_new(o, "nics", vmm_clone_nics_json(&c));
                                json_array_append_new(arr, o);
                        } else {
                                printf("%-6s %-16s %-18s %-17s %-8d %-8s %s", c.id,
                                       c.template_name[0] ? c.template_name : "-", c.ip[0] ? c.ip : "-", mac,
                                       (int)c.pid, c.tap, state);
                                /* The extra NICs after the columns: "nic1=IP,MAC,TAP". */
                                for (unsigned k = 1; k < c.nics; k++) {
                                        char xmac[18];
                                        rh_mac_format(c.xnic[k - 1].mac, xmac);
                                        printf(" nic%u=%s,%s,%s", k, c.xnic[k - 1].ip[0] ? c.xnic[k - 1].ip : "-",
                                               xmac, c.xnic[k - 1].tap);
                                }
                                putchar('\n');
                        }
                }
                if (cli.json)
                        cli_result(json_pack("{s:O}", "clones", arr));
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
                json_t *removed = json_array(), *failed = json_array();
                for (size_t i = 0; list[i]; i++) {
                        struct vmm_clone c;
                        struct rh_error e = {0};
                        char why[sizeof(e.msg) + 128];
                        if (vmm_clone_load(cli.state_dir, list[i], &c, &e) < 0) {
                                rc = cli_fail("clone rm: %s", e.msg);
                                json_array_append_new(failed, json_pack("{s:s, s:s}", "id", list[i], "error", e.msg));
                                continue;
                        }
                        if (vmm_clone_in_flight(&c)) {
                                /* Its fork owns it: removing the record would orphan the QEMU it is starting. */
                                snprintf(why, sizeof(why), "still being set up by rehome pid %d (it removes it "
                                         "itself if it fails; retry when it is done)", (int)c.owner);
                                rc = cli_fail("clone rm %s: %s", c.id, why);
                                json_array_append_new(failed, json_pack("{s:s, s:s}", "id", c.id, "error", why));
                                continue;
                        }
                        vmm_clone_destroy(cli.state_dir, &c, NULL);
                        json_array_append_new(removed, json_string(list[i]));
                        if (!cli.json)
                                fprintf(stderr, "removed clone %s\n", list[i]);
                }
                if (cli.json)
                        cli_result(json_pack("{s:O, s:O}", "removed", removed, "failed", failed));
                json_decref(removed);
                json_decref(failed);
                vmm_strv_free(ids);
                /* A QEMU of this state directory whose record was just removed (or never had one) ends too. */
                cli_reconcile();
                return rc;
        }
        if (strcmp(argv[1], "logs") == 0 || strcmp(argv[1], "console") == 0) {
                struct vmm_clone c;
                struct rh_error e = {0};
                int wait_ms = 2000;
                if (argc == 5 && strcmp(argv[3], "--wait") == 0) {
                        if (vmm_parse_duration_ms(argv[4], &wait_ms) < 0)
                                return cli_usage_error("clone", "bad --wait '%s' (e.g. 2s)", argv[4]);
                } else if (argc != 3)
                        return cli_usage_error("clone", "%s takes one clone ID%s", argv[1],
                                               argv[1][0] == 'c' ? " [--wait DUR]" : "");
                if (vmm_clone_load(cli.state_dir, argv[2], &c, &e) < 0)
                        return cli_fail("clone %s: %s", argv[1], e.msg);
                if (argv[1][0] == 'l')
                        return clone_logs(&c);
                if (cli.json)
                        return cli_usage_error("clone", "console is interactive: no --json (use 'clone logs')");
                if (!vmm_clone_alive(&c) || c.pid <= 0)
                        return cli_fail("clone console %s: its QEMU is not running (rehome clone logs %s)", c.id,
                                        c.id);
                return clone_console(&c, wait_ms);
        }
        return cli_usage_error("clone", "unknown subcommand '%s' (list, rm, logs, console)", argv[1]);
}
