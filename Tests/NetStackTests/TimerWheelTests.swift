import AllocationCounter
import Testing
@testable import NetStack

/// HierarchicalTimerWheel on virtual time: plain Instants, no sleeping.
@Suite struct TimerWheelTests {
    static let ms: Int64 = 1_000_000
    static let second: Int64 = 1_000_000_000
    static let hour: Int64 = 3600 * second
    static let start = Instant(nanoseconds: 5 * second + 123_456)

    static func at(_ base: Instant, plus nanoseconds: Int64) -> Instant {
        Instant(nanoseconds: base.nanoseconds + nanoseconds)
    }

    /// When a timer armed (in the future) for `deadline` must fire: its deadline
    /// rounded up to the wheel's tick boundary.
    static func dueTime(_ deadline: Instant, in wheel: HierarchicalTimerWheel) -> Instant {
        let tick = wheel.tick.nanoseconds
        let x = deadline.nanoseconds - wheel.origin.nanoseconds
        let ticks = x / tick + (x % tick == 0 ? 0 : 1)
        return Instant(nanoseconds: wheel.origin.nanoseconds + ticks * tick)
    }

    /// Arms timers, advances, and checks every fire against the contract: once
    /// only; a timer armed for the future fires in the one `advance` whose span
    /// (previous now, now] holds its deadline rounded up to the tick (so never
    /// early, and less than a tick late when driven tick by tick); one armed
    /// already due fires in the next `advance`; fires come in non-decreasing
    /// expiry tick.
    final class Recorder {
        let wheel: HierarchicalTimerWheel
        /// handle -> (deadline, armed already due)
        var armed: [TimerHandle: (deadline: Instant, alreadyDue: Bool)] = [:]
        var violations: [String] = []
        var fired = 0
        var lastDue = Instant(nanoseconds: .min)
        var maxLateness: Int64 = 0
        var onFire: ((TimerHandle, UInt64) -> Void)?

        init(_ wheel: HierarchicalTimerWheel) { self.wheel = wheel }

        @discardableResult
        func arm(_ deadline: Instant, payload: UInt64 = 0) -> TimerHandle {
            let alreadyDue = deadline <= wheel.now
            let h = wheel.arm(at: deadline, payload: payload)
            if armed[h] != nil { violations.append("handle \(h) handed out twice") }
            armed[h] = (deadline, alreadyDue)
            return h
        }

        func cancel(_ h: TimerHandle) -> Bool {
            let result = wheel.cancel(h)
            if result != (armed.removeValue(forKey: h) != nil) { violations.append("cancel(\(h)) said \(result)") }
            return result
        }

        func advance(to now: Instant) {
            let previous = wheel.now
            wheel.advance(to: now) { h, payload in
                guard let entry = armed.removeValue(forKey: h) else {
                    violations.append("\(h) fired but is not armed (twice, or cancelled)")
                    return
                }
                fired += 1
                if wheel.isArmed(h) { violations.append("\(h) still armed in its own callback") }
                if entry.alreadyDue { onFire?(h, payload); return }
                let due = TimerWheelTests.dueTime(entry.deadline, in: wheel)
                if due > now { violations.append("\(h) deadline \(entry.deadline) fired early, advancing to \(now)") }
                if due <= previous {
                    violations.append("\(h) deadline \(entry.deadline) fired late: due \(due), previous advance \(previous)")
                }
                if due < lastDue { violations.append("\(h) due \(due) fired after one due \(lastDue)") }
                lastDue = due
                maxLateness = max(maxLateness, due.nanoseconds - entry.deadline.nanoseconds)
                onFire?(h, payload)
            }
            if wheel.count != armed.count { violations.append("count \(wheel.count), expected \(armed.count)") }
        }
    }

    // MARK: - Firing time

    @Test func firesAtItsTickForDeadlinesAcrossAllLevels() {
        let ms = Self.ms
        var offsets: [Int64] = [
            1, ms / 2, ms, ms + 1, 2 * ms, 63 * ms, 64 * ms, 64 * ms + 1, 65 * ms, 100 * ms + 123,
            4095 * ms, 4096 * ms, 4097 * ms + 5, 262_143 * ms, 262_144 * ms, 262_145 * ms + 999_999,
            16_777_215 * ms, 16_777_216 * ms, 16_777_217 * ms + 1, 20 * Self.hour, 50 * Self.hour + 7,
        ]
        var rng = SplitMix64(seed: 1)
        for _ in 0..<150 { offsets.append(Int64.random(in: 1...(6 * Self.hour), using: &rng)) }
        for _ in 0..<150 { offsets.append(Int64.random(in: 1...(300 * Self.second), using: &rng)) }

        for (n, offset) in offsets.enumerated() {
            let wheel = HierarchicalTimerWheel(start: Self.start, capacity: 4)
            let recorder = Recorder(wheel)
            // Arm at various phases of the wheel, not only at its origin.
            let phase = n % 3 == 0 ? 0 : Int64.random(in: 0...(20 * Self.second), using: &rng)
            recorder.advance(to: Self.at(Self.start, plus: phase))
            let deadline = Self.at(wheel.now, plus: offset)
            recorder.arm(deadline)
            let due = Self.dueTime(deadline, in: wheel)
            // Random steps up to 1 ns before the due time: nothing may fire.
            while wheel.now.nanoseconds < due.nanoseconds - 1 {
                let remaining = due.nanoseconds - 1 - wheel.now.nanoseconds
                let step = Int64.random(in: 1...max(1, remaining / 3), using: &rng)
                recorder.advance(to: Self.at(wheel.now, plus: step))
            }
            #expect(recorder.fired == 0, "offset \(offset): fired before \(due)")
            recorder.advance(to: due)
            #expect(recorder.fired == 1, "offset \(offset): did not fire at \(due)")
            #expect(recorder.violations.isEmpty, "offset \(offset): \(recorder.violations)")
            #expect(due.nanoseconds - deadline.nanoseconds < wheel.tick.nanoseconds)
            #expect(wheel.count == 0 && wheel.nextDeadline == nil)
        }
    }

    /// Driven one tick at a time (as a busy loop would), every timer fires in the
    /// advance of its tick: never early, less than one tick after its deadline.
    @Test func tickByTickFiresWithinOneTickThroughThreeLevels() {
        let wheel = HierarchicalTimerWheel(start: Self.start)
        let recorder = Recorder(wheel)
        var rng = SplitMix64(seed: 2)
        for _ in 0..<3000 {
            recorder.arm(Self.at(Self.start, plus: Int64.random(in: 1...(270 * Self.second), using: &rng)))
        }
        var now = Self.start
        while !recorder.armed.isEmpty {
            now = now + wheel.tick
            recorder.advance(to: now)
        }
        #expect(recorder.violations.isEmpty, "\(recorder.violations.prefix(5))")
        #expect(recorder.fired == 3000)
        #expect(recorder.maxLateness < wheel.tick.nanoseconds)
    }

    @Test func farFutureTimersCascadeDownAndFire() {
        let wheel = HierarchicalTimerWheel(start: Self.start)
        #expect(wheel.range == .milliseconds(16_777_215))
        let recorder = Recorder(wheel)
        let hour = Self.hour
        let offsets: [Int64] = [hour, 5 * hour / 2, 4 * hour, 16_777_215 * Self.ms - 1, 16_777_215 * Self.ms,
                                5 * hour, 10 * hour + 17, 72 * hour + 3 * Self.ms + 1]
        for o in offsets { recorder.arm(Self.at(Self.start, plus: o)) }
        var rng = SplitMix64(seed: 3)
        while !recorder.armed.isEmpty {
            recorder.advance(to: Self.at(wheel.now, plus: Int64.random(in: 1...(10 * 60 * Self.second), using: &rng)))
        }
        #expect(recorder.fired == offsets.count)
        #expect(recorder.violations.isEmpty, "\(recorder.violations)")
    }

    /// Two levels reach only 4095 ticks, so timers far beyond wait in the top
    /// level and are re-cascaded many times before they fire.
    @Test func timersBeyondRangeAreClampedAndRecascaded() {
        let wheel = HierarchicalTimerWheel(start: Self.start, tick: .microseconds(250), levels: 2)
        #expect(wheel.range == .microseconds(250 * 4095))
        let recorder = Recorder(wheel)
        var rng = SplitMix64(seed: 4)
        for _ in 0..<500 { recorder.arm(Self.at(Self.start, plus: Int64.random(in: 1...(120 * Self.second), using: &rng))) }
        while !recorder.armed.isEmpty {
            recorder.advance(to: Self.at(wheel.now, plus: Int64.random(in: 1...(50 * Self.ms), using: &rng)))
        }
        #expect(recorder.fired == 500)
        #expect(recorder.violations.isEmpty, "\(recorder.violations.prefix(5))")
    }

    /// One advance over hours fires everything due, in tick order, and nothing else.
    @Test func bigJumpFiresEverythingDue() {
        let wheel = HierarchicalTimerWheel(start: Self.start)
        let recorder = Recorder(wheel)
        var rng = SplitMix64(seed: 5)
        var later = 0
        for _ in 0..<10_000 {
            let o = Int64.random(in: 1...(8 * Self.hour), using: &rng)
            if o > 6 * Self.hour { later += 1 }
            recorder.arm(Self.at(Self.start, plus: o))
        }
        recorder.advance(to: Self.at(Self.start, plus: 6 * Self.hour))
        #expect(recorder.fired == 10_000 - later)
        #expect(wheel.count == later)
        recorder.advance(to: Self.at(Self.start, plus: 24 * Self.hour))
        #expect(recorder.fired == 10_000)
        #expect(recorder.violations.isEmpty, "\(recorder.violations.prefix(5))")
        #expect(wheel.nextDeadline == nil)
    }

    /// 100k random deadlines, random cancels, random step sizes: every live timer
    /// fires exactly once, in its own advance, in non-decreasing tick order.
    @Test func manyRandomTimersFireOnceInOrder() {
        let wheel = HierarchicalTimerWheel(start: Self.start)
        let recorder = Recorder(wheel)
        var rng = SplitMix64(seed: 6)
        var handles: [TimerHandle] = []
        for _ in 0..<100_000 {
            let o: Int64 = switch rng.next() % 4 {
            case 0: Int64.random(in: 1...(100 * Self.ms), using: &rng)
            case 1: Int64.random(in: 1...(10 * Self.second), using: &rng)
            case 2: Int64.random(in: 1...(10 * 60 * Self.second), using: &rng)
            default: Int64.random(in: 1...(6 * Self.hour), using: &rng)
            }
            handles.append(recorder.arm(Self.at(Self.start, plus: o), payload: UInt64(handles.count)))
        }
        var cancelled = 0
        for h in handles where rng.next() % 10 == 0 {
            #expect(recorder.cancel(h))
            cancelled += 1
        }
        var calls = 0
        while !recorder.armed.isEmpty {
            let step: Int64 = switch rng.next() % 100 {
            case 0: Int64.random(in: 0...(30 * 60 * Self.second), using: &rng)
            case 1..<60: Int64.random(in: 0...(3 * Self.ms), using: &rng)
            default: Int64.random(in: 0...(500 * Self.ms), using: &rng)
            }
            recorder.advance(to: Self.at(wheel.now, plus: step))
            calls += 1
        }
        #expect(recorder.fired == 100_000 - cancelled)
        #expect(recorder.violations.isEmpty, "\(recorder.violations.prefix(5))")
        #expect(handles.allSatisfy { !wheel.isArmed($0) && !wheel.cancel($0) })
        #expect(wheel.count == 0)
    }

    // MARK: - Cancel, stale handles, rearm

    @Test func cancelledTimerNeverFires() {
        let wheel = HierarchicalTimerWheel(start: Self.start)
        let near = wheel.arm(at: Self.at(Self.start, plus: 5 * Self.ms), payload: 1)
        let far = wheel.arm(at: Self.at(Self.start, plus: 2 * Self.hour), payload: 2)
        let kept = wheel.arm(at: Self.at(Self.start, plus: 5 * Self.ms), payload: 3)
        #expect(wheel.count == 3)
        #expect(wheel.cancel(near) && wheel.cancel(far))
        #expect(!wheel.cancel(near) && !wheel.isArmed(far))
        #expect(wheel.count == 1)
        var fired: [UInt64] = []
        let count = wheel.advance(to: Self.at(Self.start, plus: 3 * Self.hour)) { _, p in fired.append(p) }
        #expect(fired == [3] && count == 1)
        #expect(!wheel.isArmed(kept) && !wheel.cancel(kept), "cancel after fire")
        #expect(wheel.deadline(of: kept) == nil && wheel.payload(of: kept) == nil)
        #expect(!wheel.cancel(.invalid) && !wheel.isArmed(.invalid))
    }

    @Test func staleHandleDoesNotTouchTheNodesNextTimer() {
        let wheel = HierarchicalTimerWheel(start: Self.start, capacity: 1)
        let old = wheel.arm(at: Self.at(Self.start, plus: 10 * Self.ms), payload: 1)
        #expect(wheel.cancel(old))
        let new = wheel.arm(at: Self.at(Self.start, plus: 20 * Self.ms), payload: 2)
        #expect(new.index == old.index, "the freed node is reused")
        #expect(new != old)
        #expect(!wheel.isArmed(old) && wheel.isArmed(new))
        #expect(!wheel.cancel(old))
        #expect(!wheel.rearm(old, at: Self.at(Self.start, plus: Self.ms)))
        #expect(wheel.deadline(of: new) == Self.at(Self.start, plus: 20 * Self.ms))
        var fired: [(TimerHandle, UInt64)] = []
        wheel.advance(to: Self.at(Self.start, plus: 30 * Self.ms)) { fired.append(($0, $1)) }
        #expect(fired.count == 1 && fired[0].0 == new && fired[0].1 == 2)
        // A fired timer's node is reused too; its handle stays dead.
        let third = wheel.arm(at: Self.at(Self.start, plus: 40 * Self.ms), payload: 3)
        #expect(third.index == new.index && !wheel.cancel(new) && wheel.isArmed(third))
    }

    @Test func rearmMovesATimerAndKeepsItsHandle() {
        let wheel = HierarchicalTimerWheel(start: Self.start)
        let recorder = Recorder(wheel)
        let h = recorder.arm(Self.at(Self.start, plus: 10 * Self.ms), payload: 7)
        #expect(wheel.rearm(h, at: Self.at(Self.start, plus: 50 * Self.ms)))
        recorder.armed[h] = (Self.at(Self.start, plus: 50 * Self.ms), false)
        recorder.advance(to: Self.at(Self.start, plus: 49 * Self.ms))
        #expect(recorder.fired == 0 && wheel.isArmed(h))
        // Far out, then back in: a retransmission timer moving on every ACK.
        #expect(wheel.rearm(h, at: Self.at(Self.start, plus: 3 * Self.hour)))
        #expect(wheel.rearm(h, at: Self.at(Self.start, plus: 60 * Self.ms + 1)))
        recorder.armed[h] = (Self.at(Self.start, plus: 60 * Self.ms + 1), false)
        #expect(wheel.payload(of: h) == 7 && wheel.count == 1)
        recorder.advance(to: Self.at(Self.start, plus: 60 * Self.ms))
        #expect(recorder.fired == 0)
        recorder.advance(to: Self.at(Self.start, plus: 61 * Self.ms))
        #expect(recorder.fired == 1)
        #expect(!wheel.rearm(h, at: Self.at(Self.start, plus: 100 * Self.ms)), "fired: nothing to move")

        // schedule: moves while armed (same handle), arms anew once fired.
        var rto = TimerHandle.invalid
        wheel.schedule(&rto, at: Self.at(Self.start, plus: 200 * Self.ms), payload: 1)
        let first = rto
        wheel.schedule(&rto, at: Self.at(Self.start, plus: 300 * Self.ms), payload: 2)
        #expect(rto == first && wheel.count == 1 && wheel.payload(of: rto) == 2)
        var fired: [UInt64] = []
        wheel.advance(to: Self.at(Self.start, plus: 250 * Self.ms)) { _, p in fired.append(p) }
        #expect(fired.isEmpty)
        wheel.advance(to: Self.at(Self.start, plus: 300 * Self.ms)) { _, p in fired.append(p) }
        #expect(fired == [2])
        wheel.schedule(&rto, at: Self.at(Self.start, plus: 400 * Self.ms), payload: 3)
        #expect(rto != first && wheel.isArmed(rto))
        #expect(recorder.violations.isEmpty, "\(recorder.violations)")
    }

    // MARK: - Already due, and callbacks

    @Test func timersArmedInThePastOrAtNowFireOnTheNextAdvance() {
        let wheel = HierarchicalTimerWheel(start: Self.start)
        let now = Self.at(Self.start, plus: 10 * Self.ms + 300_000)
        wheel.advance(to: now) { _, _ in }
        let past = wheel.arm(at: Self.at(Self.start, plus: Self.ms), payload: 1)
        let atNow = wheel.arm(at: now, payload: 2)
        let beforeOrigin = wheel.arm(at: Instant(nanoseconds: -Self.hour), payload: 3)
        let future = wheel.arm(at: Self.at(now, plus: 1), payload: 4)
        #expect(wheel.isArmed(past) && wheel.isArmed(atNow) && wheel.isArmed(beforeOrigin))
        #expect(wheel.nextDeadline == Instant(nanoseconds: -Self.hour))
        var fired: [UInt64] = []
        wheel.advance(to: now) { _, p in fired.append(p) }   // same time: still fires them
        #expect(fired == [1, 2, 3])
        #expect(wheel.isArmed(future))
        #expect(wheel.nextDeadline == Self.at(Self.start, plus: 11 * Self.ms))
        wheel.advance(to: Self.at(Self.start, plus: 11 * Self.ms)) { _, p in fired.append(p) }
        #expect(fired == [1, 2, 3, 4])
    }

    @Test func callbackCancelsATimerDueInTheSameTickOrLater() {
        let wheel = HierarchicalTimerWheel(start: Self.start)
        var handles: [TimerHandle] = []
        for p in 0..<4 { handles.append(wheel.arm(at: Self.at(Self.start, plus: 5 * Self.ms), payload: UInt64(p))) }
        let later = wheel.arm(at: Self.at(Self.start, plus: 9 * Self.ms), payload: 10)
        var fired: [UInt64] = []
        var cancels: [Bool] = []
        wheel.advance(to: Self.at(Self.start, plus: 20 * Self.ms)) { h, p in
            fired.append(p)
            if fired.count == 1 {
                cancels.append(wheel.cancel(h))               // itself: already disarmed
                for other in handles where other != h { cancels.append(wheel.cancel(other)) }
                cancels.append(wheel.cancel(later))
            }
        }
        #expect(fired.count == 1)
        #expect(cancels == [false, true, true, true, true])
        #expect(wheel.count == 0)
    }

    @Test func callbackArmsDueTimersForTheNextAdvanceAndLaterOnesForThisOne() {
        let wheel = HierarchicalTimerWheel(start: Self.start)
        _ = wheel.arm(at: Self.at(Self.start, plus: 5 * Self.ms), payload: 0)
        var fired: [(UInt64, Instant)] = []
        var ownHandleState: [Bool] = []
        wheel.advance(to: Self.at(Self.start, plus: 100 * Self.ms)) { h, p in
            fired.append((p, wheel.now))
            if p == 0 {
                #expect(wheel.now == Self.at(Self.start, plus: 5 * Self.ms), "time inside a callback is its tick")
                ownHandleState = [wheel.isArmed(h), wheel.cancel(h), wheel.rearm(h, at: Self.at(Self.start, plus: 50 * Self.ms))]
                _ = wheel.arm(at: wheel.now, payload: 1)                                // due now: next advance
                _ = wheel.arm(at: Self.at(Self.start, plus: 2 * Self.ms), payload: 2)     // in the past: next advance
                _ = wheel.arm(at: Self.at(wheel.now, plus: 1), payload: 3)                // next tick: this advance
                _ = wheel.arm(at: Self.at(Self.start, plus: 69 * Self.ms), payload: 4)    // the slot being fired, next lap
                _ = wheel.arm(at: Self.at(Self.start, plus: 100 * Self.ms), payload: 5)   // the last tick: this advance
                _ = wheel.arm(at: Self.at(Self.start, plus: 100 * Self.ms + 1), payload: 6) // after: later
            }
        }
        #expect(ownHandleState == [false, false, false])
        #expect(fired.map(\.0) == [0, 3, 4, 5])
        #expect(fired.map(\.1) == [5, 6, 69, 100].map { Self.at(Self.start, plus: $0 * Self.ms) })
        #expect(wheel.count == 3)
        wheel.advance(to: wheel.now) { h, p in fired.append((p, wheel.now)) }
        #expect(fired.map(\.0) == [0, 3, 4, 5, 1, 2])
        wheel.advance(to: Self.at(Self.start, plus: 101 * Self.ms)) { h, p in fired.append((p, wheel.now)) }
        #expect(fired.map(\.0) == [0, 3, 4, 5, 1, 2, 6])
    }

    /// A callback that keeps re-arming itself for "now" cannot livelock advance.
    @Test func selfRearmingAtNowFiresOncePerAdvance() {
        let wheel = HierarchicalTimerWheel(start: Self.start)
        var h = wheel.arm(at: Self.start, payload: 0)
        var fires = 0
        for _ in 0..<3 {
            wheel.advance(to: wheel.now) { _, p in
                fires += 1
                wheel.schedule(&h, at: wheel.now, payload: p)
            }
        }
        #expect(fires == 3 && wheel.count == 1)
    }

    /// A periodic timer re-armed from its own callback across one long advance
    /// fires at every period, as if advanced in small steps.
    @Test func periodicTimerAcrossOneBigAdvance() {
        let wheel = HierarchicalTimerWheel(start: Self.start)
        var h = wheel.arm(at: Self.at(Self.start, plus: 10 * Self.ms), payload: 9)
        var times: [Instant] = []
        wheel.advance(to: Self.at(Self.start, plus: 10 * Self.second)) { fired, p in
            times.append(wheel.now)
            #expect(fired == h && !wheel.isArmed(h))
            wheel.schedule(&h, at: Self.at(wheel.now, plus: 10 * Self.ms), payload: p)
        }
        #expect(times.count == 1000)
        #expect(times == (1...1000).map { Self.at(Self.start, plus: Int64($0) * 10 * Self.ms) })
        #expect(wheel.count == 1 && wheel.isArmed(h))
    }

    @Test func callbackMovesATimerDueInTheSameTick() {
        let wheel = HierarchicalTimerWheel(start: Self.start)
        let a = wheel.arm(at: Self.at(Self.start, plus: 5 * Self.ms), payload: 1)
        let b = wheel.arm(at: Self.at(Self.start, plus: 5 * Self.ms), payload: 2)
        var fired: [(UInt64, Instant)] = []
        wheel.advance(to: Self.at(Self.start, plus: 100 * Self.ms)) { h, p in
            fired.append((p, wheel.now))
            if fired.count == 1 { #expect(wheel.rearm(h == a ? b : a, at: Self.at(Self.start, plus: 30 * Self.ms))) }
        }
        #expect(fired.count == 2 && fired[0].1 == Self.at(Self.start, plus: 5 * Self.ms))
        #expect(fired[1].1 == Self.at(Self.start, plus: 30 * Self.ms))
    }

    // MARK: - nextDeadline

    @Test func nextDeadlineIsExactInLevelZeroAndNeverLate() {
        let wheel = HierarchicalTimerWheel(start: Self.start)
        #expect(wheel.nextDeadline == nil)
        let d = Self.at(Self.start, plus: 7 * Self.ms + 1)
        let h = wheel.arm(at: d, payload: 0)
        #expect(wheel.nextDeadline == Self.at(Self.start, plus: 8 * Self.ms))
        _ = wheel.arm(at: Self.at(Self.start, plus: 3 * Self.ms), payload: 0)
        #expect(wheel.nextDeadline == Self.at(Self.start, plus: 3 * Self.ms))
        wheel.advance(to: Self.at(Self.start, plus: 3 * Self.ms)) { _, _ in }
        #expect(wheel.nextDeadline == Self.at(Self.start, plus: 8 * Self.ms))
        wheel.cancel(h)
        #expect(wheel.nextDeadline == nil)
        // In a higher level: an earlier cascade boundary, never later than the timer.
        let far = Self.at(Self.start, plus: 3 * Self.hour + 5)
        _ = wheel.arm(at: far, payload: 0)
        let next = wheel.nextDeadline!
        #expect(next > wheel.now && next <= Self.dueTime(far, in: wheel))
    }

    /// A loop that sleeps exactly until nextDeadline and then advances fires every
    /// timer exactly at its due time (deadline rounded up to the tick), never
    /// later, with only a few extra wake-ups for cascades.
    @Test func sleepingUntilNextDeadlineFiresEveryTimerOnTime() {
        let wheel = HierarchicalTimerWheel(start: Self.start)
        let recorder = Recorder(wheel)
        var rng = SplitMix64(seed: 7)
        for _ in 0..<2000 { recorder.arm(Self.at(Self.start, plus: Int64.random(in: 1...(5 * Self.hour), using: &rng))) }
        var wakeUps = 0
        var late = 0
        while let next = wheel.nextDeadline {
            let earliest = recorder.armed.values.map { Self.dueTime($0.deadline, in: wheel) }.min()!
            #expect(next > wheel.now && next <= earliest, "nextDeadline \(next), earliest due \(earliest)")
            let before = recorder.fired
            let previous = wheel.now
            recorder.advance(to: next)
            wakeUps += 1
            if recorder.fired > before && earliest != next { late += 1 }
            #expect(previous < next)
            // Occasionally arm more from "outside", near and far.
            if rng.next() % 50 == 0 {
                recorder.arm(Self.at(wheel.now, plus: Int64.random(in: 1...(2 * Self.hour), using: &rng)))
            }
            if wakeUps > 20_000 { break }
        }
        #expect(recorder.armed.isEmpty && late == 0)
        #expect(recorder.violations.isEmpty, "\(recorder.violations.prefix(5))")
        #expect(recorder.maxLateness < wheel.tick.nanoseconds)
        #expect(wakeUps < recorder.fired * 4, "\(wakeUps) wake-ups for \(recorder.fired) timers")
    }

    // MARK: - Storage

    @Test func growsBeyondItsCapacityAndKeepsHandles() {
        let wheel = HierarchicalTimerWheel(start: Self.start, capacity: 0)
        let recorder = Recorder(wheel)
        var handles: [TimerHandle] = []
        for i in 0..<10_000 {
            handles.append(recorder.arm(Self.at(Self.start, plus: Int64(i % 5000 + 1) * Self.ms), payload: UInt64(i)))
        }
        #expect(wheel.capacity >= 10_000)
        for (i, h) in handles.enumerated() { #expect(wheel.payload(of: h) == UInt64(i)) }
        for h in handles[..<5000] { #expect(recorder.cancel(h)) }
        recorder.advance(to: Self.at(Self.start, plus: 6 * Self.second))
        #expect(recorder.fired == 5000 && wheel.count == 0)
        #expect(recorder.violations.isEmpty)
        let capacity = wheel.capacity
        wheel.reserveCapacity(capacity + 100)
        #expect(wheel.capacity >= capacity + 100)
    }

    /// Arm, cancel, rearm and advance (with fires and cascades) after warm-up
    /// touch the heap zero times.
    @Test func steadyStateAllocatesNothing() {
        let wheel = HierarchicalTimerWheel(start: Self.start, capacity: 2048)
        var handles = [TimerHandle](repeating: .invalid, count: 1024)
        var rng = SplitMix64(seed: 8)
        var fired = 0
        var now = Self.start

        func round(_ n: Int) {
            for _ in 0..<n {
                let k = Int(rng.next() % 1024)
                let near = Int64(rng.next() % UInt64(200 * Self.ms))
                let far = Int64(rng.next() % UInt64(5 * Self.hour))
                switch rng.next() % 8 {
                case 0, 1: wheel.cancel(handles[k])
                case 2, 3: wheel.schedule(&handles[k], at: Self.at(now, plus: near), payload: UInt64(k))
                case 4: wheel.schedule(&handles[k], at: Self.at(now, plus: far), payload: UInt64(k))
                case 5: wheel.rearm(handles[k], at: Self.at(now, plus: near))
                default:
                    now = Self.at(now, plus: Int64(rng.next() % UInt64(3 * Self.ms)))
                    if rng.next() % 64 == 0 { now = Self.at(now, plus: 40 * 60 * Self.second) }
                    wheel.advance(to: now) { h, p in
                        fired += 1
                        if p % 3 == 0 { wheel.schedule(&handles[Int(p)], at: Self.at(now, plus: 10 * Self.ms), payload: p) }
                    }
                }
            }
        }
        round(20_000)   // warm-up
        let firedBefore = fired
        allocation_counter_start()
        round(100_000)
        _ = wheel.nextDeadline
        let allocations = allocation_counter_stop()
        #expect(allocations == 0, "\(allocations) allocations in steady state")
        #expect(fired > firedBefore)
        #expect(wheel.capacity == 2048)
    }
}
