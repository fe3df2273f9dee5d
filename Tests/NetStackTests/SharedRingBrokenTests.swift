import CNetStackABI
import NetStackWire
@testable import NetStackSockets
import Testing

/// The stack's side of the rings when the application writes garbage into
/// its region's header (it can: the region is mapped writable in its
/// process). The stack keeps the layout it made and checks the indices, so
/// it reads and writes only inside the data areas and calls the ring broken.
@Suite struct SharedRingBrokenTests {
    /// A datagram record's header's size (`ns_datagram`).
    static let header = MemoryLayout<ns_datagram>.size

    /// A datagram record's header made by hand, as the application would write it.
    static func record(length: UInt32) -> [UInt8] {
        var h = ns_datagram()
        h.length = length
        h.family = 4
        h.port = 9
        return withUnsafeBytes(of: h) { Array($0) }
    }

    @Test func aGarbledLayoutIsIgnored() throws {
        let region = try SocketRegion(ringSize: 4096)
        // An offset far past the mapping and sizes that are no power of two, or
        // zero: the header's layout would have the stack write anywhere.
        region.overwriteHeader(size: 0, offset: 0xFFFF_F000)
        region.overwriteHeader(rx: true, size: 1 << 31, offset: 0x7FFF_FFFF)
        let bytes = (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 13) }
        for _ in 0..<5 {  // around the ring and across its wrap
            #expect(region.rx.write(bytes.span) == 3000)
            #expect(region.rx.readable == 3000 && region.rx.writable == 1096)
            var got: [UInt8] = []
            region.rx.read(appendingTo: &got)
            #expect(got == bytes)
            #expect(region.tx.write(bytes.span) == 3000)
            got.removeAll()
            #expect(region.tx.lend(from: region.tx.head) { got.append(contentsOf: $0); return $0.count } == 3000)
            region.tx.release(3000)
            #expect(got == bytes)
        }
        #expect(!region.isBroken)
    }

    @Test func aProducerTooFarAheadBreaksTheTransmitRing() throws {
        let region = try SocketRegion(ringSize: 4096)
        let ring = region.tx
        #expect(ring.write([1, 2, 3].span) == 3)
        region.overwriteHeader(tail: 4096 + 1)  // claims 4097 bytes in a 4096-byte ring
        #expect(ring.lend(from: 0) { $0.count } == 0)
        #expect(ring.isBroken && region.isBroken)
        #expect(ring.readable == 0 && ring.isEmpty && !ring.hasBytes(after: 0))
        // Broken stays broken, even once the header looks right again.
        region.overwriteHeader(head: 0, tail: 3)
        var out: [UInt8] = []
        #expect(ring.read(appendingTo: &out) == 0 && out.isEmpty)
        #expect(ring.lend(from: 0) { $0.count } == 0)
        ring.release(3)
        #expect(ring.head == 0, "nothing is taken from a broken ring")
    }

    @Test func aHugeIndexDifferenceIsCaughtByEveryConsumerCall() throws {
        for call in 0..<4 {
            let region = try SocketRegion(ringSize: 4096)
            region.overwriteHeader(head: 100, tail: 99)  // the producer "behind" the consumer: 2^32 - 1 waiting
            var out: [UInt8] = []
            var scratch: [UInt8] = []
            switch call {
            case 0: #expect(region.tx.readable == 0)
            case 1: #expect(region.tx.read(appendingTo: &out) == 0)
            case 2: #expect(region.tx.readOutgoing(into: &scratch) == nil)
            default: region.tx.release(1)
            }
            #expect(region.tx.isBroken, "call \(call)")
            #expect(!region.rx.isBroken, "the other ring is the stack's and fine")
        }
    }

    @Test func aConsumerAheadOfTheProducerBreaksTheReceiveRing() throws {
        let region = try SocketRegion(ringSize: 4096)
        #expect(region.rx.write([UInt8](repeating: 7, count: 100).span) == 100)
        region.overwriteHeader(rx: true, head: 5000)  // took bytes the stack never wrote
        #expect(region.rx.write([UInt8](repeating: 8, count: 100).span) == 0)
        #expect(region.rx.isBroken)
        #expect(region.rx.writable == 0)
        #expect(!region.rx.writeDatagram(UnsafeRawBufferPointer(start: nil, count: 0),
                                         peer: SocketAddress(address: .v4(IPv4Address(0x7f00_0001)), port: 1)))
    }

    @Test func aReceiveRingClaimingTooMuchRoomWritesNothing() throws {
        let region = try SocketRegion(ringSize: 4096)
        // head far behind tail: the old code computed room as size - (tail - head), wrapped huge.
        region.overwriteHeader(rx: true, head: 0, tail: 8192)
        let payload = [UInt8](repeating: 0, count: 24)
        let written = payload.withUnsafeBytes {
            region.rx.writeDatagram($0, peer: SocketAddress(address: .v4(IPv4Address(1)), port: 1))
        }
        #expect(!written && region.rx.isBroken)
    }

    @Test func takingBackLentBytesBreaksTheRing() throws {
        let region = try SocketRegion(ringSize: 4096)
        let ring = region.tx
        #expect(ring.write([UInt8](repeating: 1, count: 1000).span) == 1000)
        #expect(ring.lend(from: 0) { $0.count } == 1000)
        region.overwriteHeader(tail: 500)  // the producer's index behind what was lent
        #expect(ring.lend(from: 1000) { $0.count } == 0)
        #expect(ring.isBroken)
    }

    @Test func releasingMoreThanWaitsBreaksTheRing() throws {
        let region = try SocketRegion(ringSize: 4096)
        #expect(region.tx.write([UInt8](repeating: 1, count: 10).span) == 10)
        region.tx.release(11)
        #expect(region.tx.isBroken && region.tx.head == 0)
    }

    @Test func aDatagramLongerThanTheRingBreaksIt() throws {
        let region = try SocketRegion(ringSize: 4096)
        let ring = region.tx
        #expect(ring.write(Self.record(length: 1 << 20).span) == Self.header)
        var scratch: [UInt8] = []
        #expect(ring.readOutgoing(into: &scratch) == nil)
        #expect(ring.isBroken && scratch.isEmpty)
    }

    @Test func aDatagramLongerThanWhatWasPublishedBreaksTheRing() throws {
        let region = try SocketRegion(ringSize: 4096)
        let ring = region.tx
        #expect(ring.write((Self.record(length: 100) + [UInt8](repeating: 5, count: 50)).span) == Self.header + 50)
        var scratch: [UInt8] = []
        #expect(ring.readOutgoing(into: &scratch) == nil)
        #expect(ring.isBroken)
    }

    @Test func partOfARecordHeaderBreaksTheRing() throws {
        let region = try SocketRegion(ringSize: 4096)
        #expect(region.tx.write([1, 2, 3, 4, 5].span) == 5)
        var scratch: [UInt8] = []
        #expect(region.tx.readOutgoing(into: &scratch) == nil)
        #expect(region.tx.isBroken)
    }

    @Test func wellFormedDatagramsStillPass() throws {
        let region = try SocketRegion(ringSize: 4096)
        let payload = [UInt8](repeating: 9, count: 4096 - Self.header)  // the largest that fits
        region.overwriteHeader(size: 12, offset: 1)  // ignored
        #expect(region.tx.write((Self.record(length: UInt32(payload.count)) + payload).span) == 4096)
        var scratch: [UInt8] = []
        let from = region.tx.readOutgoing(into: &scratch)?.destination
        #expect(from?.port == 9 && scratch == payload && !region.tx.isBroken)
        #expect(region.tx.isEmpty)
        let peer = SocketAddress(address: .v4(IPv4Address(0x0a00_0001)), port: 53)
        #expect(payload.withUnsafeBytes { region.rx.writeDatagram($0, peer: peer) })
        #expect(!payload.withUnsafeBytes { region.rx.writeDatagram($0, peer: peer) }, "full: waits")
        let tooLong = [UInt8](repeating: 0, count: 4096)
        #expect(!tooLong.withUnsafeBytes { region.rx.writeDatagram($0, peer: peer) }, "never fits")
        #expect(!region.rx.isBroken)
    }

    /// A datagram's own TTL and DS field (sendmsg's IP_TTL and IP_TOS) come
    /// with its record; a record without them leaves them to the socket.
    @Test func aDatagramsOwnHeaderFieldsComeWithItsRecord() throws {
        let region = try SocketRegion(ringSize: 4096)
        var h = ns_datagram()
        h.length = 3
        h.family = 4
        h.port = 53
        h.hop_limit = 7
        h.traffic_class = 0x28
        h.send_flags = UInt16(NS_SEND_HOP_LIMIT | NS_SEND_TRAFFIC_CLASS)
        let marked = withUnsafeBytes(of: h) { Array($0) } + [1, 2, 3]
        #expect(region.tx.write((marked + Self.record(length: 2) + [4, 5]).span) == marked.count + Self.header + 2)
        var scratch: [UInt8] = []
        let first = try #require(region.tx.readOutgoing(into: &scratch))
        #expect(first.destination.port == 53 && first.hopLimit == 7 && first.trafficClass == 0x28 && scratch == [1, 2, 3])
        let second = try #require(region.tx.readOutgoing(into: &scratch))
        #expect(second.destination.port == 9 && second.hopLimit == nil && second.trafficClass == nil && scratch == [4, 5])
    }
}
