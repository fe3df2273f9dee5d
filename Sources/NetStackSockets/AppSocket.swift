#if canImport(Glibc)
import Glibc
#endif
import CNetStackABI
import NetStack
import NetStackWire

/// One application socket, on the loop: its shared region and doorbells,
/// and what it became on the stack (a connection or a listener). It moves
/// bytes between the rings and the connection: `tx`'s bytes are lent to the
/// send buffer where they lie (`TCPConnection.write(lending:)`: the
/// application's copy into `tx` is the only one, and the device reads them
/// in place) and given back to the application as the peer acknowledges
/// them; received bytes go into `rx` in place from the frame when nothing
/// waits ahead of them, else from the receive ring.
/// Only the loop touches it; the application sees the region and the
/// eventfd it was handed.
final class AppSocket {
    let id: UInt32
    /// The sessions (application processes) holding it: the one that made
    /// it, and children that inherited it across fork and claimed it. It
    /// closes when the last lets go.
    var holders: Set<UInt32>
    /// Holders a fork announced that have not claimed it yet (`APIServer`'s pending forks).
    var pendingHolds = 0 {
        didSet { if pendingHolds > oldValue { wasShared = true } }
    }
    /// The session that made it, whose `RegionPool` its region goes back to.
    let creator: UInt32
    /// The creator's user: the stack, which may run as root, signals an
    /// owner (SIGURG, SIGIO) only where that user's own kill(2) could.
    let creatorUID: UInt32
    /// Another process held it (a fork, exec or spawn, or SCM_RIGHTS): its
    /// region may still be mapped there, so it never goes back to a pool.
    private var wasShared = false
    let region: SocketRegion
    /// The descriptor the application uses as the socket: the stack signals
    /// it when there is something to read, an error, or room it asked for.
    let appEvent: EventFD
    /// The application rings it when it wants the stack to look at the rings.
    let doorbell: EventFD
    unowned let server: APIServer
    var local: SocketAddress?
    var peer: SocketAddress?
    /// SO_REUSEADDR and SO_REUSEPORT as they were at bind(2), which decide
    /// whether another socket may bind its port (`APIServer.mayShare`).
    var reusesAddress = false
    var reusesPort = false
    /// The families its listener or UDP socket takes: an AF_INET socket's
    /// IPv4 only, an AF_INET6 one's both unless IPV6_V6ONLY (RFC 3493 5.3).
    var families: IPFamilies
    /// The TCP port bind(2) took, kept from active opens until the socket goes.
    private var heldPort: UInt16?
    /// What setsockopt asked of the stack (`AppSocket+Options`), for the
    /// connection or listener it becomes.
    var options = AppSocketOptions()
    private(set) var connection: TCPConnection?
    private(set) var listener: TCPListener?
    /// A datagram socket (SOCK_DGRAM): its rings hold records, not a byte
    /// stream, and it becomes a `UDPSocket` (`AppSocket+Datagrams`).
    let isDatagram: Bool
    var udp: UDPSocket?
    /// Whether bind(2) named the datagram socket's port and address, which
    /// a disconnect keeps (`disconnectDatagram`).
    var boundByApplication = (port: false, address: false)
    /// A datagram on its way between a ring and the UDP socket (reused).
    var datagramScratch: [UInt8] = []
    /// Bound to the wildcard address, the datagram socket is reached at the
    /// kernel's loopback too, and sends there (`AppSocket+Datagrams`).
    var loopbackDatagrams: LoopbackDatagrams?
    /// Connections the listener completed that the application has not accepted.
    private var waiting: [TCPConnection] = []
    /// How many established connections may wait for accept (`capacity(forBacklog:)`).
    private var backlog = capacity(forBacklog: 128)
    /// Listening on the stack's wildcard address, it listens on the kernel's
    /// loopback too; their connections wait in the kernel's queues.
    private var loopback: LoopbackListeners?
    /// `tx`'s absolute index up to which its bytes are lent to the connection;
    /// from `tx.head` to here they wait for the peer's acknowledgment.
    private var lentUpTo: UInt32 = 0
    /// shutdown(SHUT_WR) or close: a FIN once `tx` is drained.
    private var finRequested = false
    private var finSent = false
    /// The application closed it: it goes once `tx` is drained.
    private var closing = false
    private var endOfInputSent = false
    /// Urgent data: `rx`'s index of the connection's first byte; the mark
    /// last published (its count, its byte's index in `rx`); the count of
    /// the application's urgent sends taken.
    private var rxOrigin: UInt32 = 0
    private var urgentMark: (count: UInt32, index: UInt32)?
    private var urgentSendsTaken: UInt32 = 0
    private(set) var isFreed = false
    /// What waits for the end of the loop's turn (`turnEnded`), done once
    /// however many segments the turn brought.
    private var turnEndWork: TurnEndWork = []

    struct TurnEndWork: OptionSet {
        let rawValue: UInt8
        /// Wake the application (`wakeApplication`).
        static let wake = TurnEndWork(rawValue: 1)
        /// Publish the connection's fields after bytes came in place (`deliver`).
        static let publish = TurnEndWork(rawValue: 2)
        /// Signal the owner of a socket with O_ASYNC (`noteNews`).
        static let ioSignal = TurnEndWork(rawValue: 4)
    }
    /// Waking the application, the loop takes the want-doorbell flag and
    /// looks at `tx` on its next turn instead (`Doorbells.lookAgain`): an
    /// application woken on the loop's CPU runs at once (the loop yields to
    /// it, `APIServer.endTurn`), and its next write, a request after a
    /// reply, then costs no doorbell, no system call of its own and no
    /// wake-up of the loop. The look raises the flag again (`pumpTransmit`)
    /// before the loop sleeps, so a later write rings as before. A look
    /// that finds nothing (a reader that does not answer, or one on another
    /// CPU that had not written yet) turns them off for the next
    /// `lookBackoff` rings (`lookDelivered`, `rang`).
    private var looksPay: Bool { ringsBeforeLooks == 0 }
    /// Rings to hear before looking again (`looksPay`).
    private var ringsBeforeLooks: UInt8 = 0
    private static let lookBackoff: UInt8 = 16
    /// A look is on its way to `APIServer.rang(socket:)`.
    private(set) var lookPending = false
    /// The application broke a ring: the socket is dead to the stack (`ringBroke`).
    private(set) var isBroken = false

    init(id: UInt32, client: UInt32, uid: UInt32, region: SocketRegion, families: IPFamilies, datagram: Bool = false,
         server: APIServer) throws(SocketAPIError) {
        self.id = id
        creatorUID = uid
        self.families = families
        holders = [client]
        creator = client
        isDatagram = datagram
        self.server = server
        self.region = region
        appEvent = try EventFD()
        do { doorbell = try EventFD() } catch {
            appEvent.close()
            throw error
        }
    }

    /// What goes to the application with the reply: memfd, its eventfd, the doorbell.
    var descriptorsForApplication: [Int32] { [region.descriptor, appEvent.descriptor, doorbell.descriptor] }

    // MARK: Becoming a connection

    /// Takes over `c`'s callbacks and moves what it already holds.
    func attach(_ c: TCPConnection) {
        connection = c
        c.sharesLocalPort = reusesAddress
        local = SocketAddress(address: c.tuple.localAddress, port: c.tuple.localPort)
        peer = SocketAddress(address: c.tuple.remoteAddress, port: c.tuple.remotePort)
        c.onReceive = { [unowned self] _, bytes in deliver(bytes) }
        c.onReadable = { [unowned self] _ in pumpReceive() }
        c.onWritable = { [unowned self] _ in pumpTransmit() }
        c.onStateChange = { [unowned self] c, _ in stateChanged(c) }
        c.onUrgent = { [unowned self] c in
            publishUrgentMark(c)
            appEvent.sendUrgentSignal(as: creatorUID)  // sk_send_sigurg
        }
        rxOrigin = region.rx.tail  // nothing of the connection's is in `rx` yet
        publishUrgentMark(c)
        stateChanged(c)
        pumpReceive()
    }

    /// Bytes offered in place from the frame: as many as fit go to `rx`
    /// (within SO_RCVBUF); the rest goes to the connection's receive buffer
    /// and comes back through `pumpReceive`.
    /// The application's eventfd is signalled only if it said it waits
    /// (its flag, taken after the bytes are published): a reader that keeps
    /// up costs no system call.
    private func deliver(_ bytes: Span<UInt8>) -> Int {
        let n = options.receiveBuffer == nil ? region.rx.write(bytes)
            : region.rx.write(bytes.extracting(first: receiveRoom))
        if n > 0 { inputArrived() }
        if n < bytes.count && region.rx.isBroken { ringBroke() }
        atTurnEnd(.publish)  // TCP_INFO's fields (bytes received, RTT) as of this turn
        return n
    }

    private func atTurnEnd(_ work: TurnEndWork) {
        guard !turnEndWork.contains(work) else { return }
        if turnEndWork.isEmpty { server.atTurnEnd(self) }
        turnEndWork.formUnion(work)
    }

    /// The loop's turn ended: the connection's fields first (TCP_INFO,
    /// TCP_MAXSEG, TCP_CONGESTION), so a woken application reads them fresh.
    func turnEnded() {
        let work = turnEndWork
        turnEndWork = []
        guard !isFreed else { return }
        if work.contains(.publish), let c = connection { region.publish(c.info, state: c.state) }
        if work.contains(.ioSignal) { appEvent.sendIOSignal(as: creatorUID) }
        guard work.contains(.wake) else { return }
        if looksPay && !isBroken && region.takeStackWantsTransmit() {
            lookPending = true
            server.stack.doorbells.lookAgain(token: id)
        }
        appEvent.signal()
    }

    /// Whether `tx` holds bytes the stack has not taken: sent on a look.
    private var hasUntakenBytes: Bool { isDatagram ? !region.tx.isEmpty : region.tx.hasBytes(after: lentUpTo) }

    /// A look (not a ring) is delivered: one that found nothing sends the
    /// socket back to its doorbell for a while.
    func lookDelivered() {
        lookPending = false
        if !hasUntakenBytes { ringsBeforeLooks = Self.lookBackoff }
    }

    /// The application rang the doorbell.
    func rangByApplication() {
        if ringsBeforeLooks > 0 { ringsBeforeLooks -= 1 }
    }

    /// Tells the application that what it waits for came (bytes, room),
    /// once the loop's turn ends rather than now: a turn that delivers
    /// many segments wakes it once, and an application sharing the loop's
    /// CPU does not take it over in the middle of the turn.
    func wakeApplication() {
        atTurnEnd(.wake)
    }

    /// News a signal-driven application hears of (O_ASYNC): bytes or a
    /// datagram in, a connection to accept, the connection's opening or
    /// end, room for a writer that found none. Its owner gets SIGIO once
    /// the turn ends, as Linux's sk_wake_async sends it (though also while
    /// a reader is blocked, which Linux spares).
    func noteNews() {
        if region.wantsIOSignals { atTurnEnd(.ioSignal) }
    }

    /// Bytes or a datagram came into `rx`: news for O_ASYNC, and a wake for
    /// a reader that said it waits.
    func inputArrived() {
        noteNews()
        if region.takeAppWantsRead() { wakeApplication() }
    }

    /// News the application hears of at once (its eventfd), not only when
    /// it said it waits: a state, an error, a connection to accept.
    func signalNews() {
        noteNews()
        appEvent.signal()
    }

    /// Moves bytes from the receive ring into `rx`; raises the want-room flag
    /// when `rx` is full (the app's read rings the doorbell), and tells the
    /// application of the end of input once everything before the FIN is in.
    func pumpReceive() {
        if isDatagram { return pumpDatagramsIn() }
        guard let c = connection, !isBroken else { return }
        defer { if region.rx.isBroken { ringBroke() } }
        while c.readableBytes > 0 {
            let room = receiveRoom
            let moved = room == 0 ? 0 : c.peek { (a: UnsafeRawBufferPointer, b: UnsafeRawBufferPointer) -> Int in
                let n = region.rx.write(UnsafeRawBufferPointer(rebasing: a.prefix(room)))
                return n == a.count ? n + region.rx.write(UnsafeRawBufferPointer(rebasing: b.prefix(room - n))) : n
            }
            if moved > 0 {
                c.skip(moved)
                inputArrived()
                continue
            }
            region.wantReceiveRoom()
            if receiveRoom == 0 { break }  // the flag is up before the look: the app will ring
        }
        region.publish(c.info, state: c.state)
        if !endOfInputSent && c.receivedFin && c.readableBytes == 0 {
            endOfInputSent = true
            region.add(.endOfInput)
            signalNews()
        }
    }

    /// Gives the application back the room of the bytes the peer
    /// acknowledged, then lends the connection what `tx` holds beyond them
    /// until all is lent (then raises the want-doorbell flag) or the send
    /// buffer is full (then `onWritable` calls again). Sends the FIN asked
    /// for once everything is lent: it follows the bytes in the send buffer.
    func pumpTransmit() {
        if isDatagram { return pumpDatagramsOut() }
        guard let c = connection, !finSent, !isBroken else { return }
        defer { if region.tx.isBroken { ringBroke() } }
        let acknowledged = Int(lentUpTo &- region.tx.head) - c.unacknowledgedBytes
        if acknowledged > 0 { region.tx.release(acknowledged) }
        var refused = false
        while true {
            let lent = region.tx.lend(from: lentUpTo) { c.write(lending: $0, owner: region) }
            lentUpTo &+= UInt32(lent)
            if region.tx.hasBytes(after: lentUpTo) {
                // Bytes the connection would not take (its send buffer is
                // full: `onWritable` calls again), or bytes written since
                // the lend looked: only a second refusal tells. Leaving on
                // the first would strand a write whose application found
                // the flag down (taken by its ring, or by a look).
                if lent == 0 && refused { break }
                refused = lent == 0
                continue
            }
            region.wantTransmitDoorbell()
            if !region.tx.hasBytes(after: lentUpTo) { break }
        }
        // After the flag went up: an urgent send marked after this look rings.
        takeUrgentSend(c)
        region.publish(c.info, state: c.state)
        // A writer waiting for room is woken once `tx` has what it asked
        // for free (a third of its send buffer, as Linux's
        // sk_stream_write_space), not on every ACK: a bulk writer sleeps and
        // wakes per ~700 KiB. Room only grows while it waits, so the wake
        // comes. After the sending and the publishing, so that a writer
        // waiting for its unsent bytes to drain (TCP_NOTSENT_LOWAT) sees them sent.
        if acknowledged > 0 && region.tx.writable >= region.writeWakeRoom && region.takeAppWantsWrite() {
            noteNews()
            wakeApplication()
        }
        if finRequested && !region.tx.isBroken && !region.tx.hasBytes(after: lentUpTo) {
            finSent = true
            if closing {
                c.close()
                free()
            } else {
                c.shutdownWrite()
            }
        }
    }

    /// The peer's urgent pointer moved: where its byte falls in `rx`, told
    /// before the byte (or anything after it) is there, so a reader never
    /// takes it for an ordinary one. A mark that came before the
    /// application's socket did (`attach`) is told then. A reader sitting
    /// at the mark replaced, whose byte came, is to pass over that byte
    /// (Linux's tcp_check_urg moves it past): told first.
    private func publishUrgentMark(_ c: TCPConnection) {
        guard let mark = c.urgentMark, !isBroken else { return }
        if let old = urgentMark, region.rx.head == old.index,
           Int32(bitPattern: rxOrigin &+ c.receivedStreamIndex &- old.index) > 0 {
            region.setUrgentHole(count: old.count, index: old.index)
        }
        let index = rxOrigin &+ mark.streamIndex
        urgentMark = (mark.count, index)
        region.setUrgentMark(count: mark.count, index: index)
        if region.takeAppWantsRead() { wakeApplication() }
    }

    /// The application's latest urgent send (send(2)'s MSG_OOB): once `tx`
    /// has lent the connection the bytes up to its mark, they are marked
    /// urgent there. A mark not lent yet waits for a later pump; one the
    /// connection does not hold (a lying application's) is ignored.
    private func takeUrgentSend(_ c: TCPConnection) {
        let sent = region.urgentSent
        guard sent.count != urgentSendsTaken else { return }
        let excluding = Int(Int32(bitPattern: lentUpTo &- sent.index))
        guard excluding >= 0 else { return }
        urgentSendsTaken = sent.count
        c.markUrgent(excluding: excluding)
    }

    private func stateChanged(_ c: TCPConnection) {
        region.publish(c.info, state: c.state)
        switch c.state {
        case .synSent, .synReceived, .listen:
            return
        case .closed:
            if let e = c.error {
                region.fail(errno: Self.errno(for: e))
            } else {
                region.add(.writeClosed)
            }
            pumpReceive()
            if !endOfInputSent {
                endOfInputSent = true
                region.add(.endOfInput)
            }
            signalNews()
            if closing { free() }
        default:
            if !region.state.contains(.connected) {
                region.add(.connected)
                signalNews()
                pumpTransmit()
            }
        }
    }

    static func errno(for e: TCPError) -> Int32 {
        switch e {
        case .connectionRefused: ECONNREFUSED
        case .connectionReset: ECONNRESET
        case .timedOut: ETIMEDOUT
        case .aborted: ECONNABORTED
        case .hostUnreachable: EHOSTUNREACH
        }
    }

    // MARK: A broken ring

    /// The application broke one of the socket's rings (an index or record
    /// that cannot be: its header is the application's to write). The stack
    /// stops touching the region, resets the connection (or closes the UDP
    /// socket) and fails the application's calls with EIO; the socket stays
    /// until the application closes it, and every other socket carries on.
    /// Found in the middle of TCP's callbacks, the teardown runs as a job of
    /// its own, right after.
    func ringBroke() {
        guard !isBroken, !isFreed else { return }
        isBroken = true  // no more pumping meanwhile
        server.tearDownAfterThisJob(self)
    }

    /// The teardown, from `APIServer.tearDownAfterThisJob`.
    func tearDownBroken() {
        guard !isFreed else { return }
        server.unwatch(self)  // its doorbell is not heard any more
        if let c = connection {
            c.removeCallbacks()
            if c.state != .closed { c.abort() }
        }
        closeUDP()
        endOfInputSent = true
        region.fail(errno: EIO)
        region.add(.endOfInput)
        appEvent.signal()
    }

    // MARK: Control calls

    func connect(to address: SocketAddress) -> ControlReply {
        if let c = connection {
            // A connect that failed (refused, timed out, unreachable) leaves
            // the socket unconnected, as Linux's (__inet_stream_connect's
            // sock_error, then tcp_disconnect): connecting again starts anew.
            guard c.state == .closed, !region.state.contains(.connected) else {
                return .failure(c.state == .synSent ? EALREADY : EISCONN)
            }
            c.removeCallbacks()
            connection = nil
            endOfInputSent = false
            region.setError(0)
            region.remove([.error, .writeClosed, .endOfInput])
        }
        guard listener == nil else { return .failure(EISCONN) }
        var configuration = server.stack.tcp.defaultConfiguration
        options.configure(&configuration)
        let c: TCPConnection
        do {
            c = try server.stack.connect(to: address.address, port: address.port, localPort: local?.port ?? 0,
                                         configuration: configuration)
        } catch {
            switch error {
            case .noRoute: return .failure(ENETUNREACH)
            case .noEphemeralPort, .tupleInUse: return .failure(EADDRNOTAVAIL)
            case .noMemory: return .failure(ENOBUFS)
            }
        }
        attach(c)
        return ControlReply(result: -EINPROGRESS, local: local, peer: peer)
    }

    /// Takes `port` from active opens until the socket goes (bind(2)).
    func hold(port: UInt16) {
        server.stack.tcp.hold(port: port)
        heldPort = port
    }

    /// listen(2)'s backlog as Linux reads it: capped at somaxconn (4096),
    /// a negative one meaning that too, and one more may wait, since its
    /// queue is full only past the backlog (`sk_acceptq_is_full`: listen(fd,
    /// 1) lets two clients finish their handshakes).
    static func capacity(forBacklog requested: Int32) -> Int {
        (requested < 0 || requested > 4096 ? 4096 : Int(requested)) + 1
    }

    func listen(backlog: Int32) -> ControlReply {
        if listener != nil {
            self.backlog = Self.capacity(forBacklog: backlog)
            return ControlReply(result: 0, local: local)
        }
        guard connection == nil, let port = local?.port, port != 0 else { return .failure(EINVAL) }
        var configuration = server.stack.tcp.defaultConfiguration
        options.configure(&configuration)
        self.backlog = Self.capacity(forBacklog: backlog)
        do {
            let l = try server.stack.listen(port: port, families: families, sharingPort: reusesPort,
                                            backlog: self.backlog, configuration: configuration)
            l.onAccept = { [unowned self] c in queue(c) }
            // A full queue drops new SYNs and holds back the handshake's
            // last ACK, as Linux's full accept queue does: the client
            // retries, nobody is reset.
            l.hasRoom = { [unowned self] in hasRoomToQueue }
            listener = l
        } catch {
            return .failure(EADDRINUSE)
        }
        if local?.address.isUnspecified == true {
            loopback = server.loopbackListeners(for: self, port: port, backlog: Int32(self.backlog - 1))
        }
        return ControlReply(result: 0, local: local)
    }

    /// Whether one more connection fits the accept queue.
    private var hasRoomToQueue: Bool { waiting.count < backlog }

    private func queue(_ c: TCPConnection) {
        guard hasRoomToQueue else {
            c.abort()
            return
        }
        waiting.append(c)
        region.connectionArrived()
        publishPending()
        signalNews()
    }

    /// What the application's readiness and accept see waiting: the stack's
    /// connections and the kernel's loopback listeners that may hold one.
    private func publishPending() { region.setPending(waiting.count + (loopback?.waiting ?? 0)) }

    /// The oldest connection waiting, for `accept`.
    func takeWaiting() -> TCPConnection? {
        guard !waiting.isEmpty else { return nil }
        let c = waiting.removeFirst()
        publishPending()
        return c
    }

    /// Kernel loopback listener `index` has a connection waiting, or
    /// datagram socket `index` a datagram.
    func loopbackReadable(_ index: Int) {
        if isDatagram {
            loopbackDatagrams?.becameReadable(index)
            return pumpDatagramsIn()
        }
        guard let loopback else { return }
        loopback.becameReadable(index)
        region.connectionArrived()
        publishPending()
        signalNews()
    }

    /// A connection from the kernel's loopback, for `accept` when the stack
    /// has none waiting: a kernel socket, the application's to take.
    func takeLoopbackConnection() -> Int32? {
        guard let loopback else { return nil }
        defer { publishPending() }
        return loopback.accept()
    }

    var isListening: Bool { listener != nil }

    func shutdown(how: Int32) -> ControlReply {
        if let l = listener {
            // Linux's inet_shutdown: SHUT_RD (or SHUT_RDWR) stops a listener
            // as its tcp_disconnect does (what it did not accept is reset;
            // the socket keeps its port and may listen again), and a thread
            // in accept wakes with EINVAL; SHUT_WR leaves it listening.
            guard how != Int32(SHUT_WR) else { return ControlReply(result: 0) }
            stopListening(l)
            appEvent.signal()
            return ControlReply(result: 0)
        }
        guard let c = connection, c.state != .synSent else { return .failure(ENOTCONN) }
        if how == Int32(SHUT_WR) || how == Int32(SHUT_RDWR) {
            finRequested = true
            pumpTransmit()
        }
        return ControlReply(result: 0)
    }

    /// The application closed the socket. As Linux: a listener resets what it
    /// did not accept; a connection with unread input is reset; otherwise
    /// what the application wrote goes out, then a FIN.
    func applicationClosed() {
        closing = true
        if isDatagram {
            // Datagrams written before the close go out, as Linux's sendto
            // has sent them when it returns.
            pumpDatagramsOut()
            return free()
        }
        if let l = listener {
            stopListening(l)
            free()
            return
        }
        guard let c = connection, c.state != .closed else {
            free()
            return
        }
        if !region.rx.isEmpty || c.readableBytes > 0 {
            c.abort()
            free()
            return
        }
        if finSent {
            // shutdown(SHUT_WR) sent the FIN before: the connection finishes
            // on its own, orphaned (what is still in flight is lent from the
            // region, which it keeps), and the socket goes now, as Linux's.
            c.close()
            free()
            return
        }
        finRequested = true
        pumpTransmit()
    }

    /// The application is gone (its control socket closed): everything is reset.
    func applicationVanished() {
        closing = true
        if let l = listener { stopListening(l) }
        if let c = connection, c.state != .closed { c.abort() }
        free()
    }

    /// Closes listener `l` (a close, a vanished application, shutdown(2)):
    /// the connections that waited for accept are reset, as Linux's
    /// `inet_csk_listen_stop`.
    private func stopListening(_ l: TCPListener) {
        l.onAccept = nil
        l.hasRoom = nil
        l.close()
        for c in waiting { c.abort() }
        waiting = []
        loopback?.close()
        loopback = nil
        publishPending()
        listener = nil
    }

    /// Lets go of the connection and the descriptors; the region is unmapped
    /// (or kept for the application's next socket) when the last reference goes.
    private func free() {
        guard !isFreed else { return }
        isFreed = true
        closeUDP()  // before the region goes to the pool: it says the loopback's sockets are gone
        if !wasShared && !isBroken, let pool = server.regions(of: creator) { region.keep(in: pool) }
        if let p = heldPort { server.stack.tcp.release(port: p) }
        connection?.removeCallbacks()
        listener?.onAccept = nil
        server.unwatch(self)
        doorbell.close()
        appEvent.close()
        server.forget(self)
    }
}
