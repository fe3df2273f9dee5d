import NetStackWire

extension TCPConnection {
    /// Emits what the connection has to send now, in order: a reset, a SYN or
    /// SYN-ACK, a fast retransmission, new data and FIN as the windows allow,
    /// a probe, or a bare ACK. `emit` gets the header and the payload as up to
    /// two pieces of the send ring (it wraps).
    func dispatch(now: Instant, emit: (TCPRepr, UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) {
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        if sendResetNow {
            sendResetNow = false
            emit(header(seq: sndNxt, flags: [.rst, .ack], payloadLength: 0, now: now), empty, empty)
            return
        }
        var sent = false
        switch state {
        case .closed, .listen:
            return
        case .synSent, .synReceived:
            if sndNxt == iss {
                let flags: TCPFlags = state == .synSent ? [.syn] : [.syn, .ack]
                emit(header(seq: iss, flags: flags, payloadLength: 0, now: now), empty, empty)
                sndNxt = iss + 1
                if sndMax < sndNxt { sndMax = sndNxt }
                if retransmissions == 0 && rttProbe == nil { rttProbe = (iss, now) }
                if retransmitDeadline == nil { retransmitDeadline = now + rtt.rto }
                sent = true
            }
        default:
            if sndNxt == iss {
                // Closed in SYN-RECEIVED (RFC 9293 3.10.4) and the SYN-ACK timed
                // out: the retransmission from SND.UNA starts with it.
                emit(header(seq: iss, flags: [.syn, .ack], payloadLength: 0, now: now), empty, empty)
                sndNxt = iss + 1
                sent = true
            }
            if lossProbeDue {
                lossProbeDue = false
                if sendLossProbe(now: now, emit: emit) { sent = true }
            }
            if retransmitLost(now: now, emit: emit) {
                sent = true
                // Recovery's last resends may be all that is left to draw an ACK.
                armLossProbe(now: now)
            }
            var sentNew = false
            while sendNewSegment(now: now, emit: emit) { sentNew = true }
            if sentNew {
                sent = true
                // RFC 8985 7.2: the probe timer restarts whenever new data goes
                // out, so a probe never chases a segment sent just before it.
                lossProbeDeadline = nil
                armLossProbe(now: now)
            }
            sendSmallSegment = false
            armPersistIfStalled(now: now)
        }
        if probeNow {
            probeNow = false
            // A window probe or keepalive: one old sequence number, which the
            // peer must answer with an ACK showing its window (RFC 9293 3.8.6.1, RFC 1122 4.2.3.6).
            emit(header(seq: sndUna - 1, flags: .ack, payloadLength: 0, now: now), empty, empty)
            sent = true
        }
        let ackDue = ackNow || (delayedAckDeadline.map { now >= $0 } ?? false)
        if !sent && ackDue && state != .synSent {
            // A bare ACK carries SND.MAX, not SND.NXT: after a timeout rewinds
            // SND.NXT, a lower number would fall left of the peer's window and
            // the ACK would be dropped as unacceptable, stalling both ends when
            // both are retransmitting (BSD's tcp_output does the same).
            emit(header(seq: sndMax, flags: .ack, payloadLength: 0, now: now), empty, empty)
        }
    }

    /// Whether the last small (less than one MSS) data segment sent is still
    /// unacknowledged, Minshall's test (Linux's tcp_minshall_check).
    var smallSegmentUnacknowledged: Bool {
        guard let end = smallSegmentEnd else { return false }
        return end > sndUna && end <= sndNxt
    }

    /// Sends the next new segment if the windows, Nagle and sender SWS
    /// avoidance allow it (RFC 9293 3.7.4 and 3.8.6.2.1). Returns true if it sent.
    private func sendNewSegment(now: Instant, emit: (TCPRepr, UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) -> Bool {
        let offset = sndNxt - sendBufferSeq
        // Past the end means the FIN is already out; a full scoreboard waits for ACKs.
        guard offset >= 0, offset <= sendBuffer.count, !scoreboard.isFull else { return false }
        let unsent = sendBuffer.count - offset
        let inFlight = sndNxt - sndUna
        // The peer's window bounds the sequence space; congestion control the pipe.
        let usable = max(min(sndWnd - inFlight, congestionAllowance), 0)
        let length = min(unsent, sendMSS, usable)
        if length < sendMSS {
            if length < unsent {
                // The window, not the data, limits this segment. Sender SWS
                // avoidance: wait until at least half the largest window the
                // peer offered can go at once.
                guard length > 0, length >= maxSndWnd / 2 || sendSmallSegment else { return false }
            } else if length == 0 {
                // Nothing left but, perhaps, the FIN.
                let finUnsent = finQueued && sndNxt == sendBufferSeq + sendBuffer.count
                guard finUnsent else { return false }
            } else if !finQueued && !configuration.noDelay && inFlight > 0 && smallSegmentUnacknowledged {
                // Nagle (RFC 9293 3.7.4) in Minshall's variant, as Linux's
                // tcp_nagle_check: a small segment waits to be coalesced only
                // while an earlier small one is unacknowledged. The last part
                // of a transfer then goes at once instead of waiting out the
                // (delayed) ACK of the full segment before it, alone in flight,
                // which a loss turned into a 200 ms wait (RFC 8985 7.2's
                // WCDelAckT). A closing connection flushes.
                return false
            }
        }
        spendAllowance(emitSegment(at: sndNxt, maxLength: length, now: now, emit: emit))
        return true
    }

    /// Emits the data (and FIN, if it falls at the end) starting at `seq`.
    /// Returns the bytes of data sent: fewer than `maxLength` when SACK
    /// blocks ride on the segment, since the MSS counts every option (RFC 6691).
    @discardableResult
    func emitSegment(at seq: SequenceNumber, maxLength: Int, now: Instant,
                     emit: (TCPRepr, UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> Void) -> Int {
        let offset = seq - sendBufferSeq
        let available = max(sendBuffer.count - offset, 0)
        var length = max(min(available, maxLength), 0)
        var repr = header(seq: seq, flags: .ack, payloadLength: length, now: now)
        // The segment fits what the peer and our MTU take: sendMSS already
        // allows for timestamps; anything more comes off the data.
        let room = sendMSS + TCPSegment.minimumHeaderLength + (timestampsEnabled ? 12 : 0) - repr.headerLength
        if length > room { length = max(room, 0) }
        repr.payloadLength = length
        var flags: TCPFlags = .ack
        let end = seq + length
        if let f = finSeq, end == f { flags.insert(.fin) }
        if length > 0 && length == available { flags.insert(.psh) }
        repr.flags = flags
        let (a, b) = length > 0 ? sendBuffer.peek(from: offset, count: length)
            : (UnsafeRawBufferPointer(start: nil, count: 0), UnsafeRawBufferPointer(start: nil, count: 0))
        emit(repr, a, b)
        let next = end + (flags.contains(.fin) ? 1 : 0)
        let isNew = next > sndMax
        if isNew && length > 0 && length < sendMSS { smallSegmentEnd = end }
        if seq == sndNxt { sndNxt = next }
        if isNew {
            // The scoreboard holds every segment in flight (the SYN apart).
            // A FIN gets its own record: SACK blocks cover data only, so the
            // data before it can be SACKed while the FIN is still due.
            let start = max(seq, sndMax)
            if flags.contains(.fin) && end > start {
                scoreboard.append(start: start, end: end, now: now)
                scoreboard.append(start: end, end: next, now: now)
            } else {
                scoreboard.append(start: start, end: next, now: now)
            }
            sndMax = next
            bytesSent &+= UInt64(length)
        }
        if retransmitDeadline == nil { retransmitDeadline = now + rtt.rto }
        return length
    }

    /// With data waiting and nothing in flight, only the window holds the data
    /// back: a zero window needs probes (RFC 9293 3.8.6.1), one too small for
    /// sender SWS avoidance the override timeout (3.8.6.2.1). Otherwise no ACK
    /// would ever come to move things on if a window update is lost.
    private func armPersistIfStalled(now: Instant) {
        let unsent = sendBuffer.count - (sndNxt - sendBufferSeq)
        if unsent > 0 && sndNxt == sndUna && persistDeadline == nil {
            persistDeadline = now + persistInterval
        }
    }

    var persistInterval: Duration {
        let base = rtt.rto.nanoseconds
        let backedOff = base << min(persistBackoff, 16)
        return .nanoseconds(min(backedOff, configuration.maximumRTO.nanoseconds))
    }

    /// A header for a segment we send, with the options its kind carries, and the ACK and window filled in.
    func header(seq: SequenceNumber, flags: TCPFlags, payloadLength: Int, now: Instant) -> TCPRepr {
        var options = TCPOptions()
        var window: UInt16
        if flags.contains(.syn) {
            // Options go on the SYN only if offered to us, when answering (RFC 7323 1.3, RFC 2018 2).
            let answering = flags.contains(.ack)
            options.mss = UInt16(clamping: localMSS)
            if configuration.windowScaling && (!answering || sndScale > 0 || rcvScale > 0) {
                options.windowScale = rcvScale
            }
            options.sackPermitted = configuration.sackPermitted && (!answering || sackEnabled)
            if configuration.timestamps && (!answering || timestampsEnabled) {
                options.timestamps = (timestampNow(now), answering ? tsRecent : 0)
            }
            window = UInt16(clamping: receiveWindow)
            rcvAdvertisedEdge = rcvNxt + Int(window)
        } else {
            if timestampsEnabled { options.timestamps = (timestampNow(now), tsRecent) }
            if sackEnabled && (!reassembly.isEmpty || duplicateToReport != nil) {
                options.sackBlocks = sackBlocks()
                duplicateToReport = nil
            }
            window = advertisedWindowField()
        }
        var repr = TCPRepr(sourcePort: tuple.localPort, destinationPort: tuple.remotePort, seq: seq,
                           ack: flags.contains(.ack) ? rcvNxt : nil, flags: flags, window: window,
                           options: options, payloadLength: payloadLength)
        if flags.contains(.rst) && !state.isSynchronized && !flags.contains(.ack) { repr.ack = nil }
        if flags.contains(.ack) {
            ackNow = false
            delayedAckDeadline = nil
            unackedBytes = 0
        }
        return repr
    }

    /// RFC 2018 4: SACK blocks describing the out-of-order queue, the block
    /// holding the most recently received segment first, then the others from
    /// the left. A duplicate to report goes before them all, followed by the
    /// block that holds it, if any (RFC 2883 4). The option emitter keeps as
    /// many as fit beside timestamps.
    private func sackBlocks() -> TCPSACKBlocks {
        var blocks = TCPSACKBlocks()
        var containing: (start: Int, end: Int)?
        if let d = duplicateToReport {
            blocks.append(d)
            let offset = d.left - rcvNxt
            for r in reassembly.ranges where r.start <= offset && d.right - rcvNxt <= r.end {
                containing = r
                blocks.append((rcvNxt + r.start, rcvNxt + r.end))
            }
        }
        let recent = reassembly.mostRecent
        if let r = recent, r.start != containing?.start, !blocks.isFull {
            blocks.append((rcvNxt + r.start, rcvNxt + r.end))
        }
        for i in 0..<reassembly.rangeCount where !blocks.isFull {
            let r = reassembly.ranges[i]
            if let m = recent, m.start == r.start { continue }
            if let c = containing, c.start == r.start { continue }
            blocks.append((rcvNxt + r.start, rcvNxt + r.end))
        }
        return blocks
    }

    /// The window field for a non-SYN segment: our free space, scaled, with
    /// receiver SWS avoidance (RFC 9293 3.8.6.2.2): the right edge only moves
    /// when it can move by min(buffer/2, Eff.snd.MSS), and never moves left.
    private func advertisedWindowField() -> UInt16 {
        let free = receiveWindow
        let edge = rcvNxt + free
        var window: Int
        if edge - rcvAdvertisedEdge >= min(receiveBuffer.capacity / 2, sendMSS) || rcvAdvertisedEdge < rcvNxt {
            window = free
        } else {
            window = max(rcvAdvertisedEdge - rcvNxt, 0)
        }
        let field = min(window >> Int(rcvScale), 0xffff)
        let advertisedEdge = rcvNxt + (field << Int(rcvScale))
        if advertisedEdge > rcvAdvertisedEdge { rcvAdvertisedEdge = advertisedEdge }
        return UInt16(field)
    }
}
