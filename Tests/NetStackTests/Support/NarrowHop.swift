@testable import NetStack
import NetStackWire

/// Middleware standing for the path beyond a stack's link: every frame the
/// stack sends is cut into its wire frames (TSO's segments as the device
/// would cut them) and each is measured; with `mtu` set, a router on the
/// path takes packets of at most that many bytes, drops larger ones sent
/// with DF and answers each with an ICMP "fragmentation needed" quoting it
/// (RFC 1191 4, RFC 792) and carrying `reportedMTU` (the real MTU unless a
/// test lies). Tests may also inject frames of their own towards the stack.
final class NarrowHop<D: Device>: Device {
    static var routerIP: IPv4Address { IPv4Address(10, 0, 0, 254) }
    static var routerMAC: MACAddress { MACAddress(0x02, 0, 0, 0, 0, 0xfe) }

    let inner: D
    private let cutter: WireFrameCutter
    /// The largest IP packet the path takes; nil: anything the link takes.
    var mtu: Int?
    /// The next-hop MTU the router's reports carry; nil: `mtu`.
    var reportedMTU: Int?
    /// Frames waiting to be received by the stack (reports, injected frames).
    private var inbound: [[UInt8]] = []

    /// IP packet lengths of the wire frames passed on.
    private(set) var passedLengths: [Int] = []
    /// TSO segment sizes of buffers the stack sent (0 for a single frame),
    /// and whether the stack had taken a report by then.
    private(set) var segmentSizes: [(size: Int, afterReport: Bool)] = []
    /// Wire frames dropped for their size, in all and since the stack took
    /// the first report (which must not happen once it learned the path).
    private(set) var dropped = 0
    private(set) var droppedAfterReport = 0
    /// Reports the router sent, and those the stack has taken from the link.
    private(set) var reportsSent = 0
    private(set) var reportsDelivered = 0
    /// The last TCP data frame (Ethernet and all) passed on, to quote in crafted errors.
    private(set) var lastDataFrame: [UInt8]?

    init(_ inner: D) {
        self.inner = inner
        cutter = WireFrameCutter(pool: inner.pool)
    }

    var pool: PacketPool { inner.pool }
    var capabilities: DeviceCapabilities { inner.capabilities }

    /// Queues `frame` for the stack to receive before anything from the link.
    func inject(_ frame: [UInt8]) { inbound.append(frame) }

    /// Frames wait for the stack (a `StackPair` must not jump time past them).
    var hasInbound: Bool { !inbound.isEmpty }

    /// Forgets what was measured.
    func clearMeasurements() {
        passedLengths.removeAll()
        segmentSizes.removeAll()
    }

    func receive(limit: Int, _ handler: (consuming PacketBuffer) -> Void) -> Int {
        var n = 0
        while n < limit, !inbound.isEmpty {
            let bytes = inbound.removeFirst()
            guard var buffer = pool.allocate() else { break }
            buffer.setLength(bytes.count)
            buffer.withBytes { b in bytes.withUnsafeBytes { b.copyMemory(from: $0) } }
            if bytes.count > 34, bytes[23] == 1, bytes[34] == 3 { reportsDelivered += 1 }
            handler(buffer)
            n += 1
        }
        return n + inner.receive(limit: limit - n, handler)
    }

    func transmit(_ frame: consuming PacketBuffer) {
        segmentSizes.append((Int(frame.offload.segmentSize), reportsDelivered > 0))
        _ = cutter.cut(frame) { wire in
            let bytes = wire.withBytes { [UInt8]($0) }
            guard let ip = CapturedIPv4(Array(bytes.dropFirst(14))) else {
                inner.transmit(wire)
                return
            }
            if let mtu, ip.totalLength > mtu, ip.dontFragment {
                dropped += 1
                if reportsDelivered > 0 { droppedAfterReport += 1 }
                inbound.append(Self.fragmentationNeeded(quoting: ip, mtu: reportedMTU ?? mtu, to: bytes))
                reportsSent += 1
                return
            }
            passedLengths.append(ip.totalLength)
            if ip.protocolNumber == 6, let tcp = CapturedTCP(ip), !tcp.payload.isEmpty { lastDataFrame = bytes }
            inner.transmit(wire)
        }
    }

    func flush() { inner.flush() }

    /// The router's ICMP "fragmentation needed" (type 3, code 4, RFC 1191 4)
    /// about `ip`, carrying `mtu`, quoting its header and first 8 payload
    /// bytes, in a frame to the sender of `frame`.
    static func fragmentationNeeded(quoting ip: CapturedIPv4, mtu: Int, to frame: [UInt8]) -> [UInt8] {
        let quote = Array(ip.bytes[0..<(ip.headerLength + 8)])
        var icmp = [UInt8](repeating: 0, count: ICMPv4Packet.headerLength) + quote
        icmp.withUnsafeMutableBytes { b in
            ICMPv4Repr(message: .destinationUnreachable(.fragmentationNeeded, nextHopMTU: UInt16(mtu)),
                       dataLength: quote.count).emit(into: b)
        }
        let packet = FrameBuilder.ipv4(source: routerIP, destination: ip.source, protocol: .icmp, payload: icmp)
        let senderMAC = MACAddress(frame[6], frame[7], frame[8], frame[9], frame[10], frame[11])
        return FrameBuilder.ethernet(destination: senderMAC, source: routerMAC, etherType: .ipv4, payload: packet)
    }
}
