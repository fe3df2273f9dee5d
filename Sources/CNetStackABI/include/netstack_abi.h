#ifndef NETSTACK_ABI_H
#define NETSTACK_ABI_H
// What `netstack up --api` and the preload library (libNetStackPreload.so)
// agree on: the layout of a socket's shared memory, its two byte rings, and
// the fixed-size control messages. One header compiled into both sides, so
// the layout and the memory ordering of the ring indices have exactly one
// definition (C11 atomics; Swift calls these inline functions).
//
// A ring has one producer and one consumer, in two processes. The producer
// alone stores `tail`, the consumer alone stores `head`; both are free-running
// 32-bit counters (readable = tail - head) over a power-of-two data area.
// Bytes are written before `tail` is published (release) and read after it
// is loaded (acquire); `head` is published after the bytes are copied out, so
// the producer never overwrites what is still being read.
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/// The environment variable holding the API socket's path (`netstack run` sets it).
#define NS_API_ENV "NETSTACK_API"
/// Where `netstack run` and the library look without the variable.
#define NS_API_DEFAULT_PATH "/run/netstack.sock"

// MARK: Rings

typedef struct ns_ring {
    _Alignas(64) _Atomic uint32_t head;  // consumer's
    _Alignas(64) _Atomic uint32_t tail;  // producer's
    _Alignas(64) uint32_t size;          // bytes, a power of two; set before sharing
    uint32_t offset;                     // where the data lies, from the region's start
} ns_ring;

static inline uint32_t ns_ring_readable(ns_ring *r) {
    return atomic_load_explicit(&r->tail, memory_order_acquire) -
           atomic_load_explicit(&r->head, memory_order_relaxed);
}

/// Room left, seen from the producer.
static inline uint32_t ns_ring_writable(ns_ring *r) {
    return r->size - (atomic_load_explicit(&r->tail, memory_order_relaxed) -
                      atomic_load_explicit(&r->head, memory_order_acquire));
}

/// Whether the ring holds nothing, seen from either side (sequentially
/// consistent: the half of a "store my index, then look at the flag" pair).
static inline int ns_ring_is_empty(ns_ring *r) {
    return atomic_load(&r->tail) == atomic_load(&r->head);
}

/// Copies `n` bytes into the data area `data` of `size` bytes at the
/// absolute index `at`, wrapping; nothing if `n` exceeds the ring. Both
/// sides' copies: the application's with the header's layout, the stack's
/// with its own.
static inline void ns_sring_copy_in(uint8_t *data, uint32_t size, uint32_t at, const void *src, uint32_t n) {
    if (n > size) return;
    uint32_t i = at & (size - 1);
    uint32_t first = size - i < n ? size - i : n;
    memcpy(data + i, src, first);
    if (n > first) memcpy(data, (const uint8_t *)src + first, n - first);
}

/// Copies `n` bytes out of `data` from the absolute index `at`, wrapping; nothing if `n` exceeds the ring.
static inline void ns_sring_copy_out(const uint8_t *data, uint32_t size, uint32_t at, void *dst, uint32_t n) {
    if (n > size) return;
    uint32_t i = at & (size - 1);
    uint32_t first = size - i < n ? size - i : n;
    memcpy(dst, data + i, first);
    if (n > first) memcpy((uint8_t *)dst + first, data, n - first);
}

/// Producer: copies up to `n` bytes in; returns how many.
static inline uint32_t ns_ring_write(ns_ring *r, uint8_t *region, const void *src, uint32_t n) {
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    uint32_t room = r->size - (tail - head);
    if (n > room) n = room;
    if (n == 0) return 0;
    ns_sring_copy_in(region + r->offset, r->size, tail, src, n);
    atomic_store_explicit(&r->tail, tail + n, memory_order_seq_cst);
    return n;
}

/// Producer: up to `max` bytes of the free room as up to two pieces, in
/// order, for a source that fills them in place (a read from a file or a
/// pipe, with no buffer between); `ns_ring_commit` then publishes what it
/// filled. Returns the pieces' total.
static inline uint32_t ns_ring_space(ns_ring *r, uint8_t *region, uint32_t max, uint8_t **first,
                                     uint32_t *firstCount, uint8_t **second, uint32_t *secondCount) {
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint32_t room = r->size - (tail - atomic_load_explicit(&r->head, memory_order_acquire));
    uint32_t n = room < max ? room : max;
    if (n > r->size) n = 0;  // indices broken (by this process): nothing to fill
    uint8_t *data = region + r->offset;
    uint32_t at = tail & (r->size - 1);
    uint32_t a = r->size - at < n ? r->size - at : n;
    *first = data + at;
    *firstCount = a;
    *second = data;
    *secondCount = n - a;
    return n;
}

/// Producer: publishes `n` bytes filled in place at the start of `ns_ring_space`'s pieces.
static inline void ns_ring_commit(ns_ring *r, uint32_t n) {
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    atomic_store_explicit(&r->tail, tail + n, memory_order_seq_cst);
}

/// Consumer: the readable bytes as up to two pieces, in order, without taking them.
static inline uint32_t ns_ring_peek(ns_ring *r, uint8_t *region, const uint8_t **first, uint32_t *firstCount,
                                    const uint8_t **second, uint32_t *secondCount) {
    uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint32_t n = atomic_load_explicit(&r->tail, memory_order_acquire) - head;
    uint8_t *data = region + r->offset;
    uint32_t at = head & (r->size - 1);
    uint32_t a = r->size - at < n ? r->size - at : n;
    *first = data + at;
    *firstCount = a;
    *second = data;
    *secondCount = n - a;
    return n;
}

/// Copies `n` bytes in at the ring's absolute index `at`, wrapping.
static inline void ns_ring_copy_in(ns_ring *r, uint8_t *region, uint32_t at, const void *src, uint32_t n) {
    ns_sring_copy_in(region + r->offset, r->size, at, src, n);
}

/// Copies `n` bytes out from `skip` bytes past the consumer's index, wrapping; takes nothing.
static inline void ns_ring_copy_out(ns_ring *r, uint8_t *region, uint32_t skip, void *dst, uint32_t n) {
    ns_sring_copy_out(region + r->offset, r->size, atomic_load_explicit(&r->head, memory_order_relaxed) + skip, dst, n);
}

/// Consumer: gives `n` peeked bytes back to the producer.
static inline void ns_ring_consume(ns_ring *r, uint32_t n) {
    uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    atomic_store_explicit(&r->head, head + n, memory_order_seq_cst);
}

/// Consumer: copies up to `n` bytes out (and takes them unless `peek`); returns how many.
static inline uint32_t ns_ring_read(ns_ring *r, uint8_t *region, void *dst, uint32_t n, int peek) {
    const uint8_t *a, *b;
    uint32_t na, nb;
    uint32_t avail = ns_ring_peek(r, region, &a, &na, &b, &nb);
    if (n > avail) n = avail;
    if (n == 0) return 0;
    uint32_t first = na < n ? na : n;
    memcpy(dst, a, first);
    if (n > first) memcpy((uint8_t *)dst + first, b, n - first);
    if (!peek) ns_ring_consume(r, n);
    return n;
}

/// The indices, for a consumer that keeps its own copy of the layout (the
/// stack: a region's header is the application's to write).
static inline uint32_t ns_ring_head(ns_ring *r) { return atomic_load_explicit(&r->head, memory_order_relaxed); }
static inline uint32_t ns_ring_tail(ns_ring *r) { return atomic_load_explicit(&r->tail, memory_order_acquire); }
/// Whether bytes wait past the absolute index `at` (sequentially consistent:
/// the half of a "raise my flag, then look" pair).
static inline int ns_ring_has_bytes_after(ns_ring *r, uint32_t at) { return atomic_load(&r->tail) != at; }

// MARK: Datagrams in a ring

/// What precedes each datagram in a datagram socket's rings: its payload's
/// length and the peer (the destination in `tx`, the source in `rx`).
/// A record is written whole or not at all and published once, so the
/// consumer never sees a header without its payload.
typedef struct ns_datagram {
    uint32_t length;
    uint16_t family;  // 4 or 6 (ns_addr's)
    uint16_t port;
    uint8_t bytes[16];
    /// A received one's: the address it came to (of `family`: the stack's,
    /// or a broadcast or multicast one), and its IP header's DS field (TOS,
    /// traffic class) and TTL (hop limit), for IP_PKTINFO, IP_RECVTOS,
    /// IP_RECVTTL and IPv6's like them. In `tx`, `local` is zero, and the
    /// DS field and TTL are the datagram's own where `send_flags` says so
    /// (sendmsg's IP_TOS and IP_TTL, IPV6_TCLASS and IPV6_HOPLIMIT).
    uint8_t local[16];
    uint8_t traffic_class, hop_limit;
    uint16_t send_flags;  // NS_SEND_*
    uint32_t reserved;
    /// A received one's arrival on the wall clock (CLOCK_REALTIME, in
    /// nanoseconds), for SO_TIMESTAMP and SO_TIMESTAMPNS; zero in `tx`.
    int64_t arrival_ns;
} ns_datagram;

/// `ns_datagram.send_flags`: which of its IP header fields a sent datagram sets.
enum { NS_SEND_HOP_LIMIT = 1, NS_SEND_TRAFFIC_CLASS = 2 };

/// Producer: the header then `h->length` bytes of `payload`, or nothing if they do not fit; 1 if written.
static inline int ns_ring_write_record(ns_ring *r, uint8_t *region, const ns_datagram *h, const void *payload) {
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    uint32_t total = (uint32_t)sizeof *h + h->length;
    if (total > r->size - (tail - head)) return 0;
    ns_ring_copy_in(r, region, tail, h, sizeof *h);
    if (h->length) ns_ring_copy_in(r, region, tail + (uint32_t)sizeof *h, payload, h->length);
    atomic_store_explicit(&r->tail, tail + total, memory_order_seq_cst);
    return 1;
}

/// Consumer: the next record's header, if one waits (its payload then does too); 1 if so.
static inline int ns_ring_next_record(ns_ring *r, uint8_t *region, ns_datagram *h) {
    if (ns_ring_readable(r) < sizeof *h) return 0;
    ns_ring_copy_out(r, region, 0, h, sizeof *h);
    return 1;
}

/// Consumer: up to `n` bytes of the next record's payload into `dst` (the rest is cut).
static inline uint32_t ns_ring_record_payload(ns_ring *r, uint8_t *region, const ns_datagram *h, void *dst, uint32_t n) {
    if (n > h->length) n = h->length;
    if (n) ns_ring_copy_out(r, region, (uint32_t)sizeof *h, dst, n);
    return n;
}

/// Consumer: takes the next record whole.
static inline void ns_ring_take_record(ns_ring *r, const ns_datagram *h) {
    ns_ring_consume(r, (uint32_t)sizeof *h + h->length);
}

// MARK: The stack's side of a ring
//
// The region's header lies in memory the application can write, and one
// application's bad write must not crash the stack that serves all of them.
// So the stack's side (the `ns_sring_` functions) takes the data area and
// its size as the stack laid them out before sharing the region, never the
// header's `offset` and `size`, and checks the indices it loads: a producer
// more than `size` ahead of the consumer, or a record longer than what is
// readable, is a broken ring (NS_RING_BROKEN, or -1), and nothing is copied.
// Every copy then lies within `data[0..<size]`: indices are masked, and no
// count exceeds `size`. The checks cost compares on the indices already
// loaded, no more atomics than the application's side.

/// What the stack's ring functions return for a broken ring (no count can be this large).
#define NS_RING_BROKEN 0xFFFFFFFFu

/// Stack, consumer: bytes waiting, or NS_RING_BROKEN.
static inline uint32_t ns_sring_readable(ns_ring *r, uint32_t size) {
    uint32_t n = atomic_load_explicit(&r->tail, memory_order_acquire) -
                 atomic_load_explicit(&r->head, memory_order_relaxed);
    return n <= size ? n : NS_RING_BROKEN;
}

/// Stack, producer: room left, or NS_RING_BROKEN.
static inline uint32_t ns_sring_writable(ns_ring *r, uint32_t size) {
    uint32_t used = atomic_load_explicit(&r->tail, memory_order_relaxed) -
                    atomic_load_explicit(&r->head, memory_order_acquire);
    return used <= size ? size - used : NS_RING_BROKEN;
}

/// Stack, producer: copies up to `n` bytes in; returns how many, or NS_RING_BROKEN.
static inline uint32_t ns_sring_write(ns_ring *r, uint8_t *data, uint32_t size, const void *src, uint32_t n) {
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint32_t used = tail - atomic_load_explicit(&r->head, memory_order_acquire);
    if (used > size) return NS_RING_BROKEN;
    if (n > size - used) n = size - used;
    if (n == 0) return 0;
    ns_sring_copy_in(data, size, tail, src, n);
    atomic_store_explicit(&r->tail, tail + n, memory_order_seq_cst);
    return n;
}

/// Stack, consumer: the readable bytes from the absolute index `from` on
/// (the head, or past it: bytes already lent and not yet taken) as up to
/// two pieces, in order, without taking them; returns their count, or
/// NS_RING_BROKEN (no pieces) if the producer is more than `size` ahead of
/// the head or behind `from`.
static inline uint32_t ns_sring_peek_from(ns_ring *r, const uint8_t *data, uint32_t size, uint32_t from,
                                          const uint8_t **first, uint32_t *firstCount, const uint8_t **second,
                                          uint32_t *secondCount) {
    uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint32_t waiting = atomic_load_explicit(&r->tail, memory_order_acquire) - head;
    uint32_t skipped = from - head;
    *first = data;
    *firstCount = 0;
    *second = data;
    *secondCount = 0;
    if (waiting > size || skipped > waiting) return NS_RING_BROKEN;
    uint32_t n = waiting - skipped;
    uint32_t at = from & (size - 1);
    uint32_t a = size - at < n ? size - at : n;
    *first = data + at;
    *firstCount = a;
    *secondCount = n - a;
    return n;
}

/// Stack, producer: a datagram record, whole or not at all; 1 if written,
/// 0 if it does not fit now, -1 if the ring is broken.
static inline int ns_sring_write_record(ns_ring *r, uint8_t *data, uint32_t size, const ns_datagram *h,
                                        const void *payload) {
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint32_t used = tail - atomic_load_explicit(&r->head, memory_order_acquire);
    if (used > size) return -1;
    if (h->length > size - (uint32_t)sizeof *h) return 0;  // never fits (and no overflow below)
    uint32_t total = (uint32_t)sizeof *h + h->length;
    if (total > size - used) return 0;
    ns_sring_copy_in(data, size, tail, h, sizeof *h);
    if (h->length) ns_sring_copy_in(data, size, tail + (uint32_t)sizeof *h, payload, h->length);
    atomic_store_explicit(&r->tail, tail + total, memory_order_seq_cst);
    return 1;
}

/// Stack, consumer: the next record's header; 1 if a record waits (its
/// payload whole: `h->length` is checked against what is readable), 0 if
/// none, -1 if the ring is broken (too much readable, part of a header, or
/// a length past the published bytes: the producer publishes whole records).
static inline int ns_sring_next_record(ns_ring *r, const uint8_t *data, uint32_t size, ns_datagram *h) {
    uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint32_t n = atomic_load_explicit(&r->tail, memory_order_acquire) - head;
    if (n == 0) return 0;
    if (n > size || n < sizeof *h) return -1;
    ns_sring_copy_out(data, size, head, h, sizeof *h);
    if (h->length > n - (uint32_t)sizeof *h) return -1;
    return 1;
}

/// Stack, consumer: up to `n` bytes of the payload of the record `h` (from
/// `ns_sring_next_record`) into `dst`.
static inline uint32_t ns_sring_record_payload(ns_ring *r, const uint8_t *data, uint32_t size, const ns_datagram *h,
                                               void *dst, uint32_t n) {
    if (n > h->length) n = h->length;
    uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    if (n) ns_sring_copy_out(data, size, head + (uint32_t)sizeof *h, dst, n);
    return n;
}

/// Stores straight into a ring's header, as any process that maps the
/// region can: for tests that play a broken or hostile application.
static inline void ns_ring_overwrite(ns_ring *r, uint32_t head, uint32_t tail, uint32_t size, uint32_t offset) {
    atomic_store(&r->head, head);
    atomic_store(&r->tail, tail);
    r->size = size;
    r->offset = offset;
}

// MARK: A socket's shared region

/// Bits of `ns_socket_shm.state`, set by the stack (the app only reads them).
enum {
    NS_STATE_CONNECTED = 1u << 0,  // handshake done: writes may go
    NS_STATE_RX_EOF = 1u << 1,     // the peer's FIN: everything before it is in `rx`
    NS_STATE_ERROR = 1u << 2,      // `error` holds the errno that ended the connection
    NS_STATE_TX_CLOSED = 1u << 3,  // writing is over (EPIPE)
    NS_STATE_LOOPBACK = 1u << 4,   // a datagram socket the kernel's loopback reaches too: the loop sends there
};

/// The connection as TCP_INFO, TCP_MAXSEG and TCP_CONGESTION report it,
/// published by the stack each time it services the socket.
typedef struct ns_tcp_fields {
    uint32_t state;          // Linux's numbering (TCP_ESTABLISHED = 1 ... TCP_CLOSING = 11)
    uint32_t mss;            // payload bytes per segment sent (0: not yet known)
    uint32_t cwnd_bytes;
    uint32_t ssthresh_bytes;
    uint32_t send_window;    // the peer's receive window, scaled
    uint32_t rtt_us;         // RFC 6298 SRTT and RTTVAR, 0 before a sample
    uint32_t rttvar_us;
    uint32_t total_retrans;
    char congestion[16];     // "cubic", "newreno"
    uint32_t rto_us;
    uint32_t min_rtt_us;     // 0 before a sample
    uint32_t advmss;         // the MSS our SYN announced
    uint32_t pmtu;           // the path MTU the connection knows
    uint32_t in_flight;      // sequence space sent, not yet acknowledged
    uint8_t options;         // TCPI_OPT_TIMESTAMPS (1), _SACK (2), _WSCALE (4)
    uint8_t send_wscale, receive_wscale;
    uint8_t reserved;
    uint64_t bytes_sent;     // data, resends included
    uint64_t bytes_acked;
    uint64_t bytes_received;
} ns_tcp_fields;

/// The IPv6 addresses an interface description holds: the stack has a
/// link-local and at most one global address.
#define NS_INTERFACE_ADDRESSES6 2

/// The stack's interface as the library reports it: the kernel's index for
/// it (the TAP's), IP_PKTINFO's ifindex and what SO_BINDTODEVICE takes; its
/// IPv4 address, the one a reply to a broadcast goes from; its subnet's
/// directed broadcast (zero: none), which a datagram goes to only with
/// SO_BROADCAST, as the limited one; its gateway, without which a datagram
/// off the subnet has no route (ENETUNREACH); and, for netdevice(7)'s requests and
/// getifaddrs, its subnet mask, MAC address and IPv6 addresses in use with
/// their prefix lengths (the link-local one first). Addresses in network
/// order; all of them the stack's, not the TAP's kernel side's.
typedef struct ns_interface {
    uint32_t index;
    uint8_t address[4];
    uint8_t broadcast[4];
    uint8_t netmask[4];
    uint8_t gateway[4];  // zero: none, so nothing off the subnet has a route
    uint8_t mac[6];
    uint8_t address6_count;
    uint8_t reserved;
    uint8_t address6[NS_INTERFACE_ADDRESSES6][16];
    uint8_t prefix6[NS_INTERFACE_ADDRESSES6];
} ns_interface;

/// The region's header; `tx` (app to stack) and `rx` (stack to app) data follow it.
typedef struct ns_socket_shm {
    ns_ring tx;
    ns_ring rx;
    /// Set by the stack when it has drained `tx` and wants a doorbell for more.
    _Alignas(64) _Atomic uint32_t stack_wants_tx;
    /// Set by the stack when `rx` was full: the app rings once it made room.
    _Atomic uint32_t stack_wants_rx_room;
    /// Set by the app when `tx` was full: the stack signals the app's eventfd on room.
    _Atomic uint32_t app_wants_write;
    /// Set by the app before it waits for input: the stack signals the app's eventfd on new bytes.
    _Atomic uint32_t app_wants_read;
    /// A stream socket's app, before it raises `app_wants_write`: the free
    /// room in `tx` it waits for. Linux wakes a writer once a third of its
    /// send buffer is free (sk_stream_write_space), not on every ACK.
    _Atomic uint32_t write_wake_room;
    _Atomic uint32_t state;
    /// The errno for SO_ERROR and the calls after NS_STATE_ERROR (0: none).
    _Atomic int32_t error;
    /// A listener's connections waiting for accept (readable while > 0).
    _Atomic uint32_t pending;
    /// A listener's connections queued so far (free-running): each is news
    /// to an edge-triggered waiter, as Linux's listener wakes its waiters on
    /// each, while `pending` also falls at an accept, which wakes none.
    _Atomic uint32_t arrivals;
    /// A stream socket's urgent mark (RFC 9293 3.8.5; RFC 6093): in the low
    /// half, where in `rx` the peer's last urgent byte lies (a ring index,
    /// which may be past the tail until the byte comes); in the high half,
    /// how many marks the peer set (0: none yet). Written by the stack.
    _Atomic uint64_t urgent_mark;
    /// A replaced mark's byte that the reader sat at when the new mark
    /// came (count and index, as `urgent_mark`): reads pass over it, as
    /// Linux's tcp_check_urg moves such a reader past it. Written by the stack.
    _Atomic uint64_t urgent_hole;
    /// The count of the mark whose byte the application took with MSG_OOB
    /// (Linux's TCP_URG_READ). Written by the application.
    _Atomic uint32_t urgent_taken;
    /// The application's urgent data sent (send(2)'s MSG_OOB): in the low
    /// half, the `tx` index just past its last byte; in the high half, how
    /// many such sends (0: none). Written by the application.
    _Atomic uint64_t urgent_sent;
    /// The socket's O_ASYNC (fcntl's F_SETFL, FIOASYNC): the stack signals
    /// its owner when news comes, as Linux's sk_wake_async. Written by the application.
    _Atomic uint32_t app_async;
    /// The stack's interface. Set before sharing.
    ns_interface interface;
    /// A sequence lock over `tcp`: odd while the stack writes it.
    _Alignas(64) _Atomic uint32_t tcp_sequence;
    ns_tcp_fields tcp;
} ns_socket_shm;

/// The header's size in the region: the data areas start after it, `NS_DATA_SKEW` into the next page.
#define NS_SHM_HEADER_SIZE 4096u
/// Where in the header page a process passing the socket to another
/// (SCM_RIGHTS) leaves its library's state of it for the other to take up.
/// The stack neither reads nor writes it.
#define NS_PASSED_STATE_OFFSET 2048u
_Static_assert(sizeof(ns_socket_shm) <= NS_PASSED_STATE_OFFSET, "the shared header overlaps the passed state");

/// How far past a page boundary each data area starts. An application's
/// bulk sends copy from a page-aligned buffer (iperf3's, a file's pages)
/// into `tx` at a stream index just past a short header (iperf3's 37-byte
/// cookie, a length prefix); with page-aligned data areas that puts the
/// destination 1-63 bytes past the source modulo 4 KiB, where a copy's
/// loads falsely wait on its own just-made stores (4K aliasing): glibc's
/// memcpy (`rep movsb`) ran at 15.7 ms/GB there against 8.0 otherwise on
/// this machine's EPYC, and iperf3's copy into `tx` took 20.4 against 9.2
/// ms/GB (`perf record -C 1`). Half a page in, only a source 2 KiB off
/// its page's start meets it.
#define NS_DATA_SKEW 2048u

/// The region's length for rings of `ring_size` bytes each.
static inline size_t ns_region_length(uint32_t ring_size) {
    return NS_SHM_HEADER_SIZE + NS_DATA_SKEW + 2 * (size_t)ring_size;
}
static inline ns_socket_shm *ns_region_header(void *region) { return (ns_socket_shm *)region; }
static inline ns_ring *ns_region_tx(void *region) { return &((ns_socket_shm *)region)->tx; }
static inline ns_ring *ns_region_rx(void *region) { return &((ns_socket_shm *)region)->rx; }
/// Where `tx`'s data area starts in the region, and `rx`'s after it: the one
/// layout, which the stack also keeps for itself (it never trusts the header's).
static inline uint32_t ns_region_tx_offset(void) { return NS_SHM_HEADER_SIZE + NS_DATA_SKEW; }
static inline uint32_t ns_region_rx_offset(uint32_t ring_size) { return NS_SHM_HEADER_SIZE + NS_DATA_SKEW + ring_size; }

/// Whether an IPv4 address of `ns_interface` is 0.0.0.0: none.
static inline bool ns_ipv4_none(const uint8_t a[4]) { return (a[0] | a[1] | a[2] | a[3]) == 0; }

/// Whether the stack has a route to IPv4 `to` (network order): on its
/// subnet, through its gateway, or a broadcast or multicast on its link.
static inline bool ns_routes_ipv4(const ns_interface *i, const uint8_t to[4]) {
    if (to[0] >= 224) return true;  // multicast and the limited broadcast go on the link
    if (!ns_ipv4_none(i->gateway)) return true;
    for (int n = 0; n < 4; n++) {
        if ((to[n] & i->netmask[n]) != (i->address[n] & i->netmask[n])) return false;
    }
    return true;
}

/// Tells the application the stack's interface (`ns_interface`).
static inline void ns_region_set_interface(void *region, ns_interface interface) {
    ((ns_socket_shm *)region)->interface = interface;
}
static inline ns_interface ns_region_interface(const void *region) {
    return ((const ns_socket_shm *)region)->interface;
}

/// Lays out a fresh (zeroed) region: the stack does it before sharing it.
static inline void ns_region_init(void *region, uint32_t ring_size) {
    ns_socket_shm *s = (ns_socket_shm *)region;
    s->tx.size = ring_size;
    s->tx.offset = ns_region_tx_offset();
    s->rx.size = ring_size;
    s->rx.offset = ns_region_rx_offset(ring_size);
}

/// A region whose rings moved less than this each (their first 64 pages)
/// is given again to the next socket of the process that closed it, and
/// each side keeps it mapped meanwhile: a short connection then costs no
/// memfd, mapping, page faults or unmapping. Past it, the pages it holds
/// are worth more than that, and the region goes.
#define NS_REGION_REUSE_LIMIT (256u << 10)

/// Whether a closed socket's region is worth keeping for the process's next
/// socket. Read from the header, which the application writes: a lie only
/// keeps more pages, and each side keeps few regions.
static inline bool ns_region_reusable(ns_socket_shm *s) {
    return ns_ring_tail(&s->tx) < NS_REGION_REUSE_LIMIT && ns_ring_tail(&s->rx) < NS_REGION_REUSE_LIMIT;
}

/// Lays out a region given again: the header as new, the rings' old bytes
/// (the same process's) left where they lie.
static inline void ns_region_reset(void *region, uint32_t ring_size) {
    memset(region, 0, NS_SHM_HEADER_SIZE);
    ns_region_init(region, ring_size);
}

/// Atomic exchange on a flag word (Swift does not import C11 atomics' generics).
static inline uint32_t ns_flag_take(_Atomic uint32_t *flag) { return atomic_exchange(flag, 0); }
static inline void ns_flag_set(_Atomic uint32_t *flag) { atomic_store(flag, 1); }
/// The flags by name, for Swift (which sees no fields of atomic type).
static inline _Atomic uint32_t *ns_stack_wants_tx(ns_socket_shm *s) { return &s->stack_wants_tx; }
static inline _Atomic uint32_t *ns_stack_wants_rx_room(ns_socket_shm *s) { return &s->stack_wants_rx_room; }
static inline _Atomic uint32_t *ns_app_wants_write(ns_socket_shm *s) { return &s->app_wants_write; }
static inline _Atomic uint32_t *ns_app_wants_read(ns_socket_shm *s) { return &s->app_wants_read; }
static inline uint32_t ns_write_wake_room(ns_socket_shm *s) { return atomic_load(&s->write_wake_room); }
static inline void ns_set_write_wake_room(ns_socket_shm *s, uint32_t n) { atomic_store(&s->write_wake_room, n); }
static inline void ns_state_add(ns_socket_shm *s, uint32_t bits) { atomic_fetch_or(&s->state, bits); }
static inline void ns_state_remove(ns_socket_shm *s, uint32_t bits) { atomic_fetch_and(&s->state, ~bits); }
static inline uint32_t ns_state(ns_socket_shm *s) { return atomic_load(&s->state); }
static inline void ns_set_error(ns_socket_shm *s, int32_t e) { atomic_store(&s->error, e); }
static inline int32_t ns_take_error(ns_socket_shm *s) { return atomic_exchange(&s->error, 0); }
static inline int32_t ns_peek_error(ns_socket_shm *s) { return atomic_load(&s->error); }
static inline void ns_set_pending(ns_socket_shm *s, uint32_t n) { atomic_store(&s->pending, n); }
static inline uint32_t ns_pending(ns_socket_shm *s) { return atomic_load(&s->pending); }
static inline void ns_add_arrival(ns_socket_shm *s) { atomic_fetch_add(&s->arrivals, 1); }

/// An urgent mark's parts (`urgent_mark`, `urgent_sent`): its count and its ring index.
static inline uint64_t ns_urgent_pack(uint32_t count, uint32_t index) { return (uint64_t)count << 32 | index; }
static inline uint32_t ns_urgent_count(uint64_t mark) { return (uint32_t)(mark >> 32); }
static inline uint32_t ns_urgent_index(uint64_t mark) { return (uint32_t)mark; }
static inline void ns_set_urgent_mark(ns_socket_shm *s, uint64_t mark) { atomic_store(&s->urgent_mark, mark); }
static inline uint64_t ns_urgent_mark(ns_socket_shm *s) { return atomic_load(&s->urgent_mark); }
static inline void ns_set_urgent_hole(ns_socket_shm *s, uint64_t mark) { atomic_store(&s->urgent_hole, mark); }
static inline uint64_t ns_urgent_hole(ns_socket_shm *s) { return atomic_load(&s->urgent_hole); }
static inline void ns_set_urgent_sent(ns_socket_shm *s, uint64_t mark) { atomic_store(&s->urgent_sent, mark); }
static inline uint64_t ns_urgent_sent(ns_socket_shm *s) { return atomic_load(&s->urgent_sent); }
static inline void ns_set_app_async(ns_socket_shm *s, bool on) { atomic_store(&s->app_async, on ? 1 : 0); }
static inline bool ns_app_async(ns_socket_shm *s) { return atomic_load_explicit(&s->app_async, memory_order_relaxed) != 0; }
static inline uint32_t ns_arrivals(ns_socket_shm *s) { return atomic_load(&s->arrivals); }

/// The stack publishes `f` (a sequence lock: the count is odd while it writes).
static inline void ns_tcp_publish(ns_socket_shm *s, const ns_tcp_fields *f) {
    uint32_t q = atomic_load_explicit(&s->tcp_sequence, memory_order_relaxed);
    atomic_store_explicit(&s->tcp_sequence, q + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    memcpy((void *)&s->tcp, f, sizeof *f);
    atomic_store_explicit(&s->tcp_sequence, q + 2, memory_order_release);
}

/// The app reads a consistent copy; false if none came in 1000 tries (a
/// stack that died mid-write), the copy then being whatever it last read.
static inline bool ns_tcp_read(ns_socket_shm *s, ns_tcp_fields *out) {
    for (int i = 0; i < 1000; i++) {
        uint32_t a = atomic_load_explicit(&s->tcp_sequence, memory_order_acquire);
        if (a & 1) continue;
        memcpy(out, (const void *)&s->tcp, sizeof *out);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&s->tcp_sequence, memory_order_relaxed) == a) return true;
    }
    return false;
}

// MARK: Control messages (over the UNIX stream socket, fixed size, host order)

/// NS_OP_SOCKET's arg1: a byte stream (TCP) or datagrams (UDP).
enum { NS_SOCKET_STREAM = 0, NS_SOCKET_DATAGRAM = 2 };
/// NS_OP_BIND's arg0: the socket's SO_REUSEADDR and SO_REUSEPORT, which
/// decide whether the port may be shared, and IPV6_V6ONLY, which keeps IPv4 out.
enum { NS_BIND_REUSE_ADDRESS = 1, NS_BIND_REUSE_PORT = 2, NS_BIND_IPV6_ONLY = 4 };
/// NS_OP_SHUTDOWN's arg1: the application knows the answer (its stream
/// socket is connected: 0) and does not wait for one, so none is sent.
enum { NS_NO_REPLY = 1 };
/// NS_OP_CLOSE's arg1: answer once the socket is gone. A datagram socket's
/// or a listener's close waits for it, so that when close(2) returns its
/// port is free and another socket on it takes what comes next, as on
/// Linux (a posted close could be overtaken by the application's next
/// datagram, which rings a doorbell and not the channel).
enum { NS_CLOSE_REPLY = 1 };

enum ns_op {
    NS_OP_SOCKET = 1,   // arg0 = family (4 or 6), arg1 = NS_SOCKET_*: reply carries memfd, app eventfd, doorbell eventfd
    NS_OP_BIND = 2,     // addr, arg0 = NS_BIND_* flags; reply.local has the port (chosen if 0)
    NS_OP_LISTEN = 3,   // arg0 = listen(2)'s backlog, as given (negative: somaxconn)
    NS_OP_CONNECT = 4,  // addr; always answered at once (EINPROGRESS, or an error)
    NS_OP_ACCEPT = 5,   // reply as NS_OP_SOCKET's, or EAGAIN
    NS_OP_SHUTDOWN = 6, // arg0 = SHUT_RD/WR/RDWR, arg1 = NS_NO_REPLY or 0
    NS_OP_CLOSE = 7,    // arg1 = NS_CLOSE_REPLY (answered) or 0 (no reply)
    NS_OP_SETSOCKOPT = 8, // arg0 = level, arg1 = name, value
    NS_OP_FORK_PREPARE = 9, // the process is about to fork: result = a token its child claims
    NS_OP_FORK_CLAIM = 10,  // arg0 = the token: the parent's sockets become this session's too
    NS_OP_REGION = 11,      // the reply carries the socket's memfd and doorbell again (a new image maps it anew)
    NS_OP_SPAWN_HOLD = 12,  // arg0 = a token (0: a new one): a pending hold on the socket for a spawned child
                            // (posix_spawn, a vfork child's exec) or a process it is passed to (SCM_RIGHTS),
                            // from any session; result = the token
    NS_OP_CLAIM_PASSED = 13, // value = the kernel's id of the app eventfd passed with SCM_RIGHTS: the pending hold
                             // on its socket becomes this session's; reply as NS_OP_REGION's, with the socket's id
};

/// An address without the kernel's sockaddr: family 4 or 6 (0 none), port in host order.
typedef struct ns_addr {
    uint16_t family;
    uint16_t port;
    uint8_t bytes[16];  // IPv4 in the first 4, network order
} ns_addr;

typedef struct ns_request {
    uint32_t op;
    uint32_t socket;  // the stack's id of the socket (0 for NS_OP_SOCKET)
    int32_t arg0;
    int32_t arg1;
    int64_t value;
    ns_addr addr;
    uint8_t reserved[20];
} ns_request;  // 64 bytes

typedef struct ns_reply {
    int32_t result;   // >= 0, or -errno
    /// The new socket's id (SOCKET, ACCEPT). An ACCEPT answered with 0 took a
    /// connection from the kernel's loopback (the stack's listener on the
    /// wildcard listens there too): its one descriptor is a kernel socket.
    uint32_t socket;
    uint32_t ring_size; // each ring's size (SOCKET, ACCEPT)
    /// The region's number (SOCKET, ACCEPT): the same as a socket this
    /// process closed when the stack gives its region again (`ns_region_reusable`),
    /// which the library may have kept mapped.
    uint32_t region_serial;
    ns_addr local;
    ns_addr peer;
    uint8_t reserved[8];
} ns_reply;  // 64 bytes

_Static_assert(sizeof(ns_request) == 64, "ns_request is 64 bytes");
_Static_assert(sizeof(ns_reply) == 64, "ns_reply is 64 bytes");
_Static_assert(sizeof(ns_socket_shm) <= NS_SHM_HEADER_SIZE, "the header fits its page");

#endif
