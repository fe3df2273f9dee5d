import Testing
@testable import NetStackWire

/// An ICMPv6 message with its checksum over the RFC 8200 8.1 pseudo-header,
/// filled in by the reference implementation.
func icmpv6Message(type: UInt8, code: UInt8, rest: [UInt8], data: [UInt8],
                   source: IPv6Address, destination: IPv6Address) -> [UInt8] {
    precondition(rest.count == 4)
    var m = [type, code, 0, 0] + rest + data
    let c = referenceChecksum(pseudoHeader(source: source, destination: destination, nextHeader: 58, length: m.count) + m)
    m[2] = UInt8(c >> 8); m[3] = UInt8(c & 0xff)
    return m
}

/// The echo data `ping -6` sent in ping6.pcap: a 16-byte timestamp, then byte k = k.
let ping6Data = hex("ccff116b00000000 46e3080000000000") + (16..<56).map { UInt8($0) }

@Suite struct ICMPv6Tests {
    let a = Capture.ip6A, b = Capture.ip6B

    @Test func shortIsTruncated() {
        let m = icmpv6Message(type: 128, code: 0, rest: [0, 1, 0, 1], data: [], source: a, destination: b)
        for n in 0..<8 {
            #expect(wireError(Array(m[0..<n]), as: ICMPv6Packet.self) == .truncated, "length \(n)")
        }
        #expect(wireError(m, as: ICMPv6Packet.self) == nil)
    }

    /// Frame 1 of ping6.pcap: checksum 0x63c4, which tshark calls correct.
    @Test func kernelEchoRequestVerifies() throws {
        var m = hex("8000 63c4 359a 0001") + ping6Data
        try m.withUnsafeMutableBytes { buf in
            let p = try ICMPv6Packet(validating: buf)
            #expect(p.type == ICMPv6Type.echoRequest && p.code == 0 && !p.isError)
            #expect(p.checksum == 0x63c4)
            #expect(p.echoIdentifier == 0x359a && p.echoSequence == 1)
            #expect(p.data.array == ping6Data && buf.contains(p.data))
            #expect(p.body.count == 60 && Array(p.body[0..<4]) == [0x35, 0x9a, 0, 1])
            #expect(p.checksumIsValid(source: a, destination: b))
            #expect(p.checksumIsValid(source: b, destination: a))  // the sum does not see the order
            #expect(!p.checksumIsValid(source: a, destination: IPv6Address(0xfd00, 0, 0, 0, 0, 0, 0, 3)))
            #expect(ICMPv6Repr(parsing: p) == ICMPv6Repr(message: .echoRequest(identifier: 0x359a, sequence: 1),
                                                         dataLength: 56))
            p.checksum = 0
            p.fillChecksum(source: a, destination: b)
            #expect(p.checksum == 0x63c4)
            buf[20] ^= 0x10
            #expect(!p.checksumIsValid(source: a, destination: b))
        }
    }

    /// The reply Linux sent (frame 2, checksum 0x62c4), emitted from a value.
    @Test func echoReplyEmitsWhatTheKernelSent() {
        let reply = ICMPv6Repr(message: .echoReply(identifier: 0x359a, sequence: 1), dataLength: 56)
        var out = [UInt8](repeating: 0xa5, count: 8) + ping6Data
        out.withUnsafeMutableBytes { reply.emit(into: $0, source: b, destination: a) }
        #expect(out == hex("8100 62c4 359a 0001") + ping6Data)
        // In two pieces: the same header.
        var header = [UInt8](repeating: 0xa5, count: 8)
        ping6Data.withUnsafeBytes { data in
            header.withUnsafeMutableBytes { reply.emitHeader(into: $0, data: data, source: b, destination: a) }
        }
        #expect(header == Array(out[0..<8]))
    }

    /// Every message this value holds, emitted, equals the bytes built by hand,
    /// and parses back to itself.
    /// (message, type, code, the four bytes after the checksum)
    static let messages: [(ICMPv6Message, UInt8, UInt8, [UInt8])] = [
        (.echoRequest(identifier: 0x1234, sequence: 42), 128, 0, [0x12, 0x34, 0, 42]),
        (.echoReply(identifier: 0xffff, sequence: 0), 129, 0, [0xff, 0xff, 0, 0]),
        (.destinationUnreachable(code: ICMPv6Unreachable.port), 1, 4, [0, 0, 0, 0]),
        (.destinationUnreachable(code: ICMPv6Unreachable.noRoute), 1, 0, [0, 0, 0, 0]),
        (.packetTooBig(mtu: 1280), 2, 0, [0, 0, 0x05, 0x00]),
        (.packetTooBig(mtu: 0xdead_beef), 2, 0, [0xde, 0xad, 0xbe, 0xef]),
        (.timeExceeded(code: ICMPv6TimeExceeded.reassembly), 3, 1, [0, 0, 0, 0]),
        (.parameterProblem(code: ICMPv6ParameterProblem.unrecognizedOption, pointer: 42), 4, 2, [0, 0, 0, 42]),
        (.parameterProblem(code: 0, pointer: 0x0102_0304), 4, 0, [1, 2, 3, 4]),
    ]

    @Test(arguments: messages)
    func messagesEmitAndParse(_ message: ICMPv6Message, _ type: UInt8, _ code: UInt8, _ rest: [UInt8]) throws {
        for data in [[], [0x42], Array("odd-length data".utf8), [UInt8](repeating: 0x5a, count: 1232)] {
            let expected = icmpv6Message(type: type, code: code, rest: rest, data: data, source: a, destination: b)
            let repr = ICMPv6Repr(message: message, dataLength: data.count)
            #expect(repr.length == expected.count)
            var out = [UInt8](repeating: 0xa5, count: 8) + data
            out.withUnsafeMutableBytes { repr.emit(into: $0, source: a, destination: b) }
            #expect(out == expected)
            var header = [UInt8](repeating: 0, count: 8)
            data.withUnsafeBytes { d in header.withUnsafeMutableBytes { repr.emitHeader(into: $0, data: d, source: a, destination: b) } }
            #expect(header == Array(expected[0..<8]))
            let again = try out.withUnsafeMutableBytes { buf in
                let p = try ICMPv6Packet(validating: buf)
                #expect(p.checksumIsValid(source: a, destination: b))
                #expect(p.isError == message.isError && p.isError == (type < 128))
                return ICMPv6Repr(parsing: p)
            }
            #expect(again == repr)
        }
    }

    @Test func errorAccessors() throws {
        var ptb = icmpv6Message(type: 2, code: 0, rest: [0, 0, 0x05, 0xdc], data: [0x60], source: a, destination: b)
        try ptb.withUnsafeMutableBytes { buf in
            let p = try ICMPv6Packet(validating: buf)
            #expect(p.isError && p.mtu == 1500 && p.data.array == [0x60])
        }
        var problem = icmpv6Message(type: 4, code: 1, rest: [0, 0, 0, 6], data: [], source: a, destination: b)
        try problem.withUnsafeMutableBytes { buf in
            let p = try ICMPv6Packet(validating: buf)
            #expect(p.isError && p.pointer == 6 && p.data.isEmpty)
            #expect(ICMPv6Repr(parsing: p)?.message == .parameterProblem(code: 1, pointer: 6))
            p.code = 2
            p.type = 129
            #expect(buf[0] == 129 && buf[1] == 2)
        }
        // A packet too big's code is ignored on receipt (RFC 4443 3.2).
        var odd = icmpv6Message(type: 2, code: 7, rest: [0, 0, 0x05, 0x00], data: [], source: a, destination: b)
        let repr = try odd.withUnsafeMutableBytes { ICMPv6Repr(parsing: try ICMPv6Packet(validating: $0)) }
        #expect(repr == ICMPv6Repr(message: .packetTooBig(mtu: 1280), dataLength: 0))
    }

    /// Neighbour discovery, MLD, unknown types and echoes with a code are not
    /// RFC 4443 messages this value holds.
    static let otherMessages: [(UInt8, UInt8)] = [(133, 0), (134, 0), (135, 0), (136, 0), (137, 0), (130, 0), (143, 0),
                                                  (0, 0), (5, 0), (127, 0), (200, 0), (255, 0), (128, 1), (129, 255)]

    @Test(arguments: otherMessages)
    func otherMessagesDoNotParse(_ type: UInt8, _ code: UInt8) throws {
        var m = icmpv6Message(type: type, code: code, rest: [0, 0, 0, 0], data: [], source: a, destination: b)
        try m.withUnsafeMutableBytes { buf in
            let p = try ICMPv6Packet(validating: buf)
            #expect(ICMPv6Repr(parsing: p) == nil)
            #expect(p.isError == (type < 128))
        }
    }

    @Test func emitWritesOnlyLengthBytes() {
        let repr = ICMPv6Repr(message: .echoRequest(identifier: 7, sequence: 9), dataLength: 3)
        var out = [UInt8](repeating: 0, count: 8) + [1, 2, 3] + [0xee, 0xee]
        out.withUnsafeMutableBytes { repr.emit(into: $0, source: a, destination: b) }
        #expect(Array(out[0..<11]) == icmpv6Message(type: 128, code: 0, rest: [0, 7, 0, 9], data: [1, 2, 3],
                                                    source: a, destination: b))
        #expect(Array(out[11...]) == [0xee, 0xee])
    }

    @Test func constants() {
        #expect(ICMPv6Packet.errorQuoteLimit == 1232 && ICMPv6Repr.errorQuoteLimit == 1232)
        #expect([ICMPv6Type.destinationUnreachable, ICMPv6Type.packetTooBig, ICMPv6Type.timeExceeded,
                 ICMPv6Type.parameterProblem, ICMPv6Type.echoRequest, ICMPv6Type.echoReply,
                 ICMPv6Type.routerSolicitation, ICMPv6Type.routerAdvertisement, ICMPv6Type.neighborSolicitation,
                 ICMPv6Type.neighborAdvertisement, ICMPv6Type.redirect] == [1, 2, 3, 4, 128, 129, 133, 134, 135, 136, 137])
        #expect([ICMPv6Message.destinationUnreachableType, ICMPv6Message.packetTooBigType,
                 ICMPv6Message.timeExceededType, ICMPv6Message.parameterProblemType,
                 ICMPv6Message.echoRequestType, ICMPv6Message.echoReplyType] == [1, 2, 3, 4, 128, 129])
        #expect([ICMPv6Unreachable.noRoute, ICMPv6Unreachable.adminProhibited, ICMPv6Unreachable.beyondScope,
                 ICMPv6Unreachable.address, ICMPv6Unreachable.port] == [0, 1, 2, 3, 4])
        #expect([ICMPv6TimeExceeded.hopLimit, ICMPv6TimeExceeded.reassembly] == [0, 1])
        #expect([ICMPv6ParameterProblem.erroneousHeaderField, ICMPv6ParameterProblem.unrecognizedNextHeader,
                 ICMPv6ParameterProblem.unrecognizedOption, ICMPv6ParameterProblem.incompleteHeaderChain] == [0, 1, 2, 3])
    }
}
