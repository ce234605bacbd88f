import Dispatch
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// Why the pool answered without running the work.
enum LDAPPoolRefusal: Error, Sendable, Equatable {
    /// The deadline (queueing included) passed.
    case timedOut
    /// `maxThreads` calls run and `maxQueue` wait already.
    case busy
    /// `shutdown` was called.
    case shutDown
}

/// A bounded pool of dedicated threads (pthreads: never an event loop, never Swift's cooperative pool)
/// for libldap's blocking calls, each thread with a `LDAPWorker` (its connections) that lives as long as
/// the thread. The ideas of the PAM pool, simpler because libldap bounds its own calls with timeouts:
///
/// - At most `maxThreads` threads, started on demand; one idle for `idleTimeout` closes its connections
///   and exits.
/// - Up to `maxQueue` calls wait in FIFO order; one more is refused at once (`busy`).
/// - Each call has a deadline, queueing included: the caller is answered `timedOut` when it passes, even
///   if the thread is still in libldap (its late result is dropped; the thread stays counted, so the
///   number of threads never exceeds `maxThreads`).
/// - `shutdown` refuses new calls, answers queued ones `shutDown`, and lets every thread close its
///   connections (unbind) and exit; `waitForThreads` waits for that.
final class LDAPThreadPool: @unchecked Sendable {
    /// One call: its work and how to refuse it. Whoever answers first (the work, the deadline, the
    /// shutdown) wins the `Claim`; the others are no-ops.
    private final class Job: @unchecked Sendable {
        let body: (LDAPWorker) -> Void
        let refuse: @Sendable (LDAPPoolRefusal) -> Void
        /// The deadline; cancelled once the work has run, so finished calls leave no timers behind.
        var timer: DispatchWorkItem?
        init(body: @escaping (LDAPWorker) -> Void, refuse: @escaping @Sendable (LDAPPoolRefusal) -> Void) {
            self.body = body
            self.refuse = refuse
        }
    }

    private final class Claim: Sendable {
        private let taken = Atomic<Bool>(false)
        /// True exactly once.
        func take() -> Bool { !taken.exchange(true, ordering: .acquiringAndReleasing) }
        /// Already answered (the deadline passed, or the pool shut down).
        var isTaken: Bool { taken.load(ordering: .acquiring) }
    }

    let maxThreads: Int
    let maxQueue: Int
    let timeout: Duration
    let idleTimeout: Duration
    private let makeWorker: @Sendable () -> LDAPWorker

    // Guarded by `mutex`/`cond`.
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var queue: [Job] = []
    private var threads = 0
    private var idle = 0
    private var isShutDown = false

    init(maxThreads: Int, maxQueue: Int, timeout: Duration, idleTimeout: Duration = .seconds(60),
         makeWorker: @escaping @Sendable () -> LDAPWorker) {
        precondition(maxThreads >= 1 && maxQueue >= 0)
        self.maxThreads = maxThreads
        self.maxQueue = maxQueue
        self.timeout = timeout
        self.idleTimeout = idleTimeout
        self.makeWorker = makeWorker
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
        cond.initialize(to: pthread_cond_t())
        var attr = pthread_condattr_t()
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(cond, &attr)
        pthread_condattr_destroy(&attr)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    /// Live threads (for `close` and tests).
    var threadCount: Int { locked { threads } }

    /// Runs `work` on a pool thread with that thread's connections; answers within `timeout`.
    func run<T: Sendable>(_ work: @escaping (LDAPWorker) -> T) async -> Result<T, LDAPPoolRefusal> {
        await withCheckedContinuation { (continuation: CheckedContinuation<Result<T, LDAPPoolRefusal>, Never>) in
            let claim = Claim()
            // The deadline holds by the clock, not only by the timer: on a loaded machine the timer can
            // fire late, and a result that comes after the deadline is still a time-out (the caller was
            // promised an answer within `timeout`, and a late success must not count as one).
            let deadline = ContinuousClock.now + timeout
            let job = Job(
                body: { worker in
                    // A call answered at its deadline, or past it, stops before its next step that the
                    // server would count (a user bind: a lockout counter), not just when it ends.
                    worker.abandoned = { claim.isTaken || ContinuousClock.now >= deadline }
                    defer { worker.abandoned = { false } }
                    let value = work(worker)
                    let late = ContinuousClock.now >= deadline
                    if claim.take() {
                        continuation.resume(returning: late ? .failure(.timedOut) : .success(value))
                    }
                },
                refuse: { why in
                    if claim.take() { continuation.resume(returning: .failure(why)) }
                })
            submit(job)
        }
    }

    /// Refuses new calls and answers the queued ones; threads close their connections and exit.
    func shutdown() {
        let dropped: [Job] = locked {
            isShutDown = true
            let q = queue
            queue.removeAll()
            pthread_cond_broadcast(cond)
            return q
        }
        for job in dropped { job.refuse(.shutDown) }
    }

    /// Waits until every thread has exited, at most `limit`. True when none is left.
    func waitForThreads(limit: Duration) async -> Bool {
        let end = ContinuousClock.now + limit
        while threadCount > 0 {
            if ContinuousClock.now >= end { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return true
    }

    // MARK: - Internals

    private func submit(_ job: Job) {
        let timer = DispatchWorkItem { [weak self, weak job] in
            guard let job else { return }
            self?.locked { self?.queue.removeAll { $0 === job } }
            job.refuse(.timedOut)
        }
        job.timer = timer
        let refusal: LDAPPoolRefusal? = locked {
            if isShutDown { return .shutDown }
            if queue.count >= maxQueue + (maxThreads - threads) + idle { return .busy }
            queue.append(job)
            if queue.count > idle && threads < maxThreads {
                threads += 1
                if !startThread() { threads -= 1 }
            }
            pthread_cond_signal(cond)
            return nil
        }
        if let refusal {
            job.timer = nil
            job.refuse(refusal)
            return
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + timeout.dispatchInterval, execute: timer)
    }

    private func startThread() -> Bool {
        let box = Unmanaged.passRetained(ThreadMain { [self] in self.threadMain() })
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        defer { pthread_attr_destroy(&attr) }
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        var tid = pthread_t()
        let rc = pthread_create(&tid, &attr, { arg in
            Unmanaged<ThreadMain>.fromOpaque(arg!).takeRetainedValue().body()
            return nil
        }, box.toOpaque())
        if rc != 0 { box.release() }
        return rc == 0
    }

    private func threadMain() {
        let worker = makeWorker()
        defer { worker.close() }
        pthread_mutex_lock(mutex)
        while true {
            if !queue.isEmpty {
                let job = queue.removeFirst()
                pthread_mutex_unlock(mutex)
                job.body(worker)
                job.timer?.cancel()
                pthread_mutex_lock(mutex)
                continue
            }
            if isShutDown { break }
            idle += 1
            let signalled = wait(idleTimeout)
            idle -= 1
            if !signalled && queue.isEmpty { break }
        }
        threads -= 1
        pthread_mutex_unlock(mutex)
    }

    /// Waits on the condition (mutex held); false on timeout.
    private func wait(_ d: Duration) -> Bool {
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let (secs, atto) = d.components
        deadline.tv_sec += Int(secs)
        deadline.tv_nsec += Int(atto / 1_000_000_000)
        if deadline.tv_nsec >= 1_000_000_000 {
            deadline.tv_sec += 1
            deadline.tv_nsec -= 1_000_000_000
        }
        return pthread_cond_timedwait(cond, mutex, &deadline) != ETIMEDOUT
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }
}

private final class ThreadMain {
    let body: () -> Void
    init(_ body: @escaping () -> Void) { self.body = body }
}

extension Duration {
    var dispatchInterval: DispatchTimeInterval {
        let (secs, atto) = components
        return .nanoseconds(Int(secs) * 1_000_000_000 + Int(atto / 1_000_000_000))
    }

    var milliseconds: Int {
        let (secs, atto) = components
        return Int(secs) * 1000 + Int(atto / 1_000_000_000_000_000)
    }
}
