import Foundation
import Testing
@testable import NetStackApps

/// `netstack bench`'s summaries and reports: the median and range of the
/// rounds, the JSON it writes, the closing table and the HTML page.
@Suite struct BenchSummaryTests {
    @Test func oddCountTakesTheMiddleSample() throws {
        let s = try #require(BenchSummary([9.0, 1.5, 4.0, 12.0, 3.0]))
        #expect(s.median == 4.0)
        #expect(s.min == 1.5)
        #expect(s.max == 12.0)
        // The rounds stay in the order measured.
        #expect(s.samples == [9.0, 1.5, 4.0, 12.0, 3.0])
    }

    @Test func evenCountAveragesTheMiddleTwo() throws {
        let s = try #require(BenchSummary([10, 2, 8, 4]))
        #expect(s.median == 6)
        #expect(s.min == 2)
        #expect(s.max == 10)
    }

    @Test func oneSampleIsItsOwnRange() throws {
        let s = try #require(BenchSummary([7.25]))
        #expect(s.median == 7.25 && s.min == 7.25 && s.max == 7.25)
    }

    @Test func anOutlierMovesTheRangeNotTheMedian() throws {
        let s = try #require(BenchSummary([5, 5.1, 0.2, 4.9, 5.2]))
        #expect(s.median == 5)
        #expect(s.min == 0.2)
    }

    @Test func noSamplesOrNonFiniteOnesGiveNoSummary() {
        #expect(BenchSummary([]) == nil)
        #expect(BenchSummary([1, .nan, 3]) == nil)
        #expect(BenchSummary([.infinity]) == nil)
    }
}

/// A report as a run with two scenarios would make, memory-bulk's packets
/// per second included.
func sampleReport(cpu: String = "Test CPU", failures: [String] = []) -> BenchReport {
    func result(_ scenario: String, _ system: BenchSystem, _ unit: String, _ samples: [Double],
                secondary: [Double]? = nil) -> BenchResult {
        BenchResult(scenario: scenario, system: system, unit: unit, summary: BenchSummary(samples)!,
                    secondary: secondary.map { BenchFigure(unit: "packets/s", summary: BenchSummary($0)!) })
    }
    return BenchReport(
        results: [
            result("tcp-rr", .kernel, "transactions/s", [18_000, 20_000, 19_000]),
            result("tcp-rr", .netstack, "transactions/s", [9_000, 9_800, 9_500]),
            result("memory-bulk", .kernel, "Gbit/s", [30, 26, 28]),
            result("memory-bulk", .netstack, "Gbit/s", [7, 8, 7.5], secondary: [600_000, 700_000, 650_000]),
        ],
        machine: BenchMachine(cpu: cpu, cores: 2, kernel: "Linux 6.18", swift: "Swift version 6.3.1",
                              date: "2026-01-02T03:04:05Z", build: "release"),
        rounds: 3, duration: 5, failures: failures)
}

@Suite struct BenchJSONTests {
    func parsed(_ report: BenchReport) throws -> [String: Any] {
        let text = try report.json()
        return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test func resultsCarryScenarioSystemValueUnitAndRange() throws {
        let json = try parsed(sampleReport())
        let results = try #require(json["results"] as? [[String: Any]])
        #expect(results.count == 4)
        for r in results {
            for key in ["scenario", "system", "value", "unit", "min", "max"] {
                #expect(r[key] != nil, "missing \(key) in \(r)")
            }
            let system = try #require(r["system"] as? String)
            #expect(system == "kernel" || system == "netstack")
            let value = try #require(r["value"] as? Double)
            let min = try #require(r["min"] as? Double)
            let max = try #require(r["max"] as? Double)
            #expect(min <= value && value <= max)
        }
        let rr = try #require(results.first { $0["scenario"] as? String == "tcp-rr" && $0["system"] as? String == "netstack" })
        #expect(rr["value"] as? Double == 9_500)
        #expect(rr["min"] as? Double == 9_000)
        #expect(rr["max"] as? Double == 9_800)
        #expect(rr["unit"] as? String == "transactions/s")
        #expect(rr["samples"] as? [Double] == [9_000, 9_800, 9_500])
    }

    @Test func theSecondaryFigureAppearsOnlyWhereMeasured() throws {
        let results = try #require(try parsed(sampleReport())["results"] as? [[String: Any]])
        let withSecondary = results.filter { $0["secondary"] != nil }
        #expect(withSecondary.count == 1)
        let secondary = try #require(withSecondary.first?["secondary"] as? [String: Any])
        #expect(withSecondary.first?["scenario"] as? String == "memory-bulk")
        #expect(secondary["unit"] as? String == "packets/s")
        #expect(secondary["value"] as? Double == 650_000)
    }

    @Test func machineDescribesTheRun() throws {
        let json = try parsed(sampleReport())
        let machine = try #require(json["machine"] as? [String: Any])
        #expect(machine["cpu"] as? String == "Test CPU")
        #expect(machine["cores"] as? Int == 2)
        #expect(machine["kernel"] as? String == "Linux 6.18")
        #expect(machine["swift"] as? String == "Swift version 6.3.1")
        #expect(machine["date"] as? String == "2026-01-02T03:04:05Z")
        #expect(json["rounds"] as? Int == 3)
    }

    @Test func machineNamesTheKernelsCongestionControl() throws {
        var report = sampleReport()
        report.machine.tcpCongestionControl = "cubic"
        let machine = try #require(try parsed(report)["machine"] as? [String: Any])
        #expect(machine["tcpCongestionControl"] as? String == "cubic")
        #expect(report.machine.summary
            == "Test CPU, 2 cores, Linux 6.18, Swift version 6.3.1, release build, 2026-01-02T03:04:05Z, "
            + "kernel TCP congestion control: cubic")
        #expect(BenchHTML.render(report).contains("<li>kernel TCP congestion control: cubic</li>"))
        // Unread (or a report from before it was recorded): said, not guessed.
        #expect(sampleReport().machine.summary.hasSuffix("kernel TCP congestion control: unknown"))
        let old = try sampleReport().json()
        #expect(!old.contains("tcpCongestionControl"))
        #expect(try JSONDecoder().decode(BenchReport.self, from: Data(old.utf8)).machine.tcpCongestionControl == nil)
    }

    @Test func machineNamesTheIPFamily() throws {
        var report = sampleReport()
        report.machine.family = "IPv6"
        let machine = try #require(try parsed(report)["machine"] as? [String: Any])
        #expect(machine["family"] as? String == "IPv6")
        #expect(report.machine.summary.contains(", over IPv6, kernel TCP congestion control: unknown"))
        #expect(BenchHTML.render(report).contains("<li>IP family: IPv6</li>"))
        // Reports from before --family were all IPv4 and say nothing.
        #expect(!sampleReport().machine.summary.contains("over IPv"))
        let old = try sampleReport().json()
        #expect(try JSONDecoder().decode(BenchReport.self, from: Data(old.utf8)).machine.family == nil)
    }

    @Test func roundTripsThroughDecoding() throws {
        var report = sampleReport(failures: ["round 2/3 tcp-rr netstack: timed out"])
        report.machine.tcpCongestionControl = "kernel peer: cubic, kernel server: bbr, netstack's peer: cubic"
        let decoded = try JSONDecoder().decode(BenchReport.self, from: Data(try report.json().utf8))
        #expect(decoded == report)
    }
}

@Suite struct BenchTableTests {
    @Test func oneRowPerScenarioWithTheRatio() {
        let rows = BenchTable.rows(sampleReport())
        #expect(rows.count == 3)
        #expect(rows[0] == ["tcp-rr", "transactions/s", "19,000 (18,000–20,000)", "11%", "9,500 (9,000–9,800)", "8.4%",
                            "0.50"])
        #expect(rows[1] == ["memory-bulk", "Gbit/s", "28.0 (26.0–30.0)", "14%", "7.50 (7.00–8.00)", "13%", "0.27"])
        #expect(rows[2] == ["memory-bulk", "packets/s", "—", "—", "650,000 (600,000–700,000)", "15%", "—"])
    }

    @Test func aSystemWithNoFigureShowsFailed() {
        var report = sampleReport()
        report.results.removeAll { $0.scenario == "tcp-rr" && $0.system == .netstack }
        #expect(BenchTable.rows(report)[0]
            == ["tcp-rr", "transactions/s", "19,000 (18,000–20,000)", "11%", "failed", "—", "—"])
    }

    @Test func renderedColumnsLineUp() {
        let lines = BenchTable.render(sampleReport()).split(separator: "\n")
        #expect(lines.count == 5)
        #expect(lines[0].hasPrefix("| scenario"))
        #expect(Set(lines.map(\.count)).count == 1, "every line as wide as the header")
    }

    @Test func numbersKeepThreeSignificantDigits() {
        #expect(BenchFormat.number(9.8123) == "9.81")
        #expect(BenchFormat.number(0.34201) == "0.342")
        #expect(BenchFormat.number(14.04) == "14.0")
        #expect(BenchFormat.number(512.4) == "512")
        #expect(BenchFormat.number(1_204_113.4) == "1,204,113")
        #expect(BenchFormat.number(.nan) == "—")
    }
}

@Suite struct BenchHTMLTests {
    @Test func oneChartPerScenarioAndNothingExternal() {
        let html = BenchHTML.render(sampleReport())
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(html.components(separatedBy: "<svg ").count - 1 == 2)
        #expect(!html.contains("<script"))
        #expect(!html.contains("http://") && !html.contains("https://"))
        #expect(!html.contains("src=") && !html.contains("<link"))
    }

    /// Bars are drawn to scale from zero: netstack's bar over the kernel's is
    /// the ratio of the medians, and the whisker spans min to max.
    @Test func barsAreToScale() throws {
        let html = BenchHTML.render(sampleReport())
        let chart = try #require(html.components(separatedBy: "<figure>").first { $0.contains("tcp-rr") })
        func height(_ system: String) throws -> Double {
            let rect = try #require(chart.components(separatedBy: "<rect class=\"bar \(system)\"").dropFirst().first)
            let value = try #require(rect.components(separatedBy: "height=\"").dropFirst().first?.prefix { $0 != "\"" })
            return try #require(Double(value))
        }
        let ratio = try height("netstack") / height("kernel")
        #expect(abs(ratio - 9_500.0 / 19_000.0) < 0.01)
        #expect(chart.contains("class=\"whisker\""))
    }

    @Test func theTableAndMachineAreOnThePage() {
        let html = BenchHTML.render(sampleReport(cpu: "Fast <CPU> & co", failures: ["round 1/3 tcp-rr netstack: boom"]))
        #expect(html.contains("<td class=\"num\">9,500 (9,000–9,800)</td>"))
        #expect(html.contains("<td class=\"num\">0.50</td>"))
        #expect(html.contains("Fast &lt;CPU&gt; &amp; co"))
        #expect(!html.contains("<CPU>"))
        #expect(html.contains("round 1/3 tcp-rr netstack: boom"))
    }

    @Test func aFailedSystemIsLabelledNotDrawn() throws {
        var report = sampleReport()
        report.results.removeAll { $0.scenario == "tcp-rr" && $0.system == .netstack }
        let html = BenchHTML.render(report)
        let chart = try #require(html.components(separatedBy: "<figure>").first { $0.contains("tcp-rr") })
        #expect(!chart.contains("class=\"bar netstack\""))
        #expect(chart.contains(">failed</text>"))
    }

    @Test func axisStepsAreRound() {
        #expect(BenchHTML.niceStep(0.7) == 1)
        #expect(BenchHTML.niceStep(1.3) == 2)
        #expect(BenchHTML.niceStep(3.1) == 5)
        #expect(BenchHTML.niceStep(4_750) == 5_000)
        #expect(BenchHTML.niceStep(0.013) == 0.02)
    }

    @Test func labelsCarryTheStepsDecimals() {
        #expect(BenchHTML.tickLabel(0, step: 5) == "0")
        #expect(BenchHTML.tickLabel(20_000, step: 20_000) == "20,000")
        #expect(BenchHTML.tickLabel(1.5, step: 0.5) == "1.5")
        #expect(BenchHTML.tickLabel(0, step: 0.5) == "0.0")
        #expect(BenchHTML.tickLabel(0.04, step: 0.02) == "0.04")
    }
}

/// A third system, netstack-preload: its columns and ratio follow the other
/// two, and a scenario it does not run reads "—", not "failed".
@Suite struct BenchThreeSystemsTests {
    static func report() -> BenchReport {
        var r = sampleReport()
        r.results.append(BenchResult(scenario: "tcp-rr", system: .netstackPreload, unit: "transactions/s",
                                     summary: BenchSummary([4_000, 5_000, 4_750])!))
        r.systems = [.kernel, .netstack, .netstackPreload]
        r.skipped = [BenchSkip(scenario: "memory-bulk", system: .netstackPreload, reason: "in-process only")]
        return r
    }

    @Test func tableHasColumnsAndARatioForEachSystem() throws {
        let r = Self.report()
        #expect(BenchTable.header(systems: r.measuredSystems) == [
            "scenario", "unit", "kernel median (min–max)", "kernel spread", "netstack median (min–max)",
            "netstack spread", "netstack-preload median (min–max)", "netstack-preload spread", "netstack/kernel",
            "netstack-preload/kernel"])
        let rows = BenchTable.rows(r)
        let rr = try #require(rows.first { $0[0] == "tcp-rr" })
        #expect(rr.count == 10)
        #expect(rr[6] == "4,750 (4,000–5,000)" && rr[9] == BenchFormat.ratio(4_750.0 / 19_000))
        let bulk = try #require(rows.first { $0[0] == "memory-bulk" && $0[1] == "Gbit/s" })
        #expect(bulk[6] == "—" && bulk[9] == BenchFormat.ratio(nil))
        // Without the skip it would be a failure.
        var failed = r
        failed.skipped = nil
        #expect(try #require(BenchTable.rows(failed).first { $0[0] == "memory-bulk" })[6] == "failed")
        #expect(BenchTable.render(r).contains("netstack-preload/kernel"))
    }

    @Test func reportsRoundTripAndOldOnesMeanTwoSystems() throws {
        let r = Self.report()
        let back = try JSONDecoder().decode(BenchReport.self, from: Data(try r.json().utf8))
        #expect(back == r && back.skipReason("memory-bulk", .netstackPreload) == "in-process only")
        #expect(sampleReport().measuredSystems == [.kernel, .netstack])
        let html = BenchHTML.render(r)
        #expect(html.contains("netstack-preload/kernel") && html.contains("not run"))
    }
}
