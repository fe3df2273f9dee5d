// When a stack socket is ready, read from its shared region rather than
// from the kernel: the application's descriptor is an eventfd the stack
// signals on news (bytes it was asked to announce, the end of input, an
// error, a connection to accept, room it was asked for), but readability of the
// eventfd only means "look again". Before waiting, the library clears the
// eventfd and looks again, so news that came in between is never lost.
#include "preload_internal.h"
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

/// What bounds `tx`'s bytes: SO_SNDBUF's doubled value, or the ring.
static uint32_t send_buffer(ns_sock *s, uint32_t size) {
    return s->options.send_buffer > 0 && (uint32_t)s->options.send_buffer < size ? (uint32_t)s->options.send_buffer : size;
}

/// Bytes written and not yet sent, as of the stack's last turn.
static uint32_t unsent(ns_sock *s) {
    ns_tcp_fields f;
    ns_tcp_read(s->shm, &f);
    return ns_unsent_bytes(s, &f);
}

uint32_t ns_send_room(ns_sock *s) {
    uint32_t size = s->shm->tx.size, room = ns_ring_writable(&s->shm->tx);
    // Indices this process broke: the write goes ahead, and the stack,
    // which checks them, ends the socket.
    if (room > size) return room;
    uint32_t held = size - room, limit = send_buffer(s, size);
    if (held >= limit) return 0;
    if (limit - held < room) room = limit - held;
    uint32_t lowat = ns_notsent_lowat(s);
    if (lowat == 0) return room;
    // As Linux's tcp_sendmsg, which looks before each new segment of up to
    // 64 KiB whether fewer than TCP_NOTSENT_LOWAT bytes wait unsent.
    uint32_t waiting = unsent(s);
    if (waiting >= lowat) return 0;
    uint64_t most = (uint64_t)(lowat - waiting) + 65536;
    return most < room ? (uint32_t)most : room;
}

bool ns_stream_writable(ns_sock *s) {
    uint32_t size = s->shm->tx.size, room = ns_ring_writable(&s->shm->tx);
    if (room > size) return true;  // broken indices: as ns_send_room
    uint32_t held = size - room, limit = send_buffer(s, size);
    // sk_stream_wspace >= sk_stream_min_wspace: free >= queued / 2.
    if (held > limit || 2 * (uint64_t)(limit - held) < held) return false;
    uint32_t lowat = ns_notsent_lowat(s);
    return lowat == 0 || 2 * (uint64_t)unsent(s) < lowat;  // tcp_stream_memory_free(sk, 1)
}

/// Asks the stack to signal once `tx` has the room at which a stream
/// socket becomes writable again: queued bytes at most two thirds of the
/// send buffer (the stack does not know SO_SNDBUF, so the library says).
static void arm_write(ns_sock *s) {
    if (!s->datagram) {
        uint32_t size = s->shm->tx.size;
        ns_set_write_wake_room(s->shm, size - (uint32_t)(2 * (uint64_t)send_buffer(s, size) / 3));
    }
    ns_flag_set(&s->shm->app_wants_write);
}

void ns_note_nospace(ns_sock *s) {
    atomic_fetch_add_explicit(&s->nospace, 1, memory_order_relaxed);
    arm_write(s);
}

/// The full mask of a stack socket, as Linux's tcp_poll and datagram_poll
/// compute it before poll masks it with the events asked.
static short full_mask(ns_sock *s) {
    short r = 0;
    if (s->datagram) {
        // Readable with a datagram or an error waiting; writable with room for one of 2 KiB.
        if (!ns_ring_is_empty(&s->shm->rx)) r |= POLLIN;
        if (ns_ring_writable(&s->shm->tx) >= sizeof(ns_datagram) + 2048) r |= POLLOUT | POLLWRBAND;
        if (ns_peek_error(s->shm) != 0) r |= POLLERR;
        // Shut by shutdown(2) here, as Linux's datagram_poll.
        if (s->read_shut) r |= POLLIN | POLLRDHUP;
        if (s->read_shut && s->write_shut) r |= POLLHUP;
        return r;
    }
    if (s->listening) return ns_pending(s->shm) > 0 ? POLLIN : 0;  // inet_csk_listen_poll
    uint32_t st = ns_state(s->shm);
    if (!s->connecting && !(st & NS_STATE_CONNECTED)) return POLLOUT | POLLHUP;  // as Linux, a fresh socket
    // As Linux's tcp_poll: either direction shut, by the peer's FIN or the
    // connection's end or by shutdown(2) here, reads as readable (RDHUP) or
    // writable (so a writer learns of EPIPE); both, as a hang-up.
    bool rx_shut = (st & NS_STATE_RX_EOF) || s->read_shut;
    bool tx_shut = (st & NS_STATE_TX_CLOSED) || s->write_shut;
    // Readable with SO_RCVLOWAT's bytes waiting (tcp_poll's
    // tcp_stream_is_readable), one more at an urgent byte a read passes
    // over; POLLPRI while the urgent byte waits, not taken by MSG_OOB.
    uint32_t waiting = ns_ring_readable(&s->shm->rx);
    ns_urgent_read plan = ns_urgent_plan(s, waiting);
    uint32_t target = ns_receive_lowat(s) + (plan.at_mark && !plan.oobinline ? 1 : 0);
    if (waiting - plan.hole >= target || rx_shut) r |= POLLIN;
    if (plan.pending) r |= POLLPRI;
    if (rx_shut) r |= POLLRDHUP;
    if (tx_shut) {
        r |= POLLOUT;
    } else if (st & NS_STATE_CONNECTED) {
        if (ns_stream_writable(s)) r |= POLLOUT;
        else atomic_fetch_add_explicit(&s->nospace, 1, memory_order_relaxed);  // as tcp_poll sets SOCK_NOSPACE
    }
    if (st & NS_STATE_ERROR) {
        r |= POLLOUT;
        if (ns_peek_error(s->shm) != 0) r |= POLLERR;
    }
    if (rx_shut && tx_shut) r |= POLLHUP;
    return r;
}

short ns_readiness(ns_sock *s, short events) {
    short r = full_mask(s);
    // Linux's masks carry the normal-data bits with IN and OUT.
    if (r & POLLIN) r |= POLLRDNORM;
    if (r & POLLOUT) r |= POLLWRNORM;
    return r & (events | (s->listening ? 0 : POLLERR | POLLHUP));
}

void ns_arm_flags(ns_sock *s, short events) {
    if (events & (POLLIN | POLLRDNORM | POLLPRI)) ns_flag_set(&s->shm->app_wants_read);
    if (events & (POLLOUT | POLLWRNORM | POLLWRBAND)) arm_write(s);
}

void ns_arm(ns_sock *s, short events) {
    ns_arm_flags(s, events);
    ns_clear_event(s);
}

bool ns_needs_arming(ns_sock *s, short events) {
    bool reading = events & (POLLIN | POLLRDNORM | POLLPRI), writing = events & (POLLOUT | POLLWRNORM | POLLWRBAND);
    return !(reading || writing) || (reading && !atomic_load(&s->shm->app_wants_read))
           || (writing && !atomic_load(&s->shm->app_wants_write));
}

bool ns_arm_lazily(ns_sock *s, short events) {
    if (!ns_needs_arming(s, events)) return false;
    ns_arm(s, events);
    return true;
}

// The eventfd calls below leave errno as it was: their callers go on to
// succeed (a wait that times out returns 0), and Linux's calls do not touch
// errno on success (nc prints it after a poll that timed out).
bool ns_eventfd_take(int fd) {
    uint64_t count;
    int saved = errno;
    bool taken = LIBC(read)(fd, &count, sizeof count) == sizeof count;  // EAGAIN when nothing was signalled
    errno = saved;
    return taken;
}

void ns_eventfd_signal(int fd) {
    uint64_t one = 1;
    int saved = errno;
    LIBC(write)(fd, &one, sizeof one);
    errno = saved;
}

bool ns_take_event(ns_sock *s) { return ns_eventfd_take(s->fd); }

void ns_clear_event(ns_sock *s) {
    if (!ns_take_event(s)) return;
    ns_epoll_news(s);
    ns_poll_tell(s);
}

long long ns_deadline(const struct timeval *t) {
    if (t->tv_sec < 0) return 0;
    if (t->tv_sec == 0 && t->tv_usec == 0) return -1;
    return ns_now_ns() + (long long)t->tv_sec * 1000000000LL + (long long)t->tv_usec * 1000;
}

long long ns_deadline_in_ms(int timeout_ms) {
    return timeout_ms < 0 ? -1 : ns_now_ns() + timeout_ms * 1000000LL;
}

bool ns_deadline_passed(long long deadline) { return deadline >= 0 && ns_now_ns() >= deadline; }

int ns_ms_left(long long deadline) {
    if (deadline < 0) return -1;
    long long left = deadline - ns_now_ns();
    if (left <= 0) return 0;
    long long ms = (left + 999999) / 1000000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

int ns_wait_event(ns_sock *s, long long deadline, int cap_ms) {
    int timeout = cap_ms;
    if (deadline >= 0) {
        int left = ns_ms_left(deadline);
        if (left == 0) { errno = EAGAIN; return -1; }
        if (timeout < 0 || left < timeout) timeout = left;
    }
    int saved = errno;
    // The thread's news eventfd beside the socket's: another thread that
    // takes a count of the socket's (a writer blocked beside this reader)
    // tells it (ns_poll_tell), instead of leaving it to the recheck.
    struct pollfd p[2] = {{.fd = s->fd, .events = POLLIN}, {.fd = ns_poll_news_begin(), .events = POLLIN}};
    atomic_fetch_add(&s->polling, 1);
    // Counted before the look at `closed`, which ns_release sets before it
    // counts: a close either sees this thread or is seen by it.
    atomic_fetch_add(&s->waiting, 1);
    bool interrupted = !atomic_load(&s->closed) && LIBC(poll)(p, 2, timeout) < 0 && errno == EINTR;
    atomic_fetch_sub(&s->polling, 1);  // first: a close may free `s` once no one waits
    atomic_fetch_sub(&s->waiting, 1);
    if (p[1].revents & POLLIN) ns_poll_news_take();
    ns_poll_news_end();
    if (atomic_load(&s->closed)) { errno = EBADF; return -1; }
    if (interrupted && ns_signal_interrupts(deadline >= 0)) { errno = EINTR; return -1; }
    errno = saved;
    return 0;
}

bool ns_signal_interrupts(bool timed) {
    if (timed) return true;
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &sa) != 0) continue;
        if (sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN && !(sa.sa_flags & SA_RESTART)) return true;
    }
    return false;
}

void ns_signal_event(ns_sock *s) { ns_eventfd_signal(s->fd); }

/// Whether this thread rang a doorbell since its last blocking receive.
static _Thread_local bool rang_since_wait;

void ns_ring_doorbell(ns_sock *s) {
    ns_eventfd_signal(s->doorbell);
    rang_since_wait = true;
}

void ns_yield_before_receive_wait(void) {
    if (!rang_since_wait) return;
    rang_since_wait = false;
    sched_yield();
}

long long ns_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

long long ns_now_ms(void) { return ns_now_ns() / 1000000; }

/// How long a blocking call spins before it sleeps (NETSTACK_SPIN_USEC,
/// read once; -1 until then).
static _Atomic long spin_budget_ns = -1;

static long spin_budget(void) {
    long b = atomic_load_explicit(&spin_budget_ns, memory_order_relaxed);
    if (b >= 0) return b;
    const char *v = getenv(NS_SPIN_ENV);
    long us = v ? strtol(v, NULL, 10) : NS_SPIN_DEFAULT_USEC;
    b = us > 0 && us < 1000000 ? us * 1000 : 0;
    atomic_store_explicit(&spin_budget_ns, b, memory_order_relaxed);
    return b;
}

bool ns_spin_until_ready(ns_sock *s, short events) {
    long budget = spin_budget();
    // SO_BUSY_POLL: a blocking receive busy-polls that long (sk_busy_loop), whatever the default.
    if (events & POLLIN) {
        long own = ns_busy_poll_ns(s);
        if (own > budget) budget = own;
    }
    if (budget == 0) return false;
    long long end = ns_now_ns() + budget;
    do {
        if (ns_readiness(s, events)) return true;
        // The stack's loop may share this CPU: let it run.
        sched_yield();
    } while (ns_now_ns() < end);
    return ns_readiness(s, events) != 0;
}
