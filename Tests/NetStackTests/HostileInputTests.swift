import Testing
@testable import NetStack
import NetStackWire

/// What an exposed host must not answer, and how much it answers what it
/// does not accept: crafted frames into an `Interface` on the virtual clock,
/// checking what leaves and which counter moved.
/// - Martian sources (RFC 1122 3.2.1.3, RFC 1812 5.3.7) are dropped before
///   anything can answer them.
/// - No ICMP error, RST or SYN-ACK for what came as a link-layer broadcast
///   (RFC 1122 3.2.2, 4.2.3.10).
/// - SYN with FIN or RST is no SYN.
/// - ACKs answering unacceptable segments are limited (RFC 5961 10), but a
///   retransmission of old data still draws its D-SACK at once.
@Suite struct HostileInputTests {
    typealias H = PeerHarness
    let peerISS = SequenceNumber(1_000_000)

    func harness(_ configure: (inout InterfaceConfiguration) -> Void = { _ in }) -> PeerHarness {
        let p = PeerHarness(configure: configure)
        p.resolvePeer()
        return p
    }

    /// A connection from the peer's port 40000 to the stack's port 7, established.
    func established(_ p: PeerHarness, configuration: TCPConfiguration = TCPConfiguration(), sack: Bool = false)
        throws -> (TCPConnection, SequenceNumber)
    {
        let l = try p.interface.tcp.listen(port: 7, configuration: configuration)
        let iss = try #require(p.peerConnect(to: 7, peerISS: peerISS,
                                             options: TCPOptions(mss: 1460, sackPermitted: sack)))
        let c = try #require(l.accept())
        #expect(c.state == .established)
        return (c, iss)
    }

    /// A bare ACK whose sequence number lies outside the window, on either
    /// side, as a flood with random sequence numbers sends (`i` picks which).
    func outOfWindowAck(_ p: PeerHarness, _ c: TCPConnection, ack: SequenceNumber, _ i: Int) -> [UInt8] {
        let window = c.advertisedWindow
        let seq = i % 2 == 0 ? c.rcvNxt - (1 + (i * 7919) % 1_000_000) : c.rcvNxt + (window + 1 + (i * 104_729) % 1_000_000)
        return p.tcpFrame(.ack, destinationPort: 7, seq: seq, ack: ack)
    }

    // MARK: Martian sources

    static let martians: [IPv4Address] = [
        IPv4Address(0, 0, 0, 0), IPv4Address(0, 1, 2, 3), IPv4Address(127, 0, 0, 1), IPv4Address(127, 255, 0, 1),
        PeerHarness.stackIP, .broadcast, IPv4Address(10, 0, 0, 255), IPv4Address(224, 0, 0, 1),
        IPv4Address(239, 1, 2, 3), IPv4Address(240, 0, 0, 1), IPv4Address(254, 1, 2, 3),
    ]

    /// An echo request, UDP to a closed and to a bound port, a SYN to a
    /// listener and to a closed port, an ACK to a closed port, a protocol
    /// nobody runs, and the first fragment of a datagram: from a martian
    /// source, none is answered, delivered or kept, each is counted once.
    @Test(arguments: martians)
    func martianSourceIsDroppedUnanswered(source: IPv4Address) throws {
        let p = harness()
        _ = try p.interface.tcp.listen(port: 80)
        let delivered = Box(0)
        try p.interface.udp.bind(port: 7) { _, _ in delivered.value += 1 }
        let udp = FrameBuilder.udp(sourcePort: 5555, destinationPort: 9, payload: FrameBuilder.pattern(3000),
                                   source: source, destination: H.stackIP)
        let frames = [
            p.echoRequestFrame(data: [1, 2, 3], from: source),
            p.udpFrame(destinationPort: 9, payload: [1], from: source),
            p.udpFrame(destinationPort: 7, payload: [1], from: source),
            p.tcpFrame(.syn, destinationPort: 80, seq: peerISS, options: TCPOptions(mss: 1460), from: source),
            p.tcpFrame(.syn, destinationPort: 81, seq: peerISS, from: source),
            p.tcpFrame(.ack, destinationPort: 81, seq: peerISS, ack: SequenceNumber(5), from: source),
            p.ipFrame(FrameBuilder.ipv4(source: source, destination: H.stackIP, protocol: IPProtocol(rawValue: 47),
                                        payload: FrameBuilder.pattern(30))),
            p.fragmentedFrames(.udp, transport: udp, from: source)[0],
        ]
        #expect(p.exchange(frames).isEmpty, "\(source)")
        #expect(p.drops(.ipv4MartianSource) == UInt64(frames.count))
        #expect(p.counters.ipv4In == 0 && p.counters.icmpErrorsOut == 0 && p.counters.icmpEchoRepliesOut == 0)
        #expect(p.tcp.allConnections.isEmpty && p.tcp.counters.passiveOpens == 0 && p.tcp.counters.resetsSent == 0)
        #expect(delivered.value == 0)
        #expect(p.interface.reassembler.inProgress == 0)
        #expect(p.advance(by: .seconds(31)).isEmpty, "no reassembly was started, so no time exceeded")
        #expect(p.pool.freeCount == p.pool.slotCount)
    }

    /// The LAND attack: a SYN from our own address and port to our own port
    /// must open nothing (it opened a connection that talked to itself).
    @Test func landSynOpensNothing() throws {
        let p = harness()
        let l = try p.interface.tcp.listen(port: 80)
        let out = p.exchange(p.tcpFrame(.syn, sourcePort: 80, destinationPort: 80, seq: peerISS,
                                        from: H.stackIP, to: H.stackIP))
        #expect(out.isEmpty)
        #expect(p.drops(.ipv4MartianSource) == 1)
        #expect(p.tcp.allConnections.isEmpty && l.pendingCount == 0)
    }

    /// A /32 (or a /31) has no directed broadcast: its own address is not one,
    /// so what comes to it is unicast and answered (it was taken as broadcast).
    @Test(arguments: [31, 32])
    func smallPrefixesHaveNoDirectedBroadcast(prefix: Int) {
        let p = PeerHarness { $0.address = IPv4CIDR(address: H.stackIP, prefixLength: prefix) }
        let out = p.exchange(p.echoRequestFrame(data: [9, 9]))
        #expect(out.count == 1 && out.first?.ipv4?.icmp?.type == 0)
        #expect(p.drops(.icmpIgnoredBroadcastEcho) == 0)
        // 10.0.0.3 is the other host of 10.0.0.2/31, no broadcast and no martian.
        if prefix == 31 {
            #expect(p.exchange(p.echoRequestFrame(data: [1], from: IPv4Address(10, 0, 0, 3))).count == 1)
            #expect(p.drops(.ipv4MartianSource) == 0)
        }
    }

    // MARK: Link-layer broadcast: no ICMP errors, no TCP answers

    @Test func noPortUnreachableForAUnicastDatagramInABroadcastFrame() throws {
        let p = harness()
        let out = p.exchange(p.udpFrame(destinationPort: 9, payload: [1, 2], ethernetDestination: .broadcast))
        #expect(out.isEmpty)
        #expect(p.drops(UDPDropReason.noSocket) == 1)
        #expect(p.counters.icmpErrorsOut == 0)
        // The same datagram in a frame to our MAC is answered, so it was the frame that mattered.
        let control = p.exchange(p.udpFrame(destinationPort: 9, payload: [1, 2]))
        #expect(control.count == 1 && control.first?.ipv4?.icmp?.type == 3)
    }

    /// UDP still takes it, as Linux does (`PACKET_BROADCAST` reaches sockets).
    @Test func aUnicastDatagramInABroadcastFrameIsDeliveredToABoundPort() throws {
        let p = harness()
        let delivered = Box(0)
        try p.interface.udp.bind(port: 7) { _, _ in delivered.value += 1 }
        _ = p.exchange(p.udpFrame(destinationPort: 7, payload: [1], ethernetDestination: .broadcast))
        #expect(delivered.value == 1)
    }

    @Test func noProtocolUnreachableForABroadcastFrame() {
        let p = harness()
        let ip = FrameBuilder.ipv4(source: H.peerIP, destination: H.stackIP, protocol: IPProtocol(rawValue: 47),
                                   payload: FrameBuilder.pattern(30))
        #expect(p.exchange(p.ipFrame(ip, to: .broadcast)).isEmpty)
        #expect(p.drops(.ipv4UnsupportedProtocol) == 1)
        #expect(p.counters.icmpErrorsOut == 0)
    }

    /// One fragment in a broadcast frame marks the whole datagram.
    @Test func noPortUnreachableForAReassembledDatagramWithAFragmentInABroadcastFrame() {
        let p = harness()
        let udp = FrameBuilder.udp(sourcePort: 5555, destinationPort: 9, payload: FrameBuilder.pattern(2000),
                                   source: H.peerIP, destination: H.stackIP)
        let frames = p.fragmentedFrames(.udp, transport: udp, identification: 0x5151)
        #expect(frames.count == 2)
        #expect(p.exchange(frames[0], frames[1].withEthernetDestination(.broadcast)).isEmpty)
        #expect(p.counters.datagramsReassembled == 1)
        #expect(p.drops(UDPDropReason.noSocket) == 1)
        #expect(p.counters.icmpErrorsOut == 0)
    }

    @Test func noTimeExceededForFragmentsThatCameInABroadcastFrame() {
        let p = harness()
        let udp = FrameBuilder.udp(sourcePort: 5555, destinationPort: 9, payload: FrameBuilder.pattern(3000),
                                   source: H.peerIP, destination: H.stackIP)
        let frames = p.fragmentedFrames(.udp, transport: udp, identification: 0x6161)
        #expect(p.exchange(frames[0].withEthernetDestination(.broadcast)).isEmpty)
        #expect(p.advance(by: .seconds(31)).isEmpty)
        #expect(p.drops(.reassemblyTimeout) == 1)
        #expect(p.counters.icmpErrorsOut == 0)
    }

    /// RFC 1122 3.2.2: no ICMP error about an ICMP error, also from the
    /// reassembly timer (it quoted whatever fragment zero held).
    @Test func noTimeExceededAboutAnICMPError() {
        let p = harness()
        // A destination unreachable of 3000 bytes, of which only fragment zero comes.
        var error = [UInt8](repeating: 0, count: 3000)
        error[0] = 3
        error[1] = 1
        let sum = ReferenceChecksum.compute(error)
        error[2] = UInt8(sum >> 8)
        error[3] = UInt8(sum & 0xff)
        let frames = p.fragmentedFrames(.icmp, transport: error, identification: 0x7171)
        #expect(p.exchange(frames[0]).isEmpty)
        #expect(p.advance(by: .seconds(31)).isEmpty)
        #expect(p.drops(.reassemblyTimeout) == 1)
        #expect(p.counters.icmpErrorsOut == 0)
        // An echo request's fragment zero does draw one (RFC 792), so the rule is what held it back.
        p.resolvePeer()  // the ARP entry has expired meanwhile
        let echo = FrameBuilder.icmpEcho(identifier: 1, sequence: 1, data: FrameBuilder.pattern(3000))
        #expect(p.exchange(p.fragmentedFrames(.icmp, transport: echo, identification: 0x7272)[0]).isEmpty)
        let out = p.advance(by: .seconds(31))
        #expect(out.count == 1 && out.first?.ipv4?.icmp?.type == 11)
    }

    /// RFC 1122 4.2.3.10: TCP answers nothing that came to a broadcast or
    /// multicast address or in such a frame: no SYN-ACK, no RST.
    @Test func tcpAnswersNothingThatCameAsABroadcast() throws {
        let p = harness()
        _ = try p.interface.tcp.listen(port: 80)
        let out = p.exchange(
            p.tcpFrame(.syn, destinationPort: 80, seq: peerISS).withEthernetDestination(.broadcast),
            p.tcpFrame(.ack, destinationPort: 81, seq: peerISS, ack: SequenceNumber(9)).withEthernetDestination(.broadcast),
            p.tcpFrame(.syn, destinationPort: 80, seq: peerISS, to: IPv4Address(10, 0, 0, 255)),
            p.tcpFrame(.syn, destinationPort: 80, seq: peerISS, to: .broadcast).withEthernetDestination(.broadcast))
        #expect(out.isEmpty)
        #expect(p.drops(TCPDropReason.broadcast) == 4)
        #expect(p.tcp.allConnections.isEmpty && p.tcp.counters.resetsSent == 0)
    }

    /// Linux answers an echo to its unicast address in a broadcast frame:
    /// only the owner of the address does, so it amplifies nothing.
    @Test func echoToOurAddressInABroadcastFrameIsAnswered() {
        let p = harness()
        let out = p.exchange(p.echoRequestFrame(data: [4, 2]).withEthernetDestination(.broadcast))
        #expect(out.count == 1 && out.first?.ipv4?.icmp?.type == 0)
    }

    // MARK: SYN with FIN or RST

    @Test func synFinToAListenerOpensNothing() throws {
        let p = harness()
        let l = try p.interface.tcp.listen(port: 80)
        #expect(p.exchange(p.tcpFrame([.syn, .fin], destinationPort: 80, seq: peerISS,
                                      options: TCPOptions(mss: 1460))).isEmpty)
        #expect(p.drops(TCPDropReason.synWithFin) == 1)
        #expect(p.tcp.allConnections.isEmpty && l.pendingCount == 0 && p.tcp.counters.passiveOpens == 0)
        // A plain SYN still opens.
        #expect(p.peerConnect(to: 80, peerISS: peerISS) != nil)
    }

    @Test func synRstIsDroppedEverywhere() throws {
        let p = harness()
        _ = try p.interface.tcp.listen(port: 80)
        let out = p.exchange(p.tcpFrame([.syn, .rst], destinationPort: 80, seq: peerISS),
                             p.tcpFrame([.syn, .rst], destinationPort: 81, seq: peerISS))
        #expect(out.isEmpty)
        #expect(p.drops(TCPDropReason.synWithReset) == 2)
        // On a live connection, even at RCV.NXT, it resets nothing.
        let (c, iss) = try established(p)
        #expect(p.exchange(p.tcpFrame([.syn, .rst, .ack], destinationPort: 7, seq: peerISS + 1, ack: iss + 1)).isEmpty)
        #expect(c.state == .established)
        #expect(p.drops(TCPDropReason.synWithReset) == 3)
    }

    /// To a closed port a SYN+FIN is answered with a RST, as anything but a
    /// RST is (RFC 9293 3.10.7.1; Linux the same): it opens nothing there.
    @Test func synFinToAClosedPortIsReset() {
        let p = harness()
        let out = p.exchangeTCP(p.tcpFrame([.syn, .fin], destinationPort: 81, seq: peerISS))
        #expect(out.count == 1 && out.first?.flags.contains(.rst) == true)
    }

    /// In SYN-RECEIVED a SYN+FIN is no retransmitted SYN: no SYN-ACK again.
    @Test func synFinInSynReceivedIsNoRetransmittedSyn() throws {
        let p = harness()
        _ = try p.interface.tcp.listen(port: 80)
        let synAck = p.exchangeTCP(p.tcpFrame(.syn, destinationPort: 80, seq: peerISS, options: TCPOptions(mss: 1460)))
        #expect(synAck.count == 1)
        #expect(p.exchange(p.tcpFrame([.syn, .fin], destinationPort: 80, seq: peerISS)).isEmpty)
        #expect(p.drops(TCPDropReason.synWithFin) == 1)
        let c = try #require(p.tcpConnection(peerPort: 40000))
        #expect(c.state == .synReceived)
        // The real retransmission is answered.
        let again = p.exchangeTCP(p.tcpFrame(.syn, destinationPort: 80, seq: peerISS, options: TCPOptions(mss: 1460)))
        #expect(again.count == 1 && again.first?.flags == [.syn, .ack])
    }

    /// In SYN-SENT a SYN-ACK with FIN is not taken, nor a SYN-RST with an acceptable ACK.
    @Test func synFinOrSynRstInSynSentIsNotTaken() throws {
        let p = harness()
        let c = try p.interface.tcp.connect(to: H.peerIP, port: 5000, now: p.now)
        let syn = try #require(p.tcpOnly(p.sent()).first)
        let port = c.tuple.localPort
        #expect(p.exchange(p.tcpFrame([.syn, .ack, .fin], sourcePort: 5000, destinationPort: port, seq: peerISS,
                                      ack: syn.seq + 1, options: TCPOptions(mss: 1460))).isEmpty)
        #expect(p.exchange(p.tcpFrame([.syn, .ack, .rst], sourcePort: 5000, destinationPort: port, seq: peerISS,
                                      ack: syn.seq + 1)).isEmpty)
        #expect(c.state == .synSent)
        #expect(p.drops(TCPDropReason.synWithFin) == 1 && p.drops(TCPDropReason.synWithReset) == 1)
        let out = p.exchangeTCP(p.tcpFrame([.syn, .ack], sourcePort: 5000, destinationPort: port, seq: peerISS,
                                           ack: syn.seq + 1, options: TCPOptions(mss: 1460)))
        #expect(c.state == .established && out.count == 1)
    }

    /// Established: a SYN+FIN in the window is a SYN (RFC 5961 4.2): one
    /// challenge ACK, and the FIN is not taken.
    @Test func synFinOnAnEstablishedConnectionDrawsAChallengeAck() throws {
        let p = harness()
        let (c, iss) = try established(p)
        let out = p.exchangeTCP(p.tcpFrame([.syn, .fin, .ack], destinationPort: 7, seq: peerISS + 5, ack: iss + 1))
        #expect(out.count == 1 && out.first?.flags == .ack && out.first?.ack == peerISS + 1)
        #expect(c.state == .established)
        #expect(p.tcp.counters.challengeAcks == 1)
    }

    // MARK: Rate-limited answers to unacceptable segments (RFC 5961 10)

    /// 100 out-of-window ACKs spread over one second draw exactly two
    /// answers, at 0 and 500 ms; the rest are counted as held back, and the
    /// connection lives on.
    @Test func outOfWindowAcksDrawOneAnswerPerHalfSecond() throws {
        let p = harness()
        let (c, iss) = try established(p)
        var answers: [CapturedTCP] = []
        for i in 0..<100 {
            answers += p.exchangeTCP(outOfWindowAck(p, c, ack: iss + 1, i))
            answers += p.advanceTCP(by: .milliseconds(10))
        }
        #expect(answers.count == 2)
        for a in answers { #expect(a.flags == .ack && a.seq == iss + 1 && a.ack == peerISS + 1) }
        #expect(p.tcp.counters.unacceptableAcks == 2)
        #expect(p.tcp.counters.unacceptableAcksRateLimited == 98)
        #expect(p.drops(TCPDropReason.outOfWindow) == 100)
        #expect(c.state == .established)
        // In-window data is still taken.
        _ = p.exchangeTCP(p.tcpFrame([.ack, .psh], destinationPort: 7, seq: peerISS + 1, ack: iss + 1,
                                     payload: [1, 2, 3]))
        #expect(c.readableBytes == 3)
    }

    /// The interval is a `TCPConfiguration` value.
    @Test func theIntervalIsConfigurable() throws {
        let p = harness()
        var config = TCPConfiguration()
        config.unacceptableAckInterval = .milliseconds(100)
        let (c, iss) = try established(p, configuration: config)
        var answers = 0
        for i in 0..<100 {
            answers += p.exchangeTCP(outOfWindowAck(p, c, ack: iss + 1, i)).count
            answers += p.advanceTCP(by: .milliseconds(10)).count
        }
        #expect(answers == 10)
    }

    /// A retransmission of data already received must get its duplicate ACK
    /// with a D-SACK at once, every time, even while a flood has used up the
    /// per-connection allowance: the peer's loss recovery depends on it.
    @Test func oldDataStillDrawsItsDSACKDuringAFlood() throws {
        let p = harness()
        let (c, iss) = try established(p, sack: true)
        let data = FrameBuilder.pattern(100)
        _ = p.exchangeTCP(p.tcpFrame([.ack, .psh], destinationPort: 7, seq: peerISS + 1, ack: iss + 1, payload: data))
        #expect(c.readableBytes == 100)
        for i in 0..<20 { _ = p.exchangeTCP(outOfWindowAck(p, c, ack: iss + 1, i)) }
        #expect(p.tcp.counters.unacceptableAcksRateLimited >= 19)
        for _ in 0..<3 {
            let out = p.exchangeTCP(p.tcpFrame(.ack, destinationPort: 7, seq: peerISS + 1, ack: iss + 1,
                                               payload: data))
            #expect(out.count == 1)
            guard let a = out.first else { continue }
            #expect(a.ack == peerISS + 101)
            let blocks = sackBlocks(a)
            #expect(blocks.first?.left == peerISS + 1 && blocks.first?.right == peerISS + 101,
                    "a D-SACK for the duplicate: \(blocks)")
        }
    }

    /// RFC 9293 3.10.7.4 fifth: an ACK of data never sent is answered with an
    /// ACK, within the same limit.
    @Test func ackOfUnsentDataIsAnsweredWithinTheLimit() throws {
        let p = harness()
        let (c, iss) = try established(p)
        var answers = 0
        for _ in 0..<5 {
            answers += p.exchangeTCP(p.tcpFrame(.ack, destinationPort: 7, seq: peerISS + 1, ack: iss + 5000)).count
        }
        #expect(answers == 1)
        #expect(p.drops(TCPDropReason.ackUnsent) == 5)
        #expect(p.tcp.counters.unacceptableAcks == 1 && p.tcp.counters.unacceptableAcksRateLimited == 4)
        #expect(c.state == .established)
    }

    /// RFC 5961 7: challenge ACKs share the per-connection limit.
    @Test func challengeAcksAreLimitedPerConnection() throws {
        let p = harness()
        let (c, iss) = try established(p)
        var answers = 0
        for _ in 0..<5 {
            answers += p.exchangeTCP(p.tcpFrame(.rst, destinationPort: 7, seq: peerISS + 2)).count
        }
        #expect(answers == 1)
        #expect(p.tcp.counters.challengeAcks == 1 && p.drops(TCPDropReason.challengeAckRateLimited) == 4)
        _ = p.advance(by: .milliseconds(500))
        let later = p.exchangeTCP(p.tcpFrame(.rst, destinationPort: 7, seq: peerISS + 2))
        #expect(later.count == 1 && later.first?.ack == peerISS + 1 && later.first?.seq == iss + 1)
        #expect(c.state == .established)
    }

    /// TIME-WAIT: random ACKs are answered within the limit; a retransmitted
    /// FIN is acknowledged every time (the peer needs it to leave LAST-ACK).
    @Test func timeWaitAnswersWithinTheLimitButAcksEveryRetransmittedFin() throws {
        let p = harness()
        let (c, iss) = try established(p)
        c.close()
        p.poll()
        let fin = try #require(p.tcpOnly(p.sent()).first)
        #expect(fin.flags.contains(.fin) && fin.seq == iss + 1)
        let last = p.exchangeTCP(p.tcpFrame([.fin, .ack], destinationPort: 7, seq: peerISS + 1, ack: iss + 2))
        #expect(c.state == .timeWait && last.count == 1 && last.first?.ack == peerISS + 2)
        var answers = 0
        for i in 0..<50 {
            answers += p.exchangeTCP(outOfWindowAck(p, c, ack: iss + 2, i)).count
            answers += p.advanceTCP(by: .milliseconds(20)).count
        }
        #expect(answers == 2)
        for _ in 0..<3 {
            let out = p.exchangeTCP(p.tcpFrame([.fin, .ack], destinationPort: 7, seq: peerISS + 1, ack: iss + 2))
            #expect(out.count == 1 && out.first?.ack == peerISS + 2)
        }
        #expect(c.state == .timeWait)
    }

    /// Stack-wide, the answers limited per connection share one bucket with
    /// the challenge ACKs: with the per-connection limit off, 150 at one
    /// instant draw its burst.
    @Test func bareAnswersAreLimitedStackWide() throws {
        let p = harness()
        var config = TCPConfiguration()
        config.unacceptableAckInterval = .zero
        let (c, iss) = try established(p, configuration: config)
        var answers = 0
        for i in 0..<150 { answers += p.exchangeTCP(outOfWindowAck(p, c, ack: iss + 1, i)).count }
        let burst = TCPAnswerLimits.bareBurst
        #expect(answers == burst)
        #expect(p.tcp.counters.unacceptableAcksRateLimited == UInt64(150 - burst))
        // 1,000 a second come back: 10 in 10 ms.
        _ = p.advance(by: .milliseconds(10))
        answers = 0
        for i in 0..<20 { answers += p.exchangeTCP(outOfWindowAck(p, c, ack: iss + 1, i)).count }
        #expect(answers == TCPAnswerLimits.bareRate / 100)
    }

    /// Answers to segments with data have their own, much larger stack-wide
    /// bucket: a flood of old data beyond it is capped too.
    @Test func answersToOldDataAreCappedOnlyUnderAFlood() throws {
        let p = harness()
        let (c, iss) = try established(p)
        _ = p.exchangeTCP(p.tcpFrame([.ack, .psh], destinationPort: 7, seq: peerISS + 1, ack: iss + 1,
                                     payload: [7, 7, 7, 7]))
        #expect(c.readableBytes == 4)
        let flood = TCPAnswerLimits.withDataBurst + 100
        var answers = 0
        var sent = 0
        while sent < flood {
            let n = min(400, flood - sent)
            for _ in 0..<n {
                p.inject(p.tcpFrame(.ack, destinationPort: 7, seq: peerISS + 1, ack: iss + 1, payload: [7, 7, 7, 7]))
            }
            p.poll()
            answers += p.tcpOnly(p.sent()).count
            sent += n
        }
        #expect(answers == TCPAnswerLimits.withDataBurst)
        #expect(p.tcp.counters.unacceptableAcksRateLimited == 100)
        #expect(c.state == .established)
    }

    func sackBlocks(_ t: CapturedTCP) -> [(left: SequenceNumber, right: SequenceNumber)] {
        var bytes = t.optionBytes
        guard let options = try? bytes.withUnsafeMutableBytes({ try TCPOptions(parsing: $0) }) else { return [] }
        return Array(options.sackBlocks)
    }
}
