/// Why UDP dropped a datagram.
public enum UDPDropReason: Int, DropReasonSet {
    case truncated
    /// The UDP length disagrees with what IP carried (RFC 1122 4.1.3.4).
    case badLength
    case badChecksum
    /// Nothing is bound to the destination port (answered with port unreachable).
    case noSocket
    /// The socket's receive queue had no room: the application is not reading.
    case receiveQueueFull
    /// The payload exceeds what one IP datagram carries.
    case tooLargeToSend

    public var description: String {
        switch self {
        case .truncated: "udp-truncated"
        case .badLength: "udp-bad-length"
        case .badChecksum: "udp-bad-checksum"
        case .noSocket: "udp-no-socket"
        case .receiveQueueFull: "udp-receive-queue-full"
        case .tooLargeToSend: "udp-too-large-to-send"
        }
    }
}

/// What UDP has done, for `--stats` and tests.
public struct UDPCounters: Sendable {
    public var datagramsIn: UInt64 = 0
    public var datagramsOut: UInt64 = 0
    /// ICMP errors about datagrams we sent, handed to their sockets.
    public var errorsIn: UInt64 = 0
    public var drops = DropCounters<UDPDropReason>()

    public init() {}

    public var report: [(String, UInt64)] {
        [("udp-in", datagramsIn), ("udp-out", datagramsOut), ("udp-errors-in", errorsIn),
         ("udp-drops", drops.total)] + drops.report
    }
}
