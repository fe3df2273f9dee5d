import Synchronization

/// What the API thread hands the loop.
enum APIEvent: Sendable {
    /// An application connected (its credentials checked); `descriptor` is its control socket.
    case connected(client: UInt32, descriptor: Int32, uid: UInt32)
    case request(client: UInt32, ControlRequest)
    /// Its control socket closed (exit, crash, kill -9): the loop resets its
    /// sockets and closes the descriptor.
    case hangup(client: UInt32)
    /// The kernel's loopback listener `index` of stack socket `socket` has a
    /// connection waiting (`LoopbackListeners`; its watch is one-shot).
    case loopbackReadable(socket: UInt32, index: Int)
    /// The oldest hold for a child may have outlived its claim's timeout
    /// (`APIThread.wakeForHolds`): the loop expires what is due.
    case holdsDue
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
