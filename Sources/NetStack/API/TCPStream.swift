import NetStackWire

/// An async face over a `TCPConnection` for applications that prefer
/// `await` to callbacks. Every method must run on the loop's executor (start
/// tasks with `Task(executorPreference: stack.executor)`), which debug builds
/// check; the stream suspends a task until the connection has data, room, or
/// reaches the state asked for. What it writes leaves in the same loop turn.
///
/// A stream takes over its connection's callbacks. `@unchecked Sendable` so a
/// task may carry it; the loop-thread check is what keeps that honest.
public final class TCPStream: @unchecked Sendable {
    public let connection: TCPConnection
    private let executor: LoopExecutor
    private var readWaiter: CheckedContinuation<Void, Never>?
    private var writeWaiter: CheckedContinuation<Void, Never>?
    private var stateWaiters: [CheckedContinuation<Void, Never>] = []

    init(_ connection: TCPConnection, executor: LoopExecutor) {
        self.connection = connection
        self.executor = executor
        // Weak, not unowned: an application may drop its stream while the
        // connection lives on (and another stream may take the connection
        // over), and a callback into a freed stream would trap. A weak
        // reference costs the stream a side table, once; streams serve async
        // applications, not the services' per-segment paths.
        connection.onReadable = { [weak self] _ in
            guard let self else { return }
            resume(&readWaiter)
        }
        connection.onWritable = { [weak self] _ in
            guard let self else { return }
            resume(&writeWaiter)
        }
        connection.onStateChange = { [weak self] _, _ in
            guard let self else { return }
            resume(&readWaiter)
            resume(&writeWaiter)
            let waiters = stateWaiters
            stateWaiters.removeAll()
            for w in waiters { w.resume() }
        }
    }

    /// Debug builds stop a stream used off its loop's thread.
    @inline(__always)
    private func checkLoop() {
        assert(executor.isOnLoopThread, "TCPStream used off its event loop's thread")
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
        checkLoop()
        while connection.readableBytes == 0 {
            if let e = connection.error { throw e }
            if connection.isReadClosed { return false }
            await withCheckedContinuation { readWaiter = $0 }
        }
        return true
    }

    /// Waits until the send ring has room.
    private func waitWritable() async throws(TCPError) {
        checkLoop()
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
        return n
    }

    /// Reads up to `maxLength` bytes; an empty array means end of stream.
    public func read(maxLength: Int = 65536) async throws(TCPError) -> [UInt8] {
        guard try await waitReadable() else { return [] }
        let n = min(maxLength, connection.readableBytes)
        let out = [UInt8](unsafeUninitializedCapacity: n) { buffer, count in
            count = connection.read(into: UnsafeMutableRawBufferPointer(buffer))
        }
        return out
    }

    /// Writes all of `bytes`, waiting for room in the send ring as needed.
    public func write(_ bytes: [UInt8]) async throws(TCPError) {
        var offset = 0
        while offset < bytes.count {
            try await waitWritable()
            offset += bytes.withUnsafeBytes { connection.write(UnsafeRawBufferPointer(rebasing: $0[offset...])) }
        }
    }

    /// Sends FIN after the queued data; reading continues until the peer closes.
    public func shutdownWrite() {
        checkLoop()
        connection.shutdownWrite()
    }

    /// Closes and waits until our FIN is acknowledged (TIME-WAIT or CLOSED), or the connection fails.
    public func close() async {
        checkLoop()
        connection.close()
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
        // Weak: a dropped acceptor must not be called into (see TCPStream).
        listener.onAccept = { [weak self] c in
            guard let self else { return }
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
