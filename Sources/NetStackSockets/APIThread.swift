#if canImport(Glibc)
import Glibc
#endif
import CNetStackABI
import NetStack
import Synchronization

/// The API's own thread: it owns the listening UNIX socket and an epoll set
/// of the applications' control sockets. It accepts applications (refusing a peer whose uid is neither root nor the
/// socket's owner), reads their fixed-size requests, and posts everything to
/// the `APIInbox`; it never touches the stack. It also watches the kernel's
/// loopback listeners beside the stack's wildcard ones (`LoopbackListeners`,
/// which the loop registers in its epoll set, one-shot) and tells the loop
/// when one has a connection waiting. The sockets' doorbells are
/// not here: the loop reads them itself (`Stack.doorbells`). The loop owns
/// every descriptor but the listener's: a control socket is closed by the
/// loop after the hang-up, so a reply cannot go to a reused descriptor.
final class APIThread: @unchecked Sendable {
    /// Tags in the epoll set: the kind in the top byte, an id below.
    enum Tag: UInt64 {
        case listener = 1, client = 2, stop = 4, loopback = 8, holds = 16
        func with(_ id: UInt32) -> UInt64 { rawValue << 56 | UInt64(id) }
        /// A tag with an id of up to 56 bits (`LoopbackWatches.tag`).
        func with(wide id: UInt64) -> UInt64 { rawValue << 56 | id & (1 << 56 - 1) }
    }

    let epoll: Int32
    private let listener: Int32
    private let stopEvent: EventFD
    /// A timerfd the loop sets for the oldest unclaimed hold (`wakeForHolds`).
    private let holdTimer: Int32
    private let inbox: APIInbox
    private let submitDrain: @Sendable () -> Void
    private let owner: uid_t
    private var nextClient: UInt32 = 1
    /// Per client (this thread only): its socket and the bytes of a partial request.
    private var clients: [UInt32: (descriptor: Int32, pending: [UInt8])] = [:]
    private var thread: pthread_t?
    /// Applications refused for their uid.
    let refused = Atomic<UInt64>(0)

    /// Binds and listens at `path` (mode 0600; a stale socket file there is replaced).
    init(path: String, inbox: APIInbox, submitDrain: @escaping @Sendable () -> Void) throws(SocketAPIError) {
        self.inbox = inbox
        self.submitDrain = submitDrain
        owner = geteuid()
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.utf8.count < capacity else { throw .pathTooLong(path) }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        if fd < 0 { throw .systemCall("socket", errno) }
        var st = stat()
        if lstat(path, &st) == 0 && st.st_mode & S_IFMT == S_IFSOCK { unlink(path) }
        // Created owner-only: the umask covers the window before chmod.
        let oldMask = umask(0o177)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(oldMask)
        if bound != 0 {
            let e = errno
            close(fd)
            throw .systemCall("bind \(path)", e)
        }
        chmod(path, 0o600)
        if Glibc.listen(fd, 128) != 0 {
            let e = errno
            close(fd)
            throw .systemCall("listen", e)
        }
        listener = fd
        epoll = ns_epoll_create()
        if epoll < 0 { throw .systemCall("epoll_create1", errno) }
        stopEvent = try EventFD()
        holdTimer = ns_timerfd_create()
        if holdTimer < 0 { throw .systemCall("timerfd_create", errno) }
        _ = ns_epoll_ctl(epoll, 1, listener, UInt32(NS_EPOLL_IN), Tag.listener.with(0))
        _ = ns_epoll_ctl(epoll, 1, stopEvent.descriptor, UInt32(NS_EPOLL_IN), Tag.stop.with(0))
        _ = ns_epoll_ctl(epoll, 1, holdTimer, UInt32(NS_EPOLL_IN), Tag.holds.with(0))
    }

    /// Posts `APIEvent.holdsDue` once `delay` has passed, replacing the last
    /// such request: a hold whose child never claims it (a child that died
    /// first, a static program spawned with a socket) then goes even if no
    /// application talks to the stack again. Any thread (timerfd_settime).
    func wakeForHolds(after delay: Duration) {
        _ = ns_timerfd_arm(holdTimer, max(1, delay.nanoseconds))  // never 0 (which disarms it) or less
    }

    func start() {
        let box = Unmanaged.passRetained(self)
        var t = pthread_t()
        pthread_create(&t, nil, { arg in
            let me = Unmanaged<APIThread>.fromOpaque(arg!).takeRetainedValue()
            me.run()
            return nil
        }, box.toOpaque())
        thread = t
    }

    /// Stops the thread and waits for it; closes the listener and the epoll
    /// set. Client descriptors stay the loop's to close.
    func stop(path: String) {
        stopEvent.signal()
        if let thread { pthread_join(thread, nil) }
        thread = nil
        close(listener)
        unlink(path)
        close(epoll)
        close(holdTimer)
        stopEvent.close()
    }

    private func post(_ event: APIEvent) {
        if inbox.post(event) { submitDrain() }
    }

    private func run() {
        var tags = [UInt64](repeating: 0, count: 64)
        var events = [UInt32](repeating: 0, count: 64)
        var buffer = [UInt8](repeating: 0, count: 64 * ControlMessage.size)
        while true {
            let n = ns_epoll_wait(epoll, &tags, &events, 64, -1)
            if n < 0 {
                if errno == EINTR { continue }
                return
            }
            for i in 0..<Int(n) {
                let id = UInt32(truncatingIfNeeded: tags[i])
                switch Tag(rawValue: tags[i] >> 56) {
                case .stop?:
                    return
                case .listener?:
                    acceptAll()
                case .client?:
                    readRequests(client: id, buffer: &buffer)
                case .loopback?:
                    let (socket, index) = LoopbackWatches.decode(tags[i])
                    post(.loopbackReadable(socket: socket, index: index))
                case .holds?:
                    var expirations: UInt64 = 0
                    _ = read(holdTimer, &expirations, 8)
                    post(.holdsDue)
                case nil:
                    break
                }
            }
        }
    }

    private func acceptAll() {
        while true {
            let fd = ns_accept(listener)
            if fd < 0 { return }
            let uid = ns_peer_uid(fd)
            guard uid == 0 || uid == Int(owner) else {
                refused.add(1, ordering: .relaxed)
                close(fd)
                continue
            }
            let id = nextClient
            nextClient &+= 1
            clients[id] = (fd, [])
            post(.connected(client: id, descriptor: fd, uid: UInt32(uid)))
            _ = ns_epoll_ctl(epoll, 1, fd, UInt32(NS_EPOLL_IN) | UInt32(NS_EPOLL_RDHUP), Tag.client.with(id))
        }
    }

    /// Reads what the client sent, posts each whole request, keeps a partial
    /// one; on end of file or an error, posts the hang-up.
    private func readRequests(client id: UInt32, buffer: inout [UInt8]) {
        guard var entry = clients[id] else { return }
        while true {
            let n = buffer.withUnsafeMutableBytes { read(entry.descriptor, $0.baseAddress, $0.count) }
            if n < 0 && (errno == EAGAIN || errno == EINTR) { break }
            if n <= 0 {
                _ = ns_epoll_ctl(epoll, 2, entry.descriptor, 0, 0)
                clients[id] = nil
                post(.hangup(client: id))
                return
            }
            entry.pending.append(contentsOf: buffer[0..<n])
            var at = 0
            while entry.pending.count - at >= ControlMessage.size {
                let request = entry.pending.span.bytes.extracting(at..<at + ControlMessage.size)
                if let r = ControlRequest(request) { post(.request(client: id, r)) }
                at += ControlMessage.size
            }
            entry.pending.removeFirst(at)
            if n < buffer.count { break }
        }
        clients[id] = entry
    }
}
