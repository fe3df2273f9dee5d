import NetStackWire

extension Interface {
    /// RFC 4443: echo requests answered, errors about what we sent handed to
    /// the transport that sent it, neighbour discovery and MLD queries to their handlers;
    /// unknown informational messages are dropped (2.4(b)).
    func receiveICMPv6(_ d: IPDatagram, eth: EthernetFrame, now: Instant) -> Verdict {
        counters.icmp6In &+= 1
        guard case .v6(let src) = d.source, case .v6(let dst) = d.destination else { return .drop(.icmp6Truncated) }
        let icmp: ICMPv6Packet
        do { icmp = try ICMPv6Packet(validating: d.payload) } catch { return .drop(.icmp6Truncated) }
        guard icmp.checksumIsValid(source: src, destination: dst) else { return .drop(.icmp6BadChecksum) }
        // Only DAD's solicitations come from the unspecified address (RFC 4861 7.1.1).
        if src.isUnspecified && icmp.type != ICMPv6Type.neighborSolicitation { return .drop(.ipv6MartianSource) }
        switch icmp.type {
        case ICMPv6Type.echoRequest:
            return receiveEchoRequest6(d, icmp: icmp, source: src, destination: dst, eth: eth, now: now)
        case ICMPv6Type.destinationUnreachable, ICMPv6Type.packetTooBig, ICMPv6Type.timeExceeded,
             ICMPv6Type.parameterProblem:
            return receiveICMPv6Error(icmp, now: now)
        case ICMPv6Type.neighborSolicitation:
            return receiveNeighbourSolicitation(d, icmp: icmp, source: src, destination: dst, now: now)
        case ICMPv6Type.neighborAdvertisement:
            return receiveNeighbourAdvertisement(d, icmp: icmp, destination: dst, now: now)
        case ICMPv6Type.routerAdvertisement:
            return receiveRouterAdvertisement(d, icmp: icmp, source: src, now: now)
        case ICMPv6Type.routerSolicitation:
            return .drop(.ndpRouterSolicitation)
        case ICMPv6Type.redirect:
            return .drop(.ndpRedirectIgnored)
        case MLDType.query:
            return receiveMLDQuery(d, icmp: icmp, source: src, now: now)
        default:
            return .drop(.icmp6UnhandledType)
        }
    }

    /// RFC 4443 4.2: the reply carries the request's identifier, sequence
    /// and data. A unicast request becomes its reply in place; one to a
    /// multicast group (ping ff02::1) is answered from a unicast address of
    /// ours, built afresh, as is one with extension headers or reassembled.
    private func receiveEchoRequest6(_ d: IPDatagram, icmp: ICMPv6Packet, source: IPv6Address,
                                     destination: IPv6Address, eth: EthernetFrame, now: Instant) -> Verdict {
        counters.icmp6EchoRequestsIn &+= 1
        counters.icmp6EchoRepliesOut &+= 1
        if d.inFrame && d.header.count == IPv6Packet.headerLength && !destination.isMulticast {
            let ip = IPv6Packet(uncheckedHeader: eth.payload)
            ip.source = destination
            ip.destination = source
            ip.hopLimit = hopLimit6
            // The pseudo-header's sum is the same with the addresses swapped;
            // only the type changes (RFC 1624).
            let oldTypeWord = UInt16(icmp.type) << 8 | UInt16(icmp.code)
            icmp.type = ICMPv6Type.echoReply
            icmp.checksum = InternetChecksum.update(icmp.checksum, old: oldTypeWord,
                                                    new: UInt16(icmp.type) << 8 | UInt16(icmp.code))
            eth.destination = eth.source
            eth.source = configuration.macAddress
            // The reply goes back to the frame's sender without the table,
            // but it is traffic to the neighbour all the same: a STALE entry
            // is probed after DELAY's 5 s, as any other send would (7.3.3).
            var refresh = false
            if let known = ndp.lookup(source, now: now, refresh: &refresh), refresh {
                sendNeighbourSolicitation(for: source, unicastTo: known, now: now)
            }
            return .transmit(length: EthernetFrame.headerLength + IPv6Packet.headerLength + ip.payloadLength)
        }
        guard let from = destination.isMulticast ? sourceAddress6(towards: source) : destination else {
            return .drop(.noRoute)
        }
        let data = UnsafeRawBufferPointer(icmp.data)
        var header = UInt64(0)
        withUnsafeMutableBytes(of: &header) { h in
            ICMPv6Repr(message: .echoReply(identifier: icmp.echoIdentifier, sequence: icmp.echoSequence),
                       dataLength: data.count)
                .emitHeader(into: h, data: data, source: from, destination: source)
        }
        withUnsafeBytes(of: &header) { h in
            _ = sendIPv6(from: from, to: source, protocol: .icmpv6, transportHeader: h, payload: data, now: now)
        }
        return .done
    }

    /// An error quoting a packet we sent (RFC 4443 3): to the transport
    /// that sent it, which finds its socket or connection by the quoted ports.
    private func receiveICMPv6Error(_ icmp: ICMPv6Packet, now: Instant) -> Verdict {
        guard let quoted = try? IPv6Packet(validatingQuoted: icmp.data), own6.isAssigned(quoted.source) else {
            return .drop(.icmp6BadQuote)
        }
        // The quoted chain, as far as it was quoted, to the transport header.
        let end = IPv6ExtensionChain.walk(quoted.bytes, firstNextHeader: quoted.nextHeader, nextHeaderField: 6,
                                          from: IPv6Packet.headerLength, destinationIsMulticast: false,
                                          hopByHopAllowed: true)
        guard case .upperLayer(let proto, let offset, _) = end, quoted.bytes.count >= offset + 8 else {
            return .drop(.icmp6BadQuote)
        }
        let kind: IPErrorKind
        switch icmp.type {
        case ICMPv6Type.packetTooBig: kind = .packetTooBig(mtu: Int(icmp.mtu))
        case ICMPv6Type.timeExceeded: kind = .timeExceeded
        case ICMPv6Type.parameterProblem: kind = .unreachable(code: icmp.code)
        default:
            kind = icmp.code == ICMPv6Unreachable.port ? .portUnreachable : .unreachable(code: icmp.code)
        }
        counters.icmp6ErrorsIn &+= 1
        let report = IPErrorReport(kind: kind, source: .v6(quoted.source), destination: .v6(quoted.destination),
                                   proto: proto,
                                   quotedTransport: UnsafeRawBufferPointer(quoted.bytes.slice(offset..<quoted.bytes.count)))
        deliverError(report, now: now)
        return .done
    }

    /// Sends an ICMPv6 error about a received datagram (see `sendICMPv6Error(_:quoting:...)`).
    func sendICMPv6Error(_ message: ICMPv6Message, for d: IPDatagram, now: Instant) {
        if d.inFrame {
            let whole = UnsafeMutableRawBufferPointer(start: d.header.baseAddress,
                                                      count: d.header.count + d.payload.count)
            sendICMPv6Error(message, quoting: whole, linkMulticast: d.linkBroadcast, now: now)
            return
        }
        // Reassembled: header and payload are apart; the quote is cut to what fits.
        var scratch = [UInt8](repeating: 0, count: min(ICMPv6Repr.errorQuoteLimit, d.header.count + d.payload.count))
        scratch.withUnsafeMutableBytes { s in
            let h = min(d.header.count, s.count)
            s.copyMemory(from: UnsafeRawBufferPointer(d.header.slice(0..<h)))
            if s.count > h {
                s.slice(h..<s.count).copyMemory(from: UnsafeRawBufferPointer(d.payload.slice(0..<(s.count - h))))
            }
            sendICMPv6Error(message, quoting: s, linkMulticast: d.linkBroadcast, now: now)
        }
    }

    /// Sends an ICMPv6 error quoting as much of `original` (an IPv6 packet)
    /// as keeps the error within the minimum MTU (RFC 4443 2.4(c)), unless
    /// 2.4(e) forbids it: never about an ICMPv6 error or a redirect, nor
    /// about a packet from an address that does not identify one node
    /// (unspecified, multicast), nor, except packet too big and parameter
    /// problem code 2 (`allowMulticast`), about one sent to a multicast
    /// address or in a link-layer multicast frame. Rate limited (2.4(f)).
    func sendICMPv6Error(_ message: ICMPv6Message, quoting original: UnsafeMutableRawBufferPointer,
                         linkMulticast: Bool, allowMulticast: Bool = false, now: Instant) {
        guard let ip = try? IPv6Packet(validatingQuoted: original) else { return }
        let src = ip.source, dst = ip.destination
        guard !src.isUnspecified, !src.isMulticast else { return }
        guard allowMulticast || (!dst.isMulticast && !linkMulticast) else { return }
        if ip.nextHeader == .icmpv6 {
            guard original.count > IPv6Packet.headerLength else { return }
            let type = original[IPv6Packet.headerLength]
            guard type >= 128, type != ICMPv6Type.redirect else { return }
        }
        guard let from = dst.isMulticast ? sourceAddress6(towards: src) : (own6.isPreferred(dst) ? dst : sourceAddress6(towards: src)) else {
            return
        }
        guard icmpErrorBucket.take(now: now) else {
            counters.drops.record(.icmpErrorRateLimited)
            return
        }
        let data = UnsafeRawBufferPointer(original.slice(0..<min(original.count, ICMPv6Repr.errorQuoteLimit)))
        var header = UInt64(0)
        withUnsafeMutableBytes(of: &header) { h in
            ICMPv6Repr(message: message, dataLength: data.count).emitHeader(into: h, data: data, source: from,
                                                                            destination: src)
        }
        counters.icmp6ErrorsOut &+= 1
        withUnsafeBytes(of: &header) { h in
            _ = sendIPv6(from: from, to: src, protocol: .icmpv6, transportHeader: h, payload: data, now: now)
        }
    }

    /// An ICMP error (either family) about something we sent, to the transport that sent it.
    func deliverError(_ report: IPErrorReport, now: Instant) {
        if report.proto == .tcp {
            tcp.receiveError(report, now: now)
        } else if report.proto == .udp {
            udp.receiveError(report, now: now)
        }
    }
}

extension IPv6Packet {
    /// For a packet that already validated.
    init(uncheckedHeader bytes: UnsafeMutableRawBufferPointer) {
        try! self.init(validating: bytes)
    }
}
