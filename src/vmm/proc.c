/* SPDX-License-Identifier: MIT */
/*
 * What /proc says about a process: its start time (which, with the pid,
 * names a process across pid reuse), and for the benchmarks and the working
 * set the guest-RAM mapping of a clone's VMM: smaps figures, clear_refs,
 * pagemap presence, I/O and fault counters.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "cleanup.h"
#include "io.h"
#include "vmm.h"

#define PAGE 4096ull

unsigned long long proc_starttime(pid_t pid)
{
        char path[64], buf[1024];
        _cleanup_close_ int fd = -EBADF;
        ssize_t n;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        n = read(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
                return 0;
        buf[n] = '\0';
        char *p = strrchr(buf, ')');
        if (!p || !p[1] || !p[2])
                return 0;
        /* After ") ": field 3 (state) ... field 22 (starttime). A zombie or
         * dead process holds no tap and no memory: it counts as gone. */
        p += 2;
        if (p[0] == 'Z' || p[0] == 'X' || p[0] == 'x')
                return 0;
        for (int field = 3; field < 22 && p; field++) {
                p = strchr(p, ' ');
                if (p)
                        p++;
        }
        return p ? strtoull(p, NULL, 10) : 0;
}


/* ---- /proc measurements ----------------------------------------------------- */

static bool is_ram_line(const char *line, const char *ram_path, unsigned long long *start,
                        unsigned long long *end, unsigned long long *off)
{
        char perms[8], path[PATH_MAX + 32];
        int n = sscanf(line, "%llx-%llx %7s %llx %*s %*s %4127[^\n]", start, end, perms, off, path);
        if (n != 5)
                return false;
        char *p = path;
        while (*p == ' ')
                p++;
        size_t len = strlen(ram_path);
        return strncmp(p, ram_path, len) == 0 && (p[len] == '\0' || strcmp(p + len, " (deleted)") == 0);
}

int bench_ram_mapping(pid_t pid, const char *ram_path, struct bench_mapping *ret)
{
        char path[64], line[PATH_MAX + 256];
        _cleanup_fclose_ FILE *f = NULL;

        snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f)) {
                unsigned long long s, e, o;
                if (is_ram_line(line, ram_path, &s, &e, &o)) {
                        /* The largest mapping of the file is guest RAM. */
                        if (e - s > ret->end - ret->start || !ret->end) {
                                ret->start = s;
                                ret->end = e;
                                ret->file_offset = o;
                        }
                }
        }
        return ret->end ? 0 : -ENOENT;
}

int bench_smaps_ram(pid_t pid, const char *ram_path, struct bench_smaps *ret)
{
        char path[64], line[PATH_MAX + 256];
        _cleanup_fclose_ FILE *f = NULL;
        struct bench_smaps s = { 0 };
        bool in = false, found = false;

        snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f)) {
                unsigned long long a, b, o;
                long v;
                if (strchr(line, '-') && strchr(line, '-') < strchr(line, ' ') &&
                    sscanf(line, "%llx-%llx", &a, &b) == 2) {
                        in = is_ram_line(line, ram_path, &a, &b, &o);
                        found |= in;
                        continue;
                }
                if (!in)
                        continue;
                if (sscanf(line, "Rss: %ld kB", &v) == 1)
                        s.rss_kb += v;
                else if (sscanf(line, "Referenced: %ld kB", &v) == 1)
                        s.referenced_kb += v;
                else if (sscanf(line, "Anonymous: %ld kB", &v) == 1)
                        s.anonymous_kb += v;
                else if (sscanf(line, "Private_Dirty: %ld kB", &v) == 1)
                        s.private_dirty_kb += v;
        }
        if (!found)
                return -ENOENT;
        *ret = s;
        return 0;
}

int proc_rollup_private_kb(pid_t pid, long *ret)
{
        char path[64], line[256];
        _cleanup_fclose_ FILE *f = NULL;
        long sum = 0, v;

        snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "Private_Dirty: %ld kB", &v) == 1 || sscanf(line, "Private_Clean: %ld kB", &v) == 1)
                        sum += v;
        *ret = sum;
        return 0;
}

int bench_clear_refs(pid_t pid)
{
        char path[64];
        _cleanup_close_ int fd = -EBADF;

        snprintf(path, sizeof(path), "/proc/%d/clear_refs", (int)pid);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        return write_full(fd, "1", 1);
}

int bench_read_bytes(pid_t pid, uint64_t *ret)
{
        char path[64], line[128];
        _cleanup_fclose_ FILE *f = NULL;
        unsigned long long v;

        snprintf(path, sizeof(path), "/proc/%d/io", (int)pid);
        f = fopen(path, "re");
        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "read_bytes: %llu", &v) == 1) {
                        *ret = v;
                        return 0;
                }
        return -ENODATA;
}

/* majflt of /proc/@pid/stat: faults that waited for I/O, all threads. */
int proc_majflt(pid_t pid, uint64_t *ret)
{
        char path[64];
        _cleanup_free_ char *text = NULL;
        unsigned long long v;
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        if (read_file_alloc(path, 4096, &text, NULL) < 0)
                return -ENOENT;
        char *p = strrchr(text, ')');
        /* after ')': state ppid pgrp session tty tpgid flags minflt cminflt majflt */
        if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %llu", &v) != 1)
                return -EBADMSG;
        *ret = v;
        return 0;
}

long bench_present_pages(pid_t pid, const char *ram_path, uint8_t *bitmap, uint64_t file_pages)
{
        struct bench_mapping m = { 0 };
        char path[64];
        _cleanup_close_ int fd = -EBADF;
        uint64_t buf[512];
        long n = 0;
        int r;

        r = bench_ram_mapping(pid, ram_path, &m);
        if (r < 0)
                return r;
        snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        uint64_t first = m.start / PAGE, count = (m.end - m.start) / PAGE;
        for (uint64_t i = 0; i < count;) {
                uint64_t k = count - i < 512 ? count - i : 512;
                r = pread_full(fd, buf, k * 8, (off_t)((first + i) * 8));
                if (r < 0)
                        return r;
                for (uint64_t j = 0; j < k; j++) {
                        uint64_t page = m.file_offset / PAGE + i + j;
                        if ((buf[j] >> 63) & 1) {
                                n++;
                                if (page < file_pages)
                                        bitmap[page] = 1;
                        }
                }
                i += k;
        }
        return n;
}

/*
 * Map every page of the clone's RAM that the template file holds (data
 * extents only: reading a tmpfs hole through a private mapping would
 * allocate it) by reading it through /proc/<pid>/mem. After this, a page the
 * guest touches raises no fault and no fault-around, so clear_refs +
 * Referenced counts exactly the pages touched. Returns bytes read.
 */
long long proc_prefault_ram(pid_t pid, const char *ram_path)
{
        struct bench_mapping m = { 0 };
        char path[64];
        static _Thread_local char buf[1 << 20];
        _cleanup_close_ int mem = -EBADF, file = -EBADF;
        long long total = 0;
        int r;

        r = bench_ram_mapping(pid, ram_path, &m);
        if (r < 0)
                return r;
        snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
        mem = open(path, O_RDONLY | O_CLOEXEC);
        file = open(ram_path, O_RDONLY | O_CLOEXEC);
        if (mem < 0 || file < 0)
                return -errno;
        uint64_t lo = m.file_offset, hi = m.file_offset + (m.end - m.start);
        off_t pos = (off_t)lo;
        while ((uint64_t)pos < hi) {
                off_t data = lseek(file, pos, SEEK_DATA);
                if (data < 0 || (uint64_t)data >= hi)
                        break;
                off_t hole = lseek(file, data, SEEK_HOLE);
                if (hole < 0 || (uint64_t)hole > hi)
                        hole = (off_t)hi;
                for (off_t o = data; o < hole;) {
                        size_t k = (size_t)(hole - o) < sizeof(buf) ? (size_t)(hole - o) : sizeof(buf);
                        ssize_t got = pread(mem, buf, k, (off_t)(m.start + ((uint64_t)o - lo)));
                        if (got <= 0)
                                return got < 0 ? -errno : -EIO;
                        total += got;
                        o += got;
                }
                pos = hole;
        }
        return total;
}


bool proc_fully_gone(pid_t pid)
{
        char path[64], buf[4096];
        _cleanup_close_ int fd = -EBADF;
        ssize_t n;

        /*
         * The thread-group leader shows state Z as soon as it exits, while
         * its other threads may still be tearing down (and holding the fd
         * table: a tap stays busy until the last one is gone). Gone means no
         * /proc entry, or a zombie with a single thread left.
         */
        if (proc_starttime(pid) != 0)
                return false;
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return true;
        n = read(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
                return true;
        buf[n] = '\0';
        const char *t = strstr(buf, "\nThreads:");
        return !t || strtol(t + 9, NULL, 10) <= 1;
}

/* Here, not in signals.c: every file that forks children needs it, and signals.c needs them. */
void vmm_signals_child(void)
{
        sigset_t none;

        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
}
