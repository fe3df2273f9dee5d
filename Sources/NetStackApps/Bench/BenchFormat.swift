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
