import NetStackWire

/// What the interface should do after a segment was processed.
enum TCPInputResult: Equatable {
    case accepted
    case dropped(TCPDropReason)
    /// Dropped, counted under the reason, and owed an ACK (RFC 9293
    /// 3.10.7.4), which the layer sends within its limits (`TCPAnswerLimits`).
    case unacceptable(TCPDropReason)
    /// Send this reset (RFC 9293 3.10.7.3 and 3.10.7.4: an ACK for something never sent).
    case reset(seq: SequenceNumber)
    /// RFC 5961: answer with a challenge ACK if the rate limit allows.
    case challengeAck
}

extension TCPConnection {
    /// Segment arrival (RFC 9293 3.10.7). `payload` is the segment's text.
    func process(_ seg: TCPRepr, payload: UnsafeRawBufferPointer, now: Instant) -> TCPInputResult {
        let result: TCPInputResult
        switch state {
        case .closed, .listen:
            return .dropped(.noConnection)
        case .synSent:
            result = processInSynSent(seg, now: now)
        default:
            // Forward progress (Linux's `dst_confirm`): SND.UNA or RCV.NXT moved.
            let una = sender.sndUna, nxt = receiver.rcvNxt
            result = processSynchronized(seg, payload: payload, now: now)
            if sender.sndUna != una || receiver.rcvNxt != nxt { lastProgress = now }
        }
        // Anything heard from the peer restarts the keepalive idle time (an
        // active open's too, from the SYN-ACK on).
        if state != .closed, let k = configuration.keepalive, state.isSynchronized {
            keepaliveDeadline = now + k.idle
            keepaliveProbesSent = 0
        }
        notifyApplication()
        return result
    }

    /// Tells the application about new data or room once the whole segment is
    /// processed, so a callback that closes sees the segment's FIN already
    /// taken (else our FIN would race it into CLOSING instead of LAST-ACK).
    private func notifyApplication() {
        if pendingWritable {
            pendingWritable = false
            onWritable?(self)
        }
        if pendingReadable {
            pendingReadable = false
            onReadable?(self)
        }
    }

    // MARK: SYN-SENT (RFC 9293 3.10.7.3)

    private func processInSynSent(_ seg: TCPRepr, now: Instant) -> TCPInputResult {
        let flags = seg.flags
        // First: an ACK must acknowledge our SYN.
        if flags.contains(.ack) {
            guard let ack = seg.ack, ack > iss, ack <= sender.sndMax else {
                return flags.contains(.rst) ? .dropped(.badAck) : .reset(seq: seg.ack ?? SequenceNumber(0))
            }
        }
        // Second: a RST is believed only with an acceptable ACK.
        if flags.contains(.rst) {
            guard flags.contains(.ack) else { return .dropped(.badReset) }
            enterClosed(error: .connectionRefused)
            return .accepted
        }
        // Fourth: the SYN. With a FIN it is no SYN-ACK to take.
        guard flags.contains(.syn) else { return .dropped(.noSyn) }
        guard !flags.contains(.fin) else { return .dropped(.synWithFin) }
        receiver.synchronize(irs: seg.seq)
        negotiate(seg.options)
        if let ack = seg.ack, flags.contains(.ack) {
            sender.synAcknowledged(ack: ack, now: now)
            // The window in a SYN is never scaled (RFC 7323 2.2).
            updateWindow(Int(seg.window), seq: seg.seq, ack: ack)
            state = .established
            receiver.ackNow = true
        } else {
            // Simultaneous open: answer with SYN-ACK (sndNxt back to ISS resends our SYN with an ACK).
            sender.sndNxt = iss
            state = .synReceived
        }
        return .accepted
    }

    /// Takes the peer's SYN options (RFC 9293 3.7.1, RFC 7323 1.3, RFC 2018 2).
    func negotiate(_ options: TCPOptions) {
        let peerMSS = Int(options.mss ?? 536)
        if configuration.windowScaling, let ws = options.windowScale {
            windowScalingEnabled = true
            sndScale = min(ws, TCPOptions.maximumWindowScale)
        } else {
            sndScale = 0
            rcvScale = 0
        }
        if configuration.timestamps, let ts = options.timestamps {
            timestampsEnabled = true
            tsRecent = ts.value
        }
        sackEnabled = configuration.sackPermitted && options.sackPermitted
        // RFC 6691: the MSS excludes options, so room for timestamps comes
        // off it. What the path takes bounds it too (a "packet too big" may
        // have come before the peer's SYN did), and so does TCP_MAXSEG (as
        // Linux's mss_clamp).
        let cap = min(peerMSS, pathMSS, configuration.maximumSegmentSize ?? .max)
        sender.sendMSS = max(64, cap - (timestampsEnabled ? 12 : 0))
        sender.congestion = CongestionController(configuration.congestionControl, mss: sender.sendMSS)
    }

    // MARK: Synchronized states (RFC 9293 3.10.7.4)

    private func processSynchronized(_ segment: TCPRepr, payload: UnsafeRawBufferPointer, now: Instant) -> TCPInputResult {
        // SYN+FIN while the connection is still opening is neither a SYN to
        // answer again nor the SYN-ACK of a simultaneous open.
        if state == .synReceived, segment.flags.contains(.syn), segment.flags.contains(.fin) {
            return .dropped(.synWithFin)
        }
        var seg = segment
        // Simultaneous open (RFC 9293 Figure 8, line 6): the peer's SYN-ACK repeats
        // the SYN we already hold. Trim it, as 3.10.7.4 allows ("trimming off any
        // portions that lie outside the window (including SYN and FIN)"), and take the ACK.
        if state == .synReceived, activeOpen, seg.flags.contains([.syn, .ack]), seg.seq == irs {
            seg.flags.remove(.syn)
            seg.seq = irs + 1
        }
        let flags = seg.flags
        // A retransmitted SYN while our SYN-ACK is unanswered: send the SYN-ACK again.
        if state == .synReceived, flags.contains(.syn), !flags.contains(.ack), seg.seq == irs {
            sender.sndNxt = iss
            return .accepted
        }

        // PAWS (RFC 7323 5.3): a timestamp older than the last one seen is an old duplicate.
        if timestampsEnabled, !flags.contains(.rst), let ts = seg.options.timestamps,
           Int32(bitPattern: ts.value &- tsRecent) < 0 {
            return .unacceptable(.paws)
        }

        // First: is the segment in the window?
        let segLength = payload.count + (flags.contains(.syn) ? 1 : 0) + (flags.contains(.fin) ? 1 : 0)
        guard receiver.isAcceptable(seq: seg.seq, length: segLength) else {
            // RFC 2883 4: text wholly below RCV.NXT is a duplicate; report it.
            if !payload.isEmpty, !flags.contains(.rst), seg.seq + payload.count <= receiver.rcvNxt {
                receiver.reportDuplicate(seg.seq, seg.seq + payload.count, sackEnabled: sackEnabled)
            }
            // RFC 9293 3.10.7.4 eighth, TIME-WAIT: a retransmitted FIN (ending
            // just before RCV.NXT) is acknowledged and restarts the 2 MSL timeout.
            if state == .timeWait, flags.contains(.fin), seg.seq + segLength == receiver.rcvNxt {
                timeWaitDeadline = now + configuration.msl + configuration.msl
            }
            // RFC 9293 3.10.7.4 first: with a zero window "special allowance should
            // be made to accept valid ACKs": a segment at RCV.NXT keeps its ACK,
            // trimmed of its text and FIN.
            if seg.seq == receiver.rcvNxt, segLength > 0, flags.contains(.ack), !flags.contains(.syn),
               receiver.rcvAdvertisedEdge - receiver.rcvNxt <= 0 {
                var trimmed = seg
                trimmed.flags.remove(.fin)
                trimmed.payloadLength = 0
                _ = processSynchronized(trimmed, payload: UnsafeRawBufferPointer(start: nil, count: 0), now: now)
            }
            // Answered with an ACK, unless it is a RST.
            return flags.contains(.rst) ? .dropped(.outOfWindow) : .unacceptable(.outOfWindow)
        }

        // RFC 7323 4.3: remember the timestamp of the segment at the left window edge.
        if timestampsEnabled, let ts = seg.options.timestamps, seg.seq <= receiver.rcvNxt {
            tsRecent = ts.value
        }

        // Second: RST. RFC 5961 3.2: only an exact match resets; in-window earns a challenge ACK.
        if flags.contains(.rst) {
            guard seg.seq == receiver.rcvNxt else { return .challengeAck }
            switch state {
            case .synReceived:
                // A passive open goes back to LISTEN: the embryonic connection simply vanishes.
                enterClosed(error: activeOpen ? .connectionRefused : nil)
            case .established, .finWait1, .finWait2, .closeWait:
                enterClosed(error: .connectionReset)
            case .closing, .lastAck:
                enterClosed(error: nil)
            case .timeWait:
                // RFC 1337: ignoring RST in TIME-WAIT defeats TIME-WAIT assassination.
                return .dropped(.resetInTimeWait)
            default:
                break
            }
            return .accepted
        }

        // Fourth: a SYN in a synchronized state (RFC 5961 4.2).
        if flags.contains(.syn) { return .challengeAck }

        // Fifth: the ACK field.
        guard flags.contains(.ack), let ack = seg.ack else { return .dropped(.noAck) }
        if state == .synReceived {
            guard sender.sndUna < ack, ack <= sender.sndMax else { return .reset(seq: ack) }
            if sender.retransmissions > 0 { sender.restartRTOAfterSynTimeout() }
            state = .established
            updateWindow(Int(seg.window) << Int(sndScale), seq: seg.seq, ack: ack)
        }
        // RFC 5961 5.2: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.NXT].
        if ack > sender.sndMax {
            return .unacceptable(.ackUnsent)
        }
        if sender.sndUna - ack > sender.maxSndWnd { return .challengeAck }

        let isDuplicate = ack == sender.sndUna && payload.isEmpty && !flags.contains(.fin)
            && Int(seg.window) << Int(sndScale) == sender.sndWnd && sender.sndMax > sender.sndUna
        processAck(seg, ack: ack, isDuplicate: isDuplicate, now: now)
        if sender.windowUpdateIsNewer(seq: seg.seq, ack: ack) {
            updateWindow(Int(seg.window) << Int(sndScale), seq: seg.seq, ack: ack)
        }

        switch state {
        case .finWait1 where sender.finAcknowledged:
            state = .finWait2
            if orphaned { finWait2Deadline = now + configuration.finWait2Timeout }
        case .closing where sender.finAcknowledged:
            enterTimeWait(now: now)
        case .lastAck where sender.finAcknowledged:
            enterClosed(error: nil)
            return .accepted
        default:
            break
        }

        // Sixth: the urgent pointer (after a FIN, none is news: RFC 9293 says ignore it).
        if flags.contains(.urg), state.acceptsText { receiveUrgentPointer(seg) }

        // Seventh: the text.
        if !payload.isEmpty {
            if state.acceptsText {
                receiveText(seq: seg.seq, payload, carriesFin: flags.contains(.fin), now: now)
            } else {
                receiver.ackNow = true
            }
        }

        // Eighth: FIN. Processed once every byte before it has arrived.
        if flags.contains(.fin) {
            let finAt = seg.seq + payload.count
            if finAt == receiver.rcvNxt {
                receiveFin(now: now)
            } else if finAt > receiver.rcvNxt, state.acceptsText {
                receiver.pendingFinSeq = finAt
            }
        }
        return .accepted
    }

    /// The ACK field (RFC 9293 3.10.7.4 fifth), handed to the sender.
    private func processAck(_ seg: TCPRepr, ack: SequenceNumber, isDuplicate: Bool, now: Instant) {
        var events = TCPSendEvents()
        let echo = timestampsEnabled ? seg.options.timestamps?.echoReply : nil
        sender.processAck(seg, ack: ack, isDuplicate: isDuplicate, sackEnabled: sackEnabled, echo: echo,
                          tsOffset: tsOffset, mayProbe: mayProbe, now: now, events: &events)
        record(events)
    }

    /// The text (RFC 9293 3.10.7.4 seventh): in order and with nothing
    /// buffered ahead of it, first offered to the application in place
    /// (`onReceive`); what it does not take goes to the receiver's ring.
    private func receiveText(seq: SequenceNumber, _ payload: UnsafeRawBufferPointer, carriesFin: Bool,
                             now: Instant) {
        if !carriesFin, let handler = receiveHandler, receiver.mayDeliverInPlace(seq: seq) {
            let taken = offer(payload, to: handler, now: now)
            // The handler may have aborted the connection.
            guard state.acceptsText, taken < payload.count else { return }
            if taken > 0 {
                receiveBuffered(seq: seq + taken, UnsafeRawBufferPointer(rebasing: payload[taken...]), now: now)
                return
            }
        }
        receiveBuffered(seq: seq, payload, now: now)
    }

    /// Hands in-order `payload` to `onReceive`; returns how much it took,
    /// which is then received.
    private func offer(_ payload: UnsafeRawBufferPointer,
                       to handler: (TCPConnection, UnsafeRawBufferPointer) -> Int, now: Instant) -> Int {
        let taken = min(max(handler(self, payload), 0), payload.count)
        guard taken > 0, state.acceptsText else { return taken }
        receiver.deliveredInPlace(taken, mss: sender.sendMSS, now: now)
        bytesReceived &+= UInt64(taken)
        bytesDeliveredInPlace &+= UInt64(taken)
        return taken
    }

    /// Text for the receive ring: in order, or waiting for a gap to fill.
    private func receiveBuffered(seq: SequenceNumber, _ payload: UnsafeRawBufferPointer, now: Instant) {
        let (ready, finInOrder) = receiver.receiveText(seq: seq, payload, mss: sender.sendMSS,
                                                       sackEnabled: sackEnabled, now: now)
        if ready > 0 { bytesReceived &+= UInt64(ready) }
        if finInOrder { receiveFin(now: now) }
        if ready > 0 { pendingReadable = true }
    }

    /// The peer's FIN is in order: no more data will come.
    private func receiveFin(now: Instant) {
        receiver.takeFin()
        switch state {
        case .synReceived, .established:
            state = .closeWait
        case .finWait1:
            if sender.finAcknowledged { enterTimeWait(now: now) } else { state = .closing }
        case .finWait2:
            enterTimeWait(now: now)
        case .timeWait:
            timeWaitDeadline = now + configuration.msl + configuration.msl
        default:
            break
        }
        pendingReadable = true
    }

    /// TIME-WAIT lasts 2 MSL (RFC 9293 3.6.1), during which only ACKs of retransmitted FINs go out.
    /// Nothing more is received, so the receive side's storage that holds no
    /// unread bytes goes now, as Linux's `tcp_time_wait` swaps the socket for
    /// a small one, not at the idle sweep (`releaseStorageIfIdle`) up to 10 s
    /// later: a server that closes first, as HTTP's do, would otherwise keep
    /// a ring page per connection of the last seconds, and its new
    /// connections take pages the sweep has released, faulting each in anew.
    /// The send ring stays: a frame queued this turn may still read from it.
    func enterTimeWait(now: Instant) {
        sender.retransmitDeadline = nil
        sender.persistDeadline = nil
        keepaliveDeadline = nil
        finWait2Deadline = nil
        timeWaitDeadline = now + configuration.msl + configuration.msl
        state = .timeWait
        _ = releaseStorageBesideSendRing()
    }
}
