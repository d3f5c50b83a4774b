/* SPDX-License-Identifier: MIT */
/*
 * rehome pager: the userfaultfd page server for Firecracker's `Uffd` memory
 * backend (the engine is src/pager/), and the three control commands that
 * talk to a running one over its --control socket: add-client (a per-clone
 * socket whose client gets its mailbox overlay), remove-client, stats.
 * docs/PAGER.md describes the protocol.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli.h"
#include "io.h"
#include "opts.h"
#include "rehome/request.h"
#include "src/pager/pager.h"

enum {
        OPT_SOCKET = OPT_VERB_BASE,
        OPT_CONTROL,
        OPT_WORKING_SET,
        OPT_RECORD_WS,
        OPT_HANDSHAKE_TIMEOUT,
        OPT_CACHE_MAX,
        OPT_SPIN_US,
};

static void help(void)
{
        printf("Usage: rehome pager --socket PATH --mem-file FILE [--layout SPEC] [--control PATH]\n"
               "                    [--working-set FILE] [--record-ws FILE] [--handshake-timeout MS]\n"
               "                    [--cache-max SIZE] [--spin-us N]\n"
               "       rehome pager add-client --control PATH --socket PATH --gpa ADDR [--token HEX] REQUEST...\n"
               "       rehome pager remove-client --control PATH --socket PATH\n"
               "       rehome pager stats --control PATH\n\n"
               "Serve the memory of Firecracker restores through userfaultfd (mem_backend\n"
               "{\"backend_type\":\"Uffd\",\"backend_path\":PATH}). Runs in the foreground; every\n"
               "connection on --socket is one restore of the snapshot in --mem-file, any number at\n"
               "once. The file is mapped once, read-only: pages are read once and shared by every\n"
               "client, and the file is never written.\n\n"
               "  --socket PATH        where Firecracker connects (clients without an overlay)\n"
               "  --mem-file FILE      the snapshot memory file\n"
               "  --layout SPEC        gpa -> file offset, for mailbox overlays (default firecracker:<file size>)\n"
               "  --control PATH       control socket for add-client, remove-client, stats\n"
               "  --working-set FILE   copy these pages into each client right after its handshake\n"
               "                       (rehome-workingset 1 format: 'rehome template record-ws', --record-ws)\n"
               "  --record-ws FILE     record the pages the first client faults, written when it ends\n"
               "  --handshake-timeout MS  close connections without a complete handshake by then (10000)\n"
               "  --cache-max SIZE     keep at most SIZE bytes of the file cached (K/M/G; >= 4M; default:\n"
               "                       no bound): older 2 MiB chunks are dropped from the page cache\n"
               "  --spin-us N          after a fault, poll for the next one N us without sleeping\n"
               "                       (0..10000, default 0: burns a core while guests fault)\n\n"
               "add-client makes the pager listen on its own --socket PATH for one Firecracker; that\n"
               "client is served the mailbox page at --gpa patched with REQUEST (the same request, seq\n"
               "and nonce 'rehome patch' would write). It prints the seq and nonce to wait for with\n"
               "'rehome wait-ack'.\n\n"
               REQUEST_HELP
               "\nSignals: SIGTERM/SIGINT stop (exit 0), SIGUSR1 logs the counters.\n"
               "Exit codes: 0 stopped by a signal or command done, 1 failure (a log line says why), 2 usage.\n");
}

static void log_line(void *userdata, const char *line)
{
        struct timespec ts;
        struct tm tm;
        char stamp[32];

        clock_gettime(CLOCK_REALTIME, &ts);
        localtime_r(&ts.tv_sec, &tm);
        strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
        fprintf(stderr, "rehome pager[%d] %s.%03ld: %s\n", (int)getpid(), stamp, ts.tv_nsec / 1000000, line);
}

/* Send one JSON line to the control socket and return the decoded reply. */
static int control_call(const char *control, json_t *cmd, json_t **ret_reply, struct rh_error *err)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_free_ char *text = NULL;
        _cleanup_close_ int fd = -EBADF;
        char buf[64 << 10];
        size_t len = 0;
        json_error_t je;
        json_t *reply;
        struct timeval tv = { .tv_sec = 10 };

        if (strlen(control) >= sizeof(sa.sun_path))
                return rh_error_set(err, -ENAMETOOLONG, "%s: path too long", control);
        strcpy(sa.sun_path, control);
        text = json_dumps(cmd, JSON_COMPACT);
        if (!text)
                return rh_error_set(err, -ENOMEM, "out of memory");
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return rh_error_set(err, -errno, "socket: %s", strerror(errno));
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return rh_error_set(err, -errno, "%s: %s", control, strerror(errno));
        if (write_full(fd, text, strlen(text)) < 0 || write_full(fd, "\n", 1) < 0)
                return rh_error_set(err, -errno, "%s: write: %s", control, strerror(errno));
        while (len < sizeof(buf) - 1) {
                ssize_t k = read(fd, buf + len, sizeof(buf) - 1 - len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return rh_error_set(err, -errno, "%s: read: %s", control, strerror(errno));
                if (k == 0)
                        break;
                len += (size_t)k;
                if (memchr(buf, '\n', len))
                        break;
        }
        reply = json_loadb(buf, len, JSON_DISABLE_EOF_CHECK, &je);
        if (!reply || !json_is_object(reply)) {
                json_decref(reply);
                return rh_error_set(err, -EBADMSG, "%s: bad reply: %s", control, len ? je.text : "no reply");
        }
        if (!json_is_true(json_object_get(reply, "ok"))) {
                const char *e = json_string_value(json_object_get(reply, "error"));
                (void)rh_error_set(err, -EINVAL, "%s", e ? e : "failed");
                json_decref(reply);
                return -EINVAL;
        }
        *ret_reply = reply;
        return 0;
}

static int add_client(int argc, char **argv)
{
        static const struct option options[] = {
                REQUEST_LONG_OPTIONS,
                { "control", required_argument, NULL, OPT_CONTROL },
                { "socket", required_argument, NULL, OPT_SOCKET },
                { "gpa", required_argument, NULL, OPT_GPA },
                { "token", required_argument, NULL, OPT_TOKEN },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *control = NULL, *sock = NULL, *token = NULL;
        struct request_opts ro;
        struct rh_request req;
        struct rh_error err = {};
        _cleanup_free_ char *req_text = NULL;
        json_t *cmd, *jreq, *reply = NULL;
        uint64_t gpa = 0;
        bool has_gpa = false;
        uint8_t tok[RH_TOKEN_LEN];
        char gpa_s[24];
        int c, r;

        request_opts_init(&ro);
        while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
                switch (c) {
                case 'h':
                        help();
                        return EXIT_OK;
                case OPT_CONTROL:
                        control = optarg;
                        continue;
                case OPT_SOCKET:
                        sock = optarg;
                        continue;
                case OPT_GPA:
                        if (parse_u64(optarg, &gpa) < 0 || gpa % RH_MAILBOX_SIZE)
                                return cli_usage_error("pager add-client", "--gpa: not a 4 KiB aligned address: '%s'", optarg);
                        has_gpa = true;
                        continue;
                case OPT_TOKEN:
                        if (parse_token(optarg, tok) < 0)
                                return cli_usage_error("pager add-client", "--token: expected 32 hex digits, got '%s'", optarg);
                        token = optarg;
                        continue;
                }
                r = request_opt(&ro, c, optarg, "pager add-client");
                if (r > 1)
                        return r;
                if (r == 0)
                        return cli_usage_error("pager add-client", "unknown option");
        }
        if (optind != argc)
                return cli_usage_error("pager add-client", "unexpected argument '%s'", argv[optind]);
        if (!control || !sock || !has_gpa)
                return cli_usage_error("pager add-client", "--control, --socket and --gpa are required");
        if ((r = request_finish(&ro, "pager add-client", &req)) != 0)
                return r;
        if (ro.payloads.n_payloads || ro.payloads.n_hypeman)
                return cli_usage_error("pager add-client", "--payload/--hypeman-mailbox: the pager's overlay page cannot carry them");
        req_text = rh_request_to_json(&req, 0);
        jreq = req_text ? json_loads(req_text, 0, NULL) : NULL;
        if (!jreq)
                return cli_fail("pager add-client: out of memory");
        snprintf(gpa_s, sizeof(gpa_s), "0x%" PRIx64, gpa);
        cmd = json_pack("{s:s, s:s, s:s, s:o}", "op", "add-client", "socket", sock, "gpa", gpa_s, "request", jreq);
        if (cmd && token)
                json_object_set_new(cmd, "token", json_string(token));
        if (!cmd)
                return cli_fail("pager add-client: out of memory");
        r = control_call(control, cmd, &reply, &err);
        json_decref(cmd);
        if (r < 0)
                return cli_fail("pager add-client %s: %s", sock, err.msg);
        if (cli.json)
                cli_result(json_incref(reply));
        else
                printf("client socket=%s gpa=%s seq=%" JSON_INTEGER_FORMAT " nonce=%s\n", sock,
                       json_string_value(json_object_get(reply, "gpa")),
                       json_integer_value(json_object_get(reply, "seq")),
                       json_string_value(json_object_get(reply, "nonce")));
        json_decref(reply);
        return EXIT_OK;
}

/* remove-client and stats: --control PATH [--socket PATH]. */
static int simple_call(int argc, char **argv, const char *op)
{
        static const struct option options[] = {
                { "control", required_argument, NULL, OPT_CONTROL },
                { "socket", required_argument, NULL, OPT_SOCKET },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        const char *control = NULL, *sock = NULL;
        char verb[32];
        struct rh_error err = {};
        json_t *cmd, *reply = NULL;
        int c, r;

        snprintf(verb, sizeof(verb), "pager %s", op);
        while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
                switch (c) {
                case 'h':
                        help();
                        return EXIT_OK;
                case OPT_CONTROL:
                        control = optarg;
                        break;
                case OPT_SOCKET:
                        sock = optarg;
                        break;
                default:
                        return cli_usage_error(verb, "unknown option");
                }
        }
        if (optind != argc)
                return cli_usage_error(verb, "unexpected argument '%s'", argv[optind]);
        if (!control)
                return cli_usage_error(verb, "--control is required");
        if (strcmp(op, "remove-client") == 0 && !sock)
                return cli_usage_error(verb, "--socket is required");
        if (strcmp(op, "stats") == 0 && sock)
                return cli_usage_error(verb, "--socket goes with remove-client");
        cmd = sock ? json_pack("{s:s, s:s}", "op", op, "socket", sock) : json_pack("{s:s}", "op", op);
        if (!cmd)
                return cli_fail("%s: out of memory", verb);
        r = control_call(control, cmd, &reply, &err);
        json_decref(cmd);
        if (r < 0)
                return cli_fail("%s: %s", verb, err.msg);
        if (cli.json)
                cli_result(json_incref(reply));
        else if (strcmp(op, "stats") == 0) {
                _cleanup_free_ char *out = json_dumps(reply, JSON_INDENT(2));
                printf("%s\n", out ? out : "{}");
        } else
                printf("removed %s\n", sock);
        json_decref(reply);
        return EXIT_OK;
}

int cmd_pager(int argc, char **argv)
{
        static const struct option options[] = {
                { "socket", required_argument, NULL, OPT_SOCKET },
                { "mem-file", required_argument, NULL, OPT_MEM_FILE },
                { "layout", required_argument, NULL, OPT_LAYOUT },
                { "control", required_argument, NULL, OPT_CONTROL },
                { "working-set", required_argument, NULL, OPT_WORKING_SET },
                { "record-ws", required_argument, NULL, OPT_RECORD_WS },
                { "handshake-timeout", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT },
                { "cache-max", required_argument, NULL, OPT_CACHE_MAX },
                { "spin-us", required_argument, NULL, OPT_SPIN_US },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct pager_config cfg = { .log = log_line };
        struct rh_error err = {};
        int c, r, sig = 0;

        /* argv[0] of a subcommand is what getopt's messages start with. */
        static char sub_argv0[48];
        if (argc >= 2 && strcmp(argv[1], "add-client") == 0) {
                argv[1] = (char *)"rehome pager add-client";
                return add_client(argc - 1, argv + 1);
        }
        if (argc >= 2 && (strcmp(argv[1], "remove-client") == 0 || strcmp(argv[1], "stats") == 0)) {
                const char *op = strcmp(argv[1], "stats") == 0 ? "stats" : "remove-client";
                snprintf(sub_argv0, sizeof(sub_argv0), "rehome pager %s", op);
                argv[1] = sub_argv0;
                return simple_call(argc - 1, argv + 1, op);
        }

        while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
                uint64_t v;
                switch (c) {
                case 'h':
                        help();
                        return EXIT_OK;
                case OPT_SOCKET:
                        cfg.socket_path = optarg;
                        break;
                case OPT_MEM_FILE:
                        cfg.mem_file = optarg;
                        break;
                case OPT_LAYOUT:
                        cfg.layout_spec = optarg;
                        break;
                case OPT_CONTROL:
                        cfg.control_path = optarg;
                        break;
                case OPT_WORKING_SET:
                        cfg.working_set = optarg;
                        break;
                case OPT_RECORD_WS:
                        cfg.record_ws = optarg;
                        break;
                case OPT_HANDSHAKE_TIMEOUT:
                        if (parse_u64(optarg, &v) < 0 || v == 0 || v > 3600000)
                                return cli_usage_error("pager", "--handshake-timeout: expected 1..3600000 ms, got '%s'", optarg);
                        cfg.handshake_timeout_ms = (unsigned)v;
                        break;
                case OPT_CACHE_MAX:
                        if (parse_u64(optarg, &v) < 0 || v < (4u << 20))
                                return cli_usage_error("pager", "--cache-max: expected a size of at least 4M, got '%s'", optarg);
                        cfg.cache_max_bytes = v;
                        break;
                case OPT_SPIN_US:
                        if (parse_u64(optarg, &v) < 0 || v > 10000)
                                return cli_usage_error("pager", "--spin-us: expected 0..10000, got '%s'", optarg);
                        cfg.spin_us = (unsigned)v;
                        break;
                default:
                        return cli_usage_error("pager", "unknown option");
                }
        }
        if (optind != argc)
                return cli_usage_error("pager", "unexpected argument '%s'", argv[optind]);
        if (!cfg.socket_path || !cfg.mem_file)
                return cli_usage_error("pager", "--socket and --mem-file are required");
        if (cfg.control_path && strcmp(cfg.control_path, cfg.socket_path) == 0)
                return cli_usage_error("pager", "--control and --socket must differ");

        r = pager_run(&cfg, &sig, &err);
        if (r < 0) {
                fprintf(stderr, "rehome pager[%d]: fatal: %s\n", (int)getpid(), err.msg);
                cli_error_note("pager: %s", err.msg);
                return EXIT_FAIL;
        }
        if (cli.json)
                cli_result(json_pack("{s:s, s:s?}", "socket", cfg.socket_path, "stopped_by",
                                     sig ? sigabbrev_np(sig) : NULL));
        return EXIT_OK;
}
