/* SPDX-License-Identifier: MIT */
/*
 * Announcing the new identity so switches and neighbours forget the
 * template's: a gratuitous ARP request (sender = target = the new IPv4
 * address) for IPv4, an unsolicited neighbour advertisement (override flag,
 * target link-layer address option, to ff02::1) for IPv6. Both go out of one
 * preallocated AF_PACKET/SOCK_DGRAM socket, so the kernel writes the Ethernet
 * header with the link's (new) MAC as source.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <string.h>
#include <sys/socket.h>

#include "agent.h"

int announce_setup(struct agent *a, struct rh_error *err)
{
        /* Protocol 0: a send-only socket, it never queues received frames. */
        a->packet_fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (a->packet_fd < 0)
                return rh_error_set(err, -errno, "packet socket: %s", strerror(errno));
        return 0;
}

static int send_frame(struct agent *a, int ifindex, uint16_t proto, const uint8_t dst[6], const void *frame,
                      size_t len)
{
        struct sockaddr_ll sll = {
                .sll_family = AF_PACKET,
                .sll_protocol = htons(proto),
                .sll_ifindex = ifindex,
                .sll_halen = 6,
        };
        ssize_t n;

        memcpy(sll.sll_addr, dst, 6);
        do
                AGENT_SYSCALL(a), n = sendto(a->packet_fd, frame, len, 0, (struct sockaddr *)&sll, sizeof(sll));
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        return 0;
}

int announce_ipv4(struct agent *a, int ifindex, const uint8_t mac[6], const uint8_t ip[4])
{
        static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
        uint8_t arp[28] = {
                0x00, 0x01, /* hardware: Ethernet */
                0x08, 0x00, /* protocol: IPv4 */
                6,    4,    /* address lengths */
                0x00, 0x01, /* request: every Linux neighbour updates on it */
        };

        memcpy(arp + 8, mac, 6); /* sender MAC */
        memcpy(arp + 14, ip, 4); /* sender IP */
        memset(arp + 18, 0, 6);  /* target MAC: unknown */
        memcpy(arp + 24, ip, 4); /* target IP = sender IP: gratuitous */
        return send_frame(a, ifindex, ETH_P_ARP, bcast, arp, sizeof(arp));
}

static uint16_t csum_fold(uint32_t sum)
{
        while (sum >> 16)
                sum = (sum & 0xffff) + (sum >> 16);
        return (uint16_t)~sum;
}

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
        for (size_t i = 0; i + 1 < len; i += 2)
                sum += (uint32_t)(p[i] << 8 | p[i + 1]);
        if (len & 1)
                sum += (uint32_t)(p[len - 1] << 8);
        return sum;
}

int announce_ipv6(struct agent *a, int ifindex, const uint8_t mac[6], const uint8_t ip[16])
{
        static const uint8_t all_nodes[16] = {0xff, 0x02, [15] = 0x01};
        static const uint8_t all_nodes_mac[6] = {0x33, 0x33, 0, 0, 0, 0x01};
        uint8_t pkt[40 + 32] = {0};
        uint8_t *ip6 = pkt, *icmp = pkt + 40;
        const uint16_t icmp_len = 32; /* NA (24) + target link-layer option (8) */
        uint8_t pseudo[40];
        uint16_t sum;

        ip6[0] = 0x60; /* version 6 */
        ip6[4] = (uint8_t)(icmp_len >> 8);
        ip6[5] = (uint8_t)icmp_len;
        ip6[6] = 58;  /* next header: ICMPv6 */
        ip6[7] = 255; /* hop limit: neighbour discovery requires 255 */
        memcpy(ip6 + 8, ip, 16);
        memcpy(ip6 + 24, all_nodes, 16);

        icmp[0] = 136;            /* neighbour advertisement */
        icmp[4] = 0x20;           /* override; not solicited, not a router */
        memcpy(icmp + 8, ip, 16); /* target address */
        icmp[24] = 2;             /* option: target link-layer address */
        icmp[25] = 1;             /* length in units of 8 bytes */
        memcpy(icmp + 26, mac, 6);

        memcpy(pseudo, ip, 16);
        memcpy(pseudo + 16, all_nodes, 16);
        memset(pseudo + 32, 0, 8);
        pseudo[34] = (uint8_t)(icmp_len >> 8);
        pseudo[35] = (uint8_t)icmp_len;
        pseudo[39] = 58;
        sum = csum_fold(csum_add(csum_add(0, pseudo, sizeof(pseudo)), icmp, icmp_len));
        icmp[2] = (uint8_t)(sum >> 8);
        icmp[3] = (uint8_t)sum;
        return send_frame(a, ifindex, ETH_P_IPV6, all_nodes_mac, pkt, sizeof(pkt));
}
