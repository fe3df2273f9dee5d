/// What a NIC does for TSO, and the kernel's GSO, done in software: cuts a
/// TCP segment (over IPv4, or IPv6 without extension headers) longer than
/// one frame (Ethernet header included) into frames of `segmentSize`
/// payload bytes. Each frame gets the headers of the whole with its own IP
/// length (IPv4: and identification, the whole's plus the frame's index, as
/// Linux's GSO numbers them, and header checksum), its own
/// sequence number, the flags (FIN and PSH on the last frame only, CWR on the
/// first only: RFC 3168 6.1.2) and a full TCP checksum. Also completes a
/// checksum left partial (the virtio-net header's NEEDS_CSUM). Pure: it
/// writes into buffers it is given.
public enum TCPSegmentation {
    /// The Ethernet, IP (IPv4, or IPv6 without extension headers) and TCP
    /// headers of `frame`, checked: their total length and where the TCP header starts.
    public static func headers(of frame: UnsafeRawBufferPointer) -> (length: Int, tcpStart: Int)? {
        let eth = 14
        guard frame.count >= eth + 20 + 20, let base = frame.baseAddress else { return nil }
        let type = UInt16(base.load(fromByteOffset: 12, as: UInt8.self)) << 8
            | UInt16(base.load(fromByteOffset: 13, as: UInt8.self))
        let ipLength: Int
        switch type {
        case 0x0800:
            // Version 4, protocol TCP.
            guard base.load(fromByteOffset: eth, as: UInt8.self) >> 4 == 4,
                  base.load(fromByteOffset: eth + 9, as: UInt8.self) == 6 else { return nil }
            ipLength = Int(base.load(fromByteOffset: eth, as: UInt8.self) & 0x0f) * 4
            guard ipLength >= 20 else { return nil }
        case 0x86dd:
            // Version 6, next header TCP.
            guard frame.count >= eth + 40 + 20, base.load(fromByteOffset: eth, as: UInt8.self) >> 4 == 6,
                  base.load(fromByteOffset: eth + 6, as: UInt8.self) == 6 else { return nil }
            ipLength = 40
        default:
            return nil
        }
        guard eth + ipLength + 20 <= frame.count else { return nil }
        let thl = Int(base.load(fromByteOffset: eth + ipLength + 12, as: UInt8.self) >> 4) * 4
        guard thl >= 20, eth + ipLength + thl <= frame.count else { return nil }
        return (eth + ipLength + thl, eth + ipLength)
    }

    /// How many frames a payload of `payloadLength` bytes becomes.
    public static func frameCount(payloadLength: Int, segmentSize: Int) -> Int {
        segmentSize > 0 ? max(1, (payloadLength + segmentSize - 1) / segmentSize) : 1
    }

    /// Writes frame `index` of `frame`'s cut into `out` and returns its
    /// length; nil when `frame` is not TCP/IPv4 in Ethernet, `index` is past
    /// the last frame, or `out` is too small.
    public static func cut(_ frame: UnsafeRawBufferPointer, segmentSize: Int, index: Int,
                           into out: UnsafeMutableRawBufferPointer) -> Int? {
        guard segmentSize > 0, let (headerLength, tcpStart) = headers(of: frame),
              let src = frame.baseAddress, let dst = out.baseAddress else { return nil }
        let payload = frame.count - headerLength
        let count = frameCount(payloadLength: payload, segmentSize: segmentSize)
        guard index >= 0, index < count else { return nil }
        let offset = index * segmentSize
        let chunk = min(segmentSize, payload - offset)
        let length = headerLength + chunk
        guard out.count >= length else { return nil }
        dst.copyMemory(from: src, byteCount: headerLength)
        if chunk > 0 { (dst + headerLength).copyMemory(from: src + headerLength + offset, byteCount: chunk) }
        func be16(_ at: Int) -> UInt16 { UInt16(bigEndian: dst.loadUnaligned(fromByteOffset: at, as: UInt16.self)) }
        func setBE16(_ at: Int, _ v: UInt16) { dst.storeBytes(of: v.bigEndian, toByteOffset: at, as: UInt16.self) }
        let ip = 14
        let v6 = dst.load(fromByteOffset: ip, as: UInt8.self) >> 4 == 6
        if v6 {
            setBE16(ip + 4, UInt16(length - tcpStart))
        } else {
            setBE16(ip + 2, UInt16(length - ip))
            setBE16(ip + 4, be16(ip + 4) &+ UInt16(truncatingIfNeeded: index))
            setBE16(ip + 10, 0)
            setBE16(ip + 10, InternetChecksum.compute(UnsafeRawBufferPointer(start: dst + ip, count: tcpStart - ip)))
        }
        let seq = UInt32(bigEndian: dst.loadUnaligned(fromByteOffset: tcpStart + 4, as: UInt32.self))
        dst.storeBytes(of: (seq &+ UInt32(offset)).bigEndian, toByteOffset: tcpStart + 4, as: UInt32.self)
        var flags = TCPFlags(rawValue: dst.load(fromByteOffset: tcpStart + 13, as: UInt8.self))
        // One flag at a time: an option-set literal is an array, built per call without optimisation.
        if index < count - 1 {
            flags.remove(.fin)
            flags.remove(.psh)
        }
        if index > 0 { flags.remove(.cwr) }
        dst.storeBytes(of: flags.rawValue, toByteOffset: tcpStart + 13, as: UInt8.self)
        let segment = UnsafeMutableRawBufferPointer(start: dst + tcpStart, count: length - tcpStart)
        func be64(_ at: Int) -> UInt64 { UInt64(bigEndian: dst.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        func be32(_ at: Int) -> UInt32 { UInt32(bigEndian: dst.loadUnaligned(fromByteOffset: at, as: UInt32.self)) }
        if v6 {
            let source = IPv6Address(high: be64(ip + 8), low: be64(ip + 16))
            let destination = IPv6Address(high: be64(ip + 24), low: be64(ip + 32))
            TCPSegment(unchecked: segment).fillChecksum(source: .v6(source), destination: .v6(destination))
        } else {
            let source = IPv4Address(be32(ip + 12))
            let destination = IPv4Address(be32(ip + 16))
            TCPSegment(unchecked: segment).fillChecksum(source: .v4(source), destination: .v4(destination))
        }
        return length
    }

    /// Completes a checksum left partial: the one's-complement sum from
    /// `start` to the end of `frame`, the field (`offset` bytes further on,
    /// holding the pseudo-header's sum) included, stored complemented in the
    /// field. False when the offsets do not fit the frame.
    @discardableResult
    public static func completeChecksum(_ frame: UnsafeMutableRawBufferPointer, start: Int, offset: Int) -> Bool {
        guard start >= 0, offset >= 0, start + offset + 2 <= frame.count, let base = frame.baseAddress else {
            return false
        }
        let value = InternetChecksum.compute(UnsafeRawBufferPointer(start: base + start, count: frame.count - start))
        base.storeBytes(of: value.bigEndian, toByteOffset: start + offset, as: UInt16.self)
        return true
    }
}
