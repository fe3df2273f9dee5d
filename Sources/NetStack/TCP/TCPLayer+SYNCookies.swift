import NetStackWire

/// SYN cookies at a listener (RFC 4987 3.6, as Linux's `cookie_v4_init_sequence`
/// and `cookie_v4_check`): the SYN-ACK sent without state, and the ACK that
/// returns one making the connection. The encoding is `SYNCookies`'.
extension TCPLayer {
    /// Answers `seg`, a SYN to `l`, with a SYN-ACK whose ISN is a cookie,
    /// keeping nothing. The SYN-ACK offers what the connection the cookie
    /// makes will use: our MSS; with timestamps, window scaling and
    /// SACK-permitted as the SYN offered them, kept in the timestamp's low
    /// bits. Without timestamps only the MSS survives to the ACK, so nothing
    /// else is offered (as Linux does).
    func sendCookieSYNAck(_ l: TCPListener, _ seg: TCPRepr, tuple: TCPFourTuple, now: Instant) {
        let config = l.configuration
        // RFC 9293 3.7.1: no MSS option means 536.
        let mssIndex = SYNCookies.mssIndex(for: seg.options.mss ?? 536)
        let cookie = synCookies.cookie(for: tuple, peerISN: seg.seq, mssIndex: mssIndex,
                                       counter: SYNCookies.counter(at: now))
        let ring = ByteRing.capacity(for: config.receiveBufferSize)
        let segmentLimit = ip.maximumSegmentLength(towards: tuple.remoteAddress)
        var options = TCPOptions(mss: UInt16(clamping: config.announcedMSS(segmentLimit: segmentLimit)))
        if config.timestamps, let ts = seg.options.timestamps {
            let peerScale = config.windowScaling ? seg.options.windowScale : nil
            let carried = SYNCookieTimestamp(windowScale: peerScale,
                                             sackPermitted: config.sackPermitted && seg.options.sackPermitted)
            let clock = TCPSender.timestamp(now, offset: TCPConnection.timestampOffset(iss: cookie))
            options.timestamps = (carried.timestamp(at: clock), ts.value)
            if peerScale != nil { options.windowScale = TCPConnection.windowScale(for: ring) }
            options.sackPermitted = carried.sackPermitted
        }
        // The window in a SYN is never scaled (RFC 7323 2.2): the ring, up to 64 KiB.
        let repr = TCPRepr(sourcePort: tuple.localPort, destinationPort: tuple.remotePort, seq: cookie,
                           ack: seg.seq + 1, flags: [.syn, .ack], window: UInt16(clamping: ring),
                           options: options, payloadLength: 0)
        l.lastCookieSent = now
        kept.synCookiesSent &+= 1
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        emit(repr, from: tuple, payload: empty, empty, settings: config.ipHeader, via: ip, now: now)
    }

    /// An ACK to `l` matching no connection: if its acknowledgment less one
    /// is a valid cookie for its sequence number less one, makes the
    /// connection (ESTABLISHED, the options decoded), hands it the segment,
    /// and returns true; also true when the cookie is good but the accept
    /// queue is full (the ACK is dropped; the peer's next segment tries
    /// again, as Linux). False when it is no cookie, to be answered as now
    /// (a RST, RFC 9293 3.10.7.2).
    ///
    /// Cookies are checked only within a cookie's lifetime of the last one
    /// `l` sent (Linux's `tcp_synq_no_recent_overflow`): while none are in
    /// use a blind attacker has nothing to guess. An ACK arriving after that,
    /// once `l` has sent cookies, is counted as failed unchecked: any cookie
    /// it could return has expired.
    func receiveCookieACK(_ l: TCPListener, _ seg: TCPRepr, payload: UnsafeRawBufferPointer, tuple: TCPFourTuple,
                          now: Instant) -> Bool {
        let config = l.configuration
        guard let ack = seg.ack, config.synCookies != .never, let sent = l.lastCookieSent else { return false }
        let carried = seg.options.timestamps.map { SYNCookieTimestamp(decoding: $0.echoReply) }
        guard now - sent <= SYNCookies.lifetime,
              let index = synCookies.check(ack - 1, for: tuple, peerISN: seg.seq - 1,
                                           counter: SYNCookies.counter(at: now)),
              Self.mayHaveOffered(carried, config) else {
            kept.synCookiesFailed &+= 1
            return false
        }
        kept.synCookiesValidated &+= 1
        guard l.canAcceptMore else {
            kept.drops.record(.acceptQueueFull)
            return true
        }
        guard memory.admitsConnection else {
            refuseForMemory(seg, tuple: tuple, now: now)
            return true
        }
        let c = makeConnection(tuple: tuple, configuration: config, activeOpen: false,
                               segmentLimit: ip.maximumSegmentLength(towards: tuple.remoteAddress), iss: ack - 1,
                               now: now)
        // Through `service`, which hands a synchronized connection to its listener.
        c.listener = l
        c.acceptCookie(seg, mss: SYNCookies.mss(at: index), options: carried)
        kept.passiveOpens &+= 1
        deliver(seg, payload: payload, to: c, tuple: tuple, now: now)
        return true
    }

    /// Whether the options a cookie ACK's timestamp echo carries (none
    /// without timestamps, when only the MSS survived) are ones this
    /// listener could have offered (Linux's `cookie_timestamp_decode`);
    /// if not, the cookie fails.
    private static func mayHaveOffered(_ carried: SYNCookieTimestamp?, _ config: TCPConfiguration) -> Bool {
        guard let carried else { return true }
        return config.timestamps && (!carried.sackPermitted || config.sackPermitted)
            && (carried.windowScale == nil || config.windowScaling)
    }
}
