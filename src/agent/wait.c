/* SPDX-License-Identifier: MIT */
/*
 * Waiting for a resume: one epoll loop over every signal source present,
 * first one wins (DESIGN.md decision 3).
 *
 *   vmclock        /dev/vmclock0 poll() (VMCLOCK_FLAG_NOTIFICATION_PRESENT,
 *                  Linux 7.0+): POLLIN until read(); vm_generation_counter
 *                  changes only on a snapshot restore.
 *   vmclock-spin   mmap the vmclock page and watch vm_generation_counter.
 *   vmgenid-uevent NEW_VMGENID=1 on the kobject uevent netlink socket (from root).
 *   vmgenid-kmsg   "crng reseeded due to virtual machine fork" in /dev/kmsg,
 *                  read from its end (Linux 5.18+ prints it on a vmgenid change).
 *   poll           a timerfd that re-reads the request sequence: the safety net.
 *
 * Prearm: a host about to snapshot writes a new prearm seq into the page; on
 * its next look the agent switches the timer to the fast interval, writes the
 * confirm record, and prints "rehome-agent: prearmed seq=<n> interval_us=<n>".
 * The host snapshots after the confirm, so every clone wakes up already
 * fast-polling. After the handoff (or when the window ends) the timer goes
 * back to the slow interval: an idle agent wakes a few times a second at most.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "cleanup.h"
#include "io.h"

#define KMSG_NEEDLE          "crng reseeded due to virtual machine fork"
#define UEVENT_KEY           "NEW_VMGENID=1"
#define SLOW_TICK_MS_NO_POLL 1000u

enum {
        TAG_TIMER = 1,
        TAG_KMSG,
        TAG_UEVENT,
        TAG_VMCLOCK,
        TAG_VMCLOCK_NOTIFY,
};

static uint32_t load32(const uint8_t *p)
{
        uint32_t v = __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE);
        return le32toh(v);
}

static void store32(uint8_t *p, uint32_t v)
{
        __atomic_store_n((uint32_t *)p, htole32(v), __ATOMIC_RELEASE);
}

static uint32_t request_seq(const struct agent *a)
{
        return load32(a->page + (a->opt.format == FORMAT_V1 ? RH_V1_OFF_SEQ : RH_OFF_REQUEST));
}

static int set_timer(struct agent *a, uint64_t interval_us)
{
        struct itimerspec its = {0};

        its.it_interval.tv_sec = (time_t)(interval_us / 1000000u);
        its.it_interval.tv_nsec = (long)(interval_us % 1000000u) * 1000;
        its.it_value = its.it_interval;
        if (timerfd_settime(a->timer_fd, 0, &its, NULL) < 0)
                return -errno;
        return 0;
}

static uint64_t slow_interval_us(const struct agent *a)
{
        return (uint64_t)(a->opt.poll_interval_ms ? a->opt.poll_interval_ms : SLOW_TICK_MS_NO_POLL) * 1000u;
}

/* Open a test-hook path: a FIFO is opened read-write so that epoll never
 * sees a hang-up when the test's writer closes its end. */
static int open_source(const char *path, bool *ret_is_chardev)
{
        struct stat st;
        int fd;

        if (stat(path, &st) < 0)
                return -errno;
        fd = open(path, (S_ISFIFO(st.st_mode) ? O_RDWR : O_RDONLY) | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (ret_is_chardev)
                *ret_is_chardev = S_ISCHR(st.st_mode);
        if (!S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode) && !S_ISSOCK(st.st_mode)) {
                close(fd);
                return -EINVAL; /* epoll cannot watch a regular file */
        }
        return fd;
}

static int watch(struct agent *a, int fd, uint32_t tag)
{
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = tag};

        if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
                return -errno;
        return 0;
}

/* ------------------------------------------------------------------ */
/* vmclock                                                             */

/* A consistent copy of the vmclock structure (seq_count even and stable). */
static int vmclock_read(struct agent *a, struct rh_vmclock_abi *ret)
{
        for (int tries = 0; tries < 1000; tries++) {
                ssize_t n = pread(a->vmclock_fd, ret, sizeof(*ret), 0);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if ((size_t)n < sizeof(*ret))
                        return -EIO;
                if (!(le32toh(ret->seq_count) & 1))
                        return 0;
                sched_yield(); /* the hypervisor is mid-update */
        }
        return -EAGAIN;
}

static int vmclock_setup(struct agent *a, bool spin, struct rh_error *err)
{
        const char *path = a->opt.vmclock_path;
        struct rh_vmclock_abi clk;
        uint64_t flags;
        int r;

        a->vmclock_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (a->vmclock_fd < 0)
                return rh_error_set(err, -errno, "vmclock %s: %s", path, strerror(errno));
        r = vmclock_read(a, &clk);
        if (r < 0)
                return rh_error_set(err, r, "vmclock %s: read: %s", path, strerror(-r));
        if (le32toh(clk.magic) != RH_VMCLOCK_MAGIC)
                return rh_error_set(err, -EINVAL, "vmclock %s: bad magic 0x%08x", path, le32toh(clk.magic));
        if (le16toh(clk.version) != RH_VMCLOCK_VERSION || le32toh(clk.size) < sizeof(clk))
                return rh_error_set(err, -EPROTONOSUPPORT, "vmclock %s: version %u size %u unsupported", path,
                                    le16toh(clk.version), le32toh(clk.size));
        flags = le64toh(clk.flags);
        a->vmclock_has_generation = flags & RH_VMCLOCK_FLAG_VM_GEN_COUNTER_PRESENT;
        a->vmclock_notifies = flags & RH_VMCLOCK_FLAG_NOTIFICATION_PRESENT;
        a->vmclock_generation = le64toh(clk.vm_generation_counter);
        if (spin) {
                void *p;

                if (!a->vmclock_has_generation)
                        return rh_error_set(err, -EOPNOTSUPP,
                                            "vmclock %s: no vm_generation_counter to spin on", path);
                p = mmap(NULL, RH_MAILBOX_SIZE, PROT_READ, MAP_SHARED, a->vmclock_fd, 0);
                if (p == MAP_FAILED)
                        return rh_error_set(err, -errno, "vmclock %s: mmap: %s", path, strerror(errno));
                a->vmclock_map = p;
                return 0;
        }
        if (a->opt.vmclock_notify) {
                /* Test hook: a simulated device cannot poll(); a FIFO stands in. */
                a->vmclock_notify_fd = open_source(a->opt.vmclock_notify, NULL);
                if (a->vmclock_notify_fd < 0)
                        return rh_error_set(err, a->vmclock_notify_fd, "vmclock notify %s: %s",
                                            a->opt.vmclock_notify, strerror(-a->vmclock_notify_fd));
                r = watch(a, a->vmclock_notify_fd, TAG_VMCLOCK_NOTIFY);
        } else {
                if (!a->vmclock_notifies)
                        return rh_error_set(err, -EOPNOTSUPP, "vmclock %s: device sends no notifications",
                                            path);
                r = watch(a, a->vmclock_fd, TAG_VMCLOCK);
        }
        if (r < 0)
                return rh_error_set(err, r, "vmclock: epoll: %s", strerror(-r));
        return 0;
}

/* True if the generation moved (a restore). Any change counts as a look. */
static bool vmclock_changed(struct agent *a)
{
        struct rh_vmclock_abi clk;
        uint64_t gen;

        /* The read also re-arms the device's poll() (it tracks the last seq read). */
        if (vmclock_read(a, &clk) < 0)
                return true;
        gen = le64toh(clk.vm_generation_counter);
        if (gen == a->vmclock_generation)
                return !a->vmclock_has_generation;
        a->vmclock_generation = gen;
        return true;
}

/* ------------------------------------------------------------------ */
/* kmsg and uevent                                                     */

static int kmsg_setup(struct agent *a, struct rh_error *err)
{
        bool chardev = false;
        int r;

        a->kmsg_fd = open_source(a->opt.kmsg_path, &chardev);
        if (a->kmsg_fd < 0)
                return rh_error_set(err, a->kmsg_fd, "kmsg %s: %s", a->opt.kmsg_path, strerror(-a->kmsg_fd));
        /* Only lines printed from now on: the template's boot log may hold an
         * old "reseeded" line. */
        if (chardev && lseek(a->kmsg_fd, 0, SEEK_END) < 0)
                return rh_error_set(err, -errno, "kmsg %s: seek to end: %s", a->opt.kmsg_path,
                                    strerror(errno));
        r = watch(a, a->kmsg_fd, TAG_KMSG);
        if (r < 0)
                return rh_error_set(err, r, "kmsg: epoll: %s", strerror(-r));
        return 0;
}

/* Drain the kmsg source; true if the vmgenid line was among what arrived. */
static bool kmsg_fired(struct agent *a)
{
        bool fired = false;

        for (;;) {
                ssize_t n = read(a->kmsg_fd, a->io_buf, sizeof(a->io_buf));

                if (n < 0) {
                        if (errno == EINTR || errno == EPIPE) /* EPIPE: records overwritten */
                                continue;
                        break; /* EAGAIN: drained */
                }
                if (n == 0)
                        break;
                if (kmsg_scan_feed(&a->kmsg_scan, a->io_buf, (size_t)n))
                        fired = true;
        }
        return fired;
}

static int uevent_setup(struct agent *a, struct rh_error *err)
{
        struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = 1};
        int one = 1, r;

        a->uevent_fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_KOBJECT_UEVENT);
        if (a->uevent_fd < 0)
                return rh_error_set(err, -errno, "uevent socket: %s", strerror(errno));
        if (bind(a->uevent_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return rh_error_set(err, -errno, "uevent bind: %s", strerror(errno));
        if (setsockopt(a->uevent_fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0)
                return rh_error_set(err, -errno, "uevent SO_PASSCRED: %s", strerror(errno));
        r = watch(a, a->uevent_fd, TAG_UEVENT);
        if (r < 0)
                return rh_error_set(err, r, "uevent: epoll: %s", strerror(-r));
        return 0;
}

/* Drain uevents; true if one from root carried NEW_VMGENID=1. */
static bool uevent_fired(struct agent *a)
{
        bool fired = false;

        for (;;) {
                union {
                        struct cmsghdr align;
                        char buf[CMSG_SPACE(sizeof(struct ucred))];
                } control;
                struct iovec iov = {a->io_buf, sizeof(a->io_buf) - 1};
                struct sockaddr_nl from;
                struct msghdr mh = {
                        .msg_name = &from,
                        .msg_namelen = sizeof(from),
                        .msg_iov = &iov,
                        .msg_iovlen = 1,
                        .msg_control = &control,
                        .msg_controllen = sizeof(control),
                };
                struct ucred *cred = NULL;
                ssize_t n = recvmsg(a->uevent_fd, &mh, 0);

                if (n < 0) {
                        if (errno == EINTR || errno == ENOBUFS) /* ENOBUFS: overrun, keep going */
                                continue;
                        break;
                }
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
                            c->cmsg_len >= CMSG_LEN(sizeof(struct ucred)))
                                cred = (struct ucred *)CMSG_DATA(c);
                /* Only the kernel or root may announce a fork. */
                if (!cred || cred->uid != 0)
                        continue;
                if (!(mh.msg_flags & MSG_TRUNC) && uevent_has_vmgenid(a->io_buf, (size_t)n))
                        fired = true;
        }
        return fired;
}

/* ------------------------------------------------------------------ */
/* Prearm                                                              */

static void confirm_write(struct agent *a, uint32_t seq, uint32_t interval_us, bool active)
{
        uint8_t *c = a->page + RH_OFF_PREARM_CONFIRM;

        store32(c + 4, interval_us);
        store32(c + 8, active ? 1 : 0);
        store32(c + 0, seq); /* last: the host waits for its seq */
}

static void leave_fast_poll(struct agent *a, const char *why)
{
        if (!a->fast_poll)
                return;
        a->fast_poll = false;
        (void)set_timer(a, slow_interval_us(a));
        confirm_write(a, a->prearm_served, a->fast_interval_us, false);
        agent_log(a, "fast poll off (%s)", why);
}

static void check_prearm(struct agent *a, uint64_t now)
{
        const uint8_t *p = a->page + RH_OFF_PREARM;
        uint32_t seq, interval, window;

        if (a->opt.format != FORMAT_NATIVE)
                return;
        if (a->fast_poll && a->fast_until_ns && now >= a->fast_until_ns)
                leave_fast_poll(a, "prearm window over");
        seq = load32(p);
        if (seq == 0 || seq == a->prearm_served)
                return;
        interval = load32(p + 4);
        window = load32(p + 8);
        if (interval == 0)
                interval = a->opt.prearm_interval_us;
        if (interval < 100)
                interval = 100;
        if (interval > 1000000)
                interval = 1000000;
        a->prearm_served = seq;
        a->fast_poll = true;
        a->fast_interval_us = interval;
        a->fast_until_ns = window ? now + (uint64_t)window * 1000000u : 0;
        (void)set_timer(a, interval);
        confirm_write(a, seq, interval, true);
        agent_announce(a, "rehome-agent: prearmed seq=%u interval_us=%u", seq, interval);
}

/* ------------------------------------------------------------------ */

int wait_setup(struct agent *a, struct rh_error *err)
{
        unsigned src = a->opt.sources;
        bool forced = a->opt.signal_forced;
        struct rh_error e = {0};
        int r;

        a->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (a->epfd < 0)
                return rh_error_set(err, -errno, "epoll: %s", strerror(errno));
        a->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (a->timer_fd < 0)
                return rh_error_set(err, -errno, "timerfd: %s", strerror(errno));
        r = watch(a, a->timer_fd, TAG_TIMER);
        if (r < 0)
                return rh_error_set(err, r, "timer: epoll: %s", strerror(-r));
        r = set_timer(a, slow_interval_us(a));
        if (r < 0)
                return rh_error_set(err, r, "timer: %s", strerror(-r));

        /* In auto mode a missing source is normal (old kernel, no device);
         * a source asked for by name must work. */
        if (src & (SRC_VMCLOCK | SRC_VMCLOCK_SPIN)) {
                r = vmclock_setup(a, src & SRC_VMCLOCK_SPIN, &e);
                if (r < 0) {
                        if (forced)
                                return rh_error_set(err, r, "%s", e.msg);
                        agent_log(a, "signal vmclock unavailable: %s", e.msg);
                        a->opt.sources &= ~(unsigned)(SRC_VMCLOCK | SRC_VMCLOCK_SPIN);
                }
        }
        if (src & SRC_UEVENT) {
                r = uevent_setup(a, &e);
                if (r < 0) {
                        if (forced && !(src & SRC_KMSG))
                                return rh_error_set(err, r, "%s", e.msg);
                        agent_log(a, "signal vmgenid-uevent unavailable: %s", e.msg);
                        a->opt.sources &= ~(unsigned)SRC_UEVENT;
                }
        }
        if (src & SRC_KMSG) {
                r = kmsg_setup(a, &e);
                if (r < 0) {
                        if (forced && !(a->opt.sources & SRC_UEVENT))
                                return rh_error_set(err, r, "%s", e.msg);
                        agent_log(a, "signal vmgenid-kmsg unavailable: %s", e.msg);
                        a->opt.sources &= ~(unsigned)SRC_KMSG;
                }
        }
        if (!a->opt.sources)
                return rh_error_set(err, -ENODEV, "no signal source available");
        return 0;
}

int wait_for_handoff(struct agent *a, uint64_t *ret_t_signal_ns, struct rh_error *err)
{
        bool spin = a->vmclock_map != NULL;

        for (;;) {
                struct epoll_event ev[8];
                int signal = RH_SIGNAL_NONE, n;
                uint64_t now;

                n = epoll_wait(a->epfd, ev, (int)ELEMENTSOF(ev), spin ? 0 : -1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return rh_error_set(err, -errno, "epoll_wait: %s", strerror(errno));
                }
                for (int i = 0; i < n; i++) {
                        int s = RH_SIGNAL_NONE;

                        switch (ev[i].data.u32) {
                        case TAG_TIMER: {
                                uint64_t ticks;
                                (void)!read(a->timer_fd, &ticks, sizeof(ticks));
                                if (a->fast_poll)
                                        s = RH_SIGNAL_PREARM_POLL;
                                else if (a->opt.sources & SRC_POLL)
                                        s = RH_SIGNAL_POLL;
                                break;
                        }
                        case TAG_KMSG:
                                if (kmsg_fired(a))
                                        s = RH_SIGNAL_VMGENID_KMSG;
                                break;
                        case TAG_UEVENT:
                                if (uevent_fired(a))
                                        s = RH_SIGNAL_VMGENID_UEVENT;
                                break;
                        case TAG_VMCLOCK:
                                if (vmclock_changed(a))
                                        s = RH_SIGNAL_VMCLOCK;
                                break;
                        case TAG_VMCLOCK_NOTIFY: {
                                char drain[64];
                                while (read(a->vmclock_notify_fd, drain, sizeof(drain)) > 0)
                                        ;
                                if (vmclock_changed(a))
                                        s = RH_SIGNAL_VMCLOCK;
                                break;
                        }
                        }
                        /* An event source beats the timer when both fired. */
                        if (s != RH_SIGNAL_NONE && (signal == RH_SIGNAL_NONE || signal == RH_SIGNAL_POLL ||
                                                    signal == RH_SIGNAL_PREARM_POLL))
                                signal = s;
                }
                if (spin) {
                        uint64_t gen = le64toh(a->vmclock_map->vm_generation_counter);

                        if (gen != a->vmclock_generation) {
                                a->vmclock_generation = gen;
                                signal = RH_SIGNAL_VMCLOCK_SPIN;
                        } else if (signal == RH_SIGNAL_NONE) {
                                if (a->opt.spin_interval_us) {
                                        struct timespec ts = {
                                                .tv_nsec = (long)a->opt.spin_interval_us * 1000,
                                        };
                                        nanosleep(&ts, NULL);
                                } else
                                        sched_yield();
                        }
                }
                now = now_ns();
                if (signal == RH_SIGNAL_NONE || signal == RH_SIGNAL_POLL || signal == RH_SIGNAL_PREARM_POLL)
                        check_prearm(a, now);
                if (signal == RH_SIGNAL_NONE)
                        continue;
                {
                        uint32_t seq = request_seq(a);

                        if ((seq != 0 && seq != a->last_seq) || hfm_pending(a)) {
                                *ret_t_signal_ns = now;
                                return signal;
                        }
                }
                if (signal != RH_SIGNAL_POLL && signal != RH_SIGNAL_PREARM_POLL)
                        agent_log(a, "resume signal %s but no new request (seq %u): waiting again",
                                  rh_signal_name((uint32_t)signal), a->last_seq);
        }
}

void wait_handoff_done(struct agent *a)
{
        leave_fast_poll(a, "handoff done");
}
