#if canImport(Glibc)
import Glibc
#endif

/// The pool's bookkeeping, kept in unsafe memory so that buffer handles reach it
/// without reference counting (a class pool with ARC cost ~30 ns per packet here).
@usableFromInline
struct PoolState {
    @usableFromInline var base: UnsafeMutableRawPointer
    @usableFromInline var slotSize: Int
    @usableFromInline var slotCount: Int
    /// A stack of free slot indices; `freeCount` entries are valid.
    @usableFromInline var freeStack: UnsafeMutablePointer<UInt32>
    @usableFromInline var freeCount: Int

    @inlinable
    mutating func push(_ slot: UInt32) {
        assert(Int(slot) < slotCount && freeCount < slotCount, "slot returned twice")
        freeStack[freeCount] = slot
        freeCount += 1
    }

    @inlinable
    mutating func pop() -> UInt32? {
        guard freeCount > 0 else { return nil }
        freeCount -= 1
        return freeStack[freeCount]
    }
}

/// The only memory a packet ever lives in: one page-aligned allocation cut into
/// fixed-size slots. Devices register it with io_uring once; every frame received
/// or sent occupies one slot, owned by exactly one `PacketBuffer` or lent to the
/// kernel by a device.
///
/// The pool is owned by one event loop and is not thread-safe. It must outlive
/// every buffer taken from it.
public final class PacketPool {
    @usableFromInline let state: UnsafeMutablePointer<PoolState>

    /// The default slot: a 1500-byte MTU frame plus headroom, rounded to a power of two.
    public static let defaultSlotSize = 2048

    public init(slotCount: Int, slotSize: Int = PacketPool.defaultSlotSize) {
        precondition(slotCount > 0 && slotCount <= Int(UInt16.max), "slot count out of range")
        precondition(slotSize >= 64 && slotSize % 64 == 0, "slot size must be a multiple of 64")
        let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
        var raw: UnsafeMutableRawPointer?
        let bytes = (slotCount * slotSize + pageSize - 1) / pageSize * pageSize
        guard posix_memalign(&raw, pageSize, bytes) == 0, let base = raw else {
            fatalError("PacketPool: cannot allocate \(bytes) bytes")
        }
        memset(base, 0, bytes)
        let stack = UnsafeMutablePointer<UInt32>.allocate(capacity: slotCount)
        // Lowest slots on top, so tests and traces see slot 0 first.
        for i in 0..<slotCount { stack[i] = UInt32(slotCount - 1 - i) }
        state = .allocate(capacity: 1)
        state.initialize(to: PoolState(base: base, slotSize: slotSize, slotCount: slotCount,
                                       freeStack: stack, freeCount: slotCount))
    }

    deinit {
        assert(state.pointee.freeCount == state.pointee.slotCount,
               "PacketPool freed with \(state.pointee.slotCount - state.pointee.freeCount) slots outstanding")
        free(state.pointee.base)
        state.pointee.freeStack.deallocate()
        state.deallocate()
    }

    public var slotCount: Int { state.pointee.slotCount }
    public var slotSize: Int { state.pointee.slotSize }
    /// Slots neither held by a `PacketBuffer` nor lent out by a device.
    public var freeCount: Int { state.pointee.freeCount }

    /// The whole region, for registering with io_uring (`io_uring_register_buffers`).
    public var region: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: state.pointee.base,
                                      count: state.pointee.slotCount * state.pointee.slotSize)
    }

    /// Takes a free slot as an empty buffer, or nil when the pool is exhausted.
    @inlinable
    public func allocate() -> PacketBuffer? {
        guard let slot = state.pointee.pop() else { return nil }
        return PacketBuffer(state: state, slot: slot, length: 0)
    }

    // MARK: Lending slots to the kernel

    /// Takes a free slot without wrapping it in a buffer, so a device can lend it
    /// to the kernel (a provided-buffer ring). The device must later either
    /// `adopt` it or `returnSlot` it.
    @inlinable
    public func lendSlot() -> UInt32? { state.pointee.pop() }

    /// Gives a lent slot back unused.
    @inlinable
    public func returnSlot(_ slot: UInt32) { state.pointee.push(slot) }

    /// Wraps a lent slot that the kernel has filled with `length` bytes.
    @inlinable
    public func adopt(slot: UInt32, length: Int) -> PacketBuffer {
        precondition(Int(slot) < state.pointee.slotCount && length <= state.pointee.slotSize)
        return PacketBuffer(state: state, slot: slot, length: length)
    }

    /// Wraps a lent slot that the kernel has filled with `length` bytes, the
    /// first `headerLength` of them a device header already read (the frame
    /// starts after it, which leaves it as headroom), and what the device did.
    @inlinable
    public func adopt(slot: UInt32, length: Int, headerLength: Int, offload: PacketOffload) -> PacketBuffer {
        precondition(Int(slot) < state.pointee.slotCount && length <= state.pointee.slotSize
                     && headerLength <= length)
        var b = PacketBuffer(state: state, slot: slot, length: length - headerLength)
        b.start = headerLength
        b.offload = offload
        return b
    }

    /// The address of a slot, for devices that hand slots to the kernel.
    @inlinable
    public func address(ofSlot slot: UInt32) -> UnsafeMutableRawPointer {
        state.pointee.base + Int(slot) * state.pointee.slotSize
    }
}

/// Exclusive ownership of one pool slot and the frame in it. Not copyable: a slot
/// has one owner at a time, and when the owner is done (the buffer goes out of
/// scope) the slot returns to the pool. Devices that hand a slot to the kernel
/// take it out with `releaseSlot()` and re-`adopt` or return it on completion.
///
/// Valid bytes are `start ..< start + length` of the slot; the space before
/// `start` is headroom for prepending headers.
@frozen
public struct PacketBuffer: ~Copyable {
    @usableFromInline let state: UnsafeMutablePointer<PoolState>
    /// The slot index in its pool (the io_uring buffer id).
    public let slot: UInt32
    @usableFromInline var start: Int
    @usableFromInline var _length: Int
    /// What the device did for this packet (receive) or is asked to do (transmit).
    public var offload: PacketOffload

    /// Number of valid bytes.
    @inlinable
    public var length: Int { _length }

    @inlinable
    init(state: UnsafeMutablePointer<PoolState>, slot: UInt32, length: Int) {
        self.state = state
        self.slot = slot
        self.start = 0
        self._length = length
        self.offload = .none
    }

    deinit { state.pointee.push(slot) }

    /// Bytes the slot can hold from `start` on.
    @inlinable
    public var capacity: Int { state.pointee.slotSize - start }

    /// Bytes free before the frame, for prepending headers.
    @inlinable
    public var headroom: Int { start }

    /// Sets the number of valid bytes (for example after writing headers and payload).
    @inlinable
    public mutating func setLength(_ n: Int) {
        precondition(n >= 0 && n <= capacity, "length beyond slot")
        _length = n
    }

    /// Drops `n` bytes from the front (stripping a header).
    @inlinable
    public mutating func trimFront(_ n: Int) {
        precondition(n >= 0 && n <= length)
        start += n
        _length -= n
    }

    /// Moves the frame start `n` bytes earlier (prepending a header into headroom).
    @inlinable
    public mutating func extendFront(_ n: Int) {
        precondition(n >= 0 && n <= start)
        start -= n
        _length += n
    }

    /// Reserves `n` bytes of headroom in an empty buffer.
    @inlinable
    public mutating func reserveHeadroom(_ n: Int) {
        precondition(length == 0 && start + n <= state.pointee.slotSize)
        start += n
    }

    /// Calls `body` with the valid bytes. The pointer must not escape `body`.
    @inlinable
    public func withBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeMutableRawBufferPointer(start: state.pointee.base + Int(slot) * state.pointee.slotSize + start,
                                               count: length))
    }

    /// Calls `body` with the whole writable area from `start` (capacity bytes),
    /// for building a frame; set `length` afterwards.
    @inlinable
    public func withCapacity<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeMutableRawBufferPointer(start: state.pointee.base + Int(slot) * state.pointee.slotSize + start,
                                               count: capacity))
    }

    /// Address of the first valid byte (for io_uring writes). Valid while the slot is lent.
    @inlinable
    public var baseAddress: UnsafeMutableRawPointer {
        state.pointee.base + Int(slot) * state.pointee.slotSize + start
    }

    /// Gives up ownership without returning the slot to the pool: the caller
    /// (a device lending it to the kernel) now answers for it.
    @inlinable
    public consuming func releaseSlot() -> UInt32 {
        let s = slot
        discard self
        return s
    }
}

/// A buffer set aside in a queue (waiting for ARP, in flight on a memory link,
/// held back by a fault injector). Copyable so it can live in plain arrays, so
/// only queue types in this module handle it, each resuming it exactly once.
@usableFromInline
struct ParkedPacket {
    @usableFromInline var slot: UInt32
    @usableFromInline var start: Int32
    @usableFromInline var length: Int32
    @usableFromInline var offload: PacketOffload

    @inlinable init(slot: UInt32, start: Int, length: Int, offload: PacketOffload) {
        self.slot = slot
        self.start = Int32(start)
        self.length = Int32(length)
        self.offload = offload
    }
}

extension PacketBuffer {
    /// Parks the buffer: ownership moves to the returned token.
    @inlinable
    consuming func park() -> ParkedPacket {
        let p = ParkedPacket(slot: slot, start: start, length: _length, offload: offload)
        discard self
        return p
    }
}

extension PacketPool {
    /// Resumes ownership of a parked buffer.
    @inlinable
    func resume(_ p: ParkedPacket) -> PacketBuffer {
        var b = PacketBuffer(state: state, slot: p.slot, length: 0)
        b.start = Int(p.start)
        b._length = Int(p.length)
        b.offload = p.offload
        return b
    }
}

/// A bounded FIFO of packets, preallocated: pushing and popping never allocate.
/// Whatever is still queued returns to the pool when the queue is dropped.
public final class PacketQueue {
    let pool: PacketPool
    var ring: UnsafeMutablePointer<ParkedPacket>
    public let capacity: Int
    var head = 0
    public private(set) var count = 0

    public init(pool: PacketPool, capacity: Int) {
        precondition(capacity > 0)
        self.pool = pool
        self.capacity = capacity
        ring = .allocate(capacity: capacity)
    }

    deinit {
        while let b = popFirst() { _ = consume b }
        ring.deallocate()
    }

    public var isEmpty: Bool { count == 0 }
    public var isFull: Bool { count == capacity }

    /// Appends `packet`, or hands it back when the queue is full.
    public func append(_ packet: consuming PacketBuffer) -> PacketBuffer? {
        guard count < capacity else { return packet }
        ring[(head + count) % capacity] = packet.park()
        count += 1
        return nil
    }

    public func popFirst() -> PacketBuffer? {
        guard count > 0 else { return nil }
        let p = ring[head]
        head = (head + 1) % capacity
        count -= 1
        return pool.resume(p)
    }
}
