/* SPDX-License-Identifier: MIT */
/*
 * What a clone's identity must not be, checked on the host before anything
 * is spawned (the agent would apply any valid request; a wrong one here
 * makes a clone answer for the gateway, the whole subnet or the template).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm.h"

static bool bit(const struct rh_ipaddr *ip, unsigned i)
{
        return ip->addr[i / 8] & (0x80 >> (i % 8));
}

static bool same_prefix(const struct rh_ipaddr *a, const struct rh_ipaddr *b, unsigned prefix)
{
        for (unsigned i = 0; i < prefix; i++)
                if (bit(a, i) != bit(b, i))
                        return false;
        return true;
}

static bool host_bits_all(const struct rh_ipaddr *ip, unsigned prefix, unsigned bits, bool one)
{
        for (unsigned i = prefix; i < bits; i++)
                if (bit(ip, i) != one)
                        return false;
        return true;
}

int vmm_identity_check(const struct vmm_net *net, const struct vmm_template *t, const struct rh_ipaddr *ip,
                       uint8_t prefix, const uint8_t mac[6], const struct rh_ipaddr *gateway, struct rh_error *err)
{
        static const uint8_t zero[6];
        struct rh_ipaddr gw, tip;
        uint8_t gw_prefix, tprefix;
        char a[48], b[48];

        rh_ip_format(ip, a);
        /* Only a network of ours (gateway "A.B.C.D/P") says what the subnet is. */
        if (ip->family == 4 && strchr(net->gateway, '/') && rh_ip_parse(net->gateway, &gw, &gw_prefix) == 0 &&
            gw.family == 4) {
                rh_ip_format(&gw, b);
                if (!same_prefix(ip, &gw, gw_prefix))
                        return rh_error_set(err, -EINVAL, "%s is outside the clone network %s", a, net->gateway);
                if (memcmp(ip->addr, gw.addr, 4) == 0)
                        return rh_error_set(err, -EINVAL, "%s is the gateway's address", a);
                if (gw_prefix < 31 && host_bits_all(ip, gw_prefix, 32, false))
                        return rh_error_set(err, -EINVAL, "%s is the network address of %s", a, net->gateway);
                if (gw_prefix < 31 && host_bits_all(ip, gw_prefix, 32, true))
                        return rh_error_set(err, -EINVAL, "%s is the broadcast address of %s", a, net->gateway);
        }
        if (ip->family == 4 && prefix < 31 && (host_bits_all(ip, prefix, 32, false) || host_bits_all(ip, prefix, 32, true)))
                return rh_error_set(err, -EINVAL, "%s/%u is a network or broadcast address", a, prefix);
        if (t->ip[0] && rh_ip_parse(t->ip, &tip, &tprefix) == 0 && tip.family == ip->family &&
            memcmp(tip.addr, ip->addr, ip->family == 4 ? 4 : 16) == 0)
                return rh_error_set(err, -EINVAL, "%s is the template's own address", a);
        if (mac[0] & 1)
                return rh_error_set(err, -EINVAL, "MAC %02x:%02x:%02x:%02x:%02x:%02x is multicast", mac[0], mac[1],
                                    mac[2], mac[3], mac[4], mac[5]);
        if (memcmp(mac, zero, 6) == 0)
                return rh_error_set(err, -EINVAL, "MAC 00:00:00:00:00:00 is not an address");
        if (memcmp(mac, t->mac, 6) == 0)
                return rh_error_set(err, -EINVAL, "MAC %02x:%02x:%02x:%02x:%02x:%02x is the template's own", mac[0],
                                    mac[1], mac[2], mac[3], mac[4], mac[5]);
        if (gateway && gateway->family == ip->family) {
                rh_ip_format(gateway, b);
                if (!same_prefix(gateway, ip, prefix))
                        return rh_error_set(err, -EINVAL, "gateway %s is not on-link for %s/%u", b, a, prefix);
                if (memcmp(gateway->addr, ip->addr, ip->family == 4 ? 4 : 16) == 0)
                        return rh_error_set(err, -EINVAL, "gateway %s is the clone's own address", b);
        }
        return 0;
}

int vmm_identity_check_nic(const struct vmm_net *net, const struct vmm_template *t, unsigned nic,
                           const struct rh_ipaddr *ip, uint8_t prefix, const uint8_t mac[6], struct rh_error *err)
{
        struct vmm_template *view;
        int r;

        if (nic == 0)
                return vmm_identity_check(net, t, ip, prefix, mac, NULL, err);
        if (nic >= t->nics)
                return rh_error_set(err, -EINVAL, "NIC %u: template %s has %u NIC%s", nic, t->name, t->nics,
                                    t->nics == 1 ? "" : "s");
        /* The same rules against that NIC's template address and MAC. */
        view = malloc(sizeof(*view));
        if (!view)
                return rh_error_set(err, -ENOMEM, "out of memory");
        *view = *t;
        memcpy(view->ip, t->xnic[nic - 1].ip, sizeof(view->ip));
        memcpy(view->mac, t->xnic[nic - 1].mac, 6);
        r = vmm_identity_check(net, view, ip, prefix, mac, NULL, err);
        free(view);
        if (r < 0)
                return rh_error_prefix(err, r, "NIC %u", nic);
        return 0;
}
