/// ICMPv6 message types (RFC 4443 2.1, RFC 4861 4). Errors are 0-127,
/// informational messages 128-255.
public enum ICMPv6Type {
    @inlinable public static var destinationUnreachable: UInt8 { 1 }
    @inlinable public static var packetTooBig: UInt8 { 2 }
    @inlinable public static var timeExceeded: UInt8 { 3 }
    @inlinable public static var parameterProblem: UInt8 { 4 }
    @inlinable public static var echoRequest: UInt8 { 128 }
    @inlinable public static var echoReply: UInt8 { 129 }
    @inlinable public static var routerSolicitation: UInt8 { 133 }
    @inlinable public static var routerAdvertisement: UInt8 { 134 }
    @inlinable public static var neighborSolicitation: UInt8 { 135 }
    @inlinable public static var neighborAdvertisement: UInt8 { 136 }
    @inlinable public static var redirect: UInt8 { 137 }
}

/// Codes of destination unreachable (RFC 4443 3.1).
public enum ICMPv6Unreachable {
    @inlinable public static var noRoute: UInt8 { 0 }
    @inlinable public static var adminProhibited: UInt8 { 1 }
    @inlinable public static var beyondScope: UInt8 { 2 }
    @inlinable public static var address: UInt8 { 3 }
    @inlinable public static var port: UInt8 { 4 }
}

/// Codes of time exceeded (RFC 4443 3.3).
public enum ICMPv6TimeExceeded {
    @inlinable public static var hopLimit: UInt8 { 0 }
    @inlinable public static var reassembly: UInt8 { 1 }
}

/// Codes of parameter problem (RFC 4443 3.4, RFC 7112 3).
public enum ICMPv6ParameterProblem {
    @inlinable public static var erroneousHeaderField: UInt8 { 0 }
    @inlinable public static var unrecognizedNextHeader: UInt8 { 1 }
    @inlinable public static var unrecognizedOption: UInt8 { 2 }
    /// The first fragment does not hold the whole header chain (RFC 7112 3).
    @inlinable public static var incompleteHeaderChain: UInt8 { 3 }
}

/// A view of an ICMPv6 message in place (RFC 4443 2.1): type, code,
/// checksum, then a body whose first four bytes depend on the type. Every
/// message RFC 4443 and RFC 4861 define is at least 8 bytes, so the view
/// requires 8 and reads those four bytes unchecked.
///
/// The checksum covers the IPv6 pseudo-header (RFC 4443 2.3, RFC 8200 8.1),
/// so it is checked separately with `checksumIsValid(source:destination:)`.
public struct ICMPv6Packet {
    /// The whole message: the IPv6 payload after any extension headers.
    public let bytes: UnsafeMutableRawBufferPointer

    public static var headerLength: Int { 8 }
    /// The most of the offending packet an error quotes, so that the error
    /// fits the minimum MTU (RFC 4443 2.4(c), RFC 8200 5): 1280 less the IPv6
    /// and ICMPv6 headers.
    public static let errorQuoteLimit = 1280 - 40 - 8

    @inlinable
    public init(validating bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        guard bytes.count >= Self.headerLength else { throw .truncated }
        self.bytes = bytes
    }

    @inlinable init(unchecked bytes: UnsafeMutableRawBufferPointer) { self.bytes = bytes }

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
    /// Types 0-127 are errors (RFC 4443 2.1), never answered with an error (2.4(e)).
    @inlinable public var isError: Bool { type < 128 }
    /// Echo identifier (bytes 4-5 of echo messages, RFC 4443 4).
    @inlinable public var echoIdentifier: UInt16 { bytes.be16(4) }
    /// Echo sequence number (bytes 6-7 of echo messages).
    @inlinable public var echoSequence: UInt16 { bytes.be16(6) }
    /// The next hop's MTU in a packet too big message (RFC 4443 3.2).
    @inlinable public var mtu: UInt32 { bytes.be32(4) }
    /// The offset of the offending byte in a parameter problem (RFC 4443 3.4).
    @inlinable public var pointer: UInt32 { bytes.be32(4) }
    /// After the 8-byte header: echo data, or the packet an error quotes.
    @inlinable public var data: UnsafeMutableRawBufferPointer { bytes.slice(Self.headerLength..<bytes.count) }
    /// After type, code and checksum: the message body as RFC 4443 2.1 draws it.
    @inlinable public var body: UnsafeMutableRawBufferPointer { bytes.slice(4..<bytes.count) }

    /// True if the checksum over the pseudo-header (next header 58, the
    /// message's length) and the whole message verifies.
    @inlinable
    public func checksumIsValid(source: IPv6Address, destination: IPv6Address) -> Bool {
        var c = InternetChecksum()
        c.addPseudoHeader(source: source, destination: destination, protocol: IPProtocol.icmpv6.rawValue,
                          length: bytes.count)
        c.add(bytes)
        return c.verifies
    }

    @inlinable
    public func fillChecksum(source: IPv6Address, destination: IPv6Address) {
        checksum = 0
        var c = InternetChecksum()
        c.addPseudoHeader(source: source, destination: destination, protocol: IPProtocol.icmpv6.rawValue,
                          length: bytes.count)
        c.add(bytes)
        checksum = c.value
    }
}

/// The RFC 4443 messages the stack sends and answers. Neighbour discovery
/// (types 133-137) has its own views and `NDPRepr`.
public enum ICMPv6Message: Equatable, Sendable {
    case echoRequest(identifier: UInt16, sequence: UInt16)
    case echoReply(identifier: UInt16, sequence: UInt16)
    /// Codes in `ICMPv6Unreachable`.
    case destinationUnreachable(code: UInt8)
    case packetTooBig(mtu: UInt32)
    /// Codes in `ICMPv6TimeExceeded`.
    case timeExceeded(code: UInt8)
    /// Codes in `ICMPv6ParameterProblem`; `pointer` is an offset in the quoted packet.
    case parameterProblem(code: UInt8, pointer: UInt32)

    // The types again under ICMPv4Message's names.
    @inlinable public static var destinationUnreachableType: UInt8 { ICMPv6Type.destinationUnreachable }
    @inlinable public static var packetTooBigType: UInt8 { ICMPv6Type.packetTooBig }
    @inlinable public static var timeExceededType: UInt8 { ICMPv6Type.timeExceeded }
    @inlinable public static var parameterProblemType: UInt8 { ICMPv6Type.parameterProblem }
    @inlinable public static var echoRequestType: UInt8 { ICMPv6Type.echoRequest }
    @inlinable public static var echoReplyType: UInt8 { ICMPv6Type.echoReply }

    /// An error message (RFC 4443 2.1).
    public var isError: Bool {
        switch self {
        case .echoRequest, .echoReply: false
        case .destinationUnreachable, .packetTooBig, .timeExceeded, .parameterProblem: true
        }
    }
}

/// An ICMPv6 header as a plain value; the data (echo payload, or the quoted
/// packet of an error) is separate.
public struct ICMPv6Repr: Equatable, Sendable {
    public var message: ICMPv6Message
    public var dataLength: Int

    /// `ICMPv6Packet.errorQuoteLimit`.
    public static var errorQuoteLimit: Int { ICMPv6Packet.errorQuoteLimit }

    public init(message: ICMPv6Message, dataLength: Int) {
        self.message = message
        self.dataLength = dataLength
    }

    /// The message of `p`, or nil for types this value does not hold
    /// (neighbour discovery, MLD, unknown types, echo with a nonzero code).
    /// Codes of packet too big are ignored on receipt (RFC 4443 3.2).
    public init?(parsing p: ICMPv6Packet) {
        let message: ICMPv6Message
        switch p.type {
        case ICMPv6Type.echoRequest where p.code == 0:
            message = .echoRequest(identifier: p.echoIdentifier, sequence: p.echoSequence)
        case ICMPv6Type.echoReply where p.code == 0:
            message = .echoReply(identifier: p.echoIdentifier, sequence: p.echoSequence)
        case ICMPv6Type.destinationUnreachable:
            message = .destinationUnreachable(code: p.code)
        case ICMPv6Type.packetTooBig:
            message = .packetTooBig(mtu: p.mtu)
        case ICMPv6Type.timeExceeded:
            message = .timeExceeded(code: p.code)
        case ICMPv6Type.parameterProblem:
            message = .parameterProblem(code: p.code, pointer: p.pointer)
        default:
            return nil
        }
        self.init(message: message, dataLength: p.data.count)
    }

    public var length: Int { ICMPv6Packet.headerLength + dataLength }

    /// Writes the 8-byte header at the start of `bytes` and, since the data
    /// must already be in place after it, the checksum over `length` bytes.
    public func emit(into bytes: UnsafeMutableRawBufferPointer, source: IPv6Address, destination: IPv6Address) {
        precondition(dataLength >= 0 && bytes.count >= length, "data length out of range")
        emitFields(into: bytes)
        ICMPv6Packet(unchecked: bytes.slice(0..<length)).fillChecksum(source: source, destination: destination)
    }

    /// Writes the 8-byte header into `header` with the checksum over the
    /// pseudo-header, it and `data`, which lies elsewhere (an error's quote,
    /// sent as a second piece).
    public func emitHeader(into header: UnsafeMutableRawBufferPointer, data: UnsafeRawBufferPointer,
                           source: IPv6Address, destination: IPv6Address) {
        precondition(header.count >= ICMPv6Packet.headerLength && data.count == dataLength, "lengths disagree")
        emitFields(into: header)
        header.setBE16(2, 0)
        var c = InternetChecksum()
        c.addPseudoHeader(source: source, destination: destination, protocol: IPProtocol.icmpv6.rawValue,
                          length: length)
        c.add(UnsafeRawBufferPointer(header.slice(0..<ICMPv6Packet.headerLength)))
        c.add(data)
        header.setBE16(2, c.value)
    }

    private func emitFields(into bytes: UnsafeMutableRawBufferPointer) {
        let type: UInt8, code: UInt8, rest: UInt32
        switch message {
        case let .echoRequest(id, seq):
            (type, code, rest) = (ICMPv6Type.echoRequest, 0, UInt32(id) << 16 | UInt32(seq))
        case let .echoReply(id, seq):
            (type, code, rest) = (ICMPv6Type.echoReply, 0, UInt32(id) << 16 | UInt32(seq))
        case let .destinationUnreachable(c):
            (type, code, rest) = (ICMPv6Type.destinationUnreachable, c, 0)
        case let .packetTooBig(mtu):
            (type, code, rest) = (ICMPv6Type.packetTooBig, 0, mtu)
        case let .timeExceeded(c):
            (type, code, rest) = (ICMPv6Type.timeExceeded, c, 0)
        case let .parameterProblem(c, pointer):
            (type, code, rest) = (ICMPv6Type.parameterProblem, c, pointer)
        }
        bytes.setU8(0, type)
        bytes.setU8(1, code)
        bytes.setBE32(4, rest)
    }
}
