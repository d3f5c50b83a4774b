/* SPDX-License-Identifier: MIT */
/*
 * The rehome mailbox ABI: one 4 KiB page in guest memory shared by the host
 * (which writes a request while the clone is paused) and the guest agent
 * (which arms the page, reads the request after resume, and acks).
 *
 * Everything is little-endian, fixed-offset, and pointer-free. Each section
 * has exactly one writer. docs/MAILBOX.md is the normative description; the
 * offsets below are asserted at compile time.
 *
 *   0x000 +-----------------------------+  agent writes
 *         | arm header (64 B)           |  magic, abi, token, gpa, caps, crc
 *   0x040 +-----------------------------+  host writes
 *         | prearm request (64 B)       |  prearm_seq, poll interval
 *   0x080 +-----------------------------+  agent writes
 *         | prearm confirm (64 B)       |  prearm_seq echoed, active interval
 *   0x0c0 +-----------------------------+  agent writes
 *         | ack record (576 B)          |  seq, crc, nonce, status, stamps, text
 *   0x300 +-----------------------------+  host writes
 *         | request header (32 B)       |  seq, crc, nonce, payload len/version
 *   0x320 +-----------------------------+
 *         | request payload (3296 B)    |  TLV records, see RH_TLV_*
 *   0x1000+-----------------------------+
 *
 * Ordering (both writers): store 0 in the 32-bit sequence field first, then
 * fill everything and compute the CRC, and write the new sequence LAST. Readers read the sequence, then the body, check
 * the CRC, and re-read the sequence; a mismatch means a torn read: retry.
 */
#ifndef REHOME_MAILBOX_H
#define REHOME_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rehome/error.h"

#ifdef __cplusplus
extern "C" {
#define RH_STATIC_ASSERT static_assert
#else
#define RH_STATIC_ASSERT _Static_assert
#endif

/* Exported from librehome.so (built with -fvisibility=hidden; docs/ABI.md). */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define RH_MAILBOX_SIZE 4096u
#define RH_MAILBOX_MAGIC "REHOMEMB"     /* 8 bytes, no NUL */
#define RH_MAILBOX_MAGIC_LEN 8u
#define RH_MAILBOX_ABI_MAJOR 1u
#define RH_MAILBOX_ABI_MINOR 0u
#define RH_TOKEN_LEN 16u
#define RH_PAYLOAD_VERSION 1u

/* Section offsets inside the page. */
#define RH_OFF_ARM 0x000u
#define RH_OFF_PREARM 0x040u
#define RH_OFF_PREARM_CONFIRM 0x080u
#define RH_OFF_ACK 0x0c0u
#define RH_OFF_REQUEST 0x300u
#define RH_OFF_PAYLOAD 0x320u
#define RH_PAYLOAD_MAX (RH_MAILBOX_SIZE - RH_OFF_PAYLOAD) /* 3296 */

/* Agent capability bits (arm header `caps`). */
enum {
        RH_CAP_SIGNAL_VMCLOCK = 1u << 0,        /* /dev/vmclock0 poll() notification */
        RH_CAP_SIGNAL_VMCLOCK_SPIN = 1u << 1,   /* mmap + spin on vm_generation_counter */
        RH_CAP_SIGNAL_VMGENID_UEVENT = 1u << 2, /* NEW_VMGENID=1 kobject uevent */
        RH_CAP_SIGNAL_VMGENID_KMSG = 1u << 3,   /* "crng reseeded due to virtual machine fork" */
        RH_CAP_SIGNAL_POLL = 1u << 4,           /* timer poll of the request seq */
        RH_CAP_IPV6 = 1u << 8,
        RH_CAP_ROUTES = 1u << 9,
        RH_CAP_DNS = 1u << 10,
        RH_CAP_HOSTNAME = 1u << 11,
        RH_CAP_ANNOUNCE = 1u << 12,             /* gratuitous ARP / unsolicited NA */
        RH_CAP_UDP_ACK = 1u << 13,
        RH_CAP_PREARM = 1u << 14,
        RH_CAP_CLOCK = 1u << 15,                /* steps CLOCK_REALTIME (RH_TLV_REALTIME) */
        RH_CAP_MACHINE_ID = 1u << 16,           /* honours RH_REQ_NEW_MACHINE_ID */
        RH_CAP_HOOKS = 1u << 17,                /* runs post-apply hooks (agent --hooks-dir) */
        RH_CAP_PAYLOADS = 1u << 18,             /* named payloads: payload pages armed (rehome/payloads.h) */
};

/* Which signal made the agent look (ack `signal`). */
enum rh_signal {
        RH_SIGNAL_NONE = 0,
        RH_SIGNAL_VMCLOCK = 1,
        RH_SIGNAL_VMCLOCK_SPIN = 2,
        RH_SIGNAL_VMGENID_UEVENT = 3,
        RH_SIGNAL_VMGENID_KMSG = 4,
        RH_SIGNAL_POLL = 5,
        RH_SIGNAL_PREARM_POLL = 6,      /* the fast timer poll of a prearmed agent */
        RH_SIGNAL_MAX_ = RH_SIGNAL_PREARM_POLL,
};

/* Ack status (ack `status`). READ is intermediate; the rest are final. */
enum rh_ack_status {
        RH_ACK_NONE = 0,
        RH_ACK_READ = 1,        /* request read and valid; apply under way */
        RH_ACK_APPLIED = 2,     /* everything applied */
        RH_ACK_INVALID = 3,     /* request rejected before any change; old network kept */
        RH_ACK_FAILED = 4,      /* a change failed half-way; see applied mask + error */
        RH_ACK_STATUS_MAX_ = RH_ACK_FAILED,
};

/* Request flags (TLV RH_TLV_FLAGS). */
enum {
        RH_REQ_FLUSH_NEIGH = 1u << 0,   /* flush the neighbour tables of matched interfaces */
        RH_REQ_ANNOUNCE = 1u << 1,      /* gratuitous ARP for v4, unsolicited NA for v6 */
        RH_REQ_ACK_EARLY = 1u << 2,     /* also send a stage=mailbox UDP line on read */
        RH_REQ_REPLACE_ADDRS = 1u << 3, /* remove addresses not in the request (default on) */
        RH_REQ_NEW_MACHINE_ID = 1u << 4, /* give /etc/machine-id a fresh random id (RH_CAP_MACHINE_ID) */
        RH_REQ_FLAGS_KNOWN_ = 0x1fu,
};

/* Bits of the ack `applied` mask: which steps were carried out. */
enum {
        RH_APPLIED_MAC = 1u << 0,
        RH_APPLIED_MTU = 1u << 1,
        RH_APPLIED_ADDRS = 1u << 2,
        RH_APPLIED_ROUTES = 1u << 3,
        RH_APPLIED_NEIGH = 1u << 4,
        RH_APPLIED_LINK_UP = 1u << 5,
        RH_APPLIED_ANNOUNCE = 1u << 6,
        RH_APPLIED_HOSTNAME = 1u << 7,
        RH_APPLIED_DNS = 1u << 8,
        RH_APPLIED_CLOCK = 1u << 9, /* realtime clock stepped (RH_TLV_REALTIME) */
        RH_APPLIED_MACHINE_ID = 1u << 10, /* /etc/machine-id replaced (RH_REQ_NEW_MACHINE_ID) */
        RH_APPLIED_HOOKS = 1u << 11,      /* post-apply hooks ran, every one exited 0 */
        RH_APPLIED_PAYLOADS = 1u << 12,   /* every named payload delivered (RH_TLV_PAYLOADS) */
        /* Handoff to the guest's own network managers (docs/AGENT.md, "Guest
         * integration"); bits 16..20 so other steps can take 12..15. */
        RH_APPLIED_NETWORKD = 1u << 16,   /* runtime .network written for every link networkd manages */
        RH_APPLIED_IFUPDOWN = 1u << 17,   /* the link's static stanza in /etc/network/interfaces rewritten */
        RH_APPLIED_HOSTS = 1u << 18,      /* /etc/hosts names the new host name */
        RH_APPLIED_RESOLVED = 1u << 19,   /* DNS handed to systemd-resolved (after the ack; record rewritten) */
        RH_APPLIED_RELOADED = 1u << 20,   /* networkd reloaded the runtime .network (after the ack; rewritten) */
};

/*
 * The agent's per-step costs (ack record 0x170.., struct rh_wire_ack): each
 * step's CLOCK_MONOTONIC delta in ns (guest instructions under QEMU -icount
 * shift=0), in the order the agent runs them. A step the request did not ask
 * for costs only its check. Agents before this addition leave the block zero
 * (no magic): rh_ack.has_stats false.
 */
enum rh_ack_step {
        RH_STEP_VALIDATE = 0, /* apply_validate: interfaces resolved, request checked */
        RH_STEP_ACK_READ,     /* the READ ack record and the early UDP line */
        RH_STEP_CLOCK,
        RH_STEP_LINK, /* MAC, MTU, up, link-local */
        RH_STEP_ADDRS,
        RH_STEP_ROUTES,
        RH_STEP_NEIGH,
        RH_STEP_ANNOUNCE,
        RH_STEP_HOSTNAME,
        RH_STEP_DNS,
        RH_STEP_MACHINE_ID,
        RH_STEP_HOOKS,
        RH_STEP_COUNT /* 12 */
};
#define RH_ACK_STATS_MAGIC 0x31545352u /* "RST1" little-endian */

/* ------------------------------------------------------------------ */
/* Wire layout (packed only where natural alignment already holds).     */

/* Arm header, 64 bytes at 0x000. Written by the agent when it arms. */
struct rh_wire_arm {
        uint8_t magic[8];               /* 0x00 "REHOMEMB" */
        uint16_t abi_major;             /* 0x08 RH_MAILBOX_ABI_MAJOR */
        uint16_t abi_minor;             /* 0x0a */
        uint32_t arm_generation;        /* 0x0c incremented on every re-arm */
        uint8_t token[16];              /* 0x10 random, identifies this agent's page */
        uint64_t gpa;                   /* 0x20 guest-physical address of this page */
        uint32_t agent_version;         /* 0x28 major << 16 | minor << 8 | patch */
        uint32_t caps;                  /* 0x2c RH_CAP_* */
        uint32_t page_size;             /* 0x30 always 4096 */
        uint32_t payload_dir_pfn;       /* 0x34 gpa >> 12 of the payload directory page, 0 = none */
        uint32_t payload_pages;         /* 0x38 data pages the directory lists, 0 = none */
        uint32_t crc32c;                /* 0x3c CRC32C of bytes 0x00..0x3b */
};

/* Prearm request, 64 bytes at 0x040. Written by the host. */
struct rh_wire_prearm {
        uint32_t seq;                   /* 0x00 nonzero and new: enter fast poll */
        uint32_t interval_us;           /* 0x04 requested poll interval, 0 = agent default */
        uint32_t window_ms;             /* 0x08 leave fast poll after this long, 0 = until handoff */
        uint8_t reserved[52];
};

/* Prearm confirm, 64 bytes at 0x080. Written by the agent. */
struct rh_wire_prearm_confirm {
        uint32_t seq;                   /* 0x00 prearm seq the agent is serving */
        uint32_t interval_us;           /* 0x04 poll interval in force */
        uint32_t active;                /* 0x08 1 while fast polling */
        uint8_t reserved[52];
};

#define RH_ACK_ERROR_MAX 256u

/* Ack record, 576 bytes at 0x0c0. Written by the agent, seq last. */
struct rh_wire_ack {
        uint32_t seq;                   /* 0x00 request seq this ack answers (written last) */
        uint32_t crc32c;                /* 0x04 CRC32C of bytes 0x08..0x23f of the record */
        uint64_t nonce;                 /* 0x08 request nonce echoed */
        uint32_t status;                /* 0x10 enum rh_ack_status */
        uint32_t signal;                /* 0x14 enum rh_signal */
        uint32_t applied;               /* 0x18 RH_APPLIED_* */
        int32_t error_code;             /* 0x1c positive errno, 0 if none */
        uint64_t t_signal_ns;           /* 0x20 guest CLOCK_MONOTONIC: signal seen */
        uint64_t t_read_ns;             /* 0x28 mailbox read and validated */
        uint64_t t_applied_ns;          /* 0x30 network applied */
        uint64_t t_ack_ns;              /* 0x38 ack written */
        uint32_t arm_generation;        /* 0x40 arm generation that served it */
        uint32_t payloads_total;        /* 0x44 named payloads in the request (0..16) */
        uint32_t payloads_delivered;    /* 0x48 bit i: payload i delivered */
        uint32_t reserved[5];           /* 0x4c */
        char error[RH_ACK_ERROR_MAX];   /* 0x60 NUL-terminated */
        uint8_t payload_errno[16];      /* 0x160 positive errno per payload, 0 = delivered/none */
        /* Agent statistics (all zero from agents without them). */
        uint32_t stats_magic;           /* 0x170 RH_ACK_STATS_MAGIC */
        uint32_t syscalls;              /* 0x174 system calls, read -> ack record */
        uint32_t nl_round_trips;        /* 0x178 netlink request/reply exchanges */
        uint32_t n_steps;               /* 0x17c entries of step_ns (RH_STEP_COUNT) */
        uint32_t step_ns[RH_STEP_COUNT]; /* 0x180 enum rh_ack_step, saturated at 2^32-1 */
        uint8_t reserved2[144];         /* 0x1b0 */
};

/* Request header, 32 bytes at 0x300. Written by the host, seq last. */
struct rh_wire_request {
        uint32_t seq;                   /* 0x00 nonzero, differs from the last one handled */
        uint32_t crc32c;                /* 0x04 CRC32C of [0x308, 0x320 + payload_len) */
        uint64_t nonce;                 /* 0x08 per fork, echoed in every ack */
        uint32_t payload_len;           /* 0x10 <= RH_PAYLOAD_MAX */
        uint16_t payload_version;       /* 0x14 RH_PAYLOAD_VERSION */
        uint16_t flags;                 /* 0x16 zero */
        uint64_t host_time_ns;          /* 0x18 host CLOCK_REALTIME at write, informative */
};

struct rh_wire_page {
        struct rh_wire_arm arm;
        struct rh_wire_prearm prearm;
        struct rh_wire_prearm_confirm prearm_confirm;
        struct rh_wire_ack ack;
        struct rh_wire_request request;
        uint8_t payload[RH_PAYLOAD_MAX];
};

RH_STATIC_ASSERT(sizeof(struct rh_wire_arm) == 64, "arm header size");
RH_STATIC_ASSERT(sizeof(struct rh_wire_prearm) == 64, "prearm size");
RH_STATIC_ASSERT(sizeof(struct rh_wire_prearm_confirm) == 64, "prearm confirm size");
RH_STATIC_ASSERT(sizeof(struct rh_wire_ack) == 576, "ack size");
RH_STATIC_ASSERT(sizeof(struct rh_wire_request) == 32, "request header size");
RH_STATIC_ASSERT(sizeof(struct rh_wire_page) == RH_MAILBOX_SIZE, "page size");
RH_STATIC_ASSERT(__builtin_offsetof(struct rh_wire_page, prearm) == RH_OFF_PREARM, "prearm off");
RH_STATIC_ASSERT(__builtin_offsetof(struct rh_wire_page, prearm_confirm) == RH_OFF_PREARM_CONFIRM, "confirm off");
RH_STATIC_ASSERT(__builtin_offsetof(struct rh_wire_page, ack) == RH_OFF_ACK, "ack off");
RH_STATIC_ASSERT(__builtin_offsetof(struct rh_wire_page, request) == RH_OFF_REQUEST, "request off");
RH_STATIC_ASSERT(__builtin_offsetof(struct rh_wire_page, payload) == RH_OFF_PAYLOAD, "payload off");
RH_STATIC_ASSERT(__builtin_offsetof(struct rh_wire_ack, error) == 0x60, "ack error off");
RH_STATIC_ASSERT(__builtin_offsetof(struct rh_wire_arm, crc32c) == 0x3c, "arm crc off");

/*
 * Payload: a sequence of TLV records. Each record is
 *     u16 type, u16 length (of value, bytes), value, zero padding to 4 bytes.
 * Unknown types are an error (a request the agent cannot fully honour must not
 * be half-applied). Value layouts (all little-endian):
 *
 *  RH_TLV_IFACE (40 B): u8 match (RH_MATCH_*), u8 has_mac, u16 reserved,
 *      char name[16] (NUL-padded), u8 match_mac[6], u8 mac[6], u32 mtu (0 = keep),
 *      u32 reserved. Interfaces get indices 0, 1, ... in order of appearance.
 *  RH_TLV_ADDR (20 B): u8 iface, u8 family (4|6), u8 prefix, u8 reserved,
 *      u8 addr[16] (v4 in the first 4 bytes, rest zero).
 *  RH_TLV_ROUTE (40 B): u8 iface, u8 family, u8 dst_prefix, u8 has_gateway,
 *      u32 metric, u8 dst[16], u8 gateway[16].
 *  RH_TLV_DNS (20 B): u8 family, u8 reserved[3], u8 addr[16].
 *  RH_TLV_SEARCH (1..253 B): a domain name, no NUL.
 *  RH_TLV_HOSTNAME (1..64 B): a host name, no NUL.
 *  RH_TLV_FLAGS (4 B): u32 RH_REQ_*.
 *  RH_TLV_ACK_UDP (20 B): u8 family, u8 reserved, u16 port, u8 addr[16].
 *  RH_TLV_REALTIME (8 B): u64 the host's CLOCK_REALTIME in ns when it wrote
 *      the request; the agent steps the guest's realtime clock to it before
 *      anything else (a clone otherwise runs behind by its snapshot's age).
 *      Only for agents that announce RH_CAP_CLOCK.
 */
enum rh_tlv_type {
        RH_TLV_IFACE = 1,
        RH_TLV_ADDR = 2,
        RH_TLV_ROUTE = 3,
        RH_TLV_DNS = 4,
        RH_TLV_SEARCH = 5,
        RH_TLV_HOSTNAME = 6,
        RH_TLV_FLAGS = 7,
        RH_TLV_ACK_UDP = 8,
        RH_TLV_REALTIME = 9,
        RH_TLV_PAYLOADS = 10, /* 12 B: u32 count, u32 stream_len, u32 stream_crc (rehome/payloads.h) */
};

enum {
        RH_MATCH_NAME = 1,      /* match the interface by name */
        RH_MATCH_MAC = 2,       /* match by current MAC (the template's) */
};

/* ------------------------------------------------------------------ */
/* Decoded, host-order forms. Fixed size: the agent keeps one preallocated. */

#define RH_MAX_IFACES 4
#define RH_MAX_ADDRS 16
#define RH_MAX_ROUTES 16
#define RH_MAX_DNS 4
#define RH_MAX_SEARCH 6
#define RH_IFNAME_MAX 16        /* IFNAMSIZ, including the NUL */
#define RH_HOSTNAME_MAX 64
#define RH_SEARCH_MAX 253

struct rh_iface {
        uint8_t match;                  /* RH_MATCH_NAME and/or RH_MATCH_MAC */
        char name[RH_IFNAME_MAX];       /* when RH_MATCH_NAME */
        uint8_t match_mac[6];           /* when RH_MATCH_MAC */
        bool has_mac;
        uint8_t mac[6];                 /* new MAC: unicast, not all-zero */
        uint32_t mtu;                   /* 0 = keep; else 68..65535 */
};

struct rh_addr {
        uint8_t iface;                  /* index into rh_request.ifaces */
        uint8_t family;                 /* 4 or 6 */
        uint8_t prefix;                 /* <= 32 or <= 128 */
        uint8_t addr[16];
};

struct rh_route {
        uint8_t iface;
        uint8_t family;
        uint8_t dst_prefix;             /* 0 with dst all-zero = default route */
        bool has_gateway;
        uint32_t metric;
        uint8_t dst[16];
        uint8_t gateway[16];
};

struct rh_ipaddr {
        uint8_t family;                 /* 4 or 6 */
        uint8_t addr[16];
};

/*
 * struct rh_request will grow (more interfaces, addresses, routes; new
 * TLVs), so it carries its own size (docs/ABI.md, "Growing structs"):
 * @size is sizeof(struct rh_request) as the caller was compiled, or 0, which
 * means the LIBREHOME_0.1 layout (what a zero-initialised request is: every
 * caller written against 0.1). Functions that read a request refuse a size
 * they do not know with -EINVAL; functions that fill one set @size to the
 * layout they wrote. Initialise with RH_REQUEST_INIT (or memset 0, then set
 * .size = sizeof) so a rebuild against a newer header says so.
 */
#define RH_REQUEST_INIT { .size = sizeof(struct rh_request) }

struct rh_request {
        uint32_t size;                  /* sizeof(struct rh_request), or 0 = the LIBREHOME_0.1 layout */
        uint32_t seq;                   /* filled by rh_mailbox_read_request */
        uint64_t nonce;
        uint32_t flags;                 /* RH_REQ_* */
        unsigned n_ifaces, n_addrs, n_routes, n_dns, n_search;
        struct rh_iface ifaces[RH_MAX_IFACES];
        struct rh_addr addrs[RH_MAX_ADDRS];
        struct rh_route routes[RH_MAX_ROUTES];
        struct rh_ipaddr dns[RH_MAX_DNS];
        char search[RH_MAX_SEARCH][RH_SEARCH_MAX + 1];
        char hostname[RH_HOSTNAME_MAX + 1];     /* empty = keep */
        bool has_ack_udp;
        struct rh_ipaddr ack_addr;
        uint16_t ack_port;
        uint64_t realtime_ns; /* RH_TLV_REALTIME; 0 = leave the guest's clock alone */
        /* RH_TLV_PAYLOADS: count 0 = none; the stream lives in the payload pages. */
        uint32_t payloads_count, payloads_len, payloads_crc;
};

struct rh_arm {
        uint16_t abi_major, abi_minor;
        uint32_t arm_generation;
        uint8_t token[RH_TOKEN_LEN];
        uint64_t gpa;
        uint32_t agent_version;
        uint32_t caps;
        uint32_t payload_dir_pfn;       /* 0 = no payload pages */
        uint32_t payload_pages;
};

struct rh_ack {
        uint32_t seq;
        uint64_t nonce;
        uint32_t status;                /* enum rh_ack_status */
        uint32_t signal;                /* enum rh_signal */
        uint32_t applied;               /* RH_APPLIED_* */
        int32_t error_code;
        uint64_t t_signal_ns, t_read_ns, t_applied_ns, t_ack_ns;
        uint32_t arm_generation;
        uint32_t payloads_total;        /* 0..16 */
        uint32_t payloads_delivered;    /* bit i = payload i delivered */
        uint8_t payload_errno[16];
        char error[RH_ACK_ERROR_MAX];
        /* Agent statistics (enum rh_ack_step): present when has_stats. */
        bool has_stats;
        uint32_t syscalls, nl_round_trips;
        uint32_t step_ns[RH_STEP_COUNT];
};

/* ------------------------------------------------------------------ */
/* Functions. All take/return host-order structs and a raw page buffer. */

/*
 * rh_crc32c - CRC32C (Castagnoli, reflected, init ~0, final xor ~0) of a buffer,
 * continuing from @crc (pass 0 to start). rh_crc32c(0, "123456789", 9) == 0xe3069283.
 */
uint32_t rh_crc32c(uint32_t crc, const void *buf, size_t len);

/*
 * rh_request_validate - check a decoded request for semantic validity.
 * Returns 0, or -EINVAL (bad MAC, prefix, family, index, empty match,
 * bad name; a @size this library does not know), -E2BIG (too many
 * entries), with the reason in @err.
 */
int rh_request_validate(const struct rh_request *req, struct rh_error *err);

/*
 * rh_request_encode - validate @req and encode it as TLV payload.
 * @buf/@cap: output buffer; RH_PAYLOAD_MAX always suffices.
 * @ret_len: bytes written, on success.
 * Returns 0, -EINVAL (invalid request), -ENOBUFS (@cap too small).
 */
int rh_request_encode(const struct rh_request *req, uint8_t *buf, size_t cap, size_t *ret_len,
                      struct rh_error *err);

/*
 * rh_request_decode - decode and validate a TLV payload into @ret_req
 * (seq and nonce are left zero). @ret_req is written only on success.
 * Returns 0, -EMSGSIZE (len > RH_PAYLOAD_MAX or a TLV runs past the end),
 * -EBADMSG (malformed or unknown TLV, bad TLV length), -E2BIG (too many
 * entries), -EINVAL (semantic validation failed).
 */
int rh_request_decode(const uint8_t *buf, size_t len, struct rh_request *ret_req,
                      struct rh_error *err);

/*
 * rh_mailbox_arm_write - write an arm header into @page (agent side),
 * computing the CRC. Clears prearm confirm and leaves request/ack alone.
 */
void rh_mailbox_arm_write(uint8_t *page, const struct rh_arm *arm);

/*
 * rh_mailbox_arm_read - read and verify the arm header of @page (@len bytes).
 * Returns 0, -EMSGSIZE (len < RH_MAILBOX_SIZE), -ENOMSG (bad magic),
 * -EPROTONOSUPPORT (ABI major differs), -EBADMSG (CRC mismatch or bad page_size).
 */
int rh_mailbox_arm_read(const uint8_t *page, size_t len, struct rh_arm *ret_arm,
                        struct rh_error *err);

/*
 * rh_mailbox_matches - true if @page holds a valid arm header with @token.
 */
bool rh_mailbox_matches(const uint8_t *page, size_t len, const uint8_t token[RH_TOKEN_LEN]);

/*
 * rh_mailbox_write_request - host side: encode @req (with @req->seq and
 * @req->nonce; seq must be nonzero) into @page in the documented order:
 * seq 0, payload, header fields, CRC, then the new seq. Returns as rh_request_encode, and
 * -EINVAL for seq == 0.
 */
int rh_mailbox_write_request(uint8_t *page, const struct rh_request *req, struct rh_error *err);

/*
 * rh_mailbox_read_request - agent side: read seq, payload, check CRC,
 * re-read seq. Returns 0, -ENODATA (seq == 0: no request), -EAGAIN (seq
 * changed during the read: torn, retry), -EPROTONOSUPPORT (payload version),
 * -EMSGSIZE, -EBADMSG (CRC mismatch), or any rh_request_decode error.
 * On a decode error after a good CRC, *ret_seq and *ret_nonce are still set
 * (when non-NULL) so the agent can answer with an INVALID ack.
 */
int rh_mailbox_read_request(const uint8_t *page, struct rh_request *ret_req,
                            uint32_t *ret_seq, uint64_t *ret_nonce, struct rh_error *err);

/*
 * rh_mailbox_write_ack - agent side: write @ack into the ack record of
 * @page: seq 0 first, then the body with its CRC, the new seq last.
 */
void rh_mailbox_write_ack(uint8_t *page, const struct rh_ack *ack);

/*
 * rh_mailbox_read_ack - host side: read and verify the ack record.
 * Returns 0, -ENODATA (seq == 0: nothing acked yet), -EAGAIN (torn),
 * -EBADMSG (CRC mismatch, status or signal out of range).
 */
int rh_mailbox_read_ack(const uint8_t *page, struct rh_ack *ret_ack, struct rh_error *err);

/* Name of an enum rh_ack_step ("validate", "link", ...); "unknown" out of range. */
const char *rh_ack_step_name(unsigned step);
/* Names for printing; never NULL ("unknown" for out-of-range values). */
const char *rh_signal_name(uint32_t signal);
const char *rh_ack_status_name(uint32_t status);
/* Parse a signal name ("vmclock", "vmgenid-kmsg", ...); -EINVAL if unknown. */
int rh_signal_from_name(const char *name, enum rh_signal *ret_signal);

/* ------------------------------------------------------------------ */
/* hypeman V1 compatibility (DESIGN.md decision 7).                    */
/*
 * The V1 mailbox is one 4 KiB buffer starting at its marker, which may sit
 * at ANY byte offset of guest memory (hypeman's host scans the whole file):
 *
 *   +0   "HYPEMAN_RESUME_NETWORK_MAILBOX_V1\0" (34 bytes)
 *   +34  token: 1..30 arbitrary non-NUL bytes, NUL-padded up to +64 (a
 *        30-byte token fills +34..+63 and has no NUL)
 *   +64  u32 LE seq      +68 u32 LE length   +72 JSON (length bytes)
 *   JSON: {"interface_name":"eth0","mac":"..","ipv4":"..","prefix":24,
 *          "gateway":"..","ack_port":N}
 *
 * The host writes the JSON, the length, then seq = 1, every time; the guest
 * applies, sends "stage=applied mac=<mac> ip=<ip>" over UDP to
 * gateway:ack_port and writes seq back to 0. Nothing else lives in the page.
 */
#define RH_V1_MAGIC "HYPEMAN_RESUME_NETWORK_MAILBOX_V1"
#define RH_V1_MAGIC_LEN 34u     /* including the NUL */
#define RH_V1_OFF_SEQ 64u
#define RH_V1_OFF_LEN 68u
#define RH_V1_OFF_JSON 72u
#define RH_V1_JSON_MAX (RH_MAILBOX_SIZE - RH_V1_OFF_JSON)
#define RH_V1_TOKEN_MAX (RH_V1_OFF_SEQ - RH_V1_MAGIC_LEN) /* 30 bytes */

/*
 * rh_v1_token_valid - true if @token is a token both sides accept: 1..30
 * bytes (RH_V1_TOKEN_MAX), any bytes but NUL (spaces and UTF-8 included).
 */
bool rh_v1_token_valid(const char *token);

/*
 * rh_v1_write_header - write the V1 magic and @token into @page and clear
 * the rest of the token area, seq and length (+34..+71).
 * Returns 0 or -EINVAL (token not rh_v1_token_valid).
 */
int rh_v1_write_header(uint8_t *page, const char *token, struct rh_error *err);

/*
 * rh_v1_matches - true if the @len bytes at @page (>= RH_MAILBOX_SIZE) start
 * with the V1 magic followed by exactly @token (its bytes, then a NUL or the
 * end of the token area at +64). NULL token: any non-empty token.
 */
bool rh_v1_matches(const uint8_t *page, size_t len, const char *token);

/*
 * rh_v1_marker_matches - the same test on just the 64-byte marker (magic +
 * token area) at @marker: what a scan checks at every byte offset.
 */
bool rh_v1_marker_matches(const uint8_t marker[RH_V1_OFF_SEQ], const char *token);

/*
 * rh_v1_token_read - copy the token of the V1 marker at @marker into @buf
 * (>= RH_V1_TOKEN_MAX + 1 bytes, NUL-terminated). Returns its length.
 */
size_t rh_v1_token_read(const uint8_t marker[RH_V1_OFF_SEQ], char *buf);

/*
 * rh_v1_encode - write a V1 request from @req (first interface, its first
 * IPv4 address, the first IPv4 default route's gateway, ack_port) with @seq:
 * JSON, length, then seq last. Whatever else @req holds is not carried
 * (callers that must refuse it check first: see rehome patch --format v1).
 * Returns 0, -EINVAL (request not expressible in V1: no IPv4 address, no
 * IPv4 gateway, not one named interface with a new MAC), -ENOBUFS.
 */
int rh_v1_encode(uint8_t *page, const struct rh_request *req, uint32_t seq, struct rh_error *err);

/*
 * rh_v1_decode - read a V1 request from @page into @ret_req. The ack goes
 * to the port in the JSON (address: none; the agent uses its gateway).
 * Returns 0, -EMSGSIZE, -ENOMSG (bad magic), -ENODATA (seq 0), -EBADMSG
 * (bad JSON, missing or wrong-typed field), -EINVAL (validation).
 */
int rh_v1_decode(const uint8_t *page, size_t len, struct rh_request *ret_req, uint32_t *ret_seq,
                 struct rh_error *err);

/* Helpers shared by CLI and agent. */
/* Parse "aa:bb:cc:dd:ee:ff"; -EINVAL on anything else. */
int rh_mac_parse(const char *s, uint8_t ret_mac[6]);
/* Format into @buf (>= 18 bytes). Returns @buf. */
char *rh_mac_format(const uint8_t mac[6], char *buf);
/* Parse "10.0.0.5", "fd00::5", optionally with "/prefix" when @ret_prefix != NULL.
 * Without a slash, *ret_prefix is set to 32/128. Returns 0 or -EINVAL. */
int rh_ip_parse(const char *s, struct rh_ipaddr *ret_ip, uint8_t *ret_prefix);
/* Format @ip into @buf (>= 46 bytes). Returns @buf. */
char *rh_ip_format(const struct rh_ipaddr *ip, char *buf);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif

#endif
