import NetStackWire

/// A tail loss probe in flight (RFC 8985 7.4). Probes here always resend
/// (see `sendLossProbe`): the last unSACKed segment, and the one before it.
struct LossProbe: Equatable {
    /// TLP.end_seq: SND.NXT when the probe went.
    var endSeq: SequenceNumber
    /// Where the first resent segment begins: D-SACKs from here to `endSeq`
    /// answer the probe, not reordering.
    var firstStart: SequenceNumber
    /// Where the last resent segment begins: a D-SACK of it shows the probe
    /// was not needed.
    var lastStart: SequenceNumber
    /// It went during a fast recovery, whose resends it counts among.
    var duringRecovery = false

    /// Whether a D-SACK reports data the probe resent: it answers the probe,
    /// and says nothing of reordering or of an earlier recovery.
    func resent(_ d: (left: SequenceNumber, right: SequenceNumber)) -> Bool {
        d.left >= firstStart && d.right <= endSeq
    }
}

/// The tail loss probe's state (RFC 8985 7): its timer, a probe waiting to
/// go, and the probe in flight.
struct TailLossProbe {
    /// The probe timeout (7.2).
    var deadline: Instant?
    /// The timer fired; the next output sends the probe (7.3).
    var due = false
    /// The probe in flight, until an ACK settles it (7.4).
    var inFlight: LossProbe?
    /// Probes that came back unneeded since a loss was last detected, up to
    /// `maxLateSteps`: each adds `lateStep` to the PTO (see `armLossProbe`).
    private(set) var lateSteps = 0

    /// RFC 8985 7.2's WCDelAckT: the longest a receiver is taken to delay an
    /// ACK when one segment is out (the RFC's and Linux's 200 ms).
    static var worstCaseDelayedAck: Duration { .milliseconds(200) }
    /// What each unneeded probe adds to the PTO: Linux's TCP_TIMEOUT_MIN_US,
    /// the 2 ms its tcp_schedule_loss_probe always adds.
    static var lateStep: Duration { .milliseconds(2) }
    /// At most 8 ms: two scheduler ticks at HZ=250 (see ARCHITECTURE.md).
    static let maxLateSteps = 4

    /// What the PTO adds to 2 SRTT with more than one segment out.
    /// (Duration arithmetic is 128-bit: skipped in the common case of none.)
    var lateSlack: Duration { lateSteps == 0 ? .zero : Self.lateStep * lateSteps }

    /// Both copies of a probe arrived: nothing was lost, the ACK was missing
    /// (late or lost) for longer than the PTO. The next PTOs wait longer.
    mutating func probeWasUnneeded() { lateSteps = min(lateSteps + 1, Self.maxLateSteps) }

    /// A loss was detected (fast recovery, a probe that repaired one, a
    /// timeout): silences are losses again, and the PTO goes back to 2 SRTT.
    mutating func lossDetected() { lateSteps = 0 }
}

/// Tail loss probes (RFC 8985 7): scheduling, sending, and settling them.
extension TCPSender {
    /// Schedules a probe timeout after sending or an ACK of new data (7.2):
    /// PTO = 2 SRTT, plus WCDelAckT when one segment is out, never past the
    /// RTO. With more segments out, plus 2 ms for each probe that came back
    /// unneeded since the last loss, up to 8 ms (a deviation: Linux always
    /// adds 2 ms, the RFC nothing; see ARCHITECTURE.md). `mayProbe`: RACK-TLP
    /// and SACK are on and the connection is synchronized. Not before our
    /// SYN is acknowledged.
    mutating func armLossProbe(now: Instant, mayProbe: Bool) {
        guard mayProbe, probeMayGo, tlp.inFlight == nil, tlp.deadline == nil,
              sndUna > iss, sndMax > sndUna else { return }
        var pto: Duration = .seconds(1)
        if let srtt = rtt.srtt {
            pto = srtt * 2 + (flightSize <= sendMSS ? TailLossProbe.worstCaseDelayedAck : tlp.lateSlack)
        }
        if let rto = retransmitDeadline, now + pto > rto { pto = rto - now }
        tlp.deadline = now + pto
    }

    /// Whether a probe may be scheduled: no loss being repaired after a
    /// timeout (RFC 8985 7.2; a deviation allows it in fast recovery).
    var probeMayGo: Bool { recovery.lossState != .timeout }

    /// The probe timer fired (7.3): the probe goes, whatever cwnd says.
    mutating func lossProbeTimerFired() {
        tlp.deadline = nil
        if probeMayGo, tlp.inFlight == nil, sndMax > sndUna { tlp.due = true }
    }

    /// Sends the probe (7.3). Deviations: it resends the last unSACKed
    /// segment and the one before it rather than new data (RFC 9002 6.2.4
    /// sends two probes too), or in fast recovery the first two resends due.
    /// Returns true if it sent.
    mutating func sendLossProbe(now: Instant, events: inout TCPSendEvents, sink: some TCPSegmentSink) -> Bool {
        let first: Int
        var second: Int?
        if recovery.lossState == .recovery, let due = scoreboard.nextLost() {
            first = due
            second = scoreboard.nextLost(from: due + 1)
        } else if let last = scoreboard.lastUnsacked {
            if let before = scoreboard.lastUnsacked(before: last) {
                (first, second) = (before, last)
            } else {
                first = last
            }
        } else {
            return false
        }
        let firstStart = scoreboard.records[first].start
        let lastStart = second.map { scoreboard.records[$0].start } ?? firstStart
        resend(at: first, now: now, events: &events, sink: sink)
        if let second { resend(at: second, now: now, events: &events, sink: sink) }
        tlp.inFlight = LossProbe(endSeq: sndMax, firstStart: firstStart, lastStart: lastStart,
                                 duringRecovery: recovery.lossState == .recovery)
        events.lossProbes &+= 1
        retransmitDeadline = now + rtt.rto
        return true
    }

    /// Whether a probe repaired a loss (7.4): answered without a D-SACK by an
    /// ACK beyond it, the original was lost and congestion control hears of
    /// it; a D-SACK of its last segment or a bare duplicate ACK means both
    /// copies arrived.
    mutating func settleLossProbe(ack: SequenceNumber, priorUna: SequenceNumber,
                                  duplicateReport: (left: SequenceNumber, right: SequenceNumber)?,
                                  newlySACKed: Bool, now: Instant, events: inout TCPSendEvents) {
        guard let probe = tlp.inFlight else { return }
        if let d = duplicateReport, d.right > probe.lastStart {
            tlp.inFlight = nil
            tlp.probeWasUnneeded()
            events.lossProbesUnneeded &+= 1
        } else if ack > probe.endSeq {
            tlp.inFlight = nil
            tlp.lossDetected()
            events.lossProbeRecoveries &+= 1
            if recovery.lossState == .open {
                congestion.onCongestionEvent(flightSize: flightSize, mss: sendMSS, now: now)
                congestion.onRecoveryEnd(flightSize: flightSize, mss: sendMSS, now: now)
                // A new loss episode: the last recovery can no longer be undone.
                recovery.spuriousCheck = nil
            }
        } else if ack == priorUna, !newlySACKed, ack == probe.endSeq {
            tlp.inFlight = nil
            tlp.probeWasUnneeded()
            events.lossProbesUnneeded &+= 1
        }
    }
}
