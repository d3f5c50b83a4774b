/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the CLI's --json contract (src/cli/json-out.c): the one
 * document cli_json_finish() prints for a result, a failure, a result with
 * an error, text a verb printed under --json (kept as "text" or moved to
 * stderr), the first error reason winning, and the names next to bitmasks
 * at any depth, "bitN" for bits without a name. stdout and stderr are
 * memfds here, read back and parsed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "src/cli/cli.h"

struct cli_globals cli;

static int out_fd = -1, err_fd = -1, saved_out = -1, saved_err = -1;

static int setup(void **state)
{
        fflush(stdout);
        fflush(stderr);
        out_fd = memfd_create("stdout", 0);
        err_fd = memfd_create("stderr", 0);
        saved_out = dup(STDOUT_FILENO);
        saved_err = dup(STDERR_FILENO);
        assert_true(out_fd >= 0 && err_fd >= 0 && saved_out >= 0 && saved_err >= 0);
        assert_int_equal(dup2(out_fd, STDOUT_FILENO), STDOUT_FILENO);
        assert_int_equal(dup2(err_fd, STDERR_FILENO), STDERR_FILENO);
        memset(&cli, 0, sizeof(cli));
        cli.json = true;
        return 0;
}

static int teardown(void **state)
{
        fflush(stdout);
        fflush(stderr);
        dup2(saved_out, STDOUT_FILENO);
        dup2(saved_err, STDERR_FILENO);
        close(saved_out);
        close(saved_err);
        close(out_fd);
        close(err_fd);
        return 0;
}

static char *slurp(int fd)
{
        off_t n = lseek(fd, 0, SEEK_END);
        char *s = calloc(1, (size_t)n + 1);

        assert_non_null(s);
        assert_int_equal(pread(fd, s, (size_t)n, 0), n);
        return s;
}

/* stdout must be exactly one JSON document (jansson rejects anything after it). */
static json_t *document(void)
{
        char *text = slurp(out_fd);
        json_error_t jerr;
        json_t *doc = json_loads(text, 0, &jerr);

        if (!doc)
                fail_msg("stdout is not one JSON document (%s): '%s'", jerr.text, text);
        free(text);
        return doc;
}

static void test_result(void **state)
{
        cli_json_begin();
        cli_result(json_pack("{s:s, s:{s:i}}", "gpa", "0x3ff0000", "ack", "applied", 5));
        assert_int_equal(cli_json_finish("wait-ack", 0), 0);

        json_t *doc = document();
        assert_int_equal(json_integer_value(json_object_get(doc, "schema_version")), 1);
        assert_string_equal(json_string_value(json_object_get(doc, "verb")), "wait-ack");
        assert_string_equal(json_string_value(json_object_get(doc, "gpa")), "0x3ff0000");
        assert_null(json_object_get(doc, "error"));
        /* 5 = RH_APPLIED_MAC | RH_APPLIED_ADDRS, named one level down. */
        json_t *names = json_object_get(json_object_get(doc, "ack"), "applied_names");
        assert_int_equal(json_array_size(names), 2);
        assert_string_equal(json_string_value(json_array_get(names, 0)), "mac");
        assert_string_equal(json_string_value(json_array_get(names, 1)), "addrs");
        json_decref(doc);
}

static void test_failure_first_reason(void **state)
{
        cli_json_begin();
        cli_fail("clone rm: no clone 'c9'");
        cli_fail("clone rm: no clone 'c10'");
        assert_int_equal(cli_json_finish("clone", EXIT_FAIL), EXIT_FAIL);

        json_t *doc = document();
        json_t *e = json_object_get(doc, "error");
        assert_string_equal(json_string_value(json_object_get(e, "code")), "failure");
        assert_int_equal(json_integer_value(json_object_get(e, "exit")), 1);
        assert_string_equal(json_string_value(json_object_get(e, "message")), "clone rm: no clone 'c9'");
        assert_string_equal(json_string_value(json_object_get(doc, "verb")), "clone");
        json_decref(doc);
        /* stderr got both human lines. */
        char *err = slurp(err_fd);
        assert_string_equal(err, "rehome: clone rm: no clone 'c9'\nrehome: clone rm: no clone 'c10'\n");
        free(err);
}

static void test_usage_and_timeout_codes(void **state)
{
        cli_json_begin();
        assert_int_equal(cli_usage_error("patch", "--ip: expected ADDRESS/PREFIX, got '%s'", "x"), EXIT_USAGE);
        cli_json_finish(NULL, EXIT_USAGE);
        json_t *doc = document();
        json_t *e = json_object_get(doc, "error");
        assert_true(json_is_null(json_object_get(doc, "verb")));
        assert_string_equal(json_string_value(json_object_get(e, "code")), "usage");
        assert_string_equal(json_string_value(json_object_get(e, "message")),
                            "patch: --ip: expected ADDRESS/PREFIX, got 'x'");
        json_decref(doc);
}

static void test_result_kept_with_error(void **state)
{
        cli_json_begin();
        cli_result(json_pack("{s:s, s:b}", "status", "timeout", "saw_read", 1));
        cli_error_note("wait-ack: no ack for nonce %016x within %d ms", 0x55, 100);
        cli_json_finish("wait-ack", EXIT_TIMEOUT);
        json_t *doc = document();
        json_t *e = json_object_get(doc, "error");
        assert_string_equal(json_string_value(json_object_get(doc, "status")), "timeout");
        assert_true(json_is_true(json_object_get(doc, "saw_read")));
        assert_string_equal(json_string_value(json_object_get(e, "code")), "timeout");
        assert_int_equal(json_integer_value(json_object_get(e, "exit")), 3);
        assert_string_equal(json_string_value(json_object_get(e, "message")),
                            "wait-ack: no ack for nonce 0000000000000055 within 100 ms");
        json_decref(doc);
}

static void test_text_without_result(void **state)
{
        cli_json_begin();
        printf("Usage: rehome locate ...\n");
        cli_json_finish("locate", EXIT_OK);
        json_t *doc = document();
        assert_string_equal(json_string_value(json_object_get(doc, "text")), "Usage: rehome locate ...\n");
        json_decref(doc);
}

static void test_text_with_result_goes_to_stderr(void **state)
{
        cli_json_begin();
        printf("stray line\n");
        cli_result(json_pack("{s:s}", "removed", "tpl"));
        cli_json_finish("template", EXIT_OK);
        json_t *doc = document();
        assert_null(json_object_get(doc, "text"));
        assert_string_equal(json_string_value(json_object_get(doc, "removed")), "tpl");
        json_decref(doc);
        char *err = slurp(err_fd);
        assert_string_equal(err, "stray line\n");
        free(err);
}

static void test_not_utf8_text(void **state)
{
        cli_json_begin();
        printf("caf\xe9\n");
        cli_json_finish("clone", EXIT_OK);
        json_t *doc = document();
        assert_string_equal(json_string_value(json_object_get(doc, "text")), "caf?\n");
        json_decref(doc);
}

static void test_no_json_prints_nothing(void **state)
{
        cli.json = false;
        cli_fail("net show: no clone network");
        assert_int_equal(cli_json_finish("net", EXIT_FAIL), EXIT_FAIL);
        char *out = slurp(out_fd);
        assert_string_equal(out, "");
        free(out);
}

static void test_bits(void **state)
{
        json_t *a = cli_bits_json((1u << 4) | (1u << 13) | (1u << 20), cli_cap_names);

        assert_int_equal(json_array_size(a), 3);
        assert_string_equal(json_string_value(json_array_get(a, 0)), "poll");
        assert_string_equal(json_string_value(json_array_get(a, 1)), "udp-ack");
        assert_string_equal(json_string_value(json_array_get(a, 2)), "bit20");
        json_decref(a);
        a = cli_bits_json(0, cli_applied_names);
        assert_int_equal(json_array_size(a), 0);
        json_decref(a);
}

static void test_names_everywhere(void **state)
{
        cli_json_begin();
        cli_result(json_pack("{s:[{s:{s:i}}, {s:{s:i}}], s:{s:i, s:s}, s:i}", "forks", "ack", "applied", 1, "ack",
                             "applied", 2048, "arm", "caps", 1, "note", "caps is a string here: untouched",
                             "agent_caps", 1 << 17));
        cli_json_finish("fork", EXIT_OK);
        json_t *doc = document();
        json_t *forks = json_object_get(doc, "forks");
        assert_string_equal(json_string_value(json_array_get(
                                    json_object_get(json_object_get(json_array_get(forks, 0), "ack"), "applied_names"), 0)),
                            "mac");
        assert_string_equal(json_string_value(json_array_get(
                                    json_object_get(json_object_get(json_array_get(forks, 1), "ack"), "applied_names"), 0)),
                            "hooks");
        assert_string_equal(json_string_value(json_array_get(
                                    json_object_get(json_object_get(doc, "arm"), "caps_names"), 0)),
                            "vmclock");
        assert_string_equal(json_string_value(json_array_get(json_object_get(doc, "agent_caps_names"), 0)), "hooks");
        json_decref(doc);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_result, setup, teardown),
                cmocka_unit_test_setup_teardown(test_failure_first_reason, setup, teardown),
                cmocka_unit_test_setup_teardown(test_usage_and_timeout_codes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_result_kept_with_error, setup, teardown),
                cmocka_unit_test_setup_teardown(test_text_without_result, setup, teardown),
                cmocka_unit_test_setup_teardown(test_text_with_result_goes_to_stderr, setup, teardown),
                cmocka_unit_test_setup_teardown(test_not_utf8_text, setup, teardown),
                cmocka_unit_test_setup_teardown(test_no_json_prints_nothing, setup, teardown),
                cmocka_unit_test(test_bits),
                cmocka_unit_test_setup_teardown(test_names_everywhere, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
