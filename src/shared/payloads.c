/* SPDX-License-Identifier: MIT */
/*
 * Named per-fork payloads (rehome/payloads.h, docs/MAILBOX.md section 14):
 * the payload stream and directory page of rehome's own carrier, and
 * hypeman's fork mailbox (marker, frame, ack rule). Shared by librehome and
 * rehome-agent, so no allocation and no jansson: the JSON check is a small
 * strict recursive-descent validator.
 */
#include <errno.h>
#include <string.h>

#include "rehome/mailbox.h"
#include "rehome/payloads.h"
#include "unaligned.h"

#define PAGE 4096u
#define JSON_DEPTH_MAX 32

bool rh_payload_name_valid(const char *name)
{
        size_t n = strnlen(name, RH_PAYLOAD_NAME_MAX + 1);

        if (n == 0 || n > RH_PAYLOAD_NAME_MAX)
                return false;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = name[i];

                if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '_' || c == ':' || c == '-'))
                        return false;
        }
        return true;
}

/* ---- strict JSON validator ---- */

struct json_cursor {
        const uint8_t *p, *end;
};

static void json_ws(struct json_cursor *c)
{
        while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
                c->p++;
}

static bool json_hex(uint8_t ch)
{
        return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* A string; its raw bytes between the quotes in [*ret_s, *ret_e). */
static bool json_string(struct json_cursor *c, const uint8_t **ret_s, const uint8_t **ret_e)
{
        if (c->p >= c->end || *c->p != '"')
                return false;
        c->p++;
        if (ret_s)
                *ret_s = c->p;
        while (c->p < c->end) {
                uint8_t ch = *c->p;

                if (ch == '"') {
                        if (ret_e)
                                *ret_e = c->p;
                        c->p++;
                        return true;
                }
                if (ch < 0x20)
                        return false;
                if (ch == '\\') {
                        c->p++;
                        if (c->p >= c->end)
                                return false;
                        ch = *c->p;
                        if (ch == 'u') {
                                if (c->end - c->p < 5)
                                        return false;
                                for (int i = 1; i <= 4; i++)
                                        if (!json_hex(c->p[i]))
                                                return false;
                                c->p += 4;
                        } else if (!strchr("\"\\/bfnrt", ch) || ch == 0) {
                                return false;
                        }
                }
                c->p++;
        }
        return false;
}

/* A number; *ret_int gets its value when it is a non-negative integer below 2^32, else -1. */
static bool json_number(struct json_cursor *c, long long *ret_int)
{
        const uint8_t *s = c->p;
        bool integer = true, neg = false;
        unsigned long long v = 0;

        if (c->p < c->end && *c->p == '-') {
                neg = true;
                c->p++;
        }
        if (c->p >= c->end)
                return false;
        if (*c->p == '0') {
                c->p++;
        } else if (*c->p >= '1' && *c->p <= '9') {
                while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
                        if (v < (1ull << 32))
                                v = v * 10 + (unsigned)(*c->p - '0');
                        c->p++;
                }
        } else {
                return false;
        }
        if (c->p < c->end && *c->p == '.') {
                integer = false;
                c->p++;
                if (c->p >= c->end || *c->p < '0' || *c->p > '9')
                        return false;
                while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
                        c->p++;
        }
        if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
                integer = false;
                c->p++;
                if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
                        c->p++;
                if (c->p >= c->end || *c->p < '0' || *c->p > '9')
                        return false;
                while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
                        c->p++;
        }
        if (ret_int)
                *ret_int = (integer && !neg && v < (1ull << 32) && c->p > s) ? (long long)v : -1;
        return true;
}

static bool json_literal(struct json_cursor *c, const char *lit)
{
        size_t n = strlen(lit);

        if ((size_t)(c->end - c->p) < n || memcmp(c->p, lit, n) != 0)
                return false;
        c->p += n;
        return true;
}

static bool json_value(struct json_cursor *c, int depth, long long *ret_int);

static bool json_object(struct json_cursor *c, int depth, uint32_t *ret_ack_port)
{
        if (depth > JSON_DEPTH_MAX || c->p >= c->end || *c->p != '{')
                return false;
        c->p++;
        json_ws(c);
        if (c->p < c->end && *c->p == '}') {
                c->p++;
                return true;
        }
        for (;;) {
                const uint8_t *ks, *ke;
                long long iv = -1;

                json_ws(c);
                if (!json_string(c, &ks, &ke))
                        return false;
                json_ws(c);
                if (c->p >= c->end || *c->p != ':')
                        return false;
                c->p++;
                json_ws(c);
                if (!json_value(c, depth + 1, &iv))
                        return false;
                if (ret_ack_port && ke - ks == 8 && memcmp(ks, "ack_port", 8) == 0)
                        *ret_ack_port = (iv >= 1 && iv <= 65535) ? (uint32_t)iv : 0;
                json_ws(c);
                if (c->p < c->end && *c->p == ',') {
                        c->p++;
                        continue;
                }
                if (c->p < c->end && *c->p == '}') {
                        c->p++;
                        return true;
                }
                return false;
        }
}

static bool json_array(struct json_cursor *c, int depth)
{
        if (depth > JSON_DEPTH_MAX)
                return false;
        c->p++; /* '[' */
        json_ws(c);
        if (c->p < c->end && *c->p == ']') {
                c->p++;
                return true;
        }
        for (;;) {
                json_ws(c);
                if (!json_value(c, depth + 1, NULL))
                        return false;
                json_ws(c);
                if (c->p < c->end && *c->p == ',') {
                        c->p++;
                        continue;
                }
                if (c->p < c->end && *c->p == ']') {
                        c->p++;
                        return true;
                }
                return false;
        }
}

static bool json_value(struct json_cursor *c, int depth, long long *ret_int)
{
        if (c->p >= c->end)
                return false;
        switch (*c->p) {
        case '{':
                return json_object(c, depth, NULL);
        case '[':
                return json_array(c, depth);
        case '"':
                return json_string(c, NULL, NULL);
        case 't':
                return json_literal(c, "true");
        case 'f':
                return json_literal(c, "false");
        case 'n':
                return json_literal(c, "null");
        default:
                return json_number(c, ret_int);
        }
}

bool rh_json_object_check(const uint8_t *json, size_t len, uint32_t *ret_ack_port)
{
        struct json_cursor c = { .p = json, .end = json + len };
        uint32_t port = 0;

        json_ws(&c);
        if (!json_object(&c, 1, &port))
                return false;
        json_ws(&c);
        if (c.p != c.end)
                return false;
        if (ret_ack_port)
                *ret_ack_port = port;
        return true;
}

/* ---- payload stream ---- */

static int payloads_check(const struct rh_payload *p, unsigned n, size_t *ret_size, struct rh_error *err)
{
        size_t size;

        if (n == 0)
                return rh_error_set(err, EINVAL, "no payloads");
        if (n > RH_PAYLOADS_MAX)
                return rh_error_set(err, E2BIG, "too many payloads: %u (max %u)", n, RH_PAYLOADS_MAX);
        size = (size_t)n * RH_PAYLOAD_INDEX_ENTRY;
        for (unsigned i = 0; i < n; i++) {
                if (!rh_payload_name_valid(p[i].name))
                        return rh_error_set(err, EINVAL, "payload %u: invalid name \"%.64s\" (want ^[A-Za-z0-9._:-]{1,64}$)",
                                            i, p[i].name);
                for (unsigned j = 0; j < i; j++)
                        if (strcmp(p[i].name, p[j].name) == 0)
                                return rh_error_set(err, EINVAL, "payload %s: given twice", p[i].name);
                if (p[i].len == 0)
                        return rh_error_set(err, EINVAL, "payload %s: empty", p[i].name);
                if (p[i].len > RH_PAYLOAD_PAGES_MAX * PAGE)
                        return rh_error_set(err, EFBIG, "payload %s: %u bytes, more than %u", p[i].name, p[i].len,
                                            RH_PAYLOAD_PAGES_MAX * PAGE);
                if (!rh_json_object_check(p[i].data, p[i].len, NULL))
                        return rh_error_set(err, EINVAL, "payload %s: not a JSON object", p[i].name);
                size += p[i].len;
        }
        if (size > RH_PAYLOAD_PAGES_MAX * PAGE)
                return rh_error_set(err, EFBIG, "payloads take %zu bytes, more than %u", size,
                                    RH_PAYLOAD_PAGES_MAX * PAGE);
        *ret_size = size;
        return 0;
}

int rh_payloads_stream_size(const struct rh_payload *p, unsigned n, size_t *ret_size, struct rh_error *err)
{
        return payloads_check(p, n, ret_size, err);
}

int rh_payloads_stream_encode(const struct rh_payload *p, unsigned n, uint8_t *buf, size_t cap,
                              struct rh_payloads_ref *ret_ref, struct rh_error *err)
{
        size_t size, off;
        int r;

        r = payloads_check(p, n, &size, err);
        if (r < 0)
                return r;
        if (size > cap)
                return rh_error_set(err, ENOSPC, "payloads need %zu bytes, the agent armed %zu", size, cap);
        memset(buf, 0, (size_t)n * RH_PAYLOAD_INDEX_ENTRY);
        off = (size_t)n * RH_PAYLOAD_INDEX_ENTRY;
        for (unsigned i = 0; i < n; i++) {
                uint8_t *e = buf + (size_t)i * RH_PAYLOAD_INDEX_ENTRY;
                size_t nl = strlen(p[i].name);

                e[0] = (uint8_t)nl;
                unaligned_write_le32(e + 4, (uint32_t)off);
                unaligned_write_le32(e + 8, p[i].len);
                memcpy(e + 16, p[i].name, nl);
                memcpy(buf + off, p[i].data, p[i].len);
                off += p[i].len;
        }
        ret_ref->count = n;
        ret_ref->stream_len = (uint32_t)size;
        ret_ref->stream_crc = rh_crc32c(0, buf, size);
        return 0;
}

int rh_payloads_stream_decode(const uint8_t *buf, const struct rh_payloads_ref *ref, struct rh_payload *ret,
                              struct rh_error *err)
{
        size_t off;
        uint32_t crc;

        if (ref->count == 0 || ref->count > RH_PAYLOADS_MAX)
                return rh_error_set(err, EBADMSG, "payload count %u out of range 1..%u", ref->count, RH_PAYLOADS_MAX);
        if (ref->stream_len < ref->count * RH_PAYLOAD_INDEX_ENTRY || ref->stream_len > RH_PAYLOAD_PAGES_MAX * PAGE)
                return rh_error_set(err, EBADMSG, "payload stream length %u out of range", ref->stream_len);
        crc = rh_crc32c(0, buf, ref->stream_len);
        if (crc != ref->stream_crc)
                return rh_error_set(err, EBADMSG, "payload stream CRC32C mismatch: stored 0x%08x, computed 0x%08x",
                                    ref->stream_crc, crc);
        off = (size_t)ref->count * RH_PAYLOAD_INDEX_ENTRY;
        for (unsigned i = 0; i < ref->count; i++) {
                const uint8_t *e = buf + (size_t)i * RH_PAYLOAD_INDEX_ENTRY;
                uint8_t nl = e[0];
                uint32_t po = unaligned_read_le32(e + 4), pl = unaligned_read_le32(e + 8);

                if (e[1] || e[2] || e[3] || unaligned_read_le32(e + 12))
                        return rh_error_set(err, EBADMSG, "payload %u: reserved index bytes set", i);
                if (nl == 0 || nl > RH_PAYLOAD_NAME_MAX)
                        return rh_error_set(err, EBADMSG, "payload %u: name length %u out of range 1..64", i, nl);
                if (memchr(e + 16, 0, nl))
                        return rh_error_set(err, EBADMSG, "payload %u: name contains a NUL", i);
                for (unsigned k = nl; k < RH_PAYLOAD_NAME_MAX; k++)
                        if (e[16 + k])
                                return rh_error_set(err, EBADMSG, "payload %u: name not NUL-padded", i);
                memcpy(ret[i].name, e + 16, nl);
                ret[i].name[nl] = 0;
                if (!rh_payload_name_valid(ret[i].name))
                        return rh_error_set(err, EINVAL, "payload %u: invalid name", i);
                for (unsigned j = 0; j < i; j++)
                        if (strcmp(ret[i].name, ret[j].name) == 0)
                                return rh_error_set(err, EINVAL, "payload %s: given twice", ret[i].name);
                if (po != off || pl == 0 || pl > ref->stream_len - off)
                        return rh_error_set(err, EBADMSG, "payload %s: offset %u length %u do not follow the index",
                                            ret[i].name, po, pl);
                ret[i].data = buf + po;
                ret[i].len = pl;
                off += pl;
        }
        if (off != ref->stream_len)
                return rh_error_set(err, EBADMSG, "payload stream has %zu trailing bytes", ref->stream_len - off);
        return 0;
}

/* ---- directory page ---- */

static uint32_t paydir_crc(const uint8_t *page, unsigned n)
{
        return rh_crc32c(rh_crc32c(0, page, RH_PAYDIR_OFF_CRC), page + RH_PAYDIR_OFF_GPAS, (size_t)n * 8);
}

void rh_paydir_write(uint8_t *page, const uint8_t *token, const uint64_t *gpas, unsigned n)
{
        memset(page, 0, PAGE);
        memcpy(page, RH_PAYDIR_MAGIC, 8);
        unaligned_write_le32(page + RH_PAYDIR_OFF_COUNT, n);
        unaligned_write_le32(page + RH_PAYDIR_OFF_PAGE_SIZE, PAGE);
        memcpy(page + RH_PAYDIR_OFF_TOKEN, token, RH_TOKEN_LEN);
        for (unsigned i = 0; i < n; i++)
                unaligned_write_le64(page + RH_PAYDIR_OFF_GPAS + 8 * i, gpas[i]);
        unaligned_write_le32(page + RH_PAYDIR_OFF_CRC, paydir_crc(page, n));
}

int rh_paydir_read(const uint8_t *page, const uint8_t *token, unsigned n, uint64_t *ret_gpas,
                   struct rh_error *err)
{
        uint32_t crc;

        if (memcmp(page, RH_PAYDIR_MAGIC, 8) != 0)
                return rh_error_set(err, ENOMSG, "no payload directory magic");
        if (n == 0 || n > RH_PAYLOAD_PAGES_MAX)
                return rh_error_set(err, EBADMSG, "payload pages %u out of range 1..%u", n, RH_PAYLOAD_PAGES_MAX);
        if (unaligned_read_le32(page + RH_PAYDIR_OFF_COUNT) != n)
                return rh_error_set(err, EBADMSG, "payload directory lists %u pages, the arm header %u",
                                    unaligned_read_le32(page + RH_PAYDIR_OFF_COUNT), n);
        if (unaligned_read_le32(page + RH_PAYDIR_OFF_PAGE_SIZE) != PAGE)
                return rh_error_set(err, EBADMSG, "payload directory page size %u, expected 4096",
                                    unaligned_read_le32(page + RH_PAYDIR_OFF_PAGE_SIZE));
        crc = paydir_crc(page, n);
        if (crc != unaligned_read_le32(page + RH_PAYDIR_OFF_CRC))
                return rh_error_set(err, EBADMSG, "payload directory CRC mismatch");
        if (token && memcmp(page + RH_PAYDIR_OFF_TOKEN, token, RH_TOKEN_LEN) != 0)
                return rh_error_set(err, EBADMSG, "payload directory token does not match the mailbox");
        for (unsigned i = 0; i < n; i++) {
                ret_gpas[i] = unaligned_read_le64(page + RH_PAYDIR_OFF_GPAS + 8 * i);
                if (ret_gpas[i] % PAGE)
                        return rh_error_set(err, EBADMSG, "payload page %u gpa not 4 KiB aligned", i);
        }
        return 0;
}

/* ---- hypeman fork mailbox ---- */

bool rh_hfm_token_valid(const char *token)
{
        size_t n = strnlen(token, RH_HFM_TOKEN_MAX + 1);

        return n >= 1 && n <= RH_HFM_TOKEN_MAX;
}

int rh_hfm_marker(const char *name, const char *token, uint8_t *buf, struct rh_error *err)
{
        size_t nl, tl;

        if (!rh_payload_name_valid(name))
                return rh_error_set(err, EINVAL, "fork mailbox name \"%.64s\" is invalid (want ^[A-Za-z0-9._:-]{1,64}$)",
                                    name);
        if (!rh_hfm_token_valid(token))
                return rh_error_set(err, EINVAL, "fork mailbox token must be 1..%u bytes", RH_HFM_TOKEN_MAX);
        nl = strlen(name);
        tl = strlen(token);
        if (RH_HFM_MAGIC_LEN + nl + 1 + tl > RH_HFM_OFF_SEQ)
                return rh_error_set(err, EINVAL, "fork mailbox marker is too long");
        memcpy(buf, RH_HFM_MAGIC, RH_HFM_MAGIC_LEN);
        memcpy(buf + RH_HFM_MAGIC_LEN, name, nl);
        buf[RH_HFM_MAGIC_LEN + nl] = 0;
        memcpy(buf + RH_HFM_MAGIC_LEN + nl + 1, token, tl);
        return (int)(RH_HFM_MAGIC_LEN + nl + 1 + tl);
}

bool rh_hfm_marker_at(const uint8_t *p, size_t avail, const char *name, const char *token, char *ret_name)
{
        const uint8_t *n, *t, *nul, *end;
        size_t nl, tl;
        char found[RH_PAYLOAD_NAME_MAX + 1];

        if (avail < RH_HFM_OFF_SEQ || memcmp(p, RH_HFM_MAGIC, RH_HFM_MAGIC_LEN) != 0)
                return false;
        end = p + RH_HFM_OFF_SEQ;
        n = p + RH_HFM_MAGIC_LEN;
        nul = memchr(n, 0, (size_t)(end - n));
        if (!nul)
                return false;
        nl = (size_t)(nul - n);
        if (nl == 0 || nl > RH_PAYLOAD_NAME_MAX)
                return false;
        memcpy(found, n, nl);
        found[nl] = 0;
        if (!rh_payload_name_valid(found) || (name && strcmp(found, name) != 0))
                return false;
        t = nul + 1;
        nul = t < end ? memchr(t, 0, (size_t)(end - t)) : NULL;
        tl = nul ? (size_t)(nul - t) : (size_t)(end - t);
        if (tl == 0 || tl > RH_HFM_TOKEN_MAX)
                return false;
        if (token && (strlen(token) != tl || memcmp(t, token, tl) != 0))
                return false;
        if (ret_name)
                memcpy(ret_name, found, nl + 1);
        return true;
}

long rh_hfm_find(const uint8_t *buf, size_t len, const char *name, const char *token)
{
        const uint8_t *p = buf;

        while (len >= RH_HFM_OFF_SEQ && (size_t)(p - buf) <= len - RH_HFM_OFF_SEQ &&
               (p = memmem(p, len - (size_t)(p - buf), RH_HFM_MAGIC, RH_HFM_MAGIC_LEN))) {
                if ((size_t)(p - buf) > len - RH_HFM_OFF_SEQ)
                        break;
                if (rh_hfm_marker_at(p, len - (size_t)(p - buf), name, token, NULL))
                        return (long)(p - buf);
                p++;
        }
        return -ENOENT;
}

int rh_hfm_encode(uint8_t *mb, const uint8_t *json, size_t len, struct rh_error *err)
{
        if (len == 0 || len > RH_HFM_JSON_MAX)
                return rh_error_set(err, EMSGSIZE, "fork mailbox JSON is %zu bytes, allowed 1..%u", len, RH_HFM_JSON_MAX);
        if (!rh_json_object_check(json, len, NULL))
                return rh_error_set(err, EINVAL, "fork mailbox payload must be a JSON object");
        memcpy(mb + RH_HFM_OFF_JSON, json, len);
        memset(mb + RH_HFM_OFF_JSON + len, 0, RH_HFM_JSON_MAX - len);
        unaligned_write_le32(mb + RH_HFM_OFF_LEN, (uint32_t)len);
        unaligned_write_le32(mb + RH_HFM_OFF_SEQ, 1);
        return 0;
}

int rh_hfm_decode(const uint8_t *mb, uint32_t *ret_seq, const uint8_t **ret_json, uint32_t *ret_len,
                  struct rh_error *err)
{
        uint32_t seq = unaligned_read_le32(mb + RH_HFM_OFF_SEQ), len = unaligned_read_le32(mb + RH_HFM_OFF_LEN);

        if (seq == 0)
                return rh_error_set(err, ENODATA, "no fork mailbox request (seq 0)");
        if (len == 0 || len > RH_HFM_JSON_MAX)
                return rh_error_set(err, EMSGSIZE, "fork mailbox JSON length %u out of range 1..%u", len,
                                    RH_HFM_JSON_MAX);
        if (!rh_json_object_check(mb + RH_HFM_OFF_JSON, len, NULL))
                return rh_error_set(err, EBADMSG, "fork mailbox payload is not a JSON object");
        *ret_seq = seq;
        *ret_json = mb + RH_HFM_OFF_JSON;
        *ret_len = len;
        return 0;
}

bool rh_hfm_ack_matches(const char *line, size_t len, const char *name)
{
        bool stage = false, mbox = false;
        size_t nl = strlen(name);
        size_t i = 0;

        while (i < len) {
                size_t s, w;

                while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\n' || line[i] == '\r'))
                        i++;
                s = i;
                while (i < len && !(line[i] == ' ' || line[i] == '\t' || line[i] == '\n' || line[i] == '\r'))
                        i++;
                w = i - s;
                if (w == 13 && memcmp(line + s, "stage=applied", 13) == 0)
                        stage = true;
                else if (w == 8 + nl && memcmp(line + s, "mailbox=", 8) == 0 && memcmp(line + s + 8, name, nl) == 0)
                        mbox = true;
        }
        return stage && mbox;
}
