import NetStack

/// An HTTP/1.1 origin server (RFC 9110, RFC 9112) running on the stack's event
/// loop through connection callbacks.
///
/// - Requests are parsed from each connection's receive ring: the head (request
///   line and fields, at most `maxHeaderBytes`, else 431) is copied once into a
///   scratch buffer shared by every connection of the server, since the loop
///   runs one callback at a time. Malformed heads get 400, methods other than
///   GET and HEAD get 405 with `Allow`, HTTP/2+ versions 505, transfer-coded
///   request bodies 501.
/// - Connections persist by default for HTTP/1.1 and close after the response
///   for HTTP/1.0 unless it asked for keep-alive; `Connection: close` is
///   honoured. Pipelined requests are answered in order, one at a time: the
///   next head is parsed only when the previous response is fully queued.
/// - `/bytes/N` answers N bytes (0 <= N <= 2^40), byte i being i % 251, copied
///   into the send ring from one precomputed block of 251 * 256 bytes as ring
///   space opens up (`onWritable`); N bytes never exist at once.
/// - With a root directory, other paths are files under it: percent-decoded,
///   normalised (`.` and `..` resolved; climbing above the root is 403), then
///   resolved with realpath(3) so a symbolic link cannot lead outside the root
///   (403). Directories serve their index.html. Files are opened through
///   NetStack's `FileLookup`: the length comes from fstat(2) and the file is
///   read in chunks (`FileSource`) into the send ring as it drains.
/// - Everything else is 404.
///
/// Per connection the server allocates one small session object and its
/// callbacks; per request nothing.
///
/// Ownership: the listener's `onAccept` holds the server, so it serves while
/// it listens even if nobody else keeps it; `stop()` (or the stack going
/// away) lets go. The server holds a session per open connection, the
/// session its connection, the connection's callbacks the session; that
/// cycle is broken when the connection reaches CLOSED, and by `stop()` and
/// the server's deinit, so nothing outlives its use.
public final class HTTPServer {
    public struct Configuration: Sendable {
        /// Directory whose files are served; nil serves only `/bytes/N`.
        public var root: String?
        /// Largest request head (request line and fields) accepted; beyond it, 431.
        public var maxHeaderBytes = 16 * 1024
        /// Bytes read from a file per read(2).
        public var fileChunkSize = 64 * 1024
        /// TCP settings of accepted connections (nil: the interface's defaults).
        public var tcp: TCPConfiguration?
        /// A connection whose client makes no progress for this long is
        /// closed: between requests with a FIN (a keep-alive connection left
        /// idle, nginx's `keepalive_timeout`, 75 s there, Apache's 5 s), in
        /// the middle of a request or response with a RST (a client that stopped
        /// sending its head or reading the body: nginx's `client_header_timeout`
        /// and `send_timeout`, 60 s). Nil: never.
        public var idleTimeout: Duration? = .seconds(60)

        public init(root: String? = nil, tcp: TCPConfiguration? = nil) {
            self.root = root
            self.tcp = tcp
        }
    }

    public struct Counters: Sendable {
        public var connections: UInt64 = 0
        public var requests: UInt64 = 0
        public var responses2xx: UInt64 = 0
        public var responses4xx: UInt64 = 0
        public var responses5xx: UInt64 = 0
        /// Body bytes queued on connections (HEAD answers count none).
        public var bodyBytes: UInt64 = 0
        /// Files that could not be read to their stat(2) length; the connection was reset.
        public var fileErrors: UInt64 = 0
        /// Connections closed or reset by `Configuration.idleTimeout`.
        public var idleTimeouts: UInt64 = 0

        public var report: [(String, UInt64)] {
            [("http-connections", connections), ("http-requests", requests),
             ("http-responses-2xx", responses2xx), ("http-responses-4xx", responses4xx),
             ("http-responses-5xx", responses5xx), ("http-body-bytes", bodyBytes),
             ("http-file-errors", fileErrors), ("http-idle-timeouts", idleTimeouts)]
        }
    }

    /// The largest N of `/bytes/N`.
    public static let maxPatternLength: UInt64 = 1 << 40
    /// Room a response head needs in the send ring before a request is taken on.
    static let responseHeadCapacity = 512
    /// One block of the `/bytes/N` pattern: 256 periods of 251, so any offset
    /// mod 251 starts a run of at least 255 * 251 bytes.
    static let pattern: [UInt8] = (0..<(251 * 256)).map { UInt8($0 % 251) }
    /// `pattern`, handed to TCP by reference (`SharedBytes`).
    static let sharedPattern = SharedBytes(pattern)

    public let listener: TCPListener
    public let configuration: Configuration
    public internal(set) var counters = Counters()
    /// The sessions of the connections being served, so `stop` can close them.
    var sessions: [ObjectIdentifier: HTTPSession] = [:]
    /// `stop()` was called.
    public private(set) var isStopped = false
    /// The root after realpath(3), without a trailing slash (empty for "/").
    let root: [UInt8]?

    // Scratch shared by all sessions: the loop runs one callback at a time. Each
    // buffer's capacity is reserved here; using it allocates nothing. A user
    // that needs a span of one moves it into a local and back (`withScratch`).
    /// Largest request head copied out of a receive ring.
    let headLimit: Int
    /// Bytes read from a file per read(2).
    let fileChunk: Int
    var headScratch: [UInt8]
    var responseHead: ByteWriter
    var fileScratch: [UInt8]
    /// The request path mapped under the root, as it is normalised.
    var pathWriter: ByteWriter
    /// realpath(3) of `pathWriter`'s path.
    var resolved: [UInt8]
    let lookup: FileLookup

    /// Listens on `port` of `stack` and serves every connection it accepts.
    public static func install(on stack: Stack, port: UInt16 = 80,
                               configuration: Configuration = Configuration()) throws -> HTTPServer {
        let lookup = FileLookup()
        let root = try configuration.root.map { try Self.resolveRoot($0, lookup: lookup) }
        // Build the pattern now, not in the first request's callback.
        _ = Self.sharedPattern.count
        let listener = try stack.listen(port: port, configuration: configuration.tcp)
        let server = HTTPServer(listener: listener, configuration: configuration, root: root, lookup: lookup)
        listener.onAccept = { connection in server.accept(connection) }
        return server
    }

    init(listener: TCPListener, configuration: Configuration, root: [UInt8]?, lookup: FileLookup = FileLookup()) {
        self.listener = listener
        self.configuration = configuration
        self.root = root
        self.lookup = lookup
        headLimit = max(configuration.maxHeaderBytes, 64)
        fileChunk = max(configuration.fileChunkSize, 512)
        headScratch = []
        headScratch.reserveCapacity(headLimit)
        responseHead = ByteWriter(capacity: Self.responseHeadCapacity)
        fileScratch = []
        fileScratch.reserveCapacity(fileChunk)
        pathWriter = ByteWriter(capacity: lookup.maxPathLength)
        resolved = []
        resolved.reserveCapacity(lookup.maxPathLength + 1)
    }

    deinit {
        for session in sessions.values { session.detach() }
    }

    /// Connections being served.
    public var connectionCount: Int { sessions.count }

    /// Stops serving: the listener closes (a new SYN draws a RST, handshakes
    /// in progress are reset) and every connection closes with a FIN after
    /// what it has queued; a response not yet all queued is cut short there
    /// (its Content-Length tells the client). The server lets go of each
    /// connection as it reaches CLOSED, and is freed when its owner lets go.
    public func stop() {
        guard !isStopped else { return }
        isStopped = true
        listener.onAccept = nil
        listener.close()
        for session in Array(sessions.values) { session.stop() }
    }

    public enum RootError: Error, CustomStringConvertible {
        case unusable(path: String, reason: String)
        public var description: String {
            switch self {
            case .unusable(let path, let reason): "root '\(path)': \(reason)"
            }
        }
    }

    /// realpath(3) of the root, which must be a directory.
    static func resolveRoot(_ path: String, lookup: FileLookup) throws -> [UInt8] {
        let bytes = Array(path.utf8)
        var resolved: [UInt8] = []
        do {
            try lookup.realPath(bytes.span, into: &resolved)
        } catch {
            throw RootError.unusable(path: path, reason: error.description)
        }
        guard (try? lookup.kind(of: resolved.span)) == .directory else {
            throw RootError.unusable(path: path, reason: "not a directory")
        }
        if resolved == [ASCII.slash] { resolved = [] }
        return resolved
    }

    func accept(_ connection: TCPConnection) {
        counters.connections &+= 1
        let session = HTTPSession(server: self, connection: connection)
        sessions[ObjectIdentifier(session)] = session
        connection.onReadable = { c in session.drive(c) }
        connection.onWritable = { c in session.drive(c) }
        connection.onStateChange = { c, _ in
            if c.state == .closed { session.finished() }
        }
        if let t = configuration.idleTimeout {
            connection.onIdle = { c in session.timedOut(c) }
            connection.idleTimeout = t
        }
        // A request may have come with the handshake's last ACK.
        session.drive(connection)
    }

    // MARK: Responses

    enum Status {
        case ok, badRequest, forbidden, notFound, methodNotAllowed, headersTooLarge, notImplemented,
             versionNotSupported

        var line: String {
            switch self {
            case .ok: "HTTP/1.1 200 OK\r\n"
            case .badRequest: "HTTP/1.1 400 Bad Request\r\n"
            case .forbidden: "HTTP/1.1 403 Forbidden\r\n"
            case .notFound: "HTTP/1.1 404 Not Found\r\n"
            case .methodNotAllowed: "HTTP/1.1 405 Method Not Allowed\r\n"
            case .headersTooLarge: "HTTP/1.1 431 Request Header Fields Too Large\r\n"
            case .notImplemented: "HTTP/1.1 501 Not Implemented\r\n"
            case .versionNotSupported: "HTTP/1.1 505 HTTP Version Not Supported\r\n"
            }
        }

        /// The text body of an error answer.
        var text: StaticString {
            switch self {
            case .ok: "OK\n"
            case .badRequest: "400 Bad Request\n"
            case .forbidden: "403 Forbidden\n"
            case .notFound: "404 Not Found\n"
            case .methodNotAllowed: "405 Method Not Allowed\n"
            case .headersTooLarge: "431 Request Header Fields Too Large\n"
            case .notImplemented: "501 Not Implemented\n"
            case .versionNotSupported: "505 HTTP Version Not Supported\n"
            }
        }
    }

    func count(_ status: Status) {
        switch status {
        case .ok: counters.responses2xx &+= 1
        case .notImplemented, .versionNotSupported: counters.responses5xx &+= 1
        default: counters.responses4xx &+= 1
        }
    }

    /// Builds a response head in `responseHead` and queues it on `c`. Returns
    /// false if it did not all fit.
    func writeResponseHead(_ status: Status, contentType: String, length: UInt64, close: Bool,
                           http10: Bool, to c: TCPConnection) -> Bool {
        responseHead.reset()
        responseHead.append(status.line)
        responseHead.append("Server: netstack\r\nContent-Type: ")
        responseHead.append(contentType)
        responseHead.append("\r\nContent-Length: ")
        responseHead.append(decimal: length)
        responseHead.append("\r\n")
        if status == .methodNotAllowed { responseHead.append("Allow: GET, HEAD\r\n") }
        if close {
            responseHead.append("Connection: close\r\n")
        } else if http10 {
            responseHead.append("Connection: keep-alive\r\n")
        }
        responseHead.append("\r\n")
        precondition(!responseHead.overflowed, "response head larger than its scratch")
        return c.write(responseHead.bytes) == responseHead.count
    }

    // MARK: Files

    enum FileAnswer {
        case found(FileSource, contentType: String)
        case refused(Status)
    }

    /// Maps a request path to a file under the root and opens it.
    func openFile(_ path: Span<UInt8>) -> FileAnswer {
        guard let root else { return .refused(.notFound) }
        return Self.openFile(path, root: root, lookup: lookup, writer: &pathWriter, resolved: &resolved)
    }

    /// `openFile` with the server's path buffers lent to it.
    private static func openFile(_ path: Span<UInt8>, root: [UInt8], lookup: FileLookup, writer pathWriter: inout ByteWriter,
                                 resolved: inout [UInt8]) -> FileAnswer {
        pathWriter.reset()
        pathWriter.append(root)
        let rootLength = pathWriter.count
        // Percent-decode and normalise segment by segment (RFC 3986 5.2.4 on the decoded path).
        var i = 0
        while i < path.count {
            guard path[i] == ASCII.slash else { return .refused(.badRequest) }
            i += 1
            let segmentStart = pathWriter.count
            pathWriter.append(byte: ASCII.slash)
            while i < path.count && path[i] != ASCII.slash {
                var b = path[i]
                if b == ASCII.percent {
                    guard i + 2 < path.count, let hi = ASCII.hexValue(path[i + 1]),
                          let lo = ASCII.hexValue(path[i + 2]) else { return .refused(.badRequest) }
                    b = hi << 4 | lo
                    i += 2
                    // An encoded slash would split a segment the client kept whole.
                    if b == ASCII.slash { return .refused(.notFound) }
                    if b == 0 { return .refused(.badRequest) }
                }
                pathWriter.append(byte: b)
                i += 1
            }
            if pathWriter.overflowed { return .refused(.notFound) }
            // Indexed, not sliced: a live slice would make truncating copy the buffer.
            let segmentLength = pathWriter.count - segmentStart - 1
            let dots = segmentLength <= 2 && segmentLength > 0 && pathWriter.bytes[segmentStart + 1] == ASCII.dot
                && pathWriter.bytes[segmentStart + segmentLength] == ASCII.dot
            if segmentLength == 0 || (segmentLength == 1 && dots) {
                pathWriter.truncate(to: segmentStart)
            } else if segmentLength == 2 && dots {
                pathWriter.truncate(to: segmentStart)
                guard pathWriter.count > rootLength else { return .refused(.forbidden) }
                var p = pathWriter.count - 1
                while p > rootLength && pathWriter.bytes[p] != ASCII.slash { p -= 1 }
                pathWriter.truncate(to: p)
            }
        }
        for attempt in 0..<2 {
            if attempt == 1 { pathWriter.append("/index.html") }
            guard !pathWriter.overflowed else { return .refused(.notFound) }
            do {
                try lookup.realPath(pathWriter.bytes.span, into: &resolved)
            } catch {
                return .refused(error.isPermissionDenied ? .forbidden : .notFound)
            }
            // The resolved path must still be the root or below it.
            let under = resolved.count >= root.count && resolved[..<root.count] == root[...]
                && (resolved.count == root.count || resolved[root.count] == ASCII.slash)
            guard under else { return .refused(.forbidden) }
            let file: FileSource
            do {
                file = try lookup.open(resolved.span)
            } catch {
                return .refused(error.isPermissionDenied ? .forbidden : .notFound)
            }
            switch file.kind {
            case .regular:
                return .found(file, contentType: contentType(of: resolved.span))
            case .directory:
                file.close()
                // Serve the directory's index.html, from the resolved directory.
                pathWriter.reset()
                pathWriter.append(resolved)
            case .other:
                file.close()
                return .refused(.notFound)
            }
        }
        return .refused(.notFound)
    }

    /// A media type from the file name's extension.
    static func contentType(of path: Span<UInt8>) -> String {
        var dot = path.count
        var i = path.count
        while i > 0 {
            i -= 1
            if path[i] == ASCII.slash { break }
            if path[i] == ASCII.dot { dot = i; break }
        }
        guard dot < path.count else { return "application/octet-stream" }
        let ext = path.extracting((dot + 1)...)
        if ASCII.equalsLowercase(ext, "html") || ASCII.equalsLowercase(ext, "htm") { return "text/html; charset=utf-8" }
        if ASCII.equalsLowercase(ext, "txt") || ASCII.equalsLowercase(ext, "md") { return "text/plain; charset=utf-8" }
        if ASCII.equalsLowercase(ext, "css") { return "text/css" }
        if ASCII.equalsLowercase(ext, "js") { return "text/javascript" }
        if ASCII.equalsLowercase(ext, "json") { return "application/json" }
        if ASCII.equalsLowercase(ext, "png") { return "image/png" }
        if ASCII.equalsLowercase(ext, "jpg") || ASCII.equalsLowercase(ext, "jpeg") { return "image/jpeg" }
        if ASCII.equalsLowercase(ext, "gif") { return "image/gif" }
        if ASCII.equalsLowercase(ext, "svg") { return "image/svg+xml" }
        if ASCII.equalsLowercase(ext, "pdf") { return "application/pdf" }
        if ASCII.equalsLowercase(ext, "pcap") { return "application/vnd.tcpdump.pcap" }
        return "application/octet-stream"
    }
}

/// One connection's progress through its requests.
final class HTTPSession {
    /// Unowned: the server holds its sessions, and detaches them (deinit)
    /// before it goes.
    unowned let server: HTTPServer
    /// The connection served, until it reaches CLOSED.
    private(set) var connection: TCPConnection?

    /// The body of the response being sent.
    enum Body {
        case none
        case pattern(offset: UInt64, remaining: UInt64)
        case file(FileSource, remaining: UInt64)
    }

    var body = Body.none
    /// Bytes of the current request's body still to skip before the next head.
    var requestBodyRemaining = 0
    /// Close once the current response is queued.
    var closeAfterResponse = false
    /// We closed (or reset) the connection; anything more that arrives is dropped.
    var closing = false

    init(server: HTTPServer, connection: TCPConnection) {
        self.server = server
        self.connection = connection
    }

    deinit { release() }

    /// The connection reached CLOSED: the server forgets the session, and
    /// the connection's callbacks, which hold it, go.
    func finished() {
        release()
        closing = true
        server.sessions[ObjectIdentifier(self)] = nil
        detach()
    }

    /// Lets go of the connection and its callbacks (which hold the session).
    func detach() {
        connection?.removeCallbacks()
        connection = nil
    }

    /// The server stops: close after what is queued.
    func stop() {
        guard let c = connection, !closing else { return }
        closeNow(c)
    }

    /// Closes the file being sent, if any.
    func release() {
        if case .file(let file, _) = body { file.close() }
        body = .none
    }

    /// Does whatever can be done now: continue the response, skip a request
    /// body, take on the next request. Called on every callback.
    func drive(_ c: TCPConnection) {
        if c.state == .closed {
            release()
            closing = true
            return
        }
        if closing {
            if c.readableBytes > 0 { c.skip(c.readableBytes) }
            return
        }
        // Bounded: each turn answers one request, and at most this many per callback
        // (an acknowledgment of what they sent brings the next callback).
        for _ in 0..<256 {
            if !isIdle {
                pump(c)
                if !isIdle || closing { return }
            }
            if closeAfterResponse {
                closeNow(c)
                return
            }
            if requestBodyRemaining > 0 {
                requestBodyRemaining -= c.skip(requestBodyRemaining)
                if requestBodyRemaining > 0 {
                    if c.isReadClosed { closeNow(c) }
                    return
                }
            }
            if c.readableBytes == 0 {
                if c.isReadClosed { closeNow(c) }
                return
            }
            // Wait for room for a whole response head.
            guard c.writableBytes >= HTTPServer.responseHeadCapacity else { return }
            guard takeRequest(c) else { return }
        }
    }

    var isIdle: Bool {
        if case .none = body { return true }
        return false
    }

    /// The client made no progress for the idle timeout: between requests
    /// the connection is closed (a FIN: a keep-alive client may simply be
    /// done); with a request head half received or a response unsent it is
    /// reset, since a FIN would wait behind data the peer does not take.
    func timedOut(_ c: TCPConnection) {
        guard !closing else { return }
        server.counters.idleTimeouts &+= 1
        if isIdle && c.readableBytes == 0 && requestBodyRemaining == 0 {
            closeNow(c)
        } else {
            closing = true
            release()
            c.abort()
        }
    }

    /// Half-closes after the queued response (a FIN follows it) and drops
    /// unread input, which would otherwise make close() reset the connection.
    func closeNow(_ c: TCPConnection) {
        closing = true
        release()
        if c.readableBytes > 0 { c.skip(c.readableBytes) }
        c.close()
    }

    /// Parses the next request head in the receive ring and answers it.
    /// Returns false if the head is incomplete (wait for more) or the connection is closing.
    private func takeRequest(_ c: TCPConnection) -> Bool {
        // The server's head scratch, moved here while the head is parsed and answered.
        var scratch = server.headScratch
        server.headScratch = []
        defer { server.headScratch = scratch }
        let limit = server.headLimit
        var available = copyHead(c, into: &scratch, limit: limit)
        // RFC 9112 2.2: empty lines before a request line are ignored.
        guard let blank = HTTPRequestParser.leadingEmptyLines(in: scratch.span) else { return false }
        if blank > 0 {
            c.skip(blank)
            available = copyHead(c, into: &scratch, limit: limit)
            if available == 0 { return false }
        }
        let bytes = scratch.span
        guard let headLength = HTTPRequestParser.headLength(in: bytes) else {
            if available >= limit {
                respond(.headersTooLarge, close: true, http10: false, sendBody: true, c)
            } else if c.isReadClosed {
                // The peer closed in the middle of a head: nothing to answer.
                closeNow(c)
            }
            return false
        }
        server.counters.requests &+= 1
        let head = bytes.extracting(0..<headLength)
        let request: HTTPRequestHead
        do {
            request = try HTTPRequestParser.parse(head)
        } catch {
            c.skip(headLength)
            switch error {
            case .malformed: respond(.badRequest, close: true, http10: false, sendBody: true, c)
            case .versionNotSupported: respond(.versionNotSupported, close: true, http10: false, sendBody: true, c)
            case .transferCodingNotImplemented: respond(.notImplemented, close: true, http10: false, sendBody: true, c)
            }
            return !closing
        }
        // The head stays in the scratch buffer while it is answered.
        c.skip(headLength)
        answer(request, in: head, c)
        return !closing
    }

    /// Replaces `scratch` with up to `limit` bytes from the front of the receive ring.
    private func copyHead(_ c: TCPConnection, into scratch: inout [UInt8], limit: Int) -> Int {
        scratch.removeAll(keepingCapacity: true)
        scratch.append(addingCapacity: limit) { output in _ = c.peek(into: &output) }
        return scratch.count
    }

    private func answer(_ request: HTTPRequestHead, in head: Span<UInt8>, _ c: TCPConnection) {
        requestBodyRemaining = request.contentLength
        let close = !request.keepAlive
        let http10 = request.version.minor == 0
        let sendBody = request.method == .get
        guard request.method != .other else {
            respond(.methodNotAllowed, close: close, http10: http10, sendBody: true, c)
            return
        }
        let target = head.extracting(request.target)
        guard let pathRange = HTTPRequestParser.path(ofTarget: target) else {
            respond(.badRequest, close: true, http10: http10, sendBody: sendBody, c)
            return
        }
        let path = target.extracting(pathRange)
        if let route = HTTPRequestParser.bytesRoute(path, limit: HTTPServer.maxPatternLength) {
            guard let n = route else {
                respond(.notFound, close: close, http10: http10, sendBody: sendBody, c)
                return
            }
            start(.ok, contentType: "application/octet-stream", length: n, close: close, http10: http10, c)
            if sendBody && n > 0 { body = .pattern(offset: 0, remaining: n) }
            return
        }
        switch server.openFile(path) {
        case .refused(let status):
            respond(status, close: close, http10: http10, sendBody: sendBody, c)
        case .found(let file, let contentType):
            start(.ok, contentType: contentType, length: file.size, close: close, http10: http10, c)
            if sendBody && file.size > 0 {
                body = .file(file, remaining: file.size)
            } else {
                file.close()
            }
        }
    }

    /// Queues a response head.
    private func start(_ status: HTTPServer.Status, contentType: String, length: UInt64, close: Bool,
                       http10: Bool, _ c: TCPConnection) {
        server.count(status)
        closeAfterResponse = close
        if !server.writeResponseHead(status, contentType: contentType, length: length, close: close, http10: http10,
                                     to: c) {
            // drive() waited for room, so this means the connection can no longer send.
            closeAfterResponse = true
        }
    }

    /// A short text answer (errors). With `close` the connection ends after it.
    private func respond(_ status: HTTPServer.Status, close: Bool, http10: Bool, sendBody: Bool, _ c: TCPConnection) {
        let text = status.text
        start(status, contentType: "text/plain; charset=utf-8", length: UInt64(text.utf8CodeUnitCount),
              close: close, http10: http10, c)
        if sendBody {
            let n = c.write(text)
            server.counters.bodyBytes &+= UInt64(n)
        }
        if close { closeNow(c) }
    }

    /// Moves as much of the body into the send ring as fits.
    private func pump(_ c: TCPConnection) {
        switch body {
        case .none:
            return
        case .pattern(var offset, var remaining):
            let p = HTTPServer.sharedPattern
            // Bounded by the ring: each pass fills it or finishes the body.
            for _ in 0..<64 {
                guard remaining > 0 else { break }
                let space = c.writableBytes
                guard space > 0 else { break }
                let start = Int(offset % 251)
                let n = min(Int(clamping: remaining), space, p.count - start)
                // By reference: the body is never copied inside the stack.
                let written = c.write(p, range: start..<(start + n))
                guard written > 0 else { break }
                offset += UInt64(written)
                remaining -= UInt64(written)
                server.counters.bodyBytes &+= UInt64(written)
            }
            body = remaining == 0 ? .none : .pattern(offset: offset, remaining: remaining)
        case .file(let file, var remaining):
            // The server's file scratch, moved here while chunks pass through it.
            var scratch = server.fileScratch
            server.fileScratch = []
            defer { server.fileScratch = scratch }
            for _ in 0..<64 {
                guard remaining > 0 else { break }
                let space = c.writableBytes
                guard space > 0 else { break }
                let want = min(Int(clamping: remaining), space, server.fileChunk)
                scratch.removeAll(keepingCapacity: true)
                let got = (try? file.read(appendingTo: &scratch, maxLength: want)) ?? 0
                guard got > 0 else {
                    // The file shrank or failed under us: the promised length cannot be
                    // kept, so the client must not mistake what it got for the whole.
                    server.counters.fileErrors &+= 1
                    release()
                    closing = true
                    c.abort()
                    return
                }
                let written = c.write(scratch)
                server.counters.bodyBytes &+= UInt64(written)
                remaining -= UInt64(got)
                if written != got {
                    // Cannot happen while `want` <= writableBytes; treat as a dead connection.
                    release()
                    closing = true
                    c.abort()
                    return
                }
            }
            if remaining == 0 {
                file.close()
                body = .none
            } else {
                body = .file(file, remaining: remaining)
            }
        }
    }
}
