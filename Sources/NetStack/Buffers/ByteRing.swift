#if canImport(Glibc)
import Glibc
#endif

/// A byte ring buffer: the memory behind a TCP connection's send and receive
/// buffers, and a UDP socket's receive queue.
///
/// Its storage is allocated on first use and grows on demand, doubling, up
/// to `capacity`: a connection that never carries data holds no ring memory,
/// and one that carries little holds little, while a bulk transfer's ring
/// reaches its working size in a few doublings and then stays there (the
/// stack promises zero allocations per packet in steady state, DESIGN.md).
/// Growing copies the bytes once, unwrapped to the front of the new storage,
/// so every offset from the front keeps its meaning (out-of-order text
/// written past the end included). Sizes are powers of two so that positions
/// wrap with a mask instead of a division. Storage replaced by growth is
/// kept until `releaseReplacedStorage()` when `keepsReplacedStorage` is set:
/// a device may still be reading frame tails from it (the send buffer).
///
/// The ring holds `count` readable bytes starting at the front. The rest of the
/// storage (`freeSpace` bytes past the readable end) can be written in two ways:
///
/// - `append(_:)` copies bytes to the readable end and makes them readable at once
///   (the application writing into the send buffer; in-order segment text).
/// - `write(_:at:)` copies bytes to `offset` bytes past the readable end *without*
///   making them readable, and `commit(_:)` later makes a prefix readable. This is
///   how the receiver stores out-of-order segment text in place (RFC 9293
///   3.10.7.4: "segments with higher beginning sequence numbers SHOULD be held for
///   later processing"), so no segment is ever copied twice. Which ranges past the
///   end actually hold data is not the ring's business: an `Assembler` tracks it.
///
/// Bytes written past the end stay where they are while the front is consumed: the
/// position of "offset k past the end" depends only on where the end is, and only
/// `append` and `commit` move the end. An `append` overwrites what was written at
/// offsets below the appended length, and moves later offsets down by that length.
///
/// Readers get at the bytes without a copy through `peek`, which returns the range
/// as at most two pieces (the second one non-empty only when the range wraps the end
/// of the storage), so TCP output copies payload straight from the ring into a
/// packet slot and retransmission rebuilds from the same bytes until they are
/// acknowledged (`consume`).
///
/// With a `MemoryBudget`, storage is charged to it, and the ring grows only
/// as far as the budget allows: `freeSpace` counts the bytes the ring can
/// hold now, so a receive window advertised from it shrinks near the limit.
///
/// Not thread-safe: like everything else in a stack, it belongs to one event loop.
final class ByteRing {
    /// The most bytes the ring holds: the requested capacity rounded up to a power of two.
    let capacity: Int
    /// The first allocation's size (or `capacity`, if smaller).
    static let initialStorage = 4096
    /// The storage allocated now, a power of two up to `capacity`; 0 before first use.
    private(set) var allocatedBytes = 0
    /// `allocatedBytes - 1`; positions are reduced modulo the storage size by masking with this.
    private var mask = 0
    private var storage: UnsafeMutableRawPointer?
    /// Storage index of the first readable byte, always in `0..<allocatedBytes`.
    private var head: Int = 0
    /// Readable bytes, from `head`.
    private(set) var count: Int = 0
    /// Whether storage replaced by growth waits for `releaseReplacedStorage()`.
    let keepsReplacedStorage: Bool
    private var replaced: [(storage: UnsafeMutableRawPointer, bytes: Int)] = []
    /// Where storage is charged; nil: nowhere.
    private let budget: MemoryBudget?
    /// Storage the owner paid for in advance (a connection's first ring
    /// allocation, charged when it was admitted): only storage beyond it is
    /// charged.
    private let prepaid: Int
    /// What this ring has charged to `budget`: `heldBytes` beyond `prepaid`.
    private var chargedBytes = 0
    /// Replaced storage still kept.
    private var replacedBytes: Int { replaced.reduce(0) { $0 + $1.bytes } }
    /// Storage held now: the current storage and replaced storage kept.
    private var heldBytes: Int { allocatedBytes + replacedBytes }

    /// Makes a ring of at least `capacity` bytes (rounded up to a power of two),
    /// allocating nothing until bytes are written. `prepaid`: storage already
    /// paid for in `budget`.
    init(capacity: Int, keepsReplacedStorage: Bool = false, budget: MemoryBudget? = nil, prepaid: Int = 0) {
        precondition(capacity > 0, "ByteRing capacity must be positive")
        precondition(capacity <= 1 << (Int.bitWidth - 2), "ByteRing capacity too large")
        self.capacity = Self.capacity(for: capacity)
        self.keepsReplacedStorage = keepsReplacedStorage
        self.budget = budget
        self.prepaid = budget == nil ? 0 : prepaid
    }

    deinit {
        if let storage { free(storage, bytes: allocatedBytes) }
        for r in replaced { free(r.storage, bytes: r.bytes) }
        budget?.release(chargedBytes)
    }

    /// Storage of one page, for a ring with a budget, comes from the
    /// budget's `RingPages` (so that an idle connection's gives its memory
    /// back to the system); the rest from the allocator.
    private func allocate(bytes: Int) -> UnsafeMutableRawPointer {
        if let budget, bytes == RingPages.pageSize { return budget.pages.take() }
        // Page-aligned (cache-line aligned when smaller than a page): copies
        // out of the ring start on a line boundary, and storage given back
        // is whole pages the allocator can return to the system.
        return UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: bytes >= 4096 ? 4096 : 64)
    }

    private func free(_ storage: UnsafeMutableRawPointer, bytes: Int) {
        if let budget, bytes == RingPages.pageSize { budget.pages.give(storage) } else { storage.deallocate() }
    }

    /// After the storage held changed: charges or releases what lies beyond
    /// `prepaid`.
    private func recharge() {
        guard let budget else { return }
        let charge = max(0, heldBytes - prepaid)
        if charge > chargedBytes {
            budget.chargeUnconditionally(charge - chargedBytes)
        } else if charge < chargedBytes {
            budget.release(chargedBytes - charge)
        }
        chargedBytes = charge
    }

    /// The capacity a ring asked for `requested` bytes gets: the next power of two.
    static func capacity(for requested: Int) -> Int {
        requested <= 1 ? 1 : 1 << (Int.bitWidth - (requested - 1).leadingZeroBitCount)
    }

    /// Gives the storage back while the ring is empty (an idle connection's):
    /// the next write allocates again. Storage growth replaced is unaffected.
    /// Returns the bytes released.
    @discardableResult
    func releaseStorageIfEmpty() -> Int {
        guard count == 0, let old = storage else { return 0 }
        let released = allocatedBytes
        free(old, bytes: released)
        storage = nil
        allocatedBytes = 0
        mask = 0
        head = 0
        recharge()
        return released
    }

    /// Frees the storage growth replaced (once nothing reads frame tails from it).
    func releaseReplacedStorage() {
        for r in replaced { free(r.storage, bytes: r.bytes) }
        replaced.removeAll(keepingCapacity: true)
        recharge()
    }

    /// Whether growth left storage waiting for `releaseReplacedStorage()`.
    var hasReplacedStorage: Bool { !replaced.isEmpty }

    /// Makes the storage hold at least `end` bytes from the front, growing it
    /// (a power of two, at most `capacity`) and moving the bytes to its start.
    @inline(__always)
    private func reserve(_ end: Int) {
        if end > allocatedBytes { grow(to: end) }
    }

    private func grow(to end: Int) {
        let size = min(capacity, max(Self.capacity(for: end), min(capacity, Self.initialStorage)))
        let bigger = allocate(bytes: size)
        if let old = storage {
            // Unwrapped: offset k from the front is at index k, for every k
            // the old storage held (bytes written past the end included).
            let first = allocatedBytes - head
            memcpy(bigger, old + head, first)
            if head > 0 { memcpy(bigger + first, old, head) }
            if keepsReplacedStorage {
                replaced.append((old, allocatedBytes))
            } else {
                free(old, bytes: allocatedBytes)
            }
        }
        storage = bigger
        allocatedBytes = size
        mask = size - 1
        head = 0
        // `freeSpace` let no write past `reachableStorage`, which fits the budget.
        recharge()
    }

    /// Bytes that can still be appended (or written past the readable end):
    /// up to `capacity`, or as far as the budget lets the storage grow.
    var freeSpace: Int { reachableStorage - count }

    var isEmpty: Bool { count == 0 }

    var isFull: Bool { freeSpace == 0 }

    /// The largest storage the ring may have now: `capacity`, unless a
    /// budget with a limit stops growth earlier. Growth goes straight to its
    /// final size (one allocation); the storage it replaces is freed at once
    /// or, when kept, still held.
    private var reachableStorage: Int {
        guard let budget, budget.limit != nil, allocatedBytes < capacity else { return capacity }
        // Held after growing to `size`: size, plus what is kept. Charged: that
        // beyond `prepaid`, which may exceed what is charged now by `available`.
        let stillHeld = keepsReplacedStorage ? heldBytes : replacedBytes
        let bound = min(capacity, budget.available + chargedBytes + prepaid - stillHeld)
        var size = bound < 1 ? 0 : 1 << (Int.bitWidth - 1 - bound.leadingZeroBitCount)
        if size < min(capacity, Self.initialStorage) { size = 0 }
        return max(allocatedBytes, size)
    }


    // MARK: Writing

    /// Copies in as many of `bytes` as fit, makes them readable, and returns how many.
    @discardableResult
    func append(_ bytes: UnsafeRawBufferPointer) -> Int {
        let n = min(bytes.count, freeSpace)
        guard n > 0 else { return 0 }
        reserve(count + n)
        copyIn(bytes.baseAddress!, count: n, at: (head &+ count) & mask)
        count += n
        return n
    }

    /// Copies `bytes` to `offset` bytes past the readable end (storage position
    /// `count + offset`) without making them readable, for segment text that
    /// arrived ahead of a gap. Clips to the free space; returns how many bytes were
    /// written, 0 if `offset >= freeSpace`. Make them readable with `commit(_:)`
    /// once everything before them has arrived.
    @discardableResult
    func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) -> Int {
        precondition(offset >= 0, "ByteRing.write: negative offset")
        let room = freeSpace - offset
        guard room > 0 else { return 0 }
        let n = min(bytes.count, room)
        guard n > 0 else { return 0 }
        reserve(count + offset + n)
        copyIn(bytes.baseAddress!, count: n, at: (head &+ count &+ offset) & mask)
        return n
    }

    /// Makes the next `n` bytes past the readable end readable. They must have been
    /// written with `write(_:at:)` (offsets `0..<n`); the ring does not check.
    func commit(_ n: Int) {
        precondition(n >= 0 && n <= freeSpace, "ByteRing.commit: \(n) bytes exceed the free space")
        count += n
    }

    // MARK: Reading

    /// The readable bytes `[offset, offset + n)` as up to two pieces, in order; the
    /// second is empty unless the range wraps the end of the storage. Nothing is
    /// consumed. The pointers are valid until the ring is next written or consumed.
    func peek(from offset: Int, count n: Int) -> (UnsafeRawBufferPointer, UnsafeRawBufferPointer) {
        precondition(offset >= 0 && n >= 0 && offset + n <= count,
                     "ByteRing.peek: [\(offset), \(offset + n)) outside the \(count) readable bytes")
        guard let storage else {
            return (UnsafeRawBufferPointer(start: nil, count: 0), UnsafeRawBufferPointer(start: nil, count: 0))
        }
        let start = (head &+ offset) & mask
        let first = min(n, allocatedBytes - start)
        // The empty second piece still has a base address, so callers may copy from
        // it unconditionally.
        return (UnsafeRawBufferPointer(start: storage + start, count: first),
                UnsafeRawBufferPointer(start: storage, count: n - first))
    }

    /// Drops `n` bytes from the front (acknowledged send data; data the application
    /// has read).
    func consume(_ n: Int) {
        precondition(n >= 0 && n <= count, "ByteRing.consume: \(n) bytes but only \(count) readable")
        // The storage index of the end (head + count) does not move, so bytes
        // written past the end stay at their offsets.
        head = (head &+ n) & mask
        count -= n
    }

    /// Copies readable bytes into `buffer` (as many as fit), consumes them, and
    /// returns how many.
    @discardableResult
    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let n = min(buffer.count, count)
        guard n > 0 else { return 0 }
        let (a, b) = peek(from: 0, count: n)
        let destination = buffer.baseAddress!
        memcpy(destination, a.baseAddress!, a.count)
        if b.count > 0 { memcpy(destination + a.count, b.baseAddress!, b.count) }
        consume(n)
        return n
    }

    // MARK: Private

    /// Copies `n` bytes (n <= capacity) to storage index `index`, wrapping.
    private func copyIn(_ source: UnsafeRawPointer, count n: Int, at index: Int) {
        let storage = storage.unsafelyUnwrapped
        let first = min(n, allocatedBytes - index)
        memcpy(storage + index, source, first)
        if n > first { memcpy(storage, source + first, n - first) }
    }
}
