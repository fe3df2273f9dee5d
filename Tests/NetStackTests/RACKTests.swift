import Testing
@testable import NetStack
import NetStackWire

/// RACK alone (RFC 8985 6): deliveries feed it records of a scoreboard, and
/// loss detection marks what was sent before the most recently sent
/// delivered segment once RACK.rtt + RACK.reo_wnd have passed since it was sent.
@Suite struct RACKTests {
    static let size = 1000
    static let base = SequenceNumber(5000)
    let t0 = Instant(nanoseconds: 1_000_000_000)
    static let minRTT = Duration.milliseconds(100).nanoseconds
    /// min_RTT / 4 (6.2 step 4).
    static let quarter = Duration.milliseconds(25).nanoseconds

    func seg(_ i: Int) -> SequenceNumber { Self.base + i * Self.size }

    /// Segments sent `spacing` apart from `t0`.
    func queue(_ count: Int, spacing: Duration = .zero) -> RetransmitQueue {
        var q = RetransmitQueue(capacity: 64)
        for i in 0..<count {
            q.append(start: seg(i), end: seg(i + 1), now: t0 + spacing * i)
        }
        return q
    }

    /// SACKs segment `i` at `now`, feeding RACK as the connection does.
    func sack(_ i: Int, in q: inout RetransmitQueue, rack: inout RACK, at now: Instant) {
        rack.beginAck()
        q.sack(seg(i), seg(i + 1)) { rack.delivered($0, now: now, minRTTNs: Self.minRTT) }
    }

    func lost(_ q: RetransmitQueue) -> [Int] { q.records.indices.filter { q.isLostAndDue($0) } }

    // MARK: Detection (6.2 step 5)

    @Test func aSegmentSentBeforeADeliveredOneIsLostOnlyOnceTheWindowHasPassed() {
        var q = queue(4)
        var rack = RACK()
        // All four left at t0; 2 is delivered after 100 ms. 0 and 1 were sent
        // before it (same time, lower sequence); 3 after it.
        let ackTime = t0 + .milliseconds(100)
        sack(2, in: &q, rack: &rack, at: ackTime)
        #expect(rack.rttNs == Self.minRTT)
        #expect(rack.endSeq == seg(3))

        // RACK.rtt + reo_wnd = 125 ms after sending: 25 ms to go.
        var wait = rack.detectLoss(in: &q, now: ackTime, reorderingWindowNs: Self.quarter)
        #expect(wait == .milliseconds(25))
        #expect(lost(q).isEmpty)
        wait = rack.detectLoss(in: &q, now: ackTime + .nanoseconds(Self.quarter - 1), reorderingWindowNs: Self.quarter)
        #expect(wait == .nanoseconds(1))
        #expect(lost(q).isEmpty)
        wait = rack.detectLoss(in: &q, now: ackTime + .milliseconds(25), reorderingWindowNs: Self.quarter)
        #expect(wait == nil)
        #expect(lost(q) == [0, 1])
        #expect(q.lostBytes == 2000)
    }

    @Test func theTimerIsTheLongestWaitLeft() {
        // 0, 1, 2, 3 sent 10 ms apart; 2 (sent at 20 ms) is delivered at 120 ms.
        var q = queue(4, spacing: .milliseconds(10))
        var rack = RACK()
        sack(2, in: &q, rack: &rack, at: t0 + .milliseconds(120))
        #expect(rack.rttNs == Self.minRTT)
        // 0 is due at 0 + 100 + 25 = 125 ms, 1 at 135 ms; RFC 8985's
        // RACK_detect_loss returns the largest remaining time.
        let wait = rack.detectLoss(in: &q, now: t0 + .milliseconds(120), reorderingWindowNs: Self.quarter)
        #expect(wait == .milliseconds(15))
        #expect(lost(q).isEmpty)
        // At 125 ms 0 goes, and 1 has 10 ms left.
        let next = rack.detectLoss(in: &q, now: t0 + .milliseconds(125), reorderingWindowNs: Self.quarter)
        #expect(lost(q) == [0])
        #expect(next == .milliseconds(10))
        // A segment already lost and not yet resent is not waited for again.
        let last = rack.detectLoss(in: &q, now: t0 + .milliseconds(135), reorderingWindowNs: Self.quarter)
        #expect(lost(q) == [0, 1])
        #expect(last == nil)
        // 3 was sent after the delivered segment: nothing says it is lost.
        #expect(!q.records[3].marks.contains(.lost))
    }

    @Test func nothingIsLostBeforeAnythingIsDelivered() {
        var q = queue(3)
        let rack = RACK()
        #expect(rack.detectLoss(in: &q, now: t0 + .seconds(10), reorderingWindowNs: 0) == nil)
        #expect(lost(q).isEmpty)
    }

    @Test func aLostRetransmissionIsDetectedAgain() {
        var q = queue(6, spacing: .milliseconds(1))
        var rack = RACK()
        // 0 is lost and resent at 150 ms.
        sack(1, in: &q, rack: &rack, at: t0 + .milliseconds(101))
        sack(2, in: &q, rack: &rack, at: t0 + .milliseconds(102))
        sack(3, in: &q, rack: &rack, at: t0 + .milliseconds(103))
        #expect(rack.detectLoss(in: &q, now: t0 + .milliseconds(103), reorderingWindowNs: 0) == nil)
        #expect(lost(q) == [0])
        let resent = t0 + .milliseconds(150)
        q.retransmitted(at: 0, now: resent)
        #expect(lost(q).isEmpty)
        // Deliveries of segments sent before the retransmission say nothing of it.
        sack(4, in: &q, rack: &rack, at: t0 + .milliseconds(160))
        #expect(rack.detectLoss(in: &q, now: t0 + .milliseconds(400), reorderingWindowNs: 0) == nil)
        #expect(lost(q).isEmpty)
        // A new segment sent after the retransmission is delivered, and the
        // retransmission is not: after RACK.rtt it is lost too.
        q.append(start: seg(6), end: seg(7), now: t0 + .milliseconds(200))
        rack.beginAck()
        q.sack(seg(6), seg(7)) { rack.delivered($0, now: t0 + .milliseconds(300), minRTTNs: Self.minRTT) }
        #expect(rack.rttNs == Self.minRTT)
        // 0 was resent at 150 ms: 150 + 100 = 250 ms has passed.
        #expect(rack.detectLoss(in: &q, now: t0 + .milliseconds(300), reorderingWindowNs: 0) == nil)
        #expect(lost(q) == [0, 5])
        #expect(q.nextLost() == 0)
    }

    @Test func anAmbiguousAckOfARetransmissionIsIgnored() {
        var q = queue(3)
        var rack = RACK()
        q.markLost(at: 0)
        q.retransmitted(at: 0, now: t0 + .milliseconds(200))
        // Acknowledged 10 ms after the retransmission, less than any round trip
        // seen: it was the original that arrived (6.2 step 2). It does not move RACK.
        rack.beginAck()
        q.acknowledge(upTo: seg(1)) { rack.delivered($0, now: t0 + .milliseconds(210), minRTTNs: Self.minRTT) }
        #expect(rack.xmitTime == nil)
        #expect(rack.fack == nil)
        // A delivery a round trip after it is believed.
        rack.beginAck()
        q.acknowledge(upTo: seg(2)) { rack.delivered($0, now: t0 + .milliseconds(220), minRTTNs: Self.minRTT) }
        #expect(rack.xmitTime == t0)
        #expect(rack.rttNs == Duration.milliseconds(220).nanoseconds)
    }

    @Test func theLaterSentOfTwoDeliveriesLeads() {
        var q = queue(4, spacing: .milliseconds(10))
        var rack = RACK()
        // 3 (sent at 30 ms) is delivered, then 1 (sent at 10 ms): RACK keeps 3.
        sack(3, in: &q, rack: &rack, at: t0 + .milliseconds(130))
        sack(1, in: &q, rack: &rack, at: t0 + .milliseconds(140))
        #expect(rack.xmitTime == t0 + .milliseconds(30))
        #expect(rack.endSeq == seg(4))
        #expect(rack.rttNs == Self.minRTT)
    }

    // MARK: The reordering window (6.2 step 4)

    @Test func theWindowIsAQuarterOfMinRTTUntilDupThreshWouldFire() {
        let rack = RACK()
        let srtt = Duration.milliseconds(120).nanoseconds
        for sacked in 0...2 {
            #expect(rack.reorderingWindow(inRecovery: false, sackedSegments: sacked, minRTTNs: Self.minRTT,
                                          srttNs: srtt) == Self.quarter)
        }
        // No reordering seen and three segments SACKed, or in recovery: zero,
        // so RACK is no slower than DupThresh.
        #expect(rack.reorderingWindow(inRecovery: false, sackedSegments: 3, minRTTNs: Self.minRTT, srttNs: srtt) == 0)
        #expect(rack.reorderingWindow(inRecovery: true, sackedSegments: 0, minRTTNs: Self.minRTT, srttNs: srtt) == 0)
        // Without a min_RTT there is nothing to take a quarter of.
        #expect(rack.reorderingWindow(inRecovery: false, sackedSegments: 0, minRTTNs: nil, srttNs: nil) == 0)
        // Bounded by SRTT, but an SRTT below min_RTT (millisecond timestamps
        // round it down on a fast path) bounds nothing below min_RTT.
        #expect(rack.reorderingWindow(inRecovery: false, sackedSegments: 0, minRTTNs: Self.minRTT,
                                      srttNs: Duration.milliseconds(20).nanoseconds) == Self.quarter)
    }

    @Test func reorderingSeenKeepsTheWindowOpen() {
        var q = queue(6)
        var rack = RACK()
        let now = t0 + .milliseconds(100)
        sack(1, in: &q, rack: &rack, at: now)
        #expect(rack.fack == seg(2))
        sack(4, in: &q, rack: &rack, at: now)
        #expect(rack.fack == seg(5))
        #expect(!rack.reorderingSeen)
        // 2, never retransmitted, is delivered below RACK.fack: the network reordered it.
        sack(2, in: &q, rack: &rack, at: now)
        #expect(rack.reorderingSeen)
        #expect(rack.fack == seg(5))
        #expect(rack.reorderingWindow(inRecovery: true, sackedSegments: 3, minRTTNs: Self.minRTT, srttNs: nil)
                == Self.quarter)
        #expect(rack.reorderingWindow(inRecovery: false, sackedSegments: 5, minRTTNs: Self.minRTT, srttNs: nil)
                == Self.quarter)
    }

    @Test func aRetransmissionDeliveredBelowFackIsNotReordering() {
        var q = queue(6)
        var rack = RACK()
        q.markLost(at: 1)
        q.retransmitted(at: 1, now: t0 + .milliseconds(100))
        sack(4, in: &q, rack: &rack, at: t0 + .milliseconds(100))
        sack(1, in: &q, rack: &rack, at: t0 + .milliseconds(200))
        #expect(q.records[1].marks.contains(.sacked))
        #expect(!rack.reorderingSeen)
    }

    @Test func aDSACKWidensTheWindowOncePerRound() {
        var rack = RACK()
        let sndMax = seg(10)
        rack.dsackReceived(ack: seg(2), sndMax: sndMax)
        #expect(rack.windowMultiplier == 2)
        #expect(rack.reorderingWindow(inRecovery: false, sackedSegments: 0, minRTTNs: Self.minRTT, srttNs: nil)
                == 2 * Self.quarter)
        // More D-SACKs before SND.UNA passes SND.NXT of the first belong to the same round.
        rack.dsackReceived(ack: seg(5), sndMax: seg(12))
        rack.dsackReceived(ack: seg(9), sndMax: seg(12))
        #expect(rack.windowMultiplier == 2)
        // The next round.
        rack.dsackReceived(ack: sndMax, sndMax: seg(20))
        #expect(rack.windowMultiplier == 3)
        #expect(rack.reorderingWindow(inRecovery: false, sackedSegments: 0, minRTTNs: Self.minRTT, srttNs: nil)
                == 3 * Self.quarter)
    }

    @Test func theMultiplierIsBoundedAndDecaysAfterQuietRecoveries() {
        var rack = RACK()
        for round in 0..<40 { rack.dsackReceived(ack: seg(round * 10), sndMax: seg(round * 10 + 5)) }
        #expect(rack.windowMultiplier == RACK.maxWindowMultiplier)
        // Bounded by SRTT however wide it grows.
        #expect(rack.reorderingWindow(inRecovery: false, sackedSegments: 0, minRTTNs: Self.minRTT,
                                      srttNs: Duration.milliseconds(150).nanoseconds)
                == Duration.milliseconds(150).nanoseconds)
        // Sixteen recoveries without a D-SACK bring it back to 1 (6.2 step 4).
        for _ in 0..<(RACK.windowPersistRecoveries - 1) { rack.recoveryEnded() }
        #expect(rack.windowMultiplier == RACK.maxWindowMultiplier)
        rack.recoveryEnded()
        #expect(rack.windowMultiplier == 1)
    }
}
