// netdevice(7)'s requests on a stack socket. Linux answers them on any
// socket (sock_ioctl's dev_ioctl; devinet_ioctl for an IPv4 one), and
// programs ask them of the socket they hold: the SIOCGIFADDR idiom for the
// host's own address, SIOCGIFCONF to list the interfaces (Java's
// NetworkInterface), a wireless check before anything else. The kernel
// answers through a socket of the same family and type, so each family's
// rules stay its own (an IPv6 socket has no SIOCGIFADDR); what it says of
// the stack's interface is then made the stack's: its IPv4 address, mask,
// broadcast and MAC, not the TAP's kernel side's. Requests that would set
// the stack's interface are refused, as `netstack up` configures it.
// Interface lists read over netlink (getifaddrs) stay the kernel's.
#include "preload_internal.h"
#include <errno.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/// The wireless extensions' requests (linux/wireless.h, whose linux/if.h
/// clashes with net/if.h).
enum { NS_SIOCIWFIRST = 0x8B00, NS_SIOCIWLAST = 0x8BFF };

static int fail(int e) {
    errno = e;
    return -1;
}

/// Whether `request` is about a device or the host's tables rather than
/// the socket itself: sockios.h's range but for the socket's own (owner,
/// urgent mark, timestamps, unsent bytes), and the wireless extensions'.
static bool is_device_request(unsigned long request) {
    if (request >= NS_SIOCIWFIRST && request <= NS_SIOCIWLAST) return true;
    if (request < 0x8900 || request > 0x89ff) return false;
    switch (request) {
    case FIOSETOWN: case SIOCSPGRP: case FIOGETOWN: case SIOCGPGRP: case SIOCATMARK:
    case SIOCGSTAMP_OLD: case SIOCGSTAMPNS_OLD: case SIOCOUTQNSD:
        return false;
    }
    return true;
}

/// Whether `request` sets something of the interface its `ifreq` names.
static bool sets_interface(unsigned long request) {
    switch (request) {
    case SIOCSIFLINK: case SIOCSIFFLAGS: case SIOCSIFADDR: case SIOCSIFDSTADDR: case SIOCSIFBRDADDR:
    case SIOCSIFNETMASK: case SIOCSIFMETRIC: case SIOCSIFMEM: case SIOCSIFMTU: case SIOCSIFNAME:
    case SIOCSIFHWADDR: case SIOCSIFENCAP: case SIOCSIFSLAVE: case SIOCADDMULTI: case SIOCDELMULTI:
    case SIOCSIFPFLAGS: case SIOCDIFADDR: case SIOCSIFHWBROADCAST: case SIOCSIFTXQLEN: case SIOCSIFMAP:
        return true;
    }
    return false;
}

/// `request` on a kernel socket like `s`: its result, errno kept.
static int ask_kernel(const ns_sock *s, unsigned long request, void *arg) {
    int k = LIBC(socket)(s->family, (s->datagram ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
    if (k < 0) return -1;
    int r = LIBC(ioctl)(k, request, arg);
    int e = errno;
    LIBC(close)(k);
    errno = e;
    return r;
}

struct sockaddr *ns_put_ipv4(void *to, const uint8_t address[4]) {
    struct sockaddr_in in = {.sin_family = AF_INET};
    memcpy(&in.sin_addr, address, 4);
    memcpy(to, &in, sizeof in);
    return to;
}

/// SIOCGIFCONF: the kernel's list of interfaces with an IPv4 address, the
/// stack's with the stack's address (added if the kernel gave the TAP
/// none). As inet_gifconf: with no buffer, the length all would take;
/// else as many whole entries as fit, and the length they took.
static int interface_list(const ns_sock *s, struct ifconf *conf, const char *name) {
    struct ifreq entries[64];
    struct ifconf kernel = {.ifc_len = sizeof entries, .ifc_req = entries};
    if (ask_kernel(s, SIOCGIFCONF, &kernel) < 0) return -1;
    int count = kernel.ifc_len / (int)sizeof(struct ifreq);
    bool listed = false;
    for (int i = 0; i < count; i++) {
        if (strncmp(entries[i].ifr_name, name, IFNAMSIZ) != 0) continue;
        ns_put_ipv4(&entries[i].ifr_addr, s->shm->interface.address);
        listed = true;
    }
    if (!listed && count < 64) {
        memset(&entries[count], 0, sizeof entries[count]);
        strncpy(entries[count].ifr_name, name, IFNAMSIZ - 1);
        ns_put_ipv4(&entries[count].ifr_addr, s->shm->interface.address);
        count++;
    }
    if (!conf->ifc_buf) {
        conf->ifc_len = count * (int)sizeof(struct ifreq);
        return 0;
    }
    int fit = conf->ifc_len < 0 ? 0 : conf->ifc_len / (int)sizeof(struct ifreq);
    if (fit > count) fit = count;
    memcpy(conf->ifc_buf, entries, (size_t)fit * sizeof(struct ifreq));
    conf->ifc_len = fit * (int)sizeof(struct ifreq);
    return 0;
}

int ns_interface_ioctl(const ns_sock *s, unsigned long request, void *arg) {
    if (!is_device_request(request)) return 1;
    if (!arg) return fail(EFAULT);
    char name[IF_NAMESIZE] = {0};
    uint32_t index = s->shm->interface.index;
    bool known = index != 0 && if_indextoname(index, name) != NULL;
    if (!known) return ask_kernel(s, request, arg);
    if (request == SIOCGIFCONF) return interface_list(s, arg, name);

    struct ifreq *r = arg;
    bool stacks;
    if (s->family == AF_INET6 && (request == SIOCSIFADDR || request == SIOCDIFADDR || request == SIOCSIFDSTADDR)) {
        struct { struct in6_addr address; uint32_t prefix_length; int index; } v6;  // linux/ipv6.h's in6_ifreq
        memcpy(&v6, arg, sizeof v6);
        stacks = v6.index == (int)index;
    } else {
        stacks = strncmp(r->ifr_name, name, IFNAMSIZ) == 0;
    }
    if (!stacks) return ask_kernel(s, request, arg);
    if (sets_interface(request)) return fail(geteuid() == 0 ? EOPNOTSUPP : EPERM);

    // An IPv4 socket's address requests answer from the stack alone, so the
    // answer holds whatever address the TAP's kernel side has, or none.
    if (s->family == AF_INET) {
        switch (request) {
        case SIOCGIFADDR: case SIOCGIFDSTADDR:  // not point-to-point: the address itself, as Linux's
            ns_put_ipv4(&r->ifr_addr, s->shm->interface.address);
            return 0;
        case SIOCGIFNETMASK:
            ns_put_ipv4(&r->ifr_netmask, s->shm->interface.netmask);
            return 0;
        case SIOCGIFBRDADDR:
            ns_put_ipv4(&r->ifr_broadaddr, s->shm->interface.broadcast);
            return 0;
        }
    }
    int result = ask_kernel(s, request, arg);
    if (result == 0 && request == SIOCGIFHWADDR) memcpy(r->ifr_hwaddr.sa_data, s->shm->interface.mac, 6);
    return result;
}
