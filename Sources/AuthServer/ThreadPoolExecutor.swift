import NIOPosix
import Passdb

/// Runs password hashing and blocking passdb calls on a bounded pool of threads, never on an event loop.
struct ThreadPoolExecutor: BlockingExecutor {
    let pool: NIOThreadPool

    func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        do {
            return try await pool.runIfActive { body() }
        } catch {
            // Only when the pool was shut down (daemon stopping): finish the work inline.
            return body()
        }
    }
}
