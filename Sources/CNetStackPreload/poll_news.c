// A thread asleep in poll (or select) hears of a count another thread took
// from a socket's eventfd through an eventfd of its own (its `news`), which
// its kernel poll holds beside the sockets'. Linux wakes every waiter of a
// file; here the threads that wait on one socket wait on one eventfd, and
// the first to take its count would leave the others asleep: a writer
// thread blocked in send took the count that announced input while the
// event loop slept in poll for it, and the loop slept on. Signalling the
// socket's eventfd again would wake the very call that took it.
//
// Each thread that polls stack sockets registers its eventfd while it
// does, and counts itself on each socket it polls (`polling`); a count
// taken from a socket another thread polls (`ns_poll_tell`) signals every
// other registered thread's, which then looks at its sockets again. A
// socket polled by one thread alone (a thread per connection, each in
// poll: Python's timeouts) tells no one.
#include "preload_internal.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/eventfd.h>

/// Threads polling at once that hear of others' counts; a thread past them
/// polls as before, hearing only its sockets' own signals.
#define NS_MAX_POLLERS 64

/// Held while a tell writes and while a thread's eventfd closes, so a tell
/// never writes to a number closed (and perhaps reused) meanwhile.
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int slots[NS_MAX_POLLERS];  // each polling thread's eventfd + 1, or 0
static pthread_key_t key;                  // closes a thread's eventfd when it ends
static pthread_once_t once = PTHREAD_ONCE_INIT;
static _Thread_local int news = -1;
static _Thread_local int slot = -1;

static void thread_ended(void *value) {
    pthread_mutex_lock(&lock);
    LIBC(close)((int)(intptr_t)value - 1);
    pthread_mutex_unlock(&lock);
}

static void start(void) { pthread_key_create(&key, thread_ended); }

int ns_poll_news_begin(void) {
    pthread_once(&once, start);
    if (news < 0) {
        news = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (news < 0) return -1;
        pthread_setspecific(key, (void *)(intptr_t)(news + 1));
    }
    for (int i = 0; i < NS_MAX_POLLERS && slot < 0; i++) {
        int free = 0;
        if (atomic_compare_exchange_strong(&slots[i], &free, news + 1)) slot = i;
    }
    return slot >= 0 ? news : -1;
}

void ns_poll_news_end(void) {
    if (slot < 0) return;
    atomic_store(&slots[slot], 0);
    slot = -1;
}

void ns_poll_news_take(void) {
    if (news >= 0) ns_eventfd_take(news);
}

void ns_poll_tell(ns_sock *s) {
    // A thread in poll takes counts only of sockets it polls.
    if (atomic_load(&s->polling) <= (slot >= 0 ? 1 : 0)) return;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < NS_MAX_POLLERS; i++) {
        int fd = atomic_load(&slots[i]) - 1;
        if (fd >= 0 && i != slot) ns_eventfd_signal(fd);
    }
    pthread_mutex_unlock(&lock);
}

void ns_poll_news_after_fork(void) {
    // The child has the forking thread alone, and the parent's eventfds,
    // which are the parent's threads': its own poll makes its own.
    pthread_mutex_init(&lock, NULL);
    for (int i = 0; i < NS_MAX_POLLERS; i++) {
        int fd = atomic_exchange(&slots[i], 0) - 1;
        if (fd >= 0 && fd != news) LIBC(close)(fd);
    }
    slot = -1;
    if (news < 0) return;
    LIBC(close)(news);
    news = -1;
    pthread_setspecific(key, NULL);
}
