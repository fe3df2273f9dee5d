import ArgumentParser
import Logging
import NetStack
import NetStackApps
import NetStackWire
#if canImport(Glibc)
import Glibc
#endif

/// `netstack get`: fetch one http:// URL through the stack, on its own TAP.
struct Get: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fetch an http:// URL through the stack on a TAP.",
        discussion: """
            Creates a TAP device, and the stack opens the TCP connection itself (the \
            kernel is only the peer), sends GET with Connection: close, decodes \
            Content-Length, chunked or read-until-close bodies, writes the body out, and \
            closes cleanly before exiting. Exit status: 0 for a complete 2xx response, 1 \
            for other statuses or errors, 2 for bad flags.

            Example:
              netstack get http://10.0.0.1:8000/file -o out \\
                  --tap tap1 --host 10.0.0.1/24 --address 10.0.0.2
            """
    )

    @Argument(help: ArgumentHelp("http://A.B.C.D[:PORT][/PATH] or http://[IPV6][:PORT][/PATH]: an address in the TAP's subnet or reached through the host side.",
                                 valueName: "URL"))
    var url: String

    @OptionGroup var link: LinkOptions

    @OptionGroup(title: "TCP") var tcpOptions: TCPTuning

    @Option(name: [.short, .customLong("output")], help: ArgumentHelp("Write the body to FILE (default: stdout).", valueName: "FILE"))
    var output: String?

    @Option(help: ArgumentHelp("Give up after this many seconds.", valueName: "S"))
    var timeout: Double = 30

    @Flag(name: .shortAndLong, help: "Print the status line and header fields to stderr.")
    var verbose = false

    @Option(help: ArgumentHelp("Write every frame in and out to this pcap file.", valueName: "FILE"))
    var pcap: String?

    @Option(help: ArgumentHelp("Log level: trace, debug, info, notice, warning, error, critical.", valueName: "LEVEL"))
    var logLevel: String = "warning"

    struct Settings {
        var link: LinkOptions.Settings
        var url: HTTPURL
        var logLevel: Logger.Level
    }

    func validate() throws {
        _ = try settings()
    }

    func settings() throws -> Settings {
        let linkSettings = try link.settings()
        let parsed: HTTPURL
        do { parsed = try HTTPURL(parsing: url) } catch {
            throw ValidationError("URL '\(url)': \(error)")
        }
        let a = parsed.address
        guard connectable(a, from: linkSettings.interface) else {
            throw ValidationError("URL '\(url)': \(a) cannot be connected to from this stack (IPv6 needs --address6)")
        }
        guard timeout.isFinite, timeout > 0, timeout <= 86400 else {
            throw ValidationError("--timeout \(timeout): expected seconds in (0, 86400]")
        }
        return Settings(link: linkSettings, url: parsed, logLevel: try LinkOptions.logLevel(logLevel))
    }

    func run() throws {
        let s = try settings()
        LinkOptions.bootstrapLogging(level: s.logLevel)
        // A closed stdout pipe should fail the write, not kill us before the TAP is removed.
        signal(SIGPIPE, SIG_IGN)
        let fd: Int32
        if let output {
            fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                Console.error("netstack get: \(output): \(String(cString: strerror(errno)))")
                throw ExitCode(1)
            }
        } else {
            fd = 1
        }
        defer { if fd != 1 { Glibc.close(fd) } }
        try runOnTAP(link: s.link, pcap: pcap, slotCount: 2048, tcp: tcpOptions.configuration) { loop, _ in
            try fetch(on: loop, settings: s, fd: fd)
        }
    }

    func fetch(on loop: any StackLoop, settings s: Settings, fd: Int32) throws {
        let clock = loop.clock
        loop.maximumSleep = .milliseconds(10)
        let start = clock.now
        let deadline = start + .nanoseconds(Int64(timeout * 1e9))

        // Let the kernel's side settle (the TAP was just brought up and addressed) and
        // hear our gratuitous ARP before the SYN goes out; ARP for the peer is automatic.
        loop.announce()
        let settle = clock.now + .milliseconds(20)
        loop.run(until: { clock.now >= settle || stopRequested.load(ordering: .relaxed) })

        let get = HTTPGet(url: s.url) { body in body.withUnsafeBytes { Self.writeAll(fd, $0) } }
        do {
            try get.start(on: loop.stack)
        } catch {
            Console.error("netstack get: cannot connect to \(s.url.address):\(s.url.port): \(error)")
            throw ExitCode(1)
        }
        loop.onTurn.append { now in get.turn(now: now) }
        var printedHead = false
        loop.run(until: {
            if verbose && !printedHead && get.parser.hasHead {
                printedHead = true
                Self.printHead(get.parser)
            }
            return get.isFinished || clock.now >= deadline || stopRequested.load(ordering: .relaxed)
        })
        if !get.isFinished {
            let why = stopRequested.load(ordering: .relaxed) ? "interrupted"
                : "timed out after \(timeout) s (connection \(get.connection.map { "\($0.state)" } ?? "none"))"
            get.abort(reason: why)
            // One more turn sends the reset.
            loop.runOnce()
        }
        if verbose && !printedHead && get.parser.hasHead { Self.printHead(get.parser) }
        if let failure = get.failure {
            Console.error("netstack get: \(s.url): \(failure)")
            throw ExitCode(1)
        }
        let status = get.parser.status ?? 0
        guard get.succeeded else {
            Console.error("netstack get: \(s.url): HTTP \(status) \(get.parser.reason)")
            throw ExitCode(1)
        }
    }

    static func printHead(_ p: HTTPResponseParser) {
        var lines = ["< \(p.version) \(p.status ?? 0) \(p.reason)"]
        for (name, value) in p.headers { lines.append("< \(name): \(value)") }
        Console.error(lines.joined(separator: "\n"))
    }

    /// write(2) until done; false on an error.
    static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var off = 0
        // Each successful write makes progress; EINTR retries are bounded too.
        var interrupts = 0
        while off < bytes.count {
            let n = write(fd, bytes.baseAddress! + off, bytes.count - off)
            if n < 0 {
                if errno == EINTR && interrupts < 1000 { interrupts += 1; continue }
                return false
            }
            off += n
        }
        return true
    }
}

/// Whether the stack configured by `interface` may connect to `a`: not its
/// own address, nor unspecified, broadcast or multicast; IPv6 only with
/// `--address6`.
func connectable(_ a: IPAddress, from interface: InterfaceConfiguration) -> Bool {
    switch a {
    case .v4(let v4):
        return !v4.isUnspecified && !v4.isBroadcast && !v4.isMulticast && v4 != interface.address.address
            && v4 != interface.address.directedBroadcast
    case .v6(let v6):
        return interface.address6 != nil && !v6.isUnspecified && !v6.isMulticast && !v6.isLoopback
            && v6 != interface.address6?.address
    }
}
