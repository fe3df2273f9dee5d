import AllocationCounter
import Testing
@testable import NetStack
import NetStackApps
import NetStackWire

/// Steady-state receive, ICMP echo and UDP echo must not touch the heap: the
/// design promise is zero allocations per packet. Counted by an interposed
/// malloc (Tests/AllocationCounter) on this thread only.
@Suite(.serialized) struct AllocationTests {
    static let stackIP = IPv4Address(10, 0, 0, 2)
    static let peerIP = IPv4Address(10, 0, 0, 1)
    static let peerMAC = MACAddress(0x02, 0, 0, 0, 0, 0x01)

    /// A stack on one end of a memory link, and the raw far end a test drives.
    final class Rig {
        let pool = PacketPool(slotCount: 256)
        let clock = VirtualClock()
        let stackEnd: MemoryLink
        let peerEnd: MemoryLink
        let interface: Interface<MemoryLink>

        init() throws {
            (stackEnd, peerEnd) = MemoryLink.pair(pool: pool)
            interface = Interface(device: stackEnd,
                                  configuration: InterfaceConfiguration(address: IPv4CIDR(address: AllocationTests.stackIP, prefixLength: 24)),
                                  now: clock.now)
            try UDPEchoService.install(on: Stack(interface: interface, clock: clock), port: 7)
        }

        /// Sends a frame from the peer: `ipPayload` bytes after a 20-byte IPv4 header.
        func inject(proto: IPProtocol, payloadLength: Int, fill: (UnsafeMutableRawBufferPointer) -> Void) {
            var frame = pool.allocate()!
            let length = 14 + 20 + payloadLength
            frame.setLength(length)
            let mac = interface.macAddress
            frame.withBytes { b in
                EthernetRepr(destination: mac, source: AllocationTests.peerMAC, etherType: .ipv4).emit(into: b)
                let ip = b.slice(14..<length)
                IPv4Repr(source: AllocationTests.peerIP, destination: AllocationTests.stackIP, protocol: proto,
                         payloadLength: payloadLength).emit(into: ip)
                fill(ip.slice(20..<ip.count))
            }
            peerEnd.transmit(frame)
        }

        func echoRequest(sequence: UInt16, dataLength: Int) {
            inject(proto: .icmp, payloadLength: 8 + dataLength) { icmp in
                for i in 0..<dataLength { icmp[8 + i] = UInt8(truncatingIfNeeded: i) }
                ICMPv4Repr(message: .echoRequest(identifier: 0x1234, sequence: sequence), dataLength: dataLength)
                    .emit(into: icmp)
            }
        }

        func udpDatagram(port: UInt16, payloadLength: Int) {
            inject(proto: .udp, payloadLength: 8 + payloadLength) { udp in
                for i in 0..<payloadLength { udp[8 + i] = UInt8(truncatingIfNeeded: i &* 7) }
                UDPRepr(sourcePort: 40000, destinationPort: port, payloadLength: payloadLength)
                    .emit(into: udp, source: AllocationTests.peerIP, destination: AllocationTests.stackIP)
            }
        }

        /// Takes what the stack sent, returning how many frames.
        func drain() -> Int { peerEnd.receive(limit: .max) { _ in } }

        /// Teaches the stack the peer's MAC, as the kernel's ARP request would.
        func resolvePeer() {
            interface.arp.update(AllocationTests.peerIP, mac: AllocationTests.peerMAC, now: clock.now, create: true)
        }
    }

    @Test func icmpEchoAllocatesNothingPerPacket() throws {
        let rig = try Rig()
        rig.resolvePeer()
        for s in 0..<64 { rig.echoRequest(sequence: UInt16(s), dataLength: 56); rig.interface.poll(now: rig.clock.now); _ = rig.drain() }

        let packets = 1000
        var replies = 0
        allocation_counter_start()
        for s in 0..<packets {
            rig.echoRequest(sequence: UInt16(truncatingIfNeeded: s), dataLength: 56)
            rig.interface.poll(now: rig.clock.now)
            replies += rig.drain()
        }
        let allocations = allocation_counter_stop()
        #expect(replies == packets)
        #expect(allocations == 0, "\(allocations) allocations for \(packets) echo requests")
        #expect(rig.pool.freeCount == rig.pool.slotCount)
    }

    @Test func udpEchoAllocatesNothingPerPacket() throws {
        let rig = try Rig()
        rig.resolvePeer()
        for _ in 0..<64 { rig.udpDatagram(port: 7, payloadLength: 512); rig.interface.poll(now: rig.clock.now); _ = rig.drain() }

        let packets = 1000
        var replies = 0
        allocation_counter_start()
        for _ in 0..<packets {
            rig.udpDatagram(port: 7, payloadLength: 512)
            rig.interface.poll(now: rig.clock.now)
            replies += rig.drain()
        }
        let allocations = allocation_counter_stop()
        #expect(replies == packets)
        #expect(allocations == 0, "\(allocations) allocations for \(packets) UDP echoes")
        #expect(rig.interface.udp.counters.datagramsIn == 64 + UInt64(packets))
    }

    @Test func droppingGarbageAllocatesNothing() throws {
        let rig = try Rig()
        for _ in 0..<16 { rig.udpDatagram(port: 7, payloadLength: 8); rig.interface.poll(now: rig.clock.now); _ = rig.drain() }
        // One drop first: the drop counters' generic metadata is made once, on first use.
        rig.inject(proto: .icmp, payloadLength: 16) { icmp in icmp[2] = 0xff }
        rig.interface.poll(now: rig.clock.now)
        allocation_counter_start()
        for i in 0..<1000 {
            // A lying IPv4 total length, then a bad ICMP checksum.
            rig.inject(proto: .icmp, payloadLength: 16) { icmp in icmp[2] = UInt8(truncatingIfNeeded: i) }
            rig.interface.poll(now: rig.clock.now)
        }
        let allocations = allocation_counter_stop()
        #expect(allocations == 0)
        #expect(rig.interface.counters.drops[.icmpBadChecksum] == 1001)
    }

    /// The counter itself must see allocations, or the tests above prove nothing.
    @Test func counterSeesAllocations() {
        allocation_counter_start()
        let p = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 8)
        let n = allocation_counter_stop()
        p.deallocate()
        #expect(n >= 1)
    }
}


extension AllocationTests {
    /// Bulk TCP between two stacks: once the connection is up, moving data
    /// (segments out, ACKs back, rings filled and drained, timers re-armed)
    /// allocates nothing, also when the link takes segments of many frames
    /// and leaves checksums partial (TSO and checksum offload).
    @Test(arguments: [false, true])
    func bulkTCPTransferAllocatesNothingPerSegment(offload: Bool) throws {
        let pool = offload ? PacketPool(slotCount: 512, slotSize: TAPDevice.offloadSlotSize)
            : PacketPool(slotCount: 1024)
        let capabilities: DeviceCapabilities = offload ? .segmenting() : .ethernet()
        let (a, b, clock, turn) = Self.memoryPair(pool: pool, capabilities: capabilities)
        let listener = try b.tcp.listen(port: 9)
        var received = 0
        listener.onAccept = { c in
            c.onReadable = { c in received += c.skip(c.readableBytes) }
        }
        let chunk = [UInt8](repeating: 0x5a, count: 64 * 1024)
        let sender = try a.tcp.connect(to: IPv4Address(10, 0, 0, 2), port: 9, now: clock.now)
        let fill: (TCPConnection) -> Void = { c in
            chunk.withUnsafeBytes { p in while c.write(p) > 0 {} }
        }
        sender.onWritable = fill
        Self.establishAndFill(sender, on: a, clock: clock, fill: fill, turn: turn, until: { received >= 32 << 20 })

        let segmentsBefore = a.tcp.counters.segmentsOut
        let receivedBefore = received
        allocation_counter_start()
        for _ in 0..<2000 { turn() }
        let allocations = allocation_counter_stop()
        let segments = a.tcp.counters.segmentsOut - segmentsBefore
        #expect(received - receivedBefore > 16 << 20, "the transfer kept moving")
        #expect(segments > (offload ? 300 : 10_000))
        #expect(allocations == 0, "\(allocations) allocations over \(segments) segments")
    }
}

extension AllocationTests {
    /// The copy-once paths allocate nothing per segment either: shared bytes
    /// written by reference, sent as frame tails the link reads in place, and
    /// taken by the receiving application in place (`onReceive`).
    @Test func copyOnceTransferAllocatesNothingPerSegment() throws {
        let pool = PacketPool(slotCount: 512, slotSize: TAPDevice.offloadSlotSize)
        let capabilities = DeviceCapabilities.segmenting(readsTailInPlace: true)
        let (a, b, clock, turn) = Self.memoryPair(pool: pool, capabilities: capabilities)
        let listener = try b.tcp.listen(port: 9)
        var received = 0
        listener.onAccept = { c in
            c.onReceive = { _, bytes in
                received += bytes.count
                return bytes.count
            }
            c.onReadable = { c in received += c.skip(c.readableBytes) }
        }
        let shared = SharedBytes([UInt8](repeating: 0x5a, count: 96 * 1024))
        var offset = 0
        let sender = try a.tcp.connect(to: IPv4Address(10, 0, 0, 2), port: 9, now: clock.now)
        let fill: (TCPConnection) -> Void = { c in
            while true {
                let n = c.write(shared, range: offset..<shared.count)
                guard n > 0 else { break }
                offset = (offset + n) % shared.count
            }
        }
        sender.onWritable = fill
        Self.establishAndFill(sender, on: a, clock: clock, fill: fill, turn: turn, until: { received >= 32 << 20 })
        // Past the runtime's one-time type metadata for every path taken.
        for _ in 0..<2000 { turn() }

        let receivedBefore = received
        let copiedBefore = (a.tcp.counters.payloadBytesCopiedOut, b.tcp.counters.payloadBytesCopiedIn)
        allocation_counter_start()
        for _ in 0..<2000 { turn() }
        let allocations = allocation_counter_stop()
        #expect(received - receivedBefore > 16 << 20, "the transfer kept moving")
        #expect(allocations == 0, "\(allocations) allocations")
        // Nothing was copied by the stacks while measuring.
        #expect(a.tcp.counters.payloadBytesCopiedOut == copiedBefore.0)
        #expect(b.tcp.counters.payloadBytesCopiedIn == copiedBefore.1)
    }
}

extension AllocationTests {
    /// Two stacks, 10.0.0.1 and 10.0.0.2, over a memory link with
    /// `capabilities`, and a turn of both loops 20 µs apart on a virtual clock.
    static func memoryPair(pool: PacketPool, capabilities: DeviceCapabilities)
        -> (Interface<MemoryLink>, Interface<MemoryLink>, VirtualClock, () -> Void) {
        let clock = VirtualClock()
        let (linkA, linkB) = MemoryLink.pair(pool: pool, capabilities: capabilities, queueCapacity: 512)
        func iface(_ link: MemoryLink, _ last: UInt8) -> Interface<MemoryLink> {
            let ip = IPv4Address(10, 0, 0, last)
            return Interface(device: link,
                             configuration: InterfaceConfiguration(address: IPv4CIDR(address: ip, prefixLength: 24)),
                             now: clock.now)
        }
        let a = iface(linkA, 1), b = iface(linkB, 2)
        let turn = {
            a.poll(now: clock.now, limit: 256)
            b.poll(now: clock.now, limit: 256)
            a.tick(now: clock.now)
            b.tick(now: clock.now)
            clock.advance(by: .microseconds(20))
        }
        return (a, b, clock, turn)
    }

    /// Handshake, then fill the pipe and turn until `until` holds, so every
    /// table and ring has reached its working size.
    static func establishAndFill(_ sender: TCPConnection, on a: Interface<MemoryLink>, clock: VirtualClock,
                                 fill: (TCPConnection) -> Void, turn: () -> Void, until: () -> Bool) {
        for _ in 0..<50 { turn() }
        #expect(sender.state == .established)
        fill(sender)
        a.tcp.flush(sender, now: clock.now)
        while !until() { turn() }
    }
}
