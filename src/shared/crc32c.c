/* SPDX-License-Identifier: MIT */
/*
 * CRC32C (Castagnoli), the checksum of every mailbox section. Table-driven,
 * slicing-by-1: the payload is at most 3296 bytes, and the agent must not
 * depend on CPU features (SSE4.2) a guest may lack. The table is computed at
 * compile time so it lives in .rodata (no first-use initialisation after a
 * resume).
 */
#include <stddef.h>
#include <stdint.h>

#include "rehome/mailbox.h"

#define P 0x82f63b78u
#define R1(c) (((c) & 1) ? ((c) >> 1) ^ P : (c) >> 1)
#define R2(c) R1(R1(c))
#define R4(c) R2(R2(c))
#define R8(c) R4(R4(c))
#define T(n) R8((uint32_t)(n))
#define T4(n) T(n), T(n + 1), T(n + 2), T(n + 3)
#define T16(n) T4(n), T4(n + 4), T4(n + 8), T4(n + 12)
#define T64(n) T16(n), T16(n + 16), T16(n + 32), T16(n + 48)

static const uint32_t table[256] = { T64(0), T64(64), T64(128), T64(192) };

uint32_t rh_crc32c(uint32_t crc, const void *buf, size_t len)
{
        const uint8_t *p = buf;

        crc = ~crc;
        while (len--)
                crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
        return ~crc;
}
