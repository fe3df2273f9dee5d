/// HTTP/1.1 message syntax (RFC 9112), parsed in place from borrowed bytes.
///
/// Nothing here allocates: a request head is read from a span of bytes the
/// caller owns, and the parsed value refers back to it by offsets. The server
/// copies the head out of the connection's receive ring into one scratch
/// buffer per server, parses it there, and drops it once the response is
/// chosen. The response parser (`HTTPResponseParser`) shares the ASCII helpers.

enum ASCII {
    static let tab: UInt8 = 9
    static let lf: UInt8 = 10
    static let cr: UInt8 = 13
    static let space: UInt8 = 32
    static let percent: UInt8 = 37
    static let comma: UInt8 = 44
    static let dot: UInt8 = 46
    static let slash: UInt8 = 47
    static let zero: UInt8 = 48
    static let nine: UInt8 = 57
    static let colon: UInt8 = 58
    static let semicolon: UInt8 = 59
    static let question: UInt8 = 63
    static let hash: UInt8 = 35

    @inline(__always) static func isDigit(_ b: UInt8) -> Bool { b >= zero && b <= nine }

    @inline(__always) static func lower(_ b: UInt8) -> UInt8 { b >= 65 && b <= 90 ? b | 0x20 : b }

    /// RFC 9110 5.6.2 tchar: the characters of a token (methods, field names).
    static func isTokenChar(_ b: UInt8) -> Bool {
        switch b {
        case 48...57, 65...90, 97...122: true
        case 33, 35, 36, 37, 38, 39, 42, 43, 45, 46, 94, 95, 96, 124, 126: true
        default: false
        }
    }

    /// The value of a hex digit, or nil.
    @inline(__always) static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 48...57: b - 48
        case 65...70: b - 55
        case 97...102: b - 87
        default: nil
        }
    }

    /// Case-insensitive comparison of `bytes` with a lower-case ASCII literal.
    static func equalsLowercase(_ bytes: Span<UInt8>, _ literal: String) -> Bool {
        guard bytes.count == literal.utf8.count else { return false }
        var i = 0
        for l in literal.utf8 {
            if lower(bytes[i]) != l { return false }
            i += 1
        }
        return true
    }

    /// Whether `bytes[from...]` starts with a literal.
    static func hasPrefix(_ bytes: Span<UInt8>, _ literal: String, at from: Int = 0,
                          caseInsensitive: Bool = false) -> Bool {
        guard bytes.count - from >= literal.utf8.count else { return false }
        var i = from
        for l in literal.utf8 {
            let b = caseInsensitive ? lower(bytes[i]) : bytes[i]
            if b != l { return false }
            i += 1
        }
        return true
    }
}

/// The request methods the server knows; everything else is `other` (405).
public enum HTTPMethod: Equatable, Sendable {
    case get
    case head
    case other
}

public struct HTTPVersion: Equatable, Sendable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }
    public static let http10 = HTTPVersion(major: 1, minor: 0)
    public static let http11 = HTTPVersion(major: 1, minor: 1)
    public var description: String { "HTTP/\(major).\(minor)" }
}

/// Why a request head was refused, and so which status answers it.
public enum HTTPRequestError: Error, Equatable, Sendable {
    /// 400: the syntax of RFC 9112 was not followed.
    case malformed
    /// 505: a major version other than 1.
    case versionNotSupported
    /// 501: a request body in a transfer coding (the server reads no request bodies but by length).
    case transferCodingNotImplemented
}

/// A parsed request line and the header fields the server acts on. Ranges are
/// offsets into the buffer that was parsed.
public struct HTTPRequestHead: Equatable, Sendable {
    public var method: HTTPMethod
    /// The method's bytes (for logging; `method` is what matters).
    public var methodRange: Range<Int>
    /// The request target as sent (origin-form or absolute-form).
    public var target: Range<Int>
    public var version: HTTPVersion
    /// Whether the connection persists after the response (RFC 9112 9.3).
    public var keepAlive: Bool
    /// Length of a request body, which the server skips; 0 when absent.
    public var contentLength: Int
    public var hasHost: Bool
}

public enum HTTPRequestParser {
    /// Finds the blank line that ends a message head (RFC 9112 2.1). Accepts
    /// CRLF or a bare LF as line terminator (RFC 9112 2.2). Returns the head's
    /// length including the blank line, or nil if it has not all arrived.
    public static func headLength(in bytes: Span<UInt8>) -> Int? {
        let n = bytes.count
        var lf = 0
        while lf < n {
            if bytes[lf] == ASCII.lf {
                if lf + 1 < n && bytes[lf + 1] == ASCII.lf { return lf + 2 }
                if lf + 2 < n && bytes[lf + 1] == ASCII.cr && bytes[lf + 2] == ASCII.lf { return lf + 3 }
            }
            lf += 1
        }
        return nil
    }

    /// Number of empty lines (CRLF or LF) at the front, which a server ignores
    /// before a request line (RFC 9112 2.2). Returns nil if it ends mid-line
    /// (a lone CR), as more may follow.
    public static func leadingEmptyLines(in bytes: Span<UInt8>) -> Int? {
        var i = 0
        while i < bytes.count {
            if bytes[i] == ASCII.lf {
                i += 1
            } else if bytes[i] == ASCII.cr {
                guard i + 1 < bytes.count else { return nil }
                guard bytes[i + 1] == ASCII.lf else { return i }
                i += 2
            } else {
                break
            }
        }
        return i
    }

    /// Parses a whole head (as measured by `headLength`).
    public static func parse(_ head: Span<UInt8>) throws(HTTPRequestError) -> HTTPRequestHead {
        var lines = LineIterator()
        guard let requestLine = try lines.next(in: head) else { throw .malformed }
        var request = try parseRequestLine(head, requestLine)

        var hostCount = 0
        var contentLength: Int? = nil
        var close = false
        var keepAliveToken = false
        var transferEncoding = false
        while let line = try lines.next(in: head) {
            if line.isEmpty { break }
            // RFC 9112 5.2: obsolete line folding is rejected.
            if head[line.lowerBound] == ASCII.space || head[line.lowerBound] == ASCII.tab { throw .malformed }
            var colon = line.lowerBound
            while colon < line.upperBound && head[colon] != ASCII.colon {
                // RFC 9112 5.1: no whitespace between the name and the colon.
                guard ASCII.isTokenChar(head[colon]) else { throw .malformed }
                colon += 1
            }
            guard colon < line.upperBound, colon > line.lowerBound else { throw .malformed }
            let name = head.extracting(line.lowerBound..<colon)
            var vs = colon + 1
            var ve = line.upperBound
            while vs < ve && (head[vs] == ASCII.space || head[vs] == ASCII.tab) { vs += 1 }
            while ve > vs && (head[ve - 1] == ASCII.space || head[ve - 1] == ASCII.tab) { ve -= 1 }
            for i in vs..<ve {
                let b = head[i]
                // RFC 9110 5.5: field values are VCHAR, obs-text, SP and HTAB; no CTLs.
                if (b < 0x20 && b != ASCII.tab) || b == 0x7f { throw .malformed }
            }
            let value = head.extracting(vs..<ve)
            if ASCII.equalsLowercase(name, "host") {
                hostCount += 1
            } else if ASCII.equalsLowercase(name, "content-length") {
                let n = try parseContentLength(value)
                // RFC 9112 6.3 item 5: differing lengths make the framing unknowable.
                if let previous = contentLength, previous != n { throw .malformed }
                contentLength = n
            } else if ASCII.equalsLowercase(name, "transfer-encoding") {
                transferEncoding = true
            } else if ASCII.equalsLowercase(name, "connection") {
                forEachToken(value) { token in
                    if ASCII.equalsLowercase(token, "close") { close = true }
                    if ASCII.equalsLowercase(token, "keep-alive") { keepAliveToken = true }
                }
            }
        }
        // RFC 9112 3.2: a 1.1 request without exactly one Host is answered 400.
        if request.version.minor >= 1 && hostCount != 1 { throw .malformed }
        if hostCount > 1 { throw .malformed }
        if transferEncoding {
            // RFC 9112 6.1: 1.0 has no transfer codings, and with Content-Length the framing is ambiguous.
            if request.version == .http10 || contentLength != nil { throw .malformed }
            throw .transferCodingNotImplemented
        }
        request.contentLength = contentLength ?? 0
        request.hasHost = hostCount == 1
        // RFC 9112 9.3: 1.1 persists unless "close"; 1.0 only with "keep-alive".
        request.keepAlive = !close && (request.version.minor >= 1 || keepAliveToken)
        return request
    }

    /// `method SP request-target SP HTTP-version` (RFC 9112 3).
    private static func parseRequestLine(_ head: Span<UInt8>, _ line: Range<Int>) throws(HTTPRequestError) -> HTTPRequestHead {
        var i = line.lowerBound
        while i < line.upperBound && ASCII.isTokenChar(head[i]) { i += 1 }
        let methodRange = line.lowerBound..<i
        guard !methodRange.isEmpty, i < line.upperBound, head[i] == ASCII.space else { throw .malformed }
        i += 1
        let targetStart = i
        // Visible ASCII only; anything else in a target is an error, not a guess.
        while i < line.upperBound && head[i] > ASCII.space && head[i] < 0x7f { i += 1 }
        let target = targetStart..<i
        guard !target.isEmpty, i < line.upperBound, head[i] == ASCII.space else { throw .malformed }
        i += 1
        // HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive (RFC 9112 2.3).
        guard line.upperBound - i == 8, ASCII.hasPrefix(head, "HTTP/", at: i),
              ASCII.isDigit(head[i + 5]), head[i + 6] == ASCII.dot, ASCII.isDigit(head[i + 7]) else {
            throw .malformed
        }
        let version = HTTPVersion(major: Int(head[i + 5] - ASCII.zero), minor: Int(head[i + 7] - ASCII.zero))
        guard version.major == 1 else { throw version.major == 0 ? .malformed : .versionNotSupported }
        let methodBytes = head.extracting(methodRange)
        // Methods are case-sensitive (RFC 9110 9.1).
        let method: HTTPMethod = ASCII.hasPrefix(methodBytes, "GET") && methodBytes.count == 3 ? .get
            : ASCII.hasPrefix(methodBytes, "HEAD") && methodBytes.count == 4 ? .head : .other
        return HTTPRequestHead(method: method, methodRange: methodRange, target: target, version: version,
                               keepAlive: true, contentLength: 0, hasHost: false)
    }

    /// `1*DIGIT`, also as a list of one repeated value ("5, 5"), bounded well below overflow.
    static func parseContentLength(_ value: Span<UInt8>) throws(HTTPRequestError) -> Int {
        var result: Int? = nil
        var failed = false
        forEachToken(value) { token in
            guard !failed else { return }
            var n = 0
            for i in token.indices {
                let b = token[i]
                guard ASCII.isDigit(b), n < (1 << 52) else { failed = true; return }
                n = n * 10 + Int(b - ASCII.zero)
            }
            if token.isEmpty || (result != nil && result != n) { failed = true; return }
            result = n
        }
        guard !failed, let result else { throw .malformed }
        return result
    }

    /// Calls `body` with each comma-separated element of a list value, trimmed of whitespace.
    static func forEachToken(_ value: Span<UInt8>, _ body: (Span<UInt8>) -> Void) {
        var start = 0
        var i = 0
        while i <= value.count {
            if i == value.count || value[i] == ASCII.comma {
                var s = start
                var e = i
                while s < e && (value[s] == ASCII.space || value[s] == ASCII.tab) { s += 1 }
                while e > s && (value[e - 1] == ASCII.space || value[e - 1] == ASCII.tab) { e -= 1 }
                if e > s { body(value.extracting(s..<e)) }
                start = i + 1
            }
            i += 1
        }
    }

    /// The path of a request target: origin-form as is, absolute-form
    /// ("http://host/path") from its path on (RFC 9112 3.2.2), without the
    /// query. Nil for other forms.
    public static func path(ofTarget target: Span<UInt8>) -> Range<Int>? {
        var start = 0
        if target.isEmpty || target[0] != ASCII.slash {
            let scheme: Int
            if ASCII.hasPrefix(target, "http://", caseInsensitive: true) {
                scheme = 7
            } else if ASCII.hasPrefix(target, "https://", caseInsensitive: true) {
                scheme = 8
            } else {
                return nil
            }
            var i = scheme
            while i < target.count && target[i] != ASCII.slash && target[i] != ASCII.question { i += 1 }
            guard i > scheme else { return nil }
            guard i < target.count, target[i] == ASCII.slash else {
                // "http://host" or "http://host?q": an empty path, which means "/".
                return i..<i
            }
            start = i
        }
        var end = start
        while end < target.count && target[end] != ASCII.question && target[end] != ASCII.hash { end += 1 }
        return start..<end
    }

    /// Whether `path` is `/bytes/N`, and N if it is a decimal in 0...limit.
    /// Returns `.some(nil)` for `/bytes/` followed by anything else.
    static func bytesRoute(_ path: Span<UInt8>, limit: UInt64) -> UInt64?? {
        guard ASCII.hasPrefix(path, "/bytes/") else { return nil }
        let digits = path.extracting(7...)
        guard !digits.isEmpty, digits.count <= 20 else { return .some(nil) }
        var n: UInt64 = 0
        for i in digits.indices {
            let b = digits[i]
            guard ASCII.isDigit(b) else { return .some(nil) }
            let (m, o1) = n.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(b - ASCII.zero))
            guard !o1, !o2 else { return .some(nil) }
            n = s
        }
        return n <= limit ? .some(n) : .some(nil)
    }
}

/// Splits a head into lines: LF-terminated, with a CR before the LF dropped.
/// A CR anywhere else is an error (RFC 9112 2.2).
/// Keeps only its position: the bytes are lent to each call.
struct LineIterator {
    var position = 0

    mutating func next(in bytes: Span<UInt8>) throws(HTTPRequestError) -> Range<Int>? {
        guard position < bytes.count else { return nil }
        var i = position
        while i < bytes.count && bytes[i] != ASCII.lf {
            if bytes[i] == ASCII.cr && !(i + 1 < bytes.count && bytes[i + 1] == ASCII.lf) { throw .malformed }
            if bytes[i] == 0 { throw .malformed }
            i += 1
        }
        guard i < bytes.count else { throw .malformed }
        var end = i
        if end > position && bytes[end - 1] == ASCII.cr { end -= 1 }
        let line = position..<end
        position = i + 1
        return line
    }
}
