/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of rehome-agent's parsers of untrusted bytes (src/agent/parse.c):
 * kmsg line reassembly across any chunking, NEW_VMGENID=1 in a uevent with
 * and without a trailing NUL, and the ACK_UDP record of a payload that does
 * not decode (bounds, alignment, bad family, port 0, truncation).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agent.h"

static const char kernel_line[] = "6,1234,56789,-;random: crng reseeded due to virtual machine fork\n";

static void test_kmsg_whole_record(void **state)
{
        struct kmsg_scan scan = {0};

        (void)state;
        assert_true(kmsg_scan_feed(&scan, kernel_line, strlen(kernel_line)));
        assert_int_equal(scan.len, 0);
        assert_false(kmsg_scan_feed(&scan, "6,1,1,-;eth0: link up\n", 22));
}

static void test_kmsg_any_split(void **state)
{
        size_t len = strlen(kernel_line);

        (void)state;
        for (size_t cut = 0; cut <= len; cut++) {
                struct kmsg_scan scan = {0};
                bool a = kmsg_scan_feed(&scan, kernel_line, cut);

                /* The partial record is held, byte for byte, until its newline. */
                assert_int_equal(scan.len, cut < len ? cut : 0);
                assert_memory_equal(scan.line, kernel_line, scan.len);
                bool b = kmsg_scan_feed(&scan, kernel_line + cut, len - cut);

                /* Fires exactly once, on the chunk that carries the newline
                 * (the record's last byte): the first one only when it is the
                 * whole record, else the second (never both, never neither). */
                assert_int_equal(a, cut == len);
                assert_int_equal(b, cut < len);
                assert_int_equal(scan.len, 0);
        }
}

static void test_kmsg_needs_a_complete_line(void **state)
{
        struct kmsg_scan scan = {0};
        char long_line[2048];

        (void)state;
        /* No newline yet: not fired (the kernel has not finished the record). */
        assert_false(kmsg_scan_feed(&scan, kernel_line, strlen(kernel_line) - 1));
        assert_true(kmsg_scan_feed(&scan, "\n", 1));
        /* The text split over two lines is not the line. */
        assert_false(kmsg_scan_feed(&scan, "crng reseeded due to\nvirtual machine fork\n", 42));
        /* An over-long line is cut, and does not disturb the next one. */
        memset(long_line, 'x', sizeof(long_line));
        assert_false(kmsg_scan_feed(&scan, long_line, sizeof(long_line)));
        assert_false(kmsg_scan_feed(&scan, "\n", 1));
        assert_true(kmsg_scan_feed(&scan, kernel_line, strlen(kernel_line)));
}

static void test_uevent(void **state)
{
        static const char kernel[] = "change@/devices/platform/QEMUVGID:00\0ACTION=change\0"
                                     "DEVPATH=/devices/platform/QEMUVGID:00\0SUBSYSTEM=platform\0"
                                     "NEW_VMGENID=1\0SEQNUM=4242";
        static const char last_no_nul[] = "change@/x\0ACTION=change\0NEW_VMGENID=1";
        static const char other[] = "add@/devices/virtual/net/eth1\0ACTION=add\0NEW_VMGENID=10\0"
                                    "XNEW_VMGENID=1\0NEW_VMGENID=\0";

        (void)state;
        assert_true(uevent_has_vmgenid(kernel, sizeof(kernel)));
        assert_true(uevent_has_vmgenid(last_no_nul, sizeof(last_no_nul) - 1));
        assert_false(uevent_has_vmgenid(last_no_nul, sizeof(last_no_nul) - 2)); /* "NEW_VMGENID=" */
        assert_false(uevent_has_vmgenid(other, sizeof(other)));
        assert_false(uevent_has_vmgenid("", 0));
}

static void put_tlv(uint8_t *page, size_t *off, uint16_t type, const uint8_t *v, uint16_t vlen)
{
        uint8_t *p = page + RH_OFF_PAYLOAD + *off;

        p[0] = (uint8_t)type;
        p[1] = (uint8_t)(type >> 8);
        p[2] = (uint8_t)vlen;
        p[3] = (uint8_t)(vlen >> 8);
        memcpy(p + 4, v, vlen);
        *off += 4 + ((vlen + 3u) & ~3u);
}

static void set_len(uint8_t *page, uint32_t len)
{
        memcpy(page + RH_OFF_REQUEST + 0x10, &len, 4);
}

static void test_ack_target(void **state)
{
        static uint8_t page[RH_MAILBOX_SIZE];
        uint8_t ack[20] = {4, 0, 0x39, 0x05, 10, 88, 0, 1}; /* port 1337 */
        uint8_t junk[7] = {1, 2, 3, 4, 5, 6, 7};
        struct rh_request req;
        size_t off = 0;

        (void)state;
        memset(page, 0, sizeof(page));
        put_tlv(page, &off, 99, junk, sizeof(junk)); /* unknown, odd length: padded */
        put_tlv(page, &off, RH_TLV_ACK_UDP, ack, sizeof(ack));
        set_len(page, (uint32_t)off);
        assert_true(ack_find_udp_target(page, &req));
        assert_true(req.has_ack_udp);
        assert_int_equal(req.ack_port, 1337);
        assert_int_equal(req.ack_addr.family, 4);
        assert_memory_equal(req.ack_addr.addr, ((uint8_t[]){10, 88, 0, 1}), 4);

        /* Cut short: the record runs past the payload length. */
        set_len(page, (uint32_t)off - 1);
        assert_false(ack_find_udp_target(page, &req));
        /* Longer than a payload can be. */
        set_len(page, RH_PAYLOAD_MAX + 1);
        assert_false(ack_find_udp_target(page, &req));
        /* Port 0 and a bad family are refused. */
        set_len(page, (uint32_t)off);
        page[RH_OFF_PAYLOAD + 12 + 2] = 0;
        page[RH_OFF_PAYLOAD + 12 + 3] = 0;
        assert_false(ack_find_udp_target(page, &req));
        page[RH_OFF_PAYLOAD + 12 + 2] = 0x39;
        page[RH_OFF_PAYLOAD + 12 + 0] = 5;
        assert_false(ack_find_udp_target(page, &req));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_kmsg_whole_record),
                cmocka_unit_test(test_kmsg_any_split),
                cmocka_unit_test(test_kmsg_needs_a_complete_line),
                cmocka_unit_test(test_uevent),
                cmocka_unit_test(test_ack_target),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
