import Testing
@testable import NetStackWire

/// An ICMP message: type, code, the four "rest of header" bytes, data, with
/// the checksum filled in by the reference implementation.
func icmpMessage(type: UInt8, code: UInt8, rest: [UInt8], data: [UInt8]) -> [UInt8] {
    precondition(rest.count == 4)
    var m = [type, code, 0, 0] + rest + data
    let c = referenceChecksum(m)
    m[2] = UInt8(c >> 8); m[3] = UInt8(c & 0xff)
    return m
}

private func parse(_ bytes: [UInt8]) throws -> (ICMPv4Repr, valid: Bool) {
    var copy = bytes
    return try copy.withUnsafeMutableBytes { buf in
        let p = try ICMPv4Packet(validating: buf)
        return (ICMPv4Repr(parsing: p), p.checksumIsValid)
    }
}

/// Emits `repr` over `data` already in place, as the stack does, and returns the bytes.
private func emit(_ repr: ICMPv4Repr, data: [UInt8]) -> [UInt8] {
    var bytes = [UInt8](repeating: 0xa5, count: 8) + data
    bytes.withUnsafeMutableBytes { repr.emit(into: $0) }
    return bytes
}

@Suite struct ICMPv4Tests {
    let pingData = Array("abcdefghijklmnopqrstuvwabcdefghi".utf8)  // Windows ping's 32 bytes

    @Test func shortIsTruncated() {
        let m = icmpMessage(type: 8, code: 0, rest: [0, 1, 0, 1], data: [])
        for n in 0..<8 {
            #expect(wireError(Array(m[0..<n]), as: ICMPv4Packet.self) == .truncated, "length \(n)")
        }
        #expect(wireError(m, as: ICMPv4Packet.self) == nil)
    }

    @Test func echoRequestParses() throws {
        let m = icmpMessage(type: 8, code: 0, rest: [0x12, 0x34, 0x00, 0x2a], data: pingData)
        var bytes = m
        try bytes.withUnsafeMutableBytes { buf in
            let p = try ICMPv4Packet(validating: buf)
            #expect(p.type == 8)
            #expect(p.code == 0)
            #expect(p.checksum == readBE16(m, 2))
            #expect(p.echoIdentifier == 0x1234)
            #expect(p.echoSequence == 42)
            #expect(p.data.array == pingData)
            #expect(p.checksumIsValid)
        }
        let (repr, valid) = try parse(m)
        #expect(valid)
        #expect(repr == ICMPv4Repr(message: .echoRequest(identifier: 0x1234, sequence: 42), dataLength: 32))
        #expect(repr.length == 40)
    }

    @Test func echoRequestAndReplyEmit() {
        let req = ICMPv4Repr(message: .echoRequest(identifier: 0x1234, sequence: 42), dataLength: pingData.count)
        #expect(emit(req, data: pingData) == icmpMessage(type: 8, code: 0, rest: [0x12, 0x34, 0x00, 0x2a], data: pingData))
        let reply = ICMPv4Repr(message: .echoReply(identifier: 0xffff, sequence: 0), dataLength: pingData.count)
        #expect(emit(reply, data: pingData) == icmpMessage(type: 0, code: 0, rest: [0xff, 0xff, 0x00, 0x00], data: pingData))
        // Odd-length data.
        let odd = Array(pingData[0..<7])
        let r = ICMPv4Repr(message: .echoRequest(identifier: 1, sequence: 2), dataLength: 7)
        #expect(emit(r, data: odd) == icmpMessage(type: 8, code: 0, rest: [0, 1, 0, 2], data: odd))
    }

    @Test func emitWritesOnlyLengthBytes() {
        // Bytes past `length` are not covered by the checksum and not touched.
        let repr = ICMPv4Repr(message: .echoReply(identifier: 7, sequence: 9), dataLength: 4)
        var bytes = [UInt8](repeating: 0, count: 8) + [1, 2, 3, 4] + [0xee, 0xee]
        bytes.withUnsafeMutableBytes { repr.emit(into: $0) }
        #expect(Array(bytes[0..<12]) == icmpMessage(type: 0, code: 0, rest: [0, 7, 0, 9], data: [1, 2, 3, 4]))
        #expect(Array(bytes[12...]) == [0xee, 0xee])
    }

    /// Answering an echo in place: type 8 -> 0 and an RFC 1624 checksum patch.
    @Test func echoReplyInPlaceWithIncrementalChecksum() throws {
        var bytes = icmpMessage(type: 8, code: 0, rest: [0xbe, 0xef, 0x00, 0x01], data: pingData)
        try bytes.withUnsafeMutableBytes { buf in
            let p = try ICMPv4Packet(validating: buf)
            p.checksum = InternetChecksum.update(p.checksum, old: UInt16(0x0800), new: UInt16(0x0000))
            p.type = 0
            #expect(p.checksumIsValid)
        }
        #expect(bytes == icmpMessage(type: 0, code: 0, rest: [0xbe, 0xef, 0x00, 0x01], data: pingData))
    }

    @Test func destinationUnreachablePortCarriesOriginalHeader() throws {
        // RFC 792 / RFC 1122 3.2.2: the original IP header and the first 8 bytes of its data.
        let udp = hex("9c40 0009 0008 0000")  // 40000 -> 9, no payload
        let original = ipv4Packet(payload: udp)
        let repr = ICMPv4Repr(message: .destinationUnreachable(.port), dataLength: original.count)
        let m = emit(repr, data: original)
        #expect(m == icmpMessage(type: 3, code: 3, rest: [0, 0, 0, 0], data: original))

        var bytes = m
        try bytes.withUnsafeMutableBytes { buf in
            let p = try ICMPv4Packet(validating: buf)
            #expect(p.checksumIsValid)
            #expect(ICMPv4Repr(parsing: p) == repr)
            let inner = try IPv4Packet(validating: p.data)
            #expect(inner.source == IPv4Address(10, 0, 0, 1))
            #expect(inner.destination == IPv4Address(10, 0, 0, 2))
            #expect(inner.protocol == .udp)
            #expect(inner.checksumIsValid)
            let quoted = try UDPDatagram(validating: inner.payload)
            #expect(quoted.sourcePort == 40000)
            #expect(quoted.destinationPort == 9)
        }
    }

    @Test func fragmentationNeededCarriesNextHopMTU() throws {
        // RFC 1191: the MTU is in the low 16 bits of the rest-of-header word.
        let original = ipv4Packet(payload: [1, 2, 3, 4, 5, 6, 7, 8])
        let repr = ICMPv4Repr(message: .destinationUnreachable(.fragmentationNeeded, nextHopMTU: 1400),
                              dataLength: original.count)
        let m = emit(repr, data: original)
        #expect(m == icmpMessage(type: 3, code: 4, rest: [0, 0, 0x05, 0x78], data: original))
        #expect(try parse(m).0 == repr)
    }

    @Test(arguments: [
        (UInt8(0), ICMPv4Message.DestinationUnreachable.network),
        (1, .host), (2, .protocol), (3, .port), (4, .fragmentationNeeded), (5, .sourceRouteFailed),
    ])
    func destinationUnreachableCodes(code: UInt8, expected: ICMPv4Message.DestinationUnreachable) throws {
        let m = icmpMessage(type: 3, code: code, rest: [0, 0, 0, 0], data: [])
        let (repr, valid) = try parse(m)
        #expect(valid)
        #expect(repr.message == .destinationUnreachable(expected, nextHopMTU: 0))
    }

    @Test func timeExceeded() throws {
        let original = ipv4Packet(payload: [1, 2, 3, 4, 5, 6, 7, 8])
        for code: UInt8 in [0, 1] {  // TTL exceeded in transit, reassembly time exceeded
            let m = icmpMessage(type: 11, code: code, rest: [0, 0, 0, 0], data: original)
            let (repr, valid) = try parse(m)
            #expect(valid)
            #expect(repr == ICMPv4Repr(message: .timeExceeded(code: code), dataLength: original.count))
            #expect(emit(repr, data: original) == m)
        }
    }

    @Test(arguments: [
        (UInt8(13), UInt8(0), [UInt8(0x00), 0x07, 0x00, 0x03]),  // timestamp request
        (5, 1, [10, 0, 0, 254]),                                  // redirect for host, gateway 10.0.0.254
        (3, 13, [0, 0, 0, 0]),                                    // unreachable, administratively prohibited
        (8, 1, [0, 1, 0, 1]),                                     // echo request with a nonzero code
        (0, 9, [0, 1, 0, 1]),                                     // echo reply with a nonzero code
        (200, 255, [0xde, 0xad, 0xbe, 0xef]),
    ])
    func unknownMessagesAreOther(type: UInt8, code: UInt8, rest: [UInt8]) throws {
        let data: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
        let m = icmpMessage(type: type, code: code, rest: rest, data: data)
        let (repr, valid) = try parse(m)
        #expect(valid)
        let restWord = UInt32(rest[0]) << 24 | UInt32(rest[1]) << 16 | UInt32(rest[2]) << 8 | UInt32(rest[3])
        #expect(repr == ICMPv4Repr(message: .other(type: type, code: code, rest: restWord), dataLength: 12))
        // .other round-trips byte for byte.
        #expect(emit(repr, data: data) == m)
    }

    @Test func badChecksumIsDetected() throws {
        let m = icmpMessage(type: 8, code: 0, rest: [0x12, 0x34, 0x00, 0x2a], data: pingData + [0x99])
        for byte in m.indices {
            for bit in 0..<8 {
                var bytes = m
                bytes[byte] ^= 1 << bit
                let (_, valid) = try parse(bytes)
                #expect(!valid, "byte \(byte) bit \(bit)")
            }
        }
        // A zero checksum field is not "no checksum" for ICMP.
        var zeroed = m
        zeroed[2] = 0; zeroed[3] = 0
        #expect(try parse(zeroed).valid == false)
    }

    @Test func fillChecksum() throws {
        var bytes = icmpMessage(type: 8, code: 0, rest: [0, 1, 0, 2], data: pingData)
        let expected = bytes
        bytes[2] = 0x12; bytes[3] = 0x34
        try bytes.withUnsafeMutableBytes { buf in
            let p = try ICMPv4Packet(validating: buf)
            #expect(!p.checksumIsValid)
            p.code = 0
            p.fillChecksum()
            #expect(p.checksumIsValid)
        }
        #expect(bytes == expected)
    }
}
