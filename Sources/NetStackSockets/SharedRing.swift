import CNetStackABI

/// One single-producer single-consumer byte ring in a socket's shared region
/// (`netstack_abi.h`): the stack consumes the app's `tx` ring and produces
/// into its `rx` ring. The ring's memory ordering is the header's C11 code,
/// shared with the preload library; the pointers stay in here, callers see
/// counts, spans and closures over borrowed bytes.
public struct SharedRing {
    /// The ring's indices (an over-aligned C struct, opaque to Swift).
    private let ring: OpaquePointer
    /// The region the ring's `offset` is counted from.
    private let region: UnsafeMutablePointer<UInt8>

    /// The data area and its size as laid out before the region was shared:
    /// the lending consumer trusts these, not the header's copy, which the
    /// application could overwrite.
    private let data: UnsafeRawPointer
    private let size: UInt32

    init(ring: OpaquePointer, region: UnsafeMutableRawPointer) {
        self.ring = ring
        self.region = region.assumingMemoryBound(to: UInt8.self)
        size = ns_ring_size(ring)
        data = UnsafeRawPointer(region) + Int(ns_ring_offset(ring))
    }

    /// Bytes waiting for the consumer.
    public var readable: Int { Int(ns_ring_readable(ring)) }
    /// Room left for the producer.
    public var writable: Int { Int(ns_ring_writable(ring)) }
    /// Nothing waits (sequentially consistent: pairs with a flag, see `SocketRegion`).
    public var isEmpty: Bool { ns_ring_is_empty(ring) != 0 }

    // MARK: Producer

    /// Copies as much of `bytes` as fits; returns how many.
    @discardableResult
    public func write(_ bytes: Span<UInt8>) -> Int {
        bytes.withUnsafeBytes { write($0) }
    }

    /// Copies as much of `bytes` as fits; returns how many.
    @discardableResult
    func write(_ bytes: UnsafeRawBufferPointer) -> Int {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return 0 }
        return Int(ns_ring_write(ring, region, base, UInt32(clamping: bytes.count)))
    }

    // MARK: Consumer

    /// Lends the waiting bytes to `take` piece by piece, in order (two pieces
    /// when they wrap), and consumes what it says it took; stops at the first
    /// piece it does not take whole. Returns the total taken.
    @discardableResult
    func consume(_ take: (UnsafeRawBufferPointer) -> Int) -> Int {
        var first: UnsafePointer<UInt8>?, second: UnsafePointer<UInt8>?
        var firstCount: UInt32 = 0, secondCount: UInt32 = 0
        guard ns_ring_peek(ring, region, &first, &firstCount, &second, &secondCount) > 0 else { return 0 }
        var taken = take(UnsafeRawBufferPointer(start: first, count: Int(firstCount)))
        if taken == Int(firstCount) && secondCount > 0 {
            taken += take(UnsafeRawBufferPointer(start: second, count: Int(secondCount)))
        }
        if taken > 0 { ns_ring_consume(ring, UInt32(taken)) }
        return taken
    }

    /// The consumer's index: bytes taken since the ring was made (wrapping).
    var head: UInt32 { ns_ring_head(ring) }

    /// Lends the bytes from the absolute index `from` (at or past `head`) to
    /// the producer's index to `take`, piece by piece (two when they wrap),
    /// without taking them: the consumer takes them later (`release`), once
    /// whoever it lent them to is done. Stops at the first piece `take` does
    /// not take whole; returns the total taken. A producer's index more than
    /// a ring's size ahead (a broken application) lends nothing.
    func lend(from index: UInt32, _ take: (UnsafeRawBufferPointer) -> Int) -> Int {
        let head = ns_ring_head(ring), tail = ns_ring_tail(ring)
        let waiting = tail &- head
        guard waiting <= size, index &- head < waiting else { return 0 }
        let n = Int(tail &- index)
        let at = Int(index & (size - 1))
        let first = min(n, Int(size) - at)
        var taken = take(UnsafeRawBufferPointer(start: data + at, count: first))
        if taken == first && n > first {
            taken += take(UnsafeRawBufferPointer(start: data, count: n - first))
        }
        return taken
    }

    /// Whether bytes wait past the absolute index `index` (sequentially consistent).
    func hasBytes(after index: UInt32) -> Bool { ns_ring_has_bytes_after(ring, index) != 0 }

    /// Takes `n` bytes lent before: their room goes back to the producer.
    func release(_ n: Int) {
        if n > 0 { ns_ring_consume(ring, UInt32(n)) }
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
    /// all (`ns_ring_write_record`); false if it does not fit now.
    func writeDatagram(_ payload: UnsafeRawBufferPointer, peer: SocketAddress) -> Bool {
        var header = ns_datagram()
        header.length = UInt32(payload.count)
        header.port = peer.port
        if case .v4 = peer.address { header.family = 4 } else { header.family = 6 }
        withUnsafeMutableBytes(of: &header.bytes) { b in
            switch peer.address {
            case .v4(let a):
                b.storeBytes(of: a.value.bigEndian, toByteOffset: 0, as: UInt32.self)
            case .v6(let a):
                b.storeBytes(of: a.high.bigEndian, toByteOffset: 0, as: UInt64.self)
                b.storeBytes(of: a.low.bigEndian, toByteOffset: 8, as: UInt64.self)
            }
        }
        return ns_ring_write_record(ring, region, &header, payload.baseAddress) != 0
    }

    /// Consumer: copies the next datagram's payload into `buffer` (replacing
    /// its contents), takes the record and returns its peer; nil if none waits.
    func readDatagram(into buffer: inout [UInt8]) -> SocketAddress? {
        var header = ns_datagram()
        guard ns_ring_next_record(ring, region, &header) != 0 else { return nil }
        let length = Int(header.length)
        buffer.removeAll(keepingCapacity: true)
        buffer.append(contentsOf: repeatElement(0, count: length))
        buffer.withUnsafeMutableBytes { b in
            _ = ns_ring_record_payload(ring, region, &header, b.baseAddress, UInt32(length))
        }
        ns_ring_take_record(ring, &header)
        return withUnsafeBytes(of: header) { SocketAddress.decode($0.bytes, at: 4) }
    }
}
