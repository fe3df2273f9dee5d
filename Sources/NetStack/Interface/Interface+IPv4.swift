import NetStackWire

extension Interface {
    /// RFC 791 3.2 and RFC 1122 3.2.1: validate, then deliver locally. The stack
    /// is a host, so it never forwards.
    @inline(__always)
    /// `checksumTrusted`: the device vouched for the transport checksum.
    func receiveIPv4(_ eth: EthernetFrame, checksumTrusted: Bool, now: Instant) -> Verdict {
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
                    deliver(IPDatagram(source: .v4(key.source), destination: .v4(key.destination),
                                       proto: IPProtocol(rawValue: key.proto), payload: payload,
                                       checksum: .unverified, toBroadcast: toBroadcast, header: header,
                                       inFrame: false),
                            eth: eth, now: now)
                }
                reassembler.release(index)
                return verdict
            }
        }
        return deliver(IPDatagram(source: .v4(src), destination: .v4(dst), proto: ip.protocol, payload: ip.payload,
                                  checksum: checksumTrusted ? .verified : .unverified, toBroadcast: toBroadcast, header: ip.header, inFrame: true),
                       eth: eth, now: now)
    }

    /// Hands a datagram for us to ICMP or to its transport.
    @inline(__always)
    func deliver(_ d: IPDatagram, eth: EthernetFrame, now: Instant) -> Verdict {
        switch d.proto {
        case .icmp:
            return receiveICMP(d, eth: eth, now: now)
        case .udp:
            udp.receive(d, now: now)
            return .done
        case .tcp:
            tcp.receive(d, now: now)
            return .done
        default:
            // RFC 1122 3.2.2.1: protocol unreachable for a transport we do not run.
            sendICMPError(.destinationUnreachable(.protocol), for: d, now: now)
            return .drop(.ipv4UnsupportedProtocol)
        }
    }
}
