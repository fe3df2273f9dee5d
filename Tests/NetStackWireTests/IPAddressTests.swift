import Testing
import NetStackWire

@Suite struct IPAddressTests {
    @Test(arguments: [
        ("fd00::1", "fd00::1"), ("FE80:0:0:0:0:0:0:1", "fe80::1"), ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("2001:db8::", "2001:db8::"), ("::", "::"), ("::1", "::1"), ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
        ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"), ("1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7"),
    ])
    func ipv6TextFormsFollowRFC5952(_ text: String, _ canonical: String) throws {
        let a = try #require(IPv6Address(text))
        #expect(a.description == canonical)
        #expect(IPv6Address(canonical) == a)
    }

    @Test(arguments: ["", ":", "1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "g::1", "1:2:3:4:5:6:7", "::1:2:3:4:5:6:7:8"])
    func malformedIPv6IsRefused(_ text: String) {
        #expect(IPv6Address(text) == nil)
    }

    @Test func eitherFamilyParsesAndPrints() {
        #expect(IPAddress("10.0.0.2") == .v4(IPv4Address(10, 0, 0, 2)))
        #expect(IPAddress("fd00::2") == .v6(IPv6Address(0xfd00, 0, 0, 0, 0, 0, 0, 2)))
        #expect(IPAddress("fd00::2")?.description == "[fd00::2]")
        #expect(IPAddress("nonsense") == nil)
        #expect(IPv6Address(0xfe80, 0, 0, 0, 0, 0, 0, 1).isLinkLocal)
        #expect(IPv6Address(0xff02, 0, 0, 0, 0, 0, 0, 1).isMulticast)
    }

    /// RFC 8200 8.1's pseudo-header, summed by hand: the addresses' 16-bit
    /// words, the upper-layer length and the next header.
    @Test func ipv6PseudoHeaderSum() {
        let s = IPv6Address(0xfd00, 0, 0, 0, 0, 0, 0, 1), d = IPv6Address(0xfd00, 0, 0, 0, 0, 0, 0, 2)
        var c = InternetChecksum()
        c.addPseudoHeader(source: IPAddress.v6(s), destination: .v6(d), protocol: 17, length: 0x1_0008)
        var words: UInt32 = 0
        for i in 0..<8 { words += UInt32(s.group(i)) + UInt32(d.group(i)) }
        words += 0x0001 + 0x0008 + 17
        while words > 0xffff { words = (words & 0xffff) + (words >> 16) }
        #expect(c.sum == UInt16(words))
    }

    @Test func udpZeroChecksumIsRefusedOverIPv6() {
        var bytes: [UInt8] = [0x13, 0x88, 0x00, 0x35, 0x00, 0x09, 0x00, 0x00, 0x42]
        bytes.withUnsafeMutableBytes { b in
            let d = try! UDPDatagram(validating: b)
            #expect(d.checksumIsValid(source: IPv4Address(10, 0, 0, 1), destination: IPv4Address(10, 0, 0, 2)))
            #expect(!d.checksumIsValid(source: IPAddress.v6(.unspecified), destination: .v6(.unspecified)))
        }
    }
}
