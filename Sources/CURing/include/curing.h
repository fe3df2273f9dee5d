#ifndef CURING_H
#define CURING_H
// liburing and the Linux headers NetStack needs, plus small helpers for what
// Swift cannot import: function-like macros (IOSQE_*, TUNSETIFF's _IOW), the
// ifreq/sockaddr unions behind interface ioctls, and liburing 2.3's gaps
// (io_uring_setup_buf_ring, the multishot read) that kernel 6.x supports.
#include <features.h>
// The kernel's uapi header first: swift-system's CSystem module includes it too,
// and liburing's bundled copy (same include guard) would otherwise define
// io_uring_sqe a second, conflicting time in the same Swift module.
#include <linux/io_uring.h>
#include <liburing.h>
#include <linux/if_tun.h>
#include <malloc.h>  /* malloc_trim: idle TCP rings give memory back (TCPLayer.sweepIdle) */
#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/eventfd.h>

/// A non-blocking, close-on-exec eventfd (LoopExecutor's wake-up; Swift does not import sys/eventfd.h).
static inline int curing_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

// MARK: io_uring constants (macros of the form (1U << BIT) do not import)

static const uint8_t CURING_IOSQE_FIXED_FILE = IOSQE_FIXED_FILE;
static const uint8_t CURING_IOSQE_IO_DRAIN = IOSQE_IO_DRAIN;
static const uint8_t CURING_IOSQE_IO_LINK = IOSQE_IO_LINK;
static const uint8_t CURING_IOSQE_IO_HARDLINK = IOSQE_IO_HARDLINK;
static const uint8_t CURING_IOSQE_ASYNC = IOSQE_ASYNC;
static const uint8_t CURING_IOSQE_BUFFER_SELECT = IOSQE_BUFFER_SELECT;
static const uint8_t CURING_IOSQE_CQE_SKIP_SUCCESS = IOSQE_CQE_SKIP_SUCCESS;

static const uint32_t CURING_CQE_F_BUFFER = IORING_CQE_F_BUFFER;
static const uint32_t CURING_CQE_F_MORE = IORING_CQE_F_MORE;
static const uint32_t CURING_CQE_BUFFER_SHIFT = IORING_CQE_BUFFER_SHIFT;

static const uint32_t CURING_ASYNC_CANCEL_ALL = IORING_ASYNC_CANCEL_ALL;
static const uint32_t CURING_ASYNC_CANCEL_FD = IORING_ASYNC_CANCEL_FD;
static const uint32_t CURING_ASYNC_CANCEL_ANY = IORING_ASYNC_CANCEL_ANY;

/// IORING_OP_READ_MULTISHOT (kernel 6.7); liburing 2.3's enum stops before it.
static const uint8_t CURING_OP_READ_MULTISHOT = 49;

// MARK: TUN/TAP constants

static const unsigned long CURING_TUNSETIFF = TUNSETIFF;
static const unsigned long CURING_TUNSETPERSIST = TUNSETPERSIST;
static const unsigned long CURING_TUNSETOFFLOAD = TUNSETOFFLOAD;
static const unsigned long CURING_TUNSETVNETHDRSZ = TUNSETVNETHDRSZ;
static const short CURING_IFF_TAP = IFF_TAP;
static const short CURING_IFF_TUN = IFF_TUN;
static const short CURING_IFF_NO_PI = IFF_NO_PI;
static const short CURING_IFF_VNET_HDR = IFF_VNET_HDR;
/// Create or fail: TUNSETIFF returns EBUSY if the name is taken, rather than
/// attaching to an existing persistent TUN/TAP device of that name.
static const short CURING_IFF_TUN_EXCL = (short)IFF_TUN_EXCL;
static const unsigned CURING_TUN_F_CSUM = TUN_F_CSUM;
static const unsigned CURING_TUN_F_TSO4 = TUN_F_TSO4;
static const unsigned CURING_TUN_F_TSO6 = TUN_F_TSO6;

// MARK: io_uring helpers

/// Whether the running kernel supports opcode `op` (io_uring_get_probe_ring).
bool curing_opcode_supported(struct io_uring *ring, int op);

/// Maps and registers a provided-buffer ring of `entries` (a power of two) for
/// group `bgid`: io_uring_setup_buf_ring, which liburing 2.3 lacks. Returns the
/// ring, or NULL with `*err` set to a negative errno.
struct io_uring_buf_ring *curing_setup_buf_ring(struct io_uring *ring, unsigned entries,
                                                unsigned short bgid, int *err);

/// Unregisters and unmaps a ring made by curing_setup_buf_ring.
int curing_free_buf_ring(struct io_uring *ring, struct io_uring_buf_ring *br,
                         unsigned entries, unsigned short bgid);

/// One read that keeps completing, each time into a buffer picked from group
/// `bgid`, until it fails or the group runs dry (IORING_OP_READ_MULTISHOT).
static inline void curing_prep_read_multishot(struct io_uring_sqe *sqe, int fd,
                                              unsigned short bgid) {
    io_uring_prep_rw(CURING_OP_READ_MULTISHOT, sqe, fd, NULL, 0, 0);
    sqe->buf_group = bgid;
    sqe->flags |= IOSQE_BUFFER_SELECT;
}

/// A single read of up to `len` bytes into a buffer picked from group `bgid`.
static inline void curing_prep_read_select(struct io_uring_sqe *sqe, int fd,
                                           unsigned len, unsigned short bgid) {
    io_uring_prep_rw(IORING_OP_READ, sqe, fd, NULL, len, 0);
    sqe->buf_group = bgid;
    sqe->flags |= IOSQE_BUFFER_SELECT;
}

// MARK: Interface helpers (ifreq and sockaddr unions). Return 0 or -errno.

/// TUNSETIFF on an open /dev/net/tun: attaches `fd` to interface `name` (which
/// may be a pattern such as "tap%d") with `flags`; the kernel's chosen name is
/// copied to `actual_name` (IFNAMSIZ bytes).
int curing_tun_set_iff(int fd, const char *name, short flags, char *actual_name);

/// TUNSETVNETHDRSZ then TUNSETOFFLOAD on a TAP opened with IFF_VNET_HDR: every
/// frame read or written then starts with a `virtio_net_hdr` of `header_size`
/// bytes, and the kernel may hand over what `offloads` (TUN_F_*) allow.
int curing_tun_set_offload(int fd, int header_size, unsigned offloads);

/// SIOCSIFADDR: sets the interface's IPv4 address (host byte order).
int curing_if_set_address(int sock, const char *name, uint32_t address);
/// Adds an IPv6 address with its prefix to interface `name` (SIOCSIFADDR on
/// an AF_INET6 socket with struct in6_ifreq); `address` is 16 bytes in
/// network order. Returns 0 or -errno.
int curing_if_add_address6(const char *name, const uint8_t address[16], int prefix_length);

/// SIOCSIFNETMASK: sets the interface's IPv4 netmask (host byte order).
int curing_if_set_netmask(int sock, const char *name, uint32_t netmask);

/// SIOCGIFFLAGS then SIOCSIFFLAGS with IFF_UP | IFF_RUNNING added.
int curing_if_up(int sock, const char *name);

/// SIOCSIFTXQLEN: the interface's transmit queue length (for a TAP, the
/// frames the kernel may queue towards its reader). Returns 0 or -errno.
int curing_if_set_txqlen(int sock, const char *name, int length);

/// SIOCGIFTXQLEN: the interface's transmit queue length, or -errno.
int curing_if_txqlen(int sock, const char *name);

/// SIOCGIFHWADDR: copies the 6-byte Ethernet address to `mac`.
int curing_if_hwaddr(int sock, const char *name, uint8_t mac[6]);

/// SIOCETHTOOL ETHTOOL_GDRVINFO: copies the name of the interface's driver
/// ("tun" for TUN/TAP, "veth", ...) to `driver`, NUL-terminated within `size`.
int curing_if_driver(int sock, const char *name, char *driver, unsigned size);


// MARK: Namespaces (glibc declares setns only under _GNU_SOURCE, which Swift's
// Glibc module does not see)

/// setns(fd, CLONE_NEWNET): moves the calling thread into the network namespace
/// open at `fd` (e.g. /var/run/netns/NAME), so a TAP it then creates lives there.
/// Returns 0 or -errno.
int curing_enter_net_namespace(int fd);

// MARK: Batched datagrams (recvmmsg and sendmmsg are _GNU_SOURCE as well)

/// Receives up to `count` (at most 64) datagrams on the UDP socket `fd`, each
/// into its own `size`-byte slot of `buffers`, and sends each straight back to
/// its sender: one recvmmsg and one sendmmsg per batch, for `netstack bench`'s
/// kernel echo server. Blocks for the first datagram (up to the socket's
/// receive timeout). Returns how many arrived, or -errno.
int curing_udp_echo_batch(int fd, uint8_t *buffers, unsigned size, unsigned count);

#endif
