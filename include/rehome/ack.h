/* SPDX-License-Identifier: MIT */
/*
 * Waiting for a clone's answer to one request, on every channel at once:
 * the ack record in the mailbox page (read through a struct rh_target) and
 * the agent's UDP ack line (a datagram socket the caller bound). One rule
 * for what is final, used by `rehome fork` and `rehome wait-ack` alike:
 *
 *   - an ack record counts only if its nonce AND seq are the request's;
 *     status applied, invalid or failed is final, status read is progress;
 *   - a UDP line counts only if it carries the request's nonce (and, when
 *     it has one, the request's seq); stage=applied or stage=error is
 *     final, stage=mailbox is progress, anything else is ignored;
 *   - whichever channel shows a final answer first wins; when the UDP line
 *     wins, the record is still read for a short grace period so that the
 *     caller gets its status, error text and stage stamps.
 *
 * hypeman V1 (opts.v1): a V1 page has no ack record and V1 acks carry no
 * nonce, so the UDP line alone decides, by hypeman's host's own rule: a
 * line counts when it holds stage=applied, mac=<the request's MAC> (in any
 * case) and ip=<the request's IPv4 address> (keys in any case, words in any
 * order, other words ignored); the stage lines older hypeman agents send
 * first (signal_seen, mailbox_seen, netlink_start, netlink_done, and rehome's
 * mailbox) are progress, never final. Two forks given the same MAC and IP
 * cannot be told apart by their acks: that is V1's limit, not checked here.
 *
 * Everything read is untrusted: a record that fails its CRC, or that
 * carries our nonce with another seq, is reported (saw_invalid, saw_stale)
 * and never taken for an answer.
 */
#ifndef REHOME_ACK_H
#define REHOME_ACK_H

#include <stdbool.h>
#include <stdint.h>

#include "rehome/error.h"
#include "rehome/mailbox.h"
#include "rehome/patch.h"
#include "rehome/request.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Exported from librehome.so (built with -fvisibility=hidden; docs/ABI.md). */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

enum rh_ack_channel {
        RH_ACK_CHANNEL_NONE = 0,
        RH_ACK_CHANNEL_MAILBOX = 1,
        RH_ACK_CHANNEL_UDP = 2,
};

struct rh_ack_wait_opts {
        struct rh_target *target; /* mailbox channel; NULL = none */
        uint64_t gpa;             /* the mailbox page (4 KiB aligned) */
        int udp_fd;               /* non-blocking datagram socket; < 0 = none */
        uint64_t nonce;           /* the request's nonce (required, non-zero) */
        uint32_t seq;             /* the request's seq; 0 = do not check */
        int timeout_ms;           /* > 0 */
        unsigned interval_us;     /* mailbox poll interval (0: 250 us) */
        unsigned grace_ms;        /* after a UDP win, read the record this long (0: 250 ms) */
        /*
         * Called once per poll interval (may be NULL): a negative return ends
         * the wait with that code (e.g. -ECHILD when the VMM died); the
         * callback fills @err itself.
         */
        int (*check)(void *ctx, struct rh_error *err);
        void *ctx;
        /* hypeman V1 matching (see above): UDP only (target NULL), nonce and
         * seq unused; the ack must name this MAC and IPv4 address. */
        bool v1;
        uint8_t v1_mac[6];
        struct rh_ipaddr v1_ip;
};

struct rh_ack_wait_result {
        enum rh_ack_channel channel; /* which showed the final answer first */
        struct rh_ack ack;           /* the record (valid when have_record) */
        bool have_record;            /* a record with our nonce and seq was read */
        struct rh_ack_line line;     /* the final UDP line (valid when have_line) */
        bool have_line;
        bool applied;                /* the final answer is "applied" */
        uint64_t t_start_ns;         /* CLOCK_MONOTONIC (now_ns) when the wait began */
        uint64_t t_final_ns;         /* ... when the final answer was first seen */
        uint64_t t_record_ns;        /* ... when the final record was seen (0: never) */
        uint64_t t_line_ns;          /* ... when the final UDP line came (0: never) */
        uint64_t t_read_ns;          /* ... when the record first said "read" (0: never) */
        bool saw_read;               /* the agent read our request (record or stage=mailbox) */
        bool saw_stale;              /* a record of another request (other nonce, or our nonce, other seq) */
        bool saw_invalid;            /* a record failed its CRC / range checks */
        unsigned foreign_lines;      /* UDP datagrams ignored (unparsable, other nonce or seq) */
};

/*
 * rh_ack_wait - wait for the final answer to the request (@opts->nonce,
 * @opts->seq) as described at the top of this file.
 * @ret: filled in every case (what was seen also on a timeout).
 * Returns 0 when a final answer came (ret->applied says which), or
 *   -EINVAL     no channel, nonce 0, timeout <= 0, gpa not aligned; in V1
 *               mode: a mailbox target, no UDP socket, or v1_ip not IPv4
 *   -ETIMEDOUT  no final answer within the timeout (@err says what was seen)
 *   -ESRCH/-EIO the target went away (the VMM exited)
 *   or the negative return of @opts->check.
 */
int rh_ack_wait(const struct rh_ack_wait_opts *opts, struct rh_ack_wait_result *ret,
                struct rh_error *err);

/* One phrase for what a timed-out wait saw, for messages: never NULL. */
const char *rh_ack_wait_seen(const struct rh_ack_wait_result *res);

/*
 * rh_text_escape - make guest-written text safe to print on one line:
 * printable ASCII is copied, '\\' becomes "\\\\", and every other byte
 * (control characters, ESC, DEL, newlines, bytes >= 0x80) becomes "\\xHH".
 * Stops at a NUL or after @len bytes. @out (@cap >= 1) is always
 * NUL-terminated; output that does not fit is cut at a whole escape.
 * Returns the length written (without the NUL).
 */
size_t rh_text_escape(const char *text, size_t len, char *out, size_t cap);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif
