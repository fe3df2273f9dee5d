import ArgumentParser
import Foundation
import Logging
import NetStack
import NetStackApps
import NetStackWire
#if canImport(Glibc)
import Glibc
#endif

/// `netstack iperf -c HOST`: an iperf3 client on the stack, on its own TAP.
struct IPerf: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "iperf",
        abstract: "Run an iperf3 TCP test through the stack on a TAP.",
        usage: """
            netstack iperf -c <HOST> [<options>]
            --tap <NAME> --host <CIDR> --address <IP>
            """,
        discussion: """
            Creates a TAP device and speaks iperf3's protocol (3.x) as the client \
            against an iperf3 server: the stack opens the control connection and the \
            data streams itself, prints per-interval and final figures as iperf3 does \
            (or its JSON with -J), and exits 0 when the test completed, 1 when it did \
            not, 2 for bad flags.

            The fault and TCP options are `netstack up`'s: with a fault option the \
            stack's frames pass a seeded FaultInjector, and its counters go to stderr \
            at the end.

            SIGINT or SIGTERM ends the test as iperf3's client does (CLIENT_TERMINATE, \
            then its connections are reset); at the end, connections still closing get \
            up to --shutdown-grace seconds before they are reset, and a second signal \
            cuts that short.

            Examples:
              netstack iperf -c 10.0.0.1 -t 5 -R \\
                  --tap tap1 --host 10.0.0.1/24 --address 10.0.0.2
              netstack iperf -c 10.0.0.1 --loss 0.01 --seed 3 --cc newreno ...
            """
    )

    @Option(name: [.customShort("c"), .customLong("client")],
            help: ArgumentHelp("The server's IPv4 or IPv6 address (no names are resolved).", valueName: "HOST"))
    var client: String

    @Option(name: [.customShort("p"), .customLong("port")], help: ArgumentHelp("The server's port.", valueName: "PORT"))
    var port: Int = 5201

    @Option(name: [.customShort("t"), .customLong("time")], help: ArgumentHelp("Seconds to transmit for.", valueName: "S"))
    var time: Int = 10

    @Flag(name: [.customShort("R"), .customLong("reverse")], help: "Reverse mode: the server sends, the stack receives.")
    var reverse = false

    @Option(name: [.customShort("P"), .customLong("parallel")], help: ArgumentHelp("Parallel data streams.", valueName: "N"))
    var parallel: Int = 1

    @Flag(name: [.customShort("J"), .customLong("json")], help: "Print iperf3's JSON result instead of text.")
    var json = false

    @Option(name: [.customShort("l"), .customLong("length")],
            help: ArgumentHelp("Block size: the server's write size in reverse mode (K and M suffixes are 1024-based).",
                               valueName: "LEN"))
    var length: String = "128K"

    @Option(name: [.customShort("w"), .customLong("window")],
            help: ArgumentHelp("The stack's send and receive ring per data stream, rounded up to a power of two (default: the stack's 256K).",
                               valueName: "SIZE"))
    var window: String?

    @Option(name: [.customShort("i"), .customLong("interval")],
            help: ArgumentHelp("Seconds between interval reports.", valueName: "S"))
    var interval: Double = 1

    @OptionGroup var link: LinkOptions

    @OptionGroup(title: "Fault injection") var faults: FaultOptions

    @OptionGroup(title: "TCP") var tcpOptions: TCPTuning

    @OptionGroup(title: "Shutdown") var shutdown: ShutdownOptions

    @Option(help: ArgumentHelp("Write every frame in and out to this pcap file.", valueName: "FILE"))
    var pcap: String?

    @Option(help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error, critical.", valueName: "LEVEL"))
    var logLevel: String = "warning"

    @Flag(help: "Print the stack's counters (as `netstack up` does on exit) to stderr at the end.")
    var stats = false

    struct Settings {
        var link: LinkOptions.Settings
        var options: IPerf3Client.Options
        var logLevel: Logger.Level
        var faults: FaultOptions.Settings?
        var grace: Duration
    }

    func validate() throws {
        _ = try settings()
    }

    func settings() throws -> Settings {
        let linkSettings = try link.settings()
        guard let server = IPAddress(client) else {
            throw ValidationError("-c '\(client)': expected an IPv4 or IPv6 address such as 10.0.0.1 or fd00::1")
        }
        guard connectable(server, from: linkSettings.interface) else {
            throw ValidationError("-c \(client): cannot be connected to from this stack (IPv6 needs --address6)")
        }
        guard (1...65535).contains(port) else { throw ValidationError("-p \(port): expected a port from 1 to 65535") }
        guard (1...86400).contains(time) else { throw ValidationError("-t \(time): expected 1 to 86400 seconds") }
        guard (1...128).contains(parallel) else { throw ValidationError("-P \(parallel): expected 1 to 128 streams") }
        // iperf3's MAX_BLOCKSIZE for TCP is 1 MiB.
        guard let len = ByteSize.parse(length), (1...(1 << 20)).contains(len) else {
            throw ValidationError("-l '\(length)': expected a block size from 1 byte to 1M")
        }
        var windowSize: Int?
        if let window {
            guard let w = ByteSize.parse(window), (4096...(256 << 20)).contains(w) else {
                throw ValidationError("-w '\(window)': expected a size from 4K to 256M")
            }
            windowSize = w
        }
        guard interval.isFinite, interval >= 0.1, interval <= 60 else {
            throw ValidationError("-i \(interval): expected 0.1 to 60 seconds")
        }
        var options = IPerf3Client.Options(server: server)
        options.port = UInt16(port)
        options.duration = .seconds(time)
        options.reverse = reverse
        options.parallel = parallel
        options.length = len
        options.window = windowSize
        options.interval = .nanoseconds(Int64(interval * 1e9))
        return Settings(link: linkSettings, options: options, logLevel: try LinkOptions.logLevel(logLevel),
                        faults: try faults.settings(), grace: try shutdown.grace())
    }

    func run() throws {
        let s = try settings()
        LinkOptions.bootstrapLogging(level: s.logLevel)
        signal(SIGPIPE, SIG_IGN)
        try runOnTAP(link: s.link, pcap: pcap, faults: s.faults, tcp: tcpOptions.configuration) { loop, tap in
            defer { Self.reportFaults(tap.faultReport()) }
            try test(on: loop, settings: s)
        }
    }

    func test(on loop: any StackLoop, settings s: Settings) throws {
        let clock = loop.clock
        // Intervals and the test's end are timed from the loop's turns.
        loop.maximumSleep = .milliseconds(5)
        var context = IPerf3Report.Context(host: client)
        context.systemInfo = Self.systemInfo()

        // Let the kernel's side settle and hear our gratuitous ARP before the SYN goes out.
        loop.announce()
        let settle = clock.now + .milliseconds(20)
        loop.run(until: { clock.now >= settle || stopRequested.load(ordering: .relaxed) })

        let iperf = IPerf3Client(options: s.options, clock: clock)
        if !json {
            for line in IPerf3Report.connecting(host: client, port: s.options.port, reverse: reverse) {
                Console.line(line)
            }
            iperf.onEvent = { event in
                switch event {
                case .streamConnected(let stream): Console.line(IPerf3Report.connected(stream))
                case .started: Console.line(IPerf3Report.intervalHeader(reverse: s.options.reverse))
                case .interval(let i):
                    for line in IPerf3Report.intervalLines(i, reverse: s.options.reverse, first: i.start == 0) {
                        Console.line(line)
                    }
                case .finished: break
                }
            }
        }
        context.time = Date()
        do {
            try iperf.start(on: loop.stack)
        } catch {
            report(iperf, context: context, failure: "unable to connect to server: \(error)")
            throw ExitCode(1)
        }
        loop.onTurn.append { now in iperf.turn(now: now) }
        loop.run(until: {
            iperf.phase == .done || iperf.phase == .failed || stopRequested.load(ordering: .relaxed)
        })
        if iperf.phase != .done && iperf.phase != .failed {
            iperf.abort(reason: "interrupt - the client has terminated")
        }
        // Our FINs (or resets) out and answered, for up to the grace period
        // or until a second signal; then whatever is left is reset.
        let linger = clock.now + s.grace
        loop.run(until: { iperf.isFinished || clock.now >= linger || immediateStopRequested })
        resetRemaining(loop)
        report(iperf, context: context, failure: iperf.failure)
        if stats {
            Console.error("netstack iperf: " + loop.stack.counterReport.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
        }
        if !iperf.succeeded { throw ExitCode(1) }
    }

    func report(_ iperf: IPerf3Client, context: IPerf3Report.Context, failure: String?) {
        if json {
            Console.line(IPerf3Report.json(client: iperf, context: context, error: failure))
            return
        }
        if let failure {
            Console.error("netstack iperf: error - \(failure)")
        } else if let summary = IPerf3Summary(client: iperf) {
            for line in IPerf3Report.summaryLines(summary) { Console.line(line) }
        }
    }

    /// What a FaultInjector did, to stderr (stdout stays iperf3's, JSON included).
    static func reportFaults(_ report: [(String, UInt64)]) {
        guard !report.isEmpty else { return }
        Console.error("netstack iperf: " + report.map { "\($0.0)=\($0.1)" }.joined(separator: " "))
    }

    /// uname's fields, as iperf3's system_info.
    static func systemInfo() -> String {
        var u = utsname()
        guard uname(&u) == 0 else { return "" }
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        return [field(u.sysname), field(u.nodename), field(u.release), field(u.version), field(u.machine)]
            .joined(separator: " ")
    }
}
