import Testing
@testable import NetStackWire

/// How many times each view accepted a buffer, to show the fuzzer reaches every layer.
private struct Reached {
    var ethernet = 0, arp = 0, ipv4 = 0, quoted = 0, icmp = 0, udp = 0, tcp = 0
    var ipv6 = 0, quoted6 = 0, icmpv6 = 0, fragment = 0, ndp = 0, ndpOptions = 0
    /// Chain walks by how they ended: upper layer, no next header, fragment, parameter problem, discard.
    var chainEnds = [0, 0, 0, 0, 0]

    var reachedIPv6: Bool {
        ipv6 > 0 && quoted6 > 0 && icmpv6 > 0 && fragment > 0 && ndp > 0 && ndpOptions > 0 && !chainEnds.contains(0)
    }
}

/// Checks that where a chain walk ended lies inside the packet, and counts it.
private func check(_ end: IPv6ChainEnd, packetLength n: Int, _ reached: inout Reached) {
    switch end {
    case let .upperLayer(_, offset, field):
        reached.chainEnds[0] += 1
        #expect(40 <= offset && offset <= n && (field == 6 || (40 <= field && field < offset)), "\(end) in \(n)")
    case .noNextHeader:
        reached.chainEnds[1] += 1
    case let .fragment(offset, field):
        reached.chainEnds[2] += 1
        #expect(40 <= offset && offset + 8 <= n && (field == 6 || (40 <= field && field < offset)), "\(end) in \(n)")
    case let .parameterProblem(code, pointer):
        reached.chainEnds[3] += 1
        #expect(code <= 2 && 0 <= pointer && pointer < n, "\(end) in \(n)")
    case .discard:
        reached.chainEnds[4] += 1
    }
}

/// Feeds `buf` to the IPv6 views (see `exercise`).
private func exerciseIPv6(_ buf: UnsafeMutableRawBufferPointer, depth: Int, _ reached: inout Reached) {
    if let p = try? IPv6Packet(validating: buf) {
        reached.ipv6 += 1
        #expect(p.bytes.count == 40 + p.payloadLength && p.bytes.count <= buf.count && buf.contains(p.bytes))
        #expect(p.header.count == 40 && buf.contains(p.header))
        #expect(p.payload.count == p.payloadLength && buf.contains(p.payload))
        _ = (p.nextHeader.description, p.source, p.destination)
        #expect(p.flowLabel < 1 << 20 && UInt32(p.trafficClass) << 20 | p.flowLabel == buf.be32(0) & 0x0fff_ffff)
        let repr = IPv6Repr(parsing: p)
        var out = [UInt8](repeating: 0, count: 40 + repr.payloadLength)
        out.withUnsafeMutableBytes { repr.emit(into: $0) }
        #expect(Array(out[0..<40]) == p.header.array)
        var upper: UnsafeMutableRawBufferPointer?
        for atomic in [false, true] {
            let end = IPv6ExtensionChain.walk(p, continueAfterAtomicFragments: atomic)
            check(end, packetLength: p.bytes.count, &reached)
            if case let .upperLayer(_, offset, _) = end { upper = p.bytes.slice(offset..<p.bytes.count) }
            if case let .fragment(offset, field) = end {
                let f = try? IPv6FragmentHeader(validating: p.bytes.slice(offset..<p.bytes.count))
                #expect(f != nil)
                // The rest of the chain, as after reassembly.
                if let f, !atomic {
                    check(IPv6ExtensionChain.walk(p.bytes, firstNextHeader: f.nextHeader, nextHeaderField: offset,
                                                  from: offset + 8, destinationIsMulticast: p.destination.isMulticast,
                                                  hopByHopAllowed: false),
                          packetLength: p.bytes.count, &reached)
                    #expect(field < offset)
                }
            }
        }
        if depth > 0, let upper { exercise(upper, depth: depth - 1, &reached) }
    }

    if let p = try? IPv6Packet(validatingQuoted: buf) {
        reached.quoted6 += 1
        #expect(p.bytes.count == min(buf.count, 40 + p.payloadLength) && buf.contains(p.bytes))
        #expect(p.payload.count == p.bytes.count - 40 && buf.contains(p.payload))
        check(IPv6ExtensionChain.walk(p), packetLength: p.bytes.count, &reached)
    } else {
        #expect((try? IPv6Packet(validating: buf)) == nil)
    }

    if let f = try? IPv6FragmentHeader(validating: buf) {
        reached.fragment += 1
        #expect(f.bytes.count == 8 && buf.contains(f.bytes))
        #expect(f.fragmentOffset % 8 == 0 && f.isAtomic == (f.fragmentOffset == 0 && !f.moreFragments))
        let repr = IPv6FragmentRepr(parsing: f)
        var out = [UInt8](repeating: 0, count: 8)
        out.withUnsafeMutableBytes { repr.emit(into: $0) }
        #expect(out[0] == buf[0] && Array(out[4..<8]) == Array(buf[4..<8]))
        #expect(readBE16(out, 2) == readBE16(Array(buf[0..<8]), 2) & 0xfff9)
    }

    if let p = try? ICMPv6Packet(validating: buf) {
        reached.icmpv6 += 1
        #expect(p.data.count == buf.count - 8 && buf.contains(p.data))
        #expect(p.body.count == buf.count - 4 && buf.contains(p.body))
        _ = (p.type, p.code, p.checksum, p.isError, p.echoIdentifier, p.echoSequence, p.mtu, p.pointer)
        let (s, d) = (Capture.ip6A, Capture.ip6B)
        #expect(p.checksumIsValid(source: s, destination: d)
                == (referenceSum(pseudoHeader(source: s, destination: d, nextHeader: 58, length: buf.count) + buf.array)
                    == 0xffff))
        if let repr = ICMPv6Repr(parsing: p) {
            #expect(repr.length == buf.count)
            var out = [UInt8](repeating: 0, count: 8) + p.data.array
            out.withUnsafeMutableBytes { repr.emit(into: $0, source: s, destination: d) }
            let again = try? out.withUnsafeMutableBytes { buf throws(WireError) -> ICMPv6Repr? in
                let q = try ICMPv6Packet(validating: buf)
                #expect(q.checksumIsValid(source: s, destination: d))
                return ICMPv6Repr(parsing: q)
            }
            #expect(again == repr)
        }
    }

    if let o = try? NDPOptions(validating: buf) {
        reached.ndpOptions += 1
        let all = Array(o)
        #expect(all.count <= buf.count / 8)
        _ = (o.sourceLinkLayerAddress, o.targetLinkLayerAddress)
    }

    // The NDP messages: options read, the Repr emitted and parsed back.
    func roundTrip(_ repr: NDPRepr, _ parse: (UnsafeMutableRawBufferPointer) throws(WireError) -> NDPRepr) {
        var out = [UInt8](repeating: 0, count: repr.length)
        out.withUnsafeMutableBytes { repr.emit(into: $0, source: .unspecified, destination: .allNodes) }
        let again = try? out.withUnsafeMutableBytes { b throws(WireError) in try parse(b) }
        #expect(again == repr)
    }
    if let m = try? NeighborSolicitation(validating: buf) {
        reached.ndp += 1
        _ = (Array(m.options), m.target, m.sourceLinkLayerAddress, m.icmp.checksum)
        roundTrip(NDPRepr(parsing: m)) { b throws(WireError) in NDPRepr(parsing: try NeighborSolicitation(validating: b)) }
    }
    if let m = try? NeighborAdvertisement(validating: buf) {
        reached.ndp += 1
        _ = (Array(m.options), m.target, m.targetLinkLayerAddress, m.router, m.solicited, m.override)
        roundTrip(NDPRepr(parsing: m)) { b throws(WireError) in NDPRepr(parsing: try NeighborAdvertisement(validating: b)) }
    }
    if let m = try? RouterSolicitation(validating: buf) {
        reached.ndp += 1
        _ = (Array(m.options), m.sourceLinkLayerAddress)
        roundTrip(NDPRepr(parsing: m)) { b throws(WireError) in NDPRepr(parsing: try RouterSolicitation(validating: b)) }
    }
    if let m = try? RouterAdvertisement(validating: buf) {
        reached.ndp += 1
        _ = (Array(m.options), m.sourceLinkLayerAddress, m.curHopLimit, m.managed, m.other, m.routerLifetime,
             m.reachableTime, m.retransTimer)
    }
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

    exerciseIPv6(buf, depth: depth, &reached)

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

    /// IPv6 packets with chains of extension headers, mostly well formed, so
    /// that the walk reaches every rule, then cut and bit-flipped.
    @Test func randomIPv6Chains() {
        var rng = SplitMix64(seed: 0x1F6C4A1)
        var reached = Reached()
        for _ in 0..<4000 {
            var chain: [UInt8] = []
            var nextFields: [Int] = []  // where each header's next header byte is, to fill in
            var first: UInt8 = 0
            func name(_ value: UInt8) {
                if let at = nextFields.last { chain[at] = value } else { first = value }
            }
            for _ in 0..<Int.random(in: 0...10, using: &rng) {
                let kind = [UInt8(0), 43, 44, 60, 60].randomElement(using: &rng)!
                name(kind)
                nextFields.append(chain.count)
                if kind == 44 {
                    let offset = Bool.random(using: &rng) ? 0 : UInt16.random(in: 0...0x1fff, using: &rng) << 3
                    chain += [0, 0] + be16(offset | (Bool.random(using: &rng) ? 1 : 0)) + rng.bytes(4)
                    continue
                }
                let units = Int.random(in: 0...3, using: &rng)
                var body = [UInt8](repeating: 0, count: 6 + 8 * units)
                if kind == 43 {
                    body[0] = [0, 2, 3, 4].randomElement(using: &rng)!
                    body[1] = Bool.random(using: &rng) ? 0 : UInt8.random(in: 0...3, using: &rng)
                } else {
                    // Options: padding and unknown ones of every action, to fill the body.
                    var i = 0
                    while i < body.count {
                        let room = body.count - i
                        let choice = Int.random(in: 0..<4, using: &rng)
                        if choice == 0 || room < 2 {
                            i += 1  // Pad1
                        } else if choice == 1 {
                            let n = Int.random(in: 0...min(5, room - 2), using: &rng)
                            body[i] = 1; body[i + 1] = UInt8(n); i += 2 + n
                        } else {
                            let n = Int.random(in: 0...(room - 2), using: &rng)
                            body[i] = UInt8.random(in: 2...255, using: &rng); body[i + 1] = UInt8(n)
                            i += 2 + n
                        }
                    }
                }
                chain += [0, UInt8(units)] + body
            }
            name([6, 17, 58, 59, 253].randomElement(using: &rng)!)
            chain += rng.bytes(Int.random(in: 0...24, using: &rng))
            var packet = ipv6Header(payloadLength: chain.count, nextHeader: first, source: Capture.ip6A,
                                    destination: Bool.random(using: &rng) ? Capture.ip6B : .allNodes) + chain
            switch Int.random(in: 0..<4, using: &rng) {
            case 0:  // cut, keeping the payload length
                packet = Array(packet[0..<Int.random(in: 40...packet.count, using: &rng)])
                packet.replaceSubrange(4..<6, with: be16(UInt16(packet.count - 40)))
            case 1:  // flip bits after the fixed header
                if packet.count > 40 {
                    for _ in 0..<Int.random(in: 1...3, using: &rng) {
                        packet[Int.random(in: 40..<packet.count, using: &rng)] ^= 1 << UInt8.random(in: 0...7, using: &rng)
                    }
                }
            default: break
            }
            fuzz(packet, skew: Int.random(in: 0...7, using: &rng), &reached)
        }
        #expect(reached.ipv6 > 0 && reached.quoted6 > 0 && reached.fragment > 0 && !reached.chainEnds.contains(0),
                "\(reached)")
    }

    @Test func mutatedCapturedFrames() throws {
        let frames = try (captureNames + ipv6CaptureNames).flatMap { try loadCapture($0).map(\.bytes) }
        #expect(frames.count == 16 + 38)
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
            let isIPv6 = f[12] == 0x86 && f[13] == 0xdd
            if isIPv6 && Bool.random(using: &rng) {
                switch Int.random(in: 0..<4, using: &rng) {
                case 0:  // payload length: anything, or near the truth
                    let old = Int(readBE16(f, 18))
                    let new = Bool.random(using: &rng) ? Int.random(in: 0...0xffff, using: &rng)
                                                       : max(0, old + Int.random(in: -16...16, using: &rng))
                    f.replaceSubrange(18..<20, with: be16(UInt16(min(new, 0xffff))))
                case 1:  // next header
                    f[20] = [0, 6, 17, 43, 44, 58, 59, 60, UInt8.random(in: 0...255, using: &rng)].randomElement(using: &rng)!
                case 2:  // the first bytes after the fixed header: extension headers, ICMPv6 type, NDP options
                    for _ in 0..<Int.random(in: 1...3, using: &rng) where f.count > 54 {
                        f[Int.random(in: 54..<min(f.count, 100), using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                    }
                default:  // the version nibble
                    f[14] = UInt8.random(in: 0...255, using: &rng)
                }
                fuzz(f, skew: Int.random(in: 0...7, using: &rng), &reached)
                continue
            }
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
        #expect(reached.reachedIPv6, "\(reached)")
    }
}
