import NetStackWire

/// The persist timer (RFC 9293 3.8.6.1 window probes, 3.8.6.2.1's override
/// of sender SWS avoidance), for data held back by the peer's window alone.
extension TCPSender {
    /// Data waits, nothing is in flight: only the window holds it back, so
    /// arm the persist timer (RFC 9293 3.8.6.1, 3.8.6.2.1).
    mutating func armPersistIfStalled(now: Instant) {
        let unsent = sendBuffer.count - (sndNxt - sendBufferSeq)
        if unsent > 0 && sndNxt == sndUna && persistDeadline == nil {
            persistDeadline = now + persistInterval
        }
    }

    var persistInterval: Duration {
        let base = rtt.rto.nanoseconds
        let backedOff = base << min(persistBackoff, 16)
        return .nanoseconds(min(backedOff, maximumRTO.nanoseconds))
    }

    /// The persist timer fired: a zero window is probed (RFC 9293 3.8.6.1),
    /// a small one gets what fits (3.8.6.2.1). Returns true for a window probe.
    mutating func persistTimerFired(now: Instant) -> Bool {
        let probe = sndWnd == 0
        if !probe { sendSmallSegment = true }
        if probe && persistingSince == nil { persistingSince = now }
        persistBackoff += 1
        persistDeadline = probe ? now + persistInterval : nil
        return probe
    }
}
