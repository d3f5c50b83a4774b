#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Faults of the fork path, each against real QEMU clones:
#  - a request the agent rejects (an interface the guest lacks): exit 1 with
#    the agent's error text, the clone keeps the template identity and is
#    removed (and with --keep it stays, still answering as the template);
#  - no ack within --timeout (the clone is patched but never resumed): exit 3
#    saying what was seen;
#  - a clone whose QEMU died: listed as dead, removed cleanly;
#  - an invalid template directory, a template whose kernel is gone, a
#    corrupt device-state file: one-line messages naming the thing and the
#    fix, and nothing left running.
#
# Usage: test-fork-faults.sh REHOME IMAGE_DIR.
. "$(dirname "$0")/test-fork-lib.sh"
fork_setup faults "$@"

template_create tpl

# --- rejected request -----------------------------------------------------------
err=$(rh fork tpl --ip 10.88.0.20/24 --iface nosuch0 2>&1 >/dev/null)
rc=$?
[ $rc = 1 ] && ok "rejected request exits 1" || fail "rejected request exited $rc"
echo "$err" | grep -q "rejected the request" && echo "$err" | grep -q "nosuch0" &&
        ok "agent's error text shown: $(echo "$err" | tail -n 1)" || fail "no agent error text in '$err'"
[ -z "$(rh clone list | sed 1d)" ] && ok "rejected clone removed" || fail "rejected clone left: $(rh clone list)"

err=$(rh fork tpl --ip 10.88.0.21/24 --iface nosuch0 --keep 2>&1 >/dev/null)
rc=$?
[ $rc = 1 ] && ok "rejected request with --keep exits 1" || fail "exit $rc with --keep"
[ -z "$(arp_mac 10.88.0.21)" ] && ok "kept rejected clone did not take 10.88.0.21" ||
        fail "kept rejected clone answers at 10.88.0.21"
[ "$(arp_mac 10.88.0.2)" = "52:54:00:12:34:56" ] && ok "kept rejected clone still has the template identity" ||
        fail "kept rejected clone does not answer as the template"
rh clone rm --all 2>/dev/null

# --- ack timeout -----------------------------------------------------------------
err=$(rh fork tpl --ip 10.88.0.22/24 --no-resume --timeout 2s 2>&1 >/dev/null)
rc=$?
[ $rc = 3 ] && ok "no ack within --timeout exits 3: $(echo "$err" | tail -n 1)" || fail "timeout exited $rc: $err"
echo "$err" | grep -q "no ack" && ok "timeout says what was seen" || fail "timeout message: $err"
[ -z "$(rh clone list | sed 1d)" ] && ok "timed-out clone removed" || fail "timed-out clone left"

# --- dead QEMU --------------------------------------------------------------------
rh fork tpl --ip 10.88.0.23/24 >/dev/null 2>&1 || fail "fork for the dead-QEMU case failed"
pid=$(clone_field c1 pid)
[ -n "$pid" ] && kill -9 "$pid"
sleep 0.5
[ "$(clone_field c1 state)" = dead ] && ok "killed clone listed as dead" || fail "state after kill: $(clone_field c1 state)"
rh clone rm c1 2>/dev/null && ok "dead clone removed" || fail "clone rm of a dead clone failed"

# --- a clone that resets never comes back as the template -------------------------------
rh fork tpl --ip 10.88.0.27/24 >/dev/null 2>&1 || fail "fork for the reset case failed"
pid=$(clone_field c1 pid)
tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- " -no-reboot" && ok "clones run with -no-reboot" ||
        fail "no -no-reboot on the clone's command line"
python3 - "$SD/clones/c1/qmp.sock" <<'PY' || fail "QMP system_reset"
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rw")
f.readline()
for cmd in ("qmp_capabilities", "system_reset"):
    f.write(json.dumps({"execute": cmd}) + "\n"); f.flush()
    while "return" not in json.loads(f.readline()): pass
PY
i=0
while [ $i -lt 50 ] && [ -e "/proc/$pid" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; do
        sleep 0.1
        i=$((i + 1))
done
st=$(clone_field c1 state)
[ "$st" != running ] && [ "$(clone_field c1 alive)" = false ] && ok "after a reset the clone is stopped ($st), not running" ||
        fail "after reset: state $st alive $(clone_field c1 alive)"
[ -z "$(arp_mac 10.88.0.2)" ] && ok "nothing answers as the template after the reset" || fail "the template address answers after a reset"
rh clone rm c1 >/dev/null 2>&1

# --- a leftover QEMU whose record is gone -------------------------------------------
# Forget a live clone's record (as a crashed rehome would): its QEMU keeps tap
# rhc1 but still carries this state directory's marker; the next fork
# reconciles first: it ends that QEMU (saying so), then gets c1 and its tap.
rh fork tpl --ip 10.88.0.25/24 >/dev/null 2>&1 || fail "fork for the orphan case failed"
leftover=$(clone_field c1 pid)
rm -rf "$SD/clones/c1"
err=$(rh fork tpl --ip 10.88.0.26/24 2>&1 >/dev/null)
rc=$?
[ $rc = 0 ] && echo "$err" | grep -q "ended 1 VMM" && ok "orphan QEMU ended by the next fork: $(echo "$err" | head -n 1)" ||
        fail "orphan: exit $rc, '$err'"
# Gone, or a zombie its new parent has not reaped yet (it holds no tap and no memory).
[ -n "$leftover" ] && { [ ! -e "/proc/$leftover" ] || grep -q '^State:[[:space:]]*Z' "/proc/$leftover/status" 2>/dev/null; } &&
        ok "the orphan (pid $leftover) is gone" ||
        { fail "orphan pid $leftover still runs"; kill -9 "$leftover" 2>/dev/null; }
[ "$(arp_mac 10.88.0.26)" = "52:54:0a:58:00:1a" ] && ok "the new clone took the freed tap and answers" ||
        fail "no answer from 10.88.0.26"
rh clone rm --all 2>/dev/null

# --- invalid template, missing kernel, corrupt state -------------------------------
mkdir -p "$SD/templates/broken" && echo '{"name": "broken"' > "$SD/templates/broken/meta.json"
err=$(rh fork broken --ip 10.88.0.24/24 2>&1)
rc=$?
[ $rc = 1 ] && echo "$err" | grep -q "rehome template rm broken" && [ "$(echo "$err" | wc -l)" = 1 ] &&
        ok "invalid template: $err" || fail "invalid template: exit $rc, '$err'"

cp -r "$SD/templates/tpl" "$SD/templates/nokernel"
sed -e 's/"name": "tpl"/"name": "nokernel"/' -e 's#"kernel": "[^"]*"#"kernel": "/nonexistent/vmlinuz"#' \
        "$SD/templates/tpl/meta.json" > "$SD/templates/nokernel/meta.json"
err=$(rh fork nokernel --ip 10.88.0.24/24 2>&1)
rc=$?
[ $rc = 1 ] && echo "$err" | grep -q "kernel /nonexistent/vmlinuz" && ok "missing kernel: $err" ||
        fail "missing kernel: exit $rc, '$err'"

cp -r "$SD/templates/tpl" "$SD/templates/badstate"
sed -e 's/"name": "tpl"/"name": "badstate"/' -e "s#\"state\": \"[^\"]*\"#\"state\": \"$SD/templates/badstate/state\"#" \
        "$SD/templates/tpl/meta.json" > "$SD/templates/badstate/meta.json"
head -c 4096 "$SD/templates/tpl/state" > "$SD/templates/badstate/state"
err=$(rh fork badstate --ip 10.88.0.24/24 2>&1 >/dev/null)
rc=$?
[ $rc = 1 ] && echo "$err" | grep -q -i "migration" && ok "corrupt device state: $(echo "$err" | tail -n 1)" ||
        fail "corrupt state: exit $rc, '$err'"
[ -z "$(rh clone list | sed 1d)" ] && ok "nothing recorded after the failed fork" || fail "clone left after corrupt state"

check_nothing_left
finish
