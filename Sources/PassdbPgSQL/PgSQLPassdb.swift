public import AuthCore
public import Logging
public import NIOCore
import NIOPosix
public import Passdb
import PostgresNIO

/// The `pgsql` passdb: one row per user from PostgreSQL, found by `password_query` with the request's
/// values as bound parameters (see `SQLTemplate`), prepared once per connection, on connections of the
/// asking client's own event loop (see `PgHost` and `PgLoopPool`).
///
/// Columns: `password` (`{SCHEME}value`, or `default_pass_scheme` without a prefix; NULL: no password),
/// optionally `user` (the name answered in `OK user=` for PLAIN and LOGIN) and `allow_nets` (a comma or
/// space separated CIDR list the client's `rip` must be in). No row: unknown user; more than one: an
/// internal failure. An outage is never a wrong password: no host answering within `query_timeout`
/// is an internal failure (`FAIL ... code=temp_fail temp`).
///
/// Challenge-response mechanisms: advertised from `default_pass_scheme` (PLAIN: all of them; CRAM-MD5,
/// DIGEST-MD5, SCRAM-*: that one), since rows are not known in advance; a row whose stored scheme cannot
/// give the credential answers `schemeNotAvailable`.
public final class PgSQLPassdb: PasswordDatabase {
    public static let driverName = "pgsql"

    public let name: String
    public var driver: String { Self.driverName }
    public let capabilities: PassdbCapabilities
    /// Constant: a row can change behind our back, which is what the cache TTLs are for (as with Dovecot).
    public let cacheGeneration: UInt64?
    public let settings: PgSQLSettings

    private let hosts: [PgHost]
    /// Runs the lookups' timers.
    private let group: any EventLoopGroup
    private let executor: any BlockingExecutor
    private let logger: Logger

    /// Reads the settings file at `path`; throws `ConfigErrors` with `file:line` on any problem.
    public convenience init(
        path: String, executor: any BlockingExecutor, logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws {
        try self.init(settings: PgSQLSettings.load(path: path), name: "\(Self.driverName):\(path)",
            executor: executor, logger: logger, group: group)
    }

    public init(
        settings: PgSQLSettings, name: String, executor: any BlockingExecutor, logger: Logger,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws {
        self.settings = settings
        self.group = group
        self.name = name
        self.executor = executor
        var logger = logger
        logger[metadataKey: "passdb"] = "\(name)"
        self.logger = logger
        self.cacheGeneration = PassdbGeneration.next()
        let scheme = settings.defaultScheme
        self.capabilities = PassdbCapabilities(verifyPlain: true, credentials: scheme.credentialSchemes)
        let tls = try Self.tls(settings.connect)
        self.hosts = settings.connect.endpoints.map { endpoint in
            PgHost(
                endpoint: endpoint, connect: settings.connect, tls: endpoint.isUnixSocket ? .disable : tls,
                query: settings.query, poolSize: settings.poolSize, queryTimeout: settings.queryTimeout,
                connectTimeout: settings.connectTimeout, group: group, logger: logger)
        }
    }

    private static func tls(_ connect: PgConnectString) throws -> PostgresConnection.Configuration.TLS {
        switch connect.sslMode {
        case .disable:
            return .disable
        case .require:
            var c = TLSConfiguration.makeClientConfiguration()
            c.certificateVerification = .none
            return .require(try NIOSSLContext(configuration: c))
        case .verifyFull:
            var c = TLSConfiguration.makeClientConfiguration()
            c.certificateVerification = .fullVerification
            if let root = connect.sslRootCert { c.trustRoots = .file(root) }
            return .require(try NIOSSLContext(configuration: c))
        }
    }

    // MARK: the row

    /// What the query gave for one user.
    struct Row: Sendable {
        var password: String?
        var user: String?
        var allowNets: String?
    }

    enum Fetch: Sendable {
        case found(Row, host: String)
        case unknown(host: String)
        case failure(String)
    }

    enum Attempt: Sendable {
        case rows([Row])
        /// The host could not be used; `reused`: on a connection that had answered before (it may have
        /// gone stale while idle, so a fresh connection decides).
        case hostError(String, reused: Bool)
        case statementError(String)
        case timedOut
        /// The server had no room for one more connection (`max_connections`, the role's limit): the
        /// host works; another loop's connections may take the lookup.
        case connectionLimit(String)
    }

    /// Runs the query within `query_timeout` in all: on the first host (in `connect` order) that is up;
    /// when none is, each host is probed in order (joining a probe under way) and the first that answers
    /// takes the query. A host that fails is marked down and the next one is tried. The query runs on a
    /// connection of the calling task's event loop (a client connection's, in the daemon).
    func fetch(_ request: PassdbRequest) async -> Fetch {
        let deadline = ContinuousClock.now + settings.queryTimeout
        let loopDeadline = NIODeadline.now() + .nanoseconds(settings.queryTimeout.nanoseconds)
        let loop = MultiThreadedEventLoopGroup.currentEventLoop
        var binds: [PostgresData] = []
        binds.reserveCapacity(settings.query.parameters.count)
        for use in settings.query.parameters { binds.append(PostgresData(string: use.value(in: request))) }
        var problems: [String] = []
        var tried = Set<Int>()
        var retried = false
        var rerouted: (index: Int, pool: PgLoopPool)?
        var limitWaits = 0
        while true {
            let index: Int
            let pool: PgLoopPool
            if let next = rerouted {
                (index, pool) = next
                rerouted = nil
            } else if let (i, up) = hosts.indices.lazy.compactMap({ i in tried.contains(i) ? nil : self.hosts[i].pool(on: loop).map { (i, $0) } }).first {
                // pool(on:) is nil while the host is not up: one lock per host asked, not two.
                (index, pool) = (i, up)
            } else if let i = hosts.indices.first(where: { !tried.contains($0) && !hosts[$0].isUp }) {
                tried.insert(i)
                let host = hosts[i]
                guard await untilDeadline(deadline, on: loop ?? group.next(), { await host.probe() }) == true, let up = host.pool(on: loop) else {
                    problems.append("\(host.endpoint): \(host.lastError ?? "no answer within query_timeout")")
                    if deadline <= .now { break }
                    continue
                }
                (index, pool) = (i, up)
            } else {
                break
            }
            tried.insert(index)
            let host = hosts[index]
            let attempt = (try? await pool.lookup(binds, deadline: loopDeadline).get()) ?? .hostError("the lookup was lost", reused: false)
            switch attempt {
            case .rows(let rows):
                switch rows.count {
                case 0: return .unknown(host: "\(host.endpoint)")
                case 1: return .found(rows[0], host: "\(host.endpoint)")
                default:
                    return .failure("password_query returned more than one row for this user (host \(host.endpoint)); it must return at most one")
                }
            case .statementError(let why):
                return .failure("password_query failed on \(host.endpoint): \(why)")
            case .timedOut:
                host.markDown("no answer within query_timeout (\(settings.queryTimeout))", epoch: pool.epoch)
                problems.append("\(host.endpoint): no answer within query_timeout")
                return .failure("no database host answered: " + problems.joined(separator: "; "))
            case .connectionLimit(let why):
                // The host works but has no room for a connection of this loop: another loop's
                // connections take the lookup; while none can (they are being opened), wait a little.
                if limitWaits < 40 && ContinuousClock.now.duration(to: deadline) > .milliseconds(50) {
                    if limitWaits > 0 { try? await Task.sleep(for: .milliseconds(25)) }
                    limitWaits += 1
                    rerouted = (index, host.pool(after: pool) ?? pool)
                    continue
                }
                problems.append("\(host.endpoint): \(why)")
            case .hostError(let why, let reused):
                if reused && !retried && deadline > .now {
                    // The connection had answered before and failed now (closed by the server or a
                    // firewall while idle): a fresh connection to the same host decides.
                    retried = true
                    tried.remove(index)
                    continue
                }
                host.markDown(why, epoch: pool.epoch)
                problems.append("\(host.endpoint): \(why)")
            }
        }
        return .failure("no database host answered: " + problems.joined(separator: "; "))
    }

    // MARK: PasswordDatabase

    public func verifyPlain(_ request: PassdbRequest, password: Secret) async -> PassdbResult {
        let row: Row
        switch await fetch(request) {
        case .failure(let why): return .internalFailure(why)
        case .unknown: return .userUnknown
        case .found(let found, _): row = found
        }
        if let refusal = netsRefusal(row, request) { return refusal }
        let stored: StoredPassword
        switch storedPassword(row) {
        case .failure(let why): return .schemeNotAvailable(why.description)
        case .success(let s): stored = s
        }
        let user = request.user
        let outcome: PasswordVerification
        if stored.scheme.isExpensive {
            outcome = await executor.run { stored.verify(password, user: user) }
        } else {
            outcome = stored.verify(password, user: user)
        }
        switch outcome {
        case .match:
            if let renamed = row.user, !renamed.isEmpty, renamed != request.user { return .okAs(user: renamed) }
            return .ok
        case .mismatch: return .passwordMismatch
        case .unverifiable(let why): return .schemeNotAvailable(why)
        }
    }

    public func lookupCredentials(_ request: PassdbRequest, scheme: CredentialScheme) async -> CredentialLookup {
        let row: Row
        switch await fetch(request) {
        case .failure(let why): return .internalFailure(why)
        case .unknown: return .userUnknown
        case .found(let found, _): row = found
        }
        if case .passwordMismatch? = netsRefusal(row, request) {
            return .schemeNotAvailable("allow_nets does not include the client's address")
        }
        let stored: StoredPassword
        switch storedPassword(row) {
        case .failure(let why): return .schemeNotAvailable(why.description)
        case .success(let s): stored = s
        }
        guard stored.credentialSchemes.contains(scheme) else {
            return .schemeNotAvailable("the password is stored as {\(stored.scheme)}, which cannot give \(scheme) credentials")
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

    /// A failure when the row's `allow_nets` does not include the client (Dovecot: an authentication
    /// failure, logged); nil when there is no list or the address is in it.
    private func netsRefusal(_ row: Row, _ request: PassdbRequest) -> PassdbResult? {
        guard let list = row.allowNets?.trimmingWhitespace, !list.isEmpty else { return nil }
        let nets = list.split(whereSeparator: { $0 == "," || $0 == " " }).map(String.init)
        guard let rip = request.remoteIP, nets.contains(where: { CIDR($0)?.contains(rip) ?? false }) else {
            logger.info(
                "allow_nets check failed: \(request.remoteIP.map { "\(sanitizeForLog($0)) is not in the allowed networks" } ?? "the client's address (rip) is not known")",
                metadata: ["auth.user": "\(sanitizeForLog(request.user))"])
            return .passwordMismatch
        }
        return nil
    }

    private func storedPassword(_ row: Row) -> Result<StoredPassword, PasswordSchemeError> {
        guard let field = row.password, !field.isEmpty else { return .failure(.emptyValue(settings.defaultScheme)) }
        let full = field.hasPrefix("{") || settings.defaultScheme == .crypt ? field : "{\(settings.defaultScheme)}\(field)"
        do { return .success(try StoredPassword(field: full)) } catch { return .failure(error) }
    }

    // MARK: checks and shutdown

    public func probe() async -> PassdbProbe? {
        let dummy = PassdbRequest(user: "saslgate-probe@invalid", mechanism: "PLAIN", service: "doctor")
        switch await fetch(dummy) {
        case .failure(let why):
            return PassdbProbe(reachable: false, lines: [why])
        case .unknown(let host), .found(_, let host):
            return PassdbProbe(reachable: true, lines: ["\(host) answered password_query for a dummy user"])
        }
    }

    public func explain(_ request: PassdbRequest) async -> [String] {
        var lines = settings.query.explained(for: request)
        switch await fetch(request) {
        case .failure(let why):
            lines.append("no answer: \(why)")
        case .unknown(let host):
            lines.append("answered by \(host): no row (unknown user)")
        case .found(let row, let host):
            let scheme: String
            switch storedPassword(row) {
            case .success(let s): scheme = "{\(s.scheme)}"
            case .failure(let e): scheme = "unusable (\(e))"
            }
            var line = "answered by \(host): one row, password \(scheme)"
            if let user = row.user { line += ", user=\(user)" }
            if let nets = row.allowNets { line += ", allow_nets=\(nets)" }
            lines.append(line)
        }
        return lines
    }

    public func retire() async {
        for host in hosts { await host.retire() }
    }

    public func close() async {
        for host in hosts { await host.close() }
    }
}

extension PgConnectString.Endpoint {
    var isUnixSocket: Bool { if case .unixSocket = self { true } else { false } }
}

extension String {
    fileprivate var trimmingWhitespace: String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}
