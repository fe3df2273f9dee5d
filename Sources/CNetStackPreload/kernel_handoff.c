// Sockets the stack cannot serve become the kernel's. The stack has no
// loopback (RFC 1122 3.2.1.3: 127/8 never leaves a host, and RFC 4291
// 2.5.3: nor does ::1), so an application that talks to a service on
// 127.0.0.1 (a local resolver at 127.0.0.53, a database, a test server) or
// to 0.0.0.0 (Linux's connect takes it as this host) needs the kernel's.
// As Onload and libvma hand loopback to the OS, a socket that the stack has
// not yet given anything of its own (no connection, peer, listen or
// address; a wildcard port is carried over) becomes a kernel socket under
// the same descriptor numbers the moment it binds, connects or sends to
// such an address: its type, O_NONBLOCK, each descriptor's FD_CLOEXEC,
// every option set on it, its epoll registrations, all as they were. The
// stack closes its side. From then on libc serves it, whatever it does.
#include "preload_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

bool ns_is_kernel_address(const ns_addr *a, bool destination) {
    static const uint8_t zero[16];
    if (a->family == 4) return a->bytes[0] == 127 || (destination && memcmp(a->bytes, zero, 4) == 0);
    if (a->family != 6) return false;
    static const uint8_t one[16] = {[15] = 1};
    return memcmp(a->bytes, one, 16) == 0 || (destination && memcmp(a->bytes, zero, 16) == 0);
}

void ns_remember_option(ns_sock *s, int level, int name, const void *value, socklen_t len) {
    if (!value || len > NS_SET_OPTION_BYTES) return;  // none the stack takes is longer
    int i = 0;
    while (i < s->set_option_count && !(s->set_options[i].level == level && s->set_options[i].name == name)) i++;
    if (i == NS_SET_OPTIONS) return;
    if (i == s->set_option_count) s->set_option_count++;
    s->set_options[i] = (ns_set_option){.level = level, .name = name, .length = len};
    memcpy(s->set_options[i].value, value, len);
}

void ns_apply_remembered_options(const ns_sock *s, int k) {
    // In the order set; one the kernel refuses (a value the stack took) is left at the kernel's default.
    for (int i = 0; i < s->set_option_count; i++) {
        const ns_set_option *o = &s->set_options[i];
        LIBC(setsockopt)(k, o->level, o->name, o->value, o->length);
    }
}

/// Whether `s` has nothing of the stack's that a kernel socket would lose.
static bool may_hand_over(ns_sock *s) {
    if (s->listening || s->connecting || s->has_peer || atomic_load(&s->waiting) > 0 || atomic_load(&s->cork_pending))
        return false;
    if (!s->has_local) return true;
    // Bound: only to the wildcard address (its port is bound again on the kernel's).
    ns_addr any = {.family = s->local.family};
    return memcmp(s->local.bytes, any.bytes, sizeof any.bytes) == 0;
}

/// Binds `k` as `s` was bound: the wildcard address, its port. A datagram
/// socket the loop has on the kernel's loopback (`LoopbackDatagrams`, bound
/// there with SO_REUSEADDR until the stack closes `s`) binds with
/// SO_REUSEADDR too, then gets back the value the application set.
static int bind_as(int k, const ns_sock *s) {
    union { struct sockaddr sa; struct sockaddr_in in; struct sockaddr_in6 in6; } u;
    socklen_t len = sizeof u;
    ns_addr any = {.family = s->family == AF_INET ? 4 : 6, .port = s->local.port};
    ns_to_sockaddr(&any, s->family, &u.sa, &len);
    int asked = 0;
    socklen_t asked_len = sizeof asked;
    bool beside_loopback = ns_state(s->shm) & NS_STATE_LOOPBACK;
    if (beside_loopback) {
        int one = 1;
        LIBC(getsockopt)(k, SOL_SOCKET, SO_REUSEADDR, &asked, &asked_len);
        LIBC(setsockopt)(k, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    }
    int r = LIBC(bind)(k, &u.sa, len);
    if (beside_loopback) {
        int e = errno;
        LIBC(setsockopt)(k, SOL_SOCKET, SO_REUSEADDR, &asked, sizeof asked);
        errno = e;
    }
    return r;
}

/// `s` becomes a kernel socket of its family and type under every one of
/// its descriptors. 0, or -1 with errno: `s` is as it was if the kernel's
/// socket could not be made or bound; once the descriptors change hands the
/// stack's socket is closed whatever happens (a dup3 onto an open
/// descriptor does not fail).
static int hand_to_kernel(ns_sock *s) {
    int type = (s->datagram ? SOCK_DGRAM : SOCK_STREAM) | (s->nonblocking ? SOCK_NONBLOCK : 0) | SOCK_CLOEXEC;
    int k = LIBC(socket)(s->family, type, 0);
    if (k < 0) return -1;
    ns_apply_remembered_options(s, k);
    if (s->has_local && s->local.port != 0 && bind_as(k, s) < 0) {
        int e = errno;
        LIBC(close)(k);
        errno = e;
        return -1;
    }
    int r = ns_replace_descriptors(s, k, ns_epoll_hand_over);
    int e = errno;
    LIBC(close)(k);
    ns_post_close(s->id);
    ns_release(s);
    errno = e;
    return r;
}

int ns_kernel_takes_send(ns_sock *s, const struct sockaddr *sa, socklen_t len) {
    if (ns_state(s->shm) & NS_STATE_LOOPBACK) return 0;  // the loop sends there (LoopbackDatagrams)
    return ns_kernel_takes(s, sa, len, true);
}

int ns_kernel_takes(ns_sock *s, const struct sockaddr *sa, socklen_t len, bool destination) {
    ns_addr a;
    if (ns_from_sockaddr(sa, len, &a) != 0 || !ns_is_kernel_address(&a, destination)) return 0;
    if (s->family == AF_INET && a.family == 6) return 0;  // the caller's EAFNOSUPPORT
    if (!may_hand_over(s)) return 0;
    return hand_to_kernel(s) == 0 ? 1 : -1;
}
