import NetStackWire

extension Interface {
    // MARK: Application entry points

    /// Listens on `port` (RFC 9293 3.10.1 passive OPEN).
    public func listenTCP(port: UInt16, backlog: Int = 128, synBacklog: Int = 256,
                          configuration: TCPConfiguration? = nil) throws(TCPListenError) -> TCPListener {
        guard port != 0 else { throw .portZero }
        guard tcp.listeners[port] == nil else { throw .portInUse(port) }
        let l = TCPListener(port: port, backlog: backlog, synBacklog: synBacklog,
                            configuration: configuration ?? tcp.defaultConfiguration)
        tcp.listeners[port] = l
        return l
    }

    /// Stops listening. Established connections from it are not affected.
    public func closeListener(_ listener: TCPListener) {
        listener.isClosed = true
        if tcp.listeners[listener.port] === listener { tcp.listeners[listener.port] = nil }
    }

    /// Opens a connection (RFC 9293 3.10.1 active OPEN): the SYN goes out at once.
    public func connectTCP(to address: IPv4Address, port: UInt16, configuration: TCPConfiguration? = nil,
                           now: Instant) throws(TCPConnectError) -> TCPConnection {
        guard route(address) != nil else { throw .noRoute }
        guard let localPort = tcp.ephemeralPort(local: self.address, remote: address, remotePort: port) else {
            throw .noEphemeralPort
        }
        let tuple = TCPFourTuple(localAddress: self.address, localPort: localPort, remoteAddress: address,
                                 remotePort: port)
        let c = makeConnection(tuple: tuple, configuration: configuration ?? tcp.defaultConfiguration,
                               activeOpen: true, now: now)
        c.state = .synSent
        counters.tcpActiveOpens &+= 1
        serviceTCP(c, now: now)
        device.flush()
        return c
    }

    /// Lets the stack send what the application queued on `c` (after write or close).
    public func flushTCP(_ c: TCPConnection, now: Instant) {
        guard tcp.connections[c.tuple] === c else { return }
        serviceTCP(c, now: now)
    }

    /// Connections in the table, for tests and statistics.
    public var tcpConnections: [TCPConnection] { Array(tcp.connections.values) }

    func makeConnection(tuple: TCPFourTuple, configuration: TCPConfiguration, activeOpen: Bool,
                        now: Instant) -> TCPConnection {
        let iss = SequenceNumber(tcp.isn.next(localAddress: tuple.localAddress.value, localPort: tuple.localPort,
                                              remoteAddress: tuple.remoteAddress.value,
                                              remotePort: tuple.remotePort, now: now))
        let mss = device.mtu - IPv4Repr.headerLength - TCPSegment.minimumHeaderLength
        let c = TCPConnection(tuple: tuple, configuration: configuration, iss: iss, localMSS: mss,
                              activeOpen: activeOpen, now: now, logger: logger)
        tcp.register(c)
        return c
    }

    // MARK: Receive

    /// RFC 9293 3.10.7: check the segment, find its connection, listener, or
    /// nobody (answered with RST), and let the connection process it.
    func receiveTCP(_ d: ReceivedDatagram, now: Instant) -> Verdict {
        guard !d.toBroadcast else { return .drop(.tcpBroadcast) }
        let segment: TCPSegment
        do { segment = try TCPSegment(validating: d.payload) } catch { return .drop(.tcpTruncated) }
        guard segment.checksumIsValid(source: d.source, destination: d.destination) else {
            return .drop(.tcpBadChecksum)
        }
        let repr: TCPRepr
        do { repr = try TCPRepr(parsing: segment) } catch { return .drop(.tcpBadOption) }
        counters.tcpSegmentsIn &+= 1
        let payload = UnsafeRawBufferPointer(segment.payload)
        let tuple = TCPFourTuple(localAddress: d.destination, localPort: repr.destinationPort,
                                 remoteAddress: d.source, remotePort: repr.sourcePort)

        if let c = tcp.connections[tuple] {
            // Linux's behaviour with a full accept queue: ignore the final ACK of
            // the handshake; the client's retransmission will try again.
            if c.state == .synReceived, repr.flags.contains(.ack), !repr.flags.contains(.rst),
               let l = c.listener, !l.canAcceptMore {
                return .drop(.tcpAcceptQueueFull)
            }
            let result = c.process(repr, payload: payload, now: now)
            switch result {
            case .accepted:
                break
            case .dropped(let reason):
                counters.drops.record(reason)
            case .reset(let seq):
                sendReset(to: tuple, seq: seq, ack: nil, now: now)
            case .challengeAck:
                if tcp.challengeAcks.take(now: now) {
                    c.ackNow = true
                    counters.tcpChallengeAcks &+= 1
                } else {
                    counters.drops.record(.tcpChallengeAckRateLimited)
                }
            }
            serviceTCP(c, now: now)
            return .done
        }
        if let l = tcp.listeners[repr.destinationPort], !l.isClosed {
            return listenerReceive(l, repr, tuple: tuple, now: now)
        }
        return closedReceive(repr, payloadLength: payload.count, tuple: tuple, now: now)
    }

    /// RFC 9293 3.10.7.2, LISTEN: a SYN makes a connection in SYN-RECEIVED.
    private func listenerReceive(_ l: TCPListener, _ seg: TCPRepr, tuple: TCPFourTuple, now: Instant) -> Verdict {
        // RFC 9293 3.10.7.2: a RST to a listener is ignored.
        if seg.flags.contains(.rst) { return .drop(.tcpNoConnection) }
        if seg.flags.contains(.ack) {
            sendReset(to: tuple, seq: seg.ack ?? SequenceNumber(0), ack: nil, now: now)
            return .drop(.tcpNoConnection)
        }
        guard seg.flags.contains(.syn) else { return .drop(.tcpNoSyn) }
        guard l.halfOpen < l.synBacklog else { return .drop(.tcpSynQueueFull) }
        let c = makeConnection(tuple: tuple, configuration: l.configuration, activeOpen: false, now: now)
        c.listener = l
        l.halfOpen += 1
        c.irs = seg.seq
        c.rcvNxt = seg.seq + 1
        c.rcvAdvertisedEdge = c.rcvNxt
        c.negotiate(seg.options)
        // The window in a SYN is never scaled (RFC 7323 2.2).
        c.updateWindow(Int(seg.window), seq: seg.seq, ack: c.iss)
        c.state = .synReceived
        counters.tcpPassiveOpens &+= 1
        serviceTCP(c, now: now)
        return .done
    }

    /// RFC 9293 3.10.7.1, CLOSED: everything but a RST is answered with a RST.
    private func closedReceive(_ seg: TCPRepr, payloadLength: Int, tuple: TCPFourTuple, now: Instant) -> Verdict {
        guard !seg.flags.contains(.rst) else { return .drop(.tcpNoConnection) }
        if let ack = seg.ack, seg.flags.contains(.ack) {
            sendReset(to: tuple, seq: ack, ack: nil, now: now)
        } else {
            sendReset(to: tuple, seq: SequenceNumber(0), ack: seg.seq + seg.segmentLength, now: now)
        }
        return .drop(.tcpNoConnection)
    }

    // MARK: Send

    /// Lets `c` send, keeps its wheel timer at its next deadline, and retires it once CLOSED.
    func serviceTCP(_ c: TCPConnection, now: Instant) {
        // A finished handshake goes to the application first, so what it
        // writes on accept leaves in this same dispatch.
        if let l = c.listener, c.state.isSynchronized {
            c.listener = nil
            l.halfOpen -= 1
            l.established(c)
            // Data (or a FIN) that came with the handshake's last ACK was
            // announced before the application could listen for it.
            if c.readableBytes > 0 || c.receivedFin { c.onReadable?(c) }
        }
        c.dispatch(now: now) { repr, a, b in
            emitTCP(repr, from: c.tuple, payload: a, b, now: now)
        }
        // The connection's own tallies grow on input, timers and output alike;
        // the interface adds what is new since it last looked.
        let r = c.reportedTallies
        counters.tcpRetransmissions &+= c.segmentsRetransmitted &- r.retransmitted
        counters.tcpFastRecoveries &+= c.fastRecoveries &- r.recoveries
        counters.tcpLossProbes &+= c.lossProbesSent &- r.probes
        counters.tcpTimeouts &+= c.retransmissionTimeouts &- r.timeouts
        counters.tcpRecoveriesUndone &+= c.recoveriesUndone &- r.undone
        c.reportedTallies = (c.segmentsRetransmitted, c.fastRecoveries, c.lossProbesSent, c.retransmissionTimeouts,
                             c.recoveriesUndone)
        if c.state == .closed {
            retire(c)
            return
        }
        tcp.syncTimer(c)
    }

    private func retire(_ c: TCPConnection) {
        guard tcp.connections[c.tuple] === c else { return }
        tcp.remove(c)
        if let l = c.listener {
            l.halfOpen -= 1
            c.listener = nil
        }
        switch c.error {
        case .connectionReset?, .connectionRefused?: counters.tcpConnectionsReset &+= 1
        case .timedOut?: counters.tcpConnectionsTimedOut &+= 1
        default: counters.tcpConnectionsClosed &+= 1
        }
    }

    /// Builds one segment in a pool slot: IPv4 header, TCP header from `repr`,
    /// then the payload pieces, copied once; checksum over the segment in place.
    func emitTCP(_ repr: TCPRepr, from tuple: TCPFourTuple, payload a: UnsafeRawBufferPointer,
                 _ b: UnsafeRawBufferPointer, now: Instant) {
        guard let nextHop = route(tuple.remoteAddress) else {
            counters.drops.record(.noRoute)
            return
        }
        guard var frame = device.pool.allocate() else {
            counters.drops.record(.poolExhausted)
            return
        }
        let tcpLength = repr.headerLength + a.count + b.count
        let ipLength = IPv4Repr.headerLength + tcpLength
        let frameLength = EthernetFrame.headerLength + ipLength
        guard frameLength <= frame.capacity else {
            counters.drops.record(.tooLargeToSend)
            return
        }
        frame.setLength(frameLength)
        let identification = nextIdentification
        nextIdentification &+= 1
        frame.withBytes { bytes in
            let ip = bytes.slice(EthernetFrame.headerLength..<frameLength)
            // DF: TCP segments are sized to the MTU and never fragmented.
            IPv4Repr(source: tuple.localAddress, destination: tuple.remoteAddress, protocol: .tcp,
                     payloadLength: tcpLength, timeToLive: configuration.timeToLive,
                     identification: identification, dontFragment: true)
                .emit(into: ip)
            let segment = ip.slice(IPv4Repr.headerLength..<ip.count)
            let dataStart = repr.headerLength
            if a.count > 0 {
                segment.baseAddress!.advanced(by: dataStart).copyMemory(from: a.baseAddress!, byteCount: a.count)
            }
            if b.count > 0 {
                segment.baseAddress!.advanced(by: dataStart + a.count).copyMemory(from: b.baseAddress!, byteCount: b.count)
            }
            repr.emit(into: segment, source: tuple.localAddress, destination: tuple.remoteAddress)
        }
        counters.tcpSegmentsOut &+= 1
        counters.ipv4Out &+= 1
        if repr.flags.contains(.rst) { counters.tcpResetsSent &+= 1 }
        sendFrame(frame, etherType: .ipv4, nextHop: nextHop, now: now)
    }

    /// Sends a reset not tied to a connection (RFC 9293 3.10.7.1).
    func sendReset(to tuple: TCPFourTuple, seq: SequenceNumber, ack: SequenceNumber?, now: Instant) {
        let repr = TCPRepr(sourcePort: tuple.localPort, destinationPort: tuple.remotePort, seq: seq, ack: ack,
                           flags: ack == nil ? .rst : [.rst, .ack], window: 0, options: TCPOptions(),
                           payloadLength: 0)
        let empty = UnsafeRawBufferPointer(start: nil, count: 0)
        emitTCP(repr, from: tuple, payload: empty, empty, now: now)
    }

    // MARK: Timers

    /// Fires due connection timers.
    func tickTCP(now: Instant) {
        tcp.wheel.advance(to: now) { _, id in
            guard let c = tcp.byTimerID[id] else { return }
            c.armedDeadline = nil
            c.timerHandle = nil
            c.handleTimers(now: now)
            serviceTCP(c, now: now)
        }
    }
}
