/* SPDX-License-Identifier: MIT */
/*
 * Progress on stderr for the CLI's long steps. cli_progress() says whether
 * to print stage lines at all (stderr a terminal, or -v). On a terminal, a
 * ticker thread also shows the seconds a long step has taken so far
 * ("  ... 12 s"), rewritten in place every second and ended with a carriage
 * return, so the next stage line overwrites it; never into a log or a pipe.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "io.h"

static pthread_t ticker;
static bool ticking;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop = PTHREAD_COND_INITIALIZER;
static bool stopping;
static char what[64];

bool cli_progress(void)
{
        return cli.verbose || isatty(STDERR_FILENO);
}

static void *tick(void *arg)
{
        uint64_t t0 = now_ns();
        struct timespec at;

        pthread_mutex_lock(&lock);
        clock_gettime(CLOCK_REALTIME, &at);
        while (!stopping) {
                at.tv_sec++;
                if (pthread_cond_timedwait(&stop, &lock, &at) == 0 || stopping)
                        break;
                /* Short, and ended by '\r': a stage line printed meanwhile overwrites it. */
                fprintf(stderr, "  ... %s %llu s\r", what, (unsigned long long)((now_ns() - t0) / 1000000000ull));
                fflush(stderr);
        }
        pthread_mutex_unlock(&lock);
        return NULL;
}

void cli_ticker_start(const char *step)
{
        if (ticking || !isatty(STDERR_FILENO))
                return;
        snprintf(what, sizeof(what), "%s", step);
        stopping = false;
        ticking = pthread_create(&ticker, NULL, tick, NULL) == 0;
}

void cli_ticker_stop(void)
{
        if (!ticking)
                return;
        pthread_mutex_lock(&lock);
        stopping = true;
        pthread_cond_signal(&stop);
        pthread_mutex_unlock(&lock);
        pthread_join(ticker, NULL);
        ticking = false;
        fprintf(stderr, "\r\033[K"); /* the last tick, erased */
}
