import Testing
@testable import NetStack
import NetStackWire

/// SACK-based loss recovery on one connection, driven with crafted ACKs from a
/// Linux-like peer that permits SACK: what is retransmitted (RFC 6675, only
/// holes), when (RACK-TLP, RFC 8985, or DupThresh), how fast (PRR, RFC 6937),
/// with what cut to the window, what a timeout resends, and D-SACK (RFC 2883)
/// on both sides.
///
/// Unless a test says otherwise the peer sends no timestamps, so a full
/// segment is the whole 1460-byte MSS and RTT samples come from one timed
/// segment per round trip: every sample is the 100 ms path RTT. SRTT = min RTT
/// = 100 ms and RTO = 300 ms (RFC 6298), RACK's reordering window is min RTT /
/// 4 = 25 ms and the probe timeout 2 SRTT = 200 ms (2 ms more for each probe
/// that came back unneeded since the last loss, up to 8 ms).
@Suite struct TCPSACKRecoveryTests {
    let iss = TCPHarness.defaultISS
    let peerISS = TCPHarness.defaultPeerISS
    static let mss = 1460
    static let rtt = Duration.milliseconds(100)

    func connection(timestamps: Bool = false, _ configure: (inout TCPConfiguration) -> Void = { _ in })
        -> TCPHarness {
        var config = TCPConfiguration()
        configure(&config)
        let h = TCPHarness.established(configuration: config,
                                       synOptions: TCPHarness.linuxSynOptions(timestamps: timestamps),
                                       rtt: Self.rtt)
        #expect(h.connection.sackEnabled)
        return h
    }

    /// The start of the stack's segment `i` (full-sized segments from ISS + 1).
    func seg(_ i: Int, mss: Int = mss) -> SequenceNumber { iss + 1 + i * mss }

    /// Which full-sized segments `out` carries, by index; a segment that is not
    /// one whole segment is recorded as an issue.
    func indices(_ out: [SentSegment], mss: Int = mss, sourceLocation: SourceLocation = #_sourceLocation) -> [Int] {
        out.filter { !$0.payload.isEmpty }.map { s in
            let offset = s.seq - (iss + 1)
            #expect(offset % mss == 0 && s.payload.count == mss, "\(s)", sourceLocation: sourceLocation)
            return offset / mss
        }
    }

    /// The stream's bytes of segment `i`.
    func payload(_ data: [UInt8], _ i: Int, mss: Int = mss) -> [UInt8] { Array(data[(i * mss)..<((i + 1) * mss)]) }

    // MARK: (a) Only holes are retransmitted

    @Test func afterThreeSACKsOnlyTheLostSegmentIsResent() {
        // With timestamps, as Linux: 1448-byte segments.
        let h = connection(timestamps: true)
        let mss = h.connection.sender.sendMSS
        #expect(mss == 1448)
        let data = testBytes(10 * mss)
        h.write(data)
        #expect(indices(h.drain(), mss: mss) == Array(0..<10))
        h.advance(by: Self.rtt)
        // Segment 0 is lost; 1, 2 and 3 arrive, each drawing a SACK.
        h.sack(seg(0, mss: mss), [(seg(1, mss: mss), seg(2, mss: mss))])
        h.sack(seg(0, mss: mss), [(seg(1, mss: mss), seg(3, mss: mss))])
        // One or two SACKed segments could be reordering: nothing yet.
        #expect(h.drain().isEmpty)
        #expect(h.connection.sender.recovery.lossState == .open)
        h.sack(seg(0, mss: mss), [(seg(1, mss: mss), seg(4, mss: mss))])
        let out = h.drain()
        // Three SACKed segments above it: segment 0 is lost (RACK's window is
        // zero once DupThresh would fire), and it alone is resent.
        #expect(indices(out, mss: mss) == [0])
        #expect(out.first?.payload == payload(data, 0, mss: mss))
        #expect(h.connection.sender.recovery.lossState == .recovery)
        #expect(h.connection.fastRecoveries == 1)
        // The rest of the flight arrives: nothing more is sent, SACKed or not.
        for k in 5...10 { h.sack(seg(0, mss: mss), [(seg(1, mss: mss), seg(k, mss: mss))]) }
        #expect(h.drain().isEmpty)
        #expect(h.connection.segmentsRetransmitted == 1)
        #expect(h.connection.sender.scoreboard.sackedSegments == 9)
    }

    @Test func eachHoleIsResentOnceInOrderAndNoSackedByte() {
        let h = connection()
        let data = testBytes(10 * Self.mss)
        h.write(data)
        #expect(indices(h.drain()) == Array(0..<10))
        h.advance(by: Self.rtt)
        // Segments 1, 4 and 7 are lost. Each arrival draws an ACK whose first
        // block holds the latest segment (RFC 2018 4).
        var resent: [Int] = []
        h.sack(seg(1))
        resent += indices(h.drain())
        h.sack(seg(1), [(seg(2), seg(3))])
        resent += indices(h.drain())
        h.sack(seg(1), [(seg(2), seg(4))])
        resent += indices(h.drain())
        #expect(resent.isEmpty)
        // 2, 3 and 5 SACKed: 1 and 4, both sent before 5, are lost.
        h.sack(seg(1), [(seg(5), seg(6)), (seg(2), seg(4))])
        let first = h.drain()
        #expect(indices(first) == [1, 4])
        h.sack(seg(1), [(seg(5), seg(7)), (seg(2), seg(4))])
        #expect(h.drain().isEmpty)
        h.sack(seg(1), [(seg(8), seg(9)), (seg(5), seg(7)), (seg(2), seg(4))])
        let second = h.drain()
        #expect(indices(second) == [7])
        h.sack(seg(1), [(seg(8), seg(10)), (seg(5), seg(7)), (seg(2), seg(4))])
        #expect(h.drain().isEmpty)
        for s in first + second {
            #expect(s.payload == payload(data, (s.seq - seg(0)) / Self.mss))
        }
        // The three retransmissions arrive: everything is acknowledged.
        h.advance(by: Self.rtt)
        h.sack(seg(4), [(seg(5), seg(7)), (seg(8), seg(10))])
        h.sack(seg(7), [(seg(8), seg(10))])
        h.sack(seg(10))
        #expect(h.drain().allSatisfy { $0.payload.isEmpty })
        #expect(h.connection.segmentsRetransmitted == 3)
        #expect(h.connection.sender.sndUna == seg(10))
        #expect(h.connection.sender.scoreboard.isEmpty)
        #expect(h.connection.sender.recovery.lossState == .open)
    }

    @Test func sackedSegmentsDoNotGrowTheWindowBeforeLossIsDetected() {
        let h = connection()
        h.write(testBytes(30 * Self.mss))
        #expect(indices(h.drain()) == Array(0..<10))
        h.advance(by: Self.rtt)
        let cwnd = h.connection.sender.congestion.congestionWindow
        #expect(cwnd == 10 * Self.mss)
        // Segment 0 is missing; 1 and 2 arrive. RFC 5681 3.1 grows cwnd only
        // on ACKs that cumulatively acknowledge new data (as Linux), so each
        // SACKed segment lets exactly one new segment take its place in the pipe.
        h.sack(seg(0), [(seg(1), seg(2))])
        #expect(indices(h.drain()) == [10])
        h.sack(seg(0), [(seg(1), seg(3))])
        #expect(indices(h.drain()) == [11])
        #expect(h.connection.sender.congestion.congestionWindow == cwnd)
        #expect(h.connection.sender.recovery.lossState == .open)
    }

    // MARK: (b) The window cut and PRR

    /// Ten segments out, then five ACKs of two segments each at one RTT:
    /// slow start takes cwnd to 20 segments (RFC 5681 3.1 with L = 2 SMSS)
    /// and segments 10-29 are in flight, all sent at the same instant. The
    /// application wrote `written` segments in all.
    func twentyInFlight(_ algorithm: CongestionAlgorithm, written: Int = 60) -> TCPHarness {
        let h = connection { $0.congestionControl = algorithm }
        h.write(testBytes(written * Self.mss))
        #expect(indices(h.drain()) == Array(0..<10))
        h.advance(by: Self.rtt)
        for k in 1...5 { h.sack(seg(2 * k)) }
        #expect(indices(h.drain()) == Array(10..<30))
        #expect(h.connection.sender.congestion.congestionWindow == 20 * Self.mss)
        #expect(h.connection.sender.flightSize == 20 * Self.mss)
        h.advance(by: Self.rtt)
        return h
    }

    @Test func cubicCutsToSevenTenthsAndPRRSendsInProportion() {
        let h = twentyInFlight(.cubic)
        // Segment 10 is lost; an ACK SACKs 11-13.
        h.sack(seg(10), [(seg(11), seg(14))])
        // RFC 9438 4.6: ssthresh = cwnd * 0.7 = 14 segments, and cwnd = ssthresh.
        #expect(h.connection.sender.congestion.slowStartThreshold == 20 * Self.mss * 7 / 10)
        #expect(h.connection.sender.congestion.congestionWindow == 14 * Self.mss)
        #expect(h.connection.sender.recovery.lossState == .recovery)
        // PRR (RFC 6937 3) with RecoverFS = 20 segments and pipe above
        // ssthresh: sndcnt = CEIL(prr_delivered * 14 / 20) - prr_out, so 0.7
        // of what is delivered goes out: 3 delivered, 2.1 may go: the
        // retransmission and one new segment.
        var sent = [indices(h.drain())]
        for k in 1...6 {
            h.sack(seg(10), [(seg(11), seg(14 + k))])
            sent.append(indices(h.drain()))
        }
        // Delivered 4..9 segments: allowed 2.8, 3.5, 4.2, 4.9, 5.6, 6.3.
        #expect(sent == [[10, 30], [], [31], [32], [], [33], [34]])
    }

    @Test func newRenoHalvesAndPRRSendsOneForEveryTwoDelivered() {
        let h = twentyInFlight(.newReno)
        h.sack(seg(10), [(seg(11), seg(14))])
        // RFC 5681 3.2 (4): ssthresh = FlightSize / 2 = 10 segments; cwnd = ssthresh (RFC 6675 5 4.2).
        #expect(h.connection.sender.congestion.slowStartThreshold == 10 * Self.mss)
        #expect(h.connection.sender.congestion.congestionWindow == 10 * Self.mss)
        // ssthresh / RecoverFS = 1/2. Three delivered: 1.5 segments allowed,
        // the retransmission; half a segment waits (sender SWS avoidance).
        var sent = [indices(h.drain())]
        for k in 1...16 {
            h.sack(seg(10), [(seg(11), seg(14 + k))])
            sent.append(indices(h.drain()))
        }
        // While pipe > ssthresh (through the twelfth ACK), one new segment
        // per two delivered. Then pipe reaches ssthresh and PRR's slow-start
        // reduction bound holds it there: one for one.
        #expect(sent == [[10], [30], [], [31], [], [32], [], [33], [], [34], [], [35], [], [], [36], [37], [38]])
        #expect(h.connection.sender.pipe == 10 * Self.mss)
        #expect(h.connection.sender.recovery.lossState == .recovery)
    }

    // MARK: (c) The end of recovery

    /// Ten segments out, and 0 and 5 missing at the peer while 1-4 and 6
    /// arrive: recovery resends both.
    func zeroAndFiveResent() -> TCPHarness {
        let h = connection()
        h.write(testBytes(10 * Self.mss))
        #expect(indices(h.drain()) == Array(0..<10))
        h.advance(by: Self.rtt)
        h.sack(seg(0), [(seg(1), seg(2))])
        h.sack(seg(0), [(seg(1), seg(3))])
        h.sack(seg(0), [(seg(1), seg(4))])
        h.sack(seg(0), [(seg(1), seg(5))])
        h.sack(seg(0), [(seg(6), seg(7)), (seg(1), seg(5))])
        #expect(indices(h.drain()) == [0, 5])
        return h
    }

    @Test func aPartialAckKeepsRecoveryAndTheFullAckEndsIt() {
        // 0 and 5 are lost.
        let h = zeroAndFiveResent()
        for k in 8...10 { h.sack(seg(0), [(seg(6), seg(k)), (seg(1), seg(5))]) }
        #expect(h.connection.sender.recovery.recoveryPoint == seg(10))
        let ssthresh = h.connection.sender.congestion.slowStartThreshold
        h.advance(by: Self.rtt)
        // The retransmission of 0 arrives: a partial ACK (below RecoveryPoint).
        h.sack(seg(5), [(seg(6), seg(10))])
        #expect(h.connection.sender.recovery.lossState == .recovery)
        #expect(h.drain().allSatisfy { $0.payload.isEmpty })
        // The retransmission of 5 arrives: RecoveryPoint is acknowledged (RFC 6675 5).
        h.sack(seg(10))
        #expect(h.connection.sender.recovery.lossState == .open)
        #expect(h.connection.sender.recovery.recoveryPoint == nil)
        // CUBIC leaves recovery at ssthresh (RFC 9438 4.6); nothing was cut twice.
        #expect(h.connection.sender.congestion.slowStartThreshold == ssthresh)
        #expect(h.connection.sender.congestion.congestionWindow == ssthresh)
        #expect(h.connection.fastRecoveries == 1)
        #expect(h.connection.segmentsRetransmitted == 2)
    }

    @Test func newRenoLeavesRecoveryWithoutABurst() {
        let h = twentyInFlight(.newReno)
        h.sack(seg(10), [(seg(11), seg(14))])
        for k in 1...16 { h.sack(seg(10), [(seg(11), seg(14 + k))]) }
        #expect(indices(h.drain()) == [10] + Array(30..<39))
        h.advance(by: Self.rtt)
        // The retransmission of 10 and new segments 30-35 arrive: the ACK
        // passes RecoveryPoint (segment 30), and three segments are still out.
        h.sack(seg(36))
        #expect(h.connection.sender.recovery.lossState == .open)
        // RFC 6582 3.2 step 3 (1): cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS)
        // = min(10, 3 + 1) segments, so one new segment goes, not seven.
        #expect(h.connection.sender.congestion.congestionWindow == 4 * Self.mss)
        #expect(indices(h.drain()) == [39])
        #expect(h.connection.sender.flightSize == 4 * Self.mss)
    }

    // MARK: (d) RACK's reordering timer

    @Test func twoSACKedSegmentsLeadToARetransmissionAfterTheReorderingWindow() {
        let h = connection()
        let data = testBytes(10 * Self.mss)
        h.write(data)
        _ = h.drain()
        h.advance(by: Self.rtt)
        let ackTime = h.now
        h.sack(seg(0), [(seg(1), seg(2))])
        h.sack(seg(0), [(seg(1), seg(3))])
        #expect(h.drain().isEmpty)
        // Segment 0 was sent with 1 and 2 and has not arrived: lost once
        // RACK.rtt + reo_wnd = 100 + 25 ms have passed since it was sent.
        #expect(h.connection.sender.reorderDeadline == ackTime + .milliseconds(25))
        #expect(h.advance(by: .milliseconds(24)).isEmpty)
        let out = h.advance(by: .milliseconds(1))
        #expect(indices(out) == [0])
        #expect(out.first?.payload == payload(data, 0))
        #expect(out.first?.time == ackTime + .milliseconds(25))
        #expect(h.connection.sender.recovery.lossState == .recovery)
        #expect(h.connection.lossProbesSent == 0)
    }

    // MARK: (e) Tail loss probes

    @Test func aProbeResendsTheLastTwoSegmentsAfterTwoSRTT() {
        let h = connection()
        let data = testBytes(5 * Self.mss)
        h.write(data)
        let t0 = h.now
        #expect(indices(h.drain()) == Array(0..<5))
        // No ACK comes. PTO = 2 SRTT = 200 ms with more than one segment
        // out (RFC 8985 7.2; not Linux's 2 ms more while no probe has come
        // back unneeded, see armLossProbe), before the RTO at 300 ms.
        #expect(h.advance(by: .milliseconds(199)).isEmpty)
        let out = h.advance(by: .milliseconds(1))
        // No new data to send: the last segment goes again (RFC 8985 7.3),
        // and the one before it (a deviation, see sendLossProbe), so that
        // one lost frame cannot leave the sender waiting for the RTO.
        #expect(indices(out) == [3, 4])
        #expect(out.map(\.payload) == [payload(data, 3), payload(data, 4)])
        #expect(out.allSatisfy { $0.time == t0 + .milliseconds(200) })
        #expect(h.connection.lossProbesSent == 1)
        #expect(h.connection.segmentsRetransmitted == 2)
        #expect(h.connection.sender.recovery.lossState == .open)
        // The RTO is re-armed from the probe (7.3), and no second probe follows.
        #expect(h.connection.sender.retransmitDeadline == t0 + .milliseconds(500))
        #expect(h.advance(by: .milliseconds(299)).isEmpty)
        let rto = h.advance(by: .milliseconds(1))
        #expect(indices(rto) == [0])
        #expect(h.connection.lossProbesSent == 1)
    }

    @Test func withOneSegmentOutTheProbeGoesInsteadOfTheTimeout() {
        let h = connection()
        let t0 = h.now
        h.write(testBytes(Self.mss))
        #expect(indices(h.drain()) == [0])
        // PTO = 2 SRTT + WCDelAckT = 400 ms, capped at the RTO, 300 ms
        // (RFC 8985 7.2). The probe timer stands in for the RTO, so at 300 ms
        // the probe goes, and the window is not collapsed by a timeout.
        #expect(h.advance(by: .milliseconds(299)).isEmpty)
        let out = h.advance(by: .milliseconds(1))
        #expect(indices(out) == [0])
        #expect(h.connection.lossProbesSent == 1)
        #expect(h.connection.retransmissionTimeouts == 0)
        #expect(h.connection.sender.recovery.lossState == .open)
        #expect(h.connection.sender.congestion.congestionWindow == 10 * Self.mss)
        // The probe arms the RTO again (7.3).
        #expect(h.connection.sender.retransmitDeadline == t0 + .milliseconds(600))
    }

    @Test func aProbeResendsOldSegmentsEvenWithNewDataWaiting() {
        let h = connection()
        let data = testBytes(12 * Self.mss)
        h.write(data)
        // cwnd holds ten.
        #expect(indices(h.drain()) == Array(0..<10))
        let out = h.advance(by: .milliseconds(200))
        // A deliberate deviation from RFC 8985 7.3 (see sendLossProbe): the
        // last segments again, which a receiver answers at once, rather than
        // a new one its delayed ACK would hold.
        #expect(indices(out) == [8, 9])
        #expect(out.map(\.payload) == [payload(data, 8), payload(data, 9)])
        #expect(h.connection.segmentsRetransmitted == 2)
        #expect(h.connection.sender.tlp.inFlight == LossProbe(endSeq: seg(10), firstStart: seg(8), lastStart: seg(9)))
    }

    @Test func theProbeTimerRestartsWhenNewDataGoesOut() {
        let h = connection()
        let t0 = h.now
        h.write(testBytes(2 * Self.mss))
        h.advance(by: .milliseconds(50))
        h.write(testBytes(2 * Self.mss, seed: 1))
        #expect(indices(h.drain()) == [2, 3])
        // RFC 8985 7.2: the PTO restarts after new data is sent, so the probe
        // comes 2 SRTT after segment 3, not 150 ms after it.
        #expect(h.advance(by: .milliseconds(199)).isEmpty)
        let out = h.advance(by: .milliseconds(1))
        #expect(indices(out) == [2, 3])
        #expect(out.first?.time == t0 + .milliseconds(250))
    }

    @Test func aProbeThatRepairedALossCutsTheWindowOnce() {
        let h = connection()
        h.write(testBytes(5 * Self.mss))
        _ = h.drain()
        let probe = h.advance(by: .milliseconds(200))
        #expect(indices(probe) == [3, 4])
        // More data follows the probe.
        h.write(testBytes(Self.mss, seed: 1))
        #expect(indices(h.drain()) == [5])
        h.advance(by: Self.rtt)
        // The original 4 was lost; the probe repaired it. The ACK goes beyond
        // the probe with no D-SACK of its last segment (RFC 8985 7.4.2), only
        // of 3, which arrived twice: a loss happened, and congestion control
        // hears of it once. Slow start first took the ACK (cwnd 10 -> 12
        // segments), then CUBIC cut to 0.7.
        h.sack(seg(6), [(seg(3), seg(4))])
        let cut = 12 * Self.mss * 7 / 10
        #expect(h.connection.sender.congestion.slowStartThreshold == cut)
        #expect(h.connection.sender.congestion.congestionWindow == cut)
        #expect(h.connection.sender.tlp.inFlight == nil)
        #expect(h.connection.sender.recovery.lossState == .open)
        #expect(h.connection.fastRecoveries == 0)
        #expect(h.connection.lossProbeRecoveries == 1)
        #expect(h.connection.lossProbesUnneeded == 0)
        #expect(h.connection.duplicateReportsReceived == 1)
        // Later ACKs cut nothing more.
        h.write(testBytes(2 * Self.mss, seed: 2))
        #expect(indices(h.drain()) == [6, 7])
        h.advance(by: Self.rtt)
        h.sack(seg(8))
        #expect(h.connection.sender.congestion.slowStartThreshold == cut)
        #expect(h.connection.sender.congestion.congestionWindow >= cut)
    }

    @Test func aProbeAnsweredWithADSACKCutsNothing() {
        let h = connection()
        h.write(testBytes(5 * Self.mss))
        _ = h.drain()
        #expect(indices(h.advance(by: .milliseconds(200))) == [3, 4])
        h.advance(by: Self.rtt)
        // Everything had arrived (the ACKs were lost): both copies are
        // duplicates, and the peer says so, one ACK each (RFC 2883). A D-SACK
        // of the earlier copy alone proves nothing about the last segment...
        h.sack(seg(5), [(seg(3), seg(4))])
        #expect(h.connection.sender.tlp.inFlight != nil)
        // ...that of the last one settles the probe as unneeded (RFC 8985 7.4.1).
        h.sack(seg(5), [(seg(4), seg(5))])
        #expect(h.connection.sender.tlp.inFlight == nil)
        #expect(h.connection.lossProbesUnneeded == 1)
        #expect(h.connection.lossProbeRecoveries == 0)
        #expect(h.connection.duplicateReportsReceived == 2)
        #expect(h.connection.sender.congestion.slowStartThreshold == Int(Int32.max))
        #expect(h.connection.sender.congestion.congestionWindow == 12 * Self.mss)
        // Duplicates a probe drew say nothing about reordering: RACK's window
        // stays (Linux's rule; RFC 8985 6.2 step 4 would widen it for any D-SACK).
        #expect(h.connection.sender.rack.windowMultiplier == 1)
        h.write(testBytes(2 * Self.mss, seed: 1))
        _ = h.drain()
        h.advance(by: Self.rtt)
        h.sack(seg(7))
        #expect(h.connection.sender.congestion.slowStartThreshold == Int(Int32.max))
    }

    /// Sends five new segments from `first`, lets the probe go at `pto`
    /// (expected to the millisecond), and has the peer D-SACK both of its
    /// copies: everything had arrived, only the ACKs were missing.
    func unneededProbe(_ h: TCPHarness, first: Int, pto: Duration,
                       sourceLocation: SourceLocation = #_sourceLocation) {
        h.write(testBytes(5 * Self.mss, seed: UInt8(first)))
        #expect(indices(h.drain()) == Array(first..<(first + 5)), sourceLocation: sourceLocation)
        #expect(h.advance(by: pto - .milliseconds(1)).isEmpty, sourceLocation: sourceLocation)
        #expect(indices(h.advance(by: .milliseconds(1))) == [first + 3, first + 4], sourceLocation: sourceLocation)
        h.advance(by: Self.rtt)
        h.sack(seg(first + 5), [(seg(first + 3), seg(first + 4))])
        h.sack(seg(first + 5), [(seg(first + 4), seg(first + 5))])
        #expect(h.connection.sender.tlp.inFlight == nil, sourceLocation: sourceLocation)
    }

    @Test func eachUnneededProbeDelaysTheNextByTwoMillisecondsUpToEight() {
        let h = connection()
        // The first probe goes at 2 SRTT. Both of its copies come back
        // D-SACKed: the receiver had everything, only its ACK was late (a
        // busy host's receiver holds it until its application reads). Each
        // such probe adds Linux's 2 ms to the next PTO, up to 8 ms; the
        // ACKs of resent segments give no RTT sample (Karn), so SRTT stays
        // 100 ms.
        for k in 0..<6 {
            unneededProbe(h, first: 5 * k, pto: .milliseconds(200 + 2 * min(k, 4)))
            #expect(h.connection.lossProbesUnneeded == UInt64(k + 1))
            #expect(h.connection.sender.tlp.lateSteps == min(k + 1, 4))
        }
        #expect(h.connection.lossProbesSent == 6)
        #expect(h.connection.sender.congestion.slowStartThreshold == Int(Int32.max))
        // One segment out: WCDelAckT, not this slack (capped at the RTO, 300 ms).
        let t = h.now
        h.write(testBytes(Self.mss, seed: 9))
        #expect(indices(h.drain()) == [30])
        #expect(h.connection.sender.tlp.deadline == t + .milliseconds(300))
    }

    @Test func aDetectedLossPutsTheProbeBackAtTwoSRTT() {
        let h = connection()
        unneededProbe(h, first: 0, pto: .milliseconds(200))
        unneededProbe(h, first: 5, pto: .milliseconds(202))
        #expect(h.connection.sender.tlp.lateSteps == 2)
        // A loss: 10 is missing when 11-13 are SACKed, and fast recovery
        // resends it. Silences may be losses again.
        h.write(testBytes(5 * Self.mss, seed: 10))
        #expect(indices(h.drain()) == Array(10..<15))
        h.advance(by: Self.rtt)
        h.sack(seg(10), [(seg(11), seg(14))])
        #expect(indices(h.drain()) == [10])
        #expect(h.connection.fastRecoveries == 1)
        #expect(h.connection.sender.tlp.lateSteps == 0)
        h.advance(by: Self.rtt)
        h.sack(seg(15))
        #expect(h.connection.sender.recovery.lossState == .open)
        // The next probe goes at 2 SRTT again (SRTT still 100 ms: the ACK
        // that ended recovery covered a resend, and no other gave a sample).
        unneededProbe(h, first: 15, pto: .milliseconds(200))
        #expect(h.connection.sender.tlp.lateSteps == 1)
        // A probe that repaired a loss is a detected loss too.
        h.write(testBytes(5 * Self.mss, seed: 20))
        #expect(indices(h.drain()) == Array(20..<25))
        #expect(h.advance(by: .milliseconds(201)).isEmpty)
        #expect(indices(h.advance(by: .milliseconds(1))) == [23, 24])
        h.write(testBytes(Self.mss, seed: 25))
        #expect(indices(h.drain()) == [25])
        h.advance(by: Self.rtt)
        h.sack(seg(26))
        #expect(h.connection.lossProbeRecoveries == 1)
        #expect(h.connection.sender.tlp.lateSteps == 0)
    }

    @Test func inRecoveryWithEverythingLostResentAProbeReplacesTheTimeout() {
        let h = connection()
        h.write(testBytes(10 * Self.mss))
        _ = h.drain()
        h.advance(by: Self.rtt)
        // 0 and 5 are lost; the ACK SACKs the rest, RACK marks both, both go again.
        h.sack(seg(0), [(seg(6), seg(10)), (seg(1), seg(5))])
        #expect(indices(h.drain()) == [0, 5])
        #expect(h.connection.sender.recovery.lossState == .recovery)
        // The partial ACK for 0 arrives; the one for 5 is lost. Nothing is due,
        // so a probe of the last unSACKed segment goes at 2 SRTT (no probe
        // has come back unneeded), before the RTO (a deviation from RFC 8985
        // 7.2: see probeMayGo).
        h.sack(seg(5), [(seg(6), seg(10))])
        #expect(h.drain().isEmpty)
        let rtoAt = h.connection.sender.retransmitDeadline
        let out = h.advance(by: .milliseconds(250))
        #expect(indices(out) == [5])
        #expect(h.connection.lossProbesSent == 1)
        #expect(out.first.map { s in rtoAt.map { s.time < $0 } ?? false } == true)
        #expect(h.connection.sender.recovery.lossState == .recovery)
    }

    @Test func resendingTheHeadRestartsTheRetransmissionTimer() {
        // RACK-TLP off: no probe, so only the timer can follow the resend.
        let h = connection { $0.rackTLP = false }
        h.write(testBytes(10 * Self.mss))
        _ = h.drain()
        h.advance(by: Self.rtt)
        // DupThresh: three segments SACKed above 0 mark it lost (RFC 6675 4).
        h.sack(seg(0), [(seg(1), seg(4))])
        #expect(indices(h.drain()) == [0])
        // Resending the head restarted the timer, as Linux does: 300 ms from
        // the resend, not from the first send 100 ms before it.
        let resent = h.now
        #expect(h.connection.sender.retransmitDeadline == resent + .milliseconds(300))
        #expect(h.advance(by: .milliseconds(299)).isEmpty)
        let out = h.advance(by: .milliseconds(1))
        #expect(indices(out) == [0])
        #expect(h.connection.lossProbesSent == 0)
        #expect(h.connection.sender.recovery.lossState == .timeout)
    }

    // MARK: (f) Timeouts with SACKed data

    /// The peer as the sender sees it: which full segments arrived, answered
    /// with the cumulative ACK and SACK blocks for the rest, the one holding
    /// the latest arrival first (RFC 2018 4), three at most.
    struct Receiver {
        var arrived = Set<Int>()
        var latest = 0

        mutating func receive(_ i: Int) {
            arrived.insert(i)
            latest = i
        }

        var cumulative: Int {
            var i = 0
            while arrived.contains(i) { i += 1 }
            return i
        }

        /// Runs of arrived segments above the cumulative point, as segment index ranges.
        var runs: [Range<Int>] {
            var out: [Range<Int>] = []
            for i in arrived.sorted() where i > cumulative {
                if let last = out.last, last.upperBound == i {
                    out[out.count - 1] = last.lowerBound..<(i + 1)
                } else {
                    out.append(i..<(i + 1))
                }
            }
            let recent = out.filter { $0.contains(latest) }
            return Array((recent + out.filter { !$0.contains(latest) }.reversed()).prefix(3))
        }
    }

    func ack(_ h: TCPHarness, _ r: Receiver) {
        h.sack(seg(r.cumulative), r.runs.map { (seg($0.lowerBound), seg($0.upperBound)) })
    }

    @Test func aTimeoutResendsTheHolesOnly() {
        let h = connection()
        let data = testBytes(10 * Self.mss)
        h.write(data)
        #expect(indices(h.drain()) == Array(0..<10))
        h.advance(by: Self.rtt)
        // 1, 3, 5, 7 and 9 arrive; the rest is lost.
        var peer = Receiver()
        var beforeTimeout: [SentSegment] = []
        for i in [1, 3, 5, 7, 9] {
            peer.receive(i)
            ack(h, peer)
            beforeTimeout += h.drain()
        }
        // Recovery resends every hole, in order, as PRR allows.
        #expect(indices(beforeTimeout) == [0, 2, 4, 6, 8])
        // Those are lost too, and nothing more comes. Everything known lost
        // has been resent, so a probe of the last two holes goes 2 SRTT
        // later (see probeMayGo); it is lost as well, and the RTO, restarted
        // by the probe (RFC 8985 7.3), fires 300 ms after it.
        let resent = h.now
        let probe = h.advance(by: .milliseconds(200))
        #expect(indices(probe) == [6, 8])
        var sent = h.advance(to: resent + .milliseconds(500))
        #expect(sent.first?.time == resent + .milliseconds(500))
        #expect(h.connection.sender.recovery.lossState == .timeout)
        #expect(h.connection.sender.congestion.congestionWindow == Self.mss)
        // The SACK marks stand (the first segment was not SACKed): every hole is
        // resent in slow start, and no SACKed segment ever is, although the
        // peer's three blocks no longer mention segment 3 once the ACK passes 2.
        var pending = indices(sent)
        while !pending.isEmpty {
            h.advance(by: Self.rtt)
            for i in pending {
                peer.receive(i)
                ack(h, peer)
            }
            let out = h.drain()
            sent += out
            pending = indices(out)
        }
        #expect(indices(sent) == [0, 2, 4, 6, 8])
        for s in beforeTimeout + probe + sent {
            #expect(s.payload == payload(data, (s.seq - seg(0)) / Self.mss))
        }
        #expect(h.connection.sender.sndUna == seg(10))
        #expect(h.connection.sender.recovery.lossState == .open)
        #expect(h.connection.sender.scoreboard.isEmpty)
    }

    @Test func aTimeoutWithTheFirstSegmentSACKedForgetsTheSACKs() {
        let h = connection()
        h.write(testBytes(10 * Self.mss))
        _ = h.drain()
        h.advance(by: Self.rtt)
        h.sack(seg(0), [(seg(1), seg(2))])
        h.sack(seg(0), [(seg(1), seg(3))])
        h.sack(seg(0), [(seg(1), seg(4))])
        #expect(indices(h.drain()) == [0])
        h.advance(by: Self.rtt)
        // The retransmission of 0 arrives, but the receiver has dropped the
        // out-of-order 1-3 it SACKed (reneging, RFC 2018 8): the ACK stops
        // at 1 and carries no SACK.
        h.sack(seg(1))
        #expect(h.connection.sender.scoreboard.head?.marks.contains(.sacked) == true)
        // RACK: 4-9 were sent before the retransmission that arrived, so they
        // are lost; the SACKed 1-3 cannot be, and are not resent.
        let meanwhile = indices(h.drain())
        #expect(!meanwhile.isEmpty && meanwhile.allSatisfy { $0 >= 4 })
        // Nothing more comes. First a probe resends the next two of them,
        // which PRR held back (see probeMayGo), 2 SRTT later...
        let probe = h.advance(by: .milliseconds(200))
        let next = (meanwhile.max() ?? 0) + 1
        #expect(indices(probe) == [next, next + 1])
        // ...then the RTO, restarted by it, fires with a SACKed segment at
        // SND.UNA: the marks are forgotten, and segment 1 is resent first.
        #expect(h.advance(by: .milliseconds(299)).isEmpty)
        let out = h.advance(by: .milliseconds(1))
        #expect(indices(out) == [1])
        #expect(h.connection.sender.scoreboard.sackedBytes == 0)
        h.advance(by: Self.rtt)
        h.sack(seg(2))
        #expect(indices(h.drain()) == [2, 3])
    }

    // MARK: (g) RFC 6675 without RACK-TLP

    @Test func withoutRACKThreeSACKedSegmentsStartRecovery() {
        let h = connection { $0.rackTLP = false }
        let data = testBytes(10 * Self.mss)
        h.write(data)
        _ = h.drain()
        h.advance(by: Self.rtt)
        h.sack(seg(0), [(seg(1), seg(2))])
        h.sack(seg(0), [(seg(1), seg(3))])
        // Two SACKed segments: 2 SMSS, not more than (DupThresh - 1) SMSS.
        // No reordering timer and no probe: nothing for 150 ms.
        #expect(h.connection.sender.reorderDeadline == nil)
        #expect(h.connection.sender.tlp.deadline == nil)
        #expect(h.advance(by: .milliseconds(150)).isEmpty)
        #expect(h.connection.sender.recovery.lossState == .open)
        h.sack(seg(0), [(seg(1), seg(4))])
        let out = h.drain()
        #expect(indices(out) == [0])
        #expect(out.first?.payload == payload(data, 0))
        #expect(h.connection.sender.recovery.lossState == .recovery)
    }

    @Test func withoutRACKATailLossWaitsForTheRTO() {
        let h = connection { $0.rackTLP = false }
        h.write(testBytes(5 * Self.mss))
        _ = h.drain()
        #expect(h.advance(by: .milliseconds(299)).isEmpty)
        let out = h.advance(by: .milliseconds(1))
        #expect(indices(out) == [0])
        #expect(h.connection.lossProbesSent == 0)
        #expect(h.connection.sender.recovery.lossState == .timeout)
    }

    // MARK: (h) D-SACK reports (RFC 2883 4)

    func blocks(_ s: SentSegment?) -> [[SequenceNumber]] {
        (s?.options.sackBlocks).map { Array($0.map { [$0.left, $0.right] }) } ?? []
    }

    @Test func aDuplicateBelowRcvNxtIsReportedInTheFirstBlock() {
        let h = TCPHarness.established()
        h.receive(.ack, payload: testBytes(100))
        h.advance(by: .milliseconds(100))
        _ = h.drain()
        h.receive(.ack, seq: peerISS + 1, payload: testBytes(100))
        let out = h.drain()
        // 4.1.1: an immediate ACK, its first block the duplicate.
        #expect(out.count == 1)
        #expect(out.first?.ack == peerISS + 101)
        #expect(blocks(out.first) == [[peerISS + 1, peerISS + 101]])
    }

    @Test func theDuplicatePartOfASegmentIsReported() {
        let h = TCPHarness.established()
        let data = testBytes(150)
        h.receive(.ack, payload: Array(data[0..<100]))
        _ = h.drain()
        // 50..<150: the first half arrived before.
        h.receive(.ack, seq: peerISS + 51, payload: Array(data[50..<150]))
        let out = h.drain()
        #expect(out.last?.ack == peerISS + 151)
        #expect(blocks(out.last) == [[peerISS + 51, peerISS + 101]])
    }

    @Test func aDuplicateOfOutOfOrderDataIsReportedBeforeItsBlock() {
        let h = TCPHarness.established()
        h.receive(.ack, seq: peerISS + 201, payload: testBytes(100))
        h.receive(.ack, seq: peerISS + 301, payload: testBytes(100))
        h.receive(.ack, seq: peerISS + 501, payload: testBytes(100))
        _ = h.drain()
        // 201..<301 again: it lies inside the block 201..<401.
        h.receive(.ack, seq: peerISS + 201, payload: testBytes(100))
        let out = h.drain()
        #expect(out.count == 1)
        #expect(out.first?.ack == peerISS + 1)
        // 4.1.2: the D-SACK block, then the block holding it, then the rest.
        #expect(blocks(out.first) == [[peerISS + 201, peerISS + 301], [peerISS + 201, peerISS + 401],
                                      [peerISS + 501, peerISS + 601]])
    }

    @Test func aDuplicateIsReportedOnce() {
        let h = TCPHarness.established()
        h.receive(.ack, seq: peerISS + 201, payload: testBytes(100))
        h.receive(.ack, seq: peerISS + 201, payload: testBytes(100))
        #expect(blocks(h.drain().last) == [[peerISS + 201, peerISS + 301], [peerISS + 201, peerISS + 301]])
        // The next ACK reports the queue alone, the newest block first.
        h.receive(.ack, seq: peerISS + 401, payload: testBytes(100))
        #expect(blocks(h.drain().last) == [[peerISS + 401, peerISS + 501], [peerISS + 201, peerISS + 301]])
        // Below RCV.NXT too: the next ACK carries no SACK option at all.
        let g = TCPHarness.established()
        g.receive(.ack, payload: testBytes(100))
        g.receive(.ack, seq: peerISS + 1, payload: testBytes(100))
        #expect(blocks(g.drain().last) == [[peerISS + 1, peerISS + 101]])
        g.receive(.ack, payload: testBytes(1448))
        g.receive(.ack, payload: testBytes(1448))
        let next = g.drain()
        #expect(next.count == 1)
        #expect(next.first?.options.sackBlocks.isEmpty == true)
    }

    @Test func noDSACKWithoutSackPermitted() {
        var syn = TCPHarness.linuxSynOptions()
        syn.sackPermitted = false
        let h = TCPHarness.established(synOptions: syn)
        h.receive(.ack, payload: testBytes(100))
        h.receive(.ack, seq: peerISS + 1, payload: testBytes(100))
        h.receive(.ack, seq: peerISS + 301, payload: testBytes(100))
        h.receive(.ack, seq: peerISS + 301, payload: testBytes(100))
        let out = h.drain()
        // Each duplicate is still acknowledged at once, without a SACK option.
        #expect(out.count == 3)
        #expect(out.allSatisfy { $0.options.sackBlocks.isEmpty })
    }

    // MARK: (i) D-SACKs at the sender

    @Test func aDSACKMarksNothingAndWidensRACKsWindowOncePerRound() {
        let h = connection()
        h.write(testBytes(10 * Self.mss))
        _ = h.drain()
        h.advance(by: Self.rtt)
        // Segment 0 arrived twice (the network duplicated it): the ACK for 0
        // carries a D-SACK below the cumulative ACK.
        h.sack(seg(1), [(seg(0), seg(1))])
        #expect(h.connection.sender.rack.windowMultiplier == 2)
        #expect(h.connection.sender.scoreboard.sackedBytes == 0)
        #expect(h.drain().isEmpty)
        // A D-SACK inside the second block (4.1.2): only the second block is news.
        h.sack(seg(1), [(seg(3), seg(4)), (seg(3), seg(5))])
        #expect(h.connection.sender.scoreboard.sackedSegments == 2)
        #expect(h.connection.sender.scoreboard.sackedBytes == 2 * Self.mss)
        // Same round trip: the multiplier rises once.
        #expect(h.connection.sender.rack.windowMultiplier == 2)
        // With two segments SACKed and the window doubled, 1 and 2 are lost
        // after RACK.rtt + 2 * min RTT / 4 = 150 ms from sending, not 125.
        // PRR lets the first go at once (RFC 6937's fast retransmit).
        #expect(h.connection.sender.reorderDeadline == h.now + .milliseconds(50))
        #expect(h.advance(by: .milliseconds(49)).isEmpty)
        #expect(indices(h.advance(by: .milliseconds(1))) == [1])
        #expect(h.connection.sender.recovery.lossState == .recovery)
    }

    @Test func aDSACKInALaterRoundRaisesTheMultiplierAgain() {
        let h = connection()
        h.write(testBytes(20 * Self.mss))
        #expect(indices(h.drain()) == Array(0..<10))
        h.advance(by: Self.rtt)
        h.sack(seg(1), [(seg(0), seg(1))])
        #expect(h.connection.sender.rack.windowMultiplier == 2)
        h.sack(seg(2), [(seg(1), seg(2))])
        #expect(h.connection.sender.rack.windowMultiplier == 2)
        // Once SND.UNA passes what was outstanding at the first D-SACK (segment
        // 10), another D-SACK counts; this one lies inside the second block (4.1.2).
        h.sack(seg(10))
        #expect(indices(h.drain()) == Array(10..<20))
        h.advance(by: Self.rtt)
        h.sack(seg(10), [(seg(12), seg(13)), (seg(12), seg(14))])
        #expect(h.connection.sender.rack.windowMultiplier == 3)
        // Only the second block is news.
        #expect(h.connection.sender.scoreboard.sackedSegments == 2)
    }
}

extension TCPHarness {
    /// The peer's ACK of everything before `ack`, with `blocks` as its SACK
    /// option, and timestamps if they are in use.
    func sack(_ ack: SequenceNumber, _ blocks: [(SequenceNumber, SequenceNumber)] = []) {
        var sack = TCPSACKBlocks()
        for b in blocks { sack.append((left: b.0, right: b.1)) }
        receive(.ack, ack: ack, options: TCPOptions(timestamps: peerTimestamps ? (0, 0) : nil, sackBlocks: sack))
    }
}
