/// One key of the configuration file: its name, its default as written in the file, what it is for, and
/// how a value is checked and stored in `Settings`. `Settings.keys` lists every key; nothing else does.
public struct ConfigKey: Sendable {
    public let name: String
    /// The default, written as in the file: `conf/saslgated.conf` shows it as `#name = default`.
    public let defaultValue: String
    /// What the key is for, in one line.
    public let summary: String
    /// Checks `value` and stores it in the settings; returns what is wrong with it (without file and
    /// line), nothing when it is good.
    let read: @Sendable (_ value: String, _ settings: inout Settings, _ context: Context) -> [String]

    /// What reading a value may need besides the value.
    struct Context {
        /// Makes a path from the file absolute (relative to the file's directory).
        var resolve: (String) -> String
        /// The passdb drivers `passdbs` may name; nil while the built-in defaults are set.
        var passdbDrivers: PassdbCatalog?
        /// The line the value is on.
        var line: Int
    }

    init(
        _ name: String, default defaultValue: String, _ summary: String,
        read: @escaping @Sendable (_ value: String, _ settings: inout Settings, _ context: Context) -> [String]
    ) {
        self.name = name
        self.defaultValue = defaultValue
        self.summary = summary
        self.read = read
    }
}

// The kinds of values, each with its check and its message.
extension ConfigKey {
    typealias Property<Value> = any WritableKeyPath<Settings, Value> & Sendable

    /// Any text, stored as written.
    static func text(_ name: String, _ property: Property<String>, default value: String, _ summary: String) -> ConfigKey {
        ConfigKey(name, default: value, summary) { v, s, _ in
            s[keyPath: property] = v
            return []
        }
    }

    /// Text where empty means "none".
    static func optionalText(_ name: String, _ property: Property<String?>, default value: String, _ summary: String) -> ConfigKey {
        ConfigKey(name, default: value, summary) { v, s, _ in
            s[keyPath: property] = v.isEmpty ? nil : v
            return []
        }
    }

    /// A path, relative to the configuration file's directory; empty means "none".
    static func optionalPath(_ name: String, _ property: Property<String?>, default value: String, _ summary: String) -> ConfigKey {
        ConfigKey(name, default: value, summary) { v, s, context in
            s[keyPath: property] = v.isEmpty ? nil : context.resolve(v)
            return []
        }
    }

    /// `yes` or `no` (also true/false, on/off, 1/0).
    static func flag(_ name: String, _ property: Property<Bool>, default value: String, _ summary: String) -> ConfigKey {
        ConfigKey(name, default: value, summary) { v, s, _ in
            guard let b = Settings.parseBool(v) else { return ["\(name) must be yes or no"] }
            s[keyPath: property] = b
            return []
        }
    }

    /// A whole number in `range`; `why` explains a bound or a special value.
    static func number(
        _ name: String, _ property: Property<Int>, default value: String, in range: ClosedRange<Int>, why: String? = nil,
        _ summary: String
    ) -> ConfigKey {
        ConfigKey(name, default: value, summary) { v, s, _ in
            guard let n = Int(v), range.contains(n) else {
                return ["\(name) '\(v)' must be a number from \(range.lowerBound) to \(range.upperBound)\(why.map { " (\($0))" } ?? "")"]
            }
            s[keyPath: property] = n
            return []
        }
    }

    /// A duration in seconds within `range` (`2`, `2s`, `500ms`, `1m`, `1h`).
    static func duration(
        _ name: String, _ property: Property<Double>, default value: String, in range: ClosedRange<Double>,
        why: String? = nil, _ summary: String
    ) -> ConfigKey {
        ConfigKey(name, default: value, summary) { v, s, _ in
            guard let seconds = Settings.parseDuration(v), range.contains(seconds) else {
                let bounds = "from \(spelled(range.lowerBound)) to \(spelled(range.upperBound))"
                return ["\(name) '\(v)' must be a duration \(bounds)\(why.map { " (\($0))" } ?? "")"]
            }
            s[keyPath: property] = seconds
            return []
        }
    }

    /// Words separated by white space or commas.
    static func words(_ name: String, _ property: Property<[String]>, default value: String, _ summary: String) -> ConfigKey {
        ConfigKey(name, default: value, summary) { v, s, _ in
            s[keyPath: property] = Settings.words(v)
            return []
        }
    }

    /// `0`, `30s`, `10m`, `1h`, `1 day`, `7 days`: a bound as a reader writes it.
    static func spelled(_ seconds: Double) -> String {
        let units: [(Double, String)] = [(86400, " day"), (3600, "h"), (60, "m")]
        if seconds == 0 { return "0" }
        for (size, unit) in units where seconds.truncatingRemainder(dividingBy: size) == 0 {
            let n = Int(seconds / size)
            return "\(n)\(unit)\(unit == " day" && n != 1 ? "s" : "")"
        }
        return seconds == seconds.rounded() ? "\(Int(seconds))s" : "\(seconds)s"
    }
}
