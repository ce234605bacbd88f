public import AuthConfig
public import Passdb

/// The settings file of a `pgsql:` passdb (`passdbs = pgsql:/etc/saslgate/pgsql.conf`), in the main
/// configuration's syntax; every problem is reported with `file:line` and the fix.
public struct PgSQLSettings: Sendable {
    public static let defaultQueryTimeout: Duration = .seconds(5)
    /// Postfix gives up on the auth server after 10 s: a query must end well before.
    public static let maximumQueryTimeout: Duration = .milliseconds(9_900)
    public static let defaultPoolSize = 2
    public static let maximumPoolSize = 64
    /// One connection attempt, when `connect` sets no `connect_timeout`.
    public static let defaultConnectTimeout: Duration = .seconds(2)

    public static let keys: [DriverConfigFile.Key] = [
        .init("connect", "libpq-style words: host=... [host=...] port= dbname= user= password= sslmode= sslrootcert= connect_timeout="),
        .init("password_query", "SELECT password [, user] [, allow_nets] FROM ... WHERE username = '%n' AND domain = '%d'"),
        .init("default_pass_scheme", default: "CRYPT", "the scheme of a password without a {SCHEME} prefix"),
        .init("pool_size", default: "\(defaultPoolSize)", "connections per event loop, 1-\(maximumPoolSize)"),
        .init("query_timeout", default: "5s", "longest wait for one lookup, 100ms to 9900ms"),
    ]

    public var connect: PgConnectString
    public var query: SQLTemplate
    public var defaultScheme: PasswordScheme
    public var poolSize: Int
    public var queryTimeout: Duration
    /// One connection attempt: `connect_timeout` or the default, never more than `queryTimeout`.
    public var connectTimeout: Duration

    /// Reads and checks `path`.
    public static func load(path: String) throws(ConfigErrors) -> PgSQLSettings {
        try PgSQLSettings(DriverConfigFile.load(path: path, keys: keys))
    }

    /// Checks a parsed file (tests and `load`).
    public init(_ file: DriverConfigFile) throws(ConfigErrors) {
        var errors: [ConfigError] = []
        var connect: PgConnectString?
        do { connect = try PgConnectString(file["connect"]) } catch { errors.append(file.error("connect", error.description)) }
        var query: SQLTemplate?
        do {
            query = try SQLTemplate(LookupTemplate(file["password_query"]))
        } catch let e as LookupTemplateError {
            errors.append(file.error("password_query", e.description))
        } catch let e as SQLTemplateError {
            errors.append(file.error("password_query", e.description))
        } catch {
            errors.append(file.error("password_query", "\(error)"))
        }
        let schemeName = file["default_pass_scheme"]
        let scheme = PasswordScheme(name: schemeName)
        if scheme == nil {
            errors.append(file.error("default_pass_scheme",
                "unknown scheme '\(schemeName)'; use one of \(PasswordScheme.allCases.map(\.rawValue).joined(separator: ", "))"))
        }
        let pool = Int(file["pool_size"])
        if pool == nil || !(1...Self.maximumPoolSize).contains(pool!) {
            errors.append(file.error("pool_size", "'\(file["pool_size"])' must be a whole number from 1 to \(Self.maximumPoolSize)"))
        }
        let timeout = Self.parseDuration(file["query_timeout"])
        if timeout == nil || timeout! < .milliseconds(100) || timeout! > Self.maximumQueryTimeout {
            errors.append(file.error("query_timeout",
                "'\(file["query_timeout"])' must be from 100ms to 9900ms (e.g. 5s): Postfix gives up on the auth server after 10 s"))
        }
        guard errors.isEmpty, let connect, let query, let scheme, let pool, let timeout else { throw ConfigErrors(errors) }
        self.connect = connect
        self.query = query
        self.defaultScheme = scheme
        self.poolSize = pool
        self.queryTimeout = timeout
        self.connectTimeout = min(connect.connectTimeout.map { Duration.seconds($0) } ?? Self.defaultConnectTimeout, timeout)
    }

    /// `5`, `5s`, `500ms` → a duration; nil for anything else.
    static func parseDuration(_ text: String) -> Duration? {
        if text.hasSuffix("ms"), let n = Int(text.dropLast(2)), n >= 0 { return .milliseconds(n) }
        if text.hasSuffix("s"), let n = Double(text.dropLast()), n >= 0, n < 1e6 { return .milliseconds(Int(n * 1000)) }
        if let n = Double(text), n >= 0, n < 1e6 { return .milliseconds(Int(n * 1000)) }
        return nil
    }
}
