/// The median and range of one figure's rounds in `netstack bench`.
///
/// The median, not the mean: on a shared machine a round that another process
/// stole time from is an outlier, and the median ignores it. The range
/// (min–max) shows how noisy the run was, so two medians are compared knowing
/// how far each could have moved.
public struct BenchSummary: Equatable, Sendable {
    public var median: Double
    public var min: Double
    public var max: Double
    /// The rounds, in the order measured.
    public var samples: [Double]

    /// Nil for no samples or any sample that is not a finite number: a
    /// failed round is left out by the caller, never averaged in as zero.
    public init?(_ samples: [Double]) {
        guard !samples.isEmpty, samples.allSatisfy(\.isFinite) else { return nil }
        let sorted = samples.sorted()
        let mid = sorted.count / 2
        median = sorted.count % 2 == 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
        min = sorted[0]
        max = sorted[sorted.count - 1]
        self.samples = samples
    }

    /// (max − min) / median (`BenchSpread.of`), nil for a median that is not positive.
    public var spread: Double? { BenchSpread.of(median: median, min: min, max: max) }
}
