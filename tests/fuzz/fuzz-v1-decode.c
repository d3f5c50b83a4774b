/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: rh_v1_decode (hypeman V1 page with a JSON request).
 *
 * Input: one control byte, then data. Even control byte: the data is the
 * raw page (zero-filled to 4 KiB), so the magic, token, seq and length
 * checks are fuzzed. Odd: the data is the JSON text, wrapped in a valid V1
 * header (token "fuzz", seq 1, length = data size), so the fuzzer spends its
 * time in the JSON parser. Whatever decodes is re-encoded into a fresh page
 * and must decode to the same request.
 */
#include <errno.h>
#include <stdbool.h>

#include "fuzz-common.h"
#include "unaligned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static _Alignas(4096) uint8_t page[RH_MAILBOX_SIZE], out[RH_MAILBOX_SIZE];
        static struct rh_request req, again;
        struct rh_error err = {};
        uint32_t seq = 0, seq2 = 0;
        size_t n;
        int r;

        if (size < 1)
                return 0;
        memset(page, 0, sizeof(page));
        if (data[0] & 1) {
                n = size - 1 < RH_V1_JSON_MAX ? size - 1 : RH_V1_JSON_MAX;
                fuzz_check(rh_v1_write_header(page, "fuzz", &err) == 0, "header: %s", err.msg);
                unaligned_write_le32(page + RH_V1_OFF_SEQ, 1);
                unaligned_write_le32(page + RH_V1_OFF_LEN, (uint32_t)n);
                memcpy(page + RH_V1_OFF_JSON, data + 1, n);
        } else {
                n = size - 1 < RH_MAILBOX_SIZE ? size - 1 : RH_MAILBOX_SIZE;
                memcpy(page, data + 1, n);
        }

        r = rh_v1_decode(page, sizeof(page), &req, &seq, &err);
        fuzz_check(r == 0 || r == -EMSGSIZE || r == -ENOMSG || r == -ENODATA || r == -EBADMSG || r == -EINVAL,
                   "v1_decode: errno %d", r);
        fuzz_check(r == 0 || (err.code == -r && err.msg[0]), "v1_decode: error not recorded");
        if (r < 0)
                return 0;
        fuzz_check(rh_v1_matches(page, sizeof(page), NULL), "decoded a page that does not match");
        fuzz_check(seq != 0 && req.seq == seq, "seq not returned");

        memset(out, 0xa5, sizeof(out));
        fuzz_check(rh_v1_write_header(out, "fuzz", &err) == 0, "header: %s", err.msg);
        r = rh_v1_encode(out, &req, seq, &err);
        /* The decoder takes a page without a gateway (the agent answers it);
         * the encoder never writes one, since hypeman's guest drops it. */
        bool has_gateway = false;
        for (unsigned i = 0; i < req.n_routes; i++)
                has_gateway |= req.routes[i].family == 4 && req.routes[i].dst_prefix == 0 && req.routes[i].has_gateway;
        if (r == -EINVAL && !has_gateway)
                return 0;
        fuzz_check(r == 0, "decoded V1 request does not encode: %s", err.msg);
        r = rh_v1_decode(out, sizeof(out), &again, &seq2, &err);
        fuzz_check(r == 0, "re-encoded V1 request does not decode: %s", err.msg);
        fuzz_check(seq2 == seq && fuzz_request_equal(&req, &again), "decode(encode(x)) != x");
        return 0;
}
