/* SPDX-License-Identifier: MIT */
/*
 * One clone's lifecycle, in explicit stages (docs/ARCHITECTURE.md):
 *
 *   clone_prepare    identity checked and reserved, record written (owner =
 *                    this process) under the state-directory lock
 *   clone_spawn      the VMM process, paused, its monitor answering; its pid
 *                    and start time are in the record before anything waits
 *   clone_load_state the template's device state loaded (RAM is mapped)
 *   clone_handoff    the target opened once, the mailbox patched once
 *   clone_resume     the vCPUs run (after an optional working-set prefetch)
 *   clone_wait_ack   rh_ack_wait on the mailbox record and the UDP line
 *   clone_finish     keep (released to outlive us) or destroy, record final
 *
 * struct clone owns everything a fork holds: the record, the monitor
 * connection, the layout, the target and the UDP socket; clone_free
 * releases them all, whatever stage was reached. A benchmark measures
 * between stages (see bench.c) instead of hooking inside them.
 *
 * The VMM-specific half of spawn, load_state, target and resume is struct
 * vmm_ops (vmm.h); QEMU's is vmm_qemu_ops in qemu.c.
 */
#ifndef REHOME_VMM_CLONE_H
#define REHOME_VMM_CLONE_H

#include "rehome/ack.h"
#include "rehome/layout.h"
#include "rehome/patch.h"
#include "vmm.h"

struct clone {
        const struct vmm_template *t;
        const struct vmm_fork_opts *o;
        const struct vmm_ops *ops;
        struct vmm_net net;
        struct vmm_clone rec; /* the record; copied to res->clone at the end */
        struct qmp *qmp;
        struct rh_layout *layout;
        struct rh_target *target;
        int udp_fd;
        int hfm_fd; /* UDP socket for hypeman fork mailbox acks (-EBADF: none) */
        struct rh_ipaddr ip; /* the clone's address: asked for, or from the IPAM */
        uint8_t prefix;
        /* The extra NICs of a multi-NIC template (NIC K at [K - 1]): network, address. */
        struct vmm_net xnet[VMM_MAX_NICS - 1];
        struct rh_ipaddr xip[VMM_MAX_NICS - 1];
        uint8_t xprefix[VMM_MAX_NICS - 1];
        struct rh_request req;
        uint32_t seq; /* the request's seq as written */
        struct rh_ack_wait_result wait;
        struct vmm_fork_result *res;
        char log_path[PATH_MAX + 16];
        bool tap_made;     /* this fork made (or took over) the tap */
        bool from_pool;    /* a warm clone: spawned earlier */
        uint64_t t_start, t_stage, t_cont;
};

/* Prepare @c for a fork of @t with @o; results go to @res (zeroed here). */
int clone_prepare(struct clone *c, const struct vmm_template *t, const struct vmm_fork_opts *o,
                  struct vmm_fork_result *res, struct rh_error *err);
int clone_spawn(struct clone *c, struct rh_error *err);
int clone_load_state(struct clone *c, struct rh_error *err);
int clone_handoff(struct clone *c, struct rh_error *err);
int clone_resume(struct clone *c, struct rh_error *err);
/* Returns 0 (ack applied), -EBADE (rejected/failed: the agent's text, escaped, in @err), -ETIMEDOUT, -ECHILD. */
int clone_wait_ack(struct clone *c, struct rh_error *err);
/*
 * End the fork with the outcome @r of the stages: on success (or with
 * --keep and a live VMM) the clone is released to outlive this process and
 * its record says so; otherwise everything it made is removed. Returns @r
 * (with the clone id as context on failure).
 */
int clone_finish(struct clone *c, int r, struct rh_error *err);
/* Release what @c holds (monitor, target, layout, socket); never the VMM. */
void clone_free(struct clone *c);

/* Every stage in order, then clone_finish: one fork. */
int clone_run(const struct vmm_template *t, const struct vmm_fork_opts *o, struct vmm_fork_result *res,
              struct rh_error *err);

#endif
