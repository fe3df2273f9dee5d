/// The closing table of `netstack bench`: one row per scenario with both
/// systems side by side, as a Markdown table padded to line up in a terminal,
/// so it reads in a shell and pastes into a README unchanged.
public enum BenchTable {
    public static let header = ["scenario", "unit", "kernel median (min–max)", "kernel spread",
                                "netstack median (min–max)", "netstack spread", "netstack/kernel"]

    /// The cells, row by row: each scenario's primary figure, then any
    /// secondary figure (memory-bulk's packets per second) and its CPU
    /// efficiency, each on a row of its own, the unit cell saying which way
    /// is better. A system with no figure for a scenario (every round failed)
    /// shows "failed"; one with no CPU reading, "—". Each system's spread,
    /// (max − min) / median as a percentage, follows its figure.
    public static func rows(_ report: BenchReport) -> [[String]] {
        var rows: [[String]] = []
        for scenario in report.scenarios {
            let kernel = report.result(scenario, .kernel)
            let netstack = report.result(scenario, .netstack)
            let unit = (kernel ?? netstack)?.unit ?? ""
            func cell(_ r: BenchResult?) -> String {
                r.map { BenchFormat.figure(median: $0.value, min: $0.min, max: $0.max) } ?? "failed"
            }
            func spread(_ r: BenchResult?) -> String {
                BenchSpread.percent(r.flatMap { BenchSpread.of(median: $0.value, min: $0.min, max: $0.max) })
            }
            rows.append([scenario, unit, cell(kernel), spread(kernel), cell(netstack), spread(netstack),
                         BenchFormat.ratio(report.ratio(scenario))])
            let kSecondary = kernel?.secondary
            let nSecondary = netstack?.secondary
            if let unit = (nSecondary ?? kSecondary)?.unit {
                func cell(_ f: BenchFigure?) -> String {
                    f.map { BenchFormat.figure(median: $0.value, min: $0.min, max: $0.max) } ?? "—"
                }
                func spread(_ f: BenchFigure?) -> String {
                    BenchSpread.percent(f.flatMap { BenchSpread.of(median: $0.value, min: $0.min, max: $0.max) })
                }
                var ratio: Double?
                if let k = kSecondary, let n = nSecondary, k.value > 0 { ratio = n.value / k.value }
                rows.append([scenario, unit, cell(kSecondary), spread(kSecondary), cell(nSecondary), spread(nSecondary),
                             BenchFormat.ratio(ratio)])
            }
            let kEfficiency = kernel?.efficiency
            let nEfficiency = netstack?.efficiency
            if let label = (kEfficiency ?? nEfficiency)?.label {
                func cell(_ e: BenchEfficiency?) -> String {
                    guard let e, let value = e.value, let low = e.min, let high = e.max else { return "—" }
                    return BenchFormat.figure(median: value, min: low, max: high)
                }
                func spread(_ e: BenchEfficiency?) -> String {
                    guard let e, let value = e.value, let low = e.min, let high = e.max else { return "—" }
                    return BenchSpread.percent(BenchSpread.of(median: value, min: low, max: high))
                }
                rows.append([scenario, label, cell(kEfficiency), spread(kEfficiency), cell(nEfficiency),
                             spread(nEfficiency), BenchFormat.ratio(report.efficiencyRatio(scenario))])
            }
        }
        return rows
    }

    public static func render(_ report: BenchReport) -> String {
        let all = [header] + rows(report)
        var widths = [Int](repeating: 0, count: header.count)
        for row in all {
            for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            "| " + cells.enumerated().map { i, c in c + String(repeating: " ", count: widths[i] - c.count) }
                .joined(separator: " | ") + " |"
        }
        var out = [line(header), "|" + widths.map { String(repeating: "-", count: $0 + 2) }.joined(separator: "|") + "|"]
        out += all.dropFirst().map(line)
        return out.joined(separator: "\n") + "\n"
    }

    /// The lines under the table about rounds: for each scenario that may
    /// get extra rounds, how many it ran and whether its median ended known
    /// to within the limit, with each system's median spread (the median's
    /// 90% confidence interval over the median, `BenchResult.medianSpread`).
    /// Nothing for the other scenarios, which ran the rounds asked for.
    public static func roundNotes(_ report: BenchReport) -> [String] {
        var notes: [String] = []
        for r in report.scenarioRounds ?? [] {
            guard let limit = r.limit, let steady = r.steady else { continue }
            let spreads = BenchSystem.allCases.compactMap { system -> String? in
                guard let result = report.result(r.scenario, system) else { return nil }
                return "\(system.rawValue) \(BenchSpread.percent(result.medianSpread))"
            }.joined(separator: ", ")
            let rounds: String
            if r.rounds == r.requested {
                rounds = "the \(r.requested) round(s) asked for"
            } else {
                rounds = "\(r.rounds) rounds, \(r.rounds - r.requested) beyond the \(r.requested) asked for"
                    + (r.rounds >= r.maximum ? " and the most allowed" : "")
            }
            let interval = "(median's spread: \(spreads))"
            let within = BenchSpread.percent(limit)
            notes.append(steady
                ? "\(r.scenario): median known to within \(within) after \(rounds) \(interval)"
                : "\(r.scenario): median NOT known to within \(within) after \(rounds) \(interval); "
                    + "compare its figures with care")
        }
        return notes
    }
}
