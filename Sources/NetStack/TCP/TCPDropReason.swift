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
    case broadcast

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
        }
    }
}
