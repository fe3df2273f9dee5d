"""Socket calls and their errors, as a program sees them. test_preload.py
runs it once on the kernel's sockets and once through the preload library
(`netstack run`), against the kernel's echo server at HOST:9200 (nothing
listens on 9201); each line it prints must be the same both times."""
import ctypes
import errno
import fcntl
import os
import select
import socket
import struct
import sys
import termios
import time

HOST = sys.argv[1]
ECHO, CLOSED = (HOST, 9200), (HOST, 9201)


def err(f):
    try:
        r = f()
        return f"ok {r!r}"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def out(name, value):
    print(f"{name}: {value}", flush=True)


def wait(s, events, timeout=5000):
    p = select.poll()
    p.register(s, events)
    return p.poll(timeout)


s = socket.socket()
out("blocking connect to a closed port", err(lambda: s.connect(CLOSED)))
s.close()

s = socket.socket()
s.setblocking(False)
out("non-blocking connect", err(lambda: s.connect(CLOSED)))
wait(s, select.POLLOUT)
out("SO_ERROR after refusal", errno.errorcode.get(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), 0))
s.close()

s = socket.socket()
out("recv before connect", err(lambda: s.recv(1)))
out("getpeername before connect", err(lambda: s.getpeername()))
out("unknown option", err(lambda: s.getsockopt(socket.IPPROTO_TCP, 9999)))
s.setblocking(False)
out("non-blocking connect", err(lambda: s.connect(ECHO)))
out("poll for the connection", [ev & select.POLLOUT for _, ev in wait(s, select.POLLOUT)])
out("SO_ERROR when connected", s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))
out("connect again", err(lambda: s.connect(ECHO)))
out("getpeername", s.getpeername())
out("getsockname port is set", s.getsockname()[1] != 0)
out("recv with nothing there", err(lambda: s.recv(10)))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
out("TCP_NODELAY", s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
out("SO_KEEPALIVE", s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) != 0)

# poll with a pipe beside the socket
r, w = os.pipe()
p = select.poll()
p.register(s, select.POLLIN)
p.register(r, select.POLLIN)
out("poll with nothing ready", p.poll(100))
os.write(w, b"x")
out("poll with the pipe ready", sorted(fd == r for fd, _ in p.poll(1000)))
os.read(r, 1)
s.send(b"hello")
ready = p.poll(5000)
out("poll with the socket ready", sorted(fd == s.fileno() for fd, _ in ready))
time.sleep(0.2)
buf = bytearray(4)
fcntl.ioctl(s, termios.FIONREAD, buf)
out("FIONREAD", struct.unpack("i", buf)[0])
out("MSG_PEEK", s.recv(10, socket.MSG_PEEK))
out("recv", s.recv(10))

# epoll, level-triggered, with the same pipe
ep = select.epoll()
ep.register(s.fileno(), select.EPOLLIN)
ep.register(r, select.EPOLLIN)
out("epoll with nothing ready", ep.poll(0.1))
os.write(w, b"y")
out("epoll with the pipe ready", [fd == r for fd, _ in ep.poll(1)])
os.read(r, 1)
s.send(b"again")
out("epoll with the socket ready", [fd == s.fileno() for fd, _ in ep.poll(5)])
out("epoll still ready (level)", [fd == s.fileno() for fd, _ in ep.poll(1)])
out("recv", s.recv(10))
# edge-triggered: a report per arrival, none again for what was reported
ep.modify(s.fileno(), select.EPOLLIN | select.EPOLLET)
s.send(b"edge")
time.sleep(0.2)
out("EPOLLET: the arrival", [fd == s.fileno() for fd, _ in ep.poll(1)])
out("EPOLLET: nothing new", ep.poll(0.1))
s.send(b"more")
time.sleep(0.2)
out("EPOLLET: a new arrival", [fd == s.fileno() for fd, _ in ep.poll(1)])
out("recv", s.recv(100))
out("EPOLLET: drained", ep.poll(0.1))
ep.modify(s.fileno(), select.EPOLLOUT)
out("epoll for writing", [(fd == s.fileno(), ev & select.EPOLLOUT) for fd, ev in ep.poll(1)])
ep.unregister(s.fileno())
ep.close()

# sendmsg, recvmsg, MSG_WAITALL and pselect (through select with a timeout of 0)
s.setblocking(True)
out("sendmsg of three pieces", s.sendmsg([b"ab", b"", b"cdef"]))
time.sleep(0.2)
data, ancillary, flags, address = s.recvmsg(3)
out("recvmsg", (data, ancillary, flags, address))
out("recvmsg_into two buffers", s.recvmsg_into([bytearray(1), bytearray(10)])[0])
s.send(b"0123")
s.send(b"4567")
out("MSG_WAITALL", s.recv(8, socket.MSG_WAITALL))
out("select with nothing to read", select.select([s], [], [], 0)[0] == [])
libc = ctypes.CDLL(None, use_errno=True)


def pselect_readable(fd, seconds):
    fds = (ctypes.c_ulong * 16)()
    fds[fd // 64] |= 1 << (fd % 64)
    ts = (ctypes.c_long * 2)(int(seconds), int((seconds % 1) * 1e9))
    return libc.pselect(fd + 1, ctypes.byref(fds), None, None, ctypes.byref(ts), None), fds[fd // 64] != 0


out("pselect with nothing to read", pselect_readable(s.fileno(), 0))
s.send(b"p")
out("pselect with the echo there", pselect_readable(s.fileno(), 5))
out("recv", s.recv(1))

# A second descriptor of the socket (dup, dup2): closing one leaves the
# other working; the status flags are shared, the close-on-exec flag not.
d = os.dup(s.fileno())
os.write(d, b"dup")
time.sleep(0.2)
out("read from the original after writing to the dup", s.recv(10))
d2 = os.dup2(s.fileno(), 100, inheritable=False)
os.close(d)
out("dup2 to 100", d2)
s.setblocking(False)
out("the dup shares O_NONBLOCK", bool(fcntl.fcntl(d2, fcntl.F_GETFL) & os.O_NONBLOCK))
out("and not FD_CLOEXEC", (fcntl.fcntl(s.fileno(), fcntl.F_GETFD), fcntl.fcntl(d2, fcntl.F_GETFD)))
s.setblocking(True)
os.write(d2, b"two")
time.sleep(0.2)
out("recv after the dup's write", s.recv(10))
os.close(d2)
out("the socket still works after its dups closed", (s.send(b"x"), s.recv(1)))

s.shutdown(socket.SHUT_WR)
out("recv after the peer closed", s.recv(10))
out("send after shutdown", err(lambda: s.send(b"z")))
s.close()

# listeners
l1 = socket.socket()
l1.bind(("0.0.0.0", 9300))
l1.listen(4)
l2 = socket.socket()
out("bind to a port in use", err(lambda: l2.bind(("0.0.0.0", 9300))))
l1.setblocking(False)
out("accept with nobody waiting", err(lambda: l1.accept()))
l1.close()
l2.close()

fd = socket.socket().detach()
os.close(fd)
out("close twice", err(lambda: os.close(fd)))
