import NetStackWire

/// Why the stack dropped a frame. Every drop is counted under exactly one
/// reason, and `netstack up --stats` prints the non-zero ones.
public enum DropReason: Int, DropReasonSet {
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
    /// A source no datagram may come from (`IPv4CIDR.isMartianSource`).
    case ipv4MartianSource
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
    /// An error whose quoted datagram is cut short or was not sent by us.
    case icmpBadQuote
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
        case .ipv4MartianSource: "ipv4-martian-source"
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
        case .icmpBadQuote: "icmp-bad-quote"
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
}
