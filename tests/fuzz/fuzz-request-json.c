/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for rh_request_from_json, the decoder of request files
 * (`rehome patch --request FILE`) and of other tools' JSON. A failure must be
 * one of the documented errnos with its message recorded, and must leave the
 * output untouched. A success must keep request.c's promise that a document
 * that parses is one the agent accepts: it validates, encodes into one
 * mailbox payload and decodes back to the same request; and its JSON form
 * (rh_request_to_json) parses to the same request and prints the same again.
 */
#include <errno.h>

#include "fuzz-common.h"
#include "rehome/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static uint8_t payload[RH_PAYLOAD_MAX];
        static struct rh_request req, sentinel, tlv, again;
        struct rh_error err = {};
        char *json, *json2;
        size_t len = 0;
        int r;

        memset(&req, 0xa5, sizeof(req));
        sentinel = req;
        r = rh_request_from_json((const char *)data, size, &req, &err);
        if (r < 0) {
                fuzz_check(r == -EBADMSG || r == -EINVAL || r == -E2BIG || r == -EPROTONOSUPPORT, "unexpected errno %d", r);
                fuzz_check(err.code == -r && err.msg[0], "error not recorded: %d \"%s\"", err.code, err.msg);
                fuzz_check(memcmp(&req, &sentinel, sizeof(req)) == 0, "output written on failure");
                return 0;
        }
        fuzz_check(rh_request_validate(&req, &err) == 0, "parsed request does not validate: %s", err.msg);

        /* What the agent would read. */
        r = rh_request_encode(&req, payload, sizeof(payload), &len, &err);
        fuzz_check(r == 0, "parsed request does not encode: %s", err.msg);
        r = rh_request_decode(payload, len, &tlv, &err);
        fuzz_check(r == 0, "encoded request does not decode: %s", err.msg);
        tlv.seq = req.seq;
        tlv.nonce = req.nonce;
        fuzz_check(fuzz_request_equal(&req, &tlv), "decode(encode(from_json(x))) != from_json(x)");

        /* The JSON round trip. */
        json = rh_request_to_json(&req, 0);
        fuzz_check(json, "to_json failed");
        r = rh_request_from_json(json, strlen(json), &again, &err);
        fuzz_check(r == 0, "to_json output rejected: %s\n%s", err.msg, json);
        fuzz_check(fuzz_request_equal(&req, &again), "from_json(to_json(x)) != x\n%s", json);
        json2 = rh_request_to_json(&again, 0);
        fuzz_check(json2 && strcmp(json, json2) == 0, "to_json not stable:\n%s\n%s", json, json2 ? json2 : "");
        free(json);
        free(json2);
        return 0;
}
