import NetStackWire

extension Interface {
    /// Sends an IPv4 datagram whose payload is `transportHeader` followed by
    /// `payload` (two pieces, so callers need not make them contiguous). The
    /// bytes are copied once, into pool slots; a datagram larger than the MTU is
    /// cut into fragments whose payloads are multiples of 8 bytes (RFC 791 3.2).
    /// Returns false if anything was dropped; the reason is counted.
    @discardableResult
    public func sendIPv4(to destination: IPv4Address, protocol proto: IPProtocol,
                         transportHeader: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer,
                         settings: IPHeaderSettings = .standard, now: Instant, dontFragment: Bool = false) -> Bool {
        let total = transportHeader.count + payload.count
        let headerLength = IPv4Repr.headerLength
        guard headerLength + total <= 0xffff else {
            counters.drops.record(.tooLargeToSend)
            return false
        }
        guard let nextHop = route(destination) else {
            counters.drops.record(.noRoute)
            return false
        }
        let maxPayload = link.mtu - headerLength
        let fragmentPayload = maxPayload & ~7
        if total > maxPayload && dontFragment {
            counters.drops.record(.tooLargeToSend)
            return false
        }
        let identification = nextIdentification
        nextIdentification &+= 1
        counters.ipv4Out &+= 1

        var offset = 0
        repeat {
            let chunk = total - offset <= maxPayload ? total - offset : fragmentPayload
            let more = offset + chunk < total
            let repr = IPv4Repr(source: address, destination: destination, protocol: proto, payloadLength: chunk,
                                timeToLive: settings.timeToLive ?? configuration.timeToLive,
                                identification: identification, dontFragment: dontFragment, moreFragments: more,
                                fragmentOffset: offset, dscpECN: settings.typeOfService)
            let sent = sendPacket(repr, nextHop: nextHop, now: now) { ipPayload in
                copyGathered(transportHeader, payload, range: offset..<(offset + chunk), into: ipPayload)
            }
            guard sent else { return false }
            if offset > 0 || more { counters.fragmentsOut &+= 1 }
            offset += chunk
        } while offset < total
        return true
    }

    /// Sends one unfragmented IPv4 datagram (DF set) of `length` transport
    /// bytes, which `write` fills in place after the Ethernet and IP headers;
    /// then the IP header goes in front. One pool slot, no copy. With TSO
    /// (`offload.segmentSize`) the datagram may be as long as the device
    /// takes, and the device cuts it into frames. The last `tail.count`
    /// bytes are `tail`'s, left in place for the device (`FrameTail`).
    @inline(__always)
    func sendIPv4(from source: IPv4Address, to destination: IPv4Address, protocol proto: IPProtocol, length: Int,
                  offload: TransportOffload = .none, tail: FrameTail = .none,
                  settings: IPHeaderSettings = .standard, now: Instant,
                  _ write: (UnsafeMutableRawBufferPointer) -> Void) -> Bool {
        guard let nextHop = route(destination) else {
            counters.drops.record(.noRoute)
            return false
        }
        // One frame: no larger than the path takes, as IP knows it (RFC 1191
        // 3; the link MTU until a "packet too big" lowers it). A transport
        // never builds a larger one: lowering the estimate resizes TCP's
        // connections before they send again (`TCPLayer.pathMTULowered`), so
        // this refuses only a bug's. With TSO the device cuts frames of the
        // transport's `segmentSize`, which follows its MSS.
        let limit = offload.segmentSize > 0 ? link.maxTransmitSegment
            : pathMTUs.isEmpty ? link.mtu : pathMTU(towards: .v4(destination))
        guard IPv4Repr.headerLength + length <= limit else {
            counters.drops.record(.tooLargeToSend)
            return false
        }
        // DF: what is sized to the MTU is never fragmented (RFC 1191).
        let repr = IPv4Repr(source: source, destination: destination, protocol: proto, payloadLength: length,
                            timeToLive: settings.timeToLive ?? configuration.timeToLive,
                            identification: nextIdentification, dontFragment: true,
                            dscpECN: settings.typeOfService)
        let packetOffload = PacketOffload(offload,
                                          transportStart: EthernetFrame.headerLength + IPv4Repr.headerLength)
        guard sendPacket(repr, nextHop: nextHop, offload: packetOffload, tail: tail, now: now, write) else {
            return false
        }
        nextIdentification &+= 1
        counters.ipv4Out &+= 1
        return true
    }

    /// Builds one IPv4 packet in a pool slot, `repr`'s header and then the
    /// `repr.payloadLength` bytes that `write` fills in place, and sends it to
    /// `nextHop`. The last `tail.count` of those bytes are `tail`'s, which the
    /// slot leaves room for but does not hold. False if no slot was free or
    /// the packet does not fit one; the reason is counted.
    @inline(__always)
    private func sendPacket(_ repr: IPv4Repr, nextHop: IPv4Address, offload: PacketOffload = .none,
                            tail: FrameTail = .none, now: Instant,
                            _ write: (UnsafeMutableRawBufferPointer) -> Void) -> Bool {
        guard var frame = device.pool.allocate() else {
            counters.drops.record(.poolExhausted)
            return false
        }
        frame.reserveHeadroom(link.headroom)
        frame.offload = offload
        let frameLength = EthernetFrame.headerLength + IPv4Repr.headerLength + repr.payloadLength
        guard frameLength <= frame.capacity else {
            counters.drops.record(.tooLargeToSend)
            return false
        }
        let inSlot = frameLength - tail.count
        frame.setLength(inSlot)
        frame.withCapacity { bytes in
            let ip = bytes.slice(EthernetFrame.headerLength..<frameLength)
            // The whole transport span, so a header's checksum knows the length;
            // the tail's room in the slot is neither written nor sent.
            write(ip.slice(IPv4Repr.headerLength..<ip.count))
            repr.emit(into: ip)
        }
        sendFrame(frame, etherType: .ipv4, nextHop: nextHop, tail: tail, now: now)
        return true
    }

    /// The next hop for `destination`: itself when on our subnet (or broadcast),
    /// else the gateway.
    func route(_ destination: IPv4Address) -> IPv4Address? {
        // RFC 1122 3.2.1.3 (a), (g): "this network" (0/8) is never a
        // destination, and loopback (127/8) never leaves a host; this stack
        // has no loopback, so neither has a route (ENETUNREACH, not a SYN
        // the host's kernel drops as a martian).
        if destination.isLoopback || destination.value >> 24 == 0 { return nil }
        if destination.isBroadcast || configuration.address.contains(destination) { return destination }
        return configuration.gateway
    }

    /// Fills in the Ethernet header and sends `frame` (and `tail`) to
    /// `nextHop`, or parks it, tail copied in, and asks ARP when the next hop
    /// is not yet resolved.
    @inline(__always)
    func sendFrame(_ frame: consuming PacketBuffer, etherType: EtherType, nextHop: IPv4Address,
                   tail: FrameTail = .none, now: Instant) {
        if nextHop == address { return loopBack(frame, etherType: etherType, tail: tail) }
        let mac: MACAddress?
        if nextHop.isBroadcast || configuration.address.isDirectedBroadcast(nextHop) {
            mac = .broadcast
        } else {
            var refresh = false
            mac = arp.lookup(nextHop, now: now, refresh: &refresh)
            // In use and close to expiry: ask the neighbour itself, before the frame.
            if refresh, let m = mac {
                counters.arpRefreshRequestsOut &+= 1
                sendARP(operation: .request, targetMAC: .zero, targetIP: nextHop, destination: m)
            }
        }
        frame.withBytes { bytes in
            EthernetRepr(destination: mac ?? .zero, source: configuration.macAddress, etherType: etherType)
                .emit(into: bytes)
        }
        if mac != nil {
            transmit(frame, tail: tail)
            return
        }
        // The tail may change once this turn is over: a waiting frame holds its own copy.
        frame.append(tail)
        if arp.shouldRequest(nextHop, now: now) { sendARPRequest(for: nextHop) }
        if let refused = arp.enqueue(frame, nextHop: nextHop) {
            _ = consume refused
            counters.drops.record(.arpQueueFull)
        }
    }
}

/// Copies bytes `range` of the concatenation `a + b` into `out`.
@inline(__always)
func copyGathered(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer, range: Range<Int>,
                  into out: UnsafeMutableRawBufferPointer) {
    var written = 0
    if range.lowerBound < a.count {
        let end = min(range.upperBound, a.count)
        let n = end - range.lowerBound
        out.baseAddress!.copyMemory(from: a.baseAddress! + range.lowerBound, byteCount: n)
        written = n
    }
    let bStart = max(range.lowerBound, a.count) - a.count
    let bEnd = range.upperBound - a.count
    if bEnd > bStart {
        (out.baseAddress! + written).copyMemory(from: b.baseAddress! + bStart, byteCount: bEnd - bStart)
    }
}
