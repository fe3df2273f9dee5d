import NetStackWire

/// Initial send sequence numbers, chosen as RFC 6528 (and RFC 9293 3.4.1) says:
///
///     ISN = M + F(localip, localport, remoteip, remoteport, secretkey)
///
/// M is a timer ticking every 4 microseconds, so successive incarnations of the
/// same connection get increasing ISNs (the clock-driven scheme of RFC 793 that
/// keeps old duplicates of a previous incarnation out of the new one's window). F
/// is a keyed pseudorandom function of the connection's 4-tuple, so an off-path
/// attacker cannot predict the ISN of a connection it does not see (RFC 6528
/// section 3, against blind spoofing and injection; RFC 5961 covers the rest).
///
/// F here is SipHash-2-4 (Aumasson and Bernstein, 2012) keyed with a 128-bit
/// secret, as Linux uses for the same purpose: a short-input PRF, fast, and
/// written out below (no cryptography dependency for 40 lines). RFC 6528 suggests
/// MD5 and asks for a key that cannot be guessed; make it with `random()`, once per
/// stack. (RFC 6528 section 3 also suggests changing the key now and then; doing
/// so breaks M's monotonicity for reused tuples, so this type leaves that to a
/// caller that wants it.)
///
/// A value type with no mutable state: cheap to call on every SYN, never allocates.
struct InitialSequenceNumbers: Sendable {
    /// The SipHash key (k0, k1): the key's bytes 0-7 and 8-15, little-endian.
    let secret: (UInt64, UInt64)

    init(secret: (UInt64, UInt64)) {
        self.secret = secret
    }

    /// A generator with a fresh 128-bit secret from the system's CSPRNG
    /// (`SystemRandomNumberGenerator`: getrandom(2) on Linux).
    static func random() -> InitialSequenceNumbers {
        var generator = SystemRandomNumberGenerator()
        return InitialSequenceNumbers(secret: (generator.next(), generator.next()))
    }

    /// The ISN for the connection `tuple`, opened at `now`: the 4-tuple of
    /// either family is the hash's message (addresses and ports in network order).
    func next(for tuple: TCPFourTuple, now: Instant) -> UInt32 {
        let m = UInt32(truncatingIfNeeded: now.nanoseconds / 4000)
        var message: (UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0)
        let hash = withUnsafeMutableBytes(of: &message) { bytes in
            var offset = Self.put(tuple.localAddress, into: bytes, at: 0)
            bytes.storeBytes(of: tuple.localPort.bigEndian, toByteOffset: offset, as: UInt16.self)
            offset = Self.put(tuple.remoteAddress, into: bytes, at: offset + 2)
            bytes.storeBytes(of: tuple.remotePort.bigEndian, toByteOffset: offset, as: UInt16.self)
            offset += 2
            return Self.sipHash24(key: secret, message: UnsafeRawBufferPointer(rebasing: bytes[0 ..< offset]))
        }
        return m &+ UInt32(truncatingIfNeeded: hash)
    }

    /// Stores `address` in network order at `offset`; returns the offset after it.
    @inline(__always)
    static func put(_ address: IPAddress, into bytes: UnsafeMutableRawBufferPointer, at offset: Int) -> Int {
        switch address {
        case .v4(let a):
            bytes.storeBytes(of: a.value.bigEndian, toByteOffset: offset, as: UInt32.self)
            return offset + 4
        case .v6(let a):
            bytes.storeBytes(of: a.high.bigEndian, toByteOffset: offset, as: UInt64.self)
            bytes.storeBytes(of: a.low.bigEndian, toByteOffset: offset + 8, as: UInt64.self)
            return offset + 16
        }
    }

    /// The ISN for an IPv4 connection from `localAddress:localPort` to
    /// `remoteAddress:remotePort` (addresses as host-order integers, 10.0.0.1 =
    /// 0x0a000001), opened at `now`.
    func next(localAddress: UInt32, localPort: UInt16, remoteAddress: UInt32, remotePort: UInt16,
              now: Instant) -> UInt32 {
        next(for: TCPFourTuple(localAddress: .v4(IPv4Address(localAddress)), localPort: localPort,
                               remoteAddress: .v4(IPv4Address(remoteAddress)), remotePort: remotePort), now: now)
    }

    // MARK: SipHash-2-4

    /// SipHash-2-4 of `message` under the 128-bit `key` (k0, k1), where k0 and k1
    /// are the key's bytes 0-7 and 8-15 read little-endian. Follows the reference
    /// description in the SipHash paper (section 2): two compression rounds per
    /// 8-byte word, four finalisation rounds.
    static func sipHash24(key: (UInt64, UInt64), message: UnsafeRawBufferPointer) -> UInt64 {
        var v = SipState(key: key)
        let length = message.count
        let whole = length & ~7
        var offset = 0
        while offset < whole {
            let m = UInt64(littleEndian: message.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
            v.v3 ^= m
            v.round(); v.round()
            v.v0 ^= m
            offset += 8
        }
        // The last word: the remaining 0-7 bytes, little-endian, with the message
        // length (mod 256) in the top byte.
        var last = UInt64(truncatingIfNeeded: length) << 56
        for i in 0 ..< (length - whole) {
            last |= UInt64(message[whole + i]) << (8 * UInt64(i))
        }
        v.v3 ^= last
        v.round(); v.round()
        v.v0 ^= last

        v.v2 ^= 0xff
        v.round(); v.round(); v.round(); v.round()
        return v.v0 ^ v.v1 ^ v.v2 ^ v.v3
    }
}

/// SipHash's four words of internal state. A struct with a mutating round rather
/// than a closure over local variables: debug builds box captured variables on
/// the heap, and `next` must not allocate in any build.
private struct SipState {
    var v0: UInt64, v1: UInt64, v2: UInt64, v3: UInt64

    init(key: (UInt64, UInt64)) {
        v0 = 0x736f6d6570736575 ^ key.0     // "somepseudorandomlygeneratedbytes"
        v1 = 0x646f72616e646f6d ^ key.1
        v2 = 0x6c7967656e657261 ^ key.0
        v3 = 0x7465646279746573 ^ key.1
    }

    /// One SipRound.
    @inline(__always)
    mutating func round() {
        v0 &+= v1; v1 = v1.sipRotate(13); v1 ^= v0; v0 = v0.sipRotate(32)
        v2 &+= v3; v3 = v3.sipRotate(16); v3 ^= v2
        v0 &+= v3; v3 = v3.sipRotate(21); v3 ^= v0
        v2 &+= v1; v1 = v1.sipRotate(17); v1 ^= v2; v2 = v2.sipRotate(32)
    }
}

private extension UInt64 {
    @inline(__always)
    func sipRotate(_ n: UInt64) -> UInt64 { (self << n) | (self >> (64 - n)) }
}
