import NetStackWire

/// A snapshot of a connection's state, the fields of Linux's `TCP_INFO`
/// that measuring tools report (iperf3's Cwnd, RTT, window and path MTU).
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
    /// RFC 6298's RTO now.
    public var retransmissionTimeout: Duration
    /// The smallest RTT sampled; nil before the first.
    public var minimumRTT: Duration?
    /// The MSS our SYN announced, and the path's MTU as the connection knows it.
    public var advertisedMSS: Int
    public var pathMTU: Int
    /// The options in use (RFC 7323, RFC 2018), with both window scales.
    public var timestamps: Bool
    public var selectiveAcknowledgments: Bool
    /// RFC 7323's shifts, when window scaling is in use (0 otherwise, and
    /// possibly in use).
    public var windowScaling: Bool
    public var sendWindowScale: UInt8
    public var receiveWindowScale: UInt8
    /// Sequence space sent and not yet acknowledged (SND.MAX - SND.UNA):
    /// with what waits unsent, what SIOCOUTQNSD and `tcpi_notsent_bytes` tell apart.
    public var bytesInFlight: Int = 0
    /// Data bytes sent (resends included), acknowledged, and received in order.
    public var bytesSent: UInt64
    public var bytesAcknowledged: UInt64
    public var bytesReceived: UInt64
}

extension TCPConnection {
    /// The sender's state now: cheap, no allocation.
    public var info: TCPInfo {
        TCPInfo(congestionWindow: sender.congestion.congestionWindow,
                slowStartThreshold: sender.congestion.slowStartThreshold,
                sendWindow: sender.sndWnd, sendMSS: sender.sendMSS, smoothedRTT: sender.rtt.srtt,
                rttVariation: sender.rtt.rttvar, segmentsRetransmitted: segmentsRetransmitted,
                congestionAlgorithm: sender.congestion.algorithm, retransmissionTimeout: sender.rtt.rto,
                minimumRTT: sender.sampledMinRTTNs.map { .nanoseconds($0) }, advertisedMSS: localMSS,
                pathMTU: pathMSS + TCPSegment.minimumHeaderLength + tuple.remoteAddress.ipHeaderLength,
                timestamps: timestampsEnabled,
                selectiveAcknowledgments: sackEnabled,
                windowScaling: windowScalingEnabled,
                sendWindowScale: sndScale, receiveWindowScale: rcvScale, bytesInFlight: sender.flightSize,
                bytesSent: bytesSent, bytesAcknowledged: UInt64(max(sender.sendBufferSeq - (sender.iss + 1), 0)),
                bytesReceived: bytesReceived)
    }
}
