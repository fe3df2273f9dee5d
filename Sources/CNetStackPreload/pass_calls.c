// Stack sockets passed between processes with SCM_RIGHTS over a UNIX
// socket: Node's cluster hands each accepted connection to a worker so,
// and Python's multiprocessing a socket to a pool's process. The kernel
// passes the descriptor, an eventfd (the socket as the application holds
// it); the library on each side makes it the same socket there.
//
// - Sending: before the message goes, for each stack socket among its
//   descriptors, the library asks the stack for a pending hold
//   (NS_OP_SPAWN_HOLD), so the sender may close its copy at once, and
//   leaves its state of the socket (options, addresses, timeouts: `ns_sock`)
//   in the region's header page (NS_PASSED_STATE_OFFSET). If the message
//   does not go, the holds are given back.
// - Receiving: for each eventfd among a message's descriptors, the library
//   asks the stack whether it is a socket's with a pending hold, by the
//   kernel's id of the eventfd (NS_OP_CLAIM_PASSED); if so, the hold is now
//   this process's, and the descriptor it received names the socket here,
//   with the sender's state and the region and doorbell the stack sent.
//   A hold never claimed (a receiver without the library) goes after 10 s.
//
// The library's own control channel passes descriptors too: its exchanges
// (`ns_in_control`) are left alone.
#include "preload_internal.h"
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NS_PASSED_MAGIC 0x4e535053u  // "NSPS"

typedef struct passed_state {
    uint32_t magic;
    uint32_t size;  // sizeof(ns_sock): the same library on both sides
    ns_sock sock;
} passed_state;

_Static_assert(NS_PASSED_STATE_OFFSET + sizeof(passed_state) <= NS_SHM_HEADER_SIZE,
               "the passed state does not fit the region's header page");

/// Calls `each` for every descriptor an SCM_RIGHTS message of `msg` carries.
static void for_each_passed(const struct msghdr *msg, void (*each)(int fd, void *context), void *context) {
    if (!msg || !msg->msg_control || msg->msg_controllen < sizeof(struct cmsghdr)) return;
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c; c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) continue;
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof fd, sizeof fd);
            each(fd, context);
        }
    }
}

/// A sendmsg's holds, under one token.
typedef struct pass_holds {
    int32_t token;
    bool failed;
} pass_holds;

static void hold_for_receiver(int fd, void *context) {
    pass_holds *h = context;
    ns_sock *s = ns_lookup(fd);
    if (!s || h->failed) return;
    ns_reply reply;
    int token = ns_simple_call(s, NS_OP_SPAWN_HOLD, h->token, 0, 0, NULL, &reply);
    if (token <= 0) {
        h->failed = true;
        return;
    }
    h->token = token;
    ns_mark_shared(s);
    passed_state *state = (passed_state *)(s->region + NS_PASSED_STATE_OFFSET);
    state->sock = *s;
    state->size = sizeof(ns_sock);
    state->magic = NS_PASSED_MAGIC;
}

/// Gives the holds back: claimed on this process's own session, which holds the sockets already.
static void release_holds(pass_holds *h) {
    if (h->token <= 0) return;
    ns_reply reply;
    ns_simple_call(NULL, NS_OP_FORK_CLAIM, h->token, 0, 0, NULL, &reply);
    h->token = 0;
}

ssize_t ns_pass_sendmsg(int fd, const struct msghdr *msg, int flags) {
    if (ns_in_control || ns_socket_count() == 0) return LIBC(sendmsg)(fd, msg, flags);
    pass_holds holds = {0};
    for_each_passed(msg, hold_for_receiver, &holds);
    ssize_t n = LIBC(sendmsg)(fd, msg, flags);
    if (n < 0) {
        int e = errno;
        release_holds(&holds);
        errno = e;
    }
    return n;
}

/// Makes `fd` name the socket whose pending hold its eventfd has, if any.
static void claim(int fd, void *context) {
    (void)context;
    if (ns_lookup(fd)) return;
    int64_t id = ns_eventfd_kernel_id(0, fd);
    if (id < 0) return;  // not an eventfd: no socket of ours
    ns_request req = {.op = NS_OP_CLAIM_PASSED, .value = id};
    ns_reply reply;
    int fds[3], nfds;
    if (ns_call(&req, &reply, fds, &nfds) != 0) return;
    if (reply.result < 0 || nfds != 2) {  // no socket's: an eventfd of the application's own
        for (int i = 0; i < nfds; i++) LIBC(close)(fds[i]);
        return;
    }
    // A socket this process holds already (passed to itself, or twice in
    // one message): the descriptor is one more name for it.
    int cursor = 0;
    for (ns_sock *s; (s = ns_next_socket(&cursor));) {
        if (s->id != reply.socket) continue;
        LIBC(close)(fds[0]);
        LIBC(close)(fds[1]);
        ns_alias(s, fd);
        return;
    }
    passed_state state;
    bool ok = pread(fds[0], &state, sizeof state, NS_PASSED_STATE_OFFSET) == (ssize_t)sizeof state
              && state.magic == NS_PASSED_MAGIC && state.size == sizeof(ns_sock) && state.sock.id == reply.socket;
    if (ok) {
        ns_sock sock = state.sock;
        sock.fd = fd;
        sock.aliases[0] = fd;
        sock.alias_count = 1;
        sock.waiting = 0;
        sock.closed = false;
        sock.next_closed = NULL;
        ok = ns_adopt_carried(&sock, fds[0], fds[1]) >= 0;  // maps the region; keeps the doorbell
    }
    LIBC(close)(fds[0]);
    if (!ok) {
        // Held now but not usable here: let it go, as a close would.
        LIBC(close)(fds[1]);
        ns_post_close(reply.socket);
    }
}

ssize_t ns_pass_recvmsg(int fd, struct msghdr *msg, int flags) {
    ssize_t n = LIBC(recvmsg)(fd, msg, flags);
    if (n >= 0 && !ns_in_control && msg && msg->msg_controllen > 0) {
        int e = errno;
        for_each_passed(msg, claim, NULL);
        errno = e;
    }
    return n;
}
