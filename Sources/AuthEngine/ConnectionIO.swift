/// What the engine needs from the transport of one client connection. Implemented by the NIO handler;
/// every method is called on, and every callback runs on, that connection's own executor (its event loop).
public protocol ConnectionIO: AnyObject {
    /// Queues an encoded line (or several) for the client.
    func send(_ bytes: [UInt8])
    /// Runs `work` off the connection's executor, then `completion` back on it. If the connection is
    /// gone by then, `completion` may be dropped.
    func runDetached<T: Sendable>(_ work: @escaping @Sendable () async -> T, completion: @escaping (T) -> Void)
    /// Calls `body` after `seconds` on the connection's executor; the handle cancels it.
    func schedule(after seconds: Double, _ body: @escaping () -> Void) -> any ScheduledWork
    /// Seconds on a monotonic clock.
    func now() -> Double
}

public protocol ScheduledWork {
    func cancel()
}
