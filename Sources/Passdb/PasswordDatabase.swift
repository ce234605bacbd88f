public import AuthCore
import Synchronization

/// Everything a password database may see about one lookup.
public struct PassdbRequest: Sendable {
    /// The normalized login name: `local@realm`, or a bare `local` when no realm applies.
    public var user: String
    /// The part before the last `@` (the whole name when there is no realm).
    public var localPart: String
    /// The realm (after the last `@`), lower-cased; nil for a bare name.
    public var realm: String?
    /// The SASL mechanism in upper case, e.g. `PLAIN`.
    public var mechanism: String
    /// `service=` of the request (`smtp`, `doveadm`, ...).
    public var service: String
    /// `rip=` of the request, if any (the SMTP client's address).
    public var remoteIP: String?
    /// `lip=` of the request, if any.
    public var localIP: String?
    /// The request carried `secured` (TLS or a trusted transport).
    public var secured: Bool

    public init(
        user: String, mechanism: String, service: String, remoteIP: String? = nil, localIP: String? = nil,
        secured: Bool = false
    ) {
        self.user = user
        let (local, realm) = LoginName.split(user)
        self.localPart = String(local)
        self.realm = realm.map { $0.lowercased() }
        self.mechanism = mechanism
        self.service = service
        self.remoteIP = remoteIP
        self.localIP = localIP
        self.secured = secured
    }
}

/// The outcome of a plaintext verification. Mapped to the wire (`FAIL code=...`) in one place, the engine.
public enum PassdbResult: Sendable, Equatable {
    /// The password is right.
    case ok
    /// The password is right and the passdb names the user differently (a `user` column): the name
    /// answered in `OK user=` and logged from here on.
    case okAs(user: String)
    /// The user exists and the password is wrong.
    case passwordMismatch
    /// This passdb does not know the user (the chain asks the next one).
    case userUnknown
    /// The account is disabled or locked (`code=user_disabled`).
    case userDisabled(reason: String?)
    /// The password has expired (`code=pass_expired`).
    case passwordExpired
    /// The user exists but has no secret this passdb can verify that way (e.g. a hash scheme it cannot
    /// read). Logged; the chain treats it like a failure.
    case schemeNotAvailable(String)
    /// The passdb could not answer (I/O error, PAM system error, corrupt file). Never an OK:
    /// `code=temp_fail`. The reason is for the log only, never sent to the client.
    case internalFailure(String)
}

/// The outcome of a credential lookup (for challenge-response mechanisms).
public enum CredentialLookup: Sendable {
    case found(Credential)
    case userUnknown
    case userDisabled(reason: String?)
    /// The user exists but has no secret for the requested mechanism.
    case schemeNotAvailable(String)
    case internalFailure(String)
}

/// The outcome of a bearer-token check (OAUTHBEARER, XOAUTH2).
public enum TokenResult: Sendable, Equatable {
    /// The token is valid; `subject` is the user it was issued to (the configured username claim), not yet
    /// normalized: the engine normalizes it and compares it with the name the client logged in as.
    case valid(subject: String)
    /// Expired, not yet valid, wrong issuer or audience, unknown key, bad signature, refused algorithm,
    /// inactive: an authentication failure. The reason is for the log and names no part of the token.
    case invalid(String)
    /// The passdb could not decide (keys or the introspection endpoint unreachable): `code=temp_fail`.
    case internalFailure(String)
}

/// What a passdb can do, used to advertise only mechanisms that can really be verified.
public struct PassdbCapabilities: Sendable, Equatable {
    /// Can check a plaintext password (PLAIN, LOGIN).
    public var verifyPlain: Bool
    /// Credential kinds it can hand out (CRAM-MD5, DIGEST-MD5, SCRAM).
    public var credentials: Set<CredentialScheme>
    /// Can check bearer tokens (OAUTHBEARER, XOAUTH2). Only such passdbs ever see a token, and they never
    /// see a password.
    public var verifyToken: Bool

    public init(verifyPlain: Bool, credentials: Set<CredentialScheme> = [], verifyToken: Bool = false) {
        self.verifyPlain = verifyPlain
        self.credentials = credentials
        self.verifyToken = verifyToken
    }
}

/// One password database. Implementations must be safe to call from many tasks at once and must never
/// block the calling thread for long: expensive hashing and blocking library calls go through a
/// `BlockingExecutor`.
public protocol PasswordDatabase: Sendable {
    /// `driver:argument` as configured, for logs (e.g. `passwd-file:/etc/saslgate/users`).
    var name: String { get }
    /// The driver name (`passwd-file`, `pam`, `sasldb`).
    var driver: String { get }
    var capabilities: PassdbCapabilities { get }

    func verifyPlain(_ request: PassdbRequest, password: Secret) async -> PassdbResult

    /// The same verdict as `verifyPlain`, answered at once on the calling thread when that costs no more
    /// than a lookup and a cheap comparison (`{PLAIN}`, `{CRAM-MD5}`, `{DIGEST-MD5}` entries), so the
    /// common case needs no task and no thread hop. nil: the check would hash or block (crypt family,
    /// PAM, SQLite): call `verifyPlain`. Must never block or hash.
    func verifyPlainNow(_ request: PassdbRequest, password: Secret) -> PassdbResult?
    func lookupCredentials(_ request: PassdbRequest, scheme: CredentialScheme) async -> CredentialLookup

    /// Checks a bearer token for `request` (its `user` is the name the client logged in as). Asked only of
    /// passdbs whose `capabilities.verifyToken` is true.
    func verifyToken(_ request: PassdbRequest, token: Secret) async -> TokenResult
    /// `verifyPlain` with what the engine may need beyond the verdict: which app password matched, and
    /// which stored hash was verified (for `rehash_schemes`). Defaults to `verifyPlain` without details.
    func verifyPlainVerdict(_ request: PassdbRequest, password: Secret) async -> PassdbVerdict
    /// `verifyPlainNow` with the same details as `verifyPlainVerdict`; nil: call that.
    func verifyPlainVerdictNow(_ request: PassdbRequest, password: Secret) -> PassdbVerdict?

    /// Identifies the data version answering now, unique in the process: it changes whenever the
    /// data may have changed (a reloaded table). nil: results must not be cached (PAM: a password can
    /// change behind our back). Reading it may check whether the data changed.
    var cacheGeneration: UInt64? { get }

    /// False when the data in service may be older than the passdb's check interval (see
    /// `FreshnessGate`): a synchronous path must then not answer from it (nor from a cache keyed by its
    /// `cacheGeneration`) but call `ensureFresh` first. Cheap.
    var isFresh: Bool { get }
    /// Returns once the data in service is current within the check interval; waits for a check (off the
    /// calling thread) when one is due. Every answer, and every `cacheGeneration` read for a cache
    /// lookup, comes after it.
    func ensureFresh() async

    /// A live check for `saslgated --check` and `saslgate doctor`: reach the backend (a database, a
    /// directory) and run one lookup for a dummy user. nil: there is nothing remote to reach (files, PAM).
    func probe() async -> PassdbProbe?
    /// What this passdb does for `request`, for `saslgate auth test --explain`: e.g. the query with its
    /// bound values and the host that answered, or the filter sent and the DN found. It may run the
    /// lookup, but verifies no password and returns no secret. Empty: nothing to add.
    func explain(_ request: PassdbRequest) async -> [String]
    /// A reload replaced this passdb: no new request will come, the ones under way finish. Release what is
    /// idle now (database connections: the new generation may need the room under a connection limit);
    /// `close` follows after `request_timeout`.
    func retire() async
    /// Releases connections and threads. Called once when the passdb leaves service (a reload replaced it
    /// and its requests had time to finish, or the daemon stops); requests after it may fail.
    func close() async
}

/// The result of `PasswordDatabase.probe`.
public struct PassdbProbe: Sendable, Equatable {
    /// The backend answered the lookup (found or not found: both mean it works).
    public var reachable: Bool
    /// What was tried and what happened, one line each, for a terminal (no secrets).
    public var lines: [String]

    public init(reachable: Bool, lines: [String]) {
        self.reachable = reachable
        self.lines = lines
    }
}

extension PasswordDatabase {
    public var cacheGeneration: UInt64? { nil }
    /// Passdbs that ask their source on every lookup (PAM) are always fresh.
    public var isFresh: Bool { true }
    public func ensureFresh() async {}
    public func verifyPlainNow(_ request: PassdbRequest, password: Secret) -> PassdbResult? { nil }
    /// Passdbs that cannot verify tokens are never asked; if one were, it refuses (fail closed).
    public func verifyToken(_ request: PassdbRequest, token: Secret) async -> TokenResult {
        .invalid("\(driver) passdb does not verify tokens")
    }
    public func probe() async -> PassdbProbe? { nil }
    public func explain(_ request: PassdbRequest) async -> [String] { [] }
    public func retire() async {}
    public func close() async {}
}

/// Process-wide source of data generations for `PasswordDatabase.cacheGeneration`.
public enum PassdbGeneration {
    private static let counter = Atomic<UInt64>(1)
    public static func next() -> UInt64 { counter.wrappingAdd(1, ordering: .relaxed).oldValue }
}

/// Runs blocking or CPU-heavy work (password hashing, PAM) off the event loops, on a bounded pool.
public protocol BlockingExecutor: Sendable {
    func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T
}

/// Runs the body inline. Only for tests and the CLI, never in the daemon.
public struct InlineExecutor: BlockingExecutor {
    public init() {}
    public func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T { body() }
}
