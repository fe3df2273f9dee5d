import NetStackWire

/// Where the sender stands in loss recovery (Linux's Open, Recovery and Loss states).
enum LossState: Equatable {
    /// Nothing known lost: congestion control's window governs sending.
    case open
    /// Fast recovery (RFC 6675 5, RFC 6582): lost segments are resent first,
    /// paced by PRR, until everything outstanding at the start is acknowledged.
    case recovery
    /// After a retransmission timeout: everything unSACKed is resent in slow
    /// start (RFC 5681 3.1, RFC 6675 5.1), until the same point.
    case timeout
}

/// The sender's loss-recovery episode: its state, its end point, PRR's
/// pacing (RFC 6937) and the check that may undo it (RFC 3708).
struct TCPLossRecovery {
    var lossState = LossState.open
    /// RFC 6675's RecoveryPoint (RFC 6582's `recover` while recovering):
    /// recovery, or the go-back after a timeout, lasts until this is acknowledged.
    var recoveryPoint: SequenceNumber?
    /// RFC 6582's `recover` after recovery: duplicate ACKs that do not cover
    /// it start no new fast retransmit (3.2 step 1).
    var recover = SequenceNumber(0)
    /// Sending during recovery (RFC 6937).
    var prr = ProportionalRateReduction(flightSize: 1)
    /// The last fast recovery, until D-SACKs prove it spurious or another
    /// loss episode begins (RFC 3708).
    var spuriousCheck: SpuriousRecoveryCheck?
}

/// Recovery's hold on sending: the pipe (RFC 6675 SetPipe) and PRR's quota,
/// and entering and leaving fast recovery.
extension TCPSender {
    /// Bytes the network is believed to hold (RFC 6675 SetPipe); without SACK,
    /// duplicate ACKs stand in for SACKed segments.
    var pipe: Int { max(scoreboard.pipe(outstanding: flightSize) - duplicateAcks.deliveredBytes, 0) }

    /// How many more bytes congestion control lets out now: PRR's quota while
    /// recovering (RFC 6937 3), otherwise cwnd less the pipe.
    var congestionAllowance: Int {
        recovery.lossState == .recovery ? recovery.prr.quota : congestion.congestionWindow - pipe
    }

    /// Counts bytes sent against the allowance (the pipe counts itself).
    mutating func spendAllowance(_ bytes: Int) {
        if recovery.lossState == .recovery { recovery.prr.didSend(bytes) }
    }

    /// Loss detected: cut the window once for this episode and start PRR
    /// (RFC 6675 5 step 4, RFC 6937 3).
    mutating func enterRecovery(now: Instant, events: inout TCPSendEvents) {
        recovery.lossState = .recovery
        recovery.recoveryPoint = sndMax
        recovery.recover = sndMax - 1
        congestion.onCongestionEvent(flightSize: flightSize, mss: sendMSS, now: now)
        recovery.prr = ProportionalRateReduction(flightSize: flightSize)
        recovery.spuriousCheck = SpuriousRecoveryCheck(start: sndUna)
        events.fastRecoveries &+= 1
        tlp.deadline = nil
        tlp.inFlight = nil
        tlp.lossDetected()
    }

    /// Everything outstanding when recovery began is acknowledged (RFC 6582 3.2 step 3).
    mutating func exitRecovery(now: Instant, events: inout TCPSendEvents) {
        let endedFastRecovery = recovery.lossState == .recovery
        if endedFastRecovery {
            congestion.onRecoveryEnd(flightSize: flightSize, mss: sendMSS, now: now)
            rack.recoveryEnded()
            recovery.spuriousCheck?.recoveryEnded(sndMax: sndMax)
        }
        recovery.lossState = .open
        recovery.recoveryPoint = nil
        duplicateAcks.reset()
        if endedFastRecovery { undoRecoveryIfSpurious(events: &events) }
    }
}
