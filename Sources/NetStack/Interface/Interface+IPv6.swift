import NetStackWire

extension Interface {
    /// RFC 8200: validate the fixed header and the addresses, walk the
    /// extension headers (`IPv6ExtensionChain`), reassemble, then deliver
    /// locally. A host: nothing is forwarded.
    /// `linkMulticast`: the frame went to an Ethernet group address.
    /// `fromSelf`: looped back (`loopBack`), so from one of our own addresses.
    func receiveIPv6(_ eth: EthernetFrame, checksumTrusted: Bool, linkMulticast: Bool, fromSelf: Bool = false,
                     now: Instant) -> Verdict {
        let ip: IPv6Packet
        do { ip = try IPv6Packet(validating: eth.payload) } catch {
            return .drop(error == .unsupported ? .ipv6BadVersion : .ipv6Truncated)
        }
        let src = ip.source, dst = ip.destination
        // RFC 4291 2.5.3, 2.5.5.2, 2.7: loopback, IPv4-mapped and multicast
        // addresses are never sources on a link; our own coming back is a
        // loop or a forgery. The unspecified source is DAD's alone (below).
        guard !src.isMulticast, !src.isLoopback, !src.isIPv4Mapped, fromSelf || !own6.isAssigned(src) else {
            return .drop(.ipv6MartianSource)
        }
        guard own6.accepts(dst) else { return .drop(.ipv6NotForUs) }
        counters.ipv6In &+= 1
        let end = IPv6ExtensionChain.walk(ip.bytes, firstNextHeader: ip.nextHeader, nextHeaderField: 6,
                                          from: IPv6Packet.headerLength, destinationIsMulticast: dst.isMulticast,
                                          hopByHopAllowed: true)
        return finishChain(end, packet: ip.bytes, source: src, destination: dst, checksumTrusted: checksumTrusted,
                           linkMulticast: linkMulticast, eth: eth, now: now)
    }

    /// Acts on where the header chain of `packet` (in the frame) ended.
    private func finishChain(_ end: IPv6ChainEnd, packet: UnsafeMutableRawBufferPointer, source: IPv6Address,
                             destination: IPv6Address, checksumTrusted: Bool, linkMulticast: Bool,
                             eth: EthernetFrame, now: Instant) -> Verdict {
        switch end {
        case .upperLayer(let proto, let offset, let field):
            let d = IPDatagram(source: .v6(source), destination: .v6(destination), proto: proto,
                               payload: packet.slice(offset..<packet.count),
                               checksum: checksumTrusted ? .verified : .unverified,
                               toBroadcast: destination.isMulticast, linkBroadcast: linkMulticast,
                               header: packet.slice(0..<offset), inFrame: true)
            return deliver6(d, nextHeaderField: field, eth: eth, now: now)
        case .noNextHeader:
            return .drop(.ipv6NoNextHeader)
        case .fragment(let headerOffset, let field):
            return receiveFragment6(packet, headerOffset: headerOffset, nextHeaderField: field, source: source,
                                    destination: destination, linkMulticast: linkMulticast, eth: eth, now: now)
        case .parameterProblem(let code, let pointer):
            sendICMPv6Error(.parameterProblem(code: code, pointer: UInt32(pointer)), quoting: packet,
                            linkMulticast: linkMulticast, allowMulticast: code == 2, now: now)
            return .drop(.ipv6ParameterProblem)
        case .discard(let why):
            switch why {
            case .truncated: return .drop(.ipv6HeaderChainTruncated)
            case .tooManyHeaders: return .drop(.ipv6HeaderChainTooLong)
            case .unknownOption: return .drop(.ipv6UnknownOption)
            case .badOption, .badPadding: return .drop(.ipv6BadOption)
            }
        }
    }

    /// RFC 8200 4.5: a fragment. An atomic one (offset 0, no more) is
    /// processed at once, apart from any reassembly (RFC 6946); the rest wait
    /// in `reassembler6`, keyed by source, destination and identification.
    private func receiveFragment6(_ packet: UnsafeMutableRawBufferPointer, headerOffset: Int, nextHeaderField: Int,
                                  source: IPv6Address, destination: IPv6Address, linkMulticast: Bool,
                                  eth: EthernetFrame, now: Instant) -> Verdict {
        counters.fragments6In &+= 1
        guard let fragment = try? IPv6FragmentHeader(validating: packet.slice(headerOffset..<packet.count)) else {
            return .drop(.ipv6HeaderChainTruncated)
        }
        let data = packet.slice((headerOffset + 8)..<packet.count)
        if fragment.isAtomic {
            let end = IPv6ExtensionChain.walk(packet, firstNextHeader: fragment.nextHeader,
                                              nextHeaderField: headerOffset, from: headerOffset + 8,
                                              destinationIsMulticast: destination.isMulticast, hopByHopAllowed: false)
            return finishChain(end, packet: packet, source: source, destination: destination,
                               checksumTrusted: false, linkMulticast: linkMulticast, eth: eth, now: now)
        }
        // RFC 8200 4.5: a fragment that is not the last must be a multiple of
        // 8 bytes long (pointer: the payload length), and none may reach
        // past 65535 bytes (pointer: the fragment offset).
        if fragment.moreFragments && data.count % 8 != 0 {
            sendICMPv6Error(.parameterProblem(code: 0, pointer: 4), quoting: packet, linkMulticast: linkMulticast,
                            now: now)
            return .drop(.fragmentBadLength)
        }
        if fragment.fragmentOffset + data.count > 65535 {
            sendICMPv6Error(.parameterProblem(code: 0, pointer: UInt32(headerOffset + 2)), quoting: packet,
                            linkMulticast: linkMulticast, now: now)
            return .drop(.fragmentTooLarge)
        }
        // The first fragment's Next Header names the fragmentable part's
        // first header: the kept header says so in place of "fragment", so
        // that the datagram put back together reads as if never cut.
        if fragment.fragmentOffset == 0 { packet[nextHeaderField] = fragment.nextHeader.rawValue }
        let key = IPv6FragmentKey(source: source, destination: destination, identification: fragment.identification)
        switch reassembler6.insert(key: key, start: fragment.fragmentOffset, data: data,
                                   more: fragment.moreFragments, header: packet.slice(0..<headerOffset),
                                   linkBroadcast: linkMulticast, now: now) {
        case .incomplete:
            return .done
        case .dropped(let reason):
            return .drop(reason)
        case .complete(let index):
            counters.datagrams6Reassembled &+= 1
            let anyMulticast = reassembler6.arrivedInLinkBroadcast(index)
            let verdict = reassembler6.withDatagram(index) { _, header, payload -> Verdict in
                // RFC 8200 4.5: the payload length covers the headers kept and the whole.
                let length = UInt16(truncatingIfNeeded: header.count - IPv6Packet.headerLength + payload.count)
                header[4] = UInt8(length >> 8)
                header[5] = UInt8(length & 0xff)
                let next = IPProtocol(rawValue: header[nextHeaderField])
                return deliverReassembled6(header: header, payload: payload, firstNextHeader: next,
                                           source: source, destination: destination,
                                           linkMulticast: anyMulticast, eth: eth, now: now)
            }
            reassembler6.release(index)
            return verdict
        }
    }

    /// Walks the headers of a datagram put back together (the fragmentable
    /// part, RFC 7112: all of the chain was in the first fragment) and delivers it.
    private func deliverReassembled6(header: UnsafeMutableRawBufferPointer, payload: UnsafeMutableRawBufferPointer,
                                     firstNextHeader: IPProtocol, source: IPv6Address, destination: IPv6Address,
                                     linkMulticast: Bool, eth: EthernetFrame, now: Instant) -> Verdict {
        var proto = firstNextHeader
        var offset = 0
        // Extension headers after the fragment header: destination options only
        // (RFC 8200 4.1), walked with the same rules as before reassembly.
        while proto == .ipv6DestinationOptions {
            guard payload.count >= offset + 8 else { return .drop(.ipv6HeaderChainTruncated) }
            let length = (Int(payload[offset + 1]) + 1) * 8
            guard payload.count >= offset + length else { return .drop(.ipv6HeaderChainTruncated) }
            proto = IPProtocol(rawValue: payload[offset])
            offset += length
        }
        if proto == .ipv6NoNextHeader { return .drop(.ipv6NoNextHeader) }
        if proto == .hopByHopOptions || proto == .ipv6Fragment || proto == .ipv6Routing {
            return .drop(.ipv6ParameterProblem)
        }
        let d = IPDatagram(source: .v6(source), destination: .v6(destination), proto: proto,
                           payload: payload.slice(offset..<payload.count), checksum: .unverified,
                           toBroadcast: destination.isMulticast, linkBroadcast: linkMulticast,
                           header: header, inFrame: false)
        return deliver6(d, nextHeaderField: nil, eth: eth, now: now)
    }

    /// Hands a datagram for us to ICMPv6 or its transport. Only neighbour
    /// discovery may come from the unspecified address (DAD, RFC 4862 5.4).
    @inline(__always)
    func deliver6(_ d: IPDatagram, nextHeaderField: Int?, eth: EthernetFrame, now: Instant) -> Verdict {
        if d.source.isUnspecified && d.proto != .icmpv6 { return .drop(.ipv6MartianSource) }
        switch d.proto {
        case .icmpv6:
            return receiveICMPv6(d, eth: eth, now: now)
        case .udp:
            udp.receive(d, now: now)
            return .done
        case .tcp:
            tcp.receive(d, now: now)
            return .done
        default:
            // RFC 8200 4: an unrecognised Next Header is a parameter problem, code 1, pointing at it.
            if let field = nextHeaderField, d.inFrame {
                sendICMPv6Error(.parameterProblem(code: 1, pointer: UInt32(field)), for: d, now: now)
            }
            return .drop(.ipv6UnsupportedProtocol)
        }
    }

    // MARK: Timers

    /// IPv6's timers: DAD, router solicitations, neighbour resolution,
    /// reassembly, routers and prefixes ageing.
    func tick6(now: Instant) {
        // Reports first: a group is joined before DAD's solicitation to it (RFC 4862 5.4.2).
        sendDueMLDReports(now: now)
        own6.due(now: now, probe: &scratchRetry6, assigned: &scratchAssigned6)
        for a in scratchRetry6 { sendDADSolicitation(for: a, now: now) }
        for a in scratchAssigned6 {
            counters.dadAddressesAssigned &+= 1
            logger.info("IPv6 address ready", metadata: ["address": "\(a)"])
            announce6(a, now: now)
            // Routers are asked once the link-local address is ours (RFC 4861 6.3.7).
            if a == configuration.linkLocal6 && configuration.routerSolicitations > 0 {
                routers6.solicitationsLeft = configuration.routerSolicitations
                routers6.nextSolicitation = now
            }
        }
        if let t = routers6.nextSolicitation, now >= t {
            sendRouterSolicitation(now: now)
            routers6.solicitationsLeft -= 1
            routers6.nextSolicitation = routers6.solicitationsLeft > 0 ? now + configuration.routerSolicitationInterval : nil
        }
        routers6.expire(now: now)
        ndp.due(now: now, retry: &scratchRetry6, failed: &scratchFailed6)
        for a in scratchRetry6 { sendNeighbourSolicitation(for: a, unicastTo: nil, now: now) }
        abandonWaiting(in: &ndp, for: scratchFailed6)
        // Half-open connections towards them go (Linux's neighbour failure reaching `tcp_req_err`).
        for hop in scratchFailed6 {
            tcp.neighbourUnreachable(now: now) { if case .v6(let d) = $0 { route6(d) == hop } else { false } }
        }
        reassembler6.expire(now: now) { firstBytes in
            counters.drops.record(.reassemblyTimeout)
            // RFC 8200 4.5: time exceeded, code 1, only if the first fragment arrived.
            if firstBytes.count > 0 {
                sendICMPv6Error(.timeExceeded(code: 1), quoting: firstBytes, linkMulticast: false, now: now)
            }
        }
    }

    /// The next time `tick6` has work.
    var nextTimerDeadline6: Instant? {
        var d = reassembler6.nextDeadline
        if let t = own6.nextDeadline { d = min(d ?? t, t) }
        if let t = routers6.nextDeadline { d = min(d ?? t, t) }
        if let t = mld.nextDeadline { d = min(d ?? t, t) }
        for e in ndp.entries.values where e.mac == nil {
            d = min(d ?? e.nextRequest, e.nextRequest)
        }
        return d
    }

    /// Whether duplicate address detection has ended for every IPv6 address
    /// (each is usable or found in use elsewhere); true without IPv6.
    public var ipv6Settled: Bool { !configuration.speaksIPv6 || own6.settled }

    /// The IPv6 addresses in use now: the link-local one and the global one, once DAD let them.
    public var ipv6Addresses: [IPv6Address] { ipv6Subnets.map(\.address) }

    /// The same with their on-link prefixes (the link-local one's fe80::/64).
    public var ipv6Subnets: [IPv6CIDR] {
        guard configuration.speaksIPv6 else { return [] }
        let linkLocal = own6.linkLocal.map { IPv6CIDR(address: $0, prefixLength: 64) }
        return [linkLocal, own6.global].compactMap { $0 }
    }
}
