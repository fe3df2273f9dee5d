import NetStackWire

/// Datagrams to our own addresses never reach the link (RFC 1122 3.2.1.3:
/// a host's "internal loopback"; the kernel on the other end of a TAP
/// would drop them as martians). An application on the stack that talks to
/// a service on the stack's own address, as a program on any host may,
/// reaches it through here: the frame is made whole in its slot (its tail
/// copied in) and comes back in on the loop's next poll as if received,
/// as Linux's loopback device hands a frame to its own receive queue. A
/// checksum left partial is trusted, as the bytes never left memory, and a
/// segment larger than the MTU stays whole, as after GRO (`MemoryLink`
/// does the same between two stacks).
extension Interface {
    /// Frames looped back at most (a turn's worth of segments to ourselves);
    /// beyond it they are dropped as a full link queue would drop them.
    static var loopbackCapacity: Int { 256 }

    /// Whether frames wait to come back in: the loop polls again before it sleeps.
    public var hasLoopedBackFrames: Bool { !loopedBack.isEmpty }

    /// Sends `frame` (and `tail`) to ourselves.
    func loopBack(_ frame: consuming PacketBuffer, etherType: EtherType, tail: FrameTail) {
        frame.withBytes { bytes in
            EthernetRepr(destination: configuration.macAddress, source: configuration.macAddress,
                         etherType: etherType).emit(into: bytes)
        }
        frame.append(tail)
        loopBack(frame)
    }

    /// Queues a whole frame, already addressed to us, to come back in.
    func loopBack(_ frame: consuming PacketBuffer) {
        frame.offload = frame.offload.arrivedInMemory
        counters.framesLoopedBack &+= 1
        if let refused = loopedBack.append(frame) {
            _ = consume refused
            counters.drops.record(.linkQueueFull)
        }
    }

    /// Receives the frames looped back before this call (those they cause
    /// come back on the next). Returns how many.
    func receiveLoopedBack(now: Instant) -> Int {
        let waiting = loopedBack.count
        var n = 0
        while n < waiting, let frame = loopedBack.popFirst() {
            receive(frame, fromSelf: true, now: now)
            n += 1
        }
        return n
    }
}
