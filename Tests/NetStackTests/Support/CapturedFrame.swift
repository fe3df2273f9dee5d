import Testing
@testable import NetStack
import NetStackWire

/// A frame the stack sent, copied out of its slot so the slot can go back to
/// the pool. Accessors decode fixed offsets by hand (RFC layouts), so they
/// check the stack rather than repeat its views.
struct CapturedFrame: CustomStringConvertible {
    /// The pool slot the frame was sent in (to check answers built in place).
    let slot: UInt32
    let bytes: [UInt8]

    var ethernetDestination: MACAddress { mac(at: 0) }
    var ethernetSource: MACAddress { mac(at: 6) }
    var etherType: EtherType { EtherType(rawValue: read16(bytes, 12)) }
    var ethernetPayload: [UInt8] { Array(bytes.dropFirst(14)) }

    private func mac(at i: Int) -> MACAddress {
        MACAddress(bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3], bytes[i + 4], bytes[i + 5])
    }

    /// The ARP packet, decoded by hand, or nil if this is not a well-formed Ethernet/IPv4 ARP frame.
    var arp: ARPRepr? {
        guard etherType == .arp, bytes.count >= 14 + 28 else { return nil }
        let a = Array(bytes[14..<42])
        guard read16(a, 0) == 1, read16(a, 2) == 0x0800, a[4] == 6, a[5] == 4 else { return nil }
        func m(_ i: Int) -> MACAddress { MACAddress(a[i], a[i + 1], a[i + 2], a[i + 3], a[i + 4], a[i + 5]) }
        func ip(_ i: Int) -> IPv4Address { IPv4Address(a[i], a[i + 1], a[i + 2], a[i + 3]) }
        return ARPRepr(operation: ARPOperation(rawValue: read16(a, 6)), senderHardwareAddress: m(8),
                       senderProtocolAddress: ip(14), targetHardwareAddress: m(18), targetProtocolAddress: ip(24))
    }

    var ipv4: CapturedIPv4? {
        guard etherType == .ipv4 else { return nil }
        return CapturedIPv4(ethernetPayload)
    }

    var description: String {
        if let a = arp { return "ARP \(a.operation.rawValue) \(a.senderProtocolAddress) -> \(a.targetProtocolAddress)" }
        if let ip = ipv4 {
            return "IPv4 \(ip.source) -> \(ip.destination) proto \(ip.protocolNumber) len \(ip.totalLength) "
                + "id \(ip.identification) off \(ip.fragmentOffset) mf \(ip.moreFragments)"
        }
        return "frame of \(bytes.count) bytes, type \(etherType)"
    }
}

/// An IPv4 packet decoded by hand from its bytes (RFC 791 3.1).
struct CapturedIPv4 {
    /// The packet up to its total length.
    let bytes: [UInt8]

    init?(_ raw: [UInt8]) {
        guard raw.count >= 20, raw[0] >> 4 == 4 else { return nil }
        let total = Int(read16(raw, 2))
        guard total >= Int(raw[0] & 0x0f) * 4, total <= raw.count else { return nil }
        bytes = Array(raw[0..<total])
    }

    var headerLength: Int { Int(bytes[0] & 0x0f) * 4 }
    var totalLength: Int { Int(read16(bytes, 2)) }
    var identification: UInt16 { read16(bytes, 4) }
    var dontFragment: Bool { bytes[6] & 0x40 != 0 }
    var moreFragments: Bool { bytes[6] & 0x20 != 0 }
    var fragmentOffset: Int { Int(read16(bytes, 6) & 0x1fff) * 8 }
    var ttl: UInt8 { bytes[8] }
    var protocolNumber: UInt8 { bytes[9] }
    var headerChecksum: UInt16 { read16(bytes, 10) }
    var source: IPv4Address { IPv4Address(bytes[12], bytes[13], bytes[14], bytes[15]) }
    var destination: IPv4Address { IPv4Address(bytes[16], bytes[17], bytes[18], bytes[19]) }
    var header: [UInt8] { Array(bytes[0..<headerLength]) }
    var payload: [UInt8] { Array(bytes[headerLength...]) }

    /// The header checksum verifies (reference RFC 1071 sum over the header).
    var headerChecksumVerifies: Bool { ReferenceChecksum.verifies(header) }

    /// The checksum recomputed from scratch, with the field zeroed.
    var recomputedHeaderChecksum: UInt16 {
        var h = header
        h[10] = 0; h[11] = 0
        return ReferenceChecksum.compute(h)
    }

    var icmp: CapturedICMP? { protocolNumber == 1 && !isFragment ? CapturedICMP(payload) : nil }

    var udp: CapturedUDP? {
        guard protocolNumber == 17, !isFragment else { return nil }
        return CapturedUDP(payload, source: source, destination: destination)
    }

    var isFragment: Bool { moreFragments || fragmentOffset != 0 }
}

/// An ICMP message decoded by hand (RFC 792).
struct CapturedICMP {
    let bytes: [UInt8]
    init?(_ raw: [UInt8]) {
        guard raw.count >= 8 else { return nil }
        bytes = raw
    }
    var type: UInt8 { bytes[0] }
    var code: UInt8 { bytes[1] }
    var checksum: UInt16 { read16(bytes, 2) }
    var identifier: UInt16 { read16(bytes, 4) }
    var sequence: UInt16 { read16(bytes, 6) }
    /// Bytes 4..<8 (unused in errors, zero).
    var rest: [UInt8] { Array(bytes[4..<8]) }
    var data: [UInt8] { Array(bytes[8...]) }
    var checksumVerifies: Bool { ReferenceChecksum.verifies(bytes) }
    var recomputedChecksum: UInt16 {
        var b = bytes
        b[2] = 0; b[3] = 0
        return ReferenceChecksum.compute(b)
    }
}

/// A UDP datagram decoded by hand (RFC 768).
struct CapturedUDP {
    let bytes: [UInt8]
    let source: IPv4Address
    let destination: IPv4Address
    init?(_ raw: [UInt8], source: IPv4Address, destination: IPv4Address) {
        guard raw.count >= 8 else { return nil }
        bytes = raw
        self.source = source
        self.destination = destination
    }
    var sourcePort: UInt16 { read16(bytes, 0) }
    var destinationPort: UInt16 { read16(bytes, 2) }
    var length: Int { Int(read16(bytes, 4)) }
    var checksum: UInt16 { read16(bytes, 6) }
    var payload: [UInt8] { Array(bytes[8...]) }
    /// Verifies over pseudo-header, header and data (RFC 768). A zero field means none.
    var checksumVerifies: Bool {
        ReferenceChecksum.verifies(ReferenceChecksum.pseudoHeader(source: source, destination: destination,
                                                                  protocol: 17, length: bytes.count) + bytes)
    }
}

/// Puts the stack's fragments back together in the test, independently of the
/// stack's reassembler, checking RFC 791's rules on the way: one identification,
/// contiguous offsets, MF on all but the last, non-last payloads multiples of 8,
/// and every packet within `mtu`. Returns the first fragment and the payload.
func reassembleInTest(_ packets: [CapturedIPv4], mtu: Int,
                      sourceLocation: SourceLocation = #_sourceLocation) -> (first: CapturedIPv4, payload: [UInt8])? {
    guard let first = packets.first else {
        Issue.record("no packets to reassemble", sourceLocation: sourceLocation)
        return nil
    }
    let sorted = packets.sorted { $0.fragmentOffset < $1.fragmentOffset }
    var payload: [UInt8] = []
    for (i, p) in sorted.enumerated() {
        let last = i == sorted.count - 1
        #expect(p.identification == first.identification, sourceLocation: sourceLocation)
        #expect(p.source == first.source && p.destination == first.destination, sourceLocation: sourceLocation)
        #expect(p.protocolNumber == first.protocolNumber, sourceLocation: sourceLocation)
        #expect(p.totalLength <= mtu, "fragment of \(p.totalLength) bytes exceeds the MTU", sourceLocation: sourceLocation)
        #expect(p.headerChecksumVerifies, sourceLocation: sourceLocation)
        #expect(p.fragmentOffset == payload.count, "gap or overlap at \(p.fragmentOffset)", sourceLocation: sourceLocation)
        #expect(p.moreFragments == !last, sourceLocation: sourceLocation)
        if !last { #expect(p.payload.count % 8 == 0, sourceLocation: sourceLocation) }
        payload += p.payload
    }
    return (sorted[0], payload)
}
