import Testing
@testable import NetStack
import NetStackWire

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

    /// TCP_CORK (Linux's TCP_NAGLE_CORK): full segments go, a partial one
    /// waits even with nothing in flight, until the cork comes out.
    @Test func aCorkHoldsPartialSegmentsUntilItComesOut() {
        let h = TCPHarness.established()
        h.connection.corked = true
        let mss = h.connection.sendMSS
        h.write(testBytes(mss + 100))
        let first = h.drain()
        #expect(first.map(\.payload.count) == [mss])
        h.receive(.ack, ack: iss + (1 + mss))
        #expect(h.drain().isEmpty)  // all acknowledged, and still the 100 bytes wait
        h.write(testBytes(50, seed: 1))
        #expect(h.drain().isEmpty)
        h.connection.corked = false
        h.dispatch()
        let rest = h.drain()
        #expect(rest.map(\.payload.count) == [150])
    }

    /// tcp(7): a cork holds data at most 200 ms.
    @Test func corkedDataLeavesAfterTheCeiling() {
        let h = TCPHarness.established()
        h.connection.corked = true
        let t = h.now
        h.write(testBytes(100))
        let out = h.advance(by: .milliseconds(400))  // the first RTO, 300 ms on, comes after
        #expect(out.map { $0.time - t } == [.milliseconds(200)])
        #expect(out.first?.payload == testBytes(100))
        #expect(h.connection.corked)
    }

    @Test func closingACorkedConnectionSendsWhatWaitedWithTheFIN() {
        let h = TCPHarness.established()
        h.connection.corked = true
        h.write(testBytes(100))
        #expect(h.drain().isEmpty)
        h.shutdownWrite()
        let out = h.drain()
        #expect(out.count == 1 && out.first?.payload.count == 100 && out.first?.flags.contains(.fin) == true)
    }
}
