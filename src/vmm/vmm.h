/* SPDX-License-Identifier: MIT */
/*
 * The fork engine behind the `template`, `fork`, `clone`, `net` and `demo`
 * verbs. A VMM slots in through struct vmm_ops (QEMU is the one implemented:
 * vmm_qemu_ops); everything else here (state directory records, the host
 * network, child-process tracking) is VMM-neutral.
 *
 * State directory (default /var/lib/rehome):
 *   net.json                     the host network clones attach to
 *   templates/NAME/meta.json     a template: VMM command line inputs, layout,
 *   templates/NAME/state         mailbox gpa and token, identity; device state
 *   clones/ID/meta.json          a live clone: pid (+ start time), tap, identity
 *   clones/ID/{qmp.sock,console.log,qemu.log}
 * Template RAM lives on tmpfs (default /dev/shm/rehome/NAME.ram).
 */
#ifndef REHOME_VMM_H
#define REHOME_VMM_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "rehome/error.h"
#include "rehome/mailbox.h"

/*
 * Paths here are built with snprintf into PATH_MAX buffers from a state
 * directory the CLI has checked to be shorter than VMM_STATE_DIR_MAX, names
 * shorter than VMM_NAME_MAX: truncation cannot happen, and GCC's
 * -Wformat-truncation cannot see those checks.
 */
#if defined(__GNUC__) && !defined(__clang__) /* clang has no such warning and rejects the name */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#endif
#define VMM_STATE_DIR_MAX 1024

#define VMM_NAME_MAX            48
#define VMM_DEFAULT_STATE_DIR   "/var/lib/rehome"
#define VMM_DEFAULT_NETNS       "rehome" /* of VMM_DEFAULT_STATE_DIR; other state dirs: rh-<hash> */
#define VMM_DEFAULT_BRIDGE      "rhbr0"
#define VMM_DEFAULT_GATEWAY     "10.77.0.1/24"
#define VMM_DEFAULT_TEMPLATE_IP "10.77.0.2/24"
#define VMM_DEFAULT_RAM_DIR     "/dev/shm/rehome"

/* ---- host network (net.c) ------------------------------------------------ */

struct vmm_net {
        char netns[64]; /* "" when clones attach to a bridge in the host namespace */
        char bridge[16];
        char gateway[64]; /* "10.77.0.1/24" on the bridge, "" if not ours */
        bool ours;        /* created by `rehome net up` (and removed by net down) */
};

int vmm_net_load(const char *state_dir, struct vmm_net *ret_net, struct rh_error *err);
/* @netns: namespace name (NULL = this state directory's own: "rehome" for VMM_DEFAULT_STATE_DIR,
 * "rh-" + 8 hex digits of a hash of its real path otherwise); ignored with @bridge (the user's,
 * in ours). -EBUSY if another state directory owns the namespace. */
int vmm_net_up(const char *state_dir, const char *bridge, const char *gateway, const char *netns,
               struct vmm_net *ret_net, struct rh_error *err);
/* Removes this state directory's network; never a namespace another state directory owns. */
int vmm_net_down(const char *state_dir, struct rh_error *err);
/* Create (or take over a stale) tap @name on the bridge, up. -EBUSY if a process holds it. */
int vmm_tap_create(const struct vmm_net *net, const char *name, struct rh_error *err);
int vmm_tap_delete(const struct vmm_net *net, const char *name);
bool vmm_link_exists(const struct vmm_net *net, const char *name);
/* Run argv (NULL-terminated) in the net's namespace; output to /dev/null unless @out. */
int vmm_net_run(const struct vmm_net *net, char *const argv[], char *out, size_t out_len);

/* ---- records ---------------------------------------------------------- */

struct vmm_template {
        char name[VMM_NAME_MAX];
        char dir[PATH_MAX];
        char ram_path[PATH_MAX];
        char state_path[PATH_MAX];
        char kernel[PATH_MAX];
        char initrd[PATH_MAX];
        char append[1024];
        char machine[32];
        char accel[16];
        char cpu[32];
        uint64_t mem_size;
        char layout[64]; /* rh_layout_parse spec, "qemu-q35:256M" */
        uint64_t mailbox_gpa;
        uint8_t token[RH_TOKEN_LEN];
        char abi[16];
        char ip[64]; /* template identity: "10.77.0.2/24" */
        char gateway[64];
        uint8_t mac[6];     /* the guest's MAC (its identity) */
        uint8_t nic_mac[6]; /* mac= of the NIC on the QEMU command line (fixed per lineage) */
        char kernel_release[64];
        char agent_sha256[65];
        uint32_t agent_version;    /* from the arm header: major << 16 | minor << 8 | patch */
        uint32_t agent_caps;       /* RH_CAP_* */
        char parent[VMM_NAME_MAX]; /* fork-of-fork: the template the source clone came from */
        char source_clone[32];
        uint64_t created_unix;
        double boot_ms, snapshot_ms;
};

struct vmm_clone {
        char id[32];
        char dir[PATH_MAX];
        char template_name[VMM_NAME_MAX];
        pid_t pid;                    /* the clone's QEMU; 0 while it is being set up */
        unsigned long long starttime; /* /proc/<pid>/stat field 22: guards against pid reuse */
        pid_t owner;                  /* the rehome process setting it up (while pid == 0) */
        unsigned long long owner_starttime;
        char tap[16];
        char ip[64];
        char gateway[64];
        uint8_t mac[6];
        char vmgenid[40];
        char qmp_path[PATH_MAX];
        char console_path[PATH_MAX];
        char status[16]; /* "running", "failed" */
};

int vmm_template_load(const char *state_dir, const char *name, struct vmm_template *ret,
                      struct rh_error *err);
int vmm_template_save(const struct vmm_template *t, struct rh_error *err);
/* Names of all templates; *ret_names is a NULL-terminated heap array (free with vmm_strv_free). */
int vmm_template_list(const char *state_dir, char ***ret_names, struct rh_error *err);
int vmm_template_remove(const char *state_dir, const char *name, struct rh_error *err);

int vmm_clone_load(const char *state_dir, const char *id, struct vmm_clone *ret, struct rh_error *err);
int vmm_clone_save(const struct vmm_clone *c, struct rh_error *err);
int vmm_clone_list(const char *state_dir, char ***ret_ids, struct rh_error *err);
/* True if the clone's QEMU is alive (same pid and start time). */
bool vmm_clone_alive(const struct vmm_clone *c);
/* Kill the clone's QEMU, delete its tap and its directory. */
int vmm_clone_destroy(const char *state_dir, struct vmm_clone *c, struct rh_error *err);
/* -EADDRINUSE if a live clone (or the template set @tmpl_ip) holds @ip's address. */
int vmm_ip_in_use(const char *state_dir, const char *ip, char *ret_owner, size_t owner_len);

void vmm_strv_free(char **v);

/* ---- processes (qemu.c) ------------------------------------------------- */

struct qemu_spec {
        const char *accel, *cpu, *machine;
        uint64_t mem_size;
        const char *kernel, *initrd, *append;
        const char *ram_path;
        bool share;          /* share=on (template boot) or off (copy-on-write clone) */
        const char *vmgenid; /* guid, NULL = "auto" */
        const char *tap;
        const uint8_t *mac;
        const char *netns; /* run in this named network namespace, NULL = ours */
        const char *qmp_path, *console_path, *log_path;
        bool incoming; /* -incoming defer -S */
};

/* Fill @spec with what @t fixes (accelerator, CPU, machine, memory, kernel, initrd,
 * command line, RAM file, NIC MAC); every other field zero: share off, no tap, ... */
void qemu_spec_from_template(struct qemu_spec *spec, const struct vmm_template *t);
/* Spawn QEMU (a child of this process, own session, stdin /dev/null, stdout/stderr to log). */
int qemu_spawn(const struct qemu_spec *spec, pid_t *ret_pid, struct rh_error *err);
/* SIGKILL @pid and reap it (or wait for it to vanish if not our child). */
void qemu_kill(pid_t pid);
/* Forget @pid: it must survive this process (a kept clone). */
void qemu_release(pid_t pid);
/* Kill every QEMU this process spawned and did not release (signal-safe). */
void qemu_kill_all(void);
/* Install SIGINT/SIGTERM/SIGHUP handlers that kill our QEMUs and exit 130. */
void qemu_install_signal_cleanup(void);
/* One more async-signal-safe cleanup those handlers run after killing the QEMUs (NULL = none). */
void qemu_set_signal_extra(void (*fn)(void));
/* Non-blocking: true if the child @pid exited (reaped). */
bool qemu_exited(pid_t pid, int *ret_status);
/* Last non-empty line of the QEMU log at @path (for error messages). */
void qemu_log_tail(const char *path, char *buf, size_t len);
unsigned long long proc_starttime(pid_t pid);

/* Find the qemu-system-x86_64 binary; -ENOENT with the fix in @err. */
int qemu_find_binary(char *buf, size_t len, struct rh_error *err);

/*
 * Pick the accelerator: KVM only if /dev/kvm opens AND a probe boot of
 * @kernel/@initrd prints the guest's first line within a few seconds, else TCG
 * with -cpu max. The result is cached in @state_dir/accel.json. *ret_reason
 * says why (for "say which").
 */
int qemu_detect_accel(const char *state_dir, const char *kernel, const char *initrd, char *ret_accel,
                      char *ret_cpu, char *ret_reason, size_t reason_len, struct rh_error *err);

/*
 * Wait for a line starting with @prefix in the text file @path, reading from
 * *@offset (updated). Gives up at @timeout_ms or when @pid (if > 0) exits.
 * The matching line goes to @line. Returns 0, -ETIMEDOUT, -ECHILD.
 */
int console_wait_line(const char *path, off_t *offset, const char *prefix, pid_t pid, int timeout_ms,
                      char *line, size_t line_len, struct rh_error *err);

/* ---- the engine ----------------------------------------------------------- */

struct vmm_template_opts {
        const char *state_dir;
        const char *name;
        const char *image_dir; /* with image.json, vmlinuz, initrd.img */
        const char *ram_dir;   /* tmpfs directory for the RAM file */
        uint64_t mem_size;
        const char *ip, *gateway;
        const char *accel;      /* "auto", "kvm", "tcg" */
        const char *from_clone; /* fork-of-fork: snapshot this live clone instead of booting */
        int boot_timeout_ms;
        bool prearm;
        bool progress; /* stage lines on stderr */
        /* Extra rehome-agent words for the guest (kernel command line
         * rehome.agent=, ',' between words: "--signal,poll"); NULL = none. */
        const char *agent_args;
};

struct vmm_fork_opts {
        const char *state_dir;
        struct rh_ipaddr ip;
        uint8_t prefix;
        bool has_gateway;
        struct rh_ipaddr gateway;
        uint8_t mac[6];
        bool has_mac;
        bool keep; /* keep the clone even if the handoff fails */
        int timeout_ms;
        const char *iface;   /* guest interface to rehome (default eth0) */
        bool no_cont;        /* --no-resume: patch but never resume (the ack must time out) */
        const char *warm_id; /* take this pre-spawned clone (pool.c) instead of spawning */
        bool no_pool;        /* vmm_fork_batch: do not take warm clones from the pool */
        /*
         * Benchmark hooks (NULL = none), called on the forking thread:
         * before_cont after the patch, right before `cont` (a negative return
         * fails the fork with that code); after_ack right after the host saw
         * the final ack, before anything else. A batch shares @hook_ctx
         * between its threads: tell clones apart by c->id / c->pid.
         */
        int (*before_cont)(void *ctx, const struct vmm_clone *c);
        void (*after_ack)(void *ctx, const struct vmm_clone *c);
        void *hook_ctx;
        /*
         * Benchmark comparison (rehome bench, nat): @net (NULL = the state
         * directory's net.json) is the network the clone's tap and QEMU go
         * in; @no_handoff resumes the clone unchanged: no address check, no
         * mailbox patch, no ack wait (the clone keeps the template's IP and
         * MAC; opts->ip is ignored). The fork returns 0 right after `cont`,
         * with acked false.
         */
        const struct vmm_net *net;
        bool no_handoff;
};

/* Per-fork stage timings, milliseconds. Guest stages anchored as documented in fork.c. */
struct vmm_fork_timing {
        double spawn, incoming, patch, cont;
        double resume_signal, resume_read, resume_applied, resume_ack; /* guest-derived */
        double host_ack_seen; /* cont returned -> host saw the final ack */
        double total;
        bool have_guest;
};

struct vmm_fork_result {
        struct vmm_clone clone;
        struct rh_ack ack;
        bool acked;
        struct vmm_fork_timing t;
        char seen[256];          /* what was observed before a timeout */
        const char *ack_channel; /* "mailbox" or "udp": which showed the final ack first */
        double udp_ack_seen;     /* cont returned -> UDP ack line arrived (ms), -1 if none */
};

struct vmm_ops {
        const char *name;
        int (*template_create)(const struct vmm_template_opts *opts, struct vmm_template *ret,
                               struct rh_error *err);
        /* Returns 0, -ETIMEDOUT (no ack), -EBADE (agent rejected/failed), or -errno. */
        int (*fork)(const struct vmm_template *t, const struct vmm_fork_opts *opts,
                    struct vmm_fork_result *ret, struct rh_error *err);
        int (*clone_destroy)(const char *state_dir, struct vmm_clone *c, struct rh_error *err);
};

extern const struct vmm_ops vmm_qemu_ops;
int qemu_template_create(const struct vmm_template_opts *opts, struct vmm_template *ret,
                         struct rh_error *err);

/*
 * Fork @count clones concurrently (one thread each): consecutive addresses
 * from @base->ip, MACs from --mac + i or derived from each address. Every
 * address is checked against live clones before anything is spawned. With
 * @warm, @count QEMUs are first pre-spawned in -incoming defer (pool.c) and
 * the timed forks take them. Per-clone outcome in @rcs[i] / @errs[i].
 * Returns 0 if all succeeded, else the first failure's code.
 */
int vmm_fork_batch(const struct vmm_template *t, const struct vmm_fork_opts *base, unsigned count, bool warm,
                   struct vmm_fork_result *res, int *rcs, struct rh_error *errs, struct rh_error *err);

/* Pool: pre-spawn one paused clone process of @t (QMP up, -incoming defer). */
int vmm_pool_spawn(const char *state_dir, const struct vmm_template *t, struct vmm_clone *ret,
                   struct rh_error *err);
/*
 * Claim a live warm clone of template @name for one fork (atomically: a
 * claimed/ directory in its record). Returns 0 with its id, -ENOENT if none.
 */
int vmm_pool_claim(const char *state_dir, const char *name, char ret_id[32]);
/* Remove every warm clone of template @name (its template is going away). */
void vmm_pool_drain(const char *state_dir, const char *name);

/* Allocate a fresh clone id and directory (clones/cN). */
int vmm_clone_alloc(const char *state_dir, struct vmm_clone *c, struct rh_error *err);
/* mkdir -p */
int vmm_mkdir_p(const char *path, mode_t mode);
int vmm_rm_rf(const char *path);
/* Default MAC for an IPv4 address: 52:54:<a.b.c.d>. */
void vmm_mac_for_ip(const struct rh_ipaddr *ip, uint8_t ret_mac[6]);
void vmm_guid_new(char buf[40]);

#endif

/* ---- QEMU migration helpers (template.c) --------------------------------- */
struct qmp;
/*
 * migrate-set-capabilities: events, and x-ignore-shared (skip RAM blocks that
 * are shared named files). Both ends of one stream must agree on it: the
 * stream carries per-block addresses only when it is on.
 */
int qemu_migrate_caps(struct qmp *qmp, bool ignore_shared, struct rh_error *err);
/* stop, then migrate the device state (and any RAM not skipped) into @path. */
int qemu_snapshot(struct qmp *qmp, const char *path, bool ignore_shared, int timeout_ms,
                  struct rh_error *err);
/* migrate-incoming from @path, wait for completion (the VM stays paused). */
int qemu_incoming(struct qmp *qmp, const char *path, bool ignore_shared, int timeout_ms,
                  struct rh_error *err);
/* The guest image directory: $REHOME_IMAGE, else the build's guest/out/current. */
const char *vmm_default_image_dir(void);
/* Make a layout spec for the machine: "qemu-q35:256M". */
void vmm_layout_spec(const char *machine, uint64_t mem_size, char *buf, size_t len);

/* ---- reporting (report.c) ---------------------------------------------- */
/* "250ms", "10s", "2m"; a bare number is seconds. -EINVAL otherwise. */
int vmm_parse_duration_ms(const char *s, int *ret_ms);
/* "256M", "1G" (binary). */
int vmm_parse_size(const char *s, uint64_t *ret);
/* The stage table: one row per fork, then median and max rows. */
void vmm_print_timings(FILE *f, const struct vmm_fork_result *res, const int *rcs, unsigned n);
/* One JSON object per fork (clone, identity, ack, timings). New reference. */
struct json_t;
struct json_t *vmm_fork_result_json(const struct vmm_fork_result *res, int rc, const struct rh_error *err);
/* Median of the successful forks' stage @offset (offsetof in struct vmm_fork_timing). */
double vmm_timing_median(const struct vmm_fork_result *res, const int *rcs, unsigned n, size_t offset);

/* ---- reachability from the gateway side (probe.c) ------------------------ */
/*
 * ARP who-has @ip on the clone bridge (from the gateway side, inside the
 * clone namespace): 0 with the MAC that answered, -EHOSTUNREACH if nobody did.
 */
int vmm_probe_arp(const struct vmm_net *net, const char *ip, uint8_t ret_mac[6], int timeout_s);
/* ICMP echo to @ip: 0 if it answered, -EHOSTUNREACH if not. */
int vmm_probe_icmp(const struct vmm_net *net, const char *ip, int timeout_s);
