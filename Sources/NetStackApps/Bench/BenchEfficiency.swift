/// What a scenario's work cost in CPU time, per round: the whole machine's
/// busy CPU-seconds (`CPUTime`) over the measured interval, against the bytes
/// or transactions moved in it. Speed alone hides a stack that is fast only
/// because it burns more cores; this says how much machine each unit took.
///
/// Bulk scenarios give CPU-seconds per GB (lower is better); tcp-rr and
/// udp-pps give transactions or datagrams per CPU-second (higher is better).
public struct BenchEfficiency: Codable, Equatable, Sendable {
    /// "CPU-s/GB", "transactions/CPU-s" or "datagrams/CPU-s".
    public var unit: String
    /// True for CPU-s/GB: a smaller figure means less CPU for the same work.
    public var lowerIsBetter: Bool
    /// Median and range of `samples`; nil when no round had a CPU reading
    /// (no readable /proc/stat), so the table shows "—".
    public var value: Double?
    public var min: Double?
    public var max: Double?
    /// (max − min) / median (`BenchSpread`); nil without a figure, or in
    /// reports from before it.
    public var spread: Double?
    /// The rounds that had a CPU reading, in the order measured.
    public var samples: [Double]
    /// The machine's busy CPU-seconds in each of those rounds.
    public var cpuSeconds: [Double]

    /// From the rounds' `(figure, CPU-seconds)` pairs; rounds without a
    /// reading are left out by the caller, as failed rounds are.
    public init(unit: String, lowerIsBetter: Bool, rounds: [(figure: Double, cpuSeconds: Double)]) {
        self.unit = unit
        self.lowerIsBetter = lowerIsBetter
        samples = rounds.map(\.figure)
        cpuSeconds = rounds.map(\.cpuSeconds)
        let summary = BenchSummary(samples)
        value = summary?.median
        min = summary?.min
        max = summary?.max
        spread = summary?.spread
    }

    /// The table's label for the unit, saying which way is better.
    public var label: String {
        "\(unit) (\(lowerIsBetter ? "lower" : "higher") is better)"
    }

    /// CPU-seconds per 10⁹ bytes, or nil without CPU time or bytes to divide.
    public static func cpuSecondsPerGB(cpuSeconds: Double?, bytes: Double?) -> Double? {
        guard let cpuSeconds, let bytes, cpuSeconds.isFinite, cpuSeconds >= 0, bytes.isFinite, bytes > 0 else {
            return nil
        }
        return cpuSeconds / (bytes / 1e9)
    }

    /// Transactions (or datagrams) per CPU-second, or nil without a
    /// positive CPU time (a round shorter than one clock tick has none).
    public static func perCPUSecond(count: Double?, cpuSeconds: Double?) -> Double? {
        guard let count, let cpuSeconds, count.isFinite, count >= 0, cpuSeconds.isFinite, cpuSeconds > 0 else {
            return nil
        }
        return count / cpuSeconds
    }
}
