#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Counting instead of timing (issue 12): a template made with
# `template create --icount` runs QEMU with -icount shift=0,sleep=off (and its
# clones inherit it), so the agent's CLOCK_MONOTONIC stamps in the ack count
# guest instructions. Checks that the record says icount, that the clones'
# QEMU carries -icount, that every fork's ack has the per-stage counts and
# the agent's per-step costs, non-zero where the step does work, and that two
# forks of the same request shape agree within 5 % on read -> applied: of
# three forks, the two closest. The count is of every guest instruction in
# the window, so an asynchronous event that lands inside it (the vmgenid ACPI
# notify, a packet from the bridge, a guest timer), whose instruction depends
# on host timing, can add to one fork; a third fork keeps that from failing
# the check while a real regression (no two alike) still does.
#
# Usage: test-icount.sh REHOME IMAGE_DIR. Exit 77 (skip) without root, QEMU or
# the guest image.
. "$(dirname "$0")/test-fork-lib.sh"
fork_setup icount "$@"

template_create tpl --icount --accel tcg
rh --json template show tpl 2>/dev/null | grep -q '"icount": true' && ok "template record: icount" ||
        fail "template show tpl does not say icount: $(rh --json template show tpl 2>&1 | head -c 400)"

for i in 1 2 3; do
        ip=10.88.0.$((20 + i))
        rh --json fork tpl --ip "$ip/24" --timeout 120s > "$SD/fork$i.json" 2> "$SD/fork$i.err" ||
                { cat "$SD/fork$i.err"; die "fork $i failed"; }
        pid=$(sed -n 's/.*"pid": \([0-9]*\).*/\1/p' "$SD/fork$i.json" | head -n 1)
        if [ -n "$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "-icount shift=0,sleep=off"; then
                ok "clone $i's QEMU (pid $pid) runs with -icount shift=0,sleep=off"
        else
                fail "clone $i's QEMU (pid '$pid') has no -icount"
        fi
        rh clone rm --all >/dev/null 2>&1
done

python3 - "$SD/fork1.json" "$SD/fork2.json" "$SD/fork3.json" <<'PY' && ok "instruction counts present, non-zero, two of three forks within 5 %" || fail "instruction counts (above)"
import json, sys
runs = []
for path in sys.argv[1:]:
    d = json.load(open(path))
    d = d["forks"][0]
    g = d.get("guest_ns")
    assert g, "no guest_ns in %s: %s" % (path, d)
    for k in ("signal_read", "read_applied", "applied_ack"):
        assert isinstance(g[k], int) and g[k] >= 0, (k, g)
    assert g["read_applied"] > 0, g
    s = g["steps"]
    for k in ("validate", "link", "addresses", "routes", "announce", "hostname"):
        assert s[k] > 0, ("step", k, s)
    assert g["syscalls"] > 0 and g["netlink_round_trips"] > 0, g
    runs.append(g)
    print("  %s: read->applied %d instructions, signal->read %d, applied->ack %d, %d syscalls, "
          "%d netlink round trips; steps %s" % (path.split("/")[-1], g["read_applied"], g["signal_read"],
          g["applied_ack"], g["syscalls"], g["netlink_round_trips"], s))
ra = sorted(r["read_applied"] for r in runs)
pairs = [(abs(ra[i + 1] - ra[i]) / ra[i + 1], ra[i], ra[i + 1]) for i in range(len(ra) - 1)]
spread, a, b = min(pairs)
print("  read->applied: %s instructions; closest pair %d vs %d, %.2f %% apart" % (ra, a, b, 100 * spread))
assert spread <= 0.05, spread
# What the agent does is exact: the same syscalls and netlink round trips every time.
assert len(set(r["syscalls"] for r in runs)) == 1, [r["syscalls"] for r in runs]
assert len(set(r["netlink_round_trips"] for r in runs)) == 1
PY

check_nothing_left
finish
