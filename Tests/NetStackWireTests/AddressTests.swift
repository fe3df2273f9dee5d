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
}
