import Logging
import NetStack
import NetStackApps
import NetStackWire

/// One peer-side view of a TCP connection the fuzzer can aim segments at: the
/// ports, and the next sequence numbers each side is at as last seen on the
/// wire, so a mutated segment lands near the window and not always outside it.
struct TrackedConnection {
    var peerPort: UInt16
    var stackPort: UInt16
    /// The peer's next sequence number (what it has sent so far).
    var peerNext: UInt32
    /// The stack's next sequence number, as its last segment showed.
    var stackNext: UInt32
    /// Over IPv6, the peer's and the stack's addresses (16 bytes each); empty over IPv4.
    var peer6: [UInt8] = []
    var stack6: [UInt8] = []
}

/// A stack on one end of a memory link, holding state worth fuzzing: services
/// (TCP and UDP echo, discard, HTTP), connections in several states (ESTABLISHED
/// with data out of order, ESTABLISHED with a response in flight, LAST-ACK,
/// SYN-RECEIVED, SYN-SENT, FIN-WAIT-1) and an IPv4 reassembly in
/// progress; over IPv6 (its addresses past DAD, the peer learned by NDP)
/// ESTABLISHED, SYN-RECEIVED and SYN-SENT connections, a path MTU learned
/// and a reassembly in progress. The far end is raw: frames built by hand go
/// in, what the stack sends is parsed only to follow sequence numbers.
///
/// Built afresh for every input so each input is reproducible on its own.
final class Rig {
    static let stackIP: UInt32 = 0x0a00_0002
    static let peerIP: UInt32 = 0x0a00_0001
    static let peerMAC: [UInt8] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]
    static let stack6 = ip6(0xfd00 << 48, 2)
    static let peer6 = ip6(0xfd00 << 48, 1)
    static let peerLinkLocal = ip6(0xfe80 << 48, 1)
    static let allNodes = ip6(0xff02 << 48, 1)

    let pool: PacketPool
    let clock = VirtualClock()
    let stackEnd: MemoryLink
    let peerEnd: MemoryLink
    let interface: Interface<MemoryLink>
    let stack: Stack
    let stackMAC: [UInt8]
    /// fe80:: with the modified EUI-64 of `stackMAC`.
    let stackLinkLocal: [UInt8]
    var connections: [TrackedConnection] = []
    /// The IPv6 ones, apart so that IPv4's templates pick what they always picked.
    var connections6: [TrackedConnection] = []
    /// Client connections the stack opened (kept so they can be closed).
    var clients: [TCPConnection] = []
    var http: HTTPServer?
    /// Frames the stack sent, since the rig was made.
    var framesOut = 0

    init(pool: PacketPool) throws {
        self.pool = pool
        (stackEnd, peerEnd) = MemoryLink.pair(pool: pool)
        var configuration = InterfaceConfiguration(address: IPv4CIDR(address: IPv4Address(Self.stackIP), prefixLength: 24))
        configuration.address6 = IPv6CIDR(address: IPv6Address(0xfd00, 0, 0, 0, 0, 0, 0, 2), prefixLength: 64)
        // Silent: every rig's addresses becoming ready would be a line of log.
        interface = Interface(device: stackEnd, configuration: configuration, now: clock.now,
                              logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() }))
        stack = Stack(interface: interface, clock: clock)
        let m = interface.macAddress.bytes
        stackMAC = [m.0, m.1, m.2, m.3, m.4, m.5]
        let linkLocal = IPv6Address.linkLocal(eui64: interface.macAddress)
        stackLinkLocal = ip6(linkLocal.high, linkLocal.low)
        _ = try UDPEchoService.install(on: stack, port: 7)
        try TCPEchoService.install(on: stack, port: 7)
        try TCPDiscardService.install(on: stack, port: 9)
        http = try HTTPServer.install(on: stack, port: 80)
        // DAD runs its course first (a solicitation for each address, a
        // second without an answer), before any IPv4 connection exists whose
        // timers that second would run.
        advance(milliseconds: 0)
        advance(milliseconds: 1000)
        guard interface.ipv6Settled, interface.ipv6Addresses.count == 2 else { throw RigError("IPv6 addresses not assigned") }
        try populate()
        try populate6()
    }

    // MARK: Sending and receiving

    /// Hands `frame` to the stack (truncated to a slot) and lets it process it.
    func inject(_ frame: [UInt8]) {
        guard var b = pool.allocate() else { return }
        let n = min(frame.count, b.capacity)
        b.setLength(n)
        b.withBytes { dst in
            frame.withUnsafeBytes { src in dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: src[..<n])) }
        }
        peerEnd.transmit(b)
        interface.poll(now: clock.now)
        drain()
    }

    /// Advances the virtual clock, runs due timers and takes what they sent.
    func advance(milliseconds: Int) {
        clock.advance(by: .milliseconds(milliseconds))
        interface.tick(now: clock.now)
        interface.poll(now: clock.now)
        drain()
    }

    /// Takes every frame the stack sent, following TCP sequence numbers.
    func drain() {
        _ = peerEnd.receive(limit: .max) { frame in
            framesOut += 1
            frame.withBytes { b in observe(b) }
        }
    }

    private func observe(_ b: UnsafeMutableRawBufferPointer) {
        if b.count >= 74, b[12] == 0x86, b[13] == 0xdd, b[20] == 6 { return observe6(b) }
        guard b.count >= 54, b[12] == 0x08, b[13] == 0x00, b[23] == 6 else { return }
        let ihl = Int(b[14] & 0x0f) * 4
        let t = 14 + ihl
        guard t + 20 <= b.count else { return }
        func u16(_ i: Int) -> UInt16 { UInt16(b[i]) << 8 | UInt16(b[i + 1]) }
        func u32(_ i: Int) -> UInt32 { UInt32(u16(i)) << 16 | UInt32(u16(i + 2)) }
        let stackPort = u16(t), peerPort = u16(t + 2)
        let seq = u32(t + 4), ack = u32(t + 8)
        let flags = b[t + 13]
        let dataLength = Int(u16(16)) - ihl - Int(b[t + 12] >> 4) * 4
        let next = seq &+ UInt32(max(0, dataLength)) &+ (flags & 0x03 != 0 ? 1 : 0)
        if let i = connections.firstIndex(where: { $0.peerPort == peerPort && $0.stackPort == stackPort }) {
            if Int32(bitPattern: next &- connections[i].stackNext) > 0 || flags & 0x02 != 0 {
                connections[i].stackNext = next
            }
        } else if connections.count < 32 {
            connections.append(TrackedConnection(peerPort: peerPort, stackPort: stackPort,
                                                 peerNext: flags & 0x10 != 0 ? ack : 0, stackNext: next))
        }
    }

    /// `observe` for a TCP segment over IPv6 (the stack puts no extension
    /// header before TCP), matched by addresses as well as ports.
    private func observe6(_ b: UnsafeMutableRawBufferPointer) {
        let t = 54
        func u16(_ i: Int) -> UInt16 { UInt16(b[i]) << 8 | UInt16(b[i + 1]) }
        func u32(_ i: Int) -> UInt32 { UInt32(u16(i)) << 16 | UInt32(u16(i + 2)) }
        let stackPort = u16(t), peerPort = u16(t + 2)
        let seq = u32(t + 4), ack = u32(t + 8)
        let flags = b[t + 13]
        let dataLength = Int(u16(18)) - Int(b[t + 12] >> 4) * 4
        let next = seq &+ UInt32(max(0, dataLength)) &+ (flags & 0x03 != 0 ? 1 : 0)
        let stackAddress = b[22..<38], peerAddress = b[38..<54]
        if let i = connections6.firstIndex(where: {
            $0.peerPort == peerPort && $0.stackPort == stackPort && $0.peer6.elementsEqual(peerAddress)
                && $0.stack6.elementsEqual(stackAddress)
        }) {
            if Int32(bitPattern: next &- connections6[i].stackNext) > 0 || flags & 0x02 != 0 {
                connections6[i].stackNext = next
            }
        } else if connections6.count < 32 {
            connections6.append(TrackedConnection(peerPort: peerPort, stackPort: stackPort,
                                                  peerNext: flags & 0x10 != 0 ? ack : 0, stackNext: next,
                                                  peer6: Array(peerAddress), stack6: Array(stackAddress)))
        }
    }

    // MARK: Templates

    func ipFrame(source: UInt32 = Rig.peerIP, destination: UInt32 = Rig.stackIP, proto: UInt8,
                 identification: UInt16 = 0x4a11, fragmentField: UInt16 = 0x4000, ttl: UInt8 = 64,
                 options: [UInt8] = [], broadcast: Bool = false, _ payload: [UInt8]) -> [UInt8] {
        ethernet(destination: broadcast ? [UInt8](repeating: 0xff, count: 6) : stackMAC, source: Self.peerMAC,
                 type: 0x0800,
                 ipv4(source: source, destination: destination, proto: proto, identification: identification,
                      fragmentField: fragmentField, ttl: ttl, options: options, payload))
    }

    /// An IPv6 packet in a frame from the peer's MAC to the stack's, or to
    /// the group's for a multicast destination, or to `linkDestination`.
    func ip6Frame(source: [UInt8] = Rig.peer6, destination: [UInt8] = Rig.stack6, nextHeader: UInt8,
                  hopLimit: UInt8 = 64, linkDestination: [UInt8]? = nil, _ payload: [UInt8]) -> [UInt8] {
        ethernet(destination: linkDestination ?? (destination.first == 0xff ? multicastMAC(destination) : stackMAC),
                 source: Self.peerMAC, type: 0x86dd,
                 ipv6(source: source, destination: destination, nextHeader: nextHeader, hopLimit: hopLimit, payload))
    }

    /// A segment from the peer on `c`, over IPv4 or (with its addresses) IPv6.
    func tcpFrame(_ c: TrackedConnection, seqDelta: Int32 = 0, ackDelta: Int32 = 0, flags: UInt8,
                  window: UInt16 = 65535, options: [UInt8] = [], _ payload: [UInt8] = []) -> [UInt8] {
        let v6 = !c.peer6.isEmpty
        let segment = tcp(v6 ? c.peer6 : Self.peerIP.bytes, v6 ? c.stack6 : Self.stackIP.bytes,
                          sourcePort: c.peerPort, destinationPort: c.stackPort,
                          seq: c.peerNext &+ UInt32(bitPattern: seqDelta),
                          ack: c.stackNext &+ UInt32(bitPattern: ackDelta), flags: flags, window: window,
                          options: options, payload)
        return v6 ? ip6Frame(source: c.peer6, destination: c.stack6, nextHeader: 6, segment) : ipFrame(proto: 6, segment)
    }

    /// A neighbour solicitation for `target` from `source` with the peer's
    /// MAC, to the target's solicited-node group (RFC 4861 7.2.2).
    func solicitation(target: [UInt8], from source: [UInt8]) -> [UInt8] {
        let group = solicitedNode(target)
        return ip6Frame(source: source, destination: group, nextHeader: 58, hopLimit: 255,
                        icmp6(source: source, destination: group, type: 135, code: 0, rest: 0,
                              target + [1, 1] + Self.peerMAC))
    }

    /// MSS 1460, SACK permitted, timestamps, window scale 7 (a Linux SYN's options).
    static let synOptions: [UInt8] = [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]

    // MARK: The state fuzzed inputs start from

    /// Where the connections of a family are tracked.
    private static func list(_ v6: Bool) -> ReferenceWritableKeyPath<Rig, [TrackedConnection]> {
        v6 ? \.connections6 : \.connections
    }

    /// Opens a connection from the peer with a full handshake; returns its
    /// index in `connections`, or with `v6` (the peer's and the stack's
    /// addresses) in `connections6`.
    @discardableResult
    private func handshake(peerPort: UInt16, stackPort: UInt16, complete: Bool = true,
                           v6: (peer: [UInt8], stack: [UInt8])? = nil) throws -> Int {
        let list = Self.list(v6 != nil)
        let isn: UInt32 = 0x1000_0000 &+ UInt32(peerPort) << 8
        self[keyPath: list].append(TrackedConnection(peerPort: peerPort, stackPort: stackPort, peerNext: isn,
                                                     stackNext: 0, peer6: v6?.peer ?? [], stack6: v6?.stack ?? []))
        inject(tcpFrame(self[keyPath: list].last!, flags: 0x02, options: Self.synOptions))
        guard let i = self[keyPath: list].firstIndex(where: { $0.peerPort == peerPort }),
              self[keyPath: list][i].stackNext != 0 else {
            throw RigError("no SYN-ACK on port \(stackPort)")
        }
        self[keyPath: list][i].peerNext = isn &+ 1
        if complete { inject(tcpFrame(self[keyPath: list][i], flags: 0x10)) }
        return i
    }

    private func send(_ i: Int, v6: Bool = false, flags: UInt8 = 0x18, _ payload: [UInt8]) {
        let list = Self.list(v6)
        inject(tcpFrame(self[keyPath: list][i], flags: flags, payload))
        self[keyPath: list][i].peerNext &+= UInt32(payload.count) &+ (flags & 0x01 != 0 ? 1 : 0)
    }

    private func populate() throws {
        inject(ethernet(destination: [UInt8](repeating: 0xff, count: 6), source: Self.peerMAC, type: 0x0806,
                        arpPacket(operation: 1, senderMAC: Self.peerMAC, senderIP: Self.peerIP,
                                  targetMAC: [0, 0, 0, 0, 0, 0], targetIP: Self.stackIP)))
        // ESTABLISHED on echo, with bytes echoed and a segment held out of order.
        let echo = try handshake(peerPort: 40000, stackPort: 7)
        send(echo, Array("hello, echo".utf8))
        inject(tcpFrame(connections[echo], seqDelta: 100, flags: 0x18, [UInt8](repeating: 0x61, count: 50)))
        // ESTABLISHED on HTTP with a response in flight, unacknowledged.
        let http = try handshake(peerPort: 40001, stackPort: 80)
        send(http, Array("GET /bytes/100000 HTTP/1.1\r\nHost: 10.0.0.2\r\n\r\n".utf8))
        // LAST-ACK on discard and on echo: the peer closes, the services close back.
        let discard = try handshake(peerPort: 40002, stackPort: 9)
        send(discard, flags: 0x19, Array("bye".utf8))
        let echoClosing = try handshake(peerPort: 40003, stackPort: 7)
        send(echoClosing, flags: 0x11, [])
        // SYN-RECEIVED: the peer never completes.
        try handshake(peerPort: 40004, stackPort: 80, complete: false)
        // SYN-SENT: the stack's connection to a port that never answers.
        clients.append(try stack.connect(to: .v4(IPv4Address(Self.peerIP)), port: 6000))
        // FIN-WAIT-1: the stack's connection, answered, then closed by the stack.
        let active = try stack.connect(to: .v4(IPv4Address(Self.peerIP)), port: 6001)
        clients.append(active)
        interface.flushPending(now: clock.now)
        drain()
        if let i = connections.firstIndex(where: { $0.peerPort == 6001 }) {
            connections[i].peerNext = 0x2000_0000
            inject(tcpFrame(connections[i], flags: 0x12, options: Self.synOptions))
            connections[i].peerNext &+= 1
            active.close()
            interface.flushPending(now: clock.now)
            drain()
        }
        // An IPv4 reassembly in progress: the first 64 bytes of a UDP datagram to echo.
        let whole = udp(source: Self.peerIP, destination: Self.stackIP, sourcePort: 5353, destinationPort: 7,
                        [UInt8](repeating: 0x42, count: 200))
        inject(ipFrame(proto: 17, identification: 0x7777, fragmentField: 0x2000, Array(whole.prefix(64))))
    }

    /// The IPv6 state, after IPv4's so that IPv4's is as it always was.
    private func populate6() throws {
        // The peer asks for both our addresses, and so becomes known (RFC 4861 7.2.3).
        inject(solicitation(target: Self.stack6, from: Self.peer6))
        inject(solicitation(target: stackLinkLocal, from: Self.peerLinkLocal))
        let global = (peer: Self.peer6, stack: Self.stack6)
        // ESTABLISHED on echo, with bytes echoed and a segment held out of order.
        let echo = try handshake(peerPort: 41000, stackPort: 7, v6: global)
        send(echo, v6: true, Array("hello, echo6".utf8))
        inject(tcpFrame(connections6[echo], seqDelta: 100, flags: 0x18, [UInt8](repeating: 0x61, count: 50)))
        // ESTABLISHED on HTTP with a response in flight, unacknowledged.
        let http = try handshake(peerPort: 41001, stackPort: 80, v6: global)
        send(http, v6: true, Array("GET /bytes/100000 HTTP/1.1\r\nHost: [fd00::2]\r\n\r\n".utf8))
        // ESTABLISHED on echo between the link-local addresses.
        try handshake(peerPort: 41002, stackPort: 7, v6: (peer: Self.peerLinkLocal, stack: stackLinkLocal))
        // SYN-RECEIVED: the peer never completes.
        try handshake(peerPort: 41004, stackPort: 80, complete: false, v6: global)
        // SYN-SENT: the stack's connection to a port that never answers.
        clients.append(try stack.connect(to: .v6(IPv6Address(0xfd00, 0, 0, 0, 0, 0, 0, 1)), port: 6000))
        interface.flushPending(now: clock.now)
        drain()
        // A path MTU learned: a packet too big (MTU 1280) quoting the
        // response in flight, which is resent in segments that fit.
        let c = connections6[http]
        var quoted = tcp(Self.stack6, Self.peer6, sourcePort: c.stackPort, destinationPort: c.peerPort,
                         seq: c.stackNext &- 1, ack: c.peerNext, flags: 0x10, [])
        quoted = ipv6(source: Self.stack6, destination: Self.peer6, nextHeader: 6, payloadLength: 1460, quoted)
        inject(ip6Frame(nextHeader: 58, icmp6(source: Self.peer6, destination: Self.stack6, type: 2, code: 0,
                                              rest: 1280, quoted)))
        // An IPv6 reassembly in progress: the first 64 bytes of a UDP datagram to echo.
        let whole = udp(Self.peer6, Self.stack6, sourcePort: 5353, destinationPort: 7,
                        [UInt8](repeating: 0x42, count: 200))
        inject(ip6Frame(nextHeader: 44, fragmentHeader(nextHeader: 17, offset: 0, more: true, identification: 0x7777)
                            + whole.prefix(64)))
    }

    /// Runs every timer far past its deadline, closing the client connections,
    /// so that whatever the stack still held leaves: retransmissions give up,
    /// ARP resolutions fail, reassemblies time out.
    func windDown() {
        for c in clients { c.close() }
        var step = 250
        for _ in 0..<14 {
            advance(milliseconds: step)
            step *= 2
        }
        // The server and its listener's onAccept hold each other (LeakSanitizer
        // found it; branch harden-shutdown breaks the cycle with stop()).
        http?.listener.onAccept = nil
        clients = []
    }
}

struct RigError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
