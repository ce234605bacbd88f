/// Which name the PAM stack sees for a login `local@realm`.
public enum RealmStripping: String, Sendable, Hashable, CaseIterable {
    /// Strip `@realm` only when it is the configured default realm (`alice@example.org` -> `alice` when
    /// `default_realm = example.org`); other realms go to PAM whole. A bare name stays bare.
    case `default`
    /// Always pass the local part (`alice@anything` -> `alice`). Different realms then share one account.
    case all
    /// Always pass the login name as the client sent it (`alice@example.org`).
    case none
}

/// Settings of one `pam:SERVICE` passdb. Build it directly or with `parse(_:)` from `key=value` pairs.
public struct PAMOptions: Sendable, Equatable {
    /// Which name PAM sees. Default `.default`.
    public var stripRealm: RealmStripping
    /// PAM calls that may run at once (threads of the pool). Default 8.
    public var maxConcurrency: Int
    /// Requests that may wait for a free thread; one more is refused at once with `PAM busy`. Default 256.
    public var maxQueue: Int
    /// Threads abandoned in a hung PAM call that the pool replaces. Beyond this many, a hung call is not
    /// replaced and the pool shrinks; with none left it refuses at once. Default: `maxConcurrency`.
    public var maxStuck: Int
    /// The longest a caller waits, queueing included. Must stay well under Postfix's 10 s. Default 5 s.
    public var timeout: Duration
    /// Where PAM reads the service file (`pam_start_confdir`); nil means `/etc/pam.d` (`pam_start`).
    public var confDir: String?

    public static let defaultMaxConcurrency = 8
    public static let defaultMaxQueue = 256
    public static let defaultTimeout: Duration = .seconds(5)
    /// The longest accepted timeout: Postfix gives up on the auth server after 10 s.
    public static let maximumTimeout: Duration = .seconds(9)
    public static let minimumTimeout: Duration = .milliseconds(10)
    public static let maximumConcurrency = 256
    public static let maximumQueue = 65_536

    public init(
        stripRealm: RealmStripping = .default, maxConcurrency: Int = PAMOptions.defaultMaxConcurrency,
        maxQueue: Int = PAMOptions.defaultMaxQueue, maxStuck: Int? = nil, timeout: Duration = PAMOptions.defaultTimeout,
        confDir: String? = nil
    ) {
        self.stripRealm = stripRealm
        self.maxConcurrency = maxConcurrency
        self.maxQueue = maxQueue
        self.maxStuck = maxStuck ?? maxConcurrency
        self.timeout = timeout
        self.confDir = confDir
    }

    /// The option keys `parse` accepts.
    public static let keys = ["strip_realm", "max_concurrency", "max_queue", "max_stuck", "timeout", "confdir"]

    /// Reads options from `key=value` pairs as they come out of `pam:SERVICE{key=value,...}`:
    /// - `strip_realm=default|all|none`
    /// - `max_concurrency=N` (1...256)
    /// - `max_queue=N` (0...65536)
    /// - `max_stuck=N` (0...256; default: max_concurrency)
    /// - `timeout=5s` (`ms`, `s` or `m`; a bare number is seconds; 10ms...9s)
    /// - `confdir=/absolute/path`
    /// Unknown keys, repeated keys and bad values are errors that name the key.
    public static func parse(_ pairs: [(String, String)]) throws(PAMConfigError) -> PAMOptions {
        var options = PAMOptions()
        var seen = Set<String>()
        var stuck: Int?
        for (rawKey, rawValue) in pairs {
            let key = rawKey.trimmingASCIISpaces().lowercased()
            let value = rawValue.trimmingASCIISpaces()
            guard keys.contains(key) else { throw .unknownOption(key) }
            guard seen.insert(key).inserted else { throw .duplicateOption(key) }
            switch key {
            case "strip_realm":
                guard let mode = RealmStripping(rawValue: value.lowercased()) else {
                    throw .invalidValue(key: key, value: value, reason: "expected default, all or none")
                }
                options.stripRealm = mode
            case "max_concurrency":
                options.maxConcurrency = try parseInt(key, value, 1...maximumConcurrency)
            case "max_queue":
                options.maxQueue = try parseInt(key, value, 0...maximumQueue)
            case "max_stuck":
                stuck = try parseInt(key, value, 0...maximumConcurrency)
            case "timeout":
                options.timeout = try parseDuration(key, value)
            case "confdir":
                guard value.hasPrefix("/") else {
                    throw .invalidValue(key: key, value: value, reason: "must be an absolute directory path")
                }
                guard !value.utf8.contains(0) else {
                    throw .invalidValue(key: key, value: value, reason: "contains a NUL byte")
                }
                options.confDir = value
            default:
                throw .unknownOption(key)
            }
        }
        options.maxStuck = stuck ?? options.maxConcurrency
        try options.validate()
        return options
    }

    /// The same from a dictionary (e.g. `PassdbSpec.options`), keys in sorted order.
    public static func parse(_ options: [String: String]) throws(PAMConfigError) -> PAMOptions {
        try parse(options.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
    }

    /// Checks ranges (also for options built in code).
    public func validate() throws(PAMConfigError) {
        guard (1...PAMOptions.maximumConcurrency).contains(maxConcurrency) else {
            throw .invalidValue(
                key: "max_concurrency", value: String(maxConcurrency), reason: "must be 1...\(PAMOptions.maximumConcurrency)")
        }
        guard (0...PAMOptions.maximumQueue).contains(maxQueue) else {
            throw .invalidValue(key: "max_queue", value: String(maxQueue), reason: "must be 0...\(PAMOptions.maximumQueue)")
        }
        guard (0...PAMOptions.maximumConcurrency).contains(maxStuck) else {
            throw .invalidValue(key: "max_stuck", value: String(maxStuck), reason: "must be 0...\(PAMOptions.maximumConcurrency)")
        }
        guard timeout >= PAMOptions.minimumTimeout, timeout <= PAMOptions.maximumTimeout else {
            throw .invalidValue(
                key: "timeout", value: "\(timeout)",
                reason: "must be between 10ms and 9s (Postfix stops waiting for the auth server after 10s)")
        }
        if let confDir, !confDir.hasPrefix("/") || confDir.utf8.contains(0) {
            throw .invalidValue(key: "confdir", value: confDir, reason: "must be an absolute directory path")
        }
    }

    private static func parseInt(_ key: String, _ value: String, _ range: ClosedRange<Int>) throws(PAMConfigError) -> Int {
        guard !value.isEmpty, value.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = Int(value) else {
            throw .invalidValue(key: key, value: value, reason: "expected a whole number")
        }
        guard range.contains(n) else {
            throw .invalidValue(key: key, value: value, reason: "must be \(range.lowerBound)...\(range.upperBound)")
        }
        return n
    }

    /// `250ms`, `5s`, `1m`, or a bare number of seconds. Fractions are allowed (`1.5s`).
    static func parseDuration(_ key: String, _ value: String) throws(PAMConfigError) -> Duration {
        let lower = value.lowercased()
        var number = Substring(lower)
        var unitMillis: Double = 1000
        if lower.hasSuffix("ms") {
            number = lower.dropLast(2)
            unitMillis = 1
        } else if lower.hasSuffix("s") {
            number = lower.dropLast(1)
        } else if lower.hasSuffix("m") {
            number = lower.dropLast(1)
            unitMillis = 60_000
        }
        let digits = number.trimmingASCIISpaces()
        guard !digits.isEmpty, digits.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2E }),
            let n = Double(digits), n.isFinite
        else {
            throw .invalidValue(key: key, value: value, reason: "expected a duration such as 500ms, 5s or 5")
        }
        let millis = n * unitMillis
        guard millis >= 10, millis <= 9000 else {
            throw .invalidValue(
                key: key, value: value,
                reason: "must be between 10ms and 9s (Postfix stops waiting for the auth server after 10s)")
        }
        return .milliseconds(Int64(millis.rounded()))
    }
}

/// A configuration mistake in a `pam:` passdb: bad service name or option. `description` is meant for
/// the operator (config check output, startup error).
public enum PAMConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidService(String, reason: String)
    case unknownOption(String)
    case duplicateOption(String)
    case invalidValue(key: String, value: String, reason: String)

    public var description: String {
        switch self {
        case .invalidService(let s, let reason):
            "pam: invalid PAM service name '\(sanitizedForMessage(s))': \(reason)"
        case .unknownOption(let k):
            "pam: unknown option '\(sanitizedForMessage(k))' (known: \(PAMOptions.keys.joined(separator: ", ")))"
        case .duplicateOption(let k):
            "pam: option '\(k)' given more than once"
        case .invalidValue(let k, let v, let reason):
            "pam: invalid value '\(sanitizedForMessage(v))' for \(k): \(reason)"
        }
    }
}

func sanitizedForMessage(_ s: String) -> String {
    var out = ""
    for byte in s.utf8.prefix(120) {
        out.unicodeScalars.append(byte >= 0x20 && byte < 0x7F ? Unicode.Scalar(byte) : "?")
    }
    return out
}

extension StringProtocol {
    func trimmingASCIISpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}
