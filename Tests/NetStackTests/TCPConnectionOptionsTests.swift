import Testing
@testable import NetStack

/// Settings changed on an open connection (`TCPConnection+Options`), as the
/// preload library's setsockopt after connect or accept changes them.
@Suite struct TCPConnectionOptionsTests {
    let iss = TCPHarness.defaultISS

    @Test func keepaliveTurnedOnWhileOpenProbesAnIdleTimeLater() {
        let h = TCPHarness.established()
        h.advance(by: .seconds(100))
        let t = h.now
        h.connection.setKeepalive(TCPConfiguration.Keepalive(idle: .seconds(5), interval: .seconds(1), probes: 2),
                                  now: t)
        let out = h.advance(by: .seconds(10))
        let probes = out.filter { !$0.flags.contains(.rst) }
        // The idle time counts from the setting, not from the last segment.
        #expect(probes.map { $0.time - t } == [.seconds(5), .seconds(6)])
        #expect(probes.allSatisfy { $0.seq == iss && $0.payload.isEmpty })
        #expect(h.connection.state == .closed)
        #expect(h.connection.error == .timedOut)
    }

    @Test func keepaliveTurnedOffStopsTheProbes() {
        var config = TCPConfiguration()
        config.keepalive = TCPConfiguration.Keepalive(idle: .seconds(10), interval: .seconds(1), probes: 3)
        let h = TCPHarness.established(configuration: config)
        #expect(h.advance(by: .seconds(10)).count == 1)
        h.connection.setKeepalive(nil, now: h.now)
        #expect(h.advance(by: .seconds(3600)).isEmpty)
        #expect(h.connection.state == .established)
        #expect(h.connection.keepalive == nil)
    }

    @Test func noDelayChangesWhileOpen() {
        let h = TCPHarness.established()
        #expect(!h.connection.noDelay)
        h.connection.noDelay = true
        #expect(h.connection.noDelay)
        h.connection.noDelay = false
        #expect(!h.connection.noDelay)
    }
}
