/// A TCP sequence number (RFC 9293 section 3.4): a 32-bit count that wraps, so
/// every comparison is modulo 2^32.
///
/// `a < b` when the signed 32-bit difference `a - b` is negative, as in Linux's
/// `before()`: b lies less than 2^31 ahead of a. Two numbers exactly 2^31 apart
/// are each "less" than the other; RFC 9293 leaves that case undefined, and a
/// window never spans it (windows are at most 2^30 bytes, RFC 7323 2.3).
/// The order is only meaningful between numbers less than 2^31 apart, so sorting
/// a set that spans more than that is not. `Swift.min`/`Swift.max` work on two
/// sequence numbers through `Comparable`.
///
/// Raw values are never compared directly: take a distance (`a - b`) or use
/// these operators.
public struct SequenceNumber: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var rawValue: UInt32

    @inlinable public init(_ rawValue: UInt32) { self.rawValue = rawValue }
    @inlinable public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// Modular order: `a` precedes `b` (RFC 9293 3.4's "a < b").
    @inlinable
    public static func < (a: SequenceNumber, b: SequenceNumber) -> Bool {
        Int32(bitPattern: a.rawValue &- b.rawValue) < 0
    }

    /// The number `n` bytes later (wrapping). `n` may be negative.
    @inlinable
    public static func + (a: SequenceNumber, n: Int) -> SequenceNumber {
        SequenceNumber(a.rawValue &+ UInt32(truncatingIfNeeded: n))
    }

    /// The number `n` bytes earlier (wrapping). `n` may be negative.
    @inlinable
    public static func - (a: SequenceNumber, n: Int) -> SequenceNumber {
        SequenceNumber(a.rawValue &- UInt32(truncatingIfNeeded: n))
    }

    @inlinable
    public static func += (a: inout SequenceNumber, n: Int) { a = a + n }

    @inlinable
    public static func -= (a: inout SequenceNumber, n: Int) { a = a - n }

    /// The signed distance from `b` to `a`: how many bytes `a` lies ahead of
    /// `b` (negative if behind), taken as the 32-bit difference in -2^31..<2^31.
    @inlinable
    public static func - (a: SequenceNumber, b: SequenceNumber) -> Int {
        Int(Int32(bitPattern: a.rawValue &- b.rawValue))
    }

    /// True when `start <= self < start + size`, modulo 2^32: the acceptability
    /// tests of RFC 9293 3.10.7.4 in one form. An empty window (`size <= 0`)
    /// contains nothing; a `size` of 2^32 or more contains everything.
    @inlinable
    public func isInWindow(start: SequenceNumber, size: Int) -> Bool {
        guard size > 0 else { return false }
        // The unsigned offset from the window's start, compared without wrapping.
        return UInt64(rawValue &- start.rawValue) < UInt64(truncatingIfNeeded: size)
    }

    public var description: String { String(rawValue) }
}
