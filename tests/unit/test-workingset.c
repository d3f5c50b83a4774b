/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the template working set (src/vmm/workingset.c): save/load
 * round trip, every way a stored file can be wrong (it is read back as
 * untrusted input), and prefetch/evict/resident on real files: on disk
 * (/var/tmp) evict must empty the page cache and prefetch bring back exactly
 * the listed pages; on tmpfs evict drops nothing (the pages are the file).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cmocka.h>

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
        unlink(path);
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

/* ---- prefetch, evict, resident on a real file --------------------------- */

#define RAM_PAGES 256

/* The RAM file of the test running now, removed even when an assertion fails. */
static char ram_dir[128], ram[160];

static int remove_ram(void **state)
{
        (void)state;
        if (ram[0])
                unlink(ram);
        if (ram_dir[0])
                rmdir(ram_dir);
        ram[0] = ram_dir[0] = '\0';
        return 0;
}

/* A RAM file in a fresh directory under @base: page i filled with byte i. */
static void make_ram(const char *base)
{
        static char page[4096];

        snprintf(ram_dir, sizeof(ram_dir), "%s/test-workingset.XXXXXX", base);
        assert_non_null(mkdtemp(ram_dir));
        snprintf(ram, sizeof(ram), "%s/ram", ram_dir);
        FILE *f = fopen(ram, "w");
        assert_non_null(f);
        for (int i = 0; i < RAM_PAGES; i++) {
                memset(page, i, sizeof(page));
                assert_int_equal(fwrite(page, 1, sizeof(page), f), sizeof(page));
        }
        assert_int_equal(fclose(f), 0);
}

/* Which pages of @file are in the page cache, by mincore on a mapping of our
 * own (independent of vmm_ws_resident, which is under test). */
static void residency(const char *file, unsigned char vec[RAM_PAGES])
{
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        void *m = mmap(NULL, RAM_PAGES * 4096, PROT_READ, MAP_SHARED, fd, 0);
        assert_true(m != MAP_FAILED);
        assert_int_equal(mincore(m, RAM_PAGES * 4096, vec), 0);
        for (int i = 0; i < RAM_PAGES; i++)
                vec[i] &= 1;
        munmap(m, RAM_PAGES * 4096);
        close(fd);
}

static long count_resident(const unsigned char vec[RAM_PAGES])
{
        long n = 0;
        for (int i = 0; i < RAM_PAGES; i++)
                n += vec[i];
        return n;
}

/* The file still holds what was written: eviction drops cache, never data. */
static void assert_ram_intact(const char *file)
{
        static char page[4096], want[4096];
        int fd = open(file, O_RDONLY | O_CLOEXEC);

        assert_true(fd >= 0);
        for (int i = 0; i < RAM_PAGES; i++) {
                memset(want, i, sizeof(want));
                assert_int_equal(pread(fd, page, sizeof(page), (off_t)i * 4096), sizeof(page));
                assert_memory_equal(page, want, sizeof(page));
        }
        close(fd);
}

/*
 * Eviction must be observed on a disk file system: on tmpfs the page cache
 * *is* the file, so POSIX_FADV_DONTNEED cannot drop anything (see
 * test_evict_tmpfs). /var/tmp is on disk on usual systems, unlike /tmp,
 * which is often tmpfs; if it is tmpfs here too, say so and skip.
 */
static void test_prefetch_evict_disk(void **state)
{
        unsigned char vec[RAM_PAGES];
        struct rh_error err = {0};
        struct statfs sfs;
        uint64_t bytes = 0;
        long resident = -1;

        (void)state;
        assert_int_equal(statfs("/var/tmp", &sfs), 0);
        if (sfs.f_type == TMPFS_MAGIC) {
                fprintf(stderr, "skip: /var/tmp is tmpfs here, its pages cannot be evicted\n");
                skip();
        }
        make_ram("/var/tmp");

        /* Just written: every page is cached (dirty). */
        residency(ram, vec);
        assert_int_equal(count_resident(vec), RAM_PAGES);
        assert_int_equal(vmm_ws_resident(ram), RAM_PAGES);

        /* Evict writes the dirty pages back and drops them all. */
        assert_int_equal(vmm_ws_evict(ram, &resident, &err), 0);
        assert_int_equal(resident, 0);
        residency(ram, vec);
        assert_int_equal(count_resident(vec), 0);
        assert_int_equal(vmm_ws_resident(ram), 0);

        /* Prefetch reads exactly the listed pages back in. */
        uint64_t offs[] = { 0x1000, 0x2000, 0x3000, 0x10000 };
        assert_int_equal(vmm_ws_prefetch(ram, offs, 4, &bytes, &err), 0);
        assert_int_equal(bytes, 4 * 4096);
        residency(ram, vec);
        for (size_t i = 0; i < 4; i++)
                assert_int_equal(vec[offs[i] / 4096], 1);
        assert_int_equal(count_resident(vec), 4);
        assert_int_equal(vmm_ws_resident(ram), 4);

        /* A range that runs past the end is clamped to the file. */
        assert_int_equal(vmm_ws_prefetch_range(ram, 0xff000, 0x10000, &bytes, &err), 0);
        assert_int_equal(bytes, 4096);
        residency(ram, vec);
        assert_int_equal(vec[RAM_PAGES - 1], 1);
        assert_int_equal(count_resident(vec), 5);

        /* And evict drops them again; the data is still there. */
        resident = -1;
        assert_int_equal(vmm_ws_evict(ram, &resident, &err), 0);
        assert_int_equal(resident, 0);
        residency(ram, vec);
        assert_int_equal(count_resident(vec), 0);
        assert_ram_intact(ram);
}

/* On tmpfs, evict succeeds and drops nothing: the pages are the file. */
static void test_evict_tmpfs(void **state)
{
        unsigned char vec[RAM_PAGES];
        struct rh_error err = {0};
        struct statfs sfs;
        long resident = -1;

        (void)state;
        if (statfs("/dev/shm", &sfs) < 0 || sfs.f_type != TMPFS_MAGIC) {
                fprintf(stderr, "skip: /dev/shm is not a tmpfs here\n");
                skip();
        }
        make_ram("/dev/shm");
        assert_int_equal(vmm_ws_evict(ram, &resident, &err), 0);
        assert_int_equal(resident, RAM_PAGES);
        residency(ram, vec);
        assert_int_equal(count_resident(vec), RAM_PAGES);
        assert_ram_intact(ram);
}

static void test_missing_ram(void **state)
{
        uint64_t offs[] = { 0x1000 };
        struct rh_error err = {0};
        uint64_t bytes = 77;
        long resident = 77;

        (void)state;
        assert_int_equal(vmm_ws_prefetch("/nonexistent/ram", offs, 1, &bytes, &err), -ENOENT);
        assert_string_equal(err.msg, "/nonexistent/ram: No such file or directory");
        assert_int_equal(vmm_ws_prefetch_range("/nonexistent/ram", 0, 4096, &bytes, &err), -ENOENT);
        assert_string_equal(err.msg, "/nonexistent/ram: No such file or directory");
        assert_int_equal(bytes, 77); /* untouched on failure */
        assert_int_equal(vmm_ws_evict("/nonexistent/ram", &resident, &err), -ENOENT);
        assert_string_equal(err.msg, "/nonexistent/ram: No such file or directory");
        assert_int_equal(resident, 77);
        assert_int_equal(vmm_ws_resident("/nonexistent/ram"), -ENOENT);
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
                cmocka_unit_test_teardown(test_prefetch_evict_disk, remove_ram),
                cmocka_unit_test_teardown(test_evict_tmpfs, remove_ram),
                cmocka_unit_test(test_missing_ram),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
