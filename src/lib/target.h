/* SPDX-License-Identifier: MIT */
/*
 * Private interface between target.c (where guest memory lives) and patch.c
 * (what is done with it): raw access by memory-file offset, and the list of
 * file-offset extents the target can actually read, for the scan.
 */
#ifndef REHOME_LIB_TARGET_H
#define REHOME_LIB_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rehome/patch.h"

/* Read @len bytes at memory-file offset @offset. Errors as rh_target_read. */
int target_read_offset(struct rh_target *t, uint64_t offset, void *buf, size_t len, struct rh_error *err);

/* Number of readable extents, in ascending offset order, non-overlapping. */
size_t target_n_extents(const struct rh_target *t);
/* Extent @i: [*ret_offset, *ret_offset + *ret_len). */
void target_extent(const struct rh_target *t, size_t i, uint64_t *ret_offset, uint64_t *ret_len);
/* Process targets whose memory file could be opened: scan the file, verify live. */
bool target_has_file(const struct rh_target *t);
uint64_t target_file_size(const struct rh_target *t);
/* Read the memory file itself (process targets only). -EFAULT outside it. */
int target_read_file(struct rh_target *t, uint64_t offset, void *buf, size_t len, struct rh_error *err);
/* "PATH" or "/proc/PID/mem (PATH)", for messages. */
const char *target_name(const struct rh_target *t);

#endif
