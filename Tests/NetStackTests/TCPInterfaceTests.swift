import Testing
@testable import NetStack
import NetStackWire

/// TCP through an `Interface` over a `MemoryLink`, the test playing the peer
/// with hand-built frames: listeners and their queues, resets for segments
/// nobody owns (RFC 9293 3.10.7.1-2), the RFC 5961 challenge-ACK limit, and
/// connections leaving the table.
@Suite struct TCPInterfaceTests {
    let peerISS = SequenceNumber(1_000_000)

    func harness() -> PeerHarness {
        let p = PeerHarness()
        p.resolvePeer()
        return p
    }

    // MARK: Listeners

    @Test func listenerAnswersSynAndHandsOverTheEstablishedConnection() throws {
        let p = harness()
        let l = try p.interface.tcp.listen(port: 80)
        let synAck = p.exchangeTCP(p.tcpFrame(.syn, destinationPort: 80, seq: peerISS,
                                              options: TCPOptions(mss: 1460)))
        #expect(synAck.count == 1)
        let s = try #require(synAck.first)
        #expect(s.flags == [.syn, .ack])
        #expect(s.sourcePort == 80 && s.destinationPort == 40000)
        #expect(s.ack == peerISS + 1)
        #expect(s.mss == 1460)
        let c = try #require(p.tcpConnection(peerPort: 40000))
        #expect(c.state == .synReceived)
        #expect(l.pendingCount == 0)
        #expect(p.exchangeTCP(p.tcpFrame(.ack, destinationPort: 80, seq: peerISS + 1, ack: s.seq + 1)).isEmpty)
        #expect(c.state == .established)
        #expect(l.pendingCount == 1)
        #expect(l.accept() === c)
        #expect(p.tcp.counters.passiveOpens == 1)
    }

    @Test func secondListenerOnAPortIsRefused() throws {
        let p = harness()
        _ = try p.interface.tcp.listen(port: 80)
        #expect(throws: TCPListenError.portInUse(80)) { try p.interface.tcp.listen(port: 80) }
    }

    /// A client's SYN to port 80, answered; returns its handshake's final ACK, not sent.
    private func finalAck(_ p: PeerHarness, sourcePort: UInt16) throws -> [UInt8] {
        let synAck = p.exchangeTCP(p.tcpFrame(.syn, sourcePort: sourcePort, destinationPort: 80, seq: peerISS,
                                              options: TCPOptions(mss: 1460)))
        let s = try #require(synAck.first)
        return p.tcpFrame(.ack, sourcePort: sourcePort, destinationPort: 80, seq: peerISS + 1, ack: s.seq + 1)
    }

    @Test func fullAcceptQueueDropsTheFinalAck() throws {
        let p = harness()
        let l = try p.interface.tcp.listen(port: 80, backlog: 1)
        // A second client's SYN is answered while there is room; a first
        // client then fills the queue, and the second's final ACK finds it full.
        let ack = try finalAck(p, sourcePort: 40001)
        #expect(p.peerConnect(to: 80, sourcePort: 40000, peerISS: peerISS) != nil)
        #expect(l.pendingCount == 1)
        #expect(p.exchangeTCP(ack).isEmpty)
        #expect(p.drops(.acceptQueueFull) == 1)
        #expect(p.tcpConnection(peerPort: 40001)?.state == .synReceived)
        #expect(l.pendingCount == 1)
        // Once the application accepts, the retransmitted SYN-ACK draws the ACK again, and it fits.
        _ = l.accept()
        let again = p.advanceTCP(by: .seconds(1))
        #expect(again.count == 1)
        #expect(again.first?.flags == [.syn, .ack])
        #expect(p.exchangeTCP(ack).isEmpty)
        #expect(p.tcpConnection(peerPort: 40001)?.state == .established)
        #expect(l.pendingCount == 1)
    }

    /// A listener whose connections go to `onAccept` (the socket API's) asks
    /// its owner whether there is room: a full queue there holds back the
    /// final ACK as the listener's own full accept queue does.
    @Test func anOwnersFullQueueDropsTheFinalAck() throws {
        let p = harness()
        let l = try p.interface.tcp.listen(port: 80, backlog: 1)
        var taken: [TCPConnection] = []
        var room = false
        l.onAccept = { taken.append($0) }
        l.hasRoom = { room }
        room = true
        let ack = try finalAck(p, sourcePort: 40001)
        room = false
        #expect(p.exchangeTCP(ack).isEmpty)
        #expect(p.drops(.acceptQueueFull) == 1)
        #expect(p.tcpConnection(peerPort: 40001)?.state == .synReceived && taken.isEmpty)
        room = true
        let again = p.advanceTCP(by: .seconds(1))
        #expect(again.first?.flags == [.syn, .ack])
        #expect(p.exchangeTCP(ack).isEmpty)
        #expect(taken.count == 1 && taken.first?.state == .established)
    }

    /// Linux's tcp_conn_request: a SYN that finds the accept queue full is
    /// dropped, cookies or not, so the client stays in SYN-SENT and retries;
    /// once the application accepts, the retried SYN is answered.
    @Test(arguments: [SYNCookieMode.never, .onOverflow, .always])
    func aSynFindingTheAcceptQueueFullGoesUnanswered(cookies: SYNCookieMode) throws {
        let p = harness()
        var config = TCPConfiguration()
        config.synCookies = cookies
        let l = try p.interface.tcp.listen(port: 80, backlog: 1, configuration: config)
        #expect(p.peerConnect(to: 80, sourcePort: 40000, peerISS: peerISS) != nil)
        #expect(l.pendingCount == 1)
        let syn = p.tcpFrame(.syn, sourcePort: 40001, destinationPort: 80, seq: peerISS, options: TCPOptions(mss: 1460))
        #expect(p.exchangeTCP(syn).isEmpty)
        #expect(p.drops(.acceptQueueFull) == 1)
        #expect(p.tcpConnection(peerPort: 40001) == nil)
        #expect(p.advanceTCP(by: .seconds(3)).isEmpty)  // nothing half-open to retransmit
        _ = l.accept()
        let answer = p.exchangeTCP(syn)
        #expect(answer.count == 1 && answer.first?.flags == [.syn, .ack])
    }

    @Test func fullSynQueueDropsNewSynsWithoutCookies() throws {
        let p = harness()
        var config = TCPConfiguration()
        config.synCookies = .never
        _ = try p.interface.tcp.listen(port: 80, synBacklog: 1, configuration: config)
        let first = p.exchangeTCP(p.tcpFrame(.syn, sourcePort: 40000, destinationPort: 80, seq: peerISS,
                                             options: TCPOptions(mss: 1460)))
        #expect(first.count == 1)
        let syn2 = p.tcpFrame(.syn, sourcePort: 40001, destinationPort: 80, seq: peerISS,
                              options: TCPOptions(mss: 1460))
        #expect(p.exchangeTCP(syn2).isEmpty)
        #expect(p.drops(.synQueueFull) == 1)
        #expect(p.tcpConnection(peerPort: 40001) == nil)
        // The first handshake completes and frees the slot; the client's retried SYN now gets in.
        let s = try #require(first.first)
        _ = p.exchangeTCP(p.tcpFrame(.ack, sourcePort: 40000, destinationPort: 80, seq: peerISS + 1,
                                     ack: s.seq + 1))
        let retry = p.exchangeTCP(syn2)
        #expect(retry.count == 1)
        #expect(retry.first?.flags == [.syn, .ack])
    }

    @Test func ackToAListenerIsAnsweredWithReset() throws {
        let p = harness()
        _ = try p.interface.tcp.listen(port: 80)
        let out = p.exchangeTCP(p.tcpFrame(.ack, destinationPort: 80, seq: peerISS, ack: SequenceNumber(4242)))
        // RFC 9293 3.10.7.2: any acknowledgment is bad in LISTEN: <SEQ=SEG.ACK><CTL=RST>.
        #expect(out.count == 1)
        #expect(out.first?.flags == .rst)
        #expect(out.first?.seq == SequenceNumber(4242))
        #expect(p.interface.tcp.allConnections.isEmpty)
    }

    @Test func rstToAListenerIsIgnored() throws {
        let p = harness()
        _ = try p.interface.tcp.listen(port: 80)
        #expect(p.exchangeTCP(p.tcpFrame(.rst, destinationPort: 80, seq: peerISS)).isEmpty)
    }

    // MARK: Segments nobody owns (RFC 9293 3.10.7.1)

    @Test func synToAClosedPortIsAnsweredWithResetAck() {
        let p = harness()
        let out = p.exchangeTCP(p.tcpFrame(.syn, destinationPort: 81, seq: peerISS))
        // ACK bit off: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>; the SYN counts one.
        #expect(out.count == 1)
        let r = out.first
        #expect(r?.flags == [.rst, .ack])
        #expect(r?.seq == SequenceNumber(0))
        #expect(r?.ack == peerISS + 1)
        #expect(r?.sourcePort == 81 && r?.destinationPort == 40000)
        #expect(r?.payload.isEmpty == true)
        #expect(p.drops(.noConnection) == 1)
        #expect(p.tcp.counters.resetsSent == 1)
    }

    @Test func segmentWithoutAckToAClosedPortCountsDataAndFin() {
        let p = harness()
        let out = p.exchangeTCP(p.tcpFrame([.fin, .psh], destinationPort: 81, seq: peerISS, payload: testBytes(10)))
        #expect(out.count == 1)
        #expect(out.first?.flags == [.rst, .ack])
        #expect(out.first?.seq == SequenceNumber(0))
        // SEG.LEN = 10 bytes of data + 1 for the FIN.
        #expect(out.first?.ack == peerISS + 11)
    }

    @Test func segmentWithAckToAClosedPortIsAnsweredWithResetAtSegAck() {
        let p = harness()
        let out = p.exchangeTCP(p.tcpFrame(.ack, destinationPort: 81, seq: peerISS, ack: SequenceNumber(777_777),
                                           payload: testBytes(10)))
        // ACK bit on: <SEQ=SEG.ACK><CTL=RST>.
        #expect(out.count == 1)
        #expect(out.first?.flags == .rst)
        #expect(out.first?.seq == SequenceNumber(777_777))
        #expect(out.first?.ack == nil)
    }

    @Test func resetToAClosedPortIsNotAnswered() {
        let p = harness()
        #expect(p.exchangeTCP(p.tcpFrame([.rst, .ack], destinationPort: 81, seq: peerISS,
                                         ack: SequenceNumber(1))).isEmpty)
    }

    // MARK: Active opens

    @Test func badAckInSynSentIsAnsweredWithResetAtSegAck() throws {
        let p = harness()
        let c = try p.interface.tcp.connect(to: PeerHarness.peerIP, port: 5000, now: p.now)
        let syn = try #require(p.tcpOnly(p.sent()).first)
        #expect(syn.flags == .syn)
        let out = p.exchangeTCP(p.tcpFrame([.syn, .ack], sourcePort: 5000, destinationPort: c.tuple.localPort,
                                           seq: peerISS, ack: syn.seq + 100))
        // RFC 9293 3.10.7.3: SEG.ACK > SND.NXT: <SEQ=SEG.ACK><CTL=RST>; stay in SYN-SENT.
        #expect(out.count == 1)
        #expect(out.first?.flags == .rst)
        #expect(out.first?.seq == syn.seq + 100)
        #expect(c.state == .synSent)
    }

    @Test func resetAnsweringOurSynRefusesAndRetiresTheConnection() throws {
        let p = harness()
        let c = try p.interface.tcp.connect(to: PeerHarness.peerIP, port: 5000, now: p.now)
        let syn = try #require(p.tcpOnly(p.sent()).first)
        #expect(p.exchangeTCP(p.tcpFrame([.rst, .ack], sourcePort: 5000, destinationPort: c.tuple.localPort,
                                         seq: SequenceNumber(0), ack: syn.seq + 1)).isEmpty)
        #expect(c.state == .closed)
        #expect(c.error == .connectionRefused)
        #expect(p.interface.tcp.allConnections.isEmpty)
        #expect(p.tcp.counters.connectionsReset == 1)
    }

    @Test func activeOpenCompletesThroughTheInterface() throws {
        let p = harness()
        let c = try p.interface.tcp.connect(to: PeerHarness.peerIP, port: 5000, now: p.now)
        let syn = try #require(p.tcpOnly(p.sent()).first)
        let out = p.exchangeTCP(p.tcpFrame([.syn, .ack], sourcePort: 5000, destinationPort: c.tuple.localPort,
                                           seq: peerISS, ack: syn.seq + 1, options: TCPOptions(mss: 1460)))
        #expect(c.state == .established)
        #expect(out.count == 1)
        #expect(out.first?.flags == .ack)
        #expect(out.first?.seq == syn.seq + 1)
        #expect(out.first?.ack == peerISS + 1)
        #expect(p.tcp.counters.activeOpens == 1)
    }

    // MARK: RFC 5961 challenge ACKs

    @Test func challengeAcksAreRateLimitedStackWide() throws {
        let p = harness()
        // Without the per-connection limit, so the stack-wide one shows on one connection.
        var config = TCPConfiguration()
        config.unacceptableAckInterval = .zero
        _ = try p.interface.tcp.listen(port: 80, configuration: config)
        let iss = try #require(p.peerConnect(to: 80, peerISS: peerISS))
        let burst = p.interface.tcp.answerLimits.bare.burst
        // In-window RSTs that miss RCV.NXT by one, all at the same instant.
        var acks = 0
        for _ in 0..<(burst + 5) {
            let out = p.exchangeTCP(p.tcpFrame(.rst, destinationPort: 80, seq: peerISS + 2))
            for s in out {
                #expect(s.flags == .ack)
                #expect(s.seq == iss + 1 && s.ack == peerISS + 1)
            }
            acks += out.count
        }
        // RFC 5961 7: the challenge ACKs are throttled; the excess is counted.
        #expect(acks == burst)
        #expect(p.tcp.counters.challengeAcks == UInt64(burst))
        #expect(p.drops(.challengeAckRateLimited) == 5)
        #expect(p.tcpConnection(peerPort: 40000)?.state == .established)
        // Tokens come back with time.
        _ = p.advance(by: .milliseconds(10))
        #expect(p.exchangeTCP(p.tcpFrame(.rst, destinationPort: 80, seq: peerISS + 2)).count == 1)
    }

    // MARK: Leaving the table

    @Test func timeWaitExpiryRemovesTheConnectionFromTheTable() throws {
        let p = harness()
        var config = TCPConfiguration()
        config.msl = .seconds(1)
        let l = try p.interface.tcp.listen(port: 80, configuration: config)
        let iss = try #require(p.peerConnect(to: 80, peerISS: peerISS))
        let c = try #require(l.accept())
        c.close()
        p.interface.tcp.flush(c, now: p.now)
        let fin = p.tcpOnly(p.sent())
        #expect(fin.count == 1 && fin.first?.flags == [.fin, .ack])
        let ack = p.exchangeTCP(p.tcpFrame([.fin, .ack], destinationPort: 80, seq: peerISS + 1, ack: iss + 2))
        #expect(ack.count == 1 && ack.first?.ack == peerISS + 2)
        #expect(c.state == .timeWait)
        #expect(p.interface.tcp.allConnections.count == 1)
        // 2 MSL = 2 s.
        _ = p.advance(by: .milliseconds(1999))
        #expect(p.interface.tcp.allConnections.count == 1)
        _ = p.advance(by: .milliseconds(1))
        #expect(c.state == .closed)
        #expect(p.interface.tcp.allConnections.isEmpty)
        #expect(p.tcp.counters.connectionsClosed == 1)
        // The port is free again: a segment for the old connection now meets a reset.
        let late = p.exchangeTCP(p.tcpFrame(.ack, destinationPort: 80, seq: peerISS + 2, ack: iss + 2))
        #expect(late.first?.flags == .rst)
    }

    /// RFC 1122 4.2.2.13, RFC 6191: after the stack closed first, a new SYN
    /// from the same port reopens the connection from TIME-WAIT, with an
    /// initial sequence number past the old connection's (Linux's
    /// TCP_TW_SYN); an old duplicate SYN does not. Without it a client
    /// reusing its port waited out the 2 MSL in SYN retransmissions.
    @Test func aNewSYNReopensAConnectionInTimeWait() throws {
        let p = harness()
        let l = try p.interface.tcp.listen(port: 80)
        let iss = try #require(p.peerConnect(to: 80, peerISS: peerISS))
        let c = try #require(l.accept())
        c.close()
        p.interface.tcp.flush(c, now: p.now)
        _ = p.tcpOnly(p.sent())
        _ = p.exchangeTCP(p.tcpFrame([.fin, .ack], destinationPort: 80, seq: peerISS + 1, ack: iss + 2))
        #expect(c.state == .timeWait)
        // An old duplicate SYN, below RCV.NXT: a challenge ACK, and TIME-WAIT stays.
        let old = p.exchangeTCP(p.tcpFrame(.syn, destinationPort: 80, seq: peerISS, options: TCPOptions(mss: 1460)))
        #expect(old.count == 1 && old.first?.flags == .ack && c.state == .timeWait)
        // A new one, past it: a SYN-ACK for a new connection.
        let newISS = peerISS + 100_000
        let synAck = p.exchangeTCP(p.tcpFrame(.syn, destinationPort: 80, seq: newISS, options: TCPOptions(mss: 1460)))
        #expect(synAck.count == 1 && synAck.first?.flags == [.syn, .ack])
        #expect(synAck.first?.ack == newISS + 1)
        #expect(synAck.first?.seq == iss + 2 + 65537, "past all the old connection sent")
        #expect(c.state == .closed)
        #expect(p.tcp.counters.timeWaitReopened == 1)
        _ = p.exchangeTCP(p.tcpFrame(.ack, destinationPort: 80, seq: newISS + 1, ack: iss + 2 + 65538))
        let again = try #require(l.accept())
        #expect(again.state == .established && again !== c)
    }

    @Test func resetByThePeerRemovesTheConnection() throws {
        let p = harness()
        _ = try p.interface.tcp.listen(port: 80)
        _ = try #require(p.peerConnect(to: 80, peerISS: peerISS))
        #expect(p.exchangeTCP(p.tcpFrame(.rst, destinationPort: 80, seq: peerISS + 1)).isEmpty)
        #expect(p.interface.tcp.allConnections.isEmpty)
        #expect(p.tcp.counters.connectionsReset == 1)
    }

    @Test func resetOfAHalfOpenConnectionFreesItsSynQueueSlot() throws {
        let p = harness()
        let l = try p.interface.tcp.listen(port: 80, synBacklog: 1)
        _ = p.exchangeTCP(p.tcpFrame(.syn, destinationPort: 80, seq: peerISS, options: TCPOptions(mss: 1460)))
        #expect(l.halfOpen == 1)
        #expect(p.exchangeTCP(p.tcpFrame(.rst, destinationPort: 80, seq: peerISS + 1)).isEmpty)
        #expect(l.halfOpen == 0)
        #expect(p.interface.tcp.allConnections.isEmpty)
        #expect(l.pendingCount == 0)
    }
}

extension TCPInterfaceTests {
    /// Data riding on the handshake's final ACK arrives before `onAccept` has
    /// run; the application still hears about it once it is listening.
    @Test func dataOnTheFinalAckReachesTheAcceptedConnection() throws {
        let peer = PeerHarness()
        peer.resolvePeer()
        let listener = try peer.interface.tcp.listen(port: 8080)
        var heard: [UInt8] = []
        listener.onAccept = { c in
            c.onReadable = { c in
                var buffer = [UInt8](repeating: 0, count: 64)
                let n = buffer.withUnsafeMutableBytes { c.read(into: $0) }
                heard += buffer[0..<n]
            }
        }
        let peerISS = SequenceNumber(5000)
        let synAck = peer.exchangeTCP(peer.tcpFrame(.syn, destinationPort: 8080, seq: peerISS,
                                                    options: TCPOptions(mss: 1460)))
        let iss = try #require(synAck.first?.seq)
        _ = peer.exchangeTCP(peer.tcpFrame([.ack, .psh], destinationPort: 8080, seq: peerISS + 1, ack: iss + 1,
                                           payload: Array("hello".utf8)))
        #expect(heard == Array("hello".utf8))
    }
}
