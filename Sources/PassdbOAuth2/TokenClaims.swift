import JWTKit

/// One JSON value of a token's payload or of an introspection answer.
enum ClaimValue: Sendable, Equatable, Decodable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case array([ClaimValue])
    case object
    case null

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let n = try? c.decode(Double.self) {
            self = .number(n)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([ClaimValue].self) {
            self = .array(a)
        } else {
            self = .object  // nested objects are never needed: kept as a marker only
        }
    }

    var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    var number: Double? {
        if case .number(let n) = self { return n }
        return nil
    }
}

/// A key of any name, for decoding objects whose keys are not known in advance.
struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// The claims of a token (or the members of an introspection answer), by name. Top-level members only.
struct TokenClaims: JWTPayload, Equatable {
    var values: [String: ClaimValue]

    init(_ values: [String: ClaimValue]) { self.values = values }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: AnyKey.self)
        var values: [String: ClaimValue] = [:]
        for key in c.allKeys { values[key.stringValue] = try c.decode(ClaimValue.self, forKey: key) }
        self.values = values
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: AnyKey.self)
        for (k, v) in values {
            switch v {
            case .string(let s): try c.encode(s, forKey: AnyKey(stringValue: k))
            case .number(let n): try c.encode(n, forKey: AnyKey(stringValue: k))
            case .bool(let b): try c.encode(b, forKey: AnyKey(stringValue: k))
            default: break
            }
        }
    }

    /// Claims are checked by `ClaimsPolicy` with the passdb's clock and skew, not by jwt-kit.
    func verify(using algorithm: some JWTAlgorithm) async throws {}

    subscript(name: String) -> ClaimValue? { values[name] }
}

/// The checks every accepted token passes, whatever checked its signature (docs/OAUTH2.md, "What is checked").
struct ClaimsPolicy: Sendable {
    var issuer: String?
    var audience: String?
    var usernameClaim: String
    var clockSkew: Int
    /// Tokens must carry `exp` (JWTs); introspection answers may leave it out.
    var requireExpiry: Bool

    /// The subject (the username claim) of acceptable claims, or why they are not acceptable.
    func check(_ claims: TokenClaims, now: Double) -> Result<(subject: String, expires: Double?), TokenRefusal> {
        let skew = Double(clockSkew)
        let exp = claims["exp"]?.number
        if let exp {
            guard now < exp + skew else { return .failure(.init("token expired")) }
        } else if requireExpiry {
            return .failure(.init("token has no exp claim"))
        }
        if let nbf = claims["nbf"]?.number, now + skew < nbf { return .failure(.init("token not yet valid (nbf)")) }
        if let iat = claims["iat"]?.number, now + skew < iat { return .failure(.init("token issued in the future (iat)")) }
        if let issuer {
            guard claims["iss"]?.string == issuer else { return .failure(.init("wrong issuer")) }
        }
        if let audience {
            let audiences: [String] =
                switch claims["aud"] {
                case .string(let s): [s]
                case .array(let a): a.compactMap(\.string)
                default: []
                }
            guard audiences.contains(audience) else { return .failure(.init("wrong audience")) }
        }
        guard let subject = claims[usernameClaim]?.string, !subject.isEmpty else {
            return .failure(.init("no \(usernameClaim) claim (username_claim)"))
        }
        return .success((subject, exp))
    }
}

/// Why no keys are at hand (a JWKS file never loaded, a JWKS URL unreachable): a temporary failure.
struct KeysUnavailable: Error, Equatable, Sendable {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}

/// Why a token was refused; for the log, never containing the token.
struct TokenRefusal: Error, Equatable, Sendable {
    var reason: String
    init(_ reason: String) { self.reason = reason }
}
