import AuthConfig
import AuthCore
import AuthProtocol
@testable import AuthEngine
import SASL
import Testing

/// Who may try and under which name: cool-downs, TLS for cleartext, the username policy, authz rules.
@Suite struct IdentityGateTests {
    static let plain = MechanismRegistry.descriptor(named: "PLAIN")!
    static let cram = MechanismRegistry.descriptor(named: "CRAM-MD5")!

    func gate(_ configure: (inout Settings) -> Void = { _ in }) -> IdentityGate {
        let configuration = EngineConfiguration(settings: testSettings {
            $0.penaltyBlockAfter = 2
            configure(&$0)
        })
        return IdentityGate(configuration, penalty: PenaltyTable(policy: configuration.penalty))
    }

    func command(rip: String? = "192.0.2.9", secured: Bool = true, noPenalty: Bool = false) -> AuthCommand {
        var c = AuthCommand(id: 1, mechanism: "PLAIN", service: "smtp")
        c.remoteIP = rip
        c.secured = secured
        c.noPenalty = noPenalty
        return c
    }

    func block(_ gate: IdentityGate, ip: String, user: String? = nil) {
        for i in 1...2 { _ = gate.penalty.recordFailure(ip: ip, user: user, password: Secret("guess\(i)")) }
    }

    // MARK: - Before the mechanism

    @Test func cleartextNeedsTLSUnlessConfiguredOtherwise() {
        #expect(gate().admit(command(secured: false), mechanism: Self.plain) == .cleartextWithoutTLS)
        #expect(gate().admit(command(secured: true), mechanism: Self.plain) == nil)
        #expect(gate().admit(command(secured: false), mechanism: Self.cram) == nil)
        #expect(gate { $0.cleartextRequiresTLS = false }.admit(command(secured: false), mechanism: Self.plain) == nil)
    }

    @Test func anAddressInCoolDownIsRefusedFirst() {
        let g = gate()
        block(g, ip: "192.0.2.9")
        #expect(g.admit(command(secured: false), mechanism: Self.plain) == .blockedAddress)
        #expect(g.admit(command(rip: "192.0.2.10"), mechanism: Self.plain) == nil)
        #expect(g.admit(command(noPenalty: true), mechanism: Self.plain) == nil)
    }

    // MARK: - Once the mechanism names a user

    @Test func anAcceptedNameIsNormalizedAndCounted() {
        let verdict = gate().check(MechanismIdentity(authcid: "Test"), for: command())
        #expect(verdict == IdentityVerdict(names: CheckedIdentity(user: "test@example.org", penaltyUser: "test@example.org"), refusal: nil))
    }

    /// The client is told the name it sent; the penalty table never sees it.
    @Test func aRefusedNameIsKeptAsSentAndNotCounted() {
        let verdict = gate().check(MechanismIdentity(authcid: "te st"), for: command())
        #expect(verdict.names == CheckedIdentity(user: "te st", penaltyUser: nil))
        #expect(verdict.refusal == .nameRefused(.disallowedCharacter))
    }

    @Test func aUserInCoolDownFromThisAddressIsRefused() {
        let g = gate()
        block(g, ip: "192.0.2.77", user: "test@example.org")
        let here = g.check(MechanismIdentity(authcid: "test"), for: command(rip: "192.0.2.77"))
        #expect(here.refusal == .blockedUser)
        #expect(here.names.user == "test@example.org")
        #expect(g.check(MechanismIdentity(authcid: "test"), for: command(rip: "192.0.2.78")).refusal == nil)
        #expect(g.check(MechanismIdentity(authcid: "test"), for: command(rip: "192.0.2.77", noPenalty: true)).refusal == nil)
    }

    @Test func anAuthzidNeedsARule() {
        let g = gate { $0.authzRules = [AuthzRule("relay@example.org=>*@example.org")!] }
        let allowed = g.check(MechanismIdentity(authcid: "relay", authzid: "Alice"), for: command())
        #expect(allowed == IdentityVerdict(
            names: CheckedIdentity(user: "relay@example.org", penaltyUser: "relay@example.org", authzid: "alice@example.org"),
            refusal: nil))
        let otherRealm = g.check(MechanismIdentity(authcid: "relay", authzid: "alice@other.org"), for: command())
        #expect(otherRealm.refusal == .authorizationRefused(authzid: "alice@other.org"))
        #expect(otherRealm.names.authzid == nil)
        let noRule = g.check(MechanismIdentity(authcid: "test", authzid: "alice"), for: command())
        #expect(noRule.refusal == .authorizationRefused(authzid: "alice"))
        #expect(noRule.names.penaltyUser == "test@example.org")
    }

    /// doveadm 2.3 sends the authcid again as authzid; an empty one or the normalized name is the same.
    @Test func anAuthzidEqualToTheUserIsIgnored() {
        for authzid in ["test", "", "test@example.org"] {
            let verdict = gate().check(MechanismIdentity(authcid: "test", authzid: authzid), for: command())
            #expect(verdict.refusal == nil)
            #expect(verdict.names.authzid == nil)
        }
    }

    // MARK: - Counting

    @Test func failuresAreCountedUnderTheAcceptedNameOnly() {
        let g = gate { $0.penaltyBlockAfter = 10 }
        let request = AuthRequest(
            command: command(), descriptor: Self.plain, mechanism: Self.plain.make(MechanismContext(hostname: "h")),
            started: 0)
        request.adopt(CheckedIdentity(user: "x y", penaltyUser: nil))
        #expect(g.recordFailure(request) == 2)
        #expect(g.penalty.list().map { "\($0.kind) \($0.key)" } == ["ip 192.0.2.9"])
        request.adopt(CheckedIdentity(user: "test@example.org", penaltyUser: "test@example.org"))
        request.failedPassword = Secret("guess")
        #expect(g.recordFailure(request) == 4)  // the address's second failure
        g.recordSuccess(request)
        #expect(g.penalty.list().isEmpty)
    }

    @Test func noPenaltyRequestsAreNeitherCountedNorCleared() {
        let g = gate()
        let request = AuthRequest(
            command: command(noPenalty: true), descriptor: Self.plain,
            mechanism: Self.plain.make(MechanismContext(hostname: "h")), started: 0)
        request.adopt(CheckedIdentity(user: "test@example.org", penaltyUser: "test@example.org"))
        #expect(g.recordFailure(request) == 2)
        #expect(g.penalty.count == 0)
        _ = g.penalty.recordFailure(ip: "192.0.2.9", user: "test@example.org", password: nil)
        g.recordSuccess(request)
        #expect(g.penalty.count == 3)
    }
}
