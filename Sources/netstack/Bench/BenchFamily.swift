import ArgumentParser

/// The IP family `netstack bench --family` measures over. Both systems use
/// the same addresses of it: the peer at .1 (or ::1 of the prefix), the
/// system under test at .2, so every scenario's client and server are the
/// same programs either way.
enum BenchFamily: String, CaseIterable, ExpressibleByArgument {
    case ipv4 = "4"
    case ipv6 = "6"

    /// The system under test's address: what the peer's clients connect to.
    var serverIP: String { self == .ipv4 ? "10.0.0.2" : "fd00::2" }
    /// The peer's address (the veth's other end, the TAP's host side).
    var peerIP: String { self == .ipv4 ? "10.0.0.1" : "fd00::1" }
    var prefixLength: Int { self == .ipv4 ? 24 : 64 }
    /// memory-bulk's kernel system: two sockets over this loopback address.
    var loopbackIP: String { self == .ipv4 ? "127.0.0.1" : "::1" }

    /// "IPv4" or "IPv6", for the report.
    var name: String { self == .ipv4 ? "IPv4" : "IPv6" }

    /// `ip:port` as `ss` prints a local address (IPv6 in brackets).
    func endpoint(_ ip: String, _ port: UInt16) -> String {
        self == .ipv4 ? "\(ip):\(port)" : "[\(ip)]:\(port)"
    }
}
