/* SPDX-License-Identifier: MIT */
/*
 * rehome image build: the guest image (Debian kernel, busybox, the static
 * rehome-agent) for an installed rehome. It runs the image builder that the
 * rehome-agent-static package installs beside the agent
 * (<prefix>/lib/rehome/guest/build-image.sh, the source tree's
 * guest/build-image.sh) with that agent, into /var/lib/rehome/images, whose
 * "current" is the default image of template create, demo and bench.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "src/vmm/vmm-config.h"

static void help(void)
{
        printf("Usage: rehome image build [--out DIR] [--agent PATH] [--builder PATH]\n\n"
               "Build the guest image: Debian's kernel (apt-get download, never installed on\n"
               "the host), its virtio network modules, busybox-static and the static\n"
               "rehome-agent, as an initramfs. The image is cached by its inputs: a rebuild\n"
               "with the same ones is a no-op. DIR/current then points at it; the default\n"
               "DIR's current is what template create, demo and bench boot.\n\n"
               "Options:\n"
               "  --out DIR       where images go (default " REHOME_IMAGES_DIR ")\n"
               "  --agent PATH    the static guest agent (default " REHOME_GUEST_DIR "/rehome-agent)\n"
               "  --builder PATH  the image builder (default " REHOME_GUEST_DIR "/build-image.sh)\n\n"
               "Needs root for the default DIR, apt-get, dpkg, cpio and busybox-static.\n"
               "From a source tree, 'make guest' builds guest/out/current instead.\n"
               "Exit status: 0 built (or up to date), 1 failure, 2 usage.\n");
}

static int image_build(int argc, char **argv)
{
        static const struct option options[] = {
                {"out", required_argument, NULL, 'o'},
                {"agent", required_argument, NULL, 'a'},
                {"builder", required_argument, NULL, 'b'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *out = REHOME_IMAGES_DIR, *agent = REHOME_GUEST_DIR "/rehome-agent",
                   *builder = REHOME_GUEST_DIR "/build-image.sh";
        int c;

        optind = 1;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
                switch (c) {
                case 'o':
                        out = optarg;
                        break;
                case 'a':
                        agent = optarg;
                        break;
                case 'b':
                        builder = optarg;
                        break;
                case 'h':
                        help();
                        return EXIT_OK;
                default:
                        return cli_usage_error("image", "unknown option");
                }
        }
        if (optind != argc)
                return cli_usage_error("image", "build takes no arguments, got '%s'", argv[optind]);
        if (access(builder, X_OK) < 0)
                return cli_fail("image build: %s: %s (install rehome-agent-static, or --builder)", builder,
                                strerror(errno));
        if (access(agent, R_OK) < 0)
                return cli_fail("image build: %s: %s (install rehome-agent-static, or --agent)", agent,
                                strerror(errno));

        pid_t pid = fork();
        if (pid < 0)
                return cli_fail("image build: fork: %s", strerror(errno));
        if (pid == 0) {
                /* The builder's summary goes to stdout; with --json, ours is the only document there. */
                if (cli.json && dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
                        _exit(127);
                if (setenv("REHOME_AGENT", agent, 1) < 0 || setenv("REHOME_GUEST_OUT", out, 1) < 0)
                        _exit(127);
                /* Its one argument names a build directory; REHOME_AGENT makes it unused. */
                execl(builder, builder, out, (char *)NULL);
                fprintf(stderr, "rehome: image build: exec %s: %s\n", builder, strerror(errno));
                _exit(127);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return cli_fail("image build: waitpid: %s", strerror(errno));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return cli_fail("image build: %s failed (%s %d)", builder,
                                WIFEXITED(status) ? "exit status" : "signal",
                                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));

        char current[PATH_MAX], real[PATH_MAX];
        snprintf(current, sizeof(current), "%s/current", out);
        if (!realpath(current, real))
                return cli_fail("image build: %s: %s", current, strerror(errno));
        if (cli.json) {
                json_t *j = json_pack("{s:s, s:s}", "current", current, "image", real);
                if (!j)
                        return cli_fail("image build: out of memory");
                cli_result(j);
        } else {
                printf("image %s (%s)\n", current, real);
        }
        return EXIT_OK;
}

int cmd_image(int argc, char **argv)
{
        if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
                help();
                return argc < 2 ? EXIT_USAGE : EXIT_OK;
        }
        if (strcmp(argv[1], "build") == 0)
                return image_build(argc - 1, argv + 1);
        return cli_usage_error("image", "unknown subcommand '%s'", argv[1]);
}
