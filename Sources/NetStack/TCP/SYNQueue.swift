/// A listener's half-open connections (SYN-RECEIVED), oldest first: a list
/// threaded through the connections themselves (`TCPConnection.synQueueLink`),
/// so joining, leaving and finding the oldest cost O(1) and nothing is
/// allocated.
///
/// Under a SYN flood the queue fills with entries whose peers never answer.
/// Two rules keep it from locking real clients out (Linux's
/// `reqsk_timer_handler` and the RFC 4987 3.3-3.4 ideas of a shorter timer
/// and of dropping the oldest):
/// - An entry is young until its SYN-ACK is first resent: a real peer answers
///   within a round trip, so one that has not for a whole RTO is likely
///   spoofed. Without SYN cookies a SYN arriving at a full queue evicts the
///   oldest entry if it is no longer young (`TCPLayer`); with them the SYN
///   gets a cookie.
/// - When more than half full, entries retry their SYN-ACK fewer times, the
///   fewer the smaller the young share (`synAckRetryLimit`).
struct SYNQueue {
    /// The links one connection carries while it waits in a listener's queue.
    struct Link {
        var queued = false
        /// Its SYN-ACK has not been resent yet.
        var young = false
        /// The next younger entry. Strong: the queue keeps the chain.
        var next: TCPConnection?
        /// The next older entry; the queue holds it through the chain.
        unowned(unsafe) var previous: TCPConnection?
    }

    private(set) var count = 0
    /// Entries whose SYN-ACK has not been resent.
    private(set) var youngCount = 0
    /// The oldest entry.
    private(set) var oldest: TCPConnection?
    private unowned(unsafe) var newest: TCPConnection?

    /// Adds `c`, young, at the new end.
    mutating func append(_ c: TCPConnection) {
        precondition(!c.synQueueLink.queued, "a connection waits in one SYN queue at most")
        c.synQueueLink = Link(queued: true, young: true, next: nil, previous: newest)
        if let n = newest { n.synQueueLink.next = c } else { oldest = c }
        newest = c
        count += 1
        youngCount += 1
    }

    /// Takes `c` out, if it is in the queue (established, closed, or evicted).
    mutating func remove(_ c: TCPConnection) {
        guard c.synQueueLink.queued else { return }
        let link = c.synQueueLink
        c.synQueueLink = Link()
        if let p = link.previous { p.synQueueLink.next = link.next } else { oldest = link.next }
        if let n = link.next { n.synQueueLink.previous = link.previous } else { newest = link.previous }
        count -= 1
        if link.young { youngCount -= 1 }
    }

    /// `c`'s SYN-ACK went unanswered for an RTO and is being resent.
    mutating func markOld(_ c: TCPConnection) {
        guard c.synQueueLink.queued, c.synQueueLink.young else { return }
        c.synQueueLink.young = false
        youngCount -= 1
    }

    /// The SYN-ACK retransmissions an entry gets now, out of `configured`
    /// (Linux's `reqsk_timer_handler`): all of them while the queue is at most
    /// half full of `capacity`; beyond, one fewer for each halving of the
    /// young share below a half, down to two.
    func synAckRetryLimit(capacity: Int, configured: Int) -> Int {
        var limit = configured
        guard 2 * count > max(8, capacity) else { return limit }
        var young = 2 * youngCount
        while limit > 2 && count >= young {
            limit -= 1
            young <<= 1
        }
        return limit
    }

    /// The entries, oldest first (tests, and dropping those toward an unreachable peer).
    var entries: [TCPConnection] {
        var out: [TCPConnection] = []
        out.reserveCapacity(count)
        var c = oldest
        while let e = c {
            out.append(e)
            c = e.synQueueLink.next
        }
        return out
    }
}
