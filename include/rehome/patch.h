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
 * against the layout, and nothing the guest wrote is followed outside it.
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

/* Where guest memory can be read and written. Opaque. */
struct rh_target;

/*
 * rh_target_open_file - guest memory in a file laid out by @layout (not
 * owned; must outlive the target). @writable opens O_RDWR.
 * Returns 0 or -errno (message names the path).
 */
int rh_target_open_file(const char *path, const struct rh_layout *layout, bool writable,
                        struct rh_target **ret_target, struct rh_error *err);

/*
 * rh_target_open_pid - guest memory of a running (paused) VMM process.
 * @mem_file: path of the memory file the VMM mapped (as it appears in
 * /proc/<pid>/maps); its mappings translate file offsets to host addresses.
 * Returns 0, -ESRCH (no such process), -ENOENT (file not mapped by it),
 * -EACCES/-EPERM (no ptrace access), or -errno.
 */
int rh_target_open_pid(pid_t pid, const char *mem_file, const struct rh_layout *layout,
                       bool writable, struct rh_target **ret_target, struct rh_error *err);

struct rh_target *rh_target_free(struct rh_target *target);

/* Read/write @len bytes at guest-physical @gpa (one region). -EFAULT outside guest RAM. */
int rh_target_read(struct rh_target *target, uint64_t gpa, void *buf, size_t len,
                   struct rh_error *err);
int rh_target_write(struct rh_target *target, uint64_t gpa, const void *buf, size_t len,
                    struct rh_error *err);

/*
 * rh_mailbox_locate - find the mailbox. With @hint_gpa != UINT64_MAX, read
 * that one page and verify magic, CRC and @token (NULL: any token): O(1).
 * Without a hint (or if @scan_fallback and the hint fails) scan page starts.
 * Returns 0 with *ret_gpa, -ENOENT (not found), -EFAULT, or -errno.
 */
int rh_mailbox_locate(struct rh_target *target, uint64_t hint_gpa,
                      const uint8_t token[RH_TOKEN_LEN], bool scan_fallback, uint64_t *ret_gpa,
                      struct rh_error *err);

/*
 * rh_mailbox_patch - write @req (seq, nonce set by caller; seq 0 = next after
 * the one in the page) into the mailbox at @gpa after verifying its arm header
 * and @token. Order: payload and header, then the 4-byte seq in a second write.
 * Returns 0 or as rh_mailbox_write_request / rh_target_write.
 */
int rh_mailbox_patch(struct rh_target *target, uint64_t gpa, const uint8_t token[RH_TOKEN_LEN],
                     const struct rh_request *req, struct rh_error *err);

/*
 * rh_mailbox_patch_overlay - strategy (c): copy @template_page, apply @req,
 * write the result to @ret_page (RH_MAILBOX_SIZE bytes).
 */
int rh_mailbox_patch_overlay(const uint8_t *template_page, const uint8_t token[RH_TOKEN_LEN],
                             const struct rh_request *req, uint8_t *ret_page,
                             struct rh_error *err);

/* Read and verify the ack record of the mailbox at @gpa (see rh_mailbox_read_ack). */
int rh_mailbox_ack_read(struct rh_target *target, uint64_t gpa, struct rh_ack *ret_ack,
                        struct rh_error *err);

/* Set the prearm request (host side) at @gpa: seq, interval, window. */
int rh_mailbox_prearm(struct rh_target *target, uint64_t gpa, uint32_t seq, uint32_t interval_us,
                      uint32_t window_ms, struct rh_error *err);

#ifdef __cplusplus
}
#endif

#endif
