#if canImport(Glibc)
import Glibc
#endif

/// Eventfds that other processes write when they want the loop to look at
/// something they share with it: the socket API's per-socket doorbells
/// (`netstack up --api`), rung when an application filled a ring the stack
/// asked to hear about. Each is armed once at a time under a token; when
/// it is written, the loop hands the token to `onRung` on its next turn.
///
/// A device that sleeps in io_uring (`TAPDevice`) keeps a read of each
/// armed eventfd in its ring (`Device.watch(doorbells:)`), so a ring ends
/// the loop's sleep directly: no thread in between, no epoll, and no system
/// call of the loop's own (the reads go in with its next submission). Other
/// devices never sleep, and the loop reads each armed eventfd itself,
/// without blocking, once per turn.
///
/// Loop thread only, like the device.
public final class Doorbells {
    /// An eventfd armed and not rung yet, by token.
    private var armed: [UInt32: Int32] = [:]
    /// Armed since the device last took them (`takeArmed`).
    private var toArm: [(token: UInt32, descriptor: Int32)] = []
    /// Disarmed after the device took them: their reads are to be cancelled.
    private var toCancel: [UInt32] = []
    /// Rung since the last `deliver`.
    private var rung: [UInt32] = []
    /// Swapped with `rung` while delivering, so delivery does not allocate.
    private var delivering: [UInt32] = []
    /// The device reads the armed eventfds (else `deliver` polls them).
    var deviceReads = false
    /// Called on the loop for each token whose eventfd was written.
    public var onRung: ((UInt32) -> Void)?
    /// How many rings were heard (`--stats`: api-doorbells).
    public private(set) var delivered: UInt64 = 0
    /// How many looks the loop took without a write (`lookAgain`).
    public private(set) var lookedAgain: UInt64 = 0

    public init() {}

    /// Asks to hear once of the next write to `descriptor` (a non-blocking
    /// eventfd the caller keeps open until `disarm`); its count is consumed.
    /// A token already armed stays as it is.
    public func arm(_ descriptor: Int32, token: UInt32) {
        guard armed[token] == nil else { return }
        armed[token] = descriptor
        if deviceReads { toArm.append((token, descriptor)) }
    }

    /// Stops hearing of `token`'s eventfd; a ring already on its way is dropped.
    public func disarm(token: UInt32) {
        guard armed.removeValue(forKey: token) != nil else { return }
        guard deviceReads else { return }
        if let i = toArm.firstIndex(where: { $0.token == token }) {
            toArm.remove(at: i)
        } else {
            toCancel.append(token)
        }
    }

    public var isArmed: Bool { !armed.isEmpty }

    /// Delivers `token` on the next turn as if its eventfd had been
    /// written, and leaves it armed as it was: for a socket whose
    /// application the loop woke while waiting for it, which may write
    /// without ringing (the socket API's `APIServer.endTurn`).
    public func lookAgain(token: UInt32) {
        rung.append(token)
        lookedAgain &+= 1
    }

    /// Tokens wait for the next `deliver`: the loop must not sleep first.
    public var hasPending: Bool { !rung.isEmpty }

    // MARK: For the device

    /// The eventfds armed since the last call, for the device to read.
    func takeArmed(_ body: (UInt32, Int32) -> Bool) {
        guard !toArm.isEmpty else { return }
        var done = 0
        for (token, descriptor) in toArm {
            guard body(token, descriptor) else { break }  // the device's queue is full: the rest wait
            done += 1
        }
        toArm.removeFirst(done)
    }

    /// Tokens disarmed after their read was queued, for the device to cancel.
    func takeCancelled(_ body: (UInt32) -> Bool) {
        guard !toCancel.isEmpty else { return }
        var done = 0
        for token in toCancel {
            guard body(token) else { break }
            done += 1
        }
        toCancel.removeFirst(done)
    }

    /// The device's read of `token`'s eventfd completed. A token disarmed
    /// meanwhile (its read cancelled, or rung before the cancel) is ignored.
    func rang(token: UInt32) {
        guard armed.removeValue(forKey: token) != nil else { return }
        rung.append(token)
        delivered &+= 1
    }

    // MARK: For the loop

    /// Hands every token rung since the last call to `onRung`; without a
    /// device that reads them, reads each armed eventfd first. Returns how
    /// many were delivered.
    func deliver() -> Int {
        if !deviceReads && !armed.isEmpty { pollArmed() }
        guard !rung.isEmpty, let onRung else { return 0 }
        swap(&rung, &delivering)
        for token in delivering { onRung(token) }
        let n = delivering.count
        delivering.removeAll(keepingCapacity: true)
        return n
    }

    private func pollArmed() {
        var count: UInt64 = 0
        for (token, descriptor) in armed where read(descriptor, &count, 8) == 8 {
            rang(token: token)
        }
    }
}
