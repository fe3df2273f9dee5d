/// Which byte ranges past the receive point have arrived out of order.
///
/// RFC 9293 3.10.7.4 lets a receiver keep segment text that arrives ahead of a gap
/// ("segments with higher beginning sequence numbers SHOULD be held for later
/// processing") instead of dropping it and waiting for a retransmission. The bytes
/// themselves go straight into the receive `ByteRing` past its readable end
/// (`ByteRing.write(_:at:)`); this type remembers which of those bytes are valid,
/// so the receiver knows when the gap is filled and how far RCV.NXT can jump
/// (`takeFront()`), and so the SACK option (RFC 2018) can report the blocks held
/// (`ranges`, `mostRecent`). The design follows smoltcp's `Assembler`.
///
/// Offsets are relative to the current contiguous end of the received data, that is
/// to RCV.NXT: offset 0 is the next byte expected. Ranges are half-open
/// `[start, end)`, kept sorted, disjoint and non-adjacent (touching ranges are
/// merged), and never start below 0.
///
/// The number of disjoint ranges is bounded (`maxRanges`) and the storage is
/// reserved at `init`, so `add`, `takeFront` and `advance` never allocate (the
/// stack allocates nothing per packet). A segment that would need one range too
/// many is refused; the receiver drops it and the sender retransmits it, which is
/// what a receiver that does not queue out-of-order data would do anyway. (A
/// value type over an Array: keep one per connection and mutate it in place; the
/// first mutation of a copy would copy the storage.)
///
/// Typical receive path:
///
/// ```swift
/// let written = receiveBuffer.write(text, at: offset)      // offset = SEG.SEQ - RCV.NXT
/// if written > 0, assembler.add(offset: offset, length: written) {
///     let ready = assembler.takeFront()                      // > 0 once the gap is filled
///     receiveBuffer.commit(ready); rcvNxt += ready
/// }
/// ```
struct Assembler {
    /// The most disjoint ranges held at once.
    let maxRanges: Int
    /// Sorted, disjoint, non-adjacent; capacity reserved for `maxRanges`.
    private var storage: [(start: Int, end: Int)]
    /// Index in `storage` of the range holding the most recently added bytes, if
    /// that range is still held.
    private var mostRecentIndex: Int?

    /// Makes an empty assembler that can hold `maxRanges` disjoint ranges. It
    /// allocates once, for all of them, when the first range arrives (most
    /// connections never see data out of order).
    init(maxRanges: Int = 16) {
        precondition(maxRanges > 0, "Assembler needs room for at least one range")
        self.maxRanges = maxRanges
        storage = []
    }

    /// True when nothing past the receive point is held (no gap to fill).
    var isEmpty: Bool { storage.isEmpty }

    /// Gives the ranges' storage back while none is held (an idle connection).
    mutating func releaseStorageIfEmpty() {
        if storage.isEmpty && storage.capacity > 0 { storage = [] }
    }

    /// How many disjoint ranges are held.
    var rangeCount: Int { storage.count }

    /// The held ranges `[start, end)` in offset order (the SACK blocks, RFC 2018,
    /// once turned into sequence numbers). A view of the storage: iterating it
    /// allocates nothing, but do not keep it across a mutation, or the mutation
    /// will copy the storage.
    var ranges: Ranges { Ranges(storage: storage) }

    /// The held ranges as a random-access collection. Its own iterator, because
    /// iterating an Array (or an opaque collection over one) allocates per element
    /// in debug builds, and the tests hold every build to zero allocations.
    struct Ranges: RandomAccessCollection {
        typealias Element = (start: Int, end: Int)
        fileprivate let storage: [Element]

        var startIndex: Int { 0 }
        var endIndex: Int { storage.count }
        subscript(position: Int) -> Element { storage[position] }

        struct Iterator: IteratorProtocol {
            fileprivate let storage: [Element]
            fileprivate var index = 0
            mutating func next() -> Element? {
                guard index < storage.count else { return nil }
                index += 1
                return storage[index - 1]
            }
        }

        func makeIterator() -> Iterator { Iterator(storage: storage) }
    }

    /// The range that holds the most recently added bytes, or nil if those bytes
    /// have since been taken off the front. RFC 2018 section 4: "The first SACK
    /// block ... MUST specify the contiguous block of data containing the segment
    /// which triggered this ACK"; this is that block. Tracked as an index kept up
    /// to date by every mutation, so reading it costs nothing.
    var mostRecent: (start: Int, end: Int)? {
        mostRecentIndex.map { storage[$0] }
    }

    /// Whether every byte of `[offset, offset + length)` is already held: a
    /// duplicate, which D-SACK reports (RFC 2883 4).
    func contains(offset: Int, length: Int) -> Bool {
        guard length > 0 else { return false }
        return storage.contains { $0.start <= offset && offset + length <= $0.end }
    }

    /// Records that `[offset, offset + length)` has arrived, merging it with any
    /// range it overlaps or touches. Returns false, changing nothing, if the bytes
    /// would need more than `maxRanges` disjoint ranges. An empty range is accepted
    /// and changes nothing.
    mutating func add(offset: Int, length: Int) -> Bool {
        precondition(offset >= 0 && length >= 0, "Assembler.add: negative offset or length")
        guard length > 0 else { return true }
        let start = offset
        let end = offset + length
        // First range that overlaps or touches [start, end) or lies after it.
        var i = 0
        while i < storage.count && storage[i].end < start { i += 1 }
        // One past the last range that overlaps or touches it.
        var j = i
        while j < storage.count && storage[j].start <= end { j += 1 }

        if i == j {
            // Disjoint from everything: a new range at i.
            guard storage.count < maxRanges else { return false }
            insert((start, end), at: i)
        } else {
            storage[i] = (min(start, storage[i].start), max(end, storage[j - 1].end))
            remove(i + 1 ..< j)
        }
        mostRecentIndex = i
        return true
    }

    /// If a range starts at offset 0 (the gap before it is filled), removes it,
    /// shifts every other range down by its length, and returns that length: the
    /// bytes that are now in order, by which RCV.NXT advances (and which the
    /// receive ring should `commit`). Returns 0 otherwise.
    mutating func takeFront() -> Int {
        guard !storage.isEmpty, storage[0].start == 0 else { return 0 }
        let n = storage[0].end
        remove(0 ..< 1)
        for k in storage.indices {
            storage[k].start -= n
            storage[k].end -= n
        }
        if let m = mostRecentIndex { mostRecentIndex = m == 0 ? nil : m - 1 }
        return n
    }

    /// Moves the receive point forward by `n` bytes that arrived in order and were
    /// appended directly (not recorded here): forgets any coverage below offset
    /// `n`, then subtracts `n` from every offset. A range that reached past `n` is
    /// kept (cut to start at the new offset 0), and so is a range that started at
    /// exactly `n`; either now starts at 0, so follow with `takeFront()` to collect
    /// the held bytes that the new data joined up with.
    mutating func advance(by n: Int) {
        precondition(n >= 0, "Assembler.advance: negative length")
        guard n > 0 else { return }
        var dropped = 0
        while dropped < storage.count && storage[dropped].end <= n { dropped += 1 }
        remove(0 ..< dropped)
        for k in storage.indices {
            storage[k].start = max(storage[k].start - n, 0)
            storage[k].end -= n
        }
        if let m = mostRecentIndex { mostRecentIndex = m < dropped ? nil : m - dropped }
    }

    // Array's `insert(_:at:)`, `removeFirst()`, `removeSubrange(_:)`, `first` and
    // `last` allocate in debug builds (unspecialised generic paths); subscripts,
    // `append` within the reserved capacity and `removeLast(_:)` do not, so the
    // shifting is done by hand. At most `maxRanges` elements move.

    /// Inserts `range` at `index`, moving the later ranges up. Needs spare capacity.
    private mutating func insert(_ range: (start: Int, end: Int), at index: Int) {
        if storage.capacity == 0 { storage.reserveCapacity(maxRanges) }
        let count = storage.count
        guard count > 0 else { storage.append(range); return }
        storage.append(storage[count - 1])
        var k = storage.count - 2
        while k > index {
            storage[k] = storage[k - 1]
            k -= 1
        }
        storage[index] = range
    }

    /// Removes the ranges at `indices`, moving the later ones down.
    private mutating func remove(_ indices: Range<Int>) {
        let n = indices.count
        guard n > 0 else { return }
        var k = indices.lowerBound
        while k + n < storage.count {
            storage[k] = storage[k + n]
            k += 1
        }
        storage.removeLast(n)
    }

    /// Forgets every range (connection reset or reuse); keeps the storage.
    mutating func removeAll() {
        storage.removeAll(keepingCapacity: true)
        mostRecentIndex = nil
    }
}
