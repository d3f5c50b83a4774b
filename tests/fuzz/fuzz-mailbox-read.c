/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: a whole 4 KiB mailbox page through rh_mailbox_arm_read,
 * rh_mailbox_matches, rh_mailbox_read_request and rh_mailbox_read_ack.
 *
 * Input: one control byte, then the page (shorter inputs are zero-filled; the
 * arm header is also read with the input's own length to hit truncation).
 * Control bits 0/1/2 recompute the arm, request and ack CRCs after the
 * mutation, so the fuzzer gets past the checksums into the decoders.
 * Whatever decodes is written back with the matching writer into a fresh page
 * and must read back equal.
 */
#include <errno.h>

#include "fuzz-common.h"
#include "unaligned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static _Alignas(4096) uint8_t page[RH_MAILBOX_SIZE], out[RH_MAILBOX_SIZE];
        static struct rh_request req, again;
        struct rh_ack ack, ack2;
        struct rh_arm arm, arm2;
        struct rh_error err = {};
        uint32_t seq = 0, seq2 = 0;
        uint64_t nonce = 0, nonce2 = 0;
        uint8_t control;
        size_t n;
        int r;

        if (size < 1)
                return 0;
        control = data[0];
        n = size - 1 < RH_MAILBOX_SIZE ? size - 1 : RH_MAILBOX_SIZE;
        memset(page, 0, sizeof(page));
        memcpy(page, data + 1, n);
        if (control & 1)
                unaligned_write_le32(page + 0x3c, rh_crc32c(0, page, 0x3c));
        if (control & 2) {
                uint32_t len = unaligned_read_le32(page + 0x310);
                if (len <= RH_PAYLOAD_MAX)
                        unaligned_write_le32(page + 0x304, rh_crc32c(0, page + 0x308, 0x18 + len));
        }
        if (control & 4)
                unaligned_write_le32(page + 0xc4, rh_crc32c(0, page + 0xc8, 568));

        /* Arm header. */
        r = rh_mailbox_arm_read(page, n, &arm, &err);
        fuzz_check(r == 0 || r == -EMSGSIZE || r == -ENOMSG || r == -EPROTONOSUPPORT || r == -EBADMSG,
                   "arm_read: errno %d", r);
        fuzz_check(r == 0 || (err.code == -r && err.msg[0]), "arm_read: error not recorded");
        fuzz_check((r == 0) == (n == RH_MAILBOX_SIZE && rh_mailbox_matches(page, n, NULL)),
                   "matches disagrees with arm_read");
        if (r == 0) {
                fuzz_check(rh_mailbox_matches(page, n, arm.token), "matches refuses its own token");
                memset(out, 0, sizeof(out));
                rh_mailbox_arm_write(out, &arm);
                fuzz_check(rh_mailbox_arm_read(out, sizeof(out), &arm2, &err) == 0, "re-armed page: %s",
                           err.msg);
                fuzz_check(arm2.abi_major == arm.abi_major && arm2.arm_generation == arm.arm_generation &&
                                   memcmp(arm2.token, arm.token, RH_TOKEN_LEN) == 0 && arm2.gpa == arm.gpa &&
                                   arm2.agent_version == arm.agent_version && arm2.caps == arm.caps,
                           "arm round trip differs");
        }

        /* Request. */
        r = rh_mailbox_read_request(page, &req, &seq, &nonce, &err);
        fuzz_check(r == 0 || r == -ENODATA || r == -EMSGSIZE || r == -EBADMSG || r == -EPROTONOSUPPORT ||
                           r == -E2BIG || r == -EINVAL,
                   "read_request: errno %d", r);
        fuzz_check(r == 0 || (err.code == -r && err.msg[0]), "read_request: error not recorded");
        if (r == 0) {
                fuzz_check(req.seq != 0 && req.seq == seq && req.nonce == nonce, "seq/nonce not returned");
                memset(out, 0, sizeof(out));
                r = rh_mailbox_write_request(out, &req, &err);
                fuzz_check(r == 0, "decoded request does not write: %s", err.msg);
                r = rh_mailbox_read_request(out, &again, &seq2, &nonce2, &err);
                fuzz_check(r == 0, "written request does not read: %s", err.msg);
                fuzz_check(fuzz_request_equal(&req, &again), "read(write(x)) != x");
        }

        /* Ack. */
        r = rh_mailbox_read_ack(page, &ack, &err);
        fuzz_check(r == 0 || r == -ENODATA || r == -EBADMSG, "read_ack: errno %d", r);
        fuzz_check(r == 0 || (err.code == -r && err.msg[0]), "read_ack: error not recorded");
        if (r == 0) {
                fuzz_check(ack.seq != 0 && ack.status <= RH_ACK_STATUS_MAX_ && ack.signal <= RH_SIGNAL_MAX_ &&
                                   strlen(ack.error) < RH_ACK_ERROR_MAX,
                           "ack out of range");
                memset(out, 0, sizeof(out));
                rh_mailbox_write_ack(out, &ack);
                fuzz_check(rh_mailbox_read_ack(out, &ack2, &err) == 0, "written ack does not read: %s",
                           err.msg);
                fuzz_check(fuzz_ack_equal(&ack, &ack2), "read(write(ack)) != ack");
        }
        return 0;
}
