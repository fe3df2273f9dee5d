import Testing
@testable import NetStack
import NetStackWire

/// IPv6 at the interface, against a neighbour the test plays: duplicate
/// address detection, neighbour discovery both ways, echo, ICMPv6 errors
/// with RFC 4443's rules, the extension header chain, fragments both ways,
/// and malformed input counted and survived.
@Suite struct IPv6InterfaceTests {
    static let stack6 = IPv6Address(0xfd00, 0, 0, 0, 0, 0, 0, 2)
    static let peer6 = IPv6Address(0xfd00, 0, 0, 0, 0, 0, 0, 1)
    static let other6 = IPv6Address(0xfd00, 0, 0, 0, 0, 0, 0, 3)
    static let peerLinkLocal = IPv6Address(0xfe80, 0, 0, 0, 0, 0, 0, 1)
    static var stackLinkLocal: IPv6Address { .linkLocal(eui64: PeerHarness.stackMAC) }

    /// A harness whose stack has fd00::2/64 (and its link-local address),
    /// with DAD done unless `settle` is false.
    static func harness(settle: Bool = true) -> PeerHarness {
        let h = PeerHarness { $0.address6 = IPv6CIDR(address: stack6, prefixLength: 64) }
        if settle {
            _ = h.advance(by: .zero)
            _ = h.advance(by: .seconds(1))
            #expect(h.interface.ipv6Settled)
        }
        return h
    }

    // MARK: Frames

    /// An IPv6 packet from `source` to `destination` carrying `payload` after `nextHeader`.
    static func ipv6(_ source: IPv6Address, _ destination: IPv6Address, nextHeader: IPProtocol, payload: [UInt8],
                     hopLimit: UInt8 = 64) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 40)
        bytes.withUnsafeMutableBytes { b in
            IPv6Repr(source: source, destination: destination, nextHeader: nextHeader, payloadLength: payload.count,
                     hopLimit: hopLimit).emit(into: b)
        }
        return bytes + payload
    }

    /// An ICMPv6 message with its checksum over the pseudo-header.
    static func icmp6(_ message: ICMPv6Message, data: [UInt8], source: IPv6Address,
                      destination: IPv6Address) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 8 + data.count)
        for (i, b) in data.enumerated() { bytes[8 + i] = b }
        bytes.withUnsafeMutableBytes { b in
            ICMPv6Repr(message: message, dataLength: data.count).emit(into: b, source: source, destination: destination)
        }
        return bytes
    }

    static func ndp(_ repr: NDPRepr, source: IPv6Address, destination: IPv6Address) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: repr.length)
        bytes.withUnsafeMutableBytes { b in repr.emit(into: b, source: source, destination: destination) }
        return bytes
    }

    static func frame(_ ip: [UInt8], to mac: MACAddress = PeerHarness.stackMAC,
                      from source: MACAddress = PeerHarness.peerMAC) -> [UInt8] {
        FrameBuilder.ethernet(destination: mac, source: source, etherType: .ipv6, payload: ip)
    }

    static func echoRequest(from source: IPv6Address = peer6, to destination: IPv6Address = stack6,
                            data: [UInt8] = Array(0..<56), sequence: UInt16 = 1) -> [UInt8] {
        ipv6(source, destination, nextHeader: .icmpv6,
             payload: icmp6(.echoRequest(identifier: 0x77, sequence: sequence), data: data, source: source,
                            destination: destination))
    }

    /// The peer asks for the stack's address (which teaches the stack the
    /// peer's) and gets the advertisement.
    static func resolve(_ h: PeerHarness, from source: IPv6Address = peer6) -> [CapturedFrame] {
        let ns = ndp(.neighborSolicitation(target: stack6, sourceLinkLayer: PeerHarness.peerMAC), source: source,
                     destination: stack6.solicitedNodeMulticast)
        return h.exchange(frame(ipv6(source, stack6.solicitedNodeMulticast, nextHeader: .icmpv6, payload: ns,
                                     hopLimit: 255),
                                to: stack6.solicitedNodeMulticast.multicastMAC))
    }

    // MARK: Duplicate address detection (RFC 4862 5.4)

    @Test func dadProbesEachAddressThenAssignsItAndAnnouncesIt() throws {
        let h = Self.harness(settle: false)
        let out = h.advance(by: .zero).compactMap(Sent6.init)
        // The groups' MLD report goes first (MLDTests), then a probe per address.
        #expect(out.count == 3 && out.first?.nextHeader == .hopByHopOptions)
        let probes = Array(out.dropFirst())
        for p in probes {
            #expect(p.source == .unspecified && p.hopLimit == 255 && p.icmpType == ICMPv6Type.neighborSolicitation)
            #expect(p.destination == p.target!.solicitedNodeMulticast)
            #expect(p.ethernetDestination == p.target!.solicitedNodeMulticast.multicastMAC)
            #expect(p.options.isEmpty, "DAD sends no source link-layer option")
            #expect(p.checksumValid)
        }
        #expect(Set(probes.compactMap(\.target)) == [Self.stack6, Self.stackLinkLocal])
        // Tentative: traffic to the address is not taken.
        let early = h.exchange(Self.frame(Self.echoRequest()))
        #expect(early.isEmpty && h.drops(.ipv6NotForUs) == 1)
        #expect(!h.interface.ipv6Settled)

        let after = h.advance(by: .seconds(1)).compactMap(Sent6.init)
        let announcements = after.filter { $0.icmpType == ICMPv6Type.neighborAdvertisement }
        #expect(Set(announcements.compactMap(\.target)) == [Self.stack6, Self.stackLinkLocal])
        #expect(announcements.allSatisfy { $0.destination == .allNodes && $0.override && !$0.solicited })
        #expect(h.interface.ipv6Settled && h.counters.dadAddressesAssigned == 2)
        #expect(h.interface.ipv6Addresses == [Self.stackLinkLocal, Self.stack6])
    }

    @Test func anotherNodesDADForOurTentativeAddressMakesItADuplicate() {
        let h = Self.harness(settle: false)
        _ = h.advance(by: .zero)
        let theirs = Self.ndp(.neighborSolicitation(target: Self.stack6, sourceLinkLayer: nil), source: .unspecified,
                              destination: Self.stack6.solicitedNodeMulticast)
        _ = h.exchange(Self.frame(Self.ipv6(.unspecified, Self.stack6.solicitedNodeMulticast, nextHeader: .icmpv6,
                                            payload: theirs, hopLimit: 255),
                                  to: Self.stack6.solicitedNodeMulticast.multicastMAC))
        _ = h.advance(by: .seconds(1))
        #expect(h.counters.dadDuplicates == 1)
        #expect(h.interface.ipv6Addresses == [Self.stackLinkLocal])
        _ = Self.resolve(h)
        #expect(h.exchange(Self.frame(Self.echoRequest())).isEmpty)
    }

    // MARK: Neighbour discovery (RFC 4861 7)

    @Test func solicitationIsAnsweredWithASolicitedAdvertisement() throws {
        let h = Self.harness()
        let out = Self.resolve(h).compactMap(Sent6.init)
        let na = try #require(out.first)
        #expect(out.count == 1)
        #expect(na.icmpType == ICMPv6Type.neighborAdvertisement && na.hopLimit == 255 && na.checksumValid)
        #expect(na.source == Self.stack6 && na.destination == Self.peer6 && na.ethernetDestination == PeerHarness.peerMAC)
        #expect(na.target == Self.stack6 && na.solicited && na.override && !na.router)
        #expect(na.options == [.targetLinkLayer(PeerHarness.stackMAC)])
        #expect(h.interface.ndp.lookup(Self.peer6, now: h.now) == PeerHarness.peerMAC)
    }

    /// RFC 4861 7.2.3 and 7.3.3: the address a solicitation taught is STALE;
    /// traffic to it goes at once, and when it still goes after DELAY's 5 s
    /// with nothing confirming the neighbour, a unicast solicitation probes
    /// it; the solicited answer makes it REACHABLE, and the probing stops.
    @Test func aNeighbourLearnedFromASolicitationIsStaleAndProbedAfterTheDelay() throws {
        let h = Self.harness()
        _ = Self.resolve(h)
        #expect(h.interface.ndp.state(of: Self.peer6, now: h.now) == .stale)
        var probes: [(at: Duration, frame: Sent6)] = []
        for second in 0..<8 {
            let replies = h.exchange(Self.frame(Self.echoRequest(sequence: UInt16(second))))
                .compactMap(Sent6.init)
            #expect(replies.contains { $0.icmpType == ICMPv6Type.echoReply && $0.ethernetDestination == PeerHarness.peerMAC })
            for f in replies where f.icmpType == ICMPv6Type.neighborSolicitation { probes.append((.seconds(second), f)) }
            if probes.isEmpty { _ = h.advance(by: .seconds(1)) } else { break }
        }
        let probe = try #require(probes.first)
        #expect(probes.count == 1 && probe.at == .seconds(5))
        #expect(probe.frame.destination == Self.peer6 && probe.frame.ethernetDestination == PeerHarness.peerMAC)
        #expect(probe.frame.target == Self.peer6 && probe.frame.hopLimit == 255 && probe.frame.checksumValid)
        #expect(h.interface.ndp.state(of: Self.peer6, now: h.now) == .probe)

        let na = Self.ndp(.neighborAdvertisement(target: Self.peer6, router: false, solicited: true, override: false,
                                                 targetLinkLayer: nil),
                          source: Self.peer6, destination: Self.stack6)
        _ = h.exchange(Self.frame(Self.ipv6(Self.peer6, Self.stack6, nextHeader: .icmpv6, payload: na, hopLimit: 255)))
        #expect(h.interface.ndp.state(of: Self.peer6, now: h.now) == .reachable)
        for second in 0..<10 {
            _ = h.advance(by: .seconds(1))
            let out = h.exchange(Self.frame(Self.echoRequest(sequence: UInt16(100 + second)))).compactMap(Sent6.init)
            #expect(!out.contains { $0.icmpType == ICMPv6Type.neighborSolicitation })
        }
        // Another solicitation with the same address leaves a reachable entry as it is.
        _ = Self.resolve(h)
        #expect(h.interface.ndp.state(of: Self.peer6, now: h.now) == .reachable)
    }

    @Test func solicitationWithAHopLimitBelow255IsInvalid() {
        let h = Self.harness()
        let ns = Self.ndp(.neighborSolicitation(target: Self.stack6, sourceLinkLayer: PeerHarness.peerMAC),
                          source: Self.peer6, destination: Self.stack6)
        let out = h.exchange(Self.frame(Self.ipv6(Self.peer6, Self.stack6, nextHeader: .icmpv6, payload: ns,
                                                  hopLimit: 254)))
        #expect(out.isEmpty && h.drops(.ndpInvalid) == 1)
    }

    /// RFC 4291 2.5.2, 2.5.3: ::1 never leaves a node and :: is never a
    /// destination, even with a default router: no route, nothing sent.
    @Test func loopbackAndUnspecifiedHaveNoRoute() throws {
        let h = PeerHarness {
            $0.address6 = IPv6CIDR(address: Self.stack6, prefixLength: 64)
            $0.gateway6 = Self.other6
        }
        _ = h.advance(by: .seconds(2))
        let socket = try h.udp.bind(port: 9000)
        #expect(!socket.send([1], to: UDPEndpoint(address: .v6(IPv6Address(high: 0, low: 1)), port: 53)))
        #expect(!socket.send([1], to: UDPEndpoint(address: .v6(IPv6Address(high: 0, low: 0)), port: 53)))
        #expect(throws: TCPConnectError.noRoute) {
            try h.tcp.connect(to: .v6(IPv6Address(high: 0, low: 1)), port: 80, now: h.now)
        }
        h.interface.flushPending(now: h.now)
        #expect(h.sent().compactMap(Sent6.init).isEmpty)
    }

    @Test func sendingToAnUnknownNeighbourSolicitsItAndTheAdvertisementReleasesTheDatagram() throws {
        let h = Self.harness()
        let socket = try h.udp.bind(port: 9000)
        #expect(socket.send([1, 2, 3], to: UDPEndpoint(address: .v6(Self.other6), port: 53)))
        h.interface.flushPending(now: h.now)
        let asked = h.sent().compactMap(Sent6.init)
        let ns = try #require(asked.first)
        #expect(asked.count == 1)
        #expect(ns.icmpType == ICMPv6Type.neighborSolicitation && ns.target == Self.other6)
        #expect(ns.destination == Self.other6.solicitedNodeMulticast && ns.source == Self.stack6)
        #expect(ns.options == [.sourceLinkLayer(PeerHarness.stackMAC)])

        let otherMAC = PeerHarness.otherMAC
        let na = Self.ndp(.neighborAdvertisement(target: Self.other6, router: false, solicited: true, override: true,
                                                 targetLinkLayer: otherMAC),
                          source: Self.other6, destination: Self.stack6)
        let released = h.exchange(Self.frame(Self.ipv6(Self.other6, Self.stack6, nextHeader: .icmpv6, payload: na,
                                                       hopLimit: 255), from: otherMAC)).compactMap(Sent6.init)
        let udp = try #require(released.first)
        #expect(released.count == 1 && udp.nextHeader == .udp && udp.ethernetDestination == otherMAC)
        #expect(udp.destination == Self.other6 && Array(udp.payload.suffix(3)) == [1, 2, 3])
        #expect(udp.flowLabel != 0)
    }

    // MARK: Echo (RFC 4443 4)

    @Test func echoIsAnsweredInPlace() throws {
        let h = Self.harness()
        _ = Self.resolve(h)
        let data = FrameBuilder.pattern(200)
        let out = h.exchange(Self.frame(Self.echoRequest(data: data, sequence: 9))).compactMap(Sent6.init)
        let reply = try #require(out.first)
        #expect(out.count == 1 && reply.icmpType == ICMPv6Type.echoReply && reply.checksumValid)
        #expect(reply.source == Self.stack6 && reply.destination == Self.peer6)
        #expect(Array(reply.payload[4..<8]) == [0, 0x77, 0, 9] && Array(reply.payload.dropFirst(8)) == data)
        #expect(h.counters.icmp6EchoRepliesOut == 1)
    }

    @Test func echoToAllNodesIsAnsweredFromOurLinkLocalAddress() throws {
        let h = Self.harness()
        _ = Self.resolve(h, from: Self.peerLinkLocal)
        let out = h.exchange(Self.frame(Self.echoRequest(from: Self.peerLinkLocal, to: .allNodes),
                                        to: IPv6Address.allNodes.multicastMAC)).compactMap(Sent6.init)
        let reply = try #require(out.first)
        #expect(reply.icmpType == ICMPv6Type.echoReply && reply.source == Self.stackLinkLocal && reply.checksumValid)
    }

    @Test func largeEchoArrivesInFragmentsAndIsAnsweredInFragments() throws {
        let h = Self.harness()
        _ = Self.resolve(h)
        let data = FrameBuilder.pattern(4000, seed: 3)
        let whole = Self.icmp6(.echoRequest(identifier: 5, sequence: 6), data: data, source: Self.peer6,
                               destination: Self.stack6)
        var frames: [[UInt8]] = []
        var offset = 0
        while offset < whole.count {
            let chunk = min(1448, whole.count - offset)
            let more = offset + chunk < whole.count
            var header = [UInt8](repeating: 0, count: 8)
            header.withUnsafeMutableBytes { b in
                IPv6FragmentRepr(nextHeader: .icmpv6, fragmentOffset: offset, moreFragments: more,
                                 identification: 0xabcd).emit(into: b)
            }
            frames.append(Self.frame(Self.ipv6(Self.peer6, Self.stack6, nextHeader: .ipv6Fragment,
                                               payload: header + whole[offset..<(offset + chunk)])))
            offset += chunk
        }
        let out = h.exchange(frames.reversed()).compactMap(Sent6.init)
        #expect(out.count == 3 && out.allSatisfy { $0.nextHeader == .ipv6Fragment && $0.bytes.count <= 14 + 1500 })
        // Put the reply back together by the fragment headers.
        var reply = [UInt8](repeating: 0, count: whole.count)
        for f in out {
            let p = f.payload
            let off = Int(read16(p, 2) & 0xfff8)
            #expect(p[0] == IPProtocol.icmpv6.rawValue)
            reply.replaceSubrange(off..<(off + p.count - 8), with: p[8...])
        }
        #expect(reply[0] == ICMPv6Type.echoReply && Array(reply.dropFirst(8)) == data)
        #expect(h.counters.datagrams6Reassembled == 1 && h.counters.fragments6Out == 3)
    }

    @Test func overlappingFragmentsDiscardTheDatagram() {
        let h = Self.harness()
        _ = Self.resolve(h)
        func fragment(_ offset: Int, _ length: Int, more: Bool) -> [UInt8] {
            var header = [UInt8](repeating: 0, count: 8)
            header.withUnsafeMutableBytes { b in
                IPv6FragmentRepr(nextHeader: .icmpv6, fragmentOffset: offset, moreFragments: more,
                                 identification: 1).emit(into: b)
            }
            return Self.frame(Self.ipv6(Self.peer6, Self.stack6, nextHeader: .ipv6Fragment,
                                        payload: header + [UInt8](repeating: 7, count: length)))
        }
        let out = h.exchange(fragment(0, 64, more: true), fragment(32, 64, more: false))
        #expect(out.isEmpty && h.drops(.fragmentOverlap) == 1)
    }

    // MARK: Errors (RFC 4443 2.4, 3; RFC 8200 4)

    @Test func closedUDPPortIsAnsweredWithPortUnreachableQuotingTheDatagram() throws {
        let h = Self.harness()
        _ = Self.resolve(h)
        var udp = [UInt8](repeating: 0, count: 8) + [1, 2, 3, 4]
        udp.withUnsafeMutableBytes { b in
            UDPRepr(sourcePort: 40000, destinationPort: 9, payloadLength: 4)
                .emit(into: b, source: .v6(Self.peer6), destination: .v6(Self.stack6))
        }
        let packet = Self.ipv6(Self.peer6, Self.stack6, nextHeader: .udp, payload: udp)
        let out = h.exchange(Self.frame(packet)).compactMap(Sent6.init)
        let error = try #require(out.first)
        #expect(error.icmpType == ICMPv6Type.destinationUnreachable && error.icmpCode == 4 && error.checksumValid)
        #expect(Array(error.payload.dropFirst(8)) == packet)
        // The same to a multicast group draws nothing (2.4(e)).
        let multicast = Self.ipv6(Self.peer6, .allNodes, nextHeader: .udp, payload: udp)
        #expect(h.exchange(Self.frame(multicast, to: IPv6Address.allNodes.multicastMAC)).isEmpty)
    }

    /// An IPv6 datagram keeps its traffic class and hop limit for the
    /// socket (IPV6_RECVTCLASS, IPV6_RECVHOPLIMIT; RFC 3542 6).
    @Test func aUDPDatagramKeepsItsTrafficClassAndHopLimit() throws {
        let h = Self.harness()
        _ = Self.resolve(h)
        let socket = try h.udp.bind(port: 9000)
        var udp = [UInt8](repeating: 0, count: 8) + [1, 2]
        udp.withUnsafeMutableBytes { b in
            UDPRepr(sourcePort: 40000, destinationPort: 9000, payloadLength: 2)
                .emit(into: b, source: .v6(Self.peer6), destination: .v6(Self.stack6))
        }
        var packet = Self.ipv6(Self.peer6, Self.stack6, nextHeader: .udp, payload: udp, hopLimit: 9)
        packet[0] = 0x60 | 0xb  // traffic class 0xb8 (EF): its high nibble here,
        packet[1] = 0x80 | (packet[1] & 0x0f)  // its low one here
        _ = h.exchange(Self.frame(packet))
        var buffer: [UInt8] = []
        let arrival = try #require(socket.receiveArrival(into: &buffer))
        #expect(arrival.destination == .v6(Self.stack6) && arrival.trafficClass == 0xb8 && arrival.hopLimit == 9)
        #expect(buffer == [1, 2])
    }

    @Test func packetTooBigForAUDPDatagramMakesLaterOnesFitThePath() throws {
        let h = Self.harness()
        _ = Self.resolve(h)
        let socket = try h.udp.bind(port: 9000)
        let to = UDPEndpoint(address: .v6(Self.peer6), port: 53)
        let payload = FrameBuilder.pattern(1400)
        #expect(socket.send(payload, to: to))
        h.interface.flushPending(now: h.now)
        let first = try #require(h.sent().compactMap(Sent6.init).first)
        #expect(first.nextHeader == .udp && first.bytes.count == 14 + 40 + 8 + 1400)
        // A router on the path says 1280, quoting what it could of ours.
        let quote = Array(first.bytes[14...].prefix(1232))
        let ptb = Self.icmp6(.packetTooBig(mtu: 1280), data: quote, source: Self.peer6, destination: Self.stack6)
        _ = h.exchange(Self.frame(Self.ipv6(Self.peer6, Self.stack6, nextHeader: .icmpv6, payload: ptb)))
        #expect(socket.nextError()?.kind == .packetTooBig(mtu: 1280))
        #expect(socket.send(payload, to: to))
        h.interface.flushPending(now: h.now)
        let again = h.sent().compactMap(Sent6.init)
        #expect(again.count == 2 && again.allSatisfy { $0.nextHeader == .ipv6Fragment && $0.bytes.count <= 14 + 1280 })
        #expect(h.counters.pathMTULearned == 1)
    }

    @Test func unknownNextHeaderIsAParameterProblemPointingAtIt() throws {
        let h = Self.harness()
        _ = Self.resolve(h)
        let out = h.exchange(Self.frame(Self.ipv6(Self.peer6, Self.stack6, nextHeader: IPProtocol(rawValue: 253),
                                                  payload: [0, 0, 0, 0, 0, 0, 0, 0]))).compactMap(Sent6.init)
        let e = try #require(out.first)
        #expect(e.icmpType == ICMPv6Type.parameterProblem && e.icmpCode == 1 && read32(e.payload, 4) == 6)
        #expect(h.drops(.ipv6UnsupportedProtocol) == 1)
    }

    @Test func routingHeaderType0IsRefusedPointingAtItsType() throws {
        let h = Self.harness()
        _ = Self.resolve(h)
        // Next header UDP, length 2 (24 bytes: one address), type 0, segments left 1.
        var routing: [UInt8] = [17, 2, 0, 1, 0, 0, 0, 0]
        routing += [UInt8](repeating: 0xfd, count: 16)
        let out = h.exchange(Self.frame(Self.ipv6(Self.peer6, Self.stack6, nextHeader: .ipv6Routing,
                                                  payload: routing + [0, 1, 0, 9, 0, 8, 0, 0])))
            .compactMap(Sent6.init)
        let e = try #require(out.first)
        #expect(e.icmpType == ICMPv6Type.parameterProblem && e.icmpCode == 0 && read32(e.payload, 4) == 42)
    }

    @Test func malformedPacketsAreCountedAndTheStackKeepsAnswering() throws {
        let h = Self.harness()
        _ = Self.resolve(h)
        let good = Self.echoRequest()
        // Truncated fixed header; a payload length past the frame; a bad ICMPv6 checksum;
        // nine destination-options headers; a hop-by-hop header not first.
        var badChecksum = good
        badChecksum[40 + 2] ^= 0xff
        let pad: [UInt8] = [0, 0, 1, 4, 0, 0, 0, 0]
        var chain: [UInt8] = []
        for i in 0..<9 { chain += [i == 8 ? 58 : 60] + pad.dropFirst() }
        let tooLong = Self.ipv6(Self.peer6, Self.stack6, nextHeader: .ipv6DestinationOptions,
                                payload: chain + Array(good[40...]))
        let hopByHopSecond = Self.ipv6(Self.peer6, Self.stack6, nextHeader: .ipv6DestinationOptions,
                                       payload: [0] + pad.dropFirst() + [58] + pad.dropFirst() + Array(good[40...]))
        var longPayload = good
        longPayload[4] = 0x40
        let out = h.exchange([Self.frame(Array(good[0..<30])), Self.frame(longPayload), Self.frame(badChecksum),
                              Self.frame(tooLong), Self.frame(hopByHopSecond)])
        #expect(h.drops(.ipv6Truncated) == 2)
        #expect(h.drops(.icmp6BadChecksum) == 1)
        #expect(h.drops(.ipv6HeaderChainTooLong) == 1)
        #expect(h.drops(.ipv6ParameterProblem) == 1)
        // Only the parameter problem answered, pointing at the hop-by-hop Next Header field.
        let answered = out.compactMap(Sent6.init)
        #expect(answered.count == 1 && answered.first?.icmpType == ICMPv6Type.parameterProblem)
        #expect(answered.first.map { read32($0.payload, 4) } == 40)
        let reply = h.exchange(Self.frame(good)).compactMap(Sent6.init)
        #expect(reply.first?.icmpType == ICMPv6Type.echoReply)
    }
}

/// An IPv6 frame the stack sent, decoded by hand (RFC 8200 3, RFC 4443 2.1,
/// RFC 4861 4), so the tests check the stack rather than its own views.
struct Sent6 {
    let bytes: [UInt8]
    init?(_ f: CapturedFrame) {
        guard f.etherType == .ipv6, f.bytes.count >= 54, f.bytes[14] >> 4 == 6 else { return nil }
        bytes = f.bytes
    }

    var ethernetDestination: MACAddress {
        MACAddress(bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5])
    }
    var flowLabel: UInt32 { (UInt32(bytes[15] & 0x0f) << 16) | UInt32(read16(bytes, 16)) }
    var payloadLength: Int { Int(read16(bytes, 18)) }
    var nextHeader: IPProtocol { IPProtocol(rawValue: bytes[20]) }
    var hopLimit: UInt8 { bytes[21] }
    var source: IPv6Address { Self.address(bytes, 22) }
    var destination: IPv6Address { Self.address(bytes, 38) }
    var payload: [UInt8] { Array(bytes[54..<(54 + payloadLength)]) }
    var icmpType: UInt8? { nextHeader == .icmpv6 ? payload[0] : nil }
    var icmpCode: UInt8? { nextHeader == .icmpv6 ? payload[1] : nil }
    /// The one's complement sum over the pseudo-header and the upper layer verifies.
    var checksumValid: Bool {
        var pseudo = Array(bytes[22..<54])
        pseudo += be32(UInt32(payloadLength)) + [0, 0, 0, nextHeader.rawValue]
        return ReferenceChecksum.verifies(pseudo + payload)
    }
    /// The target of a neighbour solicitation or advertisement.
    var target: IPv6Address? {
        guard let t = icmpType, t == 135 || t == 136, payload.count >= 24 else { return nil }
        return Self.address(payload, 8)
    }
    var solicited: Bool { payload[4] & 0x40 != 0 }
    var override: Bool { payload[4] & 0x20 != 0 }
    var router: Bool { payload[4] & 0x80 != 0 }
    /// Link-layer address options of a neighbour discovery message.
    var options: [NDPOption] {
        var out: [NDPOption] = []
        var i = 24
        let p = payload
        while i + 8 <= p.count {
            let mac = MACAddress(p[i + 2], p[i + 3], p[i + 4], p[i + 5], p[i + 6], p[i + 7])
            if p[i] == 1 { out.append(.sourceLinkLayer(mac)) }
            if p[i] == 2 { out.append(.targetLinkLayer(mac)) }
            i += max(1, Int(p[i + 1])) * 8
        }
        return out
    }

    static func address(_ b: [UInt8], _ at: Int) -> IPv6Address {
        var high: UInt64 = 0, low: UInt64 = 0
        for i in 0..<8 { high = high << 8 | UInt64(b[at + i]) }
        for i in 8..<16 { low = low << 8 | UInt64(b[at + i]) }
        return IPv6Address(high: high, low: low)
    }
}

