import Testing
@testable import NetStack
import NetStackWire

@Suite struct PacketPoolTests {
    /// Writes `bytes` as the buffer's contents.
    static func fill(_ b: inout PacketBuffer, _ bytes: [UInt8]) {
        b.setLength(bytes.count)
        b.withBytes { dst in bytes.withUnsafeBytes { dst.copyMemory(from: $0) } }
    }

    static func contents(_ b: borrowing PacketBuffer) -> [UInt8] { b.withBytes { [UInt8]($0) } }

    @Test func geometry() {
        let pool = PacketPool(slotCount: 8, slotSize: 256)
        #expect(pool.slotCount == 8)
        #expect(pool.slotSize == 256)
        #expect(pool.freeCount == 8)
        #expect(pool.region.count == 8 * 256)
        // The region is one page-aligned allocation; slots are consecutive.
        #expect(Int(bitPattern: pool.region.baseAddress) % 4096 == 0)
        #expect(pool.address(ofSlot: 3) == pool.region.baseAddress! + 3 * 256)
    }

    @Test func allocatesUntilExhaustedAndBuffersReturnOnScopeExit() {
        let pool = PacketPool(slotCount: 4, slotSize: 128)
        do {
            guard let a = pool.allocate(), let b = pool.allocate(), let c = pool.allocate(),
                  let d = pool.allocate() else {
                Issue.record("pool of 4 refused one of the first 4 allocations")
                return
            }
            #expect(pool.freeCount == 0)
            let fifth = pool.allocate()
            let exhausted = fifth == nil
            #expect(exhausted)
            // Four distinct slots, all in range.
            let slots: Set<UInt32> = [a.slot, b.slot, c.slot, d.slot]
            #expect(slots == [0, 1, 2, 3])
            #expect(a.length == 0 && a.headroom == 0 && a.capacity == 128)
            _ = consume a
            // One back: it can be taken again.
            #expect(pool.freeCount == 1)
            let again = pool.allocate()
            let gotOne = again != nil
            #expect(gotOne)
            #expect(pool.freeCount == 0)
        }
        #expect(pool.freeCount == pool.slotCount)
    }

    @Test func bytesWrittenAreReadBackAndSlotsDoNotOverlap() {
        let pool = PacketPool(slotCount: 2, slotSize: 64)
        guard var a = pool.allocate(), var b = pool.allocate() else { Issue.record("allocate"); return }
        Self.fill(&a, [UInt8](repeating: 0xaa, count: 64))
        Self.fill(&b, [UInt8](repeating: 0xbb, count: 64))
        #expect(Self.contents(a) == [UInt8](repeating: 0xaa, count: 64))
        #expect(Self.contents(b) == [UInt8](repeating: 0xbb, count: 64))
        #expect(a.baseAddress == pool.address(ofSlot: a.slot))
    }

    @Test func headroomTrimAndExtend() {
        let pool = PacketPool(slotCount: 1, slotSize: 256)
        guard var b = pool.allocate() else { Issue.record("allocate"); return }
        b.reserveHeadroom(34)
        #expect(b.headroom == 34)
        #expect(b.capacity == 256 - 34)
        #expect(b.length == 0)
        // Payload first, then headers prepended into the headroom.
        Self.fill(&b, [1, 2, 3, 4])
        b.extendFront(20)
        #expect(b.headroom == 14 && b.length == 24)
        b.withBytes { bytes in for i in 0..<20 { bytes[i] = 0x45 } }
        b.extendFront(14)
        #expect(b.headroom == 0 && b.length == 38)
        let all = Self.contents(b)
        #expect(Array(all[14..<34]) == [UInt8](repeating: 0x45, count: 20))
        #expect(Array(all[34...]) == [1, 2, 3, 4])
        // Stripping headers again exposes the same payload bytes in place.
        b.trimFront(34)
        #expect(b.headroom == 34 && b.length == 4)
        #expect(Self.contents(b) == [1, 2, 3, 4])
        #expect(b.baseAddress == pool.address(ofSlot: b.slot) + 34)
        b.trimFront(4)
        #expect(b.length == 0 && b.headroom == 38)
        // withCapacity exposes everything from the start to the slot's end.
        let cap = b.withCapacity { $0.count }
        #expect(cap == 256 - 38)
    }

    @Test func queueIsFIFOAndKeepsOffsets() {
        let pool = PacketPool(slotCount: 8, slotSize: 128)
        let queue = PacketQueue(pool: pool, capacity: 4)
        #expect(queue.isEmpty && !queue.isFull && queue.capacity == 4)
        var sentSlots: [UInt32] = []
        for i in 0..<4 {
            guard var b = pool.allocate() else { Issue.record("allocate"); return }
            b.reserveHeadroom(i * 4)
            Self.fill(&b, [UInt8](repeating: UInt8(i + 1), count: i + 1))
            sentSlots.append(b.slot)
            let accepted = queue.append(b) == nil
            #expect(accepted)
        }
        #expect(queue.count == 4 && queue.isFull)
        // Parked buffers hold their slots.
        #expect(pool.freeCount == 4)
        for i in 0..<4 {
            guard let b = queue.popFirst() else { Issue.record("queue lost a packet"); return }
            #expect(b.slot == sentSlots[i])
            #expect(b.headroom == i * 4)
            #expect(Self.contents(b) == [UInt8](repeating: UInt8(i + 1), count: i + 1))
        }
        let empty = queue.popFirst() == nil
        #expect(empty && queue.isEmpty)
        #expect(pool.freeCount == 8)
    }

    @Test func queueWrapsAround() {
        let pool = PacketPool(slotCount: 8, slotSize: 64)
        let queue = PacketQueue(pool: pool, capacity: 3)
        var next: UInt8 = 0, expected: UInt8 = 0
        for round in 0..<10 {
            // Push two, pop one / pop two alternately, so the ring's head walks round.
            for _ in 0..<(round % 2 == 0 ? 2 : 1) where !queue.isFull {
                guard var b = pool.allocate() else { Issue.record("allocate"); return }
                Self.fill(&b, [next])
                next &+= 1
                _ = queue.append(b)
            }
            let pops = round % 2 == 0 ? 1 : 2
            for _ in 0..<pops {
                guard let b = queue.popFirst() else { continue }
                #expect(Self.contents(b) == [expected])
                expected &+= 1
            }
        }
        while let b = queue.popFirst() {
            #expect(Self.contents(b) == [expected])
            expected &+= 1
        }
        #expect(expected == next)
        #expect(pool.freeCount == 8)
    }

    @Test func fullQueueHandsTheBufferBack() {
        let pool = PacketPool(slotCount: 4, slotSize: 64)
        let queue = PacketQueue(pool: pool, capacity: 1)
        guard let first = pool.allocate(), var second = pool.allocate() else { Issue.record("allocate"); return }
        let accepted = queue.append(first) == nil
        #expect(accepted)
        Self.fill(&second, [9, 8, 7])
        let secondSlot = second.slot
        guard let refused = queue.append(second) else {
            Issue.record("a full queue took a packet")
            return
        }
        // The very same buffer comes back, contents intact, still owned by the caller.
        #expect(refused.slot == secondSlot)
        #expect(Self.contents(refused) == [9, 8, 7])
        #expect(pool.freeCount == 2)
        _ = consume refused
        #expect(pool.freeCount == 3)
        #expect(queue.count == 1)
    }

    @Test func droppingAQueueReturnsItsSlots() {
        let pool = PacketPool(slotCount: 6, slotSize: 64)
        do {
            let queue = PacketQueue(pool: pool, capacity: 8)
            for _ in 0..<5 {
                guard let b = pool.allocate() else { Issue.record("allocate"); return }
                _ = queue.append(b)
            }
            #expect(pool.freeCount == 1)
            _ = queue
        }
        #expect(pool.freeCount == 6)
    }

    @Test func parkAndResumeRoundTrip() {
        let pool = PacketPool(slotCount: 2, slotSize: 128)
        guard var b = pool.allocate() else { Issue.record("allocate"); return }
        b.reserveHeadroom(10)
        Self.fill(&b, [1, 2, 3])
        let slot = b.slot
        let parked = b.park()
        #expect(pool.freeCount == 1)  // parking keeps the slot out of the pool
        #expect(parked.slot == slot && parked.start == 10 && parked.length == 3)
        let resumed = pool.resume(parked)
        #expect(resumed.slot == slot && resumed.headroom == 10)
        #expect(Self.contents(resumed) == [1, 2, 3])
        _ = consume resumed
        #expect(pool.freeCount == 2)
    }

    @Test func lendAdoptAndReturnSlots() {
        let pool = PacketPool(slotCount: 3, slotSize: 128)
        guard let lent = pool.lendSlot(), let lent2 = pool.lendSlot() else { Issue.record("lend"); return }
        #expect(lent != lent2)
        #expect(pool.freeCount == 1)
        // The "kernel" writes a frame into the lent slot; the device adopts it.
        let kernelWrite: [UInt8] = [0xde, 0xad, 0xbe, 0xef, 0x01]
        kernelWrite.withUnsafeBytes { pool.address(ofSlot: lent).copyMemory(from: $0.baseAddress!, byteCount: 5) }
        do {
            let adopted = pool.adopt(slot: lent, length: 5)
            #expect(adopted.slot == lent && adopted.length == 5 && adopted.headroom == 0)
            #expect(Self.contents(adopted) == kernelWrite)
            #expect(pool.freeCount == 1)
        }
        // Adopted buffers return to the pool like any other.
        #expect(pool.freeCount == 2)
        // A slot lent and never filled goes back unused.
        pool.returnSlot(lent2)
        #expect(pool.freeCount == 3)
        // releaseSlot takes a buffer's slot out of its hands without freeing it.
        guard let b = pool.allocate() else { Issue.record("allocate"); return }
        let s = b.releaseSlot()
        #expect(pool.freeCount == 2)
        pool.returnSlot(s)
        #expect(pool.freeCount == 3)
        // Everything can be taken again: no slot was lost or duplicated.
        var seen = Set<UInt32>()
        while let slot = pool.lendSlot() { seen.insert(slot) }
        #expect(seen == [0, 1, 2])
        for slot in seen { pool.returnSlot(slot) }
    }

    @Test func memoryLinkHandsSlotsAcrossAndTailDrops() {
        let pool = PacketPool(slotCount: 8, slotSize: 128)
        let (a, b) = MemoryLink.pair(pool: pool, mtu: 1500, queueCapacity: 2)
        for i in 0..<3 {
            guard var f = pool.allocate() else { Issue.record("allocate"); return }
            Self.fill(&f, [UInt8(i)])
            a.transmit(f)
        }
        #expect(a.droppedForQueueFull == 1)
        #expect(b.pending == 2)
        #expect(pool.freeCount == 6)
        var got: [[UInt8]] = []
        let n = b.receive(limit: 10) { f in got.append(Self.contents(f)) }
        #expect(n == 2 && got == [[0], [1]])
        #expect(pool.freeCount == 8)
    }
}
