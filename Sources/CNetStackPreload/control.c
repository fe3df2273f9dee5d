// The control channel: one UNIX stream connection per process to the API
// socket ($NETSTACK_API), opened at the first call that needs it. A request
// and its reply are one exchange under a mutex, so threads take turns; no
// call waits in the stack (a blocking connect or accept waits on its
// eventfd instead), so a turn is short.
#include "preload_internal.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/un.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int channel = -1;
/// The process this image's memory (the table, the channel) belongs to:
/// set as the library loads and in a fork's child; a vfork child, which
/// shares the memory but not the session, differs.
static pid_t image_pid;

bool ns_in_vfork_child(void) { return getpid() != image_pid; }

/// The token the stack gave for the fork under way (0: none).
static int32_t fork_token;

/// Before fork, in the parent: a process holding stack sockets asks the
/// stack to keep them for the child too (NS_OP_FORK_PREPARE), so either
/// process's close leaves the other's working, as with the kernel's sockets.
static void before_fork(void) {
    fork_token = 0;
    if (channel < 0 || ns_socket_count() == 0) return;
    // Both processes hold these now: the stack gives their regions to neither again.
    int cursor = 0;
    for (ns_sock *s; (s = ns_next_socket(&cursor));) ns_mark_shared(s);
    ns_reply reply;
    int token = ns_simple_call(NULL, NS_OP_FORK_PREPARE, 0, 0, 0, NULL, &reply);
    if (token > 0) fork_token = token;
}

static void after_fork_in_parent(void) { fork_token = 0; }

/// A child after fork must not share its parent's channel: it closes its
/// copy (so the parent's exit is still seen as the parent's), opens its own
/// and claims the sockets it inherited (their rings and eventfds came with
/// the fork), so its calls on them are its own.
static void after_fork_in_child(void) {
    image_pid = getpid();
    if (channel >= 0) LIBC(close)(channel);
    channel = -1;
    pthread_mutex_init(&lock, NULL);
    int cursor = 0;
    for (ns_sock *s; (s = ns_next_socket(&cursor));) {
        ns_init_locks(s);
        atomic_store(&s->polling, 0);  // the parent's threads'
    }
    ns_unpark_regions(true);  // the parent's: the stack gives them to the parent only
    ns_poll_news_after_fork();
    if (fork_token <= 0) return;
    int token = fork_token;
    fork_token = 0;
    ns_reply reply;
    ns_simple_call(NULL, NS_OP_FORK_CLAIM, token, 0, 0, NULL, &reply);
}

static void register_fork_handler(void) { pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child); }

static void once_register_fork_handler(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_fork_handler);
}

void ns_control_init(void) {
    image_pid = getpid();
    once_register_fork_handler();
}

/// The path of the stack's API socket.
static const char *api_path(void) {
    const char *path = getenv(NS_API_ENV);
    return path && *path ? path : NS_API_DEFAULT_PATH;
}

int ns_api_connect(void) {
    int fd = LIBC(socket)(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strncpy(addr.sun_path, api_path(), sizeof addr.sun_path - 1);
    if (LIBC(connect)(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        int e = errno;
        LIBC(close)(fd);
        errno = e == ENOENT || e == ECONNREFUSED ? ENETDOWN : e;
        return -1;
    }
    return fd;
}

static int open_channel(void) {
    int fd = ns_api_connect();
    if (fd < 0) {
        int e = errno;
        fprintf(stderr, "netstack preload: cannot reach the stack at %s: %s\n", api_path(), strerror(e));
        errno = e;
        return -1;
    }
    once_register_fork_handler();
    // A new session: the stack gives a region again only within one (and a
    // restarted stack numbers its regions from 1 again).
    ns_unpark_regions(false);
    return fd;
}

static int send_all(int fd, const void *buf, size_t len) {
    const char *p = buf;
    while (len > 0) {
        long n = ns_send_with_fds(fd, p, len, NULL, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/// One request and its reply on `fd` (up to 3 descriptors in `fds`); -1 if the connection broke.
static int exchange_within(int fd, const ns_request *req, ns_reply *reply, int *fds, int *nfds) {
    *nfds = 0;
    if (send_all(fd, req, sizeof *req) != 0) return -1;
    size_t got = 0;
    while (got < sizeof *reply) {
        int more = 0;
        long n = ns_recv_with_fds(fd, (char *)reply + got, sizeof *reply - got, fds + *nfds, 3 - *nfds, &more);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        *nfds += more;
        got += (size_t)n;
    }
    return 0;
}

__thread int ns_in_control;

/// `exchange_within`, marked as the library's own (its descriptors are not an application's).
static int exchange(int fd, const ns_request *req, ns_reply *reply, int *fds, int *nfds) {
    ns_in_control++;
    int r = exchange_within(fd, req, reply, fds, nfds);
    ns_in_control--;
    return r;
}

int ns_exchange_on(int fd, const ns_request *req, ns_reply *reply) {
    int fds[3], nfds;
    int r = exchange(fd, req, reply, fds, &nfds);
    for (int i = 0; i < nfds; i++) LIBC(close)(fds[i]);
    return r;
}

/// `ns_call`, on the channel there is; a new one is opened only if `open`
/// (a request about this session's sockets has no use for a new session).
static int call(const ns_request *req, ns_reply *reply, int *fds, int *nfds, bool open) {
    pthread_mutex_lock(&lock);
    *nfds = 0;
    if (channel < 0 && (!open || (channel = open_channel()) < 0)) {
        int e = open ? errno : ENETDOWN;
        pthread_mutex_unlock(&lock);
        errno = e;
        return -1;
    }
    if (exchange(channel, req, reply, fds, nfds) != 0) goto broken;
    pthread_mutex_unlock(&lock);
    return 0;
broken:
    LIBC(close)(channel);
    channel = -1;
    pthread_mutex_unlock(&lock);
    errno = ENETDOWN;
    return -1;
}

int ns_call(const ns_request *req, ns_reply *reply, int *fds, int *nfds) { return call(req, reply, fds, nfds, true); }

void ns_post(const ns_request *req) {
    pthread_mutex_lock(&lock);
    if (channel >= 0) send_all(channel, req, sizeof *req);
    pthread_mutex_unlock(&lock);
}

void ns_post_close(uint32_t socket) {
    ns_request req = {.op = NS_OP_CLOSE, .socket = socket};
    ns_post(&req);
}

void ns_close_and_wait(uint32_t socket) {
    ns_request req = {.op = NS_OP_CLOSE, .socket = socket, .arg1 = NS_CLOSE_REPLY};
    ns_reply reply;
    int fds[3], nfds, saved = errno;
    // Without a channel (or once it broke) the stack has nothing left to wait for.
    if (call(&req, &reply, fds, &nfds, false) == 0)
        for (int i = 0; i < nfds; i++) LIBC(close)(fds[i]);
    errno = saved;
}

int ns_simple_call(ns_sock *s, uint32_t op, int32_t arg0, int32_t arg1, int64_t value, const ns_addr *addr,
                   ns_reply *reply) {
    ns_request req = {.op = op, .socket = s ? s->id : 0, .arg0 = arg0, .arg1 = arg1, .value = value};
    if (addr) req.addr = *addr;
    int fds[3], nfds;
    if (ns_call(&req, reply, fds, &nfds) != 0) return -1;
    for (int i = 0; i < nfds; i++) LIBC(close)(fds[i]);
    if (reply->result < 0) {
        errno = -reply->result;
        return -1;
    }
    return reply->result;
}

int ns_channel_hold(void) {
    if (channel < 0 || ns_in_vfork_child()) return -1;
    pthread_mutex_lock(&lock);
    if (channel < 0 || LIBC(fcntl)(channel, F_GETFD) < 0) {
        pthread_mutex_unlock(&lock);
        return -1;
    }
    return channel;
}

void ns_channel_unhold(void) { pthread_mutex_unlock(&lock); }

void ns_channel_adopt(int fd) {
    LIBC(fcntl)(fd, F_SETFD, FD_CLOEXEC);
    channel = fd;
    once_register_fork_handler();
}
