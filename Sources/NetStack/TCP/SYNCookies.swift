import NetStackWire

/// SYN cookies (RFC 4987 3.6): the initial sequence number of a SYN-ACK that
/// encodes what the listener would otherwise keep for a half-open connection,
/// so that a full SYN queue costs nothing more per SYN. The layout is Linux's
/// (net/ipv4/syncookies.c), its low bits authenticated:
///
///     cookie = H(key0; tuple) + peer ISN + (counter << 24)
///              + (H(key1; tuple, peer ISN, counter, MSS index) << 2 | MSS index) mod 2^24
///
/// `counter` ticks once a minute (`counterPeriod`); a cookie is accepted while
/// the counter has moved on by less than `maximumAge` (so for one to two
/// minutes), and the second hash covers it: old cookies expire. The MSS is an
/// index into a table of four common values (`mss(at:)`). Linux adds the index
/// to the second hash, which leaves it unauthenticated: a cookie one off
/// either way (an ACK of ISS rather than ISS + 1, or a SYN's sequence number
/// one off) still checks, with a neighbouring index. Here the hash covers the
/// index and the peer's ISN, so every bit of the acknowledgment and of the
/// sequence number is checked.
///
/// The rest of the SYN's options (window scale, SACK-permitted) ride in the
/// low bits of the SYN-ACK's timestamp (`SYNCookieTimestamp`) when the peer
/// sent timestamps; without them they are lost, as in Linux.
///
/// H is SipHash-2-4 (`InitialSequenceNumbers.sipHash24`) under two 128-bit
/// keys made once per stack. A value type with no mutable state; encoding and
/// checking allocate nothing.
struct SYNCookies: Sendable {
    /// Linux's `msstab`: what a cookie can say of the peer's MSS, the largest
    /// value not above the one the SYN carried (536, RFC 9293 3.7.1's
    /// default, when it carried none). Index 3 covers Ethernet.
    static let mssTableCount = 4
    static func mss(at index: Int) -> UInt16 {
        switch index {
        case 0: 536
        case 1: 1300
        case 2: 1440
        default: 1460
        }
    }

    /// The index of the largest table entry not above `mss`.
    static func mssIndex(for mss: UInt16) -> Int {
        var i = mssTableCount - 1
        while i > 0 && Self.mss(at: i) > mss { i -= 1 }
        return i
    }

    /// Linux's TCP_SYNCOOKIE_PERIOD: the counter ticks once a minute.
    static let counterPeriod: Duration = .seconds(60)
    /// Linux's MAX_SYNCOOKIE_AGE: a cookie is valid under its own counter and the next.
    static let maximumAge: UInt32 = 2
    /// The longest a cookie can stay valid (`maximumAge` periods).
    static var lifetime: Duration { counterPeriod * Int(maximumAge) }
    /// The high eight bits carry the counter, the low 24 the MSS index and its
    /// authentication (Linux's COOKIEBITS).
    static let cookieBits: UInt32 = 24
    static let cookieMask: UInt32 = (1 << cookieBits) - 1

    /// The two SipHash keys (k0, k1): one hides the tuple, one the counter and MSS.
    let keys: ((UInt64, UInt64), (UInt64, UInt64))

    init(keys: ((UInt64, UInt64), (UInt64, UInt64))) {
        self.keys = keys
    }

    /// Keys drawn from `generator` (a seeded one in tests).
    init(using generator: inout some RandomNumberGenerator) {
        keys = ((generator.next(), generator.next()), (generator.next(), generator.next()))
    }

    /// Keys from the system's CSPRNG (getrandom(2)), as the ISN secret.
    static func random() -> SYNCookies {
        var generator = SystemRandomNumberGenerator()
        return SYNCookies(using: &generator)
    }

    /// The counter at `now`: minutes on the stack's clock.
    static func counter(at now: Instant) -> UInt32 {
        UInt32(truncatingIfNeeded: now.nanoseconds / counterPeriod.nanoseconds)
    }

    /// The cookie for a SYN on `tuple` (ours first) with sequence number
    /// `peerISN`, carrying `mssIndex`, made under `counter`.
    func cookie(for tuple: TCPFourTuple, peerISN: SequenceNumber, mssIndex: Int, counter: UInt32) -> SequenceNumber {
        precondition(mssIndex >= 0 && mssIndex < Self.mssTableCount)
        let value = hash(tuple, peerISN: 0, counter: 0, mssIndex: 0, key: keys.0) &+ peerISN.rawValue
            &+ (counter << Self.cookieBits) &+ low(tuple, peerISN: peerISN, counter: counter, mssIndex: mssIndex)
        return SequenceNumber(value)
    }

    /// The MSS index `cookie` carries if it was made for `tuple` and
    /// `peerISN` under `counter` or the one before it (Linux's
    /// `check_tcp_syn_cookie`); nil for anything else: forged, for another
    /// connection, or expired.
    func check(_ cookie: SequenceNumber, for tuple: TCPFourTuple, peerISN: SequenceNumber,
               counter: UInt32) -> Int? {
        let stripped = cookie.rawValue &- hash(tuple, peerISN: 0, counter: 0, mssIndex: 0, key: keys.0)
            &- peerISN.rawValue
        let age = (counter &- (stripped >> Self.cookieBits)) & (UInt32.max >> Self.cookieBits)
        guard age < Self.maximumAge else { return nil }
        let index = Int(stripped & Self.indexMask)
        guard index < Self.mssTableCount,
              stripped & Self.cookieMask == low(tuple, peerISN: peerISN, counter: counter &- age, mssIndex: index)
        else { return nil }
        return index
    }

    /// The two index bits under the cookie's 22 authenticating ones.
    private static let indexMask: UInt32 = 3

    /// The cookie's low 24 bits: 22 of the second hash, then the index.
    private func low(_ tuple: TCPFourTuple, peerISN: SequenceNumber, counter: UInt32, mssIndex: Int) -> UInt32 {
        let h = hash(tuple, peerISN: peerISN.rawValue, counter: counter, mssIndex: UInt32(mssIndex), key: keys.1)
        return (h << 2 | UInt32(mssIndex)) & Self.cookieMask
    }

    /// SipHash-2-4 of the tuple (addresses and ports in network order), the
    /// peer's ISN, the counter and the index, under `key`, cut to 32 bits.
    private func hash(_ tuple: TCPFourTuple, peerISN: UInt32, counter: UInt32, mssIndex: UInt32,
                      key: (UInt64, UInt64)) -> UInt32 {
        // Room for an IPv6 tuple and three words: 16 + 2 + 16 + 2 + 12 bytes.
        var message: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0)
        let h = withUnsafeMutableBytes(of: &message) { bytes in
            var offset = InitialSequenceNumbers.put(tuple.localAddress, into: bytes, at: 0)
            bytes.storeBytes(of: tuple.localPort.bigEndian, toByteOffset: offset, as: UInt16.self)
            offset = InitialSequenceNumbers.put(tuple.remoteAddress, into: bytes, at: offset + 2)
            bytes.storeBytes(of: tuple.remotePort.bigEndian, toByteOffset: offset, as: UInt16.self)
            bytes.storeBytes(of: peerISN.bigEndian, toByteOffset: offset + 2, as: UInt32.self)
            bytes.storeBytes(of: counter.bigEndian, toByteOffset: offset + 6, as: UInt32.self)
            bytes.storeBytes(of: mssIndex.bigEndian, toByteOffset: offset + 10, as: UInt32.self)
            return InitialSequenceNumbers.sipHash24(key: key,
                                                    message: UnsafeRawBufferPointer(rebasing: bytes[0 ..< offset + 14]))
        }
        return UInt32(truncatingIfNeeded: h)
    }
}

/// What a cookie SYN-ACK keeps of the peer's SYN in the low six bits of its
/// timestamp value (Linux's `cookie_init_timestamp` and
/// `cookie_timestamp_decode`), which the peer echoes in every ACK:
///
///     bits 0-3: the peer's window shift (0-14), 15 for no window scaling
///     bit 4:    SACK-permitted
///     bit 5:    ECN (never set: the stack does not negotiate ECN)
struct SYNCookieTimestamp: Equatable, Sendable {
    /// The window shift the peer announced (RFC 7323 2.3), nil if it sent none.
    var windowScale: UInt8?
    var sackPermitted: Bool
    var ecn: Bool

    static let bits: UInt32 = 6
    static let mask: UInt32 = (1 << bits) - 1
    private static let noWindowScale: UInt32 = 0xf
    private static let sackBit: UInt32 = 1 << 4
    private static let ecnBit: UInt32 = 1 << 5

    init(windowScale: UInt8?, sackPermitted: Bool, ecn: Bool = false) {
        // RFC 7323 2.3: a shift above 14 is taken as 14.
        self.windowScale = windowScale.map { min($0, TCPOptions.maximumWindowScale) }
        self.sackPermitted = sackPermitted
        self.ecn = ecn
    }

    /// The options from the low bits of an echoed timestamp.
    init(decoding echo: UInt32) {
        let shift = echo & Self.noWindowScale
        windowScale = shift == Self.noWindowScale ? nil : UInt8(shift)
        sackPermitted = echo & Self.sackBit != 0
        ecn = echo & Self.ecnBit != 0
    }

    /// The six bits.
    var encoded: UInt32 {
        var bits = windowScale.map { UInt32($0) } ?? Self.noWindowScale
        if sackPermitted { bits |= Self.sackBit }
        if ecn { bits |= Self.ecnBit }
        return bits
    }

    /// The timestamp value to send at `clock` (what the connection's
    /// timestamp clock reads now): its low bits replaced by the options, and
    /// one period earlier when that would put it ahead of the clock, so the
    /// connection's later timestamps never go backwards (RFC 7323 5.3).
    func timestamp(at clock: UInt32) -> UInt32 {
        let value = (clock & ~Self.mask) | encoded
        return encoded > clock & Self.mask ? value &- (1 << Self.bits) : value
    }
}
