import NetStackWire

/// ICMP errors about segments we sent (RFC 1122 4.2.3.9, RFC 5927; Linux's
/// `tcp_v4_err`, `tcp_v6_err`), whatever the family: IP hands them over as
/// an `IPErrorReport`. Path MTU discovery (RFC 1191, RFC 8201): a "packet
/// too big" that names a segment in flight lowers IP's estimate of the path
/// and every connection's MSS towards it, and what no longer fits is resent.
extension TCPLayer {
    /// An ICMP error quoting a segment we sent. Believed only if it names a
    /// connection in the table by its four-tuple (quoted source: us) and a
    /// sequence number in flight, SND.UNA <= SEG.SEQ < SND.MAX (RFC 5927
    /// 4.1, as Linux checks); otherwise counted and ignored: nothing
    /// changes, not even IP's path MTU table. Then:
    /// - packet too big: IP lowers its estimate (`IPOutput.lowerPathMTU`),
    ///   which resizes every connection to the destination
    ///   (`pathMTULowered`), and this one resends at once what was sent in
    ///   frames larger than the path takes (Linux's `tcp_simple_retransmit`);
    /// - a hard error (protocol or port unreachable) quoting our SYN in
    ///   SYN-SENT: the connection is refused, as a RST would (Linux aborts);
    /// - anything else: recorded as the connection's soft error (RFC 1122
    ///   4.2.3.9: a connection must not be aborted for it).
    func receiveError(_ report: IPErrorReport, now: Instant) {
        let q = report.quotedTransport
        // IP guarantees the 8 bytes RFC 792 quotes: ports and sequence number.
        guard q.count >= 8, ip != nil else { return }
        let sourcePort = UInt16(q[0]) << 8 | UInt16(q[1])
        let destinationPort = UInt16(q[2]) << 8 | UInt16(q[3])
        let seq = SequenceNumber(UInt32(q[4]) << 24 | UInt32(q[5]) << 16 | UInt32(q[6]) << 8 | UInt32(q[7]))
        let tuple = TCPFourTuple(localAddress: report.source, localPort: sourcePort,
                                 remoteAddress: report.destination, remotePort: destinationPort)
        guard let c = connection(for: tuple) else {
            kept.icmpNoConnection &+= 1
            return
        }
        guard seq >= c.sender.sndUna && seq < c.sender.sndMax else {
            kept.icmpOutOfWindow &+= 1
            return
        }
        switch report.kind {
        case .packetTooBig(let mtu):
            kept.icmpPacketTooBig &+= 1
            _ = ip.lowerPathMTU(mtu, towards: tuple.remoteAddress, now: now)
            // Lowered now or by an earlier report: this connection fits the estimate.
            if c.pathMTUDropped(segmentLimit: ip.maximumSegmentLength(towards: tuple.remoteAddress)) {
                kept.pathMTUMSSLowered &+= 1
            }
            let resent = c.sender.resendOversized()
            guard resent > 0 else { return }
            kept.pathMTUResends &+= UInt64(resent)
            service(c, now: now)
        default:
            if c.state == .synSent && report.isHardError {
                kept.icmpAborts &+= 1
                c.enterClosed(error: .connectionRefused)
                service(c, now: now)
            } else {
                kept.icmpSoftErrors &+= 1
                c.softError = report.kind
            }
        }
    }

    /// IP's estimate of the path to `destination` dropped: segments carry at
    /// most `segmentLimit` bytes of TCP there. Every connection to it takes
    /// the smaller MSS before it sends again (Linux's `tcp_sync_mss`, which
    /// each socket runs when it sees its route's MTU change), so nothing it
    /// builds exceeds what IP sends. A walk over the table, once per drop:
    /// an estimate only falls, to a floor, and only on a validated report.
    func pathMTULowered(towards destination: IPAddress, segmentLimit: Int) {
        for c in connections.values where c.tuple.remoteAddress == destination {
            if c.pathMTUDropped(segmentLimit: segmentLimit) { kept.pathMTUMSSLowered &+= 1 }
        }
    }
}

extension TCPConnection {
    /// The path to the peer takes segments of at most `segmentLimit` bytes
    /// (TCP header included). If that is less than the connection allowed
    /// for, the MSS falls to it (RFC 1191 6.4, Linux's `tcp_sync_mss`: the
    /// path MTU less the IP header, the TCP header and the options every
    /// segment carries), and the scoreboard's longer records are cut to it.
    /// Returns whether the connection's limit fell.
    @discardableResult
    func pathMTUDropped(segmentLimit: Int) -> Bool {
        let mss = segmentLimit - TCPSegment.minimumHeaderLength
        guard mss < pathMSS else { return false }
        pathMSS = mss
        // Before the handshake's options are known this is the announced
        // MSS's bound, and `negotiate` takes `pathMSS` into account.
        let limit = max(64, mss - (timestampsEnabled ? 12 : 0))
        if limit < sender.sendMSS { sender.pathMTUDropped(mss: limit) }
        return true
    }
}

extension TCPSender {
    /// The send MSS falls to `mss` with the path's MTU: TSO's segments
    /// follow it (`sendNewSegment` cuts by the MSS), and the segments in
    /// flight are cut to it on the scoreboard, marked as sent too large.
    mutating func pathMTUDropped(mss: Int) {
        sendMSS = mss
        scoreboard.split(longerThan: mss)
    }

    /// A validated "packet too big" (Linux's `tcp_simple_retransmit`): what
    /// was sent in frames larger than the path takes did not arrive, so it
    /// is marked lost and resent at once, cut to the MSS, by the next output
    /// pass. This is no congestion signal (RFC 1191 6.4: the data did not
    /// meet a full queue, the unit changed): cwnd and ssthresh stay. From
    /// the open state the sender goes into the loss state a timeout uses,
    /// without its window cut (Linux's CA_Loss), until everything sent so far
    /// is acknowledged, so the resends do not read as losses that start
    /// fast recovery; in recovery it stays, to the same end point. Returns
    /// the segments marked.
    mutating func resendOversized() -> Int {
        let marked = scoreboard.markSentOversizedLost()
        guard marked > 0 else { return 0 }
        if recovery.lossState == .open {
            recovery.lossState = .timeout
            recovery.recover = sndMax - 1
            duplicateAcks.reset()
            tlp.inFlight = nil
            tlp.deadline = nil
            tlp.due = false
        }
        recovery.recoveryPoint = sndMax
        return marked
    }
}
