// The socket calls that change what a stack socket is: each is a message to
// the stack over the control channel (socket, bind, listen, connect, accept,
// shutdown, close), or is answered from what the library keeps (names,
// flags). Errors are Linux's errnos. Options are in option_calls.c.
#include "preload_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int fail(int e) {
    errno = e;
    return -1;
}

NS_EXPORT int socket(int domain, int type, int protocol) {
    int kind = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    bool stream = kind == SOCK_STREAM && (protocol == 0 || protocol == IPPROTO_TCP);
    bool datagram = kind == SOCK_DGRAM && (protocol == 0 || protocol == IPPROTO_UDP);
    if ((domain != AF_INET && domain != AF_INET6) || !(stream || datagram))
        return LIBC(socket)(domain, type, protocol);
    ns_request req = {.op = NS_OP_SOCKET, .arg0 = domain == AF_INET ? 4 : 6,
                      .arg1 = datagram ? NS_SOCKET_DATAGRAM : NS_SOCKET_STREAM};
    ns_reply reply;
    int fds[3], nfds;
    if (ns_call(&req, &reply, fds, &nfds) != 0) return -1;
    if (reply.result < 0) {
        for (int i = 0; i < nfds; i++) LIBC(close)(fds[i]);
        return fail(-reply.result);
    }
    return ns_adopt(&reply, fds, nfds, domain, type);
}

/// An IPv4 socket's address (inet_bind, tcp_v4_connect, ip4_datagram_connect, udp_sendmsg).
static int check_ipv4(const struct sockaddr *sa, socklen_t len, enum ns_address_use use, ns_addr *a) {
    if (len < sizeof(struct sockaddr_in)) return EINVAL;
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    // AF_UNSPEC, taken as AF_INET: by bind with the wildcard address, by sendto with any.
    bool unspec = in->sin_family == AF_UNSPEC
        && (use == NS_ADDRESS_DATAGRAM_SEND || (use == NS_ADDRESS_BIND && in->sin_addr.s_addr == htonl(INADDR_ANY)));
    if (unspec) {
        *a = (ns_addr){.family = 4, .port = ntohs(in->sin_port)};
        memcpy(a->bytes, &in->sin_addr, 4);
        return 0;
    }
    if (in->sin_family != AF_INET) return EAFNOSUPPORT;
    return ns_from_sockaddr(sa, len, a) == 0 ? 0 : EINVAL;
}

/// An IPv6 socket's address (inet6_bind, tcp_v6_connect, ip6_datagram_connect, udpv6_sendmsg).
static int check_ipv6(const ns_sock *s, const struct sockaddr *sa, socklen_t len, enum ns_address_use use, ns_addr *a) {
    int v6only = 0;
    ns_kept_get(s, IPPROTO_IPV6, IPV6_V6ONLY, &v6only);
    bool datagram = use == NS_ADDRESS_DATAGRAM_CONNECT || use == NS_ADDRESS_DATAGRAM_SEND;
    if (datagram && len >= sizeof(struct sockaddr_in) && sa->sa_family == AF_INET) {
        // Datagrams take an IPv4 address on an IPv6 socket, not on an IPv6-only one.
        if (v6only) return use == NS_ADDRESS_DATAGRAM_SEND ? ENETUNREACH : EAFNOSUPPORT;
    } else {
        if (len < 24) return EINVAL;  // SIN6_LEN_RFC2133: a sockaddr_in6 without its scope
        if (sa->sa_family != AF_INET6) return EAFNOSUPPORT;
    }
    if (ns_from_sockaddr(sa, len, a) != 0) return EINVAL;
    // A v4-mapped address on an IPv6-only socket: no route, nor a bind.
    if (v6only && a->family == 4) return use == NS_ADDRESS_BIND ? EINVAL : ENETUNREACH;
    return 0;
}

int ns_check_address(const ns_sock *s, const struct sockaddr *sa, socklen_t len, enum ns_address_use use, ns_addr *a) {
    if (len > sizeof(struct sockaddr_storage)) return EINVAL;  // move_addr_to_kernel
    if (!sa) return len > 0 ? EFAULT : EINVAL;
    return s->family == AF_INET ? check_ipv4(sa, len, use, a) : check_ipv6(s, sa, len, use, a);
}

/// Binds `s` to `a` (port 0: one the stack chooses), with its SO_REUSEADDR, SO_REUSEPORT and IPV6_V6ONLY.
static int stack_bind(ns_sock *s, const ns_addr *a) {
    ns_reply reply;
    int v6only = 0;
    ns_kept_get(s, IPPROTO_IPV6, IPV6_V6ONLY, &v6only);
    int flags = (s->options.reuse_address ? NS_BIND_REUSE_ADDRESS : 0) | (s->options.reuse_port ? NS_BIND_REUSE_PORT : 0)
        | (v6only ? NS_BIND_IPV6_ONLY : 0);
    if (ns_simple_call(s, NS_OP_BIND, flags, 0, 0, a, &reply) < 0) return -1;
    s->local = reply.local;
    s->has_local = true;
    return 0;
}

int ns_autobind(ns_sock *s) {
    ns_addr any = {.family = s->family == AF_INET ? 4 : 6};
    if (stack_bind(s, &any) < 0 && errno != EINVAL) return -1;  // EINVAL: bound meanwhile
    return 0;
}

NS_EXPORT int bind(int fd, const struct sockaddr *sa, socklen_t len) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(bind)(fd, sa, len);
    ns_addr a;
    int e = ns_check_address(s, sa, len, NS_ADDRESS_BIND, &a);
    if (e) return fail(e);
    if (!s->has_local) {  // a loopback address is the kernel's
        int kernel = ns_kernel_takes(s, sa, len, false);
        if (kernel != 0) return kernel < 0 ? -1 : LIBC(bind)(fd, sa, len);
    }
    return stack_bind(s, &a);
}

NS_EXPORT int listen(int fd, int backlog) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(listen)(fd, backlog);
    if (!s->has_local && !s->datagram && ns_autobind(s) < 0) return -1;  // inet_autobind: an ephemeral port
    ns_reply reply;
    if (ns_simple_call(s, NS_OP_LISTEN, backlog, 0, 0, NULL, &reply) < 0) return -1;  // read as Linux does by the stack
    s->listening = true;
    ns_epoll_changed(s);
    return 0;
}

/// A connection that came to the kernel's loopback listener the stack keeps
/// beside a wildcard one (its LoopbackListeners): the reply names no stack
/// socket and carries a kernel socket, which is the application's from now
/// on, with the flags asked and the listener's options, as an accepted
/// socket inherits them on Linux.
static int take_kernel_connection(const ns_sock *listener, const int *fds, int nfds, struct sockaddr *sa,
                                  socklen_t *len, int flags) {
    if (nfds != 1) {
        for (int i = 0; i < nfds; i++) LIBC(close)(fds[i]);
        return fail(EPROTO);
    }
    int k = fds[0];  // received close-on-exec, and non-blocking as the stack accepted it
    if (!(flags & SOCK_CLOEXEC)) LIBC(fcntl)(k, F_SETFD, 0);
    if (!(flags & SOCK_NONBLOCK)) LIBC(fcntl)(k, F_SETFL, LIBC(fcntl)(k, F_GETFL) & ~O_NONBLOCK);
    ns_apply_remembered_options(listener, k);
    if (sa && len) LIBC(getpeername)(k, sa, len);
    return k;
}

/// An accepted socket's options are its listener's, as Linux's sk_clone_lock
/// copies the listening socket (the stack's connection has them already:
/// `APIServer` gives it the listener's), but for what a child starts anew.
static void inherit(ns_sock *child, const ns_sock *listener) {
    child->options = listener->options;
    ns_kept_accepted(child);
}

NS_EXPORT int accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(accept4)(fd, sa, len, flags);
    if (flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK)) return fail(EINVAL);  // Linux's __sys_accept4, before all else
    if (s->datagram) return fail(EOPNOTSUPP);
    if (!s->listening) return fail(EINVAL);
    long long deadline = s->nonblocking ? -1 : ns_deadline(&s->options.receive_timeout);
    bool cleared = false;
    for (;;) {
        ns_request req = {.op = NS_OP_ACCEPT, .socket = s->id};
        ns_reply reply;
        int fds[3], nfds;
        if (ns_call(&req, &reply, fds, &nfds) != 0) return -1;
        if (reply.result >= 0 && reply.socket == 0) return take_kernel_connection(s, fds, nfds, sa, len, flags);
        if (reply.result >= 0) {
            int n = ns_adopt(&reply, fds, nfds, s->family, flags);
            if (n < 0) return -1;
            if (sa && len) ns_to_sockaddr(&reply.peer, s->family, sa, len);
            inherit(ns_lookup(n), s);
            return n;
        }
        for (int i = 0; i < nfds; i++) LIBC(close)(fds[i]);
        if (reply.result != -EAGAIN) return fail(-reply.result);
        if (!cleared) {  // clear, then ask once more: a connection that came meanwhile signalled again
            ns_clear_event(s);
            cleared = true;
            continue;
        }
        if (s->nonblocking) return fail(EAGAIN);
        while (ns_pending(s->shm) == 0) {
            if (ns_wait_event(s, deadline, NS_WAIT_RECHECK_MS) < 0) return -1;
            if (!s->listening) return fail(EINVAL);  // shut down by another thread
            ns_clear_event(s);  // the stack signals each connection it queues; look again after clearing
        }
        cleared = false;
    }
}

NS_EXPORT int accept(int fd, struct sockaddr *sa, socklen_t *len) { return accept4(fd, sa, len, 0); }

/// A connect that failed: its error (ECONNABORTED if SO_ERROR took it), and
/// the socket unconnected again, as Linux's sock_error path: the next
/// connect starts a new connection.
static int connect_failed(ns_sock *s) {
    int e = ns_take_error(s->shm);
    s->connecting = false;
    s->connect_told = false;
    s->has_peer = false;
    return fail(e ? e : ECONNABORTED);
}

static int stack_connect(ns_sock *s, int fd, const struct sockaddr *sa, socklen_t len);

NS_EXPORT int connect(int fd, const struct sockaddr *sa, socklen_t len) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(connect)(fd, sa, len);
    int r = stack_connect(s, fd, sa, len);
    // What it polls as may have changed (a peer, connecting); the socket
    // may be the kernel's now (loopback).
    int saved = errno;
    if ((s = ns_lookup(fd))) ns_epoll_changed(s);
    errno = saved;
    return r;
}

static int stack_connect(ns_sock *s, int fd, const struct sockaddr *sa, socklen_t len) {
    if (s->datagram) {
        // The peer datagrams go to and come from; at once, and again at will.
        ns_reply reply;
        if (sa && len >= sizeof(sa_family_t) && sa->sa_family == AF_UNSPEC) {
            // Linux's __udp_disconnect: no peer; an address or port bind() did not name goes.
            if (ns_simple_call(s, NS_OP_CONNECT, 0, 0, 0, NULL, &reply) < 0) return -1;
            s->has_peer = false;
            s->has_local = reply.local.family != 0;
            if (s->has_local) s->local = reply.local;
            return 0;
        }
        ns_addr a;
        int e = ns_check_address(s, sa, len, NS_ADDRESS_DATAGRAM_CONNECT, &a);
        if (e) return fail(e);
        int kernel = ns_kernel_takes(s, sa, len, true);  // loopback: the kernel's
        if (kernel != 0) return kernel < 0 ? -1 : LIBC(connect)(fd, sa, len);
        if (ns_simple_call(s, NS_OP_CONNECT, 0, 0, 0, &a, &reply) < 0) return -1;
        s->local = reply.local;
        s->has_local = true;
        s->peer = reply.peer;
        s->has_peer = true;
        return 0;
    }
    if (s->listening) return fail(EISCONN);
    if (s->connecting) {
        uint32_t st = ns_state(s->shm);
        if ((st & NS_STATE_CONNECTED) && !(st & NS_STATE_ERROR)) {
            // Linux: the first connect after a non-blocking one completed returns 0, later ones EISCONN.
            if (s->connect_told) return fail(EISCONN);
            s->connect_told = true;
            return 0;
        }
        if (st & NS_STATE_ERROR) return connect_failed(s);
        return fail(EALREADY);
    }
    ns_addr a;
    int e = ns_check_address(s, sa, len, NS_ADDRESS_STREAM_CONNECT, &a);
    if (e) return fail(e);
    int kernel = ns_kernel_takes(s, sa, len, true);  // loopback: the kernel's
    if (kernel != 0) return kernel < 0 ? -1 : LIBC(connect)(fd, sa, len);
    ns_reply reply;
    if (ns_simple_call(s, NS_OP_CONNECT, 0, 0, 0, &a, &reply) >= 0) return 0;
    if (errno != EINPROGRESS) return -1;
    s->connecting = true;
    s->local = reply.local;
    s->has_local = true;
    s->peer = reply.peer;
    s->has_peer = true;
    if (s->nonblocking) return fail(EINPROGRESS);
    long long deadline = ns_deadline(&s->options.send_timeout);
    bool cleared = false;
    for (;;) {
        uint32_t st = ns_state(s->shm);
        if (st & NS_STATE_CONNECTED) {
            s->connect_told = true;
            return 0;
        }
        if (st & NS_STATE_ERROR) return connect_failed(s);
        if (!cleared) {
            ns_clear_event(s);
            cleared = true;
            continue;
        }
        // Given up (SO_SNDTIMEO) or interrupted, the connection goes on, as Linux's.
        if (ns_wait_event(s, deadline, NS_WAIT_RECHECK_MS) < 0) return fail(errno == EAGAIN ? EINPROGRESS : errno);
        cleared = false;
    }
}

/// As Linux's inet_shutdown ends: every waiter wakes (sk_state_change),
/// and an edge-triggered epoll entry has news (`shutdowns`).
static void shut_here(ns_sock *s) {
    atomic_fetch_add_explicit(&s->shutdowns, 1, memory_order_relaxed);
    ns_signal_event(s);
}

NS_EXPORT int shutdown(int fd, int how) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(shutdown)(fd, how);
    if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) return fail(EINVAL);
    if (s->datagram) {
        // Linux's inet_shutdown on UDP: the directions are shut either way
        // (a send then says EPIPE, a blocking receive of a connected socket
        // returns 0) and sleepers wake, but only a connected socket says 0.
        if (how != SHUT_WR) s->read_shut = true;
        if (how != SHUT_RD) s->write_shut = true;
        shut_here(s);
        return s->has_peer ? 0 : fail(ENOTCONN);
    }
    if (s->listening) {
        // SHUT_RD or SHUT_RDWR stops it (the stack resets what waited; a
        // thread in accept wakes with EINVAL), SHUT_WR changes nothing.
        if (how == SHUT_WR) return 0;
        ns_reply reply;
        if (ns_simple_call(s, NS_OP_SHUTDOWN, how, 0, 0, NULL, &reply) < 0) return -1;
        s->listening = false;
        shut_here(s);
        return 0;
    }
    ns_tcp_fields f;
    ns_tcp_read(s->shm, &f);
    if (f.state == TCP_TIME_WAIT || f.state == TCP_CLOSE) return fail(ENOTCONN);  // ended: Linux's TCP_CLOSE
    if (ns_state(s->shm) & NS_STATE_CONNECTED) {
        // Connected, so the stack's answer is 0: no round trip (a server
        // that shuts each connection down before closing it pays one
        // control message less per connection). The FIN still follows
        // every byte written before.
        ns_request req = {.op = NS_OP_SHUTDOWN, .socket = s->id, .arg0 = how, .arg1 = NS_NO_REPLY};
        ns_post(&req);
    } else {
        ns_reply reply;
        if (ns_simple_call(s, NS_OP_SHUTDOWN, how, 0, 0, NULL, &reply) < 0) return -1;
    }
    if (how != SHUT_WR) s->read_shut = true;
    if (how != SHUT_RD) s->write_shut = true;
    shut_here(s);
    return 0;
}

/// Linux's tcp_close: the state published once our FIN is acknowledged (FIN-WAIT-2, TIME-WAIT, CLOSED).
static bool fin_acknowledged(ns_sock *s) {
    ns_tcp_fields f;
    ns_tcp_read(s->shm, &f);
    return f.state == 5 || f.state == 6 || f.state == 7 || (ns_state(s->shm) & NS_STATE_ERROR);
}

/// SO_LINGER with a time, on a blocking connected socket: as Linux, close
/// waits until the FIN (after the data) is acknowledged or the time passes.
/// The FIN goes first (shutdown), so the wait watches the published state;
/// a socket with unread input is reset at once instead, so it does not wait.
static void linger_before_close(ns_sock *s) {
    if (!s->options.linger.l_onoff || s->options.linger.l_linger <= 0 || s->nonblocking || s->datagram || s->listening) return;
    if (!(ns_state(s->shm) & NS_STATE_CONNECTED) || !ns_ring_is_empty(&s->shm->rx)) return;
    ns_reply reply;
    if (ns_simple_call(s, NS_OP_SHUTDOWN, SHUT_WR, 0, 0, NULL, &reply) < 0) return;
    long long deadline = ns_now_ms() + (long long)s->options.linger.l_linger * 1000;
    while (!fin_acknowledged(s) && ns_now_ms() < deadline) LIBC(poll)(NULL, 0, 10);  // no wake-up for it: look every 10 ms
}

/// Whether a call that changes the table must go straight to libc: in a
/// vfork child the table is its parent's (the child's descriptors are its
/// own copies), so its close or dup2 (of a socket onto its stdin, before
/// exec) must not touch it. Only asked where there are sockets to protect.
static bool parent_table(void) { return ns_socket_count() > 0 && ns_in_vfork_child(); }

NS_EXPORT int close(int fd) {
    if (parent_table()) return LIBC(close)(fd);
    ns_sock *s = ns_lookup(fd);
    if (!s) {
        ns_epoll_forget_set(fd);
        ns_epoll_forget_nesting(fd);
        return LIBC(close)(fd);
    }
    // The last descriptor of a socket no other process holds takes its
    // eventfd out of the kernel's epoll sets (a forked child shares its
    // parent's sets, and a registration there may be the other's).
    bool last = ns_unalias(s, fd);
    ns_epoll_forget(fd, last && !ns_is_shared(s));
    if (!last) return LIBC(close)(fd);  // another descriptor still names the socket
    linger_before_close(s);
    // The stack sends what is in `tx`, then a FIN (or a RST over unread input,
    // or at once with SO_LINGER's 0 seconds). A connection's close is
    // posted (a server closes one per request); one that frees a port waits.
    if (s->datagram || s->listening) ns_close_and_wait(s->id);
    else ns_post_close(s->id);
    ns_release(s);
    return LIBC(close)(fd);
}

/// close_range and closefrom close every descriptor of a range in one call
/// (a child about to exec, a daemon letting go of what it inherited): the
/// stack sockets and epoll sets among them are closed as `close` closes
/// them first, so the table never names a number libc may hand out again.
/// CLOSE_RANGE_CLOEXEC only marks them, which exec then acts on.
static void close_ours_in(unsigned int first, unsigned int last) {
    if (parent_table()) return;
    for (unsigned int fd = first; fd <= last && fd < NS_MAX_FDS; fd++) {
        if (ns_lookup((int)fd) || ns_is_epoll_set((int)fd)) close((int)fd);
    }
}

NS_EXPORT int close_range(unsigned int first, unsigned int last, int flags) {
    if (first <= last && !(flags & CLOSE_RANGE_CLOEXEC)) close_ours_in(first, last);
    return LIBC(close_range)(first, last, flags);
}

NS_EXPORT void closefrom(int lowfd) {
    if (lowfd >= 0) close_ours_in((unsigned int)lowfd, ~0U);
    LIBC(closefrom)(lowfd);
}

/// A new descriptor from libc for the same eventfd, entered as `s`'s.
static int alias_result(ns_sock *s, int fd) {
    if (fd < 0) return -1;
    if (ns_alias(s, fd) < 0) {
        int e = errno;
        LIBC(close)(fd);
        errno = e;
        return -1;
    }
    return fd;
}

NS_EXPORT int dup(int fd) {
    ns_sock *s = ns_lookup(fd);
    if (!s || parent_table()) return LIBC(dup)(fd);
    return alias_result(s, LIBC(dup)(fd));
}

/// dup2 and dup3: a stack socket at `to` is closed first, as the kernel
/// closes whatever `to` named.
static int dup_onto(int from, int to, int flags, bool three) {
    if (parent_table()) return three ? LIBC(dup3)(from, to, flags) : LIBC(dup2)(from, to);
    // What the kernel refuses leaves `to` open: look before closing it.
    if (ns_lookup(to)) {
        if (three && (flags & ~O_CLOEXEC)) return fail(EINVAL);
        if (LIBC(fcntl)(from, F_GETFD) < 0) return -1;  // EBADF
    }
    ns_sock *s = ns_lookup(from);
    if (s && from == to) {
        if (three) { errno = EINVAL; return -1; }
        return to;
    }
    if (ns_lookup(to)) close(to);
    int r = three ? LIBC(dup3)(from, to, flags) : LIBC(dup2)(from, to);
    if (s) r = alias_result(s, r);
    if (r >= 0 && from != to) ns_epoll_forget_set(to);  // the kernel closed what `to` named
    return r;
}

NS_EXPORT int dup2(int from, int to) { return dup_onto(from, to, 0, false); }
NS_EXPORT int dup3(int from, int to, int flags) { return dup_onto(from, to, flags, true); }

static int fcntl_stack(ns_sock *s, int fd, int cmd, void *arg) {
    switch (cmd) {
    case F_GETFL:
        return O_RDWR | (s->nonblocking ? O_NONBLOCK : 0) | (ns_app_async(s->shm) ? O_ASYNC : 0);
    case F_SETFL:
        // The status flags belong to the socket, shared by its descriptors (dup), as an open file's.
        // O_ASYNC: the stack signals the owner (F_SETOWN, kept on the socket's eventfd) on news.
        s->nonblocking = ((long)arg & O_NONBLOCK) != 0;
        ns_set_app_async(s->shm, ((long)arg & O_ASYNC) != 0);
        return 0;
    case F_DUPFD:
    case F_DUPFD_CLOEXEC:
        if (parent_table()) return LIBC(fcntl)(fd, cmd, arg);
        return alias_result(s, LIBC(fcntl)(fd, cmd, arg));
    default:
        return LIBC(fcntl)(fd, cmd, arg);  // F_GETFD, F_SETFD: this descriptor's own
    }
}

static int fcntl_any(int fd, int cmd, void *arg) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(fcntl)(fd, cmd, arg);
    return fcntl_stack(s, fd, cmd, arg);
}

NS_EXPORT int fcntl(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_any(fd, cmd, arg);
}

/// glibc's name for fcntl with 64-bit offsets: the same call for a socket.
NS_EXPORT int fcntl64(int fd, int cmd, ...) {
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    return fcntl_any(fd, cmd, arg);
}

NS_EXPORT int ioctl(int fd, unsigned long request, ...) {
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(ioctl)(fd, request, arg);
    switch (request) {
    case FIONREAD: case TIOCOUTQ: case SIOCOUTQNSD: case SIOCATMARK: case FIOSETOWN: case SIOCSPGRP:
    case FIOGETOWN: case SIOCGPGRP: case FIONBIO: case FIOASYNC:
        if (!arg) return fail(EFAULT);  // as the kernel's put_user and get_user
    }
    switch (request) {
    case FIONREAD:
        if (s->listening) return fail(EINVAL);
        if (s->datagram) {  // as Linux's UDP: the next datagram's size
            ns_datagram h;
            *(int *)arg = ns_ring_next_record(&s->shm->rx, s->region, &h) ? (int)h.length : 0;
            return 0;
        }
        *(int *)arg = (int)ns_stream_unread(s);
        return 0;
    case TIOCOUTQ:  // SIOCOUTQ: what waits in `tx`, unsent or unacknowledged (Linux: write_seq - snd_una)
        if (s->listening) return fail(EINVAL);
        *(int *)arg = (int)ns_ring_readable(&s->shm->tx);
        return 0;
    case SIOCOUTQNSD: {  // what waits in `tx` unsent (Linux: write_seq - snd_nxt); UDP has no such count
        if (s->datagram) return fail(ENOTTY);
        if (s->listening) return fail(EINVAL);
        ns_tcp_fields f;
        ns_tcp_read(s->shm, &f);
        *(int *)arg = (int)ns_unsent_bytes(s, &f);
        return 0;
    }
    case SIOCATMARK:  // whether the next byte read is the urgent byte (tcp_ioctl); UDP has no mark
        if (s->datagram) return fail(ENOTTY);
        *(int *)arg = ns_at_urgent_mark(s);
        return 0;
    case FIOSETOWN:
    case SIOCSPGRP:  // who gets SIGIO and SIGURG: the descriptor's owner, as fcntl's F_SETOWN (sock_ioctl)
        return LIBC(fcntl)(fd, F_SETOWN, *(int *)arg);
    case FIOGETOWN:
    case SIOCGPGRP: {
        int owner = LIBC(fcntl)(fd, F_GETOWN);
        *(int *)arg = owner;
        return 0;
    }
    case FIONBIO:
        s->nonblocking = *(int *)arg != 0;
        return 0;
    case FIOASYNC:  // O_ASYNC, as fcntl's F_SETFL sets it (ioctl_fioasync)
        ns_set_app_async(s->shm, *(int *)arg != 0);
        return 0;
    case FIOCLEX:
    case FIONCLEX:  // the descriptor's own close-on-exec flag (Python's set_inheritable)
        return LIBC(ioctl)(fd, request, arg);
    default: {
        int r = ns_timestamp_ioctl(s, request, arg);  // SIOCGSTAMP, SIOCGSTAMPNS
        if (r == 1) r = ns_interface_ioctl(s, request, arg);  // SIOCGIFADDR, SIOCGIFCONF and the rest
        return r == 1 ? fail(ENOTTY) : r;
    }
    }
}

NS_EXPORT int getsockname(int fd, struct sockaddr *sa, socklen_t *len) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(getsockname)(fd, sa, len);
    ns_addr none = {0};
    ns_to_sockaddr(s->has_local ? &s->local : &none, s->family, sa, len);
    return 0;
}

NS_EXPORT int getpeername(int fd, struct sockaddr *sa, socklen_t *len) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(getpeername)(fd, sa, len);
    if (!s->has_peer || (s->connecting && !(ns_state(s->shm) & NS_STATE_CONNECTED))) return fail(ENOTCONN);
    if (s->peer.port == 0) return fail(ENOTCONN);  // a datagram socket connected to port 0 (inet_getname)
    ns_to_sockaddr(&s->peer, s->family, sa, len);
    return 0;
}
