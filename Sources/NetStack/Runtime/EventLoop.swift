import Synchronization

/// The loop that drives one interface: receive a batch, process it, run due
/// timers and application work, send what applications queued, flush
/// transmissions, then sleep in the device until frames arrive or the next
/// timer is due. Everything runs on the calling thread.
public final class EventLoop<D: Device> {
    public let interface: Interface<D>
    public let clock: any NetClock
    /// The stack as applications see it, not generic over the device.
    public let stack: Stack
    /// Runs async application code on this loop (see `TCPStream`).
    public var executor: LoopExecutor { stack.executor }
    /// Longest sleep, so that `stop()` from a signal handler is noticed promptly.
    public var maximumSleep: Duration = .milliseconds(50)
    /// How often the interface's timers run when nothing else is due.
    public var tickInterval: Duration = .milliseconds(100)
    /// Work run on each turn of the loop (applications driving themselves).
    public var onTurn: [(Instant) -> Void] = []
    /// How long the loop keeps polling the device after the last frame or
    /// job before it sleeps (zero: it sleeps at once). Spinning trades a
    /// core for latency, as Onload's and DPDK stacks' busy polling does: a
    /// request that arrives while the loop spins skips the wake-up.
    public var busyPoll: Duration = .zero
    /// Frames taken from the device per turn.
    public var receiveBatch = 64
    /// How long due timers may wait while the device still holds received
    /// frames. A full batch means more frames are queued, and among them may
    /// be the ACKs that would cancel a loss probe or retransmission due now:
    /// firing first sends resends the peer must answer again, which under
    /// overload (a close storm of thousands of connections, a loop starved of
    /// CPU) fills the TAP's queue with answers to answers until it drops. So
    /// a backlog is drained first, as smoltcp drains all ingress before
    /// egress, but never for longer than this, so that a flood that keeps the
    /// queue full cannot stop the timers.
    public var timerDeferralLimit: Duration = .milliseconds(100)
    private let stopRequested = Atomic<Bool>(false)
    private var nextTick: Instant
    /// When the loop last received a frame or ran a job (for `busyPoll`).
    private var lastActivity: Instant
    /// Since when due timers have waited for a backlog to drain (nil: they
    /// are not waiting).
    private var timersDeferredSince: Instant?

    public init(interface: Interface<D>, clock: any NetClock) {
        self.interface = interface
        self.clock = clock
        stack = Stack(interface: interface, clock: clock)
        nextTick = clock.now
        lastActivity = clock.now
        interface.device.watch(wakeups: stack.executor.wakeDescriptor)
        stack.doorbells.deviceReads = interface.device.watch(doorbells: stack.doorbells)
    }

    /// Asks the loop to return from `run`. Safe from any thread.
    public func stop() { stopRequested.store(true, ordering: .relaxed) }

    /// Runs until `stop()` or until `until` returns true (checked once per turn).
    public func run(until done: () -> Bool = { false }) {
        while !stopRequested.load(ordering: .relaxed) && !done() {
            runOnce()
        }
    }

    /// One turn: drain received frames, run timers and per-turn work, send
    /// what that work queued, then sleep if nothing arrived.
    public func runOnce() {
        executor.enterLoopThread()
        var now = clock.now
        let received = interface.poll(now: now, limit: receiveBatch)
        let rung = stack.doorbells.deliver()
        if now >= nextTick || interface.nextTimerDeadline.map({ now >= $0 }) == true {
            if received < receiveBatch || timersMustRun(now: now) {
                interface.tick(now: now)
                nextTick = now + tickInterval
                timersDeferredSince = nil
            }
        }
        for work in onTurn { work(now) }
        let ranJobs = executor.runPending()
        interface.flushPending(now: now)
        stack.afterSending?()
        if received > 0 || ranJobs > 0 || rung > 0 {
            lastActivity = now
        } else if !executor.hasPendingJobs && !stack.doorbells.hasPending && !interface.hasLoopedBackFrames {
            now = clock.now
            // Busy polling: the next turn looks again without sleeping.
            if busyPoll > .zero && now - lastActivity < busyPoll { return }
            var deadline = nextTick
            if let t = interface.nextTimerDeadline, t < deadline { deadline = t }
            let sleep = deadline > now ? min(deadline - now, maximumSleep) : .zero
            if sleep > .zero && executor.prepareToSleep() {
                interface.device.wait(timeout: sleep)
                executor.awake()
            }
        }
    }
}

extension EventLoop {
    /// Whether due timers have waited for the receive backlog as long as
    /// `timerDeferralLimit` allows (starting the wait if they had not).
    private func timersMustRun(now: Instant) -> Bool {
        guard let since = timersDeferredSince else {
            timersDeferredSince = now
            interface.counters.timersDeferred += 1
            return timerDeferralLimit <= .zero
        }
        return now - since >= timerDeferralLimit
    }
}

/// An event loop seen without its device type: what the CLI and applications
/// drive. The loop's own turn stays specialised for its device.
public protocol StackLoop: AnyObject {
    var stack: Stack { get }
    var clock: any NetClock { get }
    var onTurn: [(Instant) -> Void] { get set }
    var maximumSleep: Duration { get set }
    var busyPoll: Duration { get set }
    func run(until done: () -> Bool)
    func runOnce()
    func stop()
    /// Announces the stack's address to the link (a gratuitous ARP), and,
    /// with IPv6, runs the loop until duplicate address detection has
    /// settled each IPv6 address (RFC 4862 5.4), at most `limit`.
    func announce(waitingForIPv6 limit: Duration)
    /// Sends what applications (or a shutdown) queued now, without
    /// receiving or sleeping.
    func flush()
}

extension StackLoop {
    /// Announces, waiting up to 5 s for IPv6's addresses.
    public func announce() { announce(waitingForIPv6: .seconds(5)) }
}

extension EventLoop: StackLoop {
    public func announce(waitingForIPv6 limit: Duration) {
        interface.announce()
        guard !interface.ipv6Settled else { return }
        let end = clock.now + limit
        run(until: { interface.ipv6Settled || clock.now >= end })
    }
    public func flush() { interface.flushPending(now: clock.now) }
}
