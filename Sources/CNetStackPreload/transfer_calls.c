// Bytes between a stack socket and another descriptor without the caller's
// buffer: sendfile(2) from a file, splice(2) from or to a pipe (web servers
// send files so; proxies splice). The bytes go straight between the
// descriptor and the socket's ring, in the one copy the kernel's read or
// write makes, and the calls keep Linux's rules for which descriptors
// qualify (sendfile reads a regular file or a block device; splice needs a
// pipe at one end) and its errors. Calls without a stack socket go to libc.
#include "preload_internal.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/// Linux's bound on one transfer (MAX_RW_COUNT).
#define NS_MAX_TRANSFER 0x7ffff000u
/// The largest UDP payload.
#define NS_MAX_DATAGRAM 65507u

/// Whether `fd` is open for reading (`reading`) or for writing: EBADF as
/// Linux's checks of a file's mode, for a descriptor that is not a socket of ours.
static bool open_for(int fd, bool reading) {
    int fl = LIBC(fcntl)(fd, F_GETFL);
    if (fl < 0 || (fl & O_PATH)) return false;
    int mode = fl & O_ACCMODE;
    return reading ? mode != O_WRONLY : mode != O_RDONLY;
}

static bool is_pipe(int fd) {
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

/// A datagram socket takes the bytes as one datagram (Linux's UDP corks a
/// splice into one): up to 65,507 of them, read from `fd` at `*pos` (or at
/// the file's position if `pos` is NULL).
static ssize_t one_datagram_from(ns_sock *s, int fd, off_t *pos, size_t len, int flags) {
    if (len > NS_MAX_DATAGRAM) len = NS_MAX_DATAGRAM;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) { errno = ENOMEM; return -1; }
    ssize_t n = pos ? pread(fd, buf, len, *pos) : LIBC(read)(fd, buf, len);
    if (n > 0) {
        n = ns_dgram_send(s, buf, (size_t)n, flags, NULL, 0);
        if (n > 0 && pos) *pos += n;
    }
    int e = errno;
    free(buf);
    errno = e;
    return n;
}

// MARK: sendfile

/// sendfile's source: a file read from `pos`, which the call then stores
/// back (into the caller's offset, or as the file's position).
struct file_source {
    int fd;
    off_t pos;
};

static ssize_t fill_from_file(void *source, ns_ring *tx, uint8_t *region, uint32_t max) {
    struct file_source *f = source;
    uint8_t *a, *b;
    uint32_t na, nb;
    ns_ring_space(tx, region, max, &a, &na, &b, &nb);
    struct iovec iov[2] = {{a, na}, {b, nb}};
    ssize_t n = preadv(f->fd, iov, nb ? 2 : 1, f->pos);
    if (n > 0) {
        ns_ring_commit(tx, (uint32_t)n);
        f->pos += n;
    }
    return n;
}

/// Up to `count` bytes of `in_fd` from `*offset` (the file's position if
/// NULL, which then moves) to stack socket `s`; blocking, all of them unless
/// the file ends first. The checks in Linux's order (do_sendfile).
static ssize_t stack_sendfile(ns_sock *s, int in_fd, off_t *offset, size_t count) {
    if (ns_lookup(in_fd)) { errno = offset ? ESPIPE : EINVAL; return -1; }  // a socket: not seekable, not a file
    if (!open_for(in_fd, true)) { errno = EBADF; return -1; }
    off_t pos = lseek(in_fd, 0, SEEK_CUR);
    if (offset) {
        if (pos < 0) return -1;  // ESPIPE: a pipe or a socket has no offsets
        pos = *offset;
        if (pos < 0) { errno = EINVAL; return -1; }
    }
    struct stat st;
    if (fstat(in_fd, &st) != 0) return -1;
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) { errno = EINVAL; return -1; }
    if (count == 0) return 0;
    if (count > NS_MAX_TRANSFER) count = NS_MAX_TRANSFER;
    ssize_t n;
    struct file_source f = {in_fd, pos};
    if (s->datagram) {
        n = one_datagram_from(s, in_fd, &f.pos, count, 0);
    } else {
        n = ns_stream_send(s, count, 0, fill_from_file, &f);
    }
    if (n > 0) {
        if (offset) *offset = f.pos;
        else lseek(in_fd, f.pos, SEEK_SET);
    }
    return n;
}

NS_EXPORT ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count) {
    ns_sock *s = ns_lookup(out_fd);
    if (!s) return LIBC(sendfile)(out_fd, in_fd, offset, count);  // a stack socket as in_fd: libc says EINVAL, as Linux
    return stack_sendfile(s, in_fd, offset, count);
}

// off_t is 64 bits on the ABIs this library builds for, so both names are one call.
NS_EXPORT ssize_t sendfile64(int out_fd, int in_fd, off_t *offset, size_t count) {
    return sendfile(out_fd, in_fd, offset, count);
}

// MARK: splice

/// splice's source: a pipe. Once bytes moved, an empty pipe ends the call
/// (Linux returns what it spliced rather than wait for more); before, the
/// read waits unless `nonblocking`.
struct pipe_source {
    int fd;
    bool nonblocking;
    bool moved;
};

/// poll(2) of pipe `fd` alone: > 0 when `events` came, 0 when `timeout_ms`
/// (-1: none) passed first, -1 with errno.
static int wait_for_pipe(int fd, short events, int timeout_ms) {
    struct pollfd p = {.fd = fd, .events = events};
    return LIBC(poll)(&p, 1, timeout_ms);
}

static bool pipe_ready(int fd, short events) { return wait_for_pipe(fd, events, 0) > 0; }

static ssize_t fill_from_pipe(void *source, ns_ring *tx, uint8_t *region, uint32_t max) {
    struct pipe_source *p = source;
    if ((p->moved || p->nonblocking) && !pipe_ready(p->fd, POLLIN)) {
        if (p->moved) return 0;
        errno = EAGAIN;
        return -1;
    }
    uint8_t *a, *b;
    uint32_t na, nb;
    ns_ring_space(tx, region, max, &a, &na, &b, &nb);
    struct iovec iov[2] = {{a, na}, {b, nb}};
    ssize_t n = LIBC(readv)(p->fd, iov, nb ? 2 : 1);
    if (n > 0) {
        ns_ring_commit(tx, (uint32_t)n);
        p->moved = true;
    }
    return n;
}

/// splice's sink: a pipe with room for `max` bytes (so the write does not wait).
struct pipe_sink {
    int fd;
    uint32_t max;
};

static ssize_t drain_to_pipe(void *sink, ns_ring *rx, uint8_t *region, uint32_t skip, uint32_t max) {
    (void)skip;  // never asked: a splice does not peek
    struct pipe_sink *p = sink;
    const uint8_t *a, *b;
    uint32_t na, nb;
    uint32_t n = ns_ring_peek(rx, region, &a, &na, &b, &nb);
    if (n == 0) return 0;
    if (n > p->max) n = p->max;
    if (n > max) n = max;
    if (na > n) na = n;
    nb = n - na;
    struct iovec iov[2] = {{(void *)a, na}, {(void *)b, nb}};
    ssize_t w = LIBC(writev)(p->fd, iov, nb ? 2 : 1);
    if (w > 0) ns_ring_consume(rx, (uint32_t)w);
    return w;
}

/// Room in pipe `fd`, waiting for some unless `nonblocking` (EAGAIN); -1 with errno.
static ssize_t pipe_room(int fd, bool nonblocking) {
    for (;;) {
        int size = LIBC(fcntl)(fd, F_GETPIPE_SZ), held = 0;
        if (size < 0 || LIBC(ioctl)(fd, FIONREAD, &held) < 0) return -1;
        if (held < size) return size - held;
        if (nonblocking) { errno = EAGAIN; return -1; }
        if (wait_for_pipe(fd, POLLOUT, -1) < 0) return -1;
    }
}

/// One end a stack socket, the other (`other`) a pipe: the checks in Linux's order (do_splice).
static ssize_t stack_splice(ns_sock *in, loff_t *off_in, ns_sock *out, loff_t *off_out, int other, size_t len,
                            unsigned int flags) {
    if (flags & ~(unsigned)(SPLICE_F_MOVE | SPLICE_F_NONBLOCK | SPLICE_F_MORE | SPLICE_F_GIFT)) {
        errno = EINVAL;
        return -1;
    }
    if (in && out) { errno = EINVAL; return -1; }  // two sockets: no pipe between them
    if (!open_for(other, out != NULL)) { errno = EBADF; return -1; }
    if (!is_pipe(other)) { errno = EINVAL; return -1; }
    bool pipe_nonblocking = (flags & SPLICE_F_NONBLOCK) || (LIBC(fcntl)(other, F_GETFL) & O_NONBLOCK);
    if (len > NS_MAX_TRANSFER) len = NS_MAX_TRANSFER;
    if (out) {  // pipe to socket
        if (off_in) { errno = ESPIPE; return -1; }
        if (off_out) { errno = EINVAL; return -1; }  // a socket has no offsets to write at
        if (out->datagram) {
            if (pipe_nonblocking && !pipe_ready(other, POLLIN)) { errno = EAGAIN; return -1; }
            return one_datagram_from(out, other, NULL, len, 0);
        }
        // An empty pipe is waited for here, not inside the send's step, which holds the socket's tx lock.
        if (!pipe_nonblocking && wait_for_pipe(other, POLLIN, -1) < 0) return -1;
        struct pipe_source p = {other, pipe_nonblocking, false};
        return ns_stream_send(out, len, 0, fill_from_pipe, &p);
    }
    // socket to pipe
    if (off_out) { errno = ESPIPE; return -1; }
    if (off_in) { errno = EINVAL; return -1; }
    if (in->datagram || in->listening) { errno = EINVAL; return -1; }
    ssize_t room = pipe_room(other, pipe_nonblocking);
    if (room < 0) return -1;
    struct pipe_sink p = {other, (size_t)room < len ? (uint32_t)room : (uint32_t)len};
    return ns_stream_recv(in, 0, 1, drain_to_pipe, &p);
}

NS_EXPORT ssize_t splice(int fd_in, loff_t *off_in, int fd_out, loff_t *off_out, size_t len, unsigned int flags) {
    ns_sock *in = ns_lookup(fd_in), *out = ns_lookup(fd_out);
    if (!in && !out) return LIBC(splice)(fd_in, off_in, fd_out, off_out, len, flags);
    if (len == 0) return 0;
    return stack_splice(in, off_in, out, off_out, in ? fd_out : fd_in, len, flags);
}
