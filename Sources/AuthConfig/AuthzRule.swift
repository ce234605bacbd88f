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

    /// True if the (normalized) `authcid` may act as the (normalized) `authzid`.
    public func allows(authcid: String, authzid: String) -> Bool {
        guard authcid.lowercased() == self.authcid else { return false }
        let z = authzid.lowercased()
        if self.authzid == "*" { return true }
        if self.authzid.hasPrefix("*@") { return z.hasSuffix(String(self.authzid.dropFirst())) && !z.hasPrefix("@") }
        return z == self.authzid
    }
}
