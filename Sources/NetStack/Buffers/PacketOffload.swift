/// What a device did for one packet on receive, or is asked to do for it on
/// transmit, beyond moving its bytes: the meaning of the virtio-net header
/// (virtio 1.2, 5.1.6), without its layout, so that nothing above the devices
/// knows that layout. A plain frame has `.none`.
@frozen
public struct PacketOffload: Sendable, Equatable {
    /// Receive: the transport checksum need not be checked. The device (or
    /// the kernel that handed the frame over) verified it, or the frame never
    /// left this host and carries only a partial sum (`NEEDS_CSUM`).
    public var checksumVerified: Bool
    /// Transmit: the transport checksum field holds only the pseudo-header
    /// sum, and the device completes it over the bytes from `checksumStart`
    /// (an offset in the Ethernet frame), storing it `checksumOffset` bytes
    /// further on. Zero: the checksum is complete.
    public var checksumStart: UInt16
    public var checksumOffset: UInt16
    /// Transmit: the device cuts the TCP segment into frames carrying this
    /// many payload bytes each (TSO). Receive: the frame coalesces segments
    /// of this size (GRO on the far side). Zero: one frame.
    public var segmentSize: UInt16

    @inlinable
    public init(checksumVerified: Bool = false, checksumStart: UInt16 = 0, checksumOffset: UInt16 = 0,
                segmentSize: UInt16 = 0) {
        self.checksumVerified = checksumVerified
        self.checksumStart = checksumStart
        self.checksumOffset = checksumOffset
        self.segmentSize = segmentSize
    }

    /// Nothing done, nothing asked: a finished frame.
    @inlinable
    public static var none: PacketOffload { PacketOffload() }

    /// Whether the transport checksum is left for the device to complete.
    @inlinable
    public var checksumPartial: Bool { checksumStart != 0 }

    /// What a frame sent with this offload says on arrival when it never
    /// left memory (a `MemoryLink`, the interface's own loopback): a
    /// partial checksum is trusted rather than completed, and a segment
    /// larger than the MTU stays whole, as after GRO.
    @inlinable
    public var arrivedInMemory: PacketOffload {
        checksumPartial ? PacketOffload(checksumVerified: true, segmentSize: segmentSize) : self
    }
}
