#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Clones with two NICs, against real QEMU clones:
#  - a two-NIC template (`template create --nics 2`): eth0 on rhbr0
#    (10.88.0.0/24), eth1 on rhbr1 (`net up --nic 1`, 10.89.0.0/24);
#  - fork with IPv6 + DNS + host name + both NICs from flags, and again from
#    a JSON request: each new address answers on its own bridge with the
#    clone's MAC of that NIC, both template addresses stay silent, eth1 in
#    the guest has only the new address, `clone list` shows both NICs;
#  - refused per NIC, nothing started: NIC 1's address outside its subnet,
#    its gateway/template address, a multicast MAC, a NIC the template has
#    not got;
#  - --count 2 on two NICs: distinct addresses and MACs on both;
#  - fork of a two-NIC fork (template create --from-clone): the grandchild
#    gets its own identity on both NICs, the source clone keeps its own;
#  - clone rm gives back both NICs' IPAM reservations and taps.
#
# Usage: test-nics.sh REHOME IMAGE_DIR.
. "$(dirname "$0")/test-fork-lib.sh"
fork_setup nics "$@"
[ -x /usr/lib/cni/host-local ] || skip "no /usr/lib/cni/host-local (apt-get install containernetworking-plugins)"
command -v cpio >/dev/null || skip "no cpio (to read the guest image's init)"
zcat "$IMAGE/initrd.img" 2>/dev/null | cpio -i --to-stdout init 2>/dev/null | grep -q 'rehome.ip\[1-3\]' ||
        skip "the guest image's init does not configure eth1 (an older image: guest/build-image.sh build)"
BR1=rhbr1

rh net up --nic 1 --gateway 10.89.0.1/24 >/dev/null || die "rehome net up --nic 1 failed"
rh net show | grep -q "^nic 1: netns $NS bridge $BR1 gateway 10.89.0.1/24" && ok "net show: NIC 1's network" ||
        fail "net show: $(rh net show)"
template_create tpl --nics 2 --nic-ip 1=10.89.0.2/24
rh template show tpl | grep -q "^nic 1: *eth1 10.89.0.2/24 mac 52:54:00:12:34:57" && ok "template show: NIC 1" ||
        fail "template show: $(rh template show tpl)"

# arp_on BRIDGE IP -> the MAC that answered from the gateway side of BRIDGE, or nothing
arp_on() {
        ip netns exec "$NS" busybox arping -f -c 8 -w 4 -I "$1" "$2" 2>/dev/null |
                sed -n 's/.*reply from [0-9.]* \[\([0-9a-fA-F:]*\)\].*/\1/p' | head -n 1 | tr 'A-F' 'a-f'
}
# nic_field ID NIC KEY -> from `clone list --json`'s "nics"
nic_field() {
        rh --json clone list | python3 -c '
import json, sys
for c in json.load(sys.stdin)["clones"]:
    if c["id"] == sys.argv[1]:
        print(c["nics"][int(sys.argv[2])][sys.argv[3]])' "$1" "$2" "$3"
}
# both_nics ID IP0 MAC0 IP1 MAC1 WHAT: each address answers on its bridge with its MAC, the
# template's stay silent, the records say so, eth1 in the guest has only the new address.
both_nics() {
        id=$1
        [ "$(arp_on "$BR" "$2")" = "$3" ] && ok "$6: NIC 0 $2 answers on $BR with $3" ||
                fail "$6: NIC 0 $2 on $BR: '$(arp_on "$BR" "$2")' (want $3)"
        [ "$(arp_on "$BR1" "$4")" = "$5" ] && ok "$6: NIC 1 $4 answers on $BR1 with $5" ||
                fail "$6: NIC 1 $4 on $BR1: '$(arp_on "$BR1" "$4")' (want $5)"
        [ -z "$(arp_on "$BR" 10.88.0.2)" ] && ok "$6: template address 10.88.0.2 silent on $BR" ||
                fail "$6: 10.88.0.2 answers on $BR"
        [ -z "$(arp_on "$BR1" 10.89.0.2)" ] && ok "$6: template address 10.89.0.2 silent on $BR1" ||
                fail "$6: 10.89.0.2 answers on $BR1"
        [ "$(nic_field "$id" 0 ip)" = "$2/24" ] && [ "$(nic_field "$id" 1 ip)" = "$4/24" ] &&
                [ "$(nic_field "$id" 1 mac)" = "$5" ] && ok "$6: clone list --json shows both NICs" ||
                fail "$6: clone list --json: $(rh --json clone list)"
        rh clone list | grep "^$id " | grep -q " nic1=$4/24,$5," && ok "$6: clone list shows NIC 1" ||
                fail "$6: clone list: $(rh clone list)"
        out=$(printf 'ip -4 addr show dev eth1\n' | rh clone console "$id" --wait 2s 2>&1 | tr -d '\r')
        echo "$out" | grep -q "inet $4/24" && ! echo "$out" | grep -q "inet 10.89.0.2/" &&
                ok "$6: the guest's eth1 has $4 and not the template's address" || fail "$6: eth1 in the guest: '$out'"
}
full_check() {
        python3 - "$1" "$2" <<'PY' && ok "$3: acked with addresses, host name and DNS applied" || fail "$3: $(cat "$1")"
import json, sys
forks = json.load(open(sys.argv[1]))["forks"]
assert len(forks) == int(sys.argv[2]), forks
for f in forks:
    assert f["ack"]["status"] == "applied", f
    a = f["ack"]["applied"]
    assert a & 4 and a & 128 and a & 256, (a, f)   # ADDRS, HOSTNAME, DNS
    assert len(f["nics"]) == 2, f
PY
}
ip -n "$NS" addr add fd88::1/64 dev "$BR" nodad || fail "IPv6 on the bridge"

# --- from flags ---------------------------------------------------------------------------
rh --json fork tpl --ip 10.88.0.10/24 --ip fd88::10/64 --dns 10.88.0.1 --hostname multi \
        --nic 1,ip=10.89.0.10/24 > "$SD/flags.json" 2>"$SD/flags.err" || fail "two-NIC fork from flags: $(cat "$SD/flags.err")"
full_check "$SD/flags.json" 1 "flags"
both_nics c1 10.88.0.10 52:54:0a:58:00:0a 10.89.0.10 52:54:0a:59:00:0a "flags"
ip netns exec "$NS" busybox ping6 -c 2 -W 2 fd88::10 >/dev/null 2>&1 && ok "flags: IPv6 fd88::10 answers" ||
        fail "flags: fd88::10 silent"
[ -f "$SD/ipam/rehome-nic1/10.89.0.10" ] && ok "host-local holds 10.89.0.10 in network rehome-nic1" ||
        fail "no host-local record for NIC 1: $(ls -R "$SD/ipam")"
rh clone rm --all >/dev/null 2>&1
[ ! -e "$SD/ipam/rehome-nic1/10.89.0.10" ] && [ ! -e "$SD/ipam/rehome/10.88.0.10" ] &&
        ok "clone rm gave both NICs' addresses back" || fail "still reserved: $(ls -R "$SD/ipam")"
[ -z "$(ip -n "$NS" -o link show 2>/dev/null | grep -o 'rhc1n\?[0-9]*')" ] && ok "clone rm removed both taps" ||
        fail "taps left: $(ip -n "$NS" -o link show)"

# --- from a JSON request --------------------------------------------------------------------
cat > "$SD/req.json" <<'JSON'
{"interfaces":[{"name":"eth0"},{"match_mac":"52:54:00:12:34:57","mac":"02:00:00:00:89:20"}],
 "addresses":[{"address":"10.88.0.20/24"},{"address":"fd88::20/64"},
              {"interface":1,"address":"10.89.0.20/24"}],
 "routes":[{"destination":"0.0.0.0/0","gateway":"10.88.0.1"}],
 "dns":["10.88.0.1"],"hostname":"multi-json"}
JSON
rh --json fork tpl --request "$SD/req.json" > "$SD/json.json" 2>"$SD/json.err" ||
        fail "two-NIC fork --request: $(cat "$SD/json.err")"
full_check "$SD/json.json" 1 "--request"
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["forks"][0]["clone"])' "$SD/json.json")
both_nics "$id" 10.88.0.20 52:54:0a:58:00:14 10.89.0.20 02:00:00:00:89:20 "--request"
ip netns exec "$NS" busybox ping6 -c 2 -W 2 fd88::20 >/dev/null 2>&1 && ok "--request: IPv6 fd88::20 answers" ||
        fail "--request: fd88::20 silent"
rh clone rm --all >/dev/null 2>&1

# --- refused per NIC, nothing started ---------------------------------------------------------
refuse 1 "NIC 1: 10.88.0.30 is outside the clone network 10.89.0.1/24" --ip 10.88.0.30/24 --nic 1,ip=10.88.0.30/24
refuse 1 "NIC 1: 10.89.0.1 is the gateway's address" --ip 10.88.0.30/24 --nic 1,ip=10.89.0.1/24
refuse 1 "NIC 1: 10.89.0.2 is the template's own address" --ip 10.88.0.30/24 --nic 1,ip=10.89.0.2/24
refuse 1 "NIC 1: 10.89.0.255 is the broadcast address of 10.89.0.1/24" --ip 10.88.0.30/24 --nic 1,ip=10.89.0.255/24
refuse 1 "NIC 1: MAC 52:54:00:12:34:57 is the template's own" --ip 10.88.0.30/24 \
        --nic 1,ip=10.89.0.30/24,mac=52:54:00:12:34:57
refuse 2 "multicast MAC" --ip 10.88.0.30/24 --nic 1,ip=10.89.0.30/24,mac=01:00:5e:00:00:01
refuse 2 "NIC 2: template tpl has 2 NICs" --ip 10.88.0.30/24 --nic 2,ip=10.90.0.30/24
refuse 2 "two IPv4 addresses on interface 1" --request "$SD/req.json" --nic 1,ip=10.89.0.31/24
refuse 1 "NIC 1: 10.89.0.254/24 + 1 = 10.89.0.255 leaves the subnet" --ip 10.88.0.30/24 \
        --nic 1,ip=10.89.0.254/24 --count 2
# Taken on NIC 1: by a live clone's NIC 1, by another host on rhbr1 (a static FDB entry).
rh fork tpl --ip 10.88.0.50/24 --nic 1,ip=10.89.0.50/24 >/dev/null 2>&1 || fail "fork for the in-use case"
live=$(ls "$SD/clones")
refuse_more() { # like refuse, with the one live clone kept in the count
        want_rc=$1 pattern=$2
        shift 2
        before=$(our_pids | wc -l)
        err=$(rh fork tpl "$@" 2>&1 >/dev/null)
        rc=$?
        [ $rc = "$want_rc" ] && echo "$err" | grep -q -- "$pattern" && [ "$before" = "$(our_pids | wc -l)" ] &&
                [ "$(ls "$SD/clones")" = "$live" ] && ok "refused ($*): $err" ||
                fail "($*): exit $rc (want $want_rc), '$err', records $(ls "$SD/clones" | tr '\n' ' ')"
}
refuse_more 1 "NIC 1: 10.89.0.50 or its MAC is already used by clone $live" --ip 10.88.0.51/24 --nic 1,ip=10.89.0.50/24
refuse_more 1 "NIC 1: 10.89.0.51 or its MAC is already used by clone $live" --ip 10.88.0.51/24 \
        --nic 1,ip=10.89.0.51/24,mac=52:54:0a:59:00:32
rh clone rm --all >/dev/null 2>&1
ip -n "$NS" link add rhfake0 type veth peer name rhfake1 && ip -n "$NS" link set rhfake0 master "$BR1" up &&
        ip netns exec "$NS" bridge fdb add 02:00:00:00:99:99 dev rhfake0 master static || fail "fake host on $BR1"
refuse 1 "NIC 1: MAC 02:00:00:00:99:99 is already on bridge $BR1 (port rhfake0)" --ip 10.88.0.52/24 \
        --nic 1,ip=10.89.0.52/24,mac=02:00:00:00:99:99
ip -n "$NS" link del rhfake0 2>/dev/null

# --- --count 2 on two NICs ----------------------------------------------------------------
rh --json fork tpl --ip 10.88.0.40/24 --nic 1,ip=10.89.0.40/24 --count 2 > "$SD/count.json" 2>"$SD/count.err" ||
        fail "--count 2 on two NICs: $(cat "$SD/count.err")"
ids=$(python3 -c 'import json,sys; print(" ".join(f["clone"] for f in json.load(open(sys.argv[1]))["forks"]))' "$SD/count.json")
set -- $ids
[ $# = 2 ] || fail "--count 2: clones '$ids'"
[ "$(arp_on "$BR1" 10.89.0.40)" = "52:54:0a:59:00:28" ] && [ "$(arp_on "$BR1" 10.89.0.41)" = "52:54:0a:59:00:29" ] &&
        ok "--count 2: NIC 1 at 10.89.0.40 and .41, each with its own MAC" ||
        fail "--count 2 NIC 1: .40 '$(arp_on "$BR1" 10.89.0.40)', .41 '$(arp_on "$BR1" 10.89.0.41)'"
[ "$(arp_on "$BR" 10.88.0.40)" = "52:54:0a:58:00:28" ] && [ "$(arp_on "$BR" 10.88.0.41)" = "52:54:0a:58:00:29" ] &&
        ok "--count 2: NIC 0 at 10.88.0.40 and .41" || fail "--count 2 NIC 0"
n=$(rh --json clone list | python3 -c '
import json, sys
print(len({(n["ip"], n["mac"]) for c in json.load(sys.stdin)["clones"] for n in c["nics"]}))')
[ "$n" = 4 ] && ok "--count 2: four distinct NIC identities in the records" || fail "--count 2: $n distinct identities"
rh clone rm --all >/dev/null 2>&1

# --- a fork of a two-NIC fork: the new template's NIC 1 identity is the source clone's ----------
rh fork tpl --ip 10.88.0.60/24 --nic 1,ip=10.89.0.60/24 >/dev/null 2>"$SD/src.err" || fail "source fork: $(cat "$SD/src.err")"
src=$(ls "$SD/clones")
rh template create tpl2 --from-clone "$src" --ram-dir "$RAMDIR" >/dev/null 2>"$SD/tpl2.err" ||
        fail "template create --from-clone of a two-NIC clone: $(cat "$SD/tpl2.err")"
rh template show tpl2 | grep -q "^nic 1: *eth1 10.89.0.60/24 mac 52:54:0a:59:00:3c" &&
        ok "tpl2 (from clone $src): NIC 1 is the clone's 10.89.0.60" || fail "tpl2: $(rh template show tpl2)"
rh --json fork tpl2 --ip 10.88.0.70/24 --nic 1,ip=10.89.0.70/24 > "$SD/fof.json" 2>"$SD/fof.err" ||
        fail "fork of the two-NIC fork: $(cat "$SD/fof.err")"
gc=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["forks"][0]["clone"])' "$SD/fof.json")
[ "$(arp_on "$BR1" 10.89.0.70)" = "52:54:0a:59:00:46" ] && [ "$(arp_on "$BR" 10.88.0.70)" = "52:54:0a:58:00:46" ] &&
        ok "the grandchild $gc answers on both NICs with its own MACs" || fail "grandchild $gc: NIC 1 '$(arp_on "$BR1" 10.89.0.70)'"
[ "$(arp_on "$BR1" 10.89.0.60)" = "52:54:0a:59:00:3c" ] && ok "the source clone still answers as itself on NIC 1" ||
        fail "source clone $src lost NIC 1"
out=$(printf 'ip -4 addr show dev eth1\n' | rh clone console "$gc" --wait 2s 2>&1 | tr -d '\r')
echo "$out" | grep -q "inet 10.89.0.70/24" && ! echo "$out" | grep -q "inet 10.89.0.60/" &&
        ok "the grandchild's eth1 has only its own address" || fail "grandchild eth1: '$out'"
rh clone rm --all >/dev/null 2>&1
rh template rm tpl2 >/dev/null 2>&1

# --- the IPAM picks NIC 1's address -----------------------------------------------------------
rh --json fork tpl > "$SD/ipam.json" 2>"$SD/ipam.err" || fail "fork without addresses: $(cat "$SD/ipam.err")"
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["forks"][0]["clone"])' "$SD/ipam.json")
ip1=$(nic_field "$id" 1 ip)
case "$ip1" in
10.89.0.1/* | 10.89.0.2/* | "") fail "IPAM gave NIC 1 '$ip1'" ;;
10.89.0.*/24) ok "IPAM picked $ip1 for NIC 1" ;;
*) fail "NIC 1 got '$ip1', outside 10.89.0.0/24" ;;
esac
rh clone rm --all >/dev/null 2>&1
rh template rm tpl >/dev/null 2>&1
[ -z "$(ls "$SD/ipam/rehome-nic1" 2>/dev/null | grep '^10\.')" ] && ok "template rm gave NIC 1's template address back" ||
        fail "rehome-nic1 still holds: $(ls "$SD/ipam/rehome-nic1")"

BR=rhbr # check_nothing_left: every bridge of ours (rhbr0, rhbr1) is no tap
check_nothing_left
finish
