/// The header a Linux TAP opened with `IFF_VNET_HDR` puts in front of every
/// frame, both ways: `struct virtio_net_hdr` (virtio 1.2, 5.1.6; 10 bytes,
/// little-endian, as `TUNSETVNETHDRSZ` 10 and a little-endian host have it).
/// It says what the kernel did for a received frame (a partial or verified
/// checksum, segments coalesced) and asks it to finish a transmitted one
/// (complete the checksum, cut a TCP segment into frames of `segmentSize`).
public struct VirtioNetHeader: Equatable, Sendable {
    public static let length = 10

    /// `flags`: the checksum is partial; complete it from `checksumStart` (VIRTIO_NET_HDR_F_NEEDS_CSUM).
    public static let needsChecksum: UInt8 = 1
    /// `flags`: the checksum was verified (VIRTIO_NET_HDR_F_DATA_VALID).
    public static let dataValid: UInt8 = 2

    /// `gso_type` (VIRTIO_NET_HDR_GSO_*).
    public struct GSOType: RawRepresentable, Equatable, Sendable {
        public var rawValue: UInt8
        @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }
        @inlinable public static var none: GSOType { GSOType(rawValue: 0) }
        @inlinable public static var tcpv4: GSOType { GSOType(rawValue: 1) }
        @inlinable public static var udp: GSOType { GSOType(rawValue: 3) }
        @inlinable public static var tcpv6: GSOType { GSOType(rawValue: 4) }
        /// Flag bit: the segments carry ECN's CWR (VIRTIO_NET_HDR_GSO_ECN).
        @inlinable public static var ecnFlag: UInt8 { 0x80 }
    }

    public var flags: UInt8
    public var gsoType: GSOType
    /// Bytes of headers (Ethernet, IP, transport) repeated on every segment.
    public var headerLength: UInt16
    /// Payload bytes per segment, for `gsoType` other than `.none`.
    public var segmentSize: UInt16
    /// Where the checksummed bytes start, from the Ethernet header on.
    public var checksumStart: UInt16
    /// Where the checksum goes, from `checksumStart`.
    public var checksumOffset: UInt16

    public init(flags: UInt8 = 0, gsoType: GSOType = .none, headerLength: UInt16 = 0, segmentSize: UInt16 = 0,
                checksumStart: UInt16 = 0, checksumOffset: UInt16 = 0) {
        self.flags = flags
        self.gsoType = gsoType
        self.headerLength = headerLength
        self.segmentSize = segmentSize
        self.checksumStart = checksumStart
        self.checksumOffset = checksumOffset
    }

    /// Reads the header from the first 10 bytes of `bytes`.
    public init(parsing bytes: UnsafeRawBufferPointer) throws(WireError) {
        guard bytes.count >= Self.length, let base = bytes.baseAddress else { throw .truncated }
        func le16(_ offset: Int) -> UInt16 {
            UInt16(littleEndian: base.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
        }
        flags = base.load(fromByteOffset: 0, as: UInt8.self)
        gsoType = GSOType(rawValue: base.load(fromByteOffset: 1, as: UInt8.self))
        headerLength = le16(2)
        segmentSize = le16(4)
        checksumStart = le16(6)
        checksumOffset = le16(8)
    }

    /// Whether the transport checksum needs no checking: verified, or partial
    /// because the frame never left this host.
    public var checksumTrusted: Bool { flags & (Self.needsChecksum | Self.dataValid) != 0 }

    /// Writes the header into the first 10 bytes of `bytes` (at least that long).
    public func emit(into bytes: UnsafeMutableRawBufferPointer) {
        precondition(bytes.count >= Self.length)
        let base = bytes.baseAddress!
        func setLE16(_ offset: Int, _ v: UInt16) { base.storeBytes(of: v.littleEndian, toByteOffset: offset, as: UInt16.self) }
        base.storeBytes(of: flags, toByteOffset: 0, as: UInt8.self)
        base.storeBytes(of: gsoType.rawValue, toByteOffset: 1, as: UInt8.self)
        setLE16(2, headerLength)
        setLE16(4, segmentSize)
        setLE16(6, checksumStart)
        setLE16(8, checksumOffset)
    }
}
