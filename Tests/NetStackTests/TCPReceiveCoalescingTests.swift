import Testing
@testable import NetStack
import NetStackWire

/// GRO's effect on receive (`TCPLayer.receive`): in-order segments of one
/// flow that arrive in one receive batch as separate frames are answered
/// once, at the batch's end, with one ACK covering them all (up to 64 KiB, as
/// Linux's GRO merges); what RFC 5681 4.2 wants answered at once (out-of-order
/// data) still is, and its ACK covers what waited.
@Suite struct TCPReceiveCoalescingTests {
    static let port: UInt16 = 7000
    static let peerISS = SequenceNumber(50_000)

    /// A harness with a listener whose connection nobody reads, and an
    /// established connection from the peer. Returns it and the stack's ISS.
    static func established() -> (PeerHarness, SequenceNumber)? {
        let h = PeerHarness()
        h.resolvePeer()
        guard (try? h.tcp.listen(port: port)) != nil,
              let iss = h.peerConnect(to: port, peerISS: peerISS) else { return nil }
        return (h, iss)
    }

    /// The peer's data segment `index` (0-based) of `size` bytes, in order.
    static func segment(_ h: PeerHarness, _ index: Int, size: Int, iss: SequenceNumber) -> [UInt8] {
        h.tcpFrame(.ack, destinationPort: port, seq: peerISS + 1 + index * size, ack: iss + 1,
                   payload: [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: size))
    }

    @Test func inOrderSegmentsOfOneBatchDrawOneAckForAllOfThem() throws {
        let (h, iss) = try #require(Self.established())
        let frames = (0..<10).map { Self.segment(h, $0, size: 1000, iss: iss) }
        for f in frames { h.inject(f) }
        h.poll()
        let out = h.tcpOnly(h.sent())
        #expect(out.count == 1, "\(out)")
        #expect(out.first?.ack == Self.peerISS + 1 + 10_000)
        #expect(out.first?.payload.isEmpty == true)
        #expect(h.tcp.counters.answersCoalesced == 10)
        #expect(h.tcpConnection(peerPort: 40000)?.readableBytes == 10_000)
    }

    @Test func segmentsArrivingOneBatchEachAreAckedEverySecondFullSegment() throws {
        let (h, iss) = try #require(Self.established())
        var acks: [SequenceNumber] = []
        for i in 0..<10 {
            for s in h.exchangeTCP(Self.segment(h, i, size: 1000, iss: iss)) { acks.append(try #require(s.ack)) }
        }
        // 2 × MSS (1460) is 2920 bytes: every third 1000-byte segment (RFC 5681 4.2).
        #expect(acks == [3, 6, 9].map { Self.peerISS + 1 + $0 * 1000 })
    }

    @Test func outOfOrderDataInTheBatchIsAnsweredAtOnceAndCoversWhatWaited() throws {
        let (h, iss) = try #require(Self.established())
        // Segments 0, 1, then 3 and 4: segment 2 is missing.
        for i in [0, 1, 3, 4] { h.inject(Self.segment(h, i, size: 1000, iss: iss)) }
        h.poll()
        let out = h.tcpOnly(h.sent())
        // One duplicate ACK per out-of-order segment, as without batches, each
        // acknowledging the two in-order segments that waited.
        #expect(out.count == 2, "\(out)")
        #expect(out.allSatisfy { $0.ack == Self.peerISS + 1 + 2000 })
        // Filling the gap is acknowledged at once too, up to the end.
        let filled = h.exchangeTCP(Self.segment(h, 2, size: 1000, iss: iss))
        #expect(filled.count == 1)
        #expect(filled.first?.ack == Self.peerISS + 1 + 5000)
    }

    @Test func aFinAtTheEndOfTheBatchIsAnsweredWithEverythingBeforeIt() throws {
        let (h, iss) = try #require(Self.established())
        for i in 0..<4 { h.inject(Self.segment(h, i, size: 1000, iss: iss)) }
        h.inject(h.tcpFrame([.ack, .fin], destinationPort: Self.port, seq: Self.peerISS + 1 + 4000, ack: iss + 1))
        h.poll()
        let out = h.tcpOnly(h.sent())
        #expect(out.count == 1, "\(out)")
        #expect(out.first?.ack == Self.peerISS + 1 + 4001)
        #expect(h.tcpConnection(peerPort: 40000)?.state == .closeWait)
    }

    /// Two stacks, a 1500-byte link without offloads: the receiver answers
    /// whole batches, so far fewer ACKs than one per two segments leave it,
    /// yet never fewer than one per 64 KiB, and every byte arrives.
    @Test func bulkWithoutOffloadsIsAcknowledgedPerBatchAndArrivesIntact() throws {
        let pair = TCPStackPair()
        let size = 8 << 20
        #expect(try TCPSegmentationOffloadTests.transfer(pair, size: size, seed: 11))
        let dataSegments = pair.b.tcp.counters.segmentsIn
        let acks = pair.b.tcp.counters.segmentsOut
        #expect(dataSegments >= UInt64(size / 1460))
        #expect(acks * 4 < dataSegments, "\(acks) ACKs for \(dataSegments) segments")
        #expect(acks >= UInt64(size / 65_536), "an ACK covered more than 64 KiB")
        #expect(pair.b.tcp.counters.answersCoalesced > dataSegments / 2)
        #expect(pair.a.tcp.counters.retransmissions == 0)
    }
}
