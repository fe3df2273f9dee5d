import NetStackWire

/// HyStart++ (RFC 9406): leaves the initial slow start when the round-trip
/// time starts to climb, before the queue it is building overflows, rather
/// than waiting for the loss that standard slow start ends with.
///
/// Rounds are counted by sequence number (RFC 9406 4.2): a round ends when the
/// highest sequence sent at its start (`windowEnd`) is acknowledged. Each round
/// keeps the smallest RTT of its ACKs; once a round has `nRTTSample` samples
/// and its minimum has risen by a clamped eighth of the previous round's, slow
/// start gives way to Conservative Slow Start (CSS), which grows at a quarter
/// of the rate for `cssRounds` rounds and then hands over to congestion
/// avoidance, unless the RTT falls back below where CSS began (the exit was
/// spurious) and slow start resumes.
///
/// RFC 9406 4.2 recommends it for the initial slow start only: the owner calls
/// `finish()` on loss or timeout, after which later slow starts are standard
/// (they have an ssthresh to stop at). It needs no clock: rounds are sequence
/// numbers and the RTT samples come with the ACKs. The per-ACK limit L is the
/// owner's (RFC 3465's 2 SMSS here, where RFC 9406 4.3 allows up to 8 unpaced).
struct HyStartPlusPlus {
    /// RFC 9406 4.3's constants.
    static let minRTTThreshold: Duration = .milliseconds(4)
    static let maxRTTThreshold: Duration = .milliseconds(16)
    static let minRTTDivisor = 8
    static let nRTTSample = 8
    static let cssGrowthDivisor = 4
    static let cssRounds = 5

    enum Phase: Equatable {
        /// Standard slow start (RFC 5681), watching the RTT.
        case slowStart
        /// Conservative Slow Start: `baseline` is the round minimum that
        /// triggered it (cssBaselineMinRtt); `rounds` counts the rounds that
        /// ended in it, the partial first one included (RFC 9406 4.2).
        case conservativeSlowStart(baseline: Duration, rounds: Int)
        /// Slow start is over: congestion avoidance, or a loss ended it.
        case finished
    }

    /// What one ACK means for the window.
    struct Step: Equatable {
        /// Bytes to add to cwnd.
        var growth: Int
        /// CSS ran its rounds: set ssthresh to cwnd and avoid congestion (RFC 9406 4.2).
        var enterCongestionAvoidance: Bool
    }

    private(set) var phase: Phase = .slowStart
    /// The sequence number whose acknowledgment ends the current round; nil
    /// until the first ACK, which opens the first round.
    private var windowEnd: SequenceNumber?
    /// nil stands for the RFC's "infinity": no sample yet.
    private(set) var lastRoundMinRTT: Duration?
    private(set) var currentRoundMinRTT: Duration?
    private(set) var rttSampleCount = 0
    /// Bytes CSS owes cwnd that its divisor left over, so growth is exact over a round.
    private var cssRemainder = 0

    init() {}

    var isActive: Bool { phase != .finished }

    /// Loss, a timeout, or the owner's own decision ended slow start: HyStart++
    /// does not run again on this connection (RFC 9406 4.2).
    mutating func finish() {
        phase = .finished
    }

    /// One ACK of new data during slow start. `growth` is what standard slow
    /// start would add (min(N, L * SMSS), RFC 9406 4.2); `rtt` is this ACK's
    /// sample if it gave one; `ack` and `sndMax` are the new SND.UNA and the
    /// highest sequence sent, which delimit rounds.
    mutating func onAck(growth: Int, rtt: Duration?, ack: SequenceNumber, sndMax: SequenceNumber) -> Step {
        guard phase != .finished else { return Step(growth: growth, enterCongestionAvoidance: false) }
        // The first ACK opens the first round: the initial window's flight.
        if windowEnd == nil { startRound(sndMax: sndMax) }

        var step = Step(growth: growth, enterCongestionAvoidance: false)
        if case .conservativeSlowStart = phase {
            // CSS: cwnd += min(N, L * SMSS) / CSS_GROWTH_DIVISOR.
            let owed = growth + cssRemainder
            step.growth = owed / Self.cssGrowthDivisor
            cssRemainder = owed % Self.cssGrowthDivisor
        }

        if let rtt {
            currentRoundMinRTT = min(currentRoundMinRTT ?? rtt, rtt)
            rttSampleCount += 1
        }
        if rttSampleCount >= Self.nRTTSample, let current = currentRoundMinRTT {
            switch phase {
            case .slowStart:
                if let last = lastRoundMinRTT, current >= last + Self.rttThreshold(lastRoundMinRTT: last) {
                    phase = .conservativeSlowStart(baseline: current, rounds: 0)
                    cssRemainder = 0
                }
            case .conservativeSlowStart(let baseline, _):
                // The delay fell back: the rise was not a queue building; resume slow start.
                if current < baseline { phase = .slowStart }
            case .finished:
                break
            }
        }

        // windowEnd acknowledged: the round is over. This ACK's sample was the
        // last of it: it timed a segment the round sent.
        if let end = windowEnd, ack >= end {
            if case .conservativeSlowStart(let baseline, let rounds) = phase {
                if rounds + 1 >= Self.cssRounds {
                    phase = .finished
                    step.enterCongestionAvoidance = true
                    return step
                }
                phase = .conservativeSlowStart(baseline: baseline, rounds: rounds + 1)
            }
            startRound(sndMax: sndMax)
        }
        return step
    }

    /// RttThresh = max(MIN_RTT_THRESH, min(lastRoundMinRTT / MIN_RTT_DIVISOR, MAX_RTT_THRESH)).
    static func rttThreshold(lastRoundMinRTT: Duration) -> Duration {
        min(max(lastRoundMinRTT / minRTTDivisor, minRTTThreshold), maxRTTThreshold)
    }

    private mutating func startRound(sndMax: SequenceNumber) {
        lastRoundMinRTT = currentRoundMinRTT
        currentRoundMinRTT = nil
        rttSampleCount = 0
        windowEnd = sndMax
    }
}

extension HyStartPlusPlus {
    /// One ACK of slow start, shared by the controllers: RFC 5681 3.1 with
    /// RFC 3465's L = 2 SMSS, through HyStart++ while it runs. Growth waits
    /// for a sender that fills its window (RFC 7661, RFC 9438 5.8). When
    /// HyStart++'s conservative phase has run its rounds, ssthresh becomes
    /// cwnd and congestion avoidance follows (RFC 9406 4.2).
    static func slowStart(_ sample: AckSample, congestionWindow: inout Int, slowStartThreshold: inout Int,
                          hyStart: inout HyStartPlusPlus?) {
        var growth = min(sample.deliveredBytes, 2 * sample.mss)
        if var h = hyStart, h.isActive {
            let step = h.onAck(growth: growth, rtt: sample.rtt, ack: sample.ack, sndMax: sample.sndMax)
            hyStart = h
            growth = step.growth
            if step.enterCongestionAvoidance {
                if sample.windowLimited { congestionWindow += growth }
                slowStartThreshold = congestionWindow
                return
            }
        }
        guard sample.windowLimited else { return }
        congestionWindow += growth
    }
}
