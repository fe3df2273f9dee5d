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
//
// A wait looks only at the entries that may have events, as Linux's
// ready list: each set queues an entry when it is added or modified, when
// its socket's eventfd count is taken (the kernel's wait reported the tag,
// or another call here cleared it: ns_epoll_news), when something here
// changed what it polls as (listen, connect, an option), and keeps a
// level-triggered one queued while it reports it. Every other entry is
// armed, so the stack's next news for it signals the eventfd. A set of
// 1000 idle connections beside one busy one thus costs a wait nothing per
// idle connection; looking at each one every time cut an echo server's
// transactions to about half.
//
// A count taken outside the set's waits (a blocking call of another
// thread, asleep on the same eventfd) queues the socket's entries, and a
// thread asleep in the set's wait hears of it through the set's own
// eventfd (`news`), as Linux's wake-up reaches every waiter of the file:
// a writer thread blocked in send while the event loop waits for input
// took the count that announced the input, and the loop slept on.
#include "preload_internal.h"
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>

#define NS_TAG 0x4e53000000000000ull  // "NS" in the top bits
#define NS_TAG_MASK 0xffff000000000000ull
/// A set's `news` eventfd in the kernel's set: "NN" in the top bits.
#define NS_NEWS_TAG 0x4e4e000000000000ull

typedef struct entry {
    int fd;
    uint32_t events;
    epoll_data_t data;
    bool disabled;  // EPOLLONESHOT fired
    // EPOLLET: whether it was reported since its ADD or MOD, and what the
    // region (and the socket's `nospace`) said at its last report.
    bool reported;
    uint32_t rx_tail, tx_head, arrivals, state, nospace, shutdowns, urgent;
    struct set *set;                          // its set (`set->epfd`)
    bool queued;                              // on its set's queue
    struct entry *queue_prev, *queue_next;    // its neighbours on the queue
    struct entry *fd_next;                    // its descriptor's next entry (another set's)
    struct entry *member_prev, *member_next;  // its set's entries
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

/// An epoll set holding stack sockets: its entries, and those of them that
/// may have events (Linux's ready list, `rdllist`), which its next wait
/// looks at; the rest are armed, so the stack's next news for them signals
/// their eventfds, which wakes the kernel's wait on the set.
typedef struct set {
    int epfd;
    int news;  // an eventfd in the kernel's set under NS_NEWS_TAG, or -1
    entry *members;
    entry *queue_head, *queue_tail;
    struct set *next;
} set;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static set *sets;
/// Threads in each set's wait, or about to be: counted (`wait_any`) before
/// the wait looks whether the set holds stack sockets, so an entry added
/// meanwhile is either seen by that look or signalled by `wake_waiters`.
static _Atomic int waiters[NS_MAX_FDS];
/// Each descriptor's entries, one per set that holds it (`fd_next`).
static entry *by_fd[NS_MAX_FDS];
/// How many (set, stack socket) entries there are: at 0 epoll_wait skips
/// the lookup, and a cleared eventfd queues nothing.
static _Atomic int registrations;

static set *find_set(int epfd, bool create) {
    for (set *s = sets; s; s = s->next)
        if (s->epfd == epfd) return s;
    if (!create) return NULL;
    set *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    *s = (set){.epfd = epfd, .news = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), .next = sets};
    struct epoll_event kernel = {.events = EPOLLIN, .data.u64 = NS_NEWS_TAG};
    if (s->news >= 0 && LIBC(epoll_ctl)(epfd, EPOLL_CTL_ADD, s->news, &kernel) != 0) {
        LIBC(close)(s->news);
        s->news = -1;  // then a count another thread takes is heard of at the set's next wait
    }
    sets = s;
    return s;
}

/// Whether a thread is in `st`'s wait, or about to be (`waiters`).
static bool waited_on(const set *st) { return st->epfd < NS_MAX_FDS && atomic_load(&waiters[st->epfd]) > 0; }

/// Wakes a thread asleep in `st`'s wait to look at its queue; whether one waits.
static bool tell_waiters(const set *st) {
    if (st->news < 0 || !waited_on(st)) return false;
    ns_eventfd_signal(st->news);
    return true;
}

/// Empties `st`'s news eventfd, which a wait or a settle is about to answer.
static void take_news(const set *st) {
    if (st->news >= 0) ns_eventfd_take(st->news);
}

static entry *find(int epfd, int fd) {
    for (entry *e = fd >= 0 && fd < NS_MAX_FDS ? by_fd[fd] : NULL; e; e = e->fd_next)
        if (e->set->epfd == epfd) return e;
    return NULL;
}

/// Puts `e` at the end of its set's queue, if it is not on it already.
static void enqueue(entry *e) {
    if (e->queued) return;
    e->queued = true;
    e->queue_next = NULL;
    set *st = e->set;
    e->queue_prev = st->queue_tail;
    if (st->queue_tail) st->queue_tail->queue_next = e;
    else st->queue_head = e;
    st->queue_tail = e;
}

/// Takes `e` off its set's queue.
static void unqueue(entry *e) {
    set *st = e->set;
    if (e->queue_prev) e->queue_prev->queue_next = e->queue_next;
    else st->queue_head = e->queue_next;
    if (e->queue_next) e->queue_next->queue_prev = e->queue_prev;
    else st->queue_tail = e->queue_prev;
    e->queued = false;
}

static entry *dequeue(set *st) {
    entry *e = st->queue_head;
    if (e) unqueue(e);
    return e;
}

static void wake_waiters(entry *e, ns_sock *s);

/// Queues every entry of every descriptor of `s`, in every set, but
/// `except` (its eventfd count was taken, and each of them may have been
/// what it announced). With `wake`, their sets' waiters are woken as
/// `wake_waiters` wakes them; else a set's waiters are told to look at
/// its queue, but those of `quiet` (a wait of that set took the count, and
/// looks at the queue next), and of the sets that hold the socket with
/// EPOLLEXCLUSIVE only one, as the kernel wakes one of them (`quiet`'s, if any).
static void queue_socket(ns_sock *s, const entry *except, bool wake, int quiet) {
    bool exclusive_told = quiet >= 0;
    for (int i = 0; i < s->alias_count; i++) {
        int fd = s->aliases[i];
        for (entry *e = fd >= 0 && fd < NS_MAX_FDS ? by_fd[fd] : NULL; e; e = e->fd_next) {
            if (e == except) continue;
            enqueue(e);
            if (wake) {
                wake_waiters(e, s);
            } else if (!e->disabled && e->set->epfd != quiet) {
                bool exclusive = e->events & EPOLLEXCLUSIVE;
                if (exclusive && exclusive_told) continue;
                if (tell_waiters(e->set) && exclusive) exclusive_told = true;
            }
        }
    }
}

/// A wait or settle of `epfd` took `s`'s count (for `except`, if any):
/// its other entries are queued and their sets told, and threads in poll too.
static void took(ns_sock *s, const entry *except, int epfd) {
    queue_socket(s, except, false, epfd);
    ns_poll_tell(s);
}

static void queue_socket_locked(ns_sock *s, bool wake) {
    if (atomic_load_explicit(&registrations, memory_order_relaxed) == 0) return;
    pthread_mutex_lock(&lock);
    queue_socket(s, NULL, wake, -1);
    pthread_mutex_unlock(&lock);
}

void ns_epoll_news(ns_sock *s) { queue_socket_locked(s, false); }

void ns_epoll_changed(ns_sock *s) { queue_socket_locked(s, true); }

/// Unlinks `e` from its descriptor's entries, its set and its set's queue, and frees it.
static void unlink_entry(entry *e) {
    entry **at = &by_fd[e->fd];
    while (*at != e) at = &(*at)->fd_next;
    *at = e->fd_next;
    set *st = e->set;
    if (e->member_prev) e->member_prev->member_next = e->member_next;
    else st->members = e->member_next;
    if (e->member_next) e->member_next->member_prev = e->member_prev;
    if (e->queued) unqueue(e);
    free(e);
    atomic_fetch_sub(&registrations, 1);
}

/// The eventfd's registration lives as long as its file, and the stack
/// holds that file too (the other end of the socket's wake-ups), so closing
/// the descriptor would leave it in the kernel's set, reported under the
/// library's tag until the stack lets go. Linux drops a closed file's
/// registrations at once.
static void deregister(entry *e) { LIBC(epoll_ctl)(e->set->epfd, EPOLL_CTL_DEL, e->fd, NULL); }

/// Removes every entry of `fd`, after `gone` (if any) has seen each.
static void forget_descriptor(int fd, void (*gone)(entry *)) {
    if (fd < 0 || fd >= NS_MAX_FDS || atomic_load(&registrations) == 0) return;
    pthread_mutex_lock(&lock);
    while (by_fd[fd]) {
        entry *e = by_fd[fd];
        if (gone) gone(e);
        unlink_entry(e);
    }
    pthread_mutex_unlock(&lock);
}

void ns_epoll_forget(int fd, bool leave_kernel_sets) { forget_descriptor(fd, leave_kernel_sets ? deregister : NULL); }

/// `epfd` closes: its set goes, with its news eventfd. A set whose news
/// eventfd it is (the application closing descriptors it did not open)
/// forgets it, so nothing here writes to the number once reused.
void ns_epoll_forget_set(int epfd) {
    if (atomic_load(&registrations) == 0 && !sets) return;
    pthread_mutex_lock(&lock);
    for (set **at = &sets; *at;) {
        set *st = *at;
        if (st->news == epfd) st->news = -1;
        if (st->epfd != epfd) {
            at = &st->next;
            continue;
        }
        while (st->members) unlink_entry(st->members);
        if (st->news >= 0) LIBC(close)(st->news);
        *at = st->next;
        free(st);
    }
    pthread_mutex_unlock(&lock);
}

/// The eventfd's registration went with its file; the kernel socket takes
/// its place with the application's own events and data (an EPOLLONESHOT
/// that fired stays disarmed until a MOD, as it was).
static void register_kernel_socket(entry *e) {
    struct epoll_event ev = {.events = e->disabled ? (e->events & (EPOLLONESHOT | EPOLLET)) : e->events,
                             .data = e->data};
    LIBC(epoll_ctl)(e->set->epfd, EPOLL_CTL_ADD, e->fd, &ev);
}

void ns_epoll_hand_over(int fd) { forget_descriptor(fd, register_kernel_socket); }


/// Asks the stack to signal `e`'s socket's next news for `want` (its flags
/// up); whether any flag was down. One that was up has had nothing
/// signalled since it went up but the news the stack always signals, which
/// wakes the kernel's wait. The eventfd keeps any count it holds: that
/// wakes the wait once, which takes it (`kernel_only`).
static bool arm(const entry *e, ns_sock *s, short want) {
    short events = arming(e, s, want);
    if (!ns_needs_arming(s, events)) return false;
    ns_arm_flags(s, events);
    return true;
}

/// A thread asleep in the set's wait hears of an entry added or modified
/// with events for it, and of the next news for one without, as ep_insert
/// and ep_modify wake the set's waiters and hook the file's wait queue: one
/// with events has its socket's eventfd signalled (a connection accepted
/// with its request already in, handed to a worker's set); one without is
/// armed, and looked at once more (an EPOLLONESHOT entry a worker thread
/// re-arms while the loop sleeps). A set no one waits on has it looked at
/// by its next wait (queued).
static void wake_waiters(entry *e, ns_sock *s) {
    if (e->disabled || !waited_on(e->set)) return;
    short want = (short)(e->events & NS_EPOLL_EVENTS);
    if (edges(e, s, want, false) || (arm(e, s, want) && edges(e, s, want, false))) ns_signal_event(s);
}

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
    entry *found = find(epfd, fd);
    int r = 0;
    if (op == EPOLL_CTL_ADD) {
        if (found) { errno = EEXIST; r = -1; goto done; }
        entry *e = calloc(1, sizeof *e);
        set *st = find_set(epfd, true);
        if (!e || !st) { free(e); errno = ENOMEM; r = -1; goto done; }
        // EPOLLEXCLUSIVE goes on the eventfd's registration: the kernel then
        // wakes one of the sets that hold it so (a listener shared by
        // workers' sets: no thundering herd), and the rest see it when their
        // own news comes, as Linux's other sets do.
        struct epoll_event kernel = {.events = EPOLLIN | (ev->events & EPOLLEXCLUSIVE),
                                     .data.u64 = NS_TAG | (uint64_t)fd};
        if ((r = LIBC(epoll_ctl)(epfd, op, fd, &kernel)) != 0) {
            free(e);
            goto done;
        }
        *e = (entry){.fd = fd, .events = ev->events, .data = ev->data, .set = st,
                     .fd_next = by_fd[fd], .member_next = st->members};
        by_fd[fd] = e;
        if (st->members) st->members->member_prev = e;
        st->members = e;
        atomic_fetch_add(&registrations, 1);
        enqueue(e);  // looked at by the next wait, as ep_insert polls the file
        wake_waiters(e, s);
    } else if (op == EPOLL_CTL_MOD) {
        if (!found) { errno = ENOENT; r = -1; goto done; }
        if (found->events & EPOLLEXCLUSIVE) { errno = EINVAL; r = -1; goto done; }
        found->events = ev->events;
        found->data = ev->data;
        found->disabled = false;
        found->reported = false;  // as Linux: a MOD re-arms the edge
        enqueue(found);           // and ep_modify polls the file
        wake_waiters(found, s);
    } else if (op == EPOLL_CTL_DEL) {
        if (!found) { errno = ENOENT; r = -1; goto done; }
        LIBC(epoll_ctl)(epfd, op, fd, ev);
        unlink_entry(found);
    } else {
        errno = EINVAL;
        r = -1;
    }
done:
    pthread_mutex_unlock(&lock);
    return r;
}

/// Fills `out` with the ready stack sockets among the queued entries of
/// `epfd` (up to `max`), as Linux's ep_send_events: each is looked at; one
/// with nothing is armed and looked at once more (news may have come before
/// its flags went up), then leaves the queue; a level-triggered one that
/// was reported stays on it, behind the others, to be looked at again by
/// the next wait; an edge-triggered one is armed and leaves, unless news
/// came meanwhile.
static int stack_events(int epfd, struct epoll_event *out, int max) {
    int n = 0;
    pthread_mutex_lock(&lock);
    set *st = find_set(epfd, false);
    entry *kept = NULL, *kept_tail = NULL;
    for (entry *e; st && n < max && (e = dequeue(st));) {
        ns_sock *s = e->disabled ? NULL : ns_lookup(e->fd);
        if (!s) continue;
        short want = (short)(e->events & NS_EPOLL_EVENTS);
        short r = edges(e, s, want, true);
        if (!r && arm(e, s, want)) r = edges(e, s, want, true);
        if (!r) continue;
        out[n].events = (uint32_t)r & (e->events | EPOLLERR | EPOLLHUP);
        out[n].data = e->data;
        n++;
        if (e->events & EPOLLONESHOT) {
            e->disabled = true;
            continue;
        }
        if ((e->events & EPOLLET) && !(arm(e, s, want) && edges(e, s, want, false))) continue;
        e->queue_next = NULL;
        if (kept_tail) kept_tail->queue_next = e;
        else kept = e;
        kept_tail = e;
    }
    for (entry *e = kept, *next; e; e = next) {
        next = e->queue_next;
        enqueue(e);
    }
    pthread_mutex_unlock(&lock);
    return n;
}


/// Each entry, queued or not: the set's kernel descriptor must read as
/// ready exactly while one has events, so a count that announced nothing is
/// taken too (queueing the socket's other entries, for which it may have).
void ns_epoll_settle(int epfd) {
    if (atomic_load(&registrations) == 0) return;
    pthread_mutex_lock(&lock);
    set *st = find_set(epfd, false);
    if (st) take_news(st);  // its queue is settled below
    for (entry *e = st ? st->members : NULL; e; e = e->member_next) {
        ns_sock *s = ns_lookup(e->fd);
        if (!s) continue;
        if (e->disabled) {  // EPOLLONESHOT fired: nothing until a MOD
            if (ns_take_event(s)) took(s, e, epfd);
            continue;
        }
        short want = (short)(e->events & NS_EPOLL_EVENTS);
        short r = edges(e, s, want, false);
        if (!r) {
            ns_arm_flags(s, arming(e, s, want));
            if (ns_take_event(s)) took(s, e, epfd);  // taken, then looked at again: news meanwhile is not lost
            r = edges(e, s, want, false);
        }
        if (r) {
            ns_signal_event(s);
            enqueue(e);
        }
    }
    pthread_mutex_unlock(&lock);
}

/// Keeps the kernel's events that are not the library's tags; returns how
/// many. With `clear` (a set of this process's stack sockets), a tag's
/// socket has its eventfd count taken, and its entries in every set are
/// queued: the news is read from the region, and the count, left, would
/// wake every wait. The set's news eventfd is emptied. `tags` tells
/// whether any came.
static int kernel_only(int epfd, struct epoll_event *ev, int n, bool clear, bool *tags) {
    int kept = 0;
    bool locked = false;
    for (int i = 0; i < n; i++) {
        uint64_t tag = ev[i].data.u64 & NS_TAG_MASK;
        if (tag == NS_NEWS_TAG) {
            if (!locked) pthread_mutex_lock(&lock);
            locked = true;
            set *st = find_set(epfd, false);
            if (st) take_news(st);
            if (tags) *tags = true;
            continue;
        }
        if (tag != NS_TAG) {
            ev[kept++] = ev[i];
            continue;
        }
        if (tags) *tags = true;
        ns_sock *s = clear ? ns_lookup((int)(ev[i].data.u64 & ~NS_TAG_MASK)) : NULL;
        if (!s) continue;
        if (!locked) pthread_mutex_lock(&lock);
        locked = true;
        if (ns_take_event(s)) took(s, NULL, epfd);
        else queue_socket(s, NULL, false, epfd);
    }
    if (locked) pthread_mutex_unlock(&lock);
    return kept;
}

/// libc's epoll_wait, or epoll_pwait with a signal mask.
static int libc_wait(int epfd, struct epoll_event *ev, int max, int wait, const sigset_t *mask) {
    return mask ? LIBC(epoll_pwait)(epfd, ev, max, wait, mask) : LIBC(epoll_wait)(epfd, ev, max, wait);
}

/// The kernel's events for the set, `wait` ms at most, without the
/// library's tags (their sockets queued). Tags that took the slots are
/// looked past once more, each then cleared, so a kernel descriptor behind
/// them is not left for a later wait.
static int kernel_events(int epfd, struct epoll_event *ev, int max, int wait, const sigset_t *mask, bool *tags) {
    int got = 0;
    for (int round = 0; round < 4 && got < max; round++) {
        int r = libc_wait(epfd, ev + got, max - got, round == 0 ? wait : 0, mask);
        if (r < 0) return got > 0 ? got : r;
        bool tagged = false;
        got += kernel_only(epfd, ev + got, r, true, &tagged);
        if (!tagged) break;
        if (tags) *tags = true;
    }
    return got;
}

static int wait_mixed(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask) {
    long long deadline = ns_deadline_in_ms(timeout);
    static _Thread_local unsigned turns;
    for (;;) {
        // Linux's ready list takes its files in turn, so the set's kernel
        // descriptors (a pipe, a timerfd) get a slot even while more stack
        // sockets are ready than `max`: one in each wait, or the first in
        // every other wait where one event fits.
        if (max == 1 && (turns++ & 1)) {
            int r = kernel_events(epfd, ev, 1, 0, mask, NULL);
            if (r != 0) return r;
        }
        int n = stack_events(epfd, ev, max > 1 ? max - 1 : 1);
        if (n == max) return n;
        bool tags = false;
        int r = kernel_events(epfd, ev + n, max - n, n > 0 ? 0 : ns_ms_left(deadline), mask, &tags);
        if (r < 0) return n > 0 ? n : -1;
        if (n + r > 0) return n + r;
        // The stack's news alone: look at what it queued, for what time is left.
        if (!tags) return 0;
    }
}

static bool has_stack_sockets(int epfd) {
    if (atomic_load(&registrations) == 0) return false;
    pthread_mutex_lock(&lock);
    set *st = find_set(epfd, false);
    bool held = st && st->members;
    pthread_mutex_unlock(&lock);
    return held;
}

/// A set with none of this process's stack sockets. It may still hold an
/// eventfd under the library's tag (a socket another process holds, or one
/// registered before an exec): such an event is never the application's
/// (its data is not the application's), so it is dropped and the wait goes
/// on, unless a stack socket joined the set meanwhile: then -2.
static int wait_kernel(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask) {
    long long deadline = -2;  // taken only if the first wait brought nothing but the library's
    for (int wait = timeout;;) {
        int r = libc_wait(epfd, ev, max, wait, mask);
        if (r <= 0) return r;
        int kept = kernel_only(epfd, ev, r, false, NULL);
        if (kept > 0) return kept;
        if (has_stack_sockets(epfd)) return -2;
        if (timeout == 0) return 0;
        if (deadline == -2) deadline = ns_deadline_in_ms(timeout);
        if (ns_deadline_passed(deadline)) return 0;
        wait = ns_ms_left(deadline);
    }
}

/// Counts a thread in or out of `epfd`'s waiters (`waiters`).
static void count_waiter(int epfd, int delta) {
    if (epfd >= 0 && epfd < NS_MAX_FDS) atomic_fetch_add(&waiters[epfd], delta);
}

static int wait_any(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask) {
    count_waiter(epfd, 1);
    long long deadline = ns_deadline_in_ms(timeout);
    int r;
    do {
        int left = ns_ms_left(deadline);
        r = has_stack_sockets(epfd) ? wait_mixed(epfd, ev, max, left, mask) : wait_kernel(epfd, ev, max, left, mask);
    } while (r == -2);
    count_waiter(epfd, -1);
    return r;
}

NS_EXPORT int epoll_wait(int epfd, struct epoll_event *ev, int max, int timeout) {
    ns_epoll_settle_inner(epfd);
    if (max <= 0) return LIBC(epoll_wait)(epfd, ev, max, timeout);
    return wait_any(epfd, ev, max, timeout, NULL);
}

NS_EXPORT int epoll_pwait(int epfd, struct epoll_event *ev, int max, int timeout, const sigset_t *mask) {
    ns_epoll_settle_inner(epfd);
    if (max <= 0) return LIBC(epoll_pwait)(epfd, ev, max, timeout, mask);
    return wait_any(epfd, ev, max, timeout, mask);
}

NS_EXPORT int epoll_pwait2(int epfd, struct epoll_event *ev, int max, const struct timespec *ts, const sigset_t *mask) {
    ns_epoll_settle_inner(epfd);
    // A set of kernel descriptors alone waits with the nanoseconds asked
    // (a tag, which a socket joining the set meanwhile signals, ends it early).
    count_waiter(epfd, 1);
    bool kernel = (max <= 0 || !has_stack_sockets(epfd)) && LIBC(epoll_pwait2);
    int r = kernel ? LIBC(epoll_pwait2)(epfd, ev, max, ts, mask) : 0;
    count_waiter(epfd, -1);
    if (kernel) return r > 0 ? kernel_only(epfd, ev, r, false, NULL) : r;
    int timeout = ns_timeout_ms(ts);  // a set with stack sockets waits in whole milliseconds, rounded up
    if (timeout == -2) { errno = EINVAL; return -1; }
    return wait_any(epfd, ev, max, timeout, mask);
}
