public import AuthCore
internal import AuthCrypto

/// CRAM-MD5 (RFC 2195) as Dovecot's `mech-cram-md5.c` does it (docs/PROTOCOL.md §5.4).
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
            let challenge = Self.makeChallenge(context)
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
            var expectedHex = Hex.encode(expected)
            let matches = ConstantTime.equals(expectedHex, clientHex)
            expected.wipe()
            expectedHex.wipe()
            return matches ? .success(finalData: nil) : .failure(.failed(user: user, reason: "password mismatch"))

        default:
            let user: String? = if case .awaitingCredentials(_, let u, _) = state { u } else { nil }
            state = .finished
            if let user { return .failure(.failed(user: user, reason: "unexpected input")) }
            return .failure(.malformed("unexpected input"))
        }
    }

    /// `<` 16 random digits `.` unix-time `@` host-name `>`, as Dovecot's `get_cram_challenge`.
    static func makeChallenge(_ context: MechanismContext) -> [UInt8] {
        var digits = context.randomBytes(16)
        var out: [UInt8] = [UInt8(ascii: "<")]
        for b in digits { out.append(UInt8(ascii: "0") + b % 10) }
        digits.wipe()
        out.append(UInt8(ascii: "."))
        out += Array(String(context.now()).utf8)
        out.append(UInt8(ascii: "@"))
        out += Array(context.hostname.utf8)
        out.append(UInt8(ascii: ">"))
        return out
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
        guard let user = String(validating: userBytes, as: UTF8.self) else {
            return .failure(.malformed("user name is not UTF-8"))
        }
        guard !user.isEmpty else { return .failure(.malformed("empty authentication identity")) }
        // Dovecot compares against lower-case hex, so an upper-case digest can never match.
        guard digestHex.count == CRAMMD5.digestLength * 2, Hex.isLower(digestHex) else {
            return .failure(.failed(user: user, reason: "digest is not 32 lower-case hex digits"))
        }
        state = .awaitingCredentials(challenge: challenge, user: user, clientHex: digestHex)
        return .lookupCredentials(MechanismIdentity(authcid: user), scheme: .cramMD5)
    }
}
