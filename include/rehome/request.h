/* SPDX-License-Identifier: MIT */
/*
 * Host-side conveniences around the mailbox ABI: a request as JSON (for
 * files, --json output and other languages' tooling), an ack record as JSON,
 * and the agent's UDP ack line (`stage=applied mac=... ip=... nonce=...`,
 * hypeman compatible).
 *
 * Request JSON (every key optional except "interfaces"):
 *   {
 *     "interfaces": [ { "name": "eth0", "match_mac": "52:54:00:12:34:56",
 *                       "mac": "02:00:00:00:00:05", "mtu": 1500 } ],
 *     "addresses":  [ { "interface": 0, "address": "10.0.0.5/24" } ],
 *     "routes":     [ { "interface": 0, "destination": "0.0.0.0/0",
 *                       "gateway": "10.0.0.1", "metric": 100 } ],
 *     "dns": [ "10.0.0.1" ], "search": [ "example.internal" ],
 *     "hostname": "clone-5",
 *     "flush_neighbours": true, "announce": true, "ack_early": false,
 *     "replace_addresses": true,
 *     "ack": "10.0.0.1:5555",
 *     "seq": 0, "nonce": "0x1234"
 *   }
 * "interface" defaults to 0; "destination" defaults to the default route.
 */
#ifndef REHOME_REQUEST_H
#define REHOME_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "rehome/error.h"
#include "rehome/mailbox.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Exported from librehome.so (built with -fvisibility=hidden; docs/ABI.md). */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

/* The request JSON schema this library reads and writes (docs/REQUEST.md, key "version"). */
#define RH_REQUEST_JSON_VERSION 1u

/*
 * rh_request_from_json - parse and validate a request document.
 * Returns 0, -EBADMSG (not JSON, wrong type, unknown key; message names the
 * key and the line), -EINVAL (a value is invalid: bad MAC, address, prefix,
 * ...), -E2BIG (too many entries), -EPROTONOSUPPORT ("version" other than
 * RH_REQUEST_JSON_VERSION; absent means 1). @ret_req is written only on success.
 */
int rh_request_from_json(const char *text, size_t len, struct rh_request *ret_req,
                         struct rh_error *err);

/*
 * rh_request_to_json - the JSON form of @req (same schema, seq and nonce
 * included), pretty-printed when @indent > 0. Returns a malloc'd string, or
 * NULL with errno ENOMEM (allocation failure) or EINVAL (@req->size is
 * neither 0 nor a layout this library knows).
 */
char *rh_request_to_json(const struct rh_request *req, int indent);

/* rh_ack_to_json - an ack record as a JSON object string (malloc'd; NULL on ENOMEM). */
char *rh_ack_to_json(const struct rh_ack *ack, int indent);

/*
 * rh_hostport_parse - "HOST:PORT", "[V6]:PORT", or "gateway:PORT" (then
 * ret_ip->family is 0: the gateway of the default route, hypeman V1 style).
 * Returns 0 or -EINVAL (port 0 or > 65535, bad address, missing port).
 */
int rh_hostport_parse(const char *s, struct rh_ipaddr *ret_ip, uint16_t *ret_port);

/* The fields of one UDP ack line. Unknown keys are ignored. */
struct rh_ack_line {
        char stage[16];         /* "mailbox", "applied", "error" */
        char mac[18];           /* "" if absent */
        char ip[64];            /* "" if absent (may carry "/prefix") */
        uint64_t nonce;
        bool has_nonce;
        uint32_t seq;
        bool has_seq;
        char signal[24];
        char error[RH_ACK_ERROR_MAX];
        uint64_t realtime_ns; /* realtime=: the guest's CLOCK_REALTIME when it sent the line */
        bool has_realtime;
};

/*
 * rh_ack_line_parse - parse `key=value key="quoted value" ...` (at most 1400
 * bytes, one datagram). nonce is hexadecimal with or without 0x.
 * Returns 0, -EBADMSG (no stage, malformed pair, bad nonce/seq), -EMSGSIZE.
 */
int rh_ack_line_parse(const char *line, size_t len, struct rh_ack_line *ret_line,
                      struct rh_error *err);


/* ------------------------------------------------------------------ */
/* Named payloads and hypeman fork mailboxes carried with a request.   */

#include "rehome/payloads.h"

/* One named JSON document (payload or hypeman fork mailbox); owns its bytes. */
struct rh_named_json {
        char name[RH_PAYLOAD_NAME_MAX + 1];
        char token[RH_HFM_TOKEN_MAX + 1]; /* hypeman fork mailbox: its token; "" = any */
        uint8_t *data;                    /* malloc'd, exactly the JSON object's bytes */
        uint32_t len;
};

/* The payloads of one request (rehome's own) and the hypeman fork mailboxes to write. */
struct rh_payload_set {
        unsigned n_payloads;
        struct rh_named_json payloads[RH_PAYLOADS_MAX];
        unsigned n_hypeman;
        struct rh_named_json hypeman[RH_PAYLOADS_MAX];
};

/*
 * rh_payload_set_add - add a copy of @json (@len bytes, one JSON object) as
 * payload @name, or with @hypeman as the hypeman fork mailbox @name with
 * @token (NULL or "": match any token). Returns 0, -EINVAL (bad name, bad
 * token, not a JSON object, a name given twice), -E2BIG (a 17th entry),
 * -EFBIG (payload over 1 MiB; hypeman: over 3832 bytes), -ENOMEM.
 */
int rh_payload_set_add(struct rh_payload_set *set, bool hypeman, const char *name, const char *token,
                       const uint8_t *json, size_t len, struct rh_error *err);

/*
 * rh_payload_set_from_json - read the "payloads" ({"NAME": {...}, ...}) and
 * "hypeman_mailboxes" ([{"name": N, "token": T, "payload": {...}}, ...])
 * keys of a request document into @set (added to what it holds). Other
 * keys are left to rh_request_from_json. Returns 0, -EBADMSG (not JSON,
 * wrong type, unknown key), or as rh_payload_set_add.
 */
int rh_payload_set_from_json(const char *text, size_t len, struct rh_payload_set *set, struct rh_error *err);

/* rh_payload_set_views - the payloads as struct rh_payload views (for rh_payloads_write); returns their number. */
unsigned rh_payload_set_views(const struct rh_payload_set *set, struct rh_payload ret[RH_PAYLOADS_MAX]);

/* rh_payload_set_clear - free the bytes and empty @set. */
void rh_payload_set_clear(struct rh_payload_set *set);

/*
 * rh_hfm_json_with_ack_port - a copy of @json with the top-level key
 * "ack_port" set to @port (added or replaced), compact, as hypeman's host
 * does when it waits for the guest's ack. Returns 0 (*ret malloc'd, *ret_len),
 * -EINVAL (not an object), -EMSGSIZE (over 3832 bytes after), -ENOMEM.
 */
int rh_hfm_json_with_ack_port(const uint8_t *json, size_t len, uint16_t port, uint8_t **ret, size_t *ret_len,
                              struct rh_error *err);
#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif
