import NetStackWire

/// The congestion controller's seam (RFC 5681 3, RFC 9438 4): it owns cwnd and
/// ssthresh and nothing else. Loss *detection* and *recovery* (duplicate ACKs,
/// the SACK scoreboard, RACK-TLP, what to retransmit and when) live beside
/// the sender (`TCPSender`); the controller only hears the events below and
/// answers "how much may be in flight". gVisor's netstack draws the same line.
///
/// Implementations are value types behind `CongestionController`, an enum, so
/// the sender calls them without an existential on the hot path.
protocol CongestionControl {
    /// Bytes that may be outstanding outside loss recovery; during recovery the
    /// loss recovery compares its pipe estimate with it (RFC 6675 5).
    var congestionWindow: Int { get }
    var slowStartThreshold: Int { get }
    /// An ACK acknowledged new data cumulatively outside loss recovery (what it
    /// SACKed besides counts in `deliveredBytes`).
    mutating func onAck(_ sample: AckSample)
    /// Loss was detected and recovery begins (RFC 5681 3.2 step 2, RFC 6675 5
    /// step 4.2, RFC 9438 4.6): reduce ssthresh and cwnd once per episode.
    mutating func onCongestionEvent(flightSize: Int, mss: Int, now: Instant)
    /// Loss recovery ended: everything outstanding at its start was acknowledged.
    mutating func onRecoveryEnd(flightSize: Int, mss: Int, now: Instant)
    /// The retransmission timer fired (RFC 5681 3.1 equation 4, RFC 9438 4.8).
    mutating func onRetransmitTimeout(flightSize: Int, mss: Int, now: Instant)
    /// The last congestion event proved spurious (every resend D-SACKed,
    /// RFC 3708): go back to the state saved before it, if cwnd is still
    /// below what it was then (RFC 9438 4.9). After a timeout there is
    /// nothing saved, and this does nothing.
    mutating func onSpuriousCongestionEvent()
}

/// What one acknowledgment tells the congestion controller.
struct AckSample {
    /// Bytes newly delivered by this ACK: cumulatively acknowledged plus newly SACKed.
    var deliveredBytes: Int
    /// The sender's maximum segment size.
    var mss: Int
    var now: Instant
    /// The round-trip sample this ACK gave, if any (Karn's rule applied).
    var rtt: Duration?
    /// The smallest RTT seen on the connection, if any.
    var minRTT: Duration?
    /// SRTT (RFC 6298), if measured: CUBIC looks one smoothed RTT ahead
    /// (RFC 9438 4.2). Defaulted, so a caller that does not know it may omit it.
    var smoothedRTT: Duration? = nil
    /// The new SND.UNA and the highest sequence sent, for round counting (RFC 9406 4.2).
    var ack: SequenceNumber
    var sndMax: SequenceNumber
    /// Bytes outstanding before this ACK.
    var priorFlightSize: Int
    /// The window limited the sender (RFC 7661): growing cwnd while the
    /// application is the limit would let cwnd outrun what was ever used.
    var windowLimited: Bool
}

/// The algorithms a connection may use, by the names `--cc` takes.
public enum CongestionAlgorithm: String, Sendable, CaseIterable, CustomStringConvertible {
    /// RFC 5681 slow start and congestion avoidance, with RFC 6582 NewReno recovery.
    case newReno = "newreno"
    /// RFC 9438 CUBIC, with HyStart++ (RFC 9406) in the initial slow start; Linux's default.
    case cubic

    public var description: String { rawValue }
}

/// The controller a connection runs: one case per algorithm, so calls are
/// switched, not dispatched through an existential.
enum CongestionController: CongestionControl {
    case newReno(NewReno)
    case cubic(Cubic)

    init(_ algorithm: CongestionAlgorithm, mss: Int) {
        switch algorithm {
        case .newReno: self = .newReno(NewReno(mss: mss))
        case .cubic: self = .cubic(Cubic(mss: mss))
        }
    }

    var algorithm: CongestionAlgorithm {
        switch self {
        case .newReno: .newReno
        case .cubic: .cubic
        }
    }

    var congestionWindow: Int {
        switch self {
        case .newReno(let c): c.congestionWindow
        case .cubic(let c): c.congestionWindow
        }
    }

    var slowStartThreshold: Int {
        switch self {
        case .newReno(let c): c.slowStartThreshold
        case .cubic(let c): c.slowStartThreshold
        }
    }

    mutating func onAck(_ sample: AckSample) {
        switch self {
        case .newReno(var c): c.onAck(sample); self = .newReno(c)
        case .cubic(var c): c.onAck(sample); self = .cubic(c)
        }
    }

    mutating func onCongestionEvent(flightSize: Int, mss: Int, now: Instant) {
        switch self {
        case .newReno(var c): c.onCongestionEvent(flightSize: flightSize, mss: mss, now: now); self = .newReno(c)
        case .cubic(var c): c.onCongestionEvent(flightSize: flightSize, mss: mss, now: now); self = .cubic(c)
        }
    }

    mutating func onRecoveryEnd(flightSize: Int, mss: Int, now: Instant) {
        switch self {
        case .newReno(var c): c.onRecoveryEnd(flightSize: flightSize, mss: mss, now: now); self = .newReno(c)
        case .cubic(var c): c.onRecoveryEnd(flightSize: flightSize, mss: mss, now: now); self = .cubic(c)
        }
    }

    mutating func onRetransmitTimeout(flightSize: Int, mss: Int, now: Instant) {
        switch self {
        case .newReno(var c): c.onRetransmitTimeout(flightSize: flightSize, mss: mss, now: now); self = .newReno(c)
        case .cubic(var c): c.onRetransmitTimeout(flightSize: flightSize, mss: mss, now: now); self = .cubic(c)
        }
    }

    mutating func onSpuriousCongestionEvent() {
        switch self {
        case .newReno(var c): c.onSpuriousCongestionEvent(); self = .newReno(c)
        case .cubic(var c): c.onSpuriousCongestionEvent(); self = .cubic(c)
        }
    }
}

extension TCPConnection {
    /// The congestion controller this connection runs, as `--cc` names it
    /// (what iperf3 reports as `congestion_used`).
    public var congestionAlgorithm: CongestionAlgorithm { sender.congestion.algorithm }
}
