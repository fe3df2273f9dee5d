// getsockopt and setsockopt on stack sockets. The library keeps every value
// and answers getsockopt from it (as Linux reports them: booleans as 1, the
// buffer sizes doubled within the system's limits); the options that act on
// the connection go to the stack too (TCP_NODELAY, SO_KEEPALIVE and
// TCP_KEEPIDLE/INTVL/CNT, SO_LINGER, and the kept ones it acts on: TCP_CORK,
// TCP_MAXSEG, TCP_USER_TIMEOUT, IP_TTL, IP_TOS and IPv6's two). TCP_INFO, TCP_MAXSEG and
// TCP_CONGESTION are read from the fields the stack publishes, and IP_MTU's
// path MTU too. The library binds to a device itself (SO_BINDTODEVICE: the
// stack's interface or none). Options that are harmless to ignore are kept
// and read back (kept_options.c); the rest get ENOPROTOOPT, or EOPNOTSUPP
// from getsockopt at another protocol's level.
#include "preload_internal.h"
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <limits.h>
#include <net/if.h>
#include <string.h>
#include <unistd.h>

static int fail(int e) {
    errno = e;
    return -1;
}

static int put_int(void *value, socklen_t *len, int v) {
    // As Linux's sock_getsockopt and do_tcp_getsockopt: cut to the length
    // asked (even none), which the caller learns.
    if (!len) return fail(EFAULT);
    if ((int)*len < 0) return fail(EINVAL);
    socklen_t n = *len < sizeof v ? *len : sizeof v;
    if (n > 0 && !value) return fail(EFAULT);
    memcpy(value, &v, n);
    *len = n;
    return 0;
}

/// An IP option's integer: as put_int, but a length short of an int takes
/// a value of 0-255 as one byte (do_ip_getsockopt's unsigned char).
static int put_ip_int(void *value, socklen_t *len, int v) {
    if (len && *len > 0 && *len < sizeof(int) && v >= 0 && v <= 255) {
        if (!value) return fail(EFAULT);
        *(unsigned char *)value = (unsigned char)v;
        *len = 1;
        return 0;
    }
    return put_int(value, len, v);
}

/// A structure's value, as Linux gives one: at most the length asked for,
/// and the caller learns the length given.
static int put_bytes(void *value, socklen_t *len, const void *bytes, size_t size) {
    if (!value || !len) return fail(EFAULT);
    size_t n = *len < size ? *len : size;
    memcpy(value, bytes, n);
    *len = (socklen_t)n;
    return 0;
}

/// SO_RCVTIMEO's or SO_SNDTIMEO's field of `s` (either ABI's number:
/// the _NEW ones are the same timeval where time_t has 64 bits), or NULL.
static struct timeval *timeout_option(ns_sock *s, int name) {
    switch (name) {
    case SO_RCVTIMEO_OLD: case SO_RCVTIMEO_NEW: return &s->options.receive_timeout;
    case SO_SNDTIMEO_OLD: case SO_SNDTIMEO_NEW: return &s->options.send_timeout;
    }
    return NULL;
}

/// What getsockopt reports after SO_RCVBUF or SO_SNDBUF (Linux's sock_setsockopt):
/// the value capped at the limit, doubled for the kernel's bookkeeping, at
/// least the minimum. The _FORCE options (`limit_path` NULL) are root's, and
/// not capped by the system's limit: a negative value is 0.
static int doubled_buffer(int v, const char *limit_path, int minimum) {
    // net.core.rmem_max or wmem_max (Linux's default if unreadable).
    unsigned u = limit_path ? (unsigned)v : v < 0 ? 0 : (unsigned)v;
    unsigned limit = limit_path ? (unsigned)ns_sysctl_int(limit_path, 212992) : INT_MAX / 2;
    if (u > limit) u = limit;
    return (int)u * 2 > minimum ? (int)u * 2 : minimum;
}

/// SO_BINDTODEVICE's name (Linux's sock_getbindtodevice): empty when bound
/// to none, else the device's name with its NUL, given only to a buffer of IFNAMSIZ.
static int get_bound_device(const ns_sock *s, void *value, socklen_t *len) {
    if (!len) return fail(EFAULT);
    if (s->options.bound_device == 0) {
        *len = 0;
        return 0;
    }
    char name[IF_NAMESIZE] = {0};
    if (*len < IF_NAMESIZE) return fail(EINVAL);
    if (!if_indextoname((unsigned)s->options.bound_device, name)) return fail(ENODEV);
    return put_bytes(value, len, name, strlen(name) + 1);
}

/// Binds `s` to device `index` (0: none), as Linux's sock_bindtoindex: the
/// stack sends on its own interface only, so another device is ENODEV (no
/// such device for it). Moving a bound socket needs root (CAP_NET_RAW).
static int bind_to_device(ns_sock *s, int index) {
    if (index < 0) return fail(EINVAL);
    if (index != 0 && (uint32_t)index != s->shm->interface.index) return fail(ENODEV);
    if (s->options.bound_device != 0 && geteuid() != 0) return fail(EPERM);
    s->options.bound_device = index;
    return 0;
}

/// SO_BINDTODEVICE: a name of at most IFNAMSIZ - 1 bytes (longer is cut);
/// empty, or no bytes, unbinds.
static int bind_to_named_device(ns_sock *s, const void *value, socklen_t len) {
    char name[IF_NAMESIZE] = {0};
    size_t n = len < IF_NAMESIZE - 1 ? len : IF_NAMESIZE - 1;
    if (n > 0 && !value) return fail(EFAULT);
    if (n > 0) memcpy(name, value, n);
    if (name[0] == '\0') return bind_to_device(s, 0);
    unsigned index = if_nametoindex(name);
    if (index == 0) return fail(ENODEV);
    return bind_to_device(s, (int)index);
}

NS_EXPORT int getsockopt(int fd, int level, int name, void *value, socklen_t *len) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(getsockopt)(fd, level, name, value, len);
    struct timeval *timeout = level == SOL_SOCKET ? timeout_option(s, name) : NULL;
    if (timeout) {
        // What was set (Linux gives it back rounded up to its clock's tick); a negative time reads as none.
        struct timeval t = timeout->tv_sec < 0 ? (struct timeval){0, 0} : *timeout;
        return put_bytes(value, len, &t, sizeof t);
    }
    if (level == SOL_SOCKET) {
        switch (name) {
        case SO_ERROR: return put_int(value, len, ns_take_error(s->shm));
        case SO_TYPE: return put_int(value, len, s->datagram ? SOCK_DGRAM : SOCK_STREAM);
        case SO_DOMAIN: return put_int(value, len, s->family);
        case SO_PROTOCOL: return put_int(value, len, s->datagram ? IPPROTO_UDP : IPPROTO_TCP);
        case SO_ACCEPTCONN: return put_int(value, len, s->listening);
        case SO_REUSEADDR: return put_int(value, len, s->options.reuse_address);
        case SO_REUSEPORT: return put_int(value, len, s->options.reuse_port);
        case SO_KEEPALIVE: return put_int(value, len, s->options.keepalive);
        case SO_RCVBUF: return put_int(value, len, s->options.receive_buffer);
        case SO_SNDBUF: return put_int(value, len, s->options.send_buffer);
        case SO_LINGER: return put_bytes(value, len, &s->options.linger, sizeof s->options.linger);  // cut to the length asked, as Linux
        case SO_SNDLOWAT: return put_int(value, len, 1);  // fixed on Linux
        case SO_PASSCRED: return fail(EOPNOTSUPP);   // only UNIX and netlink sockets pass credentials
        case SO_PEERCRED: {                          // nobody's, as Linux answers for an inet socket
            struct ucred none = {.pid = 0, .uid = (uid_t)-1, .gid = (gid_t)-1};
            return put_bytes(value, len, &none, sizeof none);
        }
        case SO_BINDTODEVICE: return get_bound_device(s, value, len);
        case SO_BINDTOIFINDEX: return put_int(value, len, s->options.bound_device);
        }
    } else if (level == IPPROTO_UDP && s->datagram && name == UDP_CORK) {
        return put_int(value, len, s->udp_cork);
    } else if (level == IPPROTO_TCP && !s->datagram) {
        ns_tcp_fields f;
        ns_tcp_read(s->shm, &f);
        switch (name) {
        case TCP_NODELAY: return put_int(value, len, s->options.no_delay);
        case TCP_KEEPIDLE: return put_int(value, len, s->options.keepalive_idle);
        case TCP_KEEPINTVL: return put_int(value, len, s->options.keepalive_interval);
        case TCP_KEEPCNT: return put_int(value, len, s->options.keepalive_probes);
        case TCP_MAXSEG: {
            // Before the connection knows its MSS: what was set, else Linux's TCP_MSS_DEFAULT.
            int asked = 0;
            ns_kept_get(s, level, name, &asked);
            return put_int(value, len, f.mss ? (int)f.mss : asked ? asked : 536);
        }
        case TCP_CONGESTION: {
            // As Linux: up to TCP_CA_NAME_MAX (16) bytes of the name, NUL-padded.
            return put_bytes(value, len, f.congestion, sizeof f.congestion);
        }
        case TCP_INFO: {
            // Never fewer received than this process read and can read now (Linux's invariant).
            uint64_t floor = atomic_load_explicit(&s->bytes_taken, memory_order_relaxed)
                + ns_ring_readable(&s->shm->rx);
            if (f.bytes_received < floor) f.bytes_received = floor;
            return ns_put_tcp_info(&f, s->listening, ns_unsent_bytes(s, &f), value, len);
        }
        }
    }
    if ((level == IPPROTO_IP && name == IP_MTU) || (level == IPPROTO_IPV6 && name == IPV6_MTU && s->family == AF_INET6)) {
        // The path MTU of a connection or a connected datagram socket (Linux:
        // its route's); ENOTCONN without one.
        ns_tcp_fields f;
        ns_tcp_read(s->shm, &f);
        return f.pmtu ? put_int(value, len, (int)f.pmtu) : fail(ENOTCONN);
    }
    int kept_value;
    if (s->datagram && level == SOL_SOCKET && ns_timestamp_get(s, name, &kept_value) == 0) {
        return put_int(value, len, kept_value);
    }
    if (ns_kept_get(s, level, name, &kept_value) == 0)
        return level == IPPROTO_IP ? put_ip_int(value, len, kept_value) : put_int(value, len, kept_value);
    // Linux: an option it does not know at one of the socket's own levels is
    // ENOPROTOOPT; another protocol's level (TCP's on UDP, IPv6's on IPv4) is EOPNOTSUPP.
    bool own = level == SOL_SOCKET || level == IPPROTO_IP || (level == IPPROTO_IPV6 && s->family == AF_INET6)
        || level == (s->datagram ? IPPROTO_UDP : IPPROTO_TCP);
    return fail(own ? ENOPROTOOPT : EOPNOTSUPP);
}

/// Passes an option the stack acts on to it (a datagram socket's only at the IP levels; it keeps the rest).
static int tell_stack(ns_sock *s, int level, int name, int64_t value) {
    if (s->datagram && level != IPPROTO_IP && level != IPPROTO_IPV6) return 0;
    ns_reply reply;
    return ns_simple_call(s, NS_OP_SETSOCKOPT, level, name, value, NULL, &reply) < 0 ? -1 : 0;
}

static int stack_setsockopt(ns_sock *s, int level, int name, const void *value, socklen_t len);

NS_EXPORT int setsockopt(int fd, int level, int name, const void *value, socklen_t len) {
    ns_sock *s = ns_lookup(fd);
    if (!s) return LIBC(setsockopt)(fd, level, name, value, len);
    int r = stack_setsockopt(s, level, name, value, len);
    if (r == 0) {
        ns_remember_option(s, level, name, value, len);  // for a kernel socket in its place
        ns_epoll_changed(s);  // SO_RCVLOWAT, SO_SNDBUF, TCP_NOTSENT_LOWAT change what it polls as
    }
    return r;
}

static int stack_setsockopt(ns_sock *s, int level, int name, const void *value, socklen_t len) {
    if (level == IPPROTO_TCP && name == TCP_CONGESTION && !s->datagram) {
        // The stack runs one algorithm per socket (what getsockopt says):
        // naming it is taken, any other is not available here, which Linux
        // says with ENOENT (tcp_set_congestion_control).
        if (len < 1) return fail(EINVAL);
        if (!value) return fail(EFAULT);
        ns_tcp_fields f;
        ns_tcp_read(s->shm, &f);
        // Both NUL-padded to TCP_CA_NAME_MAX, the published one's size.
        char asked[sizeof f.congestion + 1] = {0}, in_use[sizeof f.congestion + 1] = {0};
        memcpy(asked, value, len < sizeof f.congestion ? len : sizeof f.congestion);
        memcpy(in_use, f.congestion, sizeof f.congestion);
        return strcmp(asked, in_use) == 0 ? 0 : fail(ENOENT);
    }
    if (level == SOL_SOCKET && name == SO_LINGER) {
        struct linger l;
        if (len < sizeof l) return fail(EINVAL);
        if (!value) return fail(EFAULT);
        memcpy(&l, value, sizeof l);
        // As Linux: off keeps the time set before; on with 0 seconds makes close reset.
        if (tell_stack(s, level, name, l.l_onoff ? (l.l_linger < 0 ? 0 : l.l_linger) : -1) < 0) return -1;
        s->options.linger.l_onoff = l.l_onoff != 0;
        if (l.l_onoff) s->options.linger.l_linger = l.l_linger;
        return 0;
    }
    if (level == SOL_SOCKET && name == SO_BINDTODEVICE) return bind_to_named_device(s, value, len);
    struct timeval *timeout = level == SOL_SOCKET ? timeout_option(s, name) : NULL;
    if (timeout) {
        // Linux's sock_set_timeout: a malformed time is EDOM, a negative one gives up at once.
        struct timeval t;
        if (len < sizeof t) return fail(EINVAL);
        if (!value) return fail(EFAULT);
        memcpy(&t, value, sizeof t);
        if (t.tv_usec < 0 || t.tv_usec >= 1000000) return fail(EDOM);
        *timeout = t;
        return 0;
    }
    int v = 0;
    if (len < sizeof(int)) return fail(EINVAL);  // sock_setsockopt: the length first, then the copy
    if (!value) return fail(EFAULT);
    memcpy(&v, value, sizeof v);
    if (level == SOL_SOCKET) {
        switch (name) {
        case SO_REUSEADDR: s->options.reuse_address = v != 0; return 0;
        case SO_REUSEPORT: s->options.reuse_port = v != 0; return 0;
        case SO_KEEPALIVE:
            if (tell_stack(s, level, name, v != 0) < 0) return -1;
            s->options.keepalive = v != 0;
            return 0;
        case SO_BINDTOIFINDEX: return bind_to_device(s, v);
        case SO_PASSCRED: return fail(EOPNOTSUPP);  // only UNIX and netlink sockets pass credentials
        case SO_SNDBUFFORCE:
            if (geteuid() != 0) return fail(EPERM);  // CAP_NET_ADMIN
            s->options.send_buffer = doubled_buffer(v, NULL, 4608);
            return 0;
        case SO_RCVBUFFORCE:
            if (geteuid() != 0) return fail(EPERM);  // CAP_NET_ADMIN
            // fall through: as SO_RCVBUF, past the system's limit
        case SO_RCVBUF: {
            // The stack sizes the connection's buffer and what waits in `rx` by it (datagram sockets too).
            int doubled = doubled_buffer(v, name == SO_RCVBUF ? "/proc/sys/net/core/rmem_max" : NULL, 2304);
            ns_reply reply;
            if (ns_simple_call(s, NS_OP_SETSOCKOPT, level, SO_RCVBUF, doubled / 2, NULL, &reply) < 0) return -1;
            s->options.receive_buffer = doubled;
            return 0;
        }
        case SO_SNDBUF: s->options.send_buffer = doubled_buffer(v, "/proc/sys/net/core/wmem_max", 4608); return 0;  // ns_send_room
        }
    } else if (level == IPPROTO_IPV6 && name == IPV6_MTU && s->family == AF_INET6) {
        // The size to fragment at (0: the path's), at least IPv6's minimum
        // link MTU (RFC 8200 5); the stack fragments at the path MTU.
        return v != 0 && v < 1280 ? fail(EINVAL) : 0;
    } else if (level == IPPROTO_UDP && s->datagram && name == UDP_CORK) {
        return ns_cork_set(s, v);  // off: what was corked goes (udp_push_pending_frames)
    } else if (level == IPPROTO_TCP && !s->datagram) {
        switch (name) {
        case TCP_NODELAY:
            if (tell_stack(s, level, name, v != 0) < 0) return -1;
            s->options.no_delay = v != 0;
            return 0;
        // Linux's bounds: MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL (32767 s), MAX_TCP_KEEPCNT (127).
        case TCP_KEEPIDLE:
        case TCP_KEEPINTVL:
            if (v < 1 || v > 32767) return fail(EINVAL);
            if (tell_stack(s, level, name, v) < 0) return -1;
            *(name == TCP_KEEPIDLE ? &s->options.keepalive_idle : &s->options.keepalive_interval) = v;
            return 0;
        case TCP_KEEPCNT:
            if (v < 1 || v > 127) return fail(EINVAL);
            if (tell_stack(s, level, name, v) < 0) return -1;
            s->options.keepalive_probes = v;
            return 0;
        }
    }
    if (s->datagram && level == SOL_SOCKET) {
        int stamped = ns_timestamp_set(s, name, v);  // SO_TIMESTAMP and its kin
        if (stamped != 1) return stamped;
    }
    int kept = ns_kept_set(s, level, name, v);
    if (kept != 0) return kept < 0 ? -1 : fail(ENOPROTOOPT);
    int stored;
    return ns_kept_acts(s, level, name, &stored) ? tell_stack(s, level, name, stored) : 0;
}
