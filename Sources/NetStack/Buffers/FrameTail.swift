/// The last bytes of a frame left where they are, in memory outside the
/// pool (a TCP send ring), for a device that reads them in place
/// (`DeviceCapabilities.readsTailInPlace`): the frame's slot holds only its
/// headers, and the payload is never copied into it. Two pieces, because
/// rings wrap.
///
/// The bytes must stay valid and unchanged until the device has sent the
/// frame. A TCP sender guarantees it for data sent the first time: the send
/// ring frees bytes only once the peer acknowledges them, which it cannot do
/// before the frame reached it (`TCPLayer` keeps a retired connection's rings
/// until the next loop turn, after the device's flush).
public struct FrameTail {
    public var first: UnsafeRawBufferPointer
    public var second: UnsafeRawBufferPointer

    @inlinable
    public init(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) {
        self.first = first
        self.second = second
    }

    /// No tail: the frame is whole in its slot.
    @inlinable
    public static var none: FrameTail {
        FrameTail(UnsafeRawBufferPointer(start: nil, count: 0), UnsafeRawBufferPointer(start: nil, count: 0))
    }

    @inlinable
    public var count: Int { first.count + second.count }

    @inlinable
    public var isEmpty: Bool { first.isEmpty && second.isEmpty }

    /// Copies both pieces, in order, to `destination` (`count` bytes).
    @inlinable
    public func copy(to destination: UnsafeMutableRawPointer) {
        if let a = first.baseAddress { destination.copyMemory(from: a, byteCount: first.count) }
        if let b = second.baseAddress { (destination + first.count).copyMemory(from: b, byteCount: second.count) }
    }
}

extension PacketBuffer {
    /// Copies `tail` after the valid bytes, making the frame whole in its
    /// slot: what a device that cannot send a tail in place does with one,
    /// and what a frame about to wait in a queue needs. The slot must have
    /// the room (IP sizes frames to fit their slot, tail included).
    @inlinable
    public mutating func append(_ tail: FrameTail) {
        guard !tail.isEmpty else { return }
        let at = length
        precondition(at + tail.count <= capacity, "tail beyond slot")
        setLength(at + tail.count)
        tail.copy(to: baseAddress + at)
    }
}
