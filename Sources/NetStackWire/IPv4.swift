/// IP protocol numbers (IANA "Assigned Internet Protocol Numbers").
public struct IPProtocol: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }
    @inlinable public static var icmp: IPProtocol { IPProtocol(rawValue: 1) }
    @inlinable public static var tcp: IPProtocol { IPProtocol(rawValue: 6) }
    @inlinable public static var udp: IPProtocol { IPProtocol(rawValue: 17) }

    public var description: String {
        switch self {
        case .icmp: "ICMP"
        case .tcp: "TCP"
        case .udp: "UDP"
        case .hopByHopOptions: "IPv6-HopByHop"
        case .ipv6Routing: "IPv6-Route"
        case .ipv6Fragment: "IPv6-Frag"
        case .icmpv6: "ICMPv6"
        case .ipv6NoNextHeader: "IPv6-NoNxt"
        case .ipv6DestinationOptions: "IPv6-Opts"
        default: String(rawValue)
        }
    }
}

/// A view of an IPv4 packet in place (RFC 791 section 3.1).
///
/// Validation checks the version, that IHL covers at least the fixed header
/// and fits in the buffer, and that the total length covers the header and
/// fits in the buffer. Bytes past the total length (Ethernet padding of short
/// frames) are excluded from `payload`. Options are stepped over, not parsed.
/// The header checksum is checked separately (`checksumIsValid`), so callers
/// can count it as its own drop reason.
public struct IPv4Packet {
    /// The packet up to its total length.
    public let bytes: UnsafeMutableRawBufferPointer

    public static var minimumHeaderLength: Int { 20 }

    @inlinable
    public init(validating buffer: UnsafeMutableRawBufferPointer) throws(WireError) {
        let headerLength = try Self.checkHeader(buffer)
        let total = Int(buffer.be16(2))
        guard total >= headerLength else { throw .badLength }
        guard total <= buffer.count else { throw .truncated }
        bytes = buffer.slice(0..<total)
    }

    /// The checks both initialisers share: version, and an IHL that covers the
    /// fixed header and fits the buffer. Returns the header length.
    @inlinable
    static func checkHeader(_ buffer: UnsafeMutableRawBufferPointer) throws(WireError) -> Int {
        guard buffer.count >= Self.minimumHeaderLength else { throw .truncated }
        let b0 = buffer.u8(0)
        guard b0 >> 4 == 4 else { throw .unsupported }
        let headerLength = Int(b0 & 0x0f) * 4
        guard headerLength >= Self.minimumHeaderLength else { throw .badLength }
        guard headerLength <= buffer.count else { throw .truncated }
        return headerLength
    }

    /// Validates the start of a datagram quoted in an ICMP error (RFC 792): the
    /// header must be whole, but its total length describes the original
    /// datagram, so `payload` is whatever of it follows in `buffer`.
    @inlinable
    public init(validatingQuoted buffer: UnsafeMutableRawBufferPointer) throws(WireError) {
        let headerLength = try Self.checkHeader(buffer)
        guard Int(buffer.be16(2)) >= headerLength else { throw .badLength }
        bytes = buffer
    }

    @inlinable public var headerLength: Int { Int(bytes.u8(0) & 0x0f) * 4 }
    @inlinable public var dscpECN: UInt8 {
        get { bytes.u8(1) }
        nonmutating set { bytes.setU8(1, newValue) }
    }
    @inlinable public var totalLength: Int { Int(bytes.be16(2)) }
    @inlinable public var identification: UInt16 {
        get { bytes.be16(4) }
        nonmutating set { bytes.setBE16(4, newValue) }
    }
    /// DF: the sender forbids fragmentation.
    @inlinable public var dontFragment: Bool { bytes.be16(6) & 0x4000 != 0 }
    /// MF: more fragments of this datagram follow.
    @inlinable public var moreFragments: Bool { bytes.be16(6) & 0x2000 != 0 }
    /// The fragment offset in bytes (the field counts 8-byte units).
    @inlinable public var fragmentOffset: Int { Int(bytes.be16(6) & 0x1fff) * 8 }
    /// True for any fragment, first or later.
    @inlinable public var isFragment: Bool { bytes.be16(6) & 0x3fff != 0 }
    @inlinable public var timeToLive: UInt8 {
        get { bytes.u8(8) }
        nonmutating set { bytes.setU8(8, newValue) }
    }
    @inlinable public var `protocol`: IPProtocol { IPProtocol(rawValue: bytes.u8(9)) }
    @inlinable public var headerChecksum: UInt16 {
        get { bytes.be16(10) }
        nonmutating set { bytes.setBE16(10, newValue) }
    }
    @inlinable public var source: IPv4Address {
        get { bytes.ipv4(12) }
        nonmutating set { bytes.setIPv4(12, newValue) }
    }
    @inlinable public var destination: IPv4Address {
        get { bytes.ipv4(16) }
        nonmutating set { bytes.setIPv4(16, newValue) }
    }

    /// The header including options.
    @inlinable public var header: UnsafeMutableRawBufferPointer { bytes.slice(0..<headerLength) }
    /// Options bytes (empty for a 20-byte header).
    @inlinable public var options: UnsafeMutableRawBufferPointer { bytes.slice(Self.minimumHeaderLength..<headerLength) }
    /// The payload, up to the total length.
    @inlinable public var payload: UnsafeMutableRawBufferPointer { bytes.slice(headerLength..<bytes.count) }

    /// True if the header checksum verifies (RFC 791: over the header only).
    @inlinable public var checksumIsValid: Bool {
        var c = InternetChecksum()
        c.add(header)
        return c.verifies
    }

    /// Recomputes the header checksum after fields changed.
    @inlinable public func fillChecksum() {
        headerChecksum = 0
        headerChecksum = InternetChecksum.compute(UnsafeRawBufferPointer(header))
    }
}

/// An IPv4 header (without options) as a plain value.
public struct IPv4Repr: Equatable, Sendable {
    public var source: IPv4Address
    public var destination: IPv4Address
    public var `protocol`: IPProtocol
    /// Bytes after the header.
    public var payloadLength: Int
    public var timeToLive: UInt8
    public var identification: UInt16
    public var dontFragment: Bool
    public var moreFragments: Bool
    /// In bytes; a multiple of 8.
    public var fragmentOffset: Int
    public var dscpECN: UInt8

    public static var headerLength: Int { 20 }
    public static var defaultTTL: UInt8 { 64 }

    public init(source: IPv4Address, destination: IPv4Address, protocol: IPProtocol, payloadLength: Int,
                timeToLive: UInt8 = IPv4Repr.defaultTTL, identification: UInt16 = 0, dontFragment: Bool = false,
                moreFragments: Bool = false, fragmentOffset: Int = 0, dscpECN: UInt8 = 0) {
        self.source = source
        self.destination = destination
        self.protocol = `protocol`
        self.payloadLength = payloadLength
        self.timeToLive = timeToLive
        self.identification = identification
        self.dontFragment = dontFragment
        self.moreFragments = moreFragments
        self.fragmentOffset = fragmentOffset
        self.dscpECN = dscpECN
    }

    /// The header's fields; options are dropped, the payload length excludes them.
    public init(parsing p: IPv4Packet) {
        self.init(source: p.source, destination: p.destination, protocol: p.protocol,
                  payloadLength: p.totalLength - p.headerLength, timeToLive: p.timeToLive,
                  identification: p.identification, dontFragment: p.dontFragment,
                  moreFragments: p.moreFragments, fragmentOffset: p.fragmentOffset, dscpECN: p.dscpECN)
    }

    /// Writes a 20-byte header with its checksum at the start of `bytes`.
    @inlinable
    public func emit(into bytes: UnsafeMutableRawBufferPointer) {
        precondition(bytes.count >= Self.headerLength, "buffer shorter than the header")
        precondition((0...0xfff8).contains(fragmentOffset) && fragmentOffset % 8 == 0,
                     "fragment offset must be a multiple of 8 that fits 13 bits")
        precondition(payloadLength >= 0 && Self.headerLength + payloadLength <= 0xffff, "payload length out of range")
        bytes.setU8(0, 0x45)
        bytes.setU8(1, dscpECN)
        bytes.setBE16(2, UInt16(Self.headerLength + payloadLength))
        bytes.setBE16(4, identification)
        var flags: UInt16 = UInt16(fragmentOffset / 8)
        if dontFragment { flags |= 0x4000 }
        if moreFragments { flags |= 0x2000 }
        bytes.setBE16(6, flags)
        bytes.setU8(8, timeToLive)
        bytes.setU8(9, `protocol`.rawValue)
        bytes.setBE16(10, 0)
        bytes.setIPv4(12, source)
        bytes.setIPv4(16, destination)
        bytes.setBE16(10, InternetChecksum.compute(UnsafeRawBufferPointer(bytes.slice(0..<Self.headerLength))))
    }
}
