#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Fork of a fork: fork a clone from a template, snapshot that running clone
# into a second template (template create --from-clone), fork the second
# template, and check that the second handoff works: the grandchild answers
# ARP/ICMP at its own address with its own MAC, the first clone still answers
# at its own, and both templates' RAM files are unchanged by the forks.
#
# Usage: test-fork-of-fork.sh REHOME IMAGE_DIR.
. "$(dirname "$0")/test-fork-lib.sh"
fork_setup fof "$@"

template_create tpl
rh fork tpl --ip 10.88.0.30/24 >/dev/null 2>&1 || die "first fork failed"
rh template create tpl2 --from-clone c1 --ram-dir "$RAMDIR" > "$SD/tpl2.out" 2> "$SD/tpl2.err" ||
        { cat "$SD/tpl2.err"; die "template create --from-clone failed"; }
ok "snapshotted clone c1 into template tpl2"
ram2=$(sed -n 's/^ram: *//p' "$SD/tpl2.out")
grep -q "forked from:  clone c1 of template tpl" "$SD/tpl2.out" && ok "tpl2 records its lineage" ||
        fail "tpl2 lineage missing"
sum2=$(sha256sum "$ram2" | cut -d' ' -f1)

out=$(rh fork tpl2 --ip 10.88.0.40/24 --count 2 2>&1)
rc=$?
[ $rc = 0 ] && ok "fork of the fork acked" || { echo "$out"; fail "fork of fork exited $rc"; }
for i in 0 1; do
        ip=10.88.0.$((40 + i))
        want=$(printf '52:54:0a:58:00:%02x' $((40 + i)))
        [ "$(arp_mac "$ip")" = "$want" ] && ok "$ip answers ARP as $want" || fail "$ip: no ARP reply as $want"
        icmp_ok "$ip" && ok "$ip answers ICMP" || fail "$ip does not answer ICMP"
done
[ "$(arp_mac 10.88.0.30)" = "52:54:0a:58:00:1e" ] && ok "the source clone still answers as itself" ||
        fail "source clone c1 lost its identity"
[ "$(sha256sum "$ram2" | cut -d' ' -f1)" = "$sum2" ] && ok "tpl2 RAM unchanged by its forks" ||
        fail "tpl2 RAM changed"

rh clone rm --all 2>/dev/null
check_nothing_left
finish
