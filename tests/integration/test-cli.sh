#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The VMM-neutral CLI verbs end to end on real files and a real process:
# locate (hint and scan), patch (file and /proc/<pid>/mem of a process that
# maps the file MAP_PRIVATE), inspect --json (the written request decoded
# and compared field by field), wait-ack (mailbox and UDP; matching and
# foreign acks: exit code, stdout and stderr), usage errors and exit codes. No VM, no root needed (ptrace of own child).
set -euo pipefail
REHOME=${1:?rehome binary}
MK=${2:?mkmailbox binary}
dir=$(mktemp -d /dev/shm/rehome-test-cli.XXXXXX)
holder=""
cleanup() {
        if [ -n "$holder" ]; then exec 9>&- || true; kill "$holder" 2>/dev/null || true; wait "$holder" 2>/dev/null || true; fi
        rm -rf "$dir"
}
trap cleanup EXIT
fails=0 passes=0
ok()   { passes=$((passes+1)); echo "ok - $*"; }
fail() { fails=$((fails+1)); echo "not ok - $*"; }
expect_rc() { # expect_rc RC DESC CMD...
        local want=$1 desc=$2; shift 2
        set +e; "$@" >"$dir/out" 2>"$dir/err"; local rc=$?; set -e
        if [ "$rc" = "$want" ]; then ok "$desc"; else fail "$desc (rc $rc, want $want): $(cat "$dir/err")"; fi
}
TOKEN=00112233445566778899aabbccddeeff
MEM=$dir/mem
"$MK" arm "$MEM" 64M 0x3ff0000 $TOKEN

# locate: hint (one 4 KiB read) and scan
expect_rc 0 "locate with hint" "$REHOME" locate --file "$MEM" --gpa 0x3ff0000 --token $TOKEN
grep -q "gpa=0x3ff0000 token=$TOKEN abi=1.0 generation=1 (read 4096 bytes in 1 calls)" "$dir/out" && ok "locate hint reads one page" || fail "locate hint output: $(cat "$dir/out")"
expect_rc 0 "locate by scan" "$REHOME" locate --file "$MEM"
grep -q "gpa=0x3ff0000" "$dir/out" && ok "scan finds the page" || fail "scan output: $(cat "$dir/out")"
expect_rc 1 "locate wrong token" "$REHOME" locate --file "$MEM" --gpa 0x3ff0000 --token ffffffffffffffffffffffffffffffff
expect_rc 2 "locate bad token syntax" "$REHOME" locate --file "$MEM" --token xyz
grep -q "^Try 'rehome locate --help'" "$dir/err" && ok "usage error points at --help" || fail "usage text: $(cat "$dir/err")"

# patch the file, inspect it
cp "$MEM" "$dir/mem.orig"
expect_rc 0 "patch file" "$REHOME" --json patch --file "$MEM" --gpa 0x3ff0000 --token $TOKEN \
        --ip 10.0.0.5/24 --mac 02:00:00:00:00:05 --gateway 10.0.0.1 --ack 10.0.0.1:5555 --nonce abc123 --hostname c5
grep -q '"seq":1,"nonce":"0000000000abc123"' "$dir/out" && ok "patch prints seq 1 + nonce" || fail "patch out: $(cat "$dir/out")"
expect_rc 0 "inspect --json" "$REHOME" --json inspect --file "$MEM" --gpa 0x3ff0000
python3 - "$dir/out" <<'PY' && ok "inspect decodes the request" || fail "inspect json: $(cat "$dir/out")"
import json,sys
d=json.load(open(sys.argv[1]))
r=d["request"]
assert d["gpa"]=="0x3ff0000", d
assert r["interfaces"]==[{"name":"eth0","mac":"02:00:00:00:00:05"}], r
assert r["addresses"]==[{"interface":0,"address":"10.0.0.5/24"}], r
assert r["routes"][0]["gateway"]=="10.0.0.1" and r["routes"][0]["destination"]=="0.0.0.0/0", r
assert r["hostname"]=="c5" and r["ack"]=="10.0.0.1:5555" and r["seq"]==1 and r["nonce"]=="0000000000abc123", r
assert d["ack"]=={"error":"no ack yet"}, d
PY
expect_rc 0 "second patch increments seq" "$REHOME" patch --file "$MEM" --gpa 0x3ff0000 --ip 10.0.0.6/24 --nonce 1
grep -q "seq=2 nonce=0000000000000001" "$dir/out" && ok "seq 2" || fail "second patch: $(cat "$dir/out")"
expect_rc 2 "patch without request" "$REHOME" patch --file "$MEM" --gpa 0x3ff0000
expect_rc 2 "patch bad prefix" "$REHOME" patch --file "$MEM" --gpa 0x3ff0000 --ip 10.0.0.5/33
expect_rc 2 "patch multicast MAC" "$REHOME" patch --file "$MEM" --gpa 0x3ff0000 --ip 10.0.0.5/24 --mac 01:00:00:00:00:01
grep -q "interface 0: MAC 01:00:00:00:00:01 is not unicast" "$dir/err" && ok "MAC error text" || fail "MAC err: $(cat "$dir/err")"
expect_rc 1 "patch at a page without mailbox" "$REHOME" patch --file "$MEM" --gpa 0x1000 --ip 10.0.0.5/24
expect_rc 1 "patch past the end" "$REHOME" patch --file "$MEM" --gpa 0x8000000 --ip 10.0.0.5/24
printf '{"interfaces":[{"name":"eth1","mtu":1400,"mac":"02:00:00:00:00:07"}],"addresses":[{"address":"fd00::7/64"}]}' > "$dir/req.json"
expect_rc 0 "patch from JSON file" "$REHOME" patch --file "$MEM" --gpa 0x3ff0000 --request "$dir/req.json"
# What was written, decoded back: the request as the file says (defaults
# filled in), the next seq, the nonce patch printed, the arm header intact.
nonce=$(sed -n 's/^patched gpa=0x3ff0000 seq=3 nonce=\([0-9a-f]\{16\}\)$/\1/p' "$dir/out")
[ -n "$nonce" ] && ok "JSON patch prints seq 3 and a nonce ($nonce)" || fail "JSON patch out: $(cat "$dir/out")"
cp "$MEM" "$dir/mem.json-patched"
expect_rc 0 "inspect the JSON patch" "$REHOME" --json inspect --file "$MEM" --gpa 0x3ff0000
python3 - "$dir/out" "$nonce" "$TOKEN" <<'PY' && ok "mailbox holds the JSON request: MAC, MTU, address, seq 3, nonce" || fail "inspect after JSON patch: $(cat "$dir/out")"
import json,sys
d=json.load(open(sys.argv[1]))
want={"interfaces":[{"name":"eth1","mac":"02:00:00:00:00:07","mtu":1400}],
      "addresses":[{"interface":0,"address":"fd00::7/64"}],"routes":[],"dns":[],"search":[],
      "flush_neighbours":True,"announce":True,"ack_early":False,"replace_addresses":True,
      "seq":3,"nonce":sys.argv[2]}
assert d["request"]==want, d["request"]
assert d["gpa"]=="0x3ff0000" and d["arm"]["token"]==sys.argv[3] and d["arm"]["gpa"]=="0x3ff0000", d["arm"]
assert d["arm"]["arm_generation"]==1 and d["ack"]=={"error":"no ack yet"}, d
PY
expect_rc 2 "JSON file and flags exclude each other" "$REHOME" patch --file "$MEM" --gpa 0x3ff0000 --request "$dir/req.json" --ip 10.0.0.1/24
printf '{"interfaces":[{"name":"eth1"}],"oops":1}' > "$dir/bad.json"
expect_rc 1 "bad JSON file" "$REHOME" patch --file "$MEM" --gpa 0x3ff0000 --request "$dir/bad.json"
grep -q 'request: unknown key "oops"' "$dir/err" && ok "JSON error names the key" || fail "json err: $(cat "$dir/err")"
cmp -s "$MEM" "$dir/mem.json-patched" && ok "refused patches wrote nothing" || fail "a refused patch changed the memory file"

# wait-ack: nothing yet -> 3; ack applied -> 0; invalid -> 1 with the agent's text
out=$("$REHOME" patch --file "$MEM" --gpa 0x3ff0000 --ip 10.0.0.9/24 --nonce 77)
[ "$out" = "patched gpa=0x3ff0000 seq=4 nonce=0000000000000077" ] && ok "patch for wait-ack: seq 4" || fail "patch out: $out"
expect_rc 3 "wait-ack times out" "$REHOME" wait-ack --file "$MEM" --gpa 0x3ff0000 --nonce 77 --timeout 100
grep -qx "rehome: wait-ack: no ack for nonce 0000000000000077 within 100 ms; seen: no ack at all: the agent never saw the resume signal or the request" "$dir/err" &&
        ok "timeout says what was seen" || fail "timeout err: $(cat "$dir/err")"
[ ! -s "$dir/out" ] && ok "timeout prints nothing on stdout" || fail "timeout stdout: $(cat "$dir/out")"
"$MK" ack "$MEM" 0x3ff0000 2
expect_rc 0 "wait-ack applied (mailbox)" "$REHOME" wait-ack --file "$MEM" --gpa 0x3ff0000 --nonce 77 --timeout 2000
grep -qx "ack seq=4 status=applied signal=poll waited=[0-9]*\.[0-9]\{3\} ms (mailbox)" "$dir/out" &&
        ok "matching ack reported: $(cat "$dir/out")" || fail "applied out: $(cat "$dir/out") err: $(cat "$dir/err")"
expect_rc 0 "wait-ack --json applied (mailbox)" "$REHOME" --json wait-ack --file "$MEM" --gpa 0x3ff0000 --nonce 77 --timeout 2000
python3 - "$dir/out" <<'PY' && ok "JSON ack: mailbox channel, seq 4, nonce 77, applied" || fail "json ack: $(cat "$dir/out")"
import json,sys
d=json.load(open(sys.argv[1]))
a=d["ack"]
assert d["channel"]=="mailbox" and d["waited_ms"]>=0, d
assert (a["seq"],a["nonce"],a["status"],a["signal"],a["error"])==(4,"0000000000000077","applied","poll",""), a
assert (a["t_signal_ns"],a["t_read_ns"],a["t_applied_ns"],a["t_ack_ns"])==(1000,2000,3000,4000), a
PY
expect_rc 3 "wait-ack ignores another nonce" "$REHOME" wait-ack --file "$MEM" --gpa 0x3ff0000 --nonce 78 --timeout 100
grep -qx "rehome: wait-ack: no ack for nonce 0000000000000078 within 100 ms; seen: only an ack for another request (other nonce or seq): the agent never read ours" "$dir/err" &&
        ok "the ack of nonce 77 is not taken for 78" || fail "other nonce err: $(cat "$dir/err")"
[ ! -s "$dir/out" ] && ok "other nonce: nothing on stdout" || fail "other nonce stdout: $(cat "$dir/out")"
expect_rc 3 "wait-ack --json ignores another nonce" "$REHOME" --json wait-ack --file "$MEM" --gpa 0x3ff0000 --nonce 78 --timeout 100
python3 - "$dir/out" <<'PY' && ok "JSON timeout document" || fail "json timeout: $(cat "$dir/out")"
import json,sys
d=json.load(open(sys.argv[1]))
assert d["status"]=="timeout" and d["saw_stale"] and not d["saw_invalid"] and d["waited_ms"]>=100, d
assert d["seen"].startswith("only an ack for another request"), d
PY
# Our nonce with another seq is not our answer either (--seq).
expect_rc 3 "wait-ack --seq: a record of our nonce with seq 4 is not seq 5's" "$REHOME" wait-ack --file "$MEM" --gpa 0x3ff0000 --nonce 77 --seq 5 --timeout 100
grep -q "seen: only an ack for another request" "$dir/err" && ok "wrong seq reported as stale" || fail "wrong seq err: $(cat "$dir/err")"
expect_rc 0 "wait-ack --seq 4 matches" "$REHOME" wait-ack --file "$MEM" --gpa 0x3ff0000 --nonce 77 --seq 4 --timeout 2000
# A record whose CRC fails: said so, never taken (one byte of the stamps flipped).
cp "$MEM" "$dir/mem.good"
printf '\377' | dd of="$MEM" bs=1 seek=$((0x3ff0000 + 0xe0)) conv=notrunc 2>/dev/null
expect_rc 3 "wait-ack: corrupt ack record" "$REHOME" wait-ack --file "$MEM" --gpa 0x3ff0000 --nonce 77 --timeout 100
grep -q "seen: an invalid ack record (bad CRC" "$dir/err" && ok "invalid record reported: $(cat "$dir/err")" ||
        fail "invalid record err: $(cat "$dir/err")"
cp "$dir/mem.good" "$MEM"
"$MK" ack "$MEM" 0x3ff0000 3 "interface 0: MAC is all-zero"
expect_rc 1 "wait-ack rejected" "$REHOME" wait-ack --file "$MEM" --gpa 0x3ff0000 --nonce 77 --timeout 2000
grep -qx "rehome: wait-ack: agent rejected the request: interface 0: MAC is all-zero" "$dir/err" && ok "rejection text" || fail "reject err: $(cat "$dir/err")"
grep -qx "ack seq=4 status=invalid signal=poll waited=[0-9.]* ms (mailbox)" "$dir/out" && ok "rejected ack reported" ||
        fail "reject out: $(cat "$dir/out")"
# A hostile guest's error text: an escape sequence and a newline that would forge a line.
"$MK" ack "$MEM" 0x3ff0000 3 "$(printf 'bad\033[2J\nrehome: fork c9: applied')"
expect_rc 1 "wait-ack: hostile error text" "$REHOME" wait-ack --file "$MEM" --gpa 0x3ff0000 --nonce 77 --timeout 2000
[ "$(wc -l < "$dir/err")" = 1 ] && grep -qxF 'rehome: wait-ack: agent rejected the request: bad\x1b[2J\x0arehome: fork c9: applied' "$dir/err" &&
        ok "guest text escaped, one line: $(cat "$dir/err")" || fail "hostile text: $(od -c "$dir/err" | head -5)"

# wait-ack over UDP on loopback, with a foreign line first
port=$((20000 + RANDOM % 20000))
( sleep 0.3
  printf 'stage=applied mac=02:00:00:00:00:09 ip=10.0.0.9 nonce=99' > /dev/udp/127.0.0.1/$port
  printf 'stage=mailbox nonce=55' > /dev/udp/127.0.0.1/$port
  printf 'stage=applied mac=02:00:00:00:00:05 ip=10.0.0.5/24 nonce=55' > /dev/udp/127.0.0.1/$port ) &
sender=$!
expect_rc 0 "wait-ack over UDP" "$REHOME" --json wait-ack --udp 127.0.0.1:$port --nonce 55 --timeout 5000
wait $sender
python3 - "$dir/out" <<'PY' && ok "UDP ack with our nonce wins" || fail "udp out: $(cat "$dir/out")"
import json,sys
d=json.load(open(sys.argv[1]))
assert (d["channel"],d["stage"],d["mac"],d["ip"],d["error"])==("udp","applied","02:00:00:00:00:05","10.0.0.5/24",""), d
PY
# Only a foreign final line and our stage=mailbox line: no answer, and it says so.
port=$((20000 + RANDOM % 20000))
( sleep 0.3
  printf 'stage=applied mac=02:00:00:00:00:09 ip=10.0.0.9 nonce=99' > /dev/udp/127.0.0.1/$port
  printf 'stage=mailbox nonce=55' > /dev/udp/127.0.0.1/$port ) &
sender=$!
expect_rc 3 "wait-ack over UDP: foreign ack ignored" "$REHOME" wait-ack --udp 127.0.0.1:$port --nonce 55 --timeout 1500
wait $sender
grep -qx "rehome: wait-ack: no ack for nonce 0000000000000055 within 1500 ms; seen: the agent read the request but never finished applying it" "$dir/err" &&
        ok "UDP timeout says the agent read it" || fail "udp timeout err: $(cat "$dir/err")"

# patch through /proc/<pid>/mem of a process mapping the file MAP_PRIVATE:
# the process sees the request, the file stays byte-identical.
cp "$MEM" "$dir/mem.before"
mkfifo "$dir/hold.in"
"$MK" hold "$MEM" <"$dir/hold.in" >"$dir/hold.out" &
holder=$!
exec 9>"$dir/hold.in"
for _ in $(seq 100); do grep -q ready "$dir/hold.out" 2>/dev/null && break; sleep 0.05; done
grep -q ready "$dir/hold.out" || fail "holder did not start"
expect_rc 0 "patch via --pid" "$REHOME" patch --pid "$holder" --mem-file "$MEM" --gpa 0x3ff0000 --token $TOKEN --ip 10.0.0.42/24 --nonce 4242
expect_rc 0 "inspect via --pid" "$REHOME" --json inspect --pid "$holder" --mem-file "$MEM" --gpa 0x3ff0000
grep -q '10.0.0.42/24' "$dir/out" && ok "process memory holds the request" || fail "pid inspect: $(cat "$dir/out")"
cmp -s "$MEM" "$dir/mem.before" && ok "MAP_PRIVATE file unchanged" || fail "memory file changed by a --pid patch"
expect_rc 2 "--pid needs --mem-file" "$REHOME" patch --pid "$holder" --gpa 0x3ff0000 --ip 10.0.0.42/24
exec 9>&-
wait "$holder" || true
holder=""
expect_rc 1 "patch a dead pid" "$REHOME" patch --pid 999999 --mem-file "$MEM" --gpa 0x3ff0000 --ip 10.0.0.42/24

expect_rc 0 "--help" "$REHOME" --help
expect_rc 0 "patch --help" "$REHOME" patch --help
expect_rc 2 "unknown verb" "$REHOME" frobnicate
echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
