import Testing
@testable import NetStack
import NetStackWire

/// Two stacks over a `MemoryLink` with a `FaultInjector` in front of each, on
/// one virtual clock; idle time jumps to the next timer or held-frame release.
typealias FaultyStackPair = StackPair<FaultInjector<MemoryLink>>

extension StackPair where D == FaultInjector<MemoryLink> {
    convenience init(aReceive: FaultProfile = .none, aTransmit: FaultProfile = .none, bReceive: FaultProfile = .none,
                     bTransmit: FaultProfile = .none, seed: UInt64, ipv6: Bool = false) {
        self.init(ipv6: ipv6, wrap: { link, isA, clock in
            FaultInjector(wrapping: link, receive: isA ? aReceive : bReceive, transmit: isA ? aTransmit : bTransmit,
                          seed: isA ? seed : ~seed, clock: clock)
        })
        otherDeadline = { [unowned self] in
            [faultsA.nextReleaseDeadline, faultsB.nextReleaseDeadline].compactMap { $0 }.min()
        }
    }

    var faultsA: FaultInjector<MemoryLink> { a.device }
    var faultsB: FaultInjector<MemoryLink> { b.device }
    var framesOnTheLink: Int { framesInTransit }

    /// `size` bytes each way, both sides closing after writing. Returns the
    /// two transfers (A to B, B to A) and the virtual time taken.
    /// Over IPv6 (`TCPStackPair.ip6B`) with `ipv6`.
    func bulkBothWays(size: Int, dataSeed: UInt64, ipv6: Bool = false) throws
        -> (BulkTransfer, BulkTransfer, Duration, Bool) {
        let port: UInt16 = 5001
        let listener = try b.tcp.listen(port: port)
        let start = now
        let client = try a.tcp.connect(to: ipv6 ? .v6(TCPStackPair.ip6B) : .v4(TCPStackPair.ipB), port: port,
                                       now: now)
        var server: TCPConnection?
        let aToB = BulkTransfer(length: size, seed: dataSeed)
        let bToA = BulkTransfer(length: size, seed: dataSeed &+ 1)
        let finished = run(maxRounds: 2_000_000, until: {
            aToB.read == size && bToA.read == size && client.isReadClosed && server?.isReadClosed == true
        }, app: {
            if server == nil { server = listener.accept() }
            var moved = aToB.pump(into: client)
            moved = bToA.drain(from: client) || moved
            a.tcp.flush(client, now: now)
            if let s = server {
                moved = bToA.pump(into: s) || moved
                moved = aToB.drain(from: s) || moved
                b.tcp.flush(s, now: now)
            }
            return moved
        })
        #expect(client.error == nil && server?.error == nil, "client \(String(describing: client.error)) \(client.state), server \(String(describing: server?.error)) \(String(describing: server?.state)) a:\(DropSnapshot(a)) b:\(DropSnapshot(b)) a:\(a.counters.report) b:\(b.counters.report)")
        return (aToB, bToA, now - start, finished)
    }
}

/// TCP between two stacks through injected loss, reordering, duplication and
/// corruption: 1 MiB each way must arrive byte-exact (hashed) within a bounded
/// virtual time, for several seeds each.
@Suite struct TCPUnderFaultsTests {
    static let size = 1 << 20
    /// Virtual time a 1 MiB exchange may take under these faults. The passing
    /// runs take 0.3 ms (duplication) to 6 s (10% loss); this leaves room for RTO backoff.
    static let deadline: Duration = .seconds(60)

    func check(_ pair: FaultyStackPair, seed: UInt64, _ what: String, ipv6: Bool = false,
               sourceLocation: SourceLocation = #_sourceLocation) throws -> Duration {
        let (aToB, bToA, took, finished) = try pair.bulkBothWays(size: Self.size, dataSeed: seed, ipv6: ipv6)
        #expect(finished, "\(what) seed \(seed)", sourceLocation: sourceLocation)
        #expect(aToB.read == Self.size && bToA.read == Self.size, "\(what) seed \(seed)",
                sourceLocation: sourceLocation)
        #expect(aToB.receivedHash.value == aToB.sentHash.value, "\(what) seed \(seed): A to B corrupted",
                sourceLocation: sourceLocation)
        #expect(bToA.receivedHash.value == bToA.sentHash.value, "\(what) seed \(seed): B to A corrupted",
                sourceLocation: sourceLocation)
        #expect(took < Self.deadline, "\(what) seed \(seed) took \(took) virtual", sourceLocation: sourceLocation)
        // Let what is still on the link or held arrive, so the counters settle.
        pair.faultsA.releaseHeld()
        pair.faultsB.releaseHeld()
        pair.run(until: { pair.framesOnTheLink == 0 && pair.faultsA.framesHeld == 0 && pair.faultsB.framesHeld == 0 })
        return took
    }

    @Test(arguments: [1, 2, 3, 4, 5, 6] as [UInt64])
    func tenPercentLossBothWays(seed: UInt64) throws {
        try tenPercentLoss(seed: seed)
    }

    func tenPercentLoss(seed: UInt64) throws {
        let loss = FaultProfile(loss: 0.1)
        let pair = FaultyStackPair(aReceive: loss, aTransmit: loss, seed: seed)
        _ = try check(pair, seed: seed, "10% loss")
        #expect(pair.faultsA.receiveCounters.dropped > 50 && pair.faultsA.transmitCounters.dropped > 50)
        #expect(pair.a.tcp.counters.retransmissions > 0 && pair.b.tcp.counters.retransmissions > 0)
    }

    /// The same over IPv6: neighbour discovery, TCP's IPv6 checksums and MSS under loss.
    @Test(arguments: [1, 2, 3] as [UInt64])
    func tenPercentLossBothWaysOverIPv6(seed: UInt64) throws {
        let loss = FaultProfile(loss: 0.1)
        let pair = FaultyStackPair(aReceive: loss, aTransmit: loss, seed: seed, ipv6: true)
        pair.settleIPv6()
        _ = try check(pair, seed: seed, "10% loss over IPv6", ipv6: true)
        #expect(pair.a.counters.ipv6In > 500 && pair.b.counters.ipv6In > 500)
        #expect(pair.a.tcp.counters.retransmissions > 0 && pair.b.tcp.counters.retransmissions > 0)
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func tenPercentReorderingBothWays(seed: UInt64) throws {
        let reorder = FaultProfile(reorder: 0.1)
        let pair = FaultyStackPair(aReceive: reorder, aTransmit: reorder, seed: seed)
        _ = try check(pair, seed: seed, "10% reordering")
        #expect(pair.faultsA.receiveCounters.reordered > 50 && pair.faultsA.transmitCounters.reordered > 50)
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func fivePercentDuplicationBothWays(seed: UInt64) throws {
        let duplicate = FaultProfile(duplicate: 0.05)
        let pair = FaultyStackPair(aReceive: duplicate, aTransmit: duplicate, seed: seed)
        _ = try check(pair, seed: seed, "5% duplication")
        #expect(pair.faultsA.receiveCounters.duplicated > 20 && pair.faultsA.transmitCounters.duplicated > 20)
    }

    @Test(arguments: [1, 2, 3] as [UInt64])
    func twoPercentCorruptionBothWays(seed: UInt64) throws {
        let corrupt = FaultProfile(corrupt: 0.02)
        let pair = FaultyStackPair(aReceive: corrupt, aTransmit: corrupt, seed: seed)
        _ = try check(pair, seed: seed, "2% corruption")
        let corrupted = pair.faultsA.receiveCounters.corrupted + pair.faultsA.transmitCounters.corrupted
        #expect(corrupted > 20)
        // Every corrupted frame was caught and dropped by the receiving stack.
        let dropsA = DropSnapshot(pair.a), dropsB = DropSnapshot(pair.b)
        func damaged(_ d: DropSnapshot) -> UInt64 {
            d.sum(["ipv4-bad-checksum", "tcp-bad-checksum", "ipv4-bad-version", "ipv4-bad-length", "ipv4-truncated",
                   "tcp-truncated"])
        }
        #expect(damaged(dropsA) == pair.faultsA.receiveCounters.corrupted)
        #expect(damaged(dropsB) == pair.faultsA.transmitCounters.corrupted)
    }

    /// Everything at once, on both ends, each direction different.
    @Test(arguments: [7, 8, 9, 10] as [UInt64])
    func aMixOfEverythingOnBothEnds(seed: UInt64) throws {
        try mixOfEverything(seed: seed)
    }

    func mixOfEverything(seed: UInt64) throws {
        let pair = FaultyStackPair(
            aReceive: FaultProfile(loss: 0.03, reorder: 0.05, duplicate: 0.02, corrupt: 0.01),
            aTransmit: FaultProfile(loss: 0.02, reorder: 0.03, duplicate: 0.01, corrupt: 0.01, reorderDepth: 5),
            bReceive: FaultProfile(loss: 0.01, reorder: 0.02, corrupt: 0.005),
            bTransmit: FaultProfile(loss: 0.02, duplicate: 0.03, corrupt: 0.01, reorderDepth: 2),
            seed: seed)
        _ = try check(pair, seed: seed, "mixed faults")
    }
}
