/* SPDX-License-Identifier: MIT */
/*
 * Parsing and formatting of MAC and IP addresses, shared by the CLI (flags),
 * the library (JSON requests) and the agent (V1 JSON, ack lines).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rehome/mailbox.h"
#include "hex.h"

int rh_mac_parse(const char *s, uint8_t ret_mac[6])
{
        uint8_t mac[6];

        if (!s || strlen(s) != 17)
                return -EINVAL;
        for (int i = 0; i < 6; i++) {
                int hi = hexval(s[i * 3]), lo = hexval(s[i * 3 + 1]);
                if (hi < 0 || lo < 0)
                        return -EINVAL;
                if (i < 5 && s[i * 3 + 2] != ':')
                        return -EINVAL;
                mac[i] = (uint8_t)(hi << 4 | lo);
        }
        memcpy(ret_mac, mac, 6);
        return 0;
}

char *rh_mac_format(const uint8_t mac[6], char *buf)
{
        snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
                 mac[5]);
        return buf;
}

int rh_ip_parse(const char *s, struct rh_ipaddr *ret_ip, uint8_t *ret_prefix)
{
        struct rh_ipaddr ip = {};
        char host[64];
        const char *slash;
        size_t hlen;
        long prefix = -1;

        if (!s)
                return -EINVAL;
        slash = strchr(s, '/');
        hlen = slash ? (size_t)(slash - s) : strlen(s);
        if (hlen == 0 || hlen >= sizeof(host))
                return -EINVAL;
        memcpy(host, s, hlen);
        host[hlen] = '\0';
        if (slash) {
                char *end;
                if (!ret_prefix || slash[1] < '0' || slash[1] > '9')
                        return -EINVAL;
                errno = 0;
                prefix = strtol(slash + 1, &end, 10);
                if (errno || *end || end - (slash + 1) > 3)
                        return -EINVAL;
        }
        if (inet_pton(AF_INET, host, ip.addr) == 1)
                ip.family = 4;
        else if (inet_pton(AF_INET6, host, ip.addr) == 1)
                ip.family = 6;
        else
                return -EINVAL;
        if (prefix > (ip.family == 4 ? 32 : 128))
                return -EINVAL;
        *ret_ip = ip;
        if (ret_prefix)
                *ret_prefix = (uint8_t)(prefix >= 0 ? prefix : (ip.family == 4 ? 32 : 128));
        return 0;
}

char *rh_ip_format(const struct rh_ipaddr *ip, char *buf)
{
        if (!inet_ntop(ip->family == 6 ? AF_INET6 : AF_INET, ip->addr, buf, 46))
                snprintf(buf, 46, "?");
        return buf;
}
