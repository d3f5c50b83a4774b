/* SPDX-License-Identifier: MIT */
/*
 * SIGINT, SIGTERM and SIGHUP during a fork or a template creation. The
 * signals are blocked in every thread and taken by one thread with
 * sigwait(): it kills the VMMs this process spawned and has not released
 * (clones that already acked are released, so they are kept), which makes
 * every stage under way fail at once and roll back what it made through
 * its ordinary error path (tap, record, RAM file). The verb then sees
 * vmm_interrupted() and exits 128 + signal. Doing the cleanup on the normal
 * path, not in a handler, is what lets it delete taps and records.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vmm.h"

#define EXIT_GRACE_S 20

static atomic_int interrupted;
static sigset_t handled;
static void (*volatile signal_extra)(void);

void qemu_set_signal_extra(void (*fn)(void))
{
        signal_extra = fn;
}

int vmm_interrupted(void)
{
        return atomic_load(&interrupted);
}

static void on_signal_noop(int sig)
{
        (void)sig; /* never runs: the signals are blocked and taken by sigwait() */
}

static void *signal_thread(void *arg)
{
        int sig = 0;

        (void)arg;
        if (sigwait(&handled, &sig) != 0)
                return NULL;
        atomic_store(&interrupted, sig);
        qemu_kill_all();
        void (*extra)(void) = signal_extra;
        if (extra)
                extra();
        /* The rollback runs on the forking threads; if it cannot finish
         * (a second signal, or stuck), end the process anyway. */
        struct timespec grace = {EXIT_GRACE_S, 0}, left;
        sigset_t again = handled;
        siginfo_t si;
        if (sigtimedwait(&again, &si, &grace) < 0)
                (void)left;
        qemu_kill_all();
        static const char msg[] = "rehome: interrupted; cleanup did not finish, exiting\n";
        (void)!write(2, msg, sizeof(msg) - 1);
        _exit(128 + sig);
}

void vmm_signals_install(void)
{
        static bool done;
        pthread_t th;
        pthread_attr_t attr;

        if (done)
                return;
        done = true;
        sigemptyset(&handled);
        sigaddset(&handled, SIGINT);
        sigaddset(&handled, SIGTERM);
        /* SIGHUP only if not ignored (nohup); SIGINT even if a shell started us
         * in the background with it ignored: an interrupted fork must clean up. */
        struct sigaction old, sa = {.sa_handler = on_signal_noop};
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGHUP, NULL, &old) == 0 && old.sa_handler != SIG_IGN)
                sigaddset(&handled, SIGHUP);
        for (int sig = 1; sig < NSIG; sig++)
                if (sigismember(&handled, sig) == 1)
                        sigaction(sig, &sa, NULL); /* a disposition that is not SIG_IGN: sigwait() gets it */
        pthread_sigmask(SIG_BLOCK, &handled, NULL);
        /* A QMP peer that died must give EPIPE, not kill us. */
        signal(SIGPIPE, SIG_IGN);
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &attr, signal_thread, NULL) != 0) {
                /* No thread: take the signals the plain way again (default action). */
                pthread_sigmask(SIG_UNBLOCK, &handled, NULL);
        }
        pthread_attr_destroy(&attr);
}

int vmm_fault_point(const char *point, struct rh_error *err)
{
        const char *want = getenv("REHOME_FAULT_POINT");

        if (!want || strcmp(want, point) != 0)
                return 0;
        fprintf(stderr, "rehome: fault point %s reached\n", point);
        for (int i = 0; i < 12000 && !vmm_interrupted(); i++) {
                struct timespec ts = {0, 10000000};
                nanosleep(&ts, NULL);
        }
        return rh_error_set(err, -EINTR, "fault point %s: interrupted", point);
}
