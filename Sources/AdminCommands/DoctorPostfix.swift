/// Postfix's configuration as `saslgate doctor` reads it (through `postconf`), and the pure rules that
/// decide where smtpd looks for the auth socket, whether it runs chrooted, and whether it has TLS.

/// main.cf parameters as `postconf -c DIR -x NAME...` prints them (`name = value`, `$name` expanded).
public struct PostfixMainConfig: Sendable, Equatable {
    public var values: [String: String]

    public init(values: [String: String]) { self.values = values }

    /// Parses `name = value` lines; other lines (warnings) are ignored.
    public static func parse(postconfOutput: String) -> PostfixMainConfig {
        var values: [String: String] = [:]
        for line in postconfOutput.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let eq = line.firstIndex(of: "=") else { continue }
            let name = line[..<eq].doctorTrimmed()
            guard !name.isEmpty, !name.contains(" "), !name.contains("/") else { continue }
            values[name] = line[line.index(after: eq)...].doctorTrimmed()
        }
        return PostfixMainConfig(values: values)
    }

    public subscript(_ name: String) -> String? { values[name] }
}

/// One master.cf service (`postconf -M` prints one line per service).
public struct PostfixMasterService: Sendable, Equatable {
    public var name: String
    public var type: String
    /// The chroot column as written: `y`, `n` or `-`.
    public var chrootColumn: String
    public var command: String
    /// `-o name=value` overrides (from `postconf -Px`, values expanded).
    public var overrides: [String: String]

    public init(name: String, type: String, chrootColumn: String, command: String, overrides: [String: String] = [:]) {
        self.name = name
        self.type = type
        self.chrootColumn = chrootColumn
        self.command = command
        self.overrides = overrides
    }

    /// `smtp/inet`, the way Postfix names services.
    public var id: String { "\(name)/\(type)" }

    /// An SMTP server process (the `smtpd` command, not postscreen or the client).
    public var isSMTPServer: Bool { command == "smtpd" || command.hasSuffix("/smtpd") }

    /// Parses `postconf -M` output: `name type private unpriv chroot wakeup maxproc command [args]`.
    public static func parse(postconfM: String) -> [PostfixMasterService] {
        var services: [PostfixMasterService] = []
        for line in postconfM.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard fields.count >= 8, !fields[0].hasPrefix("#") else { continue }
            services.append(
                PostfixMasterService(name: fields[0], type: fields[1], chrootColumn: fields[4], command: fields[7]))
        }
        return services
    }

    /// Parses `postconf -Px` output (`service/type/parameter = value`) into the services' overrides.
    public static func applyOverrides(postconfP: String, to services: inout [PostfixMasterService]) {
        for line in postconfP.split(separator: "\n") {
            guard let eq = line.firstIndex(of: "=") else { continue }
            let key = line[..<eq].doctorTrimmed()
            let value = line[line.index(after: eq)...].doctorTrimmed()
            // The service name may itself contain '/' only in unusual setups; split from the right.
            let parts = key.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard parts.count >= 3 else { continue }
            let parameter = parts[parts.count - 1]
            let type = parts[parts.count - 2]
            let name = parts[0..<(parts.count - 2)].joined(separator: "/")
            for i in services.indices where services[i].name == name && services[i].type == type {
                services[i].overrides[parameter] = value
            }
        }
    }
}

/// Whether a master.cf service runs chrooted (in `queue_directory`).
public enum PostfixChroot {
    /// `y` / `n` as written; `-` means the built-in default, which is `y` with `compatibility_level`
    /// 0 (Postfix logs "using backwards-compatible default setting chroot=y") and `n` from level 1 on
    /// (observed with Postfix 3.7.11). Debian's stock master.cf writes `y` for smtpd explicitly.
    public static func isChrooted(column: String, compatibilityLevel: String) -> Bool {
        switch column {
        case "y": return true
        case "n": return false
        default: return compatibilityMajor(compatibilityLevel) < 1
        }
    }

    /// The leading number of `compatibility_level` (`0`, `2`, `3.6` → 3); unparsable counts as 0
    /// (the worst case for chroot decisions).
    static func compatibilityMajor(_ level: String) -> Int {
        Int(level.doctorTrimmed().prefix(while: { $0.isNumber })) ?? 0
    }

    /// Why: "chroot column y", "chroot column '-' = y (compatibility_level = 0)".
    public static func explanation(column: String, compatibilityLevel: String) -> String {
        switch column {
        case "y", "n": return "master.cf chroot column \(column)"
        default:
            let chrooted = isChrooted(column: column, compatibilityLevel: compatibilityLevel)
            return
                "master.cf chroot column '-', which means \(chrooted ? "y" : "n") with compatibility_level = \(compatibilityLevel.isEmpty ? "0" : compatibilityLevel)"
        }
    }
}

/// Where smtpd connects for `smtpd_sasl_path` (`xsasl_dovecot_server.c`: `inet:` = TCP, optional
/// `unix:` prefix; a relative path is relative to `queue_directory`, smtpd's working directory, both
/// chrooted and not).
public struct PostfixSASLPath: Sendable, Equatable {
    public enum Target: Sendable, Equatable {
        /// The socket's path as seen from outside any chroot.
        case unix(hostPath: String)
        case inet(String)
    }

    /// The value as configured.
    public var configured: String
    public var target: Target
    public var isRelative: Bool
    /// An absolute path with a chrooted smtpd: it really opens `queue_directory` + path.
    public var absoluteInChroot: Bool

    public static func resolve(_ configured: String, queueDirectory: String, chrooted: Bool) -> PostfixSASLPath {
        var value = Substring(configured.doctorTrimmed())
        if value.hasPrefix("inet:") {
            return PostfixSASLPath(
                configured: configured, target: .inet(String(value.dropFirst(5))), isRelative: false,
                absoluteInChroot: false)
        }
        if value.hasPrefix("unix:") { value = value.dropFirst(5) }
        let path = String(value)
        if path.hasPrefix("/") {
            let host = chrooted ? doctorNormalizePath(queueDirectory + "/" + path) : doctorNormalizePath(path)
            return PostfixSASLPath(
                configured: configured, target: .unix(hostPath: host), isRelative: false, absoluteInChroot: chrooted)
        }
        return PostfixSASLPath(
            configured: configured, target: .unix(hostPath: doctorNormalizePath(queueDirectory + "/" + path)),
            isRelative: true,
            absoluteInChroot: false)
    }

    public var hostPath: String? {
        if case .unix(let p) = target { return p }
        return nil
    }
}

/// `path` relative to `directory` when it lies inside it (`/var/spool/postfix/private/auth` →
/// `private/auth`), else nil.
public func doctorRelativePath(_ path: String, inside directory: String) -> String? {
    let p = doctorNormalizePath(path)
    let d = doctorNormalizePath(directory)
    guard d != "/" else { return p == "/" ? nil : String(p.dropFirst()) }
    guard p.hasPrefix(d + "/") else { return nil }
    return String(p.dropFirst(d.count + 1))
}

/// Collapses `//`, `/./` and `dir/..` and drops a trailing `/` (purely textual).
public func doctorNormalizePath(_ path: String) -> String {
    let absolute = path.hasPrefix("/")
    var parts: [Substring] = []
    for part in path.split(separator: "/", omittingEmptySubsequences: true) {
        if part == "." { continue }
        if part == "..", let last = parts.last, last != ".." {
            parts.removeLast()
            continue
        }
        if part == ".." && absolute { continue }
        parts.append(part)
    }
    let joined = parts.joined(separator: "/")
    return absolute ? "/" + joined : (joined.isEmpty ? "." : joined)
}

/// smtpd's TLS as far as SASL cares: is STARTTLS (or wrapper-mode TLS) possible at all, and is AUTH
/// offered before TLS.
public struct PostfixTLSPosture: Sendable, Equatable {
    /// `none`, `may` or `encrypt` (smtpd_tls_security_level, or the legacy smtpd_use_tls /
    /// smtpd_enforce_tls when it is empty).
    public var level: String
    public var wrapperMode: Bool
    /// The configured certificate parameters (`smtpd_tls_cert_file = /etc/...`), empty when none.
    public var certificates: [String]
    /// Certificate files configured but missing.
    public var missingCertificates: [String]
    public var authOnly: Bool

    public init(
        level: String, wrapperMode: Bool, certificates: [String], missingCertificates: [String] = [], authOnly: Bool
    ) {
        self.level = level
        self.wrapperMode = wrapperMode
        self.certificates = certificates
        self.missingCertificates = missingCertificates
        self.authOnly = authOnly
    }

    /// Parameters that name smtpd's certificate (any one is enough).
    public static let certificateParameters = [
        "smtpd_tls_chain_files", "smtpd_tls_cert_file", "smtpd_tls_eccert_file", "smtpd_tls_dcert_file",
    ]

    /// From the effective parameter values; `exists` says whether a certificate file is there.
    public static func from(_ value: (String) -> String, exists: (String) -> Bool) -> PostfixTLSPosture {
        var level = value("smtpd_tls_security_level").lowercased()
        if level.isEmpty {
            if doctorIsYes(value("smtpd_enforce_tls")) {
                level = "encrypt"
            } else if doctorIsYes(value("smtpd_use_tls")) {
                level = "may"
            } else {
                level = "none"
            }
        }
        var certificates: [String] = []
        var missing: [String] = []
        for name in certificateParameters {
            let files = doctorWords(value(name))
            guard !files.isEmpty else { continue }
            certificates.append("\(name) = \(value(name))")
            missing += files.filter { !exists($0) }
        }
        return PostfixTLSPosture(
            level: level, wrapperMode: doctorIsYes(value("smtpd_tls_wrappermode")), certificates: certificates,
            missingCertificates: missing, authOnly: doctorIsYes(value("smtpd_tls_auth_only")))
    }

    /// TLS can be negotiated: a level that offers it and a certificate that is there.
    public var tlsPossible: Bool {
        (wrapperMode || level == "may" || level == "encrypt") && !certificates.isEmpty && missingCertificates.isEmpty
    }

    /// Postfix offers AUTH on connections before TLS: not in wrapper mode (TLS from the start), not
    /// with `smtpd_tls_auth_only = yes` (even when TLS is impossible: then AUTH is never offered), not
    /// with level `encrypt` (STARTTLS comes first).
    public var authBeforeTLS: Bool {
        !wrapperMode && !authOnly && level != "encrypt"
    }

    /// Postfix offers AUTH after TLS is up.
    public var authAfterTLS: Bool { tlsPossible }
}

/// Postfix booleans: `yes` / `no` (case-insensitive).
func doctorIsYes(_ value: String) -> Bool { value.doctorTrimmed().lowercased() == "yes" }

extension StringProtocol {
    func doctorTrimmed() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" || f == "\n" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" || l == "\n" { s = s.dropLast() }
        return String(s)
    }
}
