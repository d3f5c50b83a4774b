#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The VMM-neutral CLI verbs end to end on real files and a real process:
# locate (hint and scan), patch (file and /proc/<pid>/mem of a process that
# maps the file MAP_PRIVATE), inspect --json (the written request decoded
# and compared field by field), wait-ack (mailbox and UDP; matching and
# foreign acks: exit code, stdout and stderr), usage errors and exit codes;
# hypeman V1 (marker at any byte offset, tokens of 1..30 bytes, V1-only page
# bytes, refusals, V1 acks without a nonce). No VM, no root needed (ptrace of own child).
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
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if (d["seq"],d["nonce"],d["gpa"])==(1,"0000000000abc123","0x3ff0000") else 1)' "$dir/out" &&
        ok "patch prints seq 1 + nonce" || fail "patch out: $(cat "$dir/out")"
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
      "seq":3,"version":1,"nonce":sys.argv[2]}
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
assert (d["channel"],d["stage"],d["mac"],d["ip"],d["agent_error"])==("udp","applied","02:00:00:00:00:05","10.0.0.5/24",""), d
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

# hypeman V1, host side. A V1 marker (magic + token) may sit at any byte
# offset: a decoy with another token, one across the scanner's 1 MiB chunk
# boundary, and ours at an odd address with a 30-byte token holding spaces
# and UTF-8 (no NUL before +64).
V1MEM=$dir/v1mem
V1TOK='clone 7: été → fork #1 ok!'
python3 - "$V1MEM" "$V1TOK" <<'PY'
import struct,sys
path,tok=sys.argv[1],sys.argv[2].encode()
assert len(tok)==30, len(tok)
with open(path,'wb') as f: f.truncate(64<<20)
with open(path,'r+b') as f:
    def mark(off,t):
        f.seek(off); f.write(b'HYPEMAN_RESUME_NETWORK_MAILBOX_V1\0'+t+b'\0'*(30-len(t))+struct.pack('<II',0,0))
    mark(0x123457,b'decoy')
    mark((1<<20)-20,b'boundary')
    mark(0x2345671,tok)
PY
expect_rc 0 "locate --format v1 by scan, token with spaces and UTF-8" "$REHOME" locate --file "$V1MEM" --format v1 --token "$V1TOK"
grep -q '^V1 mailbox gpa=0x2345671 token=".*" seq=0 length=0' "$dir/out" && ok "scan finds the V1 marker at the unaligned gpa 0x2345671" || fail "V1 scan: $(cat "$dir/out")"
expect_rc 0 "locate --format v1 across a chunk boundary" "$REHOME" locate --file "$V1MEM" --format v1 --token boundary
grep -q '^V1 mailbox gpa=0xfffec token="boundary"' "$dir/out" && ok "marker across the 1 MiB chunk boundary found" || fail "boundary: $(cat "$dir/out")"
expect_rc 0 "locate --format v1 any token: the first in gpa order" "$REHOME" --json locate --file "$V1MEM" --format v1
python3 - "$dir/out" <<'PY' && ok "any-token scan: first marker, JSON" || fail "any token: $(cat "$dir/out")"
import json,sys
d=json.load(open(sys.argv[1]))
assert (d["gpa"],d["format"],d["token"],d["seq"],d["length"])==("0xfffec","v1","boundary",0,0), d
PY
expect_rc 0 "locate --format v1 --gpa at the exact odd offset" "$REHOME" locate --file "$V1MEM" --format v1 --gpa 0x2345671 --token "$V1TOK"
grep -q "gpa=0x2345671 .*(read 4096 bytes in 1 calls)" "$dir/out" && ok "V1 hint reads one 4 KiB buffer" || fail "V1 hint: $(cat "$dir/out")"
expect_rc 1 "locate --format v1 --gpa one byte off" "$REHOME" locate --file "$V1MEM" --format v1 --gpa 0x2345670 --token "$V1TOK"
grep -q "no V1 marker with that token at gpa 0x2345670" "$dir/err" && ok "off-by-one gpa refused" || fail "off by one: $(cat "$dir/err")"
expect_rc 1 "locate --format v1: a 29-byte prefix of the token is not the token" "$REHOME" locate --file "$V1MEM" --format v1 --token "${V1TOK%?}"
expect_rc 2 "rehome --gpa still aligned without --format v1" "$REHOME" locate --file "$V1MEM" --gpa 0x2345671
grep -q "is not 4 KiB aligned" "$dir/err" && ok "native --gpa alignment kept" || fail "native align: $(cat "$dir/err")"

# patch --format v1: length + JSON, then seq 1 (hypeman's host); only V1 bytes change.
cp "$V1MEM" "$dir/v1mem.before"
expect_rc 0 "patch --format v1 (scan by token)" "$REHOME" patch --file "$V1MEM" --format v1 --token "$V1TOK" \
        --mac 02:AB:00:00:00:07 --ip 10.7.0.7/24 --gateway 10.7.0.1 --ack gateway:7777
grep -qx "patched gpa=0x2345671 format=v1 seq=1 mac=02:ab:00:00:00:07 ip=10.7.0.7" "$dir/out" && ok "V1 patch output" || fail "V1 patch out: $(cat "$dir/out")"
check_v1_page() { # check_v1_page DESC: bytes at 0x2345671 are exactly V1's, nothing else changed
python3 - "$V1MEM" "$dir/v1mem.before" "$V1TOK" <<'PY' && ok "$1" || fail "$1"
import struct,sys
a=open(sys.argv[1],'rb').read(); b=open(sys.argv[2],'rb').read(); tok=sys.argv[3].encode()
g=0x2345671
want=b'{"interface_name":"eth0","mac":"02:ab:00:00:00:07","ipv4":"10.7.0.7","prefix":24,"gateway":"10.7.0.1","ack_port":7777}'
assert a[g:g+34]==b'HYPEMAN_RESUME_NETWORK_MAILBOX_V1\0' and a[g+34:g+64]==tok, a[g:g+64]
seq,ln=struct.unpack('<II',a[g+64:g+72])
assert (seq,ln)==(1,len(want)), (seq,ln)
assert a[g+72:g+72+ln]==want, a[g+72:g+72+ln]
assert a[g+72+ln:g+4096]==b'\0'*(4096-72-ln)
assert a[:g+64]==b[:g+64] and a[g+4096:]==b[g+4096:], "bytes outside the V1 buffer changed"
PY
}
check_v1_page "V1 page holds magic, token, seq 1, length, JSON and zeros only"
# The guest answered and wrote seq 0 back; the next host writes seq 1 again.
printf '\0\0\0\0' | dd of="$V1MEM" bs=1 seek=$((0x2345671 + 64)) conv=notrunc 2>/dev/null
expect_rc 0 "second V1 patch (after the guest's seq reset)" "$REHOME" patch --file "$V1MEM" --format v1 --gpa 0x2345671 --token "$V1TOK" \
        --mac 02:ab:00:00:00:07 --ip 10.7.0.7/24 --gateway 10.7.0.1 --ack gateway:7777
grep -q "seq=1 " "$dir/out" && ok "V1 host writes seq 1 every time" || fail "second V1 patch: $(cat "$dir/out")"
check_v1_page "second V1 patch: same V1-only bytes"
expect_rc 0 "inspect --format v1 --json" "$REHOME" --json inspect --file "$V1MEM" --format v1 --gpa 0x2345671
python3 - "$dir/out" "$V1TOK" <<'PY' && ok "inspect decodes the V1 request" || fail "V1 inspect: $(cat "$dir/out")"
import json,sys
d=json.load(open(sys.argv[1]))
assert (d["gpa"],d["format"],d["token"],d["seq"],d["state"])==("0x2345671","v1",sys.argv[2],1,"pending"), d
r=d["request"]
assert r["interfaces"]==[{"name":"eth0","mac":"02:ab:00:00:00:07"}] and r["addresses"]==[{"interface":0,"address":"10.7.0.7/24"}], r
assert r["routes"][0]["gateway"]=="10.7.0.1" and r["ack"]=="gateway:7777", r
PY
# What V1 cannot carry is refused (exit 2, the option named), and nothing is written.
cp "$V1MEM" "$dir/v1mem.patched"
V1BASE=(patch --file "$V1MEM" --format v1 --gpa 0x2345671 --token "$V1TOK" --mac 02:ab:00:00:00:07 --ip 10.7.0.7/24)
v1_refused() { # v1_refused TEXT EXTRA-ARGS...
        local text=$1; shift
        expect_rc 2 "V1 refuses: $*" "$REHOME" "${V1BASE[@]}" "$@"
        head -1 "$dir/err" | grep -qF "rehome patch: $text" && ok "V1 refusal names it: $(head -1 "$dir/err")" || fail "V1 refusal text for $*: $(cat "$dir/err")"
}
v1_refused "--format v1 needs --gateway"
v1_refused "--ip: V1 cannot carry an IPv6 address" --gateway 10.7.0.1 --ip fd00::7/64
v1_refused "--gateway: V1 cannot carry IPv6 routes" --gateway 10.7.0.1 --gateway fd00::1
v1_refused "--mtu: V1 cannot carry an MTU" --gateway 10.7.0.1 --mtu 1400
v1_refused "--dns: V1 cannot carry DNS servers" --gateway 10.7.0.1 --dns 10.7.0.53
v1_refused "--search: V1 cannot carry DNS search domains" --gateway 10.7.0.1 --search example.com
v1_refused "--hostname: V1 cannot carry a host name" --gateway 10.7.0.1 --hostname c7
v1_refused "--route: V1 cannot carry extra routes" --gateway 10.7.0.1 --route 10.9.0.0/16,10.7.0.1
v1_refused "--ack ADDR: V1 acks go to the gateway; use --ack gateway:PORT" --gateway 10.7.0.1 --ack 10.7.0.1:7777
v1_refused "--nonce: V1 acks carry no nonce" --gateway 10.7.0.1 --nonce 42
v1_refused "--match-mac: V1 finds the interface by name only" --gateway 10.7.0.1 --match-mac 52:54:00:00:00:01
cmp -s "$V1MEM" "$dir/v1mem.patched" && ok "refused V1 patches wrote nothing" || fail "a refused V1 patch changed the file"

# Tokens: 1, 24, 29 and 30 bytes with spaces and UTF-8 accepted, 31 refused.
for tok in 't' 'tok é → 24 bytes long' 'a 29 byte token: ü é → ok' 'thirty bytes: ü é → spaces' ; do
        n=$(printf '%s' "$tok" | wc -c)
        python3 - "$dir/tokmem" "$tok" <<'PY'
import struct,sys
t=sys.argv[2].encode()
with open(sys.argv[1],'wb') as f:
    f.truncate(1<<20); f.seek(0x1235)
    f.write(b'HYPEMAN_RESUME_NETWORK_MAILBOX_V1\0'+t+b'\0'*(30-len(t)))
PY
        expect_rc 0 "V1 token of $n bytes accepted by patch" "$REHOME" patch --file "$dir/tokmem" --format v1 --token "$tok" \
                --mac 02:ab:00:00:00:08 --ip 10.7.0.8/24 --gateway 10.7.0.1
        grep -q "^patched gpa=0x1235 format=v1 seq=1 " "$dir/out" && ok "token of $n bytes: marker found at 0x1235" || fail "token $n: $(cat "$dir/out")"
done
expect_rc 2 "V1 token of 31 bytes refused by patch" "$REHOME" patch --file "$dir/tokmem" --format v1 --token 'thirty bytes: ü é → spacesX' \
        --mac 02:ab:00:00:00:08 --ip 10.7.0.8/24 --gateway 10.7.0.1
grep -qx "rehome patch: --token: a V1 token is 1..30 bytes, got 31" "$dir/err" && ok "31-byte token refusal" || fail "31: $(cat "$dir/err")"
expect_rc 2 "empty V1 token refused" "$REHOME" locate --file "$dir/tokmem" --format v1 --token ''

# wait-ack --format v1: no nonce; stage=applied with our mac (any case) and ip.
v1_wait() { # v1_wait RC DESC LINE...: send the lines, wait for mac 02:ab:00:00:00:07 ip 10.7.0.7
        local want=$1 desc=$2; shift 2
        local port=$((20000 + RANDOM % 20000))
        ( sleep 0.3; for l in "$@"; do printf '%s' "$l" > /dev/udp/127.0.0.1/$port; done ) &
        local sender=$!
        expect_rc "$want" "$desc" "$REHOME" wait-ack --format v1 --udp 127.0.0.1:$port --mac 02:AB:00:00:00:07 --ip 10.7.0.7 --timeout 1500
        wait $sender
}
v1_wait 0 "V1 ack: hypeman's line" 'stage=applied mac=02:ab:00:00:00:07 ip=10.7.0.7'
grep -qx "ack stage=applied mac=02:ab:00:00:00:07 ip=10.7.0.7 waited=[0-9.]* ms (udp)" "$dir/out" && ok "V1 ack printed" || fail "V1 ack out: $(cat "$dir/out")"
v1_wait 0 "V1 ack: older agent's stage lines first, upper-case MAC" \
        'stage=signal_seen' 'stage=mailbox_seen' 'stage=netlink_start' 'stage=netlink_done' \
        'STAGE=APPLIED MAC=02:AB:00:00:00:07 IP=10.7.0.7'
v1_wait 0 "V1 ack: rehome-agent's V1 line (mailbox stage, then seq and signal words)" \
        'stage=mailbox mac=02:ab:00:00:00:07 ip=10.7.0.7 seq=1' \
        'stage=applied mac=02:ab:00:00:00:07 ip=10.7.0.7 seq=1 signal=vmgenid-kmsg'
v1_wait 0 "V1 ack: words in another order, a foreign clone's ack first" \
        'stage=applied mac=02:ab:00:00:00:09 ip=10.7.0.9' 'ip=10.7.0.7 mac=02:ab:00:00:00:07 stage=applied'
v1_wait 3 "V1 ack with another ip refused" 'stage=applied mac=02:ab:00:00:00:07 ip=10.7.0.70'
grep -q "no V1 ack for mac=02:ab:00:00:00:07 ip=10.7.0.7 within 1500 ms; seen: only UDP lines for other requests" "$dir/err" && ok "V1 mismatch said so" || fail "V1 mismatch err: $(cat "$dir/err")"
v1_wait 3 "V1 ack with another mac refused" 'stage=applied mac=02:ab:00:00:00:08 ip=10.7.0.7'
v1_wait 3 "V1 progress lines only: not final" 'stage=signal_seen' 'stage=netlink_done'
grep -q "seen: the agent read the request but never finished applying it" "$dir/err" && ok "V1 progress reported" || fail "V1 progress err: $(cat "$dir/err")"
expect_rc 2 "wait-ack --format v1 needs --udp" "$REHOME" wait-ack --format v1 --mac 02:ab:00:00:00:07 --ip 10.7.0.7
expect_rc 2 "wait-ack --format v1 has no mailbox channel" "$REHOME" wait-ack --format v1 --file "$V1MEM" --udp 5555 --mac 02:ab:00:00:00:07 --ip 10.7.0.7
expect_rc 2 "wait-ack --format v1 has no nonce" "$REHOME" wait-ack --format v1 --udp 5555 --nonce 1 --mac 02:ab:00:00:00:07 --ip 10.7.0.7
"$REHOME" wait-ack --help | grep -q "V1 acks cannot be told apart by fork" && ok "wait-ack --help says V1 acks cannot be told apart" || fail "wait-ack help"

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
