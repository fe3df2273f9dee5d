import Foundation

/// `netstack bench --report FILE.html`: one self-contained page (inline CSS
/// and SVG, no scripts, nothing fetched) with a bar chart per scenario (the
/// median as the bar, min–max as a whisker, both systems on one axis from
/// zero) and the same table the terminal shows, CPU efficiency rows included.
public enum BenchHTML {
    static let colors: [BenchSystem: String] = [.kernel: "#4e79a7", .netstack: "#e15759", .netstackPreload: "#f28e2b"]

    public static func render(_ report: BenchReport) -> String {
        let rounds = "\(report.rounds) asked for"
            + (report.scenarioRounds == nil ? "" : "; small-packet scenarios may run more, see under the table")
        var html = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <title>netstack bench</title>
            <style>
            body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
            .charts { display: flex; flex-wrap: wrap; gap: 1em; }
            figure { margin: 0; border: 1px solid #ddd; padding: 0.5em; }
            table { border-collapse: collapse; margin: 1em 0; }
            th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
            td.num { text-align: right; font-variant-numeric: tabular-nums; }
            svg text { font: 12px system-ui, sans-serif; fill: #222; }
            </style>
            </head>
            <body>
            <h1>netstack bench</h1>
            <p>Each scenario measured on the Linux kernel's TCP/IP stack and on netstack in the same run,
            the two alternating round by round. Bars are medians of the rounds (\(rounds));
            whiskers span min–max, and the spread columns give the median's spread (its 90% confidence interval over the median; min–max below 8 rounds).
            The CPU rows of the table divide the whole machine's busy CPU time over each measured interval
            (/proc/stat: both ends and anything else running) by the bytes or transactions moved in it.</p>

            """
        html += "<div class=\"charts\">\n"
        for scenario in report.scenarios {
            html += chart(report, scenario: scenario)
        }
        html += "</div>\n"
        html += table(report)
        let notes = BenchTable.roundNotes(report)
        if !notes.isEmpty {
            html += "<ul class=\"rounds\">\n" + notes.map { "<li>\(escape($0))</li>\n" }.joined() + "</ul>\n"
        }
        let m = report.machine
        html += "<h2>Machine</h2>\n<ul>\n"
        for (name, value) in [("CPU", m.cpu), ("cores", String(m.cores)), ("kernel", m.kernel), ("Swift", m.swift),
                              ("build", m.build), ("date", m.date),
                              ("kernel TCP congestion control", m.tcpCongestionControl ?? "unknown"),
                              ("rounds", String(report.rounds)), ("duration", BenchFormat.durations(report))] {
            html += "<li>\(escape(name)): \(escape(value))</li>\n"
        }
        if let family = m.family { html += "<li>IP family: \(escape(family))</li>\n" }
        if let pinning = m.pinning { html += "<li>CPUs: \(escape(pinning.summary))</li>\n" }
        if let elapsed = report.elapsedSeconds {
            html += "<li>whole run: \(escape(BenchFormat.elapsed(elapsed)))</li>\n"
        }
        html += "</ul>\n"
        if !report.failures.isEmpty {
            html += "<h2>Failed rounds</h2>\n<ul>\n"
            for f in report.failures { html += "<li>\(escape(f))</li>\n" }
            html += "</ul>\n"
        }
        html += "</body>\n</html>\n"
        return html
    }

    /// One scenario's chart: a bar per system with a min–max whisker.
    static func chart(_ report: BenchReport, scenario: String) -> String {
        let width = 340.0, height = 240.0
        let left = 64.0, right = 16.0, top = 36.0, bottom = 36.0
        let plotHeight = height - top - bottom
        let systems = report.measuredSystems
        let results = systems.map { report.result(scenario, $0) }
        let unit = results.compactMap { $0?.unit }.first ?? ""
        let highest = results.compactMap { $0?.max }.max() ?? 0
        let step = niceStep(highest > 0 ? highest / 4 : 1)
        let axisTop = max(step, (highest / step).rounded(.up) * step)
        func y(_ v: Double) -> Double { top + plotHeight * (1 - v / axisTop) }

        var svg = "<figure>\n<svg width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(escape(scenario))\">\n"
        svg += "<text x=\"\(left)\" y=\"18\" font-weight=\"bold\">\(escape(scenario)) (\(escape(unit)))</text>\n"
        var tick = 0.0
        while tick <= axisTop * 1.0001 {
            let ty = fmt(y(tick))
            svg += "<line x1=\"\(left)\" y1=\"\(ty)\" x2=\"\(fmt(width - right))\" y2=\"\(ty)\" stroke=\"#e5e5e5\"/>\n"
            svg += "<text x=\"\(fmt(left - 6))\" y=\"\(fmt(y(tick) + 4))\" text-anchor=\"end\">\(escape(tickLabel(tick, step: step)))</text>\n"
            tick += step
        }
        svg += "<line x1=\"\(left)\" y1=\"\(fmt(y(0)))\" x2=\"\(fmt(width - right))\" y2=\"\(fmt(y(0)))\" stroke=\"#888\"/>\n"
        let slot = (width - left - right) / Double(results.count)
        let barWidth = slot * 0.5
        for (i, system) in systems.enumerated() {
            let cx = left + slot * (Double(i) + 0.5)
            svg += "<text x=\"\(fmt(cx))\" y=\"\(fmt(height - bottom + 18))\" text-anchor=\"middle\">\(system.rawValue)</text>\n"
            guard let r = results[i] else {
                let gap = report.skipReason(scenario, system) == nil ? "failed" : "not run"
                svg += "<text x=\"\(fmt(cx))\" y=\"\(fmt(y(0) - 8))\" text-anchor=\"middle\">\(gap)</text>\n"
                continue
            }
            let label = BenchFormat.figure(median: r.value, min: r.min, max: r.max)
            svg += "<rect class=\"bar \(system.rawValue)\" x=\"\(fmt(cx - barWidth / 2))\" y=\"\(fmt(y(r.value)))\" width=\"\(fmt(barWidth))\" height=\"\(fmt(y(0) - y(r.value)))\" fill=\"\(colors[system]!)\"><title>\(system.rawValue): \(escape(label)) \(escape(r.unit))</title></rect>\n"
            let cap = barWidth / 4
            svg += "<g class=\"whisker\" stroke=\"#222\" stroke-width=\"1.5\">"
            svg += "<line x1=\"\(fmt(cx))\" y1=\"\(fmt(y(r.min)))\" x2=\"\(fmt(cx))\" y2=\"\(fmt(y(r.max)))\"/>"
            svg += "<line x1=\"\(fmt(cx - cap))\" y1=\"\(fmt(y(r.min)))\" x2=\"\(fmt(cx + cap))\" y2=\"\(fmt(y(r.min)))\"/>"
            svg += "<line x1=\"\(fmt(cx - cap))\" y1=\"\(fmt(y(r.max)))\" x2=\"\(fmt(cx + cap))\" y2=\"\(fmt(y(r.max)))\"/>"
            svg += "</g>\n"
            svg += "<text x=\"\(fmt(cx))\" y=\"\(fmt(y(r.max) - 6))\" text-anchor=\"middle\">\(escape(BenchFormat.number(r.value)))</text>\n"
        }
        svg += "</svg>\n"
        let others = systems.filter { $0 != .kernel }
        var caption = others.map { "\($0.rawValue)/kernel: \(BenchFormat.ratio(report.ratio(scenario, of: $0)))" }
            .joined(separator: ", ")
        if let label = results.compactMap({ $0?.efficiency?.label }).first {
            caption += "; \(label): " + others.map { BenchFormat.ratio(report.efficiencyRatio(scenario, of: $0)) }
                .joined(separator: ", ")
        }
        svg += "<figcaption>\(escape(caption))</figcaption>\n</figure>\n"
        return svg
    }

    static func table(_ report: BenchReport) -> String {
        var html = "<table>\n<tr>" + BenchTable.header(systems: report.measuredSystems).map { "<th>\(escape($0))</th>" }.joined() + "</tr>\n"
        for row in BenchTable.rows(report) {
            html += "<tr>" + row.enumerated().map { i, cell in
                i < 2 ? "<td>\(escape(cell))</td>" : "<td class=\"num\">\(escape(cell))</td>"
            }.joined() + "</tr>\n"
        }
        return html + "</table>\n"
    }

    /// The 1, 2 or 5 times a power of ten nearest above `raw`, so axis ticks
    /// fall on round numbers.
    static func niceStep(_ raw: Double) -> Double {
        guard raw > 0, raw.isFinite else { return 1 }
        var power = 1.0
        while power * 10 <= raw { power *= 10 }
        while power > raw { power /= 10 }
        for m in [1.0, 2.0, 5.0, 10.0] where m * power >= raw { return m * power }
        return 10 * power
    }

    /// An axis label with as many decimals as the step needs: 0, 5, 10 or 0, 0.5, 1.0.
    static func tickLabel(_ value: Double, step: Double) -> String {
        if step >= 1 { return BenchFormat.grouped(Int64(value.rounded())) }
        var decimals = 0
        var scaled = step
        while scaled < 1 && decimals < 6 {
            scaled *= 10
            decimals += 1
        }
        return String(format: "%.\(decimals)f", value)
    }

    static func fmt(_ x: Double) -> String {
        let r = (x * 10).rounded() / 10
        return r == r.rounded() ? String(Int(r)) : String(r)
    }

    public static func escape(_ text: String) -> String {
        var out = ""
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }
}
