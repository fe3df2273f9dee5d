/// The congestion controller's view of a connection's sending (RFC 5681).
/// Loss *detection* (dup ACKs, timeouts, later SACK and RACK) lives in the
/// connection; this seam only answers "how much may be in flight", so other
/// algorithms plug in beside NewReno.
protocol CongestionControl {
    /// Bytes that may be outstanding.
    var congestionWindow: Int { get }
    var slowStartThreshold: Int { get }
    /// New data was cumulatively acknowledged.
    mutating func onAck(ackedBytes: Int, mss: Int)
    /// Fast retransmit on the third duplicate ACK (RFC 5681 3.2 step 2).
    mutating func onFastRetransmit(flightSize: Int, mss: Int)
    /// A partial ACK during loss recovery (RFC 6582 3.2 step 4).
    mutating func onPartialAck(ackedBytes: Int, mss: Int)
    /// Loss recovery ended with a full ACK (RFC 6582 3.2 step 3).
    mutating func onRecoveryEnd(flightSize: Int, mss: Int)
    /// The retransmission timer fired (RFC 5681 3.1 equation 4).
    mutating func onRetransmitTimeout(flightSize: Int, mss: Int)
}

/// Slow start and congestion avoidance with NewReno's fast recovery
/// (RFC 5681, RFC 6582).
struct NewReno: CongestionControl {
    private(set) var congestionWindow: Int
    private(set) var slowStartThreshold: Int
    /// Bytes acknowledged since cwnd last grew in congestion avoidance.
    private var bytesAcked = 0

    /// RFC 5681 3.1 equation 1 (IW); RFC 6928's 10 segments is Linux's default.
    init(mss: Int, initialWindowSegments: Int = 10) {
        congestionWindow = initialWindowSegments * mss
        slowStartThreshold = Int(Int32.max)
    }

    mutating func onAck(ackedBytes: Int, mss: Int) {
        if congestionWindow < slowStartThreshold {
            // Slow start, with RFC 3465's limit of L = 2 SMSS per ACK.
            congestionWindow += min(ackedBytes, 2 * mss)
        } else {
            // Congestion avoidance: one SMSS per window acknowledged (RFC 5681 3.1, RFC 3465 2.1).
            bytesAcked += ackedBytes
            if bytesAcked >= congestionWindow {
                bytesAcked -= congestionWindow
                congestionWindow += mss
            }
        }
    }

    mutating func onFastRetransmit(flightSize: Int, mss: Int) {
        // RFC 5681 3.2 step 2 and 3: halve, then inflate by the three segments that left.
        slowStartThreshold = max(flightSize / 2, 2 * mss)
        congestionWindow = slowStartThreshold + 3 * mss
    }

    mutating func onPartialAck(ackedBytes: Int, mss: Int) {
        // RFC 6582 3.2 step 4: deflate by the new data acknowledged, adding back
        // one SMSS if at least that much was, so about ssthresh stays in flight.
        congestionWindow = max(congestionWindow - ackedBytes + (ackedBytes >= mss ? mss : 0), mss)
    }

    mutating func onRecoveryEnd(flightSize: Int, mss: Int) {
        // RFC 6582 3.2 step 3 (1): deflate to min(ssthresh, max(FlightSize, SMSS) + SMSS).
        congestionWindow = min(slowStartThreshold, max(flightSize, mss) + mss)
        bytesAcked = 0
    }

    mutating func onRetransmitTimeout(flightSize: Int, mss: Int) {
        slowStartThreshold = max(flightSize / 2, 2 * mss)
        congestionWindow = mss
        bytesAcked = 0
    }

    /// RFC 5681 3.2 step 4: each further duplicate ACK means a segment left the network.
    mutating func inflate(mss: Int) { congestionWindow += mss }
}
