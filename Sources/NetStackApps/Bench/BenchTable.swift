/// The closing table of `netstack bench`: one row per scenario with both
/// systems side by side, as a Markdown table padded to line up in a terminal,
/// so it reads in a shell and pastes into a README unchanged.
public enum BenchTable {
    /// The header of a run of kernel and netstack.
    public static let header = header(systems: [.kernel, .netstack])

    /// Per system its median (min–max) and spread, then each other system's
    /// median over the kernel's.
    public static func header(systems: [BenchSystem]) -> [String] {
        ["scenario", "unit"]
            + systems.flatMap { ["\($0.rawValue) median (min–max)", "\($0.rawValue) spread"] }
            + systems.filter { $0 != .kernel }.map { "\($0.rawValue)/kernel" }
    }

    /// The cells, row by row: each scenario's primary figure, then any
    /// secondary figure (memory-bulk's packets per second) and its CPU
    /// efficiency, each on a row of its own, the unit cell saying which way
    /// is better. A system with no figure for a scenario shows "failed"
    /// (every round failed) or "—" (it does not run that scenario, or has no
    /// CPU reading). Each system's spread follows its figure: the median's
    /// spread (`BenchSpread.ofMedian`), which is (max − min) / median below
    /// 8 rounds and narrows as extra rounds come; a figure without its
    /// rounds (memory-bulk's packets per second) shows its range's.
    public static func rows(_ report: BenchReport) -> [[String]] {
        let systems = report.measuredSystems
        let others = systems.filter { $0 != .kernel }
        var rows: [[String]] = []
        func figure(_ median: Double?, _ low: Double?, _ high: Double?, _ samples: [Double]? = nil) -> (String, String)? {
            guard let median, let low, let high else { return nil }
            let spread = samples.flatMap { BenchSpread.ofMedian($0) } ?? BenchSpread.of(median: median, min: low, max: high)
            return (BenchFormat.figure(median: median, min: low, max: high), BenchSpread.percent(spread))
        }
        for scenario in report.scenarios {
            let results = systems.map { report.result(scenario, $0) }
            let unit = results.compactMap { $0?.unit }.first ?? ""
            var row = [scenario, unit]
            for (system, r) in zip(systems, results) {
                if let (cell, spread) = figure(r?.value, r?.min, r?.max, r?.samples) {
                    row += [cell, spread]
                } else {
                    row += [report.skipReason(scenario, system) == nil ? "failed" : "—", "—"]
                }
            }
            rows.append(row + others.map { BenchFormat.ratio(report.ratio(scenario, of: $0)) })

            let secondaries = results.map { $0?.secondary }
            if let unit = secondaries.compactMap({ $0?.unit }).first {
                var row = [scenario, unit]
                for f in secondaries { let c = figure(f?.value, f?.min, f?.max); row += [c?.0 ?? "—", c?.1 ?? "—"] }
                let kernel = secondaries[0]
                rows.append(row + zip(systems, secondaries).filter { $0.0 != .kernel }.map { _, f in
                    guard let k = kernel, let f, k.value > 0 else { return BenchFormat.ratio(nil) }
                    return BenchFormat.ratio(f.value / k.value)
                })
            }
            let efficiencies = results.map { $0?.efficiency }
            if let label = efficiencies.compactMap({ $0?.label }).first {
                var row = [scenario, label]
                for e in efficiencies { let c = figure(e?.value, e?.min, e?.max, e?.samples); row += [c?.0 ?? "—", c?.1 ?? "—"] }
                rows.append(row + others.map { BenchFormat.ratio(report.efficiencyRatio(scenario, of: $0)) })
            }
        }
        return rows
    }

    public static func render(_ report: BenchReport) -> String {
        let header = header(systems: report.measuredSystems)
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
