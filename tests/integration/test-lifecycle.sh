#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The clone lifecycle under faults and concurrency, against real QEMU:
#  - fault injection: `fork --count 4` and `template create` stopped at each
#    stage (REHOME_FAULT_POINT) and sent SIGINT or SIGKILL; afterwards (for
#    SIGKILL: after the next rehome command, which reconciles) no QEMU of this
#    state directory runs, no tap of it exists, no clone record is left, no
#    RAM file but the template's, and the next fork works;
#  - SIGINT exits 130 with one line saying what was removed;
#  - two template creates of one name at once (10 trials): one wins, the
#    other is refused and leaves the winner intact;
#  - two state directories with the same template name: both work, and
#    neither's RAM directory holds the other's file;
#  - a template removed while a fork of it is under way is refused;
#  - a device state file that is empty or a FIFO is refused before QEMU
#    starts, fast (not after a 60 s timeout).
#
# Usage: test-lifecycle.sh REHOME IMAGE_DIR.
. "$(dirname "$0")/test-fork-lib.sh"
fork_setup life "$@"

# wait_line FILE TEXT SECONDS: until FILE contains TEXT
wait_line() {
        i=0
        while [ $i -lt $(($3 * 10)) ]; do
                grep -q "$2" "$1" 2>/dev/null && return 0
                sleep 0.1
                i=$((i + 1))
        done
        return 1
}

# Everything of this state directory that must be gone after a fault.
check_clean() {
        what=$1
        left=$(our_pids)
        [ -z "$left" ] && ok "$what: no QEMU left" || { fail "$what: QEMU left: $left"; for p in $left; do kill -9 "$p"; done; }
        taps=$(ip -n "$NS" -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' |
                grep -v -e '^lo$' -e "^$BR" | tr '\n' ' ')
        [ -z "$taps" ] && ok "$what: no tap left" || fail "$what: taps left: $taps"
        recs=$(ls "$SD/clones" 2>/dev/null | tr '\n' ' ')
        [ -z "$recs" ] && ok "$what: no clone record left" || fail "$what: records left: $recs"
        rams=$(ls "$RAMDIR" | grep -v '^tpl-[0-9a-f]*\.ram$' | tr '\n' ' ')
        [ -z "$rams" ] && ok "$what: no RAM file but the template's" || fail "$what: RAM files left: $rams"
}

template_create tpl
[ "$(ls "$RAMDIR")" = "tpl-$(ls "$RAMDIR" | sed -n 's/^tpl-\([0-9a-f]*\)\.ram$/\1/p').ram" ] &&
        ok "template RAM file is named by the state directory's tag: $(ls "$RAMDIR")" ||
        fail "RAM dir holds: $(ls "$RAMDIR")"

# --- fork: every stage x SIGINT / SIGKILL -------------------------------------------
for stage in prepare spawn load-state handoff resume wait; do
        for sig in INT KILL; do
                REHOME_FAULT_POINT=fork:$stage "$REHOME" --state-dir "$SD" fork tpl --ip 10.88.0.40/24 \
                        --count 4 >/dev/null 2>"$SD/fault.err" &
                pid=$!
                if ! wait_line "$SD/fault.err" "fault point fork:$stage reached" 60; then
                        fail "fork:$stage: fault point never reached: $(cat "$SD/fault.err")"
                        kill -9 $pid 2>/dev/null
                        wait $pid
                        continue
                fi
                sleep 0.5 # let the other threads of the batch get there too
                kill -$sig $pid
                wait $pid
                rc=$?
                if [ $sig = INT ]; then
                        [ $rc = 130 ] && grep -q "interrupted by SIGINT" "$SD/fault.err" &&
                                ok "fork:$stage SIGINT: exit 130, '$(grep interrupted "$SD/fault.err")'" ||
                                fail "fork:$stage SIGINT: exit $rc, $(cat "$SD/fault.err")"
                else
                        [ $rc = 137 ] || fail "fork:$stage SIGKILL: exit $rc"
                        # The next command reconciles.
                        rh clone list >/dev/null 2>"$SD/reconcile.err"
                fi
                check_clean "fork:$stage SIG$sig"
        done
done
out=$(rh fork tpl --ip 10.88.0.40/24 --count 2 2>&1) && [ "$(arp_mac 10.88.0.41)" = "52:54:0a:58:00:29" ] &&
        ok "the next fork works after every fault" || fail "fork after the faults: $out"
rh clone rm --all 2>/dev/null

# --- two forks racing for one identity ---------------------------------------------------
# 12 trials for one IP, 8 for one MAC (other IPs): exactly one wins, never two live clones.
trial=1
races=0
while [ $trial -le 20 ]; do
        if [ $trial -le 12 ]; then
                a="--ip 10.88.0.70/24"
                b="--ip 10.88.0.70/24 --mac 02:00:00:00:70:02"
        else
                a="--ip 10.88.0.71/24 --mac 02:00:00:00:71:01"
                b="--ip 10.88.0.72/24 --mac 02:00:00:00:71:01"
        fi
        rh fork tpl $a >/dev/null 2>"$SD/ra.err" &
        p1=$!
        rh fork tpl $b >/dev/null 2>"$SD/rb.err" &
        p2=$!
        wait $p1
        r1=$?
        wait $p2
        r2=$?
        live=$(rh --json clone list 2>/dev/null | grep -c '"alive": true')
        if [ $((r1 + r2)) = 1 ] && [ "$live" = 1 ] && cat "$SD/ra.err" "$SD/rb.err" | grep -q "already used by clone"; then
                races=$((races + 1))
        else
                fail "identity race $trial: exits $r1/$r2, $live live: $(cat "$SD/ra.err" "$SD/rb.err")"
        fi
        rh clone rm --all >/dev/null 2>&1
        trial=$((trial + 1))
done
[ $races = 20 ] && ok "two forks racing for one IP (12 trials) or one MAC (8): exactly one live clone every time"

# --- template create: boot and snapshot x SIGINT / SIGKILL ---------------------------
for point in boot snapshot; do
        for sig in INT KILL; do
                REHOME_FAULT_POINT=template:$point "$REHOME" --state-dir "$SD" template create t2 --image "$IMAGE" \
                        --ram-dir "$RAMDIR" --ip 10.88.0.3/24 --gateway 10.88.0.1 >/dev/null 2>"$SD/fault.err" &
                pid=$!
                if ! wait_line "$SD/fault.err" "fault point template:$point reached" 120; then
                        fail "template:$point: fault point never reached: $(cat "$SD/fault.err")"
                        kill -9 $pid 2>/dev/null
                        wait $pid
                        continue
                fi
                kill -$sig $pid
                wait $pid
                rc=$?
                if [ $sig = INT ]; then
                        [ $rc = 130 ] && grep -q "interrupted by SIGINT" "$SD/fault.err" &&
                                ok "template:$point SIGINT: exit 130" || fail "template:$point SIGINT: exit $rc, $(cat "$SD/fault.err")"
                else
                        [ $rc = 137 ] || fail "template:$point SIGKILL: exit $rc"
                        rh template list >/dev/null 2>&1
                        rh clone list >/dev/null 2>&1
                fi
                [ ! -e "$SD/templates/t2" ] && ok "template:$point SIG$sig: nothing of t2 left" ||
                        fail "template:$point SIG$sig: $SD/templates/t2 left: $(ls "$SD/templates/t2")"
                check_clean "template:$point SIG$sig"
        done
done

# --- two creates of one name at once ----------------------------------------------------
trial=1
wins=0
while [ $trial -le 10 ]; do
        rh template create race --image "$IMAGE" --ram-dir "$RAMDIR" --ip 10.88.0.4/24 --gateway 10.88.0.1 \
                >/dev/null 2>"$SD/race1.err" &
        p1=$!
        rh template create race --image "$IMAGE" --ram-dir "$RAMDIR" --ip 10.88.0.4/24 --gateway 10.88.0.1 \
                >/dev/null 2>"$SD/race2.err" &
        p2=$!
        wait $p1
        r1=$?
        wait $p2
        r2=$?
        if [ $((r1 + r2)) = 1 ] && rh template show race >/dev/null 2>&1 && [ -s "$(ls "$RAMDIR"/race-*.ram)" ]; then
                wins=$((wins + 1))
        else
                fail "race trial $trial: exits $r1/$r2: $(cat "$SD/race1.err" "$SD/race2.err")"
        fi
        rh template rm race >/dev/null 2>&1
        trial=$((trial + 1))
done
[ $wins = 10 ] && ok "two creates of one name: exactly one won, the winner intact, in 10 of 10 trials ($(cat "$SD/race1.err" "$SD/race2.err" | grep -m1 -e exists -e 'being created'))"

# --- two state directories, one template name -----------------------------------------
SD2=$(mktemp -d /tmp/rehome-test-life2.XXXXXX)
NS2=$(echo "rhtest-l2-$$" | cut -c1-15)
rh2() { "$REHOME" --state-dir "$SD2" "$@"; }
rh2 net up --netns "$NS2" --gateway 10.89.0.1/24 >/dev/null || fail "net up in the second state dir"
rh2 template create tpl --image "$IMAGE" --ram-dir "$RAMDIR" --ip 10.89.0.2/24 --gateway 10.89.0.1 >/dev/null 2>&1 ||
        fail "template tpl in the second state dir"
[ "$(ls "$RAMDIR" | grep -c '^tpl-')" = 2 ] && ok "two RAM files for two templates named tpl: $(ls "$RAMDIR" | tr '\n' ' ')" ||
        fail "RAM files: $(ls "$RAMDIR")"
rh fork tpl --ip 10.88.0.50/24 >/dev/null 2>&1 && rh2 fork tpl --ip 10.89.0.50/24 >/dev/null 2>&1 &&
        ok "both state directories fork their own tpl" || fail "fork in one of the two state dirs failed"
rh2 clone rm --all >/dev/null 2>&1
rh2 template rm tpl >/dev/null 2>&1
[ "$(ls "$RAMDIR" | grep -c '^tpl-')" = 1 ] && rh fork tpl --ip 10.88.0.51/24 >/dev/null 2>&1 &&
        ok "removing the other state dir's tpl left ours working" || fail "our tpl after the other's rm"
rh2 net down >/dev/null 2>&1
ip netns del "$NS2" 2>/dev/null
rm -rf "$SD2"
rh clone rm --all >/dev/null 2>&1

# --- template rm while a fork of it is under way ------------------------------------------
REHOME_FAULT_POINT=fork:load-state "$REHOME" --state-dir "$SD" fork tpl --ip 10.88.0.60/24 >/dev/null 2>"$SD/fault.err" &
pid=$!
if wait_line "$SD/fault.err" "fault point fork:load-state reached" 60; then
        err=$(rh template rm tpl 2>&1)
        rc=$?
        [ $rc = 1 ] && echo "$err" | grep -q "under way" && ok "template rm during a fork refused: $err" ||
                fail "template rm during a fork: exit $rc, '$err'"
else
        fail "fork for the rm case never reached load-state"
fi
kill -INT $pid
wait $pid
rh template show tpl >/dev/null 2>&1 && ok "the template survived" || fail "template gone"

# --- a state file that is empty or a FIFO ---------------------------------------------------
state=$(sed -n 's/.*"state": "\([^"]*\)".*/\1/p' "$SD/templates/tpl/meta.json")
mv "$state" "$state.real"
: > "$state"
start=$(date +%s)
err=$(rh fork tpl --ip 10.88.0.61/24 --timeout 5s 2>&1)
rc=$?
[ $rc = 1 ] && echo "$err" | grep -q "is empty" && [ $(($(date +%s) - start)) -lt 5 ] &&
        ok "empty state file refused at once: $err" || fail "empty state: exit $rc, '$err'"
rm -f "$state"
mkfifo "$state"
err=$(rh fork tpl --ip 10.88.0.61/24 --timeout 5s 2>&1)
rc=$?
[ $rc = 1 ] && echo "$err" | grep -q "not a regular file" && ok "FIFO state file refused: $err" ||
        fail "FIFO state: exit $rc, '$err'"
rm -f "$state"
mv "$state.real" "$state"
check_clean "end"
check_nothing_left
finish
