#ifndef NETSTACK_PRELOAD_INTERNAL_H
#define NETSTACK_PRELOAD_INTERNAL_H
// Shared by the library's files: libc's own functions, the table of stack
// sockets by descriptor, the control channel, and the readiness of a socket.
#include "netstack_abi.h"
#include "netstack_sys.h"
#include <poll.h>
#include <pthread.h>
#include <spawn.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

/// What the library exports: the calls it takes over. Everything else is
/// built hidden (-fvisibility=hidden), so no helper of ours can shadow or
/// be shadowed by a program's symbol of the same name.
#define NS_EXPORT __attribute__((visibility("default")))

// MARK: libc's functions (dlsym(RTLD_NEXT)), resolved once

struct ifaddrs;

struct ns_libc {
    int (*socket)(int, int, int);
    int (*bind)(int, const struct sockaddr *, socklen_t);
    int (*listen)(int, int);
    int (*accept4)(int, struct sockaddr *, socklen_t *, int);
    int (*connect)(int, const struct sockaddr *, socklen_t);
    int (*shutdown)(int, int);
    int (*close)(int);
    long (*syscall)(long, ...);
    int (*close_range)(unsigned int, unsigned int, int);
    void (*closefrom)(int);
    int (*dup)(int);
    int (*dup2)(int, int);
    int (*dup3)(int, int, int);
    ssize_t (*read)(int, void *, size_t);
    ssize_t (*write)(int, const void *, size_t);
    ssize_t (*readv)(int, const struct iovec *, int);
    ssize_t (*writev)(int, const struct iovec *, int);
    ssize_t (*recv)(int, void *, size_t, int);
    ssize_t (*send)(int, const void *, size_t, int);
    ssize_t (*recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
    ssize_t (*sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
    ssize_t (*recvmsg)(int, struct msghdr *, int);
    ssize_t (*sendmsg)(int, const struct msghdr *, int);
    int (*recvmmsg)(int, struct mmsghdr *, unsigned int, int, struct timespec *);
    int (*sendmmsg)(int, struct mmsghdr *, unsigned int, int);
    ssize_t (*sendfile)(int, int, off_t *, size_t);
    ssize_t (*splice)(int, loff_t *, int, loff_t *, size_t, unsigned int);
    int (*fcntl)(int, int, ...);
    int (*fstat)(int, struct stat *);
    int (*ioctl)(int, unsigned long, ...);
    int (*getsockopt)(int, int, int, void *, socklen_t *);
    int (*setsockopt)(int, int, int, const void *, socklen_t);
    int (*getsockname)(int, struct sockaddr *, socklen_t *);
    int (*getpeername)(int, struct sockaddr *, socklen_t *);
    int (*poll)(struct pollfd *, nfds_t, int);
    int (*select)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
    int (*pselect)(int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *);
    int (*epoll_create)(int);
    int (*epoll_create1)(int);
    int (*epoll_ctl)(int, int, int, struct epoll_event *);
    int (*epoll_wait)(int, struct epoll_event *, int, int);
    int (*epoll_pwait)(int, struct epoll_event *, int, int, const sigset_t *);
    int (*epoll_pwait2)(int, struct epoll_event *, int, const struct timespec *, const sigset_t *);
    int (*ppoll)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
    int (*execve)(const char *, char *const[], char *const[]);
    int (*execvpe)(const char *, char *const[], char *const[]);
    int (*fexecve)(int, char *const[], char *const[]);
    int (*posix_spawn)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
                       char *const[], char *const[]);
    int (*posix_spawnp)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
                        char *const[], char *const[]);
    int (*getifaddrs)(struct ifaddrs **);
    void (*freeifaddrs)(struct ifaddrs *);
};
extern struct ns_libc ns_libc;
/// Resolves `ns_libc` (idempotent, safe from any thread).
void ns_resolve(void);
#define LIBC(name) (ns_libc.name ? ns_libc.name : (ns_resolve(), ns_libc.name))

// MARK: Stack sockets

/// Descriptors one stack socket may have at once (dup and its kin).
#define NS_MAX_ALIASES 16

/// How many options kept_options.c keeps per socket.
#define NS_KEPT_OPTIONS 56

/// A setsockopt that succeeded, as given (kernel_handoff.c replays it).
#define NS_SET_OPTIONS 24
#define NS_SET_OPTION_BYTES 32
typedef struct ns_set_option {
    int level, name;
    socklen_t length;
    uint8_t value[NS_SET_OPTION_BYTES];
} ns_set_option;

/// A socket's options as getsockopt reports them (option_calls.c,
/// kept_options.c). An accepted socket starts with its listener's, as
/// Linux's child copies the listening socket (`ns_kept_accepted` then
/// starts anew what a child does not take).
typedef struct ns_options {
    int reuse_address, reuse_port, keepalive, no_delay, receive_buffer, send_buffer;
    int keepalive_idle, keepalive_interval, keepalive_probes;
    struct linger linger;
    /// SO_BINDTODEVICE's or SO_BINDTOIFINDEX's device: 0, or the stack's interface.
    int bound_device;
    /// SO_RCVTIMEO and SO_SNDTIMEO as set (zero: none; a negative tv_sec:
    /// give up at once, as Linux's zero jiffies): how long a blocking call waits.
    struct timeval receive_timeout, send_timeout;
    /// The options kept_options.c keeps, as stored (the stack acts on a few).
    int kept[NS_KEPT_OPTIONS];
} ns_options;

typedef struct ns_sock {
    uint32_t id;        // the stack's
    int fd;             // what the application holds: an eventfd the stack signals
    int doorbell;       // the eventfd the library rings for the stack
    int family;         // AF_INET or AF_INET6
    ns_socket_shm *shm; // the shared region
    uint8_t *region;
    size_t region_length;
    uint32_t region_serial; // the stack's number for the region (0: not one to keep, ns_park_region; ns_is_shared)
    bool datagram;      // SOCK_DGRAM: records in the rings (ns_datagram), UDP on the stack
    bool nonblocking;
    bool listening;
    bool connecting;    // connect was asked
    bool connect_told;  // a connect call returned its success (the next says EISCONN, as Linux)
    bool read_shut;     // shutdown(SHUT_RD)
    /// Bytes this process took from `rx`: with what waits there, a floor
    /// for TCP_INFO's bytes received, whose published value is as of the
    /// stack's last turn and may not yet count bytes already read.
    _Atomic uint64_t bytes_taken;
    /// The count of the peer's urgent mark this process read past
    /// (`ns_urgent_state`, which poll calls too, without the rx lock).
    _Atomic uint32_t urgent_passed;
    bool write_shut;    // shutdown(SHUT_WR)
    bool has_local, has_peer;
    ns_addr local, peer;
    ns_options options;
    /// A datagram socket's receive timestamps (NS_STAMP_*), and its last
    /// datagram's arrival on the wall clock for SIOCGSTAMP (0: none yet).
    uint8_t timestamps;
    _Atomic int64_t last_arrival_ns;
    /// Every option set (each one's last value), for a kernel socket that
    /// takes this one's place (ns_hand_to_kernel).
    ns_set_option set_options[NS_SET_OPTIONS];
    int set_option_count;
    /// Every descriptor of the socket (dup, dup2, dup3, F_DUPFD): the
    /// socket ends when the last is closed, as an open file description
    /// does. `fd` is always one of them (the library waits on it).
    int aliases[NS_MAX_ALIASES];
    int alias_count;
    /// Each ring has one producer and one consumer in this process too:
    /// threads writing (or reading) the same socket take turns for each
    /// step on `tx` (or `rx`), never across a wait, as the kernel's socket
    /// lock is let go while a call waits.
    pthread_mutex_t tx_lock, rx_lock;
    /// A UDP datagram being corked (MSG_MORE, UDP_CORK: datagram_cork.c),
    /// under `cork_lock`; `cork_data` is malloc'd at the first.
    pthread_mutex_t cork_lock;
    bool udp_cork;
    _Atomic bool cork_pending;
    ns_addr cork_to;
    ns_datagram cork_fields;  // the first piece's IP_TTL, IP_TOS (send_flags)
    uint8_t *cork_data;
    size_t cork_length;
    /// Threads asleep in the socket (ns_wait_event), and whether it was
    /// closed meanwhile by another thread: its memory and doorbell then
    /// outlive the close until they have left (ns_release).
    _Atomic int waiting;
    /// Threads in poll or select with this socket among their descriptors:
    /// a count another takes is told to them (ns_poll_tell).
    _Atomic int polling;
    _Atomic bool closed;
    /// Counts the times a write found too little room, or a look found the
    /// socket not writable: Linux's SOCK_NOSPACE, after which (and only
    /// after which) room coming back wakes writers, so an edge-triggered
    /// EPOLLOUT is news only past a change of this (epoll_calls.c).
    _Atomic uint32_t nospace;
    /// Counts shutdown(2)s of the socket here, each news to every
    /// edge-triggered entry, as Linux's inet_shutdown wakes all waiters.
    _Atomic uint32_t shutdowns;
    long long closed_at;
    struct ns_sock *next_closed;
} ns_sock;

/// Another process holds `s` too (after fork, or passed or carried to
/// one): the stack then gives its region to neither again, so its serial is
/// dropped, and that is what tells.
static inline void ns_mark_shared(ns_sock *s) { s->region_serial = 0; }
static inline bool ns_is_shared(const ns_sock *s) { return s->region_serial == 0; }

/// The stack socket behind `fd`, or NULL for every other descriptor.
ns_sock *ns_lookup(int fd);

/// What an address is for: Linux checks each a little differently.
enum ns_address_use { NS_ADDRESS_BIND, NS_ADDRESS_STREAM_CONNECT, NS_ADDRESS_DATAGRAM_CONNECT, NS_ADDRESS_DATAGRAM_SEND };
/// The address a bind, connect or sendto of `s` names, checked as Linux
/// checks it for the socket's family: 0 with `*a`, or an errno (EINVAL for
/// one too short, EAFNOSUPPORT for another family, EFAULT for none). A
/// datagram connect's AF_UNSPEC (a disconnect) is the caller's to see first.
int ns_check_address(const ns_sock *s, const struct sockaddr *sa, socklen_t len, enum ns_address_use use, ns_addr *a);

/// Binds an unbound socket to an ephemeral port, as Linux's autobind before
/// a datagram socket's first send or a stream socket's listen.
int ns_autobind(ns_sock *s);

// Options the library keeps and answers (kept_options.c); the stack acts on a few.
/// Linux's defaults, at the socket's creation.
void ns_kept_init(ns_sock *s);
/// setsockopt of a kept option: 0, or -1 with errno (Linux's rule for the
/// value); 1 if (level, name) is not one for this socket.
int ns_kept_set(ns_sock *s, int level, int name, int value);
/// getsockopt of a kept option into `*value`: 0, or 1 if (level, name) is not one for this socket.
int ns_kept_get(const ns_sock *s, int level, int name, int *value);
/// SO_RCVLOWAT of a stream socket (1 unless set; a datagram socket's is 1):
/// what makes it readable, and what a blocking receive waits for.
uint32_t ns_receive_lowat(const ns_sock *s);
/// An accepted socket's kept options, copied from its listener, made what
/// Linux's child starts with anew (SO_PRIORITY, TCP_QUICKACK).
void ns_kept_accepted(ns_sock *s);
/// TCP_NOTSENT_LOWAT of a stream socket: 0 when never set (the system's
/// default, no limit).
uint32_t ns_notsent_lowat(const ns_sock *s);
/// sendto of a datagram socket, once the corked datagram (if any) had its
/// say: writes one datagram of `len` bytes to `to` into `tx`, waiting for
/// room unless `dontwait`. `len` or -1 with errno.
ssize_t ns_dgram_write(ns_sock *s, const ns_addr *to, const void *buf, size_t len, bool dontwait,
                       const ns_datagram *header_fields);
/// The most a UDP datagram to `family` (4 or 6) carries: 65507 or 65527.
size_t ns_dgram_limit(int family);
/// MSG_MORE and UDP_CORK (datagram_cork.c). ns_cork_take: if a datagram is
/// corked, appends this call's bytes (its address unread, as Linux's
/// udp_sendmsg) and, unless `more`, sends the whole; true with `*result`
/// set when it did so. ns_cork_start: corks a first piece bound for `to`,
/// whose control messages' header fields (may be NULL) the datagram keeps,
/// as Linux's ip_setup_cork takes the first call's.
bool ns_cork_take(ns_sock *s, const void *buf, size_t len, bool more, bool dontwait, ssize_t *result);
ssize_t ns_cork_start(ns_sock *s, const ns_addr *to, const void *buf, size_t len, const ns_datagram *header_fields);
/// setsockopt UDP_CORK: 0 sends what was corked.
int ns_cork_set(ns_sock *s, int on);
/// Forgets the corked datagram and its buffer (the socket goes, or a new image took it over).
void ns_cork_free(ns_sock *s);
/// The options that ask recvmsg for a datagram's control messages
/// (IP_PKTINFO, IP_RECVTTL, IP_RECVTOS, IP_RECVORIGDSTADDR, and IPv6's).
enum ns_arrival_option {
    NS_ARRIVAL_PKTINFO, NS_ARRIVAL_TTL, NS_ARRIVAL_TOS, NS_ARRIVAL_ORIGDSTADDR,
    NS_ARRIVAL6_PKTINFO, NS_ARRIVAL6_HOPLIMIT, NS_ARRIVAL6_TCLASS, NS_ARRIVAL6_ORIGDSTADDR,
    NS_ARRIVAL_OPTIONS
};
/// Whether `s` set option `which`: a stored value at a fixed place, read per datagram without a search.
bool ns_arrival_asked(const ns_sock *s, enum ns_arrival_option which);
/// SO_BUSY_POLL in nanoseconds (at most a second): how long a blocking receive spins.
long ns_busy_poll_ns(const ns_sock *s);
/// Whether a stream socket's recvmsg gives TCP_INQ's control message.
bool ns_inq_asked(const ns_sock *s);
/// SO_PEEK_OFF (Linux's sk_peek_offset): how far past the first waiting
/// byte a peek starts, or -1 (off, the default). A stream socket counts
/// bytes; a datagram socket counts the datagrams' bytes it passes over whole.
int ns_peek_offset(const ns_sock *s);
/// After a peek that gave `n` bytes (sk_peek_offset_fwd), or a read that
/// took them (sk_peek_offset_bwd, not below 0): the offset, if on, moves.
void ns_peek_offset_peeked(ns_sock *s, size_t n);
void ns_peek_offset_taken(ns_sock *s, size_t n);
/// Whether the stack acts on kept option (level, name) too; its stored value into `*stored`.
bool ns_kept_acts(const ns_sock *s, int level, int name, int *stored);
/// getsockopt's TCP_INFO, Linux's struct from the stack's fields and the
/// bytes not yet sent (tcp_info.c).
int ns_put_tcp_info(const ns_tcp_fields *f, bool listening, uint32_t unsent, void *value, socklen_t *len);
/// A stream socket's bytes not yet sent: what waits in `tx` beyond the
/// stack's bytes in flight (Linux's write_seq - snd_nxt); none before the
/// connection is established, as SIOCOUTQNSD says.
static inline uint32_t ns_unsent_bytes(ns_sock *s, const ns_tcp_fields *f) {
    if (f->state == 0 || f->state == 2 || f->state == 3) return 0;  // none yet, SYN_SENT, SYN_RECV
    uint32_t waiting = ns_ring_readable(&s->shm->tx);
    return waiting > f->in_flight ? waiting - f->in_flight : 0;
}
/// The integer in a /proc/sys file, or `fallback` if it cannot be read.
int ns_sysctl_int(const char *path, int fallback);
/// Whether the system lets clients use TCP Fast Open (net.ipv4.tcp_fastopen's
/// first bit): TCP_FASTOPEN_CONNECT and MSG_FASTOPEN say EOPNOTSUPP without it.
bool ns_fast_open_client(void);
/// Descriptors at or above this are never stack sockets (the table's size).
#define NS_MAX_FDS 65536
/// Makes a socket from a reply and its descriptors (memfd, app eventfd, doorbell); returns its fd.
int ns_adopt(const ns_reply *reply, const int *fds, int nfds, int family, int flags);
/// Makes `s`'s ring locks anew: in a child after fork, where a lock another thread held stays held.
void ns_init_locks(ns_sock *s);
/// Forgets `s` and frees it, or, if other threads sleep in it, wakes them
/// (their calls fail with EBADF) and frees it on a later release, once
/// they have left (the caller closes nothing else).
void ns_release(ns_sock *s);
/// How many stack sockets the process holds.
int ns_socket_count(void);
/// `fd` (a new descriptor of the same eventfd) now names `s` too; -1 with EMFILE if `s` has too many.
int ns_alias(ns_sock *s, int fd);
/// `fd` no longer names `s`; true if it was the last descriptor (the socket then ends).
bool ns_unalias(ns_sock *s, int fd);
/// Puts `kernel` in place of each of `s`'s descriptors (dup3, each keeping
/// its close-on-exec flag) and calls `each` with the number; 0, or -1 with
/// errno if a dup3 failed (the descriptors done before it are the kernel's).
int ns_replace_descriptors(ns_sock *s, int kernel, void (*each)(int fd));

// Sockets the stack cannot serve become the kernel's (kernel_handoff.c).
/// Whether only the kernel reaches `a` from here: loopback (127/8, ::1),
/// and for a destination the unspecified address too, which Linux's connect
/// and sendto take as this host.
bool ns_is_kernel_address(const ns_addr *a, bool destination);
/// Before connect, sendto or bind to `sa`: if only the kernel reaches it
/// and `s` may still become a kernel socket, it does (ns_hand_to_kernel).
/// 1 when it did (the caller then calls libc with the descriptor), 0 when
/// the stack keeps it, -1 with errno if the handing over failed.
int ns_kernel_takes(ns_sock *s, const struct sockaddr *sa, socklen_t len, bool destination);
/// Before a datagram's sendto or sendmsg to `sa`: as ns_kernel_takes, but a
/// socket on the wildcard that the loop has on the kernel's loopback too
/// (NS_STATE_LOOPBACK) sends there through the stack, keeping its side.
int ns_kernel_takes_send(ns_sock *s, const struct sockaddr *sa, socklen_t len);
/// Remembers a setsockopt that succeeded, for ns_hand_to_kernel.
void ns_remember_option(ns_sock *s, int level, int name, const void *value, socklen_t len);
/// Sets on kernel socket `k` every option set on `s`, in the order set.
void ns_apply_remembered_options(const ns_sock *s, int k);

/// Whether this thread is in one of the library's own exchanges with the
/// stack, whose descriptors are not an application's (pass_calls.c).
extern __thread int ns_in_control;
/// sendmsg and recvmsg of a descriptor that is no stack socket: stack
/// sockets among the descriptors passed (SCM_RIGHTS) go with their state
/// and are taken up on the other side (pass_calls.c).
ssize_t ns_pass_sendmsg(int fd, const struct msghdr *msg, int flags);
ssize_t ns_pass_recvmsg(int fd, struct msghdr *msg, int flags);

/// Sends `req` and waits for the reply (with up to 3 descriptors). -1 with errno if the stack cannot be reached.
int ns_call(const ns_request *req, ns_reply *reply, int *fds, int *nfds);
/// Sends one request on `s` (NULL: none) and returns its result (>= 0) or -1
/// with errno (the stack's, or ENETDOWN); descriptors in the reply are closed.
int ns_simple_call(ns_sock *s, uint32_t op, int32_t arg0, int32_t arg1, int64_t value, const ns_addr *addr,
                   ns_reply *reply);
/// Milliseconds on CLOCK_MONOTONIC, for the waits with a timeout.
long long ns_now_ms(void);
/// CLOCK_MONOTONIC in nanoseconds.
long long ns_now_ns(void);

/// Sends `req` without waiting for a reply.
void ns_post(const ns_request *req);
/// Tells the stack this process lets go of `socket` (no reply): it closes
/// once no other process holds it.
void ns_post_close(uint32_t socket);
/// As `ns_post_close`, but returns once the stack has let go: a datagram
/// socket's or a listener's close, whose port must be free (and its
/// datagrams go to the port's other sockets) when close(2) returns.
void ns_close_and_wait(uint32_t socket);

/// Connects to the stack's API socket (close-on-exec): a session of its own. -1 with errno.
int ns_api_connect(void);
/// One request and its reply on a connection of the caller's (descriptors in the reply are closed).
int ns_exchange_on(int fd, const ns_request *req, ns_reply *reply);
/// As the library loads: this image's process, and the fork handlers.
void ns_control_init(void);
/// Whether this is a vfork child (or a clone sharing the memory): the
/// table and the channel are its parent's, and not to be changed from here.
bool ns_in_vfork_child(void);

/// Before exec: takes the channel's lock (so no other thread's exchange is
/// cut in half) and returns the channel; -1 without taking it if this process
/// has no channel of its own (none yet, or a vfork child, which shares this
/// memory but not the session).
int ns_channel_hold(void);
void ns_channel_unhold(void);
/// After exec: the channel the old image left open is this process's.
void ns_channel_adopt(int fd);

/// Sockets carried into a new image (carry.c): what preparing one changed
/// in this process, undone by `ns_carry_end`.
typedef struct ns_carry {
    int memfd;          // the state the new image reads (-1: nothing carried)
    int kept_channel;   // exec: the channel left open for the new image (-1: none)
    int32_t token;      // a spawned child's: the holds it claims (0: none)
    char **envp;        // the environment to start it with, in `scratch`
    void *scratch;
    size_t scratch_length;
} ns_carry;

typedef enum ns_carry_kind {
    NS_CARRY_EXEC,       // this image is replaced (in a vfork child: a spawn)
    NS_CARRY_SPAWN,      // a child starts beside this process: the sockets it inherits
    NS_CARRY_SPAWN_ALL,  // the same, with file actions that may hand it any socket
} ns_carry_kind;

/// Writes the sockets for the new image about to start; returns the
/// environment to start it with (`envp` when nothing is carried). Calls
/// the stack but allocates nothing: a vfork child may call it.
char *const *ns_carry_prepare(char *const envp[], ns_carry_kind kind, ns_carry *c);
/// The new image did not start (exec or posix_spawn failed): gives back the holds taken for a child.
void ns_carry_failed(ns_carry *c);
/// After the exec failed, or the spawn returned: undoes what `ns_carry_prepare` changed here.
void ns_carry_end(ns_carry *c);
/// In the new image's constructor: takes over what the old one left (NETSTACK_EXEC_STATE).
void ns_carry_restore(void);

/// Each stack socket once, from descriptor `*cursor` on (start at 0; NULL
/// at the end). Allocates nothing: a vfork child may call it.
ns_sock *ns_next_socket(int *cursor);
/// Enters a socket carried into a new image: `carried` as it was (its
/// descriptors in this image), its region mapped anew from `memfd`, with `doorbell`.
int ns_adopt_carried(const ns_sock *carried, int memfd, int doorbell);
/// Lets go of the regions kept mapped for the stack to name again
/// (park_region): a fork's child's are its parent's, and a new session's
/// stack (one restarted, say) names its regions anew.
void ns_unpark_regions(bool in_fork_child);

/// Rings the stack's doorbell for `s`.
void ns_ring_doorbell(ns_sock *s);
/// Before a blocking receive waits: if this thread rang a doorbell since its
/// last one, it yields the CPU once. The ring woke the stack's loop, which
/// usually shares this CPU and does not preempt the thread that woke it:
/// without the yield, the request it was handed leaves only once this thread
/// has armed its wait and gone to sleep. Only a blocking receive yields (it
/// awaits a reply); a writer waiting for room, or poll and epoll, which may
/// wait for anything, would trade the loop's batching for switches (udp-pps's
/// poll loop fell from 0.77x to 0.45x of the kernel when poll yielded too).
void ns_yield_before_receive_wait(void);
/// Adds 1 to eventfd `fd`, and takes its count (it is non-blocking):
/// whether there was one. Both leave errno as it was.
void ns_eventfd_signal(int fd);
bool ns_eventfd_take(int fd);
/// Signals the socket's eventfd, as the stack does: "look again".
void ns_signal_event(ns_sock *s);
/// Takes the eventfd's count (it is non-blocking): the caller then looks at
/// the rings again before it waits. A count it took is news for the
/// socket's epoll entries too, which it queues (ns_epoll_news).
void ns_clear_event(ns_sock *s);

/// The calling thread's news eventfd, registered for others' tells until
/// `ns_poll_news_end`; -1 if it has none (then it polls as before).
int ns_poll_news_begin(void);
void ns_poll_news_end(void);
/// Empties the calling thread's news eventfd (its poll saw it signalled).
void ns_poll_news_take(void);
/// A count was taken from `s`'s eventfd: if another thread polls `s`,
/// every other thread in poll looks at its sockets again (poll_news.c).
void ns_poll_tell(ns_sock *s);
/// In a forked child: the parent's threads' registrations are not its own.
void ns_poll_news_after_fork(void);
/// Takes the eventfd's count, and nothing else; whether there was one.
bool ns_take_event(ns_sock *s);
/// When a blocking call given `timeout` (SO_RCVTIMEO or SO_SNDTIMEO) gives
/// up, on the clock of ns_now_ns; -1 for never.
long long ns_deadline(const struct timeval *timeout);
/// The deadline of a poll-style wait of `timeout_ms` from now (-1, as a
/// negative timeout: never), on the clock of ns_now_ns.
long long ns_deadline_in_ms(int timeout_ms);
/// Whether `deadline` (-1: never) has passed.
bool ns_deadline_passed(long long deadline);
/// Whole milliseconds until `deadline` (ns_now_ns's clock), rounded up, so
/// a wait for them never ends before it; 0 once it has passed, -1 for
/// never. (Deadlines on a millisecond clock end up to a millisecond early:
/// 1 ms asked from x.999 ms would be over at once.)
int ns_ms_left(long long deadline);
/// Waits until the eventfd is readable, `deadline` passes or `cap_ms` has
/// gone by (-1: no cap). 0 to look again; -1 with EAGAIN if the deadline had
/// passed, EINTR if a signal handler interrupted the wait and the kernel's
/// call would fail with it (ns_signal_interrupts), or EBADF if another
/// thread closed the socket.
int ns_wait_event(ns_sock *s, long long deadline, int cap_ms);
/// The cap of a blocking call's every wait: it then looks at the region
/// again. One thread's arm clears the eventfd that all of a socket's
/// threads wait on, so with two threads blocked in one socket (a reader
/// and a writer) a clear takes the signal meant for the other, which is
/// told at once (ns_poll_tell) unless more than 64 threads wait; the cap
/// bounds what that costs then, and an idle blocked thread wakes once a
/// second for it.
#define NS_WAIT_RECHECK_MS 1000
/// After a wait saw EINTR: whether the call fails with it. A socket call
/// with a timeout always does; one without is restarted if the handler has
/// SA_RESTART (signal(7)). Which signal came is not known here, so any
/// handler installed without SA_RESTART counts: a program with one must
/// expect EINTR anyway.
bool ns_signal_interrupts(bool timed);
/// Spins up to NETSTACK_SPIN_USEC microseconds (yielding the CPU each
/// turn) for `events` on `s`, as libvma's and Onload's busy polling: a
/// reply that comes within it is taken without sleeping and waking.
/// Returns whether `s` became ready.
bool ns_spin_until_ready(ns_sock *s, short events);
#define NS_SPIN_ENV "NETSTACK_SPIN_USEC"
#define NS_SPIN_DEFAULT_USEC 0

/// Room for a stream socket's writes in `tx`: the ring's, within SO_SNDBUF
/// (getsockopt's doubled value), which bounds what `tx` holds, sent and
/// acknowledged or not, as Linux's sk_sndbuf bounds the queued bytes; with
/// TCP_NOTSENT_LOWAT, none while that many bytes wait unsent.
uint32_t ns_send_room(ns_sock *s);
/// Whether a connected stream socket is writable for poll: Linux's
/// sk_stream_is_writeable (a third of the send buffer free, and with
/// TCP_NOTSENT_LOWAT fewer than half of it unsent).
bool ns_stream_writable(ns_sock *s);
/// A write found too little room: counts it (`nospace`) and asks the
/// stack to signal the room coming back, which a thread asleep in epoll
/// for EPOLLOUT waits for.
void ns_note_nospace(ns_sock *s);
/// What poll would say of `s` for `events` (POLLIN, POLLOUT, with POLLERR/POLLHUP always).
short ns_readiness(ns_sock *s, short events);
/// Before a wait: asks the stack to signal room for writes if POLLOUT is wanted, and clears the eventfd.
void ns_arm(ns_sock *s, short events);
/// `ns_arm`'s flags alone, the eventfd left as it is.
void ns_arm_flags(ns_sock *s, short events);
/// Whether a flag that `events` need is down (taken by the stack when it signalled).
bool ns_needs_arming(ns_sock *s, short events);
/// `ns_arm` unless the flags `events` need are up already: the stack has
/// not taken them, so it has signalled nothing since they went up but news
/// it signals always (a state, an error), and the eventfd needs no read. A
/// count it does hold then wakes the kernel's wait once: the waiter clears
/// it there. A poll set of 1000 idle sockets otherwise paid 1000
/// eventfd reads each time it waited. Whether it armed.
bool ns_arm_lazily(ns_sock *s, short events);

/// A stream socket's send from any source (data_calls.c): `fill` moves up
/// to `max` bytes into `tx` and returns how many, 0 when the source has no
/// more for this call, or -1 with errno. Blocking, it takes all `len`
/// bytes unless the source ends first; errors, SIGPIPE and waiting as send.
typedef ssize_t (*ns_fill)(void *source, ns_ring *tx, uint8_t *region, uint32_t max);
ssize_t ns_stream_send(ns_sock *s, size_t len, int flags, ns_fill fill, void *source);
/// A stream socket's receive into any sink: `drain` takes bytes from `rx`,
/// at most `max` after passing over the first `skip` (which only a peek
/// asks for: the urgent byte it may not see), and returns how many (0 with
/// `rx` empty), or -1 with errno. Returns
/// what `drain` took once it took something, 0 at end of input, or -1 with
/// errno (EAGAIN, ENOTCONN, the connection's error), waiting as recv. A
/// peek (MSG_PEEK) waits for `need` bytes (its target: MSG_WAITALL's
/// length, SO_RCVLOWAT's count), unless the end comes or the wait gives up.
typedef ssize_t (*ns_drain)(void *sink, ns_ring *rx, uint8_t *region, uint32_t skip, uint32_t max);
ssize_t ns_stream_recv(ns_sock *s, int flags, size_t need, ns_drain drain, void *sink);

/// The peer's urgent mark as this reader sees it (urgent_data.c), Linux's
/// urg_data: none (`marked` false, also once read past), a mark whose byte
/// has not come (TCP_URG_NOTYET), or one whose byte is in `rx`
/// (`arrived`: TCP_URG_VALID), taken with MSG_OOB or not (TCP_URG_READ).
typedef struct ns_urgent {
    bool marked, arrived, taken;
    bool hole;        // the reader sits at a replaced mark's byte (`urgent_hole`)
    uint32_t count;   // the mark's count (`urgent_mark`'s high half)
    uint32_t index;   // the urgent byte's index in `rx`
    uint32_t before;  // bytes in `rx` before it
} ns_urgent;
ns_urgent ns_urgent_state(ns_sock *s);
/// SO_OOBINLINE: the urgent byte stays in the stream for reads.
bool ns_urgent_inline(const ns_sock *s);
/// What a read from `rx`'s head does with the `waiting` bytes it counted
/// (counted before the mark is looked at: the stack publishes a mark
/// before its byte): passes over `skip` (the byte of a replaced mark it
/// sits at, `hole`, then the mark's own byte if it sits at it, unless
/// SO_OOBINLINE), then takes at most `take`, stopping at the mark.
typedef struct ns_urgent_read {
    uint32_t skip, take;
    uint32_t hole;  // of `skip`, a replaced mark's byte
    bool at_mark;   // after the hole: the next byte is the urgent one
    bool oobinline;
    bool pending;   // the urgent byte came and MSG_OOB has not taken it (POLLPRI)
} ns_urgent_read;
ns_urgent_read ns_urgent_plan(ns_sock *s, uint32_t waiting);
/// Whether the next byte read is the urgent byte (SIOCATMARK).
bool ns_at_urgent_mark(ns_sock *s);
/// The bytes in `rx` reads will give (FIONREAD's, TCP_INQ's): an urgent
/// byte a read passes over is not counted, as Linux's copied_seq is past it.
uint32_t ns_stream_unread(ns_sock *s);
/// recv(2)'s MSG_OOB, as Linux's tcp_recv_urg: the urgent byte into the
/// first non-empty piece of `iov`; MSG_OOB (and MSG_TRUNC for no room) in `msg_flags`.
ssize_t ns_stream_recv_urgent(ns_sock *s, const struct iovec *iov, size_t count, int flags, int *msg_flags);
/// A send with MSG_OOB wrote up to `tx`'s tail: the stack marks the last byte urgent.
void ns_urgent_sent_up_to_tail(ns_sock *s);

/// A datagram socket's send and receive (data_calls.c); `msg_flags` gets
/// MSG_TRUNC for a cut datagram, `record` (if not NULL) the datagram's
/// record: how it arrived.
ssize_t ns_dgram_send(ns_sock *s, const void *buf, size_t len, int flags, const struct sockaddr *sa, socklen_t salen);
/// ns_dgram_send with the IP header fields sendmsg's control messages set
/// (`fields`' traffic_class, hop_limit and send_flags; NULL: none).
ssize_t ns_dgram_send_with(ns_sock *s, const void *buf, size_t len, int flags, const struct sockaddr *sa,
                           socklen_t salen, const ns_datagram *fields);
/// Reads sendmsg's control messages for a datagram as Linux's ip_cmsg_send
/// and ip6_datagram_send_ctl do (datagram_cmsg.c): the TTL and DS field
/// into `fields`; 0, or -1 with errno (EINVAL, ENODEV) for one Linux refuses.
int ns_take_send_cmsgs(const ns_sock *s, const struct msghdr *msg, ns_datagram *fields);
ssize_t ns_dgram_recv(ns_sock *s, void *buf, size_t len, int flags, struct sockaddr *sa, socklen_t *salen,
                      int *msg_flags, ns_datagram *record);
/// recvmsg's control messages for a received datagram, those its socket
/// asked for (SO_TIMESTAMP or SO_TIMESTAMPNS, IP_PKTINFO, IP_RECVTTL,
/// IP_RECVTOS, IP_RECVORIGDSTADDR and IPv6's), into `msg_control`; sets
/// `msg_controllen`, and MSG_CTRUNC if they did not fit (datagram_cmsg.c).
void ns_put_arrival_cmsgs(const ns_sock *s, const ns_datagram *record, struct msghdr *msg);

/// Appends one control message at `*used` bytes into `msg_control`; false
/// (MSG_CTRUNC set) if it does not fit (datagram_cmsg.c).
bool ns_put_cmsg(struct msghdr *msg, size_t *used, int level, int type, const void *data, size_t len);
/// A stream socket's control message after a recvmsg: TCP_INQ's, if asked
/// (stream_cmsg.c); sets `msg_controllen`.
void ns_put_stream_cmsgs(ns_sock *s, struct msghdr *msg);

/// SO_TIMESTAMP's and SO_TIMESTAMPNS's flags, as Linux's sock flags
/// (SOCK_RCVTSTAMP, SOCK_RCVTSTAMPNS, SOCK_TSTAMP_NEW).
enum { NS_STAMP_ON = 1, NS_STAMP_NS = 2, NS_STAMP_NEW = 4 };
/// getsockopt and setsockopt of SO_TIMESTAMP, SO_TIMESTAMPNS and their
/// _NEW kin on a datagram socket: 0, -1 with errno, or 1 if `name` is none of them.
int ns_timestamp_get(const ns_sock *s, int name, int *value);
int ns_timestamp_set(ns_sock *s, int name, int value);
/// SIOCGSTAMP and SIOCGSTAMPNS: the last datagram's arrival; 1 if `request` is neither.
int ns_timestamp_ioctl(const ns_sock *s, unsigned long request, void *arg);
/// netdevice(7)'s requests, the stack's interface as the stack's
/// (interface_ioctls.c): 0, -1 with errno, or 1 if `request` is not one.
int ns_interface_ioctl(const ns_sock *s, unsigned long request, void *arg);
/// Writes a sockaddr_in of IPv4 `address` (network order, port 0) at `to`
/// (room for a sockaddr_in), and returns it (interface_ioctls.c).
struct sockaddr *ns_put_ipv4(void *to, const uint8_t address[4]);
/// The control message SO_TIMESTAMP or SO_TIMESTAMPNS asks for, for a
/// datagram that arrived at `arrival_ns`: its type (0: none asked), its
/// value into `value` (16 bytes) and its length into `len`.
int ns_timestamp_cmsg(const ns_sock *s, int64_t arrival_ns, void *value, size_t *len);

/// A wait's timeout in whole milliseconds for poll: rounded up, as the
/// kernel never wakes a wait early (a truncated 0.5 ms would be 0, and a
/// caller waiting for its timer would spin), and at most INT_MAX; -1 for
/// none (`ts` NULL); -2 for a negative or malformed one (EINVAL).
int ns_timeout_ms(const struct timespec *ts);


/// A count was taken from `s`'s eventfd: each of its epoll entries is
/// queued, to be looked at by its set's next wait (epoll_calls.c).
void ns_epoll_news(ns_sock *s);
/// Something here changed what `s` polls as (listen, connect, an option):
/// its entries are queued, and a thread asleep in a set that holds it wakes
/// if its entry has events now (or hears its next news), as Linux's
/// sk_state_change and tcp_set_rcvlowat's data_ready wake the socket's waiters.
void ns_epoll_changed(ns_sock *s);
/// Drops `fd` from every epoll registry (it is closing); with
/// `leave_kernel_sets`, its eventfd leaves the kernel's sets too (epoll_calls.c).
void ns_epoll_forget(int fd, bool leave_kernel_sets);
/// `fd` is a kernel socket now (ns_hand_to_kernel): each epoll set that
/// held it as a stack socket holds it as the kernel's, with the same events and data.
void ns_epoll_hand_over(int fd);
/// Drops the registry of epoll set `epfd` (it is closing).
void ns_epoll_forget_set(int epfd);
/// Leaves `epfd`'s kernel descriptor readable exactly while a stack socket in
/// it has events for it: the ready ones' eventfds signalled, the others armed and cleared.
void ns_epoll_settle(int epfd);

/// epoll sets in epoll sets (epoll_nesting.c): whether `fd` is an epoll set made here;
bool ns_is_epoll_set(int fd);
/// an epoll_ctl of `inner` (any descriptor) in `outer` succeeded;
void ns_epoll_nesting_changed(int outer, int op, int inner);
/// `fd` is closing;
void ns_epoll_forget_nesting(int fd);
/// before a wait on `outer`: settles every set inside it, however deep;
void ns_epoll_settle_inner(int outer);
/// before poll or select on `fd`: settles it, if it is an epoll set, and the sets inside it.
void ns_epoll_settle_tree(int fd);

#endif
