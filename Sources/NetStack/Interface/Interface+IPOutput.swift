import NetStackWire

/// IP's face to the transports: each call goes to the family of its addresses.
extension Interface: IPOutput {
    public var capabilities: DeviceCapabilities { link }

    public func sourceAddress(towards destination: IPAddress) -> IPAddress? {
        switch destination {
        case .v4(let d):
            return route(d) != nil ? .v4(address) : nil
        case .v6(let d):
            guard configuration.speaksIPv6, route6(d) != nil,
                  let s = sourceAddress6(towards: d) else { return nil }
            return .v6(s)
        }
    }

    public func isUnicast(_ destination: IPAddress) -> Bool {
        switch destination {
        case .v4(let d): !d.isBroadcast && !d.isMulticast && !configuration.address.isDirectedBroadcast(d)
        case .v6(let d): !d.isMulticast
        }
    }

    public func maximumSegmentLength(towards destination: IPAddress) -> Int {
        pathMTU(towards: destination) - destination.ipHeaderLength
    }

    public func lowerPathMTU(_ mtu: Int, towards destination: IPAddress, now: Instant) -> Int? {
        var evicted = false
        guard let lowered = pathMTUs.lower(mtu, towards: destination, linkMTU: link.mtu, now: now,
                                           evicted: &evicted) else { return nil }
        counters.pathMTULearned &+= 1
        if evicted { counters.pathMTUEvicted &+= 1 }
        let limit = lowered - destination.ipHeaderLength
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
        if let known = pathMTUs.mtu(towards: destination) { return known }
        if case .v6 = destination { return mtu6 }
        return link.mtu
    }


    @inline(__always)
    public func send(from source: IPAddress, to destination: IPAddress, protocol proto: IPProtocol, length: Int,
                     offload: TransportOffload, tail: FrameTail, settings: IPHeaderSettings, now: Instant,
                     _ write: (UnsafeMutableRawBufferPointer) -> Void) -> Bool {
        switch (source, destination) {
        case (.v4(let s), .v4(let d)):
            return sendIPv4(from: s, to: d, protocol: proto, length: length, offload: offload, tail: tail,
                            settings: settings, now: now, write)
        case (.v6(let s), .v6(let d)) where configuration.speaksIPv6:
            return sendIPv6(from: s, to: d, protocol: proto, length: length, offload: offload, tail: tail,
                            settings: settings, now: now, write)
        default:
            counters.drops.record(.noRoute)
            return false
        }
    }

    public func send(to destination: IPAddress, protocol proto: IPProtocol, header: UnsafeRawBufferPointer,
                     payload: UnsafeRawBufferPointer, settings: IPHeaderSettings, now: Instant) -> Bool {
        switch destination {
        case .v4(let d):
            return sendIPv4(to: d, protocol: proto, transportHeader: header, payload: payload, settings: settings,
                            now: now)
        case .v6(let d) where configuration.speaksIPv6:
            return sendIPv6(to: d, protocol: proto, transportHeader: header, payload: payload, settings: settings,
                            now: now)
        default:
            counters.drops.record(.noRoute)
            return false
        }
    }

    public func confirmReachable(_ address: IPAddress, now: Instant) {
        switch address {
        case .v4(let d):
            guard let hop = route(d), !hop.isBroadcast else { return }
            if arp.confirm(hop, now: now) { counters.arpConfirmations &+= 1 }
        case .v6(let d):
            guard configuration.speaksIPv6, let hop = route6(d), !hop.isMulticast else { return }
            if ndp.confirm(hop, now: now) { counters.ndpConfirmations &+= 1 }
        }
    }

    public func reportPortUnreachable(_ datagram: IPDatagram, now: Instant) {
        switch datagram.source {
        case .v4: sendICMPError(.destinationUnreachable(.port), for: datagram, now: now)
        case .v6: sendICMPv6Error(.destinationUnreachable(code: ICMPv6Unreachable.port), for: datagram, now: now)
        }
    }
}
