import NetStackWire

extension TCPLayer {
    /// RFC 9293 3.10.7: check the segment, find its connection, listener, or
    /// nobody (answered with RST), and let the connection process it.
    func receive(_ d: IPDatagram, now: Instant) {
        // RFC 1122 4.2.3.10, RFC 9293 3.10.7.2: nothing sent to a broadcast or
        // multicast address is answered (no RST, no SYN-ACK); nor anything
        // in such a link-layer frame (Linux takes only PACKET_HOST).
        guard d.isUnicast else { return kept.drops.record(.broadcast) }
        let segment: TCPSegment
        do { segment = try TCPSegment(validating: d.payload) } catch { return kept.drops.record(.truncated) }
        guard d.checksum == .verified || segment.checksumIsValid(source: d.source, destination: d.destination) else {
            return kept.drops.record(.badChecksum)
        }
        let repr: TCPRepr
        do { repr = try TCPRepr(parsing: segment) } catch { return kept.drops.record(.badOption) }
        kept.segmentsIn &+= 1
        // SYN and RST together: neither a SYN nor a RST to believe, in any state.
        // (Two `contains` of one flag: an array literal allocates in debug builds, per segment.)
        if repr.flags.contains(.syn), repr.flags.contains(.rst) { return kept.drops.record(.synWithReset) }
        let payload = UnsafeRawBufferPointer(segment.payload)
        let tuple = TCPFourTuple(localAddress: d.destination, localPort: repr.destinationPort,
                                 remoteAddress: d.source, remotePort: repr.sourcePort)

        var reopening: SequenceNumber?
        if let c = connection(for: tuple) {
            if !c.isReopened(by: repr) {
                // Linux's behaviour with a full accept queue: ignore the final ACK of
                // the handshake; the client's retransmission will try again.
                if c.state == .synReceived, repr.flags.contains(.ack), !repr.flags.contains(.rst),
                   let l = c.listener, !l.canAcceptMore {
                    return kept.drops.record(.acceptQueueFull)
                }
                return deliver(repr, payload: payload, to: c, tuple: tuple, now: now)
            }
            // RFC 1122 4.2.2.13, RFC 6191 (Linux's TCP_TW_SYN): a new SYN from the
            // peer ends the TIME-WAIT, and the listener takes it with an initial
            // sequence number past everything the old connection sent.
            reopening = c.sender.sndMax + 65537
            c.enterClosed(error: nil)
            retire(c)
            kept.timeWaitReopened &+= 1
        }
        if let l = listeners[repr.destinationPort]?.occupant(for: tuple.localAddress, from: tuple.remoteAddress,
                                                              port: tuple.remotePort), !l.isClosed {
            // SYN+FIN is no SYN (Linux discards it in LISTEN).
            if repr.flags.contains(.syn), repr.flags.contains(.fin) { return kept.drops.record(.synWithFin) }
            // RFC 4987 3.6: an ACK matching nothing may return a SYN cookie.
            if repr.flags.contains(.ack), !repr.flags.contains(.syn), !repr.flags.contains(.rst),
               receiveCookieACK(l, repr, payload: payload, tuple: tuple, now: now) {
                return
            }
            return listenerReceive(l, repr, tuple: tuple, iss: reopening, now: now)
        }
        closedReceive(repr, tuple: tuple, now: now)
    }

    /// Hands a segment to its connection and does what the result asks.
    @inline(__always)
    func deliver(_ repr: TCPRepr, payload: UnsafeRawBufferPointer, to c: TCPConnection,
                 tuple: TCPFourTuple, now: Instant) {
        let result = c.process(repr, payload: payload, now: now)
        // Forward progress confirms the neighbour (Linux's dst_confirm), at
        // most once per interval: a comparison per segment, a table write a second.
        if c.lastProgress == now && now - c.neighbourConfirmed >= Self.neighbourConfirmInterval {
            c.neighbourConfirmed = now
            ip.confirmReachable(c.tuple.remoteAddress, now: now)
        }
        switch result {
        case .accepted:
            // GRO's effect without merging frames: in-order segments of one
            // flow arriving in one receive batch are answered once, at the
            // batch's end (`Interface.poll` services what is queued), with
            // one ACK, one output pass and one timer update; segments
            // that need an answer at once (out of order, a FIN, a window
            // probe) still get it at once, and cover what waited.
            if c.answerMayWait {
                kept.answersCoalesced &+= 1
                c.requestService()
                return
            }
        case .dropped(let reason):
            kept.drops.record(reason)
        case .unacceptable(let reason):
            kept.drops.record(reason)
            // RFC 9293 3.10.7.4 asks for an ACK; RFC 5961 10 lets it be limited.
            if answerLimits.mayAnswer(c, bare: TCPAnswerLimits.isBare(repr, payloadCount: payload.count),
                                      now: now) {
                c.ackNow = true
                kept.unacceptableAcks &+= 1
            } else {
                kept.unacceptableAcksRateLimited &+= 1
            }
        case .reset(let seq):
            sendReset(to: tuple, seq: seq, ack: nil, now: now)
        case .challengeAck:
            // RFC 5961 7: the answer is rate limited, per connection and stack-wide.
            if answerLimits.mayAnswer(c, bare: true, now: now) {
                c.ackNow = true
                kept.challengeAcks &+= 1
            } else {
                kept.drops.record(.challengeAckRateLimited)
            }
        }
        service(c, now: now)
    }

    /// RFC 9293 3.10.7.2, LISTEN: a SYN makes a connection in SYN-RECEIVED,
    /// or, when the SYN queue is full, a SYN cookie answers it (RFC 4987
    /// 3.6); without cookies the oldest entry makes room if it is old.
    private func listenerReceive(_ l: TCPListener, _ seg: TCPRepr, tuple: TCPFourTuple, iss: SequenceNumber? = nil,
                                 now: Instant) {
        // RFC 9293 3.10.7.2: a RST to a listener is ignored.
        if seg.flags.contains(.rst) { return kept.drops.record(.noConnection) }
        if seg.flags.contains(.ack) {
            sendReset(to: tuple, seq: seg.ack ?? SequenceNumber(0), ack: nil, now: now)
            return kept.drops.record(.noConnection)
        }
        guard seg.flags.contains(.syn) else { return kept.drops.record(.noSyn) }
        // Linux's tcp_conn_request: while the accept queue is full a SYN
        // goes unanswered (cookie or not), so the client waits in SYN-SENT
        // and retries instead of finishing a handshake nobody will accept.
        guard l.canAcceptMore else { return kept.drops.record(.acceptQueueFull) }
        let mode = l.configuration.synCookies
        if mode == .always { return sendCookieSYNAck(l, seg, tuple: tuple, now: now) }
        if l.halfOpen >= l.synBacklog {
            if mode == .onOverflow { return sendCookieSYNAck(l, seg, tuple: tuple, now: now) }
            guard evictOldHalfOpen(l) else { return kept.drops.record(.synQueueFull) }
        }
        guard memory.admitsConnection else { return refuseForMemory(seg, tuple: tuple, now: now) }
        let c = makeConnection(tuple: tuple, configuration: l.configuration, activeOpen: false,
                               segmentLimit: ip.maximumSegmentLength(towards: tuple.remoteAddress), iss: iss, now: now)
        c.listener = l
        l.synQueue.append(c)
        c.acceptSYN(seg)
        kept.passiveOpens &+= 1
        service(c, now: now)
    }

    /// A new connection the memory budget has no room for is refused as a
    /// closed port refuses it (RFC 9293 3.10.7.1), so its client fails at
    /// once rather than retrying into the same shortage.
    func refuseForMemory(_ seg: TCPRepr, tuple: TCPFourTuple, now: Instant) {
        kept.refusedForMemory &+= 1
        sendReset(answering: seg, to: tuple, now: now)
    }

    /// Makes room in `l`'s full SYN queue, when cookies are off, by dropping
    /// its oldest entry if that one is no longer young: its SYN-ACK went
    /// unanswered for a whole RTO, so its peer is likely spoofed or gone,
    /// where the new SYN is as likely real (RFC 4987 3.4's "random drop",
    /// narrowed to the oldest). Nothing is sent to the dropped peer. With
    /// cookies a full queue answers with them instead and old entries leave
    /// by their shortened retries (Linux's `reqsk_timer_handler`): an
    /// evicted entry's peer whose ACK was merely late would be reset, where
    /// a cookie's peer completes with any later segment. Returns whether
    /// there is room now.
    private func evictOldHalfOpen(_ l: TCPListener) -> Bool {
        guard let oldest = l.synQueue.oldest, !oldest.synQueueLink.young else { return false }
        dropHalfOpen(oldest)
        kept.synQueueEvicted &+= 1
        return true
    }

    /// RFC 9293 3.10.7.1, CLOSED: everything but a RST is answered with a RST.
    private func closedReceive(_ seg: TCPRepr, tuple: TCPFourTuple, now: Instant) {
        defer { kept.drops.record(.noConnection) }
        guard !seg.flags.contains(.rst) else { return }
        sendReset(answering: seg, to: tuple, now: now)
    }
}
