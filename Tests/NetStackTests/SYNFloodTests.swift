import Testing
@testable import NetStack
import NetStackWire

/// A listener under a SYN flood (RFC 4987): the SYN queue fills with spoofed
/// half-open connections, SYN cookies (3.6) answer the rest, a real client's
/// handshake completes through one with its options, forged and expired
/// cookies are refused and counted, and the queue drops its oldest entries
/// first and retries less under pressure. The test plays every peer with
/// hand-built frames on the virtual clock.
@Suite struct SYNFloodTests {
    let clientISS = SequenceNumber(1_000_000)
    /// What a Linux client offers: MSS, window scale 7, SACK-permitted, timestamps.
    let linuxSYN = TCPOptions(mss: 1460, windowScale: 7, sackPermitted: true, timestamps: (value: 1000, echoReply: 0))

    /// A stack whose gateway is the peer, so SYN-ACKs to spoofed sources off
    /// the link go to the peer's MAC, where the test sees them.
    func harness(configure: (inout InterfaceConfiguration) -> Void = { $0.gateway = PeerHarness.peerIP })
        -> PeerHarness {
        let p = PeerHarness(configure: configure)
        p.resolvePeer()
        return p
    }

    func config(_ mode: SYNCookieMode, sack: Bool = true) -> TCPConfiguration {
        var c = TCPConfiguration()
        c.synCookies = mode
        c.sackPermitted = sack
        return c
    }

    /// `count` SYNs to `port`, each from its own spoofed address in
    /// 198.18.0.0/15 (`first` on), as hping3 --rand-source sends them; returns
    /// the stack's answers.
    @discardableResult
    func flood(_ p: PeerHarness, port: UInt16 = 80, count: Int, first: Int = 0,
               sourceLocation: SourceLocation = #_sourceLocation) -> [CapturedTCP] {
        var out: [CapturedTCP] = []
        var i = first
        while i < first + count {
            let end = min(i + 256, first + count)
            for k in i..<end {
                let source = IPv4Address(198, 18 + UInt8(k >> 16 & 1), UInt8(k >> 8 & 0xff), UInt8(k & 0xff))
                p.inject(p.tcpFrame(.syn, sourcePort: UInt16(1024 + k % 60000), destinationPort: port,
                                    seq: SequenceNumber(UInt32(truncatingIfNeeded: k &* 2_654_435_761)),
                                    options: TCPOptions(mss: 1460), from: source))
            }
            p.poll()
            out += p.tcpOnly(p.sent(), sourceLocation: sourceLocation)
            i = end
        }
        return out
    }

    /// The client's SYN from 10.0.0.1; returns the one SYN-ACK.
    func clientSYN(_ p: PeerHarness, port: UInt16 = 80, sourcePort: UInt16 = 40000, options: TCPOptions,
                   sourceLocation: SourceLocation = #_sourceLocation) throws -> CapturedTCP {
        let out = p.exchangeTCP(p.tcpFrame(.syn, sourcePort: sourcePort, destinationPort: port, seq: clientISS,
                                           options: options), sourceLocation: sourceLocation)
        #expect(out.count == 1, "one SYN-ACK, got \(out)", sourceLocation: sourceLocation)
        let s = try #require(out.first, sourceLocation: sourceLocation)
        #expect(s.flags == [.syn, .ack] && s.ack == clientISS + 1, sourceLocation: sourceLocation)
        return s
    }

    // MARK: Cookies once the queue is full

    @Test func floodFillsTheQueueAndCookiesAnswerTheRestKeepingNoState() throws {
        let p = harness()
        let l = try p.tcp.listen(port: 80, synBacklog: 32)
        let answers = flood(p, count: 500)
        #expect(answers.count == 500)
        #expect(answers.allSatisfy { $0.flags == [.syn, .ack] })
        #expect(l.halfOpen == 32)
        #expect(p.tcp.allConnections.count == 32)
        #expect(p.tcp.counters.passiveOpens == 32)
        #expect(p.tcp.counters.synCookiesSent == 468)
        #expect(p.drops(.synQueueFull) == 0)
        // The flood's SYNs carried no timestamps: the cookie SYN-ACKs offer the MSS alone.
        let last = try #require(answers.last)
        #expect(last.mss == 1460 && last.windowScale == nil && !last.sackPermitted && last.timestamps == nil)

        // Bounded: ten times as many SYNs more, and the table stays as it was.
        flood(p, count: 5000, first: 500)
        #expect(p.tcp.allConnections.count == 32)
        #expect(l.halfOpen == 32)
        #expect(p.tcp.counters.synCookiesSent == 5468)
        #expect(p.pool.freeCount == p.pool.slotCount, "every slot back in the pool")
        let report = Dictionary(uniqueKeysWithValues: p.tcp.counters.report)
        #expect(report["tcp-syncookies-sent"] == 5468)
        #expect(report["tcp-syncookies-validated"] == 0 && report["tcp-syncookies-failed"] == 0)
        #expect(Dictionary(uniqueKeysWithValues: p.tcp.tableReport)["tcp-in-syn-received"] == 32)
    }

    /// During the flood a Linux client's SYN gets a cookie; its ACK makes the
    /// connection with window scaling, SACK and timestamps as negotiated, and
    /// data then flows both ways.
    @Test func realClientCompletesThroughACookieAndDataFlowsBothWays() throws {
        let p = harness()
        let l = try p.tcp.listen(port: 80, synBacklog: 16)
        flood(p, count: 100)
        let synAck = try clientSYN(p, options: linuxSYN)
        #expect(p.tcpConnection(peerPort: 40000) == nil, "a cookie keeps no state")
        #expect(p.tcp.counters.synCookiesSent == 85)
        // Our MSS; our shift for a 256 KiB ring; SACK-permitted; the options in the TSval's low bits.
        #expect(synAck.mss == 1460)
        #expect(synAck.windowScale == 3)
        #expect(synAck.sackPermitted)
        let ts = try #require(synAck.timestamps)
        #expect(ts.echoReply == 1000)
        #expect(ts.value & 0x3f == 0x17, "shift 7 and SACK in the low bits")
        #expect(synAck.window == 65535)

        // The ACK, window 1000 << 7.
        let cookie = synAck.seq
        #expect(p.exchangeTCP(p.tcpFrame(.ack, destinationPort: 80, seq: clientISS + 1, ack: cookie + 1, window: 1000,
                                         options: TCPOptions(timestamps: (1001, ts.value)))).isEmpty)
        let c = try #require(p.tcpConnection(peerPort: 40000))
        #expect(c.state == .established)
        #expect(p.tcp.counters.synCookiesValidated == 1 && p.tcp.counters.synCookiesFailed == 0)
        #expect(l.pendingCount == 1 && l.accept() === c)
        #expect(c.iss == cookie)
        #expect(c.sndScale == 7 && c.rcvScale == 3)
        #expect(c.sackEnabled && c.timestampsEnabled)
        #expect(c.sendMSS == 1448, "1460 from the table, less the timestamps")
        #expect(c.sender.sndWnd == 128_000)

        // Peer to stack, in order: acknowledged, readable.
        let data = (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var tsval: UInt32 = 1002
        func segment(_ range: Range<Int>) -> [UInt8] {
            tsval += 1
            return p.tcpFrame([.ack, .psh], destinationPort: 80, seq: clientISS + 1 + range.lowerBound, ack: cookie + 1,
                              window: 1000, options: TCPOptions(timestamps: (tsval, ts.value)),
                              payload: Array(data[range]))
        }
        _ = p.exchangeTCP(segment(0..<1000))
        #expect(c.readableBytes == 1000)
        // Out of order: the ACK at once carries a SACK block for what is held.
        let sacked = p.exchangeTCP(segment(1500..<3000))
        let dupAck = try #require(sacked.last)
        #expect(dupAck.ack == clientISS + 1001)
        #expect(dupAck.sackBlocks.first.map { [$0.left, $0.right] } == [(clientISS + 1501).rawValue,
                                                                         (clientISS + 3001).rawValue])
        // Scaled by our shift: the free ring >> 3, beyond what 16 bits say unscaled.
        #expect(Int(dupAck.window) == c.receiver.receiveWindow >> 3)
        #expect(Int(dupAck.window) << 3 > 65535)
        let filled = p.exchangeTCP(segment(1000..<1500))
        #expect(filled.last?.ack == clientISS + 3001)
        var got = [UInt8](repeating: 0, count: 4000)
        let n = got.withUnsafeMutableBytes { c.read(into: $0) }
        #expect(Array(got[0..<n]) == data)

        // Stack to peer: segments of 1448 bytes, timestamps never behind the SYN-ACK's.
        let reply = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        #expect(reply.withUnsafeBytes { c.write($0) } == 10_000)
        p.tcp.flush(c, now: p.now)
        let out = p.tcpOnly(p.sent())
        #expect(!out.isEmpty)
        var received: [UInt8] = []
        for s in out where !s.payload.isEmpty {
            #expect(s.seq == cookie + 1 + received.count)
            #expect(s.payload.count <= 1448)
            let sts = try #require(s.timestamps)
            #expect(Int32(bitPattern: sts.value &- ts.value) >= 0)
            #expect(sts.echoReply == tsval)
            received += s.payload
        }
        #expect(received == reply)
        #expect(c.error == nil)
    }

    /// A client without timestamps keeps only its MSS, as quantized by the
    /// table: no window scaling, no SACK (as in Linux).
    @Test func cookieWithoutTimestampsKeepsOnlyTheMSS() throws {
        let p = harness()
        _ = try p.tcp.listen(port: 80, synBacklog: 4)
        flood(p, count: 10)
        let synAck = try clientSYN(p, options: TCPOptions(mss: 1400, windowScale: 7, sackPermitted: true))
        #expect(synAck.mss == 1460 && synAck.windowScale == nil && !synAck.sackPermitted && synAck.timestamps == nil)
        _ = p.exchangeTCP(p.tcpFrame(.ack, destinationPort: 80, seq: clientISS + 1, ack: synAck.seq + 1, window: 5000))
        let c = try #require(p.tcpConnection(peerPort: 40000))
        #expect(c.state == .established)
        #expect(c.sendMSS == 1300, "the largest table entry not above 1400")
        #expect(c.sndScale == 0 && c.rcvScale == 0 && !c.sackEnabled && !c.timestampsEnabled)
        #expect(c.sender.sndWnd == 5000)
    }

    /// Data riding on the cookie's ACK (the bare ACK was lost) is delivered.
    @Test func cookieAckCarryingDataDeliversIt() throws {
        let p = harness()
        let l = try p.tcp.listen(port: 80, synBacklog: 4)
        var heard: [UInt8] = []
        l.onAccept = { c in
            c.onReadable = { c in
                var b = [UInt8](repeating: 0, count: 64)
                let n = b.withUnsafeMutableBytes { c.read(into: $0) }
                heard += b[0..<n]
            }
        }
        flood(p, count: 10)
        let synAck = try clientSYN(p, options: linuxSYN)
        let ts = try #require(synAck.timestamps)
        let out = p.exchangeTCP(p.tcpFrame([.ack, .psh], destinationPort: 80, seq: clientISS + 1, ack: synAck.seq + 1,
                                           options: TCPOptions(timestamps: (1001, ts.value)),
                                           payload: Array("GET / HTTP/1.1\r\n".utf8)))
        #expect(heard == Array("GET / HTTP/1.1\r\n".utf8))
        #expect(p.tcp.counters.synCookiesValidated == 1)
        #expect(out.allSatisfy { !$0.flags.contains(.rst) })
    }

    /// A good cookie whose listener's accept queue is full is dropped
    /// silently (Linux's behaviour): the client's next segment tries again.
    @Test func fullAcceptQueueDropsAGoodCookieAckWithoutAReset() throws {
        let p = harness()
        let l = try p.tcp.listen(port: 80, backlog: 1, synBacklog: 2)
        flood(p, count: 4)
        // The cookie goes out while the queue has room (a SYN that finds it
        // full goes unanswered); a second client's handshake then fills it.
        let synAck = try clientSYN(p, options: TCPOptions(mss: 1460))
        _ = try #require(p.peerConnect(to: 80, sourcePort: 39999, peerISS: clientISS))
        #expect(l.pendingCount == 1)
        let ack = p.tcpFrame(.ack, destinationPort: 80, seq: clientISS + 1, ack: synAck.seq + 1)
        #expect(p.exchangeTCP(ack).isEmpty)
        #expect(p.tcpConnection(peerPort: 40000) == nil)
        #expect(p.drops(.acceptQueueFull) == 1)
        _ = l.accept()
        #expect(p.exchangeTCP(ack).isEmpty)
        #expect(p.tcpConnection(peerPort: 40000)?.state == .established)
        #expect(l.pendingCount == 1)
    }

    // MARK: Refused cookies

    @Test func forgedCookieAcksAreRefusedAndCounted() throws {
        let p = harness()
        _ = try p.tcp.listen(port: 80, synBacklog: 4)
        flood(p, count: 10)
        let synAck = try clientSYN(p, options: TCPOptions(mss: 1460))
        let cookie = synAck.seq
        // One off in the acknowledgment.
        var out = p.exchangeTCP(p.tcpFrame(.ack, destinationPort: 80, seq: clientISS + 1, ack: cookie + 2))
        #expect(out.count == 1 && out.first?.flags == .rst && out.first?.seq == cookie + 2)
        // The right acknowledgment for another sequence number (another SYN).
        out = p.exchangeTCP(p.tcpFrame(.ack, destinationPort: 80, seq: clientISS + 2, ack: cookie + 1))
        #expect(out.count == 1 && out.first?.flags == .rst)
        // The right cookie from another port.
        out = p.exchangeTCP(p.tcpFrame(.ack, sourcePort: 40001, destinationPort: 80, seq: clientISS + 1,
                                       ack: cookie + 1))
        #expect(out.count == 1 && out.first?.flags == .rst)
        #expect(p.tcp.counters.synCookiesFailed == 3)
        #expect(p.tcp.counters.synCookiesValidated == 0)
        #expect(p.tcpConnection(peerPort: 40000) == nil && p.tcpConnection(peerPort: 40001) == nil)
        // The real one still works.
        #expect(p.exchangeTCP(p.tcpFrame(.ack, destinationPort: 80, seq: clientISS + 1, ack: cookie + 1)).isEmpty)
        #expect(p.tcpConnection(peerPort: 40000)?.state == .established)
    }

    /// The timestamp's bits are not covered by the hash: an echo claiming
    /// SACK from a listener that does not offer it fails the cookie.
    @Test func echoClaimingAnOptionNeverOfferedFailsTheCookie() throws {
        let p = harness()
        _ = try p.tcp.listen(port: 80, synBacklog: 4, configuration: config(.onOverflow, sack: false))
        flood(p, count: 10)
        let synAck = try clientSYN(p, options: linuxSYN)
        #expect(!synAck.sackPermitted)
        let ts = try #require(synAck.timestamps)
        #expect(ts.value & 0x10 == 0)
        let out = p.exchangeTCP(p.tcpFrame(.ack, destinationPort: 80, seq: clientISS + 1, ack: synAck.seq + 1,
                                           options: TCPOptions(timestamps: (1001, ts.value | 0x10))))
        #expect(out.first?.flags == .rst)
        #expect(p.tcp.counters.synCookiesFailed == 1)
        // The honest echo is good.
        _ = p.exchangeTCP(p.tcpFrame(.ack, destinationPort: 80, seq: clientISS + 1, ack: synAck.seq + 1,
                                     options: TCPOptions(timestamps: (1001, ts.value))))
        let c = try #require(p.tcpConnection(peerPort: 40000))
        #expect(c.state == .established && !c.sackEnabled && c.sndScale == 7)
    }

    /// A cookie is good for its minute and the next (Linux's two counters),
    /// then refused, and counted.
    @Test func cookieExpiresAfterTwoCounterPeriods() throws {
        // The peer's ARP entry outlives the test, so each answer is one frame.
        let p = harness(configure: { $0.gateway = PeerHarness.peerIP; $0.arpLifetime = .seconds(3600) })
        _ = try p.tcp.listen(port: 80, configuration: config(.always))
        // Clock at 1 s: counter 0.
        let first = try clientSYN(p, sourcePort: 40000, options: TCPOptions(mss: 1460))
        let second = try clientSYN(p, sourcePort: 40001, options: TCPOptions(mss: 1460))
        // 100 s: counter 1, the first still good.
        _ = p.advance(by: .seconds(99))
        #expect(p.exchangeTCP(p.tcpFrame(.ack, sourcePort: 40000, destinationPort: 80, seq: clientISS + 1,
                                         ack: first.seq + 1)).isEmpty)
        #expect(p.tcpConnection(peerPort: 40000)?.state == .established)
        // Cookies keep being sent; at 125 s (counter 2) the second has expired.
        _ = p.advance(by: .seconds(20))
        _ = try clientSYN(p, sourcePort: 40002, options: TCPOptions(mss: 1460))
        _ = p.advance(by: .seconds(5))
        let out = p.exchangeTCP(p.tcpFrame(.ack, sourcePort: 40001, destinationPort: 80, seq: clientISS + 1,
                                           ack: second.seq + 1))
        #expect(out.count == 1 && out.first?.flags == .rst)
        #expect(p.tcpConnection(peerPort: 40001) == nil)
        #expect(p.tcp.counters.synCookiesValidated == 1 && p.tcp.counters.synCookiesFailed == 1)
        // Long after the last cookie was sent, an ACK is refused unchecked, and counted.
        _ = p.advance(by: .seconds(300))
        let late = p.exchangeTCP(p.tcpFrame(.ack, sourcePort: 40002, destinationPort: 80, seq: clientISS + 1,
                                            ack: SequenceNumber(12345)))
        #expect(late.first?.flags == .rst)
        #expect(p.tcp.counters.synCookiesFailed == 2)
    }

    /// Before any cookie was sent an ACK to a listener is not a cookie: it is
    /// reset as RFC 9293 says and counts no failure.
    @Test func ackBeforeAnyCookieIsJustReset() throws {
        let p = harness()
        _ = try p.tcp.listen(port: 80)
        let out = p.exchangeTCP(p.tcpFrame(.ack, destinationPort: 80, seq: clientISS, ack: SequenceNumber(4242)))
        #expect(out.first?.flags == .rst && out.first?.seq == SequenceNumber(4242))
        #expect(p.tcp.counters.synCookiesFailed == 0)
    }

    // MARK: Modes

    @Test func alwaysModeAnswersEverySynWithACookie() throws {
        let p = harness()
        _ = try p.tcp.listen(port: 80, configuration: config(.always))
        let synAck = try clientSYN(p, options: linuxSYN)
        #expect(p.tcp.allConnections.isEmpty)
        #expect(p.tcp.counters.synCookiesSent == 1)
        let ts = try #require(synAck.timestamps)
        _ = p.exchangeTCP(p.tcpFrame(.ack, destinationPort: 80, seq: clientISS + 1, ack: synAck.seq + 1,
                                     options: TCPOptions(timestamps: (1001, ts.value))))
        #expect(p.tcpConnection(peerPort: 40000)?.state == .established)
        #expect(p.tcp.counters.synCookiesValidated == 1)
    }

    @Test func neverModeDropsWhenFullAndChecksNoCookie() throws {
        let p = harness()
        _ = try p.tcp.listen(port: 80, synBacklog: 4, configuration: config(.never))
        #expect(flood(p, count: 10).count == 4)
        #expect(p.drops(.synQueueFull) == 6)
        #expect(p.tcp.counters.synCookiesSent == 0)
        let out = p.exchangeTCP(p.tcpFrame(.ack, destinationPort: 80, seq: clientISS + 1, ack: SequenceNumber(77)))
        #expect(out.first?.flags == .rst)
        #expect(p.tcp.counters.synCookiesFailed == 0)
    }

    /// `--syncookies 0|1|2` reads as the sysctl's values.
    @Test func modesAreLinuxsNumbers() {
        #expect(SYNCookieMode(rawValue: 0) == .never)
        #expect(SYNCookieMode(rawValue: 1) == .onOverflow)
        #expect(SYNCookieMode(rawValue: 2) == .always)
        #expect(TCPConfiguration().synCookies == .onOverflow)
    }

    // MARK: The SYN queue

    /// A SYN finding the queue full evicts the oldest entry once its SYN-ACK
    /// went unanswered for an RTO; while every entry is young it does not.
    @Test func fullQueueEvictsTheOldestEntryFirst() throws {
        let p = harness()
        let l = try p.tcp.listen(port: 80, synBacklog: 4, configuration: config(.never))
        for k in 0..<4 {
            #expect(flood(p, count: 1, first: k).count == 1)
            _ = p.advance(by: .milliseconds(100))
        }
        #expect(l.halfOpen == 4)
        // 0.5 s: all young, so the fifth is dropped.
        _ = p.advance(by: .milliseconds(100))
        #expect(flood(p, count: 1, first: 4).isEmpty)
        #expect(p.drops(.synQueueFull) == 1)
        // 1.05 s: the first SYN-ACK has been resent, the rest not yet.
        let resent = p.advanceTCP(by: .milliseconds(550))
        #expect(resent.count == 1 && resent.first?.destinationPort == 1024)
        #expect(flood(p, count: 1, first: 4).count == 1)
        #expect(p.tcp.counters.synQueueEvicted == 1)
        let ports = Set(l.synQueue.entries.map(\.tuple.remotePort))
        #expect(ports == [1025, 1026, 1027, 1028])
        #expect(l.synQueue.entries.map(\.tuple.remotePort) == [1025, 1026, 1027, 1028], "oldest first")
        #expect(p.tcp.allConnections.count == 4)
        // The evicted peer's late ACK finds nothing: a reset.
        let late = p.exchangeTCP(p.tcpFrame(.ack, sourcePort: 1024, destinationPort: 80, seq: SequenceNumber(1),
                                            ack: SequenceNumber(2), from: IPv4Address(198, 18, 0, 0)))
        #expect(late.first?.flags == .rst)
    }

    /// With cookies on, a full queue answers with a cookie whatever the age
    /// of its entries: none is evicted (a late ACK from its peer would be reset).
    @Test func cookiesAnswerAFullQueueWithoutEvicting() throws {
        let p = harness()
        let l = try p.tcp.listen(port: 80, synBacklog: 4)
        flood(p, count: 4)
        let entries = l.synQueue.entries.map(\.tuple)
        #expect(flood(p, count: 1, first: 4).count == 1)
        #expect(p.tcp.counters.synCookiesSent == 1)
        _ = p.advance(by: .milliseconds(1050))
        #expect(flood(p, count: 1, first: 5).count == 1)
        #expect(p.tcp.counters.synCookiesSent == 2 && p.tcp.counters.synQueueEvicted == 0)
        #expect(l.synQueue.entries.map(\.tuple) == entries)
    }

    /// RFC 9293 3.10.7.4: a SYN repeating a half-open connection's is a
    /// retransmission, answered with the same SYN-ACK, not a new entry; a
    /// repeated SYN to a full queue gets the same cookie.
    @Test func retransmittedSynIsNotANewEntry() throws {
        let p = harness()
        let l = try p.tcp.listen(port: 80, synBacklog: 2)
        let a = try clientSYN(p, options: TCPOptions(mss: 1460))
        let b = try clientSYN(p, options: TCPOptions(mss: 1460))
        #expect(a.seq == b.seq)
        #expect(l.halfOpen == 1 && p.tcp.counters.passiveOpens == 1)
        flood(p, count: 1)
        let c1 = try clientSYN(p, sourcePort: 40001, options: TCPOptions(mss: 1460))
        let c2 = try clientSYN(p, sourcePort: 40001, options: TCPOptions(mss: 1460))
        #expect(c1.seq == c2.seq)
        #expect(l.halfOpen == 2 && p.tcp.counters.synCookiesSent == 2)
    }

    /// Without pressure a half-open entry resends its SYN-ACK five times
    /// (Linux's tcp_synack_retries: 1, 3, 7, 15, 31 s) and is gone at 63 s.
    @Test func halfOpenEntryRetriesFiveTimesWithoutPressure() throws {
        let p = harness()
        let l = try p.tcp.listen(port: 80)
        let t0 = p.now
        flood(p, count: 1)
        var times: [Duration] = []
        for _ in 0..<70 {
            for s in p.advanceTCP(by: .seconds(1)) where s.flags == [.syn, .ack] { times.append(p.now - t0) }
        }
        #expect(times == [.seconds(1), .seconds(3), .seconds(7), .seconds(15), .seconds(31)])
        #expect(l.halfOpen == 0 && p.tcp.allConnections.isEmpty)
        #expect(p.tcp.counters.connectionsTimedOut == 1)
    }

    /// A queue more than half full of entries gone old retries twice (Linux's
    /// floor): resends at 1 and 3 s, and at 7 s entries give up until the
    /// queue is down to half; the other half, no longer under pressure, keep
    /// their five tries (Linux judges each timer by the queue at that moment).
    @Test func pressureCutsSynAckRetriesToTwo() throws {
        let p = harness()
        let l = try p.tcp.listen(port: 80, synBacklog: 16, configuration: config(.never))
        let t0 = p.now
        flood(p, count: 16)
        var resends: [Duration: Int] = [:]
        for _ in 0..<70 {
            for s in p.advanceTCP(by: .seconds(1)) where s.flags == [.syn, .ack] {
                resends[p.now - t0, default: 0] += 1
            }
            if p.now - t0 == .seconds(6) { #expect(l.halfOpen == 16) }
            if p.now - t0 == .seconds(7) { #expect(l.halfOpen == 8) }
        }
        #expect(resends == [.seconds(1): 16, .seconds(3): 16, .seconds(7): 8, .seconds(15): 8, .seconds(31): 8])
        #expect(l.halfOpen == 0 && p.tcp.allConnections.isEmpty)
        #expect(p.tcp.counters.connectionsTimedOut == 16)
    }

    /// 300 SYNs from one on-link address that never answers ARP fill the
    /// queue; a real client still connects (by cookie) meanwhile, and once ARP
    /// gives up the entries toward that address are gone, so the next client
    /// gets a regular one.
    @Test func peerThatNeverAnswersARPDoesNotBlockTheQueue() throws {
        let p = harness(configure: { _ in })
        let l = try p.tcp.listen(port: 80, synBacklog: 16)
        let silent = IPv4Address(10, 0, 0, 77)
        for k in 0..<300 {
            p.inject(p.tcpFrame(.syn, sourcePort: UInt16(1000 + k), destinationPort: 80,
                                seq: SequenceNumber(UInt32(k)), options: TCPOptions(mss: 1460), from: silent))
        }
        p.poll()
        let asked = p.sent()
        #expect(asked.count == 1 && asked.first?.arp?.operation == .request, "one ARP request, no SYN-ACK yet")
        #expect(l.halfOpen == 16 && p.tcp.counters.synCookiesSent == 284)

        // The real client's handshake goes through a cookie.
        let synAck = try clientSYN(p, options: TCPOptions(mss: 1460))
        _ = p.exchangeTCP(p.tcpFrame(.ack, destinationPort: 80, seq: clientISS + 1, ack: synAck.seq + 1))
        #expect(p.tcpConnection(peerPort: 40000)?.state == .established)

        // ARP gives up after its three requests.
        for _ in 0..<4 { _ = p.advance(by: .seconds(1)) }
        #expect(p.drops(.arpResolutionFailed) > 0)
        #expect(l.halfOpen == 0)
        #expect(p.tcp.counters.halfOpenUnreachable == 16)
        #expect(p.tcp.allConnections.count == 1)
        // The queue has room again: no cookie for the next client.
        _ = try clientSYN(p, sourcePort: 40001, options: TCPOptions(mss: 1460))
        #expect(l.halfOpen == 1 && p.tcp.counters.synCookiesSent == 285)
    }
}

/// Two stacks: B's listener flooded, A's client through a cookie, a lossy
/// link, 1 MiB each way hashed.
@Suite struct SYNCookieStackToStackTests {
    @Test func clientThroughACookieMovesDataBothWaysWithScalingAndSACK() throws {
        let loss = FaultProfile(loss: 0.02)
        let pair = FaultyStackPair(bReceive: loss, bTransmit: loss, seed: 11)
        let listener = try pair.b.tcp.listen(port: 80, synBacklog: 32)
        // 200 spoofed SYNs from the link's silent addresses, straight onto B's wire.
        for k in 0..<200 {
            guard var frame = pair.pool.allocate() else {
                Issue.record("pool exhausted")
                return
            }
            let bytes = spoofedSYN(k)
            frame.setLength(bytes.count)
            frame.withBytes { b in bytes.withUnsafeBytes { b.copyMemory(from: $0) } }
            pair.linkA.transmit(frame)
        }
        _ = pair.b.poll(now: pair.now, limit: .max)
        #expect(listener.halfOpen == 32)
        let cookiesBefore = pair.b.tcp.counters.synCookiesSent
        #expect(cookiesBefore > 150, "most of the flood got cookies (some SYNs were lost)")

        let client = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: 80, now: pair.now)
        var server: TCPConnection?
        let size = 1 << 20
        let aToB = BulkTransfer(length: size, seed: 21), bToA = BulkTransfer(length: size, seed: 22)
        let done = pair.run(maxRounds: 2_000_000, until: {
            aToB.read == size && bToA.read == size && client.isReadClosed && server?.isReadClosed == true
        }, app: {
            if server == nil { server = listener.accept() }
            var moved = aToB.pump(into: client)
            moved = bToA.drain(from: client) || moved
            if let s = server {
                moved = bToA.pump(into: s) || moved
                moved = aToB.drain(from: s) || moved
            }
            return moved
        })
        #expect(done)
        let s = try #require(server)
        #expect(pair.b.tcp.counters.synCookiesValidated == 1, "the client came in through a cookie")
        #expect(aToB.receivedHash.value == aToB.sentHash.value && bToA.receivedHash.value == bToA.sentHash.value)
        #expect(s.sndScale == client.rcvScale && s.rcvScale == client.sndScale && s.sndScale == 3)
        #expect(s.sackEnabled && client.sackEnabled && s.timestampsEnabled)
        // Windows beyond 64 KiB were used, which only scaling allows.
        #expect(s.sender.maxSndWnd > 65535 && client.sender.maxSndWnd > 65535)
        // Losses were repaired, with SACK, both ways.
        #expect(s.segmentsRetransmitted > 0 && client.segmentsRetransmitted > 0)
        #expect(s.error == nil && client.error == nil)
    }

    /// A SYN from 10.0.0.(10 + k % 200), port 2000 + k, to B's port 80.
    func spoofedSYN(_ k: Int) -> [UInt8] {
        let source = IPv4Address(10, 0, 0, UInt8(10 + k % 200))
        let repr = TCPRepr(sourcePort: UInt16(2000 + k), destinationPort: 80, seq: SequenceNumber(UInt32(k) &* 7919),
                           ack: nil, flags: .syn, window: 65535, options: TCPOptions(mss: 1460), payloadLength: 0)
        var segment = [UInt8](repeating: 0, count: repr.headerLength)
        segment.withUnsafeMutableBytes { repr.emit(into: $0, source: source, destination: TCPStackPair.ipB) }
        let ip = FrameBuilder.ipv4(source: source, destination: TCPStackPair.ipB, protocol: .tcp, payload: segment)
        return FrameBuilder.ethernet(destination: InterfaceConfiguration.defaultMAC(for: TCPStackPair.ipB),
                                     source: MACAddress(0x02, 0, 0, 0, 0, 0x99), etherType: .ipv4, payload: ip)
    }
}
