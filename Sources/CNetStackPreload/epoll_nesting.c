// epoll sets inside other epoll sets, and epoll sets given to poll or select
// (event loops nest them: libuv, libevent, asyncio, boost.asio). The kernel
// sees an inner set readable when one of its descriptors is, but a stack
// socket's descriptor is an eventfd that only means "look again", cleared
// when the library arms it. So before a wait on anything that holds an inner
// set, the library settles the inner set (ns_epoll_settle): each stack socket
// in it that has events for it keeps its eventfd signalled, each other one is
// armed (the stack signals its next news) with its eventfd cleared. The
// outer wait then sees the inner set readable exactly while it has events
// (level-triggered, as Linux), and wakes on the stack's next news. The
// library knows a descriptor is an epoll set if it was made here
// (epoll_create, epoll_create1).
#include "preload_internal.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define NS_MAX_EPOLL_FD 65536
/// How deep sets may nest (the kernel's EP_MAX_NESTS is 4).
#define NS_MAX_NESTING 5

static _Atomic bool known[NS_MAX_EPOLL_FD];
static _Atomic int known_count;

typedef struct nest { int outer, inner; } nest;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static nest *nests;
static int nest_count, nest_capacity;

static int remember(int fd) {
    if (fd >= 0 && fd < NS_MAX_EPOLL_FD && !atomic_exchange(&known[fd], true)) atomic_fetch_add(&known_count, 1);
    return fd;
}

NS_EXPORT int epoll_create(int size) { return remember(LIBC(epoll_create)(size)); }
NS_EXPORT int epoll_create1(int flags) { return remember(LIBC(epoll_create1)(flags)); }

bool ns_is_epoll_set(int fd) {
    return atomic_load_explicit(&known_count, memory_order_relaxed) > 0 && fd >= 0 && fd < NS_MAX_EPOLL_FD &&
           atomic_load_explicit(&known[fd], memory_order_relaxed);
}

void ns_epoll_nesting_changed(int outer, int op, int inner) {
    if (!ns_is_epoll_set(inner)) return;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < nest_count; i++) {
        if (nests[i].outer == outer && nests[i].inner == inner) {
            if (op == EPOLL_CTL_DEL) nests[i] = nests[--nest_count];
            pthread_mutex_unlock(&lock);
            return;
        }
    }
    if (op == EPOLL_CTL_ADD) {
        if (nest_count == nest_capacity) {
            int capacity = nest_capacity ? nest_capacity * 2 : 8;
            nest *grown = realloc(nests, (size_t)capacity * sizeof *grown);
            if (!grown) goto done;
            nests = grown;
            nest_capacity = capacity;
        }
        nests[nest_count++] = (nest){outer, inner};
    }
done:
    pthread_mutex_unlock(&lock);
}

void ns_epoll_forget_nesting(int fd) {
    if (!ns_is_epoll_set(fd)) return;
    atomic_store(&known[fd], false);
    atomic_fetch_sub(&known_count, 1);
    pthread_mutex_lock(&lock);
    for (int i = 0; i < nest_count;) {
        if (nests[i].outer == fd || nests[i].inner == fd) nests[i] = nests[--nest_count];
        else i++;
    }
    pthread_mutex_unlock(&lock);
}

static void settle_inner(int outer, int depth);

static void settle_tree(int fd, int depth) {
    settle_inner(fd, depth + 1);  // the sets inside first: their readability is part of this one's
    ns_epoll_settle(fd);
}

static void settle_inner(int outer, int depth) {
    if (depth > NS_MAX_NESTING || nest_count == 0) return;
    int inner[64], n = 0;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < nest_count && n < 64; i++)
        if (nests[i].outer == outer) inner[n++] = nests[i].inner;
    pthread_mutex_unlock(&lock);
    for (int i = 0; i < n; i++) settle_tree(inner[i], depth);
}

void ns_epoll_settle_inner(int outer) { settle_inner(outer, 0); }

void ns_epoll_settle_tree(int fd) {
    if (ns_is_epoll_set(fd)) settle_tree(fd, 0);
}
