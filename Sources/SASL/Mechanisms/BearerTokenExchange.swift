internal import AuthCore

/// The state machine OAUTHBEARER (RFC 7628) and XOAUTH2 share; only the parsing of the client's message
/// and the error challenge differ. One client message carries the user name and the bearer token; the
/// token goes to the passdbs that verify tokens (`.verifyToken`), never to a password check. A refused
/// token is answered as Dovecot 2.3 does (src/auth/mech-oauth2.c): the JSON error as a challenge, the
/// client's dummy response, then FAIL. Without an initial response the server first sends an empty
/// challenge; an empty initial response is a (broken) message, as with PLAIN (docs/PROTOCOL.md §2.2).
struct BearerTokenExchange: Sendable {
    /// Longest client message: what fits the protocol's 16 KiB line once base64-encoded (docs/PROTOCOL.md
    /// §3.1), so tokens of any size the wire can carry are accepted.
    static let maxMessageLength = 12 * 1024

    /// A client message, parsed.
    struct Message: Sendable {
        var user: String
        var token: [UInt8]
    }

    private enum State { case initial, awaitingMessage, verifying(user: String), rejected(user: String), done }
    private var state = State.initial
    /// The mechanism's error challenge (a JSON object).
    let errorChallenge: [UInt8]
    /// Reads one client message; the error's reason goes to the log.
    let parse: @Sendable ([UInt8]) -> Result<Message, BearerTokenError>

    init(errorChallenge: String, parse: @escaping @Sendable ([UInt8]) -> Result<Message, BearerTokenError>) {
        self.errorChallenge = Array(errorChallenge.utf8)
        self.parse = parse
    }

    mutating func step(_ input: MechanismInput) -> MechanismStep {
        switch (state, input) {
        case (.initial, .start(let initial)):
            guard let initial else {
                state = .awaitingMessage
                return .challenge([])
            }
            return take(initial)
        case (.awaitingMessage, .response(let message)):
            return take(message)
        case (.verifying, .verified):
            state = .done
            return .success(finalData: nil)
        case (.verifying(let user), .tokenRejected):
            state = .rejected(user: user)
            return .challenge(errorChallenge)
        case (.rejected(let user), .response):
            // RFC 7628 §3.2.3: whatever the client answers to the error challenge, the exchange fails.
            state = .done
            return .failure(.failed(user: user, reason: "token refused"))
        default:
            state = .done
            return .failure(.malformed("unexpected input"))
        }
    }

    private mutating func take(_ bytes: [UInt8]) -> MechanismStep {
        guard bytes.count <= Self.maxMessageLength else {
            state = .done
            return .failure(.malformed("bearer token message longer than \(Self.maxMessageLength) bytes"))
        }
        switch parse(bytes) {
        case .failure(let error):
            state = .done
            return .failure(.malformed(error.reason))
        case .success(let message):
            state = .verifying(user: message.user)
            return .verifyToken(MechanismIdentity(authcid: message.user), token: Secret(message.token))
        }
    }
}

/// Why a bearer-token message was refused; the reason names no part of the token.
struct BearerTokenError: Error, Sendable {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}

/// Pieces both message formats use.
enum BearerTokenSyntax {
    /// `auth=Bearer TOKEN` (the scheme is case-insensitive, RFC 6750 §2.1); nil when it is not one.
    static func token(fromAuthValue value: ArraySlice<UInt8>) -> [UInt8]? {
        let scheme = Array("bearer ".utf8)
        guard value.count > scheme.count,
            zip(value.prefix(scheme.count), scheme).allSatisfy({ pair in lowercased(pair.0) == pair.1 })
        else { return nil }
        let token = value.dropFirst(scheme.count)
        return isB64Token(token) ? Array(token) : nil
    }

    /// RFC 6750 §2.1 b64token: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
    static func isB64Token(_ token: ArraySlice<UInt8>) -> Bool {
        let body = token.reversed().drop(while: { $0 == UInt8(ascii: "=") })
        guard !body.isEmpty else { return false }
        return body.allSatisfy { b in
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"):
                true
            case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"), UInt8(ascii: "+"),
                UInt8(ascii: "/"):
                true
            default: false
            }
        }
    }

    /// The message's `key=value` fields, split at 0x01 (empty ones dropped: the message ends in two).
    static func fields(_ bytes: ArraySlice<UInt8>) -> [ArraySlice<UInt8>] {
        bytes.split(separator: 0x01, omittingEmptySubsequences: true)
    }

    /// The token of the one `auth=` field; unknown fields are ignored as by Dovecot.
    static func bearerToken(in fields: [ArraySlice<UInt8>]) -> Result<[UInt8], BearerTokenError> {
        var found: [UInt8]?
        for field in fields where field.starts(with: "auth=".utf8) {
            guard found == nil else { return .failure(BearerTokenError("more than one auth= field")) }
            guard let token = token(fromAuthValue: field.dropFirst(5)) else {
                return .failure(BearerTokenError("auth= is not 'Bearer' and a token of RFC 6750 characters"))
            }
            found = token
        }
        guard let found else { return .failure(BearerTokenError("no auth= field")) }
        return .success(found)
    }

    /// A user name: UTF-8, not empty, at most 255 bytes (as PLAIN's authcid).
    static func user(_ bytes: ArraySlice<UInt8>) -> Result<String, BearerTokenError> {
        guard !bytes.isEmpty else { return .failure(BearerTokenError("empty user name")) }
        guard bytes.count <= PlainMechanism.maxFieldLength else {
            return .failure(BearerTokenError("user name longer than \(PlainMechanism.maxFieldLength) bytes"))
        }
        guard let user = String(validating: bytes, as: UTF8.self) else {
            return .failure(BearerTokenError("user name is not UTF-8"))
        }
        return .success(user)
    }

    private static func lowercased(_ b: UInt8) -> UInt8 {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(b) ? b | 0x20 : b
    }
}
