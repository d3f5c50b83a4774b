/* SPDX-License-Identifier: MIT */
/*
 * Firecracker's userfaultfd handshake, decoded: the one SOCK_STREAM message a
 * restoring Firecracker sends to the page server of its `Uffd` memory
 * backend. It is the compact JSON text of an array of region mappings in
 * guest-physical order (no length prefix, no terminator), with the
 * userfaultfd as the single SCM_RIGHTS fd (the fd is the caller's business;
 * this file only judges the text). Fields by Firecracker release:
 *
 *   v1.12.0+   base_host_virt_addr, size, offset, page_size, page_size_kib
 *   v1.7-1.11  base_host_virt_addr, size, offset, page_size_kib
 *   v1.1-1.6   base_host_virt_addr, size, offset   (host page size implied)
 *
 * page_size_kib holds bytes despite its name (persist.rs says so; the
 * snapshotting doc says KiB). The text is untrusted: every field is checked
 * (integers only, no duplicates, power-of-two page sizes, aligned and
 * non-overlapping host ranges, offsets the running sum of sizes, a total
 * equal to the memory file's size, bounded counts) and anything else is
 * rejected with a one-line message.
 */
#ifndef REHOME_PAGER_HANDSHAKE_H
#define REHOME_PAGER_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>

#include "rehome/error.h"

/* At most this many regions (Firecracker sends 1-4: DRAM pieces, a hotplug region). */
#define PAGER_MAX_REGIONS 64
/* At most this many bytes of handshake text (64 regions take ~9 KiB). */
#define PAGER_HANDSHAKE_MAX (64u << 10)
/* Largest page size accepted (1 GiB hugetlb pages). */
#define PAGER_PAGE_SIZE_MAX (1ull << 30)
/* Host virtual addresses end below 2^57 (5-level paging user space). */
#define PAGER_HVA_LIMIT (1ull << 57)

/* Which field set the client sent, hence which Firecracker releases it may be. */
enum pager_fields {
        PAGER_FIELDS_V1_1 = 1,  /* no page size: v1.1-v1.6 */
        PAGER_FIELDS_V1_7,      /* page_size_kib only: v1.7-v1.11 */
        PAGER_FIELDS_V1_12,     /* page_size and page_size_kib: v1.12+ */
        PAGER_FIELDS_PAGE_SIZE, /* page_size only: a future release without the deprecated field */
};

struct pager_region {
        uint64_t hva;       /* base_host_virt_addr: start of the mapping in the client */
        uint64_t size;      /* bytes, a multiple of page_size */
        uint64_t offset;    /* position of the region's first byte in the memory file */
        uint64_t page_size; /* bytes; a power of two, 4096 .. PAGER_PAGE_SIZE_MAX */
};

struct pager_handshake {
        enum pager_fields fields;
        size_t n_regions;
        struct pager_region regions[PAGER_MAX_REGIONS]; /* in the order sent (gpa order) */
};

/*
 * pager_handshake_decode - judge one handshake message.
 * @text/@len:       the bytes received so far (need not be NUL-terminated)
 * @mem_file_size:   size of the memory file served; the regions must cover it
 *                   exactly
 * @host_page_size:  the page size implied when the client sends none (v1.1)
 * @ret_hs:          written only on success
 * @err:             optional; one line naming the field and region on failure
 * Returns 0, or
 *   -EAGAIN    @text is a valid beginning of a JSON document but ends early:
 *              wait for more bytes (a large message may arrive in pieces)
 *   -EBADMSG   not JSON, trailing bytes, not an array of objects, a missing,
 *              duplicated or non-integer field, mixed field sets
 *   -EINVAL    a value is wrong: page size not a power of two in range,
 *              page_size and page_size_kib differ, size 0 or not a multiple
 *              of the page size, host address unaligned, past
 *              PAGER_HVA_LIMIT or overlapping another region, offset not the
 *              sum of the previous sizes, total not @mem_file_size, no regions
 *   -E2BIG     more than PAGER_MAX_REGIONS regions
 *   -EMSGSIZE  @len > PAGER_HANDSHAKE_MAX
 */
int pager_handshake_decode(const char *text, size_t len, uint64_t mem_file_size, uint64_t host_page_size,
                           struct pager_handshake *ret_hs, struct rh_error *err);

/* "v1.12+", "v1.7-v1.11", "v1.1-v1.6", "page_size only". */
const char *pager_fields_name(enum pager_fields fields);

#endif
