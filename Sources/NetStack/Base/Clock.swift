#if canImport(Glibc)
import Glibc
#endif

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
