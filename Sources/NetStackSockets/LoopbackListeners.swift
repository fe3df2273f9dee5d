#if canImport(Glibc)
import Glibc
#endif
import CNetStackABI

/// The kernel's listeners beside a stack listener on the wildcard address:
/// such a listener is reached on the kernel's loopback too, as on Linux,
/// where a server on 0.0.0.0 answers 127.0.0.1. The stack has no loopback
/// (the library gives 127/8 and ::1 to the kernel), so without these a
/// server run through the library was out of reach of `curl localhost` and
/// of a client run through the library at 127.0.0.1 (ECONNREFUSED from the
/// kernel). Onload's EF_TCP_SERVER_LOOPBACK does the same with a kernel
/// listener beside its own.
///
/// The loop makes them before the application's listen(2) returns, so a
/// connection right after it finds them, and owns them. The API thread
/// watches them (one-shot in its epoll set) and says when one is readable
/// (`APIEvent.loopbackReadable`); the socket then counts one more
/// connection waiting, and the application's accept takes it from the
/// kernel's queue (`accept`) as a kernel socket, passed with SCM_RIGHTS,
/// whose calls go to libc. Until then a connection waits in the kernel's
/// backlog, as any does on Linux, so a full queue holds back a client, never
/// resets it. Best effort, as Onload's: a port the kernel's loopback has
/// taken (a kernel server there) is left to it, and of 127/8 only 127.0.0.1
/// is listened on.
final class LoopbackListeners {
    private let socket: UInt32
    private let epoll: Int32
    private var descriptors: [Int32] = []
    /// Which may have a connection waiting (their watch fired and no accept found them empty).
    private var readable: [Bool] = []

    /// Listens at `places` on `port` for `socket`, each watched in `epoll`
    /// (the API thread's); nil if the kernel gave none.
    init?(socket: UInt32, port: UInt16, places: [ns_loopback], sharingPort: Bool, backlog: Int32, epoll: Int32) {
        self.socket = socket
        self.epoll = epoll
        for place in places {
            let fd = ns_loopback_listener(place, port, sharingPort ? 1 : 0, backlog)
            guard fd >= 0 else { continue }
            descriptors.append(fd)
            readable.append(false)
            _ = ns_epoll_ctl(epoll, 1, fd, UInt32(NS_EPOLL_IN | NS_EPOLL_ONESHOT), Self.tag(socket, descriptors.count - 1))
        }
        if descriptors.isEmpty { return nil }
    }

    /// The API thread's epoll tag for listener `index` of `socket`.
    static func tag(_ socket: UInt32, _ index: Int) -> UInt64 {
        APIThread.Tag.loopback.with(wide: UInt64(index) << 32 | UInt64(socket))
    }

    static func decode(_ tag: UInt64) -> (socket: UInt32, index: Int) {
        (UInt32(truncatingIfNeeded: tag), Int(tag >> 32 & 0xff))
    }

    /// Listeners that may have a connection waiting: what the socket's
    /// `pending` counts beside the stack's connections.
    var waiting: Int { readable.count(where: { $0 }) }

    /// Listener `index`'s watch fired.
    func becameReadable(_ index: Int) {
        if readable.indices.contains(index) { readable[index] = true }
    }

    /// A connection waiting at one of the listeners, accepted (non-blocking,
    /// close-on-exec); nil if none. A listener found empty is watched again.
    func accept() -> Int32? {
        for i in readable.indices where readable[i] {
            let fd = ns_accept(descriptors[i])
            if fd < 0 || !ns_readable_now(descriptors[i]) { watchAgain(i) }
            if fd >= 0 { return fd }
        }
        return nil
    }

    private func watchAgain(_ i: Int) {
        readable[i] = false
        _ = ns_epoll_ctl(epoll, 3, descriptors[i], UInt32(NS_EPOLL_IN | NS_EPOLL_ONESHOT), Self.tag(socket, i))
    }

    /// Stops listening: what waited in the kernel's queues is reset by the kernel.
    func close() {
        for fd in descriptors { _ = Glibc.close(fd) }
        descriptors = []
        readable = []
    }
}
