/* SPDX-License-Identifier: MIT */
/*
 * Named per-fork payloads: the wire formats shared by the host (which writes
 * them into a paused clone) and rehome-agent (which delivers them to
 * applications as /run/rehome/payloads/NAME). docs/MAILBOX.md section 14 is
 * the normative description; this header declares the same layout.
 *
 * Two carriers:
 *  - rehome's own: payload pages the agent arms next to its mailbox page.
 *    The arm header announces a directory page (payload_dir_pfn,
 *    payload_pages, RH_CAP_PAYLOADS); the directory lists the gpa of every
 *    data page; the host writes a payload *stream* (an index of names,
 *    offsets and lengths, then the bytes) across the data pages and puts one
 *    RH_TLV_PAYLOADS record (count, stream length, stream CRC32C) in the
 *    request, whose CRC then covers the whole stream.
 *  - hypeman's fork mailboxes: a 4 KiB buffer found by its marker
 *    "HYPEMAN_FORK_MAILBOX_V1\0" NAME "\0" TOKEN at any byte offset, seq u32
 *    at +256, length u32 at +260, a JSON object of at most 3832 bytes at +264.
 */
#ifndef REHOME_PAYLOADS_H
#define REHOME_PAYLOADS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rehome/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Exported from librehome.so (built with -fvisibility=hidden; docs/ABI.md). */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define RH_PAYLOADS_MAX 16u             /* named payloads per request */
#define RH_PAYLOAD_NAME_MAX 64u         /* ^[A-Za-z0-9._:-]{1,64}$ */
#define RH_PAYLOAD_PAGES_MAX 256u       /* data pages one agent may arm (1 MiB) */
#define RH_PAYLOAD_PAGES_DEFAULT 16u    /* rehome-agent default (64 KiB) */

/* Payload directory page (agent writes). */
#define RH_PAYDIR_MAGIC "RHPAYDIR"      /* 8 bytes, no NUL */
#define RH_PAYDIR_OFF_COUNT 0x08u       /* u32 number of data pages */
#define RH_PAYDIR_OFF_PAGE_SIZE 0x0cu   /* u32 4096 */
#define RH_PAYDIR_OFF_TOKEN 0x10u       /* u8[16] the arm header's token */
#define RH_PAYDIR_OFF_CRC 0x3cu         /* u32 CRC32C of [0,0x3c) then [0x40, 0x40 + 8n) */
#define RH_PAYDIR_OFF_GPAS 0x40u        /* u64 gpa[n] */

/* Payload stream (host writes across the data pages). */
#define RH_PAYLOAD_INDEX_ENTRY 80u      /* u8 name_len, u8[3] 0, u32 off, u32 len, u32 0, char name[64] */

/* hypeman fork mailbox. */
#define RH_HFM_MAGIC "HYPEMAN_FORK_MAILBOX_V1"
#define RH_HFM_MAGIC_LEN 24u            /* including its NUL */
#define RH_HFM_SIZE 4096u
#define RH_HFM_OFF_SEQ 256u
#define RH_HFM_OFF_LEN 260u
#define RH_HFM_OFF_JSON 264u
#define RH_HFM_JSON_MAX (RH_HFM_SIZE - RH_HFM_OFF_JSON) /* 3832 */
#define RH_HFM_TOKEN_MAX 128u

/* One named payload (host side: points into caller memory). */
struct rh_payload {
        char name[RH_PAYLOAD_NAME_MAX + 1];
        const uint8_t *data;
        uint32_t len;
};

/* What the RH_TLV_PAYLOADS record of a request says. */
struct rh_payloads_ref {
        uint32_t count;         /* 1..RH_PAYLOADS_MAX */
        uint32_t stream_len;    /* bytes of stream in the data pages */
        uint32_t stream_crc;    /* CRC32C of those bytes */
};

/* rh_payload_name_valid - true if @name matches ^[A-Za-z0-9._:-]{1,64}$ and is not "." or "..". */
bool rh_payload_name_valid(const char *name);

/*
 * rh_json_object_check - true if the @len bytes at @json are exactly one
 * JSON object (strict RFC 8259, surrounding whitespace allowed, nesting at
 * most 32 deep). If @ret_ack_port is not NULL it receives the value of a
 * top-level "ack_port" key when that is an integer 1..65535, else 0.
 */
bool rh_json_object_check(const uint8_t *json, size_t len, uint32_t *ret_ack_port);

/*
 * rh_payloads_stream_size - bytes the stream of @n payloads takes.
 * Returns 0, -E2BIG (more than RH_PAYLOADS_MAX), -EINVAL (bad or duplicate
 * name, empty payload, payload not a JSON object), -EFBIG (larger than
 * RH_PAYLOAD_PAGES_MAX pages). Messages name the payload.
 */
int rh_payloads_stream_size(const struct rh_payload *p, unsigned n, size_t *ret_size, struct rh_error *err);

/*
 * rh_payloads_stream_encode - write the stream of @n payloads to @buf
 * (@cap bytes) and fill @ret_ref. Validates like rh_payloads_stream_size;
 * -ENOSPC when @cap is too small ("payloads need N bytes, the agent armed M").
 */
int rh_payloads_stream_encode(const struct rh_payload *p, unsigned n, uint8_t *buf, size_t cap,
                              struct rh_payloads_ref *ret_ref, struct rh_error *err);

/*
 * rh_payloads_stream_decode - check the stream at @buf against @ref (CRC,
 * canonical index: offsets back to back after the index, valid unique
 * names) and fill @ret (at most RH_PAYLOADS_MAX entries; data points into
 * @buf). Does not check the JSON (the agent delivers bytes).
 * Returns 0, -EBADMSG (CRC or framing), -EINVAL (name).
 */
int rh_payloads_stream_decode(const uint8_t *buf, const struct rh_payloads_ref *ref, struct rh_payload *ret,
                              struct rh_error *err);

/*
 * rh_paydir_write - write a directory page listing @n data page gpas,
 * tagged with @token (RH_TOKEN_LEN bytes). @page is 4096 bytes.
 */
void rh_paydir_write(uint8_t *page, const uint8_t *token, const uint64_t *gpas, unsigned n);

/*
 * rh_paydir_read - verify a directory page: magic, page size, @n pages as
 * the arm header announced (1..RH_PAYLOAD_PAGES_MAX), @token, CRC, every gpa
 * 4 KiB aligned. Fills @ret_gpas (n entries).
 * Returns 0, -ENOMSG (no magic), -EBADMSG (anything else).
 */
int rh_paydir_read(const uint8_t *page, const uint8_t *token, unsigned n, uint64_t *ret_gpas,
                   struct rh_error *err);

/* rh_hfm_token_valid - 1..128 bytes (hypeman's rule; any bytes but NUL in C strings). */
bool rh_hfm_token_valid(const char *token);

/*
 * rh_hfm_marker - build the marker of fork mailbox @name with @token into
 * @buf (>= RH_HFM_OFF_SEQ bytes): magic with NUL, name, NUL, token.
 * Returns its length, -EINVAL (bad name or token, marker over 256 bytes).
 */
int rh_hfm_marker(const char *name, const char *token, uint8_t *buf, struct rh_error *err);

/*
 * rh_hfm_marker_at - true if @p (@avail bytes readable, >= RH_HFM_OFF_SEQ
 * needed) holds the fork mailbox marker of @name (NULL: any valid name)
 * with @token (NULL: any valid token), the token followed by a NUL (or
 * ending at +256). On success the name found is copied to @ret_name when
 * not NULL (RH_PAYLOAD_NAME_MAX + 1 bytes).
 */
bool rh_hfm_marker_at(const uint8_t *p, size_t avail, const char *name, const char *token, char *ret_name);

/*
 * rh_hfm_find - search @len bytes at @buf for the first fork mailbox marker
 * of @name/@token at any byte offset. Returns its offset, or -ENOENT.
 * (A whole-memory scan in chunks is rh_hfm_locate in rehome/patch.h.)
 */
long rh_hfm_find(const uint8_t *buf, size_t len, const char *name, const char *token);

/*
 * rh_hfm_encode - put @json (a JSON object, 1..3832 bytes) into the 4 KiB
 * buffer @mb: JSON and zero fill, length, then seq 1 last.
 * Returns 0, -EMSGSIZE (too large, empty), -EINVAL (not a JSON object).
 */
int rh_hfm_encode(uint8_t *mb, const uint8_t *json, size_t len, struct rh_error *err);

/*
 * rh_hfm_decode - read a pending fork mailbox request from @mb: *ret_seq,
 * the JSON bytes (pointer into @mb) and length.
 * Returns 0, -ENODATA (seq 0), -EMSGSIZE (length 0 or > 3832), -EBADMSG
 * (not a JSON object).
 */
int rh_hfm_decode(const uint8_t *mb, uint32_t *ret_seq, const uint8_t **ret_json, uint32_t *ret_len,
                  struct rh_error *err);

/*
 * rh_hfm_ack_matches - true if UDP ack @line (@len bytes) has the words
 * "stage=applied" and "mailbox=NAME" (exact words, any order, blank
 * separated), hypeman's host rule.
 */
bool rh_hfm_ack_matches(const char *line, size_t len, const char *name);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif
