/// What an interface (link, ARP, IP, ICMP) has done, for `--stats` and tests.
public struct InterfaceCounters: Sendable {
    public var framesIn: UInt64 = 0
    public var framesOut: UInt64 = 0
    /// Frames to our own addresses, received again (`loopBack`).
    public var framesLoopedBack: UInt64 = 0
    public var bytesIn: UInt64 = 0
    public var bytesOut: UInt64 = 0
    public var arpRequestsIn: UInt64 = 0
    public var arpRepliesIn: UInt64 = 0
    public var arpRequestsOut: UInt64 = 0
    public var arpRepliesOut: UInt64 = 0
    /// Unicast requests refreshing an entry in use before it expires (of `arpRequestsOut`).
    public var arpRefreshRequestsOut: UInt64 = 0
    /// Entries confirmed by a transport's forward progress (`IPOutput.confirmReachable`).
    public var arpConfirmations: UInt64 = 0
    public var ipv4In: UInt64 = 0
    public var ipv4Out: UInt64 = 0
    public var fragmentsIn: UInt64 = 0
    public var datagramsReassembled: UInt64 = 0
    public var fragmentsOut: UInt64 = 0
    public var icmpEchoRequestsIn: UInt64 = 0
    public var icmpEchoRepliesOut: UInt64 = 0
    public var icmpErrorsOut: UInt64 = 0
    public var icmpIn: UInt64 = 0
    /// ICMP errors about datagrams we sent, handed to their transport.
    public var icmpErrorsIn: UInt64 = 0
    public var ipv6In: UInt64 = 0
    public var ipv6Out: UInt64 = 0
    public var fragments6In: UInt64 = 0
    public var datagrams6Reassembled: UInt64 = 0
    public var fragments6Out: UInt64 = 0
    public var icmp6In: UInt64 = 0
    public var icmp6EchoRequestsIn: UInt64 = 0
    public var icmp6EchoRepliesOut: UInt64 = 0
    public var icmp6ErrorsOut: UInt64 = 0
    public var icmp6ErrorsIn: UInt64 = 0
    public var ndpSolicitationsIn: UInt64 = 0
    public var ndpSolicitationsOut: UInt64 = 0
    public var ndpAdvertisementsIn: UInt64 = 0
    public var ndpAdvertisementsOut: UInt64 = 0
    /// Unicast solicitations to a known neighbour in use (NUD's PROBE).
    public var ndpProbesOut: UInt64 = 0
    public var ndpConfirmations: UInt64 = 0
    public var routerAdvertisementsIn: UInt64 = 0
    public var routerSolicitationsOut: UInt64 = 0
    /// Multicast listener discovery (RFC 3810): queries taken in, reports sent.
    public var mldQueriesIn: UInt64 = 0
    public var mldReportsOut: UInt64 = 0
    /// Duplicate address detection: solicitations sent, addresses that
    /// became ours, addresses found in use elsewhere (RFC 4862 5.4).
    public var dadSolicitationsOut: UInt64 = 0
    public var dadAddressesAssigned: UInt64 = 0
    public var dadDuplicates: UInt64 = 0
    /// Path MTU estimates lowered by a validated "packet too big" (RFC 1191,
    /// RFC 8201), those aged out to the link MTU, and those a full table evicted.
    public var pathMTULearned: UInt64 = 0
    public var pathMTUExpired: UInt64 = 0
    public var pathMTUEvicted: UInt64 = 0
    /// Turns on which due timers waited for a receive backlog to drain
    /// (`EventLoop.timerDeferralLimit`).
    public var timersDeferred: UInt64 = 0
    public var drops = DropCounters<DropReason>()

    public init() {}

    /// Name/value pairs for printing, drops last and only where non-zero.
    public var report: [(String, UInt64)] {
        let r: [(String, UInt64)] = [
            ("frames-in", framesIn), ("frames-out", framesOut), ("frames-looped-back", framesLoopedBack), ("bytes-in", bytesIn), ("bytes-out", bytesOut),
            ("arp-requests-in", arpRequestsIn), ("arp-replies-in", arpRepliesIn),
            ("arp-requests-out", arpRequestsOut), ("arp-replies-out", arpRepliesOut),
            ("arp-refresh-requests-out", arpRefreshRequestsOut), ("arp-confirmations", arpConfirmations),
            ("ipv4-in", ipv4In), ("ipv4-out", ipv4Out), ("fragments-in", fragmentsIn),
            ("datagrams-reassembled", datagramsReassembled), ("fragments-out", fragmentsOut),
            ("icmp-in", icmpIn), ("icmp-echo-requests-in", icmpEchoRequestsIn),
            ("icmp-echo-replies-out", icmpEchoRepliesOut), ("icmp-errors-out", icmpErrorsOut),
            ("icmp-errors-in", icmpErrorsIn),
            ("ipv6-in", ipv6In), ("ipv6-out", ipv6Out), ("fragments6-in", fragments6In),
            ("datagrams6-reassembled", datagrams6Reassembled), ("fragments6-out", fragments6Out),
            ("icmp6-in", icmp6In), ("icmp6-echo-requests-in", icmp6EchoRequestsIn),
            ("icmp6-echo-replies-out", icmp6EchoRepliesOut), ("icmp6-errors-out", icmp6ErrorsOut),
            ("icmp6-errors-in", icmp6ErrorsIn),
            ("ndp-solicitations-in", ndpSolicitationsIn), ("ndp-solicitations-out", ndpSolicitationsOut),
            ("ndp-advertisements-in", ndpAdvertisementsIn), ("ndp-advertisements-out", ndpAdvertisementsOut),
            ("ndp-probes-out", ndpProbesOut), ("ndp-confirmations", ndpConfirmations),
            ("router-advertisements-in", routerAdvertisementsIn),
            ("router-solicitations-out", routerSolicitationsOut),
            ("mld-queries-in", mldQueriesIn), ("mld-reports-out", mldReportsOut),
            ("dad-solicitations-out", dadSolicitationsOut), ("dad-addresses-assigned", dadAddressesAssigned),
            ("dad-duplicates", dadDuplicates),
            ("pmtu-learned", pathMTULearned), ("pmtu-expired", pathMTUExpired),
            ("pmtu-evicted", pathMTUEvicted), ("timers-deferred", timersDeferred),
            ("drops", drops.total),
        ]
        return r + drops.report
    }
}
