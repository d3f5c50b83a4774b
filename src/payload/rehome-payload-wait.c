/* SPDX-License-Identifier: MIT */
/*
 * rehome-payload-wait: a tiny guest tool on rh_payload_wait(). Waits for
 * named payload NAME, prints it on stdout and exits 0; for shell scripts
 * and init systems (ExecStartPre=rehome-payload-wait --timeout 30s app.cfg).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rehome/payload.h"

static void help(void)
{
        printf("Usage: rehome-payload-wait [--timeout MS] [--new] NAME\n"
               "Wait until rehome-agent has delivered payload NAME (%s/NAME, or\n"
               "$REHOME_PAYLOAD_DIR/NAME) and print it.\n"
               "  --timeout MS  give up after MS milliseconds (default: wait forever; 0 = check once)\n"
               "  --new         wait for a delivery after now, even if NAME exists\n"
               "Exit: 0 printed, 1 timeout or error, 2 usage.\n",
               RH_PAYLOAD_DIR);
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
                {"timeout", required_argument, NULL, 't'},
                {"new", no_argument, NULL, 'n'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        static char buf[1 << 20];
        unsigned flags = 0;
        int timeout = -1, c;
        ssize_t n;

        while ((c = getopt_long(argc, argv, "t:nh", options, NULL)) >= 0) {
                switch (c) {
                case 't': {
                        char *end;
                        long v = strtol(optarg, &end, 10);
                        if (*end || v < 0 || v > 86400000) {
                                fprintf(stderr, "rehome-payload-wait: bad --timeout '%s'\n", optarg);
                                return 2;
                        }
                        timeout = (int)v;
                        break;
                }
                case 'n':
                        flags |= RH_PAYLOAD_WAIT_NEW;
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return 2;
                }
        }
        if (optind + 1 != argc) {
                fprintf(stderr, "rehome-payload-wait: expected exactly one NAME\n");
                return 2;
        }
        n = rh_payload_wait(argv[optind], timeout, flags, buf, sizeof(buf));
        if (n == -EINVAL) {
                fprintf(stderr, "rehome-payload-wait: invalid name '%s'\n", argv[optind]);
                return 2;
        }
        if (n < 0) {
                fprintf(stderr, "rehome-payload-wait: %s: %s\n", argv[optind], strerror((int)-n));
                return 1;
        }
        if ((size_t)n > sizeof(buf)) {
                fprintf(stderr, "rehome-payload-wait: %s: %zd bytes, larger than 1 MiB\n", argv[optind], n);
                return 1;
        }
        if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n || fflush(stdout) != 0)
                return 1;
        return 0;
}
