/* SPDX-License-Identifier: MIT */
/*
 * The mailbox ABI: encode, decode and validate the arm header, the request
 * (TLV payload) and the ack record of the 4 KiB page described in
 * include/rehome/mailbox.h and docs/MAILBOX.md.
 *
 * Compiled into both librehome and rehome-agent: no allocation, no printing,
 * every byte from the page treated as hostile. All multi-byte fields are
 * read and written with explicit little-endian helpers so the code is right
 * on any host; the sequence fields use atomic loads/stores because the other
 * side may be running (a live guest, a host polling the ack).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "rehome/mailbox.h"
#include "unaligned.h"

/* ---- sequence fields ---- */

/*
 * The sequence fields are the publication points. They are naturally aligned
 * (offsets 0x300 and 0x0c0 of a page-aligned page), so a 32-bit atomic access
 * is a single untorn load/store; the fences order it against the body.
 */
static uint32_t seq_load(const uint8_t *p)
{
        uint32_t v;

        /* v holds the four bytes as stored; decode them as little-endian. */
        __atomic_load((const uint32_t *)(const void *)p, &v, __ATOMIC_ACQUIRE);
        return unaligned_read_le32(&v);
}

static void seq_store(uint8_t *p, uint32_t seq)
{
        uint32_t v;

        unaligned_write_le32(&v, seq);
        __atomic_store((uint32_t *)(void *)p, &v, __ATOMIC_RELEASE);
}

/* ---- names ---- */

static const char *const signal_names[] = {
        [RH_SIGNAL_NONE] = "none",
        [RH_SIGNAL_VMCLOCK] = "vmclock",
        [RH_SIGNAL_VMCLOCK_SPIN] = "vmclock-spin",
        [RH_SIGNAL_VMGENID_UEVENT] = "vmgenid-uevent",
        [RH_SIGNAL_VMGENID_KMSG] = "vmgenid-kmsg",
        [RH_SIGNAL_POLL] = "poll",
        [RH_SIGNAL_PREARM_POLL] = "prearm-poll",
};

static const char *const status_names[] = {
        [RH_ACK_NONE] = "none",       [RH_ACK_READ] = "read",     [RH_ACK_APPLIED] = "applied",
        [RH_ACK_INVALID] = "invalid", [RH_ACK_FAILED] = "failed",
};

const char *rh_signal_name(uint32_t signal)
{
        return signal <= RH_SIGNAL_MAX_ ? signal_names[signal] : "unknown";
}

const char *rh_ack_step_name(unsigned step)
{
        static const char *const names[RH_STEP_COUNT] = {
                [RH_STEP_VALIDATE] = "validate", [RH_STEP_ACK_READ] = "ack_read",
                [RH_STEP_CLOCK] = "clock",       [RH_STEP_LINK] = "link",
                [RH_STEP_ADDRS] = "addresses",   [RH_STEP_ROUTES] = "routes",
                [RH_STEP_NEIGH] = "neighbours",  [RH_STEP_ANNOUNCE] = "announce",
                [RH_STEP_HOSTNAME] = "hostname", [RH_STEP_DNS] = "dns",
                [RH_STEP_MACHINE_ID] = "machine_id", [RH_STEP_HOOKS] = "hooks",
        };
        return step < RH_STEP_COUNT ? names[step] : "unknown";
}

const char *rh_ack_status_name(uint32_t status)
{
        return status <= RH_ACK_STATUS_MAX_ ? status_names[status] : "unknown";
}

int rh_signal_from_name(const char *name, enum rh_signal *ret_signal)
{
        for (uint32_t i = 0; i <= RH_SIGNAL_MAX_; i++)
                if (name && strcmp(name, signal_names[i]) == 0) {
                        *ret_signal = (enum rh_signal)i;
                        return 0;
                }
        return -EINVAL;
}

/* ---- validation ---- */

static bool is_zero(const uint8_t *p, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (p[i])
                        return false;
        return true;
}

static bool family_ok(uint8_t family)
{
        return family == 4 || family == 6;
}

static uint8_t family_bits(uint8_t family)
{
        return family == 4 ? 32 : 128;
}

/* Bytes past the address width (v4 uses the first 4 of 16) must be zero. */
static bool addr_tail_ok(uint8_t family, const uint8_t addr[16])
{
        return family == 6 || is_zero(addr + 4, 12);
}

static bool addr_is_multicast(uint8_t family, const uint8_t addr[16])
{
        return family == 4 ? (addr[0] & 0xf0) == 0xe0 : addr[0] == 0xff;
}

/* Host bits past @prefix set? */
static bool has_host_bits(const uint8_t addr[16], uint8_t prefix, uint8_t bits)
{
        for (unsigned b = prefix; b < bits; b++)
                if (addr[b / 8] & (0x80 >> (b % 8)))
                        return true;
        return false;
}

/* Letters, digits, '-', '.'; no leading '-' or '.', no empty labels. */
static bool hostname_ok(const char *s, size_t max)
{
        size_t n = strnlen(s, max + 1), label = 0;

        if (n == 0 || n > max || s[0] == '-' || s[0] == '.')
                return false;
        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (c == '.') {
                        if (label == 0)
                                return false;
                        label = 0;
                        continue;
                }
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-'))
                        return false;
                if (++label > 63)
                        return false;
        }
        return true;
}

static bool ifname_ok(const char *s)
{
        size_t n = strnlen(s, RH_IFNAME_MAX);

        if (n == 0 || n >= RH_IFNAME_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (s[i] == '/' || s[i] == ':' || s[i] <= ' ' || s[i] > '~')
                        return false;
        return true;
}

static const char *fmt_ip(uint8_t family, const uint8_t addr[16], char *buf)
{
        struct rh_ipaddr ip = { .family = family };

        memcpy(ip.addr, addr, 16);
        return rh_ip_format(&ip, buf);
}

int rh_request_validate(const struct rh_request *req, struct rh_error *err)
{
        char a[46], m[18];

        /* The one layout of LIBREHOME_0.1 (docs/ABI.md): 0 or its size. */
        if (req->size != 0 && req->size != sizeof(struct rh_request))
                return rh_error_set(err, EINVAL, "struct rh_request of %" PRIu32 " bytes: this librehome knows %zu",
                                    req->size, sizeof(struct rh_request));
        if (req->n_ifaces == 0)
                return rh_error_set(err, EINVAL, "request names no interface");
        if (req->n_ifaces > RH_MAX_IFACES)
                return rh_error_set(err, E2BIG, "too many interfaces: %u (max %d)", req->n_ifaces,
                                    RH_MAX_IFACES);
        if (req->n_addrs > RH_MAX_ADDRS)
                return rh_error_set(err, E2BIG, "too many addresses: %u (max %d)", req->n_addrs,
                                    RH_MAX_ADDRS);
        if (req->n_routes > RH_MAX_ROUTES)
                return rh_error_set(err, E2BIG, "too many routes: %u (max %d)", req->n_routes,
                                    RH_MAX_ROUTES);
        if (req->n_dns > RH_MAX_DNS)
                return rh_error_set(err, E2BIG, "too many DNS servers: %u (max %d)", req->n_dns,
                                    RH_MAX_DNS);
        if (req->n_search > RH_MAX_SEARCH)
                return rh_error_set(err, E2BIG, "too many search domains: %u (max %d)",
                                    req->n_search, RH_MAX_SEARCH);

        for (unsigned i = 0; i < req->n_ifaces; i++) {
                const struct rh_iface *f = &req->ifaces[i];

                if (f->match == 0)
                        return rh_error_set(err, EINVAL, "interface %u: empty match (neither name nor MAC)", i);
                if (f->match & ~(RH_MATCH_NAME | RH_MATCH_MAC))
                        return rh_error_set(err, EINVAL, "interface %u: unknown match bits 0x%x", i, f->match);
                if ((f->match & RH_MATCH_NAME) && !ifname_ok(f->name))
                        return rh_error_set(err, EINVAL, "interface %u: invalid name", i);
                if ((f->match & RH_MATCH_MAC) && is_zero(f->match_mac, 6))
                        return rh_error_set(err, EINVAL, "interface %u: match MAC is all-zero", i);
                if (f->has_mac) {
                        if (f->mac[0] & 1)
                                return rh_error_set(err, EINVAL, "interface %u: MAC %s is not unicast", i,
                                                    rh_mac_format(f->mac, m));
                        if (is_zero(f->mac, 6))
                                return rh_error_set(err, EINVAL, "interface %u: MAC is all-zero", i);
                }
                if (f->mtu != 0 && (f->mtu < 68 || f->mtu > 65535))
                        return rh_error_set(err, EINVAL, "interface %u: MTU %u out of range 68..65535",
                                            i, f->mtu);
                for (unsigned j = 0; j < i; j++)
                        if (memcmp(&req->ifaces[j], f, sizeof(*f)) == 0)
                                return rh_error_set(err, EINVAL, "interface %u: duplicate of interface %u", i, j);
        }

        for (unsigned i = 0; i < req->n_addrs; i++) {
                const struct rh_addr *ad = &req->addrs[i];

                if (ad->iface >= req->n_ifaces)
                        return rh_error_set(err, EINVAL, "address %u: interface index %u out of range", i,
                                            ad->iface);
                if (!family_ok(ad->family))
                        return rh_error_set(err, EINVAL, "address %u: unknown family %u", i, ad->family);
                if (ad->prefix > family_bits(ad->family))
                        return rh_error_set(err, EINVAL, "address %u: prefix /%u exceeds %u", i, ad->prefix,
                                            family_bits(ad->family));
                if (!addr_tail_ok(ad->family, ad->addr))
                        return rh_error_set(err, EINVAL, "address %u: IPv4 address has stray bytes", i);
                if (is_zero(ad->addr, 16) || addr_is_multicast(ad->family, ad->addr))
                        return rh_error_set(err, EINVAL, "address %u: %s is not a unicast address", i,
                                            fmt_ip(ad->family, ad->addr, a));
        }

        for (unsigned i = 0; i < req->n_routes; i++) {
                const struct rh_route *r = &req->routes[i];

                if (r->iface >= req->n_ifaces)
                        return rh_error_set(err, EINVAL, "route %u: interface index %u out of range", i,
                                            r->iface);
                if (!family_ok(r->family))
                        return rh_error_set(err, EINVAL, "route %u: unknown family %u", i, r->family);
                if (r->dst_prefix > family_bits(r->family))
                        return rh_error_set(err, EINVAL, "route %u: prefix /%u exceeds %u", i, r->dst_prefix,
                                            family_bits(r->family));
                if (!addr_tail_ok(r->family, r->dst) || !addr_tail_ok(r->family, r->gateway))
                        return rh_error_set(err, EINVAL, "route %u: IPv4 address has stray bytes", i);
                if (has_host_bits(r->dst, r->dst_prefix, family_bits(r->family)))
                        return rh_error_set(err, EINVAL, "route %u: destination %s/%u has host bits set", i,
                                            fmt_ip(r->family, r->dst, a), r->dst_prefix);
                if (r->has_gateway &&
                    (is_zero(r->gateway, 16) || addr_is_multicast(r->family, r->gateway)))
                        return rh_error_set(err, EINVAL, "route %u: gateway %s is not a unicast address", i,
                                            fmt_ip(r->family, r->gateway, a));
                if (!r->has_gateway && !is_zero(r->gateway, 16))
                        return rh_error_set(err, EINVAL, "route %u: gateway bytes set without has_gateway", i);
        }

        for (unsigned i = 0; i < req->n_dns; i++) {
                if (!family_ok(req->dns[i].family) || !addr_tail_ok(req->dns[i].family, req->dns[i].addr))
                        return rh_error_set(err, EINVAL, "DNS server %u: invalid address", i);
                if (is_zero(req->dns[i].addr, 16))
                        return rh_error_set(err, EINVAL, "DNS server %u: unspecified address", i);
        }
        for (unsigned i = 0; i < req->n_search; i++)
                if (!hostname_ok(req->search[i], RH_SEARCH_MAX))
                        return rh_error_set(err, EINVAL, "search domain %u: invalid domain name", i);
        if (req->hostname[0] && !hostname_ok(req->hostname, RH_HOSTNAME_MAX))
                return rh_error_set(err, EINVAL, "invalid hostname");
        if (req->flags & ~(uint32_t)RH_REQ_FLAGS_KNOWN_)
                return rh_error_set(err, EINVAL, "unknown request flags 0x%x",
                                    req->flags & ~(uint32_t)RH_REQ_FLAGS_KNOWN_);
        if (req->has_ack_udp) {
                /* family 0: "send to the gateway of the default route" (hypeman V1 semantics). */
                if (req->ack_addr.family == 0 ? !is_zero(req->ack_addr.addr, 16)
                                              : (!family_ok(req->ack_addr.family) ||
                                                 !addr_tail_ok(req->ack_addr.family, req->ack_addr.addr) ||
                                                 is_zero(req->ack_addr.addr, 16)))
                        return rh_error_set(err, EINVAL, "ack address is invalid");
                if (req->ack_port == 0)
                        return rh_error_set(err, EINVAL, "ack port is 0");
        }
        if (req->payloads_count > 16u)
                return rh_error_set(err, EINVAL, "payload count %u out of range 0..16", req->payloads_count);
        if (req->payloads_count && req->payloads_len < req->payloads_count * 80u)
                return rh_error_set(err, EINVAL, "payload stream length %u too short for %u payloads",
                                    req->payloads_len, req->payloads_count);
        if (!req->payloads_count && (req->payloads_len || req->payloads_crc))
                return rh_error_set(err, EINVAL, "payload stream without payloads");
        return 0;
}

/* ---- TLV encode ---- */

#define TLV_IFACE_LEN 40u
#define TLV_ADDR_LEN 20u
#define TLV_ROUTE_LEN 40u
#define TLV_IP_LEN 20u
#define TLV_FLAGS_LEN 4u
#define TLV_REALTIME_LEN 8u
#define TLV_PAYLOADS_LEN 12u

struct tlv_writer {
        uint8_t *buf;
        size_t cap, len;
        bool overflow;
};

/* Reserve a record of @vlen bytes; returns its value pointer (zeroed) or NULL. */
static uint8_t *tlv_put(struct tlv_writer *w, uint16_t type, size_t vlen)
{
        size_t total = 4 + ((vlen + 3) & ~(size_t)3);
        uint8_t *p;

        if (w->overflow || total > w->cap - w->len) {
                w->overflow = true;
                return NULL;
        }
        p = w->buf + w->len;
        memset(p, 0, total);
        unaligned_write_le16(p, type);
        unaligned_write_le16(p + 2, (uint16_t)vlen);
        w->len += total;
        return p + 4;
}

static void tlv_put_ip(struct tlv_writer *w, uint16_t type, const struct rh_ipaddr *ip, uint16_t port)
{
        uint8_t *v = tlv_put(w, type, TLV_IP_LEN);

        if (!v)
                return;
        v[0] = ip->family;
        unaligned_write_le16(v + 2, port);
        memcpy(v + 4, ip->addr, 16);
}

static void tlv_put_string(struct tlv_writer *w, uint16_t type, const char *s)
{
        size_t n = strlen(s);
        uint8_t *v = tlv_put(w, type, n);

        if (v)
                memcpy(v, s, n);
}

int rh_request_encode(const struct rh_request *req, uint8_t *buf, size_t cap, size_t *ret_len,
                      struct rh_error *err)
{
        struct tlv_writer w = { .buf = buf, .cap = cap };
        uint8_t *v;
        int r;

        r = rh_request_validate(req, err);
        if (r < 0)
                return r;

        for (unsigned i = 0; i < req->n_ifaces; i++) {
                const struct rh_iface *f = &req->ifaces[i];

                v = tlv_put(&w, RH_TLV_IFACE, TLV_IFACE_LEN);
                if (!v)
                        break;
                v[0] = f->match;
                v[1] = f->has_mac;
                if (f->match & RH_MATCH_NAME)
                        memcpy(v + 4, f->name, strnlen(f->name, RH_IFNAME_MAX - 1));
                if (f->match & RH_MATCH_MAC)
                        memcpy(v + 20, f->match_mac, 6);
                if (f->has_mac)
                        memcpy(v + 26, f->mac, 6);
                unaligned_write_le32(v + 32, f->mtu);
        }
        for (unsigned i = 0; i < req->n_addrs; i++) {
                v = tlv_put(&w, RH_TLV_ADDR, TLV_ADDR_LEN);
                if (!v)
                        break;
                v[0] = req->addrs[i].iface;
                v[1] = req->addrs[i].family;
                v[2] = req->addrs[i].prefix;
                memcpy(v + 4, req->addrs[i].addr, 16);
        }
        for (unsigned i = 0; i < req->n_routes; i++) {
                const struct rh_route *rt = &req->routes[i];

                v = tlv_put(&w, RH_TLV_ROUTE, TLV_ROUTE_LEN);
                if (!v)
                        break;
                v[0] = rt->iface;
                v[1] = rt->family;
                v[2] = rt->dst_prefix;
                v[3] = rt->has_gateway;
                unaligned_write_le32(v + 4, rt->metric);
                memcpy(v + 8, rt->dst, 16);
                memcpy(v + 24, rt->gateway, 16);
        }
        for (unsigned i = 0; i < req->n_dns; i++)
                tlv_put_ip(&w, RH_TLV_DNS, &req->dns[i], 0);
        for (unsigned i = 0; i < req->n_search; i++)
                tlv_put_string(&w, RH_TLV_SEARCH, req->search[i]);
        if (req->hostname[0])
                tlv_put_string(&w, RH_TLV_HOSTNAME, req->hostname);
        if (req->flags) {
                v = tlv_put(&w, RH_TLV_FLAGS, TLV_FLAGS_LEN);
                if (v)
                        unaligned_write_le32(v, req->flags);
        }
        if (req->has_ack_udp)
                tlv_put_ip(&w, RH_TLV_ACK_UDP, &req->ack_addr, req->ack_port);
        if (req->realtime_ns) {
                v = tlv_put(&w, RH_TLV_REALTIME, TLV_REALTIME_LEN);
                if (v)
                        unaligned_write_le64(v, req->realtime_ns);
        }
        if (req->payloads_count) {
                v = tlv_put(&w, RH_TLV_PAYLOADS, TLV_PAYLOADS_LEN);
                if (v) {
                        unaligned_write_le32(v, req->payloads_count);
                        unaligned_write_le32(v + 4, req->payloads_len);
                        unaligned_write_le32(v + 8, req->payloads_crc);
                }
        }

        if (w.overflow)
                return rh_error_set(err, ENOBUFS, "encoded request does not fit in %zu bytes", cap);
        *ret_len = w.len;
        return 0;
}

/* ---- TLV decode ---- */

static int decode_string(const uint8_t *v, uint16_t vlen, size_t max, char *out, unsigned idx,
                         const char *what, struct rh_error *err)
{
        if (vlen == 0 || vlen > max)
                return rh_error_set(err, EBADMSG, "record %u: %s length %u out of range 1..%zu", idx, what,
                                    vlen, max);
        if (memchr(v, '\0', vlen))
                return rh_error_set(err, EBADMSG, "record %u: %s contains a NUL byte", idx, what);
        memcpy(out, v, vlen);
        out[vlen] = '\0';
        return 0;
}

static int decode_ip(const uint8_t *v, struct rh_ipaddr *ip)
{
        ip->family = v[0];
        memcpy(ip->addr, v + 4, 16);
        return unaligned_read_le16(v + 2);
}

int rh_request_decode(const uint8_t *buf, size_t len, struct rh_request *ret_req,
                      struct rh_error *err)
{
        static const uint16_t fixed_len[] = {
                [RH_TLV_IFACE] = TLV_IFACE_LEN, [RH_TLV_ADDR] = TLV_ADDR_LEN,
                [RH_TLV_ROUTE] = TLV_ROUTE_LEN, [RH_TLV_DNS] = TLV_IP_LEN,
                [RH_TLV_FLAGS] = TLV_FLAGS_LEN, [RH_TLV_ACK_UDP] = TLV_IP_LEN,
                [RH_TLV_REALTIME] = TLV_REALTIME_LEN, [RH_TLV_PAYLOADS] = TLV_PAYLOADS_LEN,
        };
        struct rh_request req = {};
        size_t off = 0;
        unsigned idx = 0;
        int r;

        if (len > RH_PAYLOAD_MAX)
                return rh_error_set(err, EMSGSIZE, "payload length %zu exceeds %u", len, RH_PAYLOAD_MAX);

        for (; off < len; idx++) {
                uint16_t type, vlen;
                size_t padded;
                const uint8_t *v;

                if (len - off < 4)
                        return rh_error_set(err, EMSGSIZE, "record %u: truncated header at offset %zu", idx, off);
                type = unaligned_read_le16(buf + off);
                vlen = unaligned_read_le16(buf + off + 2);
                padded = ((size_t)vlen + 3) & ~(size_t)3;
                if (padded > len - off - 4)
                        return rh_error_set(err, EMSGSIZE, "record %u: length %u runs past the payload end",
                                            idx, vlen);
                v = buf + off + 4;
                if (type < sizeof(fixed_len) / sizeof(fixed_len[0]) && fixed_len[type] && vlen != fixed_len[type])
                        return rh_error_set(err, EBADMSG, "record %u (type %u): length %u, expected %u", idx,
                                            type, vlen, fixed_len[type]);
                for (size_t p = vlen; p < padded; p++)
                        if (v[p])
                                return rh_error_set(err, EBADMSG, "record %u: nonzero padding", idx);

                switch (type) {
                case RH_TLV_IFACE: {
                        struct rh_iface *f;
                        if (req.n_ifaces >= RH_MAX_IFACES)
                                return rh_error_set(err, E2BIG, "too many interfaces (max %d)", RH_MAX_IFACES);
                        f = &req.ifaces[req.n_ifaces++];
                        f->match = v[0];
                        if (v[1] > 1 || unaligned_read_le16(v + 2) || unaligned_read_le32(v + 36))
                                return rh_error_set(err, EBADMSG, "record %u: reserved interface bytes set", idx);
                        f->has_mac = v[1];
                        if (f->match & RH_MATCH_NAME) {
                                const uint8_t *nul = memchr(v + 4, '\0', RH_IFNAME_MAX);
                                if (nul == NULL)
                                        return rh_error_set(err, EBADMSG, "record %u: interface name not terminated", idx);
                                /* Canonical form only: what the encoder writes, so decode(encode(x)) == x. */
                                if (!is_zero(nul, (size_t)(v + 4 + RH_IFNAME_MAX - nul)))
                                        return rh_error_set(err, EBADMSG, "record %u: interface name not NUL-padded", idx);
                                memcpy(f->name, v + 4, RH_IFNAME_MAX);
                        } else if (!is_zero(v + 4, RH_IFNAME_MAX))
                                return rh_error_set(err, EBADMSG, "record %u: name set without name match", idx);
                        if (!(f->match & RH_MATCH_MAC) && !is_zero(v + 20, 6))
                                return rh_error_set(err, EBADMSG, "record %u: match MAC set without MAC match", idx);
                        if (!f->has_mac && !is_zero(v + 26, 6))
                                return rh_error_set(err, EBADMSG, "record %u: MAC set without has_mac", idx);
                        memcpy(f->match_mac, v + 20, 6);
                        memcpy(f->mac, v + 26, 6);
                        f->mtu = unaligned_read_le32(v + 32);
                        break;
                }
                case RH_TLV_ADDR: {
                        struct rh_addr *ad;
                        if (req.n_addrs >= RH_MAX_ADDRS)
                                return rh_error_set(err, E2BIG, "too many addresses (max %d)", RH_MAX_ADDRS);
                        if (v[3])
                                return rh_error_set(err, EBADMSG, "record %u: reserved address byte set", idx);
                        ad = &req.addrs[req.n_addrs++];
                        ad->iface = v[0];
                        ad->family = v[1];
                        ad->prefix = v[2];
                        memcpy(ad->addr, v + 4, 16);
                        break;
                }
                case RH_TLV_ROUTE: {
                        struct rh_route *rt;
                        if (req.n_routes >= RH_MAX_ROUTES)
                                return rh_error_set(err, E2BIG, "too many routes (max %d)", RH_MAX_ROUTES);
                        if (v[3] > 1)
                                return rh_error_set(err, EBADMSG, "record %u: bad has_gateway %u", idx, v[3]);
                        rt = &req.routes[req.n_routes++];
                        rt->iface = v[0];
                        rt->family = v[1];
                        rt->dst_prefix = v[2];
                        rt->has_gateway = v[3];
                        rt->metric = unaligned_read_le32(v + 4);
                        memcpy(rt->dst, v + 8, 16);
                        memcpy(rt->gateway, v + 24, 16);
                        break;
                }
                case RH_TLV_DNS:
                        if (req.n_dns >= RH_MAX_DNS)
                                return rh_error_set(err, E2BIG, "too many DNS servers (max %d)", RH_MAX_DNS);
                        if (v[1] || v[2] || v[3])
                                return rh_error_set(err, EBADMSG, "record %u: reserved DNS bytes set", idx);
                        decode_ip(v, &req.dns[req.n_dns++]);
                        break;
                case RH_TLV_SEARCH:
                        if (req.n_search >= RH_MAX_SEARCH)
                                return rh_error_set(err, E2BIG, "too many search domains (max %d)", RH_MAX_SEARCH);
                        r = decode_string(v, vlen, RH_SEARCH_MAX, req.search[req.n_search++], idx,
                                          "search domain", err);
                        if (r < 0)
                                return r;
                        break;
                case RH_TLV_HOSTNAME:
                        if (req.hostname[0])
                                return rh_error_set(err, EBADMSG, "record %u: second hostname", idx);
                        r = decode_string(v, vlen, RH_HOSTNAME_MAX, req.hostname, idx, "hostname", err);
                        if (r < 0)
                                return r;
                        break;
                case RH_TLV_FLAGS:
                        req.flags |= unaligned_read_le32(v);
                        break;
                case RH_TLV_ACK_UDP:
                        if (req.has_ack_udp)
                                return rh_error_set(err, EBADMSG, "record %u: second ack address", idx);
                        if (v[1])
                                return rh_error_set(err, EBADMSG, "record %u: reserved ack byte set", idx);
                        req.has_ack_udp = true;
                        req.ack_port = (uint16_t)decode_ip(v, &req.ack_addr);
                        break;
                case RH_TLV_REALTIME:
                        if (req.realtime_ns)
                                return rh_error_set(err, EBADMSG, "record %u: second realtime", idx);
                        req.realtime_ns = unaligned_read_le64(v);
                        if (req.realtime_ns == 0)
                                return rh_error_set(err, EBADMSG, "record %u: realtime 0", idx);
                        break;
                case RH_TLV_PAYLOADS:
                        if (req.payloads_count)
                                return rh_error_set(err, EBADMSG, "record %u: second payloads record", idx);
                        req.payloads_count = unaligned_read_le32(v);
                        req.payloads_len = unaligned_read_le32(v + 4);
                        req.payloads_crc = unaligned_read_le32(v + 8);
                        if (req.payloads_count == 0)
                                return rh_error_set(err, EBADMSG, "record %u: payload count 0", idx);
                        break;
                default:
                        return rh_error_set(err, EBADMSG, "record %u: unknown type %u", idx, type);
                }
                off += 4 + padded;
        }

        r = rh_request_validate(&req, err);
        if (r < 0)
                return r;
        req.size = sizeof(req);
        *ret_req = req;
        return 0;
}

/* ---- arm header ---- */

void rh_mailbox_arm_write(uint8_t *page, const struct rh_arm *arm)
{
        uint8_t *h = page + RH_OFF_ARM;

        memset(h, 0, sizeof(struct rh_wire_arm));
        memcpy(h, RH_MAILBOX_MAGIC, RH_MAILBOX_MAGIC_LEN);
        unaligned_write_le16(h + 0x08, RH_MAILBOX_ABI_MAJOR);
        unaligned_write_le16(h + 0x0a, RH_MAILBOX_ABI_MINOR);
        unaligned_write_le32(h + 0x0c, arm->arm_generation);
        memcpy(h + 0x10, arm->token, RH_TOKEN_LEN);
        unaligned_write_le64(h + 0x20, arm->gpa);
        unaligned_write_le32(h + 0x28, arm->agent_version);
        unaligned_write_le32(h + 0x2c, arm->caps);
        unaligned_write_le32(h + 0x30, RH_MAILBOX_SIZE);
        unaligned_write_le32(h + 0x34, arm->payload_dir_pfn);
        unaligned_write_le32(h + 0x38, arm->payload_pages);
        unaligned_write_le32(h + 0x3c, rh_crc32c(0, h, 0x3c));
        memset(page + RH_OFF_PREARM_CONFIRM, 0, sizeof(struct rh_wire_prearm_confirm));
}

int rh_mailbox_arm_read(const uint8_t *page, size_t len, struct rh_arm *ret_arm,
                        struct rh_error *err)
{
        const uint8_t *h = page + RH_OFF_ARM;
        struct rh_arm arm = {};

        if (len < RH_MAILBOX_SIZE)
                return rh_error_set(err, EMSGSIZE, "mailbox truncated: %zu of %u bytes", len,
                                    RH_MAILBOX_SIZE);
        if (memcmp(h, RH_MAILBOX_MAGIC, RH_MAILBOX_MAGIC_LEN) != 0)
                return rh_error_set(err, ENOMSG, "no mailbox magic");
        arm.abi_major = unaligned_read_le16(h + 0x08);
        arm.abi_minor = unaligned_read_le16(h + 0x0a);
        if (arm.abi_major != RH_MAILBOX_ABI_MAJOR)
                return rh_error_set(err, EPROTONOSUPPORT, "mailbox ABI %u.%u, this side speaks %u.x",
                                    arm.abi_major, arm.abi_minor, RH_MAILBOX_ABI_MAJOR);
        if (unaligned_read_le32(h + 0x3c) != rh_crc32c(0, h, 0x3c))
                return rh_error_set(err, EBADMSG, "arm header CRC mismatch");
        if (unaligned_read_le32(h + 0x30) != RH_MAILBOX_SIZE)
                return rh_error_set(err, EBADMSG, "arm header page size %u, expected %u", unaligned_read_le32(h + 0x30),
                                    RH_MAILBOX_SIZE);
        arm.arm_generation = unaligned_read_le32(h + 0x0c);
        memcpy(arm.token, h + 0x10, RH_TOKEN_LEN);
        arm.gpa = unaligned_read_le64(h + 0x20);
        arm.agent_version = unaligned_read_le32(h + 0x28);
        arm.caps = unaligned_read_le32(h + 0x2c);
        arm.payload_dir_pfn = unaligned_read_le32(h + 0x34);
        arm.payload_pages = unaligned_read_le32(h + 0x38);
        *ret_arm = arm;
        return 0;
}

bool rh_mailbox_matches(const uint8_t *page, size_t len, const uint8_t token[RH_TOKEN_LEN])
{
        struct rh_arm arm;

        if (rh_mailbox_arm_read(page, len, &arm, NULL) < 0)
                return false;
        return !token || memcmp(arm.token, token, RH_TOKEN_LEN) == 0;
}

/* ---- request ---- */

int rh_mailbox_write_request(uint8_t *page, const struct rh_request *req, struct rh_error *err)
{
        uint8_t payload[RH_PAYLOAD_MAX], *h = page + RH_OFF_REQUEST;
        size_t len;
        int r;

        if (req->seq == 0)
                return rh_error_set(err, EINVAL, "request sequence number 0 is reserved");
        r = rh_request_encode(req, payload, sizeof(payload), &len, err);
        if (r < 0)
                return r;

        /*
         * Unpublish first: the seq is outside the CRC, so a reader that loaded
         * the old seq and then copied a complete new body would otherwise see
         * the old seq twice and a good CRC, and pair the old seq with the new
         * request. With seq 0 stored (and ordered) before the body changes,
         * such a reader's second load sees 0 or the new seq: -EAGAIN.
         */
        seq_store(h, 0);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        memcpy(page + RH_OFF_PAYLOAD, payload, len);
        memset(page + RH_OFF_PAYLOAD + len, 0, RH_PAYLOAD_MAX - len);
        unaligned_write_le64(h + 0x08, req->nonce);
        unaligned_write_le32(h + 0x10, (uint32_t)len);
        unaligned_write_le16(h + 0x14, RH_PAYLOAD_VERSION);
        unaligned_write_le16(h + 0x16, 0);
        unaligned_write_le64(h + 0x18, 0);
        unaligned_write_le32(h + 0x04, rh_crc32c(0, h + 0x08, 0x18 + len));
        /* Publication point: everything above must be visible before the seq. */
        seq_store(h, req->seq);
        return 0;
}

int rh_mailbox_read_request(const uint8_t *page, struct rh_request *ret_req, uint32_t *ret_seq,
                            uint64_t *ret_nonce, struct rh_error *err)
{
        uint8_t copy[RH_MAILBOX_SIZE - RH_OFF_REQUEST];
        const uint8_t *h = page + RH_OFF_REQUEST;
        uint32_t seq, seq2, len, crc;
        uint16_t version;
        struct rh_request req;
        int r;

        seq = seq_load(h);
        if (seq == 0)
                return rh_error_set(err, ENODATA, "no request in the mailbox");
        /* Copy once, then validate only the copy: the page may change under us. */
        memcpy(copy, h, sizeof(copy));
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        seq2 = seq_load(h);
        if (seq2 != seq)
                return rh_error_set(err, EAGAIN, "request changed while reading (seq %u -> %u)", seq, seq2);

        len = unaligned_read_le32(copy + 0x10);
        if (len > RH_PAYLOAD_MAX)
                return rh_error_set(err, EMSGSIZE, "request payload length %u exceeds %u", len,
                                    RH_PAYLOAD_MAX);
        crc = rh_crc32c(0, copy + 0x08, 0x18 + len);
        if (crc != unaligned_read_le32(copy + 0x04))
                return rh_error_set(err, EBADMSG, "request CRC32C mismatch: stored 0x%08x, computed 0x%08x",
                                    unaligned_read_le32(copy + 0x04), crc);
        /* From here the header is authentic: the agent can answer this seq/nonce. */
        if (ret_seq)
                *ret_seq = seq;
        if (ret_nonce)
                *ret_nonce = unaligned_read_le64(copy + 0x08);
        version = unaligned_read_le16(copy + 0x14);
        if (version != RH_PAYLOAD_VERSION)
                return rh_error_set(err, EPROTONOSUPPORT, "request payload version %u, supported %u",
                                    version, RH_PAYLOAD_VERSION);
        r = rh_request_decode(copy + 0x20, len, &req, err);
        if (r < 0)
                return r;
        req.seq = seq;
        req.nonce = unaligned_read_le64(copy + 0x08);
        *ret_req = req;
        return 0;
}

/* ---- ack ---- */

void rh_mailbox_write_ack(uint8_t *page, const struct rh_ack *ack)
{
        uint8_t rec[sizeof(struct rh_wire_ack)] = {};
        size_t n = strnlen(ack->error, RH_ACK_ERROR_MAX - 1);

        unaligned_write_le64(rec + 0x08, ack->nonce);
        unaligned_write_le32(rec + 0x10, ack->status);
        unaligned_write_le32(rec + 0x14, ack->signal);
        unaligned_write_le32(rec + 0x18, ack->applied);
        unaligned_write_le32(rec + 0x1c, (uint32_t)ack->error_code);
        unaligned_write_le64(rec + 0x20, ack->t_signal_ns);
        unaligned_write_le64(rec + 0x28, ack->t_read_ns);
        unaligned_write_le64(rec + 0x30, ack->t_applied_ns);
        unaligned_write_le64(rec + 0x38, ack->t_ack_ns);
        unaligned_write_le32(rec + 0x40, ack->arm_generation);
        unaligned_write_le32(rec + 0x44, ack->payloads_total);
        unaligned_write_le32(rec + 0x48, ack->payloads_delivered);
        memcpy(rec + 0x160, ack->payload_errno, sizeof(ack->payload_errno));
        memcpy(rec + 0x60, ack->error, n);
        if (ack->has_stats) {
                unaligned_write_le32(rec + 0x170, RH_ACK_STATS_MAGIC);
                unaligned_write_le32(rec + 0x174, ack->syscalls);
                unaligned_write_le32(rec + 0x178, ack->nl_round_trips);
                unaligned_write_le32(rec + 0x17c, RH_STEP_COUNT);
                for (unsigned i = 0; i < RH_STEP_COUNT; i++)
                        unaligned_write_le32(rec + 0x180 + 4 * i, ack->step_ns[i]);
        }
        unaligned_write_le32(rec + 0x04, rh_crc32c(0, rec + 0x08, sizeof(rec) - 0x08));
        /* Unpublish first, for the reason given in rh_mailbox_write_request. */
        seq_store(page + RH_OFF_ACK, 0);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        memcpy(page + RH_OFF_ACK + 4, rec + 4, sizeof(rec) - 4);
        seq_store(page + RH_OFF_ACK, ack->seq);
}

int rh_mailbox_read_ack(const uint8_t *page, struct rh_ack *ret_ack, struct rh_error *err)
{
        uint8_t rec[sizeof(struct rh_wire_ack)];
        struct rh_ack ack = {};
        uint32_t seq, crc;

        seq = seq_load(page + RH_OFF_ACK);
        if (seq == 0)
                return rh_error_set(err, ENODATA, "no ack yet");
        memcpy(rec, page + RH_OFF_ACK, sizeof(rec));
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (seq_load(page + RH_OFF_ACK) != seq)
                return rh_error_set(err, EAGAIN, "ack changed while reading");
        crc = rh_crc32c(0, rec + 0x08, sizeof(rec) - 0x08);
        if (crc != unaligned_read_le32(rec + 0x04))
                return rh_error_set(err, EBADMSG, "ack CRC32C mismatch: stored 0x%08x, computed 0x%08x",
                                    unaligned_read_le32(rec + 0x04), crc);
        ack.seq = seq;
        ack.nonce = unaligned_read_le64(rec + 0x08);
        ack.status = unaligned_read_le32(rec + 0x10);
        ack.signal = unaligned_read_le32(rec + 0x14);
        ack.applied = unaligned_read_le32(rec + 0x18);
        ack.error_code = (int32_t)unaligned_read_le32(rec + 0x1c);
        ack.t_signal_ns = unaligned_read_le64(rec + 0x20);
        ack.t_read_ns = unaligned_read_le64(rec + 0x28);
        ack.t_applied_ns = unaligned_read_le64(rec + 0x30);
        ack.t_ack_ns = unaligned_read_le64(rec + 0x38);
        ack.arm_generation = unaligned_read_le32(rec + 0x40);
        ack.payloads_total = unaligned_read_le32(rec + 0x44);
        ack.payloads_delivered = unaligned_read_le32(rec + 0x48);
        memcpy(ack.payload_errno, rec + 0x160, sizeof(ack.payload_errno));
        if (ack.payloads_total > 16u || (ack.payloads_delivered >> ack.payloads_total) != 0)
                return rh_error_set(err, EBADMSG, "ack payload counts out of range (%u, 0x%x)", ack.payloads_total,
                                    ack.payloads_delivered);
        if (ack.status > RH_ACK_STATUS_MAX_)
                return rh_error_set(err, EBADMSG, "ack status %u out of range", ack.status);
        if (ack.signal > RH_SIGNAL_MAX_)
                return rh_error_set(err, EBADMSG, "ack signal %u out of range", ack.signal);
        if (memchr(rec + 0x60, '\0', RH_ACK_ERROR_MAX) == NULL)
                return rh_error_set(err, EBADMSG, "ack error text not terminated");
        memcpy(ack.error, rec + 0x60, RH_ACK_ERROR_MAX);
        if (unaligned_read_le32(rec + 0x170) == RH_ACK_STATS_MAGIC) {
                /* A later agent may have more steps: read the ones we know. */
                uint32_t n = unaligned_read_le32(rec + 0x17c);

                if (n > 40)
                        return rh_error_set(err, EBADMSG, "ack statistics: %u steps", n);
                ack.has_stats = true;
                ack.syscalls = unaligned_read_le32(rec + 0x174);
                ack.nl_round_trips = unaligned_read_le32(rec + 0x178);
                for (unsigned i = 0; i < RH_STEP_COUNT && i < n; i++)
                        ack.step_ns[i] = unaligned_read_le32(rec + 0x180 + 4 * i);
        }
        *ret_ack = ack;
        return 0;
}
