/// Turns the login name a client sent into the name passdbs see and `OK user=` returns:
/// rejects empty, over-long and disallowed names; appends the default realm to a bare name;
/// lower-cases the realm.
public struct UsernamePolicy: Sendable {
    /// Longest accepted login name in bytes (RFC 4616's 255-octet authcid bound).
    public static let maxLength = 255

    public var defaultRealm: String?

    public init(defaultRealm: String?) {
        self.defaultRealm = defaultRealm
    }

    public enum Rejection: Error, Equatable, CustomStringConvertible {
        case empty, tooLong, disallowedCharacter
        public var description: String {
            switch self {
            case .empty: "empty user name"
            case .tooLong: "user name longer than \(UsernamePolicy.maxLength) bytes"
            case .disallowedCharacter: "user name contains a disallowed character"
            }
        }
    }

    /// Allowed: letters and digits (any script), and `. - _ @ + =`. Dovecot's default set is
    /// `a-z A-Z 0-9 . - _ @`; `+` and `=` are common in mailbox names. Controls, spaces, `/`, `:`
    /// (the passwd-file separator) and quotes are refused.
    static func isAllowed(_ scalar: Unicode.Scalar) -> Bool {
        if scalar.value < 0x80 {
            let c = UInt8(scalar.value)
            return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == UInt8(ascii: ".") || c == UInt8(ascii: "-") || c == UInt8(ascii: "_")
                || c == UInt8(ascii: "@") || c == UInt8(ascii: "+") || c == UInt8(ascii: "=")
        }
        return scalar.properties.isAlphabetic || scalar.properties.numericType != nil
    }

    public func normalize(_ login: String, realm explicitRealm: String? = nil) -> Result<String, Rejection> {
        guard !login.isEmpty else { return .failure(.empty) }
        guard login.utf8.count <= Self.maxLength else { return .failure(.tooLong) }
        guard login.unicodeScalars.allSatisfy(Self.isAllowed) else { return .failure(.disallowedCharacter) }
        var local = login
        var realm: String?
        if let at = login.lastIndex(of: "@") {
            local = String(login[..<at])
            realm = String(login[login.index(after: at)...])
            guard !local.isEmpty, let r = realm, !r.isEmpty else { return .failure(.disallowedCharacter) }
        } else if let explicitRealm, !explicitRealm.isEmpty {
            guard explicitRealm.unicodeScalars.allSatisfy(Self.isAllowed) else { return .failure(.disallowedCharacter) }
            realm = explicitRealm
        } else {
            realm = defaultRealm
        }
        guard let realm else { return .success(local) }
        return .success(local + "@" + realm.lowercased())
    }
}
