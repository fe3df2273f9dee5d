import Foundation
import Testing
@testable import NetStack
@testable import NetStackApps
import NetStackWire

/// The services let go of everything when they stop or the stack goes away:
/// weak references to the servers, their sessions and streams, and their
/// connections are all nil at the end. Each of these held a reference
/// cycle once (LeakSanitizer): a server and its listener's `onAccept`, an
/// iperf3 stream and its connection's callbacks.
///
/// Failures are checked as plain Booleans: Swift Testing reflects the
/// operands of a failed expectation, and walking a stack's object graph
/// that way can crash.
@Suite(.serialized) struct ServerTeardownTests {
    /// A weak reference, to keep in arrays.
    struct Weak<T: AnyObject> {
        weak var object: T?
        init(_ object: T) { self.object = object }
    }

    static var shortMSL: TCPConfiguration {
        var tcp = TCPConfiguration()
        tcp.msl = .seconds(1)
        return tcp
    }

    @Test func aStoppedHTTPServerAndItsConnectionsAreFreed() throws {
        let rig = try HTTPRig()
        var server: HTTPServer? = try HTTPServer.install(on: rig.stacks.stackB, port: 8080,
                                                          configuration: HTTPServer.Configuration(tcp: Self.shortMSL))
        weak let weakServer = server
        // One connection in the middle of a long body, one idle after its response (keep-alive).
        func connect() throws -> HTTPRig.RawClient {
            HTTPRig.RawClient(try rig.a.tcp.connect(to: HTTPRig.ipB, port: 8080, now: rig.clock.now))
        }
        let busy = try connect(), idle = try connect()
        rig.send(busy, "GET /bytes/100000000 HTTP/1.1\r\nHost: b\r\n\r\n")
        rig.send(idle, "GET /bytes/10 HTTP/1.1\r\nHost: b\r\n\r\n")
        #expect(rig.run { busy.received.count > 1_000_000 && idle.received.count > 10 })
        let connections = rig.b.tcp.allConnections.filter { $0.tuple.localPort == 8080 }.map(Weak.init)
        let sessions = try #require(server?.sessions.values.map(Weak.init))
        #expect(connections.count == 2 && sessions.count == 2)

        server?.stop()
        server = nil
        // Both get a FIN after what was queued; a new connection is refused.
        #expect(rig.run { busy.connection.receivedFin && idle.connection.receivedFin })
        #expect(busy.connection.error == nil && idle.connection.error == nil)
        #expect(busy.received.count < 100_000_000)
        let late = try connect()
        #expect(rig.run { late.connection.state == .closed })
        #expect(late.connection.error == .connectionRefused)

        busy.connection.close()
        idle.connection.close()
        // TIME-WAIT on B (it closed first) lasts 2 MSL; then nothing of the server is left.
        #expect(rig.run { !rig.b.tcp.allConnections.contains { $0.tuple.localPort == 8080 } })
        rig.b.poll(now: rig.clock.now)
        let serverFreed = weakServer == nil
        #expect(serverFreed)
        let sessionsFreed = sessions.allSatisfy { $0.object == nil }
        #expect(sessionsFreed)
        let connectionsFreed = connections.allSatisfy { $0.object == nil }
        #expect(connectionsFreed)
    }

    @Test func aStoppedIPerf3ServerItsTestAndItsStreamsAreFreed() throws {
        let rig = try IPerf3Rig(configure: { $0.msl = .seconds(1) })
        let client = try rig.client()
        try client.start(parallel: 2, reverse: true)
        #expect(rig.run { client.received.allSatisfy { $0 > 100_000 } })
        // Weak references only: a strong one here would keep them alive.
        weak let weakServer = rig.server
        weak let weakSession = rig.server.test
        let streams = (rig.server.test?.streams ?? []).map(Weak.init)
        let connections = rig.b.tcp.allConnections.map(Weak.init)
        #expect(streams.count == 2 && connections.count == 3)

        rig.server.stop()
        rig.server = nil
        // As iperf3 -s on SIGTERM: SERVER_TERMINATE, then FINs.
        #expect(rig.run { client.controlIn.contains(IPerf3.State.serverTerminate.byte) })
        #expect(rig.run { client.control.receivedFin && client.streams.allSatisfy(\.receivedFin) })
        #expect((client.streams + [client.control]).allSatisfy { $0.error == nil })
        for c in client.streams + [client.control] { c.close() }
        #expect(rig.run { rig.b.tcp.allConnections.isEmpty })
        rig.b.poll(now: rig.clock.now)
        let serverFreed = weakServer == nil
        #expect(serverFreed)
        let sessionFreed = weakSession == nil
        #expect(sessionFreed)
        let streamsFreed = streams.allSatisfy { $0.object == nil }
        #expect(streamsFreed)
        let connectionsFreed = connections.allSatisfy { $0.object == nil }
        #expect(connectionsFreed)
    }

    @Test func aDataStreamWaitingForItsCookieWhenTheStackGoesAwayIsFreed() throws {
        weak var weakServer: IPerf3Server?
        weak var weakSession: IPerf3Session?
        weak var weakCandidate: IPerf3Session.Stream?
        weak var weakConnection: TCPConnection?
        do {
            let rig = try IPerf3Rig()
            let client = try rig.client()
            client.sendCookie()
            try client.expect([.paramExchange])
            client.sendJSON(#"{"tcp":true,"omit":0,"time":1,"num":0,"blockcount":0,"parallel":1,"len":16384,"pacing_timer":1000,"client_version":"3.12"}"#)
            try client.expect([.createStreams])
            // A data stream connects and never sends its cookie.
            _ = try rig.a.tcp.connect(to: IPerf3Rig.ipB, port: 5201, now: rig.clock.now)
            #expect(rig.run { rig.server.test?.candidates.count == 1 })
            weakServer = rig.server
            weakSession = rig.server.test
            weakCandidate = rig.server.test?.candidates.first
            weakConnection = rig.server.test?.candidates.first?.connection
            let pending = weakSession != nil && weakCandidate != nil && weakConnection != nil
            #expect(pending)
        }
        let serverFreed = weakServer == nil
        #expect(serverFreed)
        let sessionFreed = weakSession == nil
        #expect(sessionFreed)
        let candidateFreed = weakCandidate == nil
        #expect(candidateFreed)
        let connectionFreed = weakConnection == nil
        #expect(connectionFreed)
    }

    @Test func anAbortedIPerf3ClientAndItsConnectionsAreFreed() throws {
        let rig = try IPerf3Rig()
        var options = IPerf3Client.Options(server: IPerf3Rig.ipB)
        options.duration = .seconds(10)
        options.parallel = 2
        var client: IPerf3Client? = IPerf3Client(options: options, clock: rig.clock)
        try client?.start(on: rig.stacks.stackA)
        rig.onTurn = [{ [unowned rig] in client?.turn(now: rig.clock.now) }]
        #expect(rig.run { client?.phase == .running })
        let connections = rig.a.tcp.allConnections.map(Weak.init)
        #expect(connections.count == 3)

        client?.abort(reason: "interrupt")
        #expect(rig.run { client?.isFinished == true })
        weak let weakClient = client
        rig.onTurn = []
        client = nil
        rig.run { rig.a.tcp.allConnections.isEmpty }
        rig.a.poll(now: rig.clock.now)
        let clientFreed = weakClient == nil
        #expect(clientFreed)
        let connectionsFreed = connections.allSatisfy { $0.object == nil }
        #expect(connectionsFreed)
    }

    @Test func theStackGoingAwayFreesServersThatWereNeverStopped() throws {
        weak var weakHTTP: HTTPServer?
        weak var weakIPerf3: IPerf3Server?
        weak var weakLayer: TCPLayer?
        var connections: [Weak<TCPConnection>] = []
        do {
            let pair = TCPStackPair()
            // Installed and dropped: the listeners keep them serving.
            weakHTTP = try HTTPServer.install(on: pair.stackB, port: 80)
            weakIPerf3 = try IPerf3Server.install(on: pair.stackB, port: 5201)
            let client = try pair.a.tcp.connect(to: TCPStackPair.ipB, port: 80, now: pair.now)
            let request = Array("GET /bytes/100000000 HTTP/1.1\r\nHost: b\r\n\r\n".utf8)
            _ = request.withUnsafeBytes { client.write($0) }
            pair.run(until: { client.readableBytes > 100_000 })
            let serving = weakHTTP != nil && weakIPerf3 != nil
            #expect(serving)
            connections = pair.b.tcp.allConnections.map(Weak.init)
            #expect(connections.count == 1)
            weakLayer = pair.b.tcp
        }
        let layerFreed = weakLayer == nil
        #expect(layerFreed)
        let httpFreed = weakHTTP == nil
        #expect(httpFreed)
        let iperf3Freed = weakIPerf3 == nil
        #expect(iperf3Freed)
        let connectionsFreed = connections.allSatisfy { $0.object == nil }
        #expect(connectionsFreed)
    }
}
