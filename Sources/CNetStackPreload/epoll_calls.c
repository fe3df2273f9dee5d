// epoll with stack sockets in the set. The kernel's set holds each stack
// socket's eventfd under a tag of the library's (NS_TAG | fd) instead of the
// application's data; the library keeps, per epoll set, the application's
// events and data for each stack socket, and epoll_wait reports their
// readiness from the regions, as poll does. Level-triggered, with
// EPOLLONESHOT, or edge-triggered (EPOLLET). An edge-triggered entry is
// reported as Linux's epoll reports one: when a wake-up that matches its
// events came since its last report (bytes, a datagram or a connection
// arrived, for EPOLLIN; room came back after a write found too little, or
// the stack took a datagram, for EPOLLOUT; the socket's state changed, or
// a shutdown here, for any), and
// then with everything that is ready, as ep_send_events polls the file again.
#include "preload_internal.h"
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_TAG 0x4e53000000000000ull  // "NS" in the top bits
#define NS_TAG_MASK 0xffff000000000000ull

typedef struct entry {
    int epfd, fd;
    uint32_t events;
    epoll_data_t data;
    bool disabled;  // EPOLLONESHOT fired
    // EPOLLET: whether it was reported since its ADD or MOD, and what the
    // region (and the socket's `nospace`) said at its last report.
    bool reported;
    uint32_t rx_tail, tx_head, arrivals, state, nospace, shutdowns, urgent;
    struct entry *next;
} entry;

/// What poll says of `e`'s socket for `want`: for an edge-triggered
/// entry, only if news came since its last report (recorded now if
/// `report`), else nothing.
static short edges(entry *e, ns_sock *s, short want, bool report) {
    if (!(e->events & EPOLLET)) return ns_readiness(s, want);
    // Read before the look, so what changes during it is news at the next
    // (the look counts itself in `nospace` if it finds the socket unwritable).
    uint32_t rx_tail = atomic_load(&s->shm->rx.tail), tx_head = atomic_load(&s->shm->tx.head);
    uint32_t arrivals = ns_arrivals(s->shm), state = ns_state(s->shm);
    uint32_t nospace = atomic_load_explicit(&s->nospace, memory_order_relaxed);
    uint32_t shutdowns = atomic_load_explicit(&s->shutdowns, memory_order_relaxed);
    uint32_t urgent = ns_urgent_count(ns_urgent_mark(s->shm));
    short ready = ns_readiness(s, want);
    // The first look after ADD or MOD; sk_state_change wakes all (the stack's
    // news, or inet_shutdown's here).
    bool news = !e->reported || state != e->state || shutdowns != e->shutdowns;
    // sk_data_ready wakes readers and EPOLLPRI's waiters; an urgent pointer may come alone.
    if (e->events & (EPOLLIN | EPOLLRDNORM | EPOLLPRI | EPOLLRDBAND))
        news = news || rx_tail != e->rx_tail || arrivals != e->arrivals || urgent != e->urgent;
    // sk_stream_write_space; a datagram socket's sock_wfree wakes writers
    // as each datagram leaves.
    if (e->events & (EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND))
        news = news || (s->datagram ? tx_head != e->tx_head : nospace != e->nospace && (ready & POLLOUT));
    if (!news) return 0;
    // A report takes the news, as a wake-up is spent once its file was
    // polled, whether or not anything was ready by then.
    if (report) {
        e->reported = true;
        e->rx_tail = rx_tail;
        e->tx_head = tx_head;
        e->arrivals = arrivals;
        e->state = state;
        e->nospace = nospace;
        e->shutdowns = shutdowns;
        e->urgent = urgent;
    }
    return ready;
}

/// The events to arm `e`'s socket for before a wait: an edge-triggered
/// entry's EPOLLOUT only while room coming back would be news (the socket
/// is not writable, or a write found too little room since the last
/// report); otherwise every ACK would wake the wait for nothing.
static short arming(const entry *e, ns_sock *s, short want) {
    const short out = POLLOUT | POLLWRNORM | POLLWRBAND;
    if (!(e->events & EPOLLET) || !(want & out) || s->datagram || s->listening) return want;
    if (atomic_load_explicit(&s->nospace, memory_order_relaxed) != e->nospace || !e->reported) return want;
    return (ns_readiness(s, POLLOUT) & POLLOUT) ? (short)(want & ~out) : want;
}

/// The readiness events a stack socket's entry can report (EPOLLERR and EPOLLHUP come always).
#define NS_EPOLL_EVENTS (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLRDNORM | EPOLLWRNORM | EPOLLRDBAND | EPOLLWRBAND)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static entry *entries;
/// How many (set, stack socket) entries there are: at 0 epoll_wait skips
/// the lookup. Every removal counts down (`remove_entries`, EPOLL_CTL_DEL).
static int registrations;
/// Counts the changes to `entries` (under `lock`): a wait's arming pass
/// trusts the looks of the pass before it only if none came between.
static unsigned changes;

static entry **find(int epfd, int fd) {
    for (entry **e = &entries; *e; e = &(*e)->next)
        if ((*e)->epfd == epfd && (*e)->fd == fd) return e;
    return NULL;
}

static bool set_has_stack_sockets(int epfd) {
    for (entry *e = entries; e; e = e->next)
        if (e->epfd == epfd) return true;
    return false;
}

/// Unlinks and frees every entry `match` picks, after `gone` (if any) has
/// seen it, and counts them out of `registrations`.
static void remove_entries(bool (*match)(const entry *, int), int key, void (*gone)(entry *)) {
    if (!entries) return;
    pthread_mutex_lock(&lock);
    for (entry **e = &entries; *e;) {
        if (!match(*e, key)) {
            e = &(*e)->next;
            continue;
        }
        entry *removed = *e;
        *e = removed->next;
        if (gone) gone(removed);
        free(removed);
        registrations--;
        changes++;
    }
    pthread_mutex_unlock(&lock);
}

static bool names_socket(const entry *e, int fd) { return e->fd == fd; }
static bool in_set(const entry *e, int epfd) { return e->epfd == epfd; }

/// The eventfd's registration lives as long as its file, and the stack
/// holds that file too (the other end of the socket's wake-ups), so closing
/// the descriptor would leave it in the kernel's set, reported under the
/// library's tag until the stack lets go. Linux drops a closed file's
/// registrations at once.
static void deregister(entry *e) { LIBC(epoll_ctl)(e->epfd, EPOLL_CTL_DEL, e->fd, NULL); }

void ns_epoll_forget(int fd, bool leave_kernel_sets) {
    remove_entries(names_socket, fd, leave_kernel_sets ? deregister : NULL);
}

void ns_epoll_forget_set(int epfd) { remove_entries(in_set, epfd, NULL); }

/// The eventfd's registration went with its file; the kernel socket takes
/// its place with the application's own events and data (an EPOLLONESHOT
/// that fired stays disarmed until a MOD, as it was).
static void register_kernel_socket(entry *e) {
    struct epoll_event ev = {.events = e->disabled ? (e->events & (EPOLLONESHOT | EPOLLET)) : e->events,
                             .data = e->data};
    LIBC(epoll_ctl)(e->epfd, EPOLL_CTL_ADD, e->fd, &ev);
}

void ns_epoll_hand_over(int fd) { remove_entries(names_socket, fd, register_kernel_socket); }

NS_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *ev) {
    ns_sock *s = ns_lookup(fd);
    if (!s) {
        int r = LIBC(epoll_ctl)(epfd, op, fd, ev);
        if (r == 0) ns_epoll_nesting_changed(epfd, op, fd);
        return r;
    }
    if (op != EPOLL_CTL_DEL && !ev) { errno = EFAULT; return -1; }
    // Linux's ep_ctl: EPOLLEXCLUSIVE takes only these events, and a registration with it cannot be modified.
    const uint32_t exclusive_ok = EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE;
    if (op != EPOLL_CTL_DEL && (ev->events & EPOLLEXCLUSIVE) && (op == EPOLL_CTL_MOD || (ev->events & ~exclusive_ok))) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&lock);
    changes++;
    entry **found = find(epfd, fd);
    int r = 0;
    if (op == EPOLL_CTL_ADD) {
        if (found) { errno = EEXIST; r = -1; goto done; }
        // EPOLLEXCLUSIVE goes on the eventfd's registration: the kernel then
        // wakes one of the sets that hold it so (a listener shared by
        // workers' sets: no thundering herd), and the rest see it at their next look.
        struct epoll_event kernel = {.events = EPOLLIN | (ev->events & EPOLLEXCLUSIVE),
                                     .data.u64 = NS_TAG | (uint64_t)fd};
        if ((r = LIBC(epoll_ctl)(epfd, op, fd, &kernel)) != 0) goto done;
        entry *e = calloc(1, sizeof *e);
        *e = (entry){.epfd = epfd, .fd = fd, .events = ev->events, .data = ev->data, .next = entries};
        entries = e;
        registrations++;
    } else if (op == EPOLL_CTL_MOD) {
        if (!found) { errno = ENOENT; r = -1; goto done; }
        if ((*found)->events & EPOLLEXCLUSIVE) { errno = EINVAL; r = -1; goto done; }
        (*found)->events = ev->events;
        (*found)->data = ev->data;
        (*found)->disabled = false;
        (*found)->reported = false;  // as Linux: a MOD re-arms the edge
    } else if (op == EPOLL_CTL_DEL) {
        if (!found) { errno = ENOENT; r = -1; goto done; }
        LIBC(epoll_ctl)(epfd, op, fd, ev);
        entry *gone = *found;
        *found = gone->next;
        free(gone);
        registrations--;
    } else {
        errno = EINVAL;
        r = -1;
    }
done:
    pthread_mutex_unlock(&lock);
    return r;
}

/// Fills `out` with the ready stack sockets of `epfd` (up to `max`). An
/// arming pass (`looked`: the `changes` when a pass that found nothing
/// began) arms them first, and looks again only at those it armed, unless
/// the entries changed since: one whose flags were up would have had its
/// news signalled, which wakes the kernel's wait.
static int stack_events(int epfd, struct epoll_event *out, int max, const unsigned *looked, unsigned *began) {
    int n = 0;
    pthread_mutex_lock(&lock);
    if (began) *began = changes;
    bool trusted = looked && *looked == changes;
    for (entry *e = entries; e && n < max; e = e->next) {
        if (e->epfd != epfd || e->disabled) continue;
        ns_sock *s = ns_lookup(e->fd);
        if (!s) continue;
        short want = (short)(e->events & NS_EPOLL_EVENTS);
        if (looked && !ns_arm_lazily(s, arming(e, s, want)) && trusted) continue;
        short r = edges(e, s, want, true);
        if (!r) continue;
        out[n].events = (uint32_t)r & (e->events | EPOLLERR | EPOLLHUP);
        out[n].data = e->data;
        if (e->events & EPOLLONESHOT) e->disabled = true;
        n++;
    }
    pthread_mutex_unlock(&lock);
    return n;
}


void ns_epoll_settle(int epfd) {
    if (registrations == 0) return;
    pthread_mutex_lock(&lock);
    for (entry *e = entries; e; e = e->next) {
        if (e->epfd != epfd) continue;
        ns_sock *s = ns_lookup(e->fd);
        if (!s) continue;
        if (e->disabled) {  // EPOLLONESHOT fired: nothing until a MOD
            ns_clear_event(s);
            continue;
        }
        short want = (short)(e->events & NS_EPOLL_EVENTS);
        short r = edges(e, s, want, false);
        if (!r) {
            ns_arm(s, arming(e, s, want));  // cleared, then looked at again: news meanwhile is not lost
            r = edges(e, s, want, false);
        }
        if (r) ns_signal_event(s);
    }
    pthread_mutex_unlock(&lock);
}

/// Keeps the kernel's events that are not the library's tags; returns how
/// many. With `clear` (a set of this process's stack sockets), a tag's
/// socket has its eventfd cleared: its news is read from the region, and
/// the count, left, would wake every wait (`ns_arm_lazily` may not clear it).
static int kernel_only(struct epoll_event *ev, int n, bool clear) {
    int kept = 0;
    for (int i = 0; i < n; i++) {
        if ((ev[i].data.u64 & NS_TAG_MASK) != NS_TAG) {
            ev[kept++] = ev[i];
            continue;
        }
        ns_sock *s = clear ? ns_lookup((int)(ev[i].data.u64 & ~NS_TAG_MASK)) : NULL;
        if (s) ns_clear_event(s);
    }
    return kept;
}

static int wait_mixed(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask) {
    long long deadline = ns_deadline_in_ms(timeout);
    for (;;) {
        unsigned looked;
        int n = stack_events(epfd, ev, max, NULL, &looked);
        if (n == 0) n = stack_events(epfd, ev, max, &looked, NULL);
        int wait = n > 0 ? 0 : ns_ms_left(deadline);
        int r = mask ? LIBC(epoll_pwait)(epfd, ev + n, max - n, wait, mask)
                     : LIBC(epoll_wait)(epfd, ev + n, max - n, wait);
        if (r < 0) return n > 0 ? n : -1;
        r = kernel_only(ev + n, r, true);
        if (n + r > 0) return n + r;
        if (ns_deadline_passed(deadline)) return 0;
        // Only "look again" from eventfds: back to the regions.
        if (max - n <= 0) return 0;
    }
}

/// A set with none of this process's stack sockets. It may still hold an
/// eventfd under the library's tag (a socket another process holds, or one
/// registered before an exec): such an event is never the application's
/// (its data is not the application's), so it is dropped and the wait goes on.
static int wait_kernel(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask) {
    long long deadline = -2;  // taken only if the first wait brought nothing but the library's
    for (int wait = timeout;;) {
        int r = mask ? LIBC(epoll_pwait)(epfd, ev, max, wait, mask) : LIBC(epoll_wait)(epfd, ev, max, wait);
        if (r <= 0) return r;
        int kept = kernel_only(ev, r, false);
        if (kept > 0 || timeout == 0) return kept;
        if (deadline == -2) deadline = ns_deadline_in_ms(timeout);
        if (ns_deadline_passed(deadline)) return 0;
        wait = ns_ms_left(deadline);
    }
}

NS_EXPORT int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout) {
    ns_epoll_settle_inner(epfd);
    if (max <= 0) return LIBC(epoll_wait)(epfd, ev, max, timeout);
    if (registrations == 0) return wait_kernel(epfd, ev, max, timeout, NULL);
    pthread_mutex_lock(&lock);
    bool mixed = set_has_stack_sockets(epfd);
    pthread_mutex_unlock(&lock);
    if (!mixed) return wait_kernel(epfd, ev, max, timeout, NULL);
    return wait_mixed(epfd, ev, max, timeout, NULL);
}

NS_EXPORT int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask) {
    ns_epoll_settle_inner(epfd);
    if (max <= 0) return LIBC(epoll_pwait)(epfd, ev, max, timeout, mask);
    if (registrations == 0) return wait_kernel(epfd, ev, max, timeout, mask);
    pthread_mutex_lock(&lock);
    bool mixed = set_has_stack_sockets(epfd);
    pthread_mutex_unlock(&lock);
    if (!mixed) return wait_kernel(epfd, ev, max, timeout, mask);
    return wait_mixed(epfd, ev, max, timeout, mask);
}

NS_EXPORT int epoll_pwait2(int epfd, struct epoll_event *ev, int max, const struct timespec *ts, const sigset_t *mask) {
    ns_epoll_settle_inner(epfd);
    bool mixed = false;
    if (registrations > 0 && max > 0) {
        pthread_mutex_lock(&lock);
        mixed = set_has_stack_sockets(epfd);
        pthread_mutex_unlock(&lock);
    }
    if (!mixed && LIBC(epoll_pwait2)) return LIBC(epoll_pwait2)(epfd, ev, max, ts, mask);
    int timeout = ns_timeout_ms(ts);  // a set with stack sockets waits in whole milliseconds, rounded up
    if (timeout == -2) { errno = EINVAL; return -1; }
    return mixed ? wait_mixed(epfd, ev, max, timeout, mask) : LIBC(epoll_pwait)(epfd, ev, max, timeout, mask);
}
