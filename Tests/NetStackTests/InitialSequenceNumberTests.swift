import AllocationCounter
import Testing
@testable import NetStack

@Suite struct InitialSequenceNumberTests {
    /// The key of the SipHash reference vectors: bytes 00..0f, read little-endian.
    static let referenceKey: (UInt64, UInt64) = (0x0706050403020100, 0x0f0e0d0c0b0a0908)

    /// SipHash-2-4 of the messages 00, 00 01, ..., 00..3e (lengths 0 to 63) under
    /// `referenceKey`, from the reference implementation's vectors.h.
    static let referenceVectors: [UInt64] = [
        0x726fdb47dd0e0e31, 0x74f839c593dc67fd, 0x0d6c8009d9a94f5a, 0x85676696d7fb7e2d,
        0xcf2794e0277187b7, 0x18765564cd99a68d, 0xcbc9466e58fee3ce, 0xab0200f58b01d137,
        0x93f5f5799a932462, 0x9e0082df0ba9e4b0, 0x7a5dbbc594ddb9f3, 0xf4b32f46226bada7,
        0x751e8fbc860ee5fb, 0x14ea5627c0843d90, 0xf723ca908e7af2ee, 0xa129ca6149be45e5,
        0x3f2acc7f57c29bdb, 0x699ae9f52cbe4794, 0x4bc1b3f0968dd39c, 0xbb6dc91da77961bd,
        0xbed65cf21aa2ee98, 0xd0f2cbb02e3b67c7, 0x93536795e3a33e88, 0xa80c038ccd5ccec8,
        0xb8ad50c6f649af94, 0xbce192de8a85b8ea, 0x17d835b85bbb15f3, 0x2f2e6163076bcfad,
        0xde4daaaca71dc9a5, 0xa6a2506687956571, 0xad87a3535c49ef28, 0x32d892fad841c342,
        0x7127512f72f27cce, 0xa7f32346f95978e3, 0x12e0b01abb051238, 0x15e034d40fa197ae,
        0x314dffbe0815a3b4, 0x027990f029623981, 0xcadcd4e59ef40c4d, 0x9abfd8766a33735c,
        0x0e3ea96b5304a7d0, 0xad0c42d6fc585992, 0x187306c89bc215a9, 0xd4a60abcf3792b95,
        0xf935451de4f21df2, 0xa9538f0419755787, 0xdb9acddff56ca510, 0xd06c98cd5c0975eb,
        0xe612a3cb9ecba951, 0xc766e62cfcadaf96, 0xee64435a9752fe72, 0xa192d576b245165a,
        0x0a8787bf8ecb74b2, 0x81b3e73d20b49b6f, 0x7fa8220ba3b2ecea, 0x245731c13ca42499,
        0xb78dbfaf3a8d83bd, 0xea1ad565322a1a0b, 0x60e61c23a3795013, 0x6606d7e446282b93,
        0x6ca4ecb15c5f91e1, 0x9f626da15c9625f3, 0xe51b38608ef25f57, 0x958a324ceb064572,
    ]

    /// The vector printed in the SipHash paper (appendix A): key 00..0f, message
    /// 00..0e (15 bytes).
    @Test func sipHashMatchesThePaperVector() {
        let message: [UInt8] = Array(0...14)
        let hash = message.withUnsafeBytes {
            InitialSequenceNumbers.sipHash24(key: Self.referenceKey, message: $0)
        }
        #expect(hash == 0xa129ca6149be45e5)
    }

    /// Every length from 0 to 63: each tail length and several whole words.
    @Test func sipHashMatchesTheReferenceVectors() {
        let message: [UInt8] = Array(0...63)
        for length in 0..<64 {
            let hash = message.withUnsafeBytes {
                InitialSequenceNumbers.sipHash24(key: Self.referenceKey,
                                                 message: UnsafeRawBufferPointer(rebasing: $0[0..<length]))
            }
            #expect(hash == Self.referenceVectors[length], "length \(length)")
        }
    }

    static let generator = InitialSequenceNumbers(secret: (0x0123456789abcdef, 0xfedcba9876543210))

    static func isn(_ g: InitialSequenceNumbers = generator, local: UInt32 = 0x0a000002, localPort: UInt16 = 80,
                    remote: UInt32 = 0x0a000001, remotePort: UInt16 = 40000, at ns: Int64) -> UInt32 {
        g.next(localAddress: local, localPort: localPort, remoteAddress: remote, remotePort: remotePort,
               now: Instant(nanoseconds: ns))
    }

    /// RFC 6528's M: the same 4-tuple later gets an ISN larger by the number of
    /// 4-microsecond ticks elapsed (modulo 2^32).
    @Test func sameTupleLaterAdvancesByTheFourMicrosecondTicks() {
        let t0: Int64 = 5_000_000_000
        let first = Self.isn(at: t0)
        #expect(Self.isn(at: t0) == first)                             // a pure function
        #expect(Self.isn(at: t0 + 3_999) == first)                     // within one tick
        #expect(Self.isn(at: t0 + 4_000) &- first == 1)
        #expect(Self.isn(at: t0 + 4_000 * 12_345) &- first == 12_345)
        #expect(Self.isn(at: t0 + 1_000_000_000) &- first == 250_000)  // 250,000 ticks a second
        // About 4.77 hours later M has wrapped 2^32; the sequence space wraps with it.
        let later = t0 + 4_000 * (Int64(1) << 32) + 4_000 * 7
        #expect(Self.isn(at: later) &- first == 7)
    }

    /// RFC 6528's F: different tuples get unrelated values, so seeing one
    /// connection's ISN says nothing about another's.
    @Test func differentTuplesGetUnrelatedValues() {
        let t: Int64 = 1_000_000_000
        var seen = Set<UInt32>()
        var previous = Self.isn(remotePort: 1024, at: t)
        var flippedBits = 0
        for port in UInt16(1024)..<UInt16(3024) {
            let value = Self.isn(remotePort: port, at: t)
            seen.insert(value)
            if port > 1024 { flippedBits += (value ^ previous).nonzeroBitCount }
            previous = value
        }
        #expect(seen.count == 2000, "neighbouring ports collided")
        // Avalanche: neighbouring ports differ in about half of the 32 bits.
        let meanFlipped = Double(flippedBits) / 1999
        #expect(meanFlipped > 14 && meanFlipped < 18, "mean \(meanFlipped) bits differ")

        // Every field of the tuple matters.
        let base = Self.isn(at: t)
        #expect(Self.isn(local: 0x0a000003, at: t) != base)
        #expect(Self.isn(localPort: 81, at: t) != base)
        #expect(Self.isn(remote: 0x0a000009, at: t) != base)
        #expect(Self.isn(remotePort: 40001, at: t) != base)
        // Swapping the ends is a different connection.
        #expect(Self.isn(local: 0x0a000001, localPort: 40000, remote: 0x0a000002, remotePort: 80, at: t) != base)
        // And the secret matters.
        let other = InitialSequenceNumbers(secret: (0x0123456789abcdef, 0xfedcba9876543211))
        #expect(Self.isn(other, at: t) != base)
    }

    @Test func randomGeneratorsHaveDifferentSecrets() {
        let a = InitialSequenceNumbers.random(), b = InitialSequenceNumbers.random()
        #expect(a.secret != b.secret)
        #expect(Self.isn(a, at: 0) != Self.isn(b, at: 0))
    }

    @Test func nextAllocatesNothing() {
        let g = Self.generator
        var sum: UInt32 = 0
        _ = Self.isn(g, at: 0)      // warm up
        allocation_counter_start()
        for i in 0..<10_000 {
            sum &+= g.next(localAddress: 0x0a000002, localPort: 80, remoteAddress: UInt32(i),
                           remotePort: UInt16(truncatingIfNeeded: i), now: Instant(nanoseconds: Int64(i) * 1000))
        }
        let allocations = allocation_counter_stop()
        #expect(allocations == 0)
        #expect(sum != 0)
    }
}
