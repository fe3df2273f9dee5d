// The control messages of a datagram socket. Those recvmsg gives with a
// datagram, for the options that ask for them, built from the record the
// stack wrote (when it came, where to, its DS field and TTL) in Linux's
// order: the timestamp (datagram_timestamps.c), then ip_cmsg_recv_offset's for IPv4 (IP_PKTINFO, IP_TTL, IP_TOS,
// IP_ORIGDSTADDR), and for an AF_INET6 socket ip6_datagram_recv_ctl's
// (IPV6_PKTINFO, IPV6_HOPLIMIT, IPV6_TCLASS, IPV6_ORIGDSTADDR; RFC 3542 6),
// whose IPv4 datagrams get IPV6_PKTINFO with a v4-mapped address and then
// the IPv4 ones asked for. And those sendmsg takes (ns_take_send_cmsgs):
// a datagram's own TTL and DS field, the record carries them to the stack.
#include "preload_internal.h"
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

bool ns_put_cmsg(struct msghdr *msg, size_t *used, int level, int type, const void *data, size_t len) {
    size_t space = CMSG_SPACE(len);
    if (!msg->msg_control || *used + CMSG_LEN(len) > msg->msg_controllen) {
        msg->msg_flags |= MSG_CTRUNC;
        return false;
    }
    struct cmsghdr *c = (struct cmsghdr *)((uint8_t *)msg->msg_control + *used);
    c->cmsg_level = level;
    c->cmsg_type = type;
    c->cmsg_len = CMSG_LEN(len);
    memcpy(CMSG_DATA(c), data, len);
    *used += space < msg->msg_controllen - *used ? space : msg->msg_controllen - *used;
    return true;
}

/// Whether an IPv4 address is one a reply cannot come from (broadcast or multicast).
static bool not_unicast4(const uint8_t a[4]) {
    return a[0] >= 224 || (a[0] == 255 && a[1] == 255 && a[2] == 255 && a[3] == 255);
}

static void put_ipv4(const ns_sock *s, const ns_datagram *r, struct msghdr *msg, size_t *used) {
    if (ns_arrival_asked(s, NS_ARRIVAL_PKTINFO)) {
        // ipi_spec_dst: where a reply goes from (fib_compute_spec_dst): the
        // address it came to, or the interface's for a broadcast or multicast.
        struct in_pktinfo p = {.ipi_ifindex = (int)s->shm->interface.index};
        memcpy(&p.ipi_addr, r->local, 4);
        memcpy(&p.ipi_spec_dst, not_unicast4(r->local) ? s->shm->interface.address : r->local, 4);
        ns_put_cmsg(msg, used, IPPROTO_IP, IP_PKTINFO, &p, sizeof p);
    }
    if (ns_arrival_asked(s, NS_ARRIVAL_TTL)) {
        int ttl = r->hop_limit;
        ns_put_cmsg(msg, used, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl);
    }
    if (ns_arrival_asked(s, NS_ARRIVAL_TOS)) ns_put_cmsg(msg, used, IPPROTO_IP, IP_TOS, &r->traffic_class, 1);
    if (ns_arrival_asked(s, NS_ARRIVAL_ORIGDSTADDR)) {
        struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(s->local.port)};
        memcpy(&to.sin_addr, r->local, 4);
        ns_put_cmsg(msg, used, IPPROTO_IP, IP_ORIGDSTADDR, &to, sizeof to);
    }
}

void ns_put_arrival_cmsgs(const ns_sock *s, const ns_datagram *r, struct msghdr *msg) {
    size_t used = 0;
    // The timestamp first, as udp_recvmsg's sock_recv_cmsgs comes before the IP ones.
    uint8_t stamp[16];
    size_t stamp_len;
    int stamp_type = ns_timestamp_cmsg(s, r->arrival_ns, stamp, &stamp_len);
    if (stamp_type) ns_put_cmsg(msg, &used, SOL_SOCKET, stamp_type, stamp, stamp_len);
    if (s->family == AF_INET) {
        put_ipv4(s, r, msg, &used);
    } else if (r->family == 4) {
        if (ns_arrival_asked(s, NS_ARRIVAL6_PKTINFO)) {
            struct in6_pktinfo p = {.ipi6_ifindex = s->shm->interface.index};
            p.ipi6_addr.s6_addr[10] = p.ipi6_addr.s6_addr[11] = 0xff;
            memcpy(&p.ipi6_addr.s6_addr[12], r->local, 4);
            ns_put_cmsg(msg, &used, IPPROTO_IPV6, IPV6_PKTINFO, &p, sizeof p);
        }
        put_ipv4(s, r, msg, &used);
    } else {
        if (ns_arrival_asked(s, NS_ARRIVAL6_PKTINFO)) {
            struct in6_pktinfo p = {.ipi6_ifindex = s->shm->interface.index};
            memcpy(&p.ipi6_addr, r->local, 16);
            ns_put_cmsg(msg, &used, IPPROTO_IPV6, IPV6_PKTINFO, &p, sizeof p);
        }
        if (ns_arrival_asked(s, NS_ARRIVAL6_HOPLIMIT)) {
            int hops = r->hop_limit;
            ns_put_cmsg(msg, &used, IPPROTO_IPV6, IPV6_HOPLIMIT, &hops, sizeof hops);
        }
        if (ns_arrival_asked(s, NS_ARRIVAL6_TCLASS)) {
            int tclass = r->traffic_class;
            ns_put_cmsg(msg, &used, IPPROTO_IPV6, IPV6_TCLASS, &tclass, sizeof tclass);
        }
        if (ns_arrival_asked(s, NS_ARRIVAL6_ORIGDSTADDR)) {
            struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_port = htons(s->local.port)};
            memcpy(&to.sin6_addr, r->local, 16);
            ns_put_cmsg(msg, &used, IPPROTO_IPV6, IPV6_ORIGDSTADDR, &to, sizeof to);
        }
    }
    msg->msg_controllen = used;
}

// MARK: Sending

/// An int control message's value into `*v`; false if its length is not an int's.
static bool int_value(const struct cmsghdr *c, int *v) {
    if (c->cmsg_len != CMSG_LEN(sizeof(int))) return false;
    memcpy(v, CMSG_DATA(c), sizeof *v);
    return true;
}

/// SOL_SOCKET's, as Linux's __sock_cmsg_send: descriptors and credentials
/// are not a datagram's (ignored), a mark needs the privilege, timestamping
/// and the priority are taken and not acted on; the rest are refused.
static int socket_level(const struct cmsghdr *c) {
    switch (c->cmsg_type) {
    case SCM_RIGHTS: case SCM_CREDENTIALS: case SO_PRIORITY: case SO_TIMESTAMPING_OLD: case SO_TIMESTAMPING_NEW:
        return 0;
    case SO_MARK:
        return geteuid() == 0 ? 0 : EPERM;  // CAP_NET_RAW or CAP_NET_ADMIN
    default:
        return EINVAL;
    }
}

/// An interface the kernel does not have: ENODEV, as the route lookup says.
static int interface_exists(int index) {
    char name[IF_NAMESIZE];
    return index == 0 || if_indextoname((unsigned)index, name) ? 0 : ENODEV;
}

/// This datagram's own TTL (hop limit) and DS field (traffic class).
static void set_hop_limit(ns_datagram *f, int v) {
    f->hop_limit = (uint8_t)v;
    f->send_flags |= NS_SEND_HOP_LIMIT;
}

static void set_traffic_class(ns_datagram *f, int v) {
    f->traffic_class = (uint8_t)v;
    f->send_flags |= NS_SEND_TRAFFIC_CLASS;
}

/// IPv4's (ip_cmsg_send): IP_TTL (1-255) and IP_TOS (0-255, an int or a
/// byte) set this datagram's header; IP_PKTINFO is checked (the stack has
/// one address, which it sends from: as the kernel's route lookup says, a
/// source of 127/8 beside a route that is not the loopback's is EINVAL,
/// one that is not the host's ENETUNREACH); any other SOL_IP type is refused.
static int ipv4_level(const ns_sock *s, const struct cmsghdr *c, ns_datagram *f) {
    int v;
    switch (c->cmsg_type) {
    case IP_TTL:
        if (!int_value(c, &v) || v < 1 || v > 255) return EINVAL;
        set_hop_limit(f, v);
        return 0;
    case IP_TOS:
        if (c->cmsg_len == CMSG_LEN(1)) v = *CMSG_DATA(c);
        else if (!int_value(c, &v) || v < 0 || v > 255) return EINVAL;
        set_traffic_class(f, v);
        return 0;
    case IP_PKTINFO: {
        if (c->cmsg_len != CMSG_LEN(sizeof(struct in_pktinfo))) return EINVAL;
        struct in_pktinfo p;
        memcpy(&p, CMSG_DATA(c), sizeof p);
        const uint8_t *source = (const uint8_t *)&p.ipi_spec_dst;
        if (p.ipi_spec_dst.s_addr != 0 && memcmp(source, s->shm->interface.address, 4) != 0)
            return source[0] == 127 ? EINVAL : ENETUNREACH;
        return interface_exists(p.ipi_ifindex);
    }
    default:
        return EINVAL;
    }
}

/// IPv6's (ip6_datagram_send_ctl): IPV6_HOPLIMIT and IPV6_TCLASS (-1 for
/// the socket's, else 0-255); IPV6_PKTINFO and IPV6_DONTFRAG are checked;
/// any other SOL_IPV6 type is refused.
static int ipv6_level(const struct cmsghdr *c, ns_datagram *f) {
    int v;
    switch (c->cmsg_type) {
    case IPV6_HOPLIMIT:
    case IPV6_TCLASS:
        if (!int_value(c, &v) || v < -1 || v > 255) return EINVAL;
        if (v < 0) return 0;
        if (c->cmsg_type == IPV6_HOPLIMIT) set_hop_limit(f, v);
        else set_traffic_class(f, v);
        return 0;
    case IPV6_DONTFRAG:
        return int_value(c, &v) ? 0 : EINVAL;
    case IPV6_PKTINFO: {
        if (c->cmsg_len < CMSG_LEN(sizeof(struct in6_pktinfo))) return EINVAL;
        struct in6_pktinfo p;
        memcpy(&p, CMSG_DATA(c), sizeof p);
        return interface_exists((int)p.ipi6_ifindex);
    }
    default:
        return EINVAL;
    }
}

int ns_take_send_cmsgs(const ns_sock *s, const struct msghdr *msg, ns_datagram *fields) {
    if (!msg->msg_control || msg->msg_controllen == 0) return 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c; c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
        if (c->cmsg_len < sizeof *c || (uint8_t *)c + c->cmsg_len > (uint8_t *)msg->msg_control + msg->msg_controllen) {
            errno = EINVAL;  // Linux's CMSG_OK
            return -1;
        }
        int e = 0;
        if (c->cmsg_level == SOL_SOCKET) e = socket_level(c);
        else if (s->family == AF_INET && c->cmsg_level == IPPROTO_IP) e = ipv4_level(s, c, fields);
        else if (s->family == AF_INET6 && c->cmsg_level == IPPROTO_IPV6) e = ipv6_level(c, fields);
        // Another level's (IPv4's on an IPv6 socket among them) is not looked at.
        if (e) {
            errno = e;
            return -1;
        }
    }
    return 0;
}
