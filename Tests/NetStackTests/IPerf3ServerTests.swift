import AllocationCounter
import Foundation
import Testing
@testable import NetStack
@testable import NetStackApps
import NetStackWire

/// The iperf3 server's JSON and its control state machine, on two stacks with
/// a virtual clock: B runs the server, A a scripted iperf3 client.
@Suite(.serialized) struct IPerf3ServerTests {
    // MARK: Parameters and results

    @Test func parsesTheParametersIperf312Sends() throws {
        let forward = Array(#"{"tcp":true,"omit":0,"time":3,"num":0,"blockcount":0,"parallel":2,"len":131072,"pacing_timer":1000,"client_version":"3.12"}"#.utf8)
        let p = try IPerf3.Parameters(json: forward)
        #expect(p.tcp && !p.udp && !p.reverse && !p.bidirectional)
        #expect(p.time == 3 && p.parallel == 2 && p.length == 131072 && p.bytes == 0)
        #expect(p.clientVersion == "3.12")

        let reverse = Array(#"{"tcp":true,"omit":0,"time":1,"num":0,"blockcount":0,"parallel":1,"reverse":true,"len":131072,"bandwidth":1000000,"pacing_timer":1000,"client_version":"3.12"}"#.utf8)
        #expect(try IPerf3.Parameters(json: reverse).reverse)
        let udp = Array(#"{"udp":true,"time":1,"parallel":1,"len":1460}"#.utf8)
        let u = try IPerf3.Parameters(json: udp)
        #expect(u.udp && !u.tcp && u.length == 1460)
    }

    @Test func rejectsBadParameters() {
        #expect(throws: IPerf3.Parameters.ParseError.notJSONObject) { try IPerf3.Parameters(json: Array("[1]".utf8)) }
        #expect(throws: IPerf3.Parameters.ParseError.notJSONObject) { try IPerf3.Parameters(json: Array("{".utf8)) }
        #expect(throws: IPerf3.Parameters.ParseError.badValue("parallel")) {
            try IPerf3.Parameters(json: Array(#"{"tcp":true,"parallel":0}"#.utf8))
        }
        #expect(throws: IPerf3.Parameters.ParseError.badValue("time")) {
            try IPerf3.Parameters(json: Array(#"{"tcp":true,"time":"x"}"#.utf8))
        }
        #expect(throws: IPerf3.Parameters.ParseError.badValue("len")) {
            try IPerf3.Parameters(json: Array(#"{"tcp":true,"len":-5}"#.utf8))
        }
    }

    @Test func resultsRoundTripInTheFormIperf3Reads() throws {
        var r = IPerf3.Results()
        r.cpuUtilTotal = 12.5
        r.cpuUtilUser = 10
        r.cpuUtilSystem = 2.5
        r.senderHasRetransmits = 1
        r.streams = [IPerf3.StreamResult(id: 1, bytes: 5_000_000_000, retransmits: 3, startTime: 0, endTime: 3.0001),
                     IPerf3.StreamResult(id: 3, bytes: 7, retransmits: -1, startTime: 0, endTime: 3)]
        let json = r.json()
        let d = try #require(try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any])
        for key in ["cpu_util_total", "cpu_util_user", "cpu_util_system", "sender_has_retransmits", "streams"] {
            #expect(d[key] != nil, "\(key)")
        }
        let s = try #require((d["streams"] as? [[String: Any]])?.first)
        for key in ["id", "bytes", "retransmits", "jitter", "errors", "packets", "start_time", "end_time"] {
            #expect(s[key] != nil, "\(key)")
        }
        #expect((s["bytes"] as? NSNumber)?.uint64Value == 5_000_000_000)
        #expect(try IPerf3.Results(json: json) == r)
        #expect(throws: IPerf3.Parameters.ParseError.badValue("streams")) {
            try IPerf3.Results(json: Array(#"{"cpu_util_total":1}"#.utf8))
        }
    }

    @Test func framingAndStreamIDs() {
        #expect(IPerf3.frame(Array("{}".utf8)) == [0, 0, 0, 2, 0x7b, 0x7d])
        #expect(IPerf3.frame([UInt8](repeating: 32, count: 0x1_0203)).prefix(4) == [0, 1, 2, 3])
        #expect((0..<5).map(IPerf3.streamID) == [1, 3, 4, 5, 6])
        #expect(IPerf3.State.accessDenied.byte == 0xff)
        #expect(IPerf3.State.serverError.byte == 0xfe)
    }

    @Test func serviceSpecNamesIt() {
        #expect(ServiceSpec("iperf3") == ServiceSpec(kind: .iperf3, port: 5201))
        #expect(ServiceSpec("iperf3:5202") == ServiceSpec(kind: .iperf3, port: 5202))
        #expect(ServiceSpec("iperf3:0") == nil)
    }

    // MARK: The state machine against a scripted client

    @Test(arguments: [(1, false), (1, true), (4, false), (3, true)])
    func aWholeTestRuns(parallel: Int, reverse: Bool) throws {
        let rig = try IPerf3Rig()
        let client = try rig.client()
        let results = try client.runTest(parallel: parallel, reverse: reverse, duration: .milliseconds(60))
        let streams = try #require(results["streams"] as? [[String: Any]])
        #expect(streams.map { ($0["id"] as? NSNumber)?.intValue } == (0..<parallel).map(IPerf3.streamID))
        let bytes = streams.map { ($0["bytes"] as? NSNumber)?.uint64Value ?? 0 }
        #expect(bytes.allSatisfy { $0 > 0 })
        if reverse {
            #expect(client.received.reduce(0, +) > 0)
            #expect(bytes.reduce(0, +) >= client.received.reduce(0, +))
            #expect((results["sender_has_retransmits"] as? NSNumber)?.intValue == 1)
        } else {
            #expect(bytes.reduce(0, +) <= client.sent.reduce(0, +))
            #expect((results["sender_has_retransmits"] as? NSNumber)?.intValue == -1)
        }
        // The server's congestion control, by its Linux name: the stack's default.
        #expect(results["congestion_used"] as? String == "cubic")
        let end = try #require((streams[0]["end_time"] as? NSNumber)?.doubleValue)
        // From TEST_RUNNING to TEST_END on the server's clock: the 60 ms, plus the
        // scripted client's turns before its TEST_END leaves.
        #expect(end >= 0.06 && end < 0.3, "\(end)")
        #expect(rig.run { rig.server.test == nil && rig.b.tcp.allConnections.allSatisfy { $0.state != .established } })
        #expect(rig.server.counters.completed == 1)
        #expect(rig.server.counters.aborted == 0)

        // Ready for the next one.
        let again = try rig.client()
        _ = try again.runTest(parallel: 1, reverse: !reverse, duration: .milliseconds(100))
        #expect(rig.run { rig.server.counters.completed == 2 })
    }

    @Test func reportsTheCongestionControlItsStreamsRan() throws {
        let rig = try IPerf3Rig { $0.congestionControl = .newReno }
        let results = try rig.client().runTest(parallel: 1, reverse: true, duration: .milliseconds(30))
        #expect(results["congestion_used"] as? String == "newreno")
    }

    @Test func aSecondClientIsDeniedWhileATestRuns() throws {
        let rig = try IPerf3Rig()
        let first = try rig.client()
        try first.start(parallel: 1, reverse: false)
        let second = try rig.client()
        second.sendCookie()
        #expect(rig.run { second.controlIn == [IPerf3.State.accessDenied.byte] && second.control.isReadClosed })
        #expect(rig.server.counters.denied == 1)
        try first.finish(duration: .milliseconds(100))
        #expect(rig.run { rig.server.counters.completed == 1 })
    }

    @Test func clientTerminateAndResetsEndTheTest() throws {
        let rig = try IPerf3Rig()
        let a = try rig.client()
        try a.start(parallel: 2, reverse: true)
        a.sendState(.clientTerminate)
        #expect(rig.run { rig.server.test == nil })
        #expect(rig.run { a.streams.allSatisfy { $0.isReadClosed } })

        let b = try rig.client()
        try b.start(parallel: 2, reverse: false)
        b.control.abort()
        #expect(rig.run { rig.server.test == nil })
        #expect(rig.server.counters.aborted == 2)
        for s in b.streams { s.abort() }

        let c = try rig.client()
        _ = try c.runTest(parallel: 1, reverse: false, duration: .milliseconds(100))
        #expect(rig.run { rig.server.counters.completed == 1 })
    }

    @Test func udpIsRefusedWithServerError() throws {
        let rig = try IPerf3Rig()
        let c = try rig.client()
        c.sendCookie()
        #expect(rig.run { c.controlIn == [IPerf3.State.paramExchange.byte] })
        c.controlIn = []
        c.sendJSON(#"{"udp":true,"time":1,"parallel":1,"len":1460}"#)
        #expect(rig.run { c.controlIn.count >= 9 })
        #expect(c.controlIn.prefix(5) == [IPerf3.State.serverError.byte, 0, 0, 0, 13])
        #expect(rig.run { rig.server.test == nil })
    }

    /// Once running, the server's data path allocates nothing per segment:
    /// counted around stack B while data flows (forward and reverse), against
    /// the discard and chargen services as the baseline in debug builds.
    @Test(arguments: [false, true])
    func theDataPathDoesNotAllocate(reverse: Bool) throws {
        let rig = try IPerf3Rig()
        let c = try rig.client()
        try c.start(parallel: 2, reverse: reverse)
        rig.run(limit: .milliseconds(50)) { false }
        var allocations: UInt64 = 0
        let before = (rig.server.counters.bytesReceived, rig.server.counters.bytesSent)
        rig.countingB = { allocations += $0 }
        rig.run(limit: .milliseconds(100)) { false }
        rig.countingB = nil
        let moved = reverse ? rig.server.counters.bytesSent - before.1 : rig.server.counters.bytesReceived - before.0
        #expect(moved > 1_000_000)
        #if DEBUG
        #expect(allocations < moved / 10_000, "\(allocations) allocations for \(moved) bytes")
        #else
        #expect(allocations == 0, "\(allocations) allocations for \(moved) bytes")
        #endif
        try c.finish(duration: .zero)
        #expect(rig.run { rig.server.counters.completed == 1 })
    }
}

/// Two stacks on a `MemoryLink` with a virtual clock; B runs the iperf3 server.
final class IPerf3Rig {
    static var ipA: IPv4Address { TCPStackPair.ipA }
    static var ipB: IPv4Address { TCPStackPair.ipB }

    let stacks = TCPStackPair(slotCount: 2048, queueCapacity: 1024)
    var pool: PacketPool { stacks.pool }
    var clock: VirtualClock { stacks.clock }
    var a: Interface<MemoryLink> { stacks.a }
    var b: Interface<MemoryLink> { stacks.b }
    /// Optional so a test can let go of it (and see it freed).
    var server: IPerf3Server!
    /// Work run on every turn (the scripted client's writers).
    var onTurn: [() -> Void] = []
    /// When set, receives the allocations made while B runs, turn by turn.
    var countingB: ((UInt64) -> Void)?

    init(configure: (inout TCPConfiguration) -> Void = { _ in }) throws {
        var tcp = TCPConfiguration()
        tcp.msl = .seconds(1)
        configure(&tcp)
        stacks.b.tcp.defaultConfiguration = tcp
        server = try IPerf3Server.install(on: stacks.stackB, port: 5201)
    }

    /// Runs both stacks until `done` or `limit` of virtual time; time moves
    /// 50 µs a turn while frames flow (a client keeps sending) and 1 ms when idle.
    @discardableResult
    func run(limit: Duration = .seconds(30), until done: () -> Bool) -> Bool {
        let end = clock.now + limit
        while clock.now < end {
            for work in onTurn { work() }
            let n1 = a.poll(now: clock.now)
            a.tick(now: clock.now)
            if countingB != nil { allocation_counter_start() }
            let n2 = b.poll(now: clock.now)
            b.tick(now: clock.now)
            if let countingB { countingB(allocation_counter_stop()) }
            if done() { return true }
            clock.advance(by: n1 + n2 == 0 ? .milliseconds(1) : .microseconds(50))
        }
        return done()
    }

    func client() throws -> IPerf3ScriptedClient { try IPerf3ScriptedClient(rig: self) }
}

/// The client side of iperf3's protocol, step by step, on stack A.
final class IPerf3ScriptedClient {
    let rig: IPerf3Rig
    let control: TCPConnection
    var controlIn: [UInt8] = []
    var streams: [TCPConnection] = []
    var sent: [UInt64] = []
    var received: [UInt64] = []
    var sending = false
    let cookie: [UInt8]
    static let block = [UInt8](repeating: 0x5a, count: 16384)

    init(rig: IPerf3Rig) throws {
        self.rig = rig
        control = try rig.a.tcp.connect(to: IPerf3Rig.ipB, port: 5201, now: rig.clock.now)
        cookie = Array(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").utf8.prefix(32))
            + Array("abcd".utf8) + [0]
        control.onReadable = { [unowned self] c in
            self.controlIn += c.peek { x, y in Array(x) + Array(y) }
            c.skip(c.readableBytes)
        }
    }

    func write(_ c: TCPConnection, _ bytes: [UInt8]) {
        let n = bytes.withUnsafeBytes { c.write($0) }
        precondition(n == bytes.count)
        rig.a.tcp.flush(c, now: rig.clock.now)
    }

    func sendCookie() { write(control, cookie) }
    func sendState(_ s: IPerf3.State) { write(control, [s.byte]) }
    func sendJSON(_ text: String) { write(control, IPerf3.frame(Array(text.utf8))) }

    func expect(_ states: [IPerf3.State]) throws {
        let want = states.map(\.byte)
        #expect(rig.run { controlIn.count >= want.count })
        try #require(Array(controlIn.prefix(want.count)) == want, "got \(controlIn.prefix(want.count))")
        controlIn.removeFirst(want.count)
    }

    /// Cookie, parameters, streams, up to TEST_RUNNING; then data flows.
    func start(parallel: Int, reverse: Bool) throws {
        sendCookie()
        try expect([.paramExchange])
        sendJSON(#"{"tcp":true,"omit":0,"time":1,"num":0,"blockcount":0,"parallel":\#(parallel),"#
            + (reverse ? #""reverse":true,"# : "") + #""len":16384,"pacing_timer":1000,"client_version":"3.12"}"#)
        try expect([.createStreams])
        for i in 0..<parallel {
            let s = try rig.a.tcp.connect(to: IPerf3Rig.ipB, port: 5201, now: rig.clock.now)
            streams.append(s)
            sent.append(0)
            received.append(0)
            #expect(rig.run { s.state == .established })
            write(s, cookie)
            s.onReadable = { [unowned self] c in self.received[i] += UInt64(c.skip(c.readableBytes)) }
        }
        try expect([.testStart, .testRunning])
        if !reverse {
            sending = true
            rig.onTurn.append { [unowned self] in
                guard self.sending else { return }
                for (i, s) in self.streams.enumerated() {
                    let n = Self.block.withUnsafeBytes { s.write($0) }
                    self.sent[i] += UInt64(n)
                    if n > 0 { self.rig.a.tcp.flush(s, now: self.rig.clock.now) }
                }
            }
        }
    }

    /// Runs for `duration`, then TEST_END, results both ways, DISPLAY_RESULTS,
    /// IPERF_DONE. Returns the server's results.
    @discardableResult
    func finish(duration: Duration) throws -> [String: Any] {
        rig.run(limit: duration) { false }
        sending = false
        sendState(.testEnd)
        try expect([.exchangeResults])
        // The server closes the data streams at TEST_END, as iperf3 -s does.
        #expect(rig.run { streams.allSatisfy { $0.isReadClosed } })
        sendJSON(#"{"cpu_util_total":1,"cpu_util_user":1,"cpu_util_system":0,"sender_has_retransmits":0,"streams":[{"id":1,"bytes":10,"retransmits":0,"jitter":0,"errors":0,"packets":0,"start_time":0,"end_time":1}]}"#)
        #expect(rig.run { controlIn.count >= 4 })
        let n = controlIn.prefix(4).reduce(0) { $0 << 8 | Int($1) }
        #expect(rig.run { controlIn.count >= 4 + n + 1 })
        let json = Array(controlIn[4..<(4 + n)])
        controlIn.removeFirst(4 + n)
        try expect([.displayResults])
        sendState(.iperfDone)
        for s in streams { s.close() }
        control.close()
        return try #require(try JSONSerialization.jsonObject(with: Data(json)) as? [String: Any])
    }

    func runTest(parallel: Int, reverse: Bool, duration: Duration) throws -> [String: Any] {
        try start(parallel: parallel, reverse: reverse)
        return try finish(duration: duration)
    }
}
