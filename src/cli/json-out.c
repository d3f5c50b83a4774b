/* SPDX-License-Identifier: MIT */
/*
 * The one place the CLI's --json contract lives (docs/JSON.md): verbs hand
 * their result document to cli_result() instead of printing it, errors
 * reported through cli_fail()/cli_usage_error() are remembered, and after
 * the verb returns main() calls cli_json_finish(), which prints exactly one
 * document on stdout: {"schema_version": 1, "verb": ..., <the result>},
 * with "error": {"code", "exit", "message"} added when the exit code is not
 * 0. Bitmasks get their names next to them ("applied" -> "applied_names").
 * While a --json verb runs its stdout is a memfd: text a verb prints there
 * (its --help) becomes {"text": ...} when it produced no document, and
 * goes to stderr otherwise, so stdout never mixes the two (more than 64 MiB
 * of such text is dropped: no verb prints that much).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <jansson.h>

#include "cleanup.h"
#include "cli.h"
#include "io.h"

static json_t *result;          /* the verb's document (an object), owned here */
static char error_message[1024]; /* the first error the verb reported */
static int saved_stdout = -1;   /* the real stdout while a --json verb runs */
static int capture_fd = -1;     /* the memfd standing in for it */

const char *const cli_cap_names[32] = {
        [0] = "vmclock",   [1] = "vmclock-spin", [2] = "vmgenid-uevent", [3] = "vmgenid-kmsg", [4] = "poll",
        [8] = "ipv6",      [9] = "routes",       [10] = "dns",           [11] = "hostname",    [12] = "announce",
        [13] = "udp-ack",  [14] = "prearm",      [15] = "clock",         [16] = "machine-id",  [17] = "hooks",
        [18] = "payloads",
};

const char *const cli_applied_names[32] = {
        [0] = "mac",   [1] = "mtu",      [2] = "addrs",    [3] = "routes", [4] = "neigh",      [5] = "link-up",
        [6] = "announce", [7] = "hostname", [8] = "dns", [9] = "clock",  [10] = "machine-id", [11] = "hooks",
        [12] = "payloads", [16] = "networkd", [17] = "ifupdown", [18] = "hosts", [19] = "resolved", [20] = "reloaded",
};

json_t *cli_bits_json(uint32_t bits, const char *const names[32])
{
        json_t *arr = json_array();

        for (unsigned i = 0; i < 32 && arr; i++) {
                char unknown[16];
                if (!(bits & (1u << i)))
                        continue;
                if (!names[i])
                        snprintf(unknown, sizeof(unknown), "bit%u", i);
                json_array_append_new(arr, json_string(names[i] ? names[i] : unknown));
        }
        return arr;
}

void cli_json_begin(void)
{
        int fd;

        if (capture_fd >= 0)
                return;
        fflush(stdout);
        fd = memfd_create("rehome-stdout", MFD_CLOEXEC);
        if (fd < 0)
                return; /* no capture: verbs still print only their document */
        saved_stdout = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
        if (saved_stdout < 0 || dup2(fd, STDOUT_FILENO) < 0) {
                close(fd);
                if (saved_stdout >= 0)
                        close(saved_stdout);
                saved_stdout = -1;
                return;
        }
        capture_fd = fd;
}

void cli_json_enable(void)
{
        cli.json = true;
        cli_json_begin();
}

void cli_result(json_t *doc)
{
        json_decref(result);
        result = doc;
}

void cli_error_note(const char *fmt, ...)
{
        va_list ap;

        if (error_message[0])
                return;
        va_start(ap, fmt);
        vsnprintf(error_message, sizeof(error_message), fmt, ap);
        va_end(ap);
}

void cli_error_notev(const char *fmt, va_list ap)
{
        if (!error_message[0])
                vsnprintf(error_message, sizeof(error_message), fmt, ap);
}

/* The two ways a verb reports a failure: the line on stderr, and the reason for the document. */
int cli_usage_error(const char *verb, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        fprintf(stderr, "rehome %s: %s\nTry 'rehome %s --help'\n", verb, msg, verb);
        cli_error_note("%s: %s", verb, msg);
        return EXIT_USAGE;
}

int cli_fail(const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "rehome: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        va_start(ap, fmt);
        cli_error_notev(fmt, ap);
        va_end(ap);
        return EXIT_FAIL;
}

/* What the verb printed to the captured stdout (NUL-terminated), and the real stdout back. */
static char *end_capture(size_t *ret_len)
{
        char *text = NULL;
        size_t n = 0;

        fflush(stdout);
        if (capture_fd < 0) {
                *ret_len = 0;
                return NULL;
        }
        off_t size = lseek(capture_fd, 0, SEEK_END);
        if (size > 0 && size < (64 << 20) && (text = malloc((size_t)size + 1))) {
                ssize_t k = pread(capture_fd, text, (size_t)size, 0);
                n = k > 0 ? (size_t)k : 0;
                text[n] = '\0';
        }
        dup2(saved_stdout, STDOUT_FILENO);
        close(saved_stdout);
        close(capture_fd);
        saved_stdout = capture_fd = -1;
        *ret_len = n;
        return text;
}

/* A JSON string of text that may hold bytes that are not UTF-8 (they become '?'). */
static json_t *text_json(char *text, size_t len)
{
        json_t *s = json_stringn(text, len);

        if (s)
                return s;
        for (size_t i = 0; i < len; i++)
                if ((unsigned char)text[i] >= 0x80 || text[i] == '\0')
                        text[i] = '?';
        return json_stringn(text, len);
}

/* Add "<key>_names" next to every integer "applied" and "caps", at any depth. */
static void add_bit_names(json_t *v)
{
        static const struct {
                const char *key, *names_key;
                const char *const *names;
        } masks[] = {
                {"applied", "applied_names", cli_applied_names},
                {"caps", "caps_names", cli_cap_names},
                {"agent_caps", "agent_caps_names", cli_cap_names},
        };
        const char *k;
        json_t *x;
        size_t i;

        if (json_is_array(v)) {
                json_array_foreach(v, i, x)
                        add_bit_names(x);
                return;
        }
        if (!json_is_object(v))
                return;
        json_object_foreach(v, k, x)
                add_bit_names(x);
        for (i = 0; i < ELEMENTSOF(masks); i++) {
                x = json_object_get(v, masks[i].key);
                if (json_is_integer(x) && !json_object_get(v, masks[i].names_key))
                        json_object_set_new(v, masks[i].names_key,
                                            cli_bits_json((uint32_t)json_integer_value(x), masks[i].names));
        }
}

static const char *exit_code_name(int rc)
{
        switch (rc) {
        case EXIT_FAIL:
                return "failure";
        case EXIT_USAGE:
                return "usage";
        case EXIT_TIMEOUT:
                return "timeout";
        }
        return rc > 128 ? "interrupted" : "failure";
}

int cli_json_finish(const char *verb, int rc)
{
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        json_t *doc;

        if (!cli.json) {
                error_message[0] = '\0';
                return rc;
        }
        text = end_capture(&len);
        doc = json_pack("{s:i, s:s?}", "schema_version", CLI_JSON_SCHEMA_VERSION, "verb", verb);
        if (result && json_is_object(result))
                json_object_update(doc, result);
        else if (result) /* an array or scalar: never done by a verb, kept rather than dropped */
                json_object_set(doc, "result", result);
        if (len && !result && rc == EXIT_OK)
                json_object_set_new(doc, "text", text_json(text, len));
        else if (len)
                (void)!write_full(STDERR_FILENO, text, len); /* stdout carries the document only */
        if (rc != EXIT_OK)
                json_object_set_new(doc, "error",
                                    json_pack("{s:s, s:i, s:s}", "code", exit_code_name(rc), "exit", rc, "message",
                                              error_message[0] ? error_message
                                                               : "failed (the reason is on stderr)"));
        add_bit_names(doc);
        json_dumpf(doc, stdout, JSON_INDENT(2));
        putchar('\n');
        fflush(stdout);
        json_decref(doc);
        json_decref(result);
        result = NULL;
        error_message[0] = '\0';
        return rc;
}
