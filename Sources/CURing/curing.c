#define _GNU_SOURCE
#include "curing.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>

bool curing_opcode_supported(struct io_uring *ring, int op) {
    struct io_uring_probe *probe = io_uring_get_probe_ring(ring);
    if (!probe) return false;
    bool ok = io_uring_opcode_supported(probe, op) != 0;
    io_uring_free_probe(probe);
    return ok;
}

struct io_uring_buf_ring *curing_setup_buf_ring(struct io_uring *ring, unsigned entries,
                                                unsigned short bgid, int *err) {
    size_t size = entries * sizeof(struct io_uring_buf);
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) {
        *err = -errno;
        return NULL;
    }
    struct io_uring_buf_ring *br = mem;
    io_uring_buf_ring_init(br);
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (unsigned long)(uintptr_t)br;
    reg.ring_entries = entries;
    reg.bgid = bgid;
    int ret = io_uring_register_buf_ring(ring, &reg, 0);
    if (ret < 0) {
        munmap(mem, size);
        *err = ret;
        return NULL;
    }
    *err = 0;
    return br;
}

int curing_free_buf_ring(struct io_uring *ring, struct io_uring_buf_ring *br,
                         unsigned entries, unsigned short bgid) {
    int ret = io_uring_unregister_buf_ring(ring, bgid);
    munmap(br, entries * sizeof(struct io_uring_buf));
    return ret;
}

static void set_name(struct ifreq *ifr, const char *name) {
    memset(ifr, 0, sizeof *ifr);
    strncpy(ifr->ifr_name, name, IFNAMSIZ - 1);
}

int curing_tun_set_iff(int fd, const char *name, short flags, char *actual_name) {
    struct ifreq ifr;
    set_name(&ifr, name);
    ifr.ifr_flags = flags;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) return -errno;
    memcpy(actual_name, ifr.ifr_name, IFNAMSIZ);
    actual_name[IFNAMSIZ - 1] = 0;
    return 0;
}

int curing_tun_set_offload(int fd, int header_size, unsigned offloads) {
    if (ioctl(fd, TUNSETVNETHDRSZ, &header_size) < 0) return -errno;
    // The offload flags are passed by value, not by pointer.
    if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)offloads) < 0) return -errno;
    return 0;
}

static int set_ipv4(int sock, const char *name, unsigned long request, uint32_t value) {
    struct ifreq ifr;
    set_name(&ifr, name);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(value);
    memcpy(&ifr.ifr_addr, &sin, sizeof sin);
    return ioctl(sock, request, &ifr) < 0 ? -errno : 0;
}

int curing_if_set_address(int sock, const char *name, uint32_t address) {
    return set_ipv4(sock, name, SIOCSIFADDR, address);
}

int curing_if_add_address6(const char *name, const uint8_t address[16], int prefix_length) {
    /* struct in6_ifreq is the kernel's (linux/ipv6.h), which clashes with
       glibc's netinet/in.h; its layout is fixed ABI. */
    struct {
        struct in6_addr addr;
        uint32_t prefixlen;
        int ifindex;
    } req;
    int sock = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) return -errno;
    struct ifreq ifr;
    set_name(&ifr, name);
    if (ioctl(sock, SIOCGIFINDEX, &ifr) < 0) {
        int e = -errno;
        close(sock);
        return e;
    }
    memset(&req, 0, sizeof req);
    memcpy(&req.addr, address, 16);
    req.prefixlen = (uint32_t)prefix_length;
    req.ifindex = ifr.ifr_ifindex;
    int r = ioctl(sock, SIOCSIFADDR, &req) < 0 ? -errno : 0;
    close(sock);
    return r;
}

int curing_if_set_netmask(int sock, const char *name, uint32_t netmask) {
    return set_ipv4(sock, name, SIOCSIFNETMASK, netmask);
}

int curing_if_up(int sock, const char *name) {
    struct ifreq ifr;
    set_name(&ifr, name);
    if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) return -errno;
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    return ioctl(sock, SIOCSIFFLAGS, &ifr) < 0 ? -errno : 0;
}

int curing_if_set_txqlen(int sock, const char *name, int length) {
    struct ifreq ifr;
    set_name(&ifr, name);
    ifr.ifr_qlen = length;
    return ioctl(sock, SIOCSIFTXQLEN, &ifr) < 0 ? -errno : 0;
}

int curing_if_txqlen(int sock, const char *name) {
    struct ifreq ifr;
    set_name(&ifr, name);
    if (ioctl(sock, SIOCGIFTXQLEN, &ifr) < 0) return -errno;
    return ifr.ifr_qlen;
}

int curing_if_hwaddr(int sock, const char *name, uint8_t mac[6]) {
    struct ifreq ifr;
    set_name(&ifr, name);
    if (ioctl(sock, SIOCGIFHWADDR, &ifr) < 0) return -errno;
    memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    return 0;
}

int curing_if_driver(int sock, const char *name, char *driver, unsigned size) {
    if (size == 0) return -EINVAL;
    struct ifreq ifr;
    set_name(&ifr, name);
    struct ethtool_drvinfo info;
    memset(&info, 0, sizeof info);
    info.cmd = ETHTOOL_GDRVINFO;
    ifr.ifr_data = (char *)&info;
    if (ioctl(sock, SIOCETHTOOL, &ifr) < 0) return -errno;
    size_t n = strnlen(info.driver, sizeof info.driver);
    if (n >= size) n = size - 1;
    memcpy(driver, info.driver, n);
    driver[n] = 0;
    return 0;
}

int curing_enter_net_namespace(int fd) {
    return setns(fd, CLONE_NEWNET) < 0 ? -errno : 0;
}

int curing_udp_echo_batch(int fd, uint8_t *buffers, unsigned size, unsigned count) {
    enum { most = 64 };
    struct mmsghdr messages[most];
    struct iovec slots[most];
    struct sockaddr_storage senders[most];
    if (count > most) count = most;
    memset(messages, 0, sizeof(messages[0]) * count);
    for (unsigned i = 0; i < count; i++) {
        slots[i].iov_base = buffers + (size_t)i * size;
        slots[i].iov_len = size;
        messages[i].msg_hdr.msg_iov = &slots[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        messages[i].msg_hdr.msg_name = &senders[i];
        messages[i].msg_hdr.msg_namelen = sizeof(senders[i]);
    }
    int n = recvmmsg(fd, messages, count, MSG_WAITFORONE, NULL);
    if (n < 0) return -errno;
    for (int i = 0; i < n; i++) slots[i].iov_len = messages[i].msg_len;
    // A datagram the kernel refuses to send is dropped, as a lost one would be.
    for (int sent = 0; sent < n;) {
        int k = sendmmsg(fd, messages + sent, (unsigned)(n - sent), 0);
        if (k <= 0) break;
        sent += k;
    }
    return n;
}
