/* SPDX-License-Identifier: MIT */
/*
 * The agent's small parsers of untrusted bytes, kept free of I/O and of the
 * agent state so they can be tested (and fuzzed) on their own:
 *
 *  - kmsg lines: /dev/kmsg gives one "<pri>,<seq>,<ts>,<flags>;<text>\n"
 *    record per read, a test FIFO any chunk; lines are reassembled and the
 *    vmgenid line is looked for in each complete one.
 *  - uevents: "ACTION@DEVPATH\0KEY=VALUE\0...", looked for NEW_VMGENID=1.
 *  - the ACK_UDP record of a request payload that failed to decode.
 */
#include <string.h>

#include "agent.h"
#include "unaligned.h"

#define KMSG_NEEDLE "crng reseeded due to virtual machine fork"
#define UEVENT_KEY  "NEW_VMGENID=1"

bool kmsg_scan_feed(struct kmsg_scan *scan, const char *data, size_t len)
{
        bool fired = false;

        for (size_t i = 0; i < len; i++) {
                char c = data[i];

                if (c == '\n') {
                        scan->line[scan->len] = '\0';
                        /* A NUL inside the line ends the search early: such a
                         * line is not the kernel's. */
                        if (strstr(scan->line, KMSG_NEEDLE))
                                fired = true;
                        scan->len = 0;
                } else if (scan->len < sizeof(scan->line) - 1)
                        scan->line[scan->len++] = c;
                /* else: an over-long line is cut; the vmgenid line is short. */
        }
        return fired;
}

bool uevent_has_vmgenid(const char *msg, size_t len)
{
        const size_t klen = sizeof(UEVENT_KEY) - 1;
        size_t off = 0;

        while (off < len) {
                const char *s = msg + off;
                const char *end = memchr(s, '\0', len - off);
                size_t l = end ? (size_t)(end - s) : len - off;

                if (l == klen && memcmp(s, UEVENT_KEY, klen) == 0)
                        return true;
                off += l + 1;
        }
        return false;
}

/*
 * A request whose header CRC holds but whose payload does not decode still
 * deserves an error ack on the wire if it names where to send it. Walk the
 * TLVs with the same bounds the decoder uses and take only an ACK_UDP record
 * that is itself well-formed.
 */
bool ack_find_udp_target(const uint8_t *page, struct rh_request *ret_req)
{
        const uint8_t *p = page + RH_OFF_PAYLOAD;
        uint32_t len = unaligned_read_le32(page + RH_OFF_REQUEST + offsetof(struct rh_wire_request, payload_len));
        size_t off = 0;

        if (len > RH_PAYLOAD_MAX)
                return false;
        while (off + 4 <= len) {
                uint16_t type = unaligned_read_le16(p + off);
                uint16_t vlen = unaligned_read_le16(p + off + 2);
                const uint8_t *v = p + off + 4;

                if (off + 4 + vlen > len)
                        return false;
                if (type == RH_TLV_ACK_UDP && vlen == 20 && (v[0] == 4 || v[0] == 6)) {
                        uint16_t port = unaligned_read_le16(v + 2);

                        if (port == 0)
                                return false;
                        memset(ret_req, 0, sizeof(*ret_req));
                        ret_req->has_ack_udp = true;
                        ret_req->ack_port = port;
                        ret_req->ack_addr.family = v[0];
                        memcpy(ret_req->ack_addr.addr, v + 4, v[0] == 4 ? 4 : 16);
                        return true;
                }
                off += 4 + (((size_t)vlen + 3) & ~(size_t)3);
        }
        return false;
}
