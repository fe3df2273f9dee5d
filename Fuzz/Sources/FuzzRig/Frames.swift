/// Frames the fuzzer sends, built byte by byte into arrays so a mutation can
/// touch any field (NetStackWire's emitters only write valid headers), and
/// the checksum repair that lets a mutated frame past the checks into the
/// layers behind them.

/// The Internet checksum (RFC 1071) over `bytes`, starting from `initial`.
func internetSum(_ bytes: ArraySlice<UInt8>, initial: UInt32 = 0) -> UInt32 {
    var sum = initial
    var i = bytes.startIndex
    while i + 1 < bytes.endIndex {
        sum &+= UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
        i += 2
    }
    if i < bytes.endIndex { sum &+= UInt32(bytes[i]) << 8 }
    return sum
}

func foldChecksum(_ sum: UInt32) -> UInt16 {
    var s = sum
    while s >> 16 != 0 { s = (s & 0xffff) &+ (s >> 16) }
    return ~UInt16(s)
}

extension Array where Element == UInt8 {
    mutating func put16(_ v: UInt16, at i: Int) {
        self[i] = UInt8(v >> 8)
        self[i + 1] = UInt8(truncatingIfNeeded: v)
    }
    mutating func put32(_ v: UInt32, at i: Int) {
        for k in 0..<4 { self[i + k] = UInt8(truncatingIfNeeded: v >> (24 - 8 * k)) }
    }
    mutating func append16(_ v: UInt16) { append(UInt8(v >> 8)); append(UInt8(truncatingIfNeeded: v)) }
    mutating func append32(_ v: UInt32) { append16(UInt16(v >> 16)); append16(UInt16(truncatingIfNeeded: v)) }
    func get16(_ i: Int) -> UInt16 { UInt16(self[i]) << 8 | UInt16(self[i + 1]) }
    func get32(_ i: Int) -> UInt32 { UInt32(get16(i)) << 16 | UInt32(get16(i + 2)) }
}

enum EtherType: UInt16 { case ipv4 = 0x0800, arp = 0x0806, ipv6 = 0x86dd }

enum Proto: UInt8 { case icmp = 1, tcp = 6, udp = 17, icmpv6 = 58 }

/// Ethernet header (14 bytes) followed by `payload`.
func ethernet(destination: [UInt8], source: [UInt8], type: UInt16, _ payload: [UInt8]) -> [UInt8] {
    var f = destination + source
    f.append16(type)
    return f + payload
}

/// An ARP packet for Ethernet and IPv4 (RFC 826).
func arpPacket(operation: UInt16, senderMAC: [UInt8], senderIP: UInt32, targetMAC: [UInt8], targetIP: UInt32) -> [UInt8] {
    var p: [UInt8] = []
    p.append16(1); p.append16(0x0800); p.append(6); p.append(4); p.append16(operation)
    p += senderMAC; p.append32(senderIP); p += targetMAC; p.append32(targetIP)
    return p
}

/// An IPv4 header with `options` (padded to 4 bytes) and a valid checksum,
/// followed by `payload` (RFC 791 3.1).
func ipv4(source: UInt32, destination: UInt32, proto: UInt8, identification: UInt16 = 0x4a11,
          fragmentField: UInt16 = 0x4000, ttl: UInt8 = 64, tos: UInt8 = 0, options: [UInt8] = [],
          _ payload: [UInt8]) -> [UInt8] {
    var opts = options
    while opts.count % 4 != 0 { opts.append(0) }
    let headerLength = 20 + min(opts.count, 40)
    var h: [UInt8] = [UInt8(0x40 | headerLength / 4), tos]
    h.append16(UInt16(truncatingIfNeeded: headerLength + payload.count))
    h.append16(identification); h.append16(fragmentField)
    h.append(ttl); h.append(proto); h.append16(0)
    h.append32(source); h.append32(destination)
    h += opts.prefix(40)
    h.put16(foldChecksum(internetSum(h[...])), at: 10)
    return h + payload
}

/// The pseudo-header sum for TCP and UDP (RFC 9293 3.1, RFC 768).
func pseudoSum(source: UInt32, destination: UInt32, proto: UInt8, length: Int) -> UInt32 {
    var s: UInt32 = 0
    s &+= source >> 16; s &+= source & 0xffff
    s &+= destination >> 16; s &+= destination & 0xffff
    s &+= UInt32(proto); s &+= UInt32(length & 0xffff)
    return s
}

/// IPv6's pseudo-header sum for TCP, UDP and ICMPv6 (RFC 8200 8.1): both
/// addresses (16 bytes each), the upper-layer length in 32 bits, the next header.
func pseudoSum6(source: [UInt8], destination: [UInt8], proto: UInt8, length: Int) -> UInt32 {
    internetSum(source[...]) &+ internetSum(destination[...]) &+ UInt32(length >> 16 & 0xffff)
        &+ UInt32(length & 0xffff) &+ UInt32(proto)
}

/// The pseudo-header sum of either family: IPv4 addresses are 4 bytes, IPv6's 16.
func pseudoSum(_ source: [UInt8], _ destination: [UInt8], proto: UInt8, length: Int) -> UInt32 {
    source.count == 16 ? pseudoSum6(source: source, destination: destination, proto: proto, length: length)
                       : pseudoSum(source: source.get32(0), destination: destination.get32(0), proto: proto,
                                   length: length)
}

extension UInt32 {
    /// An IPv4 address as its 4 bytes.
    var bytes: [UInt8] { [UInt8(self >> 24), UInt8(self >> 16 & 0xff), UInt8(self >> 8 & 0xff), UInt8(self & 0xff)] }
}

/// A UDP datagram with its checksum over the pseudo-header.
func udp(source: UInt32, destination: UInt32, sourcePort: UInt16, destinationPort: UInt16, _ payload: [UInt8]) -> [UInt8] {
    udp(source.bytes, destination.bytes, sourcePort: sourcePort, destinationPort: destinationPort, payload)
}

/// A UDP datagram for either family's addresses (4 or 16 bytes).
func udp(_ source: [UInt8], _ destination: [UInt8], sourcePort: UInt16, destinationPort: UInt16,
         _ payload: [UInt8]) -> [UInt8] {
    var d: [UInt8] = []
    d.append16(sourcePort); d.append16(destinationPort)
    d.append16(UInt16(truncatingIfNeeded: 8 + payload.count)); d.append16(0)
    d += payload
    var c = foldChecksum(internetSum(d[...], initial: pseudoSum(source, destination, proto: 17, length: d.count)))
    if c == 0 { c = 0xffff }
    d.put16(c, at: 6)
    return d
}

/// A TCP segment with `options` (padded with NOPs... then EOL) and its checksum.
func tcp(source: UInt32, destination: UInt32, sourcePort: UInt16, destinationPort: UInt16,
         seq: UInt32, ack: UInt32, flags: UInt8, window: UInt16 = 65535, urgent: UInt16 = 0,
         options: [UInt8] = [], _ payload: [UInt8]) -> [UInt8] {
    tcp(source.bytes, destination.bytes, sourcePort: sourcePort, destinationPort: destinationPort, seq: seq,
        ack: ack, flags: flags, window: window, urgent: urgent, options: options, payload)
}

/// A TCP segment for either family's addresses (4 or 16 bytes).
func tcp(_ source: [UInt8], _ destination: [UInt8], sourcePort: UInt16, destinationPort: UInt16,
         seq: UInt32, ack: UInt32, flags: UInt8, window: UInt16 = 65535, urgent: UInt16 = 0,
         options: [UInt8] = [], _ payload: [UInt8]) -> [UInt8] {
    var opts = Array(options.prefix(40))
    while opts.count % 4 != 0 { opts.append(0) }
    var s: [UInt8] = []
    s.append16(sourcePort); s.append16(destinationPort)
    s.append32(seq); s.append32(ack)
    s.append(UInt8((20 + opts.count) / 4) << 4); s.append(flags)
    s.append16(window); s.append16(0); s.append16(urgent)
    s += opts
    s += payload
    s.put16(foldChecksum(internetSum(s[...], initial: pseudoSum(source, destination, proto: 6, length: s.count))), at: 16)
    return s
}

/// An ICMP message (RFC 792) with its checksum.
func icmp(type: UInt8, code: UInt8, rest: UInt32, _ data: [UInt8]) -> [UInt8] {
    var m: [UInt8] = [type, code, 0, 0]
    m.append32(rest)
    m += data
    m.put16(foldChecksum(internetSum(m[...])), at: 2)
    return m
}

/// An ICMPv6 message (RFC 4443 2.1) with its checksum, which unlike
/// ICMP's covers the pseudo-header.
func icmp6(source: [UInt8], destination: [UInt8], type: UInt8, code: UInt8, rest: UInt32,
           _ data: [UInt8]) -> [UInt8] {
    var m: [UInt8] = [type, code, 0, 0]
    m.append32(rest)
    m += data
    m.put16(foldChecksum(internetSum(m[...], initial: pseudoSum6(source: source, destination: destination,
                                                                 proto: 58, length: m.count))), at: 2)
    return m
}

/// An IPv6 address as its 16 bytes, from its two halves.
func ip6(_ high: UInt64, _ low: UInt64) -> [UInt8] {
    var a: [UInt8] = []
    a.append32(UInt32(high >> 32)); a.append32(UInt32(truncatingIfNeeded: high))
    a.append32(UInt32(low >> 32)); a.append32(UInt32(truncatingIfNeeded: low))
    return a
}

/// The solicited-node group of `a` (ff02::1:ffXX:XXXX, RFC 4291 2.7.1).
func solicitedNode(_ a: [UInt8]) -> [UInt8] {
    ip6(0xff02 << 48, 0x1_ff00_0000 | UInt64(a[13]) << 16 | UInt64(a[14]) << 8 | UInt64(a[15]))
}

/// The Ethernet address an IPv6 multicast group maps to (33:33 and its last
/// 32 bits, RFC 2464 7).
func multicastMAC(_ a: [UInt8]) -> [UInt8] { [0x33, 0x33] + a[12..<16] }

/// An IPv6 fixed header (RFC 8200 3) followed by `payload`, whose length it
/// claims unless `payloadLength` says otherwise; `nextHeader` names what
/// follows. No checksum: IPv6 has none of its own.
func ipv6(source: [UInt8], destination: [UInt8], nextHeader: UInt8, hopLimit: UInt8 = 64,
          trafficClass: UInt8 = 0, flowLabel: UInt32 = 0, payloadLength: UInt16? = nil,
          _ payload: [UInt8]) -> [UInt8] {
    var h: [UInt8] = []
    h.append32(6 << 28 | UInt32(trafficClass) << 20 | flowLabel & 0xfffff)
    h.append16(payloadLength ?? UInt16(truncatingIfNeeded: payload.count))
    h.append(nextHeader); h.append(hopLimit)
    h += source.padded(16).prefix(16)
    h += destination.padded(16).prefix(16)
    return h + payload
}

/// A Hop-by-Hop or Destination Options header (RFC 8200 4.3, 4.6) holding
/// `options` (TLVs as given, bad ones included), padded with PadN or Pad1
/// to a multiple of 8 unless `pad` is false; Hdr Ext Len from the result.
func optionsHeader(nextHeader: UInt8, _ options: [UInt8], pad: Bool = true) -> [UInt8] {
    var h: [UInt8] = [nextHeader, 0] + options.prefix(2040)
    if pad {
        let gap = (8 - h.count % 8) % 8
        if gap == 1 { h.append(0) } else if gap > 1 { h += [1, UInt8(gap - 2)] + [UInt8](repeating: 0, count: gap - 2) }
    }
    h[1] = UInt8(max(0, (h.count + 7) / 8 - 1))
    return h
}

/// An IPv6 Fragment header (RFC 8200 4.5): offset in bytes (a multiple of 8), M flag, identification.
func fragmentHeader(nextHeader: UInt8, offset: Int, more: Bool, identification: UInt32) -> [UInt8] {
    var h: [UInt8] = [nextHeader, 0]
    h.append16(UInt16(truncatingIfNeeded: offset) & 0xfff8 | (more ? 1 : 0))
    h.append32(identification)
    return h
}

/// Makes the checksums right again after a mutation, over whatever lengths
/// the (possibly mutated) headers now claim, bounded by the frame: IPv4's
/// header checksum, and the transport checksum of an unfragmented datagram
/// of either family. Frames of other types, or too short for what they
/// claim, are left as they are.
func repairChecksums(_ f: inout [UInt8]) {
    guard f.count >= 14 else { return }
    switch f.get16(12) {
    case 0x0800: repairChecksums4(&f)
    case 0x86dd: repairChecksums6(&f)
    default: break
    }
}

private func repairChecksums4(_ f: inout [UInt8]) {
    guard f.count >= 34 else { return }
    let ip = 14
    let headerLength = Int(f[ip] & 0x0f) * 4
    guard headerLength >= 20, ip + headerLength <= f.count else { return }
    f.put16(0, at: ip + 10)
    f.put16(foldChecksum(internetSum(f[ip..<(ip + headerLength)])), at: ip + 10)
    let total = min(Int(f.get16(ip + 2)), f.count - ip)
    let fragment = f.get16(ip + 6)
    guard fragment & 0x3fff == 0, total > headerLength else { return }
    let source = f.get32(ip + 12), destination = f.get32(ip + 16)
    repairTransport(&f, proto: f[ip + 9], from: ip + headerLength, to: ip + total,
                    pseudo: { pseudoSum(source: source, destination: destination, proto: $0, length: $1) })
}

/// IPv6 has no header checksum: the transport's (ICMPv6's too) is over the
/// pseudo-header (RFC 8200 8.1), behind whatever chain of Hop-by-Hop,
/// Routing and Destination Options headers and atomic fragments the packet
/// claims. Behind a fragment that is not atomic it is left as it is (the
/// datagram's checksum was right before it was cut).
private func repairChecksums6(_ f: inout [UInt8]) {
    let ip = 14
    guard f.count >= ip + 40 else { return }
    let end = min(ip + 40 + Int(f.get16(ip + 4)), f.count)
    var next = f[ip + 6], at = ip + 40
    chain: for _ in 0..<16 {
        switch next {
        case 0, 43, 60:
            guard at + 2 <= end else { return }
            next = f[at]
            at += (Int(f[at + 1]) + 1) * 8
        case 44:
            guard at + 8 <= end, f.get16(at + 2) & 0xfff9 == 0 else { return }
            next = f[at]
            at += 8
        default:
            break chain
        }
    }
    guard at < end else { return }
    let source = Array(f[(ip + 8)..<(ip + 24)]), destination = Array(f[(ip + 24)..<(ip + 40)])
    repairTransport(&f, proto: next, from: at, to: end,
                    pseudo: { pseudoSum6(source: source, destination: destination, proto: $0, length: $1) })
}

/// The transport checksum of `f[l4..<end]`: ICMP's (without a pseudo-header
/// over IPv4, with one over IPv6), TCP's or UDP's.
private func repairTransport(_ f: inout [UInt8], proto: UInt8, from l4: Int, to end: Int,
                             pseudo: (UInt8, Int) -> UInt32) {
    switch proto {
    case 1 where end - l4 >= 8:
        f.put16(0, at: l4 + 2)
        f.put16(foldChecksum(internetSum(f[l4..<end])), at: l4 + 2)
    case 58 where end - l4 >= 4:
        f.put16(0, at: l4 + 2)
        f.put16(foldChecksum(internetSum(f[l4..<end], initial: pseudo(58, end - l4))), at: l4 + 2)
    case 6 where end - l4 >= 20:
        f.put16(0, at: l4 + 16)
        f.put16(foldChecksum(internetSum(f[l4..<end], initial: pseudo(6, end - l4))), at: l4 + 16)
    case 17 where end - l4 >= 8:
        f.put16(0, at: l4 + 6)
        var c = foldChecksum(internetSum(f[l4..<end], initial: pseudo(17, end - l4)))
        if c == 0 { c = 0xffff }
        f.put16(c, at: l4 + 6)
    default: break
    }
}
