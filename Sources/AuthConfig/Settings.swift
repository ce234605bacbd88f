import AuthCore

/// The daemon's settings. `conf/saslgated.conf` documents each key; keys are a contract: other tools
/// drive the daemon by these names. Every key, its default, its check and its one-line summary are in
/// `Settings.keys` (ConfigKeys.swift): `init()` sets every property below from that table's defaults, so
/// the values written here only satisfy the compiler.
public struct Settings: Equatable, Sendable {
    /// Where the settings came from (for messages).
    public var file: String = "(defaults)"
    /// The line each key was set on, for messages that name `file:line`.
    public var lines = KeyLines()

    /// Where to listen: Unix socket paths and TCP addresses (`inet:HOST:PORT`), in the order written;
    /// ignored when systemd passes sockets (those are served instead).
    public var listen: [ListenEndpoint] = []
    public var listenMode: UInt32 = 0
    public var listenUser: String? = nil
    public var listenGroup: String? = nil
    /// The networks whose hosts may connect to TCP endpoints; others are closed at accept.
    public var inetClients: [CIDR] = []
    /// PEM certificate chain and private key: when both are set, TCP endpoints speak TLS (1.2 or newer).
    public var inetTlsCert: String? = nil
    public var inetTlsKey: String? = nil
    /// Enabled mechanisms, upper case, in advertising order.
    public var mechanisms: [String] = []
    public var passdbs: [PassdbSpec] = []
    /// Realm appended to bare logins and to bare names in passwd-file tables.
    public var defaultRealm: String? = nil
    /// Realms accepted (lower case); empty: any. Others fail before any passdb is asked.
    public var realms: [String] = []
    /// Lower-case the whole login name before lookups (Dovecot's default `%Lu`).
    public var usernameLowercase = false
    /// Characters allowed in login names; empty: any printable except space, `:`, `/`, quotes.
    public var usernameChars = ""

    /// Dovecot's `auth_username_chars` plus `+` and `=` (common in mailbox names).
    public static let defaultUsernameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_@+="
    /// `require_app_passwords`: where SMTP logins with the main password are refused.
    public var requireAppPasswords: AppPasswordRequirement = .no
    /// `rehash_schemes`: weak stored hashes replaced after a successful login; nil: off.
    public var rehashSchemes: RehashSchemes? = nil
    /// Delay before an authentication failure is answered (seconds; 0 disables).
    public var failureDelay: Double = 0
    /// PLAIN and LOGIN fail on requests without `secured`.
    public var cleartextRequiresTLS = false
    /// Requests that are not finished after this long are dropped (Dovecot: 150 s).
    public var requestTimeout: Double = 0
    /// Most client connections served at once; further ones are refused.
    public var maxConnections = 0
    /// Most unfinished requests on one connection.
    public var maxPendingRequests = 0
    /// Threads for password hashing and blocking passdbs (0: one per CPU core).
    public var hashThreads = 0
    /// Threads serving client connections (0: one per CPU core).
    public var eventLoops = 0
    /// `debug`, `info`, `notice`, `warning`, `error`.
    public var logLevel = ""
    /// Host name used in CRAM-MD5 challenges and as the DIGEST-MD5 realm (empty: the system's).
    public var hostname = ""
    /// User to run as after the socket is bound and the files are open (when started as root).
    /// nil: stay as started.
    public var runUser: String? = nil
    /// A client must finish VERSION + CPID within this time, or it is disconnected.
    public var handshakeTimeout: Double = 0
    /// On SIGTERM, how long in-flight requests may take before the daemon exits anyway.
    public var shutdownTimeout: Double = 0
    /// Who may connect: user names, `@group` names or numeric uids; empty: anyone the socket allows.
    public var clientAllowlist: [String] = []
    /// Longest delay before a failure is answered once failures escalate (Postfix waits 10 s at most).
    public var penaltyMaxDelay: Double = 0
    /// Failures from one IP (or of one user from one IP) before a cool-down.
    public var penaltyBlockAfter = 0
    /// How long a cool-down lasts: requests get a fast FAIL without any passdb being asked.
    public var penaltyCooldown: Double = 0
    /// Failures older than this are forgotten.
    public var penaltyWindow: Double = 0
    /// Most keys (IPs, users, pairs) the penalty table holds.
    public var penaltyMaxEntries = 0
    /// Client networks exempt from counting and cool-downs (CIDR).
    public var trustedNetworks: [String] = []
    /// The user an ANONYMOUS login becomes; ANONYMOUS cannot be enabled while this is nil.
    public var anonymousUsername: String? = nil
    /// Who may act for whom: authcid → authzid patterns (`user@realm`, `*@realm`, `*`).
    public var authzRules: [AuthzRule] = []
    /// Cached verification results (0: no cache), success and failure lifetimes.
    public var authCacheSize = 0
    public var authCacheTTL: Double = 0
    public var authCacheNegativeTTL: Double = 0
    /// Local control socket for `saslgate stats` and `saslgate penalty` (mode 0600); nil: none.
    public var controlSocket: String? = nil

    /// The Unix socket paths of `listen`, in order.
    public var unixListenPaths: [String] { listen.compactMap(\.unixPath) }

    /// `inet_clients` as the file writes it.
    public var inetClientsText: String { inetClients.map(\.description).joined(separator: " ") }

    /// True when TCP endpoints speak TLS (`inet_tls_cert` and `inet_tls_key` are both set).
    public var inetTLS: Bool { inetTlsCert != nil && inetTlsKey != nil }

    /// The built-in defaults (`Settings.keys`).
    public init() {
        let context = ConfigKey.Context(resolve: { $0 }, passdbDrivers: nil, line: 0)
        for key in Settings.keys {
            let problems = key.read(key.defaultValue, &self, context)
            precondition(problems.isEmpty, "the default of \(key.name) is not valid: \(problems)")
        }
    }

    /// Known keys, for the unknown-key check.
    public static let knownKeys = keys.map(\.name)

    public static let defaultPath = "/etc/saslgate/saslgated.conf"

    /// Reads and validates a config file. Relative paths in it are taken relative to its directory;
    /// `passdbs` may name the drivers of `passdbDrivers`.
    public static func load(path rawPath: String, passdbDrivers: PassdbCatalog) throws(ConfigErrors) -> Settings {
        let path = absolutePath(rawPath)
        let text = try readConfigText(
            path, limit: ConfigFileParser.maxFileSize, fix: "create it (see conf/saslgated.conf) or pass -c FILE")
        return try parse(text: text, file: path, passdbDrivers: passdbDrivers)
    }

    /// Reads config text that came from `file`; every problem is reported, each with its line.
    public static func parse(text: String, file: String, passdbDrivers: PassdbCatalog) throws(ConfigErrors) -> Settings {
        let entries = try ConfigFileParser.parse(text: text, file: file)
        var s = Settings()
        s.file = file
        let baseDirectory = file.lastIndex(of: "/").map { String(file[..<$0]) } ?? ""
        func resolve(_ path: String) -> String {
            if path.hasPrefix("/") || baseDirectory.isEmpty { return path }
            var rest = Substring(path)
            while rest.hasPrefix("./") { rest = rest.dropFirst(2) }
            return baseDirectory + "/" + rest
        }
        var errors: [ConfigError] = []
        for e in entries {
            guard let key = keysByName[e.name] else {
                let hint = closest(e.name, in: knownKeys).map { name in
                    "; did you mean '\(name)'? (\(keysByName[name]!.summary))"
                } ?? ""
                errors.append(ConfigError(file: file, line: e.line, "unknown parameter '\(e.name)'\(hint)"))
                continue
            }
            s.lines[e.name] = e.line
            let context = ConfigKey.Context(resolve: resolve, passdbDrivers: passdbDrivers, line: e.line)
            for problem in key.read(e.value, &s, context) {
                errors.append(ConfigError(file: file, line: e.line, problem))
            }
        }
        if s.mechanisms.contains("ANONYMOUS") && s.anonymousUsername == nil {
            errors.append(ConfigError(file: file, line: s.lines["mechanisms"],
                "ANONYMOUS is enabled but anonymous_username is empty; set it (anonymous logins become that user) or remove anonymous from mechanisms"))
        }
        errors += s.listenProblems()
        if !errors.isEmpty { throw ConfigErrors(errors) }
        return s
    }

    /// What is wrong with the TCP settings taken together: half a TLS key pair, TCP endpoints nobody may
    /// reach.
    private func listenProblems() -> [ConfigError] {
        var errors: [ConfigError] = []
        switch (inetTlsCert, inetTlsKey) {
        case (.some, nil):
            errors.append(ConfigError(file: file, line: lines["inet_tls_cert"],
                "inet_tls_cert is set but inet_tls_key is not; set both (TLS on the inet: endpoints) or neither (plain TCP)"))
        case (nil, .some):
            errors.append(ConfigError(file: file, line: lines["inet_tls_key"],
                "inet_tls_key is set but inet_tls_cert is not; set both (TLS on the inet: endpoints) or neither (plain TCP)"))
        default: break
        }
        if inetClients.isEmpty && listen.contains(where: \.isInet) {
            errors.append(ConfigError(file: file, line: lines["inet_clients"] ?? lines["listen"],
                "listen has inet: endpoints but inet_clients is empty, so no host could connect; list the networks of the auth clients (e.g. inet_clients = 10.0.0.0/24) or remove the inet: endpoints"))
        }
        return errors
    }

    private static let keysByName = Dictionary(uniqueKeysWithValues: keys.map { ($0.name, $0) })
}

/// The line each key was set on. Where a key was written does not change what the settings mean, so
/// two `KeyLines` are always equal.
public struct KeyLines: Sendable, Equatable {
    private var lines: [String: Int] = [:]

    public init() {}

    /// The line of `key`, nil when the file does not set it.
    public subscript(key: String) -> Int? {
        get { lines[key] }
        set { lines[key] = newValue }
    }

    public static func == (_: KeyLines, _: KeyLines) -> Bool { true }
}
