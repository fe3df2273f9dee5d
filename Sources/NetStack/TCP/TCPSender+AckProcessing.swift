import NetStackWire

/// What an ACK tells the sender (RFC 9293 3.10.7.4 fifth, RFC 5681, RFC
/// 6675 4): cumulative and selective acknowledgment, RTT samples (RFC 6298,
/// RFC 7323 4), then loss detection, recovery and congestion control in turn.
extension TCPSender {
    /// The ACK field of an acceptable segment and its SACK blocks.
    /// `isDuplicate` is RFC 5681 2's duplicate ACK; `echo` the timestamp echo
    /// when timestamps are on; `mayProbe` whether tail loss probes are on.
    mutating func processAck(_ seg: TCPRepr, ack: SequenceNumber, isDuplicate: Bool, sackEnabled: Bool,
                             echo: UInt32?, tsOffset: UInt32, mayProbe: Bool, now: Instant,
                             events: inout TCPSendEvents) {
        let priorUna = sndUna
        let priorFlight = flightSize
        rack.beginAck()
        let priorPipe = pipe
        var delivered = 0
        var rttSample: Duration?
        if ack > sndUna {
            (delivered, rttSample) = advanceUnacknowledged(to: ack, echo: echo, tsOffset: tsOffset, now: now,
                                                           events: &events)
        }
        var duplicateReport: (left: SequenceNumber, right: SequenceNumber)?
        if sackEnabled, !seg.options.sackBlocks.isEmpty {
            let (sacked, dsack) = takeSACKBlocks(seg.options.sackBlocks, ack: ack, echo: echo, tsOffset: tsOffset,
                                                 now: now)
            delivered += sacked
            duplicateReport = dsack
        }
        // What PRR counts as delivered: without SACK a duplicate ACK stands for one segment.
        var recoveryDelivered = delivered
        if !sackEnabled {
            recoveryDelivered += countDuplicateAcks(ack: ack, priorUna: priorUna, isDuplicate: isDuplicate)
        }

        detectLosses(now: now, delivered: delivered > 0 || duplicateReport != nil, sackEnabled: sackEnabled)
        var endedRecovery = false
        if let point = recovery.recoveryPoint, recovery.lossState != .open, ack >= point {
            endedRecovery = recovery.lossState == .recovery
            exitRecovery(now: now, events: &events)
        }
        if recovery.lossState == .open && scoreboard.lostBytes > 0 {
            enterRecovery(now: now, events: &events)
        }
        if recovery.lossState == .recovery {
            recovery.prr.onAck(deliveredBytes: recoveryDelivered, pipe: pipe,
                               ssthresh: congestion.slowStartThreshold, mss: sendMSS)
        } else if delivered > 0 && ack > priorUna && !endedRecovery {
            // Only an ACK that moves SND.UNA grows cwnd (RFC 5681 3.1, Linux's
            // tcp_may_raise_cwnd); the ACK ending recovery set cwnd itself (RFC 6582 3.2 step 3).
            let cwnd = congestion.congestionWindow
            let limited = cwnd < congestion.slowStartThreshold
                ? 2 * priorPipe >= cwnd : priorPipe + 3 * sendMSS >= cwnd
            congestion.onAck(AckSample(deliveredBytes: delivered, mss: sendMSS, now: now, rtt: rttSample,
                                       minRTT: minRTTNs.map { .nanoseconds($0) }, smoothedRTT: rtt.srtt,
                                       ack: sndUna, sndMax: sndMax, priorFlightSize: priorFlight,
                                       windowLimited: limited))
        }
        if let d = duplicateReport {
            events.duplicateReports &+= 1
            checkSpuriousRecovery(duplicate: d, events: &events)
        }
        settleLossProbe(ack: ack, priorUna: priorUna, duplicateReport: duplicateReport,
                        newlySACKed: delivered > 0 && ack == priorUna, now: now, events: &events)
        if ack > priorUna {
            // RFC 8985 7.2: an ACK of new data reschedules the probe.
            tlp.deadline = nil
            armLossProbe(now: now, mayProbe: mayProbe)
        }
    }

    /// The peer's SYN-ACK acknowledged our SYN (RFC 9293 3.10.7.3).
    mutating func synAcknowledged(ack: SequenceNumber, now: Instant) {
        sndUna = ack
        sendBufferSeq = ack
        retransmitDeadline = nil
        // Karn: a retransmitted SYN gives no sample.
        if let probe = rttProbe, retransmissions == 0 {
            rtt.sample(now - probe.sentAt)
        } else if retransmissions > 0 {
            restartRTOAfterSynTimeout()
        }
        rttProbe = nil
        retransmissions = 0
        stalledSince = nil
    }

    /// RFC 6298 5.7: the SYN timed out and gave no sample, so RTO restarts at 3 s.
    mutating func restartRTOAfterSynTimeout() {
        guard !rtt.hasSample, rtt.rto < .seconds(3) else { return }
        rtt = RTTEstimator(initialRTO: .seconds(3), minimumRTO: minimumRTO, maximumRTO: maximumRTO)
    }

    /// New data cumulatively acknowledged: free the send ring and the
    /// scoreboard, feed RACK, take an RTT sample, and restart or stop the
    /// RTO (RFC 6298 5.2, 5.3). Returns the data bytes newly delivered (not
    /// SACKed before) and the RTT sample, if any.
    private mutating func advanceUnacknowledged(to ack: SequenceNumber, echo: UInt32?, tsOffset: UInt32,
                                                now: Instant, events: inout TCPSendEvents) -> (Int, Duration?) {
        let dataAcked = min(max(ack - sendBufferSeq, 0), sendBuffer.count)
        if dataAcked > 0 {
            sendBuffer.consume(dataAcked)
            sendBufferSeq = sendBufferSeq + dataAcked
        }
        let minRTT = minRTTNs
        // Timed from the oldest segment covered, unless any was resent (Karn, RFC 6298 3).
        var oldestSentAt: Instant?
        var retransmittedAcked = false
        let delivered = scoreboard.acknowledge(upTo: ack) { record in
            if record.marks.contains(.everRetransmitted) {
                retransmittedAcked = true
            } else if oldestSentAt == nil {
                oldestSentAt = record.sentAt
            }
            rack.delivered(record, now: now, minRTTNs: minRTT,
                           echoPredatesSend: Self.echoPredates(echo, record, tsOffset: tsOffset))
        }
        sndUna = ack
        if sndNxt < sndUna { sndNxt = sndUna }
        retransmissions = 0
        stalledSince = nil

        // Send times first (Linux's seq_rtt_us), the SYN timed the same way;
        // then the timestamp echo (RFC 7323 4), unambiguous even for a resend.
        var sample: Duration?
        if let oldestSentAt, !retransmittedAcked {
            sample = now - oldestSentAt
        } else if let probe = rttProbe, ack > probe.seq {
            sample = now - probe.sentAt
        } else if let echo, echo != 0 {
            let elapsedMs = Int64(Int32(bitPattern: Self.timestamp(now, offset: tsOffset) &- echo))
            if elapsedMs >= 0 { sample = .milliseconds(elapsedMs) }
        }
        if let probe = rttProbe, ack > probe.seq { rttProbe = nil }
        if let sample {
            rtt.sample(sample)
            let ns = sample.nanoseconds
            if sampledMinRTTNs.map({ ns < $0 }) ?? true { sampledMinRTTNs = ns }
        }
        retransmitDeadline = sndUna == sndMax ? nil : now + rtt.rto
        if dataAcked > 0 { events.dataAcked = true }
        return (delivered, sample)
    }

    /// Marks what the SACK blocks cover (RFC 6675 4 Update). A first block
    /// below the cumulative ACK, or inside the second, is a D-SACK (RFC 2883
    /// 4). Returns the bytes newly SACKed and the D-SACK's range, if any.
    private mutating func takeSACKBlocks(_ blocks: TCPSACKBlocks, ack: SequenceNumber, echo: UInt32?,
                                         tsOffset: UInt32, now: Instant)
        -> (Int, (left: SequenceNumber, right: SequenceNumber)?) {
        var dsack = false
        if let first = blocks.first {
            if first.right <= ack {
                dsack = true
            } else if blocks.count > 1, blocks[1].left <= first.left, first.right <= blocks[1].right {
                dsack = true
            }
        }
        // A D-SACK answering a loss probe says nothing about reordering (Linux's tcp_dsack_seen).
        if dsack, let first = blocks.first,
           !(tlp.inFlight?.resent((left: first.left, right: first.right)) ?? false) {
            rack.dsackReceived(ack: ack, sndMax: sndMax)
        }
        var newly = 0
        let minRTT = minRTTNs
        for (i, block) in blocks.enumerated() where !(dsack && i == 0) {
            // Only blocks within what is outstanding mean anything (RFC 6675 4).
            guard block.left < block.right, block.left >= sndUna, block.right <= sndMax else { continue }
            newly += scoreboard.sack(block.left, block.right) { record in
                rack.delivered(record, now: now, minRTTNs: minRTT,
                               echoPredatesSend: Self.echoPredates(echo, record, tsOffset: tsOffset))
            }
        }
        return (newly, dsack ? blocks.first.map { (left: $0.left, right: $0.right) } : nil)
    }

    /// RFC 8985 6.2 step 2's timestamp test: the echo is older than the
    /// segment's last transmission, so the ACK was for an earlier copy.
    private static func echoPredates(_ echo: UInt32?, _ record: TransmitRecord, tsOffset: UInt32) -> Bool {
        guard let echo, echo != 0, record.marks.contains(.everRetransmitted) else { return false }
        return Int32(bitPattern: echo &- timestamp(record.sentAt, offset: tsOffset)) < 0
    }

    /// Our timestamp clock: milliseconds, offset per connection (RFC 7323 5.4).
    static func timestamp(_ t: Instant, offset: UInt32) -> UInt32 {
        UInt32(truncatingIfNeeded: t.nanoseconds / 1_000_000) &+ offset
    }
}
