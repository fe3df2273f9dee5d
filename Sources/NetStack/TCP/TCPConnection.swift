import Logging
import NetStackWire

/// One TCP connection: the transmission control block (RFC 9293 3.3.1), its
/// send and receive rings, and the state machine.
///
/// The connection does no I/O. The interface hands it segments (`process`),
/// asks it what to send (`dispatch`) and runs its timers (`handleTimers`).
/// That keeps every transition testable with crafted segments on a virtual
/// clock, the way smoltcp tests its sockets. Input is in
/// TCPConnection+Input.swift, output in +Output.swift, timers in +Timers.swift.
public final class TCPConnection {
    public let tuple: TCPFourTuple
    let configuration: TCPConfiguration
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

    // MARK: Send sequence space (RFC 9293 3.3.1)
    var iss: SequenceNumber
    var sndUna: SequenceNumber
    var sndNxt: SequenceNumber
    /// The highest sequence sent; sndNxt rewinds to sndUna after a timeout, sndMax does not.
    var sndMax: SequenceNumber
    /// The peer's window, in bytes (already scaled).
    var sndWnd = 0
    var sndWl1 = SequenceNumber(0)
    var sndWl2 = SequenceNumber(0)
    /// Largest window the peer has offered, for RFC 5961 5.2's ACK check and sender SWS avoidance.
    var maxSndWnd = 0

    // MARK: Receive sequence space
    var irs = SequenceNumber(0)
    var rcvNxt = SequenceNumber(0)
    /// The right edge we last advertised; never moves left (RFC 9293 3.8.6.2.2).
    var rcvAdvertisedEdge = SequenceNumber(0)

    // MARK: Negotiated options
    /// Payload bytes per segment, after options (RFC 9293 3.7.1, RFC 6691).
    var sendMSS: Int
    /// What we announce: our MTU less IP and TCP headers.
    let localMSS: Int
    var sndScale: UInt8 = 0
    var rcvScale: UInt8 = 0
    var timestampsEnabled = false
    var sackEnabled = false
    /// RFC 7323 4.3: the peer's latest timestamp, echoed back.
    var tsRecent: UInt32 = 0
    /// Keeps our timestamps from revealing uptime (RFC 7323 5.4 / 7.1).
    let tsOffset: UInt32

    // MARK: Buffers
    let sendBuffer: ByteRing
    /// Sequence number of the first byte in `sendBuffer`.
    var sendBufferSeq: SequenceNumber
    /// The application closed its sending side; a FIN follows the data.
    var finQueued = false
    let receiveBuffer: ByteRing
    var reassembly = Assembler()
    /// A FIN that arrived ahead of missing data, processed once the gap fills.
    var pendingFinSeq: SequenceNumber?
    /// The peer's FIN was received: no more data will come.
    public internal(set) var receivedFin = false

    // MARK: Acknowledgment
    /// An ACK must go out now (out-of-order data, a window update, a probe answer).
    var ackNow = false
    /// Bytes received since the last ACK we sent, for "ACK every second full segment".
    var unackedBytes = 0

    // MARK: Retransmission and congestion
    var rtt: RTTEstimator
    /// The smallest RTT from RTT samples (send times, else timestamps), in nanoseconds.
    var sampledMinRTTNs: Int64?
    /// The smallest RTT measured, in nanoseconds (RACK's reordering window, CUBIC, HyStart++):
    /// RACK's per-segment timing when it has one, since millisecond timestamps would floor it at 0.
    var minRTTNs: Int64? { rack.minRTTNs ?? sampledMinRTTNs }
    var congestion: CongestionController
    /// Timing of the SYN (Karn's algorithm: never a retransmitted one); data
    /// is timed from the scoreboard's send times.
    var rttProbe: (seq: SequenceNumber, sentAt: Instant)?
    var retransmissions = 0
    /// Where the last small data segment sent ends (Nagle, Minshall's variant).
    var smallSegmentEnd: SequenceNumber?

    // MARK: Loss recovery (TCPConnection+Recovery.swift)
    /// Every segment in flight, with what the SACK blocks and loss detection said of it.
    var scoreboard: RetransmitQueue
    var rack = RACK()
    var lossState = LossState.open
    /// RFC 6675's RecoveryPoint (and RFC 6582's `recover` while recovering):
    /// recovery, or the go-back after a timeout, lasts until this is acknowledged.
    var recoveryPoint: SequenceNumber?
    /// RFC 6582's `recover` after recovery: duplicate ACKs that do not cover it
    /// start no new fast retransmit (3.2 step 1).
    var recover: SequenceNumber
    /// Sending during recovery (RFC 6937).
    var prr = ProportionalRateReduction(flightSize: 1)
    /// Without SACK: duplicate ACKs in a row, and the bytes they stand for as
    /// delivered (Linux's "reno SACKs"), which leave the pipe.
    var duplicateAcks = 0
    var renoDeliveredBytes = 0
    /// RACK's reordering timer (RFC 8985 6.3).
    var reorderDeadline: Instant?
    /// The tail loss probe's timer (RFC 8985 7.2) and the probe waiting to go.
    var lossProbeDeadline: Instant?
    var lossProbeDue = false
    /// The probe in flight (RFC 8985 7.4), until an ACK settles it.
    var lossProbe: LossProbe?
    /// The last fast recovery, until D-SACKs prove it spurious or another
    /// loss episode begins (RFC 3708).
    var spuriousCheck: SpuriousRecoveryCheck?
    /// A duplicate segment to report in the next ACK's first SACK block (RFC 2883 4).
    var duplicateToReport: (left: SequenceNumber, right: SequenceNumber)?

    // MARK: Timers (deadlines; the interface keeps one wheel timer at the earliest)
    var retransmitDeadline: Instant?
    var delayedAckDeadline: Instant?
    var persistDeadline: Instant?
    var persistBackoff = 0
    var keepaliveDeadline: Instant?
    var keepaliveProbesSent = 0
    var timeWaitDeadline: Instant?
    var finWait2Deadline: Instant?
    /// A window probe or keepalive is due: a segment with seq SND.UNA-1.
    var probeNow = false
    /// The persist timer fired on a window too small for sender SWS avoidance:
    /// send what fits anyway (RFC 9293 3.8.6.2.1's override timeout).
    var sendSmallSegment = false

    // MARK: Statistics
    public internal(set) var segmentsRetransmitted: UInt64 = 0
    /// Loss episodes: fast recoveries entered, and tail loss probes sent.
    public internal(set) var fastRecoveries: UInt64 = 0
    public internal(set) var lossProbesSent: UInt64 = 0
    public internal(set) var retransmissionTimeouts: UInt64 = 0
    /// Fast recoveries whose window cut was undone: every resend was D-SACKed.
    public internal(set) var recoveriesUndone: UInt64 = 0
    /// The tallies above as the interface last added them to its counters.
    var reportedTallies: (retransmitted: UInt64, recoveries: UInt64, probes: UInt64, timeouts: UInt64,
                          undone: UInt64) = (0, 0, 0, 0, 0)
    public internal(set) var bytesSent: UInt64 = 0
    public internal(set) var bytesReceived: UInt64 = 0

    // MARK: Application callbacks (run on the loop)
    /// New bytes can be read, or the peer closed (read returns 0 then).
    public var onReadable: ((TCPConnection) -> Void)?
    /// Send buffer space opened up.
    public var onWritable: ((TCPConnection) -> Void)?
    /// The state changed (from the given state).
    public var onStateChange: ((TCPConnection, TCPState) -> Void)?
    /// Events raised while a segment is processed, delivered when it is done.
    var pendingReadable = false
    var pendingWritable = false

    /// The application gave up the connection (closed it); when it reaches CLOSED nobody holds it.
    var orphaned = false
    /// Passive opens remember their listener until the handshake completes.
    weak var listener: TCPListener?

    // MARK: Bookkeeping of the interface's timer wheel
    var timerID: UInt64 = 0
    var timerHandle: TimerHandle?
    var armedDeadline: Instant?

    init(tuple: TCPFourTuple, configuration: TCPConfiguration, iss: SequenceNumber, localMSS: Int,
         activeOpen: Bool, now: Instant, logger: Logger) {
        self.tuple = tuple
        self.configuration = configuration
        self.logger = logger
        self.iss = iss
        self.activeOpen = activeOpen
        sndUna = iss
        sndNxt = iss
        sndMax = iss
        sendBufferSeq = iss + 1
        recover = iss
        self.localMSS = localMSS
        // RFC 9293 3.7.1: without an MSS option, assume 536.
        sendMSS = min(536, localMSS)
        tsOffset = iss.rawValue &* 2_654_435_761
        sendBuffer = ByteRing(capacity: configuration.sendBufferSize)
        // One record per segment in flight: a full ring of 512-byte segments fits.
        scoreboard = RetransmitQueue(capacity: max(64, configuration.sendBufferSize / 512))
        receiveBuffer = ByteRing(capacity: configuration.receiveBufferSize)
        rtt = RTTEstimator(initialRTO: configuration.initialRTO, minimumRTO: configuration.minimumRTO,
                           maximumRTO: configuration.maximumRTO)
        congestion = CongestionController(configuration.congestionControl, mss: sendMSS)
        state = .closed
        // The scale we would use: the smallest that fits the receive ring in 16 bits (RFC 7323 2.3).
        var scale: UInt8 = 0
        while scale < 14 && (receiveBuffer.capacity >> Int(scale)) > 0xffff { scale += 1 }
        rcvScale = configuration.windowScaling ? scale : 0
    }

    // MARK: Application interface

    /// Bytes waiting to be read.
    public var readableBytes: Int { receiveBuffer.count }

    /// Free space in the send ring.
    public var writableBytes: Int {
        state.acceptsWrites && !finQueued ? sendBuffer.freeSpace : 0
    }

    /// True once the peer's FIN has been received and every byte before it read.
    public var isReadClosed: Bool { (receivedFin && receiveBuffer.count == 0) || state == .closed }

    /// Copies received bytes out. Returns 0 when nothing is waiting (see `isReadClosed`).
    public func read(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let n = receiveBuffer.read(into: buffer)
        if n > 0 { windowMayHaveOpened() }
        return n
    }

    /// Drops up to `n` received bytes without copying them (the discard service).
    @discardableResult
    public func skip(_ n: Int) -> Int {
        let k = min(n, receiveBuffer.count)
        receiveBuffer.consume(k)
        if k > 0 { windowMayHaveOpened() }
        return k
    }

    /// Calls `body` with up to two pieces of the received bytes, without consuming them.
    public func peek<R>(_ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) -> R) -> R {
        let (a, b) = receiveBuffer.peek(from: 0, count: receiveBuffer.count)
        return body(a, b)
    }

    /// Queues bytes to send; returns how many fit in the send ring.
    public func write(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard state.acceptsWrites, !finQueued else { return 0 }
        return sendBuffer.append(bytes)
    }

    /// Closes our sending side: a FIN follows the queued data (RFC 9293 3.10.4).
    /// Reading may continue until the peer closes too.
    public func shutdownWrite() {
        switch state {
        case .closed, .listen, .synSent:
            state = .closed
        case .synReceived, .established:
            finQueued = true
            state = .finWait1
        case .closeWait:
            finQueued = true
            state = .lastAck
        default:
            break
        }
    }

    /// Closes the connection. Unread received data means the peer's data would
    /// be silently lost, so the connection is reset instead (RFC 2525 2.17, as Linux does).
    public func close() {
        orphaned = true
        if receiveBuffer.count > 0 && state.isSynchronized {
            abort()
            return
        }
        shutdownWrite()
    }

    /// Resets the connection: an RST goes to the peer if it is synchronized (RFC 9293 3.10.5).
    public func abort() {
        orphaned = true
        if state.isSynchronized || state == .synReceived { sendResetNow = true }
        enterClosed(error: .aborted)
    }

    /// Set by `abort`: the next dispatch emits one RST.
    var sendResetNow = false

    // MARK: Shared helpers

    /// Moves to CLOSED, cancelling every timer.
    func enterClosed(error: TCPError?) {
        if let error, self.error == nil { self.error = error }
        retransmitDeadline = nil
        reorderDeadline = nil
        lossProbeDeadline = nil
        delayedAckDeadline = nil
        persistDeadline = nil
        keepaliveDeadline = nil
        timeWaitDeadline = nil
        finWait2Deadline = nil
        state = .closed
        onReadable?(self)
    }

    /// Bytes sent but not yet acknowledged (SYN and FIN count one each).
    var flightSize: Int { sndMax - sndUna }

    /// Sequence number of our FIN, once queued.
    var finSeq: SequenceNumber? { finQueued ? sendBufferSeq + sendBuffer.count : nil }

    /// The window we may advertise: the receive ring's free space, right edge never moving left.
    var receiveWindow: Int { receiveBuffer.freeSpace }

    /// After the application reads: if the window grew by enough, tell the
    /// peer (receiver SWS avoidance, RFC 9293 3.8.6.2.2: by min(buffer/2,
    /// Eff.snd.MSS), the MSS less options as RFC 1122 4.2.2.6 and RFC 6691 count it).
    /// The update goes at once only when the window left to the peer has
    /// fallen to half the ring or less and would at least double, as Linux
    /// decides (`tcp_cleanup_rbuf`); otherwise the next ACK carries it, so a
    /// reader keeping up does not turn every segment into its own ACK and
    /// delayed ACKs still cover two segments (RFC 5681 4.2).
    func windowMayHaveOpened() {
        guard state.isSynchronized else { return }
        let current = max(rcvAdvertisedEdge - rcvNxt, 0)
        let newEdge = rcvNxt + receiveWindow
        let growth = newEdge - rcvAdvertisedEdge
        guard growth >= min(receiveBuffer.capacity / 2, sendMSS) else { return }
        if 2 * current <= receiveBuffer.capacity && receiveWindow >= 2 * current {
            ackNow = true
        }
    }
}
