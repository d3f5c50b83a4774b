#!/bin/sh
# SPDX-License-Identifier: MIT
#
# End to end under real QEMU: boot a template, fork 4 clones concurrently,
# and check that each answers ARP (with its new MAC) and ICMP at its new
# address, that nothing answers at the template's address, that the identities
# are distinct, that warm (pre-spawned) clone processes are taken by the next
# forks, that `template record-ws --json` prints one document naming the
# working-set file it wrote, that the template RAM file is byte-identical
# after all forks (copy-on-write held), that an address held by a live clone
# is refused before anything is spawned, and that removing clones leaves no
# QEMU or tap.
#
# Usage: test-fork.sh REHOME IMAGE_DIR. Exit 77 (skip) without root, QEMU or
# the guest image.
. "$(dirname "$0")/test-fork-lib.sh"
fork_setup fork "$@"

template_create tpl
ram=$(sed -n 's/^ram: *//p' "$SD/template-tpl.out")
[ -f "$ram" ] || die "template RAM file '$ram' missing"
sum_before=$(sha256sum "$ram" | cut -d' ' -f1)

out=$(rh --json fork tpl --ip 10.88.0.10/24 --count 4 --timeout 60s)
rc=$?
[ $rc = 0 ] && ok "4 concurrent forks acked" || { echo "$out"; fail "fork --count 4 exited $rc"; }
# Second ack channel: the agent's UDP line to the socket rehome bound on the gateway.
n_udp=$(echo "$out" | grep -c '"udp_ack_seen_ms": [0-9]')
[ "$n_udp" -ge 1 ] && ok "UDP ack line received for $n_udp of 4 forks" || fail "no UDP ack line for any fork"

for i in 0 1 2 3; do
        ip=10.88.0.$((10 + i))
        want=$(printf '52:54:0a:58:00:%02x' $((10 + i)))
        got=$(arp_mac "$ip")
        [ "$got" = "$want" ] && ok "$ip answers ARP as $want" || fail "$ip: ARP reply from '$got', want $want"
        icmp_ok "$ip" && ok "$ip answers ICMP" || fail "$ip does not answer ICMP"
done
n_ips=$(rh --json clone list | grep -c '"ip": "10.88.0.1[0-3]/24"')
[ "$n_ips" = 4 ] && ok "clone list shows 4 distinct addresses" || fail "clone list shows $n_ips of 4 addresses"
n_macs=$(rh --json clone list | sed -n 's/.*"mac": "\(.*\)".*/\1/p' | sort -u | wc -l)
[ "$n_macs" = 4 ] && ok "4 distinct MACs" || fail "$n_macs distinct MACs, want 4"
[ -z "$(arp_mac 10.88.0.2)" ] && ok "template address 10.88.0.2 is silent" ||
        fail "something answers at the template address 10.88.0.2"

# The way in for a person debugging a clone: its console log and its console.
rh clone logs c1 | grep -q "rehome-agent: applied seq=" && ok "clone logs: the agent's applied line" ||
        fail "clone logs c1: $(rh clone logs c1 2>&1 | tail -n 3)"
out=$(printf 'echo rehome-console-$((6*7))\n' | rh clone console c1 --wait 3s 2>&1)
echo "$out" | grep -q "rehome-console-42" && ok "clone console: a command ran in the clone's shell" ||
        fail "clone console c1: '$(echo "$out" | tail -n 3)'"

# An address a live clone holds is refused before anything is spawned.
before=$(our_pids | wc -l)
err=$(rh fork tpl --ip 10.88.0.11/24 2>&1)
rc=$?
after=$(our_pids | wc -l)
[ $rc = 1 ] && echo "$err" | grep -q "already used by clone c" && ok "in-use address refused: $err" ||
        fail "in-use address: exit $rc, '$err'"
[ "$before" = "$after" ] && ok "nothing spawned for the refused fork" || fail "QEMU count went $before -> $after"

# Warm pool: pre-spawned clone processes are taken by the next forks.
rh template warm tpl --count 2 >/dev/null || fail "template warm failed"
warm=$(rh clone list | awk '$7 == "warm" { print $5 }' | sort | tr '\n' ' ')
[ "$(echo $warm | wc -w)" = 2 ] && ok "2 warm clones waiting: pids $warm" || fail "warm clones: '$warm'"
rh fork tpl --ip 10.88.0.20/24 --count 2 >/dev/null 2>&1 || fail "fork from the warm pool failed"
took=$(rh clone list | awk '$3 ~ /^10\.88\.0\.2[01]\// { print $5 }' | sort | tr '\n' ' ')
[ "$took" = "$warm" ] && ok "the forks took the warm processes ($took)" || fail "forks ran in '$took', warm were '$warm'"
[ "$(arp_mac 10.88.0.20)" = "52:54:0a:58:00:14" ] && ok "warm-pool clone answers ARP as itself" ||
        fail "warm-pool clone 10.88.0.20 does not answer as 52:54:0a:58:00:14"

# record-ws --json: one fork (--runs 1), then exactly one JSON document
# naming the template, the working-set file it wrote and its counts.
rh --json template record-ws tpl --runs 1 > "$SD/record-ws.json" 2> "$SD/record-ws.err"
rc=$?
[ $rc = 0 ] && ok "template record-ws --json exited 0" || { cat "$SD/record-ws.err"; fail "record-ws exited $rc"; }
python3 - "$SD/record-ws.json" "$SD" <<'PY' && ok "record-ws --json: $(tr -d '\n ' < "$SD/record-ws.json")" || fail "record-ws --json output: '$(cat "$SD/record-ws.json")'"
import json, os, sys
d = json.load(open(sys.argv[1]))
assert d.pop("schema_version") == 1 and d.pop("verb") == "template", d
assert sorted(d) == ["file", "pages", "referenced_last_run", "runs", "template"], d
want_file = os.path.realpath(os.path.join(sys.argv[2], "templates", "tpl", "workingset"))
assert d["template"] == "tpl" and os.path.realpath(d["file"]) == want_file, d
assert d["runs"] == 1 and isinstance(d["pages"], int) and d["pages"] > 0, d
assert isinstance(d["referenced_last_run"], int) and d["referenced_last_run"] > 0, d
head = open(d["file"]).readline().split()
assert head[:2] == ["rehome-workingset", "1"] and head[3] == "pages=%d" % d["pages"], head
PY

sum_after=$(sha256sum "$ram" | cut -d' ' -f1)
[ "$sum_before" = "$sum_after" ] && ok "template RAM byte-identical after all 7 forks ($sum_after)" ||
        fail "template RAM changed: $sum_before -> $sum_after"

rh clone rm --all 2>/dev/null
check_nothing_left
finish
