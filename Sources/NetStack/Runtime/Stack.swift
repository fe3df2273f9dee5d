import NetStackWire

/// The whole stack as applications see it: TCP, UDP, the clock and the loop's
/// executor, and the counters of every layer. Not generic over the device, so
/// applications and the CLI hold a `Stack` and never thread a device type through.
///
/// Made by `EventLoop` (`loop.stack`), or over a bare interface in tests.
/// Everything runs on the loop's thread.
public final class Stack {
    public let tcp: TCPLayer
    public let udp: UDPLayer
    public let clock: any NetClock
    /// Runs async application code on the loop (see `TCPStream`).
    public let executor: LoopExecutor
    /// The stack's own address.
    public let address: IPAddress
    /// Its IPv4 address with its subnet's prefix.
    public let subnet: IPv4CIDR
    /// Its IPv4 subnet's directed broadcast, if the prefix has one (not a /31 or /32).
    public let directedBroadcast: IPv4Address?
    /// Its interface's MAC address.
    public let macAddress: MACAddress
    /// Where IPv4 packets off the subnet go; nil: they have no route.
    public let gateway: IPv4Address?
    /// Eventfds of other processes' that the loop listens to (the socket API's doorbells).
    public let doorbells = Doorbells()
    /// Run by the loop once a turn, after the turn's frames went to the
    /// device and before it sleeps (the socket API wakes its applications
    /// here: one that shares the loop's CPU may take it at the wake-up, and
    /// then finds the turn's segments and ACKs already sent).
    public var afterSending: (() -> Void)?
    private let interfaceReport: () -> [(String, UInt64)]
    private let subnets6: () -> [IPv6CIDR]
    private let unicast: (IPAddress) -> Bool
    private let mtuTowards: (IPAddress) -> Int

    public init<D: Device>(interface: Interface<D>, clock: any NetClock, executor: LoopExecutor = LoopExecutor()) {
        tcp = interface.tcp
        udp = interface.udp
        self.clock = clock
        self.executor = executor
        address = .v4(interface.address)
        subnet = interface.configuration.address
        macAddress = interface.macAddress
        gateway = interface.configuration.gateway
        directedBroadcast = subnet.isDirectedBroadcast(subnet.directedBroadcast) ? subnet.directedBroadcast : nil
        interfaceReport = { interface.counters.report }
        subnets6 = { interface.ipv6Subnets }
        unicast = { interface.isUnicast($0) }
        mtuTowards = { interface.pathMTU(towards: $0) }
    }

    /// Whether `destination` names one host, not a broadcast or a multicast group.
    public func isUnicast(_ destination: IPAddress) -> Bool { unicast(destination) }

    /// The largest IP packet towards `destination` now: the path MTU learned
    /// (RFC 1191, RFC 8201), else the link's (or a router's advertised MTU for IPv6).
    public func pathMTU(towards destination: IPAddress) -> Int { mtuTowards(destination) }

    /// The IPv6 addresses in use (link-local first), once DAD let them; empty without IPv6.
    public var ipv6Addresses: [IPv6Address] { subnets6().map(\.address) }
    /// The same with their on-link prefixes.
    public var ipv6Subnets: [IPv6CIDR] { subnets6() }

    /// Every layer's counters as name/value pairs (`netstack up --stats`):
    /// link and IP, then TCP (with its table) and UDP.
    public var counterReport: [(String, UInt64)] {
        interfaceReport() + tcp.counters.report + tcp.tableReport + udp.counters.report + tcp.memory.report
    }

    // MARK: TCP

    /// Listens on `port` (RFC 9293 3.10.1 passive OPEN); with `sharingPort`
    /// (SO_REUSEPORT) beside other listeners that share it.
    public func listen(port: UInt16, families: IPFamilies = .both, sharingPort: Bool = false, backlog: Int = 128,
                       configuration: TCPConfiguration? = nil) throws(TCPListenError) -> TCPListener {
        try tcp.listen(port: port, families: families, sharingPort: sharingPort, backlog: backlog,
                       configuration: configuration)
    }

    /// Opens a connection; the SYN goes out at once, from `localPort` if it is not 0.
    public func connect(to address: IPAddress, port: UInt16, localPort: UInt16 = 0,
                        configuration: TCPConfiguration? = nil) throws(TCPConnectError) -> TCPConnection {
        try tcp.connect(to: address, port: port, localPort: localPort, configuration: configuration, now: clock.now)
    }

    /// Listens on `port`, accepting with `await`.
    public func acceptor(port: UInt16, backlog: Int = 128,
                         configuration: TCPConfiguration? = nil) throws(TCPListenError) -> TCPAcceptor {
        let l = try tcp.listen(port: port, backlog: backlog, configuration: configuration)
        return TCPAcceptor(l) { [unowned self] c in stream(for: c) }
    }

    /// Opens a connection and waits for the handshake. Throws `TCPError.connectionRefused`
    /// or `.timedOut` if it fails, `TCPConnectError` if it cannot start.
    public func connect(to address: IPAddress, port: UInt16,
                        configuration: TCPConfiguration? = nil) async throws -> TCPStream {
        let c: TCPConnection = try connect(to: address, port: port, configuration: configuration)
        let s = stream(for: c)
        await s.waitUntil { $0 != .synSent && $0 != .synReceived }
        if let e = c.error { throw e }
        return s
    }

    /// The async face over `c`; it takes over the connection's callbacks.
    public func stream(for c: TCPConnection) -> TCPStream {
        TCPStream(c, executor: executor)
    }

    // MARK: Shutdown

    /// Begins a graceful shutdown (`netstack up` on its first SIGTERM or
    /// SIGINT): TCP stops accepting, a new SYN draws a RST, and every
    /// connection closes with a FIN after the data it has queued
    /// (`TCPLayer.closeListeners`, `closeAll`). Drive the loop until
    /// `openConnectionCount` is 0 or the grace period is over, then `resetAll`.
    public func beginShutdown() {
        tcp.closeListeners()
        tcp.closeAll(now: clock.now)
    }

    /// TCP connections that still need their peer (all but TIME-WAIT): a
    /// shutdown is complete at 0.
    public var openConnectionCount: Int { tcp.openConnectionCount }

    /// Ends a shutdown: resets every TCP connection still open (a RST each,
    /// sent with the loop's next flush); those in TIME-WAIT stay until the
    /// stack goes. Returns how many were reset.
    @discardableResult
    public func resetAll() -> Int { tcp.abortAll(now: clock.now) }

    // MARK: UDP

    /// Binds a UDP port; with `sharingPort` (SO_REUSEPORT) or `sharingAddress`
    /// (SO_REUSEADDR) beside other sockets that share it so.
    public func bind(udpPort port: UInt16, families: IPFamilies = .both, sharingPort: Bool = false,
                     sharingAddress: Bool = false, receiveCapacity: Int = 256 * 1024) throws(UDPBindError) -> UDPSocket {
        try udp.bind(port: port, families: families, sharingPort: sharingPort, sharingAddress: sharingAddress,
                     receiveCapacity: receiveCapacity)
    }
}
