/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: rh_request_decode on arbitrary bytes (the TLV payload an
 * agent reads from a hostile page). A failure must be one of the documented
 * errnos with a message; a success must survive re-encoding: encode(x) is
 * valid, no longer than the input, decodes to x again, and re-encodes to the
 * same bytes.
 */
#include <errno.h>

#include "fuzz-common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static uint8_t buf[RH_PAYLOAD_MAX], buf2[RH_PAYLOAD_MAX];
        static struct rh_request req, again;
        struct rh_error err = {};
        size_t len = 0, len2 = 0;
        int r;

        r = rh_request_decode(data, size, &req, &err);
        if (r < 0) {
                fuzz_check(r == -EMSGSIZE || r == -EBADMSG || r == -E2BIG || r == -EINVAL,
                           "unexpected errno %d", r);
                fuzz_check(err.code == -r && err.msg[0], "error not recorded: %d \"%s\"", err.code, err.msg);
                return 0;
        }
        fuzz_check(size <= RH_PAYLOAD_MAX, "accepted %zu bytes", size);
        fuzz_check(req.seq == 0 && req.nonce == 0, "seq/nonce set by decode");

        r = rh_request_encode(&req, buf, sizeof(buf), &len, &err);
        fuzz_check(r == 0, "decoded request does not encode: %s", err.msg);
        fuzz_check(len <= size, "re-encoding grew %zu -> %zu", size, len);
        r = rh_request_decode(buf, len, &again, &err);
        fuzz_check(r == 0, "re-encoded request does not decode: %s", err.msg);
        fuzz_check(fuzz_request_equal(&req, &again), "decode(encode(x)) != x");
        r = rh_request_encode(&again, buf2, sizeof(buf2), &len2, &err);
        fuzz_check(r == 0 && len2 == len && memcmp(buf, buf2, len) == 0, "encoding not stable");
        return 0;
}
