import Foundation
import Testing
@testable import NetStack
@testable import NetStackApps
import NetStackWire

/// The services' idle timeouts (`TCPConnection.idleTimeout`) on the virtual
/// clock: a client that goes silent, or vanishes, leaves no connection behind
/// on the server; one that keeps making progress is never cut off.
@Suite(.serialized) struct ServiceIdleTimeoutTests {
    /// Frames reaching A are thrown away unread and A's timers never run: the
    /// client host vanished (its peer sees only silence).
    static func vanish(_ a: Interface<MemoryLink>) {
        _ = a.device.receive(limit: .max) { _ in }
    }

    // MARK: The connection's timeout

    @Test func progressPostponesTheIdleTimeoutAndSilenceEndsIt() throws {
        let (pair, client, server) = try TCPServiceTests.established()
        let s = try #require(server)
        var idleAt: Instant?
        s.onReadable = { c in _ = c.skip(c.readableBytes) }
        s.onIdle = { c in
            idleAt = pair.now
            c.close()
        }
        s.idleTimeout = .seconds(10)
        // A byte every 4 s for 40 s: in-order data is progress.
        let start = pair.now
        for i in 1...10 {
            pair.run(until: { pair.now >= start + .seconds(4 * i) })
            #expect(client.write([UInt8(i)]) == 1)
        }
        pair.run(until: { s.bytesReceived == 10 })
        #expect(idleAt == nil && s.state == .established)
        let lastByte = s.lastProgress
        // Then silence (the client's stack still answers, its application is quiet).
        pair.run(until: { idleAt != nil })
        let fired = try #require(idleAt)
        #expect(fired >= lastByte + .seconds(10) && fired < lastByte + .seconds(10) + .milliseconds(10))
        // The stack's close: a FIN, which the client's stack acknowledges.
        pair.run(until: { client.receivedFin })
    }

    @Test func withoutAHandlerTheConnectionIsClosed() throws {
        let (pair, client, server) = try TCPServiceTests.established()
        let s = try #require(server)
        s.idleTimeout = .seconds(3)
        let since = s.lastProgress
        pair.run(until: { client.receivedFin })
        #expect(pair.now >= since + .seconds(3) && pair.now < since + .seconds(3) + .milliseconds(10))
        #expect(s.state == .finWait1 || s.state == .finWait2)
    }

    // MARK: HTTP

    @Test func anIdleKeepAliveConnectionIsClosedAfterSixtySeconds() throws {
        let rig = try HTTPRig()
        #expect(rig.server.configuration.idleTimeout == .seconds(60))
        let quiet = try rig.connect()
        let busy = try rig.connect()
        #expect(rig.run { quiet.connection.state == .established && busy.connection.state == .established })
        rig.send(quiet, "GET /bytes/1000 HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(rig.run { quiet.received.count >= 1000 })
        let opened = rig.clock.now
        // The busy client asks every 20 s for 150 s: never idle 60 s.
        var asked = 0
        rig.onTurn.append { now in
            guard now >= opened + .seconds(20 * (asked + 1)), asked < 7 else { return }
            asked += 1
            rig.send(busy, "GET /bytes/100 HTTP/1.1\r\nHost: x\r\n\r\n")
        }
        #expect(rig.run(limit: .seconds(59)) { quiet.connection.receivedFin } == false)
        #expect(rig.run(limit: .seconds(2)) { quiet.connection.receivedFin })
        // Closed with a FIN (no reset), and the server's side leaves the table.
        #expect(quiet.connection.error == nil)
        quiet.connection.close()
        #expect(rig.run(limit: .seconds(100)) { asked == 7 && splitResponses(busy.received).count == 7 })
        #expect(busy.connection.state == .established && !busy.connection.receivedFin)
        #expect(splitResponses(busy.received).count == 7)
        #expect(rig.b.tcp.allConnections.count == 1)
        #expect(rig.server.counters.idleTimeouts == 1)
        // Then the busy one falls quiet too.
        #expect(rig.run(limit: .seconds(62)) { busy.connection.receivedFin })
        busy.connection.close()
        #expect(rig.run(limit: .seconds(5)) { rig.b.tcp.allConnections.isEmpty })
        #expect(rig.b.tcp.counters.connectionsReset == 0)
    }

    @Test func aClientThatVanishesMidResponseIsResetAndRetired() throws {
        let rig = try HTTPRig()
        let client = try rig.connect()
        #expect(rig.run { client.connection.state == .established })
        rig.send(client, "GET /bytes/100000000 HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(rig.run { client.received.count > 100_000 })
        // The client's host is gone: nothing it was sent is acknowledged.
        let gone = rig.clock.now
        let end = gone + .seconds(90)
        while rig.clock.now < end && !rig.b.tcp.allConnections.isEmpty {
            Self.vanish(rig.a)
            _ = rig.b.poll(now: rig.clock.now)
            rig.b.tick(now: rig.clock.now)
            rig.clock.advance(by: .milliseconds(5))
        }
        #expect(rig.b.tcp.allConnections.isEmpty)
        // Gone a little after the 60 s since the last data the client acknowledged.
        #expect(rig.clock.now >= gone + .seconds(59) && rig.clock.now < gone + .seconds(61))
        #expect(rig.server.counters.idleTimeouts == 1)
        #expect(rig.b.tcp.counters.connectionsClosed + rig.b.tcp.counters.connectionsReset == 1)
    }

    // MARK: iperf3

    @Test func aControlConnectionThatGoesQuietIsAbortedAndTheServerFreed() throws {
        let rig = try IPerf3Rig()
        rig.server.idleTimeout = .seconds(5)
        let silent = try rig.client()
        silent.sendCookie()
        #expect(rig.run { silent.controlIn == [IPerf3.State.paramExchange.byte] })
        let quietSince = rig.clock.now
        // Never sends its parameters.
        #expect(rig.run(limit: .seconds(10)) { rig.server.test == nil })
        #expect(rig.clock.now >= quietSince + .milliseconds(4995))
        #expect(rig.run { silent.control.state == .closed })
        #expect(silent.control.error == .connectionReset)
        #expect(rig.run { rig.b.tcp.allConnections.isEmpty })
        #expect(rig.server.counters.timeouts == 1 && rig.server.counters.aborted == 1)
        // The next client runs a whole test.
        let next = try rig.client()
        _ = try next.runTest(parallel: 1, reverse: false, duration: .milliseconds(100))
        #expect(rig.run { rig.server.counters.completed == 1 })
        withExtendedLifetime(next) {}
    }

    @Test func aStreamThatNeverSendsItsCookieIsReset() throws {
        let rig = try IPerf3Rig()
        rig.server.idleTimeout = .seconds(3)
        let c = try rig.client()
        c.sendCookie()
        try c.expect([.paramExchange])
        c.sendJSON(#"{"tcp":true,"time":1,"parallel":2,"len":16384,"client_version":"3.12"}"#)
        try c.expect([.createStreams])
        let s = try rig.a.tcp.connect(to: IPerf3Rig.ipB, port: 5201, now: rig.clock.now)
        #expect(rig.run { s.state == .established })
        // Neither the stream's cookie nor anything on the control connection.
        #expect(rig.run(limit: .seconds(5)) { s.state == .closed && c.control.state == .closed })
        #expect(rig.server.test == nil && rig.server.counters.timeouts >= 1)
        #expect(rig.run { rig.b.tcp.allConnections.isEmpty })
    }

    @Test(arguments: [false, true])
    func aRunningTestWhoseClientVanishesIsAbortedAfterTheReceiveTimeout(reverse: Bool) throws {
        let rig = try IPerf3Rig()
        // Short timeouts, so that the bulk data before them stays cheap in a debug build.
        rig.server.idleTimeout = .milliseconds(50)
        rig.server.receiveTimeout = .milliseconds(100)
        let c = try rig.client()
        try c.start(parallel: 2, reverse: reverse)
        // A test that runs longer than both timeouts is not cut short: the
        // control connection is quiet while the streams make progress.
        rig.run(limit: .milliseconds(250)) { false }
        #expect(rig.server.test != nil && rig.server.counters.timeouts == 0)
        #expect(rig.b.tcp.allConnections.count == 3)
        // Then the client's host vanishes.
        c.sending = false
        rig.onTurn = []
        let gone = rig.clock.now
        while rig.clock.now < gone + .seconds(2) && !rig.b.tcp.allConnections.isEmpty {
            Self.vanish(rig.a)
            _ = rig.b.poll(now: rig.clock.now)
            rig.b.tick(now: rig.clock.now)
            rig.clock.advance(by: .milliseconds(1))
        }
        #expect(rig.b.tcp.allConnections.isEmpty)
        #expect(rig.clock.now >= gone + .milliseconds(90) && rig.clock.now < gone + .milliseconds(200), "\(rig.clock.now - gone)")
        #expect(rig.server.test == nil)
        #expect(rig.server.counters.timeouts == 1 && rig.server.counters.aborted == 1)
    }

    @Test func aTestRunsToItsEndPastTheTimeouts() throws {
        let rig = try IPerf3Rig()
        rig.server.idleTimeout = .milliseconds(50)
        rig.server.receiveTimeout = .milliseconds(50)
        let client = try rig.client()
        defer { withExtendedLifetime(client) {} }
        let results = try client.runTest(parallel: 1, reverse: true, duration: .milliseconds(250))
        let streams = try #require(results["streams"] as? [[String: Any]])
        #expect(((streams.first?["bytes"] as? NSNumber)?.uint64Value ?? 0) > 0)
        #expect(rig.run { rig.server.counters.completed == 1 })
        #expect(rig.server.counters.timeouts == 0)
    }

    // MARK: Echo, discard, chargen

    @Test func echoClosesASilentConnectionAndKeepsAnActiveOne() throws {
        let pair = TCPStackPair()
        try TCPEchoService.install(on: pair.stackB, port: 7, idleTimeout: .seconds(30))
        let quiet = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: 7, now: pair.now)
        let active = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: 7, now: pair.now)
        pair.run(until: { quiet.state == .established && active.state == .established })
        let start = pair.now
        var echoed: [UInt8] = []
        active.onReadable = { c in c.read(appendingTo: &echoed) }
        for i in 1...9 {
            pair.run(until: { pair.now >= start + .seconds(10 * i) })
            #expect(active.write([UInt8(i)]) == 1)
        }
        pair.run(until: { echoed.count == 9 })
        #expect(echoed == Array(1...9))
        #expect(quiet.receivedFin && quiet.error == nil)
        #expect(!active.receivedFin && active.state == .established)
        quiet.close()
        pair.run(until: { pair.b.tcp.allConnections.count == 1 })
        #expect(pair.b.tcp.allConnections.first?.tuple.remotePort == active.tuple.localPort)
    }

    @Test func discardClosesASilentConnection() throws {
        let pair = TCPStackPair()
        try TCPDiscardService.install(on: pair.stackB, port: 9, idleTimeout: .seconds(20))
        let c = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: 9, now: pair.now)
        pair.run(until: { c.state == .established })
        #expect(c.write(Array("some bytes".utf8)) == 10)
        pair.run(until: { c.receivedFin })
        c.close()
        pair.run(until: { pair.b.tcp.allConnections.isEmpty })
        #expect(pair.b.tcp.counters.connectionsReset == 0)
    }

    @Test func chargenResetsAReaderThatStopped() throws {
        let pair = TCPStackPair()
        try TCPChargenService.install(on: pair.stackB, port: 19, idleTimeout: .seconds(20))
        let opened = pair.now
        let c = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: 19, now: pair.now)
        // Never read: the window closes and chargen's data stops moving.
        pair.run(until: { c.state == .established })
        pair.run(until: { c.state == .closed })
        #expect(c.error == .connectionReset)
        #expect(c.readableBytes == 0 || c.state == .closed)
        pair.run(until: { pair.b.tcp.allConnections.isEmpty })
        #expect(pair.now >= opened + .seconds(20))
    }

    @Test func serviceOptionsOverrideTheDefaults() {
        #expect(ServiceOptions().idleTimeout(.seconds(60)) == .seconds(60))
        #expect(ServiceOptions(idleTimeoutOverride: .seconds(5)).idleTimeout(.seconds(60)) == .seconds(5))
        #expect(ServiceOptions(idleTimeoutOverride: .zero).idleTimeout(.seconds(60)) == nil)
    }
}
