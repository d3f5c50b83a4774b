/* SPDX-License-Identifier: MIT */
/*
 * Parser of the agent's armed line (see armed.h). The line comes off the
 * guest's serial console, so it is read like any other untrusted input: its
 * length is capped before anything else, every byte must be printable, and
 * each field is checked for form, range and repetition before a value is
 * taken. Nothing reaches the caller unless the whole line is good.
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "armed.h"
#include "hex.h"

#define PAGE 4096ull

static int parse_gpa(const char *v, size_t len, uint64_t *ret_gpa, struct rh_error *err)
{
        uint64_t gpa = 0;

        if (len < 3 || v[0] != '0' || v[1] != 'x')
                return rh_error_set(err, -EBADMSG, "armed line: gpa is not 0x-hex");
        if (len - 2 > 16)
                return rh_error_set(err, -EBADMSG, "armed line: gpa has %zu hex digits, at most 16", len - 2);
        for (size_t i = 2; i < len; i++) {
                int d = hexval(v[i]);
                if (d < 0)
                        return rh_error_set(err, -EBADMSG, "armed line: gpa is not 0x-hex");
                gpa = gpa << 4 | (uint64_t)d; /* 16 digits at most: cannot overflow */
        }
        if (gpa >> VMM_ARMED_GPA_BITS)
                return rh_error_set(err, -EBADMSG, "armed line: gpa 0x%llx beyond %d bits",
                                    (unsigned long long)gpa, VMM_ARMED_GPA_BITS);
        if (gpa % PAGE)
                return rh_error_set(err, -EBADMSG, "armed line: gpa 0x%llx not page aligned",
                                    (unsigned long long)gpa);
        *ret_gpa = gpa;
        return 0;
}

static int parse_token(const char *v, size_t len, uint8_t ret_token[RH_TOKEN_LEN], struct rh_error *err)
{
        uint8_t token[RH_TOKEN_LEN];

        if (len != 2 * RH_TOKEN_LEN)
                return rh_error_set(err, -EBADMSG, "armed line: token has %zu characters, not %u hex digits",
                                    len, 2 * RH_TOKEN_LEN);
        for (size_t i = 0; i < RH_TOKEN_LEN; i++) {
                int hi = hexval(v[2 * i]), lo = hexval(v[2 * i + 1]);
                if (hi < 0 || lo < 0)
                        return rh_error_set(err, -EBADMSG, "armed line: token is not hex");
                token[i] = (uint8_t)(hi << 4 | lo);
        }
        memcpy(ret_token, token, RH_TOKEN_LEN);
        return 0;
}

static bool key_is(const char *key, size_t key_len, const char *want)
{
        return key_len == strlen(want) && memcmp(key, want, key_len) == 0;
}

static bool key_ok(const char *key, size_t key_len)
{
        if (key_len == 0)
                return false;
        for (size_t i = 0; i < key_len; i++)
                if (!((key[i] >= 'a' && key[i] <= 'z') || (key[i] >= '0' && key[i] <= '9') || key[i] == '_'))
                        return false;
        return true;
}

int vmm_armed_parse(const char *line, uint64_t *ret_gpa, uint8_t ret_token[RH_TOKEN_LEN], char *ret_abi,
                    size_t abi_len, struct rh_error *err)
{
        const size_t prefix_len = sizeof(VMM_ARMED_PREFIX) - 1;
        uint8_t token[RH_TOKEN_LEN];
        uint64_t gpa = 0;
        const char *abi = NULL;
        size_t len, abi_n = 0;
        bool have_gpa = false, have_token = false;
        int r;

        assert(line && ret_gpa && ret_token && ret_abi && abi_len > 0);

        /* Cap first: nothing below reads past VMM_ARMED_LINE_MAX bytes. */
        len = strnlen(line, VMM_ARMED_LINE_MAX + 1);
        if (len > VMM_ARMED_LINE_MAX)
                return rh_error_set(err, -EBADMSG, "armed line: longer than %d bytes", VMM_ARMED_LINE_MAX);
        for (size_t i = 0; i < len; i++)
                if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] > 0x7e)
                        return rh_error_set(err, -EBADMSG,
                                            "armed line: byte 0x%02x at offset %zu is not printable",
                                            (unsigned char)line[i], i);
        if (len < prefix_len || memcmp(line, VMM_ARMED_PREFIX, prefix_len) != 0)
                return rh_error_set(err, -EBADMSG, "armed line: does not start with '%s'", VMM_ARMED_PREFIX);

        for (const char *p = line + prefix_len, *end = line + len; p < end;) {
                const char *field, *eq, *next;
                size_t field_len;

                if (*p != ' ')
                        return rh_error_set(err, -EBADMSG,
                                            "armed line: no space before the field at offset %zu",
                                            (size_t)(p - line));
                field = p + 1;
                next = memchr(field, ' ', (size_t)(end - field));
                if (!next)
                        next = end;
                field_len = (size_t)(next - field);
                if (field_len == 0)
                        return rh_error_set(err, -EBADMSG, "armed line: empty field at offset %zu",
                                            (size_t)(field - line));
                eq = memchr(field, '=', field_len);
                if (!eq || !key_ok(field, (size_t)(eq - field)))
                        return rh_error_set(err, -EBADMSG, "armed line: field at offset %zu is not key=value",
                                            (size_t)(field - line));

                const char *key = field, *value = eq + 1;
                size_t key_len = (size_t)(eq - field), value_len = (size_t)(next - value);

                if (key_is(key, key_len, "gpa")) {
                        if (have_gpa)
                                return rh_error_set(err, -EBADMSG, "armed line: gpa given twice");
                        r = parse_gpa(value, value_len, &gpa, err);
                        if (r < 0)
                                return r;
                        have_gpa = true;
                } else if (key_is(key, key_len, "token")) {
                        if (have_token)
                                return rh_error_set(err, -EBADMSG, "armed line: token given twice");
                        r = parse_token(value, value_len, token, err);
                        if (r < 0)
                                return r;
                        have_token = true;
                } else if (key_is(key, key_len, "abi")) {
                        if (abi)
                                return rh_error_set(err, -EBADMSG, "armed line: abi given twice");
                        if (value_len == 0 || value_len > VMM_ARMED_ABI_MAX || value_len >= abi_len)
                                return rh_error_set(
                                        err, -EBADMSG, "armed line: abi has %zu characters, not 1..%zu",
                                        value_len,
                                        abi_len - 1 < VMM_ARMED_ABI_MAX ? abi_len - 1 : VMM_ARMED_ABI_MAX);
                        abi = value;
                        abi_n = value_len;
                }
                /* Another key: a newer agent's field; its bytes were checked above. */
                p = next;
        }
        if (!have_gpa)
                return rh_error_set(err, -EBADMSG, "armed line: no gpa");
        if (!have_token)
                return rh_error_set(err, -EBADMSG, "armed line: no token");
        if (!abi)
                return rh_error_set(err, -EBADMSG, "armed line: no abi");

        *ret_gpa = gpa;
        memcpy(ret_token, token, RH_TOKEN_LEN);
        memcpy(ret_abi, abi, abi_n);
        ret_abi[abi_n] = '\0';
        return 0;
}
