/* SPDX-License-Identifier: MIT */
/*
 * The QEMU layouts and the /proc/<pid>/mem strategy against a real QEMU:
 * for q35 and pc at sizes that split RAM around the 4 GiB hole, put an armed
 * mailbox page into a sparse memory-backend-file above 4 GiB, start QEMU
 * paused (-S, no guest kernel) with share=off (MAP_PRIVATE, as a clone), then
 * locate and patch through /proc/<qemu>/mem using the qemu-q35/qemu-pc
 * layout, and ask QEMU itself (QMP human-monitor-command "xp") what the guest
 * sees at that guest-physical address: the arm magic and the new request
 * seq. The file must be unchanged afterwards (copy-on-write held).
 *
 * Skips (77) without qemu-system-x86_64 or /dev/shm. Every QEMU started is
 * tracked by PID and killed on every failure path.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "io.h"
#include "rehome/patch.h"

#define GiB (1ull << 30)

static pid_t qemu = -1;
static char memfile[128];
static int to_qemu = -1, from_qemu = -1;
static char inbuf[1 << 16];
static size_t inlen;

static void cleanup(void)
{
        if (qemu > 0) {
                kill(qemu, SIGKILL);
                waitpid(qemu, NULL, 0);
                qemu = -1;
        }
        if (memfile[0])
                unlink(memfile);
        memfile[0] = '\0';
}

static void __attribute__((noreturn, format(printf, 1, 2))) fail(const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        fprintf(stderr, "test-qemu-layout: FAIL: ");
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
        cleanup();
        exit(1);
}

/* One QMP line (a JSON object), waiting at most 20 s. */
static json_t *qmp_read(void)
{
        for (;;) {
                char *nl = memchr(inbuf, '\n', inlen);
                if (nl) {
                        json_error_t jerr;
                        size_t n = (size_t)(nl - inbuf) + 1;
                        json_t *j = json_loadb(inbuf, n, 0, &jerr);
                        memmove(inbuf, inbuf + n, inlen - n);
                        inlen -= n;
                        if (!j)
                                fail("QMP: bad JSON: %s", jerr.text);
                        return j;
                }
                struct pollfd p = {.fd = from_qemu, .events = POLLIN};
                if (poll(&p, 1, 20000) <= 0)
                        fail("QMP: no answer from QEMU within 20 s");
                if (inlen == sizeof(inbuf))
                        fail("QMP: line too long");
                ssize_t k = read(from_qemu, inbuf + inlen, sizeof(inbuf) - inlen);
                if (k <= 0)
                        fail("QMP: QEMU closed its output");
                inlen += (size_t)k;
        }
}

/* Send a command; return its "return" value (events are skipped). */
static json_t *qmp(const char *cmd)
{
        int r = write_full(to_qemu, cmd, strlen(cmd));
        if (r >= 0)
                r = write_full(to_qemu, "\n", 1);
        if (r < 0) {
                int status = 0;
                pid_t w = waitpid(qemu, &status, WNOHANG);
                if (w == qemu)
                        qemu = -1; /* reaped: nothing left to kill */
                fail("QMP: write to QEMU failed: %s (QEMU %s, status 0x%x)", strerror(-r),
                     w > 0 ? "has exited" : "still running", status);
        }
        for (;;) {
                json_t *j = qmp_read(), *ret = json_object_get(j, "return");
                if (json_object_get(j, "error"))
                        fail("QMP: %s -> %s", cmd, json_dumps(j, 0));
                if (ret) {
                        json_incref(ret);
                        json_decref(j);
                        return ret;
                }
                json_decref(j);
        }
}

/* The first 32-bit word QEMU shows at guest-physical @gpa. */
static uint32_t xp_word(uint64_t gpa)
{
        char cmd[160];
        json_t *ret;
        unsigned long long addr = 0;
        unsigned int word = 0;

        snprintf(
                cmd, sizeof(cmd),
                "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"xp /1wx 0x%llx\"}}",
                (unsigned long long)gpa);
        ret = qmp(cmd);
        if (!json_is_string(ret) || sscanf(json_string_value(ret), "%llx: %x", &addr, &word) != 2 ||
            addr != gpa)
                fail("xp 0x%llx: unexpected answer %s", (unsigned long long)gpa,
                     json_is_string(ret) ? json_string_value(ret) : "(not a string)");
        json_decref(ret);
        return word;
}

static void start_qemu(const char *machine, uint64_t size)
{
        int in[2], out[2];
        char mem[32], backend[256];

        snprintf(mem, sizeof(mem), "%lluM", (unsigned long long)(size >> 20));
        snprintf(backend, sizeof(backend), "memory-backend-file,id=mem,size=%s,mem-path=%s,share=off", mem,
                 memfile);
        if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
                fail("pipe: %s", strerror(errno));
        qemu = fork();
        if (qemu < 0)
                fail("fork: %s", strerror(errno));
        if (qemu == 0) {
                /* Move the pipe ends above 2 first: with stdin closed, pipe2() may hand out fd 0. */
                int rd = fcntl(in[0], F_DUPFD, 3), wr = fcntl(out[1], F_DUPFD, 3);
                if (rd < 0 || wr < 0 || dup2(rd, 0) < 0 || dup2(wr, 1) < 0)
                        _exit(126);
                execlp("qemu-system-x86_64", "qemu-system-x86_64", "-machine", machine, "-m", mem, "-object",
                       backend, "-machine", "memory-backend=mem", "-display", "none", "-nodefaults", "-S",
                       "-qmp", "stdio", (char *)NULL);
                _exit(127);
        }
        close(in[0]);
        close(out[1]);
        to_qemu = in[1];
        from_qemu = out[0];
        inlen = 0;
        json_decref(qmp_read()); /* greeting */
        json_decref(qmp("{\"execute\":\"qmp_capabilities\"}"));
}

static void stop_qemu(void)
{
        int status = 0;

        json_decref(qmp("{\"execute\":\"quit\"}"));
        if (waitpid(qemu, &status, 0) != qemu || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail("QEMU %d did not quit cleanly (status 0x%x)", (int)qemu, status);
        qemu = -1;
        close(to_qemu);
        close(from_qemu);
}

static void put_page(uint64_t offset, const uint8_t *page)
{
        int fd = open(memfile, O_WRONLY | O_CLOEXEC);

        if (fd < 0 || pwrite_full(fd, page, RH_MAILBOX_SIZE, (off_t)offset) < 0)
                fail("write %s: %s", memfile, strerror(errno));
        close(fd);
}

static void get_page(uint64_t offset, uint8_t *page)
{
        int fd = open(memfile, O_RDONLY | O_CLOEXEC);

        if (fd < 0 || pread_full(fd, page, RH_MAILBOX_SIZE, (off_t)offset) < 0)
                fail("read %s: %s", memfile, strerror(errno));
        close(fd);
}

static void run(const char *machine, const char *spec, uint64_t size, uint64_t low_gpa, uint64_t high_gpa)
{
        static const uint8_t token[RH_TOKEN_LEN] = {'q', 'e', 'm', 'u', 1, 2,  3,  4,
                                                    5,   6,   7,   8,   9, 10, 11, 12};
        uint8_t page[RH_MAILBOX_SIZE] = {}, marker[RH_MAILBOX_SIZE] = {}, before[RH_MAILBOX_SIZE];
        struct rh_arm arm = {.abi_major = RH_MAILBOX_ABI_MAJOR, .arm_generation = 1, .gpa = high_gpa};
        struct rh_layout *layout = NULL;
        struct rh_target *t = NULL;
        struct rh_request req = {};
        struct rh_error err = {};
        struct rh_ipaddr ip;
        uint64_t off_hi, off_lo, gpa = 0;
        uint32_t seq = 0;
        uint8_t prefix;
        int fd;

        if (rh_layout_parse(spec, &layout, &err) < 0)
                fail("%s: %s", spec, err.msg);
        if (rh_layout_gpa_to_offset(layout, high_gpa, RH_MAILBOX_SIZE, &off_hi, &err) < 0 ||
            rh_layout_gpa_to_offset(layout, low_gpa, 4, &off_lo, &err) < 0)
                fail("%s: %s", spec, err.msg);

        snprintf(memfile, sizeof(memfile), "/dev/shm/rehome-test-qemu-layout-%d", (int)getpid());
        fd = open(memfile, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
                fail("%s: %s", memfile, strerror(errno));
        close(fd);
        memcpy(arm.token, token, sizeof(token));
        rh_mailbox_arm_write(page, &arm);
        put_page(off_hi, page);
        memcpy(marker, "LOWRAM!!", 8);
        put_page(off_lo, marker);
        get_page(off_hi, before);

        start_qemu(machine, size);

        /* QEMU sees the file bytes where the layout says: low and high. */
        if (xp_word(low_gpa) != 0x52574f4c) /* "LOWR" little-endian */
                fail("%s: gpa 0x%llx does not show file offset 0x%llx", machine, (unsigned long long)low_gpa,
                     (unsigned long long)off_lo);
        if (xp_word(high_gpa) != 0x4f484552) /* "REHO" */
                fail("%s: gpa 0x%llx does not show the mailbox at file offset 0x%llx", machine,
                     (unsigned long long)high_gpa, (unsigned long long)off_hi);

        if (rh_target_open_pid(qemu, memfile, layout, true, &t, &err) < 0)
                fail("open pid %d: %s", (int)qemu, err.msg);
        if (rh_mailbox_locate(t, high_gpa, token, false, &gpa, &err) < 0 || gpa != high_gpa)
                fail("%s: locate: %s", machine, err.msg);
        if (rh_mailbox_locate(t, 0xc0000000, token, false, &gpa, &err) != -EFAULT)
                fail("%s: locate in the PCI hole did not fail with EFAULT", machine);

        req.nonce = 42;
        req.n_ifaces = 1;
        req.ifaces[0].match = RH_MATCH_NAME;
        strcpy(req.ifaces[0].name, "eth0");
        req.n_addrs = 1;
        rh_ip_parse("10.9.8.7/24", &ip, &prefix);
        req.addrs[0] = (struct rh_addr){.iface = 0, .family = 4, .prefix = prefix};
        memcpy(req.addrs[0].addr, ip.addr, 16);
        if (rh_mailbox_patch(t, high_gpa, token, &req, &seq, &err) < 0 || seq != 1)
                fail("%s: patch: %s", machine, err.msg);
        if (rh_mailbox_patch(t, high_gpa, token, &req, &seq, &err) < 0 || seq != 2)
                fail("%s: second patch: %s", machine, err.msg);

        /* The guest-physical view, according to QEMU. */
        if (xp_word(high_gpa + RH_OFF_REQUEST) != 2)
                fail("%s: QEMU shows request seq %u at gpa 0x%llx, expected 2", machine,
                     xp_word(high_gpa + RH_OFF_REQUEST), (unsigned long long)(high_gpa + RH_OFF_REQUEST));
        if (xp_word(high_gpa + RH_OFF_REQUEST + 8) != 42)
                fail("%s: QEMU does not show the nonce", machine);

        /* Copy-on-write held: the file still has the unpatched page. */
        get_page(off_hi, page);
        if (memcmp(page, before, sizeof(page)) != 0)
                fail("%s: the memory file changed (MAP_PRIVATE COW did not hold)", machine);

        rh_target_free(t);
        stop_qemu();
        unlink(memfile);
        memfile[0] = '\0';
        rh_layout_free(layout);
        printf("ok %s -m %lluM: mailbox at gpa 0x%llx = file offset 0x%llx patched via /proc/pid/mem, "
               "file unchanged\n",
               machine, (unsigned long long)(size >> 20), (unsigned long long)high_gpa,
               (unsigned long long)off_hi);
}

int main(void)
{
        struct stat st;

        if (stat("/dev/shm", &st) < 0) {
                printf("SKIP: no /dev/shm\n");
                return 77;
        }
        if (system("command -v qemu-system-x86_64 >/dev/null 2>&1") != 0) {
                printf("SKIP: qemu-system-x86_64 not installed\n");
                return 77;
        }
        signal(SIGPIPE, SIG_IGN);
        /* q35: >= 0xb0000000 of RAM keeps 2 GiB low; the rest from 4 GiB at file offset 2 GiB. */
        run("q35", "qemu-q35:3G", 3 * GiB, 0x7ff00000, 0x100000000ull + 0x2345000);
        /* pc: >= 0xe0000000 keeps 3 GiB low; the rest from 4 GiB at file offset 3 GiB. */
        run("pc", "qemu-pc:4G", 4 * GiB, 0xbff00000, 0x100000000ull + 0x3fff0000);
        /* q35 below the threshold: no high RAM at all. */
        run("q35", "qemu-q35:2815M", 2815ull << 20, 0x1000, 0xafe00000);
        return 0;
}
