import NetStackWire

/// The multicast groups the interface listens to beyond all-nodes (its
/// addresses' solicited-node groups), and the MLDv2 reports it owes the
/// link's routers (RFC 3810 6): each join or leave is reported at once and
/// `robustness - 1` more times, `unsolicitedReportInterval` apart (6.1); a
/// query is answered with the groups' current state after a delay drawn
/// within its maximum response delay (6.2), one answer pending at a time,
/// widened to every group by a general query. All-nodes is never reported
/// (6). A version 1 query is answered in version 2 too: this host keeps no
/// compatibility mode (8.2), which only an MLDv1-only router would need.
struct MulticastListener {
    static let robustness = 2
    static let unsolicitedReportInterval: Duration = .seconds(1)

    /// A state change still to be reported.
    struct Change: Equatable {
        var group: IPv6Address
        var joined: Bool
        var reportsLeft: Int
    }

    private(set) var groups: [IPv6Address] = []
    private(set) var changes: [Change] = []
    private(set) var nextChangeReport: Instant?
    /// When the answer to a query is due, and for which group (nil: all).
    private(set) var queryAnswer: (at: Instant, group: IPv6Address?)?

    /// Starts listening to `group`; true if it was new (a report is due now).
    @discardableResult
    mutating func join(_ group: IPv6Address, now: Instant) -> Bool {
        guard !groups.contains(group) else { return false }
        groups.append(group)
        noteChange(group, joined: true, now: now)
        return true
    }

    /// Stops listening to `group`; true if it was joined.
    @discardableResult
    mutating func leave(_ group: IPv6Address, now: Instant) -> Bool {
        guard let i = groups.firstIndex(of: group) else { return false }
        groups.remove(at: i)
        noteChange(group, joined: false, now: now)
        return true
    }

    private mutating func noteChange(_ group: IPv6Address, joined: Bool, now: Instant) {
        changes.removeAll { $0.group == group }
        changes.append(Change(group: group, joined: joined, reportsLeft: Self.robustness))
        nextChangeReport = now
    }

    /// A query for `group` (unspecified: general) that allows `maximumDelay`:
    /// an answer is scheduled `fraction` (0 ..< 1) of the way into it, unless
    /// one is due sooner; nothing for a group not joined (6.2).
    mutating func query(group: IPv6Address, maximumDelay: Duration, fraction: Double, now: Instant) {
        let asked: IPv6Address? = group.isUnspecified ? nil : group
        if let g = asked, !groups.contains(g) { return }
        if groups.isEmpty { return }
        let at = now + maximumDelay * max(0, min(fraction, 1))
        if let pending = queryAnswer {
            // One answer covers both: the sooner time, every group if either asked for all.
            let group: IPv6Address? = pending.group == asked ? asked : nil
            queryAnswer = (min(pending.at, at), group)
        } else {
            queryAnswer = (at, asked)
        }
    }

    var nextDeadline: Instant? {
        switch (nextChangeReport, queryAnswer?.at) {
        case let (a?, b?): min(a, b)
        case let (a?, nil): a
        case let (nil, b?): b
        case (nil, nil): nil
        }
    }

    /// The records of the reports due at `now`: state changes (if due) and
    /// the answer to a query (if due), as separate reports.
    mutating func due(now: Instant) -> (changes: [(type: UInt8, group: IPv6Address)],
                                        current: [(type: UInt8, group: IPv6Address)]) {
        var changed: [(type: UInt8, group: IPv6Address)] = []
        if let t = nextChangeReport, now >= t {
            for i in changes.indices {
                changed.append((changes[i].joined ? MLDRecordType.changeToExclude : MLDRecordType.changeToInclude,
                                changes[i].group))
                changes[i].reportsLeft -= 1
            }
            changes.removeAll { $0.reportsLeft == 0 }
            nextChangeReport = changes.isEmpty ? nil : now + Self.unsolicitedReportInterval
        }
        var current: [(type: UInt8, group: IPv6Address)] = []
        if let q = queryAnswer, now >= q.at {
            queryAnswer = nil
            for g in groups where q.group == nil || q.group == g { current.append((MLDRecordType.modeIsExclude, g)) }
        }
        return (changed, current)
    }
}
