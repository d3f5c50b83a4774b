/* SPDX-License-Identifier: MIT */
/*
 * Recording a template's working set: fork it a few times through the
 * clone stages (bench_fork_measured), with the pagemap read right before
 * resume and right after the ack, and store the union of the pages that
 * became present in between (workingset.c's format). Kept apart from
 * workingset.c so that the format and prefetch (which every fork uses)
 * do not depend on the fork path.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "bench.h"
#include "cleanup.h"
#include "io.h"
#include "rehome/layout.h"

#define PAGE 4096ull

/* ---- recording ---------------------------------------------------------- */

struct record_ctx {
        const char *ram_path;
        uint64_t pages;
        uint8_t *before, *after;
        long referenced_kb;
        int rc;
};

static int record_before(void *ctx, const struct vmm_clone *c)
{
        struct record_ctx *rc = ctx;
        if (bench_present_pages(c->pid, rc->ram_path, rc->before, rc->pages) < 0)
                return -EIO;
        return bench_clear_refs(c->pid);
}

static void record_after(void *ctx, const struct vmm_clone *c)
{
        struct record_ctx *rc = ctx;
        struct bench_smaps s;
        if (bench_present_pages(c->pid, rc->ram_path, rc->after, rc->pages) < 0)
                rc->rc = -EIO;
        if (bench_smaps_ram(c->pid, rc->ram_path, &s) == 0)
                rc->referenced_kb = s.referenced_kb;
}

int vmm_ws_record(const struct vmm_template *t, const struct vmm_fork_opts *opts, unsigned runs,
                  size_t *ret_pages, long *ret_referenced, struct rh_error *err)
{
        struct record_ctx rc = { .ram_path = t->ram_path, .pages = t->mem_size / PAGE };
        _cleanup_free_ uint8_t *before = NULL, *after = NULL, *set = NULL;
        _cleanup_free_ uint64_t *offs = NULL;
        struct rh_layout *layout = NULL;
        uint64_t mbox_off = UINT64_MAX;
        char path[PATH_MAX + 16];
        size_t n = 0;
        int r;

        before = calloc(rc.pages, 1);
        after = calloc(rc.pages, 1);
        set = calloc(rc.pages, 1);
        if (!before || !after || !set)
                return rh_error_set(err, -ENOMEM, "out of memory");
        rc.before = before;
        rc.after = after;
        if (rh_layout_parse(t->layout, &layout, NULL) == 0) {
                if (rh_layout_gpa_to_offset(layout, t->mailbox_gpa, PAGE, &mbox_off, NULL) < 0)
                        mbox_off = UINT64_MAX;
                rh_layout_free(layout);
        }
        for (unsigned i = 0; i < runs; i++) {
                struct vmm_fork_opts o = *opts;
                struct vmm_fork_result res;
                o.keep = false;
                o.no_prefetch = true; /* record what the handoff itself touches */
                rc.rc = 0;
                memset(before, 0, rc.pages);
                memset(after, 0, rc.pages);
                r = bench_fork_measured(t, &o, true, record_before, record_after, &rc, &res, err);
                if (r < 0)
                        return rh_error_prefix(err, r, "record run %u", i + 1);
                if (res.clone.pid > 0)
                        vmm_clone_destroy(o.state_dir, &res.clone, NULL);
                if (rc.rc < 0)
                        return rh_error_set(err, rc.rc, "record run %u: pagemap of the clone unreadable", i + 1);
                for (uint64_t p = 0; p < rc.pages; p++)
                        if (after[p] && !before[p])
                                set[p] = 1;
        }
        if (mbox_off != UINT64_MAX && mbox_off / PAGE < rc.pages)
                set[mbox_off / PAGE] = 1;
        offs = calloc(rc.pages, sizeof(*offs));
        if (!offs)
                return rh_error_set(err, -ENOMEM, "out of memory");
        for (uint64_t p = 0; p < rc.pages; p++)
                if (set[p])
                        offs[n++] = p * PAGE;
        snprintf(path, sizeof(path), "%s/%s", t->dir, VMM_WS_FILE);
        r = vmm_ws_save(path, t->mem_size, offs, n, err);
        if (r < 0)
                return r;
        if (ret_pages)
                *ret_pages = n;
        if (ret_referenced)
                *ret_referenced = rc.referenced_kb / 4;
        return 0;
}
