import ArgumentParser
import Foundation
import NetStackApps

/// `netstack bench`: netstack against the Linux kernel's TCP/IP stack, in one
/// run, on the same machine, so the ratio means something even on a noisy one.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure netstack against the kernel's TCP/IP stack.",
        usage: """
            netstack bench [--quick] [--rounds <N>] [--duration <S>]
            [--scenario <NAME> ...] [--json <FILE>] [--report <FILE.html>]
            """,
        discussion: """
            Makes its own network namespaces (deleted afterwards, also on error or \
            SIGINT) and measures each scenario on the kernel (two namespaces joined by a \
            veth pair) and on netstack (`netstack up` on a TAP, the kernel as its peer), \
            side by side, alternating the two round by round. Needs root and iperf3.

            Scenarios:
              bulk-rx      one TCP stream, iperf3 sends to the system under test (Gbit/s)
              bulk-tx      iperf3 -R: the system under test sends (Gbit/s)
              tcp-rr       1-byte request/response transactions on one TCP connection
                           (per second)
              tcp-rr-busy-poll  the same against a second netstack run with
                           --busy-poll 50 (it spins after each frame instead of sleeping)
              udp-pps      64-byte UDP datagrams echoed, 32 in flight (per second)
              memory-bulk  one TCP stream inside one process: two netstacks over a
                           MemoryLink against two kernel sockets over loopback (Gbit/s;
                           netstack's packets per second besides)

            Prints the median and range (min–max) of the rounds per system, and \
            netstack/kernel, and says where it wrote --json and --report. Besides each \
            figure, its CPU cost: the whole machine's busy CPU time (/proc/stat) over the \
            measured interval, as CPU-seconds per GB (bulk; lower is better) or \
            transactions/datagrams per CPU-second. The line under the table names the \
            kernel's TCP congestion control in the bench's namespaces. Compare figures \
            only from a release build: swift build -c release.
            """
    )

    @Flag(help: "A short run, under a minute: 3 rounds of 0.5 s (iperf3: 1 s).")
    var quick = false

    @Option(help: ArgumentHelp("Write the results as JSON.", valueName: "FILE"))
    var json: String?

    @Option(help: ArgumentHelp("Write a self-contained HTML report (bar charts and the table).", valueName: "FILE.html"))
    var report: String?

    @Option(help: ArgumentHelp("Rounds per scenario and system (default 5; 3 with --quick).", valueName: "N"))
    var rounds: Int?

    @Option(help: ArgumentHelp("Seconds per measurement (default 5; 0.5 with --quick); iperf3 runs whole seconds, at least one.",
                               valueName: "S"))
    var duration: Double?

    @Option(parsing: .upToNextOption,
            help: ArgumentHelp("Scenarios to run (default all).", valueName: "NAME"))
    var scenario: [BenchScenario] = []

    @Option(help: ArgumentHelp("netstack's TAP offloads (checksums, 64 KiB segments): on or off (default on).",
                               valueName: "on|off"))
    var offload: LinkOptions.Switch = .on

    var plannedRounds: Int { rounds ?? (quick ? 3 : 5) }
    var plannedDuration: Double { duration ?? (quick ? 0.5 : 5) }
    var plannedScenarios: [BenchScenario] {
        scenario.isEmpty ? BenchScenario.allCases : BenchScenario.allCases.filter(scenario.contains)
    }

    func validate() throws {
        guard (1...100).contains(plannedRounds) else { throw ValidationError("--rounds \(plannedRounds): expected 1 to 100") }
        guard plannedDuration.isFinite, plannedDuration >= 0.1, plannedDuration <= 600 else {
            throw ValidationError("--duration \(plannedDuration): expected 0.1 to 600 seconds")
        }
    }

    func run() throws {
        guard geteuid() == 0 else {
            Console.error("netstack bench needs root: it creates network namespaces, a veth pair and a TAP device.")
            throw ExitCode(1)
        }
        let scenarios = plannedScenarios
        if scenarios.contains(where: \.usesIPerf3) && Shell.run(["iperf3", "--version"]).status != 0 {
            Console.error("netstack bench: bulk-rx and bulk-tx need iperf3 (apt-get install iperf3)")
            throw ExitCode(1)
        }
        installStopSignalHandlers(restart: true)
        var machine = MachineInfo.collect()
        if machine.build == "debug" {
            Console.error("netstack bench: this is a debug build; for figures use swift build -c release")
        }

        let lab = BenchLab(binary: Shell.selfPath, offload: offload == .on)
        lab.busyPollStack = scenarios.contains(.tcpRRBusyPoll)
        defer { lab.cleanUp() }
        let outcome: BenchRunner.Outcome
        do {
            Console.error("netstack bench: setting up namespaces \(lab.name)-{kp,ks,np\(lab.busyPollStack ? ",nb" : "")}")
            try lab.setUp()
            machine.tcpCongestionControl = KernelCongestionControl.describe(in: lab)
            machine.netstackOffload = offload == .on
            let runner = BenchRunner(scenarios: scenarios, rounds: plannedRounds,
                                     timing: BenchScenario.Timing(seconds: plannedDuration), progress: BenchProgress())
            outcome = try runner.run(in: lab)
        } catch {
            lab.cleanUp()
            // A stop kills the step under way, whatever error that step then reports.
            if error is BenchInterrupted || stopRequested.load(ordering: .relaxed) {
                Console.error("\nnetstack bench: interrupted; namespaces removed")
                throw ExitCode(130)
            }
            Console.error("netstack bench: \(error)")
            throw ExitCode(1)
        }
        lab.cleanUp()

        let result = BenchReport(results: outcome.results, machine: machine, rounds: plannedRounds,
                                 duration: plannedDuration, failures: outcome.failures)
        Console.line(BenchTable.render(result))
        Console.line(machine.summary)
        if let json {
            try write(try result.json(), to: json)
            Console.error("netstack bench: wrote the results as JSON to \(json)")
        }
        if let report {
            try write(BenchHTML.render(result), to: report)
            Console.error("netstack bench: wrote the HTML report to \(report)")
        }
        let missing = scenarios.count * BenchSystem.allCases.count - outcome.results.count
        if missing > 0 {
            Console.error("netstack bench: \(missing) figure(s) missing: every round failed (see above)")
            throw ExitCode(1)
        }
    }

    private func write(_ text: String, to path: String) throws {
        do {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            Console.error("netstack bench: cannot write \(path): \(error)")
            throw ExitCode(1)
        }
    }
}
