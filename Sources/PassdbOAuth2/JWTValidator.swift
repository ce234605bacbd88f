import FoundationEssentials
import JWTKit

/// Checks one JWT against a keyring: the header first (algorithm allowed, no `crit`, a known key of the
/// right type), then the signature (jwt-kit), then the claims (`ClaimsPolicy`). The order matters: no
/// signature is computed with a key the header was not allowed to pick, so `alg: none`, an HMAC
/// algorithm aimed at a public key, or an unknown `kid` never reach jwt-kit.
struct JWTValidator: Sendable {
    /// Longest token accepted: what the mechanisms let through (the protocol's line limit).
    static let maxTokenLength = 12 * 1024

    var algorithms: Set<String>
    var policy: ClaimsPolicy

    /// The token's header fields that select the key.
    struct Header: Decodable, Sendable {
        var alg: String?
        var kid: String?
        var crit: ClaimValue?
    }

    /// Reads the header of a compact JWS (`header.payload.signature`) without trusting anything in it.
    static func header(of token: String) -> Result<Header, TokenRefusal> {
        guard token.utf8.count <= maxTokenLength else { return .failure(.init("token longer than \(maxTokenLength) bytes")) }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty else {
            return .failure(.init("not a signed JWT (header.payload.signature)"))
        }
        guard let bytes = base64URLDecode(parts[0]), let header = try? JSONDecoder().decode(Header.self, from: Data(bytes))
        else { return .failure(.init("JWT header is not base64url JSON")) }
        return .success(header)
    }

    /// The subject and expiry of a valid token, or why it is refused.
    func validate(_ token: String, header: Header, keyring: JWTKeyring, now: Double) async
        -> Result<(subject: String, expires: Double?), TokenRefusal>
    {
        guard let alg = header.alg else { return .failure(.init("JWT header has no alg")) }
        if OAuth2Settings.refusedAlgorithms.contains(alg) || alg.lowercased() == "none" || alg.hasPrefix("HS") {
            return .failure(.init("algorithm \(JWTKeyring.sanitizedID(alg)) refused"))
        }
        guard algorithms.contains(alg) else { return .failure(.init("algorithm \(JWTKeyring.sanitizedID(alg)) not in algorithms")) }
        guard header.crit == nil else { return .failure(.init("JWT header has crit extensions")) }
        guard let key = keyring.key(for: header.kid)?.info else {
            return .failure(.init(header.kid == nil ? "JWT has no kid and the JWKS has several keys" : "unknown key id \(JWTKeyring.sanitizedID(header.kid!))"))
        }
        let family = alg.hasPrefix("ES") ? "EC" : "RSA"
        guard key.keyType == family else { return .failure(.init("algorithm \(alg) does not fit the \(key.keyType) key")) }
        if let keyAlg = key.algorithm, keyAlg != alg {
            return .failure(.init("algorithm \(alg) differs from the key's alg \(JWTKeyring.sanitizedID(keyAlg))"))
        }
        let claims: TokenClaims
        do {
            claims = try await keyring.collection.verify(token, as: TokenClaims.self)
        } catch let error as JWTError where error.errorType == .signatureVerificationFailed {
            return .failure(.init("bad signature"))
        } catch {
            return .failure(.init("signature not verified (\(Self.errorKind(error)))"))
        }
        return policy.check(claims, now: now)
    }

    /// A short description of a jwt-kit error that cannot carry token data.
    static func errorKind(_ error: any Error) -> String {
        if let jwt = error as? JWTError { return String(describing: jwt.errorType) }
        return String(describing: type(of: error))
    }
}
