import Testing
@testable import NetStack
import NetStackWire

/// Checks the parts of an IPv4 header the stack writes when it originates a
/// datagram (RFC 791, RFC 1122 3.2.1.7 default TTL).
func expectOriginated(_ ip: CapturedIPv4, from source: IPv4Address, to destination: IPv4Address, proto: UInt8,
                      sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(ip.bytes[0] == 0x45, sourceLocation: sourceLocation)
    #expect(ip.source == source, sourceLocation: sourceLocation)
    #expect(ip.destination == destination, sourceLocation: sourceLocation)
    #expect(ip.protocolNumber == proto, sourceLocation: sourceLocation)
    #expect(ip.ttl == 64, sourceLocation: sourceLocation)
    #expect(ip.headerChecksum == ip.recomputedHeaderChecksum, sourceLocation: sourceLocation)
}

// MARK: ICMP

@Suite struct ICMPTests {
    typealias H = PeerHarness

    @Test func echoRequestIsAnsweredInPlace() {
        let h = PeerHarness()
        let data = FrameBuilder.pattern(56, seed: 11)
        let request = h.echoRequestFrame(identifier: 0xbeef, sequence: 7, data: data, ttl: 33)
        let slot = h.inject(request)
        h.poll()
        let out = h.sent()
        #expect(out.count == 1)
        guard let reply = out.first, let ip = reply.ipv4, let icmp = ip.icmp else { Issue.record("no reply"); return }
        #expect(reply.slot == slot, "the reply is built in the request's slot")
        #expect(reply.ethernetDestination == H.peerMAC)
        #expect(reply.ethernetSource == H.stackMAC)
        #expect(reply.etherType == .ipv4)
        #expect(reply.bytes.count == request.count)
        // IP: addresses swapped, TTL reset to 64, checksum right (recomputed from scratch).
        #expect(ip.source == H.stackIP && ip.destination == H.peerIP)
        #expect(ip.ttl == 64)
        #expect(ip.protocolNumber == 1)
        #expect(ip.totalLength == 20 + 8 + 56)
        #expect(ip.headerChecksum == ip.recomputedHeaderChecksum)
        // ICMP: type 0 code 0, identifier, sequence and data echoed (RFC 792), checksum right.
        #expect(icmp.type == 0 && icmp.code == 0)
        #expect(icmp.identifier == 0xbeef && icmp.sequence == 7)
        #expect(icmp.data == data)
        #expect(icmp.checksum == icmp.recomputedChecksum)
        #expect(h.counters.icmpEchoRequestsIn == 1 && h.counters.icmpEchoRepliesOut == 1)
        #expect(h.counters.framesIn == 1 && h.counters.framesOut == 1)
        #expect(h.pool.freeCount == h.pool.slotCount)
    }

    /// The incremental checksum updates (RFC 1624) against full recomputation,
    /// over many seeded requests: every TTL, every type-word carry case.
    @Test func inPlaceChecksumsMatchRecomputationForManyRequests() {
        let h = PeerHarness()
        var rng = SplitMix64(seed: 1624)
        for i in 0..<500 {
            let n = Int.random(in: 0...1400, using: &rng)
            let data = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let id = UInt16.random(in: 0...UInt16.max, using: &rng)
            let ttl = i < 256 ? UInt8(i) : UInt8.random(in: 1...255, using: &rng)
            let out = h.exchange(h.echoRequestFrame(identifier: id, sequence: UInt16(i), data: data, ttl: ttl))
            guard out.count == 1, let ip = out[0].ipv4, let icmp = ip.icmp else {
                Issue.record("request \(i) not answered")
                continue
            }
            #expect(ip.headerChecksum == ip.recomputedHeaderChecksum, "request \(i), ttl \(ttl)")
            #expect(icmp.checksum == icmp.recomputedChecksum, "request \(i)")
            #expect(icmp.data == data && icmp.identifier == id)
        }
    }

    @Test func paddedEchoRequestGetsAnUnpaddedReply() {
        let h = PeerHarness()
        // 42 bytes padded to Ethernet's 60 with junk.
        let request = h.echoRequestFrame(data: []) + [UInt8](repeating: 0xcc, count: 18)
        let out = h.exchange(request)
        #expect(out.count == 1)
        #expect(out.first?.bytes.count == 42)
        #expect(out.first?.ipv4?.icmp?.checksumVerifies == true)
    }

    @Test func echoRequestWithIPOptionsIsAnsweredWithoutThem() {
        let h = PeerHarness()
        h.resolvePeer()
        let data = FrameBuilder.pattern(32)
        var ip = FrameBuilder.ipv4(source: H.peerIP, destination: H.stackIP, protocol: .icmp,
                                   payload: FrameBuilder.icmpEcho(identifier: 5, sequence: 6, data: data))
        // IHL 6: four bytes of options (NOP, NOP, NOP, End of list).
        ip.insert(contentsOf: [1, 1, 1, 0], at: 20)
        ip[0] = 0x46
        ip[2...3] = ArraySlice(be16(UInt16(ip.count)))
        FrameBuilder.refreshIPv4Checksum(&ip)
        let out = h.exchange(h.ipFrame(ip))
        #expect(out.count == 1)
        guard let reply = out.first?.ipv4, let icmp = reply.icmp else { Issue.record("no reply"); return }
        expectOriginated(reply, from: H.stackIP, to: H.peerIP, proto: 1)
        #expect(icmp.type == 0 && icmp.identifier == 5 && icmp.sequence == 6 && icmp.data == data)
        #expect(icmp.checksum == icmp.recomputedChecksum)
    }

    @Test func fragmentedEchoGetsAFragmentedReply() {
        let h = PeerHarness()
        h.resolvePeer()
        let data = FrameBuilder.pattern(4000, seed: 99)
        let icmp = FrameBuilder.icmpEcho(identifier: 0x4444, sequence: 1, data: data)
        let frames = h.fragmentedFrames(.icmp, transport: icmp, identification: 0x9999)
        #expect(frames.count == 3)
        let out = h.exchange(frames)
        // 4008 bytes of ICMP in 1480-byte pieces: 1480 + 1480 + 1048.
        #expect(out.count == 3)
        let packets = out.compactMap(\.ipv4)
        #expect(packets.map(\.payload.count) == [1480, 1480, 1048])
        for f in out { #expect(f.ethernetDestination == H.peerMAC && f.bytes.count <= 14 + 1500) }
        guard let (first, payload) = reassembleInTest(packets, mtu: 1500) else { return }
        expectOriginated(first, from: H.stackIP, to: H.peerIP, proto: 1)
        guard let reply = CapturedICMP(payload) else { Issue.record("short reply"); return }
        #expect(reply.type == 0 && reply.code == 0)
        #expect(reply.identifier == 0x4444 && reply.sequence == 1)
        #expect(reply.data == data)
        #expect(reply.checksum == reply.recomputedChecksum)
        #expect(h.counters.fragmentsOut == 3)
        #expect(h.counters.datagramsReassembled == 1)
        #expect(h.pool.freeCount == h.pool.slotCount)
    }

    @Test func broadcastEchoIsIgnored() {
        let h = PeerHarness()
        let out = h.exchange(h.echoRequestFrame(data: [1, 2, 3], to: .broadcast).withEthernetDestination(.broadcast),
                             h.echoRequestFrame(data: [1, 2, 3], to: IPv4Address(10, 0, 0, 255))
                                .withEthernetDestination(.broadcast))
        #expect(out.isEmpty)
        #expect(h.drops(.icmpIgnoredBroadcastEcho) == 2)
        #expect(h.counters.icmpEchoRepliesOut == 0)
    }

    @Test func badICMPIsDroppedAndCounted() {
        let h = PeerHarness()
        var corrupt = h.echoRequestFrame(data: FrameBuilder.pattern(20))
        corrupt[14 + 20 + 8] ^= 0x01  // one data bit flipped after the checksum was computed
        let short = h.ipFrame(FrameBuilder.ipv4(source: H.peerIP, destination: H.stackIP, protocol: .icmp,
                                                payload: [8, 0, 0xf7, 0xff]))
        let reply = h.ipFrame(FrameBuilder.ipv4(source: H.peerIP, destination: H.stackIP, protocol: .icmp,
                                                payload: FrameBuilder.icmpEcho(request: false, identifier: 1,
                                                                               sequence: 1, data: [])))
        #expect(h.exchange(corrupt, short, reply).isEmpty)
        #expect(h.drops(.icmpBadChecksum) == 1)
        #expect(h.drops(.icmpTruncated) == 1)
        #expect(h.drops(.icmpUnhandledType) == 1)
        #expect(h.counters.icmpIn == 3)
        #expect(h.pool.freeCount == h.pool.slotCount)
    }

    @Test func unknownProtocolGetsProtocolUnreachable() {
        let h = PeerHarness()
        h.resolvePeer()
        let ip = FrameBuilder.ipv4(source: H.peerIP, destination: H.stackIP, protocol: IPProtocol(rawValue: 47),
                                   payload: FrameBuilder.pattern(30))
        let out = h.exchange(h.ipFrame(ip))
        #expect(h.drops(.ipv4UnsupportedProtocol) == 1)
        #expect(out.count == 1)
        guard let err = out.first?.ipv4, let icmp = err.icmp else { Issue.record("no ICMP"); return }
        expectOriginated(err, from: H.stackIP, to: H.peerIP, proto: 1)
        // RFC 792: type 3 code 2, quoting the header and 8 bytes.
        #expect(icmp.type == 3 && icmp.code == 2)
        #expect(icmp.data == Array(ip[0..<28]))
        #expect(icmp.checksumVerifies)
    }
}

extension Array where Element == UInt8 {
    /// The same Ethernet frame with another destination MAC.
    func withEthernetDestination(_ mac: MACAddress) -> [UInt8] {
        var f = self
        f.replaceSubrange(0..<6, with: macBytes(mac))
        return f
    }
}

// MARK: UDP

@Suite struct UDPTests {
    typealias H = PeerHarness

    @Test func boundHandlerGetsPayloadAndEndpoint() throws {
        let h = PeerHarness()
        let got = Box<[(UDPEndpoint, [UInt8])]>([])
        try h.interface.udp.bind(port: 5353) { from, payload in got.value.append((from, [UInt8](payload))) }
        let payload = Array("hello, stack".utf8)
        #expect(h.exchange(h.udpFrame(sourcePort: 41000, destinationPort: 5353, payload: payload)).isEmpty)
        #expect(got.value.count == 1)
        #expect(got.value.first?.0 == UDPEndpoint(address: H.peerIP, port: 41000))
        #expect(got.value.first?.1 == payload)
        #expect(h.udp.counters.datagramsIn == 1)
        // Padding after a short datagram is not payload.
        let padded = h.udpFrame(sourcePort: 41000, destinationPort: 5353, payload: [0x42]) + [UInt8](repeating: 0xee, count: 17)
        _ = h.exchange(padded)
        #expect(got.value.last?.1 == [0x42])
    }

    @Test func bindingRules() throws {
        let h = PeerHarness()
        #expect(throws: UDPBindError.portZero) { try h.interface.udp.bind(port: 0) { _, _ in } }
        try h.interface.udp.bind(port: 53) { _, _ in }
        #expect(throws: UDPBindError.portInUse(53)) { try h.interface.udp.bind(port: 53) { _, _ in } }
        h.interface.udp.unbind(port: 53)
        try h.interface.udp.bind(port: 53) { _, _ in }
    }

    @Test func replyViaSendUDPHasAValidChecksum() throws {
        let h = PeerHarness()
        try h.installEcho(port: 7)
        let payload = FrameBuilder.pattern(100, seed: 4)
        let out = h.exchange(h.udpFrame(sourcePort: 33333, destinationPort: 7, payload: payload))
        // The echo learned the peer from nothing: it asks first (RFC 826), then answers.
        #expect(out.count == 1)
        ARPInterfaceTests.expectRequest(out.first, for: H.peerIP)
        let released = h.exchange(h.arpFrame(.reply, targetMAC: H.stackMAC, ethernetDestination: H.stackMAC))
        #expect(released.count == 1)
        guard let ip = released.first?.ipv4, let udp = ip.udp else { Issue.record("no reply"); return }
        expectOriginated(ip, from: H.stackIP, to: H.peerIP, proto: 17)
        #expect(!ip.isFragment)
        #expect(udp.sourcePort == 7 && udp.destinationPort == 33333)
        #expect(udp.length == 8 + 100)
        #expect(udp.checksum != 0)
        #expect(udp.checksumVerifies)
        #expect(udp.payload == payload)
        #expect(h.udp.counters.datagramsOut == 1)
    }

    /// RFC 768: a checksum that computes to zero is sent as all ones.
    @Test func computedZeroChecksumIsSentAsAllOnes() throws {
        let h = PeerHarness()
        h.resolvePeer()
        // Choose the last payload word so the one's-complement sum of everything is 0xffff.
        var payload: [UInt8] = [0x12, 0x34, 0x56, 0x78, 0, 0]
        let header = be16(1111) + be16(2222) + be16(UInt16(8 + payload.count)) + [0, 0]
        let s = ReferenceChecksum.sum(ReferenceChecksum.pseudoHeader(source: H.stackIP, destination: H.peerIP,
                                                                     protocol: 17, length: 8 + payload.count)
                                      + header + payload)
        payload.replaceSubrange(4..<6, with: be16(~s))
        payload.withUnsafeBytes { p in
            _ = h.interface.udp.send(from: 1111, to: UDPEndpoint(address: H.peerIP, port: 2222), payload: p, now: h.now)
        }
        let out = h.sent()
        guard let udp = out.first?.ipv4?.udp else { Issue.record("nothing sent"); return }
        #expect(udp.checksum == 0xffff)
        #expect(udp.checksumVerifies)
        // And the receive side accepts such a datagram.
        let got = Box<[[UInt8]]>([])
        try h.interface.udp.bind(port: 2222) { _, p in got.value.append([UInt8](p)) }
        // A 2-byte payload chosen so the sum is all ones, sent with the field 0xffff.
        var zeroing: [UInt8] = [0, 0]
        let u = ReferenceChecksum.sum(ReferenceChecksum.pseudoHeader(source: H.peerIP, destination: H.stackIP,
                                                                     protocol: 17, length: 10)
                                      + be16(1111) + be16(2222) + be16(10) + [0, 0] + zeroing)
        zeroing = be16(~u)
        let inbound = be16(1111) + be16(2222) + be16(10) + [0xff, 0xff] + zeroing
        _ = h.exchange(h.ipFrame(FrameBuilder.ipv4(source: H.peerIP, destination: H.stackIP, protocol: .udp,
                                                   payload: inbound)))
        #expect(got.value == [zeroing])
        #expect(h.drops(UDPDropReason.badChecksum) == 0)
    }

    @Test func datagramsOfEverySizeUpTo3000RoundTrip() throws {
        let h = PeerHarness()
        try h.installEcho(port: 7)
        h.resolvePeer()
        for size in 1...3000 {
            let payload = FrameBuilder.pattern(size, seed: UInt8(truncatingIfNeeded: size))
            let udp = FrameBuilder.udp(sourcePort: 50000, destinationPort: 7, payload: payload, source: H.peerIP,
                                       destination: H.stackIP)
            let frames = h.fragmentedFrames(.udp, transport: udp, identification: UInt16(size))
            #expect(frames.count == (size + 8 <= 1480 ? 1 : size + 8 <= 2960 ? 2 : 3))
            let out = h.exchange(frames)
            let packets = out.compactMap(\.ipv4)
            #expect(packets.count == frames.count, "size \(size)")
            guard let (first, bytes) = reassembleInTest(packets, mtu: 1500),
                  let udpReply = CapturedUDP(bytes, source: first.source, destination: first.destination) else {
                Issue.record("size \(size): no reply")
                continue
            }
            #expect(udpReply.length == 8 + size)
            #expect(udpReply.sourcePort == 7 && udpReply.destinationPort == 50000)
            #expect(udpReply.checksumVerifies, "size \(size)")
            if udpReply.payload != payload { Issue.record("size \(size): payload differs") }
        }
        #expect(h.udp.counters.datagramsIn == 3000 && h.udp.counters.datagramsOut == 3000)
        #expect(h.counters.drops.total == 0)
        #expect(h.pool.freeCount == h.pool.slotCount)
    }

    @Test func closedPortGetsPortUnreachable() {
        let h = PeerHarness()
        h.resolvePeer()
        let frame = h.udpFrame(sourcePort: 40404, destinationPort: 9, payload: FrameBuilder.pattern(50))
        let out = h.exchange(frame)
        #expect(h.drops(UDPDropReason.noSocket) == 1)
        #expect(out.count == 1)
        guard let ip = out.first?.ipv4, let icmp = ip.icmp else { Issue.record("no ICMP"); return }
        #expect(out.first?.ethernetDestination == H.peerMAC)
        expectOriginated(ip, from: H.stackIP, to: H.peerIP, proto: 1)
        // RFC 792 destination unreachable, code 3 (port); unused word zero; the
        // original IP header and the first 8 bytes of its data.
        #expect(icmp.type == 3 && icmp.code == 3)
        #expect(icmp.rest == [0, 0, 0, 0])
        #expect(icmp.checksum == icmp.recomputedChecksum)
        let original = Array(frame[14...])
        #expect(icmp.data == Array(original[0..<28]))
        #expect(icmp.data.count == 28)
        #expect(read16(icmp.data, 20) == 40404 && read16(icmp.data, 22) == 9)
        #expect(h.counters.icmpErrorsOut == 1)
    }

    @Test func closedPortOfAReassembledDatagramQuotesTheFirstFragment() {
        let h = PeerHarness()
        h.resolvePeer()
        let udp = FrameBuilder.udp(sourcePort: 40405, destinationPort: 19, payload: FrameBuilder.pattern(2000),
                                   source: H.peerIP, destination: H.stackIP)
        let frames = h.fragmentedFrames(.udp, transport: udp, identification: 0x3131)
        let out = h.exchange(frames.reversed())
        #expect(out.count == 1)
        guard let icmp = out.first?.ipv4?.icmp else { Issue.record("no ICMP"); return }
        #expect(icmp.type == 3 && icmp.code == 3 && icmp.checksumVerifies)
        #expect(icmp.data.count == 28)
        #expect(Array(icmp.data[0..<20]) == Array(frames[0][14..<34]))
        #expect(Array(icmp.data[20..<28]) == Array(udp[0..<8]))
    }

    @Test func noPortUnreachableForBroadcast() {
        let h = PeerHarness()
        h.resolvePeer()
        let out = h.exchange(h.udpFrame(destinationPort: 9, payload: [1], to: .broadcast, ethernetDestination: .broadcast),
                             h.udpFrame(destinationPort: 9, payload: [1], to: IPv4Address(10, 0, 0, 255),
                                        ethernetDestination: .broadcast))
        #expect(out.isEmpty)
        #expect(h.drops(UDPDropReason.noSocket) == 2)
        #expect(h.counters.icmpErrorsOut == 0)
    }

    @Test func broadcastDatagramsAreDeliveredToBoundPorts() throws {
        let h = PeerHarness()
        let got = Box<Int>(0)
        try h.interface.udp.bind(port: 67) { _, _ in got.value += 1 }
        _ = h.exchange(h.udpFrame(destinationPort: 67, payload: [1], to: .broadcast, ethernetDestination: .broadcast))
        #expect(got.value == 1)
    }

    @Test func zeroChecksumIsAccepted() throws {
        let h = PeerHarness()
        let got = Box<[[UInt8]]>([])
        try h.interface.udp.bind(port: 4000) { _, p in got.value.append([UInt8](p)) }
        var udp = FrameBuilder.udp(sourcePort: 1, destinationPort: 4000, payload: [9, 9, 9], source: H.peerIP,
                                   destination: H.stackIP)
        udp[6] = 0; udp[7] = 0  // RFC 768: no checksum computed
        _ = h.exchange(h.ipFrame(FrameBuilder.ipv4(source: H.peerIP, destination: H.stackIP, protocol: .udp,
                                                   payload: udp)))
        #expect(got.value == [[9, 9, 9]])
    }

    @Test func badChecksumIsDropped() throws {
        let h = PeerHarness()
        h.resolvePeer()
        let got = Box<Int>(0)
        try h.interface.udp.bind(port: 4000) { _, _ in got.value += 1 }
        var udp = FrameBuilder.udp(sourcePort: 1, destinationPort: 4000, payload: [9, 9, 9], source: H.peerIP,
                                   destination: H.stackIP)
        udp[8] ^= 0x80
        // Also to a closed port: a corrupt datagram earns no ICMP error.
        var closed = FrameBuilder.udp(sourcePort: 1, destinationPort: 4001, payload: [9, 9, 9], source: H.peerIP,
                                      destination: H.stackIP)
        closed[9] ^= 0x01
        let out = h.exchange(h.ipFrame(FrameBuilder.ipv4(source: H.peerIP, destination: H.stackIP, protocol: .udp,
                                                         payload: udp)),
                             h.ipFrame(FrameBuilder.ipv4(source: H.peerIP, destination: H.stackIP, protocol: .udp,
                                                         payload: closed)))
        #expect(out.isEmpty)
        #expect(got.value == 0)
        #expect(h.drops(UDPDropReason.badChecksum) == 2)
        #expect(h.udp.counters.datagramsIn == 0)
    }

    @Test func icmpErrorsAreRateLimited() {
        let h = PeerHarness { $0.icmpErrorBurst = 20; $0.icmpErrorsPerSecond = 100 }
        h.resolvePeer()
        let frames = (0..<25).map { i in h.udpFrame(sourcePort: UInt16(10000 + i), destinationPort: 9, payload: [1]) }
        let out = h.exchange(frames)
        #expect(out.count == 20)
        #expect(out.allSatisfy { $0.ipv4?.icmp?.type == 3 })
        #expect(h.drops(.icmpErrorRateLimited) == 5)
        #expect(h.drops(UDPDropReason.noSocket) == 25)
        // At 100 a second, 10 ms earns one more; 5 ms earns none.
        h.clock.advance(by: .milliseconds(5))
        #expect(h.exchange(frames[0], frames[1]).isEmpty)
        h.clock.advance(by: .milliseconds(5))
        #expect(h.exchange(frames[0], frames[1]).count == 1)
        #expect(h.drops(.icmpErrorRateLimited) == 8)
        // A long pause refills only up to the burst.
        h.clock.advance(by: .seconds(10))
        #expect(h.exchange(frames).count == 20)
    }

    @Test func tooLargeToSendAndTheLargestThatFits() {
        let h = PeerHarness(slotCount: 256)
        h.resolvePeer()
        let tooBig = [UInt8](repeating: 1, count: 65_508)
        let refused = tooBig.withUnsafeBytes { p in
            h.interface.udp.send(from: 1, to: UDPEndpoint(address: H.peerIP, port: 2), payload: p, now: h.now)
        }
        #expect(!refused)
        #expect(h.drops(DropReason.tooLargeToSend) == 1)
        #expect(h.sent().isEmpty)
        // 65507 bytes of payload: a 65535-byte IP datagram in 45 fragments.
        let largest = FrameBuilder.pattern(65_507)
        let ok = largest.withUnsafeBytes { p in
            h.interface.udp.send(from: 1, to: UDPEndpoint(address: H.peerIP, port: 2), payload: p, now: h.now)
        }
        #expect(ok)
        let packets = h.sent().compactMap(\.ipv4)
        #expect(packets.count == 45)
        guard let (first, bytes) = reassembleInTest(packets, mtu: 1500),
              let udp = CapturedUDP(bytes, source: first.source, destination: first.destination) else { return }
        #expect(udp.length == 65_515 && udp.checksumVerifies && udp.payload == largest)
        #expect(h.pool.freeCount == h.pool.slotCount)
    }

    @Test func fragmentsAreMultiplesOfEightUnderAnOddMTU() {
        // MTU 1006: 986 bytes fit unfragmented, but fragments carry 984 (986 rounded down to 8).
        let h = PeerHarness(mtu: 1006)
        h.resolvePeer()
        for (size, expected) in [(978, [986]), (979, [984, 3]), (3000, [984, 984, 984, 56])] {
            let payload = FrameBuilder.pattern(size)
            _ = payload.withUnsafeBytes { p in
                h.interface.udp.send(from: 1, to: UDPEndpoint(address: H.peerIP, port: 2), payload: p, now: h.now)
            }
            let packets = h.sent().compactMap(\.ipv4)
            #expect(packets.map(\.payload.count) == expected, "size \(size)")
            guard let (first, bytes) = reassembleInTest(packets, mtu: 1006),
                  let udp = CapturedUDP(bytes, source: first.source, destination: first.destination) else { continue }
            #expect(udp.payload == payload && udp.checksumVerifies)
        }
    }
}

// MARK: Malformed input

/// Seeded garbage and carefully broken frames: nothing crashes, every frame is
/// counted once, and the crafted ones under the reason RFC 791/768/826 implies.
@Suite struct MalformedInputTests {
    typealias H = PeerHarness

    /// Reasons that describe a received frame (as opposed to output trouble,
    /// which the same counters also hold).
    /// The names of every reason a received frame can be dropped for.
    static let inputReasons: [String] = DropReason.allCases.filter {
        ![.noRoute, .arpQueueFull, .arpResolutionFailed, .poolExhausted, .tooLargeToSend, .icmpErrorRateLimited,
          .linkQueueFull, .injectedLoss, .reassemblyTimeout].contains($0)
    }.map(\.description) + UDPDropReason.allCases.filter { $0 != .tooLargeToSend }.map(\.description)
        + TCPDropReason.allCases.map(\.description)

    enum Kind: CaseIterable {
        case randomBytes, randomIPv4Payload, randomARPPayload, mutatedUDP
        case shortEthernet, unknownEtherType, shortARP, ipv4LongTotalLength, ipv4TotalBelowHeader, ipv4SmallIHL,
             ipv4IHLPastEnd, ipv4BadChecksum, ipv4Version6, ipv4ShortHeader, udpLongLength, udpLengthBelowHeader,
             udpShortLength, udpShortHeader, notForUs, broadcastSource, icmpShort

        /// The reason a crafted frame must be dropped with, as `--stats` names it; nil for random kinds.
        var reason: String? { dropReason.map(\.description) ?? udpDropReason.map(\.description) }

        var udpDropReason: UDPDropReason? {
            switch self {
            // RFC 768: the length field covers header and data; longer than what IP carried is truncation.
            case .udpLongLength, .udpShortHeader: .truncated
            case .udpLengthBelowHeader, .udpShortLength: .badLength
            default: nil
            }
        }

        var dropReason: DropReason? {
            switch self {
            case .randomBytes, .randomIPv4Payload, .randomARPPayload, .mutatedUDP: nil
            case .shortEthernet: .ethernetTruncated
            case .unknownEtherType: .unsupportedEtherType
            case .shortARP: .arpTruncated
            case .ipv4LongTotalLength, .ipv4IHLPastEnd, .ipv4ShortHeader: .ipv4Truncated
            case .ipv4TotalBelowHeader, .ipv4SmallIHL: .ipv4BadLength
            case .ipv4BadChecksum: .ipv4BadChecksum
            case .ipv4Version6: .ipv4BadVersion
            case .udpLongLength, .udpShortHeader, .udpLengthBelowHeader, .udpShortLength: nil
            case .notForUs: .ipv4NotForUs
            case .broadcastSource: .ipv4MartianSource
            case .icmpShort: .icmpTruncated
            }
        }
    }

    static func bytes(_ n: Int, _ rng: inout SplitMix64) -> [UInt8] {
        (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
    }

    /// An IP packet from the peer with its header edited by `edit` and the
    /// checksum made right again, so only the intended fault remains.
    static func editedIP(_ h: PeerHarness, proto: IPProtocol = .udp, payload: [UInt8],
                         _ edit: (inout [UInt8]) -> Void) -> [UInt8] {
        var ip = FrameBuilder.ipv4(source: H.peerIP, destination: H.stackIP, protocol: proto, payload: payload)
        edit(&ip)
        FrameBuilder.refreshIPv4Checksum(&ip)
        return h.ipFrame(ip)
    }

    static func udpIP(_ h: PeerHarness, udp: [UInt8]) -> [UInt8] {
        h.ipFrame(FrameBuilder.ipv4(source: H.peerIP, destination: H.stackIP, protocol: .udp, payload: udp))
    }

    static func make(_ kind: Kind, _ h: PeerHarness, _ rng: inout SplitMix64) -> [UInt8] {
        let udpPayload = bytes(Int.random(in: 0...64, using: &rng), &rng)
        let goodUDP = FrameBuilder.udp(sourcePort: 1234, destinationPort: 7777, payload: udpPayload, source: H.peerIP,
                                       destination: H.stackIP)
        switch kind {
        case .randomBytes:
            return bytes(Int.random(in: 0...300, using: &rng), &rng)
        case .randomIPv4Payload:
            return h.ethernetFrame(.ipv4, payload: bytes(Int.random(in: 0...300, using: &rng), &rng))
        case .randomARPPayload:
            return h.ethernetFrame(.arp, payload: bytes(Int.random(in: 0...60, using: &rng), &rng),
                                   to: .broadcast)
        case .mutatedUDP:
            var f = udpIP(h, udp: goodUDP)
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                f[Int.random(in: 0..<f.count, using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
            }
            return f
        case .shortEthernet:
            return bytes(Int.random(in: 0...13, using: &rng), &rng)
        case .unknownEtherType:
            let types: [UInt16] = [0x86dd, 0x88cc, 0x8100, 0x0000, 0xffff]
            return h.ethernetFrame(EtherType(rawValue: types.randomElement(using: &rng)!),
                                   payload: bytes(46, &rng))
        case .shortARP:
            let arp = FrameBuilder.arp(.request, senderMAC: H.peerMAC, senderIP: H.peerIP, targetMAC: .zero,
                                       targetIP: H.stackIP)
            return h.ethernetFrame(.arp, payload: Array(arp[0..<Int.random(in: 0...27, using: &rng)]), to: .broadcast)
        case .ipv4LongTotalLength:
            return editedIP(h, payload: goodUDP) { ip in
                let claimed = ip.count + Int.random(in: 1...1000, using: &rng)
                ip.replaceSubrange(2..<4, with: be16(UInt16(claimed)))
            }
        case .ipv4TotalBelowHeader:
            return editedIP(h, payload: goodUDP) { ip in ip.replaceSubrange(2..<4, with: be16(UInt16.random(in: 0...19, using: &rng))) }
        case .ipv4SmallIHL:
            return editedIP(h, payload: goodUDP) { ip in ip[0] = 0x40 | UInt8.random(in: 0...4, using: &rng) }
        case .ipv4IHLPastEnd:
            // IHL 15 (60 bytes) on a packet whose frame holds fewer.
            let ip = FrameBuilder.ipv4(source: H.peerIP, destination: H.stackIP, protocol: .udp, payload: [])
            var cut = Array(ip[0..<20]) + bytes(Int.random(in: 0...39, using: &rng), &rng)
            cut[0] = 0x4f
            cut.replaceSubrange(2..<4, with: be16(UInt16(cut.count)))
            return h.ipFrame(cut)
        case .ipv4BadChecksum:
            var ip = FrameBuilder.ipv4(source: H.peerIP, destination: H.stackIP, protocol: .udp, payload: goodUDP)
            let word = 2 * Int.random(in: 0...9, using: &rng)
            ip[word + Int.random(in: 0...1, using: &rng)] ^= 0x10
            if word == 0 || word == 2 {
                // Keep version, IHL and total length sane: corrupt the checksum field instead.
                ip[0] = 0x45
                ip.replaceSubrange(2..<4, with: be16(UInt16(ip.count)))
                ip[10] ^= 0x01
            }
            return h.ipFrame(ip)
        case .ipv4Version6:
            return editedIP(h, payload: goodUDP) { ip in ip[0] = 0x65 }
        case .ipv4ShortHeader:
            return h.ipFrame(Array(FrameBuilder.ipv4(source: H.peerIP, destination: H.stackIP, protocol: .udp,
                                                     payload: [])[0..<Int.random(in: 0...19, using: &rng)]))
        case .udpLongLength:
            var udp = goodUDP
            udp.replaceSubrange(4..<6, with: be16(UInt16(udp.count + Int.random(in: 1...100, using: &rng))))
            return udpIP(h, udp: udp)
        case .udpLengthBelowHeader:
            var udp = goodUDP
            udp.replaceSubrange(4..<6, with: be16(UInt16.random(in: 0...7, using: &rng)))
            return udpIP(h, udp: udp)
        case .udpShortLength:
            // Length >= 8 but less than IP carried: trailing junk inside the IP datagram.
            var udp = goodUDP + bytes(Int.random(in: 1...16, using: &rng), &rng)
            udp.replaceSubrange(4..<6, with: be16(UInt16(goodUDP.count)))
            return udpIP(h, udp: udp)
        case .udpShortHeader:
            return udpIP(h, udp: Array(goodUDP[0..<Int.random(in: 0...7, using: &rng)]))
        case .notForUs:
            let dst = IPv4Address(10, 0, 0, UInt8.random(in: 3...254, using: &rng))
            return h.ipFrame(FrameBuilder.ipv4(source: H.peerIP, destination: dst, protocol: .udp, payload: goodUDP))
        case .broadcastSource:
            let src = [IPv4Address.broadcast, IPv4Address(10, 0, 0, 255), IPv4Address(224, 0, 0, 5)]
                .randomElement(using: &rng)!
            return h.ipFrame(FrameBuilder.ipv4(source: src, destination: H.stackIP, protocol: .udp, payload: goodUDP))
        case .icmpShort:
            return h.ipFrame(FrameBuilder.ipv4(source: H.peerIP, destination: H.stackIP, protocol: .icmp,
                                               payload: bytes(Int.random(in: 0...7, using: &rng), &rng)))
        }
    }

    @Test(arguments: [20_251_125 as UInt64, 7])
    func twoThousandBadFramesAreAllAccountedFor(seed: UInt64) throws {
        let h = PeerHarness(slotCount: 1024)
        h.resolvePeer()
        let delivered = Box<UInt64>(0)
        try h.interface.udp.bind(port: 7777) { _, _ in delivered.value += 1 }
        let before = h.counters
        let dropsBefore = h.allDrops
        var rng = SplitMix64(seed: seed)
        var expected: [String: UInt64] = [:]
        var made: [Kind: Int] = [:]
        let total = 2000
        var injected = 0
        while injected < total {
            for _ in 0..<min(200, total - injected) {
                let kind = Kind.allCases.randomElement(using: &rng)!
                made[kind, default: 0] += 1
                if let r = kind.reason { expected[r, default: 0] += 1 }
                h.inject(Self.make(kind, h, &rng))
                injected += 1
            }
            h.poll()
            _ = h.sent()
        }
        let c = h.counters
        let drops = h.allDrops
        #expect(c.framesIn - before.framesIn == UInt64(total))
        #expect(made.count == Kind.allCases.count, "every kind was tried")
        // Each crafted kind lands on its own reason. Random frames may add to the
        // same reasons, so the crafted counts are lower bounds there, and exact
        // where random input cannot reach (checked below for a few).
        for (reason, n) in expected {
            #expect(drops[reason] - dropsBefore[reason] >= n, "\(reason): \(drops[reason]) < \(n)")
        }
        // Reasons that only a well-formed IPv4 header with a correct checksum can
        // reach: random bytes practically never get there, and a mutation of the
        // header breaks its checksum. (Not so the EtherType: mutations hit it.)
        for reason in [DropReason.ipv4MartianSource, .ipv4NotForUs, .icmpTruncated].map(\.description) {
            #expect(drops[reason] - dropsBefore[reason] == expected[reason] ?? 0, "\(reason)")
        }
        // Every frame was dropped exactly once or delivered to the bound port.
        let inputDrops = drops.sum(Self.inputReasons) - dropsBefore.sum(Self.inputReasons)
        #expect(inputDrops + delivered.value == UInt64(total),
                "drops \(inputDrops) + delivered \(delivered.value) != \(total): \(drops)")

        // Still alive: a ping is answered.
        let out = h.exchange(h.echoRequestFrame(sequence: 99, data: [1, 2, 3, 4]))
        #expect(out.count == 1)
        #expect(out.first?.ipv4?.icmp?.type == 0)
        #expect(out.first?.ipv4?.icmp?.data == [1, 2, 3, 4])
        // And nothing was kept.
        #expect(h.interface.arp.waitingCount == 0)
        #expect(h.pool.freeCount == h.pool.slotCount)
    }

    /// Each crafted kind on its own: exactly one drop, under exactly its reason.
    @Test(arguments: Kind.allCases.filter { $0.reason != nil })
    func craftedKindsHaveExactlyTheirReason(kind: Kind) {
        let h = PeerHarness()
        h.resolvePeer()
        var rng = SplitMix64(seed: 99)
        let before = h.allDrops
        for _ in 0..<20 {
            h.inject(Self.make(kind, h, &rng))
        }
        h.poll()
        let out = h.sent()
        #expect(out.isEmpty, "\(kind) provoked \(out)")
        guard let reason = kind.reason else { return }
        let after = h.allDrops
        #expect(after[reason] - before[reason] == 20, "\(kind): \(after)")
        #expect(after.total - before.total == 20, "\(kind): \(after)")
        #expect(h.pool.freeCount == h.pool.slotCount)
    }
}
