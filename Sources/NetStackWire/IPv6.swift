/// The IPv6 Next Header values (IANA "Assigned Internet Protocol Numbers";
/// RFC 8200 4 for the extension headers, RFC 4443 for ICMPv6).
extension IPProtocol {
    /// Hop-by-Hop Options header (RFC 8200 4.3); only right after the fixed header.
    @inlinable public static var hopByHopOptions: IPProtocol { IPProtocol(rawValue: 0) }
    /// Routing header (RFC 8200 4.4).
    @inlinable public static var ipv6Routing: IPProtocol { IPProtocol(rawValue: 43) }
    /// Fragment header (RFC 8200 4.5).
    @inlinable public static var ipv6Fragment: IPProtocol { IPProtocol(rawValue: 44) }
    /// ICMPv6 (RFC 4443).
    @inlinable public static var icmpv6: IPProtocol { IPProtocol(rawValue: 58) }
    /// Nothing follows (RFC 8200 4.7).
    @inlinable public static var ipv6NoNextHeader: IPProtocol { IPProtocol(rawValue: 59) }
    /// Destination Options header (RFC 8200 4.6).
    @inlinable public static var ipv6DestinationOptions: IPProtocol { IPProtocol(rawValue: 60) }
}

/// A view of an IPv6 packet in place (RFC 8200 3): the 40-byte fixed header,
/// then extension headers and the upper-layer payload (`IPv6ExtensionChain`
/// walks them).
///
/// Validation checks the version and that the payload length fits the
/// buffer. Bytes past it (Ethernet padding of short frames) are excluded from
/// `bytes` and `payload`. A payload length of zero with a Hop-by-Hop Jumbo
/// Payload option (RFC 2675) is not supported: such a packet is just its header.
public struct IPv6Packet {
    /// The packet up to 40 + its payload length (for a quoted packet, as much
    /// of that as was quoted).
    public let bytes: UnsafeMutableRawBufferPointer

    public static var headerLength: Int { 40 }

    @inlinable
    public init(validating buffer: UnsafeMutableRawBufferPointer) throws(WireError) {
        try Self.checkHeader(buffer)
        let total = Self.headerLength + Int(buffer.be16(4))
        guard total <= buffer.count else { throw .truncated }
        bytes = buffer.slice(0..<total)
    }

    /// Validates the start of a packet quoted in an ICMPv6 error (RFC 4443
    /// 2.4(c)): the fixed header must be whole, but the quote is cut to fit the
    /// minimum MTU, so `payload` is whatever of the original follows in `buffer`
    /// (and no more than its payload length says).
    @inlinable
    public init(validatingQuoted buffer: UnsafeMutableRawBufferPointer) throws(WireError) {
        try Self.checkHeader(buffer)
        bytes = buffer.slice(0..<min(buffer.count, Self.headerLength + Int(buffer.be16(4))))
    }

    /// The checks both initialisers share: a whole fixed header, version 6.
    @inlinable
    static func checkHeader(_ buffer: UnsafeMutableRawBufferPointer) throws(WireError) {
        guard buffer.count >= Self.headerLength else { throw .truncated }
        guard buffer.u8(0) >> 4 == 6 else { throw .unsupported }
    }

    /// The 8-bit Traffic Class (RFC 8200 7): DSCP and ECN.
    @inlinable public var trafficClass: UInt8 {
        get { UInt8(truncatingIfNeeded: bytes.be32(0) >> 20) }
        nonmutating set { bytes.setBE32(0, bytes.be32(0) & 0xf00f_ffff | UInt32(newValue) << 20) }
    }
    /// The 20-bit Flow Label (RFC 6437); higher bits of a new value are ignored.
    @inlinable public var flowLabel: UInt32 {
        get { bytes.be32(0) & 0x000f_ffff }
        nonmutating set { bytes.setBE32(0, bytes.be32(0) & 0xfff0_0000 | newValue & 0x000f_ffff) }
    }
    /// Bytes after the fixed header, extension headers included.
    @inlinable public var payloadLength: Int { Int(bytes.be16(4)) }
    /// What follows the fixed header: an extension header or the upper layer.
    @inlinable public var nextHeader: IPProtocol { IPProtocol(rawValue: bytes.u8(6)) }
    @inlinable public var hopLimit: UInt8 {
        get { bytes.u8(7) }
        nonmutating set { bytes.setU8(7, newValue) }
    }
    @inlinable public var source: IPv6Address {
        get { bytes.ipv6(8) }
        nonmutating set { bytes.setIPv6(8, newValue) }
    }
    @inlinable public var destination: IPv6Address {
        get { bytes.ipv6(24) }
        nonmutating set { bytes.setIPv6(24, newValue) }
    }

    /// The fixed header.
    @inlinable public var header: UnsafeMutableRawBufferPointer { bytes.slice(0..<Self.headerLength) }
    /// Everything after the fixed header, up to the payload length.
    @inlinable public var payload: UnsafeMutableRawBufferPointer { bytes.slice(Self.headerLength..<bytes.count) }
}

/// An IPv6 fixed header as a plain value. Extension headers are part of the
/// payload: `nextHeader` names the first of them, and `payloadLength` counts them.
public struct IPv6Repr: Equatable, Sendable {
    public var source: IPv6Address
    public var destination: IPv6Address
    public var nextHeader: IPProtocol
    /// Bytes after the fixed header.
    public var payloadLength: Int
    public var hopLimit: UInt8
    public var trafficClass: UInt8
    /// 20 bits (RFC 6437).
    public var flowLabel: UInt32

    public static var headerLength: Int { 40 }
    /// Linux's default (`net.ipv6.conf.*.hop_limit`); RFC 8200 3 leaves it to the node.
    public static var defaultHopLimit: UInt8 { 64 }

    public init(source: IPv6Address, destination: IPv6Address, nextHeader: IPProtocol, payloadLength: Int,
                hopLimit: UInt8 = IPv6Repr.defaultHopLimit, trafficClass: UInt8 = 0, flowLabel: UInt32 = 0) {
        self.source = source
        self.destination = destination
        self.nextHeader = nextHeader
        self.payloadLength = payloadLength
        self.hopLimit = hopLimit
        self.trafficClass = trafficClass
        self.flowLabel = flowLabel
    }

    public init(parsing p: IPv6Packet) {
        self.init(source: p.source, destination: p.destination, nextHeader: p.nextHeader,
                  payloadLength: p.payloadLength, hopLimit: p.hopLimit, trafficClass: p.trafficClass,
                  flowLabel: p.flowLabel)
    }

    /// Writes the 40-byte fixed header at the start of `bytes`. IPv6 has no
    /// header checksum (RFC 8200 8.1 moves it to the upper layers).
    @inlinable
    public func emit(into bytes: UnsafeMutableRawBufferPointer) {
        precondition(bytes.count >= Self.headerLength, "buffer shorter than the header")
        precondition((0...0xffff).contains(payloadLength), "payload length out of range")
        precondition(flowLabel < 1 << 20, "flow label wider than 20 bits")
        bytes.setBE32(0, 6 << 28 | UInt32(trafficClass) << 20 | flowLabel)
        bytes.setBE16(4, UInt16(payloadLength))
        bytes.setU8(6, nextHeader.rawValue)
        bytes.setU8(7, hopLimit)
        bytes.setIPv6(8, source)
        bytes.setIPv6(24, destination)
    }
}
