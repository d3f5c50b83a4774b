/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the pager's decoder of Firecracker's userfaultfd handshake
 * (src/pager/handshake.c): the three field sets Firecracker has sent
 * (v1.12+, v1.7-v1.11, v1.1-v1.6) as its serde_json writes them, and every
 * rejection with its errno and the message a pager log shows.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "src/pager/handshake.h"

#define MIB (1ull << 20)

static int decode(const char *text, uint64_t mem_size, struct pager_handshake *hs, struct rh_error *err)
{
        return pager_handshake_decode(text, strlen(text), mem_size, 4096, hs, err);
}

static void test_v1_12(void **state)
{
        struct pager_handshake hs;
        struct rh_error err = {};
        const char *t = "[{\"base_host_virt_addr\":140000000000000,\"size\":50331648,\"offset\":0,\"page_size\":4096,"
                        "\"page_size_kib\":4096},{\"base_host_virt_addr\":139990000001024,\"size\":16777216,"
                        "\"offset\":50331648,\"page_size\":4096,\"page_size_kib\":4096}]";

        assert_int_equal(decode(t, 64 * MIB, &hs, &err), 0);
        assert_int_equal(hs.fields, PAGER_FIELDS_V1_12);
        assert_int_equal(hs.n_regions, 2);
        assert_int_equal(hs.regions[0].hva, 140000000000000ull);
        assert_int_equal(hs.regions[0].size, 48 * MIB);
        assert_int_equal(hs.regions[1].offset, 48 * MIB);
        assert_int_equal(hs.regions[1].page_size, 4096);
        assert_string_equal(pager_fields_name(hs.fields), "v1.12+");
}

static void test_v1_7_and_v1_1(void **state)
{
        struct pager_handshake hs;

        /* page_size_kib holds bytes, whatever its name says. */
        assert_int_equal(decode("[{\"base_host_virt_addr\":1073741824,\"size\":4194304,\"offset\":0,\"page_size_kib\":2097152}]",
                                4 * MIB, &hs, NULL), 0);
        assert_int_equal(hs.fields, PAGER_FIELDS_V1_7);
        assert_int_equal(hs.regions[0].page_size, 2 * MIB);
        assert_int_equal(decode("[{\"base_host_virt_addr\":1073741824,\"size\":4194304,\"offset\":0}]", 4 * MIB, &hs, NULL), 0);
        assert_int_equal(hs.fields, PAGER_FIELDS_V1_1);
        assert_int_equal(hs.regions[0].page_size, 4096);
        /* Key order does not matter; unknown keys are ignored. */
        assert_int_equal(decode("[{\"offset\":0,\"future\":[1],\"size\":4096,\"base_host_virt_addr\":4096,\"page_size\":4096}]",
                                4096, &hs, NULL), 0);
        assert_int_equal(hs.fields, PAGER_FIELDS_PAGE_SIZE);
}

static void expect(const char *text, uint64_t mem_size, int code, const char *msg)
{
        struct pager_handshake hs;
        struct rh_error err = {};

        memset(&hs, 0x5a, sizeof(hs));
        assert_int_equal(decode(text, mem_size, &hs, &err), code);
        assert_string_equal(err.msg, msg);
        assert_int_equal(((unsigned char *)&hs)[0], 0x5a);
}

static void test_rejections(void **state)
{
        char big[PAGER_HANDSHAKE_MAX + 2];
        struct rh_error err = {};
        struct pager_handshake hs;

        expect("[{\"base_host_virt_addr\":4096,\"size\":4096,\"off", 4096, -EAGAIN, "handshake: incomplete JSON");
        expect("", 4096, -EAGAIN, "handshake: no bytes yet");
        expect("nope", 4096, -EBADMSG, "handshake: not JSON: '[' or '{' expected near 'nope' at byte 4");
        expect("{}", 4096, -EBADMSG, "handshake: not a JSON array of regions");
        expect("[]", 4096, -EINVAL, "handshake: no regions");
        expect("[1]", 4096, -EBADMSG, "handshake: region 0: not a JSON object");
        expect("[{\"size\":4096,\"offset\":0}]", 4096, -EBADMSG, "handshake: region 0: no base_host_virt_addr");
        expect("[{\"base_host_virt_addr\":\"4096\",\"size\":4096,\"offset\":0}]", 4096, -EBADMSG,
               "handshake: region 0: base_host_virt_addr is not a non-negative integer");
        expect("[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0,\"size\":4096}]", 4096, -EBADMSG,
               "handshake: not JSON: duplicate object key near '\"size\"' at byte 58");
        expect("[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0}] x", 4096, -EBADMSG,
               "handshake: not JSON: end of file expected near 'x' at byte 55");
        expect("[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0,\"page_size\":3000,\"page_size_kib\":3000}]", 4096,
               -EINVAL, "handshake: region 0: page size 3000 is not a power of two between 4096 and 1073741824");
        expect("[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0,\"page_size\":4096,\"page_size_kib\":8192}]", 4096,
               -EINVAL, "handshake: region 0: page_size 4096 and page_size_kib 8192 differ");
        expect("[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0}]", 8192, -EINVAL,
               "handshake: regions cover 4096 bytes, the memory file has 8192");
        expect("[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":4096}]", 4096, -EINVAL,
               "handshake: region 0: offset 4096 is not the sum of the previous sizes (0)");
        expect("[{\"base_host_virt_addr\":4097,\"size\":4096,\"offset\":0}]", 4096, -EINVAL,
               "handshake: region 0: host address 0x1001 is not aligned to its page size 4096");
        expect("[{\"base_host_virt_addr\":4096,\"size\":6000,\"offset\":0}]", 4096, -EINVAL,
               "handshake: region 0: size 6000 is not a positive multiple of its page size 4096");
        expect("[{\"base_host_virt_addr\":144115188075855872,\"size\":4096,\"offset\":0}]", 4096, -EINVAL,
               "handshake: region 0: host range 0x200000000000000+0x1000 is not a user address range");
        expect("[{\"base_host_virt_addr\":4096,\"size\":8192,\"offset\":0},{\"base_host_virt_addr\":8192,\"size\":4096,\"offset\":8192}]",
               12288, -EINVAL, "handshake: region 1: host range 0x2000+0x1000 overlaps region 0");
        expect("[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0,\"page_size_kib\":4096},{\"base_host_virt_addr\":8192,\"size\":4096,\"offset\":4096}]",
               8192, -EBADMSG, "handshake: region 1 has the v1.1-v1.6 field set, region 0 the v1.7-v1.11 one");
        expect("[{\"base_host_virt_addr\":99999999999999999999,\"size\":4096,\"offset\":0}]", 4096, -EINVAL,
               "handshake: number out of range at byte 44");

        memset(big, ' ', sizeof(big));
        assert_int_equal(pager_handshake_decode(big, sizeof(big), 4096, 4096, &hs, &err), -EMSGSIZE);
        {
                char many[PAGER_HANDSHAKE_MAX];
                size_t n = 0;
                n += (size_t)snprintf(many + n, sizeof(many) - n, "[");
                for (int i = 0; i <= PAGER_MAX_REGIONS; i++)
                        n += (size_t)snprintf(many + n, sizeof(many) - n, "%s{\"base_host_virt_addr\":%d,\"size\":4096,\"offset\":%d}",
                                              i ? "," : "", 4096 * (i + 1), 4096 * i);
                snprintf(many + n, sizeof(many) - n, "]");
                expect(many, 4096ull * (PAGER_MAX_REGIONS + 1), -E2BIG, "handshake: 65 regions, at most 64");
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_v1_12),
                cmocka_unit_test(test_v1_7_and_v1_1),
                cmocka_unit_test(test_rejections),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
