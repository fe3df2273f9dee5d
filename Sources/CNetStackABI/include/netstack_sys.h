#ifndef NETSTACK_SYS_H
#define NETSTACK_SYS_H
// System calls both sides of the API make whose C shapes Swift cannot use
// directly: the CMSG_* macros of descriptor passing, struct ucred (behind
// _GNU_SOURCE), and the packed struct epoll_event.
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "netstack_abi.h"
#include <sys/socket.h>

/// Sends `len` bytes with up to 4 descriptors attached (SCM_RIGHTS); MSG_NOSIGNAL.
/// Returns sendmsg's result (-1 and errno on failure).
long ns_send_with_fds(int sock, const void *buf, size_t len, const int *fds, int nfds);

/// Receives up to `len` bytes and up to `maxfds` descriptors (made close-on-exec).
/// `*nfds` is how many came. Returns recvmsg's result.
long ns_recv_with_fds(int sock, void *buf, size_t len, int *fds, int maxfds, int *nfds);

/// The uid of the process at the other end of a UNIX socket (SO_PEERCRED); -1 on failure.
long ns_peer_uid(int sock);

/// A non-blocking, close-on-exec eventfd.
int ns_eventfd(void);

/// Whether a process of user `uid` may signal process `pid`, by kill(2)'s
/// rule: root may; another user only a process whose real or saved
/// set-user-ID is its own (/proc/PID/status).
bool ns_may_signal(uint32_t uid, int pid);

/// Sends SIGURG to the owner of the file `fd` names (F_SETOWN, which the
/// application set on its copy of the same file), as Linux's
/// sk_send_sigurg does when urgent data comes, if user `uid` (the
/// application's) may signal it: the stack may run as root, and the
/// owner is any process the application names. A process group is
/// signalled only for root. Returns kill's result, or 0 when none is sent.
int ns_send_sigurg(int fd, uint32_t uid);

/// Sends the owner of the file `fd` names SIGIO, or the signal F_SETSIG
/// chose, as Linux's kill_fasync for a socket with O_ASYNC (though as
/// kill's, without the siginfo's POLL_* code and descriptor), on the terms
/// of `ns_send_sigurg`.
int ns_send_sigio(int fd, uint32_t uid);

/// `v` in decimal at `out`, NUL-terminated; returns where the NUL is. No
/// stdio: a vfork child may call it.
char *ns_put_decimal(char *out, long long v);

/// The kernel's id of the eventfd `fd` names in process `pid` (0: this
/// one), from "eventfd-id" in /proc/PID/fdinfo: the same in every process
/// holding it. -1 if `fd` is no eventfd or the kernel does not say (older
/// kernels have no such line). System calls only: a vfork child may call it.
int64_t ns_eventfd_kernel_id(int pid, int fd);

/// A close-on-exec memfd (memfd_create).
int ns_memfd(const char *name);

/// Accepts a connection, non-blocking and close-on-exec (accept4); -1 if none.
int ns_accept(int listener);

/// Where a listener on the stack's wildcard listens on the kernel's loopback too.
typedef enum ns_loopback {
    NS_LOOPBACK_V4 = 4,         // 127.0.0.1, an AF_INET socket
    NS_LOOPBACK_V6 = 6,         // ::1, AF_INET6 with IPV6_V6ONLY
    NS_LOOPBACK_V4_MAPPED = 46, // ::ffff:127.0.0.1, AF_INET6: its connections' addresses are v4-mapped
} ns_loopback;

/// A kernel TCP listener at `where` and `port` (non-blocking, close-on-exec,
/// SO_REUSEADDR, and SO_REUSEPORT if asked); -1 with errno if it cannot be.
int ns_loopback_listener(ns_loopback where, uint16_t port, int reuse_port, int backlog);

/// A kernel UDP socket at `where` and `port` (non-blocking, close-on-exec,
/// SO_REUSEADDR so the library's hand-over can bind the wildcard beside it,
/// and SO_REUSEPORT if asked); -1 with errno if it cannot be.
int ns_loopback_datagram(ns_loopback where, uint16_t port, int reuse_port);

/// The length of the datagram waiting at `fd` (MSG_PEEK | MSG_TRUNC), or -1
/// with errno (EAGAIN: none).
long ns_datagram_waiting(int fd);

/// Receives one datagram (non-blocking) into `buf`, its source into `from`
/// (a v4-mapped address as family 4).
long ns_datagram_receive(int fd, void *buf, size_t cap, ns_addr *from);

/// Sends `len` bytes to `to` (non-blocking) from `fd`, a socket of
/// `family` (AF_INET6: a family-4 address goes v4-mapped).
long ns_datagram_send(int fd, int family, const void *buf, size_t len, const ns_addr *to);

/// Converts between sockaddr and ns_addr (a v4-mapped IPv6 address becomes
/// IPv4); -1 for a family or length it does not know.
int ns_from_sockaddr(const struct sockaddr *sa, socklen_t len, ns_addr *out);
/// `a` as a sockaddr of `family` in `sa`, at most `*len` bytes of it; `*len` becomes its full length.
void ns_to_sockaddr(const ns_addr *a, int family, struct sockaddr *sa, socklen_t *len);

/// Whether `fd` is readable now (poll with no wait).
bool ns_readable_now(int fd);

/// A close-on-exec epoll set.
int ns_epoll_create(void);

/// A non-blocking, close-on-exec timerfd on CLOCK_MONOTONIC.
int ns_timerfd_create(void);

/// Arms `fd` to fire once, `nanoseconds` from now (at least 1; 0 disarms).
int ns_timerfd_arm(int fd, int64_t nanoseconds);

/// The epoll event bits the API thread uses.
enum { NS_EPOLL_IN = 0x001, NS_EPOLL_RDHUP = 0x2000, NS_EPOLL_ONESHOT = 1u << 30, NS_EPOLL_ET = 1u << 31 };

/// epoll_ctl ADD (op 1), DEL (2) or MOD (3) with a 64-bit tag.
int ns_epoll_ctl(int ep, int op, int fd, uint32_t events, uint64_t tag);

/// epoll_wait into parallel arrays of tags and events.
int ns_epoll_wait(int ep, uint64_t *tags, uint32_t *events, int max, int timeout_ms);

#endif
