import NetStackWire

/// What takes a port for some IP families: a TCP listener or a UDP socket.
public protocol FamilyBound: AnyObject {
    var families: IPFamilies { get }
    /// SO_REUSEPORT: it shares its port with others that ask the same.
    var sharesPort: Bool { get }
}

/// The listeners or UDP sockets on one port: one that takes both families,
/// or up to one for each, as a server listens on 0.0.0.0:80 with an AF_INET
/// socket and on [::]:80 with an IPV6_V6ONLY one (RFC 3493 5.3). One for
/// both fills both places. Several alike (the same families, each sharing
/// the port) may hold the same places, as Linux's SO_REUSEPORT group: each
/// packet goes to one of them by a hash of the peer's address and port, so
/// one peer's packets (a connection's, a flow's) all go to the same one.
struct PortOccupants<Occupant: FamilyBound> {
    private(set) var ipv4: [Occupant] = []
    private(set) var ipv6: [Occupant] = []

    /// The one that takes a packet to `address` from `peer`'s `port`.
    @inline(__always)
    func occupant(for address: IPAddress, from peer: IPAddress, port: UInt16) -> Occupant? {
        let place: [Occupant]
        switch address {
        case .v4: place = ipv4
        case .v6: place = ipv6
        }
        switch place.count {
        case 0: return nil
        case 1: return place[0]
        default: return place[Self.pick(peer, port, among: place.count)]
        }
    }

    /// A group member for a peer: a fixed mix of its address and port (not
    /// keyed, as Linux's is: a peer could steer its own connections to one
    /// member, as it could by choosing its port).
    static func pick(_ peer: IPAddress, _ port: UInt16, among count: Int) -> Int {
        var h: UInt64
        switch peer {
        case .v4(let a): h = UInt64(a.value)
        case .v6(let a): h = a.high ^ (a.low &* 0x9e37_79b9_7f4a_7c15)
        }
        // SplitMix64's finalizer: every input bit moves the result.
        h = (h << 16 ^ UInt64(port)) &+ 0x9e37_79b9_7f4a_7c15
        h = (h ^ h >> 30) &* 0xbf58_476d_1ce4_e5b9
        h = (h ^ h >> 27) &* 0x94d0_49bb_1331_11eb
        return Int((h ^ h >> 31) % UInt64(count))
    }

    /// Whether one for `families` finds its places free, or held only by
    /// others alike that share the port as it does (`sharing`).
    func admits(_ families: IPFamilies, sharing: Bool) -> Bool {
        func free(_ place: [Occupant]) -> Bool {
            place.isEmpty || (sharing && place.allSatisfy { $0.sharesPort && $0.families == families })
        }
        switch families {
        case .both: return free(ipv4) && free(ipv6)
        case .ipv4Only: return free(ipv4)
        case .ipv6Only: return free(ipv6)
        }
    }

    /// Puts `o` in the places of its families (`admits` said it may).
    mutating func add(_ o: Occupant) {
        if o.families != .ipv6Only { ipv4.append(o) }
        if o.families != .ipv4Only { ipv6.append(o) }
    }

    /// Takes `o` out of whichever places it holds.
    mutating func remove(_ o: Occupant) {
        ipv4.removeAll { $0 === o }
        ipv6.removeAll { $0 === o }
    }

    var isEmpty: Bool { ipv4.isEmpty && ipv6.isEmpty }

    /// Each occupant once.
    var all: [Occupant] { ipv4 + ipv6.filter { o in !ipv4.contains { $0 === o } } }
}

extension Dictionary {
    /// Adds `o` to the occupants of `port` (the caller asked `admits` first).
    mutating func occupy<O: FamilyBound>(_ port: Key, with o: O) where Value == PortOccupants<O> {
        self[port, default: PortOccupants()].add(o)
    }

    /// Takes `o` out of the occupants of `port`, and the port's entry with it once empty.
    mutating func vacate<O: FamilyBound>(_ port: Key, of o: O) where Value == PortOccupants<O> {
        guard var place = self[port] else { return }
        place.remove(o)
        self[port] = place.isEmpty ? nil : place
    }
}
