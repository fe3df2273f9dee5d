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

enum EtherType: UInt16 { case ipv4 = 0x0800, arp = 0x0806 }

enum Proto: UInt8 { case icmp = 1, tcp = 6, udp = 17 }

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

/// A UDP datagram with its checksum over the pseudo-header.
func udp(source: UInt32, destination: UInt32, sourcePort: UInt16, destinationPort: UInt16, _ payload: [UInt8]) -> [UInt8] {
    var d: [UInt8] = []
    d.append16(sourcePort); d.append16(destinationPort)
    d.append16(UInt16(truncatingIfNeeded: 8 + payload.count)); d.append16(0)
    d += payload
    var c = foldChecksum(internetSum(d[...], initial: pseudoSum(source: source, destination: destination, proto: 17, length: d.count)))
    if c == 0 { c = 0xffff }
    d.put16(c, at: 6)
    return d
}

/// A TCP segment with `options` (padded with NOPs... then EOL) and its checksum.
func tcp(source: UInt32, destination: UInt32, sourcePort: UInt16, destinationPort: UInt16,
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
    s.put16(foldChecksum(internetSum(s[...], initial: pseudoSum(source: source, destination: destination, proto: 6, length: s.count))), at: 16)
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

/// Makes the IPv4 header checksum right again after a mutation, and the
/// transport checksum of an unfragmented datagram, over whatever lengths the
/// (possibly mutated) headers now claim, bounded by the frame. Frames that
/// are not IPv4, or too short for what they claim, are left as they are.
func repairChecksums(_ f: inout [UInt8]) {
    guard f.count >= 34, f.get16(12) == 0x0800 else { return }
    let ip = 14
    let headerLength = Int(f[ip] & 0x0f) * 4
    guard headerLength >= 20, ip + headerLength <= f.count else { return }
    f.put16(0, at: ip + 10)
    f.put16(foldChecksum(internetSum(f[ip..<(ip + headerLength)])), at: ip + 10)
    let total = min(Int(f.get16(ip + 2)), f.count - ip)
    let fragment = f.get16(ip + 6)
    guard fragment & 0x3fff == 0, total > headerLength else { return }
    let l4 = ip + headerLength, end = ip + total
    let source = f.get32(ip + 12), destination = f.get32(ip + 16)
    switch f[ip + 9] {
    case 1 where end - l4 >= 8:
        f.put16(0, at: l4 + 2)
        f.put16(foldChecksum(internetSum(f[l4..<end])), at: l4 + 2)
    case 6 where end - l4 >= 20:
        f.put16(0, at: l4 + 16)
        f.put16(foldChecksum(internetSum(f[l4..<end], initial: pseudoSum(source: source, destination: destination, proto: 6, length: end - l4))), at: l4 + 16)
    case 17 where end - l4 >= 8:
        f.put16(0, at: l4 + 6)
        var c = foldChecksum(internetSum(f[l4..<end], initial: pseudoSum(source: source, destination: destination, proto: 17, length: end - l4)))
        if c == 0 { c = 0xffff }
        f.put16(c, at: l4 + 6)
    default: break
    }
}
