import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Keeps a passdb from answering with data older than its check interval, idle or busy.
///
/// A passdb whose data lives outside the process (a file that may be edited or replaced, a store the
/// CLI writes) checks it for changes at most once per `interval`. The promise: a request that starts at
/// time T is answered from data that a check *started* after T − `interval` has confirmed (or reloaded).
/// When no such check exists, the request waits for one (run on a background thread, never on the
/// caller's) instead of being answered from the old data and checking afterwards; concurrent requests
/// share one check. So a change on disk is in force for every request that starts more than `interval`
/// after it, however long the daemon was quiet before.
public final class FreshnessGate: Sendable {
    /// How old the last check may be when a request starts.
    public let interval: Duration
    private let state: Mutex<State>

    private struct State {
        /// When the last finished check began to look at the data.
        var lastCheckStart: ContinuousClock.Instant
        var running = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }

    /// - Parameters:
    ///   - interval: the longest a change may go unnoticed.
    ///   - checkedAt: when the data in service was read (the initial load).
    public init(interval: Duration, checkedAt: ContinuousClock.Instant) {
        self.interval = interval
        self.state = Mutex(State(lastCheckStart: checkedAt))
    }

    /// True when a request starting now may use the data in service without waiting: the last check
    /// began less than `interval` ago. Cheap: for synchronous fast paths.
    public var isFresh: Bool {
        let now = ContinuousClock.now
        return state.withLock { now - $0.lastCheckStart < interval }
    }

    /// Returns once the data in service was confirmed by a check that began less than `interval` before
    /// this call: at once in the common case, else after a check (this caller's or a concurrent one's).
    /// `check` looks for a change and puts new data in service; it blocks, so it runs on a background
    /// thread.
    public func ensureFresh(check: @escaping @Sendable () -> Void) async {
        let entered = ContinuousClock.now
        while true {
            enum Step { case fresh, wait, run }
            let step = state.withLock { s -> Step in
                if entered - s.lastCheckStart < interval { return .fresh }
                if s.running { return .wait }
                s.running = true
                return .run
            }
            switch step {
            case .fresh:
                return
            case .wait:
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    let now = state.withLock { s -> Bool in
                        guard s.running else { return true }
                        s.waiters.append(c)
                        return false
                    }
                    if now { c.resume() }
                }
            case .run:
                let started = ContinuousClock.now
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    runOnBackgroundThread {
                        check()
                        c.resume()
                    }
                }
                finished(startedAt: started)
            }
        }
    }

    /// Starts a check in the background when one is due, without waiting for it (for answers that
    /// cannot wait, like which mechanisms to advertise).
    public func refreshInBackground(check: @escaping @Sendable () -> Void) {
        guard !isFresh else { return }
        Task { await self.ensureFresh(check: check) }
    }

    /// Runs `check` now on a background thread, without waiting for it, unless a check is running. A
    /// request that finds the data due meanwhile waits for it like for any check. It counts as a check
    /// (its start is recorded) only when it returns true: for a passdb that confirms data it already
    /// has, ahead of the next due check, so that requests need not wait for that check.
    public func checkInBackground(_ check: @escaping @Sendable () -> Bool) {
        let run = state.withLock { s -> Bool in
            if s.running { return false }
            s.running = true
            return true
        }
        guard run else { return }
        let started = ContinuousClock.now
        runOnBackgroundThread {
            let confirmed = check()
            self.finished(startedAt: confirmed ? started : nil)
        }
    }

    /// Records a check made outside the gate (a SIGHUP reload, the CLI, a test) that began at `start`.
    public func recordCheck(startedAt start: ContinuousClock.Instant) {
        state.withLock { s in
            if start > s.lastCheckStart { s.lastCheckStart = start }
        }
    }

    private func finished(startedAt start: ContinuousClock.Instant?) {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.running = false
            if let start, start > s.lastCheckStart { s.lastCheckStart = start }
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }
}

/// Runs `body` on a new detached POSIX thread (checks and reloads must not occupy an event loop, a
/// thread of Swift's cooperative pool or the executor's hashing threads). Falls back to the calling
/// thread if no thread can be made.
public func runOnBackgroundThread(_ body: @escaping @Sendable () -> Void) {
    final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let context = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(
        &thread, nil,
        { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, context
    )
    if rc == 0 {
        pthread_detach(thread)
    } else {
        Unmanaged<Box>.fromOpaque(context).takeRetainedValue().body()
    }
}

/// Runs a blocking `body` on its own thread (`runOnBackgroundThread`) and returns its result: for a
/// passdb load of a second or more that must not occupy a thread of the cooperative pool the requests
/// run on.
public func onBackgroundThread<T: Sendable, E: Error>(
    _ body: @escaping @Sendable () throws(E) -> T
) async throws(E) -> T {
    let result = await withCheckedContinuation { (c: CheckedContinuation<Result<T, E>, Never>) in
        runOnBackgroundThread { c.resume(returning: Result { () throws(E) -> T in try body() }) }
    }
    return try result.get()
}
