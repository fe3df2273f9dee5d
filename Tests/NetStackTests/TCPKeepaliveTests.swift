import Testing
@testable import NetStack
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
}
