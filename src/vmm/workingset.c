/* SPDX-License-Identifier: MIT */
/*
 * Record-and-prefetch (REAP, ASPLOS'21) for templates whose RAM lives on a
 * disk: record the guest-RAM pages a handoff touches once, store them next
 * to the template as sorted file offsets, and read exactly those pages into
 * the page cache before a clone of a cold template resumes.
 *
 * File format (t->dir/workingset, text):
 *   rehome-workingset 1 ram_size=<bytes> pages=<n>
 *   <hex file offset>          one per line, page-aligned, strictly increasing
 * It is read back as untrusted input (vmm_ws_load).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "cleanup.h"
#include "io.h"
#include "rehome/layout.h"

#define PAGE 4096ull

int vmm_ws_save(const char *path, uint64_t ram_size, const uint64_t *offsets, size_t n,
                struct rh_error *err)
{
        char tmp[PATH_MAX + 8];
        FILE *f;

        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        f = fopen(tmp, "we");
        if (!f)
                return rh_error_set(err, -errno, "%s: %s", tmp, strerror(errno));
        fprintf(f, "rehome-workingset 1 ram_size=%" PRIu64 " pages=%zu\n", ram_size, n);
        for (size_t i = 0; i < n; i++)
                fprintf(f, "%" PRIx64 "\n", offsets[i]);
        if (fflush(f) != 0 || fsync(fileno(f)) < 0) {
                int e = errno;
                fclose(f);
                unlink(tmp);
                return rh_error_set(err, -e, "%s: %s", tmp, strerror(e));
        }
        fclose(f);
        if (rename(tmp, path) < 0) {
                int e = errno;
                unlink(tmp);
                return rh_error_set(err, -e, "%s: %s", path, strerror(e));
        }
        return 0;
}

int vmm_ws_load(const char *path, uint64_t ram_size, uint64_t **ret_offsets, size_t *ret_n,
                struct rh_error *err)
{
        _cleanup_free_ char *text = NULL;
        _cleanup_free_ uint64_t *offs = NULL;
        uint64_t max_pages = ram_size / PAGE, hdr_size = 0;
        size_t len = 0, n = 0, want = 0, line = 1;
        char *p, *nl;
        int r;

        /* 17 characters per line at most: cap the read by the RAM size. */
        r = read_file_alloc(path, 128 + (size_t)max_pages * 18, &text, &len);
        if (r < 0)
                return rh_error_set(err, r, "working set %s: %s%s", path, strerror(-r),
                                    r == -ENOENT ? " (record one: rehome template record-ws NAME)" : "");
        if (sscanf(text, "rehome-workingset 1 ram_size=%" SCNu64 " pages=%zu", &hdr_size, &want) != 2)
                return rh_error_set(err, -EBADMSG, "working set %s: bad header", path);
        if (hdr_size != ram_size)
                return rh_error_set(err, -EINVAL, "working set %s: recorded for %" PRIu64 " bytes of RAM, the template has %" PRIu64,
                                    path, hdr_size, ram_size);
        if (want > max_pages)
                return rh_error_set(err, -EINVAL, "working set %s: %zu pages, more than the RAM holds (%" PRIu64 ")",
                                    path, want, max_pages);
        offs = calloc(want ? want : 1, sizeof(*offs));
        if (!offs)
                return rh_error_set(err, -ENOMEM, "out of memory");
        p = strchr(text, '\n');
        while (p && *++p) {
                char *end;
                line++;
                nl = strchr(p, '\n');
                if (nl)
                        *nl = '\0';
                if (*p == '\0')
                        return rh_error_set(err, -EBADMSG, "working set %s line %zu: empty", path, line);
                errno = 0;
                uint64_t v = strtoull(p, &end, 16);
                if (errno || *end || end == p)
                        return rh_error_set(err, -EBADMSG, "working set %s line %zu: not a hex offset", path, line);
                if (v % PAGE || v >= ram_size)
                        return rh_error_set(err, -EINVAL, "working set %s line %zu: offset 0x%" PRIx64
                                            " not a page inside the %" PRIu64 "-byte RAM file", path, line, v, ram_size);
                if (n > 0 && v <= offs[n - 1])
                        return rh_error_set(err, -EINVAL, "working set %s line %zu: offsets not strictly increasing",
                                            path, line);
                if (n >= want)
                        return rh_error_set(err, -EINVAL, "working set %s: more offsets than the header's %zu", path, want);
                offs[n++] = v;
                p = nl;
        }
        if (n != want)
                return rh_error_set(err, -EINVAL, "working set %s: %zu offsets, header says %zu", path, n, want);
        *ret_offsets = TAKE_PTR(offs);
        *ret_n = n;
        return 0;
}

static int read_range(int fd, char *buf, size_t buf_len, uint64_t off, uint64_t len, uint64_t *bytes)
{
        while (len > 0) {
                size_t chunk = len < buf_len ? (size_t)len : buf_len;
                ssize_t k = pread(fd, buf, chunk, (off_t)off);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        break;
                *bytes += (uint64_t)k;
                off += (uint64_t)k;
                len -= (uint64_t)k;
        }
        return 0;
}

int vmm_ws_prefetch(const char *ram_path, const uint64_t *offsets, size_t n, uint64_t *ret_bytes,
                    struct rh_error *err)
{
        _cleanup_close_ int fd = -EBADF;
        static _Thread_local char buf[1 << 20];
        uint64_t bytes = 0;
        int r;

        fd = open(ram_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return rh_error_set(err, -errno, "%s: %s", ram_path, strerror(errno));
        /* Only these pages: no readahead around them. */
        posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
        for (size_t i = 0; i < n;) {
                size_t j = i + 1;
                while (j < n && offsets[j] == offsets[j - 1] + PAGE && (j - i) * PAGE < sizeof(buf))
                        j++;
                r = read_range(fd, buf, sizeof(buf), offsets[i], (j - i) * PAGE, &bytes);
                if (r < 0)
                        return rh_error_set(err, r, "prefetch %s at 0x%" PRIx64 ": %s", ram_path, offsets[i],
                                            strerror(-r));
                i = j;
        }
        if (ret_bytes)
                *ret_bytes = bytes;
        return 0;
}

int vmm_ws_prefetch_range(const char *ram_path, uint64_t offset, uint64_t len, uint64_t *ret_bytes,
                          struct rh_error *err)
{
        _cleanup_close_ int fd = -EBADF;
        static _Thread_local char buf[1 << 20];
        uint64_t bytes = 0;
        int r;

        fd = open(ram_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return rh_error_set(err, -errno, "%s: %s", ram_path, strerror(errno));
        r = read_range(fd, buf, sizeof(buf), offset, len, &bytes);
        if (r < 0)
                return rh_error_set(err, r, "prefetch %s: %s", ram_path, strerror(-r));
        if (ret_bytes)
                *ret_bytes = bytes;
        return 0;
}

long vmm_ws_resident(const char *path)
{
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        long n = 0;

        if (fd < 0 || fstat(fd, &st) < 0 || st.st_size == 0)
                return fd < 0 ? -errno : 0;
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED)
                return -errno;
        size_t pages = ((size_t)st.st_size + PAGE - 1) / PAGE;
        unsigned char *vec = malloc(pages);
        if (!vec) {
                munmap(m, (size_t)st.st_size);
                return -ENOMEM;
        }
        if (mincore(m, (size_t)st.st_size, vec) == 0)
                for (size_t i = 0; i < pages; i++)
                        n += vec[i] & 1;
        else
                n = -errno;
        free(vec);
        munmap(m, (size_t)st.st_size);
        return n;
}

int vmm_ws_evict(const char *ram_path, long *ret_resident, struct rh_error *err)
{
        _cleanup_close_ int fd = open(ram_path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return rh_error_set(err, -errno, "%s: %s", ram_path, strerror(errno));
        /* Dirty pages cannot be dropped: write them back first. */
        if (fdatasync(fd) < 0)
                return rh_error_set(err, -errno, "fdatasync %s: %s", ram_path, strerror(errno));
        int r = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        if (r != 0)
                return rh_error_set(err, -r, "posix_fadvise DONTNEED %s: %s", ram_path, strerror(r));
        if (ret_resident)
                *ret_resident = vmm_ws_resident(ram_path);
        return 0;
}
