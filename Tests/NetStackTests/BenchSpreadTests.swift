import Foundation
import Testing
@testable import NetStackApps

/// `netstack bench`'s spreads: the rounds' (max − min) / median, the
/// median's confidence interval, when a small-packet scenario gets extra
/// rounds, and where they show up (table, notes, JSON, HTML).
@Suite struct BenchSpreadTests {
    @Test func spreadIsTheRangeOverTheMedian() throws {
        #expect(abs(try #require(BenchSpread.of(median: 19_000, min: 18_000, max: 20_000)) - 2.0 / 19) < 1e-12)
        #expect(BenchSpread.of(median: 5, min: 5, max: 5) == 0)
        #expect(BenchSpread.of(median: 0, min: 0, max: 1) == nil, "no ratio to a zero median")
        #expect(BenchSpread.of(median: 1, min: 2, max: 1) == nil)
        #expect(BenchSpread.of(median: .nan, min: 0, max: 1) == nil)
        #expect(BenchSummary([10, 12, 8])?.spread == 0.4)
    }

    @Test func percentKeepsTwoDigits() {
        #expect(BenchSpread.percent(0.0842) == "8.4%")
        #expect(BenchSpread.percent(0.10526) == "11%")
        #expect(BenchSpread.percent(0.0996) == "10%")
        #expect(BenchSpread.percent(0) == "0.0%")
        #expect(BenchSpread.percent(1.5) == "150%")
        #expect(BenchSpread.percent(nil) == "—")
    }

    /// 1 − 2·P(Binomial(n, ½) ≤ k − 1), against values worked by hand.
    @Test func coverageOfOrderStatistics() {
        #expect(BenchSpread.coverage(n: 3, k: 1) == 0.75)
        #expect(BenchSpread.coverage(n: 5, k: 1) == 0.9375)
        #expect(BenchSpread.coverage(n: 5, k: 2) == 0.625)
        #expect(BenchSpread.coverage(n: 8, k: 2) == 1 - 18.0 / 256)
        #expect(BenchSpread.coverage(n: 11, k: 3) == 1 - 134.0 / 2048)
        #expect(BenchSpread.coverage(n: 3, k: 2) == 0, "the median alone")
        #expect(BenchSpread.coverage(n: 3, k: 3) == 0)
        #expect(BenchSpread.coverage(n: 0, k: 1) == 0)
        // Large counts neither overflow nor lose the sum.
        #expect(BenchSpread.coverage(n: 300, k: 136) > 0.9)
    }

    @Test func theIntervalNarrowsOnlyWhenTheRoundsAllowIt() throws {
        func interval(_ samples: [Double]) throws -> [Double] {
            let i = try #require(BenchSpread.medianInterval(samples))
            return [i.low, i.high]
        }
        // Up to 7 rounds only min–max holds the median 90% of the time.
        #expect(try interval([3, 1, 2]) == [1, 3])
        #expect(try interval([7, 1, 2, 3, 4, 5, 6]) == [1, 7])
        #expect(try interval([1]) == [1, 1])
        // 8 rounds: the 2nd smallest to the 2nd largest (92.97%).
        #expect(try interval([8, 1, 2, 3, 4, 5, 6, 7]) == [2, 7])
        #expect(try interval(Array(1...9).map(Double.init)) == [2, 8])
        // 11 rounds: the 3rd to the 9th (93.46%).
        #expect(try interval(Array(1...11).map(Double.init).reversed()) == [3, 9])
        #expect(BenchSpread.medianInterval([]) == nil)
        #expect(BenchSpread.medianInterval([1, .infinity]) == nil)
    }

    /// Why extra rounds are judged on the median's interval, not the range:
    /// more rounds only widen a range, but they narrow the median's interval.
    @Test func moreRoundsNarrowTheMedianNotTheRange() throws {
        let three: [Double] = [90, 110, 100]
        let twelve = three + [101, 99, 100, 102, 98, 100, 100, 101, 99]
        #expect(BenchSummary(three)?.spread == 0.2)
        #expect(BenchSummary(twelve)?.spread == 0.2)
        #expect(BenchSpread.ofMedian(three) == 0.2)
        #expect(BenchSpread.ofMedian(twelve) == 0.02)
        #expect(BenchSpread.ofMedian([]) == nil)
        #expect(BenchSpread.ofMedian([0, 0, 0]) == nil)
        #expect(BenchSpread.ofMedian([100]) == nil, "one round says nothing about the median")
        #expect(BenchSpread.ofMedian([100, 101]) == nil)
    }
}

@Suite struct BenchRoundPolicyTests {
    let noisy: [Double] = [90, 110, 100]
    let steady: [Double] = [99, 100, 101]

    @Test func theMaximumIsThreeTimesTheRoundsUnlessSaid() {
        #expect(BenchRoundPolicy(requested: 3).maximum == 36)
        #expect(BenchRoundPolicy(requested: 5, maximum: 7).maximum == 7)
        #expect(BenchRoundPolicy(requested: 5, maximum: 2).maximum == 5, "never fewer than asked for")
        #expect(BenchRoundPolicy(requested: 3).limit == 0.1)
    }

    @Test func anotherRoundOnlyWhileSomeMedianIsUnsteady() {
        let policy = BenchRoundPolicy(requested: 3, maximum: 9)
        #expect(policy.needsAnotherRound(roundsDone: 3, samples: [steady, steady]) == false)
        #expect(policy.needsAnotherRound(roundsDone: 3, samples: [noisy, steady]) == true)
        #expect(policy.needsAnotherRound(roundsDone: 3, samples: [steady, noisy]) == true)
        // Exactly at the limit is steady: "over 10%" asks for more.
        #expect(policy.needsAnotherRound(roundsDone: 3, samples: [[95, 100, 105]]) == false)
        // Not before the rounds asked for have run, never at the maximum.
        #expect(policy.needsAnotherRound(roundsDone: 2, samples: [noisy]) == false)
        #expect(policy.needsAnotherRound(roundsDone: 8, samples: [noisy]) == true)
        #expect(policy.needsAnotherRound(roundsDone: 9, samples: [noisy]) == false)
        #expect(BenchRoundPolicy(requested: 3, maximum: 3).needsAnotherRound(roundsDone: 3, samples: [noisy]) == false)
    }

    @Test func aSystemWhoseRoundsAllFailedAsksForNothing() {
        let policy = BenchRoundPolicy(requested: 3)
        #expect(policy.needsAnotherRound(roundsDone: 3, samples: [[], steady]) == false)
        #expect(policy.needsAnotherRound(roundsDone: 3, samples: [[], noisy]) == true)
        #expect(policy.unsteady([]) == false)
    }

    @Test func tooFewRoundsToTellAskForMore() {
        let policy = BenchRoundPolicy(requested: 1, maximum: 3)
        #expect(policy.maximum == 3)
        #expect(policy.needsAnotherRound(roundsDone: 1, samples: [[100], [50]]) == true)
        #expect(policy.needsAnotherRound(roundsDone: 2, samples: [[100, 100], [50, 50]]) == true)
        #expect(policy.needsAnotherRound(roundsDone: 3, samples: [[100, 100, 100], [50, 50, 50]]) == false)
        // Two of three rounds failed on one system: more rounds may give it a median.
        #expect(BenchRoundPolicy(requested: 3).needsAnotherRound(roundsDone: 3, samples: [steady, [100]]) == true)
    }

    /// The runner's loop in miniature: rounds come from a list until the
    /// policy stops asking; the scenario ends steady or at the maximum.
    @Test func extraRoundsStopOnceTheMedianSettles() {
        func run(_ feed: [Double], policy: BenchRoundPolicy) -> Int {
            var taken = Array(feed.prefix(policy.requested))
            while policy.needsAnotherRound(roundsDone: taken.count, samples: [taken, steady]) {
                taken.append(feed[taken.count])
            }
            return taken.count
        }
        let settling: [Double] = [90, 110, 100, 101, 99, 100, 102, 98, 100, 100, 101, 99, 100, 100, 100]
        // From 8 rounds the interval drops its extremes: 98–102, 4%.
        #expect(run(settling, policy: BenchRoundPolicy(requested: 3)) == 8)
        #expect(run(settling, policy: BenchRoundPolicy(requested: 3, maximum: 9)) == 8)
        #expect(run(settling, policy: BenchRoundPolicy(requested: 3, maximum: 5)) == 5)
        let wild: [Double] = [50, 150, 100, 60, 140, 70, 130, 80, 120]
        #expect(run(wild, policy: BenchRoundPolicy(requested: 3, maximum: 9)) == 9, "bounded: stops at the maximum")
    }
}

@Suite struct BenchSpreadReportTests {
    /// `sampleReport` as a run would leave it: tcp-rr steadied with 2 extra
    /// rounds (or unsteady after 6), memory-bulk at the rounds asked for.
    func report(steady: Bool = true) -> BenchReport {
        var r = sampleReport()
        let rounds: [BenchSystem: [Double]] = steady
            ? [.kernel: [18_800, 19_000, 19_500, 19_200, 18_900], .netstack: [9_400, 9_500, 9_700, 9_450, 9_600]]
            : [.kernel: [15_000, 23_000, 19_000, 16_000, 22_000, 17_000, 21_000, 18_000, 20_000],
               .netstack: [9_000, 9_800, 9_500, 9_400, 9_600, 9_500, 9_450, 9_550, 9_500]]
        for (i, result) in r.results.enumerated() where result.scenario == "tcp-rr" {
            r.results[i] = BenchResult(scenario: "tcp-rr", system: result.system, unit: result.unit,
                                       summary: BenchSummary(rounds[result.system]!)!)
        }
        r.scenarioRounds = [
            BenchRounds(scenario: "tcp-rr", rounds: steady ? 5 : 9, requested: 3, maximum: 9, limit: 0.1, steady: steady),
            BenchRounds(scenario: "memory-bulk", rounds: 3, requested: 3, maximum: 3),
        ]
        r.elapsedSeconds = 125.4
        return r
    }

    /// The spread column is the median's: with 9 rounds the 2nd to the 8th
    /// (32%), not the range (42%), which the figure's cell shows itself.
    @Test func theSpreadColumnIsTheMedians() throws {
        let row = try #require(BenchTable.rows(report(steady: false)).first { $0[0] == "tcp-rr" })
        #expect(row[2] == BenchFormat.figure(median: 19_000, min: 15_000, max: 23_000))
        #expect(row[3] == "32%")
        let five = try #require(BenchTable.rows(report()).first { $0[0] == "tcp-rr" })
        #expect(five[3] == "3.7%", "below 8 rounds the interval is the range")
    }

    @Test func theHeaderHasASpreadColumnPerSystem() {
        #expect(BenchTable.header == ["scenario", "unit", "kernel median (min–max)", "kernel spread",
                                      "netstack median (min–max)", "netstack spread", "netstack/kernel"])
    }

    @Test func jsonCarriesSpreadsRoundsAndTime() throws {
        let json = try #require(try JSONSerialization.jsonObject(with: Data(try report().json().utf8)) as? [String: Any])
        let results = try #require(json["results"] as? [[String: Any]])
        let rr = try #require(results.first { $0["scenario"] as? String == "tcp-rr" && $0["system"] as? String == "kernel" })
        #expect(abs(try #require(rr["spread"] as? Double) - 700.0 / 19_000) < 1e-12)
        #expect(abs(try #require(rr["medianSpread"] as? Double) - 700.0 / 19_000) < 1e-12, "5 rounds: the range")
        let wide = try #require(try report(steady: false).json().data(using: .utf8))
        let wideResults = try #require((try JSONSerialization.jsonObject(with: wide) as? [String: Any])?["results"]
            as? [[String: Any]])
        let rr9 = try #require(wideResults.first { $0["scenario"] as? String == "tcp-rr" && $0["system"] as? String == "kernel" })
        #expect(abs(try #require(rr9["spread"] as? Double) - 8_000.0 / 19_000) < 1e-12)
        #expect(abs(try #require(rr9["medianSpread"] as? Double) - 6_000.0 / 19_000) < 1e-12, "9 rounds: 2nd to 8th")
        let bulk = try #require(results.first { $0["scenario"] as? String == "memory-bulk" && $0["secondary"] != nil })
        #expect(abs(try #require((bulk["secondary"] as? [String: Any])?["spread"] as? Double) - 1.0 / 6.5) < 1e-12)
        let rounds = try #require(json["scenarioRounds"] as? [[String: Any]])
        #expect(rounds.count == 2)
        #expect(rounds[0]["rounds"] as? Int == 5 && rounds[0]["steady"] as? Bool == true)
        #expect(rounds[1]["limit"] == nil && rounds[1]["maximum"] as? Int == 3)
        #expect(json["elapsedSeconds"] as? Double == 125.4)
        #expect(try JSONDecoder().decode(BenchReport.self, from: Data(try report().json().utf8)) == report())
        let e = BenchEfficiency(unit: "transactions/CPU-s", lowerIsBetter: false, rounds: [(10, 1), (12, 1), (11, 1)])
        #expect(abs(try #require(e.spread) - 2.0 / 11) < 1e-12)
    }

    @Test func reportsFromBeforeSpreadsStillDecode() throws {
        var object = try #require(try JSONSerialization.jsonObject(with: Data(try report().json().utf8)) as? [String: Any])
        object["scenarioRounds"] = nil
        object["elapsedSeconds"] = nil
        object["results"] = (object["results"] as? [[String: Any]])?.map { r in
            var r = r
            r["spread"] = nil
            r["medianSpread"] = nil
            return r
        }
        let old = try JSONSerialization.data(withJSONObject: object)
        let decoded = try JSONDecoder().decode(BenchReport.self, from: old)
        #expect(decoded.scenarioRounds == nil && decoded.elapsedSeconds == nil)
        #expect(decoded.results.allSatisfy { $0.spread == nil && $0.medianSpread == nil })
        #expect(BenchTable.roundNotes(decoded).isEmpty)
        // The table works the spread out from the range either way.
        #expect(BenchTable.rows(decoded)[0][3] == "3.7%")
    }

    @Test func notesSayHowManyRoundsAndWhetherTheMedianSettled() {
        #expect(BenchTable.roundNotes(report()) == [
            "tcp-rr: median known to within 10% after 5 rounds, 2 beyond the 3 asked for "
                + "(median's spread: kernel 3.7%, netstack 3.2%)",
        ])
        #expect(BenchTable.roundNotes(report(steady: false)) == [
            "tcp-rr: median NOT known to within 10% after 9 rounds, 6 beyond the 3 asked for and the most allowed "
                + "(median's spread: kernel 32%, netstack 2.1%); compare its figures with care",
        ])
        var asked = report()
        asked.scenarioRounds?[0].rounds = 3
        #expect(BenchTable.roundNotes(asked)[0].hasPrefix("tcp-rr: median known to within 10% after the 3 round(s) asked for"))
    }

    @Test func theHTMLPageHasTheNotesAndTheTime() {
        let html = BenchHTML.render(report(steady: false))
        #expect(html.contains("<ul class=\"rounds\">\n<li>tcp-rr: median NOT known to within 10%"))
        #expect(html.contains("<th>kernel spread</th>"))
        #expect(html.contains("<td class=\"num\">32%</td>"), "the kernel's 9 rounds: the median's spread, 2nd to 8th")
        #expect(html.contains("<li>whole run: 2 min 05 s</li>"))
        #expect(html.contains("<li>duration: 5.00 s</li>"))
        var short = report()
        short.steadiedDuration = 1
        #expect(BenchHTML.render(short).contains("<li>duration: 5.00 s (small-packet scenarios: 1.00 s)</li>"))
        #expect(BenchFormat.elapsed(48.4) == "48 s")
    }
}
