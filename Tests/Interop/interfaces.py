"""Prints getifaddrs(3)'s list, one entry a line: name, family's address,
netmask and broadcast (a link's MAC for AF_PACKET). test_preload.py runs it
through the library, which makes the stack's interface the stack's."""
import ctypes, ctypes.util, socket
class sockaddr(ctypes.Structure): _fields_ = [("family", ctypes.c_ushort), ("data", ctypes.c_ubyte * 26)]
class ifaddrs(ctypes.Structure): pass
ifaddrs._fields_ = [("next", ctypes.POINTER(ifaddrs)), ("name", ctypes.c_char_p), ("flags", ctypes.c_uint),
                    ("addr", ctypes.POINTER(sockaddr)), ("netmask", ctypes.POINTER(sockaddr)),
                    ("broad", ctypes.POINTER(sockaddr)), ("data", ctypes.c_void_p)]
libc = ctypes.CDLL(None)
head = ctypes.POINTER(ifaddrs)()
assert libc.getifaddrs(ctypes.byref(head)) == 0
def show(p):
    if not p: return None
    a = p.contents; d = bytes(a.data)
    if a.family == socket.AF_INET: return socket.inet_ntop(socket.AF_INET, d[2:6])
    if a.family == socket.AF_INET6: return socket.inet_ntop(socket.AF_INET6, d[6:22])
    if a.family == 17: return d[10:16].hex(":")
    return a.family
p = head
while p:
    e = p.contents
    print(e.name.decode(), show(e.addr), show(e.netmask), show(e.broad))
    p = e.next
libc.freeifaddrs(head)
