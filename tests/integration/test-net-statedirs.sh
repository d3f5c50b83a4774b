#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Two state directories and the clone network (src/vmm/net.c): each gets its
# own default namespace (rh-<hash of its path>), owns it through
# /run/rehome/netns/NAME.owner, cannot `net up` into the other's, and its
# `net down` removes only its own namespace and bridge. No VM; root only.
set -uo pipefail
REHOME=${1:?rehome binary}
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (network namespaces)"; exit 77; }
command -v ip >/dev/null || { echo "SKIP: no ip (iproute2)"; exit 77; }
[ -x "$REHOME" ] || { echo "SKIP: no rehome binary at $REHOME"; exit 77; }

A=$(mktemp -d /tmp/rehome-test-netA.XXXXXX)
B=$(mktemp -d /tmp/rehome-test-netB.XXXXXX)
C=$(mktemp -d /tmp/rehome-test-netC.XXXXXX)
out=$(mktemp /tmp/rehome-test-net-out.XXXXXX)
NA="" NB=""
cleanup() {
        for d in "$A" "$B" "$C"; do "$REHOME" --state-dir "$d" net down >/dev/null 2>&1; done
        # Only the namespaces this test made (their owner files name our directories).
        for ns in "$NA" "$NB"; do
                [ -n "$ns" ] || continue
                if grep -qx -e "$A" -e "$B" -e "$C" "/run/rehome/netns/$ns.owner" 2>/dev/null; then
                        ip netns del "$ns" 2>/dev/null
                        rm -f "/run/rehome/netns/$ns.owner"
                fi
        done
        rm -rf "$A" "$B" "$C" "$out"
}
trap cleanup EXIT
fails=0 passes=0
ok()   { passes=$((passes+1)); echo "ok - $*"; }
fail() { fails=$((fails+1)); echo "not ok - $*"; }
rh() { local d=$1; shift; "$REHOME" --state-dir "$d" "$@"; }
netns_of() { rh "$1" net show | awk '{print $2}'; }

# Both up with defaults: distinct namespaces, each with its bridge, each owned.
rh "$A" net up >"$out" 2>&1 && ok "net up in A" || fail "net up in A: $(cat "$out")"
rh "$B" net up >"$out" 2>&1 && ok "net up in B" || fail "net up in B: $(cat "$out")"
NA=$(netns_of "$A") NB=$(netns_of "$B")
echo "# A=$A netns $NA; B=$B netns $NB"
[[ "$NA" =~ ^rh-[0-9a-f]{8}$ ]] && ok "A's default namespace is rh-<8 hex>" || fail "A's namespace '$NA'"
[[ "$NB" =~ ^rh-[0-9a-f]{8}$ ]] && ok "B's default namespace is rh-<8 hex>" || fail "B's namespace '$NB'"
[ "$NA" != "$NB" ] && ok "distinct namespaces" || fail "both in $NA"
for ns in "$NA" "$NB"; do
        [ -e "/run/netns/$ns" ] && ip -n "$ns" link show rhbr0 >/dev/null 2>&1 &&
                ok "$ns exists with bridge rhbr0" || fail "$ns or its bridge missing"
done
[ "$(cat "/run/rehome/netns/$NA.owner" 2>/dev/null)" = "$(realpath "$A")" ] && ok "owner file of $NA names A" ||
        fail "owner of $NA: $(cat "/run/rehome/netns/$NA.owner" 2>&1)"
grep -q "\"ours\": true" "$A/net.json" && ok "A's net.json says ours" || fail "A's net.json: $(cat "$A/net.json")"

# Stable: a second net up keeps the name (and the namespace).
rh "$A" net up >/dev/null 2>&1 && [ "$(netns_of "$A")" = "$NA" ] && ok "second net up in A keeps $NA" ||
        fail "second net up in A: $(netns_of "$A")"

# B may not move into A's namespace; the refusal names A, B's network is unchanged.
if rh "$B" net up --netns "$NA" >"$out" 2>&1; then
        fail "net up in B with --netns $NA succeeded"
else
        grep -q "network namespace $NA belongs to state directory $(realpath "$A")" "$out" &&
                ok "B refused A's namespace, naming A" || fail "refusal text: $(cat "$out")"
fi
[ "$(netns_of "$B")" = "$NB" ] && ok "B still on $NB after the refusal" || fail "B's net.json changed: $(cat "$B/net.json")"

# A state directory whose net.json (stale or hand-made) names A's namespace as
# its own: its net down drops its record and leaves A's namespace alone.
printf '{"netns": "%s", "bridge": "rhbr0", "gateway": "10.77.0.1/24", "ours": true}\n' "$NA" >"$C/net.json"
rh "$C" net down >"$out" 2>&1 && ok "net down in C (names A's namespace)" || fail "net down in C: $(cat "$out")"
[ -e "/run/netns/$NA" ] && ip -n "$NA" link show rhbr0 >/dev/null 2>&1 && ok "A's namespace and bridge survive C's net down" ||
        fail "C's net down removed $NA"
[ ! -e "$C/net.json" ] && ok "C's net.json removed" || fail "C's net.json left"

# net down in A: A's namespace and owner file go, B's namespace and bridge stay.
rh "$A" net down >"$out" 2>&1 && ok "net down in A" || fail "net down in A: $(cat "$out")"
[ ! -e "/run/netns/$NA" ] && ok "$NA removed" || fail "$NA still there"
[ ! -e "/run/rehome/netns/$NA.owner" ] && ok "$NA's owner file removed" || fail "$NA.owner left"
[ -e "/run/netns/$NB" ] && ip -n "$NB" link show rhbr0 >/dev/null 2>&1 && ok "B's namespace and bridge intact" ||
        fail "A's net down broke B's network"
rh "$B" net show >/dev/null 2>&1 && ok "B's network still loads" || fail "B's net show fails"

# With A's network gone, its namespace name is free: B's net down removes B's.
rh "$B" net down >"$out" 2>&1 && [ ! -e "/run/netns/$NB" ] && ok "net down in B removes $NB" ||
        fail "net down in B: $(cat "$out")"

echo "# $passes passed, $fails failed"
[ "$fails" = 0 ]
