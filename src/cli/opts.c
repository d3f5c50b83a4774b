/* SPDX-License-Identifier: MIT */
/*
 * The option groups shared by the memory verbs (locate, patch, inspect,
 * wait-ack) and the fork engine: parsing, the usage errors they print, and
 * turning them into a layout + target or a request.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cleanup.h"
#include "cli.h"
#include "io.h"
#include "opts.h"
#include "src/lib/handle-cleanup.h"
#include "rehome/request.h"

int parse_u64(const char *s, uint64_t *ret)
{
        unsigned long long v;
        char *end;

        if (!s || !*s || *s == '-')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 0);
        if (errno || end == s)
                return -EINVAL;
        switch (*end) {
        case '\0':
                break;
        case 'K': case 'k':
                v = v > UINT64_MAX >> 10 ? 0 : v << 10;
                end++;
                break;
        case 'M': case 'm':
                v = v > UINT64_MAX >> 20 ? 0 : v << 20;
                end++;
                break;
        case 'G': case 'g':
                v = v > UINT64_MAX >> 30 ? 0 : v << 30;
                end++;
                break;
        default:
                return -EINVAL;
        }
        if (*end)
                return -EINVAL;
        *ret = v;
        return 0;
}

int parse_token(const char *s, uint8_t ret_token[RH_TOKEN_LEN])
{
        uint8_t t[RH_TOKEN_LEN];

        if (!s || strlen(s) != 2 * RH_TOKEN_LEN)
                return -EINVAL;
        for (unsigned i = 0; i < RH_TOKEN_LEN; i++) {
                unsigned v;
                char pair[3] = { s[2 * i], s[2 * i + 1], 0 };
                char *end;
                v = (unsigned)strtoul(pair, &end, 16);
                if (*end || pair[0] == '+' || pair[0] == '-' || pair[0] == ' ')
                        return -EINVAL;
                t[i] = (uint8_t)v;
        }
        memcpy(ret_token, t, RH_TOKEN_LEN);
        return 0;
}

char *format_token(const uint8_t token[RH_TOKEN_LEN], char *buf)
{
        for (unsigned i = 0; i < RH_TOKEN_LEN; i++)
                sprintf(buf + 2 * i, "%02x", token[i]);
        return buf;
}

uint64_t random_nonce(void)
{
        uint64_t n = 0;

        /* getrandom never returns short for <= 256 bytes once the pool is ready. */
        while (n == 0)
                if (getrandom(&n, sizeof(n), 0) != sizeof(n))
                        n = now_ns() ^ ((uint64_t)getpid() << 32);
        return n;
}

int target_opt(struct target_opts *o, int c, const char *arg, const char *verb)
{
        uint64_t v;

        switch (c) {
        case OPT_FILE:
                o->file = arg;
                return 1;
        case OPT_PID:
                if (parse_u64(arg, &v) < 0 || v == 0 || v > INT32_MAX)
                        return cli_usage_error(verb, "--pid: not a process id: '%s'", arg);
                o->pid = (pid_t)v;
                return 1;
        case OPT_MEM_FILE:
                o->mem_file = arg;
                return 1;
        case OPT_LAYOUT:
                o->layout = arg;
                return 1;
        case OPT_GPA:
                if (parse_u64(arg, &o->gpa) < 0)
                        return cli_usage_error(verb, "--gpa: not an address: '%s'", arg);
                o->has_gpa = true; /* alignment: in target_check, once the format is known */
                return 1;
        case OPT_TOKEN:
                o->token_arg = arg; /* hex or a V1 token: in target_check */
                return 1;
        }
        return 0;
}

/* --gpa and --token mean different things for the two formats. */
static int check_gpa_token(struct target_opts *o, const char *verb)
{
        if (o->v1) {
                /* hypeman's marker sits at any byte offset; its token is 1..30 bytes. */
                if (o->token_arg && !rh_v1_token_valid(o->token_arg))
                        return cli_usage_error(verb, "--token: a V1 token is 1..%u bytes, got %zu", RH_V1_TOKEN_MAX,
                                               strlen(o->token_arg));
                return 0;
        }
        if (o->has_gpa && o->gpa % RH_MAILBOX_SIZE)
                return cli_usage_error(verb, "--gpa: 0x%llx is not 4 KiB aligned", (unsigned long long)o->gpa);
        if (o->token_arg) {
                if (parse_token(o->token_arg, o->token) < 0)
                        return cli_usage_error(verb, "--token: expected 32 hex digits, got '%s'", o->token_arg);
                o->has_token = true;
        }
        return 0;
}

int target_check(struct target_opts *o, const char *verb, bool need_gpa)
{
        int r = check_gpa_token(o, verb);

        if (r != 0)
                return r;
        if (!o->file && !o->pid)
                return cli_usage_error(verb, "say where guest memory is: --file PATH or --pid PID --mem-file PATH");
        if (o->file && o->pid)
                return cli_usage_error(verb, "--file and --pid exclude each other");
        if (o->pid && !o->mem_file)
                return cli_usage_error(verb, "--pid needs --mem-file (the memory file the VMM mapped)");
        if (o->file && o->mem_file)
                return cli_usage_error(verb, "--mem-file goes with --pid, not --file");
        if (need_gpa && !o->has_gpa)
                return cli_usage_error(verb, "--gpa is required (the address from the agent's armed line; 'rehome locate' finds it)");
        if (!o->layout)
                o->layout = "flat";
        return 0;
}

int target_open(const struct target_opts *o, bool writable, struct rh_layout **ret_layout,
                struct rh_target **ret_target, struct rh_error *err)
{
        /* Declared in this order so the target (which points at the layout) goes first. */
        _cleanup_(rh_layout_freep) struct rh_layout *layout = NULL;
        _cleanup_(rh_target_freep) struct rh_target *target = NULL;
        int r;

        r = rh_layout_parse(o->layout, &layout, err);
        if (r < 0)
                return rh_error_prefix(err, r, "layout '%s'", o->layout);
        if (o->file)
                r = rh_target_open_file(o->file, layout, writable, &target, err);
        else
                r = rh_target_open_pid(o->pid, o->mem_file, layout, writable, &target, err);
        if (r < 0)
                return r;
        *ret_layout = TAKE_PTR(layout);
        *ret_target = TAKE_PTR(target);
        return 0;
}

void request_opts_init(struct request_opts *o)
{
        memset(o, 0, sizeof(*o));
        o->req.flags = RH_REQ_FLUSH_NEIGH | RH_REQ_ANNOUNCE | RH_REQ_REPLACE_ADDRS;
        o->req.n_ifaces = 1;
}

static int add_route(struct request_opts *o, const char *arg, const char *verb, bool is_gateway)
{
        struct rh_request *req = &o->req;
        struct rh_route *rt;
        struct rh_ipaddr ip;
        char buf[128], *gw = NULL, *metric = NULL;

        if (req->n_routes >= RH_MAX_ROUTES)
                return cli_usage_error(verb, "at most %d routes", RH_MAX_ROUTES);
        rt = &req->routes[req->n_routes];
        memset(rt, 0, sizeof(*rt));
        if (is_gateway) {
                if (rh_ip_parse(arg, &ip, NULL) < 0)
                        return cli_usage_error(verb, "--gateway: not an address: '%s'", arg);
                rt->family = ip.family;
                rt->has_gateway = true;
                memcpy(rt->gateway, ip.addr, 16);
                req->n_routes++;
                return 1;
        }
        if (strlen(arg) >= sizeof(buf))
                return cli_usage_error(verb, "--route: too long");
        strcpy(buf, arg);
        gw = strchr(buf, ',');
        if (gw) {
                *gw++ = '\0';
                metric = strchr(gw, ',');
                if (metric)
                        *metric++ = '\0';
        }
        if (rh_ip_parse(buf, &ip, &rt->dst_prefix) < 0)
                return cli_usage_error(verb, "--route: bad destination '%s' (expected DST/PREFIX[,GW[,METRIC]])", buf);
        rt->family = ip.family;
        memcpy(rt->dst, ip.addr, 16);
        if (gw && *gw) {
                if (rh_ip_parse(gw, &ip, NULL) < 0 || ip.family != rt->family)
                        return cli_usage_error(verb, "--route: bad gateway '%s'", gw);
                rt->has_gateway = true;
                memcpy(rt->gateway, ip.addr, 16);
        }
        if (metric) {
                uint64_t m;
                if (parse_u64(metric, &m) < 0 || m > UINT32_MAX)
                        return cli_usage_error(verb, "--route: bad metric '%s'", metric);
                rt->metric = (uint32_t)m;
        }
        req->n_routes++;
        return 1;
}

/* Options that say one thing once: a second one is a usage error, never last-wins. */
static int once(struct request_opts *o, int c, const char *verb)
{
        static const struct {
                int code;
                const char *name;
        } single[] = {
                {OPT_REQUEST, "--request"}, {OPT_IFACE, "--iface"}, {OPT_MATCH_MAC, "--match-mac"},
                {OPT_MAC, "--mac"},         {OPT_MTU, "--mtu"},     {OPT_HOSTNAME, "--hostname"},
                {OPT_ACK, "--ack"},         {OPT_SEQ, "--seq"},     {OPT_NONCE, "--nonce"},
                {OPT_HYPEMAN_TOKEN, "--hypeman-token"},
        };

        for (size_t i = 0; i < ELEMENTSOF(single); i++)
                if (single[i].code == c) {
                        uint64_t bit = 1ull << (c - OPT_FILE);
                        if (o->seen & bit)
                                return cli_usage_error(verb, "%s given twice", single[i].name);
                        o->seen |= bit;
                }
        return 0;
}

/* --payload / --hypeman-mailbox NAME=FILE.json: the file must hold exactly one JSON object. */
static int payload_opt(struct request_opts *o, bool hypeman, const char *arg, const char *verb)
{
        const char *opt = hypeman ? "--hypeman-mailbox" : "--payload";
        const char *eq = strchr(arg, '=');
        _cleanup_free_ char *text = NULL;
        char name[RH_PAYLOAD_NAME_MAX + 1];
        struct rh_error err = {};
        size_t len;
        int r;

        if (!eq || eq == arg || !eq[1])
                return cli_usage_error(verb, "%s: expected NAME=FILE.json, got '%s'", opt, arg);
        if ((size_t)(eq - arg) > RH_PAYLOAD_NAME_MAX)
                return cli_usage_error(verb, "%s: name longer than %u characters", opt, RH_PAYLOAD_NAME_MAX);
        memcpy(name, arg, (size_t)(eq - arg));
        name[eq - arg] = 0;
        if (!rh_payload_name_valid(name))
                return cli_usage_error(verb, "%s: invalid name '%s' (want ^[A-Za-z0-9._:-]{1,64}$)", opt, name);
        r = read_file_alloc(eq + 1, RH_PAYLOAD_PAGES_MAX * 4096u, &text, &len);
        if (r == -EFBIG || r == -E2BIG || r == -EMSGSIZE)
                return cli_usage_error(verb, "%s %s: %s is larger than %u bytes", opt, name, eq + 1,
                                       RH_PAYLOAD_PAGES_MAX * 4096u);
        if (r < 0)
                return cli_usage_error(verb, "%s %s: %s: %s", opt, name, eq + 1, strerror(-r));
        r = rh_payload_set_add(&o->payloads, hypeman, name, NULL, (const uint8_t *)text, len, &err);
        if (r < 0)
                return cli_usage_error(verb, "%s: %s (%s)", opt, err.msg, eq + 1);
        return 1;
}

int request_opt(struct request_opts *o, int c, const char *arg, const char *verb)
{
        struct rh_request *req = &o->req;
        struct rh_iface *f = &req->ifaces[0];
        struct rh_ipaddr ip;
        uint64_t v;
        int r = once(o, c, verb);

        if (r)
                return r;
        switch (c) {
        case OPT_REQUEST:
                o->json_path = arg;
                return 1;
        case OPT_PAYLOAD:
        case OPT_HYPEMAN_MAILBOX:
                return payload_opt(o, c == OPT_HYPEMAN_MAILBOX, arg, verb);
        case OPT_HYPEMAN_TOKEN:
                if (!rh_hfm_token_valid(arg))
                        return cli_usage_error(verb, "--hypeman-token: must be 1..%u bytes", RH_HFM_TOKEN_MAX);
                o->hypeman_token = arg;
                return 1;
        case OPT_SEQ:
                if (parse_u64(arg, &v) < 0 || v > UINT32_MAX)
                        return cli_usage_error(verb, "--seq: not a 32-bit number: '%s'", arg);
                req->seq = (uint32_t)v;
                return 1;
        case OPT_NONCE: {
                char *end;
                errno = 0;
                req->nonce = strtoull(arg, &end, 16);
                if (errno || *end || !*arg)
                        return cli_usage_error(verb, "--nonce: expected hexadecimal, got '%s'", arg);
                o->has_nonce = true;
                return 1;
        }
        }

        /* Everything below describes the request itself. */
        switch (c) {
        case OPT_IFACE:
                if (strlen(arg) == 0 || strlen(arg) >= RH_IFNAME_MAX)
                        return cli_usage_error(verb, "--iface: bad interface name '%s'", arg);
                f->match |= RH_MATCH_NAME;
                memcpy(f->name, arg, strlen(arg) + 1);
                o->has_iface = true;
                break;
        case OPT_MATCH_MAC:
                if (rh_mac_parse(arg, f->match_mac) < 0)
                        return cli_usage_error(verb, "--match-mac: not a MAC address: '%s'", arg);
                f->match |= RH_MATCH_MAC;
                o->has_iface = true;
                break;
        case OPT_MAC:
                if (rh_mac_parse(arg, f->mac) < 0)
                        return cli_usage_error(verb, "--mac: not a MAC address: '%s'", arg);
                f->has_mac = true;
                break;
        case OPT_MTU:
                if (parse_u64(arg, &v) < 0 || v < 68 || v > 65535)
                        return cli_usage_error(verb, "--mtu: expected 68..65535, got '%s'", arg);
                f->mtu = (uint32_t)v;
                break;
        case OPT_IP: {
                struct rh_addr *a;
                if (req->n_addrs >= RH_MAX_ADDRS)
                        return cli_usage_error(verb, "at most %d addresses", RH_MAX_ADDRS);
                a = &req->addrs[req->n_addrs];
                if (!strchr(arg, '/') || rh_ip_parse(arg, &ip, &a->prefix) < 0)
                        return cli_usage_error(verb, "--ip: expected ADDRESS/PREFIX, got '%s'", arg);
                a->iface = 0;
                a->family = ip.family;
                memcpy(a->addr, ip.addr, 16);
                req->n_addrs++;
                break;
        }
        case OPT_GATEWAY:
        case OPT_ROUTE:
                r = add_route(o, arg, verb, c == OPT_GATEWAY);
                if (r != 1)
                        return r;
                break;
        case OPT_DNS:
                if (req->n_dns >= RH_MAX_DNS)
                        return cli_usage_error(verb, "at most %d DNS servers", RH_MAX_DNS);
                if (rh_ip_parse(arg, &req->dns[req->n_dns], NULL) < 0)
                        return cli_usage_error(verb, "--dns: not an address: '%s'", arg);
                req->n_dns++;
                break;
        case OPT_SEARCH:
                if (req->n_search >= RH_MAX_SEARCH)
                        return cli_usage_error(verb, "at most %d search domains", RH_MAX_SEARCH);
                if (strlen(arg) > RH_SEARCH_MAX)
                        return cli_usage_error(verb, "--search: domain too long");
                memcpy(req->search[req->n_search++], arg, strlen(arg) + 1);
                break;
        case OPT_HOSTNAME:
                if (strlen(arg) > RH_HOSTNAME_MAX)
                        return cli_usage_error(verb, "--hostname: longer than %d characters", RH_HOSTNAME_MAX);
                memcpy(req->hostname, arg, strlen(arg) + 1);
                break;
        case OPT_ACK:
                if (rh_hostport_parse(arg, &req->ack_addr, &req->ack_port) < 0)
                        return cli_usage_error(verb, "--ack: expected HOST:PORT, [V6]:PORT or gateway:PORT, got '%s'", arg);
                req->has_ack_udp = true;
                break;
        case OPT_NO_ANNOUNCE:
                req->flags &= ~(uint32_t)RH_REQ_ANNOUNCE;
                break;
        case OPT_NO_FLUSH:
                req->flags &= ~(uint32_t)RH_REQ_FLUSH_NEIGH;
                break;
        case OPT_ACK_EARLY:
                req->flags |= RH_REQ_ACK_EARLY;
                break;
        case OPT_KEEP_ADDRS:
                req->flags &= ~(uint32_t)RH_REQ_REPLACE_ADDRS;
                break;
        default:
                return 0;
        }
        o->any_flag = true;
        return 1;
}

static bool is_zero_route(const struct rh_route *rt)
{
        static const uint8_t zero[16];

        return memcmp(rt->dst, zero, 16) == 0;
}

int payloads_finish(struct request_opts *o, const char *verb)
{
        /* --hypeman-token applies to every fork mailbox that names none (a JSON "token" wins). */
        if (o->hypeman_token && !o->payloads.n_hypeman)
                return cli_usage_error(verb, "--hypeman-token without --hypeman-mailbox");
        for (unsigned i = 0; i < o->payloads.n_hypeman; i++)
                if (!o->payloads.hypeman[i].token[0] && o->hypeman_token)
                        snprintf(o->payloads.hypeman[i].token, sizeof(o->payloads.hypeman[i].token), "%s",
                                 o->hypeman_token);
        return 0;
}

int request_finish(struct request_opts *o, const char *verb, struct rh_request *ret_req)
{
        struct rh_error err = {};
        struct rh_request req;
        int r;

        if (o->json_path) {
                _cleanup_free_ char *text = NULL;
                size_t len;

                if (o->any_flag)
                        return cli_usage_error(verb, "--request FILE and request flags exclude each other");
                r = read_file_alloc(o->json_path, 1 << 20, &text, &len);
                if (r < 0)
                        return cli_fail("%s: %s", o->json_path, strerror(-r));
                r = rh_request_from_json(text, len, &req, &err);
                if (r < 0)
                        return cli_fail("%s: %s", o->json_path, err.msg);
                r = rh_payload_set_from_json(text, len, &o->payloads, &err);
                if (r < 0)
                        return cli_fail("%s: %s", o->json_path, err.msg);
                if (o->req.seq)
                        req.seq = o->req.seq;
                if (o->has_nonce)
                        req.nonce = o->req.nonce;
        } else {
                if (!o->any_flag)
                        return cli_usage_error(verb, "no request given: use --ip/--mac/... or --request FILE");
                req = o->req;
                if (!o->has_iface) {
                        req.ifaces[0].match = RH_MATCH_NAME;
                        memcpy(req.ifaces[0].name, "eth0", 5);
                }
                for (unsigned i = 0; i < req.n_routes; i++)
                        for (unsigned j = 0; j < i; j++)
                                if (req.routes[i].dst_prefix == 0 && req.routes[j].dst_prefix == 0 &&
                                    req.routes[i].family == req.routes[j].family &&
                                    is_zero_route(&req.routes[i]) && is_zero_route(&req.routes[j]))
                                        return cli_usage_error(verb, "two default routes for one family");
                r = rh_request_validate(&req, &err);
                if (r < 0)
                        return cli_usage_error(verb, "%s", err.msg);
        }
        r = payloads_finish(o, verb);
        if (r != 0)
                return r;
        if (req.nonce == 0)
                req.nonce = random_nonce();
        *ret_req = req;
        return 0;
}
