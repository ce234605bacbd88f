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

/// SCRAM (RFC 5802 / RFC 7677) helpers: the stored verifier and the client-side computations.
public enum SCRAM {
    /// Dovecot refuses credentials below 4096 iterations (RFC 7677 §4 asks for at least 4096).
    public static let minimumIterations = 4096
    /// Iterations used when the passdb has only the plaintext password (Dovecot's default).
    public static let defaultIterations = 4096
    /// Upper bound for stored credentials (the client does the work, but a bogus huge value is an error).
    public static let maximumIterations = Int(Int32.max)
    /// Salt length used for plaintext passdbs and recommended for new credentials (Dovecot's).
    public static let saltLength = 16
    /// Printable characters in the server part of the nonce (Dovecot's).
    public static let serverNonceLength = 64

    /// Output length of the hash in bytes (20 for SHA-1, 32 for SHA-256).
    public static func digestLength(_ hash: SCRAMHash) -> Int {
        switch hash {
        case .sha1: Insecure.SHA1.byteCount
        case .sha256: SHA256.byteCount
        }
    }

    /// The stored verifier `(salt, i, StoredKey, ServerKey)` for `password`: what the CLI writes and a
    /// passdb hands back as `.scram`. Password-equivalent for SCRAM: store it like a password.
    public static func makeCredential(
        hash: SCRAMHash, password: Secret, salt: [UInt8], iterations: Int = defaultIterations
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

    /// SaltedPassword := Hi(password, salt, i) = PBKDF2-HMAC-H (RFC 5802 §3). nil only if the derivation
    /// itself fails (iterations < 1, empty salt, or a swift-crypto error).
    public static func saltedPassword(hash: SCRAMHash, password: Secret, salt: [UInt8], iterations: Int) -> Secret? {
        guard iterations >= 1, !salt.isEmpty else { return nil }
        let function: KDF.Insecure.PBKDF2.HashFunction = hash == .sha1 ? .insecureSHA1 : .sha256
        let key = try? password.withBytes { bytes in
            try KDF.Insecure.PBKDF2.deriveKey(
                from: UnsafeRawBufferPointer(bytes), salt: salt, using: function, outputByteCount: digestLength(hash),
                unsafeUncheckedRounds: iterations)
        }
        guard let key else { return nil }
        return key.withUnsafeBytes { Secret($0) }
    }

    /// ClientProof := ClientKey XOR HMAC(H(ClientKey), AuthMessage), what a client sends as `p=`.
    public static func clientProof(hash: SCRAMHash, saltedPassword: Secret, authMessage: [UInt8]) -> [UInt8] {
        var clientKey = hmac(hash, key: saltedPassword, data: clientKeyLabel)
        var storedKey = digest(hash, clientKey)
        var signature = hmac(hash, key: storedKey, data: authMessage)
        let proof = zip(clientKey, signature).map { $0 ^ $1 }
        ChallengeResponseSupport.wipe(&clientKey)
        ChallengeResponseSupport.wipe(&storedKey)
        ChallengeResponseSupport.wipe(&signature)
        return proof
    }

    /// ServerSignature := HMAC(HMAC(SaltedPassword, "Server Key"), AuthMessage), sent as `v=`.
    public static func serverSignature(hash: SCRAMHash, saltedPassword: Secret, authMessage: [UInt8]) -> [UInt8] {
        let (_, serverKey) = keys(hash: hash, saltedPassword: saltedPassword)
        return hmac(hash, key: serverKey, data: authMessage)
    }

    // MARK: internals

    static let clientKeyLabel = Array("Client Key".utf8)
    static let serverKeyLabel = Array("Server Key".utf8)

    /// StoredKey := H(HMAC(SP, "Client Key")), ServerKey := HMAC(SP, "Server Key").
    static func keys(hash: SCRAMHash, saltedPassword: Secret) -> (storedKey: Secret, serverKey: Secret) {
        var clientKey = hmac(hash, key: saltedPassword, data: clientKeyLabel)
        var stored = digest(hash, clientKey)
        var server = hmac(hash, key: saltedPassword, data: serverKeyLabel)
        defer {
            ChallengeResponseSupport.wipe(&clientKey)
            ChallengeResponseSupport.wipe(&stored)
            ChallengeResponseSupport.wipe(&server)
        }
        return (Secret(stored), Secret(server))
    }

    static func hmac(_ hash: SCRAMHash, key: Secret, data: [UInt8]) -> [UInt8] {
        key.withBytes { hmac(hash, key: UnsafeRawBufferPointer($0), data: data) }
    }

    static func hmac(_ hash: SCRAMHash, key: [UInt8], data: [UInt8]) -> [UInt8] {
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

    static func digest(_ hash: SCRAMHash, _ data: [UInt8]) -> [UInt8] {
        switch hash {
        case .sha1: Array(Insecure.SHA1.hash(data: data))
        case .sha256: Array(SHA256.hash(data: data))
        }
    }

    /// `count` printable bytes 0x21–0x7E, never `,` (Dovecot maps `,` to `~` the same way).
    static func serverNonce(_ context: MechanismContext) -> [UInt8] {
        var random = context.randomBytes(serverNonceLength)
        defer { ChallengeResponseSupport.wipe(&random) }
        return random.map { b in
            let c = 0x21 + b % 94
            return c == UInt8(ascii: ",") ? UInt8(ascii: "~") : c
        }
    }

    /// `attr-val = ALPHA "=" value` (RFC 5802 §7) whose attribute is not one of `reserved`.
    static func isExtension(_ field: ArraySlice<UInt8>, reserved: String) -> Bool {
        guard field.count >= 2, let attr = field.first, field[field.startIndex + 1] == UInt8(ascii: "=") else {
            return false
        }
        let isAlpha = (attr >= 0x41 && attr <= 0x5A) || (attr >= 0x61 && attr <= 0x7A)
        return isAlpha && !reserved.utf8.contains(attr)
    }

    /// saslname unescaping (RFC 5802 §5.1): `=2C` → `,`, `=3D` → `=`, any other `=` fails.
    static func unescapeSASLName(_ bytes: ArraySlice<UInt8>) -> [UInt8]? {
        var out: [UInt8] = []
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let b = bytes[i]
            if b == UInt8(ascii: "=") {
                guard bytes.endIndex - i >= 3 else { return nil }
                let pair = (bytes[i + 1], bytes[i + 2])
                if pair == (UInt8(ascii: "2"), UInt8(ascii: "C")) {
                    out.append(UInt8(ascii: ","))
                } else if pair == (UInt8(ascii: "3"), UInt8(ascii: "D")) {
                    out.append(UInt8(ascii: "="))
                } else {
                    return nil
                }
                i += 3
            } else {
                out.append(b)
                i += 1
            }
        }
        return out
    }
}

/// SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802 / RFC 7677) without channel binding, as Dovecot's
/// `mech-scram.c` does it (protocol.md §5.6). One implementation, parameterised by `SCRAMHash`.
///
/// `start` (no initial response → empty challenge first) → client-first → credential lookup
/// (`.scramSHA1` / `.scramSHA256`) → server-first challenge → client-final → `.success("v=…")`.
/// The credential may be `.scram` (same hash, i ≥ 4096) or `.plaintext` (then a random 16-byte salt and
/// i = 4096 are used for this attempt). A failure never produces an `e=` message (Dovecot doesn't).
public struct SCRAMMechanism: SASLMechanism {
    public let hash: SCRAMHash

    struct ClientFirst {
        /// `gs2-header` exactly as sent (`n,,`, `y,,`, `n,a=…,`).
        var gs2Header: [UInt8]
        /// `client-first-message-bare` exactly as sent.
        var bare: [UInt8]
        var cnonce: [UInt8]
        var user: String
        var authzid: String?
    }

    private enum State {
        case initial
        case awaitingClientFirst
        case awaitingCredentials(ClientFirst)
        case awaitingClientFinal(
            ClientFirst, serverFirst: [UInt8], nonce: [UInt8], storedKey: Secret, serverKey: Secret)
        case finished
    }

    private var state: State = .initial
    private let context: MechanismContext
    private let fixedServerNonce: [UInt8]?

    public init(hash: SCRAMHash, context: MechanismContext) {
        self.hash = hash
        self.context = context
        self.fixedServerNonce = nil
    }

    /// A mechanism with a fixed server nonce part, for the RFC test vectors only.
    package init(hash: SCRAMHash, context: MechanismContext, fixedServerNonce: String) {
        self.hash = hash
        self.context = context
        self.fixedServerNonce = Array(fixedServerNonce.utf8)
    }

    private var scheme: CredentialScheme { hash == .sha1 ? .scramSHA1 : .scramSHA256 }

    public mutating func step(_ input: MechanismInput) -> MechanismStep {
        switch (state, input) {
        case (.initial, .start(nil)):
            state = .awaitingClientFirst
            return .challenge([])
        case (.initial, .start(let message?)), (.awaitingClientFirst, .response(let message)):
            state = .finished
            switch Self.parseClientFirst(message) {
            case .failure(let error):
                return .failure(.malformed(error.reason))
            case .success(let first):
                state = .awaitingCredentials(first)
                return .lookupCredentials(
                    MechanismIdentity(authcid: first.user, authzid: first.authzid), scheme: scheme)
            }
        case (.awaitingCredentials(let first), .credentials(let credential)):
            state = .finished
            return serverFirst(first, credential: credential)
        case (
            .awaitingClientFinal(let first, let serverFirst, let nonce, let storedKey, let serverKey), .response(let m)
        ):
            state = .finished
            return clientFinal(
                m, first: first, serverFirst: serverFirst, nonce: nonce, storedKey: storedKey, serverKey: serverKey)
        default:
            let user: String? =
                switch state {
                case .awaitingCredentials(let first), .awaitingClientFinal(let first, _, _, _, _): first.user
                default: nil
                }
            state = .finished
            if let user { return .failure(.failed(user: user, reason: "unexpected input")) }
            return .failure(.malformed("unexpected input"))
        }
    }

    // MARK: steps

    private mutating func serverFirst(_ first: ClientFirst, credential: Credential) -> MechanismStep {
        let salt: [UInt8]
        let iterations: Int
        let storedKey: Secret
        let serverKey: Secret
        switch credential {
        case .plaintext(let password):
            salt = context.randomBytes(SCRAM.saltLength)
            iterations = SCRAM.defaultIterations
            guard salt.count == SCRAM.saltLength,
                let salted = SCRAM.saltedPassword(hash: hash, password: password, salt: salt, iterations: iterations)
            else { return .failure(.failed(user: first.user, reason: "could not derive SCRAM keys")) }
            (storedKey, serverKey) = SCRAM.keys(hash: hash, saltedPassword: salted)
        case .scram(let storedHash, let storedSalt, let storedIterations, let stored, let server):
            guard storedHash == hash else {
                return .failure(.failed(user: first.user, reason: "credential is for another SCRAM hash"))
            }
            guard (SCRAM.minimumIterations...SCRAM.maximumIterations).contains(storedIterations) else {
                return .failure(.failed(user: first.user, reason: "stored SCRAM iteration count out of range"))
            }
            let length = SCRAM.digestLength(hash)
            guard !storedSalt.isEmpty, storedSalt.count <= ChallengeResponseLimits.maxFieldBytes,
                stored.count == length, server.count == length
            else { return .failure(.failed(user: first.user, reason: "malformed stored SCRAM credential")) }
            (salt, iterations, storedKey, serverKey) = (storedSalt, storedIterations, stored, server)
        default:
            return .failure(.failed(user: first.user, reason: "credential not usable for SCRAM"))
        }
        let nonce = first.cnonce + (fixedServerNonce ?? SCRAM.serverNonce(context))
        var message = Array("r=".utf8) + nonce
        message += Array(",s=".utf8) + ChallengeResponseSupport.base64Encode(salt)
        message += Array(",i=\(iterations)".utf8)
        state = .awaitingClientFinal(
            first, serverFirst: message, nonce: nonce, storedKey: storedKey, serverKey: serverKey)
        return .challenge(message)
    }

    private func clientFinal(
        _ message: [UInt8], first: ClientFirst, serverFirst: [UInt8], nonce: [UInt8], storedKey: Secret,
        serverKey: Secret
    ) -> MechanismStep {
        func fail(_ reason: String) -> MechanismStep { .failure(.failed(user: first.user, reason: reason)) }
        guard !message.isEmpty else { return fail("empty client-final message") }
        guard message.count <= ChallengeResponseLimits.maxClientMessageBytes else {
            return fail("client-final message too long")
        }
        guard !message.contains(0) else { return fail("NUL in client-final message") }
        let fields = ChallengeResponseSupport.split(message[...], separator: UInt8(ascii: ","))
        guard fields.count >= 3 else { return fail("client-final message has too few attributes") }
        // c= must be base64 of the gs2 header exactly as the client sent it (no channel binding data).
        let expectedBinding = Array("c=".utf8) + ChallengeResponseSupport.base64Encode(first.gs2Header)
        guard fields[0].elementsEqual(expectedBinding) else { return fail("channel binding (c=) mismatch") }
        guard ConstantTime.equals(fields[1], Array("r=".utf8) + nonce) else { return fail("wrong nonce") }
        let proofField = fields[fields.count - 1]
        guard proofField.starts(with: Array("p=".utf8)),
            let proof = ChallengeResponseSupport.base64Decode(proofField.dropFirst(2))
        else { return fail("missing or invalid proof") }
        guard proof.count == SCRAM.digestLength(hash) else { return fail("proof has wrong length") }
        // Extensions between r= and p= are ignored (but signed); a repeated c=/r=/p= is not an extension.
        for field in fields[2..<(fields.count - 1)] {
            guard SCRAM.isExtension(field, reserved: "crp") else { return fail("invalid or repeated attribute") }
        }
        let withoutProof = message[..<(proofField.startIndex - 1)]
        var authMessage = first.bare + [UInt8(ascii: ",")] + serverFirst + [UInt8(ascii: ",")] + withoutProof

        var signature = SCRAM.hmac(hash, key: storedKey, data: authMessage)
        var clientKey = zip(proof, signature).map { $0 ^ $1 }
        var computedStoredKey = SCRAM.digest(hash, clientKey)
        let valid = storedKey.constantTimeEquals(computedStoredKey)
        ChallengeResponseSupport.wipe(&signature)
        ChallengeResponseSupport.wipe(&clientKey)
        ChallengeResponseSupport.wipe(&computedStoredKey)
        guard valid else {
            ChallengeResponseSupport.wipe(&authMessage)
            return fail("proof mismatch")
        }
        let serverSignature = SCRAM.hmac(hash, key: serverKey, data: authMessage)
        ChallengeResponseSupport.wipe(&authMessage)
        return .success(finalData: Array("v=".utf8) + ChallengeResponseSupport.base64Encode(serverSignature))
    }

    // MARK: parsing

    struct ParseError: Error, Equatable {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }

    /// `gs2-header client-first-message-bare` (RFC 5802 §7).
    static func parseClientFirst(_ message: [UInt8]) -> Result<ClientFirst, ParseError> {
        guard !message.isEmpty else { return .failure(ParseError("empty client-first message")) }
        guard message.count <= ChallengeResponseLimits.maxClientMessageBytes else {
            return .failure(ParseError("client-first message too long"))
        }
        guard !message.contains(0) else { return .failure(ParseError("NUL in client-first message")) }
        guard ChallengeResponseSupport.utf8(message) != nil else {
            return .failure(ParseError("client-first message is not UTF-8"))
        }
        let fields = ChallengeResponseSupport.split(message[...], separator: UInt8(ascii: ","))
        guard fields.count >= 4 else { return .failure(ParseError("client-first message has too few attributes")) }

        // gs2-cbind-flag: "n" / "y"; "p=" asks for channel binding, which is not offered.
        let flag = fields[0]
        if flag.starts(with: Array("p=".utf8)) { return .failure(ParseError("channel binding not supported")) }
        guard flag.elementsEqual([UInt8(ascii: "n")]) || flag.elementsEqual([UInt8(ascii: "y")]) else {
            return .failure(ParseError("invalid gs2 channel binding flag"))
        }

        // [ "a=" saslname ]
        var authzid: String?
        let authzField = fields[1]
        if !authzField.isEmpty {
            guard authzField.starts(with: Array("a=".utf8)), let raw = SCRAM.unescapeSASLName(authzField.dropFirst(2)),
                !raw.isEmpty
            else { return .failure(ParseError("invalid authzid")) }
            guard raw.count <= ChallengeResponseLimits.maxUserNameBytes else {
                return .failure(ParseError("authzid too long"))
            }
            authzid = ChallengeResponseSupport.utf8(raw)
        }
        let gs2Header = Array(message[..<(authzField.endIndex + 1)])
        let bare = Array(message[(authzField.endIndex + 1)...])

        // [ reserved-mext "," ] username "," nonce [ "," extensions ]
        let userField = fields[2]
        if userField.starts(with: Array("m=".utf8)) {
            return .failure(ParseError("mandatory extension not supported"))
        }
        guard userField.starts(with: Array("n=".utf8)), let rawUser = SCRAM.unescapeSASLName(userField.dropFirst(2))
        else { return .failure(ParseError("invalid username attribute")) }
        guard !rawUser.isEmpty else { return .failure(ParseError("empty authentication identity")) }
        guard rawUser.count <= ChallengeResponseLimits.maxUserNameBytes else {
            return .failure(ParseError("user name too long"))
        }
        guard let user = ChallengeResponseSupport.utf8(rawUser) else {
            return .failure(ParseError("user name is not UTF-8"))
        }

        let nonceField = fields[3]
        guard nonceField.starts(with: Array("r=".utf8)) else { return .failure(ParseError("invalid nonce attribute")) }
        let cnonce = Array(nonceField.dropFirst(2))
        guard !cnonce.isEmpty else { return .failure(ParseError("empty client nonce")) }
        guard cnonce.count <= ChallengeResponseLimits.maxFieldBytes else {
            return .failure(ParseError("client nonce too long"))
        }
        // printable = %x21-2B / %x2D-7E (',' cannot occur after splitting)
        guard cnonce.allSatisfy({ $0 >= 0x21 && $0 <= 0x7E }) else {
            return .failure(ParseError("client nonce has non-printable characters"))
        }
        // Extensions after the nonce are ignored (but signed); a repeated n=/r=/m= is not an extension.
        for field in fields[4...] {
            guard SCRAM.isExtension(field, reserved: "nrm") else {
                return .failure(ParseError("invalid or repeated attribute"))
            }
        }
        return .success(ClientFirst(gs2Header: gs2Header, bare: bare, cnonce: cnonce, user: user, authzid: authzid))
    }
}
