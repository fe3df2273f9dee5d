import Testing
@testable import NetStackWire

@Suite struct EthernetTests {
    // dst 02:00:0a:00:00:02, src 02:00:0a:00:00:01, IPv4, then 4 payload bytes.
    let frame = hex("02000a000002 02000a000001 0800 deadbeef")

    @Test func shortFrameIsTruncated() {
        for n in 0..<14 {
            #expect(wireError(Array(frame[0..<n]), as: EthernetFrame.self) == .truncated, "length \(n)")
        }
        #expect(wireError(Array(frame[0..<14]), as: EthernetFrame.self) == nil)
    }

    @Test func readsFields() throws {
        var bytes = frame
        try bytes.withUnsafeMutableBytes { buf in
            let f = try EthernetFrame(validating: buf)
            #expect(f.destination == MACAddress(0x02, 0x00, 0x0a, 0x00, 0x00, 0x02))
            #expect(f.source == MACAddress(0x02, 0x00, 0x0a, 0x00, 0x00, 0x01))
            #expect(f.etherType == .ipv4)
            #expect(f.etherType.description == "IPv4")
            #expect(f.payload.array == [0xde, 0xad, 0xbe, 0xef])
            // The payload is a slice of the same memory, not a copy.
            #expect(f.payload.baseAddress == buf.baseAddress! + 14)
        }
    }

    @Test func headerOnlyFrameHasEmptyPayload() throws {
        var bytes = Array(frame[0..<14])
        try bytes.withUnsafeMutableBytes { buf in
            let f = try EthernetFrame(validating: buf)
            #expect(f.payload.count == 0)
        }
    }

    @Test func settersWriteInPlace() throws {
        var bytes = frame
        try bytes.withUnsafeMutableBytes { buf in
            let f = try EthernetFrame(validating: buf)
            f.destination = .broadcast
            f.source = MACAddress(0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff)
            f.etherType = .arp
        }
        #expect(bytes == hex("ffffffffffff aabbccddeeff 0806 deadbeef"))
    }

    @Test func etherTypeDescriptions() {
        #expect(EtherType.arp.description == "ARP")
        #expect(EtherType.ipv6.description == "IPv6")
        #expect(EtherType(rawValue: 0x88cc).description == "0x88cc")
    }

    @Test func reprRoundTrip() throws {
        let repr = EthernetRepr(destination: .broadcast, source: MACAddress(0x02, 0, 0x0a, 0, 0, 0x01), etherType: .arp)
        var bytes = [UInt8](repeating: 0x55, count: 20)
        bytes.withUnsafeMutableBytes { repr.emit(into: $0) }
        #expect(bytes == hex("ffffffffffff 02000a000001 0806") + [UInt8](repeating: 0x55, count: 6))
        let parsed = try bytes.withUnsafeMutableBytes { EthernetRepr(parsing: try EthernetFrame(validating: $0)) }
        #expect(parsed == repr)
    }
}

@Suite struct ARPTests {
    // RFC 826 request: who has 10.0.0.2? tell 10.0.0.1 (02:00:0a:00:00:01).
    let request = hex("0001 0800 06 04 0001 02000a000001 0a000001 000000000000 0a000002")

    @Test func parsesRequest() throws {
        var bytes = request
        try bytes.withUnsafeMutableBytes { buf in
            let p = try ARPPacket(validating: buf)
            #expect(p.operation == .request)
            #expect(p.senderHardwareAddress == Capture.macA)
            #expect(p.senderProtocolAddress == Capture.ipA)
            #expect(p.targetHardwareAddress == .zero)
            #expect(p.targetProtocolAddress == Capture.ipB)
        }
    }

    @Test func shortIsTruncated() {
        for n in 0..<28 {
            #expect(wireError(Array(request[0..<n]), as: ARPPacket.self) == .truncated, "length \(n)")
        }
    }

    @Test func trailingPaddingIsIgnored() throws {
        // A 60-byte minimum Ethernet frame carries 18 bytes of padding after the 28.
        var bytes = request + [UInt8](repeating: 0, count: 18)
        let repr = try bytes.withUnsafeMutableBytes { ARPRepr(parsing: try ARPPacket(validating: $0)) }
        #expect(repr.targetProtocolAddress == Capture.ipB)
    }

    @Test(arguments: [
        (0, UInt8(0x00), UInt8(0x06)),  // htype 6 (IEEE 802), not Ethernet
        (2, UInt8(0x86), UInt8(0xdd)),  // ptype IPv6
        (4, UInt8(0x08), UInt8(0x04)),  // hlen 8
        (4, UInt8(0x06), UInt8(0x10)),  // plen 16
    ])
    func unsupportedKinds(offset: Int, b0: UInt8, b1: UInt8) {
        var bytes = request
        bytes[offset] = b0; bytes[offset + 1] = b1
        #expect(wireError(bytes, as: ARPPacket.self) == .unsupported)
    }

    @Test func eachDiscriminatorByteIsChecked() {
        // Flipping any bit of htype, ptype, hlen or plen makes the packet unsupported.
        for byte in 0..<6 {
            for bit in 0..<8 {
                var bytes = request
                bytes[byte] ^= 1 << bit
                #expect(wireError(bytes, as: ARPPacket.self) == .unsupported, "byte \(byte) bit \(bit)")
            }
        }
    }

    @Test func requestAndReplyRoundTrip() throws {
        let req = ARPRepr(operation: .request, senderHardwareAddress: Capture.macA, senderProtocolAddress: Capture.ipA,
                          targetHardwareAddress: .zero, targetProtocolAddress: Capture.ipB)
        var bytes = [UInt8](repeating: 0xee, count: 28)
        bytes.withUnsafeMutableBytes { req.emit(into: $0) }
        #expect(bytes == request)

        let reply = ARPRepr(operation: .reply, senderHardwareAddress: Capture.macB, senderProtocolAddress: Capture.ipB,
                            targetHardwareAddress: Capture.macA, targetProtocolAddress: Capture.ipA)
        var out = [UInt8](repeating: 0, count: 28)
        out.withUnsafeMutableBytes { reply.emit(into: $0) }
        #expect(out == hex("0001 0800 06 04 0002 02000a000002 0a000002 02000a000001 0a000001"))
        let parsed = try out.withUnsafeMutableBytes { ARPRepr(parsing: try ARPPacket(validating: $0)) }
        #expect(parsed == reply)
    }

    @Test func settersWriteInPlace() throws {
        var bytes = request
        try bytes.withUnsafeMutableBytes { buf in
            // Turn the request into its reply in place, as a responder would.
            let p = try ARPPacket(validating: buf)
            p.operation = .reply
            p.targetHardwareAddress = p.senderHardwareAddress
            p.targetProtocolAddress = p.senderProtocolAddress
            p.senderHardwareAddress = Capture.macB
            p.senderProtocolAddress = Capture.ipB
        }
        #expect(bytes == hex("0001 0800 06 04 0002 02000a000002 0a000002 02000a000001 0a000001"))
    }
}
