/// Big-endian loads and stores on a raw buffer. Callers have checked bounds when
/// the view was made, so these are unchecked in release builds (asserted in debug).
extension UnsafeMutableRawBufferPointer {
    // Internal; @inlinable makes them usable from the views' inlinable accessors.

    @inlinable @inline(__always)
    func be16(_ offset: Int) -> UInt16 {
        assert(offset + 2 <= count)
        return UInt16(bigEndian: baseAddress.unsafelyUnwrapped.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    @inlinable @inline(__always)
    func be32(_ offset: Int) -> UInt32 {
        assert(offset + 4 <= count)
        return UInt32(bigEndian: baseAddress.unsafelyUnwrapped.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    @inlinable @inline(__always)
    func be64(_ offset: Int) -> UInt64 {
        assert(offset + 8 <= count)
        return UInt64(bigEndian: baseAddress.unsafelyUnwrapped.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    @inlinable @inline(__always)
    func u8(_ offset: Int) -> UInt8 {
        assert(offset < count)
        return baseAddress.unsafelyUnwrapped.load(fromByteOffset: offset, as: UInt8.self)
    }

    @inlinable @inline(__always)
    func setBE16(_ offset: Int, _ value: UInt16) {
        assert(offset + 2 <= count)
        baseAddress.unsafelyUnwrapped.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt16.self)
    }

    @inlinable @inline(__always)
    func setBE32(_ offset: Int, _ value: UInt32) {
        assert(offset + 4 <= count)
        baseAddress.unsafelyUnwrapped.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt32.self)
    }

    @inlinable @inline(__always)
    func setBE64(_ offset: Int, _ value: UInt64) {
        assert(offset + 8 <= count)
        baseAddress.unsafelyUnwrapped.storeBytes(of: value.bigEndian, toByteOffset: offset, as: UInt64.self)
    }

    @inlinable @inline(__always)
    func setU8(_ offset: Int, _ value: UInt8) {
        assert(offset < count)
        baseAddress.unsafelyUnwrapped.storeBytes(of: value, toByteOffset: offset, as: UInt8.self)
    }

    @inlinable @inline(__always)
    func mac(_ offset: Int) -> MACAddress {
        MACAddress(u8(offset), u8(offset + 1), u8(offset + 2), u8(offset + 3), u8(offset + 4), u8(offset + 5))
    }

    @inlinable @inline(__always)
    func setMAC(_ offset: Int, _ m: MACAddress) {
        setU8(offset, m.bytes.0); setU8(offset + 1, m.bytes.1); setU8(offset + 2, m.bytes.2)
        setU8(offset + 3, m.bytes.3); setU8(offset + 4, m.bytes.4); setU8(offset + 5, m.bytes.5)
    }

    @inlinable @inline(__always)
    func ipv4(_ offset: Int) -> IPv4Address { IPv4Address(be32(offset)) }

    @inlinable @inline(__always)
    func setIPv4(_ offset: Int, _ a: IPv4Address) { setBE32(offset, a.value) }

    /// An IPv6 address as its two big-endian 64-bit halves (`IPv6Address`'s own layout).
    @inlinable @inline(__always)
    func ipv6(_ offset: Int) -> IPv6Address { IPv6Address(high: be64(offset), low: be64(offset + 8)) }

    @inlinable @inline(__always)
    func setIPv6(_ offset: Int, _ a: IPv6Address) {
        setBE64(offset, a.high)
        setBE64(offset + 8, a.low)
    }

    /// The bytes `range`, rebased to start at zero. No copy.
    @inlinable @inline(__always)
    public func slice(_ range: Range<Int>) -> UnsafeMutableRawBufferPointer {
        assert(range.lowerBound >= 0 && range.upperBound <= count)
        return UnsafeMutableRawBufferPointer(rebasing: self[range])
    }
}
