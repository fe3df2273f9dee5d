/// The closing table of `netstack bench`: one row per scenario with both
/// systems side by side, as a Markdown table padded to line up in a terminal,
/// so it reads in a shell and pastes into a README unchanged.
public enum BenchTable {
    public static let header = ["scenario", "unit", "kernel median (min–max)", "netstack median (min–max)",
                                "netstack/kernel"]

    /// The cells, row by row: each scenario's primary figure, then any
    /// secondary figure (memory-bulk's packets per second) and its CPU
    /// efficiency, each on a row of its own, the unit cell saying which way
    /// is better. A system with no figure for a scenario (every round failed)
    /// shows "failed"; one with no CPU reading, "—".
    public static func rows(_ report: BenchReport) -> [[String]] {
        var rows: [[String]] = []
        for scenario in report.scenarios {
            let kernel = report.result(scenario, .kernel)
            let netstack = report.result(scenario, .netstack)
            let unit = (kernel ?? netstack)?.unit ?? ""
            func cell(_ r: BenchResult?) -> String {
                r.map { BenchFormat.figure(median: $0.value, min: $0.min, max: $0.max) } ?? "failed"
            }
            rows.append([scenario, unit, cell(kernel), cell(netstack), BenchFormat.ratio(report.ratio(scenario))])
            let kSecondary = kernel?.secondary
            let nSecondary = netstack?.secondary
            if let unit = (nSecondary ?? kSecondary)?.unit {
                func cell(_ f: BenchFigure?) -> String {
                    f.map { BenchFormat.figure(median: $0.value, min: $0.min, max: $0.max) } ?? "—"
                }
                var ratio: Double?
                if let k = kSecondary, let n = nSecondary, k.value > 0 { ratio = n.value / k.value }
                rows.append([scenario, unit, cell(kSecondary), cell(nSecondary), BenchFormat.ratio(ratio)])
            }
            let kEfficiency = kernel?.efficiency
            let nEfficiency = netstack?.efficiency
            if let label = (kEfficiency ?? nEfficiency)?.label {
                func cell(_ e: BenchEfficiency?) -> String {
                    guard let e, let value = e.value, let low = e.min, let high = e.max else { return "—" }
                    return BenchFormat.figure(median: value, min: low, max: high)
                }
                rows.append([scenario, label, cell(kEfficiency), cell(nEfficiency),
                             BenchFormat.ratio(report.efficiencyRatio(scenario))])
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
}
