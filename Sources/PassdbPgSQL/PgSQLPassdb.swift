public import AuthCore
public import Logging
public import NIOCore
import NIOPosix
public import Passdb
import PostgresNIO

/// The `pgsql` passdb: one row per user from PostgreSQL, found by `password_query` with the request's
/// values as bound parameters (see `SQLTemplate`), through a pooled client per host (see `PgHost`).
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
        let (tls, connectionTLS) = try Self.tls(settings.connect)
        var loops = 0
        for _ in group.makeIterator() { loops += 1 }
        self.hosts = settings.connect.endpoints.map { endpoint in
            PgHost(
                endpoint: endpoint, connect: settings.connect,
                tls: endpoint.isUnixSocket ? .disable : tls, connectionTLS: endpoint.isUnixSocket ? .disable : connectionTLS,
                maxConnections: settings.poolSize * max(1, loops), queryTimeout: settings.queryTimeout,
                connectTimeout: settings.connectTimeout, group: group, logger: logger)
        }
    }

    private static func tls(_ connect: PgConnectString) throws -> (PostgresClient.Configuration.TLS, PostgresConnection.Configuration.TLS) {
        switch connect.sslMode {
        case .disable:
            return (.disable, .disable)
        case .require:
            var c = TLSConfiguration.makeClientConfiguration()
            c.certificateVerification = .none
            return (.require(c), .require(try NIOSSLContext(configuration: c)))
        case .verifyFull:
            var c = TLSConfiguration.makeClientConfiguration()
            c.certificateVerification = .fullVerification
            if let root = connect.sslRootCert { c.trustRoots = .file(root) }
            return (.require(c), .require(try NIOSSLContext(configuration: c)))
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
        case hostError(String)
        case statementError(String)
    }

    /// Runs the query within `query_timeout` in all: on the first host (in `connect` order) that is up;
    /// when none is, each host is probed in order (joining a probe under way) and the first that answers
    /// takes the query. A host that fails is marked down and the next one is tried.
    func fetch(_ request: PassdbRequest) async -> Fetch {
        let deadline = ContinuousClock.now + settings.queryTimeout
        let query = boundQuery(request)
        var problems: [String] = []
        var tried = Set<Int>()
        while true {
            let client: PostgresClient
            let host: PgHost
            if let i = hosts.indices.first(where: { !tried.contains($0) && hosts[$0].client != nil }),
                let up = hosts[i].client {
                tried.insert(i)
                (host, client) = (hosts[i], up)
            } else if let i = hosts.indices.first(where: { !tried.contains($0) && hosts[$0].client == nil }) {
                tried.insert(i)
                host = hosts[i]
                guard await untilDeadline(deadline, on: group.any(), { await host.probe() }) == true, let up = host.client else {
                    problems.append("\(host.endpoint): \(host.lastError ?? "no answer within query_timeout")")
                    if deadline <= .now { break }
                    continue
                }
                client = up
            } else {
                break
            }
            let logger = self.logger
            guard let attempt = await untilDeadline(deadline, on: group.any(), { await Self.run(query, on: client, logger: logger) }) else {
                host.markDown("no answer within query_timeout (\(settings.queryTimeout))")
                problems.append("\(host.endpoint): no answer within query_timeout")
                break
            }
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
            case .hostError(let why):
                host.markDown(why)
                problems.append("\(host.endpoint): \(why)")
            }
        }
        return .failure("no database host answered: " + problems.joined(separator: "; "))
    }

    private func boundQuery(_ request: PassdbRequest) -> PostgresQuery {
        var bindings = PostgresBindings(capacity: settings.query.parameters.count)
        for value in settings.query.values(for: request) { bindings.append(value) }
        return PostgresQuery(unsafeSQL: settings.query.sql, binds: bindings)
    }

    private static func run(_ query: PostgresQuery, on client: PostgresClient, logger: Logger) async -> Attempt {
        do {
            let sequence = try await client.query(query, logger: logger)
            var rows: [Row] = []
            for try await row in sequence {
                if rows.count == 2 { continue }  // read to the end, keep two: enough to refuse
                let cells = row.makeRandomAccess()
                func text(_ column: String) throws -> String? {
                    guard cells.contains(column) else { return nil }
                    return try cells[column].decode(String?.self)
                }
                guard cells.contains("password") else {
                    return .statementError("the result has no 'password' column; select it (e.g. SELECT pw AS password ...)")
                }
                do {
                    rows.append(Row(password: try text("password"), user: try text("user"), allowNets: try text("allow_nets")))
                } catch {
                    return .statementError("a column is not text; cast password, user and allow_nets to text (e.g. allow_nets::text)")
                }
            }
            return .rows(rows)
        } catch {
            let why = PgErrors.describe(error)
            return PgErrors.kind(error) == .host ? .hostError(why) : .statementError(why)
        }
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
