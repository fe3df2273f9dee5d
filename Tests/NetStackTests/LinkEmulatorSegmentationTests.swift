import AllocationCounter
import Testing
@testable import NetStack
import NetStackWire

/// A `LinkEmulator` over a device that coalesces TCP (a TAP with offloads)
/// queues and paces wire frames: it cuts what arrives coalesced into its
/// frames, with full checksums, before the bottleneck sees them, and narrows
/// what it reports so the stack sends it wire frames.
@Suite struct LinkEmulatorSegmentationTests {
    typealias Segments = FaultInjectorSegmentationTests
    static let t0 = Instant(nanoseconds: 1_000_000_000)
    /// The largest coalesced segment: an IP packet of 65535 bytes.
    static let payload64K = 65535 - 40

    /// A wire frame as the stack would see it.
    struct Arrival: Equatable {
        var at: Duration
        var length: Int
        var seq: UInt32
        var valid: Bool
        var trusted: Bool
    }

    /// An emulator on `near`, on a virtual clock at `t0`; `far` is the raw other end.
    static func rig(receive: LinkProfile, slotCount: Int = 256, capacity: Int = 1024)
        -> (PacketPool, VirtualClock, LinkEmulator<MemoryLink>, MemoryLink) {
        let pool = PacketPool(slotCount: slotCount, slotSize: TAPDevice.offloadSlotSize)
        let (near, far) = MemoryLink.pair(pool: pool, capabilities: TCPSegmentationOffloadTests.offloading)
        let clock = VirtualClock(start: t0)
        let emulator = LinkEmulator(wrapping: near, receive: receive, clock: clock, capacity: capacity)
        return (pool, clock, emulator, far)
    }

    /// Steps the clock from deadline to deadline, collecting what the
    /// emulator hands up and its payload, until nothing is left inside.
    static func drain(_ emulator: LinkEmulator<MemoryLink>, _ clock: VirtualClock) -> ([Arrival], [UInt8]) {
        var arrivals: [Arrival] = []
        var payload: [UInt8] = []
        func take() {
            _ = emulator.receive(limit: .max) { frame in
                frame.withBytes { b in
                    let ip = try! IPv4Packet(validating: try! EthernetFrame(validating: b).payload)
                    let tcp = try! TCPSegment(validating: ip.payload)
                    arrivals.append(Arrival(
                        at: clock.now - t0, length: b.count, seq: tcp.sequenceNumber.rawValue,
                        valid: ip.checksumIsValid && tcp.checksumIsValid(source: Segments.source,
                                                                         destination: Segments.destination),
                        trusted: frame.offload.checksumVerified))
                    payload += Array(tcp.payload)
                }
            }
        }
        take()
        while let next = emulator.nextReleaseDeadline {
            clock.set(next)
            take()
        }
        return (arrivals, payload)
    }

    @Test func aCoalescedSegmentCrossesTheBottleneckAsWireFramesOneAfterAnother() {
        // 10 Mbit/s: a full frame (1502 bytes) takes 1.2016 ms; then 1 ms of wire.
        let (pool, clock, emulator, far) = Self.rig(receive: LinkProfile(delay: .milliseconds(1),
                                                                         bitsPerSecond: 10_000_000))
        Segments.sendCoalesced(Segments.coalesced(payloadLength: Self.payload64K), from: far, segmentSize: 1448)
        let (arrivals, payload) = Self.drain(emulator, clock)

        // 45 full frames of 1448 bytes of data, and the 335 left over.
        let lengths = Array(repeating: 1502, count: 45) + [54 + 335]
        var expected: [Arrival] = []
        var finish = Duration.zero
        for (i, length) in lengths.enumerated() {
            finish += .nanoseconds(Int64(length) * 8 * 100)
            expected.append(Arrival(at: finish + .milliseconds(1), length: length, seq: 1 + UInt32(i) * 1448,
                                    valid: true, trusted: false))
        }
        #expect(arrivals == expected, "each wire frame paced at the rate, in order, with full checksums")
        #expect(payload == (0..<Self.payload64K).map { UInt8(truncatingIfNeeded: $0) })
        let c = emulator.receiveCounters
        #expect(c.frames == 46 && c.delivered == 46 && c.bytes == UInt64(lengths.reduce(0, +)))
        #expect(c.segmentationDrops == 0 && c.overflowDrops == 0 && c.queueDrops == 0)
        #expect(pool.freeCount == pool.slotCount, "the coalesced slot and every piece went back")
    }

    @Test func theQueueDropsTheWireFramesThatDoNotFitNotTheWholeSegment() {
        // One frame on the wire and ten waiting: the other 35 of the burst are tail-dropped.
        let profile = LinkProfile(bitsPerSecond: 10_000_000, queueLimitBytes: 10 * 1502)
        let (pool, clock, emulator, far) = Self.rig(receive: profile)
        Segments.sendCoalesced(Segments.coalesced(payloadLength: Self.payload64K), from: far, segmentSize: 1448)
        let (arrivals, _) = Self.drain(emulator, clock)
        #expect(arrivals.map(\.seq) == (0..<11).map { 1 + UInt32($0) * 1448 })
        #expect(arrivals.map(\.at) == (1...11).map { .nanoseconds(Int64($0) * 1_201_600) })
        let c = emulator.receiveCounters
        #expect(c.frames == 46 && c.queueDrops == 35 && c.peakQueueBytes == 10 * 1502)
        #expect(pool.freeCount == pool.slotCount)
    }

    @Test func piecesWithoutAFreeSlotAreCountedAndNoSlotLeaks() {
        // Eight slots: the coalesced segment holds one while it is cut, so
        // seven pieces fit; the rest are lost and counted.
        let (pool, clock, emulator, far) = Self.rig(receive: LinkProfile(delay: .milliseconds(1)), slotCount: 8)
        Segments.sendCoalesced(Segments.coalesced(payloadLength: Self.payload64K), from: far, segmentSize: 1448)
        let (arrivals, _) = Self.drain(emulator, clock)
        #expect(arrivals.map(\.seq) == (0..<7).map { 1 + UInt32($0) * 1448 })
        #expect(arrivals.allSatisfy { $0.valid })
        let c = emulator.receiveCounters
        #expect(c.frames == 7 && c.segmentationDrops == 39)
        #expect(emulator.report.contains { $0 == "link.rx.segmentation-drops" && $1 == 39 })
        #expect(pool.freeCount == pool.slotCount)
    }

    @Test func theRingHoldsAWholeSegmentAndCountsPiecesCutFinerThanItIsSizedFor() {
        // A ring of one still takes a 64 KiB segment in 536-byte pieces (123),
        // but not in 100-byte ones (600): the overflow is counted.
        let (pool, clock, emulator, far) = Self.rig(receive: .none, slotCount: 1024, capacity: 1)
        let bytes = Segments.coalesced(payloadLength: 60_000)
        Segments.sendCoalesced(bytes, from: far, segmentSize: 536, partial: false)
        var (arrivals, _) = Self.drain(emulator, clock)
        #expect(arrivals.count == 112 && arrivals.allSatisfy { $0.valid })
        #expect(emulator.receiveCounters.overflowDrops == 0)
        Segments.sendCoalesced(bytes, from: far, segmentSize: 100, partial: false)
        (arrivals, _) = Self.drain(emulator, clock)
        let c = emulator.receiveCounters
        #expect(arrivals.count == 123 && c.overflowDrops == 600 - 123)
        #expect(arrivals.map(\.seq) == (0..<123).map { 1 + UInt32($0) * 100 })
        #expect(pool.freeCount == pool.slotCount)
    }

    /// Over a device that would take TSO segments, TCP hands the emulator
    /// frames no longer than the MTU with their checksums complete: its
    /// bottleneck paces what crosses the wire.
    @Test func tcpSendsTheEmulatorWireFrames() throws {
        let link = LinkProfile(delay: .milliseconds(1), bitsPerSecond: 1_000_000_000)
        let pair = StackPair<RecordingDevice<LinkEmulator<MemoryLink>>>(
            slotCount: 1024, slotSize: TAPDevice.offloadSlotSize,
            capabilities: TCPSegmentationOffloadTests.offloading) { memory, _, clock in
            RecordingDevice(LinkEmulator(wrapping: memory, both: link, clock: clock))
        }
        pair.otherDeadline = { [unowned pair] in
            [pair.a.device.inner.nextReleaseDeadline, pair.b.device.inner.nextReleaseDeadline].compactMap { $0 }.min()
        }
        #expect(pair.a.device.capabilities == TCPSegmentationOffloadTests.offloading.wireFrames)
        let size = 1 << 20
        #expect(try TCPSegmentationOffloadTests.transfer(pair, size: size, seed: 3, events: true))
        let sent = pair.a.device.transmitted
        #expect(sent.count > size / 1448 && pair.a.counters.framesOut == UInt64(sent.count))
        var allWhole = true
        var tcpFrames = 0
        for frame in sent where frame.etherType == .ipv4 {
            var bytes = frame.bytes
            bytes.withUnsafeMutableBytes { b in
                guard b.count <= 1514, let eth = try? EthernetFrame(validating: b),
                      let ip = try? IPv4Packet(validating: eth.payload), ip.checksumIsValid,
                      let tcp = try? TCPSegment(validating: ip.payload),
                      tcp.checksumIsValid(source: ip.source, destination: ip.destination) else {
                    return allWhole = false
                }
                tcpFrames += 1
            }
        }
        #expect(tcpFrames > size / 1448)
        #expect(allWhole, "a frame longer than the MTU, or with a checksum left to the device")
        let c = pair.a.device.inner.transmitCounters
        #expect(c.frames == UInt64(sent.count) && c.segmentationDrops == 0)
    }

    @Test func steadyStateAllocatesNothingPerSegment() {
        let (pool, clock, emulator, far) = Self.rig(receive: LinkProfile(delay: .microseconds(200),
                                                                         bitsPerSecond: 1_000_000_000,
                                                                         queueLimitBytes: 128 * 1024))
        let bytes = Segments.coalesced(payloadLength: Self.payload64K)
        var delivered = 0
        // A 64 KiB segment takes 0.53 ms of the bottleneck; one every 0.5 ms keeps it full.
        func turn() {
            Segments.sendCoalesced(bytes, from: far, segmentSize: 1448)
            _ = emulator.receive(limit: .max) { _ in delivered += 1 }
            clock.advance(by: .microseconds(500))
            _ = emulator.receive(limit: .max) { _ in delivered += 1 }
        }
        for _ in 0..<20 { turn() }
        allocation_counter_start()
        for _ in 0..<200 { turn() }
        let allocations = allocation_counter_stop()
        let c = emulator.receiveCounters
        #expect(delivered > 200 * 40 && c.queueDrops > 0, "the link was busy and full")
        #expect(allocations == 0)
        _ = Self.drain(emulator, clock)
        #expect(pool.freeCount == pool.slotCount)
    }
}
