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
