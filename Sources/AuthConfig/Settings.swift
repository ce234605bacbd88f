#if canImport(Glibc)
import Glibc
#endif
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The daemon's settings, every one with its default. `conf/saslgated.conf` documents each key;
/// keys are a contract: other tools drive the daemon by these names.
public struct Settings: Equatable, Sendable {
    /// Where the settings came from (for messages).
    public var file: String = "(defaults)"

    /// Socket path; ignored when systemd passes a socket.
    public var listen: String = "/var/spool/postfix/private/auth"
    public var listenMode: UInt32 = 0o660
    public var listenUser: String? = "postfix"
    public var listenGroup: String? = "postfix"
    /// Enabled mechanisms, upper case, in advertising order.
    public var mechanisms: [String] = ["PLAIN", "LOGIN"]
    public var passdbs: [PassdbSpec] = [PassdbSpec(driver: "passwd-file", argument: "/etc/saslgate/users", line: 0)]
    /// Realm appended to bare logins and to bare names in passwd-file tables.
    public var defaultRealm: String? = nil
    /// Realms accepted (lower case); empty: any. Others fail before any passdb is asked.
    public var realms: [String] = []
    /// Lower-case the whole login name before lookups (Dovecot's default `%Lu`).
    public var usernameLowercase: Bool = true
    /// Characters allowed in login names; empty: any printable except space, `:`, `/`, quotes.
    public var usernameChars: String = Settings.defaultUsernameChars

    /// Dovecot's `auth_username_chars` plus `+` and `=` (common in mailbox names).
    public static let defaultUsernameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_@+="
    /// Delay before an authentication failure is answered (seconds; 0 disables).
    public var failureDelay: Double = 2
    /// PLAIN and LOGIN fail on requests without `secured`.
    public var cleartextRequiresTLS: Bool = true
    /// Requests that are not finished after this long are dropped (Dovecot: 150 s).
    public var requestTimeout: Double = 150
    /// Most client connections served at once; further ones are refused.
    public var maxConnections: Int = 16384
    /// Most unfinished requests on one connection.
    public var maxPendingRequests: Int = 1024
    /// Threads for password hashing and blocking passdbs (0: one per CPU core).
    public var hashThreads: Int = 0
    /// `debug`, `info`, `notice`, `warning`, `error`.
    public var logLevel: String = "info"
    /// Host name used in CRAM-MD5 challenges and as the DIGEST-MD5 realm (empty: the system's).
    public var hostname: String = ""
    /// User to run as after the socket is bound and the files are open (when started as root).
    /// nil: stay as started.
    public var runUser: String? = "saslgate"
    /// A client must finish VERSION + CPID within this time, or it is disconnected.
    public var handshakeTimeout: Double = 30
    /// On SIGTERM, how long in-flight requests may take before the daemon exits anyway.
    public var shutdownTimeout: Double = 10
    /// Who may connect: user names, `@group` names or numeric uids; empty: anyone the socket allows.
    public var clientAllowlist: [String] = []
    /// Longest delay before a failure is answered once failures escalate (Postfix waits 10 s at most).
    public var penaltyMaxDelay: Double = 5
    /// Failures from one IP (or of one user from one IP) before a cool-down.
    public var penaltyBlockAfter: Int = 10
    /// How long a cool-down lasts: requests get a fast FAIL without any passdb being asked.
    public var penaltyCooldown: Double = 600
    /// Failures older than this are forgotten.
    public var penaltyWindow: Double = 900
    /// Most keys (IPs, users, pairs) the penalty table holds.
    public var penaltyMaxEntries: Int = 100_000
    /// Client networks exempt from counting and cool-downs (CIDR).
    public var trustedNetworks: [String] = []
    /// The user an ANONYMOUS login becomes; ANONYMOUS cannot be enabled while this is nil.
    public var anonymousUsername: String? = nil
    /// Who may act for whom: authcid → authzid patterns (`user@realm`, `*@realm`, `*`).
    public var authzRules: [AuthzRule] = []
    /// Cached verification results (0: no cache), success and failure lifetimes.
    public var authCacheSize: Int = 0
    public var authCacheTTL: Double = 3600
    public var authCacheNegativeTTL: Double = 3600
    /// Local control socket for `saslgate stats` and `saslgate penalty` (mode 0600); nil: none.
    public var controlSocket: String? = "/run/saslgate/control"

    public init() {}

    /// Known keys, for the unknown-key check and `--check` output.
    public static let knownKeys: [String] = [
        "listen", "listen_mode", "listen_user", "listen_group", "mechanisms", "passdbs", "default_realm",
        "realms", "username_lowercase", "username_chars",
        "failure_delay", "cleartext_requires_tls", "request_timeout", "max_connections",
        "max_pending_requests", "hash_threads", "log_level", "hostname", "run_user", "handshake_timeout",
        "shutdown_timeout", "client_allowlist", "penalty_max_delay", "penalty_block_after", "penalty_cooldown",
        "penalty_window", "penalty_max_entries", "trusted_networks", "control_socket", "anonymous_username",
        "authz_rules", "auth_cache_size", "auth_cache_ttl", "auth_cache_negative_ttl",
    ]

    public static let defaultPath = "/etc/saslgate/saslgated.conf"

    /// Reads and validates a config file. Relative paths in it are taken relative to its directory;
    /// `passdbs` may name the drivers of `passdbDrivers`.
    public static func load(path rawPath: String, passdbDrivers: PassdbCatalog) throws(ConfigErrors) -> Settings {
        let path = absolutePath(rawPath)
        let text: String
        switch readSmallFile(path, limit: ConfigFileParser.maxFileSize) {
        case .success(let bytes):
            guard let decoded = String(validating: bytes, as: UTF8.self) else {
                throw ConfigErrors([ConfigError(file: path, line: nil, "not UTF-8 text")])
            }
            text = decoded
        case .failure(let problem):
            throw ConfigErrors([ConfigError(file: path, line: nil,
                "cannot read: \(problem); create it (see conf/saslgated.conf) or pass -c FILE")])
        }
        return try parse(text: text, file: path, passdbDrivers: passdbDrivers)
    }

    /// Reads config text that came from `file`; every problem is reported, each with its line.
    public static func parse(text: String, file: String, passdbDrivers: PassdbCatalog) throws(ConfigErrors) -> Settings {
        let entries = try ConfigFileParser.parse(text: text, file: file)
        var s = Settings()
        s.file = file
        let baseDirectory = file.lastIndex(of: "/").map { String(file[..<$0]) } ?? ""
        var errors: [ConfigError] = []
        func fail(_ e: ConfigEntry, _ message: String) { errors.append(ConfigError(file: file, line: e.line, message)) }
        func resolve(_ path: String) -> String {
            if path.hasPrefix("/") || baseDirectory.isEmpty { return path }
            var rest = Substring(path)
            while rest.hasPrefix("./") { rest = rest.dropFirst(2) }
            return baseDirectory + "/" + rest
        }

        for e in entries {
            switch e.name {
            case "listen":
                if e.value.isEmpty { fail(e, "listen needs a socket path") } else { s.listen = resolve(e.value) }
            case "listen_mode":
                if let mode = UInt32(e.value, radix: 8), mode <= 0o777 {
                    s.listenMode = mode
                    if mode & 0o002 != 0 {
                        // World-writable sockets let any local user brute-force passwords; allowed but noisy.
                    }
                } else {
                    fail(e, "listen_mode '\(e.value)' is not an octal mode like 0660")
                }
            case "listen_user": s.listenUser = e.value.isEmpty ? nil : e.value
            case "listen_group": s.listenGroup = e.value.isEmpty ? nil : e.value
            case "mechanisms":
                let names = words(e.value).map { $0.uppercased() }
                if names.isEmpty { fail(e, "mechanisms is empty; list at least one, e.g. 'plain login'") }
                var seen = Set<String>()
                for name in names where !seen.insert(name).inserted {
                    fail(e, "mechanism \(name) is listed twice")
                }
                s.mechanisms = names
            case "passdbs":
                let (specs, problems) = PassdbSpec.parseList(e.value, line: e.line, drivers: passdbDrivers, resolve: resolve)
                s.passdbs = specs
                for problem in problems { fail(e, problem) }
                if specs.isEmpty && problems.isEmpty {
                    let example = passdbDrivers.drivers.first?.example ?? "driver:argument"
                    fail(e, "passdbs is empty; list at least one, e.g. 'passdbs = \(example)'")
                }
            case "default_realm":
                s.defaultRealm = e.value.isEmpty ? nil : e.value.lowercased()
                if e.value.contains("@") || e.value.contains(where: { $0.isWhitespace }) {
                    fail(e, "default_realm '\(e.value)' must be a bare domain like example.org")
                }
            case "realms":
                s.realms = words(e.value).map { $0.lowercased() }
                for r in s.realms where r.contains("@") { fail(e, "realm '\(r)' must be a bare domain like example.org") }
            case "username_lowercase":
                if let b = parseBool(e.value) { s.usernameLowercase = b } else { fail(e, "username_lowercase must be yes or no") }
            case "username_chars":
                if e.value.contains(":") || e.value.contains(" ") || e.value.contains("/") {
                    fail(e, "username_chars may not contain ':', '/' or spaces (they would break passdb lookups)")
                } else {
                    s.usernameChars = e.value
                }
            case "failure_delay":
                if let v = parseDuration(e.value), v <= 5 { s.failureDelay = v } else {
                    fail(e, "failure_delay '\(e.value)' must be a duration from 0 to 5s (Postfix gives up after 10s)")
                }
            case "cleartext_requires_tls":
                if let b = parseBool(e.value) { s.cleartextRequiresTLS = b } else { fail(e, "cleartext_requires_tls must be yes or no") }
            case "request_timeout":
                if let v = parseDuration(e.value), v >= 1, v <= 3600 { s.requestTimeout = v } else {
                    fail(e, "request_timeout '\(e.value)' must be a duration from 1s to 1h")
                }
            case "max_connections":
                if let v = Int(e.value), v >= 1, v <= 1_000_000 { s.maxConnections = v } else {
                    fail(e, "max_connections '\(e.value)' must be a number from 1 to 1000000")
                }
            case "max_pending_requests":
                if let v = Int(e.value), v >= 1, v <= 65536 { s.maxPendingRequests = v } else {
                    fail(e, "max_pending_requests '\(e.value)' must be a number from 1 to 65536")
                }
            case "hash_threads":
                if let v = Int(e.value), v >= 0, v <= 256 { s.hashThreads = v } else {
                    fail(e, "hash_threads '\(e.value)' must be a number from 0 (one per core) to 256")
                }
            case "log_level":
                let v = e.value.lowercased()
                if ["debug", "info", "notice", "warning", "error"].contains(v) { s.logLevel = v } else {
                    fail(e, "log_level '\(e.value)' must be debug, info, notice, warning or error")
                }
            case "hostname": s.hostname = e.value
            case "run_user": s.runUser = e.value.isEmpty ? nil : e.value
            case "handshake_timeout":
                if let v = parseDuration(e.value), v >= 1, v <= 600 { s.handshakeTimeout = v } else {
                    fail(e, "handshake_timeout '\(e.value)' must be a duration from 1s to 10m")
                }
            case "shutdown_timeout":
                if let v = parseDuration(e.value), v <= 300 { s.shutdownTimeout = v } else {
                    fail(e, "shutdown_timeout '\(e.value)' must be a duration from 0 to 5m")
                }
            case "client_allowlist": s.clientAllowlist = words(e.value)
            case "penalty_max_delay":
                if let v = parseDuration(e.value), v <= 8 { s.penaltyMaxDelay = v } else {
                    fail(e, "penalty_max_delay '\(e.value)' must be a duration from 0 to 8s (Postfix gives up after 10s and answers 454)")
                }
            case "penalty_block_after":
                if let v = Int(e.value), v >= 1, v <= 100_000 { s.penaltyBlockAfter = v } else {
                    fail(e, "penalty_block_after '\(e.value)' must be a number from 1 to 100000")
                }
            case "penalty_cooldown":
                if let v = parseDuration(e.value), v <= 86400 { s.penaltyCooldown = v } else {
                    fail(e, "penalty_cooldown '\(e.value)' must be a duration up to 1 day (0 disables cool-downs)")
                }
            case "penalty_window":
                if let v = parseDuration(e.value), v >= 1, v <= 86400 { s.penaltyWindow = v } else {
                    fail(e, "penalty_window '\(e.value)' must be a duration from 1s to 1 day")
                }
            case "penalty_max_entries":
                if let v = Int(e.value), v >= 100, v <= 10_000_000 { s.penaltyMaxEntries = v } else {
                    fail(e, "penalty_max_entries '\(e.value)' must be a number from 100 to 10000000")
                }
            case "control_socket": s.controlSocket = e.value.isEmpty ? nil : resolve(e.value)
            case "auth_cache_size":
                if let v = Int(e.value), v >= 0, v <= 10_000_000 { s.authCacheSize = v } else {
                    fail(e, "auth_cache_size '\(e.value)' must be a number of entries from 0 (off) to 10000000")
                }
            case "auth_cache_ttl", "auth_cache_negative_ttl":
                if let v = parseDuration(e.value), v <= 86400 * 7 {
                    if e.name == "auth_cache_ttl" { s.authCacheTTL = v } else { s.authCacheNegativeTTL = v }
                } else {
                    fail(e, "\(e.name) '\(e.value)' must be a duration up to 7 days")
                }
            case "anonymous_username":
                s.anonymousUsername = e.value.isEmpty ? nil : e.value
            case "authz_rules":
                s.authzRules = []
                for word in words(e.value) {
                    guard let rule = AuthzRule(word) else {
                        fail(e, "authz_rules: '\(word)' must be AUTHCID=>AUTHZID, e.g. relay@example.org=>*@example.org")
                        continue
                    }
                    s.authzRules.append(rule)
                }
            case "trusted_networks":
                s.trustedNetworks = words(e.value)
                for n in s.trustedNetworks where !isCIDR(n) {
                    fail(e, "trusted_networks: '\(n)' is not an address or network like 192.0.2.0/24 or 2001:db8::/32")
                }
            default:
                let hint = closest(e.name, in: knownKeys).map { "; did you mean '\($0)'?" } ?? ""
                fail(e, "unknown parameter '\(e.name)'\(hint)")
            }
        }
        if s.mechanisms.contains("ANONYMOUS") && s.anonymousUsername == nil {
            let line = entries.first(where: { $0.name == "mechanisms" })?.line
            errors.append(ConfigError(file: file, line: line,
                "ANONYMOUS is enabled but anonymous_username is empty; set it (anonymous logins become that user) or remove anonymous from mechanisms"))
        }
        if !errors.isEmpty { throw ConfigErrors(errors) }
        return s
    }

    /// `path` made absolute against the current directory, so paths derived from it stay valid.
    static func absolutePath(_ path: String) -> String {
        guard !path.hasPrefix("/") else { return path }
        var buf = [CChar](repeating: 0, count: 4096)
        guard getcwd(&buf, buf.count) != nil else { return path }
        var cwd = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if cwd.hasSuffix("/") { cwd.removeLast() }
        var rest = Substring(path)
        while rest.hasPrefix("./") { rest = rest.dropFirst(2) }
        return cwd + "/" + rest
    }

    static func isCIDR(_ text: String) -> Bool {
        let parts = text.split(separator: "/", maxSplits: 1)
        guard let first = parts.first else { return false }
        var v4 = in_addr()
        var v6 = in6_addr()
        let address = String(first)
        let isV4 = inet_pton(AF_INET, address, &v4) == 1
        guard isV4 || inet_pton(AF_INET6, address, &v6) == 1 else { return false }
        if parts.count == 2 {
            guard let p = Int(parts[1]), p >= 0, p <= (isV4 ? 32 : 128) else { return false }
        }
        return true
    }

    /// Splits a list value at white space and commas, as Postfix does.
    static func words(_ value: String) -> [String] {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," }).map(String.init)
    }

    static func parseBool(_ v: String) -> Bool? {
        switch v.lowercased() {
        case "yes", "true", "on", "1": true
        case "no", "false", "off", "0": false
        default: nil
        }
    }

    /// `2`, `2s`, `500ms`, `1m`, `1h` → seconds.
    static func parseDuration(_ v: String) -> Double? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600)]
        for (suffix, factor) in units where v.hasSuffix(suffix) {
            guard let n = Double(v.dropLast(suffix.count)), n >= 0, n.isFinite else { return nil }
            return n * factor
        }
        guard let n = Double(v), n >= 0, n.isFinite else { return nil }
        return n
    }

    static func closest(_ name: String, in candidates: [String]) -> String? {
        candidates.first { $0.hasPrefix(name) || name.hasPrefix($0) || editDistance($0, name) <= 2 }
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var row = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var prev = row[0]
            row[0] = i
            for j in 1...max(b.count, 1) where !b.isEmpty {
                let cur = row[j]
                row[j] = min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] == b[j - 1] ? 0 : 1))
                prev = cur
            }
        }
        return row[b.count]
    }
}
