// A corked UDP datagram (udp(7): MSG_MORE, UDP_CORK): the pieces of
// several sends, to the destination of the first, go out as one datagram
// when a send comes without MSG_MORE and with UDP_CORK off, or UDP_CORK is
// turned off. As Linux's udp_sendmsg, a send while a datagram is corked
// does not look at its address nor its control messages' TTL and TOS (the
// first piece's go with the datagram, as ip_setup_cork's); one that fails
// (past 65507 bytes, 65527 over IPv6: EMSGSIZE) drops what was corked, as
// does closing the socket (udp_flush_pending_frames).
#include "preload_internal.h"
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/// Appends to the corked datagram; -1 with EMSGSIZE or ENOMEM. Under `cork_lock`.
static int append(ns_sock *s, const void *buf, size_t len) {
    size_t limit = ns_dgram_limit(s->cork_to.family);
    if (len > limit - s->cork_length || s->cork_length + len + sizeof(ns_datagram) > s->shm->tx.size) {
        errno = EMSGSIZE;
        return -1;
    }
    if (!s->cork_data && !(s->cork_data = malloc(limit))) {
        errno = ENOMEM;
        return -1;
    }
    if (len) memcpy(s->cork_data + s->cork_length, buf, len);
    s->cork_length += len;
    return 0;
}

/// No datagram corked any more (its buffer stays for the next).
static void drop(ns_sock *s) {
    s->cork_pending = false;
    s->cork_length = 0;
}

/// Sends the corked datagram: the cork is gone either way. Under
/// `cork_lock`, which a blocking send keeps while it waits for room, as
/// Linux keeps the socket's.
static ssize_t push(ns_sock *s, bool dontwait) {
    ssize_t r = ns_dgram_write(s, &s->cork_to, s->cork_data, s->cork_length, dontwait, &s->cork_fields);
    drop(s);
    return r;
}

bool ns_cork_take(ns_sock *s, const void *buf, size_t len, bool more, bool dontwait, ssize_t *result) {
    if (!s->cork_pending) return false;  // a racy look: checked again under the lock
    pthread_mutex_lock(&s->cork_lock);
    if (!s->cork_pending) {
        pthread_mutex_unlock(&s->cork_lock);
        return false;
    }
    ssize_t r = append(s, buf, len);
    if (r < 0) {
        drop(s);  // udp_flush_pending_frames: a failed append drops what was corked
    } else if (!more) {
        r = push(s, dontwait);
    }
    pthread_mutex_unlock(&s->cork_lock);
    *result = r < 0 ? -1 : (ssize_t)len;
    return true;
}

ssize_t ns_cork_start(ns_sock *s, const ns_addr *to, const void *buf, size_t len, const ns_datagram *header_fields) {
    pthread_mutex_lock(&s->cork_lock);
    s->cork_to = *to;
    s->cork_fields = header_fields ? *header_fields : (ns_datagram){0};
    s->cork_length = 0;
    int r = append(s, buf, len);
    s->cork_pending = r == 0;
    pthread_mutex_unlock(&s->cork_lock);
    return r < 0 ? -1 : (ssize_t)len;
}

int ns_cork_set(ns_sock *s, int on) {
    pthread_mutex_lock(&s->cork_lock);
    s->udp_cork = on != 0;
    ssize_t r = 0;
    if (!on && s->cork_pending) r = push(s, false);  // udp_push_pending_frames; the stack drains `tx`
    pthread_mutex_unlock(&s->cork_lock);
    return r < 0 ? -1 : 0;
}

void ns_cork_free(ns_sock *s) {
    free(s->cork_data);
    s->cork_data = NULL;
    drop(s);
}
