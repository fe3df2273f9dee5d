import NetStackWire

/// How an interface is set up: its addresses and the bounds and timeouts of
/// its tables. Defaults follow the RFCs and Linux where the RFCs leave a choice.
public struct InterfaceConfiguration: Sendable {
    public var macAddress: MACAddress
    /// The stack's address and its subnet (`10.0.0.2/24`).
    public var address: IPv4CIDR
    /// Where packets outside the subnet go; nil means they are dropped (`no-route`).
    public var gateway: IPv4Address?

    /// The stack's IPv6 address and its on-link prefix (`fd00::2/64`). Set,
    /// or with `enableIPv6`, the stack speaks IPv6 too, with its link-local
    /// address besides (RFC 4291 2.5.6, RFC 4862 5.3).
    public var address6: IPv6CIDR?
    /// IPv6 with the link-local address only, when `address6` is nil.
    public var enableIPv6 = false
    /// The link-local address; nil: fe80::/64 with the modified EUI-64 of the MAC (RFC 4291 2.5.1).
    public var linkLocalAddress6: IPv6Address?
    /// Where IPv6 packets off every on-link prefix go, besides the routers
    /// router advertisements name (RFC 4861 6.3.4).
    public var gateway6: IPv6Address?
    /// Neighbour solicitations for duplicate address detection before an
    /// address is used (RFC 4862 5.1 DupAddrDetectTransmits; 0 skips it).
    public var dadTransmits = 1
    /// RetransTimer (RFC 4861 10): the time between solicitations, for
    /// resolution and DAD alike.
    public var ndpRetransTimer: Duration = .seconds(1)
    /// Router solicitations sent once the link-local address is ours (RFC
    /// 4861 10 MAX_RTR_SOLICITATIONS, RTR_SOLICITATION_INTERVAL apart).
    public var routerSolicitations = 3
    public var routerSolicitationInterval: Duration = .seconds(4)
    /// The hop limit of what the stack sends (RFC 8200 3; a router's
    /// advertisement may change it, RFC 4861 6.3.4).
    public var hopLimit: UInt8 = 64
    /// How long IPv6 fragments wait for the rest (RFC 8200 4.5: 60 s).
    public var reassembly6Timeout: Duration = .seconds(60)

    /// Whether the stack speaks IPv6.
    public var speaksIPv6: Bool { address6 != nil || enableIPv6 }
    /// The link-local address in use.
    public var linkLocal6: IPv6Address { linkLocalAddress6 ?? .linkLocal(eui64: macAddress) }

    // The neighbour tables of both families (ARP's and NDP's) take these.

    /// How long a resolved ARP entry is trusted (Linux: 30 s base reachable time).
    public var arpLifetime: Duration = .seconds(60)
    /// Time between ARP requests for an unresolved next hop (RFC 1122 2.3.2.1: at most one per second).
    public var arpRetryInterval: Duration = .seconds(1)
    public var arpMaxRequests = 3
    public var arpCacheCapacity = 256
    /// Frames waiting for ARP replies, across all next hops.
    public var arpMaxWaiting = 64
    /// The most bytes connections and their rings may hold together
    /// (`MemoryBudget`); nil: no limit.
    public var memoryLimit: Int?

    /// Path MTUs learned from "packet too big" (`PathMTUCache`): how many
    /// destinations are remembered, and how long before an estimate ages out
    /// and the link MTU is tried again (RFC 1191 6.3, RFC 8201 5.3: 10 minutes).
    public var pathMTUCacheCapacity = 256
    public var pathMTULifetime: Duration = .seconds(600)

    public var reassemblyTimeout: Duration = .seconds(30)
    public var reassemblyMaxDatagrams = 16

    /// ICMP error token bucket (RFC 1812 4.3.2.8): sustained rate and burst.
    public var icmpErrorsPerSecond = 100
    public var icmpErrorBurst = 20

    public var timeToLive: UInt8 = 64

    public init(macAddress: MACAddress, address: IPv4CIDR, gateway: IPv4Address? = nil) {
        self.macAddress = macAddress
        self.address = address
        self.gateway = gateway
    }

    /// The configuration with the default MAC for `address` (see `defaultMAC(for:)`).
    public init(address: IPv4CIDR, gateway: IPv4Address? = nil) {
        self.init(macAddress: Self.defaultMAC(for: address.address), address: address, gateway: gateway)
    }

    /// A locally administered unicast MAC derived from the IPv4 address (02:00:a:b:c:d).
    public static func defaultMAC(for ip: IPv4Address) -> MACAddress {
        let v = ip.value
        return MACAddress(0x02, 0x00, UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff))
    }
}
