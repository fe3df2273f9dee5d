import Synchronization

/// What the API thread hands the loop.
enum APIEvent: Sendable {
    /// An application connected (its credentials checked); `descriptor` is its control socket.
    case connected(client: UInt32, descriptor: Int32)
    case request(client: UInt32, ControlRequest)
    /// Its control socket closed (exit, crash, kill -9): the loop resets its
    /// sockets and closes the descriptor.
    case hangup(client: UInt32)
    /// A connection came to the kernel's loopback listener of stack socket
    /// `socket` (`LoopbackListeners`); `descriptor` is its kernel socket.
    case loopbackAccepted(socket: UInt32, descriptor: Int32)
}

/// What the loop asks of the API thread (`APIThread.send`).
enum APICommand: Sendable {
    /// Socket `socket` listens on the stack's wildcard address; `listeners`
    /// are its kernel listeners on the loopback, the thread's from now on.
    case watchLoopback(socket: UInt32, listeners: [Int32])
    /// Close them: the socket stopped listening.
    case stopListeningOnLoopback(socket: UInt32)
}

/// The API thread's hand-over to the loop, LoopExecutor's pattern: a mutex
/// around an array swap, no work under it. The thread posts; the first post
/// after a drain submits the one drain closure to the loop's executor, so a
/// burst of events costs the loop one job and allocates nothing.
final class APIInbox: Sendable {
    private let events = Mutex<[APIEvent]>([])

    /// Appends `event`; returns true if the inbox was empty (the caller
    /// submits the drain).
    func post(_ event: APIEvent) -> Bool {
        events.withLock { list in
            list.append(event)
            return list.count == 1
        }
    }

    /// Swaps the waiting events into `into` (empty, its capacity kept).
    func take(into batch: inout [APIEvent]) {
        events.withLock { swap(&$0, &batch) }
    }
}
