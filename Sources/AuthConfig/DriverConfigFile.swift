/// The settings file of a passdb that needs more than a `passdbs` entry can say (`pgsql:/etc/saslgate/pgsql.conf`,
/// `ldap:/etc/saslgate/ldap.conf`): the main configuration's syntax (main.cf style, duplicates refused),
/// a fixed set of key names, every problem reported with `file:line`. Whether others may read the file is
/// checked by the daemon like any secret file (the driver's argument kind is `.secretFile`).
public struct DriverConfigFile: Sendable {
    /// One key of the file, with its documentation for messages.
    public struct Key: Sendable {
        public var name: String
        /// Nil: the key must be set.
        public var defaultValue: String?
        public var doc: String

        public init(_ name: String, default defaultValue: String? = nil, _ doc: String) {
            self.name = name
            self.defaultValue = defaultValue
            self.doc = doc
        }
    }

    /// The absolute path it was read from.
    public let file: String
    private let entries: [String: ConfigEntry]
    private let keys: [Key]

    /// Reads and checks `path` (relative paths are taken as given): unknown keys, duplicates and missing
    /// required keys are errors, each with its line.
    public static func load(path: String, keys: [Key], limit: Int = ConfigFileParser.maxFileSize)
        throws(ConfigErrors) -> DriverConfigFile
    {
        let text = try readConfigText(
            path, limit: limit, fix: "create it (see the example in conf/) or fix the passdbs entry")
        return try parse(text: text, file: path, keys: keys)
    }

    /// Checks text that came from `file` (tests and `load`).
    public static func parse(text: String, file: String, keys: [Key]) throws(ConfigErrors) -> DriverConfigFile {
        let parsed = try ConfigFileParser.parse(text: text, file: file)
        var errors: [ConfigError] = []
        var entries: [String: ConfigEntry] = [:]
        let known = Set(keys.map(\.name))
        for entry in parsed {
            guard known.contains(entry.name) else {
                errors.append(ConfigError(file: file, line: entry.line,
                    "unknown key '\(entry.name)'; known: \(keys.map(\.name).joined(separator: ", "))"))
                continue
            }
            entries[entry.name] = entry
        }
        for key in keys where key.defaultValue == nil && entries[key.name] == nil {
            errors.append(ConfigError(file: file, line: nil, "'\(key.name)' is not set; add '\(key.name) = ...' (\(key.doc))"))
        }
        if !errors.isEmpty { throw ConfigErrors(errors) }
        return DriverConfigFile(file: file, entries: entries, keys: keys)
    }

    private init(file: String, entries: [String: ConfigEntry], keys: [Key]) {
        self.file = file
        self.entries = entries
        self.keys = keys
    }

    /// The value of `key`: as written, or its default. Asking for a key that is not in the table is a
    /// programming error.
    public subscript(key: String) -> String {
        if let entry = entries[key] { return entry.value }
        guard let spec = keys.first(where: { $0.name == key }) else {
            preconditionFailure("DriverConfigFile: key '\(key)' is not in the key table")
        }
        return spec.defaultValue ?? ""
    }

    /// True when the file sets `key` (rather than taking its default).
    public func isSet(_ key: String) -> Bool { entries[key] != nil }

    /// The line `key` is set on, nil when it takes its default.
    public func line(of key: String) -> Int? { entries[key]?.line }

    /// An error about `key`, pointing at its line (or at the file when it takes its default).
    public func error(_ key: String, _ message: String) -> ConfigError {
        ConfigError(file: file, line: line(of: key), "\(key): \(message)")
    }
}
