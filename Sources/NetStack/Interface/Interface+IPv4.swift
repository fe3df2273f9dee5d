import NetStackWire

/// An IPv4 datagram handed to the transport layer: from a single frame, or
/// put back together by the reassembler.
struct ReceivedDatagram {
    var source: IPv4Address
    var destination: IPv4Address
    var proto: IPProtocol
    /// The IP header as received (of the first fragment, if reassembled), for ICMP errors.
    var header: UnsafeMutableRawBufferPointer
    var payload: UnsafeMutableRawBufferPointer
    /// Sent to a broadcast address: no ICMP errors or echo replies go back (RFC 1122 3.2.2).
    var toBroadcast: Bool
    /// Whether `header` and `payload` are in the received frame, so an answer
    /// may be built in place.
    var inFrame: Bool
}

extension Interface {
    /// RFC 791 3.2 and RFC 1122 3.2.1: validate, then deliver locally. The stack
    /// is a host, so it never forwards.
    @inline(__always)
    func receiveIPv4(_ eth: EthernetFrame, now: Instant) -> Verdict {
        let ip: IPv4Packet
        do { ip = try IPv4Packet(validating: eth.payload) } catch { return .drop(DropReason(ipv4: error)) }
        guard ip.checksumIsValid else { return .drop(.ipv4BadChecksum) }
        let src = ip.source
        // RFC 1122 3.2.1.3: a source that is broadcast or multicast is discarded.
        guard !src.isBroadcast, !src.isMulticast, src != configuration.address.directedBroadcast
        else { return .drop(.ipv4BadSource) }
        let dst = ip.destination
        let toBroadcast = dst.isBroadcast || dst == configuration.address.directedBroadcast
        guard dst == address || toBroadcast else { return .drop(.ipv4NotForUs) }
        counters.ipv4In &+= 1

        if ip.isFragment {
            counters.fragmentsIn &+= 1
            switch reassembler.insert(ip, now: now) {
            case .incomplete:
                return .done
            case .dropped(let reason):
                return .drop(reason)
            case .complete(let index):
                counters.datagramsReassembled &+= 1
                let verdict = reassembler.withDatagram(index) { key, header, payload in
                    deliver(ReceivedDatagram(source: key.source, destination: key.destination,
                                             proto: IPProtocol(rawValue: key.proto), header: header,
                                             payload: payload, toBroadcast: toBroadcast, inFrame: false),
                            eth: eth, now: now)
                }
                reassembler.release(index)
                return verdict
            }
        }
        return deliver(ReceivedDatagram(source: src, destination: dst, proto: ip.protocol, header: ip.header,
                                        payload: ip.payload, toBroadcast: toBroadcast, inFrame: true),
                       eth: eth, now: now)
    }

    @inline(__always)
    func deliver(_ d: ReceivedDatagram, eth: EthernetFrame, now: Instant) -> Verdict {
        switch d.proto {
        case .icmp:
            return receiveICMP(d, eth: eth, now: now)
        case .udp:
            return receiveUDP(d, now: now)
        case .tcp:
            return receiveTCP(d, now: now)
        default:
            // RFC 1122 3.2.2.1: protocol unreachable for a transport we do not run.
            sendICMPError(.destinationUnreachable(.protocol), for: d, now: now)
            return .drop(.ipv4UnsupportedProtocol)
        }
    }
}
