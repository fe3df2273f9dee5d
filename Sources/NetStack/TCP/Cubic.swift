#if canImport(Glibc)
import Glibc
#endif

/// CUBIC (RFC 9438): after a loss the window grows along a cubic of the time
/// since congestion avoidance began, flat near the window where the loss
/// happened (W_max) and steep away from it, so it regains a long fat pipe in
/// seconds rather than Reno's one segment per round trip, while never doing
/// worse than Reno would (the Reno-friendly region).
///
/// The RFC counts windows in segments; here every window is in bytes, as the
/// connection's are, so the constant C is applied per segment:
/// W_cubic(t) = C * SMSS * (t - K)^3 + W_max, and K is computed from segments.
/// Time comes only from the ACKs' `now`: the curve runs on the connection's
/// clock (a virtual one in tests).
///
/// Slow start is RFC 5681's with RFC 3465's L = 2 SMSS, optionally under
/// HyStart++ (RFC 9406), which may leave the initial slow start before loss.
struct Cubic: CongestionControl {
    /// C (RFC 9438 4.2 and 5.1), in segments per second cubed.
    static let c = 0.4
    /// β_cubic (RFC 9438 4.6) as a fraction, so window reductions are exact in bytes.
    static let betaNumerator = 7
    static let betaDenominator = 10
    static let beta = Double(betaNumerator) / Double(betaDenominator)
    /// α_cubic = 3 (1 - β) / (1 + β) (RFC 9438 4.3): the additive increase that
    /// gives the same average window as Reno's AIMD(1, 0.5).
    static let alpha = 3 * (1 - beta) / (1 + beta)

    private(set) var congestionWindow: Int
    private(set) var slowStartThreshold: Int

    /// The window just before the last reduction (W_max, RFC 9438 4.1), in
    /// bytes; nil before the first congestion event and after a timeout, when
    /// the next congestion-avoidance stage starts the curve at its own cwnd
    /// with K = 0 (RFC 9438 4.8, 4.10).
    private(set) var wMax: Double?
    /// cwnd when ssthresh was last set (cwnd_prior, RFC 9438 4.6): the Reno
    /// estimate switches to α = 1 once it gets there (4.3).
    private(set) var cwndPrior: Double?
    /// When the current congestion-avoidance stage began (t_epoch), shifted
    /// forward over application-limited stretches; nil outside one.
    private(set) var epochStart: Instant?
    /// cwnd when it began (cwnd_epoch), and the time the curve takes to climb
    /// back to W_max from it (K, RFC 9438 4.2), in seconds.
    private(set) var cwndEpoch: Double = 0
    private(set) var k: Double = 0
    /// The window Reno would have reached in this stage (W_est, RFC 9438 4.3), in bytes.
    private(set) var wEst: Double = 0
    /// Since when the application, not cwnd, has limited the sender in
    /// congestion avoidance; that time does not count in t (RFC 9438 4.2, 5.8).
    private var appLimitedSince: Instant?
    /// Growth below one byte, kept so small increments add up.
    private var fraction: Double = 0
    /// ssthresh was cut for a loss episode that no acknowledgment of new data
    /// has closed yet. A timeout or loss detected again within it keeps
    /// ssthresh rather than cutting it again from a cwnd already reduced or
    /// collapsed (RFC 5681 3.1 for repeated timeouts; Linux does the same for
    /// a timeout during recovery).
    private var episodeOpen = false
    private(set) var hyStart: HyStartPlusPlus?
    /// The state the last congestion event changed, as it was before it
    /// (RFC 9438 4.9's prior_cwnd, prior_ssthresh, prior_W_max, prior_K,
    /// prior_epoch_start and prior_W_est, with what else the curve needs),
    /// kept in case the event proves spurious.
    private var beforeLastEvent: Snapshot?

    private struct Snapshot {
        var congestionWindow: Int
        var slowStartThreshold: Int
        var wMax: Double?
        var cwndPrior: Double?
        var epochStart: Instant?
        var cwndEpoch: Double
        var k: Double
        var wEst: Double
    }

    /// RFC 6928's 10-segment initial window, as NewReno; `hyStart` runs the
    /// initial slow start under HyStart++.
    init(mss: Int, initialWindowSegments: Int = 10, hyStart: Bool = true) {
        congestionWindow = initialWindowSegments * mss
        slowStartThreshold = Int(Int32.max)
        self.hyStart = hyStart ? HyStartPlusPlus() : nil
    }

    // MARK: The curve (RFC 9438 4.1, 4.2)

    /// W_cubic(t) in bytes, `t` seconds into the stage.
    func wCubic(_ t: Double, mss: Int) -> Double {
        let d = t - k
        return Self.c * Double(mss) * d * d * d + (wMax ?? cwndEpoch)
    }

    /// K = cubic_root((W_max - cwnd_epoch) / C), in seconds, with windows in
    /// segments; 0 when the stage starts at or above W_max (RFC 9438 4.2).
    static func k(wMax: Double, cwndEpoch: Double, mss: Int) -> Double {
        wMax > cwndEpoch ? cbrt((wMax - cwndEpoch) / Double(mss) / c) : 0
    }

    // MARK: Events

    mutating func onAck(_ sample: AckSample) {
        if congestionWindow < slowStartThreshold {
            slowStart(sample)
        } else {
            congestionAvoidance(sample)
        }
        episodeOpen = false
    }

    /// RFC 5681 3.1 with L = 2 SMSS (RFC 3465), through HyStart++ while it
    /// runs; when it ends slow start, the next ACK starts the curve with
    /// W_max undefined (RFC 9438 4.10).
    private mutating func slowStart(_ sample: AckSample) {
        HyStartPlusPlus.slowStart(sample, congestionWindow: &congestionWindow,
                                  slowStartThreshold: &slowStartThreshold, hyStart: &hyStart)
    }

    /// RFC 9438 4.2-4.5: move cwnd toward W_cubic one RTT ahead, but never
    /// below what Reno would have.
    private mutating func congestionAvoidance(_ sample: AckSample) {
        let mss = sample.mss
        guard sample.windowLimited else {
            // RFC 9438 4.2: t must not include periods in which cwnd was not
            // updated because the application was the limit.
            if epochStart != nil && appLimitedSince == nil { appLimitedSince = sample.now }
            return
        }
        if let since = appLimitedSince, let start = epochStart {
            epochStart = start + (sample.now - since)
        }
        appLimitedSince = nil
        let start: Instant
        if let epochStart {
            start = epochStart
        } else {
            start = sample.now
            beginEpoch(at: sample.now, mss: mss)
        }
        let cwnd = Double(congestionWindow) + fraction

        // RFC 9438 4.3, Figure 4: W_est += α * segments_acked / cwnd, with α = 1
        // once W_est has regained the window of the last reduction.
        let alpha = wEst >= (cwndPrior ?? 0) ? 1 : Self.alpha
        wEst += alpha * Double(mss) * Double(sample.deliveredBytes) / cwnd

        let t = Double((sample.now - start).nanoseconds) / 1e9
        if wCubic(t, mss: mss) < wEst {
            // Reno-friendly region (4.3): cwnd = W_est.
            grow(by: wEst - cwnd)
        } else {
            // Concave (4.4) or convex (4.5) region: target is W_cubic one RTT
            // ahead, bounded to [cwnd, 1.5 cwnd] (4.2), and each SMSS
            // acknowledged adds (target - cwnd) / cwnd segments.
            let target = min(max(wCubic(t + Self.seconds(Self.rtt(sample)), mss: mss), cwnd), 1.5 * cwnd)
            grow(by: (target - cwnd) * Double(sample.deliveredBytes) / cwnd)
        }
    }

    /// The RTT the target looks ahead by: RFC 9438 4.2 names the smoothed RTT;
    /// without one, the latest sample, then the minimum; with none, none.
    static func rtt(_ sample: AckSample) -> Duration {
        sample.smoothedRTT ?? sample.rtt ?? sample.minRTT ?? .zero
    }

    private static func seconds(_ d: Duration) -> Double { Double(d.nanoseconds) / 1e9 }

    /// A congestion-avoidance stage begins (RFC 9438 4.2, 4.3, 4.8, 4.10).
    private mutating func beginEpoch(at now: Instant, mss: Int) {
        epochStart = now
        cwndEpoch = Double(congestionWindow)
        if wMax == nil {
            // First stage after HyStart++ or a timeout: K = 0 and W_max = cwnd_epoch.
            wMax = cwndEpoch
            if cwndPrior == nil { cwndPrior = cwndEpoch }
        }
        k = Self.k(wMax: wMax ?? cwndEpoch, cwndEpoch: cwndEpoch, mss: mss)
        wEst = cwndEpoch
        fraction = 0
    }

    private mutating func grow(by bytes: Double) {
        guard bytes > 0 else { return }
        let total = bytes + fraction
        let whole = total.rounded(.down)
        congestionWindow += Int(whole)
        fraction = total - whole
    }

    /// RFC 9438 4.6 and 4.7. ssthresh is β * cwnd, the RFC's allowed
    /// alternative to β * FlightSize, which needs cwnd kept from outgrowing
    /// what is sent: `onAck` does not grow it while the application is the
    /// limit (`windowLimited`).
    mutating func onCongestionEvent(flightSize: Int, mss: Int, now: Instant) {
        if episodeOpen {
            // Loss found again before anything new was acknowledged (after a
            // timeout): ssthresh stands, and cwnd does not jump up to it.
            congestionWindow = min(congestionWindow, slowStartThreshold)
            return
        }
        beforeLastEvent = Snapshot(congestionWindow: congestionWindow, slowStartThreshold: slowStartThreshold,
                                   wMax: wMax, cwndPrior: cwndPrior, epochStart: epochStart,
                                   cwndEpoch: cwndEpoch, k: k, wEst: wEst)
        reduce(mss: mss)
        congestionWindow = slowStartThreshold
    }

    /// RFC 9438 4.9: restore the state from before the event if cwnd has
    /// not since grown past it ("in rare cases", when the news comes late,
    /// the current values stand). Time spent in the spurious recovery stays
    /// in t, as the RFC restores epoch_start as it was.
    mutating func onSpuriousCongestionEvent() {
        guard let prior = beforeLastEvent else { return }
        beforeLastEvent = nil
        guard congestionWindow < prior.congestionWindow else { return }
        congestionWindow = prior.congestionWindow
        slowStartThreshold = prior.slowStartThreshold
        wMax = prior.wMax
        cwndPrior = prior.cwndPrior
        epochStart = prior.epochStart
        cwndEpoch = prior.cwndEpoch
        k = prior.k
        wEst = prior.wEst
        appLimitedSince = nil
        fraction = 0
        episodeOpen = false
    }

    mutating func onRecoveryEnd(flightSize: Int, mss: Int, now: Instant) {
        // cwnd stays at ssthresh (RFC 6675 exits there); the congestion-avoidance
        // stage and its curve begin with the next ACK.
        epochStart = nil
        appLimitedSince = nil
        episodeOpen = false
    }

    /// RFC 9438 4.8: cwnd collapses as Reno's (RFC 5681 3.1: one SMSS) but
    /// ssthresh is set with β; the next stage starts its curve afresh.
    mutating func onRetransmitTimeout(flightSize: Int, mss: Int, now: Instant) {
        beforeLastEvent = nil
        if !episodeOpen { reduce(mss: mss) }
        wMax = nil
        epochStart = nil
        appLimitedSince = nil
        fraction = 0
        congestionWindow = mss
    }

    private mutating func reduce(mss: Int) {
        let cwnd = Double(congestionWindow)
        // RFC 9438 4.7 fast convergence: a window that stopped short of the last
        // W_max means new flows want the bandwidth; release some sooner.
        if let w = wMax, cwnd < w {
            wMax = cwnd * (1 + Self.beta) / 2
        } else {
            wMax = cwnd
        }
        cwndPrior = cwnd
        slowStartThreshold = max(congestionWindow * Self.betaNumerator / Self.betaDenominator, 2 * mss)
        episodeOpen = true
        epochStart = nil
        appLimitedSince = nil
        fraction = 0
        // Loss ends slow start; HyStart++ is for the initial one only (RFC 9406 4.2).
        hyStart?.finish()
    }
}
