public import AuthCore
internal import Crypto
internal import FoundationEssentials  // DataProtocol/ContiguousBytes conformances swift-crypto's API takes
internal import _CryptoExtras

/// Why `SCRAM.makeCredential` refused.
public enum SCRAMCredentialError: Error, Equatable, Sendable {
    /// Outside `SCRAM.minimumIterations ... SCRAM.maximumIterations`.
    case iterationsOutOfRange(Int)
    case emptySalt
    /// PBKDF2 failed inside swift-crypto (should not happen).
    case derivationFailed
}

/// The SCRAM key schedule (RFC 5802 §3, RFC 7677), its iteration bounds, and Dovecot's stored form of a
/// SCRAM credential. Mechanisms, passdbs and test clients all derive keys here.
public enum SCRAM {
    /// Fewest iterations accepted for an exchange and for new credentials (RFC 7677 §4; Dovecot
    /// refuses fewer too).
    public static let minimumIterations = 4096
    /// Most iterations anywhere: in a stored value, an exchange or a new credential. A bogus huge count
    /// would make every login burn CPU.
    public static let maximumIterations = 10_000_000
    /// Iteration counts a stored value may have. Old tables may hold fewer than `minimumIterations`:
    /// such a value still checks a plaintext password, but is never used for a SCRAM exchange.
    public static let storedIterations = 1...maximumIterations
    /// Iterations of new credentials and of the keys made for an exchange from a plaintext password
    /// (Dovecot's default).
    public static let defaultIterations = 4096
    /// Salt length of new credentials (Dovecot's).
    public static let saltLength = 16

    /// Output length of the hash in bytes (20 for SHA-1, 32 for SHA-256).
    public static func digestLength(_ hash: SCRAMHash) -> Int {
        switch hash {
        case .sha1: Insecure.SHA1.byteCount
        case .sha256: SHA256.byteCount
        }
    }

    // MARK: credentials

    /// The server-side credential `(salt, i, StoredKey, ServerKey)` for `password`: what the CLI stores
    /// and a passdb hands to a mechanism as `.scram`. Password-equivalent for SCRAM: store it like a
    /// password.
    public static func makeCredential(
        hash: SCRAMHash, password: Secret, salt: [UInt8], iterations: Int = defaultIterations
    ) throws(SCRAMCredentialError) -> Credential {
        try password.withBytes { bytes in
            Result { () throws(SCRAMCredentialError) -> Credential in
                try makeCredential(hash: hash, password: bytes, salt: salt, iterations: iterations)
            }
        }.get()
    }

    /// The same from raw password bytes.
    public static func makeCredential(
        hash: SCRAMHash, password: UnsafeBufferPointer<UInt8>, salt: [UInt8], iterations: Int = defaultIterations
    ) throws(SCRAMCredentialError) -> Credential {
        guard (minimumIterations...maximumIterations).contains(iterations) else {
            throw .iterationsOutOfRange(iterations)
        }
        guard !salt.isEmpty else { throw .emptySalt }
        guard let salted = saltedPassword(hash: hash, password: password, salt: salt, iterations: iterations) else {
            throw .derivationFailed
        }
        let (storedKey, serverKey) = keys(hash: hash, saltedPassword: salted)
        return .scram(hash: hash, salt: salt, iterations: iterations, storedKey: storedKey, serverKey: serverKey)
    }

    /// True if `password` gives `storedKey` with this salt and iteration count (constant-time compare).
    /// Runs PBKDF2: call it off the event loops. Any count in `storedIterations` is accepted, so a value
    /// from an old table still checks a plaintext password.
    public static func matches(
        _ password: UnsafeBufferPointer<UInt8>, hash: SCRAMHash, salt: [UInt8], iterations: Int, storedKey: Secret
    ) -> Bool {
        guard storedIterations.contains(iterations),
            let salted = saltedPassword(hash: hash, password: password, salt: salt, iterations: iterations)
        else { return false }
        let (candidate, _) = keys(hash: hash, saltedPassword: salted)
        return candidate.withBytes { storedKey.constantTimeEquals($0) }
    }

    // MARK: the key schedule

    /// SaltedPassword := Hi(password, salt, i) = PBKDF2-HMAC-H (RFC 5802 §3). nil only if the derivation
    /// itself fails (iterations < 1, empty salt, or a swift-crypto error).
    public static func saltedPassword(hash: SCRAMHash, password: Secret, salt: [UInt8], iterations: Int) -> Secret? {
        password.withBytes { saltedPassword(hash: hash, password: $0, salt: salt, iterations: iterations) }
    }

    static func saltedPassword(
        hash: SCRAMHash, password: UnsafeBufferPointer<UInt8>, salt: [UInt8], iterations: Int
    ) -> Secret? {
        guard iterations >= 1, !salt.isEmpty else { return nil }
        let function: KDF.Insecure.PBKDF2.HashFunction = hash == .sha1 ? .insecureSHA1 : .sha256
        let key = try? KDF.Insecure.PBKDF2.deriveKey(
            from: UnsafeRawBufferPointer(password), salt: salt, using: function,
            outputByteCount: digestLength(hash), unsafeUncheckedRounds: iterations)
        guard let key else { return nil }
        return key.withUnsafeBytes { Secret($0) }
    }

    /// ClientProof := ClientKey XOR HMAC(H(ClientKey), AuthMessage), what a client sends as `p=`.
    public static func clientProof(hash: SCRAMHash, saltedPassword: Secret, authMessage: [UInt8]) -> [UInt8] {
        var clientKey = hmac(hash, key: saltedPassword, data: clientKeyLabel)
        var storedKey = digest(hash, clientKey)
        var signature = hmac(hash, key: storedKey, data: authMessage)
        let proof = zip(clientKey, signature).map { $0 ^ $1 }
        clientKey.wipe()
        storedKey.wipe()
        signature.wipe()
        return proof
    }

    /// ServerSignature := HMAC(HMAC(SaltedPassword, "Server Key"), AuthMessage), sent as `v=`.
    public static func serverSignature(hash: SCRAMHash, saltedPassword: Secret, authMessage: [UInt8]) -> [UInt8] {
        let (_, serverKey) = keys(hash: hash, saltedPassword: saltedPassword)
        return hmac(hash, key: serverKey, data: authMessage)
    }

    /// StoredKey := H(HMAC(SP, "Client Key")), ServerKey := HMAC(SP, "Server Key").
    package static func keys(hash: SCRAMHash, saltedPassword: Secret) -> (storedKey: Secret, serverKey: Secret) {
        var clientKey = hmac(hash, key: saltedPassword, data: clientKeyLabel)
        var stored = digest(hash, clientKey)
        var server = hmac(hash, key: saltedPassword, data: serverKeyLabel)
        defer {
            clientKey.wipe()
            stored.wipe()
            server.wipe()
        }
        return (Secret(stored), Secret(server))
    }

    static let clientKeyLabel = Array("Client Key".utf8)
    static let serverKeyLabel = Array("Server Key".utf8)

    package static func hmac(_ hash: SCRAMHash, key: Secret, data: [UInt8]) -> [UInt8] {
        key.withBytes { hmac(hash, key: UnsafeRawBufferPointer($0), data: data) }
    }

    package static func hmac(_ hash: SCRAMHash, key: [UInt8], data: [UInt8]) -> [UInt8] {
        key.withUnsafeBytes { hmac(hash, key: $0, data: data) }
    }

    private static func hmac(_ hash: SCRAMHash, key: UnsafeRawBufferPointer, data: [UInt8]) -> [UInt8] {
        switch hash {
        case .sha1: hmac(Insecure.SHA1.self, key: key, data: data)
        case .sha256: hmac(SHA256.self, key: key, data: data)
        }
    }

    private static func hmac<H: HashFunction>(_: H.Type, key: UnsafeRawBufferPointer, data: [UInt8]) -> [UInt8] {
        Array(HMAC<H>.authenticationCode(for: data, using: SymmetricKey(data: key)))
    }

    package static func digest(_ hash: SCRAMHash, _ data: [UInt8]) -> [UInt8] {
        switch hash {
        case .sha1: Array(Insecure.SHA1.hash(data: data))
        case .sha256: Array(SHA256.hash(data: data))
        }
    }

    // MARK: the stored form

    /// Parses Dovecot's `{SCRAM-SHA-1}` / `{SCRAM-SHA-256}` value `iterations,salt,storedkey,serverkey`
    /// (strict padded base64 fields), which the sasldb store uses too. nil when malformed: the iteration
    /// count is not 1 to 9 digits within `storedIterations`, the salt is empty, or a key does not have
    /// the hash's length. The caller reports where, never what.
    public static func parseStored(_ value: UnsafeBufferPointer<UInt8>, hash: SCRAMHash) -> Credential? {
        let parts = value.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
        guard parts.count == 4, (1...9).contains(parts[0].count),
            parts[0].allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return nil }
        let iterations = parts[0].reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        guard storedIterations.contains(iterations),
            let salt = Base64.decode(parts[1]), !salt.isEmpty,
            var stored = Base64.decode(parts[2]),
            var server = Base64.decode(parts[3])
        else { return nil }
        defer {
            stored.wipe()
            server.wipe()
        }
        let length = digestLength(hash)
        guard stored.count == length, server.count == length else { return nil }
        return .scram(hash: hash, salt: salt, iterations: iterations, storedKey: Secret(stored), serverKey: Secret(server))
    }

    /// The stored form of a `.scram` credential (nil for any other); the caller wipes it.
    public static func encodeStored(_ credential: Credential) -> [UInt8]? {
        guard case .scram(_, let salt, let iterations, let storedKey, let serverKey) = credential else { return nil }
        var out: [UInt8] = []
        // Room for everything up front: no growth that would leave an unwiped copy behind.
        out.reserveCapacity(16 + (salt.count + storedKey.count + serverKey.count + 9) / 3 * 4)
        out += Array("\(iterations),".utf8)
        Base64.append(salt, to: &out)
        out.append(UInt8(ascii: ","))
        storedKey.withBytes { Base64.append($0, to: &out) }
        out.append(UInt8(ascii: ","))
        serverKey.withBytes { Base64.append($0, to: &out) }
        return out
    }
}
