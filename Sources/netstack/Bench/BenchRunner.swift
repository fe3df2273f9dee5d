import Foundation
import NetStackApps

/// Runs the rounds: every scenario on both systems in each round, the order
/// of the systems flipping from round to round (kernel first, then netstack
/// first, ...), so a machine that speeds up or slows down during the run
/// moves both systems' figures alike and the ratio stays fair.
struct BenchRunner {
    var scenarios: [BenchScenario]
    var rounds: Int
    var timing: BenchScenario.Timing
    var progress: BenchProgress

    struct Outcome {
        var results: [BenchResult]
        var failures: [String]
    }

    func run(in lab: BenchLab) throws -> Outcome {
        var samples: [BenchScenario: [BenchSystem: [BenchScenario.Sample]]] = [:]
        var failures: [String] = []
        let total = rounds * scenarios.count * BenchSystem.allCases.count
        var done = 0
        for round in 1...rounds {
            let order: [BenchSystem] = round % 2 == 1 ? [.kernel, .netstack] : [.netstack, .kernel]
            for scenario in scenarios {
                for system in order {
                    if stopRequested.load(ordering: .relaxed) { throw BenchInterrupted() }
                    let label = "round \(round)/\(rounds) \(scenario.rawValue) \(system.rawValue)"
                    progress.update("[\(done + 1)/\(total)] \(label) ...")
                    do {
                        if scenario != .memoryBulk { try lab.checkServers(for: system) }
                        let sample = try scenario.measure(on: system, in: lab, timing: timing)
                        if stopRequested.load(ordering: .relaxed) { throw BenchInterrupted() }
                        samples[scenario, default: [:]][system, default: []].append(sample)
                        progress.update("[\(done + 1)/\(total)] \(label): \(BenchFormat.number(sample.value)) \(scenario.unit)")
                    } catch let error as BenchInterrupted {
                        throw error
                    } catch {
                        if stopRequested.load(ordering: .relaxed) { throw BenchInterrupted() }
                        failures.append("\(label): \(error)")
                        progress.note("\(label) failed: \(error)")
                    }
                    done += 1
                }
            }
        }
        progress.finish()

        var results: [BenchResult] = []
        for scenario in scenarios {
            for system in BenchSystem.allCases {
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
        return Outcome(results: results, failures: failures)
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
