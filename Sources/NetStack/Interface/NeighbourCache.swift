import NetStackWire

/// The neighbour table: next hops to Ethernet addresses, and the frames
/// waiting for an answer. One design for both families: ARP's (RFC 826, RFC
/// 1122 2.3.2.1) for IPv4 (`ARPCache`), neighbour discovery's (RFC 4861 7.3)
/// for IPv6 (`NDPCache`); only the messages that ask and answer differ.
///
/// Entries expire after `lifetime`, so a host that changed its MAC is
/// re-resolved; but an entry in use is not left to expire (Linux's NUD,
/// RFC 4861 7.3's reachability confirmation, for ARP as Linux does it): a
/// transport's forward progress towards the neighbour confirms it
/// (`confirm`, as `dst_confirm`/`neigh_confirm`), and a frame sent within
/// `refreshMargin` of expiry sends a unicast request to the known address
/// (NUD's PROBE), at most one per `retryInterval`, whose reply renews it;
/// traffic never waits on resolution. An idle entry still expires. An unresolved next hop is asked for at most `maxRequests`
/// times, `retryInterval` apart; after that its waiting frames are dropped.
/// An address learned without being asked for (`learn`: a neighbour
/// solicitation's or router advertisement's source link-layer option) is
/// STALE (RFC 4861 7.2.3): used at once, but traffic to it sends a unicast
/// solicitation after DELAY's 5 s unless a transport confirms it first.
/// Both the table and the waiting queue are bounded.
struct NeighbourCache<Address: Hashable> {
    struct Entry {
        /// Nil while the request is outstanding.
        var mac: MACAddress?
        /// When a resolved entry stops being trusted.
        var expires: Instant
        /// Requests sent for a pending entry.
        var requestsSent: Int
        /// When a pending entry asks again (or gives up); when a resolved
        /// entry in use may send its next unicast refresh.
        var nextRequest: Instant
        /// False for an address learned without asking (`learn`) until an
        /// answer or a transport confirms it: RFC 4861's STALE, then PROBE.
        var confirmed = true
    }

    /// A frame parked until its next hop resolves.
    struct Waiting {
        var packet: ParkedPacket
        var nextHop: Address
    }

    let capacity: Int
    let lifetime: Duration
    let retryInterval: Duration
    let maxRequests: Int
    let maxWaiting: Int
    /// How long before expiry an entry in use is refreshed: a quarter of the
    /// lifetime, at most 5 s (Linux's delay_first_probe_time), so several
    /// unicast requests, a `retryInterval` apart, fit before it expires.
    let refreshMargin: Duration
    private(set) var entries: [Address: Entry]
    /// In arrival order, so frames to one next hop leave in the order they were sent.
    private(set) var waiting: [Waiting]

    init(capacity: Int, lifetime: Duration, retryInterval: Duration, maxRequests: Int, maxWaiting: Int) {
        self.capacity = capacity
        self.lifetime = lifetime
        self.retryInterval = retryInterval
        self.maxRequests = maxRequests
        self.maxWaiting = maxWaiting
        refreshMargin = min(lifetime / 4, .seconds(5))
        entries = Dictionary(minimumCapacity: capacity)
        waiting = []
        waiting.reserveCapacity(maxWaiting)
    }

    /// Where `ip`'s entry stands, in RFC 4861 7.3.2's terms as this design
    /// has them: INCOMPLETE while asked for; REACHABLE while trusted and not
    /// yet near expiry; DELAY near expiry (`refreshMargin`) with no unicast
    /// request sent yet; PROBE once one went; STALE past expiry, kept a
    /// `lifetime` longer but re-resolved before use. Nil: no entry.
    /// A learned entry not yet confirmed is STALE until its unicast
    /// solicitation goes, then PROBE.
    func state(of ip: Address, now: Instant) -> NeighbourState? {
        guard let e = entries[ip] else { return nil }
        guard e.mac != nil else { return .incomplete }
        if now >= e.expires { return .stale }
        if !e.confirmed { return e.requestsSent == 0 ? .stale : .probe }
        if now + refreshMargin < e.expires { return .reachable }
        return e.nextRequest + refreshMargin > e.expires ? .probe : .delay
    }

    /// The address for `ip` if resolved and fresh.
    func lookup(_ ip: Address, now: Instant) -> MACAddress? {
        guard let e = entries[ip], let mac = e.mac, now < e.expires else { return nil }
        return mac
    }

    /// `lookup` for a frame about to be sent: sets `refresh` when the entry
    /// is within `refreshMargin` of expiry and a unicast request to the
    /// returned address is due (recorded here). Writes the table only then.
    @inline(__always)
    mutating func lookup(_ ip: Address, now: Instant, refresh: inout Bool) -> MACAddress? {
        guard let e = entries[ip], let mac = e.mac, now < e.expires else { return nil }
        if now >= e.nextRequest {
            entries[ip]?.nextRequest = now + retryInterval
            entries[ip]?.requestsSent += 1
            refresh = true
        }
        return mac
    }

    /// A transport saw forward progress towards `ip`: a resolved entry is
    /// trusted for another `lifetime` (also just after it expired, while it
    /// is still kept: the address was proven). Returns true if there was one.
    @discardableResult
    mutating func confirm(_ ip: Address, now: Instant) -> Bool {
        guard var e = entries[ip], e.mac != nil else { return false }
        e.expires = now + lifetime
        e.nextRequest = now + (lifetime - refreshMargin)
        e.requestsSent = 0
        e.confirmed = true
        entries[ip] = e
        return true
    }

    var resolvedCount: Int { entries.values.count(where: { $0.mac != nil }) }

    /// Records `ip` at `mac`. RFC 826's merge: an existing entry is always
    /// refreshed; a new one is made only when `create` (we were the target,
    /// or we asked). Returns true if the table now holds the mapping.
    @discardableResult
    mutating func update(_ ip: Address, mac: MACAddress, now: Instant, create: Bool) -> Bool {
        if entries[ip] == nil {
            guard create else { return false }
            if entries.count >= capacity { evictOne(now: now) }
        }
        entries[ip] = Entry(mac: mac, expires: now + lifetime, requestsSent: 0,
                            nextRequest: now + (lifetime - refreshMargin))
        return true
    }

    /// Records `ip` at `mac` as told by a message that was not an answer
    /// (RFC 4861 7.2.3, 6.3.4): a new entry, or one whose address changed,
    /// or one still asked for, is STALE: usable now, and probed with a
    /// unicast request when traffic still goes to it after `refreshMargin`
    /// (DELAY_FIRST_PROBE_TIME, 5 s), its last chance `maxRequests` requests
    /// later; an entry already holding `mac` is left as it is.
    mutating func learn(_ ip: Address, mac: MACAddress, now: Instant) {
        if let e = entries[ip], e.mac == mac, now < e.expires { return }
        if entries[ip] == nil && entries.count >= capacity { evictOne(now: now) }
        entries[ip] = Entry(mac: mac, expires: now + refreshMargin + retryInterval * maxRequests, requestsSent: 0,
                            nextRequest: now + refreshMargin, confirmed: false)
    }

    /// Makes room: the stalest resolved entry goes first, pending ones only if none are resolved.
    private mutating func evictOne(now: Instant) {
        let victim = entries.min { a, b in
            switch (a.value.mac, b.value.mac) {
            case (.some, nil): true
            case (nil, .some): false
            default: a.value.expires < b.value.expires
            }
        }
        if let v = victim { entries[v.key] = nil }
    }

    /// Decides whether a request for `ip` should go out now, recording it if so.
    /// Makes a pending entry if there is none.
    mutating func shouldRequest(_ ip: Address, now: Instant) -> Bool {
        if var e = entries[ip], e.mac == nil || now >= e.expires {
            if e.mac != nil { e = Entry(mac: nil, expires: now, requestsSent: 0, nextRequest: now) }
            guard now >= e.nextRequest, e.requestsSent < maxRequests else {
                entries[ip] = e
                return false
            }
            e.requestsSent += 1
            e.nextRequest = now + retryInterval
            entries[ip] = e
            return true
        }
        if entries[ip] != nil { return false }
        if entries.count >= capacity { evictOne(now: now) }
        entries[ip] = Entry(mac: nil, expires: now, requestsSent: 1, nextRequest: now + retryInterval)
        return true
    }

    /// Parks a frame for `nextHop`. Returns the frame back when the queue is full.
    mutating func enqueue(_ packet: consuming PacketBuffer, nextHop: Address) -> PacketBuffer? {
        guard waiting.count < maxWaiting else { return packet }
        waiting.append(Waiting(packet: packet.park(), nextHop: nextHop))
        return nil
    }

    /// Removes and returns, in order, the frames waiting for `nextHop`.
    mutating func takeWaiting(for nextHop: Address, into out: inout [ParkedPacket]) {
        out.removeAll(keepingCapacity: true)
        var kept = 0
        for i in waiting.indices {
            if waiting[i].nextHop == nextHop {
                out.append(waiting[i].packet)
            } else {
                waiting[kept] = waiting[i]
                kept += 1
            }
        }
        waiting.removeLast(waiting.count - kept)
    }

    /// Next hops whose requests are due to be repeated, and next hops that have
    /// used up their requests or whose entry was evicted while frames waited
    /// (their entries are removed; the caller drops their frames).
    mutating func due(now: Instant, retry: inout [Address], failed: inout [Address]) {
        retry.removeAll(keepingCapacity: true)
        failed.removeAll(keepingCapacity: true)
        for (ip, var e) in entries where e.mac == nil && now >= e.nextRequest {
            if e.requestsSent >= maxRequests {
                failed.append(ip)
            } else {
                e.requestsSent += 1
                e.nextRequest = now + retryInterval
                entries[ip] = e
                retry.append(ip)
            }
        }
        for ip in failed { entries[ip] = nil }
        // Frames whose pending entry was evicted to make room have nobody asking for them.
        for w in waiting where entries[w.nextHop] == nil && !failed.contains(w.nextHop) { failed.append(w.nextHop) }
        // Expired resolved entries are forgotten; the next send re-resolves.
        for (ip, e) in entries where e.mac != nil && now >= e.expires + lifetime { entries[ip] = nil }
    }

    var waitingCount: Int { waiting.count }
}

/// Neighbour unreachability detection's states (RFC 4861 7.3.2).
enum NeighbourState: Sendable {
    case incomplete, reachable, stale, delay, probe
}

/// IPv4's neighbour table, resolved with ARP.
typealias ARPCache = NeighbourCache<IPv4Address>
/// IPv6's neighbour table, resolved with neighbour solicitations (RFC 4861 7.2).
typealias NDPCache = NeighbourCache<IPv6Address>
