/* SPDX-License-Identifier: MIT */
/*
 * Named per-fork payloads in the agent (docs/AGENT.md "Payloads"):
 *
 *  - rehome's carrier: at start-up the agent maps and mlocks one directory
 *    page and --payload-pages data pages, and on every (re-)arm writes the
 *    directory (gpa of each data page) and announces it in the arm header
 *    (payload_dir_pfn, payload_pages, RH_CAP_PAYLOADS). A request with an
 *    RH_TLV_PAYLOADS record is checked (stream CRC, index) before anything
 *    is applied; after the network is applied each payload is written to
 *    <run-dir>/payloads/NAME atomically (write a dot-file, rename), which an
 *    app sees as IN_MOVED_TO (include/rehome/payload.h). The ack records
 *    per payload whether it was delivered, and its errno if not.
 *  - hypeman fork mailboxes (--hypeman-mailbox NAME=TOKEN): one 4 KiB
 *    buffer per name carrying hypeman's marker; when the host has written
 *    seq != 0 the JSON is delivered the same way, the line
 *    "stage=applied mailbox=NAME" goes to gateway:ack_port when the JSON
 *    has an ack_port, and seq is written back to 0 (hypeman's guest rule).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "cleanup.h"
#include "io.h"
#include "unaligned.h"

#define PAGE 4096u

static int ensure_dir(struct agent *a, char *path, size_t cap)
{
        snprintf(path, cap, "%s", a->opt.run_dir);
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
                return -errno;
        snprintf(path, cap, "%s/payloads", a->opt.run_dir);
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

int payloads_setup(struct agent *a, struct rh_error *err)
{
        char dir[512];
        size_t size;
        void *p;
        int r;

        if (!a->opt.run_dir || !a->opt.run_dir[0])
                return 0;
        r = ensure_dir(a, dir, sizeof(dir));
        if (r < 0)
                return rh_error_set(err, -r, "payload directory %s: %s", dir, strerror(-r));

        if (a->opt.format == FORMAT_NATIVE && a->opt.payload_pages) {
                size = (size_t)(1 + a->opt.payload_pages) * PAGE;
                p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
                if (p == MAP_FAILED)
                        return rh_error_set(err, errno, "map payload pages: %s", strerror(errno));
                (void)madvise(p, size, MADV_NOHUGEPAGE);
                if (mlock(p, size) < 0)
                        return rh_error_set(err, errno, "mlock payload pages: %s", strerror(errno));
                memset(p, 0, size);
                a->paydir = p;
                a->paydata = (uint8_t *)p + PAGE;
        }
        for (unsigned i = 0; i < a->opt.n_hfm; i++) {
                p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
                if (p == MAP_FAILED)
                        return rh_error_set(err, errno, "map fork mailbox: %s", strerror(errno));
                if (mlock(p, PAGE) < 0)
                        return rh_error_set(err, errno, "mlock fork mailbox: %s", strerror(errno));
                memset(p, 0, PAGE);
                r = rh_hfm_marker(a->opt.hfm[i].name, a->opt.hfm[i].token, p, err);
                if (r < 0)
                        return r;
                a->hfm_page[i] = p;
        }
        return 0;
}

void payloads_arm(struct agent *a)
{
        uint64_t gpas[RH_PAYLOAD_PAGES_MAX], dir_gpa = 0;

        a->arm.payload_dir_pfn = 0;
        a->arm.payload_pages = 0;
        if (!a->paydir)
                return;
        /* Every page's gpa, re-read on each arm (a page could in principle move). */
        if (arm_page_gpa(a->paydir, &dir_gpa) < 0 || dir_gpa == 0 || dir_gpa / PAGE > UINT32_MAX) {
                agent_log(a, "payload pages: no usable gpa for the directory, payloads off");
                return;
        }
        for (unsigned i = 0; i < a->opt.payload_pages; i++)
                if (arm_page_gpa(a->paydata + (size_t)i * PAGE, &gpas[i]) < 0 || gpas[i] == 0) {
                        agent_log(a, "payload pages: no gpa for page %u, payloads off", i);
                        return;
                }
        rh_paydir_write(a->paydir, a->arm.token, gpas, a->opt.payload_pages);
        a->arm.payload_dir_pfn = (uint32_t)(dir_gpa / PAGE);
        a->arm.payload_pages = a->opt.payload_pages;
        a->arm.caps |= RH_CAP_PAYLOADS;
}

int payloads_check(struct agent *a, const struct rh_request *req, struct rh_error *err)
{
        struct rh_payloads_ref ref = { req->payloads_count, req->payloads_len, req->payloads_crc };

        a->n_payloads = 0;
        a->ack.payloads_total = req->payloads_count;
        if (!req->payloads_count)
                return 0;
        if (!a->arm.payload_pages)
                return rh_error_set(err, EOPNOTSUPP, "request carries payloads but no payload pages are armed");
        if (req->payloads_len > a->arm.payload_pages * PAGE)
                return rh_error_set(err, EMSGSIZE, "payload stream of %u bytes exceeds the %u pages armed",
                                    req->payloads_len, a->arm.payload_pages);
        int r = rh_payloads_stream_decode(a->paydata, &ref, a->payloads, err);
        if (r < 0)
                return rh_error_prefix(err, r, "payloads");
        a->n_payloads = req->payloads_count;
        return 0;
}

/* Write @len bytes to <run-dir>/payloads/NAME: a dot-file in the same directory, then rename. */
static int deliver(struct agent *a, const char *name, const uint8_t *data, size_t len)
{
        char dir[512], tmp[600], path[600];
        _cleanup_close_ int fd = -EBADF;
        int r;

        r = ensure_dir(a, dir, sizeof(dir));
        if (r < 0)
                return r;
        snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        r = write_full(fd, data, len);
        if (r < 0) {
                (void)unlink(tmp);
                return r;
        }
        if (rename(tmp, path) < 0) {
                r = -errno;
                (void)unlink(tmp);
                return r;
        }
        return 0;
}

int payloads_deliver(struct agent *a, char *what, size_t cap)
{
        int first = 0;

        for (unsigned i = 0; i < a->n_payloads; i++) {
                int r = deliver(a, a->payloads[i].name, a->payloads[i].data, a->payloads[i].len);

                if (r < 0) {
                        a->ack.payload_errno[i] = (uint8_t)(-r > 255 ? 255 : -r);
                        if (!first) {
                                first = r;
                                snprintf(what, cap, "payload %s: %s", a->payloads[i].name, strerror(-r));
                        }
                        continue;
                }
                a->ack.payloads_delivered |= 1u << i;
                agent_log(a, "payload %s delivered (%u bytes)", a->payloads[i].name, a->payloads[i].len);
        }
        if (a->n_payloads && !first)
                a->ack.applied |= RH_APPLIED_PAYLOADS;
        return first;
}

/* ---- hypeman fork mailboxes ---- */

bool hfm_pending(const struct agent *a)
{
        for (unsigned i = 0; i < a->opt.n_hfm; i++)
                if (__atomic_load_n((const uint32_t *)(a->hfm_page[i] + RH_HFM_OFF_SEQ), __ATOMIC_ACQUIRE))
                        return true;
        return false;
}

/* The IPv4 default gateway from /proc/net/route (where hypeman's guest acks). */
static bool default_gateway(struct in_addr *ret)
{
        char buf[4096], *line, *save = NULL;
        _cleanup_close_ int fd = open("/proc/net/route", O_RDONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return false;
        n = read(fd, buf, sizeof(buf) - 1);
        if (n <= 0)
                return false;
        buf[n] = 0;
        for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char ifname[32];
                unsigned dst, gw, flags;

                if (sscanf(line, "%31s %x %x %x", ifname, &dst, &gw, &flags) == 4 && dst == 0 && (flags & 2) && gw) {
                        ret->s_addr = gw; /* /proc/net/route prints the address in host order of the raw u32 */
                        return true;
                }
        }
        return false;
}

void hfm_serve(struct agent *a)
{
        for (unsigned i = 0; i < a->opt.n_hfm; i++) {
                uint8_t *mb = a->hfm_page[i];
                const char *name = a->opt.hfm[i].name;
                struct rh_error e = {};
                const uint8_t *json;
                uint32_t seq, len, port = 0;
                int r;

                r = rh_hfm_decode(mb, &seq, &json, &len, &e);
                if (r == -ENODATA)
                        continue;
                if (r == 0) {
                        (void)rh_json_object_check(json, len, &port);
                        r = deliver(a, name, json, len);
                        if (r < 0)
                                rh_error_set(&e, -r, "deliver: %s", strerror(-r));
                }
                if (port) {
                        struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
                        char line[160];
                        int n;

                        if (r == 0)
                                n = snprintf(line, sizeof(line), "stage=applied mailbox=%s seq=%u\n", name, seq);
                        else
                                n = snprintf(line, sizeof(line), "stage=error mailbox=%s seq=%u errno=%d\n", name, seq,
                                             e.code);
                        if (!default_gateway(&sin.sin_addr))
                                agent_log(a, "fork mailbox %s: no default gateway for the ack", name);
                        else if (sendto(a->udp4_fd, line, (size_t)n, 0, (struct sockaddr *)&sin, sizeof(sin)) < 0)
                                agent_log(a, "fork mailbox %s: UDP ack to port %u: %s", name, port, strerror(errno));
                }
                agent_announce(a, "rehome-agent: fork mailbox %s seq=%u %s%s%s", name, seq,
                               r == 0 ? "delivered" : "failed", r == 0 ? "" : ": ", r == 0 ? "" : e.msg);
                /* hypeman's guest: seq back to 0 once answered, so the next host's seq 1 is new. */
                __atomic_store_n((uint32_t *)(mb + RH_HFM_OFF_SEQ), 0, __ATOMIC_RELEASE);
        }
}
