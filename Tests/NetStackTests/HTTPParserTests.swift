import Testing
@testable import NetStackApps
import NetStackWire

/// The HTTP/1.1 request parser (RFC 9112) the server uses, the response
/// parser `netstack get` uses, and URL parsing.
@Suite struct HTTPRequestParserTests {
    func parse(_ text: String) throws(HTTPRequestError) -> (HTTPRequestHead, [UInt8]) {
        let bytes = Array(text.utf8)
        return (try HTTPRequestParser.parse(bytes.span), bytes)
    }

    func error(_ text: String) -> HTTPRequestError? {
        do { _ = try parse(text); return nil } catch { return error }
    }

    func headLength(_ text: String) -> Int? {
        let bytes = Array(text.utf8)
        return HTTPRequestParser.headLength(in: bytes.span)
    }

    func leadingEmptyLines(_ text: String) -> Int? {
        let bytes = Array(text.utf8)
        return HTTPRequestParser.leadingEmptyLines(in: bytes.span)
    }

    @Test func simpleGet() throws {
        let (h, bytes) = try parse("GET /bytes/10?x=1 HTTP/1.1\r\nHost: 10.0.0.2\r\nAccept: */*\r\n\r\n")
        #expect(h.method == .get)
        #expect(h.version == .http11)
        #expect(String(decoding: bytes[h.target], as: UTF8.self) == "/bytes/10?x=1")
        #expect(h.keepAlive)
        #expect(h.hasHost)
        #expect(h.contentLength == 0)
    }

    @Test func headAndOtherMethods() throws {
        #expect(try parse("HEAD / HTTP/1.1\r\nHost: a\r\n\r\n").0.method == .head)
        #expect(try parse("POST / HTTP/1.1\r\nHost: a\r\n\r\n").0.method == .other)
        // Methods are case-sensitive: "get" is some other method.
        #expect(try parse("get / HTTP/1.1\r\nHost: a\r\n\r\n").0.method == .other)
    }

    @Test func persistence() throws {
        #expect(try !parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").0.keepAlive)
        #expect(try !parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, CLOSE\r\n\r\n").0.keepAlive)
        #expect(try !parse("GET / HTTP/1.0\r\n\r\n").0.keepAlive)
        #expect(try parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").0.keepAlive)
        #expect(try !parse("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").0.keepAlive)
    }

    @Test func bareLineFeedsAreAccepted() throws {
        let (h, _) = try parse("GET / HTTP/1.1\nHost: a\n\n")
        #expect(h.method == .get && h.hasHost)
        #expect(headLength("GET / HTTP/1.1\nHost: a\n\nrest") == 24)
    }

    @Test func headLengthFindsTheBlankLine() {
        #expect(headLength("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET") == 27)
        #expect(headLength("GET / HTTP/1.1\r\nHost: a\r\n\r") == nil)
        #expect(headLength("GET / HTTP/1.1\r\nHost: a\r\n") == nil)
        #expect(headLength("") == nil)
    }

    @Test func leadingEmptyLines() {
        #expect(leadingEmptyLines("\r\n\r\nGET") == 4)
        #expect(leadingEmptyLines("\nGET") == 1)
        #expect(leadingEmptyLines("\r") == nil)
        #expect(leadingEmptyLines("GET") == 0)
    }

    @Test func contentLength() throws {
        #expect(try parse("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 42\r\n\r\n").0.contentLength == 42)
        #expect(try parse("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n").0.contentLength == 5)
        #expect(error("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n") == .malformed)
        #expect(error("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n") == .malformed)
        #expect(error("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n") == .malformed)
        #expect(error("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n") == .malformed)
    }

    @Test func transferCodings() {
        #expect(error("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n") == .transferCodingNotImplemented)
        // Both framings at once is a smuggling attempt (RFC 9112 6.3 item 3): 400.
        #expect(error("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n") == .malformed)
    }

    @Test func malformedHeads() {
        let cases = [
            "hello\r\n\r\n",                                   // no spaces
            "GET /\r\n\r\n",                                   // HTTP/0.9
            "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",              // two spaces
            "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",              // trailing space
            "GET / http/1.1\r\nHost: a\r\n\r\n",               // version is case-sensitive
            "GET / HTTP/1.10\r\nHost: a\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",                          // 1.1 without Host
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",    // two Hosts
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n",              // space before colon
            "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",    // obs-fold
            "GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n",         // bare CR
            "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            "GET / HTTP/1.1\r\n: empty-name\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: a\u{1}b\r\n\r\n",         // control character in a value
            "GET /caf\u{e9} HTTP/1.1\r\nHost: a\r\n\r\n",      // non-ASCII target
        ]
        for c in cases {
            #expect(error(c) == .malformed, "\(c.debugDescription)")
        }
    }

    @Test func versions() {
        #expect(error("GET / HTTP/2.0\r\nHost: a\r\n\r\n") == .versionNotSupported)
        #expect(error("GET / HTTP/0.9\r\nHost: a\r\n\r\n") == .malformed)
        #expect((try? parse("GET / HTTP/1.2\r\nHost: a\r\n\r\n").0.keepAlive) == true)
    }

    func path(_ target: String) -> String? {
        let bytes = Array(target.utf8)
        return HTTPRequestParser.path(ofTarget: bytes.span).map { String(decoding: bytes[$0], as: UTF8.self) }
    }

    @Test func targetForms() {
        #expect(path("/a/b?c=d") == "/a/b")
        #expect(path("/a#frag") == "/a")
        #expect(path("http://10.0.0.2/x/y?z") == "/x/y")
        #expect(path("HTTP://host:80/x") == "/x")
        #expect(path("http://host") == "")
        #expect(path("*") == nil)
        #expect(path("host:80") == nil)
    }

    @Test func bytesRoute() {
        func route(_ p: String) -> UInt64?? {
            let bytes = Array(p.utf8)
            return HTTPRequestParser.bytesRoute(bytes.span, limit: 1 << 40)
        }
        #expect(route("/bytes/0") == .some(0))
        #expect(route("/bytes/1048576") == .some(1_048_576))
        #expect(route("/bytes/1099511627776") == .some(1 << 40))
        #expect(route("/bytes/1099511627777") == .some(nil))
        #expect(route("/bytes/99999999999999999999999") == .some(nil))
        #expect(route("/bytes/12a") == .some(nil))
        #expect(route("/bytes/") == .some(nil))
        #expect(route("/bytes") == nil)
        #expect(route("/other") == nil)
    }

    @Test func byteWriterWritesDecimalsAndStopsAtCapacity() {
        var w = ByteWriter(capacity: 32)
        w.append("n=")
        w.append(decimal: 0)
        w.append(byte: 32)
        w.append(decimal: UInt64.max)
        #expect(String(decoding: w.bytes, as: UTF8.self) == "n=0 18446744073709551615")
        #expect(!w.overflowed)
        w.append("0123456789")
        #expect(w.overflowed)
        #expect(w.count == 24)
    }
}

@Suite struct HTTPResponseParserTests {
    /// Feeds `text` in pieces of `step` bytes; returns the body and the parser.
    func run(_ text: [UInt8], step: Int, head: Bool = false, eof: Bool = false) throws(HTTPResponseError)
        -> (HTTPResponseParser, [UInt8]) {
        var p = HTTPResponseParser(requestWasHead: head)
        var body: [UInt8] = []
        var i = 0
        while i < text.count {
            let n = min(step, text.count - i)
            let piece = Array(text[i..<(i + n)])
            let used = try p.feed(piece.span) { bytes in
                for j in bytes.indices { body.append(bytes[j]) }
            }
            if used < n { break }
            i += n
        }
        if eof { try p.finish() }
        return (p, body)
    }

    @Test func contentLengthInAnyPieces() throws {
        let text = Array("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: x\r\n\r\nhelloEXTRA".utf8)
        for step in [1, 2, 3, 7, 100] {
            let (p, body) = try run(text, step: step)
            #expect(p.status == 200 && p.reason == "OK")
            #expect(body == Array("hello".utf8))
            #expect(p.isComplete)
            #expect(p.headers.count == 2)
        }
    }

    @Test func chunkedWithExtensionsAndTrailers() throws {
        let text = Array(("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nTrailer: x\r\n\r\n").utf8)
        for step in [1, 3, 64, 1000] {
            let (p, body) = try run(text, step: step)
            #expect(p.framing == .chunked)
            #expect(String(decoding: body, as: UTF8.self) == "helloabcdefghijklmnopqrstuvwxyz")
            #expect(p.isComplete)
        }
    }

    @Test func malformedChunks() {
        for bad in ["zz\r\n", "5\r\nhelloXX", "\r\n"] {
            let text = Array(("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + bad).utf8)
            #expect(throws: HTTPResponseError.malformedChunk) { _ = try run(text, step: 1) }
        }
    }

    @Test func readUntilClose() throws {
        let text = Array("HTTP/1.0 200 OK\r\n\r\nall of it".utf8)
        let (p, body) = try run(text, step: 4, eof: true)
        #expect(p.framing == .untilClose && p.isComplete && p.serverCloses)
        #expect(body == Array("all of it".utf8))
    }

    @Test func truncatedBodyIsAnError() {
        let text = Array("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort".utf8)
        #expect(throws: HTTPResponseError.truncated(received: 5)) { _ = try run(text, step: 100, eof: true) }
    }

    @Test func interimResponsesAreSkipped() throws {
        let text = Array("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno".utf8)
        let (p, body) = try run(text, step: 5)
        #expect(p.status == 404 && body == Array("no".utf8))
    }

    @Test func headAnd204HaveNoBody() throws {
        let (p, body) = try run(Array("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n".utf8), step: 100, head: true)
        #expect(p.isComplete && body.isEmpty && p.contentLength == 10)
        let (q, _) = try run(Array("HTTP/1.1 204 No Content\r\n\r\n".utf8), step: 100)
        #expect(q.isComplete)
    }

    @Test func badHeads() {
        #expect(throws: HTTPResponseError.malformedHead) { _ = try run(Array("HTP/1.1 200 OK\r\n\r\n".utf8), step: 100) }
        #expect(throws: HTTPResponseError.badContentLength) {
            _ = try run(Array("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".utf8), step: 100)
        }
        #expect(throws: HTTPResponseError.unsupportedTransferCoding) {
            _ = try run(Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n".utf8), step: 100)
        }
    }
}

@Suite struct HTTPURLTests {
    @Test func parses() throws {
        let u = try HTTPURL(parsing: "http://10.0.0.1:8000/file?a=b#frag")
        #expect(u.address == .v4(IPv4Address(10, 0, 0, 1)) && u.port == 8000)
        let six = try HTTPURL(parsing: "http://[fd00::1]:8000/f")
        #expect(six.address == .v6(IPv6Address(0xfd00, 0, 0, 0, 0, 0, 0, 1)) && six.port == 8000)
        #expect(six.authority == "[fd00::1]:8000" && six.target == "/f")
        #expect(try HTTPURL(parsing: "http://[fe80::2]").port == 80)
        #expect(throws: HTTPURL.ParseError.badHost("[fd00::1")) { try HTTPURL(parsing: "http://[fd00::1/") }
        #expect(throws: HTTPURL.ParseError.badPort("")) { try HTTPURL(parsing: "http://[fd00::1]:/") }
        #expect(u.target == "/file?a=b" && u.authority == "10.0.0.1:8000")
        let v = try HTTPURL(parsing: "HTTP://10.0.0.1")
        #expect(v.port == 80 && v.target == "/")
        #expect(try HTTPURL(parsing: "http://10.0.0.1?q").target == "/?q")
    }

    @Test func rejects() {
        #expect(throws: HTTPURL.ParseError.notHTTP) { try HTTPURL(parsing: "https://10.0.0.1/") }
        #expect(throws: HTTPURL.ParseError.badHost("example.com")) { try HTTPURL(parsing: "http://example.com/") }
        #expect(throws: HTTPURL.ParseError.badPort("0")) { try HTTPURL(parsing: "http://10.0.0.1:0/") }
        #expect(throws: HTTPURL.ParseError.badPort("x")) { try HTTPURL(parsing: "http://10.0.0.1:x/") }
        #expect(throws: HTTPURL.ParseError.badTarget) { try HTTPURL(parsing: "http://10.0.0.1/a b") }
    }
}
