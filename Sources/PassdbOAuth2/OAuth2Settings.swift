public import AuthConfig

/// The oauth2 passdb's settings file (`passdbs = oauth2:/etc/saslgate/oauth2.conf`, example in
/// conf/oauth2.conf, documented in docs/OAUTH2.md). Tokens are checked one of three ways: as JWTs with
/// the keys of a JWKS file (`jwks_file`) or of a JWKS URL (`jwks_url`), or by RFC 7662 introspection
/// (`introspection_url`). Every problem names `file:line` and the fix.
public struct OAuth2Settings: Sendable, Equatable {
    /// Where the verdict comes from.
    public enum Source: Sendable, Equatable {
        case jwksFile(path: String)
        case jwksURL(String)
        case introspection(url: String, clientID: String, clientSecret: String)
    }

    public var source: Source
    /// Required `iss` (JWTs; checked in introspection answers when set).
    public var issuer: String?
    /// Required member of `aud` (JWTs; checked in introspection answers when set).
    public var audience: String?
    /// The claim naming the user (default `email`).
    public var usernameClaim: String
    /// Tolerance for `exp`, `nbf` and `iat`, in seconds.
    public var clockSkew: Int
    /// JWT algorithms accepted (never `none`, never HMAC).
    public var algorithms: Set<String>
    /// How long keys fetched from `jwks_url` are used before they are fetched again, in seconds.
    public var jwksCacheTTL: Int
    /// Bound of every HTTP exchange, in seconds (< 10: Postfix waits 10 s for an answer).
    public var timeout: Double
    /// Most introspection answers kept (each until its token's `exp`).
    public var introspectionCacheSize: Int

    /// Algorithms with a public key that jwt-kit verifies.
    public static let supportedAlgorithms: Set<String> = [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
    ]
    /// `none` and the HMAC family: an HMAC token checked "with a public key" would let anyone who has
    /// the public key sign tokens.
    public static let refusedAlgorithms: Set<String> = ["none", "HS256", "HS384", "HS512"]
    public static let maxTimeout = 9.0
    public static let maxCacheSize = 100_000

    public static let keys: [DriverConfigFile.Key] = [
        .init("jwks_file", default: "", "a JWKS file with the issuer's public keys, reloaded when it changes"),
        .init("jwks_url", default: "", "an http(s) URL serving the issuer's JWKS, fetched and cached"),
        .init("introspection_url", default: "", "an RFC 7662 token introspection endpoint"),
        .init("client_id", default: "", "client id for introspection (HTTP basic authentication)"),
        .init("client_secret", default: "", "client secret for introspection"),
        .init("client_secret_file", default: "", "file holding the client secret (instead of client_secret)"),
        .init("issuer", default: "", "the required iss claim"),
        .init("audience", default: "", "a value the aud claim must contain"),
        .init("username_claim", default: "email", "the claim naming the user"),
        .init("clock_skew", default: "60s", "tolerance for exp, nbf and iat (0-300s)"),
        .init("algorithms", default: "RS256 ES256", "accepted JWT algorithms (no none, no HS*)"),
        .init("jwks_cache_ttl", default: "300s", "how long keys from jwks_url are used (10s-1d)"),
        .init("introspection_cache_size", default: "10000", "introspection answers kept, each until exp (0-100000)"),
        .init("timeout", default: "5s", "bound of every HTTP request (100ms-9s)"),
    ]

    /// Reads and checks the settings file.
    public static func load(path: String) throws(ConfigErrors) -> OAuth2Settings {
        let file = try DriverConfigFile.load(path: path, keys: keys)
        return try from(file, readSecretFile: { (path: String) throws(ConfigErrors) -> String in
            switch readSmallFile(path, limit: 4096) {
            case .success(let bytes): return String(decoding: bytes, as: UTF8.self)
            case .failure(let problem): throw ConfigErrors([ConfigError(file: path, line: nil, "cannot read: \(problem)")])
            }
        })
    }

    /// Checks a parsed file (tests give the text and a fake secret-file reader).
    public static func from(
        _ file: DriverConfigFile, readSecretFile: (String) throws(ConfigErrors) -> String
    ) throws(ConfigErrors) -> OAuth2Settings {
        var errors: [ConfigError] = []
        let sources = ["jwks_file", "jwks_url", "introspection_url"].filter { !file[$0].isEmpty }
        if sources.count != 1 {
            errors.append(ConfigError(file: file.file, line: sources.count > 1 ? file.line(of: sources[1]) : nil,
                "set exactly one of jwks_file, jwks_url, introspection_url (\(sources.isEmpty ? "none" : sources.joined(separator: ", ")) set)"))
        }
        func duration(_ key: String, _ range: ClosedRange<Double>) -> Double {
            guard let seconds = parseDuration(file[key]), range.contains(seconds) else {
                errors.append(file.error(key, "expected a duration between \(range.lowerBound)s and \(range.upperBound)s (units ms, s, m, h, d)"))
                return range.lowerBound
            }
            return seconds
        }
        let skew = duration("clock_skew", 0...300)
        let ttl = duration("jwks_cache_ttl", 10...86_400)
        let timeout = duration("timeout", 0.1...maxTimeout)
        let cacheSize = Int(file["introspection_cache_size"]) ?? -1
        if !(0...maxCacheSize).contains(cacheSize) {
            errors.append(file.error("introspection_cache_size", "expected a number from 0 to \(maxCacheSize)"))
        }
        let algorithms = Set(file["algorithms"].split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init))
        for alg in algorithms.sorted() where !supportedAlgorithms.contains(alg) {
            let why = refusedAlgorithms.contains(alg)
                ? "is refused (none is unsigned; HMAC would accept tokens signed with the public key)"
                : "is unknown"
            errors.append(file.error("algorithms", "\(alg) \(why); use some of \(supportedAlgorithms.sorted().joined(separator: " "))"))
        }
        if algorithms.isEmpty { errors.append(file.error("algorithms", "empty; e.g. 'RS256 ES256'")) }
        if file["username_claim"].isEmpty { errors.append(file.error("username_claim", "empty; e.g. 'email'")) }

        var source = Source.jwksFile(path: file["jwks_file"])
        if !file["jwks_url"].isEmpty {
            if let problem = urlProblem(file["jwks_url"]) { errors.append(file.error("jwks_url", problem)) }
            source = .jwksURL(file["jwks_url"])
        } else if !file["introspection_url"].isEmpty {
            let url = file["introspection_url"]
            if let problem = urlProblem(url) { errors.append(file.error("introspection_url", problem)) }
            var secret = file["client_secret"]
            if !file["client_secret_file"].isEmpty {
                if !secret.isEmpty {
                    errors.append(file.error("client_secret_file", "set client_secret or client_secret_file, not both"))
                }
                do {
                    secret = try readSecretFile(file["client_secret_file"]).trimmingSuffix(while: { $0 == "\n" || $0 == "\r" })
                } catch {
                    errors.append(contentsOf: error.errors)
                }
            }
            if file["client_id"].isEmpty || secret.isEmpty {
                errors.append(ConfigError(file: file.file, line: file.line(of: "introspection_url"),
                    "introspection_url needs client_id and client_secret (or client_secret_file)"))
            }
            source = .introspection(url: url, clientID: file["client_id"], clientSecret: secret)
        } else if !file["jwks_file"].isEmpty && !file["jwks_file"].hasPrefix("/") {
            errors.append(file.error("jwks_file", "must be an absolute path"))
        }
        if case .introspection = source {} else {
            // A JWT without a required issuer and audience would be accepted from any client of the issuer.
            for key in ["issuer", "audience"] where file[key].isEmpty {
                errors.append(ConfigError(file: file.file, line: nil,
                    "'\(key)' is not set; JWT validation needs it (add '\(key) = ...')"))
            }
        }
        if !errors.isEmpty { throw ConfigErrors(errors) }
        return OAuth2Settings(
            source: source, issuer: file["issuer"].isEmpty ? nil : file["issuer"],
            audience: file["audience"].isEmpty ? nil : file["audience"], usernameClaim: file["username_claim"],
            clockSkew: Int(skew), algorithms: algorithms, jwksCacheTTL: Int(ttl), timeout: timeout,
            introspectionCacheSize: cacheSize)
    }

    /// `http://` or `https://` with a host; nil when fine.
    static func urlProblem(_ url: String) -> String? {
        let lower = url.lowercased()
        guard lower.hasPrefix("https://") || lower.hasPrefix("http://") else {
            return "must start with https:// (or http:// for a local endpoint)"
        }
        guard !url.contains(where: { $0 == " " || $0.isNewline }) else { return "contains a space" }
        let rest = url.drop(while: { $0 != "/" }).dropFirst(2)
        return rest.isEmpty || rest.hasPrefix("/") ? "has no host" : nil
    }

    /// `60`, `60s`, `500ms`, `5m`, `1h`, `1d` in seconds.
    static func parseDuration(_ text: String) -> Double? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            return Double(text.dropLast(suffix.count)).map { $0 * factor }
        }
        return Double(text)
    }
}

extension String {
    fileprivate func trimmingSuffix(while drop: (Character) -> Bool) -> String {
        var s = Substring(self)
        while let last = s.last, drop(last) { s = s.dropLast() }
        return String(s)
    }
}
