// The control messages recvmsg gives with a datagram, for the options that
// ask for them, built from the record the stack wrote (where it came to,
// its DS field and TTL) in Linux's order: ip_cmsg_recv_offset's for IPv4
// (IP_PKTINFO, IP_TTL, IP_TOS, IP_ORIGDSTADDR), and for an AF_INET6 socket
// ip6_datagram_recv_ctl's (IPV6_PKTINFO, IPV6_HOPLIMIT, IPV6_TCLASS,
// IPV6_ORIGDSTADDR; RFC 3542 6), whose IPv4 datagrams get IPV6_PKTINFO
// with a v4-mapped address and then the IPv4 ones asked for.
#include "preload_internal.h"
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

/// Appends one control message; false (MSG_CTRUNC set) if it does not fit.
static bool put(struct msghdr *msg, size_t *used, int level, int type, const void *data, size_t len) {
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
        struct in_pktinfo p = {.ipi_ifindex = (int)s->shm->interface_index};
        memcpy(&p.ipi_addr, r->local, 4);
        memcpy(&p.ipi_spec_dst, not_unicast4(r->local) ? s->shm->interface_address : r->local, 4);
        put(msg, used, IPPROTO_IP, IP_PKTINFO, &p, sizeof p);
    }
    if (ns_arrival_asked(s, NS_ARRIVAL_TTL)) {
        int ttl = r->hop_limit;
        put(msg, used, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl);
    }
    if (ns_arrival_asked(s, NS_ARRIVAL_TOS)) put(msg, used, IPPROTO_IP, IP_TOS, &r->traffic_class, 1);
    if (ns_arrival_asked(s, NS_ARRIVAL_ORIGDSTADDR)) {
        struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(s->local.port)};
        memcpy(&to.sin_addr, r->local, 4);
        put(msg, used, IPPROTO_IP, IP_ORIGDSTADDR, &to, sizeof to);
    }
}

void ns_put_arrival_cmsgs(const ns_sock *s, const ns_datagram *r, struct msghdr *msg) {
    size_t used = 0;
    if (s->family == AF_INET) {
        put_ipv4(s, r, msg, &used);
    } else if (r->family == 4) {
        if (ns_arrival_asked(s, NS_ARRIVAL6_PKTINFO)) {
            struct in6_pktinfo p = {.ipi6_ifindex = s->shm->interface_index};
            p.ipi6_addr.s6_addr[10] = p.ipi6_addr.s6_addr[11] = 0xff;
            memcpy(&p.ipi6_addr.s6_addr[12], r->local, 4);
            put(msg, &used, IPPROTO_IPV6, IPV6_PKTINFO, &p, sizeof p);
        }
        put_ipv4(s, r, msg, &used);
    } else {
        if (ns_arrival_asked(s, NS_ARRIVAL6_PKTINFO)) {
            struct in6_pktinfo p = {.ipi6_ifindex = s->shm->interface_index};
            memcpy(&p.ipi6_addr, r->local, 16);
            put(msg, &used, IPPROTO_IPV6, IPV6_PKTINFO, &p, sizeof p);
        }
        if (ns_arrival_asked(s, NS_ARRIVAL6_HOPLIMIT)) {
            int hops = r->hop_limit;
            put(msg, &used, IPPROTO_IPV6, IPV6_HOPLIMIT, &hops, sizeof hops);
        }
        if (ns_arrival_asked(s, NS_ARRIVAL6_TCLASS)) {
            int tclass = r->traffic_class;
            put(msg, &used, IPPROTO_IPV6, IPV6_TCLASS, &tclass, sizeof tclass);
        }
        if (ns_arrival_asked(s, NS_ARRIVAL6_ORIGDSTADDR)) {
            struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_port = htons(s->local.port)};
            memcpy(&to.sin6_addr, r->local, 16);
            put(msg, &used, IPPROTO_IPV6, IPV6_ORIGDSTADDR, &to, sizeof to);
        }
    }
    msg->msg_controllen = used;
}
