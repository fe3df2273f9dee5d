import NetStackWire

/// NewReno's duplicate ACKs, for a peer without SACK (RFC 5681 3.2, RFC
/// 6582): the count towards DupThresh, and the bytes they stand for as
/// delivered (Linux's "reno SACKs"), which leave the pipe.
struct DuplicateAckCounter {
    /// Duplicate ACKs in a row.
    private(set) var count = 0
    /// Bytes the duplicate ACKs stand for as delivered.
    private(set) var deliveredBytes = 0

    /// RFC 5681 3.2's DupThresh.
    static let threshold = 3

    mutating func reset() {
        count = 0
        deliveredBytes = 0
    }

    /// An ACK of new data: the count restarts. A partial ACK in recovery
    /// (RFC 6582 3.2 step 4) takes back what it acknowledges; else all is settled.
    mutating func newDataAcknowledged(_ acked: Int, partial: Bool) {
        count = 0
        deliveredBytes = partial ? max(deliveredBytes - acked, 0) : 0
    }

    /// A duplicate ACK: credits one segment, at most `room` bytes. Returns the bytes credited.
    mutating func duplicate(mss: Int, room: Int) -> Int {
        count += 1
        let credited = min(mss, room)
        deliveredBytes += credited
        return credited
    }
}

extension TCPSender {
    /// Without SACK (RFC 6582): duplicate ACKs count towards DupThresh and each
    /// stands for one segment that left the network; a partial ACK in recovery
    /// means the next segment is lost too (3.2 step 4). Returns the bytes the
    /// duplicate ACK stands for.
    mutating func countDuplicateAcks(ack: SequenceNumber, priorUna: SequenceNumber, isDuplicate: Bool) -> Int {
        if ack > priorUna {
            let partial = recovery.lossState == .recovery && recovery.recoveryPoint.map { ack < $0 } == true
            duplicateAcks.newDataAcknowledged(ack - priorUna, partial: partial)
            if partial, !scoreboard.isEmpty { scoreboard.markLost(at: 0) }
            return 0
        }
        guard isDuplicate else { return 0 }
        // At most everything but the first segment can have arrived.
        let firstLength = scoreboard.head?.length ?? 0
        let room = max(flightSize - firstLength - duplicateAcks.deliveredBytes, 0)
        let credited = duplicateAcks.duplicate(mss: sendMSS, room: room)
        // RFC 5681 3.2 with RFC 6582 3.2 step 2: the third duplicate ACK, if it
        // covers more than `recover`, means the first segment is lost.
        if duplicateAcks.count == DuplicateAckCounter.threshold, recovery.lossState == .open,
           ack > recovery.recover, !scoreboard.isEmpty {
            scoreboard.markLost(at: 0)
        }
        return credited
    }
}
