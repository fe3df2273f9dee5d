import Logging
import NetStackWire

/// One TCP connection (RFC 9293 3.3.1's TCB): the state machine, gluing a
/// `TCPSender` and a `TCPReceiver`, which own their halves of the state.
///
/// The connection does no I/O. The interface hands it segments (`process`),
/// asks it what to send (`dispatch`) and runs its timers (`handleTimers`), so
/// every transition is testable on a virtual clock. Input is in
/// TCPConnection+Input.swift, output in +Output.swift, timers in +Timers.swift.
public final class TCPConnection {
    public let tuple: TCPFourTuple
    /// Whether a socket bound with SO_REUSEADDR may take this connection's
    /// local port while it lives, TIME-WAIT included: its own socket set
    /// SO_REUSEADDR too (Linux keeps it as the time-wait socket's `tw_reuse`).
    public var sharesLocalPort = false
    /// Fixed at creation but for what the application may change while open (`TCPConnection+Options`).
    var configuration: TCPConfiguration
    var logger: Logger

    public internal(set) var state: TCPState {
        didSet {
            guard state != oldValue else { return }
            logger.debug("TCP \(oldValue) -> \(state)", metadata: ["connection": "\(tuple)"])
            onStateChange?(self, oldValue)
        }
    }
    /// Set when the connection ended badly.
    public internal(set) var error: TCPError?
    /// Opened by us (connect) rather than from a listener.
    let activeOpen: Bool

    /// The sending half, with loss recovery beside it (TCPSender.swift).
    var sender: TCPSender
    /// The receiving half (TCPReceiver.swift).
    var receiver: TCPReceiver

    // MARK: Negotiated options
    /// What we announce: our MTU less IP and TCP headers.
    let localMSS: Int
    /// The most data one segment to the peer may carry as the path's MTU
    /// stands, before options: the link's until IP's estimate of the path
    /// drops (`pathMTUDropped`, RFC 1191, RFC 8201). Bounds `sendMSS`.
    var pathMSS: Int
    /// The latest soft ICMP error about the connection's segments (RFC 1122
    /// 4.2.3.9: unreachable, time exceeded), recorded and not acted on.
    public internal(set) var softError: IPErrorKind?
    var sndScale: UInt8 = 0
    var rcvScale: UInt8 = 0
    /// RFC 7323 2.2: both SYNs carried the option (the shifts may still be 0).
    var windowScalingEnabled = false
    var timestampsEnabled = false
    var sackEnabled = false
    /// RFC 7323 4.3: the peer's latest timestamp, echoed back.
    var tsRecent: UInt32 = 0
    /// Keeps our timestamps from revealing uptime (RFC 7323 5.4 / 7.1).
    let tsOffset: UInt32

    // MARK: Timers (deadlines; the interface keeps one wheel timer at the earliest)
    var keepaliveDeadline: Instant?
    var keepaliveProbesSent = 0
    /// When keepalive's first probe went, since the peer last spoke.
    var keepaliveFirstProbe = Instant.zero
    var timeWaitDeadline: Instant?
    var finWait2Deadline: Instant?
    /// When the application's idle timeout (`idleTimeout`) is next checked:
    /// armed at `lastProgress + idleTimeout` and pushed on lazily when it
    /// finds progress since, so progress costs a timestamp store, not a timer.
    var idleDeadline: Instant?
    /// When the peer last proved the connection alive: an ACK that advanced
    /// SND.UNA or in-order data (Linux's `dst_confirm` signal). The idle
    /// timeout runs from it and the neighbour entry is confirmed by it.
    public internal(set) var lastProgress: Instant
    /// When this connection last confirmed its neighbour to IP
    /// (`IPOutput.confirmReachable`), at most once per `TCPLayer.neighbourConfirmInterval`.
    var neighbourConfirmed: Instant
    /// A window probe or keepalive is due: a segment with seq SND.UNA-1.
    var probeNow = false
    /// When the latest ACK in answer to an unacceptable segment without data
    /// (or a challenge ACK) went, for the per-connection limit (`TCPAnswerLimits`).
    var lastUnacceptableAck: Instant?

    // MARK: Statistics
    public internal(set) var segmentsRetransmitted: UInt64 = 0
    /// Loss episodes: fast recoveries entered, and tail loss probes sent.
    public internal(set) var fastRecoveries: UInt64 = 0
    public internal(set) var lossProbesSent: UInt64 = 0
    public internal(set) var retransmissionTimeouts: UInt64 = 0
    /// Fast recoveries whose window cut was undone: every resend was D-SACKed.
    public internal(set) var recoveriesUndone: UInt64 = 0
    /// Loss probes that repaired a loss (answered beyond them, without a
    /// D-SACK), and probes shown unneeded (D-SACKed: both copies arrived).
    public internal(set) var lossProbeRecoveries: UInt64 = 0
    public internal(set) var lossProbesUnneeded: UInt64 = 0
    /// ACKs received that carried a D-SACK (RFC 2883): data received twice.
    public internal(set) var duplicateReportsReceived: UInt64 = 0
    public internal(set) var bytesSent: UInt64 = 0
    public internal(set) var bytesReceived: UInt64 = 0
    /// Payload bytes the stack copied sending: the application's writes into
    /// the send ring, and the ring into outgoing frames (retransmissions
    /// included). Against `bytesSent`, the copies per byte sent.
    public internal(set) var bytesCopiedSending: UInt64 = 0
    /// Payload bytes copied out of the receive ring by `read`.
    var bytesCopiedReading: UInt64 = 0
    /// Payload bytes the stack copied receiving: frames into the receive
    /// ring, and the ring out to the application by `read` (`skip` and
    /// `peek` copy nothing). Against `bytesReceived`, the copies per byte.
    public var bytesCopiedReceiving: UInt64 { receiver.bytesCopied &+ bytesCopiedReading }

    /// Payload bytes the application took in place (`onReceive`), never
    /// copied by the stack.
    public internal(set) var bytesDeliveredInPlace: UInt64 = 0

    // MARK: Application callbacks (run on the loop)
    /// New bytes can be read, or the peer closed (read returns 0 then).
    public var onReadable: ((TCPConnection) -> Void)?
    /// In-order bytes offered in place, in the frame they arrived in, when
    /// nothing waits to be read ahead of them (lwIP's recv callback, Linux's
    /// old direct copy to a waiting reader). Returns how many it took, from
    /// the front; the rest goes to the receive ring and `onReadable` as
    /// usual. The only copy of the bytes is then the handler's own, or none
    /// (the discard service counts them). It runs while the segment is being
    /// processed: it may write, but should leave closing to `onReadable`.
    public var onReceive: ((TCPConnection, Span<UInt8>) -> Int)? {
        get { receiveHandler.map { h in { c, bytes in bytes.withUnsafeBytes { h(c, $0) } } } }
        set { receiveHandler = newValue.map { h in { c, raw in h(c, Span(_unsafeBytes: raw)) } } }
    }
    /// `onReceive` as stored: over raw bytes, because reading a stored
    /// closure that takes a `Span` made a thunk (an allocation) per segment.
    var receiveHandler: ((TCPConnection, UnsafeRawBufferPointer) -> Int)?
    /// Send buffer space opened up.
    public var onWritable: ((TCPConnection) -> Void)?
    /// The state changed (from the given state).
    public var onStateChange: ((TCPConnection, TCPState) -> Void)?
    /// The peer's urgent pointer advanced (`urgentMark`), told at once,
    /// before the segment's bytes are offered or buffered (RFC 9293 3.8.5:
    /// the application learns of urgent data as soon as it can).
    public var onUrgent: ((TCPConnection) -> Void)?
    /// Drops every application callback, and with them what they captured:
    /// how an application lets go of a connection whose callbacks hold an
    /// object that holds the connection back (a session, a stream), which
    /// would otherwise keep both alive as a reference cycle.
    public func removeCallbacks() {
        onReadable = nil
        receiveHandler = nil
        onWritable = nil
        onStateChange = nil
        onUrgent = nil
        onIdle = nil
    }

    /// An application's idle timeout: once the peer has made no forward
    /// progress (`lastProgress`: no new data, no new data acknowledged) for
    /// this long, `onIdle` runs, or without one the connection is closed
    /// (a FIN). What a server uses against a peer that vanished or went
    /// silent (nginx's `keepalive_timeout`/`send_timeout`, iperf3's
    /// `--rcv-timeout`); nil, the default, never times out. Setting it counts
    /// from the latest progress; set it again to restart the count.
    public var idleTimeout: Duration? {
        didSet {
            idleDeadline = idleTimeout.map { lastProgress + $0 }
            idleFired = false
            requestService()
        }
    }
    /// Runs once when `idleTimeout` passes without progress; the connection
    /// is the application's to close or abort. Nil: the stack closes it.
    public var onIdle: ((TCPConnection) -> Void)?
    /// `onIdle` ran for the current timeout, which waits to be set again.
    var idleFired = false
    /// Events raised while a segment is processed, delivered when it is done.
    var pendingReadable = false
    var pendingWritable = false

    /// The application gave up the connection (closed it); when it reaches CLOSED nobody holds it.
    var orphaned = false
    /// Passive opens remember their listener until the handshake completes.
    weak var listener: TCPListener?
    /// Its place in the listener's SYN queue while half-open (`SYNQueue`).
    var synQueueLink = SYNQueue.Link()

    /// The layer that sends for this connection: told when the application
    /// queued output, closed, or opened the window, so it goes in this loop turn.
    /// Not weak: a weak reference gives the layer a side table, and every
    /// retain of it then takes the runtime's slow path. The layer outlives
    /// its connections' use (applications reach them through the stack).
    unowned(unsafe) var serviceQueue: TCPLayer?
    /// Queued on `serviceQueue` and not yet serviced.
    var awaitingService = false

    /// Asks the layer to service this connection before the loop sleeps.
    func requestService() {
        guard !awaitingService, let queue = serviceQueue else { return }
        awaitingService = true
        queue.pending.append(self)
    }

    /// The layer's wheel timer for this connection, which only the layer touches.
    var wheelTimer = TCPLayer.WheelTimer()

    /// `pathMSS`: what one packet of the path carries less TCP's header, when
    /// TCP_MAXSEG made `localMSS` smaller.
    init(tuple: TCPFourTuple, configuration: TCPConfiguration, iss: SequenceNumber, localMSS: Int,
         pathMSS: Int? = nil, activeOpen: Bool, now: Instant, logger: Logger, budget: MemoryBudget? = nil) {
        self.tuple = tuple
        self.configuration = configuration
        self.logger = logger
        self.activeOpen = activeOpen
        self.localMSS = localMSS
        self.pathMSS = pathMSS ?? localMSS
        // RFC 9293 3.7.1: without an MSS option, assume 536.
        sender = TCPSender(iss: iss, mss: min(536, localMSS), configuration: configuration, budget: budget)
        receiver = TCPReceiver(configuration: configuration, budget: budget)
        tsOffset = Self.timestampOffset(iss: iss)
        lastProgress = now
        neighbourConfirmed = now
        state = .closed
        rcvScale = configuration.windowScaling ? Self.windowScale(for: receiver.receiveBuffer.capacity) : 0
    }

    /// The offset of a connection's timestamp clock, from its ISS: a SYN
    /// cookie's SYN-ACK and the connection its ACK makes agree on it.
    static func timestampOffset(iss: SequenceNumber) -> UInt32 { iss.rawValue &* 2_654_435_761 }

    /// The window shift we announce: the smallest that fits a receive ring of
    /// `capacity` in 16 bits (RFC 7323 2.3).
    static func windowScale(for capacity: Int) -> UInt8 {
        var scale: UInt8 = 0
        while scale < 14 && (capacity >> Int(scale)) > 0xffff { scale += 1 }
        return scale
    }

    // MARK: Application interface

    /// Bytes waiting to be read.
    public var readableBytes: Int { receiver.receiveBuffer.count }

    /// Free space in the send ring.
    public var writableBytes: Int {
        state.acceptsWrites && !sender.finQueued ? sender.sendBuffer.freeSpace : 0
    }

    /// The peer's FIN was received: no more data will come.
    public var receivedFin: Bool { receiver.receivedFin }

    /// True once the peer's FIN has been received and every byte before it read.
    public var isReadClosed: Bool { (receivedFin && receiver.receiveBuffer.count == 0) || state == .closed }

    /// Copies received bytes out. Returns 0 when nothing is waiting (see `isReadClosed`).
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let n = receiver.receiveBuffer.read(into: buffer)
        if n > 0 {
            bytesCopiedReading &+= UInt64(n)
            readerMadeRoom()
        }
        return n
    }

    /// Drops up to `n` received bytes without copying them (the discard service).
    @discardableResult
    public func skip(_ n: Int) -> Int {
        let k = min(n, receiver.receiveBuffer.count)
        receiver.receiveBuffer.consume(k)
        if k > 0 { readerMadeRoom() }
        return k
    }

    /// Calls `body` with up to two pieces of the received bytes, without consuming them.
    public func peek<R>(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> R) -> R {
        let ring = receiver.receiveBuffer
        let (a, b) = ring.peek(from: 0, count: ring.count)
        return body(a, b)
    }

    /// Queues bytes to send; returns how many fit in the send ring.
    public func write(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard state.acceptsWrites, !sender.finQueued else { return 0 }
        let grewBefore = sender.sendBuffer.hasReplacedStorage
        let n = sender.sendBuffer.append(bytes)
        if n > 0 {
            bytesCopiedSending &+= UInt64(n)
            requestService()
            if !grewBefore && sender.sendBuffer.hasReplacedStorage {
                if let layer = serviceQueue { layer.sendBufferGrew(self) } else { sender.sendBuffer.releaseReplacedStorage() }
            }
        }
        return n
    }

    /// Queues `range` of `bytes` by reference (`SharedBytes`): nothing is
    /// copied, the connection keeps `bytes` until they are acknowledged, and
    /// the device reads them in place where it can. Returns how many fit in
    /// the send buffer.
    public func write(_ bytes: SharedBytes, range: Range<Int>) -> Int {
        precondition(range.lowerBound >= 0 && range.upperBound <= bytes.count, "range outside the shared bytes")
        guard state.acceptsWrites, !sender.finQueued else { return 0 }
        let n = sender.sendBuffer.append(bytes, range: range)
        if n > 0 { requestService() }
        return n
    }

    /// Queues `bytes` by reference: nothing is copied, and the device reads
    /// them in place where it can. They are lent, not given: the caller
    /// keeps them valid and unchanged until they are acknowledged, which it
    /// sees as `unacknowledgedBytes` no longer covering them (the oldest go
    /// first), and `owner` (the memory they lie in) is held until then. What
    /// the socket API's shared rings use, so an application's byte is copied
    /// once, into the ring. Returns how many fit in the send buffer.
    public func write(lending bytes: UnsafeRawBufferPointer, owner: AnyObject) -> Int {
        guard state.acceptsWrites, !sender.finQueued else { return 0 }
        let n = sender.sendBuffer.append(reference: bytes, owner: owner)
        if n > 0 { requestService() }
        return n
    }

    /// Bytes written and not yet acknowledged by the peer (the send buffer's).
    public var unacknowledgedBytes: Int { sender.sendBuffer.count }

    /// The application read: a window update may be due (sent in this turn).
    private func readerMadeRoom() {
        windowMayHaveOpened()
        if receiver.ackNow { requestService() }
    }

    /// Closes our sending side: a FIN follows the queued data (RFC 9293 3.10.4).
    /// Reading may continue until the peer closes too.
    public func shutdownWrite() {
        requestService()
        switch state {
        case .closed, .listen, .synSent:
            state = .closed
        case .synReceived, .established:
            sender.finQueued = true
            state = .finWait1
        case .closeWait:
            sender.finQueued = true
            state = .lastAck
        default:
            break
        }
    }

    /// Closes the connection. Unread received data means the peer's data would
    /// be silently lost, so the connection is reset instead (RFC 2525 2.17, as Linux does).
    public func close() {
        orphaned = true
        if receiver.receiveBuffer.count > 0 && state.isSynchronized {
            abort()
            return
        }
        shutdownWrite()
    }

    /// Resets the connection: an RST goes to the peer if it is synchronized (RFC 9293 3.10.5).
    public func abort() {
        requestService()
        orphaned = true
        if state.isSynchronized || state == .synReceived { sendResetNow = true }
        enterClosed(error: .aborted)
    }

    /// Set by `abort`: the next dispatch emits one RST.
    var sendResetNow = false

    // MARK: Read-outs of the halves (the layer's challenge ACK, tests)

    var iss: SequenceNumber { sender.iss }
    var irs: SequenceNumber { receiver.irs }
    var rcvNxt: SequenceNumber { receiver.rcvNxt }
    var ackNow: Bool {
        get { receiver.ackNow }
        set { receiver.ackNow = newValue }
    }
    /// Set by `negotiate`.
    var sendMSS: Int { sender.sendMSS }

    /// Bytes moved either way as of the layer's last idle sweep.
    var movedAtLastSweep: UInt64 = 0

    /// Called by the layer's idle sweep (`TCPLayer.sweepIdle`): if no byte
    /// moved since the previous sweep, the rings, the scoreboard and the
    /// reassembly ranges that hold nothing give their memory back, so an idle
    /// connection holds none however busy it was. Costs nothing per segment.
    /// Returns the ring bytes released.
    func releaseStorageIfIdle() -> Int {
        let moved = bytesSent &+ bytesReceived
        defer { movedAtLastSweep = moved }
        guard moved == movedAtLastSweep else { return 0 }
        return sender.sendBuffer.releaseStorageIfEmpty() + releaseStorageBesideSendRing()
    }

    /// The scoreboard, and the receive ring and reassembly ranges if nothing
    /// waits in either, give back the storage they hold empty; no frame
    /// reads from them, so this may happen in the middle of a turn (the idle
    /// sweep, TIME-WAIT). Returns the ring bytes released.
    func releaseStorageBesideSendRing() -> Int {
        sender.scoreboard.releaseStorageIfEmpty()
        guard receiver.reassembly.isEmpty else { return 0 }
        receiver.reassembly.releaseStorageIfEmpty()
        return receiver.receiveBuffer.releaseStorageIfEmpty()
    }
    /// Whether what the segment just processed calls for may wait until the
    /// rest of the receive batch is processed (`TCPLayer.receive`): an
    /// established connection whose receiver owes no immediate ACK.
    var answerMayWait: Bool {
        listener == nil && (state == .established || state == .closeWait || state == .finWait1
            || state == .finWait2) && receiver.mayCoalesceAck
    }

    /// RFC 9293 3.10.7.4 "SND.WND <- SEG.WND", with the WL1/WL2 guard against old segments.
    func updateWindow(_ window: Int, seq: SequenceNumber, ack: SequenceNumber) {
        sender.updateWindow(window, seq: seq, ack: ack)
    }

    /// Whether `seg` is a new SYN that may reopen this connection from
    /// TIME-WAIT (RFC 1122 4.2.2.13; RFC 6191 with timestamps), as Linux's
    /// tcp_timewait_state_process judges it: a sequence number past RCV.NXT,
    /// or a timestamp newer than the last one seen, and none older (PAWS).
    /// Without this a client that reuses its port while the stack, which
    /// closed first, still waits finds the connection stuck in TIME-WAIT.
    func isReopened(by seg: TCPRepr) -> Bool {
        guard state == .timeWait, seg.flags.contains(.syn), !seg.flags.contains(.ack),
              !seg.flags.contains(.rst) else { return false }
        if timestampsEnabled, let ts = seg.options.timestamps {
            let newer = Int32(bitPattern: ts.value &- tsRecent)
            if newer < 0 { return false }
            if newer > 0 { return true }
        }
        return seg.seq > receiver.rcvNxt
    }

    // MARK: Shared helpers

    /// Moves to CLOSED, cancelling every timer.
    func enterClosed(error: TCPError?) {
        if let error, self.error == nil { self.error = error }
        sender.cancelTimers()
        receiver.delayedAckDeadline = nil
        keepaliveDeadline = nil
        timeWaitDeadline = nil
        finWait2Deadline = nil
        idleDeadline = nil
        state = .closed
        onReadable?(self)
    }

    /// After the application reads: tell the peer if the window opened enough
    /// (receiver SWS avoidance, `TCPReceiver.windowMayHaveOpened`).
    func windowMayHaveOpened() {
        guard state.isSynchronized else { return }
        receiver.windowMayHaveOpened(mss: sender.sendMSS)
    }

    /// Adds what the sender did to the connection's tallies, touching only
    /// those that changed (each is a checked class-property access).
    @inline(__always)
    func record(_ events: TCPSendEvents) {
        if events.bytesSent != 0 { bytesSent &+= events.bytesSent }
        if events.dataAcked { pendingWritable = true }
        if events.retransmitted != 0 { segmentsRetransmitted &+= events.retransmitted }
        if events.fastRecoveries != 0 { fastRecoveries &+= events.fastRecoveries }
        if events.lossProbes != 0 { lossProbesSent &+= events.lossProbes }
        if events.recoveriesUndone != 0 { recoveriesUndone &+= events.recoveriesUndone }
        if events.lossProbeRecoveries != 0 { lossProbeRecoveries &+= events.lossProbeRecoveries }
        if events.lossProbesUnneeded != 0 { lossProbesUnneeded &+= events.lossProbesUnneeded }
        if events.duplicateReports != 0 { duplicateReportsReceived &+= events.duplicateReports }
    }

    /// Tail loss probes are on for this connection now (RFC 8985 7.2).
    var mayProbe: Bool { configuration.rackTLP && sackEnabled && state.isSynchronized }

    /// Our timestamp clock: milliseconds, offset per connection (RFC 7323 5.4).
    func timestampNow(_ now: Instant) -> UInt32 {
        TCPSender.timestamp(now, offset: tsOffset)
    }
}
