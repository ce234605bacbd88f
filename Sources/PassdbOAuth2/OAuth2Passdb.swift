public import AuthCore
import AuthConfig
public import Logging
public import Passdb

#if canImport(Glibc)
import Glibc
#endif

/// The oauth2 passdb (`passdbs = oauth2:/etc/saslgate/oauth2.conf`, docs/OAUTH2.md): verifies the bearer
/// tokens of OAUTHBEARER and XOAUTH2, locally as JWTs (keys from `jwks_file` or `jwks_url`) or by RFC 7662
/// introspection, and names the user the token was issued to (`username_claim`). It verifies no
/// passwords and hands out no credentials: a password is never taken for a token nor a token for a
/// password. Tokens are never logged, nor kept (the introspection cache keys on their SHA-256).
public final class OAuth2Passdb: PasswordDatabase {
    public static let driverName = "oauth2"

    public let name: String
    public var driver: String { Self.driverName }
    public var capabilities: PassdbCapabilities { PassdbCapabilities(verifyPlain: false, verifyToken: true) }
    public let settings: OAuth2Settings

    private enum Checker {
        case jwksFile(JWKSFileSource)
        case jwksURL(JWKSURLSource)
        case introspection(TokenIntrospector)
    }

    private let checker: Checker
    private let validator: JWTValidator
    private let fetcher: (any HTTPFetcher)?
    private let logger: Logger
    /// Unix time in seconds (injectable for the expiry tests).
    private let now: @Sendable () -> Double

    /// Opens the passdb of `passdbs = oauth2:<settingsPath>`; a broken settings or JWKS file throws.
    public convenience init(settingsPath: String, executor: any BlockingExecutor, logger: Logger) throws {
        let settings = try OAuth2Settings.load(path: settingsPath)
        try self.init(name: "\(Self.driverName):\(settingsPath)", settings: settings, executor: executor, logger: logger)
    }

    /// `fetcher`: the HTTP client for `jwks_url` and introspection (tests give a fake; nil: async-http-client).
    init(
        name: String, settings: OAuth2Settings, executor: any BlockingExecutor, logger: Logger,
        fetcher: (any HTTPFetcher)? = nil, jwksCheckInterval: Duration = .seconds(1), jwksRefetchInterval: Duration = .seconds(10),
        now: @escaping @Sendable () -> Double = OAuth2Passdb.unixTime
    ) throws {
        self.name = name
        self.settings = settings
        self.logger = logger
        self.now = now
        let policy = ClaimsPolicy(
            issuer: settings.issuer, audience: settings.audience, usernameClaim: settings.usernameClaim,
            clockSkew: settings.clockSkew, requireExpiry: true)
        validator = JWTValidator(algorithms: settings.algorithms, policy: policy)
        switch settings.source {
        case .jwksFile(let path):
            do {
                _ = try JWKSFileSource.preflight(path: path)
            } catch {
                throw ConfigErrors([ConfigError(file: path, line: nil, "\(error.reason) (jwks_file)")])
            }
            checker = .jwksFile(JWKSFileSource(path: path, checkInterval: jwksCheckInterval, executor: executor, logger: logger))
            self.fetcher = nil
        case .jwksURL(let url):
            let http = fetcher ?? AsyncHTTPFetcher(timeout: settings.timeout)
            checker = .jwksURL(JWKSURLSource(
                url: url, ttl: .seconds(settings.jwksCacheTTL), fetcher: http, logger: logger, refetchInterval: jwksRefetchInterval))
            self.fetcher = http
        case .introspection(let url, let clientID, let secret):
            let http = fetcher ?? AsyncHTTPFetcher(timeout: settings.timeout)
            var introspectionPolicy = policy
            introspectionPolicy.requireExpiry = false
            checker = .introspection(TokenIntrospector(
                url: url, clientID: clientID, clientSecret: secret, policy: introspectionPolicy, fetcher: http,
                capacity: settings.introspectionCacheSize))
            self.fetcher = http
        }
    }

    public static let unixTime: @Sendable () -> Double = {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    public func verifyToken(_ request: PassdbRequest, token: Secret) async -> TokenResult {
        guard token.count <= JWTValidator.maxTokenLength, let text = String(validating: token.bytes, as: UTF8.self) else {
            return .invalid("token too long or not text")
        }
        switch checker {
        case .introspection(let introspector):
            switch await introspector.check(text, now: now()) {
            case .success(let subject): return .valid(subject: subject)
            case .failure(.refused(let refusal)): return .invalid(refusal.reason)
            case .failure(.unavailable(let why)): return .internalFailure(why)
            }
        case .jwksFile, .jwksURL:
            let header: JWTValidator.Header
            switch JWTValidator.header(of: text) {
            case .failure(let refusal): return .invalid(refusal.reason)
            case .success(let h): header = h
            }
            let keys: Result<JWTKeyring, KeysUnavailable>
            switch checker {
            case .jwksFile(let source): keys = await source.current()
            case .jwksURL(let source): keys = await source.current(kid: header.kid)
            case .introspection: preconditionFailure("handled above")
            }
            let keyring: JWTKeyring
            switch keys {
            case .failure(let unavailable): return .internalFailure(unavailable.reason)
            case .success(let k): keyring = k
            }
            switch await validator.validate(text, header: header, keyring: keyring, now: now()) {
            case .success(let (subject, _)): return .valid(subject: subject)
            case .failure(let refusal): return .invalid(refusal.reason)
            }
        }
    }

    /// Never asked (this passdb does not verify passwords); refuses if it were.
    public func verifyPlain(_ request: PassdbRequest, password: Secret) async -> PassdbResult { .userUnknown }

    public func lookupCredentials(_ request: PassdbRequest, scheme: CredentialScheme) async -> CredentialLookup {
        .userUnknown
    }

    /// `--check` and `doctor`: fetches the JWKS (a URL), or asks the introspection endpoint about a token
    /// that cannot be active. Nil for a file (nothing remote).
    public func probe() async -> PassdbProbe? {
        switch checker {
        case .jwksFile: return nil
        case .jwksURL(let source):
            switch await source.fetch() {
            case .success(let keyring):
                return PassdbProbe(reachable: true, lines: ["fetched \(source.url): \(keyring.keys.count) key(s)"])
            case .failure(let why): return PassdbProbe(reachable: false, lines: [why.reason])
            }
        case .introspection(let introspector):
            switch await introspector.check("saslgate-probe-not-a-token", now: now()) {
            case .failure(.unavailable(let why)): return PassdbProbe(reachable: false, lines: [why])
            default: return PassdbProbe(reachable: true, lines: ["\(introspector.url) answered"])
            }
        }
    }

    public func explain(_ request: PassdbRequest) async -> [String] {
        var lines: [String]
        switch settings.source {
        case .jwksFile(let path): lines = ["tokens are JWTs checked with the keys of \(path)"]
        case .jwksURL(let url): lines = ["tokens are JWTs checked with the keys served at \(url)"]
        case .introspection(let url, _, _): lines = ["tokens are introspected at \(url) (RFC 7662)"]
        }
        lines.append("the user is the \(settings.usernameClaim) claim; issuer \(settings.issuer ?? "any"), audience \(settings.audience ?? "any")")
        return lines
    }

    public func close() async {
        await fetcher?.shutdown()
    }
}
