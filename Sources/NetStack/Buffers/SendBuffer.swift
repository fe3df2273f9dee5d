/// TCP's send buffer: the bytes from SND.UNA on, in order, as a queue of
/// runs. A run is either bytes the application wrote by copy, which live in
/// a `ByteRing`, or bytes it wrote by reference (a range of `SharedBytes`,
/// or memory it lends, such as a socket's shared ring), which live where
/// they are, kept alive by the run's `owner`. Both count against
/// `capacity`, so the buffer bounds what is queued however it was written.
///
/// `peek` hands out one run's bytes at a time (two pieces when the ring
/// wraps), so a segment never spans two runs: the sender cuts a segment
/// short at a run's end, and the next segment starts the next run.
final class SendBuffer {
    /// One run of the queue: `length` bytes, from the ring (`base` nil) or
    /// from `base` on, memory `owner` keeps valid.
    struct Run {
        var length: Int
        var base: UnsafeRawPointer?
        var owner: AnyObject?
    }

    let capacity: Int
    private let ring: ByteRing
    /// The runs, oldest first: a ring of `runCapacity` slots from `firstRun`,
    /// `runCount` in use, doubled when full (the only allocation after init).
    private var runs: UnsafeMutablePointer<Run>
    private var runCapacity = 8
    private var firstRun = 0
    private var runCount = 0
    /// Bytes queued, in every run.
    private(set) var count = 0

    /// The ring keeps storage its growth replaced until `releaseReplacedStorage()`:
    /// a queued frame's tail may still lie in it (`FrameTail`).
    init(capacity: Int, budget: MemoryBudget? = nil) {
        ring = ByteRing(capacity: capacity, keepsReplacedStorage: true, budget: budget,
                        prepaid: MemoryBudget.prepaidRing)
        self.capacity = ring.capacity
        runs = .allocate(capacity: runCapacity)
    }

    /// Ring storage allocated now (it grows on demand up to `capacity`).
    var allocatedBytes: Int { ring.allocatedBytes }

    /// Whether growing the ring left old storage for `releaseReplacedStorage()`.
    var hasReplacedStorage: Bool { ring.hasReplacedStorage }

    /// Gives the ring's storage back while nothing is queued. Safe at any
    /// time: with nothing queued every byte sent was acknowledged, so no
    /// frame waiting to be sent reads a tail from the ring.
    /// Returns the bytes released.
    @discardableResult
    func releaseStorageIfEmpty() -> Int {
        count == 0 ? ring.releaseStorageIfEmpty() : 0
    }

    /// Frees ring storage replaced by growth: call once the device has sent
    /// every frame queued before (no tail lies in it any more).
    func releaseReplacedStorage() { ring.releaseReplacedStorage() }

    deinit {
        for i in 0..<runCount { (runs + (firstRun + i) % runCapacity).deinitialize(count: 1) }
        runs.deallocate()
    }

    /// The `i`th run from the oldest.
    private func run(_ i: Int) -> UnsafeMutablePointer<Run> { runs + (firstRun + i) % runCapacity }

    private func appendRun(_ r: Run) {
        if runCount == runCapacity {
            let bigger = UnsafeMutablePointer<Run>.allocate(capacity: runCapacity * 2)
            for i in 0..<runCount { (bigger + i).moveInitialize(from: run(i), count: 1) }
            runs.deallocate()
            runs = bigger
            firstRun = 0
            runCapacity *= 2
        }
        (runs + (firstRun + runCount) % runCapacity).initialize(to: r)
        runCount += 1
    }

    /// Room for more, whichever way it is written: what `capacity` leaves,
    /// and no more than the ring can take now (a memory budget may stop it
    /// growing; bytes written by reference are held to the same bound).
    var freeSpace: Int { min(capacity - count, ring.freeSpace) }

    var isEmpty: Bool { count == 0 }

    /// Copies `bytes` in; returns how many fit.
    func append(_ bytes: UnsafeRawBufferPointer) -> Int {
        let n = ring.append(UnsafeRawBufferPointer(rebasing: bytes[0..<min(bytes.count, freeSpace)]))
        guard n > 0 else { return 0 }
        if runCount > 0, run(runCount - 1).pointee.base == nil {
            run(runCount - 1).pointee.length += n
        } else {
            appendRun(Run(length: n, base: nil, owner: nil))
        }
        count += n
        return n
    }

    /// Queues `range` of `shared` by reference; returns how many bytes fit.
    func append(_ shared: SharedBytes, range: Range<Int>) -> Int {
        append(reference: UnsafeRawBufferPointer(rebasing: shared.bytes[range]), owner: shared)
    }

    /// Queues `bytes` by reference, `owner` keeping them valid until they
    /// are consumed; returns how many fit. A run that ends where they start,
    /// of the same owner, grows.
    func append(reference bytes: UnsafeRawBufferPointer, owner: AnyObject) -> Int {
        let n = min(bytes.count, freeSpace)
        guard n > 0, let start = bytes.baseAddress else { return 0 }
        count += n
        if runCount > 0 {
            let last = run(runCount - 1)
            if last.pointee.owner === owner, let base = last.pointee.base, base + last.pointee.length == start {
                last.pointee.length += n
                return n
            }
        }
        appendRun(Run(length: n, base: start, owner: owner))
        return n
    }

    /// Up to `n` bytes from `offset` (from SND.UNA), as far as the run that
    /// holds `offset` goes: one piece, or two where the ring wraps.
    func peek(from offset: Int, count n: Int) -> (UnsafeRawBufferPointer, UnsafeRawBufferPointer) {
        var start = 0
        var ringOffset = 0
        for i in 0..<runCount {
            let r = run(i)
            let length = r.pointee.length
            if offset < start + length {
                let within = offset - start
                let take = min(n, length - within)
                if let base = r.pointee.base {
                    return (UnsafeRawBufferPointer(start: base + within, count: take), UnsafeRawBufferPointer(start: nil, count: 0))
                }
                return ring.peek(from: ringOffset + within, count: take)
            }
            start += length
            if r.pointee.base == nil { ringOffset += length }
        }
        return (UnsafeRawBufferPointer(start: nil, count: 0), UnsafeRawBufferPointer(start: nil, count: 0))
    }

    /// Drops the first `n` bytes (acknowledged), releasing the runs they end.
    func consume(_ n: Int) {
        var left = min(n, count)
        count -= left
        while left > 0, runCount > 0 {
            let r = run(0)
            let k = min(left, r.pointee.length)
            if r.pointee.base == nil { ring.consume(k) }
            left -= k
            if k == r.pointee.length {
                r.deinitialize(count: 1)
                firstRun = (firstRun + 1) % runCapacity
                runCount -= 1
            } else {
                r.pointee.length -= k
                r.pointee.base = r.pointee.base.map { $0 + k }
            }
        }
    }
}
