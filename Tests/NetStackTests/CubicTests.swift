import Testing
@testable import NetStack
import NetStackWire
#if canImport(Glibc)
import Glibc
#endif

/// CUBIC (RFC 9438) on crafted ACK sequences on a virtual timeline. Expected
/// values come from the RFC's formulas, evaluated here in segments and seconds
/// as the RFC writes them, independently of the implementation's bytes.
@Suite struct CubicTests {
    static let mss = 1460
    static let c = 0.4
    static let beta = 0.7
    static let alpha = 3 * (1 - beta) / (1 + beta)

    /// A sender at `segments` segments in congestion avoidance territory (no HyStart++).
    static func sender(segments: Int) -> AckClock<Cubic> {
        AckClock(Cubic(mss: mss, initialWindowSegments: segments, hyStart: false), mss: mss)
    }

    /// Seconds since the current congestion-avoidance stage began.
    static func epochTime(_ s: AckClock<Cubic>) -> Double {
        Double((s.now - s.cc.epochStart!).nanoseconds) / 1e9
    }

    /// W_cubic(t) = C (t - K)^3 + W_max, in segments (RFC 9438 Figure 1).
    static func wCubic(_ t: Double, k: Double, wMax: Double) -> Double {
        c * pow(t - k, 3) + wMax
    }

    /// K = cubic_root((W_max - cwnd_epoch) / C) (RFC 9438 Figure 2).
    static func k(wMax: Double, cwndEpoch: Double) -> Double {
        cbrt((wMax - cwndEpoch) / c)
    }

    // MARK: Multiplicative decrease and K (RFC 9438 4.2, 4.6)

    @Test func congestionEventCutsTheWindowByBeta() {
        var s = Self.sender(segments: 100)
        s.congestionEvent()
        // 100 segments -> ssthresh = cwnd = 0.7 * 100 = 70 segments, exactly.
        #expect(s.cc.congestionWindow == 70 * Self.mss)
        #expect(s.cc.slowStartThreshold == 70 * Self.mss)
        #expect(s.cc.wMax == Double(100 * Self.mss))
        #expect(s.cc.cwndPrior == Double(100 * Self.mss))
    }

    @Test func reductionKeepsAtLeastTwoSegments() {
        var s = Self.sender(segments: 2)
        s.congestionEvent()
        // 0.7 * 2 = 1.4 segments, raised to the RFC's floor of 2 (4.6).
        #expect(s.cc.congestionWindow == 2 * Self.mss)
        #expect(s.cc.slowStartThreshold == 2 * Self.mss)
    }

    @Test func kIsWhereTheCurveRegainsWMax() throws {
        var s = Self.sender(segments: 100)
        s.congestionEvent()
        s.round(rtt: .milliseconds(100))
        // The first ACK after the reduction began the stage at cwnd_epoch = 70.
        let k = Self.k(wMax: 100, cwndEpoch: 70)
        #expect(abs(s.cc.k - k) < 1e-9, "K \(s.cc.k), formula \(k)")
        #expect(s.cc.cwndEpoch == Double(70 * Self.mss))
        // The implementation's curve, in bytes, is the RFC's in segments.
        for t in [0, 1, 2.5, k, 5, 8] {
            let formula = Self.wCubic(t, k: k, wMax: 100)
            #expect(abs(s.cc.wCubic(t, mss: Self.mss) / Double(Self.mss) - formula) < 1e-9, "t = \(t)")
        }
        #expect(abs(Self.wCubic(0, k: k, wMax: 100) - 70) < 1e-9)
        #expect(abs(Self.wCubic(k, k: k, wMax: 100) - 100) < 1e-12)
    }

    // MARK: Concave and convex growth (RFC 9438 4.4, 4.5)

    @Test func windowFollowsTheCurveBackToWMaxAtK() {
        var s = Self.sender(segments: 100)
        s.congestionEvent()
        let k = Self.k(wMax: 100, cwndEpoch: 70)
        var sawK = false
        // 100 ms rounds: the Reno estimate stays below the curve until ~5.6 s.
        while s.cc.epochStart == nil || Self.epochTime(s) < 5 {
            s.round(rtt: .milliseconds(100))
            let t = Self.epochTime(s)
            // Each ACK moves cwnd toward the target W_cubic(t + RTT): cwnd
            // tracks the curve, at or above W_cubic(t) and not past the target.
            let now = Self.wCubic(t, k: k, wMax: 100)
            let ahead = Self.wCubic(t + 0.1, k: k, wMax: 100)
            #expect(s.cwndSegments > now - 0.25 && s.cwndSegments < ahead + 0.25,
                    "t = \(t): cwnd \(s.cwndSegments), W_cubic(t) \(now), W_cubic(t + RTT) \(ahead)")
            if !sawK && t >= k {
                sawK = true
                #expect(abs(s.cwndSegments - 100) < 0.05, "at t = K cwnd is \(s.cwndSegments)")
            }
        }
        #expect(sawK)
    }

    @Test func growthIsConcaveBelowWMaxAndConvexAbove() throws {
        var s = Self.sender(segments: 100)
        s.congestionEvent()
        s.round(rtt: .milliseconds(100))
        let k = s.cc.k
        // The window, in segments, every 5 rounds: at 0.5, 1, ... 5.5 s into the
        // stage (before the Reno estimate overtakes the curve, ~5.7 s).
        var samples: [Double] = []
        var rounds = 1
        while samples.count < 11 {
            s.round(rtt: .milliseconds(100))
            rounds += 1
            if rounds % 5 == 0 { samples.append(s.cwndSegments) }
        }
        // growth[i] is the gain from 0.5 (i + 1) s to 0.5 (i + 2) s; K falls in interval iK.
        let growth = zip(samples.dropFirst(), samples).map { $0 - $1 }
        let iK = Int(k / 0.5) - 1
        try #require(iK >= 2 && iK + 2 < growth.count, "K = \(k) s")
        // Concave: every half second gains less than the one before, up to K...
        for i in 1..<iK {
            #expect(growth[i] < growth[i - 1], "concave at \(0.5 * Double(i + 1)) s: \(growth)")
        }
        // ...flat around W_max...
        #expect(growth[iK] < 0.1, "\(growth)")
        #expect(abs(samples[iK] - 100) < 0.1 && abs(samples[iK + 1] - 100) < 0.1, "\(samples)")
        // ...convex after: every half second gains more.
        for i in (iK + 1)..<growth.count {
            #expect(growth[i] > growth[i - 1], "convex at \(0.5 * Double(i + 1)) s: \(growth)")
        }
        #expect(samples.last! > 100)
    }

    // MARK: Reno-friendly region (RFC 9438 4.3)

    @Test func renoFriendlyRegionDominatesOnShortRTTs() {
        var s = Self.sender(segments: 100)
        s.congestionEvent()
        let rounds = 30
        for _ in 0..<rounds { s.round(rtt: .milliseconds(2)) }
        // 2 ms rounds: after 60 ms the cubic is still at 70 segments, but Reno
        // would have added alpha = 3(1 - beta)/(1 + beta) segments a round.
        let t = Self.epochTime(s)
        let cubic = Self.wCubic(t, k: Self.k(wMax: 100, cwndEpoch: 70), wMax: 100)
        let reno = 70 + Self.alpha * Double(rounds)
        #expect(cubic < reno - 10)
        #expect(abs(s.cwndSegments - reno) < 0.5, "cwnd \(s.cwndSegments), Reno estimate \(reno)")
        #expect(abs(s.cc.wEst / Double(Self.mss) - s.cwndSegments) < 0.01)

        // On a long path the same number of rounds is seconds of cubic growth, well above Reno.
        var long = Self.sender(segments: 100)
        long.congestionEvent()
        for _ in 0..<rounds { long.round(rtt: .milliseconds(100)) }
        #expect(long.cwndSegments > reno + 10, "cwnd \(long.cwndSegments), Reno estimate \(reno)")
    }

    @Test func renoEstimateGrowsOneSegmentPerRoundOnceItPassesThePriorWindow() {
        var s = Self.sender(segments: 100)
        s.congestionEvent()
        // 2 ms rounds: Reno-friendly all the way; W_est passes cwnd_prior = 100 after ~57 rounds.
        while s.cwndSegments < 101 { s.round(rtt: .milliseconds(2)) }
        let before = s.cwndSegments
        for _ in 0..<10 { s.round(rtt: .milliseconds(2)) }
        // alpha_cubic = 1 from there: Reno's one segment a round.
        #expect(abs(s.cwndSegments - before - 10) < 0.2, "\(before) -> \(s.cwndSegments)")
    }

    // MARK: Fast convergence (RFC 9438 4.7)

    @Test func fastConvergenceLowersWMaxWhenTheWindowStoppedShort() {
        var s = Self.sender(segments: 100)
        s.congestionEvent()
        for _ in 0..<8 { s.round(rtt: .milliseconds(100)) }
        let cwnd = s.cc.congestionWindow
        #expect(Double(cwnd) < 100.0 * Double(Self.mss))
        s.congestionEvent()
        // The loss came below W_max: W_max = cwnd (1 + beta) / 2, not cwnd.
        #expect(abs(s.cc.wMax! - Double(cwnd) * (1 + Self.beta) / 2) < 1e-6)
        #expect(s.cc.slowStartThreshold == cwnd * 7 / 10)
        // So the next curve plateaus lower and sooner.
        s.round(rtt: .milliseconds(100))
        let k = Self.k(wMax: Double(cwnd) / Double(Self.mss) * (1 + Self.beta) / 2,
                       cwndEpoch: Double(cwnd * 7 / 10) / Double(Self.mss))
        #expect(abs(s.cc.k - k) < 1e-9)

        // A loss at or above W_max sets W_max to cwnd.
        while Double(s.cc.congestionWindow) < s.cc.wMax! + Double(Self.mss) { s.round(rtt: .milliseconds(100)) }
        let high = s.cc.congestionWindow
        s.congestionEvent()
        #expect(s.cc.wMax == Double(high))
    }

    // MARK: Application-limited (RFC 9438 4.2, 5.8; RFC 7661)

    @Test func applicationLimitedAcksDoNotGrowTheWindow() {
        var s = Self.sender(segments: 10)
        let initial = s.cc.congestionWindow
        for _ in 0..<5 { s.round(rtt: .milliseconds(50), windowLimited: false) }
        #expect(s.cc.congestionWindow == initial)

        var ca = Self.sender(segments: 100)
        ca.congestionEvent()
        ca.round(rtt: .milliseconds(50))
        let cwnd = ca.cc.congestionWindow
        for _ in 0..<50 { ca.round(rtt: .milliseconds(50), windowLimited: false) }
        #expect(ca.cc.congestionWindow == cwnd)
    }

    @Test func timeApplicationLimitedDoesNotCountOnTheCurve() {
        // Two senders on the same curve; one is application-limited for 3 s in the middle.
        var steady = Self.sender(segments: 100)
        var paused = Self.sender(segments: 100)
        steady.congestionEvent()
        paused.congestionEvent()
        for _ in 0..<10 {
            steady.round(rtt: .milliseconds(100))
            paused.round(rtt: .milliseconds(100))
        }
        #expect(paused.cc.congestionWindow == steady.cc.congestionWindow)
        for _ in 0..<30 { paused.round(rtt: .milliseconds(100), windowLimited: false) }
        // Refill the window the pause drained, as an application with data again would.
        paused.fill()
        for _ in 0..<10 {
            steady.round(rtt: .milliseconds(100))
            paused.round(rtt: .milliseconds(100))
        }
        // Without the shift, the paused sender would be 3 s further along the
        // curve (t = 5 s, past K = 4.2 s: above W_max) instead of at t = 2 s.
        #expect(abs(paused.cwndSegments - steady.cwndSegments) < 0.1,
                "paused \(paused.cwndSegments), steady \(steady.cwndSegments)")
        let k = Self.k(wMax: 100, cwndEpoch: 70)
        #expect(abs(paused.cwndSegments - Self.wCubic(Self.epochTime(paused), k: k, wMax: 100)) < 0.5)
        #expect(paused.cwndSegments < 99)
    }

    // MARK: Slow start and timeouts (RFC 9438 4.8, 4.10; RFC 5681; RFC 3465)

    @Test func slowStartGrowsByAtMostTwoSegmentsAnAck() {
        var cubic = Cubic(mss: Self.mss, hyStart: false)
        func ack(_ bytes: Int) {
            cubic.onAck(AckSample(deliveredBytes: bytes, mss: Self.mss, now: Instant(nanoseconds: 0), rtt: nil,
                                  minRTT: nil, ack: SequenceNumber(UInt32(bytes)), sndMax: SequenceNumber(100_000),
                                  priorFlightSize: 10 * Self.mss, windowLimited: true))
        }
        ack(Self.mss)
        #expect(cubic.congestionWindow == 11 * Self.mss)
        ack(4 * Self.mss)
        #expect(cubic.congestionWindow == 13 * Self.mss)
    }

    @Test func aLossEpisodeCutsSsthreshOnce() {
        // A timeout during fast recovery: ssthresh was already cut when recovery began.
        var s = Self.sender(segments: 100)
        s.cc.onCongestionEvent(flightSize: s.flight, mss: Self.mss, now: s.now)
        s.cc.onRetransmitTimeout(flightSize: s.flight, mss: Self.mss, now: s.now)
        #expect(s.cc.slowStartThreshold == 70 * Self.mss)
        #expect(s.cc.congestionWindow == Self.mss)
        // Loss detected again before anything new is acknowledged: still one cut,
        // and cwnd stays collapsed rather than jumping to ssthresh.
        s.cc.onCongestionEvent(flightSize: s.flight, mss: Self.mss, now: s.now)
        #expect(s.cc.slowStartThreshold == 70 * Self.mss)
        #expect(s.cc.congestionWindow == Self.mss)
        // New data acknowledged ends the episode: the next loss cuts again, from cwnd.
        s.sndMax = s.una
        s.fill()
        s.round(rtt: .milliseconds(100))
        #expect(s.cc.congestionWindow == 2 * Self.mss)
        s.cc.onRetransmitTimeout(flightSize: s.flight, mss: Self.mss, now: s.now)
        #expect(s.cc.slowStartThreshold == 2 * Self.mss)
        // And after a recovery ends, a new event is a new episode.
        var r = Self.sender(segments: 100)
        r.congestionEvent()
        r.congestionEvent()
        #expect(r.cc.slowStartThreshold == 49 * Self.mss)
    }

    @Test func timeoutCollapsesToOneSegmentAndRestartsTheCurveAtK0() {
        var s = Self.sender(segments: 100)
        s.cc.onRetransmitTimeout(flightSize: s.flight, mss: Self.mss, now: s.now)
        // RFC 9438 4.8: cwnd = 1 SMSS as Reno; ssthresh = 0.7 * cwnd.
        #expect(s.cc.congestionWindow == Self.mss)
        #expect(s.cc.slowStartThreshold == 70 * Self.mss)
        // The timer fires again before anything is acknowledged: ssthresh holds (RFC 5681 3.1).
        s.cc.onRetransmitTimeout(flightSize: s.flight, mss: Self.mss, now: s.now)
        #expect(s.cc.slowStartThreshold == 70 * Self.mss)
        #expect(s.cc.congestionWindow == Self.mss)

        s.sndMax = s.una
        s.fill()
        while 2 * s.cc.congestionWindow < s.cc.slowStartThreshold {
            let before = s.cc.congestionWindow
            s.round(rtt: .milliseconds(100))
            // Slow start: one segment per segment acknowledged, so the window doubles.
            #expect(s.cc.congestionWindow == 2 * before)
        }
        #expect(s.cc.epochStart == nil)
        // This round reaches ssthresh (70 segments) and its remaining ACKs begin
        // congestion avoidance there.
        s.round(rtt: .milliseconds(100))
        let epochWindow = Double(70 * Self.mss)
        // The first congestion-avoidance stage after a timeout: K = 0, W_max = cwnd_epoch (RFC 9438 4.8).
        #expect(s.cc.epochStart != nil)
        #expect(s.cc.k == 0)
        #expect(s.cc.wMax == epochWindow)
        #expect(s.cc.cwndEpoch == epochWindow)
        // From there the curve is convex from its start. Reno's estimate leads for
        // the first seconds (0.4 t^3 < alpha t / RTT until t ~ 3.6 s); after
        // that each round adds more than the one before.
        var gains: [Double] = []
        for _ in 0..<60 {
            let before = s.cwndSegments
            s.round(rtt: .milliseconds(100))
            gains.append(s.cwndSegments - before)
        }
        let t = Self.epochTime(s)
        #expect(s.cc.wCubic(t, mss: Self.mss) > s.cc.wEst)
        #expect(abs(s.cwndSegments - Self.wCubic(t, k: 0, wMax: 70)) < 1, "\(s.cwndSegments) at \(t) s")
        #expect(zip(gains.dropFirst(45), gains.dropFirst(44)).allSatisfy { $0 > $1 }, "\(gains)")
    }

    // MARK: The seam

    @Test func cubicIsTheDefaultAndTheControllerRunsIt() {
        #expect(TCPConfiguration().congestionControl == .cubic)
        #expect(CongestionAlgorithm(rawValue: "cubic") == .cubic)
        var controller = CongestionController(.cubic, mss: Self.mss)
        #expect(controller.algorithm == .cubic)
        #expect(controller.congestionWindow == 10 * Self.mss)
        controller.onCongestionEvent(flightSize: 10 * Self.mss, mss: Self.mss, now: .zero)
        #expect(controller.congestionWindow == 7 * Self.mss)
        #expect(controller.slowStartThreshold == 7 * Self.mss)
        controller.onRetransmitTimeout(flightSize: 7 * Self.mss, mss: Self.mss, now: .zero)
        #expect(controller.congestionWindow == Self.mss)
    }
}

/// CUBIC between two stacks, through loss: what the unit tests check on
/// crafted ACKs, run by real connections.
@Suite struct CubicStackToStackTests {
    static let size = 4 << 20

    @Test(arguments: [1, 2, 3] as [UInt64])
    func fourMebibytesThroughTwoPercentLoss(seed: UInt64) throws {
        let loss = FaultProfile(loss: 0.02)
        let pair = FaultyStackPair(aReceive: loss, aTransmit: loss, seed: seed)
        var tcp = TCPConfiguration()
        tcp.congestionControl = .cubic
        pair.a.tcp.defaultConfiguration = tcp
        pair.b.tcp.defaultConfiguration = tcp

        let listener = try pair.b.tcp.listen(port: 5001)
        let client = try pair.a.tcp.connect(to: FaultyStackPair.ipB, port: 5001, now: pair.now)
        var server: TCPConnection?
        let transfer = BulkTransfer(length: Self.size, seed: seed)
        /// Whether CUBIC cut the window and then grew it in congestion avoidance.
        var reduced = false, grewAfterReduction = false
        var lastWindow = 0
        let start = pair.now
        let finished = pair.run(maxRounds: 5_000_000, until: {
            transfer.read == Self.size && server?.isReadClosed == true
        }, app: {
            if server == nil { server = listener.accept() }
            var moved = transfer.pump(into: client)
            pair.a.tcp.flush(client, now: pair.now)
            if let s = server {
                moved = transfer.drain(from: s) || moved
                pair.b.tcp.flush(s, now: pair.now)
            }
            if case .cubic(let c) = client.sender.congestion {
                if c.wMax != nil { reduced = true }
                if reduced && c.epochStart != nil && c.congestionWindow > lastWindow && lastWindow > 0 {
                    grewAfterReduction = true
                }
                lastWindow = c.congestionWindow
            }
            return moved
        })
        #expect(finished)
        #expect(transfer.read == Self.size)
        #expect(transfer.receivedHash.value == transfer.sentHash.value)
        #expect(client.congestionAlgorithm == .cubic)
        #expect(server?.congestionAlgorithm == .cubic)
        #expect(client.error == nil && server?.error == nil)
        #expect(pair.faultsA.transmitCounters.dropped > 20)
        #expect(pair.a.tcp.counters.retransmissions > 0)
        #expect(reduced && grewAfterReduction)
        #expect(pair.now - start < .seconds(60), "took \(pair.now - start) virtual")
    }
}
