/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the handoff's rewriters of guest files
 * (src/agent/render.c), which read whatever the guest's
 * /etc/network/interfaces and /etc/hosts hold.
 *
 * Input: one control byte, then the file. Control & 1 selects
 * render_ifupdown (eth0, a fixed v4 + v6 request) or render_hosts (old name
 * "tpl", new "web-7"). Checked: the answer is a length below the buffer
 * with a NUL after it, -ENOBUFS, or (ifupdown) -ENOENT; a buffer of
 * (control >> 1) * 64 bytes must give the same text or -ENOBUFS.
 */
#include <errno.h>

#include "agent.h"
#include "fuzz-common.h"

static char out[1 << 17], out_small[1 << 17];

static struct rh_request request(void)
{
        struct rh_request req = {0};

        req.n_ifaces = 1;
        req.ifaces[0].has_mac = true;
        memcpy(req.ifaces[0].mac, (uint8_t[6]){0x52, 0x54, 0, 1, 2, 3}, 6);
        req.ifaces[0].mtu = 1400;
        req.n_addrs = 2;
        req.addrs[0] = (struct rh_addr){.family = 4, .prefix = 24, .addr = {10, 88, 0, 7}};
        req.addrs[1] = (struct rh_addr){.family = 6, .prefix = 64, .addr = {0xfd, [15] = 7}};
        req.n_routes = 1;
        req.routes[0] = (struct rh_route){.family = 4, .has_gateway = true, .gateway = {10, 88, 0, 1}};
        req.n_dns = 1;
        req.dns[0] = (struct rh_ipaddr){.family = 4, .addr = {10, 88, 0, 53}};
        req.n_search = 1;
        strcpy(req.search[0], "example.test");
        return req;
}

static int render(uint8_t mode, const struct rh_request *req, const char *in, size_t len, char *buf, size_t cap)
{
        return mode ? render_hosts(in, len, "tpl", "web-7", buf, cap)
                    : render_ifupdown(in, len, req, 0, "eth0", buf, cap);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct rh_request req = request();
        const char *in = (const char *)data + 1;
        size_t len, small;
        uint8_t mode;
        int n, m;

        if (size < 1 || size > 16384)
                return 0;
        mode = data[0] & 1;
        small = (size_t)(data[0] >> 1) * 64;
        len = size - 1;
        n = render(mode, &req, in, len, out, sizeof(out));
        fuzz_check(n >= 0 || n == -ENOBUFS || (mode == 0 && n == -ENOENT), "answer %d", n);
        if (n < 0)
                return 0;
        fuzz_check((size_t)n < sizeof(out) && out[n] == '\0', "length %d not NUL-terminated", n);
        m = render(mode, &req, in, len, out_small, small);
        fuzz_check(m == -ENOBUFS || (m == n && memcmp(out, out_small, (size_t)n) == 0),
                   "buffer of %zu: %d, full buffer: %d", small, m, n);
        return 0;
}
