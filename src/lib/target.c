/* SPDX-License-Identifier: MIT */
/*
 * Targets: the places guest memory can be read and written.
 *
 *  - a memory file: pread/pwrite at the layout's file offset;
 *  - a live (paused) VMM: /proc/<pid>/mem at the host virtual address where
 *    the VMM mapped that file offset, found through /proc/<pid>/maps.
 *    Writing through /proc/<pid>/mem to a MAP_PRIVATE mapping breaks
 *    copy-on-write for that page only: the clone gets its private copy and
 *    the file (the template shared by every clone) is left unchanged.
 *
 * Both kinds are described the same way, as sorted "pieces" of the memory
 * file {file offset, length, host address}: a file is one piece; a process
 * has one piece per mapping of the file (a VMM may map a file in several
 * pieces, each with its own pgoff). Every access is checked against the
 * layout first and the pieces second, so nothing outside guest RAM, the
 * file, or the mappings is ever touched.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cleanup.h"
#include "handle-cleanup.h"
#include "rehome/patch.h"
#include "target.h"

#define MAX_PIECES 256

struct piece {
        uint64_t offset; /* file offset */
        uint64_t len;
        uint64_t hva; /* host address of offset (process targets) */
        bool writable;
};

struct rh_target {
        bool is_pid;
        bool writable;
        int fd;             /* the file, or /proc/<pid>/mem */
        int file_fd;        /* process targets: the memory file itself, read-only, or -EBADF */
        uint64_t file_size; /* its size */
        const struct rh_layout *layout;
        char name[PATH_MAX + 64];
        size_t n_pieces;
        struct piece pieces[MAX_PIECES];
        struct rh_target_stats stats;
};

static int target_alloc(const struct rh_layout *layout, bool writable, struct rh_target **ret,
                        struct rh_error *err)
{
        struct rh_target *t = calloc(1, sizeof(*t));

        if (!t)
                return rh_error_set(err, ENOMEM, "target: out of memory");
        t->fd = -EBADF;
        t->file_fd = -EBADF;
        t->layout = layout;
        t->writable = writable;
        *ret = t;
        return 0;
}

struct rh_target *rh_target_free(struct rh_target *target)
{
        if (!target)
                return NULL;
        if (target->fd >= 0)
                close(target->fd);
        if (target->file_fd >= 0)
                close(target->file_fd);
        free(target);
        return NULL;
}

int rh_target_open_file(const char *path, const struct rh_layout *layout, bool writable,
                        struct rh_target **ret_target, struct rh_error *err)
{
        _cleanup_(rh_target_freep) struct rh_target *t = NULL;
        struct stat st;
        int r;

        r = target_alloc(layout, writable, &t, err);
        if (r < 0)
                return r;
        snprintf(t->name, sizeof(t->name), "%s", path);
        t->fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
        if (t->fd < 0 || fstat(t->fd, &st) < 0) {
                r = -errno;
                return rh_error_set(err, r, "%s: %s", path, strerror(-r));
        }
        if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
                return rh_error_set(err, EINVAL, "%s: not a regular file", path);
        if (S_ISBLK(st.st_mode)) {
                off_t end = lseek(t->fd, 0, SEEK_END);
                st.st_size = end < 0 ? 0 : end;
        }
        if (st.st_size > 0) {
                t->n_pieces = 1;
                t->pieces[0] = (struct piece){.offset = 0, .len = (uint64_t)st.st_size, .writable = writable};
        }
        *ret_target = TAKE_PTR(t);
        return 0;
}

/* Insert a mapping piece, keeping pieces sorted and non-overlapping. */
static int add_piece(struct rh_target *t, const struct piece *p, struct rh_error *err)
{
        size_t i;

        for (i = 0; i < t->n_pieces; i++) {
                struct piece *q = &t->pieces[i];

                if (p->offset < q->offset + q->len && q->offset < p->offset + p->len) {
                        /* Same file bytes mapped twice: the VM's RAM mapping is the writable one. */
                        if (p->writable && !q->writable && p->offset == q->offset && p->len == q->len)
                                *q = *p;
                        return 0;
                }
                if (p->offset < q->offset)
                        break;
        }
        if (t->n_pieces >= MAX_PIECES)
                return rh_error_set(err, E2BIG, "%s: file mapped in more than %d pieces", t->name,
                                    MAX_PIECES);
        memmove(&t->pieces[i + 1], &t->pieces[i], (t->n_pieces - i) * sizeof(t->pieces[0]));
        t->pieces[i] = *p;
        t->n_pieces++;
        return 0;
}

static int read_maps(struct rh_target *t, pid_t pid, const char *mem_file, const struct stat *st,
                     struct rh_error *err)
{
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *line = NULL;
        char maps[64], real[PATH_MAX];
        size_t cap = 0;
        bool have_real;
        int r;

        have_real = realpath(mem_file, real) != NULL;
        snprintf(maps, sizeof(maps), "/proc/%d/maps", (int)pid);
        f = fopen(maps, "re");
        if (!f) {
                r = errno;
                if (r == ENOENT)
                        return rh_error_set(err, ESRCH, "no process %d", (int)pid);
                return rh_error_set(err, r, "%s: %s", maps, strerror(r));
        }
        while (getline(&line, &cap, f) > 0) {
                unsigned long long start, end, pgoff, inode;
                unsigned int dmaj, dmin;
                char perms[8];
                int path_at = 0;
                struct piece p;

                if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu %n", &start, &end, perms, &pgoff, &dmaj,
                           &dmin, &inode, &path_at) < 7 ||
                    end <= start)
                        continue;
                bool same_inode = inode != 0 && inode == (unsigned long long)st->st_ino &&
                                  dmaj == major(st->st_dev) && dmin == minor(st->st_dev);
                bool same_path = false;
                if (!same_inode && have_real && path_at > 0) {
                        char *path = line + path_at;
                        path[strcspn(path, "\n")] = '\0';
                        same_path = strcmp(path, real) == 0;
                }
                if (!same_inode && !same_path)
                        continue;
                if (pgoff > UINT64_MAX - (end - start))
                        continue;
                p = (struct piece){
                        .offset = pgoff, .len = end - start, .hva = start, .writable = perms[1] == 'w'};
                r = add_piece(t, &p, err);
                if (r < 0)
                        return r;
        }
        if (t->n_pieces == 0)
                return rh_error_set(err, ENOENT, "%s is not mapped by process %d", mem_file, (int)pid);
        return 0;
}

int rh_target_open_pid(pid_t pid, const char *mem_file, const struct rh_layout *layout, bool writable,
                       struct rh_target **ret_target, struct rh_error *err)
{
        _cleanup_(rh_target_freep) struct rh_target *t = NULL;
        struct stat st;
        char mem[64];
        int r;

        if (pid <= 0)
                return rh_error_set(err, ESRCH, "no process %d", (int)pid);
        if (stat(mem_file, &st) < 0) {
                r = errno;
                return rh_error_set(err, r, "%s: %s", mem_file, strerror(r));
        }
        r = target_alloc(layout, writable, &t, err);
        if (r < 0)
                return r;
        t->is_pid = true;
        snprintf(mem, sizeof(mem), "/proc/%d/mem", (int)pid);
        snprintf(t->name, sizeof(t->name), "%s (%s)", mem, mem_file);
        r = read_maps(t, pid, mem_file, &st, err);
        if (r < 0)
                return r;
        t->fd = open(mem, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC);
        if (t->fd < 0) {
                r = errno;
                if (r == ENOENT)
                        return rh_error_set(err, ESRCH, "no process %d", (int)pid);
                return rh_error_set(err, r, "%s: %s", mem, strerror(r));
        }
        /*
         * The file itself, for the scan: reading it finds candidates without
         * faulting every page into the process (which, on tmpfs, would
         * allocate every hole of a sparse template). Optional.
         */
        t->file_fd = open(mem_file, O_RDONLY | O_CLOEXEC);
        if (t->file_fd >= 0 && (fstat(t->file_fd, &st) < 0 || !S_ISREG(st.st_mode))) {
                close(t->file_fd);
                t->file_fd = -EBADF;
        }
        if (t->file_fd >= 0)
                t->file_size = (uint64_t)st.st_size;
        *ret_target = TAKE_PTR(t);
        return 0;
}

/*
 * Transfer [offset, offset+len) piece by piece (a range may span adjacent
 * pieces of a process mapping). Each pread/pwrite is counted.
 */
static int transfer(struct rh_target *t, bool write, uint64_t offset, void *buf, size_t len,
                    struct rh_error *err)
{
        uint8_t *p = buf;

        while (len > 0) {
                const struct piece *pc = NULL;

                for (size_t i = 0; i < t->n_pieces; i++)
                        if (offset >= t->pieces[i].offset &&
                            offset - t->pieces[i].offset < t->pieces[i].len) {
                                pc = &t->pieces[i];
                                break;
                        }
                if (!pc) {
                        if (t->is_pid)
                                return rh_error_set(err, EFAULT,
                                                    "%s: file offset 0x%" PRIx64 " is not mapped", t->name,
                                                    offset);
                        return rh_error_set(err, EFAULT,
                                            "%s: file offset 0x%" PRIx64
                                            " is past the end of the file (0x%" PRIx64 " bytes)",
                                            t->name, offset, t->n_pieces ? t->pieces[0].len : 0);
                }
                uint64_t avail = pc->len - (offset - pc->offset);
                size_t n = len < avail ? len : (size_t)avail;
                uint64_t pos = t->is_pid ? pc->hva + (offset - pc->offset) : offset;

                if (pos > (uint64_t)INT64_MAX)
                        return rh_error_set(err, EFAULT, "%s: position 0x%" PRIx64 " out of range", t->name,
                                            pos);
                while (n > 0) {
                        ssize_t k;

                        if (write) {
                                k = pwrite(t->fd, p, n, (off_t)pos);
                                t->stats.write_calls++;
                        } else {
                                k = pread(t->fd, p, n, (off_t)pos);
                                t->stats.read_calls++;
                        }
                        if (k < 0) {
                                int e = errno;
                                if (e == EINTR)
                                        continue;
                                return rh_error_set(err, e, "%s: %s at file offset 0x%" PRIx64 ": %s",
                                                    t->name, write ? "write" : "read", offset, strerror(e));
                        }
                        if (k == 0)
                                return rh_error_set(err, EIO, "%s: short %s at file offset 0x%" PRIx64,
                                                    t->name, write ? "write" : "read", offset);
                        if (write)
                                t->stats.bytes_written += (uint64_t)k;
                        else
                                t->stats.bytes_read += (uint64_t)k;
                        p += k;
                        pos += (uint64_t)k;
                        offset += (uint64_t)k;
                        n -= (size_t)k;
                        len -= (size_t)k;
                }
        }
        return 0;
}

int target_read_offset(struct rh_target *t, uint64_t offset, void *buf, size_t len, struct rh_error *err)
{
        return transfer(t, false, offset, buf, len, err);
}

bool target_has_file(const struct rh_target *t)
{
        return t->is_pid && t->file_fd >= 0;
}

uint64_t target_file_size(const struct rh_target *t)
{
        return target_has_file(t) ? t->file_size : 0;
}

int target_read_file(struct rh_target *t, uint64_t offset, void *buf, size_t len, struct rh_error *err)
{
        uint8_t *p = buf;

        if (!target_has_file(t) || offset > t->file_size || len > t->file_size - offset)
                return rh_error_set(err, EFAULT, "%s: file offset 0x%" PRIx64 " is outside the file", t->name,
                                    offset);
        while (len > 0) {
                ssize_t k = pread(t->file_fd, p, len, (off_t)offset);

                t->stats.read_calls++;
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return rh_error_set(err, k < 0 ? errno : EIO,
                                            "%s: reading the file at 0x%" PRIx64 " failed", t->name, offset);
                t->stats.bytes_read += (uint64_t)k;
                p += k;
                offset += (uint64_t)k;
                len -= (size_t)k;
        }
        return 0;
}

static int gpa_io(struct rh_target *t, bool write, uint64_t gpa, void *buf, size_t len, struct rh_error *err)
{
        uint64_t offset;
        int r;

        if (write && !t->writable)
                return rh_error_set(err, EBADF, "%s: opened read-only", t->name);
        r = rh_layout_gpa_to_offset(t->layout, gpa, len, &offset, err);
        if (r < 0)
                return r;
        return transfer(t, write, offset, buf, len, err);
}

int rh_target_read(struct rh_target *target, uint64_t gpa, void *buf, size_t len, struct rh_error *err)
{
        return gpa_io(target, false, gpa, buf, len, err);
}

int rh_target_write(struct rh_target *target, uint64_t gpa, const void *buf, size_t len, struct rh_error *err)
{
        /* transfer() does not write through buf when writing. */
        return gpa_io(target, true, gpa, (void *)buf, len, err);
}

const struct rh_layout *rh_target_layout(const struct rh_target *target)
{
        return target->layout;
}

void rh_target_get_stats(const struct rh_target *target, struct rh_target_stats *ret_stats)
{
        *ret_stats = target->stats;
}

void rh_target_reset_stats(struct rh_target *target)
{
        memset(&target->stats, 0, sizeof(target->stats));
}

size_t target_n_extents(const struct rh_target *t)
{
        return t->n_pieces;
}

void target_extent(const struct rh_target *t, size_t i, uint64_t *ret_offset, uint64_t *ret_len)
{
        *ret_offset = t->pieces[i].offset;
        *ret_len = t->pieces[i].len;
}

const char *target_name(const struct rh_target *t)
{
        return t->name;
}
