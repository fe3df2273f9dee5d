#if canImport(Glibc)
import Glibc
#endif
import CNetStackABI
import NetStackWire
@testable import NetStackSockets
import Testing

/// The stack's interface as an application finds it in a socket's region
/// (`ns_interface`): what IP_PKTINFO, SO_BINDTODEVICE, SO_BROADCAST and
/// netdevice(7)'s requests answer with.
@Suite struct InterfaceDescriptionTests {
    /// The region's header as an application maps it from the memfd.
    static func seen(by region: SocketRegion) -> ns_interface {
        let p = mmap(nil, 4096, PROT_READ, MAP_SHARED, region.descriptor, 0)!
        defer { munmap(p, 4096) }
        return ns_region_interface(p)
    }

    static func bytes(_ t: (UInt8, UInt8, UInt8, UInt8)) -> [UInt8] { [t.0, t.1, t.2, t.3] }

    @Test func anApplicationReadsTheStacksAddressesInNetworkOrder() throws {
        let interface = InterfaceDescription(index: 7, subnet: try #require(IPv4CIDR("10.0.0.2/24")),
                                             broadcast: IPv4Address(10, 0, 0, 255),
                                             macAddress: MACAddress(0x02, 0, 0x0a, 0, 0, 0x02))
        let seen = Self.seen(by: try SocketRegion(ringSize: 4096, serial: 1, interface: interface))
        #expect(seen.index == 7)
        #expect(Self.bytes(seen.address) == [10, 0, 0, 2])
        #expect(Self.bytes(seen.netmask) == [255, 255, 255, 0])
        #expect(Self.bytes(seen.broadcast) == [10, 0, 0, 255])
        let m = seen.mac
        #expect([m.0, m.1, m.2, m.3, m.4, m.5] == [0x02, 0, 0x0a, 0, 0, 0x02])
        #expect(seen.address6_count == 0)
    }

    @Test func itsIPv6AddressesComeLinkLocalFirstWithTheirPrefixes() throws {
        let linkLocal = try #require(IPv6CIDR("fe80::aff:fe00:2/64")), global = try #require(IPv6CIDR("fd00::2/56"))
        let interface = InterfaceDescription(index: 7, subnets6: [linkLocal, global])
        let seen = Self.seen(by: try SocketRegion(ringSize: 4096, serial: 1, interface: interface))
        #expect(seen.address6_count == 2)
        let table = withUnsafeBytes(of: seen.address6) { Array($0) }
        #expect(Array(table[0..<16]) == [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a, 0xff, 0xfe, 0, 0, 0x02])
        #expect(Array(table[16..<32]) == [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02])
        #expect(seen.prefix6.0 == 64 && seen.prefix6.1 == 56)
    }

    @Test func aHostRouteHasAFullMaskAndNoBroadcast() throws {
        let interface = InterfaceDescription(index: 3, subnet: try #require(IPv4CIDR("192.168.7.9/32")))
        let seen = Self.seen(by: try SocketRegion(ringSize: 4096, serial: 1, interface: interface))
        #expect(Self.bytes(seen.address) == [192, 168, 7, 9])
        #expect(Self.bytes(seen.netmask) == [255, 255, 255, 255])
        #expect(Self.bytes(seen.broadcast) == [0, 0, 0, 0])
    }

    /// What a datagram may be sent to (`ns_routes_ipv4`): ENETUNREACH for
    /// the rest, as Linux's route lookup says it.
    @Test func offTheSubnetOnlyAGatewayRoutes() throws {
        let subnet = try #require(IPv4CIDR("10.0.0.2/24"))
        let alone = InterfaceDescription(subnet: subnet).abi
        var routed = InterfaceDescription(subnet: subnet, gateway: IPv4Address(10, 0, 0, 1)).abi
        let onLink: [UInt8] = [10, 0, 0, 77], offLink: [UInt8] = [192, 168, 99, 1]
        let multicast: [UInt8] = [239, 1, 1, 1], broadcast: [UInt8] = [255, 255, 255, 255]
        var lone = alone
        #expect(ns_routes_ipv4(&lone, onLink) && !ns_routes_ipv4(&lone, offLink))
        #expect(ns_routes_ipv4(&lone, multicast) && ns_routes_ipv4(&lone, broadcast))
        #expect(ns_routes_ipv4(&routed, offLink) && ns_routes_ipv4(&routed, onLink))
    }
}
