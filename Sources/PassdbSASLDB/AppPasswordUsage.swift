import AuthCore
import Logging
import Passdb
import Synchronization

/// Last use of app passwords (time and client address), written in batches: a login only updates an
/// in-memory map; a timer (every `interval`) and `close` write the map in one transaction, on the
/// executor. At most `maxPending` distinct app passwords wait; more are dropped until the next flush
/// (counted and logged). The daemon's store connection for this is a writer opened per flush: a daemon
/// that may not write the store logs the problem once and keeps serving.
final class AppPasswordUsage: Sendable {
    struct Key: Hashable, Sendable {
        var user: SASLDBUser
        var name: String
    }

    struct Use: Sendable {
        var time: Int64
        var ip: String?
    }

    static let maxPending = 10_000

    private let path: String
    private let interval: Duration
    private let executor: any BlockingExecutor
    private let logger: Logger
    private let name: String
    private let busyTimeoutMilliseconds: Int32
    private struct State: Sendable {
        var pending: [Key: Use] = [:]
        var dropped = 0
        var timer: Task<Void, Never>?
        var closed = false
        var lastProblem: String?
    }
    private let state = Mutex(State())

    init(path: String, name: String, interval: Duration, executor: any BlockingExecutor, logger: Logger, busyTimeoutMilliseconds: Int32) {
        self.path = path
        self.name = name
        self.interval = interval
        self.executor = executor
        self.logger = logger
        self.busyTimeoutMilliseconds = busyTimeoutMilliseconds
    }

    /// Remembers one use; starts the flush timer on the first.
    func record(user: SASLDBUser, name: String, time: Int64, ip: String?) {
        let key = Key(user: user, name: name)
        let ip = ip.map { String($0.prefix(64)) }
        state.withLock { s in
            guard !s.closed else { return }
            if s.pending[key] != nil || s.pending.count < AppPasswordUsage.maxPending {
                s.pending[key] = Use(time: time, ip: ip)
            } else {
                s.dropped += 1
            }
            if s.timer == nil {
                s.timer = Task.detached { [weak self, interval] in
                    while !Task.isCancelled {
                        try? await Task.sleep(for: interval)
                        guard let self, !Task.isCancelled else { return }
                        await self.flush()
                    }
                }
            }
        }
    }

    /// Uses waiting to be written (tests).
    var pendingCount: Int { state.withLock { $0.pending.count } }

    /// Writes what is pending, in one transaction, off the caller's thread.
    func flush() async {
        let (batch, dropped) = state.withLock { s -> ([Key: Use], Int) in
            defer {
                s.pending.removeAll()
                s.dropped = 0
            }
            return (s.pending, s.dropped)
        }
        if dropped > 0 {
            logger.warning(
                "\(dropped) app password uses were not recorded (more than \(AppPasswordUsage.maxPending) waiting)",
                metadata: ["passdb": "\(name)"])
        }
        guard !batch.isEmpty else { return }
        let problem = await executor.run { [path, busyTimeoutMilliseconds] () -> String? in
            do throws(SASLDBError) {
                try AppPasswordUsage.write(batch, path: path, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
                return nil
            } catch {
                return "\(error)"
            }
        }
        let report = state.withLock { s -> Bool in
            defer { s.lastProblem = problem }
            return problem != nil && problem != s.lastProblem
        }
        if report, let problem {
            logger.error(
                "cannot record the last use of app passwords (logins are not affected): \(problem); let the daemon's user write the store and its directory",
                metadata: ["passdb": "\(name)"])
        }
    }

    /// Stops the timer and writes what is pending.
    func close() async {
        let timer = state.withLock { s -> Task<Void, Never>? in
            s.closed = true
            defer { s.timer = nil }
            return s.timer
        }
        timer?.cancel()
        await flush()
    }

    static func write(_ batch: [Key: Use], path: String, busyTimeoutMilliseconds: Int32) throws(SASLDBError) {
        let (c, _) = try SASLDBStore.openWriter(path: path, create: false, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
        try SASLDBStore.inWriteTransaction(c, path: path) { () throws(SASLDBError) in
            do throws(SQLiteError) {
                let s = try c.statement(SASLDBAppPasswords.touchSQL)
                for (key, use) in batch {
                    defer { s.reset() }
                    try s.bind(1, key.user.authid)
                    try s.bind(2, key.user.realm)
                    try s.bind(3, key.name)
                    try s.bind(4, use.time)
                    if let ip = use.ip { try s.bind(5, ip) }
                    try s.run()
                }
            } catch {
                throw .from(error, path: path)
            }
        }
    }
}
