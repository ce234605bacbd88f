import Logging
import NIOCore
import PostgresNIO

/// The connections of one database host on one event loop, each with `password_query` prepared once.
///
/// A lookup runs on the event loop of the client connection that asked for it, on a database
/// connection of that same loop: no thread hand-over on the way to PostgreSQL or back, and no parse or
/// plan per lookup (Bind/Execute of the statement prepared when the connection was made). Up to `size`
/// connections are opened on demand: a lookup takes an idle one, or opens a new one while all are busy
/// and there are fewer than `size`, or else queues on the least busy (PostgreSQL runs one statement at a
/// time per connection; the queue is bounded by the requests the auth clients may have in flight).
///
/// Failures: a connection that fails, closes or is closed by the server leaves the pool at once (the
/// next lookup opens a fresh one). A lookup past its deadline answers `.timedOut` and closes its
/// connection (a statement is still running there; `statement_timeout` ends it on the server).
///
/// All mutable state is touched on `loop` only (every entry point hops there first).
final class PgLoopPool: @unchecked Sendable {
    let loop: any EventLoop
    /// The host's generation this pool belongs to (see `PgHost`): failures of an old pool do not mark
    /// a host down that has since come back.
    let epoch: Int
    private let connector: PgConnector
    private let sql: String
    private let size: Int
    private let host: String
    private let logger: Logger

    // On `loop` only:
    private var slots: [Slot] = []
    private var closed = false
    /// A reload replaced the passdb: connections close as soon as they are idle, no new one is opened
    /// while one is left.
    private var retiring = false
    private var nextID = 0
    /// When opening a connection last failed for lack of room (the server's `max_connections` or the
    /// role's connection limit, usually). Meanwhile lookups are served on the connections there are, and
    /// no further one is tried before `growthPause` has passed (`firstConnectionPause` while this loop
    /// has none: other loops' connections serve it, and room may come back any moment).
    private var growthFailedAt: NIODeadline?
    private var lastGrowthFailureWasLimit = false
    private var limitLoggedAt: NIODeadline?
    static let growthPause = TimeAmount.seconds(10)
    static let firstConnectionPause = TimeAmount.milliseconds(250)

    /// One database connection: made, authenticated and the statement prepared once `ready` succeeds.
    private final class Slot: @unchecked Sendable {
        var ready: EventLoopFuture<PreparedQuery>?
        var connection: PostgresConnection?
        var inFlight = 0
        /// Answered at least once: a failure now may be a connection that went stale while idle.
        var used = false
        /// The connection was made (authenticated), whatever came after.
        var connected = false
    }

    init(
        loop: any EventLoop, epoch: Int, connector: PgConnector, sql: String, size: Int,
        host: String, logger: Logger
    ) {
        self.loop = loop
        self.host = host
        self.epoch = epoch
        self.connector = connector
        self.sql = sql
        self.size = max(1, size)
        self.logger = logger
    }

    /// Runs the prepared statement with `binds` (in parameter order) and reads at most two rows.
    func lookup(_ binds: [PostgresData], deadline: NIODeadline) -> EventLoopFuture<PgSQLPassdb.Attempt> {
        if loop.inEventLoop { return lookupOnLoop(binds, deadline: deadline) }
        return loop.flatSubmit { self.lookupOnLoop(binds, deadline: deadline) }
    }

    /// Closes the idle connections now and the others when their lookups have ended.
    func retire() -> EventLoopFuture<Void> {
        loop.submit {
            self.retiring = true
            for slot in self.slots where slot.inFlight == 0 && slot.connected { self.drop(slot) }
        }
    }

    /// Closes every connection; later lookups answer a host error.
    func shutdown() -> EventLoopFuture<Void> {
        loop.flatSubmit {
            self.closed = true
            let connections = self.slots.compactMap(\.connection)
            self.slots = []
            let closing = connections.map { $0.close().recover { _ in } }
            return EventLoopFuture.andAllComplete(closing, on: self.loop)
        }
    }

    private func lookupOnLoop(
        _ binds: [PostgresData], deadline: NIODeadline, redispatched: Int = 0
    ) -> EventLoopFuture<PgSQLPassdb.Attempt> {
        guard !closed else {
            return loop.makeSucceededFuture(.hostError("the host's connections were closed", reused: false))
        }
        if slots.isEmpty && !mayGrow && lastGrowthFailureWasLimit {
            return loop.makeSucceededFuture(.connectionLimit("the server has no room for a connection (connection limit)"))
        }
        let slot = pick(preferConnected: redispatched > 0)
        guard let ready = slot.ready else {
            return loop.makeSucceededFuture(.hostError("no connection", reused: false))
        }
        slot.inFlight += 1
        let reused = slot.used
        let promise = loop.makePromise(of: PgSQLPassdb.Attempt.self)
        let collector = RowCollector()
        watch(Waiting(deadline: deadline, collector: collector, promise: promise, slot: slot))
        ready.flatMap { prepared in
            prepared.execute(binds) { row in collector.take(row) }
        }.whenComplete { result in
            slot.inFlight -= 1
            if self.retiring && slot.inFlight == 0 { self.drop(slot) }
            guard !collector.answered else { return }
            collector.answered = true
            switch result {
            case .success:
                slot.used = true
                promise.succeed(collector.attempt)
            case .failure(let error):
                let why = PgErrors.describe(error)
                if PgErrors.kind(error) == .host {
                    self.drop(slot)
                    if !slot.connected, redispatched < 3, !self.slots.isEmpty {
                        // One more connection could not be opened while others work or are being
                        // opened (a connection limit, usually): this lookup goes to those, and the pool
                        // stops growing for a while.
                        self.growthFailed(why, limit: PgErrors.isConnectionLimit(error))
                        self.lookupOnLoop(binds, deadline: deadline, redispatched: redispatched + 1).cascade(to: promise)
                        return
                    }
                    if !slot.connected && PgErrors.isConnectionLimit(error) {
                        // No room for this loop's first connection: the host works (other loops'
                        // connections may take the lookup), it is not down.
                        self.growthFailed(why, limit: true)
                        promise.succeed(.connectionLimit(why))
                        return
                    }
                    if reused {
                        // An idle connection failed: the others idle as long may be as stale (a
                        // firewall's idle timeout ends them all), so the retry gets a fresh one.
                        for other in self.slots where other.inFlight == 0 && other.used { self.drop(other) }
                    }
                    promise.succeed(.hostError(why, reused: reused))
                } else {
                    // The statement is wrong (or could not be prepared): the configuration needs fixing.
                    promise.succeed(.statementError(why))
                }
            }
        }
        return promise.futureResult
    }

    /// A lookup under way, for the deadline sweep.
    private struct Waiting {
        let deadline: NIODeadline
        let collector: RowCollector
        let promise: EventLoopPromise<PgSQLPassdb.Attempt>
        let slot: Slot
    }

    /// Lookups under way, oldest first (on `loop` only).
    private var waiting: [Waiting] = []
    private var sweepArmed = false
    /// How often the lookups under way are checked against their deadlines: one timer per pool, not one
    /// per lookup (a timer per lookup cost a tenth of the CPU under load). A timeout is answered at most
    /// this late.
    static let sweepInterval = TimeAmount.milliseconds(50)

    private func watch(_ lookup: Waiting) {
        waiting.append(lookup)
        armSweep()
    }

    private func armSweep() {
        guard !sweepArmed, !waiting.isEmpty else { return }
        sweepArmed = true
        loop.scheduleTask(in: Self.sweepInterval) {
            self.sweepArmed = false
            self.sweep()
            self.armSweep()
        }
    }

    /// Forgets answered lookups; answers `.timedOut` to those past their deadline and closes their
    /// connections (a statement is still running there).
    private func sweep() {
        let now = NIODeadline.now()
        var expired: [Waiting] = []
        waiting.removeAll { w in
            if w.collector.answered { return true }
            if w.deadline <= now {
                expired.append(w)
                return true
            }
            return false
        }
        for w in expired where !w.collector.answered {
            w.collector.answered = true
            drop(w.slot)
            w.promise.succeed(.timedOut)
        }
    }

    /// An idle connection, else a new one while there are fewer than `size`, else the least busy.
    /// `preferConnected`: among the connections already made, if there are any (for a lookup whose
    /// connection could not be opened).
    private func pick(preferConnected: Bool = false) -> Slot {
        if preferConnected, let best = slots.filter(\.connected).min(by: { $0.inFlight < $1.inFlight }) {
            return best
        }
        var best: Slot?
        for slot in slots where best == nil || slot.inFlight < best!.inFlight {
            best = slot
            if slot.inFlight == 0 { break }
        }
        if let best, best.inFlight == 0 || slots.count >= size || !mayGrow || retiring { return best }
        let slot = Slot()
        nextID &+= 1
        let id = nextID
        let sql = self.sql
        slot.ready = connector.connect(on: loop, id: id, logger: logger)
            .flatMapErrorThrowing { throw ConnectFailure(underlying: $0) }
            .flatMap { connection in
                slot.connection = connection
                slot.connected = true
                connection.closeFuture.whenComplete { _ in self.drop(slot) }
                if self.closed || !self.slots.contains(where: { $0 === slot }) {
                    // Dropped (or shut down) while connecting: do not keep it.
                    return connection.close().flatMapThrowing { throw PoolClosed() }
                }
                return connection.prepare(query: sql)
                    .flatMapError { error in connection.close().flatMapThrowing { throw error } }
            }
        // A connection that could not be made or prepared is never used again.
        slot.ready?.whenFailure { _ in self.drop(slot) }
        slots.append(slot)
        return slot
    }

    private var mayGrow: Bool {
        guard let failed = growthFailedAt else { return true }
        return NIODeadline.now() - failed >= (slots.isEmpty ? Self.firstConnectionPause : Self.growthPause)
    }

    private func growthFailed(_ why: String, limit: Bool) {
        let now = NIODeadline.now()
        growthFailedAt = now
        lastGrowthFailureWasLimit = limit
        // At most once per growthPause: the lookups queued on the connection that could not be made fail
        // together, and a loop without connections tries again every firstConnectionPause.
        if let logged = limitLoggedAt, now - logged < Self.growthPause { return }
        limitLoggedAt = now
        let open = slots.count
        let next = open == 0
            ? "lookups go to other event loops' connections; another try in \(Self.firstConnectionPause.nanoseconds / 1_000_000) ms"
            : "lookups wait for those; another try in \(Self.growthPause.nanoseconds / 1_000_000_000) s"
        logger.warning(
            "pgsql: could not open one more connection (\(open) open on this event loop); \(next): \(why)",
            metadata: ["pgsql.host": "\(host)"])
    }

    /// Takes `slot` out of the pool and closes its connection (idempotent).
    private func drop(_ slot: Slot) {
        slots.removeAll { $0 === slot }
        if let connection = slot.connection {
            slot.connection = nil
            connection.close().whenComplete { _ in }
        }
    }
}

private struct PoolClosed: Error, CustomStringConvertible {
    var description: String { "the connection pool was closed" }
}

/// Reads the rows of one lookup on the event loop: keeps two (enough to refuse a second), decodes the
/// `password`, `user` and `allow_nets` columns.
private final class RowCollector: @unchecked Sendable {
    var answered = false
    private var rows: [PgSQLPassdb.Row] = []
    private var problem: String?

    func take(_ row: PostgresRow) {
        guard problem == nil, rows.count < 2 else { return }
        let cells = row.makeRandomAccess()
        guard cells.contains("password") else {
            problem = "the result has no 'password' column; select it (e.g. SELECT pw AS password ...)"
            return
        }
        func text(_ column: String) throws -> String? {
            guard cells.contains(column) else { return nil }
            return try cells[column].decode(String?.self)
        }
        do {
            rows.append(PgSQLPassdb.Row(password: try text("password"), user: try text("user"), allowNets: try text("allow_nets")))
        } catch {
            problem = "a column is not text; cast password, user and allow_nets to text (e.g. allow_nets::text)"
        }
    }

    var attempt: PgSQLPassdb.Attempt {
        if let problem { return .statementError(problem) }
        return .rows(rows)
    }
}
