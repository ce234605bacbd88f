public import AuthCore

/// A plaintext verdict and what came with it: the app password that matched (`app=NAME` in the OK line
/// and the log, never the secret) and the stored hash the password was checked against, so the chain
/// can store a stronger one (`rehash_schemes`, `Rehasher`).
public struct PassdbVerdict: Sendable {
    public var result: PassdbResult
    /// The name of the app password that matched (only with `.ok`); nil: the main password.
    public var appPassword: String?
    /// The stored password field the main password was verified against (only with `.ok`), when the
    /// passdb can replace it (`RehashablePassdb`).
    public var verifiedAgainst: StoredPassword?

    public init(_ result: PassdbResult, appPassword: String? = nil, verifiedAgainst: StoredPassword? = nil) {
        self.result = result
        self.appPassword = appPassword
        self.verifiedAgainst = verifiedAgainst
    }
}

extension PasswordDatabase {
    public func verifyPlainVerdict(_ request: PassdbRequest, password: Secret) async -> PassdbVerdict {
        PassdbVerdict(await verifyPlain(request, password: password))
    }

    public func verifyPlainVerdictNow(_ request: PassdbRequest, password: Secret) -> PassdbVerdict? {
        verifyPlainNow(request, password: password).map { PassdbVerdict($0) }
    }
}

/// How a rewrite of a stored hash ended (`RehashablePassdb.replaceHash`).
public enum RehashOutcome: Sendable, Equatable {
    /// The new hash is stored.
    case rewritten
    /// The stored field is no longer the one verified (another login or an admin changed it first):
    /// nothing was written.
    case unchanged
    /// The rewrite failed; the reason names the file and the fix.
    case failed(String)
}

/// A passdb that can replace a user's stored hash with a new one (`rehash_schemes`).
public protocol RehashablePassdb: PasswordDatabase {
    /// Hashes `password` with `scheme` and stores it in place of `old`, atomically and only if the
    /// stored field still is `old`. Runs the hashing and the write on the passdb's executor, never on
    /// the caller's thread; the passdb's data in service is current when it returns `.rewritten`.
    func replaceHash(_ request: PassdbRequest, password: Secret, old: StoredPassword, scheme: PasswordScheme) async
        -> RehashOutcome
}
