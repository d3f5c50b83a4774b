#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Smoke test of `rehome bench` under real QEMU: one signal mode (poll), 3
# forks after the first, the stage table section only. Checks that every
# column is produced for every fork (timings, guest stages, page counts),
# that the accelerator is named, that the exact-count forks ran, and that
# the CDF plot file was written. Never asserts on times. The nat section
# (3 per-clone NAT forks alternating with 3 rehome forks of the same poll
# template, ~10 s more): every fork reachable at its unique address, set-up
# counted, and no namespace, veth or QEMU left behind.
#
# Usage: test-bench.sh REHOME IMAGE_DIR. Exit 77 (skip) without root, QEMU,
# the guest image or gnuplot.
. "$(dirname "$0")/test-fork-lib.sh"
fork_setup bench "$@"
command -v gnuplot >/dev/null || skip "no gnuplot (apt-get install gnuplot-nox)"

out="$SD/bench.json"
rh --json bench --quick --modes poll --forks 3 --sections modes,nat --image "$IMAGE" \
        --ram-dir "$RAMDIR" --plot "$SD/cdf.png" > "$out" 2> "$SD/bench.err"
rc=$?
[ $rc = 0 ] && ok "bench exited 0" || { tail -20 "$SD/bench.err"; fail "bench exited $rc"; }

grep -q '"accel": "\(tcg\|kvm\)"' "$out" && ok "accelerator named: $(grep -o '"accel": "[a-z]*"' "$out" | head -1)" ||
        fail "no accelerator in the JSON"
# 4 timed forks (first + 3) and 3 exact-count forks: 7 samples, every column a number in
# each, and once more in the first fork reported apart ("first"): 8.
for col in fork_total_ms resume_signal_ms mailbox_ack_ms reconfigure_ms apply_after_mailbox_ms spawn_ms \
        incoming_ms patch_ms pages_referenced pages_written pages_rss; do
        n=$(grep -c "\"$col\": -\{0,1\}[0-9]" "$out")
        [ "$n" = 8 ] && ok "$col: a number in all 7 samples and the first-fork row" || fail "$col: a number $n times, want 8"
done
n=$(grep -c '"status": "applied"' "$out")
[ "$n" = 7 ] && ok "7 forks acked applied" || fail "$n of 7 forks acked applied"
grep -q '"exact_pages"' "$out" && ok "exact page-count group present" || fail "no exact_pages group"
grep -q '"skipped": "this QEMU (7.2) has no vmclock\|"signals"' "$out" && ok "signal sources reported" ||
        fail "no signal sources reported"
[ -s "$SD/cdf.png" ] && head -c 8 "$SD/cdf.png" | grep -q 'PNG\|<svg\|<?xml' && ok "plot written: $SD/cdf.png" ||
        fail "no plot at $SD/cdf.png"

for k in nat rehome; do
        n=$(sed -n "/\"$k\": {/,/\"samples\"/p" "$out" | grep -o '"ok": [0-9]*' | head -1)
        [ "$n" = '"ok": 3' ] && ok "nat section: 3 of 3 $k forks reachable" || fail "nat section, $k: $n (want 3)"
done
n=$(grep -c '"reachable_ms": [0-9]' "$out")
[ "$n" = 6 ] && ok "reachable_ms a number in all 6 nat-section samples" || fail "reachable_ms a number $n times, want 6"
n=$(grep -c '"setup_ms": [0-9]' "$out")
[ "$n" = 3 ] && ok "NAT host set-up timed for 3 clones" || fail "setup_ms a number $n times, want 3"
n=$(grep -c '"identity_ok": 3' "$out")
[ "$n" = 2 ] && ok "ARP: NAT clones answer as the template, rehome clones with their own MAC (3 + 3)" ||
        fail "identity_ok 3 in $n of the 2 nat-section groups"
grep -q '"nft_rules": 2' "$out" && ok "NAT set-up: 2 nft rules per clone" || fail "nft rule count missing"
left=$(ls /run/netns 2>/dev/null | grep '^rhnat-' | tr '\n' ' ')
[ -z "$left" ] && ok "no per-clone NAT namespace left" || fail "NAT namespaces left: $left"

rh clone rm --all >/dev/null 2>&1
check_nothing_left
finish
