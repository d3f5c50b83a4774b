/* SPDX-License-Identifier: MIT */
/*
 * What every benchmark section and the working-set recorder share: one fork
 * through the clone stages with measurements between them
 * (bench_fork_measured), and progress lines. Its own file so that the
 * sections (bench.c, bench-nat.c) and ws-record.c depend on it, not on
 * each other.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "clone.h"

int bench_fork_measured(const struct vmm_template *t, const struct vmm_fork_opts *o, bool handoff,
                        int (*before_resume)(void *ctx, const struct vmm_clone *c),
                        void (*after_ack)(void *ctx, const struct vmm_clone *c), void *ctx,
                        struct vmm_fork_result *res, struct rh_error *err)
{
        struct clone c;
        int r;

        r = clone_prepare(&c, t, o, res, err);
        if (r < 0) {
                clone_free(&c);
                return rh_error_prefix(err, r, "fork %s", t->name);
        }
        if (!handoff) {
                /* Resumed unchanged: the record shows the template's identity. */
                snprintf(c.rec.ip, sizeof(c.rec.ip), "%s", t->ip);
                snprintf(c.rec.gateway, sizeof(c.rec.gateway), "%s", t->gateway);
                memcpy(c.rec.mac, t->mac, 6);
        }
        r = clone_spawn(&c, err);
        if (r == 0)
                r = clone_load_state(&c, err);
        if (r == 0 && handoff)
                r = clone_handoff(&c, err);
        if (r == 0 && before_resume) {
                r = before_resume(ctx, &c.rec);
                if (r < 0)
                        rh_error_set(err, r, "before resume: %s", strerror(-r));
        }
        if (r == 0)
                r = clone_resume(&c, err);
        if (r == 0 && handoff) {
                r = clone_wait_ack(&c, err);
                if (r == 0 && after_ack)
                        after_ack(ctx, &c.rec);
        }
        if (r == 0 && !handoff)
                res->t.total = (double)(c.t_cont - c.t_start) / 1e6;
        return clone_finish(&c, r, err);
}

void bench_say(const struct vmm_bench_opts *o, const char *fmt, ...)
{
        va_list ap;
        if (!o->progress)
                return;
        fprintf(stderr, "bench: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}
