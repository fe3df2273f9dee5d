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
