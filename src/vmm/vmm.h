/* SPDX-License-Identifier: MIT */
/*
 * The fork engine behind the `template`, `fork`, `clone`, `net` and `demo`
 * verbs. A VMM slots in through struct vmm_ops (QEMU is the one implemented:
 * vmm_qemu_ops); everything else here (state directory records, the host
 * network, child-process tracking) is VMM-neutral.
 *
 * State directory (default /var/lib/rehome):
 *   net.json                     the host network clones attach to
 *   net-nicK.json                network K of multi-NIC templates' NIC K (`net up --nic K`)
 *   templates/NAME/meta.json     a template: VMM command line inputs, layout,
 *   templates/NAME/state         mailbox gpa and token, identity; device state
 *   clones/ID/meta.json          a live clone: pid (+ start time), tap, identity
 *   clones/ID/{qmp.sock,console.log,qemu.log}
 * Template RAM lives on tmpfs, in a directory of the state directory's own
 * (default /dev/shm/rehome/<tag>/NAME-<tag>.ram; vmm_default_ram_dir).
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
#include "rehome/request.h"

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
/*
 * NICs of a template (`template create --nics N`): NIC 0 is the one every
 * template has (its fields are the unnumbered ones below), NIC K >= 1 is
 * guest interface ethK on network K (`net up --nic K`: bridge rhbrK in the
 * same namespace, its own subnet), in the records' "nics" arrays.
 */
#define VMM_MAX_NICS            4 /* RH_MAX_IFACES */

/* ---- host network (net.c) ------------------------------------------------ */

struct vmm_net {
        char netns[64]; /* "" when clones attach to a bridge in the host namespace */
        char bridge[16];
        char gateway[64]; /* "10.77.0.1/24" on the bridge, "" if not ours */
        bool ours;        /* created by `rehome net up` (and removed by net down) */
        unsigned nic;     /* which NIC's network: 0 (net.json) or K (net-nicK.json) */
};

int vmm_net_load(const char *state_dir, struct vmm_net *ret_net, struct rh_error *err);
/* NIC @nic's network (0: vmm_net_load). -ENOENT with the `net up --nic` to run. */
int vmm_net_load_nic(const char *state_dir, unsigned nic, struct vmm_net *ret_net, struct rh_error *err);
/* @netns: namespace name (NULL = this state directory's own: "rehome" for VMM_DEFAULT_STATE_DIR,
 * "rh-" + 8 hex digits of a hash of its real path otherwise); ignored with @bridge (the user's,
 * in ours). -EBUSY if another state directory owns the namespace. */
int vmm_net_up(const char *state_dir, const char *bridge, const char *gateway, const char *netns,
               struct vmm_net *ret_net, struct rh_error *err);
/*
 * vmm_net_up_nic - NIC @nic's network (1..VMM_MAX_NICS-1) next to the first
 * one (which must exist: -ENOENT): bridge rhbrK in its namespace with
 * @gateway (NULL: 10.(77+K).0.1/24), or with a first network on the user's
 * bridge, the user's @bridge. -EINVAL for a bad name/gateway or a mix of the
 * two kinds (a clone's taps all live in one namespace). @nic 0 = vmm_net_up.
 */
int vmm_net_up_nic(const char *state_dir, unsigned nic, const char *bridge, const char *gateway,
                   struct vmm_net *ret_net, struct rh_error *err);
/* Removes this state directory's network; never a namespace another state directory owns. */
int vmm_net_down(const char *state_dir, struct rh_error *err);
/* Create (or take over a stale) tap @name on the bridge, up. -EBUSY if a process holds it. */
int vmm_tap_create(const struct vmm_net *net, const char *name, struct rh_error *err);
int vmm_tap_delete(const struct vmm_net *net, const char *name);
bool vmm_link_exists(const struct vmm_net *net, const char *name);
/*
 * -EADDRINUSE if a host on the clone bridge already uses @mac (its
 * forwarding database has a learned or static entry for it; the port's
 * device goes to @ret_dev), else 0 (also when the bridge cannot be read).
 */
int vmm_mac_on_bridge(const struct vmm_net *net, const uint8_t mac[6], char *ret_dev, size_t dev_len);
/* Run argv (NULL-terminated) in the net's namespace; output to /dev/null unless @out. */
int vmm_net_run(const struct vmm_net *net, char *const argv[], char *out, size_t out_len);

struct vmm_template;

/* ---- addresses through a CNI IPAM plugin (ipam.c) ----------------------- */

struct vmm_ipam {
        char plugin[64];        /* "host-local", or any CNI IPAM plugin in CNI_PATH */
        char config[PATH_MAX];  /* --ipam-config: the "ipam" object (JSON file), "" = a range of the clone network */
};

/*
 * vmm_ipam_add - CNI ADD for @container: @want (NULL = any free address) or
 * -EADDRINUSE (the plugin says it is taken), -ENOENT (no such plugin),
 * -ETIMEDOUT, -EIO (another plugin error: its message, escaped, in @err).
 * vmm_ipam_del - CNI DEL (idempotent, as the spec requires of plugins).
 * NIC K's network (@net->nic) is CNI network "rehome-nicK", interface ethK
 * (NIC 0: "rehome", eth0), so one container id holds one address per NIC.
 */
int vmm_ipam_add(const struct vmm_ipam *ipam, const struct vmm_net *net, const char *state_dir,
                 const char *container, const struct rh_ipaddr *want, struct rh_ipaddr *ret_ip,
                 uint8_t *ret_prefix, struct rh_error *err);
int vmm_ipam_del(const struct vmm_ipam *ipam, const struct vmm_net *net, const char *state_dir,
                 const char *container, struct rh_error *err);

/*
 * vmm_identity_check - what the host refuses before anything starts: an
 * IPv4 address outside the clone network's subnet, or its network,
 * broadcast or gateway address, or the template's; a MAC that is multicast,
 * all-zero or the template's; a gateway that is not on-link for @ip/@prefix.
 * Returns 0 or -EINVAL with one line in @err.
 */
int vmm_identity_check(const struct vmm_net *net, const struct vmm_template *t, const struct rh_ipaddr *ip,
                       uint8_t prefix, const uint8_t mac[6], const struct rh_ipaddr *gateway, struct rh_error *err);
/*
 * The same checks for NIC @nic of @t on its network @net (the template's
 * address and MAC of that NIC; no gateway), every message prefixed
 * "NIC K: ". @nic 0 is vmm_identity_check without a gateway. Returns 0,
 * -EINVAL (one line in @err; also for a NIC the template has not got) or
 * -ENOMEM.
 */
int vmm_identity_check_nic(const struct vmm_net *net, const struct vmm_template *t, unsigned nic,
                           const struct rh_ipaddr *ip, uint8_t prefix, const uint8_t mac[6], struct rh_error *err);

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
        /* -icount shift=0,sleep=off (TCG only): one guest nanosecond per guest
         * instruction, so the agent's stamps count instructions; clones inherit it. */
        bool icount;
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
        unsigned nics;             /* 1 + the extra NICs below (records without "nics": 1) */
        struct vmm_template_nic {
                char ip[64];        /* the template's address on ethK: "10.78.0.2/24" */
                uint8_t mac[6];     /* the guest's MAC of ethK (its identity) */
                uint8_t nic_mac[6]; /* mac= of that NIC on the QEMU command line */
        } xnic[VMM_MAX_NICS - 1];  /* xnic[K - 1] is NIC K */
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
        struct vmm_ipam ipam; /* where its address came from (plugin "" = not from an IPAM) */
        unsigned nics;        /* its template's NICs (1 for records without "nics") */
        struct vmm_clone_nic {
                char tap[16];   /* on network K's bridge */
                char ip[64];    /* "10.78.0.10/24" */
                uint8_t mac[6];
                struct vmm_ipam ipam; /* plugin "" = not from an IPAM */
        } xnic[VMM_MAX_NICS - 1]; /* xnic[K - 1] is NIC K */
};

/* A template or clone name: 1..47 of [A-Za-z0-9._-], not starting with '.' or '-'. */
bool vmm_name_valid(const char *s);
int vmm_template_load(const char *state_dir, const char *name, struct vmm_template *ret,
                      struct rh_error *err);
int vmm_template_save(const struct vmm_template *t, struct rh_error *err);
/* Names of all templates; *ret_names is a NULL-terminated heap array (free with vmm_strv_free). */
int vmm_template_list(const char *state_dir, char ***ret_names, struct rh_error *err);
int vmm_template_remove(const char *state_dir, const char *name, struct rh_error *err);

int vmm_clone_load(const char *state_dir, const char *id, struct vmm_clone *ret, struct rh_error *err);
int vmm_clone_save(const struct vmm_clone *c, struct rh_error *err);
int vmm_clone_list(const char *state_dir, char ***ret_ids, struct rh_error *err);
/* Every NIC of @c: [{"nic": K, "ip", "mac", "tap"}] (new reference; NULL on ENOMEM). */
struct json_t;
struct json_t *vmm_clone_nics_json(const struct vmm_clone *c);
/* True if the clone's QEMU is alive (same pid and start time). */
bool vmm_clone_alive(const struct vmm_clone *c);
/*
 * templates/NAME/files.json: the RAM file and tap a template creation made
 * (written before either exists, kept for `template rm` even when meta.json
 * is damaged) and, while @creating, the creating process (pid + start time).
 * _load: -ENOENT if absent, -EINVAL if damaged; *ret_creating true while
 * that creator is alive.
 */
int vmm_template_files_save(const char *dir, const char *ram_path, const char *tap, bool creating,
                            struct rh_error *err);
int vmm_template_files_load(const char *dir, char *ret_ram, size_t ram_len, char *ret_tap, size_t tap_len,
                            bool *ret_creating);
/* Remove the clone's record (its directory). Records only: see vmm_clone_destroy. */
int vmm_clone_remove_record(const struct vmm_clone *c);
/* True while the clone's fork is under way (record not final) by a live rehome process. */
bool vmm_clone_in_flight(const struct vmm_clone *c);
/*
 * -EADDRINUSE if a live or in-flight clone holds @ip's address (any prefix)
 * or, with @mac, that MAC; the owner's id goes to @ret_owner. Call under
 * the state lock so that the check and the record that reserves are atomic.
 */
int vmm_identity_in_use(const char *state_dir, const char *ip, const uint8_t *mac, char *ret_owner,
                        size_t owner_len);

/* ---- lifecycle across processes (lock.c, reconcile.c, clone.c) ---------- */

/*
 * vmm_state_lock - take the state directory's lock (flock on STATE/lock),
 * waiting up to 10 s. Held only for short record changes, never across a
 * boot or a wait. Returns the lock fd (release with vmm_state_unlock), or
 * -errno (-ETIMEDOUT: held by another rehome for 10 s).
 */
int vmm_state_lock(const char *state_dir, struct rh_error *err);
void vmm_state_unlock(int fd);
/*
 * The marker every VMM this state directory starts carries on its command
 * line (QEMU -name guest=MARKER): "rehome:<8 hex of the state dir's real
 * path>:clone:ID" or "...:template:NAME". @kind "clone" or "template".
 */
void vmm_marker(const char *state_dir, const char *kind, const char *id, char *buf, size_t len);
/* The 8-hex-digit tag of a state directory (from its real path). */
void vmm_state_tag(const char *state_dir, char ret_tag[9]);
/* Default RAM directory of a state directory: VMM_DEFAULT_RAM_DIR/<tag>. */
void vmm_default_ram_dir(const char *state_dir, char *buf, size_t len);

struct vmm_reconcile_stats {
        unsigned killed;          /* VMMs with our marker whose record was dead or missing */
        unsigned records_removed; /* records of forks whose rehome died before they finished */
        unsigned templates_removed; /* template creations whose rehome died */
};
/*
 * vmm_reconcile - bring the state directory back in line with what runs:
 * every process carrying this state directory's marker that no live record
 * or live rehome owns is killed; clone records of forks (and template
 * directories of creations) whose rehome process died are removed with their
 * taps and RAM files. Run (under the lock) by every verb that changes state.
 */
int vmm_reconcile(const char *state_dir, struct vmm_reconcile_stats *ret, struct rh_error *err);

/* Kill the clone's VMM (if it is the recorded, live one), delete its tap and its record. */
int vmm_clone_destroy(const char *state_dir, struct vmm_clone *c, struct rh_error *err);

/*
 * Signals. vmm_signals_install blocks SIGINT/SIGTERM/SIGHUP in every thread
 * (call before creating any) and starts a thread that, on the first one,
 * kills every VMM this process spawned and has not released, so every
 * stage under way fails and rolls back what it made; vmm_interrupted()
 * then returns the signal (0 before). The verb prints one line and exits
 * 128 + signal. A second signal, or 20 s without exit, ends the process.
 */
void vmm_signals_install(void);
/*
 * vmm_signals_child - in a forked child before exec: unblock every signal and
 * give SIGPIPE its default action again (a mask and SIG_IGN survive exec, so
 * without it a QEMU, an agent or a CNI plugin started by rehome would never
 * see SIGTERM). Async-signal-safe.
 */
void vmm_signals_child(void);
int vmm_interrupted(void);
/*
 * Fault injection for the lifecycle tests: when $REHOME_FAULT_POINT names
 * @point ("fork:spawn", "template:boot", ...), say so on stderr
 * ("rehome: fault point fork:spawn reached") and wait there until a signal
 * interrupts the process (at most 120 s). Returns -EINTR then, else 0.
 */
int vmm_fault_point(const char *point, struct rh_error *err);

void vmm_strv_free(char **v);

/* ---- processes (qemu.c) ------------------------------------------------- */

struct qemu_spec {
        const char *accel, *cpu, *machine;
        bool icount; /* -icount shift=0,sleep=off */
        uint64_t mem_size;
        const char *kernel, *initrd, *append;
        const char *ram_path;
        bool share;          /* share=on (template boot) or off (copy-on-write clone) */
        const char *vmgenid; /* guid, NULL = "auto" */
        const char *tap;
        const uint8_t *mac;
        /* The extra NICs (NIC K = xtap[K - 1], xmac[K - 1]; netdev netK), in the same namespace. */
        unsigned n_xnics;
        const char *xtap[VMM_MAX_NICS - 1];
        const uint8_t *xmac[VMM_MAX_NICS - 1];
        const char *netns; /* run in this named network namespace, NULL = ours */
        const char *qmp_path, *console_path, *log_path;
        bool incoming;      /* -incoming defer -S */
        bool no_reboot;     /* -no-reboot: a guest reboot ends QEMU (a clone never comes back as the template) */
        const char *marker; /* -name guest=MARKER (vmm_marker); NULL = "rehome" */
        /* The serial console also as a unix socket (`rehome clone console`), logged to
         * console_path all the same; NULL (or a path too long for a socket) = the file only. */
        const char *console_sock;
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
/* One more cleanup the signal thread runs after killing the QEMUs (NULL = none). */
void qemu_set_signal_extra(void (*fn)(void));
/* Non-blocking: true if the child @pid exited (reaped; *ret_status = wait status, -1 if not ours). */
bool qemu_exited(pid_t pid, int *ret_status);
/*
 * Why QEMU @pid ended, for a message: "exit status 1: <last log line>",
 * "killed by SIGKILL", and for SIGBUS "killed by SIGBUS: RAM file system
 * full? (/dev/shm: 3 MiB free)". @status from qemu_exited (-1: unknown).
 */
void qemu_describe_exit(int status, const char *ram_path, const char *log_path, char *buf, size_t len);
/* Last non-empty line of the QEMU log at @path (for error messages). */
void qemu_log_tail(const char *path, char *buf, size_t len);
/* /proc/<pid>/stat field 22 (proc.c); 0 if the process is gone or a zombie. */
unsigned long long proc_starttime(pid_t pid);
/* True once @pid is gone or a zombie whose every thread has exited (its fds, taps included, released). */
bool proc_fully_gone(pid_t pid);

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
        bool icount;   /* -icount shift=0,sleep=off (TCG only; ignored with from_clone: inherited) */
        bool progress; /* stage lines on stderr */
        /* Extra rehome-agent words for the guest (kernel command line
         * rehome.agent=, ',' between words: "--signal,poll"); NULL = none. */
        const char *agent_args;
        /* NICs (0 = 1): NIC K's network is `net up --nic K`'s, its address nic_ip[K - 1]
         * (NULL: the gateway's address + 1 in its subnet). */
        unsigned nics;
        const char *nic_ip[VMM_MAX_NICS - 1];
        /* One extra kernel command line word for the guest's init (e.g.
         * rehome.ifupdown=1, guest/init); NULL = none. */
        const char *kernel_arg;
};

struct vmm_fork_opts {
        const char *state_dir;
        bool has_ip;       /* else the IPAM picks the address */
        struct rh_ipaddr ip;
        uint8_t prefix;
        const struct vmm_ipam *ipam; /* NULL: no IPAM (the records alone reserve addresses) */
        bool has_gateway;
        struct rh_ipaddr gateway;
        uint8_t mac[6];
        bool has_mac;
        bool keep; /* keep the clone even if the handoff fails */
        /* Bound of every wait of the fork (QMP, incoming migration, ack after resume). */
        int timeout_ms;
        const char *iface;   /* guest interface to rehome (default eth0) */
        bool no_cont;        /* --no-resume: patch but never resume (the ack must time out) */
        const char *warm_id; /* take this pre-spawned clone (pool.c) instead of spawning */
        bool no_pool;        /* vmm_fork_batch: do not take warm clones from the pool */
        bool no_prefetch;    /* do not read the template's recorded working set before resume */
        bool no_clock;       /* leave the guest's realtime clock as the snapshot had it */
        bool keep_machine_id; /* do not ask for a fresh /etc/machine-id */
        /*
         * The request sets only the first interface's MAC (no address, route,
         * host name or announce; the clone's address is still reserved in its
         * record): the DHCP baseline of `rehome bench`, where the guest gets
         * its address from a DHCP server for that MAC.
         */
        bool mac_only;
        /*
         * The rest of the identity (NULL: one address, the MAC, the default
         * route and the host name TEMPLATE-ID): the clone's address and MAC
         * replace its first IPv4 address and first interface's MAC.
         */
        const struct rh_request *request;
        /* Named payloads and hypeman fork mailboxes written at the handoff (NULL or empty: none). */
        const struct rh_payload_set *payloads;
        /* The network the clone's tap and VMM go in (NULL = the state directory's net.json). */
        const struct vmm_net *net;
        /*
         * The extra NICs of a multi-NIC template (NIC K = xnic[K - 1]): each
         * address checked on and reserved in network K (--ip1 or the request's
         * address on interface K; else the IPAM's pick), each MAC (else
         * derived from the address) on that bridge. The request's interface K
         * is matched by the template's MAC of NIC K.
         */
        struct vmm_fork_nic {
                bool has_ip;
                struct rh_ipaddr ip;
                uint8_t prefix;
                bool has_mac;
                uint8_t mac[6];
        } xnic[VMM_MAX_NICS - 1];
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
        uint64_t prefetched_bytes; /* the template's working set read before resume */
        /* The named payloads written (by index of the request's stream); their status is in ack. */
        unsigned n_payloads;
        char payload_names[RH_PAYLOADS_MAX][RH_PAYLOAD_NAME_MAX + 1];
        unsigned n_hypeman; /* hypeman fork mailboxes written */
        char hypeman_names[RH_PAYLOADS_MAX][RH_PAYLOAD_NAME_MAX + 1];
        uint32_t hypeman_awaited; /* bit i: rehome injected ack_port and waits for mailbox i's ack */
        uint32_t hypeman_acked;   /* bit i: "stage=applied mailbox=NAME" arrived */
        /* The guest's CLOCK_REALTIME at its UDP ack minus the host's when the line came (ms). */
        double clock_offset_ms;
        bool have_clock_offset;
};

struct clone;
/*
 * The VMM-specific half of a clone's stages (clone.h). Each returns 0 or
 * -errno with @err filled. spawn starts the VMM paused with its monitor
 * answering and records its pid and start time in c->rec as soon as the
 * process exists; load_state loads the template's device state within
 * @timeout_ms; open_target opens the paused clone's guest memory for
 * writing; resume runs its vCPUs; kill ends the process (never fails).
 */
struct vmm_ops {
        const char *name;
        int (*template_create)(const struct vmm_template_opts *opts, struct vmm_template *ret,
                               struct rh_error *err);
        int (*spawn)(struct clone *c, struct rh_error *err);
        int (*load_state)(struct clone *c, int timeout_ms, struct rh_error *err);
        int (*open_target)(struct clone *c, struct rh_error *err);
        int (*resume)(struct clone *c, struct rh_error *err);
        void (*kill)(pid_t pid);
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

/*
 * The @n-th address after @base inside @base/@prefix (carry across every
 * byte): -ERANGE if it leaves the subnet or is its IPv4 broadcast address.
 */
int vmm_ip_nth(const struct rh_ipaddr *base, uint8_t prefix, unsigned n, struct rh_ipaddr *ret,
               struct rh_error *err);
/* @base + @n with the carry across bytes 5..1; -ERANGE if it would change byte 0. */
int vmm_mac_nth(const uint8_t base[6], unsigned n, uint8_t ret[6], struct rh_error *err);

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
/* The guest image directory: $REHOME_IMAGE, else /var/lib/rehome/images/current. */
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
/*
 * The guest's own view of a handoff from its ack record, in guest
 * CLOCK_MONOTONIC ns (guest instructions on an -icount template):
 * {"signal_read", "read_applied", "applied_ack", "steps": {name: ns},
 * "syscalls", "netlink_round_trips"}; the last three only from agents that
 * report them. NULL when the record's stamps are missing or out of order.
 */
struct json_t *vmm_guest_costs_json(const struct rh_ack *ack);
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
