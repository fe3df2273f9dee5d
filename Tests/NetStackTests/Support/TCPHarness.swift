import Logging
import Testing
@testable import NetStack
import NetStackWire

/// One segment a `TCPConnection` emitted, its payload copied out of the send
/// ring, with the virtual time it left.
struct SentSegment: CustomStringConvertible {
    let repr: TCPRepr
    let payload: [UInt8]
    let time: Instant
    /// The connection offered the payload in place (`TCPSegmentOutput.send`'s
    /// `inPlace`): data sent for the first time.
    var inPlace = false

    var seq: SequenceNumber { repr.seq }
    var ack: SequenceNumber? { repr.flags.contains(.ack) ? repr.ack : nil }
    var flags: TCPFlags { repr.flags }
    var window: UInt16 { repr.window }
    var options: TCPOptions { repr.options }
    /// SEG.LEN: payload plus one each for SYN and FIN (RFC 9293 3.4).
    var segmentLength: Int {
        payload.count + (flags.contains(.syn) ? 1 : 0) + (flags.contains(.fin) ? 1 : 0)
    }
    /// An ACK with no text and no SYN, FIN or RST.
    var isPureAck: Bool {
        flags.contains(.ack) && payload.isEmpty && flags.isDisjoint(with: [.syn, .fin, .rst])
    }

    var description: String {
        "\(time) \(flags) seq \(seq) ack \(ack.map { "\($0)" } ?? "-") win \(window) len \(payload.count)"
    }
}

/// Drives one `TCPConnection` directly, smoltcp-style: the test plays the
/// remote TCP, hands the connection crafted segments (`receive`), and collects
/// what it sends. After every input, write, read and timer the harness calls
/// `dispatch`, as `Interface.serviceTCP` does; a `.challengeAck` or
/// `.unacceptable` result's ACK is granted (no rate limit here) and a `.reset(seq:)` result is recorded as the
/// RST segment the interface would send (RFC 9293 3.10.7: `<SEQ=seq><CTL=RST>`).
///
/// Time is a `VirtualClock`; `advance` walks through the connection's deadlines
/// in order, so timer-driven segments carry the exact time they left.
final class TCPHarness {
    static let localAddress = IPv4Address(10, 0, 0, 2)
    static let localPort: UInt16 = 80
    static let remoteAddress = IPv4Address(10, 0, 0, 1)
    static let remotePort: UInt16 = 40000
    static let tuple = TCPFourTuple(localAddress: localAddress, localPort: localPort,
                                    remoteAddress: remoteAddress, remotePort: remotePort)
    /// Ethernet MTU 1500 less 20 bytes of IPv4 and 20 of TCP header (RFC 9293 3.7.1).
    static let defaultLocalMSS = 1460
    static let defaultISS = SequenceNumber(10_000)
    static let defaultPeerISS = SequenceNumber(50_000)

    /// What a Linux peer offers on its SYN: MSS, SACK-permitted, timestamps, window scale 7.
    static func linuxSynOptions(mss: UInt16 = 1460, windowScale: UInt8? = 7, timestamps: Bool = true) -> TCPOptions {
        TCPOptions(mss: mss, windowScale: windowScale, sackPermitted: true,
                   timestamps: timestamps ? (value: 1, echoReply: 0) : nil)
    }

    let clock = VirtualClock()
    let connection: TCPConnection
    let iss: SequenceNumber
    var now: Instant { clock.now }

    // MARK: The remote TCP, played by the test
    /// The peer's ISN.
    var peerISS: SequenceNumber
    /// The sequence number of the peer's next new byte (its SND.NXT).
    var peerNext: SequenceNumber
    /// The raw window field the peer puts on its segments.
    var peerWindow: UInt16 = 65535
    /// The peer uses timestamps (it offered them, and they were agreed).
    var peerTimestamps = false
    /// Added to the virtual clock's milliseconds to make the peer's TSval.
    var peerTSOffset: UInt32 = 7_000_000
    /// Highest sequence number the stack has sent so far (its SND.MAX as seen on the wire).
    private(set) var stackNext: SequenceNumber
    /// The latest TSval the stack sent, which the peer echoes.
    private(set) var lastStackTSval: UInt32 = 0

    /// Everything sent since the last `drain()`.
    private var outbox: [SentSegment] = []

    init(configuration: TCPConfiguration = TCPConfiguration(), localMSS: Int = TCPHarness.defaultLocalMSS,
         iss: SequenceNumber = TCPHarness.defaultISS, peerISS: SequenceNumber = TCPHarness.defaultPeerISS,
         activeOpen: Bool) {
        self.iss = iss
        self.peerISS = peerISS
        peerNext = peerISS
        stackNext = iss
        connection = TCPConnection(tuple: Self.tuple, configuration: configuration, iss: iss, localMSS: localMSS,
                                   activeOpen: activeOpen, now: clock.now, logger: Logger(label: "tcp-test"))
    }

    // MARK: Opening

    /// RFC 9293 3.10.1 active OPEN: SYN-SENT, and the SYN goes out.
    static func activeOpen(configuration: TCPConfiguration = TCPConfiguration(),
                           localMSS: Int = TCPHarness.defaultLocalMSS,
                           iss: SequenceNumber = TCPHarness.defaultISS,
                           peerISS: SequenceNumber = TCPHarness.defaultPeerISS) -> TCPHarness {
        let h = TCPHarness(configuration: configuration, localMSS: localMSS, iss: iss, peerISS: peerISS,
                           activeOpen: true)
        h.connection.state = .synSent
        h.dispatch()
        return h
    }

    /// A SYN arriving at a listener (RFC 9293 3.10.7.2), set up exactly as
    /// `Interface.listenerReceive` does; the SYN-ACK is in the outbox.
    static func passiveOpen(configuration: TCPConfiguration = TCPConfiguration(),
                            localMSS: Int = TCPHarness.defaultLocalMSS,
                            iss: SequenceNumber = TCPHarness.defaultISS,
                            peerISS: SequenceNumber = TCPHarness.defaultPeerISS,
                            synOptions: TCPOptions = TCPHarness.linuxSynOptions(),
                            synWindow: UInt16 = 65535) -> TCPHarness {
        let h = TCPHarness(configuration: configuration, localMSS: localMSS, iss: iss, peerISS: peerISS,
                           activeOpen: false)
        let c = h.connection
        let syn = TCPRepr(sourcePort: remotePort, destinationPort: localPort, seq: peerISS, flags: .syn,
                          window: synWindow, options: h.stamped(synOptions, flags: .syn))
        // The LISTEN step's own: what TCPLayer does with a SYN for a listener.
        c.acceptSYN(syn)
        h.peerNext = peerISS + 1
        h.peerTimestamps = syn.options.timestamps != nil && configuration.timestamps
        h.dispatch()
        return h
    }

    /// A passive open taken to ESTABLISHED: SYN, SYN-ACK after `rtt`, final ACK.
    /// The outbox is left empty. The peer's window field is `window` (scaled by
    /// the peer's window scale once agreed).
    static func established(configuration: TCPConfiguration = TCPConfiguration(),
                            localMSS: Int = TCPHarness.defaultLocalMSS,
                            iss: SequenceNumber = TCPHarness.defaultISS,
                            peerISS: SequenceNumber = TCPHarness.defaultPeerISS,
                            synOptions: TCPOptions = TCPHarness.linuxSynOptions(),
                            synWindow: UInt16 = 65535, window: UInt16 = 65535,
                            rtt: Duration = .milliseconds(100),
                            sourceLocation: SourceLocation = #_sourceLocation) -> TCPHarness {
        let h = passiveOpen(configuration: configuration, localMSS: localMSS, iss: iss, peerISS: peerISS,
                            synOptions: synOptions, synWindow: synWindow)
        _ = h.drain()
        h.clock.advance(by: rtt)
        h.peerWindow = window
        h.receive(.ack, ack: iss + 1)
        #expect(h.connection.state == .established, sourceLocation: sourceLocation)
        _ = h.drain()
        return h
    }

    /// An active open taken to ESTABLISHED: SYN, then the peer's SYN-ACK after
    /// `rtt`; the stack's ACK is drained.
    static func establishedActive(configuration: TCPConfiguration = TCPConfiguration(),
                                  localMSS: Int = TCPHarness.defaultLocalMSS,
                                  iss: SequenceNumber = TCPHarness.defaultISS,
                                  peerISS: SequenceNumber = TCPHarness.defaultPeerISS,
                                  synAckOptions: TCPOptions = TCPHarness.linuxSynOptions(),
                                  window: UInt16 = 65535, rtt: Duration = .milliseconds(100),
                                  sourceLocation: SourceLocation = #_sourceLocation) -> TCPHarness {
        let h = activeOpen(configuration: configuration, localMSS: localMSS, iss: iss, peerISS: peerISS)
        let syn = h.drain()
        #expect(syn.count == 1 && syn.first?.flags == .syn, sourceLocation: sourceLocation)
        h.clock.advance(by: rtt)
        h.peerTimestamps = synAckOptions.timestamps != nil && syn.first?.options.timestamps != nil
        h.peerWindow = window
        h.receive([.syn, .ack], seq: peerISS, ack: iss + 1, options: synAckOptions)
        #expect(h.connection.state == .established, sourceLocation: sourceLocation)
        _ = h.drain()
        return h
    }

    // MARK: Input

    /// The peer's options for a segment: the given ones, with the timestamps
    /// filled in from the peer's clock (TSecr = the stack's latest TSval) when
    /// they are present or in use.
    func stamped(_ options: TCPOptions?, flags: TCPFlags) -> TCPOptions {
        var o = options ?? TCPOptions()
        if o.timestamps != nil || (options == nil && peerTimestamps) {
            // A bare SYN echoes nothing (RFC 7323 3.2: TSecr is zero when ACK is off).
            o.timestamps = (value: peerTSval, echoReply: flags.contains(.ack) ? lastStackTSval : 0)
        }
        return o
    }

    /// The peer's timestamp clock: milliseconds, with an offset.
    var peerTSval: UInt32 { UInt32(truncatingIfNeeded: now.nanoseconds / 1_000_000) &+ peerTSOffset }

    /// Hands the connection a segment from the peer, then lets it send.
    /// - `seq` defaults to the peer's next sequence number, which then advances
    ///   by the segment's length (an explicit `seq` does not move it, except
    ///   for the peer's SYN at its ISN).
    /// - `ack` is used when `flags` has ACK; it defaults to everything the stack has sent.
    /// - `options` nil means "timestamps if in use"; explicit options are sent as given
    ///   except that a present timestamps option gets the peer's clock and echo
    ///   (use `rawOptions` to send exactly what you pass).
    @discardableResult
    func receive(_ flags: TCPFlags = .ack, seq: SequenceNumber? = nil, ack: SequenceNumber? = nil,
                 window: UInt16? = nil, options: TCPOptions? = nil, rawOptions: TCPOptions? = nil,
                 urgentPointer: UInt16 = 0, payload: [UInt8] = []) -> TCPInputResult {
        let segSeq = seq ?? peerNext
        let repr = TCPRepr(sourcePort: Self.remotePort, destinationPort: Self.localPort, seq: segSeq,
                           ack: flags.contains(.ack) ? (ack ?? stackNext) : nil, flags: flags,
                           window: window ?? peerWindow, urgentPointer: urgentPointer,
                           options: rawOptions ?? stamped(options, flags: flags), payloadLength: payload.count)
        // The peer's SYN (re)starts its sequence space; otherwise only default-numbered segments move it.
        if seq == nil || (flags.contains(.syn) && segSeq == peerISS) { peerNext = segSeq + repr.segmentLength }
        let result = payload.withUnsafeBytes { p in connection.process(repr, payload: p, now: now) }
        switch result {
        case .challengeAck, .unacceptable:
            connection.receiver.ackNow = true
        case .reset(let rstSeq):
            let rst = TCPRepr(sourcePort: Self.localPort, destinationPort: Self.remotePort, seq: rstSeq,
                              flags: .rst, window: 0)
            outbox.append(SentSegment(repr: rst, payload: [], time: now))
        case .accepted, .dropped:
            break
        }
        dispatch()
        return result
    }

    // MARK: Application

    /// Writes bytes and lets the connection send; returns how many were taken.
    @discardableResult
    func write(_ bytes: [UInt8]) -> Int {
        let n = bytes.withUnsafeBytes { connection.write($0) }
        dispatch()
        return n
    }

    /// Reads up to `max` bytes (all that is readable by default) and lets the connection send.
    func read(max: Int = .max) -> [UInt8] {
        let n = min(max, connection.readableBytes)
        var out = [UInt8](repeating: 0, count: n)
        let got = out.withUnsafeMutableBytes { connection.read(into: $0) }
        dispatch()
        return Array(out[0..<got])
    }

    func shutdownWrite() {
        connection.shutdownWrite()
        dispatch()
    }

    func close() {
        connection.close()
        dispatch()
    }

    func abort() {
        connection.abort()
        dispatch()
    }

    // MARK: Output and time

    /// Lets the connection send what it has, into the outbox.
    func dispatch() {
        let t = now
        connection.dispatch(now: t, to: Outbox { [self] repr, a, b, inPlace in
            let seg = SentSegment(repr: repr, payload: [UInt8](a) + [UInt8](b), time: t, inPlace: inPlace)
            if seg.segmentLength > 0, seg.seq + seg.segmentLength > stackNext { stackNext = seg.seq + seg.segmentLength }
            if let ts = repr.options.timestamps { lastStackTSval = ts.value }
            outbox.append(seg)
        })
    }

    /// Collects what the connection sends, in place of the layer's path to IP.
    private struct Outbox: TCPSegmentOutput {
        let body: (TCPRepr, UnsafeRawBufferPointer, UnsafeRawBufferPointer, Bool) -> Void
        func send(_ repr: TCPRepr, payload a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer,
                  segmentSize: Int, inPlace: Bool) -> Int {
            body(repr, a, b, inPlace)
            return a.count + b.count
        }
    }

    /// Takes what was sent since the last call.
    func drain() -> [SentSegment] {
        defer { outbox.removeAll() }
        return outbox
    }

    /// Moves time forward by `d`, running each timer at its own deadline and
    /// dispatching after it; returns what was sent.
    @discardableResult
    func advance(by d: Duration) -> [SentSegment] {
        advance(to: now + d)
    }

    @discardableResult
    func advance(to target: Instant) -> [SentSegment] {
        var steps = 0
        while let deadline = connection.nextDeadline, deadline <= target, connection.state != .closed {
            steps += 1
            if steps > 100_000 {
                Issue.record("timers kept firing without end")
                break
            }
            if deadline > now { clock.set(deadline) }
            connection.handleTimers(now: now)
            dispatch()
        }
        if target > now { clock.set(target) }
        return drain()
    }
}

extension TCPConnection {
    /// RFC 9293's RCV.WND as last advertised: the right edge less RCV.NXT.
    var advertisedWindow: Int { receiver.rcvAdvertisedEdge - receiver.rcvNxt }
}

/// Deterministic test bytes.
func testBytes(_ count: Int, seed: UInt8 = 0) -> [UInt8] { FrameBuilder.pattern(count, seed: seed) }

extension TCPHarness {
    /// A passively opened connection brought to `state` along RFC 9293 Figure 5,
    /// the outbox drained. Synchronized states only (and SYN-RECEIVED).
    static func inState(_ state: TCPState, configuration: TCPConfiguration = TCPConfiguration(),
                        sourceLocation: SourceLocation = #_sourceLocation) -> TCPHarness {
        if state == .synReceived {
            let h = passiveOpen(configuration: configuration)
            _ = h.drain()
            return h
        }
        let h = established(configuration: configuration, sourceLocation: sourceLocation)
        let finSeq = h.iss + 1
        switch state {
        case .established:
            break
        case .finWait1:
            h.shutdownWrite()
        case .finWait2:
            h.shutdownWrite()
            h.receive(.ack, ack: finSeq + 1)
        case .closeWait:
            h.receive([.fin, .ack], ack: finSeq)
        case .closing:
            h.shutdownWrite()
            h.receive([.fin, .ack], ack: finSeq)
        case .lastAck:
            h.receive([.fin, .ack], ack: finSeq)
            h.shutdownWrite()
        case .timeWait:
            h.shutdownWrite()
            h.receive([.fin, .ack], ack: finSeq + 1)
        default:
            Issue.record("inState(\(state)) is not supported", sourceLocation: sourceLocation)
        }
        #expect(h.connection.state == state, sourceLocation: sourceLocation)
        _ = h.drain()
        return h
    }
}
