import Testing
@testable import NetStack
import NetStackWire
#if canImport(Glibc)
import Glibc
#endif

/// HyStart++ (RFC 9406) on crafted ACK sequences: alone, where every ACK's RTT
/// is chosen, and inside CUBIC and NewReno on a virtual path whose RTT grows
/// with the queue the sender builds.
@Suite struct HyStartTests {
    static let mss = 1460
    typealias Phase = HyStartPlusPlus.Phase

    /// HyStart++ fed rounds of `window` ACKs of one segment each, each ACK
    /// releasing one more segment. The ACK's sndMax counts the segment it
    /// released, and a first ACK without a sample opens the first round, so
    /// every `round` is exactly one HyStart++ round.
    struct Rounds {
        var h = HyStartPlusPlus()
        let window: Int
        /// Bytes of slow-start growth each ACK offers.
        var growth = HyStartTests.mss
        var una = SequenceNumber(5000)
        var sndMax: SequenceNumber
        /// Growth HyStart++ granted, per ACK, and whether it ended slow start.
        var steps: [HyStartPlusPlus.Step] = []
        /// The phase after each ACK.
        var phases: [Phase] = []

        init(window: Int = 10) {
            self.window = window
            sndMax = una + window * HyStartTests.mss
            _ = ack(rtt: nil)
        }

        mutating func ack(rtt: Duration?) -> HyStartPlusPlus.Step {
            una = una + HyStartTests.mss
            sndMax = sndMax + HyStartTests.mss
            return h.onAck(growth: growth, rtt: rtt, ack: una, sndMax: sndMax)
        }

        /// One round, each ACK with the RTT `rtt(i)` for its index i in the round.
        mutating func round(_ rtt: (Int) -> Duration?) {
            for i in 0..<window {
                steps.append(ack(rtt: rtt(i)))
                phases.append(h.phase)
            }
        }

        mutating func round(_ rtt: Duration) { round { _ in rtt } }
    }

    /// RFC 9406 4.2: RttThresh = max(MIN_RTT_THRESH, min(lastRoundMinRTT / MIN_RTT_DIVISOR, MAX_RTT_THRESH)).
    static func threshold(_ last: Duration) -> Duration {
        max(.milliseconds(4), min(last / 8, .milliseconds(16)))
    }

    static func isCSS(_ p: Phase) -> Bool {
        if case .conservativeSlowStart = p { return true }
        return false
    }

    // MARK: Leaving slow start

    @Test func exitsWhenTheRoundMinimumRisesByTheThreshold() {
        var r = Rounds()
        let base = Duration.milliseconds(100)
        r.round(base)
        let raised = base + Self.threshold(base)
        r.round(raised)
        // The exit waits for N_RTT_SAMPLE = 8 samples in the round, then fires.
        #expect(r.phases[10..<17].allSatisfy { $0 == .slowStart })
        #expect(r.phases[17] == .conservativeSlowStart(baseline: raised, rounds: 0))
        // Slow start's growth until then; a quarter of it in CSS.
        #expect(r.steps[0..<18].allSatisfy { $0.growth == Self.mss })
        #expect(r.steps[18].growth == Self.mss / 4)
    }

    @Test func staysInSlowStartWhileTheRTTIsFlatOrRisesLess() {
        var r = Rounds()
        let base = Duration.milliseconds(100)
        for round in 0..<20 {
            // Jitter within a round does not matter: only its minimum does.
            r.round { i in i == 3 ? base + .milliseconds(40) : base + .microseconds(round % 2 == 0 ? 0 : 100) }
        }
        r.round(base + Self.threshold(base) - .microseconds(1))
        #expect(r.phases.allSatisfy { $0 == .slowStart })
        #expect(r.steps.allSatisfy { $0.growth == Self.mss && !$0.enterCongestionAvoidance })
    }

    @Test(arguments: [(20, 4.0), (100, 12.5), (200, 16.0)] as [(Int, Double)])
    func thresholdIsAnEighthClampedTo4To16Milliseconds(baseMilliseconds: Int, thresholdMilliseconds: Double) {
        let base = Duration.milliseconds(baseMilliseconds)
        let threshold = Duration.microseconds(Int64(thresholdMilliseconds * 1000))
        #expect(HyStartPlusPlus.rttThreshold(lastRoundMinRTT: base) == threshold)
        var below = Rounds()
        below.round(base)
        below.round(base + threshold - .microseconds(10))
        #expect(below.h.phase == .slowStart)
        var at = Rounds()
        at.round(base)
        at.round(base + threshold)
        #expect(Self.isCSS(at.h.phase))
    }

    @Test func fewerThanEightSamplesARoundDecideNothing() {
        // Seven ACKs a round; and rounds of ten where only seven, then eight, carry a sample.
        var r = Rounds(window: 7)
        r.round(.milliseconds(50))
        r.round(.milliseconds(200))
        #expect(r.h.phase == .slowStart)
        var seven = Rounds()
        seven.round(.milliseconds(50))
        seven.round { i in i < 7 ? .milliseconds(200) : nil }
        #expect(seven.h.phase == .slowStart)
        var eight = Rounds()
        eight.round(.milliseconds(50))
        eight.round { i in i < 8 ? .milliseconds(200) : nil }
        #expect(eight.phases[17] == .conservativeSlowStart(baseline: .milliseconds(200), rounds: 0))
    }

    // MARK: Conservative Slow Start

    @Test func conservativeSlowStartLastsFiveRoundsThenAvoidsCongestion() {
        var r = Rounds()
        r.round(.milliseconds(100))
        r.round(.milliseconds(120))
        #expect(r.phases[17] == .conservativeSlowStart(baseline: .milliseconds(120), rounds: 0))
        // The round CSS began in counts as its first (RFC 9406 4.2); four more follow.
        #expect(r.phases[19] == .conservativeSlowStart(baseline: .milliseconds(120), rounds: 1))
        for _ in 0..<3 { r.round(.milliseconds(125)) }
        #expect(r.phases.last == .conservativeSlowStart(baseline: .milliseconds(120), rounds: 4))
        #expect(!r.steps.contains { $0.enterCongestionAvoidance })
        r.round(.milliseconds(125))
        // The fifth round's last ACK hands over to congestion avoidance, once.
        #expect(r.steps.last?.enterCongestionAvoidance == true)
        #expect(r.steps.filter(\.enterCongestionAvoidance).count == 1)
        #expect(r.h.phase == .finished)
        // CSS grew a quarter of slow start's rate: 365 bytes an ACK, 42 ACKs.
        let cssGrowth = r.steps[18...].map(\.growth).reduce(0, +)
        #expect(cssGrowth == 42 * Self.mss / 4)
    }

    @Test func cssGrowthIsExactOverUnevenAcks() {
        var r = Rounds()
        r.round(.milliseconds(100))
        r.round(.milliseconds(120))
        r.growth = 1001
        let before = r.steps.count
        r.round(.milliseconds(125))
        // 10 * 1001 / 4 = 2502.5: the remainders add up rather than being dropped each ACK (250 * 10).
        #expect(r.steps[before...].map(\.growth).reduce(0, +) == 10 * 1001 / 4)
    }

    @Test func aFallingRTTInCSSMeansTheExitWasSpurious() {
        var r = Rounds()
        r.round(.milliseconds(100))
        r.round(.milliseconds(120))
        r.round(.milliseconds(121))
        #expect(Self.isCSS(r.h.phase))
        // The next round's minimum is back below the baseline: resume slow start.
        r.round(.milliseconds(110))
        #expect(r.phases[37] == .slowStart)
        #expect(r.steps[38].growth == Self.mss)
        // And HyStart++ keeps watching: it may leave again.
        r.round(.milliseconds(110))
        r.round(.milliseconds(130))
        #expect(Self.isCSS(r.h.phase))
    }

    @Test func finishedHyStartStepsAside() {
        var h = HyStartPlusPlus()
        h.finish()
        let step = h.onAck(growth: 2920, rtt: .seconds(1), ack: SequenceNumber(1), sndMax: SequenceNumber(2))
        #expect(step == HyStartPlusPlus.Step(growth: 2920, enterCongestionAvoidance: false))
        #expect(!h.isActive)
    }

    // MARK: In the controllers, on a path with a queue

    /// A path with a 20 ms base RTT and a bottleneck that carries `bdp`
    /// segments a round trip: the rest of the flight queues, and the RTT grows
    /// with it. Runs rounds until ssthresh is set or `maxRounds` pass.
    static func slowStartOverABottleneck<C: CongestionControl>(_ cc: C, bdp: Int = 100, queueing: Bool = true,
                                                               maxRounds: Int = 12) -> AckClock<C> {
        var s = AckClock(cc, mss: mss)
        let base = Duration.milliseconds(20)
        for _ in 0..<maxRounds where s.cc.slowStartThreshold == Int(Int32.max) {
            let queued = queueing ? max(s.flight / mss - bdp, 0) : 0
            s.round(rtt: base + base * Double(queued) / Double(bdp))
        }
        return s
    }

    @Test func cubicLeavesSlowStartBeforeLossWhenTheQueueBuilds() {
        let s = Self.slowStartOverABottleneck(Cubic(mss: Self.mss))
        // The first round with a queue (flight 160 on a 100-segment BDP: RTT
        // 32 ms over 20) moved it to CSS; five rounds at a quarter of the rate
        // later (x1.25 a round, as this path never drops), congestion avoidance
        // began with ssthresh = cwnd, no loss needed.
        #expect(s.cc.slowStartThreshold < Int(Int32.max))
        #expect(s.cc.hyStart?.phase == .finished)
        #expect(s.cc.congestionWindow >= s.cc.slowStartThreshold)
        #expect(s.cc.congestionWindow - s.cc.slowStartThreshold < Self.mss)
        let bound = 2 * 160 * pow(1 + 1.0 / Double(HyStartPlusPlus.cssGrowthDivisor), Double(HyStartPlusPlus.cssRounds))
        #expect(s.cwndSegments > 100 && s.cwndSegments < bound, "\(s.cwndSegments)")
        // The stage's curve starts with K = 0 at W_max = cwnd_epoch = ssthresh (RFC 9438 4.10).
        #expect(s.cc.epochStart != nil)
        #expect(s.cc.k == 0)
        #expect(s.cc.wMax == Double(s.cc.slowStartThreshold))

        // A path without the queue: slow start carries on doubling.
        let flat = Self.slowStartOverABottleneck(Cubic(mss: Self.mss), queueing: false)
        #expect(flat.cc.slowStartThreshold == Int(Int32.max))
        #expect(flat.cwndSegments == 10 * 4096)
        // And CUBIC without HyStart++ does not notice the queue: 400 BDPs in flight.
        let plain = Self.slowStartOverABottleneck(Cubic(mss: Self.mss, hyStart: false))
        #expect(plain.cc.slowStartThreshold == Int(Int32.max))
        #expect(plain.cwndSegments == 10 * 4096)
    }

    @Test func newRenoUsesHyStartOnlyWhenAsked() {
        let with = Self.slowStartOverABottleneck(NewReno(mss: Self.mss, hyStart: true))
        #expect(with.cc.hyStart?.phase == .finished)
        #expect(with.cc.congestionWindow - with.cc.slowStartThreshold < Self.mss)
        #expect(with.cwndSegments > 100 && with.cwndSegments < 1000, "\(with.cwndSegments)")
        let without = Self.slowStartOverABottleneck(NewReno(mss: Self.mss))
        #expect(without.cc.slowStartThreshold == Int(Int32.max))
        #expect(without.cc.hyStart == nil)
    }

    @Test func lossEndsHyStartForGood() {
        var s = Self.slowStartOverABottleneck(Cubic(mss: Self.mss), maxRounds: 3)
        #expect(s.cc.hyStart?.phase == .slowStart)
        s.congestionEvent()
        #expect(s.cc.hyStart?.phase == .finished)
        var t = Self.slowStartOverABottleneck(Cubic(mss: Self.mss), maxRounds: 3)
        t.cc.onRetransmitTimeout(flightSize: t.flight, mss: Self.mss, now: t.now)
        #expect(t.cc.hyStart?.phase == .finished)
    }
}
