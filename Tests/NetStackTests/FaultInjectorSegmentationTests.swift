import Testing
@testable import NetStack
import NetStackWire

/// A `FaultInjector` over a device that coalesces TCP (a TAP with offloads)
/// judges wire frames: it cuts what arrives coalesced into its frames, with
/// full checksums, before loss or corruption acts on them.
@Suite struct FaultInjectorSegmentationTests {
    static let source = IPv4Address(10, 0, 0, 1)
    static let destination = IPv4Address(10, 0, 0, 2)

    /// A coalesced segment of `payloadLength` bytes in Ethernet, checksum partial.
    static func coalesced(payloadLength: Int) -> [UInt8] {
        let tcp = TCPRepr(sourcePort: 5201, destinationPort: 40000, seq: SequenceNumber(1), ack: SequenceNumber(1),
                          flags: [.ack, .psh], window: 512, payloadLength: payloadLength)
        var frame = [UInt8](repeating: 0, count: 14 + 20 + 20 + payloadLength)
        frame.withUnsafeMutableBytes { b in
            EthernetRepr(destination: MACAddress(2, 0, 0, 0, 0, 2), source: MACAddress(2, 0, 0, 0, 0, 1),
                         etherType: .ipv4).emit(into: b)
            IPv4Repr(source: source, destination: destination, protocol: .tcp, payloadLength: 20 + payloadLength)
                .emit(into: b.slice(14..<b.count))
            for i in 0..<payloadLength { b[54 + i] = UInt8(truncatingIfNeeded: i) }
            tcp.emitLeavingChecksum(into: b.slice(34..<b.count), source: .v4(source), destination: .v4(destination))
        }
        return frame
    }

    /// Sends `bytes` from `far` as one coalesced segment cut at `segmentSize`, its checksum as `offload` says.
    static func sendCoalesced(_ bytes: [UInt8], from far: MemoryLink, segmentSize: Int, partial: Bool = true) {
        var whole = far.pool.allocate()!
        whole.withCapacity { $0.copyBytes(from: bytes) }
        whole.setLength(bytes.count)
        whole.offload = partial
            ? PacketOffload(checksumStart: 34, checksumOffset: 16, segmentSize: UInt16(segmentSize))
            : PacketOffload(checksumVerified: true, segmentSize: UInt16(segmentSize))
        far.transmit(whole)
    }

    @Test func coalescedSegmentsAreCutIntoWireFramesBeforeTheFaults() throws {
        let pool = PacketPool(slotCount: 64, slotSize: TAPDevice.offloadSlotSize)
        let (near, far) = MemoryLink.pair(pool: pool, capabilities: TCPSegmentationOffloadTests.offloading)
        // Every frame corrupted: what the injector lets through must fail its checksum.
        let faults = FaultInjector(wrapping: near, receive: FaultProfile(corrupt: 1), seed: 3, clock: VirtualClock())
        Self.sendCoalesced(Self.coalesced(payloadLength: 5000), from: far, segmentSize: 1448)

        var lengths: [Int] = []
        var trusted = 0
        var valid = 0
        _ = faults.receive(limit: 16) { frame in
            lengths.append(frame.length)
            if frame.offload.checksumVerified { trusted += 1 }
            frame.withBytes { b in
                guard let ip = try? IPv4Packet(validating: try EthernetFrame(validating: b).payload),
                      let tcp = try? TCPSegment(validating: ip.payload) else { return }
                if ip.checksumIsValid && tcp.checksumIsValid(source: Self.source, destination: Self.destination) {
                    valid += 1
                }
            }
        }
        #expect(lengths == [1502, 1502, 1502, 710], "four wire frames of at most 1448 bytes of data")
        #expect(faults.receiveCounters.corrupted == 4 && faults.receiveCounters.frames == 4)
        #expect(trusted == 0, "damaged frames are not vouched for")
        #expect(valid == 0, "every corrupted frame fails a checksum")
    }

    @Test func withoutFaultsTheCutFramesAreValid() throws {
        let pool = PacketPool(slotCount: 64, slotSize: TAPDevice.offloadSlotSize)
        let (near, far) = MemoryLink.pair(pool: pool, capabilities: TCPSegmentationOffloadTests.offloading)
        let faults = FaultInjector(wrapping: near, both: .none, seed: 3, clock: VirtualClock())
        Self.sendCoalesced(Self.coalesced(payloadLength: 3000), from: far, segmentSize: 1448)
        var payload: [UInt8] = []
        _ = faults.receive(limit: 16) { frame in
            frame.withBytes { b in
                let ip = try! IPv4Packet(validating: try! EthernetFrame(validating: b).payload)
                let tcp = try! TCPSegment(validating: ip.payload)
                #expect(ip.checksumIsValid && tcp.checksumIsValid(source: Self.source, destination: Self.destination))
                payload += Array(tcp.payload)
            }
        }
        #expect(payload == (0..<3000).map { UInt8(truncatingIfNeeded: $0) })
        #expect(pool.freeCount == pool.slotCount, "the coalesced slot went back")
    }

    @Test func duplicatingTheWireFramesOfLargeSegmentsNeverOverflows() throws {
        let pool = PacketPool(slotCount: 2048, slotSize: TAPDevice.offloadSlotSize)
        let (near, far) = MemoryLink.pair(pool: pool, capabilities: TCPSegmentationOffloadTests.offloading)
        let faults = FaultInjector(wrapping: near, receive: FaultProfile(duplicate: 1), seed: 5, clock: VirtualClock())
        let bytes = Self.coalesced(payloadLength: 60_000)
        // Three segments: 536-byte pieces (112 each, twice over), then 100-byte
        // pieces (600), finer than the injector is sized for.
        for size in [536, 536, 100] { Self.sendCoalesced(bytes, from: far, segmentSize: size, partial: false) }
        var delivered = 0
        while faults.receive(limit: 64, { _ in delivered += 1 }) > 0 {}
        let c = faults.receiveCounters
        #expect(c.frames == 112 + 112 + 600, "every piece was judged")
        #expect(delivered + Int(c.segmentationDrops) == 2 * Int(c.frames), "each piece and its copy, or a counted drop")
        #expect(c.segmentationDrops > 0 && c.segmentationDrops < 2 * 600,
                "only the 100-byte pieces overflowed, and were counted")
        #expect(pool.freeCount == pool.slotCount)
    }
}
