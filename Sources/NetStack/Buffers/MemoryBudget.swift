/// The stack's global memory budget (`netstack up --memory-limit`): the bytes
/// that connections and their byte rings may hold together.
///
/// A TCP connection is charged `connectionCost` while it is in the table:
/// its control block and a first ring allocation each way, reserved when it
/// is admitted (as Linux reserves `sk_forward_alloc`), so an admitted
/// connection can always carry data. Its rings charge storage beyond that
/// when they grow and give it back when they shrink or go. Near the limit a
/// ring that cannot grow holds what it has, so the receive window it
/// advertises shrinks and an application's writes are taken in smaller
/// pieces; at the limit a new connection is refused with a RST (and
/// `connect` throws) instead of allocating, as Linux's `tcp_mem` pressure
/// shrinks windows and refuses new sockets rather than failing an
/// allocation. The packet pool is preallocated and outside the budget.
///
/// Without a limit the budget only counts (`memory-in-use`), which costs a
/// branch per allocation, not per packet: rings grow a few times per
/// connection and then stay.
public final class MemoryBudget {
    /// The most bytes charged at once; nil: no limit.
    public let limit: Int?
    /// Bytes charged now.
    public private(set) var used = 0
    /// The most bytes ever charged at once.
    public private(set) var peak = 0
    /// Where rings' first pages live (`RingPages`).
    public let pages = RingPages()
    /// A connection's control block: about what one idle connection holds
    /// resident without its rings (measured: 2.5 KB each with 5,000 held,
    /// 2.8 KB each with 50,000, `Tests/Interop/test_memory.py`).
    public static let controlBlockCost = 2560
    /// Storage each of a connection's rings has paid for at admission.
    public static let prepaidRing = ByteRing.initialStorage
    /// What a connection is charged while in the table.
    public static let connectionCost = controlBlockCost + 2 * prepaidRing

    public init(limit: Int? = nil) {
        precondition(limit.map { $0 > 0 } ?? true, "a memory limit must be positive")
        self.limit = limit
    }

    /// Bytes that may still be charged (Int.max without a limit).
    public var available: Int { limit.map { max($0 - used, 0) } ?? .max }

    /// Whether a new connection fits.
    public var admitsConnection: Bool { available >= Self.connectionCost }

    /// Charges `bytes`. Callers check first (`available`, `admitsConnection`).
    func chargeUnconditionally(_ bytes: Int) {
        used += bytes
        if used > peak { peak = used }
    }

    func release(_ bytes: Int) {
        used -= bytes
        assert(used >= 0, "memory budget released more than was charged")
    }

    /// For `--stats`.
    public var report: [(String, UInt64)] {
        [("memory-in-use", UInt64(used)), ("memory-peak", UInt64(peak)),
         ("memory-limit", UInt64(limit ?? 0))]
    }
}
