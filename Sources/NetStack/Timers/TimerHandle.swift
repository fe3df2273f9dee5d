/// Names one armed timer of a `HierarchicalTimerWheel`.
///
/// A plain 8-byte value: the index of the timer's node in the wheel's node array
/// and the node's generation when the timer was armed. A node's generation
/// advances whenever its timer fires or is cancelled, so a handle kept after that
/// (a *stale* handle) no longer matches: `cancel`, `rearm` and `isArmed` treat it
/// as "not armed" and leave whichever timer now uses the node alone.
///
/// `TimerHandle.invalid` never names a timer; use it instead of an optional to
/// store "no timer" without the extra byte.
public struct TimerHandle: Hashable, Sendable, CustomStringConvertible {
    @usableFromInline let index: UInt32
    @usableFromInline let generation: UInt32

    @inlinable init(index: UInt32, generation: UInt32) {
        self.index = index
        self.generation = generation
    }

    /// A handle that no wheel ever hands out.
    public static let invalid = TimerHandle(index: .max, generation: .max)

    public var description: String {
        self == .invalid ? "TimerHandle(invalid)" : "TimerHandle(\(index)#\(generation))"
    }
}
