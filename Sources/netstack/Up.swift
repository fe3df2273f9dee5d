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

    @Option(help: "Name of the TAP device to create.")
    var tap: String

    @Option(help: "Address and prefix for the kernel's side of the TAP (e.g. 10.0.0.1/24).")
    var host: String

    @Option(help: "The stack's IPv4 address (e.g. 10.0.0.2).")
    var address: String

    @Option(help: "The stack's MAC address (default: 02:00 followed by the IPv4 address).")
    var mac: String?

    @Option(help: "Services to run, comma separated: echo[:PORT].")
    var serve: String?

    @Option(help: "Write every frame in and out to this pcap file.")
    var pcap: String?

    @Flag(help: "Print the counters to stderr every second while running.")
    var stats = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    /// The parsed, checked form of the options.
    struct Settings {
        var hostCIDR: IPv4CIDR
        var interface: InterfaceConfiguration
        var services: [ServiceSpec]
        var logLevel: Logger.Level
    }

    func validate() throws {
        _ = try settings()
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
        var services: [ServiceSpec] = []
        if let serve {
            switch ServiceSpec.parseList(serve) {
            case .success(let s): services = s
            case .failure(let e): throw ValidationError("--serve: \(e)")
            }
        }
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("--log-level '\(logLevel)': expected trace, debug, info, notice, warning, error or critical")
        }
        let config = InterfaceConfiguration(
            macAddress: macAddress,
            address: IPv4CIDR(address: ip, prefixLength: hostCIDR.prefixLength),
            gateway: hostCIDR.address)
        return Settings(hostCIDR: hostCIDR, interface: config, services: services, logLevel: level)
    }

    func run() throws {
        let s = try settings()
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = s.logLevel
            return h
        }
        let pool = PacketPool(slotCount: 4096)
        let clock = MonotonicClock()
        let device: TAPDevice
        do {
            device = try TAPDevice(name: tap, hostAddress: s.hostCIDR, pool: pool)
        } catch {
            Console.error("netstack: \(error)")
            throw ExitCode(1)
        }
        installStopSignalHandlers()
        if let pcap {
            let writer: PcapWriter<TAPDevice>
            do { writer = try PcapWriter(wrapping: device, path: pcap, clock: clock) } catch {
                Console.error("netstack: --pcap \(pcap): \(error)")
                throw ExitCode(1)
            }
            try serve(on: writer, settings: s, clock: clock)
            writer.close()
        } else {
            try serve(on: device, settings: s, clock: clock)
        }
    }

    /// Runs the stack on `device` until a stop signal. Generic, so the loop is
    /// specialised for the device in use.
    func serve<D: Device>(on device: D, settings s: Settings, clock: MonotonicClock) throws {
        let interface = Interface(device: device, configuration: s.interface, now: clock.now,
                                  logger: Logger(label: "netstack"))
        for service in s.services {
            do { try service.install(on: interface, clock: clock) } catch {
                Console.error("netstack: cannot start \(service): \(error)")
                throw ExitCode(1)
            }
        }
        let loop = EventLoop(interface: interface, clock: clock)
        interface.announce()
        Console.line("ready \(tap) \(interface.address) \(interface.macAddress)")

        var nextStats = clock.now + .seconds(1)
        if stats {
            loop.onTurn.append { now in
                guard now >= nextStats else { return }
                nextStats = now + .seconds(1)
                let line = interface.counters.report.map { "\($0.0)=\($0.1)" }.joined(separator: " ")
                Console.error("stats \(line)")
            }
        }
        loop.run(until: { stopRequested.load(ordering: .relaxed) })

        for (name, value) in interface.counters.report {
            Console.line("\(name) \(value)")
        }
    }
}
