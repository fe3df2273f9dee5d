import AllocationCounter
import Testing
@testable import NetStack
import NetStackWire

/// The wire-format parts of SYN cookies (RFC 4987 3.6, Linux's encoding): the
/// cookie itself, the MSS table and the options in the timestamp's low bits.
@Suite struct SYNCookieTests {
    static let cookies = SYNCookies(keys: ((0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210),
                                           (0x0f1e_2d3c_4b5a_6978, 0x8796_a5b4_c3d2_e1f0)))
    static let tuple = TCPFourTuple(localAddress: IPv4Address(10, 0, 0, 2), localPort: 80,
                                    remoteAddress: IPv4Address(10, 0, 0, 1), remotePort: 40000)
    static let peerISN = SequenceNumber(0x1234_5678)

    // MARK: The MSS table

    /// Linux's msstab: the largest of 536, 1300, 1440, 1460 not above the peer's MSS.
    @Test func mssIsTheLargestTableEntryNotAboveThePeers() {
        let cases: [(UInt16, Int)] = [(9000, 3), (1500, 3), (1460, 3), (1459, 2), (1440, 2), (1439, 1),
                                      (1300, 1), (1299, 0), (536, 0), (100, 0), (0, 0)]
        for (mss, index) in cases {
            #expect(SYNCookies.mssIndex(for: mss) == index, "MSS \(mss)")
        }
        #expect((0..<SYNCookies.mssTableCount).map { SYNCookies.mss(at: $0) } == [536, 1300, 1440, 1460])
    }

    // MARK: The cookie

    /// The cookie is Linux's sum with its low bits authenticated, restated
    /// here from its parts with SipHash directly: H0(tuple) + ISN +
    /// counter << 24 + (H1(tuple, ISN, counter, index) << 2 | index) mod 2^24.
    @Test func cookieIsTheKeyedSumOfItsParts() {
        func h(_ key: (UInt64, UInt64), isn: UInt32, counter: UInt32, index: UInt32) -> UInt32 {
            // 10.0.0.2:80, 10.0.0.1:40000, then the words, all big-endian.
            let message: [UInt8] = [10, 0, 0, 2, 0, 80, 10, 0, 0, 1, 0x9c, 0x40] + be32(isn) + be32(counter)
                + be32(index)
            return UInt32(truncatingIfNeeded: message.withUnsafeBytes {
                InitialSequenceNumbers.sipHash24(key: key, message: $0)
            })
        }
        let counter: UInt32 = 0x2a5
        for index in 0..<SYNCookies.mssTableCount {
            let i = UInt32(index)
            let expected = h(Self.cookies.keys.0, isn: 0, counter: 0, index: 0) &+ Self.peerISN.rawValue
                &+ (counter << 24)
                &+ ((h(Self.cookies.keys.1, isn: Self.peerISN.rawValue, counter: counter, index: i) << 2 | i) & 0xff_ffff)
            let cookie = Self.cookies.cookie(for: Self.tuple, peerISN: Self.peerISN, mssIndex: index, counter: counter)
            #expect(cookie.rawValue == expected)
        }
    }

    /// Linux leaves the index unauthenticated, so a cookie or a sequence
    /// number a little off still checks there; here nothing near does.
    @Test func cookiesNearAGoodOneFail() {
        for index in 0..<SYNCookies.mssTableCount {
            let cookie = Self.cookies.cookie(for: Self.tuple, peerISN: Self.peerISN, mssIndex: index, counter: 9)
            for k in 1...8 {
                #expect(Self.cookies.check(cookie + k, for: Self.tuple, peerISN: Self.peerISN, counter: 9) == nil)
                #expect(Self.cookies.check(cookie - k, for: Self.tuple, peerISN: Self.peerISN, counter: 9) == nil)
                #expect(Self.cookies.check(cookie, for: Self.tuple, peerISN: Self.peerISN + k, counter: 9) == nil)
                #expect(Self.cookies.check(cookie, for: Self.tuple, peerISN: Self.peerISN - k, counter: 9) == nil)
            }
        }
    }

    /// A cookie checks out, with its MSS index, under its own counter and the
    /// next one (Linux accepts two periods' worth), and not after.
    @Test func cookieIsValidForTwoCountersAndCarriesItsMSS() {
        for index in 0..<SYNCookies.mssTableCount {
            for counter: UInt32 in [0, 1, 0xff, 0x100, 0x2a5, UInt32.max] {
                let cookie = Self.cookies.cookie(for: Self.tuple, peerISN: Self.peerISN, mssIndex: index,
                                                 counter: counter)
                #expect(Self.cookies.check(cookie, for: Self.tuple, peerISN: Self.peerISN, counter: counter) == index)
                #expect(Self.cookies.check(cookie, for: Self.tuple, peerISN: Self.peerISN,
                                           counter: counter &+ 1) == index)
                #expect(Self.cookies.check(cookie, for: Self.tuple, peerISN: Self.peerISN,
                                           counter: counter &+ 2) == nil, "expired")
                #expect(Self.cookies.check(cookie, for: Self.tuple, peerISN: Self.peerISN,
                                           counter: counter &- 1) == nil, "from the future")
            }
        }
    }

    /// The counter is the clock's minutes.
    @Test func counterTicksOnceAMinute() {
        #expect(SYNCookies.counter(at: Instant(nanoseconds: 0)) == 0)
        #expect(SYNCookies.counter(at: Instant(nanoseconds: 59_999_999_999)) == 0)
        #expect(SYNCookies.counter(at: Instant(nanoseconds: 60_000_000_000)) == 1)
        #expect(SYNCookies.counter(at: Instant(nanoseconds: 3_600_000_000_000)) == 60)
        #expect(SYNCookies.lifetime == .seconds(120))
    }

    /// Every field the cookie covers matters: another tuple, another ISN, or
    /// other keys find no cookie.
    @Test func cookieIsBoundToTupleISNAndKeys() {
        let counter: UInt32 = 77
        let cookie = Self.cookies.cookie(for: Self.tuple, peerISN: Self.peerISN, mssIndex: 3, counter: counter)
        var others: [TCPFourTuple] = []
        var t = Self.tuple
        t.remotePort = 40001; others.append(t)
        t = Self.tuple; t.localPort = 81; others.append(t)
        t = Self.tuple; t.remoteAddress = .v4(IPv4Address(10, 0, 0, 3)); others.append(t)
        t = Self.tuple; t.localAddress = .v4(IPv4Address(10, 0, 0, 4)); others.append(t)
        for other in others {
            #expect(Self.cookies.check(cookie, for: other, peerISN: Self.peerISN, counter: counter) == nil, "\(other)")
        }
        #expect(Self.cookies.check(cookie, for: Self.tuple, peerISN: Self.peerISN + 1, counter: counter) == nil)
        #expect(Self.cookies.check(cookie + 1, for: Self.tuple, peerISN: Self.peerISN, counter: counter) == nil)
        var rng = SplitMix64(seed: 9)
        let otherKeys = SYNCookies(using: &rng)
        #expect(otherKeys.check(cookie, for: Self.tuple, peerISN: Self.peerISN, counter: counter) == nil)
        // IPv6 tuples hash too.
        let v6 = TCPFourTuple(localAddress: .v6(IPv6Address(high: 0x2001_0db8 << 32, low: 2)), localPort: 80,
                              remoteAddress: .v6(IPv6Address(high: 0x2001_0db8 << 32, low: 1)), remotePort: 40000)
        let c6 = Self.cookies.cookie(for: v6, peerISN: Self.peerISN, mssIndex: 1, counter: counter)
        #expect(Self.cookies.check(c6, for: v6, peerISN: Self.peerISN, counter: counter) == 1)
        #expect(Self.cookies.check(c6, for: Self.tuple, peerISN: Self.peerISN, counter: counter) == nil)
    }

    /// A blind guess is accepted about once in 2^29 tries (a 2-in-256 counter
    /// and a 4-in-2^24 index): 200,000 random guesses find none.
    @Test func randomGuessesFail() {
        var rng = SplitMix64(seed: 4987)
        var accepted = 0
        for _ in 0..<200_000 {
            let guess = SequenceNumber(UInt32(truncatingIfNeeded: rng.next()))
            if Self.cookies.check(guess, for: Self.tuple, peerISN: Self.peerISN, counter: 1000) != nil { accepted += 1 }
        }
        #expect(accepted == 0)
    }

    /// Cookies from the system's CSPRNG differ per stack.
    @Test func randomKeysDiffer() {
        let a = SYNCookies.random(), b = SYNCookies.random()
        #expect(a.cookie(for: Self.tuple, peerISN: Self.peerISN, mssIndex: 0, counter: 1)
                    != b.cookie(for: Self.tuple, peerISN: Self.peerISN, mssIndex: 0, counter: 1))
    }

    @Test func makingAndCheckingAllocateNothing() {
        let c = Self.cookies
        var sum: UInt32 = 0
        _ = c.cookie(for: Self.tuple, peerISN: Self.peerISN, mssIndex: 0, counter: 0)
        allocation_counter_start()
        for i in 0..<10_000 {
            let cookie = c.cookie(for: Self.tuple, peerISN: SequenceNumber(UInt32(i)), mssIndex: i & 3, counter: 5)
            sum &+= UInt32(c.check(cookie, for: Self.tuple, peerISN: SequenceNumber(UInt32(i)), counter: 6) ?? 9)
        }
        let allocations = allocation_counter_stop()
        #expect(allocations == 0)
        #expect(sum == 10_000 / 4 * 6)
    }

    // MARK: The timestamp bits

    /// Bits 0-3 the peer's window shift (15: none), bit 4 SACK-permitted,
    /// bit 5 ECN, as Linux lays them out.
    @Test func optionsEncodeInSixBits() {
        #expect(SYNCookieTimestamp(windowScale: nil, sackPermitted: false).encoded == 0x0f)
        #expect(SYNCookieTimestamp(windowScale: 0, sackPermitted: false).encoded == 0x00)
        #expect(SYNCookieTimestamp(windowScale: 7, sackPermitted: true).encoded == 0x17)
        #expect(SYNCookieTimestamp(windowScale: 14, sackPermitted: true, ecn: true).encoded == 0x3e)
        // RFC 7323 2.3: a shift above 14 is 14.
        #expect(SYNCookieTimestamp(windowScale: 200, sackPermitted: false).windowScale == 14)
        let shifts: [UInt8?] = [nil] + (0...14).map { UInt8?($0) }
        for shift in shifts {
            for sack in [false, true] {
                for ecn in [false, true] {
                    let o = SYNCookieTimestamp(windowScale: shift, sackPermitted: sack, ecn: ecn)
                    #expect(o.encoded < 64)
                    // Only the low six bits are read.
                    #expect(SYNCookieTimestamp(decoding: 0xabcd_ef00 & ~0x3f | o.encoded) == o)
                }
            }
        }
    }

    /// The timestamp sent carries the bits and never runs ahead of the
    /// connection's clock, so its later timestamps do not go backwards.
    @Test func timestampCarriesTheBitsAndNeverRunsAhead() {
        let options = SYNCookieTimestamp(windowScale: 7, sackPermitted: true)
        for clock: UInt32 in [0, 5, 0x17, 0x18, 0x3f, 0x40, 1_000_000, 0xffff_ffc0, 0xffff_ffff] {
            let ts = options.timestamp(at: clock)
            #expect(ts & 0x3f == 0x17, "clock \(clock)")
            let behind = clock &- ts
            #expect(behind < 64, "clock \(clock): \(ts) is \(behind) behind")
        }
        // Below the options' value, it goes back one period (wrapping at 0).
        #expect(options.timestamp(at: 5) == 0xffff_ffd7)
        #expect(options.timestamp(at: 0x100) == 0xd7)
        #expect(options.timestamp(at: 0x117) == 0x117)
    }
}
