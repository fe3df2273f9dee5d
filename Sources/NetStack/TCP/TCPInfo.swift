/// A snapshot of a connection's sender state, the few fields of Linux's
/// `TCP_INFO` that measuring tools report (iperf3's Cwnd and RTT columns).
public struct TCPInfo: Sendable, Equatable {
    /// The congestion window, in bytes (RFC 5681 2).
    public var congestionWindow: Int
    public var slowStartThreshold: Int
    /// The peer's current receive window, scaled (RFC 9293 3.3.1 SND.WND).
    public var sendWindow: Int
    /// Payload bytes per segment in use.
    public var sendMSS: Int
    /// RFC 6298 SRTT and RTTVAR; nil before the first sample.
    public var smoothedRTT: Duration?
    public var rttVariation: Duration?
    /// Segments sent again (timeouts and fast retransmits).
    public var segmentsRetransmitted: UInt64
    public var congestionAlgorithm: CongestionAlgorithm
}

extension TCPConnection {
    /// The sender's state now: cheap, no allocation.
    public var info: TCPInfo {
        TCPInfo(congestionWindow: sender.congestion.congestionWindow,
                slowStartThreshold: sender.congestion.slowStartThreshold,
                sendWindow: sender.sndWnd, sendMSS: sender.sendMSS, smoothedRTT: sender.rtt.srtt,
                rttVariation: sender.rtt.rttvar, segmentsRetransmitted: segmentsRetransmitted,
                congestionAlgorithm: sender.congestion.algorithm)
    }
}
