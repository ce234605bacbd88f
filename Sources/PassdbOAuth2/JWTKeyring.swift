import FoundationEssentials
import JWTKit

/// The public keys of one JWKS document, by key id, ready to verify signatures: what `jwks_file` and
/// `jwks_url` provide. Keys for encryption (`use: enc`), key types jwt-kit cannot verify with (`oct`:
/// HMAC secrets never belong in a JWKS) and private key material are refused.
struct JWTKeyring: Sendable {
    /// What the validator checks a token's header against before any signature is computed.
    struct KeyInfo: Sendable, Equatable {
        /// `RSA` or `EC`.
        var keyType: String
        /// The key's own `alg`, if it names one: the token must use exactly that.
        var algorithm: String?
    }

    /// The largest JWKS document read (file or URL).
    static let maxDocumentSize = 1 << 20
    /// The most keys one document may hold.
    static let maxKeys = 100
    /// The key id under which a document's single key without `kid` is kept (tokens without `kid`).
    static let soleKeyID = "\u{0}sole"

    let collection: JWTKeyCollection
    let keys: [String: KeyInfo]

    /// The key a token's `kid` selects: a known id, or — only without `kid` — the document's one key.
    func key(for kid: String?) -> (id: String, info: KeyInfo)? {
        if let kid { return keys[kid].map { (kid, $0) } }
        guard keys.count == 1, let only = keys.first else { return nil }
        return (only.key, only.value)
    }

    /// Checks a JWKS document without building keys (used when the passdb is opened, so `--check` reports
    /// a broken file); the key ids it holds.
    static func check(_ bytes: [UInt8]) throws(TokenRefusal) -> [String] {
        try parse(bytes).map { $0.id }
    }

    /// Builds the keyring of a JWKS document.
    static func load(_ bytes: [UInt8]) async throws(TokenRefusal) -> JWTKeyring {
        let entries = try parse(bytes)
        let collection = JWTKeyCollection()
        var keys: [String: KeyInfo] = [:]
        for entry in entries {
            var jwk = entry.jwk
            jwk.keyIdentifier = JWKIdentifier(string: entry.id)
            do {
                try await collection.add(jwk: jwk, isDefault: entries.count == 1)
            } catch {
                throw TokenRefusal("JWKS key \(sanitizedID(entry.id)) cannot be used: \(error)")
            }
            keys[entry.id] = entry.info
        }
        if entries.count != 1 { await collection.clearDefault() }
        return JWTKeyring(collection: collection, keys: keys)
    }

    private struct Entry {
        var id: String
        var info: KeyInfo
        var jwk: JWK
    }

    private static func parse(_ bytes: [UInt8]) throws(TokenRefusal) -> [Entry] {
        guard bytes.count <= maxDocumentSize else { throw TokenRefusal("JWKS larger than \(maxDocumentSize) bytes") }
        let document: Document
        do {
            document = try JSONDecoder().decode(Document.self, from: Data(bytes))
        } catch {
            throw TokenRefusal("not a JWKS document ({\"keys\": [...]}): \(String(describing: error).prefix(200))")
        }
        guard document.keys.count <= maxKeys else { throw TokenRefusal("JWKS has more than \(maxKeys) keys") }
        var entries: [Entry] = []
        for (index, key) in document.keys.enumerated() {
            let label = key.kid.map(sanitizedID) ?? "#\(index + 1)"
            if key.use != nil && key.use != "sig" { continue }  // encryption keys are not for signatures
            guard key.kty == "RSA" || key.kty == "EC" else {
                throw TokenRefusal("JWKS key \(label): key type \(key.kty.map(sanitizedID) ?? "missing") is not RSA or EC")
            }
            guard !key.hasPrivateMaterial else {
                throw TokenRefusal("JWKS key \(label) holds private key material (d, p, q); publish only the public key")
            }
            if key.kty == "RSA", let n = key.n, base64URLDecode(n).map({ $0.drop(while: { $0 == 0 }).count * 8 }) ?? 0 < 2048 {
                throw TokenRefusal("JWKS key \(label): RSA keys shorter than 2048 bits are refused")
            }
            guard let jwk = key.jwk else { throw TokenRefusal("JWKS key \(label) is not a valid JWK") }
            let id = key.kid ?? soleKeyID
            guard !entries.contains(where: { $0.id == id }) else {
                throw TokenRefusal(key.kid == nil ? "JWKS has several keys without kid" : "JWKS key id \(label) appears twice")
            }
            entries.append(Entry(id: id, info: KeyInfo(keyType: key.kty!, algorithm: key.alg), jwk: jwk))
        }
        guard !entries.isEmpty else { throw TokenRefusal("JWKS holds no signature key") }
        if entries.count > 1, entries.contains(where: { $0.id == soleKeyID }) {
            throw TokenRefusal("JWKS with several keys: each needs a kid")
        }
        return entries
    }

    private struct Document: Decodable {
        var keys: [Key]
    }

    /// One JWK as jwt-kit reads it, plus the members checked here.
    private struct Key: Decodable {
        var kty: String?
        var kid: String?
        var alg: String?
        var use: String?
        var n: String?
        var hasPrivateMaterial: Bool
        var jwk: JWK?

        enum CodingKeys: String, CodingKey { case kty, kid, alg, use, n, d, p, q }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            kty = try c.decodeIfPresent(String.self, forKey: .kty)
            kid = try c.decodeIfPresent(String.self, forKey: .kid)
            alg = try c.decodeIfPresent(String.self, forKey: .alg)
            use = try c.decodeIfPresent(String.self, forKey: .use)
            n = try c.decodeIfPresent(String.self, forKey: .n)
            hasPrivateMaterial = c.contains(.d) || c.contains(.p) || c.contains(.q)
            jwk = try? JWK(from: decoder)
        }
    }

    static func sanitizedID(_ id: String) -> String {
        String(id.unicodeScalars.prefix(64).map { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? Character($0) : "?" })
    }
}

/// RFC 4648 §5 base64url, padding optional.
func base64URLDecode(_ text: some StringProtocol) -> [UInt8]? {
    var s = String(String.UnicodeScalarView(text.unicodeScalars.map { $0 == "-" ? "+" : $0 == "_" ? "/" : $0 }))
    guard !s.contains("=") else { return nil }
    switch s.utf8.count % 4 {
    case 2: s += "=="
    case 3: s += "="
    case 1: return nil
    default: break
    }
    return Data(base64Encoded: s).map { [UInt8]($0) }
}
