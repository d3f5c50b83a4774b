/* SPDX-License-Identifier: MIT */
/*
 * The pager's engine: one epoll loop over the listening sockets, the
 * control socket, a signalfd, and for each client its socket, its
 * userfaultfd and a pidfd of its process.
 *
 * A client's life: accept -> handshake (JSON + uffd, handshake.c) -> prefetch
 * of the working set, interleaved with fault service -> gone (socket EOF or
 * HUP, process exit, or its memory vanished), when every resource it held
 * is released. Faults are served in the order they are read, from buffers
 * allocated at accept time: the hot path (read msgs, UFFDIO_COPY) allocates
 * nothing. Objects are freed only at the end of a loop iteration, so an
 * event already returned by epoll_wait never points at freed memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "handshake.h"
#include "io.h"
#include "pager.h"
#include "rehome/layout.h"
#include "rehome/patch.h"
#include "rehome/request.h"
#include "src/lib/handle-cleanup.h"
#include "src/vmm/bench.h"

#define SMALL_PAGE 4096ull
#define UFFD_MSG_BATCH 64          /* uffd_msg read per read() */
#define PENDING_MAX 1024      /* faults read while draining events for an EAGAIN */
#define REMOVED_MAX 64        /* REMOVE ranges kept when UFFDIO_UNREGISTER fails */
#define PREFETCH_BATCH (4u << 20) /* bytes copied per client per loop turn before faults are looked at again */
#define CONTROL_LINE_MAX (64u << 10)
#define CACHE_CHUNK (2ull << 20)       /* the unit of the page cache bound: what is dropped at once */
#define CACHE_MIN (2 * CACHE_CHUNK)

enum watch_kind {
        W_SIGNAL,
        W_LISTEN,  /* the plain socket */
        W_SLOT,    /* a per-client socket created by add-client */
        W_CONTROL, /* the control socket */
        W_CTLCONN, /* one control connection */
        W_SOCK,    /* a client's socket */
        W_UFFD,    /* a client's userfaultfd */
        W_PIDFD,   /* a client's process */
};

struct watch {
        enum watch_kind kind;
        void *obj;
};

/* A client's patched mailbox page. */
struct overlay {
        uint64_t gpa;
        uint64_t offset; /* in the memory file */
        uint32_t seq;
        uint64_t nonce;
        uint8_t page[SMALL_PAGE] __attribute__((aligned(4096)));
};

/* A per-client socket waiting for its one connection. */
struct slot {
        struct watch w;
        struct slot *next;
        char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
        int fd;
        bool dead;
        struct overlay *overlay;
};

struct range {
        uint64_t start, end;
};

struct client {
        struct watch w_sock, w_uffd, w_pidfd;
        struct client *next;
        unsigned id;
        int sock, uffd, pidfd;
        pid_t pid;
        bool serving, dead, recording;
        uint64_t deadline_ns; /* handshake */
        char *hs_buf;         /* PAGER_HANDSHAKE_MAX + 1 bytes until the handshake is done */
        size_t hs_len;
        struct pager_handshake hs;
        size_t by_hva[PAGER_MAX_REGIONS]; /* region indexes sorted by host address */
        struct overlay *overlay;
        uint8_t *overlay_big; /* the overlay merged into its huge page (page_size bytes), or NULL */
        uint64_t overlay_big_size;
        struct uffd_msg msgs[UFFD_MSG_BATCH];
        uint64_t pending[PENDING_MAX];
        size_t pending_head, pending_n;
        struct range removed[REMOVED_MAX];
        size_t n_removed;
        size_t prefetch_next; /* index into the working set */
        bool prefetching;
        uint64_t prefetch_start_ns;
        bool warned_copy;
        struct pager_stats st;
};

struct pager {
        const struct pager_config *cfg;
        int mem_fd;
        const uint8_t *map;
        uint64_t mem_size;
        struct rh_layout *layout;
        int epfd, sigfd, listen_fd, control_fd;
        struct watch w_signal, w_listen, w_control;
        struct client *clients;
        struct slot *slots;
        struct ctlconn *ctlconns;
        unsigned next_id;
        uint64_t *ws;
        size_t n_ws;
        uint8_t *served;   /* bitmap of 4 KiB file pages served at least once */
        uint8_t *cached;   /* bitmap of 4 KiB file pages read through the map since their chunk was dropped */
        uint32_t *chunk_pages; /* per CACHE_CHUNK: pages set in cached */
        uint8_t *chunk_ref;    /* per CACHE_CHUNK: read since the clock hand last passed */
        uint64_t n_chunks, hand;
        uint8_t *recorded; /* bitmap of the recording client's faulted pages */
        bool recorded_any; /* a client has been chosen for recording */
        const uint8_t *zeros; /* PROT_READ anonymous mapping: zero pages for any page size */
        struct pager_stats st;
        bool stop;
        int stop_signal;
        bool dirty; /* objects marked dead: sweep at the end of the turn */
};

struct ctlconn {
        struct watch w;
        struct ctlconn *next;
        int fd;
        bool dead;
        size_t len;
        char buf[CONTROL_LINE_MAX + 1];
};

static void plog(struct pager *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void plog(struct pager *p, const char *fmt, ...)
{
        char line[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        p->cfg->log(p->cfg->userdata, line);
}

static uint64_t page_bit_count(const uint8_t *bitmap, uint64_t n_pages)
{
        uint64_t c = 0;

        for (uint64_t i = 0; i < (n_pages + 7) / 8; i++)
                c += (uint64_t)__builtin_popcount(bitmap[i]);
        return c;
}

static void mark_pages(uint8_t *bitmap, uint64_t offset, uint64_t len)
{
        for (uint64_t pg = offset / SMALL_PAGE; pg < (offset + len) / SMALL_PAGE; pg++)
                bitmap[pg / 8] |= (uint8_t)(1u << (pg % 8));
}

static bool bit_set(const uint8_t *bitmap, uint64_t pg)
{
        return bitmap[pg / 8] & (1u << (pg % 8));
}

/*
 * The page cache bound. The shared map is the page cache itself, so what is
 * bounded is how much of the memory file the pager has read through it: per
 * 2 MiB chunk a count of the 4 KiB pages read since the chunk was last
 * dropped and a reference bit. Past the bound, a clock hand drops chunks not
 * read since it last passed (MADV_DONTNEED on the map, then
 * POSIX_FADV_DONTNEED on the file) until the count is 7/8 of the bound.
 * Clients keep their copies (UFFDIO_COPY copied them); a dropped chunk is
 * read from disk again if another client needs it. The kernel cannot drop
 * pages another process maps (a QEMU that maps the same file), so
 * resident_bytes (mincore) can stay above the bound then. Everything here is
 * allocated when the pager starts: nothing on the fault path.
 */
static void cache_drop(struct pager *p, uint64_t ch)
{
        uint64_t off = ch * CACHE_CHUNK;
        uint64_t len = p->mem_size - off < CACHE_CHUNK ? p->mem_size - off : CACHE_CHUNK;

        (void)madvise((void *)(p->map + off), len, MADV_DONTNEED);
        (void)posix_fadvise(p->mem_fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
        memset(p->cached + off / SMALL_PAGE / 8, 0, (len / SMALL_PAGE + 7) / 8);
        p->st.cached_bytes -= (uint64_t)p->chunk_pages[ch] * SMALL_PAGE;
        p->st.evicted_bytes += (uint64_t)p->chunk_pages[ch] * SMALL_PAGE;
        p->st.evictions++;
        p->chunk_pages[ch] = 0;
        p->chunk_ref[ch] = 0;
}

/* [offset, offset+len) was just read through the map: account it, and drop old chunks past the bound. */
static void cache_note_read(struct pager *p, uint64_t offset, uint64_t len)
{
        uint64_t first = offset / CACHE_CHUNK, last = (offset + len - 1) / CACHE_CHUNK;
        uint64_t low;

        if (!p->cfg->cache_max_bytes)
                return;
        for (uint64_t pg = offset / SMALL_PAGE; pg < (offset + len) / SMALL_PAGE; pg++)
                if (!bit_set(p->cached, pg)) {
                        p->cached[pg / 8] |= (uint8_t)(1u << (pg % 8));
                        p->chunk_pages[pg * SMALL_PAGE / CACHE_CHUNK]++;
                        p->st.cached_bytes += SMALL_PAGE;
                }
        for (uint64_t ch = first; ch <= last; ch++)
                p->chunk_ref[ch] = 1;
        if (p->st.cached_bytes <= p->cfg->cache_max_bytes)
                return;
        low = p->cfg->cache_max_bytes / 8 * 7;
        /* Two turns of the hand at most: the first may only clear reference bits. */
        for (uint64_t steps = 0; steps < 2 * p->n_chunks && p->st.cached_bytes > low; steps++) {
                uint64_t ch = p->hand;
                p->hand = (p->hand + 1) % p->n_chunks;
                if ((ch >= first && ch <= last) || !p->chunk_pages[ch])
                        continue;
                if (p->chunk_ref[ch]) {
                        p->chunk_ref[ch] = 0;
                        continue;
                }
                cache_drop(p, ch);
        }
}

static int epoll_add(struct pager *p, int fd, uint32_t events, struct watch *w)
{
        struct epoll_event ev = { .events = events, .data.ptr = w };

        if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
                return -errno;
        return 0;
}

static void epoll_del(struct pager *p, int fd)
{
        if (fd >= 0)
                (void)epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL);
}

/* A listening SOCK_STREAM socket at @path; a stale socket there is replaced. */
static int listen_at(const char *path, struct rh_error *err)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct stat st;
        int fd;

        if (strlen(path) >= sizeof(sa.sun_path))
                return rh_error_set(err, -ENAMETOOLONG, "%s: socket path longer than %zu bytes", path,
                                    sizeof(sa.sun_path) - 1);
        if (lstat(path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode))
                        return rh_error_set(err, -EADDRINUSE, "%s: exists and is not a socket", path);
                if (unlink(path) < 0)
                        return rh_error_set(err, -errno, "%s: %s", path, strerror(errno));
        }
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return rh_error_set(err, -errno, "socket: %s", strerror(errno));
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0) {
                int e = errno;
                close(fd);
                return rh_error_set(err, -e, "%s: %s", path, strerror(e));
        }
        return fd;
}

/* ------------------------------------------------------------------ */
/* Clients: life and death                                             */

static void client_kill(struct pager *p, struct client *c, const char *why)
{
        if (c->dead)
                return;
        c->dead = true;
        p->dirty = true;
        epoll_del(p, c->sock);
        epoll_del(p, c->uffd);
        epoll_del(p, c->pidfd);
        if (c->serving) {
                p->st.clients_now--;
                plog(p, "client %u (pid %d): gone (%s): %" PRIu64 " faults, %" PRIu64 " bytes copied, %" PRIu64
                        " prefetched pages, %" PRIu64 " removes",
                     c->id, (int)c->pid, why, c->st.faults, c->st.bytes_copied, c->st.prefetch_pages, c->st.removes);
        }
}

static int save_recording(struct pager *p, struct rh_error *err)
{
        _cleanup_free_ uint64_t *offs = NULL;
        uint64_t n_pages = p->mem_size / SMALL_PAGE, n = 0;

        offs = calloc(page_bit_count(p->recorded, n_pages) + 1, sizeof(*offs));
        if (!offs)
                return rh_error_set(err, -ENOMEM, "out of memory");
        for (uint64_t pg = 0; pg < n_pages; pg++)
                if (bit_set(p->recorded, pg))
                        offs[n++] = pg * SMALL_PAGE;
        return vmm_ws_save(p->cfg->record_ws, p->mem_size, offs, n, err);
}

static void client_free(struct pager *p, struct client *c)
{
        if (c->recording && p->cfg->record_ws) {
                struct rh_error err = {};
                if (save_recording(p, &err) < 0)
                        plog(p, "record working set: %s", err.msg);
                else
                        plog(p, "client %u: recorded %" PRIu64 " pages into %s", c->id,
                             page_bit_count(p->recorded, p->mem_size / SMALL_PAGE), p->cfg->record_ws);
        }
        if (c->sock >= 0)
                close(c->sock);
        if (c->uffd >= 0)
                close(c->uffd);
        if (c->pidfd >= 0)
                close(c->pidfd);
        if (c->overlay_big) {
                munmap(c->overlay_big, c->overlay_big_size);
                p->st.overlay_bytes -= c->overlay_big_size;
        }
        if (c->overlay)
                p->st.overlay_bytes -= sizeof(*c->overlay);
        free(c->overlay);
        free(c->hs_buf);
        free(c);
}

static void sweep(struct pager *p)
{
        for (struct client **pc = &p->clients; *pc;) {
                struct client *c = *pc;
                if (c->dead) {
                        *pc = c->next;
                        client_free(p, c);
                } else
                        pc = &c->next;
        }
        for (struct slot **ps = &p->slots; *ps;) {
                struct slot *s = *ps;
                if (s->dead) {
                        *ps = s->next;
                        if (s->overlay)
                                p->st.overlay_bytes -= sizeof(*s->overlay);
                        free(s->overlay);
                        free(s);
                } else
                        ps = &s->next;
        }
        for (struct ctlconn **pk = &p->ctlconns; *pk;) {
                struct ctlconn *k = *pk;
                if (k->dead) {
                        *pk = k->next;
                        free(k);
                } else
                        pk = &k->next;
        }
        p->dirty = false;
}

static void client_accept(struct pager *p, int listen_fd, struct overlay *overlay_taken)
{
        _cleanup_free_ struct overlay *overlay = overlay_taken;
        struct ucred cred = {};
        socklen_t cl = sizeof(cred);
        struct client *c;
        int fd;

        fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
                if (errno != EAGAIN && errno != EINTR)
                        plog(p, "accept: %s", strerror(errno));
                if (overlay)
                        p->st.overlay_bytes -= sizeof(*overlay);
                return;
        }
        c = calloc(1, sizeof(*c));
        if (c)
                c->hs_buf = malloc(PAGER_HANDSHAKE_MAX + 1);
        if (!c || !c->hs_buf) {
                plog(p, "accept: out of memory; connection closed");
                free(c);
                close(fd);
                if (overlay)
                        p->st.overlay_bytes -= sizeof(*overlay);
                return;
        }
        c->id = ++p->next_id;
        c->sock = fd;
        c->uffd = -EBADF;
        c->pidfd = -EBADF;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
                c->pid = cred.pid;
        c->deadline_ns = now_ns() + (uint64_t)(p->cfg->handshake_timeout_ms ? p->cfg->handshake_timeout_ms : 10000) * 1000000;
        c->overlay = TAKE_PTR(overlay);
        c->w_sock = (struct watch){ W_SOCK, c };
        c->w_uffd = (struct watch){ W_UFFD, c };
        c->w_pidfd = (struct watch){ W_PIDFD, c };
        c->next = p->clients;
        p->clients = c;
        if (epoll_add(p, fd, EPOLLIN | EPOLLRDHUP, &c->w_sock) < 0) {
                plog(p, "client %u: epoll: %s", c->id, strerror(errno));
                client_kill(p, c, "epoll");
        }
}

/* ------------------------------------------------------------------ */
/* Serving                                                             */

static const struct pager_region *region_of(const struct client *c, uint64_t addr)
{
        size_t lo = 0, hi = c->hs.n_regions;

        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                const struct pager_region *rg = &c->hs.regions[c->by_hva[mid]];
                if (addr < rg->hva)
                        hi = mid;
                else if (addr - rg->hva >= rg->size)
                        lo = mid + 1;
                else
                        return rg;
        }
        return NULL;
}

static bool in_removed(const struct client *c, uint64_t addr)
{
        for (size_t i = 0; i < c->n_removed; i++)
                if (addr >= c->removed[i].start && addr < c->removed[i].end)
                        return true;
        return false;
}

/* Source of @len bytes at file @offset for this client: its overlay where it covers them, else the shared map. */
static const uint8_t *source_of(struct pager *p, const struct client *c, uint64_t offset, uint64_t len)
{
        const struct overlay *ov = c->overlay;

        if (ov && ov->offset >= offset && ov->offset < offset + len) {
                if (len == SMALL_PAGE)
                        return ov->page;
                if (c->overlay_big && len == c->overlay_big_size)
                        return c->overlay_big;
        }
        return p->map + offset;
}

static void handle_event(struct pager *p, struct client *c, const struct uffd_msg *m);

static void push_pending(struct pager *p, struct client *c, uint64_t addr)
{
        if (c->pending_n == PENDING_MAX) {
                /* Dropped: wake the thread, it faults again and the message comes back. */
                struct uffdio_range wr = { .start = addr & ~(SMALL_PAGE - 1), .len = SMALL_PAGE };
                (void)ioctl(c->uffd, UFFDIO_WAKE, &wr);
                return;
        }
        c->pending[(c->pending_head + c->pending_n++) % PENDING_MAX] = addr;
}

/*
 * An UFFDIO_COPY failed with EAGAIN: the memory map is changing (a REMOVE
 * event is queued behind the faults). Read everything now: events are
 * handled at once, faults queued to be served after the current one.
 * Returns the number of messages read, or -errno (-ESRCH et al.: client gone).
 */
static int drain(struct pager *p, struct client *c)
{
        struct uffd_msg m[16];
        int total = 0;

        for (;;) {
                ssize_t k = read(c->uffd, m, sizeof(m));
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return total;
                        return -errno;
                }
                if (k == 0 || k % (ssize_t)sizeof(m[0]))
                        return -EIO;
                for (ssize_t i = 0; i < k / (ssize_t)sizeof(m[0]); i++) {
                        if (m[i].event == UFFD_EVENT_PAGEFAULT) {
                                c->st.faults++;
                                p->st.faults++;
                                push_pending(p, c, m[i].arg.pagefault.address);
                        } else
                                handle_event(p, c, &m[i]);
                        total++;
                }
        }
}

/*
 * Install [dst, dst+len) from @src. Returns bytes installed (>= 0; pages
 * already present are skipped and not counted), or -errno: -ENOENT (range
 * no longer registered, e.g. after a REMOVE), -ESRCH (the client's memory is
 * gone), or another error of UFFDIO_COPY.
 */
static int64_t copy_range(struct pager *p, struct client *c, uint64_t dst, const uint8_t *src, uint64_t len,
                          uint64_t page_size, bool wake_existing)
{
        uint64_t done = 0, installed = 0;
        unsigned spins = 0;

        while (done < len) {
                struct uffdio_copy cp = { .dst = dst + done, .src = (uint64_t)(uintptr_t)(src + done), .len = len - done };
                int r = ioctl(c->uffd, UFFDIO_COPY, &cp);
                int e = r < 0 ? errno : 0;

                if (cp.copy > 0) {
                        done += (uint64_t)cp.copy;
                        installed += (uint64_t)cp.copy;
                }
                if (r == 0)
                        break;
                if (e == EEXIST) {
                        /* That page is already there (another fault or a prefetch won): skip it. */
                        uint64_t at = dst + done;
                        if (wake_existing) {
                                struct uffdio_range wr = { .start = at, .len = page_size };
                                (void)ioctl(c->uffd, UFFDIO_WAKE, &wr);
                        }
                        c->st.eexist++;
                        p->st.eexist++;
                        done += page_size;
                        continue;
                }
                if (e == EAGAIN && cp.copy > 0)
                        continue; /* a partial copy (it stopped at a present page): go on from there */
                if (e == EAGAIN) {
                        int k;
                        c->st.eagain++;
                        p->st.eagain++;
                        k = drain(p, c);
                        if (k < 0)
                                return k;
                        if (c->dead)
                                return -ESRCH;
                        if (k == 0 && ++spins > 1000) {
                                /* Nothing to read yet the map keeps changing: let the loop come back. */
                                return -EAGAIN;
                        }
                        if (k == 0)
                                (void)poll(&(struct pollfd){ .fd = c->uffd, .events = POLLIN }, 1, 1);
                        continue;
                }
                return -e;
        }
        return (int64_t)installed;
}

static void serve_fault(struct pager *p, struct client *c, uint64_t addr)
{
        const struct pager_region *rg = region_of(c, addr);
        uint64_t ps, page, offset, t0, dt;
        const uint8_t *src;
        int64_t r;

        if (!rg) {
                plog(p, "client %u (pid %d): fault at 0x%" PRIx64 " outside every region of its handshake; closing it",
                     c->id, (int)c->pid, addr);
                client_kill(p, c, "stray fault");
                return;
        }
        ps = rg->page_size;
        page = addr & ~(ps - 1);
        offset = rg->offset + (page - rg->hva);
        if (in_removed(c, page)) {
                src = p->zeros;
        } else
                src = source_of(p, c, offset, ps);
        t0 = now_ns();
        r = copy_range(p, c, page, src, ps, ps, true);
        dt = now_ns() - t0;
        if (r == -ENOENT || r == -EAGAIN) {
                /* Unregistered meanwhile (REMOVE): the thread retries as ordinary anonymous memory. */
                struct uffdio_range wr = { .start = page, .len = ps };
                (void)ioctl(c->uffd, UFFDIO_WAKE, &wr);
                return;
        }
        if (r == -ESRCH) {
                client_kill(p, c, "memory gone");
                return;
        }
        if (r < 0) {
                if (!c->warned_copy)
                        plog(p, "client %u (pid %d): UFFDIO_COPY at 0x%" PRIx64 ": %s", c->id, (int)c->pid, page,
                             strerror((int)-r));
                c->warned_copy = true;
                return;
        }
        c->st.service_ns += dt;
        p->st.service_ns += dt;
        if (dt > c->st.service_ns_max)
                c->st.service_ns_max = dt;
        if (dt > p->st.service_ns_max)
                p->st.service_ns_max = dt;
        if (r > 0) {
                c->st.copies++;
                p->st.copies++;
                c->st.bytes_copied += (uint64_t)r;
                p->st.bytes_copied += (uint64_t)r;
                if (src == c->overlay_big || (c->overlay && src == c->overlay->page)) {
                        c->st.overlay_faults++;
                        p->st.overlay_faults++;
                }
                if (src != p->zeros)
                        mark_pages(p->served, offset, ps);
                if (src == p->map + offset)
                        cache_note_read(p, offset, ps);
        }
        if (c->recording)
                mark_pages(p->recorded, offset, ps);
}

static void handle_remove(struct pager *p, struct client *c, uint64_t start, uint64_t end)
{
        struct uffdio_range ur = { .start = start, .len = end - start };

        c->st.removes++;
        p->st.removes++;
        c->st.removed_bytes += end - start;
        p->st.removed_bytes += end - start;
        /*
         * The range must read back as zeros. Unregistering it hands it back to
         * the kernel as ordinary anonymous memory (zero-filled on the next
         * touch) and keeps no per-page state here. If that fails, remember
         * the range and answer its faults with zero pages.
         */
        if (ioctl(c->uffd, UFFDIO_UNREGISTER, &ur) == 0)
                return;
        if (c->n_removed < REMOVED_MAX) {
                c->removed[c->n_removed++] = (struct range){ start, end };
                return;
        }
        plog(p, "client %u (pid %d): cannot honour REMOVE of 0x%" PRIx64 "-0x%" PRIx64 ": UFFDIO_UNREGISTER: %s, and "
                "%d removed ranges are already kept", c->id, (int)c->pid, start, end, strerror(errno), REMOVED_MAX);
}

static void handle_event(struct pager *p, struct client *c, const struct uffd_msg *m)
{
        switch (m->event) {
        case UFFD_EVENT_REMOVE:
                handle_remove(p, c, m->arg.remove.start, m->arg.remove.end);
                break;
        case UFFD_EVENT_UNMAP:
                /* Not requested by Firecracker; nothing to serve there any more. */
                break;
        default:
                break;
        }
}

static void serve_uffd(struct pager *p, struct client *c)
{
        /* Faults read while draining come first: they were read first. */
        while (c->pending_n && !c->dead) {
                uint64_t addr = c->pending[c->pending_head];
                c->pending_head = (c->pending_head + 1) % PENDING_MAX;
                c->pending_n--;
                serve_fault(p, c, addr);
        }
        while (!c->dead) {
                ssize_t k = read(c->uffd, c->msgs, sizeof(c->msgs));
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return;
                        plog(p, "client %u (pid %d): read userfaultfd: %s", c->id, (int)c->pid, strerror(errno));
                        client_kill(p, c, "userfaultfd error");
                        return;
                }
                if (k == 0 || k % (ssize_t)sizeof(c->msgs[0])) {
                        client_kill(p, c, "userfaultfd closed");
                        return;
                }
                for (ssize_t i = 0; i < k / (ssize_t)sizeof(c->msgs[0]) && !c->dead; i++) {
                        const struct uffd_msg *m = &c->msgs[i];
                        if (m->event == UFFD_EVENT_PAGEFAULT) {
                                c->st.faults++;
                                p->st.faults++;
                                serve_fault(p, c, m->arg.pagefault.address);
                        } else
                                handle_event(p, c, m);
                        /* Faults queued by a drain inside serve_fault go before the rest of this batch. */
                        while (c->pending_n && !c->dead) {
                                uint64_t addr = c->pending[c->pending_head];
                                c->pending_head = (c->pending_head + 1) % PENDING_MAX;
                                c->pending_n--;
                                serve_fault(p, c, addr);
                        }
                }
                if ((size_t)k < sizeof(c->msgs))
                        return;
        }
}

/* ------------------------------------------------------------------ */
/* Prefetch                                                            */

/*
 * Copy the next PREFETCH_BATCH bytes of the working set into @c: runs of
 * consecutive pages inside one region, split at the overlay page (which
 * comes from the overlay), rounded out to the region's page size.
 */
static void prefetch_step(struct pager *p, struct client *c)
{
        uint64_t budget = PREFETCH_BATCH;

        while (c->prefetching && !c->dead && budget > 0) {
                const struct pager_region *rg = NULL;
                uint64_t start, end, ps;
                const uint8_t *src;
                size_t i = c->prefetch_next;
                int64_t r;

                if (i >= p->n_ws) {
                        c->prefetching = false;
                        plog(p, "client %u (pid %d): prefetched %" PRIu64 " pages (%" PRIu64 " bytes) in %.1f ms",
                             c->id, (int)c->pid, c->st.prefetch_pages, c->st.prefetch_bytes,
                             (double)(now_ns() - c->prefetch_start_ns) / 1e6);
                        return;
                }
                for (size_t k = 0; k < c->hs.n_regions; k++) {
                        const struct pager_region *x = &c->hs.regions[k];
                        if (p->ws[i] >= x->offset && p->ws[i] - x->offset < x->size) {
                                rg = x;
                                break;
                        }
                }
                if (!rg) { /* cannot happen: regions cover the file and offsets are inside it */
                        c->prefetch_next++;
                        continue;
                }
                ps = rg->page_size;
                /* Pages are aligned within their region (its offset is a sum of page-size multiples). */
                start = rg->offset + ((p->ws[i] - rg->offset) & ~(ps - 1));
                end = start + ps;
                while (i < p->n_ws && p->ws[i] < end)
                        i++;
                /* Extend the run while the next offset lies in the next page of the same region. */
                while (i < p->n_ws && p->ws[i] < end + ps && end + ps <= rg->offset + rg->size && end - start < budget) {
                        end += ps;
                        while (i < p->n_ws && p->ws[i] < end)
                                i++;
                }
                /* The overlay page is copied on its own, from the overlay. */
                if (c->overlay && c->overlay->offset >= start && c->overlay->offset < end) {
                        uint64_t ov_start = rg->offset + ((c->overlay->offset - rg->offset) & ~(ps - 1));
                        if (ov_start > start) {
                                end = ov_start;
                                while (i > c->prefetch_next && p->ws[i - 1] >= end)
                                        i--;
                        } else if (end > ov_start + ps) {
                                end = ov_start + ps;
                                while (i > c->prefetch_next && p->ws[i - 1] >= end)
                                        i--;
                        }
                }
                src = source_of(p, c, start, end - start);
                r = copy_range(p, c, rg->hva + (start - rg->offset), src, end - start, ps, false);
                if (r == -ESRCH) {
                        client_kill(p, c, "memory gone");
                        return;
                }
                if (r == -EAGAIN)
                        return; /* the map is changing; try again next turn */
                c->prefetch_next = i;
                if (r < 0) {
                        /* -ENOENT: removed meanwhile. Anything else: say so once, go on. */
                        if (r != -ENOENT && !c->warned_copy) {
                                plog(p, "client %u (pid %d): prefetch UFFDIO_COPY at file offset 0x%" PRIx64 ": %s",
                                     c->id, (int)c->pid, start, strerror((int)-r));
                                c->warned_copy = true;
                        }
                        continue;
                }
                c->st.copies++;
                p->st.copies++;
                c->st.prefetch_pages += (uint64_t)r / ps;
                p->st.prefetch_pages += (uint64_t)r / ps;
                c->st.prefetch_bytes += (uint64_t)r;
                p->st.prefetch_bytes += (uint64_t)r;
                mark_pages(p->served, start, end - start);
                if (src == p->map + start)
                        cache_note_read(p, start, end - start);
                budget = budget > end - start ? budget - (end - start) : 0;
        }
}

/* ------------------------------------------------------------------ */
/* Handshake                                                           */

static int is_userfaultfd(int fd)
{
        char link[64], target[64];
        ssize_t k;

        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        k = readlink(link, target, sizeof(target) - 1);
        if (k < 0)
                return -errno;
        target[k] = '\0';
        return strcmp(target, "anon_inode:[userfaultfd]") == 0;
}

static int cmp_hva(const void *a, const void *b, void *arg)
{
        const struct pager_handshake *hs = arg;
        uint64_t x = hs->regions[*(const size_t *)a].hva, y = hs->regions[*(const size_t *)b].hva;

        return x < y ? -1 : x > y;
}

/* The handshake is complete and valid: start serving. Returns 0 or -errno with @err. */
static int client_start(struct pager *p, struct client *c, struct rh_error *err)
{
        int r;

        for (size_t i = 0; i < c->hs.n_regions; i++)
                c->by_hva[i] = i;
        qsort_r(c->by_hva, c->hs.n_regions, sizeof(c->by_hva[0]), cmp_hva, &c->hs);

        if (c->overlay) {
                const struct pager_region *rg = NULL;
                for (size_t i = 0; i < c->hs.n_regions; i++)
                        if (c->overlay->offset >= c->hs.regions[i].offset &&
                            c->overlay->offset - c->hs.regions[i].offset < c->hs.regions[i].size)
                                rg = &c->hs.regions[i];
                if (!rg)
                        return rh_error_set(err, -EINVAL, "mailbox file offset 0x%" PRIx64 " is in no region",
                                            c->overlay->offset);
                if (rg->page_size > SMALL_PAGE) {
                        uint64_t base = rg->offset + ((c->overlay->offset - rg->offset) & ~(rg->page_size - 1));
                        /* Allocated here, once: faults of this page then copy from it without allocating. */
                        c->overlay_big = mmap(NULL, rg->page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                        if (c->overlay_big == MAP_FAILED) {
                                c->overlay_big = NULL;
                                return rh_error_set(err, -errno, "overlay of %" PRIu64 " bytes: %s", rg->page_size,
                                                    strerror(errno));
                        }
                        c->overlay_big_size = rg->page_size;
                        p->st.overlay_bytes += rg->page_size;
                        memcpy(c->overlay_big, p->map + base, rg->page_size);
                        memcpy(c->overlay_big + (c->overlay->offset - base), c->overlay->page, SMALL_PAGE);
                }
        }
        r = epoll_add(p, c->uffd, EPOLLIN, &c->w_uffd);
        if (r < 0)
                return rh_error_set(err, r, "epoll: %s", strerror(-r));
        if (c->pid > 0) {
                c->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
                /* Without a pidfd (another pid namespace, old kernel) the socket's EOF still tells. */
                if (c->pidfd >= 0 && epoll_add(p, c->pidfd, EPOLLIN, &c->w_pidfd) < 0) {
                        close(c->pidfd);
                        c->pidfd = -EBADF;
                }
        }
        free(c->hs_buf);
        c->hs_buf = NULL;
        c->serving = true;
        p->st.clients_now++;
        p->st.clients_total++;
        if (p->cfg->record_ws && !p->recorded_any) {
                c->recording = true;
                p->recorded_any = true;
        }
        if (p->n_ws) {
                c->prefetching = true;
                c->prefetch_start_ns = now_ns();
        }
        plog(p, "client %u (pid %d): serving %zu region%s (%s fields, page size %" PRIu64 ")%s%s", c->id, (int)c->pid,
             c->hs.n_regions, c->hs.n_regions == 1 ? "" : "s", pager_fields_name(c->hs.fields), c->hs.regions[0].page_size,
             c->overlay ? ", with its mailbox overlay" : "", c->prefetching ? ", prefetching the working set" : "");
        return 0;
}

/*
 * The socket of a serving client reached EOF. Firecracker v1.12+ never
 * closes it, so EOF means its process is gone. Older releases drop it right
 * after the handshake: then the pidfd (or ESRCH from UFFDIO_COPY) tells.
 */
static void client_socket_eof(struct pager *p, struct client *c)
{
        if (c->hs.fields == PAGER_FIELDS_V1_12 || c->hs.fields == PAGER_FIELDS_PAGE_SIZE) {
                client_kill(p, c, "socket closed");
                return;
        }
        epoll_del(p, c->sock);
        close(c->sock);
        c->sock = -EBADF;
}

static void client_reject(struct pager *p, struct client *c, const char *msg)
{
        p->st.handshakes_bad++;
        plog(p, "client %u (pid %d): bad handshake: %s; connection closed", c->id, (int)c->pid, msg);
        client_kill(p, c, "bad handshake");
}

static void client_read_socket(struct pager *p, struct client *c)
{
        struct rh_error err = {};
        int r;

        for (;;) {
                union {
                        struct cmsghdr h;
                        char buf[CMSG_SPACE(4 * sizeof(int))];
                } cm;
                char sink[4096];
                struct iovec iov;
                struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &cm, .msg_controllen = sizeof(cm) };
                ssize_t k;
                bool extra_fds = false;

                if (c->serving) {
                        /* Nothing more is expected; Firecracker keeps the socket open and idle. */
                        iov = (struct iovec){ sink, sizeof(sink) };
                        mh.msg_control = NULL;
                        mh.msg_controllen = 0;
                } else
                        iov = (struct iovec){ c->hs_buf + c->hs_len, PAGER_HANDSHAKE_MAX + 1 - c->hs_len };
                k = recvmsg(c->sock, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return;
                        client_kill(p, c, strerror(errno));
                        return;
                }
                for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h)) {
                        if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
                                continue;
                        size_t nfd = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        for (size_t i = 0; i < nfd; i++) {
                                int fd;
                                memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(int));
                                if (c->uffd < 0 && !c->serving)
                                        c->uffd = fd;
                                else {
                                        close(fd);
                                        extra_fds = true;
                                }
                        }
                }
                if (c->serving) {
                        if (k == 0) {
                                client_socket_eof(p, c);
                                return;
                        }
                        continue;
                }
                if (extra_fds || (mh.msg_flags & MSG_CTRUNC)) {
                        client_reject(p, c, "more than one file descriptor (expected the userfaultfd alone)");
                        return;
                }
                if (k == 0) {
                        client_reject(p, c, c->hs_len ? "connection closed in the middle of the handshake"
                                                       : "connection closed before the handshake");
                        return;
                }
                c->hs_len += (size_t)k;
                r = pager_handshake_decode(c->hs_buf, c->hs_len, p->mem_size, SMALL_PAGE, &c->hs, &err);
                if (r == -EAGAIN && c->hs_len <= PAGER_HANDSHAKE_MAX)
                        continue;
                if (r < 0) {
                        client_reject(p, c, err.msg);
                        return;
                }
                if (c->uffd < 0) {
                        client_reject(p, c, "no userfaultfd: the handshake carried no SCM_RIGHTS file descriptor");
                        return;
                }
                r = is_userfaultfd(c->uffd);
                if (r <= 0) {
                        client_reject(p, c, "the file descriptor sent is not a userfaultfd");
                        return;
                }
                r = client_start(p, c, &err);
                if (r < 0) {
                        client_reject(p, c, err.msg);
                        return;
                }
                /* Faults may be waiting already: Firecracker touches memory before resume. */
                serve_uffd(p, c);
        }
}

/* ------------------------------------------------------------------ */
/* Control                                                             */

static struct slot *slot_find(struct pager *p, const char *path)
{
        for (struct slot *s = p->slots; s; s = s->next)
                if (!s->dead && strcmp(s->path, path) == 0)
                        return s;
        return NULL;
}

static void slot_close(struct pager *p, struct slot *s, bool unlink_path)
{
        if (s->dead)
                return;
        s->dead = true;
        p->dirty = true;
        epoll_del(p, s->fd);
        close(s->fd);
        s->fd = -EBADF;
        if (unlink_path)
                unlink(s->path);
}

static int json_u64(json_t *v, uint64_t *ret)
{
        if (json_is_integer(v) && json_integer_value(v) >= 0) {
                *ret = (uint64_t)json_integer_value(v);
                return 0;
        }
        if (json_is_string(v)) {
                char *end;
                errno = 0;
                *ret = strtoull(json_string_value(v), &end, 0);
                if (!errno && *end == '\0' && end != json_string_value(v) && json_string_value(v)[0] != '-')
                        return 0;
        }
        return -EINVAL;
}

static int parse_hex_token(const char *s, uint8_t token[RH_TOKEN_LEN])
{
        if (strlen(s) != 2 * RH_TOKEN_LEN)
                return -EINVAL;
        for (unsigned i = 0; i < RH_TOKEN_LEN; i++) {
                unsigned v;
                if (!strchr("0123456789abcdefABCDEF", s[2 * i]) || !strchr("0123456789abcdefABCDEF", s[2 * i + 1]) ||
                    sscanf(s + 2 * i, "%2x", &v) != 1)
                        return -EINVAL;
                token[i] = (uint8_t)v;
        }
        return 0;
}

/* add-client: build the overlay (the same request, seq and nonce as rehome patch would write), open its socket. */
static json_t *ctl_add_client(struct pager *p, json_t *cmd, struct rh_error *err)
{
        _cleanup_free_ struct overlay *ov = NULL;
        _cleanup_free_ char *req_text = NULL;
        json_t *jreq = json_object_get(cmd, "request");
        const char *path = json_string_value(json_object_get(cmd, "socket"));
        const char *tok = json_string_value(json_object_get(cmd, "token"));
        uint8_t token[RH_TOKEN_LEN];
        struct rh_request req;
        struct slot *s;
        uint64_t gpa;
        int r, fd;

        if (!path || !*path)
                return rh_error_set(err, -EINVAL, "add-client: no \"socket\""), NULL;
        if (json_u64(json_object_get(cmd, "gpa"), &gpa) < 0 || gpa % SMALL_PAGE)
                return rh_error_set(err, -EINVAL, "add-client: \"gpa\" missing or not a 4 KiB aligned address"), NULL;
        if (tok && parse_hex_token(tok, token) < 0)
                return rh_error_set(err, -EINVAL, "add-client: \"token\" is not 32 hex digits"), NULL;
        if (!json_is_object(jreq))
                return rh_error_set(err, -EINVAL, "add-client: no \"request\" object"), NULL;
        if (slot_find(p, path))
                return rh_error_set(err, -EEXIST, "add-client: %s is already waiting for its client", path), NULL;
        req_text = json_dumps(jreq, JSON_COMPACT);
        if (!req_text)
                return rh_error_set(err, -ENOMEM, "out of memory"), NULL;
        r = rh_request_from_json(req_text, strlen(req_text), &req, err);
        if (r < 0)
                return rh_error_prefix(err, r, "add-client: request"), NULL;
        ov = aligned_alloc(4096, sizeof(*ov));
        if (!ov)
                return rh_error_set(err, -ENOMEM, "out of memory"), NULL;
        memset(ov, 0, sizeof(*ov));
        ov->gpa = gpa;
        r = rh_layout_gpa_to_offset(p->layout, gpa, SMALL_PAGE, &ov->offset, err);
        if (r < 0)
                return rh_error_prefix(err, r, "add-client: layout %s", rh_layout_kind(p->layout)), NULL;
        if (ov->offset + SMALL_PAGE > p->mem_size)
                return rh_error_set(err, -EFAULT, "add-client: gpa 0x%" PRIx64 " maps to file offset 0x%" PRIx64
                                    ", past the end of the memory file", gpa, ov->offset), NULL;
        r = rh_mailbox_patch_overlay(p->map + ov->offset, gpa, tok ? token : NULL, &req, ov->page, &ov->seq, err);
        if (r < 0)
                return rh_error_prefix(err, r, "add-client: mailbox at gpa 0x%" PRIx64 " (file offset 0x%" PRIx64 ")",
                                       gpa, ov->offset), NULL;
        ov->nonce = req.nonce;
        s = calloc(1, sizeof(*s));
        if (!s)
                return rh_error_set(err, -ENOMEM, "out of memory"), NULL;
        fd = listen_at(path, err);
        if (fd < 0) {
                free(s);
                return rh_error_prefix(err, fd, "add-client"), NULL;
        }
        snprintf(s->path, sizeof(s->path), "%s", path);
        s->fd = fd;
        s->w = (struct watch){ W_SLOT, s };
        r = epoll_add(p, fd, EPOLLIN, &s->w);
        if (r < 0) {
                close(fd);
                unlink(path);
                free(s);
                return rh_error_set(err, r, "add-client: epoll: %s", strerror(-r)), NULL;
        }
        s->overlay = TAKE_PTR(ov);
        p->st.overlay_bytes += sizeof(*s->overlay);
        s->next = p->slots;
        p->slots = s;
        plog(p, "add-client %s: mailbox gpa 0x%" PRIx64 " (file offset 0x%" PRIx64 "), seq %" PRIu32 ", nonce %016" PRIx64,
             path, gpa, s->overlay->offset, s->overlay->seq, s->overlay->nonce);
        {
                char gpa_s[24], off_s[24], nonce_s[24];
                snprintf(gpa_s, sizeof(gpa_s), "0x%" PRIx64, gpa);
                snprintf(off_s, sizeof(off_s), "0x%" PRIx64, s->overlay->offset);
                snprintf(nonce_s, sizeof(nonce_s), "%016" PRIx64, s->overlay->nonce);
                return json_pack("{s:b, s:s, s:s, s:s, s:I, s:s}", "ok", 1, "socket", path, "gpa", gpa_s, "file_offset",
                                 off_s, "seq", (json_int_t)s->overlay->seq, "nonce", nonce_s);
        }
}

static json_t *stats_json(const struct pager_stats *s)
{
        return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
                         "s:I, s:I, s:I, s:I}",
                         "clients_now", (json_int_t)s->clients_now, "clients_total", (json_int_t)s->clients_total,
                         "handshakes_bad", (json_int_t)s->handshakes_bad, "faults", (json_int_t)s->faults,
                         "copies", (json_int_t)s->copies, "bytes_copied", (json_int_t)s->bytes_copied,
                         "eexist", (json_int_t)s->eexist, "eagain", (json_int_t)s->eagain,
                         "removes", (json_int_t)s->removes, "removed_bytes", (json_int_t)s->removed_bytes,
                         "overlay_faults", (json_int_t)s->overlay_faults,
                         "prefetch_pages", (json_int_t)s->prefetch_pages, "prefetch_bytes", (json_int_t)s->prefetch_bytes,
                         "service_ns", (json_int_t)s->service_ns, "service_ns_max", (json_int_t)s->service_ns_max,
                         "cache_bytes", (json_int_t)s->cache_bytes, "resident_bytes", (json_int_t)s->resident_bytes,
                         "overlay_bytes", (json_int_t)s->overlay_bytes, "cache_max_bytes", (json_int_t)s->cache_max_bytes,
                         "cached_bytes", (json_int_t)s->cached_bytes, "evictions", (json_int_t)s->evictions,
                         "evicted_bytes", (json_int_t)s->evicted_bytes);
}

/* Bytes of the memory file in the page cache now (mincore over the shared map, in 1 GiB steps). */
static uint64_t resident_bytes(struct pager *p)
{
        static unsigned char vec[(1u << 30) / SMALL_PAGE];
        uint64_t n = 0;

        for (uint64_t off = 0; off < p->mem_size; off += sizeof(vec) * SMALL_PAGE) {
                uint64_t len = p->mem_size - off < sizeof(vec) * SMALL_PAGE ? p->mem_size - off : sizeof(vec) * SMALL_PAGE;
                if (mincore((void *)(p->map + off), len, vec) < 0)
                        return 0;
                for (uint64_t i = 0; i < (len + SMALL_PAGE - 1) / SMALL_PAGE; i++)
                        n += vec[i] & 1;
        }
        return n * SMALL_PAGE;
}

static void refresh_stats(struct pager *p)
{
        p->st.cache_bytes = page_bit_count(p->served, p->mem_size / SMALL_PAGE) * SMALL_PAGE;
        p->st.resident_bytes = resident_bytes(p);
}

static json_t *ctl_stats(struct pager *p)
{
        json_t *clients = json_array(), *slots = json_array(), *o;

        refresh_stats(p);
        for (struct client *c = p->clients; c; c = c->next) {
                if (c->dead || !c->serving)
                        continue;
                o = stats_json(&c->st);
                json_object_set_new(o, "id", json_integer(c->id));
                json_object_set_new(o, "pid", json_integer(c->pid));
                json_object_set_new(o, "overlay", json_boolean(c->overlay != NULL));
                json_object_set_new(o, "prefetching", json_boolean(c->prefetching));
                json_array_append_new(clients, o);
        }
        for (struct slot *s = p->slots; s; s = s->next)
                if (!s->dead)
                        json_array_append_new(slots, json_string(s->path));
        o = stats_json(&p->st);
        json_object_set_new(o, "ok", json_true());
        json_object_set_new(o, "mem_size", json_integer((json_int_t)p->mem_size));
        json_object_set_new(o, "working_set_pages", json_integer((json_int_t)p->n_ws));
        json_object_set_new(o, "clients", clients);
        json_object_set_new(o, "waiting_sockets", slots);
        return o;
}

static void ctl_handle_line(struct pager *p, struct ctlconn *k, const char *line, size_t len)
{
        _cleanup_free_ char *out = NULL;
        struct rh_error err = {};
        json_error_t je;
        json_t *cmd = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je), *reply = NULL;
        const char *op = json_string_value(json_object_get(cmd, "op"));

        if (!cmd || !json_is_object(cmd))
                rh_error_set(&err, -EBADMSG, "not a JSON object: %s", cmd ? "wrong type" : je.text);
        else if (!op)
                rh_error_set(&err, -EINVAL, "no \"op\"");
        else if (strcmp(op, "add-client") == 0)
                reply = ctl_add_client(p, cmd, &err);
        else if (strcmp(op, "remove-client") == 0) {
                const char *path = json_string_value(json_object_get(cmd, "socket"));
                struct slot *s = path ? slot_find(p, path) : NULL;
                if (!s)
                        rh_error_set(&err, -ENOENT, "remove-client: no socket %s is waiting for its client", path ? path : "(none)");
                else {
                        slot_close(p, s, true);
                        plog(p, "remove-client %s", path);
                        reply = json_pack("{s:b}", "ok", 1);
                }
        } else if (strcmp(op, "stats") == 0)
                reply = ctl_stats(p);
        else
                rh_error_set(&err, -EINVAL, "unknown op \"%s\" (add-client, remove-client, stats)", op);
        if (cmd)
                json_decref(cmd);
        if (!reply)
                reply = json_pack("{s:b, s:s}", "ok", 0, "error", err.msg[0] ? err.msg : "failed");
        out = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
        json_decref(reply);
        if (out) {
                /* Replies are small; the connection is blocking for this one write. */
                int fl = fcntl(k->fd, F_GETFL);
                fcntl(k->fd, F_SETFL, fl & ~O_NONBLOCK);
                struct timeval tv = { .tv_sec = 2 };
                setsockopt(k->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
                (void)!write_full(k->fd, out, strlen(out));
                (void)!write_full(k->fd, "\n", 1);
                fcntl(k->fd, F_SETFL, fl);
        }
}

static void ctlconn_close(struct pager *p, struct ctlconn *k)
{
        if (k->dead)
                return;
        k->dead = true;
        p->dirty = true;
        epoll_del(p, k->fd);
        close(k->fd);
}

static void ctl_accept(struct pager *p)
{
        struct ucred cred = {};
        socklen_t cl = sizeof(cred);
        struct ctlconn *k;
        int fd = accept4(p->control_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (fd < 0)
                return;
        /* Only root and the pager's own user may change overlays. */
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 || (cred.uid != 0 && cred.uid != geteuid())) {
                plog(p, "control: refused a connection from uid %u", (unsigned)cred.uid);
                close(fd);
                return;
        }
        k = calloc(1, sizeof(*k));
        if (!k) {
                close(fd);
                return;
        }
        k->fd = fd;
        k->w = (struct watch){ W_CTLCONN, k };
        k->next = p->ctlconns;
        p->ctlconns = k;
        if (epoll_add(p, fd, EPOLLIN | EPOLLRDHUP, &k->w) < 0)
                ctlconn_close(p, k);
}

static void ctl_read(struct pager *p, struct ctlconn *k)
{
        for (;;) {
                char *nl;
                ssize_t n = read(k->fd, k->buf + k->len, CONTROL_LINE_MAX - k->len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n <= 0) {
                        ctlconn_close(p, k);
                        return;
                }
                k->len += (size_t)n;
                while ((nl = memchr(k->buf, '\n', k->len))) {
                        size_t l = (size_t)(nl - k->buf);
                        ctl_handle_line(p, k, k->buf, l);
                        memmove(k->buf, nl + 1, k->len - l - 1);
                        k->len -= l + 1;
                }
                if (k->len == CONTROL_LINE_MAX) {
                        plog(p, "control: line longer than %u bytes; connection closed", CONTROL_LINE_MAX);
                        ctlconn_close(p, k);
                        return;
                }
        }
}

/* ------------------------------------------------------------------ */
/* The loop                                                            */

static void log_stats(struct pager *p)
{
        refresh_stats(p);
        plog(p, "stats: %" PRIu64 " clients (%" PRIu64 " total, %" PRIu64 " bad handshakes), %" PRIu64 " faults, %" PRIu64
                " bytes copied, %" PRIu64 " prefetched pages, %" PRIu64 " eexist, %" PRIu64 " eagain, %" PRIu64
                " removes, mean service %.2f us (max %.2f us), cache %" PRIu64 " bytes served, %" PRIu64
                " resident, overlays %" PRIu64 " bytes",
             p->st.clients_now, p->st.clients_total, p->st.handshakes_bad, p->st.faults, p->st.bytes_copied,
             p->st.prefetch_pages, p->st.eexist, p->st.eagain, p->st.removes,
             p->st.faults ? (double)p->st.service_ns / (double)p->st.faults / 1e3 : 0.0,
             (double)p->st.service_ns_max / 1e3, p->st.cache_bytes, p->st.resident_bytes, p->st.overlay_bytes);
}

static int on_signal(struct pager *p)
{
        struct signalfd_siginfo si;

        while (read(p->sigfd, &si, sizeof(si)) == sizeof(si)) {
                if (si.ssi_signo == SIGUSR1)
                        log_stats(p);
                else {
                        p->stop = true;
                        p->stop_signal = (int)si.ssi_signo;
                }
        }
        return 0;
}

static void dispatch(struct pager *p, const struct epoll_event *ev)
{
        struct watch *w = ev->data.ptr;

        switch (w->kind) {
        case W_SIGNAL:
                on_signal(p);
                break;
        case W_LISTEN:
                client_accept(p, p->listen_fd, NULL);
                break;
        case W_SLOT: {
                struct slot *s = w->obj;
                struct overlay *ov;
                if (s->dead)
                        break;
                ov = TAKE_PTR(s->overlay);
                /* One connection per slot: the overlay goes to it, the path is free again. */
                client_accept(p, s->fd, ov);
                slot_close(p, s, true);
                break;
        }
        case W_CONTROL:
                ctl_accept(p);
                break;
        case W_CTLCONN: {
                struct ctlconn *k = w->obj;
                if (!k->dead)
                        ctl_read(p, k);
                if (!k->dead && (ev->events & (EPOLLHUP | EPOLLERR)))
                        ctlconn_close(p, k);
                break;
        }
        case W_SOCK: {
                struct client *c = w->obj;
                if (!c->dead && c->sock >= 0)
                        client_read_socket(p, c);
                /* recvmsg saw the EOF if there was one; HUP/ERR without it: the peer is gone. */
                if (!c->dead && c->sock >= 0 && (ev->events & (EPOLLHUP | EPOLLERR))) {
                        if (c->serving)
                                client_socket_eof(p, c);
                        else
                                client_kill(p, c, "socket closed");
                }
                break;
        }
        case W_UFFD: {
                struct client *c = w->obj;
                if (!c->dead)
                        serve_uffd(p, c);
                if (!c->dead && (ev->events & (EPOLLHUP | EPOLLERR)))
                        client_kill(p, c, "userfaultfd hung up");
                break;
        }
        case W_PIDFD: {
                struct client *c = w->obj;
                client_kill(p, c, "process exited");
                break;
        }
        }
}

static void shutdown_all(struct pager *p)
{
        for (struct client *c = p->clients; c; c = c->next)
                client_kill(p, c, "pager stopping");
        for (struct slot *s = p->slots; s; s = s->next)
                slot_close(p, s, true);
        for (struct ctlconn *k = p->ctlconns; k; k = k->next)
                ctlconn_close(p, k);
        sweep(p);
}

static int pager_open(struct pager *p, struct rh_error *err)
{
        struct stat st;
        sigset_t mask;
        int r;

        p->mem_fd = open(p->cfg->mem_file, O_RDONLY | O_CLOEXEC);
        if (p->mem_fd < 0 || fstat(p->mem_fd, &st) < 0)
                return rh_error_set(err, -errno, "%s: %s", p->cfg->mem_file, strerror(errno));
        if (!S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size % SMALL_PAGE)
                return rh_error_set(err, -EINVAL, "%s: not a regular file of a positive multiple of 4096 bytes",
                                    p->cfg->mem_file);
        p->mem_size = (uint64_t)st.st_size;
        /* Read-only and shared: the page cache's pages themselves, one copy for every client. */
        p->map = mmap(NULL, p->mem_size, PROT_READ, MAP_SHARED, p->mem_fd, 0);
        if (p->map == MAP_FAILED) {
                p->map = NULL;
                return rh_error_set(err, -errno, "%s: mmap: %s", p->cfg->mem_file, strerror(errno));
        }
        p->zeros = mmap(NULL, PAGER_PAGE_SIZE_MAX, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p->zeros == MAP_FAILED) {
                p->zeros = NULL;
                return rh_error_set(err, -errno, "zero pages: mmap: %s", strerror(errno));
        }
        if (p->cfg->layout_spec)
                r = rh_layout_parse(p->cfg->layout_spec, &p->layout, err);
        else
                r = rh_layout_new_firecracker(p->mem_size, false, &p->layout, err);
        if (r < 0)
                return rh_error_prefix(err, r, "layout '%s'", p->cfg->layout_spec ? p->cfg->layout_spec : "firecracker");
        p->served = calloc(p->mem_size / SMALL_PAGE / 8 + 1, 1);
        p->recorded = calloc(p->mem_size / SMALL_PAGE / 8 + 1, 1);
        if (!p->served || !p->recorded)
                return rh_error_set(err, -ENOMEM, "out of memory");
        if (p->cfg->cache_max_bytes) {
                if (p->cfg->cache_max_bytes < CACHE_MIN)
                        return rh_error_set(err, -EINVAL, "cache bound %" PRIu64 " bytes: at least %llu (4 MiB)",
                                            p->cfg->cache_max_bytes, CACHE_MIN);
                p->n_chunks = (p->mem_size + CACHE_CHUNK - 1) / CACHE_CHUNK;
                p->cached = calloc(p->mem_size / SMALL_PAGE / 8 + 1, 1);
                p->chunk_pages = calloc(p->n_chunks, sizeof(*p->chunk_pages));
                p->chunk_ref = calloc(p->n_chunks, 1);
                if (!p->cached || !p->chunk_pages || !p->chunk_ref)
                        return rh_error_set(err, -ENOMEM, "out of memory");
                p->st.cache_max_bytes = p->cfg->cache_max_bytes;
        }
        if (p->cfg->working_set) {
                r = vmm_ws_load(p->cfg->working_set, p->mem_size, &p->ws, &p->n_ws, err);
                if (r < 0)
                        return r;
        }

        p->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (p->epfd < 0)
                return rh_error_set(err, -errno, "epoll: %s", strerror(errno));
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGUSR1);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return rh_error_set(err, -errno, "sigprocmask: %s", strerror(errno));
        signal(SIGPIPE, SIG_IGN);
        p->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        if (p->sigfd < 0)
                return rh_error_set(err, -errno, "signalfd: %s", strerror(errno));
        p->w_signal = (struct watch){ W_SIGNAL, NULL };
        if ((r = epoll_add(p, p->sigfd, EPOLLIN, &p->w_signal)) < 0)
                return rh_error_set(err, r, "epoll: %s", strerror(-r));

        p->listen_fd = listen_at(p->cfg->socket_path, err);
        if (p->listen_fd < 0)
                return p->listen_fd;
        p->w_listen = (struct watch){ W_LISTEN, NULL };
        if ((r = epoll_add(p, p->listen_fd, EPOLLIN, &p->w_listen)) < 0)
                return rh_error_set(err, r, "epoll: %s", strerror(-r));
        if (p->cfg->control_path) {
                p->control_fd = listen_at(p->cfg->control_path, err);
                if (p->control_fd < 0)
                        return rh_error_prefix(err, p->control_fd, "control socket");
                p->w_control = (struct watch){ W_CONTROL, NULL };
                if ((r = epoll_add(p, p->control_fd, EPOLLIN, &p->w_control)) < 0)
                        return rh_error_set(err, r, "epoll: %s", strerror(-r));
        }
        return 0;
}

static void pager_close(struct pager *p)
{
        if (p->listen_fd >= 0) {
                close(p->listen_fd);
                unlink(p->cfg->socket_path);
        }
        if (p->control_fd >= 0) {
                close(p->control_fd);
                unlink(p->cfg->control_path);
        }
        if (p->sigfd >= 0)
                close(p->sigfd);
        if (p->epfd >= 0)
                close(p->epfd);
        if (p->map)
                munmap((void *)p->map, p->mem_size);
        if (p->zeros)
                munmap((void *)p->zeros, PAGER_PAGE_SIZE_MAX);
        if (p->mem_fd >= 0)
                close(p->mem_fd);
        rh_layout_free(p->layout);
        free(p->ws);
        free(p->served);
        free(p->recorded);
        free(p->cached);
        free(p->chunk_pages);
        free(p->chunk_ref);
}

int pager_run(const struct pager_config *cfg, int *ret_signal, struct rh_error *err)
{
        struct pager p = { .cfg = cfg, .mem_fd = -EBADF, .epfd = -EBADF, .sigfd = -EBADF, .listen_fd = -EBADF,
                           .control_fd = -EBADF };
        struct epoll_event evs[64];
        uint64_t faults_seen = 0, spin_until = 0;
        int r;

        r = pager_open(&p, err);
        if (r < 0) {
                pager_close(&p);
                return r;
        }
        plog(&p, "serving %s (%" PRIu64 " bytes, layout %s) on %s%s%s; working set: %zu pages", cfg->mem_file, p.mem_size,
             rh_layout_kind(p.layout), cfg->socket_path, cfg->control_path ? ", control " : "",
             cfg->control_path ? cfg->control_path : "", p.n_ws);

        while (!p.stop) {
                int timeout = -1, n;
                uint64_t now = now_ns();

                /* --spin-us: a guest that just faulted usually faults again at once; polling
                 * saves the scheduler's wake-up of this process on the next one. */
                if (p.st.faults != faults_seen) {
                        faults_seen = p.st.faults;
                        spin_until = now + (uint64_t)cfg->spin_us * 1000;
                }

                for (struct client *c = p.clients; c; c = c->next) {
                        if (c->dead)
                                continue;
                        if (c->prefetching)
                                timeout = 0;
                        else if (!c->serving) {
                                int ms = c->deadline_ns > now ? (int)((c->deadline_ns - now) / 1000000 + 1) : 0;
                                if (timeout < 0 || ms < timeout)
                                        timeout = ms;
                        }
                }
                if (now < spin_until)
                        timeout = 0;
                n = epoll_wait(p.epfd, evs, (int)ELEMENTSOF(evs), timeout);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = rh_error_set(err, -errno, "epoll_wait: %s", strerror(errno));
                        break;
                }
                for (int i = 0; i < n; i++)
                        dispatch(&p, &evs[i]);
                now = now_ns();
                for (struct client *c = p.clients; c; c = c->next) {
                        if (c->dead)
                                continue;
                        if (!c->serving && now >= c->deadline_ns)
                                client_reject(&p, c, "no complete handshake in time");
                        else if (c->prefetching) {
                                /* Faults first, then a bounded step of prefetch. */
                                serve_uffd(&p, c);
                                prefetch_step(&p, c);
                        }
                }
                if (p.dirty)
                        sweep(&p);
        }
        if (p.stop) {
                plog(&p, "stopping on SIG%s with %" PRIu64 " client%s attached%s", sigabbrev_np(p.stop_signal),
                     p.st.clients_now, p.st.clients_now == 1 ? "" : "s",
                     p.st.clients_now ? " (their guests are no longer served and will hang on the next missing page)" : "");
                *ret_signal = p.stop_signal;
                r = 0;
        }
        log_stats(&p);
        shutdown_all(&p);
        pager_close(&p);
        return r;
}
