/// The Internet checksum (RFC 1071): the one's-complement sum of 16-bit
/// big-endian words, complemented.
///
/// Sums are computed over native-order 64-bit loads, each split into 32-bit
/// halves added to a 64-bit accumulator (no carry chain, so the loop
/// vectorises), then folded. The one's-complement sum is byte-order
/// independent (RFC 1071 section 2(B)), so one byte swap at the end gives the
/// big-endian result.
public struct InternetChecksum: Sendable {
    @usableFromInline var accumulator: UInt64 = 0
    /// True when an odd number of bytes has been added, so the next chunk
    /// starts on the low byte of a word.
    @usableFromInline var odd = false

    @inlinable public init() {}

    /// Adds bytes. Chunks may have any length; odd boundaries are handled.
    @inlinable
    public mutating func add(_ bytes: UnsafeRawBufferPointer) {
        var s = UInt64(Self.foldedSum(bytes))
        if odd { s = UInt64(UInt16(truncatingIfNeeded: s).byteSwapped) }
        accumulator &+= s
        if bytes.count & 1 == 1 { odd.toggle() }
    }

    @inlinable
    public mutating func add(_ bytes: UnsafeMutableRawBufferPointer) {
        add(UnsafeRawBufferPointer(bytes))
    }

    /// Adds one big-endian 16-bit word. Only valid on a word boundary.
    @inlinable
    public mutating func add(_ word: UInt16) {
        assert(!odd, "word added at an odd offset")
        accumulator &+= UInt64(word)
    }

    /// Adds a 32-bit value as two big-endian words (an IPv4 address).
    @inlinable
    public mutating func add(_ value: UInt32) {
        add(UInt16(value >> 16))
        add(UInt16(truncatingIfNeeded: value))
    }

    /// Adds the IPv4 pseudo-header used by TCP and UDP (RFC 768, RFC 9293 3.1).
    @inlinable
    public mutating func addPseudoHeader(source: IPv4Address, destination: IPv4Address,
                                         protocol proto: UInt8, length: Int) {
        add(source.value)
        add(destination.value)
        add(UInt16(proto))
        add(UInt16(truncatingIfNeeded: length))
    }

    @inlinable
    mutating func add64(_ v: UInt64) {
        add(UInt32(truncatingIfNeeded: v >> 32))
        add(UInt32(truncatingIfNeeded: v))
    }

    /// Adds the IPv6 pseudo-header (RFC 8200 8.1): both addresses, the 32-bit
    /// upper-layer length and the next-header value.
    @inlinable
    public mutating func addPseudoHeader(source: IPv6Address, destination: IPv6Address,
                                         protocol proto: UInt8, length: Int) {
        add64(source.high)
        add64(source.low)
        add64(destination.high)
        add64(destination.low)
        add(UInt32(truncatingIfNeeded: length))
        add(UInt16(proto))
    }

    /// Adds the pseudo-header of either family; the addresses are of one family.
    @inlinable
    public mutating func addPseudoHeader(source: IPAddress, destination: IPAddress,
                                         protocol proto: UInt8, length: Int) {
        switch (source, destination) {
        case (.v4(let s), .v4(let d)):
            addPseudoHeader(source: s, destination: d, protocol: proto, length: length)
        case (.v6(let s), .v6(let d)):
            addPseudoHeader(source: s, destination: d, protocol: proto, length: length)
        default:
            preconditionFailure("pseudo-header over addresses of two families")
        }
    }

    /// The sum over the pseudo-header and a whole TCP or UDP segment
    /// (RFC 768, RFC 9293 3.1, RFC 8200 8.1), whose length is the segment's byte count.
    @inlinable
    public static func overTransport(_ segment: UnsafeMutableRawBufferPointer, source: IPAddress,
                                     destination: IPAddress, protocol proto: IPProtocol) -> InternetChecksum {
        var c = InternetChecksum()
        c.addPseudoHeader(source: source, destination: destination, protocol: proto.rawValue, length: segment.count)
        c.add(segment)
        return c
    }

    /// The one's-complement sum so far, folded to 16 bits (not complemented).
    @inlinable
    public var sum: UInt16 { Self.fold(accumulator) }

    /// The value to put in a checksum field: the complemented sum.
    @inlinable
    public var value: UInt16 { ~sum }

    /// True if the data added, checksum field included, verifies: its sum is all ones.
    @inlinable
    public var verifies: Bool { sum == 0xffff }

    /// The checksum of one buffer.
    @inlinable
    public static func compute(_ bytes: UnsafeRawBufferPointer) -> UInt16 {
        var c = InternetChecksum()
        c.add(bytes)
        return c.value
    }

    @inlinable
    static func fold(_ x: UInt64) -> UInt16 {
        var s = (x & 0xffff_ffff) &+ (x >> 32)
        s = (s & 0xffff) &+ (s >> 16)
        s = (s & 0xffff) &+ (s >> 16)
        s = (s & 0xffff) &+ (s >> 16)
        return UInt16(truncatingIfNeeded: s)
    }

    /// The folded one's-complement sum of `bytes` as big-endian words.
    @inlinable
    static func foldedSum(_ bytes: UnsafeRawBufferPointer) -> UInt16 {
        guard let base = bytes.baseAddress else { return 0 }
        let n = bytes.count
        var acc: UInt64 = 0
        var i = 0
        // Four independent accumulators keep the adds from waiting on each other.
        var a0: UInt64 = 0, a1: UInt64 = 0, a2: UInt64 = 0, a3: UInt64 = 0
        while i + 32 <= n {
            let w0 = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            let w1 = base.loadUnaligned(fromByteOffset: i + 8, as: UInt64.self)
            let w2 = base.loadUnaligned(fromByteOffset: i + 16, as: UInt64.self)
            let w3 = base.loadUnaligned(fromByteOffset: i + 24, as: UInt64.self)
            a0 &+= (w0 & 0xffff_ffff) &+ (w0 >> 32)
            a1 &+= (w1 & 0xffff_ffff) &+ (w1 >> 32)
            a2 &+= (w2 & 0xffff_ffff) &+ (w2 >> 32)
            a3 &+= (w3 & 0xffff_ffff) &+ (w3 >> 32)
            i += 32
        }
        acc = a0 &+ a1 &+ a2 &+ a3
        while i + 8 <= n {
            let w = base.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            acc &+= (w & 0xffff_ffff) &+ (w >> 32)
            i += 8
        }
        while i + 2 <= n {
            acc &+= UInt64(base.loadUnaligned(fromByteOffset: i, as: UInt16.self))
            i += 2
        }
        if i < n {
            // A trailing byte is the high byte of a zero-padded big-endian word,
            // which is the low byte of a native little-endian one.
            acc &+= UInt64(base.load(fromByteOffset: i, as: UInt8.self))
        }
        let native = fold(acc)
        #if _endian(little)
        return native.byteSwapped
        #else
        return native
        #endif
    }

    /// RFC 1624 eqn. 3: the new checksum field after one 16-bit word of the
    /// covered data changes from `old` to `new`: HC' = ~(~HC + ~m + m').
    @inlinable
    public static func update(_ checksum: UInt16, old: UInt16, new: UInt16) -> UInt16 {
        let s = UInt32(~checksum) &+ UInt32(~old) &+ UInt32(new)
        return ~fold(UInt64(s))
    }

    /// RFC 1624 update for a 32-bit field (an address) changing.
    @inlinable
    public static func update(_ checksum: UInt16, old: UInt32, new: UInt32) -> UInt16 {
        let c = update(checksum, old: UInt16(old >> 16), new: UInt16(new >> 16))
        return update(c, old: UInt16(truncatingIfNeeded: old), new: UInt16(truncatingIfNeeded: new))
    }
}

/// A transport whose checksum covers the IP pseudo-header (TCP, UDP): the
/// checks take either family's addresses, with IPv4 conveniences given once here.
public protocol PseudoHeaderChecksummed {
    func checksumIsValid(source: IPAddress, destination: IPAddress) -> Bool
    func fillChecksum(source: IPAddress, destination: IPAddress)
}

extension PseudoHeaderChecksummed {
    /// `checksumIsValid` over IPv4 addresses.
    @inlinable
    public func checksumIsValid(source: IPv4Address, destination: IPv4Address) -> Bool {
        checksumIsValid(source: .v4(source), destination: .v4(destination))
    }

    /// `fillChecksum` over IPv4 addresses.
    @inlinable
    public func fillChecksum(source: IPv4Address, destination: IPv4Address) {
        fillChecksum(source: .v4(source), destination: .v4(destination))
    }
}

/// A transport header value that emits itself with the pseudo-header checksum.
public protocol PseudoHeaderEmitting {
    func emit(into bytes: UnsafeMutableRawBufferPointer, source: IPAddress, destination: IPAddress)
}

extension PseudoHeaderEmitting {
    /// `emit` over IPv4 addresses.
    @inlinable
    public func emit(into bytes: UnsafeMutableRawBufferPointer, source: IPv4Address, destination: IPv4Address) {
        emit(into: bytes, source: .v4(source), destination: .v4(destination))
    }
}
