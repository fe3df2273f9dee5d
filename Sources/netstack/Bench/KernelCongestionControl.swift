import Foundation
import NetStackApps

/// The kernel's TCP congestion control where the bench's kernel TCP runs,
/// for the report: the kernel's bulk figures depend on it (cubic and bbr
/// differ), and `net.ipv4.tcp_congestion_control` is per network namespace,
/// so it is read inside each of the bench's namespaces, the way the kernel
/// side's commands run there (`ip netns exec`), not in the caller's. The
/// bench does not set it: this is what a fresh namespace got.
enum KernelCongestionControl {
    static let sysctl = "/proc/sys/net/ipv4/tcp_congestion_control"

    /// One name when every namespace agrees ("cubic"), else each one's
    /// ("kernel peer: cubic, kernel server: bbr, netstack's peer: cubic");
    /// nil if none could be read.
    static func describe(in lab: BenchLab) -> String? {
        let readings = [("kernel peer", lab.kernelPeer), ("kernel server", lab.kernelServer),
                        ("netstack's peer", lab.netstackPeer)].map { (role: $0.0, name: read(in: $0.1)) }
        let names = Set(readings.compactMap(\.name))
        if names.isEmpty { return nil }
        if names.count == 1, readings.allSatisfy({ $0.name != nil }), let only = names.first { return only }
        return readings.map { "\($0.role): \($0.name ?? "unknown")" }.joined(separator: ", ")
    }

    /// The algorithm's name in namespace `ns`, nil if unreadable or not a name.
    static func read(in ns: String) -> String? {
        let r = Shell.run(["ip", "netns", "exec", ns, "cat", sysctl], timeout: 10)
        let name = r.output.trimmingCharacters(in: .whitespacesAndNewlines)
        guard r.status == 0, !name.isEmpty, name.count <= 64,
              name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") })
        else { return nil }
        return name
    }
}
