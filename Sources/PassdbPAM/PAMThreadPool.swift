import Dispatch
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Counters of one PAM thread pool, for logs, metrics and tests.
public struct PAMPoolStatistics: Sendable, Equatable {
    /// Live worker threads that can take work (busy or idle), not counting stuck ones.
    public var threads: Int
    /// Of `threads`, those waiting for work.
    public var idle: Int
    /// Threads abandoned in a PAM call that exceeded the timeout and has not returned yet.
    public var stuck: Int
    /// Requests waiting for a thread.
    public var queued: Int
    /// Requests answered `PAM timed out` since start.
    public var timeouts: Int
    /// Requests refused at once (queue full, or every thread stuck) since start.
    public var rejected: Int
    /// PAM calls that returned in time and were answered with their result.
    public var completed: Int
}

/// A bounded pool of dedicated threads (pthreads, not Swift's cooperative pool, not an event loop) for
/// blocking calls that may hang, with a per-call deadline.
///
/// - At most `maxThreads` calls run at once; up to `maxQueue` more wait in FIFO order; beyond that a
///   call is refused at once (`busy`).
/// - Each call has a deadline, queueing included. When it passes, the caller gets `timedOut` right away.
///   A queued call is just dropped. A running call cannot be interrupted (PAM has no cancellation and
///   killing a thread is unsafe), so its thread is *abandoned*: it no longer counts as a worker, its
///   eventual result is thrown away, and a fresh thread may replace it — but only while the number of
///   stuck threads stays within `maxStuck`. A module that hangs forever therefore costs at most
///   `maxThreads + maxStuck` threads in total, never more; when every thread is stuck, calls are refused
///   at once instead of queueing into certain timeouts. A stuck thread that finally returns rejoins the
///   pool if there is room, or exits.
/// - Threads start on demand and exit after `idleTimeout` without work.
/// - Task cancellation answers the caller at once; a call already running finishes on its thread and its
///   result is dropped (the thread is counted as stuck only if the call is still running at its deadline).
final class PAMThreadPool<Result: Sendable>: @unchecked Sendable {
    // Everything mutable below is guarded by `lock`.
    enum Outcome: Sendable {
        case finished(Result)
        case timedOut
        case busy
        case unavailable(stuck: Int)
        case cancelled
        case shutDown
    }

    private final class Job: @unchecked Sendable {
        enum State { case new, queued, running, answered }
        let work: @Sendable () -> Result
        var state: State = .new
        var continuation: CheckedContinuation<Outcome, Never>?
        var worker: Worker?
        var timer: DispatchWorkItem?
        var cancelRequested = false
        init(work: @escaping @Sendable () -> Result) { self.work = work }
    }

    private final class Worker: @unchecked Sendable {
        var abandoned = false
    }

    let maxThreads: Int
    let maxQueue: Int
    let maxStuck: Int
    let timeout: Duration
    let idleTimeout: Duration

    private let lock = ConditionLock()
    private var queue = JobQueue<Job>()
    private var threads = 0
    private var idle = 0
    /// Threads created that have not taken the lock yet (each will take a queued job).
    private var starting = 0
    private var stuck = 0
    private var timeouts = 0
    private var rejected = 0
    private var completed = 0
    private var isShutDown = false

    init(maxThreads: Int, maxQueue: Int, maxStuck: Int, timeout: Duration, idleTimeout: Duration = .seconds(60)) {
        precondition(maxThreads >= 1 && maxQueue >= 0 && maxStuck >= 0)
        self.maxThreads = maxThreads
        self.maxQueue = maxQueue
        self.maxStuck = maxStuck
        self.timeout = timeout
        self.idleTimeout = idleTimeout
    }

    var statistics: PAMPoolStatistics {
        lock.withLock {
            PAMPoolStatistics(
                threads: threads, idle: idle, stuck: stuck, queued: queue.count, timeouts: timeouts, rejected: rejected,
                completed: completed)
        }
    }

    /// Runs `work` on a pool thread and waits for it, at most `timeout`.
    func run(_ work: @escaping @Sendable () -> Result) async -> Outcome {
        let job = Job(work: work)
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
                submit(job, continuation)
            }
        } onCancel: {
            cancel(job)
        }
    }

    /// Lets idle threads exit and refuses new work. Calls already queued or running still get answers.
    func shutdown() {
        lock.withLock {
            isShutDown = true
            lock.broadcast()
        }
    }

    // MARK: - Internals

    private func submit(_ job: Job, _ continuation: CheckedContinuation<Outcome, Never>) {
        var immediate: Outcome?
        lock.withLock {
            if job.cancelRequested {
                immediate = .cancelled
            } else if isShutDown {
                immediate = .shutDown
            } else if threads == 0 && spawnableLocked == 0 {
                // Every thread is stuck in a hung call and no more may be started.
                rejected += 1
                immediate = .unavailable(stuck: stuck)
            } else if queue.count >= maxQueue + idle + starting + spawnableLocked {
                // The jobs already queued take every thread that is or could become free, and
                // `maxQueue` jobs already wait beyond those.
                rejected += 1
                immediate = .busy
            } else {
                job.continuation = continuation
                job.state = .queued
                queue.append(job)
                let timer = DispatchWorkItem { [weak self, weak job] in
                    guard let self, let job else { return }
                    self.expire(job)
                }
                job.timer = timer
                DispatchQueue.global().asyncAfter(deadline: .now() + timeout.dispatchInterval, execute: timer)
                spawnIfNeededLocked()
                lock.signal()
            }
        }
        if let immediate { continuation.resume(returning: immediate) }
    }

    /// Threads that could still be started now without breaking either cap. Holds `lock`.
    private var spawnableLocked: Int {
        max(0, min(maxThreads - threads, maxThreads + maxStuck - threads - stuck))
    }

    /// Starts threads while queued jobs outnumber the threads about to take them (idle or just started)
    /// and the caps allow it. Holds `lock`.
    private func spawnIfNeededLocked() {
        while queue.count > idle + starting, spawnableLocked > 0 {
            threads += 1
            starting += 1
            if !startThread() {
                threads -= 1
                starting -= 1
                return
            }
        }
    }

    private func startThread() -> Bool {
        let worker = Worker()
        let box = Unmanaged.passRetained(ThreadBody { [self] in self.workerMain(worker) })
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        defer { pthread_attr_destroy(&attr) }
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        var tid = pthread_t()
        let rc = pthread_create(&tid, &attr, { arg in
            Unmanaged<ThreadBody>.fromOpaque(arg!).takeRetainedValue().body()
            return nil
        }, box.toOpaque())
        if rc != 0 {
            box.release()
            return false
        }
        return true
    }

    private func workerMain(_ worker: Worker) {
        lock.lock()
        starting -= 1
        while true {
            if let job = queue.popFirst() {
                job.state = .running
                job.worker = worker
                lock.unlock()

                let result = job.work()

                lock.lock()
                job.worker = nil
                var answer: CheckedContinuation<Outcome, Never>?
                if job.state == .running {
                    job.state = .answered
                    answer = job.continuation
                    job.continuation = nil
                    completed += 1
                }
                let timer = job.timer
                job.timer = nil
                var exitNow = false
                if worker.abandoned {
                    worker.abandoned = false
                    stuck -= 1
                    if threads < maxThreads && !isShutDown {
                        threads += 1  // rejoin
                    } else {
                        exitNow = true
                    }
                }
                lock.unlock()
                timer?.cancel()
                answer?.resume(returning: .finished(result))
                if exitNow { return }
                lock.lock()
                continue
            }
            if isShutDown {
                threads -= 1
                lock.unlock()
                return
            }
            idle += 1
            let timedOut = !lock.wait(timeout: idleTimeout)
            idle -= 1
            if timedOut && queue.isEmpty {
                threads -= 1
                lock.unlock()
                return
            }
        }
    }

    private func expire(_ job: Job) {
        var answer: CheckedContinuation<Outcome, Never>?
        lock.withLock {
            job.timer = nil
            switch job.state {
            case .new:
                return
            case .queued:
                queue.remove(job)
            case .running:
                abandonLocked(job)
            case .answered:
                // Cancelled while running and still not back at the deadline: the thread is stuck
                // even though nobody waits for it any more.
                abandonLocked(job)
                return
            }
            job.state = .answered
            timeouts += 1
            answer = job.continuation
            job.continuation = nil
        }
        answer?.resume(returning: .timedOut)
    }

    /// Gives up on the thread running `job`: it no longer counts as a worker; a replacement may start
    /// within the caps. Holds `lock`.
    private func abandonLocked(_ job: Job) {
        guard let worker = job.worker, !worker.abandoned else { return }
        worker.abandoned = true
        threads -= 1
        stuck += 1
        spawnIfNeededLocked()
    }

    private func cancel(_ job: Job) {
        var answer: CheckedContinuation<Outcome, Never>?
        var timer: DispatchWorkItem?
        lock.withLock {
            switch job.state {
            case .new:
                job.cancelRequested = true
                return
            case .queued:
                queue.remove(job)
                timer = job.timer
                job.timer = nil
            case .running:
                // The thread finishes the call and its result is dropped. The deadline stays armed:
                // should the call hang, the thread is still counted as stuck and replaced.
                break
            case .answered:
                return
            }
            job.state = .answered
            answer = job.continuation
            job.continuation = nil
        }
        timer?.cancel()
        answer?.resume(returning: .cancelled)
    }
}

private final class ThreadBody {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

/// A FIFO of class instances with removal by identity (for expired or cancelled jobs). Amortized O(1)
/// append and pop; removal is O(n) in the queue length, which `maxQueue` bounds.
struct JobQueue<Element: AnyObject> {
    private var items: [Element?] = []
    private var head = 0
    private(set) var count = 0

    var isEmpty: Bool { count == 0 }

    mutating func append(_ e: Element) {
        items.append(e)
        count += 1
    }

    mutating func popFirst() -> Element? {
        while head < items.count {
            let e = items[head]
            items[head] = nil
            head += 1
            if let e {
                count -= 1
                compactIfNeeded()
                return e
            }
        }
        compactIfNeeded()
        return nil
    }

    mutating func remove(_ e: Element) {
        for i in head..<items.count where items[i] === e {
            items[i] = nil
            count -= 1
            break
        }
        compactIfNeeded()
    }

    private mutating func compactIfNeeded() {
        if count == 0 {
            items.removeAll(keepingCapacity: items.count < 1024)
            head = 0
        } else if head > 64 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
    }
}

/// A pthread mutex with one condition variable on the monotonic clock.
final class ConditionLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let cond: UnsafeMutablePointer<pthread_cond_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        precondition(pthread_mutex_init(mutex, nil) == 0)
        cond = .allocate(capacity: 1)
        cond.initialize(to: pthread_cond_t())
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        #if canImport(Glibc)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        #endif
        precondition(pthread_cond_init(cond, &attr) == 0)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }

    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }

    func signal() { pthread_cond_signal(cond) }
    func broadcast() { pthread_cond_broadcast(cond) }

    /// Waits (holding the lock on entry and return) until signalled or `timeout` passes. Returns false
    /// on timeout. Spurious wake-ups return true; callers re-check their condition.
    func wait(timeout: Duration) -> Bool {
        var now = timespec()
        #if canImport(Glibc)
        clock_gettime(CLOCK_MONOTONIC, &now)
        #else
        clock_gettime(CLOCK_REALTIME, &now)
        #endif
        let (secs, atto) = timeout.components
        var deadline = now
        deadline.tv_sec += Int(secs)
        deadline.tv_nsec += Int(atto / 1_000_000_000)
        if deadline.tv_nsec >= 1_000_000_000 {
            deadline.tv_sec += 1
            deadline.tv_nsec -= 1_000_000_000
        }
        return pthread_cond_timedwait(cond, mutex, &deadline) != ETIMEDOUT
    }
}

extension Duration {
    var dispatchInterval: DispatchTimeInterval {
        let (secs, atto) = components
        let nanos = secs.multipliedReportingOverflow(by: 1_000_000_000)
        if nanos.overflow { return .never }
        return .nanoseconds(Int(nanos.partialValue + atto / 1_000_000_000))
    }

    var seconds: Double {
        let (secs, atto) = components
        return Double(secs) + Double(atto) / 1e18
    }
}
