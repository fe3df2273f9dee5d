import Testing
@testable import NetStack
import NetStackWire

/// Undoing a fast recovery that reordering, not loss, set off: RFC 3708's
/// D-SACK test (`SpuriousRecoveryCheck`), RFC 9438 4.9's restore in CUBIC
/// (and RFC 4015's in NewReno), and the two together on a connection.
@Suite struct SpuriousRecoveryCheckTests {
    static let mss = 1000
    let start = SequenceNumber(10_000)

    func seg(_ i: Int) -> SequenceNumber { start + i * Self.mss }

    @Test func everyResendDSACKedAfterTheRecoveryProvesItSpurious() {
        var check = SpuriousRecoveryCheck(start: start)
        check.didResend()
        check.didResend()
        check.duplicateReported(left: seg(0), right: seg(1), sndMax: seg(20), mss: Self.mss)
        check.recoveryEnded(sndMax: seg(20))
        // One of two resends reported: not yet.
        #expect(!check.provedSpurious)
        check.duplicateReported(left: seg(3), right: seg(4), sndMax: seg(20), mss: Self.mss)
        #expect(check.provedSpurious)
    }

    @Test func nothingIsProvedWhileRecoveryLastsOrWithoutResends() {
        var check = SpuriousRecoveryCheck(start: start)
        check.didResend()
        check.duplicateReported(left: seg(0), right: seg(1), sndMax: seg(20), mss: Self.mss)
        #expect(!check.provedSpurious)
        var idle = SpuriousRecoveryCheck(start: start)
        idle.recoveryEnded(sndMax: seg(20))
        idle.duplicateReported(left: seg(0), right: seg(1), sndMax: seg(20), mss: Self.mss)
        #expect(!idle.provedSpurious)
    }

    @Test func dsacksOutsideTheRecoveryDoNotCount() {
        var check = SpuriousRecoveryCheck(start: start)
        check.didResend()
        check.recoveryEnded(sndMax: seg(20))
        // Below its start, past SND.MAX at its end, or empty.
        check.duplicateReported(left: seg(-1), right: seg(0), sndMax: seg(30), mss: Self.mss)
        check.duplicateReported(left: seg(20), right: seg(21), sndMax: seg(30), mss: Self.mss)
        check.duplicateReported(left: seg(2), right: seg(2), sndMax: seg(30), mss: Self.mss)
        #expect(check.reportedDuplicate == 0)
        #expect(!check.provedSpurious)
    }

    @Test func resendsAfterTheRecoveryAreNotItsOwn() {
        var check = SpuriousRecoveryCheck(start: start)
        check.didResend()
        check.recoveryEnded(sndMax: seg(20))
        check.didResend()
        #expect(check.resent == 1)
        // A block covering two segments (a short last one rounds up) counts both.
        check.duplicateReported(left: seg(4), right: seg(5) + 1, sndMax: seg(20), mss: Self.mss)
        #expect(check.reportedDuplicate == 2)
        #expect(check.provedSpurious)
    }
}

@Suite struct CongestionUndoTests {
    static let mss = 1460

    @Test func cubicRestoresEverythingTheEventChanged() {
        var s = AckClock(Cubic(mss: Self.mss, initialWindowSegments: 100, hyStart: false), mss: Self.mss)
        s.congestionEvent()
        for _ in 0..<5 { s.round(rtt: .milliseconds(100)) }
        // Mid-curve: the state RFC 9438 4.9 lists, before a second event.
        let before = s.cc
        s.cc.onCongestionEvent(flightSize: s.flight, mss: Self.mss, now: s.now)
        s.cc.onRecoveryEnd(flightSize: s.flight, mss: Self.mss, now: s.now)
        #expect(s.cc.congestionWindow < before.congestionWindow)
        s.round(rtt: .milliseconds(100))
        s.cc.onSpuriousCongestionEvent()
        #expect(s.cc.congestionWindow == before.congestionWindow)
        #expect(s.cc.slowStartThreshold == before.slowStartThreshold)
        #expect(s.cc.wMax == before.wMax)
        #expect(s.cc.cwndPrior == before.cwndPrior)
        #expect(s.cc.k == before.k)
        #expect(s.cc.epochStart == before.epochStart)
        #expect(s.cc.cwndEpoch == before.cwndEpoch)
        #expect(s.cc.wEst == before.wEst)
        // Once only: the saved state is spent.
        s.cc.onCongestionEvent(flightSize: s.flight, mss: Self.mss, now: s.now)
        let cut = s.cc.congestionWindow
        s.cc.onSpuriousCongestionEvent()
        s.cc.onSpuriousCongestionEvent()
        #expect(s.cc.congestionWindow == before.congestionWindow)
        s.cc.onRetransmitTimeout(flightSize: s.flight, mss: Self.mss, now: s.now)
        s.cc.onSpuriousCongestionEvent()
        #expect(s.cc.congestionWindow == Self.mss)
        #expect(cut < before.congestionWindow)
    }

    @Test func cubicKeepsAWindowThatHasGrownPastTheOldOne() {
        var s = AckClock(Cubic(mss: Self.mss, initialWindowSegments: 20, hyStart: false), mss: Self.mss)
        s.congestionEvent()
        // 20 segments cut to 14; K = cbrt(6 / 0.4) = 2.5 s. Four seconds on,
        // the curve is well past 20.
        for _ in 0..<40 { s.round(rtt: .milliseconds(100)) }
        #expect(s.cc.congestionWindow > 20 * Self.mss)
        let grown = s.cc
        s.cc.onSpuriousCongestionEvent()
        #expect(s.cc.congestionWindow == grown.congestionWindow)
        #expect(s.cc.wMax == grown.wMax)
        #expect(s.cc.epochStart == grown.epochStart)
    }

    @Test func newRenoRestoresCwndAndSsthresh() {
        var s = AckClock(NewReno(mss: Self.mss, initialWindowSegments: 40), mss: Self.mss)
        s.congestionEvent()
        for _ in 0..<3 { s.round(rtt: .milliseconds(100)) }
        let (cwnd, ssthresh) = (s.cc.congestionWindow, s.cc.slowStartThreshold)
        s.congestionEvent()
        #expect(s.cc.congestionWindow < cwnd)
        s.cc.onSpuriousCongestionEvent()
        #expect(s.cc.congestionWindow == cwnd)
        #expect(s.cc.slowStartThreshold == ssthresh)
        // Nothing is saved across a timeout.
        s.cc.onRetransmitTimeout(flightSize: s.flight, mss: Self.mss, now: s.now)
        s.cc.onSpuriousCongestionEvent()
        #expect(s.cc.congestionWindow == Self.mss)
    }
}

extension TCPSACKRecoveryTests {
    // MARK: (j) Spurious recoveries undone (RFC 3708, RFC 9438 4.9)

    @Test func aRecoveryForAReorderedSegmentIsUndoneByTheDSACKOfItsResend() {
        let h = twentyInFlight(.cubic)
        let ssthresh = h.connection.sender.congestion.slowStartThreshold
        // Segment 10 is held back in the network: 11-13 arrive first, and
        // recovery resends it, cutting cwnd from 20 segments to 14.
        h.sack(seg(10), [(seg(11), seg(14))])
        #expect(indices(h.drain()) == [10, 30])
        #expect(h.connection.sender.congestion.congestionWindow == 14 * Self.mss)
        // The original arrives with the rest: the ACK passes the recovery
        // point and recovery ends, still at 14: nothing shows yet that the
        // resend was not needed.
        h.sack(seg(30))
        #expect(h.connection.sender.recovery.lossState == .open)
        #expect(h.connection.sender.congestion.congestionWindow == 14 * Self.mss)
        #expect(h.connection.recoveriesUndone == 0)
        #expect(indices(h.drain()) == Array(31..<44))
        // The resend arrives, a duplicate: the D-SACK proves the recovery
        // spurious, and cwnd and ssthresh are what they were before it.
        h.sack(seg(30), [(seg(10), seg(11))])
        #expect(h.connection.recoveriesUndone == 1)
        #expect(h.connection.sender.congestion.congestionWindow == 20 * Self.mss)
        #expect(h.connection.sender.congestion.slowStartThreshold == ssthresh)
        #expect(h.connection.fastRecoveries == 1)
        // And the restored window is used at once.
        #expect(indices(h.drain()) == Array(44..<50))
        #expect(h.connection.sender.flightSize == 20 * Self.mss)
    }

    @Test func aRecoveryIsUndoneOnlyWhenEveryResendCameBackDuplicated() {
        // 0 and 5 are held back, not lost; both are resent.
        let h = zeroAndFiveResent()
        #expect(h.connection.sender.congestion.congestionWindow == 7 * Self.mss)
        h.sack(seg(10))
        #expect(h.connection.sender.recovery.lossState == .open)
        let cutWindow = h.connection.sender.congestion.congestionWindow
        // Only the resend of 0 is reported twice: 5's resend may have been needed.
        h.sack(seg(10), [(seg(0), seg(1))])
        #expect(h.connection.recoveriesUndone == 0)
        #expect(h.connection.sender.congestion.congestionWindow == cutWindow)
        h.sack(seg(10), [(seg(5), seg(6))])
        #expect(h.connection.recoveriesUndone == 1)
        #expect(h.connection.sender.congestion.congestionWindow == 10 * Self.mss)
    }

    @Test func aRecoveryThatRepairedALossIsNotUndone() {
        let h = twentyInFlight(.cubic)
        h.sack(seg(10), [(seg(11), seg(14))])
        #expect(indices(h.drain()) == [10, 30])
        // The resend arrives, and the ACK passes the recovery point: no D-SACK.
        h.sack(seg(30))
        #expect(h.connection.sender.recovery.lossState == .open)
        #expect(indices(h.drain()) == Array(31..<44))
        // A duplicate the network made of an older segment says nothing
        // about this recovery, nor does one of data sent after it.
        h.sack(seg(30), [(seg(9), seg(10))])
        #expect(h.connection.sender.congestion.congestionWindow == 14 * Self.mss)
        h.sack(seg(36), [(seg(35), seg(36))])
        #expect(h.connection.recoveriesUndone == 0)
        // (Five segments acknowledged grow it a little, in congestion avoidance.)
        #expect(h.connection.sender.congestion.congestionWindow < 15 * Self.mss)
        #expect(h.connection.sender.recovery.lossState == .open)
    }

    @Test func aProbeSentDuringTheRecoveryCountsTowardsItsUndo() {
        // 0 and 5 are held back, not lost; both are resent.
        let h = zeroAndFiveResent()
        #expect(h.connection.sender.congestion.congestionWindow == 7 * Self.mss)
        // The path stalls: no ACK comes. Nothing more is due, so a probe
        // resends 8 and 9 during the recovery.
        let probe = h.advance(by: .milliseconds(200))
        #expect(indices(probe) == [8, 9])
        #expect(h.connection.sender.recovery.lossState == .recovery)
        // Then everything arrives: the resends of 0 and 5 fill the holes, 7-9
        // follow, and the ACK passes the recovery point. The probe's copies
        // come next, D-SACKed, then the held-back originals of 0 and 5, also
        // D-SACKed. All four resends of the recovery, the probe's two among
        // them, were duplicates: it went during the recovery and counts for
        // it (its D-SACKs are the probe's only for a probe sent after), so
        // the recovery is undone.
        h.advance(by: Self.rtt)
        h.sack(seg(10))
        #expect(h.connection.sender.recovery.lossState == .open)
        h.sack(seg(10), [(seg(8), seg(9))])
        h.sack(seg(10), [(seg(9), seg(10))])
        #expect(h.connection.lossProbesUnneeded == 1)
        h.sack(seg(10), [(seg(0), seg(1))])
        #expect(h.connection.recoveriesUndone == 0)
        h.sack(seg(10), [(seg(5), seg(6))])
        #expect(h.connection.recoveriesUndone == 1)
        #expect(h.connection.sender.congestion.congestionWindow == 10 * Self.mss)
    }

    @Test func aProbeAfterTheRecoveryCannotVouchForIt() {
        // Nothing to send beyond segment 34.
        let h = twentyInFlight(.cubic, written: 35)
        // 10 is lost: recovery resends it, and PRR lets 30-34 out meanwhile.
        h.sack(seg(10), [(seg(11), seg(14))])
        for k in 1...6 { h.sack(seg(10), [(seg(11), seg(14 + k))]) }
        #expect(indices(h.drain()) == [10] + Array(30..<35))
        // The resend arrives: recovery ends, with 30-34, sent during it, still out.
        h.sack(seg(30))
        #expect(h.connection.sender.recovery.lossState == .open)
        let cutWindow = h.connection.sender.congestion.congestionWindow
        // Their ACK is lost; the probe resends 33 and 34, and the answer
        // D-SACKs both: the probe's business, not the recovery's, whose one
        // resend was needed.
        let probe = h.advance(by: .milliseconds(200))
        #expect(indices(probe) == [33, 34])
        h.sack(seg(35), [(seg(33), seg(35))])
        #expect(h.connection.sender.tlp.inFlight == nil)
        #expect(h.connection.recoveriesUndone == 0)
        #expect(h.connection.sender.congestion.congestionWindow <= cutWindow + Self.mss)
    }
}
