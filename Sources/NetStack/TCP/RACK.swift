import NetStackWire

/// RACK's state (RFC 8985 6): loss detection by time rather than by counting
/// duplicate ACKs. A segment is lost when one sent later has been delivered
/// and a reordering window has passed since it was sent, so a lost
/// retransmission is detected too, and so is a loss in a short flight where
/// three duplicate ACKs never come.
struct RACK {
    /// RACK.xmit_ts and RACK.end_seq: the most recently sent segment delivered so far.
    private(set) var xmitTime: Instant?
    private(set) var endSeq = SequenceNumber(0)
    /// That segment's transmission order, which orders sends within one instant.
    private(set) var xmitOrder: UInt64 = 0
    /// The smallest RTT RACK measured from segments sent once, in nanoseconds:
    /// timed from the scoreboard, finer than millisecond timestamps.
    private(set) var minRTTNs: Int64?
    /// RACK.rtt: the round trip of that segment, in nanoseconds.
    private(set) var rttNs: Int64 = 0
    /// The highest end sequence delivered (RACK.fack), for reordering detection.
    private(set) var fack: SequenceNumber?
    /// RACK.fack as it stood before the ACK being processed (`beginAck`).
    private var fackBeforeAck: SequenceNumber?
    /// RACK.reordering_seen (6.2 step 3).
    private(set) var reorderingSeen = false
    /// RACK.reo_wnd_mult and its persistence across recoveries (6.2 step 4).
    private(set) var windowMultiplier = 1
    private var windowPersist = 0
    /// RACK.dsack_round: one multiplier increase per round trip.
    private var dsackRoundEnd: SequenceNumber?

    /// The RFC's own bound: a multiplier that grows on each D-SACK round; Linux caps it.
    static let maxWindowMultiplier = 16
    /// Recoveries the widened window survives without a D-SACK (RFC 8985 6.2 step 4).
    static let windowPersistRecoveries = 16

    /// RFC 8985 6.2 steps 2 and 3, for one segment an ACK newly delivered
    /// (cumulatively or by SACK). `minRTTNs` is the connection's minimum RTT
    /// (this type's own when nil); `echoPredatesSend`: the ACK's timestamp
    /// echo is older than the segment's last transmission, so an earlier copy
    /// was what arrived.
    mutating func delivered(_ record: TransmitRecord, now: Instant, minRTTNs connectionMin: Int64?,
                            echoPredatesSend: Bool = false) {
        let rtt = now.nanoseconds - record.sentAt.nanoseconds
        if record.marks.contains(.everRetransmitted) {
            // Step 2: an ACK for a retransmitted segment that predates the
            // retransmission, or comes sooner than any round trip seen, was
            // for the original; its timing says nothing.
            if echoPredatesSend { return }
            if let m = connectionMin ?? minRTTNs, rtt < m { return }
        } else if minRTTNs.map({ rtt < $0 }) ?? true {
            minRTTNs = rtt
        }
        // Step 3: delivered below a segment delivered by an earlier ACK, and
        // never retransmitted: reordering. (One ACK's SACK blocks come most
        // recent first, so its own deliveries are not compared with each other.)
        if let f = fackBeforeAck, record.end < f, !record.marks.contains(.everRetransmitted) {
            reorderingSeen = true
        }
        if fack.map({ record.end > $0 }) ?? true { fack = record.end }
        if xmitTime == nil || record.order > xmitOrder {
            xmitTime = record.sentAt
            xmitOrder = record.order
            endSeq = record.end
            rttNs = rtt
        }
    }

    /// An ACK arrives: its deliveries are compared with what earlier ACKs delivered.
    mutating func beginAck() { fackBeforeAck = fack }

    /// A D-SACK arrived (6.2 step 4): a retransmission was spurious, so widen
    /// the window, at most once per round trip.
    mutating func dsackReceived(ack: SequenceNumber, sndMax: SequenceNumber) {
        if let end = dsackRoundEnd, ack < end { return }
        dsackRoundEnd = sndMax
        windowMultiplier = min(windowMultiplier + 1, Self.maxWindowMultiplier)
        windowPersist = Self.windowPersistRecoveries
    }

    /// Loss recovery ended: the widened window decays after enough quiet recoveries.
    mutating func recoveryEnded() {
        guard windowPersist > 0 else { return }
        windowPersist -= 1
        if windowPersist == 0 { windowMultiplier = 1 }
    }

    /// RACK.reo_wnd (6.2 step 4), in nanoseconds: zero when no reordering has
    /// been seen and DupThresh would already have fired (in recovery, or with
    /// three segments SACKed); else a quarter of the minimum RTT per
    /// multiplier, bounded by SRTT.
    func reorderingWindow(inRecovery: Bool, sackedSegments: Int, minRTTNs: Int64?, srttNs: Int64?) -> Int64 {
        if !reorderingSeen && (inRecovery || sackedSegments >= 3) { return 0 }
        guard let m = minRTTNs else { return 0 }
        let srttNs = srttNs.map { max($0, m) }
        let window = Int64(windowMultiplier) * m / 4
        return srttNs.map { min(window, $0) } ?? window
    }

    /// 6.2 step 5: marks lost each segment sent before the last delivered one
    /// whose reordering window has passed. Returns how long until the next
    /// such segment would expire, for the reordering timer, or nil.
    func detectLoss(in queue: inout RetransmitQueue, now: Instant, reorderingWindowNs: Int64) -> Duration? {
        guard xmitTime != nil else { return nil }
        var timeout: Int64 = 0
        queue.forEachUnsacked { q, i in
            let r = q.records[i]
            // Already judged lost and not resent: nothing new to learn (the RFC's INFINITE_TS).
            guard !q.isLostAndDue(i) else { return }
            // RACK_sent_after, by transmission order (the RFC orders by time, then sequence).
            guard xmitOrder > r.order else { return }
            let remaining = r.sentAt.nanoseconds + rttNs + reorderingWindowNs - now.nanoseconds
            if remaining <= 0 {
                q.markLost(at: i)
            } else {
                timeout = max(timeout, remaining)
            }
        }
        return timeout > 0 ? .nanoseconds(timeout) : nil
    }
}
