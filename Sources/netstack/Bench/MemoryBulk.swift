import NetStack
import NetStackApps
import NetStackWire
// Observed: once one file of this module imports CURing, SOCK_STREAM and
// MSG_NOSIGNAL resolve only in files that import it as well.
import CURing
#if canImport(Glibc)
import Glibc
#endif

/// The memory-bulk scenario: one TCP stream inside one process, so only the
/// stacks' own work is timed: no TAP, no NIC, no context switch.
///
/// netstack: two interfaces joined by a `MemoryLink` (the pattern of
/// Benchmarks/TCPTransfer), driven in one thread on the real monotonic clock
/// (so timers see real time), wall time measured. Kernel: two TCP sockets
/// over loopback, also driven by one thread, so both systems do the whole
/// transfer, both ends, on one core.
enum MemoryBulk {
    struct Outcome {
        var bitsPerSecond: Double
        /// netstack: TCP segments the receiving stack took in, per second.
        var packetsPerSecond: Double?
        /// Bytes received in the timed interval.
        var bytes: Int
        /// The machine's busy CPU-seconds over the timed interval (`CPUTime`).
        var cpuSeconds: Double?
        /// netstack: payload bytes the stacks copied per payload byte moved,
        /// sending and receiving (`TCPCounters`' copy counters).
        var copiesPerByte: (sent: Double, received: Double)?
    }

    struct Stalled: Error, CustomStringConvertible {
        var what: String
        var description: String { "memory-bulk: \(what)" }
    }

    /// With `offload`, the link does as loopback does: segments up to 64 KiB
    /// cross whole (TSO on one side, as after GRO on the other) and partial
    /// checksums are trusted, as the kernel's loopback does for its sockets.
    /// Over IPv6 the stacks are fd00::1 and fd00::2, without duplicate address
    /// detection (nothing else is on the link), as loopback's ::1 has none.
    static func netstack(duration: Double, offload: Bool = true, family: BenchFamily = .ipv4) throws -> Outcome {
        let pool = offload ? PacketPool(slotCount: 1024, slotSize: TAPDevice.offloadSlotSize)
            : PacketPool(slotCount: 4096)
        let capabilities: DeviceCapabilities = offload ? .segmenting() : .ethernet()
        let (linkA, linkB) = MemoryLink.pair(pool: pool, capabilities: capabilities, queueCapacity: 1024)
        let clock = MonotonicClock()
        func interface(_ link: MemoryLink, _ last: UInt8) -> Interface<MemoryLink> {
            var configuration = InterfaceConfiguration(address: IPv4CIDR(address: IPv4Address(10, 0, 0, last),
                                                                         prefixLength: 24))
            if family == .ipv6 {
                configuration.address6 = IPv6CIDR(address: IPv6Address(0xfd00, 0, 0, 0, 0, 0, 0, UInt16(last)),
                                                  prefixLength: 64)
                configuration.dadTransmits = 0
            }
            return Interface(device: link, configuration: configuration, now: clock.now)
        }
        let a = interface(linkA, 1)
        let b = interface(linkB, 2)
        var received = 0
        let listener = try b.tcp.listen(port: 9)
        listener.onAccept = { c in
            c.onReceive = { _, bytes in
                received += bytes.count
                return bytes.count
            }
            c.onReadable = { c in received += c.skip(c.readableBytes) }
        }
        let chunk = [UInt8](repeating: 0x5a, count: 64 * 1024)
        func fill(_ c: TCPConnection) {
            chunk.withUnsafeBytes { p in while c.write(p) > 0 {} }
        }
        let server: IPAddress = family == .ipv4 ? .v4(IPv4Address(10, 0, 0, 2))
                                                : .v6(IPv6Address(0xfd00, 0, 0, 0, 0, 0, 0, 2))
        let sender = try a.tcp.connect(to: server, port: 9, now: clock.now)
        sender.onWritable = { c in fill(c) }
        func turn() -> Double {
            let now = clock.now
            a.poll(now: now, limit: 256)
            b.poll(now: now, limit: 256)
            a.tick(now: now)
            b.tick(now: now)
            return Double(now.nanoseconds) / 1e9
        }
        var now = turn()
        let handshakeDeadline = now + 2
        while sender.state != .established && now < handshakeDeadline { now = turn() }
        guard sender.state == .established else { throw Stalled(what: "the handshake did not complete") }
        fill(sender)
        a.tcp.flush(sender, now: clock.now)
        // Warm up past slow start and cold caches before timing.
        let warmUntil = now + min(1, duration / 4)
        while now < warmUntil && received < 8 << 20 { now = turn() }

        let cpuStart = CPUTime.read()
        let startBytes = received
        let startSegments = b.tcp.counters.segmentsIn
        let startCopies = (a.tcp.counters.payloadBytesCopiedOut, a.tcp.counters.payloadBytesOut,
                           b.tcp.counters.payloadBytesCopiedIn, b.tcp.counters.payloadBytesIn)
        let start = now
        let end = start + duration
        var lastProgress = (bytes: received, at: now)
        while now < end {
            now = turn()
            if received != lastProgress.bytes {
                lastProgress = (received, now)
            } else if now - lastProgress.at > 2 {
                throw Stalled(what: "no bytes moved for 2 s")
            }
        }
        let cpuSeconds = cpuStart?.seconds(until: CPUTime.read())
        let seconds = now - start
        let sent = Double(a.tcp.counters.payloadBytesOut - startCopies.1)
        let got = Double(b.tcp.counters.payloadBytesIn - startCopies.3)
        let copies = (sent: Double(a.tcp.counters.payloadBytesCopiedOut - startCopies.0) / max(sent, 1),
                      received: Double(b.tcp.counters.payloadBytesCopiedIn - startCopies.2) / max(got, 1))
        return Outcome(bitsPerSecond: Double(received - startBytes) * 8 / seconds,
                       packetsPerSecond: Double(b.tcp.counters.segmentsIn - startSegments) / seconds,
                       bytes: received - startBytes, cpuSeconds: cpuSeconds, copiesPerByte: copies)
    }

    static func kernelLoopback(duration: Double, family: BenchFamily = .ipv4) throws -> Outcome {
        let any = try KernelSocket.address(family.loopbackIP, 0)
        let listener = try KernelSocket.make(SOCK_STREAM, family: any.family)
        defer { close(listener) }
        try KernelSocket.bind(listener, any)
        guard listen(listener, 1) == 0 else { throw SocketError("listen") }
        let client = try KernelSocket.make(SOCK_STREAM, family: any.family)
        defer { close(client) }
        try KernelSocket.setTimeouts(client, seconds: 2)
        try KernelSocket.connect(client, try KernelSocket.localAddress(listener))
        let server = KernelSocket.accept(listener)
        guard server >= 0 else { throw SocketError("accept") }
        defer { close(server) }
        try KernelSocket.setNonBlocking(client)
        try KernelSocket.setNonBlocking(server)

        let chunk = [UInt8](repeating: 0x5a, count: 64 * 1024)
        var sink = [UInt8](repeating: 0, count: 256 * 1024)
        var received = 0
        /// Sends until the socket buffer is full, then reads until it is empty.
        func turn() throws {
            for _ in 0..<64 {
                let n = send(client, chunk, chunk.count, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    if errno == EAGAIN || errno == EWOULDBLOCK { break }
                    throw SocketError("send")
                }
            }
            for _ in 0..<64 {
                let n = recv(server, &sink, sink.count, 0)
                if n < 0 {
                    if errno == EAGAIN || errno == EWOULDBLOCK { break }
                    throw SocketError("recv")
                }
                if n == 0 { throw Stalled(what: "loopback connection closed") }
                received += n
            }
        }
        var now = KernelSocket.now()
        let warmUntil = now + min(1, duration / 4)
        while now < warmUntil && received < 8 << 20 {
            try turn()
            now = KernelSocket.now()
        }
        let cpuStart = CPUTime.read()
        let startBytes = received
        let start = now
        let end = start + duration
        while now < end {
            try turn()
            now = KernelSocket.now()
        }
        let cpuSeconds = cpuStart?.seconds(until: CPUTime.read())
        return Outcome(bitsPerSecond: Double(received - startBytes) * 8 / (now - start), packetsPerSecond: nil,
                       bytes: received - startBytes, cpuSeconds: cpuSeconds)
    }
}
