/* SPDX-License-Identifier: MIT */
/*
 * Memory layouts: where each guest-physical address lives in a VMM's memory
 * file. Every constructor produces the same thing, a gpa-ordered list of
 * non-overlapping regions whose file offsets tile the file (in gpa order,
 * except for Cloud Hypervisor, whose memory-ranges follow its own list), so
 * lookups and the patch code never care which VMM wrote the file.
 *
 * Cloud Hypervisor's state.json is read with a small strict JSON reader of
 * its own rather than jansson, which refuses the 2^64 - 1 every real memory
 * manager state holds.
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

#include "cleanup.h"
#include "handle-cleanup.h"
#include "io.h"
#include "rehome/layout.h"

#define GiB (1ull << 30)

struct ch_ram;

struct rh_layout {
        const char *kind;
        bool flat;
        size_t n;
        size_t n_hotplug; /* 1 when the last region is Firecracker's virtio-mem region */
        struct ch_ram *ram; /* Cloud Hypervisor: every RAM mapping, to explain a miss */
        size_t n_ram;
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

/*
 * A strict, minimal JSON reader for the few members rehome needs. jansson
 * cannot be used here: every real memory-manager state holds
 * arch_mem_regions[].size = usize::MAX (2^64 - 1), which jansson rejects
 * as an integer overflow. This reader validates the whole document (RFC
 * 8259 grammar, escapes, surrogate pairs, nesting capped at JS_MAX_DEPTH)
 * and reads any non-negative integer up to 2^64 - 1 exactly; bytes >= 0x80
 * inside strings are passed through unchecked.
 */
#define JS_MAX_DEPTH 64

struct jscan {
        const char *start, *p, *end;
        const char *what; /* "state.json", "state.json: memory-manager state" */
};

enum js_num {
        JS_U64,  /* non-negative integer <= UINT64_MAX */
        JS_NEG,  /* negative integer */
        JS_FRAC, /* fraction or exponent */
        JS_HUGE, /* integer above UINT64_MAX */
};

static int js_fail(const struct jscan *s, struct rh_error *err, const char *msg)
{
        return rh_error_set(err, EINVAL, "%s: byte %zu: %s", s->what, (size_t)(s->p - s->start), msg);
}

static void js_ws(struct jscan *s)
{
        while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
                s->p++;
}

static int js_peek(struct jscan *s)
{
        js_ws(s);
        return s->p < s->end ? (unsigned char)*s->p : -1;
}

static int js_expect(struct jscan *s, char c, struct rh_error *err)
{
        char msg[24];

        if (js_peek(s) != (unsigned char)c) {
                snprintf(msg, sizeof(msg), "expected '%c'", c);
                return js_fail(s, err, msg);
        }
        s->p++;
        return 0;
}

static int js_hex4(struct jscan *s, unsigned *ret)
{
        unsigned v = 0;

        if (s->end - s->p < 4)
                return -1;
        for (int i = 0; i < 4; i++) {
                char c = s->p[i];
                unsigned d;

                if (c >= '0' && c <= '9')
                        d = (unsigned)(c - '0');
                else if (c >= 'a' && c <= 'f')
                        d = (unsigned)(c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        d = (unsigned)(c - 'A' + 10);
                else
                        return -1;
                v = v << 4 | d;
        }
        s->p += 4;
        *ret = v;
        return 0;
}

/* Append one byte to @out when it has room; the length counts every byte. */
static void js_put(char *out, size_t cap, size_t *len, unsigned char c)
{
        if (out && *len < cap)
                out[*len] = (char)c;
        (*len)++;
}

/*
 * Read a string at s->p, decoding it into @out (up to @cap bytes, not
 * NUL-terminated; @out may be NULL to only validate). *ret_len is the full
 * decoded length, which never exceeds the encoded one.
 */
static int js_string(struct jscan *s, char *out, size_t cap, size_t *ret_len, struct rh_error *err)
{
        size_t len = 0;
        int r;

        r = js_expect(s, '"', err);
        if (r < 0)
                return r;
        for (;;) {
                unsigned char c;
                unsigned cp, lo;

                if (s->p >= s->end)
                        return js_fail(s, err, "unterminated string");
                c = (unsigned char)*s->p;
                if (c == '"') {
                        s->p++;
                        break;
                }
                if (c < 0x20)
                        return js_fail(s, err, "control character in a string");
                s->p++;
                if (c != '\\') {
                        js_put(out, cap, &len, c);
                        continue;
                }
                if (s->p >= s->end)
                        return js_fail(s, err, "unterminated string");
                c = (unsigned char)*s->p++;
                switch (c) {
                case '"':
                case '\\':
                case '/':
                        js_put(out, cap, &len, c);
                        continue;
                case 'b':
                        js_put(out, cap, &len, '\b');
                        continue;
                case 'f':
                        js_put(out, cap, &len, '\f');
                        continue;
                case 'n':
                        js_put(out, cap, &len, '\n');
                        continue;
                case 'r':
                        js_put(out, cap, &len, '\r');
                        continue;
                case 't':
                        js_put(out, cap, &len, '\t');
                        continue;
                case 'u':
                        break;
                default:
                        s->p--;
                        return js_fail(s, err, "invalid escape in a string");
                }
                if (js_hex4(s, &cp) < 0)
                        return js_fail(s, err, "invalid \\u escape");
                if (cp >= 0xdc00 && cp <= 0xdfff)
                        return js_fail(s, err, "lone low surrogate in a string");
                if (cp >= 0xd800 && cp <= 0xdbff) {
                        if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u')
                                return js_fail(s, err, "lone high surrogate in a string");
                        s->p += 2;
                        if (js_hex4(s, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
                                return js_fail(s, err, "invalid surrogate pair in a string");
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                if (cp < 0x80) {
                        js_put(out, cap, &len, (unsigned char)cp);
                } else if (cp < 0x800) {
                        js_put(out, cap, &len, (unsigned char)(0xc0 | cp >> 6));
                        js_put(out, cap, &len, (unsigned char)(0x80 | (cp & 0x3f)));
                } else if (cp < 0x10000) {
                        js_put(out, cap, &len, (unsigned char)(0xe0 | cp >> 12));
                        js_put(out, cap, &len, (unsigned char)(0x80 | ((cp >> 6) & 0x3f)));
                        js_put(out, cap, &len, (unsigned char)(0x80 | (cp & 0x3f)));
                } else {
                        js_put(out, cap, &len, (unsigned char)(0xf0 | cp >> 18));
                        js_put(out, cap, &len, (unsigned char)(0x80 | ((cp >> 12) & 0x3f)));
                        js_put(out, cap, &len, (unsigned char)(0x80 | ((cp >> 6) & 0x3f)));
                        js_put(out, cap, &len, (unsigned char)(0x80 | (cp & 0x3f)));
                }
        }
        if (ret_len)
                *ret_len = len;
        return 0;
}

static bool js_digit(const struct jscan *s)
{
        return s->p < s->end && *s->p >= '0' && *s->p <= '9';
}

/* Read a number at s->p; *ret is its value when *ret_kind is JS_U64. */
static int js_number(struct jscan *s, enum js_num *ret_kind, uint64_t *ret, struct rh_error *err)
{
        enum js_num kind = JS_U64;
        uint64_t v = 0;

        js_ws(s);
        if (s->p < s->end && *s->p == '-') {
                kind = JS_NEG;
                s->p++;
        }
        if (!js_digit(s))
                return js_fail(s, err, "expected a value");
        if (*s->p == '0') {
                s->p++;
        } else {
                for (; js_digit(s); s->p++) {
                        unsigned d = (unsigned)(*s->p - '0');

                        if (v > (UINT64_MAX - d) / 10) {
                                if (kind == JS_U64)
                                        kind = JS_HUGE;
                        } else {
                                v = v * 10 + d;
                        }
                }
        }
        if (s->p < s->end && *s->p == '.') {
                s->p++;
                if (!js_digit(s))
                        return js_fail(s, err, "expected a digit after '.'");
                while (js_digit(s))
                        s->p++;
                kind = JS_FRAC;
        }
        if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
                s->p++;
                if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
                        s->p++;
                if (!js_digit(s))
                        return js_fail(s, err, "expected a digit in the exponent");
                while (js_digit(s))
                        s->p++;
                kind = JS_FRAC;
        }
        *ret_kind = kind;
        *ret = v;
        return 0;
}

/* Skip any value, checking it. */
static int js_skip(struct jscan *s, unsigned depth, struct rh_error *err)
{
        static const char *const literals[] = {"true", "false", "null"};
        enum js_num kind;
        uint64_t v;
        int c = js_peek(s), r;
        bool first = true;

        if (c == '"')
                return js_string(s, NULL, 0, NULL, err);
        if (c == '-' || (c >= '0' && c <= '9'))
                return js_number(s, &kind, &v, err);
        if (c == '{' || c == '[') {
                char close = c == '{' ? '}' : ']';

                if (depth >= JS_MAX_DEPTH)
                        return js_fail(s, err, "nested too deeply");
                s->p++;
                for (;;) {
                        if (js_peek(s) == close) {
                                s->p++;
                                return 0;
                        }
                        if (!first) {
                                r = js_expect(s, ',', err);
                                if (r < 0)
                                        return r;
                        }
                        first = false;
                        if (close == '}') {
                                r = js_string(s, NULL, 0, NULL, err);
                                if (r >= 0)
                                        r = js_expect(s, ':', err);
                                if (r < 0)
                                        return r;
                        }
                        r = js_skip(s, depth + 1, err);
                        if (r < 0)
                                return r;
                }
        }
        for (size_t i = 0; i < ELEMENTSOF(literals); i++) {
                size_t n = strlen(literals[i]);

                if ((size_t)(s->end - s->p) >= n && memcmp(s->p, literals[i], n) == 0) {
                        s->p += n;
                        return 0;
                }
        }
        return js_fail(s, err, "expected a value");
}

/*
 * Members of an object: call first with *first = true right at the '{'.
 * Returns 1 with the key in @key (NUL-terminated, "" when longer than
 * @cap - 1) and s->p at its value, 0 after the closing '}', or -EINVAL.
 */
static int js_member(struct jscan *s, bool *first, char *key, size_t cap, struct rh_error *err)
{
        size_t len;
        int r;

        if (*first) {
                r = js_expect(s, '{', err);
                if (r < 0)
                        return r;
        }
        if (js_peek(s) == '}') {
                s->p++;
                return 0;
        }
        if (!*first) {
                r = js_expect(s, ',', err);
                if (r < 0)
                        return r;
        }
        *first = false;
        if (js_peek(s) != '"')
                return js_fail(s, err, "expected a member name");
        r = js_string(s, key, cap - 1, &len, err);
        if (r < 0)
                return r;
        key[len < cap ? len : 0] = '\0';
        if (len >= cap || memchr(key, '\0', len))
                key[0] = '\0'; /* too long or holds NUL: matches no name we look for */
        r = js_expect(s, ':', err);
        return r < 0 ? r : 1;
}

/* Elements of an array, like js_member: 1 at an element, 0 after ']'. */
static int js_element(struct jscan *s, bool *first, struct rh_error *err)
{
        int r;

        if (*first) {
                r = js_expect(s, '[', err);
                if (r < 0)
                        return r;
        }
        if (js_peek(s) == ']') {
                s->p++;
                return 0;
        }
        if (!*first) {
                r = js_expect(s, ',', err);
                if (r < 0)
                        return r;
        }
        *first = false;
        return 1;
}

/* A second occurrence of a member rehome reads is an error (serde rejects it too). */
static int js_once(struct jscan *s, unsigned *seen, unsigned bit, const char *name, struct rh_error *err)
{
        char msg[96];

        if (*seen & bit) {
                snprintf(msg, sizeof(msg), "duplicate member \"%s\"", name);
                return js_fail(s, err, msg);
        }
        *seen |= bit;
        return 0;
}

static int js_end(struct jscan *s, struct rh_error *err)
{
        if (js_peek(s) != -1)
                return js_fail(s, err, "trailing data after the document");
        return 0;
}

/* One RAM mapping of the memory manager (guest_ram_mappings[]). */
struct ch_ram {
        uint64_t gpa, size, file_offset;
        bool virtio_mem;
        char zone[64]; /* zone_id, printable ASCII ('?' for anything else), may be cut */
        char *file;    /* the zone's backing file from config.json, or NULL */
};

struct ch_state {
        struct rh_region ranges[RH_LAYOUT_MAX_REGIONS]; /* memory_ranges.data, list order */
        size_t n_ranges;                                /* all of them, even past the cap */
        bool have_ranges;
        struct ch_ram ram[RH_LAYOUT_MAX_REGIONS];
        size_t n_ram;
};

/* Read a u64 member of element @idx of @list, with the messages a user sees. */
static int ch_u64(struct jscan *s, const char *list, size_t idx, const char *key, uint64_t *ret,
                  struct rh_error *err)
{
        static const char *const why[] = {
                [JS_NEG] = "is negative",
                [JS_FRAC] = "is not an integer",
                [JS_HUGE] = "does not fit in 64 bits",
        };
        enum js_num kind;
        int c = js_peek(s), r;

        if (c != '-' && (c < '0' || c > '9'))
                return rh_error_set(err, EINVAL, "state.json: %s %zu: \"%s\" missing or not an integer", list,
                                    idx, key);
        r = js_number(s, &kind, ret, err);
        if (r < 0)
                return r;
        if (kind != JS_U64)
                return rh_error_set(err, EINVAL, "state.json: %s %zu: \"%s\" %s", list, idx, key, why[kind]);
        return 0;
}

/* memory_ranges.data[i]: MemoryRange { gpa, length }. */
static int ch_range(struct jscan *s, struct ch_state *st, struct rh_error *err)
{
        struct rh_region rg = {};
        size_t idx = st->n_ranges;
        unsigned seen = 0;
        bool first = true;
        char key[16];
        int r;

        if (js_peek(s) != '{') {
                r = js_skip(s, 0, err);
                return r < 0 ? r : rh_error_set(err, EINVAL, "state.json: memory range %zu is not an object", idx);
        }
        while ((r = js_member(s, &first, key, sizeof(key), err)) > 0) {
                if (strcmp(key, "gpa") == 0) {
                        r = js_once(s, &seen, 1, key, err);
                        if (r >= 0)
                                r = ch_u64(s, "memory range", idx, "gpa", &rg.gpa, err);
                } else if (strcmp(key, "length") == 0) {
                        r = js_once(s, &seen, 2, key, err);
                        if (r >= 0)
                                r = ch_u64(s, "memory range", idx, "length", &rg.size, err);
                } else {
                        r = js_skip(s, 2, err);
                }
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        if (!(seen & 1))
                return rh_error_set(err, EINVAL, "state.json: memory range %zu: \"gpa\" missing or not an integer",
                                    idx);
        if (!(seen & 2))
                return rh_error_set(err, EINVAL,
                                    "state.json: memory range %zu: \"length\" missing or not an integer", idx);
        if (idx < RH_LAYOUT_MAX_REGIONS)
                st->ranges[idx] = rg;
        st->n_ranges++;
        return 0;
}

/* Printable ASCII copy of a zone id, for messages. */
static void ch_zone_name(char *dst, size_t cap, const char *src, size_t len)
{
        size_t n = len < cap - 1 ? len : cap - 1;

        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)src[i];
                dst[i] = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ? (char)c : '?';
        }
        dst[n] = '\0';
}

/* guest_ram_mappings[i]: GuestRamMapping { slot, gpa, size, zone_id, virtio_mem, file_offset }. */
static int ch_mapping(struct jscan *s, struct ch_state *st, struct rh_error *err)
{
        struct ch_ram m = {};
        size_t idx = st->n_ram, len;
        unsigned seen = 0;
        bool first = true;
        char key[16], zone[sizeof(m.zone)];
        int r;

        if (idx >= RH_LAYOUT_MAX_REGIONS)
                return rh_error_set(err, E2BIG, "state.json: more than %d guest_ram_mappings",
                                    RH_LAYOUT_MAX_REGIONS);
        if (js_peek(s) != '{') {
                r = js_skip(s, 0, err);
                return r < 0 ? r : rh_error_set(err, EINVAL, "state.json: guest RAM mapping %zu is not an object", idx);
        }
        while ((r = js_member(s, &first, key, sizeof(key), err)) > 0) {
                if (strcmp(key, "gpa") == 0) {
                        r = js_once(s, &seen, 1, key, err);
                        if (r >= 0)
                                r = ch_u64(s, "guest RAM mapping", idx, "gpa", &m.gpa, err);
                } else if (strcmp(key, "size") == 0) {
                        r = js_once(s, &seen, 2, key, err);
                        if (r >= 0)
                                r = ch_u64(s, "guest RAM mapping", idx, "size", &m.size, err);
                } else if (strcmp(key, "file_offset") == 0) {
                        r = js_once(s, &seen, 4, key, err);
                        if (r >= 0)
                                r = ch_u64(s, "guest RAM mapping", idx, "file_offset", &m.file_offset, err);
                } else if (strcmp(key, "zone_id") == 0) {
                        r = js_once(s, &seen, 8, key, err);
                        if (r >= 0 && js_peek(s) != '"')
                                r = rh_error_set(err, EINVAL,
                                                 "state.json: guest RAM mapping %zu: \"zone_id\" is not a string", idx);
                        if (r >= 0)
                                r = js_string(s, zone, sizeof(zone), &len, err);
                        if (r >= 0)
                                ch_zone_name(m.zone, sizeof(m.zone), zone, len < sizeof(zone) ? len : sizeof(zone));
                } else if (strcmp(key, "virtio_mem") == 0) {
                        r = js_once(s, &seen, 16, key, err);
                        if (r >= 0 && (size_t)(s->end - s->p) >= 4 && memcmp(s->p, "true", 4) == 0)
                                m.virtio_mem = true;
                        if (r >= 0 && js_peek(s) != 't' && js_peek(s) != 'f')
                                r = rh_error_set(err, EINVAL,
                                                 "state.json: guest RAM mapping %zu: \"virtio_mem\" is not a boolean",
                                                 idx);
                        if (r >= 0)
                                r = js_skip(s, 2, err);
                } else {
                        r = js_skip(s, 2, err);
                }
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        if ((seen & 3) != 3)
                return rh_error_set(err, EINVAL, "state.json: guest RAM mapping %zu: \"%s\" missing", idx,
                                    seen & 1 ? "size" : "gpa");
        st->ram[st->n_ram++] = m;
        return 0;
}

/* The memory manager's own state document (MemoryManagerSnapshotData). */
static int ch_parse_inner(const char *text, size_t len, struct ch_state *st, struct rh_error *err)
{
        struct jscan s = {.start = text, .p = text, .end = text + len, .what = "state.json: memory-manager state"};
        unsigned seen = 0;
        bool first = true, afirst;
        char key[32];
        int r;

        if (js_peek(&s) != '{')
                return js_fail(&s, err, "expected an object");
        while ((r = js_member(&s, &first, key, sizeof(key), err)) > 0) {
                if (strcmp(key, "memory_ranges") == 0) {
                        bool mfirst = true;
                        char mkey[16];

                        r = js_once(&s, &seen, 1, key, err);
                        if (r >= 0 && js_peek(&s) != '{')
                                r = rh_error_set(err, EINVAL,
                                                 "state.json: memory-manager state has no memory_ranges.data array");
                        while (r >= 0 && (r = js_member(&s, &mfirst, mkey, sizeof(mkey), err)) > 0) {
                                if (strcmp(mkey, "data") != 0) {
                                        r = js_skip(&s, 2, err);
                                        continue;
                                }
                                if (st->have_ranges || js_peek(&s) != '[') {
                                        r = rh_error_set(err, EINVAL,
                                                         st->have_ranges ? "state.json: duplicate memory_ranges.data"
                                                                         : "state.json: memory-manager state has no "
                                                                           "memory_ranges.data array");
                                        break;
                                }
                                st->have_ranges = true;
                                afirst = true;
                                while ((r = js_element(&s, &afirst, err)) > 0) {
                                        r = ch_range(&s, st, err);
                                        if (r < 0)
                                                break;
                                }
                        }
                } else if (strcmp(key, "guest_ram_mappings") == 0) {
                        r = js_once(&s, &seen, 2, key, err);
                        if (r >= 0 && js_peek(&s) != '[')
                                r = rh_error_set(err, EINVAL, "state.json: guest_ram_mappings is not an array");
                        afirst = true;
                        while (r >= 0 && (r = js_element(&s, &afirst, err)) > 0) {
                                r = ch_mapping(&s, st, err);
                                if (r < 0)
                                        break;
                        }
                } else {
                        /* arch_mem_regions, hotplug_slots, boot_ram, ...: checked, not kept */
                        r = js_skip(&s, 1, err);
                }
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = js_end(&s, err);
        if (r < 0)
                return r;
        if (!st->have_ranges)
                return rh_error_set(err, EINVAL, "state.json: memory-manager state has no memory_ranges.data array");
        return 0;
}

/*
 * The snapshot tree: find snapshots."memory-manager".snapshot_data.state, a
 * JSON string, and decode it into *ret_inner (malloc'd).
 */
static int ch_parse_outer(const char *text, size_t len, char **ret_inner, size_t *ret_len, struct rh_error *err)
{
        struct jscan s = {.start = text, .p = text, .end = text + len, .what = "state.json"};
        _cleanup_free_ char *inner = NULL;
        bool first = true, sfirst, mfirst, dfirst;
        size_t inner_len = 0;
        int found_mm = 0, found_data = 0, r;
        char key[32];

        if (js_peek(&s) != '{')
                return js_fail(&s, err, "expected an object");
        while ((r = js_member(&s, &first, key, sizeof(key), err)) > 0) {
                if (strcmp(key, "snapshots") != 0 || js_peek(&s) != '{') {
                        r = js_skip(&s, 1, err);
                        if (r < 0)
                                return r;
                        continue;
                }
                sfirst = true;
                while ((r = js_member(&s, &sfirst, key, sizeof(key), err)) > 0) {
                        if (strcmp(key, "memory-manager") != 0 || js_peek(&s) != '{') {
                                r = js_skip(&s, 2, err);
                                if (r < 0)
                                        return r;
                                continue;
                        }
                        if (found_mm++)
                                return js_fail(&s, err, "duplicate member \"memory-manager\"");
                        mfirst = true;
                        while ((r = js_member(&s, &mfirst, key, sizeof(key), err)) > 0) {
                                if (strcmp(key, "snapshot_data") != 0 || js_peek(&s) != '{') {
                                        r = js_skip(&s, 3, err);
                                        if (r < 0)
                                                return r;
                                        continue;
                                }
                                if (found_data++)
                                        return js_fail(&s, err, "duplicate member \"snapshot_data\"");
                                dfirst = true;
                                while ((r = js_member(&s, &dfirst, key, sizeof(key), err)) > 0) {
                                        if (strcmp(key, "state") != 0) {
                                                r = js_skip(&s, 4, err);
                                        } else if (inner) {
                                                r = js_fail(&s, err, "duplicate member \"state\"");
                                        } else if (js_peek(&s) != '"') {
                                                r = rh_error_set(err, EINVAL,
                                                                 "state.json: memory-manager snapshot_data.state "
                                                                 "is not a string");
                                        } else {
                                                /* decoded <= encoded: the rest of the file is enough room */
                                                size_t cap = (size_t)(s.end - s.p) + 1;

                                                inner = malloc(cap);
                                                if (!inner)
                                                        return rh_error_set(err, ENOMEM, "state.json: out of memory");
                                                r = js_string(&s, inner, cap, &inner_len, err);
                                        }
                                        if (r < 0)
                                                return r;
                                }
                                if (r < 0)
                                        return r;
                        }
                        if (r < 0)
                                return r;
                }
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        r = js_end(&s, err);
        if (r < 0)
                return r;
        if (!found_mm)
                return rh_error_set(err, EINVAL, "state.json: no snapshots.\"memory-manager\" object");
        if (!found_data)
                return rh_error_set(err, EINVAL, "state.json: memory-manager has no snapshot_data object");
        if (!inner)
                return rh_error_set(err, EINVAL, "state.json: memory-manager snapshot_data.state is not a string");
        *ret_inner = TAKE_PTR(inner);
        *ret_len = inner_len;
        return 0;
}

/*
 * config.json: memory.zones[] { id, file }. Only names the files of zones
 * absent from memory-ranges in messages, so a config.json that does not
 * parse is ignored (its zones stay unnamed).
 */
static int ch_zone_files(const char *text, size_t len, struct ch_state *st)
{
        struct jscan s = {.start = text, .p = text, .end = text + len, .what = "config.json"};
        bool first = true, mfirst, afirst, zfirst;
        char key[16];
        int r;

        if (js_peek(&s) != '{')
                return -EINVAL;
        while ((r = js_member(&s, &first, key, sizeof(key), NULL)) > 0) {
                if (strcmp(key, "memory") != 0 || js_peek(&s) != '{') {
                        if (js_skip(&s, 1, NULL) < 0)
                                return -EINVAL;
                        continue;
                }
                mfirst = true;
                while ((r = js_member(&s, &mfirst, key, sizeof(key), NULL)) > 0) {
                        if (strcmp(key, "zones") != 0 || js_peek(&s) != '[') {
                                if (js_skip(&s, 2, NULL) < 0)
                                        return -EINVAL;
                                continue;
                        }
                        afirst = true;
                        while ((r = js_element(&s, &afirst, NULL)) > 0) {
                                char id[sizeof(st->ram[0].zone)] = "", raw[sizeof(id)];
                                _cleanup_free_ char *file = NULL;
                                size_t n = 0;

                                zfirst = true;
                                if (js_peek(&s) != '{')
                                        return -EINVAL;
                                while ((r = js_member(&s, &zfirst, key, sizeof(key), NULL)) > 0) {
                                        if (strcmp(key, "id") == 0 && js_peek(&s) == '"') {
                                                r = js_string(&s, raw, sizeof(raw), &n, NULL);
                                                ch_zone_name(id, sizeof(id), raw, n < sizeof(raw) ? n : sizeof(raw));
                                        } else if (strcmp(key, "file") == 0 && js_peek(&s) == '"' && !file) {
                                                size_t cap = (size_t)(s.end - s.p) + 1;

                                                file = malloc(cap);
                                                if (!file)
                                                        return -ENOMEM;
                                                r = js_string(&s, file, cap - 1, &n, NULL);
                                                if (r >= 0)
                                                        file[n] = '\0';
                                        } else {
                                                r = js_skip(&s, 4, NULL);
                                        }
                                        if (r < 0)
                                                return -EINVAL;
                                }
                                if (r < 0)
                                        return -EINVAL;
                                for (size_t i = 0; file && i < st->n_ram; i++) {
                                        if (st->ram[i].file || strcmp(st->ram[i].zone, id) != 0)
                                                continue;
                                        st->ram[i].file = strdup(file);
                                        if (!st->ram[i].file)
                                                return -ENOMEM;
                                }
                        }
                        if (r < 0)
                                return -EINVAL;
                }
                if (r < 0)
                        return -EINVAL;
        }
        return r < 0 ? -EINVAL : 0;
}

static int region_cmp_gpa(const void *a, const void *b)
{
        const struct rh_region *x = a, *y = b;

        return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

/*
 * memory_ranges in list order -> a layout: offsets are the running sum in
 * list order (the order of memory-ranges), regions kept sorted by gpa.
 */
static int ch_layout(const struct ch_state *st, struct rh_layout *l, struct rh_error *err)
{
        struct rh_region sorted[RH_LAYOUT_MAX_REGIONS];
        uint64_t total = 0;
        size_t n = st->n_ranges;

        if (n == 0)
                return rh_error_set(err, EINVAL, "state.json: memory_ranges.data is empty");
        if (n > RH_LAYOUT_MAX_REGIONS)
                return rh_error_set(err, E2BIG, "state.json: %zu memory ranges, at most %d", n,
                                    RH_LAYOUT_MAX_REGIONS);
        for (size_t i = 0; i < n; i++) {
                const struct rh_region *rg = &st->ranges[i];

                if (rg->size == 0)
                        return rh_error_set(err, EINVAL, "state.json: memory range %zu at gpa 0x%" PRIx64 ": length 0",
                                            i, rg->gpa);
                if (rg->gpa >= RH_LAYOUT_GPA_LIMIT || rg->size > RH_LAYOUT_GPA_LIMIT - rg->gpa)
                        return rh_error_set(err, EINVAL,
                                            "state.json: memory range %zu 0x%" PRIx64 "+0x%" PRIx64
                                            " ends past gpa 0x%llx",
                                            i, rg->gpa, rg->size, RH_LAYOUT_GPA_LIMIT);
                if (rg->size > RH_LAYOUT_MAX_MEM - total)
                        return rh_error_set(err, EINVAL, "state.json: memory ranges add up to more than 0x%llx bytes",
                                            RH_LAYOUT_MAX_MEM);
                sorted[i] = (struct rh_region){.gpa = rg->gpa, .size = rg->size, .offset = total};
                total += rg->size;
        }
        qsort(sorted, n, sizeof(sorted[0]), region_cmp_gpa);
        for (size_t i = 1; i < n; i++) {
                const struct rh_region *a = &sorted[i - 1], *b = &sorted[i];

                if (b->gpa < a->gpa + a->size) {
                        size_t ia = 0, ib = 0;

                        /* name them by their place in the list (offsets are unique) */
                        for (size_t k = 0; k < n; k++) {
                                uint64_t off = 0;
                                for (size_t j = 0; j < k; j++)
                                        off += st->ranges[j].size;
                                if (off == a->offset)
                                        ia = k;
                                if (off == b->offset)
                                        ib = k;
                        }
                        if (ia > ib) {
                                size_t t = ia;
                                ia = ib;
                                ib = t;
                        }
                        return rh_error_set(err, EINVAL,
                                            "state.json: memory range %zu (0x%" PRIx64 "-0x%" PRIx64
                                            ") overlaps memory range %zu (0x%" PRIx64 "-0x%" PRIx64 ")",
                                            ib, st->ranges[ib].gpa, st->ranges[ib].gpa + st->ranges[ib].size, ia,
                                            st->ranges[ia].gpa, st->ranges[ia].gpa + st->ranges[ia].size);
                }
        }
        memcpy(l->regions, sorted, n * sizeof(sorted[0]));
        l->n = n;
        return 0;
}

static void ch_state_done(struct ch_state *st)
{
        for (size_t i = 0; i < st->n_ram; i++)
                free(st->ram[i].file);
        st->n_ram = 0;
}

int rh_layout_new_cloud_hypervisor_config(const char *state_json, size_t len, const char *config_json,
                                          size_t config_len, struct rh_layout **ret_layout, struct rh_error *err)
{
        _cleanup_(rh_layout_freep) struct rh_layout *l = NULL;
        _cleanup_free_ struct ch_state *st = NULL;
        _cleanup_free_ char *inner = NULL;
        size_t inner_len = 0;
        int r;

        if (len > RH_LAYOUT_STATE_JSON_MAX)
                return rh_error_set(err, EFBIG, "state.json: %zu bytes, more than %u", len,
                                    RH_LAYOUT_STATE_JSON_MAX);
        st = calloc(1, sizeof(*st));
        if (!st)
                return rh_error_set(err, ENOMEM, "state.json: out of memory");
        r = ch_parse_outer(state_json, len, &inner, &inner_len, err);
        if (r < 0)
                return r;
        r = ch_parse_inner(inner, inner_len, st, err);
        if (r >= 0)
                r = layout_alloc("cloud-hypervisor", &l, err);
        if (r >= 0)
                r = ch_layout(st, l, err);
        if (r >= 0 && config_json && config_len <= RH_LAYOUT_STATE_JSON_MAX &&
            ch_zone_files(config_json, config_len, st) == -ENOMEM)
                r = rh_error_set(err, ENOMEM, "config.json: out of memory");
        if (r >= 0 && st->n_ram > 0) {
                l->ram = calloc(st->n_ram, sizeof(*l->ram));
                if (!l->ram)
                        r = rh_error_set(err, ENOMEM, "state.json: out of memory");
        }
        if (r < 0) {
                ch_state_done(st);
                return r;
        }
        if (st->n_ram > 0) {
                memcpy(l->ram, st->ram, st->n_ram * sizeof(*l->ram)); /* hands over the file names */
                l->n_ram = st->n_ram;
        }
        *ret_layout = TAKE_PTR(l);
        return 0;
}

int rh_layout_new_cloud_hypervisor(const char *state_json, size_t len, struct rh_layout **ret_layout,
                                   struct rh_error *err)
{
        return rh_layout_new_cloud_hypervisor_config(state_json, len, NULL, 0, ret_layout, err);
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
        _cleanup_free_ char *json = NULL, *joined = NULL, *config_path = NULL, *config = NULL;
        const char *slash;
        struct stat st;
        size_t len = 0, config_len = 0;
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
        /* The snapshot's config.json, beside state.json, names the zones' files (optional). */
        slash = strrchr(path, '/');
        if (asprintf(&config_path, "%.*sconfig.json", slash ? (int)(slash - path + 1) : 0, path) < 0) {
                config_path = NULL;
                return rh_error_set(err, ENOMEM, "cloud-hypervisor: out of memory");
        }
        if (read_file_alloc(config_path, RH_LAYOUT_STATE_JSON_MAX, &config, &config_len) < 0)
                config_len = 0;
        r = rh_layout_new_cloud_hypervisor_config(json, len, config_len ? config : NULL, config_len, ret_layout,
                                                  err);
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
        if (!layout)
                return NULL;
        for (size_t i = 0; i < layout->n_ram; i++)
                free(layout->ram[i].file);
        free(layout->ram);
        free(layout);
        return NULL;
}

/* ---- lookups ---- */

/*
 * A Cloud Hypervisor gpa outside memory-ranges may still be guest RAM: a
 * zone mapped from a shared host file (left out of the snapshot: its data
 * is the file) or the unplugged part of a virtio-mem region.
 */
static int ch_explain_miss(const struct rh_layout *layout, uint64_t gpa, struct rh_error *err)
{
        for (size_t i = 0; i < layout->n_ram; i++) {
                const struct ch_ram *m = &layout->ram[i];

                if (gpa < m->gpa || gpa - m->gpa >= m->size)
                        continue;
                if (m->virtio_mem)
                        return rh_error_set(err, EFAULT,
                                            "gpa 0x%" PRIx64 " is in zone \"%s\"'s virtio-mem region 0x%" PRIx64
                                            "-0x%" PRIx64 " but not plugged (not in memory-ranges)",
                                            gpa, m->zone, m->gpa, m->gpa + m->size);
                if (m->file)
                        return rh_error_set(err, EFAULT,
                                            "gpa 0x%" PRIx64 " is RAM backed by zone file %s (zone \"%s\", file "
                                            "offset 0x%" PRIx64 "), not in memory-ranges",
                                            gpa, m->file, m->zone, m->file_offset + (gpa - m->gpa));
                return rh_error_set(err, EFAULT,
                                    "gpa 0x%" PRIx64 " is RAM backed by zone file of zone \"%s\" (file offset "
                                    "0x%" PRIx64 "; config.json names the file), not in memory-ranges",
                                    gpa, m->zone, m->file_offset + (gpa - m->gpa));
        }
        return 0;
}

int rh_layout_gpa_to_offset(const struct rh_layout *layout, uint64_t gpa, uint64_t len, uint64_t *ret_offset,
                            struct rh_error *err)
{
        int r;

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

                if (gpa < rg->gpa) {
                        r = ch_explain_miss(layout, gpa, err);
                        if (r < 0)
                                return r;
                        return rh_error_set(
                                err, EFAULT,
                                "gpa 0x%" PRIx64 " is in a hole (no RAM between 0x%" PRIx64 " and 0x%" PRIx64
                                ")",
                                gpa, i == 0 ? 0 : layout->regions[i - 1].gpa + layout->regions[i - 1].size,
                                rg->gpa);
                }
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
        r = ch_explain_miss(layout, gpa, err);
        if (r < 0)
                return r;
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
        uint64_t end = 0;

        if (layout->flat)
                return UINT64_MAX;
        /* Regions are in gpa order; the file's order may differ (Cloud Hypervisor). */
        for (size_t i = 0; i < layout->n; i++)
                if (layout->regions[i].offset + layout->regions[i].size > end)
                        end = layout->regions[i].offset + layout->regions[i].size;
        return end;
}

const char *rh_layout_kind(const struct rh_layout *layout)
{
        return layout->kind;
}
