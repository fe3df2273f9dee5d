import NetStackWire

/// What takes a port for some IP families: a TCP listener or a UDP socket.
public protocol FamilyBound: AnyObject {
    var families: IPFamilies { get }
}

/// The listeners or UDP sockets on one port: one that takes both families,
/// or up to one for each, as a server listens on 0.0.0.0:80 with an AF_INET
/// socket and on [::]:80 with an IPV6_V6ONLY one (RFC 3493 5.3). One for
/// both fills both places.
struct PortOccupants<Occupant: FamilyBound> {
    private(set) var ipv4: Occupant?
    private(set) var ipv6: Occupant?

    /// The one that takes a packet to `address`.
    @inline(__always)
    func occupant(for address: IPAddress) -> Occupant? {
        switch address {
        case .v4: ipv4
        case .v6: ipv6
        }
    }

    /// Whether one for `families` finds its places free.
    func admits(_ families: IPFamilies) -> Bool {
        switch families {
        case .both: ipv4 == nil && ipv6 == nil
        case .ipv4Only: ipv4 == nil
        case .ipv6Only: ipv6 == nil
        }
    }

    /// Puts `o` in the places of its families (`admits` said they are free).
    mutating func add(_ o: Occupant) {
        if o.families != .ipv6Only { ipv4 = o }
        if o.families != .ipv4Only { ipv6 = o }
    }

    /// Takes `o` out of whichever places it holds.
    mutating func remove(_ o: Occupant) {
        if ipv4 === o { ipv4 = nil }
        if ipv6 === o { ipv6 = nil }
    }

    var isEmpty: Bool { ipv4 == nil && ipv6 == nil }

    /// Each occupant once.
    var all: [Occupant] {
        if let ipv4, let ipv6, ipv4 !== ipv6 { return [ipv4, ipv6] }
        return [ipv4 ?? ipv6].compactMap { $0 }
    }
}

extension Dictionary {
    /// Adds `o` to the occupants of `port`, if its families' places are free there.
    @discardableResult
    mutating func occupy<O: FamilyBound>(_ port: Key, with o: O) -> Bool where Value == PortOccupants<O> {
        guard self[port, default: PortOccupants()].admits(o.families) else { return false }
        self[port, default: PortOccupants()].add(o)
        return true
    }

    /// Takes `o` out of the occupants of `port`, and the port's entry with it once empty.
    mutating func vacate<O: FamilyBound>(_ port: Key, of o: O) where Value == PortOccupants<O> {
        guard var place = self[port] else { return }
        place.remove(o)
        self[port] = place.isEmpty ? nil : place
    }
}
