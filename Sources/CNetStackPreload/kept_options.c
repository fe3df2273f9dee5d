// Options kept so that getsockopt gives back what setsockopt stored, with
// Linux's defaults and its rules for each value (net/core/sock.c,
// net/ipv4/ip_sockglue.c, net/ipv4/tcp.c, net/ipv6/ipv6_sockglue.c):
// programs set them and read them back (event loops read SO_BROADCAST,
// servers TCP_DEFER_ACCEPT), and one that reads a default it never set should
// see the kernel's, not ENOPROTOOPT. Most are harmless to ignore; the stack
// acts on those marked so (the cork, the MSS cap, the user timeout, the IP
// header's hop limit and DS field), which setsockopt passes on as stored,
// and the library itself on SO_RCVLOWAT (`ns_receive_lowat`),
// SO_BUSY_POLL (`ns_busy_poll_ns`: a blocking receive spins that long),
// TCP_NOTSENT_LOWAT (`ns_notsent_lowat`: writes and POLLOUT wait for the
// unsent bytes to drain) and SO_PEEK_OFF (`ns_peek_offset`: where a peek
// starts, moved by each peek and read).
#include "preload_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <unistd.h>

// The one IPv6 number glibc's <netinet/in.h> does not name (linux/in6.h).
#ifndef IPV6_FLOWINFO_SEND
#define IPV6_FLOWINFO_SEND 33
#endif

/// How a value is checked and stored (Linux's rule for the option).
enum rule {
    BOOLEAN,        // any int; stored as 0 or 1
    ADMIN_BOOLEAN,  // a boolean that only root may turn on: EACCES (SO_DEBUG: CAP_NET_ADMIN)
    UNTIL_BIND,     // a boolean that bind fixes: EINVAL after it (IPV6_V6ONLY: the socket's families)
    ANY,            // any int, stored as given
    NONNEGATIVE,    // EINVAL below 0
    PRIVILEGED,     // EPERM without root (SO_MARK: CAP_NET_ADMIN)
    PRIORITY,       // 0-6 for anyone, the rest for root (SO_PRIORITY)
    RECEIVE_LOWAT,  // 0 means 1, below 0 the most (SO_RCVLOWAT)
    DEFER_ACCEPT,   // seconds, kept as the retransmissions that cover them
    SYN_COUNT,      // 1-127 (MAX_TCP_SYNCNT)
    LINGER2,        // below 0: -1 (no FIN-WAIT-2 time); above 120 s: 120
    MAXSEG,         // 0 or 88-32767 (TCP_MIN_MSS to MAX_TCP_WINDOW)
    TOS,            // a stream socket keeps its ECN bits
    HOPS,           // -1 (the system's default) or 1-255 (IP_TTL)
    HOPS_OR_ZERO,   // -1 or 0-255 (IPV6_UNICAST_HOPS)
    MULTICAST_TTL,  // -1 means 1; 0-255; EINVAL on a stream socket
    MULTICAST_HOPS, // -1 means 1; 0-255; ENOPROTOOPT on a stream socket (IPV6_MULTICAST_HOPS)
    TRAFFIC_CLASS,  // -1 means 0; 0-255 (IPV6_TCLASS); a stream socket keeps its ECN bits
    MTU_DISCOVER,   // IP_PMTUDISC_DONT (0) to IP_PMTUDISC_OMIT (5)
    ZERO_OR_ONE,    // EINVAL for anything else (TCP_THIN_LINEAR_TIMEOUTS)
    BEFORE_CONNECT, // 0 or 1 while unconnected; EOPNOTSUPP unless the sysctl lets clients (TCP_FASTOPEN_CONNECT)
    READ_ONLY,      // read, never set here: ENOPROTOOPT (SO_INCOMING_NAPI_ID; IP_NODEFRAG, a raw socket's)
};

/// The entries the library reads on its own paths, at fixed places.
enum { KEPT_RCVLOWAT = 3, KEPT_BUSY_POLL = 6, KEPT_INQ = 7, KEPT_NOTSENT_LOWAT = 18,
       KEPT_ARRIVAL = NS_KEPT_OPTIONS - NS_ARRIVAL_OPTIONS, KEPT_PEEK_OFF = KEPT_ARRIVAL - 1 };

/// What a stored -1 (or, for TCP_LINGER2, 0) reads as: a system setting.
enum system_default { NONE, DEFAULT_TTL, DEFAULT_HOPS, FIN_TIMEOUT, SYN_RETRIES };

static const struct kept {
    int level, name;
    enum rule rule;
    int initial;
    enum system_default system;
    bool stack_acts;  // setsockopt passes the stored value to the stack
} kept[NS_KEPT_OPTIONS] = {
    {SOL_SOCKET, SO_BROADCAST, BOOLEAN, 0, NONE},
    {SOL_SOCKET, SO_OOBINLINE, BOOLEAN, 0, NONE},
    {SOL_SOCKET, SO_DONTROUTE, BOOLEAN, 0, NONE},
    [KEPT_RCVLOWAT] = {SOL_SOCKET, SO_RCVLOWAT, RECEIVE_LOWAT, 1, NONE},
    {SOL_SOCKET, SO_PRIORITY, PRIORITY, 0, NONE},
    {SOL_SOCKET, SO_MARK, PRIVILEGED, 0, NONE},
    [KEPT_BUSY_POLL] = {SOL_SOCKET, SO_BUSY_POLL, NONNEGATIVE, 0, NONE},
    [KEPT_INQ] = {IPPROTO_TCP, TCP_INQ, ZERO_OR_ONE, 0, NONE},  // recvmsg's TCP_CM_INQ (stream_cmsg.c)
    {SOL_SOCKET, SO_INCOMING_CPU, ANY, -1, NONE},
    {SOL_SOCKET, SO_MAX_PACING_RATE, ANY, -1, NONE},  // ~0: no limit, as a 32-bit read gives it
    {SOL_SOCKET, SO_RXQ_OVFL, BOOLEAN, 0, NONE},       // its cmsg comes only after drops: none here
    {IPPROTO_TCP, TCP_CORK, BOOLEAN, 0, NONE, true},
    {IPPROTO_TCP, TCP_QUICKACK, BOOLEAN, 1, NONE},
    {IPPROTO_TCP, TCP_USER_TIMEOUT, NONNEGATIVE, 0, NONE, true},
    {IPPROTO_TCP, TCP_DEFER_ACCEPT, DEFER_ACCEPT, 0, NONE},
    {IPPROTO_TCP, TCP_SYNCNT, SYN_COUNT, 0, SYN_RETRIES},
    {IPPROTO_TCP, TCP_LINGER2, LINGER2, 0, FIN_TIMEOUT},
    {IPPROTO_TCP, TCP_FASTOPEN, NONNEGATIVE, 0, NONE},
    [KEPT_NOTSENT_LOWAT] = {IPPROTO_TCP, TCP_NOTSENT_LOWAT, ANY, 0, NONE},  // ns_notsent_lowat
    {IPPROTO_TCP, TCP_MAXSEG, MAXSEG, 0, NONE, true},
    {IPPROTO_TCP, TCP_FASTOPEN_CONNECT, BEFORE_CONNECT, 0, NONE},  // connect then handshakes first, as without a cookie
    {IPPROTO_TCP, TCP_THIN_LINEAR_TIMEOUTS, ZERO_OR_ONE, 0, NONE},
    {IPPROTO_IP, IP_TOS, TOS, 0, NONE, true},
    {IPPROTO_IP, IP_TTL, HOPS, -1, DEFAULT_TTL, true},
    {IPPROTO_IP, IP_MULTICAST_TTL, MULTICAST_TTL, 1, NONE},
    {IPPROTO_IP, IP_RECVERR, BOOLEAN, 0, NONE},
    {IPPROTO_IP, IP_MTU_DISCOVER, MTU_DISCOVER, IP_PMTUDISC_WANT, NONE},
    {IPPROTO_IP, IP_FREEBIND, BOOLEAN, 0, NONE},
    {IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, BOOLEAN, 0, NONE},  // bind takes the port at once either way
    {IPPROTO_IPV6, IPV6_V6ONLY, UNTIL_BIND, 0, NONE},
    {IPPROTO_IPV6, IPV6_TCLASS, TRAFFIC_CLASS, 0, NONE, true},
    {IPPROTO_IPV6, IPV6_UNICAST_HOPS, HOPS_OR_ZERO, -1, DEFAULT_HOPS, true},
    {IPPROTO_IPV6, IPV6_RECVERR, BOOLEAN, 0, NONE},
    {SOL_SOCKET, SO_DEBUG, ADMIN_BOOLEAN, 0, NONE},
    {IPPROTO_IP, IP_MULTICAST_LOOP, BOOLEAN, 1, NONE},
    {IPPROTO_IPV6, IPV6_MULTICAST_LOOP, ZERO_OR_ONE, 1, NONE},
    {IPPROTO_IPV6, IPV6_MULTICAST_HOPS, MULTICAST_HOPS, 1, NONE},
    {IPPROTO_IPV6, IPV6_MTU_DISCOVER, MTU_DISCOVER, IP_PMTUDISC_WANT, NONE},
    {IPPROTO_IPV6, IPV6_DONTFRAG, BOOLEAN, 0, NONE},
    {IPPROTO_IPV6, IPV6_AUTOFLOWLABEL, BOOLEAN, 1, NONE},
    {IPPROTO_IPV6, IPV6_FREEBIND, BOOLEAN, 0, NONE},
    {IPPROTO_IPV6, IPV6_FLOWINFO_SEND, BOOLEAN, 0, NONE},
    {IPPROTO_IPV6, IPV6_RECVFRAGSIZE, BOOLEAN, 0, NONE},
    {SOL_SOCKET, SO_INCOMING_NAPI_ID, READ_ONLY, 0, NONE},  // no NAPI instance takes the stack's packets
    {SOL_SOCKET, SO_SELECT_ERR_QUEUE, BOOLEAN, 0, NONE},    // there is no error queue to report
    {SOL_SOCKET, SO_NOFCS, BOOLEAN, 0, NONE},               // a packet socket's, kept by any
    {IPPROTO_IP, IP_NODEFRAG, READ_ONLY, 0, NONE},
    // Any value, as sk_set_peek_off takes it; below 0, peeks start at the first byte.
    [KEPT_PEEK_OFF] = {SOL_SOCKET, SO_PEEK_OFF, ANY, -1, NONE},
    // Those asking recvmsg for a datagram's control messages (datagram_cmsg.c), at fixed places.
    [KEPT_ARRIVAL + NS_ARRIVAL_PKTINFO] = {IPPROTO_IP, IP_PKTINFO, BOOLEAN, 0, NONE},
    [KEPT_ARRIVAL + NS_ARRIVAL_TTL] = {IPPROTO_IP, IP_RECVTTL, BOOLEAN, 0, NONE},
    [KEPT_ARRIVAL + NS_ARRIVAL_TOS] = {IPPROTO_IP, IP_RECVTOS, BOOLEAN, 0, NONE},
    [KEPT_ARRIVAL + NS_ARRIVAL_ORIGDSTADDR] = {IPPROTO_IP, IP_RECVORIGDSTADDR, BOOLEAN, 0, NONE},
    [KEPT_ARRIVAL + NS_ARRIVAL6_PKTINFO] = {IPPROTO_IPV6, IPV6_RECVPKTINFO, BOOLEAN, 0, NONE},
    [KEPT_ARRIVAL + NS_ARRIVAL6_HOPLIMIT] = {IPPROTO_IPV6, IPV6_RECVHOPLIMIT, BOOLEAN, 0, NONE},
    [KEPT_ARRIVAL + NS_ARRIVAL6_TCLASS] = {IPPROTO_IPV6, IPV6_RECVTCLASS, BOOLEAN, 0, NONE},
    [KEPT_ARRIVAL + NS_ARRIVAL6_ORIGDSTADDR] = {IPPROTO_IPV6, IPV6_RECVORIGDSTADDR, BOOLEAN, 0, NONE},
};

/// The entry for (level, name) that applies to `s`, or -1: TCP's only to a
/// stream socket, IPv6's only to an AF_INET6 one.
static int find(const ns_sock *s, int level, int name) {
    if ((level == IPPROTO_TCP && s->datagram) || (level == IPPROTO_IPV6 && s->family != AF_INET6)) return -1;
    for (int i = 0; i < NS_KEPT_OPTIONS; i++) {
        if (kept[i].level == level && kept[i].name == name) return i;
    }
    return -1;
}

void ns_kept_init(ns_sock *s) {
    for (int i = 0; i < NS_KEPT_OPTIONS; i++) s->options.kept[i] = kept[i].initial;
}

/// Up to three integers of a /proc/sys file into `values`, which keep what they held for any it lacks.
static void sysctl_ints(const char *path, int values[3]) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    char text[64] = {0};
    if (LIBC(read)(fd, text, sizeof text - 1) > 0) sscanf(text, "%d %d %d", &values[0], &values[1], &values[2]);
    LIBC(close)(fd);
}

int ns_sysctl_int(const char *path, int fallback) {
    int v[3] = {fallback, 0, 0};
    sysctl_ints(path, v);
    return v[0];
}

bool ns_fast_open_client(void) { return ns_sysctl_int("/proc/sys/net/ipv4/tcp_fastopen", 1) & 1; }

/// Linux's secs_to_retrans: how many SYN-ACK retransmissions, from 1 s
/// doubling up to 120 s, cover `seconds`; and back (retrans_to_secs).
static int seconds_to_retransmits(int seconds) {
    int n = 0;
    if (seconds > 0) {
        int timeout = 1, period = 1;
        n = 1;
        while (seconds > period && n < 255) {
            n++;
            timeout = timeout * 2 > 120 ? 120 : timeout * 2;
            period += timeout;
        }
    }
    return n;
}

static int retransmits_to_seconds(int n) {
    if (n <= 0) return 0;
    int timeout = 1, period = 1;
    while (--n) {
        timeout = timeout * 2 > 120 ? 120 : timeout * 2;
        period += timeout;
    }
    return period;
}

/// The priority a TOS gives a socket (rt_tos2priority over ip_tos2prio):
/// by its TOS bits, best effort, bulk, interactive or interactive bulk.
static int tos_priority(int tos) {
    static const uint8_t ip_tos2prio[16] = {0, 0, 0, 0, 2, 2, 2, 2, 6, 6, 6, 6, 4, 4, 4, 4};
    return ip_tos2prio[(tos & 0x1e) >> 1];
}

int ns_kept_set(ns_sock *s, int level, int name, int v) {
    int i = find(s, level, name);
    if (i < 0) return 1;
    bool root = geteuid() == 0;
    int *slot = &s->options.kept[i];
    switch (kept[i].rule) {
    case BOOLEAN: v = v != 0; break;
    case ADMIN_BOOLEAN:
        if (v && !root) { errno = EACCES; return -1; }
        v = v != 0;
        break;
    case UNTIL_BIND:
        if (s->has_local) { errno = EINVAL; return -1; }
        v = v != 0;
        break;
    case ANY: break;
    case NONNEGATIVE: if (v < 0) { errno = EINVAL; return -1; } break;
    case PRIVILEGED: if (!root) { errno = EPERM; return -1; } break;
    case PRIORITY: if ((v < 0 || v > 6) && !root) { errno = EPERM; return -1; } break;
    case RECEIVE_LOWAT:
        if (v < 0) v = INT_MAX;
        if (v == 0) v = 1;
        if (!s->datagram) {  // tcp_set_rcvlowat: at most half the largest receive buffer
            int rmem[3] = {4096, 131072, 6291456};
            sysctl_ints("/proc/sys/net/ipv4/tcp_rmem", rmem);
            if (v > rmem[2] >> 1) v = rmem[2] >> 1;
        }
        break;
    case DEFER_ACCEPT: v = seconds_to_retransmits(v); break;
    case SYN_COUNT: if (v < 1 || v > 127) { errno = EINVAL; return -1; } break;
    case LINGER2: v = v < 0 ? -1 : v > 120 ? 120 : v; break;
    case MAXSEG: if (v && (v < 88 || v > 32767)) { errno = EINVAL; return -1; } break;
    case TOS: {
        v = s->datagram ? (uint8_t)v : (uint8_t)((v & ~3) | (*slot & 3));
        int priority = find(s, SOL_SOCKET, SO_PRIORITY);  // __ip_sock_set_tos: a new TOS sets it
        if (v != *slot && priority >= 0) s->options.kept[priority] = tos_priority(v);
        break;
    }
    case HOPS: if (v != -1 && (v < 1 || v > 255)) { errno = EINVAL; return -1; } break;
    case HOPS_OR_ZERO: if (v < -1 || v > 255) { errno = EINVAL; return -1; } break;
    case MULTICAST_TTL:
    case MULTICAST_HOPS:
        if (!s->datagram) { errno = kept[i].rule == MULTICAST_TTL ? EINVAL : ENOPROTOOPT; return -1; }
        if (v == -1) v = 1;
        if (v < 0 || v > 255) { errno = EINVAL; return -1; }
        break;
    case TRAFFIC_CLASS:
        if (v == -1) v = 0;
        if (v < 0 || v > 255) { errno = EINVAL; return -1; }
        if (!s->datagram) v = (v & ~3) | (*slot & 3);
        break;
    case MTU_DISCOVER: if (v < IP_PMTUDISC_DONT || v > IP_PMTUDISC_OMIT) { errno = EINVAL; return -1; } break;
    case ZERO_OR_ONE: if (v < 0 || v > 1) { errno = EINVAL; return -1; } break;
    case READ_ONLY: errno = ENOPROTOOPT; return -1;
    case BEFORE_CONNECT:
        if (v < 0 || v > 1) { errno = EINVAL; return -1; }
        if (!ns_fast_open_client()) { errno = EOPNOTSUPP; return -1; }
        if (s->listening || s->connecting || s->has_peer) { errno = EINVAL; return -1; }
        break;
    }
    *slot = v;
    return 0;
}

uint32_t ns_receive_lowat(const ns_sock *s) {
    return s->datagram ? 1 : (uint32_t)s->options.kept[KEPT_RCVLOWAT];
}

void ns_kept_accepted(ns_sock *s) {
    // SO_PRIORITY comes from the SYN (0 here), and a new connection acks quickly (not in pingpong mode).
    int priority = find(s, SOL_SOCKET, SO_PRIORITY), quick = find(s, IPPROTO_TCP, TCP_QUICKACK);
    if (priority >= 0) s->options.kept[priority] = 0;
    if (quick >= 0) s->options.kept[quick] = 1;
}

uint32_t ns_notsent_lowat(const ns_sock *s) {
    return s->datagram ? 0 : (uint32_t)s->options.kept[KEPT_NOTSENT_LOWAT];  // as Linux's u32: -1 is no limit too
}

bool ns_arrival_asked(const ns_sock *s, enum ns_arrival_option which) { return s->options.kept[KEPT_ARRIVAL + which] != 0; }

bool ns_inq_asked(const ns_sock *s) { return !s->datagram && s->options.kept[KEPT_INQ] != 0; }

int ns_peek_offset(const ns_sock *s) { return s->options.kept[KEPT_PEEK_OFF]; }

void ns_peek_offset_peeked(ns_sock *s, size_t n) {
    int *off = &s->options.kept[KEPT_PEEK_OFF];
    if (*off >= 0) *off = n > (size_t)(INT_MAX - *off) ? INT_MAX : *off + (int)n;
}

void ns_peek_offset_taken(ns_sock *s, size_t n) {
    int *off = &s->options.kept[KEPT_PEEK_OFF];
    if (*off >= 0) *off = n >= (size_t)*off ? 0 : *off - (int)n;
}

long ns_busy_poll_ns(const ns_sock *s) {
    int us = s->options.kept[KEPT_BUSY_POLL];
    return us > 0 ? (us < 1000000 ? us : 1000000) * 1000L : 0;
}

bool ns_kept_acts(const ns_sock *s, int level, int name, int *stored) {
    int i = find(s, level, name);
    if (i < 0 || !kept[i].stack_acts) return false;
    *stored = s->options.kept[i];
    return true;
}

int ns_kept_get(const ns_sock *s, int level, int name, int *value) {
    int i = find(s, level, name);
    if (i < 0) return 1;
    int v = s->options.kept[i];
    switch (kept[i].system) {
    case NONE: break;
    case DEFAULT_TTL: if (v < 0) v = ns_sysctl_int("/proc/sys/net/ipv4/ip_default_ttl", 64); break;
    case DEFAULT_HOPS: if (v < 0) v = ns_sysctl_int("/proc/sys/net/ipv6/conf/default/hop_limit", 64); break;
    case FIN_TIMEOUT: if (v == 0) v = ns_sysctl_int("/proc/sys/net/ipv4/tcp_fin_timeout", 60); break;
    case SYN_RETRIES: if (v == 0) v = ns_sysctl_int("/proc/sys/net/ipv4/tcp_syn_retries", 6); break;
    }
    if (kept[i].rule == DEFER_ACCEPT) v = retransmits_to_seconds(v);
    *value = v;
    return 0;
}
