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
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time

from batches import MSG_WAITFORONE, batch

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

# A neighbour on the link that never answers ARP: the connect fails once
# address resolution gives up (about 3 s), not after two minutes of SYNs.
s = socket.socket()
out("blocking connect to an address no one answers ARP for",
    err(lambda: s.connect((HOST.rsplit(".", 1)[0] + ".77", 80))))
s.close()

s = socket.socket()
s.setblocking(False)
out("non-blocking connect", err(lambda: s.connect(CLOSED)))
wait(s, select.POLLOUT)
out("SO_ERROR after refusal", errno.errorcode.get(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), 0))
s.close()

# Addresses that name no one host (tcp_v4_connect, inet_bind, udp_sendmsg's
# SO_BROADCAST check), and sending on a socket never connected.
BROADCAST = HOST.rsplit(".", 1)[0] + ".255"
for name, address in (("the subnet's broadcast", BROADCAST), ("a multicast group", "224.0.0.1")):
    s = socket.socket()
    out(f"connect to {name}", err(lambda: s.connect((address, 80))))
    s.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
out("sendto the subnet's broadcast without SO_BROADCAST", err(lambda: u.sendto(b"x", (BROADCAST, 9))))
out("bind after that send, which bound it", err(lambda: u.bind((BROADCAST, 0))))
u.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
out("bind a datagram socket to the subnet's broadcast", err(lambda: u.bind((BROADCAST, 0))))
u.close()
s = socket.socket()
out("send before connect", err(lambda: s.send(b"x")))
out("sendto before connect", err(lambda: s.sendto(b"x", ECHO)))
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
st = os.fstat(s.fileno())
out("fstat: a socket, its mode and size", (stat.S_ISSOCK(st.st_mode), oct(stat.S_IMODE(st.st_mode)), st.st_size))
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
fcntl.ioctl(s, termios.TIOCOUTQ, buf)
out("SIOCOUTQ once the echo came", struct.unpack("i", buf)[0])
SIOCOUTQNSD, SIOCATMARK = 0x894B, 0x8905
ioctl_int = lambda x, request: struct.unpack("i", fcntl.ioctl(x, request, bytes(4)))[0]
out("SIOCOUTQNSD and SIOCATMARK once the echo came", (ioctl_int(s, SIOCOUTQNSD), ioctl_int(s, SIOCATMARK)))
out("recv MSG_ERRQUEUE with none queued", err(lambda: s.recv(10, socket.MSG_ERRQUEUE)))
out("recv MSG_OOB with no urgent data", err(lambda: s.recv(1, socket.MSG_OOB)))


# Urgent data (RFC 9293 3.8.5) as Linux gives it to a reader: the kernel's
# server at 9202 sends "abc", then "!" with MSG_OOB, then "def".
def urgent_from_the_server(oobinline):
    name = "urgent data" + (" with SO_OOBINLINE" if oobinline else "")
    g = socket.create_connection((HOST, 9202), timeout=10)
    g.settimeout(None)  # else Python polls for POLLIN before each recv
    if oobinline:
        g.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, 1)
    else:  # SIGURG to the socket's owner (sk_send_sigurg)
        urged = []
        signal.signal(signal.SIGURG, lambda *_: urged.append(1))
        fcntl.fcntl(g, fcntl.F_SETOWN, os.getpid())
    g.send(b"r")
    out(f"{name}: POLLPRI", [e & (select.POLLIN | select.POLLPRI) for _, e in wait(g, select.POLLPRI)])
    time.sleep(0.2)  # and "def"
    if not oobinline:
        out(f"{name}: SIGURGs", len(urged))
        signal.signal(signal.SIGURG, signal.SIG_DFL)
    out(f"{name}: select's exceptfds", len(select.select([], [], [g], 5)[2]))
    ep = select.epoll()
    ep.register(g, select.EPOLLPRI | select.EPOLLET)
    out(f"{name}: EPOLLPRI, edge-triggered", [e for _, e in ep.poll(5)])
    out(f"{name}: again", [e for _, e in ep.poll(0.1)])
    out(f"{name}: SIOCATMARK before it", ioctl_int(g, SIOCATMARK))
    out(f"{name}: a peek for 100 with MSG_WAITALL stops at the mark", g.recv(100, socket.MSG_PEEK | socket.MSG_WAITALL))
    out(f"{name}: a read stops at the mark", g.recv(100))
    out(f"{name}: SIOCATMARK at it", ioctl_int(g, SIOCATMARK))
    out(f"{name}: MSG_OOB|MSG_PEEK", err(lambda: g.recv(1, socket.MSG_OOB | socket.MSG_PEEK)))
    out(f"{name}: MSG_OOB", err(lambda: g.recv(1, socket.MSG_OOB)))
    out(f"{name}: MSG_OOB again", err(lambda: g.recv(1, socket.MSG_OOB)))
    out(f"{name}: poll after", [e for _, e in wait(g, select.POLLIN | select.POLLPRI)])
    out(f"{name}: MSG_PEEK at the mark", g.recv(100, socket.MSG_PEEK))
    out(f"{name}: the read at the mark", g.recv(100))
    out(f"{name}: SIOCATMARK past it", ioctl_int(g, SIOCATMARK))
    out(f"{name}: MSG_OOB past it", err(lambda: g.recv(1, socket.MSG_OOB)))
    out(f"{name}: poll past it", [e for _, e in wait(g, select.POLLIN | select.POLLPRI, 100)])
    ep.close()
    g.send(b".")
    g.close()


urgent_from_the_server(False)
urgent_from_the_server(True)


# Signal-driven I/O: with O_ASYNC and an owner, news on the socket (its
# echo, a datagram) sends the owner SIGIO, as Linux's sk_wake_async; without
# O_ASYNC, none.
def signalled(sock, how, act):
    got = []
    signal.signal(signal.SIGIO, lambda *_: got.append(1))
    fcntl.fcntl(sock, fcntl.F_SETOWN, os.getpid())
    if how == "fcntl":
        fcntl.fcntl(sock, fcntl.F_SETFL, fcntl.fcntl(sock, fcntl.F_GETFL) | os.O_ASYNC)
    elif how == "FIOASYNC":
        fcntl.ioctl(sock, termios.FIOASYNC, struct.pack("i", 1))
    flags = fcntl.fcntl(sock, fcntl.F_GETFL) & (os.O_ASYNC | os.O_NONBLOCK | os.O_ACCMODE)
    act()
    time.sleep(0.2)
    signal.signal(signal.SIGIO, signal.SIG_IGN)
    return flags, len(got) > 0


a = socket.create_connection(ECHO, timeout=5)
out("O_ASYNC by fcntl on a stream socket: F_GETFL, SIGIO at the echo",
    signalled(a, "fcntl", lambda: (a.send(b"ping"), a.recv(10))))
fcntl.fcntl(a, fcntl.F_SETFL, fcntl.fcntl(a, fcntl.F_GETFL) & ~os.O_ASYNC)
out("O_ASYNC off: F_GETFL, SIGIO at the echo", signalled(a, "none", lambda: (a.send(b"ping"), a.recv(10))))
a.close()
a = socket.create_connection(ECHO, timeout=5)
out("FIOASYNC on a stream socket: F_GETFL, SIGIO at the echo",
    signalled(a, "FIOASYNC", lambda: (a.send(b"ping"), a.recv(10))))
a.close()
d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
d.connect(ECHO)
out("O_ASYNC on a datagram socket: F_GETFL, SIGIO at the echo",
    signalled(d, "fcntl", lambda: (d.send(b"ping"), d.recv(10))))
d.close()
signal.signal(signal.SIGIO, signal.SIG_DFL)
# Sending it: "xy", then "pz" with MSG_OOB (its last byte is the urgent
# one), then "w"; the server answers with what it read in line and out of band.
g = socket.create_connection((HOST, 9202), timeout=10)
g.send(b"s")
g.send(b"xy")
time.sleep(0.05)
out("urgent data sent: send with MSG_OOB", g.send(b"pz", socket.MSG_OOB))
time.sleep(0.05)
g.send(b"w")
out("urgent data sent: what the server read", g.recv(100))
g.send(b".")
g.close()
out("SO_PEERCRED of an inet socket", struct.unpack("3i", s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)))
out("send of nothing", s.send(b""))
fcntl.ioctl(s, termios.FIONCLEX)
out("FIONCLEX", fcntl.fcntl(s, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)
fcntl.ioctl(s, termios.FIOCLEX)
out("FIOCLEX", fcntl.fcntl(s, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)

# A wait that times out leaves errno as it was, as the kernel's calls do
# on success (nc prints it after a connect's poll timed out).
libc = ctypes.CDLL(None, use_errno=True)
pfd = struct.pack("ihh", s.fileno(), select.POLLIN, 0)
fds = ctypes.create_string_buffer(pfd, len(pfd))
ctypes.set_errno(errno.EINPROGRESS)
out("poll timed out, errno kept", (libc.poll(fds, 1, 10), errno.errorcode.get(ctypes.get_errno())))
read_set = ctypes.create_string_buffer(128)
read_set[s.fileno() // 8] = 1 << (s.fileno() % 8)
tv = struct.pack("ll", 0, 10000)
ctypes.set_errno(errno.EINPROGRESS)
out("select timed out, errno kept", (libc.select(s.fileno() + 1, read_set, None, None, ctypes.create_string_buffer(tv, 16)),
                                     errno.errorcode.get(ctypes.get_errno())))
quiet = select.epoll()
quiet.register(s, select.EPOLLIN)
ctypes.set_errno(errno.EINPROGRESS)
out("epoll_wait timed out, errno kept", (libc.epoll_wait(quiet.fileno(), ctypes.create_string_buffer(12), 1, 10),
                                         errno.errorcode.get(ctypes.get_errno())))
quiet.close()

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


def result(r):
    return r if r >= 0 else errno.errorcode[ctypes.get_errno()]


pieces = [ctypes.create_string_buffer(b, len(b)) for b in (b"ab", b"cd", b"ef")]
vec, keep = batch(pieces)
out("sendmmsg of three", (result(libc.sendmmsg(s.fileno(), vec, 3, 0)), [m.len for m in vec]))
time.sleep(0.2)
space = [ctypes.create_string_buffer(10) for _ in range(3)]
vec, keep = batch(space)
n = result(libc.recvmmsg(s.fileno(), vec, 3, MSG_WAITFORONE, None))
out("recvmmsg, MSG_WAITFORONE", (n, [m.len for m in vec][:n], space[0].raw[:vec[0].len]))
out("recvmmsg with nothing there", result(libc.recvmmsg(s.fileno(), vec, 3, socket.MSG_DONTWAIT, None)))


class TimeSpec(ctypes.Structure):
    _fields_ = [("sec", ctypes.c_long), ("nsec", ctypes.c_long)]


class PollFd(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_int), ("events", ctypes.c_short), ("revents", ctypes.c_short)]


def timed(f):
    """f's result, and whether it took at least 0.5 ms (a wait is never cut short)."""
    start = time.monotonic()
    r = f()
    return r, time.monotonic() - start >= 0.0005


pfd = PollFd(s.fileno(), select.POLLIN, 0)
out("ppoll with nothing there for 0.5 ms", timed(lambda: libc.ppoll(ctypes.byref(pfd), 1, ctypes.byref(TimeSpec(0, 500000)), None)))
out("ppoll with a malformed timeout", result(libc.ppoll(ctypes.byref(pfd), 1, ctypes.byref(TimeSpec(0, -1)), None)))
out("select with nothing there for 0.5 ms", timed(lambda: select.select([s], [], [], 0.0005)[0]))
ep = select.epoll()
ep.register(s.fileno(), select.EPOLLIN)
events = (ctypes.c_uint8 * 12 * 4)()
out("epoll_pwait2 with nothing there for 0.5 ms",
    timed(lambda: libc.epoll_pwait2(ep.fileno(), events, 4, ctypes.byref(TimeSpec(0, 500000)), None)))
s.send(b"q")
out("epoll_pwait2 with the echo there", libc.epoll_pwait2(ep.fileno(), events, 4, ctypes.byref(TimeSpec(5, 0)), None))
out("recv", s.recv(1))
ep.close()

# A second descriptor of the socket (dup, dup2): closing one leaves the
# other working; the status flags are shared, the close-on-exec flag not.
d = os.dup(s.fileno())
out("fstat of the dup: the same socket", (os.fstat(d).st_dev, os.fstat(d).st_ino) == (st.st_dev, st.st_ino))
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
HANG_UP = select.POLLIN | select.POLLOUT | select.POLLHUP | select.POLLRDHUP
out("recv after the peer closed", s.recv(10))
time.sleep(0.1)
out("poll with both directions shut", [e & HANG_UP for _, e in wait(s, HANG_UP, 0)])
ep = select.epoll()
ep.register(s, select.EPOLLIN | select.EPOLLRDHUP)
out("epoll with both directions shut", [e for _, e in ep.poll(0)])
ep.close()
out("send after shutdown", err(lambda: s.send(b"z")))
s.close()

# EPOLLEXCLUSIVE: only with plain events, and not to be modified (Linux's ep_ctl)
x = socket.create_connection(ECHO)
ep = select.epoll()
out("EPOLLEXCLUSIVE with EPOLLRDHUP", err(lambda: ep.register(x, select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLEXCLUSIVE)))
out("EPOLLEXCLUSIVE", err(lambda: ep.register(x, select.EPOLLIN | select.EPOLLEXCLUSIVE)))
out("EPOLL_CTL_MOD of it", err(lambda: ep.modify(x, select.EPOLLIN)))
ep.close()
x.close()
# Four threads wait in their own sets, each holding one listener with
# EPOLLEXCLUSIVE: a connection (from a kernel socket of a child's, to this
# program's own address) wakes one of them, not all four
me = socket.create_connection(ECHO)
my_address = me.getsockname()[0]
me.close()
xl = socket.socket()
xl.bind(("0.0.0.0", 9311))
xl.listen(4)
xsets = [select.epoll() for _ in range(4)]
for xs in xsets:
    xs.register(xl, select.EPOLLIN | select.EPOLLEXCLUSIVE)
xwoken = []
xthreads = [threading.Thread(target=lambda xs=xs: xwoken.append(len(xs.poll(1.0)))) for xs in xsets]
for xt in xthreads:
    xt.start()
time.sleep(0.2)  # all four asleep
subprocess.run([sys.executable, "-c", f"import socket; socket.create_connection(({my_address!r}, 9311)).close()"],
               env={**os.environ, "LD_PRELOAD": ""}, check=True)
for xt in xthreads:
    xt.join()
out("EPOLLEXCLUSIVE: sets woken by one connection", sum(xwoken))
for o in xsets + [xl]:
    o.close()


def connect_from_the_kernel(address, port, count=1):
    """`count` connections to `port` from a child's kernel sockets, which close at once."""
    subprocess.run([sys.executable, "-c", "import socket\n"
                    f"for _ in range({count}): socket.create_connection(({address!r}, {port})).close()"],
                   env={**os.environ, "LD_PRELOAD": ""}, check=True)


# An epoll set sees what happened to a socket while something else looked
# at it: a non-blocking accept that found nothing, and an option that
# changes what the socket polls as (Linux's SO_RCVLOWAT wakes at once).
el = socket.socket()
el.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
el.bind(("0.0.0.0", 9312))
el.listen(8)
el.setblocking(False)
eset = select.epoll()
eset.register(el, select.EPOLLIN)
out("an idle listener in epoll", eset.poll(0))
connect_from_the_kernel(my_address, 9312)
time.sleep(0.2)
out("accept of the first", err(lambda: el.accept()[0].close()))
out("accept of no more", err(lambda: el.accept()))
connect_from_the_kernel(my_address, 9312)
time.sleep(0.2)
out("epoll after a second came", [(f == el.fileno(), e) for f, e in eset.poll(1.0)])
out("accept of the second", err(lambda: el.accept()[0].close()))
out("epoll after it was taken", eset.poll(0))
eset.close()
el.close()
# (poll() for an urgent byte arms the socket and takes its eventfd's count,
# which was epoll's news of the bytes)
ep2 = socket.create_connection(ECHO)
eset = select.epoll()
eset.register(ep2, select.EPOLLIN)
out("epoll of a quiet connection", eset.poll(0))
ep2.sendall(b"abcd")
time.sleep(0.2)  # the echo is back
out("poll for an urgent byte with 4 bytes there", wait(ep2, select.POLLPRI, 0))
out("epoll with them there", [(f == ep2.fileno(), e) for f, e in eset.poll(1.0)])
eset.close()
ep2.close()
# More ready than maxevents: the ready take turns, a pipe among them too
writable = [socket.create_connection(ECHO) for _ in range(3)]
rp, wp = os.pipe()
os.write(wp, b"x")
eset = select.epoll()
for c in writable:
    eset.register(c, select.EPOLLOUT)
eset.register(rp, select.EPOLLIN)
seen = [f for _ in range(3) for f, _ in eset.poll(1.0, 2)]
out("three waits of two events: the pipe seen", rp in seen)
out("three waits of two events: sockets seen", len({f for f in seen if f != rp}))
eset.close()
for o in writable:
    o.close()
os.close(rp)
os.close(wp)
# A thread asleep in epoll_wait on a set another thread adds a socket to
# whose request came before (an acceptor handing connections to a worker's
# set): the waiter wakes at once, as ep_insert wakes it. In a fresh process,
# whose sockets are all new.
HANDED = """
import os, select, socket, sys, threading, time
al = socket.socket()
al.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
al.bind((sys.argv[1], 9313))
al.listen(8)
rp, wp = os.pipe()
eset = select.epoll()
eset.register(rp, select.EPOLLIN)  # the worker's set: a pipe only, at first
woke = []
def epoll_worker():
    start = time.monotonic()
    for f, e in eset.poll(3.0):
        woke.append((f != rp, e, time.monotonic() - start < 1.5))
worker = threading.Thread(target=epoll_worker)
worker.start()
time.sleep(0.3)  # asleep
requester = socket.create_connection((sys.argv[1], 9313))
requester.sendall(b"GET")
time.sleep(0.3)  # the request is in before the acceptor takes the connection
handed, _ = al.accept()
eset.register(handed, select.EPOLLIN)
worker.join()
print(woke, handed.recv(10))
"""
out("a worker asleep in epoll hears a connection added with its request in",
    subprocess.run([sys.executable, "-c", HANDED, my_address], capture_output=True, text=True, check=True).stdout.strip())
# The start of the programs below: a connection to a listener of their
# own, at the address given, both ends theirs
CONNECTED_PAIR = """
import select, socket, sys, threading, time
def connected_pair(port):
    al = socket.socket()
    al.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    al.bind((sys.argv[1], port))
    al.listen(8)
    requester = socket.create_connection((sys.argv[1], port))
    return requester, al.accept()[0]
"""
# An EPOLLONESHOT entry a worker thread re-arms (EPOLL_CTL_MOD) while the
# loop sleeps in its wait: the next request wakes the loop
REARMED = CONNECTED_PAIR + """
requester, handed = connected_pair(9314)
eset = select.epoll()
eset.register(handed, select.EPOLLIN | select.EPOLLONESHOT)
requester.sendall(b"one")
first = [e for _, e in eset.poll(2.0)]
taken = []
def worker():
    time.sleep(0.3)  # the loop asleep in its next wait
    taken.append(handed.recv(10))
    eset.modify(handed, select.EPOLLIN | select.EPOLLONESHOT)
    time.sleep(0.2)
    requester.sendall(b"two")
t = threading.Thread(target=worker)
t.start()
start = time.monotonic()
second = [e for _, e in eset.poll(3.0)]
t.join()
print(first, taken, second, time.monotonic() - start < 1.5, handed.recv(10))
"""
out("a loop asleep in epoll hears the request after a worker re-armed its entry",
    subprocess.run([sys.executable, "-c", REARMED, my_address], capture_output=True, text=True, check=True).stdout.strip())
# Another thread lowers SO_RCVLOWAT under bytes waiting while the loop
# sleeps in epoll: the loop wakes (tcp_set_rcvlowat calls data_ready)
LOWERED = CONNECTED_PAIR + """
requester, handed = connected_pair(9315)
handed.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 10)
eset = select.epoll()
eset.register(handed, select.EPOLLIN)
requester.sendall(b"abcd")
time.sleep(0.2)
first = eset.poll(0.2)
def lower():
    time.sleep(0.3)  # the loop asleep in its wait
    handed.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 4)
t = threading.Thread(target=lower)
t.start()
start = time.monotonic()
second = [e for _, e in eset.poll(3.0)]
t.join()
print(first, second, time.monotonic() - start < 1.5)
"""
out("a loop asleep in epoll wakes when another thread lowers SO_RCVLOWAT under the bytes waiting",
    subprocess.run([sys.executable, "-c", LOWERED, my_address], capture_output=True, text=True, check=True).stdout.strip())
# A writer thread blocked in send (its peer reads nothing) while the loop
# waits in epoll, poll or select for input on the same socket, or another
# thread is blocked in recv on it: the byte the peer sends wakes the loop
# or the reader at once, though the writer wakes too (both sleep on the
# socket). Eight connections, each to a peer of the kernel's own (no
# preload) that sends one byte after 0.3 s and reads nothing.
DUPLEX_PEER = """
import socket, sys, threading, time
al = socket.socket()
al.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
al.bind(("0.0.0.0", 0))
al.listen(8)
print(al.getsockname()[1], flush=True)
held = []  # open until killed
def serve(c):
    held.append(c)
    time.sleep(0.3)
    c.sendall(b"x")
while True:
    threading.Thread(target=serve, args=(al.accept()[0],), daemon=True).start()
"""
DUPLEX = """
import os, select, socket, subprocess, sys, threading, time
kernel_env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
peer = subprocess.Popen([sys.executable, "-c", sys.argv[3]], stdout=subprocess.PIPE, env=kernel_env, text=True)
port = int(peer.stdout.readline())
heard, writers = [], []
for i in range(8):
    c = socket.create_connection((sys.argv[1], port))
    def writer(c=c):
        try:
            c.sendall(b"w" * (64 << 20))
        except OSError:
            pass
    w = threading.Thread(target=writer)
    w.start()
    writers.append((w, c))
    if sys.argv[2] == "epoll":
        eset = select.epoll()
        eset.register(c, select.EPOLLIN)
        heard.append([e for _, e in eset.poll(2.0)])
        eset.close()
    elif sys.argv[2] == "poll":
        pset = select.poll()
        pset.register(c, select.POLLIN)
        heard.append([e for _, e in pset.poll(2000)])
    elif sys.argv[2] == "recv":
        start = time.monotonic()
        heard.append((c.recv(1), time.monotonic() - start < 0.8))  # sent after 0.3 s
    else:
        heard.append([len(r) for r in select.select([c], [], [], 2.0)])
peer.kill()  # its connections reset: the writers' sends fail
peer.wait()
for w, c in writers:
    w.join()
    c.close()
print(heard)
"""
for way in ("epoll", "poll", "select", "recv"):
    out(f"a loop asleep in {way} hears the byte while another thread is blocked sending on the socket",
        subprocess.run([sys.executable, "-c", DUPLEX, HOST, way, DUPLEX_PEER],
                       capture_output=True, text=True, check=True).stdout.strip())
ew = socket.create_connection(ECHO)
ew.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 10)
eset = select.epoll()
eset.register(ew, select.EPOLLIN)
ew.sendall(b"abcd")
time.sleep(0.2)  # the echo is back
out("epoll with 4 bytes there and SO_RCVLOWAT 10", eset.poll(0.3))
ew.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 4)
out("epoll once SO_RCVLOWAT is 4", [(f == ew.fileno(), e) for f, e in eset.poll(1.0)])
eset.close()
ew.close()

# SO_RCVTIMEO and SO_SNDTIMEO: a blocking call gives up after the time set; a signal interrupts it
def took(f, low, high):
    start = time.monotonic()
    r = err(f)
    return r, low <= time.monotonic() - start < high


TIMEVAL = "ll"
u = socket.create_connection(ECHO)
out("SO_RCVTIMEO default", struct.unpack(TIMEVAL, u.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)))
u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack(TIMEVAL, 0, 200000))
u.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack(TIMEVAL, 1, 500000))
out("SO_RCVTIMEO, SO_SNDTIMEO", [struct.unpack(TIMEVAL, u.getsockopt(socket.SOL_SOCKET, n, 16))
                                 for n in (socket.SO_RCVTIMEO, socket.SO_SNDTIMEO)])
out("a malformed time", err(lambda: u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                                                 struct.pack(TIMEVAL, 0, 1000000))))
out("a short one", err(lambda: u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, b"1234")))
out("recv with nothing there gives up after 0.2 s", took(lambda: u.recv(10), 0.19, 3))
u.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack(TIMEVAL, 0, 200000))
chunk = b"x" * (1 << 20)


def fill():
    for _ in range(400):  # the peer echoes, so both ways fill and a send must wait
        u.send(chunk)
    return "never full"


out("send into a full socket gives up", err(fill))
u.close()
lt = socket.socket()
lt.bind(("0.0.0.0", 9310))
lt.listen(1)
lt.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack(TIMEVAL, 0, 200000))
out("accept with nobody coming gives up after 0.2 s", took(lambda: lt.accept(), 0.19, 3))
lt.close()


# SO_RCVLOWAT: readable, and a blocking receive done, only with that many
# bytes (or at the end, or when the receive timeout passes with fewer)
w = socket.create_connection(ECHO)
w.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 10)
w.sendall(b"abcd")
time.sleep(0.2)  # the echo is back
out("SO_RCVLOWAT 10: poll with 4 bytes there", wait(w, select.POLLIN, 300))
out("select with 4 bytes there", select.select([w], [], [], 0.3)[0] == [w])
w.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack(TIMEVAL, 0, 300000))
out("recv with 4 bytes there gives them when the timeout passes", took(lambda: w.recv(100), 0.25, 3))
w.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack(TIMEVAL, 5, 0))
pid = os.fork()
if pid == 0:  # 4 bytes come back after 0.1 s, 8 more after 0.3 s: a child holding the socket sends them
    time.sleep(0.1)
    w.sendall(b"efgh")
    time.sleep(0.2)
    w.sendall(b"ijklmnop")
    os._exit(0)
# (Linux wakes a reader only for SO_RCVLOWAT bytes unread: one that took
# some already and sleeps for the rest waits for that many more.)
out("a blocking recv waits for 10", took(lambda: w.recv(100), 0.25, 3))
os.waitpid(pid, 0)
w.sendall(b"xy")
time.sleep(0.2)
out("poll with 2 there", wait(w, select.POLLIN, 0))
w.setblocking(False)
out("a non-blocking recv takes what is there", w.recv(100))
w.close()


class Alarm(Exception):
    pass


def ring(signum, frame):
    raise Alarm()


signal.signal(signal.SIGALRM, ring)
v = socket.create_connection(ECHO)
signal.setitimer(signal.ITIMER_REAL, 0.2)
try:
    v.recv(10)
    out("a signal interrupts a blocking recv", "no")
except Alarm:
    out("a signal interrupts a blocking recv", "yes")
signal.signal(signal.SIGALRM, signal.SIG_DFL)
v.close()

# sendfile and splice: a file's or a pipe's bytes to the socket, the socket's to a pipe
t = socket.create_connection(ECHO)
payload = bytes(range(256)) * 1200
with tempfile.NamedTemporaryFile(delete=False) as f:
    f.write(payload)
fd = os.open(f.name, os.O_RDONLY)
out("sendfile with an offset", os.sendfile(t.fileno(), fd, 1000, 200000))
out("the file's position stays", os.lseek(fd, 0, os.SEEK_CUR))
out("echoed byte-exact", t.recv(200000, socket.MSG_WAITALL) == payload[1000:201000])
os.lseek(fd, 300000, os.SEEK_SET)
out("sendfile from the file's position to its end", os.sendfile(t.fileno(), fd, None, 10000))
out("the file's position moved", os.lseek(fd, 0, os.SEEK_CUR))
out("echoed byte-exact", t.recv(7200, socket.MSG_WAITALL) == payload[300000:])
out("sendfile at the end of the file", os.sendfile(t.fileno(), fd, None, 10))
out("sendfile of nothing", os.sendfile(t.fileno(), fd, 0, 0))
out("sendfile past the end", os.sendfile(t.fileno(), fd, 400000, 10))
wfd = os.open(f.name, os.O_WRONLY)
out("sendfile from a write-only file", err(lambda: os.sendfile(t.fileno(), wfd, 0, 10)))
out("sendfile with a negative offset", err(lambda: os.sendfile(t.fileno(), fd, -1, 10)))
r, w = os.pipe()
os.write(w, b"through a pipe")
out("sendfile from a pipe", err(lambda: os.sendfile(t.fileno(), r, None, 100)))
out("sendfile from a pipe with an offset", err(lambda: os.sendfile(t.fileno(), r, 0, 1)))
out("splice from a pipe", os.splice(r, t.fileno(), 100))
r2, w2 = os.pipe()
select.select([t], [], [], 5)
time.sleep(0.2)
out("splice to a pipe", os.splice(t.fileno(), w2, 100))
out("the pipe holds", os.read(r2, 100))
out("splice with an offset on the socket", err(lambda: os.splice(r, t.fileno(), 1, offset_dst=0)))
out("splice from a file", err(lambda: os.splice(fd, t.fileno(), 1)))
out("splice from an empty pipe, SPLICE_F_NONBLOCK",
    err(lambda: os.splice(r, t.fileno(), 100, flags=os.SPLICE_F_NONBLOCK)))
t.setblocking(False)
out("splice from an empty socket, non-blocking", err(lambda: os.splice(t.fileno(), w2, 100)))
t.setblocking(True)
os.sendfile(t.fileno(), fd, 0, 5)
time.sleep(0.2)
out("sendfile from the socket to a file", err(lambda: os.sendfile(wfd, t.fileno(), None, 100)))
out("sendfile from the socket with an offset", err(lambda: os.sendfile(wfd, t.fileno(), 0, 100)))
t.shutdown(socket.SHUT_WR)
out("sendfile after shutdown", err(lambda: os.sendfile(t.fileno(), fd, 0, 10)))
t.close()
for d in (fd, wfd, r, w, r2, w2):
    os.close(d)
os.unlink(f.name)

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

# ports: bind(2) to port 0 takes one at once, listen without bind takes one,
# and a connect keeps the bound port; who may share a port (SO_REUSEADDR)
p = socket.socket()
p.bind(("0.0.0.0", 0))
out("bind to port 0 takes a port", p.getsockname()[1] != 0)
out("listen after bind to port 0", err(lambda: p.listen(4)))
out("send on a listener", err(lambda: p.send(b"x")))
q = socket.socket()
q.listen(4)
out("listen without bind takes a port", q.getsockname()[1] != 0)
b = socket.socket()
b.bind(("0.0.0.0", 0))
port = b.getsockname()[1]
b.connect(ECHO)
out("connect from a bound port keeps it", b.getsockname()[1] == port)
b2 = socket.socket()
b2.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
out("bind to a connected socket's port", err(lambda: b2.bind(("0.0.0.0", port))))
b.close()
time.sleep(0.2)  # the connection closes (TIME-WAIT on one side) but stays in the table
b3 = socket.socket()
out("bind to the port a closed socket's connection holds", err(lambda: b3.bind(("0.0.0.0", port))))
out("the same with SO_REUSEADDR", err(lambda: b2.bind(("0.0.0.0", port))))
r1, r2 = socket.socket(), socket.socket()
for r in (r1, r2):
    r.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
r1.bind(("0.0.0.0", 0))
r1.connect(ECHO)
out("bind beside a connected socket, both SO_REUSEADDR", err(lambda: r2.bind(("0.0.0.0", r1.getsockname()[1]))))
for x in (p, q, b2, b3, r1, r2):
    x.close()

# options the stack keeps without acting on them: Linux's defaults, its rules, read back
t, u = socket.socket(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
IP_MTU_DISCOVER, IP_RECVERR = 10, 11
# Linux's numbers for those Python may not name (asm-generic/socket.h, linux/in.h, linux/tcp.h)
NUMBERS = {"SO_RXQ_OVFL": 40, "SO_BUSY_POLL": 46, "SO_MAX_PACING_RATE": 47, "SO_INCOMING_CPU": 49,
           "IP_FREEBIND": 15, "IP_BIND_ADDRESS_NO_PORT": 24, "TCP_THIN_LINEAR_TIMEOUTS": 16,
           "TCP_FASTOPEN_CONNECT": 30}
number = lambda name: NUMBERS.get(name) or getattr(socket, name)
for level, names in ((socket.SOL_SOCKET, ("SO_BROADCAST", "SO_OOBINLINE", "SO_RCVLOWAT", "SO_PRIORITY",
                                           "SO_DONTROUTE", "SO_SNDLOWAT", "SO_RXQ_OVFL", "SO_BUSY_POLL",
                                           "SO_MAX_PACING_RATE", "SO_INCOMING_CPU")),
                     (socket.IPPROTO_IP, ("IP_TOS", "IP_TTL", "IP_MULTICAST_TTL", "IP_FREEBIND",
                                          "IP_BIND_ADDRESS_NO_PORT"))):
    for name in names:
        for kind, x in (("stream", t), ("datagram", u)):
            out(f"{kind} {name}", err(lambda: x.getsockopt(level, number(name))))
for name in ("TCP_CORK", "TCP_QUICKACK", "TCP_USER_TIMEOUT", "TCP_DEFER_ACCEPT", "TCP_SYNCNT", "TCP_LINGER2",
             "TCP_FASTOPEN", "TCP_NOTSENT_LOWAT", "TCP_THIN_LINEAR_TIMEOUTS", "TCP_FASTOPEN_CONNECT"):
    out(name, err(lambda: t.getsockopt(socket.IPPROTO_TCP, number(name))))
# IP_TOS sets SO_PRIORITY from its TOS bits when it changes (__ip_sock_set_tos).
for kind, x in (("stream", socket.socket()), ("datagram", socket.socket(socket.AF_INET, socket.SOCK_DGRAM))):
    seen = []
    for option, value in ((socket.IP_TOS, 0x10), (socket.IP_TOS, 0x10), (socket.IP_TOS, 0x08), (socket.IP_TOS, 0x0c),
                          (socket.IP_TOS, 0xb8), (socket.IP_TOS, 0x03), (socket.IP_TOS, 0x04)):
        x.setsockopt(socket.IPPROTO_IP, option, value)
        seen.append((x.getsockopt(socket.IPPROTO_IP, socket.IP_TOS), x.getsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY)))
        x.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, 3)  # kept while the TOS does not change
    out(f"{kind} IP_TOS then SO_PRIORITY", seen)
    x.close()
out("IP_MTU_DISCOVER, IP_RECVERR", (t.getsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER),
                                    t.getsockopt(socket.IPPROTO_IP, IP_RECVERR)))
out("TCP_NODELAY on a datagram socket", err(lambda: u.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
out("set TCP_NODELAY on a datagram socket", err(lambda: u.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)))
out("IPV6_V6ONLY on an IPv4 socket", err(lambda: t.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)))
for x, level, name, values in ((t, socket.SOL_SOCKET, socket.SO_RCVLOWAT, (0, -5, 100)),
                               (u, socket.SOL_SOCKET, socket.SO_RCVLOWAT, (-5,)),
                               (t, socket.SOL_SOCKET, socket.SO_OOBINLINE, (5,)),
                               (u, socket.SOL_SOCKET, socket.SO_BROADCAST, (1,)),
                               (t, socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, (1, 2, 5, 30, 200, -1)),
                               (t, socket.IPPROTO_TCP, socket.TCP_SYNCNT, (3, 0, 200)),
                               (t, socket.IPPROTO_TCP, socket.TCP_LINGER2, (-3, 0, 30, 500)),
                               (t, socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, (3000, -1)),
                               (t, socket.IPPROTO_TCP, socket.TCP_QUICKACK, (0,)),
                               (t, socket.IPPROTO_TCP, socket.TCP_MAXSEG, (1000, 50)),
                               (t, socket.IPPROTO_IP, socket.IP_TOS, (0x13,)),
                               (u, socket.IPPROTO_IP, socket.IP_TOS, (0x13,)),
                               (u, socket.IPPROTO_IP, socket.IP_TTL, (7, 0, 256, -1)),
                               (u, socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, (9, -1, 300)),
                               (u, socket.IPPROTO_IP, IP_MTU_DISCOVER, (2, 9)),
                               (u, socket.SOL_SOCKET, number("SO_BUSY_POLL"), (50, -1, 0)),
                               (t, socket.SOL_SOCKET, number("SO_MAX_PACING_RATE"), (1000000, -1)),
                               (u, socket.SOL_SOCKET, number("SO_INCOMING_CPU"), (1,)),
                               (u, socket.SOL_SOCKET, number("SO_RXQ_OVFL"), (3,)),
                               (t, socket.IPPROTO_IP, number("IP_FREEBIND"), (5,)),
                               (t, socket.IPPROTO_IP, number("IP_BIND_ADDRESS_NO_PORT"), (1,)),
                               (t, socket.IPPROTO_TCP, number("TCP_THIN_LINEAR_TIMEOUTS"), (1, 2)),
                               (t, socket.IPPROTO_TCP, number("TCP_FASTOPEN_CONNECT"), (1, 2, 0))):
    for v in values:
        out(f"set option {level}/{name} to {v}", err(lambda: (x.setsockopt(level, name, v), x.getsockopt(level, name))[1]))
with socket.create_connection(ECHO) as c:
    out("TCP_FASTOPEN_CONNECT once connected",
        err(lambda: c.setsockopt(socket.IPPROTO_TCP, number("TCP_FASTOPEN_CONNECT"), 1)))
    # SO_BUSY_POLL acts: a blocking receive with it set still gets the echo.
    c.setsockopt(socket.SOL_SOCKET, number("SO_BUSY_POLL"), 50)
    c.sendall(b"busy")
    out("a busy-polling receive", c.recv(100))
u.bind(("0.0.0.0", 0))
out("sendto port 0", err(lambda: u.sendto(b"x", (HOST, 0))))
out("a datagram with MSG_OOB", err(lambda: u.sendto(b"x", socket.MSG_OOB, (HOST, 9))))
v6 = socket.socket(socket.AF_INET6)
v6.bind(("::", 0))
out("IPV6_V6ONLY after bind", err(lambda: v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)))
v6.close()
for x in (t, u):
    x.close()

# options programs set that the stack has nothing to do for (nc -D's
# SO_DEBUG, a multicast sender's loop and hops, curl --interface's device,
# root's buffer sizes past the system's limit), and IPv6's: Linux's
# defaults and rules, read back
NUMBERS.update({"SO_SNDBUFFORCE": 32, "SO_RCVBUFFORCE": 33, "SO_BINDTOIFINDEX": 62, "IP_MTU": 14,
                "IPV6_MTU_DISCOVER": 23, "IPV6_MTU": 24, "IPV6_FLOWINFO_SEND": 33, "IPV6_DONTFRAG": 62,
                "IPV6_AUTOFLOWLABEL": 70, "IPV6_RECVFRAGSIZE": 77, "IPV6_FREEBIND": 78, "SO_NOFCS": 43,
                "SO_SELECT_ERR_QUEUE": 45, "SO_INCOMING_NAPI_ID": 56, "IP_NODEFRAG": 22, "TCP_INQ": 36})
t, u = socket.socket(), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
t6, u6 = socket.socket(socket.AF_INET6), socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
SOL, IP, IP6 = socket.SOL_SOCKET, socket.IPPROTO_IP, socket.IPPROTO_IPV6
for x, level, name, values in ((t, SOL, socket.SO_DEBUG, (1, 0)), (u, SOL, socket.SO_DEBUG, (7,)),
                               (u, IP, socket.IP_MULTICAST_LOOP, (0, 5)), (t, IP, socket.IP_MULTICAST_LOOP, (0,)),
                               (t, IP, socket.IP_MULTICAST_TTL, (3,)),
                               (u6, IP6, socket.IPV6_MULTICAST_LOOP, (0, 2)),
                               (u6, IP6, socket.IPV6_MULTICAST_HOPS, (5, -1, 300)),
                               (t6, IP6, socket.IPV6_MULTICAST_HOPS, (5,)),
                               (t6, IP6, socket.IPV6_TCLASS, (0x13,)), (u6, IP6, socket.IPV6_TCLASS, (0x13,)),
                               (u6, IP6, number("IPV6_MTU_DISCOVER"), (2, 9)),
                               (t6, IP6, number("IPV6_DONTFRAG"), (4,)), (u6, IP6, number("IPV6_AUTOFLOWLABEL"), (0,)),
                               (u6, IP6, number("IPV6_FREEBIND"), (3,)), (t6, IP6, number("IPV6_FLOWINFO_SEND"), (1,)),
                               (u6, IP6, number("IPV6_RECVFRAGSIZE"), (1,)),
                               (u, SOL, number("SO_NOFCS"), (3,)), (t, SOL, number("SO_SELECT_ERR_QUEUE"), (1,)),
                               (t, SOL, number("SO_INCOMING_NAPI_ID"), (1,)), (u, IP, number("IP_NODEFRAG"), (1,)),
                               (t, socket.IPPROTO_TCP, number("TCP_INQ"), (1, 2, 0))):
    for v in values:
        out(f"set option {level}/{name} to {v}", err(lambda: (x.setsockopt(level, name, v), x.getsockopt(level, name))[1]))
for x, name in ((t, "SO_RCVBUFFORCE"), (u, "SO_SNDBUFFORCE")):
    for v in (1 << 22, -5):
        x.setsockopt(SOL, number(name), v)
        out(f"{name} {v}", x.getsockopt(SOL, socket.SO_RCVBUF if "RCV" in name else socket.SO_SNDBUF))
out("SO_LINGER read into an int", t.getsockopt(SOL, socket.SO_LINGER))
out("SO_PASSCRED set", err(lambda: t.setsockopt(SOL, socket.SO_PASSCRED, 1)))
device = next(n for _, n in socket.if_nameindex() if n != "lo")
out("SO_BINDTODEVICE unbound", t.getsockopt(SOL, socket.SO_BINDTODEVICE, 16))
out("SO_BINDTODEVICE to no such device", err(lambda: t.setsockopt(SOL, socket.SO_BINDTODEVICE, b"nosuch0")))
out("SO_BINDTODEVICE to the link", (t.setsockopt(SOL, socket.SO_BINDTODEVICE, device.encode()),
                                    t.getsockopt(SOL, socket.SO_BINDTODEVICE, 16) == device.encode() + b"\0",
                                    t.getsockopt(SOL, number("SO_BINDTOIFINDEX")) == socket.if_nametoindex(device)))
out("read into fewer than IFNAMSIZ bytes", err(lambda: t.getsockopt(SOL, socket.SO_BINDTODEVICE, 8)))
out("and unbound", (t.setsockopt(SOL, socket.SO_BINDTODEVICE, b""), t.getsockopt(SOL, socket.SO_BINDTODEVICE, 16)))
out("SO_BINDTOIFINDEX", (u.setsockopt(SOL, number("SO_BINDTOIFINDEX"), socket.if_nametoindex(device)),
                         u.getsockopt(SOL, socket.SO_BINDTODEVICE, 16) == device.encode() + b"\0"))
out("IP_MTU unconnected", [err(lambda: x.getsockopt(IP, number("IP_MTU"))) for x in (t, u)])
m = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
m.connect(ECHO)
out("IP_MTU of a connected datagram socket: its route's", m.getsockopt(IP, number("IP_MTU")) >= 576)
unspecified = (ctypes.c_ubyte * 16)()  # sa_family 0: AF_UNSPEC undoes the connect
ctypes.CDLL(None, use_errno=True).connect(m.fileno(), unspecified, 16)
out("and once it is disconnected", err(lambda: m.getsockopt(IP, number("IP_MTU"))))
m.close()
out("IPV6_MTU", [err(lambda: t6.getsockopt(IP6, number("IPV6_MTU"))),
                 err(lambda: u6.setsockopt(IP6, number("IPV6_MTU"), 1000)),
                 err(lambda: u6.setsockopt(IP6, number("IPV6_MTU"), 1400))])
for x in (t, u, t6, u6):
    x.close()

# receive timestamps (SO_TIMESTAMP, SO_TIMESTAMPNS and their _NEW kin):
# what each option reads after each is set, the control message a datagram
# then comes with, its time within a few seconds of now, and SIOCGSTAMP's
STAMPS = {"SO_TIMESTAMP": 29, "SO_TIMESTAMPNS": 35, "SO_TIMESTAMP_NEW": 63, "SO_TIMESTAMPNS_NEW": 64}
SIOCGSTAMP, SIOCGSTAMPNS = 0x8906, 0x8907


u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(5)
u.connect(ECHO)
out("SIOCGSTAMP before any datagram", err(lambda: fcntl.ioctl(u, SIOCGSTAMP, bytes(16))))
for name, number_ in list(STAMPS.items()) + [("off", 0)]:
    u.setsockopt(socket.SOL_SOCKET, number_ or 29, 1 if number_ else 0)
    u.send(name.encode())
    data, anc, flags, _ = u.recvmsg(100, 256)
    stamps = [(level, kind, len(d), abs(time.time() - struct.unpack("qq", d)[0]) < 5) for level, kind, d in anc]
    out(f"{name}: options read", [u.getsockopt(socket.SOL_SOCKET, n) for n in STAMPS.values()])
    out(f"{name}: control messages", (data, stamps, flags))
sec, usec = struct.unpack("qq", fcntl.ioctl(u, SIOCGSTAMP, bytes(16)))
nsec = struct.unpack("qq", fcntl.ioctl(u, SIOCGSTAMPNS, bytes(16)))
out("SIOCGSTAMP and SIOCGSTAMPNS after one", (abs(time.time() - sec) < 5, 0 <= usec < 1000000,
                                              nsec[0] == sec and nsec[1] // 1000 == usec))
u.setsockopt(socket.SOL_SOCKET, 35, 1)
u.setsockopt(socket.IPPROTO_IP, 12, 1)  # IP_RECVTTL
u.send(b"both")
out("with IP_RECVTTL: the timestamp first", [(level, kind) for level, kind, _ in u.recvmsg(100, 256)[1]])
out("SIOCGSTAMP on a stream socket", err(lambda: fcntl.ioctl(socket.socket(), SIOCGSTAMP, bytes(16))))
u.close()

# a corked datagram (udp(7)): MSG_MORE's pieces, and UDP_CORK's, go as one to the first's destination
SOL_UDP, UDP_CORK = 17, 1
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(5)
out("MSG_MORE", [u.sendto(b"ab", socket.MSG_MORE, ECHO), u.sendto(b"cd", socket.MSG_MORE, CLOSED),
                 u.sendto(b"ef", ECHO)])
out("echoed whole", u.recvfrom(100))
out("UDP_CORK default", u.getsockopt(SOL_UDP, UDP_CORK))
u.setsockopt(SOL_UDP, UDP_CORK, 1)
out("corked", [u.sendto(b"gh", ECHO), u.sendto(b"ij", ECHO), u.getsockopt(SOL_UDP, UDP_CORK)])
u.setsockopt(SOL_UDP, UDP_CORK, 0)
out("uncorked", u.recvfrom(100))
out("past 65507 corked", [u.sendto(b"k" * 65000, socket.MSG_MORE, ECHO),
                          err(lambda: u.sendto(b"l" * 600, ECHO)), u.sendto(b"m", ECHO)])
d, _ = u.recvfrom(70000)
out("what stayed corked", (len(d), d[-3:]))
out("UDP_CORK on a stream socket", err(lambda: socket.socket().getsockopt(SOL_UDP, UDP_CORK)))
u.close()

fd = socket.socket().detach()
os.close(fd)
out("close twice", err(lambda: os.close(fd)))

# close_range (os.closerange): the sockets in the range close, and their numbers are free for anything
with tempfile.TemporaryFile() as f:
    f.write(b"a file, not a socket")
    f.flush()
    a, b = socket.create_connection(ECHO), socket.socket()
    low, high = sorted((a.detach(), b.detach()))
    os.closerange(low, high + 1)
    out("a closed socket's number after close_range", err(lambda: os.fstat(low)))
    again = fcntl.fcntl(f.fileno(), fcntl.F_DUPFD, low)
    out("F_DUPFD takes the number again", again == low)
    out("and it reads as the file", os.pread(again, 100, 0))
    out("with read", (os.lseek(again, 0, os.SEEK_SET), os.read(again, 6)))
    os.close(again)

# TCP_CONGESTION: the algorithm in use may be named again; an unknown one is ENOENT.
s = socket.socket()
in_use = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\0")
out("TCP_CONGESTION set to the one in use", err(lambda: s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, in_use)))
out("TCP_CONGESTION set to an unknown one", err(lambda: s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"bogus")))
s.close()
# A datagram socket connected to port 0 has no peer to name (inet_getname).
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
out("connect a datagram socket to port 0", err(lambda: u.connect((HOST, 0))))
out("its getpeername", err(lambda: u.getpeername()))
u.close()

# shutdown of what is not a connection (inet_shutdown): a listener stops on
# SHUT_RD (a thread in accept wakes with EINVAL) and may listen again; a
# connected datagram socket's blocking receive returns 0 and its sends say
# EPIPE; an unconnected one says ENOTCONN.
def shut_later(sock, how):
    def later():
        time.sleep(0.3)
        sock.shutdown(how)
    t = threading.Thread(target=later)
    t.start()
    return t

listener = socket.socket()
listener.bind(("0.0.0.0", 0))
listener.listen()
out("shutdown(SHUT_WR) of a listener", (err(lambda: listener.shutdown(socket.SHUT_WR)),
                                        listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)))
t = shut_later(listener, socket.SHUT_RDWR)
out("accept while another thread shuts the listener", err(lambda: listener.accept()))
t.join()
p = select.poll()
p.register(listener, select.POLLIN | select.POLLOUT)
out("poll of the shut listener", [ev for _, ev in p.poll(0)])
listener.listen()
out("listen again", listener.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
listener.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.connect(ECHO)
t = shut_later(u, socket.SHUT_RD)
out("blocking receive while another thread shuts a connected datagram socket", err(lambda: u.recv(10)))
t.join()
out("and again", err(lambda: u.recv(10)))
u.shutdown(socket.SHUT_WR)
out("send after SHUT_WR", err(lambda: u.send(b"x")))
u.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
out("shutdown of an unconnected datagram socket", err(lambda: u.shutdown(socket.SHUT_RDWR)))
p = select.poll()
p.register(u, select.POLLIN | select.POLLOUT | select.POLLRDHUP)
out("poll of the shut datagram socket", [ev for _, ev in p.poll(0)])
u.close()

# Loopback is the kernel's (the stack has none): a socket that binds,
# connects or sends there is a kernel socket from then on, with its options,
# its flags, its other descriptors and its epoll registrations.
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
out("a listener bound to loopback", listener.getsockname()[0])
c = socket.socket()
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 2, 500000))
c.setblocking(False)
other = os.dup(c.fileno())
os.set_inheritable(other, True)
ep = select.epoll()
ep.register(c.fileno(), select.EPOLLOUT | select.EPOLLET)
out("non-blocking connect to loopback", err(lambda: c.connect(listener.getsockname())))
out("epoll reports the connection with its registration",
    [(fd == c.fileno(), ev & (select.EPOLLOUT | select.EPOLLERR)) for fd, ev in ep.poll(5)])
out("and, edge-triggered, not again", ep.poll(0.1))
a, _ = listener.accept()
out("options carried", (c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0,
                        c.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                        struct.unpack("ll", c.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16))))
out("O_NONBLOCK kept", fcntl.fcntl(c.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK != 0)
out("close-on-exec of each descriptor kept", (fcntl.fcntl(c.fileno(), fcntl.F_GETFD),
                                              fcntl.fcntl(other, fcntl.F_GETFD)))
a.sendall(b"over loopback")
out("the other descriptor reads it", (select.select([other], [], [], 5)[0] == [other], os.read(other, 100)))
out("its peer", socket.socket(fileno=os.dup(other)).getpeername() == listener.getsockname())
os.close(other)
c.close()
a.close()
c = socket.socket()
out("connect to 0.0.0.0 reaches this host", err(lambda: c.connect(("0.0.0.0", listener.getsockname()[1]))))
listener.accept()[0].close()
c.close()
listener.close()
c = socket.socket()
out("connect to a closed loopback port", err(lambda: c.connect(("127.0.0.1", 9))))
c.close()
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.bind(("127.0.0.1", 0))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
out("sendto loopback", u.sendto(b"datagram", r.getsockname()))
data, source = r.recvfrom(100)
out("received from the sender's port", (data, source[1] == u.getsockname()[1]))
u.close()
r.close()
six = socket.socket(socket.AF_INET6)
six.bind(("::1", 0))
six.listen()
c6 = socket.socket(socket.AF_INET6)
c6.connect(six.getsockname()[:2])
out("IPv6 loopback", (c6.getpeername()[:2] == six.getsockname()[:2], c6.getsockname()[0]))
mapped = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
out("v4-mapped loopback from an IPv6 socket", err(lambda: mapped.connect(("::ffff:127.0.0.1", 9))))
for s in (c6, six, mapped):
    s.close()

# A listener on the wildcard address is reached on the loopback too, as on
# Linux (through the library: the kernel's listener the stack keeps beside
# its own, whose connections the application accepts as kernel sockets).
listener = socket.socket()
listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
listener.bind(("", 0))
listener.listen()
port = listener.getsockname()[1]
listener.setblocking(False)
out("accept on a wildcard listener, nothing waiting", err(lambda: listener.accept()))
listener.setblocking(True)
c = socket.create_connection(("127.0.0.1", port), timeout=5)
out("the listener polls readable once a loopback connection waits",
    [ev & select.POLLIN for _, ev in wait(listener, select.POLLIN)])
a, peer = listener.accept()
out("accepted from the loopback", (peer == c.getsockname(), a.getsockname() == ("127.0.0.1", port),
                                   a.getpeername() == c.getsockname()))
out("its close-on-exec, O_NONBLOCK and the listener's TCP_NODELAY",
    (fcntl.fcntl(a.fileno(), fcntl.F_GETFD), fcntl.fcntl(a.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK,
     a.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0))
c.sendall(b"to the wildcard listener")
out("read from the loopback connection", a.recv(100))
a.sendall(b"and back")
out("its answer", c.recv(100))
a.close()
c.close()
c = socket.create_connection(("127.0.0.1", port), timeout=5)
out("a waiting loopback connection's listener closes", wait(listener, select.POLLIN) != [])
listener.close()
out("so the connection is reset", err(lambda: c.recv(10)))
c.close()
six = socket.socket(socket.AF_INET6)
six.bind(("", 0))
six.listen()
port = six.getsockname()[1]
c6 = socket.create_connection(("::1", port), timeout=5)
a6, peer = six.accept()
out("an IPv6 wildcard listener from ::1", (peer[:2] == c6.getsockname()[:2], a6.getsockname()[:2] == ("::1", port)))
c4 = socket.create_connection(("127.0.0.1", port), timeout=5)
a4, peer = six.accept()
out("and from 127.0.0.1, v4-mapped", (peer[0], peer[1] == c4.getsockname()[1], a4.family == socket.AF_INET6,
                                      a4.getsockname()[:2] == ("::ffff:127.0.0.1", port)))
c4.sendall(b"mapped")
out("read", a4.recv(10))
for s in (c6, a6, c4, a4, six):
    s.close()

# A datagram socket on the wildcard address is reached at the loopback too,
# sends there, and stays what it was: the echo server still answers it
# (through the library: the kernel's UDP sockets the loop keeps beside it).
w = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
w.settimeout(5)
w.bind(("", 0))
port = w.getsockname()[1]
w.sendto(b"before", ECHO)
out("echoed to the wildcard datagram socket", w.recvfrom(100)[0])
k = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
k.settimeout(5)
k.sendto(b"to the wildcard", ("127.0.0.1", port))
out("it polls readable from the loopback", [ev & select.POLLIN for _, ev in wait(w, select.POLLIN)])
data, source = w.recvfrom(100)
out("received from the loopback", (data, source == ("127.0.0.1", k.getsockname()[1])))
out("its answer there", w.sendto(b"answer", source))
out("arrives from its port", k.recvfrom(100) == (b"answer", ("127.0.0.1", port)))
out("to itself at 127.0.0.1", (w.sendto(b"self", ("127.0.0.1", port)), w.recvfrom(100) == (b"self", ("127.0.0.1", port))))
w.sendto(b"after", ECHO)
out("and the echo server still answers it", (w.recvfrom(100)[0], w.getsockname() == ("0.0.0.0", port)))
w.connect(ECHO)
k.sendto(b"not from its peer", ("127.0.0.1", port))
w.send(b"connected")
out("connected, it hears its peer only", w.recv(100))
for s in (w, k):
    s.close()
w6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
w6.settimeout(5)
w6.bind(("", 0))
port = w6.getsockname()[1]
for host, family in (("::1", socket.AF_INET6), ("127.0.0.1", socket.AF_INET)):
    c = socket.socket(family, socket.SOCK_DGRAM)
    c.settimeout(5)
    c.sendto(host.encode(), (host, port))
    data, source = w6.recvfrom(100)
    w6.sendto(data.upper(), source)
    out(f"a dual-stack wildcard datagram socket from {host}", (source[0], c.recvfrom(100)[0]))
    c.close()
w6.close()

# sendmsg's control messages on a datagram socket, as Linux's ip_cmsg_send
# takes them: IP_TTL and IP_TOS set that datagram's header (seen where it
# arrives: at this host's own address, the kernel's or the stack's), bad
# values and unknown types are refused, other levels are not looked at.
probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
probe.connect((HOST, 9))
me = probe.getsockname()[0]
probe.close()
r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
r.bind(("", 0))
r.setsockopt(socket.IPPROTO_IP, 12, 1)  # IP_RECVTTL
r.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
dest = (me, r.getsockname()[1])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
IP = socket.IPPROTO_IP
packed = lambda v: struct.pack("i", v)


def arrival():
    data, ancillary, _, _ = r.recvmsg(100, 256)
    fields = {}
    for _, kind, value in ancillary:
        if kind == socket.IP_TTL:
            fields["ttl"] = struct.unpack("i", value)[0]
        else:
            fields["tos"] = value[0]
    return data, fields


out("sendmsg with IP_TTL 7 and IP_TOS 0x28",
    err(lambda: u.sendmsg([b"marked"], [(IP, socket.IP_TTL, packed(7)), (IP, socket.IP_TOS, packed(0x28))], 0, dest)))
out("arrives with them", arrival())
out("the next without", err(lambda: u.sendmsg([b"plain"], [], 0, dest)))
out("arrives with the socket's", arrival())
out("IP_TOS as one byte", err(lambda: u.sendmsg([b"byte"], [(IP, socket.IP_TOS, bytes([0x10]))], 0, dest)))
out("arrives so", arrival())
out("a corked first piece with IP_TTL 9",
    err(lambda: u.sendmsg([b"first "], [(IP, socket.IP_TTL, packed(9))], socket.MSG_MORE, dest)))
out("the last piece with IP_TTL 3", err(lambda: u.sendmsg([b"last"], [(IP, socket.IP_TTL, packed(3))], 0, dest)))
out("arrives as one, with the first's", arrival())
pktinfo = lambda index, spec: struct.pack("i4s4s", index, socket.inet_aton(spec), bytes(4))  # ipi_spec_dst: the source
for name, messages in [("IP_TTL 0", [(IP, socket.IP_TTL, packed(0))]),
                       ("IP_TTL 256", [(IP, socket.IP_TTL, packed(256))]),
                       ("IP_TTL of two bytes", [(IP, socket.IP_TTL, b"\x07\x00")]),
                       ("IP_TOS 300", [(IP, socket.IP_TOS, packed(300))]),
                       ("IP_TOS of two bytes", [(IP, socket.IP_TOS, b"\x10\x00")]),
                       ("an unknown SOL_IP type (IP_MTU_DISCOVER)", [(IP, 10, packed(0))]),
                       ("another level's", [(socket.IPPROTO_TCP, 1, packed(1))]),
                       ("SCM_RIGHTS", [(socket.SOL_SOCKET, socket.SCM_RIGHTS, packed(0))]),
                       ("an unknown SOL_SOCKET type", [(socket.SOL_SOCKET, 99, packed(0))]),
                       ("IP_PKTINFO from this host's address", [(IP, 8, pktinfo(0, me))]),
                       ("IP_PKTINFO from an address not this host's", [(IP, 8, pktinfo(0, HOST.rsplit(".", 1)[0] + ".77"))]),
                       ("IP_PKTINFO too short", [(IP, 8, packed(0))]),
                       ("IP_PKTINFO on an interface there is not", [(IP, 8, pktinfo(9999, "0.0.0.0"))])]:
    result = err(lambda: u.sendmsg([b"x"], messages, 0, dest))
    out(f"sendmsg with {name}", result)
    if result.startswith("ok"):
        r.recvmsg(100, 256)
u.close()
r.close()

# netdevice(7)'s requests, which Linux answers on any socket. The interface
# that holds this host's address (the one a socket to HOST is bound to) is
# the one SIOCGIFCONF lists with it, and its address, mask, broadcast and MAC
# are what a neighbour sees: the kernel's own for the kernel, the stack's
# through the library (the TAP's kernel side is the other end of the link).
SIOCGIFCONF, SIOCGIFFLAGS, SIOCGIFADDR, SIOCGIFBRDADDR, SIOCGIFNETMASK = 0x8912, 0x8913, 0x8915, 0x8919, 0x891B
SIOCGIFHWADDR, SIOCGIFINDEX, SIOCGIWNAME = 0x8927, 0x8933, 0x8B01
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.connect(ECHO)
mine = c.getsockname()[0]
listing = bytearray(40 * 32)
address_of = ctypes.addressof((ctypes.c_char * len(listing)).from_buffer(listing))
length = struct.unpack("iL", fcntl.ioctl(c, SIOCGIFCONF, struct.pack("iL", len(listing), address_of)))[0]
entries = {bytes(listing[i:i + 16]).rstrip(b"\0").decode(): socket.inet_ntoa(bytes(listing[i + 20:i + 24]))
           for i in range(0, length, 40)}
name = next((n for n, a in entries.items() if a == mine), None)
out("SIOCGIFCONF lists the interfaces, this host's address on one", (sorted(entries), name is not None))
out("SIOCGIFCONF with no buffer: the length it takes",
    struct.unpack("iL", fcntl.ioctl(c, SIOCGIFCONF, struct.pack("iL", 0, 0)))[0] == length)
out("SIOCGIFCONF with room for one", struct.unpack("iL", fcntl.ioctl(c, SIOCGIFCONF, struct.pack("iL", 60, address_of)))[0])
request = lambda r, n=name: fcntl.ioctl(c, r, struct.pack("256s", n.encode()))
field = lambda r: socket.inet_ntoa(request(r)[20:24])
out("SIOCGIFADDR of it is this host's address", field(SIOCGIFADDR) == mine)
out("its netmask and broadcast", (field(SIOCGIFNETMASK), field(SIOCGIFBRDADDR)))
hw = request(SIOCGIFHWADDR)
on_this_host = subprocess.run(["ip", "-4", "-o", "addr", "show"], capture_output=True, text=True).stdout
if f"inet {mine}/" in on_this_host:
    seen = open(f"/sys/class/net/{name}/address").read().strip()
else:
    seen = subprocess.run(["ip", "neigh", "show", mine], capture_output=True, text=True).stdout.split("lladdr ")[1].split()[0]
out("SIOCGIFHWADDR: Ethernet, the MAC a neighbour sees", (struct.unpack("H", hw[16:18])[0], hw[18:24].hex(":") == seen))
out("SIOCGIFINDEX is if_nametoindex's", struct.unpack("i", request(SIOCGIFINDEX)[16:20])[0] == socket.if_nametoindex(name))
out("SIOCGIFFLAGS: up and running", struct.unpack("H", request(SIOCGIFFLAGS)[16:18])[0] & 0x41 == 0x41)
out("SIOCGIFADDR of lo", socket.inet_ntoa(request(SIOCGIFADDR, "lo")[20:24]))
out("SIOCGIFADDR of an interface there is not", err(lambda: request(SIOCGIFADDR, "nosuch0")))
out("SIOCGIWNAME (not wireless)", err(lambda: request(SIOCGIWNAME)))
c.close()
c6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
out("IPv6 socket: SIOCGIFADDR", err(lambda: fcntl.ioctl(c6, SIOCGIFADDR, struct.pack("256s", name.encode()))))
out("IPv6 socket: SIOCGIFHWADDR's MAC",
    fcntl.ioctl(c6, SIOCGIFHWADDR, struct.pack("256s", name.encode()))[18:24].hex(":") == seen)
c6.close()

# A peer that reads nothing: what waits to be sent is partly in flight and
# the rest not sent, which SIOCOUTQNSD and TCP_INFO's tcpi_notsent_bytes
# tell apart from SIOCOUTQ's all; with nothing waiting, both are 0.
quiet = socket.socket()
quiet.bind((mine, 0))
quiet.listen()
q = socket.create_connection(quiet.getsockname())
q.setblocking(False)
notsent = lambda: struct.unpack_from("I", q.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232), 144)[0]
out("SIOCOUTQNSD, tcpi_notsent_bytes with nothing sent", (ioctl_int(q, SIOCOUTQNSD), notsent()))
for _ in range(1024):
    try:
        q.send(bytes(65536))
    except BlockingIOError:
        break
time.sleep(0.5)
waiting, unsent = ioctl_int(q, termios.TIOCOUTQ), ioctl_int(q, SIOCOUTQNSD)
out("with the peer's window full: some not sent, within all that waits, as TCP_INFO says",
    (0 < unsent <= waiting, abs(notsent() - unsent) <= 1))
out("SIOCOUTQNSD of a listener, SIOCATMARK and SIOCOUTQNSD of a datagram socket",
    (err(lambda: ioctl_int(quiet, SIOCOUTQNSD)),
     [err(lambda: ioctl_int(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), r)) for r in (SIOCATMARK, SIOCOUTQNSD)]))
fcntl.ioctl(q, 0x8901, struct.pack("i", os.getpid()))  # FIOSETOWN
out("FIOSETOWN, then F_GETOWN and FIOGETOWN", (fcntl.fcntl(q, fcntl.F_GETOWN) == os.getpid(), ioctl_int(q, 0x8903) == os.getpid()))
q.close()
quiet.close()

# TCP_INQ: each recvmsg says how many bytes are left to read, and 1 once
# the peer's FIN came with nothing left, so the reader reads again.
TCP_INQ = number("TCP_INQ")
def left(x, n):
    data, messages, _, _ = x.recvmsg(n, socket.CMSG_SPACE(4))
    return data, [(level, kind, struct.unpack("i", value)[0]) for level, kind, value in messages]
i = socket.create_connection(ECHO)
i.setsockopt(socket.IPPROTO_TCP, TCP_INQ, 1)
i.sendall(b"hello world")
i.shutdown(socket.SHUT_WR)
deadline = time.monotonic() + 5
while ioctl_int(i, termios.FIONREAD) < 11 and time.monotonic() < deadline:
    time.sleep(0.01)
time.sleep(0.3)  # the echo server's FIN after the echo
out("TCP_INQ: recvmsg of 5, then the rest, then the end", (left(i, 5), left(i, 100), left(i, 100)))
i.setsockopt(socket.IPPROTO_TCP, TCP_INQ, 0)
out("TCP_INQ off: no control message", i.recvmsg(100, 64)[1])
i.close()

# An ioctl given no argument where one is read or written: EFAULT, not a crash.
libc = ctypes.CDLL(None, use_errno=True)  # the library's ioctl, when preloaded
n = socket.socket()
out("ioctls with a null argument", [(libc.ioctl(n.fileno(), r, None), errno.errorcode.get(ctypes.get_errno()))
                                    for r in (termios.FIONREAD, termios.TIOCOUTQ, SIOCOUTQNSD, SIOCATMARK, 0x5421, 0x8903)])
n.close()

# A failed connect leaves the socket unconnected, as Linux's: connecting
# again starts anew (a client that retries on the one socket until its
# server is up), and a non-blocking one reports its failure once first.
r = socket.socket()
out("connect refused, again, then to the echo server",
    (err(lambda: r.connect(CLOSED)), err(lambda: r.connect(CLOSED)), err(lambda: r.connect(ECHO))))
r.sendall(b"again")
out("and it echoes", r.recv(10))
r.shutdown(socket.SHUT_WR)
out("until its end", (r.recv(10), r.recv(10)))
time.sleep(0.2)
out("shutdown once both sides closed", err(lambda: r.shutdown(socket.SHUT_WR)))
r.close()
r = socket.socket()
r.setblocking(False)
out("non-blocking connect refused", err(lambda: r.connect(CLOSED)))
time.sleep(0.3)
out("then connect says it, then starts anew", (err(lambda: r.connect(CLOSED)), err(lambda: r.connect(CLOSED))))
time.sleep(0.3)
out("SO_ERROR takes the error, so connect says ECONNABORTED, then to the echo server",
    (r.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR), err(lambda: r.connect(CLOSED)), err(lambda: r.connect(ECHO))))
time.sleep(0.3)
out("connected", (err(lambda: r.connect(ECHO)), r.getpeername() == ECHO))
r.close()

# A socket closed while in an epoll set leaves it at once, as Linux drops a
# closed file's registrations: no event comes for its descriptor after.
k = socket.create_connection(ECHO)
kep = select.epoll()
kep.register(k, select.EPOLLIN)
k.send(b"x")
deadline = time.monotonic() + 5
while not kep.poll(0.1) and time.monotonic() < deadline:
    pass
out("epoll before the close", [events for _, events in kep.poll(0)])
k.close()
out("and after it", kep.poll(0))
kep.close()

# What the kernel refuses before anything else: accept4's unknown flags
# (even with nothing to accept, on a blocking listener), and a dup2 or dup3
# onto a socket that fails leaves the socket open.
l = socket.socket()
l.bind(("", 0))
l.listen(1)
out("accept4 with an unknown flag", (libc.accept4(l.fileno(), None, None, 0x40000000), ctypes.get_errno()))
l.close()
t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
t.bind(("", 0))
out("dup2 of a closed descriptor onto a socket", err(lambda: os.dup2(999, t.fileno())))
out("the socket is still there", err(lambda: t.getsockname()[1] > 0))
out("dup3 with an unknown flag onto it", (libc.dup3(0, t.fileno(), 0x40), ctypes.get_errno()))
out("the socket is still there", err(lambda: t.getsockname()[1] > 0))
out("dup3 onto itself", (libc.dup3(t.fileno(), t.fileno(), 0), ctypes.get_errno()))
out("dup2 onto itself", err(lambda: os.dup2(t.fileno(), t.fileno()) == t.fileno()))
t.close()

# MSG_TRUNC on a stream socket takes the bytes without copying them (their
# count is what the call returns); with MSG_PEEK it leaves them.
m = socket.create_connection(ECHO)
m.sendall(b"hello world")
time.sleep(0.2)
out("recv 5 with MSG_TRUNC, then the rest", (len(m.recv(5, socket.MSG_TRUNC)), m.recv(100)))
m.sendall(b"abc")
time.sleep(0.2)
out("MSG_PEEK|MSG_TRUNC, then the rest", (len(m.recv(2, socket.MSG_PEEK | socket.MSG_TRUNC)), m.recv(100)))
m.close()

# SO_PEEK_OFF (a stream socket's since Linux 6.10): a peek starts that far
# in and moves it on, a read moves it back (not below 0), and a peek past
# every byte waits for more. A datagram socket's offset passes over the
# datagrams it covers whole; what a read takes moves it back, not the
# datagram's length.
SO_PEEK_OFF, PEEK = 42, socket.MSG_PEEK
# recvmsg's MSG_PEEK into several buffers fills each after the one before.
with socket.create_connection(ECHO) as p:
    p.sendall(b"abcdefghijkl")
    time.sleep(0.2)
    pieces = bytearray(4), bytearray(4), bytearray(0), bytearray(6)
    out("recvmsg MSG_PEEK into four buffers", (p.recvmsg_into(pieces, 0, PEEK)[0], [bytes(x) for x in pieces]))
    pieces = bytearray(3), bytearray(3)
    out("then a read into two", (p.recvmsg_into(pieces)[0], [bytes(x) for x in pieces]))
# A peek waits for its target as a read does: MSG_WAITALL's length, or
# SO_RCVLOWAT's count; when the receive timeout passes, it gives what is there.
with socket.create_connection(ECHO) as p:
    p.sendall(b"abcd")
    time.sleep(0.2)
    threading.Timer(0.3, p.sendall, (b"efgh",)).start()
    out("a peek with MSG_WAITALL for 8 with 4 there", p.recv(8, PEEK | socket.MSG_WAITALL))
    p.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 12)
    threading.Timer(0.3, p.sendall, (b"ijkl",)).start()
    out("a peek with SO_RCVLOWAT 12 with 8 there", p.recv(100, PEEK))
    p.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 200000))
    out("a peek with MSG_WAITALL for 20 until the timeout", err(lambda: p.recv(20, PEEK | socket.MSG_WAITALL)))
    pieces = bytearray(10), bytearray(10)
    out("recvmsg's peek into two for 20 until the timeout",
        err(lambda: (p.recvmsg_into(pieces, 0, PEEK | socket.MSG_WAITALL)[0], bytes(pieces[1]))))
with socket.create_connection(ECHO) as p:
    p.sendall(b"abcdefghijklmnop")
    time.sleep(0.2)
    offset = lambda: p.getsockopt(socket.SOL_SOCKET, SO_PEEK_OFF)
    out("SO_PEEK_OFF by default, set to -5", (offset(), err(lambda: p.setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, -5)),
                                                offset(), p.recv(2, PEEK)))
    p.setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, 0)
    out("two peeks from offset 0", (p.recv(3, PEEK), p.recv(3, PEEK), offset()))
    out("a read of 2, then a peek", (p.recv(2), offset(), p.recv(2, PEEK), offset()))
    out("a read of more than the offset", (p.recv(10), offset()))
    p.setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, 100)
    out("a peek past every byte", err(lambda: p.recv(3, PEEK | socket.MSG_DONTWAIT)))
    p.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 200000))
    out("a blocking peek past every byte", err(lambda: p.recv(3, PEEK)))
    p.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 5, 0))
    p.setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, 4)
    threading.Timer(0.2, p.sendall, (b"qrstuv",)).start()
    out("a blocking peek past every byte, then bytes come", (p.recv(4, PEEK), offset()))
    p.setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, -1)
    out("a peek with SO_PEEK_OFF off", (p.recv(3, PEEK), offset(), p.recv(100)))
    p.shutdown(socket.SHUT_WR)
    time.sleep(0.2)
    p.setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, 0)
    out("a peek from offset 0 at the end", (p.recv(3, PEEK), offset()))
with socket.socket() as l:
    l.bind(("", 0))
    l.listen(1)
    out("SO_PEEK_OFF on a listener", (err(lambda: l.setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, 3)),
                                      l.getsockopt(socket.SOL_SOCKET, SO_PEEK_OFF)))
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as q:
    q.connect(ECHO)
    for d in (b"12345", b"6789", b"ABCDEFG"):
        q.send(d)
    time.sleep(0.2)
    offset = lambda: q.getsockopt(socket.SOL_SOCKET, SO_PEEK_OFF)
    out("datagram SO_PEEK_OFF by default", offset())
    q.setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, 0)
    out("datagram peeks from offset 0", (q.recv(3, PEEK), offset(), q.recv(3, PEEK), offset(), q.recv(10, PEEK), offset()))
    out("a datagram read, then a peek", (q.recv(10), offset(), q.recv(10, PEEK), offset()))
    out("a datagram peek past every one", err(lambda: q.recv(10, PEEK | socket.MSG_DONTWAIT)))
    q.setsockopt(socket.SOL_SOCKET, SO_PEEK_OFF, 2)
    out("recvmsg peeks of 1 and 2 from offset 2", (q.recvmsg(1, 0, PEEK)[:3], q.recvmsg(2, 0, PEEK)[:3], offset()))
    # (Python's buffer grows to the length returned; past the 3 bytes asked it is not written.)
    out("a peek of 3 with MSG_TRUNC", ((lambda d: (len(d), d[:3]))(q.recv(3, PEEK | socket.MSG_TRUNC)), offset()))
    out("reads of 10 and 2", (q.recv(10), offset(), q.recv(2), offset()))

# Addresses and option lengths, checked in Linux's order: a short address is
# EINVAL before its family is looked at; IPv4's bind takes AF_UNSPEC with the
# wildcard address as AF_INET; a NULL value or length is EFAULT; getsockopt
# cuts an integer to the length asked, even none; a stream socket's
# recvfrom names no sender.
def c_call(f):
    ctypes.set_errno(0)
    r = f()
    return r, (errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno()) if r < 0 else 0)


a = socket.socket()
inet = struct.pack("=H", socket.AF_INET) + struct.pack("!H4s8x", 0, socket.inet_aton("0.0.0.0"))
out("bind with 8 bytes of a sockaddr_in", c_call(lambda: libc.bind(a.fileno(), inet, 8)))
out("bind an AF_INET6 address to an AF_INET socket",
    c_call(lambda: libc.bind(a.fileno(), struct.pack("=H", socket.AF_INET6) + b"\0" * 26, 28)))
out("connect with 4 bytes of a sockaddr_in", c_call(lambda: libc.connect(a.fileno(), inet, 4)))
out("bind AF_UNSPEC with the wildcard address",
    (c_call(lambda: libc.bind(a.fileno(), b"\0" * 16, 16)), a.getsockname()[1] > 0))
one = ctypes.c_int(1)
value, length = ctypes.c_int(7), ctypes.c_uint(0)
out("setsockopt with 2 bytes", c_call(lambda: libc.setsockopt(a.fileno(), socket.SOL_SOCKET, socket.SO_REUSEADDR,
                                                             ctypes.byref(one), 2)))
out("setsockopt with no value", c_call(lambda: libc.setsockopt(a.fileno(), socket.SOL_SOCKET, socket.SO_REUSEADDR,
                                                              None, 4)))
out("getsockopt with no length", c_call(lambda: libc.getsockopt(a.fileno(), socket.SOL_SOCKET, socket.SO_TYPE,
                                                               ctypes.byref(value), None)))
for asked in (0, 1, 2):
    value.value, length.value = 0x7f7f7f7f, asked
    r = c_call(lambda: libc.getsockopt(a.fileno(), socket.SOL_SOCKET, socket.SO_TYPE, ctypes.byref(value),
                                       ctypes.byref(length)))
    out(f"getsockopt SO_TYPE into {asked} bytes", (r, length.value, hex(value.value)))
    value.value, length.value = 0x7f7f7f7f, asked
    r = c_call(lambda: libc.getsockopt(a.fileno(), socket.IPPROTO_IP, socket.IP_TTL, ctypes.byref(value),
                                       ctypes.byref(length)))
    out(f"getsockopt IP_TTL into {asked} bytes", (r, length.value, hex(value.value)))
a.close()
a = socket.create_connection(ECHO)
a.sendall(b"y")
time.sleep(0.2)
out("recvfrom on a stream socket", a.recvfrom(10))
a.close()

# An IPv6 socket and IPv4 addresses: datagrams take a sockaddr_in, a
# stream's connect and any bind want a sockaddr_in6 (EINVAL), and an
# IPv6-only socket has no route to a v4-mapped address (ENETUNREACH).
inet_echo = struct.pack("=H", socket.AF_INET) + struct.pack("!H4s8x", ECHO[1], socket.inet_aton(HOST))
mapped = ("::ffff:" + HOST, ECHO[1])
a = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
out("IPv6 datagram sendto a sockaddr_in", c_call(lambda: libc.sendto(a.fileno(), b"v4", 2, 0, inet_echo, 16)))
a.close()
a = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
out("IPv6 stream connect to a sockaddr_in", c_call(lambda: libc.connect(a.fileno(), inet_echo, 16)))
out("IPv6 bind of a sockaddr_in", c_call(lambda: libc.bind(a.fileno(), inet_echo, 16)))
a.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
out("IPv6-only stream connect to a v4-mapped address", err(lambda: a.connect(mapped)))
a.close()
a = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
a.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
out("IPv6-only datagram sendto, connect to a v4-mapped address",
    (err(lambda: a.sendto(b"x", mapped)), err(lambda: a.connect(mapped))))
out("IPv6-only datagram sendto a sockaddr_in", c_call(lambda: libc.sendto(a.fileno(), b"v4", 2, 0, inet_echo, 16)))
out("IPv6-only bind of a v4-mapped address", err(lambda: a.bind(("::ffff:0.0.0.0", 0))))
a.close()

# poll's and epoll's normal-data bits come with IN and OUT (and a datagram
# socket's OUT with WRBAND), as Linux's tcp_poll and datagram_poll set
# them: a program that asks only for POLLRDNORM or POLLWRNORM hears them.
a = socket.create_connection(ECHO)
a.sendall(b"hi")
time.sleep(0.2)
for name in ("POLLRDNORM", "POLLWRNORM", "POLLWRBAND", "POLLPRI"):
    p = select.poll()
    p.register(a, getattr(select, name))
    out(f"poll for {name} alone", [events for _, events in p.poll(100)])
e = select.epoll()
e.register(a, select.EPOLLRDNORM | select.EPOLLWRNORM)
out("epoll for EPOLLRDNORM|EPOLLWRNORM", [events for _, events in e.poll(0.1)])
e.close()
a.close()
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
p = select.poll()
p.register(a, select.POLLIN | select.POLLOUT | select.POLLWRNORM | select.POLLWRBAND | select.POLLRDNORM)
out("a datagram socket's poll", [events for _, events in p.poll(100)])
a.close()
a = socket.socket()
p = select.poll()
p.register(a, select.POLLIN)
out("a fresh stream socket polled for POLLIN", [events for _, events in p.poll(100)])
a.close()

# Send flags: TCP ignores what it does not use; MSG_FASTOPEN connects first
# (as Fast Open without a cookie: EISCONN once connected, EINPROGRESS and
# nothing sent on a non-blocking socket, EINVAL without an address); a
# datagram's MSG_PROBE checks and sends nothing.
a = socket.create_connection(ECHO)
own = a.getsockname()[0]
for name, flag in (("MSG_EOR", socket.MSG_EOR), ("MSG_CONFIRM", socket.MSG_CONFIRM), ("MSG_ZEROCOPY", 0x4000000),
                   ("MSG_PROBE", 0x10), ("MSG_FASTOPEN", socket.MSG_FASTOPEN)):
    out(f"stream send with {name}", err(lambda: a.send(b"f", flag)))
time.sleep(0.2)
out("echoed", a.recv(100))
a.close()
a = socket.socket()
out("sendto with MSG_FASTOPEN, unconnected", err(lambda: a.sendto(b"tfo", socket.MSG_FASTOPEN, ECHO)))
out("its echo", a.recv(10))
a.close()
a = socket.socket()
a.setblocking(False)
out("the same, non-blocking", err(lambda: a.sendto(b"tfo", socket.MSG_FASTOPEN, ECHO)))
time.sleep(0.2)
out("connected then, nothing echoed", (a.getpeername() == ECHO, err(lambda: a.recv(10))))
a.close()
a = socket.socket()
out("send with MSG_FASTOPEN and no address", err(lambda: a.send(b"x", socket.MSG_FASTOPEN)))
a.close()
a, b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
a.bind((own, 0))
a.settimeout(2)
out("datagram sendto with MSG_PROBE, then without", (err(lambda: b.sendto(b"probe", 0x10, a.getsockname())),
                                                      err(lambda: b.sendto(b"sent", a.getsockname()))))
out("what came", a.recv(10))
a.close()
b.close()

# An accepted socket has its listener's options, as Linux's child copies
# the listening socket, but for what it starts anew (SO_PRIORITY from the
# SYN, TCP_QUICKACK on); O_NONBLOCK is accept4's to say.
inherited = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1), (socket.SOL_SOCKET, socket.SO_RCVBUF, 65536),
             (socket.SOL_SOCKET, socket.SO_SNDBUF, 65536), (socket.SOL_SOCKET, socket.SO_REUSEADDR, 1),
             (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1), (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 77),
             (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 11), (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 5),
             (socket.IPPROTO_IP, socket.IP_TTL, 33), (socket.SOL_SOCKET, socket.SO_RCVLOWAT, 10),
             (socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 5000), (socket.SOL_SOCKET, socket.SO_PRIORITY, 3),
             (socket.IPPROTO_TCP, socket.TCP_QUICKACK, 0)]
l = socket.socket()
for level, name, v in inherited:
    l.setsockopt(level, name, v)
l.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 7))
l.bind(("", 0))
l.listen(1)
l.setblocking(False)
a = socket.create_connection((own, l.getsockname()[1]))
time.sleep(0.2)
b, _ = l.accept()
out("an accepted socket's options", [b.getsockopt(level, name) for level, name, _ in inherited]
    + [struct.unpack("ii", b.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8)), b.getblocking()])
for x in (a, b, l):
    x.close()
