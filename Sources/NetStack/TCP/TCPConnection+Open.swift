import NetStackWire

extension TCPConnection {
    /// RFC 9293 3.10.7.2, a SYN arriving in LISTEN: record the peer's initial
    /// sequence number and options, and move to SYN-RECEIVED. The SYN-ACK goes
    /// out on the next dispatch.
    func acceptSYN(_ seg: TCPRepr) {
        receiver.irs = seg.seq
        receiver.rcvNxt = seg.seq + 1
        receiver.rcvAdvertisedEdge = receiver.rcvNxt
        negotiate(seg.options)
        // The window in a SYN is never scaled (RFC 7323 2.2).
        updateWindow(Int(seg.window), seq: seg.seq, ack: iss)
        state = .synReceived
    }
}

extension TCPConnection {
    /// An ACK returning a valid SYN cookie (RFC 4987 3.6) makes the
    /// connection: the SYN's options as the cookie kept them (`mss` from its
    /// table; window scale and SACK-permitted from the echoed timestamp's
    /// low bits, `options`, when timestamps are on), then ESTABLISHED, as if
    /// the SYN-ACK had been acknowledged. The caller then processes the ACK
    /// itself as a segment of the connection, for the data it may carry. The
    /// handshake gives no RTT sample: the echoed timestamp was lowered to
    /// carry the options, and no send time was kept.
    func acceptCookie(_ ack: TCPRepr, mss: UInt16, options: SYNCookieTimestamp?) {
        var syn = TCPOptions(mss: mss)
        if let options, let ts = ack.options.timestamps {
            syn.timestamps = (ts.value, 0)
            syn.windowScale = options.windowScale
            syn.sackPermitted = options.sackPermitted
        }
        receiver.synchronize(irs: ack.seq - 1)
        negotiate(syn)
        // The right edge the cookie's SYN-ACK advertised.
        _ = receiver.synWindowField()
        sender.cookieAcknowledged()
        state = .established
        updateWindow(Int(ack.window) << Int(sndScale), seq: ack.seq, ack: iss + 1)
    }
}
