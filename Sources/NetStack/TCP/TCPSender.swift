import NetStackWire

/// Takes one segment the sender decided to send, for the connection to frame
/// and send: its sequence number, flags, and payload as up to two pieces of
/// the send ring. A protocol the sender is generic over, not a closure: a
/// closure's context retained the connection and the layer for every segment.
protocol TCPSegmentSink {
    /// `segmentSize`: for a segment longer than one (TSO), the payload bytes
    /// per frame the device cuts it into; 0 otherwise. `firstTransmission`:
    /// nothing of it was sent before (it starts at or past SND.MAX), so the
    /// peer cannot acknowledge it, nor the ring free it, before it is sent.
    func emit(seq: SequenceNumber, flags: TCPFlags, _ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer,
              segmentSize: Int, firstTransmission: Bool)
}

/// What one call into the sender did that the connection tallies or tells
/// the application (the tallies stay declared on `TCPConnection`).
struct TCPSendEvents {
    var retransmitted: UInt64 = 0
    var fastRecoveries: UInt64 = 0
    var lossProbes: UInt64 = 0
    /// Probes settled: one that repaired a loss, one both of whose copies arrived.
    var lossProbeRecoveries: UInt64 = 0
    var lossProbesUnneeded: UInt64 = 0
    var recoveriesUndone: UInt64 = 0
    /// ACKs that carried a D-SACK (RFC 2883).
    var duplicateReports: UInt64 = 0
    /// New payload bytes sent.
    var bytesSent: UInt64 = 0
    /// Data was acknowledged: the send ring has room.
    var dataAcked = false
}

/// The sending half of a connection (RFC 9293 3.3.1's send sequence space):
/// the send ring, the peer's window, RTT estimation (RFC 6298), the
/// congestion controller, Nagle, and the segments in flight. Loss recovery
/// sits beside it, in the types it holds (`TCPLossRecovery`, `RACK`,
/// `TailLossProbe`, `DuplicateAckCounter`, `SpuriousRecoveryCheck`), with
/// their logic in TCPSender+*.swift and their own files.
///
/// A struct held inline by `TCPConnection`: one exclusive access to the
/// connection's `sender` covers a whole ACK or output pass.
struct TCPSender {
    // MARK: Send sequence space (RFC 9293 3.3.1)
    let iss: SequenceNumber
    var sndUna: SequenceNumber
    var sndNxt: SequenceNumber
    /// The highest sequence sent; sndNxt rewinds to sndUna after a timeout, sndMax does not.
    var sndMax: SequenceNumber
    /// The peer's window, in bytes (already scaled).
    var sndWnd = 0
    var sndWl1 = SequenceNumber(0)
    var sndWl2 = SequenceNumber(0)
    /// Largest window the peer has offered (RFC 5961 5.2, RFC 9293 3.8.6.2.1).
    var maxSndWnd = 0
    /// Payload bytes per segment, after options (RFC 9293 3.7.1, RFC 6691).
    var sendMSS: Int
    /// Option bytes beyond timestamps that this output pass's segments carry
    /// (SACK blocks), taken off each segment's data (RFC 6691).
    var optionReserve = 0

    // MARK: Send ring
    let sendBuffer: SendBuffer
    /// Sequence number of the first byte in `sendBuffer`.
    var sendBufferSeq: SequenceNumber
    /// The application closed its sending side; a FIN follows the data.
    var finQueued = false
    /// SND.UP (RFC 9293 3.8.5): one past the last urgent byte written. The
    /// sender is in urgent mode while it lies past SND.UNA.
    var sndUp: SequenceNumber?
    var inUrgentMode: Bool { sndUp.map { $0 > sndUna } ?? false }
    /// While in urgent mode, what a segment's urgent pointer is made from:
    /// SND.UP, and SND.MAX, which bounds where the 16-bit field may saturate
    /// (`TCPConnection.point`).
    var urgentPointing: UrgentPointing? {
        guard inUrgentMode, let sndUp else { return nil }
        return UrgentPointing(up: sndUp, sent: sndMax)
    }

    // MARK: RTT and congestion
    var rtt: RTTEstimator
    /// The smallest RTT from RTT samples (send times, else timestamps), in nanoseconds.
    var sampledMinRTTNs: Int64?
    var congestion: CongestionController
    /// Timing of the SYN (Karn's algorithm, RFC 6298 3); data is timed from the scoreboard.
    var rttProbe: (seq: SequenceNumber, sentAt: Instant)?
    /// Timeouts in a row of the same segment (RFC 9293 3.8.3 R2).
    var retransmissions = 0
    /// When the oldest unacknowledged segment (or the SYN) was sent, from its
    /// first timeout until it is acknowledged (Linux's `retrans_stamp`):
    /// RFC 5482's user timeout counts from it.
    var stalledSince: Instant?
    /// Where the last small data segment sent ends (Nagle, Minshall's variant).
    var smallSegmentEnd: SequenceNumber?
    /// The most data one segment may carry when the device segments TCP
    /// (TSO); 0 when every segment must fit one frame.
    var offloadLimit = 0

    // MARK: Loss recovery (beside the sender, in their own types)
    /// Every segment in flight, with what SACK blocks and loss detection said of it (RFC 6675).
    var scoreboard: RetransmitQueue
    var recovery = TCPLossRecovery()
    /// NewReno's duplicate ACKs, without SACK (RFC 6582).
    var duplicateAcks = DuplicateAckCounter()
    var rack = RACK()
    /// RACK's reordering timer (RFC 8985 6.3).
    var reorderDeadline: Instant?
    var tlp = TailLossProbe()

    // MARK: Timers
    var retransmitDeadline: Instant?
    var persistDeadline: Instant?
    var persistBackoff = 0
    /// When the persist timer first probed a zero window, until the window
    /// opens (Linux's `icsk_probes_tstamp`): a user timeout counts from it.
    var persistingSince: Instant?
    /// The persist timer fired on a window too small for sender SWS
    /// avoidance: send what fits anyway (RFC 9293 3.8.6.2.1's override).
    var sendSmallSegment = false

    // MARK: Settings
    /// TCP_NODELAY, which the application may change while open.
    var noDelay: Bool
    /// TCP_CORK: a partial segment waits (Linux's TCP_NAGLE_CORK), whatever
    /// is in flight, until the cork comes out, the connection closes, or
    /// `corkCeiling` passes (`corkDeadline`; tcp(7)'s ceiling).
    var corked = false
    var corkDeadline: Instant?
    /// The ceiling passed: the partial segment held back goes.
    var corkExpired = false
    static let corkCeiling: Duration = .milliseconds(200)
    let rackTLP: Bool
    let minimumRTO: Duration
    let maximumRTO: Duration

    init(iss: SequenceNumber, mss: Int, configuration: TCPConfiguration, budget: MemoryBudget? = nil) {
        self.iss = iss
        sndUna = iss
        sndNxt = iss
        sndMax = iss
        sendBufferSeq = iss + 1
        sendMSS = mss
        sendBuffer = SendBuffer(capacity: configuration.sendBufferSize, budget: budget)
        // One record per segment in flight: a full ring of 512-byte segments fits.
        scoreboard = RetransmitQueue(capacity: max(64, configuration.sendBufferSize / 512))
        rtt = RTTEstimator(initialRTO: configuration.initialRTO, minimumRTO: configuration.minimumRTO,
                           maximumRTO: configuration.maximumRTO)
        congestion = CongestionController(configuration.congestionControl, mss: mss)
        recovery.recover = iss
        noDelay = configuration.noDelay
        rackTLP = configuration.rackTLP
        minimumRTO = configuration.minimumRTO
        maximumRTO = configuration.maximumRTO
    }

    // MARK: Derived state

    /// Bytes sent but not yet acknowledged (SYN and FIN count one each).
    var flightSize: Int { sndMax - sndUna }

    /// Sequence number of our FIN, once queued.
    var finSeq: SequenceNumber? { finQueued ? sendBufferSeq + sendBuffer.count : nil }

    var finAcknowledged: Bool {
        guard let f = finSeq else { return false }
        return sndUna > f
    }

    /// The smallest RTT measured, in nanoseconds: RACK's per-segment timing
    /// when it has one, else the sampled minimum.
    var minRTTNs: Int64? { rack.minRTTNs ?? sampledMinRTTNs }

    /// Minshall's test (Linux's tcp_minshall_check): the last small segment sent is unacknowledged.
    var smallSegmentUnacknowledged: Bool {
        guard let end = smallSegmentEnd else { return false }
        return end > sndUna && end <= sndNxt
    }

    // MARK: Window

    /// RFC 9293 3.10.7.4 "SND.WND <- SEG.WND"; the caller applies the WL1/WL2 guard.
    mutating func updateWindow(_ window: Int, seq: SequenceNumber, ack: SequenceNumber) {
        sndWnd = window
        sndWl1 = seq
        sndWl2 = ack
        maxSndWnd = max(maxSndWnd, window)
        if window > 0 {
            persistDeadline = nil
            persistBackoff = 0
            persistingSince = nil
        }
    }

    /// Whether a segment's window update is newer than the last (RFC 9293 3.10.7.4).
    func windowUpdateIsNewer(seq: SequenceNumber, ack: SequenceNumber) -> Bool {
        sndWl1 < seq || (sndWl1 == seq && sndWl2 <= ack)
    }

    // MARK: Handshake

    /// Our SYN was sent: time it (unless resent, RFC 6298 3) and arm the RTO.
    mutating func synSent(now: Instant) {
        sndNxt = iss + 1
        if sndMax < sndNxt { sndMax = sndNxt }
        if retransmissions == 0 && rttProbe == nil { rttProbe = (iss, now) }
        if retransmitDeadline == nil { retransmitDeadline = now + rtt.rto }
    }

    /// A SYN cookie's ACK acknowledged the SYN-ACK sent without state (RFC
    /// 4987 3.6): nothing was timed, nothing is left to resend.
    mutating func cookieAcknowledged() {
        sndUna = iss + 1
        sndNxt = sndUna
        sndMax = sndUna
    }

    // MARK: Output

    /// Sends what the sender has, in order: a due loss probe, lost segments,
    /// then new data and FIN as the windows allow. `mayProbe`: tail loss
    /// probes are on for this connection now. Returns true if it sent.
    mutating func transmit(now: Instant, mayProbe: Bool, events: inout TCPSendEvents,
                           sink: some TCPSegmentSink) -> Bool {
        var sent = false
        if tlp.due {
            tlp.due = false
            if sendLossProbe(now: now, events: &events, sink: sink) { sent = true }
        }
        if retransmitLost(now: now, events: &events, sink: sink) {
            sent = true
            // Recovery's last resends may be all that is left to draw an ACK.
            armLossProbe(now: now, mayProbe: mayProbe)
        }
        var sentNew = false
        while sendNewSegment(now: now, events: &events, sink: sink) { sentNew = true }
        if sentNew {
            sent = true
            // RFC 8985 7.2: new data restarts the probe timer.
            tlp.deadline = nil
            armLossProbe(now: now, mayProbe: mayProbe)
        }
        sendSmallSegment = false
        armPersistIfStalled(now: now)
        return sent
    }

    /// Sends the next new segment if the windows, Nagle (RFC 9293 3.7.4, in
    /// Minshall's variant) and sender SWS avoidance (3.8.6.2.1) allow it.
    private mutating func sendNewSegment(now: Instant, events: inout TCPSendEvents, sink: some TCPSegmentSink) -> Bool {
        let offset = sndNxt - sendBufferSeq
        // Past the end means the FIN is already out; a full scoreboard waits for ACKs.
        guard offset >= 0, offset <= sendBuffer.count, !scoreboard.isFull else { return false }
        let unsent = sendBuffer.count - offset
        let inFlight = sndNxt - sndUna
        // The peer's window bounds the sequence space; congestion control the pipe.
        let usable = max(min(sndWnd - inFlight, congestionAllowance), 0)
        let perSegment = sendMSS - optionReserve
        // Urgent data goes in single segments, each with its own pointer
        // (a device cutting one segment would copy the pointer unchanged).
        if offloadLimit > 0 && !inUrgentMode {
            // TSO: whole segments as one, no more than a quarter of the
            // congestion window (so ACKs keep clocking, as Linux's
            // tcp_tso_autosize) and what the scoreboard has records for.
            let goal = min(offloadLimit, max(2 * perSegment, congestion.congestionWindow / 4))
            let segments = min(min(unsent, usable, goal) / perSegment, scoreboard.room - 1)
            if segments >= 2 {
                spendAllowance(emitSegment(at: sndNxt, maxLength: segments * perSegment, offload: true, now: now,
                                           events: &events, sink: sink))
                return true
            }
        }
        let length = min(unsent, sendMSS, usable)
        if length < sendMSS {
            if length < unsent {
                // Window-limited: sender SWS avoidance waits for half the largest window offered.
                guard length > 0, length >= maxSndWnd / 2 || sendSmallSegment else { return false }
            } else if length == 0 {
                // Nothing left but, perhaps, the FIN.
                let finUnsent = finQueued && sndNxt == sendBufferSeq + sendBuffer.count
                guard finUnsent else { return false }
            } else if inUrgentMode {
                // Urgent data is pushed: neither cork nor Nagle holds it (Linux's tcp_nagle_test).
            } else if corked && !finQueued {
                guard corkExpired else {
                    if corkDeadline == nil { corkDeadline = now + Self.corkCeiling }
                    return false
                }
            } else if !finQueued && !noDelay && inFlight > 0 && smallSegmentUnacknowledged {
                // Nagle, Minshall's variant (Linux's tcp_nagle_check); a closing connection flushes.
                return false
            }
            corkExpired = false
        }
        spendAllowance(emitSegment(at: sndNxt, maxLength: length, now: now, events: &events, sink: sink))
        return true
    }

    /// Emits the data (and FIN, if it falls at the end) starting at `seq`,
    /// recording new segments on the scoreboard and arming the RTO. Returns
    /// the bytes of data sent, less than `maxLength` when options take room.
    /// With `offload`, the segment may be several (TSO): `maxLength` bytes,
    /// each `sendMSS - optionReserve` long on the wire, with a record each.
    @discardableResult
    mutating func emitSegment(at seq: SequenceNumber, maxLength: Int, offload: Bool = false, now: Instant,
                              events: inout TCPSendEvents, sink: some TCPSegmentSink) -> Int {
        let offset = seq - sendBufferSeq
        let available = max(sendBuffer.count - offset, 0)
        let perSegment = sendMSS - optionReserve
        let wanted = max(min(available, maxLength, offload && !inUrgentMode ? maxLength : perSegment), 0)
        // A segment ends where the buffer's run does (`SendBuffer.peek`).
        let (a, b) = wanted > 0 ? sendBuffer.peek(from: offset, count: wanted)
            : (UnsafeRawBufferPointer(start: nil, count: 0), UnsafeRawBufferPointer(start: nil, count: 0))
        let length = a.count + b.count
        var flags: TCPFlags = .ack
        let end = seq + length
        if let f = finSeq, end == f { flags.insert(.fin) }
        if length > 0 && length == available { flags.insert(.psh) }
        sink.emit(seq: seq, flags: flags, a, b, segmentSize: length > perSegment ? perSegment : 0,
                  firstTransmission: seq >= sndMax)
        let next = end + (flags.contains(.fin) ? 1 : 0)
        let isNew = next > sndMax
        // A segment cut short where a run ends is no small write: Nagle lets the rest follow.
        if isNew && length > 0 && length < perSegment && length == wanted { smallSegmentEnd = end }
        if seq == sndNxt { sndNxt = next }
        if isNew {
            // Every segment in flight has a record (the SYN apart); a FIN its
            // own, since SACK blocks cover data only.
            // One record per segment on the wire, so SACK, RACK and the
            // undo work per MSS when the device cut the segment (as Linux
            // keeps tcp_skb_pcount).
            var start = max(seq, sndMax)
            while end - start > perSegment {
                scoreboard.append(start: start, end: start + perSegment, now: now)
                start = start + perSegment
            }
            if flags.contains(.fin) && end > start {
                scoreboard.append(start: start, end: end, now: now)
                scoreboard.append(start: end, end: next, now: now)
            } else {
                scoreboard.append(start: start, end: next, now: now)
            }
            sndMax = next
            events.bytesSent &+= UInt64(length)
        }
        if retransmitDeadline == nil { retransmitDeadline = now + rtt.rto }
        return length
    }

    /// The connection closed or entered TIME-WAIT: the sender's timers stop.
    mutating func cancelTimers() {
        retransmitDeadline = nil
        reorderDeadline = nil
        tlp.deadline = nil
        persistDeadline = nil
    }
}
