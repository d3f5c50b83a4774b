/* SPDX-License-Identifier: MIT */
/*
 * Option groups shared by several verbs: where guest memory is (--file or
 * --pid/--mem-file, --layout, --gpa, --token) and what a request says
 * (--ip, --mac, --gateway, ... or --request FILE.json). Each verb adds the
 * group's long options to its own table and hands unknown codes here.
 */
#ifndef REHOME_CLI_OPTS_H
#define REHOME_CLI_OPTS_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "rehome/layout.h"
#include "rehome/mailbox.h"
#include "rehome/patch.h"
#include "rehome/request.h"

enum {
        OPT_FILE = 0x100,
        OPT_PID,
        OPT_MEM_FILE,
        OPT_LAYOUT,
        OPT_GPA,
        OPT_TOKEN,
        OPT_SCAN,
        /* request */
        OPT_REQUEST,
        OPT_IFACE,
        OPT_MATCH_MAC,
        OPT_MAC,
        OPT_MTU,
        OPT_IP,
        OPT_GATEWAY,
        OPT_ROUTE,
        OPT_DNS,
        OPT_SEARCH,
        OPT_HOSTNAME,
        OPT_ACK,
        OPT_NO_ANNOUNCE,
        OPT_NO_FLUSH,
        OPT_ACK_EARLY,
        OPT_KEEP_ADDRS,
        OPT_SEQ,
        OPT_NONCE,
        OPT_PAYLOAD,
        OPT_HYPEMAN_MAILBOX,
        OPT_HYPEMAN_TOKEN,
        OPT_VERB_BASE = 0x200, /* verbs number their own options from here */
};

#define TARGET_LONG_OPTIONS                                                                        \
        { "file", required_argument, NULL, OPT_FILE },                                             \
        { "pid", required_argument, NULL, OPT_PID },                                               \
        { "mem-file", required_argument, NULL, OPT_MEM_FILE },                                     \
        { "layout", required_argument, NULL, OPT_LAYOUT },                                         \
        { "gpa", required_argument, NULL, OPT_GPA },                                               \
        { "token", required_argument, NULL, OPT_TOKEN }

#define TARGET_HELP                                                                                \
        "Where guest memory is:\n"                                                                 \
        "  --file PATH         a memory file (Firecracker mem file, QEMU backend file, ...)\n"    \
        "  --pid PID           a paused VMM process, through /proc/PID/mem ...\n"                  \
        "  --mem-file PATH     ... at the mapping of this memory file (required with --pid)\n"   \
        "  --layout SPEC       gpa -> file offset: flat (default), qemu-q35:SIZE, qemu-pc:SIZE,\n" \
        "                      cloud-hypervisor:STATE.JSON|DIR, regions:GPA:SIZE[,GPA:SIZE...],\n" \
        "                      Firecracker v1.13.0+: firecracker:SIZE (x86_64),\n"                \
        "                      firecracker-aarch64:SIZE, either with ,hotplug=SIZE[@GPA]\n"      \
        "                      (v1.14.0+ virtio-mem); v0.23.0..v1.12.1:\n"                        \
        "                      firecracker-x86_64-legacy:SIZE, firecracker-aarch64-legacy:SIZE\n" \
        "  --gpa ADDR          the mailbox's guest-physical address (from the armed line;\n"     \
        "                      4 KiB aligned, or with --format v1 the marker's exact address)\n"  \
        "  --token HEX         the agent's 32-hex-digit token (from the armed line); with\n"     \
        "                      --format v1 hypeman's token: 1..30 bytes, spaces and UTF-8 too\n"

#define REQUEST_LONG_OPTIONS                                                                       \
        { "request", required_argument, NULL, OPT_REQUEST },                                       \
        { "iface", required_argument, NULL, OPT_IFACE },                                           \
        { "match-mac", required_argument, NULL, OPT_MATCH_MAC },                                   \
        { "mac", required_argument, NULL, OPT_MAC },                                               \
        { "mtu", required_argument, NULL, OPT_MTU },                                               \
        { "ip", required_argument, NULL, OPT_IP },                                                 \
        { "gateway", required_argument, NULL, OPT_GATEWAY },                                       \
        { "route", required_argument, NULL, OPT_ROUTE },                                           \
        { "dns", required_argument, NULL, OPT_DNS },                                               \
        { "search", required_argument, NULL, OPT_SEARCH },                                         \
        { "hostname", required_argument, NULL, OPT_HOSTNAME },                                     \
        { "ack", required_argument, NULL, OPT_ACK },                                               \
        { "no-announce", no_argument, NULL, OPT_NO_ANNOUNCE },                                     \
        { "no-flush", no_argument, NULL, OPT_NO_FLUSH },                                           \
        { "ack-early", no_argument, NULL, OPT_ACK_EARLY },                                         \
        { "keep-addrs", no_argument, NULL, OPT_KEEP_ADDRS },                                       \
        { "seq", required_argument, NULL, OPT_SEQ },                                               \
        { "nonce", required_argument, NULL, OPT_NONCE },                                           \
        { "payload", required_argument, NULL, OPT_PAYLOAD },                                       \
        { "hypeman-mailbox", required_argument, NULL, OPT_HYPEMAN_MAILBOX },                       \
        { "hypeman-token", required_argument, NULL, OPT_HYPEMAN_TOKEN }

#define REQUEST_HELP                                                                               \
        "The request (flags, or --request FILE.json; see docs/MAILBOX.md):\n"                      \
        "  --iface NAME        interface to change (default eth0)\n"                               \
        "  --match-mac MAC     match the interface by its current MAC instead\n"                   \
        "  --mac MAC           new MAC (unicast)\n"                                                \
        "  --mtu N             new MTU\n"                                                          \
        "  --ip ADDR/PREFIX    new address (repeatable; IPv4 or IPv6)\n"                           \
        "  --gateway ADDR      default route via ADDR (one per family)\n"                          \
        "  --route DST/P[,GW[,METRIC]]  extra route (repeatable)\n"                                \
        "  --dns ADDR          DNS server (repeatable)\n"                                          \
        "  --search DOMAIN     DNS search domain (repeatable)\n"                                   \
        "  --hostname NAME     new host name\n"                                                    \
        "  --ack HOST:PORT     where the agent sends its UDP ack line (gateway:PORT = the gateway)\n" \
        "  --no-announce       no gratuitous ARP / unsolicited NA\n"                               \
        "  --no-flush          keep the neighbour tables\n"                                        \
        "  --ack-early         also send a stage=mailbox line when the request is read\n"          \
        "  --keep-addrs        add addresses without removing the old ones\n"                      \
        "  --seq N             request sequence (default: one more than the page's)\n"             \
        "  --nonce HEX         per-fork nonce echoed in acks (default: random)\n"             \
        "  --payload NAME=FILE.json  a named JSON object for apps in the guest, delivered as\n"  \
        "                      /run/rehome/payloads/NAME (repeatable, up to 16; docs/AGENT.md)\n" \
        "  --hypeman-mailbox NAME=FILE.json  write a hypeman fork mailbox NAME found by its\n"   \
        "                      marker anywhere in guest memory (repeatable, up to 16)\n"         \
        "  --hypeman-token T   the fork mailboxes' token (1..128 bytes; default: any)\n"

struct target_opts {
        const char *file;
        pid_t pid;
        const char *mem_file;
        const char *layout;
        uint64_t gpa;
        bool has_gpa;
        uint8_t token[RH_TOKEN_LEN];
        bool has_token;
        const char *token_arg; /* --token as given: 32 hex digits, or a V1 token */
        bool v1;               /* set by the verb before target_check: hypeman's V1 format */
        bool scan;             /* --scan (locate) */
};

struct request_opts {
        struct rh_request req;
        const char *json_path;
        bool any_flag;          /* a request flag was given */
        bool has_iface;
        bool has_nonce;
        unsigned n_gateways;
        uint64_t seen; /* single-valued options given so far (bit = code - OPT_FILE) */
        struct rh_payload_set payloads; /* --payload, --hypeman-mailbox, "payloads" in --request */
        const char *hypeman_token;
};

/* Parse a number with 0x/K/M/G handling for addresses ("0x9dee000", "4096"). */
int parse_u64(const char *s, uint64_t *ret);
/* Parse 32 hex digits. */
int parse_token(const char *s, uint8_t ret_token[RH_TOKEN_LEN]);
/* Format a token as 32 hex digits into @buf (>= 33 bytes). */
char *format_token(const uint8_t token[RH_TOKEN_LEN], char *buf);

/* Handle one target option. Returns 1 if consumed, 0 if not ours, EXIT_USAGE (>1) on error. */
int target_opt(struct target_opts *o, int c, const char *arg, const char *verb);
/* Check the combination and parse --gpa/--token for the format (o->v1);
 * returns 0 or EXIT_USAGE after printing. */
int target_check(struct target_opts *o, const char *verb, bool need_gpa);
/* Open layout + target. Returns 0 or -errno with @err filled. */
int target_open(const struct target_opts *o, bool writable, struct rh_layout **ret_layout,
                struct rh_target **ret_target, struct rh_error *err);

void request_opts_init(struct request_opts *o);
/* Handle one request option; same returns as target_opt. */
int request_opt(struct request_opts *o, int c, const char *arg, const char *verb);
/* Build the request (from the JSON file or the flags); 0 or EXIT_USAGE/EXIT_FAIL after printing. */
int request_finish(struct request_opts *o, const char *verb, struct rh_request *ret_req);

/* Settle the payload set (--hypeman-token); request_finish calls it. 0 or EXIT_USAGE. */
int payloads_finish(struct request_opts *o, const char *verb);

/* A random 64-bit nonce from getrandom(). */
uint64_t random_nonce(void);

#endif
