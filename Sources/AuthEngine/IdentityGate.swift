import AuthConfig
import AuthProtocol
import Passdb
import SASL

/// The names a request goes by once the identity gate has looked at them.
struct CheckedIdentity: Equatable {
    /// What `user=` and the log line show: the normalized name once the username policy accepted it,
    /// the name as sent when it refused it.
    var user: String
    /// The name the penalty table counts: only a name the policy accepted; nil for a refused one, which
    /// is counted under the remote address alone (a client-chosen string never becomes a table key).
    var penaltyUser: String?
    /// The authorization identity `user` may act as, by an `authz_rules` entry.
    var authzid: String?
}

/// What the gate decided about a name.
struct IdentityVerdict: Equatable {
    var names: CheckedIdentity
    /// Why the request ends here; nil: go on and ask the passdbs for `names.user`.
    var refusal: AuthFailure?
}

/// Who may try, and under which name (docs/SECURITY.md): the cool-downs of the penalty table, TLS for
/// cleartext mechanisms, the username policy, the `authz_rules`. It also tells the penalty table how
/// each counted attempt ended. Built once per configuration generation.
struct IdentityGate: Sendable {
    let usernamePolicy: UsernamePolicy
    let authzRules: [AuthzRule]
    let cleartextRequiresTLS: Bool
    let failureDelay: Double
    let penalty: PenaltyTable

    init(_ configuration: EngineConfiguration, penalty: PenaltyTable) {
        usernamePolicy = configuration.usernamePolicy
        authzRules = configuration.authzRules
        cleartextRequiresTLS = configuration.cleartextRequiresTLS
        failureDelay = configuration.failureDelay
        self.penalty = penalty
    }

    /// Before the mechanism runs: an address in cool-down gets a fast FAIL, then a cleartext mechanism
    /// without `secured` is refused before any passdb could be asked.
    func admit(_ command: AuthCommand, mechanism: MechanismDescriptor) -> AuthFailure? {
        if !command.noPenalty && penalty.isBlocked(ip: command.remoteIP, user: nil) { return .blockedAddress }
        if mechanism.flags.contains(.plaintext) && cleartextRequiresTLS && !command.secured { return .cleartextWithoutTLS }
        return nil
    }

    /// Once the mechanism names a user: the username policy normalizes or refuses the name, a user in
    /// cool-down from this address gets a fast FAIL, and an authzid other than the authcid needs an
    /// `authz_rules` entry (the password checked stays the authcid's).
    func check(_ identity: MechanismIdentity, for command: AuthCommand) -> IdentityVerdict {
        let user: String
        switch usernamePolicy.normalize(identity.authcid, realm: identity.realm) {
        case .success(let normalized): user = normalized
        case .failure(let rejection):
            return IdentityVerdict(names: CheckedIdentity(user: identity.authcid), refusal: .nameRefused(rejection))
        }
        var names = CheckedIdentity(user: user, penaltyUser: user)
        if !command.noPenalty && penalty.isBlocked(ip: command.remoteIP, user: user) {
            return IdentityVerdict(names: names, refusal: .blockedUser)
        }
        if let authzid = identity.authzid, !authzid.isEmpty, authzid != identity.authcid, authzid != user {
            guard case .success(let target) = usernamePolicy.normalize(authzid),
                authzRules.contains(where: { $0.allows(authcid: user, authzid: target) })
            else {
                return IdentityVerdict(names: names, refusal: .authorizationRefused(authzid: authzid))
            }
            names.authzid = target
        }
        return IdentityVerdict(names: names, refusal: nil)
    }

    /// The user a valid token was issued to, normalized as login names are; nil when the token is not
    /// valid or its subject is not an acceptable name.
    func normalizedSubject(of result: TokenResult) -> String? {
        guard case .valid(let subject) = result, case .success(let name) = usernamePolicy.normalize(subject) else {
            return nil
        }
        return name
    }

    /// Counts an authentication failure (unless the request said `no-penalty`) and returns how long its
    /// FAIL waits: the failure delay, escalated by the penalty table.
    func recordFailure(_ request: AuthRequest) -> Double {
        guard !request.command.noPenalty else { return failureDelay }
        return penalty.recordFailure(
            ip: request.command.remoteIP, user: request.penaltyUser, password: request.failedPassword)
    }

    /// A success clears the counts of the address and of the accepted name.
    func recordSuccess(_ request: AuthRequest) {
        guard !request.command.noPenalty, let user = request.penaltyUser else { return }
        penalty.recordSuccess(ip: request.command.remoteIP, user: user)
    }
}
