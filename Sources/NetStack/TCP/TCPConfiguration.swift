import NetStackWire

/// Per-connection TCP settings. Defaults follow the RFCs, and Linux where the
/// RFCs leave a range.
public struct TCPConfiguration: Sendable {
    /// The most the send and receive buffers hold. Their memory is allocated
    /// on first use and grows on demand (`ByteRing`), so a connection holds
    /// what it carries, not these. The send buffer bounds what is in flight:
    /// over the TAP, whose round trip is 0.1-0.4 ms, 256 KiB held a bulk
    /// sender under 20-27 Gbit/s; 4 MiB is Linux's `tcp_wmem` maximum. The
    /// receive buffer bounds the window we advertise, from the start (there
    /// is no receive-window autotuning, as Linux's DRS, yet): a larger one
    /// lets a kernel sender burst more 1514-byte frames than the TAP's
    /// 1000-frame queue holds when offloads are off.
    public var sendBufferSize = 4 << 20
    public var receiveBufferSize = 256 * 1024
    /// RFC 7323: window scaling and timestamps, offered on SYN and used if the peer agrees.
    public var windowScaling = true
    public var timestamps = true
    /// RFC 2018: offer SACK-permitted.
    public var sackPermitted = true
    /// The congestion controller new connections run (`--cc`): CUBIC, as Linux.
    public var congestionControl: CongestionAlgorithm = .cubic
    /// RFC 8985 RACK-TLP: time-based loss detection and tail loss probes, used
    /// when the peer permitted SACK. Off, SACK recovery marks losses by RFC
    /// 6675's DupThresh rule alone.
    public var rackTLP = true
    /// Disables Nagle's algorithm (RFC 9293 3.7.4), as TCP_NODELAY does.
    public var noDelay = false
    /// RFC 9293 3.8.6.3: a delayed ACK waits less than 0.5 s; Linux's floor is 40 ms.
    public var delayedAckTimeout: Duration = .milliseconds(40)
    /// Maximum segment lifetime; TIME-WAIT lasts 2 MSL (Linux: 60 s in all).
    public var msl: Duration = .seconds(30)
    /// RFC 6298 RTO bounds. The minimum is Linux's 200 ms, not the RFC's 1 s.
    public var initialRTO: Duration = .seconds(1)
    public var minimumRTO: Duration = .milliseconds(200)
    public var maximumRTO: Duration = .seconds(60)
    /// Retransmissions of one segment before the connection fails (RFC 9293 3.8.3 R2; Linux tcp_retries2 = 15).
    public var maxRetransmissions = 15
    /// Retransmissions of one segment before a connection its application
    /// closed (an orphan: nobody would hear of its failure) gives up, at most
    /// `maxRetransmissions`. Linux's tcp_orphan_retries, whose 0 means 8:
    /// about 100 s of backoff from a 200 ms RTO instead of 15 minutes for
    /// tcp_retries2, so FINs lost towards a peer that vanished (a close storm
    /// overflowing the TAP's queue) do not hold connections that long.
    public var maxOrphanRetransmissions = 8
    /// SYN retransmissions before an active open fails (Linux tcp_syn_retries = 6).
    public var maxSynRetransmissions = 6
    /// SYN-ACK retransmissions before a passive open is dropped (Linux
    /// tcp_synack_retries = 5: given up after 63 s), at most
    /// `maxSynRetransmissions`; fewer while the listener's SYN queue is more
    /// than half full (`SYNQueue.synAckRetryLimit`).
    public var maxSynAckRetransmissions = 5
    /// When a listener answers a SYN with a SYN cookie (RFC 4987 3.6) instead
    /// of a half-open connection: Linux's tcp_syncookies, default 1.
    public var synCookies: SYNCookieMode = .onOverflow
    /// RFC 1122 4.2.3.6 keepalive; off unless set.
    public var keepalive: Keepalive?
    /// RFC 5482's user timeout (Linux's TCP_USER_TIMEOUT): how long sent data
    /// may stay unacknowledged, counted from the first send of the oldest,
    /// before the connection gives up, whatever `maxRetransmissions` allows;
    /// how long the peer's window may stay shut after the first probe; with
    /// keepalive on, how long the peer may stay silent after the first
    /// probe, instead of `Keepalive.probes`. nil: no such bound.
    public var userTimeout: Duration?
    /// A cap on the MSS the connection announces and the one it sends with
    /// (TCP_MAXSEG, Linux's `user_mss`); nil: the path's alone.
    public var maximumSegmentSize: Int?
    /// The hop limit and DS field of the connection's packets (IP_TTL, IP_TOS).
    public var ipHeader = IPHeaderSettings.standard

    /// The MSS a SYN or SYN-ACK announces when one IP packet carries
    /// `segmentLimit` bytes of TCP: that less TCP's header (RFC 9293 3.7.1),
    /// at most `maximumSegmentSize` (Linux's tcp_advertise_mss and user_mss).
    func announcedMSS(segmentLimit: Int) -> Int {
        min(segmentLimit - TCPSegment.minimumHeaderLength, maximumSegmentSize ?? .max)
    }
    /// How long an orphaned connection may wait in FIN-WAIT-2 (Linux tcp_fin_timeout).
    public var finWait2Timeout: Duration = .seconds(60)
    /// At most one ACK per this interval answers segments the connection does
    /// not accept that occupy no sequence space or carry a SYN (out of window,
    /// PAWS, an ACK of unsent data, a challenge ACK of RFC 5961), as Linux's
    /// `tcp_invalid_ratelimit` (500 ms); RFC 5961 10 allows it. Without it an
    /// ACK flood with random sequence numbers drew one ACK per segment.
    /// Segments with data or a FIN are not held to it (`TCPAnswerLimits`).
    /// Zero turns the per-connection limit off (the stack-wide ones remain).
    public var unacceptableAckInterval: Duration = .milliseconds(500)

    public struct Keepalive: Sendable, Equatable {
        public var idle: Duration
        public var interval: Duration
        public var probes: Int
        /// RFC 1122's defaults: two hours idle, then probes.
        public init(idle: Duration = .seconds(7200), interval: Duration = .seconds(75), probes: Int = 9) {
            self.idle = idle
            self.interval = interval
            self.probes = probes
        }
    }

    public init() {}
}

/// Linux's `net.ipv4.tcp_syncookies`.
public enum SYNCookieMode: Int, Sendable, CaseIterable {
    /// 0: never; a SYN finding the SYN queue full is dropped.
    case never = 0
    /// 1: once the SYN queue is full.
    case onOverflow = 1
    /// 2: for every SYN; the listener keeps no half-open connections.
    case always = 2
}
