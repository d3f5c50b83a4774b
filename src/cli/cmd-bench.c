/* SPDX-License-Identifier: MIT */
/*
 * rehome bench: the stage table per agent signal mode, with warm pool vs
 * cold spawn, locate+patch vs memory size, agent apply vs ip(8), concurrent
 * forks and cold-template prefetch side by side (src/vmm/bench.c measures;
 * this file prints the tables, writes the latency CDF plot with gnuplot and
 * the --json document with every sample).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "cleanup.h"
#include "src/vmm/bench.h"
#include "src/vmm/vmm.h"

static void help(void)
{
        printf("Usage: rehome [--state-dir DIR] bench [options]\n\n"
               "Fork real clones and measure the handoff: for each agent signal mode, N forks\n"
               "(the first reported apart): fork total, resume->signal, mailbox ack\n"
               "(resume->read), reconfigure (resume->applied ack), apply after mailbox, spawn,\n"
               "incoming, patch (avg/p50/p99/max) and the guest pages touched from resume to\n"
               "ack (clear_refs + smaps Referenced; Anonymous = written). Side by side: warm\n"
               "pool vs cold spawn, locate+patch at 256 MiB vs 16 GiB vs a full scan\n"
               "(bench-locate), agent apply vs ip(8) (bench-apply), 1/4/16/32 concurrent\n"
               "forks, and a cold template on disk with no prefetch, a 64 MiB window, or the\n"
               "recorded working set; per-clone NAT (Firecracker's network-for-clones: the\n"
               "template's IP/MAC in a namespace per clone, nft DNAT/SNAT) vs rehome, cont ->\n"
               "first echo reply at the unique address, and the NAT host set-up, beside pooled\n"
               "NAT (namespaces prepared before timing) and DHCP (dnsmasq from dnsmasq-base,\n"
               "a reservation per MAC, busybox udhcpc in a bench-dhcp template); rehome pager\n"
               "(bench-pager: fault service warm/cold vs MAP_PRIVATE, memory of 1/8/32 clients,\n"
               "prefetch none/window/recorded; the cold file on --disk-dir).\n"
               "Templates bench-MODE are created once and reused.\n"
               "Use a private --state-dir: bench creates its own network (namespace\n"
               "rhbench, 10.78.0.1/24) there when it has none.\n\n"
               "Options:\n"
               "  --quick             fewer forks (5 per mode), scale 1,4, short drivers (< 5 min)\n"
               "  --icount            templates bench-MODE-icount under TCG with -icount\n"
               "                      shift=0,sleep=off: the guest stages are counted in guest\n"
               "                      instructions (load-independent) beside the wall times\n"
               "  --forks N           forks per mode after the first (default 20)\n"
               "  --modes LIST        signal modes, comma-separated (default auto,vmgenid-kmsg,poll;\n"
               "                      vmclock, vmclock-spin are reported as skipped without a device;\n"
               "                      shell = auto with the agent applying by `ip` commands via sh -c\n"
               "                      (agent --apply shell: needs an image built with this agent))\n"
               "  --sections LIST     modes,warm,locate,apply,scale,cold,nat,pager (default all)\n"
               "  --scale LIST        concurrent clone counts (default 1,4,16,32)\n"
               "  --mem SIZE          guest RAM of the bench templates (default 256M)\n"
               "  --image DIR         guest image (default $REHOME_IMAGE or the build's)\n"
               "  --ram-dir DIR       tmpfs for template RAM (default /dev/shm/rehome-bench)\n"
               "  --disk-dir DIR      disk file system for the cold template (default /var/tmp/rehome-bench)\n"
               "  --plot FILE         latency CDF plot (default STATE_DIR/bench-cdf.png, .svg without png)\n"
               "  --json              one JSON document with every sample on stdout\n"
               "  -h, --help\n"
               "Needs root (network namespace, taps, /proc/<pid>/mem, clear_refs) and QEMU.\n"
               "Figures under TCG (no usable KVM) are inflated compared with KVM.\n"
               "Exit status: 0 every fork acked, 1 a failure, 2 usage.\n");
}

static const char *const row_names[][2] = {
        { "fork_total_ms", "fork total" },
        { "resume_signal_ms", "resume -> signal" },
        { "mailbox_ack_ms", "mailbox ack (resume -> read)" },
        { "reconfigure_ms", "reconfigure (resume -> applied)" },
        { "apply_after_mailbox_ms", "apply after mailbox" },
        { "spawn_ms", "spawn" },
        { "incoming_ms", "incoming" },
        { "patch_ms", "patch" },
        { "ready_to_resume_ms", "ready to resume (spawn..patch)" },
        { "pages_referenced", "pages referenced after resume" },
        { "pages_written", "pages written (Anonymous)" },
        { "pages_rss", "pages mapped (Rss, overstated)" },
        { "disk_read_kib", "disk read in handoff (KiB)" },
        { "major_faults", "major faults in handoff (QEMU)" },
        { "prefetch_ms", "prefetch before resume (ms)" },
        { "prefetch_kib", "prefetched (KiB)" },
        { "process_private_kib", "QEMU private memory (KiB)" },
};

static double num(json_t *o, const char *k)
{
        json_t *v = json_object_get(o, k);
        return json_is_number(v) ? json_number_value(v) : NAN;
}

static void print_val(double v)
{
        if (isnan(v))
                printf(" %9s", "-");
        else if (fabs(v) >= 1000)
                printf(" %9.0f", v);
        else
                printf(" %9.1f", v);
}

static void print_group(json_t *g, bool first)
{
        json_t *stats = json_object_get(g, "stats"), *fst = json_object_get(g, "first");
        printf("  %-32s", "");
        if (first)
                printf(" %9s", "first");
        printf(" %9s %9s %9s %9s %5s\n", "avg", "p50", "p99", "max", "n");
        for (size_t i = 0; i < ELEMENTSOF(row_names); i++) {
                json_t *s = json_object_get(stats, row_names[i][0]);
                if (!json_is_object(s) && !(first && json_is_number(json_object_get(fst, row_names[i][0]))))
                        continue;
                printf("  %-32s", row_names[i][1]);
                if (first)
                        print_val(num(fst, row_names[i][0]));
                print_val(num(s, "avg"));
                print_val(num(s, "p50"));
                print_val(num(s, "p99"));
                print_val(num(s, "max"));
                printf(" %5.0f\n", num(s, "n"));
        }
}

/* The guest's counts of a mode: stages, the agent's steps, pages. */
static void print_counts(json_t *g)
{
        static const char *const rows[][2] = {
                { "signal_read", "signal -> read" },
                { "read_applied", "read -> applied (apply)" },
                { "applied_ack", "applied -> ack record" },
                { "step_validate", "  validate" },
                { "step_ack_read", "  READ ack + early UDP line" },
                { "step_clock", "  clock" },
                { "step_link", "  link (MAC, MTU, up, fe80::)" },
                { "step_addresses", "  addresses" },
                { "step_routes", "  routes" },
                { "step_neighbours", "  neighbours" },
                { "step_announce", "  announce (GARP/NA)" },
                { "step_hostname", "  hostname" },
                { "step_dns", "  DNS (resolv.conf)" },
                { "step_machine_id", "  machine-id" },
                { "step_hooks", "  hooks" },
                { "syscalls", "system calls (agent)" },
                { "netlink_round_trips", "netlink round trips" },
        };
        bool icount = json_is_true(json_object_get(g, "icount"));
        json_t *gi = json_object_get(g, icount ? "guest_instructions" : "guest_ns");
        json_t *pages = json_object_get(g, "pages");

        if (!gi)
                return;
        printf("guest counts (%s; resume -> signal has no guest stamp: wall only):\n",
               json_string_value(json_object_get(gi, "unit")));
        printf("  %-32s %9s %9s %9s %9s %5s\n", "", "avg", "p50", "min", "max", "n");
        for (size_t i = 0; i < ELEMENTSOF(rows); i++) {
                json_t *s = json_object_get(gi, rows[i][0]);
                if (!json_is_object(s))
                        continue;
                printf("  %-32s", rows[i][1]);
                print_val(num(s, "avg"));
                print_val(num(s, "p50"));
                print_val(num(s, "min"));
                print_val(num(s, "max"));
                printf(" %5.0f\n", num(s, "n"));
        }
        const char *k;
        json_t *s;
        json_object_foreach(pages, k, s) {
                if (!json_is_object(s))
                        continue;
                printf("  pages %-26s", k);
                print_val(num(s, "avg"));
                print_val(num(s, "p50"));
                print_val(num(s, "min"));
                print_val(num(s, "max"));
                printf(" %5.0f\n", num(s, "n"));
        }
}

static void print_signals(json_t *g)
{
        const char *k;
        json_t *v;
        printf("signal seen:");
        json_object_foreach(json_object_get(g, "signals"), k, v)
                printf(" %s x%" JSON_INTEGER_FORMAT, k, json_integer_value(v));
        printf("\n");
}

static void print_tool(const char *title, json_t *s)
{
        printf("\n== %s ==\n", title);
        if (!s) {
                printf("(not run)\n");
                return;
        }
        if (json_object_get(s, "skipped")) {
                printf("skipped: %s\n", json_string_value(json_object_get(s, "skipped")));
                return;
        }
        printf("$");
        size_t i;
        json_t *a;
        json_array_foreach(json_object_get(s, "command"), i, a)
                printf(" %s", json_string_value(a));
        printf("   (exit %d, %.0f s)\n%s", (int)json_integer_value(json_object_get(s, "exit")),
               num(s, "seconds"), json_string_value(json_object_get(s, "output")));
}

/* The pager section: bench-pager's JSON summarised (the whole document is in --json). */
static void print_pager(json_t *s)
{
        json_t *r = json_object_get(s, "result"), *v, *w;
        size_t i, j;

        if (!s || !r) {
                print_tool("rehome pager: fault service, sharing, prefetch (bench-pager)", s);
                return;
        }
        printf("\n== rehome pager: fault service, sharing, prefetch (bench-pager, %.0f s) ==\n", num(s, "seconds"));
        printf("  %-18s %9s %9s %9s %9s\n", "fault service", "p50 us", "p99 us", "faults", "faults/s");
        json_array_foreach(json_object_get(json_object_get(r, "fault_service"), "variants"), i, v) {
                printf("  %-18s", json_string_value(json_object_get(v, "name")));
                print_val(num(v, "p50_us"));
                print_val(num(v, "p99_us"));
                printf(" %9.0f %9.0f", num(v, "faults"), num(v, "faults_per_second"));
                printf("\n");
        }
        printf("  sharing (host Pss MiB by clients):\n");
        json_array_foreach(json_object_get(json_object_get(r, "sharing"), "variants"), i, v) {
                printf("    %-14s", json_string_value(json_object_get(v, "name")));
                json_array_foreach(json_object_get(v, "runs"), j, w) {
                        if (json_object_get(w, "skipped"))
                                printf("  %d: skipped", (int)num(w, "clients"));
                        else
                                printf("  %d: %.0f", (int)num(w, "clients"), num(w, "host_kib") / 1024);
                }
                printf("\n");
        }
        printf("  prefetch (%s file): ", json_string_value(json_object_get(json_object_get(r, "prefetch"), "file")));
        json_array_foreach(json_object_get(json_object_get(r, "prefetch"), "variants"), i, v)
                printf("%s%s %.0f faults %.1f ms", i ? "; " : "", json_string_value(json_object_get(v, "name")),
                       num(v, "faults_after_resume_p50"), num(v, "time_to_working_set_ms_p50"));
        printf("\n");
}

static void print_doc(json_t *doc, const char *plot)
{
        const char *accel = json_string_value(json_object_get(doc, "accel"));
        bool tcg = accel && strcmp(accel, "tcg") == 0;
        json_t *modes = json_object_get(doc, "modes"), *g;
        size_t i;

        printf("rehome bench: accelerator %s -cpu %s%s; guest RAM %" JSON_INTEGER_FORMAT " MiB; host %s, %d CPUs; "
               "load %s -> %s\n",
               accel ? accel : "-", json_string_value(json_object_get(doc, "cpu")) ?: "-",
               tcg ? " (TCG: every time below is INFLATED compared with KVM)" : "",
               json_integer_value(json_object_get(doc, "mem_size")) >> 20,
               json_string_value(json_object_get(json_object_get(doc, "host"), "kernel")),
               (int)json_integer_value(json_object_get(json_object_get(doc, "host"), "cpus")),
               json_string_value(json_object_get(json_object_get(doc, "host"), "loadavg_start")) ?: "-",
               json_string_value(json_object_get(json_object_get(doc, "host"), "loadavg_end")) ?: "-");
        json_t *host = json_object_get(doc, "host");
        if (json_is_true(json_object_get(host, "loaded")))
                printf("WARNING: LOADED MACHINE (load above 0.5 per core, or %" JSON_INTEGER_FORMAT
                       " other QEMU at the start): these figures are not comparable; measure on a quiet "
                       "machine\n",
                       json_integer_value(json_object_get(host, "qemu_processes_start")));
        printf("(milliseconds unless named; resume->* are guest stamps anchored at the host-seen ack)\n");
        json_array_foreach(modes, i, g) {
                const char *mode = json_string_value(json_object_get(g, "mode"));
                printf("\n== signal mode %s ==\n", mode);
                if (json_object_get(g, "skipped")) {
                        printf("skipped: %s\n", json_string_value(json_object_get(g, "skipped")));
                        continue;
                }
                if (json_object_get(g, "error")) {
                        printf("FAILED: %s\n", json_string_value(json_object_get(g, "error")));
                        continue;
                }
                printf("template %s (agent %s, %s), %" JSON_INTEGER_FORMAT " forks, %" JSON_INTEGER_FORMAT
                       " acked; first fork apart, stats over the rest; ",
                       json_string_value(json_object_get(g, "template")),
                       json_string_value(json_object_get(g, "agent_args")),
                       json_is_true(json_object_get(g, "prearmed")) ? "prearmed" : "not prearmed",
                       json_integer_value(json_object_get(g, "forks")),
                       json_integer_value(json_object_get(g, "acked")));
                print_signals(g);
                print_group(g, true);
                print_counts(g);
                json_t *ex = json_object_get(g, "exact_pages");
                if (ex) {
                        printf("exact page counts: %" JSON_INTEGER_FORMAT " more forks whose RAM was mapped before resume "
                               "(no fault-around in the handoff):\n", json_integer_value(json_object_get(ex, "forks")));
                        print_group(ex, false);
                        print_counts(ex);
                }
        }
        json_t *warm = json_object_get(doc, "warm");
        if (warm) {
                printf("\n== warm pool vs cold spawn (alternating, same template) ==\n");
                printf("cold spawn:\n");
                print_group(json_object_get(warm, "cold"), false);
                printf("warm pool (QEMU pre-spawned, not timed):\n");
                print_group(json_object_get(warm, "warm"), false);
        }
        print_tool("locate + patch: 256 MiB vs 16 GiB vs full-file scan (bench-locate)", json_object_get(doc, "locate"));
        print_tool("agent apply vs ip(8) commands (bench-apply, host netns)", json_object_get(doc, "apply"));
        if (json_object_get(doc, "pager"))
                print_pager(json_object_get(doc, "pager"));
        json_t *scale = json_object_get(doc, "scale");
        if (scale) {
                printf("\n== concurrent forks ==\n");
                printf("  %7s %8s %9s %9s %9s %9s %9s %9s\n", "clones", "acked", "ARP ok", "wall", "total p50",
                       "total max", "written", "QEMU priv");
                json_array_foreach(scale, i, g) {
                        json_t *st = json_object_get(g, "stats");
                        printf("  %7" JSON_INTEGER_FORMAT " %8" JSON_INTEGER_FORMAT " %9" JSON_INTEGER_FORMAT,
                               json_integer_value(json_object_get(g, "clones")),
                               json_integer_value(json_object_get(g, "acked")),
                               json_integer_value(json_object_get(g, "identity_ok")));
                        print_val(num(g, "wall_ms"));
                        print_val(num(json_object_get(st, "fork_total_ms"), "p50"));
                        print_val(num(json_object_get(st, "fork_total_ms"), "max"));
                        print_val(num(json_object_get(st, "pages_written"), "p50") * 4);
                        print_val(num(json_object_get(st, "process_private_kib"), "p50"));
                        printf("\n");
                }
                printf("  (ms; written = guest pages copied on write per clone, KiB p50; QEMU priv = the whole\n"
                       "   QEMU process's Private_Clean+Private_Dirty per clone, KiB p50)\n");
        }
        json_t *cold = json_object_get(doc, "cold");
        if (cold) {
                printf("\n== cold template on disk: record-and-prefetch ==\n");
                if (json_object_get(cold, "error"))
                        printf("FAILED: %s\n", json_string_value(json_object_get(cold, "error")));
                else {
                        json_t *ws = json_object_get(cold, "workingset");
                        printf("RAM file %s (%s), evicted (fdatasync + FADV_DONTNEED) before each fork;\n"
                               "working set %s: %" JSON_INTEGER_FORMAT " pages (pages mapped between resume and ack,\n"
                               "a superset by fault-around; the exact Referenced count of the last record run was %"
                               JSON_INTEGER_FORMAT ")\n",
                               json_string_value(json_object_get(cold, "disk_file")),
                               json_string_value(json_object_get(cold, "disk_fs")),
                               json_string_value(json_object_get(ws, "file")),
                               json_integer_value(json_object_get(ws, "pages")),
                               json_integer_value(json_object_get(ws, "referenced_last_run")));
                        json_array_foreach(json_object_get(cold, "variants"), i, g) {
                                printf("%s:\n", json_string_value(json_object_get(g, "label")));
                                print_group(g, false);
                        }
                }
        }
        json_t *nat = json_object_get(doc, "nat");
        if (nat) {
                printf("\n== fair baselines: per-fork NAT, pooled NAT (netns pool), DHCP and rehome, alternating ==\n");
                if (json_object_get(nat, "error"))
                        printf("FAILED: %s\n", json_string_value(json_object_get(nat, "error")));
                else {
                        json_t *sc = json_object_get(nat, "setup_commands");
                        printf("NAT: the clone resumed unchanged (template IP/MAC) in its own namespace; host set-up per\n"
                               "clone: %" JSON_INTEGER_FORMAT " processes (ip/nft), %" JSON_INTEGER_FORMAT
                               " ip lines, %" JSON_INTEGER_FORMAT " nft rules; teardown %" JSON_INTEGER_FORMAT
                               " (ip netns del).\nreachable = `cont` returned -> first ICMP echo reply at the unique "
                               "address from the bench namespace (echo every %" JSON_INTEGER_FORMAT " us)\n",
                               json_integer_value(json_object_get(sc, "processes")),
                               json_integer_value(json_object_get(sc, "ip_lines")),
                               json_integer_value(json_object_get(sc, "nft_rules")),
                               json_integer_value(json_object_get(sc, "teardown_processes")),
                               json_integer_value(json_object_get(nat, "probe_interval_us")));
                        static const char *const rows[][2] = {
                                { "reachable_ms", "cont -> reachable" }, { "setup_ms", "host set-up (ns+veth+nft)" },
                                { "teardown_ms", "host teardown" }, { "resume_applied_ms", "resume -> applied ack" },
                                { "clone_spawn_ms", "spawn" }, { "clone_incoming_ms", "incoming" }, { "clone_patch_ms", "patch" },
                        };
                        static const char *const groups[4] = { "nat", "nat_pooled", "dhcp", "rehome" };
                        for (int k = 0; k < 4; k++) {
                                g = json_object_get(nat, groups[k]);
                                if (!g)
                                        continue;
                                if (json_object_get(g, "skipped")) {
                                        printf("%s: skipped: %s\n", groups[k],
                                               json_string_value(json_object_get(g, "skipped")));
                                        continue;
                                }
                                json_t *st = json_object_get(g, "stats");
                                printf("%s: %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT " reachable\n",
                                       json_string_value(json_object_get(g, "label")),
                                       json_integer_value(json_object_get(g, "ok")),
                                       json_integer_value(json_object_get(g, "forks")));
                                printf("  %-32s %9s %9s %9s %9s %5s\n", "", "avg", "p50", "p99", "max", "n");
                                for (size_t r = 0; r < ELEMENTSOF(rows); r++) {
                                        json_t *x = json_object_get(st, rows[r][0]);
                                        if (!json_is_object(x))
                                                continue;
                                        printf("  %-32s", rows[r][1]);
                                        print_val(num(x, "avg"));
                                        print_val(num(x, "p50"));
                                        print_val(num(x, "p99"));
                                        print_val(num(x, "max"));
                                        printf(" %5.0f\n", num(x, "n"));
                                }
                                json_t *pp = json_object_get(g, "pool_prepare_ms");
                                if (json_is_object(pp)) {
                                        printf("  %-32s", "pool prepare (off the clock)");
                                        print_val(num(pp, "avg"));
                                        print_val(num(pp, "p50"));
                                        print_val(num(pp, "p99"));
                                        print_val(num(pp, "max"));
                                        printf(" %5.0f\n", num(pp, "n"));
                                }
                        }
                        printf("NAT host set-up by command:\n");
                        json_array_foreach(json_object_get(nat, "setup_steps"), i, g) {
                                json_t *x = json_object_get(g, "stats");
                                printf("  %-48s p50 %7.1f  p99 %7.1f ms\n", json_string_value(json_object_get(g, "command")),
                                       num(x, "p50"), num(x, "p99"));
                        }
                        printf("ARP from the gateway side: NAT clones answer for %s as the template (%s) %" JSON_INTEGER_FORMAT
                               "/%" JSON_INTEGER_FORMAT ", rehome clones for their new IP with their own MAC %"
                               JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT "\n",
                               json_string_value(json_object_get(nat, "template_ip")) ?: "-",
                               json_string_value(json_object_get(nat, "template_mac")) ?: "-",
                               json_integer_value(json_object_get(json_object_get(nat, "nat"), "identity_ok")),
                               json_integer_value(json_object_get(json_object_get(nat, "nat"), "forks")),
                               json_integer_value(json_object_get(json_object_get(nat, "rehome"), "identity_ok")),
                               json_integer_value(json_object_get(json_object_get(nat, "rehome"), "forks")));
                        printf("ratio NAT / rehome, cont -> reachable: p50 %.2fx, p99 %.2fx; with NAT's host set-up "
                               "added: p50 %.2fx, p99 %.2fx\n",
                               num(nat, "ratio_reachable_p50"), num(nat, "ratio_reachable_p99"),
                               num(nat, "ratio_setup_plus_reachable_p50"), num(nat, "ratio_setup_plus_reachable_p99"));
                        printf("ratio pooled NAT / rehome, cont -> reachable (nothing set up on the path): p50 %.2fx, "
                               "p99 %.2fx\n",
                               num(nat, "ratio_pooled_reachable_p50"), num(nat, "ratio_pooled_reachable_p99"));
                        if (!json_object_get(json_object_get(nat, "dhcp"), "skipped"))
                                printf("ratio DHCP / rehome, cont -> reachable at the reserved / new address: p50 %.2fx, "
                                       "p99 %.2fx (DHCP's resume -> applied ack: the MAC-only request's, after the "
                                       "hook that starts udhcpc, before the lease; rehome warm vs cold: the warm "
                                       "section)\n",
                                       num(nat, "ratio_dhcp_reachable_p50"), num(nat, "ratio_dhcp_reachable_p99"));
                }
        }
        printf("\n== targets (issue 5) ==\n");
        json_array_foreach(json_object_get(doc, "targets"), i, g) {
                json_t *met = json_object_get(g, "met");
                printf("  %-6s %-58s %-22s %10.2f %s  %s\n",
                       json_is_null(met) ? "n/a" : json_is_true(met) ? "MET" : "MISSED",
                       json_string_value(json_object_get(g, "name")), json_string_value(json_object_get(g, "target")),
                       num(g, "value"), json_string_value(json_object_get(g, "unit")),
                       json_string_value(json_object_get(g, "note")));
        }
        json_array_foreach(json_object_get(doc, "notes"), i, g)
                printf("note: %s\n", json_string_value(g));
        if (plot)
                printf("\nplot: %s\n", plot);
        printf("total %.0f s\n", num(doc, "seconds"));
}

/* Forks that did not ack, concurrency rounds with a wrong identity, sections that failed. */
static int count_failures(json_t *doc)
{
        json_t *g;
        size_t i;
        int n = 0;
        json_array_foreach(json_object_get(doc, "modes"), i, g)
                n += json_object_get(g, "error") != NULL ||
                     json_integer_value(json_object_get(g, "forks")) != json_integer_value(json_object_get(g, "acked"));
        json_array_foreach(json_object_get(doc, "scale"), i, g)
                n += !json_is_true(json_object_get(g, "all_ok"));
        json_t *warm = json_object_get(doc, "warm");
        if (warm)
                for (int k = 0; k < 2; k++) {
                        g = json_object_get(warm, k ? "warm" : "cold");
                        n += json_integer_value(json_object_get(g, "forks")) != json_integer_value(json_object_get(g, "acked"));
                }
        json_t *cold = json_object_get(doc, "cold");
        n += cold && json_object_get(cold, "error") != NULL;
        json_t *nat = json_object_get(doc, "nat");
        n += nat && json_object_get(nat, "error") != NULL;
        for (int k = 0; nat && k < 4; k++) {
                static const char *const groups[4] = { "nat", "rehome", "nat_pooled", "dhcp" };
                g = json_object_get(nat, groups[k]);
                if (!g)
                        continue;
                n += json_integer_value(json_object_get(g, "forks")) != json_integer_value(json_object_get(g, "ok"));
                n += json_integer_value(json_object_get(g, "ok")) != json_integer_value(json_object_get(g, "identity_ok"));
        }
        json_array_foreach(json_object_get(cold, "variants"), i, g)
                n += json_integer_value(json_object_get(g, "forks")) != json_integer_value(json_object_get(g, "acked"));
        return n;
}

/* gnuplot: one CDF line per group of the reconfigure and fork-total samples. */
static int write_plot(json_t *doc, const char *state_dir, char *plot, size_t plot_len)
{
        char dat[PATH_MAX + 32], gp[PATH_MAX + 32], *out = NULL;
        bool png = true;
        /* Does this gnuplot have a PNG terminal? */
        {
                FILE *p = popen("gnuplot -e 'set terminal' 2>&1", "r");
                if (!p)
                        return -errno;
                size_t cap = 1 << 16, len = 0;
                out = calloc(1, cap);
                size_t k;
                while (out && (k = fread(out + len, 1, cap - len - 1, p)) > 0)
                        len += k;
                if (pclose(p) != 0 && (!out || !*out)) {
                        free(out);
                        return -ENOENT;
                }
                png = out && (strstr(out, "pngcairo") || strstr(out, " png "));
                bool cairo = out && strstr(out, "pngcairo");
                free(out);
                if (!plot[0])
                        snprintf(plot, plot_len, "%s/bench-cdf.%s", state_dir, png ? "png" : "svg");
                snprintf(dat, sizeof(dat), "%s.dat", plot);
                snprintf(gp, sizeof(gp), "%s.gp", plot);
                FILE *d = fopen(dat, "we");
                if (!d)
                        return -errno;
                /* Blocks: each group's sorted values with cumulative fraction, two blank lines apart. */
                struct { const char *field; const char *title; } panels[] = {
                        { "reconfigure_ms", "resume -> applied ack (ms)" }, { "fork_total_ms", "fork total (ms)" } };
                json_t *groups = json_array();
                size_t i;
                json_t *g;
                json_array_foreach(json_object_get(doc, "modes"), i, g)
                        if (json_object_get(g, "samples"))
                                json_array_append(groups, g);
                if (json_object_get(doc, "warm")) {
                        json_array_append(groups, json_object_get(json_object_get(doc, "warm"), "warm"));
                        json_array_append(groups, json_object_get(json_object_get(doc, "warm"), "cold"));
                }
                json_array_foreach(json_object_get(json_object_get(doc, "cold"), "variants"), i, g)
                        json_array_append(groups, g);
                size_t ng = json_array_size(groups);
                for (size_t pi = 0; pi < 2; pi++)
                        for (size_t gi = 0; gi < ng; gi++) {
                                g = json_array_get(groups, gi);
                                json_t *samples = json_object_get(g, "samples"), *x;
                                size_t n = json_array_size(samples), k2 = 0, j;
                                double *v = calloc(n ? n : 1, sizeof(double));
                                json_array_foreach(samples, j, x) {
                                        json_t *m = json_object_get(json_object_get(x, "measured"), panels[pi].field);
                                        if (json_is_number(m))
                                                v[k2++] = json_number_value(m);
                                }
                                for (size_t a = 1; a < k2; a++)
                                        for (size_t b = a; b > 0 && v[b - 1] > v[b]; b--) {
                                                double t = v[b];
                                                v[b] = v[b - 1];
                                                v[b - 1] = t;
                                        }
                                fprintf(d, "# %s %s\n", panels[pi].field, json_string_value(json_object_get(g, "label")));
                                if (k2 > 0)
                                        fprintf(d, "%.3f 0\n", v[0]);
                                for (size_t a = 0; a < k2; a++)
                                        fprintf(d, "%.3f %.4f\n", v[a], (double)(a + 1) / (double)k2);
                                if (k2 == 0)
                                        fprintf(d, "NaN NaN\n");
                                fprintf(d, "\n\n");
                                free(v);
                        }
                fclose(d);
                FILE *s = fopen(gp, "we");
                if (!s) {
                        json_decref(groups);
                        return -errno;
                }
                const char *accel = json_string_value(json_object_get(doc, "accel"));
                bool tcg = accel && strcmp(accel, "tcg") == 0;
                if (png)
                        fprintf(s, "set terminal %s size 1400,600\n", cairo ? "pngcairo" : "png");
                else
                        fprintf(s, "set terminal svg size 1400,600\n");
                fprintf(s, "set output '%s'\nset multiplot layout 1,2 title 'rehome bench: latency CDF (%s%s)'\n"
                           "set key bottom right\nset grid\nset ylabel 'fraction of forks'\nset yrange [0:1]\n",
                        plot, accel ? accel : "?", tcg ? ", TCG: inflated" : "");
                for (size_t pi = 0; pi < 2; pi++) {
                        fprintf(s, "set xlabel '%s'\nplot ", panels[pi].title);
                        for (size_t gi = 0; gi < ng; gi++) {
                                const char *label = json_string_value(json_object_get(json_array_get(groups, gi), "label"));
                                /* gnuplot cycles 8 colours: dash the lines after those. */
                                fprintf(s, "%s'%s' index %zu using 1:2 with steps lw 2 lc %zu dt %d title '%s'",
                                        gi ? ", " : "", dat, pi * ng + gi, gi % 8 + 1, gi < 8 ? 1 : 2, label);
                        }
                        fprintf(s, "\n");
                }
                fprintf(s, "unset multiplot\n");
                fclose(s);
                json_decref(groups);
        }
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                execlp("gnuplot", "gnuplot", gp, (char *)NULL);
                _exit(127);
        }
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
        return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

static int parse_list(const char *s, const char **out, size_t max, char *store, size_t store_len)
{
        size_t n = 0;
        snprintf(store, store_len, "%s", s);
        for (char *save = NULL, *w = strtok_r(store, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
                if (n + 1 >= max)
                        return -E2BIG;
                out[n++] = w;
        }
        out[n] = NULL;
        return (int)n;
}

int cmd_bench(int argc, char **argv)
{
        enum { O_QUICK = 0x400, O_FORKS, O_MODES, O_SECTIONS, O_SCALE, O_MEM, O_IMAGE, O_RAM, O_DISK, O_PLOT, O_JSON, O_ICOUNT };
        static const struct option options[] = {
                { "quick", no_argument, NULL, O_QUICK },
                { "icount", no_argument, NULL, O_ICOUNT },
                { "forks", required_argument, NULL, O_FORKS },
                { "modes", required_argument, NULL, O_MODES },
                { "sections", required_argument, NULL, O_SECTIONS },
                { "scale", required_argument, NULL, O_SCALE },
                { "mem", required_argument, NULL, O_MEM },
                { "image", required_argument, NULL, O_IMAGE },
                { "ram-dir", required_argument, NULL, O_RAM },
                { "disk-dir", required_argument, NULL, O_DISK },
                { "plot", required_argument, NULL, O_PLOT },
                { "json", no_argument, NULL, O_JSON },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        static char modes_store[256], sections_store[256], scale_store[128];
        struct vmm_bench_opts o = {
                .state_dir = cli.state_dir, .image_dir = vmm_default_image_dir(),
                .ram_dir = "/dev/shm/rehome-bench", .disk_dir = "/var/tmp/rehome-bench",
                .modes = { "auto", "vmgenid-kmsg", "poll" }, .forks = 20, .mem_size = 256ull << 20,
                .sections = BENCH_ALL, .scale = { 1, 4, 16, 32 }, .progress = cli_progress(),
        };
        char plot[PATH_MAX] = "", tools[PATH_MAX] = "", agent[PATH_MAX] = "";
        bool forks_set = false, scale_set = false;
        struct rh_error err = { 0 };
        json_t *doc = NULL;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
                switch (c) {
                case O_QUICK: o.quick = true; break;
                case O_ICOUNT: o.icount = true; break;
                case O_FORKS: {
                        char *end;
                        unsigned long v = strtoul(optarg, &end, 10);
                        if (*end || end == optarg || v < 1 || v > 1000)
                                return cli_usage_error("bench", "bad --forks '%s' (1..1000)", optarg);
                        o.forks = (unsigned)v;
                        forks_set = true;
                        break;
                }
                case O_MODES: {
                        static const char *const known[] = { "auto", "vmgenid-kmsg", "vmgenid", "poll", "vmclock",
                                                             "vmclock-spin", "vmgenid-uevent", "shell" };
                        const char *list[8];
                        r = parse_list(optarg, list, ELEMENTSOF(list), modes_store, sizeof(modes_store));
                        if (r <= 0)
                                return cli_usage_error("bench", "bad --modes '%s'", optarg);
                        for (int i = 0; i < r; i++) {
                                bool ok = false;
                                for (size_t k = 0; k < ELEMENTSOF(known); k++)
                                        ok |= strcmp(list[i], known[k]) == 0;
                                if (!ok)
                                        return cli_usage_error("bench", "unknown signal mode '%s' (auto, vmgenid-kmsg, "
                                                               "vmgenid, vmgenid-uevent, poll, vmclock, vmclock-spin, shell)", list[i]);
                                o.modes[i] = list[i];
                        }
                        o.modes[r] = NULL;
                        break;
                }
                case O_SECTIONS: {
                        static const char *const names[] = { "modes", "warm", "locate", "apply", "scale", "cold",
                                                             "nat", "pager" };
                        const char *list[8];
                        r = parse_list(optarg, list, ELEMENTSOF(list), sections_store, sizeof(sections_store));
                        if (r <= 0)
                                return cli_usage_error("bench", "bad --sections '%s'", optarg);
                        o.sections = 0;
                        for (int i = 0; i < r; i++) {
                                size_t k;
                                for (k = 0; k < ELEMENTSOF(names) && strcmp(list[i], names[k]); k++)
                                        ;
                                if (k == ELEMENTSOF(names))
                                        return cli_usage_error("bench", "unknown section '%s' (modes, warm, locate, "
                                                               "apply, scale, cold, nat, pager)", list[i]);
                                o.sections |= 1u << k;
                        }
                        break;
                }
                case O_SCALE: {
                        const char *list[8];
                        r = parse_list(optarg, list, ELEMENTSOF(list), scale_store, sizeof(scale_store));
                        if (r <= 0)
                                return cli_usage_error("bench", "bad --scale '%s'", optarg);
                        for (int i = 0; i < r; i++) {
                                char *end;
                                unsigned long v = strtoul(list[i], &end, 10);
                                if (*end || end == list[i] || v < 1 || v > 64)
                                        return cli_usage_error("bench", "bad --scale count '%s' (1..64)", list[i]);
                                o.scale[i] = (unsigned)v;
                        }
                        o.scale[r] = 0;
                        scale_set = true;
                        break;
                }
                case O_MEM:
                        if (vmm_parse_size(optarg, &o.mem_size) < 0 || o.mem_size < (64ull << 20) ||
                            o.mem_size > (2048ull << 20) || (o.mem_size & ((1 << 20) - 1)))
                                return cli_usage_error("bench", "bad --mem '%s' (64M..2G, whole MiB)", optarg);
                        break;
                case O_IMAGE: o.image_dir = optarg; break;
                case O_RAM: o.ram_dir = optarg; break;
                case O_DISK: o.disk_dir = optarg; break;
                case O_PLOT: snprintf(plot, sizeof(plot), "%s", optarg); break;
                case O_JSON: cli_json_enable(); break;
                case 'h': help(); return EXIT_OK;
                default: return cli_usage_error("bench", "unknown option");
                }
        }
        if (optind != argc)
                return cli_usage_error("bench", "no arguments expected");
        if (geteuid() != 0)
                return cli_fail("bench: needs root (network namespace, taps, /proc/<pid>/mem, clear_refs)");
        if (o.quick) {
                if (!forks_set)
                        o.forks = 5;
                if (!scale_set)
                        o.scale[0] = 1, o.scale[1] = 4, o.scale[2] = 0;
        }
        o.warm_forks = o.quick ? 5 : 20;
        o.cold_forks = o.quick ? 3 : 10;
        o.nat_forks = o.quick ? 3 : 10;
        /* The drivers next to this binary in a build tree: <build>/src/cli/rehome -> <build>/bench/. */
        {
                char exe[PATH_MAX];
                ssize_t k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
                const char *env = getenv("REHOME_BENCH_DIR");
                if (env && *env)
                        snprintf(tools, sizeof(tools), "%s", env);
                else if (k > 0) {
                        exe[k] = '\0';
                        snprintf(tools, sizeof(tools), "%s/../../bench", dirname(exe));
                }
                const char *ag = getenv("REHOME_AGENT");
                if (ag && *ag)
                        snprintf(agent, sizeof(agent), "%s", ag);
                else if (k > 0)
                        snprintf(agent, sizeof(agent), "%s/../agent/rehome-agent.static", exe);
                char real[PATH_MAX];
                if (realpath(tools, real))
                        snprintf(tools, sizeof(tools), "%s", real);
                if (realpath(agent, real))
                        snprintf(agent, sizeof(agent), "%s", real);
        }
        o.tools_dir = tools;
        o.agent_path = agent;
        if (vmm_mkdir_p(cli.state_dir, 0755) < 0)
                return cli_fail("bench: state directory %s: %s", cli.state_dir, strerror(errno));
        vmm_signals_install();

        r = vmm_bench_run(&o, &doc, &err);
        if (r < 0)
                return cli_fail("bench: %s", err.msg);
        r = write_plot(doc, cli.state_dir, plot, sizeof(plot));
        if (r < 0) {
                fprintf(stderr, "rehome: bench: plot not written (gnuplot: %s)\n", strerror(-r));
                plot[0] = '\0';
        }
        json_object_set_new(doc, "plot", plot[0] ? json_string(plot) : json_null());
        /* Every run leaves its full document behind, whatever was printed. */
        char saved[PATH_MAX + 32];
        snprintf(saved, sizeof(saved), "%s/bench-last.json", cli.state_dir);
        if (json_dump_file(doc, saved, JSON_INDENT(2)) == 0 && cli_progress())
                fprintf(stderr, "bench: every sample in %s\n", saved);
        int failures = count_failures(doc);
        if (cli.json)
                cli_result(json_incref(doc));
        else
                print_doc(doc, plot[0] ? plot : NULL);
        json_decref(doc);
        return failures ? EXIT_FAIL : EXIT_OK;
}

/*
 * rehome template record-ws NAME: record the guest-RAM pages a handoff of
 * this template touches (workingset.c), for forks of a cold template to
 * prefetch. Dispatched from cmd-template.c.
 */
int cmd_template_record_ws(int argc, char **argv)
{
        enum { O_IP = 0x500, O_RUNS, O_TIMEOUT };
        static const struct option options[] = {
                { "ip", required_argument, NULL, O_IP },
                { "runs", required_argument, NULL, O_RUNS },
                { "timeout", required_argument, NULL, O_TIMEOUT },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        struct vmm_fork_opts fo = { .state_dir = cli.state_dir, .timeout_ms = 60000 };
        const char *ip = NULL;
        unsigned long runs = 3;
        struct vmm_template t;
        struct rh_error err = { 0 };
        size_t pages = 0;
        long referenced = 0;
        int c, r;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
                switch (c) {
                case O_IP: ip = optarg; break;
                case O_RUNS: {
                        char *end;
                        runs = strtoul(optarg, &end, 10);
                        if (*end || end == optarg || runs < 1 || runs > 100)
                                return cli_usage_error("template", "bad --runs '%s' (1..100)", optarg);
                        break;
                }
                case O_TIMEOUT:
                        if (vmm_parse_duration_ms(optarg, &fo.timeout_ms) < 0)
                                return cli_usage_error("template", "bad --timeout '%s'", optarg);
                        break;
                case 'h':
                        printf("Usage: rehome template record-ws NAME [--runs N] [--ip A.B.C.D/P] [--timeout DUR]\n\n"
                               "Fork N (default 3) clones of NAME one after another and record the union of\n"
                               "the guest-RAM pages each maps between resume and its ack (/proc/<pid>/pagemap;\n"
                               "a superset of the pages touched by fault-around) plus the mailbox page, as\n"
                               "sorted file offsets in STATE_DIR/templates/NAME/workingset. Forks of a cold\n"
                               "template (RAM on disk) prefetch exactly those pages (rehome bench, cold).\n"
                               "--ip: the clones' address (default .250 of the template's subnet).\n"
                               "Exit status: 0 ok, 1 failure, 2 usage.\n");
                        return EXIT_OK;
                default: return cli_usage_error("template", "unknown option");
                }
        }
        if (optind + 1 != argc)
                return cli_usage_error("template", "record-ws takes exactly one NAME");
        if (geteuid() != 0)
                return cli_fail("template record-ws: needs root (/proc/<pid>/pagemap, taps)");
        r = vmm_template_load(cli.state_dir, argv[optind], &t, &err);
        if (r < 0)
                return cli_fail("template record-ws: %s", err.msg);
        if (ip) {
                if (rh_ip_parse(ip, &fo.ip, &fo.prefix) < 0 || !strchr(ip, '/'))
                        return cli_usage_error("template", "bad --ip '%s' (want A.B.C.D/P)", ip);
        } else {
                if (rh_ip_parse(t.ip, &fo.ip, &fo.prefix) < 0 || fo.ip.family != 4)
                        return cli_fail("template record-ws: template address '%s' is not IPv4: pass --ip", t.ip);
                fo.ip.addr[3] = 250;
        }
        fo.has_ip = true;
        if (t.gateway[0] && rh_ip_parse(t.gateway, &fo.gateway, NULL) == 0)
                fo.has_gateway = true;
        vmm_signals_install();
        cli_ticker_start("record-ws");
        r = vmm_ws_record(&t, &fo, (unsigned)runs, &pages, &referenced, &err);
        cli_ticker_stop();
        if (r < 0)
                return cli_fail("template record-ws %s: %s", t.name, err.msg);
        if (cli.json) {
                char file[PATH_MAX + sizeof(VMM_WS_FILE) + 1];

                /* One value per key: jansson has no "s/s" (it returned NULL,
                 * and json_dumpf(NULL) printed nothing but the newline). */
                snprintf(file, sizeof(file), "%s/%s", t.dir, VMM_WS_FILE);
                json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I}", "template", t.name, "file", file, "pages",
                                      (json_int_t)pages, "referenced_last_run", (json_int_t)referenced, "runs",
                                      (json_int_t)runs);
                if (!j)
                        return cli_fail("template record-ws %s: cannot build the JSON document", t.name);
                cli_result(j);
        } else
                printf("working set of %s: %zu pages (%.1f MiB) in %s/%s; last run referenced %ld pages\n", t.name,
                       pages, pages * 4096.0 / 1048576, t.dir, VMM_WS_FILE, referenced);
        return EXIT_OK;
}
