import AllocationCounter
import Testing
@testable import NetStack

/// SplitMix64: a tiny seeded generator, so the randomized tests replay exactly.
private struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e3779b97f4a7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58476d1ce4e5b9
        z = (z ^ (z >> 27)) &* 0x94d049bb133111eb
        return z ^ (z >> 31)
    }
}

private extension ByteRing {
    /// The readable bytes `[offset, offset + n)` copied out via `peek`.
    func bytes(from offset: Int = 0, count n: Int? = nil) -> [UInt8] {
        let (a, b) = peek(from: offset, count: n ?? count - offset)
        return Array(a) + Array(b)
    }
}

@Suite struct ByteRingTests {
    @Test func capacityRoundsUpToAPowerOfTwo() {
        #expect(ByteRing(capacity: 1).capacity == 1)
        #expect(ByteRing(capacity: 2).capacity == 2)
        #expect(ByteRing(capacity: 3).capacity == 4)
        #expect(ByteRing(capacity: 1000).capacity == 1024)
        #expect(ByteRing(capacity: 4096).capacity == 4096)
        #expect(ByteRing(capacity: 4097).capacity == 8192)
        let ring = ByteRing(capacity: 100)
        #expect(ring.count == 0 && ring.freeSpace == 128 && ring.isEmpty)
    }

    @Test func appendClipsToFreeSpaceAndReadConsumes() {
        let ring = ByteRing(capacity: 8)
        let data: [UInt8] = Array(1...12)
        let written = data.withUnsafeBytes { ring.append($0) }
        #expect(written == 8)
        #expect(ring.count == 8 && ring.freeSpace == 0 && ring.isFull)
        #expect(data.withUnsafeBytes { ring.append($0) } == 0)

        var out = [UInt8](repeating: 0, count: 5)
        #expect(out.withUnsafeMutableBytes { ring.read(into: $0) } == 5)
        #expect(out == [1, 2, 3, 4, 5])
        #expect(ring.count == 3 && ring.freeSpace == 5)

        // Wraps: 3 bytes at the end of storage, then 5 more from the start.
        #expect(data.withUnsafeBytes { ring.append(UnsafeRawBufferPointer(rebasing: $0[8..<12])) } == 4)
        #expect(ring.bytes() == [6, 7, 8, 9, 10, 11, 12])
        out = [UInt8](repeating: 0, count: 16)
        #expect(out.withUnsafeMutableBytes { ring.read(into: $0) } == 7)
        #expect(Array(out[0..<7]) == [6, 7, 8, 9, 10, 11, 12])
        #expect(ring.isEmpty)
        #expect(out.withUnsafeMutableBytes { ring.read(into: $0) } == 0)
    }

    @Test func peekAcrossTheWrapReturnsTwoPieces() {
        let ring = ByteRing(capacity: 16)
        let filler = [UInt8](repeating: 0xee, count: 12)
        filler.withUnsafeBytes { _ = ring.append($0) }
        ring.consume(12)
        let data: [UInt8] = Array(100..<110)
        #expect(data.withUnsafeBytes { ring.append($0) } == 10)

        let (a, b) = ring.peek(from: 0, count: 10)
        #expect(Array(a) == [100, 101, 102, 103])
        #expect(Array(b) == [104, 105, 106, 107, 108, 109])

        // A range that fits before the wrap comes back as one piece.
        let (c, d) = ring.peek(from: 1, count: 3)
        #expect(Array(c) == [101, 102, 103])
        #expect(d.isEmpty && d.baseAddress != nil)

        // A range entirely after the wrap: also one piece.
        let (e, f) = ring.peek(from: 5, count: 4)
        #expect(Array(e) == [105, 106, 107, 108])
        #expect(f.isEmpty)

        // Peeking consumes nothing; an empty peek is fine.
        #expect(ring.count == 10)
        let (g, h) = ring.peek(from: 10, count: 0)
        #expect(g.isEmpty && h.isEmpty)
    }

    @Test func writeAtOffsetThenCommit() {
        let ring = ByteRing(capacity: 16)
        let head: [UInt8] = [1, 2, 3]
        head.withUnsafeBytes { _ = ring.append($0) }

        // Out-of-order data 4 bytes past the readable end; count unchanged.
        let later: [UInt8] = [8, 9, 10]
        #expect(later.withUnsafeBytes { ring.write($0, at: 4) } == 3)
        #expect(ring.count == 3 && ring.freeSpace == 13)

        // The gap arrives; commit makes the whole run readable.
        let gap: [UInt8] = [4, 5, 6, 7]
        #expect(gap.withUnsafeBytes { ring.write($0, at: 0) } == 4)
        ring.commit(7)
        #expect(ring.bytes() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])

        // Consuming the front does not disturb bytes held past the end.
        let far: [UInt8] = [20, 21]
        #expect(far.withUnsafeBytes { ring.write($0, at: 2) } == 2)
        ring.consume(10)
        let near: [UInt8] = [18, 19]
        #expect(near.withUnsafeBytes { ring.write($0, at: 0) } == 2)
        ring.commit(4)
        #expect(ring.bytes() == [18, 19, 20, 21])
    }

    @Test func writeAtOffsetClipsToFreeSpace() {
        let ring = ByteRing(capacity: 8)
        let data: [UInt8] = Array(1...8)
        data.withUnsafeBytes { _ = ring.append(UnsafeRawBufferPointer(rebasing: $0[0..<3])) }
        // 5 bytes free: offset 3 leaves room for 2.
        #expect(data.withUnsafeBytes { ring.write($0, at: 3) } == 2)
        #expect(data.withUnsafeBytes { ring.write($0, at: 5) } == 0)
        #expect(data.withUnsafeBytes { ring.write($0, at: 100) } == 0)
        #expect(ring.count == 3)
        // Writing wraps the storage end too.
        ring.consume(3)
        #expect(data.withUnsafeBytes { ring.write($0, at: 2) } == 6)
        #expect(data.withUnsafeBytes { ring.write(UnsafeRawBufferPointer(rebasing: $0[6..<8]), at: 0) } == 2)
        ring.commit(8)
        #expect(ring.bytes() == [7, 8, 1, 2, 3, 4, 5, 6])
    }

    /// Thousands of random operations against a plain-array model: the readable
    /// bytes, and the bytes known to be held past the readable end.
    @Test(arguments: [(UInt64(1), 16), (2, 64), (3, 1000), (4, 1)])
    func randomOperationsMatchAModel(seed: UInt64, capacity: Int) {
        var rng = SeededGenerator(seed: seed)
        let ring = ByteRing(capacity: capacity)
        let cap = ring.capacity
        var readable: [UInt8] = []
        /// Offset past the readable end -> byte, for bytes written there.
        var beyond: [Int: UInt8] = [:]
        var nextByte: UInt8 = 0
        func fresh(_ n: Int) -> [UInt8] {
            (0..<n).map { _ in nextByte &+= 1; return nextByte }
        }

        for _ in 0..<20_000 {
            switch Int.random(in: 0..<7, using: &rng) {
            case 0: // append
                let data = fresh(Int.random(in: 0...cap + 2, using: &rng))
                let n = data.withUnsafeBytes { ring.append($0) }
                #expect(n == min(data.count, cap - readable.count))
                readable += data[0..<n]
                var moved: [Int: UInt8] = [:]
                for (k, v) in beyond where k >= n { moved[k - n] = v }
                beyond = moved
            case 1: // write at offset
                let offset = Int.random(in: 0...cap, using: &rng)
                let data = fresh(Int.random(in: 0...cap, using: &rng))
                let n = data.withUnsafeBytes { ring.write($0, at: offset) }
                #expect(n == max(0, min(data.count, cap - readable.count - offset)))
                for i in 0..<n { beyond[offset + i] = data[i] }
            case 2: // commit some of the known prefix past the end
                var known = 0
                while beyond[known] != nil { known += 1 }
                let n = Int.random(in: 0...known, using: &rng)
                ring.commit(n)
                for i in 0..<n { readable.append(beyond[i]!) }
                var moved: [Int: UInt8] = [:]
                for (k, v) in beyond where k >= n { moved[k - n] = v }
                beyond = moved
            case 3: // consume
                let n = Int.random(in: 0...readable.count, using: &rng)
                ring.consume(n)
                readable.removeFirst(n)
            case 4: // read
                var out = [UInt8](repeating: 0, count: Int.random(in: 0...cap + 1, using: &rng))
                let n = out.withUnsafeMutableBytes { ring.read(into: $0) }
                #expect(n == min(out.count, readable.count))
                #expect(Array(out[0..<n]) == Array(readable[0..<n]))
                readable.removeFirst(n)
            default: // peek a random range
                let offset = Int.random(in: 0...readable.count, using: &rng)
                let n = Int.random(in: 0...readable.count - offset, using: &rng)
                let (a, b) = ring.peek(from: offset, count: n)
                #expect(a.count + b.count == n)
                #expect(Array(a) + Array(b) == Array(readable[offset..<offset + n]))
            }
            #expect(ring.count == readable.count)
            #expect(ring.freeSpace == cap - readable.count)
        }
        #expect(ring.bytes() == readable)
    }

    @Test func appendPeekConsumeAndReadAllocateNothing() {
        let ring = ByteRing(capacity: 4096)
        let chunk = [UInt8](repeating: 0x5a, count: 1460)
        var out = [UInt8](repeating: 0, count: 1000)
        var total = 0
        chunk.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                // Warm up once (first use may instantiate metadata), then count.
                for i in -1..<10_000 {
                    if i == 0 { allocation_counter_start() }
                    total &+= ring.append(src)
                    let (a, b) = ring.peek(from: 0, count: min(ring.count, 1460))
                    total &+= a.count + b.count
                    total &+= ring.write(src, at: 100)
                    if i % 2 == 0 {
                        ring.consume(min(ring.count, 1460))
                    } else {
                        total &+= ring.read(into: dst)
                    }
                    if ring.freeSpace > 10 { ring.commit(10) }
                }
                let allocations = allocation_counter_stop()
                #expect(allocations == 0, "\(allocations) allocations")
            }
        }
        #expect(total > 0)
    }
}
