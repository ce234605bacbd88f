public import AuthConfig
public import AuthCore

/// Asks the configured passdbs in order, with Dovecot's default rules: an unknown user goes on to the
/// next passdb; a wrong password (or a disabled or expired account) goes on too unless that passdb says
/// `result_failure=return`; an internal failure goes on unless `result_internalfail=return`, and if no
/// later passdb accepts the password the answer is a temporary failure, never a plain "wrong password".
public struct PassdbChain: Sendable {
    public struct Entry: Sendable {
        public let passdb: any PasswordDatabase
        /// `passdb.capabilities.verifyPlain`, read once: asking a passdb for its capabilities may take a
        /// lock and copy its credential kinds, and the chain walks the entries on every request.
        public let verifiesPlain: Bool
        public var resultFailure: PassdbSpec.ChainAction
        public var resultInternalFail: PassdbSpec.ChainAction

        public init(
            _ passdb: any PasswordDatabase, resultFailure: PassdbSpec.ChainAction = .continue,
            resultInternalFail: PassdbSpec.ChainAction = .continue
        ) {
            self.passdb = passdb
            self.verifiesPlain = passdb.capabilities.verifyPlain
            self.resultFailure = resultFailure
            self.resultInternalFail = resultInternalFail
        }
    }

    public let entries: [Entry]
    public var passdbs: [any PasswordDatabase] { entries.map(\.passdb) }
    /// Cache of verification results (auth_cache_size > 0); nil: every check asks the passdbs.
    public var cache: AuthCache?
    /// Stores fresh hashes after logins verified against weak ones (`rehash_schemes`); nil: off.
    public var rehasher: Rehasher?

    /// The chain's answer to a plaintext check: the verdict, the passdb that gave it (nil when none
    /// knew the user) and the app password that matched (nil: the main password, or a failure).
    public struct Verdict: Sendable {
        public var result: PassdbResult
        public var passdb: String?
        public var appPassword: String?

        public init(_ result: PassdbResult, passdb: String?, appPassword: String? = nil) {
            self.result = result
            self.passdb = passdb
            self.appPassword = appPassword
        }
    }

    public init(_ entries: [Entry]) {
        self.entries = entries
    }

    public init(_ passdbs: [any PasswordDatabase]) {
        self.entries = passdbs.map { Entry($0) }
    }

    /// The verdict and the passdb that gave it (nil when none knew the user). Every passdb's data is
    /// brought up to date first (`ensureFresh`), so neither a passdb nor the cache answers from data older
    /// than its check interval.
    public func verifyPlain(_ request: PassdbRequest, password: Secret) async -> (PassdbResult, String?) {
        let v = await verify(request, password: password)
        return (v.result, v.passdb)
    }

    /// `verifyPlain` with the app password that matched.
    public func verify(_ request: PassdbRequest, password: Secret) async -> Verdict {
        for entry in entries where entry.verifiesPlain { await entry.passdb.ensureFresh() }
        guard let cache, let generations = cacheGenerations() else {
            return await verifyUncached(request, password: password)
        }
        if let hit = cache.lookup(user: cacheUser(request), password: password, generations: generations) {
            return Verdict(hit.0, passdb: hit.1)
        }
        let answer = await verifyUncached(request, password: password)
        if case .internalFailure = answer.result,
            let stale = cache.lookupExpired(user: cacheUser(request), password: password, generations: generations) {
            // The backend is out: the last answer it gave serves meanwhile (Dovecot's rule).
            return Verdict(stale.0, passdb: stale.1)
        }
        remember(answer, request, password, generations)
        return answer
    }

    /// The verdict at once when no passdb on the way needs to hash, block or check its data for changes
    /// (a cache hit, `{PLAIN}` entries): the common case of a busy MTA costs no task and no thread hop.
    /// nil: use `verifyPlain`. Same rules and the same cache as `verifyPlain`.
    public func verifyPlainNow(_ request: PassdbRequest, password: Secret) -> (PassdbResult, String?)? {
        verifyNow(request, password: password).map { ($0.result, $0.passdb) }
    }

    /// `verifyPlainNow` with the app password that matched.
    public func verifyNow(_ request: PassdbRequest, password: Secret) -> Verdict? {
        for entry in entries where entry.verifiesPlain {
            guard entry.passdb.isFresh else { return nil }
        }
        let generations = cache == nil ? nil : cacheGenerations()
        if let cache, let generations,
            let hit = cache.lookup(user: cacheUser(request), password: password, generations: generations, countMiss: false) {
            return Verdict(hit.0, passdb: hit.1)
        }
        var fold = Fold()
        for entry in entries where entry.verifiesPlain {
            guard let verdict = entry.passdb.verifyPlainVerdictNow(request, password: password) else { return nil }
            if let answer = fold.add(verdict, from: entry) {
                considerRehash(verdict, entry, request, password)
                return remembered(answer, request, password, generations)
            }
        }
        return remembered(fold.answer, request, password, generations)
    }

    private func remembered(
        _ answer: Verdict, _ request: PassdbRequest, _ password: Secret, _ generations: [UInt64]?
    ) -> Verdict {
        if let generations {
            cache?.countMiss()
            remember(answer, request, password, generations)
        }
        return answer
    }

    /// Stores an answer, but only when no passdb changed while we asked: it belongs to these generations.
    /// An app password's success is never cached: its services, expiry and last use are checked on every
    /// login.
    private func remember(_ answer: Verdict, _ request: PassdbRequest, _ password: Secret, _ generations: [UInt64]) {
        guard let cache, answer.appPassword == nil, cacheGenerations() == generations else { return }
        cache.store(
            user: cacheUser(request), password: password, generations: generations, result: answer.result, passdb: answer.passdb)
    }

    /// The cache's name for a request: the user and the service, since an app password may serve one
    /// service and not another (its failure for `imap` must not answer for `smtp`).
    private func cacheUser(_ request: PassdbRequest) -> String {
        request.user + "\u{0}" + request.service
    }

    private func considerRehash(_ verdict: PassdbVerdict, _ entry: Entry, _ request: PassdbRequest, _ password: Secret) {
        guard verdict.result == .ok, let rehasher else { return }
        rehasher.consider(verdict, from: entry.passdb, request: request, password: password)
    }

    /// The generation of every passdb that can verify plaintext, or nil if one cannot say (PAM).
    func cacheGenerations() -> [UInt64]? {
        var out: [UInt64] = []
        for entry in entries where entry.verifiesPlain {
            guard let g = entry.passdb.cacheGeneration else { return nil }
            out.append(g)
        }
        return out
    }

    private func verifyUncached(_ request: PassdbRequest, password: Secret) async -> Verdict {
        var fold = Fold()
        for entry in entries where entry.verifiesPlain {
            let verdict = await entry.passdb.verifyPlainVerdict(request, password: password)
            if let answer = fold.add(verdict, from: entry) {
                considerRehash(verdict, entry, request, password)
                return answer
            }
        }
        return fold.answer
    }

    /// Dovecot's chain rules for plaintext checks, one passdb's answer at a time.
    private struct Fold {
        var final = Verdict(.userUnknown, passdb: nil)
        var internalFail: Verdict?

        /// The chain's answer if this passdb's verdict ends the walk; nil: ask the next passdb.
        mutating func add(_ verdict: PassdbVerdict, from entry: Entry) -> Verdict? {
            let result = verdict.result
            switch result {
            case .ok, .okAs:
                return Verdict(result, passdb: entry.passdb.name, appPassword: verdict.appPassword)
            case .userUnknown:
                return nil
            case .internalFailure:
                internalFail = internalFail ?? Verdict(result, passdb: entry.passdb.name)
                return entry.resultInternalFail == .return ? Verdict(result, passdb: entry.passdb.name) : nil
            default:
                final = Verdict(result, passdb: entry.passdb.name)
                return entry.resultFailure == .return ? (internalFail ?? final) : nil
            }
        }

        /// The answer once every passdb was asked.
        var answer: Verdict { internalFail ?? final }
    }

    /// Credentials are fetched, not verified here: the first passdb that has the user and a secret of
    /// this kind answers. A user known but without such a secret goes on to the next passdb.
    public func lookupCredentials(_ request: PassdbRequest, scheme: CredentialScheme) async -> (CredentialLookup, String?) {
        var fallback: (CredentialLookup, String?) = (.userUnknown, nil)
        var internalFail: (CredentialLookup, String?)?
        for entry in entries where entry.passdb.capabilities.credentials.contains(scheme) {
            await entry.passdb.ensureFresh()
            let result = await entry.passdb.lookupCredentials(request, scheme: scheme)
            switch result {
            case .found: return (result, entry.passdb.name)
            case .userUnknown: continue
            case .internalFailure:
                internalFail = internalFail ?? (result, entry.passdb.name)
                if entry.resultInternalFail == .return { return (result, entry.passdb.name) }
            default:
                fallback = (result, entry.passdb.name)
                if entry.resultFailure == .return { return internalFail ?? fallback }
            }
        }
        return internalFail ?? fallback
    }

    /// Bearer tokens go only to the passdbs that verify tokens, in order: the first valid verdict wins; an
    /// invalid token goes on to the next one (another issuer may know it); if none accepts it, an internal
    /// failure on the way makes the answer a temporary failure, as for passwords.
    public func verifyToken(_ request: PassdbRequest, token: Secret) async -> (TokenResult, String?) {
        var final: (TokenResult, String?) = (.invalid("no passdb verifies tokens"), nil)
        var internalFail: (TokenResult, String?)?
        for entry in entries where entry.passdb.capabilities.verifyToken {
            await entry.passdb.ensureFresh()
            let result = await entry.passdb.verifyToken(request, token: token)
            switch result {
            case .valid: return (result, entry.passdb.name)
            case .internalFailure:
                internalFail = internalFail ?? (result, entry.passdb.name)
                if entry.resultInternalFail == .return { return (result, entry.passdb.name) }
            case .invalid:
                final = (result, entry.passdb.name)
                if entry.resultFailure == .return { return internalFail ?? final }
            }
        }
        return internalFail ?? final
    }

    /// A reload replaced the chain: every passdb releases what is idle (see `PasswordDatabase.retire`).
    public func retire() async {
        for entry in entries { await entry.passdb.retire() }
    }

    /// Closes every passdb (their connections and threads); the chain is out of service after it.
    public func close() async {
        for entry in entries { await entry.passdb.close() }
    }

    /// True if at least one passdb can serve a mechanism with this need.
    public func canServe(_ need: SASLNeedKey) -> Bool {
        switch need {
        case .nothing: true
        case .verifyPlain: passdbs.contains { $0.capabilities.verifyPlain }
        case .verifyToken: passdbs.contains { $0.capabilities.verifyToken }
        case .credentials(let scheme): passdbs.contains { $0.capabilities.credentials.contains(scheme) }
        }
    }
}

/// `PassdbNeed` mirrored here so `Passdb` users need not import `SASL`.
public enum SASLNeedKey: Sendable, Equatable {
    case nothing, verifyPlain, verifyToken, credentials(CredentialScheme)
}
