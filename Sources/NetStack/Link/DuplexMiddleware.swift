/// A profile of what middleware does to one direction (`FaultProfile`, `LinkProfile`).
protocol MiddlewareProfile: Equatable {
    /// Whether the values are in range; setting an invalid profile traps.
    var isValid: Bool { get }
}

/// One direction of two-way middleware (`FaultLane`, `LinkLane`): frames enter
/// it, some wait inside, and it hands them on in order. A lane returns what it
/// still holds to the pool when it goes.
protocol MiddlewareLane: AnyObject {
    associatedtype Profile: MiddlewareProfile
    associatedtype Counters
    /// What the lane does to frames; changes apply to the next frame.
    var profile: Profile { get set }
    /// What the lane has done.
    var counters: Counters { get }
    /// Frames inside the lane.
    var count: Int { get }
    /// When the next frame inside is due to leave by time, if any is inside.
    var nextDeadline: Instant? { get }
    /// Hands on, in order, the frames whose time has come by `now`.
    func releaseDue(now: Instant, _ emit: (consuming PacketBuffer) -> Void)
}

/// The skeleton `FaultInjector` and `LinkEmulator` share: the wrapped device,
/// the clock, a lane each way, and what follows from those alone - checked
/// profiles, the earliest deadline, counters as a report, transmitting what is
/// due, flushing, and waiting no longer than the next deadline. Each middleware
/// keeps only what its lanes do to a frame and how `receive` pulls from `inner`.
///
/// A struct of references, generic over the device and the lane, so the hot
/// path is specialised and allocates nothing.
struct DuplexMiddleware<Inner: Device, Lane: MiddlewareLane> {
    /// The wrapped device.
    let inner: Inner
    /// Time for the lanes' deadlines.
    let clock: any NetClock
    /// Frames from `inner` on their way up to the stack.
    let rx: Lane
    /// Frames from the stack on their way to `inner`.
    let tx: Lane

    init(inner: Inner, clock: any NetClock, rx: Lane, tx: Lane) {
        Self.check(rx.profile)
        Self.check(tx.profile)
        self.inner = inner
        self.clock = clock
        self.rx = rx
        self.tx = tx
    }

    private static func check(_ profile: Lane.Profile) {
        precondition(profile.isValid, "\(Lane.Profile.self) out of range")
    }

    /// The receive direction's profile; an invalid one traps.
    var receiveProfile: Lane.Profile {
        get { rx.profile }
        nonmutating set { Self.check(newValue); rx.profile = newValue }
    }

    /// The transmit direction's profile; an invalid one traps.
    var transmitProfile: Lane.Profile {
        get { tx.profile }
        nonmutating set { Self.check(newValue); tx.profile = newValue }
    }

    /// Frames inside the lanes, both ways.
    var framesInside: Int { rx.count + tx.count }

    /// The earlier of the two lanes' deadlines.
    var nextDeadline: Instant? {
        switch (rx.nextDeadline, tx.nextDeadline) {
        case (nil, nil): nil
        case (let a?, nil): a
        case (nil, let b?): b
        case (let a?, let b?): min(a, b)
        }
    }

    /// Both lanes' counters as `prefix.rx.name` and `prefix.tx.name` pairs, in
    /// the order `fields` names them, receive first.
    func report(_ prefix: String, _ fields: (Lane.Counters) -> [(String, UInt64)]) -> [(String, UInt64)] {
        [("rx", rx.counters), ("tx", tx.counters)].flatMap { direction, counters in
            fields(counters).map { name, value in ("\(prefix).\(direction).\(name)", value) }
        }
    }

    /// Hands the transmitted frames whose time has come to `inner`; reads the
    /// clock (if `now` is nil) only when some are inside.
    func transmitDue(now: Instant? = nil) {
        guard tx.count > 0 else { return }
        tx.releaseDue(now: now ?? clock.now) { inner.transmit($0) }
    }

    /// Transmits what is due, then flushes `inner`.
    func flush() {
        transmitDue()
        inner.flush()
    }

    /// Sleeps in `inner`, but no longer than until the next deadline.
    func wait(timeout: Duration) {
        guard let deadline = nextDeadline else { return inner.wait(timeout: timeout) }
        let now = clock.now
        guard deadline > now else { return }
        inner.wait(timeout: min(timeout, deadline - now))
    }
}
