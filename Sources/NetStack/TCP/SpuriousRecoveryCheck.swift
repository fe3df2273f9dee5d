import NetStackWire

/// Whether a fast recovery was spurious, by RFC 3708's D-SACK test: the
/// receiver reported every segment resent during it as a duplicate, so the
/// originals had arrived (reordered or delayed, not lost), and the window
/// cut for it is undone (RFC 9438 4.9). Linux keeps the same count in
/// `undo_marker` and `undo_retrans`.
///
/// Resends are counted while the recovery lasts. D-SACKs count from its
/// start (SND.UNA then) up to SND.MAX, which stops moving for this purpose
/// when it ends: what is sent afterwards, a loss probe above all, cannot
/// vouch for it. A duplicate the network made (not a resend) reads the same
/// to the receiver; Linux takes that risk too, and it needs a duplicate of
/// exactly the data being recovered.
struct SpuriousRecoveryCheck {
    /// SND.UNA when recovery began: nothing below it was resent in it.
    let start: SequenceNumber
    /// SND.MAX when recovery ended; nil while it lasts.
    private(set) var end: SequenceNumber?
    /// Segments resent during the recovery.
    private(set) var resent = 0
    /// Segments in its range D-SACKed since it began.
    private(set) var reportedDuplicate = 0

    init(start: SequenceNumber) {
        self.start = start
    }

    /// A segment went again while recovering.
    mutating func didResend() {
        if end == nil { resent += 1 }
    }

    mutating func recoveryEnded(sndMax: SequenceNumber) {
        if end == nil { end = sndMax }
    }

    /// A D-SACK reported [left, right) received twice (RFC 2883): it counts
    /// for the segments it covers, when they lie within the recovery's range.
    mutating func duplicateReported(left: SequenceNumber, right: SequenceNumber, sndMax: SequenceNumber, mss: Int) {
        guard mss > 0, left < right, left >= start, right <= (end ?? sndMax) else { return }
        reportedDuplicate += (right - left + mss - 1) / mss
    }

    /// The recovery is over, it resent something, and every resend has come
    /// back reported as a duplicate.
    var provedSpurious: Bool {
        end != nil && resent > 0 && reportedDuplicate >= resent
    }
}

extension TCPSender {
    /// Counts a D-SACK towards proving the last fast recovery spurious, and
    /// undoes its window cut once every resend is accounted for. A D-SACK
    /// answering a loss probe sent since the recovery ended is the probe's;
    /// one sent during it counted its resends among the recovery's, and its
    /// D-SACKs count too.
    mutating func checkSpuriousRecovery(duplicate d: (left: SequenceNumber, right: SequenceNumber),
                                        events: inout TCPSendEvents) {
        guard var check = recovery.spuriousCheck else { return }
        if check.end != nil, let probe = tlp.inFlight, !probe.duringRecovery, probe.resent(d) { return }
        check.duplicateReported(left: d.left, right: d.right, sndMax: sndMax, mss: sendMSS)
        recovery.spuriousCheck = check
        if recovery.lossState == .open { undoRecoveryIfSpurious(events: &events) }
    }

    /// Reordering, not loss, made the last fast recovery: congestion control
    /// goes back to where it was (Linux's tcp_try_undo_dsack, RFC 9438 4.9).
    mutating func undoRecoveryIfSpurious(events: inout TCPSendEvents) {
        guard let check = recovery.spuriousCheck, check.provedSpurious else { return }
        recovery.spuriousCheck = nil
        congestion.onSpuriousCongestionEvent()
        events.recoveriesUndone &+= 1
    }
}
