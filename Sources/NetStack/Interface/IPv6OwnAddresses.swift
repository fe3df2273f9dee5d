import NetStackWire

/// The stack's own IPv6 addresses, and where each stands in duplicate
/// address detection (RFC 4862 5.4): tentative until `dadTransmits`
/// solicitations went unanswered for a RetransTimer each, then preferred; a
/// duplicate is never used. The link-local address comes first.
struct IPv6OwnAddresses {
    enum State: Equatable {
        /// Under DAD: solicitations sent so far, and when the next is due (or,
        /// once all went, when the address becomes preferred).
        case tentative(sent: Int, next: Instant)
        case preferred
        /// Another node holds it (RFC 4862 5.4.5): not used.
        case duplicate
    }

    struct Own {
        var address: IPv6Address
        var prefixLength: Int
        var state: State
    }

    private(set) var list: [Own]
    let dadTransmits: Int
    let retransTimer: Duration

    /// The addresses, tentative from `now` (preferred at once when `dadTransmits` is 0).
    init(linkLocal: IPv6Address, global: IPv6CIDR?, dadTransmits: Int, retransTimer: Duration, now: Instant) {
        self.dadTransmits = dadTransmits
        self.retransTimer = retransTimer
        let initial: State = dadTransmits > 0 ? .tentative(sent: 0, next: now) : .preferred
        list = [Own(address: linkLocal, prefixLength: 64, state: initial)]
        if let g = global, g.address != linkLocal {
            list.append(Own(address: g.address, prefixLength: g.prefixLength, state: initial))
        }
    }

    /// One of ours and usable: traffic to it is accepted, and it may be a source.
    @inline(__always)
    func isPreferred(_ a: IPv6Address) -> Bool {
        for o in list where o.address == a { return o.state == .preferred }
        return false
    }

    /// One of ours in any state but duplicate: the target neighbour
    /// discovery answers for (or, tentative, defends through DAD).
    func isAssigned(_ a: IPv6Address) -> Bool {
        list.contains { $0.address == a && $0.state != .duplicate }
    }

    func state(of a: IPv6Address) -> State? { list.first { $0.address == a }?.state }

    /// A destination the stack takes: a preferred address of its own, all
    /// nodes (ff02::1), or the solicited-node group of any address it has
    /// (joined from the moment the address is tentative, RFC 4862 5.4.2).
    @inline(__always)
    func accepts(_ d: IPv6Address) -> Bool {
        if !d.isMulticast { return isPreferred(d) }
        if d == .allNodes { return true }
        return list.contains { $0.state != .duplicate && $0.address.solicitedNodeMulticast == d }
    }

    /// Whether a frame to this Ethernet multicast address is for us: all
    /// nodes' or one of our solicited-node groups' (RFC 2464 7).
    func acceptsMulticast(_ mac: MACAddress) -> Bool {
        if mac == IPv6Address.allNodes.multicastMAC { return true }
        return list.contains { $0.state != .duplicate && $0.address.solicitedNodeMulticast.multicastMAC == mac }
    }

    var linkLocal: IPv6Address? { list[0].state == .preferred ? list[0].address : nil }

    /// The preferred global (non-link-local) address with its prefix.
    var global: IPv6CIDR? {
        list.dropFirst().first { $0.state == .preferred }.map { IPv6CIDR(address: $0.address, prefixLength: $0.prefixLength) }
    }

    /// DAD has ended for every address (each preferred or found duplicate).
    var settled: Bool { list.allSatisfy { if case .tentative = $0.state { false } else { true } } }

    /// The earliest DAD deadline.
    var nextDeadline: Instant? {
        var d: Instant?
        for o in list { if case .tentative(_, let next) = o.state { d = min(d ?? next, next) } }
        return d
    }

    /// Advances DAD to `now`: addresses whose next solicitation is due are put
    /// in `probe` (counted as sent), and those whose last one went a
    /// RetransTimer ago unanswered become preferred (put in `assigned`).
    mutating func due(now: Instant, probe: inout [IPv6Address], assigned: inout [IPv6Address]) {
        probe.removeAll(keepingCapacity: true)
        assigned.removeAll(keepingCapacity: true)
        for i in list.indices {
            guard case .tentative(let sent, let next) = list[i].state, now >= next else { continue }
            if sent >= dadTransmits {
                list[i].state = .preferred
                assigned.append(list[i].address)
            } else {
                list[i].state = .tentative(sent: sent + 1, next: now + retransTimer)
                probe.append(list[i].address)
            }
        }
    }

    /// `a` is in use elsewhere (RFC 4862 5.4.5): it is given up. True if it was ours and tentative.
    @discardableResult
    mutating func markDuplicate(_ a: IPv6Address) -> Bool {
        guard let i = list.firstIndex(where: { $0.address == a }), case .tentative = list[i].state else { return false }
        list[i].state = .duplicate
        return true
    }
}
