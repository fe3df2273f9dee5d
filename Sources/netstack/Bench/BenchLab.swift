import Foundation
import NetStackApps

/// The network namespaces `netstack bench` measures in, and the servers in them.
///
/// Kernel system: namespaces `…-kp` (peer, 10.0.0.1) and `…-ks` (server,
/// 10.0.0.2) joined by a veth pair, kernel TCP at both ends with the offloads
/// the kernel gives a veth; `iperf3 -s` and the kernel echo server run in `…-ks`.
/// Netstack system: namespace `…-np`, where `netstack up` owns a TAP whose
/// host side (10.0.0.1) is the peer, serving iperf3 and echo at 10.0.0.2;
/// with `busyPollStack`, namespace `…-nb` holds a second one run with
/// `--busy-poll` for the tcp-rr-busy-poll scenario.
/// With `preload`, that stack also serves `--api` in `…-np`, and the
/// kernel's iperf3 and echo servers listen on the TAP's host side there
/// (10.0.0.1), pinned to the peer's CPUs: the netstack-preload system's
/// clients run on the stack through the library (`throughTheLibrary`).
/// So on both systems the peer reaches the system under test at 10.0.0.2 and
/// runs the same clients. With `family` IPv6 both ends also get fd00::1/64 and
/// fd00::2/64 (the veth's without duplicate address detection, netstack's
/// after its own, which `ready` waits for), and every client and server uses
/// those instead. Names carry the pid and a random tag, so parallel
/// runs never collide; `cleanUp` stops every server and deletes every
/// namespace, and the command calls it on success, error and SIGINT alike.
final class BenchLab {
    static let iperf3Port: UInt16 = 5201
    static let echoPort: UInt16 = 7
    static let prefix = "nsbench-"

    let name: String
    let binary: String
    private let logDirectory: String
    private(set) var namespaces: [String] = []
    private var servers: [Server] = []

    private struct Server {
        var label: String
        /// The system whose measurements need it.
        var system: BenchSystem
        var process: Process
        var log: String
        /// Pinned to the peer's CPUs rather than the system under test's.
        var onPeerCPUs = false
    }

    var kernelPeer: String { name + "-kp" }
    var kernelServer: String { name + "-ks" }
    var netstackPeer: String { name + "-np" }
    var busyPollPeer: String { name + "-nb" }
    /// The busy-polling stack's spin after each frame (`netstack up --busy-poll`).
    static let busyPollMicroseconds = 50
    /// Whether `setUp` starts the busy-polling stack.
    var busyPollStack = false

    /// Whether netstack's TAP runs with offloads (`netstack up --offload`).
    let offload: Bool
    /// The family the scenarios run over (`--family`).
    let family: BenchFamily
    /// Whether the netstack-preload system is measured (`--preload`).
    var preload = false
    /// The API socket of the stack in `…-np` (`netstack up --api`).
    var apiPath: String { logDirectory + "/api.sock" }
    /// The system under test's address in `family`.
    var serverIP: String { family.serverIP }

    /// The CPUs each side runs on (`--pin`): the servers `setUp` starts
    /// (the kernel's iperf3 and echo servers, `netstack up`) on the system
    /// under test's, the commands `inPeer` builds on the peer's, through
    /// `taskset -c`, the same for both systems.
    var pinning = BenchPinning.off

    init(binary: String, offload: Bool = true, family: BenchFamily = .ipv4) {
        self.offload = offload
        self.family = family
        let pid = getpid()
        name = Self.prefix + "\(pid)-" + String(UInt32.random(in: 0..<0x10000), radix: 16)
        self.binary = binary
        logDirectory = NSTemporaryDirectory() + name
    }

    /// The namespace whose kernel drives the load against `system` (or, for
    /// netstack-preload, serves its clients).
    func peer(_ system: BenchSystem) -> String {
        system == .kernel ? kernelPeer : netstackPeer
    }

    /// `arguments` (a client) run on the stack in `…-np` through the preload
    /// library (`netstack run --api`), on the system under test's CPUs; with
    /// `spin`, its blocking calls spin that many microseconds before sleeping.
    func throughTheLibrary(_ arguments: [String], spin: Int = 0) -> [String] {
        pinning.taskset(peer: false) + ["ip", "netns", "exec", netstackPeer, binary, "run", "--api", apiPath,
                                        "--spin", String(spin), "--"]
            + arguments
    }

    /// `arguments` run in the peer namespace of `system` (of the
    /// busy-polling stack, for netstack with `busyPoll`), pinned to the
    /// peer's CPUs, or to the system under test's with `onSystemCPUs`
    /// (memory-bulk, whose one process is both ends of the system under test).
    func inPeer(_ system: BenchSystem, busyPoll: Bool = false, onSystemCPUs: Bool = false,
                _ arguments: [String]) -> [String] {
        let ns = system == .netstack && busyPoll ? busyPollPeer : peer(system)
        return pinning.taskset(peer: !onSystemCPUs) + ["ip", "netns", "exec", ns] + arguments
    }

    func setUp() throws {
        Self.removeStale()
        try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        for ns in [kernelPeer, kernelServer, netstackPeer] + (busyPollStack ? [busyPollPeer] : []) {
            try sh(["ip", "netns", "add", ns])
            namespaces.append(ns)
            try sh(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"])
        }
        let pid = getpid()
        let (vethPeer, vethServer) = ("vb\(pid)p", "vb\(pid)s")
        try sh(["ip", "link", "add", vethPeer, "netns", kernelPeer, "type", "veth",
                "peer", "name", vethServer, "netns", kernelServer])
        let v4 = BenchFamily.ipv4
        for (ns, dev, end) in [(kernelPeer, vethPeer, \BenchFamily.peerIP), (kernelServer, vethServer, \BenchFamily.serverIP)] {
            try sh(["ip", "netns", "exec", ns, "ip", "addr", "add", "\(v4[keyPath: end])/\(v4.prefixLength)", "dev", dev])
            if family == .ipv6 {
                try sh(["ip", "netns", "exec", ns, "ip", "-6", "addr", "add",
                        "\(family[keyPath: end])/\(family.prefixLength)", "dev", dev, "nodad"])
            }
            try sh(["ip", "netns", "exec", ns, "ip", "link", "set", dev, "up"])
        }

        try start("kernel iperf3 server", for: .kernel, in: kernelServer,
                  ["iperf3", "-s", "-B", serverIP, "-p", String(Self.iperf3Port)])
        try start("kernel echo server", for: .kernel, in: kernelServer,
                  [binary, "bench-peer", "echo-server", "--host", serverIP, "--port", String(Self.echoPort),
                   "--lifetime", "86400"])
        var stacks = [(label: "netstack", ns: netstackPeer, tap: "tapb\(pid)", extra: [String]())]
        if busyPollStack {
            stacks.append(("netstack busy-poll", busyPollPeer, "tapp\(pid)",
                           ["--busy-poll", String(Self.busyPollMicroseconds)]))
        }
        let addresses6 = family == .ipv6
            ? ["--host6", "\(family.peerIP)/\(family.prefixLength)", "--address6", "\(family.serverIP)/\(family.prefixLength)"]
            : []
        for s in stacks {
            let stack = try start(s.label, for: .netstack, in: s.ns,
                                  [binary, "up", "--tap", s.tap, "--host", "\(v4.peerIP)/\(v4.prefixLength)",
                                   "--address", v4.serverIP] + addresses6 + ["--log-level", "warning",
                                   "--offload", offload ? "on" : "off",
                                   "--serve", "iperf3:\(Self.iperf3Port),echo:\(Self.echoPort)"] + s.extra
                                  + (preload && s.ns == netstackPeer ? ["--api", apiPath] : []))
            try waitUntil("\(s.label) to print 'ready'", timeout: 30) {
                (try? String(contentsOfFile: stack.log, encoding: .utf8))?.contains("ready ") == true
            }
        }
        if preload {
            // The preload clients' peers, on the TAP's host side.
            let host = family.peerIP
            try start("kernel iperf3 server for netstack-preload", for: .netstackPreload, in: netstackPeer,
                      onPeerCPUs: true, ["iperf3", "-s", "-B", host, "-p", String(Self.iperf3Port)])
            try start("kernel echo server for netstack-preload", for: .netstackPreload, in: netstackPeer,
                      onPeerCPUs: true, [binary, "bench-peer", "echo-server", "--host", host,
                                         "--port", String(Self.echoPort), "--lifetime", "86400"])
            try waitUntil("the API socket and the kernel servers for netstack-preload", timeout: 15) {
                let listening = Shell.run(["ip", "netns", "exec", netstackPeer, "ss", "-Hltn"]).output
                return FileManager.default.fileExists(atPath: apiPath)
                    && listening.contains(family.endpoint(host, Self.iperf3Port))
                    && listening.contains(family.endpoint(host, Self.echoPort))
            }
        }
        try waitUntil("the kernel servers to listen", timeout: 15) {
            let listening = Shell.run(["ip", "netns", "exec", kernelServer, "ss", "-Hltun"]).output
            return listening.contains(family.endpoint(serverIP, Self.iperf3Port))
                && listening.components(separatedBy: family.endpoint(serverIP, Self.echoPort) + " ").count == 3
        }
    }

    /// The servers whose threads are not all on the system under test's
    /// CPUs, as "label: thread CPUs" (empty when off, or when all are): a
    /// check, from `/proc/PID/task/*/status`, that taskset did what was asked.
    func strayServerThreads() -> [String] {
        guard pinning.on else { return [] }
        var stray: [String] = []
        for s in servers where s.process.isRunning {
            let pid = s.process.processIdentifier
            let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")) ?? []
            var seen = Set<String>()
            for tid in tasks {
                guard let status = try? String(contentsOfFile: "/proc/\(pid)/task/\(tid)/status", encoding: .utf8),
                      let cpus = CPUList.allowed(fromStatus: status), cpus != (s.onPeerCPUs ? pinning.peerCPUs : pinning.systemCPUs) else { continue }
                seen.insert(CPUList.format(cpus))
            }
            if !seen.isEmpty { stray.append("\(s.label): " + seen.sorted().joined(separator: " ")) }
        }
        return stray
    }

    /// Throws if a server `system`'s measurements need (or any, for nil) has
    /// exited: every later measurement on it would fail.
    func checkServers(for system: BenchSystem? = nil) throws {
        // The preload system's clients run on the netstack system's stack.
        let needs: Set<BenchSystem> = system.map { $0 == .netstackPreload ? [$0, .netstack] : [$0] }
            ?? Set(BenchSystem.allCases)
        for s in servers where !s.process.isRunning && needs.contains(s.system) {
            throw BenchError("\(s.label) exited (status \(s.process.terminationStatus)): \(Self.tail(s.log))")
        }
    }

    /// Stops the servers (SIGTERM, then SIGKILL after 3 s) and deletes the
    /// namespaces. Safe to call more than once.
    func cleanUp() {
        for s in servers where s.process.isRunning { kill(s.process.processIdentifier, SIGTERM) }
        let deadline = Date().addingTimeInterval(3)
        while servers.contains(where: { $0.process.isRunning }) && Date() < deadline { usleep(20_000) }
        for s in servers where s.process.isRunning {
            kill(s.process.processIdentifier, SIGKILL)
            s.process.waitUntilExit()
        }
        servers = []
        for ns in namespaces.reversed() { Shell.run(["ip", "netns", "del", ns], interruptible: false) }
        namespaces = []
        try? FileManager.default.removeItem(atPath: logDirectory)
    }

    @discardableResult
    private func start(_ label: String, for system: BenchSystem, in ns: String, onPeerCPUs: Bool = false,
                       _ arguments: [String]) throws -> Server {
        let log = logDirectory + "/" + label.replacingOccurrences(of: " ", with: "-") + ".log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        guard let out = FileHandle(forWritingAtPath: log) else { throw BenchError("cannot write \(log)") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        // `taskset` and `ip netns exec` exec the command, so the pid is the
        // server's own, and the affinity taskset sets is every thread's it starts.
        p.arguments = pinning.taskset(peer: onPeerCPUs) + ["ip", "netns", "exec", ns] + arguments
        p.standardOutput = out
        p.standardError = out
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let server = Server(label: label, system: system, process: p, log: log, onPeerCPUs: onPeerCPUs)
        servers.append(server)
        return server
    }

    private func waitUntil(_ what: String, timeout: TimeInterval, _ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !condition() {
            if stopRequested.load(ordering: .relaxed) { throw BenchInterrupted() }
            try checkServers()
            guard Date() < deadline else { throw BenchError("timed out waiting for \(what)") }
            usleep(50_000)
        }
    }

    private func sh(_ arguments: [String]) throws {
        let r = Shell.run(arguments)
        guard r.status == 0 else {
            throw BenchError("\(arguments.joined(separator: " ")): \(r.output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
    }

    static func tail(_ path: String, lines: Int = 5) -> String {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).joined(separator: " / ")
    }

    /// Deletes namespaces left by a bench that was killed outright (SIGKILL
    /// cannot be caught): ours are named `nsbench-PID-…`, and only those whose
    /// process no longer exists are removed.
    static func removeStale() {
        for line in Shell.run(["ip", "netns", "list"]).output.split(separator: "\n") {
            guard let ns = line.split(separator: " ").first, ns.hasPrefix(prefix) else { continue }
            let pidText = ns.dropFirst(prefix.count).prefix { $0.isNumber }
            guard let pid = Int32(pidText), pid != getpid(), kill(pid, 0) != 0, errno == ESRCH else { continue }
            Shell.run(["ip", "netns", "del", String(ns)], interruptible: false)
        }
    }
}

/// A bench failure, said plainly.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// SIGINT or SIGTERM arrived: stop measuring, clean up, exit.
struct BenchInterrupted: Error {}
