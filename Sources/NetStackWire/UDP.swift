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

    /// RFC 768: a zero checksum means the sender computed none, which IPv4
    /// accepts and IPv6 does not (RFC 8200 8.1).
    @inlinable
    public func checksumIsValid(source: IPAddress, destination: IPAddress) -> Bool {
        if checksum == 0 { return source.ipv4 != nil }
        return InternetChecksum.overTransport(bytes, source: source, destination: destination, protocol: .udp).verifies
    }

    /// Computes the checksum over pseudo-header, header and payload. A computed
    /// zero is sent as all ones, since zero means "no checksum" (RFC 768).
    @inlinable
    public func fillChecksum(source: IPAddress, destination: IPAddress) {
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
    public func emit(into bytes: UnsafeMutableRawBufferPointer, source: IPAddress, destination: IPAddress) {
        precondition(payloadLength >= 0 && bytes.count >= length && length <= 0xffff, "payload length out of range")
        bytes.setBE16(0, sourcePort)
        bytes.setBE16(2, destinationPort)
        bytes.setBE16(4, UInt16(length))
        let d = UDPDatagram(unchecked: bytes.slice(0..<length))
        d.fillChecksum(source: source, destination: destination)
    }
}

extension UDPRepr {
    /// Writes the 8-byte header into `header` with the checksum over the
    /// pseudo-header, itself and `payload`, which lies elsewhere (a datagram
    /// sent in pieces, fragmented by IP).
    public func emitHeader(into header: UnsafeMutableRawBufferPointer, payload: UnsafeRawBufferPointer,
                           source: IPAddress, destination: IPAddress) {
        precondition(header.count >= Self.headerLength && payload.count == payloadLength && length <= 0xffff,
                     "lengths disagree")
        header.setBE16(0, sourcePort)
        header.setBE16(2, destinationPort)
        header.setBE16(4, UInt16(length))
        header.setBE16(6, 0)
        var c = InternetChecksum()
        c.addPseudoHeader(source: source, destination: destination, protocol: IPProtocol.udp.rawValue, length: length)
        c.add(UnsafeRawBufferPointer(header.slice(0..<Self.headerLength)))
        c.add(payload)
        let v = c.value
        // RFC 768: a computed zero goes out as all ones.
        header.setBE16(6, v == 0 ? 0xffff : v)
    }
}

extension UDPDatagram {
    @inlinable init(unchecked bytes: UnsafeMutableRawBufferPointer) { self.bytes = bytes }
}

extension UDPDatagram: PseudoHeaderChecksummed {}

extension UDPRepr: PseudoHeaderEmitting {}
