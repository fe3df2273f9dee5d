import Foundation
import Testing
@testable import NetStackApps

/// `netstack bench`'s CPU figures: CPU-s/GB and work per CPU-second, and
/// where they show up (table, JSON, HTML).
@Suite struct BenchEfficiencyTests {
    @Test func perGBAndPerCPUSecond() {
        #expect(BenchEfficiency.cpuSecondsPerGB(cpuSeconds: 1.5, bytes: 3e9) == 0.5)
        #expect(BenchEfficiency.cpuSecondsPerGB(cpuSeconds: 1, bytes: 0) == nil)
        #expect(BenchEfficiency.cpuSecondsPerGB(cpuSeconds: nil, bytes: 1e9) == nil)
        #expect(BenchEfficiency.perCPUSecond(count: 10_000, cpuSeconds: 0.5) == 20_000)
        #expect(BenchEfficiency.perCPUSecond(count: 10_000, cpuSeconds: 0) == nil, "under one tick")
        #expect(BenchEfficiency.perCPUSecond(count: nil, cpuSeconds: 1) == nil)
    }

    @Test func summarisesTheRoundsWithAReading() throws {
        let e = BenchEfficiency(unit: "CPU-s/GB", lowerIsBetter: true,
                                rounds: [(0.9, 1.8), (0.7, 1.4), (0.8, 1.6)])
        #expect(e.value == 0.8 && e.min == 0.7 && e.max == 0.9)
        #expect(e.samples == [0.9, 0.7, 0.8])
        #expect(e.cpuSeconds == [1.8, 1.4, 1.6])
        #expect(e.label == "CPU-s/GB (lower is better)")
        let none = BenchEfficiency(unit: "transactions/CPU-s", lowerIsBetter: false, rounds: [])
        #expect(none.value == nil && none.min == nil && none.max == nil)
        #expect(none.label == "transactions/CPU-s (higher is better)")
    }
}

/// `sampleReport` with CPU figures: tcp-rr's on both systems, memory-bulk's
/// only on the kernel (netstack's rounds had no /proc/stat reading).
func sampleReportWithCPU() -> BenchReport {
    var report = sampleReport()
    func set(_ scenario: String, _ system: BenchSystem, _ e: BenchEfficiency) {
        if let i = report.results.firstIndex(where: { $0.scenario == scenario && $0.system == system }) {
            report.results[i].efficiency = e
        }
    }
    set("tcp-rr", .kernel, BenchEfficiency(unit: "transactions/CPU-s", lowerIsBetter: false,
                                           rounds: [(10_000, 1.9), (12_000, 1.6), (11_000, 1.7)]))
    set("tcp-rr", .netstack, BenchEfficiency(unit: "transactions/CPU-s", lowerIsBetter: false,
                                             rounds: [(5_000, 1.9), (5_600, 1.7), (5_500, 1.7)]))
    set("memory-bulk", .kernel, BenchEfficiency(unit: "CPU-s/GB", lowerIsBetter: true,
                                                rounds: [(0.30, 1.1), (0.25, 0.9), (0.35, 1.3)]))
    set("memory-bulk", .netstack, BenchEfficiency(unit: "CPU-s/GB", lowerIsBetter: true, rounds: []))
    return report
}

@Suite struct BenchEfficiencyReportTests {
    @Test func aCPURowFollowsEachScenariosFigures() {
        let rows = BenchTable.rows(sampleReportWithCPU())
        #expect(rows.count == 5)
        // The existing rows are untouched.
        #expect(rows[0] == ["tcp-rr", "transactions/s", "19,000 (18,000–20,000)", "11%", "9,500 (9,000–9,800)", "8.4%",
                            "0.50"])
        #expect(rows[1] == ["tcp-rr", "transactions/CPU-s (higher is better)", "11,000 (10,000–12,000)", "18%",
                            "5,500 (5,000–5,600)", "11%", "0.50"])
        #expect(rows[2] == ["memory-bulk", "Gbit/s", "28.0 (26.0–30.0)", "14%", "7.50 (7.00–8.00)", "13%", "0.27"])
        #expect(rows[3] == ["memory-bulk", "packets/s", "—", "—", "650,000 (600,000–700,000)", "15%", "—"])
        #expect(rows[4] == ["memory-bulk", "CPU-s/GB (lower is better)", "0.300 (0.250–0.350)", "33%", "—", "—", "—"])
        let lines = BenchTable.render(sampleReportWithCPU()).split(separator: "\n")
        #expect(lines.count == 7)
        #expect(Set(lines.map(\.count)).count == 1, "every line as wide as the header")
    }

    @Test func aFailedSystemHasNoCPUFigure() {
        var report = sampleReportWithCPU()
        report.results.removeAll { $0.scenario == "tcp-rr" && $0.system == .netstack }
        let rows = BenchTable.rows(report)
        #expect(rows[1] == ["tcp-rr", "transactions/CPU-s (higher is better)", "11,000 (10,000–12,000)", "18%", "—", "—",
                            "—"])
    }

    @Test func jsonCarriesTheRounds() throws {
        let report = sampleReportWithCPU()
        let json = try #require(try JSONSerialization.jsonObject(with: Data(try report.json().utf8)) as? [String: Any])
        let results = try #require(json["results"] as? [[String: Any]])
        let rr = try #require(results.first { $0["scenario"] as? String == "tcp-rr" && $0["system"] as? String == "kernel" })
        let e = try #require(rr["efficiency"] as? [String: Any])
        #expect(e["unit"] as? String == "transactions/CPU-s")
        #expect(e["lowerIsBetter"] as? Bool == false)
        #expect(e["value"] as? Double == 11_000)
        #expect(e["samples"] as? [Double] == [10_000, 12_000, 11_000])
        #expect(e["cpuSeconds"] as? [Double] == [1.9, 1.6, 1.7])
        let unread = try #require(results.first {
            $0["scenario"] as? String == "memory-bulk" && $0["system"] as? String == "netstack"
        }?["efficiency"] as? [String: Any])
        #expect(unread["value"] == nil && unread["samples"] as? [Double] == [])
        #expect(try JSONDecoder().decode(BenchReport.self, from: Data(try report.json().utf8)) == report)
    }

    @Test func reportsFromBeforeTheCPUFiguresStillDecode() throws {
        let old = try sampleReport().json()
        #expect(!old.contains("efficiency"))
        let decoded = try JSONDecoder().decode(BenchReport.self, from: Data(old.utf8))
        #expect(decoded.results.allSatisfy { $0.efficiency == nil })
    }

    @Test func theHTMLPageHasTheCPURows() {
        let html = BenchHTML.render(sampleReportWithCPU())
        #expect(html.contains("<td>CPU-s/GB (lower is better)</td>"))
        #expect(html.contains("<td class=\"num\">5,500 (5,000–5,600)</td>"))
        #expect(html.contains("transactions/CPU-s (higher is better): 0.50</figcaption>"))
        #expect(html.components(separatedBy: "<svg ").count - 1 == 2, "still one chart per scenario")
    }
}
