// Observed: once one file of this module imports CURing, SOCK_STREAM and
// MSG_NOSIGNAL resolve only in files that import it as well.
import CURing
import NetStackApps
#if canImport(Glibc)
import Glibc
#endif

/// The bench's kernel-socket clients for the request/response and packet-rate
/// scenarios. They run in the peer namespace (`bench-peer`), so the same code
/// loads the kernel's echo server and netstack's. Every loop is bounded both
/// by time and by count.
enum LoadGenerator {
    struct Outcome {
        /// Completed transactions (tcp-rr) or echoes received (udp-pps) per second.
        var rate: Double
        var completed: Int
        var seconds: Double
        /// udp-pps: datagrams written off as lost after the loss timeout.
        var lost: Int = 0
        /// The machine's busy CPU-seconds over the timed loop (`CPUTime`).
        var cpuSeconds: Double?
    }

    /// One TCP connection, Nagle off; each transaction writes one byte and
    /// waits for the byte to come back, so the rate is the inverse of the
    /// round trip through both stacks and the echo application.
    static func tcpRR(host: String, port: UInt16, duration: Double, maxTransactions: Int) throws -> Outcome {
        let address = try KernelSocket.address(host, port)
        let fd = try KernelSocket.make(SOCK_STREAM, family: address.family)
        defer { close(fd) }
        try KernelSocket.setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
        try KernelSocket.setTimeouts(fd, seconds: 2)
        try KernelSocket.connect(fd, address)
        var byte: UInt8 = 0x2a
        func transact() throws {
            guard send(fd, &byte, 1, Int32(MSG_NOSIGNAL)) == 1 else { throw SocketError("send") }
            let n = recv(fd, &byte, 1, 0)
            guard n == 1 else { throw n == 0 ? SocketError("recv: the echo server closed", code: 0) : SocketError("recv") }
        }
        // The first transaction includes ARP and cold caches; leave it out.
        try transact()
        let cpuStart = CPUTime.read()
        let start = KernelSocket.now()
        let deadline = start + duration
        var done = 0
        var now = start
        while done < maxTransactions && now < deadline {
            try transact()
            done += 1
            now = KernelSocket.now()
        }
        let cpuSeconds = cpuStart?.seconds(until: CPUTime.read())
        shutdown(fd, Int32(SHUT_WR))
        let seconds = now - start
        return Outcome(rate: Double(done) / seconds, completed: done, seconds: seconds, cpuSeconds: cpuSeconds)
    }

    /// Keeps `window` datagrams of `size` bytes in flight to a UDP echo server
    /// and counts the echoes per second. Each datagram carries a sequence
    /// number; when nothing comes back for `lossTimeout`, everything in
    /// flight is written off as lost and a fresh window is sent, so loss slows
    /// the measurement but cannot stall it. Late echoes of written-off
    /// datagrams still count as echoes but do not open the window.
    static func udpPPS(host: String, port: UInt16, duration: Double, window: Int, size: Int, maxDatagrams: Int,
                       lossTimeout: Double) throws -> Outcome {
        precondition(size >= 8 && window > 0)
        let address = try KernelSocket.address(host, port)
        let fd = try KernelSocket.make(SOCK_DGRAM, family: address.family)
        defer { close(fd) }
        // Connected, so only the server's datagrams arrive and its ICMP errors surface as ECONNREFUSED.
        try KernelSocket.connect(fd, address)
        try KernelSocket.setNonBlocking(fd)
        var out = [UInt8](repeating: 0x55, count: size)
        var input = [UInt8](repeating: 0, count: 2048)
        var nextSequence: UInt64 = 0
        var validFrom: UInt64 = 0
        var inFlight = 0
        var sent = 0
        var received = 0
        var lost = 0

        let cpuStart = CPUTime.read()
        let start = KernelSocket.now()
        let deadline = start + duration
        var now = start
        while now < deadline && sent < maxDatagrams {
            while inFlight < window && sent < maxDatagrams {
                let sequence = nextSequence
                out.withUnsafeMutableBytes { $0.storeBytes(of: sequence.littleEndian, as: UInt64.self) }
                let n = send(fd, out, size, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    if errno == EAGAIN || errno == ENOBUFS { break }
                    throw SocketError("send")
                }
                nextSequence += 1
                inFlight += 1
                sent += 1
            }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let waitMs = Int32(max(1, min(lossTimeout, deadline - now) * 1000))
            let ready = poll(&pfd, 1, waitMs)
            now = KernelSocket.now()
            if ready < 0 && errno != EINTR { throw SocketError("poll") }
            if ready <= 0 {
                if now < deadline && inFlight > 0 {
                    lost += inFlight
                    inFlight = 0
                    validFrom = nextSequence
                }
                continue
            }
            while true {
                let n = recv(fd, &input, input.count, Int32(MSG_DONTWAIT))
                if n < 0 {
                    if errno == EAGAIN || errno == EWOULDBLOCK { break }
                    throw SocketError("recv")
                }
                guard n == size else { continue }
                received += 1
                let sequence = UInt64(littleEndian: input.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
                if sequence >= validFrom && inFlight > 0 { inFlight -= 1 }
            }
            now = KernelSocket.now()
        }
        let cpuSeconds = cpuStart?.seconds(until: CPUTime.read())
        let seconds = now - start
        return Outcome(rate: Double(received) / seconds, completed: received, seconds: seconds, lost: lost,
                       cpuSeconds: cpuSeconds)
    }
}
