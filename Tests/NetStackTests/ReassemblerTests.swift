import Testing
@testable import NetStack
import NetStackWire

/// What `IPv4Reassembler.insert` decided, in a comparable form; a completed
/// datagram is read out and its slot released.
enum Reassembled: Equatable, CustomStringConvertible {
    case incomplete
    case complete([UInt8])
    case dropped(DropReason)

    var description: String {
        switch self {
        case .incomplete: "incomplete"
        case .complete(let p): "complete(\(p.count) bytes)"
        case .dropped(let r): "dropped(\(r))"
        }
    }
}

/// The reassembler on its own, fed IP packets built by hand.
@Suite struct ReassemblerTests {
    static let src = IPv4Address(10, 0, 0, 1)
    static let dst = IPv4Address(10, 0, 0, 2)
    static let t0 = Instant(nanoseconds: 5_000_000_000)

    static func insert(_ r: IPv4Reassembler, _ ip: [UInt8], now: Instant = t0) -> Reassembled {
        var bytes = ip
        return bytes.withUnsafeMutableBytes { b -> Reassembled in
            guard let packet = try? IPv4Packet(validating: b) else {
                Issue.record("test built an invalid IPv4 packet")
                return .dropped(.ipv4BadLength)
            }
            switch r.insert(packet, now: now) {
            case .incomplete:
                return .incomplete
            case .dropped(let reason):
                return .dropped(reason)
            case .complete(let index):
                let payload = r.withDatagram(index) { key, header, payload -> [UInt8] in
                    #expect(key.source == src && key.destination == dst)
                    #expect(header.count == 20)
                    return [UInt8](payload)
                }
                r.release(index)
                return .complete(payload)
            }
        }
    }

    static func fragment(_ payload: [UInt8], _ range: Range<Int>, last: Bool, id: UInt16 = 1,
                         source: IPv4Address = src, proto: IPProtocol = .udp) -> [UInt8] {
        FrameBuilder.ipv4(source: source, destination: dst, protocol: proto, payload: Array(payload[range]),
                          identification: id, moreFragments: !last, fragmentOffset: range.lowerBound)
    }

    /// Fragments covering `payload` with the given sizes, in offset order.
    static func split(_ payload: [UInt8], sizes: [Int], id: UInt16 = 1) -> [[UInt8]] {
        FrameBuilder.fragments(source: src, destination: dst, protocol: .udp, payload: payload, sizes: sizes,
                               identification: id)
    }

    @Test func inOrder() {
        let r = IPv4Reassembler(maxDatagrams: 4, timeout: .seconds(30))
        let payload = FrameBuilder.pattern(3000)
        let frags = Self.split(payload, sizes: [1480, 1480, 40])
        #expect(Self.insert(r, frags[0]) == .incomplete)
        #expect(Self.insert(r, frags[1]) == .incomplete)
        #expect(r.inProgress == 1)
        #expect(Self.insert(r, frags[2]) == .complete(payload))
        #expect(r.inProgress == 0)
    }

    @Test func reverseOrder() {
        let r = IPv4Reassembler(maxDatagrams: 4, timeout: .seconds(30))
        let payload = FrameBuilder.pattern(1000, seed: 3)
        let frags = Self.split(payload, sizes: [200, 200, 200, 200, 200])
        for f in frags.dropFirst().reversed() { #expect(Self.insert(r, f) == .incomplete) }
        #expect(Self.insert(r, frags[0]) == .complete(payload))
    }

    @Test(arguments: [1 as UInt64, 2, 3, 42, 0xdead_beef])
    func shuffledOrderWithSeededRNG(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let r = IPv4Reassembler(maxDatagrams: 4, timeout: .seconds(30))
        for trial in 0..<50 {
            let length = Int.random(in: 9...9000, using: &rng)
            let payload = (0..<length).map { _ in UInt8.random(in: 0...255, using: &rng) }
            var sizes: [Int] = []
            var left = length
            while left > 0 {
                // All but the last a multiple of 8, and at least two fragments.
                let s = min(left, 8 * Int.random(in: 1...min(64, (length - 1) / 8), using: &rng))
                sizes.append(s)
                left -= s
            }
            let frags = Self.split(payload, sizes: sizes, id: UInt16(trial)).shuffled(using: &rng)
            for (i, f) in frags.enumerated() {
                let got = Self.insert(r, f)
                if i < frags.count - 1 {
                    #expect(got == .incomplete, "seed \(seed) trial \(trial) fragment \(i)")
                } else {
                    #expect(got == .complete(payload), "seed \(seed) trial \(trial): \(got)")
                }
            }
        }
        #expect(r.inProgress == 0)
    }

    @Test func exactDuplicatesAreIgnored() {
        let r = IPv4Reassembler(maxDatagrams: 4, timeout: .seconds(30))
        let payload = FrameBuilder.pattern(48)
        let frags = Self.split(payload, sizes: [16, 16, 16])
        #expect(Self.insert(r, frags[0]) == .incomplete)
        #expect(Self.insert(r, frags[0]) == .dropped(.fragmentDuplicate))
        #expect(Self.insert(r, frags[2]) == .incomplete)
        #expect(Self.insert(r, frags[2]) == .dropped(.fragmentDuplicate))
        #expect(r.inProgress == 1)
        #expect(Self.insert(r, frags[1]) == .complete(payload))
    }

    @Test func fragmentInsideMergedDataIsADuplicate() {
        let r = IPv4Reassembler(maxDatagrams: 4, timeout: .seconds(30))
        let payload = FrameBuilder.pattern(64)
        #expect(Self.insert(r, Self.fragment(payload, 0..<16, last: false)) == .incomplete)
        #expect(Self.insert(r, Self.fragment(payload, 16..<32, last: false)) == .incomplete)
        // 8..<24 straddles the two received pieces but lies wholly inside what arrived.
        #expect(Self.insert(r, Self.fragment(payload, 8..<24, last: false)) == .dropped(.fragmentDuplicate))
        #expect(Self.insert(r, Self.fragment(payload, 32..<64, last: true)) == .complete(payload))
    }

    @Test func partialOverlapDiscardsTheDatagram() {
        let r = IPv4Reassembler(maxDatagrams: 4, timeout: .seconds(30))
        let payload = FrameBuilder.pattern(48)
        #expect(Self.insert(r, Self.fragment(payload, 0..<16, last: false)) == .incomplete)
        // Teardrop shape: 8..<24 overlaps the first fragment's tail and adds new bytes.
        #expect(Self.insert(r, Self.fragment(payload, 8..<24, last: false)) == .dropped(.fragmentOverlap))
        #expect(r.inProgress == 0)
        // What was received is gone: the rest alone cannot complete it.
        #expect(Self.insert(r, Self.fragment(payload, 16..<32, last: false)) == .incomplete)
        #expect(Self.insert(r, Self.fragment(payload, 32..<48, last: true)) == .incomplete)
        // Overlap from the other side too.
        let r2 = IPv4Reassembler(maxDatagrams: 4, timeout: .seconds(30))
        #expect(Self.insert(r2, Self.fragment(payload, 16..<32, last: false)) == .incomplete)
        #expect(Self.insert(r2, Self.fragment(payload, 8..<24, last: false)) == .dropped(.fragmentOverlap))
        #expect(r2.inProgress == 0)
    }

    @Test func nonLastFragmentMustBeAMultipleOfEight() {
        let r = IPv4Reassembler(maxDatagrams: 4, timeout: .seconds(30))
        let payload = FrameBuilder.pattern(64)
        #expect(Self.insert(r, Self.fragment(payload, 0..<12, last: false)) == .dropped(.fragmentBadLength))
        #expect(Self.insert(r, Self.fragment(payload, 8..<8, last: false)) == .dropped(.fragmentBadLength))
        #expect(r.inProgress == 0)
        // The last fragment may have any length.
        #expect(Self.insert(r, Self.fragment(payload, 0..<16, last: false)) == .incomplete)
        #expect(Self.insert(r, Self.fragment(payload, 16..<21, last: true)) == .complete(Array(payload[0..<21])))
    }

    @Test func inconsistentEndsAreBadLength() {
        let r = IPv4Reassembler(maxDatagrams: 4, timeout: .seconds(30))
        let payload = FrameBuilder.pattern(256)
        #expect(Self.insert(r, Self.fragment(payload, 96..<100, last: true)) == .incomplete)
        // Data past the end the last fragment set.
        #expect(Self.insert(r, Self.fragment(payload, 96..<200, last: false)) == .dropped(.fragmentBadLength))
        #expect(r.inProgress == 0)
        // Two different ends.
        #expect(Self.insert(r, Self.fragment(payload, 96..<100, last: true, id: 2)) == .incomplete)
        #expect(Self.insert(r, Self.fragment(payload, 104..<120, last: true, id: 2)) == .dropped(.fragmentBadLength))
        // A last fragment ending before data already received.
        #expect(Self.insert(r, Self.fragment(payload, 64..<128, last: false, id: 3)) == .incomplete)
        #expect(Self.insert(r, Self.fragment(payload, 0..<40, last: true, id: 3)) == .dropped(.fragmentBadLength))
        #expect(r.inProgress == 0)
    }

    @Test func datagramsBeyond65515BytesAreTooLarge() {
        let r = IPv4Reassembler(maxDatagrams: 4, timeout: .seconds(30))
        // RFC 791: 65535 total minus a 20-byte header leaves 65515 bytes of payload.
        let tail = [UInt8](repeating: 0xee, count: 32)
        // Ending at 65520 (offset 65488 + 32): the ping of death.
        let big = FrameBuilder.ipv4(source: Self.src, destination: Self.dst, protocol: .icmp, payload: tail,
                                    identification: 9, fragmentOffset: 65488)
        #expect(Self.insert(r, big) == .dropped(.fragmentTooLarge))
        // The largest fragment offset with 8 bytes: 65528 + 8.
        let biggest = FrameBuilder.ipv4(source: Self.src, destination: Self.dst, protocol: .icmp,
                                        payload: Array(tail[0..<8]), identification: 9, moreFragments: true,
                                        fragmentOffset: 65528)
        #expect(Self.insert(r, biggest) == .dropped(.fragmentTooLarge))
        #expect(r.inProgress == 0)
        // Exactly 65515 is allowed.
        let edge = FrameBuilder.ipv4(source: Self.src, destination: Self.dst, protocol: .icmp,
                                     payload: Array(tail[0..<27]), identification: 10, fragmentOffset: 65488)
        #expect(Self.insert(r, edge) == .incomplete)
    }

    @Test func largestDatagramReassembles() {
        let r = IPv4Reassembler(maxDatagrams: 1, timeout: .seconds(30))
        let payload = FrameBuilder.pattern(65515, seed: 9)
        var sizes = [Int](repeating: 2048, count: 31)
        sizes.append(65515 - 31 * 2048)
        let frags = Self.split(payload, sizes: sizes)
        for f in frags.dropLast() { #expect(Self.insert(r, f) == .incomplete) }
        #expect(Self.insert(r, frags.last!) == .complete(payload))
    }

    @Test func datagramsAreKeyedBySourceDestinationIdAndProtocol() {
        let r = IPv4Reassembler(maxDatagrams: 4, timeout: .seconds(30))
        let a = FrameBuilder.pattern(32, seed: 1), b = FrameBuilder.pattern(32, seed: 2)
        let c = FrameBuilder.pattern(32, seed: 3)
        #expect(Self.insert(r, Self.fragment(a, 0..<16, last: false, id: 7)) == .incomplete)
        #expect(Self.insert(r, Self.fragment(b, 0..<16, last: false, id: 7, source: IPv4Address(10, 0, 0, 9)))
                == .incomplete)
        #expect(Self.insert(r, Self.fragment(c, 0..<16, last: false, id: 7, proto: .icmp)) == .incomplete)
        #expect(r.inProgress == 3)
        #expect(Self.insert(r, Self.fragment(a, 16..<32, last: true, id: 7)) == .complete(a))
        #expect(r.inProgress == 2)
    }

    @Test func boundedAndSlotsAreReused() {
        let r = IPv4Reassembler(maxDatagrams: 2, timeout: .seconds(30))
        let p = FrameBuilder.pattern(32)
        #expect(Self.insert(r, Self.fragment(p, 0..<16, last: false, id: 1)) == .incomplete)
        #expect(Self.insert(r, Self.fragment(p, 0..<16, last: false, id: 2)) == .incomplete)
        #expect(Self.insert(r, Self.fragment(p, 0..<16, last: false, id: 3)) == .dropped(.reassemblyNoSpace))
        #expect(r.inProgress == 2)
        // Completing one frees its slot for a new datagram.
        #expect(Self.insert(r, Self.fragment(p, 16..<32, last: true, id: 1)) == .complete(p))
        #expect(Self.insert(r, Self.fragment(p, 0..<16, last: false, id: 3)) == .incomplete)
        #expect(Self.insert(r, Self.fragment(p, 16..<32, last: true, id: 3)) == .complete(p))
        // And again, many times over, with no datagram bleeding into the next.
        for id in UInt16(100)..<200 {
            let q = FrameBuilder.pattern(40, seed: UInt8(truncatingIfNeeded: id))
            #expect(Self.insert(r, Self.fragment(q, 24..<40, last: true, id: id)) == .incomplete)
            #expect(Self.insert(r, Self.fragment(q, 0..<24, last: false, id: id)) == .complete(q))
        }
        #expect(r.inProgress == 1)
    }

    @Test func tooManyHolesGiveUp() {
        let r = IPv4Reassembler(maxDatagrams: 2, timeout: .seconds(30))
        let p = FrameBuilder.pattern(16 * 40)
        // Every other 8-byte block: each one a separate range.
        for i in 0..<IPv4Reassembler.maxRanges {
            #expect(Self.insert(r, Self.fragment(p, (i * 16)..<(i * 16 + 8), last: false)) == .incomplete)
        }
        let one = IPv4Reassembler.maxRanges
        #expect(Self.insert(r, Self.fragment(p, (one * 16)..<(one * 16 + 8), last: false)) == .dropped(.reassemblyNoSpace))
        #expect(r.inProgress == 0)
    }

    @Test func timeoutReportsTheFirstFragmentOrNothing() {
        let r = IPv4Reassembler(maxDatagrams: 4, timeout: .seconds(30))
        let p = FrameBuilder.pattern(64)
        let first = Self.fragment(p, 0..<16, last: false, id: 1)
        #expect(Self.insert(r, first, now: Self.t0) == .incomplete)
        #expect(Self.insert(r, Self.fragment(p, 16..<32, last: false, id: 2), now: Self.t0 + .seconds(1)) == .incomplete)
        #expect(r.nextDeadline == Self.t0 + .seconds(30))
        var reports: [[UInt8]] = []
        r.expire(now: Self.t0 + .milliseconds(29_999)) { reports.append([UInt8]($0)) }
        #expect(reports.isEmpty)
        r.expire(now: Self.t0 + .seconds(30)) { reports.append([UInt8]($0)) }
        // The first fragment's header and the first 8 bytes of its data (RFC 792).
        #expect(reports == [Array(first[0..<28])])
        #expect(r.inProgress == 1)
        #expect(r.nextDeadline == Self.t0 + .seconds(31), "the one left's")
        r.expire(now: Self.t0 + .seconds(31)) { reports.append([UInt8]($0)) }
        // Fragment zero never came for id 2: nothing to quote.
        #expect(reports.count == 2 && reports[1].isEmpty)
        #expect(r.inProgress == 0)
        #expect(r.nextDeadline == nil)
    }
}

/// Reassembly through the interface, checked on the wire and in the counters.
@Suite struct ReassemblyInterfaceTests {
    typealias H = PeerHarness

    /// A bound port that records what it receives.
    static func recordingHarness(configure: (inout InterfaceConfiguration) -> Void = { _ in })
        -> (PeerHarness, Box<[[UInt8]]>) {
        let h = PeerHarness(configure: configure)
        let got = Box<[[UInt8]]>([])
        try! h.interface.udp.bind(port: 9000) { _, payload in got.value.append([UInt8](payload)) }
        return (h, got)
    }

    static func udpFragments(_ h: PeerHarness, payload: [UInt8], id: UInt16, maxFragment: Int = 1480,
                             to destination: IPv4Address = H.stackIP) -> [[UInt8]] {
        let udp = FrameBuilder.udp(sourcePort: 5555, destinationPort: 9000, payload: payload, source: H.peerIP,
                                   destination: destination)
        return h.fragmentedFrames(.udp, transport: udp, maxFragment: maxFragment, identification: id,
                                  to: destination)
    }

    @Test func fragmentedUDPIsDeliveredWhole() {
        let (h, got) = Self.recordingHarness()
        let payload = FrameBuilder.pattern(4000)
        let frames = Self.udpFragments(h, payload: payload, id: 0x1111)
        #expect(frames.count == 3)
        #expect(h.exchange(frames).isEmpty)
        #expect(got.value == [payload])
        #expect(h.counters.fragmentsIn == 3)
        #expect(h.counters.datagramsReassembled == 1)
        #expect(h.udp.counters.datagramsIn == 1)
        #expect(h.counters.drops.total == 0)
        #expect(h.pool.freeCount == h.pool.slotCount)
    }

    @Test func outOfOrderAndDuplicatedFragments() {
        let (h, got) = Self.recordingHarness()
        var rng = SplitMix64(seed: 77)
        let payload = FrameBuilder.pattern(5000, seed: 5)
        let frames = Self.udpFragments(h, payload: payload, id: 0x2222, maxFragment: 512)
        var shuffled = frames.shuffled(using: &rng)
        // Two duplicates before the end.
        shuffled.insert(shuffled[0], at: 2)
        shuffled.insert(shuffled[3], at: 5)
        let last = shuffled.removeLast()
        _ = h.exchange(shuffled)
        #expect(got.value.isEmpty)
        #expect(h.drops(.fragmentDuplicate) == 2)
        _ = h.exchange(last)
        #expect(got.value == [payload])
        #expect(h.counters.datagramsReassembled == 1)
    }

    @Test func overlappingFragmentsAreDiscarded() {
        let (h, got) = Self.recordingHarness()
        let udp = FrameBuilder.udp(sourcePort: 5555, destinationPort: 9000, payload: FrameBuilder.pattern(40),
                                   source: H.peerIP, destination: H.stackIP)
        let a = FrameBuilder.ipv4(source: H.peerIP, destination: H.stackIP, protocol: .udp,
                                  payload: Array(udp[0..<32]), identification: 3, moreFragments: true)
        let b = FrameBuilder.ipv4(source: H.peerIP, destination: H.stackIP, protocol: .udp,
                                  payload: Array(udp[24..<48]), identification: 3, fragmentOffset: 24)
        #expect(h.exchange(h.ipFrame(a), h.ipFrame(b)).isEmpty)
        #expect(h.drops(.fragmentOverlap) == 1)
        #expect(got.value.isEmpty)
        #expect(h.interface.reassembler.inProgress == 0)
    }

    @Test func badFragmentsThroughTheInterface() {
        let (h, _) = Self.recordingHarness()
        let data = FrameBuilder.pattern(64)
        let odd = FrameBuilder.ipv4(source: H.peerIP, destination: H.stackIP, protocol: .udp,
                                    payload: Array(data[0..<13]), identification: 4, moreFragments: true)
        let big = FrameBuilder.ipv4(source: H.peerIP, destination: H.stackIP, protocol: .icmp,
                                    payload: Array(data[0..<40]), identification: 5, fragmentOffset: 65480)
        #expect(h.exchange(h.ipFrame(odd), h.ipFrame(big)).isEmpty)
        #expect(h.drops(.fragmentBadLength) == 1)
        #expect(h.drops(.fragmentTooLarge) == 1)
        #expect(h.counters.fragmentsIn == 2)
    }

    @Test func tooManyDatagramsAtOnce() {
        let (h, got) = Self.recordingHarness { $0.reassemblyMaxDatagrams = 2 }
        let payload = FrameBuilder.pattern(2000)
        let d1 = Self.udpFragments(h, payload: payload, id: 1)
        let d2 = Self.udpFragments(h, payload: payload, id: 2)
        let d3 = Self.udpFragments(h, payload: payload, id: 3)
        _ = h.exchange(d1[0], d2[0], d3[0])
        #expect(h.drops(.reassemblyNoSpace) == 1)
        _ = h.exchange(d1[1])
        #expect(got.value.count == 1)
        // d1's slot is free again: d3 starts over and completes.
        _ = h.exchange(d3[0], d3[1], d2[1])
        #expect(got.value == [payload, payload, payload])
        #expect(h.interface.reassembler.inProgress == 0)
    }

    @Test func timeoutSendsTimeExceededWhenFragmentZeroArrived() {
        let h = PeerHarness()
        h.resolvePeer()
        let udp = FrameBuilder.udp(sourcePort: 5555, destinationPort: 9000, payload: FrameBuilder.pattern(3000),
                                   source: H.peerIP, destination: H.stackIP)
        let frames = h.fragmentedFrames(.udp, transport: udp, identification: 0xabcd)
        #expect(h.exchange(frames[0], frames[2]).isEmpty)
        #expect(h.advance(by: .milliseconds(29_999)).isEmpty)
        let out = h.advance(by: .milliseconds(1))
        #expect(h.drops(.reassemblyTimeout) == 1)
        #expect(out.count == 1)
        guard let ip = out.first?.ipv4, let icmp = ip.icmp else { Issue.record("no ICMP: \(out)"); return }
        #expect(out.first?.ethernetDestination == H.peerMAC)
        #expect(ip.source == H.stackIP && ip.destination == H.peerIP)
        #expect(ip.headerChecksumVerifies)
        // RFC 792: type 11, code 1 "fragment reassembly time exceeded", unused word zero,
        // then the first fragment's header and 8 bytes of its data.
        #expect(icmp.type == 11 && icmp.code == 1)
        #expect(icmp.rest == [0, 0, 0, 0])
        #expect(icmp.checksumVerifies)
        let firstIP = Array(frames[0][14...])
        #expect(icmp.data == Array(firstIP[0..<28]))
        #expect(h.counters.icmpErrorsOut == 1)
        #expect(h.interface.reassembler.inProgress == 0)
    }

    @Test func noTimeExceededWithoutFragmentZero() {
        let h = PeerHarness()
        h.resolvePeer()
        let udp = FrameBuilder.udp(sourcePort: 5555, destinationPort: 9000, payload: FrameBuilder.pattern(3000),
                                   source: H.peerIP, destination: H.stackIP)
        let frames = h.fragmentedFrames(.udp, transport: udp, identification: 0xabce)
        #expect(h.exchange(frames[1], frames[2]).isEmpty)
        #expect(h.advance(by: .seconds(30)).isEmpty)
        #expect(h.drops(.reassemblyTimeout) == 1)
        #expect(h.counters.icmpErrorsOut == 0)
    }

    /// RFC 1122 3.2.2: no ICMP error about a datagram sent to a broadcast address,
    /// time exceeded included.
    @Test func noTimeExceededForBroadcastFragments() {
        let h = PeerHarness()
        h.resolvePeer()
        for (i, dst) in [IPv4Address.broadcast, IPv4Address(10, 0, 0, 255)].enumerated() {
            let udp = FrameBuilder.udp(sourcePort: 5555, destinationPort: 9000, payload: FrameBuilder.pattern(3000),
                                       source: H.peerIP, destination: dst)
            let frames = FrameBuilder.fragments(source: H.peerIP, destination: dst, protocol: .udp, payload: udp,
                                                maxFragment: 1480, identification: UInt16(i))
            #expect(h.exchange(h.ipFrame(frames[0], to: .broadcast)).isEmpty)
        }
        #expect(h.advance(by: .seconds(30)).isEmpty)
        #expect(h.drops(.reassemblyTimeout) == 2)
        #expect(h.counters.icmpErrorsOut == 0)
    }
}

/// A reference cell for closures in tests.
final class Box<T> {
    var value: T
    init(_ value: T) { self.value = value }
}
