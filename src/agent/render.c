/* SPDX-License-Identifier: MIT */
/*
 * The text the agent hands to the guest's own network managers
 * (docs/AGENT.md, "Guest integration"): a systemd-networkd runtime .network
 * for one link, the iface stanzas of an ifupdown /etc/network/interfaces
 * with the new identity in them, and /etc/hosts with the new host name.
 * Pure functions: no I/O, no agent state, no allocation; each renders into
 * a caller's buffer and returns the length, so tests/unit/test-handoff-render.c
 * can compare exact text.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"

struct out {
        char *buf;
        size_t cap, len;
        bool full;
};

static __attribute__((format(printf, 2, 3))) void put(struct out *o, const char *fmt, ...)
{
        va_list ap;
        int n;

        if (o->full)
                return;
        va_start(ap, fmt);
        n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= o->cap - o->len) {
                o->full = true;
                return;
        }
        o->len += (size_t)n;
}

static void put_mem(struct out *o, const char *s, size_t n)
{
        if (o->full)
                return;
        if (n >= o->cap - o->len) {
                o->full = true;
                return;
        }
        memcpy(o->buf + o->len, s, n);
        o->len += n;
        o->buf[o->len] = '\0';
}

static int out_end(struct out *o)
{
        return o->full ? -ENOBUFS : (int)o->len;
}

static const char *ntop(uint8_t family, const uint8_t *addr, char buf[INET6_ADDRSTRLEN])
{
        return inet_ntop(family == 4 ? AF_INET : AF_INET6, addr, buf, INET6_ADDRSTRLEN);
}

static bool is_default(const struct rh_route *rt)
{
        return rt->dst_prefix == 0;
}

int render_networkd(const struct rh_request *req, unsigned iface, const char *ifname, char *buf, size_t cap)
{
        const struct rh_iface *ifc = &req->ifaces[iface];
        struct out o = {buf, cap, 0, cap == 0};
        char ip[INET6_ADDRSTRLEN], mac[18];

        if (cap)
                buf[0] = '\0';
        put(&o, "# Written by rehome-agent: this clone's identity for %s (docs/AGENT.md).\n"
                "# Its name sorts before the template's .network, so systemd-networkd\n"
                "# applies this file, not that one, to %s.\n",
            ifname, ifname);
        put(&o, "[Match]\nName=%s\n", ifname);
        if (ifc->has_mac || ifc->mtu) {
                put(&o, "\n[Link]\n");
                if (ifc->has_mac)
                        put(&o, "MACAddress=%s\n", rh_mac_format(ifc->mac, mac));
                if (ifc->mtu)
                        put(&o, "MTUBytes=%u\n", ifc->mtu);
        }
        put(&o, "\n[Network]\n");
        for (unsigned i = 0; i < req->n_addrs; i++)
                if (req->addrs[i].iface == iface)
                        put(&o, "Address=%s/%u\n", ntop(req->addrs[i].family, req->addrs[i].addr, ip),
                            req->addrs[i].prefix);
        for (unsigned i = 0; i < req->n_routes; i++) {
                const struct rh_route *rt = &req->routes[i];

                if (rt->iface == iface && is_default(rt) && rt->has_gateway && rt->metric == 0)
                        put(&o, "Gateway=%s\n", ntop(rt->family, rt->gateway, ip));
        }
        for (unsigned i = 0; i < req->n_dns; i++)
                put(&o, "DNS=%s\n", rh_ip_format(&req->dns[i], ip));
        if (req->n_search) {
                put(&o, "Domains=");
                for (unsigned i = 0; i < req->n_search; i++)
                        put(&o, "%s%s", i ? " " : "", req->search[i]);
                put(&o, "\n");
        }
        for (unsigned i = 0; i < req->n_routes; i++) {
                const struct rh_route *rt = &req->routes[i];

                if (rt->iface != iface || (is_default(rt) && rt->has_gateway && rt->metric == 0))
                        continue;
                put(&o, "\n[Route]\nDestination=%s/%u\n", ntop(rt->family, rt->dst, ip), rt->dst_prefix);
                if (rt->has_gateway)
                        put(&o, "Gateway=%s\n", ntop(rt->family, rt->gateway, ip));
                if (rt->metric)
                        put(&o, "Metric=%u\n", rt->metric);
        }
        return out_end(&o);
}

/* ---- ifupdown ------------------------------------------------------ */

/* The first word of @line (leading blanks skipped) into @w (cut to @cap). */
static const char *first_word(const char *line, const char *end, char *w, size_t cap)
{
        size_t n = 0;

        while (line < end && (*line == ' ' || *line == '\t'))
                line++;
        while (line < end && *line != ' ' && *line != '\t' && *line != '\n' && *line != '\r') {
                if (n + 1 < cap)
                        w[n++] = *line;
                line++;
        }
        w[n] = '\0';
        return line;
}

/* Words that start a new stanza in interfaces(5) (busybox knows a subset). */
static bool starts_stanza(const char *w)
{
        return strcmp(w, "iface") == 0 || strcmp(w, "auto") == 0 || strncmp(w, "allow-", 6) == 0 ||
               strcmp(w, "mapping") == 0 || strcmp(w, "source") == 0 || strcmp(w, "source-directory") == 0 ||
               strcmp(w, "rename") == 0 || strcmp(w, "no-auto-down") == 0 || strcmp(w, "no-scripts") == 0;
}

/* Options of a static stanza the identity owns; every other line is kept. */
static bool owned_option(const char *w)
{
        return strcmp(w, "address") == 0 || strcmp(w, "netmask") == 0 || strcmp(w, "gateway") == 0 ||
               strcmp(w, "mtu") == 0 || strcmp(w, "hwaddress") == 0 || strcmp(w, "dns-nameservers") == 0 ||
               strcmp(w, "dns-search") == 0 || strcmp(w, "broadcast") == 0;
}

static void prefix_to_netmask(unsigned prefix, char buf[16])
{
        uint32_t m = prefix ? ~0u << (32 - prefix) : 0;

        snprintf(buf, 16, "%u.%u.%u.%u", m >> 24, (m >> 16) & 0xff, (m >> 8) & 0xff, m & 0xff);
}

/* The identity's option lines for `iface IFNAME inet|inet6 static`. */
static void put_stanza_options(struct out *o, const struct rh_request *req, unsigned iface, uint8_t family,
                               bool had_hwaddress, bool had_dns, bool had_search)
{
        const struct rh_iface *ifc = &req->ifaces[iface];
        char ip[INET6_ADDRSTRLEN], mask[16], mac[18];

        for (unsigned i = 0; i < req->n_addrs; i++) {
                const struct rh_addr *ad = &req->addrs[i];

                if (ad->iface != iface || ad->family != family)
                        continue;
                put(o, "\taddress %s\n", ntop(family, ad->addr, ip));
                if (family == 4) {
                        prefix_to_netmask(ad->prefix, mask);
                        put(o, "\tnetmask %s\n", mask);
                } else {
                        put(o, "\tnetmask %u\n", ad->prefix);
                }
                break; /* one address per stanza: what every ifupdown understands */
        }
        for (unsigned i = 0; i < req->n_routes; i++) {
                const struct rh_route *rt = &req->routes[i];

                if (rt->iface == iface && rt->family == family && is_default(rt) && rt->has_gateway) {
                        put(o, "\tgateway %s\n", ntop(family, rt->gateway, ip));
                        break;
                }
        }
        if (family == 4 && ifc->mtu)
                put(o, "\tmtu %u\n", ifc->mtu);
        if (had_hwaddress && ifc->has_mac)
                put(o, "\thwaddress ether %s\n", rh_mac_format(ifc->mac, mac));
        if (had_dns && req->n_dns) {
                put(o, "\tdns-nameservers");
                for (unsigned i = 0; i < req->n_dns; i++)
                        put(o, " %s", rh_ip_format(&req->dns[i], ip));
                put(o, "\n");
        }
        if (had_search && req->n_search) {
                put(o, "\tdns-search");
                for (unsigned i = 0; i < req->n_search; i++)
                        put(o, " %s", req->search[i]);
                put(o, "\n");
        }
}

static bool request_has_family(const struct rh_request *req, unsigned iface, uint8_t family)
{
        for (unsigned i = 0; i < req->n_addrs; i++)
                if (req->addrs[i].iface == iface && req->addrs[i].family == family)
                        return true;
        return false;
}

/* Is [line, end) `iface IFNAME inet|inet6 static`? Sets *ret_family. */
static bool is_static_stanza(const char *line, const char *end, const char *ifname, uint8_t *ret_family)
{
        char w[4][32];
        const char *p = line;

        for (int i = 0; i < 4; i++)
                p = first_word(p, end, w[i], sizeof(w[i]));
        if (strcmp(w[0], "iface") != 0 || strcmp(w[1], ifname) != 0 || strcmp(w[3], "static") != 0)
                return false;
        if (strcmp(w[2], "inet") == 0)
                *ret_family = 4;
        else if (strcmp(w[2], "inet6") == 0)
                *ret_family = 6;
        else
                return false;
        return true;
}

int render_ifupdown(const char *old, size_t old_len, const struct rh_request *req, unsigned iface,
                    const char *ifname, char *buf, size_t cap)
{
        struct out o = {buf, cap, 0, cap == 0};
        const char *p = old, *end = old + old_len;
        bool found = false;

        if (cap)
                buf[0] = '\0';
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                const char *eol = nl ? nl + 1 : end;
                uint8_t family;

                if (!is_static_stanza(p, eol, ifname, &family) || !request_has_family(req, iface, family)) {
                        put_mem(&o, p, (size_t)(eol - p));
                        if (!nl && eol > p)
                                put(&o, "\n");
                        p = eol;
                        continue;
                }
                /* The stanza: its header, the identity's options, then the
                 * options it does not own (up/down scripts, ...) as they were. */
                const char *body = eol, *q = eol;
                bool had_hw = false, had_dns = false, had_search = false;

                found = true;
                while (q < end) {
                        const char *qnl = memchr(q, '\n', (size_t)(end - q));
                        const char *qeol = qnl ? qnl + 1 : end;
                        char w[32];

                        first_word(q, qeol, w, sizeof(w));
                        if (starts_stanza(w))
                                break;
                        had_hw |= strcmp(w, "hwaddress") == 0;
                        had_dns |= strcmp(w, "dns-nameservers") == 0;
                        had_search |= strcmp(w, "dns-search") == 0;
                        q = qeol;
                }
                put_mem(&o, p, (size_t)(eol - p));
                if (!nl)
                        put(&o, "\n");
                put_stanza_options(&o, req, iface, family, had_hw, had_dns, had_search);
                for (const char *r = body; r < q;) {
                        const char *rnl = memchr(r, '\n', (size_t)(q - r));
                        const char *reol = rnl ? rnl + 1 : q;
                        char w[32];

                        first_word(r, reol, w, sizeof(w));
                        if (!owned_option(w)) {
                                put_mem(&o, r, (size_t)(reol - r));
                                if (!rnl && reol > r)
                                        put(&o, "\n");
                        }
                        r = reol;
                }
                p = q;
        }
        if (!found)
                return -ENOENT;
        return out_end(&o);
}

/* ---- /etc/hosts ---------------------------------------------------- */

static bool is_blank(char c)
{
        return c == ' ' || c == '\t';
}

/* @tok (length @n) names @name, or is @name.DOMAIN. */
static bool names_host(const char *tok, size_t n, const char *name, size_t name_len)
{
        return name_len && n >= name_len && memcmp(tok, name, name_len) == 0 &&
               (n == name_len || tok[name_len] == '.');
}

int render_hosts(const char *old, size_t old_len, const char *old_name, const char *new_name, char *buf,
                 size_t cap)
{
        struct out o = {buf, cap, 0, cap == 0};
        const char *p = old, *end = old + old_len;
        size_t old_n = old_name ? strlen(old_name) : 0;
        bool seen_127 = false, renamed = false;

        if (cap)
                buf[0] = '\0';
        if (old_n && strncmp(old_name, "localhost", 9) == 0)
                old_n = 0; /* never rename localhost */
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                const char *eol = nl ? nl : end;
                const char *s = p, *hash = memchr(p, '#', (size_t)(eol - p));
                const char *data_end = hash ? hash : eol;
                size_t addr_len;
                bool is_127 = false, any = false;

                while (s < data_end && is_blank(*s))
                        s++;
                addr_len = 0;
                while (s + addr_len < data_end && !is_blank(s[addr_len]))
                        addr_len++;
                if (addr_len == 0) { /* blank or comment: as it was */
                        put_mem(&o, p, (size_t)(eol - p));
                        put(&o, "\n");
                        p = nl ? nl + 1 : end;
                        continue;
                }
                is_127 = addr_len == 9 && memcmp(s, "127.0.1.1", 9) == 0;
                for (const char *t = s + addr_len; t < data_end;) {
                        size_t n = 0;
                        while (t < data_end && is_blank(*t))
                                t++;
                        while (t + n < data_end && !is_blank(t[n]))
                                n++;
                        if (n && names_host(t, n, old_name, old_n))
                                any = true;
                        t += n;
                }
                if (!is_127 && !any) {
                        put_mem(&o, p, (size_t)(eol - p));
                        put(&o, "\n");
                } else if (is_127 && !any) {
                        /* The Debian line for this machine's own name. */
                        put(&o, "127.0.1.1\t%s", new_name);
                        if (hash)
                                put(&o, " %.*s", (int)(eol - hash), hash);
                        put(&o, "\n");
                } else {
                        /* Every name of the old host becomes the new one's,
                         * keeping a domain suffix; spacing kept. */
                        put_mem(&o, p, (size_t)(s + addr_len - p));
                        for (const char *t = s + addr_len; t < data_end;) {
                                const char *b = t;
                                size_t n = 0;
                                while (t < data_end && is_blank(*t))
                                        t++;
                                put_mem(&o, b, (size_t)(t - b));
                                while (t + n < data_end && !is_blank(t[n]))
                                        n++;
                                if (n && names_host(t, n, old_name, old_n)) {
                                        put(&o, "%s", new_name);
                                        put_mem(&o, t + old_n, n - old_n);
                                } else {
                                        put_mem(&o, t, n);
                                }
                                t += n;
                        }
                        put_mem(&o, data_end, (size_t)(eol - data_end));
                        put(&o, "\n");
                }
                seen_127 |= is_127;
                renamed |= any;
                p = nl ? nl + 1 : end;
        }
        if (!seen_127 && !renamed)
                put(&o, "127.0.1.1\t%s\n", new_name);
        return out_end(&o);
}
