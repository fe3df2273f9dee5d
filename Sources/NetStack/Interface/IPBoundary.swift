import NetStackWire

// The one place where transports (TCP/, UDP/) meet IP. Nothing here names a
// family: IPv4 and IPv6 are behind the same boundary.

extension IPAddress {
    /// The IP header without options for this family: 20 bytes for IPv4, 40 for IPv6.
    @inline(__always)
    var ipHeaderLength: Int {
        switch self {
        case .v4: IPv4Repr.headerLength
        case .v6: IPv6Packet.headerLength
        }
    }
}

/// Whether a transport still has to verify its checksum.
public enum ChecksumStatus: Sendable {
    /// Check it: nothing has.
    case unverified
    /// The device verified it (receive checksum offload).
    case verified
}

/// A datagram IP hands up to a transport: from one frame, or put back
/// together by reassembly. The payload is borrowed for the call only.
public struct IPDatagram {
    public var source: IPAddress
    public var destination: IPAddress
    public var proto: IPProtocol
    /// The transport's bytes (header and data).
    public var payload: UnsafeMutableRawBufferPointer
    public var checksum: ChecksumStatus
    /// Sent to a broadcast or multicast address: a transport must not answer
    /// it with a RST, nor IP with an ICMP error (RFC 1122 3.2.2, 4.2.3.10).
    public var toBroadcast: Bool
    /// Arrived in a link-layer broadcast or multicast frame (any fragment of
    /// it, if reassembled), whatever its IP destination: never answered with
    /// an ICMP error (RFC 1122 3.2.2, RFC 1812 4.3.2.7), and TCP takes only
    /// what came to it alone (Linux: `PACKET_HOST`). UDP still delivers it.
    public var linkBroadcast: Bool
    /// Neither sent to a broadcast or multicast address nor arriving as one:
    /// the only kind an answer may be sent for.
    public var isUnicast: Bool { !toBroadcast && !linkBroadcast }
    /// IP's own: the header as received (of the first fragment if reassembled),
    /// quoted by ICMP errors; and whether header and payload lie in the
    /// received frame, so an answer may be built in place.
    var header: UnsafeMutableRawBufferPointer
    var inFrame: Bool
}

/// Which families a listener or a bound UDP socket takes: both by default,
/// as an AF_INET6 socket without IPV6_V6ONLY does on Linux (RFC 3493 5.3),
/// or one. Traffic of the other family finds the port closed: a RST, or
/// port unreachable.
public enum IPFamilies: Sendable, Equatable {
    case both
    case ipv4Only
    case ipv6Only

    @inline(__always)
    public func contains(_ address: IPAddress) -> Bool {
        switch (self, address) {
        case (.both, _), (.ipv4Only, .v4), (.ipv6Only, .v6): true
        default: false
        }
    }

    /// Whether a family is in both.
    public func overlaps(_ other: IPFamilies) -> Bool {
        switch (self, other) {
        case (.ipv4Only, .ipv6Only), (.ipv6Only, .ipv4Only): false
        default: true
        }
    }
}

/// Why a datagram the stack sent did not arrive, as an ICMP error said
/// (RFC 1122 3.2.2.1, 4.1.3.3; RFC 4443 3).
public enum IPErrorKind: Equatable, Sendable {
    /// Port unreachable, in either family (ICMP's code 3, ICMPv6's 4): no
    /// socket there, which applications see as a refusal.
    case portUnreachable
    /// Destination unreachable with the family's other codes (and ICMPv6's
    /// parameter problem, with its code).
    case unreachable(code: UInt8)
    /// The datagram needed fragmenting and could not be (RFC 1191): the next hop's MTU.
    case packetTooBig(mtu: Int)
    case timeExceeded
}

/// An ICMP error about a datagram we sent, handed to the transport that sent
/// it: the quoted addresses and the first bytes of its transport header.
public struct IPErrorReport {
    public var kind: IPErrorKind
    /// The source and destination of the datagram we sent.
    public var source: IPAddress
    public var destination: IPAddress
    public var proto: IPProtocol
    /// At least the first 8 bytes of the transport header we sent (RFC 792).
    public var quotedTransport: UnsafeRawBufferPointer

    /// A hard error (RFC 1122 4.2.3.9, RFC 4443 3.1): the destination took
    /// the datagram and has no one for it, protocol or port unreachable
    /// (IPv4 codes 2 and 3; IPv6's port unreachable, code 4). The rest (no
    /// route, host unreachable, time exceeded) may pass.
    public var isHardError: Bool {
        switch kind {
        case .portUnreachable: return true
        // IPv4's protocol unreachable; ICMPv6 has no such code (RFC 4443 3.1).
        case .unreachable(let code): return source.ipv4 != nil && code == 2
        default: return false
        }
    }
}

/// What a transport leaves to the device for one segment it sends in place,
/// within what `IPOutput.capabilities` allow.
public struct TransportOffload: Sendable, Equatable {
    /// Where the checksum field lies in the transport header, when it holds
    /// only the pseudo-header sum for the device to complete; nil when the
    /// transport computed it.
    public var partialChecksumAt: Int?
    /// TSO: the payload bytes per frame the device cuts the segment into,
    /// which may then be up to `maxTransmitSegment` long; 0 when the segment
    /// is one frame and fits the MTU.
    public var segmentSize: Int

    public init(partialChecksumAt: Int? = nil, segmentSize: Int = 0) {
        self.partialChecksumAt = partialChecksumAt
        self.segmentSize = segmentSize
    }

    /// The transport finished the segment itself, and it fits one frame.
    public static var none: TransportOffload { TransportOffload() }
}

extension PacketOffload {
    /// What the device is asked for a frame whose transport header starts
    /// `transportStart` bytes in (behind the Ethernet and IP headers of
    /// either family), from what the transport left to it.
    @inline(__always)
    init(_ transport: TransportOffload, transportStart: Int) {
        self.init(checksumStart: transport.partialChecksumAt == nil ? 0 : UInt16(transportStart),
                  checksumOffset: UInt16(transport.partialChecksumAt ?? 0),
                  segmentSize: UInt16(clamping: transport.segmentSize))
    }
}

/// What a socket asks of its packets' IP headers, for each family, as
/// Linux keeps it: a hop limit (RFC 791 3.1's time to live, RFC 8200 3's hop
/// limit) and the DS field's byte (RFC 2474's DSCP with RFC 3168's ECN bits:
/// IPv4's type of service, IPv6's traffic class). An AF_INET6 socket's
/// IPv4 traffic (to v4-mapped addresses) takes the IPv4 ones, as on Linux.
public struct IPHeaderSettings: Sendable, Equatable {
    /// IP_TTL; nil: the interface's (`InterfaceConfiguration.timeToLive`).
    public var timeToLive: UInt8?
    /// IP_TOS.
    public var typeOfService: UInt8
    /// IPV6_UNICAST_HOPS; nil: the interface's (what routers advertise, else its configured one).
    public var hopLimit: UInt8?
    /// IPV6_TCLASS.
    public var trafficClass: UInt8

    public init(timeToLive: UInt8? = nil, typeOfService: UInt8 = 0, hopLimit: UInt8? = nil, trafficClass: UInt8 = 0) {
        self.timeToLive = timeToLive
        self.typeOfService = typeOfService
        self.hopLimit = hopLimit
        self.trafficClass = trafficClass
    }

    /// The interface's hop limits and zero DS fields.
    public static var standard: IPHeaderSettings { IPHeaderSettings() }
}

/// What a transport sends through: IP's output, whatever the family and the
/// device. Each transport holds the one its interface attached.
public protocol IPOutput: AnyObject {
    /// What the device under IP can do: segment sizes, checksum offload.
    var capabilities: DeviceCapabilities { get }
    /// Our address to use towards `destination`, or nil when nothing routes there.
    func sourceAddress(towards destination: IPAddress) -> IPAddress?
    /// Whether `destination` names one host: neither a broadcast (the
    /// limited one or this interface's directed one) nor a multicast group.
    /// Only such a destination takes a connection (Linux's
    /// `tcp_v4_connect`: ENETUNREACH for a broadcast or multicast route).
    func isUnicast(_ destination: IPAddress) -> Bool
    /// The largest transport segment (header and data) one unfragmented IP
    /// packet to `destination` carries: the path MTU as IP knows it (the
    /// link's, or lower where a "packet too big" said so; `PathMTUCache`)
    /// less the IP header.
    func maximumSegmentLength(towards destination: IPAddress) -> Int
    /// A transport validated a "packet too big" about a datagram it sent to
    /// `destination` (RFC 5927 4.1: the quote names a live connection or
    /// socket, and, for TCP, a sequence number in flight) reporting `mtu`
    /// (RFC 1191's next-hop MTU, RFC 8201's MTU). IP lowers its estimate for
    /// the path, never below the family's minimum nor above the link MTU,
    /// for 10 minutes, and tells TCP, whose connections to `destination`
    /// then send segments that fit. Returns the new `maximumSegmentLength`,
    /// or nil when the estimate did not drop (a report of a larger MTU, or
    /// one already known).
    func lowerPathMTU(_ mtu: Int, towards destination: IPAddress, now: Instant) -> Int?
    /// Sends one unfragmented datagram of `length` transport bytes, which
    /// `write` fills in place behind the reserved IP and link headroom, and
    /// leaves to the device what `offload` says. The last `tail.count` of
    /// them are `tail`'s, which the device reads where they lie when it can
    /// (`capabilities.readsTailInPlace`); `write` fills the rest (it gets the
    /// whole `length`, the tail's room included, but only the rest is sent
    /// from the slot). False if it
    /// was dropped (no route, no buffer, too large); IP counts why.
    /// `settings`: the socket's hop limit and DS field.
    func send(from source: IPAddress, to destination: IPAddress, protocol proto: IPProtocol, length: Int,
              offload: TransportOffload, tail: FrameTail, settings: IPHeaderSettings, now: Instant,
              _ write: (UnsafeMutableRawBufferPointer) -> Void) -> Bool
    /// Sends `header` followed by `payload` as one datagram, fragmented when it
    /// exceeds the MTU (UDP, ICMP), with the socket's `settings`. False if
    /// it was dropped; IP counts why.
    func send(to destination: IPAddress, protocol proto: IPProtocol, header: UnsafeRawBufferPointer,
              payload: UnsafeRawBufferPointer, settings: IPHeaderSettings, now: Instant) -> Bool
    /// The transport saw forward progress with `address` (RFC 1122 2.3.2.1's
    /// advice, Linux's `dst_confirm`: an ACK of new data, or new in-order
    /// data): the neighbour that leads there is reachable, and its link
    /// address stays trusted without asking. Cheap, but transports call it
    /// at most about once a second per connection, not per segment.
    func confirmReachable(_ address: IPAddress, now: Instant)
    /// Answers `datagram` with port unreachable, unless the rules for ICMP
    /// errors forbid it (RFC 1122 3.2.2; rate limited).
    func reportPortUnreachable(_ datagram: IPDatagram, now: Instant)
}
