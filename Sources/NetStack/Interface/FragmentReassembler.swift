import NetStackWire

#if canImport(Glibc)
import Glibc
#endif

/// Puts fragmented datagrams back together: IPv4's (RFC 791 section 3.2,
/// RFC 815) and IPv6's (RFC 8200 4.5), keyed by what identifies a datagram
/// in each family (`IPv4Reassembler`, `IPv6Reassembler`).
///
/// Memory is bounded: at most `maxDatagrams` datagrams are in progress, each in
/// a 64 KiB buffer allocated on first use and then reused. Each keeps a short
/// sorted list of the byte ranges received, merged as they touch.
///
/// A fragment wholly inside data already received is a harmless duplicate and
/// is ignored. A fragment that partly overlaps received data discards the whole
/// datagram: overlaps are how teardrop-style attacks hide data from filters,
/// and no correct sender produces them (RFC 5722 for IPv6, which Linux
/// applies to IPv4 too). Incomplete datagrams are discarded after `timeout`
/// (RFC 791 suggests 15 s as the initial timer, Linux uses 30 s; RFC 8200
/// 4.5 says 60 s).
final class FragmentReassembler<Key: Hashable> {
    enum Outcome {
        /// More fragments are needed.
        case incomplete
        /// The datagram in slot `index` is whole; read it with `withDatagram`, then `release`.
        case complete(Int)
        case dropped(DropReason)
    }

    /// Ranges kept per datagram before it is given up.
    static var maxRanges: Int { 32 }

    struct Entry {
        var key: Key
        var ranges: [Range<Int>]
        /// Payload length, known once the last fragment (MF clear) arrives.
        var totalLength: Int?
        var deadline: Instant
        /// The first fragment's header (IPv6: its unfragmentable part) and
        /// the start of its payload, for ICMP time-exceeded (RFC 792, RFC
        /// 4443 3.3) and the delivered datagram, or empty until offset 0 arrives.
        var firstHeaderLength: Int
        var firstBytesLength: Int
        /// A fragment came in a link-layer broadcast or multicast frame: the
        /// datagram is never answered with an ICMP error (RFC 1122 3.2.2).
        var linkBroadcast = false
    }

    let maxDatagrams: Int
    let timeout: Duration
    /// The largest payload a datagram may have put back together.
    let maxPayload: Int
    /// How much of the first fragment is kept: its header and what the
    /// family's ICMP errors quote of the payload.
    let firstBytesCapacity: Int
    /// How much of the first fragment's payload is kept behind its header.
    let quotedPayload: Int
    private var entries: [Entry?]
    /// Datagrams in progress: `nextDeadline`, asked on every turn of the
    /// loop, answers at once while there are none (a scan of every slot's
    /// optional, unspecialised, was 1.4% of the CPU samples of tcp-rr
    /// through the library, a quarter of the loop's own).
    private(set) var inProgress = 0
    private var buffers: [UnsafeMutableRawPointer?]
    private var firstBytes: [UnsafeMutableRawPointer]

    init(maxDatagrams: Int, timeout: Duration, maxPayload: Int, firstBytesCapacity: Int, quotedPayload: Int) {
        self.maxDatagrams = maxDatagrams
        self.timeout = timeout
        self.maxPayload = maxPayload
        self.firstBytesCapacity = firstBytesCapacity
        self.quotedPayload = quotedPayload
        entries = Array(repeating: nil, count: maxDatagrams)
        buffers = Array(repeating: nil, count: maxDatagrams)
        firstBytes = (0..<maxDatagrams).map { _ in .allocate(byteCount: firstBytesCapacity, alignment: 8) }
    }

    deinit {
        for b in buffers { b?.deallocate() }
        for b in firstBytes { b.deallocate() }
    }

    /// Adds one fragment of datagram `key`: `data` at byte `start` of the
    /// payload, the last one unless `more`. `header` is what precedes the
    /// fragmentable part (kept from the first fragment); `linkBroadcast`: it
    /// came in a link-layer broadcast or multicast frame.
    func insert(key: Key, start: Int, data: UnsafeMutableRawBufferPointer, more: Bool,
                header: UnsafeMutableRawBufferPointer, linkBroadcast: Bool = false, now: Instant) -> Outcome {
        let end = start + data.count
        let last = !more
        // Every fragment but the last carries a multiple of 8 bytes (RFC 791 3.2, RFC 8200 4.5).
        guard last || (data.count > 0 && data.count % 8 == 0) else { return .dropped(.fragmentBadLength) }
        guard end <= maxPayload else { return .dropped(.fragmentTooLarge) }
        guard start > 0 || header.count <= firstBytesCapacity else {
            return .dropped(.fragmentTooLarge)
        }

        guard let index = slot(for: key, now: now) else { return .dropped(.reassemblyNoSpace) }
        // Taken out while it changes, so its range list is not copied on write.
        var e = entries[index].take()!

        if let total = e.totalLength, end > total || (last && end != total) {
            discard(index)
            return .dropped(.fragmentBadLength)
        }
        if last {
            if let r = e.ranges.last, r.upperBound > end {
                discard(index)
                return .dropped(.fragmentBadLength)
            }
            e.totalLength = end
        }

        if !data.isEmpty {
            let r = start..<end
            if e.ranges.contains(where: { $0.lowerBound <= r.lowerBound && r.upperBound <= $0.upperBound }) {
                entries[index] = e
                return .dropped(.fragmentDuplicate)
            }
            if e.ranges.contains(where: { $0.overlaps(r) }) {
                discard(index)
                return .dropped(.fragmentOverlap)
            }
            guard e.ranges.count < Self.maxRanges else {
                discard(index)
                return .dropped(.reassemblyNoSpace)
            }
            let buffer = buffers[index]!
            (buffer + start).copyMemory(from: data.baseAddress!, byteCount: data.count)
            insertRange(r, into: &e.ranges)
        }

        if start == 0 {
            let n = header.count + min(quotedPayload, data.count, firstBytesCapacity - header.count)
            let dst = firstBytes[index]
            dst.copyMemory(from: header.baseAddress!, byteCount: header.count)
            if n > header.count {
                (dst + header.count).copyMemory(from: data.baseAddress!, byteCount: n - header.count)
            }
            e.firstHeaderLength = header.count
            e.firstBytesLength = n
        }
        if linkBroadcast { e.linkBroadcast = true }
        entries[index] = e

        if let total = e.totalLength, e.ranges.count == 1, e.ranges[0] == 0..<total {
            return .complete(index)
        }
        return .incomplete
    }

    /// Calls `body` with the whole datagram's key, first header and payload.
    func withDatagram<R>(_ index: Int, _ body: (Key, UnsafeMutableRawBufferPointer, UnsafeMutableRawBufferPointer) -> R) -> R {
        let e = entries[index]!
        let header = UnsafeMutableRawBufferPointer(start: firstBytes[index], count: e.firstHeaderLength)
        let payload = UnsafeMutableRawBufferPointer(start: buffers[index]!, count: e.totalLength ?? 0)
        return body(e.key, header, payload)
    }

    /// Some fragment of the datagram in slot `index` came in a link-layer broadcast or multicast frame.
    func arrivedInLinkBroadcast(_ index: Int) -> Bool { entries[index]?.linkBroadcast ?? false }

    /// Frees the slot of a completed datagram.
    func release(_ index: Int) { discard(index) }

    /// Discards datagrams past their deadline, calling `expired` with the
    /// first fragment's header and 8 bytes (empty if it never came, or if a
    /// fragment came in a link-layer broadcast: nothing to answer then).
    func expire(now: Instant, _ expired: (UnsafeMutableRawBufferPointer) -> Void) {
        for i in entries.indices {
            guard let e = entries[i], now >= e.deadline else { continue }
            expired(UnsafeMutableRawBufferPointer(start: firstBytes[i], count: e.linkBroadcast ? 0 : e.firstBytesLength))
            discard(i)
        }
    }

    /// The earliest deadline, for the event loop's sleep.
    var nextDeadline: Instant? {
        guard inProgress > 0 else { return nil }
        var earliest: Instant?
        for case let e? in entries where earliest.map({ e.deadline < $0 }) ?? true { earliest = e.deadline }
        return earliest
    }

    /// Ends the datagram in progress in slot `index` (its entry may be
    /// taken out by `insert` meanwhile).
    private func discard(_ index: Int) {
        entries[index] = nil
        inProgress -= 1
    }

    private func slot(for key: Key, now: Instant) -> Int? {
        if let i = entries.firstIndex(where: { $0?.key == key }) { return i }
        guard let i = entries.firstIndex(where: { $0 == nil }) else { return nil }
        if buffers[i] == nil {
            buffers[i] = .allocate(byteCount: maxPayload, alignment: 16)
        }
        var ranges: [Range<Int>] = []
        ranges.reserveCapacity(Self.maxRanges)
        entries[i] = Entry(key: key, ranges: ranges, totalLength: nil, deadline: now + timeout,
                           firstHeaderLength: 0, firstBytesLength: 0)
        inProgress += 1
        return i
    }

    /// Inserts a range known not to overlap, merging with neighbours it touches.
    private func insertRange(_ r: Range<Int>, into ranges: inout [Range<Int>]) {
        var i = ranges.firstIndex(where: { $0.lowerBound > r.lowerBound }) ?? ranges.endIndex
        ranges.insert(r, at: i)
        if i > 0, ranges[i - 1].upperBound == ranges[i].lowerBound {
            ranges[i - 1] = ranges[i - 1].lowerBound..<ranges[i].upperBound
            ranges.remove(at: i)
            i -= 1
        }
        if i + 1 < ranges.count, ranges[i].upperBound == ranges[i + 1].lowerBound {
            ranges[i] = ranges[i].lowerBound..<ranges[i + 1].upperBound
            ranges.remove(at: i + 1)
        }
    }
}

/// What identifies an IPv4 datagram's fragments (RFC 791 3.2).
struct IPv4FragmentKey: Hashable {
    var source: IPv4Address
    var destination: IPv4Address
    var identification: UInt16
    var proto: UInt8
}

/// What identifies an IPv6 datagram's fragments (RFC 8200 4.5).
struct IPv6FragmentKey: Hashable {
    var source: IPv6Address
    var destination: IPv6Address
    var identification: UInt32
}

typealias IPv4Reassembler = FragmentReassembler<IPv4FragmentKey>
typealias IPv6Reassembler = FragmentReassembler<IPv6FragmentKey>

extension FragmentReassembler where Key == IPv4FragmentKey {
    /// IPv4's: payloads up to 65535 less a 20-byte header; the first
    /// fragment's header (with options) and 8 bytes kept (RFC 792).
    convenience init(maxDatagrams: Int, timeout: Duration) {
        self.init(maxDatagrams: maxDatagrams, timeout: timeout, maxPayload: 65535 - 20,
                  firstBytesCapacity: 60 + 8, quotedPayload: 8)
    }

    /// Adds one IPv4 fragment (`isFragment`) whose header checksum verified.
    func insert(_ packet: IPv4Packet, linkBroadcast: Bool = false, now: Instant) -> Outcome {
        let key = IPv4FragmentKey(source: packet.source, destination: packet.destination,
                                  identification: packet.identification, proto: packet.protocol.rawValue)
        return insert(key: key, start: packet.fragmentOffset, data: packet.payload, more: packet.moreFragments,
                      header: packet.header, linkBroadcast: linkBroadcast, now: now)
    }
}

extension FragmentReassembler where Key == IPv6FragmentKey {
    /// IPv6's: payloads up to 65535; the first fragment's unfragmentable
    /// part and as much of its payload as an ICMPv6 error quotes (RFC 4443
    /// 2.4(c): the error within the minimum MTU of 1280).
    convenience init(maxDatagrams: Int, timeout: Duration) {
        self.init(maxDatagrams: maxDatagrams, timeout: timeout, maxPayload: 65535,
                  firstBytesCapacity: 1280 - 48, quotedPayload: 1280 - 48)
    }
}
