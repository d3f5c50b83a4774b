#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The identity lasts in the guest's own network stack (issue 10):
#  - systemd guest (guest/build-systemd-image.sh: systemd-networkd managing
#    eth0 statically with the template address, systemd-resolved owning
#    /etc/resolv.conf): fork a clone with a new IP, MAC, host name and DNS,
#    then in the clone restart systemd-networkd and `networkctl reconfigure
#    eth0`: only the new address answers ARP and ICMP from the gateway's
#    namespace, the template address stays silent; /etc/resolv.conf is still
#    resolved's symlink and resolved has the new DNS; /etc/hosts has the new
#    name; the ack carries the handoff bits (networkd, hosts, resolved,
#    reloaded);
#  - busybox guest with ifupdown managing eth0 (rehome.ifupdown=1): fork,
#    then `ifdown eth0; ifup eth0` in the clone: the same check.
#
# Usage: test-systemd-guest.sh REHOME IMAGE_DIR SYSTEMD_IMAGE_DIR
. "$(dirname "$0")/test-fork-lib.sh"
SYSTEMD_IMAGE=${3:-}
fork_setup sdguest "$1" "${2:-}"

# console ID WAIT CMDS: run shell commands on the clone's serial console, print its output
console() {
        printf '%s\n' "$3" | rh clone console "$1" --wait "$2" 2>&1 | tr -d '\r'
}

# only_new OLD NEW WHAT: NEW answers ARP and ping, OLD does neither
only_new() {
        mac_new=$(arp_mac "$2")
        mac_old=$(arp_mac "$1")
        if [ -n "$mac_new" ] && [ -z "$mac_old" ] && icmp_ok "$2" && ! icmp_ok "$1"; then
                ok "$3: only $2 answers (ARP from $mac_new, ping), $1 stays silent"
        else
                fail "$3: new $2 ARP '$mac_new', old $1 ARP '$mac_old' (want only the new one)"
        fi
}

# applied_bits FILE.json -> the first fork's ack applied mask
applied_bits() {
        python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["forks"][0]["ack"]["applied"])' "$1"
}

# --- busybox + ifupdown ---------------------------------------------------------------
template_create ifu --kernel-arg rehome.ifupdown=1
rh --json fork ifu --ip 10.88.0.41/24 --mac 52:54:00:88:00:41 --hostname ifu-one > "$SD/ifu.json" 2>&1 ||
        fail "fork ifu: $(cat "$SD/ifu.json")"
bits=$(applied_bits "$SD/ifu.json" 2>/dev/null || echo 0)
[ $((bits & (1 << 17))) != 0 ] && ok "ack: ifupdown stanza rewritten (applied 0x$(printf %x "$bits"))" ||
        fail "ack applied 0x$(printf %x "$bits"): no RH_APPLIED_IFUPDOWN"
c=$(rh --json clone list | sed -n 's/.*"id": "\(c[0-9]*\)".*/\1/p' | head -n 1)
out=$(console "$c" 8s 'cat /etc/network/interfaces; ifdown eth0; ifup eth0; echo ifupdown-rc=$?; ip -4 -o addr show dev eth0')
echo "$out" | grep -q "address 10.88.0.41" && ok "ifupdown: /etc/network/interfaces names 10.88.0.41" ||
        fail "interfaces file: $out"
echo "$out" | grep -q "ifupdown-rc=0" && ok "ifdown/ifup eth0 in the clone succeeded" || fail "ifdown/ifup: $out"
only_new 10.88.0.2 10.88.0.41 "busybox ifupdown after ifdown/ifup"
rh clone rm --all >/dev/null 2>&1
rh template rm ifu >/dev/null 2>&1

# Control: the same with the agent's handoff off brings the template back (the
# bug this guards against), so the check above can fail.
template_create ifx --kernel-arg rehome.ifupdown=1 --agent-args --no-handoff
rh fork ifx --ip 10.88.0.42/24 --mac 52:54:00:88:00:42 >/dev/null 2>&1 || fail "fork ifx"
c=$(rh --json clone list | sed -n 's/.*"id": "\(c[0-9]*\)".*/\1/p' | head -n 1)
console "$c" 8s 'ifdown eth0; ifup eth0' >/dev/null
[ -n "$(arp_mac 10.88.0.2)" ] && ok "control (--no-handoff): ifup brought the template address 10.88.0.2 back" ||
        fail "control (--no-handoff): 10.88.0.2 silent after ifup: the ifupdown check proves nothing"
rh clone rm --all >/dev/null 2>&1
rh template rm ifx >/dev/null 2>&1

# --- systemd guest --------------------------------------------------------------------
[ -n "$SYSTEMD_IMAGE" ] && [ -f "$SYSTEMD_IMAGE/image.json" ] || {
        command -v debootstrap >/dev/null || skip "no debootstrap to build the systemd guest image (apt-get install debootstrap)"
        fail "no systemd guest image at '$SYSTEMD_IMAGE' (make guest-systemd; needs debootstrap)"
        finish
}
t0=$(date +%s)
rh template create sd --image "$SYSTEMD_IMAGE" --ram-dir "$RAMDIR" --mem 1024M --ip 10.88.0.2/24 \
        --gateway 10.88.0.1 --boot-timeout 600s > "$SD/template-sd.out" 2> "$SD/template-sd.err" ||
        die "template create sd: $(tail -n 5 "$SD/template-sd.err")"
ok "systemd template created in $(($(date +%s) - t0)) s ($(grep '^boot:' "$SD/template-sd.out" | tr -s ' '))"

rh --json fork sd --ip 10.88.0.51/24 --mac 52:54:00:88:00:51 --hostname sd-one --dns 10.88.0.53 \
        --search clone.test > "$SD/sd.json" 2>&1 || fail "fork sd: $(cat "$SD/sd.json")"
c=$(rh --json clone list | sed -n 's/.*"id": "\(c[0-9]*\)".*/\1/p' | head -n 1)
# The reload and resolved come after the ack: look at the console line.
out=$(console "$c" 3s 'cat /run/systemd/network/00-rehome-eth0.network')
echo "$out" | grep -q "^Address=10.88.0.51/24" && echo "$out" | grep -q "^DNS=10.88.0.53" &&
        ok "runtime /run/systemd/network/00-rehome-eth0.network has the new identity" ||
        fail "runtime .network: $out"
bits=$(applied_bits "$SD/sd.json" 2>/dev/null || echo 0)
[ $((bits & (1 << 16))) != 0 ] && [ $((bits & (1 << 18))) != 0 ] &&
        ok "ack: networkd file and /etc/hosts handed over (applied 0x$(printf %x "$bits"))" ||
        fail "ack applied 0x$(printf %x "$bits"): want bits 16 (networkd) and 18 (hosts)"
n=0
until rh clone logs "$c" 2>/dev/null | grep -q "rehome-agent: handoff seq=" || [ $n -ge 60 ]; do
        sleep 1
        n=$((n + 1))
done
line=$(rh clone logs "$c" 2>/dev/null | grep "rehome-agent: handoff seq=" | tail -n 1 | tr -d '\r')
echo "$line" | grep -q "networkd=ok" && echo "$line" | grep -q "resolved=ok" && echo "$line" | grep -q "hosts=ok" &&
        ok "agent after the ack: $line" || fail "handoff line: '$line'"

out=$(console "$c" 20s 'systemctl restart systemd-networkd; sleep 3; networkctl reconfigure eth0; sleep 5; echo reconf-rc=$?; ip -4 -o addr show dev eth0; ls -l /etc/resolv.conf; resolvectl dns eth0; resolvectl domain eth0; grep 127.0.1.1 /etc/hosts; hostname')
echo "$out" | grep -q "reconf-rc=0" && ok "in the clone: systemctl restart systemd-networkd; networkctl reconfigure eth0" ||
        fail "restart/reconfigure: $out"
echo "$out" | grep -q "inet 10.88.0.51/24" && ! echo "$out" | grep -q "inet 10.88.0.2/" &&
        ok "eth0 after the restart: 10.88.0.51/24 only" || fail "eth0 addresses after the restart: $out"
echo "$out" | grep -q "/etc/resolv.conf -> ../run/systemd/resolve/stub-resolv.conf" &&
        ok "/etc/resolv.conf is still systemd-resolved's symlink" || fail "resolv.conf: $out"
echo "$out" | grep -q "Link [0-9]* (eth0): 10.88.0.53" && ok "resolved has the new DNS for eth0 (10.88.0.53)" ||
        fail "resolvectl dns: $out"
echo "$out" | grep -q "Link [0-9]* (eth0): clone.test" && ok "resolved has the new search domain" ||
        fail "resolvectl domain: $out"
echo "$out" | grep -q "127.0.1.1.*sd-one" && ok "/etc/hosts: 127.0.1.1 names sd-one" || fail "/etc/hosts: $out"
only_new 10.88.0.2 10.88.0.51 "systemd-networkd after restart + reconfigure"
rh clone rm --all >/dev/null 2>&1
rh template rm sd >/dev/null 2>&1

# Control: a template whose agent does not hand over: networkd's restart puts
# the template address back next to the new one, as issue 10 found.
rh template create sdx --image "$SYSTEMD_IMAGE" --ram-dir "$RAMDIR" --mem 1024M --ip 10.88.0.2/24 \
        --gateway 10.88.0.1 --boot-timeout 600s --agent-args --no-handoff > /dev/null 2> "$SD/template-sdx.err" ||
        die "template create sdx: $(tail -n 5 "$SD/template-sdx.err")"
rh fork sdx --ip 10.88.0.52/24 --mac 52:54:00:88:00:52 >/dev/null 2>&1 || fail "fork sdx"
c=$(rh --json clone list | sed -n 's/.*"id": "\(c[0-9]*\)".*/\1/p' | head -n 1)
console "$c" 20s 'systemctl restart systemd-networkd; sleep 3; networkctl reconfigure eth0; sleep 5' >/dev/null
[ -n "$(arp_mac 10.88.0.2)" ] && ok "control (--no-handoff): after the restart the clone answers on the template address again" ||
        fail "control (--no-handoff): 10.88.0.2 silent: the networkd check proves nothing"
rh clone rm --all >/dev/null 2>&1
rh template rm sdx >/dev/null 2>&1

check_nothing_left
finish
