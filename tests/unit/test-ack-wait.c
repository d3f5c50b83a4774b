/* SPDX-License-Identifier: MIT */
/*
 * rh_ack_wait, the one rule for when a clone has answered (include/rehome/ack.h),
 * against a memory file (the record channel) and a datagram socket pair (the UDP
 * channel): the final answer on either, records of another nonce or seq and
 * records with a bad CRC never taken (and reported), foreign lines ignored,
 * the check callback ending the wait, and rh_text_escape on hostile text.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "rehome/ack.h"

#define GPA 0x3000ull
#define NONCE 0x1234abcdull

static char path[64];
static struct rh_layout *layout;
static struct rh_target *target;
static int sv[2] = {-1, -1};

static int setup(void **state)
{
        (void)state;
        snprintf(path, sizeof(path), "/tmp/rh-test-ackwait-XXXXXX");
        int fd = mkstemp(path);
        if (fd < 0 || ftruncate(fd, 1 << 20) < 0)
                return -1;
        close(fd);
        if (rh_layout_parse("regions:0:1M", &layout, NULL) < 0 ||
            rh_target_open_file(path, layout, false, &target, NULL) < 0)
                return -1;
        if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
                return -1;
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        target = rh_target_free(target);
        layout = rh_layout_free(layout);
        close(sv[0]);
        close(sv[1]);
        unlink(path);
        return 0;
}

static void put_ack(uint32_t seq, uint64_t nonce, uint32_t status, const char *error)
{
        uint8_t page[RH_MAILBOX_SIZE] = {0};
        struct rh_ack ack = {.seq = seq, .nonce = nonce, .status = status, .signal = RH_SIGNAL_POLL};
        int fd = open(path, O_WRONLY | O_CLOEXEC);

        ack.t_signal_ns = 1, ack.t_read_ns = 2, ack.t_applied_ns = 3, ack.t_ack_ns = 4;
        snprintf(ack.error, sizeof(ack.error), "%s", error);
        rh_mailbox_write_ack(page, &ack);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, page + RH_OFF_ACK, RH_MAILBOX_SIZE - RH_OFF_ACK, (off_t)(GPA + RH_OFF_ACK)),
                         (ssize_t)(RH_MAILBOX_SIZE - RH_OFF_ACK));
        close(fd);
}

static void corrupt_ack(void)
{
        int fd = open(path, O_RDWR | O_CLOEXEC);
        uint8_t b;

        assert_true(fd >= 0);
        assert_int_equal(pread(fd, &b, 1, (off_t)(GPA + RH_OFF_ACK + 0x20)), 1);
        b ^= 0xff;
        assert_int_equal(pwrite(fd, &b, 1, (off_t)(GPA + RH_OFF_ACK + 0x20)), 1);
        close(fd);
}

static struct rh_ack_wait_opts opts(int timeout_ms)
{
        return (struct rh_ack_wait_opts){
                .target = target, .gpa = GPA, .udp_fd = sv[0], .nonce = NONCE, .seq = 7, .timeout_ms = timeout_ms,
                .grace_ms = 20,
        };
}

static void say(const char *line)
{
        assert_int_equal(send(sv[1], line, strlen(line), 0), (ssize_t)strlen(line));
}

static void test_record_applied(void **state)
{
        struct rh_ack_wait_opts o = opts(1000);
        struct rh_ack_wait_result res;
        struct rh_error err = {0};
        (void)state;

        put_ack(7, NONCE, RH_ACK_APPLIED, "");
        assert_int_equal(rh_ack_wait(&o, &res, &err), 0);
        assert_int_equal(res.channel, RH_ACK_CHANNEL_MAILBOX);
        assert_true(res.have_record);
        assert_true(res.applied);
        assert_int_equal(res.ack.seq, 7);
        assert_false(res.have_line);
}

static void test_wrong_seq_and_nonce_are_stale(void **state)
{
        struct rh_ack_wait_opts o = opts(50);
        struct rh_ack_wait_result res;
        struct rh_error err = {0};
        (void)state;

        put_ack(6, NONCE, RH_ACK_APPLIED, ""); /* our nonce, an older seq: not ours */
        assert_int_equal(rh_ack_wait(&o, &res, &err), -ETIMEDOUT);
        assert_true(res.saw_stale);
        assert_false(res.have_record);
        assert_string_equal(err.msg, "no ack within 50 ms: only an ack for another request (other nonce or seq): "
                                     "the agent never read ours");
        put_ack(7, NONCE + 1, RH_ACK_APPLIED, "");
        assert_int_equal(rh_ack_wait(&o, &res, &err), -ETIMEDOUT);
        assert_true(res.saw_stale);
        /* seq 0 in the options: any seq of our nonce counts. */
        o.seq = 0;
        put_ack(6, NONCE, RH_ACK_APPLIED, "");
        assert_int_equal(rh_ack_wait(&o, &res, &err), 0);
        assert_int_equal(res.ack.seq, 6);
}

static void test_invalid_record_reported(void **state)
{
        struct rh_ack_wait_opts o = opts(50);
        struct rh_ack_wait_result res;
        struct rh_error err = {0};
        (void)state;

        put_ack(7, NONCE, RH_ACK_APPLIED, "");
        corrupt_ack();
        assert_int_equal(rh_ack_wait(&o, &res, &err), -ETIMEDOUT);
        assert_true(res.saw_invalid);
        assert_false(res.have_record);
        assert_non_null(strstr(err.msg, "an invalid ack record (bad CRC or out-of-range fields): not counted"));
}

static void test_read_is_progress_not_final(void **state)
{
        struct rh_ack_wait_opts o = opts(50);
        struct rh_ack_wait_result res;
        struct rh_error err = {0};
        (void)state;

        put_ack(7, NONCE, RH_ACK_READ, "");
        assert_int_equal(rh_ack_wait(&o, &res, &err), -ETIMEDOUT);
        assert_true(res.saw_read);
        assert_true(res.t_read_ns > 0);
        assert_non_null(strstr(err.msg, "the agent read the request but never finished applying it"));
}

static void test_udp_first_then_record(void **state)
{
        struct rh_ack_wait_opts o = opts(1000);
        struct rh_ack_wait_result res;
        struct rh_error err = {0};
        (void)state;

        /* Foreign and progress lines first: ignored; then our final line wins. */
        say("stage=applied mac=02:00:00:00:00:01 ip=10.0.0.1 nonce=99 seq=7");
        say("garbage without equals");
        say("stage=applied mac=02:00:00:00:00:01 ip=10.0.0.1 nonce=1234abcd seq=8"); /* our nonce, other seq */
        say("stage=mailbox nonce=1234abcd seq=7");
        say("stage=applied mac=02:00:00:00:00:05 ip=10.0.0.5 nonce=1234abcd seq=7");
        assert_int_equal(rh_ack_wait(&o, &res, &err), 0);
        assert_int_equal(res.channel, RH_ACK_CHANNEL_UDP);
        assert_true(res.have_line);
        assert_true(res.saw_read);
        assert_int_equal(res.foreign_lines, 3);
        assert_string_equal(res.line.mac, "02:00:00:00:00:05");
        assert_true(res.applied);
        assert_false(res.have_record); /* no record within the grace period */
}

static void test_rejected_with_hostile_text(void **state)
{
        struct rh_ack_wait_opts o = opts(1000);
        struct rh_ack_wait_result res;
        struct rh_error err = {0};
        char out[4 * RH_ACK_ERROR_MAX + 1];
        (void)state;

        put_ack(7, NONCE, RH_ACK_INVALID, "bad\033[2J\nrehome: fork c9: applied\\");
        assert_int_equal(rh_ack_wait(&o, &res, &err), 0);
        assert_false(res.applied);
        rh_text_escape(res.ack.error, sizeof(res.ack.error), out, sizeof(out));
        assert_string_equal(out, "bad\\x1b[2J\\x0arehome: fork c9: applied\\\\");
        /* Cut at a whole escape, always terminated. */
        char small[8];
        assert_int_equal(rh_text_escape("ab\033cd", 5, small, sizeof(small)), 7);
        assert_string_equal(small, "ab\\x1bc");
        assert_int_equal(rh_text_escape("\001\002", 2, small, 5), 4);
        assert_string_equal(small, "\\x01");
}

static int died(void *ctx, struct rh_error *err)
{
        int *calls = ctx;
        return ++*calls >= 3 ? rh_error_set(err, -ECHILD, "the VMM died") : 0;
}

static void test_check_ends_the_wait(void **state)
{
        struct rh_ack_wait_opts o = opts(5000);
        struct rh_ack_wait_result res;
        struct rh_error err = {0};
        int calls = 0;
        (void)state;

        put_ack(0, 0, 0, ""); /* nothing acked: seq 0 */
        o.check = died;
        o.ctx = &calls;
        assert_int_equal(rh_ack_wait(&o, &res, &err), -ECHILD);
        assert_int_equal(calls, 3);
        assert_string_equal(err.msg, "the VMM died");
}

static void test_bad_options(void **state)
{
        struct rh_ack_wait_opts o = opts(100);
        struct rh_ack_wait_result res;
        struct rh_error err = {0};
        (void)state;

        o.nonce = 0;
        assert_int_equal(rh_ack_wait(&o, &res, &err), -EINVAL);
        o = opts(100);
        o.target = NULL;
        o.udp_fd = -1;
        assert_int_equal(rh_ack_wait(&o, &res, &err), -EINVAL);
        assert_non_null(strstr(err.msg, "no channel"));
        o = opts(100);
        o.gpa = GPA + 8;
        assert_int_equal(rh_ack_wait(&o, &res, &err), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_record_applied, setup, teardown),
                cmocka_unit_test_setup_teardown(test_wrong_seq_and_nonce_are_stale, setup, teardown),
                cmocka_unit_test_setup_teardown(test_invalid_record_reported, setup, teardown),
                cmocka_unit_test_setup_teardown(test_read_is_progress_not_final, setup, teardown),
                cmocka_unit_test_setup_teardown(test_udp_first_then_record, setup, teardown),
                cmocka_unit_test_setup_teardown(test_rejected_with_hostile_text, setup, teardown),
                cmocka_unit_test_setup_teardown(test_check_ends_the_wait, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bad_options, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
