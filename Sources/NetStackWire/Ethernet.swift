/// The EtherType field of an Ethernet II frame (IEEE 802.3 clause 3.2.6).
public struct EtherType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16
    @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }

    @inlinable public static var ipv4: EtherType { EtherType(rawValue: 0x0800) }
    @inlinable public static var arp: EtherType { EtherType(rawValue: 0x0806) }
    @inlinable public static var ipv6: EtherType { EtherType(rawValue: 0x86dd) }

    public var description: String {
        switch self {
        case .ipv4: "IPv4"
        case .arp: "ARP"
        case .ipv6: "IPv6"
        default: "0x" + String(rawValue, radix: 16)
        }
    }
}

/// A view of an Ethernet II frame in place: destination, source, EtherType,
/// payload. The frame check sequence is not present (TAP strips it).
public struct EthernetFrame {
    public let bytes: UnsafeMutableRawBufferPointer

    public static var headerLength: Int { 14 }

    /// Checks that `bytes` holds at least a header.
    @inlinable
    public init(validating bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        guard bytes.count >= Self.headerLength else { throw .truncated }
        self.bytes = bytes
    }

    @inlinable public var destination: MACAddress {
        get { bytes.mac(0) }
        nonmutating set { bytes.setMAC(0, newValue) }
    }

    @inlinable public var source: MACAddress {
        get { bytes.mac(6) }
        nonmutating set { bytes.setMAC(6, newValue) }
    }

    @inlinable public var etherType: EtherType {
        get { EtherType(rawValue: bytes.be16(12)) }
        nonmutating set { bytes.setBE16(12, newValue.rawValue) }
    }

    @inlinable public var payload: UnsafeMutableRawBufferPointer { bytes.slice(Self.headerLength..<bytes.count) }
}

/// An Ethernet II header as a plain value.
public struct EthernetRepr: Equatable, Sendable {
    public var destination: MACAddress
    public var source: MACAddress
    public var etherType: EtherType

    public init(destination: MACAddress, source: MACAddress, etherType: EtherType) {
        self.destination = destination
        self.source = source
        self.etherType = etherType
    }

    public init(parsing frame: EthernetFrame) {
        self.init(destination: frame.destination, source: frame.source, etherType: frame.etherType)
    }

    public static let headerLength = EthernetFrame.headerLength

    /// Writes the header into the first 14 bytes of `bytes` (which must be at least that long).
    public func emit(into bytes: UnsafeMutableRawBufferPointer) {
        precondition(bytes.count >= Self.headerLength)
        bytes.setMAC(0, destination)
        bytes.setMAC(6, source)
        bytes.setBE16(12, etherType.rawValue)
    }
}
