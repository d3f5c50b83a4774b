/* SPDX-License-Identifier: MIT */
/*
 * Little-endian loads and stores at any alignment (systemd's unaligned.h):
 * every multi-byte field of the mailbox page, its TLV payload and the V1
 * layout is little-endian on every architecture (docs/MAILBOX.md section 1),
 * so code reads and writes them through these and never through a cast.
 * Byte-wise on purpose: no alignment or aliasing assumption, no dependency on
 * the host's byte order; the compiler turns each into one move on x86.
 *
 * These are plain accesses. The sequence fields, which the other side polls,
 * additionally need an atomic load/store (see seq_load() in mailbox.c).
 */
#ifndef REHOME_UNALIGNED_H
#define REHOME_UNALIGNED_H

#include <stdint.h>

static inline uint16_t unaligned_read_le16(const void *_p)
{
        const uint8_t *p = _p;

        return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t unaligned_read_le32(const void *_p)
{
        const uint8_t *p = _p;

        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t unaligned_read_le64(const void *_p)
{
        const uint8_t *p = _p;

        return (uint64_t)unaligned_read_le32(p) | (uint64_t)unaligned_read_le32(p + 4) << 32;
}

static inline void unaligned_write_le16(void *_p, uint16_t v)
{
        uint8_t *p = _p;

        p[0] = (uint8_t)v;
        p[1] = (uint8_t)(v >> 8);
}

static inline void unaligned_write_le32(void *_p, uint32_t v)
{
        uint8_t *p = _p;

        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

static inline void unaligned_write_le64(void *_p, uint64_t v)
{
        uint8_t *p = _p;

        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

#endif
