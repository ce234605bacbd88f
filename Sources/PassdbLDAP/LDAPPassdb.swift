public import AuthConfig
public import AuthCore
public import Logging
public import Passdb

/// `ldap:/etc/saslgate/ldap.conf`: users in an LDAP directory (OpenLDAP, Active Directory), with
/// Dovecot's `dovecot-ldap.conf.ext` settings (`LDAPSettings`).
///
/// - `auth_bind = yes`: the user's DN is found with `pass_filter` as the service account (or built from
///   `auth_bind_userdn` without a search), then the server checks the password by a bind as that DN.
///   The password is never a search value. An empty password fails before any bind (LDAP would take it
///   as an anonymous bind and succeed). Serves PLAIN and LOGIN.
/// - `auth_bind = no`: the password attribute named in `pass_attrs` is read and verified here with the
///   passwd-file's schemes (`{SSHA}`, `{CRYPT}`, ..., `default_pass_scheme` for values without one), so
///   CRAM-MD5 and the others work where the stored scheme allows.
///
/// Request values go into filters escaped per RFC 4515 and into DNs per RFC 4514 (`LDAPEscaping`), so
/// no login name widens a filter. Every libldap call runs on `LDAPThreadPool` (a connection per thread,
/// reused) and a request is answered within `timeout`: an outage, a timeout or a TLS failure is an
/// `internalFailure` (the client sees a temporary failure), never a wrong password.
public final class LDAPPassdb: PasswordDatabase {
    public static let driverName = "ldap"
    public var driver: String { LDAPPassdb.driverName }
    public let name: String
    public let settings: LDAPSettings
    /// Lower-cased realm for bare names in `%u` / `%d` (nil: bare names stay bare).
    public let defaultRealm: String?

    private let logger: Logger
    private let executor: any BlockingExecutor
    private let servers: LDAPServers
    private let pool: LDAPThreadPool

    /// Reads and checks the settings file at `path`; connects on the first request.
    public convenience init(path: String, defaultRealm: String?, executor: any BlockingExecutor, logger: Logger)
        throws(ConfigErrors)
    {
        try self.init(settings: LDAPSettings.load(path: path), defaultRealm: defaultRealm, executor: executor, logger: logger)
    }

    public init(settings: LDAPSettings, defaultRealm: String?, executor: any BlockingExecutor, logger: Logger) {
        self.settings = settings
        self.name = "\(LDAPPassdb.driverName):\(settings.file)"
        self.defaultRealm = defaultRealm.flatMap { $0.isEmpty ? nil : $0.lowercased() }
        self.executor = executor
        var logger = logger
        logger[metadataKey: "passdb"] = "\(LDAPPassdb.driverName):\(settings.file)"
        self.logger = logger
        let servers = LDAPServers(uris: settings.uris)
        self.servers = servers
        self.pool = LDAPThreadPool(
            maxThreads: settings.maxConnections, maxQueue: settings.maxQueue, timeout: settings.timeout,
            makeWorker: { LDAPWorker(settings: settings, servers: servers) })
        for uri in settings.uris where !settings.isProtected(uri) && settings.authBind {
            logger.warning("passwords go to \(uri) unencrypted (auth_bind = yes without ldaps:// or tls = yes)")
        }
    }

    public var capabilities: PassdbCapabilities {
        settings.authBind
            ? PassdbCapabilities(verifyPlain: true)
            : PassdbCapabilities(verifyPlain: true, credentials: settings.defaultPassScheme.credentialSchemes)
    }

    // MARK: - Requests

    /// The request as the templates see it: a bare name gets `defaultRealm` (`%u` = `alice@example.org`).
    func effective(_ request: PassdbRequest) -> PassdbRequest {
        guard request.realm == nil, let defaultRealm else { return request }
        var r = PassdbRequest(
            user: request.user + "@" + defaultRealm, mechanism: request.mechanism, service: request.service,
            remoteIP: request.remoteIP, localIP: request.localIP, secured: request.secured)
        r.localPart = request.localPart
        return r
    }

    /// `pass_filter` with every value escaped per RFC 4515.
    func filter(for request: PassdbRequest) -> String {
        settings.passFilter.render(effective(request), encode: LDAPEscaping.filterValue)
    }

    /// `auth_bind_userdn` with every value escaped per RFC 4514; nil when not configured.
    func userDN(for request: PassdbRequest) -> String? {
        settings.authBindUserDN?.render(effective(request), encode: LDAPEscaping.dnValue)
    }

    public func verifyPlain(_ request: PassdbRequest, password: Secret) async -> PassdbResult {
        var log = logger
        log[metadataKey: "user"] = "\(sanitizeForLog(request.user))"
        if password.isEmpty {
            log.info("LDAP: empty password refused without asking the server")
            return .passwordMismatch
        }
        if password.containsNUL { return .passwordMismatch }
        return settings.authBind ? await bindCheck(request, password, log) : await attributeCheck(request, password, log)
    }

    private func bindCheck(_ request: PassdbRequest, _ password: Secret, _ log: Logger) async -> PassdbResult {
        let filter = userDN(for: request) == nil ? self.filter(for: request) : nil
        let fixedDN = userDN(for: request)
        let outcome = await pool.run { worker -> Result<(PassdbResult, String, String), LDAPError> in
            var dn: String
            if let fixedDN {
                dn = fixedDN
            } else {
                switch worker.find(filter: filter!, attributes: []) {
                case .failure(let e): return .failure(e)
                case .success(.none(let uri)): return .success((.userUnknown, "", uri))
                case .success(.ambiguous(let n, let uri)):
                    return .success((.internalFailure("pass_filter matched \(n) entries"), "", uri))
                case .success(.entry(let entry, _)): dn = entry.dn
                }
            }
            return worker.userBind(dn: dn, password: password).map { bound in
                (bound.accepted ? .ok : .passwordMismatch, dn, bound.uri)
            }
        }
        return finish(outcome, log)
    }

    private func attributeCheck(_ request: PassdbRequest, _ password: Secret, _ log: Logger) async -> PassdbResult {
        let lookup = await storedPassword(request)
        switch lookup {
        case .failure(let final):
            return finish(.success(.success((final.result, "", ""))), log)
        case .success(let (stored, dn, uri)):
            let user = effective(request).user
            let verification = stored.scheme.isExpensive
                ? await executor.run { stored.verify(password, user: user) } : stored.verify(password, user: user)
            let result: PassdbResult
            switch verification {
            case .match: result = .ok
            case .mismatch: result = .passwordMismatch
            case .unverifiable(let why): result = .schemeNotAvailable(why)
            }
            return finish(.success(.success((result, dn, uri))), log)
        }
    }

    /// Searches the user and parses the password attribute. `.failure` carries the final result.
    private func storedPassword(_ request: PassdbRequest) async -> Result<(StoredPassword, String, String), FinalResult> {
        let filter = self.filter(for: request)
        let attribute = settings.passwordAttribute ?? "userPassword"
        let defaultScheme = settings.defaultPassScheme
        let outcome = await pool.run { worker in worker.find(filter: filter, attributes: [attribute]) }
        switch outcome {
        case .failure(let refusal): return .failure(FinalResult(poolFailure(refusal)))
        case .success(.failure(let e)):
            logger.error("LDAP: \(e)", metadata: ["user": "\(sanitizeForLog(request.user))"])
            return .failure(FinalResult(.internalFailure("LDAP: \(e.message)")))
        case .success(.success(.none)): return .failure(FinalResult(.userUnknown))
        case .success(.success(.ambiguous(let n, _))): return .failure(FinalResult(.internalFailure("pass_filter matched \(n) entries")))
        case .success(.success(.entry(let entry, let uri))):
            guard let value = entry.values(attribute).first else {
                return .failure(FinalResult(.schemeNotAvailable("the entry \(entry.dn) has no \(attribute)")))
            }
            var field = value.withBytes { String(decoding: $0, as: UTF8.self) }
            if !field.hasPrefix("{") { field = "{\(defaultScheme.rawValue)}" + field }
            do {
                return .success((try StoredPassword(field: field), entry.dn, uri))
            } catch {
                return .failure(FinalResult(.schemeNotAvailable("\(attribute) of \(entry.dn): \(error)")))
            }
        }
    }

    /// Maps a pool answer to the result, logging user, DN, server, result and reason (never a password).
    private func finish(_ outcome: Result<Result<(PassdbResult, String, String), LDAPError>, LDAPPoolRefusal>, _ log: Logger) -> PassdbResult {
        switch outcome {
        case .failure(let refusal):
            let result = poolFailure(refusal)
            log.error("LDAP: \(result)")
            return result
        case .success(.failure(let e)):
            log.error("LDAP: \(e)", metadata: ["server": "\(e.uri)"])
            return .internalFailure("LDAP: \(e.message)")
        case .success(.success(let (result, dn, uri))):
            var metadata: Logger.Metadata = [:]
            if !dn.isEmpty { metadata["dn"] = "\(sanitizeForLog(dn, limit: 200))" }
            if !uri.isEmpty { metadata["server"] = "\(uri)" }
            switch result {
            case .internalFailure, .schemeNotAvailable: log.warning("LDAP: \(result)", metadata: metadata)
            default: log.debug("LDAP: \(result)", metadata: metadata)
            }
            return result
        }
    }

    private func poolFailure(_ refusal: LDAPPoolRefusal) -> PassdbResult {
        switch refusal {
        case .timedOut: .internalFailure("LDAP did not answer within \(settings.timeout)")
        case .busy: .internalFailure("LDAP busy: \(settings.maxConnections) requests running and \(settings.maxQueue) waiting")
        case .shutDown: .internalFailure("LDAP passdb closed")
        }
    }

    public func lookupCredentials(_ request: PassdbRequest, scheme: CredentialScheme) async -> CredentialLookup {
        guard !settings.authBind else {
            return .schemeNotAvailable("auth_bind = yes: the server checks passwords, it gives out no \(scheme) credentials")
        }
        switch await storedPassword(request) {
        case .failure(let final):
            switch final.result {
            case .userUnknown: return .userUnknown
            case .schemeNotAvailable(let why): return .schemeNotAvailable(why)
            case .internalFailure(let why): return .internalFailure(why)
            default: return .internalFailure("LDAP lookup failed")
            }
        case .success(let (stored, _, _)):
            guard stored.credentialSchemes.contains(scheme) else {
                return .schemeNotAvailable("the password is stored as {\(stored.scheme)}, which cannot give \(scheme) credentials")
            }
            let user = effective(request).user
            let credential = stored.credentialIsExpensive(scheme)
                ? await executor.run { stored.credential(scheme, user: user) } : stored.credential(scheme, user: user)
            return credential.map { .found($0) } ?? .schemeNotAvailable("the stored {\(stored.scheme)} value is unusable")
        }
    }

    // MARK: - probe, explain, close

    public func probe() async -> PassdbProbe? {
        let filter = self.filter(for: PassdbRequest(user: "saslgate-probe@invalid", mechanism: "PLAIN", service: "probe"))
        let settings = self.settings
        let outcome = await pool.run { worker -> [String] in
            var lines: [String] = []
            switch worker.checkServiceBind() {
            case .failure(let e): return ["\(e)"]
            case .success(let uri):
                lines.append(settings.bindDN.map { "bound as \($0) on \(uri)" } ?? "connected anonymously to \(uri)")
            }
            switch worker.find(filter: filter, attributes: []) {
            case .failure(let e): lines.append("search failed: \(e)")
            case .success(let found):
                lines.append("search \(filter) below \(settings.base) answered (\(found.summary))")
            }
            return lines
        }
        switch outcome {
        case .failure(let refusal): return PassdbProbe(reachable: false, lines: ["\(poolFailure(refusal))"])
        case .success(let lines): return PassdbProbe(reachable: lines.last?.contains(" answered (") ?? false, lines: lines)
        }
    }

    public func explain(_ request: PassdbRequest) async -> [String] {
        let effective = effective(request)
        if let dn = userDN(for: request) {
            return ["auth_bind_userdn: bind as \(dn) (no search)"]
        }
        let filter = self.filter(for: request)
        var lines = ["search base \(settings.base) scope \(settings.scope.rawValue) filter \(filter)"]
        if effective.user != request.user { lines.append("%u is \(effective.user) (default_realm)") }
        var attributes: [String] = []
        if let a = settings.userAttribute { attributes.append(a) }
        let outcome = await pool.run { worker in worker.find(filter: filter, attributes: attributes) }
        switch outcome {
        case .failure(let refusal): lines.append("\(poolFailure(refusal))")
        case .success(.failure(let e)): lines.append("search failed: \(e)")
        case .success(.success(let found)):
            lines.append(found.summary)
            if case .entry(let entry, _) = found, let a = settings.userAttribute, let v = entry.values(a).first {
                lines.append("\(a): \(v.withBytes { sanitizeForLog(String(decoding: $0, as: UTF8.self), limit: 200) })")
            }
            lines.append(settings.authBind ? "then: bind as that DN with the password (auth_bind = yes)"
                : "then: verify the password against \(settings.passwordAttribute ?? "") (default scheme {\(settings.defaultPassScheme)})")
        }
        return lines
    }

    public func close() async {
        pool.shutdown()
        if !(await pool.waitForThreads(limit: settings.timeout + .seconds(1))) {
            logger.warning("LDAP: \(pool.threadCount) threads still in libldap calls at close; they exit when their calls return")
        }
    }
}

/// A result decided before any password check (not found, server error, ...).
struct FinalResult: Error {
    var result: PassdbResult
    init(_ result: PassdbResult) { self.result = result }
}

extension LDAPWorker.Found {
    /// One line for `--explain` and `probe`.
    var summary: String {
        switch self {
        case .entry(let e, let uri): "found DN \(sanitizeForLog(e.dn, limit: 200)) on \(uri)"
        case .none(let uri): "no entry matched on \(uri)"
        case .ambiguous(let n, let uri): "\(n) or more entries matched on \(uri): the filter must name one user"
        }
    }
}
