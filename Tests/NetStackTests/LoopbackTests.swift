import Testing
@testable import NetStack
import NetStackWire

/// Datagrams to the stack's own addresses come back in on the next poll and
/// never reach the link (RFC 1122 3.2.1.3's internal loopback; `loopBack`).
@Suite struct LoopbackTests {
    typealias H = PeerHarness

    /// Polls until nothing waits to come back in, at most `turns` times.
    static func settle<D: Device>(_ interface: Interface<D>, now: Instant, turns: Int = 1000) {
        var n = 0
        repeat {
            interface.poll(now: now, limit: .max)
            n += 1
        } while interface.hasLoopedBackFrames && n < turns
    }

    @Test func aFragmentedDatagramToOurOwnAddressArrivesWholeAndNothingReachesTheLink() throws {
        let h = PeerHarness()
        let server = try h.udp.bind(port: 9000)
        let client = try h.udp.bindEphemeral()
        let payload = (0..<4000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        #expect(client.send(payload, to: UDPEndpoint(address: .v4(H.stackIP), port: 9000)))
        #expect(h.interface.hasLoopedBackFrames)
        Self.settle(h.interface, now: h.now)
        var got: [UInt8] = []
        let from = server.receive(into: &got)
        #expect(from == UDPEndpoint(address: .v4(H.stackIP), port: client.port))
        #expect(got == payload)
        #expect(h.counters.framesLoopedBack == 3, "4000 bytes in three fragments")
        #expect(h.counters.fragmentsIn == 3)
        #expect(h.sent().isEmpty, "nothing on the wire, not even an ARP request")
        #expect(h.allDrops.total == 0)
        #expect(h.pool.freeCount == h.pool.slotCount)
    }

    @Test func anEchoRequestToOurselvesIsAnsweredToOurselves() throws {
        let h = PeerHarness()
        let server = try h.udp.bind(port: 7)
        let client = try h.udp.bindEphemeral()
        #expect(client.send([1, 2, 3], to: UDPEndpoint(address: .v4(H.stackIP), port: 7)))
        Self.settle(h.interface, now: h.now)
        var got: [UInt8] = []
        let from = try #require(server.receive(into: &got))
        #expect(server.send(got, to: from))
        Self.settle(h.interface, now: h.now)
        #expect(client.receive(into: &got) == UDPEndpoint(address: .v4(H.stackIP), port: 7))
        #expect(got == [1, 2, 3])
        // A port nobody holds answers with port unreachable, to ourselves.
        #expect(client.send([4], to: UDPEndpoint(address: .v4(H.stackIP), port: 9)))
        Self.settle(h.interface, now: h.now)
        #expect(client.nextError() != nil)
        #expect(h.sent().isEmpty)
    }

    @Test func ipv6ToOurOwnGlobalAndLinkLocalAddresses() throws {
        let h = IPv6InterfaceTests.harness()
        _ = h.sent()  // DAD and the reports
        let server = try h.udp.bind(port: 9000)
        let client = try h.udp.bindEphemeral()
        for own in [IPv6InterfaceTests.stack6, IPv6InterfaceTests.stackLinkLocal] {
            #expect(client.send([6, 6], to: UDPEndpoint(address: .v6(own), port: 9000)))
            Self.settle(h.interface, now: h.now)
            var got: [UInt8] = []
            #expect(server.receive(into: &got)?.address == .v6(own))
            #expect(got == [6, 6])
        }
        #expect(h.sent().isEmpty, "no neighbour solicitation for ourselves")
        #expect(h.allDrops.total == 0)
    }

    /// A connection to ourselves over a link that segments and reads tails in
    /// place, as the TAP does: segments larger than the MTU with their
    /// checksums left partial come back whole and trusted, every byte in order.
    @Test(arguments: [false, true])
    func aConnectionToOurselvesCarriesEveryByte(offload: Bool) throws {
        let pool = offload ? PacketPool(slotCount: 512, slotSize: TAPDevice.offloadSlotSize)
            : PacketPool(slotCount: 1024)
        let capabilities: DeviceCapabilities = offload ? .segmenting(readsTailInPlace: true) : .ethernet()
        let (link, wire) = MemoryLink.pair(pool: pool, capabilities: capabilities)
        let clock = VirtualClock()
        let config = InterfaceConfiguration(macAddress: H.stackMAC,
                                            address: IPv4CIDR(address: H.stackIP, prefixLength: 24))
        let interface = Interface(device: link, configuration: config, now: clock.now)
        let listener = try interface.tcp.listen(port: 5001)
        var received: [UInt8] = []
        var server: TCPConnection?
        listener.onAccept = { c in
            server = c
            c.onReadable = { c in
                var chunk = [UInt8](repeating: 0, count: c.readableBytes)
                let n = chunk.withUnsafeMutableBytes { c.read(into: $0) }
                received += chunk.prefix(n)
            }
        }
        let data = (0..<(3 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 11) }
        var written = 0
        let client = try interface.tcp.connect(to: .v4(H.stackIP), port: 5001, now: clock.now)
        let fill: (TCPConnection) -> Void = { c in
            while written < data.count {
                let n = data[written...].withUnsafeBytes { c.write(UnsafeRawBufferPointer(rebasing: $0.prefix(256 << 10))) }
                guard n > 0 else { break }
                written += n
            }
        }
        client.onWritable = fill
        for _ in 0..<20_000 where received.count < data.count {
            if client.state == .established { fill(client) }
            clock.advance(by: .microseconds(50))
            interface.poll(now: clock.now, limit: .max)
            interface.tick(now: clock.now)
        }
        #expect(server?.state == .established)
        #expect(received.count == data.count)
        #expect(received == data)
        #expect(interface.counters.framesLoopedBack > 0)
        #expect(interface.tcp.counters.retransmissions == 0)
        var onWire = 0
        _ = wire.receive(limit: .max) { _ in onWire += 1 }
        #expect(onWire == 0)
    }
}
