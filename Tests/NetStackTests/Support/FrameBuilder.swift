import NetStackWire

/// Builds frames as plain byte arrays, using the wire reprs' emitters, so tests
/// can craft exactly what goes on the wire (and then break it on purpose).
enum FrameBuilder {
    /// An Ethernet II frame around `payload`, optionally padded with `padding`
    /// (Ethernet's 60-byte minimum leaves junk after short packets).
    static func ethernet(destination: MACAddress, source: MACAddress, etherType: EtherType,
                         payload: [UInt8], padding: [UInt8] = []) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: EthernetFrame.headerLength)
        bytes.withUnsafeMutableBytes { b in
            EthernetRepr(destination: destination, source: source, etherType: etherType).emit(into: b)
        }
        return bytes + payload + padding
    }

    /// A 28-byte Ethernet/IPv4 ARP packet.
    static func arp(_ operation: ARPOperation, senderMAC: MACAddress, senderIP: IPv4Address,
                    targetMAC: MACAddress, targetIP: IPv4Address) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: ARPRepr.length)
        bytes.withUnsafeMutableBytes { b in
            ARPRepr(operation: operation, senderHardwareAddress: senderMAC, senderProtocolAddress: senderIP,
                    targetHardwareAddress: targetMAC, targetProtocolAddress: targetIP).emit(into: b)
        }
        return bytes
    }

    /// An IPv4 packet: a 20-byte header from `repr` (its payload length is set
    /// from `payload`) with a correct checksum, then `payload`.
    static func ipv4(_ repr: IPv4Repr, payload: [UInt8]) -> [UInt8] {
        var r = repr
        r.payloadLength = payload.count
        var bytes = [UInt8](repeating: 0, count: IPv4Repr.headerLength)
        bytes.withUnsafeMutableBytes { b in r.emit(into: b) }
        return bytes + payload
    }

    static func ipv4(source: IPv4Address, destination: IPv4Address, protocol proto: IPProtocol,
                     payload: [UInt8], identification: UInt16 = 0x4242, ttl: UInt8 = 64,
                     moreFragments: Bool = false, fragmentOffset: Int = 0) -> [UInt8] {
        ipv4(IPv4Repr(source: source, destination: destination, protocol: proto, payloadLength: payload.count,
                      timeToLive: ttl, identification: identification, moreFragments: moreFragments,
                      fragmentOffset: fragmentOffset),
             payload: payload)
    }

    /// An ICMP echo request (or reply) with `data`, checksummed.
    static func icmpEcho(request: Bool = true, identifier: UInt16, sequence: UInt16, data: [UInt8]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: ICMPv4Packet.headerLength) + data
        bytes.withUnsafeMutableBytes { b in
            let message: ICMPv4Message = request
                ? .echoRequest(identifier: identifier, sequence: sequence)
                : .echoReply(identifier: identifier, sequence: sequence)
            ICMPv4Repr(message: message, dataLength: data.count).emit(into: b)
        }
        return bytes
    }

    /// A UDP datagram with a correct checksum for the pseudo-header `source`/`destination`.
    static func udp(sourcePort: UInt16, destinationPort: UInt16, payload: [UInt8],
                    source: IPv4Address, destination: IPv4Address) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: UDPRepr.headerLength) + payload
        bytes.withUnsafeMutableBytes { b in
            UDPRepr(sourcePort: sourcePort, destinationPort: destinationPort, payloadLength: payload.count)
                .emit(into: b, source: source, destination: destination)
        }
        return bytes
    }

    /// Cuts an IP payload into fragments of the given payload sizes (all but
    /// the last should be multiples of 8 for a well-formed datagram); returns
    /// whole IP packets in order of offset.
    static func fragments(source: IPv4Address, destination: IPv4Address, protocol proto: IPProtocol,
                          payload: [UInt8], sizes: [Int], identification: UInt16) -> [[UInt8]] {
        precondition(sizes.reduce(0, +) == payload.count, "fragment sizes must cover the payload")
        var out: [[UInt8]] = []
        var offset = 0
        for (i, size) in sizes.enumerated() {
            let more = i < sizes.count - 1
            out.append(ipv4(source: source, destination: destination, protocol: proto,
                            payload: Array(payload[offset..<(offset + size)]), identification: identification,
                            moreFragments: more, fragmentOffset: offset))
            offset += size
        }
        return out
    }

    /// Cuts an IP payload into fragments of at most `maxFragment` bytes (a multiple of 8).
    static func fragments(source: IPv4Address, destination: IPv4Address, protocol proto: IPProtocol,
                          payload: [UInt8], maxFragment: Int, identification: UInt16) -> [[UInt8]] {
        precondition(maxFragment % 8 == 0)
        var sizes: [Int] = []
        var left = payload.count
        while left > maxFragment { sizes.append(maxFragment); left -= maxFragment }
        sizes.append(left)
        return fragments(source: source, destination: destination, protocol: proto, payload: payload,
                         sizes: sizes, identification: identification)
    }

    /// Recomputes the IPv4 header checksum of an IP packet in place (after a
    /// test edited header fields), using the reference checksum.
    static func refreshIPv4Checksum(_ ip: inout [UInt8]) {
        let ihl = Int(ip[0] & 0x0f) * 4
        ip[10] = 0; ip[11] = 0
        let c = ReferenceChecksum.compute(Array(ip[0..<min(ihl, ip.count)]))
        ip[10] = UInt8(c >> 8); ip[11] = UInt8(c & 0xff)
    }

    /// Deterministic filler bytes.
    static func pattern(_ count: Int, seed: UInt8 = 0) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed) &+ ($0 >> 8)) }
    }
}

/// RFC 1071 checksum, written the slow and obvious way (16-bit words, end-around
/// carry), independent of `InternetChecksum`, for checking what the stack sends.
enum ReferenceChecksum {
    /// The one's-complement sum of big-endian words (odd byte padded with zero), folded.
    static func sum(_ bytes: [UInt8]) -> UInt16 {
        var s: UInt32 = 0
        var i = 0
        while i < bytes.count {
            let hi = UInt32(bytes[i])
            let lo = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0
            s += hi << 8 | lo
            s = (s & 0xffff) + (s >> 16)
            i += 2
        }
        return UInt16(s)
    }

    static func compute(_ bytes: [UInt8]) -> UInt16 { ~sum(bytes) }

    /// True if data including its checksum field sums to all ones.
    static func verifies(_ bytes: [UInt8]) -> Bool { sum(bytes) == 0xffff }

    static func pseudoHeader(source: IPv4Address, destination: IPv4Address, protocol proto: UInt8,
                             length: Int) -> [UInt8] {
        be32(source.value) + be32(destination.value) + [0, proto] + be16(UInt16(length))
    }
}

func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }
func macBytes(_ m: MACAddress) -> [UInt8] { [m.bytes.0, m.bytes.1, m.bytes.2, m.bytes.3, m.bytes.4, m.bytes.5] }
func read16(_ b: [UInt8], _ at: Int) -> UInt16 { UInt16(b[at]) << 8 | UInt16(b[at + 1]) }

/// SplitMix64: a small seeded generator, so random tests replay exactly.
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
