/* SPDX-License-Identifier: MIT */
/*
 * rehome error contract.
 *
 * Every fallible librehome function returns int: >= 0 on success, -errno on
 * failure. Public entry points also take an optional caller-owned
 * struct rh_error (a fixed buffer, never heap) that is filled only on failure.
 * Each layer on the way up prefixes its own context, so the message a user
 * finally reads names every step: "patch mailbox at gpa 0x9dee000:
 * /proc/4242/mem: Permission denied".
 */
#ifndef REHOME_ERROR_H
#define REHOME_ERROR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Exported from librehome.so (built with -fvisibility=hidden; docs/ABI.md). */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define RH_ERROR_MSG_MAX 512

struct rh_error {
        int code;                       /* positive errno of the failure, 0 when unset */
        char msg[RH_ERROR_MSG_MAX];     /* NUL-terminated, human readable, no newline */
};

/*
 * rh_error_set - record a failure.
 * @err:  may be NULL (then nothing is recorded)
 * @code: errno value, either sign; stored positive
 * @fmt:  printf format for the message
 *
 * Returns -abs(code) so callers can write `return rh_error_set(err, -EINVAL, ...)`.
 */
int rh_error_set(struct rh_error *err, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/*
 * rh_error_prefix - prepend context ("fork clone 3: ") to a recorded failure.
 * @err: may be NULL
 * @code: the failure being propagated (either sign); if err holds no message
 *        yet, strerror(code) becomes the message
 *
 * Returns -abs(code).
 */
int rh_error_prefix(struct rh_error *err, int code, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif
