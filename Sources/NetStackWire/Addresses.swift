/// A 48-bit IEEE 802 MAC address, stored in network order in the low 48 bits.
public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    public var bytes: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)

    public init(_ b0: UInt8, _ b1: UInt8, _ b2: UInt8, _ b3: UInt8, _ b4: UInt8, _ b5: UInt8) {
        bytes = (b0, b1, b2, b3, b4, b5)
    }

    public static let broadcast = MACAddress(0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
    public static let zero = MACAddress(0, 0, 0, 0, 0, 0)

    /// Parses `aa:bb:cc:dd:ee:ff` or `aa-bb-cc-dd-ee-ff`: six pairs of hex
    /// digits and one kind of separator.
    public init?(_ text: some StringProtocol) {
        let separator: Character = text.contains("-") ? "-" : ":"
        let parts = text.split(separator: separator, omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var out = [UInt8]()
        for p in parts {
            guard p.count == 2, p.allSatisfy(\.isHexDigit), let v = UInt8(p, radix: 16) else { return nil }
            out.append(v)
        }
        self.init(out[0], out[1], out[2], out[3], out[4], out[5])
    }

    public var isBroadcast: Bool { self == .broadcast }
    /// The I/G bit (RFC 7042 2.1): set for group (multicast and broadcast) addresses.
    public var isMulticast: Bool { bytes.0 & 1 == 1 }
    /// A unicast address whose U/L bit marks it locally administered.
    public var isLocallyAdministeredUnicast: Bool { bytes.0 & 0x03 == 0x02 }

    public var description: String {
        let b = [bytes.0, bytes.1, bytes.2, bytes.3, bytes.4, bytes.5]
        return b.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":")
    }

    public static func == (a: MACAddress, b: MACAddress) -> Bool {
        a.bytes.0 == b.bytes.0 && a.bytes.1 == b.bytes.1 && a.bytes.2 == b.bytes.2
            && a.bytes.3 == b.bytes.3 && a.bytes.4 == b.bytes.4 && a.bytes.5 == b.bytes.5
    }

    public func hash(into h: inout Hasher) {
        h.combine(bytes.0); h.combine(bytes.1); h.combine(bytes.2)
        h.combine(bytes.3); h.combine(bytes.4); h.combine(bytes.5)
    }
}

/// An IPv4 address, held as a host-order `UInt32` (10.0.0.2 is 0x0A00_0002).
public struct IPv4Address: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var value: UInt32

    public init(_ value: UInt32) { self.value = value }
    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Parses dotted-quad text such as `10.0.0.2`.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy(\.isASCIIDigit), let o = UInt8(p) else { return nil }
            v = v << 8 | UInt32(o)
        }
        value = v
    }

    public static let any = IPv4Address(0)
    public static let broadcast = IPv4Address(0xffff_ffff)

    public var isBroadcast: Bool { value == 0xffff_ffff }
    /// 224.0.0.0/4 (RFC 5771).
    public var isMulticast: Bool { value >> 28 == 0xe }
    public var isUnspecified: Bool { value == 0 }
    /// 127.0.0.0/8 (RFC 1122 3.2.1.3 (g)).
    public var isLoopback: Bool { value >> 24 == 127 }

    /// Never the source of a datagram that arrives from a network, whoever the
    /// receiver is (RFC 1122 3.2.1.3, RFC 1812 5.3.7, Linux's martian
    /// sources): "this network" 0.0.0.0/8 (only a host that does not know its
    /// address yet sends from it, and it never expects an answer there),
    /// loopback 127.0.0.0/8, multicast 224.0.0.0/4, and class E 240.0.0.0/4
    /// with the limited broadcast 255.255.255.255 in it.
    /// `IPv4CIDR.isMartianSource(_:)` adds what depends on the receiver.
    public var isNeverASource: Bool {
        let first = value >> 24
        return first == 0 || first == 127 || first >= 224
    }

    public var description: String {
        "\(value >> 24).\(value >> 16 & 0xff).\(value >> 8 & 0xff).\(value & 0xff)"
    }

    public static func < (a: IPv4Address, b: IPv4Address) -> Bool { a.value < b.value }
}

/// An IPv4 network: an address and a prefix length, as in `10.0.0.1/24`.
public struct IPv4CIDR: Hashable, Sendable, CustomStringConvertible {
    public var address: IPv4Address
    public var prefixLength: Int

    public init(address: IPv4Address, prefixLength: Int) {
        precondition((0...32).contains(prefixLength), "prefix length out of range")
        self.address = address
        self.prefixLength = prefixLength
    }

    /// Parses `a.b.c.d/n`.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = IPv4Address(parts[0]), (1...2).contains(parts[1].count),
              parts[1].allSatisfy(\.isASCIIDigit), let n = Int(parts[1]), (0...32).contains(n) else { return nil }
        self.init(address: a, prefixLength: n)
    }

    public var netmask: UInt32 { prefixLength == 0 ? 0 : ~UInt32(0) << (32 - prefixLength) }
    public var network: IPv4Address { IPv4Address(address.value & netmask) }
    public var directedBroadcast: IPv4Address { IPv4Address(address.value | ~netmask) }

    /// `a` is this subnet's directed broadcast. A /31 (RFC 3021) and a /32
    /// have none: their all-ones address is a host's.
    public func isDirectedBroadcast(_ a: IPv4Address) -> Bool {
        prefixLength <= 30 && a == directedBroadcast
    }

    /// A datagram from `source` that arrives on an interface with this
    /// address must be dropped unanswered (RFC 1122 3.2.1.3, RFC 1812 5.3.7):
    /// a source no host has (`IPv4Address.isNeverASource`), this subnet's
    /// directed broadcast, or our own address (a datagram that claims to come
    /// from us came from someone else: the LAND attack).
    public func isMartianSource(_ source: IPv4Address) -> Bool {
        source.isNeverASource || source == address || isDirectedBroadcast(source)
    }

    public func contains(_ other: IPv4Address) -> Bool {
        other.value & netmask == address.value & netmask
    }

    public var description: String { "\(address)/\(prefixLength)" }
}

extension Character {
    /// 0-9 only (`isNumber` also accepts other scripts' digits).
    var isASCIIDigit: Bool { isASCII && isWholeNumber }
}
