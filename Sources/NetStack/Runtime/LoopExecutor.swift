#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Runs Swift concurrency jobs on the event loop's thread, so async
/// application code touches the stack without locks: start a task with
/// `Task(executorPreference: loop.executor) { ... }` and its nonisolated async
/// code runs between the loop's turns.
///
/// Jobs may be enqueued from any thread; this queue is the one place where
/// another thread meets the loop, and a mutex guards only the hand-over.
public final class LoopExecutor: TaskExecutor, @unchecked Sendable {
    private let pending = Mutex<[UnownedJob]>([])
    /// Swapped with `pending` on each drain, so draining does not allocate.
    private var draining: [UnownedJob] = []

    /// The thread the loop last turned on, for debug checks that the stack is
    /// used from its loop (written and read on that thread only).
    private var loopThread: pthread_t?

    public init() {}

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
        pending.withLock { $0.append(unowned) }
    }

    /// True if jobs are waiting to run.
    public var hasPendingJobs: Bool { pending.withLock { !$0.isEmpty } }

    /// Runs the jobs queued so far (not those they enqueue in turn). Returns how many ran.
    /// Must be called on the loop's thread.
    @discardableResult
    public func runPending() -> Int {
        pending.withLock { swap(&$0, &draining) }
        let n = draining.count
        for job in draining { job.runSynchronously(on: asUnownedTaskExecutor()) }
        draining.removeAll(keepingCapacity: true)
        return n
    }
}
