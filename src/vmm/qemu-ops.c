/* SPDX-License-Identifier: MIT */
/*
 * QEMU's half of a clone's stages (struct vmm_ops, clone.h):
 *
 *   spawn       tap on the bridge; QEMU with the template's command line but
 *               share=off (a MAP_PRIVATE, copy-on-write mapping of the
 *               template RAM), a new vmgenid guid, -incoming defer -S and the
 *               state directory's marker; pid and start time recorded at
 *               once; QMP handshake
 *   load_state  x-ignore-shared, migrate-incoming exec:cat state, until the
 *               MIGRATION event says completed (device state only: RAM is
 *               the mapped file) or failed
 *   open_target /proc/<pid>/mem at the host address of the RAM mapping: the
 *               patch makes the written page private to this clone, the
 *               template file is not touched
 *   resume      QMP cont
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "clone.h"
#include "qmp.h"
#include "vmm.h"

static int qemu_clone_spawn(struct clone *c, struct rh_error *err)
{
        struct qemu_spec spec;
        char marker[96];
        int r;

        r = vmm_tap_create(&c->net, c->rec.tap, err);
        if (r < 0)
                return r;
        c->tap_made = true;
        /* The extra NICs' taps, each on its own network's bridge (vmm_clone_destroy removes them). */
        for (unsigned k = 1; k < c->rec.nics; k++) {
                r = vmm_tap_create(&c->xnet[k - 1], c->rec.xnic[k - 1].tap, err);
                if (r < 0)
                        return rh_error_prefix(err, r, "NIC %u", k);
        }
        vmm_marker(c->o->state_dir, "clone", c->rec.id, marker, sizeof(marker));
        qemu_spec_from_template(&spec, c->t);
        spec.vmgenid = c->rec.vmgenid;
        spec.tap = c->rec.tap;
        for (unsigned k = 1; k < c->rec.nics && k < VMM_MAX_NICS; k++)
                spec.xtap[k - 1] = c->rec.xnic[k - 1].tap;
        spec.netns = c->net.netns;
        spec.qmp_path = c->rec.qmp_path;
        spec.console_path = c->rec.console_path;
        char console_sock[PATH_MAX + 16];
        snprintf(console_sock, sizeof(console_sock), "%s/console.sock", c->rec.dir);
        spec.console_sock = console_sock;
        spec.log_path = c->log_path;
        spec.incoming = true;
        spec.marker = marker;
        /*
         * A rebooting clone would boot the template's kernel command line
         * (rehome.ip= of the template) and come back as the template: it
         * stops instead, and `clone list` says so.
         */
        spec.no_reboot = true;
        r = qemu_spawn(&spec, &c->rec.pid, err);
        if (r < 0)
                return r;
        /* Recorded before anything waits: from here a SIGKILL of rehome leaves
         * a QEMU that the record (and the marker) lets a later rehome end. */
        c->rec.starttime = proc_starttime(c->rec.pid);
        r = vmm_clone_save(&c->rec, err);
        if (r < 0)
                return r;
        return qmp_connect_child(c->rec.qmp_path, c->rec.pid, c->o->timeout_ms, &c->qmp, err);
}

static int qemu_clone_load_state(struct clone *c, int timeout_ms, struct rh_error *err)
{
        int r = qemu_incoming(c->qmp, c->t->state_path, true, timeout_ms, err);

        if (r < 0)
                rh_error_prefix(err, r,
                                "incoming migration from %s (if the template is damaged: "
                                "rehome template rm %s && rehome template create %s)",
                                c->t->state_path, c->t->name, c->t->name);
        return r;
}

static int qemu_clone_open_target(struct clone *c, struct rh_error *err)
{
        int r = rh_layout_parse(c->t->layout, &c->layout, err);

        if (r < 0)
                return r;
        return rh_target_open_pid(c->rec.pid, c->t->ram_path, c->layout, true, &c->target, err);
}

static int qemu_clone_resume(struct clone *c, struct rh_error *err)
{
        return qmp_execute(c->qmp, "cont", NULL, 5000, NULL, err);
}

const struct vmm_ops vmm_qemu_ops = {
        .name = "qemu",
        .template_create = qemu_template_create,
        .spawn = qemu_clone_spawn,
        .load_state = qemu_clone_load_state,
        .open_target = qemu_clone_open_target,
        .resume = qemu_clone_resume,
        .kill = qemu_kill,
};
