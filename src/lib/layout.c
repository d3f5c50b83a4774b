/* SPDX-License-Identifier: MIT */
/*
 * Memory layouts: where each guest-physical address lives in a VMM's memory
 * file. Every constructor produces the same thing, an ordered list of
 * non-overlapping regions whose file offsets run back to back, so lookups
 * and the patch code never care which VMM wrote the file.
 *
 * The figures (gap starts, split points) are in docs/LAYOUTS.md together
 * with how each was verified. All sizes and addresses are capped and every
 * addition is overflow-checked: a spec string or a state.json is input
 * from outside.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "cleanup.h"
#include "handle-cleanup.h"
#include "io.h"
#include "rehome/layout.h"

#define GiB (1ull << 30)

struct rh_layout {
        const char *kind;
        bool flat;
        size_t n;
        size_t n_hotplug; /* 1 when the last region is Firecracker's virtio-mem region */
        struct rh_region regions[RH_LAYOUT_MAX_REGIONS];
};

/* Firecracker, PCIe-era address map (src/vmm/src/arch/{x86_64,aarch64}/layout.rs). */
#define FC_X86_MMIO32_START       0xc0000000ull /* 4 GiB - 1 GiB */
#define FC_X86_LEGACY_MMIO_START  0xd0000000ull /* 4 GiB - 768 MiB, older releases */
#define FC_FIRST_ADDR_PAST_32BITS (4 * GiB)
#define FC_MMIO64_START           (256 * GiB)
#define FC_MMIO64_END             (512 * GiB)
#define FC_ARM_DRAM_START         (2 * GiB)
#define FC_ARM_DRAM_MAX           (1022 * GiB)
/* v1.14.0+: virtio-mem region, allocated past the 64-bit MMIO gap, slot-aligned. */
#define FC_VIRTIO_MEM_START       FC_MMIO64_END
#define FC_VIRTIO_MEM_ALIGN       (128ull << 20)

/* QEMU 7.2 hw/i386/pc_q35.c and pc_piix.c, default max-ram-below-4g. */
#define QEMU_Q35_LOWMEM_SMALL 0xb0000000ull
#define QEMU_Q35_LOWMEM_LARGE 0x80000000ull
#define QEMU_PC_LOWMEM_SMALL  0xe0000000ull
#define QEMU_PC_LOWMEM_LARGE  0xc0000000ull /* gigabyte_align */

static int layout_alloc(const char *kind, struct rh_layout **ret, struct rh_error *err)
{
        struct rh_layout *l = calloc(1, sizeof(*l));

        if (!l)
                return rh_error_set(err, ENOMEM, "layout: out of memory");
        l->kind = kind;
        *ret = l;
        return 0;
}

/* Append a region at the next file offset. Caller guarantees order and caps. */
static int layout_push(struct rh_layout *l, uint64_t gpa, uint64_t size, struct rh_error *err)
{
        uint64_t offset = 0;

        if (l->n >= RH_LAYOUT_MAX_REGIONS)
                return rh_error_set(err, E2BIG, "more than %d memory regions", RH_LAYOUT_MAX_REGIONS);
        if (l->n > 0) {
                const struct rh_region *prev = &l->regions[l->n - 1];
                offset = prev->offset + prev->size; /* bounded by RH_LAYOUT_MAX_MEM */
        }
        l->regions[l->n++] = (struct rh_region){.gpa = gpa, .size = size, .offset = offset};
        return 0;
}

static int check_mem_size(const char *what, uint64_t mem_size, uint64_t max, struct rh_error *err)
{
        if (mem_size == 0)
                return rh_error_set(err, EINVAL, "%s: memory size 0", what);
        if (mem_size > max)
                return rh_error_set(err, EINVAL, "%s: memory size 0x%" PRIx64 " exceeds 0x%" PRIx64, what,
                                    mem_size, max);
        return 0;
}

/*
 * Lay @size bytes of RAM out from @start, skipping each gap [gap_start[i],
 * gap_end[i]) in turn (Firecracker's arch_memory_regions_with_gap, applied
 * once per gap).
 */
static int push_with_gaps(struct rh_layout *l, uint64_t start, uint64_t size, const uint64_t *gap_start,
                          const uint64_t *gap_end, size_t n_gaps, struct rh_error *err)
{
        int r;

        for (size_t i = 0; i < n_gaps && size > 0; i++) {
                if (start >= gap_start[i]) {
                        if (start < gap_end[i])
                                start = gap_end[i];
                        continue;
                }
                uint64_t room = gap_start[i] - start;
                if (size <= room)
                        break;
                r = layout_push(l, start, room, err);
                if (r < 0)
                        return r;
                size -= room;
                start = gap_end[i];
        }
        if (size > 0)
                return layout_push(l, start, size, err);
        return 0;
}

/*
 * Firecracker truncates aarch64 DRAM to DRAM_MEM_MAX_SIZE (with a warning)
 * instead of refusing it, so the memory file holds min(size, 1022 GiB).
 */
static uint64_t fc_arm_dram_size(uint64_t mem_size)
{
        return mem_size < FC_ARM_DRAM_MAX ? mem_size : FC_ARM_DRAM_MAX;
}

int rh_layout_new_firecracker(uint64_t mem_size, bool aarch64, struct rh_layout **ret_layout,
                              struct rh_error *err)
{
        static const uint64_t x86_gap_start[] = {FC_X86_MMIO32_START, FC_MMIO64_START};
        static const uint64_t x86_gap_end[] = {FC_FIRST_ADDR_PAST_32BITS, FC_MMIO64_END};
        static const uint64_t arm_gap_start[] = {FC_MMIO64_START};
        static const uint64_t arm_gap_end[] = {FC_MMIO64_END};
        const char *kind = aarch64 ? "firecracker-aarch64" : "firecracker-x86_64";
        _cleanup_(rh_layout_freep) struct rh_layout *l = NULL;
        int r;

        r = check_mem_size(kind, mem_size, RH_LAYOUT_MAX_MEM, err);
        if (r < 0)
                return r;
        r = layout_alloc(kind, &l, err);
        if (r < 0)
                return r;
        if (aarch64)
                r = push_with_gaps(l, FC_ARM_DRAM_START, fc_arm_dram_size(mem_size), arm_gap_start,
                                   arm_gap_end, 1, err);
        else
                r = push_with_gaps(l, 0, mem_size, x86_gap_start, x86_gap_end, 2, err);
        if (r < 0)
                return r;
        *ret_layout = TAKE_PTR(l);
        return 0;
}

int rh_layout_new_firecracker_legacy(uint64_t mem_size, bool aarch64, struct rh_layout **ret_layout,
                                     struct rh_error *err)
{
        static const uint64_t gap_start[] = {FC_X86_LEGACY_MMIO_START};
        static const uint64_t gap_end[] = {FC_FIRST_ADDR_PAST_32BITS};
        const char *kind = aarch64 ? "firecracker-aarch64-legacy" : "firecracker-x86_64-legacy";
        _cleanup_(rh_layout_freep) struct rh_layout *l = NULL;
        int r;

        r = check_mem_size(kind, mem_size, RH_LAYOUT_MAX_MEM, err);
        if (r < 0)
                return r;
        r = layout_alloc(kind, &l, err);
        if (r < 0)
                return r;
        /* Up to v1.12.1, aarch64 DRAM is one region from 2 GiB: no 64-bit MMIO gap. */
        if (aarch64)
                r = layout_push(l, FC_ARM_DRAM_START, fc_arm_dram_size(mem_size), err);
        else
                r = push_with_gaps(l, 0, mem_size, gap_start, gap_end, 1, err);
        if (r < 0)
                return r;
        *ret_layout = TAKE_PTR(l);
        return 0;
}

/* Layout kinds of the Firecracker releases that can have a virtio-mem region. */
static bool fc_has_hotplug(const struct rh_layout *l)
{
        return !l->flat && (strcmp(l->kind, "firecracker-x86_64") == 0 || strcmp(l->kind, "firecracker-aarch64") == 0);
}

int rh_layout_add_firecracker_hotplug(struct rh_layout *layout, uint64_t gpa, uint64_t size,
                                      struct rh_error *err)
{
        const struct rh_region *last;
        uint64_t total = 0;

        if (!fc_has_hotplug(layout))
                return rh_error_set(err, EINVAL,
                                    "hotplug: only Firecracker v1.14.0+ layouts (firecracker-x86_64, "
                                    "firecracker-aarch64) have a virtio-mem region, not %s",
                                    layout->kind);
        if (layout->n_hotplug > 0)
                return rh_error_set(err, EINVAL, "hotplug: the layout has a virtio-mem region already");
        if (size == 0)
                return rh_error_set(err, EINVAL, "hotplug: size 0");
        if (gpa % FC_VIRTIO_MEM_ALIGN != 0)
                return rh_error_set(err, EINVAL,
                                    "hotplug: gpa 0x%" PRIx64 " is not a multiple of 128 MiB (Firecracker "
                                    "aligns the virtio-mem region to its slot size)",
                                    gpa);
        if (gpa >= RH_LAYOUT_GPA_LIMIT || size > RH_LAYOUT_GPA_LIMIT - gpa)
                return rh_error_set(err, EINVAL, "hotplug: 0x%" PRIx64 "+0x%" PRIx64 " ends past gpa 0x%llx",
                                    gpa, size, RH_LAYOUT_GPA_LIMIT);
        last = &layout->regions[layout->n - 1];
        if (gpa < last->gpa + last->size)
                return rh_error_set(err, EINVAL,
                                    "hotplug: region 0x%" PRIx64 "-0x%" PRIx64 " overlaps or precedes DRAM "
                                    "(ends at 0x%" PRIx64 "); give its base from the snapshot: hotplug=SIZE@GPA",
                                    gpa, gpa + size, last->gpa + last->size);
        for (size_t i = 0; i < layout->n; i++)
                total += layout->regions[i].size;
        if (size > RH_LAYOUT_MAX_MEM - total)
                return rh_error_set(err, EINVAL, "hotplug: DRAM and virtio-mem add up to more than 0x%llx bytes",
                                    RH_LAYOUT_MAX_MEM);
        /* Firecracker dumps the whole region after DRAM (unplugged slots are holes of the file). */
        layout->n_hotplug = 1;
        return layout_push(layout, gpa, size, err);
}

int rh_layout_new_qemu(bool q35, uint64_t mem_size, struct rh_layout **ret_layout, struct rh_error *err)
{
        const char *kind = q35 ? "qemu-q35" : "qemu-pc";
        _cleanup_(rh_layout_freep) struct rh_layout *l = NULL;
        uint64_t lowmem, below;
        int r;

        r = check_mem_size(kind, mem_size, RH_LAYOUT_MAX_MEM, err);
        if (r < 0)
                return r;
        /*
         * QEMU picks the split from the RAM size: q35 keeps 0x80000000 below
         * 4 GiB once RAM reaches 0xb0000000 (else up to 0xb0000000); i440fx
         * keeps up to 0xe0000000, and once RAM reaches that, splits at
         * 0xc0000000 (gigabyte alignment, every machine type since 1.7).
         */
        if (q35)
                lowmem = mem_size >= QEMU_Q35_LOWMEM_SMALL ? QEMU_Q35_LOWMEM_LARGE : QEMU_Q35_LOWMEM_SMALL;
        else
                lowmem = mem_size >= QEMU_PC_LOWMEM_SMALL ? QEMU_PC_LOWMEM_LARGE : QEMU_PC_LOWMEM_SMALL;
        below = mem_size < lowmem ? mem_size : lowmem;

        r = layout_alloc(kind, &l, err);
        if (r < 0)
                return r;
        r = layout_push(l, 0, below, err);
        if (r >= 0 && mem_size > below)
                r = layout_push(l, FC_FIRST_ADDR_PAST_32BITS, mem_size - below, err);
        if (r < 0)
                return r;
        *ret_layout = TAKE_PTR(l);
        return 0;
}

static int regions_into(struct rh_layout *l, const struct rh_region *regions, size_t n, struct rh_error *err)
{
        uint64_t total = 0;
        int r;

        if (n == 0)
                return rh_error_set(err, EINVAL, "no memory regions");
        if (n > RH_LAYOUT_MAX_REGIONS)
                return rh_error_set(err, E2BIG, "%zu memory regions, at most %d", n, RH_LAYOUT_MAX_REGIONS);
        for (size_t i = 0; i < n; i++) {
                const struct rh_region *rg = &regions[i];

                if (rg->size == 0)
                        return rh_error_set(err, EINVAL, "region %zu at gpa 0x%" PRIx64 ": size 0", i,
                                            rg->gpa);
                if (rg->gpa >= RH_LAYOUT_GPA_LIMIT || rg->size > RH_LAYOUT_GPA_LIMIT - rg->gpa)
                        return rh_error_set(err, EINVAL,
                                            "region %zu 0x%" PRIx64 "+0x%" PRIx64 " ends past gpa 0x%llx", i,
                                            rg->gpa, rg->size, RH_LAYOUT_GPA_LIMIT);
                if (i > 0) {
                        const struct rh_region *prev = &regions[i - 1];
                        if (rg->gpa < prev->gpa + prev->size)
                                return rh_error_set(err, EINVAL,
                                                    "region %zu at gpa 0x%" PRIx64
                                                    " overlaps or precedes region %zu (0x%" PRIx64
                                                    "-0x%" PRIx64 ")",
                                                    i, rg->gpa, i - 1, prev->gpa, prev->gpa + prev->size);
                }
                if (rg->size > RH_LAYOUT_MAX_MEM - total)
                        return rh_error_set(err, EINVAL, "regions add up to more than 0x%llx bytes",
                                            RH_LAYOUT_MAX_MEM);
                total += rg->size;
                r = layout_push(l, rg->gpa, rg->size, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

int rh_layout_new_regions(const struct rh_region *regions, size_t n, struct rh_layout **ret_layout,
                          struct rh_error *err)
{
        _cleanup_(rh_layout_freep) struct rh_layout *l = NULL;
        int r;

        r = layout_alloc("regions", &l, err);
        if (r < 0)
                return r;
        r = regions_into(l, regions, n, err);
        if (r < 0)
                return r;
        *ret_layout = TAKE_PTR(l);
        return 0;
}

int rh_layout_new_flat(struct rh_layout **ret_layout, struct rh_error *err)
{
        _cleanup_(rh_layout_freep) struct rh_layout *l = NULL;
        int r;

        r = layout_alloc("flat", &l, err);
        if (r < 0)
                return r;
        l->flat = true;
        l->n = 1;
        l->regions[0] = (struct rh_region){.gpa = 0, .size = UINT64_MAX, .offset = 0};
        *ret_layout = TAKE_PTR(l);
        return 0;
}

/* ---- Cloud Hypervisor state.json ---- */

static int json_u64(json_t *obj, const char *key, unsigned idx, uint64_t *ret, struct rh_error *err)
{
        json_t *v = json_object_get(obj, key);

        if (!v || !json_is_integer(v))
                return rh_error_set(err, EINVAL,
                                    "state.json: memory range %u: \"%s\" missing or not an integer", idx,
                                    key);
        if (json_integer_value(v) < 0)
                return rh_error_set(err, EINVAL, "state.json: memory range %u: \"%s\" is negative", idx, key);
        *ret = (uint64_t)json_integer_value(v);
        return 0;
}

int rh_layout_new_cloud_hypervisor(const char *state_json, size_t len, struct rh_layout **ret_layout,
                                   struct rh_error *err)
{
        _cleanup_(json_decrefp) json_t *root = NULL, *state = NULL;
        struct rh_region regions[RH_LAYOUT_MAX_REGIONS];
        json_t *mm, *data, *str, *ranges, *list;
        _cleanup_(rh_layout_freep) struct rh_layout *l = NULL;
        json_error_t jerr;
        size_t n;
        int r;

        if (len > RH_LAYOUT_STATE_JSON_MAX)
                return rh_error_set(err, EFBIG, "state.json: %zu bytes, more than %u", len,
                                    RH_LAYOUT_STATE_JSON_MAX);
        root = json_loadb(state_json, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return rh_error_set(err, EINVAL, "state.json: line %d: %s", jerr.line, jerr.text);
        mm = json_object_get(json_object_get(root, "snapshots"), "memory-manager");
        if (!json_is_object(mm))
                return rh_error_set(err, EINVAL, "state.json: no snapshots.\"memory-manager\" object");
        data = json_object_get(mm, "snapshot_data");
        if (!json_is_object(data))
                return rh_error_set(err, EINVAL, "state.json: memory-manager has no snapshot_data object");
        /* Cloud Hypervisor stores each component's state as a JSON string. */
        str = json_object_get(data, "state");
        if (!json_is_string(str))
                return rh_error_set(err, EINVAL,
                                    "state.json: memory-manager snapshot_data.state is not a string");
        state = json_loadb(json_string_value(str), json_string_length(str), JSON_REJECT_DUPLICATES, &jerr);
        if (!state)
                return rh_error_set(err, EINVAL, "state.json: memory-manager state: %s", jerr.text);
        ranges = json_object_get(state, "memory_ranges");
        list = json_object_get(ranges, "data");
        if (!json_is_array(list))
                return rh_error_set(err, EINVAL,
                                    "state.json: memory-manager state has no memory_ranges.data array");
        n = json_array_size(list);
        if (n == 0)
                return rh_error_set(err, EINVAL, "state.json: memory_ranges.data is empty");
        if (n > RH_LAYOUT_MAX_REGIONS)
                return rh_error_set(err, E2BIG, "state.json: %zu memory ranges, at most %d", n,
                                    RH_LAYOUT_MAX_REGIONS);
        for (size_t i = 0; i < n; i++) {
                json_t *e = json_array_get(list, i);

                if (!json_is_object(e))
                        return rh_error_set(err, EINVAL, "state.json: memory range %zu is not an object", i);
                r = json_u64(e, "gpa", (unsigned)i, &regions[i].gpa, err);
                if (r < 0)
                        return r;
                r = json_u64(e, "length", (unsigned)i, &regions[i].size, err);
                if (r < 0)
                        return r;
                regions[i].offset = 0;
        }
        r = layout_alloc("cloud-hypervisor", &l, err);
        if (r < 0)
                return r;
        r = regions_into(l, regions, n, err);
        if (r < 0)
                return rh_error_prefix(err, r, "state.json");
        *ret_layout = TAKE_PTR(l);
        return 0;
}

/* ---- spec strings ---- */

/*
 * Parse one number ("4096", "0x1000", "512M", "0x10G") from *p, advancing it.
 * Stops at ',' ':' or the end.
 */
static int parse_number(const char **p, const char *what, uint64_t *ret, struct rh_error *err)
{
        const char *s = *p;
        uint64_t v = 0, base = 10, shift = 0;
        size_t digits = 0;

        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
                base = 16;
                s += 2;
        }
        for (;; s++) {
                unsigned d;

                if (*s >= '0' && *s <= '9')
                        d = (unsigned)(*s - '0');
                else if (base == 16 && *s >= 'a' && *s <= 'f')
                        d = (unsigned)(*s - 'a' + 10);
                else if (base == 16 && *s >= 'A' && *s <= 'F')
                        d = (unsigned)(*s - 'A' + 10);
                else
                        break;
                if (v > (UINT64_MAX - d) / base)
                        return rh_error_set(err, ERANGE, "%s \"%s\": number too large", what, *p);
                v = v * base + d;
                digits++;
        }
        if (digits == 0)
                return rh_error_set(err, EINVAL, "%s \"%s\": expected a number", what, *p);
        switch (*s) {
        case 'k':
        case 'K':
                shift = 10;
                s++;
                break;
        case 'm':
        case 'M':
                shift = 20;
                s++;
                break;
        case 'g':
        case 'G':
                shift = 30;
                s++;
                break;
        case 't':
        case 'T':
                shift = 40;
                s++;
                break;
        default:
                break;
        }
        if (*s != '\0' && *s != ',' && *s != ':' && *s != '@')
                return rh_error_set(err, EINVAL, "%s \"%s\": unexpected '%c'", what, *p, *s);
        if (shift && v > (UINT64_MAX >> shift))
                return rh_error_set(err, ERANGE, "%s \"%s\": number too large", what, *p);
        *ret = v << shift;
        *p = s;
        return 0;
}

static int parse_size(const char *s, const char *kind, uint64_t *ret, struct rh_error *err)
{
        const char *p = s;
        int r;

        r = parse_number(&p, kind, ret, err);
        if (r < 0)
                return r;
        if (*p != '\0')
                return rh_error_set(err, EINVAL, "%s: trailing \"%s\" after the memory size", kind, p);
        return 0;
}

static int parse_regions(const char *s, struct rh_layout **ret_layout, struct rh_error *err)
{
        struct rh_region regions[RH_LAYOUT_MAX_REGIONS];
        const char *p = s;
        size_t n = 0;
        int r;

        for (;;) {
                char what[32];

                if (n >= RH_LAYOUT_MAX_REGIONS)
                        return rh_error_set(err, E2BIG, "regions: more than %d regions",
                                            RH_LAYOUT_MAX_REGIONS);
                snprintf(what, sizeof(what), "regions: region %zu", n);
                r = parse_number(&p, what, &regions[n].gpa, err);
                if (r < 0)
                        return r;
                if (*p != ':')
                        return rh_error_set(err, EINVAL, "%s: expected GPA:SIZE", what);
                p++;
                r = parse_number(&p, what, &regions[n].size, err);
                if (r < 0)
                        return r;
                if (*p != '\0' && *p != ',')
                        return rh_error_set(err, EINVAL, "%s: expected GPA:SIZE", what);
                regions[n].offset = 0;
                n++;
                if (*p == '\0')
                        break;
                p++; /* ',' */
        }
        r = rh_layout_new_regions(regions, n, ret_layout, err);
        if (r < 0)
                return rh_error_prefix(err, r, "regions");
        return 0;
}

/*
 * "SIZE" or "SIZE,hotplug=TOTAL[@GPA]" after a Firecracker kind: DRAM, then
 * (v1.14.0+) the virtio-mem region Firecracker dumps after it.
 */
static int parse_firecracker(const char *arg, const char *kind, int which, struct rh_layout **ret_layout,
                             struct rh_error *err)
{
        _cleanup_(rh_layout_freep) struct rh_layout *l = NULL;
        uint64_t size, hp_size, hp_gpa = FC_VIRTIO_MEM_START;
        const char *p = arg;
        int r;

        r = parse_number(&p, kind, &size, err);
        if (r < 0)
                return r;
        if (*p != '\0' && strncmp(p, ",hotplug=", 9) != 0)
                return rh_error_set(err, EINVAL, "%s: trailing \"%s\" after the memory size", kind, p);
        if (which == 2 || which == 3) /* legacy */
                r = rh_layout_new_firecracker_legacy(size, which == 3, &l, err);
        else
                r = rh_layout_new_firecracker(size, which == 1, &l, err);
        if (r < 0)
                return r;
        if (*p != '\0') {
                p += 9;
                r = parse_number(&p, "hotplug", &hp_size, err);
                if (r < 0)
                        return r;
                if (*p == '@') {
                        p++;
                        r = parse_number(&p, "hotplug", &hp_gpa, err);
                        if (r < 0)
                                return r;
                }
                if (*p != '\0')
                        return rh_error_set(err, EINVAL, "%s: trailing \"%s\" after hotplug=SIZE[@GPA]", kind,
                                            p);
                r = rh_layout_add_firecracker_hotplug(l, hp_gpa, hp_size, err);
                if (r < 0)
                        return rh_error_prefix(err, r, "%s", kind);
        }
        *ret_layout = TAKE_PTR(l);
        return 0;
}

static int parse_cloud_hypervisor(const char *path, struct rh_layout **ret_layout, struct rh_error *err)
{
        _cleanup_free_ char *json = NULL, *joined = NULL;
        struct stat st;
        size_t len = 0;
        int r;

        if (path[0] == '\0')
                return rh_error_set(err, EINVAL, "cloud-hypervisor: missing path to state.json");
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
                if (asprintf(&joined, "%s/state.json", path) < 0) {
                        joined = NULL;
                        return rh_error_set(err, ENOMEM, "cloud-hypervisor: out of memory");
                }
                path = joined;
        }
        r = read_file_alloc(path, RH_LAYOUT_STATE_JSON_MAX, &json, &len);
        if (r == -EFBIG)
                return rh_error_set(err, r, "%s: larger than %u bytes", path, RH_LAYOUT_STATE_JSON_MAX);
        if (r < 0)
                return rh_error_set(err, r, "%s: %s", path, strerror(-r));
        r = rh_layout_new_cloud_hypervisor(json, len, ret_layout, err);
        if (r < 0)
                return rh_error_prefix(err, r, "%s", path);
        return 0;
}

int rh_layout_parse(const char *spec, struct rh_layout **ret_layout, struct rh_error *err)
{
        static const struct {
                const char *prefix;
                int kind;
        } kinds[] = {
                {"firecracker:", 0},
                {"firecracker-x86_64:", 0},
                {"firecracker-aarch64:", 1},
                {"firecracker-x86_64-legacy:", 2},
                {"firecracker-aarch64-legacy:", 3},
                {"qemu-q35:", 4},
                {"qemu-pc:", 5},
                {"cloud-hypervisor:", 6},
                {"regions:", 7},
        };
        uint64_t size;
        int r;

        if (!spec || spec[0] == '\0')
                return rh_error_set(err, EINVAL, "empty layout spec");
        if (strcmp(spec, "flat") == 0)
                return rh_layout_new_flat(ret_layout, err);
        for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
                size_t plen = strlen(kinds[i].prefix);
                const char *arg = spec + plen;
                char kind[32];

                if (strncmp(spec, kinds[i].prefix, plen) != 0)
                        continue;
                snprintf(kind, sizeof(kind), "%.*s", (int)plen - 1, kinds[i].prefix);
                switch (kinds[i].kind) {
                case 6:
                        return parse_cloud_hypervisor(arg, ret_layout, err);
                case 7:
                        return parse_regions(arg, ret_layout, err);
                case 4:
                case 5:
                        r = parse_size(arg, kind, &size, err);
                        if (r < 0)
                                return r;
                        return rh_layout_new_qemu(kinds[i].kind == 4, size, ret_layout, err);
                default:
                        return parse_firecracker(arg, kind, kinds[i].kind, ret_layout, err);
                }
        }
        /* A bare region list: "GPA:SIZE[,GPA:SIZE...]". */
        if (spec[0] >= '0' && spec[0] <= '9')
                return parse_regions(spec, ret_layout, err);
        return rh_error_set(err, EINVAL,
                            "unknown layout \"%s\" (firecracker[-x86_64|-aarch64]:SIZE[,hotplug=SIZE], "
                            "firecracker-{x86_64,aarch64}-legacy:SIZE, qemu-q35:SIZE, qemu-pc:SIZE, "
                            "cloud-hypervisor:PATH, regions:GPA:SIZE,..., flat)",
                            spec);
}

struct rh_layout *rh_layout_free(struct rh_layout *layout)
{
        free(layout);
        return NULL;
}

/* ---- lookups ---- */

int rh_layout_gpa_to_offset(const struct rh_layout *layout, uint64_t gpa, uint64_t len, uint64_t *ret_offset,
                            struct rh_error *err)
{
        const struct rh_region *last;

        if (len == 0)
                len = 1;
        if (layout->flat) {
                if (len - 1 > UINT64_MAX - gpa)
                        return rh_error_set(err, EFAULT, "gpa range 0x%" PRIx64 "+0x%" PRIx64 " wraps around",
                                            gpa, len);
                *ret_offset = gpa;
                return 0;
        }
        for (size_t i = 0; i < layout->n; i++) {
                const struct rh_region *rg = &layout->regions[i];

                if (gpa < rg->gpa)
                        return rh_error_set(
                                err, EFAULT,
                                "gpa 0x%" PRIx64 " is in a hole (no RAM between 0x%" PRIx64 " and 0x%" PRIx64
                                ")",
                                gpa, i == 0 ? 0 : layout->regions[i - 1].gpa + layout->regions[i - 1].size,
                                rg->gpa);
                if (gpa - rg->gpa >= rg->size)
                        continue;
                if (len > rg->size - (gpa - rg->gpa))
                        return rh_error_set(err, EFAULT,
                                            "gpa range 0x%" PRIx64 "+0x%" PRIx64
                                            " crosses the end of RAM region 0x%" PRIx64 "-0x%" PRIx64,
                                            gpa, len, rg->gpa, rg->gpa + rg->size);
                *ret_offset = rg->offset + (gpa - rg->gpa);
                return 0;
        }
        last = &layout->regions[layout->n - 1];
        if (gpa >= FC_VIRTIO_MEM_START && gpa < RH_LAYOUT_GPA_LIMIT && layout->n_hotplug == 0 &&
            fc_has_hotplug(layout))
                return rh_error_set(err, EFAULT,
                                    "gpa 0x%" PRIx64 " is past the end of guest RAM (0x%" PRIx64
                                    "); Firecracker v1.14.0+ puts virtio-mem memory there, after DRAM "
                                    "in the memory file: add ,hotplug=SIZE[@GPA] to the layout",
                                    gpa, last->gpa + last->size);
        return rh_error_set(err, EFAULT, "gpa 0x%" PRIx64 " is past the end of guest RAM (0x%" PRIx64 ")",
                            gpa, last->gpa + last->size);
}

int rh_layout_offset_to_gpa(const struct rh_layout *layout, uint64_t offset, uint64_t *ret_gpa,
                            struct rh_error *err)
{
        for (size_t i = 0; i < layout->n; i++) {
                const struct rh_region *rg = &layout->regions[i];

                if (offset >= rg->offset && offset - rg->offset < rg->size) {
                        *ret_gpa = rg->gpa + (offset - rg->offset);
                        return 0;
                }
        }
        return rh_error_set(err, EFAULT,
                            "file offset 0x%" PRIx64 " is past the end of guest RAM (0x%" PRIx64 " bytes)",
                            offset, rh_layout_file_size(layout));
}

size_t rh_layout_n_regions(const struct rh_layout *layout)
{
        return layout->n;
}

const struct rh_region *rh_layout_region(const struct rh_layout *layout, size_t i)
{
        return i < layout->n ? &layout->regions[i] : NULL;
}

uint64_t rh_layout_file_size(const struct rh_layout *layout)
{
        const struct rh_region *last = &layout->regions[layout->n - 1];

        if (layout->flat)
                return UINT64_MAX;
        return last->offset + last->size;
}

const char *rh_layout_kind(const struct rh_layout *layout)
{
        return layout->kind;
}
