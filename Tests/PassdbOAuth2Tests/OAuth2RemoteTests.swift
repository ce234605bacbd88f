import AuthConfig
import AuthCore
import Logging
import Passdb
@testable import PassdbOAuth2
import Synchronization
import Testing

/// An HTTP peer that answers from a script and counts the requests; it never sees the network.
final class FakeHTTP: HTTPFetcher, @unchecked Sendable {
    private let lock = Mutex<(replies: [Result<HTTPReply, TokenRefusal>], gets: Int, posts: [[(String, String)]])>(([], 0, []))

    func answer(_ replies: Result<HTTPReply, TokenRefusal>...) { lock.withLock { $0.replies = replies } }
    var gets: Int { lock.withLock { $0.gets } }
    var posts: Int { lock.withLock { $0.posts.count } }

    private func next() throws -> HTTPReply {
        try lock.withLock { s in
            guard !s.replies.isEmpty else { throw TokenRefusal("connection refused") }
            let r = s.replies.count > 1 ? s.replies.removeFirst() : s.replies[0]
            return try r.get()
        }
    }

    func get(_ url: String) async throws -> HTTPReply {
        lock.withLock { $0.gets += 1 }
        return try next()
    }

    func postForm(_ url: String, form: [(String, String)], basicAuth: (user: String, password: String)?) async throws -> HTTPReply {
        lock.withLock { $0.posts.append(form) }
        #expect(basicAuth?.user == "saslgate")
        return try next()
    }

    func shutdown() async {}
}

@Suite struct OAuth2RemoteTests {
    typealias T = TokenFactory

    /// Long enough that a loaded machine (the whole suite runs in parallel) never stretches the gap
    /// between two steps of a test past it.
    static let refetchInterval = Duration.seconds(4)

    static func passdb(_ source: OAuth2Settings.Source, http: FakeHTTP) throws -> OAuth2Passdb {
        let s = OAuth2Settings(
            source: source, issuer: T.issuer, audience: T.audience, usernameClaim: "email", clockSkew: 60,
            algorithms: ["RS256", "ES256"], jwksCacheTTL: 300, timeout: 2, introspectionCacheSize: 2)
        return try OAuth2Passdb(
            name: "oauth2:test", settings: s, executor: InlineExecutor(), logger: Logger(label: "t"), fetcher: http,
            jwksRefetchInterval: refetchInterval)
    }

    static func verify(_ db: OAuth2Passdb, _ token: String) async -> TokenResult {
        await db.verifyToken(PassdbRequest(user: "alice@example.org", mechanism: "OAUTHBEARER", service: "smtp"), token: Secret(token))
    }

    static func ok(_ text: String) -> Result<HTTPReply, TokenRefusal> { .success(HTTPReply(status: 200, body: Array(text.utf8))) }

    @Test func jwksURLUnreachableIsATemporaryFailure() async throws {
        let http = FakeHTTP()
        let db = try Self.passdb(.jwksURL("https://idp.example.org/jwks"), http: http)
        guard case .internalFailure = await Self.verify(db, T.token(T.rsa1)) else { Issue.record("expected temp failure"); return }
        http.answer(.success(HTTPReply(status: 503, body: [])))
        let probe = await db.probe()
        #expect(probe?.reachable == false)
    }

    @Test func jwksURLIsCachedAndRefetchedForANewKey() async throws {
        let http = FakeHTTP()
        http.answer(Self.ok(T.jwks([T.rsa1])), Self.ok(T.jwks([T.rsa1, T.rsa2])))
        let db = try Self.passdb(.jwksURL("https://idp.example.org/jwks"), http: http)
        #expect(await Self.verify(db, T.token(T.rsa1)) == .valid(subject: "alice@example.org"))
        #expect(await Self.verify(db, T.token(T.rsa1)) == .valid(subject: "alice@example.org"))
        #expect(http.gets == 1)  // cached
        // The issuer rotated: an unknown kid makes one early fetch (at most one per refetch interval).
        try await Task.sleep(for: Self.refetchInterval + .milliseconds(100))
        #expect(await Self.verify(db, T.token(T.rsa2)) == .valid(subject: "alice@example.org"))
        #expect(http.gets == 2)
        // A kid unknown after that fetch does not make another one at once.
        #expect(await Self.verify(db, T.token(T.ec1)) == .invalid("unknown key id ec1"))
        #expect(http.gets == 2)
    }

    @Test func introspectionActiveInactiveDownAndCached() async throws {
        let http = FakeHTTP()
        let db = try Self.passdb(.introspection(url: "https://idp.example.org/introspect", clientID: "saslgate", clientSecret: "s3cret"), http: http)
        let exp = Int(T.now) + 600
        http.answer(Self.ok(#"{"active":true,"email":"alice@example.org","exp":\#(exp),"iss":"\#(T.issuer)","aud":"\#(T.audience)"}"#))
        #expect(await Self.verify(db, "opaque-token-1") == .valid(subject: "alice@example.org"))
        #expect(await Self.verify(db, "opaque-token-1") == .valid(subject: "alice@example.org"))
        #expect(http.posts == 1)  // the second answer came from the cache
        http.answer(Self.ok(#"{"active":false}"#))
        #expect(await Self.verify(db, "opaque-token-2") == .invalid("token not active"))
        http.answer(Self.ok(#"{"active":true,"email":"alice@example.org","exp":\#(exp),"iss":"https://evil","aud":"\#(T.audience)"}"#))
        #expect(await Self.verify(db, "opaque-token-3") == .invalid("wrong issuer"))
        http.answer(.success(HTTPReply(status: 500, body: [])))
        guard case .internalFailure = await Self.verify(db, "opaque-token-4") else { Issue.record("expected temp failure"); return }
        http.answer(.failure(TokenRefusal("connection refused")))
        guard case .internalFailure = await Self.verify(db, "opaque-token-5") else { Issue.record("expected temp failure"); return }
    }

    @Test func introspectionCacheIsBoundedAndExpires() async throws {
        let http = FakeHTTP()
        let introspector = TokenIntrospector(
            url: "https://x/introspect", clientID: "saslgate", clientSecret: "s",
            policy: ClaimsPolicy(issuer: nil, audience: nil, usernameClaim: "username", clockSkew: 0, requireExpiry: false),
            fetcher: http, capacity: 2)
        http.answer(Self.ok(#"{"active":true,"username":"u","exp":1000}"#))
        for token in ["a", "b", "c"] { _ = await introspector.check(token, now: 500) }
        #expect(await introspector.cachedCount == 2)
        #expect(http.posts == 3)
        // Past exp the cached answer is not used: the endpoint is asked again (and says the token expired).
        guard case .failure(.refused(let refusal)) = await introspector.check("c", now: 2000) else {
            Issue.record("expected a refusal"); return
        }
        #expect(refusal.reason == "token expired")
        #expect(http.posts == 4)
    }
}
