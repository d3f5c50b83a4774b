/* SPDX-License-Identifier: MIT */
/*
 * Templates on QEMU: boot the guest image once, wait for the agent to arm its
 * mailbox (it prints the page's guest-physical address and token on the
 * console), prearm it so clones wake in fast-poll mode, and snapshot:
 * `stop`, x-ignore-shared, `migrate exec:cat > state`. The RAM stays in the
 * memory-backend-file on tmpfs (share=on during the boot, so the file holds
 * the guest's memory); the state file holds only device state.
 *
 * Fork-of-fork: a live clone maps its template's RAM privately (share=off),
 * so x-ignore-shared cannot skip it; its snapshot carries its RAM in the
 * stream. A short-lived converter QEMU loads that stream into a copy of the
 * parent's RAM file mapped share=on and re-snapshots it with x-ignore-shared,
 * which yields a normal template (RAM file + small state).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "armed.h"
#include "cleanup.h"
#include "io.h"
#include "qmp.h"
#include "rehome/layout.h"
#include "rehome/patch.h"
#include "vmm.h"
#include "src/vmm/vmm-config.h"

const char *vmm_default_image_dir(void)
{
        const char *env = getenv("REHOME_IMAGE");
        return env && *env ? env : REHOME_IMAGES_DIR "/current";
}

void vmm_layout_spec(const char *machine, uint64_t mem_size, char *buf, size_t len)
{
        snprintf(buf, len, "qemu-%s:%" PRIu64 "M", strncmp(machine, "q35", 3) == 0 ? "q35" : "pc",
                 mem_size >> 20);
}

static double ms_since(uint64_t t0)
{
        return (double)(now_ns() - t0) / 1e6;
}

static void progress(const struct vmm_template_opts *o, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
static void progress(const struct vmm_template_opts *o, const char *fmt, ...)
{
        va_list ap;
        if (!o->progress)
                return;
        fprintf(stderr, "template %s: ", o->name);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

static int load_image(const char *dir, struct vmm_template *t, struct rh_error *err)
{
        char path[PATH_MAX + 16];
        _cleanup_free_ char *text = NULL;
        _cleanup_json_ json_t *j = NULL;
        int r;

        snprintf(path, sizeof(path), "%s/image.json", dir);
        r = read_file_alloc(path, 1 << 16, &text, NULL);
        if (r < 0)
                return rh_error_set(err, r,
                                    "guest image %s: %s; build it: make guest "
                                    "(guest/build-image.sh BUILD_DIR) or pass --image DIR",
                                    path, strerror(-r));
        j = json_loads(text, 0, NULL);
        const char *k = json_string_value(json_object_get(j, "kernel"));
        const char *i = json_string_value(json_object_get(j, "initrd"));
        const char *rel = json_string_value(json_object_get(j, "kernel_release"));
        const char *agent = json_string_value(json_object_get(j, "agent_sha256"));
        if (!k || !i || strchr(k, '/') || strchr(i, '/'))
                return rh_error_set(err, -EINVAL, "guest image %s: malformed; rebuild it: make guest", path);
        snprintf(t->kernel, sizeof(t->kernel), "%s/%s", dir, k);
        snprintf(t->initrd, sizeof(t->initrd), "%s/%s", dir, i);
        /* Resolve symlinks (guest/out/current): the template must keep pointing at
         * the exact kernel it booted, even after the image is rebuilt. */
        char real[PATH_MAX];
        if (realpath(t->kernel, real))
                snprintf(t->kernel, sizeof(t->kernel), "%s", real);
        if (realpath(t->initrd, real))
                snprintf(t->initrd, sizeof(t->initrd), "%s", real);
        if (access(t->kernel, R_OK) < 0)
                return rh_error_set(err, -errno, "guest kernel %s: %s; rebuild the image: make guest",
                                    t->kernel, strerror(errno));
        if (access(t->initrd, R_OK) < 0)
                return rh_error_set(err, -errno, "guest initrd %s: %s; rebuild the image: make guest",
                                    t->initrd, strerror(errno));
        snprintf(t->kernel_release, sizeof(t->kernel_release), "%s", rel ? rel : "");
        snprintf(t->agent_sha256, sizeof(t->agent_sha256), "%s", agent ? agent : "");
        return 0;
}

static void tap_name_for(const char *prefix, const char *name, char buf[16])
{
        uint32_t h = 2166136261u;
        for (const char *p = name; *p; p++)
                h = (h ^ (uint8_t)*p) * 16777619u;
        snprintf(buf, 16, "%s%08x", prefix, h);
}

/* The agent's version and capabilities, from its arm header (best effort). */
static void read_agent_info(pid_t pid, const char *ram_path, struct vmm_template *t)
{
        struct rh_layout *layout = NULL;
        struct rh_target *target = NULL;
        uint8_t page[RH_MAILBOX_SIZE];
        struct rh_arm arm;

        if (rh_layout_parse(t->layout, &layout, NULL) == 0 &&
            rh_target_open_pid(pid, ram_path, layout, false, &target, NULL) == 0 &&
            rh_target_read(target, t->mailbox_gpa, page, sizeof(page), NULL) == 0 &&
            rh_mailbox_arm_read(page, sizeof(page), &arm, NULL) == 0) {
                t->agent_version = arm.agent_version;
                t->agent_caps = arm.caps;
        }
        rh_target_free(target);
        rh_layout_free(layout);
}

/* Prearm through /proc/<pid>/mem and wait for the agent's confirm. */
static int prearm(pid_t pid, const char *ram_path, struct vmm_template *t, uint32_t seq, int timeout_ms,
                  struct rh_error *err)
{
        struct rh_layout *layout = NULL;
        struct rh_target *target = NULL;
        uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
        int r;

        r = rh_layout_parse(t->layout, &layout, err);
        if (r < 0)
                return r;
        r = rh_target_open_pid(pid, ram_path, layout, true, &target, err);
        if (r < 0)
                goto out;
        {
                /* Already in fast poll (an earlier prearm it still serves): nothing to do. */
                uint32_t got = 0, interval = 0;
                bool active = false;
                if (rh_mailbox_prearm_confirm_read(target, t->mailbox_gpa, &got, &interval, &active, NULL) ==
                            0 &&
                    active && got != 0) {
                        r = 0;
                        goto out;
                }
        }
        r = rh_mailbox_prearm(target, t->mailbox_gpa, t->token, seq, 1000, 0, err);
        if (r < 0)
                goto out;
        for (;;) {
                uint32_t got = 0, interval = 0;
                bool active = false;
                r = rh_mailbox_prearm_confirm_read(target, t->mailbox_gpa, &got, &interval, &active, err);
                if (r < 0)
                        goto out;
                if (got == seq && active)
                        break;
                if (now_ns() > deadline) {
                        r = rh_error_set(err, -ETIMEDOUT,
                                         "the agent did not confirm prearm seq %u in %d ms "
                                         "(confirm seq %u, active %d)",
                                         seq, timeout_ms, got, active);
                        goto out;
                }
                struct timespec ts = {0, 1000000};
                nanosleep(&ts, NULL);
        }
        r = 0;
out:
        rh_target_free(target);
        rh_layout_free(layout);
        return r;
}

static int copy_file(const char *from, const char *to, struct rh_error *err)
{
        _cleanup_close_ int in = -EBADF, out = -EBADF;
        struct stat st;

        in = open(from, O_RDONLY | O_CLOEXEC);
        if (in < 0 || fstat(in, &st) < 0)
                return rh_error_set(err, -errno, "%s: %s", from, strerror(errno));
        out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (out < 0)
                return rh_error_set(err, -errno, "%s: %s", to, strerror(errno));
        for (off_t done = 0; done < st.st_size;) {
                ssize_t n = copy_file_range(in, &done, out, NULL, (size_t)(st.st_size - done), 0);
                if (n <= 0)
                        return rh_error_set(err, n < 0 ? -errno : -EIO, "copy %s -> %s: %s", from, to,
                                            n < 0 ? strerror(errno) : "short copy");
        }
        return 0;
}

static int template_from_clone(const struct vmm_template_opts *o, struct vmm_template *t, struct vmm_net *net,
                               const char *tap, struct rh_error *err);

/* NIC @k's tap: the first NIC's name + "n" + K (still < 16 characters: "rht" + 8 hex + "n3"). */
static void nic_tap_name(const char *tap, unsigned k, char buf[16])
{
        snprintf(buf, 16, "%.12sn%u", tap, k);
}

/*
 * The extra NICs of a template (o->nics > 1): network K (`net up --nic K`,
 * set up here next to ours when missing), the address (o->nic_ip, else the
 * gateway's + 1), MAC 52:54:00:12:34:56 + K, and rehome.ipK= on the kernel
 * command line for the guest's init.
 */
static int template_nics(const struct vmm_template_opts *o, struct vmm_template *t, struct vmm_net *xnets,
                         struct rh_error *err)
{
        t->nics = o->nics ? o->nics : 1;
        if (t->nics > VMM_MAX_NICS)
                return rh_error_set(err, -EINVAL, "--nics %u: at most %d", t->nics, VMM_MAX_NICS);
        for (unsigned k = 1; k < t->nics; k++) {
                struct vmm_template_nic *x = &t->xnic[k - 1];
                struct rh_ipaddr ip;
                uint8_t prefix;
                char a[48];
                int r = vmm_net_load_nic(o->state_dir, k, &xnets[k - 1], NULL);
                if (r < 0) {
                        progress(o, "no network for NIC %u yet: setting up the default (rehome net up --nic %u)", k, k);
                        r = vmm_net_up_nic(o->state_dir, k, NULL, NULL, &xnets[k - 1], err);
                        if (r < 0)
                                return r;
                }
                if (o->nic_ip[k - 1]) {
                        if (rh_ip_parse(o->nic_ip[k - 1], &ip, &prefix) < 0 || ip.family != 4 ||
                            !strchr(o->nic_ip[k - 1], '/'))
                                return rh_error_set(err, -EINVAL, "NIC %u: bad address '%s' (want A.B.C.D/P)", k,
                                                    o->nic_ip[k - 1]);
                } else {
                        /* The gateway's address + 1 (10.78.0.1 -> 10.78.0.2): in its subnet, not its broadcast. */
                        uint32_t v = 0, host = 0;
                        bool ok = rh_ip_parse(xnets[k - 1].gateway, &ip, &prefix) == 0 && ip.family == 4 &&
                                  prefix >= 1 && prefix <= 30;
                        if (ok) {
                                v = (uint32_t)ip.addr[0] << 24 | (uint32_t)ip.addr[1] << 16 |
                                    (uint32_t)ip.addr[2] << 8 | ip.addr[3];
                                host = (uint32_t)((1ull << (32 - prefix)) - 1);
                                ok = ((v + 1) & ~host) == (v & ~host) && ((v + 1) & host) != host;
                        }
                        if (!ok)
                                return rh_error_set(err, -EINVAL,
                                                    "NIC %u: network %s has no subnet of ours: give its address",
                                                    k, xnets[k - 1].bridge);
                        v++;
                        for (int i = 0; i < 4; i++)
                                ip.addr[i] = (uint8_t)(v >> (24 - 8 * i));
                }
                rh_ip_format(&ip, a);
                snprintf(x->ip, sizeof(x->ip), "%s/%u", a, prefix);
                static const uint8_t base[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
                memcpy(x->mac, base, 6);
                x->mac[5] = (uint8_t)(base[5] + k); /* 0x57..0x59 */
                memcpy(x->nic_mac, x->mac, 6);
                size_t n = strlen(t->append);
                if ((size_t)snprintf(t->append + n, sizeof(t->append) - n, " rehome.ip%u=%s", k, x->ip) >=
                    sizeof(t->append) - n)
                        return rh_error_set(err, -E2BIG, "kernel command line too long");
        }
        return 0;
}

/*
 * Claim the template name for this process, atomically: mkdir of its
 * directory (under the state lock; the caller reconciled first, so a dead
 * creator's leftovers are gone), files.json naming this process and the RAM file and
 * tap it will make, and the RAM file created O_EXCL. An existing or
 * in-progress template of that name is refused and nothing of it touched.
 */
static int claim(const struct vmm_template_opts *o, struct vmm_template *t, const char *tap, struct rh_error *err)
{
        char ram[PATH_MAX], other_tap[32];
        bool creating = false;
        int lock, fd, r;

        lock = vmm_state_lock(o->state_dir, err);
        if (lock < 0)
                return lock;
        char parent[PATH_MAX];
        snprintf(parent, sizeof(parent), "%s/templates", o->state_dir);
        if (vmm_mkdir_p(parent, 0755) < 0 || mkdir(t->dir, 0755) < 0) {
                r = -errno;
                if (r == -EEXIST &&
                    vmm_template_files_load(t->dir, ram, sizeof(ram), other_tap, sizeof(other_tap), &creating) == 0 &&
                    creating)
                        r = rh_error_set(err, -EBUSY, "template %s is being created by another rehome", o->name);
                else if (r == -EEXIST)
                        r = rh_error_set(err, -EEXIST, "template %s exists (rehome template rm %s first)",
                                         o->name, o->name);
                else
                        r = rh_error_set(err, r, "%s: %s", t->dir, strerror(-r));
                vmm_state_unlock(lock);
                return r;
        }
        r = vmm_template_files_save(t->dir, t->ram_path, tap, true, err);
        if (r == 0) {
                fd = open(t->ram_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
                if (fd < 0)
                        r = rh_error_set(err, -errno,
                                         "RAM file %s: %s (left by another template creation? remove it if "
                                         "nothing uses it)",
                                         t->ram_path, strerror(errno));
                else
                        close(fd);
        }
        if (r < 0) {
                /* The RAM file is not ours (O_EXCL failed) or was never made: only the directory goes. */
                vmm_rm_rf(t->dir);
                t->ram_path[0] = '\0';
        }
        vmm_state_unlock(lock);
        return r;
}

/* A template QEMU that failed: name how it ended (exit status, signal, a full RAM tmpfs). */
static void explain_exit(pid_t pid, const char *ram_path, const char *log, int r, struct rh_error *err)
{
        int status = -1;
        char why[256];

        for (int i = 0; i < 100 && !qemu_exited(pid, &status); i++) {
                struct timespec ts = {0, 2000000};
                nanosleep(&ts, NULL);
        }
        if (status == -1 && proc_starttime(pid) != 0)
                return;
        qemu_describe_exit(status, ram_path, log, why, sizeof(why));
        rh_error_prefix(err, r, "QEMU %s", why);
}

int qemu_template_create(const struct vmm_template_opts *o, struct vmm_template *ret, struct rh_error *err)
{
        struct vmm_template t = {.nics = 1};
        struct vmm_net net, xnets[VMM_MAX_NICS - 1];
        char xtaps[VMM_MAX_NICS - 1][16] = {{0}};
        char tap[16], console[PATH_MAX + 16], log[PATH_MAX + 16], qmp_path[PATH_MAX + 16], line[512];
        char reason[512];
        _cleanup_qmp_ struct qmp *qmp = NULL;
        pid_t pid = 0;
        off_t off = 0;
        uint64_t t0;
        int r;

        snprintf(t.name, sizeof(t.name), "%s", o->name);
        snprintf(t.dir, sizeof(t.dir), "%s/templates/%s", o->state_dir, o->name);
        r = vmm_net_load(o->state_dir, &net, NULL);
        if (r < 0) {
                progress(o, "no clone network yet: setting up the default (rehome net up)");
                r = vmm_net_up(o->state_dir, NULL, NULL, NULL, &net, err);
                if (r < 0)
                        return r;
        }
        if (vmm_mkdir_p(o->ram_dir, 0700) < 0)
                return rh_error_set(err, -errno, "RAM directory %s: %s", o->ram_dir, strerror(errno));
        {
                char tag[9];
                vmm_state_tag(o->state_dir, tag);
                snprintf(t.ram_path, sizeof(t.ram_path), "%s/%s-%s.ram", o->ram_dir, o->name, tag);
        }
        tap_name_for(o->from_clone ? "rhx" : "rht", t.name, tap);
        r = claim(o, &t, tap, err);
        if (r < 0)
                return r;
        snprintf(t.state_path, sizeof(t.state_path), "%s/state", t.dir);
        snprintf(t.machine, sizeof(t.machine), "q35");
        t.mem_size = o->mem_size;
        vmm_layout_spec(t.machine, t.mem_size, t.layout, sizeof(t.layout));
        t.created_unix = (uint64_t)time(NULL);

        if (o->from_clone) {
                r = template_from_clone(o, &t, &net, tap, err);
                if (r == 0)
                        r = vmm_template_files_save(t.dir, t.ram_path, tap, false, err);
                if (r < 0)
                        goto fail;
                *ret = t;
                return 0;
        }

        r = load_image(o->image_dir, &t, err);
        if (r < 0)
                goto fail;
        if (strcmp(o->accel, "auto") == 0) {
                r = qemu_detect_accel(o->state_dir, t.kernel, t.initrd, t.accel, t.cpu, reason,
                                      sizeof(reason), err);
                if (r < 0)
                        goto fail;
        } else {
                snprintf(t.accel, sizeof(t.accel), "%s", o->accel);
                snprintf(t.cpu, sizeof(t.cpu), "%s", strcmp(o->accel, "kvm") == 0 ? "host" : "max");
                snprintf(reason, sizeof(reason), "%s (forced by --accel)", o->accel);
        }
        progress(o, "accelerator: %s", reason);
        if (o->icount) {
                if (strcmp(t.accel, "tcg") != 0) {
                        r = rh_error_set(err, -EINVAL, "--icount needs TCG (accelerator: %s; add --accel tcg)",
                                         t.accel);
                        goto fail;
                }
                t.icount = true;
                progress(o, "-icount shift=0,sleep=off: guest time counts instructions");
        }

        snprintf(t.ip, sizeof(t.ip), "%s", o->ip);
        snprintf(t.gateway, sizeof(t.gateway), "%s", o->gateway ? o->gateway : "");
        t.mac[0] = 0x52, t.mac[1] = 0x54, t.mac[2] = 0x00, t.mac[3] = 0x12, t.mac[4] = 0x34, t.mac[5] = 0x56;
        memcpy(t.nic_mac, t.mac, 6);
        if (o->agent_args) {
                /* One kernel command line word: no blanks, quotes or shell specials. */
                for (const char *p = o->agent_args; *p; p++)
                        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                              (*p >= '0' && *p <= '9') || strchr("-_=,./:", *p))) {
                                r = rh_error_set(err, -EINVAL,
                                                 "agent arguments '%s': character '%c' not allowed "
                                                 "(',' separates words)",
                                                 o->agent_args, *p);
                                goto fail;
                        }
        }
        if (o->kernel_arg) {
                const char *p = o->kernel_arg;

                while (*p && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                              strchr("-_=,./:", *p)))
                        p++;
                if (*p || !*o->kernel_arg) {
                        r = rh_error_set(err, -EINVAL, "kernel argument '%s': one word of [A-Za-z0-9-_=,./:]",
                                         o->kernel_arg);
                        goto fail;
                }
        }
        snprintf(t.append, sizeof(t.append),
                 "console=ttyS0 quiet panic=-1 rehome.ip=%s%s%s rehome.hostname=%s%s%s%s%s", t.ip,
                 t.gateway[0] ? " rehome.gw=" : "", t.gateway, t.name,
                 o->agent_args && *o->agent_args ? " rehome.agent=" : "", o->agent_args ? o->agent_args : "",
                 o->kernel_arg ? " " : "", o->kernel_arg ? o->kernel_arg : "");
        r = template_nics(o, &t, xnets, err);
        if (r < 0)
                goto fail;

        r = vmm_tap_create(&net, tap, err);
        if (r < 0)
                goto fail;
        for (unsigned k = 1; k < t.nics; k++) {
                nic_tap_name(tap, k, xtaps[k - 1]);
                r = vmm_tap_create(&xnets[k - 1], xtaps[k - 1], err);
                if (r < 0) {
                        rh_error_prefix(err, r, "NIC %u", k);
                        goto fail_tap;
                }
        }
        snprintf(console, sizeof(console), "%s/console.log", t.dir);
        snprintf(log, sizeof(log), "%s/qemu.log", t.dir);
        snprintf(qmp_path, sizeof(qmp_path), "%s/qmp.sock", t.dir);
        struct qemu_spec spec;
        char marker[96];

        vmm_marker(o->state_dir, "template", t.name, marker, sizeof(marker));
        qemu_spec_from_template(&spec, &t);
        spec.share = true;
        spec.marker = marker;
        spec.tap = tap;
        for (unsigned k = 1; k < t.nics; k++)
                spec.xtap[k - 1] = xtaps[k - 1];
        spec.netns = net.netns;
        spec.qmp_path = qmp_path;
        spec.console_path = console;
        spec.log_path = log;
        t0 = now_ns();
        r = qemu_spawn(&spec, &pid, err);
        if (r < 0)
                goto fail_tap;
        r = qmp_connect_child(qmp_path, pid, 30000, &qmp, err);
        if (r == 0)
                r = vmm_fault_point("template:boot", err);
        if (r < 0)
                goto fail_qemu;
        progress(o, "booting %s (%s, -cpu %s, %" PRIu64 " MiB); waiting for the agent to arm",
                 t.kernel_release, t.accel, t.cpu, t.mem_size >> 20);
        r = console_wait_line(console, &off, "rehome-agent: armed", pid, o->boot_timeout_ms, line,
                              sizeof(line), err);
        if (r < 0) {
                char tail[256];
                qemu_log_tail(console, tail, sizeof(tail));
                r = rh_error_prefix(err, r, "waiting for the agent (last console line: '%s')", tail);
                goto fail_qemu;
        }
        t.boot_ms = ms_since(t0);
        r = vmm_armed_parse(line, &t.mailbox_gpa, t.token, t.abi, sizeof(t.abi), err);
        if (r < 0) {
                rh_error_prefix(err, r, "cannot parse the agent's armed line '%s'", line);
                goto fail_qemu;
        }
        progress(o, "agent armed after %.0f ms: mailbox gpa 0x%" PRIx64 ", abi %s", t.boot_ms, t.mailbox_gpa,
                 t.abi);

        read_agent_info(pid, t.ram_path, &t);
        if (o->prearm) {
                r = prearm(pid, t.ram_path, &t, 1, 10000, err);
                if (r < 0) {
                        rh_error_prefix(err, r, "prearm");
                        goto fail_qemu;
                }
                progress(o, "agent prearmed (fast poll until the handoff)");
        }

        r = vmm_fault_point("template:snapshot", err);
        if (r < 0)
                goto fail_qemu;
        t0 = now_ns();
        r = qemu_snapshot(qmp, t.state_path, true, 60000, err);
        if (r < 0) {
                rh_error_prefix(err, r, "snapshot");
                goto fail_qemu;
        }
        t.snapshot_ms = ms_since(t0);
        qmp = qmp_free(qmp);
        qemu_kill(pid);
        vmm_tap_delete(&net, tap);
        for (unsigned k = 1; k < t.nics; k++)
                vmm_tap_delete(&net, xtaps[k - 1]); /* one namespace: by name */
        unlink(qmp_path);

        r = vmm_template_save(&t, err);
        if (r == 0)
                r = vmm_template_files_save(t.dir, t.ram_path, tap, false, err);
        if (r < 0)
                goto fail;
        progress(o, "snapshot in %.1f ms: RAM %s, state %s", t.snapshot_ms, t.ram_path, t.state_path);
        *ret = t;
        return 0;

fail_qemu:
        explain_exit(pid, t.ram_path, log, r, err);
        qemu_kill(pid);
fail_tap:
        vmm_tap_delete(&net, tap);
        for (unsigned k = 1; k < t.nics; k++)
                if (xtaps[k - 1][0])
                        vmm_tap_delete(&net, xtaps[k - 1]);
fail:
        /* Only what this process made: the directory it claimed and the RAM file it created. */
        unlink(t.ram_path);
        vmm_rm_rf(t.dir);
        return r;
}

static int template_from_clone(const struct vmm_template_opts *o, struct vmm_template *t, struct vmm_net *net,
                               const char *tap, struct rh_error *err)
{
        struct vmm_clone c;
        struct vmm_template parent;
        char full[PATH_MAX + 16], console[PATH_MAX + 16], log[PATH_MAX + 16],
                qmp_path[PATH_MAX + 16] = "", guid[40];
        _cleanup_qmp_ struct qmp *cq = NULL;
        _cleanup_qmp_ struct qmp *xq = NULL;
        pid_t xpid = 0;
        uint64_t t0;
        int r;

        r = vmm_clone_load(o->state_dir, o->from_clone, &c, err);
        if (r < 0)
                return r;
        if (!vmm_clone_alive(&c) || c.pid <= 0)
                return rh_error_set(err, -ESRCH, "clone %s is not running (rehome clone list)", c.id);
        r = vmm_template_load(o->state_dir, c.template_name, &parent, err);
        if (r < 0)
                return rh_error_prefix(err, r, "clone %s's template", c.id);
        /* The converter QEMU has the parent's NICs: one tap per NIC, each on its network. */
        struct vmm_net xnets[VMM_MAX_NICS - 1];
        char xtaps[VMM_MAX_NICS - 1][16] = {{0}};
        for (unsigned k = 1; k < parent.nics; k++) {
                r = vmm_net_load_nic(o->state_dir, k, &xnets[k - 1], err);
                if (r < 0)
                        return rh_error_prefix(err, r, "clone %s: NIC %u", c.id, k);
                if (c.nics != parent.nics || !c.xnic[k - 1].ip[0])
                        return rh_error_set(err, -EINVAL, "clone %s: its record has no NIC %u", c.id, k);
        }

        /* Everything but the identity and the files is the parent's. */
        char name[VMM_NAME_MAX], dir[PATH_MAX], ram[PATH_MAX], state[PATH_MAX];
        snprintf(name, sizeof(name), "%s", t->name);
        snprintf(dir, sizeof(dir), "%s", t->dir);
        snprintf(ram, sizeof(ram), "%s", t->ram_path);
        snprintf(state, sizeof(state), "%s", t->state_path);
        *t = parent;
        snprintf(t->name, sizeof(t->name), "%s", name);
        snprintf(t->dir, sizeof(t->dir), "%s", dir);
        snprintf(t->ram_path, sizeof(t->ram_path), "%s", ram);
        snprintf(t->state_path, sizeof(t->state_path), "%s", state);
        snprintf(t->parent, sizeof(t->parent), "%s", parent.name);
        snprintf(t->source_clone, sizeof(t->source_clone), "%s", c.id);
        snprintf(t->ip, sizeof(t->ip), "%s", c.ip);
        snprintf(t->gateway, sizeof(t->gateway), "%s", c.gateway);
        memcpy(t->mac, c.mac, 6);
        /* Every NIC's identity is the clone's; the NICs' mac= on the command line stay the parent's. */
        for (unsigned k = 1; k < t->nics; k++) {
                snprintf(t->xnic[k - 1].ip, sizeof(t->xnic[k - 1].ip), "%s", c.xnic[k - 1].ip);
                memcpy(t->xnic[k - 1].mac, c.xnic[k - 1].mac, 6);
        }
        t->created_unix = (uint64_t)time(NULL);

        /* The clone's agent may have re-armed: find its page and token again. */
        {
                struct rh_layout *layout = NULL;
                struct rh_target *target = NULL;
                uint8_t page[RH_MAILBOX_SIZE];
                struct rh_arm arm;
                uint64_t gpa = 0;
                r = rh_layout_parse(parent.layout, &layout, err);
                if (r == 0)
                        r = rh_target_open_pid(c.pid, parent.ram_path, layout, false, &target, err);
                if (r == 0)
                        r = rh_mailbox_locate(target, parent.mailbox_gpa, NULL, true, &gpa, err);
                if (r == 0)
                        r = rh_target_read(target, gpa, page, sizeof(page), err);
                if (r == 0)
                        r = rh_mailbox_arm_read(page, sizeof(page), &arm, err);
                rh_target_free(target);
                rh_layout_free(layout);
                if (r < 0)
                        return rh_error_prefix(err, r, "clone %s: mailbox", c.id);
                t->mailbox_gpa = gpa;
                memcpy(t->token, arm.token, RH_TOKEN_LEN);
                t->agent_version = arm.agent_version;
                t->agent_caps = arm.caps;
        }
        if (o->prearm) {
                /* A fresh prearm seq: the clone served seq 1 as part of its template. */
                r = prearm(c.pid, parent.ram_path, t, (uint32_t)(time(NULL) | 1), 10000, err);
                if (r < 0)
                        return rh_error_prefix(err, r, "clone %s: prearm", c.id);
        }

        r = qmp_connect(c.qmp_path, 5000, &cq, err);
        if (r < 0)
                return rh_error_prefix(err, r, "clone %s", c.id);
        snprintf(full, sizeof(full), "%s/state.full", t->dir);
        t0 = now_ns();
        /* Without x-ignore-shared: the clone's private RAM goes into the stream. */
        r = qemu_snapshot(cq, full, false, 120000, err);
        /* The source clone goes on running either way. The MIGRATION completed
         * event comes before the run state leaves finish-migrate; a cont sent
         * in between is overtaken and the VM ends up in postmigrate: wait. */
        for (int i = 0; i < 2000; i++) {
                json_t *st = NULL;
                if (qmp_execute(cq, "query-status", NULL, 5000, &st, NULL) < 0)
                        break;
                const char *s = json_string_value(json_object_get(st, "status"));
                bool settled = s && strcmp(s, "finish-migrate") != 0;
                json_decref(st);
                if (settled)
                        break;
                struct timespec ts = {0, 1000000};
                nanosleep(&ts, NULL);
        }
        qmp_execute(cq, "cont", NULL, 5000, NULL, NULL);
        if (r < 0)
                return rh_error_prefix(err, r, "clone %s: snapshot", c.id);

        /* Converter: parent RAM copy, share=on, load the full stream into it. */
        r = copy_file(parent.ram_path, t->ram_path, err);
        if (r < 0)
                return r;
        r = vmm_tap_create(net, tap, err);
        if (r < 0)
                return r;
        for (unsigned k = 1; k < t->nics; k++) {
                nic_tap_name(tap, k, xtaps[k - 1]);
                r = vmm_tap_create(&xnets[k - 1], xtaps[k - 1], err);
                if (r < 0) {
                        rh_error_prefix(err, r, "NIC %u", k);
                        goto out;
                }
        }
        snprintf(console, sizeof(console), "%s/console.log", t->dir);
        snprintf(log, sizeof(log), "%s/qemu.log", t->dir);
        snprintf(qmp_path, sizeof(qmp_path), "%s/qmp.sock", t->dir);
        vmm_guid_new(guid);
        struct qemu_spec spec;

        char marker[96];
        vmm_marker(o->state_dir, "template", t->name, marker, sizeof(marker));
        qemu_spec_from_template(&spec, t);
        spec.share = true;
        spec.marker = marker;
        spec.vmgenid = guid;
        spec.tap = tap;
        for (unsigned k = 1; k < t->nics; k++)
                spec.xtap[k - 1] = xtaps[k - 1];
        spec.netns = net->netns;
        spec.qmp_path = qmp_path;
        spec.console_path = console;
        spec.log_path = log;
        spec.incoming = true;
        r = qemu_spawn(&spec, &xpid, err);
        if (r < 0)
                goto out;
        r = qmp_connect_child(qmp_path, xpid, 30000, &xq, err);
        if (r == 0)
                r = qemu_incoming(xq, full, false, 120000, err);
        if (r == 0)
                r = qemu_snapshot(xq, t->state_path, true, 60000, err);
        if (r < 0) {
                char tail[256];
                qemu_log_tail(log, tail, sizeof(tail));
                rh_error_prefix(err, r, "converter QEMU%s%s%s", tail[0] ? " (" : "", tail,
                                tail[0] ? ")" : "");
                goto out;
        }
        t->snapshot_ms = ms_since(t0);
        r = vmm_template_save(t, err);
out:
        xq = qmp_free(xq);
        if (xpid > 0)
                qemu_kill(xpid);
        vmm_tap_delete(net, tap);
        for (unsigned k = 1; k < t->nics; k++)
                if (xtaps[k - 1][0])
                        vmm_tap_delete(net, xtaps[k - 1]); /* one namespace: by name */
        if (!getenv("REHOME_KEEP_FULL"))
                unlink(full);
        unlink(qmp_path);
        return r;
}
