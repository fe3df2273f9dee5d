import ArgumentParser
import Foundation
import NetStackApps

/// What `netstack bench` measures, each on both systems.
enum BenchScenario: String, CaseIterable, ExpressibleByArgument {
    /// One TCP stream, the peer sends to the system under test (`iperf3 -c`).
    case bulkRX = "bulk-rx"
    /// One TCP stream, the system under test sends (`iperf3 -c -R`).
    case bulkTX = "bulk-tx"
    /// 1-byte request/response transactions on one TCP connection.
    case tcpRR = "tcp-rr"
    /// tcp-rr against a netstack that busy-polls (`--busy-poll`); the
    /// kernel as in tcp-rr.
    case tcpRRBusyPoll = "tcp-rr-busy-poll"
    /// 64-byte UDP datagrams echoed, 32 in flight.
    case udpPPS = "udp-pps"
    /// One TCP stream inside one process: two netstacks over a MemoryLink
    /// against two kernel sockets over loopback.
    case memoryBulk = "memory-bulk"

    var unit: String {
        switch self {
        case .bulkRX, .bulkTX, .memoryBulk: "Gbit/s"
        case .tcpRR, .tcpRRBusyPoll: "transactions/s"
        case .udpPPS: "datagrams/s"
        }
    }

    /// The unit of the secondary figure, for the scenarios that have one.
    var secondaryUnit: String? { self == .memoryBulk ? "packets/s" : nil }

    var usesIPerf3: Bool { self == .bulkRX || self == .bulkTX }

    /// The small-packet scenarios, whose figures a busy machine moves most:
    /// they get extra rounds while their medians are unsteady (`BenchRoundPolicy`).
    var steadied: Bool { self == .tcpRR || self == .tcpRRBusyPoll || self == .udpPPS }

    /// The unit of the CPU efficiency figure: CPU-seconds per GB for the
    /// bulk scenarios, the scenario's own unit per CPU-second otherwise.
    var efficiencyUnit: (unit: String, lowerIsBetter: Bool) {
        switch self {
        case .bulkRX, .bulkTX, .memoryBulk: ("CPU-s/GB", true)
        case .tcpRR, .tcpRRBusyPoll: ("transactions/CPU-s", false)
        case .udpPPS: ("datagrams/CPU-s", false)
        }
    }

    /// How long the preload system's client spins before it sleeps in
    /// tcp-rr-busy-poll (`netstack run --spin`): the in-process stack's
    /// `--busy-poll 50`.
    static let librarySpinMicroseconds = 50

    /// Why `system` does not run this scenario, nil when it does. The
    /// preload system runs the unmodified clients (iperf3, tcp-rr's) through
    /// the library against the kernel's servers; busy-polling and
    /// memory-bulk are the in-process stack's own.
    func skipReason(on system: BenchSystem) -> String? {
        guard system == .netstackPreload else { return nil }
        switch self {
        case .bulkRX, .bulkTX, .tcpRR, .tcpRRBusyPoll, .udpPPS: return nil
        case .memoryBulk: return "one process with two stacks, no application socket"
        }
    }

    /// One round's figures.
    struct Sample {
        var value: Double
        var secondary: Double?
        /// The machine's busy CPU-seconds over the measured interval, nil
        /// without a /proc/stat reading.
        var cpuSeconds: Double?
        /// What the interval moved: bytes for the bulk scenarios,
        /// transactions or echoed datagrams otherwise.
        var work: Double?
    }

    /// The round's CPU efficiency in `efficiencyUnit`, nil without a reading.
    func efficiency(_ sample: Sample) -> Double? {
        efficiencyUnit.lowerIsBetter
            ? BenchEfficiency.cpuSecondsPerGB(cpuSeconds: sample.cpuSeconds, bytes: sample.work)
            : BenchEfficiency.perCPUSecond(count: sample.work, cpuSeconds: sample.cpuSeconds)
    }

    /// How long each round runs.
    struct Timing {
        /// Seconds per memory-bulk round, and the iperf3 rounds' (rounded).
        var seconds: Double
        /// Seconds per small-packet round (tcp-rr, tcp-rr-busy-poll,
        /// udp-pps). Shorter than the bulk rounds by default: this machine's
        /// noise drifts over tens of seconds and moves every system of a
        /// round alike, so many short rounds, alternating systems, pin the
        /// median down sooner than a few long ones (1 s rounds: tcp-rr's
        /// median within 10% after 37 rounds in 6 minutes; 5 s rounds: not
        /// after 15).
        var steadiedSeconds: Double
        /// Whole seconds per iperf3 round (`iperf3 -t` takes an integer).
        var bulkSeconds: Int {
            max(1, Int(seconds.rounded()))
        }

        /// The timed interval of one round of `scenario`.
        func seconds(for scenario: BenchScenario) -> Double {
            scenario.usesIPerf3 ? Double(bulkSeconds) : scenario.steadied ? steadiedSeconds : seconds
        }
    }

    /// Measures one round on `system`, from its peer namespace.
    func measure(on system: BenchSystem, in lab: BenchLab, timing: Timing) throws -> Sample {
        if system == .netstackPreload { return try measureThroughTheLibrary(in: lab, timing: timing) }
        let host = lab.serverIP
        let seconds = String(timing.seconds(for: self))
        switch self {
        case .bulkRX, .bulkTX:
            var arguments = ["iperf3", "-c", host, "-p", String(BenchLab.iperf3Port), "-t", String(timing.bulkSeconds),
                             "-J", "--connect-timeout", "3000"]
            if self == .bulkTX { arguments.append("-R") }
            // The interval is the whole iperf3 run, its connection set-up
            // and result exchange included: the client's lifetime is all
            // the bench can bracket from outside.
            let cpuStart = CPUTime.read()
            let r = Shell.run(lab.inPeer(system, arguments), timeout: Double(timing.bulkSeconds) + 20)
            let cpuSeconds = cpuStart?.seconds(until: CPUTime.read())
            let received = try Self.iperf3Received(r.output)
            return Sample(value: received.bitsPerSecond / 1e9, cpuSeconds: cpuSeconds, work: received.bytes)
        case .tcpRR, .tcpRRBusyPoll:
            return try peer(lab, system, ["tcp-rr", "--host", host, "--port", String(BenchLab.echoPort),
                                          "--duration", seconds], timing)
        case .udpPPS:
            return try peer(lab, system, ["udp-pps", "--host", host, "--port", String(BenchLab.echoPort),
                                          "--duration", seconds, "--window", "32", "--size", "64"], timing)
        case .memoryBulk:
            return try peer(lab, system, ["memory-bulk", "--system", system.rawValue, "--duration", seconds,
                                          "--offload", lab.offload ? "on" : "off", "--family", lab.family.rawValue], timing)
        }
    }

    /// The preload system's round: the client is the application on the
    /// stack, run by `netstack run` on the system under test's CPUs, and the
    /// kernel's servers on the TAP's host side are its peer. The system under
    /// test receives in bulk-rx (`iperf3 -R`) and sends in bulk-tx.
    private func measureThroughTheLibrary(in lab: BenchLab, timing: Timing) throws -> Sample {
        let host = lab.family.peerIP
        switch self {
        case .bulkRX, .bulkTX:
            var arguments = ["iperf3", "-c", host, "-p", String(BenchLab.iperf3Port), "-t", String(timing.bulkSeconds),
                             "-J", "--connect-timeout", "3000"]
            if self == .bulkRX { arguments.append("-R") }
            let cpuStart = CPUTime.read()
            let r = Shell.run(lab.throughTheLibrary(arguments), timeout: Double(timing.bulkSeconds) + 20)
            let cpuSeconds = cpuStart?.seconds(until: CPUTime.read())
            let received = try Self.iperf3Received(r.output)
            return Sample(value: received.bitsPerSecond / 1e9, cpuSeconds: cpuSeconds, work: received.bytes)
        case .tcpRR, .tcpRRBusyPoll, .udpPPS:
            let client = self == .udpPPS ? ["udp-pps", "--window", "32", "--size", "64"] : ["tcp-rr"]
            let arguments = [lab.binary, "bench-peer"] + client
                + ["--host", host, "--port", String(BenchLab.echoPort), "--duration", String(timing.seconds(for: self))]
            // Busy polling through the library is the application's: it spins
            // (yielding) where it would sleep. The stack's loop shares its CPU
            // and must not spin too, so the stack is the ordinary one.
            let spin = self == .tcpRRBusyPoll ? Self.librarySpinMicroseconds : 0
            let r = Shell.run(lab.throughTheLibrary(arguments, spin: spin), timeout: timing.seconds(for: self) + 20)
            guard r.status == 0, let fields = Self.resultFields(r.output), let value = fields["value"] else {
                throw BenchError("bench-peer \(client[0]) through the library failed (status \(r.status)): "
                                 + r.output.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            return Sample(value: value, cpuSeconds: fields["cpu"], work: fields[self == .udpPPS ? "echoes" : "transactions"])
        case .memoryBulk:
            throw BenchError("\(rawValue) does not run through the library: \(skipReason(on: .netstackPreload) ?? "")")
        }
    }

    /// Runs `bench-peer ARGUMENTS` in the peer namespace and reads its result line.
    private func peer(_ lab: BenchLab, _ system: BenchSystem, _ arguments: [String], _ timing: Timing) throws -> Sample {
        let command = lab.inPeer(system, busyPoll: self == .tcpRRBusyPoll, onSystemCPUs: self == .memoryBulk,
                                 [lab.binary, "bench-peer"] + arguments)
        let r = Shell.run(command, timeout: timing.seconds(for: self) + 20)
        guard r.status == 0, let fields = Self.resultFields(r.output), let value = fields["value"] else {
            throw BenchError("bench-peer \(arguments[0]) failed (status \(r.status)): "
                             + r.output.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        // bench-peer reads the CPU time around its own measured loop (after
        // connecting and warming up), and says what the loop moved.
        let work: String = switch self {
        case .tcpRR, .tcpRRBusyPoll: "transactions"
        case .udpPPS: "echoes"
        case .bulkRX, .bulkTX, .memoryBulk: "bytes"
        }
        return Sample(value: value, secondary: fields["packets"], cpuSeconds: fields["cpu"], work: fields[work])
    }

    /// The `result key=value ...` line that `bench-peer` prints.
    static func resultFields(_ output: String) -> [String: Double]? {
        guard let line = output.split(separator: "\n").last(where: { $0.hasPrefix("result ") }) else { return nil }
        var fields: [String: Double] = [:]
        for item in line.split(separator: " ").dropFirst() {
            let pair = item.split(separator: "=", maxSplits: 1)
            if pair.count == 2, let v = Double(pair[1]) { fields[String(pair[0])] = v }
        }
        return fields
    }

    /// The receiver's rate and byte count from `iperf3 -J`:
    /// `end.sum_received.bits_per_second` and `.bytes` (on the server for a
    /// forward test, on the client with `-R`), so bytes still in flight when
    /// the sender stops are not counted as delivered. The bytes are nil if
    /// iperf3 left them out; the rate alone is required.
    static func iperf3Received(_ output: String) throws -> (bitsPerSecond: Double, bytes: Double?) {
        guard let open = output.firstIndex(of: "{"), let close = output.lastIndex(of: "}"),
              let object = try? JSONSerialization.jsonObject(with: Data(output[open...close].utf8)) as? [String: Any]
        else {
            throw BenchError("iperf3 printed no JSON: " + output.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        if let error = object["error"] as? String { throw BenchError("iperf3: \(error)") }
        guard let end = object["end"] as? [String: Any], let sum = end["sum_received"] as? [String: Any],
              let bps = (sum["bits_per_second"] as? NSNumber)?.doubleValue, bps > 0 else {
            throw BenchError("iperf3 JSON has no end.sum_received.bits_per_second")
        }
        return (bps, (sum["bytes"] as? NSNumber)?.doubleValue)
    }
}
