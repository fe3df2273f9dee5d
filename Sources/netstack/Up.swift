import ArgumentParser
import Logging
import NetStack
import NetStackApps
import NetStackSockets
import NetStackWire
#if canImport(Glibc)
import Glibc
#endif

/// `netstack up`: bring the stack up on a new TAP device and serve until a signal.
struct Up: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the stack on a TAP until SIGINT or SIGTERM.",
        discussion: """
            Creates the TAP device NAME, gives the kernel's side CIDR, runs the stack at \
            IP, prints 'ready NAME IP MAC' once the stack answers, and its counters on \
            exit. NAME may hold one %d, which the kernel numbers ('ready' shows the name \
            it got); a name already in use (a veth, a persistent TAP) is refused.

            On SIGTERM or SIGINT the stack stops accepting (new connections are reset), \
            closes every connection with a FIN after the data it has queued, waits up to \
            --shutdown-grace seconds for them to finish closing, resets the rest and exits \
            0; a second signal resets everything at once.

            With any fault option the device is wrapped in a FaultInjector, between the \
            stack and the TAP (and the --pcap capture, which so shows the wire: frames as \
            sent after the faults, as received before them); the exit counters and \
            --stats then include fault.rx.* and fault.tx.*.

            Examples:
              netstack up --tap tap0 --host 10.0.0.1/24 --address 10.0.0.2 --serve echo:7
              netstack up ... --loss 0.05 --tx-reorder 0.1 --seed 7
            """
    )

    @OptionGroup var link: LinkOptions

    @OptionGroup(title: "Fault injection") var faults: FaultOptions

    @OptionGroup(title: "TCP") var tcpOptions: TCPTuning

    @OptionGroup(title: "Shutdown") var shutdown: ShutdownOptions

    @Option(help: ArgumentHelp("Services to run, comma separated: echo[:PORT], discard[:PORT], chargen[:PORT], http[:PORT], iperf3[:PORT].",
                               valueName: "LIST"))
    var serve: String?

    @Option(help: ArgumentHelp("Directory whose files the http service serves (besides /bytes/N).", valueName: "DIR"))
    var root: String?

    @Option(parsing: .unconditional,
            help: ArgumentHelp("Close a service's connection after this many seconds without progress from its client (default: http 60, iperf3 60 outside a test and 120 for a running test's streams, echo/discard/chargen 300; 0: never).",
                               valueName: "SECONDS"))
    var idleTimeout: Double?

    @Option(help: ArgumentHelp("TCP keepalive (RFC 1122 4.2.3.6) on the services' connections: probes after IDLE seconds without a segment, every INTERVAL seconds, the connection reset after COUNT unanswered (defaults as Linux: 7200,75,9).",
                               valueName: "IDLE[,INTERVAL,COUNT]"))
    var keepalive: String?

    @Option(parsing: .unconditional,
            help: ArgumentHelp("Maximum segment lifetime in seconds for TCP connections (TIME-WAIT lasts twice this; default 30).",
                               valueName: "SECONDS", visibility: .hidden))
    var msl: Double?

    @Option(parsing: .unconditional,
            help: ArgumentHelp("The most memory TCP connections and their buffers may hold together, in bytes or with K, M or G (binary): near it windows shrink, at it new connections are refused with a RST (default: no limit).",
                               valueName: "SIZE"))
    var memoryLimit: String?

    @Option(help: ArgumentHelp("Also serve local applications at this UNIX socket (mode 0600): `netstack run --api PATH -- CMD` runs CMD on the stack.",
                               valueName: "PATH"))
    var api: String?

    @Option(help: ArgumentHelp("With --api: each application socket's send and receive rings, a power of two from 128K to 64M (default 4M). A bulk sender's application fills its ring while the stack waits, then the stack sends it: larger rings mean fewer such turns, smaller ones data still in cache.",
                               valueName: "SIZE"))
    var apiRings: String?

    @Option(help: ArgumentHelp("Write every frame in and out to this pcap file.", valueName: "FILE"))
    var pcap: String?

    @Flag(help: "Print the counters to stderr every second while running.")
    var stats = false

    @Option(parsing: .unconditional,
            help: ArgumentHelp("Keep polling the TAP for this many microseconds after the last frame before sleeping (default 0: sleep at once); lower request/response latency for a core.",
                               valueName: "USEC"))
    var busyPoll: Int = 0

    @Option(help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error, critical.", valueName: "LEVEL"))
    var logLevel: String = "info"

    /// The parsed, checked form of the options.
    struct Settings {
        var link: LinkOptions.Settings
        var services: [ServiceSpec]
        var options: ServiceOptions
        var tcp: TCPConfiguration
        var logLevel: Logger.Level
        var faults: FaultOptions.Settings?
        var grace: Duration
        var apiRingSize: Int
    }

    func validate() throws {
        _ = try settings()
    }

    func settings() throws -> Settings {
        var linkSettings = try link.settings()
        if let memoryLimit {
            guard let bytes = ByteSize.parse(memoryLimit), (1 << 20...1 << 40).contains(bytes) else {
                throw ValidationError("--memory-limit '\(memoryLimit)': expected a size of at least 1M, such as 64M or 2G")
            }
            linkSettings.interface.memoryLimit = bytes
        }
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
        if let idleTimeout {
            guard idleTimeout.isFinite, idleTimeout >= 0, idleTimeout <= 86400 else {
                throw ValidationError("--idle-timeout \(idleTimeout): expected seconds in [0, 86400]")
            }
            options.idleTimeoutOverride = .nanoseconds(Int64(idleTimeout * 1e9))
        }
        var tcp = tcpOptions.configuration
        if let keepalive {
            guard let k = TCPConfiguration.Keepalive(spec: keepalive) else {
                throw ValidationError("--keepalive '\(keepalive)': expected IDLE[,INTERVAL,COUNT], seconds > 0 and a count of 1 to 127")
            }
            tcp.keepalive = k
        }
        if let msl {
            guard msl.isFinite, msl > 0, msl <= 3600 else {
                throw ValidationError("--msl \(msl): expected seconds in (0, 3600]")
            }
            tcp.msl = .nanoseconds(Int64(msl * 1e9))
        }
        var apiRingSize = APIServer.defaultRingSize
        if let apiRings {
            guard let bytes = ByteSize.parse(apiRings), (128 << 10...64 << 20).contains(bytes), bytes & (bytes - 1) == 0 else {
                throw ValidationError("--api-rings '\(apiRings)': expected a power of two from 128K to 64M, such as 1M or 4M")
            }
            apiRingSize = bytes
        }
        let level = try LinkOptions.logLevel(logLevel)
        guard (0...1_000_000).contains(busyPoll) else {
            throw ValidationError("--busy-poll \(busyPoll): expected 0 to 1000000 microseconds")
        }
        return Settings(link: linkSettings, services: services, options: options, tcp: tcp, logLevel: level,
                        faults: try faults.settings(), grace: try shutdown.grace(), apiRingSize: apiRingSize)
    }

    func run() throws {
        let s = try settings()
        LinkOptions.bootstrapLogging(level: s.logLevel)
        try runOnTAP(link: s.link, pcap: pcap, faults: s.faults, tcp: s.tcp) { loop, tap in
            try serve(on: loop, settings: s, tap: tap)
        }
    }

    /// Runs the stack's services until a stop signal, then shuts down gracefully.
    func serve(on loop: any StackLoop, settings s: Settings, tap: TAPRun) throws {
        let faultReport = tap.faultReport
        let stack = loop.stack
        var running: [RunningService] = []
        for service in s.services {
            do {
                if let r = try service.install(on: stack, options: s.options) {
                    running.append(r)
                }
            } catch {
                Console.error("netstack: cannot start \(service): \(error)")
                throw ExitCode(1)
            }
        }
        var apiServer: APIServer?
        if let api {
            do {
                apiServer = try APIServer(stack: stack, path: api, ringSize: s.apiRingSize, interfaceIndex: if_nametoindex(tap.name))
            } catch {
                Console.error("netstack: --api \(api): \(error)")
                throw ExitCode(1)
            }
        }
        let apiReport = { apiServer?.report ?? [] }
        let clock = loop.clock
        loop.busyPoll = .microseconds(busyPoll)
        loop.announce()
        apiServer?.start()
        // IPv6 addresses, when in use, follow the MAC (link-local first), so "NAME IP MAC" parses as before.
        let v6 = stack.ipv6Addresses.map { " \($0)" }.joined()
        Console.line("ready \(tap.name) \(stack.address) \(s.link.interface.macAddress)\(v6)")

        var nextStats = clock.now + .seconds(1)
        if stats {
            loop.onTurn.append { now in
                guard now >= nextStats else { return }
                nextStats = now + .seconds(1)
                let report = stack.counterReport + running.flatMap { $0.report() } + apiReport() + faultReport()
                let line = report.map { "\($0.0)=\($0.1)" }.joined(separator: " ")
                Console.error("stats \(line)")
            }
        }
        loop.run(until: { stopRequested.load(ordering: .relaxed) })

        let logger = Logger(label: "netstack")
        let start = clock.now
        // The services say goodbye their own way first (iperf3's SERVER_TERMINATE);
        // applications on the API are reset, as the kernel resets a dying host's.
        for r in running { r.stop() }
        apiServer?.stop()
        let outcome = shutDownGracefully(loop, grace: s.grace)
        let took = (clock.now - start).nanoseconds / 1_000_000
        if outcome.open > 0 {
            let why = immediateStopRequested ? " (a second signal)" : outcome.reset > 0 ? " (the grace period ended)" : ""
            logger.info("stopped after \(took) ms: \(outcome.open) connection(s) were open, \(outcome.reset) reset\(why)")
        }

        for (name, value) in stack.counterReport + running.flatMap({ $0.report() }) + apiReport() + faultReport() {
            Console.line("\(name) \(value)")
        }
    }
}

/// The options that put a stack on a new TAP device, shared by `up` and `get`.
struct LinkOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Name of the TAP device to create (one %d lets the kernel number it); it must not exist yet.", valueName: "NAME"))
    var tap: String

    @Option(help: ArgumentHelp("Address and prefix for the kernel's side of the TAP (e.g. 10.0.0.1/24).", valueName: "CIDR"))
    var host: String

    @Option(help: ArgumentHelp("The stack's IPv4 address (e.g. 10.0.0.2).", valueName: "IP"))
    var address: String

    @Option(help: ArgumentHelp("The stack's MAC address (default: 02:00 followed by the IPv4 address).", valueName: "MAC"))
    var mac: String?

    @Option(help: ArgumentHelp("IPv6 address and prefix for the kernel's side of the TAP (e.g. fd00::1/64).", valueName: "CIDR"))
    var host6: String?

    @Option(help: ArgumentHelp("The stack's IPv6 address and prefix (e.g. fd00::2/64); with it the stack speaks IPv6, with its link-local address besides.", valueName: "CIDR"))
    var address6: String?

    @Option(help: ArgumentHelp("Checksum offload and TCP segments up to 64 KiB both ways through the TAP's virtio-net header: on or off (default on; off when the kernel refuses).",
                               valueName: "on|off"))
    var offload: Switch = .on

    @Option(help: ArgumentHelp("The TAP's transmit queue length, the frames the kernel may queue for the stack (default 32768; 0 keeps the kernel's 1000).",
                               valueName: "FRAMES", visibility: .hidden))
    var txqueuelen: Int = TAPDevice.defaultTransmitQueueLength

    /// `on` or `off`.
    enum Switch: String, ExpressibleByArgument, CaseIterable {
        case on, off
    }

    struct Settings {
        var tap: String
        var hostCIDR: IPv4CIDR
        var hostCIDR6: IPv6CIDR?
        var interface: InterfaceConfiguration
        var offload: Bool
        var transmitQueueLength = TAPDevice.defaultTransmitQueueLength
    }

    func settings() throws -> Settings {
        guard (0...1_000_000).contains(txqueuelen) else {
            throw ValidationError("--txqueuelen \(txqueuelen): expected 0 to 1000000 frames")
        }
        let isPattern: Bool
        do { isPattern = try InterfaceName.validate(tap) } catch {
            throw ValidationError("--tap '\(tap)': \(error)")
        }
        // Refused here, with the reason, rather than by TUNSETIFF (see TAPError.nameInUse).
        if !isPattern, let existing = InterfaceName.existing(tap) {
            throw ValidationError("--tap \(tap): \(existing)")
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
        var config = InterfaceConfiguration(
            macAddress: macAddress,
            address: IPv4CIDR(address: ip, prefixLength: hostCIDR.prefixLength),
            gateway: hostCIDR.address)
        let (host6CIDR, address6CIDR) = try ipv6Settings()
        config.address6 = address6CIDR
        return Settings(tap: tap, hostCIDR: hostCIDR, hostCIDR6: host6CIDR, interface: config,
                        offload: offload == .on, transmitQueueLength: txqueuelen)
    }

    /// `--host6` and `--address6`: unicast addresses (not link-local) of one
    /// prefix between /1 and /127, different; either may be given alone.
    private func ipv6Settings() throws -> (host: IPv6CIDR?, address: IPv6CIDR?) {
        func parse(_ text: String?, _ flag: String, example: String) throws -> IPv6CIDR? {
            guard let text else { return nil }
            guard let c = IPv6CIDR(text), (1...127).contains(c.prefixLength), !c.address.isMulticast,
                  !c.address.isUnspecified, !c.address.isLoopback, !c.address.isLinkLocal else {
                throw ValidationError("\(flag) '\(text)': expected a unicast IPv6 address with a prefix, such as \(example)")
            }
            return c
        }
        let host = try parse(host6, "--host6", example: "fd00::1/64")
        let address = try parse(address6, "--address6", example: "fd00::2/64")
        if let h = host, let a = address {
            guard h.contains(a.address), h.prefixLength == a.prefixLength, h.address != a.address else {
                throw ValidationError("--address6 \(a) must be another address in --host6 \(h)'s prefix")
            }
        }
        return (host, address)
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

/// What `runOnTAP` hands its body besides the loop.
struct TAPRun {
    /// The TAP's name as the kernel gave it (a `%d` numbered).
    let name: String
    /// What the fault injector did (empty without one).
    let faultReport: () -> [(String, UInt64)]
}

/// Opens the TAP (and, with `pcap`, a capture around it; with `faults`, a
/// fault injector around that), builds the stack on it with `tcp` as its TCP
/// defaults, installs the stop signal handlers, and runs `body` with the
/// stack's loop, the TAP's name and a report of the injected faults; the TAP
/// disappears when it returns.
///
/// The order is stack -> FaultInjector -> PcapWriter -> TAP: the capture
/// records the wire, so it shows transmitted frames after the faults (no lost
/// ones, the duplicates, the corrupted bytes) and received frames before them.
///
/// Under fault injection offloads stay on: the injector cuts what the kernel
/// coalesced into wire frames before it judges them, and narrows what the
/// stack sends to wire frames.
func runOnTAP(link: LinkOptions.Settings, pcap: String?, faults: FaultOptions.Settings? = nil, slotCount: Int = 4096,
              tcp: TCPConfiguration,
              _ body: (any StackLoop, TAPRun) throws -> Void) throws {
    let clock = MonotonicClock()
    func open(offload: Bool) throws(TAPError) -> TAPDevice {
        // 64 KiB slots for offload segments: fewer of them, for the same order of memory.
        let pool = offload ? PacketPool(slotCount: min(slotCount, 1024), slotSize: TAPDevice.offloadSlotSize)
            : PacketPool(slotCount: slotCount)
        return try TAPDevice(name: link.tap, hostAddress: link.hostCIDR, hostAddress6: link.hostCIDR6, pool: pool,
                             offload: offload,
                             transmitQueueLength: link.transmitQueueLength)
    }
    let device: TAPDevice
    do {
        do {
            device = try open(offload: link.offload)
        } catch .systemCall(.setOffload, let errno) {
            Console.error("netstack: the kernel refused offloads (\(errno)); running without")
            device = try open(offload: false)
        }
    } catch .invalidName(let name) {
        Console.error("netstack: --tap '\(name)': \(TAPError.invalidName(name))")
        throw ExitCode(2)
    } catch .nameInUse(let existing) {
        // Checked before, but the name can be taken in between.
        Console.error("netstack: --tap \(existing.name): \(existing)")
        throw ExitCode(2)
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
        try run(on: writer, name: device.name, link: link, faults: faults, tcp: tcp, clock: clock, body)
    } else {
        try run(on: device, name: device.name, link: link, faults: faults, tcp: tcp, clock: clock, body)
    }
}

/// Builds the stack on `device`, inside a `FaultInjector` when `faults` says
/// so, and runs `body`. Generic, so the loop is specialised for the device.
private func run<D: Device>(on device: D, name: String, link: LinkOptions.Settings, faults: FaultOptions.Settings?,
                            tcp: TCPConfiguration, clock: MonotonicClock,
                            _ body: (any StackLoop, TAPRun) throws -> Void) throws {
    func start<E: Device>(_ device: E, faultReport: @escaping () -> [(String, UInt64)]) throws {
        let interface = Interface(device: device, configuration: link.interface, now: clock.now,
                                  logger: Logger(label: "netstack"))
        interface.tcp.defaultConfiguration = tcp
        try body(EventLoop(interface: interface, clock: clock), TAPRun(name: name, faultReport: faultReport))
    }
    if let faults {
        let injector = FaultInjector(wrapping: device, receive: faults.receive, transmit: faults.transmit,
                                     seed: faults.seed, clock: clock)
        try start(injector, faultReport: { injector.report })
    } else {
        try start(device, faultReport: { [] })
    }
}

/// `--loss P --reorder P --duplicate P --corrupt P --seed N`, each direction
/// overridable with `--rx-...`/`--tx-...`. Their values are taken even when
/// they start with '-' (`parsing: .unconditional`), so `--loss -0.1` is
/// refused as a probability out of range rather than as a missing value.
struct FaultOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: ArgumentHelp("Drop frames with probability P, both directions.", valueName: "P"))
    var loss: Double?
    @Option(parsing: .unconditional, help: ArgumentHelp("Hold frames back (overtaken by --reorder-depth later ones) with probability P, both directions.", valueName: "P"))
    var reorder: Double?
    @Option(parsing: .unconditional, help: ArgumentHelp("Deliver frames twice with probability P, both directions.", valueName: "P"))
    var duplicate: Double?
    @Option(parsing: .unconditional, help: ArgumentHelp("Flip 1-3 bits of a frame's IPv4 datagram with probability P, both directions.", valueName: "P"))
    var corrupt: Double?
    @Option(parsing: .unconditional, help: ArgumentHelp("Received frames only; overrides --loss.", valueName: "P")) var rxLoss: Double?
    @Option(parsing: .unconditional, help: ArgumentHelp("Transmitted frames only; overrides --loss.", valueName: "P")) var txLoss: Double?
    @Option(parsing: .unconditional, help: ArgumentHelp("Received frames only; overrides --reorder.", valueName: "P")) var rxReorder: Double?
    @Option(parsing: .unconditional, help: ArgumentHelp("Transmitted frames only; overrides --reorder.", valueName: "P")) var txReorder: Double?
    @Option(parsing: .unconditional, help: ArgumentHelp("Received frames only; overrides --duplicate.", valueName: "P")) var rxDuplicate: Double?
    @Option(parsing: .unconditional, help: ArgumentHelp("Transmitted frames only; overrides --duplicate.", valueName: "P")) var txDuplicate: Double?
    @Option(parsing: .unconditional, help: ArgumentHelp("Received frames only; overrides --corrupt.", valueName: "P")) var rxCorrupt: Double?
    @Option(parsing: .unconditional, help: ArgumentHelp("Transmitted frames only; overrides --corrupt.", valueName: "P")) var txCorrupt: Double?
    @Option(parsing: .unconditional, help: ArgumentHelp("A held frame is released after this many later frames (default 3).", valueName: "N"))
    var reorderDepth: Int?
    @Option(parsing: .unconditional, help: ArgumentHelp("Seed for the fault injector's PRNG (default 1): a seed replays its faults for the same traffic.", valueName: "N"))
    var seed: UInt64?

    struct Settings {
        var receive: FaultProfile
        var transmit: FaultProfile
        var seed: UInt64
    }

    /// The profiles, or nil when no fault option was given.
    func settings() throws -> Settings? {
        func probability(_ value: Double?, _ name: String) throws -> Double? {
            guard let value else { return nil }
            guard value.isFinite, value >= 0, value <= 1 else {
                throw ValidationError("--\(name) \(value): expected a probability from 0 to 1")
            }
            return value
        }
        let both = (loss: try probability(loss, "loss"), reorder: try probability(reorder, "reorder"),
                    duplicate: try probability(duplicate, "duplicate"), corrupt: try probability(corrupt, "corrupt"))
        let rx = (loss: try probability(rxLoss, "rx-loss"), reorder: try probability(rxReorder, "rx-reorder"),
                  duplicate: try probability(rxDuplicate, "rx-duplicate"),
                  corrupt: try probability(rxCorrupt, "rx-corrupt"))
        let tx = (loss: try probability(txLoss, "tx-loss"), reorder: try probability(txReorder, "tx-reorder"),
                  duplicate: try probability(txDuplicate, "tx-duplicate"),
                  corrupt: try probability(txCorrupt, "tx-corrupt"))
        if let reorderDepth, reorderDepth < 1 || reorderDepth > 1000 {
            throw ValidationError("--reorder-depth \(reorderDepth): expected 1 to 1000 frames")
        }
        let given: [Double?] = [both.loss, both.reorder, both.duplicate, both.corrupt, rx.loss, rx.reorder,
                                rx.duplicate, rx.corrupt, tx.loss, tx.reorder, tx.duplicate, tx.corrupt]
        guard given.contains(where: { $0 != nil }) || seed != nil || reorderDepth != nil else { return nil }
        let depth = reorderDepth ?? 3
        let receive = FaultProfile(loss: rx.loss ?? both.loss ?? 0, reorder: rx.reorder ?? both.reorder ?? 0,
                                   duplicate: rx.duplicate ?? both.duplicate ?? 0,
                                   corrupt: rx.corrupt ?? both.corrupt ?? 0, reorderDepth: depth)
        let transmit = FaultProfile(loss: tx.loss ?? both.loss ?? 0, reorder: tx.reorder ?? both.reorder ?? 0,
                                    duplicate: tx.duplicate ?? both.duplicate ?? 0,
                                    corrupt: tx.corrupt ?? both.corrupt ?? 0, reorderDepth: depth)
        return Settings(receive: receive, transmit: transmit, seed: seed ?? 1)
    }
}
