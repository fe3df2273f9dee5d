/// Slow start and congestion avoidance (RFC 5681 3.1), halving on loss. The
/// window inflation of NewReno's fast recovery (RFC 6582 3.2) is the loss
/// recovery's business, not this type's: it counts the duplicate ACKs that
/// let it send during recovery, against the cwnd set here.
struct NewReno: CongestionControl {
    private(set) var congestionWindow: Int
    private(set) var slowStartThreshold: Int
    /// Bytes acknowledged since cwnd last grew in congestion avoidance.
    private var bytesAcked = 0
    /// HyStart++ (RFC 9406) in the initial slow start, when asked for.
    private(set) var hyStart: HyStartPlusPlus?
    /// cwnd and ssthresh before the last congestion event, kept in case it
    /// proves spurious (RFC 4015's response: restore them).
    private var beforeLastEvent: (congestionWindow: Int, slowStartThreshold: Int)?

    /// RFC 5681 3.1 equation 1 (IW); RFC 6928's 10 segments is Linux's default.
    /// `hyStart` adds HyStart++ to the initial slow start (off: plain RFC 5681).
    init(mss: Int, initialWindowSegments: Int = 10, hyStart: Bool = false) {
        congestionWindow = initialWindowSegments * mss
        slowStartThreshold = Int(Int32.max)
        self.hyStart = hyStart ? HyStartPlusPlus() : nil
    }

    mutating func onAck(_ sample: AckSample) {
        if congestionWindow < slowStartThreshold {
            HyStartPlusPlus.slowStart(sample, congestionWindow: &congestionWindow,
                                      slowStartThreshold: &slowStartThreshold, hyStart: &hyStart)
        } else {
            guard sample.windowLimited else { return }
            // Congestion avoidance: one SMSS per window acknowledged (RFC 5681 3.1, RFC 3465 2.1).
            bytesAcked += sample.deliveredBytes
            if bytesAcked >= congestionWindow {
                bytesAcked -= congestionWindow
                congestionWindow += sample.mss
            }
        }
    }

    mutating func onCongestionEvent(flightSize: Int, mss: Int, now: Instant) {
        // RFC 5681 3.2 step 2 (equation 4), and RFC 6675 5 step 4.2: cwnd = ssthresh.
        beforeLastEvent = (congestionWindow, slowStartThreshold)
        slowStartThreshold = max(flightSize / 2, 2 * mss)
        congestionWindow = slowStartThreshold
        bytesAcked = 0
        hyStart?.finish()
    }

    mutating func onRecoveryEnd(flightSize: Int, mss: Int, now: Instant) {
        // RFC 6582 3.2 step 3 (1): min(ssthresh, max(FlightSize, SMSS) + SMSS),
        // so a recovery that left little in flight does not end in a burst.
        congestionWindow = min(slowStartThreshold, max(flightSize, mss) + mss)
        bytesAcked = 0
    }

    mutating func onRetransmitTimeout(flightSize: Int, mss: Int, now: Instant) {
        beforeLastEvent = nil
        slowStartThreshold = max(flightSize / 2, 2 * mss)
        congestionWindow = mss
        bytesAcked = 0
        hyStart?.finish()
    }

    mutating func onSpuriousCongestionEvent() {
        guard let prior = beforeLastEvent else { return }
        beforeLastEvent = nil
        guard congestionWindow < prior.congestionWindow else { return }
        congestionWindow = prior.congestionWindow
        slowStartThreshold = prior.slowStartThreshold
        bytesAcked = 0
    }
}
