import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Set by SIGINT or SIGTERM; the event loop checks it each turn.
let stopRequested = Atomic<Bool>(false)

/// Routes SIGINT and SIGTERM to `stopRequested`, so the stack can print its
/// counters and remove its TAP before exiting. The stack wants its wait in
/// io_uring interrupted (EINTR) to see the flag at once; `restart` suits a
/// caller blocked in Foundation's reads and waits instead (`bench`).
func installStopSignalHandlers(restart: Bool = false) {
    for sig in [SIGINT, SIGTERM] {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in stopRequested.store(true, ordering: .relaxed) }
        sigemptyset(&action.sa_mask)
        action.sa_flags = restart ? SA_RESTART : 0
        sigaction(sig, &action, nil)
    }
}
