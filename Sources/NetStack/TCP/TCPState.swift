/// The eleven states of a TCP connection (RFC 9293 3.3.2, Figure 5).
public enum TCPState: String, Sendable, CustomStringConvertible {
    case closed = "CLOSED"
    case listen = "LISTEN"
    case synSent = "SYN-SENT"
    case synReceived = "SYN-RECEIVED"
    case established = "ESTABLISHED"
    case finWait1 = "FIN-WAIT-1"
    case finWait2 = "FIN-WAIT-2"
    case closeWait = "CLOSE-WAIT"
    case closing = "CLOSING"
    case lastAck = "LAST-ACK"
    case timeWait = "TIME-WAIT"

    public var description: String { rawValue }

    /// States after the handshake, where RFC 9293 3.10.7.4's checks apply and RSTs carry our sequence.
    public var isSynchronized: Bool {
        switch self {
        case .closed, .listen, .synSent, .synReceived: false
        default: true
        }
    }

    /// States in which received text is delivered to the application (RFC 9293 3.10.7.4, seventh check).
    var acceptsText: Bool {
        switch self {
        case .established, .finWait1, .finWait2: true
        default: false
        }
    }

    /// States in which the application may still queue data to send.
    var acceptsWrites: Bool {
        switch self {
        case .synSent, .synReceived, .established, .closeWait: true
        default: false
        }
    }
}

/// Why a connection ended badly, as the application sees it.
public enum TCPError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The peer answered our SYN with RST (nothing listens there).
    case connectionRefused
    /// The peer reset an established connection.
    case connectionReset
    /// Retransmissions or keepalive probes went unanswered (RFC 9293 3.8.3, R2).
    case timedOut
    /// The application aborted it.
    case aborted
    /// Our SYN's next hop (the peer, or the router towards it) did not
    /// answer address resolution: Linux's connect fails with EHOSTUNREACH
    /// then (its neighbour failure reports a host unreachable, which
    /// `tcp_v4_err` takes as fatal in SYN-SENT), not after the SYN retries.
    case hostUnreachable

    public var description: String {
        switch self {
        case .connectionRefused: "connection refused"
        case .connectionReset: "connection reset by peer"
        case .timedOut: "connection timed out"
        case .aborted: "connection aborted"
        case .hostUnreachable: "no route to host"
        }
    }
}
