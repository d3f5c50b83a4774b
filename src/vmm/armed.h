/* SPDX-License-Identifier: MIT */
/*
 * The agent's "armed" announcement, as the host reads it from the guest's
 * serial console while it builds a template:
 *
 *   rehome-agent: armed gpa=0x9dee000 token=<32 hex> abi=1.0
 *
 * The console is guest output, so the line is untrusted text: the parser
 * checks every field and takes nothing it cannot vouch for.
 */
#ifndef REHOME_VMM_ARMED_H
#define REHOME_VMM_ARMED_H

#include <stddef.h>
#include <stdint.h>

#include "rehome/error.h"
#include "rehome/mailbox.h"

#define VMM_ARMED_PREFIX   "rehome-agent: armed"
#define VMM_ARMED_LINE_MAX 256 /* longest line looked at; the agent's is under 100 */
#define VMM_ARMED_ABI_MAX  15u /* longest abi= value, without the NUL */
#define VMM_ARMED_GPA_BITS 52  /* x86-64's architectural physical-address limit */

/*
 * vmm_armed_parse - parse the agent's armed line.
 * @line:    NUL-terminated, starting at VMM_ARMED_PREFIX (no newline, no \r)
 * @ret_gpa: the mailbox page's guest-physical address
 * @ret_token: the mailbox token (RH_TOKEN_LEN bytes)
 * @ret_abi: the abi= value, NUL-terminated, in @abi_len bytes
 * @abi_len: size of @ret_abi (at least 1)
 * @err:     optional; says which field is wrong and why
 *
 * The prefix is followed by space-separated key=value fields, one space
 * each, nothing after the last. gpa=0x<1..16 hex digits>, page aligned
 * (4 KiB), below 2^52; token=<exactly 2 * RH_TOKEN_LEN hex digits>;
 * abi=<1..VMM_ARMED_ABI_MAX printable characters> that fits @abi_len. Each
 * of the three exactly once. Fields with another lowercase key are skipped,
 * so a newer agent may announce more. Every byte must be printable ASCII
 * (0x20..0x7e) and the line at most VMM_ARMED_LINE_MAX bytes long.
 *
 * The out-parameters are written only on success.
 *
 * Returns 0, or -EBADMSG for any other line (the message names the field and
 * the fault, never echoing the untrusted bytes).
 */
int vmm_armed_parse(const char *line, uint64_t *ret_gpa, uint8_t ret_token[RH_TOKEN_LEN], char *ret_abi,
                    size_t abi_len, struct rh_error *err);

#endif
