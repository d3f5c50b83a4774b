#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
#
# Smoke test of bench-pager: run it at a tiny size and check that its stdout is
# one JSON document with the expected sections and that the figures it reports
# are consistent (a fresh pager takes exactly one fault per working-set page,
# the pager-recorded working set is the touched set, every target is judged).
# Exits 77 when bench-pager does (userfaultfd unavailable).
import json
import subprocess
import sys

args = [sys.argv[1], "--quick", "--mem-mib", "8", "--ws-mib", "2", "--window-mib", "2",
        "--write-kib", "64", "--clients", "1,2", "--runs", "1"] + sys.argv[2:]
p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=240)
sys.stderr.write(p.stderr)
if p.returncode == 77:
    print(p.stdout.strip())
    sys.exit(77)
if p.returncode != 0:
    sys.exit("bench-pager exited %d" % p.returncode)
doc = json.loads(p.stdout)
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


for k in ("tool", "config", "fault_service", "sharing", "prefetch", "targets"):
    check(k in doc, "key %s" % k)
pages = doc["config"]["working_set_bytes"] // 4096
check(pages == 512, "working set of 2 MiB = 512 pages, got %d" % pages)
fs = doc["fault_service"]["variants"]
names = [v["name"] for v in fs]
check(names[:3] == ["pager warm", "MAP_PRIVATE warm", "pager warm, spin 100 us"], "fault variants %s" % names)
check(fs[2].get("spin_us") == 100, "the spinning variant says its --spin-us")
check(len(fs) == (5 if doc["fault_service"]["cold_measured"] else 3), "cold variants present iff measured")
for v in fs:
    for k in ("p50_us", "p99_us", "faults_per_second", "pages", "faults"):
        check(k in v, "%s: %s" % (v["name"], k))
    check(v["pages"] == pages, "%s: %d pages touched" % (v["name"], v["pages"]))
    check(0 < v["p50_us"] <= v["p99_us"], "%s: p50 %s p99 %s" % (v["name"], v["p50_us"], v["p99_us"]))
    if v["backing"] == "pager":
        check(v["faults"] == pages and v["pager"]["faults"] == pages,
              "%s: %d faults, want one per page (%d)" % (v["name"], v["faults"], pages))
sh = doc["sharing"]["variants"]
check([v["name"] for v in sh] == ["pager", "map_private", "private_copy"], "sharing variants")
for v in sh:
    check([r["clients"] for r in v["runs"]] == [1, 2], "%s: client counts" % v["name"])
    for r in v["runs"]:
        check(r.get("host_kib", 0) > 0, "%s x %d: host_kib" % (v["name"], r["clients"]))
copy = sh[2]["runs"]
check(copy[1]["clients_pss_anon_kib"] >= 2 * 8 * 1024, "2 private copies hold >= 2 x 8 MiB anonymous")
pf = doc["prefetch"]
check([v["name"] for v in pf["variants"]] == ["none", "window", "recorded working set"], "prefetch variants")
check(pf["recorded_pages"] == pf["working_set_pages"] == pf["recorded_matching_pages"] == pages,
      "recorded working set = the touched set (%d, %d matching, want %d)"
      % (pf["recorded_pages"], pf["recorded_matching_pages"], pages))
check(pf["variants"][0]["faults_after_resume_p50"] == pages, "no prefetch: one fault per page")
rec = pf["variants"][2]
# Every page is installed by the prefetch or by a fault (both, when a fault and the prefetch race: EEXIST).
check(pages <= rec["prefetch_pages_last_run"] + rec["faults_after_resume_p50"] <= pages + rec["faults_after_resume_p50"],
      "recorded: %d prefetched + %d faults, want the %d pages" % (rec["prefetch_pages_last_run"],
                                                                   rec["faults_after_resume_p50"], pages))
check(rec["prefetch_pages_last_run"] > 0, "recorded: nothing prefetched")
ts = doc["targets"]
check(len(ts) == 3, "3 targets")
for t in ts:
    check(t["result"] in ("met", "missed", "not measured"), "target %s: %s" % (t["name"], t["result"]))
    print("%s: %s (%s %s, target %s)" % (t["name"], t["result"], round(t["value"], 3), t["unit"], t["target"]))
if failures:
    print("FAIL: " + "; ".join(failures))
    sys.exit(1)
print("ok - bench-pager JSON has every section and consistent figures")
