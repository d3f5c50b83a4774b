/* SPDX-License-Identifier: MIT */
/*
 * Scope-bound cleanup helpers (systemd style): _cleanup_free_ and
 * _cleanup_close_ release on every return path; TAKE_PTR/TAKE_FD hand
 * ownership out. Initialise such variables to NULL / -EBADF.
 *
 * A handle type gets its helper from DEFINE_TRIVIAL_CLEANUP_FUNC next to
 * its declaration, e.g. DEFINE_TRIVIAL_CLEANUP_FUNC(struct rh_layout *,
 * rh_layout_free) defines rh_layout_freep() for _cleanup_(rh_layout_freep);
 * librehome's handles have theirs in src/lib/handle-cleanup.h.
 */
#ifndef REHOME_CLEANUP_H
#define REHOME_CLEANUP_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

/*
 * Define func##p(type *p): calls func(*p) unless *p is NULL, for
 * _cleanup_(func##p). func's return value, if any, is ignored (the
 * rehome _free functions return NULL).
 */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                    \
        static inline void func##p(type *p)                                                        \
        {                                                                                          \
                if (*p)                                                                            \
                        func(*p);                                                                  \
        }

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
