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
}

/// A stack on one end of a memory link, holding state worth fuzzing: services
/// (TCP and UDP echo, discard, HTTP), connections in several states (ESTABLISHED
/// with data out of order, ESTABLISHED with a response in flight, LAST-ACK,
/// SYN-RECEIVED, SYN-SENT, FIN-WAIT-1) and an IPv4 reassembly in
/// progress. The far end is raw: frames built by hand go in, what the stack
/// sends is parsed only to follow sequence numbers.
///
/// Built afresh for every input so each input is reproducible on its own.
final class Rig {
    static let stackIP: UInt32 = 0x0a00_0002
    static let peerIP: UInt32 = 0x0a00_0001
    static let peerMAC: [UInt8] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]

    let pool: PacketPool
    let clock = VirtualClock()
    let stackEnd: MemoryLink
    let peerEnd: MemoryLink
    let interface: Interface<MemoryLink>
    let stack: Stack
    let stackMAC: [UInt8]
    var connections: [TrackedConnection] = []
    /// Client connections the stack opened (kept so they can be closed).
    var clients: [TCPConnection] = []
    var http: HTTPServer?
    /// Frames the stack sent, since the rig was made.
    var framesOut = 0

    init(pool: PacketPool) throws {
        self.pool = pool
        (stackEnd, peerEnd) = MemoryLink.pair(pool: pool)
        interface = Interface(
            device: stackEnd,
            configuration: InterfaceConfiguration(address: IPv4CIDR(address: IPv4Address(Self.stackIP), prefixLength: 24)),
            now: clock.now)
        stack = Stack(interface: interface, clock: clock)
        let m = interface.macAddress.bytes
        stackMAC = [m.0, m.1, m.2, m.3, m.4, m.5]
        _ = try UDPEchoService.install(on: stack, port: 7)
        try TCPEchoService.install(on: stack, port: 7)
        try TCPDiscardService.install(on: stack, port: 9)
        http = try HTTPServer.install(on: stack, port: 80)
        try populate()
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

    // MARK: Templates

    func ipFrame(source: UInt32 = Rig.peerIP, destination: UInt32 = Rig.stackIP, proto: UInt8,
                 identification: UInt16 = 0x4a11, fragmentField: UInt16 = 0x4000, ttl: UInt8 = 64,
                 options: [UInt8] = [], broadcast: Bool = false, _ payload: [UInt8]) -> [UInt8] {
        ethernet(destination: broadcast ? [UInt8](repeating: 0xff, count: 6) : stackMAC, source: Self.peerMAC,
                 type: 0x0800,
                 ipv4(source: source, destination: destination, proto: proto, identification: identification,
                      fragmentField: fragmentField, ttl: ttl, options: options, payload))
    }

    func tcpFrame(_ c: TrackedConnection, seqDelta: Int32 = 0, ackDelta: Int32 = 0, flags: UInt8,
                  window: UInt16 = 65535, options: [UInt8] = [], _ payload: [UInt8] = []) -> [UInt8] {
        ipFrame(proto: 6, tcp(source: Self.peerIP, destination: Self.stackIP, sourcePort: c.peerPort,
                              destinationPort: c.stackPort, seq: c.peerNext &+ UInt32(bitPattern: seqDelta),
                              ack: c.stackNext &+ UInt32(bitPattern: ackDelta), flags: flags, window: window,
                              options: options, payload))
    }

    /// MSS 1460, SACK permitted, timestamps, window scale 7 (a Linux SYN's options).
    static let synOptions: [UInt8] = [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]

    // MARK: The state fuzzed inputs start from

    private func index(peerPort: UInt16) -> Int? { connections.firstIndex { $0.peerPort == peerPort } }

    /// Opens a connection from the peer with a full handshake; returns its index.
    @discardableResult
    private func handshake(peerPort: UInt16, stackPort: UInt16, complete: Bool = true) throws -> Int {
        let isn: UInt32 = 0x1000_0000 &+ UInt32(peerPort) << 8
        connections.append(TrackedConnection(peerPort: peerPort, stackPort: stackPort, peerNext: isn, stackNext: 0))
        var i = connections.count - 1
        inject(tcpFrame(connections[i], flags: 0x02, options: Self.synOptions))
        guard let j = index(peerPort: peerPort), connections[j].stackNext != 0 else {
            throw RigError("no SYN-ACK on port \(stackPort)")
        }
        i = j
        connections[i].peerNext = isn &+ 1
        if complete { inject(tcpFrame(connections[i], flags: 0x10)) }
        return i
    }

    private func send(_ i: Int, flags: UInt8 = 0x18, _ payload: [UInt8]) {
        inject(tcpFrame(connections[i], flags: flags, payload))
        connections[i].peerNext &+= UInt32(payload.count) &+ (flags & 0x01 != 0 ? 1 : 0)
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
