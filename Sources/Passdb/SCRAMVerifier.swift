public import AuthCore
import Crypto

/// Dovecot's `{SCRAM-SHA-1}` / `{SCRAM-SHA-256}` value `iterations,salt_b64,storedkey_b64,serverkey_b64`
/// (RFC 5802 §3), and the computations to create or check one from a plaintext password.
public struct SCRAMVerifier: Sendable {
    public var hash: SCRAMHash
    public var iterations: Int
    public var salt: [UInt8]
    public var storedKey: Secret
    public var serverKey: Secret

    /// Iteration counts accepted from a file; RFC 7677 asks for at least 4096, Dovecot writes 4096.
    public static let iterationRange = 1...10_000_000
    /// Iterations and salt length used for new verifiers (Dovecot's defaults).
    public static let defaultIterations = 4096
    public static let defaultSaltLength = 16

    public init(hash: SCRAMHash, iterations: Int, salt: [UInt8], storedKey: Secret, serverKey: Secret) {
        self.hash = hash
        self.iterations = iterations
        self.salt = salt
        self.storedKey = storedKey
        self.serverKey = serverKey
    }

    /// The credential a SCRAM mechanism consumes.
    public var credential: Credential {
        .scram(hash: hash, salt: salt, iterations: iterations, storedKey: storedKey, serverKey: serverKey)
    }

    static func digestLength(_ hash: SCRAMHash) -> Int {
        switch hash {
        case .sha1: Insecure.SHA1.byteCount
        case .sha256: SHA256.byteCount
        }
    }

    /// Parses the stored form; nil when malformed (the caller reports where, never what).
    static func parse(_ value: UnsafeBufferPointer<UInt8>, hash: SCRAMHash) -> SCRAMVerifier? {
        let comma = UInt8(ascii: ",")
        var parts: [UnsafeBufferPointer<UInt8>] = []
        var start = 0
        for i in 0...value.count where i == value.count || value[i] == comma {
            parts.append(UnsafeBufferPointer(rebasing: value[start..<i]))
            start = i + 1
        }
        guard parts.count == 4, !parts[0].isEmpty, parts[0].count <= 9,
            parts[0].allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") })
        else { return nil }
        let iterations = parts[0].reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
        guard iterationRange.contains(iterations),
            let salt = PasswordEncoding.base64Decode(parts[1]), !salt.isEmpty,
            var stored = PasswordEncoding.base64Decode(parts[2]),
            var server = PasswordEncoding.base64Decode(parts[3])
        else { return nil }
        defer {
            stored.wipe()
            server.wipe()
        }
        let length = digestLength(hash)
        guard stored.count == length, server.count == length else { return nil }
        return SCRAMVerifier(
            hash: hash, iterations: iterations, salt: salt, storedKey: Secret(stored), serverKey: Secret(server))
    }

    /// The stored form (without the `{SCHEME}` prefix).
    var encoded: String {
        "\(iterations),\(PasswordEncoding.base64Encode(salt)),"
            + "\(storedKey.withBytes { PasswordEncoding.base64Encode($0) }),\(serverKey.withBytes { PasswordEncoding.base64Encode($0) })"
    }

    /// A verifier for `password` with the given salt and iteration count.
    static func derive(password: UnsafeBufferPointer<UInt8>, hash: SCRAMHash, salt: [UInt8], iterations: Int)
        -> SCRAMVerifier
    {
        switch hash {
        case .sha1: derive(Insecure.SHA1.self, password: password, hash: hash, salt: salt, iterations: iterations)
        case .sha256: derive(SHA256.self, password: password, hash: hash, salt: salt, iterations: iterations)
        }
    }

    private static func derive<H: HashFunction>(
        _: H.Type, password: UnsafeBufferPointer<UInt8>, hash: SCRAMHash, salt: [UInt8], iterations: Int
    ) -> SCRAMVerifier {
        let salted = PBKDF2.derive(H.self, password: password, salt: salt, iterations: iterations)
        let saltedKey = SymmetricKey(data: salted.bytes)
        let clientKey = Array(HMAC<H>.authenticationCode(for: Array("Client Key".utf8), using: saltedKey))
        let serverKey = Array(HMAC<H>.authenticationCode(for: Array("Server Key".utf8), using: saltedKey))
        let storedKey = Array(H.hash(data: clientKey))
        return SCRAMVerifier(
            hash: hash, iterations: iterations, salt: salt, storedKey: Secret(storedKey), serverKey: Secret(serverKey))
    }

    /// True if `password` produces this verifier's StoredKey (constant-time compare).
    func matches(password: UnsafeBufferPointer<UInt8>) -> Bool {
        let candidate = SCRAMVerifier.derive(password: password, hash: hash, salt: salt, iterations: iterations)
        return candidate.storedKey.withBytes { storedKey.constantTimeEquals($0) }
    }
}

/// PBKDF2 (RFC 8018) with HMAC, for SCRAM's Hi(). swift-crypto's own PBKDF2 sits in _CryptoExtras, which
/// this module does not depend on; one block of output is all SCRAM needs.
enum PBKDF2 {
    static func derive<H: HashFunction>(_: H.Type, password: UnsafeBufferPointer<UInt8>, salt: [UInt8], iterations: Int)
        -> Secret
    {
        let key = SymmetricKey(data: password)
        let keyed = HMAC<H>(key: key)
        var first = keyed
        first.update(data: salt)
        first.update(data: [0, 0, 0, 1])
        var u = Array(first.finalize())
        var result = u
        if iterations > 1 {
            for _ in 1..<iterations {
                var next = keyed
                next.update(data: u)
                u.wipe()
                u = Array(next.finalize())
                for i in 0..<result.count { result[i] ^= u[i] }
            }
        }
        defer {
            u.wipe()
            result.wipe()
        }
        return Secret(result)
    }
}
