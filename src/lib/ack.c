/* SPDX-License-Identifier: MIT */
/*
 * Acks as the host sees them: the agent's UDP ack line (hypeman-compatible
 * `stage=applied mac=... ip=... nonce=...`, one datagram) and the ack record
 * as JSON for --json output. Both come from the guest: untrusted, bounded.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "rehome/request.h"

#define ACK_LINE_MAX 1400

static int copy_value(char *dst, size_t cap, const char *v, size_t n)
{
        if (n >= cap)
                return -EMSGSIZE;
        memcpy(dst, v, n);
        dst[n] = '\0';
        return 0;
}

int rh_ack_line_parse(const char *line, size_t len, struct rh_ack_line *ret_line,
                      struct rh_error *err)
{
        struct rh_ack_line out = {};
        char value[RH_ACK_ERROR_MAX];
        size_t i = 0;

        if (len > ACK_LINE_MAX)
                return rh_error_set(err, EMSGSIZE, "ack line of %zu bytes exceeds %d", len, ACK_LINE_MAX);
        while (i < len) {
                size_t kstart, klen, vlen = 0;

                while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\n' || line[i] == '\r'))
                        i++;
                if (i >= len || line[i] == '\0')
                        break;
                kstart = i;
                while (i < len && line[i] != '=' && line[i] != ' ')
                        i++;
                if (i >= len || line[i] != '=')
                        return rh_error_set(err, EBADMSG, "ack line: \"%.*s\" is not key=value",
                                            (int)(i - kstart), line + kstart);
                klen = i - kstart;
                i++;
                if (i < len && line[i] == '"') {
                        i++;
                        while (i < len && line[i] != '"') {
                                char c = line[i];
                                if (c == '\\' && i + 1 < len)
                                        c = line[++i];
                                if (vlen + 1 >= sizeof(value))
                                        return rh_error_set(err, EMSGSIZE, "ack line: value too long");
                                value[vlen++] = c;
                                i++;
                        }
                        if (i >= len)
                                return rh_error_set(err, EBADMSG, "ack line: unterminated quote");
                        i++;
                } else
                        while (i < len && line[i] != ' ' && line[i] != '\n' && line[i] != '\r' &&
                               line[i] != '\t') {
                                if (vlen + 1 >= sizeof(value))
                                        return rh_error_set(err, EMSGSIZE, "ack line: value too long");
                                value[vlen++] = line[i++];
                        }
                value[vlen] = '\0';

#define KEY(k) (klen == strlen(k) && memcmp(line + kstart, k, klen) == 0)
                if (KEY("stage")) {
                        if (copy_value(out.stage, sizeof(out.stage), value, vlen) < 0)
                                return rh_error_set(err, EBADMSG, "ack line: stage too long");
                } else if (KEY("mac")) {
                        if (copy_value(out.mac, sizeof(out.mac), value, vlen) < 0)
                                return rh_error_set(err, EBADMSG, "ack line: mac too long");
                } else if (KEY("ip")) {
                        if (copy_value(out.ip, sizeof(out.ip), value, vlen) < 0)
                                return rh_error_set(err, EBADMSG, "ack line: ip too long");
                } else if (KEY("signal")) {
                        if (copy_value(out.signal, sizeof(out.signal), value, vlen) < 0)
                                return rh_error_set(err, EBADMSG, "ack line: signal too long");
                } else if (KEY("error")) {
                        copy_value(out.error, sizeof(out.error), value, vlen);
                } else if (KEY("nonce")) {
                        const char *p = value;
                        char *end;
                        if (vlen > 2 && p[0] == '0' && (p[1] == 'x' || p[1] == 'X'))
                                p += 2;
                        errno = 0;
                        out.nonce = strtoull(p, &end, 16);
                        if (errno || *end || !*p || end - p > 16)
                                return rh_error_set(err, EBADMSG, "ack line: bad nonce \"%s\"", value);
                        out.has_nonce = true;
                } else if (KEY("realtime")) {
                        char *end;
                        errno = 0;
                        out.realtime_ns = strtoull(value, &end, 10);
                        if (errno || *end || !vlen || out.realtime_ns == 0)
                                return rh_error_set(err, EBADMSG, "ack line: bad realtime \"%s\"", value);
                        out.has_realtime = true;
                } else if (KEY("seq")) {
                        char *end;
                        unsigned long long v;
                        errno = 0;
                        v = strtoull(value, &end, 10);
                        if (errno || *end || !vlen || v > UINT32_MAX)
                                return rh_error_set(err, EBADMSG, "ack line: bad seq \"%s\"", value);
                        out.seq = (uint32_t)v;
                        out.has_seq = true;
                }
#undef KEY
        }
        if (!out.stage[0])
                return rh_error_set(err, EBADMSG, "ack line has no stage");
        *ret_line = out;
        return 0;
}

char *rh_ack_to_json(const struct rh_ack *ack, int indent)
{
        char nonce[20], text[RH_ACK_ERROR_MAX], *s;
        json_t *o;

        /* Guest-written text: keep printable ASCII only, so it is valid UTF-8. */
        for (size_t i = 0; i < sizeof(text); i++) {
                char c = ack->error[i];
                text[i] = (c == '\0' || (c >= ' ' && c <= '~')) ? c : '?';
                if (c == '\0')
                        break;
        }
        text[sizeof(text) - 1] = '\0';
        snprintf(nonce, sizeof(nonce), "%016" PRIx64, ack->nonce);
        o = json_pack("{s:I,s:s,s:s,s:s,s:I,s:i,s:I,s:I,s:I,s:I,s:I,s:s}", "seq", (json_int_t)ack->seq,
                      "nonce", nonce, "status", rh_ack_status_name(ack->status), "signal",
                      rh_signal_name(ack->signal), "applied", (json_int_t)ack->applied, "error_code",
                      (int)ack->error_code, "t_signal_ns", (json_int_t)ack->t_signal_ns, "t_read_ns",
                      (json_int_t)ack->t_read_ns, "t_applied_ns", (json_int_t)ack->t_applied_ns,
                      "t_ack_ns", (json_int_t)ack->t_ack_ns, "arm_generation",
                      (json_int_t)ack->arm_generation, "error", text);
        if (!o)
                return NULL;
        if (ack->has_stats) {
                /* The agent's own costs (docs/MAILBOX.md, ack statistics). */
                json_t *steps = json_object();

                for (unsigned i = 0; i < RH_STEP_COUNT; i++)
                        json_object_set_new(steps, rh_ack_step_name(i), json_integer(ack->step_ns[i]));
                json_object_set_new(o, "step_ns", steps);
                json_object_set_new(o, "syscalls", json_integer(ack->syscalls));
                json_object_set_new(o, "netlink_round_trips", json_integer(ack->nl_round_trips));
        }
        s = json_dumps(o, JSON_PRESERVE_ORDER | (indent > 0 ? JSON_INDENT(indent) : JSON_COMPACT));
        json_decref(o);
        return s;
}
