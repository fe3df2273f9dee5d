import AllocationCounter
import Foundation
import Testing
@testable import NetStack
@testable import NetStackApps
import NetStackWire

/// The iperf3 client against the stack's own iperf3 server: A runs the
/// client, B the server, over a memory link on a virtual clock (`IPerf3Rig`).
@Suite(.serialized) struct IPerf3ClientTests {
    static func options(parallel: Int = 1, reverse: Bool = false) -> IPerf3Client.Options {
        var o = IPerf3Client.Options(server: IPerf3Rig.ipB)
        o.duration = .milliseconds(40)
        o.interval = .milliseconds(10)
        o.parallel = parallel
        o.reverse = reverse
        o.length = 16384
        o.stallTimeout = .seconds(2)
        return o
    }

    static func cookie(seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        return IPerf3.makeCookie(using: &rng)
    }

    /// Starts `client` on stack A and drives it from the rig's turns.
    static func start(_ client: IPerf3Client, on rig: IPerf3Rig) throws {
        try client.start(on: rig.stacks.stackA)
        rig.onTurn.append { [unowned client, unowned rig] in client.turn(now: rig.clock.now) }
    }

    // MARK: Whole tests against IPerf3Server

    @Test(arguments: [(1, false), (1, true), (2, false), (2, true)])
    func aWholeTestRuns(parallel: Int, reverse: Bool) throws {
        let rig = try IPerf3Rig()
        let client = IPerf3Client(options: Self.options(parallel: parallel, reverse: reverse), clock: rig.clock,
                                  cookie: Self.cookie(seed: 1))
        var events: [String] = []
        client.onEvent = { e in
            switch e {
            case .streamConnected(let s): events.append("stream \(s.id)")
            case .started: events.append("started")
            case .interval: events.append("interval")
            case .finished: events.append("finished")
            }
        }
        try Self.start(client, on: rig)
        #expect(rig.run { client.isFinished })
        #expect(client.failure == nil)
        #expect(client.succeeded)
        let ids = (0..<parallel).map(IPerf3.streamID)
        #expect(events == ids.map { "stream \($0)" } + ["started"] + Array(repeating: "interval", count: 4) + ["finished"])

        // Our clock: 40 ms from TEST_START to TEST_END, in four 10 ms intervals.
        let local = try #require(client.localResults)
        let remote = try #require(client.remoteResults)
        let elapsed = try #require(local.streams.first?.endTime)
        #expect(elapsed >= 0.04 && elapsed < 0.041, "\(elapsed)")
        #expect(client.intervals.map(\.start).map { ($0 * 1000).rounded() } == [0, 10, 20, 30])
        #expect(client.intervals.last.map { $0.end } == elapsed)

        // The server got our results, and we its; both clocks ran alike (the
        // server's starts at TEST_START too, so its control connection must not wait on Nagle).
        let received = try #require(rig.server.lastClientResults)
        #expect(received.streams == local.streams)
        #expect(received.senderHasRetransmits == local.senderHasRetransmits)
        #expect(received.congestionUsed == TCPConfiguration().congestionControl.rawValue)
        for s in remote.streams { #expect(abs(s.endTime - elapsed) < 0.001, "server: \(s.endTime) s, we: \(elapsed) s") }
        #expect(local.streams.map(\.id) == ids)
        #expect(remote.streams.map(\.id) == ids)
        #expect(local.senderHasRetransmits == (reverse ? -1 : 1))
        #expect(remote.senderHasRetransmits == (reverse ? 1 : -1))

        // Bytes: each stream's intervals add up to its total, and both sides'
        // counts agree with what the server's own counters saw.
        for (i, s) in client.streams.enumerated() {
            #expect(s.bytes > 1_000_000, "stream \(s.id) moved \(s.bytes)")
            #expect(client.intervals.reduce(0) { $0 + $1.streams[i].bytes } == s.bytes)
            #expect(local.streams[i].bytes == s.bytes)
        }
        let mine = local.streams.reduce(0) { $0 + $1.bytes }
        let theirs = remote.streams.reduce(0) { $0 + $1.bytes }
        // What was still in the sender's ring or the receiver's when TEST_END went out.
        let inFlight = UInt64(parallel * (TCPConfiguration().sendBufferSize + TCPConfiguration().receiveBufferSize))
        if reverse {
            #expect(theirs == rig.server.counters.bytesSent)
            #expect(mine <= theirs && theirs - mine <= inFlight, "received \(mine) of \(theirs)")
        } else {
            #expect(theirs == rig.server.counters.bytesReceived)
            #expect(theirs <= mine && mine - theirs <= inFlight, "server received \(theirs) of \(mine)")
        }
        let summary = try #require(IPerf3Summary(client: client))
        #expect(summary.sent.bytes == (reverse ? theirs : mine))
        #expect(summary.received.bytes == (reverse ? mine : theirs))
        #expect(summary.streams.map(\.id) == ids)
        #expect(summary.sent.retransmits != nil)
        #expect(summary.received.retransmits == nil)

        #expect(rig.run { rig.server.counters.completed == 1 })
        #expect(rig.server.counters.aborted == 0)
        #expect(rig.server.counters.tests == 1)
        // Every connection ends cleanly: none reset, none left open on either side.
        #expect(rig.run {
            (rig.a.tcp.allConnections + rig.b.tcp.allConnections).allSatisfy { $0.state == .timeWait }
        })
        #expect(rig.a.tcp.counters.connectionsReset == 0)
        #expect(rig.b.tcp.counters.connectionsReset == 0)

        // The server is free for the next test.
        let again = IPerf3Client(options: Self.options(parallel: 1, reverse: !reverse), clock: rig.clock)
        try Self.start(again, on: rig)
        #expect(rig.run { again.isFinished })
        #expect(again.succeeded, "\(again.failure ?? "")")
        #expect(rig.server.counters.completed == 2)
    }

    @Test func theReportsDescribeTheTest() throws {
        let rig = try IPerf3Rig()
        let client = IPerf3Client(options: Self.options(parallel: 2), clock: rig.clock, cookie: Self.cookie(seed: 2))
        try Self.start(client, on: rig)
        #expect(rig.run { client.isFinished })
        let summary = try #require(IPerf3Summary(client: client))

        let text = IPerf3Report.summaryLines(summary)
        #expect(text.filter { $0.hasSuffix(" sender") }.count == 3)
        #expect(text.filter { $0.hasSuffix(" receiver") }.count == 3)
        #expect(text.last == "iperf Done.")
        let lines = IPerf3Report.intervalLines(client.intervals[1], reverse: false, first: false)
        #expect(lines.first == IPerf3Report.separator)
        #expect(lines.count == 4 && lines[3].hasPrefix("[SUM]   0.01-0.02   sec"))

        var context = IPerf3Report.Context(host: "10.0.0.2")
        context.time = Date(timeIntervalSince1970: 1_700_000_000)
        let json = IPerf3Report.json(client: client, context: context)
        let d = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(d["error"] == nil)
        let start = try #require(d["start"] as? [String: Any])
        #expect((start["connected"] as? [Any])?.count == 2)
        #expect(start["cookie"] as? String == client.cookieText)
        #expect((start["timestamp"] as? [String: Any])?["time"] as? String == "Tue, 14 Nov 2023 22:13:20 GMT")
        let testStart = try #require(start["test_start"] as? [String: Any])
        #expect(testStart["num_streams"] as? Int == 2 && testStart["reverse"] as? Int == 0)
        let intervals = try #require(d["intervals"] as? [[String: Any]])
        #expect(intervals.count == 4)
        let firstSum = try #require(intervals[0]["sum"] as? [String: Any])
        #expect((firstSum["bytes"] as? NSNumber)?.uint64Value == client.intervals[0].bytes)
        let end = try #require(d["end"] as? [String: Any])
        let sent = try #require(end["sum_sent"] as? [String: Any])
        let received = try #require(end["sum_received"] as? [String: Any])
        #expect((sent["bytes"] as? NSNumber)?.uint64Value == summary.sent.bytes)
        #expect((received["bytes"] as? NSNumber)?.uint64Value == summary.received.bytes)
        let seconds = try #require((received["seconds"] as? NSNumber)?.doubleValue)
        let bps = try #require((received["bits_per_second"] as? NSNumber)?.doubleValue)
        #expect(abs(bps - Double(summary.received.bytes) * 8 / seconds) < 1)
        let streams = try #require(end["streams"] as? [[String: Any]])
        #expect(streams.count == 2)
        #expect((streams[0]["sender"] as? [String: Any])?["max_snd_cwnd"] as? Int ?? 0 > 0)
        #expect(end["sender_tcp_congestion"] as? String == TCPConfiguration().congestionControl.rawValue)
    }

    @Test func theWindowSizesTheDataStreamsRings() throws {
        let rig = try IPerf3Rig()
        var o = Self.options(parallel: 2)
        o.window = 64 * 1024
        let client = IPerf3Client(options: o, clock: rig.clock)
        try Self.start(client, on: rig)
        #expect(rig.run { client.isFinished })
        #expect(client.succeeded)
        #expect(client.streams.map { $0.connection.sender.sendBuffer.capacity } == [65536, 65536])
        #expect(client.streams.map { $0.connection.receiver.receiveBuffer.capacity } == [65536, 65536])
        #expect(client.control?.sender.sendBuffer.capacity == TCPConfiguration().sendBufferSize)
        // Less in flight: the server saw all but at most a send and a receive ring per stream.
        let summary = try #require(IPerf3Summary(client: client))
        #expect(summary.sent.bytes - summary.received.bytes <= 2 * 65536 * 2)
        let json = IPerf3Report.json(client: client, context: IPerf3Report.Context(host: "10.0.0.2"))
        let d = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect((d["start"] as? [String: Any])?["sock_bufsize"] as? Int == 65536)
    }

    // MARK: Failures

    @Test func aBusyServerTurnsTheSecondClientAway() throws {
        let rig = try IPerf3Rig()
        var o = Self.options()
        o.duration = .milliseconds(100)
        let first = IPerf3Client(options: o, clock: rig.clock)
        try Self.start(first, on: rig)
        #expect(rig.run { first.phase == .running })
        let second = IPerf3Client(options: Self.options(), clock: rig.clock)
        try Self.start(second, on: rig)
        #expect(rig.run { second.isFinished })
        #expect(second.failure == "the server is busy running a test. try again later")
        #expect(rig.server.counters.denied == 1)
        #expect(rig.run { first.isFinished })
        #expect(first.succeeded)
    }

    @Test func nobodyListening() throws {
        let rig = try IPerf3Rig()
        var o = Self.options()
        o.port = 5999
        let client = IPerf3Client(options: o, clock: rig.clock)
        try Self.start(client, on: rig)
        #expect(rig.run { client.isFinished })
        #expect(client.failure == "unable to connect to server: connection refused")
    }

    @Test func abortingSendsClientTerminate() throws {
        let rig = try IPerf3Rig()
        let client = IPerf3Client(options: Self.options(parallel: 2, reverse: true), clock: rig.clock)
        try Self.start(client, on: rig)
        #expect(rig.run { client.intervals.count == 2 })
        client.abort(reason: "interrupted")
        #expect(rig.run { client.isFinished && rig.server.test == nil })
        #expect(client.failure == "interrupted")
        #expect(rig.server.counters.aborted == 1)
        #expect(rig.run { rig.a.tcp.allConnections.isEmpty })
    }

    /// A server that answers the cookie with `reply` and then says nothing more.
    static func scriptedServer(on rig: IPerf3Rig, port: UInt16, reply: [UInt8]) throws -> TCPListener {
        let listener = try rig.b.tcp.listen(port: port)
        listener.onAccept = { c in
            var replied = false
            c.onReadable = { c in
                guard !replied, c.readableBytes >= IPerf3.cookieSize else { return }
                replied = true
                c.skip(c.readableBytes)
                _ = reply.withUnsafeBytes { c.write($0) }
            }
        }
        return listener
    }

    @Test func serverErrorsAreReported() throws {
        let rig = try IPerf3Rig()
        _ = try Self.scriptedServer(on: rig, port: 6001,
                                    reply: [IPerf3.State.serverError.byte, 0, 0, 0, 13, 0, 0, 0, 0])
        var o = Self.options()
        o.port = 6001
        let client = IPerf3Client(options: o, clock: rig.clock)
        try Self.start(client, on: rig)
        #expect(rig.run { client.isFinished })
        #expect(client.failure == "the server reported an error: not implemented yet")
    }

    @Test func aSilentServerTimesOut() throws {
        let rig = try IPerf3Rig()
        _ = try Self.scriptedServer(on: rig, port: 6002, reply: [IPerf3.State.paramExchange.byte])
        var o = Self.options()
        o.port = 6002
        let client = IPerf3Client(options: o, clock: rig.clock)
        try Self.start(client, on: rig)
        let start = rig.clock.now
        #expect(rig.run { client.isFinished })
        #expect(client.failure?.hasPrefix("timed out") == true, "\(client.failure ?? "")")
        #expect(client.failure?.hasSuffix("waiting for CREATE_STREAMS") == true)
        let waited = rig.clock.now - start
        #expect(waited >= .seconds(2) && waited < .seconds(3))
    }

    // MARK: The data path

    /// Once running, the client's side allocates nothing per segment: counted
    /// around stack A's turns (the client's, and A's receive and timers) while
    /// data flows, with intervals longer than the window measured.
    @Test(arguments: [false, true])
    func theDataPathDoesNotAllocate(reverse: Bool) throws {
        let rig = try IPerf3Rig()
        var o = Self.options(parallel: 2, reverse: reverse)
        o.duration = .milliseconds(100)
        o.interval = .seconds(1)
        let client = IPerf3Client(options: o, clock: rig.clock)
        try client.start(on: rig.stacks.stackA)
        var allocations: UInt64 = 0
        var counting = false
        let clock = rig.clock
        // The rig's turn runs these before both polls; A's poll is counted through `countingA`.
        rig.onTurn.append { [unowned client, unowned rig] in
            if counting { allocation_counter_start() }
            client.turn(now: clock.now)
            _ = rig.a.poll(now: clock.now)
            rig.a.tick(now: clock.now)
            if counting { allocations += allocation_counter_stop() }
        }
        #expect(rig.run { client.phase == .running })
        rig.run(limit: .milliseconds(10)) { false }
        let before = client.streams.reduce(0) { $0 + $1.bytes }
        counting = true
        rig.run(limit: .milliseconds(30)) { false }
        counting = false
        let moved = client.streams.reduce(0) { $0 + $1.bytes } - before
        #expect(client.intervals.isEmpty)
        #expect(moved > 1_000_000)
        #if DEBUG
        #expect(allocations < moved / 10_000, "\(allocations) allocations for \(moved) bytes")
        #else
        #expect(allocations == 0, "\(allocations) allocations for \(moved) bytes")
        #endif
        #expect(rig.run { client.isFinished })
        #expect(client.succeeded)
    }

    // MARK: Pieces

    @Test func cookiesAreIperf3s() {
        let a = Self.cookie(seed: 7)
        #expect(a.count == 37 && a.last == 0)
        #expect(a.dropLast().allSatisfy { Array("abcdefghijklmnopqrstuvwxyz234567".utf8).contains($0) })
        #expect(a == Self.cookie(seed: 7))
        #expect(a != Self.cookie(seed: 8))
    }

    @Test func parametersRoundTrip() throws {
        let client = IPerf3Client(options: Self.options(parallel: 3, reverse: true), clock: VirtualClock())
        let p = client.parameters
        #expect(p.time == 1 && p.parallel == 3 && p.reverse && p.length == 16384)
        let d = try #require(try JSONSerialization.jsonObject(with: Data(p.json())) as? [String: Any])
        #expect(d["tcp"] as? Bool == true && d["reverse"] as? Bool == true && d["udp"] == nil)
        #expect(try IPerf3.Parameters(json: p.json()) == p)
        var forward = IPerf3.Parameters()
        forward.time = 10
        forward.clientVersion = "3.12"
        let back = try IPerf3.Parameters(json: forward.json())
        #expect(back == forward)
        #expect(!back.reverse)
    }

    /// iperf3's units and columns (unit_snprintf, report_bw_retrans_cwnd_format).
    @Test func linesLookLikeIperf3s() {
        #expect(IPerf3Report.bytes(0) == "0.00 Bytes")
        #expect(IPerf3Report.bytes(1001 * 1_048_576) == "1001 MBytes")
        #expect(IPerf3Report.bytes(48.5 * 1_048_576) == "48.5 MBytes")
        #expect(IPerf3Report.bytes(785_408) == " 767 KBytes")
        #expect(IPerf3Report.bitrate(bytes: 1_228_750_000, seconds: 1) == "9.83 Gbits/sec")
        #expect(IPerf3Report.bitrate(bytes: 117_625_000, seconds: 1) == " 941 Mbits/sec")
        #expect(IPerf3Report.bitrate(bytes: 10, seconds: 0) == "0.00 bits/sec")

        let info = TCPInfo(congestionWindow: 785_408, slowStartThreshold: 0, sendWindow: 0, sendMSS: 1448,
                           smoothedRTT: nil, rttVariation: nil, segmentsRetransmitted: 0, congestionAlgorithm: .newReno,
                           retransmissionTimeout: .seconds(1), minimumRTT: nil, advertisedMSS: 1460, pathMTU: 1500,
                           timestamps: true, selectiveAcknowledgments: true, windowScaling: true, sendWindowScale: 7,
                           receiveWindowScale: 7, bytesSent: 0, bytesAcknowledged: 0, bytesReceived: 0)
        let one = IPerf3Client.StreamInterval(id: 5, bytes: 1_234_567_890, retransmits: 33, info: info)
        let interval = IPerf3Client.Interval(start: 0, end: 1, streams: [one])
        #expect(IPerf3Report.intervalLines(interval, reverse: false, first: true)
            == ["[  5]   0.00-1.00   sec  1.15 GBytes  9.88 Gbits/sec   33    767 KBytes       "])
        #expect(IPerf3Report.intervalLines(interval, reverse: true, first: true)
            == ["[  5]   0.00-1.00   sec  1.15 GBytes  9.88 Gbits/sec                  "])

        var local = IPerf3.Results()
        local.senderHasRetransmits = 1
        local.streams = [IPerf3.StreamResult(id: 1, bytes: 3_680_000_000, retransmits: 71, startTime: 0, endTime: 2)]
        var remote = IPerf3.Results()
        remote.streams = [IPerf3.StreamResult(id: 1, bytes: 3_677_000_000, retransmits: -1, startTime: 0, endTime: 2.0001)]
        let summary = IPerf3Summary(local: local, remote: remote, reverse: false)
        #expect(IPerf3Report.summaryLines(summary) == [
            IPerf3Report.separator,
            "[ ID] Interval           Transfer     Bitrate         Retr",
            "[  1]   0.00-2.00   sec  3.43 GBytes  14.7 Gbits/sec   71             sender",
            "[  1]   0.00-2.00   sec  3.42 GBytes  14.7 Gbits/sec                  receiver",
            "",
            "iperf Done.",
        ])
    }
}
