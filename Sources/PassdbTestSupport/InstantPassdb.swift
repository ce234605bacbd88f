public import AuthCore
public import Passdb
import Synchronization

/// A passdb that can answer at once (as passwd-file does for {PLAIN}) unless told it would block. For tests
/// of the chain, the cache and the engine (no executable links this module).
public final class InstantPassdb: PasswordDatabase, Sendable {
    public let name: String
    public let driver = "instant"
    public let capabilities = PassdbCapabilities(verifyPlain: true)
    let users: [String: String]
    let forced: [String: PassdbResult]
    let blocks: Bool
    public let calls = Atomic<Int>(0)

    public init(_ name: String, users: [String: String], forced: [String: PassdbResult] = [:], blocks: Bool = false) {
        self.name = name
        self.users = users
        self.forced = forced
        self.blocks = blocks
    }

    public var cacheGeneration: UInt64? { 1 }

    func answer(_ request: PassdbRequest, _ password: Secret) -> PassdbResult {
        calls.wrappingAdd(1, ordering: .relaxed)
        if let f = forced[request.user] { return f }
        guard let stored = users[request.user] else { return .userUnknown }
        return password.constantTimeEquals(Array(stored.utf8)) ? .ok : .passwordMismatch
    }

    public func verifyPlain(_ request: PassdbRequest, password: Secret) async -> PassdbResult { answer(request, password) }

    public func verifyPlainNow(_ request: PassdbRequest, password: Secret) -> PassdbResult? {
        blocks ? nil : answer(request, password)
    }

    public func lookupCredentials(_ request: PassdbRequest, scheme: CredentialScheme) async -> CredentialLookup { .userUnknown }
}
