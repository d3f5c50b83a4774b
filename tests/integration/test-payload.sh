#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Named per-fork payloads and hypeman fork mailboxes, against real QEMU clones:
#  - an app in the guest blocks in rehome-payload-wait (inotify) in a clone that
#    is then snapshotted (template create --from-clone); a fork of that
#    template with --payload app.cfg=FILE wakes the waiting app with the
#    exact bytes, and the fork's ack says "delivered" for app.cfg;
#  - a hypeman fork mailbox armed by the agent (--hypeman-mailbox NAME=TOKEN)
#    is found by its marker and written by `rehome fork --hypeman-mailbox`;
#    the guest delivers it and acks `stage=applied mailbox=NAME` over UDP to
#    the gateway at the JSON's ack_port;
#  - refused: a bad name, a non-object, payloads larger than the pages armed.
#
# Usage: test-payload.sh REHOME IMAGE_DIR.
. "$(dirname "$0")/test-fork-lib.sh"
fork_setup payload "$@"

# console ID CMD: run CMD on the clone's serial shell, print what came back
console() {
        printf '%s\n' "$2" | rh clone console "$1" --wait 3s 2>&1 | tr -d '\r'
}

template_create tpl --agent-args "--hypeman-mailbox,kernel.identity.v1=tok-1"

# --- a waiting app, snapshotted while it waits -------------------------------------
rh fork tpl --ip 10.88.0.50/24 >/dev/null 2>"$SD/c1.err" || die "fork c1: $(cat "$SD/c1.err")"
c1=$(rh --json clone list | sed -n 's/.*"id": "\(c[0-9]*\)".*/\1/p' | head -n 1)
out=$(console "$c1" 'setsid sh -c "rehome-payload-wait --new --timeout 900000 app.cfg > /run/got.app.cfg 2>&1; r=\$?; echo >> /run/got.app.cfg; echo rc=\$r >> /run/got.app.cfg" </dev/null >/dev/null 2>&1 & sleep 1; pidof rehome-payload-wait')
echo "$out" | grep -qE '^[0-9]+$' && ok "app waiting in $c1 (pid $(echo "$out" | grep -E '^[0-9]+$'))" ||
        die "no waiting app in $c1: '$out'"
rh template create tpl2 --from-clone "$c1" --ram-dir "$RAMDIR" > "$SD/tpl2.out" 2> "$SD/tpl2.err" ||
        die "template create --from-clone: $(cat "$SD/tpl2.err")"
rh clone rm --all >/dev/null 2>&1

printf '{"instance":"clone-77","list":[1,2,3],"nested":{"k":"v"}}' > "$SD/app.json"
rh --json fork tpl2 --ip 10.88.0.51/24 --payload app.cfg="$SD/app.json" > "$SD/fork.json" 2>&1 ||
        fail "fork with --payload: $(cat "$SD/fork.json")"
python3 - "$SD/fork.json" <<'PY' && ok "ack: payload app.cfg delivered (applied bit 12)" || fail "payload ack: $(cat "$SD/fork.json")"
import json, sys
f = json.load(open(sys.argv[1]))["forks"][0]
assert f["ack"]["status"] == "applied", f
assert f["ack"]["applied"] & (1 << 12), f
assert f["payloads"] == {"app.cfg": "delivered"}, f
PY
c2=$(rh --json clone list | sed -n 's/.*"id": "\(c[0-9]*\)".*/\1/p' | head -n 1)
got=$(console "$c2" 'sleep 1; cat /run/got.app.cfg; echo; cat /run/rehome/payloads/app.cfg; echo')
want=$(cat "$SD/app.json")
[ "$(echo "$got" | grep -cxF "$want")" -ge 2 ] && echo "$got" | grep -qx 'rc=0' &&
        ok "the app that waited since before the snapshot got the payload byte for byte" ||
        fail "waiting app: '$got'"

# --- refusals: one line, nothing started ---------------------------------------------
echo '[1,2]' > "$SD/array.json"
err=$(rh fork tpl2 --ip 10.88.0.60/24 --payload app.cfg="$SD/array.json" 2>&1 >/dev/null)
[ $? = 2 ] && echo "$err" | grep -q "not a JSON object" && ok "refused a non-object: $(echo "$err" | head -n 1)" ||
        fail "non-object payload: '$err'"
err=$(rh fork tpl2 --ip 10.88.0.60/24 --payload 'bad/name'="$SD/app.json" 2>&1 >/dev/null)
[ $? = 2 ] && echo "$err" | grep -q "invalid name" && ok "refused a bad name: $(echo "$err" | head -n 1)" ||
        fail "bad name: '$err'"
python3 -c 'import json; print(json.dumps({"blob": "x" * 70000}))' > "$SD/big.json"
n_before=$(our_pids | wc -l)
err=$(rh fork tpl2 --ip 10.88.0.61/24 --payload big="$SD/big.json" 2>&1 >/dev/null)
rc=$?
[ $rc = 1 ] && echo "$err" | grep -q "payloads need [0-9]* bytes, the agent armed 65536" &&
        [ "$(our_pids | wc -l)" = "$n_before" ] &&
        ok "refused payloads larger than the 16 pages armed: $(echo "$err" | tail -n 1)" ||
        fail "too large: exit $rc, '$err'"

# --- hypeman fork mailbox round trip --------------------------------------------------
rh clone rm --all >/dev/null 2>&1
port=39$(($$ % 900 + 100))
ip netns exec "$NS" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.88.0.1", int(sys.argv[1])))
s.settimeout(120)
out = open(sys.argv[2], "w")
try:
    while True:
        data = s.recv(2048).decode(errors="replace")
        out.write(data if data.endswith("\n") else data + "\n")
        out.flush()
        if "mailbox=" in data:
            break
except socket.timeout:
    pass
' "$port" "$SD/hm.acks" &
listener=$!
sleep 0.5
printf '{"instance_name":"forked","ack_port":%s}' "$port" > "$SD/hm.json"
out=$(rh --json fork tpl --ip 10.88.0.52/24 --hypeman-mailbox kernel.identity.v1="$SD/hm.json" --hypeman-token tok-1 2>&1) ||
        fail "fork with --hypeman-mailbox: $out"
n=0
while kill -0 "$listener" 2>/dev/null && [ $n -lt 600 ]; do
        sleep 0.1
        n=$((n + 1))
done
kill "$listener" 2>/dev/null
wait "$listener" 2>/dev/null
line=$(grep 'mailbox=' "$SD/hm.acks" 2>/dev/null | head -n 1)
echo " $line " | grep -q ' stage=applied ' && echo " $line " | grep -q ' mailbox=kernel.identity.v1 ' &&
        ok "hypeman ack over UDP: $line" || fail "no hypeman ack: '$(cat "$SD/hm.acks" 2>/dev/null)'"
c3=$(rh --json clone list | sed -n 's/.*"id": "\(c[0-9]*\)".*/\1/p' | head -n 1)
got=$(console "$c3" 'cat /run/rehome/payloads/kernel.identity.v1; echo')
echo "$got" | grep -qxF "$(cat "$SD/hm.json")" && ok "the fork mailbox was delivered as /run/rehome/payloads/kernel.identity.v1" ||
        fail "fork mailbox file: '$got'"
# Without an ack_port of ours, rehome fork puts its own in (as hypeman's host does) and waits.
rh clone rm --all >/dev/null 2>&1
printf '{"instance_name":"forked-2"}' > "$SD/hm2.json"
rh --json fork tpl --ip 10.88.0.54/24 --hypeman-mailbox kernel.identity.v1="$SD/hm2.json" --hypeman-token tok-1 \
        > "$SD/hm2.out" 2>&1 || fail "fork waiting for the hypeman ack: $(cat "$SD/hm2.out")"
python3 - "$SD/hm2.out" <<'PY' && ok "rehome fork injected ack_port and saw stage=applied mailbox=kernel.identity.v1" || fail "hypeman ack in fork: $(cat "$SD/hm2.out")"
import json, sys
f = json.load(open(sys.argv[1]))["forks"][0]
assert f["ok"] and f["hypeman_mailboxes"] == {"kernel.identity.v1": "applied"}, f
PY
err=$(rh fork tpl --ip 10.88.0.53/24 --hypeman-mailbox kernel.identity.v1="$SD/hm.json" --hypeman-token wrong 2>&1 >/dev/null)
[ $? = 1 ] && echo "$err" | grep -q "no fork mailbox kernel.identity.v1 with that token" &&
        ok "a wrong token finds no marker: $(echo "$err" | tail -n 1)" || fail "wrong token: '$err'"

rh clone rm --all >/dev/null 2>&1
rh template rm tpl2 >/dev/null 2>&1
rh template rm tpl >/dev/null 2>&1
check_nothing_left
finish
