/* SPDX-License-Identifier: MIT */
/*
 * Locating and patching a mailbox through any target (memory file, live
 * process, overlay page), and reading back what the agent wrote.
 *
 * Locate is O(1) on the hot path: the template recorded the gpa the agent
 * published, so a fork reads exactly one page there and verifies it. The
 * scan is a fallback for when nothing was recorded; it looks only at page
 * starts (the agent's page is page-aligned) and reads in large chunks.
 * hypeman's V1 mailbox is the exception: its guest announces no address and
 * its buffer need not be page-aligned, so a V1 marker is searched for at
 * every byte offset (rh_v1_locate) and patched where it is (rh_v1_patch).
 *
 * A page is believed only if its arm header is valid (magic, ABI major,
 * CRC), carries the expected token, and records its own gpa as the address
 * it was read from. The last check throws out stale copies of the page the
 * guest may have elsewhere (page cache, a freed buffer), which would
 * otherwise pass magic, CRC and token.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cleanup.h"
#include "rehome/patch.h"
#include "rehome/payloads.h"
#include "target.h"
#include "unaligned.h"

#define PAGE 4096u

/*
 * Verify @page as the mailbox expected at @gpa (RH_GPA_NONE: any address)
 * with @token (NULL: any). Returns 0, -ENOENT (not this mailbox), or the
 * rh_mailbox_arm_read error for a page that has the magic but is unusable.
 */
static int verify_page(const uint8_t *page, uint64_t gpa, const uint8_t *token, struct rh_arm *ret_arm,
                       struct rh_error *err)
{
        struct rh_arm arm;
        int r;

        r = rh_mailbox_arm_read(page, RH_MAILBOX_SIZE, &arm, err);
        if (r == -ENOMSG)
                return rh_error_set(err, ENOENT, "no mailbox magic");
        if (r < 0)
                return r;
        if (token && memcmp(arm.token, token, RH_TOKEN_LEN) != 0)
                return rh_error_set(err, ENOENT, "token does not match");
        if (gpa != RH_GPA_NONE && arm.gpa != gpa)
                return rh_error_set(err, ENOENT, "page records gpa 0x%" PRIx64 ", not its own address",
                                    arm.gpa);
        if (ret_arm)
                *ret_arm = arm;
        return 0;
}

static int check_aligned(uint64_t gpa, struct rh_error *err)
{
        if (gpa % PAGE != 0)
                return rh_error_set(err, EINVAL, "mailbox gpa 0x%" PRIx64 " is not 4 KiB aligned", gpa);
        return 0;
}

/* Read and verify the page at @gpa. */
static int load_page(struct rh_target *t, uint64_t gpa, const uint8_t *token, uint8_t *page,
                     struct rh_error *err)
{
        int r;

        r = check_aligned(gpa, err);
        if (r < 0)
                return r;
        r = rh_target_read(t, gpa, page, RH_MAILBOX_SIZE, err);
        if (r < 0)
                return rh_error_prefix(err, r, "mailbox at gpa 0x%" PRIx64, gpa);
        r = verify_page(page, gpa, token, NULL, err);
        if (r < 0)
                return rh_error_prefix(err, r, "mailbox at gpa 0x%" PRIx64, gpa);
        return 0;
}

/* What a scan looks for: a rehome mailbox (page starts) or a V1 marker (any byte). */
struct scan_want {
        bool v1;
        const uint8_t *token; /* rehome: RH_TOKEN_LEN bytes or NULL */
        const char *v1_token; /* V1: the token or NULL */
        bool hfm;             /* hypeman fork mailbox (with v1: byte-offset scan) */
        const char *hfm_name, *hfm_token;
};

/* The hypeman fork mailbox at @gpa: 4 KiB in guest RAM, marker read back through the target. */
static bool hfm_confirm(struct rh_target *t, uint64_t gpa, const char *name, const char *token)
{
        uint8_t live[RH_HFM_SIZE];

        return rh_target_read(t, gpa, live, sizeof(live), NULL) == 0 &&
               rh_hfm_marker_at(live, sizeof(live), name, token, NULL);
}

/*
 * The V1 buffer at @gpa: its 4 KiB lie in guest RAM and, read through the
 * target (the live process for a process target), start with the marker.
 */
static bool v1_confirm(struct rh_target *t, uint64_t gpa, const char *token)
{
        uint8_t live[RH_MAILBOX_SIZE];

        return rh_target_read(t, gpa, live, sizeof(live), NULL) == 0 && rh_v1_matches(live, sizeof(live), token);
}

/*
 * Scan one stretch for hypeman's V1 marker at every byte offset (its host
 * does the same: the guest's buffer need not be page-aligned). Chunks
 * overlap by 63 bytes so a marker across a chunk boundary is seen once.
 */
static int scan_stretch_v1(struct rh_target *t, bool from_file, uint64_t off, uint64_t end, uint64_t gpa,
                           const struct scan_want *want, uint8_t *chunk, uint64_t *ret_gpa, struct rh_error *err)
{
        /* The marker area: 64 bytes for V1, 256 for a fork mailbox (chunks overlap by one less). */
        const size_t mlen = want->hfm ? RH_HFM_OFF_SEQ : RH_V1_OFF_SEQ;
        const char *magic = want->hfm ? RH_HFM_MAGIC : RH_V1_MAGIC;
        const size_t magic_len = want->hfm ? RH_HFM_MAGIC_LEN : RH_V1_MAGIC_LEN;
        int r;

        while (end - off >= mlen) {
                size_t n = end - off < RH_SCAN_CHUNK ? (size_t)(end - off) : RH_SCAN_CHUNK;
                const uint8_t *p = chunk, *last = chunk + n - mlen;

                r = from_file ? target_read_file(t, off, chunk, n, err)
                              : target_read_offset(t, off, chunk, n, err);
                if (r < 0)
                        return r;
                while (p <= last && (p = memmem(p, (size_t)(chunk + n - p), magic, magic_len))) {
                        uint64_t at = gpa + (uint64_t)(p - chunk);

                        if (p > last)
                                break;
                        if (want->hfm ? (rh_hfm_marker_at(p, mlen, want->hfm_name, want->hfm_token, NULL) &&
                                         hfm_confirm(t, at, want->hfm_name, want->hfm_token))
                                      : (rh_v1_marker_matches(p, want->v1_token) && v1_confirm(t, at, want->v1_token))) {
                                *ret_gpa = at;
                                return 1;
                        }
                        p++;
                }
                if (n == end - off)
                        break;
                off += n - (mlen - 1);
                gpa += n - (mlen - 1);
        }
        return 0;
}

/*
 * Scan the page starts of one stretch of guest RAM that is backed by the
 * target: file offsets [off, end), gpa of @off = @gpa.
 */
static int scan_stretch(struct rh_target *t, bool from_file, uint64_t off, uint64_t end, uint64_t gpa,
                        const struct scan_want *want, uint8_t *chunk, uint64_t *ret_gpa, struct rh_error *err)
{
        const uint8_t *token = want->token;
        uint64_t skip = (PAGE - gpa % PAGE) % PAGE;
        uint8_t live[RH_MAILBOX_SIZE];
        int r;

        if (want->v1 || want->hfm)
                return scan_stretch_v1(t, from_file, off, end, gpa, want, chunk, ret_gpa, err);

        if (skip >= end - off)
                return 0;
        off += skip;
        gpa += skip;
        while (end - off >= PAGE) {
                size_t n = end - off < RH_SCAN_CHUNK ? (size_t)(end - off) : RH_SCAN_CHUNK;

                r = from_file ? target_read_file(t, off, chunk, n, err)
                              : target_read_offset(t, off, chunk, n, err);
                if (r < 0)
                        return r;
                for (size_t k = 0; k + PAGE <= n; k += PAGE) {
                        /* Cheap test first: the 8-byte magic at the page start. */
                        if (memcmp(chunk + k, RH_MAILBOX_MAGIC, RH_MAILBOX_MAGIC_LEN) != 0)
                                continue;
                        if (verify_page(chunk + k, gpa + k, token, NULL, NULL) != 0)
                                continue;
                        /* Found in the file: it counts only if the live process has it too. */
                        if (from_file && (rh_target_read(t, gpa + k, live, sizeof(live), NULL) < 0 ||
                                          verify_page(live, gpa + k, token, NULL, NULL) != 0))
                                continue;
                        *ret_gpa = gpa + k;
                        return 1;
                }
                off += n;
                gpa += n;
        }
        return 0;
}

/* One pass over guest RAM in gpa order, clipped to what can be read. */
static int scan_pass(struct rh_target *t, bool from_file, const struct scan_want *want, uint8_t *chunk,
                     uint64_t *ret_gpa, uint64_t *ret_scanned, struct rh_error *err)
{
        const struct rh_layout *layout = rh_target_layout(t);
        uint64_t scanned = 0;
        int r;

        for (size_t i = 0; i < rh_layout_n_regions(layout); i++) {
                const struct rh_region *rg = rh_layout_region(layout, i);
                uint64_t rg_end = rg->size > UINT64_MAX - rg->offset ? UINT64_MAX : rg->offset + rg->size;

                for (size_t j = 0; j < target_n_extents(t); j++) {
                        uint64_t eo, el, a, b;

                        target_extent(t, j, &eo, &el);
                        a = eo > rg->offset ? eo : rg->offset;
                        b = el > UINT64_MAX - eo ? UINT64_MAX : eo + el;
                        if (b > rg_end)
                                b = rg_end;
                        if (from_file && b > target_file_size(t))
                                b = target_file_size(t);
                        if (a >= b)
                                continue;
                        r = scan_stretch(t, from_file, a, b, rg->gpa + (a - rg->offset), want, chunk,
                                         ret_gpa, err);
                        if (r != 0)
                                return r;
                        scanned += b - a;
                }
        }
        *ret_scanned = scanned;
        return 0;
}

/*
 * A process target scans its memory file first (cheap, and it does not
 * fault the whole of guest RAM into the VMM), confirming each candidate in
 * the live process; only if that finds nothing (a mailbox that exists only
 * in the process's private pages) does it scan the process itself.
 */
static int scan(struct rh_target *t, const struct scan_want *want, uint64_t *ret_gpa, uint64_t *ret_scanned,
                struct rh_error *err)
{
        _cleanup_free_ uint8_t *chunk = NULL;
        int r;

        chunk = malloc(RH_SCAN_CHUNK);
        if (!chunk)
                return rh_error_set(err, ENOMEM, "scan: out of memory");
        if (target_has_file(t)) {
                r = scan_pass(t, true, want, chunk, ret_gpa, ret_scanned, err);
                if (r != 0)
                        return r;
        }
        return scan_pass(t, false, want, chunk, ret_gpa, ret_scanned, err);
}

int rh_mailbox_locate(struct rh_target *target, uint64_t hint_gpa, const uint8_t token[RH_TOKEN_LEN],
                      bool scan_fallback, uint64_t *ret_gpa, struct rh_error *err)
{
        struct rh_error hint_err = {};
        uint64_t gpa = 0, scanned = 0;
        uint8_t page[RH_MAILBOX_SIZE];
        int r;

        if (hint_gpa != RH_GPA_NONE) {
                r = load_page(target, hint_gpa, token, page, &hint_err);
                if (r == 0) {
                        *ret_gpa = hint_gpa;
                        return 0;
                }
                if (!scan_fallback || r == -EINVAL) {
                        if (err)
                                *err = hint_err;
                        return r;
                }
        }
        if (!scan_fallback)
                return rh_error_set(err, ENOENT, "no mailbox hint and no scan");
        r = scan(target, &(struct scan_want){.token = token}, &gpa, &scanned, err);
        if (r < 0)
                return rh_error_prefix(err, r, "scan for mailbox");
        if (r == 0) {
                if (hint_gpa != RH_GPA_NONE)
                        return rh_error_set(err, ENOENT,
                                            "no mailbox found in 0x%" PRIx64 " bytes of guest RAM (hint: %s)",
                                            scanned, hint_err.msg);
                return rh_error_set(err, ENOENT, "no mailbox found in 0x%" PRIx64 " bytes of guest RAM",
                                    scanned);
        }
        *ret_gpa = gpa;
        return 0;
}

/* Apply @req to the verified page copy; returns the seq used in *ret_seq. */
/*
 * A nonzero random nonce from getrandom() (blocking only until the kernel's
 * pool is first initialised, which a host running VMs is long past).
 */
static int random_nonce(uint64_t *ret, struct rh_error *err)
{
        uint64_t n = 0;

        while (n == 0) {
                ssize_t k = getrandom(&n, sizeof(n), 0);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return rh_error_set(err, errno, "nonce: getrandom: %s", strerror(errno));
                if (k != (ssize_t)sizeof(n))
                        return rh_error_set(err, EIO, "nonce: getrandom returned %zd bytes", k);
        }
        *ret = n;
        return 0;
}

static int apply_request(uint8_t *page, const struct rh_request *req, uint32_t *ret_seq, uint64_t *ret_nonce,
                         struct rh_error *err)
{
        struct rh_request rq = *req;
        int r;

        if (rq.nonce == 0) {
                r = random_nonce(&rq.nonce, err);
                if (r < 0)
                        return r;
        }
        if (rq.seq == 0) {
                rq.seq = unaligned_read_le32(page + RH_OFF_REQUEST) + 1;
                if (rq.seq == 0)
                        rq.seq = 1;
        }
        r = rh_mailbox_write_request(page, &rq, err);
        if (r < 0)
                return rh_error_prefix(err, r, "request");
        *ret_seq = rq.seq;
        if (ret_nonce)
                *ret_nonce = rq.nonce;
        return 0;
}

int rh_mailbox_patch(struct rh_target *target, uint64_t gpa, const uint8_t token[RH_TOKEN_LEN],
                     const struct rh_request *req, uint32_t *ret_seq, struct rh_error *err)
{
        return rh_mailbox_patch_nonce(target, gpa, token, req, ret_seq, NULL, err);
}

int rh_mailbox_patch_nonce(struct rh_target *target, uint64_t gpa, const uint8_t token[RH_TOKEN_LEN],
                           const struct rh_request *req, uint32_t *ret_seq, uint64_t *ret_nonce,
                           struct rh_error *err)
{
        uint8_t page[RH_MAILBOX_SIZE];
        uint64_t nonce;
        uint32_t seq, len;
        int r;

        r = load_page(target, gpa, token, page, err);
        if (r < 0)
                return r;
        r = apply_request(page, req, &seq, &nonce, err);
        if (r < 0)
                return rh_error_prefix(err, r, "mailbox at gpa 0x%" PRIx64, gpa);
        len = unaligned_read_le32(page + RH_OFF_REQUEST + 0x10);
        if (len > RH_PAYLOAD_MAX) /* our own encoder wrote it; cannot happen */
                return rh_error_set(err, EMSGSIZE, "mailbox at gpa 0x%" PRIx64 ": payload length %u", gpa,
                                    len);
        /*
         * Three writes, the mailbox's publication order (docs/MAILBOX.md): seq 0
         * first, so a guest that happens to run meanwhile can never pair the old
         * seq with the new body; then the body (header fields after seq, and the
         * payload); the new seq last. For a paused clone the first write is only
         * 4 bytes more.
         */
        static const uint8_t zero_seq[4];
        r = rh_target_write(target, gpa + RH_OFF_REQUEST, zero_seq, sizeof(zero_seq), err);
        if (r < 0)
                return rh_error_prefix(err, r, "patch mailbox at gpa 0x%" PRIx64, gpa);
        r = rh_target_write(target, gpa + RH_OFF_REQUEST + 4, page + RH_OFF_REQUEST + 4,
                            RH_OFF_PAYLOAD - RH_OFF_REQUEST - 4 + len, err);
        if (r < 0)
                return rh_error_prefix(err, r, "patch mailbox at gpa 0x%" PRIx64, gpa);
        r = rh_target_write(target, gpa + RH_OFF_REQUEST, page + RH_OFF_REQUEST, 4, err);
        if (r < 0)
                return rh_error_prefix(err, r, "patch mailbox at gpa 0x%" PRIx64 " (seq)", gpa);
        if (ret_seq)
                *ret_seq = seq;
        if (ret_nonce)
                *ret_nonce = nonce;
        return 0;
}

int rh_mailbox_patch_overlay(const uint8_t *template_page, uint64_t gpa, const uint8_t token[RH_TOKEN_LEN],
                             const struct rh_request *req, uint8_t *ret_page, uint32_t *ret_seq,
                             struct rh_error *err)
{
        uint8_t page[RH_MAILBOX_SIZE];
        uint32_t seq;
        int r;

        memcpy(page, template_page, sizeof(page));
        r = verify_page(page, gpa, token, NULL, err);
        if (r < 0)
                return rh_error_prefix(err, r, "overlay page");
        r = apply_request(page, req, &seq, NULL, err);
        if (r < 0)
                return rh_error_prefix(err, r, "overlay page");
        memcpy(ret_page, page, sizeof(page));
        if (ret_seq)
                *ret_seq = seq;
        return 0;
}

int rh_mailbox_ack_read(struct rh_target *target, uint64_t gpa, struct rh_ack *ret_ack, struct rh_error *err)
{
        uint8_t page[RH_MAILBOX_SIZE];
        int r;

        r = check_aligned(gpa, err);
        if (r < 0)
                return r;
        r = rh_target_read(target, gpa, page, sizeof(page), err);
        if (r < 0)
                return rh_error_prefix(err, r, "ack at gpa 0x%" PRIx64, gpa);
        r = rh_mailbox_read_ack(page, ret_ack, err);
        if (r < 0)
                return rh_error_prefix(err, r, "ack at gpa 0x%" PRIx64, gpa);
        return 0;
}

int rh_mailbox_prearm(struct rh_target *target, uint64_t gpa, const uint8_t token[RH_TOKEN_LEN], uint32_t seq,
                      uint32_t interval_us, uint32_t window_ms, struct rh_error *err)
{
        uint8_t page[RH_MAILBOX_SIZE], body[8], seqb[4];
        int r;

        if (seq == 0)
                return rh_error_set(err, EINVAL, "prearm sequence number 0 is reserved");
        r = load_page(target, gpa, token, page, err);
        if (r < 0)
                return r;
        unaligned_write_le32(body, interval_us);
        unaligned_write_le32(body + 4, window_ms);
        unaligned_write_le32(seqb, seq);
        r = rh_target_write(target, gpa + RH_OFF_PREARM + 4, body, sizeof(body), err);
        if (r >= 0)
                r = rh_target_write(target, gpa + RH_OFF_PREARM, seqb, sizeof(seqb), err);
        if (r < 0)
                return rh_error_prefix(err, r, "prearm mailbox at gpa 0x%" PRIx64, gpa);
        return 0;
}

int rh_mailbox_prearm_confirm_read(struct rh_target *target, uint64_t gpa, uint32_t *ret_seq,
                                   uint32_t *ret_interval_us, bool *ret_active, struct rh_error *err)
{
        uint8_t confirm[sizeof(struct rh_wire_prearm_confirm)];
        int r;

        r = check_aligned(gpa, err);
        if (r < 0)
                return r;
        r = rh_target_read(target, gpa + RH_OFF_PREARM_CONFIRM, confirm, sizeof(confirm), err);
        if (r < 0)
                return rh_error_prefix(err, r, "prearm confirm at gpa 0x%" PRIx64, gpa);
        *ret_seq = unaligned_read_le32(confirm);
        *ret_interval_us = unaligned_read_le32(confirm + 4);
        *ret_active = unaligned_read_le32(confirm + 8) != 0;
        return 0;
}

/* ---- hypeman V1: a marker at any byte offset, found by its token ---- */

static int v1_load(struct rh_target *t, uint64_t gpa, const char *token, uint8_t *buf, struct rh_error *err)
{
        int r;

        r = rh_target_read(t, gpa, buf, RH_MAILBOX_SIZE, err);
        if (r < 0)
                return rh_error_prefix(err, r, "V1 mailbox at gpa 0x%" PRIx64, gpa);
        if (!rh_v1_matches(buf, RH_MAILBOX_SIZE, token))
                return rh_error_set(err, ENOENT, "no V1 marker%s at gpa 0x%" PRIx64, token ? " with that token" : "",
                                    gpa);
        return 0;
}

int rh_v1_locate(struct rh_target *target, uint64_t hint_gpa, const char *token, bool scan_fallback,
                 uint64_t *ret_gpa, struct rh_error *err)
{
        struct rh_error hint_err = {};
        uint8_t buf[RH_MAILBOX_SIZE];
        uint64_t gpa = 0, scanned = 0;
        int r;

        if (token && !rh_v1_token_valid(token))
                return rh_error_set(err, EINVAL, "V1 token must be 1..%u bytes", RH_V1_TOKEN_MAX);
        if (hint_gpa != RH_GPA_NONE) {
                r = v1_load(target, hint_gpa, token, buf, &hint_err);
                if (r == 0) {
                        *ret_gpa = hint_gpa;
                        return 0;
                }
                if (!scan_fallback) {
                        if (err)
                                *err = hint_err;
                        return r;
                }
        }
        if (!scan_fallback)
                return rh_error_set(err, ENOENT, "no V1 mailbox hint and no scan");
        r = scan(target, &(struct scan_want){.v1 = true, .v1_token = token}, &gpa, &scanned, err);
        if (r < 0)
                return rh_error_prefix(err, r, "scan for V1 mailbox");
        if (r == 0) {
                if (hint_gpa != RH_GPA_NONE)
                        return rh_error_set(err, ENOENT,
                                            "no V1 marker%s in 0x%" PRIx64 " bytes of guest RAM (hint: %s)",
                                            token ? " with that token" : "", scanned, hint_err.msg);
                return rh_error_set(err, ENOENT, "no V1 marker%s in 0x%" PRIx64 " bytes of guest RAM",
                                    token ? " with that token" : "", scanned);
        }
        *ret_gpa = gpa;
        return 0;
}

int rh_v1_patch(struct rh_target *target, uint64_t gpa, const char *token, const struct rh_request *req,
                uint32_t *ret_seq, struct rh_error *err)
{
        uint8_t buf[RH_MAILBOX_SIZE];
        /* hypeman's host writes seq 1 every time; its guest writes 0 back. */
        uint32_t seq = req->seq ? req->seq : 1;
        int r;

        if (!rh_v1_token_valid(token))
                return rh_error_set(err, EINVAL, "V1 token must be 1..%u bytes", RH_V1_TOKEN_MAX);
        r = v1_load(target, gpa, token, buf, err);
        if (r < 0)
                return r;
        r = rh_v1_encode(buf, req, seq, err);
        if (r < 0)
                return r;
        /* Length and JSON first, the seq last. */
        r = rh_target_write(target, gpa + RH_V1_OFF_LEN, buf + RH_V1_OFF_LEN, RH_MAILBOX_SIZE - RH_V1_OFF_LEN, err);
        if (r < 0)
                return r;
        r = rh_target_write(target, gpa + RH_V1_OFF_SEQ, buf + RH_V1_OFF_SEQ, 4, err);
        if (r < 0)
                return r;
        if (ret_seq)
                *ret_seq = seq;
        return 0;
}

/* ---- named payloads (rehome/payloads.h) ---- */

int rh_payloads_write(struct rh_target *target, uint64_t gpa, const uint8_t token[RH_TOKEN_LEN],
                      const struct rh_payload *payloads, unsigned n, struct rh_request *req, struct rh_error *err)
{
        _cleanup_free_ uint64_t *gpas = NULL;
        _cleanup_free_ uint8_t *stream = NULL;
        uint8_t page[RH_MAILBOX_SIZE], dir[PAGE];
        struct rh_payloads_ref ref;
        struct rh_arm arm;
        size_t size;
        int r;

        if (n == 0) {
                req->payloads_count = req->payloads_len = req->payloads_crc = 0;
                return 0;
        }
        r = rh_payloads_stream_size(payloads, n, &size, err);
        if (r < 0)
                return r;
        r = load_page(target, gpa, token, page, err);
        if (r < 0)
                return r;
        r = rh_mailbox_arm_read(page, sizeof(page), &arm, err);
        if (r < 0)
                return r;
        if (!(arm.caps & RH_CAP_PAYLOADS) || arm.payload_pages == 0 || arm.payload_dir_pfn == 0)
                return rh_error_set(err, EOPNOTSUPP,
                                    "the guest agent announces no payload pages (RH_CAP_PAYLOADS); upgrade rehome-agent or start it with --payload-pages N");
        if (arm.payload_pages > RH_PAYLOAD_PAGES_MAX)
                return rh_error_set(err, EBADMSG, "arm header announces %u payload pages (max %u)", arm.payload_pages,
                                    RH_PAYLOAD_PAGES_MAX);
        r = rh_target_read(target, (uint64_t)arm.payload_dir_pfn * PAGE, dir, sizeof(dir), err);
        if (r < 0)
                return rh_error_prefix(err, r, "payload directory at gpa 0x%" PRIx64, (uint64_t)arm.payload_dir_pfn * PAGE);
        gpas = calloc(arm.payload_pages, sizeof(*gpas));
        stream = calloc(arm.payload_pages, PAGE);
        if (!gpas || !stream)
                return rh_error_set(err, ENOMEM, "payloads: out of memory");
        r = rh_paydir_read(dir, arm.token, arm.payload_pages, gpas, err);
        if (r < 0)
                return rh_error_prefix(err, r, "payload directory at gpa 0x%" PRIx64, (uint64_t)arm.payload_dir_pfn * PAGE);
        r = rh_payloads_stream_encode(payloads, n, stream, (size_t)arm.payload_pages * PAGE, &ref, err);
        if (r < 0)
                return r;
        for (size_t off = 0; off < ref.stream_len; off += PAGE) {
                size_t chunk = ref.stream_len - off < PAGE ? ref.stream_len - off : PAGE;

                r = rh_target_write(target, gpas[off / PAGE], stream + off, chunk, err);
                if (r < 0)
                        return rh_error_prefix(err, r, "payload page %zu", off / PAGE);
        }
        req->payloads_count = ref.count;
        req->payloads_len = ref.stream_len;
        req->payloads_crc = ref.stream_crc;
        return 0;
}

/* ---- hypeman fork mailboxes ---- */

int rh_hfm_locate(struct rh_target *target, const char *name, const char *token, uint64_t *ret_gpa,
                  struct rh_error *err)
{
        uint64_t gpa = 0, scanned = 0;
        int r;

        if (!rh_payload_name_valid(name))
                return rh_error_set(err, EINVAL, "fork mailbox name \"%.64s\" is invalid", name);
        if (token && !rh_hfm_token_valid(token))
                return rh_error_set(err, EINVAL, "fork mailbox token must be 1..%u bytes", RH_HFM_TOKEN_MAX);
        r = scan(target, &(struct scan_want){.hfm = true, .hfm_name = name, .hfm_token = token}, &gpa, &scanned,
                 err);
        if (r < 0)
                return rh_error_prefix(err, r, "scan for fork mailbox %s", name);
        if (r == 0)
                return rh_error_set(err, ENOENT, "no fork mailbox %s%s in 0x%" PRIx64 " bytes of guest RAM", name,
                                    token ? " with that token" : "", scanned);
        *ret_gpa = gpa;
        return 0;
}

int rh_hfm_patch(struct rh_target *target, uint64_t gpa, const char *name, const char *token, const uint8_t *json,
                 size_t len, struct rh_error *err)
{
        uint8_t buf[RH_HFM_SIZE];
        int r;

        r = rh_target_read(target, gpa, buf, sizeof(buf), err);
        if (r < 0)
                return rh_error_prefix(err, r, "fork mailbox %s at gpa 0x%" PRIx64, name, gpa);
        if (!rh_hfm_marker_at(buf, sizeof(buf), name, token, NULL))
                return rh_error_set(err, ENOENT, "no fork mailbox %s marker at gpa 0x%" PRIx64, name, gpa);
        r = rh_hfm_encode(buf, json, len, err);
        if (r < 0)
                return rh_error_prefix(err, r, "fork mailbox %s", name);
        /* JSON (and zero fill) and length first, seq last: hypeman's host order. */
        r = rh_target_write(target, gpa + RH_HFM_OFF_LEN, buf + RH_HFM_OFF_LEN, RH_HFM_SIZE - RH_HFM_OFF_LEN, err);
        if (r < 0)
                return r;
        return rh_target_write(target, gpa + RH_HFM_OFF_SEQ, buf + RH_HFM_OFF_SEQ, 4, err);
}
