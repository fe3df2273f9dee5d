#if canImport(Glibc)
import Glibc
#endif

/// Where a stack's smallest ring storage lives: 4 KiB pages cut from 1 MiB
/// chunks, handed out and taken back here rather than by malloc.
///
/// Why: most connections never need more than a ring's first 4 KiB each
/// way, and an idle one gives them back (`TCPLayer.sweepIdle`). From
/// malloc, those freed pages stayed resident: a free chunk between live
/// objects keeps its first bytes for the allocator's links, so
/// `malloc_trim` could not release its page, and 50,000 connections held
/// idle after one echo kept 4.7 KB each against 2.8 KB for those that never
/// carried data. Here a page given back is released to the system with
/// `madvise(MADV_DONTNEED)` at the next `trim()` (once per idle sweep, the
/// free pages sorted and released in runs), and reused first while it is
/// still resident. Chunks stay mapped (address space only) until the pages'
/// owner goes; rings keep their budget, and with it these pages, alive.
///
/// Not thread-safe: it belongs to one stack's loop.
public final class RingPages {
    public static let pageSize = 4096
    static let pagesPerChunk = 256
    private var chunks: [UnsafeMutableRawPointer] = []
    /// Free pages still resident (given back since the last trim): reused first.
    private var resident: [UnsafeMutableRawPointer] = []
    /// Free pages released to the system (or never touched).
    private var released: [UnsafeMutableRawPointer] = []
    /// Pages handed out now.
    public private(set) var inUse = 0

    public init() {}

    deinit {
        precondition(inUse == 0, "ring pages outlived by a ring")
        for c in chunks { c.deallocate() }
    }

    /// Chunks allocated, for tests and statistics.
    public var chunkCount: Int { chunks.count }
    /// Free pages not yet released to the system.
    public var residentFreePages: Int { resident.count }

    /// A page-aligned page of `pageSize` bytes.
    func take() -> UnsafeMutableRawPointer {
        if released.isEmpty && resident.isEmpty { addChunk() }
        inUse += 1
        return resident.popLast() ?? released.removeLast()
    }

    /// Takes back a page from `take()`; it stays resident until `trim()`.
    func give(_ page: UnsafeMutableRawPointer) {
        inUse -= 1
        resident.append(page)
    }

    /// Releases the free pages still resident to the system, adjacent ones
    /// with one call. Returns the bytes released.
    @discardableResult
    public func trim() -> Int {
        guard !resident.isEmpty else { return 0 }
        resident.sort()
        var i = 0
        while i < resident.count {
            var j = i + 1
            while j < resident.count, resident[j] == resident[j - 1] + Self.pageSize { j += 1 }
            _ = madvise(resident[i], (j - i) * Self.pageSize, MADV_DONTNEED)
            i = j
        }
        let bytes = resident.count * Self.pageSize
        released.append(contentsOf: resident)
        resident.removeAll(keepingCapacity: true)
        return bytes
    }

    private func addChunk() {
        let chunk = UnsafeMutableRawPointer.allocate(byteCount: Self.pagesPerChunk * Self.pageSize,
                                                     alignment: Self.pageSize)
        chunks.append(chunk)
        // Handed out from the chunk's start: reversed, since `take` pops the end.
        for k in stride(from: Self.pagesPerChunk - 1, through: 0, by: -1) {
            released.append(chunk + k * Self.pageSize)
        }
    }
}
