@testable import NetStack

/// How an event-driven run ended.
enum EventRunOutcome: Equatable {
    /// `done` held.
    case finished
    /// The next event lay past the deadline, or there was none: nothing more
    /// would happen in time. The clock stands at the last event before it.
    case stalled
    /// `maxRounds` passed at instants with work to do (a livelock).
    case outOfRounds
}

extension StackPair {
    /// Runs both stacks event by event, for links with delay (`LinkEmulator`):
    /// at each instant, polls both sides, lets `app` move data and runs due
    /// timers, over and over until nothing more happens at that instant; then
    /// sets the clock straight to the next event, the earliest stack timer or
    /// `otherDeadline()` (a frame coming out of an emulated link). Unlike
    /// `run`, time never moves in fixed steps, so a frame released at t is
    /// received at t exactly and a 100 ms transfer costs rounds per event, not
    /// per microsecond.
    ///
    /// Reports rather than records its outcome, so a caller can show a stall
    /// as a result (a netsim cell) instead of failing on it.
    func runEvents(until done: () -> Bool, deadline: Instant, maxRounds: Int = 5_000_000,
                   app: () -> Bool = { false }) -> EventRunOutcome {
        for _ in 0..<maxRounds {
            if done() { return .finished }
            let received = a.poll(now: now, limit: .max) + b.poll(now: now, limit: .max)
            let moved = app()
            a.tick(now: now)
            b.tick(now: now)
            // Something happened at this instant: it may cause more at the same instant.
            if received > 0 || moved || framesInTransit > 0 { continue }
            let next = [a.nextTimerDeadline, b.nextTimerDeadline, otherDeadline()].compactMap { $0 }.min()
            guard let next, next <= deadline else { return done() ? .finished : .stalled }
            // A timer armed in the past during this instant's tick is due at
            // the next tick (`HierarchicalTimerWheel`): run it without moving time.
            if next > now { clock.set(next) }
        }
        return done() ? .finished : .outOfRounds
    }
}
