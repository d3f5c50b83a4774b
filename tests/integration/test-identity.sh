#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Allocation nobody can get wrong, against real QEMU clones:
#  - the address comes from Debian's CNI host-local IPAM when --ip is not
#    given (never the gateway or the template's address), --count N takes N
#    distinct ones, and `clone rm` gives an address back;
#  - every refused class says why in one line and starts nothing: outside
#    the subnet, the network, broadcast, gateway or template address, the
#    template's MAC, a multicast MAC, an off-link gateway, a repeated
#    single-valued flag, a --count that leaves the subnet, an unknown plugin.
#
# Usage: test-identity.sh REHOME IMAGE_DIR.
. "$(dirname "$0")/test-fork-lib.sh"
fork_setup ident "$@"
[ -x /usr/lib/cni/host-local ] || skip "no /usr/lib/cni/host-local (apt-get install containernetworking-plugins)"

template_create tpl


# --- the IPAM picks -------------------------------------------------------------------
out=$(rh --json fork tpl 2>&1) || fail "fork without --ip: $out"
ip=$(clone_field c1 ip)
case "$ip" in
10.88.0.1/* | 10.88.0.2/* | "") fail "IPAM gave '$ip' (gateway, template, or nothing)" ;;
10.88.0.*/24) ok "fork without --ip: host-local gave $ip" ;;
*) fail "IPAM gave '$ip', outside 10.88.0.0/24" ;;
esac
[ "$(arp_mac "${ip%/*}")" = "$(clone_field c1 mac)" ] && ok "the clone answers at its IPAM address" ||
        fail "no ARP answer at $ip"
[ -f "$SD/ipam/rehome/${ip%/*}" ] && ok "host-local recorded ${ip%/*} in STATE/ipam" || fail "no host-local record for $ip"

rh fork tpl --count 3 >/dev/null 2>&1 || fail "fork --count 3 without --ip"
n=$(rh --json clone list | grep -o '"ip": "[0-9./]*"' | sort -u | wc -l)
[ "$n" = 4 ] && ok "--count 3 without --ip: 4 distinct addresses in all" || fail "$n distinct addresses: $(rh clone list)"

rh clone rm --all >/dev/null 2>&1
[ -z "$(ls "$SD/ipam/rehome" | grep '^10\.88\.0\.' | grep -v '^10\.88\.0\.2$')" ] &&
        ok "clone rm gave every clone address back (only the template's stays reserved)" ||
        fail "addresses still reserved: $(ls "$SD/ipam/rehome")"
rh fork tpl --ip 10.88.0.30/24 >/dev/null 2>&1 && rh clone rm --all >/dev/null 2>&1 &&
        rh fork tpl --ip 10.88.0.30/24 >/dev/null 2>&1 && ok "an address given back can be taken again" ||
        fail "10.88.0.30 not reusable after clone rm"
rh clone rm --all >/dev/null 2>&1

# --- a complete identity: IPv6, MTU, DNS, search, host name, from flags and from JSON ------
ip -n "$NS" addr add fd88::1/64 dev "$BR" nodad || fail "IPv6 on the bridge"
full_check() {
        python3 - "$1" "$2" <<'PY' && ok "$3: every fork acked with MTU, addresses, host name and DNS applied" || fail "$3: $(cat "$1")"
import json, sys
d = json.load(open(sys.argv[1]))
forks = d["forks"]
assert len(forks) == int(sys.argv[2]), forks
for f in forks:
    a = f["ack"]["applied"]
    assert f["ack"]["status"] == "applied", f
    assert a & 2 and a & 4 and a & 128 and a & 256, (a, f)   # MTU, ADDRS, HOSTNAME, DNS
PY
}
rh --json fork tpl --ip 10.88.0.50/24 --ip fd88::50/64 --mtu 1400 --dns 10.88.0.1 --search example.test \
        --hostname web --count 2 > "$SD/full.json" 2>"$SD/full.err" || fail "full fork from flags: $(cat "$SD/full.err")"
full_check "$SD/full.json" 2 "flags"
for a in fd88::50 fd88::51; do
        ip netns exec "$NS" busybox ping6 -c 2 -W 2 "$a" >/dev/null 2>&1 && ok "IPv6 $a answers (counted up by --count)" ||
                fail "IPv6 $a silent"
done
[ "$(arp_mac 10.88.0.51)" = "52:54:0a:58:00:33" ] && ok "second clone at 10.88.0.51 with its derived MAC" || fail "10.88.0.51"
rh clone rm --all >/dev/null 2>&1
cat > "$SD/req.json" <<'JSON'
{"interfaces":[{"name":"eth0","mtu":1400}],
 "addresses":[{"address":"10.88.0.60/24"},{"address":"fd88::60/64"}],
 "routes":[{"destination":"0.0.0.0/0","gateway":"10.88.0.1"}],
 "dns":["10.88.0.1"],"search":["example.test"],"hostname":"api"}
JSON
rh --json fork tpl --request "$SD/req.json" > "$SD/full.json" 2>"$SD/full.err" || fail "fork --request: $(cat "$SD/full.err")"
full_check "$SD/full.json" 1 "--request FILE.json"
ip netns exec "$NS" busybox ping6 -c 2 -W 2 fd88::60 >/dev/null 2>&1 && ok "IPv6 fd88::60 from the JSON request answers" ||
        fail "fd88::60 silent"
[ "$(clone_field c1 ip)" = "10.88.0.60/24" ] && ok "the JSON request's IPv4 address is the one reserved" ||
        fail "record ip $(clone_field c1 ip)"
rh clone rm --all >/dev/null 2>&1
refuse 2 "fork picks each clone's seq and nonce" --ip 10.88.0.40/24 --nonce 12

# --- refused, nothing started ------------------------------------------------------------
refuse 1 "outside the clone network" --ip 10.99.0.5/24
refuse 1 "network address" --ip 10.88.0.0/24
refuse 1 "broadcast address" --ip 10.88.0.255/24
refuse 1 "gateway's address" --ip 10.88.0.1/24
refuse 1 "template's own address" --ip 10.88.0.2/24
refuse 1 "template's own" --ip 10.88.0.40/24 --mac 52:54:00:12:34:56
refuse 2 "not unicast" --ip 10.88.0.40/24 --mac 01:00:5e:00:00:01
refuse 1 "not on-link" --ip 10.88.0.40/24 --gateway 10.99.0.1
refuse 2 "--mac given twice" --ip 10.88.0.40/24 --mac 02:00:00:00:00:01 --mac 02:00:00:00:00:02
refuse 2 "two IPv4 addresses" --ip 10.88.0.40/24 --ip 10.88.0.41/24
refuse 1 "leaves the subnet" --ip 10.88.0.253/24 --count 3
refuse 1 "IPAM plugin nosuch not found" --ipam nosuch
# A host on the bridge that is no clone of ours (a static FDB entry on a port of its own).
ip -n "$NS" link add rhfake0 type veth peer name rhfake1 && ip -n "$NS" link set rhfake0 master "$BR" up &&
        ip netns exec "$NS" bridge fdb add 02:00:00:00:99:99 dev rhfake0 master static || fail "fake bridge host"
refuse 1 "already on the bridge (port rhfake0)" --ip 10.88.0.44/24 --mac 02:00:00:00:99:99
ip -n "$NS" link del rhfake0 2>/dev/null

# --- the clock: a clone runs on the host's time, not the snapshot's -----------------------
# The template was snapshotted at the start of this test (tens of seconds ago).
age=$(( $(date +%s) - $(stat -c %Y "$SD/templates/tpl/state") ))
clock_offset() {
        python3 -c 'import json,sys; f=json.load(open(sys.argv[1]))["forks"][0]; print(f["clock_offset_ms"])' "$1"
}
rh --json fork tpl --ip 10.88.0.80/24 > "$SD/clock.json" 2>&1 || fail "fork for the clock: $(cat "$SD/clock.json")"
off=$(clock_offset "$SD/clock.json")
python3 -c "import sys; sys.exit(0 if abs(float('$off')) < 1000 else 1)" 2>/dev/null &&
        ok "clock stepped: the clone is ${off} ms off the host's time (snapshot ${age} s old)" ||
        fail "clock offset '$off' ms after a fork of a ${age} s old snapshot"
rh --json fork tpl --ip 10.88.0.81/24 --no-clock > "$SD/clock.json" 2>&1 || fail "fork --no-clock: $(cat "$SD/clock.json")"
off=$(clock_offset "$SD/clock.json")
python3 -c "import sys; sys.exit(0 if float('$off') < -1000 * ($age - 3) else 1)" 2>/dev/null &&
        ok "--no-clock: the clone runs ${off} ms behind, about the snapshot's age (${age} s)" ||
        fail "--no-clock offset '$off' ms, snapshot ${age} s old"
rh clone rm --all >/dev/null 2>&1

# --- machine-id and post-apply hooks (a template whose agent runs the image's test hook) ----
rh template create hooks --image "$IMAGE" --ram-dir "$RAMDIR" --ip 10.88.0.4/24 --gateway 10.88.0.1 \
        --agent-args "--hooks-dir,/usr/share/rehome/test-hooks" >/dev/null 2>"$SD/hooks.err" ||
        fail "template with hooks: $(cat "$SD/hooks.err")"
rh --json fork hooks --ip 10.88.0.90/24 --hostname web --count 2 > "$SD/hooks.json" 2>&1 ||
        fail "fork with hooks: $(cat "$SD/hooks.json")"
python3 - "$SD/hooks.json" <<'PY' && ok "acks say machine-id replaced and hooks ran (applied bits 10, 11)" || fail "hook acks: $(cat "$SD/hooks.json")"
import json, sys
for f in json.load(open(sys.argv[1]))["forks"]:
    assert f["ack"]["status"] == "applied" and f["ack"]["applied"] & (1 << 10) and f["ack"]["applied"] & (1 << 11), f
PY
ids=""
for c in $(rh --json clone list | sed -n 's/.*"id": "\(c[0-9]*\)".*/\1/p'); do
        out=$(printf 'cat /etc/machine-id /run/rehome-hook.env\n' | rh clone console "$c" --wait 2s 2>&1 | tr -d '\r')
        id=$(echo "$out" | grep -E '^[0-9a-f]{32}$' | head -n 1)
        ids="$ids $id"
        echo "$out" | grep -q "^REHOME_HOSTNAME=web" && echo "$out" | grep -q "^REHOME_IP=10.88.0.9[01]/24" &&
                echo "$out" | grep -q "^REHOME_GATEWAY=10.88.0.1" && ok "clone $c: the hook saw its identity ($(echo "$out" | grep '^REHOME_IP='))" ||
                fail "clone $c: hook environment: '$out'"
done
[ "$(echo $ids | wc -w)" = 2 ] && [ "$(echo $ids | tr ' ' '\n' | sort -u | wc -l)" = 2 ] &&
        ok "each clone has its own machine-id:$ids" || fail "machine ids: '$ids'"
rh clone rm --all >/dev/null 2>&1
err=$(rh fork hooks --ip 10.88.0.92/24 --hostname fail-hook 2>&1 >/dev/null)
rc=$?
[ $rc = 1 ] && echo "$err" | grep -q "hook 10-record exited 3" && ok "a failing hook fails the fork: $(echo "$err" | tail -n 1)" ||
        fail "failing hook: exit $rc, '$err'"
rh template rm hooks >/dev/null 2>&1

check_nothing_left
finish
