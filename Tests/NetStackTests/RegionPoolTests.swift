import CNetStackABI
import NetStackWire
@testable import NetStackSockets
import Testing

/// A closed socket's region kept for its application's next socket
/// (`RegionPool`, `SocketRegion.keep(in:)`), and what is never kept.
@Suite struct RegionPoolTests {
    static let ringSize = 1 << 20

    /// Moves `count` bytes through `rx` as the stack and the application would.
    static func move(_ count: Int, through region: SocketRegion) {
        let chunk = [UInt8](repeating: 0x5a, count: 65536)
        var left = count
        var sink: [UInt8] = []
        while left > 0 {
            let n = min(left, chunk.count)
            #expect(region.rx.write(chunk.span.extracting(first: n)) == n)
            sink.removeAll(keepingCapacity: true)
            region.rx.read(appendingTo: &sink)
            left -= n
        }
    }

    @Test func aClosedSocketsRegionComesBackLaidOutAnew() throws {
        let pool = RegionPool()
        var region: SocketRegion? = try SocketRegion(ringSize: Self.ringSize, serial: 7)
        let descriptor = region!.descriptor
        Self.move(5000, through: region!)
        #expect(region!.rx.write([1, 2, 3].span) == 3)  // left unread
        #expect(region!.tx.write([4, 5].span) == 2)
        region!.add(.connected)
        region!.fail(errno: 104)
        region!.setPending(3)
        region!.keep(in: pool)
        region = nil
        let kept = try #require(pool.take(ringSize: Self.ringSize))
        #expect(kept.serial == 7 && kept.descriptor == descriptor)
        #expect(pool.take(ringSize: Self.ringSize) == nil)
        let again = SocketRegion(kept, fresh: false,
                                 interface: InterfaceDescription(index: 3, subnet: IPv4CIDR("10.0.0.2/24")))
        #expect(again.serial == 7)
        #expect(again.rx.readable == 0 && again.rx.writable == Self.ringSize)
        #expect(again.tx.readable == 0 && again.tx.writable == Self.ringSize)
        #expect(again.state == [] && again.pendingError == 0)
        #expect(!again.takeAppWantsRead() && !again.takeAppWantsWrite())
        // And it works as a new one: bytes in and out of both rings.
        let bytes = (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        #expect(again.rx.write(bytes.span) == 3000)
        var got: [UInt8] = []
        again.rx.read(appendingTo: &got)
        #expect(got == bytes)
    }

    @Test func aRegionThatMovedMuchGoes() throws {
        let pool = RegionPool()
        var region: SocketRegion? = try SocketRegion(ringSize: Self.ringSize, serial: 1)
        Self.move(Int(NS_REGION_REUSE_LIMIT), through: region!)
        region!.keep(in: pool)
        region = nil
        #expect(pool.take(ringSize: Self.ringSize) == nil)
    }

    @Test func aBrokenRegionGoes() throws {
        let pool = RegionPool()
        var region: SocketRegion? = try SocketRegion(ringSize: 4096, serial: 1)
        region!.overwriteHeader(rx: true, head: 0, tail: 1 << 20)  // more than the ring holds
        #expect(region!.rx.readable == 0 && region!.isBroken)
        region!.keep(in: pool)
        region = nil
        #expect(pool.take(ringSize: 4096) == nil)
    }

    @Test func thePoolKeepsItsCapacityTheLatestFirst() throws {
        let pool = RegionPool()
        for serial in 1...UInt32(RegionPool.capacity + 2) {
            let region = try SocketRegion(ringSize: 4096, serial: serial)
            region.keep(in: pool)
        }
        var taken: [UInt32] = []
        while let m = pool.take(ringSize: 4096) {
            taken.append(m.serial)
            m.unmap()
        }
        #expect(taken == Array((1...UInt32(RegionPool.capacity)).reversed()))
        // Another ring size is another region.
        try SocketRegion(ringSize: 8192, serial: 99).keep(in: pool)
        #expect(pool.take(ringSize: 4096) == nil)
        #expect(pool.take(ringSize: 8192)?.serial == 99)
    }

    @Test func aRegionOutlivingItsPoolIsUnmapped() throws {
        var pool: RegionPool? = RegionPool()
        let region = try SocketRegion(ringSize: 4096, serial: 1)
        region.keep(in: pool!)
        try SocketRegion(ringSize: 4096, serial: 2).keep(in: pool!)
        pool = nil  // the application went: what it kept is unmapped
        _ = region  // and this one, going later, is unmapped too
    }
}
