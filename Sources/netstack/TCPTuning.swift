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

    /// The stack's defaults with these options applied.
    var configuration: TCPConfiguration {
        var tcp = TCPConfiguration()
        if let cc { tcp.congestionControl = cc }
        if noSack { tcp.sackPermitted = false }
        if noRack { tcp.rackTLP = false }
        return tcp
    }
}

/// Parsed from its name, listed from its cases in `--help`.
extension CongestionAlgorithm: ExpressibleByArgument {}
