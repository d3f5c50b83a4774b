/* SPDX-License-Identifier: MIT */
/*
 * Locate and patch through every strategy:
 *  (a) a memory file: hint and scan, wrong token, stale copies, no mailbox,
 *      holes, short files, read-only targets, ack and prearm read-back;
 *  (b) a REAL child process that maps the file MAP_PRIVATE in two pieces:
 *      the parent patches through /proc/<child>/mem, the child decodes the
 *      request from its own memory and acks into it, the parent reads the
 *      ack back, and the file on disk stays byte-identical (COW held);
 *  (c) the overlay page.
 * I/O counts are asserted exactly: a verified locate is one 4 KiB read.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "rehome/ack.h"
#include "rehome/patch.h"
#include "rehome/payloads.h"
#include "unaligned.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

static const uint8_t token[RH_TOKEN_LEN] = {0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
static const uint8_t other_token[RH_TOKEN_LEN] = {0x01};

static char path[64];    /* the memory file of the current test */
static pid_t child = -1; /* the mapping child, if running */

static void make_page(uint8_t *page, uint64_t gpa, const uint8_t *tok)
{
        struct rh_arm arm = {
                .abi_major = RH_MAILBOX_ABI_MAJOR,
                .arm_generation = 1,
                .gpa = gpa,
                .agent_version = 0x000100,
                .caps = RH_CAP_SIGNAL_POLL,
        };

        memcpy(arm.token, tok, RH_TOKEN_LEN);
        memset(page, 0, RH_MAILBOX_SIZE);
        rh_mailbox_arm_write(page, &arm);
}

static void make_request(struct rh_request *req)
{
        struct rh_ipaddr ip;
        uint8_t prefix;

        memset(req, 0, sizeof(*req));
        req->nonce = 0x1122334455667788ull;
        req->n_ifaces = 1;
        req->ifaces[0].match = RH_MATCH_NAME;
        strcpy(req->ifaces[0].name, "eth0");
        req->ifaces[0].has_mac = true;
        assert_int_equal(rh_mac_parse("02:00:00:00:00:05", req->ifaces[0].mac), 0);
        req->n_addrs = 1;
        assert_int_equal(rh_ip_parse("10.0.0.5/24", &ip, &prefix), 0);
        req->addrs[0] = (struct rh_addr){.iface = 0, .family = 4, .prefix = prefix};
        memcpy(req->addrs[0].addr, ip.addr, 16);
        req->n_routes = 1;
        assert_int_equal(rh_ip_parse("10.0.0.1", &ip, NULL), 0);
        req->routes[0] = (struct rh_route){.iface = 0, .family = 4, .has_gateway = true};
        memcpy(req->routes[0].gateway, ip.addr, 16);
}

/* A sparse memory file of @size bytes. */
static void make_file(uint64_t size)
{
        int fd;

        snprintf(path, sizeof(path), "/tmp/rh-test-patch-XXXXXX");
        fd = mkstemp(path);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t)size), 0);
        close(fd);
}

static void put_page(uint64_t offset, const uint8_t *page)
{
        int fd = open(path, O_WRONLY | O_CLOEXEC);

        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, page, RH_MAILBOX_SIZE, (off_t)offset), RH_MAILBOX_SIZE);
        close(fd);
}

static void get_page(uint64_t offset, uint8_t *page)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        assert_true(fd >= 0);
        assert_int_equal(pread(fd, page, RH_MAILBOX_SIZE, (off_t)offset), RH_MAILBOX_SIZE);
        close(fd);
}

static struct rh_layout *layout_of(const char *spec)
{
        struct rh_layout *l = NULL;
        struct rh_error err = {};

        assert_int_equal(rh_layout_parse(spec, &l, &err), 0);
        return l;
}

static int teardown(void **state)
{
        if (child > 0) {
                kill(child, SIGKILL);
                waitpid(child, NULL, 0);
                child = -1;
        }
        if (path[0])
                unlink(path);
        path[0] = '\0';
        return 0;
}

/* Two regions with a hole; the mailbox sits in the second one. */
#define SPEC_2R "regions:0:1M,0x100000000:1M"
#define MB_GPA  0x100003000ull
#define MB_OFF  0x103000ull

static void test_file_patch_hint(void **state)
{
        struct rh_layout *l = layout_of(SPEC_2R);
        struct rh_target *t = NULL;
        struct rh_target_stats st;
        struct rh_request req, got;
        struct rh_error err = {};
        uint8_t page[RH_MAILBOX_SIZE];
        uint64_t gpa = 0, nonce = 0;
        uint32_t seq = 0, len;

        make_file(2 * MiB);
        make_page(page, MB_GPA, token);
        put_page(MB_OFF, page);
        assert_int_equal(rh_target_open_file(path, l, true, &t, &err), 0);

        /* O(1): exactly one 4 KiB read. */
        assert_int_equal(rh_mailbox_locate(t, MB_GPA, token, false, &gpa, &err), 0);
        assert_int_equal(gpa, MB_GPA);
        rh_target_get_stats(t, &st);
        assert_int_equal(st.read_calls, 1);
        assert_int_equal(st.bytes_read, 4096);
        assert_int_equal(st.write_calls, 0);

        /* seq 0 = one more than the page's (0 -> 1). */
        rh_target_reset_stats(t);
        make_request(&req);
        assert_int_equal(rh_mailbox_patch(t, MB_GPA, token, &req, &seq, &err), 0);
        assert_int_equal(seq, 1);
        get_page(MB_OFF, page);
        len = unaligned_read_le32(page + RH_OFF_REQUEST + 0x10);
        rh_target_get_stats(t, &st);
        assert_int_equal(st.read_calls, 1);
        assert_int_equal(st.bytes_read, 4096);
        assert_int_equal(st.write_calls, 3); /* seq 0, body, then seq */
        assert_int_equal(st.bytes_written, 4 + (RH_OFF_PAYLOAD - RH_OFF_REQUEST - 4) + len + 4);

        assert_int_equal(rh_mailbox_read_request(page, &got, &seq, &nonce, &err), 0);
        assert_int_equal(seq, 1);
        assert_int_equal(got.seq, 1);
        assert_int_equal(got.nonce, 0x1122334455667788ull);
        assert_int_equal(got.n_ifaces, 1);
        assert_string_equal(got.ifaces[0].name, "eth0");
        assert_memory_equal(got.ifaces[0].mac, req.ifaces[0].mac, 6);
        assert_int_equal(got.n_addrs, 1);
        assert_int_equal(got.addrs[0].prefix, 24);
        assert_memory_equal(got.addrs[0].addr, req.addrs[0].addr, 16);
        /* The arm header is untouched. */
        assert_true(rh_mailbox_matches(page, sizeof(page), token));

        /* Again: 1 -> 2. */
        assert_int_equal(rh_mailbox_patch(t, MB_GPA, token, &req, &seq, &err), 0);
        assert_int_equal(seq, 2);
        /* Explicit seq, then wrap: 0xffffffff + 1 skips 0. */
        req.seq = 0xffffffffu;
        assert_int_equal(rh_mailbox_patch(t, MB_GPA, token, &req, &seq, &err), 0);
        assert_int_equal(seq, 0xffffffffu);
        req.seq = 0;
        assert_int_equal(rh_mailbox_patch(t, MB_GPA, NULL, &req, &seq, &err), 0);
        assert_int_equal(seq, 1);
        get_page(MB_OFF, page);
        assert_int_equal(unaligned_read_le32(page + RH_OFF_REQUEST), 1);

        rh_target_free(t);
        rh_layout_free(l);
}

static void test_file_patch_errors(void **state)
{
        struct rh_layout *l = layout_of(SPEC_2R);
        struct rh_target *t = NULL, *ro = NULL;
        struct rh_request req;
        struct rh_error err = {};
        uint8_t page[RH_MAILBOX_SIZE], before[RH_MAILBOX_SIZE];
        uint32_t seq = 77;

        make_file(2 * MiB);
        make_page(page, MB_GPA, token);
        put_page(MB_OFF, page);
        assert_int_equal(rh_target_open_file(path, l, true, &t, &err), 0);
        make_request(&req);

        assert_int_equal(rh_mailbox_patch(t, MB_GPA, other_token, &req, &seq, &err), -ENOENT);
        assert_string_equal(err.msg, "mailbox at gpa 0x100003000: token does not match");
        assert_int_equal(rh_mailbox_patch(t, MB_GPA + 0x1000, token, &req, &seq, &err), -ENOENT);
        assert_string_equal(err.msg, "mailbox at gpa 0x100004000: no mailbox magic");
        assert_int_equal(rh_mailbox_patch(t, MB_GPA + 8, token, &req, &seq, &err), -EINVAL);
        assert_string_equal(err.msg, "mailbox gpa 0x100003008 is not 4 KiB aligned");
        assert_int_equal(rh_mailbox_patch(t, 0xc0000000, token, &req, &seq, &err), -EFAULT);
        assert_string_equal(err.msg, "mailbox at gpa 0xc0000000: gpa 0xc0000000 is in a hole "
                                     "(no RAM between 0x100000 and 0x100000000)");
        assert_int_equal(rh_mailbox_patch(t, 0x100100000, token, &req, &seq, &err), -EFAULT);
        assert_string_equal(err.msg, "mailbox at gpa 0x100100000: gpa 0x100100000 is past the end of guest "
                                     "RAM (0x100100000)");
        /* The last page of a region reads fine but is no mailbox. */
        assert_int_equal(rh_mailbox_patch(t, 0xff000, token, &req, &seq, &err), -ENOENT);

        /* An invalid request is refused before anything is written. */
        get_page(MB_OFF, before);
        req.ifaces[0].mac[0] = 0x01; /* multicast */
        assert_int_equal(rh_mailbox_patch(t, MB_GPA, token, &req, &seq, &err), -EINVAL);
        assert_string_equal(err.msg,
                            "mailbox at gpa 0x100003000: request: interface 0: MAC 01:00:00:00:00:05 "
                            "is not unicast");
        get_page(MB_OFF, page);
        assert_memory_equal(page, before, sizeof(page));
        assert_int_equal(seq, 77); /* out-parameter untouched on failure */

        /* A page recording another gpa (a stale copy) is not the mailbox. */
        make_page(page, 0x100005000, token);
        put_page(MB_OFF, page);
        make_request(&req);
        assert_int_equal(rh_mailbox_patch(t, MB_GPA, token, &req, &seq, &err), -ENOENT);
        assert_string_equal(err.msg, "mailbox at gpa 0x100003000: page records gpa 0x100005000, not its own "
                                     "address");
        /* A corrupt arm header. */
        make_page(page, MB_GPA, token);
        page[0x20] ^= 0xff;
        put_page(MB_OFF, page);
        assert_int_equal(rh_mailbox_patch(t, MB_GPA, token, &req, &seq, &err), -EBADMSG);
        assert_string_equal(err.msg, "mailbox at gpa 0x100003000: arm header CRC mismatch");

        /* Read-only target. */
        make_page(page, MB_GPA, token);
        put_page(MB_OFF, page);
        assert_int_equal(rh_target_open_file(path, l, false, &ro, &err), 0);
        assert_int_equal(rh_mailbox_patch(ro, MB_GPA, token, &req, &seq, &err), -EBADF);
        assert_int_equal(err.code, EBADF);
        {
                char msg[256];
                snprintf(msg, sizeof(msg), "patch mailbox at gpa 0x100003000: %s: opened read-only", path);
                assert_string_equal(err.msg, msg);
        }
        rh_target_free(ro);
        rh_target_free(t);
        rh_layout_free(l);
}

static void test_file_locate(void **state)
{
        struct rh_layout *l = layout_of(SPEC_2R);
        struct rh_target *t = NULL;
        struct rh_target_stats st;
        struct rh_error err = {};
        uint8_t page[RH_MAILBOX_SIZE];
        uint64_t gpa = 0;

        make_file(2 * MiB);
        assert_int_equal(rh_target_open_file(path, l, false, &t, &err), 0);

        /* No mailbox anywhere. */
        assert_int_equal(rh_mailbox_locate(t, RH_GPA_NONE, NULL, true, &gpa, &err), -ENOENT);
        assert_string_equal(err.msg, "no mailbox found in 0x200000 bytes of guest RAM");
        assert_int_equal(rh_mailbox_locate(t, RH_GPA_NONE, NULL, false, &gpa, &err), -ENOENT);
        assert_string_equal(err.msg, "no mailbox hint and no scan");

        /* A stale copy (records MB_GPA) at gpa 0x5000, the real one at MB_GPA. */
        make_page(page, MB_GPA, token);
        put_page(0x5000, page);
        put_page(MB_OFF, page);

        rh_target_reset_stats(t);
        assert_int_equal(rh_mailbox_locate(t, RH_GPA_NONE, token, true, &gpa, &err), 0);
        assert_int_equal(gpa, MB_GPA);
        rh_target_get_stats(t, &st);
        assert_int_equal(st.read_calls, 2); /* one 1 MiB chunk per region */
        assert_int_equal(st.bytes_read, 2 * MiB);

        /* Any token. */
        assert_int_equal(rh_mailbox_locate(t, RH_GPA_NONE, NULL, true, &gpa, &err), 0);
        assert_int_equal(gpa, MB_GPA);

        /* A hint that fails falls back to the scan... */
        gpa = 0;
        assert_int_equal(rh_mailbox_locate(t, 0x2000, token, true, &gpa, &err), 0);
        assert_int_equal(gpa, MB_GPA);
        /* ...or, without fallback, says why. */
        assert_int_equal(rh_mailbox_locate(t, 0x2000, token, false, &gpa, &err), -ENOENT);
        assert_string_equal(err.msg, "mailbox at gpa 0x2000: no mailbox magic");
        assert_int_equal(rh_mailbox_locate(t, 0x5000, token, false, &gpa, &err), -ENOENT);
        assert_string_equal(err.msg,
                            "mailbox at gpa 0x5000: page records gpa 0x100003000, not its own address");
        assert_int_equal(rh_mailbox_locate(t, MB_GPA, other_token, false, &gpa, &err), -ENOENT);
        assert_string_equal(err.msg, "mailbox at gpa 0x100003000: token does not match");
        assert_int_equal(rh_mailbox_locate(t, 0xc0000000, token, false, &gpa, &err), -EFAULT);
        assert_string_equal(err.msg, "mailbox at gpa 0xc0000000: gpa 0xc0000000 is in a hole "
                                     "(no RAM between 0x100000 and 0x100000000)");
        assert_int_equal(rh_mailbox_locate(t, 0x1001, token, true, &gpa, &err), -EINVAL);
        assert_string_equal(err.msg, "mailbox gpa 0x1001 is not 4 KiB aligned");

        /* Wrong token everywhere: the scan reports the hint's failure too. */
        assert_int_equal(rh_mailbox_locate(t, MB_GPA, other_token, true, &gpa, &err), -ENOENT);
        assert_string_equal(err.msg, "no mailbox found in 0x200000 bytes of guest RAM (hint: mailbox at gpa "
                                     "0x100003000: token does not match)");

        rh_target_free(t);
        rh_layout_free(l);
}

static void test_file_short(void **state)
{
        /* The layout says 2 MiB, the file holds 1 MiB + 8 KiB. */
        struct rh_layout *l = layout_of("regions:0:2M");
        struct rh_target *t = NULL;
        struct rh_target_stats st;
        struct rh_error err = {};
        uint8_t page[RH_MAILBOX_SIZE];
        uint64_t gpa = 0;
        char msg[256];

        make_file(1 * MiB + 8192);
        make_page(page, 0x100000, token);
        put_page(0x100000, page);
        assert_int_equal(rh_target_open_file(path, l, false, &t, &err), 0);
        assert_int_equal(rh_target_read(t, 0x180000, page, 16, &err), -EFAULT);
        snprintf(msg, sizeof(msg), "%s: file offset 0x180000 is past the end of the file (0x102000 bytes)",
                 path);
        assert_string_equal(err.msg, msg);
        /* A read that starts inside and runs past the end also fails, with nothing returned. */
        assert_int_equal(rh_target_read(t, 0x101800, page, 4096, &err), -EFAULT);

        rh_target_reset_stats(t);
        assert_int_equal(rh_mailbox_locate(t, RH_GPA_NONE, token, true, &gpa, &err), 0);
        assert_int_equal(gpa, 0x100000);
        rh_target_get_stats(t, &st);
        assert_int_equal(st.bytes_read, 1 * MiB + 8192); /* only what the file has */
        rh_target_free(t);

        assert_int_equal(rh_target_open_file("/nonexistent/mem", l, false, &t, &err), -ENOENT);
        assert_string_equal(err.msg, "/nonexistent/mem: No such file or directory");
        assert_int_equal(rh_target_open_file("/tmp", l, false, &t, &err), -EINVAL);
        assert_string_equal(err.msg, "/tmp: not a regular file");
        rh_layout_free(l);
}

static void test_overlay(void **state)
{
        uint8_t tmpl[RH_MAILBOX_SIZE], copy[RH_MAILBOX_SIZE], out[RH_MAILBOX_SIZE];
        struct rh_request req, got;
        struct rh_error err = {};
        uint32_t seq = 0;

        make_page(tmpl, 0x9dee000, token);
        memcpy(copy, tmpl, sizeof(copy));
        make_request(&req);
        assert_int_equal(rh_mailbox_patch_overlay(tmpl, 0x9dee000, token, &req, out, &seq, &err), 0);
        assert_int_equal(seq, 1);
        assert_memory_equal(tmpl, copy, sizeof(tmpl));  /* template untouched */
        assert_memory_equal(out, tmpl, RH_OFF_REQUEST); /* arm..ack unchanged */
        assert_int_equal(rh_mailbox_read_request(out, &got, NULL, NULL, &err), 0);
        assert_int_equal(got.seq, 1);
        assert_int_equal(got.nonce, req.nonce);

        /* Patch the patched page in place: seq 2. */
        assert_int_equal(rh_mailbox_patch_overlay(out, RH_GPA_NONE, NULL, &req, out, &seq, &err), 0);
        assert_int_equal(seq, 2);

        memset(copy, 0xaa, sizeof(copy));
        memcpy(out, copy, sizeof(out));
        assert_int_equal(rh_mailbox_patch_overlay(tmpl, 0x9def000, token, &req, out, &seq, &err), -ENOENT);
        assert_string_equal(err.msg, "overlay page: page records gpa 0x9dee000, not its own address");
        assert_int_equal(rh_mailbox_patch_overlay(tmpl, 0x9dee000, other_token, &req, out, &seq, &err),
                         -ENOENT);
        assert_string_equal(err.msg, "overlay page: token does not match");
        assert_memory_equal(out, copy, sizeof(out)); /* written only on success */
}

/* rh_mailbox_patch with no nonce draws a random nonzero one (issue 13). */
static void test_patch_random_nonce(void **state)
{
        struct rh_layout *l = layout_of(SPEC_2R);
        struct rh_target *t = NULL;
        struct rh_request req, got;
        struct rh_error err = {};
        uint8_t page[RH_MAILBOX_SIZE], out[RH_MAILBOX_SIZE];
        uint64_t nonce1 = 0, nonce2 = 0, n = 0;
        uint32_t seq = 0;

        make_file(2 * MiB);
        make_page(page, MB_GPA, token);
        put_page(MB_OFF, page);
        assert_int_equal(rh_target_open_file(path, l, true, &t, &err), 0);
        make_request(&req);
        req.nonce = 0;

        assert_int_equal(rh_mailbox_patch_nonce(t, MB_GPA, token, &req, &seq, &nonce1, &err), 0);
        assert_int_equal(seq, 1);
        assert_true(nonce1 != 0);
        get_page(MB_OFF, page);
        assert_int_equal(rh_mailbox_read_request(page, &got, NULL, &n, &err), 0);
        assert_int_equal(n, nonce1); /* the nonce returned is the one written */
        assert_int_equal(got.nonce, nonce1);

        /* rh_mailbox_patch draws too, a different one each time. */
        assert_int_equal(rh_mailbox_patch(t, MB_GPA, token, &req, &seq, &err), 0);
        get_page(MB_OFF, page);
        assert_int_equal(rh_mailbox_read_request(page, &got, NULL, &nonce2, &err), 0);
        assert_true(nonce2 != 0);
        assert_true(nonce2 != nonce1);

        /* A caller's nonce is kept as given. */
        req.nonce = 0x42;
        assert_int_equal(rh_mailbox_patch_nonce(t, MB_GPA, token, &req, &seq, &n, &err), 0);
        assert_int_equal(n, 0x42);
        get_page(MB_OFF, page);
        assert_int_equal(rh_mailbox_read_request(page, &got, NULL, NULL, &err), 0);
        assert_int_equal(got.nonce, 0x42);

        /* The overlay strategy draws as well. */
        req.nonce = 0;
        assert_int_equal(rh_mailbox_patch_overlay(page, MB_GPA, token, &req, out, &seq, &err), 0);
        assert_int_equal(rh_mailbox_read_request(out, &got, NULL, NULL, &err), 0);
        assert_true(got.nonce != 0);
        assert_true(got.nonce != 0x42);

        rh_target_free(t);
        rh_layout_free(l);
}

static void test_file_ack_and_prearm(void **state)
{
        struct rh_layout *l = layout_of(SPEC_2R);
        struct rh_target *t = NULL;
        struct rh_ack ack = {}, got = {};
        struct rh_error err = {};
        uint8_t page[RH_MAILBOX_SIZE];
        uint32_t seq = 0, interval = 0;
        bool active = true;

        make_file(2 * MiB);
        make_page(page, MB_GPA, token);
        put_page(MB_OFF, page);
        assert_int_equal(rh_target_open_file(path, l, true, &t, &err), 0);

        assert_int_equal(rh_mailbox_ack_read(t, MB_GPA, &got, &err), -ENODATA);
        assert_string_equal(err.msg, "ack at gpa 0x100003000: no ack yet");

        ack.seq = 3;
        ack.nonce = 0xabcdef;
        ack.status = RH_ACK_APPLIED;
        ack.signal = RH_SIGNAL_VMGENID_KMSG;
        ack.applied = RH_APPLIED_MAC | RH_APPLIED_ADDRS;
        ack.t_signal_ns = 100;
        ack.t_ack_ns = 200;
        strcpy(ack.error, "");
        rh_mailbox_write_ack(page, &ack);
        put_page(MB_OFF, page);
        assert_int_equal(rh_mailbox_ack_read(t, MB_GPA, &got, &err), 0);
        assert_int_equal(got.seq, 3);
        assert_int_equal(got.nonce, 0xabcdef);
        assert_int_equal(got.status, RH_ACK_APPLIED);
        assert_int_equal(got.signal, RH_SIGNAL_VMGENID_KMSG);
        assert_int_equal(got.applied, RH_APPLIED_MAC | RH_APPLIED_ADDRS);
        assert_int_equal(got.t_ack_ns, 200);

        page[RH_OFF_ACK + 0x10] ^= 1; /* corrupt the status */
        put_page(MB_OFF, page);
        assert_int_equal(rh_mailbox_ack_read(t, MB_GPA, &got, &err), -EBADMSG);
        assert_true(strncmp(err.msg, "ack at gpa 0x100003000: ack CRC32C mismatch", 43) == 0);
        assert_int_equal(rh_mailbox_ack_read(t, MB_GPA + 1, &got, &err), -EINVAL);

        /* Prearm: interval and window, then seq. */
        make_page(page, MB_GPA, token);
        put_page(MB_OFF, page);
        assert_int_equal(rh_mailbox_prearm(t, MB_GPA, token, 0, 1000, 500, &err), -EINVAL);
        assert_string_equal(err.msg, "prearm sequence number 0 is reserved");
        assert_int_equal(rh_mailbox_prearm(t, MB_GPA, other_token, 1, 1000, 500, &err), -ENOENT);
        rh_target_reset_stats(t);
        assert_int_equal(rh_mailbox_prearm(t, MB_GPA, token, 9, 1000, 500, &err), 0);
        {
                struct rh_target_stats st;
                rh_target_get_stats(t, &st);
                assert_int_equal(st.write_calls, 2);
                assert_int_equal(st.bytes_written, 12);
        }
        get_page(MB_OFF, page);
        assert_int_equal(unaligned_read_le32(page + RH_OFF_PREARM), 9);
        assert_int_equal(unaligned_read_le32(page + RH_OFF_PREARM + 4), 1000);
        assert_int_equal(unaligned_read_le32(page + RH_OFF_PREARM + 8), 500);

        /* The agent's confirm. */
        page[RH_OFF_PREARM_CONFIRM] = 9;
        page[RH_OFF_PREARM_CONFIRM + 4] = 0xe8; /* 1000 */
        page[RH_OFF_PREARM_CONFIRM + 5] = 0x03;
        page[RH_OFF_PREARM_CONFIRM + 8] = 1;
        put_page(MB_OFF, page);
        assert_int_equal(rh_mailbox_prearm_confirm_read(t, MB_GPA, &seq, &interval, &active, &err), 0);
        assert_int_equal(seq, 9);
        assert_int_equal(interval, 1000);
        assert_true(active);

        rh_target_free(t);
        rh_layout_free(l);
}

/* ---- strategy (b): a real process ---- */

#define PID_GPA 0x42000ull
#define HALF    0x80000ull

struct child_report {
        int r;
        uint32_t seq;
        uint64_t nonce;
        uint8_t mac[6];
        uint8_t addr[16];
};

/*
 * The child maps the 1 MiB file MAP_PRIVATE in two pieces, second half
 * first (at a lower address than the first half, with a gap between them),
 * reports ready, and waits. On 'C' it decodes the request from its own
 * memory, reports, acks into its own (private) page, and reports 'A'.
 */
static void child_main(int cmd_fd, int report_fd)
{
        uint8_t *base, *first, *second, c = 0;
        struct child_report rep = {};
        struct rh_request req;
        struct rh_ack ack = {};
        int fd;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        base = mmap(NULL, 3 * HALF, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (fd < 0 || base == MAP_FAILED)
                _exit(10);
        second = mmap(base, HALF, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, (off_t)HALF);
        first = mmap(base + 2 * HALF, HALF, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0);
        if (second == MAP_FAILED || first == MAP_FAILED)
                _exit(11);
        if (write(report_fd, "R", 1) != 1)
                _exit(12);
        if (read(cmd_fd, &c, 1) != 1 || c != 'C')
                _exit(13);
        rep.r = rh_mailbox_read_request(first + PID_GPA, &req, &rep.seq, &rep.nonce, NULL);
        if (rep.r == 0) {
                memcpy(rep.mac, req.ifaces[0].mac, 6);
                memcpy(rep.addr, req.addrs[0].addr, 16);
        }
        if (write(report_fd, &rep, sizeof(rep)) != sizeof(rep))
                _exit(14);
        ack.seq = rep.seq;
        ack.nonce = rep.nonce;
        ack.status = RH_ACK_APPLIED;
        ack.signal = RH_SIGNAL_POLL;
        strcpy(ack.error, "applied by child");
        rh_mailbox_write_ack(first + PID_GPA, &ack);
        if (write(report_fd, "A", 1) != 1)
                _exit(15);
        if (read(cmd_fd, &c, 1) < 0) /* returns at EOF, when the parent closes its end */
                _exit(16);
        _exit(0);
}

static void read_file_all(uint8_t *buf, size_t len)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        assert_true(fd >= 0);
        assert_int_equal(pread(fd, buf, len, 0), (ssize_t)len);
        close(fd);
}

static void test_pid_patch(void **state)
{
        struct rh_layout *l = layout_of("regions:0:1M");
        struct rh_target *t = NULL;
        struct rh_target_stats st;
        struct rh_request req, got;
        struct rh_ack ack = {};
        struct rh_error err = {};
        struct child_report rep = {};
        uint8_t page[RH_MAILBOX_SIZE], *before, *after, buf[0x1000], c = 0;
        int cmd[2], report[2], status = 0;
        uint64_t gpa = 0;
        uint32_t seq = 0;
        char other[64], msg[256];
        pid_t dead;

        make_file(1 * MiB);
        make_page(page, PID_GPA, token);
        memset(page + 0x800, 0x5a, 0x100); /* something to see across the piece boundary */
        put_page(PID_GPA, page);
        {
                uint8_t edge[RH_MAILBOX_SIZE];
                for (size_t i = 0; i < sizeof(edge); i++)
                        edge[i] = (uint8_t)(i * 7);
                put_page(HALF - 0x800, edge); /* straddles the two mapping pieces */
        }
        before = malloc(1 * MiB);
        after = malloc(1 * MiB);
        assert_non_null(before);
        assert_non_null(after);
        read_file_all(before, 1 * MiB);

        assert_int_equal(pipe2(cmd, O_CLOEXEC), 0);
        assert_int_equal(pipe2(report, O_CLOEXEC), 0);
        child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                close(cmd[1]);
                close(report[0]);
                child_main(cmd[0], report[1]);
        }
        close(cmd[0]);
        close(report[1]);
        assert_int_equal(read(report[0], &c, 1), 1);
        assert_int_equal(c, 'R');

        /* A file the child does not map. */
        snprintf(other, sizeof(other), "%s", path);
        {
                char saved[64];
                snprintf(saved, sizeof(saved), "%s", path);
                make_file(4096);
                snprintf(other, sizeof(other), "%s", path);
                snprintf(path, sizeof(path), "%s", saved);
        }
        assert_int_equal(rh_target_open_pid(child, other, l, true, &t, &err), -ENOENT);
        snprintf(msg, sizeof(msg), "%s is not mapped by process %d", other, (int)child);
        assert_string_equal(err.msg, msg);
        unlink(other);

        assert_int_equal(rh_target_open_pid(child, path, l, true, &t, &err), 0);

        /* A read across the two mapping pieces: one pread per piece, bytes as in the file. */
        rh_target_reset_stats(t);
        assert_int_equal(rh_target_read(t, HALF - 0x800, buf, sizeof(buf), &err), 0);
        assert_memory_equal(buf, before + HALF - 0x800, sizeof(buf));
        rh_target_get_stats(t, &st);
        assert_int_equal(st.read_calls, 2);

        /* Locate by hint (one read) and by scan. */
        rh_target_reset_stats(t);
        assert_int_equal(rh_mailbox_locate(t, PID_GPA, token, false, &gpa, &err), 0);
        assert_int_equal(gpa, PID_GPA);
        rh_target_get_stats(t, &st);
        assert_int_equal(st.read_calls, 1);
        assert_int_equal(st.bytes_read, 4096);
        /* The scan reads the file (first piece: 512 KiB) and confirms the find live (4 KiB). */
        gpa = 0;
        rh_target_reset_stats(t);
        assert_int_equal(rh_mailbox_locate(t, RH_GPA_NONE, token, true, &gpa, &err), 0);
        assert_int_equal(gpa, PID_GPA);
        rh_target_get_stats(t, &st);
        assert_int_equal(st.read_calls, 2);
        assert_int_equal(st.bytes_read, HALF + 4096);

        /* A mailbox only in the process's private memory: the file pass misses it, the live pass finds it. */
        {
                static const uint8_t token2[RH_TOKEN_LEN] = {2, 2, 2};
                static const uint8_t token3[RH_TOKEN_LEN] = {3, 3, 3};
                uint8_t zero[RH_MAILBOX_SIZE] = {};

                make_page(page, 0xa0000, token2);
                assert_int_equal(rh_target_write(t, 0xa0000, page, sizeof(page), &err), 0);
                rh_target_reset_stats(t);
                assert_int_equal(rh_mailbox_locate(t, RH_GPA_NONE, token2, true, &gpa, &err), 0);
                assert_int_equal(gpa, 0xa0000);
                rh_target_get_stats(t, &st);
                assert_int_equal(st.bytes_read, 2 * MiB); /* the file, then the process (2 x 512 KiB) */

                /* In the file but no longer in the process: a candidate that does not confirm. */
                assert_int_equal(rh_target_write(t, 0xc0000, zero, sizeof(zero), &err), 0); /* COW the page */
                make_page(page, 0xc0000, token3);
                put_page(0xc0000, page);
                assert_int_equal(rh_mailbox_locate(t, RH_GPA_NONE, token3, true, &gpa, &err), -ENOENT);
                assert_string_equal(err.msg, "no mailbox found in 0x100000 bytes of guest RAM");
                memset(page, 0, sizeof(page));
                put_page(0xc0000, page); /* the file as it was */
        }

        /* Patch through /proc/<child>/mem. */
        make_request(&req);
        req.nonce = 0x5eed;
        assert_int_equal(rh_mailbox_patch(t, PID_GPA, token, &req, &seq, &err), 0);
        assert_int_equal(seq, 1);

        /* The parent sees the request in the child's memory... */
        assert_int_equal(rh_target_read(t, PID_GPA, page, sizeof(page), &err), 0);
        assert_int_equal(rh_mailbox_read_request(page, &got, NULL, NULL, &err), 0);
        assert_int_equal(got.nonce, 0x5eed);
        /* ...and so does the child. */
        assert_int_equal(write(cmd[1], "C", 1), 1);
        assert_int_equal(read(report[0], &rep, sizeof(rep)), (ssize_t)sizeof(rep));
        assert_int_equal(rep.r, 0);
        assert_int_equal(rep.seq, 1);
        assert_int_equal(rep.nonce, 0x5eed);
        assert_memory_equal(rep.mac, req.ifaces[0].mac, 6);
        assert_memory_equal(rep.addr, req.addrs[0].addr, 16);

        /* The child acked into its private page; read it back live. */
        assert_int_equal(read(report[0], &c, 1), 1);
        assert_int_equal(c, 'A');
        assert_int_equal(rh_mailbox_ack_read(t, PID_GPA, &ack, &err), 0);
        assert_int_equal(ack.seq, 1);
        assert_int_equal(ack.nonce, 0x5eed);
        assert_int_equal(ack.status, RH_ACK_APPLIED);
        assert_int_equal(ack.signal, RH_SIGNAL_POLL);
        assert_string_equal(ack.error, "applied by child");

        /* COW held: the file on disk is byte-identical. */
        read_file_all(after, 1 * MiB);
        assert_memory_equal(before, after, 1 * MiB);

        /* A second patch (seq 2) still leaves the file alone. */
        assert_int_equal(rh_mailbox_patch(t, PID_GPA, token, &req, &seq, &err), 0);
        assert_int_equal(seq, 2);
        read_file_all(after, 1 * MiB);
        assert_memory_equal(before, after, 1 * MiB);

        rh_target_free(t);
        t = NULL;
        close(cmd[1]); /* EOF: the child exits */
        close(report[0]);
        assert_int_equal(waitpid(child, &status, 0), child);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        dead = child;
        child = -1;

        assert_int_equal(rh_target_open_pid(dead, path, l, true, &t, &err), -ESRCH);
        snprintf(msg, sizeof(msg), "no process %d", (int)dead);
        assert_string_equal(err.msg, msg);
        assert_int_equal(rh_target_open_pid(1, "/nonexistent/mem", l, true, &t, &err), -ENOENT);
        assert_string_equal(err.msg, "/nonexistent/mem: No such file or directory");

        free(before);
        free(after);
        rh_layout_free(l);
}

/* A V1 marker (magic + @tok, NUL-padded to +64, seq and length 0) at file offset @off. */
static void put_v1_marker(uint64_t off, const char *tok)
{
        uint8_t m[RH_V1_OFF_JSON] = {};
        int fd = open(path, O_WRONLY | O_CLOEXEC);

        memcpy(m, RH_V1_MAGIC, RH_V1_MAGIC_LEN);
        memcpy(m + RH_V1_MAGIC_LEN, tok, strlen(tok));
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, m, sizeof(m), (off_t)off), (ssize_t)sizeof(m));
        close(fd);
}

static void get_bytes(uint64_t off, void *buf, size_t len)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        assert_true(fd >= 0);
        assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
        close(fd);
}

#define V1_TOK30 "thirty bytes: \xc3\xbc \xc3\xa9 \xe2\x86\x92 spaces"

/* hypeman's V1 marker at any byte offset: found by token, patched where it is. */
static void test_v1_locate_patch(void **state)
{
        struct rh_layout *l = layout_of("regions:0:3M,0x100000000:1M");
        struct rh_target *t = NULL;
        struct rh_target_stats st;
        struct rh_error err = {};
        struct rh_request req;
        static uint8_t before[4 * MiB], after[4 * MiB];
        uint8_t head[RH_V1_OFF_JSON];
        uint64_t gpa = 0;
        uint32_t seq = 0;

        make_file(4 * MiB);
        assert_int_equal(rh_target_open_file(path, l, true, &t, &err), 0);
        assert_int_equal(rh_v1_locate(t, RH_GPA_NONE, NULL, true, &gpa, &err), -ENOENT);
        assert_string_equal(err.msg, "no V1 marker in 0x400000 bytes of guest RAM");

        put_v1_marker(0x123457, "decoy");           /* another token, first in gpa order */
        put_v1_marker(MiB - 20, "boundary");        /* across the first 1 MiB read */
        put_v1_marker(0x2abcdf, V1_TOK30);          /* ours: odd offset, 30 bytes, no NUL */
        put_v1_marker(3 * MiB - 100, "tail");       /* its 4 KiB would leave the region */
        put_v1_marker(3 * MiB + 0x123, "region 2"); /* gpa 0x100000123 */

        rh_target_reset_stats(t);
        assert_int_equal(rh_v1_locate(t, RH_GPA_NONE, V1_TOK30, true, &gpa, &err), 0);
        assert_int_equal(gpa, 0x2abcdf);
        rh_target_get_stats(t, &st);
        assert_int_equal(st.read_calls, 3 + 1); /* three overlapping chunks, then the 4 KiB confirm */
        assert_int_equal(rh_v1_locate(t, RH_GPA_NONE, "boundary", true, &gpa, &err), 0);
        assert_int_equal(gpa, MiB - 20);
        assert_int_equal(rh_v1_locate(t, RH_GPA_NONE, NULL, true, &gpa, &err), 0);
        assert_int_equal(gpa, MiB - 20);
        assert_int_equal(rh_v1_locate(t, RH_GPA_NONE, "region 2", true, &gpa, &err), 0);
        assert_int_equal(gpa, 0x100000123ull);
        assert_int_equal(rh_v1_locate(t, RH_GPA_NONE, "tail", true, &gpa, &err), -ENOENT);
        assert_string_equal(err.msg, "no V1 marker with that token in 0x400000 bytes of guest RAM");
        /* A prefix of the token is not the token; 31 bytes is not a token. */
        assert_int_equal(rh_v1_locate(t, RH_GPA_NONE, "thirty bytes", true, &gpa, &err), -ENOENT);
        assert_int_equal(rh_v1_locate(t, RH_GPA_NONE, V1_TOK30 "x", true, &gpa, &err), -EINVAL);
        assert_string_equal(err.msg, "V1 token must be 1..30 bytes");

        /* The hint is the marker's exact address, any alignment: one 4 KiB read. */
        rh_target_reset_stats(t);
        assert_int_equal(rh_v1_locate(t, 0x2abcdf, V1_TOK30, false, &gpa, &err), 0);
        rh_target_get_stats(t, &st);
        assert_int_equal(st.read_calls, 1);
        assert_int_equal(st.bytes_read, RH_MAILBOX_SIZE);
        assert_int_equal(rh_v1_locate(t, 0x2abce0, V1_TOK30, false, &gpa, &err), -ENOENT);
        assert_string_equal(err.msg, "no V1 marker with that token at gpa 0x2abce0");
        assert_int_equal(rh_v1_locate(t, 0x2abce0, V1_TOK30, true, &gpa, &err), 0);
        assert_int_equal(gpa, 0x2abcdf);

        /* Patch: length + JSON, then seq 1; no byte outside the V1 buffer changes. */
        get_bytes(0, before, sizeof(before));
        make_request(&req);
        req.has_ack_udp = true;
        req.ack_port = 7777;
        assert_int_equal(rh_v1_patch(t, 0x2abcdf, V1_TOK30, &req, &seq, &err), 0);
        assert_int_equal(seq, 1);
        get_bytes(0, after, sizeof(after));
        assert_memory_equal(after, before, 0x2abcdf + RH_V1_OFF_SEQ);
        assert_memory_equal(after + 0x2abcdf + RH_MAILBOX_SIZE, before + 0x2abcdf + RH_MAILBOX_SIZE,
                            sizeof(after) - 0x2abcdf - RH_MAILBOX_SIZE);
        assert_int_equal(unaligned_read_le32(after + 0x2abcdf + RH_V1_OFF_SEQ), 1);
        static const char json[] = "{\"interface_name\":\"eth0\",\"mac\":\"02:00:00:00:00:05\",\"ipv4\":\"10.0.0.5\","
                                   "\"prefix\":24,\"gateway\":\"10.0.0.1\",\"ack_port\":7777}";
        assert_int_equal(unaligned_read_le32(after + 0x2abcdf + RH_V1_OFF_LEN), strlen(json));
        assert_memory_equal(after + 0x2abcdf + RH_V1_OFF_JSON, json, strlen(json));
        for (size_t i = RH_V1_OFF_JSON + strlen(json); i < RH_MAILBOX_SIZE; i++)
                assert_int_equal(after[0x2abcdf + i], 0);
        /* The guest answered (seq 0); the next host writes seq 1 again. */
        memset(after + 0x2abcdf + RH_V1_OFF_SEQ, 0, 4);
        {
                int fd = open(path, O_WRONLY | O_CLOEXEC);
                assert_int_equal(pwrite(fd, after + 0x2abcdf + RH_V1_OFF_SEQ, 4, 0x2abcdf + RH_V1_OFF_SEQ), 4);
                close(fd);
        }
        seq = 0;
        assert_int_equal(rh_v1_patch(t, 0x2abcdf, V1_TOK30, &req, &seq, &err), 0);
        assert_int_equal(seq, 1);
        get_bytes(0x2abcdf, head, sizeof(head));
        assert_int_equal(unaligned_read_le32(head + RH_V1_OFF_SEQ), 1);
        /* Wrong token, wrong place, a request V1 cannot carry: nothing written. */
        get_bytes(0, before, sizeof(before));
        assert_int_equal(rh_v1_patch(t, 0x2abcdf, "decoy", &req, &seq, &err), -ENOENT);
        assert_string_equal(err.msg, "no V1 marker with that token at gpa 0x2abcdf");
        req.n_routes = 0;
        assert_int_equal(rh_v1_patch(t, 0x2abcdf, V1_TOK30, &req, &seq, &err), -EINVAL);
        assert_string_equal(err.msg, "V1 needs an IPv4 default gateway");
        get_bytes(0, after, sizeof(after));
        assert_memory_equal(after, before, sizeof(after));

        rh_target_free(t);
        rh_layout_free(l);
}

/* rh_ack_wait in V1 mode over a datagram socket pair: hypeman's matching rule. */
static int v1_wait(const char *const *lines, struct rh_ack_wait_result *res, struct rh_error *err)
{
        int sv[2], r;
        struct rh_ack_wait_opts o = {.timeout_ms = 100, .v1 = true};

        assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
        for (size_t i = 0; lines[i]; i++)
                assert_int_equal(send(sv[1], lines[i], strlen(lines[i]), 0), (ssize_t)strlen(lines[i]));
        o.udp_fd = sv[0];
        assert_int_equal(rh_mac_parse("02:ab:00:00:00:07", o.v1_mac), 0);
        assert_int_equal(rh_ip_parse("10.7.0.7", &o.v1_ip, NULL), 0);
        r = rh_ack_wait(&o, res, err);
        close(sv[0]);
        close(sv[1]);
        return r;
}

static void test_v1_ack_wait(void **state)
{
        struct rh_ack_wait_result res;
        struct rh_error err = {};
        static const char *const plain[] = {"stage=applied mac=02:ab:00:00:00:07 ip=10.7.0.7", NULL};
        static const char *const older[] = {"stage=signal_seen", "stage=mailbox_seen", "stage=netlink_start",
                                            "stage=netlink_done", "STAGE=APPLIED MAC=02:AB:00:00:00:07 IP=10.7.0.7\n",
                                            NULL};
        static const char *const rehome[] = {"stage=mailbox mac=02:ab:00:00:00:07 ip=10.7.0.7 seq=1",
                                             "stage=applied mac=02:ab:00:00:00:07 ip=10.7.0.7/24 seq=1 signal=poll",
                                             NULL};
        static const char *const foreign[] = {"stage=applied mac=02:ab:00:00:00:08 ip=10.7.0.7",
                                              "stage=applied mac=02:ab:00:00:00:07 ip=10.7.0.70",
                                              "stage=applied mac=02:ab:00:00:00:07",
                                              "stage=error status=invalid seq=1 error=\"x\"", "garbage", NULL};
        static const char *const progress[] = {"stage=netlink_done", "stage=mailbox_seen", NULL};

        assert_int_equal(v1_wait(plain, &res, &err), 0);
        assert_true(res.applied && res.have_line && res.channel == RH_ACK_CHANNEL_UDP);
        assert_string_equal(res.line.mac, "02:ab:00:00:00:07");
        assert_string_equal(res.line.ip, "10.7.0.7");
        assert_int_equal(v1_wait(older, &res, &err), 0);
        assert_true(res.applied && res.saw_read);
        assert_int_equal(res.foreign_lines, 0);
        assert_int_equal(v1_wait(rehome, &res, &err), 0);
        assert_true(res.applied && res.saw_read);
        assert_int_equal(v1_wait(foreign, &res, &err), -ETIMEDOUT);
        assert_int_equal(res.foreign_lines, 5);
        assert_false(res.have_line);
        assert_string_equal(err.msg, "no ack within 100 ms: only UDP lines for other requests or unparsable ones");
        assert_int_equal(v1_wait(progress, &res, &err), -ETIMEDOUT);
        assert_true(res.saw_read);
        assert_string_equal(err.msg,
                            "no ack within 100 ms: the agent read the request but never finished applying it");

        /* V1 has no record: a mailbox target, or no socket, is refused. */
        struct rh_ack_wait_opts o = {.timeout_ms = 100, .v1 = true, .udp_fd = -1, .v1_ip = {.family = 4}};
        assert_int_equal(rh_ack_wait(&o, &res, &err), -EINVAL);
        o.udp_fd = 0;
        o.target = (struct rh_target *)&o; /* never read: refused first */
        assert_int_equal(rh_ack_wait(&o, &res, &err), -EINVAL);
        assert_string_equal(err.msg, "wait for a V1 ack: UDP only (a V1 page has no ack record), an IPv4 address "
                                     "and a timeout > 0");
}

/* Named payloads: the host reads the directory the agent announced and writes the stream. */
static void test_payloads_write(void **state)
{
        struct rh_layout *l = layout_of(SPEC_2R);
        struct rh_target *t = NULL;
        struct rh_request req, got;
        struct rh_error err = {};
        uint8_t page[RH_MAILBOX_SIZE], dir[4096], d0[4096], d1[4096];
        /* Data pages out of order and apart: the stream follows the directory, not the addresses. */
        uint64_t gpas[2] = { 0x100009000ull, 0x100005000ull };
        struct rh_payload p[2] = { { .name = "a.cfg" }, { .name = "big" } };
        static uint8_t bigjson[5000];
        struct rh_payload out[RH_PAYLOADS_MAX];
        struct rh_payloads_ref ref;
        static uint8_t stream[8192];
        struct rh_arm arm = { .abi_major = 1, .arm_generation = 1, .gpa = MB_GPA, .caps = RH_CAP_SIGNAL_POLL };
        uint32_t seq;

        memcpy(arm.token, token, RH_TOKEN_LEN);
        make_file(2 * MiB);
        /* An agent without RH_CAP_PAYLOADS. */
        make_page(page, MB_GPA, token);
        put_page(MB_OFF, page);
        assert_int_equal(rh_target_open_file(path, l, true, &t, &err), 0);
        make_request(&req);
        p[0].data = (const uint8_t *)"{\"k\":1}";
        p[0].len = 7;
        memset(bigjson, ' ', sizeof(bigjson));
        bigjson[0] = '{';
        bigjson[sizeof(bigjson) - 1] = '}';
        p[1].data = bigjson;
        p[1].len = sizeof(bigjson);
        assert_int_equal(rh_payloads_write(t, MB_GPA, token, p, 2, &req, &err), -EOPNOTSUPP);

        /* Armed with a directory at 0x100007000 listing two pages. */
        arm.caps |= RH_CAP_PAYLOADS;
        arm.payload_dir_pfn = (uint32_t)(0x100007000ull >> 12);
        arm.payload_pages = 2;
        memset(page, 0, sizeof(page));
        rh_mailbox_arm_write(page, &arm);
        put_page(MB_OFF, page);
        rh_paydir_write(dir, token, gpas, 2);
        put_page(0x107000, dir);
        assert_int_equal(rh_payloads_write(t, MB_GPA, token, p, 2, &req, &err), 0);
        assert_int_equal(req.payloads_count, 2);
        assert_int_equal(req.payloads_len, 160 + 7 + 5000);
        assert_int_equal(rh_mailbox_patch(t, MB_GPA, token, &req, &seq, &err), 0);

        get_page(0x109000, d0);
        get_page(0x105000, d1);
        memcpy(stream, d0, 4096);
        memcpy(stream + 4096, d1, 4096);
        get_page(MB_OFF, page);
        assert_int_equal(rh_mailbox_read_request(page, &got, &seq, NULL, &err), 0);
        ref = (struct rh_payloads_ref){ got.payloads_count, got.payloads_len, got.payloads_crc };
        assert_int_equal(rh_payloads_stream_decode(stream, &ref, out, &err), 0);
        assert_string_equal(out[0].name, "a.cfg");
        assert_memory_equal(out[0].data, "{\"k\":1}", 7);
        assert_string_equal(out[1].name, "big");
        assert_memory_equal(out[1].data, bigjson, sizeof(bigjson));

        /* More than the two pages armed. */
        p[1].len = 8192 - 160 - 7 + 1;
        static uint8_t bigger[8192];
        memset(bigger, ' ', sizeof(bigger));
        bigger[0] = '{';
        bigger[p[1].len - 1] = '}';
        p[1].data = bigger;
        assert_int_equal(rh_payloads_write(t, MB_GPA, token, p, 2, &req, &err), -ENOSPC);
        assert_string_equal(err.msg, "payloads need 8193 bytes, the agent armed 8192");

        /* A directory of another token. */
        rh_paydir_write(dir, other_token, gpas, 2);
        put_page(0x107000, dir);
        p[1].len = 10;
        bigger[9] = '}';
        assert_int_equal(rh_payloads_write(t, MB_GPA, token, p, 2, &req, &err), -EBADMSG);
        assert_non_null(strstr(err.msg, "token does not match"));
        rh_target_free(t);
        rh_layout_free(l);
}

/* hypeman fork mailboxes: found at any byte offset, across a chunk boundary, past false markers. */
static void test_hfm_locate_patch(void **state)
{
        struct rh_layout *l = layout_of("regions:0:4M");
        struct rh_target *t = NULL;
        struct rh_error err = {};
        uint8_t m[RH_HFM_OFF_SEQ] = {}, page[RH_MAILBOX_SIZE];
        uint64_t gpa = 0;
        const char *json = "{\"instance_name\":\"forked\"}";
        int n, fd;
        /* 1 MiB - 100: the marker straddles the first scan chunk's end. */
        const uint64_t at = MiB - 100;

        make_file(4 * MiB);
        n = rh_hfm_marker("kernel.identity.v1", "template-token", m, &err);
        assert_true(n > 0);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        /* False markers: a token prefix, and the same name with another token. */
        assert_int_equal(pwrite(fd, "HYPEMAN_FORK_MAILBOX_V1\0kernel.identity.v1\0template-tok", 56, 5000), 56);
        assert_int_equal(pwrite(fd, "HYPEMAN_FORK_MAILBOX_V1\0kernel.identity.v1\0other", 49, 9001), 49);
        assert_int_equal(pwrite(fd, m, (size_t)n, (off_t)at), n);
        close(fd);
        assert_int_equal(rh_target_open_file(path, l, true, &t, &err), 0);
        assert_int_equal(rh_hfm_locate(t, "kernel.identity.v1", "template-token", &gpa, &err), 0);
        assert_int_equal(gpa, at);
        assert_int_equal(rh_hfm_locate(t, "kernel.identity.v1", "other", &gpa, &err), 0);
        assert_int_equal(gpa, 9001);
        assert_int_equal(rh_hfm_locate(t, "kernel.identity.v2", NULL, &gpa, &err), -ENOENT);
        assert_string_equal(err.msg, "no fork mailbox kernel.identity.v2 in 0x400000 bytes of guest RAM");

        assert_int_equal(rh_hfm_patch(t, at, "kernel.identity.v1", "template-token", (const uint8_t *)json,
                                      strlen(json), &err), 0);
        get_page(at, page);
        assert_memory_equal(page, m, (size_t)n);
        assert_int_equal(unaligned_read_le32(page + 256), 1);
        assert_int_equal(unaligned_read_le32(page + 260), strlen(json));
        assert_memory_equal(page + 264, json, strlen(json));
        assert_int_equal(rh_hfm_patch(t, at + 1, "kernel.identity.v1", "template-token", (const uint8_t *)json,
                                      strlen(json), &err), -ENOENT);
        assert_int_equal(rh_hfm_patch(t, at, "kernel.identity.v1", "template-token", (const uint8_t *)"[]", 2, &err),
                         -EINVAL);
        rh_target_free(t);
        rh_layout_free(l);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_teardown(test_file_patch_hint, teardown),
                cmocka_unit_test_teardown(test_file_patch_errors, teardown),
                cmocka_unit_test_teardown(test_file_locate, teardown),
                cmocka_unit_test_teardown(test_file_short, teardown),
                cmocka_unit_test_teardown(test_overlay, teardown),
                cmocka_unit_test_teardown(test_patch_random_nonce, teardown),
                cmocka_unit_test_teardown(test_file_ack_and_prearm, teardown),
                cmocka_unit_test_teardown(test_pid_patch, teardown),
                cmocka_unit_test_teardown(test_v1_locate_patch, teardown),
                cmocka_unit_test(test_v1_ack_wait),
                cmocka_unit_test_teardown(test_payloads_write, teardown),
                cmocka_unit_test_teardown(test_hfm_locate_patch, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
