"""sendmmsg/recvmmsg from Python (which has no wrapper for them): the
kernel's struct mmsghdr through ctypes, for socket_calls.py and the UDP
client in test_preload.py."""
import ctypes


class IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class MsgHdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(IOVec)),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class MMsgHdr(ctypes.Structure):
    _fields_ = [("hdr", MsgHdr), ("len", ctypes.c_uint)]


MSG_WAITFORONE = 0x10000


def batch(buffers):
    """An mmsghdr array with one buffer per entry, and the iovecs it points
    to (the caller keeps both, and the buffers, alive while it is used)."""
    vec = (MMsgHdr * len(buffers))()
    iovs = [IOVec(ctypes.cast(b, ctypes.c_void_p), len(b)) for b in buffers]
    for m, iov in zip(vec, iovs):
        m.hdr.iov = ctypes.pointer(iov)
        m.hdr.iovlen = 1
    return vec, iovs
