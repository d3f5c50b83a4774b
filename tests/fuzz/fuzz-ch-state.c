/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for rh_layout_new_cloud_hypervisor, the decoder of a
 * Cloud Hypervisor snapshot's state.json (untrusted: it comes with the
 * snapshot). The first input byte picks what the rest is:
 *   even: the whole state.json file;
 *   odd:  only the memory-manager's inner state document, which the target
 *         wraps as a JSON string into snapshots."memory-manager".snapshot_data
 *         .state, so mutations reach the range parser without having to keep
 *         a doubly escaped string valid.
 * A failure must be one of the documented errnos with its message recorded.
 * A success must be a layout that keeps the header's promises (1..64
 * regions in ascending gpa order, non-overlapping, below RH_LAYOUT_GPA_LIMIT,
 * file offsets tiling [0, file size) in some order, at most
 * RH_LAYOUT_MAX_MEM in all), answers lookups at every region's edges
 * consistently, and parses to the same regions again when written back as
 * a minimal state.json listing the ranges in file order.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-common.h"
#include "rehome/layout.h"

static void check_lookups(const struct rh_layout *l)
{
        size_t n = rh_layout_n_regions(l);
        uint64_t off, gpa;

        for (size_t i = 0; i < n; i++) {
                const struct rh_region *rg = rh_layout_region(l, i);
                uint64_t last = rg->gpa + rg->size - 1;

                fuzz_check(rh_layout_gpa_to_offset(l, rg->gpa, rg->size, &off, NULL) == 0 && off == rg->offset,
                           "region %zu not found whole", i);
                fuzz_check(rh_layout_gpa_to_offset(l, last, 1, &off, NULL) == 0 &&
                                   off == rg->offset + rg->size - 1,
                           "last byte of region %zu", i);
                fuzz_check(rh_layout_offset_to_gpa(l, off, &gpa, NULL) == 0 && gpa == last,
                           "offset of region %zu's last byte maps back to 0x%" PRIx64, i, gpa);
                /* One byte past a region: a hole, the next region, or past the end. */
                if (i + 1 < n && last + 1 == rh_layout_region(l, i + 1)->gpa)
                        continue;
                struct rh_error err = {};
                fuzz_check(rh_layout_gpa_to_offset(l, last + 1, 1, &off, &err) == -EFAULT && err.msg[0],
                           "gpa past region %zu accepted", i);
                fuzz_check(rh_layout_gpa_to_offset(l, last, 2, &off, NULL) == -EFAULT,
                           "range crossing the end of region %zu accepted", i);
        }
        fuzz_check(rh_layout_offset_to_gpa(l, rh_layout_file_size(l), &gpa, NULL) == -EFAULT,
                   "offset past the file accepted");
        fuzz_check(rh_layout_region(l, n) == NULL, "region past the end");
}

/* Regions by file offset (the order Cloud Hypervisor listed them in). */
static size_t file_order(const struct rh_layout *l, const struct rh_region **out)
{
        size_t n = rh_layout_n_regions(l);

        for (size_t i = 0; i < n; i++)
                out[i] = rh_layout_region(l, i);
        for (size_t i = 1; i < n; i++)
                for (size_t j = i; j > 0 && out[j - 1]->offset > out[j]->offset; j--) {
                        const struct rh_region *t = out[j];
                        out[j] = out[j - 1];
                        out[j - 1] = t;
                }
        return n;
}

static void check_layout(const struct rh_layout *l)
{
        const struct rh_region *by_offset[RH_LAYOUT_MAX_REGIONS];
        size_t n = rh_layout_n_regions(l);
        uint64_t total = 0;

        fuzz_check(strcmp(rh_layout_kind(l), "cloud-hypervisor") == 0, "kind %s", rh_layout_kind(l));
        fuzz_check(n >= 1 && n <= RH_LAYOUT_MAX_REGIONS, "%zu regions", n);
        for (size_t i = 0; i < n; i++) {
                const struct rh_region *rg = rh_layout_region(l, i);

                fuzz_check(rg && rg->size > 0, "region %zu empty", i);
                fuzz_check(rg->gpa < RH_LAYOUT_GPA_LIMIT && rg->size <= RH_LAYOUT_GPA_LIMIT - rg->gpa,
                           "region %zu 0x%" PRIx64 "+0x%" PRIx64 " past the gpa limit", i, rg->gpa, rg->size);
                if (i > 0) {
                        const struct rh_region *prev = rh_layout_region(l, i - 1);
                        fuzz_check(rg->gpa >= prev->gpa + prev->size, "region %zu overlaps its predecessor", i);
                }
                total += rg->size;
                fuzz_check(total <= RH_LAYOUT_MAX_MEM, "more than RH_LAYOUT_MAX_MEM in %zu regions", i + 1);
        }
        total = 0;
        file_order(l, by_offset);
        for (size_t i = 0; i < n; i++) {
                fuzz_check(by_offset[i]->offset == total, "file offset 0x%" PRIx64 ", expected 0x%" PRIx64,
                           by_offset[i]->offset, total);
                total += by_offset[i]->size;
        }
        fuzz_check(total == rh_layout_file_size(l), "file size 0x%" PRIx64 " != 0x%" PRIx64,
                   rh_layout_file_size(l), total);
        check_lookups(l);
}

/* The regions of @l as the smallest state.json Cloud Hypervisor could write. */
static char *write_back(const struct rh_layout *l)
{
        const struct rh_region *by_offset[RH_LAYOUT_MAX_REGIONS];
        json_t *list = json_array(), *state, *root;
        char *inner, *text;
        size_t n = file_order(l, by_offset);

        fuzz_check(list, "out of memory");
        for (size_t i = 0; i < n; i++) {
                const struct rh_region *rg = by_offset[i];
                json_array_append_new(list, json_pack("{s:I,s:I}", "gpa", (json_int_t)rg->gpa, "length",
                                                      (json_int_t)rg->size));
        }
        state = json_pack("{s:{s:o}}", "memory_ranges", "data", list);
        inner = json_dumps(state, JSON_COMPACT);
        json_decref(state);
        root = json_pack("{s:{s:{s:{s:s}}}}", "snapshots", "memory-manager", "snapshot_data", "state", inner);
        text = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        free(inner);
        fuzz_check(text, "out of memory");
        return text;
}

/* Odd control byte: wrap the rest as the inner state string. */
static char *wrap_inner(const uint8_t *data, size_t size, size_t *ret_len)
{
        json_t *root = json_pack("{s:{s:{s:{s:s%}}}}", "snapshots", "memory-manager", "snapshot_data", "state",
                                 (const char *)data, size);
        char *text;

        /* json_pack refuses invalid UTF-8 (and so would Cloud Hypervisor's writer). */
        if (!root)
                return NULL;
        text = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        fuzz_check(text, "out of memory");
        *ret_len = strlen(text);
        return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct rh_layout *l = NULL, *again = NULL;
        struct rh_error err = {};
        char *wrapped = NULL, *text;
        const char *in;
        size_t len;
        int r;

        if (size == 0)
                return 0;
        if (data[0] & 1) {
                wrapped = wrap_inner(data + 1, size - 1, &len);
                if (!wrapped)
                        return 0;
                in = wrapped;
        } else {
                in = (const char *)data + 1;
                len = size - 1;
        }

        r = rh_layout_new_cloud_hypervisor(in, len, &l, &err);
        free(wrapped);
        if (r < 0) {
                fuzz_check(r == -EINVAL || r == -E2BIG || r == -EFBIG || r == -ENOMEM, "unexpected errno %d", r);
                fuzz_check(err.code == -r && err.msg[0], "error not recorded: %d \"%s\"", err.code, err.msg);
                fuzz_check(strncmp(err.msg, "state.json", 10) == 0, "message does not name state.json: %s",
                           err.msg);
                fuzz_check(l == NULL, "layout returned on failure");
                return 0;
        }
        fuzz_check(l != NULL, "success without a layout");
        check_layout(l);

        text = write_back(l);
        r = rh_layout_new_cloud_hypervisor(text, strlen(text), &again, &err);
        fuzz_check(r == 0, "written-back state.json rejected: %s\n%s", err.msg, text);
        free(text);
        fuzz_check(rh_layout_n_regions(again) == rh_layout_n_regions(l), "region count changed");
        for (size_t i = 0; i < rh_layout_n_regions(l); i++) {
                const struct rh_region *a = rh_layout_region(l, i), *b = rh_layout_region(again, i);
                fuzz_check(a->gpa == b->gpa && a->size == b->size && a->offset == b->offset,
                           "region %zu changed on the round trip", i);
        }
        rh_layout_free(again);
        rh_layout_free(l);
        return 0;
}
