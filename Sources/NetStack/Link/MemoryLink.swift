/// Two devices joined back to back in one process: what one transmits, the
/// other receives. Both ends share one pool, so a frame crosses by handing
/// over its slot, without a copy. For stack-to-stack tests and benchmarks.
///
/// With offloading capabilities it behaves as the kernel's loopback does:
/// segments up to `maxTransmitSegment` cross whole (the far end receives
/// them as one, as after GRO), and a checksum left partial is never
/// completed but trusted on arrival, since the bytes never left memory.
public final class MemoryLink: Device {
    public let pool: PacketPool
    /// What both ends report: by default one frame per buffer and every
    /// checksum left to the stacks.
    public let capabilities: DeviceCapabilities
    /// Frames on their way to this end.
    let inbound: PacketQueue
    /// The other end; unowned because the pair owns each other's inbound queues.
    unowned(unsafe) var peer: MemoryLink!
    public private(set) var droppedForQueueFull: UInt64 = 0

    init(pool: PacketPool, capabilities: DeviceCapabilities, queueCapacity: Int) {
        self.pool = pool
        self.capabilities = capabilities
        inbound = PacketQueue(pool: pool, capacity: queueCapacity)
    }

    /// Makes a connected pair. Keep both ends alive while either is used.
    public static func pair(pool: PacketPool, mtu: Int = 1500, queueCapacity: Int = 256) -> (MemoryLink, MemoryLink) {
        pair(pool: pool, capabilities: .ethernet(mtu: mtu), queueCapacity: queueCapacity)
    }

    /// Makes a connected pair whose ends both report `capabilities`.
    public static func pair(pool: PacketPool, capabilities: DeviceCapabilities,
                            queueCapacity: Int = 256) -> (MemoryLink, MemoryLink) {
        precondition(capabilities.isValid, "DeviceCapabilities out of range")
        let a = MemoryLink(pool: pool, capabilities: capabilities, queueCapacity: queueCapacity)
        let b = MemoryLink(pool: pool, capabilities: capabilities, queueCapacity: queueCapacity)
        a.peer = b
        b.peer = a
        return (a, b)
    }

    public func receive(limit: Int, _ handler: (consuming PacketBuffer) -> Void) -> Int {
        var n = 0
        while n < limit, let frame = inbound.popFirst() {
            handler(frame)
            n += 1
        }
        return n
    }

    /// Tail-drops when the peer's queue is full, as a real NIC ring would.
    public func transmit(_ frame: consuming PacketBuffer) {
        frame.offload = frame.offload.arrivedInMemory
        if let refused = peer.inbound.append(frame) {
            _ = consume refused
            droppedForQueueFull &+= 1
        }
    }

    public func flush() {}

    /// Frames waiting at this end.
    public var pending: Int { inbound.count }
}
