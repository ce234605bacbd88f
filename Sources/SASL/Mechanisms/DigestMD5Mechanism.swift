public import AuthCore
internal import AuthCrypto

/// DIGEST-MD5 (RFC 2831), authentication only (qop `auth`), as Dovecot's `mech-digest-md5.c` does it
/// (docs/PROTOCOL.md §5.5).
///
/// `start` (initial response ignored) → challenge → digest-response → credential lookup (`.digestMD5`,
/// identity with `realm` when the client sent a non-empty one) → `.success(finalData: "rspauth=…")`.
/// The credential may be `.plaintext` or `.digestMD5HA1`. Stricter than Dovecot in a few places: every
/// known directive may appear only once, `response` is required, a directive without `=` or trailing
/// garbage after a value fails, and the whole response must be UTF-8.
public struct DigestMD5Mechanism: SASLMechanism {
    /// The parsed client response.
    struct Response {
        var username: [UInt8]
        var realm: [UInt8]
        var cnonce: [UInt8]
        var nonceCount: [UInt8]
        var qop: [UInt8]
        var digestURI: [UInt8]
        var authzid: [UInt8]?
        var response: [UInt8]
        var user: String
    }

    private enum State {
        case initial
        case awaitingResponse
        case awaitingCredentials(Response)
        case finished
    }

    private var state: State = .initial
    private let context: MechanismContext
    private var nonce: [UInt8]

    /// A mechanism whose nonce is base64 of 16 bytes from `context.randomBytes`, made at `start`.
    public init(context: MechanismContext) {
        self.context = context
        self.nonce = []
    }

    /// A mechanism with a fixed nonce, for the RFC 2831 test vector only.
    package init(context: MechanismContext, fixedNonce: String) {
        self.context = context
        self.nonce = Array(fixedNonce.utf8)
    }

    public mutating func step(_ input: MechanismInput) -> MechanismStep {
        switch (state, input) {
        case (.initial, .start):
            // Dovecot ignores an initial response and always sends its challenge.
            if nonce.isEmpty { nonce = Base64.encode(context.randomBytes(16)) }
            state = .awaitingResponse
            return .challenge(Self.challenge(realms: context.realms, nonce: nonce))

        case (.awaitingResponse, .response(let data)):
            state = .finished
            switch Self.parse(data, nonce: nonce) {
            case .failure(let error):
                return .failure(.malformed(error.reason))
            case .success(let response):
                state = .awaitingCredentials(response)
                let realm = String(validating: response.realm, as: UTF8.self) ?? ""
                let authzid = response.authzid.flatMap { String(validating: $0, as: UTF8.self) }
                return .lookupCredentials(
                    MechanismIdentity(authcid: response.user, authzid: authzid, realm: realm.isEmpty ? nil : realm),
                    scheme: .digestMD5)
            }

        case (.awaitingCredentials(let response), .credentials(let credential)):
            state = .finished
            return verify(response, credential: credential)

        default:
            let user: String? = if case .awaitingCredentials(let r) = state { r.user } else { nil }
            state = .finished
            if let user { return .failure(.failed(user: user, reason: "unexpected input")) }
            return .failure(.malformed("unexpected input"))
        }
    }

    private func verify(_ response: Response, credential: Credential) -> MechanismStep {
        let ha1: Secret
        switch credential {
        case .plaintext(let password):
            // HA1 from the name and realm exactly as the client sent them.
            var digest = password.withBytes {
                DigestMD5.ha1(user: response.username, realm: response.realm, password: $0)
            }
            ha1 = Secret(digest)
            digest.wipe()
        case .digestMD5HA1(let stored):
            ha1 = stored
        default:
            return .failure(.failed(user: response.user, reason: "credential not usable for DIGEST-MD5"))
        }
        guard
            var (expected, rspauth) = DigestMD5.digests(
                ha1: ha1, nonce: nonce, cnonce: response.cnonce, authzid: response.authzid,
                nonceCount: response.nonceCount, qop: response.qop, digestURI: response.digestURI)
        else {
            return .failure(.failed(user: response.user, reason: "stored DIGEST-MD5 credential has wrong length"))
        }
        // Dovecot compares against lower-case hex: an upper-case response fails.
        let matches = ConstantTime.equals(expected, response.response)
        expected.wipe()
        guard matches else {
            rspauth.wipe()
            return .failure(.failed(user: response.user, reason: "response mismatch"))
        }
        return .success(finalData: Array("rspauth=".utf8) + rspauth)
    }

    /// The server's first challenge (docs/PROTOCOL.md §5.5): one `realm="…",` per realm (or `realm="",`),
    /// then nonce, qop, charset and algorithm.
    static func challenge(realms: [String], nonce: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        if realms.isEmpty {
            out += Array("realm=\"\",".utf8)
        } else {
            for realm in realms { out += Array("realm=\"".utf8) + quoted(Array(realm.utf8)) + Array("\",".utf8) }
        }
        out += Array("nonce=\"".utf8) + nonce + Array("\",".utf8)
        out += Array("qop=\"auth\",charset=\"utf-8\",algorithm=\"md5-sess\"".utf8)
        return out
    }

    /// Escapes `"` and `\` for a quoted-string (Dovecot does not, but realm names could contain them).
    private static func quoted(_ value: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        for b in value {
            if b == UInt8(ascii: "\"") || b == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
            out.append(b)
        }
        return out
    }

    struct ParseError: Error, Equatable {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }

    /// Parses and checks a digest-response (RFC 2831 §2.1.2) against the nonce we sent.
    static func parse(_ data: [UInt8], nonce: [UInt8]) -> Result<Response, ParseError> {
        guard !data.isEmpty else { return .failure(ParseError("empty response")) }
        guard data.count <= ChallengeResponseLimits.maxClientMessageBytes else {
            return .failure(ParseError("response too long"))
        }
        guard !data.contains(0) else { return .failure(ParseError("NUL in response")) }
        guard String(validating: data, as: UTF8.self) != nil else { return .failure(ParseError("response is not UTF-8")) }

        let directives: [(key: String, value: [UInt8])]
        switch DigestDirectiveParser.parse(data) {
        case .success(let d): directives = d
        case .failure(let e): return .failure(e)
        }

        var seen = Set<String>()
        var username: [UInt8]?
        var realm: [UInt8] = []
        var nonceFound = false
        var cnonce: [UInt8]?
        var nonceCount: [UInt8]?
        var qop: [UInt8]?
        var digestURI: [UInt8] = []
        var authzid: [UInt8]?
        var response: [UInt8]?

        for (key, value) in directives {
            let known = [
                "realm", "username", "nonce", "cnonce", "nc", "qop", "digest-uri", "response", "maxbuf", "charset",
                "cipher", "authzid",
            ]
            if known.contains(key) {
                guard seen.insert(key).inserted else { return .failure(ParseError("duplicate \(key)")) }
            }
            switch key {
            case "realm":
                guard value.count <= ChallengeResponseLimits.maxUserNameBytes else {
                    return .failure(ParseError("realm too long"))
                }
                realm = value
            case "username":
                guard !value.isEmpty else { return .failure(ParseError("empty username")) }
                guard value.count <= ChallengeResponseLimits.maxUserNameBytes else {
                    return .failure(ParseError("username too long"))
                }
                username = value
            case "nonce":
                guard ConstantTime.equals(value, nonce) else { return .failure(ParseError("wrong nonce")) }
                nonceFound = true
            case "cnonce":
                guard !value.isEmpty else { return .failure(ParseError("empty cnonce")) }
                cnonce = value
            case "nc":
                // Dovecot: a number that must be 1 (no re-authentication).
                guard !value.isEmpty, value.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                    value.drop(while: { $0 == 0x30 }).elementsEqual([0x31])
                else { return .failure(ParseError("nc must be 1")) }
                nonceCount = value
            case "qop":
                guard lowercased(value) == Array("auth".utf8) else {
                    return .failure(ParseError("only qop auth is supported"))
                }
                qop = value
            case "digest-uri":
                // serv-type "/" host [ "/" serv-name ]: at least one slash; not checked against anything.
                guard value.contains(UInt8(ascii: "/")) else { return .failure(ParseError("invalid digest-uri")) }
                digestURI = value
            case "response":
                guard value.count == 32 else { return .failure(ParseError("response must be 32 hex digits")) }
                response = value
            case "maxbuf":
                guard !value.isEmpty, value.count <= 10, value.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                    value.contains(where: { $0 != 0x30 })
                else { return .failure(ParseError("invalid maxbuf")) }
            case "charset":
                guard lowercased(value) == Array("utf-8".utf8) else {
                    return .failure(ParseError("only charset utf-8 is supported"))
                }
            case "authzid":
                guard !value.isEmpty else { return .failure(ParseError("empty authzid")) }
                guard value.count <= ChallengeResponseLimits.maxUserNameBytes else {
                    return .failure(ParseError("authzid too long"))
                }
                authzid = value
            default:
                break  // cipher (only meaningful with auth-conf) and unknown directives are ignored
            }
        }
        guard nonceFound else { return .failure(ParseError("missing nonce")) }
        guard let cnonce else { return .failure(ParseError("missing cnonce")) }
        guard let username, let user = String(validating: username, as: UTF8.self) else {
            return .failure(ParseError("missing username"))
        }
        guard let response else { return .failure(ParseError("missing response")) }
        return .success(
            Response(
                username: username, realm: realm, cnonce: cnonce, nonceCount: nonceCount ?? Array("00000001".utf8),
                qop: qop ?? Array("auth".utf8), digestURI: digestURI, authzid: authzid, response: response, user: user))
    }

    private static func lowercased(_ value: [UInt8]) -> [UInt8] {
        value.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }
    }
}

/// The RFC 2831 `#rule` list of `key=value` directives: keys case-insensitive, optional linear white
/// space around elements and `=`, empty elements allowed, values bare tokens or quoted strings in which
/// `\` escapes the next byte.
enum DigestDirectiveParser {
    static func parse(_ data: [UInt8]) -> Result<[(key: String, value: [UInt8])], DigestMD5Mechanism.ParseError> {
        typealias ParseError = DigestMD5Mechanism.ParseError
        var out: [(key: String, value: [UInt8])] = []
        var i = 0
        let n = data.count
        func isLWS(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0D || b == 0x0A }
        func skipLWS() { while i < n, isLWS(data[i]) { i += 1 } }
        func isKeyByte(_ b: UInt8) -> Bool {
            (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) || b == 0x2D || b == 0x5F
        }

        while true {
            skipLWS()
            if i == n { break }
            if data[i] == UInt8(ascii: ",") {  // empty list element
                i += 1
                continue
            }
            let keyStart = i
            while i < n, isKeyByte(data[i]) { i += 1 }
            guard i > keyStart else { return .failure(ParseError("invalid directive name")) }
            guard i - keyStart <= 32 else { return .failure(ParseError("directive name too long")) }
            let key = String(decoding: data[keyStart..<i], as: UTF8.self).lowercased()
            skipLWS()
            guard i < n, data[i] == UInt8(ascii: "=") else { return .failure(ParseError("directive without value")) }
            i += 1
            skipLWS()
            var value: [UInt8] = []
            if i < n, data[i] == UInt8(ascii: "\"") {
                i += 1
                var closed = false
                while i < n {
                    var b = data[i]
                    if b == UInt8(ascii: "\"") {
                        closed = true
                        i += 1
                        break
                    }
                    if b == UInt8(ascii: "\\") {
                        i += 1
                        guard i < n else { break }
                        b = data[i]
                    }
                    value.append(b)
                    i += 1
                    guard value.count <= ChallengeResponseLimits.maxFieldBytes else {
                        return .failure(ParseError("value of \(key) too long"))
                    }
                }
                guard closed else { return .failure(ParseError("unterminated quoted string")) }
            } else {
                while i < n, data[i] != UInt8(ascii: ","), !isLWS(data[i]) {
                    guard data[i] != UInt8(ascii: "\"") else { return .failure(ParseError("quote inside bare value")) }
                    value.append(data[i])
                    i += 1
                }
                guard value.count <= ChallengeResponseLimits.maxFieldBytes else {
                    return .failure(ParseError("value of \(key) too long"))
                }
            }
            out.append((key, value))
            guard out.count <= ChallengeResponseLimits.maxDigestDirectives else {
                return .failure(ParseError("too many directives"))
            }
            skipLWS()
            if i == n { break }
            guard data[i] == UInt8(ascii: ",") else { return .failure(ParseError("garbage after value of \(key)")) }
            i += 1
        }
        return .success(out)
    }
}
