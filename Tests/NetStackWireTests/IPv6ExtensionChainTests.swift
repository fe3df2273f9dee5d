import Testing
@testable import NetStackWire

/// A Hop-by-Hop, Routing or Destination Options header built by hand: next
/// header, Hdr Ext Len (8-byte units after the first 8), the rest.
func extensionHeader(_ next: UInt8, _ body: [UInt8]) -> [UInt8] {
    precondition((2 + body.count) % 8 == 0, "extension headers are multiples of 8 bytes")
    return [next, UInt8((2 + body.count) / 8 - 1)] + body
}

/// A Fragment header built by hand (RFC 8200 4.5).
func fragmentHeader(_ next: UInt8, offset: Int, more: Bool, id: UInt32, reservedBits: UInt16 = 0) -> [UInt8] {
    [next, 0] + be16(UInt16(offset) | reservedBits | (more ? 1 : 0)) + be32(id)
}

/// Options that pad a Destination Options header to 8 bytes: one PadN of 4 zeros.
let padN4: [UInt8] = [1, 4, 0, 0, 0, 0]
let udpStub: [UInt8] = [0x9c, 0x40, 0x00, 0x09, 0x00, 0x08, 0x00, 0x00]

/// Walks the chain of a packet whose fixed header names `first` and whose
/// payload is `chain`, as the stack does from the fixed header.
private func walk(_ first: UInt8, _ chain: [UInt8], multicast: Bool = false, hopByHopAllowed: Bool = true,
                  atomic: Bool = false) -> IPv6ChainEnd {
    let destination = multicast ? IPv6Address.allNodes : Capture.ip6B
    var packet = ipv6Header(payloadLength: chain.count, nextHeader: first, source: Capture.ip6A,
                            destination: destination) + chain
    return packet.withUnsafeMutableBytes { buf in
        let p = try! IPv6Packet(validating: buf)
        let end = IPv6ExtensionChain.walk(p.bytes, firstNextHeader: p.nextHeader, nextHeaderField: 6, from: 40,
                                          destinationIsMulticast: p.destination.isMulticast,
                                          hopByHopAllowed: hopByHopAllowed, continueAfterAtomicFragments: atomic)
        if hopByHopAllowed {
            // The convenience over the view walks the same way.
            #expect(IPv6ExtensionChain.walk(p, continueAfterAtomicFragments: atomic) == end)
        }
        return end
    }
}

@Suite struct IPv6ExtensionChainTests {
    // MARK: Ends of the chain

    @Test func noExtensionHeaders() {
        #expect(walk(17, udpStub) == .upperLayer(.udp, offset: 40, nextHeaderField: 6))
        #expect(walk(6, []) == .upperLayer(.tcp, offset: 40, nextHeaderField: 6))  // the stack checks its own length
        #expect(walk(59, []) == .noNextHeader)
        #expect(walk(59, [1, 2, 3]) == .noNextHeader)  // bytes after No Next Header are ignored (RFC 8200 4.7)
        // Anything else is the upper layer, for the stack to accept or answer with code 1.
        #expect(walk(253, udpStub) == .upperLayer(IPProtocol(rawValue: 253), offset: 40, nextHeaderField: 6))
        #expect(walk(50, udpStub) == .upperLayer(IPProtocol(rawValue: 50), offset: 40, nextHeaderField: 6))
    }

    @Test func optionsHeadersAreSteppedOver() {
        #expect(walk(0, extensionHeader(17, padN4) + udpStub) == .upperLayer(.udp, offset: 48, nextHeaderField: 40))
        #expect(walk(60, extensionHeader(58, padN4) + udpStub) == .upperLayer(.icmpv6, offset: 48, nextHeaderField: 40))
        // Hop-by-Hop, Destination, Routing (none left), Destination: each names the next.
        let chain = extensionHeader(60, padN4) + extensionHeader(43, padN4)
            + extensionHeader(60, [0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 16)) + extensionHeader(6, padN4)
        #expect(walk(0, chain + udpStub) == .upperLayer(.tcp, offset: 88, nextHeaderField: 80))
        #expect(walk(60, extensionHeader(59, padN4)) == .noNextHeader)
        // A longer header: Hdr Ext Len 2 is 24 bytes.
        let long = extensionHeader(17, [1, 20] + [UInt8](repeating: 0, count: 20))
        #expect(long.count == 24)
        #expect(walk(60, long + udpStub) == .discard(.badPadding))  // 22 bytes of padding is not padding
        let longOptions = extensionHeader(17, [0x1e, 14] + [UInt8](repeating: 7, count: 14) + padN4)
        #expect(walk(60, longOptions + udpStub) == .upperLayer(.udp, offset: 64, nextHeaderField: 40))
    }

    // MARK: Hop-by-Hop only first (RFC 8200 4.1)

    @Test func hopByHopAnywhereButFirstIsAnUnrecognizedNextHeader() {
        #expect(walk(60, extensionHeader(0, padN4) + extensionHeader(17, padN4) + udpStub)
                == .parameterProblem(code: 1, pointer: 40))
        #expect(walk(0, extensionHeader(0, padN4) + extensionHeader(17, padN4) + udpStub)
                == .parameterProblem(code: 1, pointer: 40))
        // After a fragment header, walked on after reassembly.
        #expect(walk(44, fragmentHeader(0, offset: 0, more: false, id: 1) + extensionHeader(17, padN4) + udpStub,
                     atomic: true) == .parameterProblem(code: 1, pointer: 40))
        // Not from the fixed header: even the first is refused, pointing at the field that named it.
        #expect(walk(0, extensionHeader(17, padN4) + udpStub, hopByHopAllowed: false)
                == .parameterProblem(code: 1, pointer: 6))
    }

    // MARK: Options (RFC 8200 4.2)

    /// The two high bits of an unknown option's type say what to do.
    /// (option type, the end for a unicast destination, for a multicast one)
    static let optionActions: [(UInt8, IPv6ChainEnd, IPv6ChainEnd)] = {
        let skipped = IPv6ChainEnd.upperLayer(.udp, offset: 48, nextHeaderField: 40)
        let problem = IPv6ChainEnd.parameterProblem(code: 2, pointer: 42)
        let dropped = IPv6ChainEnd.discard(.unknownOption)
        return [
            (0x1e, skipped, skipped), (0x5e, dropped, dropped), (0x9e, problem, problem), (0xde, problem, dropped),
            // The third bit (may change en route) makes no difference.
            (0x3e, skipped, skipped), (0x7e, dropped, dropped), (0xbe, problem, problem), (0xfe, problem, dropped),
        ]
    }()

    /// The two high bits of an unknown option's type say what to do.
    @Test(arguments: optionActions)
    func unknownOptionActions(_ type: UInt8, _ unicast: IPv6ChainEnd, _ multicast: IPv6ChainEnd) {
        for first: UInt8 in [0, 60] {
            let chain = extensionHeader(17, [type, 2, 0xaa, 0xbb, 1, 0]) + udpStub
            #expect(walk(first, chain) == unicast, "type \(type) in \(first)")
            #expect(walk(first, chain, multicast: true) == multicast, "type \(type) in \(first), multicast")
        }
    }

    @Test func pointerIsTheOptionTypeByteInThePacket() {
        // Pad1, Pad1, then the option: at 40 + 2 + 2.
        #expect(walk(60, extensionHeader(17, [0, 0, 0x9e, 0, 1, 0]) + udpStub) == .parameterProblem(code: 2, pointer: 44))
        // In the second options header, after a known-skippable option.
        let chain = extensionHeader(60, padN4) + extensionHeader(17, [0x1e, 0, 0xde, 0, 0, 0]) + udpStub
        #expect(walk(0, chain) == .parameterProblem(code: 2, pointer: 52))
        // The first unknown option decides; later ones are not looked at.
        #expect(walk(60, extensionHeader(17, [0x5e, 0, 0x9e, 0, 0, 0]) + udpStub) == .discard(.unknownOption))
        #expect(walk(60, extensionHeader(17, [0x9e, 0, 0x5e, 0, 0, 0]) + udpStub) == .parameterProblem(code: 2, pointer: 42))
    }

    @Test func optionRunningPastItsHeaderIsDropped() {
        // Claims 5 bytes of data where 4 remain.
        #expect(walk(60, extensionHeader(17, [0x1e, 5, 0, 0, 0, 0]) + udpStub) == .discard(.badOption))
        // A type byte with no room for its length.
        #expect(walk(60, extensionHeader(17, [1, 3, 0, 0, 0, 0x1e]) + udpStub) == .discard(.badOption))
        // Even a PadN.
        #expect(walk(0, extensionHeader(17, [1, 5, 0, 0, 0, 0]) + udpStub) == .discard(.badOption))
        // Running past the header but not the packet is still past the header.
        #expect(walk(60, extensionHeader(17, [0x1e, 10, 0, 0, 0, 0]) + udpStub + udpStub) == .discard(.badOption))
    }

    /// RFC 4942 2.1.9.5 (and Linux): padding is at most 7 bytes in a row,
    /// PadN carries zeros.
    @Test func paddingRules() {
        #expect(walk(60, extensionHeader(17, [0, 0, 0, 0, 0, 0]) + udpStub) == .upperLayer(.udp, offset: 48, nextHeaderField: 40))
        #expect(walk(60, extensionHeader(17, [0, 1, 3, 0, 0, 0]) + udpStub) == .upperLayer(.udp, offset: 48, nextHeaderField: 40))
        // Two bytes of padding and a PadN of 6 before an option: 8 in a row.
        let eight = extensionHeader(17, [0, 0, 1, 4, 0, 0, 0, 0, 0x1e, 4, 0, 0, 0, 0])
        #expect(walk(60, eight + udpStub) == .discard(.badPadding))
        // Fourteen Pad1.
        #expect(walk(60, extensionHeader(17, [UInt8](repeating: 0, count: 14)) + udpStub) == .discard(.badPadding))
        // A PadN of 8.
        #expect(walk(60, extensionHeader(17, [1, 6, 0, 0, 0, 0, 0, 0, 0x1e, 2, 0, 0, 1, 0]) + udpStub) == .discard(.badPadding))
        // An option between two runs of padding resets the count.
        let split = extensionHeader(17, [1, 4, 0, 0, 0, 0, 0x1e, 0, 1, 4, 0, 0, 0, 0])
        #expect(walk(60, split + udpStub) == .upperLayer(.udp, offset: 56, nextHeaderField: 40))
        // PadN with anything but zeros.
        #expect(walk(60, extensionHeader(17, [1, 4, 0, 1, 0, 0]) + udpStub) == .discard(.badPadding))
        #expect(walk(0, extensionHeader(17, [1, 4, 0, 0, 0, 0x80]) + udpStub) == .discard(.badPadding))
    }

    // MARK: Routing (RFC 8200 4.4, RFC 5095)

    private func routing(_ next: UInt8, type: UInt8, segmentsLeft: UInt8) -> [UInt8] {
        extensionHeader(next, [type, segmentsLeft, 0, 0, 0, 0] + bytes(Capture.ip6B))
    }

    @Test(arguments: [UInt8(0), 2, 3, 4, 253, 255])
    func routingWithSegmentsLeftIsAnErroneousField(_ type: UInt8) {
        #expect(walk(43, routing(17, type: type, segmentsLeft: 1) + udpStub) == .parameterProblem(code: 0, pointer: 42))
        #expect(walk(43, routing(17, type: type, segmentsLeft: 255) + udpStub) == .parameterProblem(code: 0, pointer: 42))
        // After a Destination Options header: the type byte of the second header.
        #expect(walk(60, extensionHeader(43, padN4) + routing(17, type: type, segmentsLeft: 2) + udpStub)
                == .parameterProblem(code: 0, pointer: 50))
    }

    @Test(arguments: [UInt8(0), 2, 4, 255])
    func routingWithNoSegmentsLeftIsIgnored(_ type: UInt8) {
        #expect(walk(43, routing(17, type: type, segmentsLeft: 0) + udpStub) == .upperLayer(.udp, offset: 64, nextHeaderField: 40))
        #expect(walk(0, extensionHeader(43, padN4) + routing(58, type: type, segmentsLeft: 0) + udpStub)
                == .upperLayer(.icmpv6, offset: 72, nextHeaderField: 48))
    }

    // MARK: Fragment (RFC 8200 4.5, RFC 6946)

    @Test func walkStopsAtAFragmentHeader() {
        let first = fragmentHeader(17, offset: 0, more: true, id: 7) + udpStub
        #expect(walk(44, first) == .fragment(headerOffset: 40, nextHeaderField: 6))
        #expect(walk(44, first, atomic: true) == .fragment(headerOffset: 40, nextHeaderField: 6))
        let later = fragmentHeader(17, offset: 1232, more: false, id: 7) + udpStub
        #expect(walk(44, later, atomic: true) == .fragment(headerOffset: 40, nextHeaderField: 6))
        // After the per-fragment headers.
        let chain = extensionHeader(43, padN4) + routing(44, type: 0, segmentsLeft: 0) + fragmentHeader(17, offset: 8, more: true, id: 1)
        #expect(walk(0, chain + udpStub) == .fragment(headerOffset: 72, nextHeaderField: 48))
    }

    @Test func atomicFragmentsAreSteppedOverWhenAsked() {
        let atomic = fragmentHeader(17, offset: 0, more: false, id: 0x6e657473) + udpStub
        #expect(walk(44, atomic) == .fragment(headerOffset: 40, nextHeaderField: 6))
        #expect(walk(44, atomic, atomic: true) == .upperLayer(.udp, offset: 48, nextHeaderField: 40))
        // Reserved bits do not make it less atomic.
        let reserved = fragmentHeader(60, offset: 0, more: false, id: 1, reservedBits: 6) + extensionHeader(17, padN4) + udpStub
        #expect(walk(44, reserved, atomic: true) == .upperLayer(.udp, offset: 56, nextHeaderField: 48))
        // Or the stack walks on itself from after it, with the fragment header's next header.
        var packet = ipv6Header(payloadLength: atomic.count, nextHeader: 44, source: Capture.ip6A,
                                destination: Capture.ip6B) + atomic
        let end = packet.withUnsafeMutableBytes { buf -> IPv6ChainEnd in
            guard case .fragment(let at, _) = IPv6ExtensionChain.walk(try! IPv6Packet(validating: buf)) else {
                return .noNextHeader
            }
            let f = try! IPv6FragmentHeader(validating: buf.slice(at..<buf.count))
            #expect(f.isAtomic)
            return IPv6ExtensionChain.walk(buf, firstNextHeader: f.nextHeader, nextHeaderField: at, from: at + 8,
                                           destinationIsMulticast: false, hopByHopAllowed: false)
        }
        #expect(end == .upperLayer(.udp, offset: 48, nextHeaderField: 40))
    }

    // MARK: Bounds

    @Test func headersRunningPastThePacketAreTruncated() {
        // Hdr Ext Len 1 (16 bytes) with 8 in the packet.
        #expect(walk(60, [17, 1] + padN4) == .discard(.truncated))
        #expect(walk(0, [17, 1] + padN4) == .discard(.truncated))
        #expect(walk(43, [17, 2, 0, 1, 0, 0, 0, 0]) == .discard(.truncated))
        // Nothing, or one byte, where a header should start.
        for first: UInt8 in [0, 43, 44, 60] {
            #expect(walk(first, []) == .discard(.truncated), "\(first)")
            #expect(walk(first, [17]) == .discard(.truncated), "\(first)")
        }
        // A fragment header cut short.
        #expect(walk(44, [17, 0, 0, 0, 0, 0, 0]) == .discard(.truncated))
        #expect(walk(60, extensionHeader(44, padN4) + [17, 0, 0, 0]) == .discard(.truncated))
        // The second header of a chain.
        #expect(walk(60, extensionHeader(60, padN4) + [17, 0, 1, 4]) == .discard(.truncated))
    }

    @Test func chainLengthIsBounded() {
        func destinations(_ n: Int, last: UInt8) -> [UInt8] {
            (0..<n).flatMap { extensionHeader($0 == n - 1 ? last : 60, padN4) }
        }
        #expect(IPv6ExtensionChain.maximumHeaders == 8)
        #expect(walk(60, destinations(8, last: 17) + udpStub) == .upperLayer(.udp, offset: 104, nextHeaderField: 96))
        #expect(walk(60, destinations(9, last: 17) + udpStub) == .discard(.tooManyHeaders))
        #expect(walk(60, destinations(8, last: 59)) == .noNextHeader)
        // A fragment header counts: the ninth.
        #expect(walk(60, destinations(8, last: 44) + fragmentHeader(17, offset: 0, more: true, id: 1) + udpStub)
                == .discard(.tooManyHeaders))
        #expect(walk(60, destinations(7, last: 44) + fragmentHeader(17, offset: 0, more: false, id: 1) + udpStub,
                     atomic: true) == .upperLayer(.udp, offset: 104, nextHeaderField: 96))
        #expect(walk(60, destinations(8, last: 44) + fragmentHeader(17, offset: 0, more: false, id: 1) + udpStub,
                     atomic: true) == .discard(.tooManyHeaders))
        // Hop-by-Hop first, then eight more.
        #expect(walk(0, extensionHeader(60, padN4) + destinations(8, last: 17) + udpStub) == .discard(.tooManyHeaders))
    }

    /// A reassembled datagram laid out as a packet: the walk starts after the
    /// fragment header, with offsets still counted from the fixed header.
    @Test func walkFromAnOffset() {
        var packet = ipv6Header(payloadLength: 0, nextHeader: 44, source: Capture.ip6A, destination: Capture.ip6B)
            + fragmentHeader(60, offset: 0, more: true, id: 9) + extensionHeader(17, [0x9e, 0, 0, 0, 0, 0]) + udpStub
        packet.replaceSubrange(4..<6, with: be16(UInt16(packet.count - 40)))
        let end = packet.withUnsafeMutableBytes { buf in
            IPv6ExtensionChain.walk(buf, firstNextHeader: .ipv6DestinationOptions, nextHeaderField: 40, from: 48,
                                    destinationIsMulticast: false, hopByHopAllowed: false)
        }
        #expect(end == .parameterProblem(code: 2, pointer: 50))
    }

    // MARK: The Fragment header itself

    @Test func fragmentHeaderView() throws {
        var bytes = hex("11 ff 0b59 12345678") + [0xee]
        try bytes.withUnsafeMutableBytes { buf in
            let f = try IPv6FragmentHeader(validating: buf)
            #expect(f.bytes.count == 8)
            #expect(f.nextHeader == .udp)
            #expect(f.fragmentOffset == 0x0b58)  // 363 units of 8
            #expect(f.moreFragments)
            #expect(f.identification == 0x1234_5678)
            #expect(!f.isAtomic)
            #expect(IPv6FragmentRepr(parsing: f) == IPv6FragmentRepr(nextHeader: .udp, fragmentOffset: 2904,
                                                                     moreFragments: true, identification: 0x1234_5678))
        }
        for n in 0..<8 { #expect(wireError(Array(bytes[0..<n]), as: IPv6FragmentHeader.self) == .truncated) }
        // Atomic: offset 0, M clear, whatever the reserved bits.
        for (field, atomic) in [(0x0000, true), (0x0006, true), (0x0001, false), (0x0008, false), (0xfff8, false)] {
            var h = fragmentHeader(6, offset: 0, more: false, id: 1)
            h.replaceSubrange(2..<4, with: be16(UInt16(field)))
            h.withUnsafeMutableBytes { #expect(try! IPv6FragmentHeader(validating: $0).isAtomic == atomic, "\(field)") }
        }
    }

    @Test func fragmentReprEmitsZeroReservedFields() throws {
        let repr = IPv6FragmentRepr(nextHeader: .tcp, fragmentOffset: 65528, moreFragments: false, identification: 0xdead_beef)
        var out = [UInt8](repeating: 0xff, count: 8)
        out.withUnsafeMutableBytes { repr.emit(into: $0) }
        #expect(out == hex("06 00 fff8 deadbeef"))
        let more = IPv6FragmentRepr(nextHeader: .udp, fragmentOffset: 1232, moreFragments: true, identification: 1)
        out.withUnsafeMutableBytes { more.emit(into: $0) }
        #expect(out == fragmentHeader(17, offset: 1232, more: true, id: 1))
        let again = try out.withUnsafeMutableBytes { IPv6FragmentRepr(parsing: try IPv6FragmentHeader(validating: $0)) }
        #expect(again == more)
    }
}
