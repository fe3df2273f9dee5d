import NetStackWire

#if canImport(Glibc)
import Glibc
#endif

/// Puts fragmented IPv4 datagrams back together (RFC 791 section 3.2, RFC 815).
///
/// Memory is bounded: at most `maxDatagrams` datagrams are in progress, each in
/// a 64 KiB buffer allocated on first use and then reused. Each keeps a short
/// sorted list of the byte ranges received, merged as they touch.
///
/// A fragment wholly inside data already received is a harmless duplicate and
/// is ignored. A fragment that partly overlaps received data discards the whole
/// datagram: overlaps are how teardrop-style attacks hide data from filters,
/// and no correct sender produces them (the rule RFC 5722 made for IPv6, which
/// Linux applies to IPv4 too). Incomplete datagrams are discarded after
/// `timeout` (RFC 791 suggests 15 s as the initial timer; Linux uses 30 s).
final class IPv4Reassembler {
    struct Key: Hashable {
        var source: IPv4Address
        var destination: IPv4Address
        var identification: UInt16
        var proto: UInt8
    }

    enum Outcome {
        /// More fragments are needed.
        case incomplete
        /// The datagram in slot `index` is whole; read it with `withDatagram`, then `release`.
        case complete(Int)
        case dropped(DropReason)
    }

    /// The largest IPv4 payload: 65535 minus a 20-byte header.
    static let maxPayload = 65535 - 20
    static let maxRanges = 32

    struct Entry {
        var key: Key
        var ranges: [Range<Int>]
        /// Payload length, known once the last fragment (MF clear) arrives.
        var totalLength: Int?
        var deadline: Instant
        /// The first fragment's header plus 8 bytes of payload, for ICMP
        /// time-exceeded (RFC 792), or empty until offset 0 arrives.
        var firstHeaderLength: Int
        var firstBytesLength: Int
        /// A fragment came in a link-layer broadcast or multicast frame: the
        /// datagram is never answered with an ICMP error (RFC 1122 3.2.2).
        var linkBroadcast = false
    }

    let maxDatagrams: Int
    let timeout: Duration
    private var entries: [Entry?]
    private var buffers: [UnsafeMutableRawPointer?]
    private var firstBytes: [UnsafeMutableRawPointer]
    private static let firstBytesCapacity = 60 + 8

    init(maxDatagrams: Int, timeout: Duration) {
        self.maxDatagrams = maxDatagrams
        self.timeout = timeout
        entries = Array(repeating: nil, count: maxDatagrams)
        buffers = Array(repeating: nil, count: maxDatagrams)
        firstBytes = (0..<maxDatagrams).map { _ in .allocate(byteCount: Self.firstBytesCapacity, alignment: 8) }
    }

    deinit {
        for b in buffers { b?.deallocate() }
        for b in firstBytes { b.deallocate() }
    }

    var inProgress: Int { entries.count(where: { $0 != nil }) }

    /// Adds one fragment. `packet` must be a fragment (`isFragment`) whose
    /// header checksum verified; `linkBroadcast`: it came in a link-layer
    /// broadcast or multicast frame.
    func insert(_ packet: IPv4Packet, linkBroadcast: Bool = false, now: Instant) -> Outcome {
        let key = Key(source: packet.source, destination: packet.destination,
                      identification: packet.identification, proto: packet.protocol.rawValue)
        let data = packet.payload
        let start = packet.fragmentOffset
        let end = start + data.count
        let last = !packet.moreFragments
        // Every fragment but the last carries a multiple of 8 bytes (RFC 791 3.2).
        guard last || (data.count > 0 && data.count % 8 == 0) else { return .dropped(.fragmentBadLength) }
        guard end <= Self.maxPayload else { return .dropped(.fragmentTooLarge) }

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
            let header = packet.header
            let n = min(header.count + 8, header.count + data.count)
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
    func release(_ index: Int) { entries[index] = nil }

    /// Discards datagrams past their deadline, calling `expired` with the
    /// first fragment's header and 8 bytes (empty if it never came, or if a
    /// fragment came in a link-layer broadcast: nothing to answer then).
    func expire(now: Instant, _ expired: (UnsafeMutableRawBufferPointer) -> Void) {
        for i in entries.indices {
            guard let e = entries[i], now >= e.deadline else { continue }
            expired(UnsafeMutableRawBufferPointer(start: firstBytes[i], count: e.linkBroadcast ? 0 : e.firstBytesLength))
            entries[i] = nil
        }
    }

    /// The earliest deadline, for the event loop's sleep.
    var nextDeadline: Instant? { entries.compactMap { $0?.deadline }.min() }

    private func discard(_ index: Int) { entries[index] = nil }

    private func slot(for key: Key, now: Instant) -> Int? {
        if let i = entries.firstIndex(where: { $0?.key == key }) { return i }
        guard let i = entries.firstIndex(where: { $0 == nil }) else { return nil }
        if buffers[i] == nil {
            buffers[i] = .allocate(byteCount: Self.maxPayload, alignment: 16)
        }
        var ranges: [Range<Int>] = []
        ranges.reserveCapacity(Self.maxRanges)
        entries[i] = Entry(key: key, ranges: ranges, totalLength: nil, deadline: now + timeout,
                           firstHeaderLength: 0, firstBytesLength: 0)
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
