/// What a `Device` can carry and what it does for the stack: the MTU, the
/// largest packet it takes and hands over in one buffer (more than the MTU when
/// the device segments and coalesces, as a TAP with the virtio-net header does),
/// and which checksums it completes or verifies. smoltcp's `DeviceCapabilities`,
/// with gVisor's GSO limit.
///
/// Sizes are bytes of IP packet (the Ethernet payload), never of the frame.
/// A device's capabilities do not change while it is open, so the stack may
/// read them once.
public struct DeviceCapabilities: Sendable, Equatable {
    /// The largest IP packet one frame on the wire carries: 1500 for Ethernet.
    public var mtu: Int
    /// The largest IP packet the device accepts in one buffer to transmit.
    /// Equal to `mtu` for a device that sends each buffer as one frame; larger
    /// when the device cuts a segment into frames itself (TSO, up to 64 KiB).
    public var maxTransmitSegment: Int
    /// The largest IP packet the device may hand over in one buffer on receive.
    /// Equal to `mtu` unless the device coalesces frames (GRO, LRO).
    public var maxReceiveSegment: Int
    /// Which checksums the device completes on transmit and has verified on receive.
    public var checksum: ChecksumCapabilities
    /// Bytes the device needs free in front of each frame it transmits, for
    /// a header of its own (a TAP's virtio-net header): the stack builds
    /// frames that far into their slots.
    public var headroom: Int
    /// The device sends a frame's tail from where it lies (`FrameTail`, a
    /// gathered write), so TCP leaves its payload in the send ring instead
    /// of copying it into the frame's slot. Only with the transport checksum
    /// left to the device: computing it would read the bytes anyway.
    public var readsTailInPlace: Bool

    /// - Parameters:
    ///   - mtu: the largest IP packet one frame carries.
    ///   - maxTransmitSegment: the largest IP packet accepted to transmit; `mtu` if nil.
    ///   - maxReceiveSegment: the largest IP packet handed over on receive; `mtu` if nil.
    ///   - checksum: the checksum offloads; none by default.
    ///   - headroom: bytes the device writes in front of each transmitted frame.
    ///   - readsTailInPlace: the device sends frame tails without a copy.
    public init(mtu: Int, maxTransmitSegment: Int? = nil, maxReceiveSegment: Int? = nil,
                checksum: ChecksumCapabilities = .none, headroom: Int = 0, readsTailInPlace: Bool = false) {
        self.mtu = mtu
        self.maxTransmitSegment = maxTransmitSegment ?? mtu
        self.maxReceiveSegment = maxReceiveSegment ?? mtu
        self.checksum = checksum
        self.headroom = headroom
        self.readsTailInPlace = readsTailInPlace
    }

    /// An Ethernet link that sends and receives one frame per buffer and leaves
    /// every checksum to the stack: what a plain TAP and a `MemoryLink` are.
    public static func ethernet(mtu: Int = 1500) -> DeviceCapabilities {
        DeviceCapabilities(mtu: mtu)
    }

    /// A link that takes and hands over TCP segments of up to 64 KiB and
    /// takes over the TCP and UDP checksums both ways: a TAP with the
    /// virtio-net header (which also needs `headroom` for it and reads frame
    /// tails in place), or a `MemoryLink` doing as the kernel's loopback does.
    public static func segmenting(mtu: Int = 1500, headroom: Int = 0,
                                  readsTailInPlace: Bool = false) -> DeviceCapabilities {
        DeviceCapabilities(mtu: mtu, maxTransmitSegment: 65535, maxReceiveSegment: 65535,
                           checksum: ChecksumCapabilities(tcp: .both, udp: .both), headroom: headroom,
                           readsTailInPlace: readsTailInPlace)
    }

    /// Whether the segment limits are no smaller than the MTU and the MTU is at
    /// least IPv4's minimum of 68 bytes (RFC 791).
    public var isValid: Bool {
        mtu >= 68 && maxTransmitSegment >= mtu && maxReceiveSegment >= mtu && maxTransmitSegment <= 65535
            && headroom >= 0
    }

    /// Whether the device cuts TCP segments larger than the MTU into frames (TSO).
    public var segmentsTCP: Bool { maxTransmitSegment > mtu }

    /// These capabilities for middleware that must see every frame as it is on
    /// the wire (whole frames with final checksums), such as one that damages
    /// bytes and counts on the checksums to catch it, or one that queues and
    /// paces frames: transmit segments no
    /// larger than the MTU, and no checksum offload either way, so the stack
    /// computes and verifies every checksum itself. Received segments stay as
    /// the device delivers them; the headroom stays the inner device's.
    /// Tails are copied into the frame, where the middleware can see them.
    public var wireFrames: DeviceCapabilities {
        var c = wholeFrames
        c.maxTransmitSegment = mtu
        c.checksum = .none
        return c
    }

    /// These capabilities for middleware that reads or keeps every byte it
    /// transmits (a capture, a delay line): frame tails come copied in.
    public var wholeFrames: DeviceCapabilities {
        var c = self
        c.readsTailInPlace = false
        return c
    }
}

/// Which checksums a device takes over, per protocol and direction.
///
/// TCP and UDP cover both address families (their checksums differ only in
/// the pseudo-header); IPv6 adds a field for ICMPv6 beside `icmpv4`, and has
/// no header checksum.
public struct ChecksumCapabilities: Sendable, Equatable {
    /// The IPv4 header checksum.
    public var ipv4Header: ChecksumOffload
    /// The TCP checksum.
    public var tcp: ChecksumOffload
    /// The UDP checksum.
    public var udp: ChecksumOffload
    /// The ICMPv4 checksum.
    public var icmpv4: ChecksumOffload

    public init(ipv4Header: ChecksumOffload = [], tcp: ChecksumOffload = [], udp: ChecksumOffload = [],
                icmpv4: ChecksumOffload = []) {
        self.ipv4Header = ipv4Header
        self.tcp = tcp
        self.udp = udp
        self.icmpv4 = icmpv4
    }

    /// The stack computes and verifies every checksum itself.
    public static var none: ChecksumCapabilities { ChecksumCapabilities() }

    /// The same offload for every protocol.
    public static func all(_ offload: ChecksumOffload) -> ChecksumCapabilities {
        ChecksumCapabilities(ipv4Header: offload, tcp: offload, udp: offload, icmpv4: offload)
    }
}

/// The directions in which a device takes over one checksum.
public struct ChecksumOffload: OptionSet, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// The device completes the checksum of what the stack transmits: the stack
    /// may leave it unfinished (the pseudo-header sum only, as for
    /// CHECKSUM_PARTIAL).
    public static let transmit = ChecksumOffload(rawValue: 1 << 0)
    /// The device has verified the checksum of what it delivers and dropped
    /// what failed: the stack need not check it again.
    public static let receive = ChecksumOffload(rawValue: 1 << 1)
    /// Both directions.
    public static let both: ChecksumOffload = [.transmit, .receive]
}
