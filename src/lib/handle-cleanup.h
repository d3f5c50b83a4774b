/* SPDX-License-Identifier: MIT */
/*
 * _cleanup_ helpers for librehome's handles, for the library itself and the
 * CLI: _cleanup_(rh_layout_freep) struct rh_layout *layout = NULL;
 * Not installed: the public headers stay plain C that any C or C++
 * consumer can include, without this project's GNU C helpers.
 */
#ifndef REHOME_LIB_HANDLE_CLEANUP_H
#define REHOME_LIB_HANDLE_CLEANUP_H

#include "cleanup.h"
#include "rehome/layout.h"
#include "rehome/patch.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct rh_layout *, rh_layout_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct rh_target *, rh_target_free)

#endif
