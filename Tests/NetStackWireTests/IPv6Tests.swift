import Testing
@testable import NetStackWire

/// An IPv6 fixed header built by hand (RFC 8200 3), without the code under test.
func ipv6Header(trafficClass: UInt8 = 0, flowLabel: UInt32 = 0, payloadLength: Int, nextHeader: UInt8,
                hopLimit: UInt8 = 64, source: IPv6Address, destination: IPv6Address, version: UInt8 = 6) -> [UInt8] {
    [version << 4 | trafficClass >> 4, trafficClass << 4 | UInt8(flowLabel >> 16 & 0x0f),
     UInt8(flowLabel >> 8 & 0xff), UInt8(flowLabel & 0xff)]
        + be16(UInt16(payloadLength)) + [nextHeader, hopLimit] + bytes(source) + bytes(destination)
}

@Suite struct IPv6Tests {
    let a = Capture.ip6A, b = Capture.ip6B
    let payload: [UInt8] = Array("an IPv6 payload".utf8)

    var packet: [UInt8] {
        ipv6Header(trafficClass: 0xb8, flowLabel: 0x8_ff07, payloadLength: payload.count, nextHeader: 17,
                   hopLimit: 63, source: a, destination: b) + payload
    }

    @Test func fixedHeaderFieldsRead() throws {
        var bytes = packet
        try bytes.withUnsafeMutableBytes { buf in
            let p = try IPv6Packet(validating: buf)
            #expect(p.trafficClass == 0xb8)
            #expect(p.flowLabel == 0x8_ff07)
            #expect(p.payloadLength == payload.count)
            #expect(p.nextHeader == .udp)
            #expect(p.hopLimit == 63)
            #expect(p.source == a && p.destination == b)
            #expect(p.header.array == Array(packet[0..<40]) && buf.contains(p.header))
            #expect(p.payload.array == payload && buf.contains(p.payload))
            #expect(p.bytes.count == packet.count)
        }
    }

    /// The version nibble and the 20 bits of flow label sit in the same
    /// word as the traffic class: each setter changes only its own bits.
    @Test func settersChangeOnlyTheirBits() throws {
        var bytes = packet
        try bytes.withUnsafeMutableBytes { buf in
            let p = try IPv6Packet(validating: buf)
            p.trafficClass = 0x4f
            #expect(p.trafficClass == 0x4f && p.flowLabel == 0x8_ff07 && buf.u8(0) >> 4 == 6)
            p.flowLabel = 0xf_ffff
            #expect(p.trafficClass == 0x4f && p.flowLabel == 0xf_ffff && buf.u8(0) >> 4 == 6)
            p.flowLabel = 0x12_3456  // bits above 20 are ignored
            #expect(p.trafficClass == 0x4f && p.flowLabel == 0x2_3456)
            p.trafficClass = 0
            p.flowLabel = 0
            #expect(Array(buf[0..<4]) == [0x60, 0, 0, 0])
            p.hopLimit = 1
            (p.source, p.destination) = (p.destination, p.source)
        }
        #expect(bytes == ipv6Header(payloadLength: payload.count, nextHeader: 17, hopLimit: 1, source: b, destination: a)
                + payload)
    }

    @Test func everyTruncationOfTheHeaderIsRefused() {
        for n in 0..<40 {
            #expect(wireError(Array(packet[0..<n]), as: IPv6Packet.self) == .truncated, "length \(n)")
            #expect(wireError(Array(packet[0..<n]), as: QuotedIPv6.self) == .truncated, "quoted, length \(n)")
        }
        // A whole header with part of the payload: the payload length is a lie.
        for n in 40..<packet.count {
            #expect(wireError(Array(packet[0..<n]), as: IPv6Packet.self) == .truncated, "length \(n)")
            #expect(wireError(Array(packet[0..<n]), as: QuotedIPv6.self) == nil, "quoted, length \(n)")
        }
        #expect(wireError(packet, as: IPv6Packet.self) == nil)
    }

    @Test(arguments: [0, 1, 4, 5, 7, 15])
    func otherVersionsAreUnsupported(_ version: UInt8) {
        let p = ipv6Header(payloadLength: 0, nextHeader: 59, source: a, destination: b, version: version)
        #expect(wireError(p, as: IPv6Packet.self) == .unsupported)
        #expect(wireError(p, as: QuotedIPv6.self) == .unsupported)
        // Short and of another version: too short is found first.
        #expect(wireError(Array(p[0..<20]), as: IPv6Packet.self) == .truncated)
    }

    @Test func payloadLengthLongerThanTheBufferIsTruncated() {
        var p = packet
        p.replaceSubrange(4..<6, with: be16(UInt16(payload.count + 1)))
        #expect(wireError(p, as: IPv6Packet.self) == .truncated)
        p.replaceSubrange(4..<6, with: be16(0xffff))
        #expect(wireError(p, as: IPv6Packet.self) == .truncated)
    }

    /// A short frame is padded to Ethernet's 60 bytes; the padding is not payload.
    @Test func ethernetPaddingIsExcluded() throws {
        let short = ipv6Header(payloadLength: 2, nextHeader: 59, source: a, destination: b) + [0xaa, 0xbb]
        var padded = short + [UInt8](repeating: 0, count: 18)
        try padded.withUnsafeMutableBytes { buf in
            let p = try IPv6Packet(validating: buf)
            #expect(p.bytes.count == 42)
            #expect(p.payload.array == [0xaa, 0xbb])
        }
        // A payload length of zero: the header alone.
        var empty = ipv6Header(payloadLength: 0, nextHeader: 59, source: a, destination: b) + [1, 2, 3]
        try empty.withUnsafeMutableBytes { buf in
            let p = try IPv6Packet(validating: buf)
            #expect(p.bytes.count == 40 && p.payload.isEmpty)
        }
    }

    /// An ICMPv6 error quotes as much of the packet as fits in 1280 bytes,
    /// so the quote's payload length describes more than the quote holds.
    @Test func quotedPacketIsCutShort() throws {
        var quote = ipv6Header(payloadLength: 1400, nextHeader: 6, source: a, destination: b) + [1, 2, 3, 4, 5, 6, 7, 8]
        try quote.withUnsafeMutableBytes { buf in
            #expect(throws: WireError.truncated) { try IPv6Packet(validating: buf) }
            let q = try IPv6Packet(validatingQuoted: buf)
            #expect(q.payloadLength == 1400 && q.nextHeader == .tcp)
            #expect(q.bytes.count == 48 && q.payload.array == [1, 2, 3, 4, 5, 6, 7, 8])
            #expect(q.source == a && q.destination == b)
        }
        // A whole quote followed by more bytes: the payload stops at its length.
        var whole = ipv6Header(payloadLength: 3, nextHeader: 17, source: a, destination: b) + [1, 2, 3, 0xee]
        try whole.withUnsafeMutableBytes { buf in
            let q = try IPv6Packet(validatingQuoted: buf)
            #expect(q.payload.array == [1, 2, 3])
        }
    }

    @Test func reprEmitsTheHeaderByHand() throws {
        let repr = IPv6Repr(source: a, destination: b, nextHeader: .tcp, payloadLength: 1232, hopLimit: 255,
                            trafficClass: 0x2e, flowLabel: 0xa_bcde)
        var out = [UInt8](repeating: 0xee, count: 44)
        out.withUnsafeMutableBytes { repr.emit(into: $0) }
        #expect(Array(out[0..<40]) == ipv6Header(trafficClass: 0x2e, flowLabel: 0xa_bcde, payloadLength: 1232,
                                                 nextHeader: 6, hopLimit: 255, source: a, destination: b))
        #expect(Array(out[40...]) == [0xee, 0xee, 0xee, 0xee])
        #expect(Array(out[0..<4]) == [0x62, 0xea, 0xbc, 0xde])
    }

    @Test func reprRoundTrips() throws {
        var rng = SplitMix64(seed: 0x1F6)
        for _ in 0..<200 {
            let repr = IPv6Repr(
                source: IPv6Address(high: rng.next(), low: rng.next()),
                destination: IPv6Address(high: rng.next(), low: rng.next()),
                nextHeader: IPProtocol(rawValue: .random(in: 0...255, using: &rng)),
                payloadLength: .random(in: 0...64, using: &rng), hopLimit: .random(in: 0...255, using: &rng),
                trafficClass: .random(in: 0...255, using: &rng), flowLabel: .random(in: 0..<(1 << 20), using: &rng))
            var out = [UInt8](repeating: 0, count: 40 + repr.payloadLength)
            out.withUnsafeMutableBytes { repr.emit(into: $0) }
            let again = try out.withUnsafeMutableBytes { buf in IPv6Repr(parsing: try IPv6Packet(validating: buf)) }
            #expect(again == repr)
        }
        #expect(IPv6Repr(source: a, destination: b, nextHeader: .icmpv6, payloadLength: 0).hopLimit == 64)
        #expect(IPv6Repr.headerLength == 40 && IPv6Packet.headerLength == 40)
    }

    /// Frame 1 of ping6.pcap, as `tshark -V` reads it: flow label 0x8ff07,
    /// payload length 64, next header 58, hop limit 64.
    @Test func kernelEchoRequestHeader() throws {
        var header = hex("6008ff07 0040 3a40 fd000000000000000000000000000001 fd000000000000000000000000000002")
            + [UInt8](repeating: 0, count: 64)
        try header.withUnsafeMutableBytes { buf in
            let p = try IPv6Packet(validating: buf)
            #expect(IPv6Repr(parsing: p) == IPv6Repr(source: a, destination: b, nextHeader: .icmpv6,
                                                     payloadLength: 64, hopLimit: 64, trafficClass: 0,
                                                     flowLabel: 0x8_ff07))
        }
    }

    @Test func protocolNames() {
        #expect(IPProtocol.hopByHopOptions.rawValue == 0 && IPProtocol.ipv6Routing.rawValue == 43)
        #expect(IPProtocol.ipv6Fragment.rawValue == 44 && IPProtocol.icmpv6.rawValue == 58)
        #expect(IPProtocol.ipv6NoNextHeader.rawValue == 59 && IPProtocol.ipv6DestinationOptions.rawValue == 60)
        #expect([IPProtocol.hopByHopOptions, .ipv6Routing, .ipv6Fragment, .icmpv6, .ipv6NoNextHeader,
                 .ipv6DestinationOptions, .tcp, IPProtocol(rawValue: 253)].map(\.description)
                == ["IPv6-HopByHop", "IPv6-Route", "IPv6-Frag", "ICMPv6", "IPv6-NoNxt", "IPv6-Opts", "TCP", "253"])
    }
}
