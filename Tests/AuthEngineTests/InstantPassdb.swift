import AuthCore
import Passdb
import Synchronization

/// A passdb that can answer at once (as passwd-file does for {PLAIN}) unless told it would block.
final class InstantPassdb: PasswordDatabase, Sendable {
    let name: String
    let driver = "instant"
    let capabilities = PassdbCapabilities(verifyPlain: true)
    let users: [String: String]
    let forced: [String: PassdbResult]
    let blocks: Bool
    let calls = Atomic<Int>(0)

    init(_ name: String, users: [String: String], forced: [String: PassdbResult] = [:], blocks: Bool = false) {
        self.name = name
        self.users = users
        self.forced = forced
        self.blocks = blocks
    }

    var cacheGeneration: UInt64? { 1 }

    func answer(_ request: PassdbRequest, _ password: Secret) -> PassdbResult {
        calls.wrappingAdd(1, ordering: .relaxed)
        if let f = forced[request.user] { return f }
        guard let stored = users[request.user] else { return .userUnknown }
        return password.constantTimeEquals(Array(stored.utf8)) ? .ok : .passwordMismatch
    }

    func verifyPlain(_ request: PassdbRequest, password: Secret) async -> PassdbResult { answer(request, password) }

    func verifyPlainNow(_ request: PassdbRequest, password: Secret) -> PassdbResult? {
        blocks ? nil : answer(request, password)
    }

    func lookupCredentials(_ request: PassdbRequest, scheme: CredentialScheme) async -> CredentialLookup { .userUnknown }
}
