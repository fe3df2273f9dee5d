import Testing
@testable import NetStackWire

/// A UDP datagram with its checksum from the reference implementation.
func udpDatagram(source: IPv4Address = Capture.ipA, destination: IPv4Address = Capture.ipB,
                 sourcePort: UInt16, destinationPort: UInt16, payload: [UInt8]) -> [UInt8] {
    let length = 8 + payload.count
    var d = be16(sourcePort) + be16(destinationPort) + be16(UInt16(length)) + [0, 0] + payload
    var c = referenceChecksum(pseudoHeader(source: source, destination: destination, protocol: 17, length: length) + d)
    if c == 0 { c = 0xffff }
    d[6] = UInt8(c >> 8); d[7] = UInt8(c & 0xff)
    return d
}

private func isValid(_ bytes: [UInt8], _ src: IPv4Address = Capture.ipA, _ dst: IPv4Address = Capture.ipB) throws -> Bool {
    var copy = bytes
    return try copy.withUnsafeMutableBytes { try UDPDatagram(validating: $0).checksumIsValid(source: src, destination: dst) }
}

@Suite struct UDPTests {
    /// From udp.pcap, checked by tshark: 10.0.0.1:40000 -> 10.0.0.2:9999,
    /// "hello, netstack\n", length 24, checksum 1ea9.
    let hello = hex("9c40 270f 0018 1ea9") + Array("hello, netstack\n".utf8)

    @Test func knownDatagram() throws {
        #expect(udpDatagram(sourcePort: 40000, destinationPort: 9999, payload: Array("hello, netstack\n".utf8)) == hello)
        var bytes = hello
        try bytes.withUnsafeMutableBytes { buf in
            let d = try UDPDatagram(validating: buf)
            #expect(d.sourcePort == 40000)
            #expect(d.destinationPort == 9999)
            #expect(d.length == 24)
            #expect(d.checksum == 0x1ea9)
            #expect(String(decoding: d.payload.array, as: UTF8.self) == "hello, netstack\n")
            #expect(d.payload.baseAddress == buf.baseAddress! + 8)
            #expect(d.checksumIsValid(source: Capture.ipA, destination: Capture.ipB))
            #expect(UDPRepr(parsing: d) == UDPRepr(sourcePort: 40000, destinationPort: 9999, payloadLength: 16))
        }
    }

    @Test func shortBufferIsTruncated() {
        for n in 0..<8 {
            #expect(wireError(Array(hello[0..<n]), as: UDPDatagram.self) == .truncated, "length \(n)")
        }
    }

    @Test func lengthBelowHeaderIsBadLength() {
        for length: UInt16 in 0..<8 {
            var bytes = hello
            bytes.replaceSubrange(4..<6, with: be16(length))
            #expect(wireError(bytes, as: UDPDatagram.self) == .badLength, "length \(length)")
        }
    }

    @Test func lengthBeyondBufferIsTruncated() {
        #expect(wireError(Array(hello.dropLast()), as: UDPDatagram.self) == .truncated)
        var bytes = hello
        bytes.replaceSubrange(4..<6, with: be16(0xffff))
        #expect(wireError(bytes, as: UDPDatagram.self) == .truncated)
    }

    @Test func payloadEndsAtLengthField() throws {
        // Bytes after the UDP length (IP or Ethernet padding) are not payload.
        var bytes = hello + [0, 0, 0, 0, 0, 0]
        try bytes.withUnsafeMutableBytes { buf in
            let d = try UDPDatagram(validating: buf)
            #expect(d.bytes.count == 24)
            #expect(d.payload.count == 16)
            #expect(d.checksumIsValid(source: Capture.ipA, destination: Capture.ipB))
        }
        // A header-only datagram has an empty payload.
        var empty = udpDatagram(sourcePort: 1, destinationPort: 2, payload: []) + [0xff]
        try empty.withUnsafeMutableBytes { buf in
            let d = try UDPDatagram(validating: buf)
            #expect(d.payload.count == 0)
            #expect(d.checksumIsValid(source: Capture.ipA, destination: Capture.ipB))
        }
    }

    @Test func checksumCoversPseudoHeaderHeaderAndPayload() throws {
        #expect(try isValid(hello))
        // The pseudo-header: other addresses do not verify. (Swapped ones do:
        // the one's-complement sum commutes.)
        #expect(try isValid(hello, Capture.ipB, Capture.ipA))
        #expect(try !isValid(hello, Capture.ipA, IPv4Address(10, 0, 0, 3)))
        #expect(try !isValid(hello, IPv4Address(10, 0, 0, 9), Capture.ipB))
        // Every single-bit error in header or payload is detected (except in
        // the length field, which the view checks first).
        for byte in hello.indices where !(4..<6).contains(byte) {
            for bit in 0..<8 {
                var bytes = hello
                bytes[byte] ^= 1 << bit
                if readBE16(bytes, 6) == 0 { continue }  // became "no checksum"
                #expect(try !isValid(bytes), "byte \(byte) bit \(bit)")
            }
        }
    }

    @Test func oddLengthPayload() throws {
        let d = udpDatagram(sourcePort: 40000, destinationPort: 9999, payload: Array("odd".utf8))
        #expect(try isValid(d))
        // From udp.pcap: tshark reports this checksum as correct.
        #expect(readBE16(d, 6) == 0x5521)
    }

    /// RFC 768: an all-zero checksum field means none was computed; IPv4 accepts it.
    @Test func zeroChecksumIsAccepted() throws {
        var bytes = hello
        bytes[6] = 0; bytes[7] = 0
        #expect(try isValid(bytes))
        bytes[10] ^= 0xff  // even with corrupted data: nothing to check against
        #expect(try isValid(bytes))
    }

    /// RFC 768: "If the computed checksum is zero, it is transmitted as all ones."
    @Test func computedZeroIsSentAsAllOnes() throws {
        // Choose the last two payload bytes so the sum over pseudo-header,
        // header (checksum 0) and payload is ffff, i.e. the checksum is 0000.
        var payload = Array("zero-checksum\0".utf8) + [0, 0]
        let length = 8 + payload.count
        let partial = referenceSum(pseudoHeader(source: Capture.ipA, destination: Capture.ipB, protocol: 17, length: length)
                                   + be16(40000) + be16(9999) + be16(UInt16(length)) + [0, 0] + payload)
        let fix = ~partial
        payload[14] = UInt8(fix >> 8); payload[15] = UInt8(fix & 0xff)
        var zeroSum = be16(40000) + be16(9999) + be16(UInt16(length)) + [0, 0] + payload
        #expect(referenceSum(pseudoHeader(source: Capture.ipA, destination: Capture.ipB, protocol: 17, length: length)
                             + zeroSum) == 0xffff)

        try zeroSum.withUnsafeMutableBytes { buf in
            let d = try UDPDatagram(validating: buf)
            d.fillChecksum(source: Capture.ipA, destination: Capture.ipB)
            #expect(d.checksum == 0xffff)
            #expect(d.checksumIsValid(source: Capture.ipA, destination: Capture.ipB))
        }
        // Emitting gives the same.
        var emitted = [UInt8](repeating: 0, count: 8) + payload
        emitted.withUnsafeMutableBytes {
            UDPRepr(sourcePort: 40000, destinationPort: 9999, payloadLength: payload.count)
                .emit(into: $0, source: Capture.ipA, destination: Capture.ipB)
        }
        #expect(emitted == zeroSum)
        #expect(readBE16(emitted, 6) == 0xffff)
    }

    @Test func fillChecksumReplacesAStaleOne() throws {
        var bytes = hello
        bytes[7] ^= 0x5a
        try bytes.withUnsafeMutableBytes { buf in
            let d = try UDPDatagram(validating: buf)
            #expect(!d.checksumIsValid(source: Capture.ipA, destination: Capture.ipB))
            d.fillChecksum(source: Capture.ipA, destination: Capture.ipB)
        }
        #expect(bytes == hello)
    }

    @Test func settersWriteInPlace() throws {
        var bytes = hello
        try bytes.withUnsafeMutableBytes { buf in
            let d = try UDPDatagram(validating: buf)
            d.sourcePort = 9999
            d.destinationPort = 40000
            d.fillChecksum(source: Capture.ipB, destination: Capture.ipA)
        }
        #expect(bytes == udpDatagram(source: Capture.ipB, destination: Capture.ipA, sourcePort: 9999,
                                     destinationPort: 40000, payload: Array("hello, netstack\n".utf8)))
    }

    @Test func reprRoundTrip() throws {
        var rng = SplitMix64(seed: 768)
        for _ in 0..<500 {
            let src = IPv4Address(UInt32.random(in: 0...UInt32.max, using: &rng))
            let dst = IPv4Address(UInt32.random(in: 0...UInt32.max, using: &rng))
            let payload = rng.bytes(Int.random(in: 0...300, using: &rng))
            let repr = UDPRepr(sourcePort: UInt16.random(in: 0...0xffff, using: &rng),
                               destinationPort: UInt16.random(in: 0...0xffff, using: &rng),
                               payloadLength: payload.count)
            var bytes = [UInt8](repeating: 0x77, count: 8) + payload
            bytes.withUnsafeMutableBytes { repr.emit(into: $0, source: src, destination: dst) }
            #expect(bytes == udpDatagram(source: src, destination: dst, sourcePort: repr.sourcePort,
                                         destinationPort: repr.destinationPort, payload: payload))
            let parsed = try bytes.withUnsafeMutableBytes { buf in
                let d = try UDPDatagram(validating: buf)
                #expect(d.checksumIsValid(source: src, destination: dst))
                return UDPRepr(parsing: d)
            }
            #expect(parsed == repr)
            #expect(parsed.length == bytes.count)
        }
    }
}
