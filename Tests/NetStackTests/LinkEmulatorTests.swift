import AllocationCounter
import Testing
@testable import NetStack
import NetStackWire

/// `LinkEmulator` over a `MemoryLink` on a virtual clock: delay, serialization
/// and the drop-tail queue to the nanosecond, both directions, composed with a
/// `FaultInjector`, and two stacks handshaking across it.
@Suite struct LinkEmulatorTests {
    /// An emulator on one end of a memory link; `far` is the raw other end.
    final class Rig<D: Device> {
        let pool: PacketPool
        let clock = VirtualClock(start: Instant(nanoseconds: 1_000_000_000))
        let near: MemoryLink
        let far: MemoryLink
        var device: D!

        init(slotCount: Int = 512, wrap: (MemoryLink, VirtualClock) -> D) {
            pool = PacketPool(slotCount: slotCount)
            (near, far) = MemoryLink.pair(pool: pool, queueCapacity: 1024)
            device = wrap(near, clock)
        }

        var t0: Instant { Instant(nanoseconds: 1_000_000_000) }

        /// A frame of `length` bytes whose first two bytes are `index`.
        func frame(_ index: Int, length: Int) -> PacketBuffer {
            var b = pool.allocate()!
            b.withCapacity { p in
                for i in 0..<length { p[i] = UInt8(truncatingIfNeeded: i &* 7) }
                p[0] = UInt8(truncatingIfNeeded: index >> 8)
                p[1] = UInt8(truncatingIfNeeded: index)
            }
            b.setLength(length)
            return b
        }

        static func index(_ f: borrowing PacketBuffer) -> Int {
            f.withBytes { Int($0[0]) << 8 | Int($0[1]) }
        }

        /// Sends through the device's transmit side.
        func send(_ index: Int, length: Int = 1250) { device.transmit(frame(index, length: length)) }
        /// Sends from the far end towards the device's receive side.
        func inject(_ index: Int, length: Int = 1250) { far.transmit(frame(index, length: length)) }

        /// Indices of what reached the far end by now (after a flush).
        func collectFar() -> [Int] {
            device.flush()
            var out: [Int] = []
            _ = far.receive(limit: .max) { f in out.append(Self.index(f)) }
            return out
        }

        /// Indices of what the device hands up by now.
        func collectNear() -> [Int] {
            var out: [Int] = []
            _ = device.receive(limit: .max) { f in out.append(Self.index(f)) }
            return out
        }
    }

    typealias EmulatorRig = Rig<LinkEmulator<MemoryLink>>

    static func rig(receive: LinkProfile = .none, transmit: LinkProfile = .none, capacity: Int = 1024)
        -> EmulatorRig {
        EmulatorRig { link, clock in
            LinkEmulator(wrapping: link, receive: receive, transmit: transmit, clock: clock, capacity: capacity)
        }
    }

    /// Steps the clock from deadline to deadline, recording when each frame
    /// came out of the far end, until nothing is left inside.
    static func deliveryTimes(_ rig: EmulatorRig) -> [(index: Int, at: Duration)] {
        var out: [(Int, Duration)] = []
        for i in rig.collectFar() { out.append((i, rig.clock.now - rig.t0)) }
        while let next = rig.device.nextReleaseDeadline {
            rig.clock.set(next)
            let got = rig.collectFar()
            #expect(!got.isEmpty, "a deadline with nothing due at \(next)")
            for i in got { out.append((i, rig.clock.now - rig.t0)) }
        }
        return out
    }

    // MARK: Delay

    @Test func delayIsHonouredToTheNanosecond() {
        let rig = Self.rig(transmit: LinkProfile(delay: .milliseconds(5)))
        rig.send(1)
        #expect(rig.collectFar().isEmpty)
        #expect(rig.device.nextReleaseDeadline == rig.t0 + .milliseconds(5))
        rig.clock.set(rig.t0 + .milliseconds(1))
        rig.send(2)
        rig.clock.set(rig.t0 + (.milliseconds(5) - .nanoseconds(1)))
        #expect(rig.collectFar().isEmpty)
        rig.clock.set(rig.t0 + .milliseconds(5))
        #expect(rig.collectFar() == [1])
        #expect(rig.device.nextReleaseDeadline == rig.t0 + .milliseconds(6))
        rig.clock.set(rig.t0 + (.milliseconds(6) - .nanoseconds(1)))
        #expect(rig.collectFar().isEmpty)
        rig.clock.set(rig.t0 + .milliseconds(6))
        #expect(rig.collectFar() == [2])
        #expect(rig.device.nextReleaseDeadline == nil)
        #expect(rig.device.transmitCounters.delivered == 2)
    }

    @Test func receiveSideDelaysFramesFromTheWire() {
        let rig = Self.rig(receive: LinkProfile(delay: .milliseconds(3), bitsPerSecond: 10_000_000))
        rig.inject(1)
        rig.inject(2, length: 125)
        // Stamped when taken from the wire: 1 ms and 0.1 ms of serialization, then 3 ms.
        #expect(rig.collectNear().isEmpty)
        #expect(rig.device.framesHeld == 2)
        rig.clock.set(rig.t0 + (.milliseconds(4) - .nanoseconds(1)))
        #expect(rig.collectNear().isEmpty)
        rig.clock.set(rig.t0 + .milliseconds(4))
        #expect(rig.collectNear() == [1])
        #expect(rig.device.nextReleaseDeadline == rig.t0 + .microseconds(4100))
        rig.clock.set(rig.t0 + .microseconds(4100))
        #expect(rig.collectNear() == [2])
        #expect(rig.device.receiveCounters.delivered == 2 && rig.device.transmitCounters.frames == 0)
    }

    @Test func receiveHonoursItsLimit() {
        let rig = Self.rig(receive: LinkProfile(delay: .milliseconds(1)))
        for i in 0..<5 { rig.inject(i) }
        #expect(rig.collectNear().isEmpty)  // taken from the wire, so stamped, now
        rig.clock.set(rig.t0 + .milliseconds(1))
        var got: [Int] = []
        #expect(rig.device.receive(limit: 2) { got.append(EmulatorRig.index($0)) } == 2)
        #expect(got == [0, 1])
        #expect(rig.collectNear() == [2, 3, 4])
    }

    // MARK: Serialization

    @Test func framesAreSerializedAtTheConfiguredRate() {
        // 1250 bytes at 10 Mbit/s: exactly 1 ms each; 125 bytes: 0.1 ms.
        let rig = Self.rig(transmit: LinkProfile(delay: .milliseconds(2), bitsPerSecond: 10_000_000))
        for i in 0..<5 { rig.send(i) }
        rig.send(5, length: 125)
        let times = Self.deliveryTimes(rig)
        #expect(times.map(\.index) == [0, 1, 2, 3, 4, 5])
        #expect(times.map(\.at) == [3, 4, 5, 6, 7].map { .milliseconds($0) } + [.microseconds(7100)])
        // An idle link banks no credit: the next frame starts when it arrives.
        rig.clock.set(rig.t0 + .milliseconds(20))
        rig.send(6)
        #expect(Self.deliveryTimes(rig).map(\.at) == [.milliseconds(23)])
        #expect(rig.device.transmitCounters.bytes == 6 * 1250 + 125)
    }

    @Test func aFrameArrivingMidSerializationWaitsForTheOneOnTheWire() {
        let rig = Self.rig(transmit: LinkProfile(bitsPerSecond: 10_000_000))
        rig.send(0)
        rig.clock.set(rig.t0 + .microseconds(400))
        rig.send(1)
        // 0 leaves at 1 ms; 1 starts then and leaves at 2 ms, not 1.4 ms.
        #expect(Self.deliveryTimes(rig).map(\.at) == [.milliseconds(1), .milliseconds(2)])
    }

    @Test func rateThatDoesNotDivideRoundsUpNeverEarly() {
        // 100 bytes at 3 Mbit/s: 266_666.67 ns, so 266_667 ns.
        let rig = Self.rig(transmit: LinkProfile(bitsPerSecond: 3_000_000))
        rig.send(0, length: 100)
        #expect(Self.deliveryTimes(rig).map(\.at) == [.nanoseconds(266_667)])
    }

    // MARK: Queue

    @Test func aFullQueueDropsAtTheTailAndCounts() {
        // One frame on the wire plus 4 x 1250 bytes waiting; the rest of a burst of 10 is dropped.
        let profile = LinkProfile(delay: .milliseconds(1), bitsPerSecond: 10_000_000, queueLimitBytes: 5000)
        let rig = Self.rig(transmit: profile)
        for i in 0..<10 { rig.send(i) }
        var c = rig.device.transmitCounters
        #expect(c.frames == 10 && c.queueDrops == 5 && c.peakQueueBytes == 5000 && c.overflowDrops == 0)
        let times = Self.deliveryTimes(rig)
        #expect(times.map(\.index) == [0, 1, 2, 3, 4])
        #expect(times.map(\.at) == [2, 3, 4, 5, 6].map { .milliseconds($0) })
        c = rig.device.transmitCounters
        #expect(c.delivered == 5 && c.queueDrops == 5)
        #expect(rig.pool.freeCount == rig.pool.slotCount, "dropped frames went back to the pool")
    }

    @Test func theQueueDrainsAtTheRateAndTakesFramesAgain() {
        let profile = LinkProfile(bitsPerSecond: 10_000_000, queueLimitBytes: 2500)
        let rig = Self.rig(transmit: profile)
        for i in 0..<4 { rig.send(i) }  // 0 on the wire, 1 and 2 wait, 3 dropped.
        // At 1.5 ms frame 1 is on the wire and only 2 waits: room for one more.
        rig.clock.set(rig.t0 + .microseconds(1500))
        #expect(rig.collectFar() == [0])
        rig.send(4)
        rig.send(5)
        #expect(rig.device.transmitCounters.queueDrops == 2)
        #expect(Self.deliveryTimes(rig).map(\.index) == [1, 2, 4])
    }

    @Test func aSmallRingOverflowsAndSaysSo() {
        let rig = Self.rig(transmit: LinkProfile(delay: .milliseconds(1)), capacity: 3)
        for i in 0..<5 { rig.send(i) }
        #expect(rig.device.transmitCounters.overflowDrops == 2)
        #expect(rig.device.transmitCounters.queueDrops == 0)
        #expect(Self.deliveryTimes(rig).map(\.index) == [0, 1, 2])
    }

    @Test func bandwidthDelayProduct() {
        #expect(LinkProfile.bandwidthDelayProduct(bitsPerSecond: 100_000_000, rtt: .milliseconds(10)) == 125_000)
        #expect(LinkProfile.bandwidthDelayProduct(bitsPerSecond: 8_000, rtt: .seconds(2)) == 2000)
    }

    @Test func aPassThroughProfileDeliversAtOnce() {
        let rig = Self.rig()
        for i in 0..<3 { rig.send(i) }
        #expect(rig.collectFar() == [0, 1, 2])
        rig.inject(9)
        #expect(rig.collectNear() == [9])
        #expect(rig.device.framesHeld == 0)
    }

    @Test func framesInsideGoBackToThePool() {
        let pool: PacketPool
        do {
            let rig = Self.rig(receive: LinkProfile(delay: .seconds(1)), transmit: LinkProfile(delay: .seconds(1)))
            pool = rig.pool
            for i in 0..<10 { rig.send(i); rig.inject(i) }
            _ = rig.collectNear()
            #expect(rig.device.framesHeld == 20)
            #expect(pool.freeCount == pool.slotCount - 20)
        }
        #expect(pool.freeCount == pool.slotCount)
    }

    // MARK: With a FaultInjector

    @Test func lossBeforeTheQueueSavesTheBottleneck() {
        let link = LinkProfile(delay: .milliseconds(1), bitsPerSecond: 10_000_000)
        let rig = Rig<FaultInjector<LinkEmulator<MemoryLink>>> { near, clock in
            FaultInjector(wrapping: LinkEmulator(wrapping: near, transmit: link, clock: clock),
                          transmit: FaultProfile(loss: 0.3), seed: 5, clock: clock)
        }
        for i in 0..<100 { rig.send(i) }
        let dropped = Int(rig.device.transmitCounters.dropped)
        #expect(dropped > 10 && dropped < 60)
        var arrived: [Int] = []
        var last = rig.t0
        while let next = rig.device.inner.nextReleaseDeadline {
            rig.clock.set(next)
            arrived += rig.collectFar()
            last = next
        }
        #expect(arrived.count == 100 - dropped)
        #expect(arrived == arrived.sorted())
        // Only the survivors used the bottleneck, back to back.
        #expect(last - rig.t0 == .milliseconds(1 + 100 - dropped))
        #expect(rig.device.inner.transmitCounters.frames == UInt64(100 - dropped))
    }

    @Test func lossAfterTheQueueStillUsesTheBottleneck() {
        let link = LinkProfile(delay: .milliseconds(1), bitsPerSecond: 10_000_000)
        let rig = Rig<LinkEmulator<FaultInjector<MemoryLink>>> { near, clock in
            LinkEmulator(wrapping: FaultInjector(wrapping: near, transmit: FaultProfile(loss: 0.3), seed: 5,
                                                 clock: clock),
                         transmit: link, clock: clock)
        }
        for i in 0..<100 { rig.send(i) }
        var arrived: [Int] = []
        var last = rig.t0
        while let next = rig.device.nextReleaseDeadline {
            rig.clock.set(next)
            arrived += rig.collectFar()
            last = next
        }
        let dropped = Int(rig.device.inner.transmitCounters.dropped)
        #expect(dropped > 10 && dropped < 60)
        #expect(arrived.count == 100 - dropped && arrived == arrived.sorted())
        #expect(rig.device.transmitCounters.delivered == 100)
        #expect(last - rig.t0 == .milliseconds(101))
    }

    // MARK: Between two stacks

    /// A handshake across 5 ms each way at 100 Mbit/s: the client is
    /// established exactly one round trip plus the SYN's and SYN-ACK's
    /// serialization (80 ns a byte) after connecting, which holds only if the
    /// event-driven harness delivers each frame the moment it comes out.
    @Test func aHandshakeTakesOneRoundTripAndTheSerialization() throws {
        let link = LinkProfile(delay: .milliseconds(5), bitsPerSecond: 100_000_000)
        let pair = StackPair<LinkEmulator<MemoryLink>>(wrap: { link0, _, clock in
            LinkEmulator(wrapping: link0, transmit: link, clock: clock)
        })
        pair.otherDeadline = { [unowned pair] in
            [pair.a.device.nextReleaseDeadline, pair.b.device.nextReleaseDeadline].compactMap { $0 }.min()
        }
        // Resolve ARP beforehand: only TCP crosses the link below.
        pair.a.arp.update(TCPStackPair.ipB, mac: pair.b.macAddress, now: pair.now, create: true)
        pair.b.arp.update(TCPStackPair.ipA, mac: pair.a.macAddress, now: pair.now, create: true)
        let listener = try pair.b.tcp.listen(port: 80)
        let start = pair.now
        let client = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: 80, now: pair.now)
        let synLength = pair.a.counters.bytesOut
        var established: Instant?
        let outcome = pair.runEvents(until: { established != nil }, deadline: start + .seconds(1), app: {
            if established == nil && client.state == .established { established = pair.now }
            return false
        })
        #expect(outcome == .finished)
        let synAckLength = pair.b.counters.bytesOut
        #expect(synLength > 60 && synAckLength > 60)
        #expect(established.map { $0 - start }
                    == .milliseconds(10) + .nanoseconds(80 * Int64(synLength + synAckLength)))
        // The final ACK reaches the server 5 ms later, and the listener has it to accept.
        let accepted = pair.runEvents(until: { listener.accept() != nil }, deadline: start + .seconds(1))
        #expect(accepted == .finished)
    }

    // MARK: Allocation

    @Test func steadyStateAllocatesNothingPerFrame() {
        let link = LinkProfile(delay: .milliseconds(1), bitsPerSecond: 100_000_000, queueLimitBytes: 50_000)
        let rig = Self.rig(receive: link, transmit: link)
        func turn() {
            for i in 0..<8 { rig.send(i, length: 1514); rig.inject(i, length: 1514) }
            rig.clock.advance(by: .microseconds(900))
            rig.device.flush()
            _ = rig.far.receive(limit: .max) { _ in }
            _ = rig.device.receive(limit: .max) { _ in }
        }
        for _ in 0..<50 { turn() }
        allocation_counter_start()
        for _ in 0..<500 { turn() }
        let allocations = allocation_counter_stop()
        let c = rig.device.transmitCounters
        #expect(c.delivered > 3000 && c.queueDrops > 0, "the link was busy and full")
        #expect(allocations == 0)
    }
}
