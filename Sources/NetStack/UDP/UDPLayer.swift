import NetStackWire

/// UDP for one interface (RFC 768, RFC 1122 4.1): sockets by port, checks,
/// demultiplexing, port unreachable for closed ports, ICMP errors handed to
/// the socket that sent, and UDP's counters. Not generic over the device.
public final class UDPLayer {
    var sockets: [UInt16: PortOccupants<UDPSocket>] = [:]
    public internal(set) var counters = UDPCounters()
    /// IP, attached by the interface that owns this layer (see `TCPLayer.ip`).
    private(set) unowned(unsafe) var ip: (any IPOutput)!
    /// The time of the loop's latest turn, which the interface keeps current,
    /// for what sockets send between turns.
    var latestNow: Instant

    init(now: Instant) {
        latestNow = now
    }

    /// Sends through `ip` from now on.
    func attach(to ip: some IPOutput) { self.ip = ip }

    /// The loop turned at `now`.
    func advance(to now: Instant) { latestNow = now }

    /// Binds `port` for datagrams of `families` (both unless told otherwise).
    /// RFC 768 demultiplexes on the destination port only: one socket per
    /// port and family (`PortOccupants`), or several that share it: alike,
    /// each taking some peers' datagrams (`sharingPort`, SO_REUSEPORT), or
    /// each with SO_REUSEADDR (`sharingAddress`), the newest unconnected one
    /// taking what no connected one does.
    public func bind(port: UInt16, families: IPFamilies = .both, sharingPort: Bool = false,
                     sharingAddress: Bool = false, receiveCapacity: Int = 256 * 1024) throws(UDPBindError) -> UDPSocket {
        guard port != 0 else { throw .portZero }
        guard sockets[port, default: PortOccupants()].admits(families, sharing: sharingPort,
                                                              sharingAddress: sharingAddress) else {
            throw .portInUse(port)
        }
        let s = UDPSocket(port: port, families: families, sharesPort: sharingPort, sharesAddress: sharingAddress,
                          receiveCapacity: receiveCapacity, layer: self)
        sockets.occupy(port, with: s)
        return s
    }

    /// The ports `bindEphemeral` hands out: Linux's ip_local_port_range.
    public static let ephemeralPorts: ClosedRange<UInt16> = 32768...60999
    private var nextEphemeral = UDPLayer.ephemeralPorts.lowerBound

    /// Binds a free port of `ephemeralPorts`, the next after the last one
    /// handed out (a socket that sends or connects before it binds).
    public func bindEphemeral(families: IPFamilies = .both,
                              receiveCapacity: Int = 256 * 1024) throws(UDPBindError) -> UDPSocket {
        let range = Self.ephemeralPorts
        for _ in range {
            let port = nextEphemeral
            nextEphemeral = port == range.upperBound ? range.lowerBound : port + 1
            if sockets[port] == nil { return try bind(port: port, families: families, receiveCapacity: receiveCapacity) }
        }
        throw .noEphemeralPort
    }

    /// The address a datagram to `destination` goes from.
    func sourceAddress(towards destination: IPAddress) -> IPAddress? { ip?.sourceAddress(towards: destination) }

    func unbind(_ socket: UDPSocket) {
        sockets.vacate(socket.port, of: socket)
        socket.closed()
    }

    /// Sends one datagram from `sourcePort`, fragmenting it at the IP layer if
    /// it exceeds the MTU, with the socket's IP header `settings`. False if
    /// it was dropped; the reason is counted.
    @discardableResult
    func send(from sourcePort: UInt16, to destination: UDPEndpoint, payload: UnsafeRawBufferPointer,
              settings: IPHeaderSettings = .standard, now: Instant? = nil) -> Bool {
        guard let ip else { return false }
        let now = now ?? latestNow
        guard let source = ip.sourceAddress(towards: destination.address) else {
            // IP counts no-route when it is asked to send; ask it.
            return ip.send(to: destination.address, protocol: .udp, header: UnsafeRawBufferPointer(start: nil, count: 0),
                           payload: payload, settings: settings, now: now)
        }
        let length = UDPDatagram.headerLength + payload.count
        guard length <= 0xffff else {
            counters.drops.record(.tooLargeToSend)
            return false
        }
        var header = UInt64(0)
        withUnsafeMutableBytes(of: &header) { h in
            UDPRepr(sourcePort: sourcePort, destinationPort: destination.port, payloadLength: payload.count)
                .emitHeader(into: h, payload: payload, source: source, destination: destination.address)
        }
        let sent = withUnsafeBytes(of: &header) { h in
            ip.send(to: destination.address, protocol: .udp, header: h, payload: payload, settings: settings, now: now)
        }
        if sent { counters.datagramsOut &+= 1 }
        return sent
    }

    /// RFC 768 / RFC 1122 4.1.3: check, demultiplex on the destination port,
    /// and answer a closed port with ICMP port unreachable (so too a port
    /// whose sockets are all connected to other peers, as Linux's).
    func receive(_ d: IPDatagram, now: Instant) {
        let udp: UDPDatagram
        do { udp = try UDPDatagram(validating: d.payload) } catch {
            return counters.drops.record(error == .truncated ? .truncated : .badLength)
        }
        // The UDP length must agree with what IP carried (RFC 1122 4.1.3.4 says
        // the IP length rules; a shorter UDP length means trailing junk).
        guard udp.length == d.payload.count else { return counters.drops.record(.badLength) }
        guard d.checksum == .verified || udp.checksumIsValid(source: d.source, destination: d.destination) else {
            return counters.drops.record(.badChecksum)
        }
        counters.datagramsIn &+= 1
        guard let socket = sockets[udp.destinationPort]?.occupant(for: d.destination, from: d.source,
                                                                port: udp.sourcePort) else {
            ip.reportPortUnreachable(d, now: now)
            return counters.drops.record(.noSocket)
        }
        let (trafficClass, hopLimit) = Self.trafficClassAndHopLimit(of: d)
        let arrival = UDPArrival(source: UDPEndpoint(address: d.source, port: udp.sourcePort),
                                 destination: d.destination, trafficClass: trafficClass, hopLimit: hopLimit,
                                 time: now)
        if !socket.enqueue(UnsafeRawBufferPointer(udp.payload), arrival: arrival) {
            counters.drops.record(.receiveQueueFull)
        }
    }

    /// The DS field and TTL of `d`'s IP header (IPv6's traffic class and hop
    /// limit), as received (the first fragment's, if reassembled).
    static func trafficClassAndHopLimit(of d: IPDatagram) -> (UInt8, UInt8) {
        let h = d.header
        switch d.source {
        case .v4: return h.count >= 20 ? (h[1], h[8]) : (0, 0)
        case .v6: return h.count >= 40 ? ((h[0] & 0x0f) << 4 | h[1] >> 4, h[7]) : (0, 0)
        }
    }

    /// An ICMP error about a datagram we sent: to the socket on its source
    /// port. An IPv6 packet too big from a bound socket's datagram also
    /// lowers the path MTU, so later datagrams are fragmented to fit (RFC
    /// 8201 4; IPv4's UDP goes without DF, so a report there is not ours).
    func receiveError(_ report: IPErrorReport, now: Instant) {
        guard report.quotedTransport.count >= 4 else { return }
        let q = report.quotedTransport
        let sourcePort = UInt16(q[0]) << 8 | UInt16(q[1])
        let destinationPort = UInt16(q[2]) << 8 | UInt16(q[3])
        // The member that takes the peer's datagrams hears about what it sent there.
        guard let socket = sockets[sourcePort]?.occupant(for: report.source, from: report.destination,
                                                          port: destinationPort) else { return }
        counters.errorsIn &+= 1
        if case .packetTooBig(let mtu) = report.kind, case .v6 = report.destination {
            _ = ip.lowerPathMTU(mtu, towards: report.destination, now: now)
        }
        socket.enqueue(UDPSocketError(kind: report.kind,
                                      destination: UDPEndpoint(address: report.destination, port: destinationPort)))
    }
}

public enum UDPBindError: Error, Equatable {
    case portInUse(UInt16)
    case portZero
    /// Every ephemeral port is bound.
    case noEphemeralPort
}
