/// A layer's reasons for dropping what it received or was asked to send.
/// Each layer declares its own (`DropReason` for link and IP, `TCPDropReason`,
/// `UDPDropReason`); `netstack up --stats` prints them by `description`.
public protocol DropReasonSet: CaseIterable, CustomStringConvertible, Sendable, RawRepresentable
where RawValue == Int, AllCases == [Self] {}

/// A count per drop reason, in a fixed array: counting never allocates.
public struct DropCounters<Reason: DropReasonSet>: Sendable {
    private var counts = [UInt64](repeating: 0, count: Reason.allCases.count)

    public init() {}

    public subscript(reason: Reason) -> UInt64 {
        get { counts[reason.rawValue] }
        set { counts[reason.rawValue] = newValue }
    }

    public mutating func record(_ reason: Reason) { counts[reason.rawValue] &+= 1 }

    public var total: UInt64 { counts.reduce(0, &+) }

    /// The reasons with a non-zero count, in declaration order.
    public var nonZero: [(Reason, UInt64)] {
        Reason.allCases.compactMap { counts[$0.rawValue] > 0 ? ($0, counts[$0.rawValue]) : nil }
    }

    /// `drop.<reason>` lines for the non-zero counts.
    public var report: [(String, UInt64)] { nonZero.map { ("drop." + $0.0.description, $0.1) } }
}
