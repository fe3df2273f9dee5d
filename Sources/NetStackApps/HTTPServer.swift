#if canImport(Glibc)
import Glibc
#endif
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
///   (403). Directories serve their index.html. The length comes from fstat(2)
///   and the file is read(2) in chunks into the send ring as it drains.
/// - Everything else is 404.
///
/// Per connection the server allocates one small session object and its
/// callbacks; per request nothing.
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

        public var report: [(String, UInt64)] {
            [("http-connections", connections), ("http-requests", requests),
             ("http-responses-2xx", responses2xx), ("http-responses-4xx", responses4xx),
             ("http-responses-5xx", responses5xx), ("http-body-bytes", bodyBytes),
             ("http-file-errors", fileErrors)]
        }
    }

    /// The largest N of `/bytes/N`.
    public static let maxPatternLength: UInt64 = 1 << 40
    /// Room a response head needs in the send ring before a request is taken on.
    static let responseHeadCapacity = 512
    /// One block of the `/bytes/N` pattern: 256 periods of 251, so any offset
    /// mod 251 starts a run of at least 255 * 251 bytes.
    static let pattern: [UInt8] = (0..<(251 * 256)).map { UInt8($0 % 251) }

    public let listener: TCPListener
    public let configuration: Configuration
    public internal(set) var counters = Counters()
    /// The root after realpath(3), without a trailing slash (empty for "/").
    let root: [UInt8]?

    // Scratch shared by all sessions: the loop runs one callback at a time.
    let headScratch: UnsafeMutableRawBufferPointer
    let responseScratch: UnsafeMutableRawBufferPointer
    let fileScratch: UnsafeMutableRawBufferPointer
    let pathScratch: UnsafeMutableRawBufferPointer
    let resolvedScratch: UnsafeMutableRawBufferPointer

    /// Listens on `port` of `stack` and serves every connection it accepts.
    public static func install(on stack: Stack, port: UInt16 = 80,
                               configuration: Configuration = Configuration()) throws -> HTTPServer {
        let root = try configuration.root.map(Self.resolveRoot)
        // Build the pattern now, not in the first request's callback.
        _ = Self.pattern.count
        let listener = try stack.listen(port: port, configuration: configuration.tcp)
        let server = HTTPServer(listener: listener, configuration: configuration, root: root)
        listener.onAccept = { connection in server.accept(connection) }
        return server
    }

    init(listener: TCPListener, configuration: Configuration, root: [UInt8]?) {
        self.listener = listener
        self.configuration = configuration
        self.root = root
        headScratch = .allocate(byteCount: max(configuration.maxHeaderBytes, 64), alignment: 64)
        responseScratch = .allocate(byteCount: Self.responseHeadCapacity, alignment: 64)
        fileScratch = .allocate(byteCount: max(configuration.fileChunkSize, 512), alignment: 64)
        pathScratch = .allocate(byteCount: Int(PATH_MAX) + 64, alignment: 8)
        resolvedScratch = .allocate(byteCount: Int(PATH_MAX) + 64, alignment: 8)
    }

    deinit {
        headScratch.deallocate()
        responseScratch.deallocate()
        fileScratch.deallocate()
        pathScratch.deallocate()
        resolvedScratch.deallocate()
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
    static func resolveRoot(_ path: String) throws -> [UInt8] {
        guard let resolved = realpath(path, nil) else {
            throw RootError.unusable(path: path, reason: String(cString: strerror(errno)))
        }
        defer { free(resolved) }
        var st = stat()
        guard stat(resolved, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
            throw RootError.unusable(path: path, reason: "not a directory")
        }
        var bytes = Array(UnsafeRawBufferPointer(start: resolved, count: strlen(resolved)))
        if bytes == [ASCII.slash] { bytes = [] }
        return bytes
    }

    func accept(_ connection: TCPConnection) {
        counters.connections &+= 1
        let session = HTTPSession(server: self)
        connection.onReadable = { c in session.drive(c) }
        connection.onWritable = { c in session.drive(c) }
        connection.onStateChange = { c, _ in
            if c.state == .closed { session.release() }
        }
        // A request may have come with the handshake's last ACK.
        session.drive(connection)
    }

    // MARK: Responses

    enum Status {
        case ok, badRequest, forbidden, notFound, methodNotAllowed, headersTooLarge, notImplemented,
             versionNotSupported

        var line: StaticString {
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

    /// Writes a response head into `responseScratch` and returns it.
    func responseHead(_ status: Status, contentType: StaticString, length: UInt64, close: Bool,
                      http10: Bool) -> UnsafeRawBufferPointer {
        var w = ByteWriter(responseScratch)
        w.append(status.line)
        w.append("Server: netstack\r\nContent-Type: ")
        w.append(contentType)
        w.append("\r\nContent-Length: ")
        w.append(decimal: length)
        w.append("\r\n")
        if status == .methodNotAllowed { w.append("Allow: GET, HEAD\r\n") }
        if close {
            w.append("Connection: close\r\n")
        } else if http10 {
            w.append("Connection: keep-alive\r\n")
        }
        w.append("\r\n")
        precondition(!w.overflowed, "response head larger than its scratch")
        return w.bytes
    }

    // MARK: Files

    enum FileLookup {
        case found(fd: Int32, size: UInt64, contentType: StaticString)
        case refused(Status)
    }

    /// Maps a request path to a file under the root and opens it.
    func openFile(_ path: UnsafeRawBufferPointer) -> FileLookup {
        guard let root else { return .refused(.notFound) }
        var w = ByteWriter(pathScratch)
        root.withUnsafeBytes { w.append($0) }
        let rootLength = w.count
        // Percent-decode and normalise segment by segment (RFC 3986 5.2.4 on the decoded path).
        var i = 0
        while i < path.count {
            guard path[i] == ASCII.slash else { return .refused(.badRequest) }
            i += 1
            let segmentStart = w.count
            w.append(byte: ASCII.slash)
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
                w.append(byte: b)
                i += 1
            }
            if w.overflowed { return .refused(.notFound) }
            let segment = UnsafeRawBufferPointer(start: w.base + segmentStart + 1, count: w.count - segmentStart - 1)
            if segment.isEmpty || (segment.count == 1 && segment[0] == ASCII.dot) {
                w.truncate(to: segmentStart)
            } else if segment.count == 2 && segment[0] == ASCII.dot && segment[1] == ASCII.dot {
                w.truncate(to: segmentStart)
                guard w.count > rootLength else { return .refused(.forbidden) }
                var p = w.count - 1
                while p > rootLength && w.base.load(fromByteOffset: p, as: UInt8.self) != ASCII.slash { p -= 1 }
                w.truncate(to: p)
            }
        }
        for attempt in 0..<2 {
            if attempt == 1 { w.append("/index.html") }
            w.append(byte: 0)
            guard !w.overflowed else { return .refused(.notFound) }
            let resolved = resolvedScratch.baseAddress!.assumingMemoryBound(to: CChar.self)
            guard realpath(pathScratch.baseAddress!.assumingMemoryBound(to: CChar.self), resolved) != nil else {
                return .refused(errno == EACCES ? .forbidden : .notFound)
            }
            // The resolved path must still be the root or below it.
            let length = strlen(resolved)
            let r = UnsafeRawBufferPointer(start: resolved, count: length)
            let under = root.withUnsafeBytes { rootBytes in
                length >= rootBytes.count && (rootBytes.isEmpty || memcmp(r.baseAddress!, rootBytes.baseAddress!, rootBytes.count) == 0)
                    && (length == rootBytes.count || r[rootBytes.count] == ASCII.slash)
            }
            guard under else { return .refused(.forbidden) }
            // O_NONBLOCK so a FIFO cannot block the loop in open(2); fstat then refuses it.
            let fd = open(resolved, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)
            guard fd >= 0 else { return .refused(errno == EACCES ? .forbidden : .notFound) }
            var st = stat()
            guard fstat(fd, &st) == 0 else {
                Glibc.close(fd)
                return .refused(.notFound)
            }
            switch st.st_mode & S_IFMT {
            case S_IFREG:
                return .found(fd: fd, size: UInt64(st.st_size), contentType: Self.contentType(of: r))
            case S_IFDIR:
                Glibc.close(fd)
                // Serve the directory's index.html, from the resolved directory.
                w = ByteWriter(pathScratch)
                w.append(r)
            default:
                Glibc.close(fd)
                return .refused(.notFound)
            }
        }
        return .refused(.notFound)
    }

    /// A media type from the file name's extension.
    static func contentType(of path: UnsafeRawBufferPointer) -> StaticString {
        var dot = path.count
        var i = path.count
        while i > 0 {
            i -= 1
            if path[i] == ASCII.slash { break }
            if path[i] == ASCII.dot { dot = i; break }
        }
        guard dot < path.count else { return "application/octet-stream" }
        let ext = UnsafeRawBufferPointer(rebasing: path[(dot + 1)...])
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
    let server: HTTPServer

    /// The body of the response being sent.
    enum Body {
        case none
        case pattern(offset: UInt64, remaining: UInt64)
        case file(fd: Int32, remaining: UInt64)
    }

    var body = Body.none
    /// Bytes of the current request's body still to skip before the next head.
    var requestBodyRemaining = 0
    /// Close once the current response is queued.
    var closeAfterResponse = false
    /// We closed (or reset) the connection; anything more that arrives is dropped.
    var closing = false

    init(server: HTTPServer) { self.server = server }

    deinit { release() }

    /// Closes the file being sent, if any.
    func release() {
        if case .file(let fd, _) = body { Glibc.close(fd) }
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
        let scratch = server.headScratch
        let limit = scratch.count
        var available = copyHead(c, into: scratch, limit: limit)
        // RFC 9112 2.2: empty lines before a request line are ignored.
        let headRaw = UnsafeRawBufferPointer(rebasing: scratch[0..<available])
        guard let blank = HTTPRequestParser.leadingEmptyLines(in: headRaw) else { return false }
        if blank > 0 {
            c.skip(blank)
            available = copyHead(c, into: scratch, limit: limit)
            if available == 0 { return false }
        }
        let bytes = UnsafeRawBufferPointer(rebasing: scratch[0..<available])
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
        let head = UnsafeRawBufferPointer(rebasing: bytes[0..<headLength])
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

    /// Copies up to `limit` bytes from the front of the receive ring.
    private func copyHead(_ c: TCPConnection, into scratch: UnsafeMutableRawBufferPointer, limit: Int) -> Int {
        c.peek { a, b in
            let n1 = min(a.count, limit)
            if n1 > 0 { scratch.baseAddress!.copyMemory(from: a.baseAddress!, byteCount: n1) }
            let n2 = min(b.count, limit - n1)
            if n2 > 0 { (scratch.baseAddress! + n1).copyMemory(from: b.baseAddress!, byteCount: n2) }
            return n1 + n2
        }
    }

    private func answer(_ request: HTTPRequestHead, in head: UnsafeRawBufferPointer, _ c: TCPConnection) {
        requestBodyRemaining = request.contentLength
        let close = !request.keepAlive
        let http10 = request.version.minor == 0
        let sendBody = request.method == .get
        guard request.method != .other else {
            respond(.methodNotAllowed, close: close, http10: http10, sendBody: true, c)
            return
        }
        let target = UnsafeRawBufferPointer(rebasing: head[request.target])
        guard let pathRange = HTTPRequestParser.path(ofTarget: target) else {
            respond(.badRequest, close: true, http10: http10, sendBody: sendBody, c)
            return
        }
        let path = UnsafeRawBufferPointer(rebasing: target[pathRange])
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
        case .found(let fd, let size, let contentType):
            start(.ok, contentType: contentType, length: size, close: close, http10: http10, c)
            if sendBody && size > 0 {
                body = .file(fd: fd, remaining: size)
            } else {
                Glibc.close(fd)
            }
        }
    }

    /// Queues a response head.
    private func start(_ status: HTTPServer.Status, contentType: StaticString, length: UInt64, close: Bool,
                       http10: Bool, _ c: TCPConnection) {
        server.count(status)
        closeAfterResponse = close
        let head = server.responseHead(status, contentType: contentType, length: length, close: close, http10: http10)
        let n = c.write(head)
        if n != head.count {
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
            let n = c.write(UnsafeRawBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
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
            HTTPServer.pattern.withUnsafeBytes { p in
                // Bounded by the ring: each pass fills it or finishes the body.
                for _ in 0..<64 {
                    guard remaining > 0 else { break }
                    let space = c.writableBytes
                    guard space > 0 else { break }
                    let start = Int(offset % 251)
                    let n = min(Int(clamping: remaining), space, p.count - start)
                    let written = c.write(UnsafeRawBufferPointer(rebasing: p[start..<(start + n)]))
                    guard written > 0 else { break }
                    offset += UInt64(written)
                    remaining -= UInt64(written)
                    server.counters.bodyBytes &+= UInt64(written)
                }
            }
            body = remaining == 0 ? .none : .pattern(offset: offset, remaining: remaining)
        case .file(let fd, var remaining):
            let scratch = server.fileScratch
            for _ in 0..<64 {
                guard remaining > 0 else { break }
                let space = c.writableBytes
                guard space > 0 else { break }
                let want = min(Int(clamping: remaining), space, scratch.count)
                let got = read(fd, scratch.baseAddress!, want)
                if got < 0 && errno == EINTR { continue }
                guard got > 0 else {
                    // The file shrank or failed under us: the promised length cannot be
                    // kept, so the client must not mistake what it got for the whole.
                    server.counters.fileErrors &+= 1
                    release()
                    closing = true
                    c.abort()
                    return
                }
                let written = c.write(UnsafeRawBufferPointer(rebasing: scratch[0..<got]))
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
                Glibc.close(fd)
                body = .none
            } else {
                body = .file(fd: fd, remaining: remaining)
            }
        }
    }
}
