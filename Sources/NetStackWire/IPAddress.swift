/// A 128-bit IPv6 address (RFC 4291 2), stored as two big-endian halves so that
/// comparing and hashing cost two words.
public struct IPv6Address: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The first 64 bits, most significant first.
    public var high: UInt64
    /// The last 64 bits.
    public var low: UInt64

    @inlinable
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    /// The address from its eight 16-bit groups, as written (`fd00::1` is `0xfd00, 0, ..., 1`).
    public init(_ g0: UInt16, _ g1: UInt16, _ g2: UInt16, _ g3: UInt16,
                _ g4: UInt16, _ g5: UInt16, _ g6: UInt16, _ g7: UInt16) {
        high = UInt64(g0) << 48 | UInt64(g1) << 32 | UInt64(g2) << 16 | UInt64(g3)
        low = UInt64(g4) << 48 | UInt64(g5) << 32 | UInt64(g6) << 16 | UInt64(g7)
    }

    public static let unspecified = IPv6Address(high: 0, low: 0)

    /// Group `i` (0 to 7) of the address.
    public func group(_ i: Int) -> UInt16 {
        precondition((0..<8).contains(i))
        let half = i < 4 ? high : low
        return UInt16(truncatingIfNeeded: half >> (48 - 16 * UInt64(i % 4)))
    }

    public var isUnspecified: Bool { high == 0 && low == 0 }
    /// ff00::/8 (RFC 4291 2.7).
    public var isMulticast: Bool { high >> 56 == 0xff }
    /// fe80::/10 (RFC 4291 2.5.6).
    public var isLinkLocal: Bool { high >> 54 == 0x3fa }
    /// ::1 (RFC 4291 2.5.3).
    public var isLoopback: Bool { high == 0 && low == 1 }

    public static func < (a: IPv6Address, b: IPv6Address) -> Bool {
        a.high != b.high ? a.high < b.high : a.low < b.low
    }

    /// The text form of RFC 5952 4: lower-case hex, leading zeros dropped, the
    /// longest run of two or more zero groups (the first on a tie) as `::`.
    public var description: String {
        let groups = (0..<8).map(group)
        var bestStart = -1, bestLength = 1
        var i = 0
        while i < 8 {
            guard groups[i] == 0 else { i += 1; continue }
            var j = i
            while j < 8 && groups[j] == 0 { j += 1 }
            if j - i > bestLength { bestStart = i; bestLength = j - i }
            i = j
        }
        func hex(_ range: Range<Int>) -> String {
            range.map { String(groups[$0], radix: 16) }.joined(separator: ":")
        }
        guard bestStart >= 0 else { return hex(0..<8) }
        return hex(0..<bestStart) + "::" + hex((bestStart + bestLength)..<8)
    }

    /// Parses the RFC 4291 2.2 text forms without an embedded IPv4 part
    /// (`fd00::1`, `fe80:0:0:0:0:0:0:1`); nil for anything else.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "::", maxSplits: 1, omittingEmptySubsequences: false)
        func parse(_ s: Substring) -> [UInt16]? {
            if s.isEmpty { return [] }
            var out: [UInt16] = []
            for g in s.split(separator: ":", omittingEmptySubsequences: false) {
                guard (1...4).contains(g.count), let v = UInt16(g, radix: 16) else { return nil }
                out.append(v)
            }
            return out
        }
        var groups: [UInt16]
        if parts.count == 2 {
            guard let head = parse(Substring(parts[0])), let tail = parse(Substring(parts[1])),
                  head.count + tail.count <= 7 else { return nil }
            groups = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard let all = parse(Substring(text)), all.count == 8 else { return nil }
            groups = all
        }
        self.init(groups[0], groups[1], groups[2], groups[3], groups[4], groups[5], groups[6], groups[7])
    }
}

// MARK: - Well-known addresses and address classes

extension IPv6Address {
    /// ff02::1, every node on the link (RFC 4291 2.7.1).
    public static let allNodes = IPv6Address(0xff02, 0, 0, 0, 0, 0, 0, 1)
    /// ff02::2, every router on the link (RFC 4291 2.7.1).
    public static let allRouters = IPv6Address(0xff02, 0, 0, 0, 0, 0, 0, 2)

    /// ff02::1:ff00:0/104, the solicited-node prefix (RFC 4291 2.7.1).
    private static var solicitedNodeHigh: UInt64 { 0xff02_0000_0000_0000 }
    private static var solicitedNodeLow: UInt64 { 0x0000_0001_ff00_0000 }

    /// The solicited-node multicast address of this one (RFC 4291 2.7.1):
    /// ff02::1:ff followed by its last 24 bits. Neighbour solicitations for it
    /// go there (RFC 4861 7.2.2), so a node joins one group per unicast address.
    public var solicitedNodeMulticast: IPv6Address {
        IPv6Address(high: Self.solicitedNodeHigh, low: Self.solicitedNodeLow | low & 0xff_ffff)
    }

    /// In ff02::1:ff00:0/104 (RFC 4291 2.7.1).
    public var isSolicitedNodeMulticast: Bool {
        high == Self.solicitedNodeHigh && low & 0xffff_ffff_ff00_0000 == Self.solicitedNodeLow
    }

    /// The Ethernet address a multicast datagram to this address goes to:
    /// 33:33 and the address's last 32 bits (RFC 2464 7).
    public var multicastMAC: MACAddress {
        MACAddress(0x33, 0x33, UInt8(truncatingIfNeeded: low >> 24), UInt8(truncatingIfNeeded: low >> 16),
                   UInt8(truncatingIfNeeded: low >> 8), UInt8(truncatingIfNeeded: low))
    }

    /// fe80::/64 with the modified EUI-64 interface identifier of `mac`
    /// (RFC 4291 2.5.1 and Appendix A, RFC 2464 4-5): ff:fe inserted in the
    /// middle and the universal/local bit inverted, so 02:00:0a:00:00:01
    /// (locally administered) gives fe80::aff:fe00:1, as Linux assigns it.
    public static func linkLocal(eui64 mac: MACAddress) -> IPv6Address {
        let b = mac.bytes
        let oui = UInt64(b.0 ^ 0x02) << 56 | UInt64(b.1) << 48 | UInt64(b.2) << 40
        let nic = UInt64(b.3) << 16 | UInt64(b.4) << 8 | UInt64(b.5)
        return IPv6Address(high: 0xfe80_0000_0000_0000, low: oui | 0x0000_00ff_fe00_0000 | nic)
    }

    /// fc00::/7, unique local addresses (RFC 4193 3.1).
    public var isUniqueLocal: Bool { high >> 57 == 0x7e }

    /// ::ffff:0:0/96, an IPv4 address written as IPv6 (RFC 4291 2.5.5.2).
    /// Never on the wire as a source or destination (RFC 4942 2.2).
    public var isIPv4Mapped: Bool { high == 0 && low >> 32 == 0xffff }

    /// The scope of a multicast address (RFC 4291 2.7, RFC 7346): 1 interface,
    /// 2 link, 5 site, 8 organisation, 14 global; nil for any other address.
    public var multicastScope: UInt8? {
        isMulticast ? UInt8(truncatingIfNeeded: high >> 48) & 0x0f : nil
    }
}

/// An IPv6 network: an address and a prefix length, as in `fd00::2/64`
/// (RFC 4291 2.3).
public struct IPv6CIDR: Hashable, Sendable, CustomStringConvertible {
    public var address: IPv6Address
    public var prefixLength: Int

    public init(address: IPv6Address, prefixLength: Int) {
        precondition((0...128).contains(prefixLength), "prefix length out of range")
        self.address = address
        self.prefixLength = prefixLength
    }

    /// Parses `address/n` with n from 0 to 128.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = IPv6Address(parts[0]), (1...3).contains(parts[1].count),
              parts[1].allSatisfy(\.isASCIIDigit), let n = Int(parts[1]), (0...128).contains(n) else { return nil }
        self.init(address: a, prefixLength: n)
    }

    /// The mask of the prefix bits in each half.
    private var masks: (high: UInt64, low: UInt64) {
        let n = prefixLength
        let high: UInt64 = n >= 64 ? ~0 : n == 0 ? 0 : ~0 << (64 - n)
        let low: UInt64 = n <= 64 ? 0 : n == 128 ? ~0 : ~0 << (128 - n)
        return (high, low)
    }

    /// The network: the address with the host bits cleared.
    public var prefix: IPv6Address {
        let m = masks
        return IPv6Address(high: address.high & m.high, low: address.low & m.low)
    }

    public func contains(_ a: IPv6Address) -> Bool {
        let m = masks
        return a.high & m.high == address.high & m.high && a.low & m.low == address.low & m.low
    }

    public var description: String { "\(address)/\(prefixLength)" }
}

/// An address of either family, for what does not care which: transport
/// endpoints, the 4-tuple, ISNs, pseudo-header checksums.
public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    case v4(IPv4Address)
    case v6(IPv6Address)

    /// Parses either text form (`10.0.0.2`, `fd00::1`).
    public init?(_ text: some StringProtocol) {
        if let a = IPv4Address(text) {
            self = .v4(a)
        } else if let a = IPv6Address(text) {
            self = .v6(a)
        } else {
            return nil
        }
    }

    public var ipv4: IPv4Address? {
        if case .v4(let a) = self { return a }
        return nil
    }

    public var ipv6: IPv6Address? {
        if case .v6(let a) = self { return a }
        return nil
    }

    public var isUnspecified: Bool {
        switch self {
        case .v4(let a): a.isUnspecified
        case .v6(let a): a.isUnspecified
        }
    }

    public var isMulticast: Bool {
        switch self {
        case .v4(let a): a.isMulticast
        case .v6(let a): a.isMulticast
        }
    }

    /// `10.0.0.2`, or `[fd00::1]` so that a port can follow.
    public var description: String {
        switch self {
        case .v4(let a): a.description
        case .v6(let a): "[\(a)]"
        }
    }
}
