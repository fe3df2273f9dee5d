import CURing
import Foundation

/// The kernel side's counterpart of `netstack up --serve echo`: RFC 862 echo
/// on TCP and UDP at one address and port, for the kernel system's tcp-rr and
/// udp-pps.
///
/// Built the way a tuned kernel server is, so the kernel is not handicapped
/// by its server: a blocking thread per TCP connection (recv then send, two
/// system calls per transaction, as netperf's server does), and UDP in
/// batches of up to 64 datagrams per recvmmsg/sendmmsg, as netstack batches
/// its TAP reads and writes through io_uring. It exits by itself after
/// `lifetime` seconds (the bench stops it sooner).
enum KernelEchoServer {
    /// How often blocked calls wake to check the lifetime.
    static let wakeInterval = 0.5

    static func run(host: String, port: UInt16, lifetime: Double) throws {
        let deadline = KernelSocket.now() + lifetime
        let address = try KernelSocket.address(host, port)
        let listener = try KernelSocket.make(SOCK_STREAM, family: address.family)
        try KernelSocket.setOption(listener, SOL_SOCKET, SO_REUSEADDR, 1)
        try KernelSocket.bind(listener, address)
        guard listen(listener, 16) == 0 else { throw SocketError("listen") }
        try KernelSocket.setTimeouts(listener, seconds: wakeInterval)
        let udp = try KernelSocket.make(SOCK_DGRAM, family: address.family)
        try KernelSocket.bind(udp, address)
        try KernelSocket.setTimeouts(udp, seconds: wakeInterval)

        Thread.detachNewThread { serveDatagrams(udp, until: deadline) }
        while KernelSocket.now() < deadline {
            let c = KernelSocket.accept(listener)
            guard c >= 0 else {
                // EAGAIN is the wake-up; anything else (EMFILE) waits a little rather than spin.
                if errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR { usleep(10_000) }
                continue
            }
            try? KernelSocket.setOption(c, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
            try? KernelSocket.setTimeouts(c, seconds: wakeInterval)
            Thread.detachNewThread { serveStream(c, until: deadline) }
        }
    }

    static func serveDatagrams(_ fd: Int32, until deadline: Double) {
        let slot = 2048, batch = 64
        let buffers = UnsafeMutablePointer<UInt8>.allocate(capacity: slot * batch)
        defer { buffers.deallocate() }
        while KernelSocket.now() < deadline {
            let n = curing_udp_echo_batch(fd, buffers, UInt32(slot), UInt32(batch))
            if n < 0 && n != -EAGAIN && n != -EWOULDBLOCK && n != -EINTR { usleep(10_000) }
        }
    }

    /// Echoes one connection until the client closes it.
    static func serveStream(_ fd: Int32, until deadline: Double) {
        defer { close(fd) }
        let size = 64 * 1024
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        defer { buffer.deallocate() }
        while true {
            let n = recv(fd, buffer, size, 0)
            if n < 0 {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) && KernelSocket.now() < deadline { continue }
                return
            }
            if n == 0 { return }
            var off = 0
            while off < n {
                let w = send(fd, buffer + off, n - off, Int32(MSG_NOSIGNAL))
                if w <= 0 { return }
                off += w
            }
        }
    }
}
