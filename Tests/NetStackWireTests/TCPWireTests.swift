import Foundation
import Testing
@testable import NetStackWire

/// Runs `body` over a mutable copy of `bytes`.
private func withBuffer<R>(_ bytes: [UInt8], _ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
    var copy = bytes
    return try copy.withUnsafeMutableBytes { try body($0) }
}

private func parseOptions(_ bytes: [UInt8]) throws -> TCPOptions {
    try withBuffer(bytes) { try TCPOptions(parsing: $0) }
}

private func emitOptions(_ options: TCPOptions) -> [UInt8] {
    var out = [UInt8](repeating: 0xee, count: TCPOptions.maximumLength)
    let n = out.withUnsafeMutableBytes { options.emit(into: $0) }
    #expect(n == options.encodedLength)
    return Array(out[0..<n])
}

/// A deterministic generator (SplitMix64) so fuzz failures reproduce.
private struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}

private func pseudoHeader(_ s: IPv4Address, _ d: IPv4Address, length: Int) -> [UInt8] {
    be32(s.value) + be32(d.value) + [0, 6, UInt8(length >> 8), UInt8(length & 0xff)]
}

private let clientIP = IPv4Address(10, 0, 0, 1)
private let serverIP = IPv4Address(10, 0, 0, 2)

/// The TCP part of Linux 6.18's SYN from the capture (10.0.0.1:40272 -> 10.0.0.2:5001):
/// MSS 1460, SACK-permitted + timestamps, NOP, window scale 10.
private let linuxSYN: [UInt8] = [
    0x9d, 0x50, 0x13, 0x89, 0x2a, 0x97, 0x39, 0x35, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa, 0xf0,
    0x3d, 0x5c, 0x00, 0x00,
    0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0xb3, 0x47, 0x33, 0xc0, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x03, 0x03, 0x0a,
]

/// Reads the Ethernet frames of a classic little-endian pcap file.
private func pcapFrames(_ name: String) throws -> [[UInt8]] {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Captures").appendingPathComponent(name)
    let data = try [UInt8](Data(contentsOf: url))
    func le32(_ at: Int) -> Int {
        Int(data[at]) | Int(data[at + 1]) << 8 | Int(data[at + 2]) << 16 | Int(data[at + 3]) << 24
    }
    try #require(data.count >= 24 && le32(0) == 0xa1b2_c3d4 && le32(20) == 1, "not an Ethernet pcap")
    var frames: [[UInt8]] = []
    var at = 24
    while at + 16 <= data.count {
        let length = le32(at + 8)
        try #require(at + 16 + length <= data.count && le32(at + 12) == length, "truncated record")
        frames.append(Array(data[(at + 16)..<(at + 16 + length)]))
        at += 16 + length
    }
    return frames
}

@Suite struct TCPWireTests {
    // MARK: Header view

    @Test func readsLinuxSYN() throws {
        try withBuffer(linuxSYN) { b in
            let s = try TCPSegment(validating: b)
            #expect(s.sourcePort == 40272)
            #expect(s.destinationPort == 5001)
            #expect(s.sequenceNumber == SequenceNumber(714_553_653))
            #expect(s.acknowledgmentNumber == SequenceNumber(0))
            #expect(s.dataOffset == 10)
            #expect(s.headerLength == 40)
            #expect(s.flags == .syn)
            #expect(s.window == 64240)
            #expect(s.checksum == 0x3d5c)
            #expect(s.urgentPointer == 0)
            #expect(s.options.count == 20)
            #expect(s.payload.count == 0)
            #expect(s.checksumIsValid(source: clientIP, destination: serverIP))
            #expect(!s.checksumIsValid(source: IPv4Address(10, 0, 0, 3), destination: serverIP))

            let o = try TCPOptions(parsing: s.options)
            #expect(o.mss == 1460)
            #expect(o.sackPermitted)
            #expect(o.timestamps?.value == 3_007_787_968)
            #expect(o.timestamps?.echoReply == 0)
            #expect(o.windowScale == 10)
            #expect(o.sackBlocks.isEmpty)
            #expect(o.encodedLength == 20)
            #expect(emitOptions(o) == Array(linuxSYN[20...]))
        }
    }

    @Test func emitsLinuxSYNByteForByte() {
        let repr = TCPRepr(sourcePort: 40272, destinationPort: 5001, seq: SequenceNumber(714_553_653), flags: .syn,
                           window: 64240,
                           options: TCPOptions(mss: 1460, windowScale: 10, sackPermitted: true,
                                               timestamps: (value: 3_007_787_968, echoReply: 0)))
        #expect(repr.headerLength == 40)
        #expect(repr.segmentLength == 1)
        var out = [UInt8](repeating: 0xcc, count: repr.length)
        out.withUnsafeMutableBytes { repr.emit(into: $0, source: clientIP, destination: serverIP) }
        #expect(out == linuxSYN)
    }

    @Test func rejectsShortHeaderAndBadDataOffset() {
        var header = [UInt8](repeating: 0, count: 20)
        header[12] = 0x50
        #expect(throws: WireError.truncated) { try withBuffer(Array(header[0..<19])) { _ = try TCPSegment(validating: $0) } }
        #expect(throws: WireError.truncated) { try withBuffer([]) { _ = try TCPSegment(validating: $0) } }
        for offset: UInt8 in 0..<5 {
            header[12] = offset << 4
            #expect(throws: WireError.badLength) { try withBuffer(header) { _ = try TCPSegment(validating: $0) } }
        }
        header[12] = 0x60 // 24-byte header in 20 bytes
        #expect(throws: WireError.truncated) { try withBuffer(header) { _ = try TCPSegment(validating: $0) } }
        #expect(throws: WireError.truncated) { try withBuffer(header + [1, 1, 1]) { _ = try TCPSegment(validating: $0) } }
        #expect(throws: Never.self) { try withBuffer(header + [1, 1, 1, 0]) { _ = try TCPSegment(validating: $0) } }
        header[12] = 0xf0 // 60-byte header
        #expect(throws: WireError.truncated) {
            try withBuffer(header + [UInt8](repeating: 1, count: 39)) { _ = try TCPSegment(validating: $0) }
        }
        #expect(throws: Never.self) {
            try withBuffer(header + [UInt8](repeating: 1, count: 40)) { b in
                let s = try TCPSegment(validating: b)
                #expect(s.headerLength == 60 && s.options.count == 40 && s.payload.isEmpty)
            }
        }
    }

    @Test func viewSettersWriteInPlace() throws {
        var header = [UInt8](repeating: 0, count: 24)
        header[12] = 0x50
        try withBuffer(header) { b in
            let s = try TCPSegment(validating: b)
            s.sourcePort = 0xabcd
            s.destinationPort = 80
            s.sequenceNumber = SequenceNumber(0xdead_beef)
            s.acknowledgmentNumber = SequenceNumber(0x0102_0304)
            s.flags = [.syn, .ack, .ece]
            s.window = 0xfffe
            s.checksum = 0x1234
            s.urgentPointer = 7
            #expect(Array(b[0..<20]) == [0xab, 0xcd, 0x00, 0x50, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04,
                                         0x50, 0x52, 0xff, 0xfe, 0x12, 0x34, 0x00, 0x07])
            #expect(s.payload.count == 4)
            #expect(s.options.isEmpty)
            #expect(s.sequenceNumber == SequenceNumber(0xdead_beef))
            #expect(s.flags == [.syn, .ack, .ece])
        }
    }

    // MARK: Flags

    @Test func flagBitsAndNames() throws {
        let all: [(TCPFlags, UInt8, String)] = [
            (.fin, 0x01, "FIN"), (.syn, 0x02, "SYN"), (.rst, 0x04, "RST"), (.psh, 0x08, "PSH"),
            (.ack, 0x10, "ACK"), (.urg, 0x20, "URG"), (.ece, 0x40, "ECE"), (.cwr, 0x80, "CWR"),
        ]
        for (flag, bit, name) in all {
            #expect(flag.rawValue == bit)
            #expect(flag.description == name)
        }
        #expect(TCPFlags([.syn, .ack]).description == "SYN|ACK")
        #expect(TCPFlags().description == "none")

        var header = [UInt8](repeating: 0, count: 20)
        header[12] = 0x5f // reserved bits (and AE) set: not part of the flags, not part of the offset
        header[13] = 0xff
        try withBuffer(header) { b in
            let s = try TCPSegment(validating: b)
            #expect(s.dataOffset == 5)
            #expect(s.flags == [.fin, .syn, .rst, .psh, .ack, .urg, .ece, .cwr])
        }
    }

    // MARK: Checksum

    @Test func checksumMatchesHandComputedValue() throws {
        // Pseudo-header 0a00+0001+0a00+0002+0006+0014 = 0x141d; header words
        // 0001+0002+5002+1000 = 0x6005; sum 0x7422; checksum ~0x7422 = 0x8bdd.
        var header = [UInt8](repeating: 0, count: 20)
        header[1] = 1; header[3] = 2; header[12] = 0x50; header[13] = 0x02; header[14] = 0x10
        try withBuffer(header) { b in
            let s = try TCPSegment(validating: b)
            #expect(!s.checksumIsValid(source: clientIP, destination: serverIP))
            s.fillChecksum(source: clientIP, destination: serverIP)
            #expect(s.checksum == 0x8bdd)
            #expect(s.checksumIsValid(source: clientIP, destination: serverIP))
            b[25 - 20] ^= 0x01 // any changed bit breaks it
            #expect(!s.checksumIsValid(source: clientIP, destination: serverIP))
        }
    }

    @Test func checksumMatchesReferenceOverOddLengths() throws {
        var rng = SeededGenerator(state: 0x7c9)
        for length in [20, 21, 23, 24, 41, 60, 61, 1480, 1481] {
            var segment = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            segment[12] = 0x50
            segment[16] = 0; segment[17] = 0
            let expected = referenceChecksum(pseudoHeader(clientIP, serverIP, length: length) + segment)
            try withBuffer(segment) { b in
                let s = try TCPSegment(validating: b)
                s.fillChecksum(source: clientIP, destination: serverIP)
                #expect(s.checksum == expected, "length \(length)")
                #expect(s.checksumIsValid(source: clientIP, destination: serverIP))
            }
        }
    }

    // MARK: Capture

    /// Linux's handshake, data, FIN exchange captured between two namespaces
    /// (checksum offload off): every segment verifies, parses, and re-emits to
    /// the same bytes, since the emitter uses Linux's option layouts.
    @Test func capturedConnectionParsesAndReEmitsIdentically() throws {
        let frames = try pcapFrames("tcp-handshake.pcap")
        #expect(frames.count == 8)
        var reprs: [TCPRepr] = []
        for var frame in frames {
            try frame.withUnsafeMutableBytes { raw in
                let eth = try EthernetFrame(validating: raw)
                try #require(eth.etherType == .ipv4)
                let ip = try IPv4Packet(validating: eth.payload)
                try #require(ip.protocol == .tcp)
                let s = try TCPSegment(validating: ip.payload)
                #expect(s.checksumIsValid(source: ip.source, destination: ip.destination))
                let repr = try TCPRepr(parsing: s)
                reprs.append(repr)

                let original = Array(UnsafeRawBufferPointer(s.bytes))
                var out = [UInt8](repeating: 0, count: repr.length)
                out.replaceSubrange(repr.headerLength..., with: original[s.headerLength...])
                out.withUnsafeMutableBytes { repr.emit(into: $0, source: ip.source, destination: ip.destination) }
                #expect(out == original, "\(repr.flags) re-emitted differently")
            }
        }
        let syn = reprs[0], synAck = reprs[1], data = reprs[3], fin = reprs[5]
        #expect(syn.flags == .syn && syn.ack == nil)
        #expect(syn.options == TCPOptions(mss: 1460, windowScale: 10, sackPermitted: true,
                                          timestamps: (value: 3_007_787_968, echoReply: 0)))
        #expect(synAck.flags == [.syn, .ack])
        #expect(synAck.ack == syn.seq + 1)
        #expect(synAck.options.timestamps?.echoReply == syn.options.timestamps?.value)
        #expect(synAck.options.windowScale == 10 && synAck.options.mss == 1460)
        #expect(data.flags == [.psh, .ack] && data.payloadLength == 6 && data.seq == syn.seq + 1)
        #expect(data.options == TCPOptions(timestamps: (value: 3_007_787_969, echoReply: 180_844_948)))
        #expect(data.window == 63) // scaled by 2^10 on the wire
        #expect(fin.flags == [.fin, .ack] && fin.seq == data.seq + data.payloadLength)
        #expect(fin.segmentLength == 1)
    }

    // MARK: Repr

    @Test func reprRoundTripsWithPayload() throws {
        var blocks = TCPSACKBlocks()
        blocks.append((left: SequenceNumber(0xffff_fff0), right: SequenceNumber(0x10)))
        blocks.append((left: SequenceNumber(100), right: SequenceNumber(200)))
        let repr = TCPRepr(sourcePort: 1234, destinationPort: 80, seq: SequenceNumber(0xffff_fffe),
                           ack: SequenceNumber(42), flags: [.psh], window: 512, urgentPointer: 0,
                           options: TCPOptions(timestamps: (value: 1, echoReply: 2), sackBlocks: blocks),
                           payloadLength: 5)
        #expect(repr.flags == [.psh, .ack])
        #expect(repr.headerLength == 20 + 12 + 4 + 16)
        var out = [UInt8](repeating: 0, count: repr.length + 3) // slack after the segment is not touched
        out.replaceSubrange(repr.headerLength..<repr.length, with: Array("hello".utf8))
        try out.withUnsafeMutableBytes { b in
            repr.emit(into: b, source: clientIP, destination: serverIP)
            let s = try TCPSegment(validating: b.slice(0..<repr.length))
            #expect(s.checksumIsValid(source: clientIP, destination: serverIP))
            #expect(Array(UnsafeRawBufferPointer(s.payload)) == Array("hello".utf8))
            #expect(try TCPRepr(parsing: s) == repr)
        }
        #expect(Array(out[repr.length...]) == [0, 0, 0])
    }

    @Test func reprWithoutOptionsHasBareHeader() throws {
        let repr = TCPRepr(sourcePort: 1, destinationPort: 2, seq: SequenceNumber(7), ack: SequenceNumber(9),
                           flags: [.rst, .ack], window: 0)
        #expect(repr.headerLength == 20)
        #expect(repr.options.isEmpty)
        var out = [UInt8](repeating: 0xff, count: 20)
        try out.withUnsafeMutableBytes { b in
            repr.emit(into: b, source: clientIP, destination: serverIP)
            let s = try TCPSegment(validating: b)
            #expect(s.dataOffset == 5 && b[12] == 0x50)
            #expect(try TCPRepr(parsing: s) == repr)
        }
    }

    @Test func ackFieldDecidesTheACKFlag() throws {
        let noAck = TCPRepr(sourcePort: 1, destinationPort: 2, seq: SequenceNumber(5), flags: [.syn, .ack], window: 1)
        #expect(noAck.flags == .syn)
        var repr = TCPRepr(sourcePort: 1, destinationPort: 2, seq: SequenceNumber(5), flags: .syn, window: 1)
        repr.ack = SequenceNumber(77) // flags not updated by hand
        var out = [UInt8](repeating: 0, count: 20)
        try out.withUnsafeMutableBytes { b in
            repr.emit(into: b, source: clientIP, destination: serverIP)
            let s = try TCPSegment(validating: b)
            #expect(s.flags == [.syn, .ack])
            #expect(try TCPRepr(parsing: s).ack == SequenceNumber(77))
        }
        repr.ack = nil
        repr.flags = [.fin, .ack]
        try out.withUnsafeMutableBytes { b in
            repr.emit(into: b, source: clientIP, destination: serverIP)
            let s = try TCPSegment(validating: b)
            #expect(s.flags == .fin)
            #expect(s.acknowledgmentNumber == SequenceNumber(0))
            #expect(try TCPRepr(parsing: s).ack == nil)
        }
    }

    @Test func reprParseRejectsBadOptions() {
        var header = [UInt8](repeating: 0, count: 24)
        header[12] = 0x60
        header[20] = 2; header[21] = 3 // MSS of length 3
        #expect(throws: WireError.badOption) {
            try withBuffer(header) { b in _ = try TCPRepr(parsing: try TCPSegment(validating: b)) }
        }
    }

    @Test func segmentLengthCountsSYNAndFIN() {
        func repr(_ flags: TCPFlags, _ payload: Int) -> TCPRepr {
            TCPRepr(sourcePort: 1, destinationPort: 2, seq: SequenceNumber(0), flags: flags, window: 0,
                    payloadLength: payload)
        }
        #expect(repr(.syn, 0).segmentLength == 1)
        #expect(repr([.syn, .fin], 3).segmentLength == 5)
        #expect(repr(.fin, 10).segmentLength == 11)
        #expect(repr(.psh, 10).segmentLength == 10)
        #expect(repr(.rst, 0).segmentLength == 0)
    }

    // MARK: Options, one at a time

    @Test func optionsEmptyArea() throws {
        let o = try parseOptions([])
        #expect(o.isEmpty && o == TCPOptions())
        #expect(o.encodedLength == 0)
        #expect(emitOptions(o) == [])
        #expect(try parseOptions([0, 0, 0, 0]).isEmpty) // EOL padding
        #expect(try parseOptions([1, 1, 1, 1]).isEmpty) // NOP padding
    }

    @Test func optionMSS() throws {
        let o = try parseOptions([2, 4, 0x05, 0xb4])
        #expect(o == TCPOptions(mss: 1460))
        #expect(emitOptions(o) == [2, 4, 0x05, 0xb4])
        #expect(try parseOptions([2, 4, 0xff, 0xff]).mss == 0xffff)
    }

    @Test func optionWindowScale() throws {
        let o = try parseOptions([3, 3, 7, 0])
        #expect(o == TCPOptions(windowScale: 7))
        #expect(emitOptions(o) == [1, 3, 3, 7])
        #expect(try parseOptions([1, 3, 3, 14]).windowScale == 14)
        #expect(try parseOptions([1, 3, 3, 15]).windowScale == 14) // RFC 7323 2.3
        #expect(try parseOptions([1, 3, 3, 255]).windowScale == 14)
        #expect(try parseOptions([1, 3, 3, 0]).windowScale == 0)
    }

    @Test func optionSACKPermitted() throws {
        let o = try parseOptions([4, 2, 0, 0])
        #expect(o == TCPOptions(sackPermitted: true))
        #expect(emitOptions(o) == [1, 1, 4, 2])
    }

    @Test func optionTimestamps() throws {
        let unaligned = try parseOptions([8, 10] + be32(0x0102_0304) + be32(0xa0b0_c0d0) + [0, 0])
        #expect(unaligned.timestamps?.value == 0x0102_0304)
        #expect(unaligned.timestamps?.echoReply == 0xa0b0_c0d0)
        let canonical = [1, 1, 8, 10] + be32(0x0102_0304) + be32(0xa0b0_c0d0)
        #expect(emitOptions(unaligned) == canonical)
        #expect(try parseOptions(canonical) == unaligned) // the 12-byte fast path
        #expect(try parseOptions(canonical + [1, 1, 1, 1]) == unaligned) // the general path
    }

    @Test func optionSACKBlocks() throws {
        for n in 1...4 {
            var blocks = TCPSACKBlocks()
            var wire: [UInt8] = [1, 1, 5, UInt8(2 + 8 * n)]
            for k in 0..<n {
                let left = SequenceNumber(0xffff_ff00 &+ UInt32(k) * 0x100)
                blocks.append((left: left, right: left + 0x80))
                wire += be32(left.rawValue) + be32((left + 0x80).rawValue)
            }
            let o = try parseOptions(wire)
            #expect(o.sackBlocks.count == n)
            #expect(o == TCPOptions(sackBlocks: blocks))
            #expect(o.sackBlocks.last?.left == SequenceNumber(0xffff_ff00 &+ UInt32(n - 1) * 0x100))
            #expect(emitOptions(o) == wire)
            #expect(o.encodedLength == 4 + 8 * n)
        }
    }

    @Test func sackBlocksStoreInline() {
        var blocks: TCPSACKBlocks = [(left: SequenceNumber(1), right: SequenceNumber(2))]
        #expect(blocks.count == 1 && !blocks.isFull)
        blocks.append((left: SequenceNumber(3), right: SequenceNumber(4)))
        blocks.append((left: SequenceNumber(5), right: SequenceNumber(6)))
        blocks.append((left: SequenceNumber(7), right: SequenceNumber(8)))
        #expect(blocks.isFull)
        blocks[2].right = SequenceNumber(99)
        #expect(blocks.map(\.right.rawValue) == [2, 4, 99, 8])
        #expect(blocks.description == "[1..<2, 3..<4, 5..<99, 7..<8]")
        var other = blocks
        #expect(other == blocks)
        other.removeAll()
        #expect(other.isEmpty && other != blocks)
        #expect(other == TCPSACKBlocks())
        #expect(MemoryLayout<TCPSACKBlocks>.size == 4 * 8 + MemoryLayout<Int>.size)
    }

    // MARK: Options, combined

    @Test func optionsSYNLayoutWithoutTimestamps() throws {
        let o = TCPOptions(mss: 1460, windowScale: 7, sackPermitted: true)
        let wire: [UInt8] = [2, 4, 0x05, 0xb4, 1, 1, 4, 2, 1, 3, 3, 7]
        #expect(emitOptions(o) == wire)
        #expect(try parseOptions(wire) == o)
    }

    @Test func optionsSYNLayoutTimestampsWithoutSACK() throws {
        let o = TCPOptions(mss: 536, windowScale: 0, timestamps: (value: 5, echoReply: 0))
        let wire: [UInt8] = [2, 4, 0x02, 0x18, 1, 1, 8, 10] + be32(5) + be32(0) + [1, 3, 3, 0]
        #expect(emitOptions(o) == wire)
        #expect(try parseOptions(wire) == o)
    }

    @Test func optionsDataSegmentWithTimestampsAndSACK() throws {
        let blocks: TCPSACKBlocks = [(left: SequenceNumber(1000), right: SequenceNumber(2000)),
                                     (left: SequenceNumber(3000), right: SequenceNumber(4000))]
        let o = TCPOptions(timestamps: (value: 9, echoReply: 8), sackBlocks: blocks)
        let wire: [UInt8] = [1, 1, 8, 10] + be32(9) + be32(8) + [1, 1, 5, 18]
            + be32(1000) + be32(2000) + be32(3000) + be32(4000)
        #expect(emitOptions(o) == wire)
        #expect(o.encodedLength == 32)
        #expect(try parseOptions(wire) == o)
    }

    @Test func sackBlocksThatDoNotFitAreLeftOff() throws {
        let four: TCPSACKBlocks = [(left: SequenceNumber(1), right: SequenceNumber(2)),
                                   (left: SequenceNumber(3), right: SequenceNumber(4)),
                                   (left: SequenceNumber(5), right: SequenceNumber(6)),
                                   (left: SequenceNumber(7), right: SequenceNumber(8))]
        // Timestamps (12) leave room for three blocks (4 + 24).
        let withTS = TCPOptions(timestamps: (value: 1, echoReply: 2), sackBlocks: four)
        #expect(withTS.encodedLength == 40)
        let parsed = try parseOptions(emitOptions(withTS))
        #expect(Array(parsed.sackBlocks.map(\.left)) == Array(four.prefix(3).map(\.left)))
        // MSS, SACK-permitted + timestamps, window scale (20) leave room for two.
        let all = TCPOptions(mss: 1, windowScale: 2, sackPermitted: true, timestamps: (value: 3, echoReply: 4),
                             sackBlocks: four)
        #expect(all.encodedLength == 40)
        #expect(try parseOptions(emitOptions(all)).sackBlocks.count == 2)
        // MSS, SACK-permitted, window scale without timestamps (12) leave room for three.
        var noTS = all
        noTS.timestamps = nil
        #expect(noTS.encodedLength == 40)
        #expect(try parseOptions(emitOptions(noTS)).sackBlocks.count == 3)
        // Without timestamps all four fit.
        #expect(TCPOptions(sackBlocks: four).encodedLength == 36)
    }

    @Test func optionsLastRepeatWins() throws {
        let o = try parseOptions([2, 4, 0, 1, 2, 4, 0, 2, 5, 10] + be32(1) + be32(2) + [5, 10] + be32(3) + be32(4))
        #expect(o.mss == 2)
        #expect(o.sackBlocks.count == 1 && o.sackBlocks[0].left == SequenceNumber(3))
    }

    // MARK: Options, stepping and stopping

    @Test func unknownOptionIsSteppedOver() throws {
        let o = try parseOptions([0xfe, 6, 0xaa, 0xbb, 0xcc, 0xdd, 2, 4, 0x05, 0xb4, 30, 2])
        #expect(o == TCPOptions(mss: 1460))
        // An unknown option whose "contents" look like options is not read into.
        #expect(try parseOptions([0xfd, 6, 2, 4, 0x05, 0xb4]).isEmpty)
    }

    @Test func endOfListStopsParsing() throws {
        // After EOL comes padding; even bytes that would be malformed are ignored.
        let o = try parseOptions([2, 4, 0x05, 0xb4, 0, 2, 0, 3, 0xff, 0xff, 8, 3])
        #expect(o == TCPOptions(mss: 1460))
        #expect(try parseOptions([0, 2, 4, 0x05, 0xb4]).isEmpty)
        #expect(try parseOptions([1, 1, 1, 2, 4, 0x05, 0xb4]) == TCPOptions(mss: 1460))
    }

    // MARK: Options, rejected

    @Test func rejectsLengthBelowTwo() {
        for wire: [UInt8] in [[2, 0, 0, 0], [2, 1, 0, 0], [0xfe, 0], [0xfe, 1], [1, 1, 8, 0]] {
            #expect(throws: WireError.badOption, "\(wire)") { try parseOptions(wire) }
        }
    }

    @Test func rejectsOptionsRunningPastTheArea() {
        let cases: [[UInt8]] = [
            [2], // kind with no length byte
            [1, 1, 1, 2], // the same after NOPs
            [2, 4, 0x05], // MSS cut short
            [0xfe, 8, 0, 0], // unknown kind claiming more than there is
            [8, 10, 0, 0, 0, 0, 0, 0, 0], // timestamps one short
            [5, 10] + [UInt8](repeating: 0, count: 7),
        ]
        for wire in cases {
            #expect(throws: WireError.badOption, "\(wire)") { try parseOptions(wire) }
        }
    }

    @Test func rejectsWrongFixedLengths() {
        let cases: [[UInt8]] = [
            [2, 3, 5, 0], [2, 5, 5, 0xb4, 0], [2, 2], // MSS must be 4
            [3, 2, 1, 1], [3, 4, 7, 0], // window scale must be 3
            [4, 3, 0, 1], [4, 4, 0, 0], // SACK-permitted must be 2
            [8, 8, 0, 0, 0, 0, 0, 0], [8, 12] + [UInt8](repeating: 0, count: 10), [8, 2], // timestamps must be 10
        ]
        for wire in cases {
            #expect(throws: WireError.badOption, "\(wire)") { try parseOptions(wire) }
        }
    }

    @Test func rejectsBadSACKLengths() {
        let cases: [[UInt8]] = [
            [5, 2, 1, 1], // no blocks
            [5, 6, 0, 0, 0, 0], // half a block
            [5, 11] + [UInt8](repeating: 0, count: 9), // not 2 + 8n
            [5, 17] + [UInt8](repeating: 0, count: 15),
            [5, 42] + [UInt8](repeating: 0, count: 40), // five blocks (a larger buffer than a header allows)
        ]
        for wire in cases {
            #expect(throws: WireError.badOption, "\(wire)") { try parseOptions(wire) }
        }
    }

    // MARK: Fuzz

    /// Random bytes, and random streams of plausible options, through the view,
    /// the option parser and the repr: nothing traps, every accessor of a valid
    /// view stays in bounds (ByteAccess asserts in debug builds), rejections are
    /// the typed errors, and whatever parses re-emits and re-parses the same.
    @Test func fuzzViewAndOptionParser() throws {
        var rng = SeededGenerator(state: 0x5eed_7c9)
        var validViews = 0, parsedOptions = 0
        for round in 0..<6000 {
            let length = Int.random(in: 0...100, using: &rng)
            var bytes = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if length >= 20 && round % 2 == 0 {
                // Half the rounds: a plausible data offset and an options area of
                // well-known kinds with mostly right lengths, to get past the first byte.
                let offset = Int.random(in: 5...min(15, length / 4), using: &rng)
                bytes[12] = UInt8(offset) << 4 | bytes[12] & 0x0f
                var i = 20
                while i < offset * 4 {
                    let kind = [0, 1, 1, 2, 3, 4, 5, 8, 8, 0xfe].randomElement(using: &rng)!
                    let right: [UInt8: Int] = [2: 4, 3: 3, 4: 2, 5: 2 + 8 * Int.random(in: 1...4, using: &rng), 8: 10,
                                               0xfe: Int.random(in: 2...6, using: &rng)]
                    bytes[i] = UInt8(kind)
                    if i + 1 < offset * 4, let len = right[UInt8(kind)] {
                        bytes[i + 1] = Int.random(in: 0..<8, using: &rng) == 0
                            ? UInt8.random(in: 0...12, using: &rng) : UInt8(len)
                        i += Int(bytes[i + 1] < 2 ? 2 : bytes[i + 1])
                    } else {
                        i += 1
                    }
                }
            }
            try bytes.withUnsafeMutableBytes { b in
                let s: TCPSegment
                do throws(WireError) {
                    s = try TCPSegment(validating: b)
                } catch {
                    #expect(error == .truncated || error == .badLength)
                    return
                }
                validViews += 1
                _ = (s.sourcePort, s.destinationPort, s.sequenceNumber, s.acknowledgmentNumber, s.flags, s.window,
                     s.checksum, s.urgentPointer)
                #expect(s.headerLength >= 20 && s.headerLength <= 60 && s.headerLength % 4 == 0)
                #expect(s.header.count + s.payload.count == b.count)
                #expect(20 + s.options.count == s.headerLength)
                _ = s.checksumIsValid(source: clientIP, destination: serverIP)

                let options: TCPOptions
                do throws(WireError) {
                    options = try TCPOptions(parsing: s.options)
                } catch {
                    #expect(error == .badOption)
                    #expect(throws: WireError.badOption) { try TCPRepr(parsing: s) }
                    return
                }
                parsedOptions += 1
                #expect(options.windowScale.map { $0 <= 14 } ?? true)
                let encoded = options.encodedLength
                #expect(encoded % 4 == 0 && encoded <= 40)
                var area = [UInt8](repeating: 0, count: 40)
                let reparsed = try area.withUnsafeMutableBytes { a in
                    #expect(options.emit(into: a) == encoded)
                    return try TCPOptions(parsing: a.slice(0..<encoded))
                }
                var expected = options
                while expected.sackBlocks.count > reparsed.sackBlocks.count { // left off for room
                    var kept = TCPSACKBlocks()
                    for block in expected.sackBlocks.dropLast() { kept.append(block) }
                    expected.sackBlocks = kept
                }
                #expect(reparsed == expected)

                // The repr re-emits into a fresh segment that parses back to itself.
                var repr = try TCPRepr(parsing: s)
                repr.options = expected
                var out = [UInt8](repeating: 0, count: repr.length)
                try out.withUnsafeMutableBytes { o in
                    repr.emit(into: o, source: clientIP, destination: serverIP)
                    let again = try TCPSegment(validating: o)
                    #expect(again.checksumIsValid(source: clientIP, destination: serverIP))
                    #expect(try TCPRepr(parsing: again) == repr)
                }
            }
        }
        // The generator must reach the interesting paths, not just bounce off validation.
        #expect(validViews > 2500)
        #expect(parsedOptions > 1000)
    }
}
