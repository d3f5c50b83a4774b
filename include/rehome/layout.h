/* SPDX-License-Identifier: MIT */
/*
 * Guest-physical address -> memory-file offset, for the memory files each
 * VMM writes or maps: Firecracker (x86_64, aarch64), Cloud Hypervisor
 * (memory-ranges from state.json), QEMU pc/q35 memory-backend-file, and an
 * explicit region list for anything else. docs/LAYOUTS.md gives every
 * figure and how it was verified.
 *
 * A layout is a list of at most RH_LAYOUT_MAX_REGIONS regions {gpa, size,
 * file offset} in ascending gpa order; the regions of one layout never
 * overlap, in guest-physical space or in the file, and together fill the
 * file from offset 0 without gaps (in gpa order for every VMM except Cloud
 * Hypervisor, whose file follows its own list order). Lookups are O(number
 * of regions), independent of memory size.
 */
#ifndef REHOME_LAYOUT_H
#define REHOME_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rehome/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Exported from librehome.so (built with -fvisibility=hidden; docs/ABI.md). */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define RH_LAYOUT_MAX_REGIONS 64
/* Largest guest memory any constructor accepts (64 TiB). */
#define RH_LAYOUT_MAX_MEM (1ull << 46)
/* Guest-physical addresses end below 2^52 (the x86-64/arm64 architectural maximum). */
#define RH_LAYOUT_GPA_LIMIT (1ull << 52)
/* Largest state.json rh_layout_parse reads. */
#define RH_LAYOUT_STATE_JSON_MAX (16u << 20)

struct rh_region {
        uint64_t gpa;    /* guest-physical start */
        uint64_t size;   /* bytes, > 0 */
        uint64_t offset; /* offset of gpa in the memory file */
};

struct rh_layout;

/*
 * rh_layout_parse - build a layout from a spec string:
 *   Firecracker v1.13.0 and later (the PCIe-era address map):
 *   "firecracker:SIZE" = "firecracker-x86_64:SIZE"   RAM [0,3G) [4G,256G) [512G,..)
 *   "firecracker-aarch64:SIZE"                        RAM [2G,256G) [512G,..), at most 1022G
 *     either with ",hotplug=TOTAL[@GPA]" (v1.14.0+ virtio-mem, total_size_mib):
 *     the region [GPA, GPA+TOTAL) (GPA default 512G) right after DRAM in the file
 *   Firecracker v0.23.0 to v1.12.1:
 *   "firecracker-x86_64-legacy:SIZE"                  RAM [0,0xd0000000) [4G,..)
 *   "firecracker-aarch64-legacy:SIZE"                 RAM [2G, 2G+min(SIZE,1022G)), no gap
 *   "qemu-q35:SIZE", "qemu-pc:SIZE"                   QEMU 7.2 split, see rh_layout_new_qemu
 *   "cloud-hypervisor:PATH"                           PATH = state.json or the snapshot dir
 *                                                     (config.json beside it names zone files)
 *   "regions:GPA:SIZE[,GPA:SIZE...]" or just "GPA:SIZE[,...]"  (file offsets back to back)
 *   "flat"                                            gpa == offset, unbounded
 * SIZE and GPA are decimal or 0x-hex, with an optional binary suffix K, M,
 * G or T (KiB...TiB).
 * @spec:       NUL-terminated spec, not NULL
 * @ret_layout: on success, a new layout to free with rh_layout_free()
 * @err:        optional; filled on failure
 * Returns 0, or
 *   -EINVAL  bad spec: unknown kind, bad number, bad region list, size 0
 *            or above RH_LAYOUT_MAX_MEM, overlapping or unordered regions,
 *            malformed state.json (the message says which)
 *   -ERANGE  a number or an end address overflows
 *   -E2BIG   more than RH_LAYOUT_MAX_REGIONS regions
 *   -EFBIG   state.json larger than RH_LAYOUT_STATE_JSON_MAX
 *   -ENOMEM  out of memory
 *   or the -errno of opening/reading state.json (message names the path).
 */
int rh_layout_parse(const char *spec, struct rh_layout **ret_layout, struct rh_error *err);

/*
 * rh_layout_new_firecracker - Firecracker's RAM regions for @mem_size bytes
 * (v1.13.0 and later), back to back in the snapshot memory file (as
 * Firecracker writes it and maps it on restore).
 * @mem_size:   guest memory in bytes (mem_size_mib << 20), 1..RH_LAYOUT_MAX_MEM
 * @aarch64:    false: x86_64; true: aarch64 (DRAM at 2 GiB; like Firecracker,
 *              truncated to 1022 GiB)
 * Returns 0, -EINVAL (size 0, too large), -ENOMEM.
 */
int rh_layout_new_firecracker(uint64_t mem_size, bool aarch64, struct rh_layout **ret_layout,
                              struct rh_error *err);

/*
 * rh_layout_new_firecracker_legacy - the address map of Firecracker v0.23.0
 * to v1.12.1 (before the PCIe-era map of v1.13.0):
 *   x86_64:  RAM below 0xd0000000 (a 768 MiB MMIO gap under 4 GiB), the rest
 *            from 4 GiB, no 64-bit gap;
 *   aarch64: one region [2 GiB, 2 GiB + min(size, 1022 GiB)), no gap.
 * Same returns as above.
 */
int rh_layout_new_firecracker_legacy(uint64_t mem_size, bool aarch64, struct rh_layout **ret_layout,
                                     struct rh_error *err);

/*
 * rh_layout_add_firecracker_hotplug - append Firecracker's (v1.14.0+)
 * virtio-mem region [@gpa, @gpa + @size) to a firecracker-x86_64/-aarch64
 * layout. Firecracker dumps it whole right after DRAM (unplugged slots are
 * holes of the file). @size is the device's total_size_mib << 20; @gpa is
 * where Firecracker allocated it (512 GiB unless DRAM reaches past it).
 * Returns 0, -EINVAL (other layout kind, already added, size 0, @gpa not
 * 128 MiB-aligned, overlapping or below DRAM, past the caps), -E2BIG.
 */
int rh_layout_add_firecracker_hotplug(struct rh_layout *layout, uint64_t gpa, uint64_t size,
                                      struct rh_error *err);

/*
 * rh_layout_new_qemu - QEMU 7.2 pc (i440fx) or q35 with the whole RAM in one
 * memory-backend-file (machine memory-backend=...), default
 * max-ram-below-4g. Low RAM at gpa 0, the rest at 4 GiB:
 *   q35: low = min(size, size >= 0xb0000000 ? 0x80000000 : 0xb0000000)
 *   pc:  low = min(size, size >= 0xe0000000 ? 0xc0000000 : 0xe0000000)
 * (verified against qemu-system-x86_64 7.2 `info mtree -f`, docs/LAYOUTS.md).
 * Returns 0, -EINVAL (size 0, too large), -ENOMEM.
 */
int rh_layout_new_qemu(bool q35, uint64_t mem_size, struct rh_layout **ret_layout, struct rh_error *err);

/*
 * rh_layout_new_cloud_hypervisor - parse a Cloud Hypervisor (v39..v53)
 * snapshot's state.json: snapshots."memory-manager".snapshot_data.state is
 * a JSON string holding the memory manager's state, whose
 * memory_ranges.data is the list of {gpa, length} written back to back, in
 * that list order, into the snapshot's memory-ranges file. The list is not
 * in gpa order (zones come from a hash map; virtio-mem plugged ranges come
 * before their zone's regions): the layout's regions are sorted by gpa, each
 * with the file offset of its place in the list. guest_ram_mappings is read
 * to explain a gpa of RAM that is not in the file (a zone backed by a shared
 * host file, or unplugged virtio-mem memory). Integers up to 2^64 - 1 are
 * accepted anywhere (arch_mem_regions holds usize::MAX).
 * @state_json/@len: the file's bytes (need not be NUL-terminated), untrusted
 * Returns 0, -EINVAL (malformed JSON, missing or wrong-typed field, a range
 * of length 0, overlapping ranges, past the caps; the message names the
 * field or the ranges by list index), -E2BIG (too many ranges or
 * mappings), -EFBIG (@len > RH_LAYOUT_STATE_JSON_MAX), -ENOMEM.
 */
int rh_layout_new_cloud_hypervisor(const char *state_json, size_t len, struct rh_layout **ret_layout,
                                   struct rh_error *err);

/*
 * rh_layout_new_cloud_hypervisor_config - the same, plus the snapshot's
 * config.json (@config_json may be NULL), whose memory.zones[].file names
 * the host file of a zone absent from memory-ranges in lookup errors. A
 * config.json that does not parse is ignored. Same returns.
 */
int rh_layout_new_cloud_hypervisor_config(const char *state_json, size_t len, const char *config_json,
                                          size_t config_len, struct rh_layout **ret_layout, struct rh_error *err);

/*
 * rh_layout_new_regions - layout from an explicit list of @n regions in
 * ascending, non-overlapping gpa order; their file offsets are assigned back
 * to back (the .offset fields of @regions are ignored).
 * Returns 0, -EINVAL (n == 0, size 0, unordered or overlapping, gpa end past
 * RH_LAYOUT_GPA_LIMIT, total above RH_LAYOUT_MAX_MEM), -E2BIG (n too large),
 * -ENOMEM.
 */
int rh_layout_new_regions(const struct rh_region *regions, size_t n, struct rh_layout **ret_layout,
                          struct rh_error *err);

/* rh_layout_new_flat - gpa == file offset for every address. Returns 0 or -ENOMEM. */
int rh_layout_new_flat(struct rh_layout **ret_layout, struct rh_error *err);

/* Free; takes NULL; returns NULL. */
struct rh_layout *rh_layout_free(struct rh_layout *layout);

/*
 * rh_layout_gpa_to_offset - file offset of [gpa, gpa+len), which must lie in
 * one region (@len 0 is treated as 1).
 * Returns 0, or -EFAULT with one of these messages:
 *   "gpa 0x... is in a hole (no RAM between 0x... and 0x...)"
 *   "gpa 0x... is past the end of guest RAM (0x...)" (Firecracker, at or
 *     above 512 GiB without hotplug=: "...; Firecracker v1.14.0+ puts
 *     virtio-mem memory there, ...")
 *   Cloud Hypervisor, RAM not in memory-ranges:
 *   "gpa 0x... is RAM backed by zone file PATH (zone "ID", file offset 0x...), not in memory-ranges"
 *   "gpa 0x... is in zone "ID"'s virtio-mem region 0x...-0x... but not plugged (not in memory-ranges)"
 *   "gpa range 0x...+0x... crosses the end of RAM region 0x...-0x..."
 */
int rh_layout_gpa_to_offset(const struct rh_layout *layout, uint64_t gpa, uint64_t len, uint64_t *ret_offset,
                            struct rh_error *err);

/*
 * rh_layout_offset_to_gpa - inverse of the above for one byte.
 * Returns 0, -EFAULT ("file offset 0x... is past the end of guest RAM (0x... bytes)").
 */
int rh_layout_offset_to_gpa(const struct rh_layout *layout, uint64_t offset, uint64_t *ret_gpa,
                            struct rh_error *err);

/* Number of regions (>= 1). */
size_t rh_layout_n_regions(const struct rh_layout *layout);
/* Region @i (< rh_layout_n_regions), or NULL when out of range. */
const struct rh_region *rh_layout_region(const struct rh_layout *layout, size_t i);
/* Bytes of memory file the layout covers: the end of the region last in the file (UINT64_MAX for "flat"). */
uint64_t rh_layout_file_size(const struct rh_layout *layout);
/* Short name of the layout kind ("firecracker-x86_64", "qemu-q35", ...). */
const char *rh_layout_kind(const struct rh_layout *layout);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif
