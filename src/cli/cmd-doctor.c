/* SPDX-License-Identifier: MIT */
/*
 * rehome doctor: what this host has for running clones (QEMU, a usable KVM or
 * TCG, tun, network namespaces, tmpfs for templates, the guest image,
 * busybox for the probes) and, for each thing missing, the fix.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <jansson.h>

#include "cleanup.h"
#include "cli.h"
#include "io.h"
#include "src/vmm/qmp.h"
#include "src/vmm/vmm.h"

#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

static void help(void)
{
        printf("Usage: rehome doctor [--json]\n\n"
               "Check this host for what clones need and print the fix for anything missing.\n"
               "Exit status: 0 everything needed is there, 1 something is missing.\n");
}

struct check {
        json_t *arr;
        bool ok;
};

static void report(struct check *c, const char *what, bool ok, bool needed, const char *detail,
                   const char *fix)
{
        if (!ok && needed)
                c->ok = false;
        if (cli.json) {
                json_array_append_new(c->arr,
                                      json_pack("{s:s, s:b, s:b, s:s, s:s?}", "check", what, "ok", ok,
                                                "needed", needed, "detail", detail, "fix", ok ? NULL : fix));
                return;
        }
        printf("%-5s %-14s %s\n", ok ? "ok" : needed ? "MISS" : "note", what, detail);
        if (!ok && fix)
                printf("      %-14s fix: %s\n", "", fix);
}

int cmd_doctor(int argc, char **argv)
{
        struct check c = {.arr = json_array(), .ok = true};
        char buf[PATH_MAX], detail[1024];
        struct rh_error err = {0};

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
                        help();
                        return EXIT_OK;
                }
                if (strcmp(argv[i], "--json") == 0)
                        cli.json = true;
                else
                        return cli_usage_error("doctor", "unknown argument '%s'", argv[i]);
        }

        report(&c, "root", geteuid() == 0, true, geteuid() == 0 ? "running as root" : "not root",
               "run as root (namespaces, taps and /proc/<pid>/mem need it)");

        bool qemu = qemu_find_binary(buf, sizeof(buf), &err) == 0;
        if (qemu) {
                char out[256] = "";
                FILE *p;
                snprintf(detail, sizeof(detail), "%s --version", buf);
                p = popen(detail, "r");
                if (p) {
                        if (!fgets(out, sizeof(out), p))
                                out[0] = '\0';
                        pclose(p);
                }
                out[strcspn(out, "\n")] = '\0';
                snprintf(detail, sizeof(detail), "%s (%s)", buf, out);
        }
        report(&c, "qemu", qemu, true, qemu ? detail : err.msg, "apt-get install qemu-system-x86");

        const char *image = vmm_default_image_dir();
        char kernel[PATH_MAX + 16], initrd[PATH_MAX + 16], img_json[PATH_MAX + 16];
        snprintf(kernel, sizeof(kernel), "%s/vmlinuz", image);
        snprintf(initrd, sizeof(initrd), "%s/initrd.img", image);
        snprintf(img_json, sizeof(img_json), "%s/image.json", image);
        bool have_image =
                access(img_json, R_OK) == 0 && access(kernel, R_OK) == 0 && access(initrd, R_OK) == 0;
        {
                _cleanup_free_ char *text = NULL;
                const char *rel = NULL;
                json_t *j = NULL;
                if (have_image && read_file_alloc(img_json, 1 << 16, &text, NULL) == 0 &&
                    (j = json_loads(text, 0, NULL)))
                        rel = json_string_value(json_object_get(j, "kernel_release"));
                snprintf(detail, sizeof(detail), "%s%s%s%s", image, have_image ? " (kernel " : ": missing",
                         have_image ? (rel ? rel : "?") : "", have_image ? ")" : "");
                if (j)
                        json_decref(j);
        }
        report(&c, "guest image", have_image, true, detail,
               "rehome image build (installed), make guest + REHOME_IMAGE=guest/out/current (source tree), or --image");

        int kfd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (kfd >= 0)
                close(kfd);
        snprintf(detail, sizeof(detail), "/dev/kvm %s", kfd >= 0 ? "opens" : strerror(errno));
        if (kfd >= 0 && have_image && qemu) {
                char accel[16], cpu[32], reason[512];
                if (qemu_detect_accel(cli.state_dir, kernel, initrd, accel, cpu, reason, sizeof(reason),
                                      NULL) == 0)
                        snprintf(detail, sizeof(detail), "%s", reason);
        } else
                snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail),
                         ": clones run under TCG (-cpu max), slower but real");
        report(&c, "accelerator", true, false, detail, NULL);

        bool tun = access("/dev/net/tun", R_OK | W_OK) == 0;
        report(&c, "tun", tun, true, tun ? "/dev/net/tun" : "/dev/net/tun missing",
               "modprobe tun (and in a container: --device /dev/net/tun)");

        bool netns = access("/proc/self/ns/net", R_OK) == 0 && access("/usr/bin/ip", X_OK) == 0;
        report(&c, "netns + ip", netns, true,
               netns ? "network namespaces and iproute2" : "no network namespaces or no ip(8)",
               "apt-get install iproute2");

        struct statfs sfs;
        bool tmpfs = statfs("/dev/shm", &sfs) == 0 && sfs.f_type == TMPFS_MAGIC;
        snprintf(detail, sizeof(detail), "%s %s", VMM_DEFAULT_RAM_DIR,
                 tmpfs ? "is on tmpfs (template RAM stays in memory)" : "is not on tmpfs");
        report(&c, "tmpfs", tmpfs, false, detail,
               "mount -t tmpfs tmpfs /dev/shm, or pass --ram-dir on a tmpfs to template create");

        bool busybox = access("/bin/busybox", X_OK) == 0;
        report(&c, "busybox", busybox, true,
               busybox ? "/bin/busybox (guest userland; arping/ping for the probes)" : "missing",
               "apt-get install busybox-static");

        struct vmm_net net;
        struct rh_error e2 = {0};
        bool have_net = vmm_net_load(cli.state_dir, &net, &e2) == 0;
        if (have_net)
                snprintf(detail, sizeof(detail), "%s%s%sbridge %s gateway %s", net.netns[0] ? "netns " : "",
                         net.netns, net.netns[0] ? ", " : "", net.bridge, net.gateway);
        report(&c, "clone network", have_net, false, have_net ? detail : e2.msg, "rehome net up");

        char **names = NULL;
        unsigned n = 0;
        if (vmm_template_list(cli.state_dir, &names, NULL) == 0) {
                for (size_t i = 0; names[i]; i++)
                        n++;
                vmm_strv_free(names);
        }
        snprintf(detail, sizeof(detail), "%u in %s/templates", n, cli.state_dir);
        report(&c, "templates", n > 0, false, detail, "rehome template create NAME (or rehome demo)");

        if (cli.json) {
                json_t *doc = json_pack("{s:b, s:o}", "ok", c.ok, "checks", c.arr);
                json_dumpf(doc, stdout, JSON_INDENT(2));
                putchar('\n');
                json_decref(doc);
        } else
                json_decref(c.arr);
        return c.ok ? EXIT_OK : EXIT_FAIL;
}
