import Foundation

/// How bench figures are written for people: enough digits to compare two
/// systems, no more (the machine's noise is larger than a third digit).
public enum BenchFormat {
    /// 3 significant digits below 1000 ("9.81", "0.342", "512"); whole
    /// numbers with comma thousands above ("18,234", "1,204,113").
    public static func number(_ x: Double) -> String {
        guard x.isFinite else { return "—" }
        let magnitude = abs(x)
        if magnitude >= 1000 { return grouped(Int64(x.rounded())) }
        if magnitude >= 100 { return String(format: "%.0f", x) }
        if magnitude >= 10 { return String(format: "%.1f", x) }
        if magnitude >= 1 { return String(format: "%.2f", x) }
        return String(format: "%.3f", x)
    }

    /// "median (min–max)".
    public static func figure(median: Double, min: Double, max: Double) -> String {
        "\(number(median)) (\(number(min))–\(number(max)))"
    }

    /// A netstack/kernel ratio, two decimals.
    public static func ratio(_ r: Double?) -> String {
        guard let r, r.isFinite else { return "—" }
        return String(format: "%.2f", r)
    }

    /// A report's round lengths: "5 s", or "5 s (small-packet scenarios: 1 s)".
    public static func durations(_ report: BenchReport) -> String {
        "\(number(report.duration)) s"
            + (report.steadiedDuration.map { " (small-packet scenarios: \(number($0)) s)" } ?? "")
    }

    /// A wall time: "48 s", "3 min 05 s".
    public static func elapsed(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "—" }
        let whole = Int(seconds.rounded())
        return whole < 60 ? "\(whole) s" : String(format: "%d min %02d s", whole / 60, whole % 60)
    }

    static func grouped(_ n: Int64) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
            out.append(c)
        }
        return n < 0 ? "-" + out : out
    }
}
