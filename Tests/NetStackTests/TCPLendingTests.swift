import Testing
@testable import NetStack
import NetStackWire

/// Bytes lent to TCP (`TCPConnection.write(lending:owner:)`), as the socket
/// API lends an application's shared ring: the lender gets room back only
/// as `unacknowledgedBytes` shrinks, and writes new bytes over it at once.
/// A byte released early, or read after its release, would change what
/// arrives, so the hash of the received stream is the test.
@Suite struct TCPLendingTests {
    /// The application's side: a ring that lends its bytes and overwrites
    /// the room it gets back with the next bytes of a seeded stream.
    final class LendingRing {
        let size: Int
        let storage: UnsafeMutableRawBufferPointer
        var head = 0, lentUpTo = 0, tail = 0
        let total: Int
        var rng = SplitMix64(seed: 99)
        var sentHash = FNV1a()

        init(size: Int, total: Int) {
            self.size = size
            self.total = total
            storage = .allocate(byteCount: size, alignment: 64)
            storage.initializeMemory(as: UInt8.self, repeating: 0)
        }
        deinit { storage.deallocate() }

        /// Fills the room with the stream's next bytes.
        func fill() {
            while tail < total && tail - head < size {
                let byte = UInt8(truncatingIfNeeded: rng.next())
                storage[tail % size] = byte
                withUnsafeBytes(of: byte) { sentHash.add($0) }
                tail += 1
            }
        }

        /// Takes back what the peer acknowledged, refills, lends what is new.
        func pump(_ c: TCPConnection) -> Bool {
            let acknowledged = (lentUpTo - head) - c.unacknowledgedBytes
            head += acknowledged
            fill()
            var moved = acknowledged > 0
            while lentUpTo < tail {
                let at = lentUpTo % size
                let piece = UnsafeRawBufferPointer(rebasing: storage[at..<min(size, at + tail - lentUpTo)])
                let n = c.write(lending: piece, owner: self)
                lentUpTo += n
                moved = moved || n > 0
                if n < piece.count { break }
            }
            return moved
        }
    }

    static func transfer<D: Device>(_ pair: StackPair<D>, size: Int, ringSize: Int) throws -> (Bool, TCPConnection) {
        let listener = try pair.b.tcp.listen(port: 9)
        let client = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: 9, now: pair.now)
        var server: TCPConnection?
        let ring = LendingRing(size: ringSize, total: size)
        let sink = BulkTransfer(length: size, seed: 0)
        let finished = pair.run(until: { sink.read == size && client.unacknowledgedBytes == 0 }, app: {
            if server == nil { server = listener.accept() }
            var moved = client.state.isSynchronized && ring.pump(client)
            if let s = server { moved = sink.drain(from: s) || moved }
            return moved
        })
        return (finished && sink.receivedHash.value == ring.sentHash.value, client)
    }

    @Test func lentBytesArriveIntactAndAreNeverCopied() throws {
        let pair = TCPStackPair(slotCount: 512, slotSize: TAPDevice.offloadSlotSize,
                                capabilities: TCPSegmentationOffloadTests.readingTails)
        let (intact, client) = try Self.transfer(pair, size: 4 << 20, ringSize: 256 * 1024)
        #expect(intact)
        #expect(client.bytesCopiedSending == 0, "lent bytes are read in place")
        #expect(client.unacknowledgedBytes == 0)
    }

    @Test func lentBytesSurviveLossAndReordering() throws {
        let faults = FaultProfile(loss: 0.03, reorder: 0.03)
        let pair = FaultyStackPair(aTransmit: faults, bTransmit: faults, seed: 41)
        let (intact, client) = try Self.transfer(pair, size: 1 << 20, ringSize: 64 * 1024)
        #expect(intact, "resent from lent bytes the lender had not got back")
        #expect(client.segmentsRetransmitted > 0)
    }

    @Test func aRunOfLentBytesHoldsItsOwnerUntilAcknowledged() {
        let buffer = SendBuffer(capacity: 64)
        let bytes = [UInt8](0..<32)
        weak var released: LendingRing?
        bytes.withUnsafeBytes { raw in
            do {
                let owner = LendingRing(size: 1, total: 0)
                released = owner
                #expect(buffer.append(reference: UnsafeRawBufferPointer(rebasing: raw[0..<10]), owner: owner) == 10)
                #expect(buffer.append(reference: UnsafeRawBufferPointer(rebasing: raw[10..<20]), owner: owner) == 10)
            }
            let (a, b) = buffer.peek(from: 0, count: 64)
            #expect(a.count == 20 && b.isEmpty, "adjacent lent bytes of one owner join one run")
            #expect(a.baseAddress == raw.baseAddress)
            buffer.consume(15)
            #expect(released != nil)
            #expect([UInt8](buffer.peek(from: 0, count: 64).0) == [UInt8](15..<20))
            buffer.consume(5)
        }
        #expect(released == nil)
    }
}
