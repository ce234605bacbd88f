public import AuthCore
internal import Crypto
internal import FoundationEssentials  // DataProtocol/ContiguousBytes conformances swift-crypto's API takes

/// CRAM-MD5 helpers: the digest and Dovecot's stored `{CRAM-MD5}` credential.
public enum CRAMMD5 {
    /// Bytes in a stored HMAC-MD5 context (two MD5 chaining states).
    public static let contextLength = 32
    /// Bytes in a CRAM-MD5 digest (shown to the client as 32 lower-case hex digits).
    public static let digestLength = 16

    /// Dovecot's `{CRAM-MD5}` credential for `password` (what `doveadm pw -s CRAM-MD5` prints as hex):
    /// the HMAC-MD5 MD5 chaining states after absorbing the 64-byte `key XOR opad` and `key XOR ipad`
    /// blocks, each as four little-endian words. The **outer** state comes first, then the inner one,
    /// exactly as Dovecot's `hmac_md5_get_cram_context` writes them, so hashes move between Dovecot and
    /// saslgate unchanged. Password-equivalent: store it like a password.
    public static func context(password: Secret) -> Secret {
        var bytes = password.withBytes { CRAMMD5Context.compute(password: $0) }
        defer { wipe(&bytes) }
        return Secret(bytes)
    }

    /// HMAC-MD5(key = password, text = challenge): the digest a client sends (as lower-case hex).
    public static func digest(password: Secret, challenge: [UInt8]) -> [UInt8] {
        let key = password.withBytes { SymmetricKey(data: UnsafeRawBufferPointer($0)) }
        return Array(HMAC<Insecure.MD5>.authenticationCode(for: challenge, using: key))
    }

    /// The same digest, finished from a stored context (see `context(password:)`); nil if the context
    /// does not have `contextLength` bytes.
    public static func digest(context: Secret, challenge: [UInt8]) -> [UInt8]? {
        guard context.count == contextLength else { return nil }
        return context.withBytes { CRAMMD5Context.hmac(context: $0, message: challenge) }
    }

    /// The client's response for `challenge`: `user SP lower-case-hex(digest)` (for test clients).
    public static func response(user: String, password: Secret, challenge: [UInt8]) -> [UInt8] {
        Array(user.utf8) + [0x20] + ChallengeResponseSupport.hex(digest(password: password, challenge: challenge))
    }


    /// `<` 16 random digits `.` unix-time `@` host-name `>`, as Dovecot's `get_cram_challenge`.
    static func makeChallenge(_ context: MechanismContext) -> [UInt8] {
        var digits = context.randomBytes(16)
        var out: [UInt8] = [UInt8(ascii: "<")]
        for b in digits { out.append(UInt8(ascii: "0") + b % 10) }
        ChallengeResponseSupport.wipe(&digits)
        out.append(UInt8(ascii: "."))
        out += Array(String(context.now()).utf8)
        out.append(UInt8(ascii: "@"))
        out += Array(context.hostname.utf8)
        out.append(UInt8(ascii: ">"))
        return out
    }
}

/// CRAM-MD5 (RFC 2195) as Dovecot's `mech-cram-md5.c` does it (protocol.md §5.4).
///
/// `start` (initial response ignored) → challenge → response `user SP 32-lower-hex` → credential lookup
/// (`.cramMD5`) → success or failure. The credential may be `.plaintext` or `.cramMD5Context`.
public struct CRAMMD5Mechanism: SASLMechanism {
    private enum State {
        case initial
        case awaitingResponse(challenge: [UInt8])
        case awaitingCredentials(challenge: [UInt8], user: String, clientHex: [UInt8])
        case finished
    }

    private var state: State = .initial
    private let context: MechanismContext

    public init(context: MechanismContext) {
        self.context = context
    }

    public mutating func step(_ input: MechanismInput) -> MechanismStep {
        switch (state, input) {
        case (.initial, .start):
            // Dovecot ignores an initial response and always sends its challenge.
            let challenge = CRAMMD5.makeChallenge(context)
            state = .awaitingResponse(challenge: challenge)
            return .challenge(challenge)

        case (.awaitingResponse(let challenge), .response(let data)):
            return parseResponse(data, challenge: challenge)

        case (.awaitingCredentials(let challenge, let user, let clientHex), .credentials(let credential)):
            state = .finished
            let expected: [UInt8]?
            switch credential {
            case .plaintext(let password):
                expected = CRAMMD5.digest(password: password, challenge: challenge)
            case .cramMD5Context(let stored):
                expected = CRAMMD5.digest(context: stored, challenge: challenge)
            default:
                expected = nil
            }
            guard var expected else {
                return .failure(.failed(user: user, reason: "credential not usable for CRAM-MD5"))
            }
            var expectedHex = ChallengeResponseSupport.hex(expected)
            let matches = ConstantTime.equals(expectedHex, clientHex)
            ChallengeResponseSupport.wipe(&expected)
            ChallengeResponseSupport.wipe(&expectedHex)
            return matches ? .success(finalData: nil) : .failure(.failed(user: user, reason: "password mismatch"))

        default:
            let user: String? = if case .awaitingCredentials(_, let u, _) = state { u } else { nil }
            state = .finished
            if let user { return .failure(.failed(user: user, reason: "unexpected input")) }
            return .failure(.malformed("unexpected input"))
        }
    }

    private mutating func parseResponse(_ data: [UInt8], challenge: [UInt8]) -> MechanismStep {
        state = .finished
        guard data.count <= ChallengeResponseLimits.maxClientMessageBytes else {
            return .failure(.malformed("response too long"))
        }
        guard !data.contains(0) else { return .failure(.malformed("NUL in response")) }
        // The last space separates: user names may contain spaces.
        guard let space = data.lastIndex(of: 0x20) else { return .failure(.malformed("no space in response")) }
        let userBytes = data[..<space]
        let digestHex = Array(data[(space + 1)...])
        guard userBytes.count <= ChallengeResponseLimits.maxUserNameBytes else {
            return .failure(.malformed("user name too long"))
        }
        guard let user = ChallengeResponseSupport.utf8(userBytes) else {
            return .failure(.malformed("user name is not UTF-8"))
        }
        guard !user.isEmpty else { return .failure(.malformed("empty authentication identity")) }
        // Dovecot compares against lower-case hex, so an upper-case digest can never match.
        guard digestHex.count == CRAMMD5.digestLength * 2, ChallengeResponseSupport.isLowerHex(digestHex) else {
            return .failure(.failed(user: user, reason: "digest is not 32 lower-case hex digits"))
        }
        state = .awaitingCredentials(challenge: challenge, user: user, clientHex: digestHex)
        return .lookupCredentials(MechanismIdentity(authcid: user), scheme: .cramMD5)
    }
}
