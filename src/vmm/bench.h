/* SPDX-License-Identifier: MIT */
/*
 * `rehome bench` (bench.c), its /proc measurements (proc.c) and the template
 * working set (workingset.c):
 * what a handoff costs in time, guest pages touched and disk bytes, measured
 * on real clones of this machine's QEMU.
 *
 * Counting pages (DESIGN.md): `Rss` overstates (fault-around maps 64 KiB per
 * fault), so a fork writes 1 to /proc/<qemu>/clear_refs right before `cont`
 * and reads `Referenced` (and `Anonymous`: pages the guest wrote, copied on
 * write) of the guest-RAM mapping in /proc/<qemu>/smaps right after the ack.
 * That is an exact count, but only a count: this kernel has no idle page
 * tracking, so *which* pages were touched is known only as the pages mapped
 * between `cont` and the ack (pagemap), a superset by fault-around.
 */
#ifndef REHOME_VMM_BENCH_H
#define REHOME_VMM_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "rehome/error.h"
#include "vmm.h"

struct json_t;

/* The clone QEMU's guest-RAM mapping (the memory-backend-file of @ram_path). */
struct bench_mapping {
        uint64_t start, end;    /* host virtual addresses */
        uint64_t file_offset;   /* of @start in the RAM file */
};

int bench_ram_mapping(pid_t pid, const char *ram_path, struct bench_mapping *ret);

/* smaps figures of that mapping, kB. */
struct bench_smaps {
        long rss_kb, referenced_kb, anonymous_kb, private_dirty_kb;
};

int bench_smaps_ram(pid_t pid, const char *ram_path, struct bench_smaps *ret);
/* Write "1" to /proc/@pid/clear_refs: clears the referenced bits of every page. */
int bench_clear_refs(pid_t pid);
/* read_bytes of /proc/@pid/io (bytes this process caused to be read from storage). */
int bench_read_bytes(pid_t pid, uint64_t *ret);

/*
 * One byte per page of the RAM file (index = file offset / 4096): 1 if the
 * page is mapped (present) in @pid's RAM mapping, from /proc/@pid/pagemap.
 * @bitmap holds @file_pages bytes. Returns the number of present pages.
 */
long bench_present_pages(pid_t pid, const char *ram_path, uint8_t *bitmap, uint64_t file_pages);
/* Private memory of @pid (smaps_rollup Private_Clean + Private_Dirty), kB. */
int proc_rollup_private_kb(pid_t pid, long *ret);
/* Major faults of @pid (/proc/@pid/stat field 12). */
int proc_majflt(pid_t pid, uint64_t *ret);
/* Map every page of @pid's RAM mapping (one read each through /proc/@pid/mem); kB mapped or -errno. */
long long proc_prefault_ram(pid_t pid, const char *ram_path);

/*
 * bench_fork_measured - one fork through the clone stages (clone.h), with
 * the benchmark's measurements between them: @before_resume after the
 * handoff, right before the vCPUs run (a negative return fails the fork);
 * @after_ack right after the host saw the final ack. With !@handoff the
 * clone is resumed unchanged (no patch, no ack wait: it keeps the
 * template's identity; for the NAT comparison). The clone is kept running
 * on success (res->clone; the caller destroys it). Returns as clone_run.
 */
int bench_fork_measured(const struct vmm_template *t, const struct vmm_fork_opts *o, bool handoff,
                        int (*before_resume)(void *ctx, const struct vmm_clone *c),
                        void (*after_ack)(void *ctx, const struct vmm_clone *c), void *ctx,
                        struct vmm_fork_result *res, struct rh_error *err);

/* ---- working set (workingset.c) ------------------------------------------ */

#define VMM_WS_FILE "workingset"

/* Save sorted page-aligned file offsets to @path (text, atomically replaced). */
int vmm_ws_save(const char *path, uint64_t ram_size, const uint64_t *offsets, size_t n,
                struct rh_error *err);
/*
 * Load a working set. Untrusted: every offset must be page-aligned, strictly
 * increasing and inside @ram_size, the count at most @ram_size / 4096, the
 * header's RAM size equal to @ram_size. -EINVAL/-EBADMSG with the line named.
 * *ret_offsets is heap (free()).
 */
int vmm_ws_load(const char *path, uint64_t ram_size, uint64_t **ret_offsets, size_t *ret_n,
                struct rh_error *err);
/* Read these pages of @ram_path into the page cache (pread of coalesced runs). */
int vmm_ws_prefetch(const char *ram_path, const uint64_t *offsets, size_t n, uint64_t *ret_bytes,
                    struct rh_error *err);
/* Read [@offset, @offset + @len) of @ram_path into the page cache (clamped to the file). */
int vmm_ws_prefetch_range(const char *ram_path, uint64_t offset, uint64_t len, uint64_t *ret_bytes,
                          struct rh_error *err);
/* fdatasync + POSIX_FADV_DONTNEED of the whole file; *ret_resident = pages still cached (mincore). */
int vmm_ws_evict(const char *ram_path, long *ret_resident, struct rh_error *err);
/* Pages of @path in the page cache now (mincore). */
long vmm_ws_resident(const char *path);

/*
 * Record the working set of template @t: fork @runs clones one after another
 * (addresses from @opts->ip up), take the union of the RAM pages each maps
 * between `cont` and its ack (pagemap) plus the mailbox page, and save it to
 * t->dir/workingset. *ret_pages = pages recorded, *ret_referenced = the exact
 * Referenced count of the last run (for comparison).
 */
int vmm_ws_record(const struct vmm_template *t, const struct vmm_fork_opts *opts, unsigned runs,
                  size_t *ret_pages, long *ret_referenced, struct rh_error *err);

/* ---- the benchmark (bench.c) ---------------------------------------------- */

enum {
        BENCH_MODES = 1 << 0,
        BENCH_WARM = 1 << 1,
        BENCH_LOCATE = 1 << 2,
        BENCH_APPLY = 1 << 3,
        BENCH_SCALE = 1 << 4,
        BENCH_COLD = 1 << 5,
        BENCH_NAT = 1 << 6,
        BENCH_PAGER = 1 << 7, /* bench-pager: rehome pager fault service, sharing, prefetch */
        BENCH_ALL = 0xff,
};

struct vmm_bench_opts {
        const char *state_dir;
        const char *image_dir;
        const char *ram_dir;    /* tmpfs, for the templates */
        const char *disk_dir;   /* a disk file system, for the cold template */
        const char *tools_dir;  /* where bench-locate / bench-apply / bench-pager live ("" = skip those) */
        const char *agent_path; /* the static agent bench-apply drives */
        const char *modes[8];   /* signal modes, NULL-terminated */
        unsigned forks;         /* per mode, after the first */
        unsigned warm_forks;
        unsigned cold_forks;    /* per prefetch variant */
        unsigned nat_forks;     /* per-clone NAT forks (each alternating with a rehome fork) */
        unsigned scale[8];      /* concurrent counts, 0-terminated */
        uint64_t mem_size;
        unsigned sections;      /* BENCH_* */
        bool quick;
        bool progress;
        bool icount; /* templates bench-MODE-icount: TCG -icount shift=0,sleep=off (counts, not times) */
};

/*
 * Per-clone NAT (Firecracker's network-for-clones) vs rehome, alternating
 * forks of @t (bench-nat.c): host set-up and cont -> first echo reply at the
 * clone's unique address, from the bench namespace. New reference.
 */
/* A progress line "bench: ..." on stderr when o->progress. */
void bench_say(const struct vmm_bench_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The fair baselines beside rehome, alternating forks (bench-nat.c): per-fork
 * NAT, pooled NAT (namespaces prepared before timing) and, with @dhcp_t (a
 * template created with --kernel-arg rehome.dhcp=1), DHCP from a dnsmasq the
 * section starts and stops; without it the "dhcp" key says @dhcp_why.
 */
struct json_t *bench_section_nat(const struct vmm_bench_opts *o, const struct vmm_net *net,
                                 const struct vmm_template *t, const struct vmm_template *dhcp_t,
                                 const char *dhcp_why);

/* Run the benchmark; *ret_doc is one JSON document with every sample. */
int vmm_bench_run(const struct vmm_bench_opts *o, struct json_t **ret_doc, struct rh_error *err);

#endif
