public import AuthConfig
import AuthCore

/// `rehash_schemes` (see `RehashSchemes`) as the passdb layer applies it: does a stored field need a
/// fresh hash, and in which scheme.
public struct RehashPolicy: Sendable {
    public let target: PasswordScheme
    private let sources: [(name: String, below: (key: String, value: Int)?)]

    /// nil when a configured name is not a scheme of this build (the configuration check prevents it).
    public init?(_ schemes: RehashSchemes) {
        guard let target = PasswordScheme(name: schemes.target), PasswordScheme.hashable.contains(target) else { return nil }
        for s in schemes.sources where s.scheme != "DES-CRYPT" && PasswordScheme(name: s.scheme) == nil { return nil }
        self.target = target
        self.sources = schemes.sources.map { ($0.scheme, $0.below) }
    }

    /// True if a password verified against `stored` should be stored again in `target`.
    public func wantsRehash(_ stored: StoredPassword) -> Bool {
        let (name, strength) = RehashPolicy.classify(stored)
        guard let source = sources.first(where: { $0.name == name }) else { return false }
        guard let below = source.below else { return true }
        guard let strength else { return false }
        return strength < below.value
    }

    /// The effective scheme name of a stored field (a `{CRYPT}` value is named by its `$id$`) and its
    /// strength (SHA-crypt rounds, bcrypt cost) where one applies.
    static func classify(_ stored: StoredPassword) -> (name: String, strength: Int?) {
        let value = stored.value.withBytes { String(decoding: $0, as: UTF8.self) }
        switch stored.scheme {
        case .crypt, .md5Crypt, .sha256Crypt, .sha512Crypt, .blfCrypt:
            if value.hasPrefix("$1$") { return ("MD5-CRYPT", nil) }
            if value.hasPrefix("$5$") { return ("SHA256-CRYPT", shaCryptRounds(value)) }
            if value.hasPrefix("$6$") { return ("SHA512-CRYPT", shaCryptRounds(value)) }
            if value.hasPrefix("$2") { return ("BLF-CRYPT", bcryptCost(value)) }
            if !value.hasPrefix("$") && !value.hasPrefix("_") && !value.hasPrefix("*") && !value.hasPrefix("!") {
                return ("DES-CRYPT", nil)
            }
            return (PasswordScheme.crypt.rawValue, nil)
        default:
            return (stored.scheme.rawValue, nil)
        }
    }

    /// `$6$rounds=N$salt$hash`: N; without `rounds=`, glibc's default 5000.
    static func shaCryptRounds(_ value: String) -> Int {
        let parts = value.split(separator: "$", omittingEmptySubsequences: true)
        guard parts.count >= 2, parts[1].hasPrefix("rounds=") else { return 5000 }
        return Int(parts[1].dropFirst("rounds=".count)) ?? 5000
    }

    /// `$2b$10$...`: 10.
    static func bcryptCost(_ value: String) -> Int? {
        let parts = value.split(separator: "$", omittingEmptySubsequences: true)
        guard parts.count >= 2 else { return nil }
        return Int(parts[1])
    }
}
