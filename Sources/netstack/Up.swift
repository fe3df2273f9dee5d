import ArgumentParser
import Logging
import NetStack
import NetStackApps
import NetStackWire
#if canImport(Glibc)
import Glibc
#endif

/// `netstack up`: bring the stack up on a new TAP device and serve until a signal.
struct Up: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a TAP device and run the stack on it until SIGINT or SIGTERM.",
        discussion: """
            Prints 'ready NAME IP MAC' once the stack answers, and its counters on exit.
            Example: netstack up --tap tap0 --host 10.0.0.1/24 --address 10.0.0.2 --serve echo:7
            """
    )

    @OptionGroup var link: LinkOptions

    @Option(help: "Services to run, comma separated: echo[:PORT], discard[:PORT], chargen[:PORT], http[:PORT].")
    var serve: String?

    @Option(help: ArgumentHelp("Directory whose files the http service serves (besides /bytes/N).", valueName: "DIR"))
    var root: String?

    @Option(help: ArgumentHelp("Maximum segment lifetime in seconds for TCP connections (TIME-WAIT lasts twice this; default 30).",
                               valueName: "SECONDS", visibility: .hidden))
    var msl: Double?

    @Option(help: "Write every frame in and out to this pcap file.")
    var pcap: String?

    @Flag(help: "Print the counters to stderr every second while running.")
    var stats = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    /// The parsed, checked form of the options.
    struct Settings {
        var link: LinkOptions.Settings
        var services: [ServiceSpec]
        var options: ServiceOptions
        var tcp: TCPConfiguration
        var logLevel: Logger.Level
    }

    func validate() throws {
        _ = try settings()
    }

    func settings() throws -> Settings {
        let linkSettings = try link.settings()
        var services: [ServiceSpec] = []
        if let serve {
            switch ServiceSpec.parseList(serve) {
            case .success(let s): services = s
            case .failure(let e): throw ValidationError("--serve: \(e)")
            }
        }
        var options = ServiceOptions()
        if let root {
            var st = stat()
            guard stat(root, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else {
                throw ValidationError("--root '\(root)': not a directory")
            }
            options.root = root
        }
        var tcp = TCPConfiguration()
        if let msl {
            guard msl.isFinite, msl > 0, msl <= 3600 else {
                throw ValidationError("--msl \(msl): expected seconds in (0, 3600]")
            }
            tcp.msl = .nanoseconds(Int64(msl * 1e9))
        }
        let level = try LinkOptions.logLevel(logLevel)
        return Settings(link: linkSettings, services: services, options: options, tcp: tcp, logLevel: level)
    }

    func run() throws {
        let s = try settings()
        LinkOptions.bootstrapLogging(level: s.logLevel)
        try runOnTAP(link: s.link, pcap: pcap, Body(up: self, settings: s))
    }

    private struct Body: StackBody {
        let up: Up
        let settings: Settings
        func run<D: Device>(on device: D, clock: MonotonicClock) throws {
            try up.serve(on: device, settings: settings, clock: clock)
        }
    }

    /// Runs the stack on `device` until a stop signal. Generic, so the loop is
    /// specialised for the device in use.
    func serve<D: Device>(on device: D, settings s: Settings, clock: MonotonicClock) throws {
        let interface = Interface(device: device, configuration: s.link.interface, now: clock.now,
                                  logger: Logger(label: "netstack"))
        interface.defaultTCPConfiguration = s.tcp
        var serviceCounters: [ServiceCounters] = []
        for service in s.services {
            do {
                if let c = try service.install(on: interface, clock: clock, options: s.options) {
                    serviceCounters.append(c)
                }
            } catch {
                Console.error("netstack: cannot start \(service): \(error)")
                throw ExitCode(1)
            }
        }
        let loop = EventLoop(interface: interface, clock: clock)
        interface.announce()
        Console.line("ready \(link.tap) \(interface.address) \(interface.macAddress)")

        var nextStats = clock.now + .seconds(1)
        if stats {
            loop.onTurn.append { now in
                guard now >= nextStats else { return }
                nextStats = now + .seconds(1)
                let report = interface.counters.report + Self.tcpTableReport(interface)
                    + serviceCounters.flatMap { $0.report() }
                let line = report.map { "\($0.0)=\($0.1)" }.joined(separator: " ")
                Console.error("stats \(line)")
            }
        }
        loop.run(until: { stopRequested.load(ordering: .relaxed) })

        for (name, value) in interface.counters.report + Self.tcpTableReport(interface)
            + serviceCounters.flatMap({ $0.report() }) {
            Console.line("\(name) \(value)")
        }
    }

    /// Connections still in the TCP table, in all and in the states worth watching.
    static func tcpTableReport<D: Device>(_ interface: Interface<D>) -> [(String, UInt64)] {
        let connections = interface.tcpConnections
        func count(_ state: TCPState) -> UInt64 { UInt64(connections.lazy.filter { $0.state == state }.count) }
        return [("tcp-connections-in-table", UInt64(connections.count)),
                ("tcp-in-time-wait", count(.timeWait)), ("tcp-in-close-wait", count(.closeWait)),
                ("tcp-in-fin-wait-2", count(.finWait2)), ("tcp-in-last-ack", count(.lastAck))]
    }
}

/// The options that put a stack on a new TAP device, shared by `up` and `get`.
struct LinkOptions: ParsableArguments {
    @Option(help: "Name of the TAP device to create.")
    var tap: String

    @Option(help: "Address and prefix for the kernel's side of the TAP (e.g. 10.0.0.1/24).")
    var host: String

    @Option(help: "The stack's IPv4 address (e.g. 10.0.0.2).")
    var address: String

    @Option(help: "The stack's MAC address (default: 02:00 followed by the IPv4 address).")
    var mac: String?

    struct Settings {
        var tap: String
        var hostCIDR: IPv4CIDR
        var interface: InterfaceConfiguration
    }

    func settings() throws -> Settings {
        guard !tap.isEmpty, tap.utf8.count < 16, !tap.contains("/") else {
            throw ValidationError("--tap: interface names are 1 to 15 characters, without '/'")
        }
        guard let hostCIDR = IPv4CIDR(host), hostCIDR.prefixLength > 0, hostCIDR.prefixLength < 31 else {
            throw ValidationError("--host '\(host)': expected an IPv4 address with a prefix, such as 10.0.0.1/24")
        }
        guard let ip = IPv4Address(address) else {
            throw ValidationError("--address '\(address)': expected an IPv4 address such as 10.0.0.2")
        }
        guard hostCIDR.contains(ip), ip != hostCIDR.address, ip != hostCIDR.network,
              ip != hostCIDR.directedBroadcast else {
            throw ValidationError("--address \(ip) must be a host address in \(hostCIDR.network)/\(hostCIDR.prefixLength) other than the host side's \(hostCIDR.address)")
        }
        var macAddress = InterfaceConfiguration.defaultMAC(for: ip)
        if let mac {
            guard let m = MACAddress(mac), !m.isMulticast, m != .zero else {
                throw ValidationError("--mac '\(mac)': expected a unicast MAC such as 02:00:0a:00:00:02")
            }
            macAddress = m
        }
        let config = InterfaceConfiguration(
            macAddress: macAddress,
            address: IPv4CIDR(address: ip, prefixLength: hostCIDR.prefixLength),
            gateway: hostCIDR.address)
        return Settings(tap: tap, hostCIDR: hostCIDR, interface: config)
    }

    static func logLevel(_ text: String) throws -> Logger.Level {
        guard let level = Logger.Level(rawValue: text) else {
            throw ValidationError("--log-level '\(text)': expected trace, debug, info, notice, warning, error or critical")
        }
        return level
    }

    static func bootstrapLogging(level: Logger.Level) {
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
    }
}

/// Something to run on a freshly opened device. A protocol rather than a
/// closure so the body stays generic over the device type (the pcap wrapper or not).
protocol StackBody {
    func run<D: Device>(on device: D, clock: MonotonicClock) throws
}

/// Opens the TAP (and, with `pcap`, a capture around it), installs the stop
/// signal handlers, and runs `body` on it; the TAP disappears when it returns.
func runOnTAP(link: LinkOptions.Settings, pcap: String?, slotCount: Int = 4096, _ body: some StackBody) throws {
    let pool = PacketPool(slotCount: slotCount)
    let clock = MonotonicClock()
    let device: TAPDevice
    do {
        device = try TAPDevice(name: link.tap, hostAddress: link.hostCIDR, pool: pool)
    } catch {
        Console.error("netstack: \(error)")
        throw ExitCode(1)
    }
    defer { device.close() }
    installStopSignalHandlers()
    if let pcap {
        let writer: PcapWriter<TAPDevice>
        do { writer = try PcapWriter(wrapping: device, path: pcap, clock: clock) } catch {
            Console.error("netstack: --pcap \(pcap): \(error)")
            throw ExitCode(1)
        }
        defer { writer.close() }
        try body.run(on: writer, clock: clock)
    } else {
        try body.run(on: device, clock: clock)
    }
}
