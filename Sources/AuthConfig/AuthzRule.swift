/// One `authz_rules` entry: `AUTHCID=>AUTHZID`, where AUTHZID may be `*` (anyone) or `*@realm`.
public struct AuthzRule: Sendable, Equatable, CustomStringConvertible {
    public var authcid: String
    public var authzid: String

    public init?(_ text: String) {
        let parts = text.split(separator: "=>", maxSplits: 1, omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
        authcid = parts[0].lowercased()
        authzid = parts[1].lowercased()
    }

    public var description: String { "\(authcid)=>\(authzid)" }

    /// The rules of an `authz_rules` value (separated by white space or commas), and a message for
    /// each word that is not a rule.
    static func parseList(_ value: String) -> (rules: [AuthzRule], problems: [String]) {
        var rules: [AuthzRule] = []
        var problems: [String] = []
        for word in Settings.words(value) {
            if let rule = AuthzRule(word) {
                rules.append(rule)
            } else {
                problems.append("authz_rules: '\(word)' must be AUTHCID=>AUTHZID, e.g. relay@example.org=>*@example.org")
            }
        }
        return (rules, problems)
    }

    /// True if the (normalized) `authcid` may act as the (normalized) `authzid`.
    public func allows(authcid: String, authzid: String) -> Bool {
        guard authcid.lowercased() == self.authcid else { return false }
        let z = authzid.lowercased()
        if self.authzid == "*" { return true }
        if self.authzid.hasPrefix("*@") { return z.hasSuffix(String(self.authzid.dropFirst())) && !z.hasPrefix("@") }
        return z == self.authzid
    }
}
