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

    // MARK: Well-known addresses and classes

    @Test func wellKnownMulticastAddresses() {
        #expect(IPv6Address.allNodes.description == "ff02::1")
        #expect(IPv6Address.allRouters.description == "ff02::2")
        #expect(IPv6Address.allNodes.multicastScope == 2 && IPv6Address.allRouters.multicastScope == 2)
        #expect(IPv6Address("ff05::2")?.multicastScope == 5)
        #expect(IPv6Address("ff0e::101")?.multicastScope == 14)
        #expect(IPv6Address("ff1f::1")?.multicastScope == 15)
        #expect(IPv6Address("fd00::1")?.multicastScope == nil)
        #expect(IPv6Address("fe80::1")?.multicastScope == nil)
    }

    /// RFC 4291 2.7.1: ff02::1:ff and the low 24 bits.
    @Test(arguments: [
        ("fd00::2", "ff02::1:ff00:2"), ("fe80::aff:fe00:1", "ff02::1:ff00:1"),
        ("2001:db8::1234:5678:9abc:def0", "ff02::1:ffbc:def0"), ("::", "ff02::1:ff00:0"),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ff02::1:ffff:ffff"),
    ])
    func solicitedNodeMulticast(_ unicast: String, _ group: String) throws {
        let a = try #require(IPv6Address(unicast)), g = try #require(IPv6Address(group))
        #expect(a.solicitedNodeMulticast == g)
        #expect(g.isSolicitedNodeMulticast && g.isMulticast && g.multicastScope == 2)
        #expect(!a.isSolicitedNodeMulticast)
    }

    @Test func solicitedNodeMulticastBoundaries() throws {
        #expect(IPv6Address("ff02::1:ff00:0")!.isSolicitedNodeMulticast)
        #expect(IPv6Address("ff02::1:ffff:ffff")!.isSolicitedNodeMulticast)
        for text in ["ff02::1:fe00:1", "ff02::2:ff00:1", "ff05::1:ff00:1", "ff02:0:0:0:1:1:ff00:1", "ff02::1", "ff02::ff00:1"] {
            #expect(!IPv6Address(text)!.isSolicitedNodeMulticast, "\(text)")
        }
    }

    /// RFC 2464 7: 33:33 and the last four bytes.
    @Test func multicastMACs() {
        #expect(IPv6Address.allNodes.multicastMAC == MACAddress(0x33, 0x33, 0, 0, 0, 1))
        #expect(IPv6Address.allRouters.multicastMAC == MACAddress(0x33, 0x33, 0, 0, 0, 2))
        #expect(IPv6Address("ff02::1:ff00:2")!.multicastMAC == MACAddress(0x33, 0x33, 0xff, 0, 0, 2))
        #expect(IPv6Address("ff02::1:ffbc:def0")!.multicastMAC == MACAddress(0x33, 0x33, 0xff, 0xbc, 0xde, 0xf0))
        #expect(IPv6Address("ff0e::1:2:3:4")!.multicastMAC == MACAddress(0x33, 0x33, 0, 3, 0, 4))
        #expect(IPv6Address.allNodes.multicastMAC.isMulticast)
    }

    /// RFC 4291 Appendix A: ff:fe in the middle, U/L bit inverted. The first
    /// pair is what Linux gave the capture script's veth ends (ndp.pcap).
    @Test(arguments: [
        ("02:00:0a:00:00:01", "fe80::aff:fe00:1"), ("02:00:0a:00:00:02", "fe80::aff:fe00:2"),
        ("00:00:5e:00:53:01", "fe80::200:5eff:fe00:5301"), ("34:56:78:9a:bc:de", "fe80::3656:78ff:fe9a:bcde"),
        ("ff:ff:ff:ff:ff:ff", "fe80::fdff:ffff:feff:ffff"), ("00:00:00:00:00:00", "fe80::200:ff:fe00:0"),
    ])
    func linkLocalFromEUI64(_ mac: String, _ address: String) throws {
        let a = IPv6Address.linkLocal(eui64: try #require(MACAddress(mac)))
        #expect(a == IPv6Address(address))
        #expect(a.isLinkLocal)
    }

    @Test func uniqueLocalAndIPv4Mapped() {
        for text in ["fc00::", "fd00::1", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"] {
            #expect(IPv6Address(text)!.isUniqueLocal, "\(text)")
        }
        for text in ["fe00::1", "fbff::1", "fe80::1", "::1", "2001:db8::1", "ff02::1"] {
            #expect(!IPv6Address(text)!.isUniqueLocal, "\(text)")
        }
        #expect(IPv6Address("::ffff:a00:1")!.isIPv4Mapped)  // ::ffff:10.0.0.1
        #expect(IPv6Address("::ffff:0:0")!.isIPv4Mapped)
        #expect(IPv6Address("::ffff:ffff:ffff")!.isIPv4Mapped)
        for text in ["::a00:1", "::1:ffff:a00:1", "::fffe:a00:1", "64:ff9b::a00:1", "::"] {
            #expect(!IPv6Address(text)!.isIPv4Mapped, "\(text)")
        }
    }

    // MARK: IPv6CIDR

    @Test func cidrParsesAndPrints() throws {
        let c = try #require(IPv6CIDR("fd00::2/64"))
        #expect(c.address == IPv6Address("fd00::2") && c.prefixLength == 64)
        #expect(c.description == "fd00::2/64")
        #expect(c.prefix == IPv6Address("fd00::"))
        #expect(IPv6CIDR("::/0") == IPv6CIDR(address: .unspecified, prefixLength: 0))
        #expect(IPv6CIDR("fe80::1/128")?.prefixLength == 128)
        for bad in ["fd00::2", "fd00::2/", "fd00::2/129", "fd00::2/-1", "fd00::2/+4", "fd00::2/0064", "/64",
                    "fd00::2/64/1", "10.0.0.1/24", "fd00::2 /64", "fd00::2/6a"] {
            #expect(IPv6CIDR(bad) == nil, "\(bad)")
        }
    }

    @Test(arguments: [0, 1, 7, 8, 63, 64, 65, 100, 127, 128])
    func cidrContainsExactlyItsPrefix(_ n: Int) throws {
        let a = try #require(IPv6Address("2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"))
        let c = IPv6CIDR(address: a, prefixLength: n)
        // The prefix keeps the first n bits and clears the rest, bit by bit.
        func bit(_ x: IPv6Address, _ i: Int) -> Bool {
            (i < 64 ? x.high >> (63 - i) : x.low >> (127 - i)) & 1 == 1
        }
        for i in 0..<128 { #expect(bit(c.prefix, i) == (i < n && bit(a, i)), "bit \(i)") }
        #expect(c.contains(a) && c.contains(c.prefix))
        // Flipping any bit inside the prefix leaves the network; outside, stays.
        for i in [0, 1, 31, 32, 62, 63, 64, 65, 96, 126, 127] {
            var b = a
            if i < 64 { b.high ^= 1 << (63 - UInt64(i)) } else { b.low ^= 1 << (127 - UInt64(i)) }
            #expect(c.contains(b) == (i >= n), "bit \(i) of /\(n)")
        }
    }
}
