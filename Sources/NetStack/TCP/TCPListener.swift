/// A passive open on one port (RFC 9293 3.10.1, "LISTEN").
///
/// Both queues are bounded, as in Linux: at most `synBacklog` half-open
/// connections (SYN-RECEIVED, the `SYNQueue`), beyond which a new SYN is
/// answered with a SYN cookie (`TCPConfiguration.synCookies`, RFC 4987 3.6),
/// or, with cookies off, evicts the oldest entry if its SYN-ACK already went
/// unanswered, or is dropped (the client retries); and at most `backlog` established
/// connections waiting for `accept()`, beyond which, as in Linux, a new SYN
/// goes unanswered and the final ACK of a handshake already under way is
/// dropped, leaving the connection half-open (or the cookie unanswered)
/// until the client's retransmission finds room.
public final class TCPListener: FamilyBound {
    public let port: UInt16
    /// The families it takes; a SYN of the other finds the port closed.
    public let families: IPFamilies
    public let sharesPort: Bool
    public let backlog: Int
    public let synBacklog: Int
    /// What its connections are made with (`configure`).
    private(set) var configuration: TCPConfiguration
    /// The half-open connections, oldest first.
    var synQueue = SYNQueue()
    /// Half-open connections waiting for the handshake's final ACK.
    public var halfOpen: Int { synQueue.count }
    /// When this listener last answered a SYN with a cookie: an ACK matching
    /// nothing is checked as a cookie only within a cookie's lifetime of it
    /// (Linux's `tcp_synq_no_recent_overflow`), so a blind attacker cannot
    /// try to guess one while none are in use.
    var lastCookieSent: Instant?
    private var ready: [TCPConnection] = []
    private var readyHead = 0
    /// Called for each connection that completes its handshake. When set,
    /// connections go straight to it instead of the accept queue.
    public var onAccept: ((TCPConnection) -> Void)?
    public internal(set) var isClosed = false
    /// The layer it listens on, so an application can close it through the
    /// listener alone. Cleared when it closes and when the layer goes away
    /// (`releaseApplication`), so it never outlives the layer. Not weak: a
    /// weak reference would give the layer a side table (see `TCPConnection.serviceQueue`).
    unowned(unsafe) var layer: TCPLayer?

    init(port: UInt16, families: IPFamilies = .both, sharesPort: Bool = false, backlog: Int, synBacklog: Int,
         configuration: TCPConfiguration) {
        self.port = port
        self.families = families
        self.sharesPort = sharesPort
        self.backlog = backlog
        self.synBacklog = synBacklog
        self.configuration = configuration
    }

    /// Stops listening (`TCPLayer.close(_:)`): a new SYN draws a RST, and
    /// handshakes in progress and connections nobody accepted are reset.
    /// Nothing happens once closed or once the stack is gone.
    public func close() {
        layer?.close(self)
    }

    /// Changes what connections made from now on get, as setsockopt on a
    /// listening socket does on Linux (its children copy its options).
    public func configure(_ change: (inout TCPConfiguration) -> Void) {
        change(&configuration)
    }

    /// Connections waiting to be accepted.
    public var pendingCount: Int { ready.count - readyHead }

    /// Takes the oldest established connection, if any.
    public func accept() -> TCPConnection? {
        guard readyHead < ready.count else { return nil }
        let c = ready[readyHead]
        readyHead += 1
        if readyHead == ready.count {
            ready.removeAll(keepingCapacity: true)
            readyHead = 0
        }
        return c
    }

    /// Empties the accept queue (the listener is closing).
    func takeUnaccepted() -> ArraySlice<TCPConnection> {
        let waiting = ready[readyHead...]
        ready = []
        readyHead = 0
        return waiting
    }

    /// Drops the application's callback and the connections nobody accepted
    /// (the layer is going away; see `TCPLayer.releaseApplications`).
    func releaseApplication() {
        layer = nil
        onAccept = nil
        hasRoom = nil
        ready = []
        readyHead = 0
    }

    /// With `onAccept`, whether its owner's queue takes one more (the socket
    /// API's, which holds what its application has not accepted); nil: always.
    public var hasRoom: (() -> Bool)?

    var canAcceptMore: Bool {
        guard onAccept != nil else { return pendingCount < backlog }
        return hasRoom?() ?? true
    }

    /// A handshake finished.
    func established(_ c: TCPConnection) {
        if let onAccept {
            onAccept(c)
        } else {
            ready.append(c)
        }
    }
}
