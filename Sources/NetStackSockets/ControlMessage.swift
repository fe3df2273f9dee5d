import CNetStackABI
import NetStackWire

/// The control protocol's messages (`ns_request`, `ns_reply` in
/// `netstack_abi.h`): fixed 64-byte records in host order, one per call the
/// application cannot do on its rings alone. Decoded and encoded field by
/// field at the C layout's offsets, never by casting a pointer to the struct.
public enum ControlMessage {
    public static let size = 64
}

/// What a request asks.
public enum ControlOperation: UInt32, Sendable {
    case socket = 1, bind, listen, connect, accept, shutdown, close, setOption, forkPrepare, forkClaim, region, spawnHold
    case claimPassed
}

/// An endpoint as the messages carry it (`ns_addr`): family 4 or 6, the port
/// in host order, the address bytes in network order.
public struct SocketAddress: Equatable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16

    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    public var description: String { "\(address):\(port)" }

    static let size = 20

    /// Reads an `ns_addr` at `offset`; nil for family 0 or one it does not know.
    static func decode(_ bytes: RawSpan, at offset: Int) -> SocketAddress? {
        let family = bytes.unsafeLoadUnaligned(fromByteOffset: offset, as: UInt16.self)
        let port = bytes.unsafeLoadUnaligned(fromByteOffset: offset + 2, as: UInt16.self)
        switch family {
        case 4:
            let v = bytes.unsafeLoadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
            return SocketAddress(address: .v4(IPv4Address(UInt32(bigEndian: v))), port: port)
        case 6:
            let high = bytes.unsafeLoadUnaligned(fromByteOffset: offset + 4, as: UInt64.self)
            let low = bytes.unsafeLoadUnaligned(fromByteOffset: offset + 12, as: UInt64.self)
            return SocketAddress(address: .v6(IPv6Address(high: UInt64(bigEndian: high), low: UInt64(bigEndian: low))),
                                 port: port)
        default:
            return nil
        }
    }

    /// Writes an `ns_addr` at `offset` (all zero for nil).
    static func encode(_ a: SocketAddress?, into bytes: inout MutableRawSpan, at offset: Int) {
        guard let a else { return }
        bytes.storeBytes(of: a.port, toByteOffset: offset + 2, as: UInt16.self)
        switch a.address {
        case .v4(let v):
            bytes.storeBytes(of: 4, toByteOffset: offset, as: UInt16.self)
            bytes.storeBytes(of: v.value.bigEndian, toByteOffset: offset + 4, as: UInt32.self)
        case .v6(let v):
            bytes.storeBytes(of: 6, toByteOffset: offset, as: UInt16.self)
            bytes.storeBytes(of: v.high.bigEndian, toByteOffset: offset + 4, as: UInt64.self)
            bytes.storeBytes(of: v.low.bigEndian, toByteOffset: offset + 12, as: UInt64.self)
        }
    }
}

/// A request from the application (`ns_request`).
public struct ControlRequest: Equatable, Sendable {
    public var operation: ControlOperation
    /// The stack's id of the socket (0 for `.socket`).
    public var socket: UInt32
    public var arg0: Int32
    public var arg1: Int32
    public var value: Int64
    public var address: SocketAddress?

    public init(operation: ControlOperation, socket: UInt32 = 0, arg0: Int32 = 0, arg1: Int32 = 0, value: Int64 = 0,
                address: SocketAddress? = nil) {
        self.operation = operation
        self.socket = socket
        self.arg0 = arg0
        self.arg1 = arg1
        self.value = value
        self.address = address
    }

    /// Whether the application waits for a reply: not to a close it
    /// posted (without `NS_CLOSE_REPLY`), nor to a shutdown it posted
    /// (`NS_NO_REPLY`), whatever the outcome, or the channel would hand its
    /// next call a stale answer.
    public var expectsReply: Bool {
        switch operation {
        case .close: arg1 & Int32(NS_CLOSE_REPLY) != 0
        case .shutdown: arg1 & Int32(NS_NO_REPLY) == 0
        default: true
        }
    }

    /// Decodes one request from the first 64 bytes; nil if shorter or the operation is unknown.
    public init?(_ bytes: RawSpan) {
        guard bytes.byteCount >= ControlMessage.size,
              let op = ControlOperation(rawValue: bytes.unsafeLoadUnaligned(fromByteOffset: 0, as: UInt32.self))
        else { return nil }
        operation = op
        socket = bytes.unsafeLoadUnaligned(fromByteOffset: 4, as: UInt32.self)
        arg0 = bytes.unsafeLoadUnaligned(fromByteOffset: 8, as: Int32.self)
        arg1 = bytes.unsafeLoadUnaligned(fromByteOffset: 12, as: Int32.self)
        value = bytes.unsafeLoadUnaligned(fromByteOffset: 16, as: Int64.self)
        address = SocketAddress.decode(bytes, at: 24)
    }

    /// The 64 bytes the library sends (tests, and a client in Swift).
    public var encoded: [UInt8] {
        var out = [UInt8](repeating: 0, count: ControlMessage.size)
        var span = out.mutableSpan
        var raw = span.mutableBytes
        raw.storeBytes(of: operation.rawValue, toByteOffset: 0, as: UInt32.self)
        raw.storeBytes(of: socket, toByteOffset: 4, as: UInt32.self)
        raw.storeBytes(of: arg0, toByteOffset: 8, as: Int32.self)
        raw.storeBytes(of: arg1, toByteOffset: 12, as: Int32.self)
        raw.storeBytes(of: value, toByteOffset: 16, as: Int64.self)
        SocketAddress.encode(address, into: &raw, at: 24)
        _ = consume raw
        _ = consume span
        return out
    }
}

/// The stack's answer (`ns_reply`). A new socket's descriptors travel beside
/// it (SCM_RIGHTS): the memfd, the application's eventfd, the doorbell.
public struct ControlReply: Equatable, Sendable {
    /// 0 or more on success, else minus an errno.
    public var result: Int32
    public var socket: UInt32 = 0
    public var ringSize: UInt32 = 0
    /// The new socket's region's number (`SocketRegion.serial`; 0: none).
    public var regionSerial: UInt32 = 0
    public var local: SocketAddress?
    public var peer: SocketAddress?

    public init(result: Int32, socket: UInt32 = 0, ringSize: UInt32 = 0, regionSerial: UInt32 = 0,
                local: SocketAddress? = nil, peer: SocketAddress? = nil) {
        self.result = result
        self.socket = socket
        self.ringSize = ringSize
        self.regionSerial = regionSerial
        self.local = local
        self.peer = peer
    }

    public static func failure(_ errno: Int32) -> ControlReply { ControlReply(result: -errno) }

    /// Writes the 64 bytes into the front of `bytes` (at least 64).
    public func encode(into bytes: inout MutableRawSpan) {
        precondition(bytes.byteCount >= ControlMessage.size)
        for i in 0..<ControlMessage.size { bytes.storeBytes(of: 0, toByteOffset: i, as: UInt8.self) }
        bytes.storeBytes(of: result, toByteOffset: 0, as: Int32.self)
        bytes.storeBytes(of: socket, toByteOffset: 4, as: UInt32.self)
        bytes.storeBytes(of: ringSize, toByteOffset: 8, as: UInt32.self)
        bytes.storeBytes(of: regionSerial, toByteOffset: 12, as: UInt32.self)
        SocketAddress.encode(local, into: &bytes, at: 16)
        SocketAddress.encode(peer, into: &bytes, at: 36)
    }

    /// Decodes a reply (tests, and a client in Swift).
    public init?(_ bytes: RawSpan) {
        guard bytes.byteCount >= ControlMessage.size else { return nil }
        result = bytes.unsafeLoadUnaligned(fromByteOffset: 0, as: Int32.self)
        socket = bytes.unsafeLoadUnaligned(fromByteOffset: 4, as: UInt32.self)
        ringSize = bytes.unsafeLoadUnaligned(fromByteOffset: 8, as: UInt32.self)
        regionSerial = bytes.unsafeLoadUnaligned(fromByteOffset: 12, as: UInt32.self)
        local = SocketAddress.decode(bytes, at: 16)
        peer = SocketAddress.decode(bytes, at: 36)
    }
}
