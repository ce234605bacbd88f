import AuthCore
public import Passdb

/// The key of one user in the store, as in Cyrus sasldb2: the authentication id and the realm.
///
/// The realm is compared case-insensitively and therefore stored lower-case; an empty realm holds bare
/// names (`alice`, no `@`). The authentication id keeps its case (Cyrus compares it exactly).
public struct SASLDBUser: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Longest authentication id or realm in bytes.
    public static let maxLength = 255

    public let authid: String
    /// Lower-case; empty for bare names.
    public let realm: String

    /// A user from its two parts. The realm is lower-cased.
    public init(authid: String, realm: String) throws(SASLDBError) {
        let realm = realm.lowercased()
        let shown = realm.isEmpty ? authid : "\(authid)@\(realm)"
        if let why = SASLDBUser.problem(authid: authid, realm: realm) { throw .invalidUserName(shown, reason: why) }
        self.authid = authid
        self.realm = realm
    }

    /// The user `name` in `realm` (like saslpasswd2's `-u REALM`); without a realm, `name` is split at
    /// its last `@` (`alice@example.org`), and a name without `@` is a bare name.
    public init(name: String, realm: String? = nil) throws(SASLDBError) {
        if let realm {
            try self.init(authid: name, realm: realm)
        } else {
            let (local, realm) = LoginName.split(name)
            try self.init(authid: String(local), realm: String(realm ?? ""))
        }
    }

    /// The store key of a passdb request: (`localPart`, `realm` or "").
    public init(request: PassdbRequest) throws(SASLDBError) {
        try self.init(authid: request.localPart, realm: request.realm ?? "")
    }

    /// Without validation, for rows read back from the store.
    init(unchecked authid: String, realm: String) {
        self.authid = authid
        self.realm = realm
    }

    /// `authid@realm`, or the bare `authid` for the empty realm (not sanitized: sanitize for logs).
    public var description: String { realm.isEmpty ? authid : "\(authid)@\(realm)" }

    public static func < (a: SASLDBUser, b: SASLDBUser) -> Bool {
        (a.realm, a.authid) < (b.realm, b.authid)
    }

    /// Why these parts cannot be a key, or nil.
    static func problem(authid: String, realm: String) -> String? {
        if authid.isEmpty { return "the user name is empty" }
        if authid.utf8.count > maxLength { return "the user name is longer than \(maxLength) bytes" }
        if realm.utf8.count > maxLength { return "the realm is longer than \(maxLength) bytes" }
        if authid.utf8.contains(where: isControl) { return "the user name contains a control character" }
        if realm.utf8.contains(where: isControl) { return "the realm contains a control character" }
        if realm.contains("@") { return "the realm contains '@'" }
        if realm.utf8.contains(UInt8(ascii: " ")) { return "the realm contains a space" }
        if realm.isEmpty && authid.contains("@") {
            return "a name without a realm cannot contain '@' (it would be read as user@realm); give the realm separately"
        }
        return nil
    }

    private static func isControl(_ b: UInt8) -> Bool { b < 0x20 || b == 0x7F }
}
