/* SPDX-License-Identifier: MIT */
/*
 * rehome pager: a userfaultfd page server for Firecracker restores (the
 * `Uffd` memory backend). One process serves every restore of one snapshot
 * memory file: the file is mapped once, read-only and shared, so each page
 * is read from disk once (into the kernel's page cache) and copied from the
 * same memory into every client; the file is never written. A client may
 * carry an overlay: its mailbox page, patched with librehome, served instead
 * of the template's (merged into the 2 MiB page for hugepage guests). A
 * recorded working set is copied into each client right after its
 * handshake, before the guest asks. docs/PAGER.md describes the sockets,
 * the control protocol and the counters.
 */
#ifndef REHOME_PAGER_H
#define REHOME_PAGER_H

#include <stdbool.h>
#include <stdint.h>

#include "rehome/error.h"

struct pager_config {
        const char *socket_path;  /* clients without an overlay connect here; required */
        const char *mem_file;     /* the snapshot memory file; required */
        const char *layout_spec;  /* gpa -> file offset for overlays (rh_layout_parse); NULL: firecracker:<file size> */
        const char *control_path; /* control socket (add-client, remove-client, stats); NULL: none */
        const char *working_set;  /* prefetch these pages after each handshake (rehome-workingset 1); NULL: none */
        const char *record_ws;    /* write the first client's faulted pages here when it ends; NULL: no */
        uint64_t cache_max_bytes;  /* bound on the memory file's pages the pager keeps cached; 0: none (>= 4 MiB) */
        unsigned spin_us;          /* after serving a fault, poll without sleeping this long for the next (0: sleep) */
        unsigned handshake_timeout_ms; /* a connection that has not completed its handshake by then is closed; 0: 10 s */
        /* Where log lines go (one line each, no newline). Required. */
        void (*log)(void *userdata, const char *line);
        void *userdata;
};

/* Counters, for the whole pager (also per client in the stats reply). */
struct pager_stats {
        uint64_t clients_now;
        uint64_t clients_total;    /* handshakes completed */
        uint64_t handshakes_bad;   /* connections closed for a bad handshake */
        uint64_t faults;           /* MISSING faults read from userfaultfds */
        uint64_t copies;           /* UFFDIO_COPY calls that installed pages (faults and prefetch) */
        uint64_t bytes_copied;     /* bytes installed by faults */
        uint64_t eexist;           /* faults whose page was already there */
        uint64_t eagain;           /* UFFDIO_COPY retried after reading events */
        uint64_t removes;          /* UFFD_EVENT_REMOVE events */
        uint64_t removed_bytes;
        uint64_t overlay_faults;   /* faults served from an overlay page */
        uint64_t prefetch_pages;   /* pages (of the region's page size) installed by prefetch */
        uint64_t prefetch_bytes;
        uint64_t service_ns;       /* sum over faults of the UFFDIO_COPY time */
        uint64_t service_ns_max;
        uint64_t cache_bytes;      /* distinct bytes of the memory file served so far (read once, shared) */
        uint64_t resident_bytes;   /* bytes of the memory file in the page cache now (mincore) */
        uint64_t overlay_bytes;    /* private overlay memory held for clients */
        uint64_t cache_max_bytes;  /* the configured bound (0: none) */
        uint64_t cached_bytes;     /* bytes read through the shared map since their chunk was last dropped */
        uint64_t evictions;        /* 2 MiB chunks dropped to stay under the bound */
        uint64_t evicted_bytes;
};

/*
 * pager_run - serve until SIGTERM or SIGINT (SIGUSR1 logs the counters).
 * Blocks those signals in the calling thread (signalfd).
 * @ret_signal: the signal that stopped it (written on a clean stop)
 * Returns 0 after a signal, or -errno on a fatal error (@err says which; the
 * caller exits non-zero so that a supervisor sees it), e.g. -ENOENT/-EACCES
 * (memory file), -EADDRINUSE (socket path exists and is not a socket),
 * -EINVAL (layout, working set, a cache bound under 4 MiB).
 */
int pager_run(const struct pager_config *cfg, int *ret_signal, struct rh_error *err);

#endif
