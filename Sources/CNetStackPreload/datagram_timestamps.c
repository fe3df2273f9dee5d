// A datagram socket's receive timestamps, as Linux's sock_set_timestamp,
// sk_getsockopt, __sock_recv_timestamp and sock_gettstamp: with
// SO_TIMESTAMP each datagram recvmsg returns comes with an SCM_TIMESTAMP
// control message (a timeval), with SO_TIMESTAMPNS an SCM_TIMESTAMPNS one
// (a timespec), and with their _NEW kin the same under the _NEW types (the
// y2038-safe ones, whose layout on a 64-bit machine is the same); SIOCGSTAMP
// and SIOCGSTAMPNS read the last datagram's. The time is the stack's: when
// its loop took the datagram in, on the wall clock (the record's
// `arrival_ns`), where Linux stamps a packet as its device gives it up.
#include "preload_internal.h"
#include <errno.h>
#include <linux/sockios.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/time.h>

int ns_timestamp_get(const ns_sock *s, int name, int *value) {
    bool on = s->timestamps & NS_STAMP_ON, ns = s->timestamps & NS_STAMP_NS, y2038 = s->timestamps & NS_STAMP_NEW;
    switch (name) {
    case SO_TIMESTAMP_OLD: *value = on && !y2038 && !ns; return 0;
    case SO_TIMESTAMPNS_OLD: *value = ns && !y2038; return 0;
    case SO_TIMESTAMP_NEW: *value = on && y2038; return 0;
    case SO_TIMESTAMPNS_NEW: *value = ns && y2038; return 0;
    }
    return 1;
}

int ns_timestamp_set(ns_sock *s, int name, int value) {
    bool ns, y2038;
    switch (name) {
    case SO_TIMESTAMP_OLD: ns = false, y2038 = false; break;
    case SO_TIMESTAMPNS_OLD: ns = true, y2038 = false; break;
    case SO_TIMESTAMP_NEW: ns = false, y2038 = true; break;
    case SO_TIMESTAMPNS_NEW: ns = true, y2038 = true; break;
    default: return 1;
    }
    // Any of them off turns all off, as Linux's __sock_set_timestamps(sk, false, false, false).
    s->timestamps = !value ? 0 : NS_STAMP_ON | (ns ? NS_STAMP_NS : 0) | (y2038 ? NS_STAMP_NEW : 0);
    return 0;
}

/// `at` (nanoseconds on the wall clock) into `out` as a timespec, or as a
/// timeval unless `nanoseconds`; the length written.
static size_t put_time(int64_t at, bool nanoseconds, void *out) {
    if (nanoseconds) {
        struct timespec t = {.tv_sec = at / 1000000000, .tv_nsec = at % 1000000000};
        memcpy(out, &t, sizeof t);
        return sizeof t;
    }
    struct timeval t = {.tv_sec = at / 1000000000, .tv_usec = at % 1000000000 / 1000};
    memcpy(out, &t, sizeof t);
    return sizeof t;
}

int ns_timestamp_cmsg(const ns_sock *s, int64_t arrival_ns, void *value, size_t *len) {
    if (!(s->timestamps & NS_STAMP_ON)) return 0;
    bool ns = s->timestamps & NS_STAMP_NS, y2038 = s->timestamps & NS_STAMP_NEW;
    *len = put_time(arrival_ns, ns, value);
    if (ns) return y2038 ? SO_TIMESTAMPNS_NEW : SO_TIMESTAMPNS_OLD;
    return y2038 ? SO_TIMESTAMP_NEW : SO_TIMESTAMP_OLD;
}

int ns_timestamp_ioctl(const ns_sock *s, unsigned long request, void *arg) {
    bool ns;
    switch (request) {
    case SIOCGSTAMP_OLD: case SIOCGSTAMP_NEW: ns = false; break;
    case SIOCGSTAMPNS_OLD: case SIOCGSTAMPNS_NEW: ns = true; break;
    default: return 1;
    }
    // Nothing received yet (a stream socket never is stamped here): ENOENT, as sock_gettstamp.
    int64_t t = atomic_load(&s->last_arrival_ns);
    if (t == 0) {
        errno = ENOENT;
        return -1;
    }
    if (!arg) {
        errno = EFAULT;
        return -1;
    }
    put_time(t, ns, arg);
    return 0;
}
