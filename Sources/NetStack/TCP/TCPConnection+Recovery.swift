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

    /// Whether a D-SACK reports data the probe resent: it answers the probe,
    /// and says nothing of reordering or of an earlier recovery.
    func resent(_ d: (left: SequenceNumber, right: SequenceNumber)) -> Bool {
        d.left >= firstStart && d.right <= endSeq
    }
}

/// Sender-side loss detection and recovery: the SACK scoreboard (RFC 6675),
/// RACK-TLP (RFC 8985), NewReno's duplicate ACKs when the peer has no SACK
/// (RFC 6582), and PRR (RFC 6937) pacing sends while recovering. Congestion
/// control hears only its events (`CongestionControl`).
extension TCPConnection {
    /// Bytes the network is believed to hold (RFC 6675 SetPipe); without SACK,
    /// duplicate ACKs stand in for SACKed segments.
    var pipe: Int { max(scoreboard.pipe(outstanding: flightSize) - renoDeliveredBytes, 0) }

    /// How many more bytes congestion control lets out now: PRR's quota while
    /// recovering, otherwise cwnd less the pipe.
    var congestionAllowance: Int {
        lossState == .recovery ? prr.quota : congestion.congestionWindow - pipe
    }

    /// Counts bytes sent against the allowance (the pipe counts itself).
    func spendAllowance(_ bytes: Int) {
        if lossState == .recovery { prr.didSend(bytes) }
    }

    // MARK: ACK processing

    /// The ACK field of an acceptable segment (RFC 9293 3.10.7.4 fifth) and its
    /// SACK blocks. `isDuplicate` is RFC 5681 2's duplicate ACK: no data, the
    /// same ACK and window, and data outstanding.
    func processAck(_ seg: TCPRepr, ack: SequenceNumber, isDuplicate: Bool, now: Instant) {
        let priorUna = sndUna
        let priorFlight = flightSize
        rack.beginAck()
        let priorPipe = pipe
        var delivered = 0
        var rttSample: Duration?
        let echo = timestampsEnabled ? seg.options.timestamps?.echoReply : nil
        if ack > sndUna {
            (delivered, rttSample) = advanceUnacknowledged(to: ack, echo: echo, now: now)
        }
        var duplicateReport: (left: SequenceNumber, right: SequenceNumber)?
        if sackEnabled, !seg.options.sackBlocks.isEmpty {
            let (sacked, dsack) = takeSACKBlocks(seg.options.sackBlocks, ack: ack, echo: echo, now: now)
            delivered += sacked
            duplicateReport = dsack
        }
        // What PRR counts as delivered: without SACK a duplicate ACK stands for one segment.
        var recoveryDelivered = delivered
        if !sackEnabled {
            recoveryDelivered += countDuplicateAcks(ack: ack, priorUna: priorUna, isDuplicate: isDuplicate)
        }

        detectLosses(now: now, delivered: delivered > 0 || duplicateReport != nil)
        var endedRecovery = false
        if let point = recoveryPoint, lossState != .open, ack >= point {
            endedRecovery = lossState == .recovery
            exitRecovery(now: now)
        }
        if lossState == .open && scoreboard.lostBytes > 0 {
            enterRecovery(now: now)
        }
        if lossState == .recovery {
            prr.onAck(deliveredBytes: recoveryDelivered, pipe: pipe, ssthresh: congestion.slowStartThreshold,
                      mss: sendMSS)
        } else if delivered > 0 && ack > priorUna && !endedRecovery {
            // Only an ACK that moves SND.UNA grows cwnd (RFC 5681 3.1, as
            // Linux's tcp_may_raise_cwnd): SACKs alone mean a hole, maybe a
            // loss. (The ACK that ends recovery set cwnd itself, RFC 6582 3.2 step 3.)
            let cwnd = congestion.congestionWindow
            let limited = cwnd < congestion.slowStartThreshold
                ? 2 * priorPipe >= cwnd : priorPipe + 3 * sendMSS >= cwnd
            congestion.onAck(AckSample(deliveredBytes: delivered, mss: sendMSS, now: now, rtt: rttSample,
                                       minRTT: minRTTNs.map { .nanoseconds($0) }, smoothedRTT: rtt.srtt,
                                       ack: sndUna, sndMax: sndMax, priorFlightSize: priorFlight,
                                       windowLimited: limited))
        }
        if let d = duplicateReport { checkSpuriousRecovery(duplicate: d) }
        settleLossProbe(ack: ack, priorUna: priorUna, duplicateReport: duplicateReport,
                        newlySACKed: delivered > 0 && ack == priorUna, now: now)
        if ack > priorUna {
            // RFC 8985 7.2: an ACK of new data reschedules the probe.
            lossProbeDeadline = nil
            armLossProbe(now: now)
        }
    }

    /// New data cumulatively acknowledged: free the send ring and the
    /// scoreboard, feed RACK, take an RTT sample, and restart or stop the
    /// retransmission timer (RFC 6298 5.2, 5.3). Returns the data bytes newly
    /// delivered (not SACKed before) and the RTT sample, if any.
    /// `echo` is the ACK's timestamp echo, when timestamps are on.
    private func advanceUnacknowledged(to ack: SequenceNumber, echo: UInt32?, now: Instant) -> (Int, Duration?) {
        let dataAcked = min(max(ack - sendBufferSeq, 0), sendBuffer.count)
        if dataAcked > 0 {
            sendBuffer.consume(dataAcked)
            sendBufferSeq = sendBufferSeq + dataAcked
        }
        let minRTT = minRTTNs
        // The RTT sample is timed from the oldest segment this ACK covers,
        // unless any it covers was retransmitted (Karn, RFC 6298 3).
        var oldestSentAt: Instant?
        var retransmittedAcked = false
        let delivered = scoreboard.acknowledge(upTo: ack) { record in
            if record.marks.contains(.everRetransmitted) {
                retransmittedAcked = true
            } else if oldestSentAt == nil {
                oldestSentAt = record.sentAt
            }
            rack.delivered(record, now: now, minRTTNs: minRTT, echoPredatesSend: echoPredates(echo, record))
        }
        sndUna = ack
        if sndNxt < sndUna { sndNxt = sndUna }
        retransmissions = 0

        // Send times first, as Linux's seq_rtt_us: they are exact to the
        // clock, where RFC 7323 timestamps tick in milliseconds and would
        // read a 0.1 ms path as 0 or 1 ms. The SYN has no record but is timed
        // the same way. The echo, unambiguous even for a retransmission
        // (RFC 7323 4), times what Karn leaves out.
        var sample: Duration?
        if let oldestSentAt, !retransmittedAcked {
            sample = now - oldestSentAt
        } else if let probe = rttProbe, ack > probe.seq {
            sample = now - probe.sentAt
        } else if let echo, echo != 0 {
            let elapsedMs = Int64(Int32(bitPattern: timestampNow(now) &- echo))
            if elapsedMs >= 0 { sample = .milliseconds(elapsedMs) }
        }
        if let probe = rttProbe, ack > probe.seq { rttProbe = nil }
        if let sample {
            rtt.sample(sample)
            let ns = sample.nanoseconds
            if sampledMinRTTNs.map({ ns < $0 }) ?? true { sampledMinRTTNs = ns }
        }
        retransmitDeadline = sndUna == sndMax ? nil : now + rtt.rto
        if dataAcked > 0 { pendingWritable = true }
        return (delivered, sample)
    }

    /// Marks what the SACK blocks cover (RFC 6675 4 Update). A first block
    /// below the cumulative ACK, or inside the second block, is a D-SACK (RFC
    /// 2883 4): a duplicate arrived, so a retransmission was spurious. Returns
    /// the bytes newly SACKed and the D-SACK's range, if one came.
    private func takeSACKBlocks(_ blocks: TCPSACKBlocks, ack: SequenceNumber, echo: UInt32?, now: Instant)
        -> (Int, (left: SequenceNumber, right: SequenceNumber)?) {
        var dsack = false
        if let first = blocks.first {
            if first.right <= ack {
                dsack = true
            } else if blocks.count > 1, blocks[1].left <= first.left, first.right <= blocks[1].right {
                dsack = true
            }
        }
        // A D-SACK answering a loss probe says nothing about reordering: the
        // probe was the timer's doing, not RACK's (Linux's tcp_dsack_seen).
        if dsack, let first = blocks.first,
           !(lossProbe?.resent((left: first.left, right: first.right)) ?? false) {
            rack.dsackReceived(ack: ack, sndMax: sndMax)
        }
        var newly = 0
        let minRTT = minRTTNs
        for (i, block) in blocks.enumerated() where !(dsack && i == 0) {
            // Only blocks within what is outstanding mean anything (RFC 6675 4).
            guard block.left < block.right, block.left >= sndUna, block.right <= sndMax else { continue }
            newly += scoreboard.sack(block.left, block.right) { record in
                rack.delivered(record, now: now, minRTTNs: minRTT, echoPredatesSend: echoPredates(echo, record))
            }
        }
        return (newly, dsack ? blocks.first.map { (left: $0.left, right: $0.right) } : nil)
    }

    /// RFC 8985 6.2 step 2's timestamp test: the echo is older than the
    /// segment's last transmission, so the ACK was for an earlier copy.
    private func echoPredates(_ echo: UInt32?, _ record: TransmitRecord) -> Bool {
        guard let echo, echo != 0, record.marks.contains(.everRetransmitted) else { return false }
        return Int32(bitPattern: echo &- timestampNow(record.sentAt)) < 0
    }

    /// Without SACK (RFC 6582): duplicate ACKs count towards DupThresh and each
    /// stands for one segment that left the network; a partial ACK in recovery
    /// means the next segment is lost too (3.2 step 4). Returns the bytes the
    /// duplicate ACK stands for.
    private func countDuplicateAcks(ack: SequenceNumber, priorUna: SequenceNumber, isDuplicate: Bool) -> Int {
        if ack > priorUna {
            let acked = ack - priorUna
            duplicateAcks = 0
            if lossState == .recovery, let point = recoveryPoint, ack < point {
                renoDeliveredBytes = max(renoDeliveredBytes - acked, 0)
                if !scoreboard.isEmpty { scoreboard.markLost(at: 0) }
            } else {
                renoDeliveredBytes = 0
            }
            return 0
        }
        guard isDuplicate else { return 0 }
        duplicateAcks += 1
        // At most everything but the first segment can have arrived.
        let firstLength = scoreboard.head?.length ?? 0
        let room = max(flightSize - firstLength - renoDeliveredBytes, 0)
        let credited = min(sendMSS, room)
        renoDeliveredBytes += credited
        // RFC 5681 3.2 with RFC 6582 3.2 step 2: the third duplicate ACK, if it
        // covers more than `recover`, means the first segment is lost.
        if duplicateAcks == 3, lossState == .open, ack > recover, !scoreboard.isEmpty {
            scoreboard.markLost(at: 0)
        }
        return credited
    }

    /// With SACK: RACK (RFC 8985 6.2) when on, else RFC 6675's DupThresh rule.
    ///
    /// RACK's walk is skipped when it cannot find anything: with nothing
    /// SACKed, no loss being repaired and no probe out, every segment still
    /// outstanding was sent after each one just acknowledged. That is every
    /// ACK of a loss-free bulk transfer, where the walk cost 2.4% of the
    /// sender's CPU (Profiles/bulk-tx).
    private func detectLosses(now: Instant, delivered: Bool) {
        guard sackEnabled else { return }
        if configuration.rackTLP {
            let mayFindLoss = scoreboard.sackedSegments > 0 || lossState != .open || lossProbe != nil
                || reorderDeadline != nil
            if delivered && mayFindLoss { runRACK(now: now) }
        } else {
            scoreboard.markLostByDupThresh(mss: sendMSS)
        }
    }

    /// RACK's loss detection, arming the reordering timer for segments not yet
    /// overdue (RFC 8985 6.2 step 5, 6.3).
    func runRACK(now: Instant) {
        let window = rack.reorderingWindow(inRecovery: lossState != .open, sackedSegments: scoreboard.sackedSegments,
                                           minRTTNs: minRTTNs, srttNs: rtt.srtt?.nanoseconds)
        let wait = rack.detectLoss(in: &scoreboard, now: now, reorderingWindowNs: window)
        reorderDeadline = wait.map { now + $0 }
    }

    /// Loss detected: cut the window once for this episode and start PRR
    /// (RFC 6675 5 step 4, RFC 6937 3).
    private func enterRecovery(now: Instant) {
        lossState = .recovery
        recoveryPoint = sndMax
        recover = sndMax - 1
        congestion.onCongestionEvent(flightSize: flightSize, mss: sendMSS, now: now)
        prr = ProportionalRateReduction(flightSize: flightSize)
        spuriousCheck = SpuriousRecoveryCheck(start: sndUna)
        fastRecoveries &+= 1
        lossProbeDeadline = nil
        lossProbe = nil
    }

    /// Everything outstanding when recovery began is acknowledged (RFC 6582 3.2 step 3).
    private func exitRecovery(now: Instant) {
        let endedFastRecovery = lossState == .recovery
        if endedFastRecovery {
            congestion.onRecoveryEnd(flightSize: flightSize, mss: sendMSS, now: now)
            rack.recoveryEnded()
            spuriousCheck?.recoveryEnded(sndMax: sndMax)
        }
        lossState = .open
        recoveryPoint = nil
        renoDeliveredBytes = 0
        duplicateAcks = 0
        if endedFastRecovery { undoRecoveryIfSpurious() }
    }

    // MARK: Tail loss probe (RFC 8985 7)

    /// RFC 8985 7.2's WCDelAckT: the longest a receiver is taken to delay an
    /// ACK when one segment is out (the RFC's and Linux's 200 ms).
    static var worstCaseDelayedAck: Duration { .milliseconds(200) }

    /// Schedules a probe timeout after sending or an ACK of new data, when
    /// `probeMayGo` (7.2): PTO = 2 SRTT, plus the peer's worst-case delayed
    /// ACK (WCDelAckT) when one segment is out, and never past the RTO. The
    /// timer wheel rounds the deadline up to its 1 ms tick, which is the
    /// timer granularity QUIC adds explicitly (RFC 9002 6.2.1's kGranularity).
    ///
    /// Linux adds 2 ms (TCP_TIMEOUT_MIN_US) instead of nothing when more than
    /// one segment is out; this does not. What a probe ends is nearly always
    /// a lost ACK, not a late one: against the kernel (64 MiB from the HTTP
    /// service, 1% loss both ways, release build) 9 in 10 probes came back
    /// D-SACKed, so the receiver had had the whole flight, and the 2 ms only
    /// kept the sender idle, 25-30 ms of a 0.27 s download. Without it the
    /// download went from 2.42 to 2.69 Gbit/s (medians of four seeds), with
    /// no more probes than before.
    ///
    /// Not before our SYN is acknowledged (a connection closed in
    /// SYN-RECEIVED): only the RTO resends from the SYN.
    func armLossProbe(now: Instant) {
        guard configuration.rackTLP, sackEnabled, probeMayGo, lossProbe == nil, lossProbeDeadline == nil,
              state.isSynchronized, sndUna > iss, sndMax > sndUna else { return }
        var pto: Duration = .seconds(1)
        if let srtt = rtt.srtt {
            pto = srtt * 2 + (flightSize <= sendMSS ? Self.worstCaseDelayedAck : .zero)
        }
        if let rto = retransmitDeadline, now + pto > rto { pto = rto - now }
        lossProbeDeadline = now + pto
    }

    /// Whether a tail loss probe may be scheduled: when no loss is being
    /// repaired (RFC 8985 7.2), and also, a deviation, in fast recovery. There
    /// only ACKs move the sender on: they release PRR's resends and new data.
    /// If the last of them is lost, RFC 8985 waits for the RTO: 200 ms at
    /// least here (Linux's floor), on a path whose round trip is a tenth of a
    /// millisecond. A probe instead resends what is due, or the last segments
    /// when nothing is (`sendLossProbe`), and its ACK lets recovery go on.
    /// Against the kernel (64 MiB from the HTTP service, 1% loss both ways,
    /// release build) probes once every loss was resent took the download
    /// from 0.8-2.0 s with one to three timeouts to 0.3-0.9 s with zero to
    /// two; the rest were stalls with a resend still held back by PRR.
    var probeMayGo: Bool { lossState != .timeout }

    /// The probe timer fired (7.3): the probe goes, whatever cwnd says.
    func lossProbeTimerFired() {
        lossProbeDeadline = nil
        if probeMayGo, lossProbe == nil, sndMax > sndUna { lossProbeDue = true }
    }

    /// Sends the probe (7.3): the last segments again. Returns true if it sent.
    ///
    /// Deviation: RFC 8985 prefers a new segment when the window allows. A
    /// lone new segment, though, is what a receiver's delayed ACK holds (40 ms
    /// on Linux), while a duplicate is acknowledged at once, with a D-SACK
    /// (RFC 2883), which also tells us nothing was lost. Measured against the
    /// kernel (64 MiB from the HTTP service, 1% loss both ways, release build):
    /// 2.0 s with new-data probes, 0.8 s with these; most probes there follow
    /// a lost ACK at the end of a flight.
    ///
    /// Deviation: the segment before it goes again too, when there is one
    /// not SACKed. Each copy draws its own immediate ACK, so one lost frame
    /// (the probe or the ACK answering it) no longer leaves the sender to the
    /// RTO: RFC 9002 6.2.4 lets QUIC's probe timeout send two packets for
    /// this reason. The stall a probe ends is mostly a lost ACK at the end of
    /// a flight; with one segment, 1% loss both ways gave a 200 ms timeout in
    /// about a third of 64 MiB downloads from the HTTP service (0.25 s each).
    ///
    /// In fast recovery with resends still due, which PRR held back waiting
    /// for ACKs that stopped coming, the probe is the first two of those
    /// instead: what the RTO would send, sooner, and without collapsing cwnd.
    func sendLossProbe(now: Instant, emit: (TCPRepr, UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) -> Bool {
        let first: Int
        var second: Int?
        if lossState == .recovery, let due = scoreboard.nextLost() {
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
        resendForProbe(at: first, now: now, emit: emit)
        if let second { resendForProbe(at: second, now: now, emit: emit) }
        lossProbe = LossProbe(endSeq: sndMax, firstStart: firstStart, lastStart: lastStart)
        lossProbesSent &+= 1
        retransmitDeadline = now + rtt.rto
        return true
    }

    private func resendForProbe(at i: Int, now: Instant,
                                emit: (TCPRepr, UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) {
        let r = scoreboard.records[i]
        emitSegment(at: r.start, maxLength: r.length, now: now, emit: emit)
        scoreboard.retransmitted(at: i, now: now)
        segmentsRetransmitted &+= 1
        if lossState == .recovery { spuriousCheck?.didResend() }
    }

    /// Whether a probe repaired a loss (7.4): a probe answered without a
    /// D-SACK, by an ACK beyond it, means the original was lost, and
    /// congestion control must hear of it; a D-SACK of its last segment or a
    /// bare duplicate ACK means both copies arrived.
    private func settleLossProbe(ack: SequenceNumber, priorUna: SequenceNumber,
                                 duplicateReport: (left: SequenceNumber, right: SequenceNumber)?,
                                 newlySACKed: Bool, now: Instant) {
        guard let probe = lossProbe else { return }
        if let d = duplicateReport, d.right > probe.lastStart {
            lossProbe = nil
        } else if ack > probe.endSeq {
            lossProbe = nil
            if lossState == .open {
                congestion.onCongestionEvent(flightSize: flightSize, mss: sendMSS, now: now)
                congestion.onRecoveryEnd(flightSize: flightSize, mss: sendMSS, now: now)
                // A new loss episode: the last recovery can no longer be undone.
                spuriousCheck = nil
            }
        } else if ack == priorUna, !newlySACKed, ack == probe.endSeq {
            lossProbe = nil
        }
    }

    // MARK: Timeouts

    /// The retransmission timer fired on data: every segment not SACKed is
    /// lost, and slow start resends them (RFC 5681 3.1, RFC 6675 5.1). SACK
    /// marks are kept, as Linux keeps them, unless the first segment is marked:
    /// then the receiver reneged on its SACKs (RFC 2018 8).
    func lossOnTimeout(now: Instant) {
        congestion.onRetransmitTimeout(flightSize: flightSize, mss: sendMSS, now: now)
        spuriousCheck = nil
        if scoreboard.head?.marks.contains(.sacked) == true { scoreboard.forgetSACKs() }
        scoreboard.markAllLost()
        lossState = .timeout
        recoveryPoint = sndMax
        recover = sndMax - 1
        renoDeliveredBytes = 0
        duplicateAcks = 0
        lossProbe = nil
        lossProbeDeadline = nil
        lossProbeDue = false
        reorderDeadline = nil
    }

    /// RACK's reordering timer fired (RFC 8985 6.3): look again, and start
    /// recovery if something is now overdue.
    func reorderTimerFired(now: Instant) {
        reorderDeadline = nil
        runRACK(now: now)
        if lossState == .open && scoreboard.lostBytes > 0 {
            enterRecovery(now: now)
            prr.onAck(deliveredBytes: 0, pipe: pipe, ssthresh: congestion.slowStartThreshold, mss: sendMSS)
        }
    }

    // MARK: Sending

    /// Retransmits lost segments, first to last, while the allowance lasts
    /// (RFC 6675 4 NextSeg (1)). Only the first may lie beyond the peer's
    /// window (Linux's rule: a shrunk window still gets its head probed).
    /// Resending the head restarts the retransmission timer, as Linux's
    /// tcp_xmit_retransmit_queue does: timed from the last cumulative ACK, it
    /// would expire before the resent head's ACK could return whenever
    /// recovery began later than RTO minus one RTT after that ACK.
    /// Returns true if it sent.
    func retransmitLost(now: Instant, emit: (TCPRepr, UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) -> Bool {
        var sent = false
        var from = 0
        while congestionAllowance > 0, let i = scoreboard.nextLost(from: from) {
            let r = scoreboard.records[i]
            guard r.start == sndUna || r.start - sndUna < sndWnd else { break }
            emitSegment(at: r.start, maxLength: r.length, now: now, emit: emit)
            if r.start == sndUna { retransmitDeadline = now + rtt.rto }
            scoreboard.retransmitted(at: i, now: now)
            spendAllowance(r.length)
            segmentsRetransmitted &+= 1
            if lossState == .recovery { spuriousCheck?.didResend() }
            sent = true
            from = i + 1
        }
        return sent
    }
}
