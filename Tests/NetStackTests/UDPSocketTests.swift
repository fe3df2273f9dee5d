import Testing
@testable import NetStack
import NetStackWire

/// The UDP socket object: a bounded receive queue and the ICMP errors about
/// what it sent (RFC 1122 4.1.3.3).
@Suite struct UDPSocketTests {
    typealias H = PeerHarness

    @Test func datagramsQueueInOrderWithTheirSenders() throws {
        let h = PeerHarness()
        let socket = try h.interface.udp.bind(port: 9000)
        for i in 0..<3 {
            _ = h.exchange(h.udpFrame(sourcePort: 40000 + UInt16(i), destinationPort: 9000,
                                      payload: [UInt8](repeating: UInt8(i), count: 100 + i)))
        }
        #expect(socket.pendingDatagrams == 3)
        var buffer: [UInt8] = []
        for i in 0..<3 {
            let from = socket.receive(into: &buffer)
            #expect(from == UDPEndpoint(address: H.peerIP, port: 40000 + UInt16(i)))
            #expect(buffer == [UInt8](repeating: UInt8(i), count: 100 + i))
        }
        #expect(socket.receive(into: &buffer) == nil)
    }

    @Test func aFullQueueDropsAndCounts() throws {
        let h = PeerHarness()
        let socket = try h.interface.udp.bind(port: 9000, receiveCapacity: 4096)
        let payload = [UInt8](repeating: 7, count: 1000)
        for _ in 0..<6 { _ = h.exchange(h.udpFrame(destinationPort: 9000, payload: payload)) }
        // 4096 bytes hold four datagrams of 1000; the other two are dropped, not queued in part.
        #expect(socket.pendingDatagrams == 4)
        #expect(h.drops(UDPDropReason.receiveQueueFull) == 2)
        var buffer: [UInt8] = []
        _ = socket.receive(into: &buffer)
        _ = h.exchange(h.udpFrame(destinationPort: 9000, payload: payload))
        #expect(socket.pendingDatagrams == 4, "room again after a read")
        #expect(buffer == payload)
    }

    @Test func portUnreachableAboutWhatItSentReachesTheSocket() throws {
        let h = PeerHarness()
        h.resolvePeer()
        let socket = try h.interface.udp.bind(port: 5000)
        var woken = 0
        socket.onReadable = { _ in woken += 1 }
        #expect(socket.send(Array("query".utf8), to: UDPEndpoint(address: H.peerIP, port: 53)))
        h.poll()
        let sent = try #require(h.sent().first?.ipv4)
        #expect(sent.protocolNumber == IPProtocol.udp.rawValue)
        // The peer answers: port unreachable, quoting the IP header and 8 bytes.
        var icmp: [UInt8] = [3, 3, 0, 0, 0, 0, 0, 0] + sent.header + Array(sent.payload.prefix(8))
        let sum = icmp.withUnsafeBytes { InternetChecksum.compute($0) }
        icmp[2] = UInt8(sum >> 8)
        icmp[3] = UInt8(sum & 0xff)
        _ = h.exchange(h.ipFrame(FrameBuilder.ipv4(source: H.peerIP, destination: H.stackIP, protocol: .icmp,
                                                   payload: icmp)))
        #expect(woken == 1)
        let error = try #require(socket.nextError())
        #expect(error == UDPSocketError(kind: .portUnreachable, destination: UDPEndpoint(address: H.peerIP, port: 53)))
        #expect(socket.nextError() == nil)
        #expect(h.udp.counters.errorsIn == 1)
        #expect(h.counters.icmpErrorsIn == 1)
    }

    @Test func anErrorAboutSomeoneElsesDatagramIsDropped() throws {
        let h = PeerHarness()
        let socket = try h.interface.udp.bind(port: 5000)
        // Quoting a datagram from 10.0.0.3, not from us.
        let quoted = FrameBuilder.ipv4(source: H.otherIP, destination: H.peerIP, protocol: .udp,
                                       payload: [0x13, 0x88, 0, 53, 0, 8, 0, 0])
        var icmp: [UInt8] = [3, 3, 0, 0, 0, 0, 0, 0] + quoted
        let sum = icmp.withUnsafeBytes { InternetChecksum.compute($0) }
        icmp[2] = UInt8(sum >> 8)
        icmp[3] = UInt8(sum & 0xff)
        _ = h.exchange(h.ipFrame(FrameBuilder.ipv4(source: H.peerIP, destination: H.stackIP, protocol: .icmp,
                                                   payload: icmp)))
        #expect(socket.nextError() == nil)
        #expect(h.drops(DropReason.icmpBadQuote) == 1)
    }

    @Test func aClosedSocketFreesItsPort() throws {
        let h = PeerHarness()
        let socket = try h.interface.udp.bind(port: 9000)
        #expect(throws: UDPBindError.portInUse(9000)) { _ = try h.interface.udp.bind(port: 9000) }
        socket.close()
        #expect(!socket.send([1], to: UDPEndpoint(address: H.peerIP, port: 1)))
        _ = try h.interface.udp.bind(port: 9000)
    }

    @Test func anIPv4AndAnIPv6OnlySocketShareAPortAndEachGetsItsOwn() throws {
        let h = PeerHarness()
        let v6 = try h.interface.udp.bind(port: 9000, families: .ipv6Only)
        let v4 = try h.interface.udp.bind(port: 9000, families: .ipv4Only)
        #expect(throws: UDPBindError.portInUse(9000)) { _ = try h.interface.udp.bind(port: 9000) }
        _ = h.exchange(h.udpFrame(destinationPort: 9000, payload: [1, 2, 3]))
        #expect(v4.pendingDatagrams == 1 && v6.pendingDatagrams == 0)
        // With the IPv4 one gone, an IPv4 datagram finds the port closed: port unreachable.
        v4.close()
        let answer = h.exchange(h.udpFrame(destinationPort: 9000, payload: [4]))
        #expect(h.drops(UDPDropReason.noSocket) == 1)
        #expect(!answer.isEmpty)
        #expect(v6.pendingDatagrams == 0)
        _ = try h.interface.udp.bind(port: 9000, families: .ipv4Only)
    }

    /// SO_REUSEPORT: sockets sharing a port each take some peers' datagrams,
    /// a peer's always the same socket's, and hear the errors about what
    /// they sent to their peers.
    @Test func socketsSharingAPortSplitThePeers() throws {
        let h = PeerHarness()
        h.resolvePeer()
        let a = try h.interface.udp.bind(port: 9000, sharingPort: true)
        let b = try h.interface.udp.bind(port: 9000, sharingPort: true)
        #expect(throws: UDPBindError.portInUse(9000)) { _ = try h.interface.udp.bind(port: 9000) }
        for port in UInt16(40000)..<40032 {
            for _ in 0..<2 { _ = h.exchange(h.udpFrame(sourcePort: port, destinationPort: 9000, payload: [1])) }
        }
        #expect(a.pendingDatagrams + b.pendingDatagrams == 64)
        #expect(a.pendingDatagrams > 0 && b.pendingDatagrams > 0)
        // Each peer port's two datagrams went to the same socket.
        var buffer: [UInt8] = []
        for s in [a, b] {
            var ports: [UInt16: Int] = [:]
            while let from = s.receive(into: &buffer) { ports[from.port, default: 0] += 1 }
            #expect(ports.values.allSatisfy { $0 == 2 })
        }
    }

    /// SO_REUSEADDR (Linux's UDP): sockets that all set it bind one port;
    /// a datagram goes to a socket connected to its sender, else to the
    /// newest unconnected one, as iperf3's UDP server needs (it connects
    /// one socket to its client and binds a fresh one beside it).
    @Test func socketsSharingAnAddressTakeByConnectionThenByAge() throws {
        let h = PeerHarness()
        h.resolvePeer()
        let first = try h.interface.udp.bind(port: 9000, sharingAddress: true)
        #expect(throws: UDPBindError.portInUse(9000)) { _ = try h.interface.udp.bind(port: 9000) }
        #expect(throws: UDPBindError.portInUse(9000)) { _ = try h.interface.udp.bind(port: 9000, sharingPort: true) }
        let client = UDPEndpoint(address: H.peerIP, port: 40000)
        #expect(first.connect(to: client) == .v4(H.stackIP))
        let fresh = try h.interface.udp.bind(port: 9000, sharingAddress: true)
        let newest = try h.interface.udp.bind(port: 9000, sharingAddress: true)
        for port: UInt16 in [40000, 40001, 40000, 40002] {
            _ = h.exchange(h.udpFrame(sourcePort: port, destinationPort: 9000, payload: [UInt8(port & 0xff)]))
        }
        var buffer: [UInt8] = []
        #expect(first.pendingDatagrams == 2)
        while let from = first.receive(into: &buffer) { #expect(from == client) }
        #expect(fresh.pendingDatagrams == 0)
        #expect(newest.pendingDatagrams == 2)
        // Gone, the newest hands the others to the next newest.
        newest.close()
        _ = h.exchange(h.udpFrame(sourcePort: 40003, destinationPort: 9000, payload: [3]))
        #expect(fresh.pendingDatagrams == 1)
        // Disconnected, the first is one of the unconnected: the newer takes all.
        first.connect(to: nil)
        _ = h.exchange(h.udpFrame(sourcePort: 40000, destinationPort: 9000, payload: [4]))
        #expect(first.pendingDatagrams == 0 && fresh.pendingDatagrams == 2)
    }

    /// A connected socket takes its peer's datagrams only: another's find the
    /// port closed (ICMP port unreachable, as Linux answers), and ICMP errors
    /// about what went elsewhere do not reach it.
    @Test func aConnectedSocketsPortIsClosedToOtherPeers() throws {
        let h = PeerHarness()
        h.resolvePeer()
        let s = try h.interface.udp.bind(port: 9000)
        s.connect(to: UDPEndpoint(address: H.peerIP, port: 40000))
        _ = h.exchange(h.udpFrame(sourcePort: 40000, destinationPort: 9000, payload: [1]))
        #expect(s.pendingDatagrams == 1)
        let answer = h.exchange(h.udpFrame(sourcePort: 40001, destinationPort: 9000, payload: [2]))
        #expect(s.pendingDatagrams == 1)
        #expect(h.drops(UDPDropReason.noSocket) == 1)
        let icmp = try #require(answer.first?.ipv4)
        #expect(icmp.protocolNumber == IPProtocol.icmp.rawValue)
        #expect(Array(icmp.payload.prefix(2)) == [3, 3], "port unreachable")
        // Connected again, to the other peer: that one's datagrams come.
        s.connect(to: UDPEndpoint(address: H.peerIP, port: 40001))
        _ = h.exchange(h.udpFrame(sourcePort: 40001, destinationPort: 9000, payload: [3]))
        #expect(s.pendingDatagrams == 2, "what came before the second connect stays queued")
    }

    /// How a datagram arrived (what IP_PKTINFO, IP_RECVTOS, IP_RECVTTL and
    /// SO_TIMESTAMP report): the address it came to, a broadcast too, its
    /// header's DS field and TTL, and when the loop took it in.
    @Test func aDatagramKeepsWhereItCameToAndItsTOSAndTTL() throws {
        let h = PeerHarness()
        let socket = try h.interface.udp.bind(port: 9000)
        let udp = FrameBuilder.udp(sourcePort: 40000, destinationPort: 9000, payload: [7],
                                   source: H.peerIP, destination: H.stackIP)
        var repr = IPv4Repr(source: H.peerIP, destination: H.stackIP, protocol: .udp, payloadLength: udp.count,
                            timeToLive: 33, identification: 1)
        repr.dscpECN = 0x28
        _ = h.advance(by: .milliseconds(250))
        let arrived = h.clock.now
        _ = h.exchange(h.ipFrame(FrameBuilder.ipv4(repr, payload: udp)))
        let broadcast = IPv4Address(0xffff_ffff)
        let toAll = FrameBuilder.udp(sourcePort: 40001, destinationPort: 9000, payload: [8],
                                     source: H.peerIP, destination: broadcast)
        _ = h.exchange(h.ipFrame(FrameBuilder.ipv4(source: H.peerIP, destination: broadcast, protocol: .udp,
                                                   payload: toAll), to: .broadcast))
        var buffer: [UInt8] = []
        #expect(socket.receiveArrival(into: &buffer) == UDPArrival(
            source: UDPEndpoint(address: H.peerIP, port: 40000), destination: .v4(H.stackIP),
            trafficClass: 0x28, hopLimit: 33, time: arrived))
        #expect(buffer == [7])
        let second = try #require(socket.receiveArrival(into: &buffer))
        #expect(second.destination == .v4(broadcast) && second.trafficClass == 0 && second.hopLimit == 64)
    }
}
