import NetStackWire

extension Interface {
    /// RFC 791 3.2 and RFC 1122 3.2.1: validate, then deliver locally. The stack
    /// is a host, so it never forwards.
    @inline(__always)
    /// `checksumTrusted`: the device vouched for the transport checksum.
    /// `linkBroadcast`: the frame went to the Ethernet broadcast (or a
    /// multicast) address, which the datagram carries up (`IPDatagram`).
    /// `fromSelf`: looped back (`loopBack`), so from our own address.
    func receiveIPv4(_ eth: EthernetFrame, checksumTrusted: Bool, linkBroadcast: Bool, fromSelf: Bool = false,
                     now: Instant) -> Verdict {
        let ip: IPv4Packet
        do { ip = try IPv4Packet(validating: eth.payload) } catch { return .drop(DropReason(ipv4: error)) }
        guard ip.checksumIsValid else { return .drop(.ipv4BadChecksum) }
        // RFC 1122 3.2.1.3, RFC 1812 5.3.7: a martian source (0/8, 127/8, our
        // own address, a broadcast, multicast, class E) is discarded here, so
        // nothing above (an echo reply, an ICMP error, a RST or SYN-ACK, a UDP
        // socket) ever answers it.
        let src = ip.source
        guard !configuration.address.isMartianSource(src) || (fromSelf && src == address) else {
            return .drop(.ipv4MartianSource)
        }
        let dst = ip.destination
        let toBroadcast = dst.isBroadcast || configuration.address.isDirectedBroadcast(dst)
        guard dst == address || toBroadcast else { return .drop(.ipv4NotForUs) }
        counters.ipv4In &+= 1

        if ip.isFragment {
            counters.fragmentsIn &+= 1
            switch reassembler.insert(ip, linkBroadcast: linkBroadcast, now: now) {
            case .incomplete:
                return .done
            case .dropped(let reason):
                return .drop(reason)
            case .complete(let index):
                counters.datagramsReassembled &+= 1
                let anyInLinkBroadcast = reassembler.arrivedInLinkBroadcast(index)
                let verdict = reassembler.withDatagram(index) { key, header, payload in
                    deliver(IPDatagram(source: .v4(key.source), destination: .v4(key.destination),
                                       proto: IPProtocol(rawValue: key.proto), payload: payload,
                                       checksum: .unverified, toBroadcast: toBroadcast,
                                       linkBroadcast: anyInLinkBroadcast, header: header, inFrame: false),
                            eth: eth, now: now)
                }
                reassembler.release(index)
                return verdict
            }
        }
        return deliver(IPDatagram(source: .v4(src), destination: .v4(dst), proto: ip.protocol, payload: ip.payload,
                                  checksum: checksumTrusted ? .verified : .unverified, toBroadcast: toBroadcast,
                                  linkBroadcast: linkBroadcast, header: ip.header, inFrame: true),
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
