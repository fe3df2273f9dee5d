import NetStackWire

/// Urgent data (RFC 9293 3.8.5, read as RFC 6093 advises and as Linux does).
///
/// Sending: the application marks what it wrote so far as urgent; until the
/// peer acknowledges it (urgent mode), every segment before SND.UP carries
/// URG and the pointer, one past the last urgent byte (RFC 6093 3: BSD's
/// and Linux's meaning, not RFC 1122's), and the data goes at once, in
/// segments of its own size (no Nagle, no cork, no TSO).
///
/// Receiving: the stack only notes where the peer's last urgent byte lies
/// (`urgentByte`, one before the pointer) and tells the application, whose
/// bytes stay in the stream in order: taking the byte out of band
/// (MSG_OOB), or leaving it inline (SO_OOBINLINE), is the reader's choice,
/// as in Linux's tcp_recvmsg.
/// What a sent segment's urgent pointer is made from while the sender is in
/// urgent mode (`TCPSender.urgentPointing`): SND.UP, and SND.MAX.
struct UrgentPointing {
    let up: SequenceNumber
    let sent: SequenceNumber
}

extension TCPConnection {
    /// The sequence number of the peer's last urgent byte, if it ever sent one.
    public var urgentByte: SequenceNumber? { receiver.urgentByte }
    /// Where RCV.NXT lies in the stream (bytes received in order, modulo 2^32).
    public var receivedStreamIndex: UInt32 { UInt32(truncatingIfNeeded: receiver.rcvNxt - (receiver.irs + 1)) }
    /// The peer's last urgent mark: how many came, and where its byte lies
    /// in the stream (bytes before it, modulo 2^32).
    public var urgentMark: (count: UInt32, streamIndex: UInt32)? {
        receiver.urgentByte.map { (receiver.urgentMarks, UInt32(truncatingIfNeeded: $0 - (receiver.irs + 1))) }
    }

    /// Marks the bytes written so far, but the last `excluding`, as urgent
    /// data: SND.UP goes to just past them (Linux's tcp_mark_urg at a send
    /// with MSG_OOB). A mark behind the current one, or over nothing, is ignored.
    public func markUrgent(excluding: Int = 0) {
        guard state != .closed, excluding >= 0, excluding < sender.sendBuffer.count else { return }
        let up = sender.sendBufferSeq + (sender.sendBuffer.count - excluding)
        if let old = sender.sndUp, up <= old, old > sender.sndUna { return }
        sender.sndUp = up
        requestService()
    }

    /// Step six of RFC 9293 3.10.7.4: an URG segment in ESTABLISHED or
    /// FIN-WAIT moves the receive urgent pointer forward, and the
    /// application hears of it (`onUrgent`, then `onReadable`), before the
    /// segment's text: a reader must know where to stop before it can see
    /// the urgent byte. As Linux's tcp_check_urg: the
    /// pointer names the byte after the urgent data (a pointer of 0, the
    /// segment's first); one at data already received is stale (a
    /// retransmission), and one not past the last mark is no news.
    func receiveUrgentPointer(_ seg: TCPRepr) {
        let pointer = Int(seg.urgentPointer)
        let byte = seg.seq + (pointer == 0 ? 0 : pointer - 1)
        guard byte >= receiver.rcvNxt else { return }
        if let old = receiver.urgentByte, byte <= old { return }
        receiver.urgentByte = byte
        receiver.urgentMarks &+= 1
        pendingReadable = true
        onUrgent?(self)
    }

    /// Puts SND.UP `urgent` into `repr` if the segment lies before it, as
    /// Linux's tcp_transmit_skb: the offset from the segment's sequence
    /// number; 0xFFFF while it lies farther than the field reaches, if that
    /// points past everything sent (`sent`, SND.MAX), so never at a byte the
    /// peer may already hold; else no URG (RFC 6093 4 on the 16-bit field).
    static func point(_ repr: inout TCPRepr, at urgent: SequenceNumber, sent: SequenceNumber) {
        guard urgent > repr.seq else { return }
        let offset = urgent - repr.seq
        if offset <= 0xFFFF {
            repr.urgentPointer = UInt16(offset)
        } else if repr.seq + 0xFFFF > sent {
            repr.urgentPointer = 0xFFFF
        } else {
            return
        }
        repr.flags.insert(.urg)
    }
}
