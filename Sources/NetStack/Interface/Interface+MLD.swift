import NetStackWire

/// Multicast listener discovery, version 2 (RFC 3810), as a host: the
/// solicited-node groups of the interface's addresses are reported when
/// joined (before DAD's first solicitation, RFC 4862 5.4.2) and when left,
/// and queries are answered; the groups themselves are `MulticastListener`.
extension Interface {
    /// Joins the solicited-node group of every address of ours not found
    /// duplicate; reports go out from the next tick.
    func joinSolicitedNodeGroups(now: Instant) {
        for o in own6.list where o.state != .duplicate {
            mld.join(o.address.solicitedNodeMulticast, now: now)
        }
    }

    /// `address` was given up: its group is left unless another address of ours shares it.
    func leaveSolicitedNodeGroup(of address: IPv6Address, now: Instant) {
        let group = address.solicitedNodeMulticast
        if !own6.accepts(group) { mld.leave(group, now: now) }
    }

    /// RFC 3810 6.2 and 5.1.14: a query from a link-local source with hop
    /// limit 1 schedules the answer within its maximum response delay.
    func receiveMLDQuery(_ d: IPDatagram, icmp: ICMPv6Packet, source: IPv6Address, now: Instant) -> Verdict {
        counters.mldQueriesIn &+= 1
        guard d.header.count >= IPv6Packet.headerLength, d.header[7] == 1, source.isLinkLocal,
              let query = try? MLDQuery(validating: d.payload) else { return .drop(.mldInvalid) }
        let group = query.multicastAddress
        guard group.isUnspecified || group.isMulticast else { return .drop(.mldInvalid) }
        // The delay within the allowed one: a hash of the time under the
        // interface's secret, so listeners on one link spread their answers.
        let mixed = (flowLabelSecret ^ UInt64(bitPattern: Int64(now.nanoseconds))) &* 0x9E37_79B9_7F4A_7C15
        let fraction = Double(mixed >> 11) / Double(UInt64(1) << 53)
        mld.query(group: group, maximumDelay: .milliseconds(query.maximumResponseDelayMilliseconds),
                  fraction: fraction, now: now)
        return .done
    }

    /// Sends the reports `mld` has due.
    func sendDueMLDReports(now: Instant) {
        guard let t = mld.nextDeadline, now >= t else { return }
        let due = mld.due(now: now)
        if !due.changes.isEmpty { sendMLDReport(MLDv2ReportRepr(records: due.changes)) }
        if !due.current.isEmpty { sendMLDReport(MLDv2ReportRepr(records: due.current)) }
    }

    /// One report to all MLDv2 routers: hop limit 1, behind a hop-by-hop
    /// Router Alert (RFC 3810 5), from our link-local address or, before
    /// DAD has let it, the unspecified one (5.2.13).
    private func sendMLDReport(_ report: MLDv2ReportRepr) {
        guard var frame = device.pool.allocate() else {
            counters.drops.record(.poolExhausted)
            return
        }
        let from = own6.linkLocal ?? .unspecified
        let to = MLDv2ReportRepr.destination
        let ip = EthernetFrame.headerLength
        let icmp = ip + IPv6Packet.headerLength + IPv6RouterAlertHeader.length
        frame.reserveHeadroom(link.headroom)
        frame.setLength(icmp + report.length)
        frame.withBytes { bytes in
            EthernetRepr(destination: to.multicastMAC, source: configuration.macAddress, etherType: .ipv6)
                .emit(into: bytes)
            IPv6Repr(source: from, destination: to, nextHeader: .hopByHopOptions,
                     payloadLength: IPv6RouterAlertHeader.length + report.length, hopLimit: 1)
                .emit(into: bytes.slice(ip..<(ip + IPv6Packet.headerLength)))
            IPv6RouterAlertHeader.emit(into: bytes.slice((ip + IPv6Packet.headerLength)..<icmp), nextHeader: .icmpv6)
            report.emit(into: bytes.slice(icmp..<bytes.count), source: from, destination: to)
        }
        counters.ipv6Out &+= 1
        counters.mldReportsOut &+= 1
        transmit(frame)
    }
}
