/* SPDX-License-Identifier: MIT */
/*
 * rehome-agent: the guest daemon. Arms a mailbox page, waits for a resume,
 * applies the network identity the host wrote into the page, acks, re-arms.
 * main() parses options, sets everything up before the first wait (sockets,
 * buffers, mlockall), and runs the handoff sequence; it is the only place
 * that decides exit codes.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "cleanup.h"
#include "io.h"
#include "rehome-version.h"
#include "unaligned.h"

/* Zero-initialised (.bss, not .data: the buffers would otherwise sit in the
 * binary); the descriptors are set to -EBADF first thing in main(). */
static struct agent agent;

#define V1_TOKEN_ENV "HYPEMAN_RESUME_NETWORK_MAILBOX_TOKEN"

static void agent_init(struct agent *a)
{
        a->page_fd = a->epfd = a->timer_fd = a->kmsg_fd = a->uevent_fd = -EBADF;
        a->vmclock_fd = a->vmclock_notify_fd = a->kmsg_log_fd = -EBADF;
        a->nl.fd = a->packet_fd = a->udp4_fd = a->udp6_fd = -EBADF;
}

static __attribute__((format(printf, 3, 0))) void write_line(int fd, const char *prefix, const char *fmt,
                                                             va_list ap)
{
        char buf[768];
        size_t len = 0;
        int n;

        n = snprintf(buf, sizeof(buf), "%s", prefix);
        len = n > 0 ? (size_t)n : 0;
        n = vsnprintf(buf + len, sizeof(buf) - len - 1, fmt, ap);
        if (n > 0)
                len += (size_t)n < sizeof(buf) - len - 1 ? (size_t)n : sizeof(buf) - len - 2;
        buf[len++] = '\n';
        (void)write_full(fd, buf, len);
}

/* Diagnostics: stderr only. */
void agent_log(struct agent *a, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        write_line(STDERR_FILENO, "rehome-agent: ", fmt, ap);
        va_end(ap);
}

/* Lines a host parses: console (stdout) and the kernel log. */
void agent_announce(struct agent *a, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        write_line(STDOUT_FILENO, "", fmt, ap);
        va_end(ap);
        if (a->kmsg_log_fd >= 0) {
                va_start(ap, fmt);
                write_line(a->kmsg_log_fd, "<5>", fmt, ap);
                va_end(ap);
        }
}

static void help(void)
{
        printf("Usage: rehome-agent [options]\n\n"
               "Guest agent of rehome: arms a mailbox page in guest memory, waits for the VM to\n"
               "be resumed from a snapshot, applies the network identity the host wrote into the\n"
               "page (MAC, MTU, addresses, routes, neighbours, DNS, host name) over netlink,\n"
               "acks in the page and over UDP, and re-arms.\n\n"
               "Announces on stdout and /dev/kmsg, and in <run-dir>/armed:\n"
               "  rehome-agent: armed gpa=0x<hex> token=<32 hex> abi=<major>.<minor>\n"
               "  rehome-agent: prearmed seq=<n> interval_us=<n>\n"
               "  rehome-agent: applied seq=<n> status=<status> signal=<name> ...\n\n"
               "Options:\n"
               "  --signal MODE          auto (default: every source present + timer poll),\n"
               "                         vmclock, vmclock-spin, vmgenid (uevent + kmsg),\n"
               "                         vmgenid-uevent, vmgenid-kmsg, poll\n"
               "  --poll-interval-ms N   safety-net poll of the request seq (default 250; 0 = off;\n"
               "                         in forced modes other than poll the timer only\n"
               "                         watches for prearm)\n"
               "  --prearm-interval-us N fast-poll interval when the host prearms without one\n"
               "                         (default 1000)\n"
               "  --spin-interval-us N   sleep between vmclock-spin checks (default 50; 0 = yield)\n"
               "  --mailbox-format F     native (default) or v1 (hypeman's V1 mailbox)\n"
               "  --token TOKEN          V1 token: 1..%u bytes, any but NUL (spaces, UTF-8);\n"
               "                         default $" V1_TOKEN_ENV "\n"
               "  --run-dir DIR          where the 'armed' file goes (default /run/rehome)\n"
               "  --resolv-conf PATH     resolv.conf to replace (default /etc/resolv.conf)\n"
               "  --hostname-file PATH   also write the host name here (default /etc/hostname;\n"
               "                         '' = do not)\n"
               "  --machine-id-file PATH replaced with a fresh id when the request asks and it\n"
               "                         exists (default /etc/machine-id)\n"
               "  --hooks-dir DIR        after applying, run each executable here in name order\n"
               "                         with REHOME_* in the environment (default\n"
               "                         /etc/rehome/hooks.d; '' = none); a failing hook fails the ack\n"
               "  --hook-timeout-ms N    per hook (default 5000)\n"
               "  --no-handoff           do not hand the identity to the guest's network managers\n"
               "                         (networkd, ifupdown, resolved, /etc/hosts; docs/AGENT.md)\n"
               "  --payload-pages N      arm N data pages for named payloads, delivered as\n"
               "                         <run-dir>/payloads/NAME (default 16 = 64 KiB; 0 = none)\n"
               "  --hypeman-mailbox NAME=TOKEN  arm a hypeman fork mailbox (repeatable, up to 16):\n"
               "                         delivered the same way, acked stage=applied mailbox=NAME\n"
               "  --once                 exit after one handoff\n"
               "  --handoffs N           exit after N handoffs\n"
               "  --no-mlock             do not mlockall (the mailbox page stays mlocked)\n"
               "  --no-kmsg-log          do not copy announcements into /dev/kmsg\n"
               "  --apply netlink|shell  how to apply (default netlink); shell runs `ip` commands\n"
               "                         through /bin/sh -c, for benchmark comparisons only\n"
               "  -v, --verbose          more diagnostics on stderr\n"
               "  -h, --help             this help\n"
               "  --version              print the version\n\n"
               "Test hooks (for tests on a host, not in a VM):\n"
               "  --mailbox-file PATH    map a 4 KiB file MAP_SHARED as the mailbox instead of an\n"
               "                         anonymous page; implies --no-kmsg-log and leaves\n"
               "                         /proc/sys/vm/compact_unevictable_allowed alone\n"
               "  --mailbox-gpa GPA      with --mailbox-file: publish GPA (4 KiB aligned) as the\n"
               "                         page's guest-physical address, as a guest would\n"
               "  --kmsg PATH            read kmsg-format lines from this FIFO instead of /dev/kmsg\n"
               "  --vmclock PATH         a file laid out as struct vmclock_abi instead of\n"
               "                         /dev/vmclock0\n"
               "  --vmclock-notify PATH  a FIFO standing in for the device's poll() notification\n"
               "  --handoff-root DIR     prefix of the handoff's paths; without it, --mailbox-file\n"
               "                         implies --no-handoff (a host's own networkd is never touched)\n\n"
               "Exit codes: 0 done (--once/--handoffs), 1 failure, 2 usage error.\n",
               RH_V1_TOKEN_MAX);
}

static int parse_uint(const char *s, unsigned max, unsigned *ret)
{
        char *end;
        unsigned long v;

        errno = 0;
        v = strtoul(s, &end, 10);
        if (errno || end == s || *end || v > max || s[0] == '-')
                return -EINVAL;
        *ret = (unsigned)v;
        return 0;
}

static __attribute__((format(printf, 1, 2))) int usage_error(const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "rehome-agent: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry 'rehome-agent --help'\n");
        return 2;
}

static int parse_signal(const char *s, struct agent_options *o)
{
        static const struct {
                const char *name;
                unsigned sources;
        } modes[] = {
                {"auto", SRC_VMCLOCK | SRC_UEVENT | SRC_KMSG | SRC_POLL},
                {"vmclock", SRC_VMCLOCK},
                {"vmclock-spin", SRC_VMCLOCK_SPIN},
                {"vmgenid", SRC_UEVENT | SRC_KMSG},
                {"vmgenid-uevent", SRC_UEVENT},
                {"vmgenid-kmsg", SRC_KMSG},
                {"poll", SRC_POLL},
        };

        for (size_t i = 0; i < ELEMENTSOF(modes); i++)
                if (strcmp(s, modes[i].name) == 0) {
                        o->sources = modes[i].sources;
                        o->signal_forced = i != 0;
                        return 0;
                }
        return -EINVAL;
}

static int parse_options(int argc, char **argv, struct agent_options *o)
{
        enum {
                OPT_SIGNAL = 0x100,
                OPT_POLL,
                OPT_PREARM,
                OPT_SPIN,
                OPT_FORMAT,
                OPT_TOKEN,
                OPT_RUNDIR,
                OPT_RESOLV,
                OPT_HOSTFILE,
                OPT_ONCE,
                OPT_HANDOFFS,
                OPT_NOMLOCK,
                OPT_NOKMSGLOG,
                OPT_VERSION,
                OPT_MAILBOX,
                OPT_MAILBOXGPA,
                OPT_KMSG,
                OPT_VMCLOCK,
                OPT_VMNOTIFY,
                OPT_APPLY,
                OPT_MACHINEID,
                OPT_HOOKS,
                OPT_NO_HANDOFF,
                OPT_HANDOFF_ROOT,
                OPT_HOOKTIMEOUT,
                OPT_PAYLOADPAGES,
                OPT_HFM,
        };
        static const struct option options[] = {
                {"signal", required_argument, NULL, OPT_SIGNAL},
                {"poll-interval-ms", required_argument, NULL, OPT_POLL},
                {"prearm-interval-us", required_argument, NULL, OPT_PREARM},
                {"spin-interval-us", required_argument, NULL, OPT_SPIN},
                {"mailbox-format", required_argument, NULL, OPT_FORMAT},
                {"token", required_argument, NULL, OPT_TOKEN},
                {"run-dir", required_argument, NULL, OPT_RUNDIR},
                {"resolv-conf", required_argument, NULL, OPT_RESOLV},
                {"hostname-file", required_argument, NULL, OPT_HOSTFILE},
                {"once", no_argument, NULL, OPT_ONCE},
                {"handoffs", required_argument, NULL, OPT_HANDOFFS},
                {"no-mlock", no_argument, NULL, OPT_NOMLOCK},
                {"no-kmsg-log", no_argument, NULL, OPT_NOKMSGLOG},
                {"mailbox-file", required_argument, NULL, OPT_MAILBOX},
                {"mailbox-gpa", required_argument, NULL, OPT_MAILBOXGPA},
                {"kmsg", required_argument, NULL, OPT_KMSG},
                {"vmclock", required_argument, NULL, OPT_VMCLOCK},
                {"vmclock-notify", required_argument, NULL, OPT_VMNOTIFY},
                {"apply", required_argument, NULL, OPT_APPLY},
                {"machine-id-file", required_argument, NULL, OPT_MACHINEID},
                {"hooks-dir", required_argument, NULL, OPT_HOOKS},
                {"no-handoff", no_argument, NULL, OPT_NO_HANDOFF},
                {"handoff-root", required_argument, NULL, OPT_HANDOFF_ROOT},
                {"hook-timeout-ms", required_argument, NULL, OPT_HOOKTIMEOUT},
                {"payload-pages", required_argument, NULL, OPT_PAYLOADPAGES},
                {"hypeman-mailbox", required_argument, NULL, OPT_HFM},
                {"verbose", no_argument, NULL, 'v'},
                {"help", no_argument, NULL, 'h'},
                {"version", no_argument, NULL, OPT_VERSION},
                {},
        };
        int c;

        *o = (struct agent_options){
                .sources = SRC_VMCLOCK | SRC_UEVENT | SRC_KMSG | SRC_POLL,
                .format = FORMAT_NATIVE,
                .kmsg_path = "/dev/kmsg",
                .vmclock_path = "/dev/vmclock0",
                .run_dir = "/run/rehome",
                .resolv_conf = "/etc/resolv.conf",
                .hostname_file = "/etc/hostname",
                .machine_id_file = "/etc/machine-id",
                .hooks_dir = "/etc/rehome/hooks.d",
                .handoff = true,
                .hook_timeout_ms = 5000,
                .payload_pages = RH_PAYLOAD_PAGES_DEFAULT,
                .poll_interval_ms = 250,
                .prearm_interval_us = 1000,
                .spin_interval_us = 50,
                .kmsg_log = true,
                .mlock = true,
                .tune_compaction = true,
        };
        while ((c = getopt_long(argc, argv, "vh", options, NULL)) >= 0) {
                switch (c) {
                case OPT_SIGNAL:
                        if (parse_signal(optarg, o) < 0)
                                return usage_error("--signal: unknown mode '%s'", optarg);
                        break;
                case OPT_POLL:
                        if (parse_uint(optarg, 3600000, &o->poll_interval_ms) < 0)
                                return usage_error("--poll-interval-ms: '%s' is not 0..3600000", optarg);
                        break;
                case OPT_PREARM:
                        if (parse_uint(optarg, 1000000, &o->prearm_interval_us) < 0 ||
                            o->prearm_interval_us < 100)
                                return usage_error("--prearm-interval-us: '%s' is not 100..1000000", optarg);
                        break;
                case OPT_SPIN:
                        if (parse_uint(optarg, 1000000, &o->spin_interval_us) < 0)
                                return usage_error("--spin-interval-us: '%s' is not 0..1000000", optarg);
                        break;
                case OPT_FORMAT:
                        if (strcmp(optarg, "native") == 0)
                                o->format = FORMAT_NATIVE;
                        else if (strcmp(optarg, "v1") == 0)
                                o->format = FORMAT_V1;
                        else
                                return usage_error("--mailbox-format: '%s' is not native or v1", optarg);
                        break;
                case OPT_TOKEN:
                        o->v1_token = optarg;
                        break;
                case OPT_RUNDIR:
                        o->run_dir = optarg;
                        break;
                case OPT_RESOLV:
                        o->resolv_conf = optarg;
                        break;
                case OPT_HOSTFILE:
                        o->hostname_file = optarg;
                        break;
                case OPT_MACHINEID:
                        o->machine_id_file = optarg;
                        break;
                case OPT_NO_HANDOFF:
                        o->handoff = false;
                        break;
                case OPT_HANDOFF_ROOT:
                        o->handoff_root = optarg;
                        break;
                case OPT_HOOKS:
                        o->hooks_dir = optarg;
                        break;
                case OPT_HOOKTIMEOUT:
                        if (parse_uint(optarg, 600000, &o->hook_timeout_ms) < 0 || o->hook_timeout_ms == 0)
                                return usage_error("--hook-timeout-ms: '%s' is not 1..600000", optarg);
                        break;
                case OPT_PAYLOADPAGES:
                        if (parse_uint(optarg, RH_PAYLOAD_PAGES_MAX, &o->payload_pages) < 0)
                                return usage_error("--payload-pages: '%s' is not 0..%u", optarg, RH_PAYLOAD_PAGES_MAX);
                        break;
                case OPT_HFM: {
                        /* NAME=TOKEN: the name never holds '=', the token may. */
                        char *eq = strchr(optarg, '=');

                        if (!eq)
                                return usage_error("--hypeman-mailbox: expected NAME=TOKEN, got '%s'", optarg);
                        *eq = '\0';
                        if (o->n_hfm >= RH_PAYLOADS_MAX)
                                return usage_error("--hypeman-mailbox: at most %u", RH_PAYLOADS_MAX);
                        /* Checked without building the marker: a second copy of it anywhere in
                         * guest memory (this stack) could be found by a host scan first. */
                        if (!rh_payload_name_valid(optarg) || !rh_hfm_token_valid(eq + 1))
                                return usage_error("--hypeman-mailbox: bad name '%s' (^[A-Za-z0-9._:-]{1,64}$) or token (1..%u bytes)",
                                                   optarg, RH_HFM_TOKEN_MAX);
                        for (unsigned i = 0; i < o->n_hfm; i++)
                                if (strcmp(o->hfm[i].name, optarg) == 0)
                                        return usage_error("--hypeman-mailbox: %s given twice", optarg);
                        o->hfm[o->n_hfm].name = optarg;
                        o->hfm[o->n_hfm].token = eq + 1;
                        o->n_hfm++;
                        break;
                }
                case OPT_ONCE:
                        o->handoffs = 1;
                        break;
                case OPT_HANDOFFS:
                        if (parse_uint(optarg, UINT32_MAX, &o->handoffs) < 0)
                                return usage_error("--handoffs: '%s' is not a number", optarg);
                        break;
                case OPT_NOMLOCK:
                        o->mlock = false;
                        break;
                case OPT_NOKMSGLOG:
                        o->kmsg_log = false;
                        break;
                case OPT_MAILBOX:
                        o->mailbox_file = optarg;
                        o->kmsg_log = false;
                        o->tune_compaction = false;
                        break;
                case OPT_MAILBOXGPA: {
                        char *end;
                        errno = 0;
                        o->mailbox_gpa = strtoull(optarg, &end, 0);
                        if (errno || end == optarg || *end || o->mailbox_gpa == 0 || (o->mailbox_gpa & 0xfff)) {
                                return usage_error("--mailbox-gpa: '%s' is not a 4 KiB aligned address", optarg);
                        }
                        break;
                }
                case OPT_KMSG:
                        o->kmsg_path = optarg;
                        break;
                case OPT_VMCLOCK:
                        o->vmclock_path = optarg;
                        break;
                case OPT_VMNOTIFY:
                        o->vmclock_notify = optarg;
                        break;
                case OPT_APPLY:
                        if (strcmp(optarg, "netlink") == 0)
                                o->apply_shell = false;
                        else if (strcmp(optarg, "shell") == 0)
                                o->apply_shell = true;
                        else
                                return usage_error("--apply: '%s' is not netlink or shell", optarg);
                        break;
                case 'v':
                        o->verbose = true;
                        break;
                case 'h':
                        help();
                        exit(0);
                case OPT_VERSION:
                        printf("rehome-agent %s\n", REHOME_VERSION);
                        exit(0);
                default:
                        return 2; /* getopt printed why */
                }
        }
        if (optind < argc)
                return usage_error("unexpected argument '%s'", argv[optind]);
        if (o->mailbox_gpa && !o->mailbox_file)
                return usage_error("--mailbox-gpa is for --mailbox-file");
        /* A file-backed mailbox is a test on a host: its networkd is not ours. */
        if (o->mailbox_file && !o->handoff_root)
                o->handoff = false;
        if (o->format == FORMAT_V1) {
                /* As hypeman's agent does, the token may come from the environment. */
                const char *from = "--token";

                if (!o->v1_token) {
                        o->v1_token = getenv(V1_TOKEN_ENV);
                        from = V1_TOKEN_ENV;
                }
                if (!o->v1_token)
                        return usage_error("--mailbox-format v1 needs --token or " V1_TOKEN_ENV);
                if (!rh_v1_token_valid(o->v1_token))
                        return usage_error("%s: a V1 token is 1..%u bytes, got %zu", from, RH_V1_TOKEN_MAX,
                                           strlen(o->v1_token));
        } else if (o->v1_token)
                return usage_error("--token is for --mailbox-format v1");
        if ((o->sources & SRC_POLL) && o->poll_interval_ms == 0) {
                if (o->signal_forced)
                        return usage_error("--signal poll needs --poll-interval-ms > 0");
                o->sources &= ~(unsigned)SRC_POLL;
        }
        return 0;
}

/* Touch the stack the hot path may use before mlockall, so it is locked in. */
static __attribute__((noinline)) void prefault_stack(void)
{
        volatile char stack[128 * 1024];

        for (size_t i = 0; i < sizeof(stack); i += 4096)
                stack[i] = 0;
}

/* ------------------------------------------------------------------ */

static void finish(struct agent *a, const struct rh_request *req, const char *udp_stage)
{
        char extra[2 * RH_ACK_ERROR_MAX + 16] = "";

        if (a->opt.format == FORMAT_V1) {
                /* hypeman's rule: a V1 page holds only V1 fields (no ack record;
                 * 0x0c0.. is inside V1's JSON), the UDP line is the ack, and the
                 * guest writes seq back to 0 after it, so that the next host
                 * (which always writes seq 1) is seen as new. */
                ack_send_udp(a, req, udp_stage);
                v1_seq_reset(a);
                a->last_seq = 0;
        } else {
                ack_write(a);
                ack_send_udp(a, req, udp_stage);
                a->last_seq = a->ack.seq;
        }
        if (a->ack.error[0]) {
                memcpy(extra, " error=", 7);
                ack_quote(a->ack.error, extra + 7, sizeof(extra) - 7);
        }
        agent_announce(
                a,
                "rehome-agent: applied seq=%u status=%s signal=%s applied=0x%x "
                "read_us=%" PRIu64 " apply_us=%" PRIu64 "%s",
                a->ack.seq, rh_ack_status_name(a->ack.status), rh_signal_name(a->ack.signal), a->ack.applied,
                a->ack.t_read_ns > a->ack.t_signal_ns ? (a->ack.t_read_ns - a->ack.t_signal_ns) / 1000 : 0,
                a->ack.t_applied_ns > a->ack.t_read_ns ? (a->ack.t_applied_ns - a->ack.t_read_ns) / 1000 : 0,
                extra);
}

static void reject(struct agent *a, const struct rh_request *req, uint32_t status, int code, const char *msg)
{
        a->ack.status = status;
        a->ack.error_code = code < 0 ? -code : code;
        size_t n = strnlen(msg, sizeof(a->ack.error) - 1);

        memcpy(a->ack.error, msg, n); /* cut to the record's 255 chars */
        a->ack.error[n] = '\0';
        if (!a->ack.t_applied_ns)
                a->ack.t_applied_ns = now_ns();
        finish(a, req, "error");
}

/* The ack's statistics: the steps so far, and the system calls and netlink
 * round trips since the handoff began (counter values @sys0...). The final
 * ack record and UDP line come after, so they are not in their own counts. */
static void stats_fill(struct agent *a, uint32_t sys0, uint32_t nl_sys0, uint32_t nl_rt0)
{
        a->ack.has_stats = true;
        a->ack.syscalls = (a->syscalls - sys0) + (a->nl.n_syscalls - nl_sys0);
        a->ack.nl_round_trips = a->nl.n_round_trips - nl_rt0;
        for (unsigned i = 0; i < RH_STEP_COUNT; i++)
                a->ack.step_ns[i] = a->result.step_ns[i] > UINT32_MAX ? UINT32_MAX : (uint32_t)a->result.step_ns[i];
}

/* Read the request, retrying a torn read; ENODATA means nothing new. */
static int read_request(struct agent *a, uint32_t *ret_seq, uint64_t *ret_nonce, bool *ret_header_ok,
                        struct rh_error *err)
{
        int r = 0;

        for (int tries = 0; tries < 5; tries++) {
                *ret_header_ok = false;
                *ret_seq = 0;
                memset(err, 0, sizeof(*err));
                if (a->opt.format == FORMAT_V1) {
                        r = rh_v1_decode(a->page, RH_MAILBOX_SIZE, &a->req, ret_seq, err);
                        *ret_nonce = 0;
                        /* V1 has no checksum; the seq is readable whenever the magic is. */
                        if (r >= 0 || r == -EBADMSG || r == -EINVAL || r == -EMSGSIZE) {
                                *ret_seq = unaligned_read_le32(a->page + RH_V1_OFF_SEQ);
                                *ret_header_ok = *ret_seq != 0;
                        }
                } else {
                        r = rh_mailbox_read_request(a->page, &a->req, ret_seq, ret_nonce, err);
                        *ret_header_ok = *ret_seq != 0;
                }
                /* Torn (EAGAIN) or a CRC that does not match yet: the host writes the
                 * seq last, so give a racing writer a moment before judging. */
                if (r != -EAGAIN && r != -EBADMSG)
                        return r;
                if (r == -EBADMSG && *ret_header_ok)
                        return r;
                {
                        struct timespec ts = {.tv_nsec = 200000};
                        AGENT_SYSCALL(a);
                        nanosleep(&ts, NULL);
                }
        }
        return r;
}

/* Returns true if a request (valid or not) was answered. */
static bool handoff(struct agent *a, int signal, uint64_t t_signal)
{
        struct rh_error e = {0};
        uint32_t seq = 0;
        uint64_t nonce = 0;
        bool header_ok = false;
        uint64_t t_validated, t_acked_read;
        const uint32_t sys0 = a->syscalls, nl_sys0 = a->nl.n_syscalls, nl_rt0 = a->nl.n_round_trips;
        int r;

        memset(&a->ack, 0, sizeof(a->ack));
        memset(a->result.step_ns, 0, sizeof(a->result.step_ns));
        a->ack.signal = (uint32_t)signal;
        a->ack.t_signal_ns = t_signal;
        a->ack.arm_generation = a->arm.arm_generation;

        r = read_request(a, &seq, &nonce, &header_ok, &e);
        a->ack.t_read_ns = now_ns();
        if (r == -ENODATA)
                return false;
        if (r < 0) {
                /* Invalid before any change: answer on every channel we can. */
                static struct rh_request target;

                if (!header_ok) {
                        seq = unaligned_read_le32(a->page +
                                                  (a->opt.format == FORMAT_V1 ? RH_V1_OFF_SEQ : RH_OFF_REQUEST));
                        if (a->opt.format == FORMAT_NATIVE)
                                nonce = unaligned_read_le64(a->page + RH_OFF_REQUEST +
                                                            offsetof(struct rh_wire_request, nonce));
                }
                a->ack.seq = seq;
                a->ack.nonce = nonce;
                memset(&target, 0, sizeof(target));
                if (a->opt.format == FORMAT_NATIVE && header_ok)
                        (void)ack_find_udp_target(a->page, &target);
                rh_error_prefix(&e, r, "request %u rejected", seq);
                reject(a, &target, RH_ACK_INVALID, r, e.msg);
                return true;
        }
        a->ack.seq = seq;
        a->ack.nonce = a->opt.format == FORMAT_V1 ? 0 : a->req.nonce;

        /* The arm-time copy of the links describes a restored snapshot; a
         * plain poll may be a live guest whose links changed since: dump. */
        if (signal == RH_SIGNAL_POLL || signal == RH_SIGNAL_NONE)
                a->links_at_arm = false;
        r = apply_validate(a, &a->req, &e);
        if (r == 0 && a->opt.format == FORMAT_NATIVE)
                r = payloads_check(a, &a->req, &e);
        t_validated = now_ns();
        a->result.step_ns[RH_STEP_VALIDATE] = t_validated - a->ack.t_read_ns;
        if (r < 0) {
                stats_fill(a, sys0, nl_sys0, nl_rt0);
                rh_error_prefix(&e, r, "request %u rejected", seq);
                reject(a, &a->req, RH_ACK_INVALID, r, e.msg);
                return true;
        }
        if (a->opt.format == FORMAT_NATIVE) {
                a->ack.status = RH_ACK_READ;
                ack_write(a);
        }
        if (a->req.flags & RH_REQ_ACK_EARLY)
                ack_send_udp(a, &a->req, "mailbox");
        t_acked_read = now_ns();
        a->result.step_ns[RH_STEP_ACK_READ] = t_acked_read - t_validated;

        handoff_snapshot(a);
        r = a->opt.apply_shell ? apply_request_shell(a, &a->req, &a->result)
                               : apply_request(a, &a->req, &a->result);
        if (r >= 0)
                r = handoff_write(a, &a->req, &a->result);
        a->ack.t_applied_ns = now_ns();
        a->ack.applied = a->result.applied;
        stats_fill(a, sys0, nl_sys0, nl_rt0);
        if (r < 0) {
                reject(a, &a->req, RH_ACK_FAILED, r, a->result.what);
                return true;
        }
        r = payloads_deliver(a, a->result.what, sizeof(a->result.what));
        if (r < 0) {
                reject(a, &a->req, RH_ACK_FAILED, r, a->result.what);
                return true;
        }
        a->ack.status = RH_ACK_APPLIED;
        finish(a, &a->req, "applied");
        handoff_after_ack(a, &a->req, &a->result);
        if (a->opt.verbose) {
                char steps[512];
                size_t len = 0;

                for (unsigned i = 0; i < RH_STEP_COUNT; i++)
                        len += (size_t)snprintf(steps + len, sizeof(steps) - len, " %s %" PRIu32,
                                                rh_ack_step_name(i), a->ack.step_ns[i]);
                agent_log(a, "seq %u: %u kernel objects changed; %u syscalls, %u netlink round trips; ns:%s",
                          seq, a->result.changes, a->ack.syscalls, a->ack.nl_round_trips, steps);
        }
        return true;
}

int main(int argc, char **argv)
{
        struct agent *a = &agent;
        struct rh_error err = {0};
        unsigned done = 0;
        int r;

        agent_init(a);
        r = parse_options(argc, argv, &a->opt);
        if (r != 0)
                return r;
        {
                /* A blocked mask survives exec: a parent that blocked SIGTERM (a
                 * supervisor, a bench) must not make the agent deaf to it. */
                sigset_t none;
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
        }
        signal(SIGPIPE, SIG_IGN);

        if (a->opt.kmsg_log)
                a->kmsg_log_fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
        arm_tune_compaction(a);

        if ((r = arm_setup(a, &err)) < 0 || (r = rh_nl_open(&a->nl, &err)) < 0 ||
            (r = announce_setup(a, &err)) < 0 || (r = ack_setup(a, &err)) < 0 ||
            (r = payloads_setup(a, &err)) < 0 || (r = wait_setup(a, &err)) < 0) {
                agent_log(a, "%s", err.msg);
                return 1;
        }
        if (a->opt.mlock) {
                prefault_stack();
                /* Everything the hot path touches is mapped now: lock it so a
                 * restored clone does not fault it back in one page at a time. */
                if (mlockall(MCL_CURRENT | MCL_FUTURE) < 0)
                        agent_log(a, "mlockall: %s (continuing without)", strerror(errno));
        }
        /* Before the armed line: a host may snapshot as soon as it sees it. */
        apply_capture(a);
        if ((r = arm_write(a, &err)) < 0) {
                agent_log(a, "%s", err.msg);
                return 1;
        }

        for (;;) {
                uint64_t t_signal = 0;
                int signal = wait_for_handoff(a, &t_signal, &err);

                if (signal < 0) {
                        agent_log(a, "%s", err.msg);
                        return 1;
                }
                bool served = handoff(a, signal, t_signal);

                /* After the network (the ack goes to the new gateway): hypeman fork mailboxes. */
                if (hfm_pending(a))
                        hfm_serve(a);
                if (!served)
                        continue;
                wait_handoff_done(a);
                /* Re-arm: a clone can itself be snapshotted and forked again. */
                apply_capture(a);
                if ((r = arm_write(a, &err)) < 0) {
                        agent_log(a, "%s", err.msg);
                        return 1;
                }
                if (a->opt.handoffs && ++done >= a->opt.handoffs)
                        return 0;
        }
}
