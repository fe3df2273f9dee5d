import DequeModule
import Logging
import NetStackWire

/// TCP for one interface: the connection table, listeners, the LISTEN and
/// CLOSED steps of segment arrival, each connection's lifecycle, one timer per
/// connection on a wheel, and TCP's counters and drop reasons.
///
/// IP reaches it through `receive(_:now:)`; it reaches IP through the
/// `IPOutput` its interface attached. Not generic over the device. Owned by
/// one event loop; not thread-safe.
public final class TCPLayer {
    var connections: [TCPFourTuple: TCPConnection] = [:]
    /// The connection the latest segment belonged to. Bulk transfers and
    /// request/response traffic hit it almost always, and skip hashing the
    /// tuple (a one-entry cache in front of the table). Unowned: retiring a
    /// connection clears it, and the table keeps it alive until then.
    private unowned(unsafe) var latest: TCPConnection?
    /// Connections by timer id, so a fired wheel timer finds its connection.
    var byTimerID: [UInt64: TCPConnection] = [:]
    var nextTimerID: UInt64 = 1
    var listeners: [UInt16: PortOccupants<TCPListener>] = [:]
    var isn: InitialSequenceNumbers
    /// The keys of SYN cookies (RFC 4987 3.6), made once per stack.
    var synCookies: SYNCookies
    let wheel: HierarchicalTimerWheel
    /// The limits on ACKs answering segments connections do not accept,
    /// challenge ACKs among them (RFC 5961 7 and 10).
    var answerLimits: TCPAnswerLimits
    /// RFC 6056: ephemeral ports from the IANA dynamic range.
    var nextEphemeralPort: UInt16
    /// Ports that applications' sockets bound (bind(2)), with how many hold
    /// each: an active open does not take them, as Linux's bind buckets keep
    /// a bound port whether or not its socket listens or connects yet.
    var heldPorts: [UInt16: Int] = [:]
    /// Connections whose application queued output or closed since they were
    /// last serviced; the loop services them before it sleeps. A deque: an
    /// array emptied after each poll cost a generic `replaceSubrange` per poll.
    var pending = Deque<TCPConnection>()
    /// IP, attached by the interface that owns this layer. A stored
    /// existential rather than a generic parameter: the device type is not
    /// known here, and an unspecialised generic call instantiates
    /// `Interface<D>`'s conformance on every segment, which costs more than
    /// the dynamic dispatch. Unowned: the interface owns the layer, and
    /// `Stack` keeps the interface alive while applications hold the layer.
    private(set) unowned(unsafe) var ip: (any IPOutput)!
    var logger: Logger

    /// What TCP has done, including what its live connections count.
    public var counters: TCPCounters {
        var c = kept
        for connection in connections.values { c.add(tallies: connection) }
        return c
    }
    /// The layer's own counts, and the tallies of connections already retired.
    var kept = TCPCounters()
    /// What connections and their rings may hold together (`--memory-limit`).
    public let memory: MemoryBudget

    /// The settings new connections get unless `listen`/`connect` pass their own.
    public var defaultConfiguration = TCPConfiguration()
    /// How often a connection making progress confirms its neighbour to IP
    /// (`IPOutput.confirmReachable`): far inside any ARP lifetime.
    static let neighbourConfirmInterval: Duration = .seconds(1)

    init(now: Instant, isn: InitialSequenceNumbers = .random(), synCookies: SYNCookies = .random(),
         memory: MemoryBudget = MemoryBudget(), logger: Logger) {
        self.isn = isn
        self.memory = memory
        self.synCookies = synCookies
        self.logger = logger
        wheel = HierarchicalTimerWheel(start: now)
        nextIdleSweep = now + Self.idleSweepInterval
        answerLimits = TCPAnswerLimits(now: now)
        nextEphemeralPort = 49152 + UInt16(truncatingIfNeeded: now.nanoseconds >> 12) % 16384
        pending.reserveCapacity(64)
    }

    deinit { releaseApplications() }

    /// Sends what applications start through `ip` from now on.
    func attach(to ip: some IPOutput) {
        self.ip = ip
        let link = ip.capabilities
        checksumOffload = link.checksum.tcp.contains(.transmit)
        sendsDataInPlace = checksumOffload && link.readsTailInPlace
        // The largest TCP payload one IP packet of either family takes behind the longest TCP header.
        offloadLimit = link.segmentsTCP ? link.maxTransmitSegment - IPv6Packet.headerLength - 60 : 0
    }

    /// The device completes TCP checksums (`ChecksumOffload.transmit`), read once at attach.
    private(set) var checksumOffload = false
    /// New data goes out from the send ring in place, as a `FrameTail`: the
    /// device reads it there and completes the checksum (read once at attach).
    private(set) var sendsDataInPlace = false
    /// Connections retired since the device was last flushed, kept so that
    /// the send rings their queued frames' tails lie in stay allocated until
    /// the flush (`FrameTail`).
    private var retired: [TCPConnection] = []
    /// How often idle connections give back their rings' memory (`sweepIdle`):
    /// a connection is idle after moving nothing for one to two intervals.
    static let idleSweepInterval: Duration = .seconds(5)
    var nextIdleSweep: Instant
    /// Connections whose send ring grew since the device was last flushed
    /// (`sendBufferGrew`): the storage it replaced waits for the flush.
    private var grownSendBuffers: [TCPConnection] = []
    /// The most data one segment takes when the device segments TCP (TSO); 0 without.
    private(set) var offloadLimit = 0

    // MARK: Application entry points

    /// Listens on `port` (RFC 9293 3.10.1 passive OPEN), for connections of
    /// `families` (both unless told otherwise); a port takes one listener
    /// per family (`PortOccupants`), or several alike that all share it
    /// (`sharingPort`, SO_REUSEPORT), among which new connections are spread.
    public func listen(port: UInt16, families: IPFamilies = .both, sharingPort: Bool = false, backlog: Int = 128,
                       synBacklog: Int = 256,
                       configuration: TCPConfiguration? = nil) throws(TCPListenError) -> TCPListener {
        guard port != 0 else { throw .portZero }
        guard listeners[port, default: PortOccupants()].admits(families, sharing: sharingPort) else {
            throw .portInUse(port)
        }
        let l = TCPListener(port: port, families: families, sharesPort: sharingPort, backlog: backlog,
                            synBacklog: synBacklog, configuration: configuration ?? defaultConfiguration)
        l.layer = self
        listeners.occupy(port, with: l)
        return l
    }

    /// Stops listening: a new SYN to the port is answered with a RST. As when
    /// Linux closes a listening socket (`inet_csk_listen_stop`), the
    /// listener's handshakes in progress and the connections in its accept
    /// queue, which no application will ever take, are reset; connections
    /// already handed to the application are not affected. The RSTs leave
    /// with the next flush.
    public func close(_ listener: TCPListener) {
        listener.isClosed = true
        listener.layer = nil
        listeners.vacate(listener.port, of: listener)
        for c in listener.takeUnaccepted() { c.abort() }
        guard listener.halfOpen > 0 else { return }
        for c in connections.values where c.listener === listener { c.abort() }
    }

    /// Opens a connection (RFC 9293 3.10.1 active OPEN): the SYN goes out at
    /// once, from `localPort` (a port the caller bound), or from an ephemeral one if 0.
    public func connect(to address: IPAddress, port: UInt16, localPort: UInt16 = 0,
                        configuration: TCPConfiguration? = nil, now: Instant) throws(TCPConnectError) -> TCPConnection {
        guard let ip, ip.isUnicast(address), let local = ip.sourceAddress(towards: address) else { throw .noRoute }
        let chosen = localPort != 0 ? localPort : ephemeralPort(local: local, remote: address, remotePort: port)
        guard let localPort = chosen else { throw .noEphemeralPort }
        let tuple = TCPFourTuple(localAddress: local, localPort: localPort, remoteAddress: address, remotePort: port)
        // Linux's connect from a bound port whose four-tuple is taken: EADDRNOTAVAIL.
        guard connections[tuple] == nil else { throw .tupleInUse }
        guard memory.admitsConnection else {
            kept.refusedForMemory &+= 1
            throw .noMemory
        }
        let c = makeConnection(tuple: tuple, configuration: configuration ?? defaultConfiguration,
                               activeOpen: true, segmentLimit: ip.maximumSegmentLength(towards: address), now: now)
        c.state = .synSent
        kept.activeOpens &+= 1
        service(c, now: now)
        return c
    }

    /// Opens an IPv4 connection.
    public func connect(to address: IPv4Address, port: UInt16, configuration: TCPConfiguration? = nil,
                        now: Instant) throws(TCPConnectError) -> TCPConnection {
        try connect(to: .v4(address), port: port, configuration: configuration, now: now)
    }

    /// Sends what the application queued on `c` now, rather than when the loop
    /// services it before sleeping.
    public func flush(_ c: TCPConnection, now: Instant) {
        guard ip != nil, connections[c.tuple] === c else { return }
        service(c, now: now)
    }

    /// The connections in the table, for tests and statistics.
    public var allConnections: [TCPConnection] { Array(connections.values) }

    /// Connections still in the table, in all and in the states worth watching, for `--stats`.
    public var tableReport: [(String, UInt64)] {
        func count(_ state: TCPState) -> UInt64 { UInt64(connections.values.lazy.filter { $0.state == state }.count) }
        return [("tcp-connections-in-table", UInt64(connections.count)),
                ("tcp-in-syn-received", count(.synReceived)),
                ("tcp-in-time-wait", count(.timeWait)), ("tcp-in-close-wait", count(.closeWait)),
                ("tcp-in-fin-wait-2", count(.finWait2)), ("tcp-in-last-ack", count(.lastAck))]
    }

    // MARK: Table

    /// The connection for `tuple`, from the one-entry cache or the table.
    @inline(__always)
    func connection(for tuple: TCPFourTuple) -> TCPConnection? {
        if let c = latest, c.tuple == tuple { return c }
        guard let c = connections[tuple] else { return nil }
        latest = c
        return c
    }

    /// `iss`: a SYN cookie's; otherwise RFC 6528's for the tuple.
    func makeConnection(tuple: TCPFourTuple, configuration: TCPConfiguration, activeOpen: Bool,
                        segmentLimit: Int, iss: SequenceNumber? = nil, now: Instant) -> TCPConnection {
        let iss = iss ?? SequenceNumber(isn.next(for: tuple, now: now))
        let c = TCPConnection(tuple: tuple, configuration: configuration, iss: iss,
                              localMSS: configuration.announcedMSS(segmentLimit: segmentLimit),
                              pathMSS: segmentLimit - TCPSegment.minimumHeaderLength,
                              activeOpen: activeOpen, now: now, logger: logger, budget: memory)
        memory.chargeUnconditionally(MemoryBudget.connectionCost)
        c.serviceQueue = self
        c.sender.offloadLimit = offloadLimit
        c.wheelTimer.id = nextTimerID
        nextTimerID += 1
        connections[c.tuple] = c
        byTimerID[c.wheelTimer.id] = c
        return c
    }

    /// A free local port for an active open to `remote`.
    func ephemeralPort(local: IPAddress, remote: IPAddress, remotePort: UInt16) -> UInt16? {
        claimEphemeralPort { p in
            connections[TCPFourTuple(localAddress: local, localPort: p, remoteAddress: remote, remotePort: remotePort)] == nil
        }
    }

    /// The next port of the ephemeral range from the cursor that no listener
    /// or bind holds and `isFree` accepts; the cursor moves past it.
    private func claimEphemeralPort(where isFree: (UInt16) -> Bool) -> UInt16? {
        for _ in 0..<16384 {
            let p = nextEphemeralPort
            nextEphemeralPort = nextEphemeralPort == 65535 ? 49152 : nextEphemeralPort + 1
            if listeners[p] == nil && heldPorts[p] == nil && isFree(p) { return p }
        }
        return nil
    }

    // MARK: Bound ports

    /// Keeps `port` from active opens until `release(port:)` (bind(2)).
    public func hold(port: UInt16) { heldPorts[port, default: 0] += 1 }

    public func release(port: UInt16) {
        guard let n = heldPorts[port] else { return }
        heldPorts[port] = n > 1 ? n - 1 : nil
    }

    /// Whether a connection in the table, in any state (TIME-WAIT included),
    /// keeps `port` from a new bind: one with SO_REUSEADDR (`reusing`) takes
    /// it beside connections that share it (`TCPConnection.sharesLocalPort`).
    public func connectionHolds(port: UInt16, reusing: Bool) -> Bool {
        connections.values.contains { $0.tuple.localPort == port && !(reusing && $0.sharesLocalPort) }
    }

    /// Whether a listener takes connections on `port`.
    public func isListening(on port: UInt16) -> Bool { listeners[port] != nil }

    /// A local port nothing uses (no listener, connection or hold), for a
    /// bind(2) to port 0; from the ephemeral range, after the last one given.
    public func freePort() -> UInt16? {
        let used = Set(connections.keys.lazy.map(\.localPort))
        return claimEphemeralPort { !used.contains($0) }
    }

    /// Takes `c` out of the table and its timer off the wheel, keeping its tallies.
    func retire(_ c: TCPConnection) {
        guard connections[c.tuple] === c else { return }
        connections[c.tuple] = nil
        memory.release(MemoryBudget.connectionCost)
        if sendsDataInPlace { retired.append(c) }
        if latest === c { latest = nil }
        // Nothing it asks for now can be sent: the layer no longer knows it.
        c.serviceQueue = nil
        byTimerID[c.wheelTimer.id] = nil
        if let h = c.wheelTimer.handle { _ = wheel.cancel(h) }
        c.wheelTimer.handle = nil
        c.wheelTimer.deadline = nil
        if let l = c.listener {
            l.synQueue.remove(c)
            c.listener = nil
        }
        // A listener gone before its half-open connections leaves links behind.
        c.synQueueLink = SYNQueue.Link()
        kept.add(tallies: c)
        switch c.error {
        case .connectionReset?, .connectionRefused?: kept.connectionsReset &+= 1
        case .timedOut?: kept.connectionsTimedOut &+= 1
        default: kept.connectionsClosed &+= 1
        }
    }

    /// Drops a half-open connection without a word to its peer (evicted from
    /// a full SYN queue, or its peer unreachable).
    func dropHalfOpen(_ c: TCPConnection) {
        c.enterClosed(error: nil)
        retire(c)
    }

    /// Address resolution gave up on a neighbour on the link, the next hop
    /// of the remote addresses for which `viaIt` is true (the neighbour
    /// itself, or every address routed through it). As Linux's neighbour
    /// failure reports a host unreachable for each datagram that waited:
    /// half-open connections toward them are dropped at once rather than
    /// holding their SYN queue slot through every SYN-ACK retry
    /// (`tcp_req_err`), and active opens still in SYN-SENT fail with
    /// `hostUnreachable` (`tcp_v4_err`), so a connect says EHOSTUNREACH in
    /// seconds, not ETIMEDOUT after two minutes. Established ones keep
    /// trying (RFC 1122 4.2.3.9: a soft error).
    func neighbourUnreachable(now: Instant, viaIt: (IPAddress) -> Bool) {
        for l in listeners.values.flatMap(\.all) where l.halfOpen > 0 {
            for c in l.synQueue.entries where viaIt(c.tuple.remoteAddress) {
                dropHalfOpen(c)
                kept.halfOpenUnreachable &+= 1
            }
        }
        let connecting = connections.values.filter { $0.state == .synSent && viaIt($0.tuple.remoteAddress) }
        for c in connecting {
            kept.connectsUnreachable &+= 1
            c.enterClosed(error: .hostUnreachable)
            service(c, now: now)
        }
    }

    /// The device has been flushed: frames with tails in retired connections'
    /// send rings are in the kernel's hands (written, or held by a write
    /// that completes before the stack may see an answer to it).
    func deviceFlushed() {
        if sendsDataInPlace && !retired.isEmpty { retired.removeAll(keepingCapacity: true) }
        if !grownSendBuffers.isEmpty {
            for c in grownSendBuffers { c.sender.sendBuffer.releaseReplacedStorage() }
            grownSendBuffers.removeAll(keepingCapacity: true)
        }
    }

    /// `c`'s send ring grew: its old storage, which frames queued since the
    /// last flush may still read tails from, goes at the next flush.
    func sendBufferGrew(_ c: TCPConnection) {
        grownSendBuffers.append(c)
    }

    /// Keeps one wheel timer per connection at its earliest deadline.
    func syncTimer(_ c: TCPConnection) {
        let deadline = c.nextDeadline
        guard deadline != c.wheelTimer.deadline else { return }
        if let h = c.wheelTimer.handle { _ = wheel.cancel(h) }
        c.wheelTimer.handle = deadline.map { wheel.arm(at: $0, payload: c.wheelTimer.id) }
        c.wheelTimer.deadline = deadline
    }

    /// The next time `tick` has work.
    var nextDeadline: Instant? { wheel.nextDeadline }
}

extension TCPLayer {
    /// One connection's timer on the layer's wheel, at its earliest deadline.
    /// Carried by the connection so a lookup is not needed per service; only
    /// the layer reads or writes it.
    struct WheelTimer {
        /// The wheel's payload: how a fired timer finds its connection.
        var id: UInt64 = 0
        var handle: TimerHandle?
        /// The deadline `handle` is armed for.
        var deadline: Instant?
    }
}

public enum TCPListenError: Error, Equatable {
    case portInUse(UInt16)
    case portZero
}

public enum TCPConnectError: Error, Equatable {
    case noEphemeralPort
    /// The bound local port already has a connection to that peer address and port.
    case tupleInUse
    case noRoute
    /// The memory budget has no room for another connection (`--memory-limit`).
    case noMemory
}
