/// `rehash_schemes`: which stored hashes are replaced by a fresh one after a successful PLAIN/LOGIN
/// check, and with which scheme. Syntax: `SOURCE ... -> TARGET`, where a SOURCE is a scheme name,
/// optionally with a strength bound, and the TARGET the scheme to store:
///
///     rehash_schemes = PLAIN MD5-CRYPT SSHA SHA512-CRYPT<rounds=100000 -> CRYPT
///
/// `SHA512-CRYPT<rounds=N` (and `SHA256-CRYPT<rounds=N`) matches hashes with fewer than N rounds (5000
/// when the hash names none); `BLF-CRYPT<cost=N` bcrypt hashes of a lower cost. `DES-CRYPT` is a
/// `{CRYPT}` value without `$` (traditional DES crypt); a `{CRYPT}` value with `$1$`, `$5$`, `$6$` or
/// `$2?$` counts as MD5-CRYPT, SHA256-CRYPT, SHA512-CRYPT or BLF-CRYPT. Empty: never rehash.
public struct RehashSchemes: Sendable, Equatable {
    /// One SOURCE: a scheme name (upper case) and an optional strength bound.
    public struct Source: Sendable, Equatable {
        public var scheme: String
        /// `rounds` or `cost`, and the bound: only hashes weaker than it match.
        public var below: (key: String, value: Int)?

        public init(scheme: String, below: (key: String, value: Int)? = nil) {
            self.scheme = scheme
            self.below = below
        }

        public static func == (a: Source, b: Source) -> Bool {
            a.scheme == b.scheme && a.below?.key == b.below?.key && a.below?.value == b.below?.value
        }
    }

    public var sources: [Source]
    /// The scheme new hashes are stored in.
    public var target: String

    /// Names a SOURCE may have; the passdb layer maps each to its password scheme (a test holds both
    /// lists together).
    public static let sourceNames = [
        "PLAIN", "DES-CRYPT", "MD5-CRYPT", "SHA256-CRYPT", "SHA512-CRYPT", "BLF-CRYPT", "SHA", "SSHA", "SSHA256", "SSHA512",
    ]
    /// Schemes the TARGET may be: strong hashes that serve PLAIN and LOGIN.
    public static let targetNames = ["CRYPT", "SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "SSHA512"]
    /// The bound each bounded source takes.
    static let boundKeys = ["SHA256-CRYPT": "rounds", "SHA512-CRYPT": "rounds", "BLF-CRYPT": "cost"]

    public init(sources: [Source], target: String) {
        self.sources = sources
        self.target = target
    }

    /// Parses the value; nil with no problems for an empty value (off).
    public static func parse(_ value: String) -> (RehashSchemes?, [String]) {
        let text = value.trimmingSpaces
        if text.isEmpty { return (nil, []) }
        let parts = text.split(separator: "->", omittingEmptySubsequences: false)
        guard parts.count == 2 else {
            return (nil, ["rehash_schemes '\(value)' must be 'SOURCE ... -> TARGET', e.g. 'PLAIN MD5-CRYPT SSHA -> CRYPT'"])
        }
        var problems: [String] = []
        let target = parts[1].trimmingSpaces.uppercased()
        if !targetNames.contains(target) {
            problems.append("rehash_schemes: the target '\(target)' must be one of \(targetNames.joined(separator: " "))")
        }
        var sources: [Source] = []
        for word in parts[0].split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," }) {
            let pieces = word.split(separator: "<", maxSplits: 1)
            let name = pieces[0].uppercased()
            guard sourceNames.contains(name) else {
                problems.append("rehash_schemes: unknown source scheme '\(name)'; known: \(sourceNames.joined(separator: " "))")
                continue
            }
            var source = Source(scheme: name)
            if pieces.count == 2 {
                let bound = pieces[1].split(separator: "=", maxSplits: 1)
                guard let key = boundKeys[name], bound.count == 2, bound[0].lowercased() == key,
                    let n = Int(bound[1]), n > 0, n <= 1_000_000_000
                else {
                    let form = boundKeys[name].map { "\(name)<\($0)=N" } ?? "\(name) (it takes no bound)"
                    problems.append("rehash_schemes: '\(word)' must be written \(form)")
                    continue
                }
                source.below = (key, n)
            }
            if sources.contains(where: { $0.scheme == name }) {
                problems.append("rehash_schemes: '\(name)' is listed twice")
                continue
            }
            sources.append(source)
        }
        if sources.isEmpty && problems.isEmpty {
            problems.append("rehash_schemes: no source scheme before '->'; e.g. 'PLAIN MD5-CRYPT SSHA -> CRYPT'")
        }
        if let same = sources.first(where: { $0.scheme == target && $0.below == nil }) {
            problems.append(
                "rehash_schemes: '\(same.scheme)' is both a source and the target: every login would rehash; give it a bound like \(same.scheme)<rounds=N or remove it")
        }
        return problems.isEmpty ? (RehashSchemes(sources: sources, target: target), []) : (nil, problems)
    }
}

/// `require_app_passwords`: where the main password is refused for SMTP (`service=smtp` or
/// `submission`), so only app passwords can send mail. `no` (default), `yes` (every realm, bare names
/// too) or a list of realms.
public enum AppPasswordRequirement: Sendable, Equatable {
    case no
    case all
    case realms(Set<String>)

    /// The services the requirement applies to.
    public static let services: Set<String> = ["smtp", "submission"]

    public static func parse(_ value: String) -> (AppPasswordRequirement, [String]) {
        let words = value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "," }).map { $0.lowercased() }
        if words.isEmpty || words == ["no"] { return (.no, []) }
        if words == ["yes"] { return (.all, []) }
        var problems: [String] = []
        for w in words where w == "yes" || w == "no" || w.contains("@") {
            problems.append("require_app_passwords: '\(w)' must be alone ('yes' or 'no') or a list of realms like example.org")
        }
        return problems.isEmpty ? (.realms(Set(words)), []) : (.no, problems)
    }

    /// True if a main-password login of `realm` (nil: a bare name) for `service` must be refused.
    public func refusesMainPassword(realm: String?, service: String) -> Bool {
        guard AppPasswordRequirement.services.contains(service.lowercased()) else { return false }
        switch self {
        case .no: return false
        case .all: return true
        case .realms(let set): return realm.map { set.contains($0.lowercased()) } ?? false
        }
    }
}

extension StringProtocol {
    fileprivate var trimmingSpaces: String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}
