/// Why a response could not be read.
public enum HTTPResponseError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The status line or a header field broke RFC 9112's syntax.
    case malformedHead
    /// The head went past the parser's limit without ending.
    case headTooLarge
    /// A chunk-size line or the CRLF after a chunk was wrong.
    case malformedChunk
    /// A transfer coding other than chunked, or chunked not last (RFC 9112 6.3 item 4).
    case unsupportedTransferCoding
    /// Content-Length that is not a number or disagrees with itself.
    case badContentLength
    /// The connection ended before the body did.
    case truncated(received: UInt64)

    public var description: String {
        switch self {
        case .malformedHead: "malformed response head"
        case .headTooLarge: "response head too large"
        case .malformedChunk: "malformed chunked body"
        case .unsupportedTransferCoding: "unsupported transfer coding"
        case .badContentLength: "invalid Content-Length"
        case .truncated(let n): "connection closed before the body was complete (\(n) body bytes received)"
        }
    }
}

/// Reads one HTTP/1.1 response (RFC 9112) from a byte stream fed in pieces
/// of any size: the status line and fields, then the body framed by
/// Content-Length, chunked transfer coding, or the end of the connection
/// (RFC 9112 6.3). Interim 1xx responses are skipped. Body bytes are handed
/// to a closure as they are decoded, without being collected.
public struct HTTPResponseParser {
    public enum Framing: Equatable, Sendable {
        case length(UInt64)
        case chunked
        case untilClose
        case none
    }

    enum ChunkState: Equatable {
        /// Reading the hex size; `digits` so far.
        case size(value: UInt64, digits: Int)
        /// Skipping a chunk extension up to the line end.
        case extensionText(value: UInt64)
        /// Expecting LF after CR on the size line.
        case sizeLF(value: UInt64)
        case data(remaining: UInt64)
        /// The CRLF after chunk data.
        case dataCR
        case dataLF
        /// Trailer lines after the last chunk; `lineLength` of the current one.
        case trailer(lineLength: Int)
        case trailerLF(lineLength: Int)
    }

    enum State: Equatable {
        case head
        case body
        case done
    }

    /// Whether the request was HEAD (no body whatever the fields say).
    public let requestWasHead: Bool
    public let maxHeadBytes: Int
    public private(set) var status: Int?
    public private(set) var reason = ""
    public private(set) var version = HTTPVersion.http11
    public private(set) var framing = Framing.none
    /// Content-Length, if the response had one.
    public private(set) var contentLength: UInt64?
    /// The server said `Connection: close`.
    public private(set) var serverCloses = false
    /// Body bytes delivered so far (decoded).
    public private(set) var bodyBytes: UInt64 = 0
    /// The header fields of the final response, as received.
    public private(set) var headers: [(name: String, value: String)] = []
    var state = State.head
    var head: [UInt8] = []
    var remaining: UInt64 = 0
    var chunk = ChunkState.size(value: 0, digits: 0)

    public init(requestWasHead: Bool = false, maxHeadBytes: Int = 64 * 1024) {
        self.requestWasHead = requestWasHead
        self.maxHeadBytes = maxHeadBytes
    }

    /// The head has been read; `status` and the fields are known.
    public var hasHead: Bool { state != .head }
    /// The whole response has been read.
    public var isComplete: Bool { state == .done }

    /// Consumes `input`; decoded body bytes go to `body`. Returns how many
    /// bytes were used: fewer than given only once the response is complete
    /// (what follows belongs to no response of ours).
    @discardableResult
    public mutating func feed(_ input: Span<UInt8>,
                              body: (Span<UInt8>) -> Void) throws(HTTPResponseError) -> Int {
        var i = 0
        // Each pass consumes at least one byte or ends the loop.
        while i < input.count && state != .done {
            switch state {
            case .head:
                i += try feedHead(input.extracting(i...))
            case .body:
                i += try feedBody(input.extracting(i...), body: body)
            case .done:
                break
            }
        }
        return i
    }

    /// The connection ended (the peer's FIN). Completes a read-until-close
    /// body; anything else still open was cut short.
    public mutating func finish() throws(HTTPResponseError) {
        switch state {
        case .done:
            return
        case .body where framing == .untilClose:
            state = .done
        default:
            throw .truncated(received: bodyBytes)
        }
    }

    private mutating func feedHead(_ input: Span<UInt8>) throws(HTTPResponseError) -> Int {
        // Append up to the end of the head (found by scanning what is new, plus three bytes back).
        let before = head.count
        let take = min(input.count, maxHeadBytes + 4 - before)
        for i in 0..<take { head.append(input[i]) }
        let end = HTTPRequestParser.headLength(in: head.span)
        guard let end else {
            if head.count >= maxHeadBytes { throw .headTooLarge }
            return take
        }
        let used = end - before
        head.removeSubrange(end...)
        try parseHead()
        head.removeAll(keepingCapacity: true)
        return used
    }

    private mutating func parseHead() throws(HTTPResponseError) {
        let text = head
        var lines: [ArraySlice<UInt8>] = []
        var start = 0
        for (i, b) in text.enumerated() where b == ASCII.lf {
            var e = i
            if e > start && text[e - 1] == ASCII.cr { e -= 1 }
            lines.append(text[start..<e])
            start = i + 1
        }
        // Status line: HTTP-version SP 3DIGIT SP [reason] (RFC 9112 4).
        guard let statusLine = lines.first, statusLine.count >= 12 else { throw .malformedHead }
        let s = Array(statusLine)
        guard s[0..<5] == Array("HTTP/".utf8)[...], ASCII.isDigit(s[5]), s[6] == ASCII.dot, ASCII.isDigit(s[7]),
              s[8] == ASCII.space, ASCII.isDigit(s[9]), ASCII.isDigit(s[10]), ASCII.isDigit(s[11]),
              s.count == 12 || s[12] == ASCII.space else {
            throw .malformedHead
        }
        version = HTTPVersion(major: Int(s[5] - ASCII.zero), minor: Int(s[7] - ASCII.zero))
        let code = Int(s[9] - ASCII.zero) * 100 + Int(s[10] - ASCII.zero) * 10 + Int(s[11] - ASCII.zero)
        reason = s.count > 13 ? String(decoding: s[13...], as: UTF8.self) : ""

        var fields: [(name: String, value: String)] = []
        var lengths: [UInt64] = []
        var codings: [String] = []
        var close = false
        for line in lines.dropFirst() where !line.isEmpty {
            guard let colon = line.firstIndex(of: ASCII.colon), colon > line.startIndex,
                  line[line.startIndex] != ASCII.space, line[line.startIndex] != ASCII.tab else {
                throw .malformedHead
            }
            let name = String(decoding: line[line.startIndex..<colon], as: UTF8.self)
            var value = line[(colon + 1)...]
            while let f = value.first, f == ASCII.space || f == ASCII.tab { value = value.dropFirst() }
            while let l = value.last, l == ASCII.space || l == ASCII.tab { value = value.dropLast() }
            let v = String(decoding: value, as: UTF8.self)
            fields.append((name, v))
            switch name.lowercased() {
            case "content-length":
                for item in v.split(separator: ",") {
                    guard let n = UInt64(item.trimmingSpaces), n < (1 << 62) else { throw .badContentLength }
                    lengths.append(n)
                }
            case "transfer-encoding":
                codings += v.split(separator: ",").map { $0.trimmingSpaces.lowercased() }.filter { !$0.isEmpty }
            case "connection":
                if v.split(separator: ",").contains(where: { $0.trimmingSpaces.lowercased() == "close" }) { close = true }
            default:
                break
            }
        }
        // 1xx: an interim response; the real one follows (RFC 9110 15.2).
        if (100...199).contains(code) {
            guard code != 101 else { throw .malformedHead }
            return
        }
        status = code
        headers = fields
        serverCloses = close || version == .http10
        if let first = lengths.first {
            guard lengths.allSatisfy({ $0 == first }) else { throw .badContentLength }
            contentLength = first
        }
        // RFC 9112 6.3: HEAD, 204 and 304 have no body; then Transfer-Encoding; then Content-Length.
        if requestWasHead || code == 204 || code == 304 {
            framing = .none
        } else if !codings.isEmpty {
            guard codings.last == "chunked", codings.dropLast().allSatisfy({ $0 == "identity" }) else {
                // Not chunked last: only the close delimits it, and we cannot decode it.
                throw .unsupportedTransferCoding
            }
            framing = .chunked
        } else if let n = contentLength {
            framing = .length(n)
        } else {
            framing = .untilClose
        }
        switch framing {
        case .none, .length(0):
            state = .done
        case .length(let n):
            remaining = n
            state = .body
        case .chunked:
            chunk = .size(value: 0, digits: 0)
            state = .body
        case .untilClose:
            state = .body
        }
    }

    private mutating func feedBody(_ input: Span<UInt8>,
                                   body: (Span<UInt8>) -> Void) throws(HTTPResponseError) -> Int {
        switch framing {
        case .untilClose:
            deliver(input, body)
            return input.count
        case .length:
            let n = Int(min(UInt64(input.count), remaining))
            deliver(input.extracting(0..<n), body)
            remaining -= UInt64(n)
            if remaining == 0 { state = .done }
            return n
        case .chunked:
            return try feedChunked(input, body)
        case .none:
            state = .done
            return 0
        }
    }

    private mutating func deliver(_ bytes: Span<UInt8>, _ body: (Span<UInt8>) -> Void) {
        guard bytes.count > 0 else { return }
        bodyBytes &+= UInt64(bytes.count)
        body(bytes)
    }

    /// RFC 9112 7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF;
    /// last-chunk = 1*"0" [ chunk-ext ] CRLF; then trailer fields and CRLF.
    private mutating func feedChunked(_ input: Span<UInt8>,
                                      _ body: (Span<UInt8>) -> Void) throws(HTTPResponseError) -> Int {
        var i = 0
        while i < input.count && state != .done {
            let b = input[i]
            switch chunk {
            case .size(let value, let digits):
                if let h = ASCII.hexValue(b) {
                    guard digits < 15 else { throw .malformedChunk }
                    chunk = .size(value: value << 4 | UInt64(h), digits: digits + 1)
                } else if digits == 0 {
                    throw .malformedChunk
                } else if b == ASCII.semicolon || b == ASCII.space || b == ASCII.tab {
                    chunk = .extensionText(value: value)
                } else if b == ASCII.cr {
                    chunk = .sizeLF(value: value)
                } else if b == ASCII.lf {
                    chunk = value == 0 ? .trailer(lineLength: 0) : .data(remaining: value)
                } else {
                    throw .malformedChunk
                }
                i += 1
            case .extensionText(let value):
                if b == ASCII.cr {
                    chunk = .sizeLF(value: value)
                } else if b == ASCII.lf {
                    chunk = value == 0 ? .trailer(lineLength: 0) : .data(remaining: value)
                }
                i += 1
            case .sizeLF(let value):
                guard b == ASCII.lf else { throw .malformedChunk }
                chunk = value == 0 ? .trailer(lineLength: 0) : .data(remaining: value)
                i += 1
            case .data(let remaining):
                let n = Int(min(UInt64(input.count - i), remaining))
                deliver(input.extracting(i..<(i + n)), body)
                i += n
                chunk = remaining == UInt64(n) ? .dataCR : .data(remaining: remaining - UInt64(n))
            case .dataCR:
                if b == ASCII.cr {
                    chunk = .dataLF
                } else if b == ASCII.lf {
                    chunk = .size(value: 0, digits: 0)
                } else {
                    throw .malformedChunk
                }
                i += 1
            case .dataLF:
                guard b == ASCII.lf else { throw .malformedChunk }
                chunk = .size(value: 0, digits: 0)
                i += 1
            case .trailer(let length):
                if b == ASCII.cr {
                    chunk = .trailerLF(lineLength: length)
                } else if b == ASCII.lf {
                    if length == 0 { state = .done } else { chunk = .trailer(lineLength: 0) }
                } else {
                    guard length < maxHeadBytes else { throw .headTooLarge }
                    chunk = .trailer(lineLength: length + 1)
                }
                i += 1
            case .trailerLF(let length):
                guard b == ASCII.lf else { throw .malformedChunk }
                if length == 0 { state = .done } else { chunk = .trailer(lineLength: 0) }
                i += 1
            }
        }
        return i
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}
