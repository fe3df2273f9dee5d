#define _GNU_SOURCE
#include "netstack_sys.h"
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

long ns_send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds) {
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    union {
        char space[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } control;
    if (nfds > 0) {
        if (nfds > 4) nfds = 4;
        memset(&control, 0, sizeof control);
        msg.msg_control = control.space;
        msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    }
    return sendmsg(sock, &msg, MSG_NOSIGNAL);
}

long ns_recv_with_fds(int sock, void *buf, size_t len, int *fds, int maxfds, int *nfds) {
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    union {
        char space[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.space,
                         .msg_controllen = sizeof control.space};
    *nfds = 0;
    long n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0) return n;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (int i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
            if (*nfds < maxfds) fds[(*nfds)++] = fd;
            else close(fd);
        }
    }
    return n;
}

int ns_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

bool ns_may_signal(uint32_t uid, int pid) {
    if (uid == 0) return true;
    char path[48] = "/proc/";
    strcpy(ns_put_decimal(path + 6, pid), "/status");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char text[4096];
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) return false;
    text[n] = 0;
    char *line = strstr(text, "\nUid:");  // real, effective, saved, file system
    unsigned long ids[3];
    if (!line) return false;
    char *at = line + 5;
    for (int i = 0; i < 3; i++) {
        ids[i] = strtoul(at, &at, 10);
    }
    return ids[0] == uid || ids[2] == uid;
}

/// Sends `sig` to the owner of the file `fd` names, if user `uid` may: a
/// thread owner gets it as its process does (the stack is not in its
/// thread group), a process group only from root.
static int signal_owner(int fd, int sig, uint32_t uid) {
    struct f_owner_ex owner;
    if (fcntl(fd, F_GETOWN_EX, &owner) < 0 || owner.pid <= 0) return 0;
    if (owner.type == F_OWNER_PGRP) return uid == 0 ? kill(-owner.pid, sig) : 0;
    return ns_may_signal(uid, owner.pid) ? kill(owner.pid, sig) : 0;
}

int ns_send_sigurg(int fd, uint32_t uid) { return signal_owner(fd, SIGURG, uid); }

int ns_send_sigio(int fd, uint32_t uid) {
    int sig = fcntl(fd, F_GETSIG);
    return signal_owner(fd, sig > 0 ? sig : SIGIO, uid);
}

int ns_memfd(const char *name) { return memfd_create(name, MFD_CLOEXEC); }

long ns_peer_uid(int sock) {
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return -1;
    return (long)cred.uid;
}

int ns_accept(int listener) { return accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC); }

/// A kernel socket of `type` bound at `where` and `port` (non-blocking,
/// close-on-exec, SO_REUSEADDR, and SO_REUSEPORT if asked); -1 with errno.
static int loopback_socket(ns_loopback where, int type, uint16_t port, int reuse_port) {
    int family = where == NS_LOOPBACK_V4 ? AF_INET : AF_INET6;
    int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1, v6only = where == NS_LOOPBACK_V6;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    int r;
    if (family == AF_INET) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        r = bind(fd, (struct sockaddr *)&a, sizeof a);
    } else {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
        struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
        if (v6only) {
            a.sin6_addr = in6addr_loopback;
        } else {
            a.sin6_addr.s6_addr[10] = a.sin6_addr.s6_addr[11] = 0xff;
            a.sin6_addr.s6_addr[12] = 127;
            a.sin6_addr.s6_addr[15] = 1;
        }
        r = bind(fd, (struct sockaddr *)&a, sizeof a);
    }
    if (r != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int ns_loopback_listener(ns_loopback where, uint16_t port, int reuse_port, int backlog) {
    int fd = loopback_socket(where, SOCK_STREAM, port, reuse_port);
    if (fd >= 0 && listen(fd, backlog) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int ns_loopback_datagram(ns_loopback where, uint16_t port, int reuse_port) {
    return loopback_socket(where, SOCK_DGRAM, port, reuse_port);
}

long ns_datagram_waiting(int fd) { return recv(fd, NULL, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT); }

int ns_from_sockaddr(const struct sockaddr *sa, socklen_t len, ns_addr *out) {
    memset(out, 0, sizeof *out);
    if (!sa) return -1;
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        out->family = 4;
        out->port = ntohs(in->sin_port);
        memcpy(out->bytes, &in->sin_addr, 4);
        return 0;
    }
    // An IPv6 address without its scope (RFC 2133's 24 bytes) is one too, as Linux takes it.
    if (sa->sa_family == AF_INET6 && len >= offsetof(struct sockaddr_in6, sin6_scope_id)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        out->port = ntohs(in6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            out->family = 4;
            memcpy(out->bytes, &in6->sin6_addr.s6_addr[12], 4);
        } else {
            out->family = 6;
            memcpy(out->bytes, &in6->sin6_addr, 16);
        }
        return 0;
    }
    return -1;
}

void ns_to_sockaddr(const ns_addr *a, int family, struct sockaddr *sa, socklen_t *len) {
    if (!sa || !len) return;
    union { struct sockaddr_in in; struct sockaddr_in6 in6; } u;
    memset(&u, 0, sizeof u);
    socklen_t n;
    if (family == AF_INET) {
        u.in.sin_family = AF_INET;
        u.in.sin_port = htons(a->port);
        if (a->family == 4) memcpy(&u.in.sin_addr, a->bytes, 4);
        n = sizeof u.in;
    } else {
        u.in6.sin6_family = AF_INET6;
        u.in6.sin6_port = htons(a->port);
        if (a->family == 6) {
            memcpy(&u.in6.sin6_addr, a->bytes, 16);
        } else if (a->family == 4) {
            u.in6.sin6_addr.s6_addr[10] = 0xff;
            u.in6.sin6_addr.s6_addr[11] = 0xff;
            memcpy(&u.in6.sin6_addr.s6_addr[12], a->bytes, 4);
        }
        n = sizeof u.in6;
    }
    memcpy(sa, &u, *len < n ? *len : n);
    *len = n;
}

long ns_datagram_receive(int fd, void *buf, size_t cap, ns_addr *from) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    long n = recvfrom(fd, buf, cap, MSG_DONTWAIT, (struct sockaddr *)&ss, &len);
    if (n >= 0 && ns_from_sockaddr((struct sockaddr *)&ss, len, from) != 0) memset(from, 0, sizeof *from);
    return n;
}

long ns_datagram_send(int fd, int family, const void *buf, size_t len, const ns_addr *to) {
    if (family == AF_INET && to->family != 4) { errno = EAFNOSUPPORT; return -1; }
    struct sockaddr_storage ss;
    socklen_t n = sizeof ss;
    ns_to_sockaddr(to, family, (struct sockaddr *)&ss, &n);
    return sendto(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&ss, n);
}

bool ns_readable_now(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

int ns_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int ns_timerfd_create(void) { return timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC); }

int ns_timerfd_arm(int fd, int64_t nanoseconds) {
    struct itimerspec when = {.it_value = {.tv_sec = nanoseconds / 1000000000, .tv_nsec = nanoseconds % 1000000000}};
    return timerfd_settime(fd, 0, &when, NULL);
}

int ns_epoll_ctl(int ep, int op, int fd, uint32_t events, uint64_t tag) {
    struct epoll_event e = {.events = events, .data.u64 = tag};
    return epoll_ctl(ep, op, fd, &e);
}

int ns_epoll_wait(int ep, uint64_t *tags, uint32_t *events, int max, int timeout_ms) {
    struct epoll_event e[64];
    if (max > 64) max = 64;
    int n = epoll_wait(ep, e, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        tags[i] = e[i].data.u64;
        events[i] = e[i].events;
    }
    return n;
}

char *ns_put_decimal(char *out, long long v) {
    char digits[24];
    int n = 0;
    do digits[n++] = (char)('0' + v % 10); while ((v /= 10) > 0);
    while (n > 0) *out++ = digits[--n];
    *out = 0;
    return out;
}

int64_t ns_eventfd_kernel_id(int pid, int fd) {
    char path[64] = "/proc/";
    char *p = path + strlen(path);
    if (pid) {
        p = ns_put_decimal(p, pid);
    } else {
        memcpy(p, "self", 5);
        p += 4;
    }
    memcpy(p, "/fdinfo/", 9);
    ns_put_decimal(p + 8, fd);
    // Raw reads and closes: in the preload library read(2) and close(2) are
    // its own, which in a vfork child would look the descriptor up in the
    // parent's table, where this number may name a socket.
    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0) return -1;
    char text[512];
    long n = syscall(SYS_read, f, text, sizeof text - 1);
    syscall(SYS_close, f);
    if (n <= 0) return -1;
    text[n] = 0;
    const char *field = strstr(text, "eventfd-id:");
    if (!field) return -1;
    field += strlen("eventfd-id:");
    while (*field == ' ' || *field == '\t') field++;
    if (*field < '0' || *field > '9') return -1;
    int64_t id = 0;
    while (*field >= '0' && *field <= '9') id = id * 10 + (*field++ - '0');
    return id;
}
