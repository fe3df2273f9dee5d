extension TCPConnection {
    /// The earliest time `handleTimers` has work.
    /// Computed on every segment, so without building a collection (that allocates).
    var nextDeadline: Instant? {
        let sending = earliest(earliest(sender.retransmitDeadline, sender.persistDeadline),
                               earliest(earliest(sender.reorderDeadline, sender.tlp.deadline), sender.corkDeadline))
        let ending = earliest(earliest(timeWaitDeadline, finWait2Deadline), userTimeoutDeadline)
        return earliest(sending, earliest(earliest(receiver.delayedAckDeadline, keepaliveDeadline),
                                          earliest(ending, idleDeadline)))
    }

    /// RFC 5482: when the connection gives up on its oldest unacknowledged
    /// segment, a user timeout after its send; armed from the segment's first
    /// timeout (so, as Linux, that timeout always resends) until it is
    /// acknowledged. As Linux, a window the peer keeps shut counts too: a
    /// user timeout after the first window probe, however the peer answers.
    var userTimeoutDeadline: Instant? {
        guard let timeout = configuration.userTimeout,
              let since = sender.stalledSince ?? sender.persistingSince else { return nil }
        return since + timeout
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
        if let d = userTimeoutDeadline, now >= d {
            if state.isSynchronized { sendResetNow = true }
            enterClosed(error: .timedOut)
            return
        }
        if let d = sender.tlp.deadline, now >= d {
            sender.lossProbeTimerFired()
            // RFC 8985 7.2-7.3: the probe timer stands in for the RTO (PTO =
            // min(PTO, RTO)): when both are due the probe goes and the RTO is re-armed.
            if sender.tlp.due { sender.retransmitDeadline = now + sender.rtt.rto }
        }
        if let d = sender.retransmitDeadline, now >= d {
            retransmitTimeout(now: now)
            if state == .closed { return }
        }
        if let d = sender.reorderDeadline, now >= d {
            var events = TCPSendEvents()
            sender.reorderTimerFired(now: now, events: &events)
            record(events)
        }
        if let d = receiver.delayedAckDeadline, now >= d { receiver.delayedAckTimerFired() }
        if let d = sender.corkDeadline, now >= d {
            sender.corkDeadline = nil
            sender.corkExpired = true
        }
        if let d = sender.persistDeadline, now >= d {
            if sender.persistTimerFired(now: now) { probeNow = true }
        }
        if let d = keepaliveDeadline, now >= d, let k = configuration.keepalive {
            if sender.sndMax != sender.sndUna || !sender.sendBuffer.isEmpty {
                // With data in flight or waiting, the retransmission and
                // persist timers watch the peer: no probe; look again an idle
                // time later (Linux's tcp_keepalive_timer).
                keepaliveDeadline = now + k.idle
                keepaliveProbesSent = 0
            } else if keepaliveGivesUp(k, now: now) {
                sendResetNow = true
                enterClosed(error: .timedOut)
                return
            } else {
                if keepaliveProbesSent == 0 { keepaliveFirstProbe = now }
                keepaliveProbesSent += 1
                probeNow = true
                keepaliveDeadline = now + k.interval
            }
        }
        if let d = idleDeadline, now >= d, let t = idleTimeout {
            idleTimerFired(timeout: t, now: now)
        }
    }

    /// The application's idle timeout: pushed on to `lastProgress + timeout`
    /// if there was progress since it was armed; otherwise `onIdle` runs once
    /// (or the connection is closed).
    private func idleTimerFired(timeout: Duration, now: Instant) {
        let due = lastProgress + timeout
        if now < due {
            idleDeadline = due
            return
        }
        idleDeadline = nil
        guard !idleFired else { return }
        idleFired = true
        if let onIdle { onIdle(self) } else { close() }
    }

    /// Keepalive's end (RFC 1122 4.2.3.6): the probes all went unanswered
    /// or, under a user timeout, the peer has been silent that long since
    /// before the first probe (Linux's tcp_keepalive_timer).
    private func keepaliveGivesUp(_ k: TCPConfiguration.Keepalive, now: Instant) -> Bool {
        guard let timeout = configuration.userTimeout else { return keepaliveProbesSent >= k.probes }
        // The silence began an idle time before the first probe.
        return keepaliveProbesSent > 0 && now + k.idle >= keepaliveFirstProbe + timeout
    }

    /// The RTO fired (RFC 6298 5.4-5.7): the sender resends, unless the
    /// connection has run out of tries (RFC 9293 3.8.3, R2).
    private func retransmitTimeout(now: Instant) {
        guard sender.retransmissions < retransmissionLimit else {
            if state.isSynchronized { sendResetNow = true }
            enterClosed(error: .timedOut)
            return
        }
        // A half-open entry whose SYN-ACK went unanswered for an RTO is no longer young.
        if state == .synReceived, let l = listener { l.synQueue.markOld(self) }
        retransmissionTimeouts &+= 1
        var events = TCPSendEvents()
        sender.retransmitTimeout(now: now, events: &events)
        record(events)
    }

    /// Timeouts of one segment before the connection gives up: SYN and data
    /// per the configuration, fewer once the application closed it; a passive open's SYN-ACK (Linux's
    /// tcp_synack_retries) fewer while its listener's SYN queue fills.
    private var retransmissionLimit: Int {
        switch state {
        case .synSent:
            return configuration.maxSynRetransmissions
        case .synReceived:
            let limit = min(configuration.maxSynRetransmissions, configuration.maxSynAckRetransmissions)
            guard !activeOpen else { return configuration.maxSynRetransmissions }
            guard let l = listener else { return limit }
            return l.synQueue.synAckRetryLimit(capacity: l.synBacklog, configured: limit)
        default:
            // Linux's tcp_write_timeout: an orphan (SOCK_DEAD) retries tcp_orphan_retries times.
            return orphaned ? min(configuration.maxOrphanRetransmissions, configuration.maxRetransmissions)
                : configuration.maxRetransmissions
        }
    }
}
