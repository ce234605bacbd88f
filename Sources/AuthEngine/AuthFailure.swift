import AuthCore
import AuthProtocol
import Passdb
import SASL

/// Every way a request ends without OK, and the one place that says how each is answered: the FAIL
/// line's `code=` and `reason=` (docs/PROTOCOL.md, "FAIL"), the `reason=` of the log line
/// (docs/LOGGING.md, "Reasons"), and whether the failure is counted and waits out the failure delay.
/// The client's `reason=` never tells an unknown user from a wrong password.
struct AuthFailure: Error, Equatable {
    enum Kind: Equatable, Sendable {
        /// Refused before any password was checked, or a protocol slip of the auth client: answered at
        /// once and not counted. The FAIL line names the user only when `namesUser` (a cool-down for one
        /// user), and never carries the debug fields.
        case refusal(namesUser: Bool)
        /// An authentication failure: counted by the penalty table, answered after the failure delay.
        case authentication
        /// The passdb could not answer: `code=temp_fail` at once, not counted (a wait would not help).
        case temporary
    }

    var kind: Kind
    var code: FailCode?
    /// `reason=` for the client: only the fixed texts of `ClientReason`.
    var clientReason: String?
    /// `reason=` of the log line: saslgated's own words (docs/LOGGING.md keeps some of them stable).
    var logReason: String

    /// The FAIL line: `user=` is the request's name once known (for a refusal only when it names
    /// one); with `debug` the passdb that answered follows (what `saslgate auth test --explain` shows).
    func reply(id: UInt32, user: String?, passdb: String?, debug: Bool) -> ServerMessage {
        switch kind {
        case .refusal(let namesUser):
            return .fail(id: id, user: namesUser ? user : nil, code: code, reason: clientReason, fields: [])
        case .authentication, .temporary:
            var extra: [(String, String?)] = debug ? passdb.map { [("passdb", $0)] } ?? [] : []
            // Dovecot marks an internal failure with a bare `temp` besides `code=temp_fail`.
            if kind == .temporary { extra.append(("temp", nil)) }
            return .fail(id: id, user: user, code: code, reason: clientReason, fields: extra)
        }
    }

    // MARK: - Refusals

    static let invalidBase64InInitialResponse = AuthFailure(
        kind: .refusal(namesUser: false), code: .invalidBase64, clientReason: ClientReason.invalidBase64Initial,
        logReason: "invalid base64 in initial response")
    static let invalidBase64InContinuation = AuthFailure(
        kind: .refusal(namesUser: false), code: .invalidBase64, clientReason: ClientReason.invalidBase64Continued,
        logReason: "invalid base64 in continued response")
    static let unexpectedContinuation = AuthFailure(
        kind: .refusal(namesUser: false), code: nil, clientReason: ClientReason.unexpectedContinuation,
        logReason: "unexpected continuation")
    static let blockedAddress = AuthFailure(
        kind: .refusal(namesUser: false), code: nil, clientReason: ClientReason.coolDown,
        logReason: "blocked: too many failures from this IP (penalty_cooldown)")
    static let blockedUser = AuthFailure(
        kind: .refusal(namesUser: true), code: nil, clientReason: ClientReason.coolDown,
        logReason: "blocked: too many failures for this user from this IP (penalty_cooldown)")
    /// Refused before any passdb is asked: nothing about the account is revealed.
    static let cleartextWithoutTLS = AuthFailure(
        kind: .refusal(namesUser: false), code: nil, clientReason: ClientReason.cleartextNeedsTLS,
        logReason: "cleartext mechanism on a connection without TLS (cleartext_requires_tls)")

    // MARK: - Authentication failures

    static func authentication(_ logReason: String, code: FailCode? = nil, clientReason: String? = nil) -> AuthFailure {
        AuthFailure(kind: .authentication, code: code, clientReason: clientReason, logReason: logReason)
    }

    /// Client data with a NUL byte for a mechanism that does not allow one (docs/PROTOCOL.md, "Mechanisms").
    static let nulInClientData = authentication("NUL byte in client data")

    static func mechanism(_ failure: MechanismFailure) -> AuthFailure {
        switch failure {
        case .malformed(let why), .failed(_, let why): authentication(why)
        }
    }

    static func nameRefused(_ rejection: UsernamePolicy.Rejection) -> AuthFailure {
        authentication(rejection.description)
    }

    static func authorizationRefused(authzid: String) -> AuthFailure {
        authentication(
            "authorization identity \(sanitizeForLog(authzid)) differs from the authentication identity and no authz_rules entry allows it")
    }

    /// The answer of a plaintext check; nil for `.ok`.
    static func passdb(_ result: PassdbResult) -> AuthFailure? {
        switch result {
        case .ok, .okAs: nil
        case .passwordMismatch: authentication("password mismatch")
        case .userUnknown: unknownUser
        case .userDisabled(let why): disabled(why)
        case .passwordExpired:
            authentication("password expired", code: .passExpired, clientReason: ClientReason.passwordExpired)
        case .schemeNotAvailable(let why): authentication("cannot verify the stored password: \(why)")
        case .internalFailure(let why): temporary(why)
        }
    }

    /// The answer of a credential lookup for `scheme`: the credential found, or the failure. The cases a
    /// plaintext check shares are answered the same way.
    static func credentials(_ lookup: CredentialLookup, scheme: CredentialScheme) -> Result<Credential, AuthFailure> {
        switch lookup {
        case .found(let credential): .success(credential)
        case .userUnknown: .failure(unknownUser)
        case .userDisabled(let why): .failure(disabled(why))
        case .internalFailure(let why): .failure(temporary(why))
        case .schemeNotAvailable(let why):
            .failure(authentication("no \(scheme) secret stored for this user (\(why)); store one or use another mechanism"))
        }
    }

    /// The answer of a token check; nil when the token is valid and was issued to `user` (both names
    /// normalized). A token for another user is refused like a bad one.
    static func token(_ result: TokenResult, normalizedSubject: String?, user: String?) -> AuthFailure? {
        switch result {
        case .valid:
            guard let normalizedSubject else { return authentication("token subject is not an acceptable user name") }
            guard normalizedSubject == user else {
                return authentication("token was issued to another user (\(sanitizeForLog(normalizedSubject)))")
            }
            return nil
        case .invalid(let why): return authentication("invalid token: \(why)")
        case .internalFailure(let why): return temporary(why)
        }
    }

    private static let unknownUser = authentication("unknown user")

    /// The main password was right, but `require_app_passwords` refuses it for this service: answered
    /// exactly like a wrong password (the client learns nothing), the log says why.
    static let mainPasswordRefused = authentication("main password refused: require_app_passwords")

    private static func disabled(_ why: String?) -> AuthFailure {
        authentication("user disabled" + (why.map { ": \($0)" } ?? ""), code: .userDisabled)
    }

    /// The passdb could not answer; `why` is for the log only.
    private static func temporary(_ why: String) -> AuthFailure {
        AuthFailure(kind: .temporary, code: .tempFail, clientReason: nil, logReason: "internal failure: \(why)")
    }

    // MARK: - Replies that belong to no pending request

    /// A CONT for an id with no pending request: it never existed, ended, expired or was evicted
    /// (docs/PROTOCOL.md, "CONT").
    static func unknownRequest(id: UInt32) -> ServerMessage {
        .fail(id: id, user: nil, code: nil, reason: ClientReason.timedOut, fields: [])
    }

    /// An AUTH refused because the connection's pending requests are all being worked on.
    static func tooManyRequests(id: UInt32) -> ServerMessage {
        .fail(id: id, user: nil, code: .tempFail, reason: ClientReason.tooManyRequests, fields: [])
    }
}

/// The texts a FAIL line's `reason=` may carry: Dovecot 2.3's wording where it has one
/// (docs/PROTOCOL.md, "FAIL"). Postfix shows them to the SMTP client verbatim.
public enum ClientReason {
    static let timedOut = "Authentication request timed out"
    static let unexpectedContinuation = "Unexpected continuation"
    static let invalidBase64Initial = "Invalid base64 data in initial response"
    static let invalidBase64Continued = "Invalid base64 data in continued response"
    /// Public: `saslgate doctor` explains this refusal to the administrator.
    public static let cleartextNeedsTLS = "Plaintext authentication disallowed on non-secure (SSL/TLS) connections"
    static let passwordExpired = "Password expired"
    static let tooManyRequests = "Too many pending authentication requests"
    static let coolDown = "Too many failed authentication attempts; try again later"
}
