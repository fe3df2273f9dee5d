import Testing
@testable import NetStackWire

/// A well-known IPv4 header: 192.168.0.1 -> 192.168.0.199, total length 115,
/// DF, TTL 64, UDP, header checksum b861.
let knownHeader = hex("4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7")
/// That header followed by its 95 payload bytes (0, 1, 2, ...).
let knownPacket = knownHeader + (0..<95).map { UInt8($0) }

/// An IPv4 header with `options`, a correct IHL, total length and checksum
/// (computed by the reference, not by the code under test), then `payload`.
func ipv4Packet(options: [UInt8] = [], payload: [UInt8], flags: UInt16 = 0x4000,
                proto: UInt8 = 17) -> [UInt8] {
    precondition(options.count % 4 == 0 && options.count <= 40)
    let ihl = 5 + options.count / 4
    var h: [UInt8] = [UInt8(0x40 | ihl), 0x00] + be16(UInt16(ihl * 4 + payload.count)) + [0x12, 0x34]
        + be16(flags) + [64, proto, 0, 0] + [10, 0, 0, 1] + [10, 0, 0, 2] + options
    let c = referenceChecksum(h)
    h[10] = UInt8(c >> 8); h[11] = UInt8(c & 0xff)
    return h + payload
}

@Suite struct IPv4Tests {
    @Test func parsesKnownHeader() throws {
        var bytes = knownPacket
        try bytes.withUnsafeMutableBytes { buf in
            let p = try IPv4Packet(validating: buf)
            #expect(p.headerLength == 20)
            #expect(p.totalLength == 115)
            #expect(p.dscpECN == 0)
            #expect(p.identification == 0)
            #expect(p.dontFragment)
            #expect(!p.moreFragments)
            #expect(p.fragmentOffset == 0)
            #expect(!p.isFragment)
            #expect(p.timeToLive == 64)
            #expect(p.protocol == .udp)
            #expect(p.headerChecksum == 0xb861)
            #expect(p.source == IPv4Address(192, 168, 0, 1))
            #expect(p.destination == IPv4Address(192, 168, 0, 199))
            #expect(p.checksumIsValid)
            #expect(p.options.count == 0)
            #expect(p.header.array == knownHeader)
            #expect(p.payload.array == (0..<95).map { UInt8($0) })
            #expect(p.payload.baseAddress == buf.baseAddress! + 20)
        }
    }

    @Test func shortBufferIsTruncated() {
        for n in 0..<20 {
            #expect(wireError(Array(knownPacket[0..<n]), as: IPv4Packet.self) == .truncated, "length \(n)")
        }
    }

    @Test(arguments: [0, 1, 5, 6, 15] as [UInt8])
    func otherVersionsAreUnsupported(version: UInt8) {
        var bytes = knownPacket
        bytes[0] = version << 4 | 5
        #expect(wireError(bytes, as: IPv4Packet.self) == .unsupported)
    }

    @Test(arguments: 0...4 as ClosedRange<UInt8>)
    func ihlBelowFiveIsBadLength(ihl: UInt8) {
        var bytes = knownPacket
        bytes[0] = 0x40 | ihl
        #expect(wireError(bytes, as: IPv4Packet.self) == .badLength)
    }

    @Test func ihlBeyondBufferIsTruncated() {
        // IHL 15 claims 60 header bytes; the buffer has 40.
        var bytes = Array(knownPacket[0..<40])
        bytes[0] = 0x4f
        bytes[2] = 0; bytes[3] = 40
        #expect(wireError(bytes, as: IPv4Packet.self) == .truncated)
        // IHL 6 in exactly 20 bytes.
        var short = knownHeader
        short[0] = 0x46; short[2] = 0; short[3] = 20
        #expect(wireError(short, as: IPv4Packet.self) == .truncated)
    }

    @Test func totalLengthBelowHeaderIsBadLength() {
        for total: UInt16 in [0, 1, 19] {
            var bytes = knownPacket
            bytes.replaceSubrange(2..<4, with: be16(total))
            #expect(wireError(bytes, as: IPv4Packet.self) == .badLength, "total \(total)")
        }
        // With options the header is 24 bytes: a total length of 22 is too small.
        var withOptions = ipv4Packet(options: [0x94, 0x04, 0x00, 0x00], payload: [1, 2, 3, 4])
        withOptions.replaceSubrange(2..<4, with: be16(22))
        #expect(wireError(withOptions, as: IPv4Packet.self) == .badLength)
    }

    @Test func totalLengthBeyondBufferIsTruncated() {
        #expect(wireError(Array(knownPacket.dropLast()), as: IPv4Packet.self) == .truncated)
        var bytes = knownPacket
        bytes.replaceSubrange(2..<4, with: be16(0xffff))
        #expect(wireError(bytes, as: IPv4Packet.self) == .truncated)
    }

    @Test func headerOnlyPacketHasEmptyPayload() throws {
        var bytes = ipv4Packet(payload: [])
        try bytes.withUnsafeMutableBytes { buf in
            let p = try IPv4Packet(validating: buf)
            #expect(p.payload.count == 0)
            #expect(p.checksumIsValid)
        }
    }

    /// An IPv4 packet shorter than 46 bytes arrives in a 60-byte Ethernet
    /// frame with padding; the padding is not payload (RFC 894, RFC 1122 2.3.3).
    @Test func ethernetPaddingIsExcluded() throws {
        let udp = hex("9c40 270f 0008 0000")
        var bytes = ipv4Packet(payload: udp) + [UInt8](repeating: 0, count: 18)
        try bytes.withUnsafeMutableBytes { buf in
            let p = try IPv4Packet(validating: buf)
            #expect(p.totalLength == 28)
            #expect(p.bytes.count == 28)
            #expect(p.payload.array == udp)
            #expect(p.checksumIsValid)
            #expect(IPv4Repr(parsing: p).payloadLength == 8)
        }
    }

    @Test func oneWordOfOptionsIsSteppedOver() throws {
        // Router Alert (RFC 2113): type 148, length 4, value 0.
        let option: [UInt8] = [0x94, 0x04, 0x00, 0x00]
        var bytes = ipv4Packet(options: option, payload: [0xaa, 0xbb, 0xcc, 0xdd, 0xee])
        try bytes.withUnsafeMutableBytes { buf in
            let p = try IPv4Packet(validating: buf)
            #expect(p.headerLength == 24)
            #expect(p.totalLength == 29)
            #expect(p.options.array == option)
            #expect(p.header.count == 24)
            #expect(p.payload.array == [0xaa, 0xbb, 0xcc, 0xdd, 0xee])
            #expect(p.payload.baseAddress == buf.baseAddress! + 24)
            #expect(p.checksumIsValid)
            #expect(IPv4Repr(parsing: p).payloadLength == 5)
            // The checksum covers the options.
            p.options[1] = 0x05
            #expect(!p.checksumIsValid)
        }
    }

    @Test func maximumOptionsAreSteppedOver() throws {
        // IHL 15: 40 bytes of options (39 NOPs and an End of Option List).
        let options = [UInt8](repeating: 0x01, count: 39) + [0x00]
        var bytes = ipv4Packet(options: options, payload: [7, 8, 9])
        try bytes.withUnsafeMutableBytes { buf in
            let p = try IPv4Packet(validating: buf)
            #expect(p.headerLength == 60)
            #expect(p.options.array == options)
            #expect(p.payload.array == [7, 8, 9])
            #expect(p.checksumIsValid)
            let repr = IPv4Repr(parsing: p)
            #expect(repr.payloadLength == 3)
            #expect(repr.source == Capture.ipA && repr.destination == Capture.ipB)
        }
    }

    /// Flags and fragment offset (RFC 791 3.1): bit 0 reserved, DF, MF, then
    /// a 13-bit offset in units of 8 bytes.
    @Test(arguments: [
        (UInt16(0x0000), false, false, 0, false),
        (UInt16(0x4000), true, false, 0, false),
        (UInt16(0x2000), false, true, 0, true),      // first fragment
        (UInt16(0x20b9), false, true, 1480, true),   // middle fragment
        (UInt16(0x0172), false, false, 2960, true),  // last fragment
        (UInt16(0x1fff), false, false, 65528, true), // largest offset
        (UInt16(0x8000), false, false, 0, false),    // reserved bit only
        (UInt16(0xffff), true, true, 65528, true),
    ])
    func flagsAndFragmentOffset(field: UInt16, df: Bool, mf: Bool, offset: Int, fragment: Bool) throws {
        var bytes = ipv4Packet(payload: [1, 2, 3, 4, 5, 6, 7, 8], flags: field)
        try bytes.withUnsafeMutableBytes { buf in
            let p = try IPv4Packet(validating: buf)
            #expect(p.dontFragment == df)
            #expect(p.moreFragments == mf)
            #expect(p.fragmentOffset == offset)
            #expect(p.isFragment == fragment)
            let r = IPv4Repr(parsing: p)
            #expect(r.dontFragment == df && r.moreFragments == mf && r.fragmentOffset == offset)
        }
    }

    @Test func everySingleBitErrorInTheHeaderIsDetected() throws {
        for byte in 0..<20 {
            for bit in 0..<8 {
                var bytes = knownPacket
                bytes[byte] ^= 1 << bit
                bytes.withUnsafeMutableBytes { buf in
                    // Flips in version, IHL or total length may make the view refuse it.
                    guard let p = try? IPv4Packet(validating: buf) else { return }
                    #expect(!p.checksumIsValid, "byte \(byte) bit \(bit)")
                }
            }
        }
    }

    @Test func fillChecksumAfterChanges() throws {
        var bytes = knownPacket
        try bytes.withUnsafeMutableBytes { buf in
            let p = try IPv4Packet(validating: buf)
            p.headerChecksum = 0x1234
            #expect(!p.checksumIsValid)
            p.fillChecksum()
            #expect(p.headerChecksum == 0xb861)
            // Forwarding: decrement TTL, rewrite addresses, then refill.
            p.timeToLive -= 1
            p.source = IPv4Address(10, 0, 0, 1)
            p.destination = IPv4Address(10, 0, 0, 2)
            p.identification = 0xbeef
            p.dscpECN = 0xb8
            p.fillChecksum()
            #expect(p.checksumIsValid)
        }
        var expected = hex("45b8 0073 beef 4000 3f11 0000 0a00 0001 0a00 0002")
        let c = referenceChecksum(expected)
        expected[10] = UInt8(c >> 8); expected[11] = UInt8(c & 0xff)
        #expect(Array(bytes[0..<20]) == expected)
        #expect(Array(bytes[20...]) == Array(knownPacket[20...]))
    }

    @Test func fillChecksumCoversOptions() throws {
        var bytes = ipv4Packet(options: [0x94, 0x04, 0x00, 0x00], payload: [1])
        let original = bytes
        try bytes.withUnsafeMutableBytes { buf in
            let p = try IPv4Packet(validating: buf)
            p.headerChecksum = 0
            p.fillChecksum()
        }
        #expect(bytes == original)
    }

    @Test func reprParsesAndEmitsKnownHeader() throws {
        var bytes = knownPacket
        let repr = try bytes.withUnsafeMutableBytes { IPv4Repr(parsing: try IPv4Packet(validating: $0)) }
        #expect(repr == IPv4Repr(source: IPv4Address(192, 168, 0, 1), destination: IPv4Address(192, 168, 0, 199),
                                 protocol: .udp, payloadLength: 95, timeToLive: 64, identification: 0,
                                 dontFragment: true, moreFragments: false, fragmentOffset: 0, dscpECN: 0))
        var out = [UInt8](repeating: 0xcc, count: 20)
        out.withUnsafeMutableBytes { repr.emit(into: $0) }
        #expect(out == knownHeader)
    }

    @Test func reprRoundTripWithFragmentFields() throws {
        let repr = IPv4Repr(source: IPv4Address(172, 16, 1, 2), destination: IPv4Address(172, 16, 9, 9),
                            protocol: .icmp, payloadLength: 1480, timeToLive: 1, identification: 0xabcd,
                            dontFragment: false, moreFragments: true, fragmentOffset: 1480, dscpECN: 0x2e)
        var bytes = [UInt8](repeating: 0, count: 1500)
        bytes.withUnsafeMutableBytes { repr.emit(into: $0) }
        var expected = hex("452e 05dc abcd 20b9 0101 0000 ac10 0102 ac10 0909")
        let c = referenceChecksum(expected)
        expected[10] = UInt8(c >> 8); expected[11] = UInt8(c & 0xff)
        #expect(Array(bytes[0..<20]) == expected)
        let parsed = try bytes.withUnsafeMutableBytes { buf in
            let p = try IPv4Packet(validating: buf)
            #expect(p.checksumIsValid)
            return IPv4Repr(parsing: p)
        }
        #expect(parsed == repr)
    }

    @Test func reprRoundTripRandom() throws {
        var rng = SplitMix64(seed: 791)
        for _ in 0..<500 {
            let repr = IPv4Repr(
                source: IPv4Address(UInt32.random(in: 0...UInt32.max, using: &rng)),
                destination: IPv4Address(UInt32.random(in: 0...UInt32.max, using: &rng)),
                protocol: IPProtocol(rawValue: UInt8.random(in: 0...255, using: &rng)),
                payloadLength: Int.random(in: 0...200, using: &rng),
                timeToLive: UInt8.random(in: 0...255, using: &rng),
                identification: UInt16.random(in: 0...0xffff, using: &rng),
                dontFragment: Bool.random(using: &rng), moreFragments: Bool.random(using: &rng),
                fragmentOffset: Int.random(in: 0...0x1fff, using: &rng) * 8,
                dscpECN: UInt8.random(in: 0...255, using: &rng))
            var bytes = [UInt8](repeating: 0, count: 20 + repr.payloadLength)
            bytes.withUnsafeMutableBytes { repr.emit(into: $0) }
            #expect(referenceSum(Array(bytes[0..<20])) == 0xffff)
            let parsed = try bytes.withUnsafeMutableBytes { IPv4Repr(parsing: try IPv4Packet(validating: $0)) }
            #expect(parsed == repr)
        }
    }

    /// An ICMP error quotes the original header and only the first 8 bytes
    /// of its data (RFC 792), so the quoted total length exceeds the bytes.
    @Test func quotedHeaderOfALongerDatagram() throws {
        let original = ipv4Packet(payload: be16(40000) + be16(9) + be16(1008) + [0xab, 0xcd]
                                  + [UInt8](repeating: 0x61, count: 1000))
        let quote = Array(original[0..<28])
        #expect(wireError(quote, as: IPv4Packet.self) == .truncated)  // the ordinary view refuses it
        var bytes = quote
        try bytes.withUnsafeMutableBytes { buf in
            let p = try IPv4Packet(validatingQuoted: buf)
            #expect(p.totalLength == 1028)
            #expect(p.headerLength == 20)
            #expect(p.bytes.count == 28)
            #expect(p.source == Capture.ipA && p.destination == Capture.ipB && p.protocol == .udp)
            #expect(p.checksumIsValid)
            #expect(p.payload.array == hex("9c40 0009 03f0 abcd"))
            #expect(IPv4Repr(parsing: p).payloadLength == 1008)
        }
        // With options, the payload still starts after them.
        var withOptions = Array(ipv4Packet(options: [0x94, 0x04, 0x00, 0x00], payload: [UInt8](repeating: 7, count: 100))[0..<32])
        try withOptions.withUnsafeMutableBytes { buf in
            let p = try IPv4Packet(validatingQuoted: buf)
            #expect(p.options.array == [0x94, 0x04, 0x00, 0x00])
            #expect(p.payload.array == [UInt8](repeating: 7, count: 8))
        }
    }

    @Test func quotedHeaderIsStillValidated() {
        let quote = Array(ipv4Packet(options: [0x94, 0x04, 0x00, 0x00], payload: [UInt8](repeating: 0, count: 100))[0..<32])
        for n in 0..<20 {
            #expect(wireError(Array(quote[0..<n]), as: QuotedIPv4.self) == .truncated, "length \(n)")
        }
        // The header itself must be whole: IHL 6 needs 24 bytes.
        #expect(wireError(Array(quote[0..<23]), as: QuotedIPv4.self) == .truncated)
        #expect(wireError(Array(quote[0..<24]), as: QuotedIPv4.self) == nil)
        var v6 = quote; v6[0] = 0x66
        #expect(wireError(v6, as: QuotedIPv4.self) == .unsupported)
        var ihl4 = quote; ihl4[0] = 0x44
        #expect(wireError(ihl4, as: QuotedIPv4.self) == .badLength)
        var total = quote; total.replaceSubrange(2..<4, with: be16(23))
        #expect(wireError(total, as: QuotedIPv4.self) == .badLength)
    }

    @Test func protocolDescriptions() {
        #expect(IPProtocol.icmp.description == "ICMP")
        #expect(IPProtocol.tcp.description == "TCP")
        #expect(IPProtocol.udp.description == "UDP")
        #expect(IPProtocol(rawValue: 89).description == "89")
    }

    /// An offset past the 13-bit field (65528 bytes) must be refused, not
    /// carried into the flag bits: 65536 / 8 = 0x2000 is the MF bit.
    @Test func emitRefusesOutOfRangeFragmentOffset() async {
        await #expect(processExitsWith: .failure) {
            let repr = IPv4Repr(source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(10, 0, 0, 2),
                                protocol: .udp, payloadLength: 0, fragmentOffset: 65536)
            var bytes = [UInt8](repeating: 0, count: 20)
            bytes.withUnsafeMutableBytes { repr.emit(into: $0) }
        }
    }

    /// A negative payload length must be refused, not emitted as a total length below 20.
    @Test func emitRefusesNegativePayloadLength() async {
        await #expect(processExitsWith: .failure) {
            let repr = IPv4Repr(source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(10, 0, 0, 2),
                                protocol: .udp, payloadLength: -5)
            var bytes = [UInt8](repeating: 0, count: 20)
            bytes.withUnsafeMutableBytes { repr.emit(into: $0) }
        }
    }
}
