import NetStackWire

/// Why the stack dropped a frame. Every drop is counted under exactly one
/// reason, and `netstack up --stats` prints the non-zero ones.
public enum DropReason: Int, CaseIterable, Sendable, CustomStringConvertible {
    // Link
    case ethernetTruncated
    case notOurMAC
    case unsupportedEtherType
    // ARP
    case arpTruncated
    case arpUnsupported
    case arpNotForUs
    case arpBadSender
    // IPv4
    case ipv4Truncated
    case ipv4BadVersion
    case ipv4BadLength
    case ipv4BadChecksum
    case ipv4BadSource
    case ipv4NotForUs
    case ipv4UnsupportedProtocol
    // Reassembly (RFC 791 3.2)
    case fragmentOverlap
    case fragmentDuplicate
    case fragmentTooLarge
    case fragmentBadLength
    case reassemblyNoSpace
    case reassemblyTimeout
    // ICMP
    case icmpTruncated
    case icmpBadChecksum
    case icmpUnhandledType
    case icmpIgnoredBroadcastEcho
    // UDP
    case udpTruncated
    case udpBadLength
    case udpBadChecksum
    case udpNoSocket
    // TCP
    case tcpTruncated
    case tcpBadChecksum
    case tcpBadOption
    case tcpNoConnection
    case tcpOutOfWindow
    case tcpPAWS
    case tcpBadAck
    case tcpAckUnsent
    case tcpBadReset
    case tcpNoSyn
    case tcpNoAck
    case tcpResetInTimeWait
    case tcpSynQueueFull
    case tcpAcceptQueueFull
    case tcpChallengeAckRateLimited
    case tcpBroadcast
    // Output
    case noRoute
    case arpQueueFull
    case arpResolutionFailed
    case poolExhausted
    case tooLargeToSend
    case icmpErrorRateLimited
    case linkQueueFull
    // Fault injection (only with a FaultInjector in the path)
    case injectedLoss

    public var description: String {
        switch self {
        case .ethernetTruncated: "ethernet-truncated"
        case .notOurMAC: "not-our-mac"
        case .unsupportedEtherType: "unsupported-ethertype"
        case .arpTruncated: "arp-truncated"
        case .arpUnsupported: "arp-unsupported"
        case .arpNotForUs: "arp-not-for-us"
        case .arpBadSender: "arp-bad-sender"
        case .ipv4Truncated: "ipv4-truncated"
        case .ipv4BadVersion: "ipv4-bad-version"
        case .ipv4BadLength: "ipv4-bad-length"
        case .ipv4BadChecksum: "ipv4-bad-checksum"
        case .ipv4BadSource: "ipv4-bad-source"
        case .ipv4NotForUs: "ipv4-not-for-us"
        case .ipv4UnsupportedProtocol: "ipv4-unsupported-protocol"
        case .fragmentOverlap: "fragment-overlap"
        case .fragmentDuplicate: "fragment-duplicate"
        case .fragmentTooLarge: "fragment-too-large"
        case .fragmentBadLength: "fragment-bad-length"
        case .reassemblyNoSpace: "reassembly-no-space"
        case .reassemblyTimeout: "reassembly-timeout"
        case .icmpTruncated: "icmp-truncated"
        case .icmpBadChecksum: "icmp-bad-checksum"
        case .icmpUnhandledType: "icmp-unhandled-type"
        case .icmpIgnoredBroadcastEcho: "icmp-ignored-broadcast-echo"
        case .udpTruncated: "udp-truncated"
        case .udpBadLength: "udp-bad-length"
        case .udpBadChecksum: "udp-bad-checksum"
        case .udpNoSocket: "udp-no-socket"
        case .tcpTruncated: "tcp-truncated"
        case .tcpBadChecksum: "tcp-bad-checksum"
        case .tcpBadOption: "tcp-bad-option"
        case .tcpNoConnection: "tcp-no-connection"
        case .tcpOutOfWindow: "tcp-out-of-window"
        case .tcpPAWS: "tcp-paws"
        case .tcpBadAck: "tcp-bad-ack"
        case .tcpAckUnsent: "tcp-ack-of-unsent-data"
        case .tcpBadReset: "tcp-bad-reset"
        case .tcpNoSyn: "tcp-no-syn"
        case .tcpNoAck: "tcp-no-ack"
        case .tcpResetInTimeWait: "tcp-reset-in-time-wait"
        case .tcpSynQueueFull: "tcp-syn-queue-full"
        case .tcpAcceptQueueFull: "tcp-accept-queue-full"
        case .tcpChallengeAckRateLimited: "tcp-challenge-ack-rate-limited"
        case .tcpBroadcast: "tcp-broadcast"
        case .noRoute: "no-route"
        case .arpQueueFull: "arp-queue-full"
        case .arpResolutionFailed: "arp-resolution-failed"
        case .poolExhausted: "pool-exhausted"
        case .tooLargeToSend: "too-large-to-send"
        case .icmpErrorRateLimited: "icmp-error-rate-limited"
        case .linkQueueFull: "link-queue-full"
        case .injectedLoss: "injected-loss"
        }
    }
}

/// A count per drop reason, in a fixed array: counting never allocates.
public struct DropCounters: Sendable {
    private var counts = [UInt64](repeating: 0, count: DropReason.allCases.count)

    public init() {}

    public subscript(reason: DropReason) -> UInt64 {
        get { counts[reason.rawValue] }
        set { counts[reason.rawValue] = newValue }
    }

    public mutating func record(_ reason: DropReason) { counts[reason.rawValue] &+= 1 }

    public var total: UInt64 { counts.reduce(0, &+) }

    /// The reasons with a non-zero count, in declaration order.
    public var nonZero: [(DropReason, UInt64)] {
        DropReason.allCases.compactMap { counts[$0.rawValue] > 0 ? ($0, counts[$0.rawValue]) : nil }
    }
}

extension DropReason {
    /// The IPv4 drop reason for a view's validation error.
    init(ipv4 e: WireError) {
        switch e {
        case .truncated: self = .ipv4Truncated
        case .unsupported: self = .ipv4BadVersion
        case .badChecksum: self = .ipv4BadChecksum
        case .badLength, .badOption: self = .ipv4BadLength
        }
    }

    /// The UDP drop reason for a view's validation error.
    init(udp e: WireError) {
        switch e {
        case .truncated: self = .udpTruncated
        case .badChecksum: self = .udpBadChecksum
        case .badLength, .badOption, .unsupported: self = .udpBadLength
        }
    }
}

/// What an interface has done, for `--stats` and tests.
public struct InterfaceCounters: Sendable {
    public var framesIn: UInt64 = 0
    public var framesOut: UInt64 = 0
    public var bytesIn: UInt64 = 0
    public var bytesOut: UInt64 = 0
    public var arpRequestsIn: UInt64 = 0
    public var arpRepliesIn: UInt64 = 0
    public var arpRequestsOut: UInt64 = 0
    public var arpRepliesOut: UInt64 = 0
    public var ipv4In: UInt64 = 0
    public var ipv4Out: UInt64 = 0
    public var fragmentsIn: UInt64 = 0
    public var datagramsReassembled: UInt64 = 0
    public var fragmentsOut: UInt64 = 0
    public var icmpEchoRequestsIn: UInt64 = 0
    public var icmpEchoRepliesOut: UInt64 = 0
    public var icmpErrorsOut: UInt64 = 0
    public var icmpIn: UInt64 = 0
    public var udpIn: UInt64 = 0
    public var udpOut: UInt64 = 0
    public var tcpSegmentsIn: UInt64 = 0
    public var tcpSegmentsOut: UInt64 = 0
    public var tcpActiveOpens: UInt64 = 0
    public var tcpPassiveOpens: UInt64 = 0
    public var tcpConnectionsClosed: UInt64 = 0
    public var tcpConnectionsReset: UInt64 = 0
    public var tcpConnectionsTimedOut: UInt64 = 0
    public var tcpRetransmissions: UInt64 = 0
    /// Loss episodes: fast recoveries entered, tail loss probes sent, retransmission timeouts.
    public var tcpFastRecoveries: UInt64 = 0
    public var tcpLossProbes: UInt64 = 0
    public var tcpTimeouts: UInt64 = 0
    /// Fast recoveries proved spurious by D-SACKs, their window cut undone.
    public var tcpRecoveriesUndone: UInt64 = 0
    public var tcpResetsSent: UInt64 = 0
    public var tcpChallengeAcks: UInt64 = 0
    public var drops = DropCounters()

    public init() {}

    /// Name/value pairs for printing, drops last and only where non-zero.
    public var report: [(String, UInt64)] {
        var r: [(String, UInt64)] = [
            ("frames-in", framesIn), ("frames-out", framesOut), ("bytes-in", bytesIn), ("bytes-out", bytesOut),
            ("arp-requests-in", arpRequestsIn), ("arp-replies-in", arpRepliesIn),
            ("arp-requests-out", arpRequestsOut), ("arp-replies-out", arpRepliesOut),
            ("ipv4-in", ipv4In), ("ipv4-out", ipv4Out), ("fragments-in", fragmentsIn),
            ("datagrams-reassembled", datagramsReassembled), ("fragments-out", fragmentsOut),
            ("icmp-in", icmpIn), ("icmp-echo-requests-in", icmpEchoRequestsIn),
            ("icmp-echo-replies-out", icmpEchoRepliesOut), ("icmp-errors-out", icmpErrorsOut),
            ("udp-in", udpIn), ("udp-out", udpOut),
            ("tcp-segments-in", tcpSegmentsIn), ("tcp-segments-out", tcpSegmentsOut),
            ("tcp-active-opens", tcpActiveOpens), ("tcp-passive-opens", tcpPassiveOpens),
            ("tcp-connections-closed", tcpConnectionsClosed), ("tcp-connections-reset", tcpConnectionsReset),
            ("tcp-connections-timed-out", tcpConnectionsTimedOut), ("tcp-retransmissions", tcpRetransmissions),
            ("tcp-fast-recoveries", tcpFastRecoveries), ("tcp-loss-probes", tcpLossProbes),
            ("tcp-timeouts", tcpTimeouts), ("tcp-recoveries-undone", tcpRecoveriesUndone),
            ("tcp-resets-sent", tcpResetsSent), ("tcp-challenge-acks", tcpChallengeAcks),
            ("drops", drops.total),
        ]
        for (reason, n) in drops.nonZero { r.append(("drop." + reason.description, n)) }
        return r
    }
}
