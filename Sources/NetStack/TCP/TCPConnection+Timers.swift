extension TCPConnection {
    /// The earliest time `handleTimers` has work.
    /// Computed on every segment, so without building a collection (that allocates).
    var nextDeadline: Instant? {
        earliest(earliest(earliest(retransmitDeadline, delayedAckDeadline), earliest(persistDeadline, keepaliveDeadline)),
                 earliest(earliest(timeWaitDeadline, finWait2Deadline), earliest(reorderDeadline, lossProbeDeadline)))
    }

    @inline(__always)
    private func earliest(_ a: Instant?, _ b: Instant?) -> Instant? {
        guard let a else { return b }
        guard let b else { return a }
        return min(a, b)
    }

    /// Runs the timers that are due. Sending is left to `dispatch`.
    func handleTimers(now: Instant) {
        if let d = timeWaitDeadline, now >= d {
            enterClosed(error: nil)
            return
        }
        if let d = finWait2Deadline, now >= d {
            enterClosed(error: nil)
            return
        }
        if let d = lossProbeDeadline, now >= d {
            lossProbeTimerFired()
            // RFC 8985 7.2-7.3: the probe timer stands in for the RTO, never
            // later than it (PTO = min(PTO, RTO)), so when both are due the
            // probe goes and the RTO is armed again from now.
            if lossProbeDue { retransmitDeadline = now + rtt.rto }
        }
        if let d = retransmitDeadline, now >= d {
            retransmitTimeout(now: now)
            if state == .closed { return }
        }
        if let d = reorderDeadline, now >= d { reorderTimerFired(now: now) }
        if let d = delayedAckDeadline, now >= d {
            ackNow = true
            delayedAckDeadline = nil
        }
        if let d = persistDeadline, now >= d {
            if sndWnd == 0 { probeNow = true } else { sendSmallSegment = true }
            persistBackoff += 1
            persistDeadline = sndWnd == 0 ? now + persistInterval : nil
        }
        if let d = keepaliveDeadline, now >= d, let k = configuration.keepalive {
            if keepaliveProbesSent >= k.probes {
                sendResetNow = true
                enterClosed(error: .timedOut)
                return
            }
            keepaliveProbesSent += 1
            probeNow = true
            keepaliveDeadline = now + k.interval
        }
    }

    /// RFC 6298 5.4-5.7: retransmit the earliest unacknowledged segment, back
    /// off, and collapse the congestion window (RFC 5681 3.1). Gives up after
    /// the configured number of tries (RFC 9293 3.8.3, R2).
    private func retransmitTimeout(now: Instant) {
        let limit = state == .synSent || state == .synReceived
            ? configuration.maxSynRetransmissions : configuration.maxRetransmissions
        guard retransmissions < limit else {
            if state.isSynchronized { sendResetNow = true }
            enterClosed(error: .timedOut)
            return
        }
        retransmissions += 1
        retransmissionTimeouts &+= 1
        rtt.backOff()
        rttProbe = nil
        if sndUna == iss {
            // The SYN (or SYN-ACK) itself is unacknowledged: send it again from the start.
            sndNxt = sndUna
            segmentsRetransmitted &+= 1
        } else {
            lossOnTimeout(now: now)
        }
        retransmitDeadline = now + rtt.rto
    }
}
