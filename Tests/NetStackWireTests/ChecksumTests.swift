import Testing
@testable import NetStackWire

/// Sums `bytes` in the chunks given by the sorted cut points.
private func chunkedSum(_ bytes: [UInt8], cuts: [Int]) -> UInt16 {
    var c = InternetChecksum()
    var start = 0
    for end in cuts + [bytes.count] {
        bytes[start..<end].withUnsafeBytes { c.add($0) }
        start = end
    }
    return c.sum
}

private func oneShotSum(_ bytes: [UInt8]) -> UInt16 {
    var c = InternetChecksum()
    bytes.withUnsafeBytes { c.add($0) }
    return c.sum
}

@Suite struct ChecksumTests {
    /// RFC 1071 section 3, "Numerical Examples": the bytes 00 01 f2 03 f4 f5 f6 f7
    /// sum to ddf2 (0001 + f203 + f4f5 + f6f7 = 2ddf0, folded ddf2).
    @Test func rfc1071WorkedExample() {
        let bytes: [UInt8] = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]
        #expect(oneShotSum(bytes) == 0xddf2)
        #expect(bytes.withUnsafeBytes { InternetChecksum.compute($0) } == 0x220d)
        // The RFC also sums the same bytes as byte-swapped words and gets the swapped sum.
        let swapped: [UInt8] = [0x01, 0x00, 0x03, 0xf2, 0xf5, 0xf4, 0xf7, 0xf6]
        #expect(oneShotSum(swapped) == 0xf2dd)
        // Data followed by its checksum verifies (sums to all ones).
        var c = InternetChecksum()
        (bytes + [0x22, 0x0d]).withUnsafeBytes { c.add($0) }
        #expect(c.verifies)
        #expect(c.sum == 0xffff)
    }

    /// The classic IPv4 header example (192.168.0.1 -> 192.168.0.199, UDP, checksum b861).
    @Test func knownIPv4HeaderChecksum() {
        var header = hex("4500 0073 0000 4000 4011 0000 c0a8 0001 c0a8 00c7")
        #expect(header.withUnsafeBytes { InternetChecksum.compute($0) } == 0xb861)
        header[10] = 0xb8; header[11] = 0x61
        var c = InternetChecksum()
        header.withUnsafeBytes { c.add($0) }
        #expect(c.verifies)
    }

    @Test func emptyAndOddLengths() {
        #expect(oneShotSum([]) == 0)
        #expect([UInt8]().withUnsafeBytes { InternetChecksum.compute($0) } == 0xffff)
        // A trailing byte is the high byte of a word padded with zero (RFC 1071 section 1).
        #expect(oneShotSum([0x01]) == 0x0100)
        #expect(oneShotSum([0xab, 0xcd, 0xef]) == 0x9ace)  // abcd + ef00 = 19acd -> 9ace
        #expect(oneShotSum([0xff, 0xff, 0xff]) == 0xff00)  // ffff + ff00 = 1feff -> ff00
        // Every length 0...70 of a fixed pattern, which exercises each tail of the 32/8/2-byte loops.
        let pattern = (0..<70).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        for n in 0...pattern.count {
            let b = Array(pattern[0..<n])
            #expect(oneShotSum(b) == referenceSum(b), "length \(n)")
        }
    }

    @Test func carriesAreFolded() {
        // All ones: every word is ffff, the one's-complement sum stays ffff.
        let ones = [UInt8](repeating: 0xff, count: 65_536 + 6)
        #expect(oneShotSum(ones) == referenceSum(ones))
        #expect(oneShotSum(ones) == 0xffff)
        // One more: the odd byte is ff00, and ffff + ff00 folds to ff00.
        #expect(oneShotSum(ones + [0xff]) == 0xff00)
        #expect(referenceSum(ones + [0xff]) == 0xff00)
        // A large buffer, to push the 64-bit accumulators well past 32 bits.
        var rng = SplitMix64(seed: 0xC0FFEE)
        let big = rng.bytes(1 << 20)
        #expect(oneShotSum(big) == referenceSum(big))
    }

    @Test func matchesReferenceOnRandomBuffers() {
        var rng = SplitMix64(seed: 1071)
        for i in 0..<600 {
            let n = Int.random(in: 0...2000, using: &rng)
            // Start up to 7 bytes into the storage so loads are unaligned too.
            let skew = Int.random(in: 0...7, using: &rng)
            let storage = rng.bytes(n + skew)
            let bytes = Array(storage[skew...])
            let fast = storage.withUnsafeBytes { raw in
                var c = InternetChecksum()
                c.add(UnsafeRawBufferPointer(rebasing: raw[skew...]))
                return c.sum
            }
            #expect(fast == referenceSum(bytes), "iteration \(i), length \(n), skew \(skew)")
            #expect(storage.withUnsafeBytes { InternetChecksum.compute(UnsafeRawBufferPointer(rebasing: $0[skew...])) }
                    == referenceChecksum(bytes))
        }
    }

    /// Adding in chunks, at odd boundaries too, equals adding all at once.
    @Test func chunkedAddsEqualOneShot() {
        var rng = SplitMix64(seed: 0x5EED)
        for i in 0..<2000 {
            let n = Int.random(in: 0...300, using: &rng)
            let bytes = rng.bytes(n)
            let cutCount = Int.random(in: 0...6, using: &rng)
            let cuts = (0..<cutCount).map { _ in Int.random(in: 0...n, using: &rng) }.sorted()
            let expected = referenceSum(bytes)
            #expect(chunkedSum(bytes, cuts: cuts) == expected, "iteration \(i), length \(n), cuts \(cuts)")
        }
        // Byte at a time: every chunk is odd.
        let bytes = SplitMix64(seed: 7).bytesOnce(101)
        #expect(chunkedSum(bytes, cuts: Array(1..<bytes.count)) == referenceSum(bytes))
    }

    @Test func wordAndPseudoHeaderAddsMatchBytes() {
        var words = InternetChecksum()
        words.add(UInt16(0x0001))
        words.add(UInt32(0xf203_f4f5))
        words.add(UInt16(0xf6f7))
        #expect(words.sum == 0xddf2)

        let src = IPv4Address(10, 0, 0, 1), dst = IPv4Address(192, 168, 7, 200)
        var c = InternetChecksum()
        c.addPseudoHeader(source: src, destination: dst, protocol: 17, length: 1234)
        let bytes = pseudoHeader(source: src, destination: dst, protocol: 17, length: 1234)
        #expect(c.sum == referenceSum(bytes))
    }

    /// RFC 1624 section 4: with HC = dd2f, m = 5555 -> m' = 3285 (the other
    /// words summing to cd7a), eqn. 3 gives 0000, as recomputation does; the
    /// older eqn. 2 gave ffff.
    @Test func rfc1624Example() {
        #expect(InternetChecksum.update(0xdd2f, old: UInt16(0x5555), new: UInt16(0x3285)) == 0x0000)
        // The same, checked against full recomputation on concrete data whose
        // other words sum to cd7a.
        var data: [UInt8] = [0xcd, 0x7a, 0x55, 0x55]
        #expect(referenceChecksum(data) == 0xdd2f)
        data[2] = 0x32; data[3] = 0x85
        #expect(referenceChecksum(data) == 0x0000)
    }

    /// RFC 1624 incremental update equals recomputing, for random data and
    /// random 16- and 32-bit field changes, including 0000/ffff values.
    @Test func incrementalUpdateEqualsRecomputation() {
        var rng = SplitMix64(seed: 1624)
        let edge: [UInt16] = [0x0000, 0xffff, 0x0001, 0xfffe, 0x8000, 0x7fff]
        var resultsSeen = Set<UInt16>()
        for i in 0..<5000 {
            let words = Int.random(in: 2...40, using: &rng)
            var data = rng.bytes(words * 2)
            // Sometimes make the data sparse, so the sums hit the edges.
            if i % 3 == 0 { for j in data.indices where j % 7 != 0 { data[j] = 0 } }
            let at = Int.random(in: 0..<words, using: &rng) * 2
            var new: UInt16
            switch i % 4 {
            case 0: new = edge.randomElement(using: &rng)!
            case 1:
                // Choose the new word so the new data sums to ffff: checksum 0000.
                var rest = data; rest[at] = 0; rest[at + 1] = 0
                new = ~referenceSum(rest)
                if new == 0 { new = 0xffff }
            default: new = UInt16.random(in: 0...0xffff, using: &rng)
            }
            if i % 11 == 0 { data[at] = 0xff; data[at + 1] = 0xff }  // old is ffff
            let oldWord = readBE16(data, at)
            let before = referenceChecksum(data)
            data[at] = UInt8(new >> 8); data[at + 1] = UInt8(new & 0xff)
            // Recomputation gives ffff only for all-zero data (sum +0), which eqn. 3
            // cannot produce (RFC 1624 section 3); such data is not a real header.
            guard data.contains(where: { $0 != 0 }) else { continue }
            let after = referenceChecksum(data)
            let updated = InternetChecksum.update(before, old: oldWord, new: new)
            #expect(updated == after, "iteration \(i): \(oldWord) -> \(new), before \(before)")
            resultsSeen.insert(updated)
        }
        #expect(resultsSeen.contains(0x0000))

        // 32-bit fields (addresses), chained: rewriting both addresses of an IPv4
        // header incrementally equals recomputing it.
        for _ in 0..<2000 {
            var header = rng.bytes(20)
            header[0] = 0x45; header[10] = 0; header[11] = 0
            let hc = referenceChecksum(header)
            let newSrc = i32(&rng), newDst = i32(&rng)
            let oldSrc = UInt32(readBE16(header, 12)) << 16 | UInt32(readBE16(header, 14))
            let oldDst = UInt32(readBE16(header, 16)) << 16 | UInt32(readBE16(header, 18))
            var c = InternetChecksum.update(hc, old: oldSrc, new: newSrc)
            c = InternetChecksum.update(c, old: oldDst, new: newDst)
            header.replaceSubrange(12..<16, with: be32(newSrc))
            header.replaceSubrange(16..<20, with: be32(newDst))
            #expect(c == referenceChecksum(header))
        }
    }
}

private func i32(_ rng: inout SplitMix64) -> UInt32 {
    switch rng.next() % 5 {
    case 0: 0
    case 1: 0xffff_ffff
    default: UInt32(truncatingIfNeeded: rng.next())
    }
}

extension SplitMix64 {
    func bytesOnce(_ n: Int) -> [UInt8] {
        var copy = self
        return copy.bytes(n)
    }
}
