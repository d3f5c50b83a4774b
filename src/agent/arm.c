/* SPDX-License-Identifier: MIT */
/*
 * Arming: one page-aligned, mlocked mailbox page; its guest-physical address
 * from /proc/self/pagemap; the arm header (magic, ABI, random token, gpa,
 * capabilities) or, in hypeman V1 mode, the V1 magic and token; and the
 * announcement a host records when it makes a template:
 *
 *     rehome-agent: armed gpa=0x<hex> token=<32 hex> abi=<major>.<minor>
 *
 * on the console (stdout), in /dev/kmsg, and in <run-dir>/armed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "cleanup.h"
#include "io.h"
#include "rehome-version.h"
#include "unaligned.h"

#ifndef GRND_INSECURE
#define GRND_INSECURE 0x0004
#endif

#define PAGEMAP_PRESENT  (1ull << 63)
#define PAGEMAP_PFN_MASK ((1ull << 55) - 1)

/*
 * Early in boot the crng may not be initialised yet (a TCG guest without
 * RDRAND): do not block. The token only has to tell this agent's page apart
 * from stale pages, it is not a secret.
 */
static void fill_token(uint8_t token[RH_TOKEN_LEN])
{
        ssize_t n = getrandom(token, RH_TOKEN_LEN, GRND_NONBLOCK);

        if (n == (ssize_t)RH_TOKEN_LEN)
                return;
        n = getrandom(token, RH_TOKEN_LEN, GRND_INSECURE);
        if (n == (ssize_t)RH_TOKEN_LEN)
                return;
        /* Last resort: time, pid and the page address through CRC32C. */
        for (unsigned i = 0; i < RH_TOKEN_LEN; i += 4) {
                uint64_t seed[3] = {now_ns(), realtime_ns(), ((uint64_t)getpid() << 32) | i};
                uint32_t c = rh_crc32c(i, seed, sizeof(seed));
                memcpy(token + i, &c, 4);
        }
}

/*
 * The guest-physical address of @addr (page-aligned, present, mlocked).
 * Reading PFNs needs CAP_SYS_ADMIN; without it the kernel reports 0 and the
 * host has to fall back to a scan: say so rather than publish garbage.
 */
static int page_gpa(const void *addr, uint64_t *ret_gpa)
{
        _cleanup_close_ int fd = -EBADF;
        uint64_t entry, vpn = (uint64_t)(uintptr_t)addr / RH_MAILBOX_SIZE;
        int r;

        fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        r = pread_full(fd, &entry, sizeof(entry), (off_t)(vpn * sizeof(entry)));
        if (r < 0)
                return r;
        if (!(entry & PAGEMAP_PRESENT))
                return -ENXIO;
        if ((entry & PAGEMAP_PFN_MASK) == 0)
                return -EPERM;
        *ret_gpa = (entry & PAGEMAP_PFN_MASK) * RH_MAILBOX_SIZE;
        return 0;
}

int arm_page_gpa(const void *addr, uint64_t *ret_gpa)
{
        return page_gpa(addr, ret_gpa);
}

static uint32_t agent_caps(const struct agent *a)
{
        uint32_t caps = RH_CAP_IPV6 | RH_CAP_ROUTES | RH_CAP_DNS | RH_CAP_HOSTNAME | RH_CAP_ANNOUNCE |
                        RH_CAP_UDP_ACK | RH_CAP_PREARM | RH_CAP_CLOCK |
                        RH_CAP_MACHINE_ID | RH_CAP_HOOKS;

        if (a->opt.sources & SRC_VMCLOCK)
                caps |= RH_CAP_SIGNAL_VMCLOCK;
        if (a->opt.sources & SRC_VMCLOCK_SPIN)
                caps |= RH_CAP_SIGNAL_VMCLOCK_SPIN;
        if (a->opt.sources & SRC_UEVENT)
                caps |= RH_CAP_SIGNAL_VMGENID_UEVENT;
        if (a->opt.sources & SRC_KMSG)
                caps |= RH_CAP_SIGNAL_VMGENID_KMSG;
        if (a->opt.sources & SRC_POLL)
                caps |= RH_CAP_SIGNAL_POLL;
        return caps;
}

int arm_setup(struct agent *a, struct rh_error *err)
{
        void *p;

        if (a->opt.mailbox_file) {
                struct stat st;

                a->page_fd = open(a->opt.mailbox_file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
                if (a->page_fd < 0)
                        return rh_error_set(err, -errno, "mailbox file %s: %s", a->opt.mailbox_file,
                                            strerror(errno));
                if (fstat(a->page_fd, &st) < 0)
                        return rh_error_set(err, -errno, "mailbox file %s: %s", a->opt.mailbox_file,
                                            strerror(errno));
                if (st.st_size < (off_t)RH_MAILBOX_SIZE && ftruncate(a->page_fd, RH_MAILBOX_SIZE) < 0)
                        return rh_error_set(err, -errno, "mailbox file %s: resize: %s", a->opt.mailbox_file,
                                            strerror(errno));
                p = mmap(NULL, RH_MAILBOX_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, a->page_fd,
                         0);
        } else {
                p = mmap(NULL, RH_MAILBOX_SIZE, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        }
        if (p == MAP_FAILED)
                return rh_error_set(err, -errno, "map mailbox page: %s", strerror(errno));
        a->page = p;
        /* One page on its own VMA never becomes part of a huge page. */
        (void)madvise(p, RH_MAILBOX_SIZE, MADV_NOHUGEPAGE);
        if (mlock(p, RH_MAILBOX_SIZE) < 0)
                return rh_error_set(err, -errno, "mlock mailbox page: %s", strerror(errno));

        if (a->opt.format == FORMAT_V1) {
                /* hypeman's guest starts from a fresh buffer: seq 0, and any
                 * non-zero seq later is a new request (last_seq stays 0). */
                memset(a->page, 0, RH_MAILBOX_SIZE);
        } else if (a->opt.mailbox_file) {
                /* A test page may hold an old request: never replay it. */
                a->last_seq = unaligned_read_le32(a->page + RH_OFF_REQUEST);
        } else
                memset(a->page, 0, RH_MAILBOX_SIZE);

        fill_token(a->arm.token);
        for (unsigned i = 0; i < RH_TOKEN_LEN; i++)
                snprintf(a->token_hex + 2 * i, 3, "%02x", a->arm.token[i]);
        a->arm.abi_major = RH_MAILBOX_ABI_MAJOR;
        a->arm.abi_minor = RH_MAILBOX_ABI_MINOR;
        a->arm.agent_version =
                (REHOME_VERSION_MAJOR << 16) | (REHOME_VERSION_MINOR << 8) | REHOME_VERSION_PATCH;
        return 0;
}

static int write_armed_file(struct agent *a, const char *line)
{
        char path[512], tmp[520];
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (!a->opt.run_dir || !a->opt.run_dir[0])
                return 0;
        if (mkdir(a->opt.run_dir, 0755) < 0 && errno != EEXIST)
                return -errno;
        snprintf(path, sizeof(path), "%s/armed", a->opt.run_dir);
        snprintf(tmp, sizeof(tmp), "%s/.armed.tmp", a->opt.run_dir);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        r = write_full(fd, line, strlen(line));
        if (r >= 0)
                r = write_full(fd, "\n", 1);
        if (r < 0)
                return r;
        if (rename(tmp, path) < 0)
                return -errno;
        return 0;
}

/*
 * The token for the armed line: as it is when it is printable ASCII without
 * blanks or quotes, else "..." with \" \\ and \xHH (a V1 token may hold
 * spaces, UTF-8, control bytes: the line must stay one parsable line).
 */
static void v1_token_quote(const char *token, char *out, size_t cap)
{
        static const char hex[] = "0123456789abcdef";
        bool plain = true;
        size_t o = 0;

        for (const char *c = token; *c; c++)
                if (*c <= ' ' || *c > '~' || *c == '"' || *c == '\\')
                        plain = false;
        if (plain) {
                snprintf(out, cap, "%s", token);
                return;
        }
        out[o++] = '"';
        for (const unsigned char *c = (const unsigned char *)token; *c && o + 6 < cap; c++) {
                if (*c == '"' || *c == '\\') {
                        out[o++] = '\\';
                        out[o++] = (char)*c;
                } else if (*c < ' ' || *c == 0x7f) {
                        out[o++] = '\\';
                        out[o++] = 'x';
                        out[o++] = hex[*c >> 4];
                        out[o++] = hex[*c & 15];
                } else
                        out[o++] = (char)*c; /* printable ASCII, space and UTF-8 as they are */
        }
        out[o++] = '"';
        out[o] = '\0';
}

void v1_seq_reset(struct agent *a)
{
        __atomic_store_n((uint32_t *)(a->page + RH_V1_OFF_SEQ), 0u, __ATOMIC_RELEASE);
        if (a->opt.mailbox_file)
                (void)msync(a->page, RH_MAILBOX_SIZE, MS_ASYNC);
}

int arm_write(struct agent *a, struct rh_error *err)
{
        uint64_t gpa = 0;
        int r;

        /* Re-read every time: the page must not have moved, but if it did the
         * host must learn the new address. */
        if (a->opt.mailbox_gpa) {
                gpa = a->opt.mailbox_gpa; /* test hook: the page is not guest memory */
                r = 0;
        } else
                r = page_gpa(a->page, &gpa);
        if (r < 0)
                agent_log(a,
                          "cannot read the mailbox gpa from /proc/self/pagemap (%s): "
                          "publishing gpa=0, the host must scan",
                          strerror(-r));
        a->arm.gpa = gpa;
        a->arm.caps = agent_caps(a);

        if (a->opt.format == FORMAT_V1) {
                char token[4 * RH_V1_TOKEN_MAX + 3];

                /* The marker only: seq was written back to 0 after the last
                 * handoff, and the length and JSON are the host's. */
                if (!rh_v1_marker_matches(a->page, a->opt.v1_token)) {
                        uint8_t seq_len[8];

                        memcpy(seq_len, a->page + RH_V1_OFF_SEQ, sizeof(seq_len));
                        r = rh_v1_write_header(a->page, a->opt.v1_token, err);
                        if (r < 0)
                                return rh_error_prefix(err, r, "arm V1 mailbox");
                        memcpy(a->page + RH_V1_OFF_SEQ, seq_len, sizeof(seq_len));
                }
                a->arm.arm_generation++;
                v1_token_quote(a->opt.v1_token, token, sizeof(token));
                snprintf(a->line, sizeof(a->line), "rehome-agent: armed gpa=0x%" PRIx64 " token=%s abi=v1",
                         gpa, token);
        } else {
                a->arm.arm_generation++;
                payloads_arm(a);
                rh_mailbox_arm_write(a->page, &a->arm);
                snprintf(a->line, sizeof(a->line), "rehome-agent: armed gpa=0x%" PRIx64 " token=%s abi=%u.%u",
                         gpa, a->token_hex, a->arm.abi_major, a->arm.abi_minor);
        }
        if (a->opt.mailbox_file)
                (void)msync(a->page, RH_MAILBOX_SIZE, MS_ASYNC);
        agent_announce(a, "%s", a->line);
        r = write_armed_file(a, a->line);
        if (r < 0)
                agent_log(a, "cannot write %s/armed: %s", a->opt.run_dir, strerror(-r));
        return 0;
}

void arm_tune_compaction(struct agent *a)
{
        static const char path[] = "/proc/sys/vm/compact_unevictable_allowed";
        _cleanup_close_ int fd = -EBADF;
        int r;

        if (!a->opt.tune_compaction)
                return;
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0) {
                if (errno != ENOENT)
                        agent_log(a, "%s: %s", path, strerror(errno));
                return;
        }
        /* Compaction may migrate mlocked pages unless told not to; a moved
         * page would leave the published gpa pointing at someone else's memory. */
        r = write_full(fd, "0\n", 2);
        if (r < 0)
                agent_log(a, "%s: %s", path, strerror(-r));
}
