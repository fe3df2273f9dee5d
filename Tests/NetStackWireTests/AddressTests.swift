import Testing
@testable import NetStackWire

@Suite struct AddressTests {
    @Test func parsesAndPrintsIPv4() {
        #expect(IPv4Address("10.0.0.2")?.value == 0x0A00_0002)
        #expect(IPv4Address("10.0.0.2")?.description == "10.0.0.2")
        #expect(IPv4Address("256.0.0.1") == nil)
        #expect(IPv4Address("1.2.3") == nil)
        #expect(IPv4Address("1..2.3") == nil)
    }

    @Test func parsesCIDR() throws {
        let c = try #require(IPv4CIDR("10.0.0.1/24"))
        #expect(c.network == IPv4Address(10, 0, 0, 0))
        #expect(c.directedBroadcast == IPv4Address(10, 0, 0, 255))
        #expect(c.contains(IPv4Address(10, 0, 0, 2)))
        #expect(!c.contains(IPv4Address(10, 0, 1, 2)))
        #expect(IPv4CIDR("10.0.0.1/33") == nil)
    }

    @Test func parsesMAC() throws {
        let m = try #require(MACAddress("02:00:0a:00:00:02"))
        #expect(m.description == "02:00:0a:00:00:02")
        #expect(m.isLocallyAdministeredUnicast)
        #expect(MACAddress.broadcast.isMulticast)
        #expect(MACAddress("02:00:0a:00:00") == nil)
    }

    @Test func macFormsAndKinds() throws {
        #expect(MACAddress("02-00-0A-00-00-02") == MACAddress(0x02, 0x00, 0x0a, 0x00, 0x00, 0x02))
        #expect(MACAddress(0x0a, 0x0b, 0, 1, 0xff, 0x10).description == "0a:0b:00:01:ff:10")
        #expect(MACAddress("ff:ff:ff:ff:ff:ff") == .broadcast)
        #expect(MACAddress.broadcast.isBroadcast)
        // 01:00:5e is the IPv4 multicast prefix (RFC 1112 6.4): group bit set.
        let mcast = try #require(MACAddress("01:00:5e:00:00:fb"))
        #expect(mcast.isMulticast && !mcast.isBroadcast && !mcast.isLocallyAdministeredUnicast)
        // A universally administered unicast address (an OUI): neither bit set.
        let oui = try #require(MACAddress("00:1b:21:3a:4f:5c"))
        #expect(!oui.isMulticast && !oui.isLocallyAdministeredUnicast)
        // Locally administered multicast (03:...) is not "locally administered unicast".
        #expect(!MACAddress(0x03, 0, 0, 0, 0, 1).isLocallyAdministeredUnicast)
        for bad in ["", "02:00:0a:00:00:02:03", "2:0:a:0:0:2", "002:00:0a:00:00:02", "02:00:0a:00:00:0g", "020:00a:000:002"] {
            #expect(MACAddress(bad) == nil, "\(bad)")
        }
        var set = Set<MACAddress>()
        set.insert(Capture.macA); set.insert(Capture.macA); set.insert(Capture.macB)
        #expect(set.count == 2)
    }

    @Test func ipv4AddressKinds() {
        #expect(IPv4Address(10, 0, 0, 2) == IPv4Address(0x0A00_0002))
        #expect(IPv4Address("255.255.255.255") == .broadcast && IPv4Address.broadcast.isBroadcast)
        #expect(IPv4Address("0.0.0.0") == .any && IPv4Address.any.isUnspecified)
        #expect(IPv4Address("224.0.0.1")!.isMulticast && IPv4Address("239.255.255.255")!.isMulticast)
        #expect(!IPv4Address("223.255.255.255")!.isMulticast && !IPv4Address("240.0.0.0")!.isMulticast)
        #expect(IPv4Address(10, 0, 0, 1) < IPv4Address(10, 0, 0, 2))
        #expect(IPv4Address(9, 255, 255, 255) < IPv4Address(10, 0, 0, 0))
        #expect(IPv4Address(192, 168, 0, 199).description == "192.168.0.199")
        for bad in ["", "1.2.3.4.5", "1.2.3.", ".1.2.3", "1.2.3.4 ", " 1.2.3.4", "1.2.3.a", "1.2.3.-1", "1.2.3.0256", "1.2.3.4/24"] {
            #expect(IPv4Address(bad) == nil, "\(bad)")
        }
    }

    @Test func cidrEdges() throws {
        let all = try #require(IPv4CIDR("10.1.2.3/0"))
        #expect(all.netmask == 0 && all.network == .any && all.directedBroadcast == .broadcast)
        #expect(all.contains(IPv4Address(203, 0, 113, 9)))
        let host = try #require(IPv4CIDR("10.1.2.3/32"))
        #expect(host.netmask == 0xffff_ffff && host.network == IPv4Address(10, 1, 2, 3))
        #expect(host.contains(IPv4Address(10, 1, 2, 3)) && !host.contains(IPv4Address(10, 1, 2, 4)))
        let odd = try #require(IPv4CIDR("172.16.5.77/20"))
        #expect(odd.netmask == 0xffff_f000)
        #expect(odd.network == IPv4Address(172, 16, 0, 0) && odd.directedBroadcast == IPv4Address(172, 16, 15, 255))
        #expect(odd.description == "172.16.5.77/20")
        for bad in ["10.0.0.1", "10.0.0.1/", "10.0.0.1/-1", "10.0.0.1/24/8", "10.0.0/24", "10.0.0.1/x"] {
            #expect(IPv4CIDR(bad) == nil, "\(bad)")
        }
    }

    /// RFC 1122 3.2.1.3 / RFC 1812 5.3.7: addresses no datagram may come from,
    /// whoever receives it.
    @Test func addressesThatAreNeverASource() throws {
        let never = ["0.0.0.0", "0.1.2.3", "0.255.255.255", "127.0.0.1", "127.255.255.254", "127.0.0.0",
                     "224.0.0.1", "239.255.255.250", "240.0.0.1", "250.1.2.3", "255.255.255.254",
                     "255.255.255.255"]
        for text in never {
            let a = try #require(IPv4Address(text))
            #expect(a.isNeverASource, "\(text)")
        }
        let fine = ["1.0.0.0", "10.0.0.1", "126.255.255.255", "128.0.0.0", "169.254.1.1", "192.168.1.255",
                    "223.255.255.255", "100.64.0.1"]
        for text in fine {
            let a = try #require(IPv4Address(text))
            #expect(!a.isNeverASource, "\(text)")
        }
        #expect(IPv4Address(127, 0, 0, 1).isLoopback && IPv4Address(127, 9, 9, 9).isLoopback)
        #expect(!IPv4Address(128, 0, 0, 1).isLoopback && !IPv4Address(126, 0, 0, 1).isLoopback)
    }

    /// What else an interface must not take a datagram from: its own address
    /// (LAND) and its subnet's directed broadcast, of which /31 and /32 have none.
    @Test func martianSourcesOfAnInterface() throws {
        let c = try #require(IPv4CIDR("10.0.0.2/24"))
        #expect(c.isMartianSource(IPv4Address(10, 0, 0, 2)), "our own address")
        #expect(c.isMartianSource(IPv4Address(10, 0, 0, 255)), "the directed broadcast")
        #expect(c.isMartianSource(.broadcast) && c.isMartianSource(.any))
        #expect(c.isMartianSource(IPv4Address(127, 0, 0, 1)) && c.isMartianSource(IPv4Address(224, 0, 0, 1)))
        #expect(c.isMartianSource(IPv4Address(240, 0, 0, 1)))
        #expect(!c.isMartianSource(IPv4Address(10, 0, 0, 1)))
        #expect(!c.isMartianSource(IPv4Address(10, 0, 0, 0)), "the network address is Linux's to take too")
        #expect(!c.isMartianSource(IPv4Address(10, 0, 1, 255)), "another subnet's broadcast is somebody's host")
        #expect(!c.isMartianSource(IPv4Address(203, 0, 113, 9)))
        #expect(c.isDirectedBroadcast(IPv4Address(10, 0, 0, 255)) && !c.isDirectedBroadcast(IPv4Address(10, 0, 0, 1)))
        // RFC 3021: a /31's two addresses are both hosts.
        let p2p = try #require(IPv4CIDR("10.0.0.2/31"))
        #expect(!p2p.isDirectedBroadcast(IPv4Address(10, 0, 0, 3)))
        #expect(!p2p.isMartianSource(IPv4Address(10, 0, 0, 3)))
        #expect(p2p.isMartianSource(IPv4Address(10, 0, 0, 2)))
        let host = try #require(IPv4CIDR("10.0.0.2/32"))
        #expect(!host.isDirectedBroadcast(IPv4Address(10, 0, 0, 2)))
        #expect(host.isMartianSource(IPv4Address(10, 0, 0, 2)) && !host.isMartianSource(IPv4Address(10, 0, 0, 1)))
        let wide = try #require(IPv4CIDR("172.16.5.77/20"))
        #expect(wide.isMartianSource(IPv4Address(172, 16, 15, 255)) && !wide.isMartianSource(IPv4Address(172, 16, 5, 255)))
    }

    /// Text that inet_pton(3) and usual MAC notation reject. The parsers go
    /// through `UInt8.init(_:radix:)`/`Int.init(_:)`, which accept a sign, and
    /// `split`, which drops empty pieces.
    @Test func rejectsSignsAndStraySeparators() {
        #expect(IPv4Address("+1.2.3.4") == nil)
        #expect(IPv4Address("-0.2.3.4") == nil)
        #expect(MACAddress("+a:bb:cc:dd:ee:ff") == nil)
        #expect(MACAddress("aa:bb:cc:dd:ee:ff:") == nil)
        #expect(MACAddress("::aa:bb:cc:dd:ee:ff") == nil)
        #expect(MACAddress("aa-bb:cc-dd:ee-ff") == nil)
        #expect(IPv4CIDR("10.0.0.1//24") == nil)
        #expect(IPv4CIDR("/10.0.0.1/24") == nil)
        #expect(IPv4CIDR("10.0.0.1/+24") == nil)
    }
}
