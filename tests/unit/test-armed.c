/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the parser of the agent's armed line (src/vmm/armed.c),
 * untrusted console text: the agent's own lines, then truncated, oversized,
 * bad-hex, unaligned, out-of-range, duplicated, garbage and control-character
 * inputs, each rejected with the fault named and the out-parameters untouched.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "src/vmm/armed.h"

#define TOKEN_HEX "00112233445566778899aabbccddeeff"

static const uint8_t token_bytes[RH_TOKEN_LEN] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                                  0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};

/* Out-parameters prefilled with a canary, so "untouched" can be checked. */
struct out {
        uint64_t gpa;
        uint8_t token[RH_TOKEN_LEN];
        char abi[16];
};

static void out_init(struct out *o)
{
        o->gpa = 0x5a5a5a5a5a5a5a5aull;
        memset(o->token, 0x5a, sizeof(o->token));
        memset(o->abi, 'Z', sizeof(o->abi) - 1);
        o->abi[sizeof(o->abi) - 1] = '\0';
}

static void expect_bad(const char *line, const char *msg)
{
        struct out o, canary;
        struct rh_error err = {0};

        out_init(&o);
        out_init(&canary);
        assert_int_equal(vmm_armed_parse(line, &o.gpa, o.token, o.abi, sizeof(o.abi), &err), -EBADMSG);
        assert_int_equal(err.code, EBADMSG);
        if (strcmp(err.msg, msg) != 0)
                fail_msg("line '%s': error '%s', want '%s'", line, err.msg, msg);
        assert_memory_equal(&o, &canary, sizeof(o));
}

static void test_agent_lines(void **state)
{
        struct out o;
        struct rh_error err = {0};

        (void)state;
        out_init(&o);
        assert_int_equal(vmm_armed_parse("rehome-agent: armed gpa=0x9dee000 token=" TOKEN_HEX " abi=1.0",
                                         &o.gpa, o.token, o.abi, sizeof(o.abi), &err),
                         0);
        assert_int_equal(o.gpa, 0x9dee000);
        assert_memory_equal(o.token, token_bytes, RH_TOKEN_LEN);
        assert_string_equal(o.abi, "1.0");
        assert_int_equal(err.code, 0); /* untouched on success */

        /* Upper-case hex, fields in another order, the largest gpa, a 15-character abi. */
        out_init(&o);
        assert_int_equal(
                vmm_armed_parse(
                        "rehome-agent: armed abi=123456789012345 token=00112233445566778899AABBCCDDEEFF "
                        "gpa=0xFFFFFFFFFF000",
                        &o.gpa, o.token, o.abi, sizeof(o.abi), &err),
                0);
        assert_int_equal(o.gpa, 0xffffffffff000ull);
        assert_memory_equal(o.token, token_bytes, RH_TOKEN_LEN);
        assert_string_equal(o.abi, "123456789012345");

        /* Leading zeros up to 16 digits; gpa 0 is page aligned. */
        out_init(&o);
        assert_int_equal(vmm_armed_parse("rehome-agent: armed gpa=0x0000000000000000 token=" TOKEN_HEX
                                         " abi=v1",
                                         &o.gpa, o.token, o.abi, sizeof(o.abi), &err),
                         0);
        assert_int_equal(o.gpa, 0);
        assert_string_equal(o.abi, "v1");

        /* A newer agent's extra field is skipped. */
        out_init(&o);
        assert_int_equal(vmm_armed_parse("rehome-agent: armed gpa=0x1000 token=" TOKEN_HEX
                                         " abi=1.1 caps=0x7",
                                         &o.gpa, o.token, o.abi, sizeof(o.abi), &err),
                         0);
        assert_int_equal(o.gpa, 0x1000);
        assert_string_equal(o.abi, "1.1");
}

static void test_truncated(void **state)
{
        static const char full[] = "rehome-agent: armed gpa=0x9dee000 token=" TOKEN_HEX " abi=1.0";
        char cut[sizeof(full)];

        (void)state;
        expect_bad("", "armed line: does not start with 'rehome-agent: armed'");
        expect_bad("rehome-agent: arme", "armed line: does not start with 'rehome-agent: armed'");
        expect_bad("rehome-agent: armed", "armed line: no gpa");
        expect_bad("rehome-agent: armed gpa=0x9dee000", "armed line: no token");
        expect_bad("rehome-agent: armed gpa=0x9dee000 token=" TOKEN_HEX, "armed line: no abi");
        expect_bad("rehome-agent: armed gpa=0x9dee000 token=" TOKEN_HEX " abi=",
                   "armed line: abi has 0 characters, not 1..15");
        expect_bad("rehome-agent: armed gpa=0x9dee000 token=0011223344",
                   "armed line: token has 10 characters, not 32 hex digits");
        expect_bad("rehome-agent: armed gpa=0x token=" TOKEN_HEX " abi=1.0", "armed line: gpa is not 0x-hex");
        expect_bad("rehome-agent: armed gpa= token=" TOKEN_HEX " abi=1.0", "armed line: gpa is not 0x-hex");

        /* Every prefix of a good line cut before its abi value is rejected
         * and writes nothing (a cut inside the value is a shorter abi). */
        for (size_t n = 0; n <= sizeof(full) - 1 - strlen("1.0"); n++) {
                struct out o, canary;
                struct rh_error err = {0};

                memcpy(cut, full, n);
                cut[n] = '\0';
                out_init(&o);
                out_init(&canary);
                assert_int_equal(vmm_armed_parse(cut, &o.gpa, o.token, o.abi, sizeof(o.abi), &err), -EBADMSG);
                assert_memory_equal(&o, &canary, sizeof(o));
        }
}

static void test_oversized(void **state)
{
        char line[VMM_ARMED_LINE_MAX + 64];
        int n;

        (void)state;
        /* 17 hex digits: more than 64 bits could hold. */
        expect_bad("rehome-agent: armed gpa=0x10000000000000000 token=" TOKEN_HEX " abi=1.0",
                   "armed line: gpa has 17 hex digits, at most 16");
        expect_bad("rehome-agent: armed gpa=0x9dee000 token=" TOKEN_HEX "00 abi=1.0",
                   "armed line: token has 34 characters, not 32 hex digits");
        expect_bad("rehome-agent: armed gpa=0x9dee000 token=" TOKEN_HEX " abi=1234567890123456",
                   "armed line: abi has 16 characters, not 1..15");

        /* A line just at the cap parses; one byte more does not. */
        n = snprintf(line, sizeof(line),
                     "rehome-agent: armed gpa=0x9dee000 token=" TOKEN_HEX " abi=1.0 pad=");
        memset(line + n, 'x', VMM_ARMED_LINE_MAX - (size_t)n);
        line[VMM_ARMED_LINE_MAX] = '\0';
        {
                struct out o;
                out_init(&o);
                assert_int_equal(vmm_armed_parse(line, &o.gpa, o.token, o.abi, sizeof(o.abi), NULL), 0);
                assert_int_equal(o.gpa, 0x9dee000);
        }
        line[VMM_ARMED_LINE_MAX] = 'x';
        line[VMM_ARMED_LINE_MAX + 1] = '\0';
        expect_bad(line, "armed line: longer than 256 bytes");

        /* abi must fit the caller's buffer too. */
        {
                struct out o, canary;
                struct rh_error err = {0};
                out_init(&o);
                out_init(&canary);
                assert_int_equal(vmm_armed_parse("rehome-agent: armed gpa=0x1000 token=" TOKEN_HEX
                                                 " abi=1.0.0",
                                                 &o.gpa, o.token, o.abi, 4, &err),
                                 -EBADMSG);
                assert_string_equal(err.msg, "armed line: abi has 5 characters, not 1..3");
                assert_memory_equal(&o, &canary, sizeof(o));
        }
}

static void test_bad_hex(void **state)
{
        (void)state;
        expect_bad("rehome-agent: armed gpa=9dee000 token=" TOKEN_HEX " abi=1.0",
                   "armed line: gpa is not 0x-hex");
        expect_bad("rehome-agent: armed gpa=0X9dee000 token=" TOKEN_HEX " abi=1.0",
                   "armed line: gpa is not 0x-hex");
        expect_bad("rehome-agent: armed gpa=0x9deg000 token=" TOKEN_HEX " abi=1.0",
                   "armed line: gpa is not 0x-hex");
        expect_bad("rehome-agent: armed gpa=0x-1000 token=" TOKEN_HEX " abi=1.0",
                   "armed line: gpa is not 0x-hex");
        expect_bad("rehome-agent: armed gpa=0x+1000 token=" TOKEN_HEX " abi=1.0",
                   "armed line: gpa is not 0x-hex");
        expect_bad("rehome-agent: armed gpa=0x9dee000, token=" TOKEN_HEX " abi=1.0",
                   "armed line: gpa is not 0x-hex");
        expect_bad("rehome-agent: armed gpa=0x9dee000 token=00112233445566778899aabbccddeefg abi=1.0",
                   "armed line: token is not hex");
        expect_bad("rehome-agent: armed gpa=0x9dee000 token=0x112233445566778899aabbccddeeff abi=1.0",
                   "armed line: token is not hex");
        /* sscanf("%2x") would take " f" as 0xf: a space inside the token is no digit. */
        expect_bad("rehome-agent: armed gpa=0x9dee000 token=00112233445566778899aabbccddee f abi=1.0",
                   "armed line: token has 30 characters, not 32 hex digits");
}

static void test_unaligned_and_range(void **state)
{
        (void)state;
        expect_bad("rehome-agent: armed gpa=0x9dee001 token=" TOKEN_HEX " abi=1.0",
                   "armed line: gpa 0x9dee001 not page aligned");
        expect_bad("rehome-agent: armed gpa=0x9dee800 token=" TOKEN_HEX " abi=1.0",
                   "armed line: gpa 0x9dee800 not page aligned");
        expect_bad("rehome-agent: armed gpa=0x10000000000000 token=" TOKEN_HEX " abi=1.0",
                   "armed line: gpa 0x10000000000000 beyond 52 bits");
        expect_bad("rehome-agent: armed gpa=0xfffffffffffff000 token=" TOKEN_HEX " abi=1.0",
                   "armed line: gpa 0xfffffffffffff000 beyond 52 bits");
}

static void test_duplicates_and_garbage(void **state)
{
        (void)state;
        expect_bad("rehome-agent: armed gpa=0x1000 gpa=0x2000 token=" TOKEN_HEX " abi=1.0",
                   "armed line: gpa given twice");
        expect_bad("rehome-agent: armed gpa=0x1000 token=" TOKEN_HEX " token=" TOKEN_HEX " abi=1.0",
                   "armed line: token given twice");
        expect_bad("rehome-agent: armed gpa=0x1000 token=" TOKEN_HEX " abi=1.0 abi=1.0",
                   "armed line: abi given twice");
        expect_bad("rehome-agent: armedgpa=0x1000 token=" TOKEN_HEX " abi=1.0",
                   "armed line: no space before the field at offset 19");
        expect_bad("rehome-agent: armed  gpa=0x1000 token=" TOKEN_HEX " abi=1.0",
                   "armed line: empty field at offset 20");
        expect_bad("rehome-agent: armed gpa=0x1000 token=" TOKEN_HEX " abi=1.0 ",
                   "armed line: empty field at offset 78");
        expect_bad("rehome-agent: armed gpa=0x1000 token=" TOKEN_HEX " abi=1.0 junk",
                   "armed line: field at offset 78 is not key=value");
        expect_bad("rehome-agent: armed gpa=0x1000 =x token=" TOKEN_HEX " abi=1.0",
                   "armed line: field at offset 31 is not key=value");
        expect_bad("rehome-agent: armed gpa=0x1000 GPA=0x2000 token=" TOKEN_HEX " abi=1.0",
                   "armed line: field at offset 31 is not key=value");
        expect_bad("xrehome-agent: armed gpa=0x1000 token=" TOKEN_HEX " abi=1.0",
                   "armed line: does not start with 'rehome-agent: armed'");
        /* The old strstr parser found "gpa=0x" and "token=" anywhere. */
        expect_bad("rehome-agent: armed xgpa=0x1000 xtoken=" TOKEN_HEX " abi=1.0", "armed line: no gpa");
        expect_bad("rehome-agent: armed note=gpa=0x1000 token=" TOKEN_HEX " abi=1.0", "armed line: no gpa");
}

static void test_control_characters(void **state)
{
        (void)state;
        expect_bad("rehome-agent: armed gpa=0x1000 token=" TOKEN_HEX " abi=1.0\r",
                   "armed line: byte 0x0d at offset 77 is not printable");
        expect_bad("rehome-agent: armed gpa=0x1000 token=" TOKEN_HEX " abi=1.0\n",
                   "armed line: byte 0x0a at offset 77 is not printable");
        expect_bad("rehome-agent: armed gpa=0x1000 token=" TOKEN_HEX " abi=\x1b[31m",
                   "armed line: byte 0x1b at offset 74 is not printable");
        expect_bad("rehome-agent: armed\tgpa=0x1000 token=" TOKEN_HEX " abi=1.0",
                   "armed line: byte 0x09 at offset 19 is not printable");
        expect_bad("rehome-agent: armed gpa=0x1000 token=" TOKEN_HEX " abi=1.\x7f",
                   "armed line: byte 0x7f at offset 76 is not printable");
        expect_bad("rehome-agent: armed gpa=0x1000 token=" TOKEN_HEX " abi=1.\xc3\xa9",
                   "armed line: byte 0xc3 at offset 76 is not printable");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_agent_lines),         cmocka_unit_test(test_truncated),
                cmocka_unit_test(test_oversized),           cmocka_unit_test(test_bad_hex),
                cmocka_unit_test(test_unaligned_and_range), cmocka_unit_test(test_duplicates_and_garbage),
                cmocka_unit_test(test_control_characters),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
