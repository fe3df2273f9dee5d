import Testing
@testable import NetStack
import NetStackWire

/// Rings allocated on first use and grown on demand (`ByteRing`): a
/// connection holds the memory its traffic needs, not its buffers' maxima,
/// and growth never changes what the ring holds.
@Suite struct RingGrowthTests {
    private static func bytes(_ n: Int, from start: Int) -> [UInt8] {
        (0..<n).map { UInt8(truncatingIfNeeded: ($0 + start) &* 31 &+ 7) }
    }

    private static func contents(_ ring: ByteRing) -> [UInt8] {
        let (a, b) = ring.peek(from: 0, count: ring.count)
        return Array(a) + Array(b)
    }

    @Test func nothingIsAllocatedBeforeTheFirstWrite() {
        let ring = ByteRing(capacity: 1 << 20)
        #expect(ring.allocatedBytes == 0)
        #expect(ring.freeSpace == 1 << 20)
        let (a, b) = ring.peek(from: 0, count: 0)
        #expect(a.isEmpty && b.isEmpty)
        ring.consume(0)
        #expect(ring.allocatedBytes == 0)
        #expect(Self.bytes(10, from: 0).withUnsafeBytes { ring.append($0) } == 10)
        #expect(ring.allocatedBytes == ByteRing.initialStorage)
    }

    @Test func growthDoublesUpToTheCapacityAndNoFurther() {
        let ring = ByteRing(capacity: 64 * 1024)
        var sizes: [Int] = []
        let chunk = Self.bytes(3000, from: 0)
        while ring.freeSpace > 0 {
            _ = chunk.withUnsafeBytes { ring.append($0) }
            if sizes.last != ring.allocatedBytes { sizes.append(ring.allocatedBytes) }
        }
        #expect(sizes == [4096, 8192, 16384, 32768, 65536])
        #expect(ring.count == 64 * 1024)
        // A small ring's first allocation is the whole ring.
        let small = ByteRing(capacity: 1000)
        _ = chunk.withUnsafeBytes { small.append(UnsafeRawBufferPointer(rebasing: $0[0..<1])) }
        #expect(small.allocatedBytes == 1024)
    }

    /// Growth while the readable bytes wrap the end of the storage, and with
    /// text written past the end (out-of-order data): every offset keeps its
    /// byte.
    @Test func growthKeepsWrappedBytesAndBytesPastTheEnd() {
        let ring = ByteRing(capacity: 1 << 16)
        var model: [UInt8] = []
        let first = Self.bytes(3000, from: 0)
        _ = first.withUnsafeBytes { ring.append($0) }
        model += first
        ring.consume(2500)
        model.removeFirst(2500)
        // 500 readable from index 2500; 3000 more wrap past index 4095.
        let second = Self.bytes(3000, from: 3000)
        _ = second.withUnsafeBytes { ring.append($0) }
        model += second
        #expect(ring.allocatedBytes == 4096)
        let (a, b) = ring.peek(from: 0, count: ring.count)
        #expect(a.count > 0 && b.count > 0, "the readable bytes wrap")
        // Out-of-order text 200 bytes past the end, before the gap fills.
        let later = Self.bytes(300, from: 9000)
        #expect(later.withUnsafeBytes { ring.write($0, at: 200) } == 300)
        #expect(ring.allocatedBytes == 4096)
        // Text far past the end makes the ring grow.
        let far = Self.bytes(1000, from: 20000)
        #expect(far.withUnsafeBytes { ring.write($0, at: 5000) } == 1000)
        #expect(ring.allocatedBytes == 16384)
        #expect(Self.contents(ring) == model)
        // The gap fills: everything written past the end is where it was.
        let gap = Self.bytes(200, from: 8000)
        #expect(gap.withUnsafeBytes { ring.write($0, at: 0) } == 200)
        ring.commit(500)
        model += gap + later
        #expect(Self.contents(ring) == model)
        let (c, d) = ring.peek(from: 0, count: 0)
        #expect(c.isEmpty && d.isEmpty)
        // The far text is 4500 bytes past the new end.
        let filler = Self.bytes(4500, from: 30000)
        #expect(filler.withUnsafeBytes { ring.write($0, at: 0) } == 4500)
        ring.commit(5500)
        model += filler + far
        #expect(Self.contents(ring) == model)
    }

    @Test func replacedStorageWaitsForItsReleaseWhenAsked() {
        let keeping = ByteRing(capacity: 1 << 16, keepsReplacedStorage: true)
        let chunk = Self.bytes(5000, from: 0)
        _ = chunk.withUnsafeBytes { keeping.append(UnsafeRawBufferPointer(rebasing: $0[0..<100])) }
        #expect(!keeping.hasReplacedStorage)
        _ = chunk.withUnsafeBytes { keeping.append($0) }
        #expect(keeping.hasReplacedStorage)
        keeping.releaseReplacedStorage()
        #expect(!keeping.hasReplacedStorage)
        #expect(Self.contents(keeping) == Array(chunk[0..<100]) + chunk)

        let plain = ByteRing(capacity: 1 << 16)
        _ = chunk.withUnsafeBytes { plain.append($0) }
        _ = chunk.withUnsafeBytes { plain.append($0) }
        #expect(!plain.hasReplacedStorage)
    }

    // MARK: Connections

    /// A half-open and an idle established connection hold no ring memory;
    /// text makes the receive ring as large as it needs.
    @Test func connectionsHoldRingMemoryOnlyForWhatTheyCarry() throws {
        let h = PeerHarness()
        h.resolvePeer()
        _ = try h.tcp.listen(port: 80)
        let peerISS = SequenceNumber(1000)
        let synAck = h.exchangeTCP(h.tcpFrame(.syn, destinationPort: 80, seq: peerISS, options: TCPOptions(mss: 1460)))
        let halfOpen = try #require(h.tcpConnection(peerPort: 40000))
        #expect(halfOpen.state == .synReceived)
        #expect(halfOpen.receiver.receiveBuffer.allocatedBytes == 0)
        #expect(halfOpen.sender.sendBuffer.allocatedBytes == 0)
        let iss = try #require(synAck.first?.seq)
        _ = h.exchangeTCP(h.tcpFrame(.ack, destinationPort: 80, seq: peerISS + 1, ack: iss + 1))
        let c = try #require(h.tcpConnection(peerPort: 40000))
        #expect(c.state == .established)
        #expect(c.receiver.receiveBuffer.allocatedBytes == 0)
        #expect(c.sender.sendBuffer.allocatedBytes == 0)
        _ = h.exchangeTCP(h.tcpFrame(.ack, destinationPort: 80, seq: peerISS + 1, ack: iss + 1,
                                     payload: Self.bytes(1000, from: 0)))
        #expect(c.readableBytes == 1000)
        #expect(c.receiver.receiveBuffer.allocatedBytes == ByteRing.initialStorage)
        #expect(c.sender.sendBuffer.allocatedBytes == 0)
    }

    /// A connection that carried data gives its rings' memory back once it
    /// has been idle through a sweep, and takes it again for more data.
    @Test func anIdleConnectionGivesItsRingMemoryBack() throws {
        let h = PeerHarness()
        h.resolvePeer()
        let listener = try h.tcp.listen(port: 80)
        let peerISS = SequenceNumber(1000)
        let synAck = h.exchangeTCP(h.tcpFrame(.syn, destinationPort: 80, seq: peerISS, options: TCPOptions(mss: 1460)))
        let iss = try #require(synAck.first?.seq)
        _ = h.exchangeTCP(h.tcpFrame(.ack, destinationPort: 80, seq: peerISS + 1, ack: iss + 1))
        let c = try #require(listener.accept())
        _ = h.exchangeTCP(h.tcpFrame(.ack, destinationPort: 80, seq: peerISS + 1, ack: iss + 1,
                                     payload: Self.bytes(1000, from: 0)))
        var got: [UInt8] = []
        _ = c.read(appendingTo: &got)
        #expect(got == Self.bytes(1000, from: 0))
        #expect(Self.bytes(700, from: 5).withUnsafeBytes { c.write($0) } == 700)
        h.tcp.flush(c, now: h.now)
        let reply = h.tcpOnly(h.sent())
        #expect(reply.first?.payload == Self.bytes(700, from: 5))
        _ = h.exchangeTCP(h.tcpFrame(.ack, destinationPort: 80, seq: peerISS + 1001, ack: iss + 701))
        #expect(c.receiver.receiveBuffer.allocatedBytes > 0 && c.sender.sendBuffer.allocatedBytes > 0)
        #expect(c.sender.sendBuffer.isEmpty && c.readableBytes == 0)
        // Two sweeps without a byte moving: the second gives the memory back.
        for _ in 0..<2 { _ = h.advanceTCP(by: TCPLayer.idleSweepInterval + .milliseconds(10)) }
        #expect(c.receiver.receiveBuffer.allocatedBytes == 0)
        #expect(c.sender.sendBuffer.allocatedBytes == 0)
        #expect(c.state == .established)
        // More data: the rings come back, and the bytes are right.
        _ = h.exchangeTCP(h.tcpFrame(.ack, destinationPort: 80, seq: peerISS + 1001, ack: iss + 701,
                                     payload: Self.bytes(300, from: 9)))
        got = []
        _ = c.read(appendingTo: &got)
        #expect(got == Self.bytes(300, from: 9))
        #expect(c.receiver.receiveBuffer.allocatedBytes == ByteRing.initialStorage)
    }

    /// The send ring grows while frames whose tails lie in its old storage
    /// wait for the device's flush: the old storage is kept until the flush,
    /// and the bytes arrive intact.
    @Test func aSendRingGrowingBeforeTheFlushKeepsQueuedTailsValid() throws {
        let pair = TCPStackPair(slotCount: 512, slotSize: TAPDevice.offloadSlotSize,
                                capabilities: TCPSegmentationOffloadTests.readingTails)
        let (client, s) = try TCPConnectionSpanTests.connected(pair)
        let data = Self.bytes(200_000, from: 0)
        // 3000 bytes go out as a tail read from the ring's first storage...
        #expect(data.withUnsafeBytes { client.write(UnsafeRawBufferPointer(rebasing: $0[0..<3000])) } == 3000)
        pair.a.tcp.servicePending(now: pair.now)
        #expect(client.sender.sendBuffer.allocatedBytes == ByteRing.initialStorage)
        // ...and before the device is flushed the ring grows.
        #expect(data.withUnsafeBytes { client.write(UnsafeRawBufferPointer(rebasing: $0[3000...])) } == 197_000)
        #expect(client.sender.sendBuffer.allocatedBytes == 262_144)
        #expect(client.sender.sendBuffer.hasReplacedStorage, "the first storage waits for the flush")
        pair.a.flushDevice()
        #expect(!client.sender.sendBuffer.hasReplacedStorage)
        var received: [UInt8] = []
        pair.run(until: { received.count == data.count }, app: {
            let before = received.count
            _ = s.read(appendingTo: &received)
            return received.count > before
        })
        #expect(received == data)
        #expect(pair.a.tcp.counters.payloadBytesCopiedOut == UInt64(data.count), "new data went as tails, not copied")
    }
}
