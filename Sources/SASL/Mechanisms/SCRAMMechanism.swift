public import AuthCore
internal import AuthCrypto

/// SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802 / RFC 7677) without channel binding, as Dovecot's
/// `mech-scram.c` does it (docs/PROTOCOL.md §5.6). One implementation, parameterised by `SCRAMHash`.
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

    private var scheme: CredentialScheme { hash.credentialScheme }

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
        let nonce = first.cnonce + (fixedServerNonce ?? Self.serverNonce(context))
        var message = Array("r=".utf8) + nonce
        message += Array(",s=".utf8) + Base64.encode(salt)
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
        let fields = message.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
        guard fields.count >= 3 else { return fail("client-final message has too few attributes") }
        // c= must be base64 of the gs2 header exactly as the client sent it (no channel binding data).
        let expectedBinding = Array("c=".utf8) + Base64.encode(first.gs2Header)
        guard fields[0].elementsEqual(expectedBinding) else { return fail("channel binding (c=) mismatch") }
        guard ConstantTime.equals(fields[1], Array("r=".utf8) + nonce) else { return fail("wrong nonce") }
        let proofField = fields[fields.count - 1]
        guard proofField.starts(with: Array("p=".utf8)),
            let proof = Base64.decode(proofField.dropFirst(2), canonical: true)
        else { return fail("missing or invalid proof") }
        guard proof.count == SCRAM.digestLength(hash) else { return fail("proof has wrong length") }
        // Extensions between r= and p= are ignored (but signed); a repeated c=/r=/p= is not an extension.
        for field in fields[2..<(fields.count - 1)] {
            guard Self.isExtension(field, reserved: "crp") else { return fail("invalid or repeated attribute") }
        }
        let withoutProof = message[..<(proofField.startIndex - 1)]
        var authMessage = first.bare + [UInt8(ascii: ",")] + serverFirst + [UInt8(ascii: ",")] + withoutProof

        var signature = SCRAM.hmac(hash, key: storedKey, data: authMessage)
        var clientKey = zip(proof, signature).map { $0 ^ $1 }
        var computedStoredKey = SCRAM.digest(hash, clientKey)
        let valid = storedKey.constantTimeEquals(computedStoredKey)
        signature.wipe()
        clientKey.wipe()
        computedStoredKey.wipe()
        guard valid else {
            authMessage.wipe()
            return fail("proof mismatch")
        }
        let serverSignature = SCRAM.hmac(hash, key: serverKey, data: authMessage)
        authMessage.wipe()
        return .success(finalData: Array("v=".utf8) + Base64.encode(serverSignature))
    }

    // MARK: wire helpers

    /// Printable characters in the server part of the nonce (Dovecot's).
    public static let serverNonceLength = 64

    /// `count` printable bytes 0x21–0x7E, never `,` (Dovecot maps `,` to `~` the same way).
    static func serverNonce(_ context: MechanismContext) -> [UInt8] {
        var random = context.randomBytes(serverNonceLength)
        defer { random.wipe() }
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
        guard String(validating: message, as: UTF8.self) != nil else {
            return .failure(ParseError("client-first message is not UTF-8"))
        }
        let fields = message.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false)
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
            guard authzField.starts(with: Array("a=".utf8)), let raw = Self.unescapeSASLName(authzField.dropFirst(2)),
                !raw.isEmpty
            else { return .failure(ParseError("invalid authzid")) }
            guard raw.count <= ChallengeResponseLimits.maxUserNameBytes else {
                return .failure(ParseError("authzid too long"))
            }
            authzid = String(validating: raw, as: UTF8.self)
        }
        let gs2Header = Array(message[..<(authzField.endIndex + 1)])
        let bare = Array(message[(authzField.endIndex + 1)...])

        // [ reserved-mext "," ] username "," nonce [ "," extensions ]
        let userField = fields[2]
        if userField.starts(with: Array("m=".utf8)) {
            return .failure(ParseError("mandatory extension not supported"))
        }
        guard userField.starts(with: Array("n=".utf8)), let rawUser = Self.unescapeSASLName(userField.dropFirst(2))
        else { return .failure(ParseError("invalid username attribute")) }
        guard !rawUser.isEmpty else { return .failure(ParseError("empty authentication identity")) }
        guard rawUser.count <= ChallengeResponseLimits.maxUserNameBytes else {
            return .failure(ParseError("user name too long"))
        }
        guard let user = String(validating: rawUser, as: UTF8.self) else {
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
            guard Self.isExtension(field, reserved: "nrm") else {
                return .failure(ParseError("invalid or repeated attribute"))
            }
        }
        return .success(ClientFirst(gs2Header: gs2Header, bare: bare, cnonce: cnonce, user: user, authzid: authzid))
    }
}
