import ArgumentParser
import NetStack

/// The options group `up`, `get` and `iperf` share for tuning TCP (`--cc`,
/// `--no-sack`, `--no-rack`), applied over the stack's defaults. Not to be
/// confused with NetStackWire's `TCPOptions`, the options in a TCP header.
struct TCPTuning: ParsableArguments {
    @Option(help: ArgumentHelp("Congestion control for TCP connections (default: cubic).", valueName: "ALGORITHM"))
    var cc: CongestionAlgorithm?

    @Flag(help: "Do not offer SACK (RFC 2018) on TCP connections.")
    var noSack = false

    @Flag(help: "Turn RACK-TLP (RFC 8985) off: SACK recovery marks losses by RFC 6675's duplicate threshold alone.")
    var noRack = false

    @Option(help: ArgumentHelp("SYN cookies (RFC 4987) for listeners, as Linux's tcp_syncookies: 0 never, 1 once the SYN queue is full (default), 2 always.",
                               valueName: "0|1|2"))
    var syncookies: SYNCookieMode?

    /// The stack's defaults with these options applied.
    var configuration: TCPConfiguration {
        var tcp = TCPConfiguration()
        if let cc { tcp.congestionControl = cc }
        if noSack { tcp.sackPermitted = false }
        if noRack { tcp.rackTLP = false }
        if let syncookies { tcp.synCookies = syncookies }
        return tcp
    }
}

/// Parsed from its name, listed from its cases in `--help`.
extension CongestionAlgorithm: ExpressibleByArgument {}

/// `0`, `1` or `2`, as the sysctl.
extension SYNCookieMode: ExpressibleByArgument {
    public init?(argument: String) {
        guard let n = Int(argument), let mode = SYNCookieMode(rawValue: n) else { return nil }
        self = mode
    }

    public static var allValueStrings: [String] { allCases.map { String($0.rawValue) } }
}
