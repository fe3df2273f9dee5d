import NetStackWire

/// What the interface should do after a segment was processed.
enum TCPInputResult: Equatable {
    case accepted
    case dropped(DropReason)
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
            return .dropped(.tcpNoConnection)
        case .synSent:
            result = processInSynSent(seg, now: now)
        default:
            result = processSynchronized(seg, payload: payload, now: now)
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
            guard let ack = seg.ack, ack > iss, ack <= sndMax else {
                return flags.contains(.rst) ? .dropped(.tcpBadAck) : .reset(seq: seg.ack ?? SequenceNumber(0))
            }
        }
        // Second: a RST is believed only with an acceptable ACK.
        if flags.contains(.rst) {
            guard flags.contains(.ack) else { return .dropped(.tcpBadReset) }
            enterClosed(error: .connectionRefused)
            return .accepted
        }
        // Fourth: the SYN.
        guard flags.contains(.syn) else { return .dropped(.tcpNoSyn) }
        irs = seg.seq
        rcvNxt = irs + 1
        rcvAdvertisedEdge = rcvNxt
        negotiate(seg.options)
        if let ack = seg.ack, flags.contains(.ack) {
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
            // The window in a SYN is never scaled (RFC 7323 2.2).
            updateWindow(Int(seg.window), seq: seg.seq, ack: ack)
            state = .established
            ackNow = true
        } else {
            // Simultaneous open: answer with SYN-ACK (sndNxt back to ISS resends our SYN with an ACK).
            sndNxt = iss
            state = .synReceived
        }
        return .accepted
    }

    /// Takes the peer's SYN options (RFC 9293 3.7.1, RFC 7323 1.3, RFC 2018 2).
    func negotiate(_ options: TCPOptions) {
        let peerMSS = Int(options.mss ?? 536)
        if configuration.windowScaling, let ws = options.windowScale {
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
        // RFC 6691: the MSS excludes options, so room for timestamps comes off it.
        sendMSS = max(64, min(peerMSS, localMSS) - (timestampsEnabled ? 12 : 0))
        congestion = CongestionController(configuration.congestionControl, mss: sendMSS)
    }

    // MARK: Synchronized states (RFC 9293 3.10.7.4)

    private func processSynchronized(_ segment: TCPRepr, payload: UnsafeRawBufferPointer, now: Instant) -> TCPInputResult {
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
            sndNxt = iss
            return .accepted
        }

        // PAWS (RFC 7323 5.3): a timestamp older than the last one seen is an old duplicate.
        if timestampsEnabled, !flags.contains(.rst), let ts = seg.options.timestamps,
           Int32(bitPattern: ts.value &- tsRecent) < 0 {
            ackNow = true
            return .dropped(.tcpPAWS)
        }

        // First: is the segment in the window?
        let segLength = payload.count + (flags.contains(.syn) ? 1 : 0) + (flags.contains(.fin) ? 1 : 0)
        guard isAcceptable(seq: seg.seq, length: segLength) else {
            if !flags.contains(.rst) { ackNow = true }
            // RFC 2883 4: text wholly below RCV.NXT is a duplicate; report it.
            if !payload.isEmpty, !flags.contains(.rst), seg.seq + payload.count <= rcvNxt {
                reportDuplicate(seg.seq, seg.seq + payload.count)
            }
            // RFC 9293 3.10.7.4 eighth, TIME-WAIT: a retransmitted FIN (ending
            // just before RCV.NXT) is acknowledged and restarts the 2 MSL timeout.
            if state == .timeWait, flags.contains(.fin), seg.seq + segLength == rcvNxt {
                timeWaitDeadline = now + configuration.msl + configuration.msl
            }
            // RFC 9293 3.10.7.4 first: with a zero window "special allowance should
            // be made to accept valid ACKs": a segment at RCV.NXT keeps its ACK,
            // trimmed of its text and FIN.
            if seg.seq == rcvNxt, segLength > 0, flags.contains(.ack), !flags.contains(.syn),
               rcvAdvertisedEdge - rcvNxt <= 0 {
                var trimmed = seg
                trimmed.flags.remove(.fin)
                trimmed.payloadLength = 0
                _ = processSynchronized(trimmed, payload: UnsafeRawBufferPointer(start: nil, count: 0), now: now)
                ackNow = true
            }
            return .dropped(.tcpOutOfWindow)
        }

        // RFC 7323 4.3: remember the timestamp of the segment at the left window edge.
        if timestampsEnabled, let ts = seg.options.timestamps, seg.seq <= rcvNxt {
            tsRecent = ts.value
        }

        // Second: RST. RFC 5961 3.2: only an exact match resets; in-window earns a challenge ACK.
        if flags.contains(.rst) {
            guard seg.seq == rcvNxt else { return .challengeAck }
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
                return .dropped(.tcpResetInTimeWait)
            default:
                break
            }
            return .accepted
        }

        // Fourth: a SYN in a synchronized state (RFC 5961 4.2).
        if flags.contains(.syn) { return .challengeAck }

        // Fifth: the ACK field.
        guard flags.contains(.ack), let ack = seg.ack else { return .dropped(.tcpNoAck) }
        if state == .synReceived {
            guard sndUna < ack, ack <= sndMax else { return .reset(seq: ack) }
            if retransmissions > 0 { restartRTOAfterSynTimeout() }
            state = .established
            updateWindow(Int(seg.window) << Int(sndScale), seq: seg.seq, ack: ack)
        }
        // RFC 5961 5.2: acceptable ACKs lie in [SND.UNA - MAX.SND.WND, SND.NXT].
        if ack > sndMax {
            ackNow = true
            return .dropped(.tcpAckUnsent)
        }
        if sndUna - ack > maxSndWnd { return .challengeAck }

        let isDuplicate = ack == sndUna && payload.isEmpty && !flags.contains(.fin)
            && Int(seg.window) << Int(sndScale) == sndWnd && sndMax > sndUna
        processAck(seg, ack: ack, isDuplicate: isDuplicate, now: now)
        if sndWl1 < seg.seq || (sndWl1 == seg.seq && sndWl2 <= ack) {
            updateWindow(Int(seg.window) << Int(sndScale), seq: seg.seq, ack: ack)
        }

        switch state {
        case .finWait1 where finAcknowledged:
            state = .finWait2
            if orphaned { finWait2Deadline = now + configuration.finWait2Timeout }
        case .closing where finAcknowledged:
            enterTimeWait(now: now)
        case .lastAck where finAcknowledged:
            enterClosed(error: nil)
            return .accepted
        default:
            break
        }

        // Seventh: the text (the sixth, URG, is not supported).
        if !payload.isEmpty {
            if state.acceptsText {
                receiveText(seq: seg.seq, payload, now: now)
            } else {
                ackNow = true
            }
        }

        // Eighth: FIN. Processed once every byte before it has arrived.
        if flags.contains(.fin) {
            let finAt = seg.seq + payload.count
            if finAt == rcvNxt {
                receiveFin(now: now)
            } else if finAt > rcvNxt, state.acceptsText {
                pendingFinSeq = finAt
            }
        }
        return .accepted
    }

    /// RFC 9293 3.10.7.4's four cases of segment acceptability. RCV.WND is the
    /// window last advertised (RFC 5961 3.2's "current receive window"), which
    /// may be less than the free space (a SYN's window is unscaled; receiver SWS
    /// avoidance holds the right edge).
    func isAcceptable(seq: SequenceNumber, length: Int) -> Bool {
        let window = max(rcvAdvertisedEdge - rcvNxt, 0)
        if length == 0 {
            return window == 0 ? seq == rcvNxt : seq.isInWindow(start: rcvNxt, size: window)
        }
        guard window > 0 else { return false }
        return seq.isInWindow(start: rcvNxt, size: window)
            || (seq + (length - 1)).isInWindow(start: rcvNxt, size: window)
    }

    var finAcknowledged: Bool {
        guard let f = finSeq else { return false }
        return sndUna > f
    }

    /// RFC 9293 3.10.7.4 "SND.WND <- SEG.WND", with the WL1/WL2 guard against old segments.
    func updateWindow(_ window: Int, seq: SequenceNumber, ack: SequenceNumber) {
        sndWnd = window
        sndWl1 = seq
        sndWl2 = ack
        maxSndWnd = max(maxSndWnd, window)
        if window > 0 {
            persistDeadline = nil
            persistBackoff = 0
        }
    }

    /// Places text in the receive ring at its offset; in-order bytes become
    /// readable at once, later ones wait in the reassembly queue.
    private func receiveText(seq: SequenceNumber, _ payload: UnsafeRawBufferPointer, now: Instant) {
        var data = payload
        var offset = seq - rcvNxt
        if offset < 0 {
            // RFC 2883 4: the part below RCV.NXT arrived before; report it.
            reportDuplicate(seq, seq + min(-offset, data.count))
            guard -offset < data.count else { return }
            data = UnsafeRawBufferPointer(rebasing: data[(-offset)...])
            offset = 0
        }
        let hadGap = !reassembly.isEmpty
        if offset > 0, reassembly.contains(offset: offset, length: data.count) {
            reportDuplicate(rcvNxt + offset, rcvNxt + offset + data.count)
        }
        let written = receiveBuffer.write(data, at: offset)
        guard written > 0, reassembly.add(offset: offset, length: written) else {
            ackNow = true
            return
        }
        let ready = reassembly.takeFront()
        if ready > 0 {
            receiveBuffer.commit(ready)
            rcvNxt = rcvNxt + ready
            bytesReceived &+= UInt64(ready)
        }
        if offset > 0 || hadGap {
            // RFC 5681 4.2: out-of-order data, or data filling a gap, is acknowledged at once.
            ackNow = true
        } else {
            // RFC 9293 3.8.6.3 / RFC 5681 4.2: ACK at least every second full-sized segment.
            unackedBytes += ready
            // A full-sized segment is the MSS both sides agreed, less options (sendMSS).
            if unackedBytes >= 2 * sendMSS {
                ackNow = true
            } else if delayedAckDeadline == nil {
                delayedAckDeadline = now + configuration.delayedAckTimeout
            }
        }
        if let f = pendingFinSeq, f == rcvNxt { receiveFin(now: now) }
        if ready > 0 { pendingReadable = true }
    }

    /// Remembers a duplicate for the next ACK's D-SACK block (RFC 2883), if SACK was agreed.
    private func reportDuplicate(_ left: SequenceNumber, _ right: SequenceNumber) {
        guard sackEnabled, left < right else { return }
        duplicateToReport = (left, right)
        ackNow = true
    }

    /// The peer's FIN is in order: no more data will come.
    private func receiveFin(now: Instant) {
        rcvNxt = rcvNxt + 1
        pendingFinSeq = nil
        receivedFin = true
        ackNow = true
        switch state {
        case .synReceived, .established:
            state = .closeWait
        case .finWait1:
            if finAcknowledged { enterTimeWait(now: now) } else { state = .closing }
        case .finWait2:
            enterTimeWait(now: now)
        case .timeWait:
            timeWaitDeadline = now + configuration.msl + configuration.msl
        default:
            break
        }
        pendingReadable = true
    }

    /// RFC 6298 5.7: the SYN (or SYN-ACK) timed out and gave no RTT sample, so
    /// RTO restarts at 3 seconds once the handshake is done.
    func restartRTOAfterSynTimeout() {
        guard !rtt.hasSample, rtt.rto < .seconds(3) else { return }
        rtt = RTTEstimator(initialRTO: .seconds(3), minimumRTO: configuration.minimumRTO,
                           maximumRTO: configuration.maximumRTO)
    }

    /// TIME-WAIT lasts 2 MSL (RFC 9293 3.6.1), during which only ACKs of retransmitted FINs go out.
    func enterTimeWait(now: Instant) {
        retransmitDeadline = nil
        persistDeadline = nil
        keepaliveDeadline = nil
        finWait2Deadline = nil
        timeWaitDeadline = now + configuration.msl + configuration.msl
        state = .timeWait
    }

    /// Our timestamp clock: milliseconds, offset per connection (RFC 7323 5.4).
    func timestampNow(_ now: Instant) -> UInt32 {
        UInt32(truncatingIfNeeded: now.nanoseconds / 1_000_000) &+ tsOffset
    }
}
