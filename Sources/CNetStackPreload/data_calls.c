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
#include <stdlib.h>
#include <string.h>

#ifndef MSG_PROBE
#define MSG_PROBE 0x10  // linux/socket.h's: the checks of a send, nothing sent (glibc does not name it)
#endif

/// One turn of a blocking call that found nothing to do: the first time it
/// arms the socket (its flag up, its eventfd cleared) and the caller looks
/// again, so news that came meanwhile is not lost; the next time it waits
/// for the eventfd. -1 with errno when the call gives up: EAGAIN at
/// `deadline` (the socket's SO_RCVTIMEO or SO_SNDTIMEO), EINTR for a
/// signal, EBADF when another thread closed the socket. It spins first
/// unless `spin` is false: a peek past every waiting byte (SO_PEEK_OFF)
/// waits for more, and a spin would end at once, the socket being readable.
static int block_step_for(ns_sock *s, short events, bool *armed, long long deadline, bool spin) {
    if (atomic_load(&s->closed)) { errno = EBADF; return -1; }  // by another thread, while this one slept
    if (!*armed) {
        if (events & POLLIN) ns_yield_before_receive_wait();
        if (spin && ns_spin_until_ready(s, events)) return 0;
        ns_arm(s, events);
        *armed = true;
        return 0;
    }
    *armed = false;
    return ns_wait_event(s, deadline, NS_WAIT_RECHECK_MS);
}

static int block_step(ns_sock *s, short events, bool *armed, long long deadline) {
    return block_step_for(s, events, armed, deadline, true);
}

ssize_t ns_stream_recv(ns_sock *s, int flags, size_t need, ns_drain drain, void *sink) {
    // No error queue (IP_RECVERR's) ever waits here: Linux says EAGAIN for an empty one.
    if (flags & MSG_ERRQUEUE) { errno = EAGAIN; return -1; }
    bool dontwait = s->nonblocking || (flags & MSG_DONTWAIT);
    bool peek = (flags & MSG_PEEK) != 0;
    long long deadline = dontwait ? -1 : ns_deadline(&s->options.receive_timeout);
    bool cleared = false, settled = false;
    // A peek waits for no more than half the receive buffer (SO_RCVBUF's
    // value as set), which the stack fills at least that far.
    size_t most = (size_t)s->options.receive_buffer / 2;
    if (need > most) need = most > 0 ? most : 1;
    for (;;) {
        pthread_mutex_lock(&s->rx_lock);
        // Urgent data (tcp_recvmsg): a read stops at the mark; at it, the
        // urgent byte is passed over unless SO_OOBINLINE. Only the bytes
        // counted before the mark was looked at are read.
        uint32_t readable = ns_ring_readable(&s->shm->rx);
        ns_urgent_read plan = ns_urgent_plan(s, readable);
        uint32_t skip = peek ? plan.skip : 0, hole = peek ? 0 : plan.skip, take = plan.take;
        // SO_PEEK_OFF: a peek starts that far in (tcp_recvmsg's peek_seq), and
        // finding nothing past it waits for more, as for nothing at all.
        int offset = peek ? ns_peek_offset(s) : 0;
        bool past = offset > 0 && (uint32_t)offset >= take;
        if (offset > 0) {
            skip += past ? 0 : (uint32_t)offset;
            take = past ? 0 : take - (uint32_t)offset;
        }
        // A peek waits for its target too (tcp_recvmsg's peek_seq moves on
        // while it waits): until `need` bytes are there to peek, the end
        // comes, or the wait gives up; then it gives what is there. It stops
        // at an urgent mark, as a read does.
        bool marked = plan.skip <= readable && plan.take < readable - plan.skip;
        if (peek && need > 1 && !settled && !past && !marked && take < need) {
            pthread_mutex_unlock(&s->rx_lock);
            uint32_t st = ns_state(s->shm);
            if ((st & (NS_STATE_RX_EOF | NS_STATE_ERROR)) || s->read_shut || dontwait) {
                settled = true;
            } else if (block_step_for(s, POLLIN, &cleared, deadline, false) < 0) {
                if (take == 0 || errno == EBADF) return -1;
                settled = true;
            }
            continue;
        }
        if (hole) ns_ring_consume(&s->shm->rx, hole);
        ssize_t n = past ? 0 : drain(sink, &s->shm->rx, s->region, skip, take);
        if (n > 0) {
            if (peek) ns_peek_offset_peeked(s, (size_t)n);
            else ns_peek_offset_taken(s, (size_t)n);
        }
        pthread_mutex_unlock(&s->rx_lock);
        if (n < 0) return -1;
        if (n > 0 || hole) {
            if (!peek) {
                atomic_fetch_add_explicit(&s->bytes_taken, (uint64_t)n + hole, memory_order_relaxed);
                if (ns_flag_take(&s->shm->stack_wants_rx_room)) ns_ring_doorbell(s);
            }
            if (n > 0) return n;
            continue;  // only urgent bytes were there
        }
        uint32_t st = ns_state(s->shm);
        if (st & NS_STATE_RX_EOF) {
            // Bytes that came before the end, unless a peek is past them all.
            if (!ns_ring_is_empty(&s->shm->rx) && !past) continue;
            int e = (st & NS_STATE_ERROR) ? ns_take_error(s->shm) : 0;
            if (e && e != ECONNABORTED) { errno = e; return -1; }
            return 0;
        }
        if (s->read_shut) return 0;
        if (!s->connecting && !(st & NS_STATE_CONNECTED)) { errno = ENOTCONN; return -1; }
        if (dontwait) { errno = EAGAIN; return -1; }
        // The stack signals new bytes only to a reader that said it waits.
        if (block_step_for(s, POLLIN, &cleared, deadline, !past) < 0) return -1;
    }
}

/// A read's destination: a buffer.
struct buffer_sink {
    void *buf;
    uint32_t len;
};

/// A read takes from `rx`'s head (a read never skips: only a peek does).
static ssize_t take_into_buffer(void *sink, ns_ring *rx, uint8_t *region, uint32_t skip, uint32_t max) {
    (void)skip;
    struct buffer_sink *b = sink;
    return ns_ring_read(rx, region, b->buf, b->len < max ? b->len : max, 0);
}

/// Reads up to `len` bytes into `buf`: > 0, 0 at end of input, or -1 with errno.
static ssize_t stack_recv(ns_sock *s, void *buf, size_t len, int flags) {
    if (s->listening) { errno = ENOTCONN; return -1; }
    if (len == 0) return 0;
    struct buffer_sink b = {buf, len > UINT32_MAX ? UINT32_MAX : (uint32_t)len};
    return ns_stream_recv(s, flags, 1, take_into_buffer, &b);
}

/// What a blocking receive of `len` waits for (Linux's tcp_recvmsg with
/// sock_rcvlowat): all `len` bytes with MSG_WAITALL, else SO_RCVLOWAT's
/// (at most `len`); one byte when it may not wait.
static size_t receive_target(ns_sock *s, size_t len, int flags) {
    if (s->nonblocking || (flags & MSG_DONTWAIT)) return 1;
    size_t lowat = ns_receive_lowat(s);
    return (flags & MSG_WAITALL) ? len : lowat < len ? lowat : len;
}

/// A peek's destination: the pieces of `iov`.
struct iov_sink {
    const struct iovec *iov;
    size_t count;
};

/// A peek copies from past `skip` (an urgent byte, SO_PEEK_OFF's offset),
/// filling the pieces in order, and leaves the bytes in `rx`.
static ssize_t peek_to_iov(void *sink, ns_ring *rx, uint8_t *region, uint32_t skip, uint32_t max) {
    struct iov_sink *v = sink;
    uint32_t waiting = ns_ring_readable(rx);
    if (waiting <= skip) return 0;
    uint32_t left = waiting - skip < max ? waiting - skip : max, done = 0;
    for (size_t i = 0; i < v->count && left > 0; i++) {
        uint32_t k = v->iov[i].iov_len < left ? (uint32_t)v->iov[i].iov_len : left;
        if (k) ns_ring_copy_out(rx, region, skip + done, v->iov[i].iov_base, k);
        done += k;
        left -= k;
    }
    return done;
}

/// MSG_PEEK into `iov`: after waiting for its target, one look fills the
/// pieces, each after the one before (as tcp_recvmsg's peek_seq moves on).
static ssize_t stack_peek(ns_sock *s, const struct iovec *iov, size_t count, int flags) {
    if (s->listening) { errno = ENOTCONN; return -1; }
    size_t space = 0;
    for (size_t i = 0; i < count; i++) space += iov[i].iov_len;
    if (space == 0) return 0;
    struct iov_sink v = {iov, count};
    return ns_stream_recv(s, flags, receive_target(s, space, flags), peek_to_iov, &v);
}

// MARK: Datagram sockets

size_t ns_dgram_limit(int family) { return family == 4 ? 65507u : 65527u; }

ssize_t ns_dgram_send(ns_sock *s, const void *buf, size_t len, int flags, const struct sockaddr *sa, socklen_t salen) {
    return ns_dgram_send_with(s, buf, len, flags, sa, salen, NULL);
}

ssize_t ns_dgram_send_with(ns_sock *s, const void *buf, size_t len, int flags, const struct sockaddr *sa,
                           socklen_t salen, const ns_datagram *fields) {
    // Bound first, whatever becomes of the send (Linux's inet_send_prepare
    // binds before udp_sendmsg looks at the address).
    if (!s->has_local && ns_autobind(s) < 0) return -1;
    if (flags & MSG_OOB) { errno = EOPNOTSUPP; return -1; }  // udp_sendmsg: UDP has no urgent data
    if (s->write_shut) { errno = EPIPE; return -1; }  // shutdown(SHUT_WR): ip_append_data's EPIPE
    bool dontwait = s->nonblocking || (flags & MSG_DONTWAIT);
    bool more = (flags & MSG_MORE) || s->udp_cork;
    ssize_t corked;
    if (ns_cork_take(s, buf, len, more, dontwait, &corked)) return corked;
    ns_addr to;
    if (sa) {
        int e = ns_check_address(s, sa, salen, NS_ADDRESS_DATAGRAM_SEND, &to);
        if (e) { errno = e; return -1; }
        if (to.port == 0) { errno = EINVAL; return -1; }  // udp_sendmsg: no destination port
    } else if (s->has_peer) {
        to = s->peer;
    } else {
        errno = EDESTADDRREQ;
        return -1;
    }
    if (len > ns_dgram_limit(to.family) || len + sizeof(ns_datagram) > s->shm->tx.size) {
        errno = EMSGSIZE;
        return -1;
    }
    static const uint8_t limited_broadcast[4] = {255, 255, 255, 255};
    const uint8_t *directed = s->shm->interface.broadcast;
    if (to.family == 4 && (memcmp(to.bytes, limited_broadcast, 4) == 0
                           || (!ns_ipv4_none(directed) && memcmp(to.bytes, directed, 4) == 0))) {
        int broadcast = 0;
        ns_kept_get(s, SOL_SOCKET, SO_BROADCAST, &broadcast);
        // A broadcast needs SO_BROADCAST (ip_route_output_flow's RTCF_BROADCAST check).
        if (!broadcast) { errno = EACCES; return -1; }
    }
    if (to.family == 4 && !ns_routes_ipv4(&s->shm->interface, to.bytes)) { errno = ENETUNREACH; return -1; }
    if (flags & MSG_PROBE) return (ssize_t)len;  // ip_append_data: the checks, and nothing sent
    if (more) return ns_cork_start(s, &to, buf, len, fields);
    return ns_dgram_write(s, &to, buf, len, dontwait, fields);
}

ssize_t ns_dgram_write(ns_sock *s, const ns_addr *to, const void *buf, size_t len, bool dontwait,
                       const ns_datagram *fields) {
    ns_datagram h = {.length = (uint32_t)len, .family = to->family, .port = to->port};
    memcpy(h.bytes, to->bytes, sizeof h.bytes);
    if (fields) {
        h.send_flags = fields->send_flags;
        h.hop_limit = fields->hop_limit;
        h.traffic_class = fields->traffic_class;
    }
    long long deadline = dontwait ? -1 : ns_deadline(&s->options.send_timeout);
    bool cleared = false;
    for (;;) {
        // A connected socket's ICMP error is its next call's, sending included (Linux's sock_error).
        int e = ns_take_error(s->shm);
        if (e) { errno = e; return -1; }
        pthread_mutex_lock(&s->tx_lock);
        int written = ns_ring_write_record(&s->shm->tx, s->region, &h, buf);
        pthread_mutex_unlock(&s->tx_lock);
        if (written) {
            if (ns_flag_take(&s->shm->stack_wants_tx)) ns_ring_doorbell(s);
            return (ssize_t)len;
        }
        if (dontwait) { errno = EAGAIN; return -1; }
        if (block_step(s, POLLOUT, &cleared, deadline) < 0) return -1;
    }
}

/// A peek with SO_PEEK_OFF at `offset` (the rx lock held), as Linux's
/// __skb_try_recv_from_queue: it passes over the datagrams that `offset`
/// covers whole, and copies the next one's payload from where the rest of
/// the offset falls in it. False if no datagram lies past the offset.
static bool peek_at_offset(ns_sock *s, uint32_t offset, ns_datagram *h, void *buf, uint32_t limit, uint32_t *copied) {
    ns_ring *rx = &s->shm->rx;
    uint32_t waiting = ns_ring_readable(rx), at = 0;
    for (;;) {
        if (waiting - at < sizeof *h) return false;
        ns_ring_copy_out(rx, s->region, at, h, sizeof *h);
        if (h->length > waiting - at - (uint32_t)sizeof *h) return false;  // never published so: a broken ring
        // A datagram of no bytes is passed over only past it (Linux's peeked flag aside).
        if (offset >= h->length && offset > 0) {
            offset -= h->length;
            at += (uint32_t)sizeof *h + h->length;
            continue;
        }
        uint32_t n = h->length - offset < limit ? h->length - offset : limit;
        if (n) ns_ring_copy_out(rx, s->region, at + (uint32_t)sizeof *h + offset, buf, n);
        *copied = n;
        return true;
    }
}

ssize_t ns_dgram_recv(ns_sock *s, void *buf, size_t len, int flags, struct sockaddr *sa, socklen_t *salen,
                      int *msg_flags, ns_datagram *record) {
    if (flags & MSG_ERRQUEUE) { errno = EAGAIN; return -1; }  // an empty error queue, as Linux's ip_recv_error
    bool dontwait = s->nonblocking || (flags & MSG_DONTWAIT);
    bool peek = (flags & MSG_PEEK) != 0;
    long long deadline = dontwait ? -1 : ns_deadline(&s->options.receive_timeout);
    bool cleared = false;
    for (;;) {
        ns_datagram h;
        uint32_t n = 0, limit = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
        pthread_mutex_lock(&s->rx_lock);
        int offset = peek ? ns_peek_offset(s) : -1;
        bool got, past = false;
        if (offset >= 0) {
            got = peek_at_offset(s, (uint32_t)offset, &h, buf, limit, &n);
            past = !got && !ns_ring_is_empty(&s->shm->rx);
        } else {
            got = ns_ring_next_record(&s->shm->rx, s->region, &h);
            if (got) {
                n = ns_ring_record_payload(&s->shm->rx, s->region, &h, buf, limit);
                if (!peek) ns_ring_take_record(&s->shm->rx, &h);
            }
        }
        // What udp_recvmsg gives skb_consume_udp, which moves the offset.
        uint32_t counted = !got ? 0 : (flags & MSG_TRUNC) ? h.length : n;
        if (got && peek) ns_peek_offset_peeked(s, counted);
        if (got && !peek) ns_peek_offset_taken(s, counted);
        pthread_mutex_unlock(&s->rx_lock);
        if (got) {
            atomic_store(&s->last_arrival_ns, h.arrival_ns);  // SIOCGSTAMP's
            if (sa && salen) {
                ns_addr from = {.family = h.family, .port = h.port};
                memcpy(from.bytes, h.bytes, sizeof from.bytes);
                ns_to_sockaddr(&from, s->family, sa, salen);
            }
            // Cut short of the datagram (from where a peek began in it, udp_recvmsg's ulen - off).
            if (msg_flags) *msg_flags = n < h.length && n == limit ? MSG_TRUNC : 0;
            if (record) *record = h;
            if (!peek && ns_flag_take(&s->shm->stack_wants_rx_room)) ns_ring_doorbell(s);
            // MSG_TRUNC asks for the datagram's real length (Linux's UDP).
            return (ssize_t)counted;
        }
        int e = ns_take_error(s->shm);
        if (e) { errno = e; return -1; }
        if (dontwait) { errno = EAGAIN; return -1; }
        if (s->read_shut && s->has_peer) return 0;  // shutdown(SHUT_RD) of a connected socket: nothing more
        if (block_step_for(s, POLLIN, &cleared, deadline, !past) < 0) return -1;
    }
}

/// Gathers `iov` into one buffer for a datagram (malloc'd beyond 4 KiB); NULL with ENOMEM.
static void *gather(const struct iovec *iov, size_t count, size_t *total, uint8_t *small, size_t smallSize) {
    size_t n = 0;
    for (size_t i = 0; i < count; i++) n += iov[i].iov_len;
    uint8_t *out = n <= smallSize ? small : malloc(n ? n : 1);
    if (!out) { errno = ENOMEM; return NULL; }
    size_t at = 0;
    for (size_t i = 0; i < count; i++) {
        if (iov[i].iov_len) memcpy(out + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
    }
    *total = n;
    return out;
}

static ssize_t dgram_sendv(ns_sock *s, const struct iovec *iov, size_t count, int flags, const struct sockaddr *sa,
                           socklen_t salen, const ns_datagram *fields) {
    uint8_t small[4096];
    size_t n;
    uint8_t *buf = gather(iov, count, &n, small, sizeof small);
    if (!buf) return -1;
    ssize_t r = ns_dgram_send_with(s, buf, n, flags, sa, salen, fields);
    if (buf != small) { int e = errno; free(buf); errno = e; }
    return r;
}

/// One datagram scattered into `iov`: received whole into a buffer first.
static ssize_t dgram_recvv(ns_sock *s, const struct iovec *iov, size_t count, int flags, struct sockaddr *sa,
                           socklen_t *salen, int *msg_flags, ns_datagram *record) {
    size_t space = 0;
    for (size_t i = 0; i < count; i++) space += iov[i].iov_len;
    uint8_t small[4096];
    uint8_t *buf = space <= sizeof small ? small : malloc(space);
    if (!buf) { errno = ENOMEM; return -1; }
    ssize_t r = ns_dgram_recv(s, buf, space, flags, sa, salen, msg_flags, record);
    if (r > 0) {
        size_t left = (size_t)r < space ? (size_t)r : space, at = 0;
        for (size_t i = 0; i < count && left > 0; i++) {
            size_t k = iov[i].iov_len < left ? iov[i].iov_len : left;
            memcpy(iov[i].iov_base, buf + at, k);
            at += k;
            left -= k;
        }
    }
    if (buf != small) { int e = errno; free(buf); errno = e; }
    return r;
}

// MARK: Stream sockets

/// A receive that waits for its target, unless the input ends, an error
/// comes, the receive timeout passes or a signal interrupts; then it
/// returns what it has. A peek waits so too, and looks once.
static ssize_t stack_recv_to_target(ns_sock *s, void *buf, size_t len, int flags) {
    if (flags & MSG_OOB) return ns_stream_recv_urgent(s, &(struct iovec){buf, len}, 1, flags, NULL);
    if (flags & MSG_PEEK) return stack_peek(s, &(struct iovec){buf, len}, 1, flags);
    size_t target = receive_target(s, len, flags);
    if (target <= 1) return stack_recv(s, buf, len, flags);
    size_t got = 0;
    while (got < target) {
        ssize_t n = stack_recv(s, (uint8_t *)buf + got, len - got, flags & ~MSG_WAITALL);
        if (n <= 0) return got > 0 ? (ssize_t)got : n;
        got += (size_t)n;
        if (ns_at_urgent_mark(s)) break;  // a read ends at the urgent mark, MSG_WAITALL's too
    }
    return (ssize_t)got;
}

/// Scatter into `iov`: only the first piece may wait; the rest take what
/// is there. MSG_OOB's byte goes to the first piece with room; a peek
/// fills them all from one look (`stack_peek`).
static ssize_t stack_recvv(ns_sock *s, const struct iovec *iov, size_t count, int flags, int *msg_flags) {
    if (flags & MSG_OOB) return ns_stream_recv_urgent(s, iov, count, flags, msg_flags);
    if (flags & MSG_PEEK) return stack_peek(s, iov, count, flags);
    ssize_t total = 0;
    for (size_t i = 0; i < count; i++) {
        if (iov[i].iov_len == 0) continue;
        int f = total > 0 && !(flags & MSG_WAITALL) ? (flags | MSG_DONTWAIT) : flags;
        ssize_t n = stack_recv_to_target(s, iov[i].iov_base, iov[i].iov_len, f);
        if (n < 0) return total > 0 ? total : -1;
        total += n;
        if ((size_t)n < iov[i].iov_len) break;
    }
    return total;
}

static void raise_sigpipe(int flags) {
    if (!(flags & MSG_NOSIGNAL)) pthread_kill(pthread_self(), SIGPIPE);
}

ssize_t ns_stream_send(ns_sock *s, size_t len, int flags, ns_fill fill, void *source) {
    bool dontwait = s->nonblocking || (flags & MSG_DONTWAIT);
    if (s->listening) {  // Linux's sk_stream_wait_connect: not connecting, so EPIPE
        raise_sigpipe(flags);
        errno = EPIPE;
        return -1;
    }
    long long deadline = dontwait ? -1 : ns_deadline(&s->options.send_timeout);
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
            if (!s->connecting) {  // never connected: Linux's sk_stream_wait_connect says EPIPE
                raise_sigpipe(flags);
                errno = EPIPE;
                return -1;
            }
        } else {
            size_t want = len - done;
            if (want == 0) return (ssize_t)done;  // a send of nothing: 0 at once, as Linux's TCP
            pthread_mutex_lock(&s->tx_lock);
            uint32_t room = ns_send_room(s);
            ssize_t n = room == 0 ? 0 : fill(source, &s->shm->tx, s->region, want > room ? room : (uint32_t)want);
            // MSG_OOB: the last byte written so far is urgent (tcp_mark_urg
            // at each tcp_push), marked before the doorbell below.
            if (n > 0 && (flags & MSG_OOB)) ns_urgent_sent_up_to_tail(s);
            pthread_mutex_unlock(&s->tx_lock);
            if (room < want) ns_note_nospace(s);  // as tcp_sendmsg's wait_for_space
            if (room > 0) {
                if (n < 0) return done > 0 ? (ssize_t)done : -1;
                if (n == 0) return (ssize_t)done;  // the source has nothing more
                if (ns_flag_take(&s->shm->stack_wants_tx)) ns_ring_doorbell(s);
                done += (size_t)n;
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
        if (block_step(s, POLLOUT, &cleared, deadline) < 0) return done > 0 ? (ssize_t)done : -1;
    }
}

static ssize_t fill_from_buffer(void *source, ns_ring *tx, uint8_t *region, uint32_t max) {
    const uint8_t **at = source;
    uint32_t n = ns_ring_write(tx, region, *at, max);
    *at += n;
    return n;
}

/// Writes what fits of `buf` (all of it when blocking): > 0, or -1 with errno.
static ssize_t stack_send(ns_sock *s, const void *buf, size_t len, int flags) {
    const uint8_t *at = buf;
    return ns_stream_send(s, len, flags, fill_from_buffer, &at);
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
    if (s->datagram) return ns_dgram_recv(s, buf, len, flags, NULL, NULL, NULL, NULL);
    return stack_recv_to_target(s, buf, len, flags);
}

NS_EXPORT ssize_t __recv_chk(int fd, void *buf, size_t len, size_t buflen, int flags) {
    (void)buflen;
    return recv(fd, buf, len, flags);
}

NS_EXPORT ssize_t read(int fd, void *buf, size_t len) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(read)(fd, buf, len);
    if (s->datagram) return ns_dgram_recv(s, buf, len, 0, NULL, NULL, NULL, NULL);
    return stack_recv_to_target(s, buf, len, 0);
}

NS_EXPORT ssize_t __read_chk(int fd, void *buf, size_t len, size_t buflen) {
    (void)buflen;
    return read(fd, buf, len);
}

NS_EXPORT ssize_t recvfrom(int fd, void *buf, size_t len, int flags, struct sockaddr *sa, socklen_t *salen) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(recvfrom)(fd, buf, len, flags, sa, salen);
    if (s->datagram) return ns_dgram_recv(s, buf, len, flags, sa, salen, NULL, NULL);
    ssize_t n = stack_recv_to_target(s, buf, len, flags);
    if (n >= 0 && sa && salen) *salen = 0;  // Linux's TCP names no sender: the length comes back 0
    return n;
}

NS_EXPORT ssize_t __recvfrom_chk(int fd, void *buf, size_t len, size_t buflen, int flags, struct sockaddr *sa,
                       socklen_t *salen) {
    (void)buflen;
    return recvfrom(fd, buf, len, flags, sa, salen);
}

/// MSG_FASTOPEN on a stream socket (tcp_sendmsg_fastopen): a connect to
/// the address given, then the send, as Linux's TCP Fast Open without a
/// cookie, where the data follows the handshake: EISCONN once connected,
/// and a non-blocking socket says EINPROGRESS and sends nothing yet.
static int fast_open(int fd, const struct sockaddr *sa, socklen_t salen) {
    bool unspec = sa && salen >= sizeof(sa_family_t) && sa->sa_family == AF_UNSPEC;
    if (!ns_fast_open_client() || unspec) { errno = EOPNOTSUPP; return -1; }
    return connect(fd, sa, salen);
}

NS_EXPORT ssize_t send(int fd, const void *buf, size_t len, int flags) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(send)(fd, buf, len, flags);
    if (s->datagram) return ns_dgram_send(s, buf, len, flags, NULL, 0);
    if ((flags & MSG_FASTOPEN) && fast_open(fd, NULL, 0) < 0) return -1;
    return stack_send(s, buf, len, flags);
}

NS_EXPORT ssize_t write(int fd, const void *buf, size_t len) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(write)(fd, buf, len);
    if (s->datagram) return ns_dgram_send(s, buf, len, 0, NULL, 0);
    return stack_send(s, buf, len, 0);
}

NS_EXPORT ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *sa, socklen_t salen) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(sendto)(fd, buf, len, flags, sa, salen);
    if (s->datagram && sa) {  // to loopback: the kernel's
        int kernel = ns_kernel_takes_send(s, sa, salen);
        if (kernel != 0) return kernel < 0 ? -1 : LIBC(sendto)(fd, buf, len, flags, sa, salen);
    }
    if (s->datagram) return ns_dgram_send(s, buf, len, flags, sa, salen);
    if ((flags & MSG_FASTOPEN) && fast_open(fd, sa, salen) < 0) return -1;
    return stack_send(s, buf, len, flags);  // a stream socket ignores the address, as Linux's TCP
}

NS_EXPORT ssize_t readv(int fd, const struct iovec *iov, int count) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(readv)(fd, iov, count);
    if (count < 0) { errno = EINVAL; return -1; }
    if (s->datagram) return dgram_recvv(s, iov, (size_t)count, 0, NULL, NULL, NULL, NULL);
    return stack_recvv(s, iov, (size_t)count, 0, NULL);
}

NS_EXPORT ssize_t writev(int fd, const struct iovec *iov, int count) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(writev)(fd, iov, count);
    if (count < 0) { errno = EINVAL; return -1; }
    if (s->datagram) return dgram_sendv(s, iov, (size_t)count, 0, NULL, 0, NULL);
    return stack_sendv(s, iov, (size_t)count, 0);
}

/// As Linux's TCP: the data of `msg_iov`; no address (a stream socket's
/// `msg_namelen` comes back 0), no control message but TCP_INQ's, no flags.
NS_EXPORT ssize_t recvmsg(int fd, struct msghdr *msg, int flags) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return ns_pass_recvmsg(fd, msg, flags);
    if (!msg) { errno = EFAULT; return -1; }
    if (s->datagram) {
        int got_flags = 0;
        ns_datagram record;
        ssize_t n = dgram_recvv(s, msg->msg_iov, msg->msg_iovlen, flags, msg->msg_name, &msg->msg_namelen, &got_flags,
                                &record);
        if (n >= 0) {
            msg->msg_flags = got_flags;
            ns_put_arrival_cmsgs(s, &record, msg);  // IP_PKTINFO and the like, as asked; msg_controllen
        }
        return n;
    }
    int got_flags = 0;
    ssize_t n = stack_recvv(s, msg->msg_iov, msg->msg_iovlen, flags, &got_flags);
    if (n >= 0) {
        msg->msg_namelen = 0;
        msg->msg_flags = got_flags;
        ns_put_stream_cmsgs(s, msg);  // TCP_INQ's, if asked; msg_controllen
    }
    return n;
}

/// As Linux's TCP: `msg_iov` is sent, an address and control messages are ignored.
NS_EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return ns_pass_sendmsg(fd, msg, flags);
    if (!msg) { errno = EFAULT; return -1; }
    if (s->datagram && msg->msg_name) {  // to loopback: the kernel's
        int kernel = ns_kernel_takes_send(s, msg->msg_name, msg->msg_namelen);
        if (kernel != 0) return kernel < 0 ? -1 : LIBC(sendmsg)(fd, msg, flags);
    }
    if (s->datagram) {
        ns_datagram fields = {0};
        if (ns_take_send_cmsgs(s, msg, &fields) < 0) return -1;
        return dgram_sendv(s, msg->msg_iov, msg->msg_iovlen, flags, msg->msg_name, msg->msg_namelen, &fields);
    }
    if ((flags & MSG_FASTOPEN) && fast_open(fd, msg->msg_name, msg->msg_namelen) < 0) return -1;
    return stack_sendv(s, msg->msg_iov, msg->msg_iovlen, flags);  // TCP takes no control messages (tcp_sendmsg)
}

// MARK: Batches: sendmmsg, recvmmsg (as Linux's, a sendmsg or recvmsg per entry)

/// Linux's bound on one batch (UIO_MAXIOV).
#define NS_MAX_BATCH 1024u

/// How many entries went; an error after the first is dropped, as Linux reports it only with none sent.
NS_EXPORT int sendmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags) {
    if (!ns_lookup(fd)) return LIBC(sendmmsg)(fd, vec, vlen, flags);
    if (vlen > NS_MAX_BATCH) vlen = NS_MAX_BATCH;
    unsigned int sent = 0;
    for (; sent < vlen; sent++) {
        ssize_t n = sendmsg(fd, &vec[sent].msg_hdr, flags);
        if (n < 0) return sent > 0 ? (int)sent : -1;
        vec[sent].msg_len = (unsigned int)n;
    }
    return (int)sent;
}

/// Each entry waits as recvmsg would, except after the first with
/// MSG_WAITFORONE; `timeout` is looked at after each entry only and left
/// holding what remains of it (Linux's do_recvmmsg, whose man page calls
/// this a bug: a blocking call still waits for its next datagram).
NS_EXPORT int recvmmsg(int fd, struct mmsghdr *vec, unsigned int vlen, int flags, struct timespec *timeout) {
    if (!ns_lookup(fd)) return LIBC(recvmmsg)(fd, vec, vlen, flags, timeout);
    if (ns_timeout_ms(timeout) == -2) { errno = EINVAL; return -1; }
    long long end = timeout ? ns_now_ns() + timeout->tv_sec * 1000000000LL + timeout->tv_nsec : 0;
    if (vlen > NS_MAX_BATCH) vlen = NS_MAX_BATCH;
    unsigned int got = 0;
    while (got < vlen) {
        ssize_t n = recvmsg(fd, &vec[got].msg_hdr, flags & ~MSG_WAITFORONE);
        if (n < 0) return got > 0 ? (int)got : -1;
        vec[got++].msg_len = (unsigned int)n;
        if (flags & MSG_WAITFORONE) flags |= MSG_DONTWAIT;
        if (timeout) {
            long long left = end - ns_now_ns();
            if (left < 0) left = 0;
            *timeout = (struct timespec){.tv_sec = left / 1000000000LL, .tv_nsec = left % 1000000000LL};
            if (left == 0) break;
        }
    }
    return (int)got;
}
