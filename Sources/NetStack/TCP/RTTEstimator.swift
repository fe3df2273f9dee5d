/// The retransmission timeout, computed as RFC 6298 prescribes.
///
/// - Before the first RTT measurement, RTO is `initialRTO` (2.1: 1 second).
/// - The first measurement R sets SRTT = R, RTTVAR = R/2 (2.2).
/// - Each later measurement R' sets, in this order (2.3),
///   RTTVAR = (1 - beta) * RTTVAR + beta * |SRTT - R'| and
///   SRTT = (1 - alpha) * SRTT + alpha * R', with alpha = 1/8 and beta = 1/4.
/// - After either, RTO = SRTT + max(G, K * RTTVAR) with K = 4 and G the clock
///   granularity, then clamped to `[minimumRTO, maximumRTO]` (2.4, 2.5).
/// - When the retransmission timer expires, `backOff()` doubles RTO, up to
///   `maximumRTO` (5.5). The backed-off RTO stays in force until a new
///   measurement is taken, which recomputes RTO from SRTT and RTTVAR (5.7, and
///   Karn's algorithm: "the backed-off RTO ... is kept for subsequent packets
///   until a valid sample is obtained"), or until `resetBackoff()`.
///
/// Deviation: RFC 6298 2.4 says RTO SHOULD be rounded up to 1 second when smaller.
/// The default `minimumRTO` here is 200 ms, as in Linux (TCP_RTO_MIN): 1 second
/// was chosen in 2000 for slow clocks and long delayed-ACK timers, and on today's
/// networks it makes every timeout-based recovery needlessly slow. RFC 6298's
/// maximum is honoured: "a maximum value MAY be placed on RTO provided it is at
/// least 60 seconds" (2.5).
///
/// Karn's algorithm (RFC 6298 section 3) is the caller's job: never `sample` the
/// RTT of a segment that was retransmitted, because its ACK cannot say which
/// transmission it acknowledges (a TCP timestamp echo, RFC 7323, removes the
/// ambiguity and may be sampled).
///
/// Also the caller's: RFC 6298 5.7 (if the SYN's timer expired and RTO is below
/// 3 seconds, RTO must be re-initialised to 3 seconds when data transmission
/// begins), for which `init` with `initialRTO: .seconds(3)` serves.
///
/// Times are kept as integer nanoseconds (`Int64`): `Duration` arithmetic goes
/// through 128-bit integers, and this runs on every ACK that carries a sample.
struct RTTEstimator {
    /// RFC 6298's K.
    private static let k: Int64 = 4

    let initialRTO: Duration
    let minimumRTO: Duration
    let maximumRTO: Duration
    let clockGranularity: Duration

    private let minimumNs: Int64
    private let maximumNs: Int64
    private let granularityNs: Int64

    /// Smoothed RTT in ns; meaningful only when `hasSample`.
    private var srttNs: Int64 = 0
    /// RTT variation in ns; meaningful only when `hasSample`.
    private var rttvarNs: Int64 = 0
    /// True once a measurement has been taken.
    private(set) var hasSample = false
    /// RTO from SRTT and RTTVAR (or the initial RTO), clamped, before backoff.
    private var baseRTONs: Int64
    /// The current RTO, including backoff.
    private(set) var rtoNanoseconds: Int64
    /// How many times `backOff()` has doubled RTO since the last sample or reset.
    private(set) var backoffCount = 0

    init(initialRTO: Duration = .seconds(1),
         minimumRTO: Duration = .milliseconds(200),
         maximumRTO: Duration = .seconds(60),
         clockGranularity: Duration = .milliseconds(1)) {
        precondition(minimumRTO > .zero && minimumRTO <= maximumRTO, "RTTEstimator: need 0 < minimumRTO <= maximumRTO")
        precondition(clockGranularity >= .zero, "RTTEstimator: negative clock granularity")
        self.initialRTO = initialRTO
        self.minimumRTO = minimumRTO
        self.maximumRTO = maximumRTO
        self.clockGranularity = clockGranularity
        minimumNs = minimumRTO.nanoseconds
        maximumNs = maximumRTO.nanoseconds
        granularityNs = clockGranularity.nanoseconds
        baseRTONs = min(max(initialRTO.nanoseconds, minimumNs), maximumNs)
        rtoNanoseconds = baseRTONs
    }

    /// The current retransmission timeout, including any backoff.
    var rto: Duration { .nanoseconds(rtoNanoseconds) }

    /// The smoothed round-trip time, nil before the first sample.
    var srtt: Duration? { hasSample ? .nanoseconds(srttNs) : nil }

    /// The round-trip time variation, nil before the first sample.
    var rttvar: Duration? { hasSample ? .nanoseconds(rttvarNs) : nil }

    /// Feeds one round-trip measurement (RFC 6298 2.2, 2.3) and recomputes RTO,
    /// which also ends any backoff. Must not come from a retransmitted segment
    /// (Karn). Negative samples (a clock stepped backwards) count as 0.
    mutating func sample(_ rtt: Duration) {
        sample(nanoseconds: rtt.nanoseconds)
    }

    /// `sample(_:)` for a measurement already in nanoseconds.
    mutating func sample(nanoseconds rtt: Int64) {
        let r = max(rtt, 0)
        if hasSample {
            // RTTVAR first: it uses the SRTT from before this sample (2.3).
            let delta = srttNs > r ? srttNs - r : r - srttNs
            rttvarNs = (3 * rttvarNs + delta) / 4
            srttNs = (7 * srttNs + r) / 8
        } else {
            srttNs = r
            rttvarNs = r / 2
            hasSample = true
        }
        let variance = Self.k * rttvarNs
        baseRTONs = clamp(srttNs + max(granularityNs, variance))
        rtoNanoseconds = baseRTONs
        backoffCount = 0
    }

    /// The retransmission timer expired: doubles RTO, up to the maximum (5.5).
    mutating func backOff() {
        rtoNanoseconds = rtoNanoseconds > maximumNs / 2 ? maximumNs : rtoNanoseconds * 2
        backoffCount += 1
    }

    /// Drops the backoff: RTO returns to the value computed from SRTT and RTTVAR
    /// (or to the initial RTO if nothing has been measured).
    mutating func resetBackoff() {
        rtoNanoseconds = baseRTONs
        backoffCount = 0
    }

    private func clamp(_ ns: Int64) -> Int64 { min(max(ns, minimumNs), maximumNs) }
}
