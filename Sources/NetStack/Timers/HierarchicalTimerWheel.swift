/// A hierarchical timing wheel (Varghese & Lauck, "Hashed and Hierarchical Timing
/// Wheels", scheme 7; the cascading Linux timer wheel of 2.6-4.7 is the model):
/// O(1) `arm`, `cancel` and `rearm`, and no allocation per timer.
///
/// ## Shape
///
/// Time is cut into ticks of `tick` (default 1 ms) counted from `origin`. There
/// are `levels` wheels (default 4) of 64 slots each. Level 0 holds timers due in
/// the next 64 ticks, one slot per tick; level *k* holds timers due within 64^(k+1)
/// ticks, one slot per 64^k ticks. Whenever the tick count crosses a multiple of
/// 64^k, the level-*k* slot for the span just entered is *cascaded*: its timers
/// are put back in by their exact expiry tick, which lands them in a lower level,
/// and eventually in the level-0 slot of their own tick. Four levels reach
/// 64^4 - 1 ticks (about 4.66 hours at 1 ms, see `range`); a timer further out
/// waits in the top level's furthest slot and is re-cascaded until it is in range.
///
/// Timers live in one preallocated node array (grown by doubling only when more
/// timers are armed at once than ever before, see `reserveCapacity`) and are
/// linked into per-slot circular doubly-linked lists by index, with a sentinel
/// node per list and a free list. A 64-bit occupancy map per level lets
/// `advance` jump over empty slots, so a jump of hours costs a few steps per
/// occupied slot, not one per tick.
///
/// ## When a timer fires
///
/// A timer's *expiry tick* is its deadline rounded up to the tick:
/// `ceil((deadline - origin) / tick)`. `advance(to: now)` fires every timer whose
/// expiry tick is at or before `now`'s tick, so:
///
/// - a timer never fires early: it fires in the first `advance` whose `now` is at
///   or after its deadline rounded up to the tick boundary;
/// - it fires less than one tick late: that boundary is less than one tick after
///   its deadline (plus, of course, however late the caller calls `advance`).
///
/// A timer armed for a deadline at or before `now` (the time given to the last
/// `advance`, or the tick being processed while `advance` runs) is already due:
/// it fires at the start of the very next `advance` call, whatever time that call
/// is given.
///
/// Order: within one `advance`, already-due timers fire first, then ticks in
/// increasing order; so timers fire in non-decreasing expiry tick, also across
/// calls. Within one tick the order is unspecified (in practice: the order in
/// which timers reached the tick's slot, which is arming order among timers armed
/// directly into level 0). Deadlines finer than a tick are not ordered.
///
/// ## Callbacks
///
/// `advance` calls `fire` once per expired timer with its handle and payload. The
/// timer is disarmed before the call: inside the callback its handle is stale
/// (`isArmed` is false, `cancel`/`rearm` return false), and `schedule(&handle, ...)`
/// arms it anew. The callback may arm, cancel and rearm any timer:
///
/// - a timer cancelled or moved before its turn does not fire in this call (a
///   cancelled one never does), even if it was due in the same tick;
/// - a timer armed for a later tick fires later in this same `advance` if that
///   tick is at or before `now`; while a tick is being fired the wheel's time is
///   that tick's boundary, so a big jump behaves like many small steps;
/// - a timer armed for a deadline at or before the tick being fired (already due)
///   fires in the *next* `advance`, never in this one; so a callback that keeps
///   re-arming itself in the past cannot make `advance` loop forever.
///
/// `advance` must not be called from inside a callback.
///
/// ## Payload
///
/// A payload is a plain `UInt64` that says what to do, for example a connection
/// index in the high bits and a timer kind in the low ones; no closure, so
/// arming allocates nothing.
public final class HierarchicalTimerWheel {
    public typealias Payload = UInt64

    /// Bits of tick per level (64 slots).
    public static let slotBits = 6
    public static let slotsPerLevel = 1 << slotBits

    /// Length of one tick; the wheel's resolution.
    public let tick: Duration
    /// Number of 64-slot levels.
    public let levels: Int
    /// Tick 0. Ticks are counted from here.
    public let origin: Instant

    private let tickNanos: Int64
    /// The largest distance, in ticks, a timer can be placed from the current
    /// tick without clamping: 64^levels - 1.
    private let maxIndex: Int64
    /// Sentinel indices: 0 ..< levels * 64 are the wheel's slots, then the
    /// already-due list and the list being fired. Timer nodes follow.
    private let pendingList: Int32
    private let firingList: Int32
    private let firstTimer: Int32
    private let state: UnsafeMutablePointer<State>
    /// One occupancy bitmap per level: bit s set iff slot s is non-empty.
    private let occupied: UnsafeMutablePointer<UInt64>

    private struct Node {
        /// List links (node indices). A free node has `prev == -1` and
        /// `next` = the next free node (or -1).
        var next: Int32
        var prev: Int32
        /// Advanced when the timer fires or is cancelled; handles carry it.
        var generation: UInt32
        /// Tick at which the timer fires (unused while already due).
        var expiry: Int64
        var deadline: Int64
        var payload: UInt64
    }

    private struct State {
        var nodes: UnsafeMutablePointer<Node>
        /// Nodes allocated, sentinels included.
        var nodeCount: Int
        var freeHead: Int32
        var count: Int
        /// The next tick to process; every tick before it has been fired.
        var nextTick: Int64
        /// The wheel's time in nanoseconds: the `now` of the last `advance`, or the
        /// boundary of the tick being fired while `advance` runs.
        var now: Int64
        /// Lower bound on the deadlines in the already-due list.
        var pendingEarliest: Int64
        var advancing: Bool
    }

    /// Makes an empty wheel whose tick 0 (and current time) is `start`.
    /// - Parameters:
    ///   - tick: resolution; timers fire less than one tick late.
    ///   - levels: 2 ... 10 levels of 64 slots; `range` is 64^levels - 1 ticks.
    ///   - capacity: timers that can be armed at once before the node array grows.
    public init(start: Instant, tick: Duration = .milliseconds(1), levels: Int = 4, capacity: Int = 1024) {
        precondition(tick.nanoseconds > 0, "tick must be positive")
        precondition((2...10).contains(levels), "levels must be 2...10")
        precondition(capacity >= 0)
        self.tick = tick
        self.levels = levels
        self.origin = start
        tickNanos = tick.nanoseconds
        maxIndex = (Int64(1) << (Int64(Self.slotBits) * Int64(levels))) - 1
        pendingList = Int32(levels * Self.slotsPerLevel)
        firingList = pendingList + 1
        firstTimer = firingList + 1
        occupied = .allocate(capacity: levels)
        occupied.initialize(repeating: 0, count: levels)

        let nodeCount = Int(firstTimer) + max(capacity, 1)
        let nodes = UnsafeMutablePointer<Node>.allocate(capacity: nodeCount)
        for i in 0..<Int(firstTimer) {
            (nodes + i).initialize(to: Node(next: Int32(i), prev: Int32(i), generation: 0,
                                            expiry: 0, deadline: 0, payload: 0))
        }
        for i in Int(firstTimer)..<nodeCount {
            (nodes + i).initialize(to: Node(next: i + 1 < nodeCount ? Int32(i + 1) : -1, prev: -1,
                                            generation: 0, expiry: 0, deadline: 0, payload: 0))
        }
        state = .allocate(capacity: 1)
        state.initialize(to: State(nodes: nodes, nodeCount: nodeCount, freeHead: firstTimer, count: 0,
                                   nextTick: 1, now: start.nanoseconds, pendingEarliest: .max,
                                   advancing: false))
    }

    deinit {
        state.pointee.nodes.deinitialize(count: state.pointee.nodeCount)
        state.pointee.nodes.deallocate()
        state.deinitialize(count: 1)
        state.deallocate()
        occupied.deinitialize(count: levels)
        occupied.deallocate()
    }

    // MARK: - Queries

    /// Armed timers (including already-due ones not yet fired).
    public var count: Int { state.pointee.count }

    /// Timers that can be armed at once without growing the node array.
    public var capacity: Int { state.pointee.nodeCount - Int(firstTimer) }

    /// The wheel's current time: the `now` of the last `advance` (or `origin`).
    public var now: Instant { Instant(nanoseconds: state.pointee.now) }

    /// How far ahead a timer can be placed without being clamped to the top level
    /// and cascaded again later: (64^levels - 1) ticks. Timers further out are fine,
    /// they just cost one extra cascade per `range`.
    public var range: Duration { .nanoseconds(maxIndex * tickNanos) }

    /// Whether `handle` names a timer that has neither fired nor been cancelled.
    public func isArmed(_ handle: TimerHandle) -> Bool { live(handle) >= 0 }

    /// The deadline `handle`'s timer was armed for, or nil if it is not armed.
    public func deadline(of handle: TimerHandle) -> Instant? {
        let i = live(handle)
        return i < 0 ? nil : Instant(nanoseconds: state.pointee.nodes[Int(i)].deadline)
    }

    /// The payload of `handle`'s timer, or nil if it is not armed.
    public func payload(of handle: TimerHandle) -> Payload? {
        let i = live(handle)
        return i < 0 ? nil : state.pointee.nodes[Int(i)].payload
    }

    /// The earliest time at which `advance` may fire something, so the loop knows
    /// how long it may sleep; nil when no timer is armed.
    ///
    /// Precision: if a timer is already due, a time at or before `now`. Otherwise a
    /// tick boundary: when the earliest timer is in level 0 this is exactly when it
    /// fires (its deadline rounded up to the tick); when the earliest timers still
    /// sit in a higher level it is the earlier boundary at which their slot
    /// cascades (an `advance` then moves them down and fires nothing, and
    /// `nextDeadline` becomes more precise). It is never later than the moment the
    /// earliest timer becomes due, i.e. its deadline rounded up to the tick; it may
    /// be up to one tick after the deadline itself, because `advance` cannot fire
    /// the timer before that boundary (waking earlier would only spin). O(levels).
    public var nextDeadline: Instant? {
        let s = state
        if s.pointee.count == 0 { return nil }
        let nodes = s.pointee.nodes
        var earliest = Int64.max
        if nodes[Int(pendingList)].next != pendingList { earliest = s.pointee.pendingEarliest }
        if nodes[Int(firingList)].next != firingList { earliest = min(earliest, s.pointee.now) }
        let t = nextEventTick()
        if t != .max {
            let (offset, o1) = t.multipliedReportingOverflow(by: tickNanos)
            let (at, o2) = origin.nanoseconds.addingReportingOverflow(offset)
            earliest = min(earliest, o1 || o2 ? .max : at)
        }
        return Instant(nanoseconds: earliest)
    }

    // MARK: - Arming and cancelling

    /// Arms a timer for `deadline`. O(1); allocates only if more timers are armed
    /// at once than `capacity`.
    public func arm(at deadline: Instant, payload: Payload) -> TimerHandle {
        let i = allocateNode()
        let nodes = state.pointee.nodes
        nodes[Int(i)].payload = payload
        place(i, deadline: deadline.nanoseconds)
        state.pointee.count += 1
        return TimerHandle(index: UInt32(i), generation: nodes[Int(i)].generation)
    }

    /// Disarms `handle`'s timer so it never fires. Returns false, and does
    /// nothing, if it is not armed (it fired, was cancelled, or the handle is
    /// stale or `.invalid`). O(1).
    @discardableResult
    public func cancel(_ handle: TimerHandle) -> Bool {
        let i = live(handle)
        if i < 0 { return false }
        unlink(i)
        release(i)
        return true
    }

    /// Moves `handle`'s timer to `deadline`, keeping its handle and payload.
    /// Returns false, and does nothing, if it is not armed. O(1).
    @discardableResult
    public func rearm(_ handle: TimerHandle, at deadline: Instant) -> Bool {
        let i = live(handle)
        if i < 0 { return false }
        unlink(i)
        place(i, deadline: deadline.nanoseconds)
        return true
    }

    /// Arms or moves the timer kept in `handle`: moves it (same handle) if it is
    /// still armed, else arms a new one and stores its handle. The shape of a
    /// retransmission timer that moves on every ACK. O(1).
    public func schedule(_ handle: inout TimerHandle, at deadline: Instant, payload: Payload) {
        let i = live(handle)
        if i < 0 {
            handle = arm(at: deadline, payload: payload)
            return
        }
        unlink(i)
        state.pointee.nodes[Int(i)].payload = payload
        place(i, deadline: deadline.nanoseconds)
    }

    /// Grows the node array now so that `timers` can be armed at once without
    /// allocating later.
    public func reserveCapacity(_ timers: Int) {
        if timers > capacity { grow(to: Int(firstTimer) + timers) }
    }

    // MARK: - Advancing

    /// Moves the wheel's time to `now` and calls `fire` for every timer that is
    /// due: first the ones armed already due since the last call, then, tick by
    /// tick, those whose deadline rounded up to the tick is at or before `now`.
    /// A `now` earlier than the wheel's time counts as the wheel's time.
    /// Cost: O(timers fired + timers cascaded + occupied slots passed), whatever
    /// the span. Returns how many timers fired.
    @discardableResult
    public func advance(to now: Instant, fire: (TimerHandle, Payload) -> Void) -> Int {
        let s = state
        precondition(!s.pointee.advancing, "HierarchicalTimerWheel.advance called from a timer callback")
        s.pointee.advancing = true
        defer { s.pointee.advancing = false }

        let target = max(now.nanoseconds, s.pointee.now)
        var fired = 0
        if s.pointee.nodes[Int(pendingList)].next != pendingList {
            splice(pendingList, into: firingList)
            s.pointee.pendingEarliest = .max
            fired += fireAll(fire)
        }
        let lastTick = (target &- origin.nanoseconds) / tickNanos
        while s.pointee.count > 0 {
            let t = nextEventTick()
            if t > lastTick { break }
            // Cascade every level whose span starts at this tick, lowest first.
            s.pointee.nextTick = t
            var k = 1
            while k < levels && t & ((Int64(1) << (Int64(Self.slotBits) * Int64(k))) - 1) == 0 {
                cascade(level: k, at: t)
                k += 1
            }
            s.pointee.nextTick = t + 1
            s.pointee.now = origin.nanoseconds &+ t &* tickNanos
            let slot = Int32(t & 63)
            if occupied[0] & (1 << UInt64(slot)) != 0 {
                splice(slot, into: firingList)
                fired += fireAll(fire)
            }
        }
        if s.pointee.nextTick <= lastTick { s.pointee.nextTick = lastTick + 1 }
        s.pointee.now = target
        return fired
    }

    // MARK: - Internals

    /// The node index `handle` names if its timer is armed, else -1.
    @inline(__always)
    private func live(_ handle: TimerHandle) -> Int32 {
        let i = Int(handle.index)
        let s = state
        guard i >= Int(firstTimer), i < s.pointee.nodeCount else { return -1 }
        let node = s.pointee.nodes[i]
        return node.generation == handle.generation && node.prev >= 0 ? Int32(i) : -1
    }

    /// Puts node `i` on the already-due list or into the wheel, by `deadline`.
    @inline(__always)
    private func place(_ i: Int32, deadline: Int64) {
        let s = state
        let nodes = s.pointee.nodes
        nodes[Int(i)].deadline = deadline
        if deadline <= s.pointee.now {
            append(i, to: pendingList)
            if deadline < s.pointee.pendingEarliest { s.pointee.pendingEarliest = deadline }
            return
        }
        // deadline > now >= origin + (nextTick - 1) * tick, so expiry >= nextTick.
        let (x, overflow) = deadline.subtractingReportingOverflow(origin.nanoseconds)
        let expiry: Int64
        if overflow {
            expiry = Int64.max / 2
        } else {
            let q = x / tickNanos
            expiry = x % tickNanos == 0 ? q : q + 1
        }
        nodes[Int(i)].expiry = expiry
        insert(i)
    }

    /// Links node `i` into the wheel slot for its expiry tick, relative to the
    /// next tick to process (the Linux `internal_add_timer` rule).
    @inline(__always)
    private func insert(_ i: Int32) {
        let s = state
        let expiry = s.pointee.nodes[Int(i)].expiry
        let current = s.pointee.nextTick
        let distance = expiry - current
        assert(distance >= 0, "timer placed behind the wheel")
        var key = expiry
        var level: Int
        if distance < 64 {
            level = 0
        } else {
            level = (63 - distance.leadingZeroBitCount) / Self.slotBits
            if level >= levels {
                // Out of range: wait in the top level's furthest slot, re-cascade later.
                level = levels - 1
                key = current + maxIndex
            }
        }
        let slot = Int((key >> Int64(Self.slotBits * level)) & 63)
        append(i, to: Int32(level * Self.slotsPerLevel + slot))
        occupied[level] |= 1 << UInt64(slot)
    }

    /// Re-inserts the timers of level `level`'s slot for tick `t` (a multiple of
    /// 64^level), which lands each of them in a lower level.
    private func cascade(level: Int, at t: Int64) {
        let slot = Int((t >> Int64(Self.slotBits * level)) & 63)
        let bit: UInt64 = 1 << UInt64(slot)
        if occupied[level] & bit == 0 { return }
        occupied[level] &= ~bit
        let sentinel = Int32(level * Self.slotsPerLevel + slot)
        let nodes = state.pointee.nodes
        var i = nodes[Int(sentinel)].next
        nodes[Int(sentinel)].next = sentinel
        nodes[Int(sentinel)].prev = sentinel
        while i != sentinel {
            let next = nodes[Int(i)].next
            insert(i)
            i = next
        }
    }

    /// Fires and frees every node on the firing list. Re-reads the node array on
    /// each step: a callback may arm timers and so grow it.
    @inline(__always)
    private func fireAll(_ fire: (TimerHandle, Payload) -> Void) -> Int {
        let s = state
        let f = Int(firingList)
        var fired = 0
        while true {
            let nodes = s.pointee.nodes
            let i = nodes[f].next
            if i == firingList { return fired }
            fired += 1
            let next = nodes[Int(i)].next
            nodes[f].next = next
            nodes[Int(next)].prev = firingList
            let handle = TimerHandle(index: UInt32(i), generation: nodes[Int(i)].generation)
            let payload = nodes[Int(i)].payload
            release(i)
            fire(handle, payload)
        }
    }

    /// The next tick at or after `nextTick` at which something happens: a
    /// non-empty level-0 slot comes up, or a non-empty higher slot cascades.
    /// Int64.max if the wheel's slots are all empty.
    @inline(__always)
    private func nextEventTick() -> Int64 {
        let current = state.pointee.nextTick
        var best = Int64.max
        for k in 0..<levels {
            let map = occupied[k]
            if map == 0 { continue }
            let shift = Int64(Self.slotBits * k)
            // First span of this level starting at or after `current`.
            let first = (current + (Int64(1) << shift) - 1) >> shift
            let r = UInt64(first & 63)
            let rotated = (map &>> r) | (r == 0 ? 0 : map &<< (64 - r))
            let t = (first + Int64(rotated.trailingZeroBitCount)) << shift
            if t < best { best = t }
        }
        return best
    }

    @inline(__always)
    private func append(_ i: Int32, to sentinel: Int32) {
        let nodes = state.pointee.nodes
        let tail = nodes[Int(sentinel)].prev
        nodes[Int(i)].prev = tail
        nodes[Int(i)].next = sentinel
        nodes[Int(tail)].next = i
        nodes[Int(sentinel)].prev = i
    }

    /// Unlinks node `i` from whichever list holds it, keeping the occupancy map.
    @inline(__always)
    private func unlink(_ i: Int32) {
        let nodes = state.pointee.nodes
        let p = nodes[Int(i)].prev
        let n = nodes[Int(i)].next
        nodes[Int(p)].next = n
        nodes[Int(n)].prev = p
        // Only a sentinel can be left alone in its circular list.
        if p == n && p < pendingList {
            occupied[Int(p) >> Self.slotBits] &= ~(1 << UInt64(p & 63))
        }
    }

    /// Moves the whole list at `from` to the end of the (empty) list at `to`.
    @inline(__always)
    private func splice(_ from: Int32, into to: Int32) {
        let nodes = state.pointee.nodes
        let first = nodes[Int(from)].next
        if first == from { return }
        let last = nodes[Int(from)].prev
        nodes[Int(to)].next = first
        nodes[Int(first)].prev = to
        nodes[Int(to)].prev = last
        nodes[Int(last)].next = to
        nodes[Int(from)].next = from
        nodes[Int(from)].prev = from
        if from < pendingList {
            occupied[Int(from) >> Self.slotBits] &= ~(1 << UInt64(from & 63))
        }
    }

    /// Returns an unlinked node to the free list, making its handles stale.
    @inline(__always)
    private func release(_ i: Int32) {
        let s = state
        let nodes = s.pointee.nodes
        nodes[Int(i)].generation &+= 1
        nodes[Int(i)].prev = -1
        nodes[Int(i)].next = s.pointee.freeHead
        s.pointee.freeHead = i
        s.pointee.count -= 1
    }

    @inline(__always)
    private func allocateNode() -> Int32 {
        let s = state
        if s.pointee.freeHead < 0 {
            grow(to: s.pointee.nodeCount + max(s.pointee.nodeCount - Int(firstTimer), 16))
        }
        let i = s.pointee.freeHead
        s.pointee.freeHead = s.pointee.nodes[Int(i)].next
        return i
    }

    /// Reallocates the node array to `nodeCount` nodes; not steady state.
    @inline(never)
    private func grow(to nodeCount: Int) {
        let s = state
        let old = s.pointee.nodeCount
        precondition(nodeCount <= Int(Int32.max), "too many timers")
        let nodes = UnsafeMutablePointer<Node>.allocate(capacity: nodeCount)
        nodes.moveInitialize(from: s.pointee.nodes, count: old)
        s.pointee.nodes.deallocate()
        // New nodes go on the free list, lowest index first.
        for i in old..<nodeCount {
            (nodes + i).initialize(to: Node(next: i + 1 < nodeCount ? Int32(i + 1) : s.pointee.freeHead,
                                            prev: -1, generation: 0, expiry: 0, deadline: 0, payload: 0))
        }
        s.pointee.nodes = nodes
        s.pointee.nodeCount = nodeCount
        s.pointee.freeHead = Int32(old)
    }
}
