import Foundation

/// Small helpers for running the kernel-side tools that `demo` drives.
enum Shell {
    /// Runs a command to completion, returning its exit status and combined output.
    /// An `interruptible` command is killed once a stop is requested (SIGINT
    /// to `bench`); clean-up commands are not.
    @discardableResult
    static func run(_ arguments: [String], timeout: TimeInterval = 30,
                    interruptible: Bool = true) -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = arguments
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        do { try p.run() } catch { return (127, "cannot run \(arguments[0]): \(error)") }
        // The child is killed if it outlives the timeout or a stop is
        // requested (SIGINT to `bench`), which ends the read below.
        let pid = p.processIdentifier
        let deadline = DispatchTime.now() + timeout
        let watchdog = DispatchSource.makeTimerSource(queue: .global())
        watchdog.schedule(deadline: .now() + .milliseconds(50), repeating: .milliseconds(50))
        watchdog.setEventHandler {
            if DispatchTime.now() >= deadline || (interruptible && stopRequested.load(ordering: .relaxed)) {
                kill(pid, SIGKILL)
            }
        }
        watchdog.resume()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        watchdog.cancel()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// This executable's path, to start the stack as a child.
    static var selfPath: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }
}
