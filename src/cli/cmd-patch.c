/* SPDX-License-Identifier: MIT */
/*
 * rehome patch: write a request into a clone's mailbox while it is paused,
 * through its memory file or its VMM's /proc/<pid>/mem. Works with any VMM
 * (see docs/INTEGRATION.md). --format v1 writes hypeman's V1 layout instead.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "opts.h"
#include "src/lib/handle-cleanup.h"
#include "rehome/request.h"
#include "unaligned.h"

enum { OPT_FORMAT = OPT_VERB_BASE, OPT_V1_TOKEN };

static void help(void)
{
        printf("Usage: rehome patch (--file PATH | --pid PID --mem-file PATH) [--layout SPEC]\n"
               "                    --gpa ADDR [--token HEX] REQUEST...\n\n"
               "Write a request into the mailbox at --gpa, after verifying the page's arm header\n"
               "and token. Run it while the VM is paused (before resume). The payload and header\n"
               "are written first, the sequence number last.\n\n"
               TARGET_HELP
               "  --format rehome|v1  mailbox format (v1: hypeman's; needs --v1-token)\n"
               "  --v1-token TOKEN    the V1 page's token\n\n"
               REQUEST_HELP
               "\nPrints the seq and nonce written (wait for them with 'rehome wait-ack').\n"
               "Exit codes: 0 written, 1 failure, 2 usage.\n");
}

/* hypeman V1: verify magic + token at gpa, then JSON + length, then seq. */
static int patch_v1(struct rh_target *target, uint64_t gpa, const char *token, struct rh_request *req,
                    struct rh_error *err)
{
        uint8_t page[RH_MAILBOX_SIZE];
        uint32_t seq, old_seq;
        int r;

        r = rh_target_read(target, gpa, page, sizeof(page), err);
        if (r < 0)
                return r;
        if (!rh_v1_matches(page, sizeof(page), token))
                return rh_error_set(err, ENOENT, "no V1 mailbox with token '%s' at gpa 0x%" PRIx64, token, gpa);
        old_seq = unaligned_read_le32(page + RH_V1_OFF_SEQ);
        seq = req->seq ? req->seq : (old_seq + 1 ? old_seq + 1 : 1);
        r = rh_v1_encode(page, req, seq, err);
        if (r < 0)
                return r;
        r = rh_target_write(target, gpa + RH_V1_OFF_LEN, page + RH_V1_OFF_LEN,
                            RH_MAILBOX_SIZE - RH_V1_OFF_LEN, err);
        if (r < 0)
                return r;
        r = rh_target_write(target, gpa + RH_V1_OFF_SEQ, page + RH_V1_OFF_SEQ, 4, err);
        if (r < 0)
                return r;
        req->seq = seq;
        return 0;
}

int cmd_patch(int argc, char **argv)
{
        static const struct option options[] = {
                TARGET_LONG_OPTIONS,
                REQUEST_LONG_OPTIONS,
                { "format", required_argument, NULL, OPT_FORMAT },
                { "v1-token", required_argument, NULL, OPT_V1_TOKEN },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct target_opts t = {};
        struct request_opts ro;
        /* Declared in this order so the target (which points at the layout) goes first. */
        _cleanup_(rh_layout_freep) struct rh_layout *layout = NULL;
        _cleanup_(rh_target_freep) struct rh_target *target = NULL;
        struct rh_error err = {};
        struct rh_request req;
        const char *v1_token = NULL;
        bool v1 = false;
        uint32_t seq = 0;
        int c, r;

        request_opts_init(&ro);
        while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
                switch (c) {
                case 'h':
                        help();
                        return EXIT_OK;
                case OPT_FORMAT:
                        if (strcmp(optarg, "v1") == 0)
                                v1 = true;
                        else if (strcmp(optarg, "rehome") != 0)
                                return cli_usage_error("patch", "--format: expected rehome or v1, got '%s'", optarg);
                        continue;
                case OPT_V1_TOKEN:
                        v1_token = optarg;
                        continue;
                }
                r = target_opt(&t, c, optarg, "patch");
                if (r == 0)
                        r = request_opt(&ro, c, optarg, "patch");
                if (r > 1)
                        return r;
                if (r == 0)
                        return cli_usage_error("patch", "unknown option");
        }
        if (optind != argc)
                return cli_usage_error("patch", "unexpected argument '%s'", argv[optind]);
        if ((r = target_check(&t, "patch", true)) != 0)
                return r;
        if (v1 && !v1_token)
                return cli_usage_error("patch", "--format v1 needs --v1-token");
        if (!v1 && v1_token)
                return cli_usage_error("patch", "--v1-token goes with --format v1");
        if ((r = request_finish(&ro, "patch", &req)) != 0)
                return r;

        r = target_open(&t, true, &layout, &target, &err);
        if (r >= 0) {
                if (v1) {
                        r = patch_v1(target, t.gpa, v1_token, &req, &err);
                        seq = req.seq;
                } else
                        r = rh_mailbox_patch(target, t.gpa, t.has_token ? t.token : NULL, &req, &seq, &err);
        }
        if (r < 0)
                return cli_fail("patch mailbox at gpa 0x%" PRIx64 ": %s", t.gpa, err.msg);

        if (cli.json)
                printf("{\"gpa\":\"0x%" PRIx64 "\",\"seq\":%" PRIu32 ",\"nonce\":\"%016" PRIx64 "\"}\n", t.gpa,
                       seq, req.nonce);
        else
                printf("patched gpa=0x%" PRIx64 " seq=%" PRIu32 " nonce=%016" PRIx64 "\n", t.gpa, seq, req.nonce);
        return EXIT_OK;
}
