/* SPDX-License-Identifier: MIT */
/*
 * rehome doctor: what this host has for running clones (QEMU, a usable KVM or
 * TCG, tun, network namespaces, tmpfs for templates, the guest image,
 * busybox for the probes) and, for each thing missing, the fix. Each check
 * is in one state: ok; warn (there but degraded: KVM that fails its probe
 * boot, so clones run under TCG); missing; denied (there, but this user may
 * not use it: EACCES is not "missing"); note (optional and absent).
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
               "Each check is ok, warn (usable but degraded), MISS (missing), DENY (there but\n"
               "this user may not use it) or note (optional, absent).\n"
               "Exit status: 0 everything needed is there and usable, 1 something is missing or denied.\n");
}

struct check {
        json_t *arr;
        bool ok;
        char failed[256]; /* the needed checks that are missing or denied, for the last line */
};

enum state { ST_OK, ST_WARN, ST_MISSING, ST_DENIED, ST_NOTE };

static const struct {
        const char *json, *text;
} state_names[] = {
        [ST_OK] = {"ok", "ok"},           [ST_WARN] = {"warn", "warn"}, [ST_MISSING] = {"missing", "MISS"},
        [ST_DENIED] = {"denied", "DENY"}, [ST_NOTE] = {"note", "note"},
};

/* Absent, or there but not ours to use: errno after a failed access()/open(). */
static enum state absent_state(int errnum, bool needed)
{
        if (errnum == EACCES || errnum == EPERM)
                return ST_DENIED;
        return needed ? ST_MISSING : ST_NOTE;
}

static void report_state(struct check *c, const char *what, enum state st, bool needed, const char *detail,
                         const char *fix)
{
        bool ok = st == ST_OK || st == ST_WARN;

        if (!ok && needed) {
                size_t len = strlen(c->failed);
                c->ok = false;
                snprintf(c->failed + len, sizeof(c->failed) - len, "%s%s", len ? ", " : "", what);
        }
        if (cli.json) {
                json_array_append_new(c->arr, json_pack("{s:s, s:s, s:b, s:b, s:s, s:s*}", "check", what, "state",
                                                        state_names[st].json, "ok", ok, "needed", needed, "detail",
                                                        detail, "fix", st == ST_OK ? NULL : fix));
                return;
        }
        printf("%-5s %-14s %s\n", state_names[st].text, what, detail);
        if (st != ST_OK && fix)
                printf("      %-14s fix: %s\n", "", fix);
}

static void report(struct check *c, const char *what, bool ok, bool needed, const char *detail, const char *fix)
{
        report_state(c, what, ok ? ST_OK : needed ? ST_MISSING : ST_NOTE, needed, detail, fix);
}

/* A file check: ok, or missing/denied by access()'s errno, the detail saying which. */
static void report_access(struct check *c, const char *what, const char *path, int mode, bool needed,
                          const char *ok_detail, const char *fix)
{
        char detail[PATH_MAX + 64];
        int e = access(path, mode) == 0 ? 0 : errno;

        if (!e) {
                report_state(c, what, ST_OK, needed, ok_detail, fix);
                return;
        }
        snprintf(detail, sizeof(detail), "%s: %s", path, e == ENOENT ? "missing" : strerror(e));
        report_state(c, what, absent_state(e, needed), needed, detail,
                     e == EACCES || e == EPERM ? "run as root (or give this user access)" : fix);
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
                        cli_json_enable();
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
        int image_errno = 0;
        for (const char *f = img_json; f && !image_errno; f = f == img_json ? kernel : f == kernel ? initrd : NULL)
                if (access(f, R_OK) < 0)
                        image_errno = errno;
        bool have_image = image_errno == 0;
        {
                _cleanup_free_ char *text = NULL;
                const char *rel = NULL;
                json_t *j = NULL;
                if (have_image && read_file_alloc(img_json, 1 << 16, &text, NULL) == 0 &&
                    (j = json_loads(text, 0, NULL)))
                        rel = json_string_value(json_object_get(j, "kernel_release"));
                snprintf(detail, sizeof(detail), "%s%s%s%s", image,
                         have_image                ? " (kernel "
                         : image_errno == ENOENT ? ": missing"
                                                 : ": ",
                         have_image ? (rel ? rel : "?") : image_errno == ENOENT ? "" : strerror(image_errno),
                         have_image ? ")" : "");
                if (j)
                        json_decref(j);
        }
        report_state(&c, "guest image", have_image ? ST_OK : absent_state(image_errno, true), true, detail,
                     image_errno == EACCES ? "run as root, or set REHOME_IMAGE to an image this user can read"
                                           : "rehome image build (installed), make guest + REHOME_IMAGE=guest/out/current (source tree), or --image");

        /* ok only when KVM is what clones get: a /dev/kvm that does not open, or
         * opens but fails the probe boot, leaves them on TCG (warn, not ok). */
        int kfd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        int kvm_errno = kfd >= 0 ? 0 : errno;
        enum state accel_state = ST_WARN;
        const char *accel_fix = "load kvm_intel/kvm_amd and give this user /dev/kvm (group kvm), or accept TCG";
        if (kfd >= 0)
                close(kfd);
        snprintf(detail, sizeof(detail), "/dev/kvm %s", kfd >= 0 ? "opens" : strerror(kvm_errno));
        if (kfd >= 0 && have_image && qemu) {
                char accel[16], cpu[32], reason[512];
                struct rh_error aerr = {0};
                if (qemu_detect_accel(cli.state_dir, kernel, initrd, accel, cpu, reason, sizeof(reason),
                                      &aerr) == 0) {
                        snprintf(detail, sizeof(detail), "%s", reason);
                        if (strcmp(accel, "kvm") == 0)
                                accel_state = ST_OK;
                        else
                                accel_fix = "KVM opens but its probe boot failed: check dmesg and nested "
                                            "virtualisation; clones run under TCG meanwhile";
                } else
                        snprintf(detail, sizeof(detail), "/dev/kvm opens, but the probe failed: %s; clones run "
                                 "under TCG", aerr.msg);
        } else if (kfd >= 0) {
                accel_fix = "build the guest image (and install QEMU) so that KVM can be probed";
                snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail),
                         " but was not probed (%s): clones may run under TCG",
                         !qemu ? "no QEMU" : "no guest image");
        } else
                snprintf(detail + strlen(detail), sizeof(detail) - strlen(detail),
                         ": clones run under TCG (-cpu max), slower but real");
        report_state(&c, "accelerator", accel_state, false, detail, accel_fix);

        report_access(&c, "tun", "/dev/net/tun", R_OK | W_OK, true, "/dev/net/tun",
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

        report_access(&c, "busybox", "/bin/busybox", X_OK, true,
                      "/bin/busybox (guest userland; arping/ping for the probes)", "apt-get install busybox-static");

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
                cli_result(doc);
        } else
                json_decref(c.arr);
        if (!c.ok)
                return cli_fail("doctor: missing or denied: %s", c.failed);
        return EXIT_OK;
}
