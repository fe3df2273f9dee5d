/// A link: something that receives and transmits Ethernet frames in batches.
///
/// Frames live in the device's `pool`. Received frames are handed over as owned
/// buffers; transmitted frames are consumed. Implementations: `TAPDevice`
/// (io_uring over a Linux TAP), `MemoryLink` (two stacks in one process), and
/// middleware wrapping any device (`PcapWriter`, `FaultInjector`, `LinkEmulator`).
///
/// Devices are driven by one event loop thread and are not thread-safe.
public protocol Device: AnyObject {
    /// The pool every frame of this device lives in.
    var pool: PacketPool { get }
    /// What the device carries and which checksums it takes over. Constant
    /// while the device is open. Middleware reports its inner device's, or
    /// narrows them (`DeviceCapabilities.wireFrames`) when it needs wire frames.
    var capabilities: DeviceCapabilities { get }
    /// Hands up to `limit` frames that have arrived to `handler`, without blocking.
    /// Returns the number delivered.
    func receive(limit: Int, _ handler: (consuming PacketBuffer) -> Void) -> Int
    /// Takes `frame` (a whole Ethernet frame) and queues it for sending.
    func transmit(_ frame: consuming PacketBuffer)
    /// Takes `frame` followed by `tail`, bytes outside the pool that the
    /// device reads in place if it can (`capabilities.readsTailInPlace`),
    /// and queues them for sending as one frame. Others copy the tail into
    /// the frame's slot first (the default).
    func transmit(_ frame: consuming PacketBuffer, tail: FrameTail)
    /// Pushes queued frames out (one batched submission on io_uring devices).
    func flush()
    /// Sleeps until frames may have arrived or `timeout` has passed. Devices with
    /// nothing to wait on (in-memory links) return at once.
    func wait(timeout: Duration)
    /// Makes `wait` return as well when `descriptor`, an eventfd another
    /// thread writes (`LoopExecutor`'s wake-up), becomes readable; the device
    /// reads it to take the wake-up. Devices that never sleep ignore it;
    /// middleware passes it to the device it wraps.
    func watch(wakeups descriptor: Int32)
    /// Makes the device read the eventfds armed in `doorbells` itself, so
    /// that a write to one ends `wait` and reaches the loop with no other
    /// thread (io_uring devices). Returns false if it cannot: the loop then
    /// looks at them each turn. Middleware passes it to the device it wraps.
    func watch(doorbells: Doorbells) -> Bool
}

extension Device {
    public func wait(timeout: Duration) {}

    public func watch(wakeups descriptor: Int32) {}

    public func watch(doorbells: Doorbells) -> Bool { false }

    public func transmit(_ frame: consuming PacketBuffer, tail: FrameTail) {
        frame.append(tail)
        transmit(frame)
    }

    /// The largest IP packet one frame carries (the Ethernet payload), 1500 for
    /// Ethernet: `capabilities.mtu`.
    @inlinable
    public var mtu: Int { capabilities.mtu }
}
