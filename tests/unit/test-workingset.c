/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the template working set (src/vmm/workingset.c): save/load
 * round trip, every way a stored file can be wrong (it is read back as
 * untrusted input), and prefetch/evict/resident on a real file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <errno.h>

#include "src/vmm/bench.h"

#define RAM (1ull << 20) /* 256 pages */

static char dir[64];
static char path[128];

static int setup(void **state)
{
        snprintf(dir, sizeof(dir), "/tmp/test-workingset.XXXXXX");
        if (!mkdtemp(dir))
                return -1;
        snprintf(path, sizeof(path), "%s/workingset", dir);
        return 0;
}

static int teardown(void **state)
{
        char p[160];
        unlink(path);
        snprintf(p, sizeof(p), "%s/ram", dir);
        unlink(p);
        rmdir(dir);
        return 0;
}

static void write_text(const char *text)
{
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

static int load(uint64_t **offs, size_t *n, struct rh_error *err)
{
        memset(err, 0, sizeof(*err));
        *offs = NULL;
        *n = 0;
        return vmm_ws_load(path, RAM, offs, n, err);
}

static void test_round_trip(void **state)
{
        uint64_t want[] = { 0, 0x1000, 0x2000, 0x9000, 0xff000 };
        uint64_t *got;
        size_t n;
        struct rh_error err = { 0 };

        assert_int_equal(vmm_ws_save(path, RAM, want, 5, &err), 0);
        assert_int_equal(load(&got, &n, &err), 0);
        assert_int_equal(n, 5);
        assert_memory_equal(got, want, sizeof(want));
        free(got);
}

static void test_empty_set(void **state)
{
        uint64_t *got;
        size_t n;
        struct rh_error err;

        assert_int_equal(vmm_ws_save(path, RAM, NULL, 0, &err), 0);
        assert_int_equal(load(&got, &n, &err), 0);
        assert_int_equal(n, 0);
        free(got);
}

static void expect_error(const char *text, int code, const char *msg_part)
{
        uint64_t *got;
        size_t n;
        struct rh_error err;

        write_text(text);
        assert_int_equal(load(&got, &n, &err), code);
        assert_null(got);
        if (!strstr(err.msg, msg_part))
                fail_msg("error '%s' does not contain '%s'", err.msg, msg_part);
}

static void test_missing(void **state)
{
        uint64_t *got;
        size_t n;
        struct rh_error err;

        unlink(path);
        assert_int_equal(load(&got, &n, &err), -ENOENT);
        assert_non_null(strstr(err.msg, "rehome template record-ws NAME"));
}

static void test_bad_header(void **state)
{
        expect_error("rehome-workingset 2 ram_size=1048576 pages=1\n0\n", -EBADMSG, "bad header");
        expect_error("garbage\n", -EBADMSG, "bad header");
        expect_error("", -EBADMSG, "bad header");
}

static void test_wrong_ram_size(void **state)
{
        expect_error("rehome-workingset 1 ram_size=2097152 pages=1\n0\n", -EINVAL,
                     "recorded for 2097152 bytes of RAM, the template has 1048576");
}

static void test_too_many_pages(void **state)
{
        expect_error("rehome-workingset 1 ram_size=1048576 pages=257\n0\n", -EINVAL,
                     "257 pages, more than the RAM holds (256)");
}

static void test_bad_offsets(void **state)
{
        expect_error("rehome-workingset 1 ram_size=1048576 pages=1\n800\n", -EINVAL,
                     "line 2: offset 0x800 not a page inside the 1048576-byte RAM file");
        expect_error("rehome-workingset 1 ram_size=1048576 pages=1\n100000\n", -EINVAL,
                     "line 2: offset 0x100000 not a page");
        expect_error("rehome-workingset 1 ram_size=1048576 pages=2\n2000\n1000\n", -EINVAL,
                     "line 3: offsets not strictly increasing");
        expect_error("rehome-workingset 1 ram_size=1048576 pages=2\n1000\n1000\n", -EINVAL,
                     "line 3: offsets not strictly increasing");
        expect_error("rehome-workingset 1 ram_size=1048576 pages=1\nxyz\n", -EBADMSG, "line 2: not a hex offset");
        expect_error("rehome-workingset 1 ram_size=1048576 pages=1\n1000 \n", -EBADMSG, "line 2: not a hex offset");
        expect_error("rehome-workingset 1 ram_size=1048576 pages=2\n1000\n\n2000\n", -EBADMSG, "line 3: empty");
        expect_error("rehome-workingset 1 ram_size=1048576 pages=1\nffffffffffffffffff\n", -EBADMSG,
                     "not a hex offset");
}

static void test_count_mismatch(void **state)
{
        expect_error("rehome-workingset 1 ram_size=1048576 pages=3\n0\n1000\n", -EINVAL, "2 offsets, header says 3");
        expect_error("rehome-workingset 1 ram_size=1048576 pages=1\n0\n1000\n", -EINVAL,
                     "more offsets than the header's 1");
}

static void test_prefetch_evict(void **state)
{
        char ram[160];
        struct rh_error err;
        uint64_t bytes = 0;
        static char page[4096];

        snprintf(ram, sizeof(ram), "%s/ram", dir);
        FILE *f = fopen(ram, "w");
        assert_non_null(f);
        for (int i = 0; i < 256; i++) {
                memset(page, i, sizeof(page));
                assert_int_equal(fwrite(page, 1, sizeof(page), f), sizeof(page));
        }
        fclose(f);

        uint64_t offs[] = { 0x1000, 0x2000, 0x3000, 0x10000 };
        assert_int_equal(vmm_ws_prefetch(ram, offs, 4, &bytes, &err), 0);
        assert_int_equal(bytes, 4 * 4096);
        assert_int_equal(vmm_ws_prefetch_range(ram, 0xff000, 0x10000, &bytes, &err), 0);
        assert_int_equal(bytes, 4096); /* clamped at the end of the file */
        assert_true(vmm_ws_resident(ram) > 0);
        long resident = -1;
        assert_int_equal(vmm_ws_evict(ram, &resident, &err), 0);
        /* tmpfs cannot drop its pages (they are the file); disk file systems go to 0. */
        assert_true(resident >= 0 && resident <= 256);
        assert_int_equal(vmm_ws_prefetch("/nonexistent/ram", offs, 4, &bytes, &err), -ENOENT);
        assert_string_equal(err.msg, "/nonexistent/ram: No such file or directory");
        assert_int_equal(vmm_ws_evict("/nonexistent/ram", &resident, &err), -ENOENT);
        assert_non_null(strstr(err.msg, "/nonexistent/ram"));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
                cmocka_unit_test_setup_teardown(test_empty_set, setup, teardown),
                cmocka_unit_test_setup_teardown(test_missing, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_header, setup, teardown),
                cmocka_unit_test_setup_teardown(test_wrong_ram_size, setup, teardown),
                cmocka_unit_test_setup_teardown(test_too_many_pages, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_offsets, setup, teardown),
                cmocka_unit_test_setup_teardown(test_count_mismatch, setup, teardown),
                cmocka_unit_test_setup_teardown(test_prefetch_evict, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
