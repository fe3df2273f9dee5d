// Observed: once one file of this module imports CURing, SOCK_STREAM and
// MSG_NOSIGNAL resolve only in files that import it as well.
import CURing
#if canImport(Glibc)
import Glibc
#endif

/// A failed socket call, with the errno it left.
struct SocketError: Error, CustomStringConvertible {
    var call: String
    var code: Int32
    init(_ call: String, code: Int32 = errno) {
        self.call = call
        self.code = code
    }
    var description: String { "\(call): \(String(cString: strerror(code)))" }
}

/// A socket address of either family, as the kernel's calls take it.
struct KernelSocketAddress {
    fileprivate var storage = sockaddr_storage()
    fileprivate var length: socklen_t

    /// `AF_INET` or `AF_INET6`.
    var family: Int32 { Int32(storage.ss_family) }

    /// Parses a numeric IPv4 or IPv6 address (no brackets).
    init(_ ip: String, _ port: UInt16) throws {
        if ip.contains(":") {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, ip, &a.sin6_addr) == 1 else { throw SocketError("inet_pton \(ip)", code: EINVAL) }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: a, as: sockaddr_in6.self) }
        } else {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = port.bigEndian
            guard inet_pton(AF_INET, ip, &a.sin_addr) == 1 else { throw SocketError("inet_pton \(ip)", code: EINVAL) }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutableBytes(of: &storage) { $0.storeBytes(of: a, as: sockaddr_in.self) }
        }
    }

    /// What `getsockname` fills in.
    fileprivate init() { length = socklen_t(MemoryLayout<sockaddr_storage>.size) }

    /// Calls `body` with the address as the `sockaddr` pointer and length the calls take.
    fileprivate func withSockaddr<R>(_ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
        withUnsafeBytes(of: storage) { body($0.baseAddress!.assumingMemoryBound(to: sockaddr.self), length) }
    }
}

/// The few kernel socket calls the bench's load generators and echo server
/// make, through Glibc: they drive the kernel's stack, so they cannot use ours.
enum KernelSocket {
    static func address(_ ip: String, _ port: UInt16) throws -> KernelSocketAddress {
        try KernelSocketAddress(ip, port)
    }

    /// A socket of `type` in `family` (`AF_INET` or `AF_INET6`).
    static func make(_ type: __socket_type, family: Int32 = AF_INET) throws -> Int32 {
        let fd = socket(family, Int32(type.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SocketError("socket") }
        return fd
    }

    /// The next connection on a listening socket, or -1 (errno set).
    static func accept(_ fd: Int32) -> Int32 {
        let c = Glibc.accept(fd, nil, nil)
        if c >= 0 { _ = fcntl(c, F_SETFD, FD_CLOEXEC) }
        return c
    }

    static func bind(_ fd: Int32, _ a: KernelSocketAddress) throws {
        guard a.withSockaddr({ Glibc.bind(fd, $0, $1) }) == 0 else { throw SocketError("bind") }
    }

    static func connect(_ fd: Int32, _ a: KernelSocketAddress) throws {
        guard a.withSockaddr({ Glibc.connect(fd, $0, $1) }) == 0 else { throw SocketError("connect") }
    }

    /// The address a socket is bound to (to learn an ephemeral port).
    static func localAddress(_ fd: Int32) throws -> KernelSocketAddress {
        var a = KernelSocketAddress()
        let r = withUnsafeMutableBytes(of: &a.storage) {
            getsockname(fd, $0.baseAddress!.assumingMemoryBound(to: sockaddr.self), &a.length)
        }
        guard r == 0 else { throw SocketError("getsockname") }
        return a
    }

    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) throws {
        var v = value
        guard setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw SocketError("setsockopt \(name)")
        }
    }

    /// Bounds every blocking send, receive and connect, so a silent peer ends
    /// a measurement with an error instead of hanging it.
    static func setTimeouts(_ fd: Int32, seconds: Double) throws {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - seconds.rounded(.down)) * 1e6))
        for name in [SO_RCVTIMEO, SO_SNDTIMEO] {
            guard setsockopt(fd, SOL_SOCKET, name, &tv, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
                throw SocketError("setsockopt timeout")
            }
        }
    }

    static func setNonBlocking(_ fd: Int32) throws {
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0, fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 else { throw SocketError("fcntl") }
    }

    /// Seconds on CLOCK_MONOTONIC.
    static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
