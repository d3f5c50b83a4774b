/* SPDX-License-Identifier: MIT */
/*
 * rehome-agent internals: the one agent state (a static object, mlocked with
 * the rest of the process, so nothing on the hot path allocates or faults),
 * the options, and the entry points of each concern:
 *
 *   arm.c       mailbox page, gpa from /proc/self/pagemap, arm header, announce
 *   wait.c      the epoll loop: vmclock, vmgenid uevent/kmsg, timer poll, prearm
 *   apply.c     request -> kernel: links, addresses, routes, neighbours, DNS, host name
 *   announce.c  gratuitous ARP / unsolicited neighbour advertisement (packet socket)
 *   ack.c       ack record in the page and the UDP line
 *   parse.c     parsers of untrusted bytes (kmsg lines, uevents, ACK_UDP TLV)
 *   main.c      options, set-up, the handoff sequence
 */
#ifndef REHOME_AGENT_H
#define REHOME_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netlink.h"
#include "rehome/mailbox.h"
#include "rehome/payloads.h"
#include "vmclock-abi.h"

/* Signal sources (bit mask of enabled ones). */
enum {
        SRC_VMCLOCK = 1u << 0,
        SRC_VMCLOCK_SPIN = 1u << 1,
        SRC_UEVENT = 1u << 2,
        SRC_KMSG = 1u << 3,
        SRC_POLL = 1u << 4,
};

enum mailbox_format {
        FORMAT_NATIVE,
        FORMAT_V1,
};

struct agent_options {
        unsigned sources;   /* SRC_* enabled by --signal */
        bool signal_forced; /* --signal other than auto */
        enum mailbox_format format;
        const char *v1_token;
        const char *mailbox_file;    /* test hook: file-backed page */
        uint64_t mailbox_gpa;        /* test hook with mailbox_file: publish this gpa (0: pagemap's) */
        const char *kmsg_path;       /* read side; default /dev/kmsg */
        const char *vmclock_path;    /* default /dev/vmclock0 */
        const char *vmclock_notify;  /* test hook: FIFO standing in for the device's poll() */
        const char *run_dir;         /* default /run/rehome */
        const char *resolv_conf;     /* default /etc/resolv.conf */
        const char *hostname_file;   /* default /etc/hostname, "" = do not write */
        const char *machine_id_file; /* default /etc/machine-id (replaced only if it exists) */
        const char *hooks_dir;       /* default /etc/rehome/hooks.d ("" = none) */
        unsigned hook_timeout_ms;    /* per hook, default 5000 */
        unsigned poll_interval_ms;   /* safety-net poll; 0 disables */
        unsigned prearm_interval_us; /* default fast-poll interval */
        unsigned spin_interval_us;   /* vmclock-spin sleep between checks */
        unsigned handoffs;           /* exit after this many (0 = never); --once = 1 */
        bool kmsg_log;               /* write announce lines to /dev/kmsg */
        bool mlock;                  /* mlockall */
        bool tune_compaction;        /* write compact_unevictable_allowed=0 */
        bool verbose;
        bool apply_shell;            /* --apply shell: `ip` via sh -c (benchmark comparison) */
        bool handoff;                /* hand the identity to networkd/ifupdown/resolved/hosts */
        const char *handoff_root;    /* test hook: prefix of the handoff's paths (NULL = /) */
        unsigned payload_pages;      /* --payload-pages N: data pages armed for payloads (0 = none) */
        unsigned n_hfm;              /* --hypeman-mailbox NAME=TOKEN */
        struct {
                const char *name, *token;
        } hfm[RH_PAYLOADS_MAX];
};

/* What the apply step did, for the ack and for a half-way failure report. */
struct apply_result {
        uint32_t applied;            /* RH_APPLIED_* completed */
        uint32_t failed_step;        /* RH_APPLIED_* bit that failed, 0 if none */
        unsigned changes;            /* kernel objects actually changed */
        char what[RH_ACK_ERROR_MAX]; /* failure text */
        int ifindex[RH_MAX_IFACES];  /* resolved interfaces */
        /* CLOCK_MONOTONIC ns per step (enum rh_ack_step; apply fills CLOCK..HOOKS,
         * main.c VALIDATE and ACK_READ): instructions under QEMU -icount shift=0. */
        uint64_t step_ns[RH_STEP_COUNT];
};

/* Count one system call the agent makes on the handoff path (the ack's
 * `syscalls`, with the netlink socket's own count, rh_nl.n_syscalls). */
#define AGENT_SYSCALL(a) ((a)->syscalls++)

/* parse.c: no I/O, no agent state. */
struct kmsg_scan {
        char line[512];
        size_t len;
};
/* Feed kmsg bytes (any chunking); true if a completed line held the vmgenid text. */
bool kmsg_scan_feed(struct kmsg_scan *scan, const char *data, size_t len);
/* True if the uevent @msg (NUL-separated, @len bytes) carries NEW_VMGENID=1. */
bool uevent_has_vmgenid(const char *msg, size_t len);
/* Find the ack target in a payload that failed to decode (bounds-checked). */
bool ack_find_udp_target(const uint8_t *page, struct rh_request *ret_req);

struct agent {
        struct agent_options opt;

        /* The mailbox. */
        uint8_t *page;
        int page_fd;
        struct rh_arm arm;
        char token_hex[2 * RH_TOKEN_LEN + 1];
        uint32_t last_seq;      /* request seq last handled (0: none) */
        uint32_t prearm_served; /* prearm seq already confirmed */
        bool fast_poll;
        uint32_t fast_interval_us;
        uint64_t fast_until_ns; /* 0: until the handoff */

        /* Signal sources. */
        int epfd, timer_fd, kmsg_fd, uevent_fd, vmclock_fd, vmclock_notify_fd;
        int kmsg_log_fd;
        const volatile struct rh_vmclock_abi *vmclock_map;
        uint64_t vmclock_generation;
        bool vmclock_has_generation;
        bool vmclock_notifies;

        /* Preallocated for the hot path. */
        struct rh_nl nl;
        uint32_t syscalls; /* AGENT_SYSCALL: never reset, the handoff takes deltas */
        int packet_fd;
        int udp4_fd, udp6_fd;
        struct rh_request req;
        struct rh_ack ack;
        struct apply_result result;
        struct rh_nl_link links[64];
        size_t n_links; /* entries of links[] filled by the last apply_validate() */
        /* links[] was dumped when the agent armed (apply_capture), before the
         * snapshot: the next handoff validates from it instead of dumping. */
        bool links_at_arm;
        bool links_stale_ok; /* this handoff uses the arm-time copy (apply_link re-checks) */
        struct rh_nl_addr addrs[64];
        /* addrs[] holds every address of link addrs_ifindex (0: none) as the
         * kernel has it now: relink_local's dump, reused by apply_addrs. */
        int addrs_ifindex;
        size_t n_addrs;
        struct rh_nl_route routes[64];
        struct kmsg_scan kmsg_scan;
        char io_buf[8192];
        char line[1024];

        /* Named payloads (payloads.c). */
        uint8_t *paydir, *paydata;      /* directory page, then payload_pages data pages */
        unsigned n_payloads;            /* of the request being served */
        struct rh_payload payloads[RH_PAYLOADS_MAX];
        uint8_t *hfm_page[RH_PAYLOADS_MAX]; /* hypeman fork mailboxes */
};

/* main.c */
void agent_log(struct agent *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void agent_announce(struct agent *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* arm.c */
int arm_setup(struct agent *a, struct rh_error *err);
int arm_write(struct agent *a, struct rh_error *err);
/* V1 mode: write seq 0 at +64, as hypeman's guest does once it has answered. */
void v1_seq_reset(struct agent *a);
void arm_tune_compaction(struct agent *a);

/* The gpa of one mlocked page of ours (/proc/self/pagemap). */
int arm_page_gpa(const void *addr, uint64_t *ret_gpa);

/* payloads.c */
int payloads_setup(struct agent *a, struct rh_error *err);
/* Write the directory and fill the arm header's payload fields (arm_write calls it). */
void payloads_arm(struct agent *a);
/* Check the request's payload stream before anything is applied. */
int payloads_check(struct agent *a, const struct rh_request *req, struct rh_error *err);
/* Deliver every payload; fills the ack's payload fields. 0 or the first -errno (text in @what). */
int payloads_deliver(struct agent *a, char *what, size_t cap);
/* hypeman fork mailboxes: any seq != 0? / deliver, ack and reset every pending one. */
bool hfm_pending(const struct agent *a);
void hfm_serve(struct agent *a);

/* wait.c */
int wait_setup(struct agent *a, struct rh_error *err);
/* Block until a source fires and the request seq differs from last_seq.
 * Returns the signal (enum rh_signal) and *ret_t_signal_ns, or -errno. */
int wait_for_handoff(struct agent *a, uint64_t *ret_t_signal_ns, struct rh_error *err);
/* After a handoff: leave fast poll, confirm inactive. */
void wait_handoff_done(struct agent *a);

/* apply.c */
/* Resolve interfaces and check the request against the kernel's view:
 * no change made. Returns 0 or -errno with the reason in @err. */
int apply_validate(struct agent *a, const struct rh_request *req, struct rh_error *err);
/* Dump the links into a->links now (at arm time): the next apply_validate()
 * resolves from this copy when it can. Best effort (no copy: it dumps). */
void apply_capture(struct agent *a);
/* Apply; on failure result.applied/failed_step/what say how far it got. */
int apply_request(struct agent *a, const struct rh_request *req, struct apply_result *res);
/* apply-shell.c: the same through `ip` commands in /bin/sh -c (--apply shell). */
int apply_request_shell(struct agent *a, const struct rh_request *req, struct apply_result *res);

/* render.c: the handoff's file texts (no I/O). Each returns the length
 * rendered into @buf (NUL-terminated) or -ENOBUFS; render_ifupdown returns
 * -ENOENT when @old has no `iface IFNAME inet|inet6 static` stanza for a
 * family the request has an address of. */
int render_networkd(const struct rh_request *req, unsigned iface, const char *ifname, char *buf, size_t cap);
int render_ifupdown(const char *old, size_t old_len, const struct rh_request *req, unsigned iface,
                    const char *ifname, char *buf, size_t cap);
int render_hosts(const char *old, size_t old_len, const char *old_name, const char *new_name, char *buf,
                 size_t cap);

/* handoff.c */
/* Before the apply: remember the host name /etc/hosts may still carry. */
void handoff_snapshot(struct agent *a);
/* True if @path is a symlink into /run/systemd/resolve/ (never replaced). */
bool handoff_resolv_is_resolved(const char *path);
/* After the apply, before the ack: write the managers' files; sets the
 * RH_APPLIED_NETWORKD/IFUPDOWN/HOSTS bits. -errno with res->what on failure. */
int handoff_write(struct agent *a, const struct rh_request *req, struct apply_result *res);
/* After the ack: networkctl reload, resolvectl; rewrites the ack record. */
void handoff_after_ack(struct agent *a, const struct rh_request *req, const struct apply_result *res);

/* announce.c */
int announce_setup(struct agent *a, struct rh_error *err);
int announce_ipv4(struct agent *a, int ifindex, const uint8_t mac[6], const uint8_t ip[4]);
int announce_ipv6(struct agent *a, int ifindex, const uint8_t mac[6], const uint8_t ip[16]);

/* ack.c */
int ack_setup(struct agent *a, struct rh_error *err);
/* Send the UDP line (stage=mailbox|applied|error) if the request has a target. */
void ack_send_udp(struct agent *a, const struct rh_request *req, const char *stage);
void ack_write(struct agent *a);
/* Quote @text for a key="value" pair (rh_ack_line_parse syntax) into @out. */
void ack_quote(const char *text, char *out, size_t cap);

#endif
