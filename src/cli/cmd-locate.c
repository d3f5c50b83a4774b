/* SPDX-License-Identifier: MIT */
/*
 * rehome locate: find a mailbox in guest memory. With --gpa (the address
 * the agent published) one page is read and verified: O(1). Without it, or
 * with --scan when the hint fails, every page start is checked.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "opts.h"
#include "rehome/ack.h"
#include "src/lib/handle-cleanup.h"
#include "unaligned.h"

enum { OPT_FORMAT = OPT_VERB_BASE };

static void help(void)
{
        printf("Usage: rehome locate (--file PATH | --pid PID --mem-file PATH) [--layout SPEC]\n"
               "                     [--format rehome|v1] [--gpa ADDR] [--token HEX|TOKEN] [--scan]\n\n"
               "Find the mailbox page and print its guest-physical address and arm header.\n\n"
               TARGET_HELP
               "  --format rehome|v1  rehome's mailbox (default) or hypeman's V1 mailbox\n"
               "  --scan              scan if --gpa is absent or does not verify\n"
               "  -h, --help          this help\n\n"
               "Without --gpa the whole of guest RAM is scanned: page starts for a rehome\n"
               "mailbox; every byte offset for a V1 marker (magic + --token, any token when\n"
               "--token is absent), as hypeman's host does. The V1 gpa printed is the marker's\n"
               "exact address, which --gpa then accepts.\n"
               "Exit codes: 0 found, 1 not found or error, 2 usage.\n");
}

/* hypeman V1: the marker at --gpa exactly, or anywhere by a byte-offset scan. */
static int locate_v1(const struct target_opts *t, struct rh_target *target)
{
        struct rh_target_stats stats;
        struct rh_error err = {};
        uint8_t buf[RH_MAILBOX_SIZE];
        char token[RH_V1_TOKEN_MAX + 1], safe[4 * RH_V1_TOKEN_MAX + 1];
        uint64_t gpa;
        int r;

        r = rh_v1_locate(target, t->has_gpa ? t->gpa : RH_GPA_NONE, t->token_arg, !t->has_gpa || t->scan, &gpa, &err);
        rh_target_get_stats(target, &stats);
        if (r >= 0)
                r = rh_target_read(target, gpa, buf, sizeof(buf), &err);
        if (r < 0)
                return cli_fail("locate: %s", err.msg);
        rh_v1_token_read(buf, token);
        rh_text_escape(token, sizeof(token), safe, sizeof(safe));
        if (cli.json) {
                char gpa_hex[24];
                snprintf(gpa_hex, sizeof(gpa_hex), "0x%" PRIx64, gpa);
                json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I}", "gpa", gpa_hex, "format", "v1", "token",
                                      token, "seq", (json_int_t)unaligned_read_le32(buf + RH_V1_OFF_SEQ),
                                      "length", (json_int_t)unaligned_read_le32(buf + RH_V1_OFF_LEN),
                                      "bytes_read", (json_int_t)stats.bytes_read, "read_calls",
                                      (json_int_t)stats.read_calls);
                if (!o) /* a token that is not UTF-8: jansson refuses it */
                        o = json_pack("{s:s,s:s,s:s,s:I,s:I}", "gpa", gpa_hex, "format", "v1", "token_escaped", safe,
                                      "seq", (json_int_t)unaligned_read_le32(buf + RH_V1_OFF_SEQ), "length",
                                      (json_int_t)unaligned_read_le32(buf + RH_V1_OFF_LEN));
                cli_result(o);
        } else
                printf("V1 mailbox gpa=0x%" PRIx64 " token=\"%s\" seq=%u length=%u (read %" PRIu64 " bytes in %" PRIu64
                       " calls)\n",
                       gpa, safe, unaligned_read_le32(buf + RH_V1_OFF_SEQ), unaligned_read_le32(buf + RH_V1_OFF_LEN),
                       stats.bytes_read, stats.read_calls);
        return EXIT_OK;
}

int cmd_locate(int argc, char **argv)
{
        static const struct option options[] = {
                TARGET_LONG_OPTIONS,
                { "scan", no_argument, NULL, OPT_SCAN },
                { "format", required_argument, NULL, OPT_FORMAT },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct target_opts t = {};
        /* Declared in this order so the target (which points at the layout) goes first. */
        _cleanup_(rh_layout_freep) struct rh_layout *layout = NULL;
        _cleanup_(rh_target_freep) struct rh_target *target = NULL;
        struct rh_target_stats stats;
        struct rh_error err = {};
        struct rh_arm arm;
        uint8_t page[RH_MAILBOX_SIZE];
        uint64_t gpa;
        bool scan = false;
        char tok[33];
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
                if (c == 'h') {
                        help();
                        return EXIT_OK;
                }
                if (c == OPT_SCAN) {
                        scan = t.scan = true;
                        continue;
                }
                if (c == OPT_FORMAT) {
                        if (strcmp(optarg, "v1") == 0)
                                t.v1 = true;
                        else if (strcmp(optarg, "rehome") != 0)
                                return cli_usage_error("locate", "--format: expected rehome or v1, got '%s'", optarg);
                        continue;
                }
                r = target_opt(&t, c, optarg, "locate");
                if (r > 1)
                        return r;
                if (r == 0)
                        return cli_usage_error("locate", "unknown option");
        }
        if (optind != argc)
                return cli_usage_error("locate", "unexpected argument '%s'", argv[optind]);
        if ((r = target_check(&t, "locate", false)) != 0)
                return r;

        r = target_open(&t, false, &layout, &target, &err);
        if (r < 0)
                return cli_fail("locate: %s", err.msg);
        if (t.v1)
                return locate_v1(&t, target);
        r = rh_mailbox_locate(target, t.has_gpa ? t.gpa : RH_GPA_NONE, t.has_token ? t.token : NULL,
                              scan || !t.has_gpa, &gpa, &err);
        /* The cost of locating alone; the read below is only for printing. */
        rh_target_get_stats(target, &stats);
        if (r >= 0)
                r = rh_target_read(target, gpa, page, sizeof(page), &err);
        if (r >= 0)
                r = rh_mailbox_arm_read(page, sizeof(page), &arm, &err);
        if (r < 0)
                return cli_fail("locate: %s", err.msg);

        format_token(arm.token, tok);
        if (cli.json) {
                char gpa_hex[24];
                snprintf(gpa_hex, sizeof(gpa_hex), "0x%" PRIx64, gpa);
                json_t *o = json_pack("{s:s,s:s,s:i,s:i,s:I,s:I,s:I,s:I}", "gpa", gpa_hex, "token", tok,
                                      "abi_major", arm.abi_major, "abi_minor", arm.abi_minor,
                                      "arm_generation", (json_int_t)arm.arm_generation, "caps",
                                      (json_int_t)arm.caps, "bytes_read", (json_int_t)stats.bytes_read,
                                      "read_calls", (json_int_t)stats.read_calls);
                cli_result(o);
        } else
                printf("mailbox gpa=0x%" PRIx64 " token=%s abi=%u.%u generation=%u (read %" PRIu64
                       " bytes in %" PRIu64 " calls)\n",
                       gpa, tok, arm.abi_major, arm.abi_minor, arm.arm_generation, stats.bytes_read,
                       stats.read_calls);
        return EXIT_OK;
}
