import AllocationCounter
import Testing
@testable import NetStack

private extension Assembler {
    /// The ranges as `[start, end)` pairs, for comparing.
    var pairs: [[Int]] { ranges.map { [$0.start, $0.end] } }
    var recent: [Int]? { mostRecent.map { [$0.start, $0.end] } }
}

/// `#expect(a.add(...))` does not compile (the macro calls the member on an
/// immutable copy), so these tests write `#expect(a.add(...) == true)`.
@Suite struct AssemblerTests {
    @Test func startsEmpty() {
        var a = Assembler()
        #expect(a.isEmpty)
        #expect(a.ranges.isEmpty)
        #expect(a.mostRecent == nil)
        #expect(a.takeFront() == 0)
        #expect(a.maxRanges == 16)
    }

    @Test func inOrderDataIsTakenAtOnce() {
        var a = Assembler()
        #expect(a.add(offset: 0, length: 100) == true)
        #expect(a.pairs == [[0, 100]])
        #expect(a.recent == [0, 100])
        #expect(a.takeFront() == 100)
        #expect(a.isEmpty)
        #expect(a.mostRecent == nil)
        #expect(a.takeFront() == 0)
    }

    @Test func outOfOrderDataWaitsForTheGap() {
        var a = Assembler()
        #expect(a.add(offset: 200, length: 100) == true)
        #expect(a.add(offset: 500, length: 50) == true)
        #expect(a.pairs == [[200, 300], [500, 550]])
        #expect(a.takeFront() == 0)
        #expect(!a.isEmpty)

        // The gap before the first range is filled: 300 bytes in order.
        #expect(a.add(offset: 0, length: 200) == true)
        #expect(a.pairs == [[0, 300], [500, 550]])
        #expect(a.takeFront() == 300)
        #expect(a.pairs == [[200, 250]])
        #expect(a.takeFront() == 0)

        #expect(a.add(offset: 0, length: 200) == true)
        #expect(a.takeFront() == 250)
        #expect(a.isEmpty)
    }

    @Test func overlapsMerge() {
        var a = Assembler()
        #expect(a.add(offset: 10, length: 10) == true)    // [10, 20)
        #expect(a.add(offset: 30, length: 10) == true)    // [30, 40)
        #expect(a.add(offset: 50, length: 10) == true)    // [50, 60)
        #expect(a.add(offset: 15, length: 10) == true)    // overlaps the first's tail
        #expect(a.pairs == [[10, 25], [30, 40], [50, 60]])
        #expect(a.add(offset: 5, length: 8) == true)      // overlaps the first's head
        #expect(a.pairs == [[5, 25], [30, 40], [50, 60]])
        #expect(a.add(offset: 32, length: 3) == true)     // entirely inside: a duplicate
        #expect(a.pairs == [[5, 25], [30, 40], [50, 60]])
        #expect(a.recent == [30, 40])
        #expect(a.add(offset: 20, length: 35) == true)    // spans three ranges
        #expect(a.pairs == [[5, 60]])
        #expect(a.add(offset: 0, length: 100) == true)    // covers everything
        #expect(a.pairs == [[0, 100]])
    }

    @Test func adjacentRangesMerge() {
        var a = Assembler()
        #expect(a.add(offset: 10, length: 10) == true)    // [10, 20)
        #expect(a.add(offset: 30, length: 10) == true)    // [30, 40)
        #expect(a.add(offset: 20, length: 10) == true)    // touches both: one range
        #expect(a.pairs == [[10, 40]])
        #expect(a.add(offset: 40, length: 5) == true)     // touches the end
        #expect(a.add(offset: 5, length: 5) == true)      // touches the start
        #expect(a.pairs == [[5, 45]])
        #expect(a.add(offset: 46, length: 1) == true)     // one byte apart: separate
        #expect(a.pairs == [[5, 45], [46, 47]])
    }

    @Test func refusesARangeTooMany() {
        var a = Assembler(maxRanges: 3)
        #expect(a.add(offset: 10, length: 5) == true)
        #expect(a.add(offset: 30, length: 5) == true)
        #expect(a.add(offset: 50, length: 5) == true)
        let before = a.pairs
        // A fourth disjoint range is refused, wherever it falls, and changes nothing.
        #expect(a.add(offset: 70, length: 5) == false)
        #expect(a.add(offset: 0, length: 5) == false)
        #expect(a.add(offset: 20, length: 5) == false)
        #expect(a.pairs == before)
        #expect(a.recent == [50, 55])
        // Bytes that merge with a held range are still accepted,
        #expect(a.add(offset: 15, length: 5) == true)
        #expect(a.pairs == [[10, 20], [30, 35], [50, 55]])
        // and so is one that joins two, freeing a slot.
        #expect(a.add(offset: 35, length: 15) == true)
        #expect(a.pairs == [[10, 20], [30, 55]])
        #expect(a.add(offset: 70, length: 5) == true)
        #expect(a.rangeCount == 3)
        // An empty add is a no-op that succeeds even when full.
        #expect(a.add(offset: 90, length: 0) == true)
        #expect(a.rangeCount == 3)
    }

    @Test func takeFrontShiftsTheRest() {
        var a = Assembler()
        #expect(a.add(offset: 0, length: 10) == true)
        #expect(a.add(offset: 20, length: 10) == true)
        #expect(a.add(offset: 40, length: 5) == true)
        #expect(a.takeFront() == 10)
        #expect(a.pairs == [[10, 20], [30, 35]])
        #expect(a.takeFront() == 0)
        #expect(a.pairs == [[10, 20], [30, 35]])
    }

    @Test func mostRecentFollowsTheLatestBytes() {
        var a = Assembler()
        #expect(a.add(offset: 100, length: 10) == true)
        #expect(a.recent == [100, 110])
        #expect(a.add(offset: 300, length: 10) == true)
        #expect(a.recent == [300, 310])
        #expect(a.add(offset: 200, length: 10) == true)
        #expect(a.recent == [200, 210])
        // Merged into a held range: the merged range is the most recent.
        #expect(a.add(offset: 110, length: 5) == true)
        #expect(a.recent == [100, 115])
        // The front is filled and taken: a range that is taken no longer counts,
        #expect(a.add(offset: 0, length: 100) == true)
        #expect(a.recent == [0, 115])
        #expect(a.takeFront() == 115)
        #expect(a.mostRecent == nil)
        // while one that is not taken shifts with the rest.
        #expect(a.add(offset: 85, length: 5) == true)
        #expect(a.pairs == [[85, 95], [185, 195]])
        #expect(a.recent == [85, 95])
        a.advance(by: 10)
        #expect(a.recent == [75, 85])

        var b = Assembler()
        #expect(b.add(offset: 0, length: 10) == true)
        #expect(b.add(offset: 50, length: 10) == true)
        #expect(b.takeFront() == 10)
        #expect(b.recent == [40, 50])
    }

    @Test func advanceForgetsCoverageBelowTheNewReceivePoint() {
        var a = Assembler()
        #expect(a.add(offset: 10, length: 10) == true)    // [10, 20)
        #expect(a.add(offset: 30, length: 10) == true)    // [30, 40)
        #expect(a.add(offset: 50, length: 10) == true)    // [50, 60)
        // 35 in-order bytes arrive directly: the first range is covered, the
        // second cut.
        a.advance(by: 35)
        #expect(a.pairs == [[0, 5], [15, 25]])
        #expect(a.recent == [15, 25])
        #expect(a.takeFront() == 5)
        #expect(a.pairs == [[10, 20]])
        // Advancing to exactly the start of a range leaves it at 0.
        a.advance(by: 10)
        #expect(a.pairs == [[0, 10]])
        #expect(a.takeFront() == 10)
        #expect(a.isEmpty)
        // Advancing past everything empties it.
        #expect(a.add(offset: 5, length: 5) == true)
        a.advance(by: 100)
        #expect(a.isEmpty)
        #expect(a.mostRecent == nil)
    }

    @Test func removeAllEmpties() {
        var a = Assembler(maxRanges: 2)
        #expect(a.add(offset: 5, length: 5) == true)
        #expect(a.add(offset: 15, length: 5) == true)
        a.removeAll()
        #expect(a.isEmpty && a.mostRecent == nil)
        #expect(a.add(offset: 1, length: 1) == true)
        #expect(a.add(offset: 3, length: 1) == true)
    }

    /// Random adds against a bitmap model: the ranges are always the bitmap's runs.
    @Test func randomAddsMatchABitmap() {
        var state: UInt64 = 12345
        func random(_ n: Int) -> Int {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Int((state >> 33) % UInt64(n))
        }
        for _ in 0..<200 {
            var a = Assembler(maxRanges: 6)
            var bits = [Bool](repeating: false, count: 200)
            for _ in 0..<40 {
                let offset = random(180), length = random(20)
                var trial = bits
                for i in offset..<offset + length { trial[i] = true }
                let runs = Self.runs(trial)
                let accepted = a.add(offset: offset, length: length)
                #expect(accepted == (runs.count <= 6 || length == 0))
                if accepted { bits = trial }
                #expect(a.pairs == Self.runs(bits))
                if random(8) == 0 {
                    let n = a.takeFront()
                    let front = bits.firstIndex(of: false) ?? bits.count
                    #expect(n == front)
                    bits = Array(bits[n...]) + [Bool](repeating: false, count: n)
                    #expect(a.pairs == Self.runs(bits))
                }
            }
        }
    }

    static func runs(_ bits: [Bool]) -> [[Int]] {
        var result: [[Int]] = []
        var i = 0
        while i < bits.count {
            if bits[i] {
                let start = i
                while i < bits.count && bits[i] { i += 1 }
                result.append([start, i])
            } else {
                i += 1
            }
        }
        return result
    }

    @Test func addTakeFrontAdvanceAndReadingAllocateNothing() {
        var a = Assembler(maxRanges: 16)
        var taken = 0, blocks = 0
        /// One window's worth: segments 1...15 arrive with 0, 2, 4 ... missing,
        /// the SACK blocks are read, then the holes fill and the front is taken.
        func window(_ round: Int) {
            var k = 15
            while k >= 1 {
                _ = a.add(offset: k * 100, length: 100)
                k -= 2
            }
            if let recent = a.mostRecent { blocks &+= recent.end - recent.start }
            for r in a.ranges { blocks &+= r.end - r.start }
            k = 2
            while k <= 14 {
                _ = a.add(offset: k * 100, length: 100)
                k += 2
            }
            _ = a.add(offset: 0, length: 100)
            taken += a.takeFront()
            if round % 2 == 0 {
                _ = a.add(offset: 50, length: 10)
                _ = a.add(offset: 200, length: 10)
                a.advance(by: 100)
                _ = a.add(offset: 0, length: 100)
                taken += a.takeFront()
                a.advance(by: 10)
            }
        }
        // Warm up: the first pass instantiates type metadata, which allocates once.
        window(0)
        taken = 0; blocks = 0
        allocation_counter_start()
        for round in 0..<1000 { window(round) }
        let allocations = allocation_counter_stop()
        #expect(allocations == 0, "\(allocations) allocations")
        #expect(taken == 1000 * 1600 + 500 * 110)   // [200, 210) joins the in-order 100
        #expect(blocks == 1000 * (800 + 100))
    }
}
