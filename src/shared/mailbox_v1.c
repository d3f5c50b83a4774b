/* SPDX-License-Identifier: MIT */
/*
 * hypeman V1 mailbox compatibility (DESIGN.md decision 7): a 4 KiB buffer
 * that starts with "HYPEMAN_RESUME_NETWORK_MAILBOX_V1\0" and a token of
 * 1..30 bytes (NUL-padded to +64; a 30-byte token has no NUL), a u32
 * sequence at +64, a u32 JSON length at +68, and a flat JSON object at +72:
 * {"interface_name","mac","ipv4","prefix","gateway","ack_port"}.
 *
 * The agent has no JSON library (it is static and tiny), so this file holds
 * a strict parser for exactly that shape: one flat object whose values are
 * strings, non-negative integers, true/false or null. Unknown keys are
 * skipped (a newer hypeman may add fields); a duplicate key is an error.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "rehome/mailbox.h"
#include "unaligned.h"

bool rh_v1_token_valid(const char *token)
{
        /* hypeman's rule: non-empty, at most the 30 bytes of the token area;
         * the bytes themselves are not looked at (spaces, UTF-8, anything). */
        return token && token[0] && strnlen(token, RH_V1_TOKEN_MAX + 1) <= RH_V1_TOKEN_MAX;
}

int rh_v1_write_header(uint8_t *page, const char *token, struct rh_error *err)
{
        if (!rh_v1_token_valid(token))
                return rh_error_set(err, EINVAL, "V1 token must be 1..%u bytes", RH_V1_TOKEN_MAX);
        memset(page, 0, RH_V1_OFF_JSON);
        memcpy(page, RH_V1_MAGIC, RH_V1_MAGIC_LEN);
        memcpy(page + RH_V1_MAGIC_LEN, token, strlen(token));
        return 0;
}

size_t rh_v1_token_read(const uint8_t marker[RH_V1_OFF_SEQ], char *buf)
{
        size_t n = strnlen((const char *)marker + RH_V1_MAGIC_LEN, RH_V1_TOKEN_MAX);

        memcpy(buf, marker + RH_V1_MAGIC_LEN, n);
        buf[n] = '\0';
        return n;
}

bool rh_v1_marker_matches(const uint8_t marker[RH_V1_OFF_SEQ], const char *token)
{
        const uint8_t *t = marker + RH_V1_MAGIC_LEN;
        size_t n;

        if (memcmp(marker, RH_V1_MAGIC, RH_V1_MAGIC_LEN) != 0 || t[0] == '\0')
                return false;
        if (!token)
                return true;
        n = strlen(token);
        /* The token's bytes, then a NUL unless they fill the area to +64. */
        return n <= RH_V1_TOKEN_MAX && memcmp(t, token, n) == 0 && (n == RH_V1_TOKEN_MAX || t[n] == '\0');
}

bool rh_v1_matches(const uint8_t *page, size_t len, const char *token)
{
        return len >= RH_MAILBOX_SIZE && rh_v1_marker_matches(page, token);
}

/* ---- a strict little JSON reader for one flat object ---- */

struct json_in {
        const char *p, *end;
};

enum { V_STRING, V_NUMBER, V_BOOL, V_NULL };

struct json_value {
        int kind;
        char str[64];
        uint64_t num;
};

static void skip_ws(struct json_in *in)
{
        while (in->p < in->end && (*in->p == ' ' || *in->p == '\t' || *in->p == '\n' || *in->p == '\r'))
                in->p++;
}

static bool accept(struct json_in *in, char c)
{
        skip_ws(in);
        if (in->p < in->end && *in->p == c) {
                in->p++;
                return true;
        }
        return false;
}

static int hex4(const char *p)
{
        int v = 0;

        for (int i = 0; i < 4; i++) {
                char c = p[i];
                v <<= 4;
                if (c >= '0' && c <= '9')
                        v |= c - '0';
                else if (c >= 'a' && c <= 'f')
                        v |= c - 'a' + 10;
                else if (c >= 'A' && c <= 'F')
                        v |= c - 'A' + 10;
                else
                        return -1;
        }
        return v;
}

/* A string into @out (cap bytes incl. NUL), or skipped when @out is NULL.
 * Only ASCII survives \u escapes. */
static int parse_string(struct json_in *in, char *out, size_t cap)
{
        size_t n = 0;

        if (!accept(in, '"'))
                return -EBADMSG;
        while (in->p < in->end) {
                char c = *in->p++;
                if (c == '"') {
                        if (out)
                                out[n] = '\0';
                        return 0;
                }
                if ((unsigned char)c < 0x20)
                        return -EBADMSG;
                if (c == '\\') {
                        if (in->p >= in->end)
                                return -EBADMSG;
                        c = *in->p++;
                        switch (c) {
                        case '"': case '\\': case '/': break;
                        case 'b': c = '\b'; break;
                        case 'f': c = '\f'; break;
                        case 'n': c = '\n'; break;
                        case 'r': c = '\r'; break;
                        case 't': c = '\t'; break;
                        case 'u': {
                                int v;
                                if (in->end - in->p < 4 || (v = hex4(in->p)) < 1 || v > 0x7f)
                                        return -EBADMSG;
                                in->p += 4;
                                c = (char)v;
                                break;
                        }
                        default:
                                return -EBADMSG;
                        }
                }
                if (!out)
                        continue;
                if (n + 1 >= cap)
                        return -EMSGSIZE;
                out[n++] = c;
        }
        return -EBADMSG;
}

static int parse_value(struct json_in *in, struct json_value *v)
{
        skip_ws(in);
        if (in->p >= in->end)
                return -EBADMSG;
        if (*in->p == '"') {
                v->kind = V_STRING;
                return parse_string(in, v->str, sizeof(v->str));
        }
        if (*in->p >= '0' && *in->p <= '9') {
                v->kind = V_NUMBER;
                v->num = 0;
                if (*in->p == '0' && in->end - in->p > 1 && in->p[1] >= '0' && in->p[1] <= '9')
                        return -EBADMSG; /* no leading zeros */
                while (in->p < in->end && *in->p >= '0' && *in->p <= '9') {
                        if (v->num > 0xffffffffull)
                                return -ERANGE;
                        v->num = v->num * 10 + (uint64_t)(*in->p++ - '0');
                }
                if (in->p < in->end && (*in->p == '.' || *in->p == 'e' || *in->p == 'E'))
                        return -EBADMSG;
                return 0;
        }
        static const struct {
                const char *word;
                int kind;
                uint64_t num;
        } words[] = { { "true", V_BOOL, 1 }, { "false", V_BOOL, 0 }, { "null", V_NULL, 0 } };
        for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
                size_t n = strlen(words[i].word);
                if ((size_t)(in->end - in->p) >= n && memcmp(in->p, words[i].word, n) == 0) {
                        in->p += n;
                        v->kind = words[i].kind;
                        v->num = words[i].num;
                        return 0;
                }
        }
        return -EBADMSG;
}

static bool skip_digits(struct json_in *in)
{
        const char *start = in->p;

        while (in->p < in->end && *in->p >= '0' && *in->p <= '9')
                in->p++;
        return in->p > start;
}

/*
 * Skip any JSON value (the value of a key we do not know): strings of any
 * length, any number, arrays and objects nested at most 8 deep.
 */
static int skip_value(struct json_in *in, unsigned depth)
{
        skip_ws(in);
        if (in->p >= in->end || depth > 8)
                return -EBADMSG;
        if (*in->p == '"')
                return parse_string(in, NULL, 0);
        if (*in->p == '[' || *in->p == '{') {
                bool object = *in->p++ == '{';
                if (accept(in, object ? '}' : ']'))
                        return 0;
                do {
                        if (object && (parse_string(in, NULL, 0) < 0 || !accept(in, ':')))
                                return -EBADMSG;
                        if (skip_value(in, depth + 1) < 0)
                                return -EBADMSG;
                } while (accept(in, ','));
                return accept(in, object ? '}' : ']') ? 0 : -EBADMSG;
        }
        if (*in->p == '-' || (*in->p >= '0' && *in->p <= '9')) {
                /* -?digits(.digits)?([eE][+-]?digits)? */
                if (*in->p == '-')
                        in->p++;
                if (!skip_digits(in))
                        return -EBADMSG;
                if (in->p < in->end && *in->p == '.') {
                        in->p++;
                        if (!skip_digits(in))
                                return -EBADMSG;
                }
                if (in->p < in->end && (*in->p == 'e' || *in->p == 'E')) {
                        in->p++;
                        if (in->p < in->end && (*in->p == '+' || *in->p == '-'))
                                in->p++;
                        if (!skip_digits(in))
                                return -EBADMSG;
                }
                return 0;
        }
        struct json_value v;
        return parse_value(in, &v); /* true, false, null */
}

enum { F_IFNAME, F_MAC, F_IPV4, F_PREFIX, F_GATEWAY, F_ACK_PORT, F_COUNT };
static const char *const v1_fields[F_COUNT] = {
        "interface_name", "mac", "ipv4", "prefix", "gateway", "ack_port",
};

int rh_v1_decode(const uint8_t *page, size_t len, struct rh_request *ret_req, uint32_t *ret_seq,
                 struct rh_error *err)
{
        struct json_value vals[F_COUNT] = {};
        bool seen[F_COUNT] = {};
        struct rh_request req = {};
        struct json_in in;
        uint32_t seq, jlen;
        uint8_t prefix;
        int r;

        if (len < RH_MAILBOX_SIZE)
                return rh_error_set(err, EMSGSIZE, "V1 mailbox truncated: %zu of %u bytes", len, RH_MAILBOX_SIZE);
        if (!rh_v1_matches(page, len, NULL))
                return rh_error_set(err, ENOMSG, "no V1 mailbox magic");
        seq = unaligned_read_le32(page + RH_V1_OFF_SEQ);
        if (seq == 0)
                return rh_error_set(err, ENODATA, "no V1 request (seq 0)");
        jlen = unaligned_read_le32(page + RH_V1_OFF_LEN);
        if (jlen == 0 || jlen > RH_V1_JSON_MAX)
                return rh_error_set(err, EMSGSIZE, "V1 JSON length %u out of range 1..%u", jlen, RH_V1_JSON_MAX);

        in.p = (const char *)page + RH_V1_OFF_JSON;
        in.end = in.p + jlen;
        if (!accept(&in, '{'))
                return rh_error_set(err, EBADMSG, "V1 JSON: expected '{'");
        if (!accept(&in, '}')) {
                do {
                        char key[32];
                        struct json_value v;
                        const char *key_start = in.p;
                        int f;

                        r = parse_string(&in, key, sizeof(key));
                        if (r == -EMSGSIZE) {
                                /* Longer than any key we know: skip it as unknown. */
                                in.p = key_start;
                                r = parse_string(&in, NULL, 0);
                                snprintf(key, sizeof(key), "(long key)");
                        }
                        if (r < 0)
                                return rh_error_set(err, EBADMSG, "V1 JSON: expected a key string");
                        if (!accept(&in, ':'))
                                return rh_error_set(err, EBADMSG, "V1 JSON: expected ':' after \"%s\"", key);
                        for (f = 0; f < F_COUNT; f++)
                                if (strcmp(key, v1_fields[f]) == 0)
                                        break;
                        if (f == F_COUNT) {
                                /* Unknown key: any JSON value, ignored for forward compatibility. */
                                if (skip_value(&in, 0) < 0)
                                        return rh_error_set(err, EBADMSG, "V1 JSON: bad value for \"%s\"", key);
                                continue;
                        }
                        r = parse_value(&in, &v);
                        if (r < 0)
                                return rh_error_set(err, EBADMSG, "V1 JSON: bad value for \"%s\"", key);
                        if (seen[f])
                                return rh_error_set(err, EBADMSG, "V1 JSON: duplicate \"%s\"", key);
                        seen[f] = true;
                        vals[f] = v;
                } while (accept(&in, ','));
                if (!accept(&in, '}'))
                        return rh_error_set(err, EBADMSG, "V1 JSON: expected ',' or '}'");
        }
        skip_ws(&in);
        if (in.p != in.end)
                return rh_error_set(err, EBADMSG, "V1 JSON: trailing bytes after the object");

        static const int want_kind[F_COUNT] = { V_STRING, V_STRING, V_STRING, V_NUMBER, V_STRING, V_NUMBER };
        static const bool required[F_COUNT] = { false, true, true, true, false, false };
        for (int f = 0; f < F_COUNT; f++) {
                if (!seen[f] || vals[f].kind == V_NULL) {
                        if (required[f])
                                return rh_error_set(err, EBADMSG, "V1 JSON: missing \"%s\"", v1_fields[f]);
                        seen[f] = false;
                        continue;
                }
                if (vals[f].kind != want_kind[f])
                        return rh_error_set(err, EBADMSG, "V1 JSON: \"%s\" has the wrong type", v1_fields[f]);
        }

        struct rh_iface *iface = &req.ifaces[req.n_ifaces++];
        iface->match = RH_MATCH_NAME;
        memcpy(iface->name, "eth0", 5);
        if (seen[F_IFNAME]) {
                size_t n = strlen(vals[F_IFNAME].str);
                if (n >= RH_IFNAME_MAX)
                        return rh_error_set(err, EINVAL, "V1: interface name too long");
                memcpy(iface->name, vals[F_IFNAME].str, n + 1);
        }
        if (rh_mac_parse(vals[F_MAC].str, iface->mac) < 0)
                return rh_error_set(err, EINVAL, "V1: invalid MAC \"%s\"", vals[F_MAC].str);
        iface->has_mac = true;

        struct rh_ipaddr ip;
        if (rh_ip_parse(vals[F_IPV4].str, &ip, NULL) < 0 || ip.family != 4)
                return rh_error_set(err, EINVAL, "V1: invalid IPv4 address \"%s\"", vals[F_IPV4].str);
        if (vals[F_PREFIX].num > 32)
                return rh_error_set(err, EINVAL, "V1: prefix /%llu exceeds 32",
                                    (unsigned long long)vals[F_PREFIX].num);
        prefix = (uint8_t)vals[F_PREFIX].num;
        req.addrs[0].iface = 0;
        req.addrs[0].family = 4;
        req.addrs[0].prefix = prefix;
        memcpy(req.addrs[0].addr, ip.addr, 16);
        req.n_addrs = 1;

        if (seen[F_GATEWAY] && vals[F_GATEWAY].str[0]) {
                if (rh_ip_parse(vals[F_GATEWAY].str, &ip, NULL) < 0 || ip.family != 4)
                        return rh_error_set(err, EINVAL, "V1: invalid gateway \"%s\"", vals[F_GATEWAY].str);
                req.routes[0].family = 4;
                req.routes[0].has_gateway = true;
                memcpy(req.routes[0].gateway, ip.addr, 16);
                req.n_routes = 1;
        }
        if (seen[F_ACK_PORT]) {
                if (vals[F_ACK_PORT].num == 0 || vals[F_ACK_PORT].num > 65535)
                        return rh_error_set(err, EINVAL, "V1: ack_port %llu out of range 1..65535",
                                            (unsigned long long)vals[F_ACK_PORT].num);
                req.has_ack_udp = true;
                req.ack_port = (uint16_t)vals[F_ACK_PORT].num;
                req.ack_addr.family = 0; /* the gateway */
        }
        req.flags = RH_REQ_FLUSH_NEIGH | RH_REQ_ANNOUNCE | RH_REQ_REPLACE_ADDRS;

        r = rh_request_validate(&req, err);
        if (r < 0)
                return r;
        req.seq = seq;
        req.size = sizeof(req);
        *ret_req = req;
        if (ret_seq)
                *ret_seq = seq;
        return 0;
}

int rh_v1_encode(uint8_t *page, const struct rh_request *req, uint32_t seq, struct rh_error *err)
{
        char json[RH_V1_JSON_MAX], mac[18], ip[46], gw[46] = "", name[2 * RH_IFNAME_MAX];
        const struct rh_iface *iface;
        const struct rh_addr *addr = NULL;
        size_t k = 0;
        int n, r;

        if (seq == 0)
                return rh_error_set(err, EINVAL, "V1 sequence number 0 is reserved");
        r = rh_request_validate(req, err);
        if (r < 0)
                return r;
        if (req->n_ifaces != 1)
                return rh_error_set(err, EINVAL, "V1 carries exactly one interface, request has %u", req->n_ifaces);
        iface = &req->ifaces[0];
        if (!(iface->match & RH_MATCH_NAME) || !iface->has_mac)
                return rh_error_set(err, EINVAL, "V1 needs an interface name and a new MAC");
        for (unsigned i = 0; i < req->n_addrs; i++)
                if (req->addrs[i].family == 4) {
                        addr = &req->addrs[i];
                        break;
                }
        if (!addr)
                return rh_error_set(err, EINVAL, "V1 needs an IPv4 address");
        for (unsigned i = 0; i < req->n_routes; i++)
                if (req->routes[i].family == 4 && req->routes[i].dst_prefix == 0 && req->routes[i].has_gateway) {
                        struct rh_ipaddr g = { .family = 4 };
                        memcpy(g.addr, req->routes[i].gateway, 16);
                        rh_ip_format(&g, gw);
                        break;
                }
        /* hypeman's guest drops a request whose gateway is empty, silently. */
        if (!gw[0])
                return rh_error_set(err, EINVAL, "V1 needs an IPv4 default gateway");
        struct rh_ipaddr a = { .family = 4 };
        memcpy(a.addr, addr->addr, 16);
        rh_ip_format(&a, ip);
        rh_mac_format(iface->mac, mac);
        /* A valid name has no control characters, but may hold '"' or '\\'. */
        for (const char *c = iface->name; *c; c++) {
                if (*c == '"' || *c == '\\')
                        name[k++] = '\\';
                name[k++] = *c;
        }
        name[k] = '\0';

        n = snprintf(json, sizeof(json),
                     "{\"interface_name\":\"%s\",\"mac\":\"%s\",\"ipv4\":\"%s\",\"prefix\":%u,"
                     "\"gateway\":\"%s\",\"ack_port\":%u}",
                     name, mac, ip, addr->prefix, gw, req->has_ack_udp ? req->ack_port : 0);
        if (n < 0 || (size_t)n >= sizeof(json))
                return rh_error_set(err, ENOBUFS, "V1 JSON does not fit");
        if (!req->has_ack_udp) /* ack_port 0 is not valid V1: leave it out */
                n = snprintf(json, sizeof(json),
                             "{\"interface_name\":\"%s\",\"mac\":\"%s\",\"ipv4\":\"%s\",\"prefix\":%u,"
                             "\"gateway\":\"%s\"}",
                             name, mac, ip, addr->prefix, gw);
        memset(page + RH_V1_OFF_JSON, 0, RH_V1_JSON_MAX);
        memcpy(page + RH_V1_OFF_JSON, json, (size_t)n);
        unaligned_write_le32(page + RH_V1_OFF_LEN, (uint32_t)n);
        __atomic_thread_fence(__ATOMIC_RELEASE);
        unaligned_write_le32(page + RH_V1_OFF_SEQ, seq);
        return 0;
}
