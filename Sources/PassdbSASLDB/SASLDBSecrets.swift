public import AuthCore
public import Passdb
import AuthCrypto

/// The properties a store row can have: Cyrus's `userPassword` and saslgate's own secrets. Each value
/// is the format Dovecot uses for the same scheme, so values move between a passwd-file and the store.
///
/// | property | value |
/// | --- | --- |
/// | `userPassword` | the cleartext password, raw bytes (as Cyrus stores it); only with an explicit opt-in |
/// | `saslgate:hash` | a password field `{SCHEME}value`, by default yescrypt: `{CRYPT}$y$...` |
/// | `saslgate:scram-sha-1` | `iterations,base64(salt),base64(StoredKey),base64(ServerKey)` (Dovecot's `{SCRAM-SHA-1}`) |
/// | `saslgate:scram-sha-256` | the same with SHA-256 (Dovecot's `{SCRAM-SHA-256}`) |
/// | `saslgate:cram-md5` | 64 lower-case hex digits: the HMAC-MD5 outer and inner states (Dovecot's `{CRAM-MD5}`) |
/// | `saslgate:digest-md5` | 32 lower-case hex digits: MD5(authid ":" realm ":" password) for the stored realm |
public enum SASLDBProperty: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case cleartext = "userPassword"
    case hash = "saslgate:hash"
    case scramSHA1 = "saslgate:scram-sha-1"
    case scramSHA256 = "saslgate:scram-sha-256"
    case cramMD5 = "saslgate:cram-md5"
    case digestMD5 = "saslgate:digest-md5"

    public var description: String { rawValue }

    /// The property that stores the secret of a mechanism: `saslgate:` and the mechanism's name in lower
    /// case. nil for `.plaintext` (only the cleartext serves it).
    public init?(storing scheme: CredentialScheme) {
        guard scheme != .plaintext else { return nil }
        self.init(rawValue: "saslgate:" + scheme.rawValue.lowercased())
    }

    /// The mechanism whose secret this property stores; nil for the cleartext and the hash.
    public var storedCredential: CredentialScheme? {
        switch self {
        case .cleartext, .hash: nil
        default: CredentialScheme(rawValue: String(rawValue.dropFirst("saslgate:".count)).uppercased())
        }
    }

    /// Credential kinds a row of this property can give to challenge-response mechanisms.
    public var credentialSchemes: Set<CredentialScheme> {
        if self == .cleartext { return Set(CredentialScheme.allCases) }
        return storedCredential.map { [$0] } ?? []
    }

    /// The per-mechanism secrets, in a fixed order.
    public static let mechanismSecrets: [SASLDBProperty] = allCases.filter { $0.storedCredential != nil }

    /// The hash and every per-mechanism secret: what `import sasldb2` writes by default.
    public static let allMechanismSecrets: Set<SASLDBProperty> = Set(mechanismSecrets).union([.hash])

    /// Names accepted by `parse(mechanisms:)`.
    public static let mechanismNames =
        ["plain", "login"] + mechanismSecrets.compactMap { $0.storedCredential?.rawValue.lowercased() } + ["all"]

    /// Parses a `--mechs` list such as `scram-sha-256,cram-md5` (case-insensitive, comma or space
    /// separated) into the properties to store. `plain`/`login` name the hash (always stored anyway);
    /// `all` is every mechanism secret. The result always contains `.hash`. Cleartext is not a
    /// mechanism: it has its own flag.
    public static func parse(mechanisms list: String) throws(SASLDBError) -> Set<SASLDBProperty> {
        var kinds: Set<SASLDBProperty> = [.hash]
        let names = list.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" })
        guard !names.isEmpty else {
            throw .invalidMechanismList("empty; give one or more of \(mechanismNames.joined(separator: ", "))")
        }
        for raw in names {
            let name = raw.lowercased()
            switch name {
            case "plain", "login", "hash": kinds.insert(.hash)
            case "all": kinds.formUnion(allMechanismSecrets)
            case "cleartext", "userpassword":
                throw .invalidMechanismList("cleartext is not a mechanism; store it only with --cleartext")
            default:
                guard let scheme = CredentialScheme(rawValue: name.uppercased()),
                    let property = SASLDBProperty(storing: scheme)
                else {
                    throw .invalidMechanismList(
                        "unknown mechanism '\(sanitizeForLog(String(raw)))'; use \(mechanismNames.joined(separator: ", "))")
                }
                kinds.insert(property)
            }
        }
        return kinds
    }
}

extension Set where Element == SASLDBProperty {
    /// The properties in the fixed order of `SASLDBProperty.allCases` (rows are written in this order).
    public var ordered: [SASLDBProperty] { SASLDBProperty.allCases.filter { contains($0) } }
}

/// What to store for a new password: the kinds, the hash scheme and the SCRAM iteration count.
public struct SASLDBSecretPolicy: Sendable, Equatable {
    /// Properties to store; `.hash` is always added.
    public var kinds: Set<SASLDBProperty> {
        didSet { kinds.insert(.hash) }
    }
    /// Scheme of `saslgate:hash`: a crypt(3) method or salted SHA-2; default yescrypt (`{CRYPT}$y$`).
    public var hashScheme: PasswordScheme
    /// PBKDF2 iterations of new SCRAM secrets (at least `SCRAM.minimumIterations`, 4096).
    public var scramIterations: Int

    public init(
        kinds: Set<SASLDBProperty> = [.hash], hashScheme: PasswordScheme = .defaultForNewPasswords,
        scramIterations: Int = SCRAM.defaultIterations
    ) {
        self.kinds = kinds.union([.hash])
        self.hashScheme = hashScheme
        self.scramIterations = scramIterations
    }

    /// The hash only (`user add` without `--mechs`).
    public static let hashOnly = SASLDBSecretPolicy()
    /// The hash and every mechanism secret, no cleartext (`import sasldb2` without `--mechs`).
    public static let importDefault = SASLDBSecretPolicy(kinds: SASLDBProperty.allMechanismSecrets)

    /// Schemes allowed for `saslgate:hash`.
    public static let hashSchemes: [PasswordScheme] = [.crypt, .sha512Crypt, .sha256Crypt, .blfCrypt, .ssha512, .ssha256]

    /// Checks the scheme and the iteration count.
    public func validate() throws(SASLDBError) {
        guard SASLDBSecretPolicy.hashSchemes.contains(hashScheme) else { throw .unsupportedHashScheme(hashScheme) }
        guard (SCRAM.minimumIterations...SCRAM.maximumIterations).contains(scramIterations) else {
            throw .derivationFailed(
                "SCRAM secrets with \(scramIterations) iterations (use \(SCRAM.minimumIterations) to \(SCRAM.maximumIterations))"
            )
        }
    }
}

/// One row to write: a property and its value.
struct SASLDBRow: Sendable {
    var property: SASLDBProperty
    var value: Secret
}

/// Computing, encoding and decoding the stored secrets.
enum SASLDBSecrets {
    /// Checks that `password` can be stored under `policy` (not empty, no NUL or line break, within
    /// crypt's length limit), without hashing.
    static func checkStorable(_ password: Secret, policy: SASLDBSecretPolicy) throws(SASLDBError) {
        do {
            try PasswordScheme.checkStorable(password, for: policy.hashScheme)
        } catch {
            throw .password(error)
        }
    }

    /// Every row `policy` asks for. Runs yescrypt and PBKDF2: slow on purpose, never inside a
    /// transaction and never on an event loop.
    static func derive(user: SASLDBUser, password: Secret, policy: SASLDBSecretPolicy) throws(SASLDBError) -> [SASLDBRow] {
        try policy.validate()
        try checkStorable(password, policy: policy)
        var rows: [SASLDBRow] = []
        for property in policy.kinds.ordered {
            switch property {
            case .cleartext:
                rows.append(SASLDBRow(property: property, value: Secret(password.bytes)))
            case .hash:
                let field: String
                do {
                    field = try policy.hashScheme.hash(password)
                } catch {
                    throw .password(error)
                }
                rows.append(SASLDBRow(property: property, value: Secret(field)))
            case .scramSHA1, .scramSHA256:
                guard let hash = property.storedCredential?.scramHash else { continue }
                let credential: Credential
                do {
                    credential = try SCRAM.makeCredential(
                        hash: hash, password: password, salt: SecureRandom.bytes(SCRAM.saltLength), iterations: policy.scramIterations)
                } catch {
                    throw .derivationFailed("the SCRAM-\(hash.rawValue) secret (\(error))")
                }
                guard var encoded = SCRAM.encodeStored(credential) else { throw .derivationFailed("the SCRAM-\(hash.rawValue) secret") }
                rows.append(SASLDBRow(property: property, value: Secret(encoded)))
                encoded.wipe()
            case .cramMD5:
                let context = CRAMMD5.context(password: password)
                rows.append(SASLDBRow(property: property, value: context.withBytes { Secret(Hex.encode($0)) }))
            case .digestMD5:
                let ha1 = DigestMD5.ha1(user: user.authid, realm: user.realm, password: password)
                rows.append(SASLDBRow(property: property, value: ha1.withBytes { Secret(Hex.encode($0)) }))
            }
        }
        return rows
    }

    /// The credential a stored row gives, or nil when the value is malformed.
    static func credential(_ property: SASLDBProperty, value: Secret) -> Credential? {
        value.withBytes { bytes -> Credential? in
            switch property {
            case .cleartext:
                return .plaintext(Secret(bytes))
            case .cramMD5:
                guard bytes.count == 2 * CRAMMD5.contextLength, var raw = Hex.decode(bytes) else { return nil }
                defer { raw.wipe() }
                return .cramMD5Context(Secret(raw))
            case .digestMD5:
                guard bytes.count == 2 * DigestMD5.ha1Length, var raw = Hex.decode(bytes) else { return nil }
                defer { raw.wipe() }
                return .digestMD5HA1(Secret(raw))
            case .scramSHA1, .scramSHA256:
                guard let hash = property.storedCredential?.scramHash else { return nil }
                return SCRAM.parseStored(bytes, hash: hash)
            case .hash:
                return nil
            }
        }
    }

    /// Checks a plaintext password against any stored secret (for `verifyPlain`). `.hash` and SCRAM
    /// are expensive.
    static func verify(
        _ password: Secret, property: SASLDBProperty, value: Secret, user: SASLDBUser
    ) -> PasswordVerification {
        switch property {
        case .hash:
            let field = value.withBytes { String(decoding: $0, as: UTF8.self) }
            guard field.hasPrefix("{") else {
                return .unverifiable("the saslgate:hash value has no {SCHEME} prefix")
            }
            let stored: StoredPassword
            do {
                stored = try StoredPassword(field: field)
            } catch {
                return .unverifiable("the saslgate:hash value is not a valid password field: \(error)")
            }
            // DIGEST-MD5 as a hash scheme would need the name; the editor never writes one.
            return stored.verify(password, user: user.description)
        case .cleartext:
            return value.withBytes { password.constantTimeEquals($0) } ? .match : .mismatch
        case .scramSHA1, .scramSHA256:
            guard case .scram(let hash, let salt, let iterations, let storedKey, _)? = credential(property, value: value) else {
                return .unverifiable("the \(property) value is malformed")
            }
            guard iterations >= SCRAM.minimumIterations else {
                return .unverifiable("the \(property) value has fewer than \(SCRAM.minimumIterations) iterations")
            }
            let matches = password.withBytes {
                SCRAM.matches($0, hash: hash, salt: salt, iterations: iterations, storedKey: storedKey)
            }
            return matches ? .match : .mismatch
        case .cramMD5:
            guard case .cramMD5Context(let stored)? = credential(property, value: value) else {
                return .unverifiable("the \(property) value is malformed")
            }
            return CRAMMD5.context(password: password).withBytes { stored.constantTimeEquals($0) } ? .match : .mismatch
        case .digestMD5:
            guard case .digestMD5HA1(let stored)? = credential(property, value: value) else {
                return .unverifiable("the \(property) value is malformed")
            }
            return DigestMD5.ha1(user: user.authid, realm: user.realm, password: password).withBytes {
                stored.constantTimeEquals($0)
            } ? .match : .mismatch
        }
    }

    /// Whether `verify` for this property costs real CPU time.
    static func isExpensive(_ property: SASLDBProperty) -> Bool {
        switch property {
        case .hash, .scramSHA1, .scramSHA256: true
        case .cleartext, .cramMD5, .digestMD5: false
        }
    }
}
