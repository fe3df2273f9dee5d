import Testing
#if canImport(Glibc)
import Glibc
#endif
@testable import NetStack
import NetStackWire

/// The global memory budget (`--memory-limit`, issue 15): rings grow only as
/// far as it allows, windows shrink instead of allocations failing, and new
/// connections past it are refused cleanly.
@Suite struct MemoryBudgetTests {
    static let port: UInt16 = 7

    @Test func aRingGrowsOnlyAsFarAsTheBudgetAllows() {
        let budget = MemoryBudget(limit: 64 * 1024)
        let ring = ByteRing(capacity: 256 * 1024, budget: budget)
        #expect(ring.freeSpace == 64 * 1024)
        let bytes = [UInt8](repeating: 7, count: 200 * 1024)
        let n = bytes.withUnsafeBytes { ring.append($0) }
        #expect(n == 64 * 1024)
        #expect(ring.allocatedBytes == 64 * 1024)
        #expect(budget.used == 64 * 1024 && ring.freeSpace == 0 && ring.isFull)
        ring.consume(n)
        #expect(ring.releaseStorageIfEmpty() == 64 * 1024)
        #expect(budget.used == 0)
        // Freed memory lets the ring grow again.
        #expect(ring.freeSpace == 64 * 1024)
    }

    @Test func replacedStorageStaysChargedUntilReleased() {
        let budget = MemoryBudget(limit: 1 << 20)
        let ring = ByteRing(capacity: 64 * 1024, keepsReplacedStorage: true, budget: budget)
        let bytes = [UInt8](repeating: 1, count: 6000)
        _ = bytes.withUnsafeBytes { ring.append($0) }   // 8 KiB at once
        _ = bytes.withUnsafeBytes { ring.append($0) }   // grows to 16 KiB, keeping the 8
        #expect(budget.used == 24 * 1024)
        ring.releaseReplacedStorage()
        #expect(budget.used == 16 * 1024)
        withExtendedLifetime(ring) {}
        let unlimited = MemoryBudget()
        do {
            let other = ByteRing(capacity: 4096, budget: unlimited)
            _ = bytes.withUnsafeBytes { other.append($0) }
            #expect(unlimited.used == 4096 && unlimited.peak == 4096)
        }
        #expect(unlimited.used == 0)
    }

    /// Past the budget a SYN is answered with a RST (the client sees
    /// "connection refused"); what the table held is charged and given back.
    @Test func connectionsPastTheBudgetAreRefusedWithAReset() throws {
        let limit = 64 * 1024
        let pair = TCPStackPair(memoryLimitB: limit)
        let listener = try pair.b.tcp.listen(port: Self.port, backlog: 100)
        var clients: [TCPConnection] = []
        for _ in 0..<40 {
            clients.append(try pair.a.tcp.connect(to: TCPStackPair.ipB, port: Self.port, now: pair.now))
        }
        pair.run(until: { clients.allSatisfy { $0.state == .established || $0.state == .closed } })
        let established = clients.filter { $0.state == .established }
        let refused = clients.filter { $0.state == .closed }
        // Each connection is charged its block and its first rings at admission.
        let admitted = limit / MemoryBudget.connectionCost
        #expect(established.count == admitted)
        #expect(refused.allSatisfy { $0.error == .connectionRefused })
        #expect(pair.b.tcp.counters.refusedForMemory == UInt64(refused.count))
        #expect(pair.b.tcp.memory.used == admitted * MemoryBudget.connectionCost)
        #expect(pair.b.tcp.memory.peak <= limit)

        // The admitted ones carry data; then they close and the budget empties.
        var accepted: [TCPConnection] = []
        while let s = listener.accept() { accepted.append(s) }
        #expect(accepted.count == admitted)
        for (i, c) in established.enumerated() { _ = [UInt8(i)].withUnsafeBytes { c.write($0) } }
        pair.run(until: { accepted.allSatisfy { $0.readableBytes == 1 } })
        // The first rings were paid for: carrying a byte charged nothing more.
        #expect(pair.b.tcp.memory.used == admitted * MemoryBudget.connectionCost)
        for c in established { c.close() }
        for s in accepted { s.close() }
        pair.run(until: { pair.b.tcp.allConnections.isEmpty })
        accepted.removeAll()
        #expect(pair.b.tcp.memory.used == 0)

        // With room again, a new client gets in.
        let late = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: Self.port, now: pair.now)
        pair.run(until: { late.state == .established || late.state == .closed })
        #expect(late.state == .established)
    }

    /// `connect` on a stack whose budget is spent throws rather than allocating.
    @Test func anActiveOpenPastTheBudgetThrows() throws {
        let pair = TCPStackPair(memoryLimitB: 32 * 1024)
        _ = try pair.a.tcp.listen(port: Self.port, backlog: 100)
        var opened = 0
        var thrown: TCPConnectError?
        for _ in 0..<100 {
            do {
                _ = try pair.b.tcp.connect(to: TCPStackPair.ipA, port: Self.port, now: pair.now)
                opened += 1
            } catch {
                thrown = error
                break
            }
        }
        #expect(thrown == .noMemory)
        #expect(opened == 32 * 1024 / MemoryBudget.connectionCost)
        #expect(pair.b.tcp.counters.refusedForMemory == 1)
    }

    /// A bulk transfer into a stack whose budget keeps its receive ring small
    /// still arrives byte for byte: the window it advertises is what the
    /// ring can hold, not the configured 256 KiB.
    @Test func aBulkTransferUnderATightBudgetArrivesIntact() throws {
        let limit = 96 * 1024
        let pair = TCPStackPair(memoryLimitB: limit)
        let listener = try pair.b.tcp.listen(port: Self.port)
        let client = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: Self.port, now: pair.now)
        let transfer = BulkTransfer(length: 4 * 1024 * 1024, seed: 15)
        let (finished, server) = pair.sendOneWay(transfer, from: client, to: listener)
        #expect(finished)
        #expect(transfer.receivedHash.value == transfer.sentHash.value)
        let ring = try #require(server).receiver.receiveBuffer
        #expect(ring.capacity == 256 * 1024)
        #expect(ring.allocatedBytes == 64 * 1024)
        #expect(pair.b.tcp.memory.peak <= limit)
    }
}

/// `RingPages`: rings' first pages, given back to the system when freed.
@Suite struct RingPagesTests {
    /// Whether the page at `p` is resident (mincore).
    static func isResident(_ p: UnsafeMutableRawPointer) -> Bool {
        var vector: UInt8 = 0
        #expect(mincore(p, RingPages.pageSize, &vector) == 0)
        return vector & 1 != 0
    }

    @Test func freedPagesAreReusedFirstAndReleasedByTrim() {
        let pages = RingPages()
        let a = pages.take(), b = pages.take(), c = pages.take()
        #expect(pages.chunkCount == 1 && pages.inUse == 3)
        #expect(Int(bitPattern: a) % RingPages.pageSize == 0)
        for p in [a, b, c] { p.storeBytes(of: 0x5a5a, as: UInt64.self) }
        pages.give(b)
        pages.give(c)
        #expect(pages.residentFreePages == 2 && Self.isResident(b))
        // Reused while still resident.
        let again = pages.take()
        #expect(again == c)
        pages.give(again)
        #expect(pages.trim() == 2 * RingPages.pageSize)
        #expect(pages.residentFreePages == 0)
        #expect(!Self.isResident(b) && !Self.isResident(c))
        #expect(Self.isResident(a))
        pages.give(a)
        #expect(pages.inUse == 0 && pages.chunkCount == 1)
    }

    @Test func aRingWithABudgetTakesItsFirstPageFromRingPages() {
        let budget = MemoryBudget()
        let ring = ByteRing(capacity: 64 * 1024, budget: budget)
        let bytes = [UInt8](repeating: 3, count: 5000)
        _ = bytes[..<100].withUnsafeBytes { ring.append($0) }
        #expect(budget.pages.inUse == 1 && ring.allocatedBytes == RingPages.pageSize)
        // Growing past a page moves to the allocator and gives the page back.
        _ = bytes.withUnsafeBytes { ring.append($0) }
        #expect(ring.allocatedBytes == 8192 && budget.pages.inUse == 0 && budget.pages.residentFreePages == 1)
        var out = [UInt8](repeating: 0, count: 5100)
        #expect(out.withUnsafeMutableBytes { ring.read(into: $0) } == 5100)
        #expect(out.allSatisfy { $0 == 3 })
    }
}
