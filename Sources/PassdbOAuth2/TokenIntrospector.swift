import Crypto
import FoundationEssentials

/// RFC 7662 token introspection: the token is POSTed to `introspection_url` with the client's
/// credentials; `"active": true` plus the claim checks (`ClaimsPolicy`) make it valid. Answers are cached
/// by the SHA-256 of the token (the token itself is never kept), each until the token's `exp`, at most
/// `capacity` of them (the soonest to expire go first when full). An endpoint that cannot be reached or
/// answers anything but 200 with JSON is a temporary failure.
actor TokenIntrospector {
    let url: String
    private let clientID: String
    private let clientSecret: String
    private let policy: ClaimsPolicy
    private let fetcher: any HTTPFetcher
    let capacity: Int
    private var cache: [TokenHash: (subject: String, expires: Double)] = [:]

    typealias TokenHash = [UInt8]

    init(url: String, clientID: String, clientSecret: String, policy: ClaimsPolicy, fetcher: any HTTPFetcher, capacity: Int) {
        self.url = url
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.policy = policy
        self.fetcher = fetcher
        self.capacity = capacity
    }

    var cachedCount: Int { cache.count }

    /// The verdict on `token` at Unix time `now`.
    func check(_ token: String, now: Double) async -> Result<String, IntrospectionFailure> {
        let key = Array(SHA256.hash(data: Array(token.utf8)))
        if let hit = cache[key] {
            if now < hit.expires { return .success(hit.subject) }
            cache[key] = nil
        }
        let reply: HTTPReply
        do {
            reply = try await fetcher.postForm(
                url, form: [("token", token), ("token_type_hint", "access_token")], basicAuth: (user: clientID, password: clientSecret))
        } catch {
            return .failure(.unavailable("introspection endpoint \(url) unreachable: \(error)"))
        }
        guard reply.status == 200 else {
            return .failure(.unavailable("introspection endpoint \(url) answered HTTP \(reply.status)"))
        }
        guard let claims = try? JSONDecoder().decode(TokenClaims.self, from: Data(reply.body)) else {
            return .failure(.unavailable("introspection endpoint \(url) answered with something other than a JSON object"))
        }
        guard claims["active"] == .bool(true) else { return .failure(.refused(TokenRefusal("token not active"))) }
        switch policy.check(claims, now: now) {
        case .failure(let refusal): return .failure(.refused(refusal))
        case .success(let (subject, expires)):
            if let expires, capacity > 0 { remember(key, subject: subject, expires: expires, now: now) }
            return .success(subject)
        }
    }

    private func remember(_ key: TokenHash, subject: String, expires: Double, now: Double) {
        if cache.count >= capacity {
            cache = cache.filter { $0.value.expires > now }
            while cache.count >= capacity, let soonest = cache.min(by: { $0.value.expires < $1.value.expires }) {
                cache[soonest.key] = nil
            }
        }
        cache[key] = (subject, expires)
    }
}

/// Why introspection gave no subject.
enum IntrospectionFailure: Error {
    /// The token is inactive or its claims are wrong: an authentication failure.
    case refused(TokenRefusal)
    /// The endpoint could not answer: a temporary failure.
    case unavailable(String)
}
