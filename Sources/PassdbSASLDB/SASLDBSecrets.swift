public import AuthCore
public import Passdb
import SASL

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

    /// The kind this property stores.
    public var kind: SASLDBSecretKinds {
        switch self {
        case .cleartext: .cleartext
        case .hash: .hash
        case .scramSHA1: .scramSHA1
        case .scramSHA256: .scramSHA256
        case .cramMD5: .cramMD5
        case .digestMD5: .digestMD5
        }
    }

    /// Credential kinds a row of this property can give to challenge-response mechanisms.
    public var credentialSchemes: Set<CredentialScheme> {
        switch self {
        case .cleartext: Set(CredentialScheme.allCases)
        case .hash: []
        case .scramSHA1: [.scramSHA1]
        case .scramSHA256: [.scramSHA256]
        case .cramMD5: [.cramMD5]
        case .digestMD5: [.digestMD5]
        }
    }

    /// The property that stores the secret of a credential kind (nil for `.plaintext`: only cleartext).
    static func forScheme(_ scheme: CredentialScheme) -> SASLDBProperty? {
        switch scheme {
        case .plaintext: nil
        case .cramMD5: .cramMD5
        case .digestMD5: .digestMD5
        case .scramSHA1: .scramSHA1
        case .scramSHA256: .scramSHA256
        }
    }
}

/// Which secrets are stored for a user. `hash` is always stored by the editor and the importer;
/// `cleartext` only when explicitly asked for.
public struct SASLDBSecretKinds: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let hash = SASLDBSecretKinds(rawValue: 1 << 0)
    public static let scramSHA1 = SASLDBSecretKinds(rawValue: 1 << 1)
    public static let scramSHA256 = SASLDBSecretKinds(rawValue: 1 << 2)
    public static let cramMD5 = SASLDBSecretKinds(rawValue: 1 << 3)
    public static let digestMD5 = SASLDBSecretKinds(rawValue: 1 << 4)
    /// The password itself (`userPassword`), like Cyrus. Serves every mechanism; a stolen file gives
    /// away every password. Opt-in only.
    public static let cleartext = SASLDBSecretKinds(rawValue: 1 << 5)

    /// The hash and every per-mechanism secret: what `import sasldb2` writes by default.
    public static let allMechanismSecrets: SASLDBSecretKinds = [.hash, .scramSHA1, .scramSHA256, .cramMD5, .digestMD5]

    /// Names accepted by `parse(mechanisms:)`.
    public static let mechanismNames = ["plain", "login", "scram-sha-1", "scram-sha-256", "cram-md5", "digest-md5", "all"]

    /// Parses a `--mechs` list such as `scram-sha-256,cram-md5` (case-insensitive, comma or space
    /// separated). `plain`/`login` name the hash (always stored anyway); `all` is every mechanism
    /// secret. The result always contains `.hash`. Cleartext is not a mechanism: it has its own flag.
    public static func parse(mechanisms list: String) throws(SASLDBError) -> SASLDBSecretKinds {
        var kinds: SASLDBSecretKinds = .hash
        let names = list.split(whereSeparator: { $0 == "," || $0 == " " || $0 == "\t" })
        guard !names.isEmpty else {
            throw .invalidMechanismList("empty; give one or more of \(mechanismNames.joined(separator: ", "))")
        }
        for raw in names {
            switch raw.lowercased() {
            case "plain", "login", "hash": kinds.insert(.hash)
            case "scram-sha-1": kinds.insert(.scramSHA1)
            case "scram-sha-256": kinds.insert(.scramSHA256)
            case "cram-md5": kinds.insert(.cramMD5)
            case "digest-md5": kinds.insert(.digestMD5)
            case "all": kinds.formUnion(.allMechanismSecrets)
            case "cleartext", "userpassword":
                throw .invalidMechanismList("cleartext is not a mechanism; store it only with --cleartext")
            default:
                throw .invalidMechanismList(
                    "unknown mechanism '\(sanitizeForLog(String(raw)))'; use \(mechanismNames.joined(separator: ", "))")
            }
        }
        return kinds
    }

    /// The properties these kinds are stored as, in a fixed order.
    public var properties: [SASLDBProperty] {
        SASLDBProperty.allCases.filter { contains($0.kind) }
    }

    public var description: String { properties.map(\.rawValue).joined(separator: " ") }
}

/// What to store for a new password: the kinds, the hash scheme and the SCRAM iteration count.
public struct SASLDBSecretPolicy: Sendable, Equatable {
    /// Kinds to store; `.hash` is always added.
    public var kinds: SASLDBSecretKinds {
        didSet { kinds.formUnion(.hash) }
    }
    /// Scheme of `saslgate:hash`: a crypt(3) method or salted SHA-2; default yescrypt (`{CRYPT}$y$`).
    public var hashScheme: PasswordScheme
    /// PBKDF2 iterations of new SCRAM secrets (at least `SCRAM.minimumIterations`, 4096).
    public var scramIterations: Int

    public init(
        kinds: SASLDBSecretKinds = .hash, hashScheme: PasswordScheme = .defaultForNewPasswords,
        scramIterations: Int = SCRAM.defaultIterations
    ) {
        self.kinds = kinds.union(.hash)
        self.hashScheme = hashScheme
        self.scramIterations = scramIterations
    }

    /// The hash only (`user add` without `--mechs`).
    public static let hashOnly = SASLDBSecretPolicy()
    /// The hash and every mechanism secret, no cleartext (`import sasldb2` without `--mechs`).
    public static let importDefault = SASLDBSecretPolicy(kinds: .allMechanismSecrets)

    /// Schemes allowed for `saslgate:hash`.
    public static let hashSchemes: [PasswordScheme] = [.crypt, .sha512Crypt, .sha256Crypt, .blfCrypt, .ssha512, .ssha256]

    /// Checks the scheme and the iteration count.
    public func validate() throws(SASLDBError) {
        guard SASLDBSecretPolicy.hashSchemes.contains(hashScheme) else { throw .unsupportedHashScheme(hashScheme) }
        guard (SCRAM.minimumIterations...SCRAMVerifier.iterationRange.upperBound).contains(scramIterations) else {
            throw .derivationFailed(
                "SCRAM secrets with \(scramIterations) iterations (use \(SCRAM.minimumIterations) to \(SCRAMVerifier.iterationRange.upperBound))"
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
        for property in policy.kinds.properties {
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
                let hash: SCRAMHash = property == .scramSHA1 ? .sha1 : .sha256
                let credential: Credential
                do {
                    credential = try SCRAM.makeCredential(
                        hash: hash, password: password, salt: SecureRandom.bytes(SCRAM.saltLength), iterations: policy.scramIterations)
                } catch {
                    throw .derivationFailed("the SCRAM-\(hash.rawValue) secret (\(error))")
                }
                guard let encoded = encodeSCRAM(credential) else { throw .derivationFailed("the SCRAM-\(hash.rawValue) secret") }
                rows.append(SASLDBRow(property: property, value: encoded))
            case .cramMD5:
                let context = CRAMMD5.context(password: password)
                rows.append(SASLDBRow(property: property, value: context.withBytes { Secret(Codec.hex($0)) }))
            case .digestMD5:
                let ha1 = DigestMD5.ha1(user: user.authid, realm: user.realm, password: password)
                rows.append(SASLDBRow(property: property, value: ha1.withBytes { Secret(Codec.hex($0)) }))
            }
        }
        return rows
    }

    /// `iterations,salt,storedkey,serverkey` with standard base64 fields (Dovecot's SCRAM format).
    static func encodeSCRAM(_ credential: Credential) -> Secret? {
        guard case .scram(_, let salt, let iterations, let storedKey, let serverKey) = credential else { return nil }
        var out = Array("\(iterations),".utf8) + Codec.base64(salt[...])
        out.append(UInt8(ascii: ","))
        storedKey.withBytes { out += Codec.base64($0[...]) }
        out.append(UInt8(ascii: ","))
        serverKey.withBytes { out += Codec.base64($0[...]) }
        defer { Codec.wipe(&out) }
        return Secret(out)
    }

    /// The credential a stored row gives, or nil when the value is malformed.
    static func credential(_ property: SASLDBProperty, value: Secret) -> Credential? {
        value.withBytes { bytes -> Credential? in
            switch property {
            case .cleartext:
                return .plaintext(Secret(bytes))
            case .cramMD5:
                guard bytes.count == 64, var raw = Codec.unhex(bytes) else { return nil }
                defer { Codec.wipe(&raw) }
                return .cramMD5Context(Secret(raw))
            case .digestMD5:
                guard bytes.count == 32, var raw = Codec.unhex(bytes) else { return nil }
                defer { Codec.wipe(&raw) }
                return .digestMD5HA1(Secret(raw))
            case .scramSHA1, .scramSHA256:
                return decodeSCRAM(bytes, hash: property == .scramSHA1 ? .sha1 : .sha256)
            case .hash:
                return nil
            }
        }
    }

    static func decodeSCRAM(_ bytes: UnsafeBufferPointer<UInt8>, hash: SCRAMHash) -> Credential? {
        let parts = bytes.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
        guard parts.count == 4, (1...9).contains(parts[0].count),
            parts[0].allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return nil }
        let iterations = parts[0].reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        guard SCRAMVerifier.iterationRange.contains(iterations),
            let salt = Codec.unbase64(parts[1]), !salt.isEmpty,
            var stored = Codec.unbase64(parts[2]), var server = Codec.unbase64(parts[3])
        else { return nil }
        defer {
            Codec.wipe(&stored)
            Codec.wipe(&server)
        }
        let length = SCRAM.digestLength(hash)
        guard stored.count == length, server.count == length else { return nil }
        return .scram(hash: hash, salt: salt, iterations: iterations, storedKey: Secret(stored), serverKey: Secret(server))
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
            guard case .scram(_, _, _, let candidate, _)? = try? SCRAM.makeCredential(
                hash: hash, password: password, salt: salt, iterations: iterations)
            else {
                return .unverifiable("the \(property) value cannot be checked")
            }
            return candidate.withBytes { storedKey.constantTimeEquals($0) } ? .match : .mismatch
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

/// Hex and base64 on byte buffers, without Strings (values may be secrets).
enum Codec {

    static func hex<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        Hex.encode(bytes)
    }

    /// Lower- or upper-case hex; nil when malformed.
    static func unhex<C: Collection>(_ text: C) -> [UInt8]? where C.Element == UInt8 {
        Hex.decode(text)
    }

    static func base64<C: Collection>(_ bytes: C) -> [UInt8] where C.Element == UInt8 {
        Base64.encode(bytes)
    }

    /// Strict padded base64; nil when malformed.
    static func unbase64<C: Collection>(_ text: C) -> [UInt8]? where C.Element == UInt8 {
        Base64.decode(text)
    }

    static func wipe(_ bytes: inout [UInt8]) {
        bytes.withUnsafeMutableBytes { raw in
            if let base = raw.baseAddress { explicitZero(base, raw.count) }
        }
    }
}

