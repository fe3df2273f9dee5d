#if canImport(Glibc)
import Glibc
#endif
import NetStack
import NetStackWire

/// A datagram socket on the loop: a `UDPSocket`, and records in the rings
/// (`ns_datagram`: the peer and the length, then the payload; written
/// whole). `tx` holds what the application sends, each record naming its
/// destination; `rx` what came, each naming its source. As Linux's UDP: a
/// connected socket takes datagrams from its peer only (the UDP layer sends
/// it no other's) and hears of ICMP errors (ECONNREFUSED); one that sends
/// or connects unbound gets an ephemeral port; a datagram that finds `rx`
/// full waits in the UDP socket's queue (bounded, then dropped) until the
/// application reads. Bound to the wildcard address, it is reached at the
/// kernel's loopback too, and sends there (`LoopbackDatagrams`).
extension AppSocket {
    /// bind(2): the UDP port, an ephemeral one for port 0.
    func bindDatagram(_ address: SocketAddress) -> ControlReply {
        guard udp == nil else { return .failure(EINVAL) }
        guard let bound = bindUDP(port: address.port) else {
            return .failure(address.port == 0 ? EAGAIN : EADDRINUSE)
        }
        // Linux's SOCK_BINDPORT_LOCK and SOCK_BINDADDR_LOCK: what a disconnect keeps.
        boundByApplication = (port: address.port != 0, address: !address.address.isUnspecified)
        local = SocketAddress(address: address.address, port: bound.port)
        if address.address.isUnspecified { reachOnLoopback(port: bound.port) }
        return ControlReply(result: 0, local: local)
    }

    /// connect(2): the peer; the socket is bound first if it was not, and
    /// its address becomes the one it sends from (ip4_datagram_connect).
    func connectDatagram(to address: SocketAddress) -> ControlReply {
        if udp == nil {
            guard bindUDP(port: 0) != nil else { return .failure(EAGAIN) }
            boundByApplication = (false, false)
        }
        guard let u = udp else { return .failure(EAGAIN) }
        leaveLoopback()  // a connected socket hears its peer only, and the library gives a loopback peer to the kernel
        let source = u.connect(to: UDPEndpoint(address: address.address, port: address.port))
        let any: IPAddress = if case .v4 = address.address { .v4(IPv4Address(0)) } else { .v6(.unspecified) }
        if local == nil || local!.address.isUnspecified { local = SocketAddress(address: source ?? any, port: u.port) }
        peer = address
        region.publish(pathMTU: server.stack.pathMTU(towards: address.address))
        region.add(.connected)
        return ControlReply(result: 0, local: local, peer: peer)
    }

    /// connect(2) with AF_UNSPEC (Linux's __udp_disconnect): no peer any
    /// more; the address goes back to the one bound, and a port the socket
    /// did not bind by number is given up (the next send takes another).
    func disconnectDatagram() -> ControlReply {
        peer = nil
        region.publish(pathMTU: 0)
        guard let u = udp, let l = local else { return ControlReply(result: 0) }
        u.connect(to: nil)
        if !boundByApplication.port {
            closeUDP()
            udp = nil
            local = nil
            return ControlReply(result: 0)
        }
        if !boundByApplication.address {
            let any: IPAddress = if case .v4 = l.address { .v4(IPv4Address(0)) } else { .v6(.unspecified) }
            local = SocketAddress(address: any, port: l.port)
            reachOnLoopback(port: l.port)
        }
        return ControlReply(result: 0, local: local)
    }

    /// Bound to the wildcard at `port`: UDP sockets on the kernel's loopback beside it.
    private func reachOnLoopback(port: UInt16) {
        guard loopbackDatagrams == nil else { return }
        loopbackDatagrams = server.loopbackDatagrams(for: self, port: port)
        if loopbackDatagrams != nil { region.add(.loopback) }
    }

    private func leaveLoopback() {
        guard let twins = loopbackDatagrams else { return }
        twins.close()
        loopbackDatagrams = nil
        region.remove(.loopback)
    }

    /// Lets go of the UDP port and the loopback's sockets beside it.
    func closeUDP() {
        udp?.onReadable = nil
        udp?.close()
        leaveLoopback()
    }

    private func bindUDP(port: UInt16) -> UDPSocket? {
        let u: UDPSocket
        do {
            u = port == 0 ? try server.stack.udp.bindEphemeral(families: families)
                : try server.stack.bind(udpPort: port, families: families, sharingPort: reusesPort,
                                        sharingAddress: reusesAddress)
        } catch {
            return nil
        }
        u.onReadable = { [unowned self] _ in pumpDatagramsIn() }
        u.ipHeader = options.ipHeader
        udp = u
        region.add(.connected)  // as a fresh UDP socket, it may send at once
        region.wantTransmitDoorbell()  // the first datagram rings
        return u
    }

    /// Sends every record in `tx`; rings the application if it waits for room.
    func pumpDatagramsOut() {
        guard let u = udp, !isBroken else { return }
        defer { if region.tx.isBroken { ringBroke() } }
        var sent = false
        while true {
            while let d = region.tx.readOutgoing(into: &datagramScratch) {
                let payload = datagramScratch  // a local, whose span the compiler can scope
                if LoopbackDatagrams.onlyTheKernelReaches(d.destination.address) {
                    if loopbackDatagrams?.send(payload, to: d.destination) == true { server.loopbackDatagramsOut += 1 }
                } else {
                    _ = u.send(payload.span, to: UDPEndpoint(address: d.destination.address, port: d.destination.port),
                               settings: d.ipHeader(over: u.ipHeader))
                }
                sent = true
            }
            region.wantTransmitDoorbell()
            if region.tx.isEmpty { break }
        }
        if sent && region.takeAppWantsWrite() { wakeApplication() }
    }

    /// Moves what the UDP socket queued into `rx` while whole records fit,
    /// and a connected socket's ICMP errors into the region.
    func pumpDatagramsIn() {
        guard let u = udp, !isBroken else { return }
        defer { if region.rx.isBroken { ringBroke() } }
        var delivered = false
        var wallClockOffset: Int64?  // read once, at the first datagram
        // Within SO_RCVBUF, but an empty ring takes one datagram of any size
        // (as Linux's UDP queues one past a full receive buffer's limit).
        var room: Int { region.rx.isEmpty ? region.rx.writable : receiveRoom }
        while let length = u.nextDatagramLength {
            if room < SharedRing.datagramHeaderSize + length {
                region.wantReceiveRoom()
                if room < SharedRing.datagramHeaderSize + length { break }
            }
            guard let arrival = u.receiveArrival(into: &datagramScratch) else { break }
            delivered = deliver(arrival, wallClockOffset: &wallClockOffset) || delivered
        }
        while let twins = loopbackDatagrams, let (index, length) = twins.next() {
            if room < SharedRing.datagramHeaderSize + length {
                region.wantReceiveRoom()
                if room < SharedRing.datagramHeaderSize + length { break }
            }
            guard let arrival = twins.receive(from: index, length: length, into: &datagramScratch,
                                              now: server.stack.clock.now) else { break }
            server.loopbackDatagramsIn += 1
            delivered = deliver(arrival, wallClockOffset: &wallClockOffset) || delivered
        }
        while let e = u.nextError() {
            guard let p = peer, e.destination.address == p.address, e.destination.port == p.port,
                  let code = Self.errno(for: e.kind) else { continue }
            region.setError(code)
            signalNews()
        }
        if delivered { inputArrived() }
    }

    /// Writes the datagram in `datagramScratch` into `rx`, its time on the
    /// wall clock by `wallClockOffset` (read here if not yet).
    private func deliver(_ arrival: UDPArrival, wallClockOffset: inout Int64?) -> Bool {
        let source = SocketAddress(address: arrival.source.address, port: arrival.source.port)
        let offset = wallClockOffset ?? server.wallClockOffset
        wallClockOffset = offset
        return datagramScratch.withUnsafeBytes {
            region.rx.writeDatagram($0, peer: source, arrival: arrival, wallClockOffset: offset)
        }
    }

    /// The errno a connected UDP socket reports for an ICMP error: hard errors
    /// only, as Linux's `__udp4_lib_err` without IP_RECVERR (nil: none).
    static func errno(for kind: IPErrorKind) -> Int32? {
        switch kind {
        case .portUnreachable: ECONNREFUSED
        case .unreachable: EHOSTUNREACH
        case .packetTooBig, .timeExceeded: nil
        }
    }
}
