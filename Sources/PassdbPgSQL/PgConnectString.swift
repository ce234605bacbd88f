/// The `connect` setting: libpq-style `key=value` words, as Dovecot's pgsql `connect` (values may be
/// single-quoted, with `\'` and `\\` inside). Several hosts are tried in order (failover): repeat
/// `host=` or give a comma list. `port=` once applies to every host; as many ports as hosts pair up in
/// order (`host=db1 port=5432 host=db2 port=5433`). A host starting with `/` is a Unix-socket directory
/// (the socket is `DIR/.s.PGSQL.PORT`, as in libpq).
///
/// Keys: `host`, `port`, `dbname`, `user`, `password`, `sslmode` (`disable`, `require`, `verify-full`),
/// `sslrootcert` (for `verify-full`), `connect_timeout` (whole seconds, 1–9). The password is never shown
/// by `description` nor in an error.
public struct PgConnectString: Sendable, Equatable, CustomStringConvertible {
    /// One place to connect to.
    public enum Endpoint: Sendable, Equatable, CustomStringConvertible {
        case tcp(host: String, port: Int)
        /// The socket file's full path.
        case unixSocket(path: String)

        public var description: String {
            switch self {
            case .tcp(let host, let port): host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
            case .unixSocket(let path): path
            }
        }
    }

    public enum SSLMode: String, Sendable, CaseIterable {
        /// No TLS (the only mode for Unix sockets).
        case disable
        /// TLS, certificate not checked (as libpq's `require` without a root certificate).
        case require
        /// TLS, the certificate must chain to `sslrootcert` (or the system's roots) and name the host.
        case verifyFull = "verify-full"
    }

    public var endpoints: [Endpoint]
    public var database: String?
    public var user: String
    /// Password-equivalent: never logged.
    public var password: String?
    public var sslMode: SSLMode
    public var sslRootCert: String?
    /// Seconds for one connection attempt; nil: the passdb's default.
    public var connectTimeout: Int?

    /// The words without the password, for logs and `--explain`.
    public var description: String {
        var words = endpoints.map { "host=\($0)" }
        if let database { words.append("dbname=\(database)") }
        words.append("user=\(user)")
        if password != nil { words.append("password=<hidden>") }
        words.append("sslmode=\(sslMode.rawValue)")
        return words.joined(separator: " ")
    }

    static let knownKeys = ["host", "port", "dbname", "user", "password", "sslmode", "sslrootcert", "connect_timeout"]

    /// Parses the setting; the error names the word and the fix (never the password's value).
    public init(_ text: String) throws(PgConnectStringError) {
        var hosts: [String] = []
        var ports: [String] = []
        var single: [String: String] = [:]
        for (key, value) in try Self.words(text) {
            switch key {
            case "host":
                hosts += value.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            case "port":
                ports += value.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            case _ where Self.knownKeys.contains(key):
                guard single[key] == nil else { throw PgConnectStringError("'\(key)=' is given twice; keep one") }
                single[key] = value
            default:
                throw PgConnectStringError(
                    "unknown word '\(key)='; known: \(Self.knownKeys.joined(separator: ", "))")
            }
        }
        if hosts.isEmpty { hosts = ["/var/run/postgresql"] }
        if ports.isEmpty { ports = ["5432"] }
        guard ports.count == 1 || ports.count == hosts.count else {
            throw PgConnectStringError(
                "\(hosts.count) hosts but \(ports.count) ports; give one port= for all or one per host, in order")
        }
        var endpoints: [Endpoint] = []
        for (i, host) in hosts.enumerated() {
            let portText = ports.count == 1 ? ports[0] : ports[i]
            guard let port = Int(portText), (1...65535).contains(port) else {
                throw PgConnectStringError("port '\(portText)' is not a port number (1-65535)")
            }
            guard !host.isEmpty, host.allSatisfy({ !$0.isWhitespace && $0 != "\0" }) else {
                throw PgConnectStringError("an empty or malformed host=; write host=NAME, host=ADDRESS or host=/socket/dir")
            }
            endpoints.append(host.hasPrefix("/") ? .unixSocket(path: "\(host)/.s.PGSQL.\(port)") : .tcp(host: host, port: port))
        }
        guard endpoints.count <= 16 else { throw PgConnectStringError("more than 16 hosts; list at most 16") }
        self.endpoints = endpoints
        guard let user = single["user"], !user.isEmpty else {
            throw PgConnectStringError("'user=' is missing; name the database role, e.g. user=saslgate")
        }
        self.user = user
        database = single["dbname"]
        password = single["password"]
        let mode = single["sslmode"] ?? "disable"
        guard let sslMode = SSLMode(rawValue: mode) else {
            throw PgConnectStringError(
                "sslmode '\(mode)' is not supported; use disable, require or verify-full (with sslrootcert=)")
        }
        self.sslMode = sslMode
        sslRootCert = single["sslrootcert"]
        if let cert = sslRootCert, !cert.hasPrefix("/") {
            throw PgConnectStringError("sslrootcert must be an absolute path to a PEM file")
        }
        if sslRootCert != nil && sslMode != .verifyFull {
            throw PgConnectStringError("sslrootcert= is only used with sslmode=verify-full; set that or remove it")
        }
        if let t = single["connect_timeout"] {
            guard let n = Int(t), (1...9).contains(n) else {
                throw PgConnectStringError(
                    "connect_timeout '\(t)' must be whole seconds from 1 to 9 (Postfix waits 10 s for an answer)")
            }
            connectTimeout = n
        }
    }

    /// Splits `key=value` words; values may be single-quoted.
    static func words(_ text: String) throws(PgConnectStringError) -> [(String, String)] {
        var out: [(String, String)] = []
        var chars = Array(text)[...]
        while true {
            while let c = chars.first, c.isWhitespace { chars.removeFirst() }
            guard !chars.isEmpty else { return out }
            var key = ""
            while let c = chars.first, c != "=", !c.isWhitespace {
                key.append(c)
                chars.removeFirst()
            }
            while let c = chars.first, c.isWhitespace { chars.removeFirst() }
            guard chars.first == "=" else {
                throw PgConnectStringError("'\(key)' is not a key=value word; write e.g. host=db1 dbname=mail")
            }
            chars.removeFirst()
            while let c = chars.first, c.isWhitespace { chars.removeFirst() }
            var value = ""
            if chars.first == "'" {
                chars.removeFirst()
                var closed = false
                while let c = chars.popFirst() {
                    if c == "\\", let next = chars.popFirst() {
                        value.append(next)
                    } else if c == "'" {
                        closed = true
                        break
                    } else {
                        value.append(c)
                    }
                }
                guard closed else { throw PgConnectStringError("the quoted value of '\(key)=' is not closed with '") }
            } else {
                while let c = chars.first, !c.isWhitespace {
                    if c == "\\" {
                        chars.removeFirst()
                        if let next = chars.popFirst() { value.append(next) }
                        continue
                    }
                    value.append(c)
                    chars.removeFirst()
                }
            }
            out.append((key.lowercased(), value))
        }
    }
}

/// Why `connect` was refused (never quoting the password).
public struct PgConnectStringError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
