import Testing
@testable import NetStack
import NetStackWire

/// Two stacks speaking IPv6 to each other over a `MemoryLink`: neighbour
/// discovery for real, TCP and UDP over IPv6 byte-exact, fragmentation both
/// ways, and both families at once.
@Suite struct IPv6StackToStackTests {
    @Test func tcpCarriesOneMebibyteOverIPv6WithIPv6SizedSegments() throws {
        let pair = TCPStackPair(ipv6: true)
        pair.settleIPv6()
        let listener = try pair.b.tcp.listen(port: 80)
        let client = try pair.a.tcp.connect(to: .v6(TCPStackPair.ip6B), port: 80, now: pair.now)
        let transfer = BulkTransfer(length: 1 << 20, seed: 6)
        let (finished, server) = pair.sendOneWay(transfer, from: client, to: listener)
        #expect(finished && transfer.receivedHash.value == transfer.sentHash.value)
        #expect(server?.tuple.remoteAddress == .v6(TCPStackPair.ip6A))
        #expect(client.tuple.localAddress == .v6(TCPStackPair.ip6A))
        // RFC 8200 8.3 / RFC 9293 3.7.1: the MSS is the MTU less 60.
        #expect(client.sendMSS <= 1500 - 60 && client.sendMSS >= 1500 - 60 - 12)
        #expect(pair.a.counters.ipv6Out > 700 && pair.a.counters.ipv4Out == 0)
        #expect(pair.a.ndp.lookup(TCPStackPair.ip6B, now: pair.now) == pair.b.macAddress)
        client.close()
        server?.close()
        pair.run(until: { client.state == .timeWait || client.state == .closed })
    }

    @Test func udpDatagramsOfEverySizeClassAreEchoedOverIPv6() throws {
        let pair = TCPStackPair(ipv6: true)
        pair.settleIPv6()
        try pair.b.udp.bind(port: 7) { from, payload in
            pair.b.udp.send(from: 7, to: from, payload: payload, now: pair.now)
        }
        var received: [[UInt8]] = []
        try pair.a.udp.bind(port: 5000) { _, payload in received.append([UInt8](payload)) }
        // One frame; the most one frame holds (1500 - 40 - 8); one more; fragments.
        // The largest datagram the Payload Length field allows (65535 - 8), in 45 fragments.
        let sizes = [1, 7, 8, 1232, 1452, 1453, 2000, 3000, 8000, 65527]
        for (i, size) in sizes.enumerated() {
            let payload = FrameBuilder.pattern(size, seed: UInt8(i))
            _ = payload.withUnsafeBytes { p in
                pair.a.udp.send(from: 5000, to: UDPEndpoint(address: .v6(TCPStackPair.ip6B), port: 7), payload: p,
                                now: pair.now)
            }
            pair.run(until: { received.count == i + 1 })
            #expect(received.last == payload, "size \(size)")
        }
        #expect(pair.b.counters.datagrams6Reassembled == 5 && pair.a.counters.datagrams6Reassembled == 5)
    }

    /// A listener or socket told to take one family (IPV6_V6ONLY's choice):
    /// the other family finds the port closed, a RST or port unreachable.
    @Test func aListenerAndASocketOfOneFamilyLeaveThePortClosedToTheOther() throws {
        let pair = TCPStackPair(ipv6: true)
        pair.settleIPv6()
        let listener = try pair.b.tcp.listen(port: 80, families: .ipv6Only)
        #expect(listener.families == .ipv6Only)
        let over4 = try pair.a.tcp.connect(to: .v4(TCPStackPair.ipB), port: 80, now: pair.now)
        let over6 = try pair.a.tcp.connect(to: .v6(TCPStackPair.ip6B), port: 80, now: pair.now)
        pair.run(until: { over4.state == .closed && over6.state == .established })
        #expect(pair.b.tcp.counters.resetsSent >= 1)

        let v4only = try pair.b.udp.bind(port: 53, families: .ipv4Only)
        #expect(!v4only.send([1], to: UDPEndpoint(address: .v6(TCPStackPair.ip6A), port: 9)))
        let client = try pair.a.udp.bind(port: 5353)
        #expect(client.send([1, 2, 3], to: UDPEndpoint(address: .v6(TCPStackPair.ip6B), port: 53)))
        #expect(client.send([4, 5, 6], to: UDPEndpoint(address: .v4(TCPStackPair.ipB), port: 53)))
        var buffer: [UInt8] = []
        var got: [[UInt8]] = []
        pair.run(until: {
            while v4only.receive(into: &buffer) != nil { got.append(buffer) }
            return got.count == 1 && client.nextError() != nil
        })
        #expect(got == [[4, 5, 6]])
        #expect(pair.b.counters.icmp6ErrorsOut == 1)
    }

    @Test func bothFamiliesCarryTrafficAtOnce() throws {
        let pair = TCPStackPair(ipv6: true)
        pair.settleIPv6()
        let listener = try pair.b.tcp.listen(port: 9)
        let over4 = try pair.a.tcp.connect(to: .v4(TCPStackPair.ipB), port: 9, now: pair.now)
        let over6 = try pair.a.tcp.connect(to: .v6(TCPStackPair.ip6B), port: 9, now: pair.now)
        let t4 = BulkTransfer(length: 256 << 10, seed: 4)
        let t6 = BulkTransfer(length: 256 << 10, seed: 60)
        var servers: [TCPConnection] = []
        pair.run(until: { t4.read == t4.length && t6.read == t6.length }, app: {
            while let s = listener.accept() { servers.append(s) }
            var moved = t4.pump(into: over4)
            moved = t6.pump(into: over6) || moved
            pair.a.tcp.flush(over4, now: pair.now)
            pair.a.tcp.flush(over6, now: pair.now)
            for s in servers {
                let t = s.tuple.remoteAddress.ipv6 != nil ? t6 : t4
                moved = t.drain(from: s) || moved
            }
            return moved
        })
        #expect(t4.receivedHash.value == t4.sentHash.value && t6.receivedHash.value == t6.sentHash.value)
        #expect(servers.count == 2)
    }
}
