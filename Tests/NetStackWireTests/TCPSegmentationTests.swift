import Testing
import NetStackWire

/// Software TSO: a TCP/IPv4 segment longer than one frame cut into frames,
/// each a valid packet of its own, together carrying the same bytes.
struct TCPSegmentationTests {
    static let source = IPv4Address(10, 0, 0, 1)
    static let destination = IPv4Address(10, 0, 0, 2)

    /// An Ethernet frame holding one TCP/IPv4 segment of `payload`, its TCP
    /// checksum left partial (the pseudo-header's sum), as a TAP hands over GSO.
    static func superFrame(payload: [UInt8], flags: TCPFlags) -> [UInt8] {
        let tcp = TCPRepr(sourcePort: 5201, destinationPort: 40000, seq: SequenceNumber(1000),
                          ack: SequenceNumber(77), flags: flags, window: 512,
                          options: { var o = TCPOptions(); o.timestamps = (1, 2); return o }(),
                          payloadLength: payload.count)
        let ipLength = 20 + tcp.headerLength + payload.count
        var frame = [UInt8](repeating: 0, count: 14 + ipLength)
        frame.withUnsafeMutableBytes { b in
            EthernetRepr(destination: MACAddress(2, 0, 0, 0, 0, 2), source: MACAddress(2, 0, 0, 0, 0, 1),
                         etherType: .ipv4).emit(into: b)
            IPv4Repr(source: source, destination: destination, protocol: .tcp, payloadLength: ipLength - 20,
                     identification: 0x1234, dontFragment: true).emit(into: b.slice(14..<b.count))
            let seg = b.slice(34..<b.count)
            seg.baseAddress!.advanced(by: tcp.headerLength).copyMemory(from: payload, byteCount: payload.count)
            tcp.emitLeavingChecksum(into: seg, source: .v4(source), destination: .v4(destination))
        }
        return frame
    }

    @Test func cutsIntoValidFramesThatCarryTheSameBytes() throws {
        let payload = (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let whole = Self.superFrame(payload: payload, flags: [.ack, .psh, .fin, .cwr])
        let headers = try #require(whole.withUnsafeBytes { TCPSegmentation.headers(of: $0) })
        #expect(headers.length == 14 + 20 + 32 && headers.tcpStart == 34)
        let count = TCPSegmentation.frameCount(payloadLength: payload.count, segmentSize: 1448)
        #expect(count == 7)
        var carried: [UInt8] = []
        for i in 0..<count {
            var out = [UInt8](repeating: 0, count: 1600)
            let n = try #require(whole.withUnsafeBytes { w in
                out.withUnsafeMutableBytes { TCPSegmentation.cut(w, segmentSize: 1448, index: i, into: $0) }
            })
            out.removeLast(out.count - n)
            try out.withUnsafeMutableBytes { b in
                let ip = try IPv4Packet(validating: try EthernetFrame(validating: b).payload)
                #expect(ip.checksumIsValid, "frame \(i): IP checksum")
                #expect(ip.identification == 0x1234 &+ UInt16(i))
                #expect(ip.totalLength == n - 14)
                let tcp = try TCPSegment(validating: ip.payload)
                #expect(tcp.checksumIsValid(source: Self.source, destination: Self.destination), "frame \(i)")
                #expect(tcp.sequenceNumber == SequenceNumber(1000) + i * 1448)
                let last = i == count - 1
                #expect(tcp.flags.contains(.fin) == last && tcp.flags.contains(.psh) == last)
                #expect(tcp.flags.contains(.cwr) == (i == 0) && tcp.flags.contains(.ack))
                carried += Array(tcp.payload)
            }
        }
        #expect(carried == payload)
        // Past the last frame, or into too small a buffer: nothing.
        var small = [UInt8](repeating: 0, count: 100)
        #expect(whole.withUnsafeBytes { w in
            small.withUnsafeMutableBytes { TCPSegmentation.cut(w, segmentSize: 1448, index: 0, into: $0) }
        } == nil)
        var big = [UInt8](repeating: 0, count: 1600)
        #expect(whole.withUnsafeBytes { w in
            big.withUnsafeMutableBytes { TCPSegmentation.cut(w, segmentSize: 1448, index: count, into: $0) }
        } == nil)
    }

    @Test func completingAPartialChecksumMakesItVerify() throws {
        var frame = Self.superFrame(payload: Array(0..<200), flags: [.ack])
        try frame.withUnsafeMutableBytes { b in
            let tcp = try TCPSegment(validating: try IPv4Packet(validating: try EthernetFrame(validating: b).payload).payload)
            #expect(!tcp.checksumIsValid(source: Self.source, destination: Self.destination))
            #expect(TCPSegmentation.completeChecksum(b, start: 34, offset: 16))
            #expect(tcp.checksumIsValid(source: Self.source, destination: Self.destination))
            #expect(!TCPSegmentation.completeChecksum(b, start: b.count - 1, offset: 16), "offsets past the end")
        }
    }

    @Test func onlyTCPOverIPv4InEthernetIsCut() {
        var arp = [UInt8](repeating: 0, count: 60)
        arp[12] = 0x08; arp[13] = 0x06
        #expect(arp.withUnsafeBytes { TCPSegmentation.headers(of: $0) } == nil)
        var udp = Self.superFrame(payload: Array(0..<100), flags: [.ack])
        udp[14 + 9] = 17
        #expect(udp.withUnsafeBytes { TCPSegmentation.headers(of: $0) } == nil)
        #expect(Array(repeating: UInt8(0), count: 20).withUnsafeBytes { TCPSegmentation.headers(of: $0) } == nil)
    }
}
