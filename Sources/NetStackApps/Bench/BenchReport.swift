import Foundation

/// Which TCP/IP stack a figure belongs to: the Linux kernel's, or this one.
public enum BenchSystem: String, Codable, CaseIterable, Sendable {
    case kernel
    case netstack
    /// Unmodified programs on netstack through the preload library
    /// (`netstack run`, `netstack up --api`).
    case netstackPreload = "netstack-preload"
}

/// A scenario a system does not run, and why (not a failure: nothing was tried).
public struct BenchSkip: Codable, Equatable, Sendable {
    public var scenario: String
    public var system: BenchSystem
    public var reason: String

    public init(scenario: String, system: BenchSystem, reason: String) {
        self.scenario = scenario
        self.system = system
        self.reason = reason
    }
}

/// A median with its range and unit.
public struct BenchFigure: Codable, Equatable, Sendable {
    public var value: Double
    public var unit: String
    public var min: Double
    public var max: Double
    /// (max − min) / median (`BenchSpread`); nil in reports from before it.
    public var spread: Double?

    public init(unit: String, summary: BenchSummary) {
        value = summary.median
        self.unit = unit
        min = summary.min
        max = summary.max
        spread = summary.spread
    }
}

/// One scenario measured on one system over all rounds. `value` is the
/// median; `samples` keeps every round, so a reader can check the summary.
public struct BenchResult: Codable, Equatable, Sendable {
    public var scenario: String
    public var system: BenchSystem
    public var value: Double
    public var unit: String
    public var min: Double
    public var max: Double
    public var samples: [Double]
    /// (max − min) / median: how far apart the rounds were (`BenchSpread`);
    /// nil in reports from before it, or for a median that is not positive.
    public var spread: Double?
    /// The width of the median's 90% confidence interval over the median
    /// (`BenchSpread.ofMedian`): what extra rounds narrow.
    public var medianSpread: Double?
    /// A second figure from the same rounds (memory-bulk's packets per second).
    public var secondary: BenchFigure?
    /// The CPU the rounds took (CPU-s/GB or transactions per CPU-second);
    /// nil in reports from before the bench measured it.
    public var efficiency: BenchEfficiency?

    public init(scenario: String, system: BenchSystem, unit: String, summary: BenchSummary,
                secondary: BenchFigure? = nil, efficiency: BenchEfficiency? = nil) {
        self.scenario = scenario
        self.system = system
        value = summary.median
        self.unit = unit
        min = summary.min
        max = summary.max
        samples = summary.samples
        spread = summary.spread
        medianSpread = BenchSpread.ofMedian(summary.samples)
        self.secondary = secondary
        self.efficiency = efficiency
    }
}

/// What the figures were measured on: they mean little without it.
public struct BenchMachine: Codable, Equatable, Sendable {
    public var cpu: String
    public var cores: Int
    public var kernel: String
    public var swift: String
    /// ISO 8601, UTC.
    public var date: String
    /// "release" or "debug": debug figures say only that the path works.
    public var build: String
    /// The kernel's TCP congestion control (`net.ipv4.tcp_congestion_control`)
    /// in the bench's namespaces, which the kernel's bulk figures depend on:
    /// one name when they agree, else each namespace's; nil if unread.
    public var tcpCongestionControl: String?
    /// Whether netstack's TAP ran with offloads (`--offload`); nil in reports from before the flag.
    public var netstackOffload: Bool?
    /// Which CPUs each side ran on (`--pin`); nil in reports from before the flag.
    public var pinning: BenchPinning?
    /// The IP family the scenarios ran over (`--family`): "IPv4" or "IPv6";
    /// nil in reports from before the flag, which were all IPv4.
    public var family: String?

    public init(cpu: String, cores: Int, kernel: String, swift: String, date: String, build: String,
                tcpCongestionControl: String? = nil) {
        self.cpu = cpu
        self.cores = cores
        self.kernel = kernel
        self.swift = swift
        self.date = date
        self.build = build
        self.tcpCongestionControl = tcpCongestionControl
    }

    /// The line under the table.
    public var summary: String {
        "\(cpu), \(cores) cores, \(kernel), \(swift), \(build) build, \(date), "
            + (family.map { "over \($0), " } ?? "")
            + "kernel TCP congestion control: \(tcpCongestionControl ?? "unknown")"
            + (netstackOffload.map { ", netstack offloads: \($0 ? "on" : "off")" } ?? "")
            + (pinning.map { ", \($0.summary)" } ?? "")
    }
}

/// How many rounds one scenario ran, and whether its median ended steady.
public struct BenchRounds: Codable, Equatable, Sendable {
    public var scenario: String
    /// Rounds run, per system, extra rounds included (failed ones too).
    public var rounds: Int
    /// Rounds asked for (`--rounds`).
    public var requested: Int
    /// The most it could have run: `requested` for a scenario that gets no
    /// extra rounds.
    public var maximum: Int
    /// The median spread the extra rounds aim at (0.1); nil for a scenario
    /// that gets none.
    public var limit: Double?
    /// Whether every system's median spread ended at or under `limit`; nil
    /// for a scenario that gets no extra rounds.
    public var steady: Bool?

    public init(scenario: String, rounds: Int, requested: Int, maximum: Int, limit: Double? = nil,
                steady: Bool? = nil) {
        self.scenario = scenario
        self.rounds = rounds
        self.requested = requested
        self.maximum = maximum
        self.limit = limit
        self.steady = steady
    }
}

/// Everything one `netstack bench` run found: what `--json` writes and
/// `--report` draws.
public struct BenchReport: Codable, Equatable, Sendable {
    public var results: [BenchResult]
    public var machine: BenchMachine
    public var rounds: Int
    /// Measurement length asked for, in seconds (iperf3 rounds it up to whole seconds).
    public var duration: Double
    /// The small-packet scenarios' measurement length when it differs from
    /// `duration` (their rounds are short by default); nil when it does not,
    /// and in reports from before the split.
    public var steadiedDuration: Double?
    /// Rounds that produced no figure, one line each, so a gap is explained.
    public var failures: [String]
    /// The rounds each scenario ran, extra ones included; nil in reports
    /// from before extra rounds.
    public var scenarioRounds: [BenchRounds]?
    /// The whole run's wall time, set-up and clean-up included; nil in
    /// reports from before it was recorded.
    public var elapsedSeconds: Double?
    /// The systems measured, in `BenchSystem` order; nil in reports from
    /// before the choice (kernel and netstack).
    public var systems: [BenchSystem]?
    /// Scenarios a system does not run; nil or empty when each ran all.
    public var skipped: [BenchSkip]?

    public init(results: [BenchResult], machine: BenchMachine, rounds: Int, duration: Double,
                failures: [String] = [], scenarioRounds: [BenchRounds]? = nil, elapsedSeconds: Double? = nil) {
        self.results = results
        self.machine = machine
        self.rounds = rounds
        self.duration = duration
        self.failures = failures
        self.scenarioRounds = scenarioRounds
        self.elapsedSeconds = elapsedSeconds
    }

    /// Scenario names in the order first measured.
    public var scenarios: [String] {
        var seen: [String] = []
        for r in results where !seen.contains(r.scenario) { seen.append(r.scenario) }
        return seen
    }

    public func result(_ scenario: String, _ system: BenchSystem) -> BenchResult? {
        results.first { $0.scenario == scenario && $0.system == system }
    }

    /// The systems measured: as recorded, else kernel and netstack.
    public var measuredSystems: [BenchSystem] { systems ?? [.kernel, .netstack] }

    /// Why `system` did not run `scenario`, if it was skipped rather than failed.
    public func skipReason(_ scenario: String, _ system: BenchSystem) -> String? {
        skipped?.first { $0.scenario == scenario && $0.system == system }?.reason
    }

    /// `system`'s median over the kernel's, when both were measured.
    public func ratio(_ scenario: String, of system: BenchSystem = .netstack) -> Double? {
        guard let k = result(scenario, .kernel), let n = result(scenario, system), k.value > 0 else { return nil }
        return n.value / k.value
    }

    /// `system`'s median CPU efficiency over the kernel's, when both have one.
    public func efficiencyRatio(_ scenario: String, of system: BenchSystem = .netstack) -> Double? {
        guard let k = result(scenario, .kernel)?.efficiency?.value, let n = result(scenario, system)?.efficiency?.value,
              k > 0 else { return nil }
        return n / k
    }

    /// Pretty-printed, keys sorted, so two runs diff cleanly.
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self) + "\n"
    }
}
