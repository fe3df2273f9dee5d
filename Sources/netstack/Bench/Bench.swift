import ArgumentParser
import Foundation
import NetStackApps

/// `netstack bench`: netstack against the Linux kernel's TCP/IP stack, in one
/// run, on the same machine, so the ratio means something even on a noisy one.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure netstack against the kernel's TCP/IP stack.",
        usage: """
            netstack bench [--quick] [--rounds <N>] [--max-rounds <N>] [--duration <S>]
            [--scenario <NAME> ...] [--family 4|6] [--offload on|off] [--preload on|off] [--pin on|off]
            [--json <FILE>] [--report <FILE.html>]
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

            Prints the median and range (min–max) of the rounds per system, the median's \
            spread (below), and netstack/kernel, and says where it wrote --json and \
            --report. Besides each figure, its CPU cost: the whole machine's busy CPU time \
            (/proc/stat) over the measured interval, as CPU-seconds per GB (bulk; lower is \
            better) or transactions/datagrams per CPU-second (tcp-rr, udp-pps; higher is \
            better).

            Extra rounds: after the rounds asked for, tcp-rr, tcp-rr-busy-poll and udp-pps \
            run more rounds (every system, still alternating) while any system's median \
            is not known to within 10%, up to --max-rounds; the lines under the table say \
            how many each ran and whether the median got there. The median's spread is the \
            width of its 90% confidence interval from the rounds' order statistics over the \
            median (below 8 rounds that is the whole range, with 3 rounds only a 75% \
            interval); unlike the range, it narrows as rounds are added. Their rounds are \
            short (1 s unless --duration says otherwise): a virtual machine's noise drifts \
            over tens of seconds, so many short alternating rounds pin a median down \
            sooner than a few long ones.

            Pinning (--pin on, the default with two or more CPUs): on both systems the \
            peer's processes (load generators, iperf3 clients) run on the first CPU the \
            bench may use and the system under test's (the kernel's echo and iperf3 \
            servers, netstack up; memory-bulk's one process) on the second, via taskset. \
            Only processes are pinned: the kernel's softirq work for a packet runs on the \
            CPU that sent it, so on the kernel system the server's receive path runs on the \
            peer's CPU (and the peer's on the server's), while netstack's receive path is \
            its own process. The bench itself, the kernel's own threads and anything else \
            on the machine are not pinned.

            A third system, netstack-preload (--preload on, the default when \
            libNetStackPreload.so is beside this binary): unmodified programs on the same \
            netstack through the preload library (netstack up --api, netstack run). Its \
            clients run on the stack against the kernel's servers on the TAP's host side: \
            iperf3 -c -R (bulk-rx: the stack receives), iperf3 -c (bulk-tx), and tcp-rr's \
            and udp-pps's clients. In tcp-rr-busy-poll its client spins instead \
            (netstack run --spin 50: a blocking call spins 50 µs, yielding the CPU, before \
            it sleeps), on the ordinary stack, whose loop shares its CPU. It does not run \
            memory-bulk; the table shows "—" there.

            IPv6 (--family 6): every scenario runs over IPv6 instead, on both systems: the \
            veth's ends and the TAP's host side get fd00::1/64 and fd00::2/64, netstack \
            up --address6 fd00::2/64, memory-bulk two netstacks at fd00::1 and fd00::2 \
            against kernel sockets over ::1.

            The lines under the table name the IP family, the kernel's TCP congestion control in the \
            bench's namespaces, the pinning, and the whole run's time. Compare figures only \
            from a release build: swift build -c release.
            """
    )

    @Flag(help: "A short run, under a minute: 3 rounds of 0.5 s (iperf3: 1 s), up to 5 for an unsteady small-packet median.")
    var quick = false

    @Option(help: ArgumentHelp("Write the results as JSON.", valueName: "FILE"))
    var json: String?

    @Option(help: ArgumentHelp("Write a self-contained HTML report (bar charts and the table).", valueName: "FILE.html"))
    var report: String?

    @Option(help: ArgumentHelp("Rounds per scenario and system (default 5; 3 with --quick).", valueName: "N"))
    var rounds: Int?

    @Option(help: ArgumentHelp("The most rounds tcp-rr, tcp-rr-busy-poll and udp-pps run while their median is unsteady (default 12 × --rounds, --rounds + 2 with --quick; --rounds' value: no extra rounds).",
                               valueName: "N"))
    var maxRounds: Int?

    @Option(help: ArgumentHelp("Pin the peer to one CPU and the system under test to another, alike for both systems: on or off (default on with 2 or more CPUs).",
                               valueName: "on|off"))
    var pin: LinkOptions.Switch?

    @Option(help: ArgumentHelp("Seconds per measurement (default 5, and 1 for tcp-rr, tcp-rr-busy-poll and udp-pps; 0.5 for all with --quick); iperf3 runs whole seconds, at least one.",
                               valueName: "S"))
    var duration: Double?

    @Option(parsing: .upToNextOption,
            help: ArgumentHelp("Scenarios to run (default all).", valueName: "NAME"))
    var scenario: [BenchScenario] = []

    @Option(help: ArgumentHelp("netstack's TAP offloads (checksums, 64 KiB segments): on or off (default on).",
                               valueName: "on|off"))
    var offload: LinkOptions.Switch = .on

    @Option(help: ArgumentHelp("The IP family every scenario runs over, on both systems: 4 or 6 (default 4).",
                               valueName: "4|6"))
    var family: BenchFamily = .ipv4

    @Option(help: ArgumentHelp("Also measure unmodified programs through the preload library (netstack-preload): on or off (default on when libNetStackPreload.so is beside this binary).",
                               valueName: "on|off"))
    var preload: LinkOptions.Switch?

    var plannedRounds: Int { rounds ?? (quick ? 3 : 5) }
    /// --quick allows 2 extra rounds, not 6: on a noisy machine every small-packet
    /// scenario takes them all, and three systems took 71 s at 9 rounds, 55 s at 6.
    var roundPolicy: BenchRoundPolicy {
        BenchRoundPolicy(requested: plannedRounds, maximum: maxRounds ?? (quick ? plannedRounds + 2 : nil))
    }
    var plannedDuration: Double { duration ?? (quick ? 0.5 : 5) }
    /// The small-packet rounds' length: `--duration` when given, else 1 s
    /// (0.5 with --quick). See `BenchScenario.Timing.steadiedSeconds`.
    var plannedSteadiedDuration: Double { duration ?? (quick ? 0.5 : 1) }
    var timing: BenchScenario.Timing {
        BenchScenario.Timing(seconds: plannedDuration, steadiedSeconds: plannedSteadiedDuration)
    }
    var plannedScenarios: [BenchScenario] {
        scenario.isEmpty ? BenchScenario.allCases : BenchScenario.allCases.filter(scenario.contains)
    }

    func validate() throws {
        guard (1...100).contains(plannedRounds) else { throw ValidationError("--rounds \(plannedRounds): expected 1 to 100") }
        if let maxRounds, !(plannedRounds...300).contains(maxRounds) {
            throw ValidationError("--max-rounds \(maxRounds): expected \(plannedRounds) (the rounds asked for) to 300")
        }
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
        let pinning = try choosePinning()
        installStopSignalHandlers(restart: true)
        let started = Date()
        var machine = MachineInfo.collect()
        if machine.build == "debug" {
            Console.error("netstack bench: this is a debug build; for figures use swift build -c release")
        }

        let libraryPresent = FileManager.default.fileExists(atPath: Run.libraryPath())
        if preload == .on && !libraryPresent {
            Console.error("netstack bench: --preload on needs \(Run.libraryPath()): swift build -c release --product NetStackPreload")
            throw ExitCode(1)
        }
        let systems: [BenchSystem] = [.kernel, .netstack] + ((preload ?? (libraryPresent ? .on : .off)) == .on
                                                            ? [.netstackPreload] : [])
        let lab = BenchLab(binary: Shell.selfPath, offload: offload == .on, family: family)
        lab.preload = systems.contains(.netstackPreload)
        lab.busyPollStack = scenarios.contains(.tcpRRBusyPoll)
        lab.pinning = pinning
        defer { lab.cleanUp() }
        let outcome: BenchRunner.Outcome
        do {
            Console.error("netstack bench: setting up namespaces \(lab.name)-{kp,ks,np\(lab.busyPollStack ? ",nb" : "")}")
            try lab.setUp()
            machine.tcpCongestionControl = KernelCongestionControl.describe(in: lab)
            machine.netstackOffload = offload == .on
            machine.family = family.name
            machine.pinning = pinning
            for stray in lab.strayServerThreads() {
                Console.error("netstack bench: not all on CPU \(CPUList.format(pinning.systemCPUs)): \(stray)")
            }
            let runner = BenchRunner(scenarios: scenarios, systems: systems, policy: roundPolicy,
                                     timing: timing, progress: BenchProgress())
            Console.error("netstack bench: \(runner.plannedMeasurements) measurements"
                          + " of \(BenchFormat.number(plannedDuration)) s"
                          + (plannedSteadiedDuration != plannedDuration && scenarios.contains(where: \.steadied)
                             ? " (small-packet: \(BenchFormat.number(plannedSteadiedDuration)) s)" : "")
                          + (scenarios.contains(where: \.usesIPerf3) ? " (iperf3: \(runner.timing.bulkSeconds) s)" : "")
                          + (runner.maximumMeasurements > runner.plannedMeasurements
                             ? ", at most \(runner.maximumMeasurements) with extra rounds for unsteady small-packet medians"
                             : "")
                          + " (\(BenchFormat.elapsed(runner.maximumMeasuringSeconds)) of measuring at most); "
                          + pinning.summary)
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

        let elapsed = Date().timeIntervalSince(started)
        var result = BenchReport(results: outcome.results, machine: machine, rounds: plannedRounds,
                                 duration: plannedDuration, failures: outcome.failures,
                                 scenarioRounds: outcome.rounds, elapsedSeconds: elapsed)
        result.systems = systems
        if plannedSteadiedDuration != plannedDuration { result.steadiedDuration = plannedSteadiedDuration }
        result.skipped = outcome.skipped.isEmpty ? nil : outcome.skipped
        Console.line(BenchTable.render(result))
        for note in BenchTable.roundNotes(result) { Console.line(note) }
        for skip in outcome.skipped { Console.line("\(skip.system.rawValue) does not run \(skip.scenario): \(skip.reason)") }
        Console.line(machine.summary)
        Console.line("Whole run: \(BenchFormat.elapsed(elapsed)), set-up and clean-up included.")
        if let json {
            try write(try result.json(), to: json)
            Console.error("netstack bench: wrote the results as JSON to \(json)")
        }
        if let report {
            try write(BenchHTML.render(result), to: report)
            Console.error("netstack bench: wrote the HTML report to \(report)")
        }
        let missing = scenarios.count * systems.count - outcome.skipped.count - outcome.results.count
        if missing > 0 {
            Console.error("netstack bench: \(missing) figure(s) missing: every round failed (see above)")
            throw ExitCode(1)
        }
    }

    /// `--pin`, or on when the bench may use two or more CPUs. Pinning needs
    /// taskset (util-linux): asked for, its absence is an error; by default,
    /// a warning and no pinning.
    private func choosePinning() throws -> BenchPinning {
        if pin == .off { return .off }
        let allowed = MachineInfo.allowedCPUs()
        guard let plan = BenchPinning.plan(allowed: allowed) else {
            if pin == .on {
                Console.error("netstack bench: --pin on needs two CPUs; this process may use "
                              + "\(allowed.isEmpty ? "none" : "only CPU " + CPUList.format(allowed))")
                throw ExitCode(1)
            }
            return .off
        }
        guard Shell.run(["taskset", "-c", CPUList.format(plan.peerCPUs), "true"]).status == 0 else {
            Console.error("netstack bench: pinning needs taskset (apt-get install util-linux)"
                          + (pin == .on ? "; or --pin off" : "; running unpinned"))
            if pin == .on { throw ExitCode(1) }
            return .off
        }
        return plan
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
