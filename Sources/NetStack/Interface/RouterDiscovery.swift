import NetStackWire

/// What router advertisements taught a host (RFC 4861 6.3.4): default
/// routers and on-link prefixes, each for its advertised lifetime, and the
/// link's MTU and hop limit when a router names them. Bounded; the stack's
/// own prefix (`--address6`) and `gateway6` stand beside these.
struct RouterDiscovery {
    struct Router {
        var address: IPv6Address
        var expires: Instant
    }

    struct Prefix {
        var prefix: IPv6CIDR
        var expires: Instant
    }

    static let maxRouters = 4
    static let maxPrefixes = 8

    private(set) var routers: [Router] = []
    private(set) var prefixes: [Prefix] = []
    /// The link MTU a router announced (RFC 4861 4.6.4), within 1280 and the device's.
    private(set) var mtu: Int?
    /// The hop limit a router announced (Cur Hop Limit), if not 0.
    private(set) var hopLimit: UInt8?
    /// Router solicitations still to send, and when the next is due (RFC 4861 6.3.7).
    var solicitationsLeft = 0
    var nextSolicitation: Instant?

    /// Whether `a` lies in an advertised on-link prefix (those past their
    /// lifetime are gone: `expire` runs at their deadline).
    func isOnLink(_ a: IPv6Address) -> Bool {
        prefixes.contains { $0.prefix.contains(a) }
    }

    /// The first router (those past their lifetime are gone).
    var defaultRouter: IPv6Address? { routers.first?.address }

    /// Takes in an advertisement from `source` (a link-local address, checked
    /// by the caller), as RFC 4861 6.3.4 says: a router lifetime of 0 removes
    /// the router; prefixes with the on-link flag are added, refreshed or,
    /// with a valid lifetime of 0, removed; the link-local prefix is ignored.
    mutating func receive(_ ra: RouterAdvertisement, from source: IPv6Address, linkMTU: Int, now: Instant) {
        solicitationsLeft = 0
        nextSolicitation = nil
        let lifetime = Duration.seconds(Int(ra.routerLifetime))
        if let i = routers.firstIndex(where: { $0.address == source }) {
            if ra.routerLifetime == 0 { routers.remove(at: i) } else { routers[i].expires = now + lifetime }
        } else if ra.routerLifetime > 0 {
            if routers.count >= Self.maxRouters { routers.removeFirst() }
            routers.append(Router(address: source, expires: now + lifetime))
        }
        if ra.curHopLimit != 0 { hopLimit = ra.curHopLimit }
        for option in ra.options {
            switch option {
            case .prefixInformation(let p):
                guard p.onLink, p.prefixLength <= 128, !p.prefix.isLinkLocal, !p.prefix.isMulticast else { continue }
                let cidr = IPv6CIDR(address: p.prefix, prefixLength: Int(p.prefixLength))
                // 0xffffffff is infinity (RFC 4861 4.6.2): a year is as good.
                let valid = p.validLifetime == .max ? Duration.seconds(365 * 86400)
                                                    : .seconds(Int(p.validLifetime))
                if let i = prefixes.firstIndex(where: { $0.prefix == cidr }) {
                    if p.validLifetime == 0 { prefixes.remove(at: i) } else { prefixes[i].expires = now + valid }
                } else if p.validLifetime > 0 {
                    if prefixes.count >= Self.maxPrefixes { prefixes.removeFirst() }
                    prefixes.append(Prefix(prefix: cidr, expires: now + valid))
                }
            case .mtu(let m):
                // RFC 4861 6.3.4: an MTU below the minimum or above the link's is ignored.
                if m >= 1280 && Int(m) <= linkMTU { mtu = Int(m) }
            default:
                continue
            }
        }
    }

    /// Forgets routers and prefixes past their lifetimes.
    mutating func expire(now: Instant) {
        routers.removeAll { now >= $0.expires }
        prefixes.removeAll { now >= $0.expires }
    }

    /// The earliest expiry or solicitation (no allocation: the loop asks every turn).
    var nextDeadline: Instant? {
        var d = nextSolicitation
        for r in routers { d = min(d ?? r.expires, r.expires) }
        for p in prefixes { d = min(d ?? p.expires, p.expires) }
        return d
    }
}
