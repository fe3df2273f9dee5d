import Testing
@testable import NetStackWire

/// How many times each view accepted a buffer, to show the fuzzer reaches every layer.
private struct Reached {
    var ethernet = 0, arp = 0, ipv4 = 0, quoted = 0, icmp = 0, udp = 0, tcp = 0
}

/// Feeds `buf` to every view; for each one that accepts it, reads every
/// accessor, checks slices stay inside `buf` and lengths agree, round-trips
/// the Repr, and recurses into the payloads.
private func exercise(_ buf: UnsafeMutableRawBufferPointer, depth: Int, _ reached: inout Reached) {
    let none = IPv4Address(0)

    if let f = try? EthernetFrame(validating: buf) {
        reached.ethernet += 1
        #expect(buf.count >= 14)
        _ = (f.destination, f.source, f.etherType, f.etherType.description)
        let payload = f.payload
        #expect(buf.contains(payload) && payload.count == buf.count - 14)
        let repr = EthernetRepr(parsing: f)
        var out = [UInt8](repeating: 0, count: 14)
        out.withUnsafeMutableBytes { repr.emit(into: $0) }
        #expect(out == Array(buf[0..<14]))
        if depth > 0 { exercise(payload, depth: depth - 1, &reached) }
    }

    if let p = try? ARPPacket(validating: buf) {
        reached.arp += 1
        #expect(buf.count >= 28)
        let repr = ARPRepr(parsing: p)
        var out = [UInt8](repeating: 0, count: 28)
        out.withUnsafeMutableBytes { repr.emit(into: $0) }
        #expect(out == Array(buf[0..<28]))
    }

    if let p = try? IPv4Packet(validating: buf) {
        reached.ipv4 += 1
        let hl = p.headerLength
        #expect(hl >= 20 && hl <= 60 && hl % 4 == 0)
        #expect(p.totalLength >= hl && p.totalLength <= buf.count)
        #expect(p.bytes.count == p.totalLength && buf.contains(p.bytes))
        #expect(p.header.count == hl && buf.contains(p.header))
        #expect(p.options.count == hl - 20 && buf.contains(p.options))
        #expect(p.payload.count == p.totalLength - hl && buf.contains(p.payload))
        _ = (p.dscpECN, p.identification, p.dontFragment, p.moreFragments, p.timeToLive, p.protocol.description,
             p.headerChecksum, p.source, p.destination)
        #expect(p.fragmentOffset % 8 == 0 && p.fragmentOffset <= 65528)
        #expect(p.isFragment == (p.moreFragments || p.fragmentOffset != 0))
        #expect(p.checksumIsValid == (referenceSum(p.header.array) == 0xffff))
        let repr = IPv4Repr(parsing: p)
        var out = [UInt8](repeating: 0, count: 20 + repr.payloadLength)
        out.withUnsafeMutableBytes { repr.emit(into: $0) }
        let again = try? out.withUnsafeMutableBytes { buf throws(WireError) in IPv4Repr(parsing: try IPv4Packet(validating: buf)) }
        #expect(again == repr)
        // Refilling the checksum (on a copy) always verifies.
        var copy = p.bytes.array
        copy.withUnsafeMutableBytes { c in
            guard let q = try? IPv4Packet(validating: c) else { Issue.record("copy refused"); return }
            q.fillChecksum()
            #expect(q.checksumIsValid)
        }
        if depth > 0 { exercise(p.payload, depth: depth - 1, &reached) }
    }

    if let p = try? IPv4Packet(validatingQuoted: buf) {
        reached.quoted += 1
        let hl = p.headerLength
        #expect(hl >= 20 && hl <= 60 && hl <= buf.count && p.totalLength >= hl)
        #expect(p.bytes.count == buf.count && buf.contains(p.bytes))
        #expect(p.header.count == hl && buf.contains(p.header))
        #expect(p.options.count == hl - 20 && buf.contains(p.options))
        #expect(p.payload.count == buf.count - hl && buf.contains(p.payload))
        _ = (p.dscpECN, p.identification, p.dontFragment, p.moreFragments, p.fragmentOffset, p.isFragment,
             p.timeToLive, p.protocol, p.headerChecksum, p.source, p.destination, IPv4Repr(parsing: p))
        #expect(p.checksumIsValid == (referenceSum(p.header.array) == 0xffff))
    } else {
        // Whatever the ordinary view accepts, the quoted one accepts too.
        #expect((try? IPv4Packet(validating: buf)) == nil)
    }

    if let p = try? ICMPv4Packet(validating: buf) {
        reached.icmp += 1
        #expect(p.data.count == buf.count - 8 && buf.contains(p.data))
        _ = (p.type, p.code, p.checksum, p.echoIdentifier, p.echoSequence, p.nextHopMTU)
        #expect(p.checksumIsValid == (referenceSum(buf.array) == 0xffff))
        let repr = ICMPv4Repr(parsing: p)
        #expect(repr.length == buf.count)
        var out = [UInt8](repeating: 0, count: 8) + p.data.array
        out.withUnsafeMutableBytes { repr.emit(into: $0) }
        let again = try? out.withUnsafeMutableBytes { buf throws(WireError) -> ICMPv4Repr in
            let q = try ICMPv4Packet(validating: buf)
            #expect(q.checksumIsValid)
            return ICMPv4Repr(parsing: q)
        }
        #expect(again == repr)
    }

    if let t = try? TCPSegment(validating: buf) {
        reached.tcp += 1
        let hl = t.headerLength
        #expect(hl >= 20 && hl <= 60 && hl <= buf.count && t.dataOffset * 4 == hl)
        #expect(t.header.count == hl && buf.contains(t.header))
        #expect(t.options.count == hl - 20 && buf.contains(t.options))
        #expect(t.payload.count == buf.count - hl && buf.contains(t.payload))
        _ = (t.sourcePort, t.destinationPort, t.sequenceNumber, t.acknowledgmentNumber, t.flags.description,
             t.window, t.checksum, t.urgentPointer)
        #expect(t.checksumIsValid(source: none, destination: none)
                == (referenceSum(pseudoHeader(source: none, destination: none, protocol: 6, length: buf.count)
                                 + buf.array) == 0xffff))
        _ = try? TCPRepr(parsing: t)  // options may be refused; it must not crash
    }

    if let d = try? UDPDatagram(validating: buf) {
        reached.udp += 1
        #expect(d.length >= 8 && d.length <= buf.count)
        #expect(d.bytes.count == d.length && buf.contains(d.bytes))
        #expect(d.payload.count == d.length - 8 && buf.contains(d.payload))
        _ = (d.sourcePort, d.destinationPort, d.checksum)
        let valid = d.checksumIsValid(source: none, destination: none)
        let reference = d.checksum == 0
            || referenceSum(pseudoHeader(source: none, destination: none, protocol: 17, length: d.length)
                            + d.bytes.array) == 0xffff
        #expect(valid == reference)
        let repr = UDPRepr(parsing: d)
        var out = [UInt8](repeating: 0, count: 8) + d.payload.array
        out.withUnsafeMutableBytes { repr.emit(into: $0, source: Capture.ipA, destination: Capture.ipB) }
        let again = try? out.withUnsafeMutableBytes { buf throws(WireError) -> UDPRepr in
            let q = try UDPDatagram(validating: buf)
            #expect(q.checksum != 0)
            #expect(q.checksumIsValid(source: Capture.ipA, destination: Capture.ipB))
            return UDPRepr(parsing: q)
        }
        #expect(again == repr)
    }
}

/// Runs `exercise` on `bytes` from an exactly-sized allocation, at a random
/// alignment, so any read past the end is a read past the allocation.
private func fuzz(_ bytes: [UInt8], skew: Int, _ reached: inout Reached) {
    let raw = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes.count + skew, alignment: 16)
    defer { raw.deallocate() }
    let buf = UnsafeMutableRawBufferPointer(rebasing: raw[skew...])
    buf.copyBytes(from: bytes)
    exercise(buf, depth: 3, &reached)
}

@Suite struct FuzzTests {
    @Test func randomBuffers() {
        var rng = SplitMix64(seed: 0xF022)
        var reached = Reached()
        for i in 0..<4000 {
            let n = Int.random(in: 0...200, using: &rng)
            var bytes = rng.bytes(n)
            // Bias some buffers towards valid-looking headers so deeper layers are reached.
            switch i % 4 {
            case 1 where n >= 20:  // IPv4 with a plausible IHL and total length
                bytes[0] = 0x40 | UInt8.random(in: 5...15, using: &rng)
                bytes.replaceSubrange(2..<4, with: be16(UInt16.random(in: 0...UInt16(n), using: &rng)))
                bytes[9] = [1, 17, 6].randomElement(using: &rng)!
            case 2 where n >= 8:  // UDP with a plausible length
                bytes.replaceSubrange(4..<6, with: be16(UInt16.random(in: 0...UInt16(n + 2), using: &rng)))
            case 3 where n >= 14 + 8:  // ARP in Ethernet
                bytes.replaceSubrange(12..<20, with: [0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04])
            default: break
            }
            fuzz(bytes, skew: Int.random(in: 0...7, using: &rng), &reached)
        }
        #expect(reached.ethernet > 0 && reached.arp > 0 && reached.ipv4 > 0 && reached.quoted > 0 && reached.icmp > 0 && reached.udp > 0 && reached.tcp > 0,
                "\(reached)")
    }

    @Test func mutatedCapturedFrames() throws {
        let frames = try captureNames.flatMap { try loadCapture($0).map(\.bytes) }
        #expect(frames.count == 16)
        var rng = SplitMix64(seed: 0xCAB1E)
        var reached = Reached()
        // First, every valid frame and every truncation of the short ones.
        for f in frames {
            for n in 0...min(f.count, 120) { fuzz(Array(f[0..<n]), skew: n % 8, &reached) }
            fuzz(f, skew: 0, &reached)
        }
        for i in 0..<4000 {
            var f = frames[i % frames.count]
            let isIPv4 = f[12] == 0x08 && f[13] == 0x00
            switch Int.random(in: 0..<8, using: &rng) {
            case 0:  // truncate
                f = Array(f[0..<Int.random(in: 0...f.count, using: &rng)])
            case 1 where isIPv4:  // IPv4 total length: anything, or near the truth
                let old = Int(readBE16(f, 16))
                let new = Bool.random(using: &rng) ? Int.random(in: 0...0xffff, using: &rng)
                                                   : max(0, old + Int.random(in: -24...24, using: &rng))
                f.replaceSubrange(16..<18, with: be16(UInt16(min(new, 0xffff))))
            case 2 where isIPv4:  // IHL and version
                f[14] = UInt8.random(in: 0...255, using: &rng)
            case 3 where isIPv4 && f[23] == 17 && f.count >= 42:  // UDP length
                let old = Int(readBE16(f, 38))
                let new = Bool.random(using: &rng) ? Int.random(in: 0...0xffff, using: &rng)
                                                   : max(0, old + Int.random(in: -12...12, using: &rng))
                f.replaceSubrange(38..<40, with: be16(UInt16(min(new, 0xffff))))
            case 4:  // flip a few bits anywhere
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    f[Int.random(in: 0..<f.count, using: &rng)] ^= 1 << UInt8.random(in: 0...7, using: &rng)
                }
            case 5:  // append junk (padding)
                f += rng.bytes(Int.random(in: 1...40, using: &rng))
            case 6 where f.count > 14:  // shift the payload: misaligned headers
                let cut = Int.random(in: 1...min(40, f.count - 14), using: &rng)
                f.removeSubrange(14..<(14 + cut))
            default:  // the ICMP-quoted packet inside a port unreachable: mangle its length
                if f.count > 44, f[23] == 1 { f.replaceSubrange(44..<46, with: rng.bytes(2)) }
            }
            fuzz(f, skew: Int.random(in: 0...7, using: &rng), &reached)
        }
        #expect(reached.ethernet > 0 && reached.arp > 0 && reached.ipv4 > 0 && reached.quoted > 0 && reached.icmp > 0 && reached.udp > 0 && reached.tcp > 0,
                "\(reached)")
    }
}
