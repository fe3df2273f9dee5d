import Foundation

/// Linux's CPU list format, as `taskset -c`, `/proc/PID/status`'s
/// `Cpus_allowed_list` and `/sys/devices/system/cpu/online` write it:
/// comma-separated CPU numbers and inclusive ranges, "0-3,8,10-11".
public enum CPUList {
    /// The CPUs of `text`, ascending and without repeats; nil for anything
    /// malformed (an empty list, a reversed range, a stray character).
    public static func parse(_ text: String) -> [Int]? {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { return nil }
        var cpus = Set<Int>()
        for part in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count == 1 || bounds.count == 2,
                  let low = number(bounds[0]), let high = bounds.count == 2 ? number(bounds[1]) : low,
                  low <= high, high - low < 65536 else { return nil }
            cpus.formUnion(low...high)
        }
        return cpus.sorted()
    }

    /// `cpus` as the kernel writes the list: each run of consecutive CPUs
    /// as a range, pairs included ("0-3,8,10-11"), so a list read from
    /// `/proc` formats back to the same text.
    public static func format(_ cpus: [Int]) -> String {
        let sorted = Set(cpus).sorted()
        var parts: [String] = []
        var i = 0
        while i < sorted.count {
            var j = i
            while j + 1 < sorted.count && sorted[j + 1] == sorted[j] + 1 { j += 1 }
            if j > i {
                parts.append("\(sorted[i])-\(sorted[j])")
            } else {
                parts.append(String(sorted[i]))
            }
            i = j + 1
        }
        return parts.joined(separator: ",")
    }

    /// The `Cpus_allowed_list` of a `/proc/PID/status` (or `/proc/PID/task/TID/status`) text.
    public static func allowed(fromStatus status: String) -> [Int]? {
        for line in status.split(separator: "\n") where line.hasPrefix("Cpus_allowed_list:") {
            return parse(String(line.dropFirst("Cpus_allowed_list:".count)))
        }
        return nil
    }

    private static func number(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.allSatisfy(\.isASCII), text.allSatisfy(\.isNumber) else { return nil }
        return Int(text)
    }
}

/// Where `netstack bench` runs each side, the same for both systems: the
/// peer's processes (the tcp-rr and udp-pps load generators, the iperf3
/// clients) on `peerCPUs`, the system under test's (the kernel's echo server
/// and iperf3 server, `netstack up`) and memory-bulk's one process on
/// `systemCPUs`.
///
/// Pinned means the processes' scheduler affinity (`taskset -c`, inherited
/// by their threads). Not pinned, by any setting of this: the kernel's own
/// work on a process's behalf outside its context, above all the softirq
/// that delivers a packet sent across the veth or written into the TAP,
/// which runs on the sender's CPU. So on the kernel system the server's
/// receive path runs on the peer's CPU and the peer's on the server's, while
/// netstack's receive path is its own process on `systemCPUs`; the line
/// under the table says so. Nor the bench's own process, idle while a round
/// runs, nor anything else on the machine.
public struct BenchPinning: Codable, Equatable, Sendable {
    /// False for `--pin off` (or fewer than two CPUs): both lists empty.
    public var on: Bool
    public var peerCPUs: [Int]
    public var systemCPUs: [Int]

    public init(peerCPUs: [Int], systemCPUs: [Int]) {
        on = !peerCPUs.isEmpty && !systemCPUs.isEmpty
        self.peerCPUs = on ? peerCPUs : []
        self.systemCPUs = on ? systemCPUs : []
    }

    public static let off = BenchPinning(peerCPUs: [], systemCPUs: [])

    /// One CPU each from the CPUs the bench may use (its own affinity): the
    /// first for the peer, the second for the system under test. Nil with
    /// fewer than two, where there is nothing to keep apart.
    public static func plan(allowed: [Int]) -> BenchPinning? {
        let cpus = Set(allowed).sorted()
        guard cpus.count >= 2 else { return nil }
        return BenchPinning(peerCPUs: [cpus[0]], systemCPUs: [cpus[1]])
    }

    /// The `taskset` prefix for a command of the peer (`peer`) or of the
    /// system under test; empty when off.
    public func taskset(peer: Bool) -> [String] {
        guard on else { return [] }
        return ["taskset", "-c", CPUList.format(peer ? peerCPUs : systemCPUs)]
    }

    /// For the line under the table.
    public var summary: String {
        guard on else { return "not pinned" }
        func cpus(_ list: [Int]) -> String { (list.count == 1 ? "CPU " : "CPUs ") + CPUList.format(list) }
        return "pinned: peer on \(cpus(peerCPUs)), system under test on \(cpus(systemCPUs))"
            + " (processes only; softirqs run on the sending CPU)"
    }
}
