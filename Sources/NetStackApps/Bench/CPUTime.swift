import Foundation

/// The whole machine's busy CPU time, from the first (`cpu`, all CPUs) line
/// of `/proc/stat`, read just before and just after a bench measurement.
///
/// The whole machine, not one process: a transfer's work is spread over the
/// client, the server (netstack's process or the kernel's socket code) and
/// softirqs on whichever core took the interrupt, and per-process accounting
/// would miss the kernel's share. The price is that anything else running
/// counts too, so compare these figures only within one run.
///
/// Busy is user + nice + system + irq + softirq + steal; idle and iowait are
/// left out, and guest time is already inside user, so it is not added.
/// Anything missing or malformed gives nil, never a trap: the bench then
/// prints "—" for the CPU rows and measures on.
public struct CPUTime: Equatable, Sendable {
    /// Busy clock ticks (USER_HZ, "jiffies") summed over all CPUs since boot.
    public var busyTicks: UInt64

    public init(busyTicks: UInt64) {
        self.busyTicks = busyTicks
    }

    /// The reading now, or nil without a readable `/proc/stat`.
    public static func read(path: String = "/proc/stat") -> CPUTime? {
        guard let file = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? file.close() }
        // The `cpu` line comes first and is about 100 bytes: no need for the rest.
        guard let head = try? file.read(upToCount: 1024), !head.isEmpty else { return nil }
        return parse(String(decoding: head, as: UTF8.self))
    }

    /// The busy ticks of `/proc/stat`'s first line, which must be the
    /// all-CPU `cpu` line with at least the eight fields up to steal.
    public static func parse(_ stat: String) -> CPUTime? {
        guard let line = stat.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first
        else { return nil }
        let fields = line.split(separator: " ")
        guard fields.first == "cpu", fields.count >= 9 else { return nil }
        var ticks: [UInt64] = []
        for field in fields[1...8] {
            guard let value = UInt64(field) else { return nil }
            ticks.append(value)
        }
        // user nice system idle iowait irq softirq steal
        let busy = [ticks[0], ticks[1], ticks[2], ticks[5], ticks[6], ticks[7]]
        var total: UInt64 = 0
        for t in busy {
            let (sum, overflow) = total.addingReportingOverflow(t)
            guard !overflow else { return nil }
            total = sum
        }
        return CPUTime(busyTicks: total)
    }

    /// Ticks per second (`sysconf(_SC_CLK_TCK)`, USER_HZ), nil if unknown.
    public static var ticksPerSecond: Double? {
        let hz = sysconf(Int32(_SC_CLK_TCK))
        return hz > 0 ? Double(hz) : nil
    }

    /// CPU-seconds spent from this reading to `later`: nil without a later
    /// reading or a tick rate, or if the counter went backwards.
    public func seconds(until later: CPUTime?, ticksPerSecond: Double? = CPUTime.ticksPerSecond) -> Double? {
        guard let later, let ticksPerSecond, later.busyTicks >= busyTicks else { return nil }
        return Double(later.busyTicks - busyTicks) / ticksPerSecond
    }
}
