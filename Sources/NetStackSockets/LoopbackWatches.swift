#if canImport(Glibc)
import Glibc
#endif
import CNetStackABI

/// Kernel sockets on the loopback beside one stack socket, each watched
/// one-shot in the API thread's epoll set: its watch firing posts
/// `APIEvent.loopbackReadable`, and the loop, having taken what was there,
/// watches it again. What `LoopbackListeners` and `LoopbackDatagrams` share.
struct LoopbackWatches {
    private let socket: UInt32
    private let epoll: Int32
    private(set) var descriptors: [Int32] = []
    /// Which may have something waiting (their watch fired and no read found them empty).
    private var readable: [Bool] = []

    init(socket: UInt32, epoll: Int32) {
        self.socket = socket
        self.epoll = epoll
    }

    /// Watches `fd`, which the watches now own, as the next index.
    mutating func add(_ fd: Int32) {
        descriptors.append(fd)
        readable.append(false)
        _ = ns_epoll_ctl(epoll, 1, fd, UInt32(NS_EPOLL_IN | NS_EPOLL_ONESHOT), Self.tag(socket, descriptors.count - 1))
    }

    var isEmpty: Bool { descriptors.isEmpty }

    /// How many may have something waiting.
    var waiting: Int { readable.count(where: { $0 }) }

    func mayHaveWaiting(_ index: Int) -> Bool { readable[index] }

    /// Watch `index` fired.
    mutating func becameReadable(_ index: Int) {
        if readable.indices.contains(index) { readable[index] = true }
    }

    /// `index` was found empty: watched again.
    mutating func watchAgain(_ index: Int) {
        readable[index] = false
        _ = ns_epoll_ctl(epoll, 3, descriptors[index], UInt32(NS_EPOLL_IN | NS_EPOLL_ONESHOT), Self.tag(socket, index))
    }

    mutating func close() {
        for fd in descriptors { _ = Glibc.close(fd) }
        descriptors = []
        readable = []
    }

    /// The API thread's epoll tag for watch `index` of `socket`.
    static func tag(_ socket: UInt32, _ index: Int) -> UInt64 {
        APIThread.Tag.loopback.with(wide: UInt64(index) << 32 | UInt64(socket))
    }

    static func decode(_ tag: UInt64) -> (socket: UInt32, index: Int) {
        (UInt32(truncatingIfNeeded: tag), Int(tag >> 32 & 0xff))
    }
}
