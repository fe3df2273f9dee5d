#if canImport(Glibc)
import Glibc
#endif
import CNetStackABI
import NetStack
import NetStackWire

/// `netstack up --api PATH`: serves the stack's sockets to other processes
/// (the preload library, `netstack run`) over a UNIX socket at PATH.
///
/// Two threads: the `APIThread` accepts applications and reads their
/// requests, and hands them over through the `APIInbox`; the loop drains the
/// inbox in one job on its executor and does everything else: the stack's
/// calls, the replies, moving bytes between the shared rings and TCP
/// (`AppSocket`). The sockets' doorbells go straight to the loop
/// (`Stack.doorbells`: its io_uring reads them), so a request sent on a
/// warm connection wakes one thread, not two. One application's end (its control socket
/// closing, whatever killed it) resets its connections and frees its memory;
/// the others carry on.
public final class APIServer: @unchecked Sendable {
    let stack: Stack
    public let path: String
    /// Each ring's size, per socket and direction.
    public let ringSize: Int
    /// Linux's largest automatic send buffer (`tcp_wmem`'s maximum). A bulk
    /// writer that shares the loop's CPU fills `tx` while the loop waits, and
    /// the loop then sends it all: the ring is the turn. 2 MiB paid twice the
    /// turns' switches and wake-ups, 8 MiB ran slower again (measured in
    /// ARCHITECTURE.md, "Copies").
    public static let defaultRingSize = 4 << 20
    private let inbox = APIInbox()
    private var thread: APIThread!
    private var batch: [APIEvent] = []
    private var sessions: [UInt32: AppSession] = [:]
    private var sockets: [UInt32: AppSocket] = [:]
    private var nextSocket: UInt32 = 1
    /// The last region's number (`SocketRegion.serial`; 0 is none).
    private var nextRegion: UInt32 = 0
    private var pendingForks: [Int32: PendingFork] = [:]
    private var nextForkToken: Int32 = 0
    private var started = false
    /// Sockets with work for the end of this turn (`AppSocket.turnEnded`).
    private var turnEnd: [AppSocket] = []

    /// What the API did, for `--stats` and the exit counters.
    public private(set) var applicationsConnected: UInt64 = 0
    public private(set) var applicationsVanished: UInt64 = 0
    public private(set) var socketsOpened: UInt64 = 0
    /// Sockets that took a region their application's closed socket left (`RegionPool`).
    public private(set) var regionsReused: UInt64 = 0
    /// Connections accepted from the kernel's loopback (`LoopbackListeners`).
    public private(set) var loopbackAccepted: UInt64 = 0
    /// Datagrams received and sent on the kernel's loopback (`LoopbackDatagrams`).
    var loopbackDatagramsIn: UInt64 = 0
    var loopbackDatagramsOut: UInt64 = 0
    /// Sockets reset because their application broke a shared ring (`AppSocket.ringBroke`).
    public private(set) var ringsBroken: UInt64 = 0

    /// The kernel's index for the stack's interface (the TAP's; 0 when
    /// unknown), which a socket's region tells with the rest of the
    /// interface as it is then (`InterfaceDescription`).
    let interfaceIndex: UInt32

    /// Listens at `path`; serving starts with `start()`. Call on the loop's thread.
    public init(stack: Stack, path: String, ringSize: Int = defaultRingSize, interfaceIndex: UInt32 = 0) throws(SocketAPIError) {
        self.stack = stack
        self.path = path
        self.interfaceIndex = interfaceIndex
        self.ringSize = ringSize
        Self.raiseDescriptorLimit()
        let executor = stack.executor
        let drain: @Sendable () -> Void = { [unowned self] in drainInbox() }
        thread = try APIThread(path: path, inbox: inbox, submitDrain: { executor.submit(drain) })
        stack.doorbells.onRung = { [unowned self] id in rang(socket: id) }
        stack.afterSending = { [unowned self] in endTurn() }
    }

    /// Each socket holds three descriptors here (its region's memfd, kept for
    /// exec, and two eventfds), so the usual soft limit of 1024 would refuse
    /// the 342nd socket: the soft limit goes up to the hard one, as Go's
    /// runtime and nginx do for servers.
    static func raiseDescriptorLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    public func start() {
        guard !started else { return }
        started = true
        thread.start()
    }

    /// Stops accepting and reading, resets every application's connections
    /// and frees their sockets. On the loop's thread; the loop's next flush
    /// sends the RSTs.
    public func stop() {
        guard started else { return }
        started = false
        thread.stop(path: path)
        for id in Array(sessions.keys) { vanished(client: id) }
    }

    public var report: [(String, UInt64)] {
        [("api-applications", applicationsConnected), ("api-applications-vanished", applicationsVanished),
         ("api-applications-refused", thread.refused.load(ordering: .relaxed)),
         ("api-sockets-opened", socketsOpened), ("api-sockets-open", UInt64(sockets.count)),
         ("api-regions-reused", regionsReused),
         ("api-doorbells", stack.doorbells.delivered), ("api-looks-after-waking", stack.doorbells.lookedAgain),
         ("api-rings-broken", ringsBroken),
         ("api-loopback-accepted", loopbackAccepted),
         ("api-loopback-datagrams-in", loopbackDatagramsIn), ("api-loopback-datagrams-out", loopbackDatagramsOut)]
    }

    // MARK: The loop's side

    private func drainInbox() {
        expirePendingForks()
        inbox.take(into: &batch)
        for event in batch {
            switch event {
            case .connected(let client, let descriptor, let uid):
                sessions[client] = AppSession(id: client, descriptor: descriptor, uid: uid)
                applicationsConnected += 1
            case .request(let client, let request):
                guard let session = sessions[client] else { continue }
                handle(request, from: session)
            case .hangup(let client):
                vanished(client: client)
            case .loopbackReadable(let socket, let index):
                sockets[socket]?.loopbackReadable(index)
            case .holdsDue:
                break  // expired above
            }
        }
        batch.removeAll(keepingCapacity: true)
    }

    /// The application rang `id`'s doorbell (bytes in `tx`, or room in
    /// `rx`), or the loop looks after waking it (`AppSocket.looksPay`).
    /// The doorbell is armed again first, so a ring during the pumping is heard.
    private func rang(socket id: UInt32) {
        guard let s = sockets[id] else { return }
        if s.lookPending { s.lookDelivered() } else { s.rangByApplication() }
        stack.doorbells.arm(s.doorbell.descriptor, token: id)
        s.pumpTransmit()
        if !s.isFreed { s.pumpReceive() }
    }

    /// A process went (exit, crash, kill -9): it lets go of its sockets; one
    /// no other process holds is reset.
    private func vanished(client: UInt32) {
        guard let session = sessions.removeValue(forKey: client) else { return }
        applicationsVanished += 1
        for id in session.sockets {
            guard let s = sockets[id] else { continue }
            s.holders.remove(client)
            if s.holders.isEmpty && s.pendingHolds == 0 { s.applicationVanished() }
        }
        close(session.descriptor)
    }

    /// `session` closed `s`: it closes when no other process holds it.
    private func release(_ s: AppSocket, by session: AppSession) {
        s.holders.remove(session.id)
        session.sockets.remove(s.id)
        guard s.holders.isEmpty && s.pendingHolds == 0 else { return }
        if s.options.resetsOnClose { s.applicationVanished() } else { s.applicationClosed() }
    }

    // MARK: fork

    /// A fork's sockets, held for its child until it claims them (or `forkClaimTimeout` passes).
    private struct PendingFork {
        var sockets: [UInt32]
        var announced: Instant
    }

    /// How long a child has to claim its parent's sockets: it does so as it
    /// starts (the library's atfork handler), so this only covers a child
    /// that died first.
    static let forkClaimTimeout: Duration = .seconds(10)

    /// The process is about to fork: every socket it holds gets a hold for
    /// the child, which claims them with the token, so the parent closing
    /// its copy (a fork-per-connection server) leaves the child's working.
    private func prepareFork(for session: AppSession) -> ControlReply {
        expirePendingForks()
        let held = session.sockets.filter { sockets[$0] != nil }
        for id in held { sockets[id]?.pendingHolds += 1 }
        return ControlReply(result: newPendingFork(holding: Array(held)))
    }

    /// A new token for holds on `ids` (their `pendingHolds` already counted).
    private func newPendingFork(holding ids: [UInt32]) -> Int32 {
        nextForkToken = nextForkToken == Int32.max ? 1 : nextForkToken + 1
        pendingForks[nextForkToken] = PendingFork(sockets: ids, announced: stack.clock.now)
        if pendingForks.count == 1 { wakeForOldestHold() }
        return nextForkToken
    }

    /// Asks the API thread to wake the loop when the oldest pending fork's
    /// claim times out; `drainInbox` expires it then.
    private func wakeForOldestHold() {
        guard let oldest = pendingForks.values.map(\.announced).min() else { return }
        thread.wakeForHolds(after: oldest + Self.forkClaimTimeout - stack.clock.now + .milliseconds(10))
    }

    /// A spawned child's hold on one socket (NS_OP_SPAWN_HOLD), under
    /// `token`'s fork or a new one. Asked by a vfork child before it execs,
    /// on a channel of its own (its parent's may be closed by then), or by
    /// posix_spawn: so it comes from any session, and any session of the
    /// socket's user may ask (the API socket admits only that user and root).
    /// The parent is held up until the child execs, so it cannot close the
    /// socket before the hold is there.
    private func holdForSpawn(_ id: UInt32, token: Int32) -> ControlReply {
        expirePendingForks()
        guard let s = sockets[id] else { return .failure(EBADF) }
        if token == 0 {
            s.pendingHolds += 1
            return ControlReply(result: newPendingFork(holding: [id]))
        }
        guard pendingForks[token] != nil else { return .failure(ENOENT) }
        pendingForks[token]?.sockets.append(id)
        s.pendingHolds += 1
        return ControlReply(result: token)
    }

    private func claimFork(token: Int32, for session: AppSession) -> ControlReply {
        guard let fork = pendingForks.removeValue(forKey: token) else { return .failure(ENOENT) }
        for id in fork.sockets {
            guard let s = sockets[id] else { continue }
            s.pendingHolds -= 1
            s.holders.insert(session.id)
            session.sockets.insert(id)
        }
        return ControlReply(result: 0)
    }

    /// A socket passed to another process (SCM_RIGHTS), which names it by its
    /// app eventfd's id (the kernel's, the same in every process): one of its
    /// pending holds (the passing process took it before it sent) becomes
    /// this session's. Nil if no socket with a pending hold has that eventfd.
    private func claimPassed(eventID: Int64, for session: AppSession) -> AppSocket? {
        expirePendingForks()
        for (token, fork) in pendingForks {
            for (i, id) in fork.sockets.enumerated() {
                guard let s = sockets[id], s.appEvent.kernelID == eventID else { continue }
                pendingForks[token]?.sockets.remove(at: i)
                if pendingForks[token]?.sockets.isEmpty == true { pendingForks[token] = nil }
                s.pendingHolds -= 1
                s.holders.insert(session.id)
                session.sockets.insert(id)
                return s
            }
        }
        return nil
    }

    /// Holds whose child never claimed them go; a socket nobody else holds
    /// then closes. Called at each drain of the inbox, and woken for when
    /// nothing else comes (`wakeForOldestHold`).
    private func expirePendingForks() {
        guard !pendingForks.isEmpty else { return }
        let now = stack.clock.now
        var expired = false
        for (token, fork) in pendingForks where now - fork.announced > Self.forkClaimTimeout {
            pendingForks[token] = nil
            expired = true
            for id in fork.sockets {
                guard let s = sockets[id] else { continue }
                s.pendingHolds -= 1
                if s.holders.isEmpty && s.pendingHolds == 0 { s.applicationClosed() }
            }
        }
        if expired { wakeForOldestHold() }
    }

    private func handle(_ request: ControlRequest, from session: AppSession) {
        if request.operation == .socket {
            guard request.arg0 == 4 || request.arg0 == 6 else { return session.send(.failure(EAFNOSUPPORT)) }
            let datagram = request.arg1 == Int32(NS_SOCKET_DATAGRAM)
            let families: IPFamilies = request.arg0 == 4 ? .ipv4Only : .both
            guard let s = makeSocket(for: session, families: families, datagram: datagram) else {
                return session.send(.failure(EMFILE))
            }
            return sendNew(s, to: session)
        }
        switch request.operation {
        case .forkPrepare: return session.send(prepareFork(for: session))
        case .forkClaim: return session.send(claimFork(token: request.arg0, for: session))
        case .spawnHold: return session.send(holdForSpawn(request.socket, token: request.arg0))
        case .claimPassed:
            guard let s = claimPassed(eventID: request.value, for: session) else { return session.send(.failure(ENOENT)) }
            return session.send(ControlReply(result: 0, socket: s.id, ringSize: UInt32(ringSize)),
                                descriptors: [s.region.descriptor, s.doorbell.descriptor])
        default: break
        }
        guard let s = sockets[request.socket], s.holders.contains(session.id) else {
            if request.expectsReply { session.send(.failure(EBADF)) }
            return
        }
        switch request.operation {
        case .socket, .forkPrepare, .forkClaim, .spawnHold, .claimPassed:
            break
        case .bind:
            session.send(bind(s, to: request.address, flags: request.arg0))
        case .listen:
            session.send(s.isDatagram ? .failure(EOPNOTSUPP) : s.listen(backlog: request.arg0))
        case .connect:
            guard let address = request.address else {
                // AF_UNSPEC: a datagram socket forgets its peer; a stream socket cannot.
                return session.send(s.isDatagram ? s.disconnectDatagram() : .failure(EAFNOSUPPORT))
            }
            session.send(s.isDatagram ? s.connectDatagram(to: address) : s.connect(to: address))
        case .accept:
            accept(on: s, for: session)
        case .shutdown:
            let reply = s.shutdown(how: request.arg0)
            if request.expectsReply { session.send(reply) }
        case .close:
            release(s, by: session)
            if request.expectsReply { session.send(ControlReply(result: 0)) }
        case .setOption:
            session.send(setOption(s, level: request.arg0, name: request.arg1, value: request.value))
        case .region:
            // A new image (after exec, or a spawned child's) maps the region
            // again and takes the doorbell anew: neither came with it.
            session.send(ControlReply(result: 0, socket: s.id, ringSize: UInt32(ringSize)),
                         descriptors: [s.region.descriptor, s.doorbell.descriptor])
        }
    }

    private func makeSocket(for session: AppSession, families: IPFamilies, datagram: Bool = false) -> AppSocket? {
        let id = nextSocket
        nextSocket &+= 1
        guard let region = makeRegion(for: session),
              let s = try? AppSocket(id: id, client: session.id, uid: session.uid, region: region,
                                     families: families, datagram: datagram, server: self)
        else { return nil }
        sockets[id] = s
        if !datagram { s.region.publish(congestion: stack.tcp.defaultConfiguration.congestionControl) }
        session.sockets.insert(id)
        socketsOpened += 1
        stack.doorbells.arm(s.doorbell.descriptor, token: id)
        return s
    }

    /// A region for `session`'s new socket: one of its closed sockets' if it
    /// kept one (`RegionPool`), else a new one.
    private func makeRegion(for session: AppSession) -> SocketRegion? {
        let interface = InterfaceDescription(stack: stack, index: interfaceIndex)
        if let kept = session.regions.take(ringSize: ringSize) {
            regionsReused += 1
            return SocketRegion(kept, fresh: false, interface: interface)
        }
        nextRegion &+= 1
        return try? SocketRegion(ringSize: ringSize, serial: nextRegion, interface: interface)
    }

    /// `s` listens on the stack's wildcard address at `port`: the kernel's
    /// loopback gets listeners for the families it takes; nil if the kernel
    /// gave none (its loopback has that port taken).
    func loopbackListeners(for s: AppSocket, port: UInt16, backlog: Int32) -> LoopbackListeners? {
        LoopbackListeners(socket: s.id, port: port, places: Self.loopbackPlaces(s.families), sharingPort: s.reusesPort,
                          backlog: backlog, epoll: thread.epoll)
    }

    /// Datagram socket `s` is bound to the stack's wildcard address at
    /// `port`: the kernel's loopback gets UDP sockets for the families it
    /// takes; nil if the kernel gave none.
    func loopbackDatagrams(for s: AppSocket, port: UInt16) -> LoopbackDatagrams? {
        LoopbackDatagrams(socket: s.id, port: port, places: Self.loopbackPlaces(s.families), sharingPort: s.reusesPort,
                          epoll: thread.epoll)
    }

    /// Where a socket of `families` on the wildcard is reached on the
    /// kernel's loopback: a dual-stack one at ::1 and, v4-mapped, 127.0.0.1.
    private static func loopbackPlaces(_ families: IPFamilies) -> [ns_loopback] {
        switch families {
        case .ipv4Only: [NS_LOOPBACK_V4]
        case .ipv6Only: [NS_LOOPBACK_V6]
        case .both: [NS_LOOPBACK_V6, NS_LOOPBACK_V4_MAPPED]
        }
    }

    /// What turns the stack's clock into the wall clock (CLOCK_REALTIME),
    /// in nanoseconds: the times a datagram's record carries for
    /// SO_TIMESTAMP are the application's, on its wall clock.
    var wallClockOffset: Int64 {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return Int64(t.tv_sec) * 1_000_000_000 + Int64(t.tv_nsec) - stack.clock.now.nanoseconds
    }

    /// The pool of the session `id`, while it is connected.
    func regions(of id: UInt32) -> RegionPool? { sessions[id]?.regions }

    private func bind(_ s: AppSocket, to address: SocketAddress?, flags: Int32) -> ControlReply {
        guard let address else { return .failure(EAFNOSUPPORT) }
        guard s.local == nil, s.connection == nil else { return .failure(EINVAL) }
        // Linux's inet_bind and inet6_bind: the wildcard, an address of ours,
        // or a broadcast or multicast one (a socket then takes what is sent there).
        let ours = switch address.address {
        case .v4: address.address == stack.address
        case .v6(let a): stack.ipv6Addresses.contains(a)
        }
        guard ours || address.address.isUnspecified || !stack.isUnicast(address.address) else {
            return .failure(EADDRNOTAVAIL)
        }
        if flags & Int32(NS_BIND_IPV6_ONLY) != 0 && s.families == .both { s.families = .ipv6Only }
        s.reusesAddress = flags & Int32(NS_BIND_REUSE_ADDRESS) != 0
        s.reusesPort = flags & Int32(NS_BIND_REUSE_PORT) != 0
        if s.isDatagram { return s.bindDatagram(address) }
        let port: UInt16
        if address.port == 0 {
            guard let free = stack.tcp.freePort() else { return .failure(EADDRINUSE) }  // Linux: the range is used up
            port = free
        } else {
            guard mayShare(address.port, with: s) else { return .failure(EADDRINUSE) }
            port = address.port
        }
        s.hold(port: port)
        s.local = SocketAddress(address: address.address, port: port)
        return ControlReply(result: 0, local: s.local)
    }

    /// Whether `s` may bind `port` beside what already uses it, by Linux's
    /// rules for TCP (`inet_csk_bind_conflict`). Each other socket on it
    /// whose families meet `s`'s (an IPV6_V6ONLY one and an AF_INET one
    /// never do) must share: both set SO_REUSEPORT, or both SO_REUSEADDR and
    /// it does not listen. A connection left by a closed socket (TIME-WAIT,
    /// say) yields only if its socket and `s` both set SO_REUSEADDR; the
    /// stack's own services never do.
    private func mayShare(_ port: UInt16, with s: AppSocket) -> Bool {
        let others = sockets.values.filter { $0 !== s && !$0.isDatagram && $0.local?.port == port }
        for o in others where o.families.overlaps(s.families) {
            let shares = (s.reusesPort && o.reusesPort) || (s.reusesAddress && o.reusesAddress && !o.isListening)
            if !shares { return false }
        }
        // A listener that no application's socket owns is one of the stack's services.
        if stack.tcp.isListening(on: port) && !others.contains(where: \.isListening) { return false }
        return !stack.tcp.connectionHolds(port: port, reusing: s.reusesAddress)
    }

    private func accept(on s: AppSocket, for session: AppSession) {
        guard s.isListening else { return session.send(.failure(EINVAL)) }
        guard let c = s.takeWaiting() else {
            // One on the kernel's loopback: the application takes the kernel
            // socket itself (`ns_reply`: socket 0, one descriptor).
            guard let fd = s.takeLoopbackConnection() else { return session.send(.failure(EAGAIN)) }
            loopbackAccepted += 1
            session.send(ControlReply(result: 0), descriptors: [fd])
            close(fd)
            return
        }
        guard let new = makeSocket(for: session, families: s.families) else {
            c.abort()
            return session.send(.failure(EMFILE))
        }
        new.options = s.options  // as Linux's accepted sockets inherit the listener's
        new.reusesAddress = s.reusesAddress
        new.reusesPort = s.reusesPort
        new.attach(c)
        new.applyOptions()
        sendNew(new, to: session)
    }

    /// The reply that gives `session` a socket made for it (socket(2), an
    /// accepted connection): its region, named by serial for a mapping the
    /// library kept (`RegionPool`), its eventfds, and its addresses.
    private func sendNew(_ s: AppSocket, to session: AppSession) {
        session.send(ControlReply(result: 0, socket: s.id, ringSize: UInt32(ringSize),
                                  regionSerial: s.region.serial, local: s.local, peer: s.peer),
                     descriptors: s.descriptorsForApplication)
    }

    /// A datagram socket takes SO_RCVBUF (what may wait in `rx`) and the IP header's options only.
    private func setOption(_ s: AppSocket, level: Int32, name: Int32, value: Int64) -> ControlReply {
        let datagramOption = (level == SOL_SOCKET && name == SO_RCVBUF) || level == IPPROTO_IP || level == IPPROTO_IPV6
        guard !s.isDatagram || datagramOption else { return .failure(ENOPROTOOPT) }
        return s.setOption(level: level, name: name, value: value)
    }

    // MARK: For AppSocket

    /// Calls `s.turnEnded()` at the end of this turn (`Stack.afterSending`:
    /// after the turn's frames, doorbells and timers, and after its segments
    /// went to the TAP, so an application that shares the loop's CPU and
    /// takes it at the wake-up does not hold back the turn's ACKs).
    func atTurnEnd(_ s: AppSocket) {
        turnEnd.append(s)
    }

    private func endTurn() {
        guard !turnEnd.isEmpty else { return }
        let looks = stack.doorbells.lookedAgain
        for s in turnEnd { s.turnEnded() }
        turnEnd.removeAll(keepingCapacity: true)
        // An application just woken on this CPU runs now, before the
        // loop's next turn looks at what it wrote (`AppSocket.looksPay`).
        if stack.doorbells.lookedAgain != looks { sched_yield() }
    }

    /// `s`'s application broke a ring: counts it, and tears the socket down
    /// in a job of its own (not inside the TCP callback that found it).
    func tearDownAfterThisJob(_ s: AppSocket) {
        ringsBroken += 1
        let id = s.id
        stack.executor.submit { [unowned self] in sockets[id]?.tearDownBroken() }
    }

    /// Before `s` closes its doorbell.
    func unwatch(_ s: AppSocket) { stack.doorbells.disarm(token: s.id) }

    func forget(_ s: AppSocket) {
        sockets[s.id] = nil
        for holder in s.holders { sessions[holder]?.sockets.remove(s.id) }
    }
}
