import NetStack

/// The TCP halves of the classic test services: Echo (RFC 862), Discard
/// (RFC 863) and Character Generator (RFC 864). They run on the event loop
/// through connection callbacks; each moves as many bytes as the rings allow
/// and waits for the next callback when they are full.
///
/// A connection whose peer makes no progress for `idleTimeout` (default
/// `defaultIdleTimeout`; nil: never) is closed: echo and discard with a FIN
/// (a RST if unread data is left), chargen with a RST, since its FIN would
/// wait behind a send ring the peer stopped taking.
public enum TCPEchoService {
    public static func install(on stack: Stack, port: UInt16 = 7,
                               idleTimeout: Duration? = TCPServiceTimeouts.defaultIdleTimeout) throws(TCPListenError) {
        let listener = try stack.listen(port: port)
        listener.onAccept = { connection in
            connection.idleTimeout = idleTimeout
            // Straight from the frame into the send ring, while nothing is waiting.
            connection.onReceive = { c, bytes in c.write(bytes) }
            connection.onReadable = { c in echo(c) }
            connection.onWritable = { c in echo(c) }
        }
    }

    /// Moves received bytes into the send ring; closes once the peer has
    /// closed and everything has been echoed.
    static func echo(_ c: TCPConnection) {
        while c.readableBytes > 0 {
            let moved = c.peek { (a: Span<UInt8>, b: Span<UInt8>) in
                let first = c.write(a)
                return first < a.count ? first : first + c.write(b)
            }
            guard moved > 0 else { break }
            c.skip(moved)
        }
        if c.isReadClosed && c.readableBytes == 0 { c.close() }
    }
}

public enum TCPDiscardService {
    public static func install(on stack: Stack, port: UInt16 = 9,
                               idleTimeout: Duration? = TCPServiceTimeouts.defaultIdleTimeout) throws(TCPListenError) {
        let listener = try stack.listen(port: port)
        listener.onAccept = { connection in
            connection.idleTimeout = idleTimeout
            connection.onReceive = { _, bytes in bytes.count }
            connection.onReadable = { c in
                c.skip(c.readableBytes)
                if c.isReadClosed { c.close() }
            }
        }
    }
}

public enum TCPChargenService {
    /// RFC 864's suggested pattern: 72-character lines of the 95 printable
    /// ASCII characters, each line starting one character later.
    static let pattern: [UInt8] = {
        var out: [UInt8] = []
        for line in 0..<95 {
            for i in 0..<72 { out.append(UInt8(32 + (line + i) % 95)) }
            out.append(13)
            out.append(10)
        }
        return out
    }()

    public static func install(on stack: Stack, port: UInt16 = 19,
                               idleTimeout: Duration? = TCPServiceTimeouts.defaultIdleTimeout) throws(TCPListenError) {
        let listener = try stack.listen(port: port)
        listener.onAccept = { connection in
            connection.onIdle = { c in c.abort() }
            connection.idleTimeout = idleTimeout
            var offset = 0
            let fill: (TCPConnection) -> Void = { c in
                let p = pattern.span
                while c.writableBytes > 0 {
                    let n = c.write(p.extracting(offset...))
                    guard n > 0 else { break }
                    offset = (offset + n) % p.count
                }
            }
            connection.onWritable = fill
            connection.onReadable = { c in
                c.skip(c.readableBytes)
                if c.isReadClosed { c.close() }
            }
            fill(connection)
        }
    }
}

public enum TCPServiceTimeouts {
    /// Echo, discard and chargen: five minutes without progress. The
    /// services are for people and test tools, and inetd's had none; long
    /// enough for a pause at a terminal, short enough that a peer that
    /// vanished does not hold its connection for ever.
    public static let defaultIdleTimeout: Duration? = .seconds(300)
}
