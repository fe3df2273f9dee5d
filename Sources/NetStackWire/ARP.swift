/// ARP operation codes (RFC 826; IANA "ARP Operation Codes").
public struct ARPOperation: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt16
    @inlinable public init(rawValue: UInt16) { self.rawValue = rawValue }
    @inlinable public static var request: ARPOperation { ARPOperation(rawValue: 1) }
    @inlinable public static var reply: ARPOperation { ARPOperation(rawValue: 2) }
}

/// A view of an ARP packet for IPv4 over Ethernet (RFC 826), the only kind a
/// host on Ethernet needs: hardware type 1, protocol 0x0800, lengths 6 and 4.
public struct ARPPacket {
    public let bytes: UnsafeMutableRawBufferPointer

    /// Ethernet/IPv4 ARP is 28 bytes; anything after (Ethernet padding) is ignored.
    public static var length: Int { 28 }

    /// Checks the length and that the packet maps IPv4 to Ethernet addresses.
    @inlinable
    public init(validating bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        guard bytes.count >= Self.length else { throw .truncated }
        guard bytes.be16(0) == 1, bytes.be16(2) == EtherType.ipv4.rawValue,
              bytes.u8(4) == 6, bytes.u8(5) == 4 else { throw .unsupported }
        self.bytes = bytes
    }

    @inlinable public var operation: ARPOperation {
        get { ARPOperation(rawValue: bytes.be16(6)) }
        nonmutating set { bytes.setBE16(6, newValue.rawValue) }
    }
    @inlinable public var senderHardwareAddress: MACAddress {
        get { bytes.mac(8) }
        nonmutating set { bytes.setMAC(8, newValue) }
    }
    @inlinable public var senderProtocolAddress: IPv4Address {
        get { bytes.ipv4(14) }
        nonmutating set { bytes.setIPv4(14, newValue) }
    }
    @inlinable public var targetHardwareAddress: MACAddress {
        get { bytes.mac(18) }
        nonmutating set { bytes.setMAC(18, newValue) }
    }
    @inlinable public var targetProtocolAddress: IPv4Address {
        get { bytes.ipv4(24) }
        nonmutating set { bytes.setIPv4(24, newValue) }
    }
}

/// An Ethernet/IPv4 ARP packet as a plain value.
public struct ARPRepr: Equatable, Sendable {
    public var operation: ARPOperation
    public var senderHardwareAddress: MACAddress
    public var senderProtocolAddress: IPv4Address
    public var targetHardwareAddress: MACAddress
    public var targetProtocolAddress: IPv4Address

    public init(operation: ARPOperation, senderHardwareAddress: MACAddress, senderProtocolAddress: IPv4Address,
                targetHardwareAddress: MACAddress, targetProtocolAddress: IPv4Address) {
        self.operation = operation
        self.senderHardwareAddress = senderHardwareAddress
        self.senderProtocolAddress = senderProtocolAddress
        self.targetHardwareAddress = targetHardwareAddress
        self.targetProtocolAddress = targetProtocolAddress
    }

    public init(parsing p: ARPPacket) {
        self.init(operation: p.operation, senderHardwareAddress: p.senderHardwareAddress,
                  senderProtocolAddress: p.senderProtocolAddress, targetHardwareAddress: p.targetHardwareAddress,
                  targetProtocolAddress: p.targetProtocolAddress)
    }

    public static var length: Int { ARPPacket.length }

    /// Writes the 28-byte packet at the start of `bytes`.
    public func emit(into bytes: UnsafeMutableRawBufferPointer) {
        precondition(bytes.count >= Self.length)
        bytes.setBE16(0, 1)
        bytes.setBE16(2, EtherType.ipv4.rawValue)
        bytes.setU8(4, 6)
        bytes.setU8(5, 4)
        bytes.setBE16(6, operation.rawValue)
        bytes.setMAC(8, senderHardwareAddress)
        bytes.setIPv4(14, senderProtocolAddress)
        bytes.setMAC(18, targetHardwareAddress)
        bytes.setIPv4(24, targetProtocolAddress)
    }
}
