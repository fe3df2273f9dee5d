import ArgumentParser

/// `netstack bench-peer ...` (hidden): the pieces of `netstack bench` that
/// must run inside a network namespace. The bench re-executes its own binary
/// with `ip netns exec NS /proc/self/exe bench-peer ...`, so the load
/// generators and the kernel echo server ship with the tool. Each client
/// prints one line, `result value=V [key=V ...]`, for the bench to parse;
/// `cpu=` is the machine's busy CPU-seconds over the timed loop, left out
/// when /proc/stat could not be read.
struct BenchPeer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-peer",
        abstract: "Load generators and servers for netstack bench (internal).",
        shouldDisplay: false,
        subcommands: [EchoServer.self, TCPRR.self, UDPPPS.self, MemoryBulkCommand.self]
    )

    /// Prints the result line with `cpu=` appended when there is a reading.
    static func report(_ fields: [(String, Double)], cpuSeconds: Double?) {
        report(fields + (cpuSeconds.map { [("cpu", $0)] } ?? []))
    }

    /// Prints the result line the bench reads.
    static func report(_ fields: [(String, Double)]) {
        Console.line("result " + fields.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
    }

    struct EchoServer: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "echo-server", abstract: "Kernel TCP and UDP echo server (RFC 862).",
            usage: "netstack bench-peer echo-server --host <host> [<options>]")
        @Option var host: String
        @Option var port: UInt16 = 7
        @Option(help: "Exit after this many seconds even if not stopped.") var lifetime: Double = 3600

        func run() throws {
            try KernelEchoServer.run(host: host, port: port, lifetime: lifetime)
        }
    }

    struct TCPRR: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "tcp-rr", abstract: "1-byte request/response transactions on one TCP connection.",
            usage: "netstack bench-peer tcp-rr [<options>]\n--host <host> --duration <duration>")
        @Option var host: String
        @Option var port: UInt16 = 7
        @Option var duration: Double
        @Option var max: Int = 50_000_000

        func run() throws {
            let o = try LoadGenerator.tcpRR(host: host, port: port, duration: duration, maxTransactions: max)
            BenchPeer.report([("value", o.rate), ("transactions", Double(o.completed)), ("seconds", o.seconds)],
                             cpuSeconds: o.cpuSeconds)
        }
    }

    struct UDPPPS: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "udp-pps", abstract: "UDP datagrams echoed per second, a bounded window in flight.",
            usage: "netstack bench-peer udp-pps [<options>]\n--host <host> --duration <duration>")
        @Option var host: String
        @Option var port: UInt16 = 7
        @Option var duration: Double
        @Option var window: Int = 32
        @Option var size: Int = 64
        @Option var max: Int = 100_000_000
        @Option(help: "Seconds without an echo after which the window counts as lost.") var lossTimeout: Double = 0.1

        func validate() throws {
            guard (8...1472).contains(size) else { throw ValidationError("--size: 8 to 1472 bytes") }
            guard (1...4096).contains(window) else { throw ValidationError("--window: 1 to 4096") }
        }

        func run() throws {
            let o = try LoadGenerator.udpPPS(host: host, port: port, duration: duration, window: window, size: size,
                                             maxDatagrams: max, lossTimeout: lossTimeout)
            BenchPeer.report([("value", o.rate), ("echoes", Double(o.completed)), ("lost", Double(o.lost)),
                              ("seconds", o.seconds)], cpuSeconds: o.cpuSeconds)
        }
    }

    struct MemoryBulkCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "memory-bulk", abstract: "One TCP stream inside this process: two netstacks or kernel loopback.")
        @Option var system: String
        @Option var duration: Double
        @Option var offload: LinkOptions.Switch = .on
        @Option var family: BenchFamily = .ipv4

        func validate() throws {
            guard ["kernel", "netstack"].contains(system) else { throw ValidationError("--system: kernel or netstack") }
        }

        func run() throws {
            let o = system == "kernel" ? try MemoryBulk.kernelLoopback(duration: duration, family: family)
                                       : try MemoryBulk.netstack(duration: duration, offload: offload == .on,
                                                                 family: family)
            var fields = [("value", o.bitsPerSecond / 1e9), ("bytes", Double(o.bytes))]
            if let pps = o.packetsPerSecond { fields.append(("packets", pps)) }
            if let c = o.copiesPerByte {
                fields.append(("copies-per-byte-sent", c.sent))
                fields.append(("copies-per-byte-received", c.received))
            }
            BenchPeer.report(fields, cpuSeconds: o.cpuSeconds)
        }
    }
}
