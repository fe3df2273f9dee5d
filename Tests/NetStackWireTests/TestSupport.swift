import Foundation
@testable import NetStackWire

// Helpers shared by the wire tests. Nothing here calls into NetStackWire's
// checksum code: expected values are computed independently.

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny seeded generator, so every
/// property-style test is reproducible from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension SplitMix64 {
    mutating func bytes(_ n: Int) -> [UInt8] {
        (0..<n).map { _ in UInt8.random(in: .min ... .max, using: &self) }
    }
}

/// The textbook RFC 1071 loop: 16-bit big-endian words, a trailing odd byte
/// padded with zero, end-around carry. The reference for the fast code.
func referenceSum(_ bytes: [UInt8]) -> UInt16 {
    var sum: UInt32 = 0
    var i = 0
    while i + 1 < bytes.count {
        sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
        sum = (sum & 0xffff) + (sum >> 16)
        i += 2
    }
    if i < bytes.count {
        sum += UInt32(bytes[i]) << 8
        sum = (sum & 0xffff) + (sum >> 16)
    }
    return UInt16(sum)
}

/// The checksum field value for `bytes` (complemented reference sum).
func referenceChecksum(_ bytes: [UInt8]) -> UInt16 { ~referenceSum(bytes) }

/// The IPv4 pseudo-header of RFC 768 as bytes.
func pseudoHeader(source: IPv4Address, destination: IPv4Address, protocol proto: UInt8, length: Int) -> [UInt8] {
    be32(source.value) + be32(destination.value) + [0, proto] + be16(UInt16(length))
}

/// The IPv6 pseudo-header of RFC 8200 8.1 as bytes: source, destination,
/// 32-bit upper-layer length, three zero bytes, next header.
func pseudoHeader(source: IPv6Address, destination: IPv6Address, nextHeader: UInt8, length: Int) -> [UInt8] {
    bytes(source) + bytes(destination) + be32(UInt32(length)) + [0, 0, 0, nextHeader]
}

/// The 16 bytes of an address, from its groups.
func bytes(_ a: IPv6Address) -> [UInt8] { (0..<8).flatMap { be16(a.group($0)) } }

func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
func readBE16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) << 8 | UInt16(b[at + 1]) }

/// Bytes from hex text; whitespace is ignored.
func hex(_ text: String) -> [UInt8] {
    let digits = text.filter { !$0.isWhitespace }
    precondition(digits.count % 2 == 0, "odd number of hex digits")
    var out = [UInt8]()
    var i = digits.startIndex
    while i < digits.endIndex {
        let j = digits.index(i, offsetBy: 2)
        out.append(UInt8(digits[i..<j], radix: 16)!)
        i = j
    }
    return out
}

/// The views under test, as one protocol so helpers and the fuzzer can take any of them.
protocol ValidatingView {
    init(validating bytes: UnsafeMutableRawBufferPointer) throws(WireError)
}
extension EthernetFrame: ValidatingView {}
extension ARPPacket: ValidatingView {}
extension IPv4Packet: ValidatingView {}
extension ICMPv4Packet: ValidatingView {}
extension UDPDatagram: ValidatingView {}
extension IPv6Packet: ValidatingView {}
extension IPv6FragmentHeader: ValidatingView {}
extension ICMPv6Packet: ValidatingView {}
extension NDPOptions: ValidatingView {}
extension NeighborSolicitation: ValidatingView {}
extension NeighborAdvertisement: ValidatingView {}
extension RouterSolicitation: ValidatingView {}
extension RouterAdvertisement: ValidatingView {}

/// `IPv4Packet(validatingQuoted:)`, the header quoted in an ICMP error, as a view of its own.
struct QuotedIPv4: ValidatingView {
    let packet: IPv4Packet
    init(validating bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        packet = try IPv4Packet(validatingQuoted: bytes)
    }
}

/// `IPv6Packet(validatingQuoted:)`, the packet quoted in an ICMPv6 error.
struct QuotedIPv6: ValidatingView {
    let packet: IPv6Packet
    init(validating bytes: UnsafeMutableRawBufferPointer) throws(WireError) {
        packet = try IPv6Packet(validatingQuoted: bytes)
    }
}

/// The error `V(validating:)` throws for `bytes`, or nil if it accepts them.
func wireError<V: ValidatingView>(_ bytes: [UInt8], as _: V.Type) -> WireError? {
    var copy = bytes
    return copy.withUnsafeMutableBytes { buf -> WireError? in
        do throws(WireError) {
            _ = try V(validating: buf)
            return nil
        } catch {
            return error
        }
    }
}

extension UnsafeMutableRawBufferPointer {
    /// A copy of the bytes, for comparisons.
    var array: [UInt8] { Array(self) }

    /// True if `inner` lies within `self` (same memory, not a copy).
    func contains(_ inner: UnsafeMutableRawBufferPointer) -> Bool {
        guard inner.count > 0 else { return true }
        guard let base = baseAddress, let ib = inner.baseAddress else { return false }
        return ib >= base && ib + inner.count <= base + count
    }
}

// MARK: - Classic pcap

/// One captured frame.
struct PcapRecord {
    var seconds: UInt32
    /// Nanoseconds past `seconds` (microsecond files are scaled up).
    var nanoseconds: UInt32
    var originalLength: Int
    var bytes: [UInt8]
}

enum PcapError: Error { case badMagic, truncated, notEthernet }

/// A reader for classic libpcap files (not pcapng): a 24-byte global header
/// then 16-byte record headers. Both the microsecond (a1b2c3d4) and
/// nanosecond (a1b23c4d) magics, in either byte order.
func readPcap(_ data: [UInt8]) throws -> (nanosecondTimestamps: Bool, records: [PcapRecord]) {
    guard data.count >= 24 else { throw PcapError.truncated }
    func le32(_ at: Int) -> UInt32 {
        UInt32(data[at]) | UInt32(data[at + 1]) << 8 | UInt32(data[at + 2]) << 16 | UInt32(data[at + 3]) << 24
    }
    let magic = le32(0)
    let swapped: Bool, nano: Bool
    switch magic {
    case 0xa1b2_c3d4: (swapped, nano) = (false, false)
    case 0xa1b2_3c4d: (swapped, nano) = (false, true)
    case 0xd4c3_b2a1: (swapped, nano) = (true, false)
    case 0x4d3c_b2a1: (swapped, nano) = (true, true)
    default: throw PcapError.badMagic
    }
    func u32(_ at: Int) -> UInt32 { swapped ? le32(at).byteSwapped : le32(at) }
    guard u32(20) == 1 else { throw PcapError.notEthernet }  // LINKTYPE_ETHERNET
    var records = [PcapRecord]()
    var at = 24
    while at < data.count {
        guard at + 16 <= data.count else { throw PcapError.truncated }
        let caplen = Int(u32(at + 8))
        guard at + 16 + caplen <= data.count else { throw PcapError.truncated }
        let frac = u32(at + 4)
        records.append(PcapRecord(seconds: u32(at), nanoseconds: nano ? frac : frac * 1000,
                                  originalLength: Int(u32(at + 12)),
                                  bytes: Array(data[(at + 16)..<(at + 16 + caplen)])))
        at += 16 + caplen
    }
    return (nano, records)
}

/// The directory holding the committed captures (next to this file).
let capturesDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Captures")

func loadCapture(_ name: String) throws -> [PcapRecord] {
    let data = try Data(contentsOf: capturesDirectory.appendingPathComponent(name))
    return try readPcap(Array(data)).records
}

let captureNames = ["arp.pcap", "ping.pcap", "ping-fragmented.pcap", "udp.pcap"]

/// The addresses the capture script gives its two namespaces.
enum Capture {
    static let macA = MACAddress(0x02, 0x00, 0x0a, 0x00, 0x00, 0x01)
    static let macB = MACAddress(0x02, 0x00, 0x0a, 0x00, 0x00, 0x02)
    static let ipA = IPv4Address(10, 0, 0, 1)
    static let ipB = IPv4Address(10, 0, 0, 2)
    static let ip6A = IPv6Address(0xfd00, 0, 0, 0, 0, 0, 0, 1)
    static let ip6B = IPv6Address(0xfd00, 0, 0, 0, 0, 0, 0, 2)
    /// The kernel's EUI-64 link-local address of A (fe80::aff:fe00:1).
    static let linkLocalA = IPv6Address(0xfe80, 0, 0, 0, 0, 0x0aff, 0xfe00, 1)
}
