/// A view of an ICMPv4 message in place (RFC 792): type, code, checksum, four
/// bytes whose meaning depends on the type, then data.
public struct ICMPv4Packet {
    public let bytes: UnsafeMutableRawBufferPointer

    public static var headerLength: Int { 8 }

    @inlinable
    public init(validating bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        guard bytes.count >= Self.headerLength else { throw .truncated }
        self.bytes = bytes
    }

    @inlinable public var type: UInt8 {
        get { bytes.u8(0) }
        nonmutating set { bytes.setU8(0, newValue) }
    }
    @inlinable public var code: UInt8 {
        get { bytes.u8(1) }
        nonmutating set { bytes.setU8(1, newValue) }
    }
    @inlinable public var checksum: UInt16 {
        get { bytes.be16(2) }
        nonmutating set { bytes.setBE16(2, newValue) }
    }
    /// Echo identifier (bytes 4-5 of echo messages).
    @inlinable public var echoIdentifier: UInt16 { bytes.be16(4) }
    /// Echo sequence number (bytes 6-7 of echo messages).
    @inlinable public var echoSequence: UInt16 { bytes.be16(6) }
    /// Next-hop MTU of a "fragmentation needed" message (RFC 1191).
    @inlinable public var nextHopMTU: UInt16 { bytes.be16(6) }
    @inlinable public var data: UnsafeMutableRawBufferPointer { bytes.slice(Self.headerLength..<bytes.count) }

    /// True if the checksum over the whole message verifies.
    @inlinable public var checksumIsValid: Bool {
        var c = InternetChecksum()
        c.add(bytes)
        return c.verifies
    }

    @inlinable public func fillChecksum() {
        checksum = 0
        checksum = InternetChecksum.compute(UnsafeRawBufferPointer(bytes))
    }
}

/// The ICMPv4 messages the stack sends and understands. Others parse as `.other`.
public enum ICMPv4Message: Equatable, Sendable {
    case echoReply(identifier: UInt16, sequence: UInt16)
    case destinationUnreachable(DestinationUnreachable, nextHopMTU: UInt16 = 0)
    case echoRequest(identifier: UInt16, sequence: UInt16)
    case timeExceeded(code: UInt8)
    case other(type: UInt8, code: UInt8, rest: UInt32)

    /// Codes of type 3 (RFC 792, RFC 1122 3.2.2.1).
    public enum DestinationUnreachable: UInt8, Sendable {
        case network = 0, host = 1, `protocol` = 2, port = 3, fragmentationNeeded = 4, sourceRouteFailed = 5
    }

    public static var echoReplyType: UInt8 { 0 }
    public static var destinationUnreachableType: UInt8 { 3 }
    public static var echoRequestType: UInt8 { 8 }
    public static var timeExceededType: UInt8 { 11 }
}

/// An ICMPv4 header as a plain value; the data (echo payload, or the original
/// datagram's header and first 8 bytes for errors) is separate.
public struct ICMPv4Repr: Equatable, Sendable {
    public var message: ICMPv4Message
    public var dataLength: Int

    public init(message: ICMPv4Message, dataLength: Int) {
        self.message = message
        self.dataLength = dataLength
    }

    public init(parsing p: ICMPv4Packet) {
        let rest = UInt32(p.bytes.be16(4)) << 16 | UInt32(p.bytes.be16(6))
        let message: ICMPv4Message
        switch p.type {
        case ICMPv4Message.echoReplyType where p.code == 0:
            message = .echoReply(identifier: p.echoIdentifier, sequence: p.echoSequence)
        case ICMPv4Message.echoRequestType where p.code == 0:
            message = .echoRequest(identifier: p.echoIdentifier, sequence: p.echoSequence)
        case ICMPv4Message.destinationUnreachableType:
            if let code = ICMPv4Message.DestinationUnreachable(rawValue: p.code) {
                message = .destinationUnreachable(code, nextHopMTU: code == .fragmentationNeeded ? p.nextHopMTU : 0)
            } else {
                message = .other(type: p.type, code: p.code, rest: rest)
            }
        case ICMPv4Message.timeExceededType:
            message = .timeExceeded(code: p.code)
        default:
            message = .other(type: p.type, code: p.code, rest: rest)
        }
        self.init(message: message, dataLength: p.data.count)
    }

    public var length: Int { ICMPv4Packet.headerLength + dataLength }

    /// Writes the 8-byte header at the start of `bytes` and, since the data
    /// must already be in place after it, the checksum over `length` bytes.
    public func emit(into bytes: UnsafeMutableRawBufferPointer) {
        precondition(dataLength >= 0 && bytes.count >= length, "data length out of range")
        emitFields(into: bytes)
        let packet = ICMPv4Packet(unchecked: bytes.slice(0..<length))
        packet.fillChecksum()
    }

    /// Writes the 8-byte header into `header` with the checksum over it and
    /// `data`, which lies elsewhere (a datagram sent in pieces, fragmented by IP).
    public func emitHeader(into header: UnsafeMutableRawBufferPointer, data: UnsafeRawBufferPointer) {
        precondition(header.count >= ICMPv4Packet.headerLength && data.count == dataLength, "lengths disagree")
        emitFields(into: header)
        header.setBE16(2, 0)
        var c = InternetChecksum()
        c.add(UnsafeRawBufferPointer(header.slice(0..<ICMPv4Packet.headerLength)))
        c.add(data)
        header.setBE16(2, c.value)
    }

    private func emitFields(into bytes: UnsafeMutableRawBufferPointer) {
        let type: UInt8, code: UInt8, rest: UInt32
        switch message {
        case let .echoReply(id, seq):
            (type, code, rest) = (ICMPv4Message.echoReplyType, 0, UInt32(id) << 16 | UInt32(seq))
        case let .echoRequest(id, seq):
            (type, code, rest) = (ICMPv4Message.echoRequestType, 0, UInt32(id) << 16 | UInt32(seq))
        case let .destinationUnreachable(c, mtu):
            (type, code, rest) = (ICMPv4Message.destinationUnreachableType, c.rawValue, UInt32(mtu))
        case let .timeExceeded(c):
            (type, code, rest) = (ICMPv4Message.timeExceededType, c, 0)
        case let .other(t, c, r):
            (type, code, rest) = (t, c, r)
        }
        bytes.setU8(0, type)
        bytes.setU8(1, code)
        bytes.setBE32(4, rest)
    }
}

extension ICMPv4Packet {
    @inlinable init(unchecked bytes: UnsafeMutableRawBufferPointer) { self.bytes = bytes }
}
