"""Socket calls and their errors, as a program sees them. test_preload.py
runs it once on the kernel's sockets and once through the preload library
(`netstack run`), against the kernel's echo server at HOST:9200 (nothing
listens on 9201); each line it prints must be the same both times."""
import asyncio
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
out("SO_KEEPALIVE", s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))

# options: what getsockopt says after setsockopt, and the values refused
KEEPALIVE = (socket.TCP_KEEPIDLE, socket.TCP_KEEPINTVL, socket.TCP_KEEPCNT)
for name, value in zip(KEEPALIVE, (30, 5, 4)):
    s.setsockopt(socket.IPPROTO_TCP, name, value)
out("keepalive idle, interval, count", [s.getsockopt(socket.IPPROTO_TCP, name) for name in KEEPALIVE])
for name, value in ((socket.TCP_KEEPIDLE, 0), (socket.TCP_KEEPIDLE, 32768), (socket.TCP_KEEPINTVL, -1),
                    (socket.TCP_KEEPCNT, 0), (socket.TCP_KEEPCNT, 128)):
    out(f"keepalive option {name} = {value}", err(lambda: s.setsockopt(socket.IPPROTO_TCP, name, value)))
out("unknown option set", err(lambda: s.setsockopt(socket.IPPROTO_TCP, 9999, 1)))
o = socket.socket()
out("defaults: SO_KEEPALIVE, idle, interval, count",
    [o.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)] + [o.getsockopt(socket.IPPROTO_TCP, n) for n in KEEPALIVE])
out("SO_LINGER default", struct.unpack("ii", o.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8)))
o.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 7, 5))
out("SO_LINGER on, 5 s", struct.unpack("ii", o.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8)))
o.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 0, 9))
out("SO_LINGER off keeps the time", struct.unpack("ii", o.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8)))
out("SO_LINGER too short", err(lambda: o.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"1234")))
for value in (65536, 1, 1 << 30):
    o.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, value)
    o.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, value)
    out(f"SO_RCVBUF, SO_SNDBUF after {value}",
        (o.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF), o.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)))
for name in (socket.SO_REUSEADDR, socket.SO_REUSEPORT):
    before = o.getsockopt(socket.SOL_SOCKET, name)
    o.setsockopt(socket.SOL_SOCKET, name, 5)
    out(f"option {name} before and after", (before, o.getsockopt(socket.SOL_SOCKET, name)))
o.close()

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
out("send of nothing", s.send(b""))
fcntl.ioctl(s, termios.FIONCLEX)
out("FIONCLEX", fcntl.fcntl(s, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)
fcntl.ioctl(s, termios.FIOCLEX)
out("FIOCLEX", fcntl.fcntl(s, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)

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

# epoll inside epoll (and polled, and selected): the inner set is readable
# exactly while it has events for its caller
inner = select.epoll()
inner.register(s.fileno(), select.EPOLLIN)
inner.register(r, select.EPOLLIN)
outer = select.epoll()
outer.register(inner.fileno(), select.EPOLLIN)
polled = select.poll()
polled.register(inner.fileno(), select.POLLIN)
out("outer epoll with nothing ready", outer.poll(0.1))
out("poll on the inner set with nothing ready", polled.poll(100))
s.send(b"nested")
out("outer epoll: the inner set", [(fd == inner.fileno(), ev) for fd, ev in outer.poll(5)])
out("outer epoll: still (level)", [(fd == inner.fileno(), ev) for fd, ev in outer.poll(1)])
out("poll on the inner set", [(fd == inner.fileno(), ev) for fd, ev in polled.poll(1000)])
out("select on the inner set", select.select([inner.fileno()], [], [], 1)[0] == [inner.fileno()])
out("inner epoll: the socket", [(fd == s.fileno(), ev) for fd, ev in inner.poll(1)])
out("recv", s.recv(100))
out("outer epoll after the read", outer.poll(0.1))
out("poll on the inner set after the read", polled.poll(100))
out("select on the inner set after the read", select.select([inner.fileno()], [], [], 0.1)[0])
os.write(w, b"p")
out("outer epoll: the pipe in the inner set", [fd == inner.fileno() for fd, _ in outer.poll(1)])
os.read(r, 1)
top = select.epoll()
top.register(outer.fileno(), select.EPOLLIN)
out("two levels with nothing ready", top.poll(0.1))
s.send(b"deep")
out("two levels: the outer set", [fd == outer.fileno() for fd, _ in top.poll(5)])
out("recv", s.recv(100))
out("two levels after the read", top.poll(0.1))
inner.modify(s.fileno(), select.EPOLLIN | select.EPOLLET)
s.send(b"edge")
time.sleep(0.2)
out("outer epoll: an edge in the inner set", [fd == inner.fileno() for fd, _ in outer.poll(1)])
out("inner epoll: the edge", [fd == s.fileno() for fd, _ in inner.poll(1)])
out("outer epoll after the edge was reported", outer.poll(0.1))
out("recv", s.recv(100))
inner.modify(s.fileno(), select.EPOLLIN)


async def inner_set_as_asyncio_reader():
    loop = asyncio.get_running_loop()
    got = loop.create_future()

    def ready():
        events = inner.poll(0)
        loop.remove_reader(inner.fileno())
        got.set_result(([fd == s.fileno() for fd, _ in events], s.recv(100)))

    loop.add_reader(inner.fileno(), ready)
    s.send(b"asyncio")
    return await asyncio.wait_for(got, 5)


out("asyncio with an epoll set as a reader", asyncio.run(inner_set_as_asyncio_reader()))
top.close()
outer.close()
inner.close()


async def asyncio_streams():
    reader, writer = await asyncio.open_connection(*ECHO)
    writer.write(b"through asyncio")
    await writer.drain()
    data = await asyncio.wait_for(reader.readexactly(15), 5)
    writer.close()
    await writer.wait_closed()
    return data


out("asyncio streams", asyncio.run(asyncio_streams()))

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
