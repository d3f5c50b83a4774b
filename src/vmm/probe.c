/* SPDX-License-Identifier: MIT */
/*
 * Proving a clone reachable at its new identity, from the gateway side: an
 * ARP request for the address on the clone bridge (the reply names the MAC
 * that owns it) and an ICMP echo. busybox's arping and ping (busybox-static
 * is a dependency anyway; the host has neither), run inside the clone
 * namespace, so no traffic leaves it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vmm.h"

int vmm_probe_arp(const struct vmm_net *net, const char *ip, uint8_t ret_mac[6], int timeout_s)
{
        char out[2048], count[16], wait[16];
        /* -f: stop at the first reply; -w: give up after timeout_s. */
        snprintf(count, sizeof(count), "%d", timeout_s * 4 + 1);
        snprintf(wait, sizeof(wait), "%d", timeout_s);
        char *argv[] = {
                (char *)"busybox", (char *)"arping",    (char *)"-f", (char *)"-c", count, (char *)"-w", wait,
                (char *)"-I",      (char *)net->bridge, (char *)ip,   NULL};
        int r = vmm_net_run(net, argv, out, sizeof(out));
        /* "Unicast reply from 10.77.0.10 [52:54:0a:4d:00:0a] 1.234ms" */
        char *p = strstr(out, "reply from ");
        if (r != 0 || !p)
                return -EHOSTUNREACH;
        p = strchr(p, '[');
        if (!p)
                return -EHOSTUNREACH;
        char mac[18];
        snprintf(mac, sizeof(mac), "%.17s", p + 1);
        return rh_mac_parse(mac, ret_mac) == 0 ? 0 : -EHOSTUNREACH;
}

int vmm_probe_icmp(const struct vmm_net *net, const char *ip, int timeout_s)
{
        char out[2048], wait[16];
        snprintf(wait, sizeof(wait), "%d", timeout_s);
        char *argv[] = {(char *)"busybox", (char *)"ping", (char *)"-c", (char *)"1",
                        (char *)"-W",      wait,           (char *)ip,   NULL};
        int r = vmm_net_run(net, argv, out, sizeof(out));
        return r == 0 && strstr(out, "bytes from") ? 0 : -EHOSTUNREACH;
}
