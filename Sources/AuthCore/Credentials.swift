/// What a challenge-response mechanism needs from a password database instead of a plaintext check.
public enum CredentialScheme: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case plaintext = "PLAIN"
    case cramMD5 = "CRAM-MD5"
    case digestMD5 = "DIGEST-MD5"
    case scramSHA1 = "SCRAM-SHA-1"
    case scramSHA256 = "SCRAM-SHA-256"

    public var description: String { rawValue }
}

/// Hash used by a SCRAM credential.
public enum SCRAMHash: String, Sendable, Hashable {
    case sha1 = "SHA-1"
    case sha256 = "SHA-256"
}

/// A stored secret handed by a passdb to a mechanism. Every case is password-equivalent: never log it.
public enum Credential: Sendable, CustomStringConvertible {
    /// The cleartext password (from `{PLAIN}` entries or an explicit cleartext opt-in).
    case plaintext(Secret)
    /// The HMAC-MD5 outer then inner MD5 states after absorbing the padded key (Dovecot's `{CRAM-MD5}`, 32 bytes).
    case cramMD5Context(Secret)
    /// MD5(user ":" realm ":" password) for one realm (Dovecot's `{DIGEST-MD5}`, 16 bytes).
    case digestMD5HA1(Secret)
    /// SCRAM's server-side verifier (RFC 5802 §3): salt, iteration count, StoredKey, ServerKey.
    case scram(hash: SCRAMHash, salt: [UInt8], iterations: Int, storedKey: Secret, serverKey: Secret)

    public var description: String {
        switch self {
        case .plaintext: "plaintext(<hidden>)"
        case .cramMD5Context: "cram-md5(<hidden>)"
        case .digestMD5HA1: "digest-md5(<hidden>)"
        case .scram(let hash, _, let iterations, _, _): "scram-\(hash.rawValue)(i=\(iterations), <hidden>)"
        }
    }
}

extension SCRAMHash {
    /// The credential kind a SCRAM mechanism with this hash asks for.
    public var credentialScheme: CredentialScheme {
        switch self {
        case .sha1: .scramSHA1
        case .sha256: .scramSHA256
        }
    }
}

extension CredentialScheme {
    /// The hash of a SCRAM kind; nil for the others.
    public var scramHash: SCRAMHash? {
        switch self {
        case .scramSHA1: .sha1
        case .scramSHA256: .sha256
        case .plaintext, .cramMD5, .digestMD5: nil
        }
    }
}
