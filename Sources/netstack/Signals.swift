import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Set by the first SIGINT or SIGTERM; the event loop checks it each turn.
let stopRequested = Atomic<Bool>(false)
/// SIGINT and SIGTERM received so far: the first asks for a graceful stop,
/// a second for an immediate one (`immediateStopRequested`).
let stopSignals = Atomic<Int>(0)

/// A second stop signal came: whatever is still open is reset at once.
var immediateStopRequested: Bool { stopSignals.load(ordering: .relaxed) >= 2 }

/// Routes SIGINT and SIGTERM to `stopRequested` and `stopSignals`, so the
/// stack can close its connections, print its counters and remove its TAP
/// before exiting. The stack wants its wait in io_uring interrupted (EINTR)
/// to see the flag at once; `restart` suits a caller blocked in
/// Foundation's reads and waits instead (`bench`).
func installStopSignalHandlers(restart: Bool = false) {
    for sig in [SIGINT, SIGTERM] {
        var action = sigaction()
        // Lock-free atomics only: async-signal-safe.
        action.__sigaction_handler.sa_handler = { _ in
            stopSignals.add(1, ordering: .relaxed)
            stopRequested.store(true, ordering: .relaxed)
        }
        sigemptyset(&action.sa_mask)
        action.sa_flags = restart ? SA_RESTART : 0
        sigaction(sig, &action, nil)
    }
}
