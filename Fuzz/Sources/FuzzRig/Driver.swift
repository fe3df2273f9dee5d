import NetStack

/// Reads a fuzzer's input as a program of frames: each step picks a template
/// (ARP, ICMP echo, an ICMP error quoting a live connection, UDP, IPv4
/// fragments, IPv4 options, TCP segments to a live connection or a listener,
/// raw bytes; and IPv6's, in `Driver6.swift`), fills its fields from the
/// input, mutates a few bytes, and
/// mostly repairs the checksums afterwards so the frame reaches the layer
/// behind them. Between frames the clock may advance. After the input, every
/// timer runs out, the rig goes, and every pool slot must be back exactly once.
public struct FuzzDriver {
    public private(set) var inputs = 0
    /// Rigs set up and wound down (one per `run`).
    public private(set) var rigs = 0
    public private(set) var frames = 0
    public private(set) var framesOut = 0
    /// At most this many frames per input, so one input stays fast.
    public var maxFramesPerInput = 128

    public init() {}

    /// Runs one input; traps (a finding) if a slot is lost or returned twice.
    public mutating func run(_ data: UnsafeRawBufferPointer) {
        run(programs: [data])
    }

    /// Runs several inputs one after another against one rig, each read
    /// from its start (so one program's mutations do not shift how the next
    /// is read), then checks the slots once: setting a rig up and winding it
    /// down costs more than a hundred frames, and each program meets the
    /// state the ones before it left.
    public mutating func run(programs: [UnsafeRawBufferPointer]) {
        let pool = PacketPool(slotCount: 512)
        do {
            var rig: Rig? = try Rig(pool: pool)
            weak let interface = rig!.interface
            for data in programs {
                var input = InputReader(data)
                var n = 0
                while !input.isEmpty, n < maxFramesPerInput {
                    step(rig!, &input)
                    n += 1
                }
                frames += n
            }
            rig!.windDown()
            framesOut += rig!.framesOut
            rig = nil
            precondition(interface == nil, "the interface outlived its rig (a reference cycle)")
        } catch {
            fatalError("the rig could not be set up: \(error)")
        }
        Self.checkEverySlotBackOnce(pool)
        inputs += programs.count
        rigs += 1
    }

    /// Takes every free slot: there must be `slotCount` of them, all different.
    static func checkEverySlotBackOnce(_ pool: PacketPool) {
        precondition(pool.freeCount == pool.slotCount,
                     "\(pool.slotCount - pool.freeCount) pool slot(s) not returned")
        var seen = [Bool](repeating: false, count: pool.slotCount)
        var taken: [UInt32] = []
        taken.reserveCapacity(pool.slotCount)
        while let s = pool.lendSlot() {
            precondition(Int(s) < pool.slotCount && !seen[Int(s)], "pool slot \(s) returned twice")
            seen[Int(s)] = true
            taken.append(s)
        }
        precondition(taken.count == pool.slotCount)
        for s in taken.reversed() { pool.returnSlot(s) }
    }

    private func step(_ rig: Rig, _ input: inout InputReader) {
        let op = input.byte()
        let control = input.byte()
        var frame: [UInt8]
        // 0-15 are IPv4's and ARP's, as they were before IPv6 (then mod 16); 16-31 IPv6's.
        switch op % 32 {
        case 16...31:
            frame = ipv6Template(op % 16, rig, &input, control)
        case 0:
            frame = arpFrame(rig, &input, control)
        case 1:
            frame = rig.ipFrame(source: source(&input, control), proto: 1, broadcast: control & 0x40 != 0,
                                icmp(type: 8, code: 0, rest: input.u32(), input.bytes(input.length(1024))))
        case 2:
            frame = icmpError(rig, &input, control)
        case 3:
            let port: UInt16 = [7, 9, 53, input.u16()][Int(control >> 2) & 3]
            frame = rig.ipFrame(source: source(&input, control), proto: 17, broadcast: control & 0x40 != 0,
                                udp(source: Rig.peerIP, destination: Rig.stackIP, sourcePort: input.u16(),
                                    destinationPort: port, input.bytes(input.length(1472))))
        case 4, 5:
            frame = fragment(rig, &input, control)
        case 6:
            let options = input.bytes(Int(input.byte() % 41))
            let inner = control & 4 == 0
                ? icmp(type: 8, code: 0, rest: input.u32(), input.bytes(input.length(256)))
                : udp(source: Rig.peerIP, destination: Rig.stackIP, sourcePort: 1000, destinationPort: 7,
                      input.bytes(input.length(256)))
            frame = rig.ipFrame(proto: control & 4 == 0 ? 1 : 17, ttl: input.byte(), options: options, inner)
        case 7, 8, 9, 10, 11, 12:
            frame = tcpSegment(rig, &input, control)
        case 13:
            let port: UInt16 = [7, 9, 80, input.u16()][Int(control >> 2) & 3]
            let c = TrackedConnection(peerPort: 30000 &+ UInt16(input.byte()), stackPort: port,
                                      peerNext: input.u32(), stackNext: 0)
            let options = control & 0x10 != 0 ? input.bytes(Int(input.byte() % 41)) : Rig.synOptions
            frame = rig.tcpFrame(c, flags: control & 0x20 != 0 ? input.byte() : 0x02, options: options)
        case 14:
            rig.advance(milliseconds: Int(control) * Int(control) + 1)
            return
        default:
            frame = input.bytes(input.length(1514))
        }
        mutate(&frame, &input, control)
        rig.inject(frame)
    }

    /// Flips a few bytes; then repairs checksums unless the control byte says not.
    func mutate(_ f: inout [UInt8], _ input: inout InputReader, _ control: UInt8) {
        if control & 0x03 != 0, !f.isEmpty {
            for _ in 0..<(control & 0x03) {
                let at = Int(input.u16()) % f.count
                f[at] ^= input.byte() | 1
            }
        }
        if control & 0x80 == 0 || control & 0x03 == 0 { repairChecksums(&f) }
    }

    /// A source address: mostly the peer, sometimes a neighbour not yet
    /// resolved, a martian, or another subnet.
    private func source(_ input: inout InputReader, _ control: UInt8) -> UInt32 {
        guard control & 0x08 != 0 else { return Rig.peerIP }
        let pick = input.byte()
        switch pick % 6 {
        case 0: return 0x0a00_0000 | UInt32(pick)           // a neighbour
        case 1: return 0x7f00_0001                          // loopback
        case 2: return 0                                    // unspecified
        case 3: return Rig.stackIP                          // ourselves
        case 4: return 0x0a00_00ff                          // directed broadcast
        default: return 0xc0a8_0000 | UInt32(pick)         // another subnet
        }
    }

    private func arpFrame(_ rig: Rig, _ input: inout InputReader, _ control: UInt8) -> [UInt8] {
        let senderMAC = control & 0x10 != 0 ? input.bytes(6).padded(6) : Rig.peerMAC
        let sender = control & 0x08 != 0 ? 0x0a00_0000 | UInt32(input.byte()) : Rig.peerIP
        let target = control & 0x20 != 0 ? 0x0a00_0000 | UInt32(input.byte()) : Rig.stackIP
        let operation: UInt16 = control & 0x04 != 0 ? 2 : 1
        let destination = control & 0x40 != 0 ? [UInt8](repeating: 0xff, count: 6) : rig.stackMAC
        return ethernet(destination: destination, source: senderMAC, type: 0x0806,
                        arpPacket(operation: operation, senderMAC: senderMAC, senderIP: sender,
                                  targetMAC: operation == 2 ? rig.stackMAC : [0, 0, 0, 0, 0, 0], targetIP: target))
    }

    /// An ICMP error (unreachable, fragmentation needed, time exceeded,
    /// parameter problem, source quench) quoting a datagram the stack sent on
    /// a live connection or to a UDP port.
    private func icmpError(_ rig: Rig, _ input: inout InputReader, _ control: UInt8) -> [UInt8] {
        let kinds: [(UInt8, UInt8)] = [(3, 4), (3, 3), (3, 1), (11, 0), (12, 0), (4, 0), (3, 2), (3, UInt8(control & 15))]
        let (type, code) = kinds[Int(input.byte()) % kinds.count]
        let rest: UInt32 = type == 3 && code == 4 ? UInt32(input.u16()) : input.u32()
        var quoted: [UInt8]
        if control & 0x10 == 0, !rig.connections.isEmpty {
            let c = rig.connections[Int(input.byte()) % rig.connections.count]
            let seq = c.stackNext &- UInt32(input.u16())
            quoted = tcp(source: Rig.stackIP, destination: Rig.peerIP, sourcePort: c.stackPort,
                         destinationPort: c.peerPort, seq: seq, ack: c.peerNext, flags: 0x10, [])
            quoted = ipv4(source: Rig.stackIP, destination: Rig.peerIP, proto: 6, quoted)
        } else {
            quoted = ipv4(source: Rig.stackIP, destination: Rig.peerIP, proto: 17,
                          udp(source: Rig.stackIP, destination: Rig.peerIP, sourcePort: 7, destinationPort: input.u16(), []))
        }
        quoted = Array(quoted.prefix(20 + Int(input.byte() % 29)))
        return rig.ipFrame(proto: 1, icmp(type: type, code: code, rest: rest, quoted))
    }

    /// One fragment of a UDP or ICMP datagram: identification from a small set
    /// (so pieces meet the reassembly in progress and each other), offset and
    /// more-fragments from the input, overlaps and holes allowed.
    private func fragment(_ rig: Rig, _ input: inout InputReader, _ control: UInt8) -> [UInt8] {
        let ids: [UInt16] = [0x7777, 0x7778, 0x7779, input.u16()]
        let id = ids[Int(control >> 2) & 3]
        let length = input.length(1480)
        let whole = control & 0x10 == 0
            ? udp(source: Rig.peerIP, destination: Rig.stackIP, sourcePort: 5353, destinationPort: 7,
                  [UInt8](repeating: 0x42, count: 200 + length))
            : icmp(type: 8, code: 0, rest: 0x0001_0001, [UInt8](repeating: 0x43, count: length))
        let offsetUnits = Int(input.byte() % 200)
        let start = min(offsetUnits * 8, whole.count)
        let pieceLength = max(8, Int(input.u16()) % 1480) & ~7
        let piece = Array(whole[start..<min(whole.count, start + pieceLength)])
        let more: UInt16 = control & 0x20 != 0 || start + piece.count < whole.count ? 0x2000 : 0
        return rig.ipFrame(proto: control & 0x10 == 0 ? 17 : 1, identification: id,
                           fragmentField: more | UInt16(offsetUnits), piece)
    }

    /// A segment on a live connection (`v6`: an IPv6 one): flags, offsets
    /// from the expected sequence and acknowledgment numbers, window, options
    /// (SACK blocks near the stack's data, timestamps, anything), payload.
    func tcpSegment(_ rig: Rig, _ input: inout InputReader, _ control: UInt8, v6: Bool = false) -> [UInt8] {
        let list = v6 ? \Rig.connections6 : \Rig.connections
        guard !rig[keyPath: list].isEmpty else { return [] }
        let i = Int(input.byte()) % rig[keyPath: list].count
        let c = rig[keyPath: list][i]
        let flags = control & 0x10 != 0 ? input.byte() : [0x10, 0x18, 0x11, 0x04, 0x12, 0x14][Int(input.byte()) % 6]
        let seqDelta = control & 0x20 != 0 ? Int32(bitPattern: input.u32()) : Int32(Int8(bitPattern: input.byte())) * 64
        let ackDelta = control & 0x40 != 0 ? Int32(bitPattern: input.u32()) : -Int32(input.u16())
        var options: [UInt8] = []
        switch input.byte() % 5 {
        case 0: break
        case 1: options = [1, 1, 8, 10] + input.bytes(8)
        case 2:
            options = [1, 1, 5, 10]
            let left = c.stackNext &- UInt32(input.u16())
            options.append32(left); options.append32(left &+ UInt32(input.u16()))
        case 3: options = input.bytes(Int(input.byte() % 41))
        default: options = [1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 1]
        }
        let payload = input.bytes(input.length(1460))
        let frame = rig.tcpFrame(c, seqDelta: seqDelta, ackDelta: ackDelta, flags: flags,
                                 window: input.u16(), options: options, payload)
        if seqDelta == 0, flags & 0x04 == 0 {
            rig[keyPath: list][i].peerNext &+= UInt32(payload.count) &+ UInt32(flags & 0x01)
        }
        return frame
    }
}

/// The fuzzer's input read front to back; past its end every read is zero.
struct InputReader {
    private let data: UnsafeRawBufferPointer
    private var at = 0
    init(_ data: UnsafeRawBufferPointer) { self.data = data }
    var isEmpty: Bool { at >= data.count }
    mutating func byte() -> UInt8 {
        guard at < data.count else { return 0 }
        defer { at += 1 }
        return data[at]
    }
    mutating func u16() -> UInt16 { UInt16(byte()) << 8 | UInt16(byte()) }
    mutating func u32() -> UInt32 { UInt32(u16()) << 16 | UInt32(u16()) }
    /// A length up to `limit`, mostly small.
    mutating func length(_ limit: Int) -> Int {
        let b = byte()
        return b < 0xf0 ? min(Int(b), limit) : Int(u16()) % (limit + 1)
    }
    /// The next `n` bytes of input (fewer at its end).
    mutating func bytes(_ n: Int) -> [UInt8] {
        let end = min(data.count, at + n)
        defer { at = end }
        return at < end ? Array(data[at..<end]) : []
    }
}

extension Array where Element == UInt8 {
    func padded(_ n: Int) -> [UInt8] { count >= n ? self : self + [UInt8](repeating: 0, count: n - count) }
}

extension FuzzDriver {
    /// The counters of a freshly set-up rig (its connection table by state,
    /// drops), for checking that the starting state is what Rig promises.
    public static func setupReport() throws -> [(String, UInt64)] {
        let pool = PacketPool(slotCount: 512)
        let rig = try Rig(pool: pool)
        defer { rig.windDown() }
        return rig.stack.counterReport.filter { $0.1 != 0 }
            + [("tracked-connections", UInt64(rig.connections.count))]
    }
}
