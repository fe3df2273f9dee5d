/// How far a bench figure could have moved, and whether a scenario needs more
/// rounds before its median can be trusted.
///
/// Two measures, for two questions:
///
/// - `spread`, (max − min) / median: how far apart the rounds were (the
///   table shows the range itself beside the median). More rounds can only
///   widen a range (the new rounds' extremes add to the old), so it says how
///   noisy the machine was and never shrinks by measuring longer.
/// - `medianSpread`: the width of a confidence interval for the median over
///   the median. It does narrow as rounds are added (as 1/√n for a steady
///   noise), so it is what decides whether a small-packet scenario gets extra
///   rounds, and it is the table's spread column: how well the figure
///   printed, the median, is known. The interval is the distribution-free one from the rounds' own
///   order statistics (the k-th smallest to the k-th largest, k as large as
///   keeps the chance that it holds the true median at `confidence` or
///   more; a binomial count, no assumption about the noise's shape). Up to 7
///   rounds no pair narrower than min–max reaches 90%, so there it is the
///   range, and with 3 rounds that holds the median only 75% of the time.
public enum BenchSpread {
    /// The extra-rounds threshold: a median known to within 10%.
    public static let limit = 0.10
    /// The confidence of `medianInterval`.
    public static let confidence = 0.90

    /// (max − min) / median, or nil for a median that is not positive (no
    /// ratio means anything then).
    public static func of(median: Double, min: Double, max: Double) -> Double? {
        guard median > 0, median.isFinite, min.isFinite, max.isFinite, max >= min else { return nil }
        return (max - min) / median
    }

    /// The order statistics bounding the median: the `k`-th smallest and
    /// `k`-th largest of `samples` for the largest `k` whose interval holds
    /// the true median with probability ≥ `confidence`, where that chance is
    /// 1 − 2·P(Binomial(n, ½) ≤ k − 1). Min and max when no `k` reaches it
    /// (fewer than 5 rounds for 90%). Nil without samples.
    public static func medianInterval(_ samples: [Double], confidence: Double = confidence)
        -> (low: Double, high: Double)? {
        guard !samples.isEmpty, samples.allSatisfy(\.isFinite) else { return nil }
        let sorted = samples.sorted()
        let n = sorted.count
        var k = 1
        while k + 1 <= (n + 1) / 2 && coverage(n: n, k: k + 1) >= confidence { k += 1 }
        return (sorted[k - 1], sorted[n - k])
    }

    /// The chance that [X₍ₖ₎, X₍ₙ₊₁₋ₖ₎] of `n` independent rounds holds the
    /// true median: 1 − 2·P(Binomial(n, ½) ≤ k − 1).
    public static func coverage(n: Int, k: Int) -> Double {
        guard n > 0, k >= 1, 2 * k <= n + 1 else { return 0 }
        // P(X = i) for X ~ Binomial(n, ½), built up from P(X = 0) = 2⁻ⁿ
        // (no factorials; fine in a Double for n up to about 1000).
        var term = 1.0
        for _ in 0..<n { term /= 2 }
        var tail = 0.0
        for i in 0..<k {
            tail += term
            term = term * Double(n - i) / Double(i + 1)
        }
        return Swift.max(0, 1 - 2 * tail)
    }

    /// Fewer rounds than this say nothing about the median's spread (one
    /// round's interval is the round itself; two hold the median half the time).
    public static let fewestRounds = 3

    /// The width of `medianInterval` over the median; nil for fewer than
    /// `fewestRounds` samples or a median that is not positive.
    public static func ofMedian(_ samples: [Double], confidence: Double = confidence) -> Double? {
        guard samples.count >= fewestRounds, let summary = BenchSummary(samples),
              let interval = medianInterval(samples, confidence: confidence) else { return nil }
        return of(median: summary.median, min: interval.low, max: interval.high)
    }

    /// "4.2%" below 10%, "23%" from there: as many digits as the noise deserves.
    public static func percent(_ fraction: Double?) -> String {
        guard let fraction, fraction.isFinite else { return "—" }
        let p = fraction * 100
        return p < 9.95 ? String(format: "%.1f%%", p) : String(format: "%.0f%%", p)
    }
}

/// When a scenario gets rounds beyond those asked for: only scenarios that
/// opt in (the small-packet ones, whose figures a busy machine moves most),
/// only while some system's `BenchSpread.ofMedian` is above the limit (or
/// it has too few rounds to have one), and
/// never past `maximum` rounds, so the bench's running time stays bounded.
public struct BenchRoundPolicy: Equatable, Sendable {
    /// Rounds asked for (`--rounds`): every scenario runs these.
    public var requested: Int
    /// The most rounds a steadied scenario runs (`--max-rounds`, default
    /// 12 × requested: on this 2-vCPU VM, 1 s rounds of tcp-rr took 37 to
    /// bring all three systems' medians within 10%, udp-pps 23).
    public var maximum: Int
    public var limit: Double
    public var confidence: Double

    public init(requested: Int, maximum: Int? = nil, limit: Double = BenchSpread.limit,
                confidence: Double = BenchSpread.confidence) {
        self.requested = requested
        self.maximum = Swift.max(requested, maximum ?? 12 * requested)
        self.limit = limit
        self.confidence = confidence
    }

    /// Whether a scenario that has run `roundsDone` rounds, with these
    /// samples per system (failed rounds left out), should run another.
    /// A system without samples (every round failed) asks for nothing:
    /// more rounds would not make its median any surer.
    public func needsAnotherRound(roundsDone: Int, samples: [[Double]]) -> Bool {
        guard roundsDone >= requested, roundsDone < maximum else { return false }
        return samples.contains { unsteady($0) }
    }

    /// Whether a system's rounds leave its median's spread above the limit,
    /// or are too few (1 or 2) to tell.
    public func unsteady(_ samples: [Double]) -> Bool {
        if !samples.isEmpty && samples.count < BenchSpread.fewestRounds { return true }
        guard let spread = BenchSpread.ofMedian(samples, confidence: confidence) else { return false }
        return spread > limit
    }
}
