import NetStackWire

/// RACK's use by the sender (RFC 8985 6): loss detection on each ACK, and
/// its reordering timer. With SACK but without RACK, RFC 6675's DupThresh rule.
extension TCPSender {
    /// With SACK: RACK (RFC 8985 6.2) when on, else RFC 6675's DupThresh rule.
    /// RACK's walk is skipped when it cannot find anything: nothing SACKed, no
    /// loss being repaired, no probe out, no reordering timer.
    mutating func detectLosses(now: Instant, delivered: Bool, sackEnabled: Bool) {
        guard sackEnabled else { return }
        if rackTLP {
            let mayFindLoss = scoreboard.sackedSegments > 0 || recovery.lossState != .open || tlp.inFlight != nil
                || reorderDeadline != nil
            if delivered && mayFindLoss { runRACK(now: now) }
        } else {
            scoreboard.markLostByDupThresh(mss: sendMSS)
        }
    }

    /// RACK's loss detection, arming the reordering timer for segments not yet
    /// overdue (RFC 8985 6.2 step 5, 6.3).
    mutating func runRACK(now: Instant) {
        let window = rack.reorderingWindow(inRecovery: recovery.lossState != .open,
                                           sackedSegments: scoreboard.sackedSegments,
                                           minRTTNs: minRTTNs, srttNs: rtt.srtt?.nanoseconds)
        let wait = rack.detectLoss(in: &scoreboard, now: now, reorderingWindowNs: window)
        reorderDeadline = wait.map { now + $0 }
    }

    /// RACK's reordering timer fired (RFC 8985 6.3): look again, and start
    /// recovery if something is now overdue.
    mutating func reorderTimerFired(now: Instant, events: inout TCPSendEvents) {
        reorderDeadline = nil
        runRACK(now: now)
        if recovery.lossState == .open && scoreboard.lostBytes > 0 {
            enterRecovery(now: now, events: &events)
            recovery.prr.onAck(deliveredBytes: 0, pipe: pipe, ssthresh: congestion.slowStartThreshold, mss: sendMSS)
        }
    }
}
