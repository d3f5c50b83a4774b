/* SPDX-License-Identifier: MIT */
/*
 * Shared declarations of the rehome CLI: the verb functions (one
 * cmd-<verb>.c each), global options, and exit codes.
 */
#ifndef REHOME_CLI_H
#define REHOME_CLI_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

/* Exit codes (documented in --help and the README). */
enum {
        EXIT_OK = 0,
        EXIT_FAIL = 1,
        EXIT_USAGE = 2,
        EXIT_TIMEOUT = 3,
};

struct cli_globals {
        bool json;      /* --json: exactly one JSON document on stdout */
        bool verbose;   /* -v: more progress on stderr */
        const char *state_dir; /* --state-dir, default /var/lib/rehome */
};

extern struct cli_globals cli;

/* Print "rehome <verb>: <msg>\nTry 'rehome <verb> --help'" to stderr; returns EXIT_USAGE. */
int cli_usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "rehome: <msg>" to stderr; returns EXIT_FAIL. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * After a fork or template creation: if a signal interrupted it, print one
 * line ("rehome: VERB: interrupted by SIGINT: WHAT") and return 128 +
 * signal; else return -1.
 */
int cli_interrupted(const char *verb, const char *what);
/* Progress lines on stderr (progress.c): when it is a terminal, or with -v; silent otherwise. */
bool cli_progress(void);
/* On a terminal only: "  ... STEP N s" every second until cli_ticker_stop() (one at a time). */
void cli_ticker_start(const char *step);
void cli_ticker_stop(void);
/* Reconcile the state directory (vmm_reconcile) and say on stderr what it ended; never fails the verb. */
void cli_reconcile(void);

/*
 * The --json contract (json-out.c, docs/JSON.md). A verb builds its result
 * as one JSON object and hands it to cli_result() (which steals it); it
 * never prints JSON itself. main() calls cli_json_begin() before the verb
 * (stdout is captured while it runs) and cli_json_finish() after it, which
 * prints the one document: schema_version, verb, the result, and "error"
 * when the exit code is not 0. A verb that parses its own --json calls
 * cli_json_enable().
 */
#define CLI_JSON_SCHEMA_VERSION 1
void cli_json_begin(void);
void cli_json_enable(void);
void cli_result(json_t *doc);
/* Remember the reason of a failure for the error document (the first one wins); prints nothing. */
void cli_error_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_error_notev(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
/* Print the document if --json (stdout back to the terminal first); returns @rc. */
int cli_json_finish(const char *verb, int rc);
/* Names of the RH_CAP_* and RH_APPLIED_* bits (NULL: unnamed), and a bitmask as an array of names. */
extern const char *const cli_cap_names[32];
extern const char *const cli_applied_names[32];
json_t *cli_bits_json(uint32_t bits, const char *const names[32]);

/* Verb entry points: argc/argv start at the verb name (argv[0] == verb). */
int cmd_locate(int argc, char **argv);
int cmd_patch(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_wait_ack(int argc, char **argv);
/* The QEMU fork engine's verbs (src/vmm). */
int cmd_template(int argc, char **argv);
int cmd_fork(int argc, char **argv);
int cmd_clone(int argc, char **argv);
int cmd_net(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_doctor(int argc, char **argv);
int cmd_bench(int argc, char **argv);
/* rehome image build (cmd-image.c). */
int cmd_image(int argc, char **argv);
/* The userfaultfd page server (src/pager) and its control commands. */
int cmd_pager(int argc, char **argv);
/* rehome template record-ws (cmd-bench.c), dispatched by cmd_template. */
int cmd_template_record_ws(int argc, char **argv);

#endif
