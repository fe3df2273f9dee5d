import ArgumentParser
import NetStack

/// `--shutdown-grace SECONDS`, for the commands that run until a signal.
struct ShutdownOptions: ParsableArguments {
    @Option(parsing: .unconditional,
            help: ArgumentHelp("On SIGTERM or SIGINT, how long open connections get to finish closing (our FIN sent, the peer's received) before the rest are reset; a second signal resets them at once (default 2).",
                               valueName: "SECONDS"))
    var shutdownGrace: Double = 2

    /// The grace period, checked.
    func grace() throws -> Duration {
        guard shutdownGrace.isFinite, shutdownGrace >= 0, shutdownGrace <= 3600 else {
            throw ValidationError("--shutdown-grace \(shutdownGrace): expected seconds from 0 to 3600")
        }
        return .nanoseconds(Int64(shutdownGrace * 1e9))
    }
}

/// What a graceful shutdown did.
struct ShutdownOutcome {
    /// Connections still open when it began (not counting TIME-WAIT).
    var open: Int
    /// Connections reset at the end: the grace period ran out, or a second signal came.
    var reset: Int
}

/// Takes the stack down after the first stop signal: stop accepting (new
/// SYNs get RST), close every connection with a FIN after its queued data,
/// keep the loop running until every connection has closed (or waits in
/// TIME-WAIT), `grace` has passed or a second signal came, then reset what
/// is left and flush. A stack with nothing open returns at once.
@discardableResult
func shutDownGracefully(_ loop: any StackLoop, grace: Duration) -> ShutdownOutcome {
    let stack = loop.stack
    let clock = loop.clock
    let deadline = clock.now + grace
    let open = stack.openConnectionCount
    stack.beginShutdown()
    loop.flush()
    if stack.openConnectionCount > 0 && !immediateStopRequested && grace > .zero {
        // Short sleeps, so the deadline is kept to a few milliseconds.
        loop.maximumSleep = min(loop.maximumSleep, .milliseconds(5))
        // The table is walked at most every few milliseconds, not every turn.
        var nextCheck = clock.now
        loop.run(until: {
            if immediateStopRequested { return true }
            let now = clock.now
            if now >= deadline { return true }
            guard now >= nextCheck else { return false }
            nextCheck = now + .milliseconds(2)
            return stack.openConnectionCount == 0
        })
    }
    return ShutdownOutcome(open: open, reset: resetRemaining(loop))
}

/// Resets every connection left, flushes, and returns how many were reset.
/// After a reset the loop runs a little longer (50 ms): a RST is taken only
/// if its sequence number is exactly the one the peer expects next (RFC 5961
/// 3.2), else the peer answers with a challenge ACK, which the stack, no
/// longer knowing the connection, answers with a RST at the ACK's number
/// (RFC 9293 3.10.7.1). Data still in flight makes that likely.
@discardableResult
func resetRemaining(_ loop: any StackLoop) -> Int {
    let reset = loop.stack.resetAll()
    loop.flush()
    if reset > 0 {
        let clock = loop.clock
        let settle = clock.now + .milliseconds(50)
        loop.run(until: { clock.now >= settle })
    }
    return reset
}
