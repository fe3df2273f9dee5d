import Testing
@testable import NetStack
@testable import NetStackApps
import NetStackWire

/// Keepalive (RFC 1122 4.2.3.6, Linux's tcp_keepalive_* semantics) and the
/// orphaned FIN-WAIT-2 limit.
@Suite struct TCPKeepaliveTests {
    let iss = TCPHarness.defaultISS
    let peerISS = TCPHarness.defaultPeerISS

    static func keepaliveConfiguration() -> TCPConfiguration {
        var config = TCPConfiguration()
        config.keepalive = TCPConfiguration.Keepalive(idle: .seconds(10), interval: .seconds(1), probes: 3)
        return config
    }

    @Test func noProbesUnlessConfigured() {
        let h = TCPHarness.established()
        #expect(h.advance(by: .seconds(3 * 3600)).isEmpty)
        #expect(h.connection.state == .established)
    }

    @Test func probesStartAfterTheIdleTime() {
        let h = TCPHarness.established(configuration: Self.keepaliveConfiguration())
        let t = h.now
        #expect(h.advance(by: .seconds(10) - .milliseconds(1)).isEmpty)
        let out = h.advance(by: .milliseconds(1))
        #expect(out.count == 1)
        // RFC 1122 4.2.3.6: a segment with SEG.SEQ = SND.NXT - 1, which the peer must ACK.
        #expect(out.first?.seq == iss)
        #expect(out.first?.flags == .ack)
        #expect(out.first?.payload.isEmpty == true)
        #expect(out.first.map { $0.time - t } == .seconds(10))
    }

    @Test func probesStartAfterTheIdleTimeOnAnActiveOpen() {
        let h = TCPHarness.establishedActive(configuration: Self.keepaliveConfiguration())
        let t = h.now
        let out = h.advance(by: .seconds(11) - .milliseconds(1))
        #expect(out.count == 1)
        #expect(out.first?.seq == iss)
        #expect(out.first.map { $0.time - t } == .seconds(10))
    }

    @Test func unansweredProbesTimeTheConnectionOut() {
        let h = TCPHarness.established(configuration: Self.keepaliveConfiguration())
        let t = h.now
        let out = h.advance(by: .seconds(20))
        let probes = out.filter { !$0.flags.contains(.rst) }
        // Probes at 10, 11 and 12 s; after the third goes unanswered for an interval, give up.
        #expect(probes.map { $0.time - t } == [.seconds(10), .seconds(11), .seconds(12)])
        #expect(h.connection.state == .closed)
        #expect(h.connection.error == .timedOut)
        #expect(out.last?.flags.contains(.rst) == true)
        #expect(out.last.map { $0.time - t } == .seconds(13))
    }

    @Test func answeredProbeRestartsTheIdleTimer() {
        let h = TCPHarness.established(configuration: Self.keepaliveConfiguration())
        let t = h.now
        #expect(h.advance(by: .seconds(10)).count == 1)
        h.receive(.ack)
        let out = h.advance(by: .milliseconds(10_500))
        // The next probe comes a full idle time after the answer.
        #expect(out.map { $0.time - t } == [.seconds(20)])
        #expect(h.connection.state == .established)
    }

    @Test func trafficPostponesTheProbes() {
        let h = TCPHarness.established(configuration: Self.keepaliveConfiguration())
        let t = h.now
        h.advance(by: .seconds(5))
        h.receive(.ack, payload: testBytes(10))
        _ = h.read()
        let out = h.advance(by: .seconds(14)).filter(\.payload.isEmpty).filter { $0.seq == iss }
        #expect(out.first.map { $0.time - t } == .seconds(15))
    }

    @Test func orphanedFinWait2GivesUpAfterTheTimeout() {
        var config = TCPConfiguration()
        config.finWait2Timeout = .seconds(60)
        let h = TCPHarness.established(configuration: config)
        h.close()
        h.receive(.ack, ack: iss + 2)
        #expect(h.connection.state == .finWait2)
        h.advance(by: .seconds(60) - .milliseconds(1))
        #expect(h.connection.state == .finWait2)
        h.advance(by: .milliseconds(1))
        #expect(h.connection.state == .closed)
    }

    @Test func halfClosedFinWait2WaitsForThePeer() {
        let h = TCPHarness.established()
        h.shutdownWrite()
        h.receive(.ack, ack: iss + 2)
        h.advance(by: .seconds(600))
        // The application still reads: RFC 9293 leaves FIN-WAIT-2 open until the peer's FIN.
        #expect(h.connection.state == .finWait2)
        h.receive([.fin, .ack], ack: iss + 2, payload: testBytes(5))
        #expect(h.read() == testBytes(5))
        #expect(h.connection.state == .timeWait)
    }

    // MARK: Peerless connections and orphans

    /// A listener with keepalive on (as `netstack up --keepalive 60,5,4`):
    /// once the client's host vanishes, the server's ESTABLISHED connection
    /// probes 4 times, 5 s apart, after 60 s idle, is reset and leaves the
    /// table at idle + count x interval.
    @Test func aPeerlessConnectionIsRetiredAfterIdlePlusCountIntervals() throws {
        let pair = TCPStackPair()
        var config = TCPConfiguration()
        config.keepalive = try #require(TCPConfiguration.Keepalive(spec: "60,5,4"))
        let listener = try pair.b.tcp.listen(port: 7, configuration: config)
        let client = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: 7, now: pair.now)
        var server: TCPConnection?
        pair.run(until: { client.state == .established && server != nil },
                 app: { if server == nil { server = listener.accept() }; return false })
        let s = try #require(server)
        // A live but quiet peer answers the probes: still there after three idle periods.
        pair.run(until: { pair.now >= s.lastProgress + .seconds(200) })
        #expect(s.state == .established && pair.b.tcp.allConnections.count == 1)
        let outBefore = pair.b.tcp.counters.segmentsOut
        // Then the client's host vanishes.
        let quietSince = pair.now
        var seen = 0
        while pair.b.tcp.allConnections.count == 1 && pair.now < quietSince + .seconds(400) {
            seen += pair.linkA.pending
            _ = pair.a.device.receive(limit: .max) { _ in }
            _ = pair.b.poll(now: pair.now)
            pair.b.tick(now: pair.now)
            pair.clock.advance(by: .milliseconds(100))
        }
        #expect(pair.b.tcp.allConnections.isEmpty)
        #expect(s.state == .closed && s.error == .timedOut)
        #expect(pair.b.tcp.counters.connectionsTimedOut == 1)
        // The last answered probe was at most one idle time before the host
        // vanished; then 60 s idle, 4 probes 5 s apart, the reset 5 s after the last.
 #expect(pair.now > quietSince + .seconds(20) && pair.now <= quietSince + .seconds(80) + .milliseconds(100))
        // Probes and the reset reached the wire (4 probes and a RST, maybe a probe begun before).
        #expect(pair.b.tcp.counters.segmentsOut - outBefore >= 5)
        #expect(seen >= 5)
    }

    @Test func keepaliveSpecsParseAsLinuxNamesThem() {
        let d = TCPConfiguration.Keepalive(spec: "600")
        #expect(d?.idle == .seconds(600) && d?.interval == .seconds(75) && d?.probes == 9)
        let all = TCPConfiguration.Keepalive(spec: "30,2.5,3")
        #expect(all?.idle == .seconds(30) && all?.interval == .milliseconds(2500) && all?.probes == 3)
        for bad in ["", "0", "-1", "x", "10,", "10,0", "10,1,0", "10,1,128", "10,1,2,3", "40000", "nan"] {
            #expect(TCPConfiguration.Keepalive(spec: bad) == nil, "\(bad)")
        }
    }

    /// Linux's tcp_orphan_retries: a connection its application closed gives
    /// up after 8 retransmissions of its data and FIN, not 15.
    @Test func anOrphanGivesUpAfterFewerRetransmissions() {
        let h = TCPHarness.established()
        h.write(testBytes(100))
        h.close()
        _ = h.drain()
        let out = h.advance(by: .seconds(3600))
        #expect(out.contains { !$0.payload.isEmpty })
        #expect(h.connection.retransmissionTimeouts == 8)
        #expect(h.connection.state == .closed && h.connection.error == .timedOut)
        #expect(out.last?.flags.contains(.rst) == true)

        // Only half-closed, its application still reading: the full 15.
        let kept = TCPHarness.established()
        kept.write(testBytes(100))
        kept.shutdownWrite()
        _ = kept.drain()
        let keptOut = kept.advance(by: .seconds(3 * 3600))
        #expect(keptOut.last?.flags.contains(.rst) == true)
        #expect(kept.connection.retransmissionTimeouts == 15)
        #expect(kept.connection.state == .closed)
    }
}

extension TCPKeepaliveTests {
    /// Linux's tcp_keepalive_timer: with data in flight the retransmission
    /// timer watches the peer, so no keepalive probe goes; the RTO's resends
    /// and its give-up rule take over.
    @Test func noProbeWhileDataIsInFlight() {
        let h = TCPHarness.established(configuration: Self.keepaliveConfiguration())
        h.write(testBytes(100))
        let first = h.drain()
        #expect(first.count == 1 && first.first?.payload.count == 100)
        let out = h.advance(by: .seconds(15))
        // Only resends of the data (RTO backoff: 1, 2, 4, 8 s), no bare probe at SND.UNA - 1.
        #expect(!out.isEmpty)
        #expect(out.allSatisfy { $0.payload.count == 100 && $0.seq == self.iss + 1 }, "\(out)")
        #expect(h.connection.state == .established)
    }
}
