import NetStackWire

/// Where a connection's framed segments go: the layer's path to IP, or a
/// test's outbox. The payload comes as up to two pieces of the send ring (it wraps).
protocol TCPSegmentOutput {
    /// `segmentSize`: payload bytes per frame when the segment is several
    /// (TSO); 0 otherwise. `inPlace`: the payload is data sent for the first
    /// time, which the ring keeps unchanged until acknowledged, so the device
    /// may read it there (`FrameTail`). Returns the payload bytes copied.
    @discardableResult
    func send(_ repr: TCPRepr, payload a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer, segmentSize: Int,
              inPlace: Bool) -> Int
}

/// Frames the sender's segments with the connection's header and hands them
/// on. It holds the connection unowned: it lives only within `dispatch`.
private struct HeaderFraming<Output: TCPSegmentOutput>: TCPSegmentSink {
    unowned(unsafe) let connection: TCPConnection
    let output: Output
    let mss: Int
    let now: Instant
    /// SND.UP and SND.MAX as the output pass began (`header` may not read `sender`).
    let urgent: UrgentPointing?

    func emit(seq: SequenceNumber, flags: TCPFlags, _ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer,
              segmentSize: Int, firstTransmission: Bool) {
        let repr = connection.header(seq: seq, flags: flags, payloadLength: a.count + b.count, mss: mss, now: now,
                                     urgent: urgent)
        // Copied from the send ring into the frame, unless the device reads it in place.
        let copied = output.send(repr, payload: a, b, segmentSize: segmentSize, inPlace: firstTransmission)
        if copied != 0 { connection.bytesCopiedSending &+= UInt64(copied) }
    }
}

extension TCPConnection {
    /// Sends what the connection has to send now, in order: a reset, a SYN or
    /// SYN-ACK, a fast retransmission, new data and FIN as the windows allow,
    /// a probe, or a bare ACK.
    func dispatch(now: Instant, to output: some TCPSegmentOutput) {
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        let mss = sender.sendMSS
        if sendResetNow {
            sendResetNow = false
            output.send(header(seq: sender.sndNxt, flags: [.rst, .ack], payloadLength: 0, mss: mss, now: now), payload: empty, empty, segmentSize: 0, inPlace: false)
            return
        }
        var sent = false
        switch state {
        case .closed, .listen:
            return
        case .synSent, .synReceived:
            if sender.sndNxt == iss {
                let flags: TCPFlags = state == .synSent ? [.syn] : [.syn, .ack]
                output.send(header(seq: iss, flags: flags, payloadLength: 0, mss: mss, now: now), payload: empty, empty, segmentSize: 0, inPlace: false)
                sender.synSent(now: now)
                sent = true
            }
        default:
            if sender.sndNxt == iss {
                // Closed in SYN-RECEIVED (RFC 9293 3.10.4) and the SYN-ACK timed
                // out: the retransmission from SND.UNA starts with it.
                output.send(header(seq: iss, flags: [.syn, .ack], payloadLength: 0, mss: mss, now: now), payload: empty, empty, segmentSize: 0, inPlace: false)
                sender.sndNxt = iss + 1
                sent = true
            }
            // The sender frames nothing itself; the sink must not touch `sender`.
            var events = TCPSendEvents()
            // RFC 6691: the MSS counts every option. sendMSS allows for
            // timestamps; SACK blocks riding on data take the most they may.
            sender.optionReserve = sackEnabled && receiver.hasSACKInformation ? (timestampsEnabled ? 28 : 36) : 0
            let framing = HeaderFraming(connection: self, output: output, mss: mss, now: now,
                                        urgent: sender.urgentPointing)
            if sender.transmit(now: now, mayProbe: mayProbe, events: &events, sink: framing) {
                sent = true
            }
            record(events)
        }
        if probeNow {
            probeNow = false
            // A window probe or keepalive: one old sequence number, which the
            // peer must answer with an ACK showing its window (RFC 9293 3.8.6.1, RFC 1122 4.2.3.6).
            output.send(header(seq: sender.sndUna - 1, flags: .ack, payloadLength: 0, mss: mss, now: now,
                               urgent: sender.urgentPointing),
                        payload: empty, empty, segmentSize: 0, inPlace: false)
            sent = true
        }
        let ackDue = receiver.ackNow || receiver.ackForSegments || (receiver.delayedAckDeadline.map { now >= $0 } ?? false)
        if !sent && ackDue && state != .synSent {
            // A bare ACK carries SND.MAX, not SND.NXT, so that it stays in the
            // peer's window after a timeout rewinds SND.NXT (as BSD's tcp_output).
            output.send(header(seq: sender.sndMax, flags: .ack, payloadLength: 0, mss: mss, now: now), payload: empty, empty, segmentSize: 0, inPlace: false)
        }
    }

    /// A header for a segment we send, with the options its kind carries, and
    /// the ACK and window filled in. `mss` is the sender's, for receiver SWS
    /// avoidance; this never touches `sender` (it runs inside the sender's
    /// sink), so SND.UP and SND.MAX come as `urgent`, while the sender is
    /// in urgent mode.
    func header(seq: SequenceNumber, flags: TCPFlags, payloadLength: Int, mss: Int, now: Instant,
                urgent: UrgentPointing? = nil) -> TCPRepr {
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
            window = receiver.synWindowField()
        } else {
            if timestampsEnabled { options.timestamps = (timestampNow(now), tsRecent) }
            if sackEnabled && receiver.hasSACKInformation {
                options.sackBlocks = receiver.takeSACKBlocks()
            }
            window = receiver.advertisedWindowField(mss: mss, scale: rcvScale)
        }
        var repr = TCPRepr(sourcePort: tuple.localPort, destinationPort: tuple.remotePort, seq: seq,
                           ack: flags.contains(.ack) ? receiver.rcvNxt : nil, flags: flags, window: window,
                           options: options, payloadLength: payloadLength)
        if flags.contains(.rst) && !state.isSynchronized && !flags.contains(.ack) { repr.ack = nil }
        if let urgent, !flags.contains(.syn), !flags.contains(.rst) {
            Self.point(&repr, at: urgent.up, sent: urgent.sent)
        }
        if flags.contains(.ack) { receiver.ackSent() }
        return repr
    }
}
