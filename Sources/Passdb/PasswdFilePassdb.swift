public import AuthCore
public import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The `passwd-file` passdb: a Dovecot-compatible flat user table (see `PasswdFile`), loaded at init
/// and reloaded when the file changes.
///
/// Freshness (see `FreshnessGate`): a request never gets an answer from a table older than
/// `checkInterval`. When the last check is older, the request waits while the file is `stat`ed on a
/// background thread and, when its inode, size, modification or change time differ from the loaded
/// version, parsed again; concurrent requests share that check. A version read so soon after a change
/// that a same-tick rewrite could hide (`FileIdentity.unsettled`) is confirmed by reading its bytes
/// again once it is a second old, in the background, and comparing their hash with the one taken while
/// it was parsed (see `confirm`): so one replacement of the file makes requests wait once, not twice.
/// A new version that does not parse is logged (with every `file:line`) and the last good table stays
/// in service; that broken version is not retried until the file changes again. A missing file also keeps the last good table.
///
/// Expensive verification (crypt family, SSHA, SCRAM) runs on the `BlockingExecutor`; `{PLAIN}`,
/// `{CRAM-MD5}` and `{DIGEST-MD5}` are checked inline.
public final class PasswdFilePassdb: PasswordDatabase {
    public static let driverName = "passwd-file"

    public let path: String
    /// Lower-cased default realm for bare names (nil: bare names stay bare).
    public let defaultRealm: String?
    public let name: String
    public var driver: String { PasswdFilePassdb.driverName }

    private let executor: any BlockingExecutor
    private let logger: Logger
    private let state: Mutex<State>
    private let freshness: FreshnessGate

    /// What a `stat` saw: a missing file or one version of it.
    enum Observed: Equatable, Sendable {
        case missing
        case file(FileIdentity)
    }

    private struct State: Sendable {
        var table: PasswdFile {
            didSet {
                generation = PassdbGeneration.next()
                identity = table.identity
            }
        }
        /// The table's identity, settled once `confirm` has read the same bytes again.
        var identity: FileIdentity?
        /// Changes with every table put in service (see `cacheGeneration`).
        var generation = PassdbGeneration.next()
        /// The version whose load failed; not retried until the file changes again.
        var failed: Observed?
    }

    /// Loads `path` now; throws `PasswdFileError` (its description lists every `file:line: problem`).
    ///
    /// - Parameters:
    ///   - defaultRealm: realm for bare user names in the file and in requests; nil keeps bare names bare.
    ///   - executor: runs expensive hashing (the daemon passes one backed by a thread pool).
    ///   - logger: reloads, reload failures and load warnings go here.
    ///   - checkInterval: the longest a change to the file may go unnoticed (default one second).
    public init(
        path: String, defaultRealm: String? = nil, executor: any BlockingExecutor, logger: Logger,
        checkInterval: Duration = .seconds(1)
    ) throws(PasswdFileError) {
        let loadStart = ContinuousClock.now
        let table = try PasswdFile.load(path: path, defaultRealm: defaultRealm)
        self.path = path
        self.defaultRealm = table.defaultRealm
        self.name = "\(PasswdFilePassdb.driverName):\(path)"
        self.executor = executor
        self.logger = logger
        self.state = Mutex(State(table: table, identity: table.identity))
        self.freshness = FreshnessGate(interval: checkInterval, checkedAt: loadStart)
        scheduleConfirmation(table)
        logWarnings(table)
        logger.debug(
            "passwd-file loaded", metadata: ["passdb": "\(name)", "users": "\(table.count)"]
        )
    }

    /// The table in service now (as last checked; see `isFresh`).
    public var table: PasswdFile { state.withLock { $0.table } }

    /// The loaded table's generation. Callers that cache by it call `ensureFresh` first.
    public var cacheGeneration: UInt64? { state.withLock { $0.generation } }

    /// The identity of the version in service as last checked (for tests).
    var servedIdentity: FileIdentity? { state.withLock { $0.identity } }

    public var isFresh: Bool { freshness.isFresh }
    public func ensureFresh() async { await freshness.ensureFresh { self.checkForChange() } }

    /// Number of users in the table in service.
    public var userCount: Int { table.count }

    public var capabilities: PassdbCapabilities {
        PassdbCapabilities(verifyPlain: true, credentials: table.credentialSchemes)
    }

    // MARK: PasswordDatabase

    public func verifyPlain(_ request: PassdbRequest, password: Secret) async -> PassdbResult {
        await verifyPlainVerdict(request, password: password).result
    }

    /// Cheap schemes are checked right here; hashed ones are left to `verifyPlain` (nil).
    public func verifyPlainNow(_ request: PassdbRequest, password: Secret) -> PassdbResult? {
        verifyPlainVerdictNow(request, password: password)?.result
    }

    /// The verdict with the entry verified (for `rehash_schemes`).
    public func verifyPlainVerdict(_ request: PassdbRequest, password: Secret) async -> PassdbVerdict {
        await ensureFresh()
        let table = self.table
        guard let stored = table.password(forKey: table.key(for: request)) else { return PassdbVerdict(.userUnknown) }
        let user = request.user
        let outcome: PasswordVerification
        if stored.scheme.isExpensive {
            outcome = await executor.run { stored.verify(password, user: user) }
        } else {
            outcome = stored.verify(password, user: user)
        }
        return PassdbVerdict(verdict(outcome, request), verifiedAgainst: outcome == .match ? stored : nil)
    }

    public func verifyPlainVerdictNow(_ request: PassdbRequest, password: Secret) -> PassdbVerdict? {
        guard isFresh else { return nil }
        let table = self.table
        guard let stored = table.password(forKey: table.key(for: request)) else { return PassdbVerdict(.userUnknown) }
        guard !stored.scheme.isExpensive else { return nil }
        let outcome = stored.verify(password, user: request.user)
        return PassdbVerdict(verdict(outcome, request), verifiedAgainst: outcome == .match ? stored : nil)
    }

    private func verdict(_ outcome: PasswordVerification, _ request: PassdbRequest) -> PassdbResult {
        switch outcome {
        case .match: return .ok
        case .mismatch: return .passwordMismatch
        case .unverifiable(let reason):
            logger.warning(
                "passwd-file entry cannot be verified: \(reason)",
                metadata: ["passdb": "\(name)", "auth.user": "\(sanitizeForLog(request.user))"]
            )
            return .schemeNotAvailable(reason)
        }
    }

    public func lookupCredentials(_ request: PassdbRequest, scheme: CredentialScheme) async -> CredentialLookup {
        await ensureFresh()
        let table = self.table
        guard let stored = table.password(forKey: table.key(for: request)) else { return .userUnknown }
        guard stored.credentialSchemes.contains(scheme) else {
            return .schemeNotAvailable(
                "the password is stored as {\(stored.scheme)}, which cannot give \(scheme) credentials")
        }
        let user = request.user
        let credential: Credential?
        if stored.credentialIsExpensive(scheme) {
            credential = await executor.run { stored.credential(scheme, user: user) }
        } else {
            credential = stored.credential(scheme, user: user)
        }
        guard let credential else { return .schemeNotAvailable("the stored {\(stored.scheme)} value is unusable") }
        return .found(credential)
    }

    // MARK: reloading

    /// The freshness check (on a background thread): `stat`s the file and reloads it when it changed,
    /// or when the version in service is unsettled and `confirm` cannot show its bytes are unchanged.
    func checkForChange() {
        let observed = observe()
        enum Step { case unchanged, confirm(PasswdFile), reload }
        let step = state.withLock { s -> Step in
            if s.failed == observed { return .unchanged }
            guard case .file(let identity) = observed, let current = s.identity, identity == current else { return .reload }
            return current.unsettled ? .confirm(s.table) : .unchanged
        }
        switch step {
        case .unchanged: return
        case .confirm(let table): if confirm(table) { return }
        case .reload: break
        }
        _ = reloadNow(observed: observed)
    }

    /// Reads the file's bytes again (no parse) and returns true when they hash as those `table` was
    /// parsed from and the file still has `table`'s identity; the identity of that read replaces the
    /// unsettled one (settled when the read began a second or more after the file's last change).
    ///
    /// Why this is as good as a reload begun when this read began: the read saw the same inode, size,
    /// mtime and ctime before and after, and the same bytes (a 64-bit hash: an accidental match of
    /// different contents has odds of 2^-64; whoever could craft one can write the file anyway). So the
    /// table in service is exactly the file at that moment. If that read was itself settled, a later
    /// write cannot go unseen: it gets a ctime at least one timestamp tick later than the one read.
    /// Nothing else changes: the same table stays in service (same generation: the auth cache stays).
    func confirm(_ table: PasswdFile) -> Bool {
        guard let expected = table.contentHash, let loaded = table.identity,
            let (identity, hash) = try? PasswdFile.fingerprint(path: path), identity == loaded, hash == expected
        else { return false }
        return state.withLock { s -> Bool in
            guard s.table === table else { return false }
            s.identity = identity
            return true
        }
    }

    /// When `table` is unsettled, confirms it in the background (through the gate, so that requests
    /// due meanwhile wait for it rather than start a read of their own) once its last change is a
    /// second old: the next due check then finds a settled version and reads nothing. A confirmation
    /// that finds a change does not count as a check; the next due check reloads.
    private func scheduleConfirmation(_ table: PasswdFile) {
        guard let identity = table.identity, identity.unsettled, table.contentHash != nil else { return }
        let delay = identity.timeUntilAged(seconds: 1) + .milliseconds(20)
        Task { [weak self] in
            try? await Task.sleep(for: delay)
            guard let self else { return }
            self.freshness.checkInBackground { [weak self] in
                guard let self else { return false }
                let (current, unsettled) = self.state.withLock { ($0.table, $0.identity?.unsettled ?? false) }
                guard current === table, unsettled else { return false }
                return self.confirm(table) && !(self.state.withLock { $0.identity?.unsettled ?? true })
            }
        }
    }

    /// Reads the file again now, on the calling thread (for a SIGHUP handler, the CLI and tests). On
    /// failure the previous table stays in service. Returns the new user count or the error.
    @discardableResult
    public func reload() -> Result<Int, PasswdFileError> {
        let start = ContinuousClock.now
        let result = reloadNow(observed: observe())
        freshness.recordCheck(startedAt: start)
        return result
    }

    private func observe() -> Observed {
        FileIdentity.of(path: path).map(Observed.file) ?? .missing
    }

    private func reloadNow(observed: Observed) -> Result<Int, PasswdFileError> {
        do {
            let table = try PasswdFile.load(path: path, defaultRealm: defaultRealm)
            let previous = state.withLock { s -> Int in
                let n = s.table.count
                s.table = table
                s.failed = nil
                return n
            }
            logger.info(
                "passwd-file reloaded: \(table.count) users (was \(previous))",
                metadata: ["passdb": "\(name)", "users": "\(table.count)"]
            )
            logWarnings(table)
            scheduleConfirmation(table)
            return .success(table.count)
        } catch {
            let serving = state.withLock { s -> Int in
                s.failed = observed
                return s.table.count
            }
            logger.error(
                "passwd-file reload failed, still serving the previous table (\(serving) users):\n\(error)",
                metadata: ["passdb": "\(name)"]
            )
            return .failure(error)
        }
    }

    private func logWarnings(_ table: PasswdFile) {
        for w in table.warnings.prefix(PasswdFile.maxReportedProblems) {
            logger.warning("\(w)", metadata: ["passdb": "\(name)"])
        }
    }
}

extension PasswdFilePassdb: RehashablePassdb {
    /// Hashes on the executor, rewrites the user's line through `PasswdFileEditor` (locked, atomic
    /// rename, other fields, mode and owner kept) only if it still holds `old`, then reloads the table
    /// so the next login (and the auth cache, by the new generation) sees the new hash at once.
    public func replaceHash(
        _ request: PassdbRequest, password: Secret, old: StoredPassword, scheme: PasswordScheme
    ) async -> RehashOutcome {
        let key = table.key(for: request)
        let editor = PasswdFileEditor(path: path, defaultRealm: defaultRealm)
        return await executor.run { () -> RehashOutcome in
            let field: String
            do {
                field = try scheme.hash(password, user: key)
            } catch {
                return .failed("hashing with \(scheme) failed: \(error)")
            }
            let written: Bool
            do {
                written = try editor.replacePasswordField(user: key, with: field) { current in
                    guard let now = try? StoredPassword(field: current), now.scheme == old.scheme else { return false }
                    return old.value.withBytes { o in now.value.constantTimeEquals(o) }
                }
            } catch {
                return .failed(
                    "\(error); the daemon's user needs write access to \(self.path) and its directory (or leave rehash_schemes empty)")
            }
            guard written else { return .unchanged }
            _ = self.reload()
            return .rewritten
        }
    }
}
