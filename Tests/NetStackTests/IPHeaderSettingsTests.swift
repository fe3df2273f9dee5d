import Testing
@testable import NetStack
import NetStackWire

/// A socket's IP header settings (IP_TTL and IP_TOS, IPV6_UNICAST_HOPS and
/// IPV6_TCLASS) on the packets its TCP connection and its UDP socket send,
/// in both families.
@Suite struct IPHeaderSettingsTests {
    let peer = IPAddress.v4(PeerHarness.peerIP)
    let marked = IPHeaderSettings(timeToLive: 7, typeOfService: 0xb8, hopLimit: 9, trafficClass: 0x28)

    /// The TTL and TOS byte of each IPv4 frame sent.
    func headers(_ frames: [CapturedFrame]) -> [(ttl: UInt8, tos: UInt8)] {
        frames.compactMap(\.ipv4).map { ($0.ttl, $0.header[1]) }
    }

    @Test func aConnectionsSegmentsCarryItsTTLAndTOSFromTheSYNOn() throws {
        let p = PeerHarness.resolved()
        var config = TCPConfiguration()
        config.ipHeader = marked
        let c = try p.tcp.connect(to: peer, port: 5000, configuration: config, now: p.now)
        let syn = headers(p.sent())
        #expect(syn.count == 1 && syn.first?.ttl == 7 && syn.first?.tos == 0xb8)

        // Changed on the open connection, the next segment (the SYN again, after 1 s) carries the new values.
        c.ipHeader = IPHeaderSettings(timeToLive: 200)
        let again = headers(p.advance(by: .seconds(1)))
        #expect(again.count == 1 && again.first?.ttl == 200 && again.first?.tos == 0)
    }

    @Test func aListenersSettingsGoToItsConnectionsSYNACK() throws {
        let p = PeerHarness.resolved()
        var config = TCPConfiguration()
        config.ipHeader = marked
        let l = try p.tcp.listen(port: 80, configuration: config)
        let synAck = headers(p.exchange(p.tcpFrame(.syn, destinationPort: 80, seq: SequenceNumber(1000),
                                                   options: TCPOptions(mss: 1460))))
        #expect(synAck.count == 1 && synAck.first?.ttl == 7 && synAck.first?.tos == 0xb8)

        // What the listener is given later, its later connections get.
        l.configure { $0.ipHeader.timeToLive = 3 }
        let next = headers(p.exchange(p.tcpFrame(.syn, sourcePort: 40001, destinationPort: 80,
                                                 seq: SequenceNumber(2000), options: TCPOptions(mss: 1460))))
        #expect(next.count == 1 && next.first?.ttl == 3 && next.first?.tos == 0xb8)
    }

    @Test func aUDPSocketsDatagramsCarryItsTTLAndTOSFragmentsIncluded() throws {
        let p = PeerHarness.resolved()
        let s = try p.udp.bind(port: 9000)
        #expect(s.send([1, 2, 3], to: UDPEndpoint(address: PeerHarness.peerIP, port: 53)))
        #expect(headers(p.sent()).map(\.ttl) == [64])
        s.ipHeader = marked
        #expect(s.send(testBytes(3000), to: UDPEndpoint(address: PeerHarness.peerIP, port: 53)))
        let fragments = headers(p.sent())
        #expect(fragments.count == 3)
        #expect(fragments.allSatisfy { $0.ttl == 7 && $0.tos == 0xb8 })
    }

    @Test func ipv6PacketsCarryTheHopLimitAndTrafficClass() throws {
        let p = IPv6InterfaceTests.harness()
        _ = IPv6InterfaceTests.resolve(p)
        let s = try p.udp.bind(port: 9000)
        s.ipHeader = marked
        #expect(s.send([1, 2, 3], to: UDPEndpoint(address: .v6(IPv6InterfaceTests.peer6), port: 53)))
        var config = TCPConfiguration()
        config.ipHeader = marked
        _ = try p.tcp.connect(to: .v6(IPv6InterfaceTests.peer6), port: 5000, configuration: config, now: p.now)
        let sent = p.sent().compactMap(Sent6.init)
        #expect(sent.map(\.nextHeader) == [.udp, .tcp])
        // Version 6, then the traffic class across the next eight bits.
        #expect(sent.allSatisfy { $0.hopLimit == 9 && ($0.bytes[14] & 0x0f) << 4 | $0.bytes[15] >> 4 == 0x28 })
    }
}
