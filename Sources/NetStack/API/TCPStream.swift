import NetStackWire

/// An async face over a `TCPConnection` for applications that prefer
/// `await` to callbacks. Every method must run on the loop's executor (start
/// tasks with `Task(executorPreference: loop.executor)`); the stream suspends
/// a task until the connection has data, room, or reaches the state asked for.
///
/// A stream takes over its connection's callbacks.
public final class TCPStream: @unchecked Sendable {
    public let connection: TCPConnection
    /// Lets the stack send what was just written (the interface's `flushTCP`).
    private let flush: (TCPConnection) -> Void
    private var readWaiter: CheckedContinuation<Void, Never>?
    private var writeWaiter: CheckedContinuation<Void, Never>?
    private var stateWaiters: [CheckedContinuation<Void, Never>] = []

    init(_ connection: TCPConnection, flush: @escaping (TCPConnection) -> Void) {
        self.connection = connection
        self.flush = flush
        connection.onReadable = { [unowned self] _ in resume(&readWaiter) }
        connection.onWritable = { [unowned self] _ in resume(&writeWaiter) }
        connection.onStateChange = { [unowned self] _, _ in
            resume(&readWaiter)
            resume(&writeWaiter)
            let waiters = stateWaiters
            stateWaiters.removeAll()
            for w in waiters { w.resume() }
        }
    }

    private func resume(_ waiter: inout CheckedContinuation<Void, Never>?) {
        if let w = waiter {
            waiter = nil
            w.resume()
        }
    }

    public var tuple: TCPFourTuple { connection.tuple }
    public var state: TCPState { connection.state }

    /// Waits until bytes can be read; false at the end of the stream.
    private func waitReadable() async throws(TCPError) -> Bool {
        while connection.readableBytes == 0 {
            if let e = connection.error { throw e }
            if connection.isReadClosed { return false }
            await withCheckedContinuation { readWaiter = $0 }
        }
        return true
    }

    /// Waits until the send ring has room.
    private func waitWritable() async throws(TCPError) {
        while connection.writableBytes == 0 {
            if let e = connection.error { throw e }
            guard connection.state.acceptsWrites else { throw .aborted }
            await withCheckedContinuation { writeWaiter = $0 }
        }
    }

    /// Reads into `buffer`, waiting for at least one byte. Returns 0 at the end
    /// of the stream (the peer closed). Throws if the connection failed. The
    /// buffer must stay valid across the suspension.
    public func read(into buffer: UnsafeMutableRawBufferPointer) async throws(TCPError) -> Int {
        guard try await waitReadable() else { return 0 }
        let n = connection.read(into: buffer)
        flush(connection)  // a window update may be due
        return n
    }

    /// Reads up to `maxLength` bytes; an empty array means end of stream.
    public func read(maxLength: Int = 65536) async throws(TCPError) -> [UInt8] {
        guard try await waitReadable() else { return [] }
        let n = min(maxLength, connection.readableBytes)
        let out = [UInt8](unsafeUninitializedCapacity: n) { buffer, count in
            count = connection.read(into: UnsafeMutableRawBufferPointer(buffer))
        }
        flush(connection)
        return out
    }

    /// Writes all of `bytes`, waiting for room in the send ring as needed.
    public func write(_ bytes: [UInt8]) async throws(TCPError) {
        var offset = 0
        while offset < bytes.count {
            try await waitWritable()
            offset += bytes.withUnsafeBytes { connection.write(UnsafeRawBufferPointer(rebasing: $0[offset...])) }
            flush(connection)
        }
    }

    /// Sends FIN after the queued data; reading continues until the peer closes.
    public func shutdownWrite() {
        connection.shutdownWrite()
        flush(connection)
    }

    /// Closes and waits until our FIN is acknowledged (TIME-WAIT or CLOSED), or the connection fails.
    public func close() async {
        connection.close()
        flush(connection)
        await waitUntil { $0 == .closed || $0 == .timeWait || $0 == .finWait2 }
    }

    /// Waits until `predicate` holds for the state.
    func waitUntil(_ predicate: (TCPState) -> Bool) async {
        while !predicate(connection.state) {
            await withCheckedContinuation { stateWaiters.append($0) }
        }
    }
}

/// An async face over a `TCPListener`.
public final class TCPAcceptor: @unchecked Sendable {
    public let listener: TCPListener
    private let makeStream: (TCPConnection) -> TCPStream
    private var waiter: CheckedContinuation<Void, Never>?
    private var ready: [TCPConnection] = []

    init(_ listener: TCPListener, makeStream: @escaping (TCPConnection) -> TCPStream) {
        self.listener = listener
        self.makeStream = makeStream
        listener.onAccept = { [unowned self] c in
            ready.append(c)
            if let w = waiter {
                waiter = nil
                w.resume()
            }
        }
    }

    /// Waits for the next connection.
    public func accept() async -> TCPStream {
        while ready.isEmpty { await withCheckedContinuation { waiter = $0 } }
        return makeStream(ready.removeFirst())
    }
}

extension EventLoop {
    /// Listens on `port`, accepting with `await`.
    public func acceptor(port: UInt16, backlog: Int = 128,
                         configuration: TCPConfiguration? = nil) throws(TCPListenError) -> TCPAcceptor {
        let l = try interface.listenTCP(port: port, backlog: backlog, configuration: configuration)
        return TCPAcceptor(l) { [unowned self] c in stream(for: c) }
    }

    /// Opens a connection and waits for the handshake. Throws `TCPError.connectionRefused`
    /// or `.timedOut` if it fails, `TCPConnectError` if it cannot start.
    public func connect(to address: IPv4Address, port: UInt16,
                        configuration: TCPConfiguration? = nil) async throws -> TCPStream {
        let c = try interface.connectTCP(to: address, port: port, configuration: configuration, now: clock.now)
        let s = stream(for: c)
        await s.waitUntil { $0 != .synSent && $0 != .synReceived }
        if let e = c.error { throw e }
        return s
    }

    func stream(for c: TCPConnection) -> TCPStream {
        TCPStream(c) { [unowned self] c in interface.flushTCP(c, now: clock.now) }
    }
}
