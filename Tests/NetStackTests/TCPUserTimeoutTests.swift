import Testing
@testable import NetStack
import NetStackWire

/// RFC 5482's user timeout (TCP_USER_TIMEOUT, as Linux applies it): how long
/// sent data may go unacknowledged, and how long keepalive waits for a peer
/// that stopped answering, before the connection gives up.
///
/// The peer has no timestamps and a 100 ms handshake RTT, so the first
/// data RTO is 300 ms, then 600, 1200, 2400 ms apart (RFC 6298 2.2, 5.5).
@Suite struct TCPUserTimeoutTests {
    let iss = TCPHarness.defaultISS

    func connection(userTimeout: Duration?, retries: Int = 15,
                    keepalive: TCPConfiguration.Keepalive? = nil) -> TCPHarness {
        var config = TCPConfiguration()
        config.userTimeout = userTimeout
        config.maxRetransmissions = retries
        config.keepalive = keepalive
        return TCPHarness.established(configuration: config, synOptions: TCPOptions(mss: 1460, windowScale: 7),
                                      rtt: .milliseconds(100))
    }

    /// A connection whose peer shut its window, with 1000 bytes written behind it.
    func dataBehindAShutWindow(userTimeout: Duration) -> TCPHarness {
        let h = connection(userTimeout: userTimeout)
        h.peerWindow = 0
        h.receive(.ack)
        h.write(testBytes(1000))
        return h
    }

    /// 100 bytes written and never acknowledged: when each segment after the
    /// first send left over `span`, counted from that send.
    func unanswered(_ h: TCPHarness, for span: Duration) -> [(at: Duration, segment: SentSegment)] {
        h.write(testBytes(100))
        let t = h.now
        _ = h.drain()
        return h.advance(by: span).map { ($0.time - t, $0) }
    }

    @Test func unacknowledgedDataGivesUpAtTheUserTimeoutNotTheRetryLimit() {
        let h = connection(userTimeout: .seconds(2))
        let out = unanswered(h, for: .seconds(10))
        // Resent at 0.3 and 0.9 s; the next RTO (2.1 s) is brought forward to
        // the user timeout's end, 2 s after the first send, which gives up.
        #expect(out.filter { !$0.segment.payload.isEmpty }.map(\.at) == [.milliseconds(300), .milliseconds(900)])
        #expect(h.connection.state == .closed && h.connection.error == .timedOut)
        #expect(out.last?.segment.flags.contains(.rst) == true && out.last?.at == .seconds(2))
    }

    @Test func theFirstTimeoutResendsEvenPastTheUserTimeout() {
        let h = connection(userTimeout: .milliseconds(100))
        let out = unanswered(h, for: .seconds(1))
        // As Linux: the first RTO (300 ms) resends; the clamped next one gives up at once.
        #expect(out.filter { !$0.segment.payload.isEmpty }.map(\.at) == [.milliseconds(300)])
        #expect(h.connection.error == .timedOut && out.last?.at == .milliseconds(300))
    }

    @Test func anAcknowledgementStartsTheCountAgain() {
        let h = connection(userTimeout: .seconds(2))
        _ = unanswered(h, for: .milliseconds(1500))
        h.receive(.ack, ack: iss + 101)
        let out = unanswered(h, for: .seconds(10))
        // The new data's first send (at 1.5 s) starts a new 2 s: it gives up 2 s later.
        #expect(h.connection.error == .timedOut && out.last?.at == .seconds(2))
    }

    @Test func withoutAUserTimeoutTheRetryLimitDecides() {
        let h = connection(userTimeout: nil, retries: 3)
        let out = unanswered(h, for: .seconds(10))
        #expect(h.connection.error == .timedOut && out.last?.at == .milliseconds(4500))
    }

    @Test func keepaliveGivesUpAfterTheUserTimeoutOfSilenceNotAfterItsProbes() {
        // Probes every second after 10 s idle; 9 of them would take until 19 s.
        let k = TCPConfiguration.Keepalive(idle: .seconds(10), interval: .seconds(1), probes: 9)
        let h = connection(userTimeout: .seconds(12), keepalive: k)
        let t = h.now
        let out = h.advance(by: .seconds(30))
        let probes = out.filter { !$0.flags.contains(.rst) }
        // Silent since 0: probes at 10 and 11 s; the timer at 12 s finds 12 s of silence.
        #expect(probes.map { $0.time - t } == [.seconds(10), .seconds(11)])
        #expect(h.connection.error == .timedOut)
        #expect(out.last?.flags.contains(.rst) == true && out.last.map { $0.time - t } == .seconds(12))
    }

    /// As Linux (tcp_probe_timer): a peer that answers every window probe
    /// with a zero window is given up on a user timeout after the first probe.
    @Test func aWindowKeptShutGivesUpAfterTheUserTimeout() {
        let h = dataBehindAShutWindow(userTimeout: .seconds(1))
        let t = h.now
        var probes: [Duration] = []
        for step in [Duration.milliseconds(300), .milliseconds(600)] {
            probes += h.advance(by: step).map { $0.time - t }
            h.receive(.ack)  // still shut
        }
        let out = h.advance(by: .seconds(2))
        // Probes at 0.3 and 0.9 s; the first at 0.3 s starts the second that ends at 1.3 s.
        #expect(probes == [.milliseconds(300), .milliseconds(900)])
        #expect(h.connection.error == .timedOut)
        #expect(out.last?.flags.contains(.rst) == true && out.last.map { $0.time - t } == .milliseconds(1300))
    }

    @Test func aWindowThatOpensStopsTheCount() {
        let h = dataBehindAShutWindow(userTimeout: .seconds(1))
        _ = h.advance(by: .milliseconds(300))  // the first probe
        h.peerWindow = 65535
        h.receive(.ack)  // the window opens: the data goes, and is acknowledged
        h.receive(.ack, ack: iss + 1001)
        _ = h.advance(by: .seconds(5))
        #expect(h.connection.state == .established)
    }
}
