import CURing
import NetStackWire

/// A connection's way out during one service: its segments, checksummed,
/// behind IP's headroom. Holds the layer and IP unowned, as plain pointers:
/// it lives only within `service`, and retaining them cost a retain and a
/// release per segment.
struct TCPSegmentPath: TCPSegmentOutput {
    unowned(unsafe) let layer: TCPLayer
    unowned(unsafe) let ip: any IPOutput
    let tuple: TCPFourTuple
    let settings: IPHeaderSettings
    let now: Instant

    func send(_ repr: TCPRepr, payload a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer, segmentSize: Int,
              inPlace: Bool) -> Int {
        layer.emit(repr, from: tuple, payload: a, b, segmentSize: segmentSize, inPlace: inPlace, settings: settings,
                   via: ip, now: now)
    }
}

extension TCPLayer {
    /// Lets `c` send, keeps its wheel timer at its next deadline, and retires it once CLOSED.
    func service(_ c: TCPConnection, now: Instant) {
        // A finished handshake goes to the application first, so what it
        // writes on accept leaves in this same dispatch.
        if let l = c.listener, c.state.isSynchronized {
            c.listener = nil
            l.synQueue.remove(c)
            l.established(c)
            // Data (or a FIN) that came with the handshake's last ACK was
            // announced before the application could listen for it.
            if c.readableBytes > 0 || c.receivedFin { c.onReadable?(c) }
        }
        // This dispatch covers what the application asked for: its queue entry is moot.
        c.awaitingService = false
        c.dispatch(now: now, to: TCPSegmentPath(layer: self, ip: ip, tuple: c.tuple,
                                                settings: c.configuration.ipHeader, now: now))
        if c.state == .closed {
            retire(c)
            return
        }
        syncTimer(c)
    }

    /// Services the connections queued by their applications since the last
    /// call, unless serviced since (a segment's arrival) or retired.
    func servicePending(now: Instant) {
        // Servicing may queue more (a callback writing to another connection).
        while let c = pending.popFirst() {
            guard c.awaitingService, c.serviceQueue != nil else { continue }
            service(c, now: now)
        }
    }

    /// Fires due connection timers.
    func tick(now: Instant) {
        wheel.advance(to: now) { _, id in
            guard let c = byTimerID[id] else { return }
            c.wheelTimer.deadline = nil
            c.wheelTimer.handle = nil
            c.handleTimers(now: now)
            service(c, now: now)
        }
        if now >= nextIdleSweep { sweepIdle(now: now) }
    }

    /// Every `idleSweepInterval`, connections that moved nothing since the
    /// previous sweep give back the memory their empty rings hold
    /// (`TCPConnection.releaseStorageIfIdle`). A sweep over the table rather
    /// than a timer per connection: nothing is added per segment, and 50,000
    /// connections take well under a millisecond.
    func sweepIdle(now: Instant) {
        nextIdleSweep = now + Self.idleSweepInterval
        var released = 0
        for c in connections.values { released += c.releaseStorageIfIdle() }
        // Rings' first pages given back since the last sweep (idle ones, and
        // those of connections gone) go back to the system.
        released -= memory.pages.trim()
        // Larger ring storage freed stays in the allocator's heap, resident;
        // after a sweep that freed much of it, hand the free pages back
        // (glibc's malloc_trim also releases pages inside the heap).
        if released >= 1 << 20 { _ = malloc_trim(0) }
    }

    /// Frames `repr` and its payload, `a` then `b`, and sends them through
    /// `ip`. With `inPlace` (data sent for the first time, which the ring
    /// keeps unchanged until it is acknowledged) and a device that reads
    /// frame tails in place, the payload stays in the ring and the device
    /// reads it from there; otherwise it is copied into the frame. Returns
    /// the payload bytes copied. `settings`: the connection's IP_TTL and IP_TOS.
    @discardableResult
    func emit(_ repr: TCPRepr, from tuple: TCPFourTuple, payload a: UnsafeRawBufferPointer,
              _ b: UnsafeRawBufferPointer, segmentSize: Int = 0, inPlace: Bool = false,
              settings: IPHeaderSettings = .standard, via ip: any IPOutput, now: Instant) -> Int {
        let length = repr.headerLength + a.count + b.count
        let partial = checksumOffload
        let offload = TransportOffload(partialChecksumAt: partial ? TCPSegment.checksumOffset : nil,
                                       segmentSize: segmentSize)
        let payload = FrameTail(a, b)
        let tail = inPlace && sendsDataInPlace ? payload : .none
        let sent = ip.send(from: tuple.localAddress, to: tuple.remoteAddress, protocol: .tcp, length: length,
                           offload: offload, tail: tail, settings: settings, now: now) { segment in
            if tail.isEmpty { payload.copy(to: segment.baseAddress! + repr.headerLength) }
            if partial {
                repr.emitLeavingChecksum(into: segment, source: tuple.localAddress, destination: tuple.remoteAddress)
            } else {
                repr.emit(into: segment, source: tuple.localAddress, destination: tuple.remoteAddress)
            }
        }
        guard sent else { return 0 }
        kept.segmentsOut &+= 1
        if repr.flags.contains(.rst) { kept.resetsSent &+= 1 }
        return a.count + b.count - tail.count
    }

    /// The RST that answers `seg` where no connection takes it (RFC 9293
    /// 3.10.7.1): <SEQ=SEG.ACK><CTL=RST> if it carried an ACK, else
    /// <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
    func sendReset(answering seg: TCPRepr, to tuple: TCPFourTuple, now: Instant) {
        if let ack = seg.ack, seg.flags.contains(.ack) {
            sendReset(to: tuple, seq: ack, ack: nil, now: now)
        } else {
            sendReset(to: tuple, seq: SequenceNumber(0), ack: seg.seq + seg.segmentLength, now: now)
        }
    }

    /// Sends a reset not tied to a connection (RFC 9293 3.10.7.1).
    func sendReset(to tuple: TCPFourTuple, seq: SequenceNumber, ack: SequenceNumber?, now: Instant) {
        let repr = TCPRepr(sourcePort: tuple.localPort, destinationPort: tuple.remotePort, seq: seq, ack: ack,
                           flags: ack == nil ? .rst : [.rst, .ack], window: 0, options: TCPOptions(),
                           payloadLength: 0)
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        emit(repr, from: tuple, payload: empty, empty, via: ip, now: now)
    }
}
