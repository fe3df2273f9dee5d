import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

/// `netstack run`: runs an unmodified program on a running stack, its
/// sockets served by `netstack up --api PATH` through the preload library.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a program with its TCP and UDP sockets on the stack (LD_PRELOAD).",
        discussion: """
            Runs CMD with libNetStackPreload.so (found next to this binary) preloaded and \
            the API socket's path in NETSTACK_API, and exits with CMD's status. AF_INET \
            and AF_INET6 stream and datagram sockets then live on the stack that `netstack up --api \
            PATH` runs; every other descriptor stays the kernel's.

            --spin USEC makes a blocking call (read, recv, accept, poll's waits on stack \
            sockets) spin that long, yielding the CPU each turn, before it sleeps, as \
            libvma's and Onload's busy polling: a reply within it is taken without a \
            sleep and a wake-up, at the cost of the CPU time spun (NETSTACK_SPIN_USEC; \
            default 0, sleep at once).

            Example:
              netstack run --api /run/netstack.sock -- curl -s http://10.0.0.1:8000/file
            """
    )

    @Option(help: ArgumentHelp("The stack's API socket (default: $NETSTACK_API, else /run/netstack.sock).", valueName: "PATH"))
    var api: String?

    @Option(help: ArgumentHelp("Spin this many microseconds before a blocking call sleeps (default: $NETSTACK_SPIN_USEC, else 0).", valueName: "USEC"))
    var spin: Int?

    @Argument(parsing: .captureForPassthrough, help: ArgumentHelp("The program and its arguments.", valueName: "CMD"))
    var command: [String] = []

    func run() throws {
        var argv = command
        // The command's arguments are passed through whole, so ask for help before `--` by hand.
        if argv.first == "-h" || argv.first == "--help" { throw CleanExit.helpRequest(self) }
        if argv.first == "--" { argv.removeFirst() }
        guard let program = argv.first else {
            throw ValidationError("expected a command after --")
        }
        let path = api ?? (getenv("NETSTACK_API").map { String(cString: $0) }) ?? "/run/netstack.sock"
        let library = Self.libraryPath()
        guard access(library, R_OK) == 0 else {
            Console.error("netstack: \(library) is missing: build it with `swift build --product NetStackPreload`")
            throw ExitCode(1)
        }
        let preload = getenv("LD_PRELOAD").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
        setenv("LD_PRELOAD", preload.map { "\(library) \($0)" } ?? library, 1)
        setenv("NETSTACK_API", path, 1)
        if let spin {
            guard (0..<1_000_000).contains(spin) else { throw ValidationError("--spin must be 0..<1000000 microseconds") }
            setenv("NETSTACK_SPIN_USEC", String(spin), 1)
        }
        // exec: CMD takes over this process, so its status is ours and signals reach it directly.
        var cArgs = argv.map { strdup($0) }
        cArgs.append(nil)
        execvp(program, cArgs)
        let e = errno
        Console.error("netstack: cannot run \(program): \(String(cString: strerror(e)))")
        throw ExitCode(e == ENOENT ? 127 : 126)
    }

    /// libNetStackPreload.so beside the running executable.
    static func libraryPath() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        let exe = n > 0 ? String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
        let directory = exe.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        return "\(directory.isEmpty ? "." : directory)/libNetStackPreload.so"
    }
}
