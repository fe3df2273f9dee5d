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
    private var watches: LoopbackWatches

    /// Listens at `places` on `port` for `socket`, each watched in `epoll`
    /// (the API thread's); nil if the kernel gave none.
    init?(socket: UInt32, port: UInt16, places: [ns_loopback], sharingPort: Bool, backlog: Int32, epoll: Int32) {
        watches = LoopbackWatches(socket: socket, epoll: epoll)
        for place in places {
            let fd = ns_loopback_listener(place, port, sharingPort ? 1 : 0, backlog)
            if fd >= 0 { watches.add(fd) }
        }
        if watches.isEmpty { return nil }
    }

    /// Listeners that may have a connection waiting: what the socket's
    /// `pending` counts beside the stack's connections.
    var waiting: Int { watches.waiting }

    /// Listener `index`'s watch fired.
    func becameReadable(_ index: Int) { watches.becameReadable(index) }

    /// A connection waiting at one of the listeners, accepted (non-blocking,
    /// close-on-exec); nil if none. A listener found empty is watched again.
    func accept() -> Int32? {
        for (i, listener) in watches.descriptors.enumerated() where watches.mayHaveWaiting(i) {
            let fd = ns_accept(listener)
            if fd < 0 || !ns_readable_now(listener) { watches.watchAgain(i) }
            if fd >= 0 { return fd }
        }
        return nil
    }

    /// Stops listening: what waited in the kernel's queues is reset by the kernel.
    func close() { watches.close() }
}
