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
    // IPv6 (RFC 8200)
    case ipv6Truncated
    case ipv6BadVersion
    /// A source no packet may come from: multicast, loopback, IPv4-mapped,
    /// our own, or unspecified for anything but duplicate address detection.
    case ipv6MartianSource
    case ipv6NotForUs
    case ipv6UnsupportedProtocol
    /// An extension header or option that RFC 8200 4 says to refuse (a
    /// parameter problem was sent where the rules allow).
    case ipv6ParameterProblem
    case ipv6HeaderChainTruncated
    case ipv6HeaderChainTooLong
    case ipv6UnknownOption
    /// An option running past its header, or padding that is not (RFC 8200 4.2).
    case ipv6BadOption
    case ipv6NoNextHeader
    // ICMPv6 (RFC 4443) and neighbour discovery (RFC 4861)
    case icmp6Truncated
    case icmp6BadChecksum
    case icmp6UnhandledType
    case icmp6BadQuote
    /// A neighbour discovery message failing RFC 4861's validity checks
    /// (hop limit 255, code 0, lengths, options, addresses).
    case ndpInvalid
    case ndpNotForUs
    /// A router solicitation: hosts do not answer them (RFC 4861 6.2.6).
    case ndpRouterSolicitation
    case ndpRedirectIgnored
    /// A multicast listener query failing RFC 3810 5.1.14's checks (a
    /// link-local source, hop limit 1) or of no valid length.
    case mldInvalid
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
        case .ipv6Truncated: "ipv6-truncated"
        case .ipv6BadVersion: "ipv6-bad-version"
        case .ipv6MartianSource: "ipv6-martian-source"
        case .ipv6NotForUs: "ipv6-not-for-us"
        case .ipv6UnsupportedProtocol: "ipv6-unsupported-protocol"
        case .ipv6ParameterProblem: "ipv6-parameter-problem"
        case .ipv6HeaderChainTruncated: "ipv6-header-chain-truncated"
        case .ipv6HeaderChainTooLong: "ipv6-header-chain-too-long"
        case .ipv6UnknownOption: "ipv6-unknown-option"
        case .ipv6BadOption: "ipv6-bad-option"
        case .ipv6NoNextHeader: "ipv6-no-next-header"
        case .icmp6Truncated: "icmp6-truncated"
        case .icmp6BadChecksum: "icmp6-bad-checksum"
        case .icmp6UnhandledType: "icmp6-unhandled-type"
        case .icmp6BadQuote: "icmp6-bad-quote"
        case .ndpInvalid: "ndp-invalid"
        case .ndpNotForUs: "ndp-not-for-us"
        case .ndpRouterSolicitation: "ndp-router-solicitation"
        case .ndpRedirectIgnored: "ndp-redirect-ignored"
        case .mldInvalid: "mld-invalid"
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
