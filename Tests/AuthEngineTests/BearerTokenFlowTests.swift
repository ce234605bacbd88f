import AuthConfig
import AuthCore
import AuthEngine
import AuthProtocol
import Passdb
import PassdbTestSupport
import SASL
import Testing

/// A token passdb with fixed verdicts.
final class FixedTokenPassdb: PasswordDatabase {
    let name = "oauth2:test"
    let driver = "oauth2"
    let capabilities = PassdbCapabilities(verifyPlain: false, verifyToken: true)
    let verdicts: [String: TokenResult]

    init(_ verdicts: [String: TokenResult]) { self.verdicts = verdicts }

    func verifyToken(_ request: PassdbRequest, token: Secret) async -> TokenResult {
        return verdicts[String(decoding: token.bytes, as: UTF8.self)] ?? .invalid("bad signature")
    }

    func verifyPlain(_ request: PassdbRequest, password: Secret) async -> PassdbResult {
        Issue.record("a password reached the token passdb")
        return .userUnknown
    }

    func lookupCredentials(_ request: PassdbRequest, scheme: CredentialScheme) async -> CredentialLookup { .userUnknown }
}

/// OAUTHBEARER and XOAUTH2 through the engine: advertised only with a token passdb, the token checked
/// only there, the token's user compared with the login name, and the error challenge, dummy response
/// and FAIL of RFC 7628.
@Suite struct BearerTokenFlowTests {
    static let mechanisms = ["PLAIN", "OAUTHBEARER", "XOAUTH2"]
    static let tokens = FixedTokenPassdb([
        "good-alice": .valid(subject: "alice@Example.ORG"),
        "good-bob": .valid(subject: "bob@example.org"),
        "idp-down": .internalFailure("JWKS URL unreachable"),
    ])

    static func xoauth2(_ user: String, _ token: String) -> String {
        DovecotBase64.encode(Array("user=\(user)\u{1}auth=Bearer \(token)\u{1}\u{1}".utf8))
    }

    static func oauthBearer(_ user: String, _ token: String) -> String {
        DovecotBase64.encode(Array("n,a=\(user),\u{1}host=mx\u{1}port=587\u{1}auth=Bearer \(token)\u{1}\u{1}".utf8))
    }

    @Test func advertisedOnlyWithATokenPassdb() throws {
        let passwordsOnly = try makeService({ $0.mechanisms = Self.mechanisms })
        #expect(passwordsOnly.advertised.map(\.name) == ["PLAIN"])
        #expect(passwordsOnly.unservable == ["OAUTHBEARER", "XOAUTH2"])
        let tokensOnly = try makeService({ $0.mechanisms = Self.mechanisms }, passdbs: [FixedTokenPassdb([:])])
        #expect(tokensOnly.advertised.map(\.name) == ["OAUTHBEARER", "XOAUTH2"])
        #expect(tokensOnly.unservable == ["PLAIN"])
    }

    @Test func goodTokensForTheLoginNameSucceed() async throws {
        let io = FakeIO()
        let s = makeSession(try makeService({ $0.mechanisms = Self.mechanisms }, passdbs: [Self.tokens]), io: io)
        try s.handshake()
        try s.feed("AUTH\t1\tXOAUTH2\tservice=smtp\tsecured\tresp=\(Self.xoauth2("alice@example.org", "good-alice"))")
        try s.feed("AUTH\t2\tOAUTHBEARER\tservice=smtp\tsecured\tresp=\(Self.oauthBearer("bob", "good-bob"))")
        await io.drain()
        // The realm of the token's user is lower-cased like a login name; "bob" gets the default realm.
        #expect(io.take().sorted() == ["OK\t1\tuser=alice@example.org", "OK\t2\tuser=bob@example.org"])
    }

    @Test func refusedTokenGetsTheErrorChallengeThenFails() async throws {
        let io = FakeIO()
        let s = makeSession(try makeService({ $0.mechanisms = Self.mechanisms }, passdbs: [Self.tokens]), io: io)
        try s.handshake()
        try s.feed("AUTH\t1\tOAUTHBEARER\tservice=smtp\tsecured\tresp=\(Self.oauthBearer("alice@example.org", "forged"))")
        await io.drain()
        let json = DovecotBase64.encode(Array(OAuthBearerMechanism.errorChallenge.utf8))
        #expect(io.take() == ["CONT\t1\t\(json)"])
        try s.feed("CONT\t1\tAQ==")  // the client's dummy response, 0x01
        await io.drain()
        #expect(io.take() == [])  // the FAIL waits out the failure delay
        await io.advance(by: 2.6)
        #expect(io.take() == ["FAIL\t1\tuser=alice@example.org"])
    }

    @Test func tokenOfAnotherUserFails() async throws {
        let io = FakeIO()
        let s = makeSession(try makeService({ $0.mechanisms = Self.mechanisms }, passdbs: [Self.tokens]), io: io)
        try s.handshake()
        try s.feed("AUTH\t1\tXOAUTH2\tservice=smtp\tsecured\tresp=\(Self.xoauth2("alice@example.org", "good-bob"))")
        await io.drain()
        let json = DovecotBase64.encode(Array(XOAuth2Mechanism.errorChallenge.utf8))
        #expect(io.take() == ["CONT\t1\t\(json)"])
        try s.feed("CONT\t1\t")
        await io.advance(by: 2.6)
        #expect(io.take() == ["FAIL\t1\tuser=alice@example.org"])
    }

    @Test func unreachableIssuerIsATemporaryFailure() async throws {
        let io = FakeIO()
        let s = makeSession(try makeService({ $0.mechanisms = Self.mechanisms }, passdbs: [Self.tokens]), io: io)
        try s.handshake()
        try s.feed("AUTH\t1\tXOAUTH2\tservice=smtp\tsecured\tresp=\(Self.xoauth2("alice@example.org", "idp-down"))")
        await io.drain()
        #expect(io.take() == ["FAIL\t1\tuser=alice@example.org\tcode=temp_fail\ttemp"])
    }

    @Test func aTokenIsNeverComparedAsAPassword() async throws {
        // The password passdb would accept "forged" as alice's password; the token passdb refuses it.
        let passwords = InstantPassdb("pw", users: ["alice@example.org": "forged"])
        let io = FakeIO()
        let s = makeSession(try makeService({ $0.mechanisms = Self.mechanisms }, passdbs: [passwords, Self.tokens]), io: io)
        try s.handshake()
        try s.feed("AUTH\t1\tXOAUTH2\tservice=smtp\tsecured\tresp=\(Self.xoauth2("alice@example.org", "forged"))")
        await io.drain()
        #expect(io.take().first?.hasPrefix("CONT\t1\t") == true)
        #expect(passwords.calls.load(ordering: .relaxed) == 0)
        // And a token is not a password: PLAIN with a valid token fails against the password passdb.
        let plain = DovecotBase64.encode(Array("\u{0}alice@example.org\u{0}good-alice".utf8))
        try s.feed("AUTH\t2\tPLAIN\tservice=smtp\tsecured\tresp=\(plain)")
        await io.drain()
        await io.advance(by: 2.6)
        #expect(io.take().contains("FAIL\t2\tuser=alice@example.org"))
    }

    @Test func cleartextRulesApply() async throws {
        // Like PLAIN, the token mechanisms are `plaintext`: refused without TLS when TLS is required.
        let io = FakeIO()
        let service = try makeService({ $0.mechanisms = Self.mechanisms; $0.cleartextRequiresTLS = true }, passdbs: [Self.tokens])
        let s = makeSession(service, io: io)
        try s.handshake()
        try s.feed("AUTH\t1\tXOAUTH2\tservice=smtp\tresp=\(Self.xoauth2("alice@example.org", "good-alice"))")
        await io.drain()
        #expect(io.take().first?.hasPrefix("FAIL\t1") == true)
    }
}
