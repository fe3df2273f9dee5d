import NetStackWire

/// IP's face to the transports: IPv4 today; IPv6 joins behind the same calls.
extension Interface: IPOutput {
    public var capabilities: DeviceCapabilities { link }

    public func sourceAddress(towards destination: IPAddress) -> IPAddress? {
        guard case .v4(let d) = destination, route(d) != nil else { return nil }
        return .v4(address)
    }

    public func maximumSegmentLength(towards destination: IPAddress) -> Int {
        pathMTU(towards: destination) - Self.ipHeaderLength(destination)
    }

    public func lowerPathMTU(_ mtu: Int, towards destination: IPAddress, now: Instant) -> Int? {
        var evicted = false
        guard let lowered = pathMTUs.lower(mtu, towards: destination, linkMTU: link.mtu, now: now,
                                           evicted: &evicted) else { return nil }
        counters.pathMTULearned &+= 1
        if evicted { counters.pathMTUEvicted &+= 1 }
        let limit = lowered - Self.ipHeaderLength(destination)
        logger.debug("path MTU lowered", metadata: ["destination": "\(destination)", "mtu": "\(lowered)"])
        // Whichever transport validated the report, TCP's connections there
        // resize now, before they send again: nothing they build exceeds the
        // estimate, which the send path enforces.
        tcp.pathMTULowered(towards: destination, segmentLimit: limit)
        return limit
    }

    /// The largest IP packet towards `destination`: the path MTU learned
    /// (`PathMTUCache`), else the link's. A hash lookup only while some path
    /// MTU is known.
    @inline(__always)
    func pathMTU(towards destination: IPAddress) -> Int {
        pathMTUs.mtu(towards: destination) ?? link.mtu
    }

    /// The IP header without options: 20 bytes for IPv4, 40 for IPv6.
    @inline(__always)
    static func ipHeaderLength(_ destination: IPAddress) -> Int {
        switch destination {
        case .v4: IPv4Repr.headerLength
        case .v6: 40
        }
    }

    @inline(__always)
    public func send(from source: IPAddress, to destination: IPAddress, protocol proto: IPProtocol, length: Int,
                     offload: TransportOffload, tail: FrameTail, now: Instant,
                     _ write: (UnsafeMutableRawBufferPointer) -> Void) -> Bool {
        guard case .v4(let s) = source, case .v4(let d) = destination else {
            counters.drops.record(.noRoute)
            return false
        }
        return sendIPv4(from: s, to: d, protocol: proto, length: length, offload: offload, tail: tail, now: now,
                        write)
    }

    public func send(to destination: IPAddress, protocol proto: IPProtocol, header: UnsafeRawBufferPointer,
                     payload: UnsafeRawBufferPointer, now: Instant) -> Bool {
        guard case .v4(let d) = destination else {
            counters.drops.record(.noRoute)
            return false
        }
        return sendIPv4(to: d, protocol: proto, transportHeader: header, payload: payload, now: now)
    }

    public func confirmReachable(_ address: IPAddress, now: Instant) {
        guard case .v4(let d) = address, let hop = route(d), !hop.isBroadcast else { return }
        if arp.confirm(hop, now: now) { counters.arpConfirmations &+= 1 }
    }

    public func reportPortUnreachable(_ datagram: IPDatagram, now: Instant) {
        sendICMPError(.destinationUnreachable(.port), for: datagram, now: now)
    }
}
