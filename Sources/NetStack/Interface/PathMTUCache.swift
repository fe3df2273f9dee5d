import NetStackWire

/// The path MTUs IP has learned (RFC 1191 for IPv4, RFC 8201 for IPv6): per
/// destination, the largest packet a "packet too big" said the path takes,
/// and when that estimate ages out and the link MTU applies again.
///
/// Only a transport lowers an estimate, after it checked that the error
/// quotes something it sent (RFC 5927 4.1: a live connection, a sequence
/// number in flight); IP never does on its own. An estimate only goes down
/// (RFC 1191 3, RFC 8201 4): a report of a larger MTU is ignored. It never
/// goes below the family's floor: IPv4 552 bytes (Linux's `ip_rt_min_pmtu`,
/// 512 bytes of TCP data behind 40 of headers), IPv6 1280 (RFC 8201 4: a
/// smaller MTU reported is taken as 1280), nor above the link MTU. After
/// `lifetime` (10 minutes, RFC 1191 6.3, RFC 8201 5.3) an entry goes and
/// the link MTU is tried again; a path still narrow says so again.
///
/// Bounded: with `capacity` entries, a new one replaces the one learned
/// longest ago. Empty, it costs the send path one count check: no hashing.
struct PathMTUCache {
    struct Entry {
        var mtu: Int
        /// When it was last lowered: the oldest goes first when the table is full.
        var learned: Instant
        var expires: Instant
    }

    let capacity: Int
    let lifetime: Duration
    private(set) var entries: [IPAddress: Entry] = [:]
    /// No entry expires before this (an entry lowered again lives on, so it
    /// may be early; `expire` then finds nothing and looks again). Nil when empty.
    private(set) var nextExpiry: Instant?

    /// The smallest path MTU each family takes: IPv4 552 (Linux's
    /// `ip_rt_min_pmtu`; RFC 791's 576 less the options a header may carry),
    /// IPv6 1280 (RFC 8200 5).
    static func minimumMTU(for destination: IPAddress) -> Int {
        switch destination {
        case .v4: 552
        case .v6: 1280
        }
    }

    init(capacity: Int, lifetime: Duration) {
        precondition(capacity > 0, "a path MTU table holds at least one entry")
        self.capacity = capacity
        self.lifetime = lifetime
    }

    var isEmpty: Bool { entries.isEmpty }
    var count: Int { entries.count }

    /// The learned MTU towards `destination`, nil when none (the link's applies).
    @inline(__always)
    func mtu(towards destination: IPAddress) -> Int? {
        entries.isEmpty ? nil : entries[destination]?.mtu
    }

    /// A validated "packet too big" reported `reported` towards `destination`,
    /// over a link of `linkMTU`. Lowers the estimate to it, raised to the
    /// family's floor, and restarts its lifetime; returns the new MTU, or nil
    /// when that is no lower than the current estimate (nothing changes).
    /// `evicted` is set when a full table made room.
    mutating func lower(_ reported: Int, towards destination: IPAddress, linkMTU: Int, now: Instant,
                        evicted: inout Bool) -> Int? {
        let current = entries[destination]?.mtu ?? linkMTU
        let mtu = max(reported, Self.minimumMTU(for: destination))
        guard mtu < current else { return nil }
        if entries[destination] == nil && entries.count >= capacity {
            evictOldest()
            evicted = true
        }
        let expires = now + lifetime
        entries[destination] = Entry(mtu: mtu, learned: now, expires: expires)
        nextExpiry = min(nextExpiry ?? expires, expires)
        return mtu
    }

    /// Removes the entries whose lifetime is over; returns how many.
    mutating func expire(now: Instant) -> Int {
        guard let due = nextExpiry, now >= due else { return 0 }
        let before = entries.count
        entries = entries.filter { $0.value.expires > now }
        nextExpiry = entries.values.lazy.map(\.expires).min()
        return before - entries.count
    }

    private mutating func evictOldest() {
        guard let oldest = entries.min(by: { $0.value.learned < $1.value.learned }) else { return }
        entries[oldest.key] = nil
        if entries.isEmpty { nextExpiry = nil }
    }
}
