import Testing
@testable import NetStack
import NetStackWire

/// The sender's scoreboard alone (RFC 6675 3 and 4), fed crafted sequences:
/// which records a SACK block marks, the three sums and the pipe (SetPipe)
/// after each step, IsLost, NextSeg, the cumulative ACK and the timeout's
/// marking. Segments are 1000 bytes and start just below 2^32, so the
/// sequence space wraps inside every queue.
@Suite struct RetransmitQueueTests {
    static let size = 1000
    static let base = SequenceNumber(0xffff_fc00)
    let t0 = Instant(nanoseconds: 1_000_000_000)

    /// The start of segment `i` (and the end of segment `i - 1`).
    func seg(_ i: Int, size: Int = size) -> SequenceNumber { Self.base + i * size }

    /// A queue of `count` segments of `size` bytes, all sent at `t0`.
    func queue(_ count: Int, size: Int = size, capacity: Int = 64) -> RetransmitQueue {
        var q = RetransmitQueue(capacity: capacity)
        for i in 0..<count { q.append(start: seg(i, size: size), end: seg(i + 1, size: size), now: t0) }
        return q
    }

    /// SetPipe's input: SND.MAX - SND.UNA, here the span of the queue.
    func outstanding(_ q: RetransmitQueue) -> Int {
        guard let first = q.head, let last = q.records.last else { return 0 }
        return last.end - first.start
    }

    func pipe(_ q: RetransmitQueue) -> Int { q.pipe(outstanding: outstanding(q)) }

    /// Indices of the records carrying `mark`.
    func marked(_ q: RetransmitQueue, _ mark: TransmitRecord.Marks) -> [Int] {
        q.records.indices.filter { q.records[$0].marks.contains(mark) }
    }

    // MARK: SACK marking (RFC 6675 4 Update)

    @Test func aBlockMarksOnlyTheRecordsItCoversWhole() {
        var q = queue(10)
        var delivered: [SequenceNumber] = []
        // From the middle of segment 2 to the end of segment 4: segment 2 is
        // covered in part only, so only 3 and 4 are known to have arrived.
        let newly = q.sack(seg(2) + 500, seg(5)) { delivered.append($0.start) }
        #expect(newly == 2000)
        #expect(delivered == [seg(3), seg(4)])
        #expect(marked(q, .sacked) == [3, 4])
        // A block ending one byte into segment 8 marks 7, not 8.
        #expect(q.sack(seg(7), seg(8) + 1) { _ in } == 1000)
        #expect(marked(q, .sacked) == [3, 4, 7])
        // Part of a segment alone marks nothing.
        #expect(q.sack(seg(8) + 1, seg(9)) { _ in } == 0)
        #expect(marked(q, .sacked) == [3, 4, 7])
        #expect(q.sackedBytes == 3000)
        #expect(q.sackedSegments == 3)
        #expect(q.highestSACKed == seg(8))
    }

    @Test func sackingWhatIsAlreadySackedDeliversNothing() {
        var q = queue(6)
        #expect(q.sack(seg(2), seg(4)) { _ in } == 2000)
        var delivered: [SequenceNumber] = []
        // The receiver repeats its blocks (RFC 2018 4), grown by segment 4.
        let newly = q.sack(seg(2), seg(5)) { delivered.append($0.start) }
        #expect(newly == 1000)
        #expect(delivered == [seg(4)])
        #expect(q.sackedBytes == 3000)
        #expect(q.sackedSegments == 3)
    }

    // MARK: Sums and SetPipe (RFC 6675 4)

    /// SetPipe counts each octet not SACKed once if it is not lost, and once
    /// more if it was retransmitted: pipe = outstanding - SACKed - lost +
    /// retransmitted-since-lost. Checked after every step of one episode.
    @Test func sumsAndPipeFollowEachStep() {
        var q = queue(10)
        #expect(pipe(q) == 10000)

        // Segments 1-3 and 6-8 arrive; 0, 4, 5 and 9 not (yet).
        q.sack(seg(1), seg(4)) { _ in }
        q.sack(seg(6), seg(9)) { _ in }
        #expect(q.sackedBytes == 6000)
        #expect(q.lostBytes == 0)
        #expect(pipe(q) == 4000)

        // IsLost: 0, 4 and 5 have three SACKed segments above them; 9 has none.
        q.markLostByDupThresh(mss: Self.size)
        #expect(marked(q, .lost) == [0, 4, 5])
        #expect(q.lostBytes == 3000)
        #expect(pipe(q) == 1000)

        // Retransmitting 4 puts it back in the pipe (SetPipe (b)).
        q.retransmitted(at: 4, now: t0)
        #expect(q.retransmittedBytes == 1000)
        #expect(pipe(q) == 2000)
        // Retransmitting it again before it is judged lost again changes nothing.
        q.retransmitted(at: 4, now: t0)
        #expect(q.retransmittedBytes == 1000)

        // The retransmission of 4 is SACKed: it leaves the lost and
        // retransmitted sums for the SACKed one.
        q.sack(seg(4), seg(5)) { _ in }
        #expect(q.sackedBytes == 7000)
        #expect(q.lostBytes == 2000)
        #expect(q.retransmittedBytes == 0)
        #expect(pipe(q) == 1000)

        // The cumulative ACK reaches segment 4: of 0-3 only 0 is newly delivered.
        var delivered: [SequenceNumber] = []
        let bytes = q.acknowledge(upTo: seg(4)) { delivered.append($0.start) }
        #expect(bytes == 1000)
        #expect(delivered == [seg(0)])
        #expect(q.count == 6)
        #expect(outstanding(q) == 6000)
        #expect(q.sackedBytes == 4000)
        #expect(q.sackedSegments == 4)
        #expect(q.lostBytes == 1000)
        #expect(pipe(q) == 1000)

        // Everything is acknowledged.
        #expect(q.acknowledge(upTo: seg(10)) { _ in } == 2000)
        #expect(q.isEmpty)
        #expect(q.sackedBytes == 0 && q.lostBytes == 0 && q.retransmittedBytes == 0 && q.sackedSegments == 0)
        #expect(q.highestSACKed == nil)
    }

    // MARK: IsLost (RFC 6675 4)

    @Test func threeDiscontiguousSackedSegmentsMarkWhatLiesBelow() {
        // 100-byte segments: the byte rule (> 2 * 1000 SACKed) cannot fire.
        var q = queue(8, size: 100)
        for i in [2, 4, 6] { q.sack(seg(i, size: 100), seg(i + 1, size: 100)) { _ in } }
        q.markLostByDupThresh(mss: Self.size)
        // Three SACKed segments lie above 0 and 1; only two above 3, one above 5.
        #expect(marked(q, .lost) == [0, 1])
        #expect(q.lostBytes == 200)
    }

    @Test func twoSackedSegmentsMarkNothingByCount() {
        var q = queue(8, size: 100)
        for i in [3, 6] { q.sack(seg(i, size: 100), seg(i + 1, size: 100)) { _ in } }
        q.markLostByDupThresh(mss: Self.size)
        #expect(marked(q, .lost).isEmpty)
        #expect(q.lostBytes == 0)
    }

    @Test func moreThanTwoSegmentsWorthOfSackedBytesMarkWhatLiesBelow() {
        // Two SACKed segments of 1000 bytes: 2000 bytes.
        var q = queue(4)
        q.sack(seg(2), seg(4)) { _ in }
        // With SMSS = 1000, 2000 is not more than (DupThresh - 1) * SMSS.
        q.markLostByDupThresh(mss: 1000)
        #expect(marked(q, .lost).isEmpty)
        // With SMSS = 999 it is, and the two segments below are lost.
        q.markLostByDupThresh(mss: 999)
        #expect(marked(q, .lost) == [0, 1])
        #expect(q.lostBytes == 2000)
    }

    @Test func dupThreshDoesNotMarkARetransmissionAgain() {
        var q = queue(5)
        q.sack(seg(1), seg(4)) { _ in }
        q.markLostByDupThresh(mss: Self.size)
        q.retransmitted(at: 0, now: t0)
        #expect(q.retransmittedBytes == 1000)
        // More SACKs above: RFC 6675 has no way to tell a retransmission was
        // lost, so segment 0 stays retransmitted (in the pipe), not due again.
        q.sack(seg(4), seg(5)) { _ in }
        q.markLostByDupThresh(mss: Self.size)
        #expect(q.retransmittedBytes == 1000)
        #expect(q.nextLost() == nil)
    }

    // MARK: NextSeg (RFC 6675 4 rule 1)

    @Test func nextLostWalksTheLostRecordsInOrder() {
        var q = queue(8)
        for i in [6, 1, 3] { q.markLost(at: i) }
        #expect(q.nextLost() == 1)
        q.retransmitted(at: 1, now: t0)
        #expect(q.nextLost() == 3)
        q.retransmitted(at: 3, now: t0)
        #expect(q.nextLost() == 6)
        q.retransmitted(at: 6, now: t0)
        #expect(q.nextLost() == nil)
        #expect(q.lostBytes == 3000)
        #expect(q.retransmittedBytes == 3000)
        #expect(pipe(q) == 8000)
        // RACK judged the retransmission of 3 lost too (RFC 8985 6.2 step 5):
        // it is due again, and out of the pipe.
        q.markLost(at: 3)
        #expect(q.nextLost() == 3)
        #expect(q.retransmittedBytes == 2000)
        #expect(pipe(q) == 7000)
    }

    @Test func aSackedRecordIsNeverLost() {
        var q = queue(4)
        q.sack(seg(2), seg(3)) { _ in }
        q.markLost(at: 2)
        #expect(marked(q, .lost).isEmpty)
        #expect(q.lostBytes == 0)
        #expect(q.nextLost() == nil)
        #expect(q.lastUnsacked == 3)
        q.sack(seg(3), seg(4)) { _ in }
        #expect(q.lastUnsacked == 1)
    }

    // MARK: The cumulative ACK

    @Test func aPartialAckTrimsTheFirstRecord() {
        var q = queue(5)
        q.markLost(at: 2)
        #expect(q.lostBytes == 1000)
        var delivered: [SequenceNumber] = []
        // Up to 300 bytes into segment 2.
        let bytes = q.acknowledge(upTo: seg(2) + 300) { delivered.append($0.start) }
        #expect(bytes == 2300)
        #expect(delivered == [seg(0), seg(1), seg(2)])
        #expect(q.count == 3)
        #expect(q.head?.start == seg(2) + 300)
        #expect(q.head?.end == seg(3))
        #expect(q.head?.length == 700)
        // The trimmed record keeps its mark, and the sums count what is left of it.
        #expect(q.head?.marks.contains(.lost) == true)
        #expect(q.lostBytes == 700)
        #expect(pipe(q) == 2000)
        // The rest of it.
        #expect(q.acknowledge(upTo: seg(3)) { _ in } == 700)
        #expect(q.lostBytes == 0)
        #expect(q.head?.start == seg(3))
    }

    @Test func anAckBelowTheFirstRecordChangesNothing() {
        var q = queue(3)
        #expect(q.acknowledge(upTo: seg(0)) { _ in Issue.record("nothing is delivered") } == 0)
        #expect(q.count == 3)
    }

    // MARK: Timeout and reneging

    @Test func markAllLostKeepsSackMarksAndMakesTheRestDue() {
        var q = queue(6)
        q.sack(seg(2), seg(4)) { _ in }
        q.markLost(at: 0)
        q.retransmitted(at: 0, now: t0)
        q.markAllLost()
        #expect(marked(q, .sacked) == [2, 3])
        #expect(q.lostBytes == 4000)
        // The retransmission of 0 is due again too: RFC 6675 5.1 resends everything not SACKed.
        #expect(q.retransmittedBytes == 0)
        #expect((0..<6).filter { q.isLostAndDue($0) } == [0, 1, 4, 5])
        #expect(pipe(q) == 0)
    }

    @Test func forgetSACKsUndoesEveryMark() {
        var q = queue(6)
        q.markLost(at: 1)
        q.retransmitted(at: 1, now: t0)
        q.sack(seg(1), seg(2)) { _ in }
        q.sack(seg(3), seg(5)) { _ in }
        #expect(q.sackedSegments == 3)
        #expect(q.lostBytes == 0 && q.retransmittedBytes == 0)
        #expect(q.highestSACKed == seg(5))
        q.forgetSACKs()
        #expect(marked(q, .sacked).isEmpty)
        #expect(q.sackedBytes == 0)
        #expect(q.sackedSegments == 0)
        #expect(q.highestSACKed == nil)
        // Segment 1 is again lost and retransmitted, as before its SACK.
        #expect(q.lostBytes == 1000)
        #expect(q.retransmittedBytes == 1000)
        #expect(pipe(q) == 6000)
        // After the timeout that follows, all six are due, the formerly SACKed ones too.
        q.markAllLost()
        #expect((0..<6).filter { q.isLostAndDue($0) } == [0, 1, 2, 3, 4, 5])
        #expect(q.nextLost() == 0)
        #expect(pipe(q) == 0)
    }

    // MARK: Capacity

    @Test func aFullQueueSaysSoUntilAnAckFreesARecord() {
        var q = queue(3, capacity: 4)
        #expect(!q.isFull)
        q.append(start: seg(3), end: seg(4), now: t0)
        #expect(q.isFull)
        #expect(q.capacity == 4)
        q.acknowledge(upTo: seg(1)) { _ in }
        #expect(!q.isFull)
        #expect(q.count == 3)
        q.removeAll()
        #expect(q.isEmpty && !q.isFull)
        #expect(q.head == nil)
    }

    @Test func aRetransmissionRestampsTheRecord() {
        var q = queue(2)
        let later = t0 + .milliseconds(250)
        q.retransmitted(at: 1, now: later)
        #expect(q.records[1].sentAt == later)
        #expect(q.records[1].marks.contains(.everRetransmitted))
        #expect(q.records[0].sentAt == t0)
        // Not lost: a probe's retransmission does not enter the lost sums.
        #expect(q.retransmittedBytes == 0)
    }
}
