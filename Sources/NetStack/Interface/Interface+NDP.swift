import NetStackWire

/// Neighbour discovery (RFC 4861) and duplicate address detection (RFC
/// 4862 5.4): IPv6's ARP, in ICMPv6. The table is `ndp`, the same design as
/// ARP's (`NeighbourCache`).
extension Interface {
    /// RFC 4861 7.1.1's checks every neighbour discovery message gets: the
    /// hop limit 255 proves it was not forwarded, and the code is 0.
    private func ndpHeaderIsValid(_ d: IPDatagram, icmp: ICMPv6Packet) -> Bool {
        d.header.count >= IPv6Packet.headerLength && d.header[7] == 255 && icmp.code == 0
    }

    /// RFC 4861 7.2.3-7.2.4: a solicitation for one of our addresses is
    /// answered with an advertisement carrying our MAC; the sender's MAC
    /// (its source link-layer option) enters the table as STALE, to be
    /// probed if traffic to it goes unconfirmed (7.2.3, `NeighbourCache.learn`). For an address still
    /// tentative, a solicitation from the unspecified address is another
    /// node's DAD for it: the address is a duplicate (RFC 4862 5.4.3).
    func receiveNeighbourSolicitation(_ d: IPDatagram, icmp: ICMPv6Packet, source: IPv6Address,
                                      destination: IPv6Address, now: Instant) -> Verdict {
        counters.ndpSolicitationsIn &+= 1
        guard ndpHeaderIsValid(d, icmp: icmp), let ns = try? NeighborSolicitation(validating: d.payload),
              !ns.target.isMulticast else { return .drop(.ndpInvalid) }
        let sourceMAC = ns.sourceLinkLayerAddress
        // From the unspecified address: to a solicited-node group, with no source link-layer option.
        if source.isUnspecified && (!destination.isSolicitedNodeMulticast || sourceMAC != nil) {
            return .drop(.ndpInvalid)
        }
        let target = ns.target
        guard own6.isAssigned(target) else { return .drop(.ndpNotForUs) }
        if case .tentative = own6.state(of: target) {
            // RFC 4862 5.4.3: DAD by another node means a duplicate; an
            // address resolution for a tentative address is ignored.
            if source.isUnspecified { dadFailed(target, now: now) }
            return .done
        }
        if let mac = sourceMAC, !source.isUnspecified {
            guard !mac.isMulticast else { return .drop(.ndpInvalid) }
            ndp.learn(source, mac: mac, now: now)
            releaseWaiting(in: &ndp, for: source, mac: mac)
        }
        // To the sender, or to all nodes when it has no address yet (7.2.4),
        // solicited only then; override, as the address is our own.
        let to = source.isUnspecified ? IPv6Address.allNodes : source
        sendNeighbourAdvertisement(target: target, to: to, solicited: !source.isUnspecified, override: true, now: now)
        return .done
    }

    /// RFC 4861 7.2.5-7.2.6: an advertisement completes a pending resolution
    /// or updates an entry; one for a tentative address of ours is a
    /// duplicate (RFC 4862 5.4.4). One for a neighbour we hold no entry for
    /// is dropped (no entry is made from an advertisement).
    func receiveNeighbourAdvertisement(_ d: IPDatagram, icmp: ICMPv6Packet, destination: IPv6Address,
                                       now: Instant) -> Verdict {
        counters.ndpAdvertisementsIn &+= 1
        guard ndpHeaderIsValid(d, icmp: icmp), let na = try? NeighborAdvertisement(validating: d.payload),
              !na.target.isMulticast, !(destination.isMulticast && na.solicited) else { return .drop(.ndpInvalid) }
        let target = na.target
        if own6.isAssigned(target) {
            if case .tentative = own6.state(of: target) { dadFailed(target, now: now) }
            return .drop(.ndpNotForUs)
        }
        guard ndp.entries[target] != nil else { return .drop(.ndpNotForUs) }
        let mac = na.targetLinkLayerAddress
        if let mac, mac.isMulticast { return .drop(.ndpInvalid) }
        let known = ndp.lookup(target, now: now)
        // A solicited answer makes the entry REACHABLE; an unsolicited one, STALE (7.2.5).
        func record(_ m: MACAddress) {
            if na.solicited { ndp.update(target, mac: m, now: now, create: false) } else { ndp.learn(target, mac: m, now: now) }
        }
        switch (mac, known) {
        case (let m?, nil):
            // Pending (or expired): resolved now.
            record(m)
            releaseWaiting(in: &ndp, for: target, mac: m)
        case (let m?, let k?) where m != k:
            // A different address replaces ours only with the override flag (7.2.5).
            guard na.override else { return .done }
            record(m)
        default:
            // The same address, or none given: a solicited answer confirms it (NUD).
            if na.solicited, ndp.confirm(target, now: now) { counters.ndpConfirmations &+= 1 }
        }
        return .done
    }

    /// RFC 4861 6.1.2 and 6.3.4: an advertisement from a link-local router
    /// address sets default routers, on-link prefixes, the MTU and the hop
    /// limit (`RouterDiscovery`); its source link-layer option enters the table.
    func receiveRouterAdvertisement(_ d: IPDatagram, icmp: ICMPv6Packet, source: IPv6Address,
                                    now: Instant) -> Verdict {
        counters.routerAdvertisementsIn &+= 1
        guard ndpHeaderIsValid(d, icmp: icmp), source.isLinkLocal,
              let ra = try? RouterAdvertisement(validating: d.payload) else { return .drop(.ndpInvalid) }
        routers6.receive(ra, from: source, linkMTU: link.mtu, now: now)
        if let mac = ra.sourceLinkLayerAddress, !mac.isMulticast {
            ndp.learn(source, mac: mac, now: now)
            releaseWaiting(in: &ndp, for: source, mac: mac)
        }
        return .done
    }

    /// An address of ours is in use elsewhere: it is given up (RFC 4862 5.4.5).
    private func dadFailed(_ address: IPv6Address, now: Instant) {
        guard own6.markDuplicate(address) else { return }
        counters.dadDuplicates &+= 1
        leaveSolicitedNodeGroup(of: address, now: now)
        logger.error("duplicate IPv6 address: another node holds it; not using it",
                     metadata: ["address": "\(address)"])
    }

    // MARK: Sending

    /// A solicitation for `target` (RFC 4861 7.2.2): to its solicited-node
    /// group to resolve it, or to `unicastTo` (its known MAC) to probe it
    /// (NUD, 7.3.3), from an address of ours on its link, with our MAC.
    func sendNeighbourSolicitation(for target: IPv6Address, unicastTo mac: MACAddress?, now: Instant) {
        guard let from = sourceAddress6(towards: target) else { return }
        let to = mac == nil ? target.solicitedNodeMulticast : target
        let repr = NDPRepr.neighborSolicitation(target: target, sourceLinkLayer: configuration.macAddress)
        if mac == nil { counters.ndpSolicitationsOut &+= 1 } else { counters.ndpProbesOut &+= 1 }
        sendNDP(repr, from: from, to: to, mac: mac ?? to.multicastMAC)
    }

    /// DAD's solicitation for a tentative address (RFC 4862 5.4.2): from the
    /// unspecified address, to the address's solicited-node group, without
    /// a source link-layer option.
    func sendDADSolicitation(for address: IPv6Address, now: Instant) {
        counters.dadSolicitationsOut &+= 1
        let to = address.solicitedNodeMulticast
        sendNDP(.neighborSolicitation(target: address, sourceLinkLayer: nil), from: .unspecified, to: to,
                mac: to.multicastMAC)
    }

    /// An advertisement for our `target` with our MAC (RFC 4861 7.2.4).
    func sendNeighbourAdvertisement(target: IPv6Address, to: IPv6Address, solicited: Bool, override: Bool,
                                    now: Instant) {
        let repr = NDPRepr.neighborAdvertisement(target: target, router: false, solicited: solicited,
                                                 override: override, targetLinkLayer: configuration.macAddress)
        let mac: MACAddress
        if to.isMulticast {
            mac = to.multicastMAC
        } else if let m = ndp.lookup(to, now: now) {
            mac = m
        } else {
            // RFC 4861 7.2.4: the solicitation's source MAC should be known by
            // now; without it the answer would need a resolution of its own.
            return
        }
        counters.ndpAdvertisementsOut &+= 1
        sendNDP(repr, from: target, to: to, mac: mac)
    }

    /// An address became ours: an unsolicited advertisement to all nodes
    /// tells neighbours that cached another MAC for it (RFC 4861 7.2.6).
    func announce6(_ address: IPv6Address, now: Instant) {
        sendNeighbourAdvertisement(target: address, to: .allNodes, solicited: false, override: true, now: now)
    }

    /// A router solicitation to all routers (RFC 4861 6.3.7).
    func sendRouterSolicitation(now: Instant) {
        guard let from = own6.linkLocal else { return }
        counters.routerSolicitationsOut &+= 1
        sendNDP(.routerSolicitation(sourceLinkLayer: configuration.macAddress), from: from, to: .allRouters,
                mac: IPv6Address.allRouters.multicastMAC)
    }

    /// Builds and sends one neighbour discovery message: hop limit 255
    /// (RFC 4861 7.1), straight to `mac`, never waiting on resolution.
    private func sendNDP(_ repr: NDPRepr, from: IPv6Address, to: IPv6Address, mac: MACAddress) {
        guard var frame = device.pool.allocate() else {
            counters.drops.record(.poolExhausted)
            return
        }
        frame.reserveHeadroom(link.headroom)
        let length = EthernetFrame.headerLength + IPv6Packet.headerLength + repr.length
        frame.setLength(length)
        frame.withBytes { bytes in
            EthernetRepr(destination: mac, source: configuration.macAddress, etherType: .ipv6).emit(into: bytes)
            IPv6Repr(source: from, destination: to, nextHeader: .icmpv6, payloadLength: repr.length, hopLimit: 255)
                .emit(into: bytes.slice(EthernetFrame.headerLength..<length))
            repr.emit(into: bytes.slice((EthernetFrame.headerLength + IPv6Packet.headerLength)..<length),
                      source: from, destination: to)
        }
        counters.ipv6Out &+= 1
        transmit(frame)
    }
}
