/* SPDX-License-Identifier: MIT */
/*
 * Memory layouts: every VMM's region list, boundary addresses around each
 * hole (last byte below, first byte in, first byte above, past the end,
 * ranges crossing a boundary), spec strings and their errors, and Cloud
 * Hypervisor state.json, well-formed and malformed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rehome/layout.h"

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)

static void expect_region(const struct rh_layout *l, size_t i, uint64_t gpa, uint64_t size, uint64_t offset)
{
        const struct rh_region *rg = rh_layout_region(l, i);

        assert_non_null(rg);
        assert_int_equal(rg->gpa, gpa);
        assert_int_equal(rg->size, size);
        assert_int_equal(rg->offset, offset);
}

static void expect_offset(const struct rh_layout *l, uint64_t gpa, uint64_t len, uint64_t want)
{
        struct rh_error err = {};
        uint64_t off = 0;

        assert_int_equal(rh_layout_gpa_to_offset(l, gpa, len, &off, &err), 0);
        assert_int_equal(off, want);
}

static void expect_fault(const struct rh_layout *l, uint64_t gpa, uint64_t len, const char *msg)
{
        struct rh_error err = {};
        uint64_t off = 12345;

        assert_int_equal(rh_layout_gpa_to_offset(l, gpa, len, &off, &err), -EFAULT);
        assert_int_equal(err.code, EFAULT);
        assert_string_equal(err.msg, msg);
        assert_int_equal(off, 12345); /* untouched on failure */
}

static struct rh_layout *parse_ok(const char *spec)
{
        struct rh_layout *l = NULL;
        struct rh_error err = {};
        int r = rh_layout_parse(spec, &l, &err);

        if (r < 0)
                fail_msg("parse \"%s\": %s", spec, err.msg);
        assert_non_null(l);
        return l;
}

static void parse_fails(const char *spec, int code, const char *msg)
{
        struct rh_layout *l = NULL;
        struct rh_error err = {};

        assert_int_equal(rh_layout_parse(spec, &l, &err), code);
        assert_null(l);
        assert_int_equal(err.code, -code);
        assert_string_equal(err.msg, msg);
}

static void test_firecracker_x86_small(void **state)
{
        struct rh_layout *l = parse_ok("firecracker:2G");

        assert_string_equal(rh_layout_kind(l), "firecracker-x86_64");
        assert_int_equal(rh_layout_n_regions(l), 1);
        expect_region(l, 0, 0, 2 * GiB, 0);
        assert_int_equal(rh_layout_file_size(l), 2 * GiB);
        expect_offset(l, 0, 4096, 0);
        expect_offset(l, 2 * GiB - 1, 1, 2 * GiB - 1);
        expect_fault(l, 2 * GiB, 1, "gpa 0x80000000 is past the end of guest RAM (0x80000000)");
        expect_fault(l, 2 * GiB - 4096, 8192,
                     "gpa range 0x7ffff000+0x2000 crosses the end of RAM region 0x0-0x80000000");
        assert_null(rh_layout_region(l, 1));
        rh_layout_free(l);
}

static void test_firecracker_x86_exactly_3g(void **state)
{
        struct rh_layout *l = parse_ok("firecracker-x86_64:3G");

        assert_int_equal(rh_layout_n_regions(l), 1);
        expect_region(l, 0, 0, 3 * GiB, 0);
        expect_fault(l, 3 * GiB, 1, "gpa 0xc0000000 is past the end of guest RAM (0xc0000000)");
        rh_layout_free(l);
}

static void test_firecracker_x86_hole(void **state)
{
        struct rh_layout *l = parse_ok("firecracker:4G");

        assert_int_equal(rh_layout_n_regions(l), 2);
        expect_region(l, 0, 0, 3 * GiB, 0);
        expect_region(l, 1, 4 * GiB, 1 * GiB, 3 * GiB);
        assert_int_equal(rh_layout_file_size(l), 4 * GiB);
        /* last byte below the hole, first in it, last in it, first above */
        expect_offset(l, 0xbfffffff, 1, 0xbfffffff);
        expect_fault(l, 0xc0000000, 1,
                     "gpa 0xc0000000 is in a hole (no RAM between 0xc0000000 and 0x100000000)");
        expect_fault(l, 0xffffffff, 1,
                     "gpa 0xffffffff is in a hole (no RAM between 0xc0000000 and 0x100000000)");
        expect_offset(l, 0x100000000, 4096, 0xc0000000); /* gpa - 1 GiB */
        expect_offset(l, 0x13fffffff, 1, 0xffffffff);
        expect_fault(l, 0x140000000, 1, "gpa 0x140000000 is past the end of guest RAM (0x140000000)");
        expect_fault(l, UINT64_MAX, 1, "gpa 0xffffffffffffffff is past the end of guest RAM (0x140000000)");
        /* ranges crossing boundaries */
        expect_fault(l, 0xbffff000, 0x2000,
                     "gpa range 0xbffff000+0x2000 crosses the end of RAM region 0x0-0xc0000000");
        expect_fault(l, 0x13ffff000, 0x1001,
                     "gpa range 0x13ffff000+0x1001 crosses the end of RAM region 0x100000000-0x140000000");
        expect_offset(l, 0x13ffff000, 0x1000, 0xfffff000);
        expect_fault(l, 0x100000000, UINT64_MAX,
                     "gpa range 0x100000000+0xffffffffffffffff crosses the end of RAM region "
                     "0x100000000-0x140000000");
        rh_layout_free(l);
}

static void test_firecracker_x86_mmio64_gap(void **state)
{
        struct rh_layout *l = parse_ok("firecracker:300G");

        assert_int_equal(rh_layout_n_regions(l), 3);
        expect_region(l, 0, 0, 3 * GiB, 0);
        expect_region(l, 1, 4 * GiB, 252 * GiB, 3 * GiB);
        expect_region(l, 2, 512 * GiB, 45 * GiB, 255 * GiB);
        expect_offset(l, 256 * GiB - 1, 1, 255 * GiB - 1);
        expect_fault(l, 256 * GiB, 1,
                     "gpa 0x4000000000 is in a hole (no RAM between 0x4000000000 and 0x8000000000)");
        expect_offset(l, 512 * GiB, 1, 255 * GiB);
        assert_int_equal(rh_layout_file_size(l), 300 * GiB);
        rh_layout_free(l);
}

static void test_firecracker_legacy(void **state)
{
        struct rh_layout *l = parse_ok("firecracker-x86_64-legacy:4G");

        assert_int_equal(rh_layout_n_regions(l), 2);
        expect_region(l, 0, 0, 0xd0000000, 0);
        expect_region(l, 1, 4 * GiB, 0x30000000, 0xd0000000);
        expect_offset(l, 0xcfffffff, 1, 0xcfffffff);
        expect_fault(l, 0xd0000000, 1,
                     "gpa 0xd0000000 is in a hole (no RAM between 0xd0000000 and 0x100000000)");
        expect_offset(l, 0x100000000, 1, 0xd0000000);
        rh_layout_free(l);
        l = parse_ok("firecracker-x86_64-legacy:3328M"); /* exactly 0xd0000000 */
        assert_int_equal(rh_layout_n_regions(l), 1);
        rh_layout_free(l);
}

static void test_firecracker_aarch64(void **state)
{
        struct rh_layout *l = parse_ok("firecracker-aarch64:1G");
        struct rh_error err = {};
        uint64_t gpa = 0;

        assert_string_equal(rh_layout_kind(l), "firecracker-aarch64");
        assert_int_equal(rh_layout_n_regions(l), 1);
        expect_region(l, 0, 2 * GiB, 1 * GiB, 0);
        expect_fault(l, 0, 1, "gpa 0x0 is in a hole (no RAM between 0x0 and 0x80000000)");
        expect_fault(l, 2 * GiB - 1, 1, "gpa 0x7fffffff is in a hole (no RAM between 0x0 and 0x80000000)");
        expect_offset(l, 2 * GiB, 1, 0);
        expect_offset(l, 3 * GiB - 1, 1, 1 * GiB - 1);
        expect_fault(l, 3 * GiB, 1, "gpa 0xc0000000 is past the end of guest RAM (0xc0000000)");
        assert_int_equal(rh_layout_offset_to_gpa(l, 0x1234, &gpa, &err), 0);
        assert_int_equal(gpa, 2 * GiB + 0x1234);
        assert_int_equal(rh_layout_offset_to_gpa(l, 1 * GiB, &gpa, &err), -EFAULT);
        assert_string_equal(err.msg,
                            "file offset 0x40000000 is past the end of guest RAM (0x40000000 bytes)");
        rh_layout_free(l);

        l = parse_ok("firecracker-aarch64:300G");
        assert_int_equal(rh_layout_n_regions(l), 2);
        expect_region(l, 0, 2 * GiB, 254 * GiB, 0);
        expect_region(l, 1, 512 * GiB, 46 * GiB, 254 * GiB);
        rh_layout_free(l);

        /* Firecracker truncates DRAM to 1022 GiB (DRAM_MEM_MAX_SIZE): the file holds that much. */
        l = parse_ok("firecracker-aarch64:1100G");
        assert_int_equal(rh_layout_n_regions(l), 2);
        expect_region(l, 0, 2 * GiB, 254 * GiB, 0);
        expect_region(l, 1, 512 * GiB, 768 * GiB, 254 * GiB);
        assert_int_equal(rh_layout_file_size(l), 1022 * GiB);
        expect_fault(l, 1280 * GiB, 1, "gpa 0x14000000000 is past the end of guest RAM (0x14000000000); "
                                       "Firecracker v1.14.0+ puts virtio-mem memory there, after DRAM in the "
                                       "memory file: add ,hotplug=SIZE[@GPA] to the layout");
        rh_layout_free(l);
}

/* v0.23.0..v1.12.1 on aarch64: one DRAM region from 2 GiB, no 256..512 GiB gap. */
static void test_firecracker_aarch64_legacy(void **state)
{
        struct rh_layout *l = parse_ok("firecracker-aarch64-legacy:1G");

        assert_string_equal(rh_layout_kind(l), "firecracker-aarch64-legacy");
        assert_int_equal(rh_layout_n_regions(l), 1);
        expect_region(l, 0, 2 * GiB, 1 * GiB, 0);
        expect_fault(l, 2 * GiB - 1, 1, "gpa 0x7fffffff is in a hole (no RAM between 0x0 and 0x80000000)");
        expect_offset(l, 2 * GiB, 1, 0);
        rh_layout_free(l);

        /* 255 GiB: ends at 257 GiB, across where v1.13.0+ has its gap; still one region. */
        l = parse_ok("firecracker-aarch64-legacy:255G");
        assert_int_equal(rh_layout_n_regions(l), 1);
        expect_region(l, 0, 2 * GiB, 255 * GiB, 0);
        expect_offset(l, 256 * GiB, 4096, 254 * GiB);
        expect_offset(l, 257 * GiB - 4096, 4096, 255 * GiB - 4096);
        expect_fault(l, 257 * GiB, 1, "gpa 0x4040000000 is past the end of guest RAM (0x4040000000)");
        rh_layout_free(l);
        /* The same size under v1.13.0+ is split at 256 GiB and resumes at 512 GiB. */
        l = parse_ok("firecracker-aarch64:255G");
        assert_int_equal(rh_layout_n_regions(l), 2);
        expect_region(l, 0, 2 * GiB, 254 * GiB, 0);
        expect_region(l, 1, 512 * GiB, 1 * GiB, 254 * GiB);
        expect_fault(l, 256 * GiB, 1,
                     "gpa 0x4000000000 is in a hole (no RAM between 0x4000000000 and 0x8000000000)");
        rh_layout_free(l);

        /* 300 GiB: [2G, 302G) in one piece; 300 GiB gpa is RAM at offset 298 GiB. */
        l = parse_ok("firecracker-aarch64-legacy:300G");
        assert_int_equal(rh_layout_n_regions(l), 1);
        expect_region(l, 0, 2 * GiB, 300 * GiB, 0);
        assert_int_equal(rh_layout_file_size(l), 300 * GiB);
        expect_offset(l, 300 * GiB, 1, 298 * GiB);
        expect_offset(l, 302 * GiB - 1, 1, 300 * GiB - 1);
        expect_fault(l, 302 * GiB, 1, "gpa 0x4b80000000 is past the end of guest RAM (0x4b80000000)");
        expect_fault(l, 512 * GiB, 1, "gpa 0x8000000000 is past the end of guest RAM (0x4b80000000)");
        rh_layout_free(l);

        /* Truncated to 1022 GiB as Firecracker does. */
        l = parse_ok("firecracker-aarch64-legacy:2T");
        expect_region(l, 0, 2 * GiB, 1022 * GiB, 0);
        rh_layout_free(l);
        parse_fails("firecracker-aarch64-legacy:0", -EINVAL, "firecracker-aarch64-legacy: memory size 0");
        parse_fails("firecracker-aarch64-legacy:1G,hotplug=1G", -EINVAL,
                    "firecracker-aarch64-legacy: hotplug: only Firecracker v1.14.0+ layouts "
                    "(firecracker-x86_64, firecracker-aarch64) have a virtio-mem region, not "
                    "firecracker-aarch64-legacy");
}

/* v1.14.0+: the virtio-mem region follows DRAM in the memory file. */
static void test_firecracker_hotplug(void **state)
{
        struct rh_layout *l = parse_ok("firecracker:1G,hotplug=2G");

        assert_int_equal(rh_layout_n_regions(l), 2);
        expect_region(l, 0, 0, 1 * GiB, 0);
        expect_region(l, 1, 512 * GiB, 2 * GiB, 1 * GiB);
        assert_int_equal(rh_layout_file_size(l), 3 * GiB);
        expect_offset(l, 512 * GiB + 4096, 4096, 1 * GiB + 4096);
        expect_fault(l, 1 * GiB, 1, "gpa 0x40000000 is in a hole (no RAM between 0x40000000 and 0x8000000000)");
        expect_fault(l, 514 * GiB, 1, "gpa 0x8080000000 is past the end of guest RAM (0x8080000000)");
        rh_layout_free(l);

        /* Without the option, a gpa there says why it fails. */
        l = parse_ok("firecracker:1G");
        expect_fault(l, 512 * GiB, 1, "gpa 0x8000000000 is past the end of guest RAM (0x40000000); "
                                      "Firecracker v1.14.0+ puts virtio-mem memory there, after DRAM in the "
                                      "memory file: add ,hotplug=SIZE[@GPA] to the layout");
        rh_layout_free(l);

        l = parse_ok("firecracker-aarch64:4G,hotplug=512M@0x8040000000");
        assert_int_equal(rh_layout_n_regions(l), 2);
        expect_region(l, 0, 2 * GiB, 4 * GiB, 0);
        expect_region(l, 1, 513 * GiB, 512 * MiB, 4 * GiB);
        expect_fault(l, 512 * GiB, 1, "gpa 0x8000000000 is in a hole (no RAM between 0x180000000 and 0x8040000000)");
        rh_layout_free(l);

        parse_fails("firecracker:300G,hotplug=1G", -EINVAL,
                    "firecracker: hotplug: region 0x8000000000-0x8040000000 overlaps or precedes DRAM (ends at "
                    "0x8b40000000); give its base from the snapshot: hotplug=SIZE@GPA");
        parse_fails("firecracker:1G,hotplug=1G@0x8001000000", -EINVAL,
                    "firecracker: hotplug: gpa 0x8001000000 is not a multiple of 128 MiB (Firecracker aligns "
                    "the virtio-mem region to its slot size)");
        parse_fails("firecracker:1G,hotplug=0", -EINVAL, "firecracker: hotplug: size 0");
        parse_fails("firecracker:1G,hotplug=", -EINVAL, "hotplug \"\": expected a number");
        parse_fails("firecracker:1G,hotplug=1G@", -EINVAL, "hotplug \"\": expected a number");
        parse_fails("firecracker:1G,hotplug=1G,x", -EINVAL,
                    "firecracker: trailing \",x\" after hotplug=SIZE[@GPA]");
        parse_fails("firecracker:1G,hotplog=1G", -EINVAL,
                    "firecracker: trailing \",hotplog=1G\" after the memory size");
        parse_fails("firecracker:1G,hotplug=64T", -EINVAL,
                    "firecracker: hotplug: DRAM and virtio-mem add up to more than 0x400000000000 bytes");
        parse_fails("firecracker:1G,hotplug=4G@0xffffff0000000", -EINVAL,
                    "firecracker: hotplug: 0xffffff0000000+0x100000000 ends past gpa 0x10000000000000");
}

static void test_qemu_q35(void **state)
{
        struct rh_layout *l;

        /* Below 0xb0000000 everything stays low. */
        l = parse_ok("qemu-q35:2815M");
        assert_string_equal(rh_layout_kind(l), "qemu-q35");
        assert_int_equal(rh_layout_n_regions(l), 1);
        expect_region(l, 0, 0, 2815 * MiB, 0);
        rh_layout_free(l);

        /* At 0xb0000000 (2816 MiB) q35 drops to 2 GiB below 4G. */
        l = parse_ok("qemu-q35:0xb0000000");
        assert_int_equal(rh_layout_n_regions(l), 2);
        expect_region(l, 0, 0, 0x80000000, 0);
        expect_region(l, 1, 4 * GiB, 0x30000000, 0x80000000);
        expect_offset(l, 0x7fffffff, 1, 0x7fffffff);
        expect_fault(l, 0x80000000, 1,
                     "gpa 0x80000000 is in a hole (no RAM between 0x80000000 and 0x100000000)");
        expect_offset(l, 0x100000000, 1, 0x80000000);
        expect_offset(l, 0x12fffffff, 1, 0xafffffff);
        expect_fault(l, 0x130000000, 1, "gpa 0x130000000 is past the end of guest RAM (0x130000000)");
        rh_layout_free(l);

        l = parse_ok("qemu-q35:4G");
        expect_region(l, 0, 0, 2 * GiB, 0);
        expect_region(l, 1, 4 * GiB, 2 * GiB, 2 * GiB);
        rh_layout_free(l);
}

static void test_qemu_pc(void **state)
{
        struct rh_layout *l;

        l = parse_ok("qemu-pc:3583M");
        assert_int_equal(rh_layout_n_regions(l), 1);
        expect_region(l, 0, 0, 3583 * MiB, 0);
        rh_layout_free(l);

        /* At 0xe0000000 the split snaps to 3 GiB (gigabyte alignment). */
        l = parse_ok("qemu-pc:3584M");
        assert_string_equal(rh_layout_kind(l), "qemu-pc");
        assert_int_equal(rh_layout_n_regions(l), 2);
        expect_region(l, 0, 0, 3 * GiB, 0);
        expect_region(l, 1, 4 * GiB, 512 * MiB, 3 * GiB);
        expect_fault(l, 0xc0000000, 1,
                     "gpa 0xc0000000 is in a hole (no RAM between 0xc0000000 and 0x100000000)");
        expect_offset(l, 0x11fffffff, 1, 0xdfffffff);
        expect_fault(l, 0x120000000, 1, "gpa 0x120000000 is past the end of guest RAM (0x120000000)");
        rh_layout_free(l);

        l = parse_ok("qemu-pc:6G");
        expect_region(l, 1, 4 * GiB, 3 * GiB, 3 * GiB);
        rh_layout_free(l);
}

static void test_regions(void **state)
{
        struct rh_layout *l = parse_ok("regions:0:1M,0x100000000:0x200000,0x200000000:4K");

        assert_string_equal(rh_layout_kind(l), "regions");
        assert_int_equal(rh_layout_n_regions(l), 3);
        expect_region(l, 0, 0, 1 * MiB, 0);
        expect_region(l, 1, 4 * GiB, 2 * MiB, 1 * MiB);
        expect_region(l, 2, 8 * GiB, 4 * KiB, 3 * MiB);
        expect_fault(l, 1 * MiB, 1, "gpa 0x100000 is in a hole (no RAM between 0x100000 and 0x100000000)");
        expect_offset(l, 8 * GiB + 4095, 1, 3 * MiB + 4095);
        expect_fault(l, 8 * GiB + 4096, 1, "gpa 0x200001000 is past the end of guest RAM (0x200001000)");
        rh_layout_free(l);

        /* Bare list, no prefix; region not at 0. */
        l = parse_ok("0x1000:0x1000");
        expect_region(l, 0, 0x1000, 0x1000, 0);
        expect_fault(l, 0, 1, "gpa 0x0 is in a hole (no RAM between 0x0 and 0x1000)");
        rh_layout_free(l);
}

static void test_region_errors(void **state)
{
        char spec[64 * 24 + 16];
        size_t n = 0;

        parse_fails("regions:", -EINVAL, "regions: region 0 \"\": expected a number");
        parse_fails("regions:0", -EINVAL, "regions: region 0: expected GPA:SIZE");
        parse_fails("regions:0:1M:5", -EINVAL, "regions: region 0: expected GPA:SIZE");
        parse_fails("regions:0:1M,", -EINVAL, "regions: region 1 \"\": expected a number");
        parse_fails("regions:0:1Q", -EINVAL, "regions: region 0 \"1Q\": unexpected 'Q'");
        parse_fails("regions:0x:1M", -EINVAL, "regions: region 0 \"0x:1M\": expected a number");
        parse_fails("regions:0:0", -EINVAL, "regions: region 0 at gpa 0x0: size 0");
        parse_fails("regions:0:1M,0x80000:1M", -EINVAL,
                    "regions: region 1 at gpa 0x80000 overlaps or precedes region 0 (0x0-0x100000)");
        parse_fails("regions:0x200000:1M,0:1M", -EINVAL,
                    "regions: region 1 at gpa 0x0 overlaps or precedes region 0 (0x200000-0x300000)");
        parse_fails("regions:0xffffffffff000:0x2000", -EINVAL,
                    "regions: region 0 0xffffffffff000+0x2000 ends past gpa 0x10000000000000");
        parse_fails("regions:0:99999999999999999999", -ERANGE,
                    "regions: region 0 \"99999999999999999999\": number too large");
        parse_fails("regions:0:0xffffffffffffT", -ERANGE,
                    "regions: region 0 \"0xffffffffffffT\": number too large");
        parse_fails("regions:0:64T,0x400000000000:1", -EINVAL,
                    "regions: regions add up to more than 0x400000000000 bytes");

        for (int i = 0; i < 65; i++)
                n += (size_t)snprintf(spec + n, sizeof(spec) - n, "%s0x%x:4K", i ? "," : "", i * 0x2000);
        parse_fails(spec, -E2BIG, "regions: more than 64 regions");
}

static void test_spec_errors(void **state)
{
        parse_fails("", -EINVAL, "empty layout spec");
        parse_fails("firecracker:", -EINVAL, "firecracker \"\": expected a number");
        parse_fails("firecracker:4X", -EINVAL, "firecracker \"4X\": unexpected 'X'");
        parse_fails("firecracker:4G:1", -EINVAL, "firecracker: trailing \":1\" after the memory size");
        parse_fails("firecracker:0", -EINVAL, "firecracker-x86_64: memory size 0");
        parse_fails("qemu-q35:65T", -EINVAL, "qemu-q35: memory size 0x410000000000 exceeds 0x400000000000");
        parse_fails("qemu-pc:99999999999999999999", -ERANGE,
                    "qemu-pc \"99999999999999999999\": number too large");
        parse_fails("xen:1G", -EINVAL,
                    "unknown layout \"xen:1G\" (firecracker[-x86_64|-aarch64]:SIZE[,hotplug=SIZE], "
                    "firecracker-{x86_64,aarch64}-legacy:SIZE, qemu-q35:SIZE, qemu-pc:SIZE, "
                    "cloud-hypervisor:PATH, regions:GPA:SIZE,..., flat)");
        parse_fails("qemu-q35:1G@5", -EINVAL, "qemu-q35: trailing \"@5\" after the memory size");
        parse_fails("regions:0:1M@5", -EINVAL, "regions: region 0: expected GPA:SIZE");
        parse_fails("cloud-hypervisor:", -EINVAL, "cloud-hypervisor: missing path to state.json");
        parse_fails("cloud-hypervisor:/nonexistent/state.json", -ENOENT,
                    "/nonexistent/state.json: No such file or directory");
}

static void test_flat(void **state)
{
        struct rh_layout *l = parse_ok("flat");
        struct rh_error err = {};
        uint64_t gpa = 0;

        assert_string_equal(rh_layout_kind(l), "flat");
        assert_int_equal(rh_layout_file_size(l), UINT64_MAX);
        expect_offset(l, 0x123456789000, 4096, 0x123456789000);
        expect_fault(l, UINT64_MAX - 1, 4, "gpa range 0xfffffffffffffffe+0x4 wraps around");
        assert_int_equal(rh_layout_offset_to_gpa(l, 77, &gpa, &err), 0);
        assert_int_equal(gpa, 77);
        rh_layout_free(l);
}

/* ---- Cloud Hypervisor ---- */

/* A state.json shaped like Cloud Hypervisor's: the memory manager's state is a JSON string. */
static char *ch_state(const char *inner_escaped)
{
        char *s = NULL;

        assert_true(asprintf(&s,
                             "{\"snapshots\":{\"cpu-manager\":{\"snapshots\":{},\"snapshot_data\":{\"state\":"
                             "\"{}\"}},"
                             "\"memory-manager\":{\"snapshots\":{},\"snapshot_data\":{\"state\":\"%s\"}}},"
                             "\"snapshot_data\":null}",
                             inner_escaped) > 0);
        return s;
}

static void ch_fails(const char *json, int code, const char *msg)
{
        struct rh_layout *l = NULL;
        struct rh_error err = {};

        assert_int_equal(rh_layout_new_cloud_hypervisor(json, strlen(json), &l, &err), code);
        assert_null(l);
        assert_string_equal(err.msg, msg);
}

static void test_cloud_hypervisor_good(void **state)
{
        char *json =
                ch_state("{\\\"memory_ranges\\\":{\\\"data\\\":[{\\\"gpa\\\":0,\\\"length\\\":3221225472},"
                         "{\\\"gpa\\\":4294967296,\\\"length\\\":1073741824}]},\\\"boot_ram\\\":4294967296}");
        struct rh_layout *l = NULL;
        struct rh_error err = {};

        assert_int_equal(rh_layout_new_cloud_hypervisor(json, strlen(json), &l, &err), 0);
        assert_string_equal(rh_layout_kind(l), "cloud-hypervisor");
        assert_int_equal(rh_layout_n_regions(l), 2);
        expect_region(l, 0, 0, 3 * GiB, 0);
        expect_region(l, 1, 4 * GiB, 1 * GiB, 3 * GiB);
        expect_offset(l, 4 * GiB + 8192, 4096, 3 * GiB + 8192);
        expect_fault(l, 3 * GiB, 1,
                     "gpa 0xc0000000 is in a hole (no RAM between 0xc0000000 and 0x100000000)");
        rh_layout_free(l);
        free(json);
}

static void test_cloud_hypervisor_path(void **state)
{
        char dir[] = "/tmp/rh-test-layout-XXXXXX", path[64];
        char *json =
                ch_state("{\\\"memory_ranges\\\":{\\\"data\\\":[{\\\"gpa\\\":0,\\\"length\\\":1048576}]}}");
        struct rh_layout *l;
        FILE *f;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/state.json", dir);
        f = fopen(path, "w");
        assert_non_null(f);
        fputs(json, f);
        fclose(f);

        snprintf(path, sizeof(path), "cloud-hypervisor:%s", dir); /* the snapshot directory */
        l = parse_ok(path);
        expect_region(l, 0, 0, 1 * MiB, 0);
        rh_layout_free(l);
        snprintf(path, sizeof(path), "cloud-hypervisor:%s/state.json", dir);
        l = parse_ok(path);
        assert_int_equal(rh_layout_file_size(l), 1 * MiB);
        rh_layout_free(l);

        snprintf(path, sizeof(path), "%s/state.json", dir);
        f = fopen(path, "w");
        fputs("{\"snapshots\":{}}", f);
        fclose(f);
        {
                char spec[128], msg[256];
                snprintf(spec, sizeof(spec), "cloud-hypervisor:%s", path);
                snprintf(msg, sizeof(msg), "%s: state.json: no snapshots.\"memory-manager\" object", path);
                parse_fails(spec, -EINVAL, msg);
        }
        unlink(path);
        rmdir(dir);
        free(json);
}

static void test_cloud_hypervisor_malformed(void **state)
{
        char *json;

        ch_fails("", -EINVAL, "state.json: byte 0: expected an object");
        ch_fails("{\"snapshots\": [", -EINVAL, "state.json: byte 15: expected a value");
        ch_fails("{\"snapshots\":{}}", -EINVAL, "state.json: no snapshots.\"memory-manager\" object");
        ch_fails("{\"snapshots\":{\"memory-manager\":{\"snapshot_data\":null}}}", -EINVAL,
                 "state.json: memory-manager has no snapshot_data object");
        ch_fails("{\"snapshots\":{\"memory-manager\":{\"snapshot_data\":{\"state\":{}}}}}", -EINVAL,
                 "state.json: memory-manager snapshot_data.state is not a string");
        ch_fails("{\"snapshots\":{\"memory-manager\":{\"snapshot_data\":{\"state\":\"{}\",\"state\":\"{}\"}}}}",
                 -EINVAL, "state.json: byte 70: duplicate member \"state\"");
        ch_fails("{\"a\":1,}", -EINVAL, "state.json: byte 7: expected a member name");
        ch_fails("{\"a\":01}", -EINVAL, "state.json: byte 6: expected ','");
        ch_fails("{\"a\":\"\\x\"}", -EINVAL, "state.json: byte 7: invalid escape in a string");
        ch_fails("{\"a\":\"\\ud800\"}", -EINVAL, "state.json: byte 12: lone high surrogate in a string");
        ch_fails("{\"a\":\"\t\"}", -EINVAL, "state.json: byte 6: control character in a string");
        ch_fails("{\"a\":tru}", -EINVAL, "state.json: byte 5: expected a value");
        ch_fails("{} x", -EINVAL, "state.json: byte 3: trailing data after the document");
        ch_fails("{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]"
                 "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
                 -EINVAL, "state.json: byte 68: nested too deeply");

        json = ch_state("not json");
        ch_fails(json, -EINVAL, "state.json: memory-manager state: byte 0: expected an object");
        free(json);
        json = ch_state("{}");
        ch_fails(json, -EINVAL, "state.json: memory-manager state has no memory_ranges.data array");
        free(json);
        json = ch_state("{\\\"memory_ranges\\\":{\\\"data\\\":[]}} ,");
        ch_fails(json, -EINVAL, "state.json: memory-manager state: byte 30: trailing data after the document");
        free(json);
        json = ch_state("{\\\"memory_ranges\\\":{\\\"data\\\":[]}}");
        ch_fails(json, -EINVAL, "state.json: memory_ranges.data is empty");
        free(json);
        json = ch_state("{\\\"memory_ranges\\\":{\\\"data\\\":[7]}}");
        ch_fails(json, -EINVAL, "state.json: memory range 0 is not an object");
        free(json);
        json = ch_state("{\\\"memory_ranges\\\":{\\\"data\\\":[{\\\"gpa\\\":0}]}}");
        ch_fails(json, -EINVAL, "state.json: memory range 0: \"length\" missing or not an integer");
        free(json);
        json = ch_state("{\\\"memory_ranges\\\":{\\\"data\\\":[{\\\"gpa\\\":\\\"0\\\",\\\"length\\\":1}]}}");
        ch_fails(json, -EINVAL, "state.json: memory range 0: \"gpa\" missing or not an integer");
        free(json);
        json = ch_state("{\\\"memory_ranges\\\":{\\\"data\\\":[{\\\"gpa\\\":-4096,\\\"length\\\":4096}]}}");
        ch_fails(json, -EINVAL, "state.json: memory range 0: \"gpa\" is negative");
        free(json);
        json = ch_state("{\\\"memory_ranges\\\":{\\\"data\\\":[{\\\"gpa\\\":4096.0,\\\"length\\\":4096}]}}");
        ch_fails(json, -EINVAL, "state.json: memory range 0: \"gpa\" is not an integer");
        free(json);
        json = ch_state("{\\\"memory_ranges\\\":{\\\"data\\\":[{\\\"gpa\\\":0,\\\"length\\\":18446744073709551616}]}}");
        ch_fails(json, -EINVAL, "state.json: memory range 0: \"length\" does not fit in 64 bits");
        free(json);
        /* 2^64 - 1 reads exactly, and then fails the gpa cap. */
        json = ch_state("{\\\"memory_ranges\\\":{\\\"data\\\":[{\\\"gpa\\\":18446744073709551615,\\\"length\\\":1}]}}");
        ch_fails(json, -EINVAL,
                 "state.json: memory range 0 0xffffffffffffffff+0x1 ends past gpa 0x10000000000000");
        free(json);
        json = ch_state("{\\\"memory_ranges\\\":{\\\"data\\\":[{\\\"gpa\\\":0,\\\"gpa\\\":1,\\\"length\\\":1}]}}");
        ch_fails(json, -EINVAL, "state.json: memory-manager state: byte 41: duplicate member \"gpa\"");
        free(json);
        json = ch_state("{\\\"memory_ranges\\\":{\\\"data\\\":[{\\\"gpa\\\":0,\\\"length\\\":0}]}}");
        ch_fails(json, -EINVAL, "state.json: memory range 0 at gpa 0x0: length 0");
        free(json);
        /* Overlaps are found on a sorted copy and named by their place in the list. */
        json = ch_state("{\\\"memory_ranges\\\":{\\\"data\\\":[{\\\"gpa\\\":0,\\\"length\\\":8192},"
                        "{\\\"gpa\\\":1048576,\\\"length\\\":4096},{\\\"gpa\\\":4096,\\\"length\\\":4096}]}}");
        ch_fails(json, -EINVAL,
                 "state.json: memory range 2 (0x1000-0x2000) overlaps memory range 0 (0x0-0x2000)");
        free(json);
        json = ch_state("{\\\"memory_ranges\\\":{\\\"data\\\":[{\\\"gpa\\\":0,\\\"length\\\":4096}]},"
                        "\\\"guest_ram_mappings\\\":[{\\\"slot\\\":0,\\\"size\\\":4096}]}");
        ch_fails(json, -EINVAL, "state.json: guest RAM mapping 0: \"gpa\" missing");
        free(json);
        json = ch_state("{\\\"memory_ranges\\\":{\\\"data\\\":[{\\\"gpa\\\":0,\\\"length\\\":4096}]},"
                        "\\\"guest_ram_mappings\\\":[{\\\"gpa\\\":0,\\\"size\\\":4096,\\\"virtio_mem\\\":1}]}");
        ch_fails(json, -EINVAL, "state.json: guest RAM mapping 0: \"virtio_mem\" is not a boolean");
        free(json);
        json = ch_state("{\\\"memory_ranges\\\":{\\\"data\\\":[{\\\"gpa\\\":0,\\\"length\\\":4096}]},"
                        "\\\"guest_ram_mappings\\\":{}}");
        ch_fails(json, -EINVAL, "state.json: guest_ram_mappings is not an array");
        free(json);
}

/*
 * state.json exactly as Cloud Hypervisor v39..v53 serializes it (serde_json,
 * compact, struct field order): the VM snapshot's components in a BTreeMap,
 * each component's state a JSON string. The memory manager's state is
 * MemoryManagerSnapshotData { memory_ranges: { data: [MemoryRange { gpa,
 * length }] }, guest_ram_mappings: [GuestRamMapping { slot, gpa, size,
 * zone_id, virtio_mem, file_offset }], start_of_device_area, boot_ram,
 * current_ram, arch_mem_regions: [ArchMemRegion { base, size, r_type }],
 * hotplug_slots: [HotPlugState { base, length, active, inserting, removing
 * }] (HOTPLUG_COUNT = 8), next_memory_slot, selected_slot, next_hotplug_slot }.
 */
struct ch_range {
        uint64_t gpa, length;
};

struct ch_mapping {
        unsigned slot;
        uint64_t gpa, size;
        const char *zone;
        bool virtio_mem;
        uint64_t file_offset;
};

/* arch::arch_memory_regions(): x86_64 and aarch64, with the usize::MAX "RAM after the gap". */
static const char ch_arch_x86[] =
        "[{\"base\":0,\"size\":3221225472,\"r_type\":\"Ram\"},"
        "{\"base\":4294967296,\"size\":18446744073709551615,\"r_type\":\"Ram\"},"
        "{\"base\":3221225472,\"size\":671088640,\"r_type\":\"SubRegion\"},"
        "{\"base\":3892314112,\"size\":268435456,\"r_type\":\"Reserved\"}]";
static const char ch_arch_arm[] =
        "[{\"base\":0,\"size\":268435456,\"r_type\":\"Reserved\"},"
        "{\"base\":268435456,\"size\":536870912,\"r_type\":\"SubRegion\"},"
        "{\"base\":805306368,\"size\":268435456,\"r_type\":\"Reserved\"},"
        "{\"base\":1073741824,\"size\":3154116608,\"r_type\":\"Ram\"},"
        "{\"base\":4294967296,\"size\":18446744073709551615,\"r_type\":\"Ram\"},"
        "{\"base\":4227858432,\"size\":67108864,\"r_type\":\"Reserved\"}]";

static char *ch_snapshot(const struct ch_range *ranges, size_t n_ranges, const struct ch_mapping *maps,
                         size_t n_maps, const char *arch, uint64_t boot_ram, uint64_t device_area)
{
        char *inner = NULL, *outer = NULL, *esc;
        size_t len = 0, k = 0;
        FILE *f = open_memstream(&inner, &len);

        assert_non_null(f);
        fputs("{\"memory_ranges\":{\"data\":[", f);
        for (size_t i = 0; i < n_ranges; i++)
                fprintf(f, "%s{\"gpa\":%" PRIu64 ",\"length\":%" PRIu64 "}", i ? "," : "", ranges[i].gpa,
                        ranges[i].length);
        fputs("]},\"guest_ram_mappings\":[", f);
        for (size_t i = 0; i < n_maps; i++)
                fprintf(f,
                        "%s{\"slot\":%u,\"gpa\":%" PRIu64 ",\"size\":%" PRIu64
                        ",\"zone_id\":\"%s\",\"virtio_mem\":%s,\"file_offset\":%" PRIu64 "}",
                        i ? "," : "", maps[i].slot, maps[i].gpa, maps[i].size, maps[i].zone,
                        maps[i].virtio_mem ? "true" : "false", maps[i].file_offset);
        fprintf(f,
                "],\"start_of_device_area\":%" PRIu64 ",\"boot_ram\":%" PRIu64 ",\"current_ram\":%" PRIu64
                ",\"arch_mem_regions\":%s,\"hotplug_slots\":[",
                device_area, boot_ram, boot_ram, arch);
        for (int i = 0; i < 8; i++)
                fprintf(f, "%s{\"base\":0,\"length\":0,\"active\":false,\"inserting\":false,\"removing\":false}",
                        i ? "," : "");
        fprintf(f, "],\"next_memory_slot\":%zu,\"selected_slot\":0,\"next_hotplug_slot\":0}", n_maps);
        assert_int_equal(fclose(f), 0);

        esc = malloc(2 * len + 1);
        assert_non_null(esc);
        for (size_t i = 0; i < len; i++) {
                if (inner[i] == '"' || inner[i] == '\\')
                        esc[k++] = '\\';
                esc[k++] = inner[i];
        }
        esc[k] = '\0';
        assert_true(asprintf(&outer,
                             "{\"snapshots\":{\"cpu-manager\":{\"snapshots\":{},\"snapshot_data\":{\"state\":"
                             "\"{\\\"cpus\\\":[]}\"}},"
                             "\"device-manager\":{\"snapshots\":{},\"snapshot_data\":{\"state\":\"{}\"}},"
                             "\"memory-manager\":{\"snapshots\":{},\"snapshot_data\":{\"state\":\"%s\"}}},"
                             "\"snapshot_data\":{\"state\":\"{\\\"common_cpuid\\\":[]}\"}}",
                             esc) > 0);
        free(esc);
        free(inner);
        return outer;
}

static struct rh_layout *ch_ok(const char *json)
{
        struct rh_layout *l = NULL;
        struct rh_error err = {};

        if (rh_layout_new_cloud_hypervisor(json, strlen(json), &l, &err) < 0)
                fail_msg("state.json: %s", err.msg);
        assert_string_equal(rh_layout_kind(l), "cloud-hypervisor");
        return l;
}

/* x86_64, one zone (mem0) of 4 GiB: split at 3 GiB by the 32-bit device hole. */
static void test_ch_one_zone_4g(void **state)
{
        const struct ch_range ranges[] = {{0, 3 * GiB}, {4 * GiB, 1 * GiB}};
        const struct ch_mapping maps[] = {{0, 0, 3 * GiB, "mem0", false, 0}, {1, 4 * GiB, 1 * GiB, "mem0", false, 0}};
        char *json = ch_snapshot(ranges, 2, maps, 2, ch_arch_x86, 4 * GiB, 5 * GiB);
        struct rh_layout *l = ch_ok(json);
        struct rh_error err = {};
        uint64_t gpa;

        assert_non_null(strstr(json, "\\\"size\\\":18446744073709551615")); /* the value jansson refused */
        assert_int_equal(rh_layout_n_regions(l), 2);
        expect_region(l, 0, 0, 3 * GiB, 0);
        expect_region(l, 1, 4 * GiB, 1 * GiB, 3 * GiB);
        assert_int_equal(rh_layout_file_size(l), 4 * GiB);
        expect_offset(l, 3 * GiB - 4096, 4096, 3 * GiB - 4096);
        expect_fault(l, 3 * GiB, 1, "gpa 0xc0000000 is in a hole (no RAM between 0xc0000000 and 0x100000000)");
        expect_offset(l, 4 * GiB, 4096, 3 * GiB);
        expect_fault(l, 5 * GiB, 1, "gpa 0x140000000 is past the end of guest RAM (0x140000000)");
        assert_int_equal(rh_layout_offset_to_gpa(l, 3 * GiB + 5, &gpa, &err), 0);
        assert_int_equal(gpa, 4 * GiB + 5);
        rh_layout_free(l);
        free(json);
}

/*
 * Two zones of 2 GiB, listed high-first (hash-map order): mem1 holds
 * [2G,3G) and [4G,5G), mem0 holds [0,2G). The file follows the list.
 */
static void test_ch_two_zones_high_first(void **state)
{
        const struct ch_range ranges[] = {{2 * GiB, 1 * GiB}, {4 * GiB, 1 * GiB}, {0, 2 * GiB}};
        const struct ch_mapping maps[] = {{0, 2 * GiB, 1 * GiB, "mem1", false, 0},
                                          {1, 4 * GiB, 1 * GiB, "mem1", false, 1 * GiB},
                                          {2, 0, 2 * GiB, "mem0", false, 0}};
        char *json = ch_snapshot(ranges, 3, maps, 3, ch_arch_x86, 4 * GiB, 5 * GiB);
        struct rh_layout *l = ch_ok(json);
        struct rh_error err = {};
        uint64_t gpa;

        assert_int_equal(rh_layout_n_regions(l), 3);
        /* regions in gpa order, each at its place in the list */
        expect_region(l, 0, 0, 2 * GiB, 2 * GiB);
        expect_region(l, 1, 2 * GiB, 1 * GiB, 0);
        expect_region(l, 2, 4 * GiB, 1 * GiB, 1 * GiB);
        assert_int_equal(rh_layout_file_size(l), 4 * GiB);
        expect_offset(l, 0, 4096, 2 * GiB);
        expect_offset(l, 2 * GiB - 1, 1, 4 * GiB - 1);
        expect_offset(l, 2 * GiB, 4096, 0);
        expect_offset(l, 4 * GiB + 0x1000, 8, 1 * GiB + 0x1000);
        /* adjacent in gpa, not in the file: a range across 2 GiB is refused */
        expect_fault(l, 2 * GiB - 8, 16, "gpa range 0x7ffffff8+0x10 crosses the end of RAM region 0x0-0x80000000");
        expect_fault(l, 3 * GiB, 1, "gpa 0xc0000000 is in a hole (no RAM between 0xc0000000 and 0x100000000)");
        assert_int_equal(rh_layout_offset_to_gpa(l, 0, &gpa, &err), 0);
        assert_int_equal(gpa, 2 * GiB);
        assert_int_equal(rh_layout_offset_to_gpa(l, 2 * GiB, &gpa, &err), 0);
        assert_int_equal(gpa, 0);
        assert_int_equal(rh_layout_offset_to_gpa(l, 4 * GiB, &gpa, &err), -EFAULT);
        rh_layout_free(l);
        free(json);
}

/*
 * One 1 GiB zone with a 2 GiB virtio-mem region at 4 GiB (RAM ends below
 * 3 GiB, so the region starts at RAM_64BIT_START), two blocks plugged: the
 * plugged ranges come first in the list, then the zone's region.
 */
static void test_ch_virtio_mem(void **state)
{
        const struct ch_range ranges[] = {{4 * GiB, 256 * MiB}, {5 * GiB, 128 * MiB}, {0, 1 * GiB}};
        const struct ch_mapping maps[] = {{0, 0, 1 * GiB, "mem0", false, 0}, {1, 4 * GiB, 2 * GiB, "mem0", true, 0}};
        char *json = ch_snapshot(ranges, 3, maps, 2, ch_arch_x86, 1 * GiB, 6 * GiB);
        struct rh_layout *l = ch_ok(json);

        assert_int_equal(rh_layout_n_regions(l), 3);
        expect_region(l, 0, 0, 1 * GiB, 384 * MiB);
        expect_region(l, 1, 4 * GiB, 256 * MiB, 0);
        expect_region(l, 2, 5 * GiB, 128 * MiB, 256 * MiB);
        assert_int_equal(rh_layout_file_size(l), 1 * GiB + 384 * MiB);
        expect_offset(l, 0x9dee000, 4096, 384 * MiB + 0x9dee000);
        expect_offset(l, 4 * GiB + 4096, 4096, 4096);
        expect_offset(l, 5 * GiB, 4096, 256 * MiB);
        expect_fault(l, 4 * GiB + 256 * MiB, 1,
                     "gpa 0x110000000 is in zone \"mem0\"'s virtio-mem region 0x100000000-0x180000000 but not "
                     "plugged (not in memory-ranges)");
        expect_fault(l, 6 * GiB - 1, 1,
                     "gpa 0x17fffffff is in zone \"mem0\"'s virtio-mem region 0x100000000-0x180000000 but not "
                     "plugged (not in memory-ranges)");
        expect_fault(l, 1 * GiB, 1, "gpa 0x40000000 is in a hole (no RAM between 0x40000000 and 0x100000000)");
        expect_fault(l, 6 * GiB, 1, "gpa 0x180000000 is past the end of guest RAM (0x148000000)");
        rh_layout_free(l);
        free(json);
}

/* aarch64, one zone of 4 GiB: RAM from 1 GiB to 4032 MiB, the rest from 4 GiB. */
static void test_ch_aarch64(void **state)
{
        const struct ch_range ranges[] = {{1 * GiB, 0xbc000000}, {4 * GiB, 0x44000000}};
        const struct ch_mapping maps[] = {{0, 1 * GiB, 0xbc000000, "mem0", false, 0},
                                          {1, 4 * GiB, 0x44000000, "mem0", false, 0}};
        char *json = ch_snapshot(ranges, 2, maps, 2, ch_arch_arm, 4 * GiB, 0x150000000);
        struct rh_layout *l = ch_ok(json);

        assert_int_equal(rh_layout_n_regions(l), 2);
        expect_region(l, 0, 1 * GiB, 0xbc000000, 0);
        expect_region(l, 1, 4 * GiB, 0x44000000, 0xbc000000);
        assert_int_equal(rh_layout_file_size(l), 4 * GiB);
        expect_fault(l, 0, 1, "gpa 0x0 is in a hole (no RAM between 0x0 and 0x40000000)");
        expect_offset(l, 1 * GiB, 4096, 0);
        expect_offset(l, 0xfbfff000, 4096, 0xbbfff000);
        expect_fault(l, 0xfc000000, 1, "gpa 0xfc000000 is in a hole (no RAM between 0xfc000000 and 0x100000000)");
        expect_offset(l, 4 * GiB, 1, 0xbc000000);
        rh_layout_free(l);
        free(json);
}

/*
 * Three zones; mem1 is a shared, hard-linked host file, so its RAM is left
 * out of memory-ranges (the file holds it). A gpa there names the file.
 */
static void test_ch_zone_file(void **state)
{
        const struct ch_range ranges[] = {{2 * GiB, 1 * GiB}, {0, 1 * GiB}};
        const struct ch_mapping maps[] = {{0, 2 * GiB, 1 * GiB, "mem2", false, 0},
                                          {1, 1 * GiB, 1 * GiB, "mem1", false, 0},
                                          {2, 0, 1 * GiB, "mem0", false, 0}};
        static const char config[] =
                "{\"cpus\":{\"boot_vcpus\":1,\"max_vcpus\":1},\"memory\":{\"size\":0,\"mergeable\":false,"
                "\"hotplug_method\":\"Acpi\",\"hotplug_size\":null,\"hotplugged_size\":null,\"shared\":false,"
                "\"hugepages\":false,\"hugepage_size\":null,\"prefault\":false,\"zones\":["
                "{\"id\":\"mem0\",\"size\":1073741824,\"file\":null,\"shared\":false,\"hugepages\":false},"
                "{\"id\":\"mem1\",\"size\":1073741824,\"file\":\"/srv/zones/mem1.img\",\"shared\":true,"
                "\"hugepages\":false},"
                "{\"id\":\"mem2\",\"size\":1073741824,\"file\":null,\"shared\":false,\"hugepages\":false}],"
                "\"thp\":true},\"rate_limit\":18446744073709551615}";
        char *json = ch_snapshot(ranges, 2, maps, 3, ch_arch_x86, 3 * GiB, 4 * GiB);
        char dir[] = "/tmp/rh-test-layout-XXXXXX", path[96], spec[128];
        struct rh_layout *l = ch_ok(json);
        FILE *f;

        expect_region(l, 0, 0, 1 * GiB, 1 * GiB);
        expect_region(l, 1, 2 * GiB, 1 * GiB, 0);
        expect_offset(l, 2 * GiB, 1, 0);
        expect_fault(l, 1 * GiB + 0x5000, 1,
                     "gpa 0x40005000 is RAM backed by zone file of zone \"mem1\" (file offset 0x5000; config.json "
                     "names the file), not in memory-ranges");
        rh_layout_free(l);

        /* From the snapshot directory, config.json gives the file. */
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/state.json", dir);
        f = fopen(path, "w");
        assert_non_null(f);
        fputs(json, f);
        fclose(f);
        snprintf(path, sizeof(path), "%s/config.json", dir);
        f = fopen(path, "w");
        assert_non_null(f);
        fputs(config, f);
        fclose(f);
        snprintf(spec, sizeof(spec), "cloud-hypervisor:%s", dir);
        l = parse_ok(spec);
        expect_fault(l, 1 * GiB + 0x5000, 1,
                     "gpa 0x40005000 is RAM backed by zone file /srv/zones/mem1.img (zone \"mem1\", file offset "
                     "0x5000), not in memory-ranges");
        expect_fault(l, 2 * GiB - 1, 1,
                     "gpa 0x7fffffff is RAM backed by zone file /srv/zones/mem1.img (zone \"mem1\", file offset "
                     "0x3fffffff), not in memory-ranges");
        expect_offset(l, 0, 1, 1 * GiB);
        rh_layout_free(l);

        /* A config.json that does not parse only loses the file name. */
        f = fopen(path, "w");
        assert_non_null(f);
        fputs("{\"memory\":", f);
        fclose(f);
        l = parse_ok(spec);
        expect_fault(l, 1 * GiB, 1,
                     "gpa 0x40000000 is RAM backed by zone file of zone \"mem1\" (file offset 0x0; config.json "
                     "names the file), not in memory-ranges");
        rh_layout_free(l);
        unlink(path);
        snprintf(path, sizeof(path), "%s/state.json", dir);
        unlink(path);
        rmdir(dir);
        free(json);
}

static void test_cloud_hypervisor_limits(void **state)
{
        struct rh_layout *l = NULL;
        struct rh_error err = {};
        char inner[65 * 64 + 64], *json;
        size_t n = 0;

        n += (size_t)snprintf(inner + n, sizeof(inner) - n, "{\\\"memory_ranges\\\":{\\\"data\\\":[");
        for (int i = 0; i < 65; i++)
                n += (size_t)snprintf(inner + n, sizeof(inner) - n, "%s{\\\"gpa\\\":%d,\\\"length\\\":4096}",
                                      i ? "," : "", i * 8192);
        snprintf(inner + n, sizeof(inner) - n, "]}}");
        json = ch_state(inner);
        ch_fails(json, -E2BIG, "state.json: 65 memory ranges, at most 64");
        free(json);

        assert_int_equal(rh_layout_new_cloud_hypervisor("{}", RH_LAYOUT_STATE_JSON_MAX + 1, &l, &err),
                         -EFBIG);
        assert_string_equal(err.msg, "state.json: 16777217 bytes, more than 16777216");
        assert_null(l);
}

static void test_new_regions_direct(void **state)
{
        const struct rh_region regs[] = {
                {.gpa = 0x100000, .size = 0x100000, .offset = 999}, /* offset ignored */
                {.gpa = 0x300000, .size = 0x1000, .offset = 0},
        };
        struct rh_layout *l = NULL;
        struct rh_error err = {};
        uint64_t gpa;

        assert_int_equal(rh_layout_new_regions(regs, 2, &l, &err), 0);
        expect_region(l, 0, 0x100000, 0x100000, 0);
        expect_region(l, 1, 0x300000, 0x1000, 0x100000);
        assert_int_equal(rh_layout_offset_to_gpa(l, 0x100000, &gpa, &err), 0);
        assert_int_equal(gpa, 0x300000);
        assert_int_equal(rh_layout_offset_to_gpa(l, 0x101000, &gpa, &err), -EFAULT);
        assert_string_equal(err.msg, "file offset 0x101000 is past the end of guest RAM (0x101000 bytes)");
        rh_layout_free(l);
        l = NULL;
        assert_int_equal(rh_layout_new_regions(regs, 0, &l, &err), -EINVAL);
        assert_string_equal(err.msg, "no memory regions");
        assert_int_equal(rh_layout_new_regions(regs, 65, &l, &err), -E2BIG);
        assert_string_equal(err.msg, "65 memory regions, at most 64");
        assert_null(l);
        assert_null(rh_layout_free(NULL));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_firecracker_x86_small),
                cmocka_unit_test(test_firecracker_x86_exactly_3g),
                cmocka_unit_test(test_firecracker_x86_hole),
                cmocka_unit_test(test_firecracker_x86_mmio64_gap),
                cmocka_unit_test(test_firecracker_legacy),
                cmocka_unit_test(test_firecracker_aarch64),
                cmocka_unit_test(test_firecracker_aarch64_legacy),
                cmocka_unit_test(test_firecracker_hotplug),
                cmocka_unit_test(test_qemu_q35),
                cmocka_unit_test(test_qemu_pc),
                cmocka_unit_test(test_regions),
                cmocka_unit_test(test_region_errors),
                cmocka_unit_test(test_spec_errors),
                cmocka_unit_test(test_flat),
                cmocka_unit_test(test_cloud_hypervisor_good),
                cmocka_unit_test(test_cloud_hypervisor_path),
                cmocka_unit_test(test_cloud_hypervisor_malformed),
                cmocka_unit_test(test_cloud_hypervisor_limits),
                cmocka_unit_test(test_ch_one_zone_4g),
                cmocka_unit_test(test_ch_two_zones_high_first),
                cmocka_unit_test(test_ch_virtio_mem),
                cmocka_unit_test(test_ch_aarch64),
                cmocka_unit_test(test_ch_zone_file),
                cmocka_unit_test(test_new_regions_direct),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
