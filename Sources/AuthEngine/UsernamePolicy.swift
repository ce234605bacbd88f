/// Turns the login name a client sent into the name passdbs see and `OK user=` returns (so Postfix's
/// `smtpd_sender_login_maps` can rely on it): refuses empty, over-long and disallowed names; lower-cases
/// (Dovecot's default `%Lu`) when configured; appends the default realm to a bare name; refuses realms
/// that are not accepted, before any passdb is asked.
public struct UsernamePolicy: Sendable {
    /// Longest accepted login name in bytes (RFC 4616's 255-octet authcid bound).
    public static let maxLength = 255

    public var defaultRealm: String?
    /// Accepted realms, lower case; empty: any.
    public var realms: Set<String>
    public var lowercase: Bool
    /// Allowed characters; nil: any printable except space, `:`, `/`, quotes, backslash.
    public var allowedCharacters: Set<Unicode.Scalar>?

    public init(
        defaultRealm: String?, realms: [String] = [], lowercase: Bool = false,
        allowedCharacters: String? = nil
    ) {
        self.defaultRealm = defaultRealm?.lowercased()
        self.realms = Set(realms.map { $0.lowercased() })
        self.lowercase = lowercase
        self.allowedCharacters = allowedCharacters.flatMap { $0.isEmpty ? nil : Set($0.unicodeScalars) }
    }

    public enum Rejection: Error, Equatable, CustomStringConvertible {
        case empty, tooLong, disallowedCharacter, realmNotAccepted(String), missingRealm
        public var description: String {
            switch self {
            case .empty: "empty user name"
            case .tooLong: "user name longer than \(UsernamePolicy.maxLength) bytes"
            case .disallowedCharacter: "user name contains a character not in username_chars"
            case .realmNotAccepted(let r): "realm '\(r)' is not in realms"
            case .missingRealm: "user name has no realm and there is no default_realm"
            }
        }
    }

    /// Step by step, for `saslgate auth test --explain` and the debug log.
    public struct Explanation: Sendable, CustomStringConvertible {
        public var steps: [String]
        public var description: String { steps.joined(separator: "\n") }
    }

    func isAllowed(_ scalar: Unicode.Scalar) -> Bool {
        if let allowedCharacters { return allowedCharacters.contains(scalar) }
        if scalar.value < 0x21 || scalar.value == 0x7F { return false }
        return !":/\"'\\".unicodeScalars.contains(scalar)
    }

    public func normalize(_ login: String, realm explicitRealm: String? = nil) -> Result<String, Rejection> {
        var steps: [String] = []
        return normalize(login, realm: explicitRealm, steps: &steps)
    }

    public func explain(_ login: String, realm explicitRealm: String? = nil) -> (Result<String, Rejection>, Explanation) {
        var steps: [String] = []
        let result = normalize(login, realm: explicitRealm, steps: &steps)
        return (result, Explanation(steps: steps))
    }

    private func normalize(_ login: String, realm explicitRealm: String?, steps: inout [String]) -> Result<String, Rejection> {
        steps.append("login as sent: \(login.debugDescription)")
        guard !login.isEmpty else { return .failure(.empty) }
        guard login.utf8.count <= Self.maxLength else { return .failure(.tooLong) }
        guard login.unicodeScalars.allSatisfy(isAllowed) else {
            steps.append("refused: a character is not allowed (username_chars)")
            return .failure(.disallowedCharacter)
        }
        var name = login
        if lowercase, name != name.lowercased() {
            name = name.lowercased()
            steps.append("lower-cased (username_lowercase = yes): \(name)")
        }
        var local = name
        var realm: String?
        if let at = name.lastIndex(of: "@") {
            local = String(name[..<at])
            realm = String(name[name.index(after: at)...])
            guard !local.isEmpty, let r = realm, !r.isEmpty else { return .failure(.disallowedCharacter) }
        } else if let explicitRealm, !explicitRealm.isEmpty {
            guard explicitRealm.unicodeScalars.allSatisfy(isAllowed) else { return .failure(.disallowedCharacter) }
            realm = explicitRealm
            steps.append("realm from the mechanism: \(explicitRealm)")
        } else if let defaultRealm {
            realm = defaultRealm
            steps.append("no realm given: default_realm \(defaultRealm) appended")
        }
        guard let realm = realm?.lowercased() else {
            if !realms.isEmpty {
                steps.append("refused: no realm, and realms restricts which are accepted")
                return .failure(.missingRealm)
            }
            steps.append("normalized: \(local)")
            return .success(local)
        }
        if !realms.isEmpty && !realms.contains(realm) {
            steps.append("refused: realm \(realm) is not in realms (\(realms.sorted().joined(separator: " ")))")
            return .failure(.realmNotAccepted(realm))
        }
        steps.append("normalized: \(local)@\(realm)")
        return .success(local + "@" + realm)
    }
}
