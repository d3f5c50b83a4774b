/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: rehome-agent's parsers of untrusted bytes
 * (src/agent/parse.c).
 *
 * Input: one control byte, then data. Control & 3 selects:
 *  0  kmsg: the data fed whole and again split at (control >> 2) * 16 must
 *     give the same answer; the answer must agree with a naive search of
 *     each complete line (lines up to 511 bytes);
 *  1  uevent: must agree with a naive NUL-split comparison;
 *  2  ACK_UDP: the data is a page's request section + payload; a found
 *     target must be well-formed (family 4/6, port != 0).
 */
#include <errno.h>

#include "agent.h"
#include "fuzz-common.h"

static bool naive_kmsg(const uint8_t *data, size_t len)
{
        static char line[4097];
        size_t start = 0;

        for (size_t i = 0; i < len; i++) {
                if (data[i] != '\n')
                        continue;
                size_t l = i - start;
                if (l > 511)
                        l = 511;
                memcpy(line, data + start, l);
                line[l] = '\0';
                if (strstr(line, "crng reseeded due to virtual machine fork"))
                        return true;
                start = i + 1;
        }
        return false;
}

static bool naive_uevent(const uint8_t *data, size_t len)
{
        static char copy[4098];

        memcpy(copy, data, len);
        copy[len] = '\0';
        for (size_t off = 0; off < len; off += strlen(copy + off) + 1)
                if (strcmp(copy + off, "NEW_VMGENID=1") == 0)
                        return true;
        return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static _Alignas(4096) uint8_t page[RH_MAILBOX_SIZE];
        static struct kmsg_scan a, b;
        struct rh_request req;
        uint8_t control;

        if (size < 1 || size > 4097)
                return 0;
        control = data[0];
        data++;
        size--;
        switch (control & 3) {
        case 0: {
                size_t cut = (size_t)(control >> 2) * 16;
                bool whole, split;

                if (cut > size)
                        cut = size;
                memset(&a, 0, sizeof(a));
                memset(&b, 0, sizeof(b));
                whole = kmsg_scan_feed(&a, (const char *)data, size);
                split = kmsg_scan_feed(&b, (const char *)data, cut);
                split = kmsg_scan_feed(&b, (const char *)data + cut, size - cut) || split;
                fuzz_check(whole == split, "whole %d split %d at %zu", whole, split, cut);
                fuzz_check(whole == naive_kmsg(data, size), "kmsg disagrees with the naive search");
                break;
        }
        case 1:
                fuzz_check(uevent_has_vmgenid((const char *)data, size) == naive_uevent(data, size),
                           "uevent disagrees with the naive split");
                break;
        default:
                memset(page, 0, sizeof(page));
                memcpy(page + RH_OFF_REQUEST, data,
                       size < RH_MAILBOX_SIZE - RH_OFF_REQUEST ? size : RH_MAILBOX_SIZE - RH_OFF_REQUEST);
                if (ack_find_udp_target(page, &req))
                        fuzz_check(req.has_ack_udp && req.ack_port != 0 &&
                                           (req.ack_addr.family == 4 || req.ack_addr.family == 6),
                                   "bad target");
                break;
        }
        return 0;
}
