import AllocationCounter
import Testing
@testable import NetStack
import NetStackWire

/// `FaultInjector` over a `MemoryLink`: each fault alone, its counters, its
/// determinism, and what the receiving stack makes of corrupted frames.
@Suite(.serialized) struct FaultInjectorTests {
    static let stackIP = IPv4Address(10, 0, 0, 2)
    static let peerIP = IPv4Address(10, 0, 0, 1)
    static let stackMAC = InterfaceConfiguration.defaultMAC(for: stackIP)
    static let peerMAC = InterfaceConfiguration.defaultMAC(for: peerIP)

    /// An injector on one end of a memory link; `far` is the raw other end.
    final class Rig {
        let pool: PacketPool
        let clock = VirtualClock()
        let near: MemoryLink
        let far: MemoryLink
        let faults: FaultInjector<MemoryLink>

        init(receive: FaultProfile = .none, transmit: FaultProfile = .none, seed: UInt64 = 1,
             slotCount: Int = 512, holdCapacity: Int = 64) {
            pool = PacketPool(slotCount: slotCount)
            (near, far) = MemoryLink.pair(pool: pool, queueCapacity: 1024)
            faults = FaultInjector(wrapping: near, receive: receive, transmit: transmit, seed: seed, clock: clock,
                                   holdCapacity: holdCapacity)
        }

        /// Puts `bytes` in a fresh slot.
        func buffer(_ bytes: [UInt8]) -> PacketBuffer {
            var b = pool.allocate()!
            b.withCapacity { $0.copyBytes(from: bytes) }
            b.setLength(bytes.count)
            return b
        }

        /// Sends through the injector's transmit side.
        func send(_ bytes: [UInt8]) { faults.transmit(buffer(bytes)) }
        /// Sends from the far end towards the injector's receive side.
        func inject(_ bytes: [UInt8]) { far.transmit(buffer(bytes)) }

        /// What arrived at the far end.
        func collectFar() -> [[UInt8]] {
            var out: [[UInt8]] = []
            _ = far.receive(limit: .max) { f in out.append(f.withBytes { Array($0) }) }
            return out
        }

        /// What the injector hands up.
        func collectNear(limit: Int = .max) -> [[UInt8]] {
            var out: [[UInt8]] = []
            _ = faults.receive(limit: limit) { f in out.append(f.withBytes { Array($0) }) }
            return out
        }
    }

    /// A UDP frame from the peer to the stack whose payload starts with `index`.
    static func udpFrame(_ index: Int, payloadLength: Int = 200, port: UInt16 = 9999) -> [UInt8] {
        var payload = FrameBuilder.pattern(max(payloadLength, 2), seed: UInt8(truncatingIfNeeded: index))
        payload[0] = UInt8(truncatingIfNeeded: index >> 8)
        payload[1] = UInt8(truncatingIfNeeded: index)
        let udp = FrameBuilder.udp(sourcePort: 40000, destinationPort: port, payload: payload, source: peerIP,
                                   destination: stackIP)
        return FrameBuilder.ethernet(destination: stackMAC, source: peerMAC, etherType: .ipv4,
                                     payload: FrameBuilder.ipv4(source: peerIP, destination: stackIP,
                                                                protocol: .udp, payload: udp))
    }

    /// A TCP ACK with data to a port with no listener.
    static func tcpFrame(_ index: Int, payloadLength: Int = 100) -> [UInt8] {
        let repr = TCPRepr(sourcePort: 40000, destinationPort: 4444, seq: SequenceNumber(UInt32(index) * 1000),
                           ack: SequenceNumber(1), flags: [.ack, .psh], window: 1000, payloadLength: payloadLength)
        var segment = [UInt8](repeating: 0, count: repr.headerLength) + FrameBuilder.pattern(payloadLength)
        segment.withUnsafeMutableBytes { repr.emit(into: $0, source: peerIP, destination: stackIP) }
        return FrameBuilder.ethernet(destination: stackMAC, source: peerMAC, etherType: .ipv4,
                                     payload: FrameBuilder.ipv4(source: peerIP, destination: stackIP,
                                                                protocol: .tcp, payload: segment))
    }

    static func icmpFrame(_ index: Int) -> [UInt8] {
        let icmp = FrameBuilder.icmpEcho(identifier: 7, sequence: UInt16(truncatingIfNeeded: index),
                                         data: FrameBuilder.pattern(56))
        return FrameBuilder.ethernet(destination: stackMAC, source: peerMAC, etherType: .ipv4,
                                     payload: FrameBuilder.ipv4(source: peerIP, destination: stackIP,
                                                                protocol: .icmp, payload: icmp))
    }

    static func index(of frame: [UInt8]) -> Int { Int(frame[42]) << 8 | Int(frame[43]) }

    static func differingBits(_ a: [UInt8], _ b: [UInt8]) -> [Int] {
        var bits: [Int] = []
        for i in 0..<a.count where a[i] != b[i] {
            let x = a[i] ^ b[i]
            for bit in 0..<8 where x & (1 << (7 - bit)) != 0 { bits.append(i * 8 + bit) }
        }
        return bits
    }

    // MARK: PRNG

    @Test func xoshiroMatchesTheReferenceSequence() {
        // xoshiro256** from state {1, 2, 3, 4}, as in the reference implementation.
        var rng = Xoshiro256StarStar(state: (1, 2, 3, 4))
        #expect(rng.next() == 11520)
        #expect(rng.next() == 0)
        #expect(rng.next() == 1_509_978_240)
        #expect(rng.next() == 1_215_971_899_390_074_240)
        var a = Xoshiro256StarStar(seed: 42), b = Xoshiro256StarStar(seed: 42), c = Xoshiro256StarStar(seed: 43)
        let sa = (0..<8).map { _ in a.next() }, sb = (0..<8).map { _ in b.next() }
        let sc = (0..<8).map { _ in c.next() }
        #expect(sa == sb)
        #expect(sa != sc)
    }

    // MARK: Each fault alone at probability 1

    @Test func noFaultsPassEverythingThroughUnchanged() {
        let rig = Rig()
        let frames = (0..<20).map { Self.udpFrame($0) }
        for f in frames { rig.send(f) }
        for f in frames { rig.inject(f) }
        #expect(rig.collectFar() == frames)
        #expect(rig.collectNear() == frames)
        #expect(rig.faults.transmitCounters == { var c = FaultCounters(); c.frames = 20; return c }())
        #expect(rig.faults.receiveCounters.frames == 20)
        #expect(rig.pool.freeCount == rig.pool.slotCount)
    }

    @Test func lossAtOneDropsEverything() {
        let rig = Rig(receive: FaultProfile(loss: 1), transmit: FaultProfile(loss: 1))
        for i in 0..<50 { rig.send(Self.udpFrame(i)); rig.inject(Self.udpFrame(i)) }
        #expect(rig.collectFar().isEmpty)
        #expect(rig.collectNear().isEmpty)
        #expect(rig.faults.transmitCounters.dropped == 50)
        #expect(rig.faults.receiveCounters.dropped == 50)
        #expect(rig.pool.freeCount == rig.pool.slotCount)
    }

    @Test func duplicateAtOneDeliversByteIdenticalCopiesRightAfter() {
        let rig = Rig(receive: FaultProfile(duplicate: 1), transmit: FaultProfile(duplicate: 1))
        let frames = (0..<30).map { Self.udpFrame($0, payloadLength: 17 + $0 * 40) }
        for f in frames { rig.send(f); rig.inject(f) }
        let doubled = frames.flatMap { [$0, $0] }
        #expect(rig.collectFar() == doubled)
        #expect(rig.collectNear() == doubled)
        #expect(rig.faults.transmitCounters.duplicated == 30)
        #expect(rig.faults.receiveCounters.duplicated == 30)
        #expect(rig.pool.freeCount == rig.pool.slotCount)
    }

    @Test func corruptAtOneFlipsOneToThreeBitsInOneWordOfTheDatagram() {
        let rig = Rig(transmit: FaultProfile(corrupt: 1), seed: 7)
        let frames = (0..<300).map { i in
            i % 3 == 0 ? Self.udpFrame(i, payloadLength: i % 97) : i % 3 == 1 ? Self.tcpFrame(i) : Self.icmpFrame(i)
        }
        for f in frames { rig.send(f) }
        let out = rig.collectFar()
        #expect(out.count == frames.count)
        var bitCounts = [0, 0, 0, 0]
        for (sent, got) in zip(frames, out) {
            #expect(sent.count == got.count)
            let bits = Self.differingBits(sent, got)
            #expect((1...3).contains(bits.count), "\(bits)")
            bitCounts[min(bits.count, 3)] += 1
            // Never the Ethernet header; all in one 16-bit word of the IPv4 datagram.
            #expect(bits.allSatisfy { $0 >= 14 * 8 && $0 < (14 + Int(read16(sent, 16))) * 8 })
            #expect(Set(bits.map { ($0 / 8 - 14) / 2 }).count == 1)
            #expect(Array(got[0..<14]) == Array(sent[0..<14]))
        }
        #expect(bitCounts[1] > 0 && bitCounts[2] > 0 && bitCounts[3] > 0, "\(bitCounts)")
        #expect(rig.faults.transmitCounters.corrupted == 300)

        // ARP carries no checksum, so it is never corrupted.
        let arp = FrameBuilder.ethernet(destination: .broadcast, source: Self.peerMAC, etherType: .arp,
                                        payload: FrameBuilder.arp(.request, senderMAC: Self.peerMAC,
                                                                  senderIP: Self.peerIP, targetMAC: .zero,
                                                                  targetIP: Self.stackIP))
        rig.send(arp)
        #expect(rig.collectFar() == [arp])
        #expect(rig.faults.transmitCounters.corrupted == 300)
        #expect(rig.pool.freeCount == rig.pool.slotCount)
    }

    /// The stack behind a corrupting injector: every damaged frame is dropped,
    /// none is answered. A flip is caught by a checksum (IPv4 header, UDP, TCP,
    /// ICMP) unless it lands in a field the stack checks before any checksum
    /// (IPv4 version, IHL, total length; UDP length; TCP data offset): the
    /// same seed replayed into a collector shows where each flip landed, and
    /// only those frames may be dropped for another reason.
    @Test func corruptedFramesAreDroppedByTheStackAsBadChecksums() throws {
        let n = 600
        let seed: UInt64 = 2024
        func frame(_ i: Int) -> [UInt8] {
            i % 3 == 0 ? Self.udpFrame(i, payloadLength: 1 + i % 700)
                : i % 3 == 1 ? Self.tcpFrame(i, payloadLength: i % 1400) : Self.icmpFrame(i)
        }
        // Where the flips land, replayed into a plain collector.
        let replay = Rig(receive: FaultProfile(corrupt: 1), seed: seed, slotCount: 64)
        var checkedBeforeChecksum = 0
        for i in 0..<n {
            let sent = frame(i)
            replay.inject(sent)
            let got = try #require(replay.collectNear().first)
            let word = (Self.differingBits(sent, got)[0] / 8 - 14) / 2
            // IPv4 words 0-1; UDP length is word 12, TCP data offset word 16 (20-byte IPv4 header).
            if word < 2 || (i % 3 == 0 && word == 12) || (i % 3 == 1 && word == 16) { checkedBeforeChecksum += 1 }
        }

        let pool = PacketPool(slotCount: 512)
        let clock = VirtualClock()
        let (near, far) = MemoryLink.pair(pool: pool, queueCapacity: 1024)
        let faults = FaultInjector(wrapping: near, receive: FaultProfile(corrupt: 1), seed: seed, clock: clock)
        let interface = Interface(device: faults,
                                  configuration: InterfaceConfiguration(macAddress: Self.stackMAC,
                                                                        address: IPv4CIDR(address: Self.stackIP,
                                                                                          prefixLength: 24)),
                                  now: clock.now)
        interface.arp.update(Self.peerIP, mac: Self.peerMAC, now: clock.now, create: true)
        for i in 0..<n {
            let bytes = frame(i)
            var b = pool.allocate()!
            b.withCapacity { $0.copyBytes(from: bytes) }
            b.setLength(bytes.count)
            far.transmit(b)
            interface.poll(now: clock.now)
        }
        let answers = far.receive(limit: .max) { _ in }
        let drops = DropSnapshot(interface)
        let checksumReasons: Set<String> = ["ipv4-bad-checksum", "udp-bad-checksum", "tcp-bad-checksum",
                                            "icmp-bad-checksum"]
        let earlierChecks: Set<String> = ["ipv4-bad-version", "ipv4-bad-length", "ipv4-truncated", "udp-bad-length",
                                          "tcp-truncated"]
        let checksumDrops = drops.sum(checksumReasons)
        let report = "\(drops)"
        #expect(faults.receiveCounters.corrupted == UInt64(n))
        #expect(answers == 0, "no corrupted frame may be answered")
        #expect(drops.total == UInt64(n), "every corrupted frame dropped, once: \(report)")
        #expect(drops.counts.keys.allSatisfy { checksumReasons.contains($0) || earlierChecks.contains($0) }, "\(report)")
        #expect(checksumDrops >= UInt64(n - checkedBeforeChecksum), "\(report)")
        #expect(checkedBeforeChecksum < n / 20)
        #expect(drops["ipv4-bad-checksum"] > 0 && drops["udp-bad-checksum"] > 0 && drops["tcp-bad-checksum"] > 0
                && drops["icmp-bad-checksum"] > 0, "\(report)")
        #expect(interface.udp.counters.datagramsIn == 0 && interface.tcp.counters.segmentsIn == 0)

        // The same kinds of frame without corruption are all accepted (and answered).
        faults.receiveProfile = .none
        for i in 0..<30 {
            let bytes = frame(i)
            var b = pool.allocate()!
            b.withCapacity { $0.copyBytes(from: bytes) }
            b.setLength(bytes.count)
            far.transmit(b)
            interface.poll(now: clock.now)
        }
        #expect(DropSnapshot(interface).total == UInt64(n) + 10 + 10, "udp-no-socket and tcp-no-connection only")
        #expect(far.receive(limit: .max) { _ in } == 30)
        #expect(pool.freeCount == pool.slotCount)
    }

    @Test func reorderAtOneDelaysEveryFrameByTheDepthAndTheTailLeavesAfterMaxHold() {
        let rig = Rig(receive: FaultProfile(reorder: 1, reorderDepth: 3, maxHold: .milliseconds(5)),
                      transmit: FaultProfile(reorder: 1, reorderDepth: 3, maxHold: .milliseconds(5)))
        for i in 0..<10 { rig.send(Self.udpFrame(i)); rig.inject(Self.udpFrame(i)) }
        #expect(rig.collectFar().map(Self.index) == Array(0..<7))
        #expect(rig.collectNear().map(Self.index) == Array(0..<7))
        #expect(rig.faults.framesHeld == 6)
        #expect(rig.faults.nextReleaseDeadline == rig.clock.now + .milliseconds(5))
        // Not yet: flush and receive leave them held.
        rig.clock.advance(by: .milliseconds(4))
        rig.faults.flush()
        #expect(rig.collectFar().isEmpty && rig.collectNear().isEmpty)
        rig.clock.advance(by: .milliseconds(1))
        rig.faults.flush()
        #expect(rig.collectFar().map(Self.index) == [7, 8, 9])
        #expect(rig.collectNear().map(Self.index) == [7, 8, 9])
        #expect(rig.faults.transmitCounters.reordered == 10 && rig.faults.receiveCounters.reordered == 10)
        #expect(rig.faults.framesHeld == 0)
        #expect(rig.pool.freeCount == rig.pool.slotCount)
    }

    @Test(arguments: [1, 2, 3, 5])
    func aHeldFrameIsOvertakenByExactlyDepthFrames(depth: Int) {
        let rig = Rig(transmit: FaultProfile(reorder: 1, reorderDepth: depth))
        rig.send(Self.udpFrame(0))
        rig.faults.transmitProfile.reorder = 0
        for i in 1...8 { rig.send(Self.udpFrame(i)) }
        var expected = Array(1...8)
        expected.insert(0, at: depth)
        #expect(rig.collectFar().map(Self.index) == expected)
        #expect(rig.faults.transmitCounters.reordered == 1)
    }

    @Test func releaseHeldLetsEverythingGoAndDeinitReturnsHeldSlots() {
        let pool: PacketPool
        do {
            let rig = Rig(receive: FaultProfile(reorder: 1, reorderDepth: 50),
                          transmit: FaultProfile(reorder: 1, reorderDepth: 50))
            pool = rig.pool
            for i in 0..<5 { rig.send(Self.udpFrame(i)); rig.inject(Self.udpFrame(i)) }
            #expect(rig.collectFar().isEmpty && rig.collectNear().isEmpty)
            rig.faults.releaseHeld()
            #expect(rig.collectFar().map(Self.index) == Array(0..<5))
            #expect(rig.collectNear().map(Self.index) == Array(0..<5))
            for i in 0..<5 { rig.send(Self.udpFrame(i)); rig.inject(Self.udpFrame(i)) }
            _ = rig.collectNear()  // pulls them in to be held
            #expect(rig.faults.framesHeld == 10)
            #expect(pool.freeCount == pool.slotCount - 10)
        }
        #expect(pool.freeCount == pool.slotCount)
    }

    @Test func aFullHoldRingLetsFramesPass() {
        let rig = Rig(transmit: FaultProfile(reorder: 1, reorderDepth: 100), holdCapacity: 4)
        for i in 0..<10 { rig.send(Self.udpFrame(i)) }
        #expect(rig.collectFar().map(Self.index) == Array(4..<10))
        #expect(rig.faults.transmitCounters.reordered == 4)
        rig.faults.releaseHeld()
        #expect(rig.collectFar().map(Self.index) == Array(0..<4))
    }

    @Test func receiveNeverHandsUpMoreThanTheLimit() {
        let rig = Rig(receive: FaultProfile(reorder: 0.3, duplicate: 0.5, reorderDepth: 2), seed: 5)
        for i in 0..<200 { rig.inject(Self.udpFrame(i)) }
        var all: [[UInt8]] = []
        for limit in [1, 2, 3, 7] {
            for _ in 0..<20 {
                let got = rig.collectNear(limit: limit)
                #expect(got.count <= limit)
                all += got
            }
        }
        all += rig.collectNear()
        rig.faults.releaseHeld()
        all += rig.collectNear()
        let c = rig.faults.receiveCounters
        #expect(all.count == 200 + Int(c.duplicated))
        #expect(Set(all.map(Self.index)) == Set(0..<200))
        #expect(rig.pool.freeCount == rig.pool.slotCount)
    }

    // MARK: Limits

    @Test func framesAboveMaxFrameSizeAreDroppedAndCounted() {
        let rig = Rig(receive: FaultProfile(maxFrameSize: 600), transmit: FaultProfile(maxFrameSize: 600))
        let sizes = [100, 600 - 42, 600 - 41, 1400, 50]
        for s in sizes { rig.send(Self.udpFrame(s, payloadLength: s)); rig.inject(Self.udpFrame(s, payloadLength: s)) }
        #expect(rig.collectFar().map(\.count) == [142, 600, 92])
        #expect(rig.collectNear().map(\.count) == [142, 600, 92])
        #expect(rig.faults.transmitCounters.tooLarge == 2 && rig.faults.receiveCounters.tooLarge == 2)
    }

    @Test func rateLimitPolicesToTheRateAfterTheBurst() {
        // 1 Mbit/s, 10 000-byte bucket; frames of 1000 bytes (8000 bits).
        let profile = FaultProfile(rateLimitBitsPerSecond: 1_000_000, rateLimitBurstBytes: 10_000)
        let rig = Rig(transmit: profile)
        for i in 0..<30 { rig.send(Self.udpFrame(i, payloadLength: 1000 - 42)) }
        #expect(rig.collectFar().count == 10)
        #expect(rig.faults.transmitCounters.rateLimited == 20)
        // 8 ms refills one frame's worth; 1 s at most the bucket.
        rig.clock.advance(by: .milliseconds(8))
        for i in 0..<3 { rig.send(Self.udpFrame(i, payloadLength: 1000 - 42)) }
        #expect(rig.collectFar().count == 1)
        rig.clock.advance(by: .seconds(1))
        for i in 0..<30 { rig.send(Self.udpFrame(i, payloadLength: 1000 - 42)) }
        #expect(rig.collectFar().count == 10)
        #expect(rig.faults.transmitCounters.rateLimited == 20 + 2 + 20)
        #expect(rig.faults.transmitCounters.frames == 63)
    }

    // MARK: Seeded probabilities

    /// Each fault alone at 0.3 over 1000 frames: exact counts for seed 42
    /// (a regression check of the PRNG and the draw order), near 300 each.
    @Test func eachFaultAtPointThreeGivesTheseExactCountsForSeed42() {
        func run(_ profile: FaultProfile) -> (tx: FaultCounters, rx: FaultCounters, out: Int) {
            let rig = Rig(receive: profile, transmit: profile, seed: 42, slotCount: 1024)
            var out = 0
            for i in 0..<1000 {
                rig.send(Self.udpFrame(i, payloadLength: 60))
                rig.inject(Self.udpFrame(i, payloadLength: 60))
                out += rig.collectFar().count + rig.collectNear().count
            }
            rig.faults.releaseHeld()
            out += rig.collectFar().count + rig.collectNear().count
            #expect(rig.pool.freeCount == rig.pool.slotCount)
            return (rig.faults.transmitCounters, rig.faults.receiveCounters, out)
        }
        let loss = run(FaultProfile(loss: 0.3))
        #expect(loss.tx.dropped == 295 && loss.rx.dropped == 290, "\(loss)")
        #expect(loss.out == 2000 - 295 - 290)
        let reorder = run(FaultProfile(reorder: 0.3))
        #expect(reorder.tx.reordered == 285 && reorder.rx.reordered == 326, "\(reorder)")
        #expect(reorder.out == 2000)
        let duplicate = run(FaultProfile(duplicate: 0.3))
        #expect(duplicate.tx.duplicated == 286 && duplicate.rx.duplicated == 323, "\(duplicate)")
        #expect(duplicate.out == 2000 + 286 + 323)
        let corrupt = run(FaultProfile(corrupt: 0.3))
        #expect(corrupt.tx.corrupted == 299 && corrupt.rx.corrupted == 297, "\(corrupt)")
        #expect(corrupt.out == 2000)
        for r in [loss, reorder, duplicate, corrupt] {
            #expect(r.tx.frames == 1000 && r.rx.frames == 1000)
        }
    }

    /// Five draws per frame whatever the profile: the frames lost under
    /// `loss: 0.3` are the same with or without the other faults switched on,
    /// and one direction's traffic does not move the other's faults.
    @Test func aFramesFateDependsOnlyOnTheSeedAndItsPlace() {
        func lostIndices(_ profile: FaultProfile, alsoReceive: Bool) -> [Int] {
            let rig = Rig(transmit: profile, seed: 9)
            for i in 0..<300 {
                rig.send(Self.udpFrame(i))
                if alsoReceive { rig.inject(Self.udpFrame(i)); _ = rig.collectNear() }
            }
            rig.faults.releaseHeld()
            let seen = Set(rig.collectFar().map(Self.index))
            return (0..<300).filter { !seen.contains($0) }
        }
        let alone = lostIndices(FaultProfile(loss: 0.3), alsoReceive: false)
        let mixed = lostIndices(FaultProfile(loss: 0.3, reorder: 0.2, duplicate: 0.2, corrupt: 0.1), alsoReceive: true)
        #expect(alone.count > 60)
        #expect(alone == mixed)
    }

    // MARK: Allocation

    @Test func steadyStateAllocatesNothingPerFrame() {
        let all = FaultProfile(loss: 0.1, reorder: 0.3, duplicate: 0.3, corrupt: 0.3, reorderDepth: 3,
                               rateLimitBitsPerSecond: 1_000_000_000, maxFrameSize: 1514)
        let rig = Rig(receive: all, transmit: all, seed: 3)
        let frame = Self.udpFrame(1, payloadLength: 500)
        func round() {
            for _ in 0..<8 { rig.send(frame); rig.inject(frame) }
            rig.faults.flush()
            _ = rig.far.receive(limit: .max) { _ in }
            _ = rig.faults.receive(limit: 5) { _ in }
            _ = rig.faults.receive(limit: .max) { _ in }
            rig.clock.advance(by: .microseconds(100))
        }
        for _ in 0..<100 { round() }
        let before = rig.faults.transmitCounters
        allocation_counter_start()
        for _ in 0..<1000 { round() }
        let allocations = allocation_counter_stop()
        let after = rig.faults.transmitCounters
        #expect(after.frames - before.frames == 8000)
        #expect(after.duplicated > before.duplicated && after.reordered > before.reordered
                && after.corrupted > before.corrupted && after.dropped > before.dropped)
        #expect(allocations == 0, "\(allocations) allocations for 16000 frames")
        rig.faults.releaseHeld()
        _ = rig.far.receive(limit: .max) { _ in }
        _ = rig.faults.receive(limit: .max) { _ in }
        #expect(rig.pool.freeCount == rig.pool.slotCount)
    }
}
