// Urgent data on a stream socket (RFC 9293 3.8.5), as Linux's TCP gives it
// to a reader: the stack publishes where the peer's last urgent byte lies
// in `rx` (`urgent_mark`), and leaves the byte in the stream. Here a read
// stops at the mark, and one at it passes over the byte unless
// SO_OOBINLINE (tcp_recvmsg); recv(MSG_OOB) takes the byte (tcp_recv_urg);
// poll says POLLPRI while it waits, SIOCATMARK whether the next read starts
// at it. A send with MSG_OOB marks its last byte for the stack, which sets
// SND.UP there (`urgent_sent`).
#include "preload_internal.h"
#include <errno.h>
#include <string.h>

ns_urgent ns_urgent_state(ns_sock *s) {
    ns_urgent u = {0};
    if (s->datagram || s->listening) return u;
    uint64_t mark = ns_urgent_mark(s->shm);
    uint32_t count = ns_urgent_count(mark);
    if (count == 0 || count == atomic_load_explicit(&s->urgent_passed, memory_order_relaxed)) return u;
    ns_ring *rx = &s->shm->rx;
    uint32_t head = ns_ring_head(rx), tail = ns_ring_tail(rx);
    u.index = ns_urgent_index(mark);
    u.before = u.index - head;
    // A mark read past is none (tcp_recvmsg clears urg_data past urg_seq).
    if ((int32_t)u.before < 0) {
        atomic_store_explicit(&s->urgent_passed, count, memory_order_relaxed);
        return u;
    }
    u.count = count;
    u.marked = true;
    u.arrived = (int32_t)(tail - u.index) > 0;
    u.taken = atomic_load(&s->shm->urgent_taken) == count;
    if (u.before > 0) {
        uint64_t hole = ns_urgent_hole(s->shm);
        u.hole = ns_urgent_count(hole) != 0 && ns_urgent_index(hole) == head && tail != head;
    }
    return u;
}

ns_urgent_read ns_urgent_plan(ns_sock *s, uint32_t waiting) {
    ns_urgent_read r = {.take = waiting};
    ns_urgent u = ns_urgent_state(s);
    if (!u.marked) return r;
    r.pending = u.arrived && !u.taken;
    r.oobinline = ns_urgent_inline(s);
    uint32_t before = u.before;
    if (u.hole && !r.oobinline && waiting > 0) {
        r.hole = r.skip = 1;
        before--;
    }
    r.at_mark = before == 0;
    if (!r.at_mark) {
        r.take = waiting - r.skip < before ? waiting - r.skip : before;
    } else {
        if (!r.oobinline && waiting > r.skip) r.skip++;  // the urgent byte, if it came
        r.take = waiting - r.skip;
    }
    return r;
}

bool ns_urgent_inline(const ns_sock *s) {
    int on = 0;
    ns_kept_get(s, SOL_SOCKET, SO_OOBINLINE, &on);
    return on != 0;
}

bool ns_at_urgent_mark(ns_sock *s) {
    return ns_urgent_plan(s, ns_ring_readable(&s->shm->rx)).at_mark;
}

uint32_t ns_stream_unread(ns_sock *s) {
    uint32_t waiting = ns_ring_readable(&s->shm->rx);
    return waiting - ns_urgent_plan(s, waiting).hole;
}

ssize_t ns_stream_recv_urgent(ns_sock *s, const struct iovec *iov, size_t count, int flags, int *msg_flags) {
    if (s->listening) { errno = ENOTCONN; return -1; }
    pthread_mutex_lock(&s->rx_lock);
    ns_urgent u = ns_urgent_state(s);
    ssize_t r;
    if (ns_urgent_inline(s) || !u.marked || u.taken) {
        errno = EINVAL;  // none waits out of band, or it was taken
        r = -1;
    } else if (u.arrived) {
        uint8_t byte;
        ns_ring_copy_out(&s->shm->rx, s->region, u.before, &byte, 1);
        if (!(flags & MSG_PEEK)) atomic_store(&s->shm->urgent_taken, u.count);
        if (msg_flags) *msg_flags |= MSG_OOB;
        size_t len = 0;
        for (size_t i = 0; i < count; i++) len += iov[i].iov_len;
        if (len == 0) {
            if (msg_flags) *msg_flags |= MSG_TRUNC;
            r = 0;
        } else {
            // MSG_TRUNC: counted, not copied (tcp_recv_urg).
            for (size_t i = 0; i < count && !(flags & MSG_TRUNC); i++) {
                if (iov[i].iov_len == 0) continue;
                memcpy(iov[i].iov_base, &byte, 1);
                break;
            }
            r = 1;
        }
    } else if ((ns_state(s->shm) & NS_STATE_RX_EOF) || s->read_shut) {
        r = 0;
    } else {
        errno = EAGAIN;  // the pointer came ahead of its byte: never waited for
        r = -1;
    }
    pthread_mutex_unlock(&s->rx_lock);
    return r;
}

void ns_urgent_sent_up_to_tail(ns_sock *s) {
    uint32_t count = ns_urgent_count(ns_urgent_sent(s->shm)) + 1;
    if (count == 0) count = 1;  // 0 means none
    ns_set_urgent_sent(s->shm, ns_urgent_pack(count, ns_ring_tail(&s->shm->tx)));
}
