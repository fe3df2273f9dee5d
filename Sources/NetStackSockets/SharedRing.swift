import CNetStackABI
import NetStack
import NetStackWire

/// One single-producer single-consumer byte ring in a socket's shared region
/// (`netstack_abi.h`): the stack consumes the app's `tx` ring and produces
/// into its `rx` ring. The ring's memory ordering is the header's C11 code,
/// shared with the preload library; the pointers stay in here, callers see
/// counts, spans and closures over borrowed bytes.
///
/// The region's header is the application's to write, so this side trusts
/// none of it (the `ns_sring_` functions): it keeps the layout it made
/// before the region was shared, and checks the indices it loads. A ring
/// whose indices or records cannot be (a buggy or hostile application) is
/// broken: `isBroken` latches and from then on nothing moves, so that the
/// stack never reads or writes outside the data area nor loops on it.
/// A class for the latch; the checks are compares on loaded indices.
public final class SharedRing {
    /// The ring's indices (an over-aligned C struct, opaque to Swift).
    private let ring: OpaquePointer
    /// The data area and its size as laid out before the region was shared.
    private let data: UnsafeMutablePointer<UInt8>
    private let size: UInt32
    /// The application broke the ring: nothing is read or written any more.
    public private(set) var isBroken = false

    /// `data` holds `size` bytes (a power of two) in the caller's mapping.
    init(ring: OpaquePointer, data: UnsafeMutableRawPointer, size: Int) {
        precondition(size > 0 && size & (size - 1) == 0 && size < Int(NS_RING_BROKEN))
        self.ring = ring
        self.data = data.assumingMemoryBound(to: UInt8.self)
        self.size = UInt32(size)
    }

    /// `count` from an `ns_sring_` function, or nil (and the latch) for a broken ring.
    @inline(__always)
    private func checked(_ count: UInt32) -> UInt32? {
        if count == NS_RING_BROKEN {
            isBroken = true
            return nil
        }
        return count
    }

    /// Bytes waiting for the consumer (0 once broken).
    public var readable: Int {
        guard !isBroken, let n = checked(ns_sring_readable(ring, size)) else { return 0 }
        return Int(n)
    }

    /// Room left for the producer (0 once broken).
    public var writable: Int {
        guard !isBroken, let n = checked(ns_sring_writable(ring, size)) else { return 0 }
        return Int(n)
    }

    /// Nothing waits (sequentially consistent: pairs with a flag, see
    /// `SocketRegion`); a broken ring holds nothing more to take.
    public var isEmpty: Bool { isBroken || ns_ring_is_empty(ring) != 0 }

    // MARK: Producer

    /// Copies as much of `bytes` as fits; returns how many.
    @discardableResult
    public func write(_ bytes: Span<UInt8>) -> Int {
        bytes.withUnsafeBytes { write($0) }
    }

    /// Copies as much of `bytes` as fits; returns how many.
    @discardableResult
    func write(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard !isBroken, let base = bytes.baseAddress, !bytes.isEmpty,
              let n = checked(ns_sring_write(ring, data, size, base, UInt32(clamping: bytes.count))) else { return 0 }
        return Int(n)
    }

    // MARK: Consumer

    /// Lends the waiting bytes to `take` piece by piece, in order (two pieces
    /// when they wrap), and consumes what it says it took; stops at the first
    /// piece it does not take whole. Returns the total taken.
    @discardableResult
    func consume(_ take: (UnsafeRawBufferPointer) -> Int) -> Int {
        let taken = lend(from: head, take)
        if taken > 0 { ns_ring_consume(ring, UInt32(taken)) }
        return taken
    }

    /// The consumer's index: bytes taken since the ring was made (wrapping).
    var head: UInt32 { ns_ring_head(ring) }
    /// The producer's index: bytes put in since the ring was made (wrapping).
    var tail: UInt32 { ns_ring_tail(ring) }

    /// Lends the bytes from the absolute index `from` (at or past `head`) to
    /// the producer's index to `take`, piece by piece (two when they wrap),
    /// without taking them: the consumer takes them later (`release`), once
    /// whoever it lent them to is done. Stops at the first piece `take` does
    /// not take whole; returns the total taken. A producer's index more than
    /// a ring's size ahead, or behind `from` (bytes it had published taken
    /// back), breaks the ring.
    func lend(from index: UInt32, _ take: (UnsafeRawBufferPointer) -> Int) -> Int {
        guard !isBroken else { return 0 }
        var first: UnsafePointer<UInt8>?, second: UnsafePointer<UInt8>?
        var firstCount: UInt32 = 0, secondCount: UInt32 = 0
        guard let n = checked(ns_sring_peek_from(ring, data, size, index, &first, &firstCount, &second, &secondCount)),
              n > 0 else { return 0 }
        var taken = take(UnsafeRawBufferPointer(start: first, count: Int(firstCount)))
        if taken == Int(firstCount) && secondCount > 0 {
            taken += take(UnsafeRawBufferPointer(start: second, count: Int(secondCount)))
        }
        return taken
    }

    /// Whether bytes wait past the absolute index `index` (sequentially
    /// consistent); none in a broken ring.
    func hasBytes(after index: UInt32) -> Bool { !isBroken && ns_ring_has_bytes_after(ring, index) != 0 }

    /// Takes `n` bytes lent before: their room goes back to the producer.
    /// More than wait breaks the ring (the application moved an index).
    func release(_ n: Int) {
        guard n > 0, !isBroken, let waiting = checked(ns_sring_readable(ring, size)) else { return }
        guard n <= Int(waiting) else {
            isBroken = true
            return
        }
        ns_ring_consume(ring, UInt32(n))
    }

    /// Copies up to `maxLength` waiting bytes to the end of `buffer` and consumes them.
    @discardableResult
    public func read(appendingTo buffer: inout [UInt8], maxLength: Int = .max) -> Int {
        var got = 0
        return consume { piece in
            let n = min(piece.count, maxLength - got)
            buffer.append(contentsOf: piece.prefix(n))
            got += n
            return n
        }
    }
}

// MARK: Datagrams

extension SharedRing {
    /// What precedes each datagram's payload in the ring (`ns_datagram`).
    static let datagramHeaderSize = MemoryLayout<ns_datagram>.size

    /// Producer: one datagram record, `peer` and the payload, whole or not at
    /// all (`ns_ring_write_record`); false if it does not fit now. A
    /// received one carries how it came (`arrival`: where to, its DS field
    /// and TTL, and when, on the wall clock: its time plus `wallClockOffset`).
    func writeDatagram(_ payload: UnsafeRawBufferPointer, peer: SocketAddress, arrival: UDPArrival? = nil,
                       wallClockOffset: Int64 = 0) -> Bool {
        var header = ns_datagram()
        header.length = UInt32(payload.count)
        header.port = peer.port
        if case .v4 = peer.address { header.family = 4 } else { header.family = 6 }
        withUnsafeMutableBytes(of: &header.bytes) { peer.address.storeNetworkOrder(into: $0) }
        if let arrival {
            withUnsafeMutableBytes(of: &header.local) { arrival.destination.storeNetworkOrder(into: $0) }
            header.traffic_class = arrival.trafficClass
            header.hop_limit = arrival.hopLimit
            header.arrival_ns = arrival.time.nanoseconds &+ wallClockOffset
        }
        guard !isBroken else { return false }
        let written = ns_sring_write_record(ring, data, size, &header, payload.baseAddress)
        if written < 0 { isBroken = true }
        return written > 0
    }

    /// A datagram the application sends: where to, and the IP header fields
    /// it sets itself (sendmsg's control messages), nil where the socket's own apply.
    struct Outgoing {
        let destination: SocketAddress
        let hopLimit: UInt8?
        let trafficClass: UInt8?

        /// The header settings it goes with: `socket`'s, or nil when it sets none.
        func ipHeader(over socket: IPHeaderSettings) -> IPHeaderSettings? {
            guard hopLimit != nil || trafficClass != nil else { return nil }
            var s = socket
            if let h = hopLimit { (s.timeToLive, s.hopLimit) = (h, h) }
            if let c = trafficClass { (s.typeOfService, s.trafficClass) = (c, c) }
            return s
        }
    }

    /// Consumer: copies the next datagram's payload into `buffer` (replacing
    /// its contents), takes the record and returns where it goes; nil if none
    /// waits, or the ring is broken (a record whose length is past what the
    /// application published), or its peer is no address (the record is taken).
    func readOutgoing(into buffer: inout [UInt8]) -> Outgoing? {
        guard !isBroken else { return nil }
        var header = ns_datagram()
        let next = ns_sring_next_record(ring, data, size, &header)
        if next < 0 { isBroken = true }
        guard next > 0 else { return nil }
        let length = Int(header.length)  // at most `size`: checked against what is readable
        buffer.removeAll(keepingCapacity: true)
        buffer.append(contentsOf: repeatElement(0, count: length))
        buffer.withUnsafeMutableBytes { b in
            _ = ns_sring_record_payload(ring, data, size, &header, b.baseAddress, UInt32(length))
        }
        ns_ring_take_record(ring, &header)
        guard let destination = withUnsafeBytes(of: header, { SocketAddress.decode($0.bytes, at: 4) }) else {
            return nil
        }
        let flags = Int32(header.send_flags)
        return Outgoing(destination: destination,
                        hopLimit: flags & Int32(NS_SEND_HOP_LIMIT) != 0 ? header.hop_limit : nil,
                        trafficClass: flags & Int32(NS_SEND_TRAFFIC_CLASS) != 0 ? header.traffic_class : nil)
    }
}
