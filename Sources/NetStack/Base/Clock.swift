#if canImport(Glibc)
import Glibc
#endif

/// A point in time, in nanoseconds from an arbitrary origin. Plain integers so
/// that arithmetic on the hot path (timers, RTT samples) costs nothing.
public struct Instant: Comparable, Hashable, Sendable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    public static let zero = Instant(nanoseconds: 0)

    public static func < (a: Instant, b: Instant) -> Bool { a.nanoseconds < b.nanoseconds }

    public static func + (a: Instant, d: Duration) -> Instant {
        Instant(nanoseconds: a.nanoseconds + d.nanoseconds)
    }

    public static func - (a: Instant, b: Instant) -> Duration {
        .nanoseconds(a.nanoseconds - b.nanoseconds)
    }

    public var description: String { "\(Double(nanoseconds) / 1e9)s" }
}

extension Duration {
    /// Whole nanoseconds, saturating. Durations in the stack are far below 292 years.
    @inlinable
    public var nanoseconds: Int64 {
        let (s, a) = components
        return s * 1_000_000_000 + a / 1_000_000_000
    }
}

/// Where the stack gets the time. Injected, so tests run on a virtual clock.
public protocol NetClock: AnyObject {
    var now: Instant { get }
}

/// CLOCK_MONOTONIC, for the real event loop.
public final class MonotonicClock: NetClock {
    public init() {}
    public var now: Instant {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Instant(nanoseconds: Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec))
    }
}

/// A clock that moves only when told to, for deterministic tests.
public final class VirtualClock: NetClock {
    public private(set) var now: Instant
    public init(start: Instant = Instant(nanoseconds: 1_000_000_000)) { now = start }
    public func advance(by d: Duration) { now = now + d }
    public func set(_ t: Instant) {
        precondition(t >= now, "virtual time cannot run backwards")
        now = t
    }
}
