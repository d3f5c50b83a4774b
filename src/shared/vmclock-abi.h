/* SPDX-License-Identifier: MIT */
/*
 * The VMClock shared page as the guest sees it (/dev/vmclock0, read() or
 * mmap()), written from the field list of Linux's
 * include/uapi/linux/vmclock-abi.h (version 1, with the vm_generation_counter
 * and notification additions of Linux 7.0). Only what rehome-agent reads is
 * named; the rest is kept as opaque bytes so the offsets stay exact.
 *
 *   0x00 u32 magic "VCLK"       0x04 u32 size        0x08 u16 version
 *   0x0a u8 counter_id          0x0b u8 time_type    0x0c u32 seq_count
 *   0x10 u64 disruption_marker  0x18 u64 flags
 *   0x20 .. 0x67 clock fields (status, leap, counter/period, time)
 *   0x68 u64 vm_generation_counter (valid with VMCLOCK_FLAG_VM_GEN_COUNTER_PRESENT)
 *   0x70 end
 *
 * All fields little-endian. seq_count is a seqcount: odd while the
 * hypervisor updates the page; a reader retries until it reads the same even
 * value before and after. With VMCLOCK_FLAG_NOTIFICATION_PRESENT the device
 * signals every change to a new even seq_count, and poll() on the device
 * returns POLLIN until the reader read()s it again.
 */
#ifndef REHOME_VMCLOCK_ABI_H
#define REHOME_VMCLOCK_ABI_H

#include <stddef.h>
#include <stdint.h>

#define RH_VMCLOCK_MAGIC                       0x4b4c4356u /* "VCLK" little-endian */
#define RH_VMCLOCK_VERSION                     1u
#define RH_VMCLOCK_FLAG_VM_GEN_COUNTER_PRESENT (1ull << 8)
#define RH_VMCLOCK_FLAG_NOTIFICATION_PRESENT   (1ull << 9)

struct rh_vmclock_abi {
        uint32_t magic;                 /* 0x00 */
        uint32_t size;                  /* 0x04 size of the region (a page) */
        uint16_t version;               /* 0x08 1 */
        uint8_t counter_id;             /* 0x0a */
        uint8_t time_type;              /* 0x0b */
        uint32_t seq_count;             /* 0x0c odd: update in progress */
        uint64_t disruption_marker;     /* 0x10 changes on any counter disruption */
        uint64_t flags;                 /* 0x18 RH_VMCLOCK_FLAG_* */
        uint8_t clock_fields[0x48];     /* 0x20 status, leap, counter, period, time */
        uint64_t vm_generation_counter; /* 0x68 changes only when restored from a snapshot */
};

_Static_assert(sizeof(struct rh_vmclock_abi) == 0x70, "vmclock_abi size");
_Static_assert(offsetof(struct rh_vmclock_abi, seq_count) == 0x0c, "seq_count offset");
_Static_assert(offsetof(struct rh_vmclock_abi, disruption_marker) == 0x10, "disruption offset");
_Static_assert(offsetof(struct rh_vmclock_abi, flags) == 0x18, "flags offset");
_Static_assert(offsetof(struct rh_vmclock_abi, vm_generation_counter) == 0x68,
               "vm_generation_counter offset");

#endif
