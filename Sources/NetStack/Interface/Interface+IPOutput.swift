import NetStackWire

/// IP's face to the transports: IPv4 today; IPv6 joins behind the same calls.
extension Interface: IPOutput {
    public var capabilities: DeviceCapabilities { link }

    public func sourceAddress(towards destination: IPAddress) -> IPAddress? {
        guard case .v4(let d) = destination, route(d) != nil else { return nil }
        return .v4(address)
    }

    public func maximumSegmentLength(towards destination: IPAddress) -> Int {
        link.mtu - IPv4Repr.headerLength
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
