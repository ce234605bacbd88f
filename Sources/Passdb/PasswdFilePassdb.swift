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
/// Reloading: on a lookup, at most once per `checkInterval`, the file is `stat`ed; when its inode, size,
/// modification or change time differ from the loaded version it is parsed again on a background thread
/// while lookups keep using the old table. A new version that does not parse is logged (with every
/// `file:line`) and the last good table stays in service; that broken version is not retried until the
/// file changes again. A missing file also keeps the last good table.
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
    private let checkInterval: Duration
    private let state: Mutex<State>

    /// What a `stat` saw: a missing file or one version of it.
    enum Observed: Equatable, Sendable {
        case missing
        case file(FileIdentity)
    }

    private struct State: Sendable {
        var table: PasswdFile {
            didSet { generation = PassdbGeneration.next() }
        }
        /// Changes with every table put in service (see `cacheGeneration`).
        var generation = PassdbGeneration.next()
        var lastCheck: ContinuousClock.Instant
        var reloading = false
        /// The version whose load failed; not retried until the file changes again.
        var failed: Observed?
    }

    /// Loads `path` now; throws `PasswdFileError` (its description lists every `file:line: problem`).
    ///
    /// - Parameters:
    ///   - defaultRealm: realm for bare user names in the file and in requests; nil keeps bare names bare.
    ///   - executor: runs expensive hashing (the daemon passes one backed by a thread pool).
    ///   - logger: reloads, reload failures and load warnings go here.
    ///   - checkInterval: how often a lookup may `stat` the file (default one second).
    public init(
        path: String, defaultRealm: String? = nil, executor: any BlockingExecutor, logger: Logger,
        checkInterval: Duration = .seconds(1)
    ) throws(PasswdFileError) {
        let table = try PasswdFile.load(path: path, defaultRealm: defaultRealm)
        self.path = path
        self.defaultRealm = table.defaultRealm
        self.name = "\(PasswdFilePassdb.driverName):\(path)"
        self.executor = executor
        self.logger = logger
        self.checkInterval = checkInterval
        self.state = Mutex(State(table: table, lastCheck: .now))
        logWarnings(table)
        logger.debug(
            "passwd-file loaded", metadata: ["passdb": "\(name)", "users": "\(table.count)"]
        )
    }

    /// The table in service now.
    public var table: PasswdFile { state.withLock { $0.table } }

    /// The loaded table's generation; reading it also runs the periodic check for a changed file.
    public var cacheGeneration: UInt64? {
        _ = currentTable()
        return state.withLock { $0.generation }
    }

    /// Number of users in the table in service.
    public var userCount: Int { table.count }

    public var capabilities: PassdbCapabilities {
        PassdbCapabilities(verifyPlain: true, credentials: table.credentialSchemes)
    }

    // MARK: PasswordDatabase

    public func verifyPlain(_ request: PassdbRequest, password: Secret) async -> PassdbResult {
        let table = currentTable()
        guard let stored = table.password(forKey: table.key(for: request)) else { return .userUnknown }
        let user = request.user
        let outcome: PasswordVerification
        if stored.scheme.isExpensive {
            outcome = await executor.run { stored.verify(password, user: user) }
        } else {
            outcome = stored.verify(password, user: user)
        }
        return verdict(outcome, request)
    }

    /// Cheap schemes are checked right here; hashed ones are left to `verifyPlain` (nil).
    public func verifyPlainNow(_ request: PassdbRequest, password: Secret) -> PassdbResult? {
        let table = currentTable()
        guard let stored = table.password(forKey: table.key(for: request)) else { return .userUnknown }
        guard !stored.scheme.isExpensive else { return nil }
        return verdict(stored.verify(password, user: request.user), request)
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
        let table = currentTable()
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

    /// The table to use for one lookup; starts a background reload check at most once per interval.
    private func currentTable() -> PasswdFile {
        let now = ContinuousClock.now
        let (table, due) = state.withLock { s -> (PasswdFile, Bool) in
            guard !s.reloading, now - s.lastCheck >= checkInterval else { return (s.table, false) }
            s.lastCheck = now
            return (s.table, true)
        }
        if due { checkForChange() }
        return table
    }

    /// `stat`s the file and, when it changed, reloads it on a background thread.
    func checkForChange() {
        let observed = observe()
        let start = state.withLock { s -> Bool in
            guard !s.reloading, s.failed != observed else { return false }
            if case .file(let identity) = observed, identity == s.table.identity { return false }
            s.reloading = true
            return true
        }
        guard start else { return }
        runOnBackgroundThread { [self] in
            _ = self.reloadNow(observed: observed)
        }
    }

    /// Reads the file again now, on the calling thread (for a SIGHUP handler, the CLI and tests). On
    /// failure the previous table stays in service. Returns the new user count or the error.
    @discardableResult
    public func reload() -> Result<Int, PasswdFileError> {
        let observed = observe()
        state.withLock { $0.reloading = true }
        return reloadNow(observed: observed)
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
                s.reloading = false
                s.lastCheck = .now
                return n
            }
            logger.info(
                "passwd-file reloaded: \(table.count) users (was \(previous))",
                metadata: ["passdb": "\(name)", "users": "\(table.count)"]
            )
            logWarnings(table)
            return .success(table.count)
        } catch {
            let serving = state.withLock { s -> Int in
                s.failed = observed
                s.reloading = false
                s.lastCheck = .now
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

/// Runs `body` on a new detached POSIX thread (reloads must not occupy an event loop or the executor's
/// hashing threads). Falls back to the calling thread if no thread can be made.
func runOnBackgroundThread(_ body: @escaping @Sendable () -> Void) {
    final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let context = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(
        &thread, nil,
        { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            box.body()
            return nil
        }, context
    )
    if rc == 0 {
        pthread_detach(thread)
    } else {
        Unmanaged<Box>.fromOpaque(context).takeRetainedValue().body()
    }
}
