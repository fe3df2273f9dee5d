import Testing
@testable import NetStack
import NetStackWire

/// TCP over a device that segments and checksums for it (TSO and checksum
/// offload, as a TAP with the virtio-net header or the kernel's loopback):
/// segments of many frames leave as one buffer, every byte arrives, and the
/// scoreboard still keeps one record per frame on the wire.
@Suite struct TCPSegmentationOffloadTests {
    static let offloading = DeviceCapabilities.segmenting(headroom: VirtioNetHeader.length)
    /// `offloading`, and the device reads frame tails in place (`FrameTail`), as the TAP does.
    static let readingTails = DeviceCapabilities.segmenting(headroom: VirtioNetHeader.length, readsTailInPlace: true)

    /// Sends `size` bytes from A to B and returns whether all arrived intact.
    static func transfer<D: Device>(_ pair: StackPair<D>, size: Int, seed: UInt64,
                                    events: Bool = false, each: (TCPConnection) -> Void = { _ in }) throws -> Bool {
        let listener = try pair.b.tcp.listen(port: 9)
        let client = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: 9, now: pair.now)
        var server: TCPConnection?
        let bulk = BulkTransfer(length: size, seed: seed)
        let done = { bulk.read == size }
        let app = {
            if server == nil { server = listener.accept() }
            var moved = bulk.pump(into: client)
            if let s = server { moved = bulk.drain(from: s) || moved }
            each(client)
            return moved
        }
        let finished = events ? pair.runEvents(until: done, deadline: pair.now + .seconds(60), app: app) == .finished
            : pair.run(until: done, app: app)
        return finished && bulk.receivedHash.value == bulk.sentHash.value
    }

    @Test func bulkLeavesInSegmentsOfManyFramesAndArrivesIntact() throws {
        let pair = TCPStackPair(slotCount: 512, slotSize: TAPDevice.offloadSlotSize, capabilities: Self.offloading)
        let size = 16 << 20
        var recordsWithinOneFrame = true
        #expect(try Self.transfer(pair, size: size, seed: 7) { c in
            let mss = c.sendMSS
            if !c.sender.scoreboard.records.allSatisfy({ $0.length <= mss || $0.length == 1 }) {
                recordsWithinOneFrame = false
            }
        })
        let wireFrames = size / 1448
        // Data left in far fewer buffers than frames on the wire, and B took them whole.
        #expect(pair.a.counters.framesOut < UInt64(wireFrames / 8), "\(pair.a.counters.framesOut) frames out")
        #expect(pair.b.counters.framesIn < UInt64(wireFrames / 8))
        #expect(pair.a.tcp.counters.retransmissions == 0)
        #expect(recordsWithinOneFrame, "a scoreboard record longer than one MSS")
    }

    @Test func segmentsLeaveWithThePseudoHeaderSumForTheDeviceToComplete() throws {
        let pool = PacketPool(slotCount: 64, slotSize: TAPDevice.offloadSlotSize)
        let (near, far) = MemoryLink.pair(pool: pool, capabilities: Self.offloading)
        let a = Interface(device: near, configuration: InterfaceConfiguration(
            address: IPv4CIDR(address: TCPStackPair.ipA, prefixLength: 24)), now: .zero)
        a.arp.update(TCPStackPair.ipB, mac: MACAddress(0x02, 0, 0, 0, 0, 0x09), now: .zero, create: true)
        _ = try a.tcp.connect(to: TCPStackPair.ipB, port: 80, now: .zero)
        var seen = 0
        _ = far.receive(limit: 8) { frame in
            seen += 1
            // The link trusted the partial sum on its way over, as loopback does.
            #expect(frame.offload.checksumVerified)
            frame.withBytes { bytes in
                let ip = try! IPv4Packet(validating: EthernetFrame(validating: bytes).payload)
                let tcp = try! TCPSegment(validating: ip.payload)
                var pseudo = InternetChecksum()
                pseudo.addPseudoHeader(source: .v4(ip.source), destination: .v4(ip.destination),
                                       protocol: IPProtocol.tcp.rawValue, length: ip.payload.count)
                #expect(tcp.checksum == pseudo.sum, "the field holds the pseudo-header's folded sum")
                #expect(!tcp.checksumIsValid(source: ip.source, destination: ip.destination))
            }
        }
        #expect(seen == 1, "the SYN")
    }

    @Test func recoveryRepairsLossesInsideSegmentsOfManyFrames() throws {
        // A's segments of many frames cross the memory link whole, as over
        // loopback, into a 200 Mbit/s bottleneck with a 128 KiB queue in
        // front of B: the emulator cuts each into its wire frames and the
        // queue drops those that do not fit, so losses fall inside TSO's
        // bursts, and SACK recovery resends what was lost one MSS at a time.
        let bottleneck = LinkProfile(delay: .milliseconds(2), bitsPerSecond: 200_000_000,
                                     queueLimitBytes: 128 * 1024)
        var emulator: LinkEmulator<MemoryLink>!
        let pair = StackPair<AnyDevice>(slotCount: 1024, slotSize: TAPDevice.offloadSlotSize,
                                        capabilities: Self.offloading) { link, isA, clock in
            if isA { return AnyDevice(link) }
            emulator = LinkEmulator(wrapping: link, receive: bottleneck, clock: clock)
            return AnyDevice(emulator)
        }
        pair.otherDeadline = { emulator.nextReleaseDeadline }
        #expect(pair.a.device.capabilities == Self.offloading)
        var maxResent = 0
        let size = 8 << 20
        #expect(try Self.transfer(pair, size: size, seed: 11, events: true) { c in
            maxResent = max(maxResent, c.sender.scoreboard.records.lazy.filter { $0.marks.contains(.retransmitted) }
                .map(\.length).max() ?? 0)
        })
        let c = emulator.receiveCounters
        // Every frame B's side cut beyond the first of a segment is one A did not send alone.
        #expect(c.frames > pair.a.counters.framesOut + UInt64(size / 1448 / 4), "A sent segments of many frames")
        #expect(c.queueDrops > 0, "the bottleneck dropped nothing")
        #expect(c.segmentationDrops == 0 && c.overflowDrops == 0)
        #expect(pair.a.tcp.counters.retransmissions > 0)
        #expect(maxResent <= 1448, "a retransmission longer than one frame: \(maxResent)")
    }

    /// The copies counters on the ring paths: a byte written by copy and
    /// sent through a device that cannot read frame tails in place is copied
    /// twice (application to send ring to frame), and a byte received while
    /// the application reads with `read` twice too (frame to receive ring to
    /// application). What the counters say is what `--stats` prints.
    @Test(arguments: [false, true])
    func ringPathsCopyEachPayloadByteTwiceAndTheCountersSaySo(offload: Bool) throws {
        let pair = offload
            ? TCPStackPair(slotCount: 512, slotSize: TAPDevice.offloadSlotSize, capabilities: Self.offloading)
            : TCPStackPair()
        let listener = try pair.b.tcp.listen(port: 9)
        let client = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: 9, now: pair.now)
        var server: TCPConnection?
        let size = 4 << 20
        let bulk = BulkTransfer(length: size, seed: 5)
        #expect(pair.run(until: { bulk.read == size }, app: {
            if server == nil { server = listener.accept() }
            var moved = bulk.pump(into: client)
            if let s = server { moved = bulk.drain(from: s) || moved }
            return moved
        }))
        let s = try #require(server)
        #expect(pair.a.tcp.counters.retransmissions == 0)
        #expect(client.bytesSent == UInt64(size) && s.bytesReceived == UInt64(size))
        #expect(client.bytesCopiedSending == 2 * UInt64(size))
        #expect(s.bytesCopiedReceiving == 2 * UInt64(size))
        let a = pair.a.tcp.counters, b = pair.b.tcp.counters
        #expect(a.payloadBytesOut == UInt64(size) && a.payloadBytesCopiedOut == 2 * UInt64(size))
        #expect(b.payloadBytesIn == UInt64(size) && b.payloadBytesCopiedIn == 2 * UInt64(size))
        #expect(b.report.contains { $0 == "tcp-payload-bytes-copied-in" && $1 == 2 * UInt64(size) })
    }

    /// Copy once: new data leaves from the send ring as a frame tail the
    /// device reads in place (here the memory link copies it, as a NIC's DMA
    /// would), and the receiver's application takes in-order bytes in the
    /// frame they arrived in. The stack copies each byte once sending (the
    /// application's write into the ring) and, receiving, only what arrived
    /// before the application was there; every byte arrives intact, in order.
    @Test func withFrameTailsAndInPlaceDeliveryEachByteIsCopiedOnceSendingAndNotReceiving() throws {
        let pair = TCPStackPair(slotCount: 512, slotSize: TAPDevice.offloadSlotSize, capabilities: Self.readingTails)
        let listener = try pair.b.tcp.listen(port: 9)
        let client = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: 9, now: pair.now)
        var server: TCPConnection?
        let size = 4 << 20
        let bulk = BulkTransfer(length: size, seed: 6)
        #expect(pair.a.tcp.sendsDataInPlace)
        listener.onAccept = { s in
            server = s
            s.onReceive = { _, bytes in bulk.take(bytes) }
        }
        #expect(pair.run(until: { bulk.read == size }, app: {
            var moved = bulk.pump(into: client)
            if let s = server { moved = bulk.drain(from: s) || moved }
            return moved
        }))
        let s = try #require(server)
        #expect(bulk.receivedHash.value == bulk.sentHash.value)
        #expect(pair.a.tcp.counters.retransmissions == 0)
        #expect(client.bytesSent == UInt64(size) && s.bytesReceived == UInt64(size))
        #expect(client.bytesCopiedSending == UInt64(size))
        // Only what came with the handshake's last ACK, before the application
        // was there to take it, went through the ring (copied in, then read).
        let early = UInt64(size) - s.bytesDeliveredInPlace
        #expect(early <= 16 * 1448, "\(early) bytes not delivered in place")
        #expect(s.bytesCopiedReceiving == 2 * early)
        let a = pair.a.tcp.counters, b = pair.b.tcp.counters
        #expect(a.payloadBytesCopiedOut == UInt64(size) && b.payloadBytesCopiedIn == 2 * early)
    }

    /// A handler that takes only part of what it is offered leaves the rest
    /// in the receive ring, where `read` finds it next, in order; while the
    /// ring holds anything nothing more is offered in place.
    @Test func whatTheHandlerLeavesIsReadFromTheRingInOrder() throws {
        let pair = TCPStackPair()
        let listener = try pair.b.tcp.listen(port: 9)
        let client = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: 9, now: pair.now)
        var server: TCPConnection?
        let size = 1 << 20
        let bulk = BulkTransfer(length: size, seed: 8)
        var offers = 0
        var offeredWhileRingHeldBytes = false
        #expect(pair.run(until: { bulk.read == size }, app: {
            if server == nil, let s = listener.accept() {
                server = s
                s.onReceive = { c, bytes in
                    offers += 1
                    if c.readableBytes > 0 { offeredWhileRingHeldBytes = true }
                    // Every third offer: take the first 100 bytes only.
                    return offers % 3 == 0 ? bulk.take(bytes.extracting(0..<min(100, bytes.count))) : 0
                }
            }
            var moved = bulk.pump(into: client)
            if let s = server { moved = bulk.drain(from: s) || moved }
            return moved
        }))
        let s = try #require(server)
        #expect(bulk.receivedHash.value == bulk.sentHash.value, "bytes lost or out of order")
        #expect(offers > 0 && s.bytesDeliveredInPlace > 0)
        #expect(s.bytesDeliveredInPlace < UInt64(size))
        #expect(!offeredWhileRingHeldBytes)
    }

    /// Bytes written by reference (`SharedBytes`) and sent through a device
    /// that reads frame tails in place are never copied by the stack, and
    /// arrive intact; runs written by copy in between keep their order.
    @Test func sharedBytesAreSentWithoutCopiesAndInterleaveWithCopiedOnes() throws {
        let pair = TCPStackPair(slotCount: 512, slotSize: TAPDevice.offloadSlotSize, capabilities: Self.readingTails)
        let listener = try pair.b.tcp.listen(port: 9)
        let client = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: 9, now: pair.now)
        var rng = SplitMix64(seed: 3)
        let page = (0..<100_003).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let shared = SharedBytes(page)
        // Ten rounds of: the whole page by reference, then 1000 bytes by copy.
        var expected: [UInt8] = []
        var plan: [(shared: Bool, bytes: [UInt8])] = []
        for round in 0..<10 {
            plan.append((true, page))
            let copied = [UInt8](repeating: UInt8(round), count: 1000)
            plan.append((false, copied))
            expected += page + copied
        }
        var step = 0, offset = 0, copiedWritten = 0
        var received: [UInt8] = []
        var server: TCPConnection?
        #expect(pair.run(until: { received.count == expected.count }, app: {
            if server == nil { server = listener.accept() }
            var moved = false
            while step < plan.count {
                let (byReference, bytes) = plan[step]
                let n = byReference ? client.write(shared, range: offset..<bytes.count)
                    : bytes[offset...].withUnsafeBytes { client.write($0) }
                if !byReference { copiedWritten += n }
                offset += n
                moved = moved || n > 0
                guard offset == bytes.count else { break }
                step += 1
                offset = 0
            }
            if let s = server, s.readableBytes > 0 {
                s.read(appendingTo: &received)
                moved = true
            }
            return moved
        }))
        #expect(received == expected)
        #expect(pair.a.tcp.counters.retransmissions == 0)
        // Only the bytes written by copy were copied (into the ring); the
        // ring and the shared page both left in place.
        #expect(client.bytesCopiedSending == UInt64(copiedWritten))
        #expect(copiedWritten == 10_000)
    }
}
