import Foundation
import NetStack

/// An iperf3-compatible server (TCP tests, forward and reverse, parallel
/// streams), driven by connection callbacks on the event loop like the other
/// services. One test at a time: a client arriving while a test runs gets
/// ACCESS_DENIED, as from `iperf3 -s`.
///
/// The control connection is a small state machine (cookie, PARAM_EXCHANGE,
/// CREATE_STREAMS, TEST_START, TEST_RUNNING, TEST_END, EXCHANGE_RESULTS,
/// DISPLAY_RESULTS, IPERF_DONE); it uses Foundation's JSON and may allocate.
/// The data path does not: received bytes are skipped and counted, and in
/// reverse mode a fixed pattern buffer is written as the send ring drains.
///
/// Ownership: the listener's `onAccept` holds the server while it listens;
/// `stop()` (or the stack going away) lets go. The test in progress holds
/// its connections, whose callbacks hold the session unowned and a data
/// stream strongly; every connection's callbacks are replaced or removed
/// when the session lets go of it, so no stream and connection keep each
/// other alive.
public final class IPerf3Server {
    public struct Counters: Sendable {
        /// Tests that reached TEST_RUNNING.
        public var tests: UInt64 = 0
        /// Tests that ended with IPERF_DONE.
        public var completed: UInt64 = 0
        /// Tests that ended otherwise (CLIENT_TERMINATE, a reset, a protocol error).
        public var aborted: UInt64 = 0
        /// Connections turned away with ACCESS_DENIED.
        public var denied: UInt64 = 0
        /// Data bytes received on data streams (cookies not counted).
        public var bytesReceived: UInt64 = 0
        /// Data bytes queued on data streams in reverse mode.
        public var bytesSent: UInt64 = 0
        /// Tests (or connections not yet in one) aborted because the client
        /// went silent (`idleTimeout`, `receiveTimeout`).
        public var timeouts: UInt64 = 0

        public var report: [(String, UInt64)] {
            [("iperf3-tests", tests), ("iperf3-completed", completed), ("iperf3-aborted", aborted),
             ("iperf3-denied", denied), ("iperf3-bytes-received", bytesReceived),
             ("iperf3-bytes-sent", bytesSent), ("iperf3-timeouts", timeouts)]
        }
    }

    /// What reverse mode sends: a fixed buffer, written again and again.
    static let pattern: [UInt8] = (0..<(256 * 1024)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 1) }

    /// Queues as much of the pattern as `c`'s send ring takes, from `offset`
    /// on (moved past what was queued). Returns the bytes queued. Client and
    /// server both send this way.
    static func writePattern(to c: TCPConnection, offset: inout Int) -> Int {
        var total = 0
        let p = sharedPattern
        while c.writableBytes > 0 {
            let n = c.write(p, range: offset..<p.count)
            guard n > 0 else { break }
            total += n
            offset = (offset + n) % p.count
        }
        return total
    }

    /// The pattern, handed to TCP by reference: sending it copies nothing
    /// (as iperf3 itself sends one buffer over and over).
    static let sharedPattern = SharedBytes(pattern)

    public let listener: TCPListener
    let clock: any NetClock
    /// How long the control connection may make no progress outside a
    /// running test (before TEST_START, awaiting the results or IPERF_DONE),
    /// and a stream connection before it joins a test; then the test is
    /// aborted (RSTs) and the server is free for the next client. iperf3's
    /// `--idle-timeout` (which has no default there: one silent client
    /// would keep everyone else out for ever).
    public var idleTimeout: Duration? = IPerf3Server.defaultIdleTimeout
    /// How long a running test's data stream may make no progress (no data
    /// received, or in reverse mode none acknowledged) before the test is
    /// aborted: iperf3's `--rcv-timeout`, whose default is 120 s. The control
    /// connection is silent while a test runs and is not timed then.
    public var receiveTimeout: Duration? = IPerf3Server.defaultReceiveTimeout
    public static let defaultIdleTimeout: Duration? = .seconds(60)
    public static let defaultReceiveTimeout: Duration? = .seconds(120)
    public internal(set) var counters = Counters()
    /// Lets the stack send what was queued on a connection from another
    /// connection's callback (the interface's `flushTCP`); a connection's own
    /// callbacks need none.
    let flush: (TCPConnection) -> Void
    /// The test in progress, if any.
    var test: IPerf3Session?
    /// The results the last client sent in EXCHANGE_RESULTS (its view of the test).
    public internal(set) var lastClientResults: IPerf3.Results?
    /// `stop()` was called.
    public private(set) var isStopped = false

    public static func install(on stack: Stack, port: UInt16 = 5201,
                               idleTimeout: Duration? = defaultIdleTimeout,
                               receiveTimeout: Duration? = defaultReceiveTimeout) throws -> IPerf3Server {
        _ = Self.sharedPattern.count
        // iperf3 sets TCP_NODELAY on the control connection: otherwise TEST_START
        // waits for the ACK of CREATE_STREAMS, which the client delays (40 ms),
        // and a reverse test's data starts that much before the client's clock.
        // Data streams share the port; bulk data fills whole segments anyway.
        var configuration = stack.tcp.defaultConfiguration
        configuration.noDelay = true
        let listener = try stack.listen(port: port, configuration: configuration)
        let server = IPerf3Server(listener: listener, clock: stack.clock) { [unowned stack] c in
            stack.tcp.flush(c, now: stack.clock.now)
        }
        server.idleTimeout = idleTimeout
        server.receiveTimeout = receiveTimeout
        listener.onAccept = { c in server.accept(c) }
        return server
    }

    init(listener: TCPListener, clock: any NetClock, flush: @escaping (TCPConnection) -> Void) {
        self.listener = listener
        self.clock = clock
        self.flush = flush
    }

    deinit {
        // The session's callbacks hold it unowned: they must not outlive it.
        test?.detach()
    }

    /// Stops serving: the listener closes (a new SYN draws a RST, handshakes
    /// in progress are reset), and a test in progress is told
    /// SERVER_TERMINATE, as `iperf3 -s` tells it on SIGTERM, and ends as
    /// aborted, its connections closed with a FIN after what they have queued.
    public func stop() {
        guard !isStopped else { return }
        isStopped = true
        listener.onAccept = nil
        listener.close()
        guard let test else { return }
        test.send(.serverTerminate)
        test.end(completed: false)
    }

    func accept(_ c: TCPConnection) {
        if let test {
            if test.wantsStreams {
                test.addCandidate(c)
            } else {
                deny(c)
            }
        } else {
            let session = IPerf3Session(server: self, control: c)
            test = session
            session.start()
        }
    }

    /// ACCESS_DENIED, then close, without reading (iperf_server_api.c, iperf_accept).
    func deny(_ c: TCPConnection) {
        counters.denied &+= 1
        _ = c.write(byte: IPerf3.State.accessDenied.byte)
        IPerf3Session.release(c)
    }

    func finished(_ session: IPerf3Session) {
        if test === session { test = nil }
    }
}

/// One test: its control connection and data streams.
final class IPerf3Session {
    enum Phase: Equatable {
        case cookie, parameters, creatingStreams, running, results, awaitingDone, done
    }

    final class Stream {
        let connection: TCPConnection
        var cookie: [UInt8] = []
        var bytes: UInt64 = 0
        var patternOffset = 0
        var id = 0
        init(connection: TCPConnection) { self.connection = connection }
    }

    unowned let server: IPerf3Server
    let control: TCPConnection
    var phase = Phase.cookie
    var inbox: [UInt8] = []
    var outbox: [UInt8] = []
    var cookie: [UInt8] = []
    var parameters = IPerf3.Parameters()
    var streams: [Stream] = []
    var candidates: [Stream] = []
    var startedAt: Instant?
    var endedAt: Instant?
    var rusageAtStart = rusage()

    init(server: IPerf3Server, control: TCPConnection) {
        self.server = server
        self.control = control
        control.onReadable = { [unowned self] c in self.controlReadable(c) }
        control.onWritable = { [unowned self] c in self.flush(c) }
        control.onStateChange = { [unowned self] c, _ in
            if c.state == .closed { self.end(completed: false) }
        }
        control.onIdle = { [unowned self] _ in self.timedOut() }
        control.idleTimeout = server.idleTimeout
    }

    /// A connection of the test went silent past its timeout: the test is
    /// aborted, every connection reset, and the server freed.
    func timedOut() {
        guard phase != .done else { return }
        server.counters.timeouts &+= 1
        end(completed: false, reset: true)
    }

    /// Once the server holds the session: the cookie may have come with the handshake's last ACK.
    func start() {
        if control.readableBytes > 0 { controlReadable(control) }
    }

    var wantsStreams: Bool { phase == .creatingStreams }

    // MARK: Control connection

    func send(_ state: IPerf3.State) { send([state.byte]) }

    func send(_ bytes: [UInt8]) {
        outbox += bytes
        flush(control)
    }

    func flush(_ c: TCPConnection) {
        guard !outbox.isEmpty else { return }
        let n = c.write(outbox)
        outbox.removeFirst(n)
    }

    func controlReadable(_ c: TCPConnection) {
        guard phase != .done else { return }
        c.read(appendingTo: &inbox)
        while phase != .done, step() {}
        if phase != .done && (c.isReadClosed || c.state == .closed) { end(completed: false) }
    }

    /// Takes one message off the inbox, if a whole one is there.
    func step() -> Bool {
        switch phase {
        case .cookie:
            guard inbox.count >= IPerf3.cookieSize else { return false }
            cookie = Array(inbox[..<IPerf3.cookieSize])
            inbox.removeFirst(IPerf3.cookieSize)
            phase = .parameters
            send(.paramExchange)
            return true
        case .parameters:
            guard let json = takeJSON() else { return false }
            do {
                parameters = try IPerf3.Parameters(json: json)
            } catch {
                return fail(.receiveParameters)
            }
            guard parameters.tcp && !parameters.udp && !parameters.sctp && !parameters.bidirectional else {
                return fail(.notImplemented)
            }
            phase = .creatingStreams
            send(.createStreams)
            return true
        case .results:
            guard let json = takeJSON() else { return false }
            guard let peer = try? IPerf3.Results(json: json) else { return fail(.receiveResults) }
            server.lastClientResults = peer
            send(IPerf3.frame(results().json()))
            send(.displayResults)
            phase = .awaitingDone
            return true
        case .creatingStreams, .running, .awaitingDone:
            guard let first = inbox.first else { return false }
            inbox.removeFirst()
            switch IPerf3.State(rawValue: Int8(bitPattern: first)) {
            case .testEnd where phase == .running:
                endedAt = server.clock.now
                phase = .results
                control.idleTimeout = server.idleTimeout
                // As iperf3 -s does: the data streams close now. A reverse-mode
                // client may be blocked reading a whole block; our FIN ends that.
                for s in streams {
                    Self.release(s.connection)
                    server.flush(s.connection)
                }
                send(.exchangeResults)
            case .iperfDone where phase == .awaitingDone:
                end(completed: true)
            case .clientTerminate:
                end(completed: false)
            default:
                return fail(.unknownMessage)
            }
            return true
        case .done:
            return false
        }
    }

    /// A length-framed JSON blob, if all of it has arrived.
    func takeJSON() -> [UInt8]? {
        guard inbox.count >= 4 else { return nil }
        let n = inbox[0..<4].reduce(0) { $0 << 8 | Int($1) }
        guard n <= IPerf3.maxJSONLength else {
            _ = fail(.receiveParameters)
            return nil
        }
        guard inbox.count >= 4 + n else { return nil }
        let json = Array(inbox[4..<(4 + n)])
        inbox.removeFirst(4 + n)
        return json
    }

    /// SERVER_ERROR, then iperf3's error number and errno (0), both 32-bit
    /// big-endian; then the test ends.
    func fail(_ error: IPerf3.ErrorCode) -> Bool {
        let e = UInt32(error.rawValue)
        send([IPerf3.State.serverError.byte, UInt8(e >> 24), UInt8(truncatingIfNeeded: e >> 16),
              UInt8(truncatingIfNeeded: e >> 8), UInt8(truncatingIfNeeded: e), 0, 0, 0, 0])
        end(completed: false)
        return false
    }

    // MARK: Data streams

    func addCandidate(_ c: TCPConnection) {
        let s = Stream(connection: c)
        candidates.append(s)
        // The stream holds the connection and these hold the stream: every
        // way out of `candidates` replaces or removes them (adopt, deny,
        // release, or here).
        // A stream that never sends its cookie.
        c.onIdle = { [unowned self] c in
            self.server.counters.timeouts &+= 1
            self.candidates.removeAll { $0 === s }
            Self.detachCallbacks(c)
            c.abort()
        }
        c.idleTimeout = server.idleTimeout
        c.onReadable = { [unowned self] c in self.candidateReadable(s) }
        c.onStateChange = { [unowned self] c, _ in
            guard c.state == .closed else { return }
            self.candidates.removeAll { $0 === s }
            c.removeCallbacks()
        }
        if c.readableBytes > 0 { candidateReadable(s) }
    }

    func candidateReadable(_ s: Stream) {
        let c = s.connection
        let want = IPerf3.cookieSize - s.cookie.count
        if want > 0 && c.readableBytes > 0 {
            c.read(appendingTo: &s.cookie, maxLength: want)
        }
        if s.cookie.count == IPerf3.cookieSize {
            candidates.removeAll { $0 === s }
            guard s.cookie == cookie, phase == .creatingStreams else {
                server.deny(c)
                return
            }
            adopt(s)
        } else if c.isReadClosed {
            candidates.removeAll { $0 === s }
            Self.release(c)
        }
    }

    func adopt(_ s: Stream) {
        s.id = IPerf3.streamID(index: streams.count)
        streams.append(s)
        let c = s.connection
        if parameters.reverse {
            c.onReadable = { [unowned self] c in
                c.skip(c.readableBytes)
                if c.isReadClosed || c.state == .closed { self.streamClosed(s) }
            }
            c.onWritable = { [unowned self] c in self.fill(s) }
        } else {
            // Counted and dropped where they arrived: no copy at all.
            c.onReceive = { [unowned self] _, bytes in
                s.bytes &+= UInt64(bytes.count)
                server.counters.bytesReceived &+= UInt64(bytes.count)
                return bytes.count
            }
            c.onReadable = { [unowned self] c in self.drain(s) }
        }
        c.onStateChange = nil
        c.onIdle = { [unowned self] _ in self.timedOut() }
        c.idleTimeout = server.receiveTimeout
        if parameters.reverse {
            c.skip(c.readableBytes)
        } else {
            drain(s)
        }
        if streams.count == parameters.parallel {
            phase = .running
            server.counters.tests &+= 1
            getrusage(RUSAGE_SELF.rawValue, &rusageAtStart)
            startedAt = server.clock.now
            // The control connection stays silent until TEST_END.
            control.idleTimeout = nil
            send(.testStart)
            send(.testRunning)
            // We are in the last stream's callback: the others need a flush.
            server.flush(control)
            if parameters.reverse {
                for other in streams {
                    fill(other)
                    if other !== s { server.flush(other.connection) }
                }
            }
        }
    }

    /// Forward mode: count and discard.
    func drain(_ s: Stream) {
        let c = s.connection
        let n = c.skip(c.readableBytes)
        s.bytes &+= UInt64(n)
        server.counters.bytesReceived &+= UInt64(n)
        if c.isReadClosed || c.state == .closed { streamClosed(s) }
    }

    /// Reverse mode: queue as much of the pattern as the send ring takes.
    func fill(_ s: Stream) {
        guard phase == .running else { return }
        let c = s.connection
        let total = IPerf3Server.writePattern(to: c, offset: &s.patternOffset)
        s.bytes &+= UInt64(total)
        server.counters.bytesSent &+= UInt64(total)
    }

    /// The client closed a data stream: close our side too.
    func streamClosed(_ s: Stream) {
        Self.release(s.connection)
    }

    // MARK: Results and teardown

    func results() -> IPerf3.Results {
        var r = IPerf3.Results()
        let start = startedAt ?? server.clock.now
        let end = endedAt ?? server.clock.now
        let elapsed = max(Double((end - start).nanoseconds) / 1e9, 0)
        var now = rusage()
        getrusage(RUSAGE_SELF.rawValue, &now)
        func seconds(_ a: timeval, _ b: timeval) -> Double {
            Double(a.tv_sec - b.tv_sec) + Double(a.tv_usec - b.tv_usec) / 1e6
        }
        if elapsed > 0 {
            r.cpuUtilUser = 100 * seconds(now.ru_utime, rusageAtStart.ru_utime) / elapsed
            r.cpuUtilSystem = 100 * seconds(now.ru_stime, rusageAtStart.ru_stime) / elapsed
            r.cpuUtilTotal = r.cpuUtilUser + r.cpuUtilSystem
        }
        r.senderHasRetransmits = parameters.reverse ? 1 : -1
        r.congestionUsed = (streams.first?.connection ?? control).congestionAlgorithm.rawValue
        r.streams = streams.map { s in
            IPerf3.StreamResult(id: s.id, bytes: s.bytes,
                                retransmits: parameters.reverse ? Int64(s.connection.segmentsRetransmitted) : -1,
                                startTime: 0, endTime: elapsed)
        }
        return r
    }

    /// Ends the test: closes everything and frees the server for the next client.
    /// With `reset`, every connection is aborted rather than closed.
    func end(completed: Bool, reset: Bool = false) {
        guard phase != .done else { return }
        phase = .done
        if completed {
            server.counters.completed &+= 1
        } else {
            server.counters.aborted &+= 1
        }
        let all = streams + candidates
        streams = []
        candidates = []
        for s in all {
            if reset {
                Self.detachCallbacks(s.connection)
                s.connection.abort()
            } else {
                Self.release(s.connection)
            }
            server.flush(s.connection)
        }
        control.onReadable = nil
        control.onWritable = nil
        control.onStateChange = nil
        control.onIdle = nil
        control.idleTimeout = nil
        if reset {
            outbox = []
            Self.detachCallbacks(control)
            control.abort()
            server.flush(control)
            server.finished(self)
            return
        }
        // Whatever is still queued (DISPLAY_RESULTS, an error) goes out before the FIN.
        flush(control)
        outbox = []
        Self.release(control)
        server.finished(self)
    }

    /// Lets go of every connection without closing them (the server is
    /// going away): their callbacks, which hold this session unowned and
    /// its streams, are removed.
    func detach() {
        for s in streams + candidates { s.connection.removeCallbacks() }
        control.removeCallbacks()
        streams = []
        candidates = []
    }

    /// Drops every callback of ours (before an abort, whose callbacks would
    /// come back into a session that is ending).
    static func detachCallbacks(_ c: TCPConnection) {
        c.idleTimeout = nil
        c.removeCallbacks()
    }

    /// Hands a connection back: further input is discarded, our side closes
    /// once nothing unread is left, and the callbacks hold nothing of ours.
    static func release(_ c: TCPConnection) {
        c.onIdle = nil
        c.idleTimeout = nil
        c.onWritable = nil
        c.onStateChange = nil
        c.onReceive = nil
        c.onReadable = { c in
            c.skip(c.readableBytes)
            if c.isReadClosed { c.close() }
        }
        c.skip(c.readableBytes)
        c.close()
    }
}
