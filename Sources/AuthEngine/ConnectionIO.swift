/// What the engine needs from the transport of one client connection. Implemented by the NIO handler;
/// every method is called on, and every callback runs on, that connection's own executor (its event loop).
public protocol ConnectionIO: AnyObject {
    /// Queues an encoded line (or several) for the client.
    func send(_ bytes: [UInt8])
    /// Runs `work` off the connection's executor, then `completion` back on it. If the connection is
    /// gone by then, `completion` may be dropped.
    func runDetached<T: Sendable>(_ work: @escaping @Sendable () async -> T, completion: @escaping (T) -> Void)
    /// Like `runDetached` for work that only waits (a database or directory round trip, a check handed
    /// to a thread pool): the transport may run it on the connection's own executor, which saves the
    /// hops to and from a shared thread. `work` must not block nor compute for long: anything heavy in it
    /// goes through a `BlockingExecutor` (as every passdb does).
    func runAwaiting<T: Sendable>(_ work: @escaping @Sendable () async -> T, completion: @escaping (T) -> Void)
    /// Calls `body` after `seconds` on the connection's executor; the handle cancels it.
    func schedule(after seconds: Double, _ body: @escaping () -> Void) -> any ScheduledWork
    /// Seconds on a monotonic clock.
    func now() -> Double
}

public protocol ScheduledWork {
    func cancel()
}

extension ConnectionIO {
    public func runAwaiting<T: Sendable>(_ work: @escaping @Sendable () async -> T, completion: @escaping (T) -> Void) {
        runDetached(work, completion: completion)
    }
}
