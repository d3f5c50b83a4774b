# SPDX-License-Identifier: MIT
# Sourced by tests/integration/test-fork*.sh: capability checks (exit 77 with
# the reason), a private state directory, network namespace and tmpfs RAM
# directory per test, helpers to probe clones from the gateway side, and a
# cleanup that leaves no QEMU, tap or namespace behind.
#
# Usage in a test: . test-fork-lib.sh; fork_setup NAME "$@"
set -u

REHOME=""
IMAGE=""
SD=""
NS=""
RAMDIR=""
BR=rhbr0
FAILS=0

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }
die() { echo "FAIL: $*"; exit 1; }

rh() { "$REHOME" --state-dir "$SD" "$@"; }

# PIDs of processes whose command line mentions our state or RAM directory
# (QEMUs this test started: nothing else can name these unique paths).
our_pids() {
        for d in /proc/[0-9]*; do
                [ -r "$d/cmdline" ] || continue
                if tr '\0' ' ' < "$d/cmdline" 2>/dev/null | grep -q -e "$SD/" -e "$RAMDIR/"; then
                        echo "${d#/proc/}"
                fi
        done
}

fork_cleanup() {
        [ -n "$SD" ] || return 0
        "$REHOME" --state-dir "$SD" clone rm --all >/dev/null 2>&1
        for p in $(our_pids); do kill -9 "$p" 2>/dev/null; done
        "$REHOME" --state-dir "$SD" net down >/dev/null 2>&1
        ip netns del "$NS" 2>/dev/null
        rm -rf "$SD" "$RAMDIR"
}

fork_setup() {
        name=$1
        REHOME=$2
        IMAGE=${3:-}
        [ "$(id -u)" = 0 ] || skip "needs root (network namespaces, taps, /proc/<pid>/mem)"
        [ -x "$REHOME" ] || skip "no rehome binary at $REHOME"
        command -v qemu-system-x86_64 >/dev/null || skip "no qemu-system-x86_64 (apt-get install qemu-system-x86)"
        [ -e /dev/net/tun ] || skip "no /dev/net/tun"
        [ -x /bin/busybox ] || skip "no /bin/busybox (apt-get install busybox-static)"
        command -v ip >/dev/null || skip "no ip (iproute2)"
        [ -n "$IMAGE" ] && [ -f "$IMAGE/image.json" ] || skip "no guest image at $IMAGE (make guest)"
        NS="rhtest-$name-$$"
        NS=$(echo "$NS" | cut -c1-15)
        SD=$(mktemp -d /tmp/rehome-test-$name.XXXXXX)
        RAMDIR=$(mktemp -d /dev/shm/rehome-test-$name.XXXXXX)
        trap fork_cleanup EXIT
        trap 'exit 130' INT TERM
        rh net up --netns "$NS" --gateway 10.88.0.1/24 >/dev/null || die "rehome net up failed"
}

# template_create NAME [extra args]
template_create() {
        t=$1
        shift
        rh template create "$t" --image "$IMAGE" --ram-dir "$RAMDIR" --ip 10.88.0.2/24 \
                --gateway 10.88.0.1 "$@" > "$SD/template-$t.out" 2> "$SD/template-$t.err" ||
                { cat "$SD/template-$t.err"; die "template create $t failed"; }
}

# arp_mac IP -> prints the MAC that answered an ARP request from the gateway, or nothing
arp_mac() {
        ip netns exec "$NS" busybox arping -f -c 8 -w 4 -I "$BR" "$1" 2>/dev/null |
                sed -n 's/.*reply from [0-9.]* \[\([0-9a-fA-F:]*\)\].*/\1/p' | head -n 1 |
                tr 'A-F' 'a-f'
}

icmp_ok() {
        ip netns exec "$NS" busybox ping -c 2 -W 2 "$1" >/dev/null 2>&1
}

# clone_field ID KEY -> value from `clone list --json`
clone_field() {
        rh --json clone list | tr -d '\n ' | sed 's/},{/}\n{/g' |
                grep "\"id\":\"$1\"" | sed -n "s/.*\"$2\":\"\{0,1\}\([^\",}]*\).*/\1/p"
}

check_nothing_left() {
        left=$(our_pids)
        [ -z "$left" ] && ok "no QEMU of this test left running" ||
                fail "QEMU processes left: $left"
        taps=$(ip -n "$NS" -o link show 2>/dev/null | awk -F': ' '{print $2}' | grep -v -e '^lo$' -e "^$BR" | tr '\n' ' ')
        [ -z "$taps" ] && ok "no tap left in $NS" || fail "taps left in $NS: $taps"
}

finish() {
        if [ "$FAILS" -gt 0 ]; then
                echo "$FAILS check(s) failed"
                exit 1
        fi
        echo "all checks passed"
        exit 0
}

# refuse RC PATTERN ARGS...: `rh fork tpl ARGS` exits RC with one line matching PATTERN,
# nothing started (no new QEMU, no clone record)
refuse() {
        want_rc=$1
        pattern=$2
        shift 2
        before=$(our_pids | wc -l)
        err=$(rh fork tpl "$@" 2>&1 >/dev/null)
        rc=$?
        after=$(our_pids | wc -l)
        recs=$(ls "$SD/clones" 2>/dev/null | wc -l)
        if [ $rc = "$want_rc" ] && echo "$err" | grep -q -- "$pattern" && [ "$before" = "$after" ] && [ "$recs" = 0 ] &&
                [ "$(echo "$err" | grep -v "^Try 'rehome fork --help'" | grep -c .)" = 1 ]; then
                ok "refused ($*): $err"
        else
                fail "($*): exit $rc (want $want_rc), '$err', QEMUs $before -> $after, records $recs"
        fi
}
