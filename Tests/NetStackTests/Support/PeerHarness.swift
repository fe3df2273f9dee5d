import Testing
@testable import NetStack
import NetStackWire

/// A stack (one `Interface`) on one end of a `MemoryLink`, and the test acting
/// as its neighbour on the far end: it injects hand-built frames and collects
/// whatever the stack sends. Time is a `VirtualClock` the test moves.
final class PeerHarness {
    static let stackIP = IPv4Address(10, 0, 0, 2)
    static let stackMAC = MACAddress(0x02, 0x00, 0x0a, 0x00, 0x00, 0x02)
    static let peerIP = IPv4Address(10, 0, 0, 1)
    static let peerMAC = MACAddress(0x02, 0x00, 0x00, 0x00, 0x00, 0x01)
    /// A third host on the subnet, never answering unless the test makes it.
    static let otherIP = IPv4Address(10, 0, 0, 3)
    static let otherMAC = MACAddress(0x02, 0x00, 0x00, 0x00, 0x00, 0x03)

    let pool: PacketPool
    let clock = VirtualClock()
    let stackEnd: MemoryLink
    let peerEnd: MemoryLink
    let interface: Interface<MemoryLink>

    var stackIP: IPv4Address { Self.stackIP }
    var stackMAC: MACAddress { Self.stackMAC }
    var peerIP: IPv4Address { Self.peerIP }
    var peerMAC: MACAddress { Self.peerMAC }
    var now: Instant { clock.now }
    var counters: InterfaceCounters { interface.counters }
    var tcp: TCPLayer { interface.tcp }
    var udp: UDPLayer { interface.udp }
    func drops(_ reason: DropReason) -> UInt64 { interface.counters.drops[reason] }
    func drops(_ reason: TCPDropReason) -> UInt64 { interface.tcp.counters.drops[reason] }
    func drops(_ reason: UDPDropReason) -> UInt64 { interface.udp.counters.drops[reason] }
    /// Every layer's drops, by the name `--stats` prints.
    var allDrops: DropSnapshot { DropSnapshot(interface) }

    init(slotCount: Int = 1024, mtu: Int = 1500, queueCapacity: Int = 1024,
         configure: (inout InterfaceConfiguration) -> Void = { _ in }) {
        pool = PacketPool(slotCount: slotCount)
        (stackEnd, peerEnd) = MemoryLink.pair(pool: pool, mtu: mtu, queueCapacity: queueCapacity)
        var config = InterfaceConfiguration(macAddress: Self.stackMAC,
                                            address: IPv4CIDR(address: Self.stackIP, prefixLength: 24))
        configure(&config)
        interface = Interface(device: stackEnd, configuration: config, now: clock.now)
        var rng = Xoshiro256StarStar(seed: 0xc00c1e)
        interface.tcp.synCookies = SYNCookies(using: &rng)
    }

    // MARK: Injecting

    /// Puts `frame` on the wire towards the stack. Returns the slot it occupies.
    @discardableResult
    func inject(_ frame: [UInt8]) -> UInt32 {
        guard var buffer = pool.allocate() else {
            Issue.record("test pool exhausted while injecting")
            return .max
        }
        precondition(frame.count <= buffer.capacity, "frame larger than a slot")
        buffer.setLength(frame.count)
        buffer.withBytes { b in
            frame.withUnsafeBytes { src in
                if !src.isEmpty { b.copyMemory(from: src) }
            }
        }
        let slot = buffer.slot
        peerEnd.transmit(buffer)
        return slot
    }

    /// Lets the stack process everything injected so far.
    func poll() { interface.poll(now: clock.now, limit: .max) }

    /// Takes everything the stack has sent, in order.
    func sent() -> [CapturedFrame] {
        var out: [CapturedFrame] = []
        _ = peerEnd.receive(limit: .max) { frame in
            let bytes = frame.withBytes { [UInt8]($0) }
            out.append(CapturedFrame(slot: frame.slot, bytes: bytes))
        }
        return out
    }

    /// Injects `frames`, lets the stack run, and returns what it sent.
    func exchange(_ frames: [UInt8]...) -> [CapturedFrame] { exchange(frames) }

    func exchange(_ frames: [[UInt8]]) -> [CapturedFrame] {
        for f in frames { inject(f) }
        poll()
        return sent()
    }

    /// Moves time on, runs the stack's timers, and returns what it sent.
    func advance(by d: Duration) -> [CapturedFrame] {
        clock.advance(by: d)
        interface.tick(now: clock.now)
        return sent()
    }

    // MARK: Frames from the peer

    /// An Ethernet frame from the peer to the stack's MAC.
    func ethernetFrame(_ etherType: EtherType, payload: [UInt8], from mac: MACAddress = PeerHarness.peerMAC,
                       to destination: MACAddress = PeerHarness.stackMAC, padding: [UInt8] = []) -> [UInt8] {
        FrameBuilder.ethernet(destination: destination, source: mac, etherType: etherType, payload: payload,
                              padding: padding)
    }

    /// A whole frame carrying an IP packet from the peer.
    func ipFrame(_ ip: [UInt8], from mac: MACAddress = PeerHarness.peerMAC,
                 to destination: MACAddress = PeerHarness.stackMAC) -> [UInt8] {
        ethernetFrame(.ipv4, payload: ip, from: mac, to: destination)
    }

    func echoRequestFrame(identifier: UInt16 = 0x1234, sequence: UInt16 = 1, data: [UInt8],
                          from source: IPv4Address = PeerHarness.peerIP,
                          to destination: IPv4Address = PeerHarness.stackIP, ttl: UInt8 = 64) -> [UInt8] {
        let icmp = FrameBuilder.icmpEcho(identifier: identifier, sequence: sequence, data: data)
        return ipFrame(FrameBuilder.ipv4(source: source, destination: destination, protocol: .icmp, payload: icmp,
                                         ttl: ttl))
    }

    func udpFrame(sourcePort: UInt16 = 40000, destinationPort: UInt16, payload: [UInt8],
                  from source: IPv4Address = PeerHarness.peerIP, to destination: IPv4Address = PeerHarness.stackIP,
                  identification: UInt16 = 0x4242, ethernetDestination: MACAddress = PeerHarness.stackMAC) -> [UInt8] {
        let udp = FrameBuilder.udp(sourcePort: sourcePort, destinationPort: destinationPort, payload: payload,
                                   source: source, destination: destination)
        return ipFrame(FrameBuilder.ipv4(source: source, destination: destination, protocol: .udp, payload: udp,
                                         identification: identification),
                       to: ethernetDestination)
    }

    /// Frames carrying `transport` (a whole ICMP/UDP message) from the peer,
    /// fragmented at `maxFragment` bytes of payload when it does not fit.
    func fragmentedFrames(_ proto: IPProtocol, transport: [UInt8], maxFragment: Int = 1480,
                          identification: UInt16 = 0x7777, from source: IPv4Address = PeerHarness.peerIP,
                          to destination: IPv4Address = PeerHarness.stackIP) -> [[UInt8]] {
        FrameBuilder.fragments(source: source, destination: destination, protocol: proto, payload: transport,
                               maxFragment: maxFragment, identification: identification)
            .map { ipFrame($0) }
    }

    func arpFrame(_ op: ARPOperation, senderMAC: MACAddress = PeerHarness.peerMAC,
                  senderIP: IPv4Address = PeerHarness.peerIP, targetMAC: MACAddress = .zero,
                  targetIP: IPv4Address = PeerHarness.stackIP, ethernetDestination: MACAddress = .broadcast,
                  ethernetSource: MACAddress? = nil) -> [UInt8] {
        ethernetFrame(.arp, payload: FrameBuilder.arp(op, senderMAC: senderMAC, senderIP: senderIP,
                                                       targetMAC: targetMAC, targetIP: targetIP),
                      from: ethernetSource ?? senderMAC, to: ethernetDestination)
    }

    /// Teaches the stack the peer's address the honest way: the peer asks for
    /// the stack's (RFC 826 merge), and the reply is collected and checked.
    func resolvePeer(sourceLocation: SourceLocation = #_sourceLocation) {
        let out = exchange(arpFrame(.request))
        #expect(out.count == 1 && out.first?.arp?.operation == .reply, sourceLocation: sourceLocation)
        #expect(interface.arp.lookup(peerIP, now: now) == peerMAC, sourceLocation: sourceLocation)
    }

    /// A harness whose stack already knows the peer's link address.
    static func resolved(sourceLocation: SourceLocation = #_sourceLocation) -> PeerHarness {
        let p = PeerHarness()
        p.resolvePeer(sourceLocation: sourceLocation)
        return p
    }

    /// Installs a UDP echo (RFC 862) on `port`, answering from the same port.
    func installEcho(port: UInt16) throws {
        try interface.udp.bind(port: port) { [unowned self] from, payload in
            self.interface.udp.send(from: port, to: from, payload: payload, now: self.clock.now)
        }
    }
}

/// Every layer's drop counts by name (`udp-bad-checksum`), as `--stats` prints them.
struct DropSnapshot: CustomStringConvertible {
    var counts: [String: UInt64] = [:]

    init<D: Device>(_ interface: Interface<D>) {
        for (r, n) in interface.counters.drops.nonZero { counts[r.description, default: 0] += n }
        for (r, n) in interface.tcp.counters.drops.nonZero { counts[r.description, default: 0] += n }
        for (r, n) in interface.udp.counters.drops.nonZero { counts[r.description, default: 0] += n }
    }

    subscript(name: String) -> UInt64 { counts[name] ?? 0 }
    var total: UInt64 { counts.values.reduce(0, +) }
    func sum(_ names: some Sequence<String>) -> UInt64 { names.reduce(0) { $0 + self[$1] } }
    var description: String { counts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
}
