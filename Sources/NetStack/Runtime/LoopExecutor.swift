#if canImport(Glibc)
import Glibc
#endif
import CURing
import Synchronization

/// Runs Swift concurrency jobs, and plain closures handed over by other
/// threads, on the event loop's thread, so application code touches the
/// stack without locks: start a task with
/// `Task(executorPreference: loop.executor) { ... }` and its nonisolated async
/// code runs between the loop's turns; a thread that is not Swift concurrency
/// (the socket API server) calls `submit`.
///
/// Work may be enqueued from any thread; this queue is the one place where
/// another thread meets the loop, and a mutex guards only the hand-over. A
/// loop asleep in its device is woken through an eventfd the device watches
/// (`Device.watch(wakeups:)`), written only while the loop says it sleeps, so
/// a busy loop costs its producers no system call.
public final class LoopExecutor: TaskExecutor, @unchecked Sendable {
    private struct Pending {
        var jobs: [UnownedJob] = []
        var work: [@Sendable () -> Void] = []
        var isEmpty: Bool { jobs.isEmpty && work.isEmpty }
    }
    private let pending = Mutex(Pending())
    /// Swapped with `pending` on each drain, so draining does not allocate.
    private var draining = Pending()
    /// Set while the loop is about to sleep or sleeping (see `prepareToSleep`).
    private let sleeping = Atomic<Bool>(false)
    /// Written to wake the loop; the device reads it (-1 if it could not be made).
    public let wakeDescriptor: Int32

    /// The thread the loop last turned on, for debug checks that the stack is
    /// used from its loop (written and read on that thread only).
    private var loopThread: pthread_t?

    public init() {
        wakeDescriptor = curing_eventfd()
    }

    deinit {
        if wakeDescriptor >= 0 { close(wakeDescriptor) }
    }

    /// Called by the loop at each turn.
    func enterLoopThread() {
        loopThread = pthread_self()
    }

    /// True on the thread the loop runs on (and before it first turned, when
    /// applications set themselves up).
    public var isOnLoopThread: Bool {
        guard let loopThread else { return true }
        return pthread_equal(loopThread, pthread_self()) != 0
    }

    public func enqueue(_ job: consuming ExecutorJob) {
        let unowned = UnownedJob(job)
        pending.withLock { $0.jobs.append(unowned) }
        wakeIfSleeping()
    }

    /// Runs `work` on the loop's thread at its next turn. Safe from any
    /// thread. Allocates nothing beyond the queue's growth when `work` is a
    /// closure made once and submitted again.
    public func submit(_ work: @escaping @Sendable () -> Void) {
        pending.withLock { $0.work.append(work) }
        wakeIfSleeping()
    }

    /// True if jobs are waiting to run.
    public var hasPendingJobs: Bool { pending.withLock { !$0.isEmpty } }

    /// The loop is about to sleep: from now on producers write the wake-up.
    /// Returns false (and the loop must not sleep) if work arrived meanwhile.
    /// The store and the check are sequentially consistent, as are a
    /// producer's append and its look at `sleeping`: one of them sees the other.
    func prepareToSleep() -> Bool {
        sleeping.store(true, ordering: .sequentiallyConsistent)
        if hasPendingJobs {
            sleeping.store(false, ordering: .relaxed)
            return false
        }
        return true
    }

    /// The loop woke up.
    func awake() { sleeping.store(false, ordering: .relaxed) }

    private func wakeIfSleeping() {
        guard wakeDescriptor >= 0, sleeping.load(ordering: .sequentiallyConsistent) else { return }
        var one: UInt64 = 1
        _ = write(wakeDescriptor, &one, 8)
    }

    /// Runs the jobs and work queued so far (not those they enqueue in turn).
    /// Returns how many ran. Must be called on the loop's thread.
    @discardableResult
    public func runPending() -> Int {
        pending.withLock { swap(&$0, &draining) }
        let n = draining.jobs.count + draining.work.count
        for job in draining.jobs { job.runSynchronously(on: asUnownedTaskExecutor()) }
        for work in draining.work { work() }
        draining.jobs.removeAll(keepingCapacity: true)
        draining.work.removeAll(keepingCapacity: true)
        return n
    }
}
