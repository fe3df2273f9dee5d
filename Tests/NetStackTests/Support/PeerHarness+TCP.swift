import Testing
@testable import NetStack
import NetStackWire

/// A TCP segment decoded by hand from what the stack sent (RFC 9293 3.1), so
/// interface-level tests check the bytes rather than the stack's own parser.
struct CapturedTCP: CustomStringConvertible {
    let bytes: [UInt8]
    let source: IPv4Address
    let destination: IPv4Address

    init?(_ ip: CapturedIPv4) {
        guard ip.protocolNumber == 6, !ip.isFragment else { return nil }
        let raw = ip.payload
        guard raw.count >= 20, Int(raw[12] >> 4) * 4 >= 20, Int(raw[12] >> 4) * 4 <= raw.count else { return nil }
        bytes = raw
        source = ip.source
        destination = ip.destination
    }

    var sourcePort: UInt16 { read16(bytes, 0) }
    var destinationPort: UInt16 { read16(bytes, 2) }
    var seq: SequenceNumber { SequenceNumber(read32(bytes, 4)) }
    /// SEG.ACK when the ACK bit is set.
    var ack: SequenceNumber? { flags.contains(.ack) ? SequenceNumber(read32(bytes, 8)) : nil }
    var rawAckField: UInt32 { read32(bytes, 8) }
    var headerLength: Int { Int(bytes[12] >> 4) * 4 }
    var flags: TCPFlags { TCPFlags(rawValue: bytes[13]) }
    var window: UInt16 { read16(bytes, 14) }
    var payload: [UInt8] { Array(bytes[headerLength...]) }
    var optionBytes: [UInt8] { Array(bytes[20..<headerLength]) }

    var checksumVerifies: Bool {
        ReferenceChecksum.verifies(ReferenceChecksum.pseudoHeader(source: source, destination: destination,
                                                                  protocol: 6, length: bytes.count) + bytes)
    }

    /// Options walked by hand (RFC 9293 3.2): kind, length, value.
    private var optionList: [(kind: UInt8, value: [UInt8])] {
        var out: [(UInt8, [UInt8])] = []
        let o = optionBytes
        var i = 0
        while i < o.count {
            if o[i] == 0 { break }
            if o[i] == 1 { i += 1; continue }
            guard i + 1 < o.count, o[i + 1] >= 2, i + Int(o[i + 1]) <= o.count else { break }
            out.append((o[i], Array(o[(i + 2)..<(i + Int(o[i + 1]))])))
            i += Int(o[i + 1])
        }
        return out
    }

    var mss: UInt16? { optionList.first { $0.kind == 2 && $0.value.count == 2 }.map { read16($0.value, 0) } }
    var windowScale: UInt8? { optionList.first { $0.kind == 3 && $0.value.count == 1 }?.value[0] }
    var sackPermitted: Bool { optionList.contains { $0.kind == 4 && $0.value.isEmpty } }
    /// The SACK option's blocks (RFC 2018 3), left and right edges.
    var sackBlocks: [(left: UInt32, right: UInt32)] {
        guard let o = optionList.first(where: { $0.kind == 5 }) else { return [] }
        return stride(from: 0, to: o.value.count - 7, by: 8).map { (read32(o.value, $0), read32(o.value, $0 + 4)) }
    }
    var timestamps: (value: UInt32, echoReply: UInt32)? {
        optionList.first { $0.kind == 8 && $0.value.count == 8 }.map { (read32($0.value, 0), read32($0.value, 4)) }
    }

    var description: String {
        "TCP \(sourcePort)->\(destinationPort) \(flags) seq \(seq) ack \(ack.map { "\($0)" } ?? "-") win \(window) len \(payload.count)"
    }
}

func read32(_ b: [UInt8], _ at: Int) -> UInt32 {
    UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
}

extension CapturedFrame {
    var tcp: CapturedTCP? { ipv4.flatMap(CapturedTCP.init) }
}

extension PeerHarness {
    /// A frame carrying a TCP segment from the peer (10.0.0.1) to the stack,
    /// built with the wire repr's emitter (checksum included).
    func tcpFrame(_ flags: TCPFlags, sourcePort: UInt16 = 40000, destinationPort: UInt16, seq: SequenceNumber,
                  ack: SequenceNumber? = nil, window: UInt16 = 65535, options: TCPOptions = TCPOptions(),
                  payload: [UInt8] = [], from source: IPv4Address = PeerHarness.peerIP,
                  to destination: IPv4Address = PeerHarness.stackIP) -> [UInt8] {
        let repr = TCPRepr(sourcePort: sourcePort, destinationPort: destinationPort, seq: seq,
                           ack: flags.contains(.ack) ? ack : nil, flags: flags, window: window, options: options,
                           payloadLength: payload.count)
        var segment = [UInt8](repeating: 0, count: repr.headerLength) + payload
        segment.withUnsafeMutableBytes { b in repr.emit(into: b, source: source, destination: destination) }
        return ipFrame(FrameBuilder.ipv4(source: source, destination: destination, protocol: .tcp, payload: segment))
    }

    /// Injects TCP frames, lets the stack run, and returns the TCP segments it sent
    /// (anything else it sent is recorded as an issue).
    func exchangeTCP(_ frames: [UInt8]..., sourceLocation: SourceLocation = #_sourceLocation) -> [CapturedTCP] {
        tcpOnly(exchange(frames), sourceLocation: sourceLocation)
    }

    /// Moves time on, runs the timers, and returns the TCP segments sent.
    func advanceTCP(by d: Duration, sourceLocation: SourceLocation = #_sourceLocation) -> [CapturedTCP] {
        tcpOnly(advance(by: d), sourceLocation: sourceLocation)
    }

    func tcpOnly(_ frames: [CapturedFrame], sourceLocation: SourceLocation = #_sourceLocation) -> [CapturedTCP] {
        frames.compactMap { f in
            guard let t = f.tcp else {
                Issue.record("the stack sent a non-TCP frame: \(f)", sourceLocation: sourceLocation)
                return nil
            }
            #expect(t.checksumVerifies, "bad TCP checksum on \(t)", sourceLocation: sourceLocation)
            return t
        }
    }

    /// Opens a connection from the peer to the stack's `port` (which must be
    /// listening): SYN, SYN-ACK, ACK. Returns the stack's ISS, or nil if the
    /// handshake did not go as RFC 9293 3.5 says.
    func peerConnect(to port: UInt16, sourcePort: UInt16 = 40000, peerISS: SequenceNumber,
                     options: TCPOptions = TCPOptions(mss: 1460),
                     sourceLocation: SourceLocation = #_sourceLocation) -> SequenceNumber? {
        let synAck = exchangeTCP(tcpFrame(.syn, sourcePort: sourcePort, destinationPort: port, seq: peerISS,
                                          options: options), sourceLocation: sourceLocation)
        guard synAck.count == 1, let s = synAck.first, s.flags == [.syn, .ack], s.ack == peerISS + 1 else {
            Issue.record("expected one SYN-ACK, got \(synAck)", sourceLocation: sourceLocation)
            return nil
        }
        let out = exchangeTCP(tcpFrame(.ack, sourcePort: sourcePort, destinationPort: port, seq: peerISS + 1,
                                       ack: s.seq + 1), sourceLocation: sourceLocation)
        #expect(out.isEmpty, "the final ACK of the handshake needs no answer", sourceLocation: sourceLocation)
        return s.seq
    }

    /// The stack's connection to the peer's `port`, if it is in the table.
    func tcpConnection(peerPort: UInt16) -> TCPConnection? {
        interface.tcp.allConnections.first { $0.tuple.remotePort == peerPort }
    }
}
