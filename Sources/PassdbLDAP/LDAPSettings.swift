public import AuthConfig
public import AuthCore
public import Passdb
import CLDAP

#if canImport(Glibc)
import Glibc
#endif

/// The settings of one `ldap:/etc/saslgate/ldap.conf` passdb, read from that file with Dovecot's
/// `dovecot-ldap.conf.ext` key names (so an existing file carries over; see docs/LDAP.md). Every problem
/// is reported with `file:line` and what to write instead.
public struct LDAPSettings: Sendable {
    /// `scope`.
    public enum Scope: String, Sendable, CaseIterable {
        case base, onelevel, subtree

        var libValue: Int32 {
            switch self {
            case .base: saslgate_ldap_scope_base
            case .onelevel: saslgate_ldap_scope_onelevel
            case .subtree: saslgate_ldap_scope_subtree
            }
        }
    }

    /// `deref`.
    public enum Deref: String, Sendable, CaseIterable {
        case never, searching, finding, always

        var libValue: Int32 {
            switch self {
            case .never: LDAP_DEREF_NEVER
            case .searching: LDAP_DEREF_SEARCHING
            case .finding: LDAP_DEREF_FINDING
            case .always: LDAP_DEREF_ALWAYS
            }
        }
    }

    /// `tls_require_cert`: OpenLDAP's TLS_REQCERT levels.
    public enum RequireCert: String, Sendable, CaseIterable {
        case never, allow, `try`, demand, hard

        var libValue: Int32 {
            switch self {
            case .never: LDAP_OPT_X_TLS_NEVER
            case .allow: LDAP_OPT_X_TLS_ALLOW
            case .try: LDAP_OPT_X_TLS_TRY
            case .demand: LDAP_OPT_X_TLS_DEMAND
            case .hard: LDAP_OPT_X_TLS_HARD
            }
        }
    }

    /// The settings file.
    public var file: String
    /// Servers, tried in order (`ldap://`, `ldaps://`, `ldapi://`).
    public var uris: [String]
    /// StartTLS on `ldap://` servers.
    public var startTLS: Bool
    public var caCertFile: String?
    public var requireCert: RequireCert
    /// The service account; nil: searches are anonymous.
    public var bindDN: String?
    public var bindPassword: Secret?
    public var base: String
    public var scope: Scope
    public var deref: Deref
    public var referrals: Bool
    /// Connect, each operation, and a whole request (queueing included) take at most this long.
    public var timeout: Duration
    public var authBind: Bool
    /// `auth_bind_userdn`: the user's DN without a search.
    public var authBindUserDN: LookupTemplate?
    public var passFilter: LookupTemplate
    /// The LDAP attribute holding the password (`auth_bind = no`), from `pass_attrs`.
    public var passwordAttribute: String?
    /// The LDAP attribute named `=user` in `pass_attrs` (shown by `--explain`).
    public var userAttribute: String?
    /// `{SCHEME}` of stored values that carry none.
    public var defaultPassScheme: PasswordScheme
    /// Threads, each with its own connections.
    public var maxConnections: Int
    /// Requests that may wait for a thread; one more fails at once (temporary).
    public var maxQueue: Int

    public static let defaultTimeout: Duration = .seconds(5)
    public static let maximumTimeout: Duration = .seconds(9)

    /// The keys of the file. Dovecot keys that only concern its userdb or iteration are accepted and
    /// ignored, so a shared file needs no edit; everything that changes who may log in is either
    /// implemented or refused.
    public static let keys: [DriverConfigFile.Key] = [
        .init("uris", "LDAP servers tried in order, e.g. ldap://ldap1 ldaps://ldap2"),
        .init("hosts", default: "", "Dovecot's old host list: not supported, write uris = ldap://HOST"),
        .init("tls", default: "no", "yes: StartTLS on ldap:// servers"),
        .init("tls_ca_cert_file", default: "", "CA certificates to check the server's certificate with"),
        .init("tls_require_cert", default: "hard", "never|allow|try|demand|hard"),
        .init("dn", default: "", "the service account's DN (empty: anonymous searches)"),
        .init("dnpass", default: "", "the service account's password"),
        .init("dnpass_file", default: "", "a file holding the service account's password (instead of dnpass)"),
        .init("base", "where users are searched, e.g. ou=people,dc=example,dc=org"),
        .init("scope", default: "subtree", "base|onelevel|subtree"),
        .init("deref", default: "never", "never|searching|finding|always"),
        .init("referrals", default: "no", "follow referrals (no for Active Directory)"),
        .init("timeout", default: "5s", "per connect, operation and request; 10ms to 9s"),
        .init("auth_bind", default: "no", "yes: check the password by binding as the user"),
        .init("auth_bind_userdn", default: "", "the user's DN template, e.g. uid=%n,ou=people,dc=example,dc=org"),
        .init("pass_filter", default: "(&(objectClass=posixAccount)(uid=%u))", "the search filter"),
        .init("pass_attrs", default: "uid=user,userPassword=password", "LDAP attribute=field pairs"),
        .init("default_pass_scheme", default: "CRYPT", "the scheme of stored passwords without {SCHEME}"),
        .init("ldap_version", default: "3", "only 3"),
        .init("max_connections", default: "8", "threads, each with its own connections, 1-64"),
        .init("max_queue", default: "256", "requests waiting for a thread, 0-65536"),
        .init("user_filter", default: "", "ignored (userdb)"),
        .init("user_attrs", default: "", "ignored (userdb)"),
        .init("iterate_filter", default: "", "ignored (userdb iteration)"),
        .init("iterate_attrs", default: "", "ignored (userdb iteration)"),
        .init("blocking", default: "", "ignored (saslgate always uses its own threads)"),
        .init("debug_level", default: "", "ignored (use log_level = debug)"),
    ]

    /// Reads and checks the file at `path`.
    public static func load(path: String) throws(ConfigErrors) -> LDAPSettings {
        try LDAPSettings(DriverConfigFile.load(path: path, keys: keys))
    }

    /// Checks text said to come from `file` (tests).
    public static func parse(text: String, file: String) throws(ConfigErrors) -> LDAPSettings {
        try LDAPSettings(DriverConfigFile.parse(text: text, file: file, keys: keys))
    }

    init(_ f: DriverConfigFile) throws(ConfigErrors) {
        var errors: [ConfigError] = []
        func fail(_ key: String, _ message: String) { errors.append(f.error(key, message)) }

        file = f.file
        if f.isSet("hosts") { fail("hosts", "not supported; write uris = ldap://HOST (several separated by spaces)") }
        uris = f["uris"].split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\t" }).map(String.init)
        if uris.isEmpty { fail("uris", "empty; write e.g. uris = ldap://ldap.example.org") }
        for uri in uris {
            let lower = uri.lowercased()
            guard lower.hasPrefix("ldap://") || lower.hasPrefix("ldaps://") || lower.hasPrefix("ldapi://") else {
                fail("uris", "'\(sanitizeForLog(uri))' is not an ldap://, ldaps:// or ldapi:// URI")
                continue
            }
            if uri.utf8.contains(where: { $0 < 0x21 || $0 == 0x7F }) { fail("uris", "'\(sanitizeForLog(uri))' contains control characters") }
        }
        startTLS = Self.bool(f, "tls", &errors)
        caCertFile = f["tls_ca_cert_file"].isEmpty ? nil : f["tls_ca_cert_file"]
        if let ca = caCertFile, access(ca, R_OK) != 0 {
            fail("tls_ca_cert_file", "cannot read \(ca); give the CA certificate file (PEM) that signed the server's certificate")
        }
        requireCert = Self.choice(f, "tls_require_cert", &errors) ?? .hard

        bindDN = f["dn"].isEmpty ? nil : f["dn"]
        bindPassword = nil
        if f.isSet("dnpass") && f.isSet("dnpass_file") {
            fail("dnpass_file", "set either dnpass or dnpass_file, not both")
            bindPassword = Secret("ambiguous")  // reported above
        } else if f.isSet("dnpass_file") {
            switch Self.readPasswordFile(f["dnpass_file"]) {
            case .success(let secret): bindPassword = secret
            case .failure(let why):
                fail("dnpass_file", why.description)
                bindPassword = Secret("unread")  // reported above; do not also say it is missing
            }
        } else if f.isSet("dnpass") {
            bindPassword = Secret(f["dnpass"])
        }
        if bindDN != nil && (bindPassword?.isEmpty ?? true) {
            fail("dn", "a service account needs its password: set dnpass or dnpass_file (an empty password would bind anonymously)")
        }
        if bindDN == nil && bindPassword != nil { fail("dnpass", "set without dn; add dn = THE_SERVICE_ACCOUNT_DN") }

        base = f["base"]
        if base.isEmpty { fail("base", "empty; write e.g. base = ou=people,dc=example,dc=org") }
        scope = Self.choice(f, "scope", &errors) ?? .subtree
        deref = Self.choice(f, "deref", &errors) ?? .never
        referrals = Self.bool(f, "referrals", &errors)
        timeout = Self.defaultTimeout
        if let t = Self.duration(f["timeout"]) {
            timeout = t
        } else {
            fail("timeout", "'\(f["timeout"])' is not a duration from 10ms to 9s (Postfix waits 10s for the auth server); write e.g. 5s")
        }
        authBind = Self.bool(f, "auth_bind", &errors)
        authBindUserDN = nil
        passFilter = (try? LookupTemplate("(uid=%u)"))!
        do {
            passFilter = try LookupTemplate(f["pass_filter"])
        } catch {
            fail("pass_filter", "\(error)")
        }
        if !(f["pass_filter"].hasPrefix("(") && f["pass_filter"].hasSuffix(")")) {
            fail("pass_filter", "a filter is written in parentheses, e.g. (&(objectClass=inetOrgPerson)(mail=%u))")
        }
        if !f["auth_bind_userdn"].isEmpty {
            if !authBind { fail("auth_bind_userdn", "only used with auth_bind = yes; set auth_bind = yes or remove it") }
            do {
                authBindUserDN = try LookupTemplate(f["auth_bind_userdn"])
            } catch {
                fail("auth_bind_userdn", "\(error)")
            }
        }
        passwordAttribute = nil
        userAttribute = nil
        switch Self.passAttributes(f["pass_attrs"]) {
        case .success(let (user, password)):
            userAttribute = user
            passwordAttribute = password
        case .failure(let why):
            fail("pass_attrs", why.description)
        }
        if !authBind && passwordAttribute == nil {
            fail("pass_attrs", "with auth_bind = no, name the attribute holding the password, e.g. userPassword=password")
        }
        defaultPassScheme = PasswordScheme(name: f["default_pass_scheme"]) ?? .crypt
        if PasswordScheme(name: f["default_pass_scheme"]) == nil {
            fail("default_pass_scheme", "unknown scheme '\(sanitizeForLog(f["default_pass_scheme"]))'; known: "
                + PasswordScheme.allCases.map(\.rawValue).joined(separator: ", "))
        }
        if f["ldap_version"] != "3" { fail("ldap_version", "only LDAP version 3 is supported") }
        maxConnections = Self.int(f, "max_connections", 1...64, &errors) ?? 8
        maxQueue = Self.int(f, "max_queue", 0...65_536, &errors) ?? 256
        if !errors.isEmpty { throw ConfigErrors(errors) }
    }

    /// Whether the connection to `uri` is encrypted (ldaps://, StartTLS) or local (ldapi://).
    public func isProtected(_ uri: String) -> Bool {
        let lower = uri.lowercased()
        return lower.hasPrefix("ldaps://") || lower.hasPrefix("ldapi://") || startTLS
    }

    // MARK: - Value parsers

    static func bool(_ f: DriverConfigFile, _ key: String, _ errors: inout [ConfigError]) -> Bool {
        switch f[key].lowercased() {
        case "yes", "true", "on", "1": return true
        case "no", "false", "off", "0", "": return false
        default:
            errors.append(f.error(key, "'\(sanitizeForLog(f[key]))' is not yes or no"))
            return false
        }
    }

    static func choice<T: RawRepresentable & CaseIterable>(
        _ f: DriverConfigFile, _ key: String, _ errors: inout [ConfigError]
    ) -> T? where T.RawValue == String {
        if let v = T(rawValue: f[key].lowercased()) { return v }
        errors.append(f.error(key, "'\(sanitizeForLog(f[key]))' is not one of " + T.allCases.map(\.rawValue).joined(separator: "|")))
        return nil
    }

    static func int(_ f: DriverConfigFile, _ key: String, _ range: ClosedRange<Int>, _ errors: inout [ConfigError]) -> Int? {
        if let n = Int(f[key]), range.contains(n) { return n }
        errors.append(f.error(key, "'\(sanitizeForLog(f[key]))' is not a whole number from \(range.lowerBound) to \(range.upperBound)"))
        return nil
    }

    /// `250ms`, `5s`, or a bare number of seconds; 10 ms to 9 s.
    static func duration(_ text: String) -> Duration? {
        let lower = text.lowercased()
        var digits = Substring(lower)
        var millisPerUnit = 1000.0
        if lower.hasSuffix("ms") {
            digits = lower.dropLast(2)
            millisPerUnit = 1
        } else if lower.hasSuffix("s") {
            digits = lower.dropLast(1)
        }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }), let n = Double(digits) else {
            return nil
        }
        let millis = n * millisPerUnit
        guard millis >= 10, millis <= 9000 else { return nil }
        return .milliseconds(Int64(millis.rounded()))
    }

    /// `pass_attrs`: `ldapAttr=field` pairs, comma-separated. `password` names the password attribute,
    /// `user` the name attribute; `userdb_*` fields are ignored (saslgate has no userdb). Any other field
    /// (`nologin`, `allow_nets`, `proxy`, templates ...) is refused: ignoring it could let in someone the
    /// directory meant to keep out.
    static func passAttributes(_ text: String) -> Result<(user: String?, password: String?), StringError> {
        var user: String?
        var password: String?
        for item in text.split(separator: ",") {
            let pair = item.trimmingCharacters(in: " \t")
            if pair.isEmpty { continue }
            guard let eq = pair.firstIndex(of: "="), eq != pair.startIndex else {
                return .failure(StringError("'\(sanitizeForLog(pair))' is not ldapAttribute=field, e.g. userPassword=password"))
            }
            let attribute = pair[..<eq].trimmingCharacters(in: " \t")
            let field = pair[pair.index(after: eq)...].trimmingCharacters(in: " \t")
            guard attribute.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == ";") }) else {
                return .failure(StringError("'\(sanitizeForLog(attribute))' is not an LDAP attribute name (templates are not supported)"))
            }
            switch field.lowercased() {
            case "password": password = attribute
            case "user": user = attribute
            case let f where f.hasPrefix("userdb_"): continue
            default:
                return .failure(StringError("field '\(sanitizeForLog(field))' is not supported (only user, password and ignored userdb_* fields); remove it rather than have it silently ignored"))
            }
        }
        return .success((user, password))
    }

    /// The first line of a file that must not be readable by others (it holds a password).
    static func readPasswordFile(_ path: String) -> Result<Secret, StringError> {
        var st = stat()
        guard stat(path, &st) == 0 else { return .failure(StringError("cannot read \(path): \(String(cString: strerror(errno)))")) }
        if st.st_mode & 0o007 != 0 {
            return .failure(StringError("\(path) may be read by others; chmod 0640 \(path)"))
        }
        guard let fp = fopen(path, "r") else { return .failure(StringError("cannot read \(path): \(String(cString: strerror(errno)))")) }
        defer { fclose(fp) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = fread(&buffer, 1, buffer.count, fp)
        defer { buffer.withUnsafeMutableBytes { if let p = $0.baseAddress { explicit_bzero(p, $0.count) } } }
        var end = 0
        while end < n, buffer[end] != 0x0A, buffer[end] != 0x0D { end += 1 }
        guard end > 0 else { return .failure(StringError("\(path) is empty; put the password on its first line")) }
        return .success(Secret(buffer[0..<end]))
    }
}

/// A message for a `file:line` error.
public struct StringError: Error, CustomStringConvertible, Sendable {
    public var description: String
    init(_ description: String) { self.description = description }
}

extension StringProtocol {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let c = s.first, set.contains(c) { s = s.dropFirst() }
        while let c = s.last, set.contains(c) { s = s.dropLast() }
        return String(s)
    }
}
