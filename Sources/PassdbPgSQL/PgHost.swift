import Logging
import NIOCore
import NIOPosix
import PostgresNIO
import Synchronization

/// One database host of `connect`, with its own pooled `PostgresClient` while it answers.
///
/// Health: a host starts `unknown` and is tried (`probe`: one connection, authenticated, then closed)
/// by the first request that needs it. A host that answered gets a client whose `run()` task this host
/// owns. A connection error or a lookup that outlives its time marks the host `down`: its client is shut
/// down, and a background task probes again with a growing pause (100 ms, doubling, at most 2 s). A
/// request that finds no host up probes at once (joining a probe under way: one at a time), so the
/// first request after the database is back succeeds. When a probe succeeds a fresh client takes over
/// (the pool's own retry pauses grow to a minute; a new pool has none).
final class PgHost: Sendable {
    enum Health: Sendable, Equatable {
        case unknown, up, down
    }

    private struct State: Sendable {
        var health = Health.unknown
        var client: PostgresClient?
        var runTask: Task<Void, Never>?
        var probe: Task<Bool, Never>?
        var lastProbeEnd: ContinuousClock.Instant?
        var failures = 0
        var lastError: String?
        var reconnector: Task<Void, Never>?
        var closed = false
        /// Run tasks of clients replaced or shut down, until they end (close() awaits them).
        var retired: [Int: Task<Void, Never>] = [:]
        var nextRetiredID = 0
    }

    let endpoint: PgConnectString.Endpoint
    private let clientConfiguration: PostgresClient.Configuration
    private let connectionConfiguration: PostgresConnection.Configuration
    private let connectTimeout: Duration
    private let group: any EventLoopGroup
    /// For postgres-nio (warnings and errors only).
    private let logger: Logger
    /// For this host's state changes.
    private let stateLogger: Logger
    private let state = Mutex(State())

    init(
        endpoint: PgConnectString.Endpoint, connect: PgConnectString, tls: PostgresClient.Configuration.TLS,
        connectionTLS: PostgresConnection.Configuration.TLS, maxConnections: Int, queryTimeout: Duration,
        connectTimeout: Duration, group: any EventLoopGroup, logger: Logger
    ) {
        self.endpoint = endpoint
        self.connectTimeout = connectTimeout
        self.group = group
        // postgres-nio logs every failed connection attempt at info; saslgated logs the host's state.
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .warning)
        self.logger = quiet
        self.stateLogger = logger
        var client: PostgresClient.Configuration
        var single: PostgresConnection.Configuration
        switch endpoint {
        case .tcp(let host, let port):
            client = .init(host: host, port: port, username: connect.user, password: connect.password, database: connect.database, tls: tls)
            single = .init(host: host, port: port, username: connect.user, password: connect.password, database: connect.database, tls: connectionTLS)
        case .unixSocket(let path):
            client = .init(unixSocketPath: path, username: connect.user, password: connect.password, database: connect.database)
            single = .init(unixSocketPath: path, username: connect.user, password: connect.password, database: connect.database)
        }
        // The server ends a statement that runs past the lookup's time itself, so no query lingers.
        let startup = [("statement_timeout", "\(max(1, queryTimeout.milliseconds))"), ("application_name", "saslgated")]
        client.options.minimumConnections = 0
        client.options.maximumConnections = max(1, maxConnections)
        client.options.connectTimeout = connectTimeout
        client.options.connectionIdleTimeout = .seconds(60)
        client.options.keepAliveBehavior = .init(frequency: .seconds(30))
        client.options.additionalStartupParameters = startup
        single.options.connectTimeout = .milliseconds(connectTimeout.milliseconds)
        single.options.additionalStartupParameters = startup
        self.clientConfiguration = client
        self.connectionConfiguration = single
    }

    var health: Health { state.withLock { $0.health } }
    var lastError: String? { state.withLock { $0.lastError } }

    /// The client while the host is up.
    var client: PostgresClient? {
        state.withLock { $0.health == .up ? $0.client : nil }
    }

    /// Connects once (authentication included); on success the host is up with a fresh client. Only one
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
            let connection = try await PostgresConnection.connect(
                on: group.any(), configuration: connectionConfiguration, id: 0, logger: logger)
            try? await connection.close()
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        let (ok, retiring) = state.withLock { s -> (Bool, Task<Void, Never>?) in
            s.probe = nil
            s.lastProbeEnd = .now
            guard !s.closed else { return (false, nil) }
            switch outcome {
            case .success:
                var old: Task<Void, Never>?
                if s.health != .up {
                    old = s.runTask
                    let client = PostgresClient(configuration: clientConfiguration, eventLoopGroup: group, backgroundLogger: logger)
                    s.client = client
                    s.runTask = Task { await client.run() }
                    s.health = .up
                }
                s.failures = 0
                s.lastError = nil
                s.reconnector?.cancel()
                s.reconnector = nil
                return (true, old)
            case .failure(let error):
                s.health = .down
                s.failures += 1
                s.lastError = PgErrors.describe(error)
                return (false, nil)
            }
        }
        if let retiring { retire(retiring) }
        if ok {
            stateLogger.info("pgsql host answers", metadata: ["pgsql.host": "\(endpoint)"])
        } else {
            startReconnector()
        }
        return ok
    }

    /// A lookup on this host failed at the connection level or ran out of time: shut its client down and
    /// reconnect in the background.
    func markDown(_ why: String) {
        let old = state.withLock { s -> Task<Void, Never>? in
            guard s.health == .up, !s.closed else { return nil }
            s.health = .down
            s.lastError = why
            s.failures = 1
            s.lastProbeEnd = nil
            let old = s.runTask
            s.runTask = nil
            s.client = nil
            return old
        }
        guard let old else { return }
        stateLogger.error("pgsql host is down, reconnecting in the background: \(why)", metadata: ["pgsql.host": "\(endpoint)"])
        retire(old)
        startReconnector()
    }

    /// Cancels an old client's run task (the pool closes its connections) and keeps it until it ends.
    private func retire(_ runTask: Task<Void, Never>) {
        runTask.cancel()
        let id = state.withLock { s in
            s.nextRetiredID += 1
            s.retired[s.nextRetiredID] = runTask
            return s.nextRetiredID
        }
        Task {
            await runTask.value
            self.state.withLock { _ = $0.retired.removeValue(forKey: id) }
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

    /// Shuts the client and the background tasks down and waits for the pool to close its connections.
    func close() async {
        let (tasks, probe) = state.withLock { s -> ([Task<Void, Never>], Task<Bool, Never>?) in
            s.closed = true
            s.health = .down
            s.client = nil
            var tasks = Array(s.retired.values)
            if let run = s.runTask { tasks.append(run) }
            s.runTask = nil
            s.retired = [:]
            s.reconnector?.cancel()
            s.reconnector = nil
            return (tasks, s.probe)
        }
        probe?.cancel()
        _ = await probe?.value
        for task in tasks {
            task.cancel()
            await task.value
        }
    }
}

extension Duration {
    /// Whole milliseconds (rounded down).
    var milliseconds: Int64 {
        components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
    }
}
