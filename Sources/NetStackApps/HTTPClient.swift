import NetStack
import NetStackWire

/// A URL of the form `http://A.B.C.D[:PORT][/path][?query]` or
/// `http://[IPV6][:PORT]...` (RFC 3986 3.2.2): the only kinds the stack's
/// client fetches (no DNS, no TLS).
public struct HTTPURL: Equatable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    public var port: UInt16
    /// The request target: path and query, "/" at least.
    public var target: String
    /// The Host field: the authority as written.
    public var authority: String

    public init(address: IPv4Address, port: UInt16 = 80, target: String = "/") {
        self.init(address: .v4(address), port: port, target: target)
    }

    /// `address`'s text form brackets an IPv6 address, as the authority wants it.
    public init(address: IPAddress, port: UInt16 = 80, target: String = "/") {
        self.address = address
        self.port = port
        self.target = target
        authority = port == 80 ? "\(address)" : "\(address):\(port)"
    }

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case notHTTP
        case badHost(String)
        case badPort(String)
        case badTarget

        public var description: String {
            switch self {
            case .notHTTP: "only http:// URLs are supported"
            case .badHost(let h): "host '\(h)' is not an IPv4 address or a bracketed IPv6 one (names are not resolved)"
            case .badPort(let p): "bad port '\(p)'"
            case .badTarget: "the path may hold only visible ASCII characters (percent-encode the rest)"
            }
        }
    }

    public init(parsing text: String) throws(ParseError) {
        guard text.lowercased().hasPrefix("http://") else { throw .notHTTP }
        let rest = text.dropFirst(7)
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) ?? rest.endIndex
        let authority = rest[rest.startIndex..<authorityEnd]
        var afterAuthority = rest[authorityEnd...]
        if let hash = afterAuthority.firstIndex(of: "#") { afterAuthority = afterAuthority[..<hash] }
        guard !authority.contains("@") else { throw .badHost(String(authority)) }
        let hostPart: Substring
        var literal6: IPv6Address?
        if authority.hasPrefix("[") {
            // An IPv6 literal in brackets, then an optional port.
            guard let close = authority.firstIndex(of: "]"),
                  let a = IPv6Address(authority[authority.index(after: authority.startIndex)..<close]) else {
                throw .badHost(String(authority))
            }
            let after = authority[authority.index(after: close)...]
            if after.isEmpty {
                port = 80
            } else {
                let p = after.dropFirst()
                guard after.first == ":", let n = UInt16(p), n != 0 else { throw .badPort(String(p)) }
                port = n
            }
            literal6 = a
            hostPart = ""
        } else if let colon = authority.lastIndex(of: ":") {
            hostPart = authority[..<colon]
            let p = authority[authority.index(after: colon)...]
            guard let n = UInt16(p), n != 0 else { throw .badPort(String(p)) }
            port = n
        } else {
            hostPart = authority
            port = 80
        }
        if let literal6 {
            address = .v6(literal6)
        } else {
            guard let a = IPv4Address(hostPart) else { throw .badHost(String(hostPart)) }
            address = .v4(a)
        }
        var t = String(afterAuthority)
        if t.isEmpty || t.first == "?" { t = "/" + t }
        guard t.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else { throw .badTarget }
        target = t
        self.authority = String(authority)
    }

    public var description: String { "http://\(authority)\(target)" }
}

/// One `GET` over a stack connection: sends the request with
/// `Connection: close`, reads the response with `HTTPResponseParser`, passes
/// the body to `sink` as it arrives, and closes. Runs on the loop through the
/// connection's callbacks.
public final class HTTPGet {
    public let url: HTTPURL
    public private(set) var parser = HTTPResponseParser()
    public private(set) var connection: TCPConnection?
    /// Why the fetch failed, if it did (connection error, bad response, sink error).
    public private(set) var failure: String?
    /// Receives decoded body bytes; returns false to abandon the fetch (e.g. a write error).
    let sink: (Span<UInt8>) -> Bool
    private var closed = false
    private var closePending = false
    private var flush: ((TCPConnection, Instant) -> Void)?

    public init(url: HTTPURL, sink: @escaping (Span<UInt8>) -> Bool) {
        self.url = url
        self.sink = sink
    }

    deinit {
        // The connection's callbacks hold the fetch unowned: they must not outlive it.
        connection?.removeCallbacks()
    }

    /// The request as sent.
    public var requestBytes: [UInt8] {
        Array("GET \(url.target) HTTP/1.1\r\nHost: \(url.authority)\r\nUser-Agent: netstack\r\nAccept: */*\r\nConnection: close\r\n\r\n".utf8)
    }

    /// Opens the connection and queues the request; it leaves once the handshake completes.
    /// Call `turn(now:)` on every turn of the loop (`EventLoop.onTurn`): the
    /// connection is closed from there, not from inside a receive callback.
    public func start(on stack: Stack, configuration: TCPConfiguration? = nil) throws(TCPConnectError) {
        let c = try stack.connect(to: url.address, port: url.port, configuration: configuration)
        connection = c
        flush = { [unowned stack] c, now in stack.tcp.flush(c, now: now) }
        // The parser reads the bytes in the frame they arrived in while nothing
        // waits in the receive ring, and from the ring (`readable`) otherwise.
        c.onReceive = { [unowned self] _, bytes in
            feed(bytes)
            if parser.isComplete || failure != nil { closePending = true }
            return bytes.count
        }
        c.onReadable = { [unowned self] c in self.readable(c) }
        c.onStateChange = { [unowned self] c, _ in
            if c.state == .closed { self.connectionClosed(c) }
        }
        let request = requestBytes
        let n = c.write(request)
        precondition(n == request.count, "the request does not fit an empty send ring")
        stack.tcp.flush(c, now: stack.clock.now)
    }

    /// Closes the connection once the response is complete. Run from the loop
    /// rather than from `onReadable`: the segment that completes the body often
    /// carries the server's FIN too, which the connection processes after the
    /// callback returns. Closing in the callback would send our FIN first and
    /// make it a simultaneous close (both ends in TIME-WAIT); closing after it
    /// is an ordinary passive close (CLOSE-WAIT, LAST-ACK).
    public func turn(now: Instant) {
        guard closePending, !closed, let c = connection else { return }
        closed = true
        closePending = false
        if c.state == .closed { return }
        if failure != nil {
            c.abort()
        } else {
            if c.readableBytes > 0 { c.skip(c.readableBytes) }
            c.close()
        }
        flush?(c, now)
    }

    /// The response is complete (or failed) and the connection has finished
    /// closing: CLOSED, or TIME-WAIT after our FIN and the peer's were both acknowledged.
    public var isFinished: Bool {
        guard let c = connection else { return failure != nil }
        return (parser.isComplete || failure != nil) && (c.state == .closed || c.state == .timeWait)
    }

    /// Succeeded: a complete 2xx response.
    public var succeeded: Bool {
        failure == nil && parser.isComplete && (200...299).contains(parser.status ?? 0)
    }

    /// Gives up: resets the connection (a timeout, say).
    public func abort(reason: String) {
        if failure == nil { failure = reason }
        if let c = connection, c.state != .closed { c.abort() }
    }

    private func readable(_ c: TCPConnection) {
        // The parser reads the bytes where they lie in the receive ring; then they are dropped
        // (after a complete response, trailing bytes are dropped unread).
        let n = c.readableBytes
        if n > 0 && !parser.isComplete && failure == nil {
            c.peek { a, b in
                feed(a)
                feed(b)
            }
        }
        c.skip(n)
        if failure != nil {
            // Closing raises one more readable callback, which finds the connection closed.
            if c.state != .closed { c.abort() }
            return
        }
        if c.state == .closed { return }
        if c.isReadClosed && !parser.isComplete && failure == nil {
            do { try parser.finish() } catch { failure = "\(error)" }
        }
        if parser.isComplete || failure != nil { closePending = true }
    }

    /// Hands `bytes` to the parser, and the body it decodes to the sink.
    private func feed(_ bytes: Span<UInt8>) {
        guard !bytes.isEmpty, !parser.isComplete, failure == nil else { return }
        do {
            try parser.feed(bytes) { body in
                if failure == nil && !sink(body) { failure = "cannot write the body" }
            }
        } catch {
            failure = "bad response: \(error)"
        }
    }

    private func connectionClosed(_ c: TCPConnection) {
        if !parser.isComplete && failure == nil {
            failure = c.error.map { "\($0)" } ?? "connection closed before the response was complete"
        }
    }
}
