// The stack sockets by descriptor number. The number is real: the
// application's descriptor is the eventfd the stack signals, so nothing else
// can be given that number while the socket lives, and a descriptor that is
// not in the table is libc's.
#include "preload_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <arpa/inet.h>
#include <netinet/in.h>

static ns_sock *_Atomic table[NS_MAX_FDS];
static _Atomic int live_sockets;

int ns_socket_count(void) { return atomic_load(&live_sockets); }

ns_sock *ns_lookup(int fd) {
    if (fd < 0 || fd >= NS_MAX_FDS) return NULL;
    return atomic_load_explicit(&table[fd], memory_order_acquire);
}

// MARK: Regions kept for the next socket

/// Regions of sockets this process closed, kept mapped: the stack gives a
/// closed socket's region to the process's next socket (its RegionPool,
/// `ns_region_reusable`) and names it by `region_serial` in the reply, so
/// the next socket costs no mmap, page faults or munmap here either. At most
/// as many as the stack keeps; the oldest goes first.
#define NS_PARKED_REGIONS 8
static struct parked_region {
    uint32_t serial;
    void *region;
    size_t length;
} parked[NS_PARKED_REGIONS];
static int parked_count;
static pthread_mutex_t parked_lock = PTHREAD_MUTEX_INITIALIZER;

/// The mapping of the region `serial` if this process kept it, taken out.
static void *unpark_region(uint32_t serial, size_t length) {
    if (serial == 0) return NULL;
    void *region = NULL;
    pthread_mutex_lock(&parked_lock);
    for (int i = 0; i < parked_count; i++) {
        if (parked[i].serial != serial || parked[i].length != length) continue;
        region = parked[i].region;
        memmove(&parked[i], &parked[i + 1], (size_t)(parked_count - i - 1) * sizeof parked[0]);
        parked_count--;
        break;
    }
    pthread_mutex_unlock(&parked_lock);
    return region;
}

/// Keeps a closed socket's mapping for the stack to name again, or unmaps it.
static void park_region(ns_sock *s) {
    if (s->region_serial == 0 || !ns_region_reusable(s->shm)) {
        munmap(s->region, s->region_length);
        return;
    }
    struct parked_region oldest = {0};
    pthread_mutex_lock(&parked_lock);
    if (parked_count == NS_PARKED_REGIONS) {
        oldest = parked[0];
        memmove(&parked[0], &parked[1], (NS_PARKED_REGIONS - 1) * sizeof parked[0]);
        parked_count--;
    }
    parked[parked_count++] = (struct parked_region){s->region_serial, s->region, s->region_length};
    pthread_mutex_unlock(&parked_lock);
    if (oldest.region) munmap(oldest.region, oldest.length);
}

void ns_unpark_regions(bool in_fork_child) {
    if (in_fork_child) pthread_mutex_init(&parked_lock, NULL);  // another thread may have held it
    pthread_mutex_lock(&parked_lock);
    struct parked_region gone[NS_PARKED_REGIONS];
    int n = parked_count;
    memcpy(gone, parked, (size_t)n * sizeof parked[0]);
    parked_count = 0;
    pthread_mutex_unlock(&parked_lock);
    for (int i = 0; i < n; i++) munmap(gone[i].region, gone[i].length);
}

int ns_adopt(const ns_reply *reply, const int *fds, int nfds, int family, int flags) {
    if (nfds != 3) {
        for (int i = 0; i < nfds; i++) LIBC(close)(fds[i]);
        errno = EPROTO;
        return -1;
    }
    int memfd = fds[0], app = fds[1], doorbell = fds[2];
    size_t length = ns_region_length(reply->ring_size);
    void *region = unpark_region(reply->region_serial, length);
    if (!region) region = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    LIBC(close)(memfd);
    // A stack of another build may lay the region out otherwise
    // (NS_DATA_SKEW): its rings would run past this mapping.
    bool laid_out = region != MAP_FAILED && ns_region_tx(region)->offset == ns_region_tx_offset() &&
                    ns_region_rx(region)->offset == ns_region_rx_offset(reply->ring_size) &&
                    ns_region_tx(region)->size == reply->ring_size && ns_region_rx(region)->size == reply->ring_size;
    ns_sock *s = laid_out ? calloc(1, sizeof *s) : NULL;
    if (!laid_out || !s || app >= NS_MAX_FDS) {
        if (region != MAP_FAILED) munmap(region, length);
        free(s);
        LIBC(close)(app);
        LIBC(close)(doorbell);
        errno = region != MAP_FAILED && !laid_out ? EPROTO : EMFILE;
        return -1;
    }
    // Received close-on-exec (MSG_CMSG_CLOEXEC); the application's own descriptor keeps what it asked.
    if (!(flags & SOCK_CLOEXEC)) LIBC(fcntl)(app, F_SETFD, 0);
    ns_init_locks(s);
    s->id = reply->socket;
    s->fd = app;
    s->doorbell = doorbell;
    s->family = family;
    s->shm = ns_region_header(region);
    s->region = region;
    s->region_length = length;
    s->region_serial = reply->region_serial;
    s->nonblocking = (flags & SOCK_NONBLOCK) != 0;
    s->datagram = (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) == SOCK_DGRAM;
    s->options.receive_buffer = s->options.send_buffer = (int)reply->ring_size;
    s->options.keepalive_idle = 7200;  // Linux's defaults (tcp_keepalive_time, _intvl, _probes)
    s->options.keepalive_interval = 75;
    s->options.keepalive_probes = 9;
    ns_kept_init(s);
    if (reply->local.family) { s->local = reply->local; s->has_local = true; }
    if (reply->peer.family) { s->peer = reply->peer; s->has_peer = true; }
    s->aliases[0] = app;
    s->alias_count = 1;
    atomic_fetch_add(&live_sockets, 1);
    atomic_store_explicit(&table[app], s, memory_order_release);
    return app;
}

/// Guards the alias lists: dup and close of one socket from two threads.
static pthread_mutex_t aliases_lock = PTHREAD_MUTEX_INITIALIZER;

int ns_alias(ns_sock *s, int fd) {
    if (fd < 0 || fd >= NS_MAX_FDS) { errno = EMFILE; return -1; }
    pthread_mutex_lock(&aliases_lock);
    bool room = s->alias_count < NS_MAX_ALIASES;
    if (room) s->aliases[s->alias_count++] = fd;
    pthread_mutex_unlock(&aliases_lock);
    if (!room) { errno = EMFILE; return -1; }
    atomic_store_explicit(&table[fd], s, memory_order_release);
    return fd;
}

bool ns_unalias(ns_sock *s, int fd) {
    atomic_store_explicit(&table[fd], NULL, memory_order_release);
    pthread_mutex_lock(&aliases_lock);
    for (int i = 0; i < s->alias_count; i++) {
        if (s->aliases[i] == fd) {
            s->aliases[i] = s->aliases[--s->alias_count];
            break;
        }
    }
    bool last = s->alias_count == 0;
    if (!last && s->fd == fd) s->fd = s->aliases[0];
    pthread_mutex_unlock(&aliases_lock);
    return last;
}

int ns_replace_descriptors(ns_sock *s, int kernel, void (*each)(int fd)) {
    pthread_mutex_lock(&aliases_lock);
    int r = 0;
    for (int i = 0; i < s->alias_count && r == 0; i++) {
        int fd = s->aliases[i];
        int flags = LIBC(fcntl)(fd, F_GETFD);
        r = LIBC(dup3)(kernel, fd, flags >= 0 && (flags & FD_CLOEXEC) ? O_CLOEXEC : 0) == fd ? 0 : -1;
        if (r == 0 && each) each(fd);
    }
    pthread_mutex_unlock(&aliases_lock);
    return r;
}

void ns_init_locks(ns_sock *s) {
    pthread_mutex_init(&s->tx_lock, NULL);
    pthread_mutex_init(&s->rx_lock, NULL);
    pthread_mutex_init(&s->cork_lock, NULL);
}

/// Sockets closed while other threads slept in them, oldest last.
static ns_sock *closed_in_use;
static pthread_mutex_t closed_lock = PTHREAD_MUTEX_INITIALIZER;

static void free_socket(ns_sock *s) {
    ns_cork_free(s);
    park_region(s);
    LIBC(close)(s->doorbell);
    free(s);
}

void ns_release(ns_sock *s) {
    atomic_fetch_sub(&live_sockets, 1);
    for (int i = 0; i < s->alias_count; i++) atomic_store_explicit(&table[s->aliases[i]], NULL, memory_order_release);
    atomic_store_explicit(&table[s->fd], NULL, memory_order_release);
    atomic_store(&s->closed, true);
    long long now = ns_now_ms();
    pthread_mutex_lock(&closed_lock);
    // A socket kept for its sleepers goes once they have left and a second
    // has passed (a call that woke runs on for microseconds, not seconds).
    for (ns_sock **p = &closed_in_use; *p;) {
        ns_sock *dead = *p;
        if (atomic_load(&dead->waiting) == 0 && now - dead->closed_at >= 1000) {
            *p = dead->next_closed;
            free_socket(dead);
        } else {
            p = &dead->next_closed;
        }
    }
    bool kept = atomic_load(&s->waiting) > 0;
    if (kept) {
        s->closed_at = now;
        s->next_closed = closed_in_use;
        closed_in_use = s;
    }
    pthread_mutex_unlock(&closed_lock);
    if (kept) ns_signal_event(s);  // the sleepers wake, see it closed and fail with EBADF
    else free_socket(s);
}

ns_sock *ns_next_socket(int *cursor) {
    for (int fd = *cursor; fd < NS_MAX_FDS; fd++) {
        ns_sock *s = ns_lookup(fd);
        if (s && s->fd == fd) {  // `fd` is one of its descriptors: once per socket
            *cursor = fd + 1;
            return s;
        }
    }
    *cursor = NS_MAX_FDS;
    return NULL;
}

int ns_adopt_carried(const ns_sock *carried, int memfd, int doorbell) {
    void *region = mmap(NULL, carried->region_length, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    ns_sock *s = malloc(sizeof *s);
    if (region == MAP_FAILED || !s) {
        if (region != MAP_FAILED) munmap(region, carried->region_length);
        free(s);
        errno = ENOMEM;
        return -1;
    }
    *s = *carried;
    ns_init_locks(s);
    s->cork_data = NULL;  // the old image's memory: what it corked is not carried
    s->cork_pending = false;
    s->cork_length = 0;
    s->region = region;
    s->shm = ns_region_header(region);
    ns_mark_shared(s);
    s->doorbell = doorbell;
    atomic_fetch_add(&live_sockets, 1);
    for (int i = 0; i < s->alias_count; i++) atomic_store_explicit(&table[s->aliases[i]], s, memory_order_release);
    return s->fd;
}
