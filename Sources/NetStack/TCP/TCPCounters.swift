/// What TCP has done, for `--stats` and tests.
public struct TCPCounters: Sendable {
    public var segmentsIn: UInt64 = 0
    public var segmentsOut: UInt64 = 0
    public var activeOpens: UInt64 = 0
    public var passiveOpens: UInt64 = 0
    public var connectionsClosed: UInt64 = 0
    public var connectionsReset: UInt64 = 0
    public var connectionsTimedOut: UInt64 = 0
    public var resetsSent: UInt64 = 0
    public var challengeAcks: UInt64 = 0
    /// Connections in TIME-WAIT that a new SYN from the same peer reopened
    /// (RFC 1122 4.2.2.13, RFC 6191).
    public var timeWaitReopened: UInt64 = 0
    /// Segments whose answer waited for the end of their receive batch and
    /// went out with the rest of it (`TCPLayer.receive`: GRO's effect).
    public var answersCoalesced: UInt64 = 0
    /// ACKs sent in answer to segments not accepted (out of window, PAWS, an
    /// ACK of unsent data), and those the limits held back (`TCPAnswerLimits`);
    /// the segments themselves are counted among the drops.
    public var unacceptableAcks: UInt64 = 0
    public var unacceptableAcksRateLimited: UInt64 = 0
    /// SYN cookies (RFC 4987 3.6): SYN-ACKs sent with one, ACKs that
    /// returned a valid one (a connection, unless the accept queue was full),
    /// and ACKs checked for one that held none (forged, or expired).
    public var synCookiesSent: UInt64 = 0
    public var synCookiesValidated: UInt64 = 0
    public var synCookiesFailed: UInt64 = 0
    /// New connections refused with a RST (or a `connect` that threw)
    /// because the memory budget had no room (`--memory-limit`).
    public var refusedForMemory: UInt64 = 0
    /// Half-open connections dropped before their time: the oldest, evicted
    /// by a SYN that found the queue full; and those toward a neighbour that
    /// never answered ARP.
    public var synQueueEvicted: UInt64 = 0
    public var halfOpenUnreachable: UInt64 = 0
    /// ICMP errors about our segments (RFC 5927, `TCPLayer.receiveError`):
    /// those quoting no connection, and those whose quoted sequence number
    /// is not in flight (both ignored); of the rest, "packet too big"
    /// (RFC 1191, RFC 8201), connections aborted in SYN-SENT by a hard error,
    /// and soft errors recorded.
    public var icmpNoConnection: UInt64 = 0
    public var icmpOutOfWindow: UInt64 = 0
    public var icmpPacketTooBig: UInt64 = 0
    public var icmpAborts: UInt64 = 0
    /// Active opens failed because their next hop did not resolve (`neighbourUnreachable`).
    public var connectsUnreachable: UInt64 = 0
    public var icmpSoftErrors: UInt64 = 0
    /// Connections whose MSS a lower path MTU cut, and segments marked lost
    /// by a "packet too big" and resent without a congestion response.
    public var pathMTUMSSLowered: UInt64 = 0
    public var pathMTUResends: UInt64 = 0
    /// Segments sent again, summed over connections.
    public var retransmissions: UInt64 = 0
    /// Loss episodes: fast recoveries entered, tail loss probes sent, retransmission timeouts.
    public var fastRecoveries: UInt64 = 0
    public var lossProbes: UInt64 = 0
    public var timeouts: UInt64 = 0
    /// Fast recoveries proved spurious by D-SACKs, their window cut undone (RFC 3708).
    public var recoveriesUndone: UInt64 = 0
    /// Loss probes that repaired a loss, and those D-SACKed (both copies arrived).
    public var lossProbeRecoveries: UInt64 = 0
    public var lossProbesUnneeded: UInt64 = 0
    /// ACKs that carried a D-SACK (RFC 2883): the peer received data twice.
    public var duplicateReportsIn: UInt64 = 0
    public var drops = DropCounters<TCPDropReason>()
    /// Payload bytes sent and received (made readable), and the bytes the
    /// stack copied doing so (`TCPConnection.bytesCopiedSending`,
    /// `bytesCopiedReceiving`): copied over moved is the copies per byte.
    public var payloadBytesOut: UInt64 = 0
    public var payloadBytesIn: UInt64 = 0
    public var payloadBytesCopiedOut: UInt64 = 0
    public var payloadBytesCopiedIn: UInt64 = 0

    public init() {}

    /// Adds what one connection counted itself.
    mutating func add(tallies c: TCPConnection) {
        retransmissions &+= c.segmentsRetransmitted
        fastRecoveries &+= c.fastRecoveries
        lossProbes &+= c.lossProbesSent
        timeouts &+= c.retransmissionTimeouts
        recoveriesUndone &+= c.recoveriesUndone
        lossProbeRecoveries &+= c.lossProbeRecoveries
        lossProbesUnneeded &+= c.lossProbesUnneeded
        duplicateReportsIn &+= c.duplicateReportsReceived
        payloadBytesOut &+= c.bytesSent
        payloadBytesIn &+= c.bytesReceived
        payloadBytesCopiedOut &+= c.bytesCopiedSending
        payloadBytesCopiedIn &+= c.bytesCopiedReceiving
    }

    /// Name/value pairs for printing, drops last and only where non-zero.
    public var report: [(String, UInt64)] {
        [("tcp-segments-in", segmentsIn), ("tcp-segments-out", segmentsOut),
         ("tcp-active-opens", activeOpens), ("tcp-passive-opens", passiveOpens),
         ("tcp-connections-closed", connectionsClosed), ("tcp-connections-reset", connectionsReset),
         ("tcp-connections-timed-out", connectionsTimedOut), ("tcp-retransmissions", retransmissions),
         ("tcp-fast-recoveries", fastRecoveries), ("tcp-loss-probes", lossProbes),
         ("tcp-loss-probe-recoveries", lossProbeRecoveries), ("tcp-loss-probes-unneeded", lossProbesUnneeded),
         ("tcp-timeouts", timeouts), ("tcp-recoveries-undone", recoveriesUndone),
         ("tcp-dsacks-in", duplicateReportsIn),
         ("tcp-resets-sent", resetsSent), ("tcp-challenge-acks", challengeAcks),
         ("tcp-time-wait-reopened", timeWaitReopened),
         ("tcp-answers-coalesced", answersCoalesced),
         ("tcp-oow-acks", unacceptableAcks), ("tcp-oow-acks-rate-limited", unacceptableAcksRateLimited),
         ("tcp-syncookies-sent", synCookiesSent), ("tcp-syncookies-validated", synCookiesValidated),
         ("tcp-syncookies-failed", synCookiesFailed),
         ("tcp-refused-for-memory", refusedForMemory), ("tcp-syn-queue-evicted", synQueueEvicted),
         ("tcp-half-open-unreachable", halfOpenUnreachable), ("tcp-connects-unreachable", connectsUnreachable),
         ("tcp-icmp-no-connection", icmpNoConnection), ("tcp-icmp-out-of-window", icmpOutOfWindow),
         ("tcp-icmp-packet-too-big", icmpPacketTooBig), ("tcp-icmp-aborts", icmpAborts),
         ("tcp-icmp-soft-errors", icmpSoftErrors), ("tcp-pmtu-mss-lowered", pathMTUMSSLowered),
         ("tcp-pmtu-resends", pathMTUResends),
         ("tcp-payload-bytes-out", payloadBytesOut), ("tcp-payload-bytes-copied-out", payloadBytesCopiedOut),
         ("tcp-payload-bytes-in", payloadBytesIn), ("tcp-payload-bytes-copied-in", payloadBytesCopiedIn),
         ("tcp-drops", drops.total)] + drops.report
    }
}
