public import AuthConfig
public import AuthCore
public import Passdb

/// Asks the configured passdbs in order, with Dovecot's default rules: an unknown user goes on to the
/// next passdb; a wrong password (or a disabled or expired account) goes on too unless that passdb says
/// `result_failure=return`; an internal failure goes on unless `result_internalfail=return`, and if no
/// later passdb accepts the password the answer is a temporary failure, never a plain "wrong password".
public struct PassdbChain: Sendable {
    public struct Entry: Sendable {
        public var passdb: any PasswordDatabase
        public var resultFailure: PassdbSpec.ChainAction
        public var resultInternalFail: PassdbSpec.ChainAction

        public init(
            _ passdb: any PasswordDatabase, resultFailure: PassdbSpec.ChainAction = .continue,
            resultInternalFail: PassdbSpec.ChainAction = .continue
        ) {
            self.passdb = passdb
            self.resultFailure = resultFailure
            self.resultInternalFail = resultInternalFail
        }
    }

    public let entries: [Entry]
    public var passdbs: [any PasswordDatabase] { entries.map(\.passdb) }
    /// Cache of verification results (auth_cache_size > 0); nil: every check asks the passdbs.
    public var cache: AuthCache?

    public init(_ entries: [Entry]) {
        self.entries = entries
    }

    public init(_ passdbs: [any PasswordDatabase]) {
        self.entries = passdbs.map { Entry($0) }
    }

    /// The verdict and the passdb that gave it (nil when none knew the user).
    public func verifyPlain(_ request: PassdbRequest, password: Secret) async -> (PassdbResult, String?) {
        guard let cache, let generations = cacheGenerations() else {
            return await verifyUncached(request, password: password)
        }
        if let hit = cache.lookup(user: request.user, password: password, generations: generations) { return hit }
        let (result, passdb) = await verifyUncached(request, password: password)
        // Only store when no passdb changed while we asked: the answer belongs to these generations.
        if cacheGenerations() == generations {
            cache.store(user: request.user, password: password, generations: generations, result: result, passdb: passdb)
        }
        return (result, passdb)
    }

    /// The generation of every passdb that can verify plaintext, or nil if one cannot say (PAM).
    func cacheGenerations() -> [UInt64]? {
        var out: [UInt64] = []
        for entry in entries where entry.passdb.capabilities.verifyPlain {
            guard let g = entry.passdb.cacheGeneration else { return nil }
            out.append(g)
        }
        return out
    }

    private func verifyUncached(_ request: PassdbRequest, password: Secret) async -> (PassdbResult, String?) {
        var final: (PassdbResult, String?) = (.userUnknown, nil)
        var internalFail: (PassdbResult, String?)?
        for entry in entries where entry.passdb.capabilities.verifyPlain {
            let result = await entry.passdb.verifyPlain(request, password: password)
            switch result {
            case .ok:
                return (result, entry.passdb.name)
            case .userUnknown:
                continue
            case .internalFailure:
                internalFail = internalFail ?? (result, entry.passdb.name)
                if entry.resultInternalFail == .return { return (result, entry.passdb.name) }
            default:
                final = (result, entry.passdb.name)
                if entry.resultFailure == .return { return internalFail ?? final }
            }
        }
        return internalFail ?? final
    }

    /// Credentials are fetched, not verified here: the first passdb that has the user and a secret of
    /// this kind answers. A user known but without such a secret goes on to the next passdb.
    public func lookupCredentials(_ request: PassdbRequest, scheme: CredentialScheme) async -> (CredentialLookup, String?) {
        var fallback: (CredentialLookup, String?) = (.userUnknown, nil)
        var internalFail: (CredentialLookup, String?)?
        for entry in entries where entry.passdb.capabilities.credentials.contains(scheme) {
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

    /// True if at least one passdb can serve a mechanism with this need.
    public func canServe(_ need: SASLNeedKey) -> Bool {
        switch need {
        case .nothing: true
        case .verifyPlain: passdbs.contains { $0.capabilities.verifyPlain }
        case .credentials(let scheme): passdbs.contains { $0.capabilities.credentials.contains(scheme) }
        }
    }
}

/// `PassdbNeed` mirrored here so `Passdb` users need not import `SASL`.
public enum SASLNeedKey: Sendable, Equatable {
    case nothing, verifyPlain, credentials(CredentialScheme)
}
