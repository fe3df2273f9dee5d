import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// `netstack`: run, demonstrate and measure the stack.
@main
struct Netstack: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "netstack",
        abstract: "A user-space TCP/IP stack over a Linux TAP device.",
        subcommands: [Up.self, Run.self, Get.self, IPerf.self, Demo.self, Bench.self, BenchPeer.self]
    )

    /// Usage errors exit with 2, as the shell's own builtins do, rather than
    /// ArgumentParser's EX_USAGE (64).
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .validationFailure {
                let message = fullMessage(for: error)
                Console.error(message)
                Glibc.exit(2)
            }
            exit(withError: error)
        }
    }
}
