/// TCP control bits (RFC 9293 section 3.1; ECE and CWR from RFC 3168 section 6.1),
/// the thirteenth byte of the header.
public struct TCPFlags: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    @inlinable public init(rawValue: UInt8) { self.rawValue = rawValue }

    @inlinable public static var fin: TCPFlags { TCPFlags(rawValue: 0x01) }
    @inlinable public static var syn: TCPFlags { TCPFlags(rawValue: 0x02) }
    @inlinable public static var rst: TCPFlags { TCPFlags(rawValue: 0x04) }
    @inlinable public static var psh: TCPFlags { TCPFlags(rawValue: 0x08) }
    @inlinable public static var ack: TCPFlags { TCPFlags(rawValue: 0x10) }
    @inlinable public static var urg: TCPFlags { TCPFlags(rawValue: 0x20) }
    @inlinable public static var ece: TCPFlags { TCPFlags(rawValue: 0x40) }
    @inlinable public static var cwr: TCPFlags { TCPFlags(rawValue: 0x80) }

    /// The set flags by name, low bit first, such as `SYN|ACK`; `none` for none.
    public var description: String {
        let names = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"]
        var parts: [String] = []
        for bit in 0..<8 where rawValue & (1 << bit) != 0 { parts.append(names[bit]) }
        return parts.isEmpty ? "none" : parts.joined(separator: "|")
    }
}

/// A view of a TCP segment in place (RFC 9293 section 3.1).
///
/// TCP has no length field: the segment is the whole buffer, which the caller
/// has cut to the IP payload. Validation checks that the fixed header fits,
/// that the data offset covers at least the fixed header (else `.badLength`)
/// and that the header it describes fits (else `.truncated`). Options stay
/// bytes here; `TCPOptions(parsing:)` reads them. The checksum needs the IP
/// pseudo-header, so it is checked separately with `checksumIsValid(source:destination:)`.
public struct TCPSegment {
    /// The whole segment: header, options and payload.
    public let bytes: UnsafeMutableRawBufferPointer

    public static var minimumHeaderLength: Int { 20 }
    /// Where the checksum field lies in the header.
    public static var checksumOffset: Int { 16 }
    /// A data offset of 15 words.
    public static var maximumHeaderLength: Int { 60 }

    @inlinable
    public init(validating buffer: UnsafeMutableRawBufferPointer) throws(WireError) {
        guard buffer.count >= Self.minimumHeaderLength else { throw .truncated }
        let headerLength = Int(buffer.u8(12) >> 4) * 4
        guard headerLength >= Self.minimumHeaderLength else { throw .badLength }
        guard headerLength <= buffer.count else { throw .truncated }
        bytes = buffer
    }

    @inlinable public var sourcePort: UInt16 {
        get { bytes.be16(0) }
        nonmutating set { bytes.setBE16(0, newValue) }
    }
    @inlinable public var destinationPort: UInt16 {
        get { bytes.be16(2) }
        nonmutating set { bytes.setBE16(2, newValue) }
    }
    /// SEG.SEQ: the number of the first byte (or of the SYN).
    @inlinable public var sequenceNumber: SequenceNumber {
        get { SequenceNumber(bytes.be32(4)) }
        nonmutating set { bytes.setBE32(4, newValue.rawValue) }
    }
    /// SEG.ACK: meaningful only when the ACK flag is set.
    @inlinable public var acknowledgmentNumber: SequenceNumber {
        get { SequenceNumber(bytes.be32(8)) }
        nonmutating set { bytes.setBE32(8, newValue.rawValue) }
    }
    /// The header length in 32-bit words, 5 to 15.
    @inlinable public var dataOffset: Int { Int(bytes.u8(12) >> 4) }
    /// The header length in bytes, options included.
    @inlinable public var headerLength: Int { dataOffset * 4 }
    @inlinable public var flags: TCPFlags {
        get { TCPFlags(rawValue: bytes.u8(13)) }
        nonmutating set { bytes.setU8(13, newValue.rawValue) }
    }
    /// SEG.WND as sent: not yet shifted by the window scale (RFC 7323 2.2).
    @inlinable public var window: UInt16 {
        get { bytes.be16(14) }
        nonmutating set { bytes.setBE16(14, newValue) }
    }
    @inlinable public var checksum: UInt16 {
        get { bytes.be16(16) }
        nonmutating set { bytes.setBE16(16, newValue) }
    }
    /// SEG.UP: meaningful only when the URG flag is set.
    @inlinable public var urgentPointer: UInt16 {
        get { bytes.be16(18) }
        nonmutating set { bytes.setBE16(18, newValue) }
    }

    /// The header including options.
    @inlinable public var header: UnsafeMutableRawBufferPointer { bytes.slice(0..<headerLength) }
    /// Options bytes (empty for a 20-byte header), padding included.
    @inlinable public var options: UnsafeMutableRawBufferPointer { bytes.slice(Self.minimumHeaderLength..<headerLength) }
    @inlinable public var payload: UnsafeMutableRawBufferPointer { bytes.slice(headerLength..<bytes.count) }

    /// True if the checksum over the IPv4 pseudo-header (RFC 9293 3.1, whose TCP
    /// length is the segment's byte count), header and payload verifies.
    @inlinable
    public func checksumIsValid(source: IPAddress, destination: IPAddress) -> Bool {
        InternetChecksum.overTransport(bytes, source: source, destination: destination, protocol: .tcp).verifies
    }

    /// Computes the checksum over pseudo-header, header and payload.
    @inlinable
    public func fillChecksum(source: IPAddress, destination: IPAddress) {
        checksum = 0
        checksum = InternetChecksum.overTransport(bytes, source: source, destination: destination, protocol: .tcp).value
    }

    /// Leaves the checksum for a device to complete (checksum offload,
    /// Linux's CHECKSUM_PARTIAL): the field holds the folded sum of the
    /// pseudo-header alone, not complemented, whose length is the whole
    /// segment's even when the device will cut it into several (TSO).
    @inlinable
    public func fillPartialChecksum(source: IPAddress, destination: IPAddress) {
        var c = InternetChecksum()
        c.addPseudoHeader(source: source, destination: destination, protocol: IPProtocol.tcp.rawValue,
                          length: bytes.count)
        checksum = c.sum
    }
}

/// A TCP header as a plain value, options parsed. The short names are RFC 9293
/// 3.3.1's segment variables: SEG.SEQ, SEG.ACK, SEG.WND, SEG.UP.
public struct TCPRepr: Equatable, Sendable {
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var seq: SequenceNumber
    /// Present exactly when the ACK flag is set: `emit` sets or clears the flag
    /// to match, and writes zero in the field when absent.
    public var ack: SequenceNumber?
    /// Control bits. ACK follows `ack` (the initialiser and `emit` align it).
    public var flags: TCPFlags
    /// The raw 16-bit window field, not scaled.
    public var window: UInt16
    public var urgentPointer: UInt16
    public var options: TCPOptions
    /// Bytes after the header.
    public var payloadLength: Int

    public init(sourcePort: UInt16, destinationPort: UInt16, seq: SequenceNumber, ack: SequenceNumber? = nil,
                flags: TCPFlags, window: UInt16, urgentPointer: UInt16 = 0, options: TCPOptions = TCPOptions(),
                payloadLength: Int = 0) {
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.seq = seq
        self.ack = ack
        self.flags = ack == nil ? flags.subtracting(.ack) : flags.union(.ack)
        self.window = window
        self.urgentPointer = urgentPointer
        self.options = options
        self.payloadLength = payloadLength
    }

    /// Reads the header and its options; throws `.badOption` for malformed options.
    @inlinable
    public init(parsing s: TCPSegment) throws(WireError) {
        let flags = s.flags
        self.init(sourcePort: s.sourcePort, destinationPort: s.destinationPort, seq: s.sequenceNumber,
                  ack: flags.contains(.ack) ? s.acknowledgmentNumber : nil, flags: flags, window: s.window,
                  urgentPointer: s.urgentPointer, options: try TCPOptions(parsing: s.options),
                  payloadLength: s.payload.count)
    }

    /// The header length in bytes: 20 plus the encoded options (a multiple of 4, at most 60).
    @inlinable public var headerLength: Int { TCPSegment.minimumHeaderLength + options.encodedLength }
    /// Header and payload: the segment's byte count.
    @inlinable public var length: Int { headerLength + payloadLength }
    /// SEG.LEN (RFC 9293 3.4): the sequence space the segment occupies, its
    /// payload plus one each for SYN and FIN.
    @inlinable public var segmentLength: Int {
        payloadLength + (flags.contains(.syn) ? 1 : 0) + (flags.contains(.fin) ? 1 : 0)
    }

    /// Writes the header and options at the start of `bytes` and, since the
    /// payload must already be in place after them, the checksum over `length` bytes.
    @inlinable
    public func emit(into bytes: UnsafeMutableRawBufferPointer, source: IPAddress, destination: IPAddress) {
        emitHeader(into: bytes).fillChecksum(source: source, destination: destination)
    }

    /// Writes the header and options and leaves the checksum for the device
    /// to complete (`TCPSegment.fillPartialChecksum`).
    @inlinable
    public func emitLeavingChecksum(into bytes: UnsafeMutableRawBufferPointer, source: IPAddress,
                                    destination: IPAddress) {
        emitHeader(into: bytes).fillPartialChecksum(source: source, destination: destination)
    }

    /// Writes the header and options; returns the segment they head.
    @inlinable
    func emitHeader(into bytes: UnsafeMutableRawBufferPointer) -> TCPSegment {
        let headerLength = self.headerLength
        precondition(bytes.count >= headerLength + payloadLength)
        bytes.setBE16(0, sourcePort)
        bytes.setBE16(2, destinationPort)
        bytes.setBE32(4, seq.rawValue)
        bytes.setBE32(8, ack?.rawValue ?? 0)
        bytes.setU8(12, UInt8(headerLength / 4) << 4)
        bytes.setU8(13, (ack == nil ? flags.subtracting(.ack) : flags.union(.ack)).rawValue)
        bytes.setBE16(14, window)
        bytes.setBE16(16, 0)
        bytes.setBE16(18, urgentPointer)
        let written = options.emit(into: bytes.slice(TCPSegment.minimumHeaderLength..<headerLength))
        assert(TCPSegment.minimumHeaderLength + written == headerLength)
        return TCPSegment(unchecked: bytes.slice(0..<headerLength + payloadLength))
    }
}

extension TCPSegment {
    @inlinable init(unchecked bytes: UnsafeMutableRawBufferPointer) { self.bytes = bytes }
}

extension TCPSegment: PseudoHeaderChecksummed {}

extension TCPRepr: PseudoHeaderEmitting {}
