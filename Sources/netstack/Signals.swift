import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Set by SIGINT or SIGTERM; the event loop checks it each turn.
let stopRequested = Atomic<Bool>(false)

/// Routes SIGINT and SIGTERM to `stopRequested`, so the stack can print its
/// counters and remove its TAP before exiting.
func installStopSignalHandlers() {
    for sig in [SIGINT, SIGTERM] {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in stopRequested.store(true, ordering: .relaxed) }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(sig, &action, nil)
    }
}
