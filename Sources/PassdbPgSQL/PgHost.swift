import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

/// One database host of `connect`, with its connections (one `PgLoopPool` per event loop) while it
/// answers.
///
/// Health: a host starts `unknown` and is tried (`probe`: one connection, authenticated, then closed)
/// by the first request that needs it. A host that answered is `up` in a new generation (`epoch`); its
/// pools are made on demand, one per event loop that asks. A connection error or a lookup that outlives
/// its time marks the host `down` (only if it happened in the current generation): its pools are shut
/// down, and a background task probes again with a growing pause (100 ms, doubling, at most 2 s). A
/// request that finds no host up probes at once (joining a probe under way: one at a time), so the
/// first request after the database is back succeeds.
final class PgHost: Sendable {
    enum Health: Sendable, Equatable {
        case unknown, up, down
    }

    private struct State: Sendable {
        var health = Health.unknown
        var epoch = 0
        var pools: [ObjectIdentifier: PgLoopPool] = [:]
        var probe: Task<Bool, Never>?
        var failures = 0
        var lastError: String?
        var reconnector: Task<Void, Never>?
        var closed = false
        /// Shutdowns of pools of an older generation, until they end (close() awaits them).
        var retired: [Int: Task<Void, Never>] = [:]
        var nextRetiredID = 0
    }

    let endpoint: PgConnectString.Endpoint
    private let connector: PgConnector
    private let query: SQLTemplate
    /// Whether the query's batch form can be prepared on this host (shared by its pools).
    private let batchSupport = PgBatchSupport()
    private let poolSize: Int
    private let group: any EventLoopGroup
    /// For postgres-nio (warnings and errors only).
    private let logger: Logger
    /// For this host's state changes.
    private let stateLogger: Logger
    private let state = Mutex(State())

    init(
        endpoint: PgConnectString.Endpoint, connect: PgConnectString, tls: PostgresConnection.Configuration.TLS,
        query: SQLTemplate, poolSize: Int, queryTimeout: Duration, connectTimeout: Duration, group: any EventLoopGroup,
        logger: Logger
    ) {
        self.endpoint = endpoint
        self.query = query
        self.poolSize = poolSize
        self.group = group
        // postgres-nio logs every failed connection attempt at info; saslgated logs the host's state.
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .warning)
        self.logger = quiet
        self.stateLogger = logger
        var single: PostgresConnection.Configuration
        switch endpoint {
        case .tcp(let host, let port):
            single = .init(host: host, port: port, username: connect.user, password: connect.password, database: connect.database, tls: tls)
        case .unixSocket(let path):
            single = .init(unixSocketPath: path, username: connect.user, password: connect.password, database: connect.database)
        }
        // The server ends a statement that runs past the lookup's time itself, so no query lingers: half a
        // second after saslgated has answered (its own deadline, checked every 50 ms, comes first).
        let startup = [("statement_timeout", "\(max(1, queryTimeout.milliseconds) + 500)"), ("application_name", "saslgated")]
        single.options.connectTimeout = .milliseconds(min(connectTimeout, queryTimeout).milliseconds)
        single.options.additionalStartupParameters = startup
        self.connector = PgConnector(endpoint: endpoint, configuration: single)
    }

    var health: Health { state.withLock { $0.health } }
    var lastError: String? { state.withLock { $0.lastError } }
    var isUp: Bool { state.withLock { $0.health == .up } }

    /// The connections on `loop` while the host is up (made on first use); nil while it is not. Without
    /// a loop (a caller off the event loops: a SCRAM step, the CLI's checks) any loop's pool will do,
    /// so such callers add no connections of their own.
    func pool(on currentLoop: (any EventLoop)?) -> PgLoopPool? {
        state.withLock { s in
            guard s.health == .up, !s.closed else { return nil }
            if currentLoop == nil, let any = s.pools.values.first { return any }
            let loop = currentLoop ?? group.next()
            let key = ObjectIdentifier(loop)
            if let pool = s.pools[key] { return pool }
            let pool = PgLoopPool(
                loop: loop, epoch: s.epoch, connector: connector, query: query, batchSupport: batchSupport, size: poolSize,
                host: "\(endpoint)", logger: logger)
            s.pools[key] = pool
            return pool
        }
    }

    /// Connects once (authentication included); on success the host is up in a new generation. Only one
    /// probe runs at a time; callers join it.
    func probe() async -> Bool {
        let task = state.withLock { s -> Task<Bool, Never>? in
            guard !s.closed else { return nil }
            if let p = s.probe { return p }
            let p = Task { await self.connectOnce() }
            s.probe = p
            return p
        }
        guard let task else { return false }
        return await task.value
    }

    private func connectOnce() async -> Bool {
        let outcome: Result<Void, any Error>
        do {
            let connection = try await connector.connect(on: group.any(), logger: logger)
            try? await connection.close()
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        let ok = state.withLock { s -> Bool in
            s.probe = nil
            guard !s.closed else { return false }
            switch outcome {
            case .success:
                if s.health != .up {
                    s.health = .up
                    s.epoch += 1
                }
                s.failures = 0
                s.lastError = nil
                s.reconnector?.cancel()
                s.reconnector = nil
                return true
            case .failure(let error):
                s.health = .down
                s.failures += 1
                s.lastError = PgErrors.describe(error)
                return false
            }
        }
        if ok {
            stateLogger.info("pgsql host answers", metadata: ["pgsql.host": "\(endpoint)"])
        } else {
            startReconnector()
        }
        return ok
    }

    /// The next event loop's connections of this host after `pool` (in a fixed order, so repeated calls
    /// visit every loop), for a lookup whose own loop has no room for a connection (the server's
    /// connection limit); nil when there is no other.
    func pool(after pool: PgLoopPool) -> PgLoopPool? {
        state.withLock { s in
            guard s.health == .up, !s.closed else { return nil }
            let all = s.pools.values.sorted { ObjectIdentifier($0) < ObjectIdentifier($1) }
            guard all.count > 1 else { return nil }
            let i = all.firstIndex { $0 === pool } ?? -1
            return all[(i + 1) % all.count]
        }
    }

    /// A lookup on this host (in generation `epoch`) failed at the connection level or ran out of time:
    /// shut its connections down and reconnect in the background. A failure of an older generation's
    /// connection does not touch a host that has come back since.
    func markDown(_ why: String, epoch: Int) {
        let old = state.withLock { s -> [PgLoopPool]? in
            guard s.health == .up, !s.closed, s.epoch == epoch else { return nil }
            s.health = .down
            s.lastError = why
            s.failures = 1
            let old = Array(s.pools.values)
            s.pools = [:]
            return old
        }
        guard let old else { return }
        stateLogger.error("pgsql host is down, reconnecting in the background: \(why)", metadata: ["pgsql.host": "\(endpoint)"])
        retire(old)
        startReconnector()
    }

    /// Shuts old pools down and keeps the shutdown until it ends.
    private func retire(_ pools: [PgLoopPool]) {
        state.withLock { s in
            s.nextRetiredID += 1
            let id = s.nextRetiredID
            // The task's removal waits for this lock, so it always finds its entry.
            s.retired[id] = Task {
                for pool in pools { try? await pool.shutdown().get() }
                self.state.withLock { _ = $0.retired.removeValue(forKey: id) }
            }
        }
    }

    private func startReconnector() {
        state.withLock { s in
            guard !s.closed, s.reconnector == nil, s.health != .up else { return }
            s.reconnector = Task {
                while !Task.isCancelled {
                    let failures = self.state.withLock { $0.failures }
                    let pause = Duration.milliseconds(min(2000, 100 << min(max(failures - 1, 0), 5)))
                    try? await Task.sleep(for: pause)
                    if Task.isCancelled { return }
                    if await self.probe() { return }
                }
            }
        }
    }

    /// The passdb was replaced by a reload: each pool closes its idle connections now and the others as
    /// their lookups end.
    func retire() async {
        let pools = state.withLock { Array($0.pools.values) }
        for pool in pools { try? await pool.retire().get() }
    }

    /// Shuts the connections and the background tasks down and waits for the connections to close.
    func close() async {
        let (tasks, pools, probe) = state.withLock { s -> ([Task<Void, Never>], [PgLoopPool], Task<Bool, Never>?) in
            s.closed = true
            s.health = .down
            let tasks = Array(s.retired.values)
            let pools = Array(s.pools.values)
            s.pools = [:]
            s.retired = [:]
            s.reconnector?.cancel()
            s.reconnector = nil
            return (tasks, pools, s.probe)
        }
        probe?.cancel()
        _ = await probe?.value
        for pool in pools { try? await pool.shutdown().get() }
        for task in tasks { await task.value }
    }
}

extension Duration {
    /// Whole milliseconds (rounded down).
    var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
