/* SPDX-License-Identifier: MIT */
/*
 * A request as JSON: the file format of `rehome patch --request FILE` and
 * `rehome fork --request FILE`, and the shape of --json output. Parsing is
 * strict (unknown keys and wrong types are errors naming the key) and ends
 * with rh_request_validate, so a document that parses is one the agent will
 * accept.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rehome/request.h"

/* jansson >= 2.9 ships json_decrefp for exactly this. */
#define _cleanup_json_ __attribute__((cleanup(json_decrefp)))

static int want(json_t *v, json_type type, const char *what, struct rh_error *err)
{
        static const char *const names[] = {
                [JSON_OBJECT] = "an object", [JSON_ARRAY] = "an array", [JSON_STRING] = "a string",
                [JSON_INTEGER] = "an integer", [JSON_REAL] = "a number", [JSON_TRUE] = "a boolean",
                [JSON_FALSE] = "a boolean", [JSON_NULL] = "null",
        };

        if (type == JSON_TRUE ? json_is_boolean(v) : json_typeof(v) == type)
                return 0;
        return rh_error_set(err, EBADMSG, "%s must be %s", what, names[type]);
}

static int check_keys(json_t *obj, const char *const *allowed, const char *what, struct rh_error *err)
{
        const char *key;
        json_t *v;

        json_object_foreach(obj, key, v) {
                bool ok = false;
                for (size_t i = 0; allowed[i]; i++)
                        ok = ok || strcmp(key, allowed[i]) == 0;
                if (!ok)
                        return rh_error_set(err, EBADMSG, "%s: unknown key \"%s\"", what, key);
        }
        return 0;
}

static int get_uint(json_t *obj, const char *key, uint64_t max, uint64_t *ret, const char *what,
                    struct rh_error *err)
{
        json_t *v = json_object_get(obj, key);
        json_int_t n;

        if (!v)
                return 0;
        if (!json_is_integer(v))
                return rh_error_set(err, EBADMSG, "%s.%s must be an integer", what, key);
        n = json_integer_value(v);
        if (n < 0 || (uint64_t)n > max)
                return rh_error_set(err, EINVAL, "%s.%s: %" JSON_INTEGER_FORMAT " out of range 0..%" PRIu64,
                                    what, key, n, max);
        *ret = (uint64_t)n;
        return 1;
}

static const char *get_str(json_t *obj, const char *key, const char *what, int *r, struct rh_error *err)
{
        json_t *v = json_object_get(obj, key);

        if (!v)
                return NULL;
        if (!json_is_string(v)) {
                *r = rh_error_set(err, EBADMSG, "%s.%s must be a string", what, key);
                return NULL;
        }
        return json_string_value(v);
}

static int parse_interface(json_t *o, struct rh_iface *f, const char *what, struct rh_error *err)
{
        static const char *const keys[] = { "name", "match_mac", "mac", "mtu", NULL };
        const char *s;
        uint64_t mtu;
        int r = 0;

        if ((r = want(o, JSON_OBJECT, what, err)) < 0 || (r = check_keys(o, keys, what, err)) < 0)
                return r;
        if ((s = get_str(o, "name", what, &r, err))) {
                if (strlen(s) >= RH_IFNAME_MAX)
                        return rh_error_set(err, EINVAL, "%s.name: \"%s\" longer than %d characters", what, s,
                                            RH_IFNAME_MAX - 1);
                f->match |= RH_MATCH_NAME;
                memcpy(f->name, s, strlen(s) + 1);
        }
        if (r < 0)
                return r;
        if ((s = get_str(o, "match_mac", what, &r, err))) {
                if (rh_mac_parse(s, f->match_mac) < 0)
                        return rh_error_set(err, EINVAL, "%s.match_mac: invalid MAC \"%s\"", what, s);
                f->match |= RH_MATCH_MAC;
        }
        if (r < 0)
                return r;
        if ((s = get_str(o, "mac", what, &r, err))) {
                if (rh_mac_parse(s, f->mac) < 0)
                        return rh_error_set(err, EINVAL, "%s.mac: invalid MAC \"%s\"", what, s);
                f->has_mac = true;
        }
        if (r < 0)
                return r;
        r = get_uint(o, "mtu", 65535, &mtu, what, err);
        if (r < 0)
                return r;
        if (r > 0)
                f->mtu = (uint32_t)mtu;
        return 0;
}

static int parse_ip_value(const char *s, bool with_prefix, struct rh_ipaddr *ip, uint8_t *prefix,
                          const char *what, struct rh_error *err)
{
        if (rh_ip_parse(s, ip, with_prefix ? prefix : NULL) < 0)
                return rh_error_set(err, EINVAL, "%s: invalid %s \"%s\"", what,
                                    with_prefix ? "address/prefix" : "address", s);
        return 0;
}

static int parse_address(json_t *o, struct rh_addr *a, const char *what, struct rh_error *err)
{
        static const char *const keys[] = { "interface", "address", NULL };
        struct rh_ipaddr ip;
        uint64_t iface = 0;
        const char *s;
        int r = 0;

        if ((r = want(o, JSON_OBJECT, what, err)) < 0 || (r = check_keys(o, keys, what, err)) < 0)
                return r;
        if ((r = get_uint(o, "interface", RH_MAX_IFACES - 1, &iface, what, err)) < 0)
                return r;
        r = 0;
        s = get_str(o, "address", what, &r, err);
        if (r < 0)
                return r;
        if (!s)
                return rh_error_set(err, EBADMSG, "%s: missing \"address\"", what);
        if ((r = parse_ip_value(s, true, &ip, &a->prefix, what, err)) < 0)
                return r;
        a->iface = (uint8_t)iface;
        a->family = ip.family;
        memcpy(a->addr, ip.addr, 16);
        return 0;
}

static int parse_route(json_t *o, struct rh_route *rt, const char *what, struct rh_error *err)
{
        static const char *const keys[] = { "interface", "destination", "gateway", "metric", NULL };
        struct rh_ipaddr ip;
        uint64_t iface = 0, metric = 0;
        const char *dst, *gw;
        int r = 0;

        if ((r = want(o, JSON_OBJECT, what, err)) < 0 || (r = check_keys(o, keys, what, err)) < 0)
                return r;
        if ((r = get_uint(o, "interface", RH_MAX_IFACES - 1, &iface, what, err)) < 0)
                return r;
        if ((r = get_uint(o, "metric", UINT32_MAX, &metric, what, err)) < 0)
                return r;
        r = 0;
        dst = get_str(o, "destination", what, &r, err);
        if (r < 0)
                return r;
        gw = get_str(o, "gateway", what, &r, err);
        if (r < 0)
                return r;
        rt->iface = (uint8_t)iface;
        rt->metric = (uint32_t)metric;
        if (gw) {
                if ((r = parse_ip_value(gw, false, &ip, NULL, what, err)) < 0)
                        return r;
                rt->has_gateway = true;
                rt->family = ip.family;
                memcpy(rt->gateway, ip.addr, 16);
        }
        if (dst) {
                if ((r = parse_ip_value(dst, true, &ip, &rt->dst_prefix, what, err)) < 0)
                        return r;
                if (gw && ip.family != rt->family)
                        return rh_error_set(err, EINVAL, "%s: destination and gateway differ in family", what);
                rt->family = ip.family;
                memcpy(rt->dst, ip.addr, 16);
        } else if (!gw)
                return rh_error_set(err, EBADMSG, "%s: needs \"destination\" or \"gateway\"", what);
        return 0;
}

int rh_hostport_parse(const char *s, struct rh_ipaddr *ret_ip, uint16_t *ret_port)
{
        struct rh_ipaddr parsed = {};
        char host[64];
        const char *colon;
        size_t n;
        char *end;
        long p;

        if (strncmp(s, "gateway:", 8) == 0) {
                /* hypeman V1 semantics: ack to the default route's gateway (family 0). */
                colon = s + 7;
                goto port;
        }
        if (s[0] == '[') {
                const char *close = strchr(s, ']');
                if (!close || close[1] != ':')
                        return -EINVAL;
                n = (size_t)(close - s - 1);
                if (n >= sizeof(host))
                        return -EINVAL;
                memcpy(host, s + 1, n);
                colon = close + 1;
        } else {
                colon = strrchr(s, ':');
                if (!colon)
                        return -EINVAL;
                n = (size_t)(colon - s);
                if (n >= sizeof(host))
                        return -EINVAL;
                memcpy(host, s, n);
        }
        host[n] = '\0';
        if (rh_ip_parse(host, &parsed, NULL) < 0)
                return -EINVAL;
port:
        errno = 0;
        p = strtol(colon + 1, &end, 10);
        if (errno || *end || colon[1] == '\0' || p < 1 || p > 65535)
                return -EINVAL;
        *ret_ip = parsed;
        *ret_port = (uint16_t)p;
        return 0;
}

static int parse_array(json_t *root, const char *key, size_t max, json_t **ret, struct rh_error *err)
{
        json_t *a = json_object_get(root, key);

        *ret = NULL;
        if (!a)
                return 0;
        if (!json_is_array(a))
                return rh_error_set(err, EBADMSG, "\"%s\" must be an array", key);
        if (json_array_size(a) > max)
                return rh_error_set(err, E2BIG, "\"%s\": %zu entries, at most %zu", key, json_array_size(a),
                                    max);
        *ret = a;
        return 0;
}

static int parse_flag(json_t *root, const char *key, uint32_t bit, uint32_t *flags, struct rh_error *err)
{
        json_t *v = json_object_get(root, key);

        if (!v)
                return 0;
        if (!json_is_boolean(v))
                return rh_error_set(err, EBADMSG, "\"%s\" must be a boolean", key);
        if (json_is_true(v))
                *flags |= bit;
        else
                *flags &= ~bit;
        return 0;
}

int rh_request_from_json(const char *text, size_t len, struct rh_request *ret_req,
                         struct rh_error *err)
{
        static const char *const keys[] = {
                "interfaces", "addresses", "routes", "dns", "search", "hostname", "flush_neighbours",
                "announce", "ack_early", "replace_addresses", "ack", "seq", "nonce", "version", "realtime_ns", "new_machine_id",
                "payloads", "hypeman_mailboxes", /* rh_payload_set_from_json */ NULL,
        };
        _cleanup_json_ json_t *root = NULL;
        struct rh_request req = { .flags = RH_REQ_FLUSH_NEIGH | RH_REQ_ANNOUNCE | RH_REQ_REPLACE_ADDRS };
        json_error_t jerr;
        json_t *a, *v;
        char what[48];
        size_t i;
        const char *s;
        uint64_t n;
        int r = 0;

        root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return rh_error_set(err, EBADMSG, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        if ((r = want(root, JSON_OBJECT, "request", err)) < 0 || (r = check_keys(root, keys, "request", err)) < 0)
                return r;
        /* The schema's version (docs/REQUEST.md): absent means 1; a newer one is refused, never half-read. */
        if ((r = get_uint(root, "version", UINT32_MAX, &n, "request", err)) < 0)
                return r;
        if (r > 0 && n != RH_REQUEST_JSON_VERSION)
                return rh_error_set(err, EPROTONOSUPPORT, "request: \"version\" %" PRIu64 " (this rehome reads %u)",
                                    n, RH_REQUEST_JSON_VERSION);

        if ((r = parse_array(root, "interfaces", RH_MAX_IFACES, &a, err)) < 0)
                return r;
        if (!a || json_array_size(a) == 0)
                return rh_error_set(err, EINVAL, "request names no interface (\"interfaces\" is empty)");
        json_array_foreach(a, i, v) {
                snprintf(what, sizeof(what), "interfaces[%zu]", i);
                if ((r = parse_interface(v, &req.ifaces[req.n_ifaces++], what, err)) < 0)
                        return r;
        }
        if ((r = parse_array(root, "addresses", RH_MAX_ADDRS, &a, err)) < 0)
                return r;
        json_array_foreach(a, i, v) {
                snprintf(what, sizeof(what), "addresses[%zu]", i);
                if ((r = parse_address(v, &req.addrs[req.n_addrs++], what, err)) < 0)
                        return r;
        }
        if ((r = parse_array(root, "routes", RH_MAX_ROUTES, &a, err)) < 0)
                return r;
        json_array_foreach(a, i, v) {
                snprintf(what, sizeof(what), "routes[%zu]", i);
                if ((r = parse_route(v, &req.routes[req.n_routes++], what, err)) < 0)
                        return r;
        }
        if ((r = parse_array(root, "dns", RH_MAX_DNS, &a, err)) < 0)
                return r;
        json_array_foreach(a, i, v) {
                snprintf(what, sizeof(what), "dns[%zu]", i);
                if ((r = want(v, JSON_STRING, what, err)) < 0 ||
                    (r = parse_ip_value(json_string_value(v), false, &req.dns[req.n_dns++], NULL, what, err)) < 0)
                        return r;
        }
        if ((r = parse_array(root, "search", RH_MAX_SEARCH, &a, err)) < 0)
                return r;
        json_array_foreach(a, i, v) {
                snprintf(what, sizeof(what), "search[%zu]", i);
                if ((r = want(v, JSON_STRING, what, err)) < 0)
                        return r;
                if (strlen(json_string_value(v)) > RH_SEARCH_MAX)
                        return rh_error_set(err, EINVAL, "%s: longer than %d characters", what, RH_SEARCH_MAX);
                memcpy(req.search[req.n_search++], json_string_value(v), strlen(json_string_value(v)) + 1);
        }
        s = get_str(root, "hostname", "request", &r, err);
        if (r < 0)
                return r;
        if (s) {
                if (strlen(s) > RH_HOSTNAME_MAX)
                        return rh_error_set(err, EINVAL, "hostname longer than %d characters", RH_HOSTNAME_MAX);
                memcpy(req.hostname, s, strlen(s) + 1);
        }
        if ((r = parse_flag(root, "flush_neighbours", RH_REQ_FLUSH_NEIGH, &req.flags, err)) < 0 ||
            (r = parse_flag(root, "announce", RH_REQ_ANNOUNCE, &req.flags, err)) < 0 ||
            (r = parse_flag(root, "ack_early", RH_REQ_ACK_EARLY, &req.flags, err)) < 0 ||
            (r = parse_flag(root, "replace_addresses", RH_REQ_REPLACE_ADDRS, &req.flags, err)) < 0 ||
            (r = parse_flag(root, "new_machine_id", RH_REQ_NEW_MACHINE_ID, &req.flags, err)) < 0)
                return r;
        s = get_str(root, "ack", "request", &r, err);
        if (r < 0)
                return r;
        if (s) {
                if (rh_hostport_parse(s, &req.ack_addr, &req.ack_port) < 0)
                        return rh_error_set(err, EINVAL, "ack: expected HOST:PORT or gateway:PORT, got \"%s\"", s);
                req.has_ack_udp = true;
        }
        if ((r = get_uint(root, "seq", UINT32_MAX, &n, "request", err)) < 0)
                return r;
        if (r > 0)
                req.seq = (uint32_t)n;
        if ((r = get_uint(root, "realtime_ns", INT64_MAX, &n, "request", err)) < 0)
                return r;
        if (r > 0)
                req.realtime_ns = n;
        r = 0;
        s = get_str(root, "nonce", "request", &r, err);
        if (r < 0)
                return r;
        if (s) {
                char *end;
                errno = 0;
                req.nonce = strtoull(s, &end, 16);
                if (errno || *end || !*s)
                        return rh_error_set(err, EINVAL, "nonce: expected hexadecimal, got \"%s\"", s);
        }

        r = rh_request_validate(&req, err);
        if (r < 0)
                return r;
        req.size = sizeof(req);
        *ret_req = req;
        return 0;
}

static json_t *ip_json(uint8_t family, const uint8_t addr[16], int prefix)
{
        struct rh_ipaddr ip = { .family = family };
        char buf[64];

        memcpy(ip.addr, addr, 16);
        rh_ip_format(&ip, buf);
        if (prefix >= 0)
                snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), "/%d", prefix);
        return json_string(buf);
}

char *rh_request_to_json(const struct rh_request *req, int indent)
{
        _cleanup_json_ json_t *root = json_object();
        json_t *a;
        char mac[18], nonce[20];

        if (req->size != 0 && req->size != sizeof(*req)) { /* a layout this library does not know */
                errno = EINVAL;
                return NULL;
        }
        if (!root)
                return NULL;
        a = json_array();
        json_object_set_new(root, "interfaces", a);
        for (unsigned i = 0; i < req->n_ifaces; i++) {
                const struct rh_iface *f = &req->ifaces[i];
                json_t *o = json_object();
                if (f->match & RH_MATCH_NAME)
                        json_object_set_new(o, "name", json_string(f->name));
                if (f->match & RH_MATCH_MAC)
                        json_object_set_new(o, "match_mac", json_string(rh_mac_format(f->match_mac, mac)));
                if (f->has_mac)
                        json_object_set_new(o, "mac", json_string(rh_mac_format(f->mac, mac)));
                if (f->mtu)
                        json_object_set_new(o, "mtu", json_integer(f->mtu));
                json_array_append_new(a, o);
        }
        a = json_array();
        json_object_set_new(root, "addresses", a);
        for (unsigned i = 0; i < req->n_addrs; i++)
                json_array_append_new(a, json_pack("{s:i,s:o}", "interface", req->addrs[i].iface, "address",
                                                   ip_json(req->addrs[i].family, req->addrs[i].addr,
                                                           req->addrs[i].prefix)));
        a = json_array();
        json_object_set_new(root, "routes", a);
        for (unsigned i = 0; i < req->n_routes; i++) {
                const struct rh_route *rt = &req->routes[i];
                json_t *o = json_pack("{s:i,s:o,s:I}", "interface", rt->iface, "destination",
                                      ip_json(rt->family, rt->dst, rt->dst_prefix), "metric",
                                      (json_int_t)rt->metric);
                if (rt->has_gateway)
                        json_object_set_new(o, "gateway", ip_json(rt->family, rt->gateway, -1));
                json_array_append_new(a, o);
        }
        a = json_array();
        json_object_set_new(root, "dns", a);
        for (unsigned i = 0; i < req->n_dns; i++)
                json_array_append_new(a, ip_json(req->dns[i].family, req->dns[i].addr, -1));
        a = json_array();
        json_object_set_new(root, "search", a);
        for (unsigned i = 0; i < req->n_search; i++)
                json_array_append_new(a, json_string(req->search[i]));
        if (req->hostname[0])
                json_object_set_new(root, "hostname", json_string(req->hostname));
        json_object_set_new(root, "flush_neighbours", json_boolean(req->flags & RH_REQ_FLUSH_NEIGH));
        json_object_set_new(root, "announce", json_boolean(req->flags & RH_REQ_ANNOUNCE));
        json_object_set_new(root, "ack_early", json_boolean(req->flags & RH_REQ_ACK_EARLY));
        json_object_set_new(root, "replace_addresses", json_boolean(req->flags & RH_REQ_REPLACE_ADDRS));
        if (req->flags & RH_REQ_NEW_MACHINE_ID)
                json_object_set_new(root, "new_machine_id", json_true());
        if (req->has_ack_udp) {
                char ack[80], ip[46];
                if (req->ack_addr.family == 0)
                        snprintf(ack, sizeof(ack), "gateway:%u", req->ack_port);
                else
                        snprintf(ack, sizeof(ack), req->ack_addr.family == 6 ? "[%s]:%u" : "%s:%u",
                                 rh_ip_format(&req->ack_addr, ip), req->ack_port);
                json_object_set_new(root, "ack", json_string(ack));
        }
        json_object_set_new(root, "seq", json_integer(req->seq));
        json_object_set_new(root, "version", json_integer(RH_REQUEST_JSON_VERSION));
        if (req->realtime_ns)
                json_object_set_new(root, "realtime_ns", json_integer((json_int_t)req->realtime_ns));
        snprintf(nonce, sizeof(nonce), "%016" PRIx64, req->nonce);
        json_object_set_new(root, "nonce", json_string(nonce));
        return json_dumps(root, JSON_PRESERVE_ORDER | (indent > 0 ? JSON_INDENT(indent) : JSON_COMPACT));
}
