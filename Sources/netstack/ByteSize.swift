/// A size on the command line, as iperf3 writes one: a number with an
/// optional K, M or G (powers of 1024, either case). nil if malformed or
/// too large for an Int. `netstack iperf -l/-w` and `netstack up
/// --memory-limit` and `--api-rings` take it.
enum ByteSize {
    static func parse(_ text: String) -> Int? {
        guard let last = text.last else { return nil }
        let multiplier: Int
        var digits = Substring(text)
        switch last {
        case "k", "K": multiplier = 1 << 10
        case "m", "M": multiplier = 1 << 20
        case "g", "G": multiplier = 1 << 30
        default: multiplier = 1
        }
        if multiplier != 1 { digits = digits.dropLast() }
        guard let n = Int(digits), n >= 0 else { return nil }
        let (product, overflow) = n.multipliedReportingOverflow(by: multiplier)
        return overflow ? nil : product
    }
}
