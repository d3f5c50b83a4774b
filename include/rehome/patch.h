/* SPDX-License-Identifier: MIT */
/*
 * Finding and writing a mailbox in guest memory, wherever that memory is:
 *  (a) a memory file (a per-clone copy; pread/pwrite),
 *  (b) a paused VMM process, through /proc/<pid>/mem at the host address of
 *      the mapping of its memory file (a MAP_PRIVATE mapping turns the write
 *      into a private copy-on-write page: the template file stays unchanged),
 *  (c) an overlay page: the patched 4 KiB page handed to a userfaultfd page
 *      server instead of the template's.
 *
 * Everything read from guest memory is untrusted: addresses are bounds-checked
 * against the layout and the backing (file size, mapped ranges), every page
 * is verified (magic, ABI, CRC, token, and the page's own recorded gpa) before
 * it is believed, and nothing the guest wrote is followed outside guest RAM.
 */
#ifndef REHOME_PATCH_H
#define REHOME_PATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "rehome/error.h"
#include "rehome/layout.h"
#include "rehome/mailbox.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Exported from librehome.so (built with -fvisibility=hidden; docs/ABI.md). */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* Where guest memory can be read and written. Opaque. */
struct rh_target;

/* I/O a target has issued since it was opened (or last reset). */
struct rh_target_stats {
        uint64_t bytes_read;
        uint64_t bytes_written;
        uint64_t read_calls;  /* pread() syscalls */
        uint64_t write_calls; /* pwrite() syscalls */
};

/* Chunk size of the fallback page-start scan. */
#define RH_SCAN_CHUNK (1u << 20)
/* "No hint" for rh_mailbox_locate. */
#define RH_GPA_NONE UINT64_MAX

/*
 * rh_target_open_file - guest memory in a file laid out by @layout.
 * @path:     memory file (Firecracker mem file, CH memory-ranges, QEMU backend file)
 * @layout:   not owned; must outlive the target
 * @writable: open O_RDWR (else O_RDONLY)
 * Returns 0, or -errno of open()/fstat() (message: "PATH: strerror").
 * Reads and writes past the end of the file fail with -EFAULT.
 */
int rh_target_open_file(const char *path, const struct rh_layout *layout, bool writable,
                        struct rh_target **ret_target, struct rh_error *err);

/*
 * rh_target_open_pid - guest memory of a running (paused) VMM process.
 * @pid:      the VMM
 * @mem_file: the memory file the VMM mapped; matched against
 *            /proc/<pid>/maps by device and inode, so any path to the same
 *            file works (including /proc/<pid>/fd/N of a deleted file). A file
 *            mapped in several pieces is handled through each piece's pgoff;
 *            where two mappings cover the same offset the writable one wins.
 * @layout:   not owned; must outlive the target
 * @writable: open /proc/<pid>/mem O_RDWR
 * The mappings are read once, here: reopen if the VMM remaps its memory.
 * Returns 0, or
 *   -ESRCH         no such process
 *   -ENOENT        @mem_file does not exist, or @pid does not map it
 *   -EACCES/-EPERM no ptrace access to @pid
 *   -E2BIG         the file is mapped in more than 256 pieces
 *   or another -errno (the message names the path).
 */
int rh_target_open_pid(pid_t pid, const char *mem_file, const struct rh_layout *layout, bool writable,
                       struct rh_target **ret_target, struct rh_error *err);

/* Close and free; takes NULL; returns NULL. */
struct rh_target *rh_target_free(struct rh_target *target);

/*
 * rh_target_read / rh_target_write - @len bytes at guest-physical @gpa,
 * which must lie in one layout region.
 * Returns 0, or
 *   -EFAULT  gpa outside guest RAM (see rh_layout_gpa_to_offset), past the
 *            end of the file, or not mapped by the process
 *   -EBADF   write on a target opened read-only
 *   -EIO     short transfer (e.g. /proc/<pid>/mem of an exiting process)
 *   or the -errno of pread()/pwrite(). Messages name gpa and path.
 */
int rh_target_read(struct rh_target *target, uint64_t gpa, void *buf, size_t len, struct rh_error *err);
int rh_target_write(struct rh_target *target, uint64_t gpa, const void *buf, size_t len,
                    struct rh_error *err);

/* Layout of @target. */
const struct rh_layout *rh_target_layout(const struct rh_target *target);
/* Copy the I/O counters into @ret_stats. */
void rh_target_get_stats(const struct rh_target *target, struct rh_target_stats *ret_stats);
/* Zero the I/O counters. */
void rh_target_reset_stats(struct rh_target *target);

/*
 * rh_mailbox_locate - find the mailbox.
 * @hint_gpa: guest-physical address the template recorded (the agent
 *            publishes it), or RH_GPA_NONE. With a hint, exactly one page is
 *            read and verified: valid arm header (magic, ABI, CRC), @token,
 *            and the header's own gpa equal to @hint_gpa. O(1).
 * @token:    RH_TOKEN_LEN bytes, or NULL for any token
 * @scan_fallback: when the hint does not verify (or there is none), scan
 *            every page start of guest RAM, reading RH_SCAN_CHUNK bytes per
 *            syscall and checking the 8-byte magic at each 4 KiB boundary;
 *            a candidate must verify exactly like the hint (so stale copies
 *            of the page elsewhere in memory are skipped). First match wins.
 *            The scan is linear in guest RAM. A process target scans its
 *            memory file first (when it can open it) and confirms candidates
 *            in the live process with one page read; only if the file has no
 *            match does it scan through /proc/<pid>/mem, which faults every
 *            page of the mapping into the VMM (on tmpfs that allocates every
 *            hole of a sparse template). Prefer the hint.
 * @ret_gpa:  the verified mailbox address
 * Returns 0, or
 *   -EINVAL  @hint_gpa not 4 KiB aligned
 *   -ENOENT  not found (hint only: the message says why the hint failed)
 *   -EFAULT  hint outside guest RAM or the backing (no fallback)
 *   or a read error.
 */
int rh_mailbox_locate(struct rh_target *target, uint64_t hint_gpa, const uint8_t token[RH_TOKEN_LEN],
                      bool scan_fallback, uint64_t *ret_gpa, struct rh_error *err);

/*
 * rh_mailbox_patch - write @req into the mailbox at @gpa, after reading that
 * page and verifying its arm header, @token (NULL: any) and recorded gpa.
 * @req->seq 0 means "one more than the seq now in the page" (0 skipped on
 * wrap). The request is built with rh_mailbox_write_request on a local copy
 * of the page, then written in three writes: seq 0 at 0x300, the header
 * body and payload [0x304, 0x320 + payload_len), the new seq at 0x300 last,
 * so a guest that runs meanwhile never pairs a seq with another body.
 * @req->nonce 0 means "draw one": a random nonzero nonce from getrandom()
 * is written instead (never nonce 0, which would let an ack of any earlier
 * request pass for this one); rh_mailbox_patch_nonce returns it.
 * @ret_seq:  optional; the seq written
 * Returns 0, or
 *   -EINVAL  @gpa not 4 KiB aligned; invalid request (rh_mailbox_write_request)
 *   -ENOENT  no mailbox at @gpa: bad magic, token or recorded gpa differ
 *   -EPROTONOSUPPORT / -EBADMSG   arm header of another ABI / corrupt
 *   or as rh_target_read / rh_target_write / rh_request_encode, or the
 *   -errno of getrandom() when a nonce had to be drawn.
 */
int rh_mailbox_patch(struct rh_target *target, uint64_t gpa, const uint8_t token[RH_TOKEN_LEN],
                     const struct rh_request *req, uint32_t *ret_seq, struct rh_error *err);

/*
 * rh_mailbox_patch_nonce - rh_mailbox_patch, and the nonce written (the
 * caller's @req->nonce, or the one drawn for 0) in @ret_nonce (optional):
 * the value to wait for in the ack (rh_ack_wait_opts). Returns as
 * rh_mailbox_patch.
 */
int rh_mailbox_patch_nonce(struct rh_target *target, uint64_t gpa, const uint8_t token[RH_TOKEN_LEN],
                           const struct rh_request *req, uint32_t *ret_seq, uint64_t *ret_nonce,
                           struct rh_error *err);

/*
 * rh_mailbox_patch_overlay - strategy (c): copy @template_page, verify it as
 * rh_mailbox_patch does (@gpa: expected recorded gpa, or RH_GPA_NONE to skip
 * that check), apply @req and write the whole patched page to @ret_page
 * (RH_MAILBOX_SIZE bytes; may equal @template_page). @ret_page is written
 * only on success. A @req->nonce of 0 draws a random one, as
 * rh_mailbox_patch does (read it back with rh_mailbox_read_request on
 * @ret_page). Returns as rh_mailbox_patch.
 */
int rh_mailbox_patch_overlay(const uint8_t *template_page, uint64_t gpa, const uint8_t token[RH_TOKEN_LEN],
                             const struct rh_request *req, uint8_t *ret_page, uint32_t *ret_seq,
                             struct rh_error *err);

/*
 * rh_mailbox_ack_read - read the mailbox page at @gpa (one read) and decode
 * its ack record (rh_mailbox_read_ack). The page's arm header is not
 * required (an agent may be re-arming); the ack is verified by its CRC.
 * Returns 0, -ENODATA (no ack yet), -EAGAIN (torn, retry), -EBADMSG,
 * -EINVAL (@gpa not aligned), or as rh_target_read.
 */
int rh_mailbox_ack_read(struct rh_target *target, uint64_t gpa, struct rh_ack *ret_ack, struct rh_error *err);

/*
 * rh_mailbox_prearm - host side of the prearm handshake: after verifying the
 * mailbox at @gpa (as rh_mailbox_patch, @token may be NULL), write
 * interval_us and window_ms, then the nonzero @seq last.
 * Returns 0, -EINVAL (seq 0 or @gpa not aligned), or as rh_mailbox_patch.
 */
int rh_mailbox_prearm(struct rh_target *target, uint64_t gpa, const uint8_t token[RH_TOKEN_LEN], uint32_t seq,
                      uint32_t interval_us, uint32_t window_ms, struct rh_error *err);

/*
 * rh_mailbox_prearm_confirm_read - the agent's prearm confirm at @gpa:
 * *ret_seq (prearm seq served), *ret_interval_us, *ret_active.
 * Returns 0, -EINVAL (@gpa not aligned), or as rh_target_read.
 */
int rh_mailbox_prearm_confirm_read(struct rh_target *target, uint64_t gpa, uint32_t *ret_seq,
                                   uint32_t *ret_interval_us, bool *ret_active, struct rh_error *err);

/*
 * rh_v1_locate - find hypeman's V1 mailbox: its marker (magic + @token, see
 * mailbox.h) at ANY byte offset of guest RAM, as hypeman's host finds it.
 * @hint_gpa: the marker's exact address, or RH_GPA_NONE: 4 KiB are read there
 *            and the marker checked (any alignment).
 * @token:    the V1 token (1..30 bytes), or NULL for any token
 * @scan_fallback: when the hint does not verify (or there is none), search
 *            every byte offset of guest RAM (memmem over RH_SCAN_CHUNK reads,
 *            overlapping by 63 bytes), the memory file first for a process
 *            target as rh_mailbox_locate does. A candidate counts only if its
 *            whole 4 KiB buffer lies in guest RAM and the marker reads back
 *            through the target. First match in gpa order wins.
 * @ret_gpa:  the marker's address (the buffer's start; not page-aligned in
 *            general)
 * Returns 0, or -EINVAL (bad token), -ENOENT (not found; the message says
 * why the hint failed), -EFAULT (hint outside guest RAM, no fallback), or a
 * read error.
 */
int rh_v1_locate(struct rh_target *target, uint64_t hint_gpa, const char *token, bool scan_fallback,
                 uint64_t *ret_gpa, struct rh_error *err);

/*
 * rh_v1_patch - write @req as a V1 request into the V1 mailbox whose marker
 * is at @gpa (any alignment), after checking the marker and @token: the
 * length and JSON first, then the seq (@req->seq, or 1 when it is 0: what
 * hypeman's host always writes; its guest writes 0 back once it answered).
 * @ret_seq:  optional; the seq written
 * Returns 0, or -EINVAL (bad token; request not expressible in V1, see
 * rh_v1_encode), -ENOENT (no marker with @token at @gpa), -ENOBUFS, or as
 * rh_target_read / rh_target_write.
 */
int rh_v1_patch(struct rh_target *target, uint64_t gpa, const char *token, const struct rh_request *req,
                uint32_t *ret_seq, struct rh_error *err);

struct rh_payload;

/*
 * rh_payloads_write - write @n named payloads into the payload pages of the
 * agent whose mailbox is at @gpa (verified as rh_mailbox_patch does): read
 * the arm header (RH_CAP_PAYLOADS, payload_dir_pfn, payload_pages), read
 * and verify the directory page, write the payload stream across the data
 * pages, and fill @req's payloads_count/len/crc so that the request written
 * next (rh_mailbox_patch) carries the RH_TLV_PAYLOADS record. @n 0 clears
 * those fields. Call it before rh_mailbox_patch, with the guest paused.
 * Returns 0, or -EOPNOTSUPP (the agent armed no payload pages), -ENOSPC
 * (the payloads do not fit the pages armed), -E2BIG/-EINVAL/-EFBIG (see
 * rh_payloads_stream_size), -EBADMSG (bad directory), or as
 * rh_mailbox_patch / rh_target_write.
 */
int rh_payloads_write(struct rh_target *target, uint64_t gpa, const uint8_t token[RH_TOKEN_LEN],
                      const struct rh_payload *payloads, unsigned n, struct rh_request *req, struct rh_error *err);

/*
 * rh_hfm_locate - find hypeman fork mailbox @name (marker
 * "HYPEMAN_FORK_MAILBOX_V1\0" NAME "\0" TOKEN, token followed by a NUL) at
 * any byte offset of guest RAM, as rh_v1_locate scans (memory file first,
 * chunks overlapping by 255 bytes so a marker across a chunk or page
 * boundary is found; the whole 4 KiB must lie in guest RAM). @token NULL:
 * any token. Returns 0 (*ret_gpa = the marker's address), -EINVAL (bad
 * name/token), -ENOENT (not found), or a read error.
 */
int rh_hfm_locate(struct rh_target *target, const char *name, const char *token, uint64_t *ret_gpa,
                  struct rh_error *err);

/*
 * rh_hfm_patch - write @json (a JSON object, 1..3832 bytes) into the fork
 * mailbox whose marker is at @gpa, after checking the marker: length and
 * JSON first, then seq 1 (hypeman's host writes 1 every time; the guest
 * writes 0 back once it delivered). Returns 0, -ENOENT (no such marker at
 * @gpa), -EMSGSIZE/-EINVAL (rh_hfm_encode), or as rh_target_read/write.
 */
int rh_hfm_patch(struct rh_target *target, uint64_t gpa, const char *name, const char *token, const uint8_t *json,
                 size_t len, struct rh_error *err);
#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif
