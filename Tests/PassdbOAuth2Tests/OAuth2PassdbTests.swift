import AuthConfig
import AuthCore
import FoundationEssentials
import Logging
import Passdb
@testable import PassdbOAuth2
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// JWT validation with keys the test generates: good RS256 and ES256 tokens, and each way a token must
/// be refused (expired, not yet valid, wrong issuer or audience, `alg: none`, HMAC with the public key,
/// tampered payload, unknown `kid`), plus a JWKS file rotation.
@Suite struct OAuth2PassdbTests {
    typealias T = TokenFactory

    /// A temporary JWKS file and a passdb reading it (checked on every request: interval 0).
    final class Fixture {
        let dir: String
        let jwksPath: String
        let passdb: OAuth2Passdb

        init(keys: [TokenFactory.Key] = [T.rsa1, T.ec1], settings: (inout OAuth2Settings) -> Void = { _ in }) throws {
            var template = Array("/tmp/oauth2-test-XXXXXX".utf8CString)
            dir = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)!) }
            jwksPath = dir + "/jwks.json"
            try Self.write(T.jwks(keys), to: jwksPath)
            var s = OAuth2Settings(
                source: .jwksFile(path: jwksPath), issuer: T.issuer, audience: T.audience, usernameClaim: "email",
                clockSkew: 60, algorithms: ["RS256", "ES256"], jwksCacheTTL: 300, timeout: 5, introspectionCacheSize: 10)
            settings(&s)
            passdb = try OAuth2Passdb(
                name: "oauth2:test", settings: s, executor: InlineExecutor(), logger: Logger(label: "test"),
                jwksCheckInterval: .zero)
        }

        static func write(_ text: String, to path: String) throws {
            // Written to a new file and renamed into place, as an admin's tools do.
            let tmp = path + ".new"
            guard let f = fopen(tmp, "w") else { throw TokenRefusal("cannot write \(tmp)") }
            fputs(text, f)
            fclose(f)
            rename(tmp, path)
        }

        func verify(_ token: String) async -> TokenResult {
            await passdb.verifyToken(PassdbRequest(user: "alice@example.org", mechanism: "XOAUTH2", service: "smtp"), token: Secret(token))
        }

        deinit {
            unlink(jwksPath)
            rmdir(dir)
        }
    }

    @Test func goodRS256AndES256TokensNameTheUser() async throws {
        let f = try Fixture()
        #expect(await f.verify(T.token(T.rsa1)) == .valid(subject: "alice@example.org"))
        #expect(await f.verify(T.token(T.ec1, claims: T.claims(user: "Bob@Example.org"))) == .valid(subject: "Bob@Example.org"))
    }

    @Test func expiryAndNotBeforeHonourTheClockSkew() async throws {
        let f = try Fixture()
        let now = Int(T.now)
        #expect(await f.verify(T.token(T.rsa1, claims: T.claims(["exp": "\(now - 120)"]))) == .invalid("token expired"))
        #expect(await f.verify(T.token(T.rsa1, claims: T.claims(["exp": "\(now - 30)"]))) == .valid(subject: "alice@example.org"))
        #expect(await f.verify(T.token(T.rsa1, claims: T.claims(["nbf": "\(now + 600)"]))) == .invalid("token not yet valid (nbf)"))
        #expect(await f.verify(T.token(T.rsa1, claims: T.claims(["exp": nil]))) == .invalid("token has no exp claim"))
    }

    @Test func wrongIssuerOrAudienceIsRefused() async throws {
        let f = try Fixture()
        #expect(await f.verify(T.token(T.rsa1, claims: T.claims(["iss": #""https://evil.example""#]))) == .invalid("wrong issuer"))
        #expect(await f.verify(T.token(T.rsa1, claims: T.claims(["aud": #""other-app""#]))) == .invalid("wrong audience"))
        // An audience list is fine when it holds ours.
        let listed = T.claims(["aud": #"["other-app","\#(T.audience)"]"#])
        #expect(await f.verify(T.token(T.ec1, claims: listed)) == .valid(subject: "alice@example.org"))
        #expect(await f.verify(T.token(T.rsa1, claims: T.claims(["email": nil]))) == .invalid("no email claim (username_claim)"))
    }

    @Test func algNoneAndHMACWithThePublicKeyAreRefused() async throws {
        let f = try Fixture()
        #expect(await f.verify(T.unsignedToken(kid: "rsa1")) == .invalid("algorithm none refused"))
        guard case .rsa(let key, _) = T.rsa1 else { return }
        let publicBytes = Array(key.publicKey.pemRepresentation.utf8)
        #expect(await f.verify(T.hmacToken(secret: publicBytes, kid: "rsa1")) == .invalid("algorithm HS256 refused"))
        // An allowed algorithm of the wrong family for the key is refused before any signature check.
        #expect(await f.verify(T.token(T.rsa1, alg: "ES256")) == .invalid("algorithm ES256 does not fit the RSA key"))
        // RS384 is not in `algorithms`.
        #expect(await f.verify(T.token(T.rsa1, alg: "RS384")) == .invalid("algorithm RS384 not in algorithms"))
    }

    @Test func tamperedPayloadFailsTheSignature() async throws {
        let f = try Fixture()
        let good = T.token(T.rsa1).split(separator: ".")
        let forged = T.b64url(Array(T.claims(user: "mallory@example.org").utf8))
        #expect(await f.verify("\(good[0]).\(forged).\(good[2])") == .invalid("bad signature"))
        let goodEC = T.token(T.ec1).split(separator: ".")
        #expect(await f.verify("\(goodEC[0]).\(forged).\(goodEC[2])") == .invalid("bad signature"))
    }

    @Test func unknownKeyIDIsRefused() async throws {
        let f = try Fixture()
        // Signed by a key the JWKS does not hold, under an id it does not hold: no fallback to another key.
        #expect(await f.verify(T.token(T.rsa2)) == .invalid("unknown key id rsa2"))
        // Even when signed by a known key, an unknown kid is not matched to it.
        #expect(await f.verify(T.token(T.rsa1, kid: "nope")) == .invalid("unknown key id nope"))
        // No kid with several keys: ambiguous, refused.
        #expect(await f.verify(T.token(T.rsa1, kid: .some(nil))) == .invalid("JWT has no kid and the JWKS has several keys"))
    }

    @Test func jwksFileRotation() async throws {
        let f = try Fixture(keys: [T.rsa1])
        let old = T.token(T.rsa1)
        let new = T.token(T.rsa2)
        #expect(await f.verify(old) == .valid(subject: "alice@example.org"))
        #expect(await f.verify(new) == .invalid("unknown key id rsa2"))
        try Fixture.write(T.jwks([T.rsa2]), to: f.jwksPath)
        #expect(await f.verify(new) == .valid(subject: "alice@example.org"))
        #expect(await f.verify(old) == .invalid("unknown key id rsa1"))
        // A broken rewrite keeps the keys in service (logged), it does not lock everyone out.
        try Fixture.write("{not json", to: f.jwksPath)
        #expect(await f.verify(new) == .valid(subject: "alice@example.org"))
    }

    @Test func garbageIsRefusedNotCrashed() async throws {
        let f = try Fixture()
        for junk in ["", "abc", "a.b", "a.b.c.d", "!!.!!.!!", T.b64url(Array("[]".utf8)) + ".e30.", String(repeating: "A", count: 20_000)] {
            guard case .invalid = await f.verify(junk) else { Issue.record("\(junk.prefix(20)) not refused"); continue }
        }
    }

    @Test func neverVerifiesPasswords() async throws {
        let f = try Fixture()
        #expect(f.passdb.capabilities == PassdbCapabilities(verifyPlain: false, verifyToken: true))
        let request = PassdbRequest(user: "alice@example.org", mechanism: "PLAIN", service: "smtp")
        // Even a valid token offered as a password is not accepted.
        #expect(await f.passdb.verifyPlain(request, password: Secret(T.token(T.rsa1))) == .userUnknown)
        let chain = PassdbChain([f.passdb])
        #expect(await chain.verifyPlain(request, password: Secret(T.token(T.rsa1))).0 == .userUnknown)
        #expect(chain.canServe(.verifyToken))
        #expect(!chain.canServe(.verifyPlain))
    }

    @Test func brokenJWKSFilesAreConfigurationErrors() throws {
        let f = try Fixture()
        for (text, why) in [
            (#"{"keys":[]}"#, "holds no signature key"),
            (#"{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"}]}"#, "is not RSA or EC"),
            (#"{"keys":[{"kty":"EC","kid":"e","crv":"P-256","x":"AA","y":"AA","d":"AA"}]}"#, "private key material"),
            (#"{"keys":[{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB"}]}"#, "shorter than 2048 bits"),
            ("nonsense", "not a JWKS document"),
        ] {
            try Fixture.write(text, to: f.jwksPath)
            #expect(throws: TokenRefusal.self) { try JWKSFileSource.preflight(path: f.jwksPath) }
            do {
                _ = try JWKSFileSource.preflight(path: f.jwksPath)
            } catch {
                #expect(error.reason.contains(why), "\(error.reason)")
            }
        }
    }
}
