/* SPDX-License-Identifier: MIT */
/*
 * Scope-bound cleanup helpers (systemd style): _cleanup_free_ and
 * _cleanup_close_ release on every return path; TAKE_PTR/TAKE_FD hand
 * ownership out. Initialise such variables to NULL / -EBADF.
 */
#ifndef REHOME_CLEANUP_H
#define REHOME_CLEANUP_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void freep(void *p)
{
        free(*(void **)p);
}

static inline void closep(int *fd)
{
        if (*fd >= 0) {
                int saved = errno;
                close(*fd);
                errno = saved;
        }
}

static inline void fclosep(FILE **f)
{
        if (*f)
                fclose(*f);
}

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

#define TAKE_PTR(p)                                                                                \
        __extension__({                                                                                         \
                __typeof__(p) _took = (p);                                                         \
                (p) = NULL;                                                                        \
                _took;                                                                             \
        })

#define TAKE_FD(fd)                                                                                \
        __extension__({                                                                                         \
                int _took = (fd);                                                                  \
                (fd) = -EBADF;                                                                     \
                _took;                                                                             \
        })

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

#endif
