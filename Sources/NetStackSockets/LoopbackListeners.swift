#if canImport(Glibc)
import Glibc
#endif
import CNetStackABI

/// The kernel's side of listeners on the stack's wildcard address: such a
/// listener is reached on the kernel's loopback too, as on Linux, where a
/// server on 0.0.0.0 answers 127.0.0.1. The stack has no loopback (the
/// library gives 127/8 and ::1 to the kernel), so without these a server
/// run through the library was out of reach of `curl localhost` and of a
/// client run through the library at 127.0.0.1 (ECONNREFUSED from the
/// kernel). Onload's EF_TCP_SERVER_LOOPBACK does the same with a kernel
/// listener beside its own.
///
/// The loop makes them as the listener starts (`APIServer.listenOnLoopback`);
/// then the API thread owns them: it watches them in its epoll set, accepts
/// what comes and closes them when the loop asks (`APICommand`), posting
/// each connection to the loop (`APIEvent.loopbackAccepted`): the
/// listener's application accepts it from the same queue as the stack's
/// connections, and gets a kernel socket (the descriptor passed with
/// SCM_RIGHTS), whose calls go to libc. Best effort, as Onload's: a port
/// the kernel has taken on its loopback (a kernel server there) is left to
/// it. Only 127.0.0.1 of 127/8 is listened on.
final class LoopbackListeners {
    /// Each kernel listener's socket on the stack, by descriptor.
    private var owners: [Int32: UInt32] = [:]
    /// Each socket's kernel listeners.
    private var listeners: [UInt32: [Int32]] = [:]

    /// Takes over `socket`'s kernel listeners (made on the loop before its
    /// listen(2) returned, so a connection right after it finds them) and
    /// registers each in `epoll` under `tag(descriptor)`.
    func watch(socket: UInt32, listeners fds: [Int32], epoll: Int32, tag: (Int32) -> UInt64) {
        close(socket: socket, epoll: epoll)
        for fd in fds {
            owners[fd] = socket
            listeners[socket, default: []].append(fd)
            _ = ns_epoll_ctl(epoll, 1, fd, UInt32(NS_EPOLL_IN), tag(fd))
        }
    }

    func close(socket: UInt32, epoll: Int32) {
        guard let fds = listeners.removeValue(forKey: socket) else { return }
        for fd in fds {
            _ = ns_epoll_ctl(epoll, 2, fd, 0, 0)
            owners[fd] = nil
            _ = Glibc.close(fd)
        }
    }

    /// Accepts every connection waiting at `descriptor`, handing each to `post`
    /// with its listener's socket.
    func acceptAll(at descriptor: Int32, post: (UInt32, Int32) -> Void) {
        guard let socket = owners[descriptor] else { return }
        while true {
            let fd = ns_accept(descriptor)
            if fd < 0 { return }
            post(socket, fd)
        }
    }

    func closeAll(epoll: Int32) {
        for socket in Array(listeners.keys) { close(socket: socket, epoll: epoll) }
    }
}
