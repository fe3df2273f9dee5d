#if canImport(Glibc)
import Glibc
#endif
import CNetStackABI

/// An eventfd used as a doorbell: one side `signal`s, the other waits for it
/// to be readable (poll, epoll, io_uring) and `drain`s it. Non-blocking and
/// close-on-exec in this process; its owner closes it.
struct EventFD {
    let descriptor: Int32

    init() throws(SocketAPIError) {
        descriptor = ns_eventfd()
        if descriptor < 0 { throw .systemCall("eventfd", errno) }
    }

    /// Makes it readable (adds one to its count).
    func signal() {
        var one: UInt64 = 1
        _ = write(descriptor, &one, 8)
    }

    /// The kernel's id of the eventfd, the same in every process holding
    /// it: how a process it was passed to (SCM_RIGHTS) names it. Nil if unknown.
    var kernelID: Int64? {
        let id = ns_eventfd_kernel_id(0, descriptor)
        return id >= 0 ? id : nil
    }

    /// SIGURG to the owner the application gave its copy of this eventfd
    /// (its socket's descriptor: F_SETOWN, FIOSETOWN), if any, and if user
    /// `uid` may signal it.
    func sendUrgentSignal(as uid: UInt32) { _ = ns_send_sigurg(descriptor, uid) }

    /// SIGIO (or F_SETSIG's signal) to that owner, as `sendUrgentSignal`.
    func sendIOSignal(as uid: UInt32) { _ = ns_send_sigio(descriptor, uid) }

    func close() { _ = Glibc.close(descriptor) }
}

/// What setting up the API or a socket for it failed on.
public enum SocketAPIError: Error, CustomStringConvertible {
    case systemCall(String, Int32)
    case pathTooLong(String)

    public var description: String {
        switch self {
        case .systemCall(let call, let e): "\(call): \(String(cString: strerror(e)))"
        case .pathTooLong(let path): "\(path): longer than a UNIX socket path may be"
        }
    }
}
