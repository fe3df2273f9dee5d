// HierarchicalTimerWheel (Sources/NetStack/Timers) under the patterns TCP puts
// on it: every connection keeps a retransmission, delayed-ACK, keepalive or
// TIME-WAIT timer, most of which are moved or cancelled long before they fire.
//
// Each rig starts with 1000 background timers spread 1 s to 2 h ahead (idle
// connections' keepalives, TIME-WAITs), so the wheel has occupied slots on
// every level, as in a busy stack; those that come due are re-armed 2 h ahead.
// Deadlines in the measured loops cycle over a table of realistic delays
// (1 ms to 60 s: delayed ACK, RTO, zero-window probe, 2MSL), so arming lands in
// all four levels.
//
// - arm_cancel: arm a timer, then cancel it (an RTO armed for a segment that is
//   ACKed before it fires). One scaled iteration is one pair.
// - rearm: move one armed timer to a new deadline (the RTO restarted on every
//   ACK, RFC 6298 5.3). One scaled iteration is one move.
// - arm_expire: arm a timer 1 to 128 ms ahead, then advance the wheel's time by
//   1 ms, firing whatever came due (one timer per tick in the steady state, plus
//   the cascades from level 1). One scaled iteration is one timer armed and,
//   eventually, fired; the benchmark fails unless every timer armed and no
//   longer pending fired exactly once.
//
// scalingFactor .kilo: wall clock reads as ns per operation. Steady state
// allocates nothing (the node array is sized up front), so mallocCountTotal
// is gated at 0, and wall clock at three times the recorded p90, by the
// Thresholds/TimerWheel.*.p90.json files.

import Benchmark
import NetStack

/// Delays TCP arms, cycled through in order: delayed ACK (40 ms, 200 ms),
/// RTOs from 1 ms to 60 s with backoff, keepalive probe (75 s is out of range
/// for level 2, in level 3), 2MSL (60 s).
let delays: [Duration] = [
    .milliseconds(1), .milliseconds(40), .milliseconds(200), .milliseconds(3), .seconds(1),
    .milliseconds(230), .milliseconds(17), .seconds(2), .milliseconds(600), .seconds(60),
    .milliseconds(90), .seconds(4), .milliseconds(5), .seconds(75), .milliseconds(320), .seconds(8),
]

/// Payloads tell the callback what fired: background timers are re-armed.
let backgroundTag: UInt64 = 1 << 63

final class WheelRig {
    var now = Instant(nanoseconds: 1_000_000_000)
    let wheel: HierarchicalTimerWheel
    let background = 1000

    init() {
        wheel = HierarchicalTimerWheel(start: now, capacity: 4096)
        var x: UInt64 = 0x2545_f491_4f6c_dd1d
        for i in 0..<background {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            let ms = 1000 + Int64(x % 7_199_000)
            _ = wheel.arm(at: now + .milliseconds(ms), payload: backgroundTag | UInt64(i))
        }
    }

    /// Advances to `now`, re-arming background timers 2 h ahead; returns how
    /// many foreground timers fired.
    @inline(__always)
    func advance() -> Int {
        var fired = 0
        let wheel = self.wheel, now = self.now
        wheel.advance(to: now) { _, payload in
            if payload & backgroundTag != 0 {
                _ = wheel.arm(at: now + .seconds(7200), payload: payload)
            } else {
                fired &+= 1
            }
        }
        return fired
    }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        // No ARC metrics: on Linux with Swift 6.3 they need package-benchmark's
        // RuntimeInterposer trait, which is not available here (its issue 349).
        metrics: [.wallClock, .throughput, .mallocCountTotal],
        warmupIterations: 10,
        scalingFactor: .kilo,
        maxDuration: .seconds(2),
        maxIterations: 100_000,
        thresholds: [
            // No allocation per timer: arming uses preallocated nodes.
            .mallocCountTotal: .init(absolute: [.p0: 0, .p50: 0, .p90: 0]),
            // Fails above three times the recorded p90 (O(1) turned into O(n)), not
            // on noise, which has moved p90 by up to 1.8x here; a relative tolerance
            // of 100% or more can never report an "improvement".
            .wallClock: .init(relative: [.p90: 200]),
            .throughput: .init(),
        ]
    )

    Benchmark("arm_cancel") { benchmark, rig in
        let wheel = rig.wheel, now = rig.now
        var d = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let handle = wheel.arm(at: now + delays[d], payload: 7)
            blackHole(wheel.cancel(handle))
            d = (d + 1) & 15
        }
        benchmark.stopMeasurement()
        if wheel.count != rig.background {
            benchmark.error("\(wheel.count) timers armed after arm+cancel pairs, expected \(rig.background)")
        }
    } setup: {
        WheelRig()
    }

    Benchmark("rearm") { benchmark, rig in
        let wheel = rig.wheel, now = rig.now
        let handle = wheel.arm(at: now + .milliseconds(200), payload: 7)
        var d = 0
        var moved = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            moved &+= wheel.rearm(handle, at: now + delays[d]) ? 1 : 0
            d = (d + 1) & 15
        }
        benchmark.stopMeasurement()
        wheel.cancel(handle)
        if moved != benchmark.scaledIterations.count {
            benchmark.error("\(moved) of \(benchmark.scaledIterations.count) rearms moved the timer")
        }
    } setup: {
        WheelRig()
    }

    Benchmark("arm_expire") { benchmark, rig in
        let wheel = rig.wheel
        let pendingBefore = wheel.count - rig.background
        var fired = 0
        var d: Int64 = 0
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            _ = wheel.arm(at: rig.now + .milliseconds(1 + d), payload: 7)
            d = (d + 37) & 127
            rig.now = rig.now + .milliseconds(1)
            fired &+= rig.advance()
        }
        benchmark.stopMeasurement()
        let pendingAfter = wheel.count - rig.background
        let expected = pendingBefore + benchmark.scaledIterations.count - pendingAfter
        if fired != expected || pendingAfter > 128 {
            benchmark.error("\(fired) timers fired, expected \(expected); \(pendingAfter) still pending")
        }
    } setup: {
        WheelRig()
    }
}
