// Neighbour discovery (RFC 4861 4): views of the messages a host receives,
// over the whole ICMPv6 message (type byte at 0), their options, and the
// messages a host sends.
//
// Each view checks its type, code 0 and fixed length, and that the options
// are well formed (RFC 4861 6.1.1, 6.1.2, 7.1.1, 7.1.2). What depends on
// the IPv6 header (hop limit 255, the checksum, the source and destination
// rules, a multicast target) the stack checks.

/// NDP option types (RFC 4861 4.6).
public enum NDPOptionType {
    @inlinable public static var sourceLinkLayerAddress: UInt8 { 1 }
    @inlinable public static var targetLinkLayerAddress: UInt8 { 2 }
    @inlinable public static var prefixInformation: UInt8 { 3 }
    @inlinable public static var redirectedHeader: UInt8 { 4 }
    @inlinable public static var mtu: UInt8 { 5 }
}

/// A Prefix Information option (RFC 4861 4.6.2), as a router advertises it
/// for on-link determination and address autoconfiguration (RFC 4862 5.5.3).
public struct NDPPrefixInformation: Equatable, Sendable {
    /// Leading bits of `prefix` that count (0 to 255 on the wire; above 128 is nonsense the stack ignores).
    public var prefixLength: Int
    /// L: the prefix is on-link.
    public var onLink: Bool
    /// A: the prefix may be used for stateless autoconfiguration.
    public var autonomous: Bool
    /// Seconds; all ones is infinity.
    public var validLifetime: UInt32
    /// Seconds; all ones is infinity.
    public var preferredLifetime: UInt32
    public var prefix: IPv6Address

    /// A lifetime of all ones (RFC 4861 4.6.2).
    public static var infiniteLifetime: UInt32 { 0xffff_ffff }

    public init(prefixLength: Int, onLink: Bool, autonomous: Bool, validLifetime: UInt32,
                preferredLifetime: UInt32, prefix: IPv6Address) {
        self.prefixLength = prefixLength
        self.onLink = onLink
        self.autonomous = autonomous
        self.validLifetime = validLifetime
        self.preferredLifetime = preferredLifetime
        self.prefix = prefix
    }
}

/// One NDP option. Options the stack does not read, and known ones of a
/// length other than their defined one (a link-layer address not 8 bytes
/// long is not Ethernet's, RFC 2464 8), are `.other`.
public enum NDPOption: Equatable, Sendable {
    case sourceLinkLayer(MACAddress)
    case targetLinkLayer(MACAddress)
    case prefixInformation(NDPPrefixInformation)
    case mtu(UInt32)
    case other(type: UInt8)
}

/// The options of an NDP message (RFC 4861 4.6): type, length in 8-byte
/// units, contents. Once validated, every option has a nonzero length and
/// lies within `bytes`, which they cover exactly.
public struct NDPOptions: Sequence {
    public let bytes: UnsafeMutableRawBufferPointer

    @inlinable
    public init(validating bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        try Self.validate(bytes)
        self.bytes = bytes
    }

    @inlinable init(unchecked bytes: UnsafeMutableRawBufferPointer) { self.bytes = bytes }

    /// Throws `.badOption` for an option of length zero (RFC 4861 4.6: the
    /// whole message is discarded) or one running past the end.
    @inlinable
    public static func validate(_ bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        var at = 0
        while at < bytes.count {
            guard at + 2 <= bytes.count else { throw .badOption }
            let length = Int(bytes.u8(at + 1)) * 8
            guard length > 0, at + length <= bytes.count else { throw .badOption }
            at += length
        }
    }

    public struct Iterator: IteratorProtocol {
        @usableFromInline let bytes: UnsafeMutableRawBufferPointer
        @usableFromInline var at = 0

        @inlinable init(_ bytes: UnsafeMutableRawBufferPointer) { self.bytes = bytes }

        @inlinable
        public mutating func next() -> NDPOption? {
            guard at < bytes.count else { return nil }
            let type = bytes.u8(at)
            let length = Int(bytes.u8(at + 1)) * 8
            let o = at
            at += length
            switch (type, length) {
            case (NDPOptionType.sourceLinkLayerAddress, 8):
                return .sourceLinkLayer(bytes.mac(o + 2))
            case (NDPOptionType.targetLinkLayerAddress, 8):
                return .targetLinkLayer(bytes.mac(o + 2))
            case (NDPOptionType.prefixInformation, 32):
                let flags = bytes.u8(o + 3)
                return .prefixInformation(NDPPrefixInformation(
                    prefixLength: Int(bytes.u8(o + 2)), onLink: flags & 0x80 != 0, autonomous: flags & 0x40 != 0,
                    validLifetime: bytes.be32(o + 4), preferredLifetime: bytes.be32(o + 8), prefix: bytes.ipv6(o + 16)))
            case (NDPOptionType.mtu, 8):
                return .mtu(bytes.be32(o + 4))
            default:
                return .other(type: type)
            }
        }
    }

    @inlinable public func makeIterator() -> Iterator { Iterator(bytes) }

    /// The first Source Link-Layer Address option's address.
    @inlinable public var sourceLinkLayerAddress: MACAddress? {
        for case .sourceLinkLayer(let mac) in self { return mac }
        return nil
    }

    /// The first Target Link-Layer Address option's address.
    @inlinable public var targetLinkLayerAddress: MACAddress? {
        for case .targetLinkLayer(let mac) in self { return mac }
        return nil
    }
}

/// The checks every NDP view shares: the fixed part is there, the type is the
/// view's, the code is 0, the options from `optionsOffset` are well formed.
@inlinable
func validateNDP(_ bytes: UnsafeMutableRawBufferPointer, type: UInt8, optionsOffset: Int) throws(WireError) {
    guard bytes.count >= optionsOffset else { throw .truncated }
    guard bytes.u8(0) == type, bytes.u8(1) == 0 else { throw .unsupported }
    try NDPOptions.validate(bytes.slice(optionsOffset..<bytes.count))
}

/// A Neighbor Solicitation (RFC 4861 4.3): who has `target`?
public struct NeighborSolicitation {
    public let bytes: UnsafeMutableRawBufferPointer

    public static var minimumLength: Int { 24 }

    @inlinable
    public init(validating bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        try validateNDP(bytes, type: ICMPv6Type.neighborSolicitation, optionsOffset: Self.minimumLength)
        self.bytes = bytes
    }

    @inlinable public var icmp: ICMPv6Packet { ICMPv6Packet(unchecked: bytes) }
    /// Never multicast in a valid solicitation (RFC 4861 7.1.1).
    @inlinable public var target: IPv6Address { bytes.ipv6(8) }
    @inlinable public var options: NDPOptions { NDPOptions(unchecked: bytes.slice(Self.minimumLength..<bytes.count)) }
    /// Absent when the source is unspecified (duplicate address detection, RFC 4861 7.1.1).
    @inlinable public var sourceLinkLayerAddress: MACAddress? { options.sourceLinkLayerAddress }
}

/// A Neighbor Advertisement (RFC 4861 4.4): `target` is at this link-layer address.
public struct NeighborAdvertisement {
    public let bytes: UnsafeMutableRawBufferPointer

    public static var minimumLength: Int { 24 }

    @inlinable
    public init(validating bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        try validateNDP(bytes, type: ICMPv6Type.neighborAdvertisement, optionsOffset: Self.minimumLength)
        self.bytes = bytes
    }

    @inlinable public var icmp: ICMPv6Packet { ICMPv6Packet(unchecked: bytes) }
    /// R: the sender is a router.
    @inlinable public var router: Bool { bytes.u8(4) & 0x80 != 0 }
    /// S: the answer to a solicitation (reachability confirmed, RFC 4861 7.2.5).
    @inlinable public var solicited: Bool { bytes.u8(4) & 0x40 != 0 }
    /// O: replace a cached link-layer address.
    @inlinable public var override: Bool { bytes.u8(4) & 0x20 != 0 }
    @inlinable public var target: IPv6Address { bytes.ipv6(8) }
    @inlinable public var options: NDPOptions { NDPOptions(unchecked: bytes.slice(Self.minimumLength..<bytes.count)) }
    @inlinable public var targetLinkLayerAddress: MACAddress? { options.targetLinkLayerAddress }
}

/// A Router Solicitation (RFC 4861 4.1).
public struct RouterSolicitation {
    public let bytes: UnsafeMutableRawBufferPointer

    public static var minimumLength: Int { 8 }

    @inlinable
    public init(validating bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        try validateNDP(bytes, type: ICMPv6Type.routerSolicitation, optionsOffset: Self.minimumLength)
        self.bytes = bytes
    }

    @inlinable public var icmp: ICMPv6Packet { ICMPv6Packet(unchecked: bytes) }
    @inlinable public var options: NDPOptions { NDPOptions(unchecked: bytes.slice(Self.minimumLength..<bytes.count)) }
    @inlinable public var sourceLinkLayerAddress: MACAddress? { options.sourceLinkLayerAddress }
}

/// A Router Advertisement (RFC 4861 4.2).
public struct RouterAdvertisement {
    public let bytes: UnsafeMutableRawBufferPointer

    public static var minimumLength: Int { 16 }

    @inlinable
    public init(validating bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        try validateNDP(bytes, type: ICMPv6Type.routerAdvertisement, optionsOffset: Self.minimumLength)
        self.bytes = bytes
    }

    @inlinable public var icmp: ICMPv6Packet { ICMPv6Packet(unchecked: bytes) }
    /// The hop limit to send with; 0 leaves it to the host.
    @inlinable public var curHopLimit: UInt8 { bytes.u8(4) }
    /// M: addresses come from DHCPv6.
    @inlinable public var managed: Bool { bytes.u8(5) & 0x80 != 0 }
    /// O: other configuration comes from DHCPv6.
    @inlinable public var other: Bool { bytes.u8(5) & 0x40 != 0 }
    /// Seconds the router may be a default router; 0: it is not one.
    @inlinable public var routerLifetime: UInt16 { bytes.be16(6) }
    /// Milliseconds; 0 leaves it to the host.
    @inlinable public var reachableTime: UInt32 { bytes.be32(8) }
    /// Milliseconds between solicitations; 0 leaves it to the host.
    @inlinable public var retransTimer: UInt32 { bytes.be32(12) }
    @inlinable public var options: NDPOptions { NDPOptions(unchecked: bytes.slice(Self.minimumLength..<bytes.count)) }
    @inlinable public var sourceLinkLayerAddress: MACAddress? { options.sourceLinkLayerAddress }
}

/// The neighbour discovery messages a host sends, as plain values. Each
/// emits the whole ICMPv6 message, its one link-layer address option
/// included, with its checksum.
public enum NDPRepr: Equatable, Sendable {
    /// Omit the address when the source is unspecified (RFC 4861 4.3).
    case neighborSolicitation(target: IPv6Address, sourceLinkLayer: MACAddress?)
    case neighborAdvertisement(target: IPv6Address, router: Bool, solicited: Bool, override: Bool,
                               targetLinkLayer: MACAddress?)
    case routerSolicitation(sourceLinkLayer: MACAddress?)

    public init(parsing m: NeighborSolicitation) {
        self = .neighborSolicitation(target: m.target, sourceLinkLayer: m.sourceLinkLayerAddress)
    }

    public init(parsing m: NeighborAdvertisement) {
        self = .neighborAdvertisement(target: m.target, router: m.router, solicited: m.solicited,
                                      override: m.override, targetLinkLayer: m.targetLinkLayerAddress)
    }

    public init(parsing m: RouterSolicitation) {
        self = .routerSolicitation(sourceLinkLayer: m.sourceLinkLayerAddress)
    }

    /// The fixed part and the link-layer address option, if any.
    private var parts: (fixed: Int, option: (type: UInt8, mac: MACAddress)?) {
        switch self {
        case let .neighborSolicitation(_, mac):
            (NeighborSolicitation.minimumLength, mac.map { (NDPOptionType.sourceLinkLayerAddress, $0) })
        case let .neighborAdvertisement(_, _, _, _, mac):
            (NeighborAdvertisement.minimumLength, mac.map { (NDPOptionType.targetLinkLayerAddress, $0) })
        case let .routerSolicitation(mac):
            (RouterSolicitation.minimumLength, mac.map { (NDPOptionType.sourceLinkLayerAddress, $0) })
        }
    }

    /// The ICMPv6 message's length.
    public var length: Int {
        let p = parts
        return p.fixed + (p.option == nil ? 0 : 8)
    }

    /// Writes the message (reserved fields zero) and its checksum over the
    /// pseudo-header of `source` and `destination` at the start of `bytes`.
    public func emit(into bytes: UnsafeMutableRawBufferPointer, source: IPv6Address, destination: IPv6Address) {
        let (fixed, option) = parts
        let n = length
        precondition(bytes.count >= n, "buffer shorter than the message")
        let out = bytes.slice(0..<n)
        out.setBE32(0, 0)
        out.setBE32(4, 0)
        switch self {
        case let .neighborSolicitation(target, _):
            out.setU8(0, ICMPv6Type.neighborSolicitation)
            out.setIPv6(8, target)
        case let .neighborAdvertisement(target, router, solicited, override, _):
            out.setU8(0, ICMPv6Type.neighborAdvertisement)
            out.setU8(4, (router ? 0x80 : 0) | (solicited ? 0x40 : 0) | (override ? 0x20 : 0))
            out.setIPv6(8, target)
        case .routerSolicitation:
            out.setU8(0, ICMPv6Type.routerSolicitation)
        }
        if let option {
            out.setU8(fixed, option.type)
            out.setU8(fixed + 1, 1)
            out.setMAC(fixed + 2, option.mac)
        }
        ICMPv6Packet(unchecked: out).fillChecksum(source: source, destination: destination)
    }
}
