import NetStackWire

/// Retransmission: resending lost segments (RFC 6675 4 NextSeg), and the
/// retransmission timeout (RFC 6298 5.4-5.7, RFC 5681 3.1, RFC 6675 5.1).
extension TCPSender {
    /// Retransmits lost segments, first to last, while the allowance lasts
    /// (RFC 6675 4 NextSeg (1)). Only the first may lie beyond the peer's
    /// window; resending the head restarts the RTO (as Linux's
    /// tcp_xmit_retransmit_queue). Returns true if it sent.
    mutating func retransmitLost(now: Instant, events: inout TCPSendEvents, sink: some TCPSegmentSink) -> Bool {
        var sent = false
        var from = 0
        while congestionAllowance > 0, let i = scoreboard.nextLost(from: from) {
            let r = scoreboard.records[i]
            guard r.start == sndUna || r.start - sndUna < sndWnd else { break }
            emitSegment(at: r.start, maxLength: r.length, now: now, events: &events, sink: sink)
            if r.start == sndUna { retransmitDeadline = now + rtt.rto }
            scoreboard.retransmitted(at: i, now: now)
            spendAllowance(r.length)
            events.retransmitted &+= 1
            if recovery.lossState == .recovery { recovery.spuriousCheck?.didResend() }
            sent = true
            from = i + 1
        }
        return sent
    }

    /// Resends the segment of scoreboard record `i` (a loss probe's copy).
    mutating func resend(at i: Int, now: Instant, events: inout TCPSendEvents, sink: some TCPSegmentSink) {
        let r = scoreboard.records[i]
        emitSegment(at: r.start, maxLength: r.length, now: now, events: &events, sink: sink)
        scoreboard.retransmitted(at: i, now: now)
        events.retransmitted &+= 1
        if recovery.lossState == .recovery { recovery.spuriousCheck?.didResend() }
    }

    /// RFC 6298 5.4-5.7: the RTO fired and the connection has tries left.
    /// Back off; resend the SYN if it is unacknowledged, else treat every
    /// unSACKed segment as lost (`lossOnTimeout`).
    mutating func retransmitTimeout(now: Instant, events: inout TCPSendEvents) {
        if retransmissions == 0 { stalledSince = scoreboard.head?.sentAt ?? rttProbe?.sentAt ?? now }
        retransmissions += 1
        rtt.backOff()
        rttProbe = nil
        if sndUna == iss {
            // The SYN (or SYN-ACK) itself is unacknowledged: send it again from the start.
            sndNxt = sndUna
            events.retransmitted &+= 1
        } else {
            lossOnTimeout(now: now)
        }
        retransmitDeadline = now + rtt.rto
    }

    /// The RTO fired on data: every segment not SACKed is lost, and slow start
    /// resends them (RFC 5681 3.1, RFC 6675 5.1). SACK marks are kept unless
    /// the first segment is marked: then the receiver reneged (RFC 2018 8).
    mutating func lossOnTimeout(now: Instant) {
        congestion.onRetransmitTimeout(flightSize: flightSize, mss: sendMSS, now: now)
        recovery.spuriousCheck = nil
        if scoreboard.head?.marks.contains(.sacked) == true { scoreboard.forgetSACKs() }
        scoreboard.markAllLost()
        recovery.lossState = .timeout
        recovery.recoveryPoint = sndMax
        recovery.recover = sndMax - 1
        duplicateAcks.reset()
        tlp.inFlight = nil
        tlp.deadline = nil
        tlp.due = false
        tlp.lossDetected()
        reorderDeadline = nil
    }
}
