import Testing
@testable import NetStack
import NetStackWire

/// Two interfaces joined by a `MemoryLink`, each thinking the other is a
/// neighbour on 10.0.0.0/24. Nothing is primed: ARP runs for real.
final class TwoStacks {
    static let ipA = IPv4Address(10, 0, 0, 1)
    static let ipB = IPv4Address(10, 0, 0, 2)

    let pool = PacketPool(slotCount: 512)
    let clock = VirtualClock()
    let a: Interface<RecordingDevice<MemoryLink>>
    let b: Interface<RecordingDevice<MemoryLink>>
    /// Datagrams A's port 5000 received.
    var receivedByA: [(UDPEndpoint, [UInt8])] = []

    init(mtu: Int = 1500) throws {
        let (linkA, linkB) = MemoryLink.pair(pool: pool, mtu: mtu)
        a = Interface(device: RecordingDevice(linkA),
                      configuration: InterfaceConfiguration(address: IPv4CIDR(address: Self.ipA, prefixLength: 24)),
                      now: clock.now)
        b = Interface(device: RecordingDevice(linkB),
                      configuration: InterfaceConfiguration(address: IPv4CIDR(address: Self.ipB, prefixLength: 24)),
                      now: clock.now)
        // B runs the UDP echo (RFC 862); A listens on 5000.
        try b.udp.bind(port: 7) { [unowned self] from, payload in
            self.b.udp.send(from: 7, to: from, payload: payload, now: self.clock.now)
        }
        try a.udp.bind(port: 5000) { [unowned self] from, payload in
            self.receivedByA.append((from, [UInt8](payload)))
        }
    }

    /// Polls both sides until neither has anything waiting; returns the rounds taken.
    @discardableResult
    func run(maxRounds: Int = 100) -> Int {
        for round in 1...maxRounds {
            let n = a.poll(now: clock.now) + b.poll(now: clock.now)
            if n == 0 && a.device.inner.pending == 0 && b.device.inner.pending == 0 { return round }
        }
        Issue.record("the two stacks never went quiet")
        return maxRounds
    }

    func sendFromA(_ payload: [UInt8]) -> Bool {
        payload.withUnsafeBytes { p in
            a.udp.send(from: 5000, to: UDPEndpoint(address: Self.ipB, port: 7), payload: p, now: clock.now)
        }
    }

    /// A sends an ICMP echo request (RFC 792) through its ordinary output path.
    func ping(identifier: UInt16, sequence: UInt16, data: [UInt8]) -> Bool {
        let header = FrameBuilder.icmpEcho(identifier: identifier, sequence: sequence, data: data)
        return header[0..<8].withUnsafeBytes { h in
            data.withUnsafeBytes { d in
                a.sendIPv4(to: Self.ipB, protocol: .icmp, transportHeader: h, payload: d, now: clock.now)
            }
        }
    }
}

@Suite struct StackToStackTests {
    @Test func udpEchoAcrossTheLinkWithARP() throws {
        let s = try TwoStacks()
        let payload = Array("stack to stack".utf8)
        #expect(s.sendFromA(payload))
        s.run()
        #expect(s.receivedByA.count == 1)
        #expect(s.receivedByA.first?.0 == UDPEndpoint(address: TwoStacks.ipB, port: 7))
        #expect(s.receivedByA.first?.1 == payload)
        // A asked once; B answered and learned A from the request, so it never asked.
        #expect(s.a.counters.arpRequestsOut == 1 && s.b.counters.arpRepliesOut == 1)
        #expect(s.b.counters.arpRequestsOut == 0)
        #expect(s.a.arp.lookup(TwoStacks.ipB, now: s.clock.now) == s.b.macAddress)
        #expect(s.b.arp.lookup(TwoStacks.ipA, now: s.clock.now) == s.a.macAddress)
        // On the wire from B to A: the ARP reply, then the echo.
        let fromB = s.b.device.transmitted
        #expect(fromB.count == 2)
        #expect(fromB.first?.arp?.operation == .reply)
        #expect(fromB.last?.ipv4?.udp?.checksumVerifies == true)
        #expect(s.a.counters.drops.total == 0 && s.b.counters.drops.total == 0)
        // A second exchange needs no ARP at all.
        s.a.device.clear(); s.b.device.clear()
        #expect(s.sendFromA([1, 2, 3]))
        s.run()
        #expect(s.receivedByA.last?.1 == [1, 2, 3])
        #expect(s.a.device.transmitted.count == 1 && s.b.device.transmitted.count == 1)
        #expect(s.pool.freeCount == s.pool.slotCount)
    }

    @Test func threeThousandBytesBothWays() throws {
        let s = try TwoStacks()
        let payload = FrameBuilder.pattern(3000, seed: 30)
        #expect(s.sendFromA(payload))
        s.run()
        #expect(s.receivedByA.count == 1)
        #expect(s.receivedByA.first?.1 == payload)
        // 3008 bytes of UDP: three fragments each way, reassembled at each end.
        #expect(s.a.counters.fragmentsOut == 3 && s.b.counters.fragmentsOut == 3)
        #expect(s.a.counters.datagramsReassembled == 1 && s.b.counters.datagramsReassembled == 1)
        let sizes = s.b.device.transmitted.compactMap(\.ipv4).map(\.totalLength)
        #expect(sizes == [1500, 1500, 20 + 3008 - 2960])
        #expect(s.pool.freeCount == s.pool.slotCount)
    }

    @Test func manySizesBothWays() throws {
        let s = try TwoStacks(mtu: 576)
        var rng = SplitMix64(seed: 5760)
        for i in 0..<100 {
            let n = Int.random(in: 0...8000, using: &rng)
            let payload = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            #expect(s.sendFromA(payload))
            s.run()
            #expect(s.receivedByA.count == i + 1)
            if s.receivedByA.last?.1 != payload { Issue.record("datagram \(i) of \(n) bytes came back different") }
        }
        #expect(s.a.counters.drops.total == 0 && s.b.counters.drops.total == 0)
        #expect(s.pool.freeCount == s.pool.slotCount)
    }

    @Test func aPingsB() throws {
        let s = try TwoStacks()
        let data = FrameBuilder.pattern(56, seed: 8)
        #expect(s.ping(identifier: 0x0a0b, sequence: 1, data: data))
        s.run()
        #expect(s.b.counters.icmpEchoRequestsIn == 1 && s.b.counters.icmpEchoRepliesOut == 1)
        // A has no ping client: it sees the reply as an ICMP message it does not handle.
        let replies = s.a.device.received.compactMap { $0.ipv4?.icmp }
        #expect(replies.count == 1)
        guard let reply = replies.first else { return }
        #expect(reply.type == 0 && reply.code == 0)
        #expect(reply.identifier == 0x0a0b && reply.sequence == 1)
        #expect(reply.data == data)
        #expect(reply.checksum == reply.recomputedChecksum)
        #expect(s.a.counters.drops[.icmpUnhandledType] == 1)
    }

    @Test func aPingsBWithAFragmentedRequest() throws {
        let s = try TwoStacks()
        let data = FrameBuilder.pattern(4000, seed: 40)
        #expect(s.ping(identifier: 7, sequence: 2, data: data))
        s.run()
        // B reassembled the request and fragmented its reply.
        #expect(s.b.counters.datagramsReassembled == 1)
        let packets = s.a.device.received.compactMap(\.ipv4).filter { $0.protocolNumber == 1 }
        #expect(packets.count == 3)
        guard let (_, payload) = reassembleInTest(packets, mtu: 1500), let reply = CapturedICMP(payload) else { return }
        #expect(reply.type == 0 && reply.identifier == 7 && reply.sequence == 2)
        #expect(reply.data == data)
        #expect(reply.checksumVerifies)
        // A's own reassembler put it together too.
        #expect(s.a.counters.datagramsReassembled == 1)
        #expect(s.pool.freeCount == s.pool.slotCount)
    }
}
