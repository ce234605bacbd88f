import Logging

/// The keys served at `jwks_url`, fetched with the passdb's HTTP client and kept for `ttl`. A token with
/// a key id the cached document does not hold triggers one early fetch (the issuer rotated its keys), at
/// most every `refetchInterval`. Concurrent requests share one fetch. When a fetch fails the keys fetched
/// before stay in use for at most `maxStale`; without any, the answer is a temporary failure.
actor JWKSURLSource {
    let url: String
    let ttl: Duration
    let refetchInterval: Duration
    let maxStale: Duration
    private let fetcher: any HTTPFetcher
    private let logger: Logger
    private var keyring: JWTKeyring?
    private var fetchedAt: ContinuousClock.Instant?
    private var lastAttempt: ContinuousClock.Instant?
    private var inFlight: Task<Result<JWTKeyring, KeysUnavailable>, Never>?

    init(url: String, ttl: Duration, fetcher: any HTTPFetcher, logger: Logger, refetchInterval: Duration = .seconds(10)) {
        self.url = url
        self.ttl = ttl
        self.refetchInterval = refetchInterval
        self.maxStale = ttl * 12
        self.fetcher = fetcher
        self.logger = logger
    }

    /// The keys to check a token whose header names `kid`, or why there are none (a temporary failure).
    func current(kid: String?) async -> Result<JWTKeyring, KeysUnavailable> {
        let now = ContinuousClock.now
        if let keyring, let fetchedAt {
            let fresh = now - fetchedAt < ttl
            let knowsKey = keyring.key(for: kid) != nil
            let mayRefetch = lastAttempt.map { now - $0 >= refetchInterval } ?? true
            if fresh && (knowsKey || !mayRefetch) { return .success(keyring) }
        } else if let lastAttempt, now - lastAttempt < refetchInterval, inFlight == nil {
            return .failure(KeysUnavailable("JWKS from \(url) unavailable (last fetch failed less than \(refetchInterval) ago)"))
        }
        return await fetch()
    }

    /// Fetches now, or joins the fetch under way.
    func fetch() async -> Result<JWTKeyring, KeysUnavailable> {
        if let inFlight { return await inFlight.value }
        lastAttempt = ContinuousClock.now
        let url = self.url, fetcher = self.fetcher
        let task = Task { () -> Result<JWTKeyring, KeysUnavailable> in
            do {
                let reply = try await fetcher.get(url)
                guard reply.status == 200 else { return .failure(KeysUnavailable("JWKS URL \(url) answered HTTP \(reply.status)")) }
                return .success(try await JWTKeyring.load(reply.body))
            } catch let refusal as TokenRefusal {
                return .failure(KeysUnavailable("JWKS from \(url): \(refusal.reason)"))
            } catch {
                return .failure(KeysUnavailable("JWKS URL \(url) unreachable: \(error)"))
            }
        }
        inFlight = task
        let result = await task.value
        inFlight = nil
        switch result {
        case .success(let fresh):
            keyring = fresh
            fetchedAt = ContinuousClock.now
            return result
        case .failure(let why):
            if let keyring, let fetchedAt, ContinuousClock.now - fetchedAt < maxStale {
                logger.warning("oauth2: \(why.reason); using the keys fetched before")
                return .success(keyring)
            }
            logger.error("oauth2: \(why.reason)")
            return result
        }
    }
}
