// Reading and writing a stack socket: bytes go through the shared rings
// without a message to the stack. A doorbell rings only when the stack
// asked for one (its flag is up: it drained `tx`, or `rx` was full); a
// blocking call waits on the socket's eventfd after clearing it and looking
// again. Errors as Linux: ECONNRESET once, then end of file or EPIPE; EPIPE
// raises SIGPIPE unless MSG_NOSIGNAL.
#include "preload_internal.h"
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>

/// Up to `len` bytes into `buf`: > 0, 0 at end of input, or -1 with errno.
static ssize_t stack_recv(ns_sock *s, void *buf, size_t len, int flags) {
    bool dontwait = s->nonblocking || (flags & MSG_DONTWAIT);
    bool peek = (flags & MSG_PEEK) != 0;
    if (s->listening) { errno = ENOTCONN; return -1; }
    if (len == 0) return 0;
    if (len > UINT32_MAX) len = UINT32_MAX;
    bool cleared = false;
    for (;;) {
        uint32_t n = ns_ring_read(&s->shm->rx, s->region, buf, (uint32_t)len, peek);
        if (n > 0) {
            if (!peek && ns_flag_take(&s->shm->stack_wants_rx_room)) ns_ring_doorbell(s);
            return n;
        }
        uint32_t st = ns_state(s->shm);
        if (st & NS_STATE_RX_EOF) {
            if (!ns_ring_is_empty(&s->shm->rx)) continue;  // bytes that came before the end
            int e = (st & NS_STATE_ERROR) ? ns_take_error(s->shm) : 0;
            if (e && e != ECONNABORTED) { errno = e; return -1; }
            return 0;
        }
        if (s->read_shut) return 0;
        if (!s->connecting && !(st & NS_STATE_CONNECTED)) { errno = ENOTCONN; return -1; }
        if (dontwait) { errno = EAGAIN; return -1; }
        if (!cleared) {
            ns_arm(s, POLLIN);  // the stack signals new bytes only to a reader that said it waits
            cleared = true;
            continue;
        }
        ns_wait_event(s, -1);
        cleared = false;
    }
}

/// MSG_WAITALL (a blocking receive waits for all `len` bytes, unless the
/// input ends, an error comes or a signal interrupts, as Linux's tcp_recvmsg).
static ssize_t stack_recv_waitall(ns_sock *s, void *buf, size_t len, int flags) {
    bool dontwait = s->nonblocking || (flags & MSG_DONTWAIT);
    if (!(flags & MSG_WAITALL) || (flags & MSG_PEEK) || dontwait) return stack_recv(s, buf, len, flags);
    size_t got = 0;
    while (got < len) {
        ssize_t n = stack_recv(s, (uint8_t *)buf + got, len - got, flags & ~MSG_WAITALL);
        if (n <= 0) return got > 0 ? (ssize_t)got : n;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/// Scatter into `iov`: only the first piece may wait; the rest take what is there.
static ssize_t stack_recvv(ns_sock *s, const struct iovec *iov, size_t count, int flags) {
    ssize_t total = 0;
    for (size_t i = 0; i < count; i++) {
        if (iov[i].iov_len == 0) continue;
        int f = total > 0 && !(flags & MSG_WAITALL) ? (flags | MSG_DONTWAIT) : flags;
        ssize_t n = stack_recv_waitall(s, iov[i].iov_base, iov[i].iov_len, f);
        if (n < 0) return total > 0 ? total : -1;
        total += n;
        if ((size_t)n < iov[i].iov_len) break;
    }
    return total;
}

static void raise_sigpipe(int flags) {
    if (!(flags & MSG_NOSIGNAL)) pthread_kill(pthread_self(), SIGPIPE);
}

/// Writes what fits of `buf` (all of it when blocking): > 0, or -1 with errno.
static ssize_t stack_send(ns_sock *s, const void *buf, size_t len, int flags) {
    bool dontwait = s->nonblocking || (flags & MSG_DONTWAIT);
    if (s->listening) { errno = ENOTCONN; return -1; }
    size_t done = 0;
    bool cleared = false;
    for (;;) {
        uint32_t st = ns_state(s->shm);
        if ((st & (NS_STATE_TX_CLOSED | NS_STATE_ERROR)) || s->write_shut) {
            if (done > 0) return (ssize_t)done;
            int e = (st & NS_STATE_ERROR) ? ns_take_error(s->shm) : 0;
            if (e == 0 || e == ECONNABORTED) e = EPIPE;
            if (e == EPIPE) raise_sigpipe(flags);
            errno = e;
            return -1;
        }
        if (!(st & NS_STATE_CONNECTED)) {
            if (!s->connecting) { errno = ENOTCONN; return -1; }
        } else {
            size_t want = len - done;
            uint32_t n = ns_ring_write(&s->shm->tx, s->region, (const uint8_t *)buf + done,
                                       want > UINT32_MAX ? UINT32_MAX : (uint32_t)want);
            if (n > 0) {
                if (ns_flag_take(&s->shm->stack_wants_tx)) ns_ring_doorbell(s);
                done += n;
                cleared = false;
                if (done == len || dontwait) return (ssize_t)done;
                continue;
            }
        }
        if (dontwait) {
            if (done > 0) return (ssize_t)done;
            errno = EAGAIN;
            return -1;
        }
        if (!cleared) {
            ns_arm(s, POLLOUT);
            cleared = true;
            continue;
        }
        ns_wait_event(s, -1);
        cleared = false;
    }
}

/// Gather from `iov`: blocking, all of it (SIGPIPE at most once, for the first piece).
static ssize_t stack_sendv(ns_sock *s, const struct iovec *iov, size_t count, int flags) {
    ssize_t total = 0;
    for (size_t i = 0; i < count; i++) {
        if (iov[i].iov_len == 0) continue;
        ssize_t n = stack_send(s, iov[i].iov_base, iov[i].iov_len, total > 0 ? (flags | MSG_NOSIGNAL) : flags);
        if (n < 0) return total > 0 ? total : -1;
        total += n;
        if ((size_t)n < iov[i].iov_len) break;
    }
    return total;
}

NS_EXPORT ssize_t recv(int fd, void *buf, size_t len, int flags) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(recv)(fd, buf, len, flags);
    return stack_recv_waitall(s, buf, len, flags);
}

NS_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags) {
    (void)buflen;
    return recv(fd, buf, len, flags);
}

NS_EXPORT ssize_t read(int fd, void *buf, size_t len) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(read)(fd, buf, len);
    return stack_recv(s, buf, len, 0);
}

NS_EXPORT ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen) {
    (void)buflen;
    return read(fd, buf, len);
}

NS_EXPORT ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *sa, socklen_t *salen) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(recvfrom)(fd, buf, len, flags, sa, salen);
    ssize_t n = stack_recv_waitall(s, buf, len, flags);
    if (n >= 0 && sa && salen && s->has_peer) ns_to_sockaddr(&s->peer, s->family, sa, salen);
    return n;
}

NS_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags, struct sockaddr *sa,
                       socklen_t *salen) {
    (void)buflen;
    return recvfrom(fd, buf, len, flags, sa, salen);
}

NS_EXPORT ssize_t send(int fd, const void *buf, size_t len, int flags) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(send)(fd, buf, len, flags);
    return stack_send(s, buf, len, flags);
}

NS_EXPORT ssize_t write(int fd, const void *buf, size_t len) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(write)(fd, buf, len);
    return stack_send(s, buf, len, 0);
}

NS_EXPORT ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *sa, socklen_t salen) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(sendto)(fd, buf, len, flags, sa, salen);
    return stack_send(s, buf, len, flags);  // a stream socket ignores the address, as Linux's TCP
}

NS_EXPORT ssize_t readv(int fd, const struct iovec *iov, int count) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(readv)(fd, iov, count);
    if (count < 0) { errno = EINVAL; return -1; }
    return stack_recvv(s, iov, (size_t)count, 0);
}

NS_EXPORT ssize_t writev(int fd, const struct iovec *iov, int count) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(writev)(fd, iov, count);
    if (count < 0) { errno = EINVAL; return -1; }
    return stack_sendv(s, iov, (size_t)count, 0);
}

/// As Linux's TCP: the data of `msg_iov`; no address (a stream socket's
/// `msg_namelen` comes back 0), no control messages, no flags.
NS_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(recvmsg)(fd, msg, flags);
    if (!msg) { errno = EFAULT; return -1; }
    ssize_t n = stack_recvv(s, msg->msg_iov, msg->msg_iovlen, flags);
    if (n >= 0) {
        msg->msg_namelen = 0;
        msg->msg_controllen = 0;
        msg->msg_flags = 0;
    }
    return n;
}

/// As Linux's TCP: `msg_iov` is sent, an address and control messages are ignored.
NS_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(sendmsg)(fd, msg, flags);
    if (!msg) { errno = EFAULT; return -1; }
    return stack_sendv(s, msg->msg_iov, msg->msg_iovlen, flags);
}
