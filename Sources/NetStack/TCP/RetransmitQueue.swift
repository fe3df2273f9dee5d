import DequeModule
import NetStackWire

/// One transmitted segment that is not yet cumulatively acknowledged.
struct TransmitRecord {
    /// The segment's sequence range; a FIN counts as its last octet.
    var start: SequenceNumber
    var end: SequenceNumber
    /// When it was last (re)transmitted, for RACK (RFC 8985 6.1).
    var sentAt: Instant
    /// The order of that transmission among all of the connection's: segments
    /// sent in the same loop turn share `sentAt`, and RACK must still tell
    /// which went first (a retransmission is "sent after" the originals of
    /// higher sequence numbers that preceded it).
    var order: UInt64
    var marks: Marks

    var length: Int { end - start }

    struct Marks: OptionSet {
        let rawValue: UInt8
        /// The peer SACKed it (RFC 2018).
        static let sacked = Marks(rawValue: 1 << 0)
        /// Loss detection judged it lost; it is out of the pipe until retransmitted.
        static let lost = Marks(rawValue: 1 << 1)
        /// Retransmitted since it was last marked lost: back in the pipe (RFC 6675 SetPipe (b)).
        static let retransmitted = Marks(rawValue: 1 << 2)
        /// Retransmitted at least once: an ACK for it is ambiguous (Karn, RFC 8985 6.2 step 2).
        static let everRetransmitted = Marks(rawValue: 1 << 3)
        /// Last sent in a frame larger than the path takes since its MTU
        /// dropped: cut from a longer record (`split(longerThan:)`), not sent
        /// again since. A "packet too big" makes it lost (`markSentOversizedLost`).
        static let sentOversized = Marks(rawValue: 1 << 4)
    }
}

/// The sender's scoreboard (RFC 6675 3): every segment in flight with what is
/// known of it (SACKed, lost, retransmitted), in sequence order.
///
/// It keeps the three sums the pipe needs (RFC 6675 4's SetPipe, counted as
/// Linux counts `packets_out - sacked_out - lost_out + retrans_out`) so the
/// pipe costs nothing per ACK. Storage is a deque that grows with the
/// flight up to `capacity` (so allocates only while a connection reaches its
/// working size); a full queue stops new transmissions rather than growing
/// past it.
struct RetransmitQueue {
    private(set) var records: Deque<TransmitRecord>
    let capacity: Int
    /// Bytes in records marked SACKed.
    private(set) var sackedBytes = 0
    /// Bytes in records marked lost and not SACKed.
    private(set) var lostBytes = 0
    /// Bytes in lost records retransmitted since, and not SACKed.
    private(set) var retransmittedBytes = 0
    /// The highest SACKed sequence number (RFC 6675's HighSACK end; RACK.fack).
    private(set) var highestSACKed: SequenceNumber?
    /// Numbers transmissions (`TransmitRecord.order`).
    private var transmissions: UInt64 = 0

    init(capacity: Int) {
        self.capacity = capacity
        // Grown on demand up to `capacity`: a connection that never has
        // much in flight never holds a large scoreboard.
        records = Deque()
    }

    var isEmpty: Bool { records.isEmpty }

    /// Gives the records' storage back while none is in flight (an idle connection).
    mutating func releaseStorageIfEmpty() {
        if records.isEmpty { records = Deque() }
    }
    /// The first record (at SND.UNA). Indexing, not `Collection.first`: the
    /// generic default is unspecialised in debug builds and allocates.
    var head: TransmitRecord? { records.isEmpty ? nil : records[0] }
    var isFull: Bool { records.count >= capacity }
    /// How many more records fit.
    var room: Int { capacity - records.count }
    var count: Int { records.count }
    /// How many records are SACKed (RACK compares it with DupThresh).
    private(set) var sackedSegments = 0

    /// RFC 6675 4 SetPipe: bytes the network is believed to hold, given
    /// `outstanding` = SND.MAX - SND.UNA.
    func pipe(outstanding: Int) -> Int {
        max(outstanding - sackedBytes - lostBytes + retransmittedBytes, 0)
    }

    /// A new segment went out.
    mutating func append(start: SequenceNumber, end: SequenceNumber, now: Instant) {
        transmissions &+= 1
        records.append(TransmitRecord(start: start, end: end, sentAt: now, order: transmissions, marks: []))
    }

    /// A record was sent again (a retransmission on loss or a probe).
    mutating func retransmitted(at index: Int, now: Instant) {
        var r = records[index]
        if r.marks.contains(.lost) && !r.marks.contains(.retransmitted) && !r.marks.contains(.sacked) {
            retransmittedBytes += r.length
        }
        r.marks.insert([.retransmitted, .everRetransmitted])
        r.marks.remove(.sentOversized)
        r.sentAt = now
        transmissions &+= 1
        r.order = transmissions
        records[index] = r
    }

    /// Removes what the cumulative ACK covers, calling `delivered` for each
    /// record that this ACK newly delivered (that is, was not SACKed before),
    /// and returns those records' bytes. A record the ACK covers only in part
    /// is trimmed, and its acknowledged part counts.
    @discardableResult
    mutating func acknowledge(upTo ack: SequenceNumber, delivered: (TransmitRecord) -> Void) -> Int {
        var bytes = 0
        while let first = head, first.start < ack {
            if !first.marks.contains(.sacked) {
                bytes += min(first.end, ack) - first.start
                delivered(first)
            }
            removeFromSums(first)
            if first.end <= ack {
                records.removeFirst()
            } else {
                var r = first
                r.start = ack
                addToSums(r)
                records[0] = r
                break
            }
        }
        if let h = highestSACKed, h <= ack { highestSACKed = nil }
        return bytes
    }

    /// Marks the records a SACK block covers entirely (RFC 6675 4 Update), calling
    /// `delivered` for each newly SACKed one. Returns the bytes newly SACKed.
    /// A block's partial cover of a record is ignored: the record is not
    /// delivered in full, and retransmitting all of it is safe.
    @discardableResult
    mutating func sack(_ left: SequenceNumber, _ right: SequenceNumber, delivered: (TransmitRecord) -> Void) -> Int {
        var newly = 0
        var i = firstIndex(endingAfter: left)
        while i < records.count, records[i].start < right {
            let r = records[i]
            if r.start >= left, r.end <= right, !r.marks.contains(.sacked) {
                removeFromSums(r)
                records[i].marks.insert(.sacked)
                addToSums(records[i])
                newly += r.length
                delivered(r)
                if highestSACKed.map({ r.end > $0 }) ?? true { highestSACKed = r.end }
            }
            i += 1
        }
        return newly
    }

    /// Index of the first record whose end lies after `seq` (binary search: records are in order).
    private func firstIndex(endingAfter seq: SequenceNumber) -> Int {
        var low = 0, high = records.count
        while low < high {
            let mid = (low + high) / 2
            if records[mid].end <= seq { low = mid + 1 } else { high = mid }
        }
        return low
    }

    /// Marks one record lost (it leaves the pipe and is due for retransmission).
    /// A retransmission judged lost again becomes due again (RFC 8985 6.2 step 5).
    mutating func markLost(at index: Int) {
        let r = records[index]
        guard !r.marks.contains(.sacked) else { return }
        removeFromSums(r)
        records[index].marks.insert(.lost)
        records[index].marks.remove(.retransmitted)
        addToSums(records[index])
    }

    func isLostAndDue(_ index: Int) -> Bool {
        let m = records[index].marks
        return m.contains(.lost) && !m.contains(.sacked) && !m.contains(.retransmitted)
    }

    /// RFC 6675 4 NextSeg (1): the first record lost and not yet
    /// retransmitted, from index `start` on.
    func nextLost(from start: Int = 0) -> Int? {
        guard lostBytes > retransmittedBytes else { return nil }
        var i = start
        while i < records.count {
            if isLostAndDue(i) { return i }
            i += 1
        }
        return nil
    }

    /// RFC 6675 4 IsLost for every record: lost when DupThresh discontiguous
    /// SACKed segments, or more than (DupThresh - 1) * SMSS SACKed bytes, lie
    /// above it. Walks from the top, counting what is SACKed above each record.
    mutating func markLostByDupThresh(mss: Int, dupThresh: Int = 3) {
        guard sackedBytes > 0 else { return }
        var sackedAbove = 0
        var sackedSegmentsAbove = 0
        var i = records.count - 1
        while i >= 0 {
            let r = records[i]
            if r.marks.contains(.sacked) {
                sackedAbove += r.length
                sackedSegmentsAbove += 1
            } else if !r.marks.contains(.lost),
                      sackedSegmentsAbove >= dupThresh || sackedAbove > (dupThresh - 1) * mss {
                markLost(at: i)
            }
            i -= 1
        }
    }

    /// The path MTU dropped and segments are now at most `maxLength` long:
    /// every record longer, not SACKed, is cut into records of at most that
    /// many bytes (Linux's `tcp_fragment`), so the scoreboard keeps one record
    /// per frame the path takes and every resend fits. The pieces keep the
    /// record's marks and send time, and are marked `sentOversized`: their
    /// frame was larger than the path now takes. The sums count bytes and are
    /// unchanged. Rebuilds the queue in one pass (a PMTU drop is rare; the
    /// queue may then hold more records than `capacity`, which only holds
    /// back new data until ACKs make room). Returns whether it cut any.
    @discardableResult
    mutating func split(longerThan maxLength: Int) -> Bool {
        precondition(maxLength > 0)
        var cut = false
        var i = 0
        while i < records.count {
            if records[i].length > maxLength && !records[i].marks.contains(.sacked) {
                cut = true
                break
            }
            i += 1
        }
        guard cut else { return false }
        var out = Deque<TransmitRecord>()
        out.reserveCapacity(records.count + records.count / 2)
        for r in records {
            guard r.length > maxLength, !r.marks.contains(.sacked) else {
                out.append(r)
                continue
            }
            var piece = r
            piece.marks.insert(.sentOversized)
            var start = r.start
            while start < r.end {
                piece.start = start
                piece.end = start + min(maxLength, r.end - start)
                out.append(piece)
                start = piece.end
            }
        }
        records = out
        return true
    }

    /// A "packet too big" about the path: the records last sent in frames
    /// larger than it takes (`sentOversized`) did not arrive. Marks them
    /// lost; returns how many.
    mutating func markSentOversizedLost() -> Int {
        var marked = 0
        for i in records.indices where records[i].marks.contains(.sentOversized) && !isLostAndDue(i) {
            guard !records[i].marks.contains(.sacked) else { continue }
            markLost(at: i)
            marked += 1
        }
        return marked
    }

    /// After a retransmission timeout every record not SACKed is lost
    /// (RFC 6675 5.1, RFC 5681 3.1); SACK marks survive, as Linux keeps them,
    /// unless the receiver reneged (`forgetSACKs`).
    mutating func markAllLost() {
        for i in records.indices { markLost(at: i) }
    }

    /// The receiver discarded data it had SACKed (RFC 2018 8 allows it): the
    /// marks no longer describe its queue, so they go (Linux's SACK reneging).
    mutating func forgetSACKs() {
        for i in records.indices where records[i].marks.contains(.sacked) {
            removeFromSums(records[i])
            records[i].marks.remove(.sacked)
            addToSums(records[i])
        }
        highestSACKed = nil
    }

    /// Calls `body` with each record's index, for loss detection that walks
    /// (RACK); `body` may mark records lost.
    mutating func forEachUnsacked(_ body: (inout RetransmitQueue, Int) -> Void) {
        var i = 0
        while i < records.count {
            if !records[i].marks.contains(.sacked) { body(&self, i) }
            i += 1
        }
    }

    /// The last record not SACKed: what a tail loss probe resends (RFC 8985 7.3).
    var lastUnsacked: Int? { lastUnsacked(before: records.count) }

    /// The last record not SACKed below index `end`.
    func lastUnsacked(before end: Int) -> Int? {
        var i = min(end, records.count) - 1
        while i >= 0 {
            if !records[i].marks.contains(.sacked) { return i }
            i -= 1
        }
        return nil
    }

    mutating func removeAll() {
        records.removeAll(keepingCapacity: true)
        sackedBytes = 0
        sackedSegments = 0
        lostBytes = 0
        retransmittedBytes = 0
        highestSACKed = nil
    }

    private mutating func removeFromSums(_ r: TransmitRecord) {
        if r.marks.contains(.sacked) {
            sackedBytes -= r.length
            sackedSegments -= 1
        } else if r.marks.contains(.lost) {
            lostBytes -= r.length
            if r.marks.contains(.retransmitted) { retransmittedBytes -= r.length }
        }
    }

    private mutating func addToSums(_ r: TransmitRecord) {
        if r.marks.contains(.sacked) {
            sackedBytes += r.length
            sackedSegments += 1
        } else if r.marks.contains(.lost) {
            lostBytes += r.length
            if r.marks.contains(.retransmitted) { retransmittedBytes += r.length }
        }
    }
}
