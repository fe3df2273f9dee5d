import NetStackWire

/// What takes a port for some IP families: a TCP listener or a UDP socket.
public protocol FamilyBound: AnyObject {
    var families: IPFamilies { get }
    /// SO_REUSEPORT: it shares its port with others that ask the same.
    var sharesPort: Bool { get }
    /// SO_REUSEADDR as Linux's UDP reads it: it binds beside others that set
    /// it too, whatever they are doing (a TCP listener never does).
    var sharesAddress: Bool { get }
    /// The one peer it takes packets from: a connected UDP socket's.
    var connectedPeer: UDPEndpoint? { get }
}

extension FamilyBound {
    public var sharesAddress: Bool { false }
    public var connectedPeer: UDPEndpoint? { nil }

    /// Whether a packet from `peer`'s `port` may come to it.
    @inline(__always)
    func takes(from peer: IPAddress, port: UInt16) -> Bool {
        guard let only = connectedPeer else { return true }
        return only.address == peer && only.port == port
    }
}

/// The listeners or UDP sockets on one port: one that takes both families,
/// or up to one for each, as a server listens on 0.0.0.0:80 with an AF_INET
/// socket and on [::]:80 with an IPV6_V6ONLY one (RFC 3493 5.3). One for
/// both fills both places. Several may hold the same places if each pair
/// shares: both SO_REUSEPORT with the same families (Linux's group: each
/// packet goes to one of them by a hash of the peer's address and port, so
/// one peer's packets, a connection's or a flow's, all go to the same one),
/// or, for UDP, both SO_REUSEADDR. Then a packet goes as Linux's UDP lookup
/// (`compute_score`) sends it: to a socket connected to its sender before
/// any unconnected one, and to the newest bound among equals (iperf3's UDP
/// server binds a fresh socket beside the one it connected to its client).
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
        case 1: return place[0].takes(from: peer, port: port) ? place[0] : nil
        default: return Self.best(in: place, from: peer, port: port)
        }
    }

    /// The one connected to the peer, newest first; else the newest
    /// unconnected one, or, if it shares the port, a member of its group by
    /// the peer's hash. Nil when every one is connected elsewhere.
    private static func best(in place: [Occupant], from peer: IPAddress, port: UInt16) -> Occupant? {
        var newestOpen: Occupant?
        var group = 0
        for o in place.reversed() {
            guard o.connectedPeer == nil else {
                if o.takes(from: peer, port: port) { return o }
                continue
            }
            if newestOpen == nil { newestOpen = o }
            if o.sharesPort { group += 1 }
        }
        guard let newest = newestOpen, newest.sharesPort, group > 1 else { return newestOpen }
        var k = pick(peer, port, among: group)
        for o in place where o.connectedPeer == nil && o.sharesPort {
            if k == 0 { return o }
            k -= 1
        }
        return newest
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
    /// others it may share them with: alike and sharing the port as it does
    /// (`sharing`), or sharing the address as it does (`sharingAddress`).
    func admits(_ families: IPFamilies, sharing: Bool, sharingAddress: Bool = false) -> Bool {
        func free(_ place: [Occupant]) -> Bool {
            place.allSatisfy {
                (sharing && $0.sharesPort && $0.families == families) || (sharingAddress && $0.sharesAddress)
            }
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
