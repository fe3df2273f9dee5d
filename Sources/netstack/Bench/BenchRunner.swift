import Foundation
import NetStackApps

/// Runs the rounds: every scenario on every system that runs it in each
/// round, the order of the systems rotating from round to round (kernel
/// first, then netstack first, ...), so a machine that speeds up or slows
/// down during the run moves every system's figures alike and the ratios
/// stay fair.
///
/// After the rounds asked for, the small-packet scenarios (`steadied`) whose
/// median is not yet known to within `BenchSpread.limit` on either system
/// run more rounds, both systems each time and still alternating, until it
/// is or until `policy.maximum` rounds; only those scenarios, so the others
/// keep the rounds asked for, and the run's length stays bounded.
struct BenchRunner {
    var scenarios: [BenchScenario]
    /// The systems measured, in `BenchSystem` order.
    var systems: [BenchSystem] = [.kernel, .netstack]
    var policy: BenchRoundPolicy
    var timing: BenchScenario.Timing
    var progress: BenchProgress

    struct Outcome {
        var results: [BenchResult]
        var failures: [String]
        var rounds: [BenchRounds]
        var skipped: [BenchSkip]
    }

    /// The systems of `systems` that run `scenario`.
    func systems(for scenario: BenchScenario) -> [BenchSystem] {
        systems.filter { scenario.skipReason(on: $0) == nil }
    }

    /// The measurements the rounds asked for take.
    var plannedMeasurements: Int {
        scenarios.map { policy.requested * systems(for: $0).count }.reduce(0, +)
    }

    /// The most measurements the run can take: every scenario's rounds asked
    /// for, and the maximum for the small-packet ones, on each system that runs it.
    var maximumMeasurements: Int {
        scenarios.map { ($0.steadied ? policy.maximum : policy.requested) * systems(for: $0).count }.reduce(0, +)
    }

    /// The seconds those measurements last at most, their timed intervals
    /// only (each also spends a fraction of a second starting and connecting).
    var maximumMeasuringSeconds: Double {
        scenarios.map { scenario in
            Double(scenario.steadied ? policy.maximum : policy.requested)
                * timing.seconds(for: scenario)
                * Double(systems(for: scenario).count)
        }.reduce(0, +)
    }

    func run(in lab: BenchLab) throws -> Outcome {
        var samples: [BenchScenario: [BenchSystem: [BenchScenario.Sample]]] = [:]
        var roundsRun: [BenchScenario: Int] = [:]
        var failures: [String] = []
        let planned = plannedMeasurements
        var done = 0

        func values(_ scenario: BenchScenario) -> [[Double]] {
            systems(for: scenario).map { (samples[scenario]?[$0] ?? []).map(\.value) }
        }
        func measure(round: Int, of total: Int, _ scenarios: [BenchScenario]) throws {
            for scenario in scenarios {
                let these = systems(for: scenario)
                let first = (round - 1) % these.count
                for system in these[first...] + these[..<first] {
                    if stopRequested.load(ordering: .relaxed) { throw BenchInterrupted() }
                    let label = "round \(round)/\(total) \(scenario.rawValue) \(system.rawValue)"
                    let step = done < planned ? "[\(done + 1)/\(planned)]" : "[extra \(done + 1 - planned)]"
                    progress.update("\(step) \(label) ...")
                    do {
                        if scenario != .memoryBulk { try lab.checkServers(for: system) }
                        let sample = try scenario.measure(on: system, in: lab, timing: timing)
                        if stopRequested.load(ordering: .relaxed) { throw BenchInterrupted() }
                        samples[scenario, default: [:]][system, default: []].append(sample)
                        progress.update("\(step) \(label): \(BenchFormat.number(sample.value)) \(scenario.unit)")
                    } catch let error as BenchInterrupted {
                        throw error
                    } catch {
                        if stopRequested.load(ordering: .relaxed) { throw BenchInterrupted() }
                        failures.append("\(label): \(error)")
                        progress.note("\(label) failed: \(error)")
                    }
                    done += 1
                }
                roundsRun[scenario, default: 0] += 1
            }
        }

        for round in 1...policy.requested {
            try measure(round: round, of: policy.requested, scenarios)
        }
        var round = policy.requested
        while true {
            let unsteady = scenarios.filter {
                $0.steadied && policy.needsAnotherRound(roundsDone: roundsRun[$0] ?? 0, samples: values($0))
            }
            if unsteady.isEmpty { break }
            round += 1
            let spreads = unsteady.map { scenario in
                scenario.rawValue + " " + zip(systems(for: scenario), values(scenario)).map { system, v in
                    "\(system.rawValue) \(BenchSpread.percent(BenchSpread.ofMedian(v)))"
                }.joined(separator: " ")
            }
            progress.note("round \(round) (of at most \(policy.maximum)) for the median's spread over "
                          + "\(BenchSpread.percent(policy.limit)): \(spreads.joined(separator: ", "))")
            try measure(round: round, of: policy.maximum, unsteady)
        }
        progress.finish()

        var results: [BenchResult] = []
        for scenario in scenarios {
            for system in systems(for: scenario) {
                let rows = samples[scenario]?[system] ?? []
                guard let summary = BenchSummary(rows.map(\.value)) else { continue }
                var secondary: BenchFigure?
                if let unit = scenario.secondaryUnit, let s = BenchSummary(rows.compactMap(\.secondary)) {
                    secondary = BenchFigure(unit: unit, summary: s)
                }
                // Rounds without a CPU reading are left out, as failed rounds are.
                let efficiencyRounds = rows.compactMap { sample -> (figure: Double, cpuSeconds: Double)? in
                    guard let cpu = sample.cpuSeconds, let figure = scenario.efficiency(sample) else { return nil }
                    return (figure, cpu)
                }
                let (unit, lowerIsBetter) = scenario.efficiencyUnit
                let efficiency = BenchEfficiency(unit: unit, lowerIsBetter: lowerIsBetter, rounds: efficiencyRounds)
                results.append(BenchResult(scenario: scenario.rawValue, system: system, unit: scenario.unit,
                                           summary: summary, secondary: secondary, efficiency: efficiency))
            }
        }
        let rounds = scenarios.map { scenario in
            scenario.steadied
                ? BenchRounds(scenario: scenario.rawValue, rounds: roundsRun[scenario] ?? 0, requested: policy.requested,
                              maximum: policy.maximum, limit: policy.limit,
                              steady: !values(scenario).contains(where: policy.unsteady))
                : BenchRounds(scenario: scenario.rawValue, rounds: roundsRun[scenario] ?? 0, requested: policy.requested,
                              maximum: policy.requested)
        }
        let skipped = scenarios.flatMap { scenario in
            systems.compactMap { system in
                scenario.skipReason(on: system).map {
                    BenchSkip(scenario: scenario.rawValue, system: system, reason: $0)
                }
            }
        }
        return Outcome(results: results, failures: failures, rounds: rounds, skipped: skipped)
    }
}

/// The progress line on stderr: rewritten in place on a terminal, one line
/// per step otherwise (a log, or a test capturing stderr).
struct BenchProgress {
    let inPlace = isatty(2) == 1

    func update(_ text: String) {
        if inPlace {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + text).utf8))
        } else if !text.hasSuffix("...") {
            Console.error(text)
        }
    }

    /// A line that stays (a failure).
    func note(_ text: String) {
        if inPlace { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        Console.error(text)
    }

    func finish() {
        if inPlace { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
