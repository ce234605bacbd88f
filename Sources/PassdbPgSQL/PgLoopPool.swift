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
/// Batches: while a connection runs a statement, the lookups that come for it wait, and when the
/// statement ends they go together as one execution of the batch form of `password_query` (see
/// `SQLTemplate.batchSQL(parameterTypes:)`), its variables cast to the plain statement's parameter
/// types: each row says which lookup it answers. Under load, one round trip and one statement serve
/// many lookups; an idle connection still takes a lookup at once, alone. A batch that fails with a
/// statement error (a value of one lookup, such as a failing cast) runs again one lookup at a time, so
/// no lookup fails for another's value. A query without a safe batch form (see `prepareBatch`) runs one
/// lookup at a time (logged once per host).
///
/// Failures: a connection that fails, closes or is closed by the server leaves the pool at once (the
/// next lookup opens a fresh one; lookups waiting for it go to another). A lookup past its deadline
/// answers `.timedOut` and closes its connection if its statement was sent (a statement is still
/// running there; `statement_timeout` ends it on the server).
///
/// All mutable state is touched on `loop` only (every entry point hops there first).
final class PgLoopPool: @unchecked Sendable {
    let loop: any EventLoop
    /// The host's generation this pool belongs to (see `PgHost`): failures of an old pool do not mark
    /// a host down that has since come back.
    let epoch: Int
    private let connector: PgConnector
    /// `password_query`: its SQL, and its batch form.
    private let query: SQLTemplate
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
    /// The most lookups one batch carries (the rest wait for the next).
    static let maxBatch = 64
    /// Whether the batch form could be prepared on this host (a refusal is logged once per host).
    private let batchSupport: PgBatchSupport
    private var batchRefused: Bool { batchSupport.isRefused }

    /// One database connection: made, authenticated and the statement prepared once `ready` succeeds.
    private final class Slot: @unchecked Sendable {
        var ready: EventLoopFuture<PreparedQuery>?
        var connection: PostgresConnection?
        /// The batch form, prepared on this connection (nil: not available).
        var batch: PreparedQuery?
        /// Statements sent and not yet ended.
        var inFlight = 0
        /// Lookups waiting for the statement under way to end, to go as one batch.
        var pending: [Job] = []
        /// Answered at least once: a failure now may be a connection that went stale while idle.
        var used = false
        /// The connection was made (authenticated), whatever came after.
        var connected = false
        /// How busy it is, for choosing one.
        var load: Int { inFlight + pending.count }
    }

    /// One lookup: its values, its answer, and the rows read for it.
    private final class Job: @unchecked Sendable {
        let binds: [PostgresData]
        let deadline: NIODeadline
        let redispatched: Int
        let promise: EventLoopPromise<PgSQLPassdb.Attempt>
        var collector = RowCollector()
        /// Answered (by its statement, its deadline, or a failure): nothing more happens to it.
        var answered = false
        /// Waiting in a slot's `pending`, not yet sent.
        var queued = false
        init(binds: [PostgresData], deadline: NIODeadline, redispatched: Int, promise: EventLoopPromise<PgSQLPassdb.Attempt>) {
            self.binds = binds
            self.deadline = deadline
            self.redispatched = redispatched
            self.promise = promise
        }

        func answer(_ attempt: PgSQLPassdb.Attempt) {
            guard !answered else { return }
            answered = true
            promise.succeed(attempt)
        }
    }

    init(
        loop: any EventLoop, epoch: Int, connector: PgConnector, query: SQLTemplate,
        batchSupport: PgBatchSupport, size: Int,
        host: String, logger: Logger
    ) {
        self.loop = loop
        self.host = host
        self.epoch = epoch
        self.connector = connector
        self.query = query
        self.batchSupport = batchSupport
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
            let waiting = self.slots.flatMap(\.pending)
            for slot in self.slots { slot.pending = [] }
            self.slots = []
            for job in waiting { job.answer(.hostError("the host's connections were closed", reused: false)) }
            let closing = connections.map { $0.close().recover { _ in } }
            return EventLoopFuture.andAllComplete(closing, on: self.loop)
        }
    }

    private func lookupOnLoop(
        _ binds: [PostgresData], deadline: NIODeadline, redispatched: Int = 0
    ) -> EventLoopFuture<PgSQLPassdb.Attempt> {
        let job = Job(binds: binds, deadline: deadline, redispatched: redispatched, promise: loop.makePromise())
        dispatch(job)
        return job.promise.futureResult
    }

    /// Sends `job` on a connection: at once when one is free (or being opened), else with the next
    /// batch of the least busy.
    private func dispatch(_ job: Job) {
        guard job.deadline > .now() else {
            // Redispatched after its time was up (the sweep had not come yet): it must not occupy, or
            // at the next sweep close, a connection that works.
            job.answer(.timedOut)
            return
        }
        guard !closed else {
            job.answer(.hostError("the host's connections were closed", reused: false))
            return
        }
        if slots.isEmpty && !mayGrow && lastGrowthFailureWasLimit {
            job.answer(.connectionLimit("the server has no room for a connection (connection limit)"))
            return
        }
        let slot = pick(preferConnected: job.redispatched > 0)
        guard slot.ready != nil else {
            job.answer(.hostError("no connection", reused: false))
            return
        }
        watch(Waiting(job: job, slot: slot))
        if slot.inFlight > 0, slot.batch != nil, !batchRefused {
            job.queued = true
            slot.pending.append(job)
        } else {
            runAlone(job, on: slot)
        }
    }

    /// Runs the prepared statement for one lookup.
    private func runAlone(_ job: Job, on slot: Slot) {
        guard let ready = slot.ready else {
            job.answer(.hostError("no connection", reused: false))
            return
        }
        slot.inFlight += 1
        let reused = slot.used
        let collector = job.collector
        ready.flatMap { prepared in
            prepared.execute(job.binds) { row in collector.take(row.makeRandomAccess()) }
        }.whenComplete { result in
            slot.inFlight -= 1
            if !job.answered {
                switch result {
                case .success:
                    slot.used = true
                    job.answer(collector.attempt)
                case .failure(let error):
                    self.failed(job, on: slot, error: error, reused: reused)
                }
            }
            self.statementEnded(on: slot)
        }
    }

    /// What a failed statement of one lookup means: the host's trouble (the lookup may go to another
    /// connection) or the statement's.
    private func failed(_ job: Job, on slot: Slot, error: any Error, reused: Bool) {
        let why = PgErrors.describe(error)
        guard PgErrors.kind(error) == .host else {
            // The statement is wrong (or could not be prepared): the configuration needs fixing.
            job.answer(.statementError(why))
            return
        }
        drop(slot)
        if !slot.connected, job.redispatched < 3, !slots.isEmpty {
            // One more connection could not be opened while others work or are being opened (a
            // connection limit, usually): this lookup goes to those, and the pool stops growing for a
            // while.
            growthFailed(why, limit: PgErrors.isConnectionLimit(error))
            redispatch(job)
            return
        }
        if !slot.connected && PgErrors.isConnectionLimit(error) {
            // No room for this loop's first connection: the host works (other loops' connections may
            // take the lookup), it is not down.
            growthFailed(why, limit: true)
            job.answer(.connectionLimit(why))
            return
        }
        if reused { dropIdleUsed() }
        job.answer(.hostError(why, reused: reused))
    }

    /// After a connection that had answered before failed: the others idle as long may be as stale (a
    /// firewall's idle timeout ends them all), so the retry gets a fresh one.
    private func dropIdleUsed() {
        for other in slots where other.load == 0 && other.used { drop(other) }
    }

    /// Runs the batch form once for `jobs` (two or more): parameter k is the array of every lookup's
    /// value k; each row goes to the lookup its index names.
    private func runBatch(_ jobs: [Job], on slot: Slot, batch: PreparedQuery) {
        slot.inFlight += 1
        let reused = slot.used
        let parameters = jobs[0].binds.count
        var binds: [PostgresData] = []
        binds.reserveCapacity(parameters)
        for k in 0..<parameters {
            binds.append(PostgresData(array: jobs.map { $0.binds[k] }, elementType: .text))
        }
        let collectors = jobs.map(\.collector)
        let stray = StrayRows()
        batch.execute(binds) { row in
            let cells = row.makeRandomAccess()
            // By position: the batch form puts the index first (a column of the same name from the
            // query itself could stand later).
            guard !cells.isEmpty, let text = try? cells[0].decode(String.self), let index = Int(text),
                index >= 1, index <= collectors.count
            else {
                stray.why = "no index from 1 to \(collectors.count) in \(SQLTemplate.batchIndexColumn)"
                return
            }
            collectors[index - 1].take(cells)
        }.whenComplete { result in
            slot.inFlight -= 1
            switch result {
            case .success where stray.why == nil:
                slot.used = true
                for job in jobs { job.answer(job.collector.attempt) }
            case .success:
                // A row without its lookup's index: nothing read in this batch is trusted.
                let why = "the batch query returned a row without a valid index (\(stray.why ?? "")); no row of that batch was used"
                for job in jobs { job.answer(.statementError(why)) }
            case .failure(let error) where PgErrors.kind(error) == .statement:
                // One lookup's value (a failing cast, say) must not fail the others: each runs alone,
                // on this connection, with what it read so far forgotten.
                for job in jobs where !job.answered {
                    job.collector = RowCollector()
                    if self.slots.contains(where: { $0 === slot }) { self.runAlone(job, on: slot) } else { self.redispatch(job) }
                }
            case .failure(let error):
                let why = PgErrors.describe(error)
                self.drop(slot)
                if reused { self.dropIdleUsed() }
                for job in jobs { job.answer(.hostError(why, reused: reused)) }
            }
            self.statementEnded(on: slot)
        }
    }

    /// After a statement on `slot` ended: the lookups that waited for it go as the next batch (one alone
    /// runs alone); a retiring pool closes the connection once nothing is left on it.
    private func statementEnded(on slot: Slot) {
        guard slots.contains(where: { $0 === slot }) else { return }
        slot.pending.removeAll { $0.answered }
        if !slot.pending.isEmpty {
            let jobs = Array(slot.pending.prefix(Self.maxBatch))
            slot.pending.removeFirst(jobs.count)
            for job in jobs { job.queued = false }
            if jobs.count > 1, let batch = slot.batch, !batchRefused {
                runBatch(jobs, on: slot, batch: batch)
            } else {
                for job in jobs { runAlone(job, on: slot) }
            }
            return
        }
        if retiring && slot.inFlight == 0 { drop(slot) }
    }

    /// A lookup not yet sent whose connection went away: it goes to another (it was never sent, so
    /// nothing is known of the host from it).
    private func redispatch(_ job: Job) {
        guard !job.answered else { return }
        job.answered = true
        job.queued = false
        lookupOnLoop(job.binds, deadline: job.deadline, redispatched: job.redispatched + 1).cascade(to: job.promise)
    }

    /// A lookup under way, for the deadline sweep.
    private struct Waiting {
        let job: Job
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
            if w.job.answered { return true }
            if w.job.deadline <= now {
                expired.append(w)
                return true
            }
            return false
        }
        for w in expired where !w.job.answered {
            if w.job.queued {
                // Never sent: the connection is fine, only this lookup's time is up.
                w.slot.pending.removeAll { $0 === w.job }
            } else {
                drop(w.slot)
            }
            w.job.answer(.timedOut)
        }
    }

    /// An idle connection, else a new one while there are fewer than `size`, else the least busy.
    /// `preferConnected`: among the connections already made, if there are any (for a lookup whose
    /// connection could not be opened).
    private func pick(preferConnected: Bool = false) -> Slot {
        if preferConnected, let best = slots.filter(\.connected).min(by: { $0.load < $1.load }) {
            return best
        }
        var best: Slot?
        for slot in slots where best == nil || slot.load < best!.load {
            best = slot
            if slot.load == 0 { break }
        }
        if let best, best.load == 0 || slots.count >= size || !mayGrow || retiring { return best }
        let slot = Slot()
        nextID &+= 1
        let id = nextID
        let sql = query.sql
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
                    .flatMap { prepared in
                        self.parameterTypes(on: connection)
                            .flatMap { types in self.prepareBatch(on: connection, slot: slot, types: types) }
                            .map { prepared }
                    }
                    .flatMapError { error in connection.close().flatMapThrowing { throw error } }
            }
        // A connection that could not be made or prepared is never used again.
        slot.ready?.whenFailure { _ in self.drop(slot) }
        slots.append(slot)
        return slot
    }

    /// What PostgreSQL made of one parameter of the prepared `password_query`.
    struct ParameterType: Equatable {
        /// As `format_type` writes it (visible-qualified, no type modifier).
        var name: String
        /// A string or enum type (or unknown): text bytes mean in its binary form what they mean as text.
        var textual: Bool
        /// Not a domain (a cast to a domain over varchar(n) would cut a value the plain statement refuses)
        /// and not `name` (a cast cuts at 63 bytes): the batch form may cast to it.
        var batchable: Bool
        /// `text` or unknown: the batch form's text element needs no cast.
        var isText: Bool
    }

    /// The types PostgreSQL gave the prepared `password_query`'s parameters (`$1` first), decided by
    /// type id on the server. saslgated sends every value as text bytes: a parameter of a type outside
    /// PostgreSQL's string and enum categories (an integer, inet, jsonb column compared with a variable)
    /// would read those bytes as that type's binary form (an error, or for some lengths a different
    /// value), so such a query is refused as a statement error that says how to write it. So is a
    /// server that does not list the statement (the check cannot be made: a pooler in transaction mode).
    private func parameterTypes(on connection: PostgresConnection) -> EventLoopFuture<[ParameterType]> {
        guard !query.parameters.isEmpty else { return loop.makeSucceededFuture([]) }
        func flags(_ condition: String) -> String {
            "array_to_string(ARRAY(SELECT CASE WHEN \(condition) THEN 't' ELSE 'f' END FROM unnest(s.parameter_types::oid[]) "
                + "WITH ORDINALITY AS p(t, n) JOIN pg_type y ON y.oid = p.t ORDER BY p.n), '')"
        }
        let sql = "SELECT array_to_string(ARRAY(SELECT format_type(p.t, -1) FROM unnest(s.parameter_types::oid[]) "
            + "WITH ORDINALITY AS p(t, n) ORDER BY p.n), E'\\x1f'), "
            + flags("y.typcategory IN ('S', 'E') OR y.oid = 'pg_catalog.unknown'::regtype") + ", "
            + flags("y.typtype <> 'd' AND y.oid <> 'pg_catalog.name'::regtype") + ", "
            + flags("y.oid IN ('pg_catalog.text'::regtype, 'pg_catalog.unknown'::regtype)")
            + " FROM pg_prepared_statements s WHERE s.statement = $1 ORDER BY s.prepare_time DESC LIMIT 1"
        var binds = PostgresBindings()
        binds.append(query.sql)
        let count = query.parameters.count
        return connection.query(PostgresQuery(unsafeSQL: sql, binds: binds), logger: logger).flatMapThrowing { result in
            var columns: [String] = []
            if let row = result.rows.first?.makeRandomAccess(), row.count == 4 {
                columns = (0..<4).compactMap { try? row[$0].decode(String.self) }
            }
            let names = columns.first.map { $0.split(separator: "\u{1f}", omittingEmptySubsequences: false).map(String.init) } ?? []
            guard columns.count == 4, names.count == count, columns.dropFirst().allSatisfy({ $0.count == count }) else {
                throw ParameterTypeRefused(
                    description: "the server does not list the prepared password_query, so its parameter types cannot be "
                        + "checked (a pooler in transaction mode?); connect to PostgreSQL directly or pool by session")
            }
            let (textual, batchable, isText) = (Array(columns[1]), Array(columns[2]), Array(columns[3]))
            let types = names.indices.map {
                ParameterType(name: names[$0], textual: textual[$0] == "t", batchable: batchable[$0] == "t", isText: isText[$0] == "t")
            }
            if let k = types.firstIndex(where: { !$0.textual }) {
                let use = self.query.parameters[k].spelled
                throw ParameterTypeRefused(
                    description: "password_query compares \(use) as \(types[k].name), but values are sent as text: write \(use)::text::\(types[k].name)")
            }
            return types
        }
    }

    /// Prepares the batch form on a new connection, each variable cast to the type PostgreSQL gave the
    /// plain statement's parameter (so both compare alike). Not when a parameter is a domain or `name`
    /// (see `ParameterType.batchable`). A statement error means the query cannot run in that form here;
    /// any other failure is the connection's. A refusal is logged once per host; lookups then run one
    /// at a time.
    private func prepareBatch(on connection: PostgresConnection, slot: Slot, types: [ParameterType]) -> EventLoopFuture<Void> {
        guard query.batchable, !batchRefused else { return loop.makeSucceededVoidFuture() }
        if let odd = types.first(where: { !$0.batchable }) {
            refuseBatches("a parameter is of type \(odd.name), a domain or name, which a cast could cut")
            return loop.makeSucceededVoidFuture()
        }
        guard let batchSQL = query.batchSQL(parameterTypes: types.map { $0.isText ? nil : $0.name }) else {
            refuseBatches("its parameter types (\(types.map(\.name).joined(separator: ", "))) cannot be written into it")
            return loop.makeSucceededVoidFuture()
        }
        return connection.prepare(query: batchSQL).map { slot.batch = $0 }.flatMapError { error in
            guard PgErrors.kind(error) == .statement else { return self.loop.makeFailedFuture(error) }
            self.refuseBatches(PgErrors.describe(error))
            return self.loop.makeSucceededVoidFuture()
        }
    }

    private func refuseBatches(_ why: String) {
        guard batchSupport.refuse() else { return }
        logger.warning(
            "pgsql: password_query cannot run as a batch (\(why)); lookups run one at a time",
            metadata: ["pgsql.host": "\(host)"])
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
        let orphans = slot.pending
        slot.pending = []
        for job in orphans { redispatch(job) }
    }
}

/// Why a row of a batch had no valid index, if one had not (on the loop only).
private final class StrayRows: @unchecked Sendable {
    var why: String?
}

private struct PoolClosed: Error, CustomStringConvertible {
    var description: String { "the connection pool was closed" }
}

/// Reads the rows of one lookup on the event loop: keeps two (enough to refuse a second), decodes the
/// `password`, `user` and `allow_nets` columns.
private final class RowCollector: @unchecked Sendable {
    private var rows: [PgSQLPassdb.Row] = []
    private var problem: String?

    func take(_ cells: PostgresRandomAccessRow) {
        guard problem == nil, rows.count < 2 else { return }
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
