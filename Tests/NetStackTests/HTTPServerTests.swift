import AllocationCounter
import Foundation
import Testing
@testable import NetStack
@testable import NetStackApps
import NetStackWire

/// Two stacks on a `MemoryLink` with a virtual clock: B runs the HTTP server,
/// A is the client (`HTTPGet`, or a raw connection the test drives).
final class HTTPRig {
    static var ipA: IPv4Address { TCPStackPair.ipA }
    static var ipB: IPv4Address { TCPStackPair.ipB }

    let stacks = TCPStackPair(slotCount: 2048, queueCapacity: 1024)
    var pool: PacketPool { stacks.pool }
    var clock: VirtualClock { stacks.clock }
    var a: Interface<MemoryLink> { stacks.a }
    var b: Interface<MemoryLink> { stacks.b }
    let server: HTTPServer
    /// Work run on every turn, as `EventLoop.onTurn`.
    var onTurn: [(Instant) -> Void] = []

    init(root: String? = nil) throws {
        var tcp = TCPConfiguration()
        tcp.msl = .seconds(1)
        server = try HTTPServer.install(on: stacks.stackB, port: 80, configuration: HTTPServer.Configuration(root: root, tcp: tcp))
    }

    /// Runs both stacks until `done` or `limit` of virtual time; time moves 1 ms
    /// whenever neither side has anything to process.
    @discardableResult
    func run(limit: Duration = .seconds(30), until done: () -> Bool) -> Bool {
        let end = clock.now + limit
        while clock.now < end {
            let n = a.poll(now: clock.now) + b.poll(now: clock.now)
            a.tick(now: clock.now)
            b.tick(now: clock.now)
            for work in onTurn { work(clock.now) }
            if done() { return true }
            if n == 0 { clock.advance(by: .milliseconds(1)) }
        }
        return done()
    }

    /// A raw client connection on A that collects what it receives.
    final class RawClient {
        let connection: TCPConnection
        var received: [UInt8] = []
        init(_ c: TCPConnection) {
            connection = c
            c.onReadable = { [unowned self] c in
                let n = c.readableBytes
                guard n > 0 else { return }
                self.received += c.peek { x, y in Array(x) + Array(y) }
                c.skip(n)
            }
        }
    }

    func connect() throws -> RawClient {
        RawClient(try a.tcp.connect(to: Self.ipB, port: 80, now: clock.now))
    }

    func send(_ client: RawClient, _ text: String) {
        let bytes = Array(text.utf8)
        let n = bytes.withUnsafeBytes { client.connection.write($0) }
        precondition(n == bytes.count)
        a.tcp.flush(client.connection, now: clock.now)
    }

    static func pattern(_ n: Int) -> [UInt8] { (0..<n).map { UInt8($0 % 251) } }
}

/// Splits a stream of responses whose bodies all have Content-Length, except after HEAD.
func splitResponses(_ data: [UInt8], heads: Set<Int> = []) -> [(status: String, fields: [String: String], body: [UInt8])] {
    var out: [(String, [String: String], [UInt8])] = []
    var rest = data[...]
    while !rest.isEmpty {
        guard let end = rest.indices.first(where: { i in
            i + 3 < rest.endIndex && rest[i] == 13 && rest[i + 1] == 10 && rest[i + 2] == 13 && rest[i + 3] == 10
        }) else { break }
        let lines = String(decoding: rest[rest.startIndex..<end], as: UTF8.self).components(separatedBy: "\r\n")
        var fields: [String: String] = [:]
        for l in lines.dropFirst() {
            let parts = l.split(separator: ":", maxSplits: 1)
            fields[parts[0].lowercased()] = parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""
        }
        let length = heads.contains(out.count) ? 0 : Int(fields["content-length"] ?? "0")!
        let bodyStart = end + 4
        let body = Array(rest[bodyStart..<min(bodyStart + length, rest.endIndex)])
        out.append((lines[0], fields, body))
        rest = rest[min(bodyStart + length, rest.endIndex)...]
    }
    return out
}

@Suite(.serialized) struct HTTPServerTests {
    @Test func getFetchesThePatternAndBothSidesClose() throws {
        let rig = try HTTPRig()
        var body: [UInt8] = []
        let get = HTTPGet(url: HTTPURL(address: HTTPRig.ipB, port: 80, target: "/bytes/300000")) { bytes in
            for i in bytes.indices { body.append(bytes[i]) }
            return true
        }
        try get.start(on: rig.stacks.stackA)
        rig.onTurn.append { get.turn(now: $0) }
        #expect(rig.run { get.isFinished })
        #expect(get.failure == nil)
        #expect(get.succeeded && get.parser.status == 200)
        #expect(body == HTTPRig.pattern(300_000))
        #expect(get.parser.headers.contains { $0.name == "Server" && $0.value == "netstack" })
        // The client asked to close: the server closes first and sits in TIME-WAIT for 2 MSL.
        #expect(rig.b.tcp.allConnections.first?.state == .timeWait)
        let emptied = rig.run { rig.b.tcp.allConnections.isEmpty && rig.a.tcp.allConnections.isEmpty }
        #expect(emptied, "\(rig.a.tcp.allConnections.map(\.state)) \(rig.b.tcp.allConnections.map(\.state)) at \(rig.clock.now)")
        #expect(rig.b.tcp.counters.connectionsClosed == 1 && rig.b.tcp.counters.connectionsReset == 0)
        #expect(rig.server.counters.responses2xx == 1 && rig.server.counters.bodyBytes == 300_000)
    }

    /// A refused connection and an abort end the fetch with a failure, once:
    /// closing raises a last readable callback, which must not abort again.
    @Test func aRefusedOrAbortedGetFailsOnce() throws {
        let rig = try HTTPRig()
        let refused = HTTPGet(url: HTTPURL(address: HTTPRig.ipB, port: 81, target: "/")) { _ in true }
        try refused.start(on: rig.stacks.stackA)
        rig.onTurn.append { refused.turn(now: $0) }
        #expect(rig.run { refused.isFinished })
        #expect(refused.failure == "connection refused")
        let aborted = HTTPGet(url: HTTPURL(address: HTTPRig.ipB, port: 80, target: "/bytes/1000000")) { _ in true }
        try aborted.start(on: rig.stacks.stackA)
        aborted.abort(reason: "interrupted")
        #expect(aborted.connection?.state == .closed)
        #expect(aborted.failure == "interrupted")
    }

    @Test func largeBodiesStreamThroughTheSendRing() throws {
        let rig = try HTTPRig()
        var count = 0
        var ok = true
        let n = 8 << 20
        let get = HTTPGet(url: HTTPURL(address: HTTPRig.ipB, target: "/bytes/\(n)")) { bytes in
            for i in bytes.indices where bytes[i] != UInt8((count + i) % 251) { ok = false; break }
            count += bytes.count
            return true
        }
        try get.start(on: rig.stacks.stackA)
        rig.onTurn.append { get.turn(now: $0) }
        #expect(rig.run(limit: .seconds(120)) { get.isFinished })
        #expect(get.succeeded && count == n && ok)
    }

    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let rig = try HTTPRig()
        let client = try rig.connect()
        rig.send(client, "GET /bytes/3 HTTP/1.1\r\nHost: b\r\n\r\n"
                 + "HEAD /bytes/400000 HTTP/1.1\r\nHost: b\r\n\r\n"
                 + "GET /bytes/200000 HTTP/1.1\r\nHost: b\r\n\r\n"
                 + "DELETE /x HTTP/1.1\r\nHost: b\r\n\r\n"
                 + "GET /nothing HTTP/1.1\r\nHost: b\r\nContent-Length: 4\r\n\r\nbody"
                 + "\r\nGET /bytes/1 HTTP/1.1\r\nHost: b\r\n\r\n")
        let expected = 6
        rig.run { splitResponses(client.received, heads: [1]).count == expected
            && splitResponses(client.received, heads: [1])[2].body.count == 200_000 }
        let r = splitResponses(client.received, heads: [1])
        #expect(r.map(\.status) == ["HTTP/1.1 200 OK", "HTTP/1.1 200 OK", "HTTP/1.1 200 OK",
                                    "HTTP/1.1 405 Method Not Allowed", "HTTP/1.1 404 Not Found", "HTTP/1.1 200 OK"])
        #expect(r[0].body == HTTPRig.pattern(3))
        #expect(r[1].fields["content-length"] == "400000" && r[1].body.isEmpty)
        #expect(r[2].body == HTTPRig.pattern(200_000))
        #expect(r[3].fields["allow"] == "GET, HEAD")
        #expect(r[5].body == HTTPRig.pattern(1))
        // Keep-alive: the connection is still open.
        #expect(client.connection.state == .established)
        #expect(rig.server.counters.requests == 6)
    }

    @Test func badRequestsGet400AndTheConnectionCloses() throws {
        for request in ["nonsense\r\n\r\n", "GET / HTTP/1.1\r\n\r\n", "GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                        "GET / HTTP/3.0\r\nHost: x\r\n\r\n"] {
            let rig = try HTTPRig()
            let client = try rig.connect()
            rig.send(client, request)
            #expect(rig.run { client.connection.receivedFin })
            let r = splitResponses(client.received)
            #expect(r.count == 1)
            let expected = request.contains("chunked") ? "HTTP/1.1 501 Not Implemented"
                : request.contains("3.0") ? "HTTP/1.1 505 HTTP Version Not Supported" : "HTTP/1.1 400 Bad Request"
            #expect(r.first?.status == expected, "\(request.debugDescription)")
            #expect(r.first?.fields["connection"] == "close")
        }
    }

    @Test func oversizedHeadsGet431() throws {
        let rig = try HTTPRig()
        let client = try rig.connect()
        rig.send(client, "GET / HTTP/1.1\r\nHost: x\r\nX-Long: " + String(repeating: "a", count: 20000))
        #expect(rig.run { client.connection.receivedFin })
        #expect(splitResponses(client.received).first?.status == "HTTP/1.1 431 Request Header Fields Too Large")
        #expect(client.connection.error == nil)
    }

    @Test func http10ClosesAfterTheResponse() throws {
        let rig = try HTTPRig()
        let client = try rig.connect()
        rig.send(client, "GET /bytes/10 HTTP/1.0\r\n\r\n")
        #expect(rig.run { client.connection.receivedFin })
        let r = splitResponses(client.received)
        #expect(r.first?.body == HTTPRig.pattern(10) && r.first?.fields["connection"] == "close")
    }

    @Test func peerHalfCloseAfterRequestsStillGetsAnswers() throws {
        let rig = try HTTPRig()
        let client = try rig.connect()
        rig.send(client, "GET /bytes/5 HTTP/1.1\r\nHost: b\r\n\r\nGET /bytes/6 HTTP/1.1\r\nHost: b\r\n\r\n")
        // (RFC 9293 3.10.4: CLOSE in SYN-SENT deletes the connection, so wait for the handshake.)
        #expect(rig.run { client.connection.state == .established })
        client.connection.shutdownWrite()
        rig.a.tcp.flush(client.connection, now: rig.clock.now)
        #expect(rig.run { client.connection.receivedFin })
        #expect(splitResponses(client.received).map(\.body) == [HTTPRig.pattern(5), HTTPRig.pattern(6)])
        #expect(rig.run { rig.b.tcp.allConnections.isEmpty })
        #expect(rig.b.tcp.counters.connectionsReset == 0)
    }

    @Test func filesUnderTheRoot() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("netstack-http-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let root = dir.appendingPathComponent("root")
        try FileManager.default.createDirectory(at: root.appendingPathComponent("sub"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var random = SystemRandomNumberGenerator()
        let content = (0..<700_000).map { _ in UInt8.random(in: 0...255, using: &random) }
        try Data(content).write(to: root.appendingPathComponent("big.bin"))
        try Data("index\n".utf8).write(to: root.appendingPathComponent("sub/index.html"))
        try Data("secret\n".utf8).write(to: dir.appendingPathComponent("secret"))
        try FileManager.default.createSymbolicLink(at: root.appendingPathComponent("link"),
                                                   withDestinationURL: dir.appendingPathComponent("secret"))
        let rig = try HTTPRig(root: root.path)
        let client = try rig.connect()
        let paths = ["/big.bin", "/sub/", "/sub", "/sub/../big.bin", "/../secret", "/link", "/missing", "/sub/%2e%2e/%2e%2e/secret",
                     "/bytes/4"]
        rig.send(client, paths.map { "GET \($0) HTTP/1.1\r\nHost: b\r\n\r\n" }.joined())
        #expect(rig.run { splitResponses(client.received).count == paths.count })
        let r = splitResponses(client.received)
        #expect(r.map { $0.status.split(separator: " ")[1] } == ["200", "200", "200", "200", "403", "403", "404", "403", "200"])
        #expect(r[0].body == content)
        #expect(r[1].body == Array("index\n".utf8) && r[1].fields["content-type"] == "text/html; charset=utf-8")
        #expect(r[3].body == content)
        #expect(r[8].body == HTTPRig.pattern(4))
    }

    /// Requests on a warm keep-alive connection allocate nothing in the
    /// server: the head is parsed in place in a shared scratch buffer, the
    /// response head is built without strings, and bodies stream from the
    /// pattern block. Counted around the server's stack only; optimised builds
    /// must show zero (debug builds allocate for slices and closure contexts,
    /// so there only a loose bound holds, against the TCP echo service as baseline).
    @Test func keepAliveRequestsDoNotAllocatePerRequest() throws {
        let request = Array("GET /bytes/1000 HTTP/1.1\r\nHost: b\r\n\r\n".utf8)
        try Self.expectNoAllocationsPerRequest(request, responseLength: 1000 + 90)
    }

    /// The same for a file: the path is normalised and resolved in the
    /// server's buffers, and the file streams through its chunk buffer.
    @Test func keepAliveFileRequestsDoNotAllocatePerRequest() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("netstack-http-alloc-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("sub"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data(HTTPRig.pattern(1000)).write(to: dir.appendingPathComponent("sub/f.bin"))
        let request = Array("GET /sub/../sub/f.bin HTTP/1.1\r\nHost: b\r\n\r\n".utf8)
        try Self.expectNoAllocationsPerRequest(request, responseLength: 1000 + 90, root: dir.path)
    }

    /// Serves `request` over and over on one warm connection and expects no
    /// allocation per exchange in release builds; debug builds, against the
    /// TCP echo service as a baseline, a loose bound.
    static func expectNoAllocationsPerRequest(_ request: [UInt8], responseLength: Int, root: String? = nil,
                                              sourceLocation: SourceLocation = #_sourceLocation) throws {
        let http = try serverAllocations(port: 80, request: request, responseLength: responseLength, root: root) { _ in }
        let echo = try serverAllocations(port: 7, request: request, responseLength: request.count) { rig in
            try TCPEchoService.install(on: rig.stacks.stackB, port: 7)
        }
        #if DEBUG
        #expect(http.allocations <= echo.allocations + 8 * UInt64(http.requests),
                "http \(http.allocations), echo \(echo.allocations) for \(http.requests) exchanges",
                sourceLocation: sourceLocation)
        #else
        #expect(http.allocations == 0, "\(http.allocations) allocations in \(http.requests) requests",
                sourceLocation: sourceLocation)
        #endif
        #expect(http.served == http.requests, sourceLocation: sourceLocation)
    }

    /// Mallocs made while the server side (stack B) processes `requests`
    /// request/response exchanges on one warm connection.
    static func serverAllocations(port: UInt16, request: [UInt8], responseLength: Int, root: String? = nil,
                                  install: (HTTPRig) throws -> Void) throws -> (allocations: UInt64, requests: Int, served: Int) {
        let rig = try HTTPRig(root: root)
        try install(rig)
        let c = try rig.a.tcp.connect(to: HTTPRig.ipB, port: port, now: rig.clock.now)
        let sink = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 8)
        defer { sink.deallocate() }
        var got = 0
        c.onReadable = { c in got += c.read(into: sink) }
        var allocations: UInt64 = 0
        var served = 0
        func exchange(counting: Bool) {
            let before = got
            _ = request.withUnsafeBytes { c.write($0) }
            rig.a.tcp.flush(c, now: rig.clock.now)
            for _ in 0..<100_000 {
                let n1 = rig.a.poll(now: rig.clock.now)
                rig.a.tick(now: rig.clock.now)
                if counting { allocation_counter_start() }
                let n2 = rig.b.poll(now: rig.clock.now)
                rig.b.tick(now: rig.clock.now)
                if counting { allocations += allocation_counter_stop() }
                if got - before >= responseLength {
                    served += 1
                    return
                }
                if n1 + n2 == 0 { rig.clock.advance(by: .milliseconds(1)) }
            }
        }
        for _ in 0..<5 { exchange(counting: false) }
        served = 0
        let requests = 100
        for _ in 0..<requests { exchange(counting: true) }
        return (allocations, requests, served)
    }
}
