import NetStackWire

/// The receiving half of a connection (RFC 9293 3.3.1's receive sequence
/// space): the receive ring, out-of-order reassembly, the advertised window
/// and when to acknowledge. A struct held inline by `TCPConnection`.
struct TCPReceiver {
    // MARK: Receive sequence space
    var irs = SequenceNumber(0)
    var rcvNxt = SequenceNumber(0)
    /// The right edge we last advertised; never moves left (RFC 9293 3.8.6.2.2).
    var rcvAdvertisedEdge = SequenceNumber(0)

    // MARK: Buffers
    let receiveBuffer: ByteRing
    var reassembly = Assembler()
    /// A FIN that arrived ahead of missing data, processed once the gap fills.
    var pendingFinSeq: SequenceNumber?
    /// Payload bytes copied into the receive ring (the first copy on receive).
    var bytesCopied: UInt64 = 0
    /// The peer's FIN was received: no more data will come.
    var receivedFin = false
    /// The peer's last urgent byte (RFC 9293 3.8.5), and how many times its
    /// urgent pointer advanced (`TCPConnection+Urgent`).
    var urgentByte: SequenceNumber?
    var urgentMarks: UInt32 = 0

    // MARK: Acknowledgment
    /// An ACK must go out now (out-of-order data, a window update, a probe answer).
    var ackNow = false
    /// Two full-sized segments of in-order data are unacknowledged (RFC 5681
    /// 4.2): an ACK is due, but it may wait until the rest of the receive
    /// batch is processed and then cover it too (`mayCoalesceAnswer`).
    var ackForSegments = false
    /// Bytes received since the last ACK we sent, for "ACK every second full segment".
    var unackedBytes = 0
    var delayedAckDeadline: Instant?
    let delayedAckTimeout: Duration
    /// A duplicate segment to report in the next ACK's first SACK block (RFC 2883 4).
    var duplicateToReport: (left: SequenceNumber, right: SequenceNumber)?

    init(configuration: TCPConfiguration, budget: MemoryBudget? = nil) {
        receiveBuffer = ByteRing(capacity: configuration.receiveBufferSize, budget: budget,
                                 prepaid: MemoryBudget.prepaidRing)
        delayedAckTimeout = configuration.delayedAckTimeout
    }

    /// The peer's SYN sets the receive sequence space (RFC 9293 3.10.7.3).
    mutating func synchronize(irs: SequenceNumber) {
        self.irs = irs
        rcvNxt = irs + 1
        rcvAdvertisedEdge = rcvNxt
    }

    // MARK: Window

    /// The window we may advertise: the receive ring's free space.
    var receiveWindow: Int { receiveBuffer.freeSpace }

    /// RFC 9293 3.10.7.4's four cases of segment acceptability, against the
    /// window last advertised (RFC 5961 3.2's "current receive window").
    func isAcceptable(seq: SequenceNumber, length: Int) -> Bool {
        let window = max(rcvAdvertisedEdge - rcvNxt, 0)
        if length == 0 {
            return window == 0 ? seq == rcvNxt : seq.isInWindow(start: rcvNxt, size: window)
        }
        guard window > 0 else { return false }
        return seq.isInWindow(start: rcvNxt, size: window)
            || (seq + (length - 1)).isInWindow(start: rcvNxt, size: window)
    }

    /// After the application reads: receiver SWS avoidance (RFC 9293
    /// 3.8.6.2.2, growth by min(buffer/2, Eff.snd.MSS)); the update goes at
    /// once only when the window left has fallen to half the ring or less and
    /// would at least double (Linux's tcp_cleanup_rbuf), else with the next ACK.
    mutating func windowMayHaveOpened(mss: Int) {
        let current = max(rcvAdvertisedEdge - rcvNxt, 0)
        let newEdge = rcvNxt + receiveWindow
        let growth = newEdge - rcvAdvertisedEdge
        guard growth >= min(receiveBuffer.capacity / 2, mss) else { return }
        if 2 * current <= receiveBuffer.capacity && receiveWindow >= 2 * current {
            ackNow = true
        }
    }

    /// The window field for a non-SYN segment: our free space, scaled, with
    /// receiver SWS avoidance (RFC 9293 3.8.6.2.2): the right edge only moves
    /// when it can move by min(buffer/2, Eff.snd.MSS), and never moves left.
    mutating func advertisedWindowField(mss: Int, scale: UInt8) -> UInt16 {
        let free = receiveWindow
        let edge = rcvNxt + free
        var window: Int
        if edge - rcvAdvertisedEdge >= min(receiveBuffer.capacity / 2, mss) || rcvAdvertisedEdge < rcvNxt {
            window = free
        } else {
            window = max(rcvAdvertisedEdge - rcvNxt, 0)
        }
        let field = min(window >> Int(scale), 0xffff)
        let advertisedEdge = rcvNxt + (field << Int(scale))
        if advertisedEdge > rcvAdvertisedEdge { rcvAdvertisedEdge = advertisedEdge }
        return UInt16(field)
    }

    /// A SYN's window field: unscaled (RFC 7323 2.2).
    mutating func synWindowField() -> UInt16 {
        let window = UInt16(clamping: receiveWindow)
        rcvAdvertisedEdge = rcvNxt + Int(window)
        return window
    }

    // MARK: Text and FIN

    /// Places text in the receive ring at its offset; in-order bytes become
    /// readable at once, later ones wait in the reassembly queue. `mss` is a
    /// full-sized segment. Returns the bytes made readable and whether a
    /// pending FIN is now in order.
    mutating func receiveText(seq: SequenceNumber, _ payload: UnsafeRawBufferPointer, mss: Int, sackEnabled: Bool,
                              now: Instant) -> (ready: Int, finInOrder: Bool) {
        var data = payload
        var offset = seq - rcvNxt
        if offset < 0 {
            // RFC 2883 4: the part below RCV.NXT arrived before; report it.
            reportDuplicate(seq, seq + min(-offset, data.count), sackEnabled: sackEnabled)
            guard -offset < data.count else { return (0, false) }
            data = UnsafeRawBufferPointer(rebasing: data[(-offset)...])
            offset = 0
        }
        let hadGap = !reassembly.isEmpty
        if offset > 0, reassembly.contains(offset: offset, length: data.count) {
            reportDuplicate(rcvNxt + offset, rcvNxt + offset + data.count, sackEnabled: sackEnabled)
        }
        let written = receiveBuffer.write(data, at: offset)
        if written > 0 { bytesCopied &+= UInt64(written) }
        guard written > 0, reassembly.add(offset: offset, length: written) else {
            ackNow = true
            return (0, false)
        }
        let ready = reassembly.takeFront()
        if ready > 0 {
            receiveBuffer.commit(ready)
            rcvNxt = rcvNxt + ready
        }
        if offset > 0 || hadGap {
            // RFC 5681 4.2: out-of-order data, or data filling a gap, is acknowledged at once.
            ackNow = true
        } else {
            acknowledgeInOrder(ready, mss: mss, now: now)
        }
        let finInOrder = pendingFinSeq.map { $0 == rcvNxt } ?? false
        return (ready, finInOrder)
    }

    /// Whether in-order text arriving now may go to the application in
    /// place: nothing waits in the ring or the reassembly queue, and no FIN
    /// is pending, so these bytes are the next the application would read.
    func mayDeliverInPlace(seq: SequenceNumber) -> Bool {
        seq == rcvNxt && receiveBuffer.count == 0 && reassembly.isEmpty && pendingFinSeq == nil
    }

    /// The application took `n` in-order bytes straight from the segment
    /// (`TCPConnection.onReceive`): they are received without touching the
    /// ring, whose free space, the window, stays as it was.
    mutating func deliveredInPlace(_ n: Int, mss: Int, now: Instant) {
        rcvNxt = rcvNxt + n
        acknowledgeInOrder(n, mss: mss, now: now)
    }

    /// RFC 9293 3.8.6.3 / RFC 5681 4.2: in-order data is acknowledged at
    /// least every second full-sized segment, else within the delayed-ACK time.
    private mutating func acknowledgeInOrder(_ n: Int, mss: Int, now: Instant) {
        unackedBytes += n
        if unackedBytes >= 2 * mss {
            ackForSegments = true
        } else if delayedAckDeadline == nil {
            delayedAckDeadline = now + delayedAckTimeout
        }
    }

    /// Remembers a duplicate for the next ACK's D-SACK block (RFC 2883), if SACK was agreed.
    mutating func reportDuplicate(_ left: SequenceNumber, _ right: SequenceNumber, sackEnabled: Bool) {
        guard sackEnabled, left < right else { return }
        duplicateToReport = (left, right)
        ackNow = true
    }

    /// The peer's FIN is in order (RFC 9293 3.10.7.4 eighth): it takes one sequence number.
    mutating func takeFin() {
        rcvNxt = rcvNxt + 1
        pendingFinSeq = nil
        receivedFin = true
        ackNow = true
    }

    // MARK: Acknowledgment

    /// An ACK went out: nothing is owed until more arrives.
    mutating func ackSent() {
        ackNow = false
        ackForSegments = false
        delayedAckDeadline = nil
        unackedBytes = 0
    }

    /// Whether the ACK owed may wait for the end of the receive batch: nothing
    /// asks for an immediate one, and it would cover less than a 64 KiB
    /// super-segment, the most Linux's GRO merges into one.
    var mayCoalesceAck: Bool { !ackNow && unackedBytes < 65_536 }

    /// The delayed-ACK timer fired (RFC 9293 3.8.6.3).
    mutating func delayedAckTimerFired() {
        ackNow = true
        delayedAckDeadline = nil
    }

    /// Whether the next ACK carries SACK blocks (RFC 2018 4, RFC 2883 4).
    var hasSACKInformation: Bool { !reassembly.isEmpty || duplicateToReport != nil }

    /// RFC 2018 4: SACK blocks describing the out-of-order queue, the block
    /// holding the most recently received segment first, then the others from
    /// the left; a duplicate to report goes before them all, followed by the
    /// block that holds it (RFC 2883 4). Clears the duplicate.
    mutating func takeSACKBlocks() -> TCPSACKBlocks {
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
        duplicateToReport = nil
        return blocks
    }
}
