import Testing
@testable import NetStackWire

// Vectors: the ICMPv6 messages of ndp.pcap (Linux 6.18), whose checksums
// tshark calls correct, and messages built by hand with the reference checksum.

/// Frame 1: duplicate address detection of fe80::aff:fe00:1, from :: to
/// ff02::1:ff00:1, with RFC 7527's nonce option (type 14) and no link-layer address.
let kernelDADSolicitation = hex("8700fae700000000 fe8000000000000000000afffe000001 0e013b2543a3eb6b")
/// Frame 2: router solicitation from fe80::aff:fe00:1 to ff02::2.
let kernelRouterSolicitation = hex("8500672c00000000 010102000a000001")
/// Frame 3: who has fd00::2, from fd00::1 to ff02::1:ff00:2.
let kernelSolicitation = hex("8700739700000000 fd000000000000000000000000000002 010102000a000001")
/// Frame 4: fd00::2 is at 02:00:0a:00:00:02, solicited and override, to fd00::1.
let kernelAdvertisement = hex("8800129a60000000 fd000000000000000000000000000002 020102000a000002")

/// An NDP message with its checksum filled in by the reference implementation.
func ndpMessage(_ fields: [UInt8], source: IPv6Address, destination: IPv6Address) -> [UInt8] {
    var m = fields
    m[2] = 0; m[3] = 0
    let c = referenceChecksum(pseudoHeader(source: source, destination: destination, nextHeader: 58, length: m.count) + m)
    m[2] = UInt8(c >> 8); m[3] = UInt8(c & 0xff)
    return m
}

private func options<V>(_ bytes: [UInt8], as _: V.Type, _ read: (V) -> [NDPOption]) throws -> [NDPOption]
where V: ValidatingView {
    var copy = bytes
    return try copy.withUnsafeMutableBytes { buf in read(try V(validating: buf)) }
}

@Suite struct NDPTests {
    let a = Capture.ip6A, b = Capture.ip6B
    let macA = Capture.macA, macB = Capture.macB

    // MARK: The kernel's messages

    @Test func solicitationFromLinux() throws {
        var m = kernelSolicitation
        try m.withUnsafeMutableBytes { buf in
            let ns = try NeighborSolicitation(validating: buf)
            #expect(ns.target == b)
            #expect(ns.sourceLinkLayerAddress == macA)
            #expect(Array(ns.options) == [.sourceLinkLayer(macA)])
            #expect(ns.icmp.checksumIsValid(source: a, destination: b.solicitedNodeMulticast))
            #expect(NDPRepr(parsing: ns) == .neighborSolicitation(target: b, sourceLinkLayer: macA))
        }
        // Emitting the same value gives the kernel's bytes, checksum included.
        let repr = NDPRepr.neighborSolicitation(target: b, sourceLinkLayer: macA)
        var out = [UInt8](repeating: 0xa5, count: repr.length)
        out.withUnsafeMutableBytes { repr.emit(into: $0, source: a, destination: b.solicitedNodeMulticast) }
        #expect(out == kernelSolicitation)
    }

    @Test func advertisementFromLinux() throws {
        var m = kernelAdvertisement
        try m.withUnsafeMutableBytes { buf in
            let na = try NeighborAdvertisement(validating: buf)
            #expect(na.target == b && !na.router && na.solicited && na.override)
            #expect(na.targetLinkLayerAddress == macB)
            #expect(Array(na.options) == [.targetLinkLayer(macB)])
            #expect(na.icmp.checksumIsValid(source: b, destination: a))
        }
        let repr = NDPRepr.neighborAdvertisement(target: b, router: false, solicited: true, override: true,
                                                 targetLinkLayer: macB)
        var out = [UInt8](repeating: 0xa5, count: repr.length)
        out.withUnsafeMutableBytes { repr.emit(into: $0, source: b, destination: a) }
        #expect(out == kernelAdvertisement)
    }

    @Test func routerSolicitationFromLinux() throws {
        var m = kernelRouterSolicitation
        try m.withUnsafeMutableBytes { buf in
            let rs = try RouterSolicitation(validating: buf)
            #expect(rs.sourceLinkLayerAddress == macA)
            #expect(rs.icmp.checksumIsValid(source: Capture.linkLocalA, destination: .allRouters))
            #expect(NDPRepr(parsing: rs) == .routerSolicitation(sourceLinkLayer: macA))
        }
        let repr = NDPRepr.routerSolicitation(sourceLinkLayer: macA)
        var out = [UInt8](repeating: 0xa5, count: repr.length)
        out.withUnsafeMutableBytes { repr.emit(into: $0, source: Capture.linkLocalA, destination: .allRouters) }
        #expect(out == kernelRouterSolicitation)
    }

    /// From the unspecified address no link-layer address is sent (RFC 4861
    /// 4.3); Linux sends its nonce instead, an option the views do not read.
    @Test func duplicateAddressDetectionFromLinux() throws {
        let target = Capture.linkLocalA
        var m = kernelDADSolicitation
        try m.withUnsafeMutableBytes { buf in
            let ns = try NeighborSolicitation(validating: buf)
            #expect(ns.target == target)
            #expect(ns.sourceLinkLayerAddress == nil)
            #expect(Array(ns.options) == [.other(type: 14)])
            #expect(ns.icmp.checksumIsValid(source: .unspecified, destination: target.solicitedNodeMulticast))
            #expect(NDPRepr(parsing: ns) == .neighborSolicitation(target: target, sourceLinkLayer: nil))
        }
    }

    // MARK: Lengths, types, codes

    @Test func truncatedMessagesAreRefused() {
        for n in 0..<24 {
            #expect(wireError(Array(kernelSolicitation[0..<n]), as: NeighborSolicitation.self) == .truncated, "\(n)")
            #expect(wireError(Array(kernelAdvertisement[0..<n]), as: NeighborAdvertisement.self) == .truncated, "\(n)")
        }
        for n in 0..<8 {
            #expect(wireError(Array(kernelRouterSolicitation[0..<n]), as: RouterSolicitation.self) == .truncated, "\(n)")
        }
        // Cut inside the option: it runs past the end.
        for n in 25..<32 {
            #expect(wireError(Array(kernelSolicitation[0..<n]), as: NeighborSolicitation.self) == .badOption, "\(n)")
        }
        for n in 9..<16 {
            #expect(wireError(Array(kernelRouterSolicitation[0..<n]), as: RouterSolicitation.self) == .badOption, "\(n)")
        }
        // Without the option: still valid.
        #expect(wireError(Array(kernelSolicitation[0..<24]), as: NeighborSolicitation.self) == nil)
        #expect(wireError(Array(kernelRouterSolicitation[0..<8]), as: RouterSolicitation.self) == nil)
        let ra = routerAdvertisement(options: [])
        for n in 0..<16 { #expect(wireError(Array(ra[0..<n]), as: RouterAdvertisement.self) == .truncated, "\(n)") }
        #expect(wireError(ra, as: RouterAdvertisement.self) == nil)
    }

    @Test func wrongTypeOrCodeIsUnsupported() {
        var ns = kernelSolicitation
        ns[1] = 1  // RFC 4861 7.1.1: the code must be 0
        #expect(wireError(ns, as: NeighborSolicitation.self) == .unsupported)
        #expect(wireError(kernelAdvertisement, as: NeighborSolicitation.self) == .unsupported)
        #expect(wireError(kernelSolicitation, as: NeighborAdvertisement.self) == .unsupported)
        #expect(wireError(kernelSolicitation, as: RouterSolicitation.self) == .unsupported)
        #expect(wireError(kernelRouterSolicitation, as: RouterAdvertisement.self) == .unsupported)
        #expect(wireError(routerAdvertisement(options: []), as: RouterSolicitation.self) == .unsupported)
        var rs = kernelRouterSolicitation
        rs[1] = 255
        #expect(wireError(rs, as: RouterSolicitation.self) == .unsupported)
    }

    // MARK: Options (RFC 4861 4.6)

    @Test func optionOfLengthZeroIsRefused() {
        var ns = kernelSolicitation
        ns[25] = 0
        #expect(wireError(ns, as: NeighborSolicitation.self) == .badOption)
        #expect(wireError(Array(ns[24...]), as: NDPOptions.self) == .badOption)
        // A good option, then one of length zero.
        let two = hex("010102000a000001 0e00000000000000")
        #expect(wireError(two, as: NDPOptions.self) == .badOption)
        #expect(wireError(Array(kernelRouterSolicitation[0..<8]) + two, as: RouterSolicitation.self) == .badOption)
        #expect(wireError(Array(kernelAdvertisement[0..<24]) + two, as: NeighborAdvertisement.self) == .badOption)
    }

    @Test func optionRunningPastTheEndIsRefused() {
        // Length 2 (16 bytes) with 8 there.
        #expect(wireError(hex("0102 02000a000001"), as: NDPOptions.self) == .badOption)
        // A lone type byte, or type and length with the body missing.
        #expect(wireError([1], as: NDPOptions.self) == .badOption)
        #expect(wireError([1, 1], as: NDPOptions.self) == .badOption)
        #expect(wireError(hex("010102000a000001 05"), as: NDPOptions.self) == .badOption)
        #expect(wireError([], as: NDPOptions.self) == nil)
        #expect(wireError(hex("010102000a000001 0e013b2543a3eb6b"), as: NDPOptions.self) == nil)
    }

    private func routerAdvertisement(options: [UInt8], flags: UInt8 = 0xc0) -> [UInt8] {
        ndpMessage([134, 0, 0, 0, 64, flags] + be16(1800) + be32(30_000) + be32(1_000) + options,
                   source: Capture.linkLocalA, destination: .allNodes)
    }

    /// A router's advertisement with every option the views read, one of
    /// each kind they do not, and known ones of the wrong length.
    @Test func routerAdvertisementAndItsOptions() throws {
        let prefix = hex("0304 40c0 00278d00 00093a80 00000000 fd000000000000010000000000000000")
        let mtu = hex("0501 0000 000005dc")
        let slla = hex("0101 02000a000001")
        let rdnss = hex("1903 0000 00000e10 20010db8000000000000000000000053")  // RFC 8106, type 25
        let longLLA = hex("0102 02000a000001 0000000000000000")  // 16 bytes: not Ethernet's
        let shortPrefix = hex("0303 40c0 00278d00 00093a80 00000000 fd00000000000001")
        var ra = routerAdvertisement(options: slla + prefix + mtu + rdnss + longLLA + shortPrefix)
        try ra.withUnsafeMutableBytes { buf in
            let m = try RouterAdvertisement(validating: buf)
            #expect(m.curHopLimit == 64 && m.managed && m.other)
            #expect(m.routerLifetime == 1800 && m.reachableTime == 30_000 && m.retransTimer == 1_000)
            #expect(m.sourceLinkLayerAddress == macA)
            #expect(m.icmp.checksumIsValid(source: Capture.linkLocalA, destination: .allNodes))
            let info = NDPPrefixInformation(prefixLength: 64, onLink: true, autonomous: true, validLifetime: 2_592_000,
                                            preferredLifetime: 604_800, prefix: IPv6Address(0xfd00, 0, 0, 1, 0, 0, 0, 0))
            #expect(Array(m.options) == [.sourceLinkLayer(macA), .prefixInformation(info), .mtu(1500), .other(type: 25),
                                         .other(type: 1), .other(type: 3)])
            #expect(m.options.targetLinkLayerAddress == nil)
        }
        var plain = routerAdvertisement(options: [], flags: 0x40)
        try plain.withUnsafeMutableBytes { buf in
            let m = try RouterAdvertisement(validating: buf)
            #expect(!m.managed && m.other && m.sourceLinkLayerAddress == nil)
            #expect(Array(m.options).isEmpty)
        }
        #expect(NDPPrefixInformation.infiniteLifetime == 0xffff_ffff)
        // Prefix flags one at a time.
        for (flags, onLink, autonomous) in [(UInt8(0x80), true, false), (0x40, false, true), (0x3f, false, false)] {
            var p = prefix
            p[3] = flags
            let o = try options(p, as: NDPOptions.self) { Array($0) }
            guard case .prefixInformation(let i) = o.first else { Issue.record("no prefix"); continue }
            #expect(i.onLink == onLink && i.autonomous == autonomous)
        }
    }

    /// The first address option counts; one of the other kind is not it.
    @Test func linkLayerAddressLookups() throws {
        let opts = hex("0201 02000a000002 0101 02000a000001 0101 020000000099")
        let o = try options(opts, as: NDPOptions.self) { [.sourceLinkLayer($0.sourceLinkLayerAddress!),
                                                        .targetLinkLayer($0.targetLinkLayerAddress!)] }
        #expect(o == [.sourceLinkLayer(macA), .targetLinkLayer(macB)])
        var na = Array(kernelAdvertisement[0..<24]) + hex("0101 02000a000001")
        let target = try na.withUnsafeMutableBytes { try NeighborAdvertisement(validating: $0).targetLinkLayerAddress }
        #expect(target == nil)
    }

    // MARK: Emitting

    @Test func emittedMessagesMatchTheHandBuiltOnes() throws {
        let t = IPv6Address(0x2001, 0xdb8, 0, 0, 0, 0, 0xabcd, 0x1234)
        let cases: [(NDPRepr, [UInt8])] = [
            (.neighborSolicitation(target: t, sourceLinkLayer: nil), [135, 0, 0, 0, 0, 0, 0, 0] + bytes(t)),
            (.neighborSolicitation(target: t, sourceLinkLayer: macB),
             [135, 0, 0, 0, 0, 0, 0, 0] + bytes(t) + [1, 1] + hex("02000a000002")),
            (.neighborAdvertisement(target: t, router: true, solicited: false, override: false, targetLinkLayer: nil),
             [136, 0, 0, 0, 0x80, 0, 0, 0] + bytes(t)),
            (.neighborAdvertisement(target: t, router: false, solicited: true, override: false, targetLinkLayer: macA),
             [136, 0, 0, 0, 0x40, 0, 0, 0] + bytes(t) + [2, 1] + hex("02000a000001")),
            (.neighborAdvertisement(target: t, router: true, solicited: true, override: true, targetLinkLayer: macA),
             [136, 0, 0, 0, 0xe0, 0, 0, 0] + bytes(t) + [2, 1] + hex("02000a000001")),
            (.routerSolicitation(sourceLinkLayer: nil), [133, 0, 0, 0, 0, 0, 0, 0]),
        ]
        for (repr, fields) in cases {
            let expected = ndpMessage(fields, source: a, destination: b)
            #expect(repr.length == expected.count)
            var out = [UInt8](repeating: 0xa5, count: expected.count + 3)
            out.withUnsafeMutableBytes { repr.emit(into: $0, source: a, destination: b) }
            #expect(Array(out[0..<expected.count]) == expected, "\(repr)")
            #expect(Array(out[expected.count...]) == [0xa5, 0xa5, 0xa5], "past the message")
            // And it parses back.
            var m = expected
            let again = try m.withUnsafeMutableBytes { buf -> NDPRepr in
                switch buf[0] {
                case 135: return NDPRepr(parsing: try NeighborSolicitation(validating: buf))
                case 136: return NDPRepr(parsing: try NeighborAdvertisement(validating: buf))
                default: return NDPRepr(parsing: try RouterSolicitation(validating: buf))
                }
            }
            #expect(again == repr)
        }
    }
}
