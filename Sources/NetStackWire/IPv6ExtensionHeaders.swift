/// A view of an IPv6 Fragment header in place (RFC 8200 4.5): next header,
/// a reserved byte, the offset in 8-byte units with the M flag, and the
/// identification. Reserved bits are ignored on receipt.
public struct IPv6FragmentHeader {
    /// The 8 bytes of the header.
    public let bytes: UnsafeMutableRawBufferPointer

    public static var length: Int { 8 }

    @inlinable
    public init(validating buffer: UnsafeMutableRawBufferPointer) throws(WireError) {
        guard buffer.count >= Self.length else { throw .truncated }
        bytes = buffer.slice(0..<Self.length)
    }

    @inlinable init(unchecked bytes: UnsafeMutableRawBufferPointer) { self.bytes = bytes }

    /// The header after the fragmentable part, in the first fragment the one
    /// reassembly keeps (RFC 8200 4.5: only offset zero's value is used).
    @inlinable public var nextHeader: IPProtocol { IPProtocol(rawValue: bytes.u8(0)) }
    /// The offset in bytes (the field counts 8-byte units).
    @inlinable public var fragmentOffset: Int { Int(bytes.be16(2) & 0xfff8) }
    /// M: more fragments follow.
    @inlinable public var moreFragments: Bool { bytes.be16(2) & 1 != 0 }
    @inlinable public var identification: UInt32 { bytes.be32(4) }
    /// Offset zero and M clear: the whole datagram in one fragment, which is
    /// processed on its own, never with other fragments (RFC 6946 4).
    @inlinable public var isAtomic: Bool { bytes.be16(2) & 0xfff9 == 0 }
}

/// A Fragment header as a plain value, for the stack's own fragmentation.
public struct IPv6FragmentRepr: Equatable, Sendable {
    public var nextHeader: IPProtocol
    /// In bytes; a multiple of 8.
    public var fragmentOffset: Int
    public var moreFragments: Bool
    public var identification: UInt32

    public static var length: Int { 8 }

    public init(nextHeader: IPProtocol, fragmentOffset: Int, moreFragments: Bool, identification: UInt32) {
        self.nextHeader = nextHeader
        self.fragmentOffset = fragmentOffset
        self.moreFragments = moreFragments
        self.identification = identification
    }

    public init(parsing h: IPv6FragmentHeader) {
        self.init(nextHeader: h.nextHeader, fragmentOffset: h.fragmentOffset, moreFragments: h.moreFragments,
                  identification: h.identification)
    }

    /// Writes the 8 bytes, reserved fields zero (RFC 8200 4.5).
    @inlinable
    public func emit(into bytes: UnsafeMutableRawBufferPointer) {
        precondition(bytes.count >= Self.length, "buffer shorter than the header")
        precondition((0...0xfff8).contains(fragmentOffset) && fragmentOffset % 8 == 0,
                     "fragment offset must be a multiple of 8 that fits 13 bits")
        bytes.setU8(0, nextHeader.rawValue)
        bytes.setU8(1, 0)
        bytes.setBE16(2, UInt16(fragmentOffset) | (moreFragments ? 1 : 0))
        bytes.setBE32(4, identification)
    }
}

/// Why a walk of the extension header chain dropped a packet without an
/// answer. Each case is a drop reason the stack counts.
public enum IPv6ChainDrop: Equatable, Sendable {
    /// An extension header runs past the end of the packet.
    case truncated
    /// An option runs past the end of its header (RFC 8200 4.2).
    case badOption
    /// Padding that does not only pad: more than 7 bytes of it in a row, or a
    /// PadN whose bytes are not zero (RFC 4942 2.1.9.5; Linux drops both).
    case badPadding
    /// An unknown option whose type says to discard silently: action 01, or
    /// action 11 with a multicast destination (RFC 8200 4.2).
    case unknownOption
    /// More than `IPv6ExtensionChain.maximumHeaders` extension headers.
    case tooManyHeaders
}

/// Where a walk of the extension header chain stopped.
public enum IPv6ChainEnd: Equatable, Sendable {
    /// The first header that is not an extension header the walk handles (TCP,
    /// UDP, ICMPv6, or something the stack may not know: it answers those with
    /// a parameter problem, code 1, pointing at `nextHeaderField`). `offset` is
    /// where that header starts in the packet.
    case upperLayer(IPProtocol, offset: Int, nextHeaderField: Int)
    /// Next Header 59: nothing follows (RFC 8200 4.7).
    case noNextHeader
    /// A Fragment header starts at `headerOffset` (8 bytes, within the
    /// packet): the rest of the chain is walked after reassembly.
    /// `nextHeaderField` is the offset of the field that named it, which
    /// reassembly sets to the Fragment header's next header (RFC 8200 4.5).
    case fragment(headerOffset: Int, nextHeaderField: Int)
    /// Drop the packet and answer with an ICMPv6 parameter problem (RFC 4443
    /// 3.4) of this code, pointing at this packet offset.
    case parameterProblem(code: UInt8, pointer: Int)
    /// Drop the packet without an answer.
    case discard(IPv6ChainDrop)
}

/// The extension header chain of RFC 8200 4, walked as a host that never
/// forwards: Hop-by-Hop and Destination options are checked option by option,
/// a Routing header with segments left is refused, and the walk stops at a
/// Fragment header or the upper layer. Every length is checked before it is
/// used; the walk only reads.
public enum IPv6ExtensionChain {
    /// A bound on the chain's length. RFC 8200 4.1 sets none, but a chain of
    /// eight covers every legitimate use (each header at most once, the
    /// Destination Options header twice) and stops a packet that is nothing
    /// but small headers from costing a walk of hundreds.
    public static let maximumHeaders = 8

    /// Walks the chain of `packet` from `offset`, where the header that
    /// `firstNextHeader` names starts; that value lies at `nextHeaderField`.
    ///
    /// `packet` is the whole IPv6 packet, fixed header included (cut to its
    /// payload length), so that offsets and pointers are packet offsets; a
    /// reassembled datagram is laid out the same way. `hopByHopAllowed` is
    /// true only when walking from the fixed header: anywhere else a Hop-by-Hop
    /// header is an unrecognised next header (RFC 8200 4.1). With
    /// `continueAfterAtomicFragments`, an atomic fragment (offset 0, M clear,
    /// RFC 6946) is stepped over instead of ending the walk; otherwise the
    /// stack may call `walk` again from `headerOffset + 8` for it.
    public static func walk(_ packet: UnsafeMutableRawBufferPointer, firstNextHeader: IPProtocol,
                            nextHeaderField: Int, from offset: Int, destinationIsMulticast: Bool,
                            hopByHopAllowed: Bool, continueAfterAtomicFragments: Bool = false) -> IPv6ChainEnd {
        precondition(0 <= nextHeaderField && nextHeaderField < offset && offset <= packet.count,
                     "offsets outside the packet")
        var next = firstNextHeader
        var field = nextHeaderField
        var at = offset
        var count = 0
        while true {
            switch next {
            case .hopByHopOptions, .ipv6DestinationOptions, .ipv6Routing, .ipv6Fragment:
                break
            case .ipv6NoNextHeader:
                return .noNextHeader
            default:
                return .upperLayer(next, offset: at, nextHeaderField: field)
            }
            count += 1
            guard count <= maximumHeaders else { return .discard(.tooManyHeaders) }
            if next == .hopByHopOptions && !(hopByHopAllowed && count == 1) {
                return .parameterProblem(code: ICMPv6ParameterProblem.unrecognizedNextHeader, pointer: field)
            }

            let length: Int
            if next == .ipv6Fragment {
                length = IPv6FragmentHeader.length
                guard at + length <= packet.count else { return .discard(.truncated) }
                let header = IPv6FragmentHeader(unchecked: packet.slice(at..<(at + length)))
                guard continueAfterAtomicFragments && header.isAtomic else {
                    return .fragment(headerOffset: at, nextHeaderField: field)
                }
            } else {
                // Hop-by-Hop, Routing, Destination: Hdr Ext Len counts 8-byte
                // units after the first 8 (RFC 8200 4.3, 4.4, 4.6).
                guard at + 2 <= packet.count else { return .discard(.truncated) }
                length = (Int(packet.u8(at + 1)) + 1) * 8
                guard at + length <= packet.count else { return .discard(.truncated) }
                if next == .ipv6Routing {
                    // A host forwards no segment: with segments left, every
                    // type is unknown to it, type 0 included (RFC 5095 3).
                    // With none left the header is ignored (RFC 8200 4.4).
                    if packet.u8(at + 3) != 0 {
                        return .parameterProblem(code: ICMPv6ParameterProblem.erroneousHeaderField, pointer: at + 2)
                    }
                } else if let end = walkOptions(packet, from: at + 2, to: at + length,
                                                destinationIsMulticast: destinationIsMulticast) {
                    return end
                }
            }
            field = at
            next = IPProtocol(rawValue: packet.u8(at))
            at += length
        }
    }

    /// `walk` from the fixed header of `packet`.
    public static func walk(_ packet: IPv6Packet, continueAfterAtomicFragments: Bool = false) -> IPv6ChainEnd {
        walk(packet.bytes, firstNextHeader: packet.nextHeader, nextHeaderField: 6, from: IPv6Packet.headerLength,
             destinationIsMulticast: packet.destination.isMulticast, hopByHopAllowed: true,
             continueAfterAtomicFragments: continueAfterAtomicFragments)
    }

    /// The TLV options of a Hop-by-Hop or Destination Options header in
    /// `start..<end` (RFC 8200 4.2). Nil when all of them may be skipped.
    /// An unknown option's two high bits say what to do: 00 skip it, 01
    /// discard, 10 discard and send a parameter problem (code 2, pointing at
    /// the option type), 11 the same unless the destination was multicast.
    static func walkOptions(_ packet: UnsafeMutableRawBufferPointer, from start: Int, to end: Int,
                            destinationIsMulticast: Bool) -> IPv6ChainEnd? {
        var i = start
        var padding = 0
        while i < end {
            let type = packet.u8(i)
            if type == 0 {  // Pad1
                padding += 1
                guard padding <= 7 else { return .discard(.badPadding) }
                i += 1
                continue
            }
            guard i + 2 <= end else { return .discard(.badOption) }
            let optionLength = 2 + Int(packet.u8(i + 1))
            guard i + optionLength <= end else { return .discard(.badOption) }
            if type == 1 {  // PadN
                padding += optionLength
                guard padding <= 7 else { return .discard(.badPadding) }
                for j in (i + 2)..<(i + optionLength) where packet.u8(j) != 0 { return .discard(.badPadding) }
            } else {
                padding = 0
                switch type >> 6 {
                case 0b00:
                    break
                case 0b01:
                    return .discard(.unknownOption)
                case 0b10:
                    return .parameterProblem(code: ICMPv6ParameterProblem.unrecognizedOption, pointer: i)
                default:
                    if destinationIsMulticast { return .discard(.unknownOption) }
                    return .parameterProblem(code: ICMPv6ParameterProblem.unrecognizedOption, pointer: i)
                }
            }
            i += optionLength
        }
        return nil
    }
}
