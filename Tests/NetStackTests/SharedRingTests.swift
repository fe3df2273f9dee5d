import CNetStackABI
import Foundation
import NetStack
@testable import NetStackSockets
import NetStackWire
import Testing

/// The shared rings of a socket's region, both ends played here: what the
/// preload library and the stack rely on (counts, wrap-around, the flags).
@Suite struct SharedRingTests {
    @Test func bytesComeOutInOrderAcrossTheWrap() throws {
        let region = try SocketRegion(ringSize: 4096)
        let ring = region.tx
        #expect(ring.isEmpty && ring.readable == 0 && ring.writable == 4096)
        var expected: [UInt8] = []
        var got: [UInt8] = []
        var next: UInt8 = 0
        // Writes of 1000 and reads of 700 walk the indices around the ring many times.
        for _ in 0..<200 {
            let chunk = (0..<1000).map { _ -> UInt8 in next &+= 7; return next }
            let n = ring.write(chunk.span)
            expected += chunk[0..<n]
            ring.read(appendingTo: &got, maxLength: 700)
            #expect(ring.readable + ring.writable == 4096)
        }
        ring.read(appendingTo: &got)
        #expect(got == expected)
        #expect(ring.isEmpty)
    }

    @Test func aFullRingTakesNothingMore() throws {
        let region = try SocketRegion(ringSize: 4096)
        let ring = region.rx
        #expect(ring.write([UInt8](repeating: 1, count: 5000).span) == 4096)
        #expect(ring.writable == 0)
        #expect(ring.write([UInt8](repeating: 2, count: 10).span) == 0)
        var out: [UInt8] = []
        #expect(ring.read(appendingTo: &out, maxLength: 10) == 10)
        #expect(ring.write([UInt8](repeating: 2, count: 20).span) == 10)
        out.removeAll()
        ring.read(appendingTo: &out)
        #expect(out.count == 4096 && out.suffix(10) == [UInt8](repeating: 2, count: 10)[...])
    }

    /// A received datagram's record says how it came, as the library reads
    /// it for recvmsg's control messages: where from and to, the DS field
    /// and TTL, and when, on the wall clock (the stack's time plus the offset).
    @Test func aDatagramsRecordCarriesHowAndWhenItCame() throws {
        let region = try SocketRegion(ringSize: 4096)
        let arrival = UDPArrival(source: UDPEndpoint(address: .v4(IPv4Address(0x0a00_0001)), port: 53),
                                 destination: .v4(IPv4Address(0x0a00_0002)), trafficClass: 0x28, hopLimit: 33,
                                 time: Instant(nanoseconds: 5_000_000_000))
        let wallClockOffset: Int64 = 1_765_000_000_000_000_000
        let payload: [UInt8] = [1, 2, 3]
        #expect(payload.withUnsafeBytes {
            region.rx.writeDatagram($0, peer: SocketAddress(address: arrival.source.address, port: 53),
                                    arrival: arrival, wallClockOffset: wallClockOffset)
        })
        // The library's own mapping of the region, as it reads `rx`.
        let length = ns_region_length(4096)
        let base = try #require(mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, region.descriptor, 0))
        try #require(base != MAP_FAILED)
        defer { munmap(base, length) }
        var header = ns_datagram()
        #expect(ns_ring_next_record(ns_region_rx(base), base.assumingMemoryBound(to: UInt8.self), &header) == 1)
        #expect(header.length == 3 && header.family == 4 && header.port == 53)
        #expect(header.traffic_class == 0x28 && header.hop_limit == 33)
        #expect(header.arrival_ns == 5_000_000_000 + wallClockOffset)
        #expect(withUnsafeBytes(of: header.local) { Array($0.prefix(4)) } == [10, 0, 0, 2])
    }

    @Test func theRingsAreIndependentAndTheLayoutIsTheHeaders() throws {
        let region = try SocketRegion(ringSize: 8192)
        region.tx.write([1, 2, 3].span)
        #expect(region.rx.isEmpty && region.tx.readable == 3)
        #expect(ns_region_length(8192) == 4096 + 2048 + 2 * 8192)
        #expect(region.ringSize == 8192)
    }

    /// The data areas start half a page into a page (`NS_DATA_SKEW`), and the
    /// application, writing through the header's layout, puts its bytes
    /// where the stack reads them through its own.
    @Test func theDataAreasStartHalfAPageInAndBothSidesAgree() throws {
        let size = 8192
        let region = try SocketRegion(ringSize: size)
        #expect(ns_region_tx_offset() % 4096 == 2048 && ns_region_rx_offset(UInt32(size)) % 4096 == 2048)
        #expect(Int(ns_region_rx_offset(UInt32(size))) + size == ns_region_length(UInt32(size)))
        let length = ns_region_length(UInt32(size))
        let base = try #require(mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, region.descriptor, 0))
        try #require(base != MAP_FAILED)
        defer { munmap(base, length) }
        let sent = (0..<6000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let region8 = base.assumingMemoryBound(to: UInt8.self)
        for _ in 0..<2 {  // twice: the second write wraps
            #expect(sent.withUnsafeBytes { ns_ring_write(ns_region_tx(base), region8, $0.baseAddress, 6000) } == 6000)
            var got: [UInt8] = []
            #expect(region.tx.read(appendingTo: &got) == 6000)
            #expect(got == sent)
        }
        // And the other way: what the stack writes to `rx`, the application reads.
        #expect(region.rx.write(sent.span) == 6000)
        var back = [UInt8](repeating: 0, count: 6000)
        #expect(back.withUnsafeMutableBytes { ns_ring_read(ns_region_rx(base), region8, $0.baseAddress, 6000, 0) } == 6000)
        #expect(back == sent)
    }

    @Test func lentBytesKeepTheirRoomUntilReleased() throws {
        let region = try SocketRegion(ringSize: 4096)
        let ring = region.tx
        #expect(ring.write([UInt8](repeating: 1, count: 3000).span) == 3000)
        var lent = 0
        lent += ring.lend(from: 0) { piece in piece.count }
        #expect(lent == 3000 && ring.writable == 1096, "lending takes nothing")
        #expect(!ring.hasBytes(after: 3000) && ring.hasBytes(after: 2999))
        ring.release(2000)
        #expect(ring.head == 2000 && ring.writable == 3096)
        // The next 2000 bytes wrap: two pieces, from where lending stopped.
        let pattern = (0..<2000).map { UInt8(truncatingIfNeeded: $0) }
        #expect(ring.write(pattern.span) == 2000)
        var got: [UInt8] = []
        var counts: [Int] = []
        lent = ring.lend(from: 3000) { piece in
            got.append(contentsOf: piece)
            counts.append(piece.count)
            return piece.count
        }
        #expect(lent == 2000)
        #expect(counts == [1096, 904])
        #expect(got == pattern)
        // A taker that stops short stops the lending.
        #expect(ring.lend(from: 3000) { _ in 10 } == 10)
        #expect(ring.lend(from: 5000) { $0.count } == 0, "nothing past the producer's index")
    }

    @Test func flagsAreTakenOnce() throws {
        let region = try SocketRegion(ringSize: 4096)
        #expect(!region.takeStackWantsTransmit())
        region.wantTransmitDoorbell()
        #expect(region.takeStackWantsTransmit())
        #expect(!region.takeStackWantsTransmit())
        region.appWantsWrite()
        #expect(region.takeAppWantsWrite() && !region.takeAppWantsWrite())
        region.wantReceiveRoom()
        #expect(region.takeStackWantsReceiveRoom())
        #expect(!region.takeAppWantsRead())
        region.appWantsRead()
        #expect(region.takeAppWantsRead() && !region.takeAppWantsRead())
    }

    /// The room a stream socket's waiting writer asks for, read from memory
    /// the application writes, stays within the ring.
    @Test func theRoomAWriterWaitsForIsKeptWithinTheRing() throws {
        let region = try SocketRegion(ringSize: 4096)
        region.appWantsWrite(room: 0)  // never said: any room
        #expect(region.writeWakeRoom == 1)
        region.appWantsWrite(room: 3000)
        #expect(region.writeWakeRoom == 3000)
        region.appWantsWrite(room: UInt32.max)  // more than there can be: all of it
        #expect(region.writeWakeRoom == 4096)
        #expect(region.takeAppWantsWrite() && !region.takeAppWantsWrite())
    }

    @Test func stateAndErrorsReachTheApplication() throws {
        let region = try SocketRegion(ringSize: 4096)
        #expect(region.state.isEmpty)
        region.add(.connected)
        region.fail(errno: 104)
        #expect(region.state == [.connected, .error, .writeClosed])
        #expect(region.pendingError == 104)
    }

    /// The region as the other process holds it: one end of each ring per side.
    struct OtherEnd: @unchecked Sendable { let region: SocketRegion }

    /// One producer thread, one consumer thread, a megabyte through a 4 KiB
    /// ring. Both ends give up after 20 s, so a bug fails rather than hangs.
    @Test func twoThreadsMoveEveryByte() throws {
        let region = try SocketRegion(ringSize: 4096)
        let total = 1 << 20
        let other = OtherEnd(region: region)
        let deadline = ContinuousClock.now + .seconds(20)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            var sent = 0
            var chunk = [UInt8](repeating: 0, count: 1500)
            while sent < total && ContinuousClock.now < deadline {
                let n = min(1500, total - sent)
                for i in 0..<n { chunk[i] = UInt8(truncatingIfNeeded: (sent + i) &* 31) }
                let wrote = other.region.tx.write(chunk.span.extracting(0..<n))
                sent += wrote
                if wrote == 0 { sched_yield() }
            }
            done.signal()
        }
        var got: [UInt8] = []
        got.reserveCapacity(total)
        while got.count < total && ContinuousClock.now < deadline {
            if region.tx.read(appendingTo: &got) == 0 { sched_yield() }
        }
        _ = done.wait(timeout: .now() + 25)
        #expect(got.count == total)
        #expect(got.enumerated().allSatisfy { $0.element == UInt8(truncatingIfNeeded: $0.offset &* 31) })
    }
}
