import AuthCore

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
    public var allowedCharacters: Set<Unicode.Scalar>? {
        didSet { allowedASCII = Self.asciiMask(allowedCharacters) }
    }
    /// The ASCII part of `allowedCharacters` as a bit mask (bit n: character n), so the usual names are
    /// checked without hashing a character.
    private var allowedASCII: (UInt64, UInt64) = (0, 0)

    public init(
        defaultRealm: String?, realms: [String] = [], lowercase: Bool = false,
        allowedCharacters: String? = nil
    ) {
        self.defaultRealm = defaultRealm?.lowercased()
        self.realms = Set(realms.map { $0.lowercased() })
        self.lowercase = lowercase
        self.allowedCharacters = allowedCharacters.flatMap { $0.isEmpty ? nil : Set($0.unicodeScalars) }
        self.allowedASCII = Self.asciiMask(self.allowedCharacters)
    }

    private static func asciiMask(_ set: Set<Unicode.Scalar>?) -> (UInt64, UInt64) {
        var mask: (UInt64, UInt64) = (0, 0)
        for scalar in set ?? [] where scalar.value < 128 {
            if scalar.value < 64 { mask.0 |= 1 << UInt64(scalar.value) } else { mask.1 |= 1 << UInt64(scalar.value - 64) }
        }
        return mask
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
        return scalar.value > 0x7F || Self.isAllowedASCII(UInt8(scalar.value))
    }

    /// The default rule for one ASCII byte: printable, and not space, `:`, `/`, quotes or backslash.
    static func isAllowedASCII(_ b: UInt8) -> Bool {
        switch b {
        case 0x00...0x20, 0x7F, 0x3A, 0x2F, 0x22, 0x27, 0x5C: false
        default: true
        }
    }

    /// Every character allowed. Without `username_chars` this is a byte scan (the bytes of a non-ASCII
    /// character are all >= 0x80 and such characters are allowed).
    func allAllowed(_ text: String) -> Bool {
        if allowedCharacters == nil {
            return text.utf8.allSatisfy { $0 > 0x7F || Self.isAllowedASCII($0) }
        }
        let mask = allowedASCII
        for b in text.utf8 {
            if b < 64 {
                if mask.0 & (1 << UInt64(b)) == 0 { return false }
            } else if b < 128 {
                if mask.1 & (1 << UInt64(b - 64)) == 0 { return false }
            } else {
                // Not ASCII: look the whole name up scalar by scalar.
                return text.unicodeScalars.allSatisfy(isAllowed)
            }
        }
        return true
    }

    /// `lowercased()` only when there is something to lower (it allocates).
    static func lowered(_ text: String) -> String {
        text.utf8.contains(where: { $0 >= 0x41 && ($0 <= 0x5A || $0 > 0x7F) }) ? text.lowercased() : text
    }

    public func normalize(_ login: String, realm explicitRealm: String? = nil) -> Result<String, Rejection> {
        var steps: [String]? = nil
        return normalize(login, realm: explicitRealm, steps: &steps)
    }

    public func explain(_ login: String, realm explicitRealm: String? = nil) -> (Result<String, Rejection>, Explanation) {
        var steps: [String]? = []
        let result = normalize(login, realm: explicitRealm, steps: &steps)
        return (result, Explanation(steps: steps ?? []))
    }

    /// `steps` nil: no explanation wanted (the hot path builds none of its text).
    private func normalize(_ login: String, realm explicitRealm: String?, steps: inout [String]?) -> Result<String, Rejection> {
        func note(_ text: @autoclosure () -> String) {
            if steps != nil { steps!.append(text()) }
        }
        note("login as sent: \(login.debugDescription)")
        guard !login.isEmpty else { return .failure(.empty) }
        guard login.utf8.count <= Self.maxLength else { return .failure(.tooLong) }
        guard allAllowed(login) else {
            note("refused: a character is not allowed (username_chars)")
            return .failure(.disallowedCharacter)
        }
        var name = login
        if lowercase {
            let lowered = Self.lowered(name)
            if lowered != name {
                name = lowered
                note("lower-cased (username_lowercase = yes): \(name)")
            }
        }
        var local = name
        var realm: String?
        var realmFromName = false
        let parts = LoginName.split(name)
        if let realmPart = parts.realm {
            local = String(parts.local)
            realm = String(realmPart)
            realmFromName = true
            guard !local.isEmpty, let r = realm, !r.isEmpty else { return .failure(.disallowedCharacter) }
        } else if let explicitRealm, !explicitRealm.isEmpty {
            guard allAllowed(explicitRealm) else { return .failure(.disallowedCharacter) }
            realm = explicitRealm
            note("realm from the mechanism: \(explicitRealm)")
        } else if let defaultRealm {
            realm = defaultRealm
            note("no realm given: default_realm \(defaultRealm) appended")
        }
        let rawRealm = realm
        guard let realm = realm.map(Self.lowered) else {
            if !realms.isEmpty {
                note("refused: no realm, and realms restricts which are accepted")
                return .failure(.missingRealm)
            }
            note("normalized: \(local)")
            return .success(local)
        }
        if !realms.isEmpty && !realms.contains(realm) {
            note("refused: realm \(realm) is not in realms (\(realms.sorted().joined(separator: " ")))")
            return .failure(.realmNotAccepted(realm))
        }
        note("normalized: \(local)@\(realm)")
        // The name already was `local@realm` in lower case: hand it back as it is (no new string).
        if realmFromName && realm == rawRealm { return .success(name) }
        return .success(local + "@" + realm)
    }
}
