#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Smoke test of `rehome bench` under real QEMU: one signal mode (poll), 3
# forks after the first, the stage table section only. Parses the JSON and
# checks that exactly the forks asked for ran and acked (4 timed, 3
# exact-count), each by the poll source, that every column of every fork is
# a number >= 0 that agrees with the engine's own timings and with the
# others (ready = spawn + incoming + patch; guest stages in causal order),
# that the stats are those of exactly those samples, that the accelerator is
# named, and that the CDF plot file was written. Never asserts on how long
# anything took. The nat section
# (3 per-fork NAT, 3 pooled NAT, 3 DHCP if dnsmasq is installed, and 3 rehome
# forks alternating, of the same poll
# template, ~10 s more): every fork reachable at its unique address, set-up
# counted, and no namespace, veth or QEMU left behind.
#
# Usage: test-bench.sh REHOME IMAGE_DIR. Exit 77 (skip) without root, QEMU,
# the guest image or gnuplot.
. "$(dirname "$0")/test-fork-lib.sh"
fork_setup bench "$@"
command -v gnuplot >/dev/null || skip "no gnuplot (apt-get install gnuplot-nox)"

out="$SD/bench.json"
rh --json bench --quick --modes poll --forks 3 --sections modes,nat --image "$IMAGE" \
        --ram-dir "$RAMDIR" --plot "$SD/cdf.png" > "$out" 2> "$SD/bench.err"
rc=$?
[ $rc = 0 ] && ok "bench exited 0" || { tail -20 "$SD/bench.err"; fail "bench exited $rc"; }

# Every check reads the JSON document itself (not a grep of keys that exist
# whatever happened): the counts, the values and their relations can only be
# right if the bench really forked, timed and acked each clone.
python3 - "$out" <<'PY'
import json, math, sys

fails = 0
def check(cond, what):
    global fails
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        fails += 1
    return cond

def num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

def nonneg(v):
    return num(v) and v >= 0

try:
    doc = json.load(open(sys.argv[1]))
except Exception as e:  # no document, or a broken one: everything below is moot
    print("FAIL: bench --json output does not parse: %s" % e)
    sys.exit(1)

check(doc.get("schema_version") == 1 and doc.get("verb") == "bench" and "error" not in doc,
      "the --json contract: schema_version 1, verb bench, no error (docs/JSON.md)")
check(all(k in doc for k in ("modes", "host", "targets")), "docs/JSON.md's keys of bench: host, targets, and modes (run)")
check(doc.get("accel") in ("tcg", "kvm"), "accelerator named: %r" % doc.get("accel"))
check(doc.get("quick") is True, "quick run recorded")
check(nonneg(doc.get("seconds")) and doc["seconds"] > 0, "run time recorded: %r s" % doc.get("seconds"))

# The load flag: from the load averages and QEMU counts it records, recomputed here.
host = doc.get("host", {})
la = [float(host.get(k, "0 0 0").split()[0]) for k in ("loadavg_start", "loadavg_end")]
want_loaded = max(la) > 0.5 * host.get("cpus", 1) or host.get("qemu_processes_start", 0) > 0
check(isinstance(host.get("qemu_processes_start"), int) and isinstance(host.get("qemu_processes_end"), int),
      "QEMU processes counted at start and end: %r / %r" % (host.get("qemu_processes_start"), host.get("qemu_processes_end")))
check(host.get("loaded") is want_loaded, "loaded=%r matches load %r and %r other QEMU at the start" %
      (host.get("loaded"), la, host.get("qemu_processes_start")))

# The modes section: the one mode asked for, and no other.
modes = doc.get("modes")
if not check(isinstance(modes, list) and len(modes) == 1, "one mode group (got %r)" %
             ([m.get("mode") for m in modes] if isinstance(modes, list) else modes)):
    sys.exit(1)
g = modes[0]
check("error" not in g and "skipped" not in g, "poll mode ran: %s" % g.get("error", g.get("skipped", "")))
check(g.get("mode") == "poll" and g.get("label") == "poll", "group is mode poll")
check(g.get("template") == "bench-poll-noprearm", "template for mode poll: %r" % g.get("template"))
check(g.get("prearmed") is False, "poll template not prearmed")
check(g.get("agent_args") == "--signal,poll", "agent forced to --signal poll: %r" % g.get("agent_args"))

cols = ["fork_total_ms", "resume_signal_ms", "mailbox_ack_ms", "reconfigure_ms", "apply_after_mailbox_ms",
        "spawn_ms", "incoming_ms", "patch_ms", "ready_to_resume_ms", "pages_referenced", "pages_written",
        "pages_rss"]
# measured column -> the engine's per-fork timing it is taken from
from_timing = {"fork_total_ms": "total_ms", "resume_signal_ms": "resume_to_signal_ms",
               "mailbox_ack_ms": "resume_to_read_ms", "reconfigure_ms": "resume_to_applied_ms",
               "spawn_ms": "spawn_ms", "incoming_ms": "incoming_ms", "patch_ms": "patch_ms"}

def mac_of(ip):
    """The identity rehome gives an IPv4 address: 52:54 + the four octets."""
    try:
        octets = [int(b) for b in ip.split("/")[0].split(".")]
    except (AttributeError, ValueError):
        return None
    return "52:54:" + ":".join("%02x" % b for b in octets) if len(octets) == 4 else None

def check_samples(grp, name, n):
    """n forks, every one acked applied by the poll source, every column a
    number >= 0 and consistent with the engine's timings."""
    check(grp.get("forks") == n and grp.get("acked") == n,
          "%s: %r forks, %r acked (want %d)" % (name, grp.get("forks"), grp.get("acked"), n))
    check(grp.get("signals") == {"poll": n}, "%s: signal sources %r (want poll x%d)" % (name, grp.get("signals"), n))
    xs = grp.get("samples") or []
    check(len(xs) == n, "%s: %d samples (want %d)" % (name, len(xs), n))
    bad = []
    for i, x in enumerate(xs):
        m, t, a = x.get("measured", {}), x.get("timings_ms", {}), x.get("ack", {})
        if x.get("ok") is not True or a.get("status") != "applied" or a.get("signal") != "poll":
            bad.append("%d: ok=%r ack=%r" % (i, x.get("ok"), a))
        for c in cols:
            if not nonneg(m.get(c)):
                bad.append("%d: %s=%r" % (i, c, m.get(c)))
        for c, k in from_timing.items():
            if not (num(m.get(c)) and num(t.get(k)) and abs(m[c] - t[k]) < 1e-6):
                bad.append("%d: %s=%r but timings_ms[%s]=%r" % (i, c, m.get(c), k, t.get(k)))
        if all(num(m.get(c)) for c in cols):
            if abs(m["ready_to_resume_ms"] - (m["spawn_ms"] + m["incoming_ms"] + m["patch_ms"])) > 1e-6:
                bad.append("%d: ready_to_resume != spawn + incoming + patch" % i)
            if abs(m["apply_after_mailbox_ms"] - (m["reconfigure_ms"] - m["mailbox_ack_ms"])) > 1e-6:
                bad.append("%d: apply_after_mailbox != reconfigure - mailbox_ack" % i)
            # Guest stamps in causal order, host stages inside the total.
            if not m["resume_signal_ms"] <= m["mailbox_ack_ms"] <= m["reconfigure_ms"]:
                bad.append("%d: guest stages out of order: signal %r, read %r, applied %r" %
                           (i, m["resume_signal_ms"], m["mailbox_ack_ms"], m["reconfigure_ms"]))
            if not m["ready_to_resume_ms"] < m["fork_total_ms"]:
                bad.append("%d: host stages %r not inside total %r" % (i, m["ready_to_resume_ms"], m["fork_total_ms"]))
            if not m["pages_referenced"] > 0 or not m["pages_rss"] > 0:
                bad.append("%d: no RAM pages counted: %r" % (i, m))
    check(not bad, "%s: every sample acked applied by poll, %d columns numbers >= 0 and consistent%s" %
          (name, len(cols), "" if not bad else ": " + "; ".join(bad[:6])))
    # The forks run one after another (each removed before the next), so they
    # may share an address; each must carry the MAC derived from it.
    bad = [(x.get("ip"), x.get("mac")) for x in xs if mac_of(x.get("ip")) != x.get("mac")]
    check(xs and not bad, "%s: every clone's MAC is the one of its address (%s)%s" %
          (name, xs[0].get("ip") if xs else None, "" if not bad else ": %r" % bad))
    return xs

def check_stats(grp, name, xs):
    """stats over exactly these samples: n, min and max equal to theirs."""
    st = grp.get("stats", {})
    bad = []
    for c in cols:
        s = st.get(c)
        vals = [x["measured"][c] for x in xs if nonneg(x.get("measured", {}).get(c))]
        if not isinstance(s, dict) or s.get("n") != len(xs):
            bad.append("%s: %r" % (c, s))
            continue
        if not (len(vals) == len(xs) and abs(s["min"] - min(vals)) < 1e-6 and abs(s["max"] - max(vals)) < 1e-6
                and s["min"] <= s["p50"] <= s["p99"] <= s["max"] and s["min"] - 1e-6 <= s["avg"] <= s["max"] + 1e-6
                and abs(s["avg"] - sum(vals) / len(vals)) < 1e-6):
            bad.append("%s: %r vs samples %r" % (c, s, vals))
    check(not bad, "%s: stats of every column over exactly %d samples%s" %
          (name, len(xs), "" if not bad else ": " + "; ".join(bad[:4])))

# 4 timed forks (first + 3): the first reported apart, stats over the other 3.
xs = check_samples(g, "timed forks", 4)
if len(xs) == 4:
    check(g.get("first") == xs[0].get("measured"), "first-fork row is the first sample's columns")
    check_stats(g, "timed forks", xs[1:])
# 3 exact-count forks (RAM mapped before resume), stats over all 3.
e = g.get("exact_pages", {})
check(e.get("label") == "exact pages (RAM mapped before resume)", "exact page-count group present")
ex = check_samples(e, "exact-count forks", 3)
if len(ex) == 3:
    check_stats(e, "exact-count forks", ex)

# The nat section: 3 per-fork NAT, 3 pooled NAT and 3 rehome forks, all reachable.
nat = doc.get("nat", {})
check("error" not in nat, "nat section ran: %s" % nat.get("error", ""))
# DHCP: skipped (with the install hint) without dnsmasq, else 3 forks too.
dh = nat.get("dhcp", {})
if "skipped" in dh:
    check("dnsmasq-base" in dh["skipped"] or "DHCP" in dh["skipped"] or "dhcp" in dh["skipped"],
          "dhcp baseline skipped with a reason: %r" % dh["skipped"])
    kinds = ("nat", "nat_pooled", "rehome")
else:
    kinds = ("nat", "nat_pooled", "dhcp", "rehome")
    da = [x.get("address", "").split(".")[-1] for x in dh.get("samples") or []]
    check(da == ["150", "151", "152"], "dhcp forks at their reserved addresses .150-.152: %r" % da)
    for q in ("p50", "p99"):
        check(nonneg(nat.get("ratio_dhcp_reachable_" + q)), "ratio_dhcp_reachable_%s present" % q)
for kind in kinds:
    k = nat.get(kind, {})
    check(k.get("forks") == 3 and k.get("ok") == 3, "nat section: %r of %r %s forks reachable (want 3 of 3)" %
          (k.get("ok"), k.get("forks"), kind))
    check(k.get("identity_ok") == 3, "nat section: %s identity by ARP in %r of 3" % (kind, k.get("identity_ok")))
    ss = k.get("samples") or []
    # Every kind spawns and loads a clone; only per-fork NAT sets up a
    # namespace on the clone's path (pooled NAT's was made before timing),
    # only rehome patches the mailbox and waits for the guest to apply it.
    is_nat = kind in ("nat", "nat_pooled")
    per_fork = kind == "nat"
    bad = [x for x in ss if x.get("rc") != 0 or x.get("error") != "" or not nonneg(x.get("reachable_ms"))
           or not nonneg(x.get("clone_spawn_ms")) or not nonneg(x.get("clone_incoming_ms"))
           or per_fork != nonneg(x.get("setup_ms")) or per_fork != nonneg(x.get("teardown_ms"))
           or is_nat == nonneg(x.get("clone_patch_ms")) or is_nat == nonneg(x.get("resume_applied_ms"))]
    check(len(ss) == 3 and not bad, "nat section: 3 %s samples, reachable and timed%s" %
          (kind, "" if not bad else ": %r" % bad[:2]))
    # NAT: each clone keeps the template's identity behind its own address;
    # rehome: the clone answers with the MAC of its new address.
    if is_nat:
        addrs = [x.get("address") for x in ss]
        check(len(set(addrs)) == 3, "nat section: %s forks at 3 addresses %r" % (kind, addrs))
        want = [nat.get("template_mac")] * len(ss)
    else:
        want = [mac_of(x.get("address")) for x in ss]
    got = [x.get("arp_mac") for x in ss]
    check(got == want and None not in want, "nat section: %s clones answer ARP as %r" % (kind, got))
    r = k.get("stats", {}).get("reachable_ms", {})
    check(r.get("n") == 3 and nonneg(r.get("min")), "nat section: %s reachable_ms stats over 3" % kind)
pp = nat.get("nat_pooled", {})
check(pp.get("prepared") == 3 and (pp.get("pool_prepare_ms") or {}).get("n") == 3,
      "pooled NAT: 3 namespaces prepared before timing, prepare time over 3: %r / %r" %
      (pp.get("prepared"), pp.get("pool_prepare_ms")))
pa = [x.get("address") for x in pp.get("samples") or []]
na = [x.get("address") for x in nat.get("nat", {}).get("samples") or []]
check(pa and not set(pa) & set(na), "pooled and per-fork NAT at distinct addresses: %r / %r" % (pa, na))
for q in ("p50", "p99"):
    check(nonneg(nat.get("ratio_pooled_reachable_" + q)), "ratio_pooled_reachable_%s present" % q)
sc = nat.get("setup_commands", {})
check(sc.get("nft_rules") == 2 and nonneg(sc.get("processes")) and sc["processes"] > 0,
      "NAT set-up: %r processes, %r nft rules per clone (want 2)" % (sc.get("processes"), sc.get("nft_rules")))

sys.exit(min(fails, 100))
PY
FAILS=$((FAILS + $?))
[ -s "$SD/cdf.png" ] && head -c 8 "$SD/cdf.png" | grep -q 'PNG\|<svg\|<?xml' && ok "plot written: $SD/cdf.png" ||
        fail "no plot at $SD/cdf.png"
dm=$(pgrep -f -- "--conf-file=$SD/nat-" | tr '\n' ' ')
[ -z "$dm" ] && ok "no dnsmasq of the bench left" || fail "dnsmasq left running: $dm"
left=$(ls /run/netns 2>/dev/null | grep '^rhnat-' | tr '\n' ' ')
[ -z "$left" ] && ok "no per-clone NAT namespace left" || fail "NAT namespaces left: $left"

rh clone rm --all >/dev/null 2>&1
check_nothing_left
finish
