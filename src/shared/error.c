/* SPDX-License-Identifier: MIT */
/*
 * struct rh_error: fixed-buffer error messages with context prefixes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rehome/error.h"

int rh_error_set(struct rh_error *err, int code, const char *fmt, ...)
{
        va_list ap;

        code = abs(code);
        if (err) {
                err->code = code;
                va_start(ap, fmt);
                vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
                va_end(ap);
        }
        return -code;
}

int rh_error_prefix(struct rh_error *err, int code, const char *fmt, ...)
{
        char prefix[RH_ERROR_MSG_MAX], old[RH_ERROR_MSG_MAX];
        va_list ap;

        code = abs(code);
        if (!err)
                return -code;
        if (err->code == 0 || err->msg[0] == '\0') {
                snprintf(old, sizeof(old), "%s", strerror(code));
                err->code = code;
        } else
                memcpy(old, err->msg, sizeof(old));
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof(prefix), fmt, ap);
        va_end(ap);
        /* Compose by hand: snprintf("%s: %s") of two full buffers trips -Wformat-truncation. */
        size_t pl = strnlen(prefix, sizeof(err->msg) - 1), ol = strlen(old), n = 0;
        memcpy(err->msg, prefix, pl);
        n = pl;
        if (n + 2 < sizeof(err->msg)) {
                memcpy(err->msg + n, ": ", 2);
                n += 2;
        }
        if (ol > sizeof(err->msg) - 1 - n)
                ol = sizeof(err->msg) - 1 - n;
        memcpy(err->msg + n, old, ol);
        err->msg[n + ol] = '\0';
        return -code;
}
