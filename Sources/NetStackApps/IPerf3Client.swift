import Foundation
import NetStack
import NetStackWire

/// An iperf3-compatible client for TCP tests (forward, reverse, parallel
/// streams) against `iperf3 -s` or `IPerf3Server`, on the stack's callback TCP
/// API. The control connection follows iperf_client_api.c: cookie,
/// PARAM_EXCHANGE (our parameters), CREATE_STREAMS (one connection per stream,
/// each opening with the cookie), TEST_START (the clock starts), TEST_RUNNING
/// (data flows), TEST_END after the duration, EXCHANGE_RESULTS (ours, then the
/// server's), DISPLAY_RESULTS, IPERF_DONE.
///
/// Time comes only from `turn(now:)` and the injected clock, so tests drive it
/// on a virtual clock. Callbacks touch only their own connection; whatever
/// involves another one (opening streams, the first writes, TEST_END, closing)
/// happens in `turn`, which flushes what it wrote. The data path allocates
/// nothing: a fixed pattern is written as the send ring drains, and received
/// bytes are skipped and counted.
public final class IPerf3Client {
    public struct Options: Sendable {
        public var server: IPAddress
        public var port: UInt16 = 5201
        /// How long data flows, from TEST_START (iperf3's -t).
        public var duration: Duration = .seconds(10)
        /// The server sends (-R).
        public var reverse = false
        /// Data streams (-P).
        public var parallel = 1
        /// The block size announced to the server (-l): its write size in reverse mode.
        public var length = 128 * 1024
        /// The data streams' send and receive ring sizes (-w), instead of the
        /// interface's default; only our side's (the server keeps its own).
        public var window: Int?
        /// Reporting interval (-i).
        public var interval: Duration = .seconds(1)
        /// The longest wait for the server outside the timed test.
        public var stallTimeout: Duration = .seconds(30)
        /// The parameters' client_version; nil leaves it out.
        public var clientVersion: String?

        public init(server: IPAddress) { self.server = server }
        public init(server: IPv4Address) { self.server = .v4(server) }
    }

    public enum Phase: Equatable, Sendable, CustomStringConvertible {
        /// The cookie is queued on the control connection; PARAM_EXCHANGE is awaited.
        case awaitingParameterExchange
        /// Parameters sent; CREATE_STREAMS is awaited.
        case awaitingCreateStreams
        /// Opening the data streams one after the other, then awaiting TEST_START.
        case creatingStreams
        /// TEST_START arrived: the clock runs; TEST_RUNNING is awaited.
        case started
        /// Data flows until the duration is up.
        case running
        /// TEST_END sent; EXCHANGE_RESULTS is awaited.
        case ending
        /// Our results sent; the server's are awaited.
        case awaitingResults
        /// Both results known; DISPLAY_RESULTS is awaited.
        case awaitingDisplay
        /// IPERF_DONE sent: the test completed.
        case done
        case failed

        public var description: String {
            switch self {
            case .awaitingParameterExchange: "waiting for PARAM_EXCHANGE"
            case .awaitingCreateStreams: "waiting for CREATE_STREAMS"
            case .creatingStreams: "creating streams, waiting for TEST_START"
            case .started: "waiting for TEST_RUNNING"
            case .running: "running"
            case .ending: "waiting for EXCHANGE_RESULTS"
            case .awaitingResults: "waiting for the server's results"
            case .awaitingDisplay: "waiting for DISPLAY_RESULTS"
            case .done: "done"
            case .failed: "failed"
            }
        }
    }

    /// One data stream and what it moved while the test ran.
    public final class Stream {
        /// iperf3's stream id, which the results use to match streams.
        public let id: Int
        public let connection: TCPConnection
        /// Bytes written (forward) or read (reverse) between TEST_START and TEST_END.
        public internal(set) var bytes: UInt64 = 0
        /// The sender's TCP state over the test, sampled each interval (forward mode).
        public internal(set) var maxCongestionWindow = 0
        public internal(set) var maxSendWindow = 0
        public internal(set) var rttSamples: [Duration] = []
        var bytesAtInterval: UInt64 = 0
        var retransmitsAtStart: UInt64 = 0
        var retransmitsAtInterval: UInt64 = 0
        var retransmitsAtEnd: UInt64?
        var patternOffset = 0

        init(id: Int, connection: TCPConnection) {
            self.id = id
            self.connection = connection
        }

        /// Segments retransmitted between TEST_START and TEST_END (so far, while the test runs).
        public var retransmits: UInt64 {
            (retransmitsAtEnd ?? connection.segmentsRetransmitted) &- retransmitsAtStart
        }
    }

    /// One stream's share of a reporting interval.
    public struct StreamInterval: Sendable {
        public var id: Int
        public var bytes: UInt64
        /// Forward mode only: segments retransmitted and the sender's TCP state at the interval's end.
        public var retransmits: UInt64
        public var info: TCPInfo?
    }

    /// One reporting interval, in seconds from TEST_START.
    public struct Interval: Sendable {
        public var start: Double
        public var end: Double
        public var streams: [StreamInterval]
        public var seconds: Double { end - start }
        public var bytes: UInt64 { streams.reduce(0) { $0 &+ $1.bytes } }
        public var retransmits: UInt64 { streams.reduce(0) { $0 &+ $1.retransmits } }
    }

    public enum Event {
        /// A data stream's connection is established.
        case streamConnected(Stream)
        /// TEST_START: the clock runs.
        case started
        case interval(Interval)
        /// DISPLAY_RESULTS: both sides' results are in.
        case finished
    }

    public let options: Options
    public let cookie: [UInt8]
    let clock: any NetClock
    public private(set) var phase = Phase.awaitingParameterExchange
    public private(set) var control: TCPConnection?
    public private(set) var streams: [Stream] = []
    public private(set) var intervals: [Interval] = []
    /// What we sent in EXCHANGE_RESULTS, and what the server sent.
    public private(set) var localResults: IPerf3.Results?
    public private(set) var remoteResults: IPerf3.Results?
    /// Why the test failed, in iperf3's words where it has them.
    public private(set) var failure: String?
    /// TEST_START and TEST_END on the loop's clock.
    public private(set) var startedAt: Instant?
    public private(set) var endedAt: Instant?
    /// The control connection's MSS once it is established (iperf3's tcp_mss_default).
    public private(set) var controlMSS: Int?
    /// The congestion controller the streams run.
    public private(set) var congestionAlgorithm = CongestionAlgorithm.newReno
    public var onEvent: ((Event) -> Void)?

    var inbox: [UInt8] = []
    var outbox: [UInt8] = []
    var phaseEnteredAt: Instant
    var deadline = Instant.zero
    var nextIntervalEnd = Instant.zero
    var lastIntervalEnd = Instant.zero
    /// Work for `turn`: the first writes after TEST_RUNNING, closing after DISPLAY_RESULTS, resetting after a failure.
    var primePending = false
    var closePending = false
    var abortPending = false
    var cpuAtStart = IPerf3.CPUTime.now()
    var connect: ((TCPConfiguration) throws(TCPConnectError) -> TCPConnection)?
    var flush: ((TCPConnection) -> Void)?
    var streamConfiguration = TCPConfiguration()

    /// `cookie` defaults to a fresh random one (iperf3's make_cookie).
    public init(options: Options, clock: any NetClock, cookie: [UInt8]? = nil) {
        var rng = SystemRandomNumberGenerator()
        self.options = options
        self.clock = clock
        self.cookie = cookie ?? IPerf3.makeCookie(using: &rng)
        precondition(self.cookie.count == IPerf3.cookieSize, "an iperf3 cookie is 37 bytes")
        phaseEnteredAt = clock.now
    }

    deinit {
        // The callbacks hold the client unowned, and a data stream's hold the
        // stream, which holds the connection: none may outlive the client.
        for c in allConnections { c.removeCallbacks() }
    }

    /// The cookie as text (without its NUL), as iperf3 -J shows it.
    public var cookieText: String { String(decoding: cookie.prefix(IPerf3.cookieSize - 1), as: UTF8.self) }

    /// The parameters sent after PARAM_EXCHANGE (iperf_api.c, send_parameters).
    public var parameters: IPerf3.Parameters {
        var p = IPerf3.Parameters()
        p.reverse = options.reverse
        // iperf3 counts whole seconds; the server only uses it for its own timeout.
        p.time = max(1, Int((Double(options.duration.nanoseconds) / 1e9).rounded(.up)))
        p.parallel = options.parallel
        p.length = options.length
        p.clientVersion = options.clientVersion
        return p
    }

    /// Opens the control connection and queues the cookie. Call `turn(now:)`
    /// on every turn of the loop from then on.
    public func start(on stack: Stack) throws(TCPConnectError) {
        let now = stack.clock.now
        streamConfiguration = stack.tcp.defaultConfiguration
        congestionAlgorithm = streamConfiguration.congestionControl
        var controlConfiguration = streamConfiguration
        if let window = options.window {
            streamConfiguration.sendBufferSize = window
            streamConfiguration.receiveBufferSize = window
        }
        let server = options.server, port = options.port
        connect = { [unowned stack] configuration throws(TCPConnectError) in
            try stack.connect(to: server, port: port, configuration: configuration)
        }
        flush = { [unowned stack] c in stack.tcp.flush(c, now: stack.clock.now) }
        // State bytes must not wait behind Nagle (iperf3 sets TCP_NODELAY on it too).
        controlConfiguration.noDelay = true
        let c = try stack.connect(to: server, port: port, configuration: controlConfiguration)
        control = c
        phaseEnteredAt = now
        c.onReadable = { [unowned self] c in self.controlReadable(c) }
        c.onWritable = { [unowned self] c in self.writeOutbox(c) }
        c.onStateChange = { [unowned self] c, _ in
            if c.state == .established { self.controlMSS = c.info.sendMSS }
            if c.state == .closed { self.controlClosed(c) }
        }
        send(cookie)
        stack.tcp.flush(c, now: now)
    }

    // MARK: The loop's turn

    /// Timers, and the work that touches more than one connection.
    public func turn(now: Instant) {
        switch phase {
        case .creatingStreams:
            openNextStream()
        case .started, .running:
            if primePending {
                primePending = false
                for s in streams {
                    fill(s)
                    flush?(s.connection)
                }
            }
            if now >= deadline {
                if intervals.isEmpty || now - lastIntervalEnd >= options.interval / 10 { closeInterval(now: now) }
                endTest(now: now)
            } else if now >= nextIntervalEnd {
                closeInterval(now: now)
                while nextIntervalEnd <= now { nextIntervalEnd = nextIntervalEnd + options.interval }
            }
        case .done:
            if closePending {
                closePending = false
                for s in streams {
                    release(s.connection)
                }
                if let control { release(control) }
            }
        case .failed:
            if abortPending {
                abortPending = false
                for c in allConnections {
                    if c.state != .closed {
                        c.abort()
                        flush?(c)
                    }
                    // A stream's callbacks hold the stream, which holds the connection.
                    c.removeCallbacks()
                }
            }
        default:
            break
        }
        let waiting = phase != .started && phase != .running && phase != .done && phase != .failed
        if waiting && now - phaseEnteredAt > options.stallTimeout {
            fail("timed out after \(options.stallTimeout) \(phase)")
            turn(now: now)
        }
    }

    /// The test is over (completed or failed) and every connection has closed
    /// or sits in TIME-WAIT.
    public var isFinished: Bool {
        (phase == .done || phase == .failed) && !closePending && !abortPending
            && allConnections.allSatisfy { $0.state == .closed || $0.state == .timeWait }
    }

    public var succeeded: Bool { phase == .done }

    /// Gives up (an interrupt, a timeout): CLIENT_TERMINATE if the server is
    /// listening, then every connection is reset on the next turn.
    public func abort(reason: String) {
        guard phase != .done && phase != .failed else { return }
        if let control, control.state == .established {
            _ = control.write(byte: IPerf3.State.clientTerminate.byte)
            flush?(control)
        }
        fail(reason)
    }

    var allConnections: [TCPConnection] { (control.map { [$0] } ?? []) + streams.map(\.connection) }

    func setPhase(_ p: Phase) {
        phase = p
        phaseEnteredAt = clock.now
    }

    func fail(_ reason: String) {
        guard phase != .failed else { return }
        if failure == nil { failure = reason }
        setPhase(.failed)
        abortPending = true
    }

    // MARK: Control connection

    func send(_ bytes: [UInt8]) {
        outbox += bytes
        if let control { writeOutbox(control) }
    }

    func send(_ state: IPerf3.State) { send([state.byte]) }

    func writeOutbox(_ c: TCPConnection) {
        guard !outbox.isEmpty else { return }
        let n = c.write(outbox)
        outbox.removeFirst(n)
    }

    func controlReadable(_ c: TCPConnection) {
        guard phase != .failed else {
            c.skip(c.readableBytes)
            return
        }
        c.read(appendingTo: &inbox)
        while phase != .failed, step() {}
        if c.isReadClosed && phase != .done && phase != .failed {
            fail("the server closed the control connection (\(phase))")
        }
    }

    func controlClosed(_ c: TCPConnection) {
        guard phase != .done && phase != .failed else { return }
        if let error = c.error, phase == .awaitingParameterExchange && c.readableBytes == 0 && inbox.isEmpty {
            fail("unable to connect to server: \(error)")
        } else {
            fail("the control connection closed (\(c.error.map { "\($0)" } ?? "by the server"), \(phase))")
        }
    }

    /// Handles one message from the inbox, if a whole one is there.
    func step() -> Bool {
        switch phase {
        case .awaitingResults:
            guard inbox.count >= 4 else { return false }
            let n = inbox[0..<4].reduce(0) { $0 << 8 | Int($1) }
            guard n <= IPerf3.maxJSONLength else {
                fail("the server's results are too long (\(n) bytes)")
                return false
            }
            guard inbox.count >= 4 + n else { return false }
            let json = Array(inbox[4..<(4 + n)])
            inbox.removeFirst(4 + n)
            do {
                remoteResults = try IPerf3.Results(json: json)
            } catch {
                fail("cannot read the server's results: \(error)")
                return false
            }
            setPhase(.awaitingDisplay)
            return true
        case .done, .failed:
            return false
        default:
            break
        }
        guard let first = inbox.first else { return false }
        guard let state = IPerf3.State(rawValue: Int8(bitPattern: first)) else {
            fail("unknown control message \(Int8(bitPattern: first)) (\(phase))")
            return false
        }
        if state == .serverError {
            // i_errno and errno follow, 32 bits each, big-endian.
            guard inbox.count >= 9 else { return false }
            let code = inbox[1..<5].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            let errno = inbox[5..<9].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
            fail(Self.describeServerError(i_errno: Int32(bitPattern: code), errno: Int32(bitPattern: errno)))
            return false
        }
        inbox.removeFirst()
        switch (state, phase) {
        case (.paramExchange, .awaitingParameterExchange):
            send(IPerf3.frame(parameters.json()))
            setPhase(.awaitingCreateStreams)
        case (.createStreams, .awaitingCreateStreams):
            // Opened from `turn`: a connection's callback touches only its own connection.
            setPhase(.creatingStreams)
        case (.testStart, .creatingStreams) where streams.count == options.parallel:
            let now = clock.now
            startedAt = now
            deadline = now + options.duration
            nextIntervalEnd = now + options.interval
            lastIntervalEnd = now
            cpuAtStart = IPerf3.CPUTime.now()
            for s in streams {
                s.retransmitsAtStart = s.connection.segmentsRetransmitted
                s.retransmitsAtInterval = s.retransmitsAtStart
            }
            setPhase(.started)
            onEvent?(.started)
        case (.testRunning, .started):
            setPhase(.running)
            primePending = !options.reverse
        case (.exchangeResults, .ending):
            let results = makeResults()
            localResults = results
            send(IPerf3.frame(results.json()))
            setPhase(.awaitingResults)
        case (.displayResults, .awaitingDisplay):
            // iperf_client_end: streams closed, IPERF_DONE, control closed.
            send(.iperfDone)
            setPhase(.done)
            closePending = true
            onEvent?(.finished)
        case (.accessDenied, _):
            fail("the server is busy running a test. try again later")
        case (.serverTerminate, _):
            fail("the server has terminated")
        default:
            fail("unexpected control message \(state) (\(phase))")
        }
        return true
    }

    static func describeServerError(i_errno: Int32, errno: Int32) -> String {
        let what: String = switch IPerf3.ErrorCode(rawValue: i_errno) {
        case .notImplemented: "not implemented yet"
        case .unknownMessage: "received an unknown control message"
        case .receiveParameters: "unable to receive parameters from client"
        case .receiveResults: "unable to receive results"
        case nil: "iperf3 error \(i_errno)"
        }
        return "the server reported an error: \(what)" + (errno != 0 ? " (errno \(errno))" : "")
    }

    // MARK: Data streams

    /// Streams open one at a time, each once the one before is established:
    /// the server numbers them in the order it accepts them, as we do.
    func openNextStream() {
        guard streams.count < options.parallel else { return }
        if let last = streams.last, last.connection.state != .established { return }
        guard let connect else { return }
        let c: TCPConnection
        do { c = try connect(streamConfiguration) } catch {
            fail("cannot open data stream \(streams.count + 1): \(error)")
            return
        }
        let s = Stream(id: IPerf3.streamID(index: streams.count), connection: c)
        streams.append(s)
        let n = c.write(cookie)
        precondition(n == cookie.count, "the cookie does not fit an empty send ring")
        c.onStateChange = { [unowned self] c, _ in self.streamStateChanged(s) }
        if options.reverse {
            c.onReceive = { [unowned self] _, bytes in
                if phase == .started || phase == .running { s.bytes &+= UInt64(bytes.count) }
                return bytes.count
            }
            c.onReadable = { [unowned self] c in self.drain(s) }
        } else {
            c.onReadable = { c in c.skip(c.readableBytes) }
            c.onWritable = { [unowned self] _ in self.fill(s) }
        }
        flush?(c)
    }

    func streamStateChanged(_ s: Stream) {
        let c = s.connection
        switch c.state {
        case .established:
            onEvent?(.streamConnected(s))
        case .closed:
            // After TEST_END the server closes its streams (iperf3 -s resets them); before, it is a failure.
            switch phase {
            case .awaitingCreateStreams, .creatingStreams, .started, .running:
                fail("data stream \(s.id) closed during the test (\(c.error.map { "\($0)" } ?? "by the server"))")
            default:
                break
            }
        default:
            break
        }
    }

    /// Forward mode: queue as much of the pattern as the send ring takes.
    func fill(_ s: Stream) {
        guard phase == .running else { return }
        let c = s.connection
        let total = IPerf3Server.writePattern(to: c, offset: &s.patternOffset)
        s.bytes &+= UInt64(total)
    }

    /// Reverse mode: count while the clock runs; drain always, so a server
    /// blocked on a full window still reads TEST_END (iperf_run_client does the same).
    func drain(_ s: Stream) {
        let c = s.connection
        let n = c.skip(c.readableBytes)
        if phase == .started || phase == .running { s.bytes &+= UInt64(n) }
    }

    /// Hands a connection back: input discarded, our side closed.
    func release(_ c: TCPConnection) {
        c.onWritable = nil
        c.onStateChange = nil
        c.onReceive = nil
        c.onReadable = { c in c.skip(c.readableBytes) }
        c.skip(c.readableBytes)
        if c.state != .closed { c.close() }
        flush?(c)
    }

    // MARK: Intervals and results

    func seconds(_ t: Instant) -> Double {
        Double((t - (startedAt ?? t)).nanoseconds) / 1e9
    }

    func closeInterval(now: Instant) {
        var samples: [StreamInterval] = []
        samples.reserveCapacity(streams.count)
        for s in streams {
            var sample = StreamInterval(id: s.id, bytes: s.bytes &- s.bytesAtInterval, retransmits: 0, info: nil)
            s.bytesAtInterval = s.bytes
            if !options.reverse {
                let info = s.connection.info
                sample.retransmits = info.segmentsRetransmitted &- s.retransmitsAtInterval
                s.retransmitsAtInterval = info.segmentsRetransmitted
                sample.info = info
                s.maxCongestionWindow = max(s.maxCongestionWindow, info.congestionWindow)
                s.maxSendWindow = max(s.maxSendWindow, info.sendWindow)
                if let rtt = info.smoothedRTT { s.rttSamples.append(rtt) }
            }
            samples.append(sample)
        }
        let interval = Interval(start: seconds(lastIntervalEnd), end: seconds(now), streams: samples)
        lastIntervalEnd = now
        intervals.append(interval)
        onEvent?(.interval(interval))
    }

    /// The duration is up: counting stops, TEST_END goes out.
    func endTest(now: Instant) {
        endedAt = now
        for s in streams { s.retransmitsAtEnd = s.connection.segmentsRetransmitted }
        setPhase(.ending)
        send(.testEnd)
        if let control { flush?(control) }
    }

    /// Our side's results (iperf_api.c, send_results): per stream, what we
    /// sent or received between TEST_START and TEST_END.
    func makeResults() -> IPerf3.Results {
        var r = IPerf3.Results()
        let elapsed = endedAt.map(seconds) ?? 0
        let cpu = IPerf3.CPUTime.now().utilization(since: cpuAtStart, elapsed: elapsed)
        r.cpuUtilTotal = cpu.total
        r.cpuUtilUser = cpu.user
        r.cpuUtilSystem = cpu.system
        r.senderHasRetransmits = options.reverse ? -1 : 1
        r.congestionUsed = congestionAlgorithm.rawValue
        r.streams = streams.map { s in
            IPerf3.StreamResult(id: s.id, bytes: s.bytes,
                                retransmits: options.reverse ? -1 : Int64(s.retransmits),
                                startTime: 0, endTime: elapsed)
        }
        return r
    }
}
