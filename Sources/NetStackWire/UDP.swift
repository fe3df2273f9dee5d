/// A view of a UDP datagram in place (RFC 768).
///
/// Validation checks that the length field covers the 8-byte header and fits
/// in the buffer; `payload` ends at that length. The checksum needs the IP
/// pseudo-header, so it is checked separately with `checksumIsValid(source:destination:)`.
public struct UDPDatagram {
    /// The datagram up to its length field.
    public let bytes: UnsafeMutableRawBufferPointer

    public static var headerLength: Int { 8 }

    @inlinable
    public init(validating buffer: UnsafeMutableRawBufferPointer) throws(WireError) {
        guard buffer.count >= Self.headerLength else { throw .truncated }
        let length = Int(buffer.be16(4))
        guard length >= Self.headerLength else { throw .badLength }
        guard length <= buffer.count else { throw .truncated }
        bytes = buffer.slice(0..<length)
    }

    @inlinable public var sourcePort: UInt16 {
        get { bytes.be16(0) }
        nonmutating set { bytes.setBE16(0, newValue) }
    }
    @inlinable public var destinationPort: UInt16 {
        get { bytes.be16(2) }
        nonmutating set { bytes.setBE16(2, newValue) }
    }
    @inlinable public var length: Int { Int(bytes.be16(4)) }
    @inlinable public var checksum: UInt16 {
        get { bytes.be16(6) }
        nonmutating set { bytes.setBE16(6, newValue) }
    }
    @inlinable public var payload: UnsafeMutableRawBufferPointer { bytes.slice(Self.headerLength..<bytes.count) }

    /// RFC 768: a zero checksum means the sender computed none, which IPv4 accepts.
    @inlinable
    public func checksumIsValid(source: IPv4Address, destination: IPv4Address) -> Bool {
        if checksum == 0 { return true }
        return InternetChecksum.overTransport(bytes, source: source, destination: destination, protocol: .udp).verifies
    }

    /// Computes the checksum over pseudo-header, header and payload. A computed
    /// zero is sent as all ones, since zero means "no checksum" (RFC 768).
    @inlinable
    public func fillChecksum(source: IPv4Address, destination: IPv4Address) {
        checksum = 0
        let v = InternetChecksum.overTransport(bytes, source: source, destination: destination, protocol: .udp).value
        checksum = v == 0 ? 0xffff : v
    }
}

/// A UDP header as a plain value.
public struct UDPRepr: Equatable, Sendable {
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var payloadLength: Int

    public init(sourcePort: UInt16, destinationPort: UInt16, payloadLength: Int) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.payloadLength = payloadLength
    }

    public init(parsing d: UDPDatagram) {
        self.init(sourcePort: d.sourcePort, destinationPort: d.destinationPort, payloadLength: d.payload.count)
    }

    public static var headerLength: Int { UDPDatagram.headerLength }
    public var length: Int { Self.headerLength + payloadLength }

    /// Writes the header at the start of `bytes`; the payload must already be in
    /// place after it, since the checksum covers it.
    public func emit(into bytes: UnsafeMutableRawBufferPointer, source: IPv4Address, destination: IPv4Address) {
        precondition(payloadLength >= 0 && bytes.count >= length && length <= 0xffff, "payload length out of range")
        bytes.setBE16(0, sourcePort)
        bytes.setBE16(2, destinationPort)
        bytes.setBE16(4, UInt16(length))
        let d = UDPDatagram(unchecked: bytes.slice(0..<length))
        d.fillChecksum(source: source, destination: destination)
    }
}

extension UDPDatagram {
    @inlinable init(unchecked bytes: UnsafeMutableRawBufferPointer) { self.bytes = bytes }
}
