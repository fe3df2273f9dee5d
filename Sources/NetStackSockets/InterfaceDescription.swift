import CNetStackABI
import NetStack
import NetStackWire

/// The stack's interface as an application's library reports it (the
/// region's `ns_interface`): IP_PKTINFO's index, SO_BINDTODEVICE's device,
/// and what netdevice(7)'s requests answer for it. The index is the kernel's
/// for the TAP, whose name programs use; the addresses are the stack's own,
/// which differ from the TAP's kernel side's.
public struct InterfaceDescription: Sendable, Equatable {
    /// The kernel's index for the TAP (0: unknown).
    public var index: UInt32
    /// The stack's IPv4 address and prefix.
    public var subnet: IPv4CIDR?
    /// The subnet's directed broadcast, if it has one (not a /31 or /32).
    public var broadcast: IPv4Address?
    /// Where packets off the subnet go; nil: they have no route.
    public var gateway: IPv4Address?
    public var macAddress: MACAddress
    /// The IPv6 addresses in use, link-local first (at most `NS_INTERFACE_ADDRESSES6`).
    public var subnets6: [IPv6CIDR]

    public init(index: UInt32 = 0, subnet: IPv4CIDR? = nil, broadcast: IPv4Address? = nil,
                gateway: IPv4Address? = nil, macAddress: MACAddress = .zero, subnets6: [IPv6CIDR] = []) {
        self.index = index
        self.subnet = subnet
        self.broadcast = broadcast
        self.gateway = gateway
        self.macAddress = macAddress
        self.subnets6 = subnets6
    }

    /// `stack`'s interface now, which the kernel numbers `index`.
    public init(stack: Stack, index: UInt32) {
        self.init(index: index, subnet: stack.subnet, broadcast: stack.directedBroadcast, gateway: stack.gateway,
                  macAddress: stack.macAddress, subnets6: stack.ipv6Subnets)
    }

    /// As the region's header holds it: addresses in network order.
    var abi: ns_interface {
        func v4(_ a: IPv4Address?) -> IPAddress { .v4(a ?? IPv4Address(0)) }
        var i = ns_interface()
        i.index = index
        withUnsafeMutableBytes(of: &i.address) { v4(subnet?.address).storeNetworkOrder(into: $0) }
        let netmask = subnet.map { IPv4Address($0.netmask) }
        withUnsafeMutableBytes(of: &i.netmask) { v4(netmask).storeNetworkOrder(into: $0) }
        withUnsafeMutableBytes(of: &i.broadcast) { v4(broadcast).storeNetworkOrder(into: $0) }
        withUnsafeMutableBytes(of: &i.gateway) { v4(gateway).storeNetworkOrder(into: $0) }
        let m = macAddress.bytes
        i.mac = (m.0, m.1, m.2, m.3, m.4, m.5)
        let six = subnets6.prefix(Int(NS_INTERFACE_ADDRESSES6))
        i.address6_count = UInt8(six.count)
        withUnsafeMutableBytes(of: &i.address6) { table in
            for (n, s) in six.enumerated() {
                let slot = UnsafeMutableRawBufferPointer(rebasing: table[n * 16 ..< n * 16 + 16])
                IPAddress.v6(s.address).storeNetworkOrder(into: slot)
            }
        }
        withUnsafeMutableBytes(of: &i.prefix6) { prefixes in
            for (n, s) in six.enumerated() { prefixes[n] = UInt8(s.prefixLength) }
        }
        return i
    }
}
