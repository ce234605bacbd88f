public import AuthCore
public import Logging
import Synchronization

/// Stores a fresh hash after a successful plaintext check against a weak one (`rehash_schemes`).
///
/// `schedule` returns at once (it may be called on an event loop): the hashing and the rewrite run in
/// a task on the passdb's own executor (`RehashablePassdb.replaceHash`). One rewrite per (passdb, user)
/// at a time: concurrent logins of the same user start one, and the rewrite itself only replaces the
/// field that was verified, so a login that saw the old field a moment later changes nothing. A failed
/// rewrite is logged with the passdb's reason; the login has succeeded already. Bounded: at most
/// `maxInFlight` rewrites at once, further ones wait for a later login.
public final class Rehasher: Sendable {
    public let policy: RehashPolicy
    public static let maxInFlight = 64
    private let logger: Logger
    /// `ok`, `failed` or `unchanged` for each finished rewrite (the daemon's metrics).
    private let report: @Sendable (String) -> Void
    private let inFlight = Mutex<Set<String>>([])

    public init(policy: RehashPolicy, logger: Logger, report: @escaping @Sendable (String) -> Void = { _ in }) {
        self.policy = policy
        self.logger = logger
        self.report = report
    }

    /// Starts a rewrite when `verdict` is an OK of the main password against a field the policy wants
    /// replaced, by a passdb that can replace it. Returns the task (tests wait for it), nil if none.
    @discardableResult
    public func consider(
        _ verdict: PassdbVerdict, from passdb: any PasswordDatabase, request: PassdbRequest, password: Secret
    ) -> Task<Void, Never>? {
        guard verdict.result == .ok, verdict.appPassword == nil, let old = verdict.verifiedAgainst,
            policy.wantsRehash(old), let target = passdb as? any RehashablePassdb
        else { return nil }
        let key = passdb.name + "\u{0}" + request.user
        let admitted = inFlight.withLock { set -> Bool in
            guard set.count < Rehasher.maxInFlight else { return false }
            return set.insert(key).inserted
        }
        guard admitted else { return nil }
        let scheme = policy.target
        return Task.detached { [self] in
            defer { _ = inFlight.withLock { $0.remove(key) } }
            let from = RehashPolicy.classify(old).name
            let shownUser = sanitizeForLog(request.user)
            switch await target.replaceHash(request, password: password, old: old, scheme: scheme) {
            case .rewritten:
                report("ok")
                logger.info(
                    "rehashed the stored password of \(shownUser) from \(from) to \(scheme)",
                    metadata: ["passdb": "\(passdb.name)", "auth.user": "\(shownUser)"])
            case .unchanged:
                report("unchanged")
                logger.debug(
                    "rehash of \(shownUser) skipped: the stored password changed meanwhile",
                    metadata: ["passdb": "\(passdb.name)", "auth.user": "\(shownUser)"])
            case .failed(let why):
                report("failed")
                logger.error(
                    "rehash of \(shownUser) from \(from) to \(scheme) failed (the login succeeded): \(why)",
                    metadata: ["passdb": "\(passdb.name)", "auth.user": "\(shownUser)"])
            }
        }
    }
}
