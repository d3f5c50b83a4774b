/* SPDX-License-Identifier: MIT */
/*
 * Small I/O helpers: whole reads and writes that retry on EINTR and short
 * transfers, positioned variants for memory files and /proc/<pid>/mem, and a
 * monotonic clock in nanoseconds.
 */
#ifndef REHOME_IO_H
#define REHOME_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Read exactly @len bytes. Returns 0, -errno, or -EIO on early EOF. */
int read_full(int fd, void *buf, size_t len);
/* Write exactly @len bytes. Returns 0 or -errno. */
int write_full(int fd, const void *buf, size_t len);
/* pread/pwrite exactly @len bytes at @off. -EIO on early EOF. */
int pread_full(int fd, void *buf, size_t len, off_t off);
int pwrite_full(int fd, const void *buf, size_t len, off_t off);
/* Read a whole small file (< @max bytes) into a NUL-terminated heap buffer. */
int read_file_alloc(const char *path, size_t max, char **ret_buf, size_t *ret_len);
/* CLOCK_MONOTONIC in ns. */
uint64_t now_ns(void);
/* CLOCK_REALTIME in ns. */
uint64_t realtime_ns(void);

#endif
