// getifaddrs(3) as a program on the stack should see it: the kernel's list
// (netlink), with the stack's interface's addresses made the stack's, as
// netdevice(7)'s requests give them (interface_ioctls.c): its MAC in the
// link's AF_PACKET entry, its IPv4 address, mask and broadcast, and its
// IPv6 addresses in use instead of the TAP's kernel side's. Servers that
// bind each address they find (and Node's os.networkInterfaces, Python's
// psutil) then find the stack's. The list is made anew in one block, as
// glibc's is, so glibc's freeifaddrs (one free) frees it.
#include "preload_internal.h"
#include <ifaddrs.h>
#include <linux/if_link.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// <net/if.h>'s, which <linux/if_link.h>'s kin clash with.
extern char *if_indextoname(unsigned int index, char *name);
#define NAME_SIZE 16

/// One entry and the storage it points into.
typedef struct {
    struct ifaddrs entry;
    struct sockaddr_storage address, netmask, broadcast;
    char name[NAME_SIZE + 1];
    struct rtnl_link_stats stats;
} slot;

/// The stack's interface now, read from a socket made for the purpose;
/// false if the stack cannot be reached.
static bool stack_interface(ns_interface *out) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);  // ours: a stack socket
    if (fd < 0) return false;
    ns_sock *s = ns_lookup(fd);
    if (s) *out = s->shm->interface;
    close(fd);
    return s != NULL;
}

static struct sockaddr *copy_address(const struct sockaddr *from, struct sockaddr_storage *to) {
    if (!from) return NULL;
    size_t length = from->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                    : from->sa_family == AF_PACKET ? sizeof(struct sockaddr_ll)
                    : from->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr);
    memcpy(to, from, length);
    return (struct sockaddr *)to;
}

static struct sockaddr *ipv6(const uint8_t address[16], uint32_t scope, struct sockaddr_storage *to) {
    struct sockaddr_in6 *in = (struct sockaddr_in6 *)to;
    *in = (struct sockaddr_in6){.sin6_family = AF_INET6, .sin6_scope_id = scope};
    memcpy(&in->sin6_addr, address, 16);
    return (struct sockaddr *)to;
}

static void ipv6_mask(int prefix, struct sockaddr_storage *to) {
    uint8_t mask[16] = {0};
    for (int i = 0; i < prefix && i < 128; i++) mask[i / 8] |= (uint8_t)(0x80 >> (i % 8));
    ipv6(mask, 0, to);
}

/// The next slot, named `name` with `flags`.
static slot *take(slot *slots, int *used, const char *name, unsigned flags) {
    slot *s = &slots[(*used)++];
    memset(s, 0, sizeof *s);
    strncpy(s->name, name, NAME_SIZE);
    s->entry.ifa_name = s->name;
    s->entry.ifa_flags = flags;
    return s;
}

static void add_ipv4(slot *slots, int *used, const char *name, unsigned flags, const ns_interface *i) {
    slot *s = take(slots, used, name, flags);
    s->entry.ifa_addr = ns_put_ipv4(&s->address, i->address);
    s->entry.ifa_netmask = ns_put_ipv4(&s->netmask, i->netmask);
    if (!ns_ipv4_none(i->broadcast)) s->entry.ifa_broadaddr = ns_put_ipv4(&s->broadcast, i->broadcast);
}

static void add_ipv6(slot *slots, int *used, const char *name, unsigned flags, const ns_interface *i) {
    for (int n = 0; n < i->address6_count && n < NS_INTERFACE_ADDRESSES6; n++) {
        slot *s = take(slots, used, name, flags);
        bool link_local = i->address6[n][0] == 0xfe && (i->address6[n][1] & 0xc0) == 0x80;
        s->entry.ifa_addr = ipv6(i->address6[n], link_local ? i->index : 0, &s->address);
        ipv6_mask(i->prefix6[n], &s->netmask);
        s->entry.ifa_netmask = (struct sockaddr *)&s->netmask;
    }
}

NS_EXPORT int getifaddrs(struct ifaddrs **out) {
    struct ifaddrs *kernel;
    if (LIBC(getifaddrs)(&kernel) < 0) return -1;
    ns_interface i;
    char name[NAME_SIZE + 1] = {0};
    if (!stack_interface(&i) || i.index == 0 || !if_indextoname(i.index, name)) {
        *out = kernel;
        return 0;
    }
    int count = 0;
    for (struct ifaddrs *k = kernel; k; k = k->ifa_next) count++;
    slot *slots = calloc((size_t)count + 1 + NS_INTERFACE_ADDRESSES6, sizeof(slot));
    if (!slots) {
        LIBC(freeifaddrs)(kernel);
        return -1;
    }
    int used = 0;
    bool gave4 = false, gave6 = false;
    unsigned flags = 0;  // the link's, for entries the kernel had none like
    for (struct ifaddrs *k = kernel; k; k = k->ifa_next) {
        bool stacks = strcmp(k->ifa_name, name) == 0;
        int family = k->ifa_addr ? k->ifa_addr->sa_family : AF_UNSPEC;
        if (stacks) flags = k->ifa_flags;
        if (stacks && family == AF_INET) {
            if (!gave4) add_ipv4(slots, &used, name, k->ifa_flags, &i);
            gave4 = true;
            continue;
        }
        if (stacks && family == AF_INET6) {
            if (!gave6) add_ipv6(slots, &used, name, k->ifa_flags, &i);
            gave6 = true;
            continue;
        }
        slot *s = take(slots, &used, k->ifa_name, k->ifa_flags);
        s->entry.ifa_addr = copy_address(k->ifa_addr, &s->address);
        s->entry.ifa_netmask = copy_address(k->ifa_netmask, &s->netmask);
        s->entry.ifa_broadaddr = copy_address(k->ifa_broadaddr, &s->broadcast);  // or ifa_dstaddr: the same field
        if (k->ifa_data && family == AF_PACKET) {
            memcpy(&s->stats, k->ifa_data, sizeof s->stats);
            s->entry.ifa_data = &s->stats;
        }
        if (stacks && family == AF_PACKET) {
            struct sockaddr_ll *link = (struct sockaddr_ll *)&s->address;
            memcpy(link->sll_addr, i.mac, 6);
            link->sll_halen = 6;
        }
    }
    if (!gave4) add_ipv4(slots, &used, name, flags, &i);
    if (!gave6) add_ipv6(slots, &used, name, flags, &i);
    for (int n = 0; n + 1 < used; n++) slots[n].entry.ifa_next = &slots[n + 1].entry;
    LIBC(freeifaddrs)(kernel);
    *out = used ? &slots[0].entry : NULL;
    if (!used) free(slots);
    return 0;
}
