/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the guest-controlled and host-controlled bytes of named
 * payloads (rehome/payloads.h).
 *
 * Input: one control byte, then data.
 *   control % 4 == 0: data is a payload stream; its ref (count from the
 *     control byte's high bits, length = data size, CRC computed) is decoded,
 *     and what decodes must re-encode to the same bytes (canonical form).
 *   1: data is a JSON text: rh_json_object_check must agree with itself when
 *     asked for ack_port, and an object must be accepted as a fork mailbox
 *     frame if it fits.
 *   2: data is guest memory: rh_hfm_find (any name/token) must return an
 *     offset at which rh_hfm_marker_at holds.
 *   3: data is a fork mailbox buffer (zero-filled to 4 KiB): rh_hfm_decode.
 */
#include <errno.h>

#include "fuzz-common.h"
#include "rehome/payloads.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static uint8_t buf[RH_PAYLOAD_PAGES_MAX * 4096], again[RH_PAYLOAD_PAGES_MAX * 4096];
        static _Alignas(8) uint8_t mb[RH_HFM_SIZE];
        static struct rh_payload out[RH_PAYLOADS_MAX];
        struct rh_error err = {};
        int r;

        if (size < 1)
                return 0;
        const uint8_t c = data[0];
        data++;
        size--;
        switch (c % 4) {
        case 0: {
                struct rh_payloads_ref ref = { .count = (c >> 2) % 17, .stream_len = (uint32_t)size };
                struct rh_payloads_ref ref2;

                if (size > sizeof(buf))
                        return 0;
                memcpy(buf, data, size);
                ref.stream_crc = rh_crc32c(0, buf, size);
                r = rh_payloads_stream_decode(buf, &ref, out, &err);
                fuzz_check(r == 0 || r == -EBADMSG || r == -EINVAL, "stream_decode: errno %d", r);
                if (r < 0)
                        return 0;
                r = rh_payloads_stream_encode(out, ref.count, again, sizeof(again), &ref2, &err);
                /* The agent delivers bytes; the encoder also wants JSON objects. */
                if (r == -EINVAL)
                        return 0;
                fuzz_check(r == 0, "decoded stream does not encode: %s", err.msg);
                fuzz_check(ref2.stream_len == ref.stream_len && memcmp(again, buf, size) == 0,
                           "stream not canonical");
                break;
        }
        case 1: {
                uint32_t port = 12345;
                bool ok = rh_json_object_check(data, size, NULL);

                fuzz_check(ok == rh_json_object_check(data, size, &port), "json check disagrees");
                fuzz_check(!ok || port <= 65535, "ack_port %u", port);
                if (ok && size >= 1 && size <= RH_HFM_JSON_MAX) {
                        const uint8_t *j;
                        uint32_t seq, len;

                        fuzz_check(rh_hfm_encode(mb, data, size, &err) == 0, "hfm_encode: %s", err.msg);
                        fuzz_check(rh_hfm_decode(mb, &seq, &j, &len, &err) == 0 && seq == 1 && len == size &&
                                           memcmp(j, data, size) == 0,
                                   "hfm round trip");
                }
                break;
        }
        case 2: {
                long off = rh_hfm_find(data, size, NULL, NULL);
                char name[RH_PAYLOAD_NAME_MAX + 1];

                fuzz_check(off == -ENOENT || (off >= 0 && (size_t)off + RH_HFM_OFF_SEQ <= size &&
                                              rh_hfm_marker_at(data + off, size - (size_t)off, NULL, NULL, name) &&
                                              rh_payload_name_valid(name)),
                           "hfm_find: %ld", off);
                (void)rh_hfm_ack_matches((const char *)data, size, "kernel.identity.v1");
                break;
        }
        default: {
                const uint8_t *j;
                uint32_t seq, len;

                memset(mb, 0, sizeof(mb));
                memcpy(mb, data, size < sizeof(mb) ? size : sizeof(mb));
                r = rh_hfm_decode(mb, &seq, &j, &len, &err);
                fuzz_check(r == 0 || r == -ENODATA || r == -EMSGSIZE || r == -EBADMSG, "hfm_decode: errno %d", r);
                fuzz_check(r < 0 || (seq != 0 && len >= 1 && len <= RH_HFM_JSON_MAX && j == mb + RH_HFM_OFF_JSON),
                           "hfm_decode result");
                break;
        }
        }
        return 0;
}
