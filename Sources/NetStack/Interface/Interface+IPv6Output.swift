import NetStackWire

extension Interface {
    /// The hop limit of what we send: a router's (RFC 4861 6.3.4) or ours.
    var hopLimit6: UInt8 { routers6.hopLimit ?? configuration.hopLimit }

    /// The link MTU for IPv6: the device's, or less if a router said so.
    var mtu6: Int { routers6.mtu ?? link.mtu }

    /// Our source for `destination` (RFC 6724's rules, on one link): the
    /// link-local address for link-local and link-scope multicast
    /// destinations, the global one for the rest; nil when the one needed is
    /// not ours yet (DAD) or nothing routes there.
    func sourceAddress6(towards destination: IPv6Address) -> IPv6Address? {
        if destination.isLinkLocal || (destination.isMulticast && (destination.multicastScope ?? 0) <= 2) {
            return own6.linkLocal
        }
        return own6.global?.address ?? own6.linkLocal
    }

    /// The next hop for `destination` (RFC 4861 5.2): itself when on link
    /// (link-local, multicast, our prefix, an advertised on-link prefix),
    /// else a default router.
    func route6(_ destination: IPv6Address) -> IPv6Address? {
        // RFC 4291 2.5.2, 2.5.3: the unspecified address is never a
        // destination, and ::1 never leaves a node (this stack has no loopback).
        if destination.isLoopback || destination.isUnspecified { return nil }
        if destination.isLinkLocal || destination.isMulticast { return destination }
        if let g = configuration.address6, g.contains(destination) { return destination }
        if routers6.isOnLink(destination) { return destination }
        return routers6.defaultRouter ?? configuration.gateway6
    }

    /// RFC 6437 3: one label per flow, a hash of its addresses and ports
    /// under a secret, never 0, so that a flow's packets stay on one path of
    /// an ECMP network while flows spread.
    @inline(__always)
    func flowLabel(source: IPv6Address, destination: IPv6Address, ports: UInt32) -> UInt32 {
        var h = flowLabelSecret ^ source.low ^ (destination.low &* 0x9e37_79b9_7f4a_7c15)
        h ^= (source.high &+ destination.high) &* 0xbf58_476d_1ce4_e5b9
        h ^= UInt64(ports) &* 0x94d0_49bb_1331_11eb
        h ^= h >> 31
        h &*= 0x9e37_79b9_7f4a_7c15
        let label = UInt32(truncatingIfNeeded: h >> 40) & 0xf_ffff
        return label == 0 ? 1 : label
    }

    /// Sends one unfragmented IPv6 packet of `length` transport bytes that
    /// `write` fills in place (TCP's path): as `sendIPv4`'s twin, with the
    /// flow label of its ports.
    @inline(__always)
    func sendIPv6(from source: IPv6Address, to destination: IPv6Address, protocol proto: IPProtocol, length: Int,
                  offload: TransportOffload = .none, tail: FrameTail = .none,
                  settings: IPHeaderSettings = .standard, now: Instant,
                  _ write: (UnsafeMutableRawBufferPointer) -> Void) -> Bool {
        guard let nextHop = route6(destination) else {
            counters.drops.record(.noRoute)
            return false
        }
        let limit = offload.segmentSize > 0 ? link.maxTransmitSegment : pathMTU(towards: .v6(destination))
        guard IPv6Packet.headerLength + length <= limit, length <= 0xffff else {
            counters.drops.record(.tooLargeToSend)
            return false
        }
        let transportStart = EthernetFrame.headerLength + IPv6Packet.headerLength
        guard sendPacket6(from: source, to: destination, nextHeader: proto, payloadLength: length, flowLabel: nil,
                          nextHop: nextHop, offload: PacketOffload(offload, transportStart: transportStart),
                          tail: tail, settings: settings, now: now, write) else { return false }
        counters.ipv6Out &+= 1
        return true
    }

    /// Sends an IPv6 datagram whose payload is `transportHeader` followed by
    /// `payload` (UDP, ICMPv6), copied once into pool slots; one larger than
    /// the MTU leaves in fragments (RFC 8200 4.5: the source fragments, each
    /// fragment's data a multiple of 8 bytes but the last's). False if
    /// anything was dropped; the reason is counted.
    @discardableResult
    func sendIPv6(from source: IPv6Address? = nil, to destination: IPv6Address, protocol proto: IPProtocol,
                  transportHeader: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer,
                  settings: IPHeaderSettings = .standard, now: Instant) -> Bool {
        // The Payload Length field bounds the packet as reassembled, which
        // carries no fragment header (RFC 8200 4.5): 65535 bytes of UDP.
        let total = transportHeader.count + payload.count
        guard total <= 0xffff else {
            counters.drops.record(.tooLargeToSend)
            return false
        }
        guard let from = source ?? sourceAddress6(towards: destination) else {
            counters.drops.record(.noRoute)
            return false
        }
        guard let nextHop = route6(destination) else {
            counters.drops.record(.noRoute)
            return false
        }
        let ports = proto != .icmpv6 && transportHeader.count >= 4 ? transportPorts(transportHeader) : 0
        let label = flowLabel(source: from, destination: destination, ports: ports)
        let maxPayload = pathMTU(towards: .v6(destination)) - IPv6Packet.headerLength
        if total <= maxPayload {
            counters.ipv6Out &+= 1
            return sendPacket6(from: from, to: destination, nextHeader: proto, payloadLength: total, flowLabel: label,
                               nextHop: nextHop, settings: settings, now: now) { out in
                copyGathered(transportHeader, payload, range: 0..<total, into: out)
            }
        }
        // Fragments: the fragment header, then a multiple of 8 bytes of the whole.
        let fragmentPayload = (maxPayload - 8) & ~7
        let identification = nextFragmentIdentification6
        nextFragmentIdentification6 &+= 1
        counters.ipv6Out &+= 1
        var offset = 0
        repeat {
            let chunk = min(fragmentPayload, total - offset)
            let more = offset + chunk < total
            let sent = sendPacket6(from: from, to: destination, nextHeader: .ipv6Fragment, payloadLength: 8 + chunk,
                                   flowLabel: label, nextHop: nextHop, settings: settings, now: now) { out in
                IPv6FragmentRepr(nextHeader: proto, fragmentOffset: offset, moreFragments: more,
                                 identification: identification)
                    .emit(into: out.slice(0..<8))
                copyGathered(transportHeader, payload, range: offset..<(offset + chunk),
                             into: out.slice(8..<out.count))
            }
            guard sent else { return false }
            counters.fragments6Out &+= 1
            offset += chunk
        } while offset < total
        return true
    }

    /// Builds one IPv6 packet in a pool slot (`write` fills its payload,
    /// but for the last `tail.count` bytes, `tail`'s) and sends it to
    /// `nextHop`. A nil `flowLabel` is the one of the ports `write` put at
    /// the payload's start (TCP's path). False if no slot was free or the
    /// packet does not fit one; the reason is counted.
    @inline(__always)
    private func sendPacket6(from source: IPv6Address, to destination: IPv6Address, nextHeader: IPProtocol,
                             payloadLength: Int, flowLabel: UInt32?, nextHop: IPv6Address,
                             offload: PacketOffload = .none, tail: FrameTail = .none,
                             settings: IPHeaderSettings = .standard, now: Instant,
                             _ write: (UnsafeMutableRawBufferPointer) -> Void) -> Bool {
        guard var frame = device.pool.allocate() else {
            counters.drops.record(.poolExhausted)
            return false
        }
        frame.reserveHeadroom(link.headroom)
        frame.offload = offload
        let frameLength = EthernetFrame.headerLength + IPv6Packet.headerLength + payloadLength
        guard frameLength <= frame.capacity else {
            counters.drops.record(.tooLargeToSend)
            return false
        }
        // The tail's room is neither written nor sent from the slot.
        frame.setLength(frameLength - tail.count)
        let hopLimit = settings.hopLimit ?? hopLimit6
        frame.withCapacity { bytes in
            let ip = bytes.slice(EthernetFrame.headerLength..<frameLength)
            let transport = ip.slice(IPv6Packet.headerLength..<ip.count)
            write(transport)
            let label = flowLabel ?? self.flowLabel(
                source: source, destination: destination,
                ports: transport.count >= 4 ? transportPorts(UnsafeRawBufferPointer(transport)) : 0)
            IPv6Repr(source: source, destination: destination, nextHeader: nextHeader, payloadLength: payloadLength,
                     hopLimit: hopLimit, trafficClass: settings.trafficClass, flowLabel: label)
                .emit(into: ip)
        }
        sendFrame6(frame, nextHop: nextHop, tail: tail, now: now)
        return true
    }

    /// Fills in the Ethernet header and sends `frame` (and `tail`) to
    /// `nextHop`: a group's MAC for multicast (RFC 2464 7), the neighbour's
    /// from the table, or parks it, tail copied in, and solicits the
    /// neighbour (RFC 4861 7.2.2). A neighbour in use near expiry is probed
    /// with a unicast solicitation first (NUD, 7.3.3), as ARP does.
    @inline(__always)
    func sendFrame6(_ frame: consuming PacketBuffer, nextHop: IPv6Address, tail: FrameTail = .none, now: Instant) {
        if !nextHop.isMulticast && own6.isAssigned(nextHop) { return loopBack(frame, etherType: .ipv6, tail: tail) }
        let mac: MACAddress?
        if nextHop.isMulticast {
            mac = nextHop.multicastMAC
        } else {
            var refresh = false
            mac = ndp.lookup(nextHop, now: now, refresh: &refresh)
            if refresh, let m = mac { sendNeighbourSolicitation(for: nextHop, unicastTo: m, now: now) }
        }
        frame.withBytes { bytes in
            EthernetRepr(destination: mac ?? .zero, source: configuration.macAddress, etherType: .ipv6)
                .emit(into: bytes)
        }
        if mac != nil {
            transmit(frame, tail: tail)
            return
        }
        frame.append(tail)
        if ndp.shouldRequest(nextHop, now: now) { sendNeighbourSolicitation(for: nextHop, unicastTo: nil, now: now) }
        if let refused = ndp.enqueue(frame, nextHop: nextHop) {
            _ = consume refused
            counters.drops.record(.arpQueueFull)
        }
    }
}

/// A transport header's first four bytes, its ports for TCP and UDP (ICMPv6's type, code and checksum).
@inline(__always)
private func transportPorts(_ header: UnsafeRawBufferPointer) -> UInt32 {
    UInt32(bigEndian: header.loadUnaligned(as: UInt32.self))
}
