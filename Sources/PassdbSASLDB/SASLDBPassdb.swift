public import AuthCore
public import Logging
public import Passdb
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The `sasldb` passdb (`sasldb:PATH`): users and their secrets in the SQLite store the CLI writes
/// (see `SASLDBEditor`, `SASLDB2Importer`).
///
/// A request's key is (`localPart`, `realm` or "" for a bare name); realms are lower-case on both sides.
///
/// - `verifyPlain` checks the stored hash (`saslgate:hash`, yescrypt by default); without one, the
///   cleartext if stored, else any mechanism secret (SCRAM, CRAM-MD5, DIGEST-MD5). The lookup and the
///   hashing run on the `BlockingExecutor`, never on the caller's thread.
/// - `lookupCredentials` hands out the stored secret of the kind asked for; when cleartext is stored it
///   serves every kind (and is preferred for DIGEST-MD5, whose digest uses the client's own spelling of
///   the user and realm). Otherwise `.schemeNotAvailable`.
/// - `capabilities.credentials` lists the kinds present anywhere in the store.
/// - Freshness (see `FreshnessGate`): a lookup never runs against a file older than `checkInterval`:
///   when the last check is older, it waits for one on a background thread: `PRAGMA data_version` (did
///   anything commit? then the auth cache generation changes) and the file's inode (was the file
///   replaced? then the connections are reopened).
///
/// Reads use a small pool of read-only connections; WAL mode lets them run while the CLI writes.
public final class SASLDBPassdb: PasswordDatabase {
    public static let driverName = "sasldb"
    /// Idle read-only connections kept open.
    static let maxIdleConnections = 8

    public let path: String
    public let name: String
    public var driver: String { SASLDBPassdb.driverName }

    private let executor: any BlockingExecutor
    private let logger: Logger
    private let freshness: FreshnessGate
    private let busyTimeoutMilliseconds: Int32
    private let state: Mutex<State>
    /// The connection that watches `PRAGMA data_version`; its lock also serializes the checks.
    private let watcher: Mutex<SQLiteConnection>
    /// Last use of app passwords, written in batches.
    let usage: AppPasswordUsage

    private struct State: Sendable {
        var idle: [SQLiteConnection] = []
        /// Bumped when the file is replaced: connections of an older generation are not reused.
        var generation = 0
        var device: UInt64
        var inode: UInt64
        var properties: Set<SASLDBProperty>
        var dataVersion: Int64
        /// The store has the `app_passwords` table (schema version 2 or later).
        var hasAppPasswords: Bool
        /// The last problem the check logged, so it is not logged every second.
        var lastProblem: String?
        /// `cacheGeneration`: its value and the (file generation, data version) it stands for.
        var cacheGeneration = PassdbGeneration.next()
        var cacheGenerationFor: (generation: Int, dataVersion: Int64)?
    }

    /// Opens the store at `path` read-only and reads which kinds of secret it holds.
    ///
    /// Throws `SASLDBError`: `.storeMissing` (create it with the CLI), `.notAStore` (another file),
    /// `.insecurePermissions` (world-writable), `.database` (SQLite cannot read it). A world-readable
    /// store is served with a warning in the log.
    ///
    /// - Parameters:
    ///   - executor: runs the lookups and the hashing (the daemon's bounded thread pool).
    ///   - logger: warnings about the file, reopenings, changes of the credential kinds.
    ///   - checkInterval: the longest a change to the store may go unnoticed (default one second).
    ///   - busyTimeout: how long a read may wait for a lock (only WAL recovery takes one).
    ///   - usageInterval: how often the last use of app passwords is written (in one transaction).
    public init(
        path: String, executor: any BlockingExecutor, logger: Logger, checkInterval: Duration = .seconds(1),
        busyTimeout: Duration = .seconds(5), usageInterval: Duration = .seconds(10)
    ) throws(SASLDBError) {
        let openStart = ContinuousClock.now
        let status = try SASLDBStore.checkFile(path: path)
        let busy = Int32(clamping: busyTimeout.components.seconds * 1000 + busyTimeout.components.attoseconds / 1_000_000_000_000_000)
        let c = try SASLDBStore.openReader(path: path, busyTimeoutMilliseconds: busy)
        let properties: Set<SASLDBProperty>
        let version: Int64
        let schema: Int64
        do {
            version = try c.integer("PRAGMA data_version")
            properties = try SASLDBStore.propertiesPresent(c)
            schema = try c.integer("PRAGMA user_version")
        } catch {
            throw .from(error, path: path)
        }
        self.path = path
        self.name = "\(SASLDBPassdb.driverName):\(path)"
        self.executor = executor
        self.logger = logger
        self.freshness = FreshnessGate(interval: checkInterval, checkedAt: openStart)
        self.busyTimeoutMilliseconds = busy
        self.watcher = Mutex(c)
        self.state = Mutex(
            State(
                device: status.device, inode: status.inode, properties: properties, dataVersion: version,
                hasAppPasswords: schema >= 2))
        self.usage = AppPasswordUsage(
            path: path, name: "\(SASLDBPassdb.driverName):\(path)", interval: usageInterval, executor: executor,
            logger: logger, busyTimeoutMilliseconds: busy)
        for w in status.warnings { logger.warning("\(w)", metadata: ["passdb": "\(name)"]) }
        logger.debug(
            "sasldb store opened", metadata: ["passdb": "\(name)", "secrets": "\(properties.map(\.rawValue).sorted())"])
    }

    /// Changes whenever a check saw a commit to the store (`PRAGMA data_version`: `saslgate user
    /// passwd`, `import`) or a replaced file, so the auth cache drops results of the old data. Callers
    /// that cache by it call `ensureFresh` first. Never touches SQLite on the caller's thread.
    public var cacheGeneration: UInt64? {
        state.withLock { s in
            let now = (generation: s.generation, dataVersion: s.dataVersion)
            if let seen = s.cacheGenerationFor, seen == now { return s.cacheGeneration }
            if s.cacheGenerationFor != nil { s.cacheGeneration = PassdbGeneration.next() }
            s.cacheGenerationFor = now
            return s.cacheGeneration
        }
    }

    /// Kinds of secret present in the store now (as of the last check).
    public var storedProperties: Set<SASLDBProperty> { state.withLock { $0.properties } }

    public var isFresh: Bool { freshness.isFresh }
    public func ensureFresh() async { await freshness.ensureFresh { self.refreshNow() } }

    public var capabilities: PassdbCapabilities {
        freshness.refreshInBackground { self.refreshNow() }
        return PassdbCapabilities(verifyPlain: true, credentials: SASLDBPassdb.credentialSchemes(storedProperties))
    }

    static func credentialSchemes(_ properties: Set<SASLDBProperty>) -> Set<CredentialScheme> {
        properties.reduce(into: Set<CredentialScheme>()) { $0.formUnion($1.credentialSchemes) }
    }

    // MARK: PasswordDatabase

    public func verifyPlain(_ request: PassdbRequest, password: Secret) async -> PassdbResult {
        await verifyPlainVerdict(request, password: password).result
    }

    /// The verdict, with the app password that matched (its use is recorded, in a batch) or the main
    /// hash that was verified (for `rehash_schemes`). The main password is checked first; only when it
    /// does not match, and the password has the generated form, are the user's live app passwords for
    /// `request.service` tried.
    public func verifyPlainVerdict(_ request: PassdbRequest, password: Secret) async -> PassdbVerdict {
        await ensureFresh()
        guard let user = try? SASLDBUser(request: request) else { return PassdbVerdict(.userUnknown) }
        let withApps = state.withLock { $0.hasAppPasswords }
        let service = request.service
        let outcome = await executor.run { self.verifyBlocking(user, password: password, service: withApps ? service : nil) }
        switch outcome {
        case .userUnknown:
            return PassdbVerdict(.userUnknown)
        case .failure(let reason):
            logger.error("\(reason)", metadata: ["passdb": "\(name)", "auth.user": "\(sanitizeForLog(user.description))"])
            return PassdbVerdict(.internalFailure(reason))
        case .noSecret:
            let reason = "no password secret stored for \(sanitizeForLog(user.description))"
            return PassdbVerdict(.schemeNotAvailable(reason))
        case .appPassword(let appName):
            usage.record(user: user, name: appName, time: SASLDBAppPasswords.now(), ip: request.remoteIP)
            return PassdbVerdict(.ok, appPassword: appName)
        case .checked(.match, let property, let value):
            guard property == .hash else { return PassdbVerdict(.ok) }
            let field = value.withBytes { String(decoding: $0, as: UTF8.self) }
            return PassdbVerdict(.ok, verifiedAgainst: try? StoredPassword(field: field))
        case .checked(.mismatch, _, _):
            return PassdbVerdict(.passwordMismatch)
        case .checked(.unverifiable(let reason), let property, _):
            logger.warning(
                "sasldb secret cannot be verified: \(reason); set the password again with `saslgate user passwd --db \(name)`",
                metadata: ["passdb": "\(name)", "auth.user": "\(sanitizeForLog(user.description))", "property": "\(property)"])
            return PassdbVerdict(.schemeNotAvailable(reason))
        }
    }

    /// Writes the pending last-use times of app passwords.
    public func close() async {
        await usage.close()
    }

    public func lookupCredentials(_ request: PassdbRequest, scheme: CredentialScheme) async -> CredentialLookup {
        await ensureFresh()
        guard let user = try? SASLDBUser(request: request) else { return .userUnknown }
        let fetched = await executor.run { self.fetch(user) }
        let rows: [(SASLDBProperty?, Secret)]
        switch fetched {
        case .failure(let e):
            logger.error("\(e)", metadata: ["passdb": "\(name)", "auth.user": "\(sanitizeForLog(user.description))"])
            return .internalFailure("\(e)")
        case .success(let r):
            rows = r
        }
        guard !rows.isEmpty else { return .userUnknown }
        var stored: [SASLDBProperty: Secret] = [:]
        for case (let property?, let value) in rows { stored[property] = value }
        let shown = sanitizeForLog(user.description)
        let cleartext = stored[.cleartext]

        guard let property = SASLDBProperty(storing: scheme) else {
            // `.plaintext`: only a stored cleartext can answer.
            if let cleartext { return .found(.plaintext(cleartext)) }
            return .schemeNotAvailable("no cleartext password stored for \(shown) (the store keeps hashes)")
        }
        // DIGEST-MD5's digest covers the user and realm as the client spelled them: a stored HA1 only
        // matches the stored spelling, the cleartext matches any.
        if scheme == .digestMD5, let cleartext { return .found(.plaintext(cleartext)) }
        if let value = stored[property] {
            if let credential = SASLDBSecrets.credential(property, value: value) { return .found(credential) }
            logger.warning(
                "the stored \(property) value is malformed; set the password again with `saslgate user passwd --db \(name)`",
                metadata: ["passdb": "\(name)", "auth.user": "\(shown)"])
            if let cleartext { return .found(.plaintext(cleartext)) }
            return .schemeNotAvailable("the stored \(scheme) secret of \(shown) is malformed")
        }
        if let cleartext { return .found(.plaintext(cleartext)) }
        return .schemeNotAvailable(
            "no \(scheme) secret stored for \(shown); store one with `saslgate user passwd --db \(name) --mechs \(scheme.rawValue.lowercased())`"
        )
    }

    // MARK: blocking work (on the executor)

    enum VerifyOutcome: Sendable {
        case userUnknown
        case noSecret
        /// The main secret was checked: the verdict, the property and its value.
        case checked(PasswordVerification, SASLDBProperty, Secret)
        /// The main password did not match but this app password did.
        case appPassword(String)
        case failure(String)
    }

    /// Order in which `verifyPlain` uses the stored secrets: the hash first, then the cleartext, then
    /// whatever mechanism secret there is.
    static let verifyOrder: [SASLDBProperty] = [.hash, .cleartext, .scramSHA256, .scramSHA1, .cramMD5, .digestMD5]

    /// `service`: try the app passwords allowed for it after a main-password mismatch; nil: none (a
    /// store without the table).
    private func verifyBlocking(_ user: SASLDBUser, password: Secret, service: String?) -> VerifyOutcome {
        let rows: [(SASLDBProperty?, Secret)]
        switch fetch(user) {
        case .failure(let e): return .failure("\(e)")
        case .success(let r): rows = r
        }
        guard !rows.isEmpty else { return .userUnknown }
        var main = VerifyOutcome.noSecret
        for property in SASLDBPassdb.verifyOrder {
            guard let value = rows.first(where: { $0.0 == property })?.1 else { continue }
            main = .checked(SASLDBSecrets.verify(password, property: property, value: value, user: user), property, value)
            break
        }
        switch main {
        case .checked(.match, _, _), .checked(.unverifiable, _, _): return main
        default: break
        }
        guard let service, SASLDBAppPasswords.looksGenerated(password) else { return main }
        let candidates: [SASLDBAppPasswords.Candidate]
        switch withConnection({ c throws(SQLiteError) in try SASLDBAppPasswords.candidates(c, user: user) }) {
        case .failure(let e): return .failure("\(e)")
        case .success(let c): candidates = c
        }
        let now = SASLDBAppPasswords.now()
        for candidate in candidates {
            let info = AppPasswordInfo(name: candidate.name, services: candidate.services, created: 0, expires: candidate.expires)
            guard info.isLive(at: now), info.allows(service: service) else { continue }
            if SASLDBAppPasswords.verify(password, candidate: candidate, user: user) == .match { return .appPassword(candidate.name) }
        }
        if case .noSecret = main, !candidates.isEmpty { return .checked(.mismatch, .hash, Secret([UInt8]())) }
        return main
    }

    /// All rows of `user` through a pooled read-only connection.
    func fetch(_ user: SASLDBUser) -> Result<[(SASLDBProperty?, Secret)], SASLDBError> {
        withConnection { c throws(SQLiteError) in try SASLDBStore.rows(c, user: user) }
    }

    private func withConnection<T>(_ body: (SQLiteConnection) throws(SQLiteError) -> T) -> Result<T, SASLDBError> {
        let (pooled, generation) = state.withLock { s in (s.idle.popLast(), s.generation) }
        let c: SQLiteConnection
        if let pooled {
            c = pooled
        } else {
            do {
                c = try SASLDBStore.openReader(path: path, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
            } catch {
                return .failure(error)
            }
        }
        do {
            let result = try body(c)
            state.withLock { s in
                if s.generation == generation && s.idle.count < SASLDBPassdb.maxIdleConnections { s.idle.append(c) }
            }
            return .success(result)
        } catch {
            // Not returned to the pool: a connection that failed once is not trusted again.
            return .failure(.from(error, path: path))
        }
    }

    // MARK: watching the file

    /// Checks the file now, on the calling thread: reopens the connections when the file was replaced
    /// and re-reads the kinds of secret when anything was committed. Returns the kinds in service. For
    /// a SIGHUP handler, the CLI and tests; lookups wait for their own checks (`ensureFresh`).
    @discardableResult
    public func refresh() -> Set<SASLDBProperty> {
        let start = ContinuousClock.now
        defer { freshness.recordCheck(startedAt: start) }
        return refreshNow()
    }

    private func refreshNow() -> Set<SASLDBProperty> {
        watcher.withLock { watcher -> Set<SASLDBProperty> in
            let (device, inode) = state.withLock { ($0.device, $0.inode) }
            var reopened = false
            do throws(SASLDBError) {
                let status = try SASLDBStore.checkFile(path: path)
                if status.device != device || status.inode != inode {
                    let fresh = try SASLDBStore.openReader(path: path, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
                    watcher = fresh
                    reopened = true
                    let dropped = state.withLock { s -> [SQLiteConnection] in
                        s.generation += 1
                        s.device = status.device
                        s.inode = status.inode
                        defer { s.idle.removeAll() }
                        return s.idle
                    }
                    _ = dropped  // closed here, outside the lock
                    logger.info("sasldb store file was replaced; reopened it", metadata: ["passdb": "\(name)"])
                    for w in status.warnings { logger.warning("\(w)", metadata: ["passdb": "\(name)"]) }
                }
                let version: Int64
                do throws(SQLiteError) {
                    version = try watcher.integer("PRAGMA data_version")
                } catch {
                    throw SASLDBError.from(error, path: path)
                }
                let changed = state.withLock { s -> Bool in
                    defer { s.dataVersion = version }
                    return reopened || s.dataVersion != version
                }
                if changed {
                    // A writer may have migrated the store to a version with app passwords.
                    if let schema = try? watcher.integer("PRAGMA user_version") {
                        state.withLock { $0.hasAppPasswords = schema >= 2 }
                    }
                    let properties: Set<SASLDBProperty>
                    do throws(SQLiteError) {
                        properties = try SASLDBStore.propertiesPresent(watcher)
                    } catch {
                        throw SASLDBError.from(error, path: path)
                    }
                    let previous = state.withLock { s -> Set<SASLDBProperty> in
                        defer { s.properties = properties }
                        return s.properties
                    }
                    if previous != properties {
                        logger.info(
                            "sasldb secrets in the store changed: \(properties.map(\.rawValue).sorted().joined(separator: " "))",
                            metadata: ["passdb": "\(name)"])
                    }
                }
                state.withLock { $0.lastProblem = nil }
            } catch {
                let text = "\(error)"
                let first = state.withLock { s -> Bool in
                    defer { s.lastProblem = text }
                    return s.lastProblem != text
                }
                if first {
                    logger.error(
                        "sasldb store check failed, still serving with the connections already open: \(text)",
                        metadata: ["passdb": "\(name)"])
                }
            }
            return state.withLock { $0.properties }
        }
    }
}

extension SASLDBPassdb: RehashablePassdb {
    /// Hashes on the executor and replaces the user's `saslgate:hash` row in one transaction, only if
    /// it still holds `old` (the user's other secrets stay as they are), then checks the store so the
    /// next login and the auth cache see the new hash at once. The daemon needs write access to the
    /// store and its directory; without it the rewrite fails and is logged.
    public func replaceHash(
        _ request: PassdbRequest, password: Secret, old: StoredPassword, scheme: PasswordScheme
    ) async -> RehashOutcome {
        guard let user = try? SASLDBUser(request: request) else { return .unchanged }
        guard SASLDBSecretPolicy.hashSchemes.contains(scheme) else {
            return .failed("\(SASLDBError.unsupportedHashScheme(scheme))")
        }
        let path = self.path
        let busy = busyTimeoutMilliseconds
        let outcome = await executor.run { () -> RehashOutcome in
            let newField: String
            do {
                newField = try scheme.hash(password)
            } catch {
                return .failed("hashing with \(scheme) failed: \(error)")
            }
            do throws(SASLDBError) {
                let (c, _) = try SASLDBStore.openWriter(path: path, create: false, busyTimeoutMilliseconds: busy)
                let changed = try SASLDBStore.inWriteTransaction(c, path: path) { () throws(SASLDBError) -> Int in
                    do throws(SQLiteError) {
                        // Compare-and-swap: only the field that was verified is replaced.
                        guard let current = try SASLDBStore.rows(c, user: user).first(where: { $0.0 == .hash })?.1 else { return 0 }
                        let field = current.withBytes { String(decoding: $0, as: UTF8.self) }
                        guard let now = try? StoredPassword(field: field), now.scheme == old.scheme,
                            old.value.withBytes({ now.value.constantTimeEquals($0) })
                        else { return 0 }
                        return try SASLDBStore.replace(c, user: user, property: .hash, old: current, new: Secret(Array(newField.utf8)))
                    } catch {
                        throw SASLDBError.from(error, path: path)
                    }
                }
                return changed == 1 ? .rewritten : .unchanged
            } catch {
                return .failed("\(error); leave rehash_schemes empty if the daemon may not write the store")
            }
        }
        if outcome == .rewritten { _ = await executor.run { self.refresh() } }
        return outcome
    }
}
