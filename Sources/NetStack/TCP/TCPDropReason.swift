/// Why TCP dropped a segment (RFC 9293 3.10.7's checks, RFC 5961's, RFC 7323's PAWS).
public enum TCPDropReason: Int, DropReasonSet {
    case truncated
    case badChecksum
    case badOption
    case noConnection
    case outOfWindow
    case paws
    case badAck
    case ackUnsent
    case badReset
    case noSyn
    case noAck
    case resetInTimeWait
    case synQueueFull
    case acceptQueueFull
    case challengeAckRateLimited
    /// Sent to a broadcast or multicast address, or in such a link-layer frame (RFC 1122 4.2.3.10).
    case broadcast
    /// SYN and FIN together (RFC 9293 has no such segment): dropped in LISTEN,
    /// SYN-SENT and SYN-RECEIVED, never taken as a SYN or a SYN-ACK (Linux
    /// discards it in LISTEN). In the synchronized states it is a SYN as any
    /// other there, answered by a rate-limited challenge ACK (RFC 5961 4.2).
    case synWithFin
    /// SYN and RST together: dropped in every state.
    case synWithReset

    public var description: String {
        switch self {
        case .truncated: "tcp-truncated"
        case .badChecksum: "tcp-bad-checksum"
        case .badOption: "tcp-bad-option"
        case .noConnection: "tcp-no-connection"
        case .outOfWindow: "tcp-out-of-window"
        case .paws: "tcp-paws"
        case .badAck: "tcp-bad-ack"
        case .ackUnsent: "tcp-ack-of-unsent-data"
        case .badReset: "tcp-bad-reset"
        case .noSyn: "tcp-no-syn"
        case .noAck: "tcp-no-ack"
        case .resetInTimeWait: "tcp-reset-in-time-wait"
        case .synQueueFull: "tcp-syn-queue-full"
        case .acceptQueueFull: "tcp-accept-queue-full"
        case .challengeAckRateLimited: "tcp-challenge-ack-rate-limited"
        case .broadcast: "tcp-broadcast"
        case .synWithFin: "tcp-syn-fin"
        case .synWithReset: "tcp-syn-rst"
        }
    }
}
