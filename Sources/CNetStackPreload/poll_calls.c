// poll and select over stack sockets and kernel descriptors together. A set
// without stack sockets goes to libc as it is. Otherwise: the stack sockets'
// readiness is read from their regions; if one is ready, the kernel's
// descriptors are polled without waiting and both are reported; if none
// is, each is armed (eventfd cleared, room asked for) and looked at again,
// and then one kernel poll waits on everything, the stack sockets through
// their eventfds, and the readiness of those signalled is read from their
// regions again. The kernel poll holds the thread's news eventfd too
// (poll_news.c), signalled when another thread took a count from one of
// those eventfds: then every socket is looked at again.
#include "preload_internal.h"
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <signal.h>
#include <pthread.h>


/// Sets revents of the stack sockets in `fds`; returns how many are ready.
/// While none is, one with nothing is armed as it is passed, and looked at
/// once more if its flags were down (news may have come before they went
/// up); one whose flags were up would have had its news signalled. One
/// pass, each socket's region looked at about once: a set of 1000 idle
/// sockets made two passes, then a third to arm them.
static int stack_ready(struct pollfd *fds, nfds_t n) {
    int ready = 0;
    for (nfds_t i = 0; i < n; i++) {
        ns_sock *s = ns_lookup(fds[i].fd);
        if (!s) continue;
        fds[i].revents = ns_readiness(s, fds[i].events);
        if (!fds[i].revents && ready == 0 && ns_arm_lazily(s, fds[i].events))
            fds[i].revents = ns_readiness(s, fds[i].events);
        if (fds[i].revents) ready++;
    }
    return ready;
}

/// Whether `fds` holds a stack socket; settles each epoll set among the
/// others (readable exactly while it has events).
static bool holds_stack_socket(struct pollfd *fds, nfds_t n) {
    bool any = false;
    for (nfds_t i = 0; i < n; i++) {
        if (ns_lookup(fds[i].fd)) any = true;
        else ns_epoll_settle_tree(fds[i].fd);
    }
    return any;
}

/// Counts the calling thread in or out of each stack socket of `fds`
/// (`polling`), found by number each time: a socket another thread closes
/// meanwhile may be gone, and one opened at its number is never counted
/// below 0.
static void count_polling(struct pollfd *fds, nfds_t n, int delta) {
    for (nfds_t i = 0; i < n; i++) {
        ns_sock *s = ns_lookup(fds[i].fd);
        if (s && atomic_fetch_add(&s->polling, delta) + delta < 0) atomic_store(&s->polling, 0);
    }
}

NS_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout) {
    if (!holds_stack_socket(fds, n)) return LIBC(poll)(fds, n, timeout);

    struct pollfd small[65];
    struct pollfd *kernel = n < 65 ? small : malloc((n + 1) * sizeof *kernel);
    if (!kernel) { errno = ENOMEM; return -1; }
    long long deadline = ns_deadline_in_ms(timeout);
    int result = 0;
    int news = ns_poll_news_begin();  // before the first look: a count taken after it is told
    count_polling(fds, n, 1);
    for (;;) {
        int ready = stack_ready(fds, n);
        // The kernel's descriptors (and, when nothing is ready, the stack sockets' eventfds).
        bool kernel_fds = false;
        for (nfds_t i = 0; i < n; i++) {
            if (fds[i].fd >= 0 && !ns_lookup(fds[i].fd)) kernel_fds = true;
        }
        if (ready && !kernel_fds) {  // nothing to ask the kernel
            result = ready;
            break;
        }
        for (nfds_t i = 0; i < n; i++) {
            kernel[i] = fds[i];
            kernel[i].revents = 0;
            if (ns_lookup(fds[i].fd)) {
                if (ready) kernel[i].fd = -1;  // ignored by poll
                else kernel[i].events = POLLIN;
            }
        }
        int wait = ready ? 0 : ns_ms_left(deadline);
        kernel[n] = (struct pollfd){.fd = ready ? -1 : news, .events = POLLIN};
        int r = LIBC(poll)(kernel, n + 1, wait);
        if (r < 0) { result = -1; break; }
        bool told = kernel[n].revents & POLLIN;  // then each socket is looked at again
        if (told) ns_poll_news_take();
        int total = 0;
        for (nfds_t i = 0; i < n; i++) {
            ns_sock *s = ns_lookup(fds[i].fd);
            if (s) {
                // Armed, each: one with nothing signalled has nothing new.
                if (!ready) fds[i].revents = told || (kernel[i].revents & POLLIN) ? ns_readiness(s, fds[i].events) : 0;
                // A count that woke the wait for nothing the caller asked: gone,
                // else the next wait, armed lazily, would wake on it again.
                if (!ready && !fds[i].revents && (kernel[i].revents & POLLIN)) ns_clear_event(s);
            } else {
                fds[i].revents = kernel[i].revents;
            }
            if (fds[i].revents) total++;
        }
        if (total > 0 || ns_deadline_passed(deadline)) { result = total; break; }
        // A wake-up with nothing for the caller (the eventfd said "look again"): wait on.
    }
    count_polling(fds, n, -1);
    ns_poll_news_end();
    if (kernel != small) free(kernel);
    return result;
}

NS_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen) {
    (void)fdslen;
    return poll(fds, n, timeout);
}

int ns_timeout_ms(const struct timespec *ts) {
    if (!ts) return -1;
    if (ts->tv_sec < 0 || ts->tv_nsec < 0 || ts->tv_nsec >= 1000000000L) return -2;
    long long ms = (long long)ts->tv_sec * 1000 + (ts->tv_nsec + 999999) / 1000000;
    return ts->tv_sec > INT_MAX / 1000 || ms > INT_MAX ? INT_MAX : (int)ms;
}

NS_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask) {
    if (!holds_stack_socket(fds, n)) return LIBC(ppoll)(fds, n, ts, mask);
    int timeout = ns_timeout_ms(ts);
    if (timeout == -2) { errno = EINVAL; return -1; }
    // The signal mask is not applied atomically with the wait for stack sockets.
    sigset_t old;
    if (mask) pthread_sigmask(SIG_SETMASK, mask, &old);
    int r = poll(fds, n, timeout);
    int e = errno;
    if (mask) pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return r;
}

NS_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask,
                          size_t fdslen) {
    (void)fdslen;
    return ppoll(fds, n, ts, mask);
}

/// Whether any descriptor in the sets (below `nfds`) is a stack socket or an
/// epoll set: select and pselect go to libc if none is.
static bool sets_hold_stack_socket(int nfds, const fd_set *rd, const fd_set *wr, const fd_set *ex) {
    for (int fd = 0; fd < nfds; fd++) {
        if (((rd && FD_ISSET(fd, rd)) || (wr && FD_ISSET(fd, wr)) || (ex && FD_ISSET(fd, ex))) &&
            (ns_lookup(fd) || ns_is_epoll_set(fd)))
            return true;
    }
    return false;
}

/// select over sets holding a stack socket, through poll, for `timeout` ms (-1: no limit).
static int select_through_poll(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, int timeout) {
    struct pollfd small[64];
    struct pollfd *p = nfds <= 64 ? small : calloc(nfds, sizeof *p);
    if (!p) { errno = ENOMEM; return -1; }
    nfds_t n = 0;
    for (int fd = 0; fd < nfds; fd++) {
        short events = 0;
        if (rd && FD_ISSET(fd, rd)) events |= POLLIN;
        if (wr && FD_ISSET(fd, wr)) events |= POLLOUT;
        if (ex && FD_ISSET(fd, ex)) events |= POLLPRI;
        if (events) p[n++] = (struct pollfd){.fd = fd, .events = events};
    }
    int r = poll(p, n, timeout);
    if (r < 0) {
        if (p != small) free(p);
        return -1;
    }
    if (rd) FD_ZERO(rd);
    if (wr) FD_ZERO(wr);
    if (ex) FD_ZERO(ex);
    int count = 0;
    for (nfds_t i = 0; i < n; i++) {
        short re = p[i].revents;
        if (rd && (re & (POLLIN | POLLHUP | POLLERR)) && (p[i].events & POLLIN)) { FD_SET(p[i].fd, rd); count++; }
        if (wr && (re & (POLLOUT | POLLERR)) && (p[i].events & POLLOUT)) { FD_SET(p[i].fd, wr); count++; }
        if (ex && (re & POLLPRI)) { FD_SET(p[i].fd, ex); count++; }
    }
    if (p != small) free(p);
    return count;
}

NS_EXPORT int select(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, struct timeval *tv) {
    if (!sets_hold_stack_socket(nfds, rd, wr, ex)) return LIBC(select)(nfds, rd, wr, ex, tv);
    if (tv && (tv->tv_usec < 0 || tv->tv_usec >= 1000000)) { errno = EINVAL; return -1; }
    struct timespec ts;
    if (tv) ts = (struct timespec){.tv_sec = tv->tv_sec, .tv_nsec = tv->tv_usec * 1000L};
    int timeout = ns_timeout_ms(tv ? &ts : NULL);
    if (timeout == -2) { errno = EINVAL; return -1; }
    return select_through_poll(nfds, rd, wr, ex, timeout);
}

NS_EXPORT int pselect(int nfds, fd_set *rd, fd_set *wr, fd_set *ex, const struct timespec *ts, const sigset_t *mask) {
    if (!sets_hold_stack_socket(nfds, rd, wr, ex)) return LIBC(pselect)(nfds, rd, wr, ex, ts, mask);
    int timeout = ns_timeout_ms(ts);
    if (timeout == -2) { errno = EINVAL; return -1; }
    // As ppoll: the signal mask is not applied atomically with the wait for stack sockets.
    sigset_t old;
    if (mask) pthread_sigmask(SIG_SETMASK, mask, &old);
    int r = select_through_poll(nfds, rd, wr, ex, timeout);
    int e = errno;
    if (mask) pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return r;
}
